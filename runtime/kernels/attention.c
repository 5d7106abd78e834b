/* attention kernels: Attention (scaled dot-product attention with masks,
 * grouped-query heads, KV cache, soft cap and sliding windows),
 * RotaryEmbedding, Swish, SwiGLU.
 *
 * Everything is computed in double, rounding to the tensor's dtype at the
 * points where the ONNX reference implementation computes in that dtype
 * (scaled Q and K, the QK product, soft cap, softmax), so that 16-bit inputs
 * give the reference's results and not merely close ones. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

/* ---- shared helpers ---- */

static const char *node_name(const tc_node *n) { return n->name ? n->name : ""; }

/* Refuses every attribute of n not listed in allowed (NULL-terminated). */
static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

static bool has_input(const tc_node *n, size_t i) { return i < n->n_inputs && n->inputs[i]; }
static bool has_output(const tc_node *n, size_t i) { return i < n->n_outputs && n->outputs[i]; }

static void *scratch(tc_kernel_ctx *k, size_t n, size_t elem) {
  return tc_arena_alloc(k->arena, n ? n * elem : 1);
}

#define NOMEM(k) tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory")

/* v rounded to dtype dt (what numpy computing in dt would hold). */
static double round_to(int32_t dt, double v) {
  switch (dt) {
  case TC_DTYPE_F32: return (double)(float)v;
  case TC_DTYPE_F16: return (double)tc_f16_to_f32(tc_f32_to_f16((float)v));
  case TC_DTYPE_BF16: return (double)tc_bf16_to_f32(tc_f32_to_bf16((float)v));
  default: return v;
  }
}

/* ---- Attention ---- */

enum { ATT_Q, ATT_K, ATT_V, ATT_MASK, ATT_PAST_K, ATT_PAST_V, ATT_NONPAD };

static tc_status check_attention(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v23[] = {
      "is_causal", "kv_num_heads", "q_num_heads",       "qk_matmul_output_mode",
      "scale",     "softcap",      "softmax_precision", NULL};
  static const char *const v25[] = {
      "is_causal", "kv_num_heads",      "q_num_heads",      "qk_matmul_output_mode", "scale",
      "softcap",   "softmax_precision", "left_window_size", "right_window_size",     NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, opset >= 25 ? v25 : v23);
  if (st)
    return st;
  int64_t mode = tc_attr_int(n, "qk_matmul_output_mode", 0);
  if (mode < 0 || mode > 3)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "qk_matmul_output_mode %lld is not supported", (long long)mode);
  if (tc_attr_has(n, "softmax_precision")) {
    int64_t sp = tc_attr_int(n, "softmax_precision", 1);
    if (sp != TC_DTYPE_F32 && sp != TC_DTYPE_F16 && sp != TC_DTYPE_F64 && sp != TC_DTYPE_BF16)
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                         "softmax_precision %lld is not supported", (long long)sp);
  }
  if (tc_attr_int(n, "left_window_size", -1) < -1 || tc_attr_int(n, "right_window_size", -1) < -1)
    return tc_diag_set(diag, TC_STATUS_INVALID, node_name(n), n->op_type,
                       "window sizes must be -1 or nonnegative");
  if (has_input(n, ATT_PAST_K) != has_input(n, ATT_PAST_V))
    return tc_diag_set(diag, TC_STATUS_INVALID, node_name(n), n->op_type,
                       "past_key and past_value must be given together");
  if (has_input(n, ATT_NONPAD) && has_input(n, ATT_PAST_K))
    return tc_diag_set(diag, TC_STATUS_INVALID, node_name(n), n->op_type,
                       "nonpad_kv_seqlen cannot be combined with past_key/past_value");
  return TC_STATUS_OK;
}

/* Element strides of a Q/K/V/Y tensor seen as (batch, heads, seq, head):
 * 4-D tensors are that layout, 3-D ones are (batch, seq, heads * head). */
typedef struct bhsd {
  size_t B, H, S, D;
  size_t sb, sh, ss;
} bhsd;

static void bhsd_set(bhsd *v, bool three_d, size_t B, size_t H, size_t S, size_t D) {
  v->B = B;
  v->H = H;
  v->S = S;
  v->D = D;
  if (three_d) {
    v->sb = S * H * D;
    v->sh = D;
    v->ss = H * D;
  } else {
    v->sb = H * S * D;
    v->sh = S * D;
    v->ss = D;
  }
}

static size_t bhsd_at(const bhsd *v, size_t b, size_t h, size_t s) {
  return b * v->sb + h * v->sh + s * v->ss;
}

/* Reads a Q/K/V input of the given rank as (batch, heads, seq, head). */
static tc_status att_view(tc_kernel_ctx *k, const tc_rt_tensor *t, const char *what, int64_t heads,
                          bhsd *v) {
  if (t->rank == 4) {
    bhsd_set(v, false, (size_t)t->dims[0], (size_t)t->dims[1], (size_t)t->dims[2],
             (size_t)t->dims[3]);
    return TC_STATUS_OK;
  }
  if (heads <= 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "3-D inputs need q_num_heads and kv_num_heads attributes");
  if (t->dims[2] % heads != 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "%s hidden size %lld is not divisible by %lld heads", what,
                          (long long)t->dims[2], (long long)heads);
  bhsd_set(v, true, (size_t)t->dims[0], (size_t)heads, (size_t)t->dims[1],
           (size_t)(t->dims[2] / heads));
  return TC_STATUS_OK;
}

/* Mask broadcast to (B, Hq, Sq, L): right-aligned, last dim padded. */
typedef struct mask_view {
  const tc_rt_tensor *t;
  bool is_bool;
  int64_t last; /* mask's kv length (positions past it are masked) */
  int64_t strides[4];
} mask_view;

static tc_status mask_init(tc_kernel_ctx *k, mask_view *m, const tc_rt_tensor *t,
                           const int64_t full[4]) {
  m->t = t;
  if (!t)
    return TC_STATUS_OK;
  m->is_bool = t->dtype == TC_DTYPE_BOOL;
  switch (t->dtype) {
  case TC_DTYPE_BOOL:
  case TC_DTYPE_U8:
  case TC_DTYPE_U16:
  case TC_DTYPE_U32:
  case TC_DTYPE_U64:
  case TC_DTYPE_I8:
  case TC_DTYPE_I16:
  case TC_DTYPE_I32:
  case TC_DTYPE_I64:
  case TC_DTYPE_F16:
  case TC_DTYPE_BF16:
  case TC_DTYPE_F32:
  case TC_DTYPE_F64: break;
  default: return tc_kernel_bad_dtype(k, ATT_MASK, t->dtype);
  }
  if (t->rank < 1 || t->rank > 4)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "attn_mask must have rank 1 to 4 (has %zu)",
                          t->rank);
  m->last = t->dims[t->rank - 1];
  if (m->last > full[3])
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "attn_mask's last dim %lld exceeds the key sequence length %lld",
                          (long long)m->last, (long long)full[3]);
  int64_t stride = 1;
  for (size_t d = 4; d-- > 0;) {
    size_t back = 3 - d; /* position counted from the last dim */
    if (back >= t->rank) {
      m->strides[d] = 0;
      continue;
    }
    int64_t v = t->dims[t->rank - 1 - back];
    if (d < 3 && v != 1 && v != full[d])
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "attn_mask dim %zu (%lld) does not broadcast to %lld",
                            t->rank - 1 - back, (long long)v, (long long)full[d]);
    m->strides[d] = (d < 3 && v == 1) ? 0 : stride;
    stride *= v;
  }
  return TC_STATUS_OK;
}

