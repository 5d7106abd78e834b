/* fuse-rotary: rotary position embeddings as HF-style exports write them
 * (LLaMA's rotate_half), to RotaryEmbedding (opset 23).
 *
 *   x ─┬─────────────────────────────────────────────▶ Mul(., cos) ─┐
 *      ├▶ Slice[D/2:] ─▶ Neg ─┐                                      ├▶ Add ─▶ y
 *      └▶ Slice[:D/2] ────────┴▶ Concat(axis -1) ─▶ Mul(., sin) ─────┘
 *   ⇒   y = RotaryEmbedding(x, cos_cache, sin_cache[, position_ids])
 *
 * x is [B, H, S, D] (heads split). cos and sin are [B, 1, S, D], made by
 * Unsqueeze(axis 1) of either
 *  - trig(Concat(f, f, axis -1)), trig a chain of one Cos or Sin and any
 *    Mul or Div by a constant scalar and float Cast: HF's rotary module
 *    computing the angles f [B, S, D/2] from position_ids at run time. The
 *    cache is the same chain on f, [B, S, D/2] (exact: the chain is
 *    elementwise, so it commutes with the Concat);
 *  - Gather(T, position_ids, axis 0) of a constant float32 table T [P, D]
 *    whose two halves are equal (cat(freqs, freqs) precomputed), maybe
 *    Sliced to its first rows first (ids that Gather accepts lie within
 *    those). The cache is T's first half [P, D/2]; position_ids [B, S] int64
 *    become the op's fourth input. RotaryEmbedding refuses negative ids,
 *    which Gather would count from the end; position ids are never negative.
 * When x is Transpose(0,2,1,3) of Reshape(x3 [B, S, H*D]) and nothing else
 * reads either, the rotation moves before the head split:
 * y = Transpose(Reshape(RotaryEmbedding(x3, ..., num_heads=H))), the form
 * fuse-attention matches for Q and K.
 *
 * Conditions: D known and even; the Slices cut the last axis at exactly D/2
 * with step 1; cos and sin have x's batch, sequence and head size, the same
 * form, and (tables) the same ids; cos is the Cos chain, sin the Sin chain;
 * every intermediate is read only inside the pattern. Needs opset 23,
 * raised when exact. Partial rotation (rotary_embedding_dim < D) and the
 * interleaved GPT-J form are not matched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

#define MAX_CHAIN 6

/* Where a cos or sin input comes from. */
typedef struct rot_src {
  tc_value *ids;             /* table form: the position ids, else NULL */
  const tc_tensor *table;    /* table form: T [P, D] */
  tc_value *f;               /* computed form: the half angles f [B, S, D/2] */
  tc_value *angles;          /* computed form: Concat(f, f), which the chain reads */
  tc_node *chain[MAX_CHAIN]; /* computed form: trig chain, first node reads the Concat */
  size_t n;
} rot_src;

typedef struct rot_match {
  tc_node *nodes[7]; /* Mul(x, cos), Slice x 2, Neg, Concat, Mul(rot, sin), Add */
  tc_value *x, *y;
  rot_src cos, sin;
  int64_t d;
} rot_match;

/* The last-axis cut [start, end) of a Slice of a rank-`rank` input. */
static bool last_axis_cut(const tc_node *sl, size_t rank, int64_t *start, int64_t *end) {
  int64_t axis;
  bool known;
  return tc_pass_slice_1d(sl, &axis, start, end, &known) && known &&
         (axis == -1 || axis == (int64_t)rank - 1);
}

static bool unsqueezed_at_1(const tc_node *un) {
  int64_t *ax = NULL;
  ptrdiff_t k = tc_pass_ints_arg(un, "axes", 1, &ax);
  bool ok = k == 1 && (ax[0] == 1 || ax[0] == -3);
  free(ax);
  return ok;
}

/* The constant table of a Gather input: T itself, or T Sliced from row 0
 * along axis 0 with step 1. */
