/* The body of libtacort's float32 array math (runtime/vmath.c), built once
 * per instruction set: the including file defines LANES (the native vector
 * width in floats: 16, 8 or 4) and VNAME(f) (f with the set's suffix), and
 * sets the target. Private to vmath*.c. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

#if LANES >= 8 /* the including file set the AVX-512 or AVX2 target */
#include <immintrin.h>
#endif

#define VINLINE static inline __attribute__((always_inline))
typedef float v4f __attribute__((vector_size(4 * LANES))); /* LANES lanes, whatever the name */
typedef int32_t v4i __attribute__((vector_size(4 * LANES)));

/* All lanes v, bit for bit (a float add would turn -0 into +0). */
VINLINE v4f splat(float v) {
  int32_t b;
  memcpy(&b, &v, sizeof b);
  return (v4f)((v4i){0} + b);
}

/* m ? a : b per lane (m all ones or all zeros). */
VINLINE v4f sel(v4i m, v4f a, v4f b) { return (v4f)((m & (v4i)a) | (~m & (v4i)b)); }

/* All ones where x is NaN, from the bits (GCC 12 scalarizes a float x != x
 * that meets another mask in 64-byte vectors). */
VINLINE v4i nan_mask(v4f x) { return ((v4i)splat(__builtin_inff()) - ((v4i)x & 0x7fffffff)) >> 31; }

/* c[0] x^(n-1) + ... + c[n-1], Horner's order (n is a constant; unrolled:
 * -O2 alone keeps the loop, a dependent add and branch per term) */
VINLINE v4f horner(v4f x, const float *c, int n) {
  v4f p = splat(c[0]);
#pragma GCC unroll 16
  for (int i = 1; i < n; i++)
    p = p * x + splat(c[i]);
  return p;
}

VINLINE v4f vmin(v4f a, v4f b) { return sel(a < b, a, b); }
VINLINE v4f vmax(v4f a, v4f b) { return sel(a > b, a, b); }

/* e^(x + lo) for x + lo in [-105, 89] (x + lo NaN gives NaN; outside the
 * range the result is garbage: callers clamp), lo small against 1 (|lo| <
 * 0.1) and used only when has_lo (a constant: the plain exp has no extra
 * add): an argument given exactly as the sum of two floats. n comes from the
 * rounded sum, lo joins the reduced argument r. */
VINLINE v4f exp_core(v4f x, v4f lo, bool has_lo) {
  v4f sum = has_lo ? x + lo : x;
  /* n = round(sum / ln 2): the 1.5 * 2^23 trick rounds to nearest and
   * leaves n in the low mantissa bits */
  const float magic = 12582912.0f;
  v4f t = sum * splat(1.44269504088896341f) + splat(magic);
  v4f n = t - splat(magic);
  v4f r = x - n * splat(0.693359375f) - n * splat(-2.12194440e-4f);
  if (has_lo)
    r = r + lo;
  v4f p = splat(1.9875691500e-4f);
  p = p * r + splat(1.3981999507e-3f);
  p = p * r + splat(8.3334519073e-3f);
  p = p * r + splat(4.1665795894e-2f);
  p = p * r + splat(1.6666665459e-1f);
  p = p * r + splat(5.0000001201e-1f);
  p = p * r * r + r + splat(1.0f);
#if LANES == 16
  /* p 2^n in one instruction (vscalefps): the same single rounding as the
   * two products below, so the same bits */
  return (v4f)_mm512_scalef_ps((__m512)p, (__m512)n);
#else
  /* 2^n as 2^(n/2) * 2^(n - n/2): each factor is a normal float for |n| <= 152
   * (n as an integer from t's low mantissa bits) */
  v4i ni = (v4i)t - (v4i)splat(magic), n1 = ni >> 1, n2 = ni - n1;
  v4f s1 = (v4f)((n1 + 127) << 23), s2 = (v4f)((n2 + 127) << 23);
  return p * s1 * s2;
#endif
}

/* e^x for every float: NaN stays NaN, the argument clamped to [-105, 89]
 * (0 and infinity come out of the scaling). */
VINLINE v4f v_exp(v4f x) {
#if LANES == 16
  /* a NaN becomes the default NaN, as below (the same bits) */
  __mmask16 nan = _mm512_cmp_ps_mask((__m512)x, (__m512)x, _CMP_UNORD_Q);
  __m512 c =
      _mm512_max_ps(_mm512_set1_ps(-105.0f), _mm512_min_ps(_mm512_set1_ps(89.0f), (__m512)x));
  return (v4f)_mm512_mask_mov_ps((__m512)exp_core((v4f)c, splat(0), false), nan,
                                 _mm512_set1_ps(__builtin_nanf("")));
#else
  v4i nan = nan_mask(x);
  x = vmax(vmin(sel(nan, splat(0), x), splat(89.0f)), splat(-105.0f));
  return sel(nan, splat(__builtin_nanf("")), exp_core(x, splat(0), false));
#endif
}