/* Additive mask term at (b, h, i, j). */
static double mask_get(const mask_view *m, size_t b, size_t h, size_t i, size_t j) {
  if ((int64_t)j >= m->last)
    return -INFINITY;
  size_t off = b * (size_t)m->strides[0] + h * (size_t)m->strides[1] + i * (size_t)m->strides[2] +
               j * (size_t)m->strides[3];
  if (m->is_bool)
    return ((const uint8_t *)m->t->data)[off] ? 0.0 : -INFINITY;
  return tc_rt_get_f64(m->t, off);
}

/* sum of a[j] * b[j * bstep], accumulated in double. */
static double dot(const double *a, const double *b, size_t bstep, size_t n) {
  double acc = 0;
  for (size_t j = 0; j < n; j++)
    acc += a[j] * b[j * bstep];
  return acc;
}

/* Everything one (batch, query head) pair of Attention needs. */
typedef struct att_job {
  const double *Qs, *Kall, *Vall; /* scaled Q, present K (scaled) and V, as double */
  const mask_view *mv;
  const tc_rt_tensor *nonpad;
  tc_rt_tensor *y, *qk_out;
  bhsd Yv;
  size_t Hq, Hkv, Sq, L, D, Dv, P;
  int32_t T, sp;
  int64_t mode;
  bool causal;
  int64_t lw, rw;
  double cap;
  double *rows; /* 4 * L doubles per piece */
} att_job;

/* Output rows of pair bh = b * Hq + h. */
static void att_pair(const att_job *jb, size_t bh, double *row, double *bias, double *prob,
                     double *raw) {
  size_t Hq = jb->Hq, Sq = jb->Sq, L = jb->L, D = jb->D, Dv = jb->Dv, Hkv = jb->Hkv;
  size_t b = bh / Hq, h = bh % Hq, hk = h / (Hq / Hkv);
  int32_t T = jb->T, sp = jb->sp;
  const mask_view *mv = jb->mv;
  const tc_rt_tensor *nonpad = jb->nonpad;
  bool window = jb->lw >= 0 || jb->rw >= 0;
  /* offset of the query block: valid keys preceding it */
  int64_t off = nonpad ? tc_rt_get_i64(nonpad, b) - (int64_t)Sq : (int64_t)jb->P;
  int64_t valid = nonpad ? tc_rt_get_i64(nonpad, b) : (int64_t)L;
  for (size_t i = 0; i < Sq; i++) {
    const double *qd = jb->Qs + ((b * Hq + h) * Sq + i) * D;
    /* additive bias and whether it masks the whole row */
    bool all_masked = L > 0;
    for (size_t j = 0; j < L; j++) {
      double bv = mv->t ? mask_get(mv, b, h, i, j) : 0.0;
      int64_t diff = (int64_t)i + off - (int64_t)j;
      if (jb->causal && diff < 0)
        bv += -INFINITY;
      if (window && ((jb->lw >= 0 && diff > jb->lw) || (jb->rw >= 0 && -diff > jb->rw)))
        bv += -INFINITY;
      if (nonpad && (int64_t)j >= valid)
        bv += -INFINITY;
      bias[j] = bv;
      if (!(isinf(bv) && bv < 0))
        all_masked = false;
    }
    /* scores */
    double m = -INFINITY;
    for (size_t j = 0; j < L; j++) {
      const double *kd = jb->Kall + ((b * Hkv + hk) * L + j) * D;
      double x = round_to(T, dot(qd, kd, 1, D));
      if (jb->cap > 0)
        x = round_to(T, round_to(T, tanh(round_to(T, x / jb->cap))) * jb->cap);
      raw[j] = x;
      double xb = round_to(sp, round_to(T, x + bias[j]));
      row[j] = xb;
      if (!isnan(m) && (isnan(xb) || xb > m))
        m = xb;
    }
    /* softmax in the softmax precision (a row of -inf gives zeros) */
    double sm = (isinf(m) && m < 0) ? 0.0 : m, sum = 0;
    for (size_t j = 0; j < L; j++) {
      prob[j] = round_to(sp, exp(round_to(sp, row[j] - sm)));
      /* bfloat16 (ml_dtypes) reduces in bfloat16, a rounding per step */
      sum = sp == TC_DTYPE_BF16 ? round_to(sp, sum + prob[j]) : sum + prob[j];
    }
    sum = round_to(sp, sum);
    if (sum == 0)
      sum = 1;
    for (size_t j = 0; j < L; j++)
      prob[j] = all_masked ? 0.0 : round_to(T, round_to(sp, prob[j] / sum));
    if (jb->qk_out) {
      size_t base = ((b * Hq + h) * Sq + i) * L;
      for (size_t j = 0; j < L; j++) {
        double o = jb->mode == 3 ? prob[j] : jb->mode == 2 ? round_to(T, raw[j] + bias[j]) : raw[j];
        tc_rt_set_f64(jb->qk_out, base + j, o);
      }
    }
    size_t yo = bhsd_at(&jb->Yv, b, h, i);
    for (size_t d = 0; d < Dv; d++) {
      const double *vd = jb->Vall + (b * Hkv + hk) * L * Dv + d;
      tc_rt_set_f64(jb->y, yo + d, dot(prob, vd, Dv, L));
    }
  }
}

static void att_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  const att_job *jb = ctx;
  double *r = jb->rows + piece * 4 * jb->L;
  for (size_t bh = lo; bh < hi; bh++)
    att_pair(jb, bh, r, r + jb->L, r + 2 * jb->L, r + 3 * jb->L);
}

/* ---- float32 fast path: per (batch, head) pair, gather the head's Q, K and
 * V rows contiguously, scores = Q K^T and Y = P V through oneDNN sgemm, the
 * masked softmax in float. Same semantics as the reference (which works in
 * double with every rounding of the spec); used for float32 without softcap,
 * windows, nonpad lengths or the qk output. */
typedef struct att32_job {
  const float *q, *k, *v, *pk, *pv;
  const mask_view *mv;
  float *y, *present_k, *present_v;
  bhsd Qv, Kv, Vv, Yv;
  size_t Hq, Hkv, Sq, S, P, L, D, Dv;
  float scale;
  bool causal;
  float *buf; /* per piece: Sq*D + L*D + L*Dv + Sq*L + Sq*Dv floats */
  size_t per_piece;
} att32_job;

static void att32_softmax(const att32_job *jb, size_t b, size_t h, float *sc, size_t i0,
                          size_t rows, float *inv);

/* Query rows per block of att32_pair_inplace: scores of at most
 * ATT_BLOCK_FLOATS floats, at most ATT_MAX_ROWS rows. */
enum { ATT_BLOCK_FLOATS = 131072, ATT_MAX_ROWS = 512 };

/* Without past keys and values the heads are multiplied where they lie (row
 * strides of Q, K, V and Y), the scale folded into Q K^T: no gathers. From
 * ATT_KT_MIN_KEYS keys K is transposed once into kt [D, L] (L * D floats):
 * oneDNN's sgemm runs Q K^T at 73-87 GFLOP/s with K as a transposed operand
 * and at 94-97 with K^T plain (M = 88-165 query rows, K = 64, 799-1500
 * keys, 1 thread; at 128-512 keys the two are within 5%). */
