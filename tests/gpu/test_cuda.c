/* The CUDA backend on a GPU (libtacort_cuda.so):
 * - every generated row kernel (bias+GELU, LayerNorm / RMSNorm with skip,
 *   beta and sum output, Softmax; float32, float16, bfloat16; row lengths
 *   with and without vector tails, rows in registers and streamed) built
 *   with NVRTC for this device, run on random inputs and checked against a
 *   double-precision CPU reference of the ONNX definition;
 * - GEMM through cuBLASLt (fp32, TF32, fp16, bf16; transposes, batches,
 *   bias / ReLU / GELU epilogues; odd sizes) against a CPU reference, and
 *   the algorithm chosen by measurement gives the same results;
 * - broadcasting elementwise ops and Attention (3-D form: additive padding
 *   and boolean masks, causal; BERT-base shaped and odd sizes).
 * Without a CUDA device (no GPU or no driver) it checks that the backend
 * says so, prints "skipped: no CUDA device" and runs nothing else. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cu_variants.h"
#include "cucg.h"
#include "kernel.h"
#include "tacort_cuda.h"

static tc_cuda *cu;
static char why[8192];
static double worst[3]; /* worst relative error seen per dtype (f32, f16, bf16) */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double uniform(void) { /* xorshift64, [-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static int dt_index(int dt) { return dt == 10 ? 1 : dt == 16 ? 2 : 0; }

/* A host array of n random values of type dt (scale s) and its rounded
 * double copy; uploaded to dev. */
typedef struct arr {
  size_t n;
  int dt;
  void *host, *dev;
  double *val;
} arr;

static bool arr_make(arr *a, int dt, size_t n, double s, bool random) {
  a->n = n;
  a->dt = dt;
  a->host = calloc(n ? n : 1, cu_esize(dt));
  a->val = calloc(n ? n : 1, sizeof(double));
  a->dev = NULL;
  if (!a->host || !a->val || tc_cuda_alloc(cu, n * cu_esize(dt), &a->dev, why, sizeof why))
    return false;
  for (size_t i = 0; i < n; i++) {
    double v = random ? uniform() * s : 0;
    cu_put(dt, a->host, i, v);
    a->val[i] = cu_get(dt, a->host, i);
  }
  return !tc_cuda_upload(cu, a->dev, a->host, n * cu_esize(dt), why, sizeof why);
}
static void arr_free(arr *a) {
  free(a->host);
  free(a->val);
  tc_cuda_free(cu, a->dev, a->n * cu_esize(a->dt));
}
static bool arr_fetch(arr *a) {
  if (tc_cuda_download(cu, a->host, a->dev, a->n * cu_esize(a->dt), why, sizeof why))
    return false;
  for (size_t i = 0; i < a->n; i++)
    a->val[i] = cu_get(a->dt, a->host, i);
  return true;
}

/* got vs want: |got - want| <= atol + rtol |want|, rtol from the dtype and
 * the rounding of want to it. */
static bool close_all(const char *what, int dt, const double *got, const double *want, size_t n,
                      double rtol, double atol) {
  for (size_t i = 0; i < n; i++) {
    double e = fabs(got[i] - want[i]), rel = e / (fabs(want[i]) + atol);
    if (rel > worst[dt_index(dt)])
      worst[dt_index(dt)] = rel;
    if (!(e <= atol + rtol * fabs(want[i]))) {
      fprintf(stderr, "%s: element %zu: device %.9g, reference %.9g\n", what, i, got[i], want[i]);
      return false;
    }
  }
  return true;
}

/* ---- row kernels ---- */

static bool run_row_case(tc_cuda_kernels *k, const tc_cg_spec *sp, int64_t rows) {
  int dt = sp->dtype;
  size_t n = (size_t)(rows * sp->cols), c = (size_t)sp->cols;
  bool ln = sp->kind == TC_CG_LAYERNORM, skip = ln && (sp->flags & TC_CG_F_SKIP);
  double xs = sp->kind == TC_CG_SOFTMAX ? 8 : 3;
  arr x, s, g, b, y, sum;
  bool ok = arr_make(&x, dt, n, xs, true) && arr_make(&s, dt, skip ? n : c, 1, true) &&
            arr_make(&g, dt, c, 1, true) && arr_make(&b, dt, c, 1, true) &&
            arr_make(&y, dt, n, 0, false) && arr_make(&sum, dt, n, 0, false);
  CHECK(ok);
  if (ok) {
    tc_cu_args a = {
        .in = {x.dev, s.dev, g.dev, b.dev}, .out = {y.dev, sum.dev}, .eps = 1e-5f, .rows = rows};
    if (sp->kind == TC_CG_BIAS_ACT) /* the bias is in slot 1 */
      a.in[1] = s.dev;
    ok = !tc_cuda_row_launch(cu, k, sp, &a, why, sizeof why) &&
         !tc_cuda_sync(cu, why, sizeof why) && arr_fetch(&y) && arr_fetch(&sum);
    if (!ok)
      fprintf(stderr, "%s\n", why);
    CHECK(ok);
  }
  if (ok) {
    double *want = malloc(n * sizeof *want), *want_sum = malloc(n * sizeof *want_sum);
    cu_ref_rows(sp, rows, x.val, s.val, g.val, b.val, 1e-5, want, want_sum);
    /* the device computes in float32 and rounds once to dt on store */
    double rtol = dt == 1 ? 2e-5 : dt == 10 ? 2e-3 : 1.6e-2, atol = dt == 1 ? 2e-6 : 2e-3;
    char what[160];
    tc_cg_spec_format(sp, what, sizeof what);
    CHECK(close_all(what, dt, y.val, want, n, rtol, atol));
    if (sp->flags & TC_CG_F_SUM)
      CHECK(close_all(what, dt, sum.val, want_sum, n, rtol, atol));
    free(want);
    free(want_sum);
  }
  arr_free(&x), arr_free(&s), arr_free(&g), arr_free(&b), arr_free(&y), arr_free(&sum);
  return ok;
}

static void test_row_kernels(void) {
  static tc_cg_spec specs[600];
  size_t n = cu_variants(specs, 600);
  char path[] = "/tmp/tacoc-cuda-XXXXXX";
  CHECK(mkdtemp(path) != NULL);
  char lib_path[64];
  snprintf(lib_path, sizeof lib_path, "%s/k.tacocu", path);
  unsigned arch = tc_cuda_sm(cu);
  int rc = tc_cu_build_library(specs, n, &arch, 1, lib_path, why, sizeof why);
  if (rc)
    fprintf(stderr, "%s\n", why);
  CHECK(rc == 0);
  FILE *f = fopen(lib_path, "rb");
  static unsigned char buf[64 << 20];
  size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f)
    fclose(f);
  remove(lib_path);
  tc_cuda_kernels *k = NULL;
  rc = tc_cuda_kernels_load(cu, buf, len, &k, why, sizeof why);
  if (rc)
    fprintf(stderr, "%s\n", why);
  CHECK(rc == 0);
  size_t passed = 0;
  for (size_t i = 0; k && i < n; i++) {
    int64_t rows = specs[i].cols > 4096 ? 3 : 37; /* not a multiple of any block */
    passed += run_row_case(k, &specs[i], rows);
  }
  CHECK(passed == n);
  printf("  row kernels: %zu of %zu variants match the reference\n", passed, n);
  tc_cuda_kernels_free(k);
}

