/* fuse-groupnorm: GroupNorm as PyTorch exports it, to GroupNormalization (opset 21).
 *
 *   x[N,C,...] ─▶ Reshape[0,G,-1] ─▶ InstanceNormalization(ones, zeros, eps)
 *              ─▶ Reshape(back to x's shape) ─▶ [Mul(gamma)] ─▶ [Add(beta)] ─▶ y
 *   ⇒   y = GroupNormalization(x, gamma[C], beta[C], num_groups=G, epsilon=eps)
 *
 * Conditions: x of known rank >= 3 with a known channel count C divisible by
 * G; the InstanceNormalization scale all ones and bias all zeros (G values);
 * the second Reshape restores x's shape exactly (each target element 0 where
 * that copies the same dim, the same number, or one -1); gamma and beta float32
 * per-channel constants ([C,1,..] or [1,C,1,..]); intermediates read only in
 * the pattern. Needs opset 21 (scale and bias per channel), raised when exact. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

/* Constant t as C per-channel floats against rank r (1 value: broadcast). */
static bool channel_const(const tc_tensor *t, size_t r, size_t ch, float *v) {
  float *d = NULL;
  ptrdiff_t n = t && t->dtype == TC_DTYPE_F32 ? tc_const_floats(t, &d) : -1;
  bool ok = n == 1 || (n == (ptrdiff_t)ch && t->rank >= r - 1 && t->rank <= r);
  for (size_t i = 0; ok && n != 1 && i < t->rank; i++)
    ok = i == t->rank - (r - 1) ? t->dims[i] == (int64_t)ch : t->dims[i] == 1;
  for (size_t i = 0; ok && i < ch; i++)
    v[i] = d[n == 1 ? 0 : i];
  free(d);
  return ok;
}

static bool restores(const tc_shape *x, const int64_t *t, size_t nt, int64_t groups) {
  if (nt != x->rank)
    return false;
  int minus = 0;
  for (size_t i = 0; i < nt; i++) {
    bool ok_zero = true;
    if (t[i] == -1)
      minus++;
    else if (t[i] == 0) /* copies the grouped tensor's dim: [N, G, rest] */
      ok_zero = i == 0 || (i == 1 && tc_sdim_is(x->dims[1], groups));
    else
      ok_zero = tc_sdim_is(x->dims[i], t[i]);
    if (!ok_zero)
      return false;
  }
  return minus <= 1;
}

tc_status tc_pass_fuse_groupnorm(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *in = g->first, *next; in; in = next) {
    next = in->next;
    if (!tc_is_op(in, "InstanceNormalization") || in->n_inputs != 3 || !in->inputs[0])
      continue;
    tc_node *r1 = tc_producer_op(in->inputs[0], "Reshape");
    tc_node *r2 = tc_single_consumer(in->outputs[0]);
    if (!r1 || !tc_is_op(r2, "Reshape") || tc_single_consumer(r1->outputs[0]) != in)
      continue;
    if (!s && !(s = tc_shapes_infer(g))) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_value *x = r1->inputs[0];
    const tc_shape *xs = tc_shape_of(s, x);
    int64_t *t1 = NULL, *t2 = NULL;
    ptrdiff_t n1 = tc_const_ints(tc_value_const(r1->inputs[1]), &t1);
    ptrdiff_t n2 = tc_const_ints(tc_value_const(r2->inputs[1]), &t2);
    int64_t C = xs->known && xs->rank >= 3 && !xs->dims[1].sym ? xs->dims[1].v : 0, G = 0;
    bool ok = C > 0 && n1 == 3 && (t1[0] == 0 || tc_sdim_is(xs->dims[0], t1[0])) && t1[2] == -1;
    if (ok) {
      G = t1[1];
      ok = G > 0 && C % G == 0 && restores(xs, t2, (size_t)n2, G);
    }
    free(t1);
    free(t2);
    if (!ok) {
      tc_pass_explain(c, in,
                      "GroupNorm candidate rejected: the Reshapes do not group channels "
                      "and restore the shape");
      continue;
    }
    if (!tc_const_all_near(tc_value_const(in->inputs[1]), 1.0, 0) ||
        !tc_const_all_near(tc_value_const(in->inputs[2]), 0.0, 0)) {
      tc_pass_explain(c, in, "GroupNorm candidate rejected: InstanceNormalization is affine");
      continue;
    }
    float *gamma = malloc((size_t)C * sizeof *gamma), *beta = malloc((size_t)C * sizeof *beta);
    if (!gamma || !beta) {
      free(gamma);
      free(beta);
      st = tc_pass_nomem(c);
      break;
    }
    for (int64_t i = 0; i < C; i++)
      gamma[i] = 1.0f, beta[i] = 0.0f;
    tc_node *nodes[5] = {r1, in, r2};
    size_t nn = 3;
    tc_value *y = r2->outputs[0], *other = NULL;
    tc_node *mul = tc_single_consumer(y);
    const tc_tensor *k = tc_is_op(mul, "Mul") ? tc_binary_const(mul, &other) : NULL;
    if (k && other == y && channel_const(k, xs->rank, (size_t)C, gamma)) {
      nodes[nn++] = mul;
      y = mul->outputs[0];
      tc_node *add = tc_single_consumer(y);
      k = tc_is_op(add, "Add") ? tc_binary_const(add, &other) : NULL;
      if (k && other == y && channel_const(k, xs->rank, (size_t)C, beta)) {
        nodes[nn++] = add;
        y = add->outputs[0];
      }
    }
    const char *why;
    if (!tc_pass_require_opset(c, 21, &why)) {
      tc_pass_explain(c, in, "GroupNorm candidate rejected: %s", why);
      free(gamma);
      free(beta);
      continue;
    }
    int64_t cdim = C;
    tc_value *gv = tc_pass_new_const_f32(g, "gn_scale", gamma, 1, &cdim);
    tc_value *bv = tc_pass_new_const_f32(g, "gn_bias", beta, 1, &cdim);
    free(gamma);
    free(beta);
    float eps = tc_attr_float(in, "epsilon", 1e-5f);
    tc_node *gn =
        gv && bv ? tc_graph_insert_node(g, r1, "GroupNormalization", "", in->name, 3, 1, 2) : NULL;
    if (!gn || tc_node_set_attr_int(gn, 0, "num_groups", G) ||
        tc_node_set_attr_float(gn, 1, "epsilon", eps)) {
      st = tc_pass_nomem(c);
      break;
    }
    for (size_t i = 0; i < nn; i++)
      tc_node_remove(nodes[i]);
    if (tc_node_set_input(gn, 0, x) || tc_node_set_input(gn, 1, gv) ||
        tc_node_set_input(gn, 2, bv) || tc_node_set_output(gn, 0, y)) {
      st = tc_pass_nomem(c);
      break;
    }
    next = gn->next;
    tc_pass_count(c, "GroupNormalization", 1);
  }
  tc_shapes_free(s);
  return st;
}