enum { ATT_KT_MIN_KEYS = 640 };
static bool att32_pair_inplace(const att32_job *jb, size_t b, size_t h, size_t hk, float *kt,
                               float *sc) {
  size_t Sq = jb->Sq, L = jb->L, D = jb->D, Dv = jb->Dv;
  const float *qh = jb->q + bhsd_at(&jb->Qv, b, h, 0), *kh = jb->k + bhsd_at(&jb->Kv, b, hk, 0),
              *vh = jb->v + bhsd_at(&jb->Vv, b, hk, 0);
  float *yh = jb->y + bhsd_at(&jb->Yv, b, h, 0);
  /* query rows in blocks whose scores (512 KiB) stay in L2 for the softmax
   * and P V, large enough for sgemm's efficiency at K = D (wav2vec2-base
   * shapes, 799 frames, 12 heads of 64, 1 thread: Q K^T 77 GFLOP/s with
   * 83-row blocks, 90 with 165). The softmax leaves its rows unnormalized
   * and the rows of P V are scaled instead: Dv products per row, not L. */
  size_t R = L ? (ATT_BLOCK_FLOATS + L - 1) / L : Sq;
  R = R < ATT_MAX_ROWS ? R : ATT_MAX_ROWS;
  float inv[ATT_MAX_ROWS];
  bool transpose = L >= ATT_KT_MIN_KEYS;
  for (size_t j0 = 0; transpose && j0 < L; j0 += 16) /* 16 keys at a time: reads stay in L1 */
    for (size_t d = 0; d < D; d++)
      for (size_t j = j0; j < L && j < j0 + 16; j++)
        kt[d * L + j] = kh[j * jb->Kv.ss + d];
  for (size_t i0 = 0; i0 < Sq; i0 += R) {
    size_t r = Sq - i0 < R ? Sq - i0 : R;
    if (!(transpose ? tc_sgemm_ld(false, false, r, L, D, jb->scale, qh + i0 * jb->Qv.ss, jb->Qv.ss,
                                  kt, L, sc, L)
                    : tc_sgemm_ld(false, true, r, L, D, jb->scale, qh + i0 * jb->Qv.ss, jb->Qv.ss,
                                  kh, jb->Kv.ss, sc, L)))
      return false;
    att32_softmax(jb, b, h, sc, i0, r, inv);
    float *y0 = yh + i0 * jb->Yv.ss;
    if (!tc_sgemm_ld(false, false, r, Dv, L, 1.0f, sc, L, vh, jb->Vv.ss, y0, jb->Yv.ss))
      return false;
    for (size_t i = 0; i < r; i++)
      tc_vscale_f32(y0 + i * jb->Yv.ss, Dv, inv[i]);
  }
  if (jb->present_k && h % (jb->Hq / jb->Hkv) == 0)
    for (size_t j = 0; j < L; j++) {
      memcpy(jb->present_k + ((b * jb->Hkv + hk) * L + j) * D, kh + j * jb->Kv.ss,
             D * sizeof(float));
      memcpy(jb->present_v + ((b * jb->Hkv + hk) * L + j) * Dv, vh + j * jb->Vv.ss,
             Dv * sizeof(float));
    }
  return true;
}

static void att32_pair(const att32_job *jb, size_t bh, float *buf) {
  size_t Hq = jb->Hq, Sq = jb->Sq, L = jb->L, D = jb->D, Dv = jb->Dv, P = jb->P;
  size_t b = bh / Hq, h = bh % Hq, hk = h / (Hq / jb->Hkv);
  float *qb = buf, *kb = qb + Sq * D, *vb = kb + L * D, *sc = vb + L * Dv, *ob = sc + Sq * L;
  if (P == 0 && att32_pair_inplace(jb, b, h, hk, kb, sc))
    return;
  for (size_t i = 0; i < Sq; i++) {
    const float *src = jb->q + bhsd_at(&jb->Qv, b, h, i);
    for (size_t d = 0; d < D; d++)
      qb[i * D + d] = src[d] * jb->scale;
  }
  for (size_t j = 0; j < L; j++) {
    const float *ks =
        j < P ? jb->pk + ((b * jb->Hkv + hk) * P + j) * D : jb->k + bhsd_at(&jb->Kv, b, hk, j - P);
    const float *vs =
        j < P ? jb->pv + ((b * jb->Hkv + hk) * P + j) * Dv : jb->v + bhsd_at(&jb->Vv, b, hk, j - P);
    memcpy(kb + j * D, ks, D * sizeof *kb);
    memcpy(vb + j * Dv, vs, Dv * sizeof *vb);
  }
  if (!tc_sgemm(false, true, Sq, L, D, qb, kb, sc)) {
    for (size_t i = 0; i < Sq; i++)
      for (size_t j = 0; j < L; j++) {
        float acc = 0;
        for (size_t d = 0; d < D; d++)
          acc += qb[i * D + d] * kb[j * D + d];
        sc[i * L + j] = acc;
      }
  }
  att32_softmax(jb, b, h, sc, 0, Sq, NULL);
  if (!tc_sgemm(false, false, Sq, Dv, L, sc, vb, ob)) {
    for (size_t i = 0; i < Sq; i++)
      for (size_t d = 0; d < Dv; d++) {
        float acc = 0;
        for (size_t j = 0; j < L; j++)
          acc += sc[i * L + j] * vb[j * Dv + d];
        ob[i * Dv + d] = acc;
      }
  }
  for (size_t i = 0; i < Sq; i++)
    memcpy(jb->y + bhsd_at(&jb->Yv, b, h, i), ob + i * Dv, Dv * sizeof *ob);
  if (jb->present_k && h % (Hq / jb->Hkv) == 0) {
    memcpy(jb->present_k + (b * jb->Hkv + hk) * L * D, kb, L * D * sizeof *kb);
    memcpy(jb->present_v + (b * jb->Hkv + hk) * L * Dv, vb, L * Dv * sizeof *vb);
  }
}

/* The masked softmax of head (b, h)'s scores of query rows [i0, i0 + rows),
 * sc [rows, L], in place; with inv, the rows are left unnormalized and
 * inv[i - i0] is what row i is to be multiplied by (1 / its sum, 1 for a
 * row of zeros). */
static void att32_softmax(const att32_job *jb, size_t b, size_t h, float *sc, size_t i0,
                          size_t rows, float *inv) {
  size_t L = jb->L, P = jb->P;
  for (size_t i = i0; i < i0 + rows; i++) {
    float *row = sc + (i - i0) * L;
    const mask_view *mv = jb->mv;
    /* A float32 mask row is read directly (strides already broadcast). */
    const float *mrow = NULL;
    if (mv->t && mv->t->dtype == TC_DTYPE_F32 && mv->last == (int64_t)L && mv->strides[3] == 1)
      mrow = (const float *)mv->t->data + b * (size_t)mv->strides[0] + h * (size_t)mv->strides[1] +
             i * (size_t)mv->strides[2];
    if (mrow) {
      tc_vadd_inplace_f32(row, mrow, L);
    } else if (mv->t) {
      for (size_t j = 0; j < L; j++)
        row[j] += (float)mask_get(mv, b, h, i, j);
    }
    if (jb->causal)
      for (size_t j = i + P + 1; j < L; j++)
        row[j] = -INFINITY;
    float m = tc_vmax_f32(row, L);
    if (isinf(m) && m < 0) { /* every key masked: zeros, as the reference */
      memset(row, 0, L * sizeof *row);
      if (inv)
        inv[i - i0] = 1;
      continue;
    }
    float sum = tc_vexp_sub_sum_f32(row, row, L, m);
    if (inv)
      inv[i - i0] = 1.0f / sum;
    else
      tc_vscale_f32(row, L, 1.0f / sum);
  }
}

