/* fuse-conv-affine: per-channel constants around a Conv folded into it,
 * and after an inference BatchNormalization into its scale and bias.
 *
 *   x ─▶ Conv(W, B) ─▶ Add(c) ─▶ y    ⇒   x ─▶ Conv(W, B + c) ─▶ y
 *   x ─▶ Conv(W, B) ─▶ Mul(s) ─▶ y    ⇒   x ─▶ Conv(W * s[o], B * s) ─▶ y
 *   x ─▶ Pad(constant 0, spatial) ─▶ Conv(pads p) ─▶ y   ⇒   x ─▶ Conv(pads p + pad) ─▶ y
 *   x ─▶ BatchNormalization(g, B, mean, var) ─▶ Mul(s) / Add(c) ─▶ y
 *       ⇒   x ─▶ BatchNormalization(g * s, B * s / B + c, mean, var) ─▶ y
 *   (caffe2's DenseNet-121 writes 62 BatchNormalization -> Mul -> Add before
 *   its Relus; a BatchNormalization before an activation cannot go into the
 *   Conv after it)
 *
 * Conditions: float32 constant W (and B); c / s constant, float32, and either
 * one number or one per output channel laid out on the channel axis ([C,1,..]
 * or [1,C,1,..] against the Conv output); the Conv output read only by the
 * Add/Mul; for Pad: constant mode, value 0, pads only on spatial axes, the
 * Pad output read only by the Conv, and the Conv not using auto_pad. The
 * folded weights are new initializers. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

/* Per-channel values of constant t against a Conv output of rank r with oc
 * channels, into v[oc]; false if t is not shaped that way. */
static bool per_channel(const tc_tensor *t, size_t r, size_t oc, float *v) {
  float *d = NULL;
  ptrdiff_t n = t && t->dtype == TC_DTYPE_F32 ? tc_const_floats(t, &d) : -1;
  bool ok = n == 1 || (n == (ptrdiff_t)oc && t->rank <= r && t->rank >= r - 1);
  if (ok && n != 1) {
    /* The one non-1 dim must be the channel axis (index 1 of the output). */
    size_t ch = t->rank - (r - 1);
    for (size_t i = 0; i < t->rank && ok; i++)
      ok = i == ch ? t->dims[i] == (int64_t)oc : t->dims[i] == 1;
  }
  for (size_t o = 0; ok && o < oc; o++)
    v[o] = d[n == 1 ? 0 : o];
  free(d);
  return ok;
}

/* Replaces conv by a copy reading new weights/bias; y becomes its output. */
static tc_status respin_conv(tc_pass_ctx *c, tc_graph *g, tc_node *conv, tc_node *gone,
                             const float *w, const float *b, size_t oc) {
  const tc_tensor *wt = tc_value_const(conv->inputs[1]);
  int64_t bdim = (int64_t)oc;
  tc_value *nw =
      w ? tc_pass_new_const_f32(g, conv->inputs[1]->name, w, wt->rank, wt->dims) : conv->inputs[1];
  tc_value *nb = tc_pass_new_const_f32(g, "conv_bias", b, 1, &bdim);
  tc_node *f = nw && nb ? tc_graph_insert_node(g, conv, "Conv", conv->domain, conv->name, 3, 1,
                                               conv->n_attrs)
                        : NULL;
  if (!f)
    return tc_pass_nomem(c);
  for (size_t i = 0; i < conv->n_attrs; i++)
    tc_node_copy_attr(f, i, &conv->attrs[i]);
  tc_value *x = conv->inputs[0], *y = gone->outputs[0];
  tc_node_remove(gone);
  tc_node_remove(conv);
  if (tc_node_set_input(f, 0, x) || tc_node_set_input(f, 1, nw) || tc_node_set_input(f, 2, nb) ||
      tc_node_set_output(f, 0, y))
    return tc_pass_nomem(c);
  return TC_STATUS_OK;
}