/* ---- GEMM ---- */

static void ref_gemm(const tc_cuda_gemm *g, const double *a, const double *b, const double *bias,
                     const double *c0, double *c) {
  int64_t batch = g->batch > 1 ? g->batch : 1;
  for (int64_t p = 0; p < batch; p++)
    for (int64_t i = 0; i < g->m; i++)
      for (int64_t j = 0; j < g->n; j++) {
        double acc = 0;
        for (int64_t l = 0; l < g->k; l++) {
          double av =
              g->trans_a ? a[p * g->stride_a + l * g->m + i] : a[p * g->stride_a + i * g->k + l];
          double bv =
              g->trans_b ? b[p * g->stride_b + j * g->k + l] : b[p * g->stride_b + l * g->n + j];
          acc += av * bv;
        }
        double v = g->alpha * acc + g->beta * c0[p * g->stride_c + i * g->n + j];
        if (bias)
          v += bias[j];
        if (g->epilogue == TC_CUDA_EPI_RELU)
          v = v > 0 ? v : 0;
        else if (g->epilogue == TC_CUDA_EPI_GELU_TANH)
          v = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        c[p * g->stride_c + i * g->n + j] = v;
      }
}

static bool gemm_case(tc_cuda_gemm g, bool tune) {
  int64_t batch = g.batch > 1 ? g.batch : 1;
  g.stride_a = g.m * g.k;
  g.stride_b = g.k * g.n;
  g.stride_c = g.m * g.n;
  arr a, b, c, bias;
  bool ok = arr_make(&a, g.dtype, (size_t)(batch * g.stride_a), 1, true) &&
            arr_make(&b, g.dtype, (size_t)(batch * g.stride_b), 1, true) &&
            arr_make(&c, g.dtype, (size_t)(batch * g.stride_c), 1, true) &&
            arr_make(&bias, g.dtype, (size_t)g.n, 1, true);
  double *c0 = ok ? malloc(c.n * sizeof *c0) : NULL, *want = ok ? malloc(c.n * sizeof *want) : NULL;
  ok = ok && c0 && want;
  CHECK(ok);
  bool use_bias = g.bias != NULL;
  if (ok) {
    memcpy(c0, c.val, c.n * sizeof *c0);
    g.bias = use_bias ? bias.dev : NULL;
    tc_cuda_algo algo = {0};
    tc_cuda_gemm_tuning info;
    if (tune) {
      ok = !tc_cuda_gemm_tune(cu, &g, a.dev, b.dev, c.dev, 8, &algo, &info, why, sizeof why);
      CHECK(ok && algo.valid && info.candidates >= 1 && info.best_us > 0 &&
            info.best_us <= info.first_us);
      ok = ok && !tc_cuda_upload(cu, c.dev, c.host, c.n * cu_esize(g.dtype), why, sizeof why);
    }
    ok = ok &&
         !tc_cuda_gemm_run(cu, &g, a.dev, b.dev, c.dev, tune ? &algo : NULL, why, sizeof why) &&
         arr_fetch(&c);
    if (!ok)
      fprintf(stderr, "%s\n", why);
    CHECK(ok);
  }
  if (ok) {
    ref_gemm(&g, a.val, b.val, use_bias ? bias.val : NULL, c0, want);
    /* inputs are exact in dt; the error is accumulation (TF32: 10-bit
     * mantissa products) and the final rounding */
    double sk = sqrt((double)g.k);
    double rtol = g.dtype == 10 ? 2e-3 : g.dtype == 16 ? 1.6e-2 : g.tf32 ? 2e-3 : 2e-5;
    char what[160];
    snprintf(what, sizeof what, "gemm dt=%d tf32=%d ta=%d tb=%d m=%lld n=%lld k=%lld b=%lld epi=%d",
             g.dtype, g.tf32, g.trans_a, g.trans_b, (long long)g.m, (long long)g.n, (long long)g.k,
             (long long)batch, g.epilogue);
    ok = close_all(what, g.dtype, c.val, want, c.n, rtol, rtol * sk);
    CHECK(ok);
  }
  free(c0);
  free(want);
  arr_free(&a), arr_free(&b), arr_free(&c), arr_free(&bias);
  return ok;
}

