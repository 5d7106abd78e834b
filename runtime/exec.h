/* Executor internals shared by session.c and control.c. */
#ifndef TC_EXEC_H
#define TC_EXEC_H

#include <pthread.h>

#include "kernel.h"
#include "native.h"

typedef struct tc_plan tc_plan;
typedef struct tc_cuda_state tc_cuda_state;
typedef struct tc_cuda_run tc_cuda_run;
typedef struct tc_qdq_bind tc_qdq_bind;

/* Sees every main-graph node's inputs and outputs after its kernel ran (the
 * tuner captures real operands this way). */
typedef void (*tc_node_observer)(void *ctx, const tc_node *n, const tc_rt_tensor *const *in,
                                 size_t n_in, const tc_rt_tensor *out, size_t n_out);

struct tc_session {
  const tc_model *m;             /* the caller's model, or own_model */
  tc_model *own_model;           /* the main graph with function calls inlined, or NULL */
  tc_arena *arena;               /* decoded initializers, kernel table */
  const tc_kernel_def **kernels; /* by node id; NULL for control-flow nodes */
  int64_t *opsets;               /* by node id */
  tc_rt_tensor **consts;         /* by value id: decoded initializers */
  pthread_mutex_t lock;          /* guards plans and the buffer pool */
  tc_plan *plans;                /* memory plans by input signature (plan.c) */
  void *pool[8];                 /* run buffers kept for reuse */
  size_t pool_size[8];
  tc_arena *arenas[8];       /* run arenas kept (reset) for reuse: no page faults on warm runs */
  int64_t *prof;             /* by node id: calls, ns pairs; NULL while profiling is off */
  int64_t *prof_table;       /* the totals, kept after profiling is turned off */
  tc_native_lib *native_lib; /* the model's kernel library, when loaded */
  tc_cg_row_fn *native_fn;   /* by node id: generated kernel, or NULL */
  const tc_cg_spec **native_spec; /* by node id */
  size_t native_count;
  /* Bound elementwise chains (kind ewchain): by node id, the chain its root
   * runs (NULL elsewhere), and for the chain's other nodes the root's id + 1
   * (they run only when the kernel does not fit the run's tensors). */
  size_t static_plan_bytes;   /* the plan made at creation from shape inference */
  size_t planned_runs;        /* runs that took their memory from a plan (atomic) */
  unsigned char *precomputed; /* by node id: ran when the session was made (constant inputs) */
  size_t n_precomputed;
  int threads; /* TC_THREADS_KEY's count when it applies to this machine, else 0 */
  tc_ew_chain **chains;
  uint32_t *chain_root;
  char native_note[512];
  unsigned char *conv_algo; /* by node id: tc_conv_algo asked by the model, or NULL: all auto */
  unsigned char *gemm_algo; /* by node id: tc_gemm_algo likewise */
  tc_qdq_bind **qdq;        /* by node id: the integer kernel a QDQ MatMul/Conv runs (qdq.c) */
  bool *qdq_skip;           /* by node id: a DequantizeLinear no one needs run */
  size_t qdq_count;         /* bound MatMuls and convolutions */
  size_t qdq_adds;          /* bound Adds */
  size_t qdq_concats;       /* bound Concats */
  size_t qdq_pools;         /* bound MaxPools */
  size_t qdq_fused;         /* QuantizeLinear nodes run by the bound node before them */
  tc_node_observer observe; /* called after every main-graph kernel, when set */
  void *observe_ctx;
  tc_cuda_state *cuda; /* the CUDA target's state (cuda_exec.h), or NULL: CPU */
  /* Channels-last values (layout.c): by value id, whether its data are in
   * NHWC order; by node id, how a node touching one runs (0: it touches
   * none). Both NULL: everything plain. */
  bool *nhwc;
  unsigned char *layout;
  size_t layout_values;
};

/* One run's state: every value's tensor by value id (outer-scope values are
 * read from here by subgraphs), and the arena all run memory comes from. */
typedef struct tc_run {
  const tc_session *s;
  tc_rt_tensor **vals;
  tc_arena *a;
  tc_diag *diag;
  const tc_plan *plan; /* NULL: unplanned run */
  unsigned char *base; /* the plan's buffer */
  tc_cuda_run *cu;     /* device values of a CUDA session's run, or NULL */
} tc_run;

/* Writes the input-shape signature of a run into sig (up to cap entries);
 * returns its length, 0 when it does not fit. */
