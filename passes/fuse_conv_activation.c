/* fuse-conv-activation: Conv (or Gemm) followed by its activation, as one op.
 *
 *   x ─▶ Conv(W, B) ─▶ t ─▶ Relu | LeakyRelu | Clip | Sigmoid | HardSigmoid | HardSwish | Tanh |
 * Gelu | SiLU (fuse-gelu's QuickGelu with alpha 1: YOLO's Conv, Sigmoid, Mul) ─▶ y ⇒   x ─▶
 * ai.tacoc.Conv<Act>(W, B; Conv's attributes, the activation's) ─▶ y x ─▶ Conv(W, B) ─▶ t ─▶ Add(z)
 * ─▶ Act ─▶ y        (the residual of ResNet blocks) ⇒   x ─▶ ai.tacoc.ConvAdd<Act>(W, B, z) ─▶ y
 *       (--compat ort: com.microsoft.FusedConv(activation, activation_params), Z input 3)
 *
 * ONNX has no fused form, so the op is tacoc's own, and the model carries its
 * decomposition as a model-local function (ai.tacoc.Conv<Act>: Conv with the
 * caller's attributes by reference, then the activation), so that any
 * runtime without tacoc's kernel inlines it; libtacort runs it as one
 * oneDNN convolution with a post-op. Conditions: float32 Conv with constant
 * weights, t read only by the activation (or the Add), z not a constant and
 * proven by shape inference to have t's shape (FusedConv does not broadcast
 * Z), Clip bounds constant scalars.
 *
 *   Gemm(A, B, C) ─▶ t ─▶ Act ─▶ y ⇒ ai.tacoc.Gemm<Act>(A, B, C; Gemm's attributes,
 *   the activation's parameters as activation_alpha / activation_beta, Clip's as min / max)
 *       (--compat ort: com.microsoft.FusedGemm(activation, activation_alpha/beta) for
 *       Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid; the others stay unfused)
 * with a float32 constant B; libtacort runs its Gemm, then the activation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

#define TACOC_DOMAIN "ai.tacoc"

typedef struct act_def {
  const char *op;        /* activation op */
  const char *params[2]; /* its float attributes, in activation_params order */
  float dflt[2];
} act_def;

static const act_def acts[] = {
    {"Relu", {NULL}, {0}},
    {"LeakyRelu", {"alpha"}, {0.01f}},
    {"Clip", {"min", "max"}, {-INFINITY, INFINITY}},
    {"Sigmoid", {NULL}, {0}},
    {"HardSigmoid", {"alpha", "beta"}, {0.2f, 0.5f}},
    {"HardSwish", {NULL}, {0}},
    {"Tanh", {NULL}, {0}},
    {"Gelu", {NULL}, {0}}, /* exact (erf) form only: opset 20, see act_params */
    {"Silu", {NULL}, {0}}, /* x sigmoid(x): fuse-gelu's QuickGelu with alpha 1 (act_of) */
};

/* No activation: the residual form's Conv + Add alone (ai.tacoc.ConvAdd). */
static const act_def no_act = {"", {NULL}, {0}};

static const char *const conv_attrs[] = {"auto_pad",     "dilations", "group",
                                         "kernel_shape", "pads",      "strides"};
static const int conv_attr_types[] = {
    ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,
    ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT,    ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,
    ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,   ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS};
#define N_CONV_ATTRS (sizeof conv_attrs / sizeof *conv_attrs)

