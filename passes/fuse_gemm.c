/* fuse-gemm: a bias added to a 2-D matrix product goes into Gemm.
 *
 *   A [M, K] ─▶ MatMul(B [K, N]) ─▶ Add(C) ─▶ y    ⇒   y = Gemm(A, B, C)
 *   A ─▶ Gemm(B, C0, alpha, beta) ─▶ Add(D) ─▶ y    ⇒   y = Gemm(A, B, beta * C0 + D, alpha, 1)
 *   A ─▶ Gemm(B, C0) ─▶ Mul(s) ─▶ y                  ⇒   y = Gemm(A, B * s, C0 * s)
 *
 * Conditions: A and B of rank 2 with a float type Gemm takes (float32,
 * float64, float16, bfloat16); C (any value, constant or not) of rank at most
 * 2 whose dims are 1 or equal to M and N, so that it broadcasts to [M, N] one
 * way, as Gemm's C does (opset 7 and later); for the second form, C0 absent or
 * a float32 constant and D a float32 constant of that kind, folded into one
 * new constant; the product read only by the Add. For Mul: B (and C0) float32
 * constants, s a float32 constant scalar or one value per column ([N] or
 * [1, N]). Batched (rank-3) MatMuls
 * have no standard fused form and stay. MatMuls stay when int8
 * quantization follows (tc_pass_options.int8_follows): the int8 passes
 * quantize MatMuls, not Gemms. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

static bool gemm_float(int32_t dt) {
  return dt == TC_DTYPE_F32 || dt == TC_DTYPE_F64 || dt == TC_DTYPE_F16 || dt == TC_DTYPE_BF16;
}

/* c broadcasts one way to [m, n] (trailing alignment, each dim 1 or equal). */
static bool broadcasts_to(const tc_shape *c, tc_sdim m, tc_sdim n) {
  if (!c->known || c->rank > 2)
    return false;
  const tc_sdim want[2] = {m, n};
  for (size_t i = 0; i < c->rank; i++) {
    tc_sdim d = c->dims[i], w = want[2 - c->rank + i];
    if (!tc_sdim_is(d, 1) && !tc_sdim_eq(d, w))
      return false;
  }
  return true;
}

/* Rows and columns of a constant of rank <= 2 right-aligned in [M, N]. */
static void rows_cols(const tc_tensor *t, int64_t *r, int64_t *k) {
  *r = t && t->rank == 2 ? t->dims[0] : 1;
  *k = t && t->rank ? t->dims[t->rank - 1] : 1;
}

/* beta * C0 + D (C0 may be NULL) as a new float32 constant [R, K], R and K
 * the larger of the two operands' (each 1 or the product's dim, as
 * broadcasts_to checked). NULL on OOM. */
static tc_value *folded_bias(tc_graph *g, const tc_tensor *c0, double beta, const tc_tensor *d) {
  int64_t r0, k0, r1, k1;
  rows_cols(c0, &r0, &k0);
  rows_cols(d, &r1, &k1);
  int64_t dims[2] = {r0 > r1 ? r0 : r1, k0 > k1 ? k0 : k1};
  float *cv = NULL, *dv = NULL, *out = malloc((size_t)(dims[0] * dims[1]) * sizeof *out);
  bool ok = out && (!c0 || tc_const_floats(c0, &cv) >= 0) && tc_const_floats(d, &dv) >= 0;
  for (int64_t i = 0; ok && i < dims[0]; i++)
    for (int64_t j = 0; j < dims[1]; j++) {
      float v = dv[(r1 == 1 ? 0 : i) * k1 + (k1 == 1 ? 0 : j)];
      if (c0)
        v += (float)beta * cv[(r0 == 1 ? 0 : i) * k0 + (k0 == 1 ? 0 : j)];
      out[i * dims[1] + j] = v;
    }
  tc_value *v = ok ? tc_pass_new_const_f32(g, "gemm_bias", out, 2, dims) : NULL;
  free(cv);
  free(dv);
  free(out);
  return v;
}

/* Gemm(A, B, C) * s with B (and C) float32 constants and s a float32
 * constant scalar or per column ([N] / [1, N]): the scale goes into B's
 * columns and C. *done when rewritten. */
