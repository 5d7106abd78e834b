// Fixed CUDA kernels of libtacort's CUDA backend (built by nvcc into
// libtacort_cuda.so through kernels.cu). Written with the templates of
// codegen/cuda/prelude.cuh and the built-ins tests/unit/cuda_emu.hpp
// emulates, so tests/unit/test_cuda_emu.c checks their logic on a CPU too.
#include "kernels.h"

// Numpy broadcasting of a binary op over up to 8 dims: the output's dims
// and each operand's element strides (0 where it broadcasts).
struct tc_bcast {
  long long dims[8], sa[8], sb[8];
  int rank;
};

// The broadcast of a binary op over rank dims (host side); *n gets the
// number of output elements.
static inline tc_bcast tc_bcast_make(int rank, const long long *dims, const long long *sa,
                                     const long long *sb, long long *n) {
  tc_bcast bc = {};
  *n = 1;
  for (int d = 0; d < rank; d++) {
    bc.dims[d] = dims[d];
    bc.sa[d] = sa[d];
    bc.sb[d] = sb[d];
    *n *= dims[d];
  }
  bc.rank = rank;
  return bc;
}

template <int OP> __device__ __forceinline__ float tc_binop(float a, float b) {
  if (OP == TC_BIN_ADD) return a + b;
  if (OP == TC_BIN_SUB) return a - b;
  if (OP == TC_BIN_MUL) return a * b;
  return a / b;
}

// y[i] = a[...] op b[...] for every output element i (grid-stride loop).
template <typename T, int OP>
__global__ void tc_binary(const T *a, const T *b, T *y, long long n, const tc_bcast bc) {
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
    long long r = i, oa = 0, ob = 0;
    for (int d = bc.rank - 1; d >= 0; d--) {
      const long long c = r % bc.dims[d];
      r /= bc.dims[d];
      oa += c * bc.sa[d];
      ob += c * bc.sb[d];
    }
    y[i] = tc_t<T>(tc_binop<OP>(tc_f(a[oa]), tc_f(b[ob])));
  }
}

// Attention probabilities: for each of the rows * cols scores (float32,
// already scaled) of rows [B, H, Sq] by cols Skv, adds the mask (additive,
// of the scores' broadcast shape through its strides; or boolean, false
// masking), masks j > i when causal, and writes the softmax of each row as
// T. One block of NT threads per row; the row is read three times (max, sum,
// write), from cache after the first. p: kernels.h.
template <typename T> __device__ __forceinline__ float tc_attn_score(const float *s, const void *mask,
                                                                     const tc_attn_rows &p,
                                                                     long long moff, long long i,
                                                                     long long j) {
  float v = s[j];
  if (p.mask_kind == 1)
    v += tc_f(((const T *)mask)[moff + j * p.ms[3]]);
  else if (p.mask_kind == 2 && !((const unsigned char *)mask)[moff + j * p.ms[3]])
    v = TC_NEG_INF;
  if (p.causal && j > i)
    v = TC_NEG_INF;
  return v;
}

template <typename T, int NT>
__global__ void tc_attn_softmax(const float *scores, const void *mask, T *probs,
                                const tc_attn_rows p) {
  __shared__ float sh[32];
  const long long row = blockIdx.x; // over B * H * Sq
  const long long i = row % p.Sq, h = (row / p.Sq) % p.H, b = row / (p.Sq * p.H);
  const long long moff = b * p.ms[0] + h * p.ms[1] + i * p.ms[2];
  const float *s = scores + row * p.Skv;
  T *y = probs + row * p.Skv;
  float m = TC_NEG_INF, sum = 0.f;
  for (long long j = threadIdx.x; j < p.Skv; j += NT)
    m = fmaxf(m, tc_attn_score<T>(s, mask, p, moff, i, j));
  m = tc_block_max<NT>(m, sh);
  for (long long j = threadIdx.x; j < p.Skv; j += NT)
    sum += expf(tc_attn_score<T>(s, mask, p, moff, i, j) - m);
  // A row with every position masked has no probabilities: all zeros (as
  // ONNX Runtime gives), not the NaN that 0/0 would.
  const float total = tc_block_sum<NT>(sum, sh), inv = total > 0.f ? 1.f / total : 0.f;
  for (long long j = threadIdx.x; j < p.Skv; j += NT) {
    const float v = tc_attn_score<T>(s, mask, p, moff, i, j);
    y[j] = tc_t<T>(m == TC_NEG_INF ? 0.f : expf(v - m) * inv);
  }
}

