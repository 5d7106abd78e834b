/* Intra-op parallelism and the fast kernels (runtime/kernel_util.c,
 * runtime/vmath.c and the fast paths of the kernel files).
 *
 * For every parallelized kernel, on random inputs of several shapes (odd
 * sizes, tails shorter than a vector, sizes past the parallel grain so the
 * work really is split): the fast kernels give bit-identical outputs at 1, 2
 * and 4 threads, and match the reference kernels exactly where the
 * arithmetic is the same, within a stated tolerance where the fast path
 * computes in float (exp, erf, tanh ...) or sums in another order. Then the
 * parallel loop itself (coverage, grain, nesting) and four user threads
 * running sessions at once while the kernels use their thread teams. */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "kernel_env.h"

/* ---- harness ---- */

typedef struct tol {
  double atol, rtol; /* both 0: bit-identical */
} tol;

static const tol EXACT = {0, 0};

static unsigned rng_state = 12345;

static double rnd(double lo, double hi) {
  rng_state = rng_state * 1103515245u + 12345u;
  return lo + (hi - lo) * (double)((rng_state >> 8) & 0xffffff) / (double)0xffffff;
}

/* A tensor of dtype dt with values uniform in [lo, hi] (integers: rounded). */
static tc_rt_tensor *rand_t(env *e, int32_t dt, size_t rank, const int64_t *dims, double lo,
                            double hi) {
  tc_rt_tensor *t = ten(e, dt, rank, dims, NULL);
  size_t n = tc_rt_numel(t);
  for (size_t i = 0; i < n; i++) {
    double v = rnd(lo, hi);
    tc_rt_set_f64(t, i, tc_dtype_is_float(dt) ? v : floor(v));
  }
  return t;
}

static bool same_shape(const tc_rt_tensor *a, const tc_rt_tensor *b) {
  if (a->dtype != b->dtype || a->rank != b->rank || a->bytes != b->bytes)
    return false;
  for (size_t d = 0; d < a->rank; d++)
    if (a->dims[d] != b->dims[d])
      return false;
  return true;
}

/* fast within t of ref (floats by value, the rest bit for bit). */
static bool close_to(const tc_rt_tensor *fast, const tc_rt_tensor *ref, tol t, const char *op,
                     size_t o) {
  if (!same_shape(fast, ref))
    return false;
  if (!fast->bytes || (t.atol == 0 && t.rtol == 0) || !tc_dtype_is_float(ref->dtype))
    return memcmp(fast->data, ref->data, fast->bytes) == 0;
  size_t n = tc_rt_numel(ref);
  for (size_t i = 0; i < n; i++) {
    double a = tc_rt_get_f64(fast, i), b = tc_rt_get_f64(ref, i);
    if ((isnan(a) && isnan(b)) || a == b)
      continue;
    if (!(fabs(a - b) <= t.atol + t.rtol * fabs(b))) {
      fprintf(stderr, "%s output %zu element %zu: fast %.9g, reference %.9g\n", op, o, i, a, b);
      return false;
    }
  }
  return true;
}

#define MAX_OUT 4

/* Runs n with the reference kernels, then with the fast kernels at 1, 2 and
 * 4 threads; checks the fast outputs agree bit for bit and are within t of
 * the reference. */
static void check_node(env *e, tc_node *n, int64_t opset, const tc_rt_tensor *const *in,
                       size_t n_in, tol t) {
  static const int threads[] = {1, 2, 4};
  size_t n_out = n->n_outputs;
  tc_rt_tensor ref[MAX_OUT], fast[3][MAX_OUT];
  tc_fast_kernels_set(false);
  tc_status st = run(e, n, opset, in, n_in, ref);
  if (st != TC_STATUS_OK)
    fprintf(stderr, "%s (reference): %s\n", n->op_type, e->diag.reason);
  CHECK(st == TC_STATUS_OK);
  tc_fast_kernels_set(true);
  for (size_t r = 0; r < 3; r++) {
    tc_set_num_threads(threads[r]);
    st = run(e, n, opset, in, n_in, fast[r]);
    if (st != TC_STATUS_OK)
      fprintf(stderr, "%s (fast): %s\n", n->op_type, e->diag.reason);
    CHECK(st == TC_STATUS_OK);
  }
  tc_set_num_threads(4);
  if (st != TC_STATUS_OK)
    return;
  for (size_t o = 0; o < n_out && o < MAX_OUT; o++) {
    for (size_t r = 1; r < 3; r++) {
      bool same =
          same_shape(&fast[r][o], &fast[0][o]) &&
          (!fast[0][o].bytes || memcmp(fast[r][o].data, fast[0][o].data, fast[0][o].bytes) == 0);
      if (!same)
        fprintf(stderr, "%s output %zu differs between 1 and %d threads\n", n->op_type, o,
                threads[r]);
      CHECK(same);
    }
    bool ok = close_to(&fast[0][o], &ref[o], t, n->op_type, o);
    if (!ok)
      fprintf(stderr, "%s output %zu: fast and reference differ\n", n->op_type, o);
    CHECK(ok);
  }
}

/* A node with no attributes. */
static void check_plain(const char *op, int64_t opset, const tc_rt_tensor *const *in, size_t n_in,
                        tol t, env *e) {
  check_node(e, mk(e, op, n_in, 1, 0), opset, in, n_in, t);
}

/* ---- the parallel loop ---- */

typedef struct cover {
  int hits[1000];
  size_t max_piece;
  int nested_pieces;
} cover;

static void cover_nested(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)lo, (void)hi;
  cover *c = ctx;
  if (piece != 0)
    __atomic_fetch_add(&c->nested_pieces, 1, __ATOMIC_RELAXED);
}

static void cover_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  cover *c = ctx;
  for (size_t i = lo; i < hi; i++)
    __atomic_fetch_add(&c->hits[i], 1, __ATOMIC_RELAXED);
  size_t m = c->max_piece;
  while (piece > m && !__atomic_compare_exchange_n(&c->max_piece, &m, piece, false,
                                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    ;
  /* a loop inside a piece runs inline, as one piece */
  tc_parallel_for(100, 1, cover_nested, c);
}

static void parallel_for_covers_once(void) {
  tc_set_num_threads(4);
  CHECK(tc_parallel_pieces(1000, 1) == 4);
  CHECK(tc_parallel_pieces(1000, 400) == 2); /* at least one grain per piece */
  CHECK(tc_parallel_pieces(1000, 600) == 1); /* below two grains: inline */
  CHECK(tc_parallel_pieces(0, 1) == 1);
  size_t ns[] = {1, 3, 4, 5, 999, 1000};
  for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
    cover c;
    memset(&c, 0, sizeof c);
    tc_parallel_for(ns[k], 1, cover_piece, &c);
    bool once = true;
    for (size_t i = 0; i < 1000; i++)
      once = once && c.hits[i] == (i < ns[k]);
    CHECK(once);
    CHECK(c.max_piece < tc_parallel_pieces(ns[k], 1));
    /* from inside a region a loop runs as one piece (an inline loop is a
     * plain call, so its inner loop may split) */
    CHECK(c.nested_pieces == 0 || tc_parallel_pieces(ns[k], 1) == 1);
  }
  tc_set_num_threads(1);
  CHECK(tc_parallel_pieces(1000, 1) == 1);
  tc_set_num_threads(4);
  CHECK(tc_parallel_grain(1) >= tc_parallel_grain(100) && tc_parallel_grain(1u << 30) == 1);
}

/* ---- float32 array math against libm in double ---- */