static const tc_tensor *table_of(const tc_value *v) {
  const tc_tensor *t = tc_value_const(v);
  tc_node *sl = t ? NULL : tc_producer_op(v, "Slice");
  if (!sl)
    return t;
  int64_t axis, start, end;
  bool known, ok = tc_pass_slice_1d(sl, &axis, &start, &end, &known) && axis == 0 && start == 0;
  return ok ? tc_value_const(sl->inputs[0]) : NULL;
}

/* T [P, D] is cat(U, U) on its last axis. */
static bool halves_equal(const tc_tensor *t) {
  float *v = NULL;
  ptrdiff_t n = tc_const_floats(t, &v);
  int64_t rows = t->dims[0], half = t->dims[1] / 2;
  bool ok = n == rows * 2 * half;
  for (int64_t r = 0; ok && r < rows; r++)
    ok = memcmp(v + r * 2 * half, v + r * 2 * half + half, (size_t)half * sizeof *v) == 0;
  free(v);
  return ok;
}

/* Resolves the cos (trig "Cos") or sin input u of the pattern. NULL when it
 * is one of the two forms, else the reason. */
static const char *source(const tc_shapes *s, const tc_shape *xs, tc_value *u, const char *trig,
                          rot_src *r) {
  memset(r, 0, sizeof *r);
  tc_node *un = tc_producer_op(u, "Unsqueeze");
  if (!un || !unsqueezed_at_1(un))
    return "cos/sin is not Unsqueeze(axis 1) of a [B, S, D] tensor";
  tc_value *c3 = un->inputs[0];
  const tc_shape *cs = tc_shape_of(s, c3);
  if (!cs->known || cs->rank != 3 || !tc_sdim_eq(cs->dims[0], xs->dims[0]) ||
      !tc_sdim_eq(cs->dims[1], xs->dims[2]) || !tc_sdim_is(cs->dims[2], xs->dims[3].v))
    return "cos/sin do not have x's batch, sequence and head size";
  if (cs->dtype != xs->dtype)
    return "cos/sin and x differ in type";
  tc_node *p = c3->producer;
  if (tc_is_op(p, "Gather")) {
    const tc_tensor *t = table_of(p->inputs[0]);
    const tc_shape *is = tc_shape_of(s, p->inputs[1]);
    if (tc_attr_int(p, "axis", 0) != 0 || !t || t->dtype != TC_DTYPE_F32 || t->rank != 2 ||
        t->dims[1] != xs->dims[3].v)
      return "cos/sin gathered from something other than a constant float32 [P, D] table";
    if (!is->known || is->rank != 2 || is->dtype != TC_DTYPE_I64 ||
        !tc_sdim_eq(is->dims[0], xs->dims[0]) || !tc_sdim_eq(is->dims[1], xs->dims[2]))
      return "the position ids are not int64 [B, S]";
    if (!halves_equal(t))
      return "the two halves of the cos/sin table differ";
    r->table = t;
    r->ids = p->inputs[1];
    return NULL;
  }
  bool has_trig = false;
  const tc_value *v = c3;
  while (p && !tc_is_op(p, "Concat")) {
    tc_value *other = NULL;
    const tc_tensor *k = NULL;
    double unused;
    if (r->n == MAX_CHAIN)
      return "the cos/sin chain is too long";
    if (tc_is_op(p, "Cos") || tc_is_op(p, "Sin")) {
      if (has_trig || strcmp(p->op_type, trig) != 0)
        return "cos and sin are not one Cos and one Sin";
      has_trig = true;
    } else if (tc_is_op(p, "Cast")) {
      if (!tc_dtype_is_float((int32_t)tc_attr_int(p, "to", 0)))
        return "the cos/sin chain casts to a non-float type";
    } else if ((tc_is_op(p, "Mul") || tc_is_op(p, "Div")) && (k = tc_binary_const(p, &other)) &&
               tc_const_scalar(k, &unused) && (tc_is_op(p, "Mul") || other == p->inputs[0])) {
      /* scaled by a constant scalar */
    } else {
      return "cos/sin is neither a gathered table nor Cos/Sin of Concat(f, f)";
    }
    r->chain[r->n++] = p;
    v = other ? other : p->inputs[0];
    p = v->producer;
  }
  /* the chain was collected from its end: put it in execution order */
  for (size_t i = 0; i < r->n / 2; i++) {
    tc_node *t = r->chain[i];
    r->chain[i] = r->chain[r->n - 1 - i];
    r->chain[r->n - 1 - i] = t;
  }
  if (!p || !has_trig)
    return "cos/sin is neither a gathered table nor Cos/Sin of Concat(f, f)";
  int64_t axis = tc_attr_int(p, "axis", 0);
  if (p->n_inputs != 2 || p->inputs[0] != p->inputs[1] || !(axis == -1 || axis == 2))
    return "the angles are not Concat(f, f) on the last axis";
  r->f = p->inputs[0];
  r->angles = p->outputs[0];
  return NULL;
}

