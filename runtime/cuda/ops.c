/* Ops of the CUDA backend built from its fixed kernels and cuBLASLt
 * (tacort_cuda.h): broadcasting binary elementwise ops and attention. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cuda_priv.h"
#include "kernels.h"

/* The kernels' view of a convolution or pooling window. */
static tc_im2col geometry(const tc_cuda_conv *p) {
  return (tc_im2col){.N = p->N,
                     .C = p->C,
                     .H = p->H,
                     .W = p->W,
                     .KH = p->KH,
                     .KW = p->KW,
                     .OH = p->OH,
                     .OW = p->OW,
                     .sh = p->sh,
                     .sw = p->sw,
                     .ph = p->ph,
                     .pw = p->pw,
                     .dh = p->dh,
                     .dw = p->dw};
}

static int launched(int err, const char *what, char *why, size_t cap) {
  return err ? tc_cuda_fail((cudaError_t)err, what, why, cap) : 0;
}

int tc_cuda_binary(tc_cuda *c, int dtype, int op, const void *a, const void *b, void *y,
                   size_t rank, const int64_t *dims, const int64_t *sa, const int64_t *sb,
                   char *why, size_t cap) {
  if (rank > 8) {
    snprintf(why, cap, "elementwise ops on the GPU take up to 8 dims, not %zu", rank);
    return -1;
  }
  long long d[8], xa[8], xb[8];
  for (size_t i = 0; i < rank; i++) {
    d[i] = dims[i];
    xa[i] = sa[i];
    xb[i] = sb[i];
  }
  return launched(tc_cudak_binary(c->stream, dtype, op, a, b, y, (int)rank, d, xa, xb,
                                  c->prop.multiProcessorCount),
                  "elementwise kernel", why, cap);
}

int tc_cuda_attention(tc_cuda *c, const tc_cuda_attn *p, const void *q, const void *k,
                      const void *v, const void *mask, void *y, char *why, size_t cap) {
  if (p->B <= 0 || p->Sq <= 0 || p->Skv <= 0 || p->H <= 0 || p->D <= 0 || p->Dv <= 0) {
    snprintf(why, cap, "attention sizes B=%lld Sq=%lld Skv=%lld H=%lld D=%lld Dv=%lld",
             (long long)p->B, (long long)p->Sq, (long long)p->Skv, (long long)p->H, (long long)p->D,
             (long long)p->Dv);
    return -1;
  }
  size_t esize = p->dtype == 1 ? 4 : 2, n_scores = (size_t)(p->B * p->H * p->Sq * p->Skv);
  void *scores = NULL, *probs = NULL;
  if (tc_cuda_alloc(c, n_scores * 4, &scores, why, cap) ||
      tc_cuda_alloc(c, n_scores * esize, &probs, why, cap)) {
    tc_cuda_free(c, scores, n_scores * 4);
    return -1;
  }
  int rc = 0;
  int64_t hd = p->H * p->D, hdv = p->H * p->Dv, per_b = p->H * p->Sq * p->Skv;
  /* scores[b, h] = scale * Q[b, :, h] K[b, :, h]^T: one strided batch of H heads per b */
  for (int64_t b = 0; b < p->B && !rc; b++) {
    tc_cuda_gemm g = {.dtype = p->dtype,
                      .c_dtype = 1,
                      .trans_b = 1,
                      .m = p->Sq,
                      .n = p->Skv,
                      .k = p->D,
                      .batch = p->H,
                      .lda = hd,
                      .ldb = hd,
                      .ldc = p->Skv,
                      .stride_a = p->D,
                      .stride_b = p->D,
                      .stride_c = p->Sq * p->Skv,
                      .alpha = p->scale};
    rc = tc_cuda_gemm_run(c, &g, (const char *)q + (size_t)(b * p->Sq * hd) * esize,
                          (const char *)k + (size_t)(b * p->Skv * hd) * esize,
                          (float *)scores + b * per_b, NULL, why, cap);
  }
  tc_attn_rows rows = {.B = p->B,
                       .H = p->H,
                       .Sq = p->Sq,
                       .Skv = p->Skv,
                       .mask_kind = mask ? p->mask_kind : 0,
                       .causal = p->causal};
  memcpy(rows.ms, p->mstride, sizeof rows.ms);
  if (!rc)
    rc = launched(tc_cudak_attn_softmax(c->stream, p->dtype, scores, mask, probs, &rows),
                  "attention softmax kernel", why, cap);
  /* Y[b, :, h] = probs[b, h] V[b, :, h] */
  for (int64_t b = 0; b < p->B && !rc; b++) {
    tc_cuda_gemm g = {.dtype = p->dtype,
                      .m = p->Sq,
                      .n = p->Dv,
                      .k = p->Skv,
                      .batch = p->H,
                      .lda = p->Skv,
                      .ldb = hdv,
                      .ldc = hdv,
                      .stride_a = p->Sq * p->Skv,
                      .stride_b = p->Dv,
                      .stride_c = p->Dv,
                      .alpha = 1};
    rc = tc_cuda_gemm_run(c, &g, (const char *)probs + (size_t)(b * per_b) * esize,
                          (const char *)v + (size_t)(b * p->Skv * hdv) * esize,
                          (char *)y + (size_t)(b * p->Sq * hdv) * esize, NULL, why, cap);
  }
  tc_cuda_free(c, scores, n_scores * 4);
  tc_cuda_free(c, probs, n_scores * esize);
  return rc;
}