static void vmath_accuracy(void) {
  enum { N = 20001 };
  static float x[N], y[N];
  struct {
    void (*fn)(float *, const float *, size_t);
    double (*ref)(double);
    double lo, hi, atol, rtol;
  } cases[] = {
      {tc_vexp_f32, exp, -100, 88, 0, 3e-7},    {tc_verf_f32, erf, -6, 6, 6e-7, 0},
      {tc_vtanh_f32, tanh, -10, 10, 0, 3e-7},   {tc_vtanh_f32, tanh, -0.7, 0.7, 0, 3e-7},
      {tc_verf_f32, erf, -0.01, 0.01, 0, 1e-6}, {tc_vlog_f32, log, 1e-30, 1e3, 0, 1.2e-7},
      {tc_vlog_f32, log, 0.5, 2, 0, 1.2e-7},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    for (size_t i = 0; i < N; i++)
      x[i] = (float)(cases[c].lo + (cases[c].hi - cases[c].lo) * (double)i / (N - 1));
    cases[c].fn(y, x, N);
    bool ok = true;
    for (size_t i = 0; i < N && ok; i++) {
      double r = cases[c].ref(x[i]);
      ok = fabs(y[i] - r) <= cases[c].atol + cases[c].rtol * fabs(r) + 1e-37;
      if (!ok)
        fprintf(stderr, "vmath case %zu: f(%.9g) = %.9g, libm %.9g\n", c, x[i], y[i], r);
    }
    CHECK(ok);
    /* in place, and a tail: the same values */
    float z[7];
    memcpy(z, x + 100, sizeof z);
    cases[c].fn(z, z, 7);
    CHECK(memcmp(z, y + 100, sizeof z) == 0);
  }
  float sp[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f}, o[5];
  tc_vexp_f32(o, sp, 5);
  CHECK(isnan(o[0]) && isinf(o[1]) && o[2] == 0 && o[3] == 1 && o[4] == 1);
  tc_verf_f32(o, sp, 5);
  CHECK(isnan(o[0]) && o[1] == 1 && o[2] == -1 && o[3] == 0 && signbit(o[4]));
  tc_vtanh_f32(o, sp, 5);
  CHECK(isnan(o[0]) && o[1] == 1 && o[2] == -1 && o[3] == 0 && signbit(o[4]));
  tc_vsigmoid_f32(o, sp, 5);
  CHECK(isnan(o[0]) && o[1] == 1 && o[2] == 0 && o[3] == 0.5f);
  tc_vlog_f32(o, sp, 5);
  CHECK(isnan(o[0]) && o[1] == INFINITY && isnan(o[2]) && o[3] == -INFINITY && o[4] == -INFINITY);
  float sub[] = {1e-45f, 3e-39f, FLT_MIN, -1e-45f}, os[4];
  tc_vlog_f32(os, sub, 4); /* subnormals are scaled first */
  for (int i = 0; i < 3; i++)
    CHECK(fabs(os[i] - log((double)sub[i])) <= 1e-7 * fabs(log((double)sub[i])));
  CHECK(isnan(os[3]));
  /* GELU against 0.5 t erfc(-t / sqrt 2) in double: within 4e-7 relative
   * everywhere down to the smallest normal result (one formula, nothing
   * cancels: 1 + erf near -2 had cost 5e-6) */
  double worst = 0;
  for (size_t i = 0; i < N; i++)
    x[i] = (float)(-14.0 + 20.0 * (double)i / (N - 1));
  x[0] = -1.8609521f, x[1] = -2.1888618f, x[2] = -6.0394197f; /* the worst found on 2 M points */
  tc_vgelu_f32(y, x, NULL, N);
  for (size_t i = 0; i < N; i++) {
    double r = 0.5 * x[i] * erfc(-x[i] * M_SQRT1_2);
    if (fabs(r) > 1.2e-38)
      worst = fmax(worst, fabs(y[i] - r) / fabs(r));
  }
  if (worst > 4e-7)
    fprintf(stderr, "gelu: relative error %.3g\n", worst);
  CHECK(worst <= 4e-7);
  /* exp(x - m) with its sum: differences below ln(n FLT_MIN) give 0, so
   * that softmax's division leaves no subnormal; NaN stays NaN */
  float ex[] = {0.0f, -10.0f, -85.0f, -86.0f, -200.0f, NAN}, ey[6];
  float es = tc_vexp_sub_sum_f32(ey, ex, 6, 0.0f); /* threshold -87.33 + ln 6 = -85.54 */
  CHECK(ey[0] == 1 && fabs(ey[1] - exp(-10.0)) <= 3e-7 * exp(-10.0) && ey[2] > 0 && ey[3] == 0);
  CHECK(ey[4] == 0 && isnan(ey[5]) && isnan(es));
  es = tc_vexp_sub_sum_f32(ey, ex, 5, 0.0f);
  CHECK(fabs(es - (1.0 + exp(-10.0) + exp(-85.0))) <= 1e-7);
  for (size_t i = 0; i < N; i++)
    x[i] = (float)(-120.0 * (double)i / (N - 1));
  es = tc_vexp_sub_sum_f32(y, x, N, 0.0f);
  bool normal = true;
  for (size_t i = 0; i < N; i++)
    normal &= y[i] == 0 || (y[i] / es >= FLT_MIN && fabs(y[i] - exp(x[i])) <= 3e-7 * exp(x[i]));
  CHECK(normal);
  tc_vgelu_f32(o, sp, NULL, 5);
  CHECK(isnan(o[0]) && o[1] == INFINITY && isnan(o[2]) && o[3] == 0 && o[4] == 0);
  /* tc_vbinary_f32, every op, lengths with and without a tail, against
   * scalar C; max keeps a NaN from either side and b only where b > a */
  float a[37], b[37], r[37];
  for (size_t i = 0; i < 37; i++) {
    a[i] = (float)((int)(i * 7 % 11) - 5) * 0.75f;
    b[i] = (float)((int)(i * 5 % 13) - 6) * 0.5f + 0.25f;
  }
  a[3] = NAN, b[4] = NAN, a[5] = b[5] = NAN, a[6] = INFINITY, b[7] = -INFINITY, b[8] = INFINITY;
  a[9] = -0.0f, b[9] = 0.0f, a[10] = 0.0f, b[10] = -0.0f;
  const char ops[] = "+-*/M";
  for (size_t k = 0; k < 5; k++)
    for (size_t n = 1; n <= 37; n += 12) {
      tc_vbinary_f32(r, a, b, n, ops[k]);
      bool same = true;
      for (size_t i = 0; i < n; i++) {
        float w = ops[k] == '+'   ? a[i] + b[i]
                  : ops[k] == '-' ? a[i] - b[i]
                  : ops[k] == '*' ? a[i] * b[i]
                  : ops[k] == '/' ? a[i] / b[i]
                                  : (b[i] > a[i] || isnan(b[i]) ? b[i] : a[i]);
        same &= memcmp(&w, &r[i], sizeof w) == 0 || (isnan(w) && isnan(r[i]));
      }
      CHECK(same);
    }
  tc_vbinary_f32(r, a, b, 11, 'M');
  CHECK(isnan(r[3]) && isnan(r[4]) && isnan(r[5]) && r[6] == INFINITY && r[8] == INFINITY);
  CHECK(signbit(r[9]) && !signbit(r[10])); /* equal zeros keep a */
  /* tc_vmax_taps_f32 folds its taps as M does, in tap order: taps a, b, a
   * against M(M(a, b), a), bits and NaNs alike */
  float ab[74], mt[37], want[37];
  memcpy(ab, a, sizeof a), memcpy(ab + 37, b, sizeof b);
  const ptrdiff_t taps[3] = {0, 37, 0};
  for (size_t n = 1; n <= 37; n += 12) {
    tc_vmax_taps_f32(mt, ab, taps, 3, n);
    tc_vbinary_f32(want, a, b, n, 'M');
    tc_vbinary_f32(want, want, a, n, 'M');
    bool same = true;
    for (size_t i = 0; i < n; i++)
      same &= memcmp(&mt[i], &want[i], sizeof *mt) == 0 || (isnan(mt[i]) && isnan(want[i]));
    CHECK(same);
  }
}

/* tc_vmax_f32 on every length to 70, the maximum at every position (either
 * chain of the AVX-512 loop, the tail), a NaN beside it (never taken),
 * and rows of -inf only; on each set against a scalar pass. */
static void vmax_positions(void) {
  const char *names[] = {"avx512", "avx2", "sse2"};
  float x[70];
  bool ok = true;
  for (size_t s = 0; s < 3; s++) {
    if (!tc_vmath_use(names[s]))
      continue;
    for (size_t n = 0; n <= 70 && ok; n++) {
      for (size_t at = 0; at < (n ? n : 1) && ok; at++) {
        for (size_t i = 0; i < n; i++)
          x[i] = (float)((i * 37) % 11) - 20.0f;
        if (n) {
          x[at] = 5.0f;
          x[(at + 1) % n] = n > 1 ? NAN : 5.0f;
        }
        float got = tc_vmax_f32(x, n), want = -INFINITY;
        for (size_t i = 0; i < n; i++)
          want = x[i] > want ? x[i] : want;
        ok = got == want;
        if (!ok)
          fprintf(stderr, "vmax %s: n %zu, max at %zu: %g, want %g\n", names[s], n, at, (double)got,
                  (double)want);
      }
      for (size_t i = 0; i < n; i++)
        x[i] = -INFINITY;
      ok = ok && tc_vmax_f32(x, n) == -INFINITY;
    }
  }
  CHECK(ok);
  CHECK(tc_vmath_use(NULL));
}

/* tc_vtranspose_f32 on each set against the index rule y[b * A + a] =
 * x[a * B + b]: A = 2, 4 and 8 (the AVX-512 register interleavings) and 1,
 * 3 (element by element), B below, at and past 16 and with tails; the
 * element past the end is never written. */
static void vtranspose_sets(void) {
  const char *names[] = {"avx512", "avx2", "sse2"};
  const size_t As[] = {1, 2, 3, 4, 8}, Bs[] = {1, 5, 15, 16, 17, 34, 48};
  float x[8 * 48], y[8 * 48 + 1];
  for (size_t i = 0; i < 8 * 48; i++)
    x[i] = (float)i + 0.25f;
  bool ok = true;
  for (size_t s = 0; s < 3; s++) {
    if (!tc_vmath_use(names[s]))
      continue;
    for (size_t ai = 0; ai < 5; ai++)
      for (size_t bi = 0; bi < 7 && ok; bi++) {
        size_t A = As[ai], B = Bs[bi];
        for (size_t i = 0; i <= A * B; i++)
          y[i] = -1.0f;
        tc_vtranspose_f32(y, x, A, B);
        for (size_t a = 0; a < A; a++)
          for (size_t b = 0; b < B; b++)
            ok = ok && y[b * A + a] == x[a * B + b];
        ok = ok && y[A * B] == -1.0f;
        if (!ok)
          fprintf(stderr, "vtranspose %s: A %zu, B %zu differs\n", names[s], A, B);
      }
  }
  CHECK(ok);
  CHECK(tc_vmath_use(NULL));
}

/* ---- the instruction sets of vmath agree ---- */

static void vmath_all(const float *x, const float *b, const int32_t *acc, size_t n, float *out,
                      size_t *k) {
  void (*maps[])(float *, const float *, size_t) = {tc_vexp_f32, tc_verf_f32, tc_vtanh_f32,
                                                    tc_vsigmoid_f32, tc_vlog_f32};
  for (size_t f = 0; f < 5; f++, *k += n)
    maps[f](out + *k, x, n);
  tc_vgelu_f32(out + *k, x, b, n), *k += n;
  tc_vgelu_f32(out + *k, x, NULL, n), *k += n;
  if (n > 2) {
    const ptrdiff_t taps[3] = {2, 0, 1};
    tc_vmax_taps_f32(out + *k, x, taps, 3, n - 2), *k += n - 2;
  }
  for (int c = 0; c < 2; c++) {
    double mean, var;
    tc_vmoments_f32(x, n, c, &mean, &var);
    out[(*k)++] = (float)mean, out[(*k)++] = (float)(mean - (float)mean);
    out[(*k)++] = (float)var, out[(*k)++] = (float)(var - (float)var);
    tc_vnorm_f32(out + *k, x, n, mean, 1.0 / sqrt(var + 1e-5), b, c ? b : NULL), *k += n;
    /* the same of x + b, the sum written on the way: as the sum, then its
     * moments */
    double m2, v2;
    float *s = out + *k;
    tc_vsum_moments_f32(s, x, b, n, c, &m2, &v2), *k += n;
    tc_vbinary_f32(out + *k, x, b, n, '+');
    CHECK(memcmp(out + *k, s, n * sizeof *s) == 0);
    tc_vmoments_f32(out + *k, n, c, &mean, &var);
    CHECK(memcmp(&mean, &m2, sizeof mean) == 0 && memcmp(&var, &v2, sizeof var) == 0);
    out[(*k)++] = (float)m2, out[(*k)++] = (float)v2;
  }
  memcpy(out + *k, x, n * sizeof *x);
  tc_vadd_inplace_f32(out + *k, b, n), *k += n;
  memcpy(out + *k, x, n * sizeof *x);
  tc_vaxpy_f32(out + *k, -0.75f, b, n), *k += n;
  memcpy(out + *k, x, n * sizeof *x);
  tc_vscale_f32(out + *k, n, 3.5f), *k += n;
  for (const char *op = "+-*/M"; *op; op++, *k += n)
    tc_vbinary_f32(out + *k, x, b, n, *op);
  out[(*k)++] = tc_vsum_f32(x, n);
  double ds;
  tc_vdsum_f32(x, n, &ds);
  out[(*k)++] = (float)ds, out[(*k)++] = (float)(ds - (float)ds);
  out[(*k)++] = tc_vdot_f32(x, b, n);
  out[(*k)++] = tc_vmax_f32(x, n);
  float sum = tc_vexp_sub_sum_f32(out + *k + 1, x, n, 0.5f);
  out[*k] = sum, *k += n + 1;
  tc_vdequant_i32_f32(out + *k, acc, acc + n, b, x, n), *k += n;
  /* sqrt, floor, ceil, round-half-even, sign: exact, so libm's bits on
   * every set (NaN's payload aside; sign: +0 for either zero, as the rows) */
  for (int op = TC_VROUND_SQRT; op <= TC_VROUND_SIGN; op++, *k += n) {
    tc_vround_f32(out + *k, x, n, op);
    for (size_t i = 0; i < n; i++) {
      float want = op == TC_VROUND_SQRT    ? sqrtf(x[i])
                   : op == TC_VROUND_FLOOR ? floorf(x[i])
                   : op == TC_VROUND_CEIL  ? ceilf(x[i])
                   : op == TC_VROUND_EVEN  ? nearbyintf(x[i])
                   : isnan(x[i])           ? x[i]
                                           : (float)((x[i] > 0) - (x[i] < 0));
      float got = out[*k + i];
      CHECK(memcmp(&got, &want, sizeof got) == 0 || (isnan(got) && isnan(want)));
    }
  }
}

/* Within tol of each other relative to the larger magnitude, plus 1e-7
 * for results that cancel (x - 0.75 b); NaN, infinities and zeros the same
 * (sign included). */