VINLINE v4f v_erf(v4f x) {
  v4i nan = nan_mask(x);
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

VINLINE v4f v_tanh(v4f x) {
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
  return sel(nan_mask(x), x, (v4f)((v4i)y | sign));
}

VINLINE v4f v_sigmoid(v4f x) { return splat(1.0f) / (splat(1.0f) + v_exp(-x)); }

/* Cephes logf: x = 2^e m with m in [sqrt(1/2), sqrt 2), log(m) = f - f^2/2 +
 * f^3 P(f) for f = m - 1, plus e ln 2 in two parts. Subnormal x is scaled by
 * 2^23 first; 0 gives -inf, x < 0 NaN, +inf +inf, NaN NaN. */
VINLINE v4f v_log(v4f x) {
  v4i sub =
      ((v4i)x < (v4i)splat(1.17549435e-38f)) & ((v4i)x > (v4i)splat(0.0f)); /* subnormal > 0 */
  v4f xs = sel(sub, x * splat(8388608.0f), x);
  v4i bits = (v4i)xs;
  v4f e = __builtin_convertvector((bits >> 23) - 126, v4f) - sel(sub, splat(23.0f), splat(0.0f));
  v4f m = (v4f)((bits & 0x007fffff) | (v4i)splat(0.5f)); /* [0.5, 1) */
  v4i lo = m < splat(0.707106781186547524f);
  e = e - sel(lo, splat(1.0f), splat(0.0f));
  v4f f = m - splat(1.0f) + sel(lo, m, splat(0.0f));
  v4f z = f * f;
  static const float P[] = {7.0376836292e-2f,  -1.1514610310e-1f, 1.1676998740e-1f,
                            -1.2420140846e-1f, 1.4249322787e-1f,  -1.6668057665e-1f,
                            2.0000714765e-1f,  -2.4999993993e-1f, 3.3333331174e-1f};
  v4f p = horner(f, P, sizeof P / sizeof P[0]);
  v4f y = p * f * z + e * splat(-2.12194440e-4f) - z * splat(0.5f);
  v4f r = f + y + e * splat(0.693359375f);
  r = sel((v4i)x == (v4i)splat(__builtin_inff()), x, r);                  /* +inf */
  r = sel(((v4i)x & 0x7fffffff) == 0, splat(-__builtin_inff()), r);       /* +-0 */
  r = sel((x < splat(0.0f)) | nan_mask(x), splat(__builtin_nanf("")), r); /* x < 0, NaN */
  return r;
}

/* Applies F over n floats, LANES at a time; the tail is padded with zeros. */
#define VMAP(name, F)                                                                              \
  void VNAME(name)(float *y, const float *x, size_t n) {                                           \
    size_t i = 0;                                                                                  \
    for (; i + LANES <= n; i += LANES) {                                                           \
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

/* Gelu(t) = t Phi(t) with one formula for every t: q = erfc(|t| / sqrt 2)
 * / 2 = e^{-t^2/2} r H(1 - 4 r), r = 1 / (|t| + 2), H a degree-10
 * polynomial fitted to e^{t^2/2} erfc(t / sqrt 2) (|t| + 2) / 2 over [0,
 * 13.25] (tools/fit_gelu.py: 2e-8 relative; 1.3e-7 evaluated in float);
 * Phi = q below 0, 1 - q above. Nothing cancels (1 + erf near -2 did), so
 * the result is within a few 1e-7 relative everywhere. t^2 / 2 is split as
 * th^2 / 2 + tl (t + th) / 2 with th t's top 12 bits (th^2 exact), so the
 * exponential keeps its precision up to t^2 / 2 = 88. Below -13.25 the
 * result (under 3e-39) is -0 without the subnormal arithmetic (a microcode
 * assist per element) that would give it; above 9 Phi is 1 in float; -inf
 * gives NaN, as the formula. */
VINLINE v4f v_gelu(v4f t) {
  v4i gone = (t < splat(-13.25f)) & ((v4i)t != (v4i)splat(-__builtin_inff()));
  v4i one = t > splat(9.0f);
  v4f a = sel(gone | one, splat(1.0f), (v4f)((v4i)t & 0x7fffffff)); /* |t|, in range */
  v4f ah = (v4f)((v4i)a & ~0xfff), al = a - ah;
  v4f e = exp_core(ah * ah * splat(-0.5f), al * (a + ah) * splat(-0.5f), true); /* a in range */
  v4f r = splat(1.0f) / (a + splat(2.0f));
  static const float H[] = {-6.828405458e-05f, 4.269169222e-05f,  7.176111103e-04f,
                            8.700269391e-04f,  -1.889709383e-03f, -6.745908875e-03f,
                            -4.829526006e-04f, 3.672075272e-02f,  2.879835293e-02f,
                            -3.314045370e-01f, 6.724079847e-01f};
  /* t q, e last: near -13 e is close to FLT_MIN and e r H would be subnormal */
  v4f tq = t * (r * horner(splat(1.0f) - splat(4.0f) * r, H, sizeof H / sizeof H[0])) * e;
  return sel(gone, splat(-0.0f), sel(one, t, sel(t < splat(0.0f), tq, t - tq)));
}

/* m <= LANES elements of x (+ b) through v_gelu into y. */
VINLINE void gelu_block(float *y, const float *x, const float *b, size_t m) {
  v4f t = splat(0);
  if (m == LANES)
    memcpy(&t, x, sizeof t);
  else
    memcpy(&t, x, m * sizeof *x);
  if (b) {
    v4f bb = splat(0);
    if (m == LANES)
      memcpy(&bb, b, sizeof bb);
    else
      memcpy(&bb, b, m * sizeof *b);
    t = t + bb;
  }
  v4f r = v_gelu(t);
  if (m == LANES)
    memcpy(y, &r, sizeof r);
  else
    memcpy(y, &r, m * sizeof *y);
}

void VNAME(tc_vgelu_f32)(float *y, const float *x, const float *b, size_t n) {
  size_t i = 0;
  for (; i + LANES <= n; i += LANES)
    gelu_block(y + i, x + i, b ? b + i : NULL, LANES);
  if (i < n)
    gelu_block(y + i, x + i, b ? b + i : NULL, n - i);
}

/* Doubles, LANES / 2 of them (the same bytes as LANES floats), and the
 * floats they come from. */
#define HL (LANES / 2)
typedef double v8d __attribute__((vector_size(4 * LANES)));
typedef float vhf __attribute__((vector_size(2 * LANES)));

VINLINE v8d ld_d(const float *x) {
  vhf f;
  memcpy(&f, x, sizeof f);
  return __builtin_convertvector(f, v8d);
}

/* Sums of doubles over two groups of eight logical lanes (x[i, i + 8) and
 * x[i + 8, i + 16) per step), DPARTS vectors each, summed in lane order. */
#define DPARTS (8 / HL)
VINLINE double hsum8_d(const v8d *a) {
  double s = 0;
  for (int p = 0; p < DPARTS; p++)
    for (int l = 0; l < HL; l++)
      s += a[p][l];
  return s;
}

/* The moments of s[0, n); with a, s = a + b is written first, row piece by
 * row piece, in the loop that sums it (the float32 sum of the unfused Add). */
/* The double sum of n floats s (with a: of s = a + b, written on the way):
 * sixteen lanes, then their sums in order; moments' mean pass. */
VINLINE double dsum(float *s, const float *a, const float *b, size_t n) {
  v8d da[DPARTS], db[DPARTS];
  size_t i;
  for (int p = 0; p < DPARTS; p++)
    da[p] = db[p] = (v8d){0};
  for (i = 0; i + 16 <= n; i += 16) {
    if (a)
      for (int p = 0; p < 16 / LANES; p++) {
        v4f va, vb;
        memcpy(&va, a + i + p * LANES, sizeof va);
        memcpy(&vb, b + i + p * LANES, sizeof vb);
        va += vb;
        memcpy(s + i + p * LANES, &va, sizeof va);
      }
    for (int p = 0; p < DPARTS; p++) {
      da[p] += ld_d(s + i + p * HL);
      db[p] += ld_d(s + i + 8 + p * HL);
    }
  }
  double sum = hsum8_d(da) + hsum8_d(db);
  for (; i < n; i++) {
    if (a)
      s[i] = a[i] + b[i];
    sum += s[i];
  }
  return sum;
}

VINLINE void moments(float *s, const float *a, const float *b, size_t n, bool centred, double *mean,
                     double *var) {
  double m = 0;
  size_t i;
  v8d da[DPARTS], db[DPARTS];
  if (a && !centred) { /* RMS: no mean pass to write the sum in */
    for (i = 0; i + LANES <= n; i += LANES) {
      v4f va, vb;
      memcpy(&va, a + i, sizeof va);
      memcpy(&vb, b + i, sizeof vb);
      va += vb;
      memcpy(s + i, &va, sizeof va);
    }
    for (; i < n; i++)
      s[i] = a[i] + b[i];
  }
  if (centred && n)
    m = dsum(s, a, b, n) / (double)n;
  v8d mv = (v8d){0} + m;
  for (int p = 0; p < DPARTS; p++)
    da[p] = db[p] = (v8d){0};
  for (i = 0; i + 16 <= n; i += 16)
    for (int p = 0; p < DPARTS; p++) {
      v8d d = ld_d(s + i + p * HL) - mv, e = ld_d(s + i + 8 + p * HL) - mv;
      da[p] += d * d;
      db[p] += e * e;
    }
  double s2 = hsum8_d(da) + hsum8_d(db);
  for (; i < n; i++) {
    double d = s[i] - m;
    s2 += d * d;
  }
  *mean = m;
  *var = n ? s2 / (double)n : 0;
}

void VNAME(tc_vdsum_f32)(const float *x, size_t n, double *sum) {
  *sum = dsum((float *)x, NULL, NULL, n); /* x is only read */
}

void VNAME(tc_vmoments_f32)(const float *x, size_t n, bool centred, double *mean, double *var) {
  moments((float *)x, NULL, NULL, n, centred, mean, var); /* x is only read */
}

void VNAME(tc_vsum_moments_f32)(float *s, const float *a, const float *b, size_t n, bool centred,
                                double *mean, double *var) {
  moments(s, a, b, n, centred, mean, var);
}

void VNAME(tc_vnorm_f32)(float *y, const float *x, size_t n, double mean, double inv,
                         const float *scale, const float *bias) {
  float mf = (float)mean, ivf = (float)inv;
  v4f mv = splat(mf), iv = splat(ivf);
  size_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    v4f xv, sv;
    memcpy(&xv, x + i, sizeof xv);
    memcpy(&sv, scale + i, sizeof sv);
    v4f v = (xv - mv) * iv * sv;
    if (bias) {
      v4f bv;
      memcpy(&bv, bias + i, sizeof bv);
      v += bv;
    }
    memcpy(y + i, &v, sizeof v);
  }
  for (; i < n; i++) { /* as the vector lanes: no + 0 without a bias (-0 stays) */
    float v = (x[i] - mf) * ivf * scale[i];
    y[i] = bias ? v + bias[i] : v;
  }
}

/* sin(x) (cosine: quadrant one on) for |x| <= TC_VSIN_MAX (other lanes are
 * garbage: tc_vsincos_f32 gives them libm's): x reduced by n pi/2 with n =
 * round(x 2 / pi) and pi/2 in three parts (Cephes' split: the first
 * product exact below 2^16 quadrants), then Cephes' sinf / cosf polynomials
 * on [-pi/4, pi/4], picked and signed by the quadrant. */
VINLINE v4f v_sincos(v4f x, int cosine) {
  v4i sign = (v4i)x & (v4i)splat(-0.0f);
  v4f a = (v4f)((v4i)x ^ sign);
  const float magic = 12582912.0f;
  v4f t = a * splat(0.636619772367581343f) + splat(magic);
  v4f n = t - splat(magic);
  v4i q = ((v4i)t - (v4i)splat(magic)) + cosine;
  v4f r = ((a - n * splat(1.5703125f)) - n * splat(4.837512969970703125e-4f)) -
          n * splat(7.54978995489188216e-8f);
  v4f z = r * r;
  v4f s = ((splat(-1.9515295891e-4f) * z + splat(8.3321608736e-3f)) * z - splat(1.6666654611e-1f)) *
              z * r +
          r;
  v4f c = ((splat(2.443315711809948e-5f) * z - splat(1.388731625493765e-3f)) * z +
           splat(4.166664568298827e-2f)) *
              z * z -
          splat(0.5f) * z + splat(1.0f);
  v4f y = sel(-(q & 1), c, s);
  v4i neg = -((q >> 1) & 1) & (v4i)splat(-0.0f); /* quadrants 2 and 3: the sign bit */
  if (!cosine)
    neg ^= sign; /* sine is odd */
  return (v4f)((v4i)y ^ neg);
}

VMAP(tc_vexp_f32, v_exp)
VMAP(tc_verf_f32, v_erf)
VMAP(tc_vtanh_f32, v_tanh)
VMAP(tc_vsigmoid_f32, v_sigmoid)
VMAP(tc_vlog_f32, v_log)

/* ---- row helpers for softmax-like kernels ---- */

/* x[0, n) padded with pad past n */
VINLINE v4f load_pad(const float *x, size_t i, size_t n, float pad) {
  v4f v;
  if (n - i >= LANES) { /* a constant-size copy: one load */
    memcpy(&v, x + i, sizeof v);
    return v;
  }
#if LANES == 16
  /* a masked load: a variable-size copy through the stack stalls store forwarding */
  return (v4f)_mm512_mask_loadu_ps((__m512)splat(pad), (__mmask16)((1u << (n - i)) - 1), x + i);
#else
  v = splat(pad);
  memcpy(&v, x + i, (n - i) * sizeof *x);
  return v;
#endif
}

VINLINE void store_part(float *y, size_t i, size_t n, v4f v) {
  if (n - i >= LANES)
    memcpy(y + i, &v, sizeof v);
  else
#if LANES == 16
    _mm512_mask_storeu_ps(y + i, (__mmask16)((1u << (n - i)) - 1), (__m512)v);
#else
    memcpy(y + i, &v, (n - i) * sizeof *y);
#endif
}

/* Reductions run over sixteen logical lanes whatever LANES is: PARTS
 * vectors, logical lane p * LANES + l in part p, lane l, summed in logical
 * lane order, so every ISA gives the same bits. load16: load_pad, or all
 * pad past the end. */
#define PARTS (16 / LANES)
VINLINE v4f load16(const float *x, size_t i, size_t n, float pad) {
  return i < n ? load_pad(x, i, n, pad) : splat(pad);
}
VINLINE float hsum16(const v4f *acc) {
  float r = 0;
  for (int p = 0; p < PARTS; p++)
    for (int l = 0; l < LANES; l++)
      r += acc[p][l];
  return r;
}

void VNAME(tc_vadd_inplace_f32)(float *y, const float *a, size_t n) {
  for (size_t i = 0; i < n; i += LANES) {
    store_part(y, i, n, load_pad(y, i, n, 0) + load_pad(a, i, n, 0));
  }
}

/* One loop per op (the op is tested once, not per vector). */
#define VBINARY_LOOP(expr)                                                                         \
  for (size_t i = 0; i < n; i += LANES) {                                                          \
    v4f va = load_pad(a, i, n, 1), vb = load_pad(b, i, n, 1);                                      \
    store_part(y, i, n, (expr));                                                                   \
  }

void VNAME(tc_vbinary_f32)(float *y, const float *a, const float *b, size_t n, char op) {
  switch (op) {
  case '+': VBINARY_LOOP(va + vb) break;
  case '-': VBINARY_LOOP(va - vb) break;
  case '*': VBINARY_LOOP(va * vb) break;
  case 'M': /* b where b > a or b is NaN: a NaN on either side stays */
    VBINARY_LOOP(sel(nan_mask(vb), vb, sel(vb > va, vb, va))) break;
  default: VBINARY_LOOP(va / vb) break;
  }
}

void VNAME(tc_vmax_taps_f32)(float *y, const float *x, const ptrdiff_t *off, size_t taps,
                             size_t n) {
  for (size_t i = 0; i < n; i += LANES) {
    v4f acc = load_pad(x + off[0], i, n, 0);
    for (size_t t = 1; t < taps; t++) { /* tc_vbinary_f32's M, tap by tap */
      v4f v = load_pad(x + off[t], i, n, 0);
#if LANES == 16
      /* vmaxps(v, acc) is v > acc ? v : acc, and acc when either is NaN;
       * then a NaN v wins: M's bits in three instructions */
      __m512 m = _mm512_max_ps((__m512)v, (__m512)acc);
      acc = (v4f)_mm512_mask_mov_ps(m, _mm512_cmp_ps_mask((__m512)v, (__m512)v, _CMP_UNORD_Q),
                                    (__m512)v);
#else
      acc = sel(nan_mask(v), v, sel(v > acc, v, acc));
#endif
    }
    store_part(y, i, n, acc);
  }
}

#if LANES == 16
/* a and b's lanes interleaved: a0 b0 a1 b1 ... in *lo, from a8 b8 in *hi */
VINLINE void zip2(__m512 a, __m512 b, __m512 *lo, __m512 *hi) {
  const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
                ih =
                    _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  *lo = _mm512_permutex2var_ps(a, il, b);
  *hi = _mm512_permutex2var_ps(a, ih, b);
}
/* four rows' lanes interleaved: r0[0] r1[0] r2[0] r3[0] r0[1] ... in out[0..4) */
VINLINE void zip4(const __m512 *r, size_t step, __m512 *out) {
  __m512 e0, e1, o0, o1;
  zip2(r[0], r[2 * step], &e0, &e1);
  zip2(r[step], r[3 * step], &o0, &o1);
  zip2(e0, o0, &out[0], &out[1]);
  zip2(e1, o1, &out[2], &out[3]);
}
#endif

#if LANES == 16
/* tc_vtranspose_f32 for a constant A of 2, 4 or 8 (inlined per A, so the
 * rows stay in registers): sixteen columns at a time, the last ones masked. */
VINLINE void transpose_rows(float *y, const float *x, const size_t A, size_t B) {
  for (size_t b0 = 0; b0 < B; b0 += 16) {
    size_t w = B - b0 < 16 ? B - b0 : 16, n = w * A; /* columns, values out */
    __mmask16 m = (__mmask16)((1u << w) - 1);
    __m512 r[8], out[8], e[4], o[4];
    for (size_t a = 0; a < A; a++)
      r[a] = _mm512_maskz_loadu_ps(m, x + a * B + b0);
    if (A == 2) {
      zip2(r[0], r[1], &out[0], &out[1]);
    } else if (A == 4) {
      zip4(r, 1, out);
    } else { /* the even rows' and the odd rows' interleavings zipped */
      zip4(r, 2, e);
      zip4(r + 1, 2, o);
      for (size_t i = 0; i < 4; i++)
        zip2(e[i], o[i], &out[2 * i], &out[2 * i + 1]);
    }
    float *yb = y + b0 * A;
    if (w == 16) {
      for (size_t i = 0; i < A; i++)
        _mm512_storeu_ps(yb + 16 * i, out[i]);
      continue;
    }
    for (size_t i = 0; i < A && 16 * i < n; i++)
      _mm512_mask_storeu_ps(
          yb + 16 * i, n - 16 * i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - 16 * i)) - 1),
          out[i]);
  }
}
#endif