static void att32_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  const att32_job *jb = ctx;
  for (size_t bh = lo; bh < hi; bh++)
    att32_pair(jb, bh, jb->buf + piece * jb->per_piece);
}

static tc_status run_attention(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  const tc_node *n = k->node;
  const tc_rt_tensor *q = input(in, n_in, ATT_Q), *kk = input(in, n_in, ATT_K),
                     *v = input(in, n_in, ATT_V), *mask = input(in, n_in, ATT_MASK),
                     *pk = input(in, n_in, ATT_PAST_K), *pv = input(in, n_in, ATT_PAST_V),
                     *nonpad = input(in, n_in, ATT_NONPAD);
  if (!q || !kk || !v)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Q, K and V are required");
  if (!tc_dtype_is_float(q->dtype))
    return tc_kernel_bad_dtype(k, ATT_Q, q->dtype);
  if (kk->dtype != q->dtype)
    return tc_kernel_bad_dtype(k, ATT_K, kk->dtype);
  if (!tc_dtype_is_float(v->dtype))
    return tc_kernel_bad_dtype(k, ATT_V, v->dtype);
  if (!pk != !pv)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "past_key and past_value must be given together");
  if (pk && pk->dtype != kk->dtype)
    return tc_kernel_bad_dtype(k, ATT_PAST_K, pk->dtype);
  if (pv && pv->dtype != v->dtype)
    return tc_kernel_bad_dtype(k, ATT_PAST_V, pv->dtype);
  if (nonpad && nonpad->dtype != TC_DTYPE_I64)
    return tc_kernel_bad_dtype(k, ATT_NONPAD, nonpad->dtype);
  if (nonpad && pk)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "nonpad_kv_seqlen cannot be combined with past_key/past_value");
  if ((q->rank != 3 && q->rank != 4) || kk->rank != q->rank || v->rank != q->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Q, K and V must all be 3-D or all 4-D");
  bool three_d = q->rank == 3;
  int64_t qh_attr = tc_attr_int(n, "q_num_heads", 0), kvh_attr = tc_attr_int(n, "kv_num_heads", 0);
  bhsd Qv, Kv, Vv;
  tc_status st;
  if ((st = att_view(k, q, "Q", qh_attr, &Qv)) || (st = att_view(k, kk, "K", kvh_attr, &Kv)) ||
      (st = att_view(k, v, "V", kvh_attr, &Vv)))
    return st;
  size_t B = Qv.B, Hq = Qv.H, Sq = Qv.S, D = Qv.D, Hkv = Kv.H, S = Kv.S, Dv = Vv.D;
  if (Kv.B != B || Vv.B != B)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Q, K and V disagree on the batch size");
  if (Kv.D != D)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Q and K head sizes differ (%zu vs %zu)", D, Kv.D);
  if (Vv.H != Hkv || Vv.S != S)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "K and V disagree on heads or sequence length");
  if (Hkv == 0 || Hq % Hkv != 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "q_num_heads (%zu) is not a multiple of kv_num_heads (%zu)", Hq, Hkv);
  size_t P = 0;
  if (pk) {
    if (pk->rank != 4 || pv->rank != 4 || (size_t)pk->dims[0] != B || (size_t)pk->dims[1] != Hkv ||
        (size_t)pk->dims[3] != D || (size_t)pv->dims[0] != B || (size_t)pv->dims[1] != Hkv ||
        pv->dims[2] != pk->dims[2] || (size_t)pv->dims[3] != Dv)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "past_key/past_value must be (batch, kv_heads, past, head) tensors");
    P = (size_t)pk->dims[2];
  }
  size_t L = P + S;
  if (nonpad && (nonpad->rank != 1 || (size_t)nonpad->dims[0] != B))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "nonpad_kv_seqlen must have shape (batch,)");
  int64_t full[4] = {(int64_t)B, (int64_t)Hq, (int64_t)Sq, (int64_t)L};
  mask_view mv = {0};
  if ((st = mask_init(k, &mv, mask, full)))
    return st;

  int32_t T = q->dtype;
  int32_t sp = (int32_t)tc_attr_int(n, "softmax_precision", T);
  int64_t mode = tc_attr_int(n, "qk_matmul_output_mode", 0);
  bool causal = tc_attr_int(n, "is_causal", 0) != 0;
  int64_t lw = tc_attr_int(n, "left_window_size", -1), rw = tc_attr_int(n, "right_window_size", -1);
  double cap = tc_attr_has(n, "softcap") ? (double)tc_attr_float(n, "softcap", 0.0f) : 0.0;
  double scale =
      tc_attr_has(n, "scale") ? (double)tc_attr_float(n, "scale", 1.0f) : 1.0 / sqrt((double)D);
  double s = round_to(T, sqrt(scale));

  bool presents = has_output(n, 1) || (n_out > 2 && has_output(n, 2));
  /* bfloat16 or float16 Q, K, V (float32 softmax, no past or present): the
   * float32 kernel on float32 copies, the output rounded once */
  bool half = tc_dtype_is_half(T) && kk->dtype == T && v->dtype == T && !pk && !presents;
  if (tc_fast_kernels_enabled() && ((T == TC_DTYPE_F32 && v->dtype == TC_DTYPE_F32) || half) &&
      sp == TC_DTYPE_F32 && cap == 0 && !nonpad && lw < 0 && rw < 0 &&
      !(n_out > 3 && has_output(n, 3)) && (!presents || (has_output(n, 1) && has_output(n, 2)))) {
    bhsd Yv;
    bhsd_set(&Yv, three_d, B, Hq, Sq, Dv);
    int64_t yd3[3] = {(int64_t)B, (int64_t)Sq, (int64_t)(Hq * Dv)},
            yd4[4] = {(int64_t)B, (int64_t)Hq, (int64_t)Sq, (int64_t)Dv};
    if ((st = tc_kernel_alloc_uninit(k, &out[0], T, three_d ? 3 : 4, three_d ? yd3 : yd4)))
      return st;
    const float *qf = q->data, *kf = kk->data, *vf = v->data;
    float *yf = out[0].data;
    tc_rt_tensor mask32;
    if (half) {
      float *c[4] = {scratch(k, tc_rt_numel(q), sizeof(float)),
                     scratch(k, tc_rt_numel(kk), sizeof(float)),
                     scratch(k, tc_rt_numel(v), sizeof(float)),
                     scratch(k, tc_rt_numel(&out[0]), sizeof(float))};
      if (!c[0] || !c[1] || !c[2] || !c[3])
        return NOMEM(k);
      tc_vhalf_to_f32(T, c[0], q->data, tc_rt_numel(q));
      tc_vhalf_to_f32(T, c[1], kk->data, tc_rt_numel(kk));
      tc_vhalf_to_f32(T, c[2], v->data, tc_rt_numel(v));
      qf = c[0], kf = c[1], vf = c[2], yf = c[3];
      if (mask && tc_dtype_is_half(mask->dtype)) { /* read as float32 rows */
        mask32 = *mask;
        mask32.dtype = TC_DTYPE_F32;
        if (!(mask32.data = scratch(k, tc_rt_numel(mask), sizeof(float))))
          return NOMEM(k);
        tc_vhalf_to_f32(mask->dtype, mask32.data, mask->data, tc_rt_numel(mask));
        if ((st = mask_init(k, &mv, &mask32, full)))
          return st;
      }
    }
    att32_job jb = {.q = qf,
                    .k = kf,
                    .v = vf,
                    .pk = pk ? pk->data : NULL,
                    .pv = pv ? pv->data : NULL,
                    .mv = &mv,
                    .y = yf,
                    .Qv = Qv,
                    .Kv = Kv,
                    .Vv = Vv,
                    .Yv = Yv,
                    .Hq = Hq,
                    .Hkv = Hkv,
                    .Sq = Sq,
                    .S = S,
                    .P = P,
                    .L = L,
                    .D = D,
                    .Dv = Dv,
                    .scale = (float)scale,
                    .causal = causal};
    if (presents) {
      int64_t kd[4] = {(int64_t)B, (int64_t)Hkv, (int64_t)L, (int64_t)D},
              vd[4] = {(int64_t)B, (int64_t)Hkv, (int64_t)L, (int64_t)Dv};
      if ((st = tc_kernel_alloc_uninit(k, &out[1], T, 4, kd)) ||
          (st = tc_kernel_alloc_uninit(k, &out[2], T, 4, vd)))
        return st;
      jb.present_k = out[1].data;
      jb.present_v = out[2].data;
    }
    jb.per_piece = Sq * D + L * D + L * Dv + Sq * L + Sq * Dv;
    size_t grain = tc_parallel_grain(Sq * L * (D + Dv + 8));
    size_t pieces = tc_parallel_pieces(B * Hq, grain);
    if (!(jb.buf = scratch(k, pieces * jb.per_piece, sizeof(float))))
      return NOMEM(k);
    if (pieces > 1)
      tc_parallel_for(B * Hq, grain, att32_piece, &jb);
    else
      att32_piece(&jb, 0, 0, B * Hq);
    if (half)
      tc_vf32_to_half(T, out[0].data, yf, tc_rt_numel(&out[0]));
    return TC_STATUS_OK;
  }

  /* present key / value: past followed by the new tokens, (B, Hkv, L, *) */
  size_t nk = B * Hkv * L * D, nv = B * Hkv * L * Dv;
  double *Kall = scratch(k, nk, sizeof(double)), *Vall = scratch(k, nv, sizeof(double));
  size_t qn = B * Hq * Sq * D;
  double *Qs = scratch(k, qn, sizeof(double));
  if (!Kall || !Vall || !Qs)
    return NOMEM(k);
  for (size_t b = 0; b < B; b++)
    for (size_t h = 0; h < Hkv; h++)
      for (size_t j = 0; j < L; j++) {
        double *kd = Kall + ((b * Hkv + h) * L + j) * D, *vd = Vall + ((b * Hkv + h) * L + j) * Dv;
        if (j < P) {
          size_t ko = ((b * Hkv + h) * P + j) * D, vo = ((b * Hkv + h) * P + j) * Dv;
          for (size_t d = 0; d < D; d++)
            kd[d] = tc_rt_get_f64(pk, ko + d);
          for (size_t d = 0; d < Dv; d++)
            vd[d] = tc_rt_get_f64(pv, vo + d);
        } else {
          size_t ko = bhsd_at(&Kv, b, h, j - P), vo = bhsd_at(&Vv, b, h, j - P);
          for (size_t d = 0; d < D; d++)
            kd[d] = tc_rt_get_f64(kk, ko + d);
          for (size_t d = 0; d < Dv; d++)
            vd[d] = tc_rt_get_f64(v, vo + d);
        }
      }
  if (has_output(n, 1)) {
    int64_t pd[4] = {(int64_t)B, (int64_t)Hkv, (int64_t)L, (int64_t)D};
    if ((st = tc_kernel_alloc(k, &out[1], kk->dtype, 4, pd)))
      return st;
    for (size_t i = 0; i < nk; i++)
      tc_rt_set_f64(&out[1], i, Kall[i]);
  }
  if (n_out > 2 && has_output(n, 2)) {
    int64_t pd[4] = {(int64_t)B, (int64_t)Hkv, (int64_t)L, (int64_t)Dv};
    if ((st = tc_kernel_alloc(k, &out[2], v->dtype, 4, pd)))
      return st;
    for (size_t i = 0; i < nv; i++)
      tc_rt_set_f64(&out[2], i, Vall[i]);
  }
  /* Q and K scaled by sqrt(scale) in T */
  for (size_t i = 0; i < nk; i++)
    Kall[i] = round_to(T, Kall[i] * s);
  for (size_t b = 0; b < B; b++)
    for (size_t h = 0; h < Hq; h++)
      for (size_t i = 0; i < Sq; i++) {
        size_t qo = bhsd_at(&Qv, b, h, i);
        double *qd = Qs + ((b * Hq + h) * Sq + i) * D;
        for (size_t d = 0; d < D; d++)
          qd[d] = round_to(T, tc_rt_get_f64(q, qo + d) * s);
      }

  /* outputs */
  bhsd Yv;
  bhsd_set(&Yv, three_d, B, Hq, Sq, Dv);
  int64_t ydims[4];
  size_t yrank;
  if (three_d) {
    ydims[0] = (int64_t)B;
    ydims[1] = (int64_t)Sq;
    ydims[2] = (int64_t)(Hq * Dv);
    yrank = 3;
  } else {
    ydims[0] = (int64_t)B;
    ydims[1] = (int64_t)Hq;
    ydims[2] = (int64_t)Sq;
    ydims[3] = (int64_t)Dv;
    yrank = 4;
  }
  if ((st = tc_kernel_alloc_uninit(k, &out[0], T, yrank, ydims)))
    return st;
  tc_rt_tensor *qk_out = NULL;
  if (n_out > 3 && has_output(n, 3)) {
    if ((st = tc_kernel_alloc(k, &out[3], T, 4, full)))
      return st;
    qk_out = &out[3];
  }

  att_job j = {.Qs = Qs,
               .Kall = Kall,
               .Vall = Vall,
               .mv = &mv,
               .nonpad = nonpad,
               .y = &out[0],
               .qk_out = qk_out,
               .Yv = Yv,
               .Hq = Hq,
               .Hkv = Hkv,
               .Sq = Sq,
               .L = L,
               .D = D,
               .Dv = Dv,
               .P = P,
               .T = T,
               .sp = sp,
               .mode = mode,
               .causal = causal,
               .lw = lw,
               .rw = rw,
               .cap = cap};
  /* the fast kernels run the (batch, head) pairs in parallel, each piece with
   * its own row buffers; the arithmetic per pair is the reference's */
  size_t grain = tc_parallel_grain(Sq * L * (D + Dv + 8));
  size_t pieces = tc_fast_kernels_enabled() ? tc_parallel_pieces(B * Hq, grain) : 1;
  if (!(j.rows = scratch(k, pieces * 4 * L, sizeof(double))))
    return NOMEM(k);
  if (pieces > 1)
    tc_parallel_for(B * Hq, grain, att_piece, &j);
  else
    att_piece(&j, 0, 0, B * Hq);
  return TC_STATUS_OK;
}

