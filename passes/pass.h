/* ModelFlow passes: the interface every pass in passes/ implements, the
 * helpers they share, and the list of passes the pipeline knows.
 *
 * A pass is one function over one graph. The pass manager
 * (compiler/pipeline.c) runs it on the main graph and then on every subgraph
 * (If/Loop/Scan bodies), keeps the node order topological afterwards, verifies
 * the IR and records statistics. A pass changes the graph only where its
 * pattern matches exactly and leaves it untouched otherwise; it counts each
 * rewrite with tc_pass_count, and with --explain says why a near match was
 * rejected with tc_pass_explain. */
#ifndef TC_PASS_H
#define TC_PASS_H

#include <stdio.h>

#include "ir.h"
#include "shapes.h"

/* A calibrated range of a float tensor (quantize-static). */
typedef struct tc_qrange {
  const char *name;
  double lo, hi;
} tc_qrange;

typedef struct tc_pass_options {
  int level;         /* -O level the pipeline was picked for */
  bool compat_ort;   /* --compat ort: com.microsoft fused ops instead of ai.tacoc */
  size_t fold_limit; /* largest constant (bytes) that folding may create */
  FILE *explain;     /* --explain: near misses are written here, else NULL */
  /* int8 quantization (or --precision auto, which may choose it) follows the
   * -O pipeline: fusions that would hide a MatMul from the quantizers
   * (fuse-gemm) leave it alone. */
  bool int8_follows;
  /* convert-half (passes/convert_half.c): the target type, TC_DTYPE_F16 or
   * TC_DTYPE_BF16 (0 means float16); graph inputs/outputs stay float32 with
   * keep_io_types; nodes whose first output is named in half_keep (NULL-
   * terminated, may be NULL) stay float32; half_note, when set, is told
   * every node the pass converts (why NULL) and every float32 node it
   * leaves in float32 (why says why). quantize-dynamic
   * (passes/quantize_dynamic.c) reads half_keep and half_note the same way
   * for the MatMuls it quantizes or keeps. */
  int32_t half_type;
  bool keep_io_types;
  const char *const *half_keep;
  void (*half_note)(void *ctx, const tc_node *n, const char *why);
  void *half_note_ctx;
  /* quantize-static (passes/quantize_static.c): calibrated ranges of the
   * activations it may quantize; it reads half_keep and half_note too. */
  const tc_qrange *qranges;
  size_t n_qranges;
  /* static int8's full QDQ form (the default; off with --qdq-inputs-only):
   * each quantized MatMul / convolution output with a calibrated range gets
   * its own QuantizeLinear / DequantizeLinear pair too (quantize-static says
   * which: ONNX Runtime forms QLinearConv only where a QuantizeLinear follows),
   * and fuse-conv-activation leaves residual Adds out of convolutions (so
   * that the convolution's output is there to pair, and ONNX Runtime makes
   * QLinearAdd of the Add) */
  bool qdq_outputs;
} tc_pass_options;

#define TC_PASS_MAX_KINDS 16

typedef struct tc_pass_ctx {
  tc_model *model;
  const tc_pass_options *opt;
  tc_diag *diag;
  const char *pass; /* name of the running pass */
  struct {
    const char *kind; /* static string */
    size_t count;
  } rewrites[TC_PASS_MAX_KINDS];
  size_t n_kinds;
  char why[192]; /* scratch for reasons given back to the caller */
} tc_pass_ctx;

typedef tc_status (*tc_pass_fn)(tc_pass_ctx *c, tc_graph *g);