static bool close_rel(float a, float b, float tol) {
  if (isnan(a) || isnan(b) || isinf(a) || isinf(b) || a == 0 || b == 0)
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
  return fabsf(a - b) <= tol * fmaxf(fabsf(a), fabsf(b)) + 1e-7f;
}

/* The FMA sets (AVX-512, AVX2) give the same bits as each other; the SSE2
 * baseline, which rounds each product, stays within a few ulp of them. */
static void vmath_sets_agree(void) {
  enum { N = 1031 };
  static float x[N], b[N], ref[64 * N], got[64 * N];
  static int32_t acc[2 * N];
  for (size_t i = 0; i < N; i++) {
    x[i] = (float)sin((double)i * 0.37) * (float)(1 + i % 9);
    b[i] = (float)cos((double)i * 0.11) * 0.5f;
    acc[i] = (int32_t)(i * 2654435761u % 20001) - 10000;
    acc[N + i] = (int32_t)(i % 7);
  }
  x[3] = NAN, x[4] = INFINITY, x[5] = -INFINITY, x[6] = -0.0f, x[7] = 1e-40f, b[8] = NAN;
  x[9] = -3.5f, x[10] = -100.0f;                                    /* the GELU tail */
  x[11] = 2.5f, x[12] = -0.5f, x[13] = 8388609.0f, x[14] = -1e-40f; /* ties, 2^23 + 1 */
  const char *names[] = {"avx512", "avx2", "sse2"};
  size_t lens[] = {1, 5, 8, 15, 16, 17, 31, 33, 100, N}, tried = 0;
  CHECK(tc_vmath_use(NULL));
  const char *widest = tc_vmath_name();
  bool fma_ref = strcmp(widest, "sse2") != 0;
  float worst = 0;
  for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
    size_t kr = 0;
    CHECK(tc_vmath_use(NULL));
    vmath_all(x, b, acc, lens[l], ref, &kr);
    for (size_t s = 0; s < 3; s++) {
      if (!tc_vmath_use(names[s]))
        continue; /* not on this CPU */
      tried++;
      size_t kg = 0;
      vmath_all(x, b, acc, lens[l], got, &kg);
      CHECK(kg == kr);
      if (fma_ref == (s < 2)) { /* the same kind of set: bit for bit */
        bool same = memcmp(got, ref, kr * sizeof *ref) == 0;
        if (!same)
          fprintf(stderr, "vmath %s differs from %s at n = %zu\n", names[s], widest, lens[l]);
        CHECK(same);
        continue;
      }
      size_t bad = 0;
      for (size_t i = 0; i < kr; i++) {
        if (!close_rel(got[i], ref[i], 1e-6f) && bad++ < 3)
          fprintf(stderr, "vmath %s vs %s, n = %zu, result %zu: %.9g vs %.9g\n", names[s], widest,
                  lens[l], i, (double)got[i], (double)ref[i]);
        if (isfinite(got[i]) && isfinite(ref[i]) && got[i] != ref[i])
          worst = fmaxf(worst, fabsf(got[i] - ref[i]) / fmaxf(fabsf(got[i]), fabsf(ref[i])));
      }
      CHECK(bad == 0);
    }
  }
  fprintf(stderr, "vmath: largest relative difference between FMA and SSE2 sets %.3g\n",
          (double)worst);
  CHECK(tried >= 2 * sizeof lens / sizeof lens[0]); /* at least sse2 and the widest */
  CHECK(!tc_vmath_use("avx1024") && tc_vmath_use(NULL) && !strcmp(tc_vmath_name(), widest));
}

/* bfloat16 and float16 conversions at each vector width give the scalar
 * functions' bits: ties to even both ways, the largest floats rounding to
 * infinity (float16: 65504 stays, 65520 overflows), NaNs of either sign,
 * quiet and signaling (payload bits in the low half only too), infinities,
 * zeros, subnormals of both formats, tails of every length; float16 widened
 * from every one of its 65536 encodings. */
static void half_conversions(void) {
  enum { N = 1000 };
  static float x[N], back[N], all[65536];
  static uint16_t h[N], codes[65536];
  uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0xff7fffffu,
                        0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00001u, 0x7f800001u,
                        0xff800100u, 0x00000000u, 0x80000000u, 0x00000001u, 0x807fffffu,
                        0x3f7f8000u, 0x00018000u, 0x477fe000u, 0x477ff000u, 0x477fefffu,
                        0x33800000u, 0x33000000u, 0x33000001u, 0x387fc000u, 0x387fe000u,
                        0xb8800000u, 0x3f801000u, 0x3f803000u, 0x7fa00000u};
  for (size_t i = 0; i < N; i++) {
    uint32_t b = (uint32_t)(i * 2654435761u) ^ (uint32_t)(i << 7);
    if (i < sizeof special / sizeof special[0])
      b = special[i];
    else if (i % 3 == 0) /* float16's range, where its rounding happens */
      b = 0x33000000u + b % 0x14800000u;
    memcpy(&x[i], &b, 4);
  }
  for (size_t i = 0; i < 65536; i++)
    codes[i] = (uint16_t)i;
  const char *names[] = {"avx512", "avx2", "sse2"};
  size_t lens[] = {0, 1, 7, 15, 16, 17, 33, N};
  for (size_t v = 0; v < 3; v++) {
    if (!tc_vmath_use(names[v]))
      continue;
    for (int f16 = 0; f16 < 2; f16++)
      for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
        size_t n = lens[l], bad = 0;
        memset(h, 0xa5, sizeof h);
        (f16 ? tc_vf32_to_f16 : tc_vf32_to_bf16)(h, x, n);
        (f16 ? tc_vf16_to_f32 : tc_vbf16_to_f32)(back, h, n);
        for (size_t i = 0; i < n; i++) {
          float want = f16 ? tc_f16_to_f32(h[i]) : tc_bf16_to_f32(h[i]);
          bad += h[i] != (f16 ? tc_f32_to_f16(x[i]) : tc_f32_to_bf16(x[i])) ||
                 memcmp(&back[i], &want, 4) != 0;
        }
        bad += n < N && h[n] != 0xa5a5; /* nothing past n written */
        if (bad)
          fprintf(stderr, "%s conversions, %s, n = %zu: %zu wrong\n", f16 ? "float16" : "bfloat16",
                  names[v], n, bad);
        CHECK(bad == 0);
      }
    tc_vf16_to_f32(all, codes, 65536);
    size_t bad = 0;
    for (size_t i = 0; i < 65536; i++) {
      float want = tc_f16_to_f32(codes[i]);
      bad += memcmp(&all[i], &want, 4) != 0;
    }
    if (bad)
      fprintf(stderr, "float16 widening, %s: %zu of 65536 encodings wrong\n", names[v], bad);
    CHECK(bad == 0);
  }
  CHECK(tc_vmath_use(NULL));
}

/* ---- elementwise ---- */

static void binary_ops(void) {
  env e = env_new();
  /* same shape, a scalar either side, trailing row, per-row scalar, a
   * general broadcast, rank 0, tiny */
  int64_t big[] = {37, 1031}, s1[] = {1}, t3[] = {5, 7, 1001}, row[] = {515}, m2[] = {64, 515},
          col[] = {64, 1}, g1[] = {3, 1, 517}, g2[] = {3, 29, 1}, tiny[] = {7};
  struct {
    size_t ra, rb;
    const int64_t *da, *db;
  } shapes[] = {{2, 2, big, big}, {3, 1, t3, s1}, {1, 3, s1, t3},     {2, 1, m2, row},
                {2, 2, m2, col},  {3, 3, g1, g2}, {0, 0, NULL, NULL}, {1, 1, tiny, tiny}};
  const char *exact_ops[] = {"Add", "Sub", "Mul", "Div", "Max", "Min"};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const tc_rt_tensor *in[2] = {rand_t(&e, TC_DTYPE_F32, shapes[s].ra, shapes[s].da, -3, 3),
                                 rand_t(&e, TC_DTYPE_F32, shapes[s].rb, shapes[s].db, -3, 3)};
    for (size_t o = 0; o < sizeof exact_ops / sizeof exact_ops[0]; o++)
      check_plain(exact_ops[o], 14, in, 2, EXACT, &e);
    const tc_rt_tensor *ints[2] = {rand_t(&e, TC_DTYPE_I64, shapes[s].ra, shapes[s].da, -50, 50),
                                   rand_t(&e, TC_DTYPE_I64, shapes[s].rb, shapes[s].db, -50, 50)};
    check_plain("Add", 14, ints, 2, EXACT, &e);
    check_plain("Less", 13, in, 2, EXACT, &e);
  }
  /* NaN in Max / Min propagates as the reference does */
  tc_rt_tensor *a = rand_t(&e, TC_DTYPE_F32, 2, big, -1, 1),
               *b = rand_t(&e, TC_DTYPE_F32, 2, big, -1, 1);
  for (size_t i = 0; i < 400; i += 7) {
    ((float *)a->data)[i * 31] = NAN;
    ((float *)b->data)[i * 37] = NAN;
  }
  const tc_rt_tensor *nan_in[2] = {a, b};
  check_plain("Max", 13, nan_in, 2, EXACT, &e);
  check_plain("Min", 13, nan_in, 2, EXACT, &e);
  /* Pow: a scalar 2 is x * x exactly; other exponents as the reference */
  const tc_rt_tensor *p2[2] = {rand_t(&e, TC_DTYPE_F32, 2, big, -3, 3),
                               ten(&e, TC_DTYPE_F32, 0, NULL, (double[]){2})};
  check_plain("Pow", 15, p2, 2, EXACT, &e);
  const tc_rt_tensor *p3[2] = {rand_t(&e, TC_DTYPE_F32, 2, big, 0, 3),
                               rand_t(&e, TC_DTYPE_F32, 2, big, -2, 2)};
  check_plain("Pow", 15, p3, 2, EXACT, &e);
  /* variadic, broadcast, in place into the output */
  const tc_rt_tensor *three[3] = {rand_t(&e, TC_DTYPE_F32, 2, m2, -1, 1),
                                  rand_t(&e, TC_DTYPE_F32, 1, row, -1, 1),
                                  rand_t(&e, TC_DTYPE_F32, 2, col, -1, 1)};
  check_plain("Sum", 13, three, 3, EXACT, &e);
  check_plain("Mean", 13, three, 3, EXACT, &e);
  check_plain("Max", 13, three, 3, EXACT, &e);
  /* PRelu with a per-channel slope */
  const tc_rt_tensor *pr[2] = {rand_t(&e, TC_DTYPE_F32, 3, g2, -1, 1),
                               rand_t(&e, TC_DTYPE_F32, 3, (int64_t[]){3, 1, 1}, 0, 1)};
  check_plain("PRelu", 16, pr, 2, EXACT, &e);
  tc_model_free(e.m);
}

