/* quantize-dynamic: float32 MatMuls with a constant weight to ONNX Runtime's
 * dynamic int8 form (the activation quantized at run time, per tensor; the
 * weight ahead of time, per column, symmetric).
 *
 *   x ─▶ MatMul(W [K, N]) ─▶ y                                   (float32)
 *   ⇒   x ─▶ DynamicQuantizeLinear ─▶ xq (uint8), xs, xz
 *        MatMulIntegerToFloat(xq, Wq:int8 [K, N], xs, ws [N], xz) ─▶ y
 *   where ai.tacoc.MatMulIntegerToFloat carries its definition as a
 *   model-local function: MatMulInteger(xq, Wq, xz) ─▶ int32 ─▶ Cast(float)
 *   ─▶ Mul(·, Mul(xs, ws)); with --compat ort it is ONNX Runtime's
 *   com.microsoft.MatMulIntegerToFloat (same inputs, same meaning).
 *   with ws[n] = max_k |W[k, n]| / 127 (1 for an all-zero column) and
 *   Wq[k, n] = round(W[k, n] / ws[n]) in [-127, 127]; the weight zero point
 *   is 0, so it is left out.
 *
 * Conditions: the MatMul reads float32 x of known rank >= 2 (rank-1 x would
 * change the output shape) and a constant 2-D float32 W with K >= 16 and
 * N >= 16 (smaller products gain nothing from int8) and finite values; a
 * float32 Gemm that is such a MatMul and a bias (a classifier's Linear)
 * becomes MatMul + Add first (tc_pass_gemm_as_matmul). The
 * node's first output is its key: nodes named in tc_pass_options.half_keep
 * (the validation's fallback) stay float32, and half_note hears of every
 * candidate, converted (why NULL) or kept (why says why).
 *
 * Requires: default-domain opset >= 10 (raised when exact). Runs on the main
 * graph only. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pass.h"
#include "shapes.h"

/* Per-column symmetric int8 of w [K, N] into q, scales into s. */
static void quantize_weight(const float *w, size_t K, size_t N, int8_t *q, float *s) {
  for (size_t n = 0; n < N; n++) {
    float m = 0;
    for (size_t k = 0; k < K; k++)
      m = fmaxf(m, fabsf(w[k * N + n]));
    s[n] = m > 0 ? m / 127.0f : 1.0f;
  }
  for (size_t k = 0; k < K; k++)
    for (size_t n = 0; n < N; n++) {
      float r = nearbyintf(w[k * N + n] / s[n]);
      q[k * N + n] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
    }
}

/* A new node op before `before` with the given inputs and one fresh output
 * (named after base), or NULL on OOM. */
static tc_node *add_node(tc_graph *g, tc_node *before, const char *op, const char *name,
                         tc_value *const *in, size_t n_in, size_t n_out, size_t n_attrs) {
  tc_node *n = tc_graph_insert_node(g, before, op, "", name, n_in, n_out, n_attrs);
  for (size_t i = 0; n && i < n_in; i++)
    if (tc_node_set_input(n, i, in[i]))
      return NULL;
  return n;
}

#define TACOC_DOMAIN "ai.tacoc"

