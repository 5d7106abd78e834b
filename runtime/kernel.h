/* The kernel interface of libtacort's executor.
 *
 * A kernel runs one node: it reads its input tensors (NULL for an optional
 * input left out), decides each output's dtype and shape, asks the context for
 * the output memory (tc_kernel_alloc), and computes. Kernels never call
 * malloc for outputs, never exit, and report bad input through the context's
 * diagnostics with the node named.
 *
 * Kernels are registered per op family in tables (tc_kernel_def arrays, one
 * per file in runtime/kernels/), collected in runtime/kernels/registry.c.
 * A def may also give a check function, run when a session is created, that
 * refuses attributes the kernel does not implement, so unsupported models are
 * refused at load time and never half-run. */
#ifndef TC_KERNEL_H
#define TC_KERNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"

#define TC_MAX_RANK 8

/* A dense row-major tensor as kernels see it. For STRING tensors data is an
 * array of `char *` (NUL-terminated, owned by the same allocator). A
 * sequence (dtype TC_DTYPE_SEQUENCE) has rank 1, dims[0] elements of dtype
 * dims[1], data an array of dims[0] tc_rt_tensor in run-arena memory whose
 * data are run-arena copies too (never a planned slot, which a later node may
 * reuse); an empty optional is dtype TC_DTYPE_NONE. */
typedef struct tc_rt_tensor {
  int32_t dtype;
  size_t rank;
  int64_t dims[TC_MAX_RANK];
  void *data;
  size_t bytes;
} tc_rt_tensor;

/* The algorithm of a float32 convolution on oneDNN. DIRECT: oneDNN's
 * direct convolution on the layouts it picks (blocked or channels-last,
 * reorders around it). WINOGRAD: its Winograd convolution. GEMM: its
 * GEMM-based (im2col) convolution on the plain layout, no reorders. AUTO:
 * Winograd for ungrouped 3x3, stride 1, undilated 2-D convolutions with at
 * least 32 input and 32 output channels (faster there on every shape
 * measured, 1 and 2 threads; slower below, e.g. on a network's RGB stem);
 * GEMM for ungrouped 1-D convolutions (a wav2vec2 feature encoder's 512 ->
 * 512 kernel-3 stride-2 conv 34 -> 27 ms, its reorders gone) and ungrouped
 * 1x1 ones with at least 100 output positions; direct otherwise.
 * SUBSAMPLE (2-D 1x1 convolutions with strides and no padding, never
 * AUTO's choice): the positions the strides read copied out, then a stride-1
 * convolution on them (AUTO's rule for that one); oneDNN's strided 1x1
 * kernel ran ResNet-50's 512 -> 1024 projection (28x28 -> 14x14,
 * channels-last, 1 thread) in 2.7-3.5 ms, the copy and stride-1 one in
 * 2.2-2.4, but other shapes gain nothing or lose, so it is the tuner's to
 * pick. WINOGRAD, GEMM and SUBSAMPLE apply only where the shape allows them
 * (WINOGRAD: 3x3, stride 1, ..., and oneDNN provides it; GEMM: ungrouped,
 * forward, plain values); otherwise the convolution runs direct. The
 * autotuner chooses per node by measurement and records it in the model's
 * metadata_props as TC_CONV_ALGO_KEY<node name> = "direct" | "winograd" |
 * "gemm" | "subsample". */
#define TC_CONV_ALGO_KEY "ai.tacoc.kernel.conv:"
/* metadata_props key by which the autotuner asks libtacort to keep every
 * value plain ("plain"): see runtime/layout.c. */
#define TC_LAYOUT_KEY "ai.tacoc.kernel.layout"
/* Metadata: "N/M": runs use N threads on a machine with M cores unless the
 * caller set a thread count (written by the autotuner when N measured
 * faster than all M). */
#define TC_THREADS_KEY "ai.tacoc.kernel.threads"
typedef enum tc_conv_algo {
  TC_CONV_ALGO_AUTO = 0,
  TC_CONV_ALGO_DIRECT,
  TC_CONV_ALGO_WINOGRAD,
  TC_CONV_ALGO_GEMM,
  TC_CONV_ALGO_SUBSAMPLE,
} tc_conv_algo;
/* The algorithm of a float32 MatMul whose B is a 2-D initializer: SGEMM
 * (oneDNN's sgemm, which packs B on every call; what AUTO means) or PACKED
 * (oneDNN's matmul primitive on B packed once into its blocked layout and
 * cached: a second copy of the weights in memory). The autotuner measures
 * both per signature and records TC_GEMM_ALGO_KEY<node name> = "packed"
 * where packed wins. */
#define TC_GEMM_ALGO_KEY "ai.tacoc.kernel.gemm:"
typedef enum tc_gemm_algo {
  TC_GEMM_ALGO_AUTO = 0,
  TC_GEMM_ALGO_SGEMM,
  TC_GEMM_ALGO_PACKED,
} tc_gemm_algo;