static void test_gemm(void) {
  static const int64_t sizes[][3] = {{1, 1, 1},       {7, 5, 3},      {33, 64, 769},
                                     {128, 768, 768}, {5, 3072, 768}, {129, 17, 64}};
  int cases = 0, passed = 0;
  for (int dt = 0; dt < 4; dt++)
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++)
      for (int t = 0; t < 4; t++) {
        tc_cuda_gemm g = {.dtype = dt == 3 ? 1 : cu_variant_dtypes[dt],
                          .tf32 = dt == 3,
                          .trans_a = t & 1,
                          .trans_b = t >> 1,
                          .m = sizes[s][0],
                          .n = sizes[s][1],
                          .k = sizes[s][2],
                          .alpha = 1,
                          .beta = 0};
        g.batch = s % 2 ? 3 : 0;
        g.epilogue = (int)(s % 3);
        g.bias = s % 3 ? (void *)1 : NULL; /* a marker: gemm_case supplies the array */
        if (s == 1)
          g.alpha = 0.5f, g.beta = 1; /* accumulate into C */
        passed += gemm_case(g, s == 3 && t == 0);
        cases++;
      }
  CHECK(passed == cases);
  printf("  GEMM: %d of %d cases match the reference\n", passed, cases);
  /* the per-signature search measures into a scratch output: accumulating
   * GEMMs (beta 1) stay right, on the first (measured) run and after */
  tc_cuda_set_gemm_search(cu, 4);
  for (int rep = 0; rep < 2; rep++) {
    tc_cuda_gemm g = {.dtype = 10,
                      .m = 64,
                      .n = 96,
                      .k = 80,
                      .batch = 2,
                      .alpha = 0.5f,
                      .beta = 1,
                      .bias = (void *)1,
                      .epilogue = TC_CUDA_EPI_RELU};
    CHECK(gemm_case(g, false));
  }
  size_t shapes;
  double best, first;
  tc_cuda_gemm_search_stats(cu, &shapes, &best, &first);
  CHECK(shapes == 1 && best > 0 && best <= first);
  printf("  GEMM search: %zu shape measured, chosen %.1f us vs cuBLASLt's first %.1f us\n", shapes,
         best, first);
  tc_cuda_set_gemm_search(cu, 0);
}

