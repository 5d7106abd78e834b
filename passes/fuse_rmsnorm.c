/* fuse-rmsnorm: the decomposed RMSNorm of LLaMA/T5-style exports, to
 * RMSNormalization (opset 23).
 *
 *   x ─▶ Pow(2) | Mul(x, x) ─▶ ReduceMean(trailing axes, keepdims) ─▶ Add(eps) ─┬▶ Sqrt ─▶ Div(x,
 * .) ├▶ Sqrt ─▶ Reciprocal ─▶ Mul(x, .) └▶ Pow(-0.5) ─▶ Mul(x, .) ─▶ Mul(gamma) ─▶ y ⇒   y =
 * RMSNormalization(x, gamma, axis, epsilon)
 *
 * Conditions: exponent and eps constant scalars; the mean over trailing axes
 * of x (negative axes, or positive with x's rank known) with keepdims 1;
 * gamma a constant covering exactly the normalized axes; every intermediate
 * read only inside the pattern. Needs opset 23, raised when exact. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

#define MAX_NODES 8

typedef struct rms_match {
  tc_node *nodes[MAX_NODES];
  size_t n;
  tc_value *x, *gamma, *y;
  int64_t axis;
  double eps;
} rms_match;

static bool push(rms_match *m, tc_node *n) {
  if (m->n >= MAX_NODES)
    return false;
  m->nodes[m->n++] = n;
  return true;
}

/* Start (negative) of the trailing axes a ReduceMean reduces, 0 if not that. */
static int64_t trailing(const tc_node *r, const tc_shapes *s) {
  if (tc_attr_int(r, "keepdims", 1) != 1)
    return 0;
  int64_t *ax = NULL;
  ptrdiff_t k = tc_pass_ints_arg(r, "axes", 1, &ax);
  const tc_shape *x = tc_shape_of(s, r->inputs[0]);
  int64_t rank = x->known ? (int64_t)x->rank : -1, start = 0;
  bool seen[TC_SHAPE_MAX_RANK] = {0}, ok = k > 0 && k <= TC_SHAPE_MAX_RANK;
  for (ptrdiff_t i = 0; ok && i < k; i++) {
    int64_t v = ax[i] >= 0 ? (rank < 0 ? 1 : ax[i] - rank) : ax[i];
    ok = v < 0 && v >= -TC_SHAPE_MAX_RANK && !seen[-v - 1];
    if (ok)
      seen[-v - 1] = true;
  }
  for (ptrdiff_t i = 0; ok && i < k; i++)
    ok = seen[i];
  if (ok)
    start = -(int64_t)k;
  free(ax);
  return start;
}

static const char *match(rms_match *m, const tc_shapes *s, tc_node *mean) {
  memset(m, 0, sizeof *m);
  tc_node *sq = mean->inputs[0] ? mean->inputs[0]->producer : NULL;
  double e;
  if (tc_is_op(sq, "Pow") && tc_const_scalar(tc_value_const(sq->inputs[1]), &e) && e == 2)
    m->x = sq->inputs[0];
  else if (tc_is_op(sq, "Mul") && sq->inputs[0] == sq->inputs[1])
    m->x = sq->inputs[0];
  else
    return "";
  if (tc_single_consumer(sq->outputs[0]) != mean)
    return "the square has other readers";
  if (!(m->axis = trailing(mean, s)))
    return "the mean is not over trailing axes with keepdims";
  tc_node *add = tc_single_consumer(mean->outputs[0]);
  tc_value *other = NULL;
  const tc_tensor *eps = tc_is_op(add, "Add") ? tc_binary_const(add, &other) : NULL;
  if (!eps || other != mean->outputs[0] || !tc_const_scalar(eps, &m->eps))
    return "no constant epsilon Add";
  push(m, sq);
  push(m, mean);
  push(m, add);
  tc_node *a = tc_single_consumer(add->outputs[0]), *norm = NULL;
  if (tc_is_op(a, "Sqrt")) {
    tc_node *b = tc_single_consumer(a->outputs[0]);
    push(m, a);
    if (tc_is_op(b, "Div") && b->inputs[0] == m->x && b->inputs[1] == a->outputs[0]) {
      norm = b;
    } else if (tc_is_op(b, "Reciprocal")) {
      push(m, b);
      norm = tc_single_consumer(b->outputs[0]);
    }
  } else if (tc_is_op(a, "Pow") && tc_const_scalar(tc_value_const(a->inputs[1]), &e) && e == -0.5 &&
             a->inputs[0] == add->outputs[0]) {
    push(m, a);
    norm = tc_single_consumer(a->outputs[0]);
  }
  if (!norm)
    return "no 1/sqrt of the mean square";
  if (!tc_is_op(norm, "Div") &&
      !(tc_is_op(norm, "Mul") && (norm->inputs[0] == m->x || norm->inputs[1] == m->x)))
    return "x is not scaled by the inverse RMS";
  push(m, norm);
  tc_node *g = tc_single_consumer(norm->outputs[0]);
  const tc_tensor *gt = tc_is_op(g, "Mul") ? tc_binary_const(g, &other) : NULL;
  if (!gt || other != norm->outputs[0])
    return "no constant scale after the normalization";
  if (gt->rank == 0 || (int64_t)gt->rank > -m->axis)
    return "the scale does not cover the normalized axes";
  for (size_t i = 0; i + (size_t)(-m->axis) < gt->rank; i++)
    if (gt->dims[i] != 1)
      return "the scale does not cover the normalized axes";
  m->gamma = g->inputs[0] == other ? g->inputs[1] : g->inputs[0];
  push(m, g);
  m->y = g->outputs[0];
  return NULL;
}

tc_status tc_pass_fuse_rmsnorm(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (!tc_is_op(n, "ReduceMean") || !n->inputs[0])
      continue;
    if (!s && !(s = tc_shapes_infer(g)))
      return tc_pass_nomem(c);
    rms_match m;
    const char *why = match(&m, s, n);
    if (why) {
      if (*why)
        tc_pass_explain(c, n, "RMSNorm candidate rejected: %s", why);
      continue;
    }
    int32_t dt = tc_value_dtype(m.x);
    if (dt && !tc_dtype_is_float(dt)) {
      tc_pass_explain(c, n, "RMSNorm candidate rejected: input is not float");
      continue;
    }
    if (!tc_pass_require_opset(c, 23, &why)) {
      tc_pass_explain(c, n, "RMSNorm candidate rejected: %s", why);
      continue;
    }
    tc_node *r = tc_graph_insert_node(g, m.nodes[0], "RMSNormalization", "", n->name, 2, 1, 2);
    if (!r || tc_node_set_attr_int(r, 0, "axis", m.axis) ||
        tc_node_set_attr_float(r, 1, "epsilon", (float)m.eps)) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_value *x = m.x, *gamma = m.gamma, *y = m.y;
    for (size_t i = 0; i < m.n; i++)
      tc_node_remove(m.nodes[i]);
    if (tc_node_set_input(r, 0, x) || tc_node_set_input(r, 1, gamma) ||
        tc_node_set_output(r, 0, y)) {
      st = tc_pass_nomem(c);
      break;
    }
    next = r->next;
    tc_pass_count(c, "RMSNormalization", 1);
  }
  tc_shapes_free(s);
  return st;
}
