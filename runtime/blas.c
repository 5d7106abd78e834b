/* The expert-library path: fp32 GEMM through oneDNN (dnnl_sgemm, row-major)
 * and the exact int8 GEMMs (dnnl_gemm_u8s8s32 / s8s8s32) behind the integer
 * and quantized MatMul and Conv kernels. Kernels call them when
 * tc_fast_kernels_enabled(); the reference loops stay the definition of
 * correct and the tests compare the two (bit for bit for int8). Set
 * TACORT_KERNELS=reference to run everything on the reference kernels.
 * Convolutions have their own oneDNN path, dnnl_conv.c. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "kernel.h"

/* -1: not decided yet (read the environment once), 0: reference, 1: fast. */
static atomic_int fast_mode = -1;

bool tc_fast_kernels_enabled(void) {
  int m = atomic_load(&fast_mode);
  if (m < 0) {
    const char *e = getenv("TACORT_KERNELS");
    m = !(e && strcmp(e, "reference") == 0);
    atomic_store(&fast_mode, m);
  }
  return m == 1;
}

void tc_fast_kernels_set(bool on) { atomic_store(&fast_mode, on ? 1 : 0); }

/* oneDNN is built on OpenMP here (DNNL_CPU_RUNTIME OMP); its parallel regions
 * use the calling thread's OpenMP thread count. */
void omp_set_num_threads(int n);

/* Whether the calling thread set its count (a tuned count then yields). */
static _Thread_local bool threads_explicit;

void tc_set_num_threads(int n) {
  if (n > 0) {
    omp_set_num_threads(n);
    threads_explicit = true;
  }
}

bool tc_threads_explicit(void) { return threads_explicit; }

bool tc_sgemm_ld(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                 size_t lda, const float *B, size_t ldb, float *C, size_t ldc) {
  return tc_sgemm_beta(ta, tb, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc);
}

/* One row of A (M = 1) times B: a matrix-vector product that streams B once
 * (dnnl_sgemm runs it at about half the memory bandwidth here: MobileNetV3's
 * two classifier Gemms, 10 MB of weights, 0.79 ms). y = alpha x op(B) +
 * beta y with x [K]; op(B) rows of B (tb: y[j] = x . B[j, :]) or its columns
 * (y += x[k] B[k, :]). Outputs are split between threads, each computed by
 * one, so results do not depend on the thread count. */
#define GEMV_COLS 256

typedef struct gemv_job {
  const float *x, *B;
  float *y;
  size_t K, N, ldb;
  float alpha, beta;
  bool tb;
} gemv_job;

static void gemv_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const gemv_job *j = ctx;
  if (j->tb) {
    for (size_t c = lo; c < hi; c++) {
      float v = j->alpha * tc_vdot_f32(j->x, j->B + c * j->ldb, j->K);
      j->y[c] = j->beta == 0.0f ? v : v + j->beta * j->y[c];
    }
    return;
  }
  /* lo, hi: blocks of GEMV_COLS columns, so y's block stays in L1 while B's
   * rows stream */
  for (size_t b = lo; b < hi; b++) {
    size_t c0 = b * GEMV_COLS, n = c0 + GEMV_COLS < j->N ? GEMV_COLS : j->N - c0;
    float *y = j->y + c0;
    if (j->beta == 0.0f)
      memset(y, 0, n * sizeof *y);
    else
      tc_vscale_f32(y, n, j->beta);
    for (size_t k = 0; k < j->K; k++)
      tc_vaxpy_f32(y, j->alpha * j->x[k], j->B + k * j->ldb + c0, n);
  }
}