static tc_status fold_affine(tc_pass_ctx *c, tc_graph *g, tc_node *conv, tc_node *op) {
  const tc_tensor *wt = tc_value_const(conv->inputs[1]);
  const tc_tensor *bt =
      conv->n_inputs > 2 && conv->inputs[2] ? tc_value_const(conv->inputs[2]) : NULL;
  if (!wt || wt->dtype != TC_DTYPE_F32 || wt->rank < 3 ||
      (conv->n_inputs > 2 && conv->inputs[2] && (!bt || bt->dtype != TC_DTYPE_F32)))
    return TC_STATUS_OK;
  tc_value *other = NULL;
  const tc_tensor *k = tc_binary_const(op, &other);
  if (!k || other != conv->outputs[0])
    return TC_STATUS_OK;
  size_t oc = (size_t)wt->dims[0], per = tc_tensor_numel(wt) / (oc ? oc : 1);
  float *v = malloc(oc * sizeof *v), *b = calloc(oc, sizeof *b), *w = NULL, *ob = NULL;
  tc_status st = TC_STATUS_OK;
  if (!v || !b) {
    st = tc_pass_nomem(c);
    goto done;
  }
  if (!per_channel(k, wt->rank, oc, v)) {
    tc_pass_explain(c, op, "constant is not per-channel float32 for the Conv before it");
    goto done;
  }
  if (bt && tc_const_floats(bt, &ob) != (ptrdiff_t)oc)
    goto done;
  bool mul = tc_is_op(op, "Mul");
  if (mul && tc_const_floats(wt, &w) < 0)
    goto done;
  for (size_t o = 0; o < oc; o++) {
    float bias = ob ? ob[o] : 0.0f;
    b[o] = mul ? bias * v[o] : bias + v[o];
    for (size_t j = 0; mul && j < per; j++)
      w[o * per + j] *= v[o];
  }
  st = respin_conv(c, g, conv, op, w, b, oc);
  if (!st)
    tc_pass_count(c, mul ? "Conv+Mul" : "Conv+Add", 1);
done:
  free(v);
  free(b);
  free(w);
  free(ob);
  return st;
}

/* The channel count of inference BatchNormalization bn whose scale, bias,
 * mean and variance are float32 constants of one length, its scale and
 * bias in *g and *b (the caller frees them); 0 otherwise. */
static size_t bn_params(const tc_node *bn, float **g, float **b) {
  *g = *b = NULL;
  if (bn->n_inputs != 5 || tc_attr_int(bn, "training_mode", 0) != 0)
    return 0;
  for (size_t o = 1; o < bn->n_outputs; o++)
    if (bn->outputs[o] && bn->outputs[o]->n_uses)
      return 0;
  ptrdiff_t n = -1;
  for (size_t i = 1; i < 5; i++) {
    const tc_tensor *t = bn->inputs[i] ? tc_value_const(bn->inputs[i]) : NULL;
    ptrdiff_t k = t && t->dtype == TC_DTYPE_F32 && t->rank == 1 ? (ptrdiff_t)t->dims[0] : -1;
    if (k <= 0 || (n >= 0 && k != n))
      return 0;
    n = k;
  }
  if (tc_const_floats(tc_value_const(bn->inputs[1]), g) != n ||
      tc_const_floats(tc_value_const(bn->inputs[2]), b) != n) {
    free(*g), free(*b);
    *g = *b = NULL;
    return 0;
  }
  return (size_t)n;
}

/* BatchNormalization(x) ─▶ Mul / Add by per-channel constants: folded into
 * the normalization's scale and bias. */
