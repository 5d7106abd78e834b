/* audio kernels: DFT, STFT, MelWeightMatrix, HannWindow, HammingWindow,
 * BlackmanWindow, and CumProd.
 *
 * Signals are real ([..., 1]) or complex ([..., 2], real and imaginary parts
 * interleaved) tensors. Transforms run in double through a mixed-radix FFT
 * (Cooley-Tukey, radix 4, 2, 3 and 5 butterflies as KISS FFT has them, a
 * direct O(p^2) butterfly for other prime factors), rows (DFT) or frames
 * (STFT) split over the threads; STFT of a real signal with one-sided
 * output and an even frame transforms each frame as a complex signal of
 * half the length. The Debian KISS FFT package is float-only, hence our
 * own. Results are converted to the input's dtype, as the ONNX reference
 * does. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kernel.h"

/* ---- shared helpers ---- */

static const char *node_name(const tc_node *n) { return n->name ? n->name : ""; }

/* Dtypes tc_rt_set_f64 writes: the float and integer types and bool. */
static bool is_numeric_dtype(int32_t dt) {
  return tc_dtype_is_float(dt) || tc_dtype_is_int(dt) || dt == TC_DTYPE_BOOL;
}

static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

#define NOMEM(k) tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory")

static size_t prod_dims(const int64_t *dims, size_t from, size_t to) {
  size_t p = 1;
  for (size_t d = from; d < to; d++)
    p *= (size_t)dims[d];
  return p;
}

/* Reads a one-element integer tensor. */
static tc_status scalar_int(tc_kernel_ctx *k, const tc_rt_tensor *t, const char *what, int64_t *v) {
  if (!tc_dtype_is_int(t->dtype))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "%s has dtype %s; an integer is expected", what,
                          tc_dtype_name(t->dtype));
  if (tc_rt_numel(t) != 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s must be a scalar", what);
  *v = tc_rt_get_i64(t, 0);
  return TC_STATUS_OK;
}

static tc_status scalar_num(tc_kernel_ctx *k, const tc_rt_tensor *t, const char *what, double *v) {
  if (!tc_dtype_is_float(t->dtype) && !tc_dtype_is_int(t->dtype))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "%s has dtype %s, which is not supported", what,
                          tc_dtype_name(t->dtype));
  if (tc_rt_numel(t) != 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s must be a scalar", what);
  *v = tc_rt_get_f64(t, 0);
  return TC_STATUS_OK;
}

/* ---- transforms ---- */

typedef struct cplx {
  double re, im;
} cplx;

#define MAX_FACTORS 64

/* A plan for length-L transforms in one direction: the twiddles
 * e^{-+2 pi i j / L} (sign - forward, + inverse) and L's factors, radix 4
 * first, then 2, 3, 5, 7, ... (mixed-radix Cooley-Tukey, decimation in time,
 * as KISS FFT orders them); a stage of radix p and span m per pair. */
typedef struct dft_plan {
  size_t L;
  bool inverse;
  cplx *tw;
  size_t fac[2 * MAX_FACTORS];
  size_t max_p; /* the largest radix: the generic butterfly's scratch */
} dft_plan;

static bool plan_init(tc_kernel_ctx *k, dft_plan *p, size_t L, bool inverse) {
  p->L = L;
  p->inverse = inverse;
  p->max_p = 1;
  p->tw = tc_arena_alloc(k->arena, (L ? L : 1) * sizeof *p->tw);
  if (!p->tw)
    return false;
  for (size_t j = 0; j < L; j++) {
    /* exact at the quarter points, symmetric elsewhere */
    double a = -2.0 * M_PI * (double)j / (double)L;
    p->tw[j].re = cos(a);
    p->tw[j].im = sin(a);
    if (4 * j == L || 4 * j == 3 * L)
      p->tw[j].re = 0;
    if (2 * j == L)
      p->tw[j].im = 0;
    if (j == 0)
      p->tw[j].im = 0;
    if (inverse)
      p->tw[j].im = -p->tw[j].im;
  }
  size_t n = L, r = 4, nf = 0;
  while (n > 1) {
    while (n % r) {
      r = r == 4 ? 2 : r == 2 ? 3 : r + 2;
      if (r * r > n)
        r = n; /* n is prime */
    }
    n /= r;
    p->fac[2 * nf] = r;
    p->fac[2 * nf + 1] = n;
    p->max_p = r > p->max_p ? r : p->max_p;
    nf++; /* at most log2(L) < MAX_FACTORS */
  }
  return true;
}

