/* fuse-embed-layernorm: BERT's embeddings (word + position [+ token type]
 * lookups, summed, then LayerNorm) as one op.
 *
 *   ids ─▶ Gather(W) ──────────────────────────────┐
 *   Range(0, Shape(ids)[1], 1) ─▶ Gather(P) ───────┼▶ Add [─▶ Add] ─▶ LayerNormalization(gamma,
 * beta) ─▶ y [segment_ids ─▶ Gather(T)] ────────────────────┘ ⇒   y =
 * ai.tacoc.EmbedLayerNormalization(ids, W, P, gamma, beta; epsilon) or
 * ai.tacoc.EmbedLayerNormalizationWithSegment(ids, segment_ids, W, P, T, gamma, beta)
 * (with --compat ort: ONNX Runtime's com.microsoft.EmbedLayerNormalization,
 * the ids Cast to int32 where they are not, no function)
 *
 * ONNX has no such op: the model carries each as a model-local function (the
 * Gathers, Range, Adds and LayerNormalization), which other runtimes inline;
 * libtacort runs one kernel. Conditions: W, P, T float32 2-D constants of one
 * width H; ids (and segment ids) rank-2 integer tensors of the same shape
 * [B, S]; the position indices exactly 0..S-1 (a Range from 0 by 1 whose
 * length shape inference proves is ids' dim 1, optionally unsqueezed, or
 * a slice [0:S] of a constant 0, 1, 2, ... buffer, as HF models register
 * position_ids); a token-type lookup whose indices are a slice of a
 * constant zero buffer (HF's token_type_ids buffer, used when the model
 * takes no token types) is row 0 of its table added to every position, so
 * it goes into the position table (P + T[0], a new constant; the sum's
 * order of float32 additions changes);
 * LayerNormalization over the last axis; intermediates read only inside the
 * pattern. Runs after fuse-layernorm (it needs opset 17 anyway). */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

#define TACOC_DOMAIN "ai.tacoc"

typedef struct embed_terms {
  tc_node *nodes[12];
  size_t n;
  tc_value *ids, *seg, *w, *p, *t;
  tc_value *t0; /* token types all 0 (a sliced zero buffer): row 0 of t0 joins p */
} embed_terms;

static bool table(const tc_value *v, int64_t *h) {
  const tc_tensor *t = tc_value_const(v);
  if (!t || t->dtype != TC_DTYPE_F32 || t->rank != 2)
    return false;
  if (*h && t->dims[1] != *h)
    return false;
  *h = t->dims[1];
  return true;
}

/* idx = [Expand(] Slice(C, [0], end, [last axis][, [1]]) [)] of a constant
 * integer buffer C of shape [max] or [1, max] (the position_ids and
 * token_type_ids buffers HF models register): C's elements as a heap array
 * (*n of them), NULL otherwise. */
static int64_t *sliced_buffer(tc_value *idx, ptrdiff_t *n) {
  tc_node *ex = tc_producer_op(idx, "Expand");
  tc_node *sl = tc_producer_op(ex ? ex->inputs[0] : idx, "Slice");
  const tc_tensor *c = sl && sl->n_inputs >= 3 ? tc_value_const(sl->inputs[0]) : NULL;
  if (!c || c->rank < 1 || c->rank > 2 || (c->rank == 2 && c->dims[0] != 1) ||
      (c->dtype != TC_DTYPE_I64 && c->dtype != TC_DTYPE_I32))
    return NULL;
  int64_t axis, start, end, *out = NULL, last = (int64_t)c->rank - 1;
  bool known;
  if (tc_pass_slice_1d(sl, &axis, &start, &end, &known) && start == 0 &&
      (axis == last || axis == -1))
    *n = tc_const_ints(c, &out);
  return out;
}

/* The shape of lookup indices idx broadcasts within ids' [B, S] without
 * growing it: rank 1 or 2, the last dim S, a leading dim 1 or B. */