static tc_status fold_bn_affine(tc_pass_ctx *c, tc_graph *g, tc_node *bn, tc_node *op,
                                tc_shapes **shapes) {
  const tc_type *xt = &bn->inputs[0]->type;
  tc_value *other = NULL;
  const tc_tensor *k = tc_binary_const(op, &other);
  float *sc = NULL, *b = NULL, *v = NULL;
  size_t ch = k && other == bn->outputs[0] ? bn_params(bn, &sc, &b) : 0;
  tc_status st = TC_STATUS_OK;
  if (!ch)
    goto done;
  if (!(v = malloc(ch * sizeof *v))) {
    st = tc_pass_nomem(c);
    goto done;
  }
  /* x's rank places the constant's channel axis; a single number needs none */
  size_t r = xt->kind == TC_TYPE_TENSOR && xt->has_shape ? xt->rank : 0;
  if (!r && (*shapes || (*shapes = tc_shapes_infer(g)))) {
    const tc_shape *xs = tc_shape_of(*shapes, bn->inputs[0]);
    r = xs && xs->known ? xs->rank : 0;
  }
  if (!per_channel(k, r ? r : 2, ch, v) || (!r && tc_tensor_numel(k) != 1)) {
    tc_pass_explain(c, op,
                    "constant is not per-channel float32 for the BatchNormalization before it");
    goto done;
  }
  bool mul = tc_is_op(op, "Mul");
  for (size_t o = 0; o < ch; o++) {
    sc[o] *= mul ? v[o] : 1.0f;
    b[o] = mul ? b[o] * v[o] : b[o] + v[o];
  }
  int64_t dim = (int64_t)ch;
  tc_value *ns = mul ? tc_pass_new_const_f32(g, "bn_scale", sc, 1, &dim) : bn->inputs[1];
  tc_value *nb = tc_pass_new_const_f32(g, "bn_bias", b, 1, &dim);
  tc_node *f = ns && nb ? tc_graph_insert_node(g, bn, "BatchNormalization", bn->domain, bn->name, 5,
                                               1, bn->n_attrs)
                        : NULL;
  if (!f) {
    st = tc_pass_nomem(c);
    goto done;
  }
  for (size_t i = 0; i < bn->n_attrs; i++)
    tc_node_copy_attr(f, i, &bn->attrs[i]);
  tc_value *in[5] = {bn->inputs[0], ns, nb, bn->inputs[3], bn->inputs[4]}, *y = op->outputs[0];
  tc_node_remove(op);
  tc_node_remove(bn);
  for (size_t i = 0; i < 5 && !st; i++)
    st = tc_node_set_input(f, i, in[i]) ? tc_pass_nomem(c) : TC_STATUS_OK;
  if (!st && tc_node_set_output(f, 0, y))
    st = tc_pass_nomem(c);
  if (!st)
    tc_pass_count(c, mul ? "BatchNormalization+Mul" : "BatchNormalization+Add", 1);
done:
  free(sc);
  free(b);
  free(v);
  return st;
}