static inline cplx cmul(cplx a, cplx b) {
  return (cplx){a.re * b.re - a.im * b.im, a.re * b.im + a.im * b.re};
}

/* The butterflies of one stage: p sub-transforms of length m (out[q m + u])
 * combined into one of length p m, twiddles strided by fs. */
static void bfly2(cplx *o, size_t fs, const dft_plan *p, size_t m) {
  for (size_t u = 0; u < m; u++) {
    cplx t = cmul(o[u + m], p->tw[u * fs]);
    o[u + m] = (cplx){o[u].re - t.re, o[u].im - t.im};
    o[u] = (cplx){o[u].re + t.re, o[u].im + t.im};
  }
}

static void bfly3(cplx *o, size_t fs, const dft_plan *p, size_t m) {
  double e = p->tw[fs * m].im; /* sin(-+2 pi / 3) */
  for (size_t u = 0; u < m; u++) {
    cplx s1 = cmul(o[u + m], p->tw[u * fs]), s2 = cmul(o[u + 2 * m], p->tw[2 * u * fs]);
    cplx s3 = {s1.re + s2.re, s1.im + s2.im}, s0 = {(s1.re - s2.re) * e, (s1.im - s2.im) * e};
    cplx h = {o[u].re - 0.5 * s3.re, o[u].im - 0.5 * s3.im};
    o[u] = (cplx){o[u].re + s3.re, o[u].im + s3.im};
    o[u + 2 * m] = (cplx){h.re + s0.im, h.im - s0.re};
    o[u + m] = (cplx){h.re - s0.im, h.im + s0.re};
  }
}

static void bfly4(cplx *o, size_t fs, const dft_plan *p, size_t m) {
  for (size_t u = 0; u < m; u++) {
    cplx s0 = cmul(o[u + m], p->tw[u * fs]), s1 = cmul(o[u + 2 * m], p->tw[2 * u * fs]),
         s2 = cmul(o[u + 3 * m], p->tw[3 * u * fs]);
    cplx s5 = {o[u].re - s1.re, o[u].im - s1.im}, a = {o[u].re + s1.re, o[u].im + s1.im};
    cplx s3 = {s0.re + s2.re, s0.im + s2.im}, s4 = {s0.re - s2.re, s0.im - s2.im};
    o[u + 2 * m] = (cplx){a.re - s3.re, a.im - s3.im};
    o[u] = (cplx){a.re + s3.re, a.im + s3.im};
    if (p->inverse) {
      o[u + m] = (cplx){s5.re - s4.im, s5.im + s4.re};
      o[u + 3 * m] = (cplx){s5.re + s4.im, s5.im - s4.re};
    } else {
      o[u + m] = (cplx){s5.re + s4.im, s5.im - s4.re};
      o[u + 3 * m] = (cplx){s5.re - s4.im, s5.im + s4.re};
    }
  }
}