static tc_status scale_gemm(tc_pass_ctx *c, tc_graph *g, tc_node *n, tc_node *mul, bool *done) {
  *done = false;
  tc_value *other = NULL;
  const tc_tensor *st = tc_binary_const(mul, &other);
  const tc_tensor *bt = tc_value_const(n->inputs[1]);
  bool has_c = n->n_inputs > 2 && n->inputs[2];
  const tc_tensor *ct = has_c ? tc_value_const(n->inputs[2]) : NULL;
  if (!st || other != n->outputs[0] || st->dtype != TC_DTYPE_F32 || !bt ||
      bt->dtype != TC_DTYPE_F32 || bt->rank != 2 || (has_c && (!ct || ct->dtype != TC_DTYPE_F32)))
    return TC_STATUS_OK;
  bool tb = tc_attr_int(n, "transB", 0) != 0;
  int64_t N = bt->dims[tb ? 0 : 1], K = bt->dims[tb ? 1 : 0], ns = (int64_t)tc_tensor_numel(st);
  if (!(ns == 1 || (ns == N && (st->rank == 1 || (st->rank == 2 && st->dims[0] == 1)))) ||
      (has_c && ct->rank > 2)) {
    tc_pass_explain(c, mul,
                    "Gemm * constant rejected: the scale is not one value or one per column");
    return TC_STATUS_OK;
  }
  float *sv = NULL, *bv = NULL, *cv = NULL, *cout = NULL;
  int64_t cr, cc;
  rows_cols(ct, &cr, &cc);
  int64_t oc = ns == N ? N : cc, cdims[2] = {cr, oc};
  if (has_c && cc != 1 && cc != N)
    return TC_STATUS_OK;
  tc_status rc = TC_STATUS_OK;
  if (tc_const_floats(st, &sv) < 0 || tc_const_floats(bt, &bv) < 0 ||
      (has_c && tc_const_floats(ct, &cv) < 0) ||
      (has_c && !(cout = malloc((size_t)(cr * oc) * sizeof *cout)))) {
    rc = tc_pass_nomem(c);
    goto out;
  }
  for (int64_t k = 0; k < K; k++)
    for (int64_t j = 0; j < N; j++)
      bv[tb ? j * K + k : k * N + j] *= sv[ns == 1 ? 0 : j];
  for (int64_t i = 0; has_c && i < cr; i++)
    for (int64_t j = 0; j < oc; j++)
      cout[i * oc + j] = cv[i * cc + (cc == 1 ? 0 : j)] * sv[ns == 1 ? 0 : j];
  tc_value *nb = tc_pass_new_const_f32(g, n->inputs[1]->name, bv, 2, bt->dims);
  tc_value *nc = has_c ? tc_pass_new_const_f32(g, "gemm_bias", cout, 2, cdims) : NULL;
  tc_node *r = nb && (!has_c || nc)
                   ? tc_graph_insert_node(g, mul, "Gemm", "", n->name, has_c ? 3 : 2, 1, n->n_attrs)
                   : NULL;
  if (!r) {
    rc = tc_pass_nomem(c);
    goto out;
  }
  for (size_t i = 0; i < n->n_attrs; i++)
    tc_node_copy_attr(r, i, &n->attrs[i]);
  tc_value *A = n->inputs[0], *y = mul->outputs[0];
  tc_node_remove(mul);
  tc_node_remove(n);
  if (tc_node_set_input(r, 0, A) || tc_node_set_input(r, 1, nb) ||
      (has_c && tc_node_set_input(r, 2, nc)) || tc_node_set_output(r, 0, y)) {
    rc = tc_pass_nomem(c);
    goto out;
  }
  tc_pass_count(c, "Gemm * constant", 1);
  *done = true;
out:
  free(sv);
  free(bv);
  free(cv);
  free(cout);
  return rc;
}