static const char *match(rot_match *m, const tc_shapes *s, tc_node *cat) {
  memset(m, 0, sizeof *m);
  tc_node *neg = tc_producer_op(cat->inputs[0], "Neg");
  tc_node *hi = neg ? tc_producer_op(neg->inputs[0], "Slice") : NULL;
  tc_node *lo = tc_producer_op(cat->inputs[1], "Slice");
  if (!hi || !lo || hi->inputs[0] != lo->inputs[0])
    return ""; /* not rotate_half */
  m->x = lo->inputs[0];
  const tc_shape *xs = tc_shape_of(s, m->x);
  if (!xs->known || xs->rank != 4 || xs->dims[3].sym || xs->dims[3].v < 2 || xs->dims[3].v % 2)
    return "x is not [B, H, S, D] with a known even D";
  int64_t d = m->d = xs->dims[3].v, a0, a1, b0, b1;
  int64_t axis = tc_attr_int(cat, "axis", 0);
  if (!(axis == -1 || axis == 3) || !last_axis_cut(lo, 4, &a0, &a1) ||
      !last_axis_cut(hi, 4, &b0, &b1) || a0 != 0 || a1 != d / 2 || b0 != d / 2 || b1 < d)
    return "the halves are not x[..., :D/2] and x[..., D/2:] joined on the last axis";
  tc_node *msin = tc_single_consumer(cat->outputs[0]);
  if (!tc_is_op(msin, "Mul") || tc_single_consumer(lo->outputs[0]) != cat ||
      tc_single_consumer(hi->outputs[0]) != neg || tc_single_consumer(neg->outputs[0]) != cat)
    return "an intermediate has readers outside the rotation";
  tc_value *sin_u = msin->inputs[0] == cat->outputs[0] ? msin->inputs[1] : msin->inputs[0];
  tc_node *add = tc_single_consumer(msin->outputs[0]);
  if (!tc_is_op(add, "Add"))
    return "rotate_half(x) * sin is not added";
  tc_value *o = add->inputs[0] == msin->outputs[0] ? add->inputs[1] : add->inputs[0];
  tc_node *mcos = tc_producer_op(o, "Mul");
  if (!mcos || !(mcos->inputs[0] == m->x || mcos->inputs[1] == m->x) ||
      tc_single_consumer(o) != add)
    return "rotate_half(x) * sin is not added to x * cos";
  tc_value *cos_u = mcos->inputs[0] == m->x ? mcos->inputs[1] : mcos->inputs[0];
  const char *why = source(s, xs, cos_u, "Cos", &m->cos);
  if (!why)
    why = source(s, xs, sin_u, "Sin", &m->sin);
  if (why)
    return why;
  if (!m->cos.table != !m->sin.table || m->cos.ids != m->sin.ids)
    return "cos and sin come in different forms";
  tc_node *nodes[] = {mcos, hi, lo, neg, cat, msin, add};
  memcpy(m->nodes, nodes, sizeof nodes);
  m->y = add->outputs[0];
  return NULL;
}

