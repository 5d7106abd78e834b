/* libtacort: the tacoc runtime. Loads ONNX models (protobuf-c), keeps them in
 * tacoc's IR, and writes them back. Execution arrives with the runtime kernels.
 *
 * Conventions: every fallible function returns a tc_status; on failure the
 * details (file, node, op, reason) are in the tc_diag passed in, readable with
 * tc_diag_message(). Handles are opaque; a handle returned by a function is
 * owned by the caller and released with the matching _free function. */
#ifndef TACORT_H
#define TACORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tc_status {
  TC_STATUS_OK = 0,
  TC_STATUS_IO = 1,      /* a file could not be read or written */
  TC_STATUS_PARSE = 2,   /* bytes are not a valid ONNX protobuf */
  TC_STATUS_INVALID = 3, /* a protobuf that breaks ONNX's rules (undefined names, cycles, ...) */
  TC_STATUS_UNSUPPORTED = 4, /* valid ONNX that tacoc does not handle */
  TC_STATUS_NOMEM = 5,       /* out of memory */
  TC_STATUS_ARG = 6          /* a bad argument from the caller */
} tc_status;

typedef struct tc_diag tc_diag;
typedef struct tc_model tc_model;

/* Returns a static name for a status ("ok", "io", ...). */
const char *tc_status_name(tc_status s);

/* Creates an empty diagnostics record; NULL when out of memory. Free with tc_diag_free. */
tc_diag *tc_diag_new(void);
/* Frees a diagnostics record (NULL is fine). */
void tc_diag_free(tc_diag *d);
/* Status of the last error recorded, TC_STATUS_OK if none. */
tc_status tc_diag_status(const tc_diag *d);
/* The full one-line message "FILE: reason (node 'N', op T)"; owned by d, valid until d changes. */
const char *tc_diag_message(tc_diag *d);

/* Options for loading. Zero-initialise, then set what you need. */
typedef struct tc_load_options {
  /* Folder that external data locations are relative to when loading from
   * bytes; NULL means external data is refused. Ignored for files (their folder is used). */
  const char *external_data_dir;
  /* Skip the structural checks (undefined names, cycles); for tools only. */
  int no_verify;
} tc_load_options;

/* Loads an ONNX model file. opts may be NULL. On success *out owns the model
 * (free with tc_model_free); external data is memory-mapped, not copied. */
tc_status tc_model_load_file(const char *path, const tc_load_options *opts, tc_model **out,
                             tc_diag *diag);
/* Loads an ONNX model from bytes; the bytes are not kept after return (the caller keeps ownership).
 */
tc_status tc_model_load_bytes(const void *data, size_t size, const tc_load_options *opts,
                              tc_model **out, tc_diag *diag);
/* Frees a model and everything it owns (NULL is fine). */
void tc_model_free(tc_model *m);

/* Options for saving. Zero-initialise, then set what you need. */
typedef struct tc_save_options {
  /* Non-NULL: move every tensor of at least external_threshold bytes into this
   * file (relative to the output's folder; "" means "<output file name>.data"). */
  const char *external_data;
  size_t external_threshold; /* 0 means 1024 */
} tc_save_options;

/* Writes the model to path atomically (temporary file, then rename): on failure
 * nothing is left at path. External data files are written beside it. */
tc_status tc_model_save_file(const tc_model *m, const char *path, const tc_save_options *opts,
                             tc_diag *diag);

/* Number of graph inputs, and the name of input i (owned by the model). */
size_t tc_model_num_inputs(const tc_model *m);
const char *tc_model_input_name(const tc_model *m, size_t i);
/* Number of graph outputs, and the name of output i (owned by the model). */
size_t tc_model_num_outputs(const tc_model *m);
const char *tc_model_output_name(const tc_model *m, size_t i);

/* Declared dtype and shape of graph input i (is_input != 0) or output i.
 * dims gets up to max_dims entries; a symbolic or unknown dim is -1 (its
 * name, if any, via tc_model_dim_name). *rank is SIZE_MAX when the rank is
 * unknown and *dtype 0 when the type is not a tensor. TC_STATUS_ARG for an
 * index out of range. Strings returned are owned by the model. */
tc_status tc_model_io_info(const tc_model *m, int is_input, size_t i, int32_t *dtype, size_t *rank,
                           int64_t *dims, size_t max_dims);