typedef struct tc_kernel_ctx {
  const tc_node *node;
  int64_t opset; /* version of the node's domain imported by the model */
  tc_diag *diag;
  tc_arena *arena; /* scratch memory, and outputs the memory plan does not cover */
  /* The run's memory plan (session.c), or plan_base NULL: tc_kernel_alloc
   * places output i of the node at plan_base + plan_offset[value id] when
   * the plan has a slot of exactly the size asked for. */
  tc_rt_tensor *outputs;
  unsigned char *plan_base;
  const int64_t *plan_offset;
  const size_t *plan_size;
  tc_conv_algo conv_algo; /* convolutions: the algorithm the model asks for this node */
  tc_gemm_algo gemm_algo; /* float32 MatMul: likewise */
  /* Channels-last operands (runtime/layout.c): bit i set when input / output
   * i of this node holds a rank-4 tensor whose dims are the logical
   * [N, C, H, W] but whose data are in [N, H, W, C] order. Only the
   * convolution kernels are ever given these bits (the executor converts for
   * every other kernel); they are 0 everywhere else. */
  uint32_t nhwc_in, nhwc_out;
  /* The node whose outputs the kernel's outputs are, when not `node` (a QDQ
   * group run at its QuantizeLinear: runtime/qdq.c); NULL: node. */
  const tc_node *out_node;
} tc_kernel_ctx;

typedef tc_status (*tc_kernel_fn)(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                  tc_rt_tensor *out, size_t n_out);
typedef tc_status (*tc_kernel_check_fn)(const tc_node *n, int64_t opset, tc_diag *diag);

typedef struct tc_kernel_def {
  const char *op_type;
  const char *domain; /* "" for the default ONNX domain */
  int since;          /* lowest opset version this kernel implements */
  tc_kernel_fn run;
  tc_kernel_check_fn check; /* may be NULL */
} tc_kernel_def;

/* Finds the kernel for op/domain at opset; NULL if none. */
const tc_kernel_def *tc_kernel_find(const char *op_type, const char *domain, int64_t opset);

/* ---- helpers for kernels ---- */
/* Number of elements of t. */
size_t tc_rt_numel(const tc_rt_tensor *t);
/* Bytes of one element of dt (a pointer for strings); 0 for dtypes without
 * whole-byte elements. */
size_t tc_dtype_elem_bytes(int32_t dt);
/* Sets out's dtype and shape and gives it zeroed memory (its planned slot, or
 * the run's arena). Fails with NOMEM
 * (or INVALID for a negative dim / huge size) recorded against the node. */
tc_status tc_kernel_alloc(tc_kernel_ctx *k, tc_rt_tensor *out, int32_t dtype, size_t rank,
                          const int64_t *dims);
/* tc_kernel_alloc for kernels that write every element of out: a planned
 * slot is not zeroed first (its bytes are whatever the run left there). */
tc_status tc_kernel_alloc_uninit(tc_kernel_ctx *k, tc_rt_tensor *out, int32_t dtype, size_t rank,
                                 const int64_t *dims);
