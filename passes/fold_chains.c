/* fold-chains: chains of layout ops collapse.
 *
 *   x ─▶ Transpose(p1) ─▶ Transpose(p2) ─▶ y   ⇒   x ─▶ Transpose(p1∘p2) ─▶ y   (or x, when
 * identity) x ─▶ Reshape(a) ─▶ Reshape(b) ─▶ y         ⇒   x ─▶ Reshape(b') ─▶ y x ─▶ Reshape(t) ─▶
 * y, y's shape == x's     ⇒   x x ─▶ Unsqueeze(a) ─▶ Squeeze(a) ─▶ y       ⇒   x
 *
 *   x ─▶ Reshape(merge leading dims) ─▶ Transpose ─▶ Reshape(split them) ─▶ y   ⇒
 *   x ─▶ Transpose ─▶ y   (see fold_merged_transpose)
 *
 * Conditions: the inner node read only by the outer one; Reshape targets
 * constant, with the outer target's 0 entries (copies of the intermediate's
 * dims, unless allowzero) rewritten to the numbers or symbols shape
 * inference proves, and refused otherwise; a Reshape is dropped only when
 * inference proves input and output shapes equal; Squeeze axes equal to the
 * Unsqueeze axes. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

static bool perm_of(const tc_node *t, size_t rank, int64_t *p) {
  const int64_t *a;
  ptrdiff_t n = tc_attr_ints(t, "perm", &a);
  if (n < 0) { /* default: reverse */
    for (size_t i = 0; i < rank; i++)
      p[i] = (int64_t)(rank - 1 - i);
    return rank > 0;
  }
  if ((size_t)n != rank)
    return false;
  memcpy(p, a, rank * sizeof *p);
  return true;
}

static tc_status fold_transposes(tc_pass_ctx *c, const tc_shapes *s, tc_node *outer, bool *done) {
  *done = false;
  tc_node *inner = tc_producer_op(outer->inputs[0], "Transpose");
  const tc_shape *xs = inner ? tc_shape_of(s, inner->inputs[0]) : NULL;
  const int64_t *pa;
  ptrdiff_t np = tc_attr_ints(outer, "perm", &pa);
  size_t rank = np >= 0 ? (size_t)np : xs && xs->known ? xs->rank : 0;
  int64_t p1[TC_MAX_RANK], p2[TC_MAX_RANK], p[TC_MAX_RANK];
  if (!inner || tc_single_consumer(outer->inputs[0]) != outer || rank == 0 || rank > TC_MAX_RANK ||
      !perm_of(inner, rank, p1) || !perm_of(outer, rank, p2))
    return TC_STATUS_OK;
  bool identity = true;
  for (size_t i = 0; i < rank; i++) {
    if (p2[i] < 0 || p2[i] >= (int64_t)rank)
      return TC_STATUS_OK;
    p[i] = p1[p2[i]]; /* y[i] = t[p2[i]] = x[p1[p2[i]]] */
    identity &= p[i] == (int64_t)i;
  }
  tc_value *x = inner->inputs[0], *y = outer->outputs[0];
  if (identity) {
    if (!tc_pass_bypass(outer, x, y))
      return TC_STATUS_OK; /* x and y are both graph inputs/outputs */
    tc_node_remove(inner);
    tc_pass_count(c, "Transpose pair", 1);
    *done = true;
    return TC_STATUS_OK;
  }
  tc_node_remove_attr(outer, "perm");
  if (tc_node_resize(outer, 1, outer->n_attrs + 1) ||
      tc_node_set_attr_ints(outer, outer->n_attrs - 1, "perm", p, rank) ||
      tc_node_set_input(outer, 0, x))
    return tc_pass_nomem(c);
  tc_node_remove(inner);
  tc_pass_count(c, "Transpose pair", 1);
  *done = true;
  return TC_STATUS_OK;
}

static bool shapes_equal(const tc_shape *a, const tc_shape *b) {
  if (!a->known || !b->known || a->rank != b->rank)
    return false;
  for (size_t i = 0; i < a->rank; i++)
    if (!tc_sdim_eq(a->dims[i], b->dims[i]))
      return false;
  return true;
}

static tc_status fold_reshapes(tc_pass_ctx *c, tc_graph *g, const tc_shapes *s, tc_node *outer,
                               bool *done) {
  *done = false;
  tc_value *x = outer->inputs[0], *y = outer->outputs[0];
  /* A Reshape that changes nothing. */
  if (shapes_equal(tc_shape_of(s, x), tc_shape_of(s, y)) && tc_pass_bypass(outer, x, y)) {
    tc_pass_count(c, "no-op Reshape", 1);
    *done = true;
    return TC_STATUS_OK;
  }
  tc_node *inner = tc_producer_op(x, "Reshape");
  if (!inner || tc_single_consumer(x) != outer || !tc_value_const(outer->inputs[1]))
    return TC_STATUS_OK;
  int64_t *t = NULL;
  ptrdiff_t nt = tc_const_ints(tc_value_const(outer->inputs[1]), &t);
  bool allowzero = tc_attr_int(outer, "allowzero", 0) != 0, ok = nt >= 0 && !allowzero;
  const tc_shape *mid = tc_shape_of(s, x), *src = tc_shape_of(s, inner->inputs[0]);
  /* 0 copies the intermediate's dim: use its number, or keep 0 when the
   * source has the same symbol at that position. */
  for (ptrdiff_t i = 0; ok && i < nt; i++) {
    if (t[i] != 0)
      continue;
    ok = mid->known && (size_t)i < mid->rank;
    if (!ok)
      break;
    tc_sdim d = mid->dims[i];
    if (!d.sym)
      t[i] = d.v;
    else
      ok = src->known && (size_t)i < src->rank && tc_sdim_eq(src->dims[i], d);
  }
  tc_value *k = ok ? tc_pass_new_const_i64(g, "reshape_target", t, 1, &(int64_t){nt}) : NULL;
  free(t);
  if (!ok)
    return TC_STATUS_OK;
  if (!k || tc_node_set_input(outer, 0, inner->inputs[0]) || tc_node_set_input(outer, 1, k))
    return tc_pass_nomem(c);
  tc_node_remove(inner);
  tc_pass_count(c, "Reshape pair", 1);
  *done = true;
  return TC_STATUS_OK;
}