static void bfly5(cplx *o, size_t fs, const dft_plan *p, size_t m) {
  cplx ya = p->tw[fs * m], yb = p->tw[2 * fs * m];
  for (size_t u = 0; u < m; u++) {
    cplx s0 = o[u];
    cplx s1 = cmul(o[u + m], p->tw[u * fs]), s2 = cmul(o[u + 2 * m], p->tw[2 * u * fs]);
    cplx s3 = cmul(o[u + 3 * m], p->tw[3 * u * fs]), s4 = cmul(o[u + 4 * m], p->tw[4 * u * fs]);
    cplx s7 = {s1.re + s4.re, s1.im + s4.im}, s10 = {s1.re - s4.re, s1.im - s4.im};
    cplx s8 = {s2.re + s3.re, s2.im + s3.im}, s9 = {s2.re - s3.re, s2.im - s3.im};
    o[u] = (cplx){s0.re + (s7.re + s8.re), s0.im + (s7.im + s8.im)};
    cplx s5 = {s0.re + s7.re * ya.re + s8.re * yb.re, s0.im + s7.im * ya.re + s8.im * yb.re};
    cplx s6 = {s10.im * ya.im + s9.im * yb.im, -(s10.re * ya.im) - s9.re * yb.im};
    o[u + m] = (cplx){s5.re - s6.re, s5.im - s6.im};
    o[u + 4 * m] = (cplx){s5.re + s6.re, s5.im + s6.im};
    cplx s11 = {s0.re + s7.re * yb.re + s8.re * ya.re, s0.im + s7.im * yb.re + s8.im * ya.re};
    cplx s12 = {-(s10.im * yb.im) + s9.im * ya.im, s10.re * yb.im - s9.re * ya.im};
    o[u + 2 * m] = (cplx){s11.re + s12.re, s11.im + s12.im};
    o[u + 3 * m] = (cplx){s11.re - s12.re, s11.im - s12.im};
  }
}

/* Any radix r (a prime above 5): the direct sum per output, O(r^2). */
static void bfly_any(cplx *o, size_t fs, const dft_plan *p, size_t m, size_t r, cplx *sc) {
  for (size_t u = 0; u < m; u++) {
    for (size_t q = 0; q < r; q++)
      sc[q] = o[u + q * m];
    for (size_t q1 = 0, kk = u; q1 < r; q1++, kk += m) {
      cplx acc = sc[0];
      for (size_t q = 1, t = 0; q < r; q++) {
        t += fs * kk; /* fs kk < L: one wrap at most */
        if (t >= p->L)
          t -= p->L;
        cplx v = cmul(sc[q], p->tw[t]);
        acc.re += v.re;
        acc.im += v.im;
      }
      o[kk] = acc;
    }
  }
}

/* out[0, p m) = the transform of in[0, in_stride, ...) for the stage pair at
 * f and the ones after it; fs: the twiddle stride (L / this length). */
static void fft_stage(cplx *out, const cplx *in, size_t fs, size_t in_stride, const size_t *f,
                      const dft_plan *p, cplx *sc) {
  size_t r = f[0], m = f[1];
  if (m == 1) {
    for (size_t q = 0; q < r; q++)
      out[q] = in[q * fs * in_stride];
  } else {
    for (size_t q = 0; q < r; q++)
      fft_stage(out + q * m, in + q * fs * in_stride, fs * r, in_stride, f + 2, p, sc);
  }
  switch (r) {
  case 2: bfly2(out, fs, p, m); break;
  case 3: bfly3(out, fs, p, m); break;
  case 4: bfly4(out, fs, p, m); break;
  case 5: bfly5(out, fs, p, m); break;
  default: bfly_any(out, fs, p, m, r, sc); break;
  }
}

/* out[k] = sum_n in[n] e^{-+2 pi i k n / L} (sign - forward, + inverse),
 * unscaled; sc: p->max_p entries of scratch. About 5 L log2 L flops. */
static void transform(const dft_plan *p, const cplx *in, cplx *out, cplx *sc) {
  if (p->L == 1)
    out[0] = in[0];
  else if (p->L > 1)
    fft_stage(out, in, 1, 1, p->fac, p, sc);
}

/* Scratch one transform needs: the input copy, the output and the generic
 * butterfly's. */
static size_t scratch_len(const dft_plan *p) { return 2 * p->L + p->max_p; }

