/* quantize-static: float32 MatMuls and convolutions with constant weights to
 * standard QDQ int8 (QuantizeLinear / DequantizeLinear around the float op),
 * with activation ranges from calibration (tc_pass_options.qranges).
 *
 *   x ─▶ MatMul / Conv (W, B) ─▶ y
 *   ⇒   x ─▶ QuantizeLinear(xs, xz) ─▶ xq:uint8 ─▶ DequantizeLinear(xs, xz) ─┐
 *        Wq:int8 ─▶ DequantizeLinear(ws, 0, axis) ────────────────────────────┼▶ MatMul / Conv ─▶ y
 *       [Bq:int32 ─▶ DequantizeLinear(xs * ws, axis 0) ───────────────────────┘]
 *
 * Activations: uint8, asymmetric over the calibrated range widened to hold
 * 0 (so zero padding and ReLU's zero are exact): xs = (hi - lo) / 255, xz =
 * round(-lo / xs). One QuantizeLinear / DequantizeLinear pair per tensor,
 * shared by every quantized reader. Weights: int8, symmetric per output
 * channel (MatMul: per column of W [K, N], axis 1; Conv: per output channel,
 * axis 0), ws = max |W| / 127, values in [-127, 127], zero point 0 written
 * out. A convolution's constant bias becomes int32 at scale xs * ws (left
 * float32 if a value would not fit). ONNX Runtime and TensorRT fuse these
 * groups into int8 kernels; libtacort binds them to its own (runtime/qdq.c).
 *
 * Candidates: MatMul with float32 x of rank >= 2 and a constant 2-D float32
 * W with K, N >= 16 (and a Gemm that is such a MatMul and a bias, with a
 * calibrated A: tc_pass_gemm_as_matmul first); Conv (and tacoc's Conv<Act>
 * / ConvAdd<Act>) with a constant float32 W, ungrouped or with at least
 * GROUP_MIN_CHANNELS input and output channels per group (AlexNet's two
 * groups of 48 to 192: oneDNN's int8 convolution runs them; depthwise and
 * other narrow groups stay float32, their per-group products too small for
 * int8 to pay). x needs a calibrated range. The node's first
 * output is its key: nodes in half_keep stay float32, and half_note hears of
 * every candidate, quantized (why NULL) or kept (why says why).
 *
 * With tc_pass_options.qdq_outputs (the default form; not with
 * --qdq-inputs-only) each quantized node's calibrated output gets a pair
 * too (output_pair; a narrow convolution's only when something reads it
 * in 8 bits), for runtimes that fuse DequantizeLinear -> op ->
 * QuantizeLinear groups (ONNX Runtime), an Add of two paired values reads
 * their pairs and pairs its output (pair_adds: residual sums), and
 * MaxPools and Concats of paired values read the pairs (pair_moves; a
 * MaxPool's pair takes its input's scale and zero point, a Concat's the
 * union of its inputs' ranges).
 *
 * Requires: default-domain opset >= 13 (per-axis DequantizeLinear; raised
 * when exact). Runs on the main graph only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pass.h"
#include "shapes.h"

static const tc_qrange *range_of(const tc_pass_ctx *c, const tc_value *v) {
  for (size_t i = 0; c->opt && i < c->opt->n_qranges; i++)
    if (strcmp(c->opt->qranges[i].name, v->name) == 0)
      return &c->opt->qranges[i];
  return NULL;
}

/* uint8 scale and zero point for [lo, hi] widened to hold 0. */
static void act_params(double lo, double hi, float *scale, uint8_t *zp) {
  lo = lo < 0 ? lo : 0;
  hi = hi > 0 ? hi : 0;
  float s = (float)((hi - lo) / 255.0);
  if (!(s > 0) || !isfinite(s))
    s = 1.0f;
  double z = nearbyint(-lo / s);
  *scale = s;
  *zp = (uint8_t)(z < 0 ? 0 : z > 255 ? 255 : z);
}

/* A node op before `before` reading in[0..n_in) with one new output named
 * after out_base, typed like `like` with dtype elem; the output, or NULL. */