/* Reshape(x, [-1, tail...]) ─▶ Transpose(p, p[0] = 0) ─▶ Reshape(·, y's shape)
 * is one Transpose of x when the first Reshape only merged x's leading dims
 * (the kept tail equal to x's last dims, so the merged dim is their product)
 * and y's shape is x's leading dims followed by the tail permuted by p:
 * torchlib writes key.transpose(-2, -1) of a rank-4 key this way. */
static tc_status fold_merged_transpose(tc_pass_ctx *c, tc_graph *g, const tc_shapes *s,
                                       tc_node *outer, bool *done) {
  *done = false;
  tc_node *t = tc_producer_op(outer->inputs[0], "Transpose");
  tc_node *inner = t ? tc_producer_op(t->inputs[0], "Reshape") : NULL;
  if (!inner || tc_single_consumer(outer->inputs[0]) != outer ||
      tc_single_consumer(t->inputs[0]) != t)
    return TC_STATUS_OK;
  const tc_shape *x = tc_shape_of(s, inner->inputs[0]), *mid = tc_shape_of(s, t->inputs[0]),
                 *y = tc_shape_of(s, outer->outputs[0]);
  if (!x->known || !mid->known || !y->known || mid->rank < 2 || mid->rank > x->rank ||
      y->rank != x->rank)
    return TC_STATUS_OK;
  size_t k = mid->rank - 1, lead = x->rank - k; /* kept tail dims, merged leading dims */
  int64_t p[TC_MAX_RANK], q[TC_MAX_RANK];
  if (!perm_of(t, mid->rank, p) || p[0] != 0)
    return TC_STATUS_OK;
  for (size_t i = 0; i < k; i++)
    if (!tc_sdim_eq(mid->dims[1 + i], x->dims[lead + i]))
      return TC_STATUS_OK;
  for (size_t i = 0; i < x->rank; i++) {
    if (i < lead) {
      q[i] = (int64_t)i;
    } else {
      int64_t pi = p[i - lead + 1];
      if (pi < 1 || pi > (int64_t)k)
        return TC_STATUS_OK;
      q[i] = (int64_t)lead + pi - 1;
    }
    if (!tc_sdim_eq(y->dims[i], x->dims[q[i]]))
      return TC_STATUS_OK;
  }
  tc_node *n = tc_graph_insert_node(g, outer, "Transpose", "", outer->name, 1, 1, 1);
  tc_value *in = inner->inputs[0], *out = outer->outputs[0];
  if (!n || tc_node_set_attr_ints(n, 0, "perm", q, x->rank))
    return tc_pass_nomem(c);
  tc_node_remove(outer);
  tc_node_remove(t);
  tc_node_remove(inner);
  if (tc_node_set_input(n, 0, in) || tc_node_set_output(n, 0, out))
    return tc_pass_nomem(c);
  tc_pass_count(c, "Reshape/Transpose/Reshape as Transpose", 1);
  *done = true;
  return TC_STATUS_OK;
}

static tc_status fold_squeeze(tc_pass_ctx *c, tc_node *sq, bool *done) {
  *done = false;
  tc_node *un = tc_producer_op(sq->inputs[0], "Unsqueeze");
  if (!un || tc_single_consumer(sq->inputs[0]) != sq)
    return TC_STATUS_OK;
  int64_t *a = NULL, *b = NULL;
  ptrdiff_t na = tc_pass_ints_arg(un, "axes", 1, &a), nb = tc_pass_ints_arg(sq, "axes", 1, &b);
  bool same = na > 0 && na == nb;
  /* Non-negative axes of both refer to the same (unsqueezed) rank. */
  for (ptrdiff_t i = 0; same && i < na; i++)
    same = a[i] == b[i] && a[i] >= 0;
  free(a);
  free(b);
  if (!same)
    return TC_STATUS_OK;
  tc_value *x = un->inputs[0], *y = sq->outputs[0];
  if (tc_pass_bypass(sq, x, y)) {
    tc_node_remove(un);
    tc_pass_count(c, "Unsqueeze/Squeeze pair", 1);
    *done = true;
  }
  return TC_STATUS_OK;
}

tc_status tc_pass_fold_chains(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = tc_shapes_infer(g);
  if (!s)
    return tc_pass_nomem(c);
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n && !st; n = next) {
    next = n->next;
    bool done = false;
    if (tc_is_op(n, "Transpose") && n->inputs[0])
      st = fold_transposes(c, s, n, &done);
    else if (tc_is_op(n, "Reshape") && n->n_inputs == 2 && n->inputs[0] && n->inputs[1]) {
      st = fold_reshapes(c, g, s, n, &done);
      if (!st && !done)
        st = fold_merged_transpose(c, g, s, n, &done);
    } else if (tc_is_op(n, "Squeeze") && n->inputs[0])
      st = fold_squeeze(c, n, &done);
    if (done)
      next = g->first; /* a fold can expose another: rescan */
  }
  tc_shapes_free(s);
  return st;
}
