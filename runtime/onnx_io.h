/* ONNX file import and export (private to the runtime and the compiler). */
#ifndef TC_ONNX_IO_H
#define TC_ONNX_IO_H

#include "ir.h"

/* Parses a serialized ModelProto into a new model. dir: the folder external
 * data is resolved against (NULL refuses external data). verify: run the IR
 * checker. mapped: data is a private read-only mapping of a file, whose
 * pages the import may drop (madvise) once it has copied them. diag must not
 * be NULL. */
tc_status tc_import_bytes(const void *data, size_t size, const char *dir, bool verify, bool mapped,
                          tc_model **out, tc_diag *diag);

/* Messages may nest at most this deep (protobuf's own default limit). */
#define TC_MAX_MESSAGE_DEPTH 100
/* False when a serialized ModelProto nests messages deeper than the limit. */
bool tc_pb_depth_ok(const void *data, size_t size);

/* A raw_data payload cut out by tc_pb_cut_payloads: the main graph's
 * initializer number init (in file order) has its bytes at data + off. */
typedef struct tc_pb_payload {
  size_t init, off, len;
} tc_pb_payload;
/* A malloc'd copy of the serialized ModelProto data without the raw_data
 * fields of at least min_len bytes of its graph's initializers (*out_size
 * bytes), and where those payloads are (*payloads, malloc'd, *n_payloads).
 * NULL when there is none to cut, when the layout is not the plain one (the
 * graph given twice, a tensor with two raw_data fields, anything malformed:
 * protobuf-c then unpacks data as it is and decides) or without memory. */
uint8_t *tc_pb_cut_payloads(const void *data, size_t size, size_t min_len, tc_pb_payload **payloads,
                            size_t *n_payloads, size_t *out_size);

/* True when an external data location stays inside the model's folder:
 * relative, and without a ".." component. */
int tc_external_location_ok(const char *loc);

/* Payload of t as packed little-endian bytes (ONNX raw_data layout), whatever
 * field it was stored in. *out points into t's buffer when no conversion is
 * needed (*owned = NULL), or to a malloc'd copy that the caller frees (*owned
 * set to the same pointer). Strings have no raw form: TC_STATUS_UNSUPPORTED. */
tc_status tc_tensor_raw_bytes(const tc_tensor *t, const void **out, size_t *len, void **owned,
                              tc_diag *diag);

struct tc_rt_tensor;
/* Parses a serialized TensorProto (a .pb file of the ONNX test data) into
 * out, with memory from a. *name (may be NULL) gets its name, in a. */
tc_status tc_rt_from_tensor_proto(const void *data, size_t size, tc_arena *a,
                                  struct tc_rt_tensor *out, const char **name, tc_diag *diag);

/* Default size in bytes from which --external-data moves a tensor out. */
#define TC_EXTERNAL_THRESHOLD_DEFAULT 1024
/* Tensors of at least this many bytes start on a 64 KiB boundary in an
 * external data file (so they can be mapped page- and huge-page-aligned). */
#define TC_EXTERNAL_ALIGN_LARGE (1u << 20)
#define TC_EXTERNAL_ALIGN 65536u
#define TC_EXTERNAL_ALIGN_SMALL 64u

#endif