void VNAME(tc_vtranspose_f32)(float *y, const float *x, size_t A, size_t B) {
#if LANES == 16
  if (A == 2)
    return transpose_rows(y, x, 2, B);
  if (A == 4)
    return transpose_rows(y, x, 4, B);
  if (A == 8)
    return transpose_rows(y, x, 8, B);
#endif
  for (size_t b = 0; b < B; b++)
    for (size_t a = 0; a < A; a++)
      memcpy(y + b * A + a, x + a * B + b, sizeof *y);
}

float VNAME(tc_vdot_f32)(const float *a, const float *b, size_t n) {
  v4f acc[PARTS];
  for (int p = 0; p < PARTS; p++)
    acc[p] = splat(0);
  for (size_t i = 0; i < n; i += 16)
    for (int p = 0; p < PARTS; p++)
      acc[p] += load16(a, i + (size_t)p * LANES, n, 0) * load16(b, i + (size_t)p * LANES, n, 0);
  return hsum16(acc);
}

void VNAME(tc_vaxpy_f32)(float *y, float a, const float *x, size_t n) {
  v4f va = splat(a);
  for (size_t i = 0; i < n; i += LANES)
    store_part(y, i, n, load_pad(y, i, n, 0) + va * load_pad(x, i, n, 0));
}