/* ---- attention and elementwise ops ---- */

/* One Attention case (3-D form) against a double reference. mask_kind 1:
 * additive [B, 1, 1, Skv] padding mask; 2: boolean [B, 1, Sq, Skv]. */
static bool attention_case(int dt, int64_t B, int64_t Sq, int64_t Skv, int64_t H, int64_t D,
                           int mask_kind, int causal) {
  tc_cuda_attn p = {.dtype = dt,
                    .B = B,
                    .Sq = Sq,
                    .Skv = Skv,
                    .H = H,
                    .D = D,
                    .Dv = D,
                    .scale = 1.0f / sqrtf((float)D),
                    .mask_kind = mask_kind,
                    .causal = causal};
  size_t nq = (size_t)(B * Sq * H * D), nk = (size_t)(B * Skv * H * D);
  size_t nm = mask_kind == 1 ? (size_t)(B * Skv) : (size_t)(B * Sq * Skv);
  if (mask_kind == 1)
    p.mstride[0] = Skv, p.mstride[3] = 1;
  else if (mask_kind == 2)
    p.mstride[0] = Sq * Skv, p.mstride[2] = Skv, p.mstride[3] = 1;
  arr q, k, v, y, madd;
  bool ok = arr_make(&q, dt, nq, 1, true) && arr_make(&k, dt, nk, 1, true) &&
            arr_make(&v, dt, nk, 1, true) && arr_make(&y, dt, nq, 0, false) &&
            arr_make(&madd, dt, nm, 1, true);
  unsigned char *mb = malloc(nm);
  void *mdev = NULL;
  ok = ok && mb && !tc_cuda_alloc(cu, nm, &mdev, why, sizeof why);
  for (size_t i = 0; ok && i < nm; i++) {
    mb[i] = i % 5 != 2;
    if (mask_kind == 1 && i % 4 == 3) { /* padded keys */
      cu_put(dt, madd.host, i, -10000);
      madd.val[i] = cu_get(dt, madd.host, i);
    }
  }
  ok = ok && !tc_cuda_upload(cu, madd.dev, madd.host, nm * cu_esize(dt), why, sizeof why) &&
       !tc_cuda_upload(cu, mdev, mb, nm, why, sizeof why);
  const void *mask = mask_kind == 1 ? madd.dev : mask_kind == 2 ? mdev : NULL;
  ok = ok && !tc_cuda_attention(cu, &p, q.dev, k.dev, v.dev, mask, y.dev, why, sizeof why) &&
       arr_fetch(&y);
  if (!ok)
    fprintf(stderr, "%s\n", why);
  double *want = ok ? calloc(nq, sizeof *want) : NULL, *row = ok ? malloc((size_t)Skv * 8) : NULL;
  for (int64_t b = 0; want && row && b < B; b++)
    for (int64_t h = 0; h < H; h++)
      for (int64_t i = 0; i < Sq; i++) {
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < Skv; j++) {
          double s = 0;
          for (int64_t d = 0; d < D; d++)
            s += q.val[((b * Sq + i) * H + h) * D + d] * k.val[((b * Skv + j) * H + h) * D + d];
          s *= p.scale;
          if (mask_kind == 1)
            s += madd.val[b * Skv + j];
          else if (mask_kind == 2 && !mb[(b * Sq + i) * Skv + j])
            s = -INFINITY;
          if (causal && j > i)
            s = -INFINITY;
          row[j] = s;
          m = fmax(m, s);
        }
        for (int64_t j = 0; j < Skv; j++)
          sum += isinf(m) ? 0 : exp(row[j] - m);
        for (int64_t d = 0; d < D; d++) {
          double acc = 0;
          for (int64_t j = 0; j < Skv && !isinf(m); j++)
            acc += exp(row[j] - m) / sum * v.val[((b * Skv + j) * H + h) * D + d];
          want[((b * Sq + i) * H + h) * D + d] = acc;
        }
      }
  if (want && row) {
    char what[128];
    snprintf(what, sizeof what,
             "attention dt=%d B=%lld Sq=%lld Skv=%lld H=%lld D=%lld mask=%d causal=%d", dt,
             (long long)B, (long long)Sq, (long long)Skv, (long long)H, (long long)D, mask_kind,
             causal);
    double tol = dt == 1 ? 1e-5 : dt == 10 ? 4e-3 : 3e-2;
    ok = close_all(what, dt, y.val, want, nq, tol, tol);
  }
  free(want), free(row), free(mb);
  tc_cuda_free(cu, mdev, nm);
  arr_free(&q), arr_free(&k), arr_free(&v), arr_free(&y), arr_free(&madd);
  return ok;
}