/* Name of symbolic dim d of input/output i, or NULL when it has none. */
const char *tc_model_dim_name(const tc_model *m, int is_input, size_t i, size_t d);

/* ---- execution ---- */

#define TC_MAX_DIMS 8

/* A dense row-major tensor exchanged with the caller. dtype uses ONNX's
 * TensorProto.DataType numbers (1 float32, 7 int64, 10 float16, ...). For
 * inputs the caller owns data and keeps it valid during the run. Outputs get
 * data from malloc that the caller releases with tc_ndarray_release. String
 * tensors (dtype 8) hold an array of `char *` (NUL-terminated UTF-8), size
 * being the array's bytes; an output's strings are malloc'd one by one and
 * tc_ndarray_release frees them with the array.
 *
 * Sequences and optionals (ONNX's sequence(...) and optional(...) types):
 * a sequence is dtype TC_DTYPE_SEQUENCE, rank 1, dims[0] its length,
 * dims[1] its elements' dtype, data an array of dims[0] tc_ndarray (each
 * a tensor) and size that array's bytes; an output's elements are released
 * with it. An optional that holds a value is that value; an empty one is
 * dtype TC_DTYPE_NONE with no data. */
#define TC_DTYPE_SEQUENCE 1001
#define TC_DTYPE_NONE 1002
typedef struct tc_ndarray {
  int32_t dtype;
  size_t rank;
  int64_t dims[TC_MAX_DIMS];
  void *data;
  size_t size; /* bytes */
} tc_ndarray;

/* Frees an output's data and zeroes it (NULL or already released is fine). */
void tc_ndarray_release(tc_ndarray *t);

typedef struct tc_session tc_session;

/* Prepares m for execution: picks a kernel for every node and decodes the
 * initializers. Refuses (TC_STATUS_UNSUPPORTED, naming the node and op) any
 * op, opset or attribute the runtime does not implement. The session borrows
 * m, which must outlive it. A session may run from several threads at once. */
tc_status tc_session_new(const tc_model *m, tc_session **out, tc_diag *diag);
/* Options of tc_session_new_ex; zero-initialize, then set what you need. */
typedef struct tc_session_options {
  /* Run the generated kernels a model optimized with `tacoc optimize
   * --codegen cpu` names (native code from a library beside the model; see
   * docs/ARCHITECTURE.md). Only when the library's SHA-256 matches the
   * model's record. Off by default: native code from a model runs only when
   * the caller trusts the model. */
  int allow_native_code;
  /* Where the session runs: TC_TARGET_CPU (0, the default) or
   * TC_TARGET_CUDA, which loads libtacort's CUDA backend
   * (libtacort_cuda.so, from $TACORT_CUDA_LIBRARY, beside the program or
   * libtacort, or the loader's path) and runs the nodes it supports on GPU
   * `device`; tc_session_new_ex fails with TC_STATUS_UNSUPPORTED, saying
   * why, when the backend or a device is missing. */
  int target;
  int device;
  /* CUDA: time up to this many of cuBLASLt's candidate algorithms for the
   * first GEMM of each shape and keep the fastest for the session's later
   * GEMMs of that shape (0, the default: cuBLASLt's first heuristic
   * choice, no measuring). */
  int cuda_gemm_search;
  int reserved[4];
} tc_session_options;
enum { TC_TARGET_CPU = 0, TC_TARGET_CUDA = 1 };
/* tc_session_new with options (NULL: defaults). A kernel library that is
 * missing, does not match or does not load is not an error: the session
 * runs libtacort's own kernels and tc_session_native_note says why. */
tc_status tc_session_new_ex(const tc_model *m, const tc_session_options *opts, tc_session **out,
                            tc_diag *diag);
/* Number of nodes the session runs with generated kernels. */
size_t tc_session_native_nodes(const tc_session *s);
/* Why a model's kernel library (or, for a CUDA session, its CUDA kernel
 * library) was not used ("" when it was, or when the model names none or
 * native code is not allowed). Owned by the session. */
const char *tc_session_native_note(const tc_session *s);
/* Number of nodes a CUDA session places on the GPU (0 for CPU sessions). */
size_t tc_session_gpu_nodes(const tc_session *s);
/* The GPU a CUDA session runs on, e.g. "NVIDIA H100 80GB HBM3, sm_90, ..."
 * ("" for CPU sessions). Owned by the session. */