tc_status tc_pass_fuse_gemm(tc_pass_ctx *c, tc_graph *g) {
  if (tc_model_opset(c->model, "") < 7)
    return TC_STATUS_OK;

  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    bool mm = tc_is_op(n, "MatMul"), gemm = tc_is_op(n, "Gemm");
    if (!(mm || gemm) || n->n_inputs < 2 || !n->inputs[0] || !n->inputs[1])
      continue;
    tc_node *add = tc_single_consumer(n->outputs[0]);
    if (gemm && tc_is_op(add, "Mul")) {
      bool done;
      if ((st = scale_gemm(c, g, n, add, &done)))
        break;
      if (done)
        next = g->first; /* the new Gemm may take an Add or Mul after it too */
      continue;
    }
    if (!tc_is_op(add, "Add") || !add->inputs[0] || !add->inputs[1])
      continue;
    if (!s && !(s = tc_shapes_infer(g)))
      return tc_pass_nomem(c);
    const tc_shape *a = tc_shape_of(s, n->inputs[0]), *b = tc_shape_of(s, n->inputs[1]),
                   *y = tc_shape_of(s, n->outputs[0]);
    tc_value *bias = add->inputs[0] == n->outputs[0] ? add->inputs[1] : add->inputs[0];
    const tc_shape *cs = tc_shape_of(s, bias);
    const char *why = NULL;
    if (!a->known || !b->known || a->rank != 2 || b->rank != 2 || !y->known || y->rank != 2)
      why = mm ? "" : "the product is not known to be 2-D";
    else if (!gemm_float(a->dtype) || cs->dtype != a->dtype)
      why = "not a float type Gemm takes, or the bias has another";
    else if (!broadcasts_to(cs, y->dims[0], y->dims[1]))
      why = "the bias does not broadcast one way to the product's [M, N]";
    else if (mm && c->opt && c->opt->int8_follows)
      why = "left for int8 quantization, which takes MatMuls";
    if (why) {
      if (*why)
        tc_pass_explain(c, add, "MatMul/Gemm + Add candidate rejected: %s", why);
      continue;
    }
    tc_value *cval = bias;
    double alpha = 1, beta = 1;
    if (gemm) {
      const tc_tensor *c0 = n->n_inputs > 2 && n->inputs[2] ? tc_value_const(n->inputs[2]) : NULL;
      const tc_tensor *d = tc_value_const(bias);
      bool has_c0 = n->n_inputs > 2 && n->inputs[2];
      if (!d || d->dtype != TC_DTYPE_F32 || (has_c0 && (!c0 || c0->dtype != TC_DTYPE_F32)) ||
          (has_c0 && !broadcasts_to(tc_shape_of(s, n->inputs[2]), y->dims[0], y->dims[1]))) {
        tc_pass_explain(c, add,
                        "Gemm + Add candidate rejected: C and the added value are not "
                        "both float32 constants broadcasting to [M, N]");
        continue;
      }
      const tc_attr *ab = tc_node_attr(n, "beta");
      beta = ab ? ab->f : 1.0;
      cval = folded_bias(g, has_c0 ? c0 : NULL, beta, d);
      if (!cval) {
        st = tc_pass_nomem(c);
        break;
      }
      const tc_attr *aa = tc_node_attr(n, "alpha");
      alpha = aa ? aa->f : 1.0;
    }
    /* a new Gemm at the Add's place: C may be computed just before the Add */
    size_t n_attrs = gemm ? 4 : 0;
    tc_node *r = tc_graph_insert_node(g, add, "Gemm", "", n->name, 3, 1, n_attrs);
    if (!r) {
      st = tc_pass_nomem(c);
      break;
    }
    int bad = 0;
    if (gemm) {
      bad = tc_node_set_attr_float(r, 0, "alpha", (float)alpha) ||
            tc_node_set_attr_float(r, 1, "beta", 1.0f) ||
            tc_node_set_attr_int(r, 2, "transA", tc_attr_int(n, "transA", 0)) ||
            tc_node_set_attr_int(r, 3, "transB", tc_attr_int(n, "transB", 0));
    }
    tc_value *A = n->inputs[0], *B = n->inputs[1], *out = add->outputs[0];
    tc_node_remove(add);
    tc_node_remove(n);
    if (bad || tc_node_set_input(r, 0, A) || tc_node_set_input(r, 1, B) ||
        tc_node_set_input(r, 2, cval) || tc_node_set_output(r, 0, out)) {
      st = tc_pass_nomem(c);
      break;
    }
    next = r->next;
    tc_pass_count(c, mm ? "MatMul + Add as Gemm" : "Gemm + Add", 1);
  }
  tc_shapes_free(s);
  return st;
}