float VNAME(tc_vsum_f32)(const float *x, size_t n) {
  v4f acc[PARTS];
  for (int p = 0; p < PARTS; p++)
    acc[p] = splat(0);
  for (size_t i = 0; i < n; i += 16)
    for (int p = 0; p < PARTS; p++)
      acc[p] += load16(x, i + (size_t)p * LANES, n, 0);
  return hsum16(acc);
}

float VNAME(tc_vmax_f32)(const float *x, size_t n) {
#if LANES == 16
  /* Two chains of compares (32 values a step), then the lanes by a tree of
   * vmaxps: no lane holds NaN (never taken), so the tree gives the same
   * value as the other sets' lane-order pass; only which of +0 and -0 a
   * zero maximum has may differ, which its callers (softmax's x - max)
   * cannot see. Short rows (attention over 128 keys) spent most of their
   * time in the serial pass over the lanes. */
  __m512 m0 = _mm512_set1_ps(-__builtin_inff()), m1 = m0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 a = _mm512_loadu_ps(x + i), b = _mm512_loadu_ps(x + i + 16);
    m0 = _mm512_mask_mov_ps(m0, _mm512_cmp_ps_mask(a, m0, _CMP_GT_OQ), a);
    m1 = _mm512_mask_mov_ps(m1, _mm512_cmp_ps_mask(b, m1, _CMP_GT_OQ), b);
  }
  for (; i < n; i += 16) {
    __m512 a = (__m512)load_pad(x, i, n, -__builtin_inff());
    m0 = _mm512_mask_mov_ps(m0, _mm512_cmp_ps_mask(a, m0, _CMP_GT_OQ), a);
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(m0, m1));
#else
  v4f m[PARTS];
  for (int p = 0; p < PARTS; p++)
    m[p] = splat(-__builtin_inff());
  for (size_t i = 0; i < n; i += 16)
    for (int p = 0; p < PARTS; p++) {
      v4f v = load16(x, i + (size_t)p * LANES, n, -__builtin_inff());
      m[p] = sel(v > m[p], v, m[p]); /* NaN is never taken */
    }
  float r = -__builtin_inff();
  for (int p = 0; p < PARTS; p++)
    for (int l = 0; l < LANES; l++)
      r = m[p][l] > r ? m[p][l] : r;
  return r;