/* Element i of t as a double, and back (float32 and float64 directly). */
static inline double get_d(const tc_rt_tensor *t, size_t i) {
  return t->dtype == TC_DTYPE_F32   ? ((const float *)t->data)[i]
         : t->dtype == TC_DTYPE_F64 ? ((const double *)t->data)[i]
                                    : tc_rt_get_f64(t, i);
}
static inline void set_d(tc_rt_tensor *t, size_t i, double v) {
  if (t->dtype == TC_DTYPE_F32)
    ((float *)t->data)[i] = (float)v;
  else if (t->dtype == TC_DTYPE_F64)
    ((double *)t->data)[i] = v;
  else
    tc_rt_set_f64(t, i, v);
}

/* Per-piece scratch of a parallel transform loop over n rows: pieces x
 * per_piece complex numbers from the arena, before the loop (its body may
 * not allocate). */
static cplx *piece_scratch(tc_kernel_ctx *k, size_t n, size_t grain, size_t per_piece) {
  size_t pieces = tc_parallel_pieces(n, grain);
  return tc_arena_alloc(k->arena, (pieces ? pieces : 1) * per_piece * sizeof(cplx));
}

/* ---- DFT ---- */

static tc_status check_dft(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v17[] = {"axis", "inverse", "onesided", NULL};
  static const char *const v20[] = {"inverse", "onesided", NULL};
  return tc_kernel_check_attrs(n, diag, opset >= 20 ? v20 : v17);
}

typedef struct dft_job {
  const tc_rt_tensor *x;
  tc_rt_tensor *y;
  dft_plan p;
  size_t c, oc, N, inner, nout, per;
  bool inverse, onesided;
  cplx *sc; /* per piece: per entries */
} dft_job;

/* Rows [lo, hi) of a DFT: row r is (outer o, inner i) = (r / inner, r % inner). */
static void dft_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  const dft_job *j = ctx;
  size_t L = j->p.L, inner = j->inner, c = j->c;
  cplx *v = j->sc + piece * j->per, *o = v + L, *sc = o + L;
  size_t take = j->N < L ? j->N : L, half = L / 2 + 1; /* irfft: bins used */
  double scale = j->inverse ? 1.0 / (double)L : 1.0;
  for (size_t r = lo; r < hi; r++) {
    size_t ibase = r / inner * j->N * inner + r % inner,
           obase = r / inner * j->nout * inner + r % inner;
    memset(v, 0, L * sizeof *v);
    if (j->inverse && j->onesided) {
      /* Hermitian extension of the first L/2+1 bins */
      for (size_t t = 0; t < half && t < j->N; t++) {
        size_t e = (ibase + t * inner) * c;
        v[t] = (cplx){get_d(j->x, e), c == 2 ? get_d(j->x, e + 1) : 0.0};
      }
      for (size_t t = half; t < L; t++)
        v[t] = (cplx){v[L - t].re, -v[L - t].im};
    } else {
      for (size_t t = 0; t < take; t++) {
        size_t e = (ibase + t * inner) * c;
        v[t] = (cplx){get_d(j->x, e), c == 2 ? get_d(j->x, e + 1) : 0.0};
      }
    }
    transform(&j->p, v, o, sc);
    for (size_t t = 0; t < j->nout; t++) {
      size_t e = (obase + t * inner) * j->oc;
      set_d(j->y, e, o[t].re * scale);
      if (j->oc == 2)
        set_d(j->y, e + 1, o[t].im * scale);
    }
  }
}