static void unary_ops(void) {
  env e = env_new();
  int64_t big[] = {40003}, odd[] = {3, 5, 7}, one[] = {1};
  const int64_t *shapes[] = {big, odd, one};
  size_t ranks[] = {1, 3, 1};
  static const struct {
    const char *op;
    double lo, hi;
    tol t;
  } ops[] = {
      {"Relu", -4, 4, {0, 0}},
      {"Neg", -4, 4, {0, 0}},
      {"Abs", -4, 4, {0, 0}},
      {"Sqrt", 0, 100, {0, 0}},
      {"Reciprocal", 0.1, 9, {0, 0}},
      {"Floor", -9, 9, {0, 0}},
      {"Ceil", -9, 9, {0, 0}},
      {"Round", -9, 9, {0, 0}},
      {"Sign", -9, 9, {0, 0}},
      {"Exp", -80, 80, {0, 3e-7}},
      {"Log", 1e-3, 1e3, {1e-7, 3e-7}},
      {"Erf", -5, 5, {6e-7, 0}},
      {"Tanh", -9, 9, {1e-9, 3e-7}},
      {"Sigmoid", -30, 30, {1e-9, 5e-7}},
      {"HardSwish", -5, 5, {1e-7, 3e-7}},
      {"Softplus", -5, 5, {1e-7, 2e-6}},
  };
  for (size_t s = 0; s < 3; s++) {
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
      const tc_rt_tensor *in[1] = {
          rand_t(&e, TC_DTYPE_F32, ranks[s], shapes[s], ops[o].lo, ops[o].hi)};
      check_plain(ops[o].op, 20, in, 1, ops[o].t, &e);
    }
    const tc_rt_tensor *x[1] = {rand_t(&e, TC_DTYPE_F32, ranks[s], shapes[s], -6, 6)};
    tc_node *n = mk(&e, "LeakyRelu", 1, 1, 1);
    attr_f(n, 0, "alpha", 0.3f);
    check_node(&e, n, 16, x, 1, EXACT);
    n = mk(&e, "HardSigmoid", 1, 1, 2);
    attr_f(n, 0, "alpha", 0.3f);
    attr_f(n, 1, "beta", 0.4f);
    check_node(&e, n, 6, x, 1, (tol){1e-7, 3e-7});
    check_plain("Gelu", 20, x, 1, (tol){1e-6, 1e-6}, &e);
    /* below -2 the fast kernel computes in double as the reference: tiny
     * results to 1e-6 relative (float erf alone is off by up to 1e-6 absolute) */
    const tc_rt_tensor *tail[1] = {rand_t(&e, TC_DTYPE_F32, ranks[s], shapes[s], -7, -2)};
    check_plain("Gelu", 20, tail, 1, (tol){1e-20, 1e-6}, &e);
    n = mk(&e, "Gelu", 1, 1, 1);
    attr_s(n, 0, "approximate", "tanh");
    check_node(&e, n, 20, x, 1, (tol){1e-6, 1e-6});
    /* float64 and float16 take the parallel reference rows */
    const tc_rt_tensor *h[1] = {rand_t(&e, TC_DTYPE_F16, ranks[s], shapes[s], -6, 6)};
    check_plain("Sigmoid", 13, h, 1, EXACT, &e);
    const tc_rt_tensor *d[1] = {rand_t(&e, TC_DTYPE_F64, ranks[s], shapes[s], -6, 6)};
    check_plain("Tanh", 13, d, 1, EXACT, &e);
  }
  /* Clip with bounds, Where with a broadcast condition */
  int64_t m2[] = {64, 515}, row[] = {515}, col[] = {64, 1};
  const tc_rt_tensor *clip[3] = {rand_t(&e, TC_DTYPE_F32, 2, m2, -3, 3),
                                 ten(&e, TC_DTYPE_F32, 0, NULL, (double[]){-1}),
                                 ten(&e, TC_DTYPE_F32, 0, NULL, (double[]){2})};
  check_plain("Clip", 13, clip, 3, EXACT, &e);
  /* the vector loop's cases: NaN kept, only a min, only a max, min above
   * max (max wins), the attributes of opset 6 */
  tc_rt_tensor *xn = rand_t(&e, TC_DTYPE_F32, 2, m2, -3, 3);
  for (size_t i = 0; i < 64 * 515; i += 37)
    ((float *)xn->data)[i] = NAN;
  const tc_rt_tensor *lo_only[2] = {xn, clip[1]}, *hi_only[3] = {xn, NULL, clip[2]},
                     *crossed[3] = {xn, clip[2], clip[1]};
  check_plain("Clip", 13, lo_only, 2, EXACT, &e);
  check_plain("Clip", 13, hi_only, 3, EXACT, &e);
  check_plain("Clip", 13, crossed, 3, EXACT, &e);
  tc_node *c6 = mk(&e, "Clip", 1, 1, 2);
  attr_f(c6, 0, "min", -0.5f);
  attr_f(c6, 1, "max", 0.25f);
  check_node(&e, c6, 6, (const tc_rt_tensor *const[]){xn}, 1, EXACT);
  const tc_rt_tensor *w[3] = {rand_t(&e, TC_DTYPE_BOOL, 1, row, 0, 1.99),
                              rand_t(&e, TC_DTYPE_F32, 2, m2, -3, 3),
                              rand_t(&e, TC_DTYPE_F32, 2, col, -3, 3)};
  check_plain("Where", 16, w, 3, EXACT, &e);
  const tc_rt_tensor *wi[3] = {rand_t(&e, TC_DTYPE_BOOL, 2, col, 0, 1.99),
                               rand_t(&e, TC_DTYPE_I64, 2, m2, -9, 9),
                               rand_t(&e, TC_DTYPE_I64, 1, row, -9, 9)};
  check_plain("Where", 16, wi, 3, EXACT, &e);
  tc_model_free(e.m);
}

/* QuantizeLinear and DequantizeLinear per tensor (the vector paths) and
 * DequantizeLinear per axis against the reference loops, bit for bit: ties,
 * saturation, NaN and infinities, uint8 and int8, with and without a zero
 * point, odd sizes; DynamicQuantizeLinear (its min/max pass and
 * quantization, 3 outputs) the same way. Under each vector set this CPU
 * runs (AVX-512 and AVX2 round with roundps, SSE2 with a magic constant). */
static void quantize_dequantize_set(void) {
  env e = env_new();
  int64_t big[] = {37, 129}, odd[] = {7}, one[] = {1};
  for (size_t s = 0; s < 2; s++)
    for (int sgn = 0; sgn < 2; sgn++)
      for (int with_zp = 0; with_zp < 2; with_zp++) {
        int32_t qt = sgn ? TC_DTYPE_I8 : TC_DTYPE_U8;
        tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, s ? 1 : 2, s ? odd : big, -40, 40);
        float *xv = x->data;
        if (!s) {
          xv[1] = NAN, xv[2] = INFINITY, xv[3] = -INFINITY, xv[4] = 2.5f * 0.125f;
          xv[5] = 3.5f * 0.125f, xv[6] = -2.5f * 0.125f, xv[7] = 1e9f, xv[8] = -1e9f;
        }
        tc_rt_tensor *sc = ten(&e, TC_DTYPE_F32, 0, one, NULL);
        *(float *)sc->data = 0.125f;
        tc_rt_tensor *zp = ten(&e, qt, 0, one, NULL);
        tc_rt_set_f64(zp, 0, sgn ? -3 : 131);
        const tc_rt_tensor *qin[3] = {x, sc, with_zp ? zp : NULL};
        check_node(&e, mk(&e, "QuantizeLinear", 3, 1, 0), 21, qin, 3, EXACT);
        if (!sgn && !with_zp) { /* DynamicQuantizeLinear: the same values, finite */
          tc_rt_tensor *xf = rand_t(&e, TC_DTYPE_F32, s ? 1 : 2, s ? odd : big, -40, 40);
          if (!s) { /* signed zeros; the extremes in the second of a pair of blocks */
            float *v = xf->data;
            v[4] = 0.0f, v[5] = -0.0f, v[20] = 55.0f, v[50] = -47.0f;
          }
          const tc_rt_tensor *dyn[1] = {xf};
          check_node(&e, mk(&e, "DynamicQuantizeLinear", 1, 3, 0), 11, dyn, 1, EXACT);
          const tc_rt_tensor *pos[1] = {rand_t(&e, TC_DTYPE_F32, 1, odd, 0.5, 3)};
          check_node(&e, mk(&e, "DynamicQuantizeLinear", 1, 3, 0), 11, pos, 1, EXACT);
        }
        tc_rt_tensor *q = rand_t(&e, qt, s ? 1 : 2, s ? odd : big, sgn ? -128 : 0, sgn ? 128 : 256);
        const tc_rt_tensor *din[3] = {q, sc, with_zp ? zp : NULL};
        check_node(&e, mk(&e, "DequantizeLinear", 3, 1, 0), 21, din, 3, EXACT);
      }
  /* per axis (the blocked and last-axis paths): axis 1 of [5, 33, 7] and
   * [37, 129], each channel its own scale and zero point */
  int64_t d3[] = {5, 33, 7}, d2[] = {37, 129};
  for (int last = 0; last < 2; last++)
    for (int sgn = 0; sgn < 2; sgn++) {
      int32_t qt = sgn ? TC_DTYPE_I8 : TC_DTYPE_U8;
      int64_t ch[] = {last ? 129 : 33};
      tc_rt_tensor *q =
          rand_t(&e, qt, last ? 2 : 3, last ? d2 : d3, sgn ? -128 : 0, sgn ? 128 : 256);
      tc_rt_tensor *sc = rand_t(&e, TC_DTYPE_F32, 1, ch, 0.01, 2);
      tc_rt_tensor *zp = rand_t(&e, qt, 1, ch, sgn ? -20 : 100, sgn ? 20 : 150);
      const tc_rt_tensor *din[3] = {q, sc, zp};
      tc_node *n = mk(&e, "DequantizeLinear", 3, 1, 1);
      attr_i(n, 0, "axis", 1);
      check_node(&e, n, 21, din, 3, EXACT);
    }
  tc_model_free(e.m);
}

static void quantize_dequantize(void) {
  const char *names[] = {"avx512", "avx2", "sse2"};
  size_t tried = 0;
  for (size_t v = 0; v < 3; v++)
    if (tc_vmath_use(names[v])) {
      tried++;
      quantize_dequantize_set();
    }
  CHECK(tried >= 1 && tc_vmath_use(NULL));
}

static void casts(void) {
  env e = env_new();
  int64_t big[] = {33, 1001}, odd[] = {5};
  struct {
    int32_t from, to;
    double lo, hi;
  } pairs[] = {
      {TC_DTYPE_F32, TC_DTYPE_F16, -70000, 70000},  {TC_DTYPE_F16, TC_DTYPE_F32, -1000, 1000},
      {TC_DTYPE_F32, TC_DTYPE_BF16, -1e5, 1e5},     {TC_DTYPE_BF16, TC_DTYPE_F32, -1e5, 1e5},
      {TC_DTYPE_F32, TC_DTYPE_F64, -1e5, 1e5},      {TC_DTYPE_F64, TC_DTYPE_F32, -1e5, 1e5},
      {TC_DTYPE_I64, TC_DTYPE_F32, -1e9, 1e9},      {TC_DTYPE_I32, TC_DTYPE_F32, -1e9, 1e9},
      {TC_DTYPE_U8, TC_DTYPE_F32, 0, 255},          {TC_DTYPE_BOOL, TC_DTYPE_F32, 0, 1.99},
      {TC_DTYPE_F32, TC_DTYPE_I64, -1e6, 1e6},      {TC_DTYPE_F32, TC_DTYPE_I32, -3e9, 3e9},
      {TC_DTYPE_I64, TC_DTYPE_I32, -1e10, 1e10},    {TC_DTYPE_I32, TC_DTYPE_I64, -1e9, 1e9},
      {TC_DTYPE_F32, TC_DTYPE_BOOL, -2, 2},         {TC_DTYPE_I64, TC_DTYPE_BOOL, -2, 2},
      {TC_DTYPE_F64, TC_DTYPE_I8, -300, 300},       {TC_DTYPE_F32, TC_DTYPE_I4, -8, 7},
      {TC_DTYPE_F32, TC_DTYPE_F8E4M3FN, -500, 500},
  };
  for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++)
    for (size_t s = 0; s < 2; s++) {
      tc_rt_tensor *x =
          rand_t(&e, pairs[p].from, s ? 1 : 2, s ? odd : big, pairs[p].lo, pairs[p].hi);
      if (pairs[p].from == TC_DTYPE_F32 && !s) { /* NaN and infinities */
        ((float *)x->data)[3] = NAN;
        ((float *)x->data)[5] = INFINITY;
        ((float *)x->data)[7] = -INFINITY;
      }
      const tc_rt_tensor *in[1] = {x};
      tc_node *n = mk(&e, "Cast", 1, 1, 1);
      attr_i(n, 0, "to", pairs[p].to);
      check_node(&e, n, 21, in, 1, EXACT);
    }
  tc_model_free(e.m);
}

