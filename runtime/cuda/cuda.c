/* The CUDA backend's device context, memory and generated kernels
 * (tacort_cuda.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "cuda_priv.h"

int tc_cuda_fail(cudaError_t e, const char *what, char *why, size_t cap) {
  snprintf(why, cap, "%s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
  return -1;
}

int tc_cuda_open(int dev, tc_cuda **out, char *why, size_t cap) {
  *out = NULL;
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || (e == cudaSuccess && !n)) {
    snprintf(why, cap, "no CUDA device (%s)",
             e == cudaSuccess ? "the driver reports none" : cudaGetErrorString(e));
    return TC_CUDA_NO_DEVICE;
  }
  if (e != cudaSuccess)
    return tc_cuda_fail(e, "cudaGetDeviceCount", why, cap);
  if (dev < 0 || dev >= n) {
    snprintf(why, cap, "CUDA device %d does not exist (the machine has %d)", dev, n);
    return -1;
  }
  tc_cuda *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  c->dev = dev;
  cublasStatus_t bs;
  if ((e = cudaSetDevice(dev)) != cudaSuccess || (e = cudaGetDeviceProperties(&c->prop, dev)) ||
      (e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) ||
      (e = cudaEventCreate(&c->ev[0])) || (e = cudaEventCreate(&c->ev[1]))) {
    tc_cuda_fail(e, "opening the CUDA device", why, cap);
    tc_cuda_close(c);
    return -1;
  }
  if ((bs = cublasLtCreate(&c->lt)) != CUBLAS_STATUS_SUCCESS) {
    snprintf(why, cap, "cublasLtCreate: %s", cublasLtGetStatusName(bs));
    tc_cuda_close(c);
    return -1;
  }
  c->ws_size = TC_CUDA_WORKSPACE;
  if ((e = cudaMalloc(&c->ws, c->ws_size)) != cudaSuccess) {
    tc_cuda_fail(e, "allocating the cuBLASLt workspace", why, cap);
    tc_cuda_close(c);
    return -1;
  }
  *out = c;
  return 0;
}

void tc_cuda_close(tc_cuda *c) {
  if (!c)
    return;
  cudaSetDevice(c->dev);
  if (c->stream)
    cudaStreamSynchronize(c->stream);
  cudaFree(c->ws);
  tc_cuda_gemm_forget(c);
  for (int i = 0; i < 64; i++)
    for (struct tc_cuda_block *b = c->cache[i], *next; b; b = next) {
      next = b->next;
      cudaFree(b->p);
      free(b);
    }
  if (c->lt)
    cublasLtDestroy(c->lt);
  for (int i = 0; i < 2; i++)
    if (c->ev[i])
      cudaEventDestroy(c->ev[i]);
  if (c->stream)
    cudaStreamDestroy(c->stream);
  free(c);
}

int tc_cuda_bind(tc_cuda *c, char *why, size_t cap) {
  cudaError_t e = cudaSetDevice(c->dev);
  return e == cudaSuccess ? 0 : tc_cuda_fail(e, "selecting the CUDA device", why, cap);
}

void tc_cuda_describe(const tc_cuda *c, char *buf, size_t cap) {
  snprintf(buf, cap, "%s, sm_%u, %d SMs, %.1f GiB", c->prop.name, tc_cuda_sm(c),
           c->prop.multiProcessorCount, (double)c->prop.totalGlobalMem / (1u << 30));
}

unsigned tc_cuda_sm(const tc_cuda *c) { return (unsigned)(c->prop.major * 10 + c->prop.minor); }

/* The size class of bytes: blocks of 2^k bytes, at least 256. */
static int size_class(size_t bytes) {
  int k = 8;
  while (k < 63 && ((size_t)1 << k) < bytes)
    k++;
  return k;
}

int tc_cuda_alloc(tc_cuda *c, size_t bytes, void **dev, char *why, size_t cap) {
  int k = size_class(bytes);
  struct tc_cuda_block *b = c->cache[k];
  if (b) {
    c->cache[k] = b->next;
    *dev = b->p;
    free(b);
    return 0;
  }
  cudaError_t e = cudaMalloc(dev, (size_t)1 << k);
  if (e == cudaErrorMemoryAllocation) { /* give the cache back and try once more */
    cudaGetLastError();
    for (int i = 0; i < 64; i++)
      while ((b = c->cache[i])) {
        c->cache[i] = b->next;
        cudaFree(b->p);
        free(b);
      }
    e = cudaMalloc(dev, (size_t)1 << k);
  }
  if (e != cudaSuccess) {
    *dev = NULL;
    char what[320];
    snprintf(what, sizeof what, "allocating %zu bytes on %s", bytes, c->prop.name);
    return tc_cuda_fail(e, what, why, cap);
  }
  return 0;
}

