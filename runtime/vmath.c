/* Float32 array math for the fast kernels: exp, erf, tanh, sigmoid, GELU,
 * normalization rows and the row helpers of softmax-like kernels.
 *
 * Written with GCC/Clang vector extensions because the build's -O2 does
 * not auto-vectorize and libm's scalar calls dominate transformer
 * activations. The body (vmath_impl.h) is built once per instruction set
 * at that set's native width: AVX-512 (16 lanes, vmath_avx512.c), AVX2 (8
 * lanes, vmath_avx2.c) and the SSE2 baseline (4 lanes, here); the first
 * call picks the widest the CPU runs (TACORT_VMATH=avx512|avx2|sse2 asks
 * for a narrower one, tc_vmath_use for tests). Wider vectors than the
 * target's made GCC 12 turn every compare-and-select into scalar code
 * (AVX2 exp: 2.35 ns per element at 16 lanes, 1.06 at 8).
 *
 * Every function is a chain of IEEE operations (no table), applied lane by
 * lane, and a tail shorter than the vector goes through the same code
 * padded with zeros: an element's result never depends on its position in
 * the array. The AVX-512 and AVX2 sets are built with FMA and contract a
 * product followed by a sum into one fused multiply-add (-ffp-contract=fast
 * on their files: exp 0.63 -> 0.46 ns per element here); GCC contracts the
 * same source the same way at both widths, so they give the same bits. The
 * SSE2 set (CPUs without AVX2 and FMA) rounds each product: its results stay
 * within 1e-6 relative of theirs (test_parallel checks both). Reductions keep sixteen logical lanes
 * at every width (vmath_impl.h), so splitting arrays across threads cannot change them and every
 * FMA machine sums in the same order.
 *
 * exp:  Cephes expf (range reduction by ln 2 in two parts, degree-6
 *       polynomial), scaled by 2^n in two steps so subnormal results and the
 *       overflow threshold come out right. About 1 ulp.
 * erf:  x P(x^2) / Q(x^2) on [-4, 4] (the rational approximation Eigen and
 *       XLA use), +-1 outside; within 5e-7 absolute, a few ulp near 0.
 * tanh: Cephes tanhf: an odd polynomial below 0.625, 1 - 2 / (e^2x + 1)
 *       above; about 2 ulp.
 * sigmoid: 1 / (1 + e^-x).
 * log:  Cephes logf (x = 2^e m, m in [sqrt(1/2), sqrt 2), a degree-8
 *       polynomial in m - 1, e ln 2 in two parts); subnormal x scaled first.
 * gelu: t Phi(t) of x (+ a bias row) with Phi from q = erfc(|t| / sqrt 2)
 *       / 2 = e^{-t^2/2} r H(1 - 4 r), r = 1 / (|t| + 2), H a fitted
 *       degree-10 polynomial (tools/fit_gelu.py), Phi = q or 1 - q by t's
 *       sign: no branch, nothing cancels, within 4e-7 relative everywhere.
 * normalization rows: mean and variance in double (vector sums), then
 *       (x - mean) * inv * scale + bias in double, rounded once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif
#define LANES 4
#define VNAME(f) f##_sse2
#include "vmath_impl.h"
#undef VNAME
#undef LANES

/* ---- dispatch ---- */

#define VMATH_VOID(X)                                                                              \
  X(tc_vexp_f32, (float *y, const float *x, size_t n), (y, x, n))                                  \
  X(tc_verf_f32, (float *y, const float *x, size_t n), (y, x, n))                                  \
  X(tc_vtanh_f32, (float *y, const float *x, size_t n), (y, x, n))                                 \
  X(tc_vsigmoid_f32, (float *y, const float *x, size_t n), (y, x, n))                              \
  X(tc_vlog_f32, (float *y, const float *x, size_t n), (y, x, n))                                  \
  X(tc_vgelu_f32, (float *y, const float *x, const float *b, size_t n), (y, x, b, n))              \
  X(tc_vdsum_f32, (const float *x, size_t n, double *sum), (x, n, sum))                            \
  X(tc_vmoments_f32, (const float *x, size_t n, bool centred, double *mean, double *var),          \
    (x, n, centred, mean, var))                                                                    \
  X(tc_vsum_moments_f32,                                                                           \
    (float *s, const float *a, const float *b, size_t n, bool centred, double *mean, double *var), \
    (s, a, b, n, centred, mean, var))                                                              \
  X(tc_vnorm_f32,                                                                                  \
    (float *y, const float *x, size_t n, double mean, double inv, const float *scale,              \
     const float *bias),                                                                           \
    (y, x, n, mean, inv, scale, bias))                                                             \
  X(tc_vadd_inplace_f32, (float *y, const float *a, size_t n), (y, a, n))                          \
  X(tc_vaxpy_f32, (float *y, float a, const float *x, size_t n), (y, a, x, n))                     \
  X(tc_vbinary_f32, (float *y, const float *a, const float *b, size_t n, char op),                 \
    (y, a, b, n, op))                                                                              \
  X(tc_vscale_f32, (float *x, size_t n, float s), (x, n, s))                                       \
  X(tc_vsincos_f32, (float *y, const float *x, size_t n, bool cosine), (y, x, n, cosine))          \
  X(tc_vaffine_f32, (float *y, const float *x, size_t n, float m, float g, float b),               \
    (y, x, n, m, g, b))                                                                            \
  X(tc_vaffine_ch_f32,                                                                             \
    (float *y, const float *x, size_t n, const float *m, const float *g, const float *b),          \
    (y, x, n, m, g, b))                                                                            \
  X(tc_vclip_f32, (float *y, const float *x, size_t n, float lo, float hi), (y, x, n, lo, hi))     \
  X(tc_vround_f32, (float *y, const float *x, size_t n, int op), (y, x, n, op))                    \
  X(tc_vmax_taps_f32, (float *y, const float *x, const ptrdiff_t *off, size_t taps, size_t n),     \
    (y, x, off, taps, n))                                                                          \
  X(tc_vtranspose_f32, (float *y, const float *x, size_t A, size_t B), (y, x, A, B))               \
  X(tc_vbf16_to_f32, (float *y, const uint16_t *x, size_t n), (y, x, n))                           \
  X(tc_vf32_to_bf16, (uint16_t * y, const float *x, size_t n), (y, x, n))                          \
  X(tc_vf16_to_f32, (float *y, const uint16_t *x, size_t n), (y, x, n))                            \
  X(tc_vf32_to_f16, (uint16_t * y, const float *x, size_t n), (y, x, n))                           \
  X(tc_vdequant_i32_f32,                                                                           \
    (float *y, const int32_t *acc, const int32_t *corr, const float *scale, const float *bias,     \
     size_t n),                                                                                    \
    (y, acc, corr, scale, bias, n))