size_t tc_plan_signature(const tc_session *s, tc_rt_tensor *const *vals, int64_t *sig, size_t cap);
const tc_plan *tc_plan_find(const tc_plan *list, const int64_t *sig, size_t n);
/* Builds a plan from a finished unplanned run's tensors; NULL on OOM. */
tc_plan *tc_plan_build(const tc_session *s, tc_rt_tensor *const *vals, const int64_t *sig,
                       size_t n_sig);
size_t tc_plan_total(const tc_plan *p);
const int64_t *tc_plan_offsets(const tc_plan *p);
const size_t *tc_plan_sizes(const tc_plan *p);
void tc_plan_free_list(tc_plan *p);
/* Makes next follow p in a plan list. */
void tc_plan_link(tc_plan *p, tc_plan *next);
/* Number of plans in a list. */
size_t tc_plan_count(const tc_plan *list);

/* A session that runs the generated kernels of the library at lib_path
 * (checked against the model's recorded SHA-256 like a library beside the
 * model); for the tuner, before the library is in its final place. */
tc_status tc_session_new_with_kernels(const tc_model *m, const char *lib_path, tc_session **out,
                                      tc_diag *diag);

/* Binds the session's QDQ MatMuls and convolutions to integer kernels and
 * marks the DequantizeLinear nodes they make unneeded (qdq.c); on OOM binds
 * nothing. */
void tc_qdq_bind_session(tc_session *s);
/* Releases the QDQ group node n belongs to (a bound node or the
 * QuantizeLinear that took one over): its nodes run as written again (a
 * generated chain kernel of the model's takes them). */
void tc_qdq_release(tc_session *s, const tc_node *n);
/* Whether main-graph node n reads input slot through its QDQ binding. */
bool tc_qdq_reads(const tc_session *s, const tc_node *n, int slot);
/* The 8-bit values the session's QDQ groups may keep channels-last, marked
 * in cand (runtime/layout.c calls it before its choice; qdq.c); then, on
 * each round of that choice, those of them whose readers cannot take them
 * so are dropped (a DequantizeLinear that runs needs its float32 output
 * channels-last): true when any was. */
void tc_qdq_layout_mark(const tc_session *s, bool *cand);
bool tc_qdq_layout_prune(const tc_session *s, bool *cand);
/* n is a bound 2-D QDQ convolution with a float32 output of its own (no
 * QuantizeLinear took it over, no summed Z): its output may be
 * channels-last like a float convolution's (runtime/layout.c). */
bool tc_qdq_float_conv(const tc_session *s, const tc_node *n);
/* n is a bound Concat over channels with a float32 output of its own (no
 * QuantizeLinear took it over), and, unless cand is NULL, every 8-bit
 * input is channels-last in cand: its output may be channels-last. */
bool tc_qdq_float_concat(const tc_session *s, const tc_node *n, const bool *cand);
/* u is a bound 2-D QDQ convolution (no summed Z) reading its quantized X
 * at slot: it takes that 8-bit value channels-last. */
bool tc_qdq_conv_x(const tc_session *s, const tc_node *u, int slot);
/* The node whose kernel runs for n: a QuantizeLinear's bound source node
 * when it took that over (qdq.c), else n (profiles count the time there). */
const tc_node *tc_qdq_runs(const tc_session *s, const tc_node *n);
/* Runs bound node n; in holds its inputs from the run (NULL where skipped). */
tc_status tc_qdq_run(const tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                     const tc_rt_tensor *const *in, tc_rt_tensor *out);

/* The node of g called name (metadata names nodes), or NULL. */
const tc_node *tc_graph_node_named(const tc_graph *g, const char *name);
/* The model's metadata_props value for key, or NULL. */
const char *tc_model_meta(const tc_model *m, const char *key);
/* Reads the whole file at path (malloc'd, one spare byte); NULL on failure. */
unsigned char *tc_read_file(const char *path, size_t *size);

/* Runs the nodes of g (a main graph or subgraph whose inputs are bound). */
tc_status tc_run_graph(tc_run *r, const tc_graph *g);
/* True for If, Loop and Scan, which the executor runs itself. */
bool tc_is_control_op(const tc_node *n);
/* Load-time check of a control-flow node (opset, attributes). */
tc_status tc_control_check(const tc_node *n, int64_t opset, tc_diag *diag);
/* Runs a control-flow node: inputs in, outputs written to out. */
tc_status tc_run_control(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                         tc_rt_tensor *out);

/* Whether the calling thread chose its thread count (tc_set_num_threads). */
bool tc_threads_explicit(void);

#endif