/* Parameter values of activation node a; false when not constant. */
static bool act_params(const act_def *d, const tc_node *a, float *p) {
  for (int i = 0; i < 2; i++)
    p[i] = d->dflt[i];
  if (d == &no_act)
    return true;
  if (strcmp(d->op, "Gelu") == 0) {
    const tc_attr *ap = tc_node_attr(a, "approximate");
    return !ap || (ap->s.len == 4 && memcmp(ap->s.data, "none", 4) == 0);
  }
  if (strcmp(d->op, "Clip") != 0) {
    for (int i = 0; i < 2 && d->params[i]; i++)
      p[i] = tc_attr_float(a, d->params[i], d->dflt[i]);
    return true;
  }
  if (tc_attr_has(a, "min") || tc_attr_has(a, "max")) {
    p[0] = tc_attr_float(a, "min", -INFINITY);
    p[1] = tc_attr_float(a, "max", INFINITY);
    return true;
  }
  for (int i = 0; i < 2; i++) {
    double v;
    if (a->n_inputs > (size_t)(i + 1) && a->inputs[i + 1]) {
      if (!tc_const_scalar(tc_value_const(a->inputs[i + 1]), &v))
        return false;
      p[i] = (float)v;
    }
  }
  return true;
}

static const char *const gemm_attrs[] = {"alpha", "beta", "transA", "transB"};
static const int gemm_attr_types[] = {
    ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
    ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT};
#define N_GEMM_ATTRS (sizeof gemm_attrs / sizeof *gemm_attrs)

/* Gemm<Act>'s name for the activation's parameter i: Gemm has its own alpha
 * and beta, so LeakyRelu's and HardSigmoid's become activation_alpha /
 * activation_beta (as in ONNX Runtime's FusedGemm); Clip keeps min / max. */
static const char *gemm_param(const act_def *d, size_t i) {
  return strcmp(d->op, "Clip") == 0 ? d->params[i] : i ? "activation_beta" : "activation_alpha";
}

/* The end of a Conv<Act> / Gemm<Act> body: Y = Act(T) with the call's
 * activation parameters (Clip's bounds through Constant nodes, since Clip
 * takes them as inputs). */
static tc_status fn_activation(tc_pass_ctx *c, tc_function *f, const act_def *d, size_t np,
                               bool gemm) {
  static const char *const act_in[] = {"T", NULL}, *const clip_in[] = {"T", "Min", "Max", NULL},
                           *const outs[] = {"Y", NULL};
  bool clip = strcmp(d->op, "Clip") == 0;
  if (d == &no_act)
    return tc_pass_fn_node(f, "Identity", act_in, outs, 0) ? TC_STATUS_OK : tc_pass_nomem(c);
  if (strcmp(d->op, "Silu") == 0) { /* ONNX has no SiLU op: Y = T sigmoid(T) */
    static const char *const sig_out[] = {"S", NULL}, *const mul_in[] = {"T", "S", NULL};
    return tc_pass_fn_node(f, "Sigmoid", act_in, sig_out, 0) &&
                   tc_pass_fn_node(f, "Mul", mul_in, outs, 0)
               ? TC_STATUS_OK
               : tc_pass_nomem(c);
  }
  if (clip) {
    static const char *const none[] = {NULL}, *const kmin[] = {"Min", NULL},
                             *const kmax[] = {"Max", NULL};
    tc_node *lo = tc_pass_fn_node(f, "Constant", none, kmin, 1);
    tc_node *hi = tc_pass_fn_node(f, "Constant", none, kmax, 1);
    if (!lo || !hi)
      return tc_pass_nomem(c);
    lo->attrs[0] = (tc_attr){.name = "value_float",
                             .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
                             .ref_attr_name = "min"};
    hi->attrs[0] = (tc_attr){.name = "value_float",
                             .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
                             .ref_attr_name = "max"};
  }
  tc_node *act = tc_pass_fn_node(f, d->op, clip ? clip_in : act_in, outs, clip ? 0 : np);
  if (!act)
    return tc_pass_nomem(c);
  for (size_t i = 0; !clip && i < np; i++)
    act->attrs[i] = (tc_attr){.name = d->params[i],
                              .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
                              .ref_attr_name = gemm ? gemm_param(d, i) : d->params[i]};
  return TC_STATUS_OK;
}

/* Adds ai.tacoc.Conv<Act> as a model-local function unless the model has it:
 * Y = Act(Conv(X, W, B; the caller's conv attributes); the caller's act parameters). */
