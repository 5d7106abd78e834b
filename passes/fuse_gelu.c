/* fuse-gelu: the GELU forms exporters write, to Gelu (opset 20).
 *
 * exact:  x ─▶ Div(√2) | Mul(1/√2) ─▶ Erf ─▶ Add(1) ─▶ a
 * tanh:   x ─▶ Pow(3) | Mul(x, Mul(x, x)) ─▶ Mul(0.044715) ─▶ Add(x) ─▶ Mul(√(2/π)) ─▶ Tanh ─▶
 * Add(1) ─▶ a tail:   y = Mul(Mul(x, a), 0.5) | Mul(a, Mul(x, 0.5)) | Mul(x, Mul(a, 0.5))   (either
 * operand order) ⇒   x ─▶ Gelu(approximate = none | tanh) ─▶ y
 *
 * Conditions: the constants within 1e-4 relative of their exact values, every
 * intermediate read only inside the pattern, x float. Needs opset 20, raised
 * when that is exact; otherwise the candidate is reported and left. */
#include <math.h>
#include <string.h>

#include "pass.h"
#include "shapes.h"

#define MAX_NODES 12

typedef struct gelu_match {
  tc_node *nodes[MAX_NODES];
  size_t n;
  tc_value *x, *y;
} gelu_match;

static bool near(double v, double want) { return fabs(v - want) <= 1e-4 * fabs(want); }

/* n is Mul/Div/Add(v, constant c) with c a scalar near want; false otherwise. */
static bool op_with_const(const tc_node *n, const char *op, const tc_value *v, double want) {
  tc_value *other = NULL;
  double c;
  if (!tc_is_op(n, op))
    return false;
  const tc_tensor *t = tc_binary_const(n, &other);
  if (!t || other != v || !tc_const_scalar(t, &c) || !near(c, want))
    return false;
  return strcmp(op, "Div") != 0 || n->inputs[0] == v; /* v / c, not c / v */
}

static tc_value *other_of(const tc_node *n, const tc_value *v) {
  if (n->n_inputs != 2)
    return NULL;
  return n->inputs[0] == v ? n->inputs[1] : n->inputs[1] == v ? n->inputs[0] : NULL;
}

static bool push(gelu_match *m, tc_node *n) {
  if (m->n >= MAX_NODES)
    return false;
  m->nodes[m->n++] = n;
  return true;
}

/* Matches the x * a * 0.5 tail from a = 1 + erf/tanh(...). */
static bool match_tail(gelu_match *m, tc_value *a) {
  tc_node *m1 = tc_single_consumer(a);
  if (!tc_is_op(m1, "Mul"))
    return false;
  tc_value *p = other_of(m1, a);
  if (p == m->x) { /* Mul(x, a) then Mul(., 0.5) */
    tc_node *m2 = tc_single_consumer(m1->outputs[0]);
    if (!op_with_const(m2, "Mul", m1->outputs[0], 0.5))
      return false;
    m->y = m2->outputs[0];
    return push(m, m1) && push(m, m2);
  }
  if (op_with_const(m1, "Mul", a, 0.5)) { /* Mul(a, 0.5) then Mul(x, .) */
    tc_node *m2 = tc_single_consumer(m1->outputs[0]);
    if (!tc_is_op(m2, "Mul") || other_of(m2, m1->outputs[0]) != m->x)
      return false;
    m->y = m2->outputs[0];
    return push(m, m1) && push(m, m2);
  }
  tc_node *h = p ? p->producer : NULL; /* Mul(a, Mul(x, 0.5)) */
  if (!op_with_const(h, "Mul", m->x, 0.5) || tc_single_consumer(p) != m1)
    return false;
  m->y = m1->outputs[0];
  return push(m, h) && push(m, m1);
}