/* Records an error against the node and returns its status. */
tc_status tc_kernel_fail(tc_kernel_ctx *k, tc_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Refuses an input dtype the kernel does not handle. */
tc_status tc_kernel_bad_dtype(tc_kernel_ctx *k, size_t input, int32_t dtype);

/* Refuses (TC_STATUS_UNSUPPORTED, naming node and op) any attribute of n not
 * in the NULL-terminated list allowed. For check functions. */
tc_status tc_kernel_check_attrs(const tc_node *n, tc_diag *diag, const char *const *allowed);
/* float32, float64, float16, bfloat16. */
bool tc_dtype_is_float(int32_t dt);
/* int8..int64, uint8..uint64 (not bool). */
bool tc_dtype_is_int(int32_t dt);

/* Attributes (defaults when absent). */
int64_t tc_attr_int(const tc_node *n, const char *name, int64_t dflt);
float tc_attr_float(const tc_node *n, const char *name, float dflt);
/* The string attribute, or dflt; not NUL-safe for binary strings. */
const char *tc_attr_string(const tc_node *n, const char *name, const char *dflt, tc_arena *a);
/* ints attribute: returns count (or -1 when absent) and sets *v. */
ptrdiff_t tc_attr_ints(const tc_node *n, const char *name, const int64_t **v);
ptrdiff_t tc_attr_floats(const tc_node *n, const char *name, const float **v);
bool tc_attr_has(const tc_node *n, const char *name);

/* Reads element i of a numeric tensor as double / int64 (int8..uint64, bool,
 * float16, bfloat16, float32, float64). Other dtypes (float8, sub-byte,
 * complex, string) read as NaN / 0 and are ignored by the setters: kernels
 * must check dtypes before using these. */
double tc_rt_get_f64(const tc_rt_tensor *t, size_t i);
int64_t tc_rt_get_i64(const tc_rt_tensor *t, size_t i);
/* Writes v to element i converting to t's dtype (saturating casts are the
 * caller's business: this is C conversion, with fp16/bf16 round-to-nearest-even). */
void tc_rt_set_f64(tc_rt_tensor *t, size_t i, double v);
void tc_rt_set_i64(tc_rt_tensor *t, size_t i, int64_t v);

/* The 8- and 4-bit floats (float8e4m3fn, e4m3fnuz, e5m2, e5m2fnuz,
 * float4e2m1; elementwise.c, Cast's conversions): whether dt is one, element
 * i as a double (NaN for other dtypes), and element i set from v rounded to
 * nearest even (saturate: out-of-range values and infinities to +-max;
 * float4 always saturates). */
bool tc_minifloat_dtype(int32_t dt);
double tc_minifloat_get(const tc_rt_tensor *t, size_t i);
void tc_minifloat_set(tc_rt_tensor *t, size_t i, double v, bool saturate);

float tc_f16_to_f32(uint16_t h);
uint16_t tc_f32_to_f16(float f);
float tc_bf16_to_f32(uint16_t h);
uint16_t tc_f32_to_bf16(float f);

/* Numpy-style multidirectional broadcasting of n shapes; INVALID if they
 * do not broadcast (error recorded against the node). */
tc_status tc_broadcast_shape(tc_kernel_ctx *k, const tc_rt_tensor *const *ts, size_t n,
                             size_t *rank, int64_t *dims);
/* Element strides of t viewed with the broadcast shape (0 on broadcast dims). */
void tc_broadcast_strides(const tc_rt_tensor *t, size_t rank, const int64_t *dims,
                          int64_t *strides);
/* Decodes an IR tensor (an initializer or a tensor attribute) into out, with
 * memory from a: numeric payloads in any protobuf field become packed native
 * arrays, strings become `char *` arrays. */
tc_status tc_rt_from_ir(const tc_tensor *t, tc_arena *a, tc_rt_tensor *out, tc_diag *diag);
/* A view of constant t's elements (byte-sized or wider dtypes) in *rt;
 * *owned (to free) holds decoded data when t's are not raw bytes. False
 * when they cannot be read. */
bool tc_tensor_view(const tc_tensor *t, tc_rt_tensor *rt, void **owned);

/* LRN's last steps on n window sums of squares (overwritten): y = x (bias +
 * scale sum)^nbeta as x exp(nbeta log(base)) on the vector sets; the plain
 * and the channels-last kernels share it, so their bits. */
void tc_lrn_apply(float *y, const float *x, float *sum, size_t n, float scale, float bias,
                  float nbeta);
/* Copies an [N, C, HW] tensor of esize-byte elements between the plain
 * (NCHW) order and channels-last (NHWC, [N, HW, C]) order; to_nhwc picks the
 * direction. dst and src must not overlap. */
void tc_layout_copy(void *dst, const void *src, size_t esize, size_t N, size_t C, size_t HW,
                    bool to_nhwc);
/* A channels-last tensor of rank 4 or more: N, C (the product of the dims
 * between the first and the last two) and HW (the last two's); its memory
 * order is [N, H, W, C...]. False below rank 4. */
bool tc_layout_shape(const tc_rt_tensor *t, size_t *N, size_t *C, size_t *HW);
/* Reorders t in place, plain to channels-last (to_nhwc) or back; a t whose
 * memory is the same in both orders (one element, or [N, C..., 1, 1]) stays
 * as it is. */
tc_status tc_layout_reorder(tc_kernel_ctx *k, tc_rt_tensor *t, bool to_nhwc);
/* A plain copy of channels-last t in k's arena (t itself when the orders
 * agree or below rank 4); NULL when memory runs out. */
const tc_rt_tensor *tc_layout_plain_copy(tc_kernel_ctx *k, const tc_rt_tensor *t);

/* ---- intra-op parallelism (kernel_util.c) ----
 * Kernels split their outputs into contiguous pieces of [0, n) and run the
 * pieces on the calling thread's OpenMP team, the same thread pool (and
 * thread count, tc_set_num_threads) as oneDNN. Every output element belongs
 * to exactly one piece, so results do not depend on the thread count. The
 * body must not allocate from the arena or report errors: kernels check and
 * allocate first, then run the parallel loop. */
typedef void (*tc_par_fn)(void *ctx, size_t piece, size_t lo, size_t hi);
/* How many pieces tc_parallel_for(n, grain, ...) runs: 1 when n is below two
 * grains, when one thread is allowed, or when called from inside a parallel
 * region; pieces are numbered 0..count-1 (for per-piece scratch). */
size_t tc_parallel_pieces(size_t n, size_t grain);
/* Runs fn over [0, n) in tc_parallel_pieces(n, grain) contiguous pieces of
 * at least grain items each, the caller's thread taking part; a single
 * piece runs inline without waking the pool. Returns when all are done. */
void tc_parallel_for(size_t n, size_t grain, tc_par_fn fn, void *ctx);
/* Items per piece for a loop whose items cost about `cost` elementary
 * operations each: enough work to be worth waking a thread. */
size_t tc_parallel_grain(size_t cost);

/* ---- float32 array math for the fast kernels (vmath.c) ----
 * y[i] = f(x[i]) in float arithmetic, within a few ulp of the correctly
 * rounded result (erf: 5e-7 absolute); y may be x. Elements are computed
 * independently, with the same operations wherever they sit in the array. */
void tc_vexp_f32(float *y, const float *x, size_t n);
void tc_verf_f32(float *y, const float *x, size_t n);
void tc_vtanh_f32(float *y, const float *x, size_t n);
void tc_vsigmoid_f32(float *y, const float *x, size_t n);
void tc_vlog_f32(float *y, const float *x, size_t n);
/* y[i] = Gelu(t) = 0.5 t (1 + erf(t / sqrt 2)) for t = x[i] + b[i] (b NULL:
 * t = x[i]) in float, as t Phi(t) from erfc(|t| / sqrt 2) (vmath_impl.h
 * v_gelu: nothing cancels), within 4e-7 relative. y may be x. */
void tc_vgelu_f32(float *y, const float *x, const float *b, size_t n);
/* The mean (0 unless centred) and mean squared deviation from it of n
 * floats, in double (two vector sums, then their lanes in order); the same
 * of s = a + b (float32 sums, written to s on the way); and y[i] = (x[i] -
 * mean) * inv * scale[i] + bias[i] in float32 (mean and inv rounded to
 * float; bias may be NULL): a normalization row. */
/* The sum of n floats in double: tc_vmoments_f32's mean pass, times n. */
void tc_vdsum_f32(const float *x, size_t n, double *sum);
void tc_vmoments_f32(const float *x, size_t n, bool centred, double *mean, double *var);
void tc_vsum_moments_f32(float *s, const float *a, const float *b, size_t n, bool centred,
                         double *mean, double *var);
void tc_vnorm_f32(float *y, const float *x, size_t n, double mean, double inv, const float *scale,
                  const float *bias);
/* Row helpers (vmath.c): y += a; the sum (sixteen partial sums, then their
 * sum in lane order); the largest element ignoring NaN (-inf for none);
 * y = exp(x - m) returning the sum (y may be x; 0 where x - m < ln(n
 * FLT_MIN), which softmax would make subnormal); x *= s. */
void tc_vadd_inplace_f32(float *y, const float *a, size_t n);
float tc_vsum_f32(const float *x, size_t n);
/* The dot product of a and b (sixteen partial sums, then their sum in lane
 * order); y += a x. */
float tc_vdot_f32(const float *a, const float *b, size_t n);
void tc_vaxpy_f32(float *y, float a, const float *x, size_t n);
/* y[i] = a[i] op b[i], op one of + - * / (IEEE, element by element) or M:
 * the larger, NaN when either is NaN. */
void tc_vbinary_f32(float *y, const float *a, const float *b, size_t n, char op);
/* y[i] = the largest of x[off[t] + i] over the taps t (taps >= 1), folded
 * in tap order with tc_vbinary_f32's M (a NaN stays): channel vectors of a
 * pooling window in one pass. */
void tc_vmax_taps_f32(float *y, const float *x, const ptrdiff_t *off, size_t taps, size_t n);
float tc_vmax_f32(const float *x, size_t n);
float tc_vexp_sub_sum_f32(float *y, const float *x, size_t n, float m);
void tc_vscale_f32(float *x, size_t n, float s);
/* y[i] = sin(x[i]) or (cosine) cos(x[i]), within 2.5e-7 of libm's double
 * result rounded (absolute) for |x| <= TC_VSIN_MAX; elements beyond,
 * infinities and NaN through libm. y may be x. */
#define TC_VSIN_MAX 8192.0f
void tc_vsincos_f32(float *y, const float *x, size_t n, bool cosine);
/* y[i] = (x[i] - m) * g + b in float (the multiply-add fused where the CPU
 * has FMA): BatchNormalization's plane; y may be x. */
void tc_vaffine_f32(float *y, const float *x, size_t n, float m, float g, float b);
/* y[b * A + a] = x[a * B + b] for a < A, b < B: the A x B matrix x
 * transposed, the bits copied (any 4-byte type). With AVX-512 and A = 2, 4
 * or 8: sixteen columns at a time, the rows interleaved in registers. */
void tc_vtranspose_f32(float *y, const float *x, size_t A, size_t B);
/* y[i] = (x[i] - m[i]) * g[i] + b[i], as tc_vaffine_f32 per element: a
 * channels-last BatchNormalization's position. */
void tc_vaffine_ch_f32(float *y, const float *x, size_t n, const float *m, const float *g,
                       const float *b);
/* y[i] = x[i] below lo raised to lo, above hi lowered to hi, NaN kept (y
 * may be x): Clip's comparisons, the same bits as the scalar loop. */
void tc_vclip_f32(float *y, const float *x, size_t n, float lo, float hi);
/* y[i] = sqrt, floor, ceil, round-half-to-even or sign of x[i] (op a
 * TC_VROUND_*): exact operations, the bits of sqrtf / floorf / ceilf /
 * nearbyintf (and of the double functions rounded to float); sign gives 1,
 * -1, +0 for either zero and keeps NaN. y may be x. */
enum { TC_VROUND_SQRT, TC_VROUND_FLOOR, TC_VROUND_CEIL, TC_VROUND_EVEN, TC_VROUND_SIGN };
void tc_vround_f32(float *y, const float *x, size_t n, int op);
/* y[i] = (float)(acc[i] - corr[i]) * scale[i] (+ bias[i] when bias is not
 * NULL; corr NULL: 0), the subtraction in int32; y may be acc's memory
 * (int32 products scaled in place). */
void tc_vdequant_i32_f32(float *y, const int32_t *acc, const int32_t *corr, const float *scale,
                         const float *bias, size_t n);
/* n bfloat16 values to float32 (exact) and back (tc_f32_to_bf16's rounding:
 * to nearest even, NaN quiet), at the CPU's vector width. */
void tc_vbf16_to_f32(float *y, const uint16_t *x, size_t n);
void tc_vf32_to_bf16(uint16_t *y, const float *x, size_t n);
/* The same for float16 (tc_f16_to_f32 / tc_f32_to_f16's bits). */
void tc_vf16_to_f32(float *y, const uint16_t *x, size_t n);
void tc_vf32_to_f16(uint16_t *y, const float *x, size_t n);
/* Half dtypes (bfloat16, float16), whose fast paths run float32 kernels on
 * widened copies: the conversions by dtype. */
static inline bool tc_dtype_is_half(int32_t dt) {
  return dt == TC_DTYPE_BF16 || dt == TC_DTYPE_F16;
}
static inline void tc_vhalf_to_f32(int32_t dt, float *y, const void *x, size_t n) {
  (dt == TC_DTYPE_BF16 ? tc_vbf16_to_f32 : tc_vf16_to_f32)(y, x, n);
}
static inline void tc_vf32_to_half(int32_t dt, void *y, const float *x, size_t n) {
  (dt == TC_DTYPE_BF16 ? tc_vf32_to_bf16 : tc_vf32_to_f16)(y, x, n);
}

/* The instruction set the functions above run on: "avx512", "avx2" or
 * "sse2" (the widest this CPU runs unless TACORT_VMATH names another).
 * tc_vmath_use switches to the named one (tests: every set must give the
 * same bits); false when it is unknown or this CPU does not run it. */
const char *tc_vmath_name(void);
bool tc_vmath_use(const char *name);

/* ---- expert-library path (runtime/blas.c, runtime/dnnl_conv.c) ---- */
/* True unless the reference kernels were asked for (TACORT_KERNELS=reference
 * or tc_fast_kernels_set(false)). */
bool tc_fast_kernels_enabled(void);
void tc_fast_kernels_set(bool on);
/* C[M,N] = op(A) op(B) in fp32 through oneDNN, row-major; op transposes when
 * ta / tb. False when oneDNN cannot take it (the caller falls back). */
bool tc_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, const float *A, const float *B,
              float *C);