#endif
}

/* e^d, 0 where d < thr (d = x - m; NaN stays NaN): d clamped to [thr, 89],
 * where exp_core needs no checks of its own. */
VINLINE v4f exp_above(v4f d, v4f thr) {
#if LANES == 16
  /* the clamp as v_exp's (NaN passes), the zeros by a mask */
  __mmask16 low = _mm512_cmp_ps_mask((__m512)d, (__m512)thr, _CMP_LT_OQ);
  __m512 c = _mm512_max_ps((__m512)thr, _mm512_min_ps(_mm512_set1_ps(89.0f), (__m512)d));
  return (v4f)_mm512_maskz_mov_ps((__mmask16)~low, (__m512)exp_core((v4f)c, splat(0), false));
#else
  v4i low = d < thr; /* NaN is not */
  d = sel(d > splat(89.0f), splat(89.0f), sel(low, thr, d));
  return sel(low, splat(0), exp_core(d, splat(0), false));
#endif
}

/* Differences below thr = ln(FLT_MIN) + ceil(log2 n) ln 2 give 0: their
 * exponentials, divided by the sum (at most n) in softmax, would be
 * subnormal, and subnormal arithmetic costs the CPU a microcode assist per
 * element (the softmax of a long attention row spent more time there than
 * in exp). The change is below e^thr <= 2n FLT_MIN before normalization.
 * (ceil(log2 n) ln 2 bounds ln n from above without a logf per row, which
 * cost a fifth of a 128-key softmax row.) */