const char *tc_session_device(const tc_session *s);
/* What a CUDA session's GEMM search did so far: GEMM shapes measured, the
 * sum of their chosen algorithms' median times and of cuBLASLt's first
 * heuristic choices' (microseconds). Zeros for other sessions. */
void tc_session_gpu_gemm_search(const tc_session *s, size_t *shapes, double *chosen_us,
                                double *first_us);
/* Number of QDQ MatMuls and convolutions (DequantizeLinear into MatMul or
 * Conv) the session runs as integer kernels on the quantized operands. */
size_t tc_session_qdq_nodes(const tc_session *s);
/* Number of Adds (and Sums of two), Concats and MaxPools of DequantizeLinear
 * outputs it runs on the quantized operands, and of QuantizeLinear nodes whose
 * quantization runs inside the integer kernel before them (that kernel writes
 * 8 bits). */
size_t tc_session_qdq_adds(const tc_session *s);
size_t tc_session_qdq_concats(const tc_session *s);
size_t tc_session_qdq_pools(const tc_session *s);
size_t tc_session_qdq_fused(const tc_session *s);
/* Number of values the session keeps in channels-last (NHWC) order between
 * convolutions (docs/ARCHITECTURE.md; 0 with TACORT_LAYOUT=plain, for CUDA
 * sessions and when the reference kernels were asked for). Outputs are
 * always returned in the model's own order. */
size_t tc_session_channels_last_values(const tc_session *s);
/* Bytes of the memory plan made when the session was created, from shape
 * inference over the declared input shapes (docs/ARCHITECTURE.md); 0 when
 * the sizes are known only once a run has traced them (symbolic or
 * data-dependent dims). */
size_t tc_session_static_plan_bytes(const tc_session *s);
/* Nodes computed once when the session was created because all their
 * inputs are constant (their outputs are kept as constants; runs pass over
 * them). CPU sessions; TACORT_NO_PRECOMPUTE=1 turns it off. */
size_t tc_session_precomputed_nodes(const tc_session *s);
/* Nodes the model asks to run with a tuned algorithm choice (convolutions
 * "winograd" / "direct", float32 MatMul "packed" / "sgemm": metadata the
 * autotuner writes, docs/ARCHITECTURE.md); MatMuls on packed weights in
 * *packed (may be NULL). */
size_t tc_session_algo_nodes(const tc_session *s, size_t *packed);
/* Frees a session (NULL is fine). */
void tc_session_free(tc_session *s);
/* Runs the model. inputs[i] is the graph input named names[i]; inputs with an
 * initializer may be left out. outputs must have room for
 * tc_model_num_outputs() entries, filled in graph output order; on failure
 * none is left allocated. Wrong dtype, rank or fixed dim, unknown or missing
 * inputs are TC_STATUS_ARG. */
tc_status tc_session_run(tc_session *s, size_t n_inputs, const char *const *names,
                         const tc_ndarray *inputs, tc_ndarray *outputs, tc_diag *diag);

/* Per-node profiling. While on, every kernel call of the session's runs
 * adds its wall time to its node's total (concurrent runs add up). Turning
 * it on clears the totals. */
void tc_session_set_profiling(tc_session *s, int on);
typedef struct tc_profile_entry {
  const char *node;    /* node name (owned by the model; may be "") */
  const char *op_type; /* owned by the model */
  const char *output;  /* the node's first output's name, or "" (owned by the model) */
  int64_t calls;
  int64_t ns; /* total wall time of the node's kernel calls */
} tc_profile_entry;
/* Fills up to cap entries, one per node that ran at least once, in graph
 * order; returns how many nodes have entries (which may exceed cap). */
size_t tc_session_profile(const tc_session *s, tc_profile_entry *out, size_t cap);

/* Sets how many threads the kernels of runs started from the calling thread
 * may use (default: all cores, or the count the autotuner recorded in the
 * model for a machine with this many cores). n <= 0 leaves it unchanged. */
void tc_set_num_threads(int n);
/* The thread count runs of s started from the calling thread use. */
int tc_session_threads(const tc_session *s);

/* The library version string, e.g. "0.1.0". */
const char *tc_version(void);

#ifdef __cplusplus
}
#endif
#endif
