/* libtacort_cuda.so: libtacort's CUDA backend, its own shared object so that
 * CPU-only deployments need no CUDA library (libtacort loads it with dlopen
 * when a CUDA target is asked for; see docs/ARCHITECTURE.md). It links the
 * CUDA runtime and cuBLASLt and reaches the driver through them, so it loads
 * on machines without a GPU or driver and says so when opened.
 *
 * What it has so far: a device context (device, stream, cuBLASLt handle and
 * workspace), device memory and copies, the generated row kernels of a CUDA
 * kernel library (runtime/culib.h) launched with the geometry they were
 * generated for, and row-major GEMM / batched GEMM through cuBLASLt (fp32,
 * TF32, fp16, bf16; bias, ReLU and GELU epilogues) with the algorithm chosen
 * by measurement among cuBLASLt's heuristic candidates.
 *
 * Every function returns 0 on success; otherwise why says what failed
 * (with the CUDA or cuBLAS error's name). Nothing here exits or aborts. */
#ifndef TC_TACORT_CUDA_H
#define TC_TACORT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "culib.h"

#ifdef __cplusplus
extern "C" {
#endif

/* tc_cuda_open's return value when the machine has no usable CUDA device
 * (no driver, no GPU, or the driver is too old for this toolkit). */
#define TC_CUDA_NO_DEVICE 1

typedef struct tc_cuda tc_cuda;
typedef struct tc_cuda_kernels tc_cuda_kernels;

/* Opens device ordinal dev. TC_CUDA_NO_DEVICE (why: the runtime's reason)
 * when there is none; -1 on other errors. */
int tc_cuda_open(int dev, tc_cuda **out, char *why, size_t cap);
void tc_cuda_close(tc_cuda *c);
/* Makes c's device the calling thread's current one (CUDA keeps it per
 * thread): call before using c from a thread other than the one that
 * opened it. */
int tc_cuda_bind(tc_cuda *c, char *why, size_t cap);
/* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, 79.1 GiB" */
void tc_cuda_describe(const tc_cuda *c, char *buf, size_t cap);
/* The device's SM number (major * 10 + minor). */
unsigned tc_cuda_sm(const tc_cuda *c);

/* Device memory from the context's cache: blocks are kept by power-of-two
 * size class when freed and reused by later allocations (all work is on
 * the context's one stream, so reuse is ordered after earlier use); they
 * go back to CUDA when the context closes. bytes must be the size given to
 * tc_cuda_alloc. */
int tc_cuda_alloc(tc_cuda *c, size_t bytes, void **dev, char *why, size_t cap);
void tc_cuda_free(tc_cuda *c, void *dev, size_t bytes);
/* Copies on the context's stream; download waits for the copy. */
int tc_cuda_upload(tc_cuda *c, void *dev, const void *host, size_t bytes, char *why, size_t cap);
int tc_cuda_download(tc_cuda *c, void *host, const void *dev, size_t bytes, char *why, size_t cap);
/* Device-to-device copy on the context's stream. */
int tc_cuda_copy(tc_cuda *c, void *dst, const void *src, size_t bytes, char *why, size_t cap);
/* Waits for all work on the context's stream (and reports a kernel's
 * asynchronous failure). */
int tc_cuda_sync(tc_cuda *c, char *why, size_t cap);

/* Loads a CUDA kernel library (the bytes of a .tacocu file): the entry for
 * this device (tc_culib_pick), CUBIN or PTX. */
int tc_cuda_kernels_load(tc_cuda *c, const unsigned char *lib, size_t size, tc_cuda_kernels **out,
                         char *why, size_t cap);
void tc_cuda_kernels_free(tc_cuda_kernels *k);
/* Launches the kernel of spec sp (by sp->sym) over args->rows rows on the
 * context's stream, with the geometry of culib.h. */
int tc_cuda_row_launch(tc_cuda *c, tc_cuda_kernels *k, const tc_cg_spec *sp, const tc_cu_args *args,
                       char *why, size_t cap);

/* C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b] (+ bias) (act), row-major,
 * for b < batch: op(A) is [m, k], op(B) [k, n], C [m, n] with leading
 * dimensions k or m (A), n or k (B) and n (C), batches stride_* elements
 * apart. Row-major is computed as the column-major product of the
 * transposes (C^T = op(B)^T op(A)^T), so nothing is copied. Rows may be
 * strided (lda, ldb, ldc), e.g. one head of a [B, S, H * D] tensor. */
enum { TC_CUDA_EPI_NONE = 0, TC_CUDA_EPI_RELU = 1, TC_CUDA_EPI_GELU_TANH = 2 };
typedef struct tc_cuda_gemm {
  int dtype;   /* of A, B, C and bias: 1 float32, 10 float16, 16 bfloat16 */
  int c_dtype; /* of C when it differs (float32 C of float16 A and B); 0: dtype */
  int tf32;    /* float32 on TF32 tensor cores */
  int trans_a, trans_b;
  int64_t m, n, k, batch; /* batch 0 means 1 */
  int64_t lda, ldb, ldc;  /* row strides in elements; 0: packed (the row length) */
  int64_t stride_a, stride_b, stride_c;
  float alpha, beta;
  const void *bias; /* [n] or NULL, added before the activation */
  int epilogue;     /* TC_CUDA_EPI_* */
} tc_cuda_gemm;

/* y = a op b (op: 0 Add, 1 Sub, 2 Mul, 3 Div) over the output dims with
 * numpy broadcasting given as element strides of a and b (0 where one
 * broadcasts), rank at most 8; dtype 1, 10 or 16. */
int tc_cuda_binary(tc_cuda *c, int dtype, int op, const void *a, const void *b, void *y,
                   size_t rank, const int64_t *dims, const int64_t *sa, const int64_t *sb,
                   char *why, size_t cap);

/* ONNX Attention (3-D form, no past) on the device: Q [B, Sq, H * D],
 * K [B, Skv, H * D], V [B, Skv, H * Dv] -> Y [B, Sq, H * Dv]; scores
 * scale * Q K^T in float32 (cuBLASLt, float32 accumulation), plus the mask
 * and causal masking, softmax, then probabilities times V. */
typedef struct tc_cuda_attn {
  int dtype; /* of Q, K, V, Y and an additive mask */
  int64_t B, Sq, Skv, H, D, Dv;
  float scale;
  int mask_kind;      /* 0 none, 1 additive, 2 boolean (bytes, 0 masks) */
  int64_t mstride[4]; /* the mask's element strides over B, H, Sq, Skv (0: broadcast) */
  int causal;         /* Sq == Skv: mask key j > query i */
} tc_cuda_attn;
int tc_cuda_attention(tc_cuda *c, const tc_cuda_attn *p, const void *q, const void *k,
                      const void *v, const void *mask, void *y, char *why, size_t cap);

/* y = act(conv2d(x, w) + b + z) for NCHW x [N, C, H, W], w [M, C, KH, KW]
 * (one group), b [M] or NULL, z like y or NULL, y [N, M, OH, OW]; act is
 * TC_CUDA_EPI_NONE or TC_CUDA_EPI_RELU. im2col (skipped for 1x1 stride-1
 * unpadded kernels) then one strided-batched cuBLASLt GEMM over the images,
 * accumulating onto y prefilled with b (+ z), the ReLU as its epilogue. */
typedef struct tc_cuda_conv {
  int dtype;
  int64_t N, C, H, W, M, KH, KW, OH, OW;
  int64_t sh, sw, ph, pw, dh, dw;
  int act;
} tc_cuda_conv;
int tc_cuda_conv2d(tc_cuda *c, const tc_cuda_conv *p, const void *x, const void *w, const void *b,
                   const void *z, void *y, char *why, size_t cap);

/* MaxPool 2-D (NCHW, p's geometry as for a convolution with M unused, no
 * indices) and GlobalAveragePool (planes of len elements). */
int tc_cuda_maxpool(tc_cuda *c, const tc_cuda_conv *p, const void *x, void *y, char *why,
                    size_t cap);
int tc_cuda_gavgpool(tc_cuda *c, int dtype, const void *x, void *y, int64_t planes, int64_t len,
                     char *why, size_t cap);

/* Cast of n elements between float32, float16 and bfloat16 (dtypes 1, 10,
 * 16; round to nearest even). */
int tc_cuda_cast(tc_cuda *c, int from, int to, const void *x, void *y, size_t n, char *why,
                 size_t cap);

/* ai.tacoc.EmbedLayerNormalization[WithSegment]: y [B * S, H] =
 * LayerNorm(w[ids] + p[position] (+ t[seg])) * g + b, float32 tables, int64
 * ids the caller checked to be in range (seg and t NULL without segments). */
int tc_cuda_embed_ln(tc_cuda *c, const int64_t *ids, const int64_t *seg, const float *w,
                     const float *p, const float *t, const float *g, const float *b, float *y,
                     int64_t B, int64_t S, int64_t H, float eps, char *why, size_t cap);

/* A cuBLASLt algorithm, opaque here (cublasLtMatmulAlgo_t is 64 bytes). */
typedef struct tc_cuda_algo {
  uint64_t data[8];
  int valid;
  size_t workspace;
} tc_cuda_algo;

/* Runs g with algo; with NULL (or not valid): the algorithm the context's
 * search chose for g's signature (tc_cuda_set_gemm_search), measuring it on
 * first use, else cuBLASLt's first heuristic choice. */
int tc_cuda_gemm_run(tc_cuda *c, const tc_cuda_gemm *g, const void *a, const void *b, void *cc,
                     const tc_cuda_algo *algo, char *why, size_t cap);
/* From now on, the first GEMM of each signature (types, sizes, strides,
 * transposes, epilogue, operand alignment) times up to max_candidates of
 * cuBLASLt's heuristic algorithms on its own operands (the output into a
 * scratch copy, so beta != 0 stays right) and keeps the fastest for later
 * GEMMs of that signature; 0 turns it off. *searched / *best_us /
 * *first_us of tc_cuda_gemm_search_stats: signatures measured, the sum of
 * their chosen times and of the heuristic's first choices' times. */
void tc_cuda_set_gemm_search(tc_cuda *c, int max_candidates);
void tc_cuda_gemm_search_stats(const tc_cuda *c, size_t *searched, double *best_us,
                               double *first_us);

/* Times up to max_candidates of cuBLASLt's heuristic algorithms for g on
 * the given operands (C is overwritten) and returns the fastest in *best,
 * with how many were tried and the best and heuristic-first median times. */
typedef struct tc_cuda_gemm_tuning {
  int candidates;
  double best_us, first_us;
} tc_cuda_gemm_tuning;
int tc_cuda_gemm_tune(tc_cuda *c, const tc_cuda_gemm *g, const void *a, const void *b, void *cc,
                      int max_candidates, tc_cuda_algo *best, tc_cuda_gemm_tuning *info, char *why,
                      size_t cap);

#ifdef __cplusplus
}
#endif
#endif