/* Add(t, 1) after the Erf / Tanh node t. */
static tc_value *one_plus(gelu_match *m, tc_node *t) {
  tc_node *add = tc_single_consumer(t->outputs[0]);
  if (!op_with_const(add, "Add", t->outputs[0], 1.0) || !push(m, add))
    return NULL;
  return add->outputs[0];
}

static bool match_erf(gelu_match *m, tc_node *erf) {
  tc_node *s = erf->inputs[0] ? erf->inputs[0]->producer : NULL;
  if (!s || tc_single_consumer(erf->inputs[0]) != erf || s->n_inputs != 2)
    return false;
  tc_value *x = tc_value_const(s->inputs[0]) ? s->inputs[1] : s->inputs[0];
  if (!op_with_const(s, "Div", x, M_SQRT2) && !op_with_const(s, "Mul", x, M_SQRT1_2))
    return false;
  m->x = x;
  push(m, s);
  push(m, erf);
  tc_value *a = one_plus(m, erf);
  return a && match_tail(m, a);
}

/* x^3 as Pow(x, 3) or a product of three x. */
static bool is_cube(gelu_match *m, tc_value *v, tc_value **x) {
  tc_node *n = v->producer;
  double e;
  if (tc_is_op(n, "Pow") && tc_const_scalar(tc_value_const(n->inputs[1]), &e) && e == 3) {
    *x = n->inputs[0];
    return push(m, n);
  }
  if (!tc_is_op(n, "Mul") || n->n_inputs != 2)
    return false;
  for (int i = 0; i < 2; i++) {
    tc_node *sq = tc_producer_op(n->inputs[i], "Mul");
    tc_value *c = n->inputs[1 - i];
    if (sq && sq->inputs[0] == c && sq->inputs[1] == c && tc_single_consumer(n->inputs[i]) == n) {
      *x = c;
      return push(m, sq) && push(m, n);
    }
  }
  return false;
}

static bool match_tanh(gelu_match *m, tc_node *th) {
  tc_node *k = th->inputs[0] ? th->inputs[0]->producer : NULL; /* Mul(v, sqrt(2/pi)) */
  if (!k || tc_single_consumer(th->inputs[0]) != th || !tc_is_op(k, "Mul"))
    return false;
  tc_value *v = tc_value_const(k->inputs[0]) ? k->inputs[1] : k->inputs[0];
  if (!op_with_const(k, "Mul", v, sqrt(2.0 / M_PI)) || tc_single_consumer(v) != k)
    return false;
  tc_node *add = tc_producer_op(v, "Add");
  if (!add || add->n_inputs != 2)
    return false;
  for (int i = 0; i < 2; i++) {
    tc_value *w = add->inputs[i], *x = add->inputs[1 - i], *cx = NULL;
    tc_node *c3 = tc_producer_op(w, "Mul");
    if (!c3 || tc_single_consumer(w) != add)
      continue;
    tc_value *cube = tc_value_const(c3->inputs[0]) ? c3->inputs[1] : c3->inputs[0];
    if (!op_with_const(c3, "Mul", cube, 0.044715) || tc_single_consumer(cube) != c3)
      continue;
    size_t mark = m->n;
    if (!is_cube(m, cube, &cx) || cx != x) {
      m->n = mark;
      continue;
    }
    m->x = x;
    if (!push(m, c3) || !push(m, add) || !push(m, k) || !push(m, th))
      return false;
    tc_value *a = one_plus(m, th);
    return a && match_tail(m, a);
  }
  return false;
}

/* x is read by the pattern and possibly others; every other intermediate
 * must be read only inside it, which the matchers check as they go. */