/* The cache of src as a value: T's first half, or src's chain on f. */
static tc_value *cache(tc_graph *g, tc_node *before, const rot_src *src, int64_t d) {
  if (src->table) {
    float *t = NULL;
    ptrdiff_t n = tc_const_floats(src->table, &t);
    int64_t rows = src->table->dims[0], half = d / 2, dims[2] = {rows, half};
    if (n != rows * d) {
      free(t);
      return NULL;
    }
    for (int64_t r = 0; r < rows; r++)
      memmove(t + r * half, t + r * d, (size_t)half * sizeof *t);
    tc_value *v = tc_pass_new_const_f32(g, "rotary_cache", t, 2, dims);
    free(t);
    return v;
  }
  tc_value *v = src->f;
  for (size_t i = 0; i < src->n; i++) {
    const tc_node *o = src->chain[i];
    const tc_value *from = i ? src->chain[i - 1]->outputs[0] : src->angles;
    tc_node *c = tc_graph_insert_node(g, before, o->op_type, "", NULL, o->n_inputs, 1, o->n_attrs);
    tc_value *out = tc_graph_new_temp(g, "rotary_cache");
    if (!c || !out || tc_node_set_output(c, 0, out))
      return NULL;
    for (size_t j = 0; j < o->n_attrs; j++)
      tc_node_copy_attr(c, j, &o->attrs[j]);
    for (size_t j = 0; j < o->n_inputs; j++)
      if (tc_node_set_input(c, j, o->inputs[j] == from ? v : o->inputs[j]))
        return NULL;
    v = out;
  }
  return v;
}

/* x as Transpose(0,2,1,3) of Reshape(x3 [B, S, H*D]) to [B, S, H, D], both
 * read only by the next: the Transpose, else NULL. */
static tc_node *head_split(const tc_shapes *s, const tc_value *x, const rot_match *m) {
  static const int64_t want[4] = {0, 2, 1, 3};
  tc_node *t = tc_producer_op(x, "Transpose");
  const int64_t *perm;
  if (!t || tc_attr_ints(t, "perm", &perm) != 4 || memcmp(perm, want, sizeof want) != 0)
    return NULL;
  tc_node *r = tc_producer_op(t->inputs[0], "Reshape");
  if (!r || tc_single_consumer(t->inputs[0]) != t)
    return NULL;
  for (size_t i = 0; i < x->n_uses; i++) {
    const tc_node *u = x->uses[i].node;
    if (u != m->nodes[0] && u != m->nodes[1] && u != m->nodes[2])
      return NULL;
  }
  if (x->flags & TC_VALUE_OUTPUT)
    return NULL;
  const tc_shape *in = tc_shape_of(s, r->inputs[0]), *out = tc_shape_of(s, r->outputs[0]);
  if (!in->known || !out->known || in->rank != 3 || out->rank != 4 ||
      !tc_sdim_eq(in->dims[0], out->dims[0]) || !tc_sdim_eq(in->dims[1], out->dims[1]) ||
      in->dims[2].sym || out->dims[2].sym || out->dims[3].sym ||
      in->dims[2].v != out->dims[2].v * out->dims[3].v)
    return NULL;
  return t;
}

/* Rewrites the match m (shapes s): the pattern's nodes go, RotaryEmbedding
 * (and the moved head split) take their place before the Add. */