/* C = alpha op(A) op(B) with leading dimensions (row strides, in elements)
 * lda, ldb, ldc: heads of a [S, H*D] tensor are multiplied in place. */
bool tc_sgemm_ld(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                 size_t lda, const float *B, size_t ldb, float *C, size_t ldc);
/* The same with C = alpha op(A) op(B) + beta C (C read when beta is not 0). */
bool tc_sgemm_beta(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                   size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc);
/* True when oneDNN's integer GEMM gives exact results here for inner size K
 * with 8-bit operands and in-range zero points: the CPU has VNNI (without it
 * oneDNN's u8*s8 pairs saturate at int16) and K * 255 * 255 fits in int32. */
bool tc_gemm_q8_exact(size_t K);
/* C[M,N] = (op(A) - a_zero) (op(B) - b_zero) in int32 through oneDNN
 * (dnnl_gemm_u8s8s32), row-major; op transposes when ta / tb. False when
 * tc_gemm_q8_exact(K) is not, or oneDNN declines (the caller falls back). */
bool tc_gemm_u8s8s32(bool ta, bool tb, size_t M, size_t N, size_t K, const uint8_t *A,
                     uint8_t a_zero, const int8_t *B, int8_t b_zero, int32_t *C);
/* The same with int8 A (dnnl_gemm_s8s8s32). */
bool tc_gemm_s8s8s32(bool ta, bool tb, size_t M, size_t N, size_t K, const int8_t *A, int8_t a_zero,
                     const int8_t *B, int8_t b_zero, int32_t *C);