float VNAME(tc_vexp_sub_sum_f32)(float *y, const float *x, size_t n, float m) {
  v4f acc[PARTS];
  for (int p = 0; p < PARTS; p++)
    acc[p] = splat(0);
  float thr =
      -87.33f +
      (n > 1 ? (float)(64 - __builtin_clzll((unsigned long long)n - 1)) * 0.693147181f : 0.0f);
  const v4f vm = splat(m), vthr = splat(thr);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) /* whole groups of sixteen: no padding */
    for (int p = 0; p < PARTS; p++) {
      v4f d;
      memcpy(&d, x + i + (size_t)p * LANES, sizeof d);
      v4f v = exp_above(d - vm, vthr);
      memcpy(y + i + (size_t)p * LANES, &v, sizeof v);
      acc[p] += v;
    }
  for (; i < n; i += 16)
    for (int p = 0; p < PARTS; p++) {
      size_t j = i + (size_t)p * LANES;
      v4f v = splat(0); /* past the end: zeros, which count as padding lanes do */
      if (j < n) {
        v = exp_above(load_pad(x, j, n, 0) - vm, vthr);
        store_part(y, j, n, v);
        if (n - j < LANES) /* padding lanes do not count */
          for (size_t l = n - j; l < LANES; l++)
            v[l] = 0;
      }
      acc[p] += v;
    }
  return hsum16(acc);
}