/* Pad(x) ─▶ Conv: the Pad's spatial pads join the Conv's. */
static tc_status fold_pad(tc_pass_ctx *c, tc_graph *g, tc_node *pad, tc_node *conv) {
  (void)g;
  const char *mode = tc_attr_string(pad, "mode", "constant", c->model->arena);
  int64_t *p = NULL;
  ptrdiff_t np = -1;
  const tc_attr *pa = tc_node_attr(pad, "pads");
  if (pa) {
    p = malloc((pa->n_ints ? pa->n_ints : 1) * sizeof *p);
    if (p && pa->n_ints)
      memcpy(p, pa->ints, pa->n_ints * sizeof *p);
    np = p ? (ptrdiff_t)pa->n_ints : -1;
  } else if (pad->n_inputs > 1 && pad->inputs[1]) {
    np = tc_const_ints(tc_value_const(pad->inputs[1]), &p);
  }
  double value = tc_attr_float(pad, "value", 0.0f);
  bool ok = np > 0 && np % 2 == 0 && strcmp(mode, "constant") == 0 &&
            !(pad->n_inputs > 3 && pad->inputs[3]) && /* axes */
            strcmp(tc_attr_string(conv, "auto_pad", "NOTSET", c->model->arena), "NOTSET") == 0;
  if (ok && pad->n_inputs > 2 && pad->inputs[2])
    ok = tc_const_scalar(tc_value_const(pad->inputs[2]), &value);
  ok = ok && value == 0;
  size_t r = (size_t)np / 2;
  for (size_t i = 0; ok && i < 2 && i < r; i++)
    ok = p[i] == 0 && p[i + r] == 0; /* batch and channel not padded */
  for (size_t i = 0; ok && i < (size_t)np; i++)
    ok = p[i] >= 0;
  const int64_t *cp = NULL;
  ptrdiff_t ncp = tc_attr_ints(conv, "pads", &cp);
  size_t sp = r > 2 ? r - 2 : 0;
  ok = ok && sp > 0 && (ncp < 0 || ncp == (ptrdiff_t)(2 * sp));
  if (!ok) {
    free(p);
    tc_pass_explain(c, pad, "Pad before Conv not folded: not a zero constant spatial pad");
    return TC_STATUS_OK;
  }
  int64_t np2[16];
  for (size_t i = 0; i < sp; i++) {
    np2[i] = (ncp > 0 ? cp[i] : 0) + p[2 + i];
    np2[sp + i] = (ncp > 0 ? cp[sp + i] : 0) + p[r + 2 + i];
  }
  free(p);
  /* Rewrite the Conv's pads in place: attributes are the node's own. */
  tc_attr *slot = NULL;
  for (size_t i = 0; i < conv->n_attrs; i++)
    if (strcmp(conv->attrs[i].name, "pads") == 0)
      slot = &conv->attrs[i];
  if (!slot) {
    tc_node *f = tc_graph_insert_node(conv->graph, conv, "Conv", conv->domain, conv->name,
                                      conv->n_inputs, 1, conv->n_attrs + 1);
    if (!f)
      return tc_pass_nomem(c);
    for (size_t i = 0; i < conv->n_attrs; i++)
      tc_node_copy_attr(f, i, &conv->attrs[i]);
    for (size_t i = 0; i < conv->n_inputs; i++)
      if (tc_node_set_input(f, i, conv->inputs[i]))
        return tc_pass_nomem(c);
    tc_value *y = conv->outputs[0];
    tc_node_remove(conv);
    if (tc_node_set_output(f, 0, y))
      return tc_pass_nomem(c);
    conv = f;
    if (tc_node_set_attr_ints(conv, conv->n_attrs - 1, "pads", np2, 2 * sp))
      return tc_pass_nomem(c);
  } else {
    size_t idx = (size_t)(slot - conv->attrs);
    if (tc_node_set_attr_ints(conv, idx, "pads", np2, 2 * sp))
      return tc_pass_nomem(c);
  }
  if (tc_node_set_input(conv, 0, pad->inputs[0]))
    return tc_pass_nomem(c);
  tc_node_remove(pad);
  tc_pass_count(c, "Pad+Conv", 1);
  return TC_STATUS_OK;
}

tc_status tc_pass_fuse_conv_affine(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *shapes = NULL; /* inferred when a BatchNormalization's input rank is needed */
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    tc_status st = TC_STATUS_OK;
    if ((tc_is_op(n, "Add") || tc_is_op(n, "Mul")) && n->n_inputs == 2) {
      for (int i = 0; i < 2; i++) {
        tc_node *conv = n->inputs[i] ? tc_producer_op(n->inputs[i], "Conv") : NULL;
        if (conv && tc_single_consumer(conv->outputs[0]) == n && conv->n_inputs >= 2) {
          st = fold_affine(c, g, conv, n);
          break;
        }
        tc_node *bn = n->inputs[i] ? tc_producer_op(n->inputs[i], "BatchNormalization") : NULL;
        if (bn && tc_single_consumer(bn->outputs[0]) == n && bn->inputs[0]) {
          st = fold_bn_affine(c, g, bn, n, &shapes);
          break;
        }
      }
    } else if (tc_is_op(n, "Conv") && n->inputs[0]) {
      tc_node *pad = tc_producer_op(n->inputs[0], "Pad");
      if (pad && tc_single_consumer(pad->outputs[0]) == n && pad->inputs[0])
        st = fold_pad(c, g, pad, n);
    }
    if (st) {
      tc_shapes_free(shapes);
      return st;
    }
  }
  tc_shapes_free(shapes);
  return TC_STATUS_OK;
}
