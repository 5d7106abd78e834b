/* fuse-conv-bn: inference BatchNormalization folded into the Conv before it.
 *
 *   x ─▶ Conv(W, B) ─▶ t ─▶ BatchNormalization(s, b, m, v, eps) ─▶ y
 *        ⇒   x ─▶ Conv(W', B') ─▶ y
 *   with k = s / sqrt(v + eps), W'[o] = W[o] * k[o], B' = (B - m) * k + b
 *
 * Conditions: float32 constant W, B (or none) and BN parameters; t read only
 * by the BN; the BN in inference mode (training_mode 0, one output); the
 * per-channel parameters sized like W's output channels. The new weights are
 * new initializers (W may be shared); eliminate-dead drops unused ones. */
#include <math.h>
#include <stdlib.h>

#include "kernel.h"
#include "pass.h"

static bool bn_inference(const tc_node *bn) {
  const tc_attr *tm = tc_node_attr(bn, "training_mode");
  if (tm && tm->i)
    return false;
  for (size_t i = 1; i < bn->n_outputs; i++)
    if (bn->outputs[i])
      return false;
  return bn->n_inputs == 5;
}

static tc_status fuse(tc_pass_ctx *c, tc_graph *g, tc_node *conv, tc_node *bn) {
  const tc_tensor *w = tc_value_const(conv->inputs[1]);
  const tc_tensor *b =
      conv->n_inputs > 2 && conv->inputs[2] ? tc_value_const(conv->inputs[2]) : NULL;
  if (!w || w->dtype != TC_DTYPE_F32 || w->rank < 3 ||
      (conv->n_inputs > 2 && conv->inputs[2] && (!b || b->dtype != TC_DTYPE_F32))) {
    tc_pass_explain(c, conv, "weights or bias are not float32 constants");
    return TC_STATUS_OK;
  }
  size_t oc = (size_t)w->dims[0], per = tc_tensor_numel(w) / (oc ? oc : 1);
  float *p[4] = {0}, *wv = NULL, *bv = NULL;
  tc_status st = TC_STATUS_OK;
  for (int i = 0; i < 4; i++) {
    const tc_tensor *t = tc_value_const(bn->inputs[i + 1]);
    if (!t || t->dtype != TC_DTYPE_F32 || tc_const_floats(t, &p[i]) != (ptrdiff_t)oc) {
      tc_pass_explain(c, bn, "parameter %d is not a float32 constant of %zu channels", i + 1, oc);
      goto done;
    }
  }
  if (tc_const_floats(w, &wv) < 0 || (b && tc_const_floats(b, &bv) != (ptrdiff_t)oc))
    goto done;
  float *nb = malloc(oc * sizeof *nb);
  if (!nb) {
    st = tc_pass_nomem(c);
    goto done;
  }
  double eps = tc_attr_float(bn, "epsilon", 1e-5f);
  for (size_t o = 0; o < oc; o++) {
    double k = p[0][o] / sqrt((double)p[3][o] + eps);
    for (size_t j = 0; j < per; j++)
      wv[o * per + j] = (float)(wv[o * per + j] * k);
    nb[o] = (float)(((bv ? bv[o] : 0.0) - p[2][o]) * k + p[1][o]);
  }
  int64_t bdim = (int64_t)oc;
  tc_value *nw = tc_pass_new_const_f32(g, conv->inputs[1]->name, wv, w->rank, w->dims);
  tc_value *nbv = tc_pass_new_const_f32(g, bn->inputs[2]->name, nb, 1, &bdim);
  free(nb);
  tc_node *f = nw && nbv ? tc_graph_insert_node(g, conv, "Conv", conv->domain, conv->name, 3, 1,
                                                conv->n_attrs)
                         : NULL;
  if (!f) {
    st = tc_pass_nomem(c);
    goto done;
  }
  for (size_t i = 0; i < conv->n_attrs; i++)
    tc_node_copy_attr(f, i, &conv->attrs[i]);
  tc_value *x = conv->inputs[0], *y = bn->outputs[0];
  tc_node_remove(bn);
  tc_node_remove(conv);
  if (tc_node_set_input(f, 0, x) || tc_node_set_input(f, 1, nw) || tc_node_set_input(f, 2, nbv) ||
      tc_node_set_output(f, 0, y)) {
    st = tc_pass_nomem(c);
    goto done;
  }
  tc_pass_count(c, "Conv+BatchNormalization", 1);
done:
  for (int i = 0; i < 4; i++)
    free(p[i]);
  free(wv);
  free(bv);
  return st;
}

tc_status tc_pass_fuse_conv_bn(tc_pass_ctx *c, tc_graph *g) {
  for (tc_node *bn = g->first, *next; bn; bn = next) {
    next = bn->next;
    if (!tc_is_op(bn, "BatchNormalization") || !bn->inputs[0])
      continue;
    tc_node *conv = tc_producer_op(bn->inputs[0], "Conv");
    if (!conv)
      continue;
    if (!bn_inference(bn)) {
      tc_pass_explain(c, bn, "not in inference mode");
      continue;
    }
    if (tc_single_consumer(conv->outputs[0]) != bn) {
      tc_pass_explain(c, bn, "the Conv output has other readers");
      continue;
    }
    tc_status st = fuse(c, g, conv, bn);
    if (st)
      return st;
  }
  return TC_STATUS_OK;
}