static tc_value *add_node(tc_graph *g, tc_node *before, const char *op, const char *base,
                          tc_value *const *in, size_t n_in, const tc_value *like, int32_t elem,
                          int64_t axis) {
  char name[240];
  snprintf(name, sizeof name, "%.200s_%s", base, op);
  const char *fresh = tc_graph_fresh_name(g, name);
  tc_node *n = fresh ? tc_graph_insert_node(g, before, op, "", fresh, n_in, 1, axis >= 0) : NULL;
  for (size_t i = 0; n && i < n_in; i++)
    if (tc_node_set_input(n, i, in[i]))
      return NULL;
  if (!n || (axis >= 0 && tc_node_set_attr_int(n, 0, "axis", axis)))
    return NULL;
  snprintf(name, sizeof name, "%.200s_%s", base,
           strcmp(op, "QuantizeLinear") == 0 ? "quantized" : "dequantized");
  tc_value *out = tc_graph_new_temp(g, name);
  if (!out || tc_pass_set_type_like(out, like, elem) || tc_node_set_output(n, 0, out))
    return NULL;
  return out;
}

/* The tensor whose pair (QuantizeLinear, then DequantizeLinear, both this
 * pass's) gives x, or NULL when x is not such a pair's output. */
static tc_value *paired_source(const tc_value *x) {
  const tc_node *d = x->producer;
  if (!d || !tc_is_op(d, "DequantizeLinear") || !d->name || !strstr(d->name, "_DequantizeLinear") ||
      !d->inputs[0] || !d->inputs[0]->producer)
    return NULL;
  const tc_node *q = d->inputs[0]->producer;
  return tc_is_op(q, "QuantizeLinear") && q->name && strstr(q->name, "_QuantizeLinear")
             ? q->inputs[0]
             : NULL;
}

/* MaxPool n has one output (no Indices): its values are its input's. */
static bool plain_maxpool(const tc_node *n) {
  return tc_is_op(n, "MaxPool") && n->n_inputs >= 1 && n->inputs[0] && n->n_outputs >= 1 &&
         n->outputs[0] && (n->n_outputs == 1 || !n->outputs[1]);
}

/* The range a pair of v is made with (*out; false when there is none):
 * v's calibrated one. In the full QDQ form a MaxPool's output takes its
 * input's (the pooled values are input values: the same scale and zero
 * point requantize nothing, and ONNX Runtime and libtacort pool the 8-bit
 * values, as onnxruntime.quantization writes it), and a Concat's output the
 * union of its inputs' (ONNX Runtime makes a QLinearConcat). */
static bool pair_range(const tc_pass_ctx *c, const tc_value *v, tc_qrange *out, int depth) {
  if (paired_source(v))
    v = paired_source(v);
  const tc_node *p = v->producer;
  bool full = c->opt && c->opt->qdq_outputs && p && depth < 64;
  if (full && plain_maxpool(p) && pair_range(c, p->inputs[0], out, depth + 1))
    return true;
  if (full && tc_is_op(p, "Concat") && p->n_inputs) {
    tc_qrange u = {.name = v->name, .lo = INFINITY, .hi = -INFINITY}, ri;
    bool all = true;
    for (size_t i = 0; all && i < p->n_inputs; i++) {
      all = p->inputs[i] && pair_range(c, p->inputs[i], &ri, depth + 1);
      u.lo = all && ri.lo < u.lo ? ri.lo : u.lo;
      u.hi = all && ri.hi > u.hi ? ri.hi : u.hi;
    }
    if (all) {
      *out = u;
      return true;
    }
  }
  const tc_qrange *r = range_of(c, v);
  if (r)
    *out = *r;
  return r != NULL;
}

/* x itself when it is a pair's output, else the output of a pair of x
 * this pass made, or NULL. */
static tc_value *existing_pair(const tc_graph *g, tc_value *x) {
  if (paired_source(x))
    return x;
  for (size_t u = 0; u < x->n_uses; u++) {
    tc_node *q = x->uses[u].node;
    if (q->graph != g || !tc_is_op(q, "QuantizeLinear") || x->uses[u].slot != 0 || !q->name ||
        !strstr(q->name, "_QuantizeLinear"))
      continue;
    tc_value *xq = q->outputs[0];
    for (size_t k = 0; xq && k < xq->n_uses; k++)
      if (tc_is_op(xq->uses[k].node, "DequantizeLinear") && xq->uses[k].node->graph == g)
        return xq->uses[k].node->outputs[0];
  }
  return NULL;
}