/* C[M,N] = sum_k (A[i,k] - az[i]) (B[k,j] - bz[j]), exact in int32, for
 * row-major A [M,K] and B [K,N] of dtype TC_DTYPE_U8 or TC_DTYPE_I8 each. The
 * zero points hold 1 value (per tensor) or n_az == M (per row of A) / n_bz ==
 * N (per column of B) values; NULL means 0. Scratch comes from malloc. False
 * (C unspecified) when the GEMM would not be exact (see tc_gemm_q8_exact,
 * with zero points outside the dtype's range also refused) or on OOM. */
bool tc_gemm_q8(size_t M, size_t N, size_t K, int32_t adt, const void *A, const int32_t *az,
                size_t n_az, int32_t bdt, const void *B, const int32_t *bz, size_t n_bz,
                int32_t *C);

/* Activations a convolution can end with (FusedConv). */
typedef enum tc_conv_act {
  TC_CONV_ACT_NONE = 0,
  TC_CONV_ACT_RELU,
  TC_CONV_ACT_LEAKY_RELU, /* alpha */
  TC_CONV_ACT_TANH,
  TC_CONV_ACT_SIGMOID,
  TC_CONV_ACT_CLIP,         /* alpha = min, beta = max */
  TC_CONV_ACT_HARD_SIGMOID, /* max(0, min(1, alpha x + beta)) */
  TC_CONV_ACT_HARD_SWISH,   /* x max(0, min(1, x / 6 + 1 / 2)) */
  TC_CONV_ACT_GELU,         /* x (1 + erf(x / sqrt 2)) / 2 */
  TC_CONV_ACT_SILU,         /* x sigmoid(x) */
} tc_conv_act;

