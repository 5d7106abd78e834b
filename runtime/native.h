/* Generated kernels ("native code" that travels with a model).
 *
 * tacoc's CPU code generator (codegen/cpu) builds fused row kernels for the
 * memory-bound nodes of a model and links them into a kernel library, an ELF
 * shared object written beside the optimized model. The model names the
 * library and its SHA-256 in metadata_props, and binds nodes to kernels:
 *
 *   ai.tacoc.kernels          = "<file name of the library, in the model's folder>"
 *   ai.tacoc.kernels.sha256   = "<64 lowercase hex digits>"
 *   ai.tacoc.kernels.features = "avx512f,avx2,fma,..." (the x86 extensions
 *                               the code may use; absent when unknown)
 *   ai.tacoc.kernel:<node>    = "<spec>"   (one entry per bound node)
 *
 * A spec is space-separated key=value pairs, e.g.
 *   "kind=layernorm flags=7 cols=768 width=16 unroll=1 sym=tck_3"
 * kind: bias_act | layernorm | softmax | ewchain | attention; act: TC_CG_ACT_*; flags: TC_CG_F_*;
 * cols: the row length the kernel was generated for; width / unroll: the
 * vector width (floats) and vectors per loop step it was generated with;
 * threads (optional, default 0): 1 runs every row on the calling thread
 * instead of splitting rows over the thread pool; dtype (optional, default
 * 1): the ONNX element type of rows and parameters (1 float32; CUDA kernels
 * also 10 float16 and 16 bfloat16, computing in float32); sym: the exported
 * function, of type tc_cg_row_fn.
 *
 * An ewchain kernel computes a chain of float32 elementwise nodes in one
 * pass (tc_ew_chain_of says which nodes: the bound node and the producers
 * before it whose outputs only the chain reads); its spec adds
 * prog=<16 hex digits> (tc_ew_prog's hash: the ops, their operands and
 * attributes) and ins=<one letter per chain input: F the output's shape,
 * R a row of cols elements broadcast over rows, S a single element>, and
 * when an input or the output is not float32 (a chain with per-tensor
 * DequantizeLinear / QuantizeLinear) types=<f|b|B per input: float32, int8,
 * uint8> out=<f|b|B>. The other nodes of a bound chain do not run when the
 * kernel fits.
 *
 * An attention kernel computes ONNX Attention (3-D Q, K, V, an optional
 * float32 additive mask, optionally causal) for one (batch, head) pair per
 * row; its spec adds q=<query length> d=<head size> dv=<value head size>
 * h=<query heads> kvh=<key/value heads>, with cols the number of keys.
 *
 * libtacort loads the library only when the session options allow native
 * code, the file's SHA-256 matches, this CPU has every listed feature it
 * can check, and it loads; otherwise (and for any node
 * whose run-time shapes or dtypes do not fit the spec) the node runs with
 * libtacort's own kernel. The graph itself is unchanged standard ONNX, so
 * other runtimes ignore the kernels. */
#ifndef TC_NATIVE_H
#define TC_NATIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel.h"

/* A generated kernel: processes rows [lo, hi) of [rows, cols] float32
 * tensors. in/out slots depend on the kind:
 *   bias_act:  in {x, bias or NULL}            out {y}
 *   layernorm: in {x, skip or NULL, gamma, beta or NULL}  out {y, sum or NULL}
 *   softmax:   in {x}                          out {y}
 * params[0] is the epsilon of layernorm. */
/*   ewchain:   in {the chain's inputs, in tc_ew_chain_of's order} out {y}
 *   attention: in {Q, K, V, mask or NULL, (const float *) of int64_t[3]:
 *              the mask's element strides over batch, head and query (0
 *              where broadcast)}  out {Y}; a row is one (batch, head) pair
 *              (rows = B * q_heads); params[0] is the scale. */
typedef void (*tc_cg_row_fn)(const float *const *in, float *const *out, const float *params,
                             int64_t lo, int64_t hi);

enum {
  TC_CG_BIAS_ACT = 1,
  TC_CG_LAYERNORM = 2,
  TC_CG_SOFTMAX = 3,
  TC_CG_EWCHAIN = 4,
  TC_CG_ATTENTION = 5
};
enum { TC_CG_ACT_NONE = 0, TC_CG_ACT_GELU_ERF = 1, TC_CG_ACT_GELU_TANH = 2 };
enum {
  TC_CG_F_BIAS = 1,   /* bias_act: a bias row is added before the activation */
  TC_CG_F_SKIP = 2,   /* layernorm: x + skip is normalized */
  TC_CG_F_BETA = 4,   /* layernorm: beta is added */
  TC_CG_F_SUM = 8,    /* layernorm: x + skip is also written to out[1] */
  TC_CG_F_RMS = 16,   /* layernorm: RMS normalization (no mean, no beta) */
  TC_CG_F_MASK = 1,   /* attention: a float32 additive mask (last dim the keys) */
  TC_CG_F_CAUSAL = 2, /* attention: key j > query i is masked out */
};