static tc_status rewrite(tc_pass_ctx *c, tc_graph *g, const tc_shapes *s, const rot_match *m) {
  tc_node *add = m->nodes[6], *split = head_split(s, m->x, m);
  tc_node *reshape = split ? split->inputs[0]->producer : NULL;
  tc_value *cc = cache(g, add, &m->cos, m->d), *sc = cache(g, add, &m->sin, m->d);
  tc_node *r = tc_graph_insert_node(g, add, "RotaryEmbedding", "", add->name, m->cos.ids ? 4 : 3, 1,
                                    reshape ? 1 : 0);
  if (!cc || !sc || !r)
    return tc_pass_nomem(c);
  int bad = tc_node_set_input(r, 1, cc) || tc_node_set_input(r, 2, sc) ||
            (m->cos.ids && tc_node_set_input(r, 3, m->cos.ids));
  tc_value *y = m->y;
  if (reshape) {
    /* y = Transpose(Reshape(RotaryEmbedding(x3))): the head split moves
     * after the op, as new nodes so that the node order stays topological */
    int64_t heads = tc_shape_of(s, reshape->outputs[0])->dims[2].v;
    tc_value *x3 = reshape->inputs[0], *target = reshape->inputs[1];
    tc_value *r3 = tc_graph_new_temp(g, "rotary"), *r4 = reshape->outputs[0];
    tc_node *nr =
        tc_graph_insert_node(g, add, "Reshape", "", reshape->name, 2, 1, reshape->n_attrs);
    tc_node *nt = tc_graph_insert_node(g, add, "Transpose", "", split->name, 1, 1, 1);
    if (bad || !r3 || !nr || !nt)
      return tc_pass_nomem(c);
    for (size_t i = 0; i < reshape->n_attrs; i++)
      tc_node_copy_attr(nr, i, &reshape->attrs[i]);
    tc_node_copy_attr(nt, 0, tc_node_attr(split, "perm"));
    for (size_t i = 0; i < 7; i++)
      tc_node_remove(m->nodes[i]);
    tc_node_remove(split);
    tc_node_remove(reshape);
    bad = tc_node_set_input(r, 0, x3) || tc_node_set_attr_int(r, 0, "num_heads", heads) ||
          tc_node_set_output(r, 0, r3) || tc_node_set_input(nr, 0, r3) ||
          tc_node_set_input(nr, 1, target) || tc_node_set_output(nr, 0, r4) ||
          tc_node_set_input(nt, 0, r4) || tc_node_set_output(nt, 0, y);
  } else {
    for (size_t i = 0; i < 7; i++)
      tc_node_remove(m->nodes[i]);
    bad = bad || tc_node_set_input(r, 0, m->x) || tc_node_set_output(r, 0, y);
  }
  if (bad)
    return tc_pass_nomem(c);
  tc_pass_count(c, "RotaryEmbedding", 1);
  return TC_STATUS_OK;
}

tc_status tc_pass_fuse_rotary(tc_pass_ctx *c, tc_graph *g) {
  /* The candidates are collected first: a rewrite removes only its own
   * Concat, and re-infers shapes for the next one. */
  size_t n_cat = 0;
  for (tc_node *n = g->first; n; n = n->next)
    n_cat += tc_is_op(n, "Concat") && n->n_inputs == 2 && n->inputs[0] && n->inputs[1];
  if (!n_cat)
    return TC_STATUS_OK;
  tc_node **cats = malloc(n_cat * sizeof *cats);
  if (!cats)
    return tc_pass_nomem(c);
  n_cat = 0;
  for (tc_node *n = g->first; n; n = n->next)
    if (tc_is_op(n, "Concat") && n->n_inputs == 2 && n->inputs[0] && n->inputs[1])
      cats[n_cat++] = n;
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (size_t i = 0; i < n_cat && !st; i++) {
    if (!s && !(s = tc_shapes_infer(g))) {
      st = tc_pass_nomem(c);
      break;
    }
    rot_match m;
    const char *why = match(&m, s, cats[i]);
    if (!why && !tc_pass_require_opset(c, 23, &why) && !why)
      why = "the opset cannot be raised to 23";
    if (why) {
      if (*why)
        tc_pass_explain(c, cats[i], "rotary embedding candidate rejected: %s", why);
      continue;
    }
    st = rewrite(c, g, s, &m);
    /* the graph changed under the shape table */
    tc_shapes_free(s);
    s = NULL;
  }
  tc_shapes_free(s);
  free(cats);
  return st;
}