/* A float32 convolution in ONNX terms over nsp = 1 to 3 spatial dims (the
 * unused trailing entries are 1, pads 0): x [N, C, in], y [N, M, out], w
 * [M, C/group, k] or, transposed (ConvTranspose), [C, M/group, k]. pb / pe
 * are the pads at the beginning / end of each dim; transposed, the output
 * positions are i * s - pb + k * d, so pe only follows from out. */
typedef struct tc_conv_spec {
  bool transposed;
  size_t nsp;
  int64_t N, C, M, group;
  int64_t in[3], k[3], out[3], s[3], d[3], pb[3], pe[3];
  tc_conv_act act;
  float alpha, beta;
  tc_conv_algo algo; /* asked for (float32 only) */
  unsigned layout;   /* TC_CONV_X_NHWC | TC_CONV_Y_NHWC (2-D, float32 only); z follows y */
} tc_conv_spec;
#define TC_CONV_X_NHWC 1u
#define TC_CONV_Y_NHWC 2u

/* The spec of float32 convolution node n (Conv, com.microsoft.FusedConv,
 * tacoc's Conv<Act> / ConvAdd<Act>) on x and w, activation left out; false
 * when they do not make a convolution. */
bool tc_conv_node_spec(const tc_node *n, int64_t opset, const tc_rt_tensor *x,
                       const tc_rt_tensor *w, tc_conv_spec *c);
/* What TC_CONV_ALGO_AUTO means for c (see tc_conv_algo). */
tc_conv_algo tc_conv_algo_default(const tc_conv_spec *c);
/* The algorithm the autotuner measures against DIRECT for c: WINOGRAD where
 * oneDNN has a Winograd kernel for it, GEMM for an ungrouped 1-D
 * convolution, SUBSAMPLE (against AUTO's choice) for a strided unpadded 2-D
 * 1x1 one, else AUTO (nothing to choose). */
tc_conv_algo tc_conv_algo_alternative(const tc_conv_spec *c);
/* True when oneDNN has a Winograd kernel for c here (the shape allows it
 * and the CPU has one). */
bool tc_dnnl_conv_has_winograd(const tc_conv_spec *c);

/* y = act(conv(x, w) + b + z) through a oneDNN (de)convolution primitive;
 * b [M] and z (shaped like y) may be NULL. Primitives are cached by the
 * whole spec, and reordered weights too when w_value (the node's W, may be
 * NULL) is an initializer, keyed by its payload buffer, which the cache holds
 * a reference on. Thread-safe. False when oneDNN declines the case or memory
 * runs out: y is then unspecified and the caller runs the reference. */
