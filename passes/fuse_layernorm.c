/* fuse-layernorm: the decomposed LayerNorm that exporters write, to
 * LayerNormalization (opset 17).
 *
 *   x ─┬─▶ ReduceMean ─▶ mean ─┐
 *      └──────────────────────▶ Sub ─▶ d ─┬─▶ Pow(2) | Mul(d,d) ─▶ ReduceMean ─▶ Add(eps) ─▶ Sqrt
 * ─▶ s └─▶ Div(d, s) | Mul(d, Reciprocal(s)) ─▶ n n ─▶ [Mul(gamma)] ─▶ [Add(beta)] ─▶ y ⇒   x ─▶
 * LayerNormalization(gamma, beta, axis, epsilon) ─▶ y
 *
 * Conditions: both ReduceMeans over the same trailing axes of x (negative
 * axes, or positive ones with x's rank known) with keepdims 1; exponent 2 and
 * eps constant scalars; every intermediate read only inside the pattern;
 * gamma and beta constants of the normalized size (gamma required when the
 * normalized size is unknown; without it a ones tensor is made); x float.
 * Needs opset 17: the model is raised when that is exact (passes/opset.c),
 * otherwise the candidate is reported and left. */
#include <stdlib.h>
#include <string.h>

#include "pass.h"

/* The reduced axes of a ReduceMean as a trailing-axis start (negative), or 0 if not trailing. */
static int64_t trailing_axis(const tc_node *r, const tc_value *x) {
  const tc_attr *kd = tc_node_attr(r, "keepdims");
  if (kd && kd->i != 1)
    return 0;
  int64_t *axes = NULL;
  ptrdiff_t k = -1;
  const tc_attr *a = tc_node_attr(r, "axes");
  if (a) {
    axes = malloc((a->n_ints ? a->n_ints : 1) * sizeof *axes);
    if (axes && a->n_ints)
      memcpy(axes, a->ints, a->n_ints * sizeof *axes);
    k = axes ? (ptrdiff_t)a->n_ints : -1;
  } else if (r->n_inputs > 1 && r->inputs[1]) {
    k = tc_const_ints(tc_value_const(r->inputs[1]), &axes);
  }
  int64_t start = 0;
  if (k > 0) {
    int64_t rank = x->type.kind == TC_TYPE_TENSOR && x->type.has_shape ? (int64_t)x->type.rank : -1;
    bool seen[16] = {0};
    bool ok = k <= 16;
    for (ptrdiff_t i = 0; i < k && ok; i++) {
      int64_t ax = axes[i];
      if (ax >= 0) {
        if (rank < 0)
          ok = false;
        ax -= rank;
      }
      ok = ok && ax < 0 && ax >= -16 && !seen[-ax - 1];
      if (ok)
        seen[-ax - 1] = true;
    }
    for (ptrdiff_t i = 0; i < k && ok; i++)
      ok = seen[i];
    start = ok ? -(int64_t)k : 0;
  }
  free(axes);
  return start;
}

/* Input of binary n that is not v, when v is one of its inputs. */
static tc_value *other_input(const tc_node *n, const tc_value *v) {
  if (n->n_inputs != 2)
    return NULL;
  return n->inputs[0] == v ? n->inputs[1] : n->inputs[1] == v ? n->inputs[0] : NULL;
}

typedef struct ln_match {
  tc_node *nodes[12];
  size_t n_nodes;
  tc_value *x, *gamma, *beta, *y;
  int64_t axis;
  double eps;
} ln_match;