static tc_status run_dft(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0), *lt = input(in, n_in, 1);
  const tc_rt_tensor *at = k->opset >= 20 ? input(in, n_in, 2) : NULL;
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input is required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (x->rank < 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input must have rank >= 2");
  int64_t c = x->dims[x->rank - 1];
  if (c != 1 && c != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "the last dim must be 1 (real) or 2 (complex), not %lld", (long long)c);
  bool inverse = tc_attr_int(k->node, "inverse", 0) != 0;
  bool onesided = tc_attr_int(k->node, "onesided", 0) != 0;
  int64_t a = k->opset >= 20 ? -2 : tc_attr_int(k->node, "axis", 1);
  tc_status st;
  if (at && (st = scalar_int(k, at, "axis", &a)))
    return st;
  int64_t ax = tc_axis(a, x->rank);
  if (ax < 0 || ax == (int64_t)x->rank - 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                          (long long)a, x->rank);
  int64_t N = x->dims[ax];
  int64_t L = inverse && onesided ? 2 * (N - 1) : N;
  if (lt && (st = scalar_int(k, lt, "dft_length", &L)))
    return st;
  if (L < 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "dft_length %lld is not positive", (long long)L);
  int64_t dims[TC_MAX_RANK];
  memcpy(dims, x->dims, x->rank * sizeof *dims);
  int64_t oc = 2;
  if (inverse && onesided) {
    dims[ax] = L;
    oc = 1;
  } else {
    dims[ax] = onesided ? L / 2 + 1 : L;
  }
  dims[x->rank - 1] = oc;
  if ((st = tc_kernel_alloc(k, out, x->dtype, x->rank, dims)))
    return st;
  dft_job j = {.x = x,
               .y = out,
               .c = (size_t)c,
               .oc = (size_t)oc,
               .N = (size_t)N,
               .inner = prod_dims(x->dims, (size_t)ax + 1, x->rank - 1),
               .nout = (size_t)dims[ax],
               .inverse = inverse,
               .onesided = onesided};
  size_t rows = prod_dims(x->dims, 0, (size_t)ax) * j.inner;
  size_t grain = tc_parallel_grain((size_t)L * 16);
  if (!plan_init(k, &j.p, (size_t)L, inverse) ||
      !(j.sc = piece_scratch(k, rows, grain, j.per = scratch_len(&j.p))))
    return NOMEM(k);
  tc_parallel_for(rows, grain, dft_rows, &j);
  return TC_STATUS_OK;
}

/* ---- STFT ---- */

static tc_status check_stft(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"onesided", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

typedef struct stft_job {
  const tc_rt_tensor *x, *win;
  tc_rt_tensor *y;
  dft_plan p; /* of fl, or of fl / 2 when half */
  size_t c, fl, step, frames, bins, siglen, per;
  bool half;
  cplx *wk; /* half: e^{-2 pi i k / fl}, k in [0, fl / 2] */
  cplx *sc; /* per piece: per entries */
} stft_job;

/* Frames [lo, hi) (batch b, frame f) = (r / frames, r % frames). With half,
 * a real frame x of even length L is transformed as z[n] = x[2n] + i
 * x[2n+1] of length L / 2: X[k] = E + w^k O for k in [0, L / 2], E = (Z[k] +
 * conj Z[L/2 - k]) / 2 (the even samples' transform) and O = (Z[k] - conj
 * Z[L/2 - k]) / 2i (the odd ones'), indices mod L / 2. */
static void stft_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  const stft_job *j = ctx;
  size_t n = j->p.L, c = j->c;
  cplx *v = j->sc + piece * j->per, *o = v + n, *sc = o + n;
  for (size_t r = lo; r < hi; r++) {
    size_t b = r / j->frames, f = r % j->frames;
    size_t e0 = (b * j->siglen + f * j->step) * c;
    if (j->half)
      for (size_t t = 0; t < n; t++)
        v[t] = (cplx){get_d(j->x, e0 + 2 * t) * (j->win ? get_d(j->win, 2 * t) : 1.0),
                      get_d(j->x, e0 + 2 * t + 1) * (j->win ? get_d(j->win, 2 * t + 1) : 1.0)};
    else
      for (size_t t = 0; t < n; t++) {
        double w = j->win ? get_d(j->win, t) : 1.0;
        v[t] = (cplx){get_d(j->x, e0 + t * c) * w, c == 2 ? get_d(j->x, e0 + t * c + 1) * w : 0.0};
      }
    transform(&j->p, v, o, sc);
    size_t ob = r * j->bins * 2;
    for (size_t t = 0; t < j->bins; t++) {
      cplx x;
      if (!j->half) {
        x = o[t];
      } else {
        cplx a = o[t % n], z = o[(n - t % n) % n]; /* Z[k], Z[n - k] */
        cplx ev = {(a.re + z.re) * 0.5, (a.im - z.im) * 0.5};
        cplx od = {(a.im + z.im) * 0.5, -(a.re - z.re) * 0.5};
        x = (cplx){ev.re + (j->wk[t].re * od.re - j->wk[t].im * od.im),
                   ev.im + (j->wk[t].re * od.im + j->wk[t].im * od.re)};
      }
      set_d(j->y, ob + 2 * t, x.re);
      set_d(j->y, ob + 2 * t + 1, x.im);
    }
  }
}

