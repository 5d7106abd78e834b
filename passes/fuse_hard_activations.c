/* fuse-hard-activations: the HardSigmoid and HardSwish forms that
 * paddle2onnx and tf2onnx write, to HardSigmoid (opset 6) and HardSwish (14).
 *
 *   relu6 form:   x ─▶ Add(3) ─▶ Clip(0, 6) ─▶ Div(6) | Mul(1/6)         ⇒ HardSigmoid(1/6, 1/2)
 *   affine form:  x ─▶ Mul(a) ─▶ Add(b) ─▶ Clip(0, 1)                     ⇒ HardSigmoid(a, b)
 *   swish forms:  Mul(x, HardSigmoid(x; 1/6, 1/2))
 *                 x ─▶ Add(3) ─▶ Clip(0, 6) ─▶ Mul(x, .) ─▶ Div(6) | Mul(1/6)   ⇒ HardSwish(x)
 *
 * Conditions: scalar constants within 1e-5 relative of the values above
 * (Clip bounds as inputs or, before opset 11, attributes), intermediates read
 * only inside the pattern, x float. The swish forms run after the sigmoid
 * forms so that a HardSigmoid made here can become a HardSwish. */
#include <math.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"

static bool near(double v, double want) { return fabs(v - want) <= 1e-5 * fmax(1.0, fabs(want)); }

/* n = op(v, c) with c a scalar constant; *c set. Div must divide v. */
static bool with_scalar(const tc_node *n, const char *op, const tc_value *v, double *c) {
  tc_value *other = NULL;
  if (!tc_is_op(n, op))
    return false;
  const tc_tensor *t = tc_binary_const(n, &other);
  if (!t || other != v || !tc_const_scalar(t, c))
    return false;
  return strcmp(op, "Div") != 0 || n->inputs[0] == v;
}

/* Clip(v, lo, hi) with constant bounds (inputs or attributes). */
static bool clip_bounds(const tc_node *n, double *lo, double *hi) {
  if (!tc_is_op(n, "Clip") || !n->inputs[0])
    return false;
  if (tc_attr_has(n, "min") || tc_attr_has(n, "max")) {
    *lo = tc_attr_float(n, "min", -INFINITY);
    *hi = tc_attr_float(n, "max", INFINITY);
    return true;
  }
  *lo = -INFINITY;
  *hi = INFINITY;
  if (n->n_inputs > 1 && n->inputs[1] && !tc_const_scalar(tc_value_const(n->inputs[1]), lo))
    return false;
  if (n->n_inputs > 2 && n->inputs[2] && !tc_const_scalar(tc_value_const(n->inputs[2]), hi))
    return false;
  return true;
}

/* y = f / 6 by Div(6) or Mul(1/6), f read only by it; returns that node. */
static tc_node *over_six(const tc_value *f) {
  tc_node *d = tc_single_consumer(f);
  double c;
  if (with_scalar(d, "Div", f, &c) && near(c, 6.0))
    return d;
  if (with_scalar(d, "Mul", f, &c) && near(c, 1.0 / 6.0))
    return d;
  return NULL;
}

static bool is_float(const tc_value *v) {
  int32_t dt = tc_value_dtype(v);
  return !dt || tc_dtype_is_float(dt);
}

/* Replaces nodes[0..n) (the last one producing y) by op(x) with the given attributes. */
static tc_status replace(tc_pass_ctx *c, tc_graph *g, tc_node **nodes, size_t n, tc_value *x,
                         const char *op, int64_t opset, double alpha, double beta,
                         const char *kind) {
  const char *why;
  if (!tc_pass_require_opset(c, opset, &why)) {
    tc_pass_explain(c, nodes[n - 1], "%s candidate rejected: %s", op, why);
    return TC_STATUS_OK;
  }
  tc_value *y = nodes[n - 1]->outputs[0];
  bool sig = strcmp(op, "HardSigmoid") == 0;
  tc_node *r = tc_graph_insert_node(g, nodes[0], op, "", nodes[n - 1]->name, 1, 1, sig ? 2 : 0);
  if (!r || (sig && (tc_node_set_attr_float(r, 0, "alpha", (float)alpha) ||
                     tc_node_set_attr_float(r, 1, "beta", (float)beta))))
    return tc_pass_nomem(c);
  for (size_t i = 0; i < n; i++)
    tc_node_remove(nodes[i]);
  if (tc_node_set_input(r, 0, x) || tc_node_set_output(r, 0, y))
    return tc_pass_nomem(c);
  tc_pass_count(c, kind, 1);
  return TC_STATUS_OK;
}