/* X(function suffix, name on the command line, one-line summary) */
#define TC_PASS_LIST(X)                                                                            \
  X(inline_functions, "inline-functions", "model-local function calls replaced by their bodies")   \
  X(constants_to_initializers, "constants-to-initializers", "Constant nodes become initializers")  \
  X(eliminate_identity, "eliminate-identity",                                                      \
    "Identity, inference-mode Dropout, no-op Cast and one-input Sum removed, two-input Sum as "    \
    "Add")                                                                                         \
  X(fold_constants, "fold-constants", "nodes with constant inputs evaluated with libtacort")       \
  X(fold_shapes, "fold-shapes",                                                                    \
    "shape computations (Shape/Gather/Concat chains, Reshape targets) to constants")               \
  X(fold_chains, "fold-chains",                                                                    \
    "Transpose/Reshape/Unsqueeze-Squeeze chains collapsed, no-op Reshapes removed")                \
  X(eliminate_common, "eliminate-common", "identical nodes on identical inputs merged")            \
  X(eliminate_dead, "eliminate-dead", "unused nodes, initializers and value_info removed")         \
  X(fuse_conv_bn, "fuse-conv-bn", "BatchNormalization after Conv folded into its weights")         \
  X(fuse_conv_affine, "fuse-conv-affine",                                                          \
    "per-channel Add/Mul after Conv or BatchNormalization folded into it, zero Pad into Conv")     \
  X(fuse_hard_activations, "fuse-hard-activations",                                                \
    "Clip/Div/Mul forms of HardSigmoid and HardSwish to the ops")                                  \
  X(fuse_conv_activation, "fuse-conv-activation",                                                  \
    "Conv + activation to one op (ai.tacoc with a function, or com.microsoft.FusedConv)")          \
  X(fuse_gemm, "fuse-gemm", "2-D MatMul + Add, and Gemm + constant Add or Mul, to one Gemm")       \
  X(fuse_layernorm, "fuse-layernorm", "decomposed LayerNorm to LayerNormalization")                \
  X(fuse_rmsnorm, "fuse-rmsnorm", "decomposed RMSNorm to RMSNormalization")                        \
  X(fuse_rotary, "fuse-rotary", "rotate_half rotary position embeddings to RotaryEmbedding")       \
  X(fuse_embed_layernorm, "fuse-embed-layernorm",                                                  \
    "word/position/segment lookups + LayerNorm to ai.tacoc.EmbedLayerNormalization")               \
  X(fuse_skip_layernorm, "fuse-skip-layernorm",                                                    \
    "residual Add + LayerNormalization to ai.tacoc.SkipLayerNormalization (with a function)")      \
  X(fuse_groupnorm, "fuse-groupnorm",                                                              \
    "Reshape/InstanceNormalization/Reshape GroupNorm to GroupNormalization")                       \
  X(fuse_gelu, "fuse-gelu", "erf and tanh GELU forms to Gelu")                                     \
  X(fuse_attention, "fuse-attention", "multi-head self-attention subgraphs to Attention")          \
  X(convert_half, "convert-half",                                                                  \
    "float32 weights and activations to float16/bfloat16, sensitive ops kept in float32")          \
  X(quantize_dynamic, "quantize-dynamic",                                                          \
    "float32 MatMuls with constant weights to DynamicQuantizeLinear + MatMulInteger (int8)")       \
  X(quantize_static, "quantize-static",                                                            \
    "MatMuls and convolutions to QDQ int8 with calibrated activation ranges")

#define X(fn, name, doc) tc_status tc_pass_##fn(tc_pass_ctx *c, tc_graph *g);
TC_PASS_LIST(X)
#undef X

typedef struct tc_pass_def {
  const char *name;
  tc_pass_fn run;
  const char *doc;
} tc_pass_def;

/* Every pass, in list order; *n gets the count. */
const tc_pass_def *tc_pass_all(size_t *n);
/* The pass called name, or NULL. */
const tc_pass_def *tc_pass_find(const char *name);