/* ---- RotaryEmbedding ---- */

static tc_status check_rotary(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"interleaved", "num_heads", "rotary_embedding_dim", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

typedef struct rot_job {
  const tc_rt_tensor *x, *cosc, *sinc, *pos;
  tc_rt_tensor *y;
  bhsd xv;
  size_t half, rd;
  bool inter;
} rot_job;

/* Tokens [lo, hi) (b * S + s), every head (position ids already checked). */
static void rot_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const rot_job *jb = ctx;
  const tc_rt_tensor *x = jb->x;
  int32_t T = x->dtype;
  size_t half = jb->half, S = jb->xv.S;
  for (size_t t = lo; t < hi; t++) {
    size_t b = t / S, si = t % S;
    size_t r = jb->pos ? (size_t)tc_rt_get_i64(jb->pos, t) : t;
    for (size_t h = 0; h < jb->xv.H; h++) {
      size_t base = bhsd_at(&jb->xv, b, h, si);
      for (size_t j = 0; j < half; j++) {
        double c = tc_rt_get_f64(jb->cosc, r * half + j),
               sn = tc_rt_get_f64(jb->sinc, r * half + j);
        size_t i1 = jb->inter ? 2 * j : j, i2 = jb->inter ? 2 * j + 1 : j + half;
        double x1 = tc_rt_get_f64(x, base + i1), x2 = tc_rt_get_f64(x, base + i2);
        double re = round_to(T, c * x1) - round_to(T, sn * x2);
        double im = round_to(T, sn * x1) + round_to(T, c * x2);
        tc_rt_set_f64(jb->y, base + i1, re);
        tc_rt_set_f64(jb->y, base + i2, im);
      }
      for (size_t d = jb->rd; d < jb->xv.D; d++)
        tc_rt_set_f64(jb->y, base + d, tc_rt_get_f64(x, base + d));
    }
  }
}

