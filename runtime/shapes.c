/* Symbolic shape inference (see shapes.h). Rules cover the ops that real
 * exporters put between the interesting nodes of transformer, CNN and speech
 * models; any other op gets outputs of unknown shape (or the shapes the model
 * declares in value_info), which only makes passes more careful. */
#include "shapes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

struct tc_shapes {
  tc_shape *by_id;
  size_t n;
  tc_arena *arena; /* fresh symbol names */
  tc_arena *own;   /* the arena, when it is the result's own */
  unsigned next_sym;
  /* tc_shapes_infer_bound: the main graph's input dims, by input (NULL: declared) */
  const int64_t *const *bind_dims;
  const size_t *bind_ranks;
};

static const tc_shape unknown_shape;

bool tc_sdim_eq(tc_sdim a, tc_sdim b) {
  if (a.sym || b.sym)
    return a.sym && b.sym && strcmp(a.sym, b.sym) == 0;
  return a.v == b.v;
}

const tc_shape *tc_shape_of(const tc_shapes *s, const tc_value *v) {
  return v && v->id < s->n ? &s->by_id[v->id] : &unknown_shape;
}

static tc_sdim fresh(tc_shapes *s) {
  char buf[32];
  snprintf(buf, sizeof buf, "?%u", s->next_sym++);
  return (tc_sdim){.v = -1, .sym = tc_arena_strdup(s->arena, buf)};
}

static tc_sdim num(int64_t v) { return (tc_sdim){.v = v}; }

static tc_shape *out(tc_shapes *s, const tc_node *n, size_t i) {
  const tc_value *v = i < n->n_outputs ? n->outputs[i] : NULL;
  return v && v->id < s->n ? &s->by_id[v->id] : NULL;
}

static const tc_shape *in(const tc_shapes *s, const tc_node *n, size_t i) {
  return tc_shape_of(s, i < n->n_inputs ? n->inputs[i] : NULL);
}

/* Constant int elements of input i (NULL when not all known numbers). */
static bool in_ints(const tc_shapes *s, const tc_node *n, size_t i, int64_t *v, size_t *count) {
  const tc_shape *sh = in(s, n, i);
  if (!sh->has_vals)
    return false;
  for (size_t k = 0; k < sh->n_vals; k++) {
    if (sh->vals[k].sym)
      return false;
    v[k] = sh->vals[k].v;
  }
  *count = sh->n_vals;
  return true;
}

static void set_rank(tc_shape *o, int32_t dtype, size_t rank) {
  memset(o, 0, sizeof *o);
  o->known = rank <= TC_SHAPE_MAX_RANK;
  o->dtype = dtype;
  o->rank = rank;
}

/* ---- seeding from the model ---- */
static void seed_type(tc_shapes *s, tc_shape *o, const tc_type *t) {
  if (t->kind != TC_TYPE_TENSOR)
    return;
  o->dtype = t->elem;
  if (!t->has_shape || t->rank > TC_SHAPE_MAX_RANK)
    return;
  o->known = true;
  o->rank = t->rank;
  for (size_t i = 0; i < t->rank; i++) {
    const tc_dim *d = &t->dims[i];
    o->dims[i] = d->kind == TC_DIM_VALUE   ? num(d->value)
                 : d->kind == TC_DIM_PARAM ? (tc_sdim){.v = -1, .sym = d->param}
                                           : fresh(s);
  }
}

static void seed_const(tc_shape *o, const tc_tensor *t) {
  if (t->rank > TC_SHAPE_MAX_RANK)
    return;
  set_rank(o, t->dtype, t->rank);
  for (size_t i = 0; i < t->rank; i++)
    o->dims[i] = num(t->dims[i]);
  int64_t *v = NULL;
  ptrdiff_t k = tc_dtype_is_int(t->dtype) && tc_tensor_numel(t) <= TC_SHAPE_MAX_VALS
                    ? tc_const_ints(t, &v)
                    : -1;
  if (k >= 0 && t->rank <= 1) {
    o->has_vals = true;
    o->n_vals = (size_t)k;
    for (ptrdiff_t i = 0; i < k; i++)
      o->vals[i] = num(v[i]);
  }
  free(v);
}

/* ---- rules ---- */
static bool broadcast(tc_shapes *s, const tc_shape *a, const tc_shape *b, tc_shape *o) {
  if (!a->known || !b->known)
    return false;
  size_t r = a->rank > b->rank ? a->rank : b->rank;
  set_rank(o, a->dtype, r);
  for (size_t i = 0; i < r; i++) {
    tc_sdim da = i < a->rank ? a->dims[a->rank - 1 - i] : num(1);
    tc_sdim db = i < b->rank ? b->dims[b->rank - 1 - i] : num(1);
    tc_sdim d;
    if (tc_sdim_eq(da, db) || tc_sdim_is(db, 1))
      d = da;
    else if (tc_sdim_is(da, 1))
      d = db;
    else if (!da.sym) /* a valid model has db == da here */
      d = da;
    else if (!db.sym)
      d = db;
    else
      d = fresh(s);
    o->dims[r - 1 - i] = d;
  }
  return true;
}

/* Sums of symbols as names "a+b" (the way exporters name such dims, e.g. an
 * attention mask's "past_seq+seq"), so that (a+b)-a is b again: enough for
 * the position ids and cache lengths of decoders. Anything else is fresh. */
static tc_sdim sym_add(tc_shapes *s, tc_sdim x, tc_sdim y) {
  char buf[256];
  if (x.sym && y.sym)
    snprintf(buf, sizeof buf, "%s+%s", x.sym, y.sym);
  else
    return fresh(s);
  return (tc_sdim){.v = -1, .sym = tc_arena_strdup(s->arena, buf)};
}