/* ---- helpers for passes (passes/util.c) ---- */
/* Adds n rewrites of kind (a static string) to the running pass's statistics. */
void tc_pass_count(tc_pass_ctx *c, const char *kind, size_t n);
/* With --explain, writes "PASS: node 'N' (op T): reason" for a rejected candidate. */
void tc_pass_explain(tc_pass_ctx *c, const tc_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The single node reading v, when v has exactly one use, is not a graph
 * output and that use is in v's own graph; NULL otherwise. */
tc_node *tc_single_consumer(const tc_value *v);
/* The producer of v when it is op op_type (default domain), else NULL. */
tc_node *tc_producer_op(const tc_value *v, const char *op_type);
/* For a binary node n (Add, Mul, ...) with one constant input: sets *other to
 * the non-constant input and returns the constant one; NULL otherwise. */
const tc_tensor *tc_binary_const(const tc_node *n, tc_value **other);
/* Value of a constant that holds one number (any numeric dtype, any shape
 * with one element). False when t is not such a constant. */
bool tc_const_scalar(const tc_tensor *t, double *out);
/* True when every element of constant t equals v within tol. */
bool tc_const_all_near(const tc_tensor *t, double v, double tol);
/* An int list argument that moved from attribute to input in some opset
 * (axes of Unsqueeze/Squeeze/Reduce*, Slice's starts/ends/axes): attribute
 * attr when n has it, else the constant input in slot; into a new heap array
 * (the caller frees *out). The count, or -1 when neither is there or the
 * input is not constant. */
ptrdiff_t tc_pass_ints_arg(const tc_node *n, const char *attr, size_t slot, int64_t **out);
/* A Slice of one axis with step 1 and a constant start (starts/ends/axes/
 * steps as inputs or, before opset 10, attributes; no axes means axis 0): its
 * axis, start, and end (*end_known false when the end is computed). */
bool tc_pass_slice_1d(const tc_node *sl, int64_t *axis, int64_t *start, int64_t *end,
                      bool *end_known);
/* Elements of a float constant (f32/f64/f16/bf16) as float32 into a new
 * heap array; returns the count or -1. The caller frees *out. */
ptrdiff_t tc_const_floats(const tc_tensor *t, float **out);
/* A new initializer of dtype in g named after base (made unique), holding
 * data packed for the given dims (copied). NULL on OOM. */
tc_value *tc_pass_new_const(tc_graph *g, const char *base, int32_t dtype, const void *data,
                            size_t rank, const int64_t *dims);
/* A new float32 initializer in g named after base, holding count values with
 * the given dims. NULL on OOM. */
tc_value *tc_pass_new_const_f32(tc_graph *g, const char *base, const float *data, size_t rank,
                                const int64_t *dims);
/* Same for int64 data. */
tc_value *tc_pass_new_const_i64(tc_graph *g, const char *base, const int64_t *data, size_t rank,
                                const int64_t *dims);
/* Removes node n whose output `out` equals its input `in` (Identity-like),
 * rewiring readers of out to in. When out is a graph output, in's producer
 * takes over out instead; when that is impossible the node stays. True when
 * the node was removed. */
bool tc_pass_bypass(tc_node *n, tc_value *in, tc_value *out);
/* Makes the default ONNX domain at least version v when the graph allows it
 * (see passes/opset.c): true if the model now imports v or higher; otherwise
 * false with the reason in *why. */
bool tc_pass_require_opset(tc_pass_ctx *c, int64_t v, const char **why);
/* ---- model-local functions for fused ops without a standard form ---- */
/* Starts the model-local function domain.name: formal inputs and outputs
 * (NULL-terminated name lists), attribute parameters (NULL-terminated), and
 * an import of the default domain at the model's opset. Returns NULL with
 * *exists set when the model already has it, NULL on OOM otherwise. */
tc_function *tc_pass_begin_function(tc_pass_ctx *c, const char *domain, const char *name,
                                    const char *const *inputs, const char *const *outputs,
                                    const char *const *attrs, bool *exists);
/* Appends op(inputs) -> outputs (names of body values; outputs are created
 * unless they are the function's formal outputs) with n_attrs attribute
 * slots to f's body. "" in inputs leaves that optional input out. NULL on OOM. */
tc_node *tc_pass_fn_node(tc_function *f, const char *op, const char *const *inputs,
                         const char *const *outputs, size_t n_attrs);
/* Makes attribute slot i of n a reference to the caller's attribute name. */
void tc_pass_ref_attr(tc_node *n, size_t i, const char *name, int type);

/* The element dtype of v when known (typed input, initializer, or inferred), else 0. */
int32_t tc_value_dtype(const tc_value *v);
/* Records an out-of-memory failure in the pass context and returns its status. */
tc_status tc_pass_nomem(tc_pass_ctx *c);
/* Sets v's type to a tensor of elem with like's shape (when like has one). */
int tc_pass_set_type_like(tc_value *v, const tc_value *like, int32_t elem);
/* True for the convolutions quantize-static quantizes: Conv, and tacoc's
 * ai.tacoc Conv<Act> / ConvAdd<Act> (not ConvTranspose). */
bool tc_pass_is_conv(const tc_node *n);
/* ---- the precision passes (convert-half's options, quantize-*) ---- */
/* Tells tc_pass_options.half_note of candidate n: converted (why NULL) or
 * kept in float32 (why says why; also an --explain line). */
void tc_pass_half_note(tc_pass_ctx *c, const tc_node *n, const char *why);
/* The checks the int8 passes share, after their own: n is not on the keep
 * list, the opset (*opset_ok, else why in opset_why) allows the rewrite and
 * the constant weight wt is finite. False (half_note told why) when n must
 * stay float32; false with *oom set on allocation failure. */
bool tc_pass_int8_ok(tc_pass_ctx *c, const tc_node *n, const tc_tensor *wt, bool opset_ok,
                     const char *opset_why, bool *oom);

/* The shape conditions of the int8 passes for MatMul n with activation
 * shape xs and constant weight wt [K, N]: the activation's rank is known to
 * be at least 2, and K and N are at least 16 (smaller products gain nothing
 * from int8). False (half_note told why) otherwise. */
bool tc_pass_int8_matmul_fits(tc_pass_ctx *c, const tc_node *n, const tc_shape *xs,
                              const tc_tensor *wt);

/* A default-domain Gemm n = alpha 1, transA 0, B a constant float32
 * matrix of at least 16 x 16 (tc_pass_int8_matmul_fits' limit), C absent
 * or with beta 1 (a classifier's Linear), or tacoc's GemmRelu of one:
 * rewritten as MatMul(A, B or its transpose), then Add(., C) with C, then
 * Relu for GemmRelu, so that the int8 passes quantize it as the MatMul it
 * is. Returns the MatMul, or NULL when
 * n is not such a Gemm (nothing changed); NULL with *oom set when memory
 * ran out. */
tc_node *tc_pass_gemm_as_matmul(tc_pass_ctx *c, tc_graph *g, tc_node *n, bool *oom);
/* Whether n is a Gemm or tacoc's GemmRelu (the ops tc_pass_gemm_as_matmul
 * takes; it checks the rest). */
bool tc_pass_is_gemm(const tc_node *n);

#endif