static tc_status run_rotary(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_node *n = k->node;
  const tc_rt_tensor *x = input(in, n_in, 0), *cosc = input(in, n_in, 1),
                     *sinc = input(in, n_in, 2), *pos = input(in, n_in, 3);
  if (!x || !cosc || !sinc)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X, cos_cache and sin_cache are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (cosc->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 1, cosc->dtype);
  if (sinc->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 2, sinc->dtype);
  if (pos && pos->dtype != TC_DTYPE_I64 && pos->dtype != TC_DTYPE_I32)
    return tc_kernel_bad_dtype(k, 3, pos->dtype);
  bool inter = tc_attr_int(n, "interleaved", 0) != 0;
  int64_t nh = tc_attr_int(n, "num_heads", 0);
  int64_t rd = tc_attr_int(n, "rotary_embedding_dim", 0);
  bhsd xv;
  if (x->rank == 4) {
    bhsd_set(&xv, false, (size_t)x->dims[0], (size_t)x->dims[1], (size_t)x->dims[2],
             (size_t)x->dims[3]);
  } else if (x->rank == 3) {
    if (nh <= 0 || x->dims[2] % nh != 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "3-D input needs num_heads dividing its hidden size");
    bhsd_set(&xv, true, (size_t)x->dims[0], (size_t)nh, (size_t)x->dims[1],
             (size_t)(x->dims[2] / nh));
  } else {
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must be 3-D or 4-D (has rank %zu)", x->rank);
  }
  size_t B = xv.B, H = xv.H, S = xv.S, D = xv.D;
  if (rd == 0)
    rd = (int64_t)D;
  if (rd < 0 || (size_t)rd > D || rd % 2 != 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "rotary_embedding_dim %lld must be even and at most the head size %zu",
                          (long long)rd, D);
  size_t half = (size_t)rd / 2;
  /* caches: (max_pos, half) with position_ids (B, S), else (B, S, half) */
  size_t rows;
  if (cosc->rank < 1 || cosc->rank != sinc->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "cos_cache and sin_cache ranks differ");
  for (size_t d = 0; d < cosc->rank; d++)
    if (cosc->dims[d] != sinc->dims[d])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "cos_cache and sin_cache shapes differ");
  if ((size_t)cosc->dims[cosc->rank - 1] != half)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "last dim of cos_cache (%lld) must be rotary_embedding_dim/2 (%zu)",
                          (long long)cosc->dims[cosc->rank - 1], half);
  if (pos) {
    if (cosc->rank != 2 || pos->rank != 2 || (size_t)pos->dims[0] != B || (size_t)pos->dims[1] != S)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "with position_ids (batch, seq) the caches must be (max_pos, dim/2)");
    rows = (size_t)cosc->dims[0];
  } else {
    if (cosc->rank != 3 || (size_t)cosc->dims[0] != B || (size_t)cosc->dims[1] != S)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "without position_ids the caches must be (batch, seq, dim/2)");
    rows = B * S;
  }
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, x->dims);
  if (st)
    return st;
  /* position ids checked first: the rows below may run on other threads */
  for (size_t i = 0; pos && i < B * S; i++) {
    int64_t p = tc_rt_get_i64(pos, i);
    if (p < 0 || (size_t)p >= rows)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "position id %lld is out of range [0, %zu)",
                            (long long)p, rows);
  }
  rot_job j = {.x = x,
               .cosc = cosc,
               .sinc = sinc,
               .pos = pos,
               .y = &out[0],
               .xv = xv,
               .half = half,
               .rd = (size_t)rd,
               .inter = inter};
  if (tc_fast_kernels_enabled())
    tc_parallel_for(B * S, tc_parallel_grain(H * D * 8), rot_piece, &j);
  else
    rot_piece(&j, 0, 0, B * S);
  return TC_STATUS_OK;
}

/* ---- Swish, SwiGLU ---- */

static tc_status check_alpha(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"alpha", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* x * sigmoid(alpha * x), each step rounded to T as the reference computes it. */
static double swish(int32_t T, double x, double alpha) {
  double e = round_to(T, exp(round_to(T, -alpha * x)));
  double sig = round_to(T, 1.0 / round_to(T, 1.0 + e));
  return round_to(T, x * sig);
}

/* Swish (b NULL) or SwiGLU: y = swish(a) [* b], element by element. */
typedef struct swish_job {
  const tc_rt_tensor *a, *b;
  tc_rt_tensor *y;
  double alpha;
} swish_job;

/* float32 with the fast kernels: sigmoid over blocks through vmath */
static void swish_piece_f32(const swish_job *j, size_t lo, size_t hi) {
  const float *a = j->a->data, *b = j->b ? j->b->data : NULL;
  float *y = j->y->data, t[256], alpha = (float)j->alpha;
  for (size_t i = lo; i < hi; i += 256) {
    size_t n = hi - i < 256 ? hi - i : 256;
    for (size_t k = 0; k < n; k++)
      t[k] = alpha * a[i + k];
    tc_vsigmoid_f32(t, t, n);
    for (size_t k = 0; k < n; k++)
      y[i + k] = b ? a[i + k] * t[k] * b[i + k] : a[i + k] * t[k];
  }
}

static void swish_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const swish_job *j = ctx;
  if (tc_fast_kernels_enabled() && j->a->dtype == TC_DTYPE_F32 &&
      (!j->b || j->b->dtype == TC_DTYPE_F32)) {
    swish_piece_f32(j, lo, hi);
    return;
  }
  for (size_t i = lo; i < hi; i++) {
    double v = swish(j->a->dtype, tc_rt_get_f64(j->a, i), j->alpha);
    tc_rt_set_f64(j->y, i, j->b ? v * tc_rt_get_f64(j->b, i) : v);
  }
}