/* The dequantized activation for x: x itself when it is a pair's output
 * (the full form put one after its producer), an existing pair's, or a new
 * pair. */
static tc_value *activation(tc_pass_ctx *c, tc_graph *g, tc_node *before, tc_value *x,
                            const tc_qrange *r) {
  tc_value *have = existing_pair(g, x);
  if (have)
    return have;
  float s;
  uint8_t z;
  act_params(r->lo, r->hi, &s, &z);
  char base[200];
  snprintf(base, sizeof base, "%.160s_scale", x->name);
  tc_value *sv = tc_pass_new_const_f32(g, base, &s, 0, NULL);
  snprintf(base, sizeof base, "%.160s_zero_point", x->name);
  tc_value *zv = sv ? tc_pass_new_const(g, base, TC_DTYPE_U8, &z, 0, NULL) : NULL;
  tc_value *qin[] = {x, sv, zv};
  tc_value *xq =
      zv ? add_node(g, before, "QuantizeLinear", x->name, qin, 3, x, TC_DTYPE_U8, -1) : NULL;
  tc_value *din[] = {xq, sv, zv};
  tc_value *xd =
      xq ? add_node(g, before, "DequantizeLinear", x->name, din, 3, x, TC_DTYPE_F32, -1) : NULL;
  if (!xd)
    tc_pass_nomem(c);
  return xd;
}

/* Symmetric int8 of w viewed as [outer, D, inner] per index on the middle
 * axis (D channels): scales s[D], values q. */
static void quantize_weight(const float *w, size_t outer, size_t D, size_t inner, int8_t *q,
                            float *s) {
  for (size_t d = 0; d < D; d++) {
    float m = 0;
    for (size_t o = 0; o < outer; o++)
      for (size_t i = 0; i < inner; i++)
        m = fmaxf(m, fabsf(w[(o * D + d) * inner + i]));
    s[d] = m > 0 ? m / 127.0f : 1.0f;
  }
  for (size_t o = 0; o < outer; o++)
    for (size_t d = 0; d < D; d++)
      for (size_t i = 0; i < inner; i++) {
        size_t at = (o * D + d) * inner + i;
        float r = nearbyintf(w[at] / s[d]);
        q[at] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
      }
}

/* Quantizes node n's input slot (a constant float32 tensor wt) per channel
 * on axis; returns the dequantized value, and the scales in *scales
 * (malloc'ed, D of them) when scales is not NULL. */
static tc_value *weight(tc_pass_ctx *c, tc_graph *g, tc_node *n, size_t slot, const tc_tensor *wt,
                        size_t axis, float **scales) {
  tc_value *wv = n->inputs[slot];
  size_t outer = 1, inner = 1, D = (size_t)wt->dims[axis], cnt = 1;
  for (size_t i = 0; i < wt->rank; i++) {
    cnt *= (size_t)wt->dims[i];
    if (i < axis)
      outer *= (size_t)wt->dims[i];
    else if (i > axis)
      inner *= (size_t)wt->dims[i];
  }
  float *w = NULL, *s = malloc((D + 1) * sizeof *s);
  int8_t *q = malloc(cnt + 1), *z = calloc(D + 1, 1);
  tc_value *out = NULL;
  if (!s || !q || !z || tc_const_floats(wt, &w) < 0)
    goto done;
  quantize_weight(w, outer, D, inner, q, s);
  char base[200];
  int64_t sd[1] = {(int64_t)D};
  snprintf(base, sizeof base, "%.160s_quantized", wv->name);
  tc_value *qv = tc_pass_new_const(g, base, TC_DTYPE_I8, q, wt->rank, wt->dims);
  snprintf(base, sizeof base, "%.160s_scale", wv->name);
  tc_value *sv = qv ? tc_pass_new_const_f32(g, base, s, 1, sd) : NULL;
  snprintf(base, sizeof base, "%.160s_zero_point", wv->name);
  tc_value *zv = sv ? tc_pass_new_const(g, base, TC_DTYPE_I8, z, 1, sd) : NULL;
  tc_value *din[] = {qv, sv, zv};
  out = zv ? add_node(g, n, "DequantizeLinear", wv->name, din, 3, wv, TC_DTYPE_F32, (int64_t)axis)
           : NULL;
  if (out && scales) {
    *scales = s;
    s = NULL;
  }
done:
  if (!out)
    tc_pass_nomem(c);
  free(w);
  free(s);
  free(q);
  free(z);
  return out;
}