/* ai.tacoc.MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero_point) = Y. */
static tc_status mmi_function(tc_pass_ctx *c) {
  static const char *const ins[] = {"A", "B", "a_scale", "b_scale", "a_zero_point", NULL},
                           *const outs[] = {"Y", NULL}, *const attrs[] = {NULL},
                           *const mi_in[] = {"A", "B", "a_zero_point", NULL},
                           *const mi_out[] = {"I", NULL}, *const cast_in[] = {"I", NULL},
                           *const cast_out[] = {"F", NULL},
                           *const sc_in[] = {"a_scale", "b_scale", NULL},
                           *const sc_out[] = {"S", NULL}, *const y_in[] = {"F", "S", NULL};
  bool exists;
  tc_function *f =
      tc_pass_begin_function(c, TACOC_DOMAIN, "MatMulIntegerToFloat", ins, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  tc_node *cast = NULL;
  if (!f || !tc_pass_fn_node(f, "MatMulInteger", mi_in, mi_out, 0) ||
      !(cast = tc_pass_fn_node(f, "Cast", cast_in, cast_out, 1)) ||
      tc_node_set_attr_int(cast, 0, "to", TC_DTYPE_F32) ||
      !tc_pass_fn_node(f, "Mul", sc_in, sc_out, 0) || !tc_pass_fn_node(f, "Mul", y_in, outs, 0))
    return tc_pass_nomem(c);
  return TC_STATUS_OK;
}

/* Rewrites MatMul n (checked) with weight w [K, N]. */
static tc_status rewrite(tc_pass_ctx *c, tc_graph *g, tc_node *n, const float *w, int64_t K,
                         int64_t N) {
  tc_value *x = n->inputs[0], *wv = n->inputs[1], *y = n->outputs[0];
  size_t KN = (size_t)K * (size_t)N;
  int8_t *q = malloc(KN);
  float *s = malloc((size_t)N * sizeof *s);
  tc_status st = TC_STATUS_OK;
  if (!q || !s) {
    st = tc_pass_nomem(c);
    goto done;
  }
  quantize_weight(w, (size_t)K, (size_t)N, q, s);
  char base[200];
  const char *nm = n->name && *n->name ? n->name : y->name;
  int64_t wd[2] = {K, N}, sd[1] = {N};
  tc_dim sdim = {.kind = TC_DIM_VALUE, .value = N};
  snprintf(base, sizeof base, "%.160s_quantized", wv->name);
  tc_value *wq = tc_pass_new_const(g, base, TC_DTYPE_I8, q, 2, wd);
  snprintf(base, sizeof base, "%.160s_scale", wv->name);
  tc_value *ws = wq ? tc_pass_new_const_f32(g, base, s, 1, sd) : NULL;
  tc_value *xq = NULL, *xs = NULL, *xz = NULL;
  /* x already quantized for another MatMul (Q, K and V read the same
   * activation): share that DynamicQuantizeLinear */
  tc_node *shared = NULL;
  for (size_t u = 0; u < x->n_uses && !shared; u++) {
    tc_node *d = x->uses[u].node;
    if (d->graph == g && tc_is_op(d, "DynamicQuantizeLinear") && d->n_outputs == 3 &&
        d->outputs[0] && d->outputs[1] && d->outputs[2])
      shared = d;
  }
  if (shared) {
    xq = shared->outputs[0];
    xs = shared->outputs[1];
    xz = shared->outputs[2];
  }
  snprintf(base, sizeof base, "%.160s_quantized", x->name);
  if (ws && !xq)
    xq = tc_graph_new_temp(g, base);
  snprintf(base, sizeof base, "%.160s_scale", x->name);
  if (xq && !xs)
    xs = tc_graph_new_temp(g, base);
  snprintf(base, sizeof base, "%.160s_zero_point", x->name);
  if (xs && !xz)
    xz = tc_graph_new_temp(g, base);
  if (!xz || (!shared && (tc_pass_set_type_like(xq, x, TC_DTYPE_U8) ||
                          tc_value_set_tensor_type(xs, TC_DTYPE_F32, 0, &sdim) ||
                          tc_value_set_tensor_type(xz, TC_DTYPE_U8, 0, &sdim)))) {
    st = tc_pass_nomem(c);
    goto done;
  }
  bool ort = c->opt && c->opt->compat_ort;
  const char *domain = ort ? "com.microsoft" : TACOC_DOMAIN;
  if ((!ort && (st = mmi_function(c))) ||
      (tc_model_opset(c->model, domain) < 1 && tc_model_set_opset(c->model, domain, 1))) {
    st = st ? st : tc_pass_nomem(c);
    goto done;
  }
  char qname[240];
  snprintf(qname, sizeof qname, "%.200s_quantize", nm);
  const char *fresh = shared ? "" : tc_graph_fresh_name(g, qname);
  if (!fresh) {
    st = tc_pass_nomem(c);
    goto done;
  }
  tc_value *in_dq[] = {x}, *in_mm[] = {xq, wq, xs, ws, xz};
  tc_node *dq = shared ? shared : add_node(g, n, "DynamicQuantizeLinear", fresh, in_dq, 1, 3, 0);
  tc_node *mm =
      dq ? tc_graph_insert_node(g, n, "MatMulIntegerToFloat", domain, n->name, 5, 1, 0) : NULL;
  for (size_t i = 0; mm && i < 5; i++)
    if (tc_node_set_input(mm, i, in_mm[i]))
      mm = NULL;
  if (!mm || (!shared && (tc_node_set_output(dq, 0, xq) || tc_node_set_output(dq, 1, xs) ||
                          tc_node_set_output(dq, 2, xz)))) {
    st = tc_pass_nomem(c);
    goto done;
  }
  tc_pass_half_note(c, n, NULL); /* told of the MatMul, whose output the fused node takes over */
  tc_node_remove(n);
  if (tc_node_set_output(mm, 0, y)) {
    st = tc_pass_nomem(c);
    goto done;
  }
  if (!wv->n_uses && !(wv->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT)))
    tc_graph_remove_init(g, wv);
done:
  free(q);
  free(s);
  return st;
}