/* The same arithmetic either way; the fast kernels split the elements. */
static void swish_run(swish_job *j, size_t cnt) {
  if (tc_fast_kernels_enabled())
    tc_parallel_for(cnt, tc_parallel_grain(48), swish_piece, j);
  else
    swish_piece(j, 0, 0, cnt);
}

static tc_status run_swish(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  /* Swish's alpha defaults to 1, QuickGelu's (ONNX Runtime's op) to 1.702 */
  bool quick = k->node->op_type && !strcmp(k->node->op_type, "QuickGelu");
  double alpha = tc_attr_float(k->node, "alpha", quick ? 1.702f : 1.0f);
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, x->dims);
  if (st)
    return st;
  swish_job j = {.a = x, .y = &out[0], .alpha = alpha};
  swish_run(&j, tc_rt_numel(x));
  return TC_STATUS_OK;
}

static tc_status run_swiglu(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *a = input(in, n_in, 0), *b = input(in, n_in, 1);
  if (!a || !b)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "A and B are required");
  if (!tc_dtype_is_float(a->dtype))
    return tc_kernel_bad_dtype(k, 0, a->dtype);
  if (b->dtype != a->dtype)
    return tc_kernel_bad_dtype(k, 1, b->dtype);
  bool same = a->rank == b->rank;
  for (size_t d = 0; same && d < a->rank; d++)
    same = a->dims[d] == b->dims[d];
  if (!same)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "A and B must have identical shapes");
  double alpha = tc_attr_float(k->node, "alpha", 1.0f);
  tc_status st = tc_kernel_alloc(k, &out[0], a->dtype, a->rank, a->dims);
  if (st)
    return st;
  swish_job j = {.a = a, .b = b, .y = &out[0], .alpha = alpha};
  swish_run(&j, tc_rt_numel(a));
  return TC_STATUS_OK;
}

/* ---- LinearAttention (opset 27) ----
 * Recurrent linear attention with a per-head state S [d_k, d_v] (Gated
 * DeltaNet, RetNet-style decoders): query [B, T, Hq*d_k], key [B, T,
 * Hkv*d_k], value [B, T, Hkv*d_v], past_state [B, Hkv, d_k, d_v]?, decay [B,
 * T, Hkv or Hkv*d_k]? (log gates), beta [B, T, Hkv or 1]?. Per step t and kv
 * head: S *= exp(g) (gated rules), v <- beta (v - S^T k) (delta rules),
 * S += k v^T; query head h reads kv head h / (Hq / Hkv): o = scale q^T S.
 * update_rule: linear, gated, delta, gated_delta (the default); scale 0 or
 * absent is 1 / sqrt(d_k); chunk_size is a hint without effect. Computed in
 * double; present_state takes past_state's dtype (else query's). */
static bool rule_is(const tc_node *n, const char *a, const char *b) {
  const tc_attr *r = tc_node_attr(n, "update_rule");
  const char *v = r ? (const char *)r->s.data : "gated_delta";
  size_t len = r ? r->s.len : strlen(v);
  return (len == strlen(a) && !memcmp(v, a, len)) || (len == strlen(b) && !memcmp(v, b, len));
}

static tc_status check_linear_attention(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"chunk_size", "kv_num_heads", "q_num_heads",
                                   "scale",      "update_rule",  NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  if (!rule_is(n, "linear", "gated") && !rule_is(n, "delta", "gated_delta"))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                       "update_rule must be linear, gated, delta or gated_delta");
  int64_t hq = tc_attr_int(n, "q_num_heads", 0), hkv = tc_attr_int(n, "kv_num_heads", 0);
  if (hq <= 0 || hkv <= 0 || hq % hkv)
    return tc_diag_set(diag, TC_STATUS_INVALID, n->name ? n->name : "", n->op_type,
                       "q_num_heads and kv_num_heads must be given, q a multiple of kv");
  return TC_STATUS_OK;
}

