/* Raising the default-domain opset of a model so that fused standard ops
 * (LayerNormalization 17, Gelu 20, ...) can be used.
 *
 * Raising from version a to b is exact when no op in the model (subgraphs
 * included) changed meaning at a version in (a, b]: most new op versions only
 * add types or optional inputs, but some turned attributes into inputs or
 * changed defaults. The table lists those breaking versions; an op of the
 * default domain that the table does not know is assumed to have none only
 * when libtacort has a kernel whose lowest version is at or below a — which
 * is how we know its history — and otherwise refuses the raise.
 *
 * Some changes have an exact rewrite (an adapter): Reduce*, Squeeze and
 * Unsqueeze take axes as an input (13, 18), Split takes split as an input
 * (13) and wants num_outputs for an even split (18), Softmax over an axis
 * after which every dim is 1 means the same before and after 13. The raise first checks every node,
 * then applies the adapters, so a model is either upgraded whole or untouched. Adapters edit nodes
 * in place, so passes holding pointers to matched nodes keep valid ones. */
#include <stdio.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

/* Rewrites node n so that it means the same at `version` (a version at which
 * its op changed); with dry_run only says whether it can. */
typedef bool (*adapter_fn)(tc_pass_ctx *c, tc_node *n, int version, bool dry_run);

static bool adapt_axes_to_input(tc_pass_ctx *c, tc_node *n, int version, bool dry_run);
static bool adapt_split(tc_pass_ctx *c, tc_node *n, int version, bool dry_run);
static bool adapt_softmax(tc_pass_ctx *c, tc_node *n, int version, bool dry_run);
static bool adapt_batchnorm(tc_pass_ctx *c, tc_node *n, int version, bool dry_run);

/* Versions at which an op's meaning changed incompatibly with the previous
 * one, and the adapter that rewrites a node across them (NULL: none). */
static const struct {
  const char *op;
  int v[3];
  adapter_fn adapt;
} breaking[] = {
    {"ReduceMean", {18}, adapt_axes_to_input},
    {"ReduceMax", {18}, adapt_axes_to_input},
    {"ReduceMin", {18}, adapt_axes_to_input},
    {"ReduceProd", {18}, adapt_axes_to_input},
    {"ReduceL1", {18}, adapt_axes_to_input},
    {"ReduceL2", {18}, adapt_axes_to_input},
    {"ReduceLogSum", {18}, adapt_axes_to_input},
    {"ReduceLogSumExp", {18}, adapt_axes_to_input},
    {"ReduceSumSquare", {18}, adapt_axes_to_input},
    {"ReduceSum", {13}, adapt_axes_to_input},
    {"Squeeze", {13}, adapt_axes_to_input},
    {"Unsqueeze", {13}, adapt_axes_to_input},
    {"Split", {13, 18}, adapt_split},
    {"Softmax", {13}, adapt_softmax},
    {"LogSoftmax", {13}, adapt_softmax},
    {"Hardmax", {13}, adapt_softmax},
    {"Pad", {11}, NULL},
    {"Resize", {11}, NULL},
    {"Slice", {10}, NULL},
    {"Upsample", {10}, NULL},
    {"TopK", {10}, NULL},
    {"Clip", {11}, NULL},
    {"Dropout", {12}, NULL},
    {"GroupNormalization", {21}, NULL},
    {"DFT", {20}, NULL},
    {"GridSample", {20}, NULL},
    {"RoiAlign", {16}, NULL},
    {"Scatter", {11}, NULL},
    {"Tile", {6}, NULL},
    {"Reshape", {5}, NULL},
    {"Cast", {6}, NULL},
    {"Gemm", {7}, NULL},
    {"Concat", {4}, NULL},
    {"BatchNormalization", {7, 9, 14}, adapt_batchnorm},
    {"Scan", {9}, NULL},
};

/* Reduce*, Squeeze, Unsqueeze: the axes attribute becomes input 1. */
static bool adapt_axes_to_input(tc_pass_ctx *c, tc_node *n, int version, bool dry_run) {
  (void)version;
  const tc_attr *axes = tc_node_attr(n, "axes");
  if (!axes)
    return true; /* no attribute: the input form means the same */
  if (n->n_inputs != 1)
    return false;
  if (dry_run)
    return true;
  int64_t count = (int64_t)axes->n_ints;
  tc_value *k = tc_pass_new_const_i64(n->graph, "axes", axes->ints, 1, &count);
  if (!k || tc_node_resize(n, 2, n->n_attrs) || tc_node_set_input(n, 1, k))
    return false;
  tc_node_remove_attr(n, "axes");
  tc_pass_count(c, "node upgraded", 1);
  return true;
}

/* Split: at 13 the split attribute becomes input 1; at 18 an even split
 * without it needs num_outputs (opset 13 required it to be even). */
static bool adapt_split(tc_pass_ctx *c, tc_node *n, int version, bool dry_run) {
  const tc_attr *split = tc_node_attr(n, "split");
  bool has_input = n->n_inputs > 1 && n->inputs[1];
  if (dry_run)
    return true;
  if (version == 13 && split) {
    int64_t count = (int64_t)split->n_ints;
    tc_value *k = tc_pass_new_const_i64(n->graph, "split", split->ints, 1, &count);
    if (!k || tc_node_resize(n, 2, n->n_attrs) || tc_node_set_input(n, 1, k))
      return false;
    tc_node_remove_attr(n, "split");
  } else if (version == 18 && !split && !has_input && !tc_node_attr(n, "num_outputs")) {
    size_t na = n->n_attrs;
    if (tc_node_resize(n, n->n_inputs, na + 1) ||
        tc_node_set_attr_int(n, na, "num_outputs", (int64_t)n->n_outputs))
      return false;
  } else {
    return true;
  }
  tc_pass_count(c, "node upgraded", 1);
  return true;
}

