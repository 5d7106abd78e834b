/* Internals of the CUDA backend shared by its files. */
#ifndef TC_CUDA_PRIV_H
#define TC_CUDA_PRIV_H

#include <stdint.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "tacort_cuda.h"

/* cuBLASLt's workspace per context: what its heuristics may ask for. */
#define TC_CUDA_WORKSPACE ((size_t)32 << 20)

/* A free block of the device-memory cache (host memory describing device memory). */
struct tc_cuda_block {
  void *p;
  struct tc_cuda_block *next;
};

/* An algorithm chosen by measurement for one GEMM signature. */
struct tc_cuda_choice {
  char key[320];
  uint64_t algo[8]; /* cublasLtMatmulAlgo_t */
  struct tc_cuda_choice *next;
};

struct tc_cuda {
  int dev;
  struct cudaDeviceProp prop;
  cudaStream_t stream;
  cudaEvent_t ev[2]; /* timing */
  cublasLtHandle_t lt;
  void *ws; /* cuBLASLt workspace */
  size_t ws_size;
  struct tc_cuda_block *cache[64]; /* free device blocks by size class (log2 of the size) */
  int search;                      /* candidates timed per new GEMM signature; 0: none */
  struct tc_cuda_choice *choices;  /* what the search chose */
  size_t n_searched;
  double searched_best_us, searched_first_us;
};

/* Forgets the GEMM choices (at close). */
void tc_cuda_gemm_forget(tc_cuda *c);

/* Writes "<what>: <error name> (<error string>)" into why; returns -1. */
int tc_cuda_fail(cudaError_t e, const char *what, char *why, size_t cap);

#endif