static tc_status ensure_function(tc_pass_ctx *c, const act_def *d, const char *name, bool z) {
  static const char *const ins3[] = {"X", "W", "B", NULL},
                           *const ins4[] = {"X", "W", "B", "Z", NULL}, *const outs[] = {"Y", NULL};
  const char *const *ins = z ? ins4 : ins3;
  const char *attrs[N_CONV_ATTRS + 3];
  size_t np = d->params[1] ? 2 : d->params[0] ? 1 : 0;
  for (size_t i = 0; i < N_CONV_ATTRS; i++)
    attrs[i] = conv_attrs[i];
  for (size_t i = 0; i < np; i++)
    attrs[N_CONV_ATTRS + i] = d->params[i];
  attrs[N_CONV_ATTRS + np] = NULL;
  bool exists;
  tc_function *f = tc_pass_begin_function(c, TACOC_DOMAIN, name, ins, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  static const char *const conv_out[] = {"C", NULL}, *const add_in[] = {"C", "Z", NULL},
                           *const add_out[] = {"T", NULL}, *const id_in[] = {"C", NULL};
  tc_node *conv = f ? tc_pass_fn_node(f, "Conv", ins3, conv_out, N_CONV_ATTRS) : NULL;
  if (!conv)
    return tc_pass_nomem(c);
  for (size_t i = 0; i < N_CONV_ATTRS; i++)
    tc_pass_ref_attr(conv, i, conv_attrs[i], conv_attr_types[i]);
  /* T = C + Z for the residual form, else T is C. */
  if (!tc_pass_fn_node(f, z ? "Add" : "Identity", z ? add_in : id_in, add_out, 0))
    return tc_pass_nomem(c);
  return fn_activation(c, f, d, np, false);
}

/* conv -> [add(z)] -> act as one node; add and z are NULL in the plain form. */
static tc_status fuse(tc_pass_ctx *c, tc_graph *g, tc_node *conv, tc_node *add, tc_value *z,
                      tc_node *act, const act_def *d, const float *p) {
  bool ort = c->opt && c->opt->compat_ort;
  char name[64];
  snprintf(name, sizeof name, ort ? "FusedConv" : z ? "ConvAdd%s" : "Conv%s", d->op);
  size_t np = d->params[1] ? 2 : d->params[0] ? 1 : 0;
  if (strcmp(d->op, "Clip") == 0 && (isinf(p[0]) || isinf(p[1])))
    np = 0; /* unbounded Clip: keep the op's own defaults */
  if (ort && (strcmp(d->op, "HardSwish") == 0 || strcmp(d->op, "Gelu") == 0 ||
              strcmp(d->op, "Silu") == 0)) {
    tc_pass_explain(c, act, "ONNX Runtime's FusedConv has no %s", d->op);
    return TC_STATUS_OK;
  }
  const char *domain = ort ? "com.microsoft" : TACOC_DOMAIN;
  if (!ort && ensure_function(c, d, name, z != NULL))
    return c->diag->status;
  if (tc_model_opset(c->model, domain) < 1 && tc_model_set_opset(c->model, domain, 1))
    return tc_pass_nomem(c);
  size_t extra = ort ? (d == &no_act ? 0 : 1 + (np > 0)) : np;
  /* ONNX Runtime's function inliner crashes on an omitted optional input:
   * a Conv without bias gets explicit zeros. */
  bool bias = conv->n_inputs > 2 && conv->inputs[2];
  tc_value *bias_zeros = NULL;
  if (!bias && !ort) {
    int64_t oc = tc_value_const(conv->inputs[1])->dims[0];
    float *z = calloc(oc > 0 ? (size_t)oc : 1, sizeof *z);
    bias_zeros = z ? tc_pass_new_const_f32(g, "conv_bias", z, 1, &oc) : NULL;
    free(z);
    if (!bias_zeros)
      return tc_pass_nomem(c);
  }
  if (z && !bias && ort) {
    /* FusedConv's Z is input 3: it needs a bias before it. */
    int64_t oc = tc_value_const(conv->inputs[1])->dims[0];
    float *zb = calloc(oc > 0 ? (size_t)oc : 1, sizeof *zb);
    bias_zeros = zb ? tc_pass_new_const_f32(g, "conv_bias", zb, 1, &oc) : NULL;
    free(zb);
    if (!bias_zeros)
      return tc_pass_nomem(c);
  }
  tc_node *f = tc_graph_insert_node(g, conv, name, domain, conv->name,
                                    z            ? 4
                                    : bias_zeros ? 3
                                                 : conv->n_inputs,
                                    1, conv->n_attrs + extra);
  if (!f)
    return tc_pass_nomem(c);
  for (size_t i = 0; i < conv->n_attrs; i++)
    tc_node_copy_attr(f, i, &conv->attrs[i]);
  size_t k = conv->n_attrs;
  if (ort) { /* no activation attribute: FusedConv's identity */
    if (d != &no_act && (tc_node_set_attr_string(f, k++, "activation", d->op) ||
                         (np && tc_node_set_attr_floats(f, k++, "activation_params", p, np))))
      return tc_pass_nomem(c);
  } else {
    for (size_t i = 0; i < np; i++)
      if (tc_node_set_attr_float(f, k++, d->params[i], p[i]))
        return tc_pass_nomem(c);
  }
  for (size_t i = 0; i < conv->n_inputs; i++)
    if (tc_node_set_input(f, i, conv->inputs[i]))
      return tc_pass_nomem(c);
  if (bias_zeros && tc_node_set_input(f, 2, bias_zeros))
    return tc_pass_nomem(c);
  if (z && tc_node_set_input(f, 3, z))
    return tc_pass_nomem(c);
  tc_value *y = act ? act->outputs[0] : add->outputs[0];
  if (act)
    tc_node_remove(act);
  if (add)
    tc_node_remove(add);
  tc_node_remove(conv);
  if (tc_node_set_output(f, 0, y))
    return tc_pass_nomem(c);
  tc_pass_count(c, !z ? d->op : act ? "Conv+Add+activation" : "Conv+Add", 1);
  return TC_STATUS_OK;
}

/* ---- Gemm + activation ---- */

/* Adds ai.tacoc.Gemm<Act> as a model-local function unless the model has it:
 * Y = Act(Gemm(A, B, C; the caller's Gemm attributes); its act parameters). */
static tc_status ensure_gemm_function(tc_pass_ctx *c, const act_def *d, const char *name) {
  static const char *const ins[] = {"A", "B", "C", NULL}, *const outs[] = {"Y", NULL},
                           *const gemm_out[] = {"T", NULL};
  size_t np = d->params[1] ? 2 : d->params[0] ? 1 : 0;
  const char *attrs[N_GEMM_ATTRS + 3];
  for (size_t i = 0; i < N_GEMM_ATTRS; i++)
    attrs[i] = gemm_attrs[i];
  for (size_t i = 0; i < np; i++)
    attrs[N_GEMM_ATTRS + i] = gemm_param(d, i);
  attrs[N_GEMM_ATTRS + np] = NULL;
  bool exists;
  tc_function *f = tc_pass_begin_function(c, TACOC_DOMAIN, name, ins, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  tc_node *gemm = f ? tc_pass_fn_node(f, "Gemm", ins, gemm_out, N_GEMM_ATTRS) : NULL;
  if (!gemm)
    return tc_pass_nomem(c);
  for (size_t i = 0; i < N_GEMM_ATTRS; i++)
    tc_pass_ref_attr(gemm, i, gemm_attrs[i], gemm_attr_types[i]);
  return fn_activation(c, f, d, np, true);
}

/* ONNX Runtime's FusedGemm activations (its element-wise functors). */
static bool ort_gemm_act(const act_def *d) {
  static const char *const ok[] = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", NULL};
  for (const char *const *o = ok; *o; o++)
    if (strcmp(d->op, *o) == 0)
      return true;
  return false;
}

/* gemm -> act as one node: ai.tacoc.Gemm<Act>, or com.microsoft.FusedGemm
 * with --compat ort. */
static tc_status fuse_gemm(tc_pass_ctx *c, tc_graph *g, tc_node *gemm, tc_node *act,
                           const act_def *d, const float *p) {
  bool ort = c->opt && c->opt->compat_ort;
  if (ort && !ort_gemm_act(d)) {
    tc_pass_explain(c, act, "ONNX Runtime's FusedGemm has no %s", d->op);
    return TC_STATUS_OK;
  }
  char name[64];
  snprintf(name, sizeof name, ort ? "FusedGemm" : "Gemm%s", d->op);
  size_t np = d->params[1] ? 2 : d->params[0] ? 1 : 0;
  if (strcmp(d->op, "Clip") == 0 && (isinf(p[0]) || isinf(p[1])))
    np = 0; /* unbounded Clip: keep the op's own defaults */
  const char *domain = ort ? "com.microsoft" : TACOC_DOMAIN;
  if (!ort && ensure_gemm_function(c, d, name))
    return c->diag->status;
  if (tc_model_opset(c->model, domain) < 1 && tc_model_set_opset(c->model, domain, 1))
    return tc_pass_nomem(c);
  /* ONNX Runtime's function inliner crashes on an omitted optional input:
   * a Gemm without C gets a zero. */
  bool has_c = gemm->n_inputs > 2 && gemm->inputs[2];
  tc_value *zero = NULL;
  if (!has_c && !ort) {
    static const float z[1] = {0};
    int64_t one = 1;
    if (!(zero = tc_pass_new_const_f32(g, "gemm_c", z, 1, &one)))
      return tc_pass_nomem(c);
  }
  tc_node *f = tc_graph_insert_node(g, gemm, name, domain, gemm->name, zero ? 3 : gemm->n_inputs, 1,
                                    gemm->n_attrs + np + ort);
  if (!f)
    return tc_pass_nomem(c);
  for (size_t i = 0; i < gemm->n_attrs; i++)
    tc_node_copy_attr(f, i, &gemm->attrs[i]);
  size_t k = gemm->n_attrs;
  if (ort && tc_node_set_attr_string(f, k++, "activation", d->op))
    return tc_pass_nomem(c);
  for (size_t i = 0; i < np; i++)
    if (tc_node_set_attr_float(f, k++, gemm_param(d, i), p[i]))
      return tc_pass_nomem(c);
  for (size_t i = 0; i < gemm->n_inputs; i++)
    if (tc_node_set_input(f, i, gemm->inputs[i]))
      return tc_pass_nomem(c);
  if (zero && tc_node_set_input(f, 2, zero))
    return tc_pass_nomem(c);
  tc_value *y = act->outputs[0];
  tc_node_remove(act);
  tc_node_remove(gemm);
  if (tc_node_set_output(f, 0, y))
    return tc_pass_nomem(c);
  tc_pass_count(c, "Gemm+activation", 1);
  return TC_STATUS_OK;
}

static const act_def *act_of(const tc_node *n) {
  if (n && n->op_type && !strcmp(n->op_type, "QuickGelu") &&
      (tc_domain_equal(n->domain, TACOC_DOMAIN) || tc_domain_equal(n->domain, "com.microsoft")) &&
      tc_attr_float(n, "alpha", 1.702f) == 1.0f)
    return &acts[sizeof acts / sizeof *acts - 1]; /* SiLU */
  if (!n || !tc_domain_is_onnx(n->domain))
    return NULL;
  for (size_t i = 0; i < sizeof acts / sizeof *acts; i++)
    if (strcmp(n->op_type, acts[i].op) == 0)
      return &acts[i];
  return NULL;
}

/* The residual form: conv -> Add(other) [-> activation], other of the conv
 * output's (known) shape; sets *z and *act (NULL: no activation follows). */
static tc_node *residual_add(tc_pass_ctx *c, tc_shapes **s, tc_graph *g, tc_node *conv,
                             tc_value **z, tc_node **act) {
  tc_node *add = tc_single_consumer(conv->outputs[0]);
  if (!tc_is_op(add, "Add") || add->n_inputs != 2)
    return NULL;
  tc_value *other = add->inputs[0] == conv->outputs[0] ? add->inputs[1] : add->inputs[0];
  tc_node *a = tc_single_consumer(add->outputs[0]);
  if (!other || other == conv->outputs[0] || tc_value_const(other))
    return NULL;
  if (!act_of(a) || a->inputs[0] != add->outputs[0])
    a = NULL; /* no activation to take along: Conv + Add alone */
  if (!*s && !(*s = tc_shapes_infer(g)))
    return NULL;
  const tc_shape *zs = tc_shape_of(*s, other), *ys = tc_shape_of(*s, conv->outputs[0]);
  bool same = zs->known && ys->known && zs->rank == ys->rank;
  for (size_t i = 0; same && i < zs->rank; i++)
    same = tc_sdim_eq(zs->dims[i], ys->dims[i]);
  if (!same) {
    tc_pass_explain(c, add,
                    "Conv+Add not fused: the added tensor is not known to have the "
                    "convolution's shape");
    return NULL;
  }
  *z = other;
  *act = a;
  return add;
}

tc_status tc_pass_fuse_conv_activation(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *conv = g->first, *next; conv && !st; conv = next) {
    next = conv->next;
    if (!tc_is_op(conv, "Conv") || conv->n_inputs < 2 || conv->n_outputs != 1)
      continue;
    tc_value *z = NULL;
    tc_node *act = tc_single_consumer(conv->outputs[0]);
    /* the full QDQ form of static int8 (for ONNX Runtime) wants Conv, Add apart */
    tc_node *add = c->opt && c->opt->qdq_outputs ? NULL : residual_add(c, &s, g, conv, &z, &act);
    const act_def *d = add && !act ? &no_act : act_of(act);
    if (!d || (!add && act->inputs[0] != conv->outputs[0]))
      continue;
    const tc_tensor *w = tc_value_const(conv->inputs[1]);
    int32_t dt = tc_value_dtype(conv->inputs[0]);
    float p[2];
    if (!w || w->dtype != TC_DTYPE_F32 || (dt && dt != TC_DTYPE_F32) || !act_params(d, act, p)) {
      tc_pass_explain(c, act ? act : add,
                      "Conv+%s not fused: needs float32 constant weights and constant "
                      "activation parameters",
                      act ? act->op_type : "Add");
      continue;
    }
    while (next && (next == act || next == add))
      next = next->next;
    st = fuse(c, g, conv, add, z, act, d, p);
  }
  for (tc_node *gemm = g->first, *next; gemm && !st; gemm = next) {
    next = gemm->next;
    if (!tc_is_op(gemm, "Gemm") || gemm->n_inputs < 2 || gemm->n_outputs != 1)
      continue;
    tc_node *act = tc_single_consumer(gemm->outputs[0]);
    const act_def *d = act_of(act);
    if (!d || act->inputs[0] != gemm->outputs[0])
      continue;
    const tc_tensor *b = tc_value_const(gemm->inputs[1]);
    int32_t dt = tc_value_dtype(gemm->inputs[0]);
    float p[2];
    if (!b || b->dtype != TC_DTYPE_F32 || (dt && dt != TC_DTYPE_F32) || !act_params(d, act, p)) {
      tc_pass_explain(c, act,
                      "Gemm+%s not fused: needs a float32 constant B and constant activation "
                      "parameters",
                      act->op_type);
      continue;
    }
    while (next && next == act)
      next = next->next;
    st = fuse_gemm(c, g, gemm, act, d, p);
  }
  tc_shapes_free(s);
  return st;
}