/* Softmax before 13 flattened to 2-D at axis (default 1); when every dim
 * after that axis is 1 (the axis is the last one, or a classifier's
 * [N, C, 1, 1]), it is what 13 computes over that axis alone. The axis is
 * then written out: 13's default is -1, not 1. */
static bool adapt_softmax(tc_pass_ctx *c, tc_node *n, int version, bool dry_run) {
  (void)version;
  int64_t axis = tc_attr_int(n, "axis", 1);
  if (axis == -1)
    return true;
  tc_shapes *s = tc_shapes_infer(n->graph);
  const tc_shape *x = s ? tc_shape_of(s, n->inputs[0]) : NULL;
  int64_t r = x && x->known ? (int64_t)x->rank : 0, a = axis < 0 ? axis + r : axis;
  bool ones = r > 0 && a >= 0 && a < r;
  for (int64_t d = a + 1; ones && d < r; d++)
    ones = tc_sdim_is(x->dims[d], 1);
  tc_shapes_free(s);
  if (!ones || dry_run || tc_node_attr(n, "axis"))
    return ones;
  size_t na = n->n_attrs;
  if (tc_node_resize(n, n->n_inputs, na + 1) || tc_node_set_attr_int(n, na, "axis", axis))
    return false;
  tc_pass_count(c, "node upgraded", 1);
  return true;
}

/* BatchNormalization 14 added training_mode (default 0) and gave its extra
 * outputs new meanings; one computing only Y (inference) means the same
 * before and after. Its earlier breaks (7, 9) have no rewrite. */
static bool adapt_batchnorm(tc_pass_ctx *c, tc_node *n, int version, bool dry_run) {
  (void)c, (void)dry_run;
  if (version != 14)
    return false;
  for (size_t i = 1; i < n->n_outputs; i++)
    if (n->outputs[i])
      return false;
  return true;
}

/* Lowest opset the kernel registry knows for op; 0 if none. */
static int kernel_since(const char *op) {
  for (int v = 1; v <= 30; v++)
    if (tc_kernel_find(op, "", v))
      return v;
  return 0;
}

/* Checks (dry_run) or applies the changes that node n needs to move from
 * version a to b; false when it cannot move. */
static bool node_moves(tc_pass_ctx *c, tc_node *n, int64_t a, int64_t b, bool dry_run) {
  for (size_t i = 0; i < sizeof breaking / sizeof *breaking; i++) {
    if (strcmp(breaking[i].op, n->op_type) != 0)
      continue;
    for (int k = 0; k < 3 && breaking[i].v[k]; k++) {
      int v = breaking[i].v[k];
      if (v > a && v <= b && (!breaking[i].adapt || !breaking[i].adapt(c, n, v, dry_run)))
        return false;
    }
    return true;
  }
  int since = kernel_since(n->op_type);
  return since && since <= a;
}

/* Name of an op that cannot move (dry_run), or NULL; applies the changes
 * otherwise. */
static const char *graph_moves(tc_pass_ctx *c, tc_graph *g, int64_t a, int64_t b, bool dry_run) {
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    for (size_t i = 0; i < n->n_attrs; i++) {
      tc_attr *at = &n->attrs[i];
      size_t ng = at->g ? 1 : at->n_graphs;
      for (size_t k = 0; k < ng; k++) {
        const char *why = graph_moves(c, at->g ? at->g : at->graphs[k], a, b, dry_run);
        if (why)
          return why;
      }
    }
    if (tc_domain_is_onnx(n->domain) && !node_moves(c, n, a, b, dry_run))
      return n->op_type;
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
  const char *op = graph_moves(c, m->graph, cur, v, true);
  if (!op && graph_moves(c, m->graph, cur, v, false))
    op = "(an adapter failed)";
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
  /* Functions tacoc made in this run, and tacoc's own ones read from a file
   * (ai.tacoc decompositions of fused ops), follow the model: their bodies
   * use Conv, activations, Add and LayerNormalization, whose meaning does not
   * change in between; ONNX requires a function's default-domain opset to be
   * the model's. */
  for (size_t i = 0; i < m->n_functions; i++) {
    tc_function *f = &m->functions[i];
    if (f->pb && !tc_domain_equal(f->domain, "ai.tacoc"))
      continue;
    for (size_t k = 0; k < f->n_opsets; k++)
      if (tc_domain_is_onnx(f->opsets[k].domain) && f->opsets[k].version < v)
        f->opsets[k].version = v;
  }
  /* IR versions go with opsets; opset 17+ needs IR 8, 20+ IR 9, 23+ IR 11. */
  int64_t ir = v >= 23 ? 11 : v >= 21 ? 10 : v >= 20 ? 9 : v >= 17 ? 8 : 7;
  if (m->ir_version < ir)
    m->ir_version = ir;
  tc_pass_count(c, "opset raised", 1);
  return true;
}
