/* fuse-attention: multi-head self-attention as exporters write it, to
 * Attention (opset 23).
 *
 *   Q3 ─▶ [Mul(cq)] ─▶ Reshape[0,0,H,D] ─▶ Transpose(0,2,1,3) ─┐
 *   K3 ─▶ Reshape[0,0,H,D] ─▶ Transpose(0,2,3,1)                ├▶ MatMul ─▶ [Div|Mul(c)] ─▶
 * [Add(mask)] ─▶ Softmax(-1) ─┐ (or Transpose(0,2,1,3) ─▶ Transpose(0,1,3,2))        ─┘ │ V3 ─▶
 * Reshape[0,0,H,Dv] ─▶ Transpose(0,2,1,3)
 * ────────────────────────────────────────────────────────────────────▶ MatMul ─▶
 * Transpose(0,2,1,3) ─▶ Reshape[0,0,H*Dv] ─▶ Y ⇒   Y = Attention(Q3, K3, V3, [mask'],
 * q_num_heads=H, kv_num_heads=H, scale=cq*c)
 *
 * scaled_dot_product_attention as exporters decompose it multiplies Q and
 * K^T each by sqrt(scale) after the split: those Muls are taken too, and
 * torchlib's Reshape/Transpose/Reshape key transpose has become one
 * Transpose(0,1,3,2) in fold-chains by then.
 *
 * Conditions: Q3/K3/V3 of rank 3 with a known last dim; the Reshapes split
 * exactly that dim into (H, D) keeping batch and sequence (constant targets
 * of 0 or matching dims: fold-shapes makes them so); the merge Reshape
 * undoes it; the scales are constant scalars; the mask is added (not a
 * Where) and has rank <= 4; every intermediate is read only inside the
 * pattern. Needs opset 23, raised when exact.
 *
 * ONNX Runtime's Attention requires the mask's query dimension spelled out,
 * so a mask broadcast over queries ([B,1,1,T], BERT's) is expanded once with
 * Expand(mask, [1,..,S,1]) where S comes from Shape(mask) when the model is
 * self-attention with the mask's key length equal to the query length
 * (identical for every layer, so eliminate-common keeps one), and from
 * Shape(Q3) otherwise. The past/present form of decoders (Concat of past
 * keys, causal Where) is not matched yet; --explain says so. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

typedef struct attn_match {
  tc_node *nodes[24];
  size_t n;
  tc_value *q, *k, *v, *mask, *y;
  tc_value *where_cond;      /* decoder: scores kept where this is true ... */
  double where_fill;         /* ... and set to this (very negative) elsewhere */
  tc_value *past_k, *past_v; /* decoder with a cache: Concat(past, new) along the sequence */
  tc_value *present_k, *present_v;
  int64_t heads, dqk, dv;
  double scale;
} attn_match;

static bool add(attn_match *m, tc_node *n) {
  if (m->n >= sizeof m->nodes / sizeof *m->nodes)
    return false;
  m->nodes[m->n++] = n;
  return true;
}