/* Attention kernels are generated for short sequences: the keys of one
 * head, transposed, and a block of query rows' scores stay in the kernel's
 * stack frame. */
#define TC_CG_ATT_MAX_KEYS 1024
#define TC_CG_ATT_MAX_KT 32768 /* head dim x keys (rounded up to the width), floats */

/* An elementwise chain as a straight-line program over one element. Operand
 * refs: 0..n_in-1 are the chain's inputs, n_in + k the result of ops[k];
 * -1 is an absent operand (Clip's bounds). The last op's result is the
 * output. */
#define TC_EW_MAX_OPS 32
#define TC_EW_MAX_IN 8
enum {
  TC_EW_ADD = 1,
  TC_EW_SUB,
  TC_EW_MUL,
  TC_EW_DIV,
  TC_EW_MAX,
  TC_EW_MIN, /* a, b */
  TC_EW_NEG,
  TC_EW_ABS,
  TC_EW_RELU,
  TC_EW_SIGMOID,
  TC_EW_TANH,
  TC_EW_EXP,
  TC_EW_SQRT,
  TC_EW_RECIP,
  TC_EW_ERF,
  TC_EW_GELU_ERF,
  TC_EW_GELU_TANH,
  TC_EW_HARDSWISH, /* a */
  TC_EW_LEAKY,     /* a; alpha */
  TC_EW_HSIGMOID,  /* a; alpha, beta */
  TC_EW_QUICKGELU, /* a * sigmoid(alpha * a) */
  TC_EW_ELU,       /* a; alpha */
  TC_EW_CLIP,      /* a, lower bound b or -1, upper bound c or -1 */
  TC_EW_CLIPC,     /* a; alpha (lower), beta (upper): Clip before opset 11 */
  TC_EW_DQ,        /* DequantizeLinear per tensor: (a - zero point c or 0) * scale b */
  TC_EW_Q,         /* QuantizeLinear per tensor: clamp(rint(a / b) + c or 0) to c's type
                      (uint8 without c), kept as a float until stored */
  TC_EW_N_OPS
};
typedef struct tc_ew_op {
  int op;
  int a, b, c;
  float alpha, beta;
} tc_ew_op;
typedef struct tc_ew_prog {
  int n_in, n_ops;
  tc_ew_op ops[TC_EW_MAX_OPS];
  uint64_t hash;              /* over n_in and ops */
  char ins[TC_EW_MAX_IN + 1]; /* per input: 'F', 'R' or 'S' (see above); set by the caller */
  /* per input its element type, 'f' float32, 'b' int8, 'B' uint8 (empty:
   * all float32), and the output's ('f' when 0); set by the caller */
  char types[TC_EW_MAX_IN + 1];
  char out_type;
} tc_ew_prog;

/* The chain ending at root: the program, its nodes in graph order (root
 * last) and its inputs. */
typedef struct tc_ew_chain {
  tc_ew_prog prog;
  const tc_node *nodes[TC_EW_MAX_OPS];
  size_t n_nodes;
  const tc_value *in[TC_EW_MAX_IN];
} tc_ew_chain;

/* Builds the chain that ends at root (a main-graph node): root and,
 * repeatedly, the producer of a chain node's input when it is a supported
 * elementwise node (float ops; Add/Sub/Mul/Div/Max/Min with two inputs,
 * unary activations, Clip, Gelu, QuickGelu) whose only output is
 * read by chain nodes alone and is not a graph output, while the chain
 * stays within TC_EW_MAX_OPS ops and TC_EW_MAX_IN inputs; nodes whose inputs
 * are all constant are left out (sessions compute them once). False when
 * root is not supported or the chain would have fewer than two nodes. The same
 * graph gives the same chain; ins is left empty. */
bool tc_ew_chain_of(const tc_node *root, tc_ew_chain *ch);
/* Whether n alone is an elementwise node tc_ew_chain_of can take. */
bool tc_ew_node_supported(const tc_node *n);

typedef struct tc_cg_spec {
  int kind, act, flags;
  int64_t cols;
  int width, unroll;
  int threads; /* 0: rows split over the thread pool; 1: all rows on the calling thread */
  int dtype;   /* element type of the rows and parameters: 0 or TC_DTYPE_F32 (float32),
                  TC_DTYPE_F16, TC_DTYPE_BF16 (CUDA kernels only) */
  char sym[64];
  tc_ew_prog prog; /* ewchain: the program (the spec string carries its hash and ins) */
  /* attention (3-D Q [B, q, h * d], K [B, cols, kvh * d], V [B, cols, kvh * dv]):
   * cols is the number of keys; unroll u computes 2u query rows at a time */
  int64_t att_q, att_d, att_dv;
  int att_h, att_kvh;
} tc_cg_spec;

/* Parses a spec string; false when it is malformed or names an unknown kind. */
bool tc_cg_spec_parse(const char *s, tc_cg_spec *out);
/* Writes the spec string of sp into buf. */
void tc_cg_spec_format(const tc_cg_spec *sp, char *buf, size_t cap);
/* The kind's name ("bias_act", ...), or "?". */
const char *tc_cg_kind_name(int kind);