static tc_sdim sym_sub(tc_shapes *s, tc_sdim x, tc_sdim y) {
  if (x.sym && y.sym) {
    size_t lx = strlen(x.sym), ly = strlen(y.sym);
    if (lx > ly + 1 && strncmp(x.sym, y.sym, ly) == 0 && x.sym[ly] == '+')
      return (tc_sdim){.v = -1, .sym = tc_arena_strdup(s->arena, x.sym + ly + 1)};
    if (lx > ly + 1 && strcmp(x.sym + lx - ly, y.sym) == 0 && x.sym[lx - ly - 1] == '+') {
      char buf[256];
      snprintf(buf, sizeof buf, "%.*s", (int)(lx - ly - 1), x.sym);
      return (tc_sdim){.v = -1, .sym = tc_arena_strdup(s->arena, buf)};
    }
  }
  return fresh(s);
}

/* Elementwise arithmetic on known element values (shape arithmetic). */
static void arith_vals(tc_shapes *s, const tc_node *n, const tc_shape *a, const tc_shape *b,
                       tc_shape *o) {
  if (!a->has_vals || !b->has_vals || (a->n_vals != b->n_vals && a->n_vals != 1 && b->n_vals != 1))
    return;
  size_t cnt = a->n_vals > b->n_vals ? a->n_vals : b->n_vals;
  for (size_t i = 0; i < cnt; i++) {
    tc_sdim x = a->vals[a->n_vals == 1 ? 0 : i], y = b->vals[b->n_vals == 1 ? 0 : i];
    if (x.sym || y.sym) {
      bool ident = (tc_is_op(n, "Mul") && (tc_sdim_is(y, 1) || tc_sdim_is(x, 1))) ||
                   ((tc_is_op(n, "Add") || tc_is_op(n, "Sub")) && tc_sdim_is(y, 0)) ||
                   (tc_is_op(n, "Div") && tc_sdim_is(y, 1));
      o->vals[i] = ident                ? (x.sym ? x : y)
                   : tc_is_op(n, "Add") ? sym_add(s, x, y)
                   : tc_is_op(n, "Sub") ? sym_sub(s, x, y)
                                        : fresh(s);
      continue;
    }
    int64_t r;
    if (tc_is_op(n, "Add"))
      r = x.v + y.v;
    else if (tc_is_op(n, "Sub"))
      r = x.v - y.v;
    else if (tc_is_op(n, "Mul"))
      r = x.v * y.v;
    else if (tc_is_op(n, "Div") && y.v && x.v % y.v == 0) /* exact: floor and trunc agree */
      r = x.v / y.v;
    else if (tc_is_op(n, "Max") || tc_is_op(n, "Min"))
      r = (x.v > y.v) == tc_is_op(n, "Max") ? x.v : y.v;
    else
      return;
    o->vals[i] = num(r);
  }
  o->has_vals = true;
  o->n_vals = cnt;
}

static void copy_shape(tc_shape *o, const tc_shape *a, int32_t dtype) {
  *o = *a;
  o->dtype = dtype;
}

static int64_t norm_axis(int64_t axis, size_t rank) {
  return axis < 0 ? axis + (int64_t)rank : axis;
}

/* Axes from the attribute or (opset 13+/18+) the input at slot; false if unknown. */
static bool axes_of(const tc_shapes *s, const tc_node *n, size_t slot, int64_t *ax, size_t *cnt,
                    bool *given) {
  const tc_attr *a = tc_node_attr(n, "axes");
  *given = true;
  if (a) {
    if (a->n_ints > TC_SHAPE_MAX_RANK)
      return false;
    memcpy(ax, a->ints, a->n_ints * sizeof *ax);
    *cnt = a->n_ints;
    return true;
  }
  if (n->n_inputs > slot && n->inputs[slot])
    return in_ints(s, n, slot, ax, cnt);
  *given = false;
  *cnt = 0;
  return true;
}

static bool rule_matmul(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *a = in(s, n, 0), *b = in(s, n, 1);
  if (!a->known || !b->known || a->rank < 2 || b->rank < 2)
    return false;
  tc_shape ba = *a, bb = *b;
  ba.rank -= 2;
  bb.rank -= 2;
  if (!broadcast(s, &ba, &bb, o))
    return false;
  o->dtype = a->dtype;
  o->dims[o->rank++] = a->dims[a->rank - 2];
  o->dims[o->rank++] = b->dims[b->rank - 1];
  return true;
}

