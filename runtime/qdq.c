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
 * only by float rounding (the integer sums are exact).
 *
 * A Gemm with alpha 1, beta 1 (with C) and A not transposed is the same
 * kernel on B [K, N] or transposed [N, K], its C a bias row (int32
 * quantized or float32): onnxruntime.quantization writes classifiers so.
 *
 * Between the integer kernels a QDQ model goes back to 8 bits: a
 * QuantizeLinear after each convolution, and Adds (the residual sums of a
 * ResNet) and Concats (SqueezeNet's fire modules) on dequantized copies:
 *
 *   conv ─▶ y ─▶ QuantizeLinear(ys, yz) ─▶ yq
 *   aq ─▶ DequantizeLinear ─┐
 *   bq ─▶ DequantizeLinear ─┴▶ Add / Concat ─▶ [Relu] ─▶ QuantizeLinear ─▶ yq
 *
 * An Add (or a Sum of two) whose operands both come from per-tensor
 * DequantizeLinear is bound too: it reads aq and bq (tc_qadd_run, the
 * arithmetic of the ops it replaces, bit for bit; a bias row or scalar
 * operand in the same pass, other broadcasts as written inside the group);
 * so is a Concat of such inputs (copied when quantized as its output,
 * else requantized by the same pass), and a MaxPool of one (no Indices, a
 * positive scale: the max of the dequantized values is the dequantized
 * max) that a QuantizeLinear takes over (below), pooled on the 8-bit values
 * and requantized by that pass when y's scale or zero point differ. A
 * QuantizeLinear with a constant per-tensor scale and zero point whose
 * input is the only output of a bound convolution (no Z, activation none
 * or Relu), Add, Concat or MaxPool, directly or through a Relu (which that
 * node then applies; not for a Concat or MaxPool), takes that node over:
 * the node runs when the QuantizeLinear would (it is passed over where it
 * stands, as the nodes of a generated chain are) and writes yq, the
 * convolution with y's scale and zero point in oneDNN's primitive (its
 * rounding of scale * sum / ys may differ from QuantizeLinear's by one
 * step where that value lies at a rounding boundary). Those 8-bit values
 * stay channels-last where every reader takes them so (tc_qdq_layout_mark
 * / _prune, called by runtime/layout.c), so a ResNet-50 quantized by
 * onnxruntime.quantization runs from int8 to int8 without float32 copies
 * or reorders between its convolutions. A generated chain kernel the model
 * carries over a group's nodes takes them
 * (tc_qdq_release). TACORT_QDQ=written binds nothing. */
#include <stdlib.h>
#include <string.h>

#include "exec.h"

typedef enum { Q_MATMUL = 1, Q_CONV, Q_GEMM, Q_ADD, Q_CONCAT, Q_POOL, Q_OUT } qkind;

struct tc_qdq_bind {
  qkind kind;
  const tc_value *xq, *xs, *xz; /* the activation (Q_ADD: A; Q_OUT: y's scale and zero point) */
  const tc_value *wq, *ws, *wz; /* the weights (Q_ADD: B, an activation too) */
  const tc_value *bq, *bs;      /* a convolution's quantized bias */
  const tc_node *src;           /* Q_OUT: the bound node whose output it quantizes, run there */
  const tc_node *out_q;         /* the Q_OUT node that took this one over, or NULL */
  const tc_value **cat;         /* Q_CONCAT: each input's xq, xs, xz (3 per input) */
  bool tb;                      /* Q_GEMM: transB (W [N, K]) */
  const tc_node *relu_node;     /* Q_OUT: that Relu, or NULL */
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

/* A Gemm computing A B + C: alpha 1, beta 1 (with C), A not transposed. */
static bool gemm_bindable(const tc_session *s, const tc_node *n) {
  const tc_attr *al = tc_node_attr(n, "alpha"), *be = tc_node_attr(n, "beta");
  bool c = n->n_inputs > 2 && n->inputs[2];
  return s->opsets[n->id] >= 7 && !tc_attr_int(n, "transA", 0) && (!al || al->f == 1.0f) &&
         (!c || !be || be->f == 1.0f);
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
  if (b->kind == Q_OUT || b->kind == Q_POOL)
    return slot == 0;
  if (b->kind == Q_CONCAT)
    return slot >= 0;
  return slot == 0 || slot == 1 || (slot == 2 && b->bq);
}

static bool is_add(const tc_node *n) {
  return (is_op(n, "Add") || (is_op(n, "Sum") && n->n_inputs == 2)) && n->n_inputs == 2 &&
         n->n_outputs >= 1;
}

/* A convolution whose output may be quantized in its kernel: no summed
 * input, an activation that commutes with a positive scale. */
static bool conv_quantizable(const tc_node *n) {
  if (n->n_inputs > 3 && n->inputs[3])
    return false;
  if (is_op(n, "Conv"))
    return true;
  if (tc_domain_equal(n->domain, "ai.tacoc"))
    return strcmp(n->op_type, "Conv") == 0 || strcmp(n->op_type, "ConvRelu") == 0;
  if (strcmp(n->op_type, "FusedConv") != 0)
    return false;
  const tc_attr *a = tc_node_attr(n, "activation");
  return !a || (a->s.len == 4 && memcmp(a->s.data, "Relu", 4) == 0);
}

/* q is a main-graph QuantizeLinear to 8 bits with a constant per-tensor
 * scale and zero point and nothing else that changes what it means. */
static bool plain_q(const tc_session *s, const tc_node *q) {
  if (!is_op(q, "QuantizeLinear") || q->graph != s->m->graph || !s->kernels[q->id] ||
      q->n_inputs < 2 || !q->inputs[0] || !q->outputs || !q->n_outputs || !q->outputs[0])
    return false;
  int64_t op = s->opsets[q->id];
  int64_t od = op >= 21 ? tc_attr_int(q, "output_dtype", 0) : 0;
  if ((op >= 21 && tc_attr_int(q, "block_size", 0)) || (op >= 23 && tc_attr_int(q, "precision", 0)))
    return false;
  const tc_rt_tensor *sc = konst(s, q->inputs[1]);
  const tc_value *zv = q->n_inputs > 2 ? q->inputs[2] : NULL;
  const tc_rt_tensor *zp = konst(s, zv);
  if (!sc || sc->dtype != TC_DTYPE_F32 || tc_rt_numel(sc) != 1 || (zv && !zp))
    return false;
  if (zp)
    return is_q8(zp->dtype) && tc_rt_numel(zp) == 1 && (!od || od == zp->dtype);
  return !od || od == TC_DTYPE_U8;
}

/* v, read once, by reader only, and not a graph output */
static bool only_for(const tc_value *v) {
  return v && v->n_uses == 1 && !(v->flags & TC_VALUE_OUTPUT);
}

/* Binds QuantizeLinear q to the bound node before it (Q_OUT) when it can
 * take that node over (see the top of the file). */
static void bind_q_out(tc_session *s, const tc_node *q, tc_qdq_bind *b) {
  const tc_value *v = q->inputs[0];
  const tc_node *p = v->producer, *relu = NULL;
  if (!only_for(v) || !p || p->graph != q->graph)
    return;
  if (is_op(p, "Relu") && s->kernels[p->id] && p->n_inputs == 1 && only_for(p->inputs[0])) {
    relu = p;
    p = p->inputs[0]->producer;
    if (!p || p->graph != q->graph)
      return;
  }
  tc_qdq_bind *pb = s->qdq[p->id];
  if (!pb || s->chain_root[p->id] || p->n_outputs != 1 ||
      !(pb->kind == Q_ADD || ((pb->kind == Q_CONCAT || pb->kind == Q_POOL) && !relu) ||
        (pb->kind == Q_CONV && conv_quantizable(p))))
    return;
  b->kind = Q_OUT;
  b->src = p;
  b->relu_node = relu;
  b->xs = q->inputs[1];
  b->xz = q->n_inputs > 2 ? q->inputs[2] : NULL;
  pb->out_q = q;
  s->chain_root[p->id] = q->id + 1;
  if (relu)
    s->chain_root[relu->id] = q->id + 1;
}

void tc_qdq_bind_session(tc_session *s) {
  if (getenv("TACORT_QDQ") && !strcmp(getenv("TACORT_QDQ"), "written"))
    return; /* everything as written (a check of the bound kernels) */
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
    if (!s->kernels[n->id] || !n->n_inputs || !n->outputs[0] ||
        (n->n_inputs < 2 && !is_op(n, "MaxPool")))
      continue;
    tc_qdq_bind b = {0};
    const tc_rt_tensor *sc;
    if (is_op(n, "MaxPool")) {
      /* the max of dequantized values is the dequantized max when the
       * scale is positive; no Indices */
      b.kind = Q_POOL;
      if ((n->n_outputs > 1 && n->outputs[1]) || !activation_dq(s, n->inputs[0], &b) ||
          !(sc = konst(s, b.xs)) || !(*(const float *)sc->data > 0) ||
          !(*(const float *)sc->data <= 3.4e38f))
        continue;
    } else if (is_add(n)) {
      tc_qdq_bind bb = {0};
      b.kind = Q_ADD;
      if (!activation_dq(s, n->inputs[0], &b) || !activation_dq(s, n->inputs[1], &bb))
        continue;
      b.wq = bb.xq, b.ws = bb.xs, b.wz = bb.xz;
    } else if (is_op(n, "Concat")) {
      b.kind = Q_CONCAT;
      if (!(b.cat = tc_arena_alloc(s->arena, 3 * n->n_inputs * sizeof *b.cat)))
        return;
      bool all = true;
      for (size_t i = 0; all && i < n->n_inputs; i++) {
        tc_qdq_bind bi = {0};
        all = activation_dq(s, n->inputs[i], &bi);
        b.cat[3 * i] = bi.xq, b.cat[3 * i + 1] = bi.xs, b.cat[3 * i + 2] = bi.xz;
      }
      if (!all)
        continue;
    } else if (is_op(n, "Gemm")) {
      const tc_rt_tensor *wq;
      b.kind = Q_GEMM;
      b.tb = tc_attr_int(n, "transB", 0) != 0;
      if (!gemm_bindable(s, n) || !activation_dq(s, n->inputs[0], &b) ||
          !weight_dq(s, n->inputs[1], b.tb ? 0 : 1, &b) || !(wq = konst(s, b.wq)) || wq->rank != 2)
        continue;
      const tc_value *c = n->n_inputs > 2 ? n->inputs[2] : NULL;
      bias_dq(s, c, &b);
      const tc_rt_tensor *ct = b.bq ? NULL : konst(s, c);
      int64_t N = wq->dims[b.tb ? 0 : 1];
      if (b.bq ? (int64_t)tc_rt_numel(konst(s, b.bq)) != N
               : c && (!ct || ct->dtype != TC_DTYPE_F32 || (int64_t)tc_rt_numel(ct) != N ||
                       ct->rank > 2 || ct->dims[ct->rank - 1] != N))
        continue; /* a bias of N values (a row), int32 quantized or float32 */
    } else if (is_op(n, "MatMul")) {
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
    if (b.kind == Q_ADD)
      s->qdq_adds++;
    else if (b.kind == Q_CONCAT)
      s->qdq_concats++;
    else if (b.kind == Q_POOL)
      s->qdq_pools++;
    else
      s->qdq_count++;
  }
  /* QuantizeLinear nodes that take the bound node before them over */
  if (!s->chain_root)
    s->chain_root = tc_arena_alloc(s->arena, nn * sizeof *s->chain_root);
  for (const tc_node *q = s->chain_root ? g->first : NULL; q; q = q->next) {
    tc_qdq_bind b = {0};
    if (!plain_q(s, q))
      continue;
    bind_q_out(s, q, &b);
    tc_qdq_bind *keep = b.kind ? tc_arena_alloc(s->arena, sizeof *keep) : NULL;
    if (!b.kind)
      continue;
    if (!keep) { /* out of memory: undo this one, keep the rest */
      s->chain_root[b.src->id] = 0;
      if (b.relu_node)
        s->chain_root[b.relu_node->id] = 0;
      s->qdq[b.src->id]->out_q = NULL;
      break;
    }
    *keep = b;
    s->qdq[q->id] = keep;
    s->qdq_fused++;
  }
  /* A MaxPool no QuantizeLinear took over stays as written: pooling the
   * bytes, then dequantizing, does what DequantizeLinear and the float
   * MaxPool do, with one more pass. */
  for (const tc_node *n = g->first; n; n = n->next)
    if (s->qdq[n->id] && s->qdq[n->id]->kind == Q_POOL && !s->qdq[n->id]->out_q) {
      s->qdq[n->id] = NULL;
      s->qdq_pools--;
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

void tc_qdq_release(tc_session *s, const tc_node *n) {
  tc_qdq_bind *b = s->qdq && n->graph == s->m->graph ? s->qdq[n->id] : NULL;
  if (!b)
    return;
  const tc_node *src = b->kind == Q_OUT ? b->src : n;
  tc_qdq_bind *sb = s->qdq[src->id];
  const tc_node *q = b->kind == Q_OUT ? n : sb->out_q;
  if (q) {
    const tc_qdq_bind *qb = s->qdq[q->id];
    if (qb->relu_node)
      s->chain_root[qb->relu_node->id] = 0;
    s->chain_root[src->id] = 0;
    s->qdq[q->id] = NULL;
    s->qdq_fused--;
  }
  for (size_t i = 0; i < src->n_inputs; i++) { /* its DequantizeLinear nodes run again */
    const tc_node *d = src->inputs[i] ? src->inputs[i]->producer : NULL;
    if (d && d->graph == src->graph)
      s->qdq_skip[d->id] = false;
  }
  if (sb->kind == Q_ADD)
    s->qdq_adds--;
  else if (sb->kind == Q_CONCAT)
    s->qdq_concats--;
  else if (sb->kind == Q_POOL)
    s->qdq_pools--;
  else
    s->qdq_count--;
  s->qdq[src->id] = NULL;
}

bool tc_qdq_reads(const tc_session *s, const tc_node *n, int slot) {
  return s->qdq && n->graph == s->m->graph && s->qdq[n->id] && bound_slot(s->qdq[n->id], slot);
}

/* A 2-D convolution's binding: weights of rank 4. */
static bool conv2d(const tc_session *s, const tc_qdq_bind *b) {
  const tc_rt_tensor *w = b && b->kind == Q_CONV ? konst(s, b->wq) : NULL;
  return w && w->rank == 4;
}

/* A 2-D MaxPool's binding (its input of rank 4). */
static bool pool2d(const tc_node *n, const tc_qdq_bind *b) {
  const tc_attr *k = b && b->kind == Q_POOL ? tc_node_attr(n, "kernel_shape") : NULL;
  return k && k->n_ints == 2;
}

bool tc_qdq_float_conv(const tc_session *s, const tc_node *n) {
  const tc_qdq_bind *b = s->qdq && n->graph == s->m->graph ? s->qdq[n->id] : NULL;
  return conv2d(s, b) && !b->out_q && !(n->n_inputs > 3 && n->inputs[3]) && n->n_outputs == 1;
}

/* A Concat over channels (axis 1 of 4 dims) of a binding. */
static bool cat_channels(const tc_node *n, const tc_qdq_bind *b) {
  int64_t axis = b && b->kind == Q_CONCAT ? tc_attr_int(n, "axis", 0) : 0;
  return axis == 1 || axis == -3;
}

bool tc_qdq_float_concat(const tc_session *s, const tc_node *n, const bool *cand) {
  const tc_qdq_bind *b = s->qdq && n->graph == s->m->graph ? s->qdq[n->id] : NULL;
  if (!cat_channels(n, b) || b->out_q)
    return false;
  for (size_t i = 0; cand && i < n->n_inputs; i++)
    if (!cand[b->cat[3 * i]->id])
      return false;
  return true;
}

bool tc_qdq_conv_x(const tc_session *s, const tc_node *u, int slot) {
  const tc_qdq_bind *b = s->qdq && u->graph == s->m->graph ? s->qdq[u->id] : NULL;
  return slot == 0 && conv2d(s, b) && !(u->n_inputs > 3 && u->inputs[3]);
}

/* Whether every reader of 8-bit value v takes it channels-last: each a
 * DequantizeLinear that does not run, read only by 2-D convolutions as X
 * (without a summed Z) or by Adds, channel Concats or 2-D MaxPools taken
 * over by a QuantizeLinear whose output is channels-last. */
static bool readers_nhwc(const tc_session *s, const tc_value *v, const bool *cand) {
  if (v->flags & TC_VALUE_OUTPUT)
    return false;
  for (size_t i = 0; i < v->n_uses; i++) {
    const tc_node *d = v->uses[i].node;
    if (d->graph != s->m->graph || !is_op(d, "DequantizeLinear") || v->uses[i].slot != 0 ||
        !d->outputs[0])
      return false;
    const tc_value *dv = d->outputs[0];
    /* a DequantizeLinear that runs: its float32 output channels-last too
     * (runtime/layout.c's choice), its bound readers as below */
    if (!s->qdq_skip[d->id] && !cand[dv->id])
      return false;
    for (size_t k = 0; k < dv->n_uses; k++) {
      const tc_node *u = dv->uses[k].node;
      const tc_qdq_bind *ub = s->qdq[u->id];
      int slot = dv->uses[k].slot;
      if (!s->qdq_skip[d->id] && !(ub && bound_slot(ub, slot)))
        continue; /* a float reader of the float output */
      bool ok = (conv2d(s, ub) && slot == 0 && !(u->n_inputs > 3 && u->inputs[3])) ||
                (ub && (ub->kind == Q_ADD || ub->kind == Q_CONCAT || pool2d(u, ub)) && ub->out_q &&
                 cand[ub->out_q->outputs[0]->id]) ||
                (tc_qdq_float_concat(s, u, NULL) && cand[u->outputs[0]->id]);
      if (!ok)
        return false;
    }
  }
  return true;
}

void tc_qdq_layout_mark(const tc_session *s, bool *cand) {
  if (!s->qdq)
    return;
  /* candidates: what QuantizeLinear nodes write for a 2-D convolution, an
   * Add, a Concat over channels (axis 1 of 4) or a 2-D MaxPool */
  for (const tc_node *q = s->m->graph->first; q; q = q->next) {
    const tc_qdq_bind *b = s->qdq[q->id];
    const tc_qdq_bind *sb = b && b->kind == Q_OUT ? s->qdq[b->src->id] : NULL;
    if (sb &&
        (conv2d(s, sb) || sb->kind == Q_ADD || pool2d(b->src, sb) || cat_channels(b->src, sb)))
      cand[q->outputs[0]->id] = true;
  }
}

bool tc_qdq_layout_prune(const tc_session *s, bool *cand) {
  if (!s->qdq)
    return false;
  const tc_graph *g = s->m->graph;
  bool any = false;
  for (bool changed = true; changed; any |= changed) {
    changed = false;
    for (const tc_node *q = g->first; q; q = q->next) {
      const tc_qdq_bind *b = s->qdq[q->id];
      const tc_value *v = b && b->kind == Q_OUT ? q->outputs[0] : NULL;
      if (!v || !cand[v->id])
        continue;
      const tc_qdq_bind *sb = s->qdq[b->src->id];
      /* an Add's operands, a Concat's inputs and a MaxPool's input share its
       * layout */
      bool keep = readers_nhwc(s, v, cand) &&
                  (sb->kind != Q_ADD || (cand[sb->xq->id] && cand[sb->wq->id])) &&
                  (sb->kind != Q_POOL || cand[sb->xq->id]);
      for (size_t i = 0; keep && sb->kind == Q_CONCAT && i < b->src->n_inputs; i++)
        keep = cand[sb->cat[3 * i]->id];
      if (!keep) {
        cand[v->id] = false;
        changed = true;
      }
    }
  }
  return any;
}

size_t tc_session_qdq_nodes(const tc_session *s) { return s ? s->qdq_count : 0; }
size_t tc_session_qdq_adds(const tc_session *s) { return s ? s->qdq_adds : 0; }
size_t tc_session_qdq_concats(const tc_session *s) { return s ? s->qdq_concats : 0; }
size_t tc_session_qdq_pools(const tc_session *s) { return s ? s->qdq_pools : 0; }
size_t tc_session_qdq_fused(const tc_session *s) { return s ? s->qdq_fused : 0; }

const tc_node *tc_qdq_runs(const tc_session *s, const tc_node *n) {
  const tc_qdq_bind *b = s->qdq && n->graph == s->m->graph ? s->qdq[n->id] : NULL;
  return b && b->kind == Q_OUT ? b->src : n;
}

static const tc_rt_tensor *val(const tc_run *r, const tc_value *v) {
  return v ? r->vals[v->id] : NULL;
}

/* Runs node n's own kernel on ins (k's node n), as written. */
static tc_status run_written(const tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                             const tc_rt_tensor **ins, tc_rt_tensor *out) {
  return r->s->kernels[n->id]->run(k, ins, n->n_inputs, out, n->n_outputs);
}

/* A bound Add whose operands a, b (plain) are not of one shape
 * (broadcasting): its DequantizeLinear nodes, the Add and the Relu as
 * written, into scratch; float32 y, or quantized by q (k: q's context) */
static tc_status add_written(const tc_run *r, const tc_node *n, const tc_node *q, tc_kernel_ctx *kn,
                             tc_kernel_ctx *k, const tc_rt_tensor *a, const tc_rt_tensor *bt,
                             tc_rt_tensor *out) {
  tc_rt_tensor d[2], y, t;
  tc_kernel_ctx kd = *kn;
  kd.outputs = NULL; /* scratch from the arena */
  for (int i = 0; i < 2; i++) {
    const tc_node *dq = n->inputs[i]->producer;
    const tc_rt_tensor *ins[3] = {i ? bt : a, val(r, dq->inputs[1]),
                                  dq->n_inputs > 2 ? val(r, dq->inputs[2]) : NULL};
    kd.node = dq;
    kd.opset = r->s->opsets[dq->id];
    tc_status st = run_written(r, dq, &kd, ins, &d[i]);
    if (st)
      return st;
  }
  const tc_rt_tensor *ai[2] = {&d[0], &d[1]};
  kd.node = n;
  kd.opset = r->s->opsets[n->id];
  tc_status st = run_written(r, n, q ? &kd : kn, ai, q ? &y : out);
  if (st || !q)
    return st;
  const tc_node *rl = r->s->qdq[q->id]->relu_node;
  if (rl) {
    const tc_rt_tensor *ri[1] = {&y};
    kd.node = rl;
    kd.opset = r->s->opsets[rl->id];
    if ((st = run_written(r, rl, &kd, ri, &t)))
      return st;
    y = t;
  }
  const tc_rt_tensor *qi[3] = {&y, val(r, q->inputs[1]),
                               q->n_inputs > 2 ? val(r, q->inputs[2]) : NULL};
  return run_written(r, q, k, qi, out);
}

/* Whether b, smaller than a and of no higher rank, is broadcast over a's
 * leading axes only: its dims after its leading ones are a's last ones. */
static bool trails(const tc_rt_tensor *b, const tc_rt_tensor *a) {
  if (b->rank > a->rank || tc_rt_numel(b) >= tc_rt_numel(a) || !tc_rt_numel(b))
    return false;
  size_t s = 0;
  while (s < b->rank && b->dims[s] == 1)
    s++;
  for (size_t i = s; i < b->rank; i++)
    if (b->dims[i] != a->dims[a->rank - b->rank + i])
      return false;
  return true;
}

/* The int8 Add n (kn: its context); quantized by q's scale and zero point
 * when q (k: q's context, whose outputs out are). */
static tc_status add_run(const tc_run *r, const tc_node *n, const tc_qdq_bind *b, const tc_node *q,
                         tc_kernel_ctx *kn, tc_kernel_ctx *k, tc_rt_tensor *out) {
  const tc_rt_tensor *a = val(r, b->xq), *as = val(r, b->xs), *az = val(r, b->xz),
                     *bt = val(r, b->wq), *bs = val(r, b->ws), *bz = val(r, b->wz);
  const tc_qdq_bind *qb = q ? r->s->qdq[q->id] : NULL;
  const tc_rt_tensor *ys = qb ? val(r, qb->xs) : NULL, *yz = qb ? val(r, qb->xz) : NULL;
  if (!a || !bt || !is_q8(a->dtype) || !is_q8(bt->dtype) || (az && az->dtype != a->dtype) ||
      (bz && bz->dtype != bt->dtype))
    return tc_kernel_fail(kn, TC_STATUS_INVALID, "the int8 Add's operands are not 8-bit");
  bool same = a->rank == bt->rank && !memcmp(a->dims, bt->dims, a->rank * sizeof *a->dims);
  const bool *cl = r->s->nhwc; /* channels-last operands and output (tc_qdq_layout_prune) */
  bool an = cl && cl[b->xq->id], bn = cl && cl[b->wq->id];
  if (!same && (an || bn)) { /* broadcasting: in the plain order */
    const tc_rt_tensor *pa = an ? tc_layout_plain_copy(kn, a) : a,
                       *pb = bn ? tc_layout_plain_copy(kn, bt) : bt;
    if (!pa || !pb)
      return tc_kernel_fail(kn, TC_STATUS_NOMEM, "out of memory");
    tc_status st = add_written(r, n, q, kn, k, pa, pb, out);
    return st || !q || !cl[q->outputs[0]->id] ? st : tc_layout_reorder(kn, &out[0], true);
  }
  bool swap = false;
  size_t period = 0; /* one operand broadcast over the other's leading axes (a bias) */
  if (!same && trails(bt, a))
    period = tc_rt_numel(bt);
  else if (!same && trails(a, bt))
    period = tc_rt_numel(a), swap = true;
  if ((!same && !period) || (period > 1 && period < 16)) /* (short rows: as written) */
    return add_written(r, n, q, kn, k, a, bt, out);
  if (swap) { /* float addition commutes: the same bits */
    const tc_rt_tensor *t = a, *ts = as, *tz = az;
    a = bt, as = bs, az = bz, bt = t, bs = ts, bz = tz;
  }
  int32_t ydt = !q ? TC_DTYPE_F32 : yz ? yz->dtype : TC_DTYPE_U8;
  tc_status st = tc_kernel_alloc(q ? k : kn, &out[0], ydt, a->rank, a->dims);
  if (st)
    return st;
  tc_qadd j = {.a = a->data,
               .b = bt->data,
               .y = out[0].data,
               .adt = a->dtype,
               .bdt = bt->dtype,
               .ydt = ydt,
               .as = *(const float *)as->data,
               .bs = *(const float *)bs->data,
               .ys = ys ? *(const float *)ys->data : 1.0f,
               .az = az ? (int32_t)tc_rt_get_i64(az, 0) : 0,
               .bz = bz ? (int32_t)tc_rt_get_i64(bz, 0) : 0,
               .yz = yz ? (int32_t)tc_rt_get_i64(yz, 0) : 0,
               .relu = qb && qb->relu_node,
               .n = tc_rt_numel(a),
               .b_period = period};
  tc_qadd_run(&j);
  return TC_STATUS_OK;
}

/* The n 8-bit values x (xdt, scale xs, zero point xz) through
 * DequantizeLinear and QuantizeLinear to ydt, ys and yz (a float32 ydt:
 * DequantizeLinear alone) into y, in one pass: tc_qadd_run adding a zero,
 * the ops' arithmetic bit for bit. */
static void requantize(const void *x, int32_t xdt, float xs, int32_t xz, void *y, int32_t ydt,
                       float ys, int32_t yz, size_t n) {
  static const uint8_t zero[1];
  tc_qadd j = {.a = x,
               .b = zero,
               .y = y,
               .adt = xdt,
               .bdt = TC_DTYPE_U8,
               .ydt = ydt,
               .as = xs,
               .bs = 1.0f,
               .ys = ys,
               .az = xz,
               .yz = yz,
               .n = n,
               .b_period = 1};
  tc_qadd_run(&j);
}

/* The int8 Concat n (kn: its context) of 8-bit inputs; quantized by q's
 * scale and zero point when q (k: q's context, whose outputs out are), else
 * float32. An input quantized as y is copied; any other is requantized,
 * DequantizeLinear then QuantizeLinear (tc_qadd_run adding a zero). */
static tc_status concat_run(const tc_run *r, const tc_node *n, const tc_qdq_bind *b,
                            const tc_node *q, tc_kernel_ctx *kn, tc_kernel_ctx *k,
                            tc_rt_tensor *out) {
  const tc_qdq_bind *qb = q ? r->s->qdq[q->id] : NULL;
  const tc_rt_tensor *ys = qb ? val(r, qb->xs) : NULL, *yz = qb ? val(r, qb->xz) : NULL;
  const tc_rt_tensor *x0 = val(r, b->cat[0]);
  int64_t axis = tc_axis(tc_attr_int(n, "axis", 0), x0 ? x0->rank : 0), dims[TC_MAX_RANK];
  if (!x0 || axis < 0)
    return tc_kernel_fail(kn, TC_STATUS_INVALID, "the int8 Concat's axis is out of range");
  memcpy(dims, x0->dims, x0->rank * sizeof *dims);
  dims[axis] = 0;
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_rt_tensor *x = val(r, b->cat[3 * i]);
    bool ok = x && is_q8(x->dtype) && x->rank == x0->rank;
    for (size_t d = 0; ok && d < x->rank; d++)
      ok = (int64_t)d == axis || x->dims[d] == x0->dims[d];
    if (!ok)
      return tc_kernel_fail(kn, TC_STATUS_INVALID,
                            "input %zu of the int8 Concat is not 8-bit or does not match input 0",
                            i);
    dims[axis] += x->dims[axis];
  }
  int32_t ydt = !q ? TC_DTYPE_F32 : yz ? yz->dtype : TC_DTYPE_U8;
  tc_status st = tc_kernel_alloc(q ? k : kn, &out[0], ydt, x0->rank, dims);
  if (st)
    return st;
  size_t outer = 1, inner = 1, es = tc_dtype_bytes(ydt, 1);
  for (int64_t d = 0; d < axis; d++)
    outer *= (size_t)dims[d];
  for (size_t d = (size_t)axis + 1; d < x0->rank; d++)
    inner *= (size_t)dims[d];
  const bool *cl = r->s->nhwc; /* channels-last inputs and output (tc_qdq_layout_prune) */
  if (cl && cl[(q ? q : n)->outputs[0]->id]) { /* (a float32 one: tc_qdq_float_concat) */
    if (axis != 1 || x0->rank != 4)
      return tc_kernel_fail(kn, TC_STATUS_INVALID, "a channels-last Concat is over axis 1 of 4");
    /* [N * H * W, C] rows: each position's channels one input after another */
    outer = (size_t)(dims[0] * dims[2] * dims[3]), inner = 1;
  }
  float ysv = ys ? *(const float *)ys->data : 1.0f;
  int32_t yzv = yz ? (int32_t)tc_rt_get_i64(yz, 0) : 0;
  size_t at = 0; /* elements of an output row before input i's block */
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_rt_tensor *x = val(r, b->cat[3 * i]), *xs = val(r, b->cat[3 * i + 1]),
                       *xz = val(r, b->cat[3 * i + 2]);
    size_t blk = (size_t)x->dims[axis] * inner, nx = tc_rt_numel(x);
    float xsv = *(const float *)xs->data;
    int32_t xzv = xz ? (int32_t)tc_rt_get_i64(xz, 0) : 0;
    const unsigned char *src = x->data;
    /* (DequantizeLinear then QuantizeLinear gives x back when quantized as y) */
    if (!(q && x->dtype == ydt && xsv == ysv && xzv == yzv)) {
      unsigned char *t = tc_arena_alloc(kn->arena, nx * es + 1);
      if (!t)
        return tc_kernel_fail(kn, TC_STATUS_NOMEM, "out of memory");
      requantize(src, x->dtype, xsv, xzv, t, ydt, ysv, yzv, nx); /* the whole input */
      src = t;
    }
    for (size_t o = 0; o < outer; o++)
      memcpy((unsigned char *)out[0].data + (o * (size_t)dims[axis] * inner + at) * es,
             src + o * blk * es, blk * es);
    at += blk;
  }
  return TC_STATUS_OK;
}

/* The 8-bit MaxPool n (kn: its context) for the QuantizeLinear q that took
 * it over: MaxPool's own kernel on the 8-bit values (channels-last with its
 * input and q's output, tc_qdq_layout_prune), then, unless q quantizes as x is,
 * DequantizeLinear and q's QuantizeLinear of the pooled bytes (tc_qadd_run
 * adding a zero: the ops' arithmetic, bit for bit). */
static tc_status pool_run(const tc_run *r, const tc_node *n, const tc_qdq_bind *b, const tc_node *q,
                          tc_kernel_ctx *kn, tc_rt_tensor *out) {
  const tc_qdq_bind *qb = q ? r->s->qdq[q->id] : NULL;
  const tc_rt_tensor *x = val(r, b->xq), *xs = val(r, b->xs), *xz = val(r, b->xz),
                     *ys = qb ? val(r, qb->xs) : NULL, *yz = qb ? val(r, qb->xz) : NULL;
  if (!qb || !x || !is_q8(x->dtype) || (xz && xz->dtype != x->dtype))
    return tc_kernel_fail(kn, TC_STATUS_INVALID, "the 8-bit MaxPool's input is not 8-bit");
  const bool *cl = r->s->nhwc;
  kn->nhwc_in = kn->nhwc_out = cl && cl[b->xq->id] ? 1u : 0u;
  int32_t ydt = yz ? yz->dtype : TC_DTYPE_U8;
  float xsv = *(const float *)xs->data, ysv = *(const float *)ys->data;
  int32_t xzv = xz ? (int32_t)tc_rt_get_i64(xz, 0) : 0,
          yzv = yz ? (int32_t)tc_rt_get_i64(yz, 0) : 0;
  const tc_rt_tensor *ins[1] = {x};
  if (ydt == x->dtype && xsv == ysv && xzv == yzv) /* the pooled bytes are y's */
    return run_written(r, n, kn, ins, out);
  tc_kernel_ctx kp = *kn;
  kp.outputs = NULL; /* the pooled bytes: scratch from the arena */
  tc_rt_tensor p;
  tc_status st = run_written(r, n, &kp, ins, &p);
  if (st || (st = tc_kernel_alloc(kn, &out[0], ydt, p.rank, p.dims)))
    return st;
  requantize(p.data, x->dtype, xsv, xzv, out[0].data, ydt, ysv, yzv, tc_rt_numel(&p));
  return TC_STATUS_OK;
}

/* The int8 Gemm n (kn: its context): its bias a float32 row, from the
 * int32 one's DequantizeLinear arithmetic or C itself. */
static tc_status gemm_run(const tc_run *r, const tc_node *n, const tc_qdq_bind *b,
                          tc_kernel_ctx *kn, tc_rt_tensor *out) {
  const tc_rt_tensor *wq = val(r, b->wq),
                     *c = n->n_inputs > 2 && !b->bq ? val(r, n->inputs[2]) : NULL;
  tc_rt_tensor bias = {.dtype = TC_DTYPE_F32, .rank = 1};
  size_t N = (size_t)wq->dims[b->tb ? 0 : 1];
  if (b->bq || c) {
    float *f = tc_arena_alloc(kn->arena, (N + 1) * sizeof *f);
    if (!f)
      return tc_kernel_fail(kn, TC_STATUS_NOMEM, "out of memory");
    if (b->bq) {
      const tc_rt_tensor *bq = val(r, b->bq), *bs = val(r, b->bs);
      size_t nbs = tc_rt_numel(bs);
      for (size_t i = 0; i < N; i++) /* DequantizeLinear's (x - 0) * scale */
        f[i] = (float)((const int32_t *)bq->data)[i] * ((const float *)bs->data)[nbs == 1 ? 0 : i];
    } else {
      memcpy(f, c->data, N * sizeof *f);
    }
    bias.dims[0] = (int64_t)N, bias.data = f, bias.bytes = N * sizeof *f;
  }
  return tc_gemm_qdq_run(kn, val(r, b->xq), val(r, b->xs), val(r, b->xz), wq, val(r, b->ws), b->tb,
                         b->bq || c ? &bias : NULL, b->wq, out);
}

/* Runs bound node n (k: its context) from the run's values; q (k2: its
 * context, whose outputs out are) the QuantizeLinear it runs for, or NULL. */
static tc_status bound_run(const tc_run *r, const tc_node *n, tc_kernel_ctx *kn, const tc_node *q,
                           tc_kernel_ctx *kq, tc_rt_tensor *out) {
  const tc_qdq_bind *b = r->s->qdq[n->id];
  if (b->kind == Q_MATMUL)
    return tc_matmul_qdq_run(kn, val(r, b->xq), val(r, b->xs), val(r, b->xz), val(r, b->wq),
                             val(r, b->ws), b->wq, out);
  if (b->kind == Q_ADD)
    return add_run(r, n, b, q, kn, kq, out);
  if (b->kind == Q_CONCAT)
    return concat_run(r, n, b, q, kn, kq, out);
  if (b->kind == Q_GEMM)
    return gemm_run(r, n, b, kn, out);
  if (b->kind == Q_POOL)
    return pool_run(r, n, b, q, kn, out);
  bool add = n->n_inputs > 3 && n->inputs[3];
  const tc_qdq_bind *qb = q ? r->s->qdq[q->id] : NULL;
  const bool *cl = r->s->nhwc; /* channels-last x and y (tc_qdq_layout_prune) */
  kn->nhwc_in = cl && cl[b->xq->id] ? 1u : 0u;
  /* (its own float32 output channels-last: tc_qdq_float_conv) */
  kn->nhwc_out = cl && cl[(q ? q : n)->outputs[0]->id] ? 1u : 0u;
  tc_conv_qdq cq = {.xq = val(r, b->xq),
                    .xs = val(r, b->xs),
                    .xz = val(r, b->xz),
                    .wq = val(r, b->wq),
                    .ws = val(r, b->ws),
                    .b = b->bq || n->n_inputs < 3 ? NULL : val(r, n->inputs[2]),
                    .bq = val(r, b->bq),
                    .bs = val(r, b->bs),
                    .z = add ? val(r, n->inputs[3]) : NULL,
                    .ys = qb ? val(r, qb->xs) : NULL,
                    .yz = qb ? val(r, qb->xz) : NULL,
                    .relu = qb && qb->relu_node,
                    .wq_value = b->wq};
  return tc_conv_qdq_run(kn, &cq, out);
}

tc_status tc_qdq_run(const tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                     const tc_rt_tensor *const *in, tc_rt_tensor *out) {
  (void)in; /* operands come from the run's values: a Q_OUT node runs its source's */
  const tc_qdq_bind *b = r->s->qdq[n->id];
  if (b->kind != Q_OUT)
    return bound_run(r, n, k, NULL, NULL, out);
  const tc_node *src = b->src;
  tc_kernel_ctx ks = *k; /* the source node's context, writing n's outputs */
  ks.node = src;
  ks.opset = r->s->opsets[src->id];
  ks.out_node = n;
  ks.conv_algo = r->s->conv_algo ? (tc_conv_algo)r->s->conv_algo[src->id] : 0;
  ks.gemm_algo = r->s->gemm_algo ? (tc_gemm_algo)r->s->gemm_algo[src->id] : 0;
  return bound_run(r, src, &ks, n, k, out);
}