/* ---- nn ---- */

static void softmax_rows(void) {
  env e = env_new();
  int64_t att[] = {12, 128, 131}, odd[] = {4, 67, 33}, one[] = {3, 1};
  const tol t = {1e-9, 2e-6}, lt = {2e-6, 1e-6};
  const char *ops[] = {"Softmax", "LogSoftmax", "Hardmax"};
  for (size_t o = 0; o < 3; o++) {
    tol to = o == 0 ? t : o == 1 ? lt : EXACT;
    const tc_rt_tensor *x[1] = {rand_t(&e, TC_DTYPE_F32, 3, att, -8, 8)};
    check_plain(ops[o], 13, x, 1, to, &e);
    const tc_rt_tensor *y[1] = {rand_t(&e, TC_DTYPE_F32, 3, odd, -8, 8)};
    check_plain(ops[o], 13, y, 1, to, &e);
    /* a middle axis: float32 across the inner positions (Hardmax: the
     * reference); a channel axis of 19 over 1000 positions, two blocks */
    tc_node *n = mk(&e, ops[o], 1, 1, 1);
    attr_i(n, 0, "axis", 1);
    check_node(&e, n, 13, y, 1, to);
    int64_t seg[] = {2, 19, 25, 40};
    tc_rt_tensor *sx = rand_t(&e, TC_DTYPE_F32, 4, seg, -100, 100); /* exp overflows unshifted */
    ((float *)sx->data)[1234] = NAN; /* its column is NaN either way */
    n = mk(&e, ops[o], 1, 1, 1);
    attr_i(n, 0, "axis", 1);
    check_node(&e, n, 13, (const tc_rt_tensor *const[]){sx}, 1, to);
    const tc_rt_tensor *z[1] = {rand_t(&e, TC_DTYPE_F32, 2, one, -8, 8)};
    check_plain(ops[o], 13, z, 1, to, &e);
    const tc_rt_tensor *h[1] = {rand_t(&e, TC_DTYPE_F16, 3, odd, -8, 8)};
    check_plain(ops[o], 13, h, 1, EXACT, &e);
  }
  /* a NaN in a row spreads over the row either way */
  tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, 3, odd, -8, 8);
  ((float *)x->data)[40] = NAN;
  ((float *)x->data)[33] = NAN;
  const tc_rt_tensor *in[1] = {x};
  check_plain("Softmax", 13, in, 1, t, &e);
  tc_model_free(e.m);
}

static void normalizations(void) {
  env e = env_new();
  const tol t = {1e-6, 1e-5};
  int64_t x2[] = {64, 769}, x3[] = {2, 33, 100}, h[] = {769}, blk[] = {33, 100}, last[] = {100};
  /* LayerNormalization: contiguous scale and bias; a broadcast scale (the
   * reference rows); Mean and InvStdDev outputs; RMSNormalization */
  const tc_rt_tensor *ln[3] = {rand_t(&e, TC_DTYPE_F32, 2, x2, -3, 5),
                               rand_t(&e, TC_DTYPE_F32, 1, h, 0.5, 1.5),
                               rand_t(&e, TC_DTYPE_F32, 1, h, -1, 1)};
  check_node(&e, mk(&e, "LayerNormalization", 3, 3, 0), 17, ln, 3, t);
  check_node(&e, mk(&e, "LayerNormalization", 2, 1, 0), 17, ln, 2, t);
  check_node(&e, mk(&e, "RMSNormalization", 2, 1, 0), 23, ln, 2, t);
  const tc_rt_tensor *l3[3] = {rand_t(&e, TC_DTYPE_F32, 3, x3, -3, 5),
                               rand_t(&e, TC_DTYPE_F32, 2, blk, 0.5, 1.5),
                               rand_t(&e, TC_DTYPE_F32, 1, last, -1, 1)};
  tc_node *n = mk(&e, "LayerNormalization", 3, 3, 1);
  attr_i(n, 0, "axis", 1);
  check_node(&e, n, 17, l3, 3, t);
  /* ai.tacoc.SkipLayerNormalization with its Sum output (float32: each row
   * summed just before it is normalized) */
  const tc_rt_tensor *sk[4] = {ln[0], rand_t(&e, TC_DTYPE_F32, 2, x2, -2, 2), ln[1], ln[2]};
  n = mk(&e, "SkipLayerNormalization", 4, 2, 0);
  n->domain = "ai.tacoc";
  check_node(&e, n, 1, sk, 4, t);
  const tc_rt_tensor *l16[3] = {rand_t(&e, TC_DTYPE_F16, 2, x2, -3, 5), ln[1], ln[2]};
  /* float16: float32 rows on widened copies, rounded once (the reference
   * rounds double results): within a float16 step */
  check_node(&e, mk(&e, "LayerNormalization", 3, 1, 0), 17, l16, 3, (tol){1e-3, 0x1p-10});
  /* NCHW: BatchNormalization (float32 planes in float: within t), InstanceNormalization,
   * GroupNormalization per group (18) and per channel (21) */
  int64_t img[] = {2, 8, 37, 41}, c8[] = {8}, c4[] = {4}, img1[] = {1, 3, 227, 227}, c3[] = {3};
  tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, 4, img, -2, 3);
  const tc_rt_tensor *bn[5] = {
      x, rand_t(&e, TC_DTYPE_F32, 1, c8, 0.5, 2), rand_t(&e, TC_DTYPE_F32, 1, c8, -1, 1),
      rand_t(&e, TC_DTYPE_F32, 1, c8, -1, 1), rand_t(&e, TC_DTYPE_F32, 1, c8, 0.1, 2)};
  check_node(&e, mk(&e, "BatchNormalization", 5, 1, 0), 15, bn, 5, t);
  const tc_rt_tensor *bn1[5] = {
      rand_t(&e, TC_DTYPE_F32, 4, img1, -2, 3), rand_t(&e, TC_DTYPE_F32, 1, c3, 0.5, 2),
      rand_t(&e, TC_DTYPE_F32, 1, c3, -1, 1), rand_t(&e, TC_DTYPE_F32, 1, c3, -1, 1),
      rand_t(&e, TC_DTYPE_F32, 1, c3, 0.1, 2)};
  check_node(&e, mk(&e, "BatchNormalization", 5, 1, 0), 15, bn1, 5, t);
  /* LRN: odd and even windows, planes longer than a chunk of positions,
   * a window wider than the channels (the ring of squares longer than
   * them), one wider than the ring allows (the double loop) */
  int64_t lrn_d[] = {2, 7, 13, 45};
  const tc_rt_tensor *lx[1] = {rand_t(&e, TC_DTYPE_F32, 4, lrn_d, -3, 3)};
  const struct {
    int64_t size;
    float alpha, beta, bias;
  } lrn[] = {{5, 2e-2f, 0.75f, 1}, {4, 0.3f, 0.5f, 2}, {9, 1e-4f, 0.75f, 1}, {65, 1e-3f, 0.75f, 1}};
  for (size_t i = 0; i < 4; i++) {
    n = mk(&e, "LRN", 1, 1, 4);
    attr_i(n, 0, "size", lrn[i].size);
    attr_f(n, 1, "alpha", lrn[i].alpha);
    attr_f(n, 2, "beta", lrn[i].beta);
    attr_f(n, 3, "bias", lrn[i].bias);
    check_node(&e, n, 13, lx, 1, (tol){1e-7, 2e-6});
  }
  check_node(&e, mk(&e, "InstanceNormalization", 3, 1, 0), 6, bn, 3, t);
  n = mk(&e, "GroupNormalization", 3, 1, 1);
  attr_i(n, 0, "num_groups", 4);
  const tc_rt_tensor *gn18[3] = {x, rand_t(&e, TC_DTYPE_F32, 1, c4, 0.5, 2),
                                 rand_t(&e, TC_DTYPE_F32, 1, c4, -1, 1)};
  check_node(&e, n, 18, gn18, 3, t);
  check_node(&e, n, 21, bn, 3, t);
  tc_model_free(e.m);
}

static void reductions(void) {
  env e = env_new();
  const tol t = {1e-6, 1e-6};
  int64_t rows[] = {300, 771}, img[] = {8, 5, 33, 35}, odd[] = {3, 7, 1, 11};
  int64_t last = -1, tr[] = {2, 3}, first = 0;
  const char *ops[] = {"ReduceMean", "ReduceSum", "ReduceMax",      "ReduceMin",
                       "ReduceL2",   "ReduceL1",  "ReduceSumSquare"};
  struct {
    size_t rank;
    const int64_t *dims;
    int64_t *axes;
    size_t n_axes;
    int64_t keep;
  } cases[] = {{2, rows, &last, 1, 1},
               {4, img, tr, 2, 0},
               {4, odd, tr, 2, 1},
               {4, odd, &last, 1, 0},
               {2, rows, &first, 1, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, cases[c].rank, cases[c].dims, -2, 2);
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
      tc_node *n = mk(&e, ops[o], 1, 1, 2);
      attr_ints(n, 0, "axes", cases[c].axes, cases[c].n_axes);
      attr_i(n, 1, "keepdims", cases[c].keep);
      const tc_rt_tensor *in[1] = {x};
      bool exact = strstr(ops[o], "Max") || strstr(ops[o], "Min");
      check_node(&e, n, 11, in, 1, exact ? EXACT : t);
    }
  }
  tc_model_free(e.m);
}

/* ---- data movement ---- */

