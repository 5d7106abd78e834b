/* QDQ groups run as integer kernels.
 *
 * A QDQ model (tacoc's static int8, onnxruntime.quantization's, TensorRT's
 * input) writes an int8 MatMul or convolution as float ops between
 * DequantizeLinear and QuantizeLinear:
 *
 *   xq ─▶ DequantizeLinear(xs, xz) ─▶ x ─┐
 *   wq ─▶ DequantizeLinear(ws)     ─▶ w ─┼▶ MatMul / Conv ─▶ y (float32)
 *  [bq ─▶ DequantizeLinear(bs)     ─▶ b ─┘]
 *
 * Run as written, that is a float GEMM on dequantized copies. When a
 * session is created, each MatMul or convolution whose X and W come from
 * DequantizeLinear of the right form is bound to an integer kernel that reads
 * xq and wq directly (tc_matmul_qdq_run, tc_conv_qdq_run: oneDNN's int8
 * GEMM, scales applied to the int32 sums), and every DequantizeLinear whose
 * only readers are such bound operands is not run at all.
 *
 * The form: xs a constant float32 scalar, xz absent or a constant 8-bit
 * scalar (xq's dtype known to be uint8 or int8 from it or from the value's
 * declared type); wq a constant int8 tensor (MatMul: [K, N]) with scales 1
 * or one per output channel on the right axis (Conv: axis 0, MatMul: axis 1)
 * and zero points absent or all 0; a convolution bias either float32 or the
 * DequantizeLinear of a constant int32 tensor with zero point 0. Anything
 * else runs as written. The results differ from the dequantized float GEMM
 * only by float rounding (the integer sums are exact). */
#include <string.h>

#include "exec.h"

typedef enum { Q_MATMUL = 1, Q_CONV } qkind;

struct tc_qdq_bind {
  qkind kind;
  const tc_value *xq, *xs, *xz, *wq, *ws, *bq, *bs;
};

static bool is_op(const tc_node *n, const char *op) {
  return n && tc_domain_is_onnx(n->domain) && strcmp(n->op_type, op) == 0;
}

static const tc_rt_tensor *konst(const tc_session *s, const tc_value *v) {
  return v ? s->consts[v->id] : NULL;
}

static bool is_q8(int32_t dt) { return dt == TC_DTYPE_U8 || dt == TC_DTYPE_I8; }

static bool all_zero(const tc_rt_tensor *t) {
  const unsigned char *p = t->data;
  for (size_t i = 0; i < t->bytes; i++)
    if (p[i])
      return false;
  return true;
}

/* d is a main-graph DequantizeLinear with a kernel and no attribute that
 * changes what it means here. */
static bool plain_dq(const tc_session *s, const tc_node *d) {
  if (!is_op(d, "DequantizeLinear") || d->graph != s->m->graph || !s->kernels[d->id] ||
      d->n_inputs < 2 || !d->inputs[0] || !d->inputs[1] || !d->outputs[0])
    return false;
  int64_t od = s->opsets[d->id] >= 23 ? tc_attr_int(d, "output_dtype", 0) : 0;
  return tc_attr_int(d, "block_size", 0) == 0 && (od == 0 || od == TC_DTYPE_F32);
}

/* The activation operand: a per-tensor DequantizeLinear of 8-bit values. */
static bool activation_dq(const tc_session *s, const tc_value *x, tc_qdq_bind *b) {
  const tc_node *d = x ? x->producer : NULL;
  if (!plain_dq(s, d))
    return false;
  const tc_rt_tensor *sc = konst(s, d->inputs[1]);
  const tc_value *zv = d->n_inputs > 2 ? d->inputs[2] : NULL;
  const tc_rt_tensor *zp = konst(s, zv);
  if (!sc || sc->dtype != TC_DTYPE_F32 || tc_rt_numel(sc) != 1 || (zv && !zp))
    return false;
  const tc_type *t = &d->inputs[0]->type;
  int32_t dt = zp ? zp->dtype : t->kind == TC_TYPE_TENSOR ? t->elem : 0;
  if (!is_q8(dt) || (zp && tc_rt_numel(zp) != 1) ||
      (t->kind == TC_TYPE_TENSOR && t->elem && t->elem != dt))
    return false;
  b->xq = d->inputs[0];
  b->xs = d->inputs[1];
  b->xz = zv;
  return true;
}

/* The weight operand: a constant int8 tensor, scales per tensor or per
 * channel on axis, zero points 0. */
static bool weight_dq(const tc_session *s, const tc_value *w, int64_t axis, tc_qdq_bind *b) {
  const tc_node *d = w ? w->producer : NULL;
  if (!plain_dq(s, d))
    return false;
  const tc_rt_tensor *q = konst(s, d->inputs[0]), *sc = konst(s, d->inputs[1]);
  const tc_value *zv = d->n_inputs > 2 ? d->inputs[2] : NULL;
  const tc_rt_tensor *zp = konst(s, zv);
  if (!q || q->dtype != TC_DTYPE_I8 || !sc || sc->dtype != TC_DTYPE_F32 || (zv && !zp) ||
      (zp && (zp->dtype != TC_DTYPE_I8 || !all_zero(zp))) || (size_t)axis >= q->rank)
    return false;
  size_t ns = tc_rt_numel(sc);
  if (ns != 1) {
    int64_t ax = tc_axis(s->opsets[d->id] >= 13 ? tc_attr_int(d, "axis", 1) : 1, q->rank);
    if (ax != axis || sc->rank != 1 || ns != (size_t)q->dims[axis])
      return false;
  }
  b->wq = d->inputs[0];
  b->ws = d->inputs[1];
  return true;
}

