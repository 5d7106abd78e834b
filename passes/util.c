/* Helpers shared by the passes: statistics, pattern tests, constant access. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "onnx_io.h"
#include "pass.h"
#include "shapes.h"

void tc_pass_count(tc_pass_ctx *c, const char *kind, size_t n) {
  for (size_t i = 0; i < c->n_kinds; i++) {
    if (strcmp(c->rewrites[i].kind, kind) == 0) {
      c->rewrites[i].count += n;
      return;
    }
  }
  if (c->n_kinds < TC_PASS_MAX_KINDS) {
    c->rewrites[c->n_kinds].kind = kind;
    c->rewrites[c->n_kinds++].count = n;
  }
}

void tc_pass_explain(tc_pass_ctx *c, const tc_node *n, const char *fmt, ...) {
  if (!c->opt || !c->opt->explain)
    return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(c->opt->explain, "%s: node '%s' (%s): ", c->pass, n->name ? n->name : "", n->op_type);
  vfprintf(c->opt->explain, fmt, ap);
  fputc('\n', c->opt->explain);
  va_end(ap);
}

tc_status tc_pass_nomem(tc_pass_ctx *c) {
  return tc_diag_set(c->diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory in pass %s", c->pass);
}

tc_node *tc_single_consumer(const tc_value *v) {
  if (!v || v->n_uses != 1 || (v->flags & TC_VALUE_OUTPUT))
    return NULL;
  tc_node *n = v->uses[0].node;
  return n->graph == v->graph ? n : NULL;
}

tc_node *tc_producer_op(const tc_value *v, const char *op_type) {
  return v && tc_is_op(v->producer, op_type) ? v->producer : NULL;
}

const tc_tensor *tc_binary_const(const tc_node *n, tc_value **other) {
  if (n->n_inputs != 2 || !n->inputs[0] || !n->inputs[1])
    return NULL;
  for (int i = 0; i < 2; i++) {
    const tc_tensor *t = tc_value_const(n->inputs[i]);
    if (t && !tc_value_const(n->inputs[1 - i])) {
      *other = n->inputs[1 - i];
      return t;
    }
  }
  return NULL;
}

/* Packed bytes of t viewed as a kernel tensor; *owned is to be freed. */
static bool is_numeric(int32_t dt) {
  return tc_dtype_is_float(dt) || tc_dtype_is_int(dt) || dt == TC_DTYPE_BOOL;
}

bool tc_const_scalar(const tc_tensor *t, double *out) {
  tc_rt_tensor rt;
  void *owned = NULL;
  if (!t || tc_tensor_numel(t) != 1 || !is_numeric(t->dtype) || !tc_tensor_view(t, &rt, &owned))
    return false;
  *out = tc_rt_get_f64(&rt, 0);
  free(owned);
  return true;
}

bool tc_const_all_near(const tc_tensor *t, double v, double tol) {
  tc_rt_tensor rt;
  void *owned = NULL;
  if (!t || !is_numeric(t->dtype) || !tc_tensor_view(t, &rt, &owned))
    return false;
  size_t n = tc_rt_numel(&rt);
  bool ok = n > 0;
  for (size_t i = 0; i < n && ok; i++)
    ok = fabs(tc_rt_get_f64(&rt, i) - v) <= tol;
  free(owned);
  return ok;
}

ptrdiff_t tc_pass_ints_arg(const tc_node *n, const char *attr, size_t slot, int64_t **out) {
  *out = NULL;
  const tc_attr *a = tc_node_attr(n, attr);
  if (a) {
    *out = malloc((a->n_ints ? a->n_ints : 1) * sizeof **out);
    if (*out && a->n_ints)
      memcpy(*out, a->ints, a->n_ints * sizeof **out);
    return *out ? (ptrdiff_t)a->n_ints : -1;
  }
  return slot < n->n_inputs && n->inputs[slot] ? tc_const_ints(tc_value_const(n->inputs[slot]), out)
                                               : -1;
}

bool tc_pass_slice_1d(const tc_node *sl, int64_t *axis, int64_t *start, int64_t *end,
                      bool *end_known) {
  int64_t *st = NULL, *en = NULL, *ax = NULL, *sp = NULL;
  ptrdiff_t ns = tc_pass_ints_arg(sl, "starts", 1, &st), ne = tc_pass_ints_arg(sl, "ends", 2, &en);
  ptrdiff_t na = tc_pass_ints_arg(sl, "axes", 3, &ax), np = 1;
  if (sl->n_inputs > 4 && sl->inputs[4])
    np = tc_const_ints(tc_value_const(sl->inputs[4]), &sp);
  /* no axes: the one start is axis 0's */
  bool no_axes = !tc_node_attr(sl, "axes") && !(sl->n_inputs > 3 && sl->inputs[3]);
  bool ok =
      ns == 1 && (na == 1 || no_axes) && np == 1 && (!sp || sp[0] == 1) && (ne < 0 || ne == 1);
  if (ok) {
    *axis = no_axes ? 0 : ax[0];
    *start = st[0];
    *end_known = ne == 1;
    *end = ne == 1 ? en[0] : 0;
  }
  free(st);
  free(en);
  free(ax);
  free(sp);
  return ok;
}