bool tc_dnnl_conv_run(const tc_conv_spec *c, const tc_value *w_value, const float *x,
                      const float *w, const float *b, const float *z, float *y);
/* Registers buf's payload as constant weights that a session computed when
 * it was made (runtime/session.c), owned by the session's arena: a
 * (de)convolution or packed matmul given exactly that payload as its
 * weights caches them reordered, as it does initializers, until the arena
 * is freed. Takes over the caller's reference to buf when it returns true
 * (false: out of memory, buf is the caller's). Thread-safe. */
bool tc_dnnl_weights_register(tc_arena *owner, tc_buffer *buf);
/* Whether the last tc_dnnl_*conv_run / matmul call of this thread returned
 * false after it had started running (y may be partly written; false when
 * it declined the case before). A convolution whose y is z's memory (in
 * place, runtime/plan.c) cannot fall back to another kernel then. */
bool tc_dnnl_conv_failed_running(void);
/* Which operands the last (de)convolution this thread ran through oneDNN
 * reordered between the runtime's layout and the primitive's: a mask of
 * TC_DNNL_REORDERS_X and _Y (diagnostics and tests). */
enum { TC_DNNL_REORDERS_X = 1, TC_DNNL_REORDERS_Y = 2 };
unsigned tc_dnnl_conv_last_reorders(void);
/* Whether that convolution ran as Winograd (diagnostics and tests). */
bool tc_dnnl_conv_last_winograd(void);
/* A bfloat16 convolution (x, w, z and y bfloat16, b float32; not
 * transposed) on oneDNN's bfloat16 primitive, weights cached as above; false
 * when oneDNN declines. */
/* float32 x, z and y with float16 initializer weights (w_value must name
 * them; false otherwise): the weights widened and reordered once into the
 * cached entry (this CPU family has no float16 convolution). */
bool tc_dnnl_hconv_run(const tc_conv_spec *c, const tc_value *w_value, const float *x,
                       const uint16_t *w, const float *b, const float *z, float *y);
bool tc_dnnl_bconv_run(const tc_conv_spec *c, const tc_value *w_value, const void *x, const void *w,
                       const float *b, const void *z, void *y);
/* y = act(scale[m] * conv(x - xzp, w) + b + z) through oneDNN's int8
 * convolution: x uint8 or int8 (xdt), w int8, scale [M] (x's scale times
 * w's per channel), b [M] and z (shaped like y) float32 or NULL, y float32
 * (ydt TC_DTYPE_F32); the cache as above, w_value naming the int8
 * initializer. ydt TC_DTYPE_U8 / TC_DTYPE_I8: y quantized in the primitive,
 * saturate(round(act(...)) + yzp), the caller having divided scale and b by
 * y's scale (no z; act none or Relu, which commute with a positive scale).
 * False when oneDNN declines or memory runs out (the caller runs its own
 * kernel). */
bool tc_dnnl_qconv_run(const tc_conv_spec *c, const tc_value *w_value, int32_t xdt, const void *x,
                       int32_t xzp, const int8_t *w, const float *scale, const float *b,
                       const float *z, int32_t ydt, int32_t yzp, void *y);
/* c [M, N] = a [M, K] (uint8) times b [K, N] (int8) in int32 through
 * oneDNN's int8 matmul with b reordered once into the layout oneDNN picks
 * and cached like convolution weights (b_value, the node's B, must be that
 * initializer: otherwise false); no zero points: colsum [N] gets b's column
 * sums, so (a - zp) b = c - zp * colsum. False when oneDNN declines or
 * memory runs out (the caller runs its own GEMM). */
bool tc_dnnl_qmatmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const uint8_t *a,
                         const int8_t *b, bool tb, int32_t *c, int32_t *colsum);
/* c [M, N] = a [M, K] times b [K, N] in float32 through oneDNN's matmul
 * primitive with b packed once, cached as above (b_value must be b's
 * initializer: otherwise false, as when oneDNN declines). */
bool tc_dnnl_matmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const float *a,
                        const float *b, float *c);
/* The same for bfloat16 a, b and c (float32 sums rounded to nearest even):
 * oneDNN's bfloat16 matmul, on the CPU's bfloat16 dot products where it has
 * them. */
bool tc_dnnl_bmatmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const uint16_t *a,
                         const uint16_t *b, uint16_t *c);
/* float32 a times a float16 initializer b into float32 c: b widened and
 * packed once (this CPU family has no float16 matmul), cached as above. */
bool tc_dnnl_hmatmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const float *a,
                         const uint16_t *b, float *c);
/* Gemm's product for half a and a half initializer b of type dt, into
 * float32 c [M, N] (the caller's epilogue rounds once): bfloat16 on
 * oneDNN's bfloat16 matmul (a [M, K] bfloat16); float16 as float32 (a
 * [M, K] already widened to float32, b widened when packed). tb: b is
 * given [N, K]. Cached as above; false when it does not apply. */
