// The CUDA backend's fixed kernels (kernels.cuh) and their C launchers,
// compiled by nvcc for sm_80 and sm_90 with PTX for newer GPUs.
#include "prelude.cuh"

#include "kernels.cuh"

// Blocks of 256 for a grid-stride loop over n elements: enough to cover n,
// at most 16 per SM.
static unsigned stride_grid(long long n, int sms) {
  long long blocks = (n + 255) / 256, max = (long long)sms * 16;
  return (unsigned)(blocks < max ? blocks : max);
}

template <typename T>
static int binary_t(cudaStream_t st, int op, const void *a, const void *b, void *y, long long n,
                    const tc_bcast &bc, int sms) {
  unsigned grid = stride_grid(n, sms);
  const T *pa = (const T *)a, *pb = (const T *)b;
  T *py = (T *)y;
  switch (op) {
  case TC_BIN_ADD: tc_binary<T, TC_BIN_ADD><<<grid, 256, 0, st>>>(pa, pb, py, n, bc); break;
  case TC_BIN_SUB: tc_binary<T, TC_BIN_SUB><<<grid, 256, 0, st>>>(pa, pb, py, n, bc); break;
  case TC_BIN_MUL: tc_binary<T, TC_BIN_MUL><<<grid, 256, 0, st>>>(pa, pb, py, n, bc); break;
  case TC_BIN_DIV: tc_binary<T, TC_BIN_DIV><<<grid, 256, 0, st>>>(pa, pb, py, n, bc); break;
  default: return (int)cudaErrorInvalidValue;
  }
  return (int)cudaGetLastError();
}