static bool rule_reshape(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0), *t = in(s, n, 1);
  if (!t->has_vals)
    return false;
  bool allowzero = tc_attr_int(n, "allowzero", 0) != 0;
  set_rank(o, x->dtype, t->n_vals);
  for (size_t i = 0; i < t->n_vals; i++) {
    tc_sdim d = t->vals[i];
    if (tc_sdim_is(d, 0) && !allowzero)
      d = x->known && i < x->rank ? x->dims[i] : fresh(s);
    else if (tc_sdim_is(d, -1))
      d = fresh(s); /* the product rule would need symbolic algebra */
    o->dims[i] = d;
  }
  /* -1: the input's dims over the other output dims, symbols cancelling
   * symbols ([batch, seq, 64] to [batch, -1, 4, 16] gives seq). */
  size_t minus = SIZE_MAX;
  for (size_t i = 0; i < t->n_vals; i++)
    if (tc_sdim_is(t->vals[i], -1))
      minus = i;
  if (!x->known || minus == SIZE_MAX)
    return true;
  int64_t total = 1, rest = 1;
  bool used[TC_SHAPE_MAX_RANK] = {false};
  for (size_t i = 0; i < x->rank; i++)
    if (!x->dims[i].sym)
      total *= x->dims[i].v;
  for (size_t i = 0; i < t->n_vals; i++) {
    if (i == minus)
      continue;
    if (!o->dims[i].sym) {
      rest *= o->dims[i].v;
      continue;
    }
    size_t j = 0;
    while (j < x->rank && (used[j] || !tc_sdim_eq(x->dims[j], o->dims[i])))
      j++;
    if (j == x->rank)
      return true; /* an output symbol the input lacks */
    used[j] = true;
  }
  size_t left = SIZE_MAX, n_left = 0;
  for (size_t j = 0; j < x->rank; j++)
    if (x->dims[j].sym && !used[j])
      left = j, n_left++;
  if (n_left == 0 && rest > 0 && total % rest == 0)
    o->dims[minus] = num(total / rest);
  else if (n_left == 1 && total == rest && rest > 0)
    o->dims[minus] = x->dims[left];
  return true;
}

static bool rule_gather(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0), *ix = in(s, n, 1);
  if (!x->known || !ix->known || x->rank + ix->rank > TC_SHAPE_MAX_RANK + 1)
    return false;
  int64_t axis = norm_axis(tc_attr_int(n, "axis", 0), x->rank);
  if (axis < 0 || axis >= (int64_t)x->rank)
    return false;
  set_rank(o, x->dtype, x->rank - 1 + ix->rank);
  size_t k = 0;
  for (int64_t i = 0; i < axis; i++)
    o->dims[k++] = x->dims[i];
  for (size_t i = 0; i < ix->rank; i++)
    o->dims[k++] = ix->dims[i];
  for (size_t i = (size_t)axis + 1; i < x->rank; i++)
    o->dims[k++] = x->dims[i];
  /* Values: picking elements of a known 1-D vector. */
  int64_t idx[TC_SHAPE_MAX_VALS];
  size_t ni;
  if (x->has_vals && x->rank == 1 && in_ints(s, n, 1, idx, &ni)) {
    for (size_t i = 0; i < ni; i++) {
      int64_t j = idx[i] < 0 ? idx[i] + (int64_t)x->n_vals : idx[i];
      if (j < 0 || j >= (int64_t)x->n_vals)
        return false;
      o->vals[i] = x->vals[j];
    }
    o->has_vals = true;
    o->n_vals = ni;
  }
  return true;
}

static bool rule_unsqueeze(tc_shapes *s, const tc_node *n, tc_shape *o, bool squeeze) {
  const tc_shape *x = in(s, n, 0);
  int64_t ax[TC_SHAPE_MAX_RANK];
  size_t cnt;
  bool given;
  if (!x->known || !axes_of(s, n, 1, ax, &cnt, &given) || (!squeeze && !given))
    return false;
  size_t r = squeeze ? x->rank - (given ? cnt : 0) : x->rank + cnt;
  if (squeeze && !given) {
    r = 0;
    for (size_t i = 0; i < x->rank; i++) {
      if (x->dims[i].sym)
        return false; /* might or might not be 1 */
      r += x->dims[i].v != 1;
    }
  }
  if (r > TC_SHAPE_MAX_RANK)
    return false;
  bool mark[TC_SHAPE_MAX_RANK * 2] = {0};
  for (size_t i = 0; i < cnt; i++) {
    int64_t a = norm_axis(ax[i], squeeze ? x->rank : r);
    if (a < 0 || a >= (int64_t)(squeeze ? x->rank : r))
      return false;
    mark[a] = true;
  }
  set_rank(o, x->dtype, r);
  size_t k = 0;
  if (squeeze) {
    for (size_t i = 0; i < x->rank; i++)
      if (given ? !mark[i] : !tc_sdim_is(x->dims[i], 1))
        o->dims[k++] = x->dims[i];
  } else {
    for (size_t i = 0, j = 0; i < r; i++)
      o->dims[i] = mark[i] ? num(1) : x->dims[j++];
  }
  if (x->has_vals && x->n_vals == 1 && ((squeeze && r == 0) || (!squeeze && r == 1))) {
    o->has_vals = true;
    o->n_vals = 1;
    o->vals[0] = x->vals[0];
  }
  return true;
}

static bool rule_concat(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *a = in(s, n, 0);
  if (!a->known)
    return false;
  int64_t axis = norm_axis(tc_attr_int(n, "axis", 0), a->rank);
  if (axis < 0 || axis >= (int64_t)a->rank)
    return false;
  *o = *a;
  o->has_vals = a->has_vals && a->rank == 1;
  o->n_vals = 0;
  tc_sdim total = num(0);
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_shape *x = in(s, n, i);
    if (!x->known || x->rank != a->rank)
      return false;
    tc_sdim d = x->dims[axis];
    if (!total.sym && !d.sym)
      total = num(total.v + d.v);
    else if (tc_sdim_is(total, 0))
      total = d;
    else if (!tc_sdim_is(d, 0))
      total = sym_add(s, total, d); /* past + new: "past_seq+seq" */
    if (o->has_vals && x->has_vals && o->n_vals + x->n_vals <= TC_SHAPE_MAX_VALS) {
      memcpy(o->vals + o->n_vals, x->vals, x->n_vals * sizeof *x->vals);
      o->n_vals += x->n_vals;
    } else {
      o->has_vals = false;
    }
  }
  o->dims[axis] = total;
  return true;
}