static tc_status fuse_exact_and_tanh(tc_pass_ctx *c, tc_graph *g) {
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    bool erf = tc_is_op(n, "Erf");
    if (!erf && !tc_is_op(n, "Tanh"))
      continue;
    gelu_match m = {0};
    if (!(erf ? match_erf(&m, n) : match_tanh(&m, n)))
      continue;
    int32_t dt = tc_value_dtype(m.x);
    if (dt &&
        !(dt == TC_DTYPE_F32 || dt == TC_DTYPE_F16 || dt == TC_DTYPE_BF16 || dt == TC_DTYPE_F64)) {
      tc_pass_explain(c, n, "GELU candidate rejected: input is not float");
      continue;
    }
    const char *why;
    if (!tc_pass_require_opset(c, 20, &why)) {
      tc_pass_explain(c, n, "GELU candidate rejected: %s", why);
      continue;
    }
    /* At the Erf/Tanh: after x, before every reader of y. */
    tc_node *gelu = tc_graph_insert_node(g, n, "Gelu", "", n->name, 1, 1, erf ? 0 : 1);
    if (!gelu || (!erf && tc_node_set_attr_string(gelu, 0, "approximate", "tanh")))
      return tc_pass_nomem(c);
    tc_value *x = m.x, *y = m.y;
    for (size_t i = 0; i < m.n; i++)
      tc_node_remove(m.nodes[i]);
    if (tc_node_set_input(gelu, 0, x) || tc_node_set_output(gelu, 0, y))
      return tc_pass_nomem(c);
    next = gelu->next;
    tc_pass_count(c, erf ? "Gelu" : "Gelu(tanh)", 1);
  }
  return TC_STATUS_OK;
}

#define TACOC_DOMAIN "ai.tacoc"