/* The bias of a quantized convolution as int32 at scale xs * ws[m]; NULL
 * (bias left as it is) when it is not a constant float32 [M] tensor or a
 * value would not fit. *oom on allocation failure. */
static tc_value *bias(tc_graph *g, tc_node *n, float xs, const float *ws, int64_t M, bool *oom) {
  tc_value *bv = n->inputs[2];
  const tc_tensor *bt = tc_value_const(bv);
  if (!bt || bt->dtype != TC_DTYPE_F32 || bt->rank != 1 || bt->dims[0] != M)
    return NULL;
  float *b = NULL, *s = malloc((size_t)(M + 1) * sizeof *s);
  int32_t *q = malloc((size_t)(M + 1) * sizeof *q);
  tc_value *out = NULL;
  *oom = !s || !q || tc_const_floats(bt, &b) < 0;
  bool fits = !*oom;
  for (int64_t m = 0; fits && m < M; m++) {
    s[m] = xs * ws[m];
    double r = nearbyint((double)b[m] / (double)s[m]);
    fits = s[m] > 0 && isfinite(r) && fabs(r) < 2147483647.0;
    if (fits)
      q[m] = (int32_t)r;
  }
  if (fits) {
    char base[200];
    int64_t sd[1] = {M};
    snprintf(base, sizeof base, "%.160s_quantized", bv->name);
    tc_value *qv = tc_pass_new_const(g, base, TC_DTYPE_I32, q, 1, sd);
    snprintf(base, sizeof base, "%.160s_scale", bv->name);
    tc_value *sv = qv ? tc_pass_new_const_f32(g, base, s, 1, sd) : NULL;
    tc_value *din[] = {qv, sv};
    out = sv ? add_node(g, n, "DequantizeLinear", bv->name, din, 2, bv, TC_DTYPE_F32, 0) : NULL;
    *oom = !out;
  }
  free(b);
  free(s);
  free(q);
  return out;
}

static tc_status pair_readers(tc_pass_ctx *c, tc_graph *g, tc_node *n, tc_value *y,
                              const tc_qrange *r, bool moving_only);

/* u moves values: a MaxPool or a Concat. (Not an AveragePool: ONNX
 * Runtime makes a QLinearAveragePool of one between pairs, which ran
 * Inception v2 slower, 13.2 -> 16.4 ms, than its float pooling.) */
static bool pooling(const tc_node *u) { return plain_maxpool(u) || tc_is_op(u, "Concat"); }

/* Channels per group (in and out) from which a grouped convolution is
 * quantized (the note in visit says the number). */
#define GROUP_MIN_CHANNELS 16

/* Convolution n (weight wt) is grouped with fewer channels per group. */
static bool narrow_groups(const tc_node *n, const tc_tensor *wt) {
  const tc_attr *grp = tc_node_attr(n, "group");
  return grp && grp->i != 1 &&
         (grp->i < 1 || wt->rank < 2 || wt->dims[0] / grp->i < GROUP_MIN_CHANNELS ||
          wt->dims[1] < GROUP_MIN_CHANNELS);
}

/* Node u's constant weight (input 1): float32, or the int8 one behind the
 * DequantizeLinear this pass gave it; NULL when there is none. */
static const tc_tensor *weight_of(const tc_node *u) {
  const tc_value *w = u->n_inputs > 1 ? u->inputs[1] : NULL;
  const tc_node *d = w ? w->producer : NULL;
  if (d && tc_is_op(d, "DequantizeLinear") && d->n_inputs && d->inputs[0])
    w = d->inputs[0];
  const tc_tensor *wt = w ? tc_value_const(w) : NULL;
  return wt && (wt->dtype == TC_DTYPE_F32 || wt->dtype == TC_DTYPE_I8) ? wt : NULL;
}

/* Node u is or may be quantized (a MatMul, Gemm or convolution with a
 * constant weight, not narrowly grouped). */
static bool int8_candidate(const tc_node *u) {
  bool conv = tc_pass_is_conv(u);
  if (!(conv || tc_is_op(u, "MatMul") || tc_pass_is_gemm(u)))
    return false;
  const tc_tensor *wt = weight_of(u);
  return wt && !(conv && narrow_groups(u, wt));
}