int tc_cuda_embed_ln(tc_cuda *c, const int64_t *ids, const int64_t *seg, const float *w,
                     const float *p, const float *t, const float *g, const float *b, float *y,
                     int64_t B, int64_t S, int64_t H, float eps, char *why, size_t cap) {
  return launched(tc_cudak_embed_ln(c->stream, (const long long *)ids, (const long long *)seg, w, p,
                                    t, g, b, y, B * S, S, H, eps),
                  "embedding kernel", why, cap);
}

int tc_cuda_cast(tc_cuda *c, int from, int to, const void *x, void *y, size_t n, char *why,
                 size_t cap) {
  return launched(
      tc_cudak_cast(c->stream, from, to, x, y, (long long)n, c->prop.multiProcessorCount),
      "cast kernel", why, cap);
}

int tc_cuda_conv2d(tc_cuda *c, const tc_cuda_conv *p, const void *x, const void *w, const void *b,
                   const void *z, void *y, char *why, size_t cap) {
  size_t esize = p->dtype == 1 ? 4 : 2;
  int64_t P = p->OH * p->OW, K = p->C * p->KH * p->KW, ny = p->N * p->M * P;
  if (P <= 0 || K <= 0 || p->M <= 0 || p->N <= 0) {
    snprintf(why, cap, "convolution of empty size");
    return -1;
  }
  /* y starts as b (+ z): the GEMM accumulates onto it */
  int rc = 0;
  if (b || z) {
    int64_t dims[3] = {p->N, p->M, P}, full[3] = {p->M * P, P, 1}, row[3] = {0, 1, 0};
    if (!z) {
      cudaError_t e = cudaMemsetAsync(y, 0, (size_t)ny * esize, c->stream);
      if (e != cudaSuccess)
        return tc_cuda_fail(e, "clearing the convolution output", why, cap);
    }
    rc = b ? tc_cuda_binary(c, p->dtype, 0, z ? z : y, b, y, 3, dims, full, row, why, cap)
           : tc_cuda_copy(c, y, z, (size_t)ny * esize, why, cap);
    if (rc)
      return rc;
  }
  bool direct = p->KH == 1 && p->KW == 1 && p->sh == 1 && p->sw == 1 && !p->ph && !p->pw &&
                p->OH == p->H && p->OW == p->W;
  void *col = NULL;
  size_t col_bytes = direct ? 0 : (size_t)(p->N * K * P) * esize;
  if (!direct) {
    if (tc_cuda_alloc(c, col_bytes, &col, why, cap))
      return -1;
    tc_im2col g = geometry(p);
    rc = launched(tc_cudak_im2col(c->stream, p->dtype, x, col, &g, c->prop.multiProcessorCount),
                  "im2col kernel", why, cap);
  }
  if (!rc) {
    /* per image: y [M, P] (+)= w [M, K] col [K, P]; w shared by every image */
    tc_cuda_gemm g = {.dtype = p->dtype,
                      .m = p->M,
                      .n = P,
                      .k = K,
                      .batch = p->N,
                      .stride_a = 0,
                      .stride_b = K * P,
                      .stride_c = p->M * P,
                      .alpha = 1,
                      .beta = b || z ? 1.0f : 0.0f,
                      .epilogue = p->act};
    rc = tc_cuda_gemm_run(c, &g, w, direct ? x : col, y, NULL, why, cap);
  }
  tc_cuda_free(c, col, col_bytes);
  return rc;
}

int tc_cuda_maxpool(tc_cuda *c, const tc_cuda_conv *p, const void *x, void *y, char *why,
                    size_t cap) {
  tc_im2col g = geometry(p);
  return launched(tc_cudak_maxpool(c->stream, p->dtype, x, y, &g, c->prop.multiProcessorCount),
                  "max-pool kernel", why, cap);
}

int tc_cuda_gavgpool(tc_cuda *c, int dtype, const void *x, void *y, int64_t planes, int64_t len,
                     char *why, size_t cap) {
  return launched(tc_cudak_gavgpool(c->stream, dtype, x, y, planes, len),
                  "global average pool kernel", why, cap);
}