ptrdiff_t tc_const_floats(const tc_tensor *t, float **out) {
  tc_rt_tensor rt;
  void *owned = NULL;
  if (!t || !tc_dtype_is_float(t->dtype) || !tc_tensor_view(t, &rt, &owned))
    return -1;
  size_t n = tc_rt_numel(&rt);
  float *v = malloc((n ? n : 1) * sizeof *v);
  if (v)
    for (size_t i = 0; i < n; i++)
      v[i] = (float)tc_rt_get_f64(&rt, i);
  free(owned);
  *out = v;
  return v ? (ptrdiff_t)n : -1;
}

tc_value *tc_pass_new_const(tc_graph *g, const char *base, int32_t dtype, const void *data,
                            size_t rank, const int64_t *dims) {
  size_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= (size_t)dims[i];
  size_t bytes = tc_dtype_bytes(dtype, n);
  tc_buffer *b = tc_buffer_new(bytes ? bytes : 1);
  if (!b)
    return NULL;
  memcpy(tc_buffer_data(b), data, bytes);
  tc_value *v = tc_graph_new_temp(g, base);
  tc_tensor *t = v ? tc_tensor_new(g->model, v->name, dtype, rank, dims, b) : NULL;
  if (!v)
    tc_buffer_unref(b);
  if (!t)
    return NULL;
  t->data[TC_FIELD_RAW].len = bytes;
  if (tc_value_make_const(v, t) != 0)
    return NULL;
  v->type = (tc_type){.kind = TC_TYPE_TENSOR, .elem = dtype};
  return v;
}

tc_value *tc_pass_new_const_f32(tc_graph *g, const char *base, const float *data, size_t rank,
                                const int64_t *dims) {
  return tc_pass_new_const(g, base, TC_DTYPE_F32, data, rank, dims);
}

tc_value *tc_pass_new_const_i64(tc_graph *g, const char *base, const int64_t *data, size_t rank,
                                const int64_t *dims) {
  return tc_pass_new_const(g, base, TC_DTYPE_I64, data, rank, dims);
}

bool tc_pass_bypass(tc_node *n, tc_value *in, tc_value *out) {
  if (!(out->flags & TC_VALUE_OUTPUT)) {
    tc_node_remove(n);
    return tc_value_replace_uses(out, in) == 0;
  }
  /* out must keep its name: let in's producer write it, if in is nothing else. */
  tc_node *p = in->producer;
  if (!p || p->graph != out->graph || (in->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT)) ||
      in->graph != out->graph)
    return false;
  int slot = in->producer_slot;
  tc_node_remove(n);
  if (tc_value_replace_uses(in, out) != 0)
    return false;
  tc_node_set_output(p, (size_t)slot, NULL);
  return tc_node_set_output(p, (size_t)slot, out) == 0;
}

int32_t tc_value_dtype(const tc_value *v) {
  if (v->init)
    return v->init->dtype;
  if (v->type.kind == TC_TYPE_TENSOR)
    return v->type.elem;
  return 0;
}

/* ---- model-local functions ---- */
static size_t count_names(const char *const *names) {
  size_t n = 0;
  while (names && names[n])
    n++;
  return n;
}

tc_function *tc_pass_begin_function(tc_pass_ctx *c, const char *domain, const char *name,
                                    const char *const *inputs, const char *const *outputs,
                                    const char *const *attrs, bool *exists) {
  tc_model *m = c->model;
  *exists = tc_model_find_function(m, domain, name) != NULL;
  if (*exists)
    return NULL;
  tc_function *f = tc_model_add_function(m, domain, name);
  if (!f)
    return NULL;
  size_t na = count_names(attrs);
  f->attr_names = tc_arena_alloc(m->arena, (na ? na : 1) * sizeof *f->attr_names);
  f->opsets = tc_arena_alloc(m->arena, sizeof *f->opsets);
  if (!f->attr_names || !f->opsets)
    return NULL;
  for (size_t i = 0; i < na; i++)
    f->attr_names[i] = attrs[i];
  f->n_attr_names = na;
  f->opsets[0] = (tc_opset){.domain = "", .version = tc_model_opset(m, "")};
  f->n_opsets = 1;
  for (size_t i = 0; inputs[i]; i++) {
    tc_value *v = tc_graph_new_value(f->body, inputs[i], NULL);
    if (!v || tc_graph_add_input(f->body, v, NULL))
      return NULL;
  }
  for (size_t i = 0; outputs[i]; i++) {
    tc_value *v = tc_graph_new_value(f->body, outputs[i], NULL);
    if (!v || tc_graph_add_output(f->body, v, NULL))
      return NULL;
  }
  return f;
}