static bool within_ids(const tc_shapes *s, const tc_value *idx, const tc_value *ids, bool pos) {
  const tc_shape *xs = tc_shape_of(s, idx), *is = tc_shape_of(s, ids);
  if (!xs->known || !is->known || is->rank != 2 || xs->rank < 1 || xs->rank > 2)
    return false;
  /* positions must run over all S; a constant zero index may broadcast from 1 */
  tc_sdim last = xs->dims[xs->rank - 1];
  if (!tc_sdim_eq(last, is->dims[1]) && (pos || !tc_sdim_is(last, 1)))
    return false;
  return xs->rank == 1 || tc_sdim_is(xs->dims[0], 1) || tc_sdim_eq(xs->dims[0], is->dims[0]);
}

/* idx is 0..S-1 with S = dim 1 of ids: Range(0, S, 1), maybe Unsqueeze'd at
 * 0, or a slice of a constant 0, 1, 2, ... buffer. */
static bool positions(embed_terms *e, const tc_shapes *s, tc_value *idx, const tc_value *ids) {
  ptrdiff_t nb = 0;
  int64_t *buf = sliced_buffer(idx, &nb);
  if (buf) {
    bool ok = true;
    for (ptrdiff_t i = 0; ok && i < nb; i++)
      ok = buf[i] == i;
    free(buf);
    return ok && within_ids(s, idx, ids, true);
  }
  tc_node *un = tc_producer_op(idx, "Unsqueeze");
  if (un)
    idx = un->inputs[0];
  tc_node *r = tc_producer_op(idx, "Range");
  double a, d;
  if (!r || !tc_const_scalar(tc_value_const(r->inputs[0]), &a) || a != 0 ||
      !tc_const_scalar(tc_value_const(r->inputs[2]), &d) || d != 1)
    return false;
  const tc_shape *rs = tc_shape_of(s, r->outputs[0]), *is = tc_shape_of(s, ids);
  if (!rs->known || rs->rank != 1 || !is->known || is->rank != 2 ||
      !tc_sdim_eq(rs->dims[0], is->dims[1]))
    return false;
  /* The Range and its shape computation go only if nothing else reads them:
   * eliminate-dead takes care of that, so they are not collected here. */
  (void)e;
  return true;
}

static bool int_ids(const tc_shapes *s, const tc_value *v, const tc_value *like) {
  const tc_shape *sh = tc_shape_of(s, v);
  if (!sh->known || sh->rank != 2 || !(sh->dtype == TC_DTYPE_I64 || sh->dtype == TC_DTYPE_I32))
    return false;
  if (!like)
    return true;
  const tc_shape *o = tc_shape_of(s, like);
  return o->known && o->rank == 2 && tc_sdim_eq(o->dims[0], sh->dims[0]) &&
         tc_sdim_eq(o->dims[1], sh->dims[1]);
}

/* Sorts the summed Gathers into word, position and segment lookups. */
static const char *classify(embed_terms *e, const tc_shapes *s, tc_node *const *gathers, size_t n) {
  int64_t h = 0;
  tc_node *pos = NULL, *zero = NULL;
  tc_node *lookups[3];
  size_t nl = 0;
  for (size_t i = 0; i < n; i++) {
    tc_node *g = gathers[i];
    if (!g || tc_attr_int(g, "axis", 0) != 0 || !table(g->inputs[0], &h))
      return "a term is not a Gather from a float32 table";
    /* Positions are recognized by their indices, checked against the ids below. */
    const tc_node *r = tc_producer_op(g->inputs[1], "Range");
    const tc_node *u = tc_producer_op(g->inputs[1], "Unsqueeze");
    ptrdiff_t nb = 0;
    int64_t *buf = sliced_buffer(g->inputs[1], &nb);
    bool arange = buf != NULL, zeros = buf && nb > 0;
    for (ptrdiff_t k = 0; buf && k < nb; k++) {
      arange &= buf[k] == k;
      zeros &= buf[k] == 0;
    }
    free(buf);
    if (!pos && (r || (u && tc_producer_op(u->inputs[0], "Range")) || arange))
      pos = g;
    else if (!zero && zeros)
      zero = g;
    else if (int_ids(s, g->inputs[1], NULL) && nl < 2)
      lookups[nl++] = g;
    else
      return "a lookup's indices are not 2-D integer ids";
  }
  if (!pos || nl < 1 || nl > 2)
    return "no position lookup and one or two id lookups";
  e->ids = lookups[0]->inputs[1];
  e->w = lookups[0]->inputs[0];
  if (nl == 2) {
    /* the larger table is the vocabulary */
    tc_node *a = lookups[0], *b = lookups[1];
    if (tc_value_const(b->inputs[0])->dims[0] > tc_value_const(a->inputs[0])->dims[0]) {
      a = lookups[1];
      b = lookups[0];
    }
    e->ids = a->inputs[1];
    e->w = a->inputs[0];
    e->seg = b->inputs[1];
    e->t = b->inputs[0];
    if (!int_ids(s, e->seg, e->ids))
      return "the segment ids are not shaped like the ids";
  }
  if (!positions(e, s, pos->inputs[1], e->ids))
    return "the position lookup is not 0..S-1";
  e->p = pos->inputs[0];
  if (zero) {
    if (e->seg)
      return "a constant token-type lookup beside a segment lookup";
    if (!within_ids(s, zero->inputs[1], e->ids, false))
      return "the constant token-type indices do not fit the ids' shape";
    e->t0 = zero->inputs[0];
  }
  for (size_t i = 0; i < n; i++)
    e->nodes[e->n++] = gathers[i];
  return NULL;
}