static tc_status run_stft(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0), *stept = input(in, n_in, 1);
  const tc_rt_tensor *win = input(in, n_in, 2), *flt = input(in, n_in, 3);
  if (!x || !stept)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "signal and frame_step are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (x->rank != 3)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "signal must have shape [batch, length, 1 or 2]");
  int64_t c = x->dims[2];
  if (c != 1 && c != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "the last dim must be 1 (real) or 2 (complex), not %lld", (long long)c);
  tc_status st;
  int64_t step;
  if ((st = scalar_int(k, stept, "frame_step", &step)))
    return st;
  if (step < 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "frame_step %lld is not positive", (long long)step);
  if (win) {
    if (!tc_dtype_is_float(win->dtype))
      return tc_kernel_bad_dtype(k, 2, win->dtype);
    if (win->rank != 1)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "window must be 1-D");
  }
  int64_t siglen = x->dims[1];
  int64_t fl = win ? win->dims[0] : siglen;
  if (flt) {
    if ((st = scalar_int(k, flt, "frame_length", &fl)))
      return st;
    if (win && win->dims[0] != fl)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "window length %lld differs from frame_length %lld",
                            (long long)win->dims[0], (long long)fl);
  }
  if (fl < 1 || fl > siglen)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "frame_length %lld is outside [1, %lld]",
                          (long long)fl, (long long)siglen);
  bool onesided = tc_attr_int(k->node, "onesided", 1) != 0;
  int64_t frames = (siglen - fl) / step + 1;
  int64_t bins = onesided ? fl / 2 + 1 : fl;
  int64_t dims[4] = {x->dims[0], frames, bins, 2};
  if ((st = tc_kernel_alloc(k, out, x->dtype, 4, dims)))
    return st;
  /* a real signal's one-sided frames go through a half-length complex
   * transform when the frame length is even */
  bool half = onesided && c == 1 && fl % 2 == 0 && fl > 1;
  stft_job j = {.x = x,
                .win = win,
                .y = out,
                .c = (size_t)c,
                .fl = (size_t)fl,
                .step = (size_t)step,
                .frames = (size_t)frames,
                .bins = (size_t)bins,
                .siglen = (size_t)siglen,
                .half = half};
  size_t rows = (size_t)(x->dims[0] * frames), grain = tc_parallel_grain((size_t)fl * 16);
  if (!plan_init(k, &j.p, half ? (size_t)fl / 2 : (size_t)fl, false))
    return NOMEM(k);
  if (half && !(j.wk = tc_arena_alloc(k->arena, ((size_t)fl / 2 + 1) * sizeof *j.wk)))
    return NOMEM(k);
  for (size_t t = 0; half && t <= (size_t)fl / 2; t++) {
    double a = -2.0 * M_PI * (double)t / (double)fl;
    j.wk[t] = (cplx){4 * t == (size_t)fl ? 0.0 : cos(a), 2 * t == (size_t)fl || !t ? 0.0 : sin(a)};
  }
  if (!(j.sc = piece_scratch(k, rows, grain, j.per = scratch_len(&j.p))))
    return NOMEM(k);
  tc_parallel_for(rows, grain, stft_rows, &j);
  return TC_STATUS_OK;
}

/* ---- MelWeightMatrix ---- */

static tc_status check_output_datatype(const tc_node *n, tc_diag *diag, int64_t dflt) {
  int64_t dt = tc_attr_int(n, "output_datatype", dflt);
  if (dt < 0 || dt > INT32_MAX || !is_numeric_dtype((int32_t)dt))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "output_datatype %lld is not supported", (long long)dt);
  return TC_STATUS_OK;
}