#define VMATH_FLOAT(X)                                                                             \
  X(tc_vsum_f32, (const float *x, size_t n), (x, n))                                               \
  X(tc_vdot_f32, (const float *a, const float *b, size_t n), (a, b, n))                            \
  X(tc_vmax_f32, (const float *x, size_t n), (x, n))                                               \
  X(tc_vexp_sub_sum_f32, (float *y, const float *x, size_t n, float m), (y, x, n, m))

typedef struct vmath_set {
  const char *name;
#define MEMBER_V(f, params, args) void(*f) params;
#define MEMBER_F(f, params, args) float(*f) params;
  VMATH_VOID(MEMBER_V)
  VMATH_FLOAT(MEMBER_F)
} vmath_set;

#define SET(sfx)                                                                                   \
  { .name = #sfx, VMATH_VOID(INIT_##sfx) VMATH_FLOAT(INIT_##sfx) }
#define INIT_sse2(f, params, args) .f = f##_sse2,
static const vmath_set set_sse2 = SET(sse2);

#if !defined(__clang__) /* the wider sets are built by GCC only (vmath_avx*.c) */
#define DECL_V(f, params, args) void f##_avx512 params, f##_avx2 params;
#define DECL_F(f, params, args) float f##_avx512 params, f##_avx2 params;
VMATH_VOID(DECL_V)
VMATH_FLOAT(DECL_F)
#define INIT_avx512(f, params, args) .f = f##_avx512,
#define INIT_avx2(f, params, args) .f = f##_avx2,
static const vmath_set set_avx512 = SET(avx512), set_avx2 = SET(avx2);
static const vmath_set *const sets[] = {&set_avx512, &set_avx2, &set_sse2};
static bool runs(const vmath_set *s) {
  bool fma = __builtin_cpu_supports("fma");
  return s == &set_avx512 ? __builtin_cpu_supports("avx512f") && fma
         : s == &set_avx2 ? __builtin_cpu_supports("avx2") && fma
                          : true;
}
#else
static const vmath_set *const sets[] = {&set_sse2};
static bool runs(const vmath_set *s) { return s != NULL; }
#endif

static const vmath_set *chosen;

/* The set named (NULL: the widest this CPU runs); NULL when it is unknown or
 * the CPU does not run it. */
static const vmath_set *find(const char *name) {
  for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
    if ((!name || !strcmp(name, sets[i]->name)) && runs(sets[i]))
      return sets[i];
  return NULL;
}

static const vmath_set *cur(void) {
  const vmath_set *s = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
  if (!s) { /* first call: every thread that gets here picks the same set */
    const char *want = getenv("TACORT_VMATH");
    if (!want || !(s = find(want)))
      s = find(NULL);
    __atomic_store_n(&chosen, s, __ATOMIC_RELEASE);
  }
  return s;
}

bool tc_vmath_use(const char *name) {
  const vmath_set *s = find(name);
  if (s)
    __atomic_store_n(&chosen, s, __ATOMIC_RELEASE);
  return s != NULL;
}

const char *tc_vmath_name(void) { return cur()->name; }

#define WRAP_V(f, params, args)                                                                    \
  void f params { cur()->f args; }
#define WRAP_F(f, params, args)                                                                    \
  float f params { return cur()->f args; }
VMATH_VOID(WRAP_V)
VMATH_FLOAT(WRAP_F)