/* A new position table P + T[0]: token type 0 at every position. The sum
 * is then word + (position + type) where the model added in another order,
 * a difference of float32 rounding. NULL on OOM. */
static tc_value *positions_with_type(tc_graph *g, tc_value *p, tc_value *t) {
  const tc_tensor *pt = tc_value_const(p);
  float *pf = NULL, *tf = NULL;
  ptrdiff_t np = tc_const_floats(pt, &pf), nt = tc_const_floats(tc_value_const(t), &tf);
  tc_value *out = NULL;
  if (np >= 0 && nt >= 0) {
    int64_t h = pt->dims[1];
    for (ptrdiff_t i = 0; i < np; i++)
      pf[i] += tf[i % h];
    out = tc_pass_new_const_f32(g, "position_type_embeddings", pf, 2, pt->dims);
  }
  free(pf);
  free(tf);
  return out;
}

static tc_status ensure_function(tc_pass_ctx *c, bool seg) {
  static const char *const
      ins2[] = {"Ids", "W", "P", "Gamma", "Beta", NULL},
      *const ins3[] = {"Ids", "Seg", "W", "P", "T", "Gamma", "Beta", NULL},
      *const outs[] = {"Y", NULL}, *const attrs[] = {"epsilon", NULL}, *const none[] = {NULL},
      *const zero[] = {"Zero", NULL}, *const one[] = {"One", NULL},
      *const shape_in[] = {"Ids", NULL}, *const shape_out[] = {"Sh", NULL},
      *const len_in[] = {"Sh", "One", NULL}, *const len_out[] = {"S", NULL},
      *const range_in[] = {"Zero", "S", "One", NULL}, *const range_out[] = {"Pos", NULL},
      *const we_in[] = {"W", "Ids", NULL}, *const we[] = {"We", NULL},
      *const pe_in[] = {"P", "Pos", NULL}, *const pe[] = {"Pe", NULL},
      *const sum_in[] = {"We", "Pe", NULL}, *const sum[] = {"E", NULL},
      *const te_in[] = {"T", "Seg", NULL}, *const te[] = {"Te", NULL},
      *const sum2_in[] = {"E", "Te", NULL}, *const sum2[] = {"E2", NULL},
      *const ln2[] = {"E", "Gamma", "Beta", NULL}, *const ln3[] = {"E2", "Gamma", "Beta", NULL};
  const char *name = seg ? "EmbedLayerNormalizationWithSegment" : "EmbedLayerNormalization";
  bool exists;
  tc_function *f =
      tc_pass_begin_function(c, TACOC_DOMAIN, name, seg ? ins3 : ins2, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  tc_node *k0 = f ? tc_pass_fn_node(f, "Constant", none, zero, 1) : NULL;
  tc_node *k1 = k0 ? tc_pass_fn_node(f, "Constant", none, one, 1) : NULL;
  tc_node *sh = k1 ? tc_pass_fn_node(f, "Shape", shape_in, shape_out, 0) : NULL;
  tc_node *gl = sh ? tc_pass_fn_node(f, "Gather", len_in, len_out, 1) : NULL;
  if (!gl || tc_node_set_attr_int(k0, 0, "value_int", 0) ||
      tc_node_set_attr_int(k1, 0, "value_int", 1) || tc_node_set_attr_int(gl, 0, "axis", 0))
    return tc_pass_nomem(c);
  if (!tc_pass_fn_node(f, "Range", range_in, range_out, 0) ||
      !tc_pass_fn_node(f, "Gather", we_in, we, 0) || !tc_pass_fn_node(f, "Gather", pe_in, pe, 0) ||
      !tc_pass_fn_node(f, "Add", sum_in, sum, 0))
    return tc_pass_nomem(c);
  if (seg &&
      (!tc_pass_fn_node(f, "Gather", te_in, te, 0) || !tc_pass_fn_node(f, "Add", sum2_in, sum2, 0)))
    return tc_pass_nomem(c);
  tc_node *ln = tc_pass_fn_node(f, "LayerNormalization", seg ? ln3 : ln2, outs, 2);
  if (!ln || tc_node_set_attr_int(ln, 0, "axis", -1))
    return tc_pass_nomem(c);
  tc_pass_ref_attr(ln, 1, "epsilon", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  return TC_STATUS_OK;
}

/* v as int32 (ONNX Runtime's op takes int32 ids): v itself, or a Cast
 * inserted before node at. NULL on OOM. */
static tc_value *as_int32(tc_graph *g, const tc_shapes *s, tc_node *at, tc_value *v) {
  if (tc_shape_of(s, v)->dtype == TC_DTYPE_I32)
    return v;
  tc_value *o = tc_graph_new_temp(g, v->name ? v->name : "ids");
  tc_node *cast = o ? tc_graph_insert_node(g, at, "Cast", "", NULL, 1, 1, 1) : NULL;
  if (!cast || tc_node_set_attr_int(cast, 0, "to", TC_DTYPE_I32) || tc_node_set_input(cast, 0, v) ||
      tc_node_set_output(cast, 0, o))
    return NULL;
  return o;
}

/* --compat ort: com.microsoft.EmbedLayerNormalization(ids, seg?, W, P, T?,
 * gamma, beta) with int32 ids, inserted before LayerNorm node ln, its
 * output 0 still to be set; NULL on OOM. */
static tc_node *to_ort(tc_pass_ctx *c, tc_graph *g, const tc_shapes *s, tc_node *ln,
                       const embed_terms *e) {
  if (tc_model_opset(c->model, "com.microsoft") < 1 &&
      tc_model_set_opset(c->model, "com.microsoft", 1))
    return NULL;
  tc_value *ids = as_int32(g, s, ln, e->ids), *seg = e->seg ? as_int32(g, s, ln, e->seg) : NULL;
  /* ONNX Runtime's type inference needs the mask_index output (zeros here:
   * no mask input), though nothing reads it */
  tc_node *f = ids && (seg || !e->seg) ? tc_graph_insert_node(g, ln, "EmbedLayerNormalization",
                                                              "com.microsoft", ln->name, 7, 2, 1)
                                       : NULL;
  tc_value *mi = f ? tc_graph_new_temp(g, "mask_index") : NULL;
  if (!mi || tc_node_set_attr_float(f, 0, "epsilon", tc_attr_float(ln, "epsilon", 1e-5f)) ||
      tc_node_set_output(f, 1, mi))
    return NULL;
  tc_value *ins[7] = {ids, seg, e->w, e->p, e->seg ? e->t : NULL, ln->inputs[1], ln->inputs[2]};
  for (size_t i = 0; i < 7; i++)
    if (ins[i] && tc_node_set_input(f, i, ins[i]))
      return NULL;
  return f;
}

tc_status tc_pass_fuse_embed_layernorm(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *ln = g->first, *next; ln && !st; ln = next) {
    next = ln->next;
    if (!tc_is_op(ln, "LayerNormalization") || ln->n_inputs != 3 || !ln->inputs[2] ||
        ln->n_outputs != 1 || tc_attr_int(ln, "axis", -1) != -1)
      continue;
    tc_node *add = tc_producer_op(ln->inputs[0], "Add");
    if (!add || tc_single_consumer(ln->inputs[0]) != ln)
      continue;
    tc_node *terms[3] = {0}, *inner = NULL;
    size_t nt = 0;
    for (int i = 0; i < 2; i++) {
      tc_node *p = add->inputs[i] ? add->inputs[i]->producer : NULL;
      if (tc_is_op(p, "Add") && !inner && tc_single_consumer(add->inputs[i]) == add) {
        inner = p;
        for (int k = 0; k < 2; k++)
          terms[nt++] = tc_producer_op(inner->inputs[k], "Gather");
      } else {
        terms[nt++] = tc_producer_op(add->inputs[i], "Gather");
      }
    }
    if (!s && !(s = tc_shapes_infer(g))) {
      st = tc_pass_nomem(c);
      break;
    }
    embed_terms e = {0};
    const char *why = NULL;
    for (size_t i = 0; i < nt && !why; i++)
      if (!terms[i] || tc_single_consumer(terms[i]->outputs[0]) == NULL)
        why = "a term is not a Gather read only by the sum";
    if (!why)
      why = classify(&e, s, terms, nt);
    if (!why && (!tc_value_const(ln->inputs[1]) || !tc_value_const(ln->inputs[2])))
      why = "scale and bias are not constants";
    if (why) {
      tc_pass_explain(c, ln, "embedding LayerNorm candidate rejected: %s", why);
      continue;
    }
    const char *no;
    if (!tc_pass_require_opset(c, 17, &no)) {
      tc_pass_explain(c, ln, "embedding LayerNorm candidate rejected: %s", no);
      continue;
    }
    bool seg = e.seg != NULL;
    if (e.t0 && !(e.p = positions_with_type(g, e.p, e.t0))) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_node *f = NULL;
    tc_value *y = ln->outputs[0];
    if (c->opt && c->opt->compat_ort) {
      if (!(f = to_ort(c, g, s, ln, &e))) {
        st = tc_pass_nomem(c);
        break;
      }
    } else {
      if ((st = ensure_function(c, seg)))
        break;
      if (tc_model_opset(c->model, TACOC_DOMAIN) < 1 &&
          tc_model_set_opset(c->model, TACOC_DOMAIN, 1)) {
        st = tc_pass_nomem(c);
        break;
      }
      f = tc_graph_insert_node(
          g, ln, seg ? "EmbedLayerNormalizationWithSegment" : "EmbedLayerNormalization",
          TACOC_DOMAIN, ln->name, seg ? 7 : 5, 1, 1);
      if (!f || tc_node_set_attr_float(f, 0, "epsilon", tc_attr_float(ln, "epsilon", 1e-5f))) {
        st = tc_pass_nomem(c);
        break;
      }
      tc_value *ins[7];
      size_t k = 0;
      ins[k++] = e.ids;
      if (seg)
        ins[k++] = e.seg;
      ins[k++] = e.w;
      ins[k++] = e.p;
      if (seg)
        ins[k++] = e.t;
      ins[k++] = ln->inputs[1];
      ins[k++] = ln->inputs[2];
      for (size_t i = 0; i < k; i++)
        if (tc_node_set_input(f, i, ins[i]))
          st = tc_pass_nomem(c);
    }
    tc_node_remove(ln);
    tc_node_remove(add);
    if (inner)
      tc_node_remove(inner);
    for (size_t i = 0; i < e.n; i++)
      tc_node_remove(e.nodes[i]);
    if (!st && tc_node_set_output(f, 0, y))
      st = tc_pass_nomem(c);
    next = f->next;
    tc_pass_count(c, "EmbedLayerNormalization", 1);
  }
  tc_shapes_free(s);
  return st;
}