/* The spec node n gets for rows of length cols (width, unroll and sym left
 * for the caller). False when generated kernels do not cover the node (op,
 * domain, attributes, optional outputs). */
bool tc_cg_node_spec(const tc_node *n, int64_t cols, tc_cg_spec *out);

/* The attention spec of node n (kind and flags; the sizes are left 0):
 * an ONNX Attention node without past keys and values, nonpad lengths,
 * softcap, windows, a softmax precision other than float32 or outputs
 * beyond Y. False otherwise. */
bool tc_cg_attention_spec(const tc_node *n, tc_cg_spec *out);
/* Sets sp's attention sizes from the dims of 3-D Q, K and V (heads from
 * n's attributes); false when they do not describe a 3-D attention the
 * generator takes (short sequences: see TC_CG_ATT_MAX_*). */
bool tc_cg_attention_dims(const tc_node *n, const int64_t *q, const int64_t *k, const int64_t *v,
                          tc_cg_spec *sp);

/* Where a generated kernel's operands are, for node k->node with the given
 * run-time inputs: in[] the kernel's input slots (NULL when unused), eps,
 * the rows, and sum_slot (the node output the sum goes to, 0: none; the
 * result is output 0). */
typedef struct tc_native_bind {
  const tc_rt_tensor *in[4];
  float eps;
  size_t sum_slot;
  int64_t rows;
} tc_native_bind;
/* Whether the run-time inputs fit spec sp (its dtype, last dim == cols,
 * parameter shapes, axis and attributes); fills *b when they do. */
bool tc_native_fit(const tc_kernel_ctx *k, const tc_cg_spec *sp, const tc_rt_tensor *const *in,
                   size_t n_in, size_t n_out, tc_native_bind *b);

/* Runs node k->node with kernel fn of spec sp when the run-time inputs fit
 * (float32, last dim == cols, parameter shapes); returns false, having done
 * nothing, when they do not (the caller runs its own kernel). *st is the
 * status when it ran. */
bool tc_native_run(tc_kernel_ctx *k, const tc_cg_spec *sp, tc_cg_row_fn fn,
                   const tc_rt_tensor *const *in, size_t n_in, tc_rt_tensor *out, size_t n_out,
                   tc_status *st);

/* Runs the chain bound at node k->node with kernel fn of spec sp on its
 * inputs in[0..prog.n_in) when they fit the spec (float32; the 'F' inputs
 * all of one shape whose last dim is cols, 'R' inputs cols elements shaped
 * [1, ..., cols], 'S' inputs one element, none of higher rank than the 'F'
 * ones); out[0] gets the result. False, having done nothing, otherwise. */
bool tc_native_chain_fits(const tc_cg_spec *sp, const tc_rt_tensor *const *in);
bool tc_native_chain_run(tc_kernel_ctx *k, const tc_cg_spec *sp, tc_cg_row_fn fn,
                         const tc_rt_tensor *const *in, tc_rt_tensor *out, tc_status *st);
/* Whether the types of prog fit its ops: int8/uint8 inputs are read only as
 * DequantizeLinear's x and zero point (of x's type) or QuantizeLinear's
 * zero point; every Q/DQ scale and zero point is a one-element input; the
 * output type is the root's (Q: its zero point's type, uint8 without). */
bool tc_ew_types_ok(const tc_ew_prog *p);
/* The type letter of dtype dt ('f', 'b', 'B'), or 0 when chains take no such input. */
char tc_ew_type_letter(int32_t dt);

/* The 'F' / 'R' / 'S' letter of input t against output shape o (rank, dims)
 * with rows of cols elements, or 0 when it is none of them. */
char tc_ew_input_kind(const tc_rt_tensor *t, size_t o_rank, const int64_t *o_dims, int64_t cols);

/* The x86 extensions whose presence libtacort can check (the names GCC's
 * __builtin_cpu_supports and LLVM's feature strings share), NULL-terminated. */
extern const char *const tc_cpu_feature_names[];
/* 1 when this CPU has feature name, 0 when it lacks it, -1 for a name not
 * in tc_cpu_feature_names. */
int tc_cpu_has(const char *name);

/* SHA-256 of a byte range as 64 hex digits + NUL. */
void tc_sha256_hex(const void *data, size_t size, char hex[65]);

/* A loaded kernel library. */
typedef struct tc_native_lib tc_native_lib;
/* Loads a kernel library from its bytes (kept in an anonymous memory file,
 * so what is checked is what is loaded). NULL with why filled on failure. */
tc_native_lib *tc_native_lib_open(const void *data, size_t size, char *why, size_t why_cap);
/* The function named sym, or NULL. */
tc_cg_row_fn tc_native_lib_sym(tc_native_lib *lib, const char *sym);
void tc_native_lib_close(tc_native_lib *lib);

#endif