static tc_status check_mel(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"output_datatype", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  return st ? st : check_output_datatype(n, diag, TC_DTYPE_F32);
}

static tc_status run_mel(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  for (size_t i = 0; i < 5; i++)
    if (!input(in, n_in, i))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "all five inputs are required");
  int64_t mel_bins, dft_len, rate;
  double lo, hi;
  tc_status st;
  if ((st = scalar_int(k, in[0], "num_mel_bins", &mel_bins)) ||
      (st = scalar_int(k, in[1], "dft_length", &dft_len)) ||
      (st = scalar_int(k, in[2], "sample_rate", &rate)) ||
      (st = scalar_num(k, in[3], "lower_edge_hertz", &lo)) ||
      (st = scalar_num(k, in[4], "upper_edge_hertz", &hi)))
    return st;
  if (mel_bins < 1 || dft_len < 1 || rate < 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "num_mel_bins, dft_length and sample_rate must be positive");
  int32_t dt = (int32_t)tc_attr_int(k->node, "output_datatype", TC_DTYPE_F32);
  if (!is_numeric_dtype(dt))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output_datatype %d is not supported", dt);
  int64_t spec_bins = dft_len / 2 + 1;
  int64_t dims[2] = {spec_bins, mel_bins};
  if ((st = tc_kernel_alloc(k, out, dt, 2, dims)))
    return st;
  int64_t *fb = tc_arena_alloc(k->arena, (size_t)(mel_bins + 2) * sizeof *fb);
  double *w = tc_arena_alloc(k->arena, (size_t)(spec_bins * mel_bins) * sizeof *w);
  if (!fb || !w)
    return NOMEM(k);
  memset(w, 0, (size_t)(spec_bins * mel_bins) * sizeof *w);
  /* the reference's arithmetic, step by step */
  double low_mel = 2595.0 * log1p(lo / 700.0) / log(10.0);
  double high_mel = 2595.0 * log1p(hi / 700.0) / log(10.0);
  double mel_step = (high_mel - low_mel) / (double)(mel_bins + 2);
  for (int64_t i = 0; i < mel_bins + 2; i++) {
    double f = (double)i * mel_step + low_mel;
    f = 700.0 * expm1(f / 2595.0 * log(10.0));
    f = floor((double)(dft_len + 1) * f / (double)rate);
    if (!(f >= 0 && f < (double)spec_bins))
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "mel band edge %lld falls outside the %lld spectrogram bins",
                            (long long)i, (long long)spec_bins);
    fb[i] = (int64_t)f;
  }
  for (int64_t i = 0; i < mel_bins; i++) {
    int64_t l = fb[i], ctr = fb[i + 1], h = fb[i + 2];
    int64_t l2c = ctr - l;
    if (l2c == 0)
      w[ctr * mel_bins + i] = 1;
    else
      for (int64_t j = l; j <= ctr; j++)
        w[j * mel_bins + i] = (double)(j - l) / (double)l2c;
    int64_t c2h = h - ctr;
    if (c2h > 0)
      for (int64_t j = ctr; j < h; j++)
        w[j * mel_bins + i] = (double)(h - j) / (double)c2h;
  }
  for (size_t i = 0; i < (size_t)(spec_bins * mel_bins); i++)
    tc_rt_set_f64(out, i, w[i]);
  return TC_STATUS_OK;
}

/* ---- windows ---- */

static tc_status check_window(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"output_datatype", "periodic", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  return st ? st : check_output_datatype(n, diag, TC_DTYPE_F32);
}

typedef enum window_kind { WIN_HANN, WIN_HAMMING, WIN_BLACKMAN } window_kind;

