/* The expert-library path: fp32 GEMM through oneDNN (dnnl_sgemm, row-major).
 * Kernels call tc_sgemm when tc_fast_kernels_enabled(); the reference loops
 * stay the definition of correct and the tests compare the two. Set
 * TACORT_KERNELS=reference to run everything on the reference kernels. */
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

void tc_set_num_threads(int n) {
  if (n > 0)
    omp_set_num_threads(n);
}

bool tc_sgemm(bool ta, bool tb, size_t M, size_t N, size_t K, const float *A, const float *B,
              float *C) {
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
    return false;
  dnnl_dim_t m = (dnnl_dim_t)M, n = (dnnl_dim_t)N, k = (dnnl_dim_t)K;
  dnnl_dim_t lda = ta ? m : k, ldb = tb ? k : n;
  if (K == 0) { /* oneDNN leaves C alone for K = 0; the product is zeros */
    memset(C, 0, M * N * sizeof *C);
    return true;
  }
  return dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, A, lda > 0 ? lda : 1, B,
                    ldb > 0 ? ldb : 1, 0.0f, C, n > 0 ? n : 1) == dnnl_success;
}