void tc_cuda_free(tc_cuda *c, void *dev, size_t bytes) {
  if (!dev)
    return;
  struct tc_cuda_block *b = malloc(sizeof *b);
  if (!b) { /* cannot keep it: give it back */
    cudaStreamSynchronize(c->stream);
    cudaFree(dev);
    return;
  }
  int k = size_class(bytes);
  b->p = dev;
  b->next = c->cache[k];
  c->cache[k] = b;
}

int tc_cuda_upload(tc_cuda *c, void *dev, const void *host, size_t bytes, char *why, size_t cap) {
  cudaError_t e = cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, c->stream);
  return e == cudaSuccess ? 0 : tc_cuda_fail(e, "copying to the device", why, cap);
}

int tc_cuda_download(tc_cuda *c, void *host, const void *dev, size_t bytes, char *why, size_t cap) {
  cudaError_t e = cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, c->stream);
  if (e == cudaSuccess)
    e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? 0 : tc_cuda_fail(e, "copying from the device", why, cap);
}

int tc_cuda_copy(tc_cuda *c, void *dst, const void *src, size_t bytes, char *why, size_t cap) {
  cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream);
  return e == cudaSuccess ? 0 : tc_cuda_fail(e, "copying on the device", why, cap);
}

int tc_cuda_sync(tc_cuda *c, char *why, size_t cap) {
  cudaError_t e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? 0 : tc_cuda_fail(e, "running on the device", why, cap);
}

/* ---- generated kernels ---- */

struct tc_cuda_kernels {
  cudaLibrary_t lib;
};

int tc_cuda_kernels_load(tc_cuda *c, const unsigned char *lib, size_t size, tc_cuda_kernels **out,
                         char *why, size_t cap) {
  *out = NULL;
  tc_cu_entry e[32];
  size_t n = 0;
  if (!tc_culib_parse(lib, size, e, 32, &n, why, cap))
    return -1;
  const tc_cu_entry *pick = tc_culib_pick(e, n, tc_cuda_sm(c));
  if (!pick) {
    snprintf(why, cap, "the kernel library has no code for sm_%u (%zu entries)", tc_cuda_sm(c), n);
    return -1;
  }
  tc_cuda_kernels *k = calloc(1, sizeof *k);
  if (!k) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  cudaError_t err = cudaLibraryLoadData(&k->lib, pick->data, NULL, NULL, 0, NULL, NULL, 0);
  if (err != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "loading the %s for sm_%u", pick->kind ? "CUBIN" : "PTX",
             pick->arch);
    free(k);
    return tc_cuda_fail(err, what, why, cap);
  }
  *out = k;
  return 0;
}

void tc_cuda_kernels_free(tc_cuda_kernels *k) {
  if (!k)
    return;
  cudaLibraryUnload(k->lib);
  free(k);
}

int tc_cuda_row_launch(tc_cuda *c, tc_cuda_kernels *k, const tc_cg_spec *sp, const tc_cu_args *args,
                       char *why, size_t cap) {
  if (args->rows <= 0)
    return 0;
  cudaKernel_t fn;
  cudaError_t e = cudaLibraryGetKernel(&fn, k->lib, sp->sym);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "kernel %s", sp->sym);
    return tc_cuda_fail(e, what, why, cap);
  }
  int block = tc_cu_block(sp);
  long long grid;
  if (sp->kind == TC_CG_BIAS_ACT) {
    long long vecs = args->rows * (sp->cols / tc_cu_vec(sp)),
              max = (long long)c->prop.multiProcessorCount * 16;
    grid = (vecs + block - 1) / block;
    if (grid > max)
      grid = max;
  } else {
    grid = args->rows; /* one block per row */
    if (grid > 0x7fffffffLL) {
      snprintf(why, cap, "kernel %s: %lld rows are more than one launch takes", sp->sym, grid);
      return -1;
    }
  }
  tc_cu_args a = *args;
  void *params[] = {&a};
  e = cudaLaunchKernel((const void *)fn, (dim3){(unsigned)grid, 1, 1},
                       (dim3){(unsigned)block, 1, 1}, params, 0, c->stream);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "launching kernel %s", sp->sym);
    return tc_cuda_fail(e, what, why, cap);
  }
  return 0;
}