/* One vector of tc_vround_f32: the set's sqrt / round instructions (exact
 * operations, the scalar functions' bits); the SSE2 set (no round
 * instruction) lane by lane through libm. */
VINLINE v4f vround(v4f v, int op) {
  if (op == TC_VROUND_SIGN) /* 1, -1, or +0 for either zero; NaN kept */
    return sel(v > splat(0), splat(1), sel(v < splat(0), splat(-1), sel(nan_mask(v), v, splat(0))));
#if LANES == 16
  __m512 a = (__m512)v;
  switch (op) {
  case TC_VROUND_SQRT: return (v4f)_mm512_sqrt_ps(a);
  case TC_VROUND_FLOOR:
    return (v4f)_mm512_roundscale_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  case TC_VROUND_CEIL:
    return (v4f)_mm512_roundscale_ps(a, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
  default: return (v4f)_mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
#elif LANES == 8
  __m256 a = (__m256)v;
  switch (op) {
  case TC_VROUND_SQRT: return (v4f)_mm256_sqrt_ps(a);
  case TC_VROUND_FLOOR: return (v4f)_mm256_round_ps(a, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  case TC_VROUND_CEIL: return (v4f)_mm256_round_ps(a, _MM_FROUND_TO_POS_INF | _MM_FROUND_NO_EXC);
  default: return (v4f)_mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
#else
  for (int l = 0; l < LANES; l++)
    v[l] = op == TC_VROUND_SQRT    ? sqrtf(v[l])
           : op == TC_VROUND_FLOOR ? floorf(v[l])
           : op == TC_VROUND_CEIL  ? ceilf(v[l])
                                   : nearbyintf(v[l]);
  return v;
#endif
}

void VNAME(tc_vround_f32)(float *y, const float *x, size_t n, int op) {
  for (size_t i = 0; i < n; i += LANES)
    store_part(y, i, n, vround(load_pad(x, i, n, 0), op));
}

void VNAME(tc_vclip_f32)(float *y, const float *x, size_t n, float lo, float hi) {
  v4f vlo = splat(lo), vhi = splat(hi);
  for (size_t i = 0; i < n; i += LANES) {
    v4f v = load_pad(x, i, n, 0);
    v = sel(v < vlo, vlo, v);
    store_part(y, i, n, sel(v > vhi, vhi, v));
  }
}

void VNAME(tc_vsincos_f32)(float *y, const float *x, size_t n, bool cosine) {
  for (size_t i = 0; i < n; i += LANES) {
    v4f v = load_pad(x, i, n, 0), r = cosine ? v_sincos(v, 1) : v_sincos(v, 0);
    for (int l = 0; l < LANES; l++) /* beyond the reduction's range, infinities, NaN */
      if (!(fabsf(v[l]) <= TC_VSIN_MAX))
        r[l] = (float)(cosine ? cos((double)v[l]) : sin((double)v[l]));
    store_part(y, i, n, r); /* after the lanes are read: y may be x */
  }
}

void VNAME(tc_vaffine_ch_f32)(float *y, const float *x, size_t n, const float *m, const float *g,
                              const float *b) {
  for (size_t i = 0; i < n; i += LANES)
    store_part(y, i, n,
               (load_pad(x, i, n, 0) - load_pad(m, i, n, 0)) * load_pad(g, i, n, 0) +
                   load_pad(b, i, n, 0));
}

void VNAME(tc_vaffine_f32)(float *y, const float *x, size_t n, float m, float g, float b) {
  v4f vm = splat(m), vg = splat(g), vb = splat(b);
  for (size_t i = 0; i < n; i += LANES)
    store_part(y, i, n, (load_pad(x, i, n, 0) - vm) * vg + vb);
}

void VNAME(tc_vscale_f32)(float *x, size_t n, float s) {
  for (size_t i = 0; i < n; i += LANES) {
    store_part(x, i, n, load_pad(x, i, n, 0) * splat(s));
  }
}

/* y[i] = (float)acc[i] * scale[i] (+ bias[i]); y may be acc's memory. */
void VNAME(tc_vdequant_i32_f32)(float *y, const int32_t *acc, const int32_t *corr,
                                const float *scale, const float *bias, size_t n) {
  for (size_t i = 0; i < n; i += LANES) {
    v4i a, c = (v4i){0};
    if (n - i >= LANES) {
      memcpy(&a, acc + i, sizeof a);
      if (corr)
        memcpy(&c, corr + i, sizeof c);
    } else {
      a = (v4i){0};
      memcpy(&a, acc + i, (n - i) * sizeof *acc);
      if (corr)
        memcpy(&c, corr + i, (n - i) * sizeof *corr);
    }
    a -= c;
    v4f v = __builtin_convertvector(a, v4f) * load_pad(scale, i, n, 0);
    if (bias)
      v = v + load_pad(bias, i, n, 0);
    store_part(y, i, n, v);
  }
}

/* bfloat16 <-> float32 (tc_bf16_to_f32 / tc_f32_to_bf16's results): widening
 * is exact; narrowing rounds to nearest even, a NaN stays a quiet NaN. */
typedef uint16_t vhu __attribute__((vector_size(2 * LANES)));
typedef uint32_t v4u __attribute__((vector_size(4 * LANES)));

void VNAME(tc_vbf16_to_f32)(float *y, const uint16_t *x, size_t n) {
  size_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    vhu h;
    memcpy(&h, x + i, sizeof h);
    v4u w = __builtin_convertvector(h, v4u) << 16;
    memcpy(y + i, &w, sizeof w);
  }
  for (; i < n; i++)
    y[i] = tc_bf16_to_f32(x[i]);
}

void VNAME(tc_vf32_to_bf16)(uint16_t *y, const float *x, size_t n) {
  size_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    v4u b;
    memcpy(&b, x + i, sizeof b);
    v4u keep = b >> 16;
    v4u r = (b + 0x7fff + (keep & 1)) >> 16;
    v4u nan = (v4u)((b & 0x7fffffff) > 0x7f800000);
    r = (r & ~nan) | ((keep | 0x40) & nan);
    vhu h = __builtin_convertvector(r, vhu);
    memcpy(y + i, &h, sizeof h);
  }
  for (; i < n; i++)
    y[i] = tc_f32_to_bf16(x[i]);
}

/* float16 <-> float32 (tc_f16_to_f32 / tc_f32_to_f16's results, in integer
 * and exact float operations, so every set gives the same bits): widening
 * is exact (subnormals as m * 2^-24, NaN payloads kept); narrowing rounds to
 * nearest even, overflows to infinity, and a NaN keeps its top payload bits
 * with the quiet bit set. */
void VNAME(tc_vf16_to_f32)(float *y, const uint16_t *x, size_t n) {
  size_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    vhu h;
    memcpy(&h, x + i, sizeof h);
    v4u w = __builtin_convertvector(h, v4u);
    v4u sign = (w & 0x8000) << 16, exp = (w >> 10) & 0x1f, man = w & 0x3ff;
    v4u normal = sign | (((w & 0x7fff) << 13) + ((127 - 15) << 23));
    v4u special = sign | 0x7f800000 | (man << 13);
    v4f sub = __builtin_convertvector(man, v4f) * splat(0x1p-24f); /* exact */
    v4u subn = sign | (v4u)sub;
    v4u zero_exp = (v4u)(exp == 0), max_exp = (v4u)(exp == 0x1f);
    v4u r = (zero_exp & subn) | (max_exp & special) | (~(zero_exp | max_exp) & normal);
    memcpy(y + i, &r, sizeof r);
  }
  for (; i < n; i++)
    y[i] = tc_f16_to_f32(x[i]);
}

void VNAME(tc_vf32_to_f16)(uint16_t *y, const float *x, size_t n) {
  size_t i = 0;
  for (; i + LANES <= n; i += LANES) {
    v4u b;
    memcpy(&b, x + i, sizeof b);
    v4u sign = (b >> 16) & 0x8000, abs = b & 0x7fffffff;
    v4u nan = (v4u)(abs > 0x7f800000), over = (v4u)(abs >= 0x477ff000),
        tiny = (v4u)(abs < 0x38800000);
    v4u special = sign | 0x7c00 | (nan & (0x200 | ((abs >> 13) & 0x3ff)));
    /* below the smallest normal: a multiple of 2^-24, rounded to nearest
     * even by the 1.5 * 2^23 constant (the scaled value is below 1024) */
    v4f mag = (v4f)(abs & tiny) * splat(16777216.0f);
    v4u sub = (v4u) __builtin_convertvector((mag + splat(12582912.0f)) - splat(12582912.0f), v4i);
    v4u r = abs - 0x38000000, half = r >> 13, rest = r & 0x1fff;
    half += (v4u)((rest > 0x1000) | ((rest == 0x1000) & ((half & 1) != 0))) & 1;
    v4u out = (over & special) | (~over & ((tiny & sub) | (~tiny & half)));
    out |= sign;
    vhu h = __builtin_convertvector(out, vhu);
    memcpy(y + i, &h, sizeof h);
  }
  for (; i < n; i++)
    y[i] = tc_f32_to_f16(x[i]);
}
