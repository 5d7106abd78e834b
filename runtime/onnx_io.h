/* ONNX file import and export (private to the runtime and the compiler). */
#ifndef TC_ONNX_IO_H
#define TC_ONNX_IO_H

#include "ir.h"

/* Parses a serialized ModelProto into a new model. dir: the folder external
 * data is resolved against (NULL refuses external data). verify: run the IR
 * checker. diag must not be NULL. */
tc_status tc_import_bytes(const void *data, size_t size, const char *dir, bool verify,
                          tc_model **out, tc_diag *diag);

/* Messages may nest at most this deep (protobuf's own default limit). */
#define TC_MAX_MESSAGE_DEPTH 100
/* False when a serialized ModelProto nests messages deeper than the limit. */
bool tc_pb_depth_ok(const void *data, size_t size);

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