tc_node *tc_pass_fn_node(tc_function *f, const char *op, const char *const *inputs,
                         const char *const *outputs, size_t n_attrs) {
  tc_graph *b = f->body;
  size_t ni = count_names(inputs), no = count_names(outputs);
  tc_node *n = tc_graph_append_node(b, op, "", NULL, ni, no, n_attrs);
  if (!n)
    return NULL;
  for (size_t i = 0; i < ni; i++) {
    if (!*inputs[i])
      continue;
    tc_value *v = tc_graph_lookup_local(b, inputs[i]);
    if (!v || tc_node_set_input(n, i, v))
      return NULL;
  }
  for (size_t i = 0; i < no; i++) {
    tc_value *v = tc_graph_lookup_local(b, outputs[i]);
    if (!v)
      v = tc_graph_new_value(b, outputs[i], NULL);
    if (!v || tc_node_set_output(n, i, v))
      return NULL;
  }
  return n;
}

void tc_pass_ref_attr(tc_node *n, size_t i, const char *name, int type) {
  n->attrs[i] = (tc_attr){.name = name, .type = type, .ref_attr_name = name};
}

void tc_pass_half_note(tc_pass_ctx *c, const tc_node *n, const char *why) {
  if (c->opt && c->opt->half_note)
    c->opt->half_note(c->opt->half_note_ctx, n, why);
  if (why)
    tc_pass_explain(c, n, "kept in float32: %s", why);
}

bool tc_pass_int8_ok(tc_pass_ctx *c, const tc_node *n, const tc_tensor *wt, bool opset_ok,
                     const char *opset_why, bool *oom) {
  *oom = false;
  const char *const *keep = c->opt ? c->opt->half_keep : NULL;
  const char *key = n->outputs[0] ? n->outputs[0]->name : NULL;
  for (size_t i = 0; keep && key && keep[i]; i++)
    if (strcmp(keep[i], key) == 0) {
      tc_pass_half_note(c, n, "kept in float32 on request");
      return false;
    }
  if (!opset_ok) {
    /* opset_why may be c->why itself (tc_pass_require_opset's message) */
    char why[sizeof c->why];
    snprintf(why, sizeof why, "opset: %s", opset_why);
    tc_pass_half_note(c, n, why);
    return false;
  }
  float *w = NULL;
  ptrdiff_t cnt = tc_const_floats(wt, &w);
  if (cnt < 0) {
    *oom = true;
    return false;
  }
  bool finite = true;
  for (ptrdiff_t i = 0; finite && i < cnt; i++)
    finite = isfinite(w[i]);
  free(w);
  if (!finite)
    tc_pass_half_note(c, n, "the weight has non-finite values");
  return finite;
}

int tc_pass_set_type_like(tc_value *v, const tc_value *like, int32_t elem) {
  const tc_type *t = &like->type;
  bool shape = t->kind == TC_TYPE_TENSOR && t->has_shape;
  return tc_value_set_tensor_type(v, elem, shape ? t->rank : 0, shape ? t->dims : NULL);
}

bool tc_pass_is_conv(const tc_node *n) {
  if (tc_is_op(n, "Conv"))
    return true;
  return tc_domain_equal(n->domain, "ai.tacoc") && strncmp(n->op_type, "Conv", 4) == 0 &&
         strcmp(n->op_type, "ConvTranspose") != 0;
}

#define INT8_MIN_DIM 16

bool tc_pass_int8_matmul_fits(tc_pass_ctx *c, const tc_node *n, const tc_shape *xs,
                              const tc_tensor *wt) {
  const tc_type *xt = &n->inputs[0]->type;
  bool rank2 =
      xs->known ? xs->rank >= 2 : xt->kind == TC_TYPE_TENSOR && xt->has_shape && xt->rank >= 2;
  if (!rank2) {
    tc_pass_half_note(c, n, "the activation's rank is not known to be at least 2");
    return false;
  }
  int64_t K = wt->dims[0], N = wt->dims[1];
  if (K < INT8_MIN_DIM || N < INT8_MIN_DIM) {
    snprintf(c->why, sizeof c->why, "too small for int8: K %lld, N %lld (both must be >= %d)",
             (long long)K, (long long)N, INT8_MIN_DIM);
    tc_pass_half_note(c, n, c->why);
    return false;
  }
  return true;
}