/* A convolution's products per output value: C / group times the kernel
 * size (0 when its weight is not a constant). */
static int64_t conv_depth(const tc_node *n) {
  const tc_tensor *wt = weight_of(n);
  int64_t d = wt && wt->rank >= 2 ? 1 : 0;
  for (size_t i = 1; d && i < wt->rank; i++)
    d *= wt->dims[i];
  return d;
}

/* Products per output value from which a convolution's output is paired
 * whatever reads it: SqueezeNet's last convolution (512, before its global
 * pooling) and AlexNet's first two (363 and 1200, before LRN) ran 1.4-1.5x
 * slower in ONNX Runtime without their pairs; the MobileNetV3 convolutions
 * of PP-OCR's classifier and detector before HardSwish and depthwise
 * convolutions (mostly below 200) no faster with them. */
#define WIDE_CONV 256

/* Whether a reader of y takes it in 8 bits once y has a pair: a candidate,
 * a Concat or MaxPool (pair_moves), or an Add whose other operand has or
 * will have a pair (a residual sum, pair_adds). A convolution's y read only
 * by float ops (HardSwish, Resize, a depthwise convolution) gets no pair:
 * ONNX Runtime would run the convolution as QLinearConv between layout
 * transposes, then dequantize, which measured no faster than float there
 * (PP-OCR's MobileNetV3 classifier and detector: bench/RESULTS.md). */
static bool read_in_8bit(const tc_graph *g, tc_value *y) {
  for (size_t i = 0; i < y->n_uses; i++) {
    const tc_node *u = y->uses[i].node;
    if (u->graph != g)
      continue;
    if (int8_candidate(u) || pooling(u))
      return true;
    if (tc_is_op(u, "Add") && u->n_inputs == 2 && u->inputs[0] && u->inputs[1]) {
      tc_value *o = u->inputs[y->uses[i].slot == 0 ? 1 : 0];
      if (paired_source(o) || existing_pair(g, o) || (o->producer && int8_candidate(o->producer)))
        return true;
    }
  }
  return false;
}

/* The full form: node n's (quantized) output y gets its own pair, after n,
 * every reader of y then reading the pair's output; not for a graph output,
 * a y without a calibrated range, or a narrow convolution's y that only
 * float ops read. A y without a range read only by an Add or Relu (a
 * Gemm's bias and activation, tc_pass_gemm_as_matmul) passes the pair on
 * to that node's output, whose range the Gemm's output gave. */
static tc_status output_pair(tc_pass_ctx *c, tc_graph *g, tc_node *n) {
  tc_value *y = n->outputs[0];
  /* a MatMul's or a wide convolution's output is paired for any reader
   * (ONNX Runtime's int8 GEMM or convolution pays for the dequantization
   * after it), a narrow convolution's or an Add's for 8-bit readers only */
  bool any = tc_is_op(n, "MatMul") || (tc_pass_is_conv(n) && conv_depth(n) >= WIDE_CONV);
  tc_qrange r;
  while (y && !pair_range(c, y, &r, 0) && y->n_uses == 1 && !(y->flags & TC_VALUE_OUTPUT) &&
         (tc_is_op(y->uses[0].node, "Add") || tc_is_op(y->uses[0].node, "Relu"))) {
    n = y->uses[0].node;
    y = n->outputs[0];
  }
  if (!y || !pair_range(c, y, &r, 0) || !(any || read_in_8bit(g, y)))
    return TC_STATUS_OK;
  return pair_readers(c, g, n, y, &r, false);
}

/* y (n's output, range r) gets a pair after n unless it has one, and its
 * readers read the pair's output: all of them, or with moving_only its
 * MaxPools and Concats only (which ONNX Runtime and libtacort run on the
 * 8-bit values). Not for a graph output. */
static tc_status pair_readers(tc_pass_ctx *c, tc_graph *g, tc_node *n, tc_value *y,
                              const tc_qrange *r, bool moving_only) {
  if ((y->flags & TC_VALUE_OUTPUT) || !y->n_uses || !n->next)
    return TC_STATUS_OK;
  size_t nu = y->n_uses;
  tc_use *uses = malloc(nu * sizeof *uses);
  if (!uses)
    return tc_pass_nomem(c);
  memcpy(uses, y->uses, nu * sizeof *uses);
  tc_value *yd = activation(c, g, n->next, y, r);
  tc_status st = yd ? TC_STATUS_OK : TC_STATUS_NOMEM;
  /* (y may have had its pair already: its QuantizeLinear keeps reading y) */
  const tc_node *q = yd ? yd->producer->inputs[0]->producer : NULL;
  for (size_t i = 0; i < nu && !st; i++) {
    tc_node *u = uses[i].node;
    if (u->graph == g && u != q && (!moving_only || pooling(u)) &&
        tc_node_set_input(u, (size_t)uses[i].slot, yd))
      st = tc_pass_nomem(c);
  }
  free(uses);
  return st;
}

