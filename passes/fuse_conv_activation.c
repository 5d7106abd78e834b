/* fuse-conv-activation: Conv followed by its activation, as one op.
 *
 *   x ─▶ Conv(W, B) ─▶ t ─▶ Relu | LeakyRelu | Clip | Sigmoid | HardSigmoid | HardSwish | Tanh ─▶ y
 *   ⇒   x ─▶ ai.tacoc.Conv<Act>(W, B; Conv's attributes, the activation's) ─▶ y
 *       (--compat ort: com.microsoft.FusedConv(activation, activation_params))
 *
 * ONNX has no fused form, so the op is tacoc's own, and the model carries its
 * decomposition as a model-local function (ai.tacoc.Conv<Act>: Conv with the
 * caller's attributes by reference, then the activation), so that any
 * runtime without tacoc's kernel inlines it; libtacort runs it as one
 * oneDNN convolution with a post-op. Conditions: float32 Conv with constant
 * weights, t read only by the activation, Clip bounds constant scalars. */
#include <math.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"

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
};

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

/* A body attribute that refers to the caller's attribute of the same name. */
static void ref_attr(tc_node *n, size_t slot, const char *name, int type) {
  tc_attr *a = &n->attrs[slot];
  *a = (tc_attr){.name = name, .type = type, .ref_attr_name = name};
}