/* Whether n is tacoc's Gemm<Act> with Relu (fuse-conv-activation's GemmRelu). */
static bool is_gemm_relu(const tc_node *n) {
  return n->op_type && strcmp(n->op_type, "GemmRelu") == 0 &&
         tc_domain_equal(n->domain, "ai.tacoc");
}

bool tc_pass_is_gemm(const tc_node *n) { return tc_is_op(n, "Gemm") || is_gemm_relu(n); }

tc_node *tc_pass_gemm_as_matmul(tc_pass_ctx *c, tc_graph *g, tc_node *n, bool *oom) {
  *oom = false;
  bool relu = is_gemm_relu(n);
  if (!(tc_is_op(n, "Gemm") || relu) || n->n_inputs < 2 || !n->inputs[0] || !n->inputs[1] ||
      !n->outputs[0] || n->n_outputs != 1)
    return NULL;
  const tc_tensor *bt = tc_value_const(n->inputs[1]);
  tc_value *cv = n->n_inputs > 2 ? n->inputs[2] : NULL, *out = n->outputs[0];
  if (!bt || bt->dtype != TC_DTYPE_F32 || bt->rank != 2 || bt->dims[0] < INT8_MIN_DIM ||
      bt->dims[1] < INT8_MIN_DIM || tc_attr_int(n, "transA", 0) ||
      tc_attr_float(n, "alpha", 1.0f) != 1.0f || (cv && tc_attr_float(n, "beta", 1.0f) != 1.0f))
    return NULL;
  tc_value *b = n->inputs[1];
  if (tc_attr_int(n, "transB", 0)) {
    float *w = NULL, *t = NULL;
    int64_t N = bt->dims[0], K = bt->dims[1], dims[2] = {K, N};
    *oom = tc_const_floats(bt, &w) < 0 || !(t = malloc((size_t)(K * N + 1) * sizeof *t));
    for (int64_t k = 0; !*oom && k < K; k++)
      for (int64_t j = 0; j < N; j++)
        t[k * N + j] = w[j * K + k];
    char base[200];
    snprintf(base, sizeof base, "%.180s_t", b->name);
    b = *oom ? NULL : tc_pass_new_const_f32(g, base, t, 2, dims);
    free(w);
    free(t);
    if (!b) {
      *oom = true;
      return NULL;
    }
  }
  /* MatMul -> [Add C] -> [Relu] -> out: each step's value a new temp but the last */
  const char *steps[3] = {"MatMul", cv ? "Add" : NULL, relu ? "Relu" : NULL};
  tc_node *made[3] = {NULL};
  tc_value *prev = NULL, *a = n->inputs[0], *old_b = n->inputs[1];
  tc_node *before = n;
  int last = relu ? 2 : cv ? 1 : 0;
  bool ok = true;
  for (int i = 0; i <= last && ok; i++) {
    if (!steps[i])
      continue;
    char name[240];
    snprintf(name, sizeof name, "%.200s_%s", n->name ? n->name : out->name, steps[i]);
    const char *fresh = i ? tc_graph_fresh_name(g, name) : n->name;
    ok = (made[i] = tc_graph_insert_node(g, before, steps[i], "", fresh, i == 2 ? 1 : 2, 1, 0));
  }
  tc_node_remove(n);
  for (int i = 0; i <= last && ok; i++) {
    if (!made[i])
      continue;
    tc_value *y = out;
    if (i < last) {
      char base[200];
      snprintf(base, sizeof base, "%.180s_%s", out->name, steps[i]);
      ok = (y = tc_graph_new_temp(g, base)) && !tc_pass_set_type_like(y, out, TC_DTYPE_F32);
    }
    tc_value *in0 = i ? prev : a, *in1 = i == 0 ? b : cv;
    ok = ok && !tc_node_set_input(made[i], 0, in0) &&
         (i == 2 || !tc_node_set_input(made[i], 1, in1)) && !tc_node_set_output(made[i], 0, y);
    prev = y;
  }
  if (!ok) {
    *oom = true;
    return NULL;
  }
  if (old_b != b && old_b->init && !old_b->n_uses &&
      !(old_b->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT)))
    tc_graph_remove_init(g, old_b);
  tc_pass_count(c, "Gemm as MatMul", 1);
  return made[0];
}