static void test_attention(void) {
  int cases = 0, passed = 0;
  for (int d = 0; d < 3; d++) {
    int dt = cu_variant_dtypes[d];
    passed += attention_case(dt, 2, 128, 128, 12, 64, 1, 0), cases++; /* BERT-base shaped */
    passed += attention_case(dt, 3, 7, 13, 4, 16, 2, 0), cases++;     /* odd, boolean mask */
    passed += attention_case(dt, 1, 33, 33, 2, 32, 0, 1), cases++;    /* causal, no mask */
  }
  CHECK(passed == cases);
  printf("  attention: %d of %d cases match the reference\n", passed, cases);
}

static void test_binary(void) {
  int cases = 0, passed = 0;
  for (int d = 0; d < 3; d++) {
    int dt = cu_variant_dtypes[d];
    /* [4, 128, 768] + [768]: a bias add; and [4, 1, 768] * [128, 1] */
    int64_t dims[3] = {4, 128, 768}, sa[3] = {128 * 768, 768, 1}, sb[3] = {0, 0, 1};
    int64_t sa2[3] = {768, 0, 1}, sb2[3] = {0, 1, 0};
    for (int t = 0; t < 2; t++) {
      const int64_t *xa = t ? sa2 : sa, *xb = t ? sb2 : sb;
      size_t na = t ? 4 * 768 : 4 * 128 * 768, nb = t ? 128 : 768, ny = 4 * 128 * 768;
      arr a, b, y;
      bool ok = arr_make(&a, dt, na, 2, true) && arr_make(&b, dt, nb, 2, true) &&
                arr_make(&y, dt, ny, 0, false) &&
                !tc_cuda_binary(cu, dt, t ? 2 : 0, a.dev, b.dev, y.dev, 3, dims, xa, xb, why,
                                sizeof why) &&
                arr_fetch(&y);
      for (size_t i = 0; ok && i < ny; i++) {
        size_t c0 = i / (128 * 768), c1 = i / 768 % 128, c2 = i % 768;
        double x = a.val[c0 * xa[0] + c1 * xa[1] + c2 * xa[2]],
               z = b.val[c0 * xb[0] + c1 * xb[1] + c2 * xb[2]], w = t ? x * z : x + z;
        double tol = dt == 1 ? 1e-6 : dt == 10 ? 1e-3 : 8e-3;
        if (!(fabs(y.val[i] - w) <= tol * (fabs(w) + 1e-3))) {
          fprintf(stderr, "binary dt=%d case %d element %zu: device %g, reference %g\n", dt, t, i,
                  y.val[i], w);
          ok = false;
        }
      }
      if (!ok && why[0])
        fprintf(stderr, "%s\n", why);
      passed += ok, cases++;
      arr_free(&a), arr_free(&b), arr_free(&y);
    }
  }
  CHECK(passed == cases);
  printf("  elementwise: %d of %d cases match the reference\n", passed, cases);
}

/* The embedding sum + LayerNorm (BERT-base width, with segments) against a
 * double reference. */
