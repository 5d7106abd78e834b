/* Scans of a serialized ModelProto run before protobuf-c unpacks it.
 *
 * Nesting depth: protobuf-c recurses once per nested message, so a small
 * file of deeply nested subgraphs would exhaust the stack. The scan walks the
 * wire format with the generated descriptors and recurses only into message
 * fields, never deeper than the limit. Anything else malformed is left for
 * protobuf-c to reject.
 *
 * Initializer payloads: protobuf-c copies every bytes field out of the input,
 * so unpacking a mapped file holds the weights twice (the touched pages and
 * the copies) until the mapping goes. tc_pb_cut_payloads writes a copy of the
 * message without the large raw_data fields of the main graph's
 * initializers, for the importer to unpack and then fill from the file one
 * tensor at a time. */
#include <stdlib.h>
#include <string.h>

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

/* One field: its number and wire type, where it starts (its tag), where its
 * body starts and ends (the body of a length-delimited field is its bytes). */
typedef struct field {
  uint64_t num;
  int type;
  const uint8_t *tag, *body, *end;
} field;

/* The next field of r, or false at the end or on anything malformed (*bad). */
static bool next_field(reader *r, field *f, bool *bad) {
  if (r->p >= r->end)
    return false;
  uint64_t tag, n;
  f->tag = r->p;
  if (!read_varint(r, &tag))
    return !(*bad = true);
  f->num = tag >> 3;
  f->type = (int)(tag & 7);
  switch (f->type) {
  case 0:
    f->body = r->p;
    if (!read_varint(r, &n))
      return !(*bad = true);
    break;
  case 1:
  case 5:
    n = f->type == 1 ? 8 : 4;
    if ((uint64_t)(r->end - r->p) < n)
      return !(*bad = true);
    f->body = r->p;
    r->p += n;
    break;
  case 2:
    if (!read_varint(r, &n) || n > (uint64_t)(r->end - r->p))
      return !(*bad = true);
    f->body = r->p;
    r->p += n;
    break;
  default: return !(*bad = true);
  }
  f->end = r->p;
  return true;
}

/* Returns false only when the depth limit is passed. */
static bool scan(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *desc, int depth) {
  if (depth > TC_MAX_MESSAGE_DEPTH)
    return false;
  reader r = {p, p + len};
  field f;
  bool bad = false; /* groups or garbage: protobuf-c decides */
  while (next_field(&r, &f, &bad)) {
    const ProtobufCFieldDescriptor *fd =
        f.type == 2 && f.num <= UINT32_MAX
            ? protobuf_c_message_descriptor_get_field(desc, (unsigned)f.num)
            : NULL;
    if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE &&
        !scan(f.body, (size_t)(f.end - f.body), fd->descriptor, depth + 1))
      return false;
  }
  return true;
}

bool tc_pb_depth_ok(const void *data, size_t size) {
  return scan(data, size, &onnx__model_proto__descriptor, 1);
}

/* ---- initializer payloads ---- */

static size_t varint_size(uint64_t v) {
  size_t k = 1;
  while (v >= 0x80) {
    v >>= 7;
    k++;
  }
  return k;
}