extern "C" int tc_cudak_binary(void *stream, int dtype, int op, const void *a, const void *b,
                               void *y, int rank, const long long *dims, const long long *sa,
                               const long long *sb, int sms) {
  if (rank < 0 || rank > 8)
    return (int)cudaErrorInvalidValue;
  long long n;
  tc_bcast bc = tc_bcast_make(rank, dims, sa, sb, &n);
  if (n <= 0)
    return 0;
  cudaStream_t st = (cudaStream_t)stream;
  switch (dtype) {
  case 1: return binary_t<float>(st, op, a, b, y, n, bc, sms);
  case 10: return binary_t<__half>(st, op, a, b, y, n, bc, sms);
  case 16: return binary_t<__nv_bfloat16>(st, op, a, b, y, n, bc, sms);
  default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int tc_cudak_attn_softmax(void *stream, int dtype, const float *scores,
                                     const void *mask, void *probs, const tc_attn_rows *p) {
  long long rows = p->B * p->H * p->Sq;
  if (rows <= 0 || p->Skv <= 0)
    return 0;
  if (rows > 0x7fffffffLL)
    return (int)cudaErrorInvalidValue;
  cudaStream_t st = (cudaStream_t)stream;
  switch (dtype) {
  case 1: tc_attn_softmax<float, 128><<<(unsigned)rows, 128, 0, st>>>(scores, mask, (float *)probs, *p); break;
  case 10: tc_attn_softmax<__half, 128><<<(unsigned)rows, 128, 0, st>>>(scores, mask, (__half *)probs, *p); break;
  case 16:
    tc_attn_softmax<__nv_bfloat16, 128><<<(unsigned)rows, 128, 0, st>>>(scores, mask, (__nv_bfloat16 *)probs, *p);
    break;
  default: return (int)cudaErrorInvalidValue;
  }
  return (int)cudaGetLastError();
}

extern "C" int tc_cudak_embed_ln(void *stream, const long long *ids, const long long *seg,
                                 const float *w, const float *p, const float *t, const float *g,
                                 const float *b, float *y, long long rows, long long S,
                                 long long H, float eps) {
  if (rows <= 0)
    return 0;
  if (rows > 0x7fffffffLL)
    return (int)cudaErrorInvalidValue;
  tc_embed_ln<256><<<(unsigned)rows, 256, 0, (cudaStream_t)stream>>>(ids, seg, w, p, t, g, b, y,
                                                                      S, H, eps);
  return (int)cudaGetLastError();
}

template <typename TI>
static int cast_from(cudaStream_t st, const void *x, int to, void *y, long long n, unsigned grid) {
  const TI *px = (const TI *)x;
  switch (to) {
  case 1: tc_cast<TI, float><<<grid, 256, 0, st>>>(px, (float *)y, n); break;
  case 10: tc_cast<TI, __half><<<grid, 256, 0, st>>>(px, (__half *)y, n); break;
  case 16: tc_cast<TI, __nv_bfloat16><<<grid, 256, 0, st>>>(px, (__nv_bfloat16 *)y, n); break;
  default: return (int)cudaErrorInvalidValue;
  }
  return (int)cudaGetLastError();
}

extern "C" int tc_cudak_cast(void *stream, int from, int to, const void *x, void *y, long long n,
                             int sms) {
  if (n <= 0)
    return 0;
  unsigned grid = stride_grid(n, sms);
  cudaStream_t st = (cudaStream_t)stream;
  switch (from) {
  case 1: return cast_from<float>(st, x, to, y, n, grid);
  case 10: return cast_from<__half>(st, x, to, y, n, grid);
  case 16: return cast_from<__nv_bfloat16>(st, x, to, y, n, grid);
  default: return (int)cudaErrorInvalidValue;
  }
}

extern "C" int tc_cudak_im2col(void *stream, int dtype, const void *x, void *col,
                               const tc_im2col *p, int sms) {
  long long n = p->N * p->C * p->KH * p->KW * p->OH * p->OW;
  if (n <= 0)
    return 0;
  unsigned grid = stride_grid(n, sms);
  cudaStream_t st = (cudaStream_t)stream;
  switch (dtype) {
  case 1: tc_im2col_k<float><<<grid, 256, 0, st>>>((const float *)x, (float *)col, *p); break;
  case 10: tc_im2col_k<__half><<<grid, 256, 0, st>>>((const __half *)x, (__half *)col, *p); break;
  case 16:
    tc_im2col_k<__nv_bfloat16><<<grid, 256, 0, st>>>((const __nv_bfloat16 *)x, (__nv_bfloat16 *)col, *p);
    break;
  default: return (int)cudaErrorInvalidValue;
  }
  return (int)cudaGetLastError();
}

extern "C" int tc_cudak_maxpool(void *stream, int dtype, const void *x, void *y,
                                const tc_im2col *p, int sms) {
  long long n = p->N * p->C * p->OH * p->OW;
  if (n <= 0)
    return 0;
  unsigned grid = stride_grid(n, sms);
  cudaStream_t st = (cudaStream_t)stream;
  switch (dtype) {
  case 1: tc_maxpool_k<float><<<grid, 256, 0, st>>>((const float *)x, (float *)y, *p); break;
  case 10: tc_maxpool_k<__half><<<grid, 256, 0, st>>>((const __half *)x, (__half *)y, *p); break;
  case 16:
    tc_maxpool_k<__nv_bfloat16><<<grid, 256, 0, st>>>((const __nv_bfloat16 *)x, (__nv_bfloat16 *)y, *p);
    break;
  default: return (int)cudaErrorInvalidValue;
  }
  return (int)cudaGetLastError();
}

extern "C" int tc_cudak_gavgpool(void *stream, int dtype, const void *x, void *y, long long planes,
                                 long long len) {
  if (planes <= 0 || len <= 0)
    return 0;
  if (planes > 0x7fffffffLL)
    return (int)cudaErrorInvalidValue;
  cudaStream_t st = (cudaStream_t)stream;
  unsigned g = (unsigned)planes;
  switch (dtype) {
  case 1: tc_gavgpool_k<float, 256><<<g, 256, 0, st>>>((const float *)x, (float *)y, len); break;
  case 10: tc_gavgpool_k<__half, 256><<<g, 256, 0, st>>>((const __half *)x, (__half *)y, len); break;
  case 16:
    tc_gavgpool_k<__nv_bfloat16, 256><<<g, 256, 0, st>>>((const __nv_bfloat16 *)x, (__nv_bfloat16 *)y, len);
    break;
  default: return (int)cudaErrorInvalidValue;
  }
  return (int)cudaGetLastError();
}