bool tc_sgemm_beta(bool ta, bool tb, size_t M, size_t N, size_t K, float alpha, const float *A,
                   size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
  if (M == 1 && K >= 32 && N * K >= 16384 && (!ta || lda == 1)) {
    gemv_job j = {A, B, C, K, N, ldb ? ldb : (tb ? K : N), alpha, beta, tb};
    if (tb)
      tc_parallel_for(N, tc_parallel_grain(K), gemv_piece, &j);
    else
      tc_parallel_for((N + GEMV_COLS - 1) / GEMV_COLS, tc_parallel_grain(K * GEMV_COLS), gemv_piece,
                      &j);
    return true;
  }
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
      ldc > INT32_MAX)
    return false;
  if (K == 0) { /* oneDNN leaves C alone for K = 0; the product is zeros */
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < N; j++)
        C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    return true;
  }
  return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', (dnnl_dim_t)M, (dnnl_dim_t)N, (dnnl_dim_t)K,
                    alpha, A, lda ? (dnnl_dim_t)lda : 1, B, ldb ? (dnnl_dim_t)ldb : 1, beta, C,
                    ldc ? (dnnl_dim_t)ldc : 1) == dnnl_success;
}

bool tc_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, const float *A, const float *B,
              float *C) {
  return tc_sgemm_ld(ta, tb, M, N, K, 1.0f, A, ta ? M : K, B, tb ? K : N, C, N);
}

/* oneDNN's int8 GEMM multiplies u8 by s8 pairs; without VNNI it does so
 * with vpmaddubsw, whose int16 intermediate saturates (oneDNN's "int8
 * computations" guide), so results are only exact on VNNI CPUs. */
static bool int8_vnni(void) {
  static atomic_int vnni = -1;
  int v = atomic_load(&vnni);
  if (v < 0) {
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    v = (isa & (unsigned)dnnl_cpu_isa_avx512_core_vnni) == (unsigned)dnnl_cpu_isa_avx512_core_vnni;
    atomic_store(&vnni, v);
  }
  return v == 1;
}

bool tc_gemm_q8_exact(size_t K) { return int8_vnni() && K <= (size_t)INT32_MAX / (255 * 255); }

bool tc_gemm_u8s8s32(bool ta, bool tb, size_t M, size_t N, size_t K, const uint8_t *A,
                     uint8_t a_zero, const int8_t *B, int8_t b_zero, int32_t *C) {
  if (!tc_gemm_q8_exact(K) || M > INT32_MAX || N > INT32_MAX)
    return false;
  if (K == 0 || M == 0 || N == 0) {
    memset(C, 0, M * N * sizeof *C);
    return true;
  }
  dnnl_dim_t m = (dnnl_dim_t)M, n = (dnnl_dim_t)N, k = (dnnl_dim_t)K;
  int32_t co = 0;
  return dnnl_gemm_u8s8s32(ta ? 'T' : 'N', tb ? 'T' : 'N', 'F', m, n, k, 1.0f, A, ta ? m : k,
                           a_zero, B, tb ? k : n, b_zero, 0.0f, C, n, &co) == dnnl_success;
}

bool tc_gemm_s8s8s32(bool ta, bool tb, size_t M, size_t N, size_t K, const int8_t *A, int8_t a_zero,
                     const int8_t *B, int8_t b_zero, int32_t *C) {
  if (!tc_gemm_q8_exact(K) || M > INT32_MAX || N > INT32_MAX)
    return false;
  if (K == 0 || M == 0 || N == 0) {
    memset(C, 0, M * N * sizeof *C);
    return true;
  }
  dnnl_dim_t m = (dnnl_dim_t)M, n = (dnnl_dim_t)N, k = (dnnl_dim_t)K;
  int32_t co = 0;
  return dnnl_gemm_s8s8s32(ta ? 'T' : 'N', tb ? 'T' : 'N', 'F', m, n, k, 1.0f, A, ta ? m : k,
                           a_zero, B, tb ? k : n, b_zero, 0.0f, C, n, &co) == dnnl_success;
}

static bool q8_in_range(int32_t dt, const int32_t *zp, size_t n) {
  int32_t lo = dt == TC_DTYPE_U8 ? 0 : -128, hi = dt == TC_DTYPE_U8 ? 255 : 127;
  for (size_t i = 0; zp && i < n; i++)
    if (zp[i] < lo || zp[i] > hi)
      return false;
  return true;
}

