/* fold-shapes: shape computations become constants.
 *
 *   x ─▶ Shape ─▶ Gather(1) ─▶ Unsqueeze ─┐
 *                        const [12, 64] ──┴▶ Concat ─▶ t ─▶ Reshape(q, t)
 *        ⇒   Reshape(q, [0, 0, 12, 64])           (when dim 1 of x is dim 1 of q)
 *
 * With symbolic shape inference (passes/shapes.c), every small integer value
 * whose elements are all known numbers becomes an initializer (Shape of a
 * static tensor, arithmetic on it, ...). A Reshape target whose elements are
 * known symbolically becomes a constant when each element is either a number,
 * the input's dim at the same position (written 0: copy, unless allowzero),
 * or the single remaining unknown (written -1). A -1 (new or in a constant
 * target) whose dim inference knows as a number is written as that number:
 * view(B, S, -1, D) becomes the explicit [0, 0, H, D] head split that
 * fuse-attention matches. The Shape/Gather/Concat nodes
 * left without readers are removed by eliminate-dead. */
#include <stdlib.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

static tc_value *const_ints(tc_graph *g, const char *base, int32_t dtype, const int64_t *v,
                            size_t n, size_t rank) {
  int64_t dim = (int64_t)n;
  if (dtype == TC_DTYPE_I64)
    return tc_pass_new_const_i64(g, base, v, rank, &dim);
  return NULL;
}

/* New constant target for Reshape r, or NULL when not expressible or the
 * target is constant already with nothing to make explicit. */
static tc_value *reshape_target(tc_graph *g, const tc_shapes *s, const tc_node *r) {
  const tc_shape *x = tc_shape_of(s, r->inputs[0]), *t = tc_shape_of(s, r->inputs[1]);
  const tc_shape *y = tc_shape_of(s, r->outputs[0]);
  bool allowzero = tc_attr_int(r, "allowzero", 0) != 0;
  int64_t v[TC_SHAPE_MAX_VALS], *k = NULL;
  /* a constant made earlier in this very pass has no inferred values */
  ptrdiff_t nk = tc_const_ints(tc_value_const(r->inputs[1]), &k);
  size_t n = nk >= 0 ? (size_t)nk : t->n_vals;
  bool changed = nk < 0, ok = nk >= 0 ? nk <= TC_SHAPE_MAX_VALS : t->has_vals;
  for (size_t i = 0; ok && nk >= 0 && i < n; i++)
    v[i] = k[i];
  free(k);
  if (!ok)
    return NULL;
  size_t unknown = 0;
  for (size_t i = 0; nk < 0 && i < n; i++) {
    tc_sdim d = t->vals[i];
    if (!d.sym)
      v[i] = d.v; /* a literal 0 keeps its meaning either way */
    else if (!allowzero && x->known && i < x->rank && tc_sdim_eq(d, x->dims[i]))
      v[i] = 0;
    else if (unknown++ == 0)
      v[i] = -1;
    else
      return NULL;
    if (v[i] == -1 && !d.sym && unknown++ > 0)
      return NULL;
  }
  /* the -1 spelled out where inference knows it as a number */
  for (size_t i = 0; i < n; i++)
    if (v[i] == -1 && y->known && y->rank == n && !y->dims[i].sym && y->dims[i].v > 0) {
      v[i] = y->dims[i].v;
      changed = true;
    }
  if (!changed)
    return NULL;
  return const_ints(g, r->inputs[1]->name, TC_DTYPE_I64, v, n, 1);
}

tc_status tc_pass_fold_shapes(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = tc_shapes_infer(g);
  if (!s)
    return tc_pass_nomem(c);
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (tc_is_op(n, "Reshape") && n->n_inputs == 2 && n->inputs[0] && n->inputs[1]) {
      tc_value *t = reshape_target(g, s, n);
      if (t) {
        if (tc_node_set_input(n, 1, t) != 0) {
          st = tc_pass_nomem(c);
          break;
        }
        tc_pass_count(c, "Reshape target", 1);
      }
      continue;
    }
    if (n->n_outputs != 1 || !n->outputs[0] || n->n_inputs == 0 ||
        (n->outputs[0]->flags & TC_VALUE_OUTPUT))
      continue;
    tc_value *v = n->outputs[0];
    const tc_shape *sh = tc_shape_of(s, v);
    if (!sh->has_vals || sh->dtype != TC_DTYPE_I64 || sh->rank > 1 || !v->n_uses)
      continue;
    int64_t vals[TC_SHAPE_MAX_VALS];
    bool all = true;
    for (size_t i = 0; i < sh->n_vals && all; i++) {
      all = !sh->vals[i].sym;
      vals[i] = sh->vals[i].v;
    }
    if (!all || tc_value_const(v))
      continue;
    tc_value *k = const_ints(g, v->name, TC_DTYPE_I64, vals, sh->n_vals, sh->rank);
    if (!k || tc_value_replace_uses(v, k) != 0) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_pass_count(c, "shape value", 1);
  }
  tc_shapes_free(s);
  return st;
}
