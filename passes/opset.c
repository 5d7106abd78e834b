/* Raising the default-domain opset of a model so that fused standard ops
 * (LayerNormalization 17, Gelu 20, ...) can be used.
 *
 * Raising from version a to b is exact when no op in the model (subgraphs
 * included) changed meaning at a version in (a, b]: most new op versions only
 * add types or optional inputs, but some turned attributes into inputs or
 * changed defaults. The table lists those breaking versions; an op of the
 * default domain that the table does not know is assumed to have none only
 * when libtacort has a kernel whose lowest version is at or below a — which
 * is how we know its history — and otherwise refuses the raise. */
#include <stdio.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"

/* Versions at which an op's meaning changed incompatibly with the previous one. */
static const struct {
  const char *op;
  int v[3];
} breaking[] = {
    {"ReduceMean", {18}},
    {"ReduceMax", {18}},
    {"ReduceMin", {18}},
    {"ReduceProd", {18}},
    {"ReduceL1", {18}},
    {"ReduceL2", {18}},
    {"ReduceLogSum", {18}},
    {"ReduceLogSumExp", {18}},
    {"ReduceSumSquare", {18}},
    {"ReduceSum", {13}},
    {"Split", {13, 18}},
    {"Squeeze", {13}},
    {"Unsqueeze", {13}},
    {"Pad", {11}},
    {"Resize", {11}},
    {"Slice", {10}},
    {"Upsample", {10}},
    {"TopK", {10}},
    {"Clip", {11}},
    {"Dropout", {12}},
    {"Softmax", {13}},
    {"LogSoftmax", {13}},
    {"Hardmax", {13}},
    {"GroupNormalization", {21}},
    {"DFT", {20}},
    {"GridSample", {20}},
    {"RoiAlign", {16}},
    {"Scatter", {11}},
    {"Tile", {6}},
    {"Reshape", {5}},
    {"Cast", {6}},
    {"Gemm", {7}},
    {"Concat", {4}},
    {"BatchNormalization", {7, 9, 14}},
    {"Scan", {9}},
};

/* Lowest opset the kernel registry knows for op; 0 if none. */
static int kernel_since(const char *op) {
  for (int v = 1; v <= 30; v++)
    if (tc_kernel_find(op, "", v))
      return v;
  return 0;
}

/* Why op cannot move from version a to b, or NULL when it can. */
static const char *op_blocks(const char *op, int64_t a, int64_t b) {
  for (size_t i = 0; i < sizeof breaking / sizeof *breaking; i++) {
    if (strcmp(breaking[i].op, op) != 0)
      continue;
    for (int k = 0; k < 3 && breaking[i].v[k]; k++)
      if (breaking[i].v[k] > a && breaking[i].v[k] <= b)
        return op;
    return NULL;
  }
  int since = kernel_since(op);
  return since && since <= a ? NULL : op;
}

static const char *graph_blocks(const tc_graph *g, int64_t a, int64_t b) {
  for (const tc_node *n = g->first; n; n = n->next) {
    if (tc_domain_is_onnx(n->domain)) {
      const char *why = op_blocks(n->op_type, a, b);
      if (why)
        return why;
    }
    for (size_t i = 0; i < n->n_attrs; i++) {
      const tc_attr *at = &n->attrs[i];
      size_t ng = at->g ? 1 : at->n_graphs;
      for (size_t k = 0; k < ng; k++) {
        const char *why = graph_blocks(at->g ? at->g : at->graphs[k], a, b);
        if (why)
          return why;
      }
    }
  }
  return NULL;
}

bool tc_pass_require_opset(tc_pass_ctx *c, int64_t v, const char **why) {
  tc_model *m = c->model;
  int64_t cur = tc_model_opset(m, "");
  if (cur >= v)
    return true;
  if (cur < 7) {
    *why = "the model's opset is below 7";
    return false;
  }
  const char *op = graph_blocks(m->graph, cur, v);
  if (op) {
    snprintf(c->why, sizeof c->why, "raising opset %lld to %lld would change the meaning of %s",
             (long long)cur, (long long)v, op);
    *why = c->why;
    return false;
  }
  if (tc_model_set_opset(m, "", v) != 0) {
    *why = "out of memory";
    return false;
  }
  /* IR versions go with opsets; opset 17+ needs IR 8, 20+ IR 9, 23+ IR 11. */
  int64_t ir = v >= 23 ? 11 : v >= 21 ? 10 : v >= 20 ? 9 : v >= 17 ? 8 : 7;
  if (m->ir_version < ir)
    m->ir_version = ir;
  tc_pass_count(c, "opset raised", 1);
  return true;
}