static bool rule_slice(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0);
  int64_t st[TC_SHAPE_MAX_VALS], en[TC_SHAPE_MAX_VALS], ax[TC_SHAPE_MAX_VALS],
      sp[TC_SHAPE_MAX_VALS];
  size_t ns, ne, na = 0, nsp = 0;
  bool nums = in_ints(s, n, 1, st, &ns) && in_ints(s, n, 2, en, &ne);
  if (x->known && !nums && in(s, n, 1)->has_vals && in(s, n, 2)->has_vals &&
      in(s, n, 1)->n_vals == 1 && in(s, n, 2)->n_vals == 1 && !(n->n_inputs > 4 && n->inputs[4])) {
    /* One axis sliced between symbolic bounds (a decoder's causal mask rows
     * [past : past + seq]): b - a elements, assuming the bounds are in range
     * as a valid model has them. */
    size_t one;
    int64_t a = 0;
    if (n->n_inputs > 3 && n->inputs[3] && (!in_ints(s, n, 3, ax, &one) || one != 1))
      return false;
    a = norm_axis(n->n_inputs > 3 && n->inputs[3] ? ax[0] : 0, x->rank);
    if (a < 0 || a >= (int64_t)x->rank)
      return false;
    tc_sdim lo = in(s, n, 1)->vals[0], hi = in(s, n, 2)->vals[0];
    *o = *x;
    o->has_vals = false;
    o->dims[a] = tc_sdim_is(lo, 0) ? hi : sym_sub(s, hi, lo);
    return true;
  }
  if (!x->known || !in_ints(s, n, 1, st, &ns) || !in_ints(s, n, 2, en, &ne) || ns != ne)
    return false;
  if (n->n_inputs > 3 && n->inputs[3] && (!in_ints(s, n, 3, ax, &na) || na != ns))
    return false;
  if (n->n_inputs > 4 && n->inputs[4] && (!in_ints(s, n, 4, sp, &nsp) || nsp != ns))
    return false;
  *o = *x;
  o->has_vals = false;
  for (size_t i = 0; i < ns; i++) {
    int64_t a = norm_axis(na ? ax[i] : (int64_t)i, x->rank), step = nsp ? sp[i] : 1;
    if (a < 0 || a >= (int64_t)x->rank || step == 0)
      return false;
    tc_sdim d = x->dims[a];
    if (d.sym) {
      /* x[0:INT_MAX] keeps a symbolic dim; anything else is a new unknown. */
      o->dims[a] = st[i] == 0 && en[i] >= INT32_MAX && step == 1 ? d : fresh(s);
      continue;
    }
    int64_t b = st[i] < 0 ? st[i] + d.v : st[i], e = en[i] < 0 ? en[i] + d.v : en[i];
    int64_t lo = step > 0 ? 0 : -1, hi = step > 0 ? d.v : d.v - 1;
    b = b < lo ? lo : b > hi ? hi : b;
    e = e < lo ? lo : e > hi ? hi : e;
    int64_t len = step > 0 ? (e - b + step - 1) / step : (b - e - step - 1) / -step;
    o->dims[a] = num(len < 0 ? 0 : len);
  }
  if (x->has_vals && x->rank == 1 && !o->dims[0].sym && ns == 1 && (nsp ? sp[0] : 1) == 1) {
    int64_t b = st[0] < 0 ? st[0] + (int64_t)x->n_vals : st[0];
    b = b < 0 ? 0 : b > (int64_t)x->n_vals ? (int64_t)x->n_vals : b;
    o->has_vals = true;
    o->n_vals = (size_t)o->dims[0].v;
    for (size_t i = 0; i < o->n_vals; i++)
      o->vals[i] = x->vals[b + (int64_t)i];
  }
  return true;
}

static bool rule_reduce(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0);
  int64_t ax[TC_SHAPE_MAX_RANK];
  size_t cnt;
  bool given;
  if (!x->known || !axes_of(s, n, 1, ax, &cnt, &given))
    return false;
  bool keep = tc_attr_int(n, "keepdims", 1) != 0;
  if (!given && tc_attr_int(n, "noop_with_empty_axes", 0)) {
    copy_shape(o, x, x->dtype);
    return false;
  }
  bool mark[TC_SHAPE_MAX_RANK] = {0};
  for (size_t i = 0; i < cnt; i++) {
    int64_t a = norm_axis(ax[i], x->rank);
    if (a < 0 || a >= (int64_t)x->rank)
      return false;
    mark[a] = true;
  }
  set_rank(o, tc_is_op(n, "ArgMax") || tc_is_op(n, "ArgMin") ? TC_DTYPE_I64 : x->dtype, 0);
  for (size_t i = 0; i < x->rank; i++) {
    bool r = given ? mark[i] : true;
    if (!r)
      o->dims[o->rank++] = x->dims[i];
    else if (keep)
      o->dims[o->rank++] = num(1);
  }
  return true;
}

static bool rule_shape(const tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0);
  if (!x->known)
    return false;
  int64_t r = (int64_t)x->rank;
  int64_t b = tc_attr_int(n, "start", 0), e = tc_attr_int(n, "end", r);
  b = b < 0 ? b + r : b;
  e = e < 0 ? e + r : e;
  b = b < 0 ? 0 : b > r ? r : b;
  e = e < b ? b : e > r ? r : e;
  set_rank(o, TC_DTYPE_I64, 1);
  o->dims[0] = num(e - b);
  o->has_vals = true;
  o->n_vals = (size_t)(e - b);
  for (int64_t i = b; i < e; i++)
    o->vals[i - b] = x->dims[i];
  return true;
}