/* Sums of the rows of (A - ao) [M,K] and of the columns of (B - bo) [K,N]. */
static void row_sums(size_t M, size_t K, int32_t adt, const void *A, int32_t ao, int64_t *rs) {
  for (size_t i = 0; i < M; i++) {
    int64_t s = 0;
    for (size_t kk = 0; kk < K; kk++)
      s += adt == TC_DTYPE_U8 ? ((const uint8_t *)A)[i * K + kk] : ((const int8_t *)A)[i * K + kk];
    rs[i] = s - (int64_t)K * ao;
  }
}

static void col_sums(size_t K, size_t N, const int8_t *B, int32_t bo, int64_t *cs) {
  for (size_t j = 0; j < N; j++)
    cs[j] = -(int64_t)K * bo;
  for (size_t kk = 0; kk < K; kk++)
    for (size_t j = 0; j < N; j++)
      cs[j] += B[kk * N + j];
}

/* oneDNN takes per-tensor zero points only, and a signed B. A uint8 B is
 * shifted to int8 (B - 128, its zero point too); a zero point that is per row
 * (per column) or does not fit the offset argument is left out of the GEMM and
 * corrected after it: with az', bz' those zero points (0 where absorbed),
 * sum (a - az')(b - bz') = raw - az' colsum(b) - bz' rowsum(a) + K az' bz'. */
bool tc_gemm_q8(size_t M, size_t N, size_t K, int32_t adt, const void *A, const int32_t *az,
                size_t n_az, int32_t bdt, const void *B, const int32_t *bz, size_t n_bz,
                int32_t *C) {
  bool q8 =
      (adt == TC_DTYPE_U8 || adt == TC_DTYPE_I8) && (bdt == TC_DTYPE_U8 || bdt == TC_DTYPE_I8);
  if (!q8 || !tc_gemm_q8_exact(K) || !q8_in_range(adt, az, n_az) || !q8_in_range(bdt, bz, n_bz) ||
      (az && n_az != 1 && n_az != M) || (bz && n_bz != 1 && n_bz != N))
    return false;
  if (M == 0 || N == 0)
    return true;
  if (M > SIZE_MAX / N / 8 || K > SIZE_MAX / N)
    return false;
  int32_t shift = bdt == TC_DTYPE_U8 ? 128 : 0;
  int8_t *own = NULL;
  const int8_t *b8 = B;
  if (shift) {
    if (!(own = malloc(K * N + 1)))
      return false;
    for (size_t i = 0; i < K * N; i++)
      own[i] = (int8_t)((int32_t)((const uint8_t *)B)[i] - shift);
    b8 = own;
  }
  bool a_vec = az && n_az != 1, b_vec = bz && n_bz != 1;
  int32_t ao = az && !a_vec ? az[0] : 0, bo = b_vec ? 0 : (bz ? bz[0] : 0) - shift;
  bool ok = adt == TC_DTYPE_U8
                ? tc_gemm_u8s8s32(false, false, M, N, K, A, (uint8_t)ao, b8, (int8_t)bo, C)
                : tc_gemm_s8s8s32(false, false, M, N, K, A, (int8_t)ao, b8, (int8_t)bo, C);
  int64_t *rs = NULL, *cs = NULL;
  if (ok && (a_vec || b_vec)) {
    rs = b_vec ? malloc(M * sizeof *rs) : NULL;
    cs = a_vec ? malloc(N * sizeof *cs) : NULL;
    ok = (!b_vec || rs) && (!a_vec || cs);
  }
  if (ok && (a_vec || b_vec)) {
    if (rs)
      row_sums(M, K, adt, A, ao, rs);
    if (cs)
      col_sums(K, N, b8, bo, cs);
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < N; j++) {
        int64_t za = a_vec ? az[i] : 0, zb = b_vec ? bz[j] - shift : 0;
        int64_t v = C[i * N + j];
        if (a_vec)
          v -= za * cs[j];
        if (b_vec)
          v -= zb * rs[i] - (int64_t)K * za * zb;
        C[i * N + j] = (int32_t)v;
      }
  }
  free(rs);
  free(cs);
  free(own);
  return ok;
}