static void transposes(void) {
  env e = env_new();
  int64_t bshd[] = {2, 67, 12, 64}, p0213[] = {0, 2, 1, 3}, p0231[] = {0, 2, 3, 1};
  int64_t sq[] = {517, 1031}, p10[] = {1, 0}, odd[] = {7, 33, 45}, p201[] = {2, 0, 1};
  int64_t p120[] = {1, 2, 0}, one[] = {1, 1, 5}, p021[] = {0, 2, 1};
  struct {
    size_t rank;
    const int64_t *dims, *perm;
  } cases[] = {{4, bshd, p0213}, {4, bshd, p0231}, {2, sq, p10},
               {3, odd, p201},   {3, odd, p120},   {3, one, p021}};
  int32_t dts[] = {TC_DTYPE_F32, TC_DTYPE_I8, TC_DTYPE_F16, TC_DTYPE_I64};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
      const tc_rt_tensor *in[1] = {rand_t(&e, dts[d], cases[c].rank, cases[c].dims, -100, 100)};
      tc_node *n = mk(&e, "Transpose", 1, 1, 1);
      attr_ints(n, 0, "perm", (int64_t *)cases[c].perm, cases[c].rank);
      check_node(&e, n, 13, in, 1, EXACT);
    }
  /* DepthToSpace by output rows: both modes, blocksizes 2 and 3, element
   * sizes 4, 1 and 2 */
  int64_t d2s[] = {2, 16, 33, 35}, d3s[] = {1, 18, 7, 5};
  const tc_rt_tensor *dx[1] = {rand_t(&e, TC_DTYPE_F32, 4, d2s, -1, 1)};
  tc_node *n = mk(&e, "DepthToSpace", 1, 1, 1);
  attr_i(n, 0, "blocksize", 2);
  check_node(&e, n, 13, dx, 1, EXACT);
  const tc_rt_tensor *d8[1] = {rand_t(&e, TC_DTYPE_I8, 4, d3s, -100, 100)};
  const tc_rt_tensor *d16[1] = {rand_t(&e, TC_DTYPE_F16, 4, d3s, -1, 1)};
  for (int crd = 0; crd < 2; crd++) {
    n = mk(&e, "DepthToSpace", 1, 1, 2);
    attr_i(n, 0, "blocksize", 3);
    attr_s(n, 1, "mode", crd ? "CRD" : "DCR");
    check_node(&e, n, 13, crd ? d16 : d8, 1, EXACT);
    n = mk(&e, "DepthToSpace", 1, 1, 2);
    attr_i(n, 0, "blocksize", 2);
    attr_s(n, 1, "mode", crd ? "CRD" : "DCR");
    check_node(&e, n, 13, dx, 1, EXACT);
  }
  tc_model_free(e.m);
}

static void gather_concat_slice_expand(void) {
  env e = env_new();
  /* Gather rows (negative indices too), along a middle axis */
  int64_t emb[] = {1000, 77}, ni[] = {3, 100}, x3[] = {4, 300, 9};
  tc_rt_tensor *idx = rand_t(&e, TC_DTYPE_I64, 2, ni, -1000, 999.99);
  const tc_rt_tensor *g[2] = {rand_t(&e, TC_DTYPE_F32, 2, emb, -1, 1), idx};
  check_plain("Gather", 13, g, 2, EXACT, &e);
  tc_rt_tensor *idx32 = rand_t(&e, TC_DTYPE_I32, 2, ni, -300, 299.99);
  const tc_rt_tensor *g1[2] = {rand_t(&e, TC_DTYPE_I64, 3, x3, -9, 9), idx32};
  tc_node *n = mk(&e, "Gather", 2, 1, 1);
  attr_i(n, 0, "axis", 1);
  check_node(&e, n, 13, g1, 2, EXACT);
  /* an out-of-range index is refused the same way */
  ((int64_t *)idx->data)[250] = 1000;
  tc_rt_tensor out[1];
  tc_fast_kernels_set(true);
  CHECK(run(&e, mk(&e, "Gather", 2, 1, 0), 13, g, 2, out) == TC_STATUS_INVALID);
  /* Concat on each axis of three inputs */
  int64_t a[] = {40, 30, 50}, b[] = {40, 30, 7}, c[] = {40, 30, 1};
  int64_t a1[] = {40, 3, 50}, a0[] = {1, 30, 50};
  const tc_rt_tensor *c2[3] = {rand_t(&e, TC_DTYPE_F32, 3, a, -1, 1),
                               rand_t(&e, TC_DTYPE_F32, 3, b, -1, 1),
                               rand_t(&e, TC_DTYPE_F32, 3, c, -1, 1)};
  const tc_rt_tensor *c1[3] = {c2[0], rand_t(&e, TC_DTYPE_F32, 3, a1, -1, 1), c2[0]};
  const tc_rt_tensor *c0[3] = {c2[0], rand_t(&e, TC_DTYPE_F32, 3, a0, -1, 1), c2[0]};
  const tc_rt_tensor *const *cs[3] = {c0, c1, c2};
  for (int64_t ax = 0; ax < 3; ax++) {
    n = mk(&e, "Concat", 3, 1, 1);
    attr_i(n, 0, "axis", ax);
    check_node(&e, n, 13, cs[ax], 3, EXACT);
  }
  /* Slice: steps forward and back, clamped ends, a subset of axes */
  int64_t sx[] = {9, 61, 130};
  tc_rt_tensor *sd = rand_t(&e, TC_DTYPE_F32, 3, sx, -1, 1);
  int64_t d3[] = {3}, d2[] = {2};
  const tc_rt_tensor *sl[5] = {sd, ten(&e, TC_DTYPE_I64, 1, d3, (double[]){1, -3, 200}),
                               ten(&e, TC_DTYPE_I64, 1, d3, (double[]){8, -60, 1}),
                               ten(&e, TC_DTYPE_I64, 1, d3, (double[]){0, 1, 2}),
                               ten(&e, TC_DTYPE_I64, 1, d3, (double[]){2, -1, -3})};
  check_plain("Slice", 13, sl, 5, EXACT, &e);
  const tc_rt_tensor *sl2[4] = {sd, ten(&e, TC_DTYPE_I64, 1, d2, (double[]){5, 3}),
                                ten(&e, TC_DTYPE_I64, 1, d2, (double[]){1000, 125}),
                                ten(&e, TC_DTYPE_I64, 1, d2, (double[]){1, 2})};
  check_plain("Slice", 13, sl2, 4, EXACT, &e);
  const tc_rt_tensor *sl3[3] = {sd, ten(&e, TC_DTYPE_I64, 1, d2, (double[]){5, 3}),
                                ten(&e, TC_DTYPE_I64, 1, d2, (double[]){5, 3})};
  check_plain("Slice", 13, sl3, 3, EXACT, &e); /* empty */
  /* Expand a row, a column, a scalar */
  int64_t r[] = {1, 77}, col[] = {300, 1}, two = 2;
  const tc_rt_tensor *shape = ten(&e, TC_DTYPE_I64, 1, &two, (double[]){300, 77});
  const tc_rt_tensor *ex[3][2] = {{rand_t(&e, TC_DTYPE_F32, 2, r, -1, 1), shape},
                                  {rand_t(&e, TC_DTYPE_F32, 2, col, -1, 1), shape},
                                  {rand_t(&e, TC_DTYPE_I8, 0, NULL, -9, 9), shape}};
  for (size_t i = 0; i < 3; i++)
    check_plain("Expand", 13, ex[i], 2, EXACT, &e);
  /* Tile and Pad split the mapped walk */
  const tc_rt_tensor *tile[2] = {rand_t(&e, TC_DTYPE_F32, 2, r, -1, 1),
                                 ten(&e, TC_DTYPE_I64, 1, &two, (double[]){300, 3})};
  check_plain("Tile", 13, tile, 2, EXACT, &e);
  int64_t four = 4;
  const tc_rt_tensor *pad[2] = {rand_t(&e, TC_DTYPE_F32, 2, col, -1, 1),
                                ten(&e, TC_DTYPE_I64, 1, &four, (double[]){2, 3, 1, 40})};
  n = mk(&e, "Pad", 2, 1, 1);
  attr_s(n, 0, "mode", "reflect");
  check_node(&e, n, 13, pad, 2, EXACT);
  /* the row walk's runs: each mode on 4-D values of four element sizes, a
   * constant value, negative pads (cropping), pads wider than the axis */
  static const char *const modes[] = {"constant", "reflect", "edge", "wrap"};
  static const int32_t pdt[] = {TC_DTYPE_F32, TC_DTYPE_I8, TC_DTYPE_F16, TC_DTYPE_I64};
  int64_t p4[] = {2, 3, 7, 9}, eight = 8;
  double pv[2][8] = {{0, 1, 2, 3, 1, 0, 1, 4}, {0, 0, -2, 11, 0, 1, 3, -4}};
  for (size_t m = 0; m < 4; m++)
    for (size_t v = 0; v < 2; v++) {
      int32_t dt = pdt[(m + v) % 4];
      const tc_rt_tensor *pin[3] = {rand_t(&e, dt, 4, p4, -50, 50),
                                    ten(&e, TC_DTYPE_I64, 1, &eight, pv[v]),
                                    ten(&e, dt, 0, NULL, (double[]){7})};
      n = mk(&e, "Pad", m == 0 ? 3 : 2, 1, 1);
      attr_s(n, 0, "mode", modes[m]);
      check_node(&e, n, 19, pin, m == 0 ? 3 : 2, EXACT);
    }
  tc_model_free(e.m);
}

/* ---- attention ---- */

static void pools(void) {
  env e = env_new();
  int64_t big[] = {2, 5, 23, 17}, small[] = {1, 3, 6, 5};
  const tol t = {1e-6, 1e-6};
  const char *ops[] = {"MaxPool", "AveragePool"};
  for (size_t o = 0; o < 2; o++) {
    for (int variant = 0; variant < 4; variant++) {
      const tc_rt_tensor *x[1] = {rand_t(&e, TC_DTYPE_F32, 4, variant & 1 ? small : big, -3, 3)};
      tc_node *n = mk(&e, ops[o], 1, 1, 5);
      int64_t k[2] = {3, 3}, s[2] = {2, 1}, p[4] = {1, 0, 1, 2}, d[2] = {1, 2};
      attr_ints(n, 0, "kernel_shape", k, 2);
      attr_ints(n, 1, "strides", s, 2);
      attr_ints(n, 2, "pads", p, 4);
      attr_i(n, 3, "ceil_mode", variant >= 2);
      if (o == 0)
        attr_ints(n, 4, "dilations", d, 2);
      else
        attr_i(n, 4, "count_include_pad", variant & 1);
      check_node(&e, n, 19, x, 1, o == 0 ? EXACT : t);
    }
  }
  /* NaNs: the first one in a window wins a max, as in the reference */
  tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, 4, small, -3, 3);
  ((float *)x->data)[7] = NAN;
  const tc_rt_tensor *in[1] = {x};
  tc_node *n = mk(&e, "MaxPool", 1, 1, 1);
  int64_t k[2] = {2, 2};
  attr_ints(n, 0, "kernel_shape", k, 2);
  check_node(&e, n, 12, in, 1, EXACT);
  tc_model_free(e.m);
}

/* Nearest Resize runs as a gather of the reference's taps: every
 * coordinate mode and rounding (up, down and fractional scales, sizes), a
 * tf_crop_and_resize case (the reference path), float32, float16, int8 and
 * uint8, bit for bit. */
static void resize_nearest(void) {
  env e = env_new();
  static const char *const ctms[] = {"half_pixel",           "asymmetric",
                                     "align_corners",        "pytorch_half_pixel",
                                     "half_pixel_symmetric", "tf_crop_and_resize"};
  static const char *const modes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  static const int32_t types[] = {TC_DTYPE_F32, TC_DTYPE_F16, TC_DTYPE_I8, TC_DTYPE_U8};
  int64_t xd[4] = {2, 3, 5, 7}, four = 4, eight = 8;
  double scales[3][4] = {{1, 1, 2, 2}, {1, 1, 0.6, 1.7}, {1, 1, 3, 0.5}};
  double sizes[4] = {2, 3, 9, 4}, roi[8] = {0, 0, 0.1, 0.2, 1, 1, 0.9, 0.7};
  for (size_t c = 0; c < 6; c++)
    for (size_t m = 0; m < 4; m++)
      for (size_t v = 0; v < 4; v++) {
        const tc_rt_tensor *in[4] = {
            rand_t(&e, types[(c + m + v) % 4], 4, xd, -100, 100),
            ten(&e, TC_DTYPE_F32, 1, c == 5 ? &eight : (int64_t[]){0}, c == 5 ? roi : NULL), NULL,
            NULL};
        if (v < 3)
          in[2] = ten(&e, TC_DTYPE_F32, 1, &four, scales[v]);
        else
          in[2] = ten(&e, TC_DTYPE_F32, 1, (int64_t[]){0}, NULL),
          in[3] = ten(&e, TC_DTYPE_I64, 1, &four, sizes);
        tc_node *n = mk(&e, "Resize", v < 3 ? 3 : 4, 1, 3);
        attr_s(n, 0, "mode", "nearest");
        attr_s(n, 1, "coordinate_transformation_mode", ctms[c]);
        attr_s(n, 2, "nearest_mode", modes[m]);
        check_node(&e, n, 19, in, v < 3 ? 3 : 4, EXACT);
      }
  tc_model_free(e.m);
}