static bool rule_from_vals(tc_shapes *s, const tc_node *n, size_t slot, int32_t dtype,
                           tc_shape *o) {
  const tc_shape *t = in(s, n, slot);
  if (!t->has_vals || t->n_vals > TC_SHAPE_MAX_RANK)
    return false;
  set_rank(o, dtype, t->n_vals);
  for (size_t i = 0; i < t->n_vals; i++)
    o->dims[i] = t->vals[i];
  if (tc_is_op(n, "Expand")) { /* numpy broadcast of the input with the shape */
    tc_shape shp = *o;
    broadcast(s, in(s, n, 0), &shp, o);
    o->dtype = dtype;
  }
  return true;
}

static bool rule_range(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *st = in(s, n, 0), *lim = in(s, n, 1), *d = in(s, n, 2);
  set_rank(o, st->dtype, 1);
  o->dims[0] = fresh(s);
  /* Range(a, b, 1) has b - a elements: the position ids of every transformer
   * (a = 0, or a decoder's cache length). */
  if (st->has_vals && d->has_vals && lim->has_vals && tc_sdim_is(d->vals[0], 1)) {
    tc_sdim a = st->vals[0], b = lim->vals[0];
    if (tc_sdim_is(a, 0))
      o->dims[0] = b;
    else if (!a.sym && !b.sym)
      o->dims[0] = num(b.v > a.v ? b.v - a.v : 0);
    else
      o->dims[0] = sym_sub(s, b, a);
  }
  return true;
}

/* Conv, ConvTranspose-free pools: [N, C, spatial...] with the usual size rule. */
static bool rule_conv(tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0);
  bool conv = !tc_is_op(n, "MaxPool") && !tc_is_op(n, "AveragePool"); /* Conv, ai.tacoc.Conv<Act> */
  const tc_shape *w = conv ? in(s, n, 1) : NULL;
  if (!x->known || x->rank < 3 || (conv && (!w->known || w->rank != x->rank)))
    return false;
  size_t sp = x->rank - 2;
  const int64_t *ks = NULL, *st = NULL, *dl = NULL, *pd = NULL;
  ptrdiff_t nk = tc_attr_ints(n, "kernel_shape", &ks), ns = tc_attr_ints(n, "strides", &st),
            nd = tc_attr_ints(n, "dilations", &dl), np = tc_attr_ints(n, "pads", &pd);
  const char *ap = tc_attr_string(n, "auto_pad", "NOTSET", s->arena);
  bool ceil_mode = tc_attr_int(n, "ceil_mode", 0) != 0;
  set_rank(o, x->dtype, x->rank);
  o->dims[0] = x->dims[0];
  o->dims[1] = conv ? w->dims[0] : x->dims[1];
  for (size_t i = 0; i < sp; i++) {
    tc_sdim in_d = x->dims[2 + i];
    int64_t k = nk == (ptrdiff_t)sp ? ks[i] : conv && !w->dims[2 + i].sym ? w->dims[2 + i].v : -1;
    int64_t stride = ns == (ptrdiff_t)sp ? st[i] : 1, dil = nd == (ptrdiff_t)sp ? dl[i] : 1;
    int64_t pads = np == (ptrdiff_t)(2 * sp) ? pd[i] + pd[i + sp] : 0;
    if (in_d.sym || k < 1 || stride < 1) {
      o->dims[2 + i] = fresh(s);
      continue;
    }
    int64_t span = dil * (k - 1) + 1, v;
    if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0)
      v = (in_d.v + stride - 1) / stride;
    else if (strcmp(ap, "VALID") == 0)
      v = (in_d.v - span) / stride + 1;
    else
      v = (in_d.v + pads - span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
    o->dims[2 + i] = num(v);
  }
  return true;
}

/* Attention (opset 23): Y is (B, Sq, Hq*Dv) for 3-D inputs, (B, Hq, Sq, Dv)
 * for 4-D; present_key/value are the cache after appending K/V. */
static void infer_attention(tc_shapes *s, const tc_node *n) {
  const tc_shape *q = in(s, n, 0), *k = in(s, n, 1), *v = in(s, n, 2);
  if (!q->known || !k->known || !v->known || q->rank != k->rank || q->rank != v->rank)
    return;
  bool three = q->rank == 3;
  int64_t hq = tc_attr_int(n, "q_num_heads", 0), hkv = tc_attr_int(n, "kv_num_heads", 0);
  if (three && (hq <= 0 || hkv <= 0))
    return;
  tc_sdim dv = three ? (v->dims[2].sym ? fresh(s) : num(v->dims[2].v / hkv)) : v->dims[3];
  tc_shape *y = out(s, n, 0);
  if (y) {
    set_rank(y, q->dtype, q->rank);
    y->dims[0] = q->dims[0];
    if (three) {
      y->dims[1] = q->dims[1];
      y->dims[2] = dv.sym ? fresh(s) : num(hq * dv.v);
    } else {
      y->dims[1] = q->dims[1];
      y->dims[2] = q->dims[2];
      y->dims[3] = dv;
    }
  }
  const tc_shape *pk = in(s, n, 4), *pv = in(s, n, 5);
  for (int i = 0; i < 2; i++) {
    tc_shape *o = out(s, n, 1 + (size_t)i);
    const tc_shape *past = i ? pv : pk, *cur = i ? v : k;
    if (!o || !cur->known)
      continue;
    tc_sdim seq = three ? cur->dims[1] : cur->dims[2];
    tc_sdim head = three ? (cur->dims[2].sym ? fresh(s) : num(cur->dims[2].v / hkv)) : cur->dims[3];
    set_rank(o, cur->dtype, 4);
    o->dims[0] = cur->dims[0];
    o->dims[1] = three ? num(hkv) : cur->dims[1];
    o->dims[2] = past->known && past->rank == 4 ? sym_add(s, past->dims[2], seq) : seq;
    if (past->known && past->rank == 4 && !past->dims[2].sym && !seq.sym)
      o->dims[2] = num(past->dims[2].v + seq.v);
    o->dims[3] = head;
  }
}

