/* Nesting-depth check run before protobuf-c unpacks a model: protobuf-c
 * recurses once per nested message, so a small file of deeply nested
 * subgraphs would exhaust the stack. The scan walks the wire format with the
 * generated descriptors and recurses only into message fields, never deeper
 * than the limit. Anything else malformed is left for protobuf-c to reject. */
#include "onnx_io.h"

typedef struct reader {
  const uint8_t *p, *end;
} reader;

static bool read_varint(reader *r, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
    uint8_t b = *r->p++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* Returns false only when the depth limit is passed. */
static bool scan(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *desc, int depth) {
  if (depth > TC_MAX_MESSAGE_DEPTH)
    return false;
  reader r = {p, p + len};
  while (r.p < r.end) {
    uint64_t tag, n;
    if (!read_varint(&r, &tag))
      return true;
    switch (tag & 7) {
    case 0:
      if (!read_varint(&r, &n))
        return true;
      break;
    case 1:
      if (r.end - r.p < 8)
        return true;
      r.p += 8;
      break;
    case 5:
      if (r.end - r.p < 4)
        return true;
      r.p += 4;
      break;
    case 2: {
      if (!read_varint(&r, &n) || n > (uint64_t)(r.end - r.p))
        return true;
      const ProtobufCFieldDescriptor *f =
          tag >> 3 <= UINT32_MAX
              ? protobuf_c_message_descriptor_get_field(desc, (unsigned)(tag >> 3))
              : NULL;
      if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
          !scan(r.p, (size_t)n, f->descriptor, depth + 1))
        return false;
      r.p += n;
      break;
    }
    default: return true; /* groups or garbage: protobuf-c decides */
    }
  }
  return true;
}

bool tc_pb_depth_ok(const void *data, size_t size) {
  return scan(data, size, &onnx__model_proto__descriptor, 1);
}