/* Linear and cubic Resize of the last two axes run separably in double in
 * the reference's tap order: the reference's bits for up and down scales,
 * every coordinate mode, exclude_outside, a cubic coefficient, sizes, ranks
 * 2 to 5, and NaN and infinity in the input (a zero-weight tap is skipped,
 * not multiplied); resizing another axis takes the reference path. */
static void resize_separable(void) {
  env e = env_new();
  static const char *const ctms[] = {"half_pixel", "asymmetric", "align_corners",
                                     "pytorch_half_pixel", "half_pixel_symmetric"};
  int64_t d4[4] = {2, 3, 11, 17}, d2[2] = {9, 13}, d5[5] = {2, 1, 2, 6, 35}, four = 4, two = 2,
          five = 5;
  double up[4] = {1, 1, 2, 2.5}, down[4] = {1, 1, 0.45, 0.7}, other[4] = {1, 2, 1.5, 1},
         s2[2] = {1.7, 0.6}, s5[5] = {1, 1, 1, 3, 0.5}, sizes[4] = {2, 3, 5, 40};
  for (size_t c = 0; c < 5; c++)
    for (int mode = 0; mode < 2; mode++)
      for (int v = 0; v < 6; v++) {
        tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32,
                                 v == 4   ? 2
                                 : v == 5 ? 5
                                          : 4,
                                 v == 4   ? d2
                                 : v == 5 ? d5
                                          : d4,
                                 -3, 3);
        for (size_t i = 5; v <= 1 && i < tc_rt_numel(x); i += 7)
          ((float *)x->data)[i] = i % 2 ? INFINITY : NAN;
        const double *sc = v == 0 ? up : v == 1 ? down : v == 2 ? other : v == 4 ? s2 : s5;
        const int64_t *ns = v == 4 ? &two : v == 5 ? &five : &four;
        const tc_rt_tensor *in[4] = {x, ten(&e, TC_DTYPE_F32, 1, (int64_t[]){0}, NULL), NULL, NULL};
        size_t n_in = 3;
        if (v == 3) {
          in[2] = ten(&e, TC_DTYPE_F32, 1, (int64_t[]){0}, NULL);
          in[3] = ten(&e, TC_DTYPE_I64, 1, &four, sizes);
          n_in = 4;
        } else {
          in[2] = ten(&e, TC_DTYPE_F32, 1, ns, sc);
        }
        tc_node *n = mk(&e, "Resize", n_in, 1, 4);
        attr_s(n, 0, "mode", mode ? "cubic" : "linear");
        attr_s(n, 1, "coordinate_transformation_mode", ctms[c]);
        attr_i(n, 2, "exclude_outside", v == 2);
        attr_f(n, 3, "cubic_coeff_a", v == 3 ? -0.5f : -0.75f);
        check_node(&e, n, 19, in, n_in, EXACT);
      }
  tc_model_free(e.m);
}

/* Softplus and Mish on the vector sets against the double rows: from far
 * below zero (log1p of a tiny e) to far above, at 0, and NaN and
 * infinities. */
static void softplus_mish(void) {
  env e = env_new();
  int64_t d[2] = {37, 129};
  tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, 2, d, -40, 40);
  float *xs = x->data;
  float special[] = {0.0f,    -0.0f, NAN,    INFINITY, -INFINITY, 1e-30f,
                     -1e-30f, 88.0f, -88.0f, -9.0f,    -8.3f,     20.0f};
  memcpy(xs, special, sizeof special);
  for (size_t i = 0; i < 37 * 129; i += 53) /* small magnitudes too */
    xs[i] *= 1e-3f;
  const tc_rt_tensor *in[1] = {x};
  check_plain("Softplus", 13, in, 1, (tol){1e-7, 2e-6}, &e);
  check_plain("Mish", 18, in, 1, (tol){1e-7, 4e-6}, &e);
  tc_model_free(e.m);
}

/* Sin and Cos on the vector sets against the double rows: within 1.2e-7
 * (two units in the last place at 1) over the reduction's range, the same
 * relative precision for small arguments, and past TC_VSIN_MAX,
 * infinities and NaN through libm. */
static void sin_cos(void) {
  env e = env_new();
  int64_t d[2] = {41, 233}, dn[1] = {777};
  tc_rt_tensor *x = rand_t(&e, TC_DTYPE_F32, 2, d, -TC_VSIN_MAX, TC_VSIN_MAX);
  float *xs = x->data;
  float special[] = {0.0f,        -0.0f,   NAN,        INFINITY,    -INFINITY,
                     1e-30f,      -1e-30f, 8192.0f,    -8192.0f,    8192.5f,
                     -1e6f,       3e38f,   1.5707964f, 3.14159274f, -4.71238899f,
                     6.28318548f, 1e-4f,   -7.5e-3f,   12867.9648f, 804.247742f};
  memcpy(xs, special, sizeof special);
  for (size_t i = 40; i < 41 * 233; i += 7) /* some in [-10, 10] */
    xs[i] /= 800;
  const tc_rt_tensor *in[1] = {x};
  const tc_rt_tensor *small[1] = {rand_t(&e, TC_DTYPE_F32, 1, dn, -1e-3, 1e-3)};
  for (int c = 0; c < 2; c++) {
    const char *op = c ? "Cos" : "Sin";
    check_plain(op, 7, in, 1, (tol){1.2e-7, 0}, &e);
    check_plain(op, 7, small, 1, (tol){1e-37, c ? 0 : 2.4e-7}, &e);
  }
  tc_model_free(e.m);
}

static void attention_heads(void) {
  env e = env_new();
  int64_t dq[] = {2, 4, 37, 16}, dk[] = {2, 2, 41, 16}, dm[] = {37, 41};
  const tc_rt_tensor *in[4] = {
      rand_t(&e, TC_DTYPE_F32, 4, dq, -1, 1), rand_t(&e, TC_DTYPE_F32, 4, dk, -1, 1),
      rand_t(&e, TC_DTYPE_F32, 4, dk, -1, 1), rand_t(&e, TC_DTYPE_F32, 2, dm, -1, 0)};
  tc_node *n = mk(&e, "Attention", 4, 4, 1);
  attr_i(n, 0, "qk_matmul_output_mode", 1);
  check_node(&e, n, 23, in, 4, EXACT);
  int64_t d3[] = {3, 29, 48};
  const tc_rt_tensor *in3[3] = {rand_t(&e, TC_DTYPE_F16, 3, d3, -1, 1),
                                rand_t(&e, TC_DTYPE_F16, 3, d3, -1, 1),
                                rand_t(&e, TC_DTYPE_F16, 3, d3, -1, 1)};
  n = mk(&e, "Attention", 3, 1, 3);
  attr_i(n, 0, "q_num_heads", 4);
  attr_i(n, 1, "kv_num_heads", 4);
  attr_i(n, 2, "is_causal", 1);
  check_node(&e, n, 23, in3, 3, EXACT);
  /* float32, long enough for the query rows to go in four blocks (scores of
   * a block kept under 128 Ki floats) and for K to be transposed first (640
   * keys or more), causal and with a mask */
  int64_t dl[] = {1, 700, 64}, dml[] = {700, 700};
  const tc_rt_tensor *inl[4] = {
      rand_t(&e, TC_DTYPE_F32, 3, dl, -1, 1), rand_t(&e, TC_DTYPE_F32, 3, dl, -1, 1),
      rand_t(&e, TC_DTYPE_F32, 3, dl, -1, 1), rand_t(&e, TC_DTYPE_F32, 2, dml, -2, 0)};
  for (int causal = 0; causal < 2; causal++) {
    n = mk(&e, "Attention", 4, 1, 3);
    attr_i(n, 0, "q_num_heads", 2);
    attr_i(n, 1, "kv_num_heads", 2);
    attr_i(n, 2, "is_causal", causal);
    check_node(&e, n, 23, inl, 4, (tol){1e-6, 1e-5});
  }
  /* value heads wider than one 64-column tile and not a whole number of
   * vectors (84 = 64 + 16 + 4), query rows not a multiple of the tile's
   * six, 13 of them */
  int64_t dqw[] = {1, 13, 160}, dkw[] = {1, 50, 160}, dvw[] = {1, 50, 168};
  const tc_rt_tensor *inw[3] = {rand_t(&e, TC_DTYPE_F32, 3, dqw, -1, 1),
                                rand_t(&e, TC_DTYPE_F32, 3, dkw, -1, 1),
                                rand_t(&e, TC_DTYPE_F32, 3, dvw, -1, 1)};
  n = mk(&e, "Attention", 3, 1, 2);
  attr_i(n, 0, "q_num_heads", 2);
  attr_i(n, 1, "kv_num_heads", 2);
  check_node(&e, n, 23, inw, 3, (tol){1e-6, 1e-5});
  /* no keys at all (the tuner's captures can give such shapes) */
  int64_t dq0[] = {1, 5, 64}, dk0[] = {1, 0, 64};
  const tc_rt_tensor *in0[3] = {rand_t(&e, TC_DTYPE_F32, 3, dq0, -1, 1),
                                rand_t(&e, TC_DTYPE_F32, 3, dk0, -1, 1),
                                rand_t(&e, TC_DTYPE_F32, 3, dk0, -1, 1)};
  n = mk(&e, "Attention", 3, 1, 2);
  attr_i(n, 0, "q_num_heads", 2);
  attr_i(n, 1, "kv_num_heads", 2);
  check_node(&e, n, 23, in0, 3, EXACT);
  /* RotaryEmbedding with position ids, Swish (float32: through vmath) */
  int64_t dx[] = {2, 3, 50, 8}, dc[] = {64, 4}, dp[] = {2, 50};
  const tc_rt_tensor *rot[4] = {
      rand_t(&e, TC_DTYPE_F32, 4, dx, -1, 1), rand_t(&e, TC_DTYPE_F32, 2, dc, -1, 1),
      rand_t(&e, TC_DTYPE_F32, 2, dc, -1, 1), rand_t(&e, TC_DTYPE_I64, 2, dp, 0, 63.99)};
  check_plain("RotaryEmbedding", 23, rot, 4, EXACT, &e);
  int64_t big[] = {50001};
  const tc_rt_tensor *sw[1] = {rand_t(&e, TC_DTYPE_F32, 1, big, -5, 5)};
  /* float32 Swish runs vmath's sigmoid (a few ulp) on the fast path */
  check_plain("Swish", 24, sw, 1, (tol){1e-7, 5e-7}, &e);
  tc_model_free(e.m);
}

/* ---- sessions from several user threads ---- */