static const char *const same_shape_ops[] = {"Relu",
                                             "Sigmoid",
                                             "Tanh",
                                             "Erf",
                                             "Exp",
                                             "Log",
                                             "Sqrt",
                                             "Neg",
                                             "Abs",
                                             "Reciprocal",
                                             "Softmax",
                                             "LogSoftmax",
                                             "Gelu",
                                             "LeakyRelu",
                                             "Elu",
                                             "Selu",
                                             "HardSigmoid",
                                             "HardSwish",
                                             "Softplus",
                                             "Clip",
                                             "Identity",
                                             "Dropout",
                                             "Floor",
                                             "Ceil",
                                             "Round",
                                             "Sign",
                                             "Sin",
                                             "Cos",
                                             "CumSum",
                                             "Celu",
                                             "Mish",
                                             "Trilu",
                                             "PRelu",
                                             "Not",
                                             "LpNormalization",
                                             "LayerNormalization",
                                             "InstanceNormalization",
                                             "BatchNormalization",
                                             "GroupNormalization",
                                             "RMSNormalization",
                                             "RotaryEmbedding",
                                             "Swish",
                                             "LRN",
                                             "Softsign",
                                             "Tan",
                                             "Asin",
                                             "Acos",
                                             "Atan",
                                             "Sinh",
                                             "Cosh",
                                             "Asinh",
                                             "Acosh",
                                             "Atanh",
                                             "ThresholdedRelu",
                                             "Shrink",
                                             "Hardmax",
                                             "MeanVarianceNormalization",
                                             NULL};