/* A convolution bias written as DequantizeLinear of int32 with zero point 0. */
static void bias_dq(const tc_session *s, const tc_value *bv, tc_qdq_bind *b) {
  const tc_node *d = bv ? bv->producer : NULL;
  if (!plain_dq(s, d))
    return;
  const tc_rt_tensor *q = konst(s, d->inputs[0]), *sc = konst(s, d->inputs[1]);
  const tc_value *zv = d->n_inputs > 2 ? d->inputs[2] : NULL;
  const tc_rt_tensor *zp = konst(s, zv);
  if (!q || q->dtype != TC_DTYPE_I32 || q->rank != 1 || !sc || sc->dtype != TC_DTYPE_F32 ||
      (zv && (!zp || !all_zero(zp))))
    return;
  size_t ns = tc_rt_numel(sc);
  if (ns != 1 && (sc->rank != 1 || ns != tc_rt_numel(q)))
    return;
  b->bq = d->inputs[0];
  b->bs = d->inputs[1];
}

static bool is_conv(const tc_node *n) {
  if (is_op(n, "Conv"))
    return true;
  if (tc_domain_equal(n->domain, "com.microsoft"))
    return strcmp(n->op_type, "FusedConv") == 0;
  return tc_domain_equal(n->domain, "ai.tacoc") && strncmp(n->op_type, "Conv", 4) == 0 &&
         strcmp(n->op_type, "ConvTranspose") != 0;
}

/* Whether node n reads input slot through its binding (not from vals). */
static bool bound_slot(const tc_qdq_bind *b, int slot) {
  return slot == 0 || slot == 1 || (slot == 2 && b->bq);
}

void tc_qdq_bind_session(tc_session *s) {
  const tc_model *m = s->m;
  const tc_graph *g = m->graph;
  size_t nn = m->next_node_id + 1;
  s->qdq = tc_arena_alloc(s->arena, nn * sizeof *s->qdq);
  s->qdq_skip = tc_arena_alloc(s->arena, nn * sizeof *s->qdq_skip);
  if (!s->qdq || !s->qdq_skip) {
    s->qdq = NULL;
    s->qdq_skip = NULL;
    return; /* out of memory: everything runs as written */
  }
  memset(s->qdq, 0, nn * sizeof *s->qdq);
  memset(s->qdq_skip, 0, nn * sizeof *s->qdq_skip);
  for (const tc_node *n = g->first; n; n = n->next) {
    if (!s->kernels[n->id] || n->n_inputs < 2 || !n->outputs[0])
      continue;
    tc_qdq_bind b = {0};
    if (is_op(n, "MatMul")) {
      const tc_rt_tensor *wq;
      b.kind = Q_MATMUL;
      if (!activation_dq(s, n->inputs[0], &b) || !weight_dq(s, n->inputs[1], 1, &b) ||
          !(wq = konst(s, b.wq)) || wq->rank != 2)
        continue;
    } else if (is_conv(n)) {
      b.kind = Q_CONV;
      if (!activation_dq(s, n->inputs[0], &b) || !weight_dq(s, n->inputs[1], 0, &b))
        continue;
      bias_dq(s, n->n_inputs > 2 ? n->inputs[2] : NULL, &b);
    } else {
      continue;
    }
    tc_qdq_bind *keep = tc_arena_alloc(s->arena, sizeof *keep);
    if (!keep)
      return;
    *keep = b;
    s->qdq[n->id] = keep;
    s->qdq_count++;
  }
  /* DequantizeLinear nodes all of whose readers take the quantized operand
   * directly are not run. */
  for (const tc_node *d = g->first; d; d = d->next) {
    const tc_value *v = d->outputs && d->n_outputs ? d->outputs[0] : NULL;
    if (!is_op(d, "DequantizeLinear") || !v || !v->n_uses || (v->flags & TC_VALUE_OUTPUT))
      continue;
    bool all = true;
    for (size_t u = 0; all && u < v->n_uses; u++) {
      const tc_node *r = v->uses[u].node;
      all = r->graph == g && s->qdq[r->id] && bound_slot(s->qdq[r->id], v->uses[u].slot);
    }
    s->qdq_skip[d->id] = all;
  }
}

bool tc_qdq_reads(const tc_session *s, const tc_node *n, int slot) {
  return s->qdq && n->graph == s->m->graph && s->qdq[n->id] && bound_slot(s->qdq[n->id], slot);
}

size_t tc_session_qdq_nodes(const tc_session *s) { return s ? s->qdq_count : 0; }

static const tc_rt_tensor *val(const tc_run *r, const tc_value *v) {
  return v ? r->vals[v->id] : NULL;
}

tc_status tc_qdq_run(const tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                     const tc_rt_tensor *const *in, tc_rt_tensor *out) {
  const tc_qdq_bind *b = r->s->qdq[n->id];
  if (b->kind == Q_MATMUL)
    return tc_matmul_qdq_run(k, val(r, b->xq), val(r, b->xs), val(r, b->xz), val(r, b->wq),
                             val(r, b->ws), out);
  bool add = n->n_inputs > 3 && n->inputs[3];
  tc_conv_qdq q = {.xq = val(r, b->xq),
                   .xs = val(r, b->xs),
                   .xz = val(r, b->xz),
                   .wq = val(r, b->wq),
                   .ws = val(r, b->ws),
                   .b = b->bq || n->n_inputs < 3 ? NULL : in[2],
                   .bq = val(r, b->bq),
                   .bs = val(r, b->bs),
                   .z = add ? in[3] : NULL,
                   .wq_value = b->wq};
  return tc_conv_qdq_run(k, &q, out);
}