/* Matches from the normalizing node (Div, or Mul by a Reciprocal). */
static const char *match(tc_node *norm, ln_match *m) {
  memset(m, 0, sizeof *m);
  tc_value *d = norm->inputs[0], *s = norm->inputs[1];
  tc_node *sub = tc_producer_op(d, "Sub"), *rec = NULL;
  if (tc_is_op(norm, "Mul")) {
    /* n = d * Reciprocal(s), either order */
    rec = tc_producer_op(s, "Reciprocal");
    if (!sub || !rec) {
      d = norm->inputs[1];
      s = norm->inputs[0];
      sub = tc_producer_op(d, "Sub");
      rec = tc_producer_op(s, "Reciprocal");
    }
    if (!sub || !rec)
      return "";
    if (tc_single_consumer(s) != norm)
      return "the reciprocal has other readers";
    m->nodes[m->n_nodes++] = rec;
    s = rec->inputs[0];
  } else if (!sub) {
    return "";
  }
  tc_node *sq = tc_producer_op(s, "Sqrt");
  if (!sq)
    return "";
  tc_node *add = tc_producer_op(sq->inputs[0], "Add");
  tc_node *mean = tc_producer_op(sub->inputs[1], "ReduceMean");
  if (!add || !mean || mean->inputs[0] != sub->inputs[0])
    return "no ReduceMean/Sub/Sqrt/Add chain";
  m->x = sub->inputs[0];
  tc_value *var = NULL;
  const tc_tensor *eps = tc_binary_const(add, &var);
  if (!eps || !tc_const_scalar(eps, &m->eps))
    return "epsilon is not a constant scalar";
  tc_node *vmean = tc_producer_op(var, "ReduceMean");
  if (!vmean)
    return "the variance is not a ReduceMean";
  tc_node *sqr = vmean->inputs[0] ? vmean->inputs[0]->producer : NULL;
  double two;
  if (tc_is_op(sqr, "Pow")) {
    if (sqr->inputs[0] != d || !tc_const_scalar(tc_value_const(sqr->inputs[1]), &two) || two != 2)
      return "Pow is not d^2";
  } else if (!tc_is_op(sqr, "Mul") || sqr->inputs[0] != d || sqr->inputs[1] != d) {
    return "no square of the centered input";
  }
  int64_t a1 = trailing_axis(mean, m->x), a2 = trailing_axis(vmean, m->x);
  if (!a1 || a1 != a2)
    return "the means are not over the same trailing axes with keepdims";
  m->axis = a1;
  /* d is read by the square (once or twice) and the normalizing node only. */
  size_t want = (tc_is_op(sqr, "Mul") ? 2 : 1) + (norm->inputs[0] == d) + (norm->inputs[1] == d);
  if (d->n_uses != want || (d->flags & TC_VALUE_OUTPUT))
    return "the centered input has other readers";
  if (tc_single_consumer(sub->inputs[1]) != sub || tc_single_consumer(sqr->outputs[0]) != vmean ||
      tc_single_consumer(var) != add || tc_single_consumer(add->outputs[0]) != sq ||
      tc_single_consumer(sq->outputs[0]) != (rec ? rec : norm))
    return "an intermediate value has other readers";
  tc_node *chain[] = {mean, sub, sqr, vmean, add, sq, norm};
  for (size_t i = 0; i < sizeof chain / sizeof *chain; i++)
    m->nodes[m->n_nodes++] = chain[i];
  m->y = norm->outputs[0];
  /* Optional affine part. */
  tc_node *mul = tc_single_consumer(m->y);
  tc_value *gamma = NULL;
  if (tc_is_op(mul, "Mul") && tc_binary_const(mul, &gamma) && gamma == m->y) {
    m->gamma = other_input(mul, m->y);
    m->nodes[m->n_nodes++] = mul;
    m->y = mul->outputs[0];
  }
  tc_node *addb = tc_single_consumer(m->y);
  tc_value *other = NULL;
  if (m->gamma && tc_is_op(addb, "Add") && tc_binary_const(addb, &other) && other == m->y) {
    m->beta = other_input(addb, m->y);
    m->nodes[m->n_nodes++] = addb;
    m->y = addb->outputs[0];
  }
  return NULL;
}

/* Gamma/beta must cover exactly the normalized axes: rank <= -axis, leading dims 1. */
static bool affine_ok(const tc_value *p, int64_t axis) {
  if (!p)
    return true;
  const tc_tensor *t = tc_value_const(p);
  if (!t || (int64_t)t->rank > -axis || t->rank == 0)
    return false;
  for (size_t i = 0; i + (size_t)(-axis) < t->rank; i++)
    if (t->dims[i] != 1)
      return false;
  return true;
}

tc_status tc_pass_fuse_layernorm(tc_pass_ctx *c, tc_graph *g) {
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (!(tc_is_op(n, "Div") || tc_is_op(n, "Mul")) || n->n_inputs != 2 || !n->inputs[0] ||
        !n->inputs[1])
      continue;
    ln_match m;
    const char *why = match(n, &m);
    if (why) {
      if (*why)
        tc_pass_explain(c, n, "LayerNorm candidate rejected: %s", why);
      continue;
    }
    int32_t dt = tc_value_dtype(m.x);
    if (dt && dt != TC_DTYPE_F32 && dt != TC_DTYPE_F16 && dt != TC_DTYPE_BF16 &&
        dt != TC_DTYPE_F64) {
      tc_pass_explain(c, n, "LayerNorm candidate rejected: input is not float");
      continue;
    }
    if (!m.gamma) {
      tc_pass_explain(c, n, "LayerNorm candidate rejected: no scale (normalized size unknown)");
      continue;
    }
    if (!affine_ok(m.gamma, m.axis) || !affine_ok(m.beta, m.axis) ||
        (m.beta && tc_value_const(m.beta)->dtype != tc_value_const(m.gamma)->dtype)) {
      tc_pass_explain(c, n, "LayerNorm candidate rejected: scale/bias do not match the axes");
      continue;
    }
    const char *no;
    if (!tc_pass_require_opset(c, 17, &no)) {
      tc_pass_explain(c, n, "LayerNorm candidate rejected: %s", no);
      continue;
    }
    /* At the normalizing node's place: after x, before every reader of y. */
    tc_node *ln =
        tc_graph_insert_node(g, n, "LayerNormalization", "", n->name, m.beta ? 3 : 2, 1, 2);
    if (!ln || tc_node_set_attr_int(ln, 0, "axis", m.axis) ||
        tc_node_set_attr_float(ln, 1, "epsilon", (float)m.eps))
      return tc_pass_nomem(c);
    tc_value *x = m.x, *gamma = m.gamma, *beta = m.beta, *y = m.y;
    for (size_t i = 0; i < m.n_nodes; i++)
      tc_node_remove(m.nodes[i]);
    next = ln->next;
    if (tc_node_set_input(ln, 0, x) || tc_node_set_input(ln, 1, gamma) ||
        (beta && tc_node_set_input(ln, 2, beta)) || tc_node_set_output(ln, 0, y))
      return tc_pass_nomem(c);
    tc_pass_count(c, "LayerNormalization", 1);
  }
  return TC_STATUS_OK;
}