/* Adds ai.tacoc.Conv<Act> as a model-local function unless the model has it. */
static tc_status ensure_function(tc_pass_ctx *c, const act_def *d, const char *name) {
  tc_model *m = c->model;
  if (tc_model_find_function(m, TACOC_DOMAIN, name))
    return TC_STATUS_OK;
  tc_function *f = tc_model_add_function(m, TACOC_DOMAIN, name);
  if (!f)
    return tc_pass_nomem(c);
  tc_graph *b = f->body;
  tc_arena *a = m->arena;
  size_t np = d->params[1] ? 2 : d->params[0] ? 1 : 0;
  f->n_attr_names = N_CONV_ATTRS + np;
  f->attr_names = tc_arena_alloc(a, f->n_attr_names * sizeof *f->attr_names);
  f->opsets = tc_arena_alloc(a, sizeof *f->opsets);
  tc_value *x = tc_graph_new_value(b, "X", NULL), *w = tc_graph_new_value(b, "W", NULL),
           *bias = tc_graph_new_value(b, "B", NULL), *t = tc_graph_new_value(b, "T", NULL),
           *y = tc_graph_new_value(b, "Y", NULL);
  tc_node *conv = tc_graph_append_node(b, "Conv", "", NULL, 3, 1, N_CONV_ATTRS);
  if (!f->attr_names || !f->opsets || !x || !w || !bias || !t || !y || !conv)
    return tc_pass_nomem(c);
  f->opsets[0] = (tc_opset){.domain = "", .version = tc_model_opset(m, "")};
  f->n_opsets = 1;
  for (size_t i = 0; i < N_CONV_ATTRS; i++) {
    f->attr_names[i] = conv_attrs[i];
    ref_attr(conv, i, conv_attrs[i], conv_attr_types[i]);
  }
  for (size_t i = 0; i < np; i++)
    f->attr_names[N_CONV_ATTRS + i] = d->params[i];
  bool clip = strcmp(d->op, "Clip") == 0;
  tc_node *act = tc_graph_append_node(b, d->op, "", NULL, clip ? 3 : 1, 1, clip ? 0 : np);
  if (!act || tc_graph_add_input(b, x, NULL) || tc_graph_add_input(b, w, NULL) ||
      tc_graph_add_input(b, bias, NULL) || tc_node_set_input(conv, 0, x) ||
      tc_node_set_input(conv, 1, w) || tc_node_set_input(conv, 2, bias) ||
      tc_node_set_output(conv, 0, t) || tc_node_set_input(act, 0, t) ||
      tc_node_set_output(act, 0, y) || tc_graph_add_output(b, y, NULL))
    return tc_pass_nomem(c);
  if (!clip) {
    for (size_t i = 0; i < np; i++)
      ref_attr(act, i, d->params[i], ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    return TC_STATUS_OK;
  }
  /* Clip takes its bounds as inputs: Constant(value_float = @min / @max). */
  for (int i = 0; i < 2; i++) {
    tc_value *bound = tc_graph_new_value(b, i ? "Max" : "Min", NULL);
    tc_node *k = tc_graph_insert_node(b, act, "Constant", "", NULL, 0, 1, 1);
    if (!bound || !k || tc_node_set_output(k, 0, bound) || tc_node_set_input(act, 1 + i, bound))
      return tc_pass_nomem(c);
    k->attrs[0] = (tc_attr){.name = "value_float",
                            .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
                            .ref_attr_name = d->params[i]};
  }
  return TC_STATUS_OK;
}

static tc_status fuse(tc_pass_ctx *c, tc_graph *g, tc_node *conv, tc_node *act, const act_def *d,
                      const float *p) {
  bool ort = c->opt && c->opt->compat_ort;
  char name[64];
  snprintf(name, sizeof name, ort ? "FusedConv" : "Conv%s", d->op);
  size_t np = d->params[1] ? 2 : d->params[0] ? 1 : 0;
  if (strcmp(d->op, "Clip") == 0 && (isinf(p[0]) || isinf(p[1])))
    np = 0; /* unbounded Clip: keep the op's own defaults */
  if (ort && strcmp(d->op, "HardSwish") == 0) {
    tc_pass_explain(c, act, "ONNX Runtime's FusedConv has no HardSwish");
    return TC_STATUS_OK;
  }
  const char *domain = ort ? "com.microsoft" : TACOC_DOMAIN;
  if (!ort && ensure_function(c, d, name))
    return c->diag->status;
  if (tc_model_opset(c->model, domain) < 1 && tc_model_set_opset(c->model, domain, 1))
    return tc_pass_nomem(c);
  size_t extra = ort ? 1 + (np > 0) : np;
  tc_node *f = tc_graph_insert_node(g, conv, name, domain, conv->name, conv->n_inputs, 1,
                                    conv->n_attrs + extra);
  if (!f)
    return tc_pass_nomem(c);
  for (size_t i = 0; i < conv->n_attrs; i++)
    tc_node_copy_attr(f, i, &conv->attrs[i]);
  size_t k = conv->n_attrs;
  if (ort) {
    if (tc_node_set_attr_string(f, k++, "activation", d->op) ||
        (np && tc_node_set_attr_floats(f, k++, "activation_params", p, np)))
      return tc_pass_nomem(c);
  } else {
    for (size_t i = 0; i < np; i++)
      if (tc_node_set_attr_float(f, k++, d->params[i], p[i]))
        return tc_pass_nomem(c);
  }
  for (size_t i = 0; i < conv->n_inputs; i++)
    if (tc_node_set_input(f, i, conv->inputs[i]))
      return tc_pass_nomem(c);
  tc_value *y = act->outputs[0];
  tc_node_remove(act);
  tc_node_remove(conv);
  if (tc_node_set_output(f, 0, y))
    return tc_pass_nomem(c);
  tc_pass_count(c, d->op, 1);
  return TC_STATUS_OK;
}

tc_status tc_pass_fuse_conv_activation(tc_pass_ctx *c, tc_graph *g) {
  for (tc_node *conv = g->first, *next; conv; conv = next) {
    next = conv->next;
    if (!tc_is_op(conv, "Conv") || conv->n_inputs < 2 || conv->n_outputs != 1)
      continue;
    tc_node *act = tc_single_consumer(conv->outputs[0]);
    if (!act || !tc_domain_is_onnx(act->domain))
      continue;
    const act_def *d = NULL;
    for (size_t i = 0; i < sizeof acts / sizeof *acts && !d; i++)
      if (strcmp(act->op_type, acts[i].op) == 0)
        d = &acts[i];
    if (!d || act->inputs[0] != conv->outputs[0])
      continue;
    const tc_tensor *w = tc_value_const(conv->inputs[1]);
    int32_t dt = tc_value_dtype(conv->inputs[0]);
    float p[2];
    if (!w || w->dtype != TC_DTYPE_F32 || (dt && dt != TC_DTYPE_F32) || !act_params(d, act, p)) {
      tc_pass_explain(c, act,
                      "Conv+%s not fused: needs float32 constant weights and constant "
                      "activation parameters",
                      act->op_type);
      continue;
    }
    if (next == act)
      next = act->next;
    tc_status st = fuse(c, g, conv, act, d, p);
    if (st)
      return st;
  }
  return TC_STATUS_OK;
}