static uint8_t *put_varint(uint8_t *o, uint64_t v) {
  while (v >= 0x80) {
    *o++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *o++ = (uint8_t)v;
  return o;
}

/* A cut: initializer field f (its tag through its end) loses the raw_data
 * field [raw, raw_end), whose payload is out->off/len. */
typedef struct cut {
  const uint8_t *tag, *body, *end, *raw, *raw_end;
} cut;

enum { MODEL_GRAPH = 7, GRAPH_INITIALIZER = 5, TENSOR_RAW_DATA = 9 };

/* The initializer field's new length of body and whole field once cut. */
static size_t cut_body(const cut *c) {
  return (size_t)(c->end - c->body) - (size_t)(c->raw_end - c->raw);
}
static size_t cut_field(const cut *c) {
  size_t b = cut_body(c);
  return (size_t)(c->body - c->tag) - varint_size((uint64_t)(c->end - c->body)) + varint_size(b) +
         b;
}

uint8_t *tc_pb_cut_payloads(const void *data, size_t size, size_t min_len, tc_pb_payload **payloads,
                            size_t *n_payloads, size_t *out_size) {
  *payloads = NULL;
  *n_payloads = *out_size = 0;
  const uint8_t *base = data;
  reader r = {base, base + size};
  field f, graph = {0};
  bool bad = false;
  size_t n_graph = 0;
  while (next_field(&r, &f, &bad))
    if (f.num == MODEL_GRAPH && f.type == 2)
      graph = f, n_graph++;
  if (bad || n_graph != 1) /* a graph given twice is merged by protobuf-c: not cut */
    return NULL;
  cut *cuts = NULL;
  tc_pb_payload *pl = NULL;
  size_t n = 0, cap = 0, k = 0;
  reader g = {graph.body, graph.end};
  for (; next_field(&g, &f, &bad); k += f.num == GRAPH_INITIALIZER) {
    if (f.num != GRAPH_INITIALIZER || f.type != 2)
      continue;
    reader t = {f.body, f.end};
    field tf, raw = {0};
    size_t n_raw = 0;
    while (next_field(&t, &tf, &bad))
      if (tf.num == TENSOR_RAW_DATA && tf.type == 2)
        raw = tf, n_raw++;
    if (bad || n_raw > 1) /* several raw_data fields: the last wins; left to protobuf-c */
      goto refuse;
    if (n_raw == 0 || (size_t)(raw.end - raw.body) < min_len)
      continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      cut *nc = realloc(cuts, cap * sizeof *nc);
      tc_pb_payload *np = nc ? realloc(pl, cap * sizeof *np) : NULL;
      if (nc)
        cuts = nc;
      if (np)
        pl = np;
      if (!nc || !np)
        goto refuse;
    }
    cuts[n] = (cut){f.tag, f.body, f.end, raw.tag, raw.end};
    pl[n++] = (tc_pb_payload){k, (size_t)(raw.body - base), (size_t)(raw.end - raw.body)};
  }
  if (bad || n == 0)
    goto refuse;
  size_t gbody = (size_t)(graph.end - graph.body);
  for (size_t i = 0; i < n; i++)
    gbody -= (size_t)(cuts[i].end - cuts[i].tag) - cut_field(&cuts[i]);
  size_t gtag = (size_t)(graph.body - graph.tag) - varint_size((uint64_t)(graph.end - graph.body));
  size_t total = (size_t)(graph.tag - base) + gtag + varint_size(gbody) + gbody +
                 (size_t)(base + size - graph.end);
  uint8_t *out = malloc(total ? total : 1), *o = out;
  if (!out)
    goto refuse;
  memcpy(o, base, (size_t)(graph.tag - base)); /* the model's fields before the graph */
  o += graph.tag - base;
  memcpy(o, graph.tag, gtag);
  o = put_varint(o + gtag, gbody);
  const uint8_t *from = graph.body;
  for (size_t i = 0; i < n; i++) { /* the graph, each cut initializer rewritten */
    const cut *c = &cuts[i];
    memcpy(o, from, (size_t)(c->tag - from));
    o += c->tag - from;
    size_t tag_len = (size_t)(c->body - c->tag) - varint_size((uint64_t)(c->end - c->body));
    memcpy(o, c->tag, tag_len);
    o = put_varint(o + tag_len, cut_body(c));
    memcpy(o, c->body, (size_t)(c->raw - c->body));
    o += c->raw - c->body;
    memcpy(o, c->raw_end, (size_t)(c->end - c->raw_end));
    o += c->end - c->raw_end;
    from = c->end;
  }
  memcpy(o, from, (size_t)(base + size - from)); /* the rest of the graph and the model */
  o += base + size - from;
  free(cuts);
  *payloads = pl;
  *n_payloads = n;
  *out_size = (size_t)(o - out);
  return out;
refuse:
  free(cuts);
  free(pl);
  return NULL;
}