static tc_status run_linear_attention(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                      tc_rt_tensor *out, size_t n_out) {
  const tc_rt_tensor *q = in[0], *kk = n_in > 1 ? in[1] : NULL, *v = n_in > 2 ? in[2] : NULL,
                     *past = n_in > 3 ? in[3] : NULL, *decay = n_in > 4 ? in[4] : NULL,
                     *beta = n_in > 5 ? in[5] : NULL;
  const tc_node *n = k->node;
  int64_t hq = tc_attr_int(n, "q_num_heads", 0), hkv = tc_attr_int(n, "kv_num_heads", 0);
  bool gated = rule_is(n, "gated", "gated_delta"), delta = rule_is(n, "delta", "gated_delta");
  if (!q || !kk || !v)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "query, key and value are required");
  if (!tc_dtype_is_float(q->dtype))
    return tc_kernel_bad_dtype(k, 0, q->dtype);
  if (gated != (decay != NULL) || delta != (beta != NULL))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "this update_rule %s decay and %s beta",
                          gated ? "needs" : "forbids", delta ? "needs" : "forbids");
  if (q->rank != 3 || kk->rank != 3 || v->rank != 3 || hq <= 0 || hkv <= 0 || hq % hkv ||
      q->dims[2] % hq || kk->dims[2] % hkv || v->dims[2] % hkv)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "query, key and value must be [B, T, heads * head size]");
  int64_t B = q->dims[0], T = q->dims[1], dk = q->dims[2] / hq, dv = v->dims[2] / hkv,
          group = hq / hkv;
  if (kk->dims[0] != B || kk->dims[1] != T || v->dims[0] != B || v->dims[1] != T ||
      kk->dims[2] != hkv * dk)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "key and value do not match the query");
  if (past && (past->rank != 4 || past->dims[0] != B || past->dims[1] != hkv ||
               past->dims[2] != dk || past->dims[3] != dv))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "past_state must be [%lld, %lld, %lld, %lld]",
                          (long long)B, (long long)hkv, (long long)dk, (long long)dv);
  int64_t dlast = decay ? decay->dims[decay->rank - 1] : 0,
          blast = beta ? beta->dims[beta->rank - 1] : 0;
  if (decay && (decay->rank != 3 || decay->dims[0] != B || decay->dims[1] != T ||
                (dlast != hkv && dlast != hkv * dk)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "decay must be [B, T, kv heads (* d_k)]");
  if (beta &&
      (beta->rank != 3 || beta->dims[0] != B || beta->dims[1] != T || (blast != hkv && blast != 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "beta must be [B, T, kv heads or 1]");
  float sc = tc_attr_float(n, "scale", 0.0f);
  double scale = sc == 0.0f ? 1.0 / sqrt((double)dk) : sc;
  int64_t odims[3] = {B, T, hq * dv}, sdims[4] = {B, hkv, dk, dv};
  tc_status st = tc_kernel_alloc_uninit(k, &out[0], q->dtype, 3, odims);
  if (!st && n_out > 1)
    st = tc_kernel_alloc_uninit(k, &out[1], past ? past->dtype : q->dtype, 4, sdims);
  if (st)
    return st;
  size_t ns = (size_t)(hkv * dk * dv);
  double *S = tc_arena_alloc(k->arena, (ns + (size_t)dv + 1) * sizeof *S), *vt = S + ns;
  if (!S)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  for (int64_t b = 0; b < B; b++) {
    for (size_t i = 0; i < ns; i++)
      S[i] = past ? tc_rt_get_f64(past, (size_t)b * ns + i) : 0.0;
    for (int64_t t = 0; t < T; t++) {
      size_t row = (size_t)(b * T + t);
      for (int64_t h = 0; h < hkv; h++) {
        double *Sh = S + h * dk * dv;
        size_t kbase = row * (size_t)(hkv * dk) + (size_t)(h * dk),
               vbase = row * (size_t)(hkv * dv) + (size_t)(h * dv);
        if (gated)
          for (int64_t d = 0; d < dk; d++) {
            double g = exp(tc_rt_get_f64(decay, row * (size_t)dlast +
                                                    (size_t)(dlast == hkv ? h : h * dk + d)));
            for (int64_t m = 0; m < dv; m++)
              Sh[d * dv + m] *= g;
          }
        for (int64_t m = 0; m < dv; m++)
          vt[m] = tc_rt_get_f64(v, vbase + (size_t)m);
        if (delta) {
          double bt = tc_rt_get_f64(beta, row * (size_t)blast + (size_t)(blast == 1 ? 0 : h));
          for (int64_t m = 0; m < dv; m++) {
            double r = 0;
            for (int64_t d = 0; d < dk; d++)
              r += Sh[d * dv + m] * tc_rt_get_f64(kk, kbase + (size_t)d);
            vt[m] = bt * (vt[m] - r);
          }
        }
        for (int64_t d = 0; d < dk; d++) {
          double kd = tc_rt_get_f64(kk, kbase + (size_t)d);
          for (int64_t m = 0; m < dv; m++)
            Sh[d * dv + m] += kd * vt[m];
        }
      }
      for (int64_t h = 0; h < hq; h++) {
        const double *Sh = S + (h / group) * dk * dv;
        size_t qbase = row * (size_t)(hq * dk) + (size_t)(h * dk),
               obase = row * (size_t)(hq * dv) + (size_t)(h * dv);
        for (int64_t m = 0; m < dv; m++) {
          double o = 0;
          for (int64_t d = 0; d < dk; d++)
            o += tc_rt_get_f64(q, qbase + (size_t)d) * Sh[d * dv + m];
          tc_rt_set_f64(&out[0], obase + (size_t)m, scale * o);
        }
      }
    }
    for (size_t i = 0; n_out > 1 && i < ns; i++)
      tc_rt_set_f64(&out[1], (size_t)b * ns + i, S[i]);
  }
  return TC_STATUS_OK;
}

/* ---- ai.onnx.preview FlexAttention (without score_mod / prob_mod) ----
 * Q [B, Hq, L, E], K [B, Hkv, S, E], V [B, Hkv, S, Ev] (query head h reads
 * kv head h / (Hq / Hkv)): Y = softmax(scale Q K^T) V, scale 1 / sqrt(E)
 * unless given. The modifier subgraphs are refused at load (only If, Loop
 * and Scan run subgraphs). Computed in double, rounded once to V's dtype. */
static tc_status check_flex_attention(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"scale", "softmax_precision", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_flex_attention(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                    tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *q = in[0], *kk = n_in > 1 ? in[1] : NULL, *v = n_in > 2 ? in[2] : NULL;
  if (!q || !kk || !v)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Q, K and V are required");
  if (!tc_dtype_is_float(q->dtype))
    return tc_kernel_bad_dtype(k, 0, q->dtype);
  if (q->rank != 4 || kk->rank != 4 || v->rank != 4)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Q, K and V must be rank 4");
  int64_t B = q->dims[0], Hq = q->dims[1], L = q->dims[2], E = q->dims[3], Hkv = kk->dims[1],
          S = kk->dims[2], Ev = v->dims[3];
  if (kk->dims[0] != B || v->dims[0] != B || kk->dims[3] != E || v->dims[1] != Hkv ||
      v->dims[2] != S || Hkv <= 0 || Hq % Hkv)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "K and V must be [B, Hkv, S, E] / [B, Hkv, S, Ev] with Hq a multiple of "
                          "Hkv");
  double scale =
      tc_attr_has(k->node, "scale") ? tc_attr_float(k->node, "scale", 0.0f) : 1.0 / sqrt((double)E);
  int64_t dims[4] = {B, Hq, L, Ev};
  tc_status st = tc_kernel_alloc_uninit(k, &out[0], v->dtype, 4, dims);
  if (st)
    return st;
  double *p = tc_arena_alloc(k->arena, (size_t)(S ? S : 1) * sizeof *p);
  if (!p)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  for (int64_t b = 0; b < B; b++)
    for (int64_t h = 0; h < Hq; h++) {
      int64_t hk = h / (Hq / Hkv);
      size_t qb = (size_t)((b * Hq + h) * L * E), kb = (size_t)((b * Hkv + hk) * S * E),
             vb = (size_t)((b * Hkv + hk) * S * Ev), ob = (size_t)((b * Hq + h) * L * Ev);
      for (int64_t i = 0; i < L; i++) {
        double mx = -INFINITY, sum = 0;
        for (int64_t j = 0; j < S; j++) {
          double d = 0;
          for (int64_t e = 0; e < E; e++)
            d += tc_rt_get_f64(q, qb + (size_t)(i * E + e)) *
                 tc_rt_get_f64(kk, kb + (size_t)(j * E + e));
          p[j] = d * scale;
          mx = p[j] > mx ? p[j] : mx;
        }
        for (int64_t j = 0; j < S; j++)
          sum += (p[j] = exp(p[j] - mx));
        for (int64_t c = 0; c < Ev; c++) {
          double acc = 0;
          for (int64_t j = 0; j < S; j++)
            acc += p[j] * tc_rt_get_f64(v, vb + (size_t)(j * Ev + c));
          tc_rt_set_f64(&out[0], ob + (size_t)(i * Ev + c), acc / sum);
        }
      }
    }
  return TC_STATUS_OK;
}

const tc_kernel_def tc_kernels_attention[] = {
    {"FlexAttention", "ai.onnx.preview", 1, run_flex_attention, check_flex_attention},
    {"LinearAttention", "", 27, run_linear_attention, check_linear_attention},
    {"Attention", "", 23, run_attention, check_attention},
    {"RotaryEmbedding", "", 23, run_rotary, check_rotary},
    {"Swish", "", 24, run_swish, check_alpha},
    /* x * sigmoid(alpha * x): tacoc's fuse-quick-gelu (QuickGELU, alpha 1.702,
     * and SiLU, alpha 1) and ONNX Runtime's op of that name */
    {"QuickGelu", "ai.tacoc", 1, run_swish, check_alpha},
    {"QuickGelu", "com.microsoft", 1, run_swish, check_alpha},
    {"SwiGLU", "", 28, run_swiglu, check_alpha},
    {NULL},
};