static void test_embed_ln(void) {
  const int64_t B = 2, S = 128, H = 768, vocab = 100, types = 2, rows = B * S;
  arr w, p, t, g, b, y, ids, seg;
  bool ok = arr_make(&w, 1, (size_t)(vocab * H), 1, true) &&
            arr_make(&p, 1, (size_t)(S * H), 1, true) &&
            arr_make(&t, 1, (size_t)(types * H), 1, true) && arr_make(&g, 1, (size_t)H, 1, true) &&
            arr_make(&b, 1, (size_t)H, 1, true) && arr_make(&y, 1, (size_t)(rows * H), 0, false) &&
            arr_make(&ids, 1, (size_t)(2 * rows), 0, false) &&
            arr_make(&seg, 1, (size_t)(2 * rows), 0, false); /* int64 = two float slots */
  int64_t *iv = ok ? (int64_t *)ids.host : NULL, *sv = ok ? (int64_t *)seg.host : NULL;
  for (int64_t r = 0; ok && r < rows; r++) {
    iv[r] = (r * 13 + 5) % vocab;
    sv[r] = r % types;
  }
  ok = ok && !tc_cuda_upload(cu, ids.dev, iv, (size_t)rows * 8, why, sizeof why) &&
       !tc_cuda_upload(cu, seg.dev, sv, (size_t)rows * 8, why, sizeof why) &&
       !tc_cuda_embed_ln(cu, ids.dev, seg.dev, w.dev, p.dev, t.dev, g.dev, b.dev, y.dev, B, S, H,
                         1e-12f, why, sizeof why) &&
       arr_fetch(&y);
  if (!ok)
    fprintf(stderr, "%s\n", why);
  double *v = ok ? malloc((size_t)H * sizeof *v) : NULL,
         *want = ok ? malloc((size_t)(rows * H) * 8) : NULL;
  for (int64_t r = 0; v && want && r < rows; r++) {
    double mean = 0, var = 0;
    for (int64_t c = 0; c < H; c++) {
      v[c] = w.val[iv[r] * H + c] + p.val[(r % S) * H + c] + t.val[sv[r] * H + c];
      mean += v[c];
    }
    mean /= (double)H;
    for (int64_t c = 0; c < H; c++)
      var += (v[c] - mean) * (v[c] - mean);
    for (int64_t c = 0; c < H; c++)
      want[r * H + c] = (v[c] - mean) / sqrt(var / (double)H + 1e-12) * g.val[c] + b.val[c];
  }
  CHECK(ok && want && close_all("embed_ln", 1, y.val, want, (size_t)(rows * H), 2e-5, 2e-5));
  free(v), free(want);
  arr_free(&w), arr_free(&p), arr_free(&t), arr_free(&g), arr_free(&b), arr_free(&y),
      arr_free(&ids), arr_free(&seg);
}

/* One convolution against a double reference (relu; bias; residual z). */
static bool conv_case(int dt, tc_cuda_conv p, bool bias, bool z_in) {
  p.dtype = dt;
  p.OH = (p.H + 2 * p.ph - p.dh * (p.KH - 1) - 1) / p.sh + 1;
  p.OW = (p.W + 2 * p.pw - p.dw * (p.KW - 1) - 1) / p.sw + 1;
  size_t nx = (size_t)(p.N * p.C * p.H * p.W), nw = (size_t)(p.M * p.C * p.KH * p.KW),
         ny = (size_t)(p.N * p.M * p.OH * p.OW);
  arr x, w, b, z, y;
  bool ok = arr_make(&x, dt, nx, 1, true) && arr_make(&w, dt, nw, 0.3, true) &&
            arr_make(&b, dt, (size_t)p.M, 1, true) && arr_make(&z, dt, ny, 1, true) &&
            arr_make(&y, dt, ny, 0, false) &&
            !tc_cuda_conv2d(cu, &p, x.dev, w.dev, bias ? b.dev : NULL, z_in ? z.dev : NULL, y.dev,
                            why, sizeof why) &&
            arr_fetch(&y);
  if (!ok)
    fprintf(stderr, "%s\n", why);
  double *want = ok ? malloc(ny * sizeof *want) : NULL;
  for (int64_t n = 0; want && n < p.N; n++)
    for (int64_t m = 0; m < p.M; m++)
      for (int64_t oh = 0; oh < p.OH; oh++)
        for (int64_t ow = 0; ow < p.OW; ow++) {
          double acc = bias ? b.val[m] : 0;
          for (int64_t c = 0; c < p.C; c++)
            for (int64_t kh = 0; kh < p.KH; kh++)
              for (int64_t kw = 0; kw < p.KW; kw++) {
                int64_t ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
                if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)
                  acc += x.val[((n * p.C + c) * p.H + ih) * p.W + iw] *
                         w.val[((m * p.C + c) * p.KH + kh) * p.KW + kw];
              }
          size_t i = (size_t)(((n * p.M + m) * p.OH + oh) * p.OW + ow);
          acc += z_in ? z.val[i] : 0;
          want[i] = p.act == TC_CUDA_EPI_RELU && acc < 0 ? 0 : acc;
        }
  if (want) {
    char what[160];
    snprintf(what, sizeof what, "conv dt=%d N=%lld C=%lld %lldx%lld M=%lld k=%lldx%lld s=%lld", dt,
             (long long)p.N, (long long)p.C, (long long)p.H, (long long)p.W, (long long)p.M,
             (long long)p.KH, (long long)p.KW, (long long)p.sh);
    double tol = dt == 1 ? 2e-5 : dt == 10 ? 3e-3 : 2e-2;
    ok = close_all(what, dt, y.val, want, ny, tol, tol * sqrt((double)(p.C * p.KH * p.KW)));
  }
  free(want);
  arr_free(&x), arr_free(&w), arr_free(&b), arr_free(&z), arr_free(&y);
  return ok;
}

