// The CUDA backend's fixed kernels (runtime/cuda/kernels.cuh) under host
// emulation, with C entry points for tests/unit/test_cuda_emu.c. Compiled
// by that test at run time with the host C++ compiler.
#include "cuda_emu.hpp"

#include "prelude.cuh"

#include "kernels.cuh"

template <typename T, int OP> static int binary_t(const void *a, const void *b, void *y, long long n,
                                                  const tc_bcast &bc) {
  const T *pa = (const T *)a, *pb = (const T *)b;
  T *py = (T *)y;
  return tc_emu_launch_fn(3, 64, [&] { tc_binary<T, OP>(pa, pb, py, n, bc); });
}

template <typename T> static int binary_op(int op, const void *a, const void *b, void *y,
                                           long long n, const tc_bcast &bc) {
  switch (op) {
  case TC_BIN_ADD: return binary_t<T, TC_BIN_ADD>(a, b, y, n, bc);
  case TC_BIN_SUB: return binary_t<T, TC_BIN_SUB>(a, b, y, n, bc);
  case TC_BIN_MUL: return binary_t<T, TC_BIN_MUL>(a, b, y, n, bc);
  case TC_BIN_DIV: return binary_t<T, TC_BIN_DIV>(a, b, y, n, bc);
  default: return -1;
  }
}

extern "C" int emu_binary(int dtype, int op, const void *a, const void *b, void *y, int rank,
                          const long long *dims, const long long *sa, const long long *sb) {
  long long n;
  tc_bcast bc = tc_bcast_make(rank, dims, sa, sb, &n);
  if (dtype == 1)
    return binary_op<float>(op, a, b, y, n, bc);
  if (dtype == 10)
    return binary_op<__half>(op, a, b, y, n, bc);
  return binary_op<__nv_bfloat16>(op, a, b, y, n, bc);
}

extern "C" int emu_attn_softmax(int dtype, const float *scores, const void *mask, void *probs,
                                const tc_attn_rows *p) {
  unsigned rows = (unsigned)(p->B * p->H * p->Sq);
  tc_attn_rows q = *p;
  if (dtype == 1)
    return tc_emu_launch_fn(rows, 128, [&] { tc_attn_softmax<float, 128>(scores, mask, (float *)probs, q); });
  if (dtype == 10)
    return tc_emu_launch_fn(rows, 128, [&] { tc_attn_softmax<__half, 128>(scores, mask, (__half *)probs, q); });
  return tc_emu_launch_fn(rows, 128, [&] {
    tc_attn_softmax<__nv_bfloat16, 128>(scores, mask, (__nv_bfloat16 *)probs, q);
  });
}

extern "C" int emu_embed_ln(const long long *ids, const long long *seg, const float *w,
                            const float *p, const float *t, const float *g, const float *b,
                            float *y, long long rows, long long S, long long H, float eps) {
  return tc_emu_launch_fn((unsigned)rows, 256,
                          [&] { tc_embed_ln<256>(ids, seg, w, p, t, g, b, y, S, H, eps); });
}

template <typename TI, typename TO> static int cast_t(const void *x, void *y, long long n) {
  return tc_emu_launch_fn(2, 64, [&] { tc_cast<TI, TO>((const TI *)x, (TO *)y, n); });
}
template <typename TI> static int cast_from(int to, const void *x, void *y, long long n) {
  if (to == 1)
    return cast_t<TI, float>(x, y, n);
  if (to == 10)
    return cast_t<TI, __half>(x, y, n);
  return cast_t<TI, __nv_bfloat16>(x, y, n);
}
extern "C" int emu_cast(int from, int to, const void *x, void *y, long long n) {
  if (from == 1)
    return cast_from<float>(to, x, y, n);
  if (from == 10)
    return cast_from<__half>(to, x, y, n);
  return cast_from<__nv_bfloat16>(to, x, y, n);
}

extern "C" int emu_im2col(int dtype, const void *x, void *col, const tc_im2col *p) {
  tc_im2col q = *p;
  if (dtype == 1)
    return tc_emu_launch_fn(3, 64, [&] { tc_im2col_k<float>((const float *)x, (float *)col, q); });
  return tc_emu_launch_fn(3, 64, [&] { tc_im2col_k<__half>((const __half *)x, (__half *)col, q); });
}

extern "C" int emu_maxpool(const float *x, float *y, const tc_im2col *p) {
  tc_im2col q = *p;
  return tc_emu_launch_fn(2, 64, [&] { tc_maxpool_k<float>(x, y, q); });
}

extern "C" int emu_gavgpool(const float *x, float *y, long long planes, long long len) {
  return tc_emu_launch_fn((unsigned)planes, 256, [&] { tc_gavgpool_k<float, 256>(x, y, len); });
}