/* Checks MatMul n; on a match rewrites it. */
static tc_status visit(tc_pass_ctx *c, tc_graph *g, const tc_shapes *sh, tc_node *n, bool *opset_ok,
                       const char **opset_why, size_t *count) {
  if (n->n_inputs < 2 || !n->inputs[0] || !n->inputs[1] || !n->outputs[0])
    return TC_STATUS_OK;
  tc_value *x = n->inputs[0];
  const tc_tensor *wt = tc_value_const(n->inputs[1]);
  const tc_shape *xs = tc_shape_of(sh, x);
  int32_t dt = xs->dtype ? xs->dtype : tc_value_dtype(x);
  if (!dt) {
    tc_pass_half_note(c, n, "its input's element type is not known to shape inference");
    return TC_STATUS_OK;
  }
  if (dt != TC_DTYPE_F32)
    return TC_STATUS_OK;
  if (!wt || wt->dtype != TC_DTYPE_F32 || wt->rank != 2) {
    tc_pass_explain(c, n, "the weight is not a constant 2-D float32 tensor");
    return TC_STATUS_OK;
  }
  if (!tc_pass_int8_matmul_fits(c, n, xs, wt))
    return TC_STATUS_OK;
  int64_t K = wt->dims[0], N = wt->dims[1];
  bool oom;
  if (!tc_pass_int8_ok(c, n, wt, *opset_ok, *opset_why, &oom))
    return oom ? tc_pass_nomem(c) : TC_STATUS_OK;
  float *w = NULL;
  if (tc_const_floats(wt, &w) < 0)
    return tc_pass_nomem(c);
  tc_status st = rewrite(c, g, n, w, K, N);
  if (st == TC_STATUS_OK)
    (*count)++;
  free(w);
  return st;
}

tc_status tc_pass_quantize_dynamic(tc_pass_ctx *c, tc_graph *g) {
  if (g->parent)
    return TC_STATUS_OK;
  const char *why = NULL;
  bool any = false;
  for (tc_node *n = g->first; n && !any; n = n->next)
    any = tc_is_op(n, "MatMul") || tc_pass_is_gemm(n);
  if (!any)
    return TC_STATUS_OK;
  bool opset_ok = tc_pass_require_opset(c, 10, &why);
  tc_shapes *sh = tc_shapes_infer(g);
  if (!sh)
    return tc_pass_nomem(c);
  size_t count = 0;
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n && !st; n = next) {
    next = n->next;
    bool oom = false;
    /* a float32 Gemm: quantized as the MatMul (+ Add) it is */
    if (tc_pass_is_gemm(n) && n->n_inputs > 1 && n->inputs[0] &&
        tc_shape_of(sh, n->inputs[0])->dtype == TC_DTYPE_F32 &&
        !(n = tc_pass_gemm_as_matmul(c, g, n, &oom)) && oom)
      st = tc_pass_nomem(c);
    if (n && tc_is_op(n, "MatMul"))
      st = visit(c, g, sh, n, &opset_ok, &why, &count);
  }
  tc_shapes_free(sh);
  if (count)
    tc_pass_count(c, "MatMuls to int8", count);
  return st;
}