static tc_status bias_gelu_function(tc_pass_ctx *c) {
  static const char *const ins[] = {"X", "B", NULL}, *const outs[] = {"Y", NULL},
                           *const attrs[] = {NULL}, *const add_out[] = {"T", NULL},
                           *const gelu_in[] = {"T", NULL};
  bool exists;
  tc_function *f = tc_pass_begin_function(c, TACOC_DOMAIN, "BiasGelu", ins, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  if (!f || !tc_pass_fn_node(f, "Add", ins, add_out, 0) ||
      !tc_pass_fn_node(f, "Gelu", gelu_in, outs, 0))
    return tc_pass_nomem(c);
  return TC_STATUS_OK;
}

static tc_status quick_gelu_function(tc_pass_ctx *c) {
  static const char *const ins[] = {"X", NULL}, *const outs[] = {"Y", NULL},
                           *const attrs[] = {"alpha", NULL}, *const none[] = {NULL},
                           *const a_out[] = {"A", NULL}, *const mul_in[] = {"X", "A", NULL},
                           *const xa[] = {"XA", NULL}, *const sig_out[] = {"S", NULL},
                           *const out_in[] = {"X", "S", NULL};
  bool exists;
  tc_function *f = tc_pass_begin_function(c, TACOC_DOMAIN, "QuickGelu", ins, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  tc_node *k = f ? tc_pass_fn_node(f, "Constant", none, a_out, 1) : NULL;
  if (!k || !tc_pass_fn_node(f, "Mul", mul_in, xa, 0) ||
      !tc_pass_fn_node(f, "Sigmoid", xa, sig_out, 0) || !tc_pass_fn_node(f, "Mul", out_in, outs, 0))
    return tc_pass_nomem(c);
  tc_pass_ref_attr(k, 0, "alpha", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  k->attrs[0].name = "value_float";
  return TC_STATUS_OK;
}

/* Replaces nodes[0..n) by domain.op(inputs) producing y (the last node's output). */
static tc_status replace_with(tc_pass_ctx *c, tc_graph *g, tc_node **nodes, size_t n,
                              const char *op, tc_value *const *inputs, size_t n_in, float alpha,
                              bool has_alpha, const char *kind) {
  bool ort = c->opt && c->opt->compat_ort;
  const char *domain = ort ? "com.microsoft" : TACOC_DOMAIN;
  if (!ort) {
    tc_status st = strcmp(op, "BiasGelu") == 0 ? bias_gelu_function(c) : quick_gelu_function(c);
    if (st)
      return st;
  }
  if (tc_model_opset(c->model, domain) < 1 && tc_model_set_opset(c->model, domain, 1))
    return tc_pass_nomem(c);
  tc_value *y = nodes[n - 1]->outputs[0];
  tc_node *r =
      tc_graph_insert_node(g, nodes[0], op, domain, nodes[n - 1]->name, n_in, 1, has_alpha ? 1 : 0);
  if (!r || (has_alpha && tc_node_set_attr_float(r, 0, "alpha", alpha)))
    return tc_pass_nomem(c);
  for (size_t i = 0; i < n; i++)
    tc_node_remove(nodes[i]);
  for (size_t i = 0; i < n_in; i++)
    if (tc_node_set_input(r, i, inputs[i]))
      return tc_pass_nomem(c);
  if (tc_node_set_output(r, 0, y))
    return tc_pass_nomem(c);
  tc_pass_count(c, kind, 1);
  return TC_STATUS_OK;
}

static bool f32_value(const tc_shapes *s, const tc_value *v) {
  return tc_shape_of(s, v)->dtype == TC_DTYPE_F32;
}

static tc_status fuse_bias_and_quick(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = tc_shapes_infer(g);
  if (!s)
    return tc_pass_nomem(c);
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n && !st; n = next) {
    next = n->next;
    if (tc_is_op(n, "Gelu") && n->inputs[0] && !tc_node_attr(n, "approximate")) {
      tc_node *add = tc_producer_op(n->inputs[0], "Add");
      tc_value *x = NULL;
      const tc_tensor *b = add ? tc_binary_const(add, &x) : NULL;
      const tc_shape *xs = x ? tc_shape_of(s, x) : NULL;
      if (!b || tc_single_consumer(n->inputs[0]) != n || b->rank != 1 || !xs->known || !xs->rank ||
          !tc_sdim_is(xs->dims[xs->rank - 1], b->dims[0]) || !f32_value(s, x) ||
          b->dtype != TC_DTYPE_F32)
        continue;
      tc_value *bv = add->inputs[0] == x ? add->inputs[1] : add->inputs[0];
      tc_node *nodes[] = {add, n};
      tc_value *ins[] = {x, bv};
      st = replace_with(c, g, nodes, 2, "BiasGelu", ins, 2, 0, false, "BiasGelu");
      next = g->first; /* rescan: the Add may have preceded n */
    } else if (tc_is_op(n, "Mul") && n->n_inputs == 2 && n->inputs[0] && n->inputs[1]) {
      for (int i = 0; i < 2; i++) {
        tc_value *x = n->inputs[i], *sv = n->inputs[1 - i];
        tc_node *sig = tc_producer_op(sv, "Sigmoid");
        if (!sig || tc_single_consumer(sv) != n || !f32_value(s, x))
          continue;
        double alpha = 1.0;
        tc_node *scale = NULL;
        if (sig->inputs[0] != x) {
          tc_value *other = NULL;
          scale = tc_producer_op(sig->inputs[0], "Mul");
          const tc_tensor *a = scale ? tc_binary_const(scale, &other) : NULL;
          if (!a || other != x || !tc_const_scalar(a, &alpha) ||
              tc_single_consumer(sig->inputs[0]) != sig)
            continue;
        }
        tc_node *nodes[3];
        size_t k = 0;
        if (scale)
          nodes[k++] = scale;
        nodes[k++] = sig;
        nodes[k++] = n;
        st = replace_with(c, g, nodes, k, "QuickGelu", &x, 1, (float)alpha, true,
                          scale ? "QuickGelu" : "QuickGelu(SiLU)");
        next = g->first;
        break;
      }
    }
  }
  tc_shapes_free(s);
  return st;
}

tc_status tc_pass_fuse_gelu(tc_pass_ctx *c, tc_graph *g) {
  tc_status st = fuse_exact_and_tanh(c, g);
  return st ? st : fuse_bias_and_quick(c, g);
}