/* Whether y is read by a pooling node. */
static bool moved(const tc_value *y) {
  for (size_t i = 0; i < y->n_uses; i++)
    if (pooling(y->uses[i].node))
      return true;
  return false;
}

/* The full QDQ form around the ops that move values: a Concat or MaxPool
 * whose inputs all have pairs reads them, and its output, when a MaxPool
 * or Concat reads it, gets a pair for those (pair_range: a Concat's the
 * union of its inputs', a MaxPool's its input's), so that ONNX Runtime
 * makes QLinearConcat and 8-bit MaxPools and libtacort runs its int8
 * Concat and MaxPool: SqueezeNet's and GoogLeNet's pooling between int8
 * Concats and convolutions stays in 8 bits. In graph order, so each node
 * sees its inputs' pairs. */
static tc_status pair_moves(tc_pass_ctx *c, tc_graph *g) {
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first; n && !st; n = n->next) {
    bool cat = tc_is_op(n, "Concat") && n->n_inputs && n->outputs[0];
    if (!cat && !plain_maxpool(n))
      continue;
    bool all = true;
    for (size_t i = 0; all && i < n->n_inputs; i++)
      all = n->inputs[i] && existing_pair(g, n->inputs[i]);
    if (!all)
      continue;
    for (size_t i = 0; i < n->n_inputs; i++)
      if (tc_node_set_input(n, i, existing_pair(g, n->inputs[i])))
        return tc_pass_nomem(c);
    tc_value *y = n->outputs[0];
    tc_qrange r;
    if (moved(y) && pair_range(c, y, &r, 0))
      st = pair_readers(c, g, n, y, &r, true);
  }
  return st;
}

/* The full form: an Add of two values that have pairs (a residual sum of a
 * convolution's output and the block's input) reads their
 * DequantizeLinear outputs, and its output (through a Relu) gets a pair as
 * well, as onnxruntime.quantization writes it: ONNX Runtime makes a
 * QLinearAdd, libtacort an int8 Add, and the values stay int8 from
 * convolution to convolution. */
static tc_status pair_adds(tc_pass_ctx *c, tc_graph *g) {
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first; n && !st; n = n->next) {
    if (!tc_is_op(n, "Add") || n->n_inputs != 2 || !n->inputs[0] || !n->inputs[1] || !n->outputs[0])
      continue;
    tc_value *a = existing_pair(g, n->inputs[0]), *b = existing_pair(g, n->inputs[1]);
    if (!a || !b)
      continue;
    if (tc_node_set_input(n, 0, a) || tc_node_set_input(n, 1, b))
      return tc_pass_nomem(c);
    st = output_pair(c, g, n);
  }
  return st;
}

static void drop_if_unused(tc_graph *g, tc_value *v) {
  if (v && v->init && !v->n_uses && !(v->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT)))
    tc_graph_remove_init(g, v);
}

/* Checks candidate n; on a match rewrites it. */

