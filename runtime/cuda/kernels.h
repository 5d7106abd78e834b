/* C launchers of the CUDA backend's fixed kernels (kernels.cu, built by
 * nvcc). Each returns a cudaError_t as int (0: launched). stream is a
 * cudaStream_t; dtype is ONNX's (1 float32, 10 float16, 16 bfloat16); sms
 * caps grid-stride grids at 16 blocks per SM. */
#ifndef TC_CUDA_KERNELS_H
#define TC_CUDA_KERNELS_H

/* Launch parameters of the attention softmax (kernels.cuh). */
typedef struct tc_attn_rows {
  long long B, H, Sq, Skv;
  long long ms[4]; /* mask strides over B, H, Sq, Skv (elements; 0: broadcast) */
  int mask_kind;   /* 0 none, 1 additive (the scores' dtype), 2 boolean (bytes, 0 masks) */
  int causal;      /* mask key j > query i (no past: Sq == Skv) */
} tc_attn_rows;
enum { TC_BIN_ADD = 0, TC_BIN_SUB = 1, TC_BIN_MUL = 2, TC_BIN_DIV = 3 };
/* A 2-D convolution's geometry for im2col: input N x C x H x W, kernel
 * KH x KW, output OH x OW, strides, leading pads, dilations. */
typedef struct tc_im2col {
  long long N, C, H, W, KH, KW, OH, OW;
  long long sh, sw, ph, pw, dh, dw;
} tc_im2col;

#ifdef __cplusplus
extern "C" {
#endif

/* y = a op b with numpy broadcasting: the output's rank and dims, each
 * operand's element strides (0 where it broadcasts). */
int tc_cudak_binary(void *stream, int dtype, int op, const void *a, const void *b, void *y,
                    int rank, const long long *dims, const long long *sa, const long long *sb,
                    int sms);
/* probs (dtype) = softmax over each row of float32 scores [B, H, Sq, Skv]
 * plus the mask and causal masking of p (kernels.cuh). */
int tc_cudak_attn_softmax(void *stream, int dtype, const float *scores, const void *mask,
                          void *probs, const tc_attn_rows *p);

/* y [rows, H] = LayerNorm(w[ids] + p[r % S] (+ t[seg])) with gamma g, beta b
 * (float32; ids and seg int64, in range; seg and t NULL without segments). */
int tc_cudak_embed_ln(void *stream, const long long *ids, const long long *seg, const float *w,
                      const float *p, const float *t, const float *g, const float *b, float *y,
                      long long rows, long long S, long long H, float eps);

/* y = x converted from dtype `from` to dtype `to` (1, 10 or 16), n elements. */
int tc_cudak_cast(void *stream, int from, int to, const void *x, void *y, long long n, int sms);

/* col [N, C * KH * KW, OH * OW] = the input pixels each kernel tap reads
 * for every output position (0 in the padding), NCHW input x. */
int tc_cudak_im2col(void *stream, int dtype, const void *x, void *col, const tc_im2col *p, int sms);

/* y [N, C, OH, OW] = MaxPool of x [N, C, H, W] with p's window (padding
 * never wins). */
int tc_cudak_maxpool(void *stream, int dtype, const void *x, void *y, const tc_im2col *p, int sms);
/* y [planes] = the mean of each of x's planes of len elements. */
int tc_cudak_gavgpool(void *stream, int dtype, const void *x, void *y, long long planes,
                      long long len);

#ifdef __cplusplus
}
#endif
#endif