static tc_status run_window(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, window_kind kind) {
  const tc_rt_tensor *st_ = input(in, n_in, 0);
  if (!st_)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "size is required");
  int64_t size;
  tc_status st;
  if ((st = scalar_int(k, st_, "size", &size)))
    return st;
  if (size < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "size %lld is negative", (long long)size);
  int32_t dt = (int32_t)tc_attr_int(k->node, "output_datatype", TC_DTYPE_F32);
  if (!is_numeric_dtype(dt))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output_datatype %d is not supported", dt);
  bool periodic = tc_attr_int(k->node, "periodic", 1) != 0;
  if ((st = tc_kernel_alloc(k, out, dt, 1, &size)))
    return st;
  double N = periodic ? (double)size : (double)(size - 1);
  for (int64_t i = 0; i < size; i++) {
    double n = (double)i, v;
    if (N == 0) {
      v = 1.0; /* a one-point symmetric window */
    } else if (kind == WIN_HANN) {
      double s = sin(n * M_PI / N);
      v = s * s;
    } else if (kind == WIN_HAMMING) {
      double alpha = 25.0 / 46.0;
      v = alpha - cos(n * M_PI * 2 / N) * (1 - alpha);
    } else {
      v = cos(n * (M_PI * 2) / N) * -0.5;
      v += cos(n * (M_PI * 4) / N) * 0.08;
      v += 0.42;
    }
    tc_rt_set_f64(out, (size_t)i, v);
  }
  return TC_STATUS_OK;
}

static tc_status run_hann(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return run_window(k, in, n_in, out, WIN_HANN);
}
static tc_status run_hamming(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return run_window(k, in, n_in, out, WIN_HAMMING);
}
static tc_status run_blackman(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return run_window(k, in, n_in, out, WIN_BLACKMAN);
}

/* ---- CumProd ---- */

static tc_status check_cumprod(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"exclusive", "reverse", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_cumprod(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0), *at = input(in, n_in, 1);
  if (!x || !at)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x and axis are required");
  bool fl = tc_dtype_is_float(x->dtype);
  if (!fl && !tc_dtype_is_int(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  int64_t a;
  tc_status st;
  if ((st = scalar_int(k, at, "axis", &a)))
    return st;
  if (x->rank == 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x must have rank >= 1");
  int64_t ax = tc_axis(a, x->rank);
  if (ax < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                          (long long)a, x->rank);
  bool exclusive = tc_attr_int(k->node, "exclusive", 0) != 0;
  bool reverse = tc_attr_int(k->node, "reverse", 0) != 0;
  if ((st = tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims)))
    return st;
  size_t outer = prod_dims(x->dims, 0, (size_t)ax), len = (size_t)x->dims[ax];
  size_t inner = prod_dims(x->dims, (size_t)ax + 1, x->rank);
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < inner; i++) {
      double pf = 1.0;
      uint64_t pi = 1; /* wraps like two's complement */
      for (size_t s = 0; s < len; s++) {
        size_t j = reverse ? len - 1 - s : s;
        size_t e = (o * len + j) * inner + i;
        if (fl) {
          double v = tc_rt_get_f64(x, e);
          if (exclusive) {
            tc_rt_set_f64(out, e, pf);
            pf *= v;
          } else {
            pf *= v;
            tc_rt_set_f64(out, e, pf);
          }
        } else {
          uint64_t v = (uint64_t)tc_rt_get_i64(x, e);
          if (exclusive) {
            tc_rt_set_i64(out, e, (int64_t)pi);
            pi *= v;
          } else {
            pi *= v;
            tc_rt_set_i64(out, e, (int64_t)pi);
          }
        }
      }
    }
  return TC_STATUS_OK;
}

const tc_kernel_def tc_kernels_audio[] = {
    {"DFT", "", 17, run_dft, check_dft},
    {"DFT", "", 20, run_dft, check_dft},
    {"STFT", "", 17, run_stft, check_stft},
    {"MelWeightMatrix", "", 17, run_mel, check_mel},
    {"HannWindow", "", 17, run_hann, check_window},
    {"HammingWindow", "", 17, run_hamming, check_window},
    {"BlackmanWindow", "", 17, run_blackman, check_window},
    {"CumProd", "", 26, run_cumprod, check_cumprod},
    {NULL},
};