static tc_status visit(tc_pass_ctx *c, tc_graph *g, const tc_shapes *sh, tc_node *n, bool *opset_ok,
                       const char **opset_why, size_t *count) {
  if (n->n_inputs < 2 || !n->inputs[0] || !n->inputs[1] || !n->outputs[0])
    return TC_STATUS_OK;
  tc_value *x = n->inputs[0], *wv = n->inputs[1];
  const tc_tensor *wt = tc_value_const(wv);
  /* (a pair this pass made has its source's shape, which inference saw) */
  const tc_shape *xs = tc_shape_of(sh, paired_source(x) ? paired_source(x) : x);
  int32_t dt = xs->dtype ? xs->dtype : tc_value_dtype(x);
  if (!dt) {
    tc_pass_half_note(c, n, "its input's element type is not known to shape inference");
    return TC_STATUS_OK;
  }
  if (dt != TC_DTYPE_F32)
    return TC_STATUS_OK;
  bool conv = tc_pass_is_conv(n);
  if (!wt || wt->dtype != TC_DTYPE_F32 || (conv ? wt->rank < 3 : wt->rank != 2)) {
    tc_pass_explain(c, n, "the weight is not a constant float32 tensor of the right rank");
    return TC_STATUS_OK;
  }
  if (conv && narrow_groups(n, wt)) {
    tc_pass_half_note(c, n,
                      "grouped convolution with fewer than 16 channels per group (depthwise among "
                      "them): per-group products too small for int8");
    return TC_STATUS_OK;
  }
  if (!conv && !tc_pass_int8_matmul_fits(c, n, xs, wt))
    return TC_STATUS_OK;
  tc_qrange rx;
  const tc_qrange *r = pair_range(c, x, &rx, 0) ? &rx : NULL;
  if (!r) {
    tc_pass_half_note(c, n, "no calibrated range for its input");
    return TC_STATUS_OK;
  }
  bool oom;
  if (!tc_pass_int8_ok(c, n, wt, *opset_ok, *opset_why, &oom))
    return oom ? tc_pass_nomem(c) : TC_STATUS_OK;
  float *ws = NULL;
  tc_value *xd = activation(c, g, n, x, r);
  tc_value *wd = xd ? weight(c, g, n, 1, wt, conv ? 0 : 1, &ws) : NULL;
  if (!wd)
    return TC_STATUS_NOMEM;
  tc_status st = TC_STATUS_OK;
  if (tc_node_set_input(n, 0, xd) || tc_node_set_input(n, 1, wd))
    st = tc_pass_nomem(c);
  drop_if_unused(g, wv);
  if (!st && conv && n->n_inputs > 2 && n->inputs[2]) {
    tc_value *bv = n->inputs[2];
    float *xsv = NULL;
    bool oom = tc_const_floats(tc_value_const(xd->producer->inputs[1]), &xsv) < 1;
    tc_value *bd = oom ? NULL : bias(g, n, xsv[0], ws, wt->dims[0], &oom);
    free(xsv);
    if (oom || (bd && tc_node_set_input(n, 2, bd)))
      st = tc_pass_nomem(c);
    drop_if_unused(g, bv);
  }
  free(ws);
  if (!st) {
    tc_pass_half_note(c, n, NULL);
    (*count)++;
    if (c->opt && c->opt->qdq_outputs)
      st = output_pair(c, g, n);
  }
  return st;
}

tc_status tc_pass_quantize_static(tc_pass_ctx *c, tc_graph *g) {
  if (g->parent)
    return TC_STATUS_OK;
  bool any = false;
  for (tc_node *n = g->first; n && !any; n = n->next)
    any = tc_is_op(n, "MatMul") || tc_pass_is_gemm(n) || tc_pass_is_conv(n);
  if (!any)
    return TC_STATUS_OK;
  const char *why = NULL;
  bool opset_ok = tc_pass_require_opset(c, 13, &why);
  tc_shapes *sh = tc_shapes_infer(g);
  if (!sh)
    return tc_pass_nomem(c);
  size_t count = 0;
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n && !st; n = next) {
    next = n->next;
    bool oom = false;
    /* a Gemm with a calibrated A (or the pair of one: the full form paired
     * the previous layer's output): quantized as the MatMul (+ Add) it is */
    tc_value *a0 = n->n_inputs > 1 ? n->inputs[0] : NULL;
    tc_qrange ra;
    if (tc_pass_is_gemm(n) && a0 && pair_range(c, a0, &ra, 0) &&
        !(n = tc_pass_gemm_as_matmul(c, g, n, &oom)) && oom)
      st = tc_pass_nomem(c);
    if (n && (tc_is_op(n, "MatMul") || tc_pass_is_conv(n)))
      st = visit(c, g, sh, n, &opset_ok, &why, &count);
  }
  tc_shapes_free(sh);
  if (!st && count && c->opt && c->opt->qdq_outputs)
    st = pair_adds(c, g);
  if (!st && count && c->opt && c->opt->qdq_outputs)
    st = pair_moves(c, g);
  if (count)
    tc_pass_count(c, "MatMuls and convolutions to int8 QDQ", count);
  return st;
}
