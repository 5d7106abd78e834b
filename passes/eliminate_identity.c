/* eliminate-identity: nodes that pass their input through unchanged.
 *
 *   x ─▶ Identity ─▶ y ─▶ ...        ⇒        x ─▶ ...
 *
 * Removes Identity; Dropout in inference mode (no training_mode input, or a
 * constant false one; opsets before 7 only with is_test=1) whose mask output
 * nobody reads; Cast to the type its input already has (declared, or known
 * to shape inference: openai-whisper's x.float() around LayerNorm and
 * softmax, exported on float32 values); Sum of one input. A Sum of two
 * inputs becomes the Add it is (caffe2's ResNet-50 sums its residuals: as
 * Add, the fusions and libtacort's channels-last values take them).
 * When y is a graph output, the producer of x writes y instead; when x is
 * itself a graph input or output the node stays. */
#include "pass.h"
#include "shapes.h"

static bool dropout_is_identity(const tc_node *n, int64_t opset) {
  if (n->n_outputs > 1 && n->outputs[1] &&
      (n->outputs[1]->n_uses || (n->outputs[1]->flags & TC_VALUE_OUTPUT)))
    return false;
  if (opset < 7) {
    const tc_attr *a = tc_node_attr(n, "is_test");
    return a && a->i != 0;
  }
  if (n->n_inputs > 2 && n->inputs[2]) {
    double mode;
    return tc_const_scalar(tc_value_const(n->inputs[2]), &mode) && mode == 0;
  }
  return true;
}

tc_status tc_pass_eliminate_identity(tc_pass_ctx *c, tc_graph *g) {
  int64_t opset = tc_model_opset(c->model, "");
  tc_shapes *sh = NULL; /* inferred on the first Cast whose input type is not declared */
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (n->n_inputs < 1 || !n->inputs[0] || n->n_outputs < 1 || !n->outputs[0])
      continue;
    const char *kind = NULL;
    if (tc_is_op(n, "Sum") && n->n_outputs == 1 && opset >= 6 && n->n_inputs == 2 && n->inputs[1]) {
      tc_value *a = n->inputs[0], *b = n->inputs[1], *y = n->outputs[0];
      tc_node *add = tc_graph_insert_node(g, n, "Add", "", n->name, 2, 1, 0);
      if (!add)
        return tc_pass_nomem(c);
      tc_node_remove(n);
      if (tc_node_set_input(add, 0, a) || tc_node_set_input(add, 1, b) ||
          tc_node_set_output(add, 0, y))
        return tc_pass_nomem(c);
      tc_pass_count(c, "Sum as Add", 1);
      continue;
    }
    if ((tc_is_op(n, "Identity") || (tc_is_op(n, "Sum") && n->n_inputs == 1)) &&
        n->n_outputs == 1) {
      kind = tc_is_op(n, "Sum") ? "Sum" : "Identity";
    } else if (tc_is_op(n, "Dropout") && dropout_is_identity(n, opset)) {
      kind = "Dropout";
    } else if (tc_is_op(n, "Cast") && n->n_outputs == 1) {
      const tc_attr *to = tc_node_attr(n, "to");
      int32_t from = tc_value_dtype(n->inputs[0]);
      if (to && !from) {
        if (!sh && !(sh = tc_shapes_infer(g)))
          return TC_STATUS_NOMEM;
        from = tc_shape_of(sh, n->inputs[0])->dtype;
      }
      if (to && from && to->i == from)
        kind = "Cast";
    }
    if (!kind)
      continue;
    if (tc_pass_bypass(n, n->inputs[0], n->outputs[0]))
      tc_pass_count(c, kind, 1);
    else
      tc_pass_explain(c, n, "input and output are both graph inputs/outputs");
  }
  tc_shapes_free(sh);
  return TC_STATUS_OK;
}
