/* Float32 array math for the fast kernels: exp, erf, tanh, sigmoid.
 *
 * Written with GCC/Clang vector extensions, four lanes (SSE2, the build's
 * baseline), because the build's -O2 does not auto-vectorize and libm's
 * scalar calls dominate transformer activations. Every function is a chain
 * of IEEE operations (no fused multiply-add, no table), applied lane by lane,
 * and a tail shorter than four lanes goes through the same code padded with
 * zeros: an element's result never depends on its position in the array, so
 * splitting arrays across threads cannot change results.
 *
 * exp:  Cephes expf (range reduction by ln 2 in two parts, degree-6
 *       polynomial), scaled by 2^n in two steps so subnormal results and the
 *       overflow threshold come out right. About 1 ulp.
 * erf:  x P(x^2) / Q(x^2) on [-4, 4] (the rational approximation Eigen and
 *       XLA use), +-1 outside; within 5e-7 absolute, a few ulp near 0.
 * tanh: Cephes tanhf: an odd polynomial below 0.625, 1 - 2 / (e^2x + 1)
 *       above; about 2 ulp.
 * sigmoid: 1 / (1 + e^-x). */
#include <string.h>

#include "kernel.h"

typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f splat(float v) { return (v4f){v, v, v, v}; }

/* m ? a : b per lane (m all ones or all zeros). */
static inline v4f sel(v4i m, v4f a, v4f b) { return (v4f)((m & (v4i)a) | (~m & (v4i)b)); }

static inline v4f vmin(v4f a, v4f b) { return sel(a < b, a, b); }
static inline v4f vmax(v4f a, v4f b) { return sel(a > b, a, b); }

static inline v4f v_exp(v4f x) {
  v4i nan = x != x;
  x = sel(nan, splat(0), x);
  x = vmax(vmin(x, splat(89.0f)), splat(-105.0f));
  /* n = round(x / ln 2): the 1.5 * 2^23 trick rounds to nearest and leaves n
   * in the low mantissa bits */
  const float magic = 12582912.0f;
  v4f t = x * splat(1.44269504088896341f) + splat(magic);
  v4f n = t - splat(magic);
  v4i ni = (v4i)t - (v4i)splat(magic);
  v4f r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  v4f p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
  /* 2^n as 2^(n/2) * 2^(n - n/2): each factor is a normal float for |n| <= 152 */
  v4i n1 = ni >> 1, n2 = ni - n1;
  v4f s1 = (v4f)((n1 + 127) << 23), s2 = (v4f)((n2 + 127) << 23);
  return sel(nan, splat(__builtin_nanf("")), p * s1 * s2);
}

static inline v4f v_erf(v4f x) {
  v4i nan = x != x;
  x = vmax(vmin(x, splat(4.0f)), splat(-4.0f));
  v4f x2 = x * x;
  v4f p = x2 * splat(-2.72614225801306e-10f) + splat(2.77068142495902e-08f);
  p = x2 * p + splat(-2.10102402082508e-06f);
  p = x2 * p + splat(-5.69250639462346e-05f);
  p = x2 * p + splat(-7.34990630326855e-04f);
  p = x2 * p + splat(-2.95459980854025e-03f);
  p = x2 * p + splat(-1.60960333262415e-02f);
  p = x * p;
  v4f q = x2 * splat(-1.45660718464996e-05f) + splat(-2.13374055278905e-04f);
  q = x2 * q + splat(-1.68282697438203e-03f);
  q = x2 * q + splat(-7.37332916720468e-03f);
  q = x2 * q + splat(-1.42647390514189e-02f);
  return sel(nan, splat(__builtin_nanf("")), p / q);
}

static inline v4f v_tanh(v4f x) {
  v4i sign = (v4i)x & (v4i)splat(-0.0f);
  v4f a = (v4f)((v4i)x ^ sign);
  /* |x| < 0.625: odd polynomial */
  v4f z = a * a;
  v4f p = splat(-5.70498872745e-3f);
  p = p * z + splat(2.06390887954e-2f);
  p = p * z + splat(-5.37397155531e-2f);
  p = p * z + splat(1.33314422036e-1f);
  p = p * z + splat(-3.33332819422e-1f);
  v4f small = p * z * a + a;
  /* otherwise 1 - 2 / (e^2|x| + 1) */
  v4f big = splat(1.0f) - splat(2.0f) / (v_exp(a + a) + splat(1.0f));
  v4f y = sel(a < splat(0.625f), small, big);
  /* the sign of x back (-0 stays -0); NaN passes through */
  return sel(x != x, x, (v4f)((v4i)y | sign));
}

static inline v4f v_sigmoid(v4f x) { return splat(1.0f) / (splat(1.0f) + v_exp(-x)); }

/* Applies F over n floats, four at a time; the tail is padded with zeros. */
#define VMAP(name, F)                                                                              \
  void name(float *y, const float *x, size_t n) {                                                  \
    size_t i = 0;                                                                                  \
    for (; i + 4 <= n; i += 4) {                                                                   \
      v4f v;                                                                                       \
      memcpy(&v, x + i, sizeof v);                                                                 \
      v = F(v);                                                                                    \
      memcpy(y + i, &v, sizeof v);                                                                 \
    }                                                                                              \
    if (i < n) {                                                                                   \
      v4f v = splat(0);                                                                            \
      memcpy(&v, x + i, (n - i) * sizeof *x);                                                      \
      v = F(v);                                                                                    \
      memcpy(y + i, &v, (n - i) * sizeof *y);                                                      \
    }                                                                                              \
  }

VMAP(tc_vexp_f32, v_exp)
VMAP(tc_verf_f32, v_erf)
VMAP(tc_vtanh_f32, v_tanh)
VMAP(tc_vsigmoid_f32, v_sigmoid)
