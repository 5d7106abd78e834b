/* Row-major GEMM through cuBLASLt (tacort_cuda.h).
 *
 * cuBLASLt is column-major. A row-major [r, c] matrix is the column-major
 * [c, r] matrix with the same bytes, so the row-major C = op(A) op(B) is the
 * column-major C^T = op(B)^T op(A)^T: cuBLASLt's "A" is our B, its "B" our
 * A, its output [n, m] with leading dimension n; each transposition flag
 * carries over unchanged. A bias over C's columns is then a bias over the
 * column-major output's rows, which is what cuBLASLt's BIAS epilogue adds.
 * cuBLASLt's GELU epilogue is the tanh approximation. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_priv.h"

_Static_assert(sizeof(((tc_cuda_algo *)0)->data) == sizeof(cublasLtMatmulAlgo_t),
               "tc_cuda_algo holds a cublasLtMatmulAlgo_t");

typedef struct gemm_desc {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, c; /* cuBLASLt's A (our B), B (our A), C = D */
} gemm_desc;

static int lt_fail(cublasStatus_t s, const char *what, char *why, size_t cap) {
  snprintf(why, cap, "%s: %s", what, cublasLtGetStatusName(s));
  return -1;
}

static void desc_free(gemm_desc *d) {
  if (d->op)
    cublasLtMatmulDescDestroy(d->op);
  if (d->a)
    cublasLtMatrixLayoutDestroy(d->a);
  if (d->b)
    cublasLtMatrixLayoutDestroy(d->b);
  if (d->c)
    cublasLtMatrixLayoutDestroy(d->c);
}

static cublasStatus_t layout(cublasLtMatrixLayout_t *l, cudaDataType_t t, int64_t rows,
                             int64_t cols, int64_t ld, int32_t batch, int64_t stride) {
  cublasStatus_t s = cublasLtMatrixLayoutCreate(l, t, (uint64_t)rows, (uint64_t)cols, ld);
  if (s == CUBLAS_STATUS_SUCCESS && batch > 1)
    s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch,
                                         sizeof batch);
  if (s == CUBLAS_STATUS_SUCCESS && batch > 1)
    s = cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                         sizeof stride);
  return s;
}

static bool cuda_type(int dtype, cudaDataType_t *t) {
  switch (dtype) {
  case 1: *t = CUDA_R_32F; return true;
  case 10: *t = CUDA_R_16F; return true;
  case 16: *t = CUDA_R_16BF; return true;
  default: return false;
  }
}

/* The row strides of g's operands (explicit, or packed). */
static void leading_dims(const tc_cuda_gemm *g, int64_t *lda, int64_t *ldb, int64_t *ldc) {
  *lda = g->lda ? g->lda : g->trans_a ? g->m : g->k;
  *ldb = g->ldb ? g->ldb : g->trans_b ? g->k : g->n;
  *ldc = g->ldc ? g->ldc : g->n;
}