bool tc_dnnl_gemm_half_run(const tc_value *b_value, int32_t dt, bool tb, size_t M, size_t K,
                           size_t N, const void *a, const uint16_t *b, float *c);
/* MatMul of float32 A (rank >= 2) and B, a 2-D initializer (node input 1),
 * on the packed path (tc_dnnl_matmul_run) into out; false, out left for the
 * caller to allocate again, when the path does not apply. */
bool tc_matmul_packed(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                      tc_rt_tensor *out);
/* Frees the cached primitives and weights no run is using. */
void tc_dnnl_conv_cache_clear(void);
/* How many primitives the cache holds (oneDNN's refusals, also cached, not
 * counted) and the bytes of reordered weights. */
void tc_dnnl_conv_cache_stats(size_t *entries, size_t *weight_bytes);

/* The Gemm kernel (nn.c) on node k->node's alpha, beta, transA, transB: for
 * the fused Gemm<Act> / FusedGemm kernels. */
tc_status tc_gemm_run(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                      tc_rt_tensor *out, size_t n_out);

/* ---- QDQ groups run as integer kernels (runtime/qdq.c binds them) ---- */
/* A convolution node (Conv, FusedConv, ai.tacoc Conv<Act>/ConvAdd<Act>) whose
 * X and W come from DequantizeLinear: xq (uint8 or int8) with a per-tensor
 * scale xs and zero point xz (may be NULL), wq int8 with scales ws (1 or one
 * per output channel) and zero point 0, the bias as float32 b or as int32 bq
 * with scales bs (both may be NULL), and the residual z of ConvAdd (may be
 * NULL). The output is float32: act(xs * ws[m] * sum (xq - xz) wq + bias +
 * z), the integer sums through oneDNN's exact int8 GEMM (the dequantized
 * float convolution where it is not exact). */
typedef struct tc_conv_qdq {
  const tc_rt_tensor *xq, *xs, *xz, *wq, *ws, *b, *bq, *bs, *z;
  /* ys set: y quantized as QuantizeLinear(y, ys, yz) would (uint8 without
   * yz), no z, the node's activation none or Relu */
  const tc_rt_tensor *ys, *yz;
  bool relu;                /* a Relu after the node's activation (one read only by it, run here) */
  const tc_value *wq_value; /* wq's value (caches oneDNN's reordered weights), or NULL */
} tc_conv_qdq;
tc_status tc_conv_qdq_run(tc_kernel_ctx *k, const tc_conv_qdq *q, tc_rt_tensor *out);
/* n elements of y = QuantizeLinear(act(DequantizeLinear(a) + DequantizeLinear(b)))
 * with per-tensor scales and zero points (ydt 8-bit; act Relu or none), or
 * the float32 sum (ydt TC_DTYPE_F32): the same arithmetic as those ops run
 * one after another, bit for bit. a, b 8-bit; b of a's shape (b_period 0)
 * or broadcast over a's leading axes (b_period elements, a bias row: 1, or
 * 16 or more). */
typedef struct tc_qadd {
  const void *a, *b;
  void *y;
  int32_t adt, bdt, ydt;
  float as, bs, ys;
  int32_t az, bz, yz;
  bool relu;
  size_t n, b_period;
} tc_qadd;
void tc_qadd_run(const tc_qadd *q);
/* A MatMul whose A and B come from DequantizeLinear (B a constant int8
 * [K, N] with scales 1 or [N] and zero point 0): MatMulIntegerToFloat's
 * kernel on the quantized operands, wq_value (B's initializer, or NULL)
 * keying oneDNN's packed copy of it. */
tc_status tc_matmul_qdq_run(tc_kernel_ctx *k, const tc_rt_tensor *xq, const tc_rt_tensor *xs,
                            const tc_rt_tensor *xz, const tc_rt_tensor *wq, const tc_rt_tensor *ws,
                            const tc_value *wq_value, tc_rt_tensor *out);
/* A Gemm (alpha 1, A not transposed) of DequantizeLinear outputs: the same
 * kernel with B int8 [K, N], or [N, K] when tb (scales per N), and bias, a
 * float32 [N] (or NULL), added to the scaled sums. */
tc_status tc_gemm_qdq_run(tc_kernel_ctx *k, const tc_rt_tensor *xq, const tc_rt_tensor *xs,
                          const tc_rt_tensor *xz, const tc_rt_tensor *wq, const tc_rt_tensor *ws,
                          bool tb, const tc_rt_tensor *bias, const tc_value *wq_value,
                          tc_rt_tensor *out);

/* Normalizes a possibly negative axis against rank; -1 when out of range. */
int64_t tc_axis(int64_t axis, size_t rank);

#endif