static const char *const compare_ops[] = {
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor", NULL};
static const char *const arith_ops[] = {"Add", "Sub", "Mul", "Div",  "Pow",      "Max",
                                        "Min", "Mod", "Sum", "Mean", "BitShift", NULL};
static const char *const reduce_ops[] = {
    "ReduceMean", "ReduceSum",       "ReduceMax",    "ReduceMin",       "ReduceProd", "ReduceL1",
    "ReduceL2",   "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ArgMax",     "ArgMin",
    NULL};

static bool in_list(const tc_node *n, const char *const *list) {
  for (; *list; list++)
    if (tc_is_op(n, *list))
      return true;
  return false;
}

/* Gemm and its fused forms (ai.tacoc.Gemm<Act>, com.microsoft.FusedGemm). */
static void rule_gemm(const tc_shapes *s, const tc_node *n, tc_shape *o) {
  const tc_shape *x = in(s, n, 0), *b = in(s, n, 1);
  if (x->known && b->known && x->rank == 2 && b->rank == 2) {
    set_rank(o, x->dtype, 2);
    o->dims[0] = x->dims[tc_attr_int(n, "transA", 0) ? 1 : 0];
    o->dims[1] = b->dims[tc_attr_int(n, "transB", 0) ? 0 : 1];
  }
}

/* tacoc's own fused ops (ai.tacoc) and ONNX Runtime's FusedConv. */
static void infer_fused(tc_shapes *s, const tc_node *n, tc_shape *dst) {
  bool tacoc = tc_domain_equal(n->domain, "ai.tacoc");
  bool ms = tc_domain_equal(n->domain, "com.microsoft");
  if ((tacoc || ms) &&
      (strcmp(n->op_type, "BiasGelu") == 0 || strcmp(n->op_type, "QuickGelu") == 0)) {
    *dst = *in(s, n, 0);
    dst->has_vals = false;
  } else if ((tacoc && strncmp(n->op_type, "EmbedLayerNormalization", 23) == 0) ||
             (ms && strcmp(n->op_type, "EmbedLayerNormalization") == 0)) {
    /* tacoc's: W is input 2 with segments (7 inputs), else 1; ONNX Runtime's: 2 */
    const tc_shape *ids = in(s, n, 0), *w = in(s, n, ms || n->n_inputs == 7 ? 2 : 1);
    if (ids->known && ids->rank == 2 && w->known && w->rank == 2) {
      set_rank(dst, TC_DTYPE_F32, 3);
      dst->dims[0] = ids->dims[0];
      dst->dims[1] = ids->dims[1];
      dst->dims[2] = w->dims[1];
    }
  } else if ((tacoc || ms) && strcmp(n->op_type, "SkipLayerNormalization") == 0) {
    /* the input-plus-skip sum: output 1 of tacoc's, 3 of ONNX Runtime's */
    *dst = *in(s, n, 0);
    dst->has_vals = false;
    tc_shape *sum = out(s, n, ms ? 3 : 1);
    if (sum)
      *sum = *dst;
  } else if ((tacoc && strncmp(n->op_type, "Gemm", 4) == 0) ||
             (ms && strcmp(n->op_type, "FusedGemm") == 0)) {
    rule_gemm(s, n, dst);
  } else if ((tacoc && strncmp(n->op_type, "Conv", 4) == 0) ||
             ((tacoc || tc_domain_equal(n->domain, "com.microsoft")) &&
              strcmp(n->op_type, "FusedConv") == 0)) {
    tc_shape r = {0};
    if (rule_conv(s, n, &r))
      *dst = r;
  }
}

/* Split: every output is the input with the split axis cut to its part
 * (sizes from the split input/attribute, or an even split of a known dim). */
static void infer_split(tc_shapes *s, const tc_node *n) {
  const tc_shape *x = in(s, n, 0);
  if (!x->known || n->n_outputs == 0 || n->n_outputs > TC_SHAPE_MAX_VALS)
    return;
  int64_t axis = norm_axis(tc_attr_int(n, "axis", 0), x->rank);
  if (axis < 0 || axis >= (int64_t)x->rank)
    return;
  int64_t parts[TC_SHAPE_MAX_VALS];
  size_t np = 0;
  const int64_t *sa;
  ptrdiff_t ns = tc_attr_ints(n, "split", &sa);
  if (ns >= 0) {
    if ((size_t)ns != n->n_outputs)
      return;
    for (ptrdiff_t i = 0; i < ns; i++)
      parts[np++] = sa[i];
  } else if (n->n_inputs > 1 && n->inputs[1]) {
    if (!in_ints(s, n, 1, parts, &np) || np != n->n_outputs)
      return;
  } else {
    tc_sdim d = x->dims[axis];
    if (d.sym || d.v % (int64_t)n->n_outputs != 0)
      return;
    for (np = 0; np < n->n_outputs; np++)
      parts[np] = d.v / (int64_t)n->n_outputs;
  }
  for (size_t i = 0; i < n->n_outputs; i++) {
    tc_shape *o = out(s, n, i);
    if (!o)
      continue;
    *o = *x;
    o->has_vals = false;
    o->dims[axis] = num(parts[i]);
  }
}

static void infer_node(tc_shapes *s, const tc_node *n) {
  tc_shape *dst = out(s, n, 0);
  if (n->n_inputs == 0)
    return;
  if (tc_is_op(n, "Split")) {
    infer_split(s, n);
    return;
  }
  if (tc_is_op(n, "Attention")) {
    infer_attention(s, n);
    return;
  }
  if (!dst)
    return;
  if (!tc_domain_is_onnx(n->domain)) {
    infer_fused(s, n, dst);
    return;
  }
  /* Rules build the shape here and report success: a rule that gives up
   * half-way leaves the output unknown, never half-set. */
  tc_shape r = {0}, *o = &r;
  bool ok = true;
  const tc_shape *x = in(s, n, 0);
  if (tc_is_op(n, "QuantizeLinear") || tc_is_op(n, "DequantizeLinear")) {
    /* x's shape; QuantizeLinear to the zero point's type (else output_dtype,
     * else uint8), DequantizeLinear to the scale's (else output_dtype) */
    int32_t dt = (int32_t)tc_attr_int(n, "output_dtype", 0);
    if (tc_is_op(n, "QuantizeLinear"))
      dt = n->n_inputs > 2 && n->inputs[2] ? in(s, n, 2)->dtype : dt ? dt : TC_DTYPE_U8;
    else if (!dt && n->n_inputs > 1)
      dt = in(s, n, 1)->dtype;
    if (x->known && dt)
      copy_shape(o, x, dt);
  } else if (in_list(n, same_shape_ops)) {
    if (x->known)
      copy_shape(o, x, x->dtype);
    if (tc_is_op(n, "Identity") || tc_is_op(n, "Dropout"))
      *o = *x;
  } else if (tc_is_op(n, "Cast") || tc_is_op(n, "CastLike")) {
    int32_t to = tc_is_op(n, "Cast") ? (int32_t)tc_attr_int(n, "to", 0) : in(s, n, 1)->dtype;
    *o = *x;
    o->dtype = to;
    o->has_vals = x->has_vals && tc_dtype_is_int(to) && tc_dtype_is_int(x->dtype);
  } else if (in_list(n, arith_ops) || in_list(n, compare_ops)) {
    tc_shape acc = *x;
    for (size_t i = 1; i < n->n_inputs; i++) {
      tc_shape next;
      if (!broadcast(s, &acc, in(s, n, i), &next)) {
        ok = false;
        goto done;
      }
      acc = next;
    }
    acc.has_vals = false;
    if (n->n_inputs == 2 && in_list(n, arith_ops))
      arith_vals(s, n, x, in(s, n, 1), &acc);
    acc.dtype = in_list(n, compare_ops) ? TC_DTYPE_BOOL : x->dtype;
    *o = acc;
  } else if (tc_is_op(n, "Where") && n->n_inputs == 3) {
    tc_shape a, b;
    if (broadcast(s, x, in(s, n, 1), &a) && broadcast(s, &a, in(s, n, 2), &b)) {
      *o = b;
      o->dtype = in(s, n, 1)->dtype;
    }
  } else if (tc_is_op(n, "MatMul")) {
    ok = rule_matmul(s, n, o);
  } else if (tc_is_op(n, "Gemm")) {
    rule_gemm(s, n, o);
  } else if (tc_is_op(n, "Transpose")) {
    const int64_t *perm;
    ptrdiff_t np = tc_attr_ints(n, "perm", &perm);
    if (!x->known || (np >= 0 && (size_t)np != x->rank)) {
      ok = false;
      goto done;
    }
    set_rank(o, x->dtype, x->rank);
    for (size_t i = 0; i < x->rank; i++) {
      int64_t p = np >= 0 ? perm[i] : (int64_t)(x->rank - 1 - i);
      if (p < 0 || p >= (int64_t)x->rank) {
        ok = false;
        goto done;
      }
      o->dims[i] = x->dims[p];
    }
  } else if (tc_is_op(n, "Reshape")) {
    ok = rule_reshape(s, n, o);
  } else if (tc_is_op(n, "Shape")) {
    ok = rule_shape(s, n, o);
  } else if (tc_is_op(n, "Size")) {
    set_rank(o, TC_DTYPE_I64, 0);
  } else if (tc_is_op(n, "Gather")) {
    ok = rule_gather(s, n, o);
  } else if (tc_is_op(n, "Unsqueeze") || tc_is_op(n, "Squeeze")) {
    ok = rule_unsqueeze(s, n, o, tc_is_op(n, "Squeeze"));
  } else if (tc_is_op(n, "Concat")) {
    ok = rule_concat(s, n, o);
  } else if (tc_is_op(n, "Slice")) {
    ok = rule_slice(s, n, o);
  } else if (tc_is_op(n, "Range")) {
    ok = rule_range(s, n, o);
  } else if (tc_is_op(n, "ConstantOfShape")) {
    const tc_attr *v = tc_node_attr(n, "value");
    ok = rule_from_vals(s, n, 0, v && v->t ? v->t->dtype : TC_DTYPE_F32, o);
  } else if (tc_is_op(n, "Expand")) {
    ok = rule_from_vals(s, n, 1, x->dtype, o);
  } else if (tc_is_op(n, "Conv") || tc_is_op(n, "MaxPool") || tc_is_op(n, "AveragePool")) {
    ok = rule_conv(s, n, o);
  } else if (in_list(n, reduce_ops)) {
    ok = rule_reduce(s, n, o);
  } else if (tc_is_op(n, "Flatten") && x->known) {
    int64_t axis = norm_axis(tc_attr_int(n, "axis", 1), x->rank);
    set_rank(o, x->dtype, 2);
    tc_sdim p[2] = {num(1), num(1)};
    for (size_t i = 0; i < x->rank; i++) {
      tc_sdim *d = &p[(int64_t)i >= axis];
      *d = d->sym || x->dims[i].sym ? (tc_sdim_is(*d, 1)           ? x->dims[i]
                                       : tc_sdim_is(x->dims[i], 1) ? *d
                                                                   : fresh(s))
                                    : num(d->v * x->dims[i].v);
    }
    o->dims[0] = p[0];
    o->dims[1] = p[1];
  } else if ((tc_is_op(n, "GlobalAveragePool") || tc_is_op(n, "GlobalMaxPool")) && x->known) {
    copy_shape(o, x, x->dtype);
    for (size_t i = 2; i < x->rank; i++)
      o->dims[i] = num(1);
  } else {
    ok = false;
  }
done:
  if (ok)
    *dst = r;
}

static void infer_graph(tc_shapes *s, tc_graph *g) {
  for (size_t i = 0; i < g->n_inputs; i++) {
    tc_value *v = g->inputs[i].value;
    if (v->id >= s->n)
      continue;
    seed_type(s, &s->by_id[v->id], &v->type);
    if (s->bind_dims && s->bind_dims[i] && s->bind_ranks[i] <= TC_SHAPE_MAX_RANK &&
        v->type.kind == TC_TYPE_TENSOR) {
      set_rank(&s->by_id[v->id], v->type.elem, s->bind_ranks[i]);
      for (size_t d = 0; d < s->bind_ranks[i]; d++)
        s->by_id[v->id].dims[d] = num(s->bind_dims[i][d]);
    }
  }
  for (size_t i = 0; i < g->n_inits; i++) {
    tc_value *v = g->inits[i];
    if (v->id < s->n && !tc_value_is_input(v))
      seed_const(&s->by_id[v->id], v->init);
  }
  for (tc_node *n = g->first; n; n = n->next) {
    infer_node(s, n);
    /* What inference cannot tell, the model's declared types may. */
    for (size_t i = 0; i < n->n_outputs; i++) {
      tc_value *v = n->outputs[i];
      if (v && v->id < s->n && !s->by_id[v->id].known)
        seed_type(s, &s->by_id[v->id], &v->type);
    }
  }
}

static tc_shapes *infer(const tc_graph *g, bool own, const int64_t *const *dims,
                        const size_t *ranks) {
  tc_shapes *s = calloc(1, sizeof *s);
  if (!s)
    return NULL;
  s->bind_dims = dims;
  s->bind_ranks = ranks;
  s->n = g->model->next_value_id;
  s->by_id = calloc(s->n ? s->n : 1, sizeof *s->by_id);
  s->own = own ? tc_arena_new() : NULL;
  s->arena = own ? s->own : g->model->arena;
  s->next_sym = 0;
  if (!s->by_id || !s->arena) {
    tc_shapes_free(s);
    return NULL;
  }
  infer_graph(s, (tc_graph *)g); /* reads the graph; symbols go to s->arena */
  return s;
}

tc_shapes *tc_shapes_infer(tc_graph *g) { return infer(g, false, NULL, NULL); }
tc_shapes *tc_shapes_infer_private(const tc_graph *g) { return infer(g, true, NULL, NULL); }
tc_shapes *tc_shapes_infer_bound(const tc_graph *g, const int64_t *const *dims,
                                 const size_t *ranks) {
  return infer(g, true, dims, ranks);
}

void tc_shapes_free(tc_shapes *s) {
  if (s) {
    free(s->by_id);
    tc_arena_free(s->own);
  }
  free(s);
}