static int desc_make(const tc_cuda_gemm *g, gemm_desc *d, char *why, size_t cap) {
  memset(d, 0, sizeof *d);
  cudaDataType_t t, tc;
  cublasComputeType_t ct =
      g->dtype == 1 && g->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  if (!cuda_type(g->dtype, &t) || !cuda_type(g->c_dtype ? g->c_dtype : g->dtype, &tc)) {
    snprintf(why, cap, "GEMM on the GPU takes float32, float16 or bfloat16, not dtype %d (C %d)",
             g->dtype, g->c_dtype);
    return -1;
  }
  int64_t lda, ldb, ldc;
  leading_dims(g, &lda, &ldb, &ldc);
  if (g->m <= 0 || g->n <= 0 || g->k <= 0 || g->batch < 0 || g->batch > INT32_MAX) {
    snprintf(why, cap, "GEMM sizes m=%lld n=%lld k=%lld batch=%lld are not supported",
             (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
    return -1;
  }
  int32_t batch = g->batch > 1 ? (int32_t)g->batch : 1;
  cublasOperation_t ta = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                    tb = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (g->epilogue == TC_CUDA_EPI_RELU)
    epi = g->bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
  else if (g->epilogue == TC_CUDA_EPI_GELU_TANH)
    epi = g->bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
  else if (g->bias)
    epi = CUBLASLT_EPILOGUE_BIAS;
  cublasStatus_t s = cublasLtMatmulDescCreate(&d->op, ct, CUDA_R_32F);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  if (s == CUBLAS_STATUS_SUCCESS && epi != CUBLASLT_EPILOGUE_DEFAULT)
    s = cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (s == CUBLAS_STATUS_SUCCESS && g->bias)
    s = cublasLtMatmulDescSetAttribute(d->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g->bias,
                                       sizeof g->bias);
  /* our B: [k, n] rows (ld ldb), or [n, k] when transposed; column-major the reverse */
  if (s == CUBLAS_STATUS_SUCCESS)
    s = g->trans_b ? layout(&d->a, t, g->k, g->n, ldb, batch, g->stride_b)
                   : layout(&d->a, t, g->n, g->k, ldb, batch, g->stride_b);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = g->trans_a ? layout(&d->b, t, g->m, g->k, lda, batch, g->stride_a)
                   : layout(&d->b, t, g->k, g->m, lda, batch, g->stride_a);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = layout(&d->c, tc, g->n, g->m, ldc, batch, g->stride_c);
  if (s != CUBLAS_STATUS_SUCCESS) {
    desc_free(d);
    return lt_fail(s, "describing the GEMM for cuBLASLt", why, cap);
  }
  return 0;
}

/* The alignment every matrix of an operand has: its address, its row
 * stride and, when batched, its batch stride in bytes (at most 256, what
 * cuBLASLt assumes unless told less). */
static uint32_t alignment(const void *p, const tc_cuda_gemm *g, int dtype, int64_t stride,
                          int64_t ld) {
  uint64_t esize = dtype == 1 ? 4 : 2, bits = (uint64_t)(uintptr_t)p | 256;
  bits |= (uint64_t)ld * esize; /* every row's start */
  if (g->batch > 1)
    bits |= (uint64_t)stride * esize;
  return (uint32_t)(bits & (~bits + 1)); /* the lowest set bit */
}

/* Up to cap heuristic candidates for these operands that fit the workspace;
 * returns how many. */
static int candidates(tc_cuda *c, gemm_desc *d, const tc_cuda_gemm *g, const void *a, const void *b,
                      const void *cc, cublasLtMatmulHeuristicResult_t *res, int cap, char *why,
                      size_t why_cap) {
  cublasLtMatmulPreference_t pref;
  cublasStatus_t s = cublasLtMatmulPreferenceCreate(&pref);
  uint64_t ws = c->ws_size;
  /* cuBLASLt's A is our B, its B our A */
  int ct = g->c_dtype ? g->c_dtype : g->dtype;
  int64_t lda, ldb, ldc;
  leading_dims(g, &lda, &ldb, &ldc);
  uint32_t al[4] = {alignment(b, g, g->dtype, g->stride_b, ldb),
                    alignment(a, g, g->dtype, g->stride_a, lda),
                    alignment(cc, g, ct, g->stride_c, ldc), alignment(cc, g, ct, g->stride_c, ldc)};
  const cublasLtMatmulPreferenceAttributes_t which[4] = {
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
      CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
  for (int i = 0; i < 4 && s == CUBLAS_STATUS_SUCCESS; i++)
    s = cublasLtMatmulPreferenceSetAttribute(pref, which[i], &al[i], sizeof al[i]);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                             sizeof ws);
  int n = 0;
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulAlgoGetHeuristic(c->lt, d->op, d->a, d->b, d->c, d->c, pref, cap, res, &n);
  if (pref)
    cublasLtMatmulPreferenceDestroy(pref);
  if (s != CUBLAS_STATUS_SUCCESS)
    return lt_fail(s, "cuBLASLt heuristics", why, why_cap);
  int kept = 0;
  for (int i = 0; i < n; i++)
    if (res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= c->ws_size)
      res[kept++] = res[i];
  if (!kept) {
    snprintf(why, why_cap, "cuBLASLt has no algorithm for this GEMM on %s", c->prop.name);
    return -1;
  }
  return kept;
}

static cublasStatus_t matmul(tc_cuda *c, const tc_cuda_gemm *g, gemm_desc *d, const void *a,
                             const void *b, void *cc, const cublasLtMatmulAlgo_t *algo) {
  return cublasLtMatmul(c->lt, d->op, &g->alpha, b, d->a, a, d->b, &g->beta, cc, d->c, cc, d->c,
                        algo, c->ws, c->ws_size, c->stream);
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

/* Median time of reps runs of one algorithm (after one warm-up run), in µs;
 * negative when it fails to run. */
static double time_algo(tc_cuda *c, const tc_cuda_gemm *g, gemm_desc *d, const void *a,
                        const void *b, void *cc, const cublasLtMatmulAlgo_t *al, int reps) {
  double t[16];
  if (reps > 16)
    reps = 16;
  if (matmul(c, g, d, a, b, cc, al) != CUBLAS_STATUS_SUCCESS)
    return -1;
  for (int r = 0; r < reps; r++) {
    float ms = 0;
    if (cudaEventRecord(c->ev[0], c->stream) != cudaSuccess ||
        matmul(c, g, d, a, b, cc, al) != CUBLAS_STATUS_SUCCESS ||
        cudaEventRecord(c->ev[1], c->stream) != cudaSuccess ||
        cudaEventSynchronize(c->ev[1]) != cudaSuccess ||
        cudaEventElapsedTime(&ms, c->ev[0], c->ev[1]) != cudaSuccess)
      return -1;
    t[r] = ms * 1e3;
  }
  qsort(t, (size_t)reps, sizeof *t, cmp_double);
  return t[reps / 2];
}

/* Times up to max candidates for g (heuristics from the real operands a,
 * b, cc; the output written to out) and returns the fastest. */
static int tune_into(tc_cuda *c, const tc_cuda_gemm *g, gemm_desc *d, const void *a, const void *b,
                     const void *cc, void *out, int max, tc_cuda_algo *best,
                     tc_cuda_gemm_tuning *info, char *why, size_t cap) {
  memset(best, 0, sizeof *best);
  memset(info, 0, sizeof *info);
  cublasLtMatmulHeuristicResult_t res[32];
  if (max < 1 || max > 32)
    max = 32;
  int n = candidates(c, d, g, a, b, cc, res, max, why, cap);
  if (n < 0)
    return -1;
  double best_us = -1;
  for (int i = 0; i < n; i++) {
    double us = time_algo(c, g, d, a, b, out, &res[i].algo, 7);
    if (us < 0)
      continue; /* a candidate that does not run is not chosen */
    info->candidates++;
    if (i == 0)
      info->first_us = us;
    if (best_us < 0 || us < best_us) {
      best_us = us;
      memcpy(best->data, &res[i].algo, sizeof res[i].algo);
      best->workspace = res[i].workspaceSize;
      best->valid = 1;
    }
  }
  cudaError_t e = cudaGetLastError();
  if (!best->valid) {
    if (e != cudaSuccess)
      return tc_cuda_fail(e, "timing cuBLASLt algorithms", why, cap);
    snprintf(why, cap, "none of cuBLASLt's %d candidate algorithms ran", n);
    return -1;
  }
  info->best_us = best_us;
  if (!info->first_us)
    info->first_us = best_us; /* the first did not run: nothing to compare with */
  return 0;
}

int tc_cuda_gemm_tune(tc_cuda *c, const tc_cuda_gemm *g, const void *a, const void *b, void *cc,
                      int max_candidates, tc_cuda_algo *best, tc_cuda_gemm_tuning *info, char *why,
                      size_t cap) {
  gemm_desc d;
  if (desc_make(g, &d, why, cap))
    return -1;
  int rc = tune_into(c, g, &d, a, b, cc, cc, max_candidates, best, info, why, cap);
  desc_free(&d);
  return rc;
}

void tc_cuda_set_gemm_search(tc_cuda *c, int max_candidates) {
  c->search = max_candidates > 32 ? 32 : max_candidates > 0 ? max_candidates : 0;
}

void tc_cuda_gemm_search_stats(const tc_cuda *c, size_t *searched, double *best_us,
                               double *first_us) {
  *searched = c->n_searched;
  *best_us = c->searched_best_us;
  *first_us = c->searched_first_us;
}

void tc_cuda_gemm_forget(tc_cuda *c) {
  for (struct tc_cuda_choice *h = c->choices, *next; h; h = next) {
    next = h->next;
    free(h);
  }
  c->choices = NULL;
}

/* g's signature: everything that decides which algorithms apply. */
static void signature(const tc_cuda_gemm *g, const void *a, const void *b, const void *cc,
                      char *key, size_t cap) {
  int64_t lda, ldb, ldc;
  leading_dims(g, &lda, &ldb, &ldc);
  int ct = g->c_dtype ? g->c_dtype : g->dtype;
  snprintf(
      key, cap,
      "%d/%d/%d/%d%d m%lld n%lld k%lld b%lld ld%lld,%lld,%lld s%lld,%lld,%lld e%d%s al%u,%u,%u",
      g->dtype, ct, g->tf32, g->trans_a, g->trans_b, (long long)g->m, (long long)g->n,
      (long long)g->k, (long long)g->batch, (long long)lda, (long long)ldb, (long long)ldc,
      (long long)g->stride_a, (long long)g->stride_b, (long long)g->stride_c, g->epilogue,
      g->bias ? "+bias" : "", alignment(a, g, g->dtype, g->stride_a, lda),
      alignment(b, g, g->dtype, g->stride_b, ldb), alignment(cc, g, ct, g->stride_c, ldc));
}

/* The searched algorithm for g: from the choices, or measured now into a
 * scratch copy of the output. false (with nothing chosen) when it cannot be
 * measured; the caller then takes the heuristic's first. */
static bool searched(tc_cuda *c, const tc_cuda_gemm *g, gemm_desc *d, const void *a, const void *b,
                     void *cc, cublasLtMatmulAlgo_t *al) {
  char key[320];
  signature(g, a, b, cc, key, sizeof key);
  for (struct tc_cuda_choice *h = c->choices; h; h = h->next)
    if (!strcmp(h->key, key)) {
      memcpy(al, h->algo, sizeof *al);
      return true;
    }
  int64_t lda, ldb, ldc;
  leading_dims(g, &lda, &ldb, &ldc);
  int ct = g->c_dtype ? g->c_dtype : g->dtype;
  size_t ext =
             (size_t)((g->batch > 1 ? (g->batch - 1) * g->stride_c : 0) + (g->m - 1) * ldc + g->n),
         bytes = ext * (ct == 1 ? 4 : 2);
  void *scratch = NULL;
  char why[512];
  tc_cuda_algo best;
  tc_cuda_gemm_tuning info;
  struct tc_cuda_choice *h = malloc(sizeof *h);
  bool ok = h && !tc_cuda_alloc(c, bytes, &scratch, why, sizeof why) &&
            !tc_cuda_copy(c, scratch, cc, bytes, why, sizeof why) &&
            !tune_into(c, g, d, a, b, cc, scratch, c->search, &best, &info, why, sizeof why);
  tc_cuda_free(c, scratch, bytes);
  if (!ok) {
    free(h);
    return false;
  }
  snprintf(h->key, sizeof h->key, "%s", key);
  memcpy(h->algo, best.data, sizeof h->algo);
  h->next = c->choices;
  c->choices = h;
  c->n_searched++;
  c->searched_best_us += info.best_us;
  c->searched_first_us += info.first_us;
  memcpy(al, best.data, sizeof *al);
  return true;
}

int tc_cuda_gemm_run(tc_cuda *c, const tc_cuda_gemm *g, const void *a, const void *b, void *cc,
                     const tc_cuda_algo *algo, char *why, size_t cap) {
  gemm_desc d;
  if (desc_make(g, &d, why, cap))
    return -1;
  cublasLtMatmulAlgo_t al;
  cublasLtMatmulHeuristicResult_t res[1];
  int rc = 0;
  if (algo && algo->valid) {
    memcpy(&al, algo->data, sizeof al);
  } else if (c->search && searched(c, g, &d, a, b, cc, &al)) {
    /* measured */
  } else if ((rc = candidates(c, &d, g, a, b, cc, res, 1, why, cap)) > 0) {
    al = res[0].algo;
    rc = 0;
  }
  if (!rc) {
    cublasStatus_t s = matmul(c, g, &d, a, b, cc, &al);
    if (s != CUBLAS_STATUS_SUCCESS)
      rc = lt_fail(s, "cublasLtMatmul", why, cap);
  }
  desc_free(&d);
  return rc < 0 ? -1 : 0;
}