/* The sigmoid forms, matched at their Clip. */
static tc_status sigmoid_at(tc_pass_ctx *c, tc_graph *g, tc_node *clip) {
  double lo, hi, k, b;
  if (!clip_bounds(clip, &lo, &hi))
    return TC_STATUS_OK;
  tc_node *add = clip->inputs[0]->producer;
  if (!tc_is_op(add, "Add") || tc_single_consumer(add->outputs[0]) != clip)
    return TC_STATUS_OK;
  tc_value *x = NULL;
  const tc_tensor *bt = tc_binary_const(add, &x);
  if (!bt || !tc_const_scalar(bt, &b) || !is_float(x))
    return TC_STATUS_OK;
  if (lo == 0 && near(hi, 6.0) && near(b, 3.0)) {
    tc_node *d = over_six(clip->outputs[0]);
    if (d) {
      /* Mul(x, HardSigmoid(x)) is left for the swish step. */
      tc_node *nodes[] = {add, clip, d};
      return replace(c, g, nodes, 3, x, "HardSigmoid", 6, 1.0 / 6.0, 0.5, "HardSigmoid");
    }
  }
  tc_node *mul = x->producer;
  if (lo == 0 && near(hi, 1.0) && tc_is_op(mul, "Mul") && tc_single_consumer(x) == add) {
    tc_value *xin = NULL;
    const tc_tensor *kt = tc_binary_const(mul, &xin);
    if (kt && tc_const_scalar(kt, &k) && is_float(xin)) {
      tc_node *nodes[] = {mul, add, clip};
      return replace(c, g, nodes, 3, xin, "HardSigmoid", 6, k, b, "HardSigmoid");
    }
  }
  return TC_STATUS_OK;
}

/* The swish forms, matched at their Mul(x, .). */
static tc_status swish_at(tc_pass_ctx *c, tc_graph *g, tc_node *mul) {
  if (mul->n_inputs != 2 || !mul->inputs[0] || !mul->inputs[1])
    return TC_STATUS_OK;
  for (int i = 0; i < 2; i++) {
    tc_value *x = mul->inputs[i], *s = mul->inputs[1 - i];
    tc_node *p = s->producer;
    if (!p || tc_single_consumer(s) != mul || !is_float(x))
      continue;
    if (tc_is_op(p, "HardSigmoid") && p->inputs[0] == x &&
        near(tc_attr_float(p, "alpha", 0.2f), 1.0 / 6.0) &&
        near(tc_attr_float(p, "beta", 0.5f), 0.5)) {
      tc_node *nodes[] = {p, mul};
      return replace(c, g, nodes, 2, x, "HardSwish", 14, 0, 0, "HardSwish");
    }
    double lo, hi, b;
    tc_node *add = clip_bounds(p, &lo, &hi) ? p->inputs[0]->producer : NULL;
    tc_value *xa = NULL;
    const tc_tensor *bt = tc_is_op(add, "Add") ? tc_binary_const(add, &xa) : NULL;
    if (bt && xa == x && tc_const_scalar(bt, &b) && near(b, 3.0) && lo == 0 && near(hi, 6.0) &&
        tc_single_consumer(add->outputs[0]) == p) {
      tc_node *d = over_six(mul->outputs[0]);
      if (d) {
        tc_node *nodes[] = {add, p, mul, d};
        return replace(c, g, nodes, 4, x, "HardSwish", 14, 0, 0, "HardSwish");
      }
    }
  }
  return TC_STATUS_OK;
}

tc_status tc_pass_fuse_hard_activations(tc_pass_ctx *c, tc_graph *g) {
  for (int step = 0; step < 2; step++) {
    for (tc_node *n = g->first, *next; n; n = next) {
      next = n->next;
      size_t before = g->n_nodes;
      tc_status st = step == 0 ? (tc_is_op(n, "Clip") ? sigmoid_at(c, g, n) : TC_STATUS_OK)
                               : (tc_is_op(n, "Mul") ? swish_at(c, g, n) : TC_STATUS_OK);
      if (st)
        return st;
      if (g->n_nodes != before)
        next = g->first; /* nodes around n may be gone: rescan (patterns only shrink the graph) */
    }
  }
  return TC_STATUS_OK;
}