static bool perm_is(const tc_node *t, const int64_t *want, size_t n) {
  const int64_t *perm;
  ptrdiff_t np = tc_attr_ints(t, "perm", &perm);
  if (np != (ptrdiff_t)n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (perm[i] != want[i])
      return false;
  return true;
}

/* Transpose(perm) producing v and read only by its consumer; NULL otherwise. */
static tc_node *transpose_of(const tc_value *v, const int64_t *perm) {
  tc_node *t = tc_producer_op(v, "Transpose");
  return t && perm_is(t, perm, 4) && tc_single_consumer(v) ? t : NULL;
}

/* Reshape r splits the last dim of its rank-3 input into (H, D), keeping dims
 * 0 and 1: each of those written 0 (copy) or as the same number, or one of
 * them -1 when H and D are explicit (the -1 then resolves to that very dim). */
static bool split_heads(const tc_shapes *s, const tc_node *r, int64_t *h, int64_t *d) {
  const tc_shape *x = tc_shape_of(s, r->inputs[0]);
  int64_t *t = NULL;
  ptrdiff_t nt = tc_const_ints(tc_value_const(r->inputs[1]), &t);
  bool ok = x->known && x->rank == 3 && !x->dims[2].sym && nt == 4 &&
            tc_attr_int(r, "allowzero", 0) == 0 && tc_single_consumer(r->outputs[0]);
  int minus = 0;
  for (int i = 0; ok && i < 2; i++) {
    minus += t[i] == -1;
    ok = t[i] == 0 || t[i] == -1 || tc_sdim_is(x->dims[i], t[i]);
  }
  if (ok) {
    int64_t hd = x->dims[2].v;
    *h = t[2];
    *d = t[3] == -1 && t[2] > 0 && !minus ? hd / t[2] : t[3];
    ok = minus <= 1 && *h > 0 && *d > 0 && *h * *d == hd;
  }
  free(t);
  return ok;
}

/* One of Q/K/V: Transpose(perm) of Reshape(X3) with a head split; returns X3. */
static tc_value *head_input(attn_match *m, const tc_shapes *s, tc_value *v, const int64_t *perm,
                            int64_t *h, int64_t *d) {
  tc_node *t = transpose_of(v, perm);
  tc_node *r = t ? tc_producer_op(t->inputs[0], "Reshape") : NULL;
  if (!r || !split_heads(s, r, h, d) || !add(m, t) || !add(m, r))
    return NULL;
  return r->inputs[0];
}

static bool scalar_scale(const tc_node *n, tc_value **other, double *c) {
  if (!tc_is_op(n, "Mul") && !tc_is_op(n, "Div"))
    return false;
  const tc_tensor *t = tc_binary_const(n, other);
  if (!t || !tc_const_scalar(t, c) || *c == 0 || !isfinite(*c))
    return false;
  if (tc_is_op(n, "Div")) {
    if (n->inputs[0] != *other)
      return false; /* c / x */
    *c = 1.0 / *c;
  }
  return true;
}

/* v = Mul|Div(x, c) by a constant scalar, read only by the scores MatMul:
 * the scale joins m's and x is returned; v itself otherwise. */
static tc_value *split_scale(attn_match *m, tc_value *v) {
  tc_value *other;
  double c;
  tc_node *p = v->producer;
  if (!p || !tc_single_consumer(v) || !scalar_scale(p, &other, &c) || !add(m, p))
    return v;
  m->scale *= c;
  return other;
}

static const int64_t p0213[] = {0, 2, 1, 3}, p0231[] = {0, 2, 3, 1}, p0132[] = {0, 1, 3, 2};

/* present = Concat(past, new) along the sequence axis (2) of (B, H, S, D):
 * the present value may be read elsewhere (it is a decoder's output). */
static const char *cache_concat(attn_match *m, tc_node *cat, tc_value **past, tc_value **present) {
  if (cat->n_inputs != 2 || !cat->inputs[0] || !cat->inputs[1] || tc_attr_int(cat, "axis", 0) != 2)
    return "the cache Concat is not (past, new) along the sequence axis";
  *past = cat->inputs[0];
  *present = cat->outputs[0];
  return add(m, cat) ? NULL : "too many nodes";
}

static const char *match(attn_match *m, const tc_shapes *s, tc_node *sm) {
  memset(m, 0, sizeof *m);
  m->scale = 1.0;
  int64_t axis = tc_attr_int(sm, "axis", -1);
  const tc_shape *ss = tc_shape_of(s, sm->inputs[0]);
  if (!(axis == -1 || (axis == 3 && ss->known && ss->rank == 4)))
    return "Softmax is not over the last axis";
  tc_node *mm2 = tc_single_consumer(sm->outputs[0]);
  if (!tc_is_op(mm2, "MatMul") || mm2->inputs[0] != sm->outputs[0])
    return "Softmax is not followed by MatMul";
  /* scores side */
  tc_value *sc = sm->inputs[0];
  tc_node *p = sc->producer;
  if (tc_is_op(p, "Add") && tc_single_consumer(sc) == sm) {
    tc_node *mm = NULL;
    for (int i = 0; i < 2 && !mm; i++) {
      tc_node *q = p->inputs[i] ? p->inputs[i]->producer : NULL;
      tc_value *o;
      double c;
      if (tc_is_op(q, "MatMul") || tc_is_op(q, "Where") || scalar_scale(q, &o, &c)) {
        mm = q;
        m->mask = p->inputs[1 - i];
        sc = p->inputs[i];
      }
    }
    if (!mm)
      return "no MatMul before the mask Add";
    add(m, p);
    p = sc->producer;
  }
  /* Decoders: Where(causal, scores, very negative); as an additive mask it
   * gives the same probabilities (exp underflows to 0 either way). */
  if (tc_is_op(p, "Where") && p->n_inputs == 3 && p->inputs[1] && p->inputs[2] &&
      tc_single_consumer(sc)) {
    double fill;
    if (!tc_const_scalar(tc_value_const(p->inputs[2]), &fill) || fill > -1e4)
      return "Where does not mask with a very negative constant";
    m->where_cond = p->inputs[0];
    m->where_fill = fill;
    add(m, p);
    sc = p->inputs[1];
    p = sc->producer;
  }
  tc_value *other;
  double c;
  if (scalar_scale(p, &other, &c) && tc_single_consumer(sc)) {
    m->scale *= c;
    add(m, p);
    sc = other;
    p = sc->producer;
  }
  if (!tc_is_op(p, "MatMul") || !tc_single_consumer(sc))
    return "no Q.K^T MatMul";
  add(m, p);
  add(m, sm);
  add(m, mm2);
  int64_t hq, dq, hk, dk, hv, dv;
  /* scaled_dot_product_attention as exporters decompose it scales Q and
   * K^T each by sqrt(scale), after the head split. */
  tc_value *qin = split_scale(m, p->inputs[0]), *kin = split_scale(m, p->inputs[1]);
  /* Q, possibly scaled before the split */
  if (!(m->q = head_input(m, s, qin, p0213, &hq, &dq)))
    return "Q is not a head split of a rank-3 tensor";
  tc_node *qs = m->q->producer;
  if (scalar_scale(qs, &other, &c) && tc_single_consumer(m->q)) {
    m->scale *= c;
    add(m, qs);
    m->q = other;
  }
  /* K^T in one or two transposes, the first possibly after a cache Concat */
  tc_node *kt = tc_producer_op(kin, "Transpose");
  if (kt && perm_is(kt, p0132, 4) && tc_single_consumer(kin)) {
    add(m, kt);
    tc_node *cat = tc_producer_op(kt->inputs[0], "Concat");
    if (cat) {
      const char *why = cache_concat(m, cat, &m->past_k, &m->present_k);
      if (why)
        return why;
      m->k = head_input(m, s, cat->inputs[1], p0213, &hk, &dk);
    } else {
      m->k = head_input(m, s, kt->inputs[0], p0213, &hk, &dk);
    }
  } else {
    m->k = head_input(m, s, kin, p0231, &hk, &dk);
  }
  if (!m->k)
    return "K is not a transposed head split";
  tc_node *vcat = tc_producer_op(mm2->inputs[1], "Concat");
  if (!m->past_k != !vcat)
    return "only one of K and V reads a cache";
  if (vcat) {
    const char *why = cache_concat(m, vcat, &m->past_v, &m->present_v);
    if (why)
      return why;
    m->v = head_input(m, s, vcat->inputs[1], p0213, &hv, &dv);
  } else {
    m->v = head_input(m, s, mm2->inputs[1], p0213, &hv, &dv);
  }
  if (!m->v)
    return "V is not a head split";
  if (hq != hk || hk != hv || dq != dk)
    return "Q, K and V head counts or sizes differ";
  /* merge */
  tc_node *t = tc_single_consumer(mm2->outputs[0]);
  if (!tc_is_op(t, "Transpose") || !perm_is(t, p0213, 4))
    return "the context is not transposed back";
  tc_node *r = tc_single_consumer(t->outputs[0]);
  int64_t *tg = NULL;
  ptrdiff_t nt =
      r && tc_is_op(r, "Reshape") ? tc_const_ints(tc_value_const(r->inputs[1]), &tg) : -1;
  /* [0, 0, HD], [0, 0, -1] or [0, -1, HD]: each gives back (B, S, H*Dv). */
  bool merge =
      nt == 3 && tg[0] == 0 && tc_attr_int(r, "allowzero", 0) == 0 &&
      ((tg[1] == 0 && (tg[2] == -1 || tg[2] == hv * dv)) || (tg[1] == -1 && tg[2] == hv * dv));
  free(tg);
  if (!merge)
    return "the heads are not merged back by Reshape[0,0,H*D]";
  add(m, t);
  add(m, r);
  m->y = r->outputs[0];
  m->heads = hq;
  m->dqk = dq;
  m->dv = dv;
  return NULL;
}

/* Where to read the query length S from: a graph input with S on some axis
 * (the same for every layer, so eliminate-common keeps one Shape), the mask
 * itself when its key length is S (self-attention), or Q. */
static void query_len_source(const tc_graph *g, const tc_shapes *s, const attn_match *m,
                             tc_value *mask, tc_sdim sq, tc_value **src, int64_t *at) {
  for (size_t i = 0; i < g->n_inputs; i++) {
    const tc_shape *is = tc_shape_of(s, g->inputs[i].value);
    for (size_t d = 0; is->known && d < is->rank; d++) {
      if (tc_sdim_eq(is->dims[d], sq)) {
        *src = g->inputs[i].value;
        *at = (int64_t)d;
        return;
      }
    }
  }
  const tc_shape *ms = tc_shape_of(s, mask);
  if (ms->known && ms->rank && tc_sdim_eq(ms->dims[ms->rank - 1], sq)) {
    *src = mask;
    *at = (int64_t)ms->rank - 1;
    return;
  }
  *src = m->q;
  *at = 1;
}

/* A new node op(inputs) -> fresh value named base, before `before`. */
static tc_value *emit(tc_graph *g, tc_node *before, const char *op, const char *base,
                      tc_value *const *inputs, size_t n_in, tc_node **node) {
  tc_value *out = tc_graph_new_temp(g, base);
  tc_node *n = out ? tc_graph_insert_node(g, before, op, "", NULL, n_in, 1, 2) : NULL;
  if (!n || tc_node_set_output(n, 0, out))
    return NULL;
  n->n_attrs = 0;
  for (size_t i = 0; i < n_in; i++)
    if (tc_node_set_input(n, i, inputs[i]))
      return NULL;
  if (node)
    *node = n;
  return out;
}

/* The additive mask of the match: Where(cond, 0, fill) for a decoder's
 * causal Where, plus the added mask; NULL (no mask) when there is neither. */
static tc_value *additive_mask(tc_graph *g, tc_node *at, attn_match *m, bool *oom) {
  *oom = false;
  if (!m->where_cond)
    return m->mask;
  float zero = 0.0f, fill = (float)m->where_fill;
  tc_value *z = tc_pass_new_const_f32(g, "mask_keep", &zero, 0, NULL);
  tc_value *f = tc_pass_new_const_f32(g, "mask_fill", &fill, 0, NULL);
  tc_value *wi[3] = {m->where_cond, z, f};
  tc_value *w = z && f ? emit(g, at, "Where", "causal_mask", wi, 3, NULL) : NULL;
  if (w && m->mask) {
    tc_value *ai[2] = {w, m->mask};
    w = emit(g, at, "Add", "attention_bias", ai, 2, NULL);
  }
  *oom = !w;
  return w;
}

/* mask with the query dimension spelled out (see the header comment). */
static tc_value *query_mask(tc_pass_ctx *c, tc_graph *g, const tc_shapes *s, attn_match *m,
                            tc_value *mask, tc_node *at_node, const char **why) {
  const tc_shape *ms = tc_shape_of(s, mask), *qs = tc_shape_of(s, m->q);
  *why = NULL;
  if (!ms->known || ms->rank < 1 || ms->rank > 4 || !qs->known) {
    *why = "the mask's shape is not known";
    return NULL;
  }
  tc_sdim sq = qs->dims[1];
  if (ms->rank >= 2 && tc_sdim_eq(ms->dims[ms->rank - 2], sq))
    return mask;
  if (ms->rank >= 2 && !ms->dims[ms->rank - 2].sym && ms->dims[ms->rank - 2].v != 1) {
    *why = "the mask's query dimension is neither 1 nor the query length";
    return NULL;
  }
  if (tc_sdim_is(ms->dims[ms->rank - 1], 1) && !tc_sdim_is(sq, 1)) {
    *why = "the mask does not span the keys";
    return NULL;
  }
  /* Expand(mask, [1,..,S,1]) gives S rows whether the mask had 1 or S. */
  size_t r = ms->rank < 2 ? 2 : ms->rank;
  int64_t ones[4] = {1, 1, 1, 1};
  tc_value *shape;
  if (!sq.sym) {
    int64_t t[4] = {1, 1, 1, 1}, dim = (int64_t)r;
    t[r - 2] = sq.v;
    shape = tc_pass_new_const_i64(g, "mask_expand_shape", t, 1, &dim);
  } else {
    tc_value *src;
    int64_t at;
    query_len_source(g, s, m, mask, sq, &src, &at);
    tc_node *sh = NULL;
    tc_value *sv = emit(g, at_node, "Shape", "query_len", &src, 1, &sh);
    int64_t lead_dim = (int64_t)r - 2, one = 1;
    tc_value *lead = tc_pass_new_const_i64(g, "mask_lead", ones, 1, &lead_dim);
    tc_value *tail = tc_pass_new_const_i64(g, "mask_tail", ones, 1, &one);
    tc_value *ci[3] = {lead, sv, tail};
    tc_node *cat = NULL;
    shape =
        sv && lead && tail ? emit(g, at_node, "Concat", "mask_expand_shape", ci, 3, &cat) : NULL;
    if (shape) {
      sh->n_attrs = cat->n_attrs = 0;
      if (tc_node_set_attr_int(sh, sh->n_attrs++, "start", at) ||
          tc_node_set_attr_int(sh, sh->n_attrs++, "end", at + 1) ||
          tc_node_set_attr_int(cat, cat->n_attrs++, "axis", 0))
        shape = NULL;
    }
  }
  tc_value *ei[2] = {mask, shape};
  tc_value *out = shape ? emit(g, at_node, "Expand", "attention_mask", ei, 2, NULL) : NULL;
  if (!out) {
    *why = "out of memory";
    tc_pass_nomem(c);
    return NULL;
  }
  tc_pass_count(c, "mask expanded", 1);
  return out;
}

tc_status tc_pass_fuse_attention(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (!tc_is_op(n, "Softmax") || !n->inputs[0])
      continue;
    if (!s && !(s = tc_shapes_infer(g)))
      return tc_pass_nomem(c);
    attn_match m;
    const char *why = match(&m, s, n);
    if (why) {
      tc_pass_explain(c, n, "attention candidate rejected: %s", why);
      continue;
    }
    if (!tc_pass_require_opset(c, 23, &why)) {
      tc_pass_explain(c, n, "attention candidate rejected: %s", why);
      continue;
    }
    const tc_shape *qsh = tc_shape_of(s, m.q);
    if (m.where_cond && qsh->dtype != TC_DTYPE_F32) {
      tc_pass_explain(c, n, "attention candidate rejected: a Where mask on non-float32 scores");
      continue;
    }
    tc_node *last = m.nodes[m.n - 1];
    bool oom;
    tc_value *mask = additive_mask(g, last, &m, &oom);
    if (oom) {
      st = tc_pass_nomem(c);
      break;
    }
    /* The new mask nodes are typed by inference on demand: give them the scores' shape facts. */
    if (mask && mask != m.mask) {
      tc_shapes_free(s);
      if (!(s = tc_shapes_infer(g))) {
        st = tc_pass_nomem(c);
        break;
      }
    }
    if (mask && !(mask = query_mask(c, g, s, &m, mask, last, &why))) {
      if (c->diag->status) {
        st = c->diag->status;
        break;
      }
      tc_pass_explain(c, n, "attention candidate rejected: %s", why);
      continue;
    }
    bool cache = m.past_k != NULL;
    tc_node *a = tc_graph_insert_node(g, last, "Attention", "", n->name,
                                      cache  ? 6
                                      : mask ? 4
                                             : 3,
                                      cache ? 3 : 1, 3);
    if (!a || tc_node_set_attr_int(a, 0, "q_num_heads", m.heads) ||
        tc_node_set_attr_int(a, 1, "kv_num_heads", m.heads) ||
        tc_node_set_attr_float(a, 2, "scale", (float)m.scale)) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_value *q = m.q, *k = m.k, *v = m.v, *y = m.y;
    for (size_t i = 0; i < m.n; i++)
      tc_node_remove(m.nodes[i]);
    if (tc_node_set_input(a, 0, q) || tc_node_set_input(a, 1, k) || tc_node_set_input(a, 2, v) ||
        (mask && tc_node_set_input(a, 3, mask)) || tc_node_set_output(a, 0, y) ||
        (cache &&
         (tc_node_set_input(a, 4, m.past_k) || tc_node_set_input(a, 5, m.past_v) ||
          tc_node_set_output(a, 1, m.present_k) || tc_node_set_output(a, 2, m.present_v)))) {
      st = tc_pass_nomem(c);
      break;
    }
    next = a->next;
    tc_pass_count(c, "Attention", 1);
  }
  tc_shapes_free(s);
  return st;
}
