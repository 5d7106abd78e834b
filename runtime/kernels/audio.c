/* audio kernels: DFT, STFT, MelWeightMatrix, HannWindow, HammingWindow,
 * BlackmanWindow, and CumProd.
 *
 * Signals are real ([..., 1]) or complex ([..., 2], real and imaginary parts
 * interleaved) tensors. Transforms run in double: a radix-2 FFT when the
 * length is a power of two, a direct DFT over a twiddle table otherwise.
 * Results are converted to the input's dtype, as the ONNX reference does. */
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

/* A plan for length-L transforms: the twiddles e^{-2 pi i j / L}. */
typedef struct dft_plan {
  size_t L;
  bool pow2;
  cplx *tw;      /* L entries */
  cplx *scratch; /* L entries */
} dft_plan;

static bool plan_init(tc_kernel_ctx *k, dft_plan *p, size_t L) {
  p->L = L;
  p->pow2 = L && (L & (L - 1)) == 0;
  p->tw = tc_arena_alloc(k->arena, (L ? L : 1) * sizeof *p->tw);
  p->scratch = tc_arena_alloc(k->arena, (L ? L : 1) * sizeof *p->scratch);
  if (!p->tw || !p->scratch)
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
  }
  return true;
}

/* In place: v[k] = sum_n v[n] e^{-+2 pi i k n / L} (sign - forward, + inverse), unscaled. */
static void transform(dft_plan *p, cplx *v, bool inverse) {
  size_t L = p->L;
  if (L <= 1)
    return;
  if (p->pow2) {
    for (size_t i = 1, j = 0; i < L; i++) { /* bit reversal */
      size_t bit = L >> 1;
      for (; j & bit; bit >>= 1)
        j ^= bit;
      j ^= bit;
      if (i < j) {
        cplx t = v[i];
        v[i] = v[j];
        v[j] = t;
      }
    }
    for (size_t len = 2; len <= L; len <<= 1) {
      size_t step = L / len;
      for (size_t i = 0; i < L; i += len)
        for (size_t j = 0; j < len / 2; j++) {
          cplx w = p->tw[j * step];
          if (inverse)
            w.im = -w.im;
          cplx a = v[i + j], b = v[i + j + len / 2];
          cplx bw = {b.re * w.re - b.im * w.im, b.re * w.im + b.im * w.re};
          v[i + j].re = a.re + bw.re;
          v[i + j].im = a.im + bw.im;
          v[i + j + len / 2].re = a.re - bw.re;
          v[i + j + len / 2].im = a.im - bw.im;
        }
    }
    return;
  }
  cplx *o = p->scratch;
  for (size_t kk = 0; kk < L; kk++) {
    double sr = 0, si = 0;
    size_t idx = 0;
    for (size_t n = 0; n < L; n++) {
      cplx w = p->tw[idx];
      if (inverse)
        w.im = -w.im;
      sr += v[n].re * w.re - v[n].im * w.im;
      si += v[n].re * w.im + v[n].im * w.re;
      idx += kk;
      if (idx >= L)
        idx -= L;
    }
    o[kk].re = sr;
    o[kk].im = si;
  }
  memcpy(v, o, L * sizeof *v);
}

/* ---- DFT ---- */

static tc_status check_dft(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v17[] = {"axis", "inverse", "onesided", NULL};
  static const char *const v20[] = {"inverse", "onesided", NULL};
  return tc_kernel_check_attrs(n, diag, opset >= 20 ? v20 : v17);
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
  size_t outer = prod_dims(x->dims, 0, (size_t)ax);
  size_t inner = prod_dims(x->dims, (size_t)ax + 1, x->rank - 1);
  size_t nout = (size_t)dims[ax];
  dft_plan p;
  cplx *v = tc_arena_alloc(k->arena, (size_t)L * sizeof *v);
  if (!v || !plan_init(k, &p, (size_t)L))
    return NOMEM(k);
  size_t take = (size_t)(N < L ? N : L);
  size_t half = (size_t)L / 2 + 1; /* irfft: bins used */
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < inner; i++) {
      size_t ibase = o * (size_t)N * inner + i, obase = o * nout * inner + i;
      memset(v, 0, (size_t)L * sizeof *v);
      if (inverse && onesided) {
        /* Hermitian extension of the first L/2+1 bins */
        for (size_t j = 0; j < half && j < (size_t)N; j++) {
          size_t e = (ibase + j * inner) * (size_t)c;
          v[j].re = tc_rt_get_f64(x, e);
          v[j].im = c == 2 ? tc_rt_get_f64(x, e + 1) : 0.0;
        }
        for (size_t j = half; j < (size_t)L; j++) {
          v[j].re = v[(size_t)L - j].re;
          v[j].im = -v[(size_t)L - j].im;
        }
      } else {
        for (size_t j = 0; j < take; j++) {
          size_t e = (ibase + j * inner) * (size_t)c;
          v[j].re = tc_rt_get_f64(x, e);
          v[j].im = c == 2 ? tc_rt_get_f64(x, e + 1) : 0.0;
        }
      }
      transform(&p, v, inverse);
      double scale = inverse ? 1.0 / (double)L : 1.0;
      for (size_t j = 0; j < nout; j++) {
        size_t e = (obase + j * inner) * (size_t)oc;
        tc_rt_set_f64(out, e, v[j].re * scale);
        if (oc == 2)
          tc_rt_set_f64(out, e + 1, v[j].im * scale);
      }
    }
  return TC_STATUS_OK;
}

/* ---- STFT ---- */

static tc_status check_stft(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"onesided", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
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
  dft_plan p;
  cplx *v = tc_arena_alloc(k->arena, (size_t)fl * sizeof *v);
  if (!v || !plan_init(k, &p, (size_t)fl))
    return NOMEM(k);
  for (int64_t b = 0; b < x->dims[0]; b++)
    for (int64_t f = 0; f < frames; f++) {
      for (int64_t j = 0; j < fl; j++) {
        size_t e = (size_t)((b * siglen + f * step + j) * c);
        double w = win ? tc_rt_get_f64(win, (size_t)j) : 1.0;
        v[j].re = tc_rt_get_f64(x, e) * w;
        v[j].im = c == 2 ? tc_rt_get_f64(x, e + 1) * w : 0.0;
      }
      transform(&p, v, false);
      for (int64_t j = 0; j < bins; j++) {
        size_t e = (size_t)(((b * frames + f) * bins + j) * 2);
        tc_rt_set_f64(out, e, v[j].re);
        tc_rt_set_f64(out, e + 1, v[j].im);
      }
    }
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