enum { SROWS = 64, SCOLS = 1031 };

/* y = Transpose(Softmax(Erf(a * b + c))), every kernel large enough to be
 * split across threads. */
static tc_model *chain_model(void) {
  tc_model *m = tc_model_new_empty();
  m->ir_version = 8;
  m->n_opsets = 1;
  m->opsets = tc_arena_alloc(m->arena, sizeof *m->opsets);
  m->opsets[0] = (tc_opset){.domain = "", .version = 17};
  tc_graph *g = m->graph = tc_graph_new(m, NULL, "g");
  const char *names[] = {"a", "b", "c"};
  tc_value *v[3];
  for (size_t i = 0; i < 3; i++) {
    v[i] = tc_graph_new_value(g, names[i], NULL);
    tc_graph_add_input(g, v[i], NULL);
  }
  static int64_t perm[] = {1, 0};
  const struct {
    const char *op;
    size_t n_in;
  } ops[] = {{"Mul", 2}, {"Add", 2}, {"Erf", 1}, {"Softmax", 1}, {"Transpose", 1}};
  tc_value *prev = NULL;
  for (size_t k = 0; k < 5; k++) {
    bool perm_attr = strcmp(ops[k].op, "Transpose") == 0;
    tc_node *n = tc_graph_append_node(g, ops[k].op, "", ops[k].op, ops[k].n_in, 1, perm_attr);
    if (k == 0) {
      tc_node_set_input(n, 0, v[0]);
      tc_node_set_input(n, 1, v[1]);
    } else {
      tc_node_set_input(n, 0, prev);
      if (ops[k].n_in == 2)
        tc_node_set_input(n, 1, v[2]);
    }
    if (perm_attr)
      n->attrs[0] = (tc_attr){.name = "perm",
                              .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,
                              .ints = perm,
                              .n_ints = 2};
    char name[16];
    snprintf(name, sizeof name, "t%zu", k);
    prev = tc_graph_new_value(g, k == 4 ? "y" : name, NULL);
    tc_node_set_output(n, 0, prev);
  }
  tc_graph_add_output(g, prev, NULL);
  return m;
}

typedef struct user {
  tc_session *s;
  const tc_ndarray *in;
  const tc_ndarray *expect;
  int threads, runs, mismatches, failures;
} user;

static void *user_main(void *arg) {
  user *u = arg;
  const char *names[] = {"a", "b", "c"};
  tc_set_num_threads(u->threads);
  for (int r = 0; r < u->runs; r++) {
    tc_ndarray y = {0};
    tc_diag d = {0};
    if (tc_session_run(u->s, 3, names, u->in, &y, &d) != TC_STATUS_OK) {
      u->failures++;
      continue;
    }
    if (y.size != u->expect->size || memcmp(y.data, u->expect->data, y.size) != 0)
      u->mismatches++;
    tc_ndarray_release(&y);
  }
  return NULL;
}

static tc_ndarray rand_nd(size_t rank, const int64_t *dims) {
  tc_ndarray t = {.dtype = TC_DTYPE_F32, .rank = rank};
  size_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= (size_t)(t.dims[i] = dims[i]);
  t.size = n * sizeof(float);
  t.data = malloc(t.size);
  for (size_t i = 0; i < n; i++)
    ((float *)t.data)[i] = (float)rnd(-2, 2);
  return t;
}

static void concurrent_sessions(void) {
  tc_model *m = chain_model();
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    tc_model_free(m);
    return;
  }
  int64_t full[] = {SROWS, SCOLS}, row[] = {SCOLS};
  tc_ndarray in[3] = {rand_nd(2, full), rand_nd(2, full), rand_nd(1, row)};
  const char *names[] = {"a", "b", "c"};
  /* the expected output: one thread, fast kernels */
  tc_fast_kernels_set(true);
  tc_set_num_threads(1);
  tc_ndarray expect = {0};
  CHECK(tc_session_run(s, 3, names, in, &expect, &d) == TC_STATUS_OK);
  CHECK(expect.rank == 2 && expect.dims[0] == SCOLS && expect.dims[1] == SROWS);
  tc_set_num_threads(4);
  /* four user threads at once, each with its own thread count, one session */
  pthread_t th[4];
  user u[4];
  for (int i = 0; i < 4; i++) {
    u[i] = (user){.s = s, .in = in, .expect = &expect, .threads = 1 + i % 3, .runs = 12};
    CHECK(pthread_create(&th[i], NULL, user_main, &u[i]) == 0);
  }
  /* and the main thread too */
  user me = {.s = s, .in = in, .expect = &expect, .threads = 2, .runs = 6};
  user_main(&me);
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    CHECK(u[i].failures == 0 && u[i].mismatches == 0);
  }
  CHECK(me.failures == 0 && me.mismatches == 0);
  tc_set_num_threads(4);
  tc_ndarray_release(&expect);
  for (int i = 0; i < 3; i++)
    free(in[i].data);
  tc_session_free(s);
  tc_model_free(m);
}

/* bfloat16 and float16 on the fast paths (the float32 kernels on widened
 * copies, the results rounded once; bfloat16 convolutions on oneDNN's
 * bfloat16 primitive, float16 ones on float32 over widened copies)
 * against the reference (double arithmetic, rounded to bfloat16 per op as
 * the ONNX definitions do): Add, Sub, Mul, Div and MaxPool bit for bit; the
 * others (GlobalAveragePool too) within two bfloat16 steps (2^-6 relative), Attention within four
 * (the reference rounds Q and K scaled, and the probabilities, to the half
 * type on the way); the same bounds hold float16. */
static void half_kernels_of(int32_t B) {
  env e = env_new();
  int64_t x2[] = {37, 700}, row[] = {700}, one[] = {1};
  const tc_rt_tensor *x = rand_t(&e, B, 2, x2, -4, 4), *y = rand_t(&e, B, 2, x2, -2, 2),
                     *r = rand_t(&e, B, 1, row, -1, 1), *sc = rand_t(&e, B, 0, one, 0.5, 2);
  const char *ops[] = {"Add", "Sub", "Mul", "Div"};
  for (size_t o = 0; o < 4; o++) {
    const tc_rt_tensor *full[2] = {x, y}, *bcast[2] = {r, x}, *scal[2] = {x, sc},
                       *scal0[2] = {sc, x};
    check_plain(ops[o], 14, full, 2, EXACT, &e);
    check_plain(ops[o], 14, bcast, 2, EXACT, &e);
    check_plain(ops[o], 14, scal, 2, EXACT, &e);
    check_plain(ops[o], 14, scal0, 2, EXACT, &e); /* the scalar first: many chunks */
  }
  const tol half = {1e-3, 0x1p-6};
  const tc_rt_tensor *bg[2] = {x, r}; /* rows of 700: a 512-float chunk and a tail */
  tc_node *n = mk(&e, "BiasGelu", 2, 1, 0);
  n->domain = "ai.tacoc";
  check_node(&e, n, 1, bg, 2, half);
  const tc_rt_tensor *gb[2] = {rand_t(&e, B, 1, row, 0.5, 1.5), r};
  const tc_rt_tensor *sk[4] = {x, y, gb[0], gb[1]};
  n = mk(&e, "SkipLayerNormalization", 4, 2, 0);
  n->domain = "ai.tacoc";
  check_node(&e, n, 1, sk, 4, half); /* Y and the bfloat16 sum */
  const tc_rt_tensor *ln[3] = {x, gb[0], gb[1]};
  check_node(&e, mk(&e, "LayerNormalization", 3, 1, 0), 17, ln, 3, half);
  check_node(&e, mk(&e, "RMSNormalization", 2, 1, 0), 23, ln, 2, half);
  int64_t dq[] = {2, 4, 37, 16}, dk[] = {2, 2, 41, 16}, dm[] = {37, 41};
  const tc_rt_tensor *at[4] = {rand_t(&e, B, 4, dq, -1, 1), rand_t(&e, B, 4, dk, -1, 1),
                               rand_t(&e, B, 4, dk, -1, 1), rand_t(&e, B, 2, dm, -1, 0)};
  n = mk(&e, "Attention", 4, 1, 1);
  attr_i(n, 0, "softmax_precision", TC_DTYPE_F32);
  check_node(&e, n, 23, at, 4, (tol){4e-3, 0x1p-5});
  /* convolutions on oneDNN's bfloat16 primitive (float32 sums, the bias
   * widened): dense with bias, strided and padded; depthwise */
  int64_t dx[] = {2, 16, 13, 11}, dw[] = {24, 16, 3, 3}, db[] = {24}, dd[] = {16, 1, 3, 3};
  const tc_rt_tensor *cv[3] = {rand_t(&e, B, 4, dx, -1, 1), rand_t(&e, B, 4, dw, -0.3, 0.3),
                               rand_t(&e, B, 1, db, -1, 1)};
  int64_t pads[4] = {1, 1, 1, 1}, strides[2] = {1, 2};
  n = mk(&e, "Conv", 3, 1, 2);
  attr_ints(n, 0, "pads", pads, 4);
  attr_ints(n, 1, "strides", strides, 2);
  check_node(&e, n, 22, cv, 3, (tol){2e-2, 0x1p-6});
  const tc_rt_tensor *dwc[2] = {cv[0], rand_t(&e, B, 4, dd, -0.5, 0.5)};
  n = mk(&e, "Conv", 2, 1, 2);
  attr_ints(n, 0, "pads", pads, 4);
  attr_i(n, 1, "group", 16);
  check_node(&e, n, 22, dwc, 2, (tol){2e-2, 0x1p-6});
  /* pooling on the float32 loops: max exactly, average within a step */
  const char *pool[] = {"MaxPool", "AveragePool"};
  for (size_t o = 0; o < 2; o++) {
    int64_t kk[2] = {3, 3}, ps[2] = {2, 2};
    n = mk(&e, pool[o], 1, 1, 3);
    attr_ints(n, 0, "kernel_shape", kk, 2);
    attr_ints(n, 1, "strides", ps, 2);
    attr_ints(n, 2, "pads", pads, 4);
    const tc_rt_tensor *px[1] = {cv[0]};
    check_node(&e, n, 22, px, 1, o == 0 ? EXACT : (tol){1e-3, 0x1p-7});
  }
  const tc_rt_tensor *gx[1] = {cv[0]}; /* float32 sums of 143 positions */
  check_node(&e, mk(&e, "GlobalAveragePool", 1, 1, 0), 22, gx, 1, (tol){1e-3, 0x1p-7});
  tc_model_free(e.m);
}

static void half_kernels(void) {
  half_kernels_of(TC_DTYPE_BF16);
  half_kernels_of(TC_DTYPE_F16);
}

int main(void) {
  RUN(parallel_for_covers_once);
  RUN(vmath_accuracy);
  RUN(vmax_positions);
  RUN(vtranspose_sets);
  RUN(vmath_sets_agree);
  RUN(half_conversions);
  RUN(binary_ops);
  RUN(unary_ops);
  RUN(casts);
  RUN(quantize_dequantize);
  RUN(softmax_rows);
  RUN(normalizations);
  RUN(reductions);
  RUN(transposes);
  RUN(gather_concat_slice_expand);
  RUN(pools);
  RUN(resize_nearest);
  RUN(resize_separable);
  RUN(softplus_mish);
  RUN(sin_cos);
  RUN(attention_heads);
  RUN(half_kernels);
  RUN(concurrent_sessions);
  tc_fast_kernels_set(true);
  return SUMMARY("unit.parallel");
}