// ai.tacoc.EmbedLayerNormalization[WithSegment]: for token r of rows
// [B, S], y[r] = LayerNorm(W[ids[r]] + P[r % S] (+ T[seg[r]])) over width H,
// float32 tables (ids already checked to be in range). One block of NT
// threads per token; y's row holds the sum between the passes.
template <int NT>
__global__ void tc_embed_ln(const long long *ids, const long long *seg, const float *W,
                            const float *P, const float *T, const float *g, const float *b,
                            float *y, long long S, long long H, float eps) {
  __shared__ float sh[32];
  const long long r = blockIdx.x;
  const float *w = W + ids[r] * H, *p = P + (r % S) * H, *t = seg ? T + seg[r] * H : nullptr;
  float *yr = y + r * H, acc = 0.f;
  for (long long c = threadIdx.x; c < H; c += NT) {
    const float v = w[c] + p[c] + (t ? t[c] : 0.f);
    yr[c] = v;
    acc += v;
  }
  const float mean = tc_block_sum<NT>(acc, sh) / (float)H;
  acc = 0.f;
  for (long long c = threadIdx.x; c < H; c += NT)
    acc += (yr[c] - mean) * (yr[c] - mean);
  const float rstd = rsqrtf(tc_block_sum<NT>(acc, sh) / (float)H + eps);
  for (long long c = threadIdx.x; c < H; c += NT)
    yr[c] = (yr[c] - mean) * rstd * g[c] + b[c];
}

// Cast between float32, float16 and bfloat16 (through float32, rounding to
// nearest even), a grid-stride loop.
template <typename TI, typename TO> __global__ void tc_cast(const TI *x, TO *y, long long n) {
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step)
    y[i] = tc_t<TO>(tc_f(x[i]));
}

// im2col of a batch of NCHW images for a 2-D convolution (p: kernels.h):
// col[n] is the [C * KH * KW, OH * OW] matrix whose row (c, kh, kw) holds,
// for every output position, the input pixel that kernel tap reads (0 in the
// padding). A grid-stride loop over every element of col.
template <typename T> __global__ void tc_im2col_k(const T *x, T *col, const tc_im2col p) {
  const long long P = p.OH * p.OW, rows = p.C * p.KH * p.KW, n_all = p.N * rows * P;
  const long long step = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n_all; i += step) {
    const long long pos = i % P, row = (i / P) % rows, n = i / (P * rows);
    const long long kw = row % p.KW, kh = (row / p.KW) % p.KH, c = row / (p.KW * p.KH);
    const long long oh = pos / p.OW, ow = pos % p.OW;
    const long long ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
    col[i] = ih >= 0 && ih < p.H && iw >= 0 && iw < p.W
                 ? x[((n * p.C + c) * p.H + ih) * p.W + iw]
                 : tc_t<T>(0.f);
  }
}

// MaxPool over NCHW planes (p: the im2col geometry with C the channels;
// padding never wins), a grid-stride loop over the outputs.
template <typename T> __global__ void tc_maxpool_k(const T *x, T *y, const tc_im2col p) {
  const long long n_all = p.N * p.C * p.OH * p.OW, step = (long long)gridDim.x * blockDim.x;
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n_all; i += step) {
    const long long ow = i % p.OW, oh = (i / p.OW) % p.OH, plane = i / (p.OW * p.OH);
    const T *xp = x + plane * p.H * p.W;
    float m = TC_NEG_INF;
    for (long long kh = 0; kh < p.KH; kh++) {
      const long long ih = oh * p.sh - p.ph + kh * p.dh;
      if (ih < 0 || ih >= p.H)
        continue;
      for (long long kw = 0; kw < p.KW; kw++) {
        const long long iw = ow * p.sw - p.pw + kw * p.dw;
        if (iw >= 0 && iw < p.W)
          m = fmaxf(m, tc_f(xp[ih * p.W + iw]));
      }
    }
    y[i] = tc_t<T>(m);
  }
}

// GlobalAveragePool: the mean of each of the planes (of length len), one
// block of NT threads per plane.
template <typename T, int NT> __global__ void tc_gavgpool_k(const T *x, T *y, long long len) {
  __shared__ float sh[32];
  const T *xp = x + (long long)blockIdx.x * len;
  float acc = 0.f;
  for (long long j = threadIdx.x; j < len; j += NT)
    acc += tc_f(xp[j]);
  acc = tc_block_sum<NT>(acc, sh);
  if (threadIdx.x == 0)
    y[blockIdx.x] = tc_t<T>(acc / (float)len);
}