static void test_conv(void) {
  int cases = 0, passed = 0;
  for (int d = 0; d < 3; d++) {
    int dt = cu_variant_dtypes[d];
    tc_cuda_conv c3 = {.N = 2,
                       .C = 16,
                       .H = 14,
                       .W = 14,
                       .M = 32,
                       .KH = 3,
                       .KW = 3,
                       .sh = 1,
                       .sw = 1,
                       .ph = 1,
                       .pw = 1,
                       .dh = 1,
                       .dw = 1,
                       .act = TC_CUDA_EPI_RELU};
    tc_cuda_conv c1 = {.N = 3,
                       .C = 32,
                       .H = 7,
                       .W = 7,
                       .M = 24,
                       .KH = 1,
                       .KW = 1,
                       .sh = 1,
                       .sw = 1,
                       .dh = 1,
                       .dw = 1,
                       .act = TC_CUDA_EPI_RELU};
    tc_cuda_conv c7 = {.N = 1,
                       .C = 3,
                       .H = 23,
                       .W = 19,
                       .M = 8,
                       .KH = 7,
                       .KW = 7,
                       .sh = 2,
                       .sw = 2,
                       .ph = 3,
                       .pw = 3,
                       .dh = 1,
                       .dw = 1};
    passed += conv_case(dt, c3, true, false), cases++;  /* ConvRelu */
    passed += conv_case(dt, c1, true, true), cases++;   /* ConvAddRelu, 1x1: no im2col */
    passed += conv_case(dt, c7, true, false), cases++;  /* stem-like, no activation */
    passed += conv_case(dt, c1, false, false), cases++; /* no bias */
  }
  CHECK(passed == cases);
  printf("  convolution: %d of %d cases match the reference\n", passed, cases);
}

static int open_rc;

/* Opening device 0 works, or says plainly that there is no device; a
 * device ordinal that does not exist is refused by number. */
static void test_open(void) {
  open_rc = tc_cuda_open(0, &cu, why, sizeof why);
  if (open_rc == TC_CUDA_NO_DEVICE) {
    CHECK(cu == NULL && strstr(why, "no CUDA device") != NULL);
    return;
  }
  if (open_rc)
    fprintf(stderr, "%s\n", why);
  CHECK(open_rc == 0 && cu != NULL);
  tc_cuda *other = NULL;
  char w[512];
  CHECK(tc_cuda_open(1000, &other, w, sizeof w) == -1 && !other && strstr(w, "device 1000"));
}

int main(void) {
  RUN(test_open);
  if (!cu) {
    if (open_rc == TC_CUDA_NO_DEVICE)
      printf("test_cuda: skipped: %s\n", why);
    return SUMMARY("test_cuda");
  }
  char desc[256];
  tc_cuda_describe(cu, desc, sizeof desc);
  printf("test_cuda: %s\n", desc);
  RUN(test_row_kernels);
  RUN(test_gemm);
  RUN(test_binary);
  RUN(test_attention);
  RUN(test_embed_ln);
  RUN(test_conv);
  printf("  worst relative error: float32 %.2g, float16 %.2g, bfloat16 %.2g\n", worst[0], worst[1],
         worst[2]);
  tc_cuda_close(cu);
  return SUMMARY("test_cuda");
}
