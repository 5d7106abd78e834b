/* fold-constants: a node whose inputs are all constant is evaluated now.
 *
 *   const A ─┐
 *            ├─▶ Op ─▶ y        ⇒        initializer y = Op(A, B)
 *   const B ─┘
 *
 * Evaluation goes through libtacort's own kernels (runtime/eval.h), so the
 * folded value is what the runtime would have computed. Not folded: nodes
 * without inputs, nodes with subgraphs, random ops, ops without a kernel,
 * and results above the size cap (--fold-limit, default 1 MiB) so that
 * folding never inflates the model (e.g. Expand of a scalar) — unless the
 * results take no more bytes than the initializers only this node reads,
 * which folding removes (a Reshape or Transpose of a large weight). Nodes
 * are visited in order, so chains fold in one sweep.
 *
 * DequantizeLinear is never folded: in a QDQ model (tacoc's static int8,
 * onnxruntime.quantization's, TensorRT's input) DequantizeLinear of an int8
 * initializer is how a quantized weight is stored. Folded, the weight
 * becomes float32 (four times the bytes) and the convolution or MatMul
 * reading it is no longer a QDQ group, so libtacort and ONNX Runtime both
 * run it in float32 (a ResNet-50 quantized by onnxruntime.quantization lost
 * 36 of its 53 int8 convolutions to -O2). libtacort computes what is left
 * once, when it loads the model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval.h"
#include "pass.h"

static bool foldable(const tc_node *n) {
  if (!n->n_inputs)
    return false;
  for (size_t i = 0; i < n->n_attrs; i++)
    if (n->attrs[i].g || n->attrs[i].n_graphs)
      return false;
  if (tc_op_is_random(n) || tc_is_op(n, "DequantizeLinear"))
    return false;
  bool any = false;
  for (size_t i = 0; i < n->n_inputs; i++) {
    if (!n->inputs[i])
      continue;
    if (!tc_value_const(n->inputs[i]))
      return false;
    any = true;
  }
  for (size_t i = 0; i < n->n_outputs; i++)
    if (n->outputs[i] && (n->outputs[i]->flags & TC_VALUE_INPUT))
      return false;
  return any;
}

/* Upper bound on the elements of the result for ops that can expand a small
 * input into a large output; SIZE_MAX when not known. */
static size_t expanded_numel(const tc_node *n) {
  int64_t *v = NULL;
  size_t total = SIZE_MAX;
  if (tc_is_op(n, "ConstantOfShape") || tc_is_op(n, "Expand")) {
    ptrdiff_t k = tc_const_ints(tc_value_const(n->inputs[n->n_inputs > 1 ? 1 : 0]), &v);
    if (k >= 0) {
      total = 1;
      for (ptrdiff_t i = 0; i < k; i++)
        total = v[i] > 0 && total < ((size_t)1 << 40) ? total * (size_t)v[i] : total;
    }
  }
  free(v);
  return total;
}

/* Whether some node of g holds a subgraph (whose reads of g's values are
 * not among their uses). */
static bool has_subgraphs(const tc_graph *g) {
  for (const tc_node *n = g->first; n; n = n->next)
    for (size_t i = 0; i < n->n_attrs; i++)
      if (n->attrs[i].g || n->attrs[i].n_graphs)
        return true;
  return false;
}

/* Whether v is an initializer of g (not of an outer scope) read by `uses`
 * nodes and nothing else (not a graph output or input, g without
 * subgraphs). */
static bool only_here(const tc_graph *g, const tc_value *v, size_t uses) {
  return v->init && v->graph == g && v->n_uses == uses &&
         !(v->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT)) && !has_subgraphs(g);
}

/* Bytes of the initializers that folding n leaves unused: the model does not
 * grow when the results take no more (a Reshape, Transpose or Squeeze of a
 * weight above the fold limit: GoogLeNet's 4 MB classifier). */
static size_t freed_bytes(const tc_node *n) {
  size_t b = 0;
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_value *v = n->inputs[i];
    bool first = true; /* an input read twice by n counts once */
    for (size_t k = 0; k < i; k++)
      first = first && n->inputs[k] != v;
    if (v && first && only_here(n->graph, v, 1))
      b += tc_dtype_bytes(v->init->dtype, tc_tensor_numel(v->init));
  }
  return b;
}

tc_status tc_pass_fold_constants(tc_pass_ctx *c, tc_graph *g) {
  size_t limit = c->opt && c->opt->fold_limit ? c->opt->fold_limit : (size_t)1 << 20;
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (!foldable(n))
      continue;
    size_t guess = expanded_numel(n);
    if (guess != SIZE_MAX && guess > limit) {
      tc_pass_explain(c, n, "result of about %zu elements is above the fold limit", guess);
      continue;
    }
    const tc_tensor *in[64];
    tc_tensor *out[16];
    if (n->n_inputs > 64 || n->n_outputs > 16)
      continue;
    for (size_t i = 0; i < n->n_inputs; i++)
      in[i] = n->inputs[i] ? tc_value_const(n->inputs[i]) : NULL;
    tc_diag *d = tc_diag_new();
    if (!d)
      return tc_pass_nomem(c);
    tc_status st = tc_node_eval(n, in, out, d);
    if (st == TC_STATUS_NOMEM) {
      tc_diag_free(d);
      return tc_pass_nomem(c);
    }
    if (st != TC_STATUS_OK) {
      /* Left for the runtime, which reports the same error with context. */
      tc_pass_explain(c, n, "not folded: %s", d->reason);
      tc_diag_free(d);
      continue;
    }
    tc_diag_free(d);
    bool small = true, complete = true;
    size_t out_bytes = 0;
    for (size_t i = 0; i < n->n_outputs; i++) {
      size_t b = out[i] ? tc_dtype_bytes(out[i]->dtype, tc_tensor_numel(out[i])) : 0;
      out_bytes += b;
      if (b > limit)
        small = false;
      if (n->outputs[i] && !out[i])
        complete = false; /* an output the kernel left out: keep the node */
    }
    if (!complete)
      continue;
    if (!small && out_bytes > freed_bytes(n)) {
      tc_pass_explain(c, n, "result is above the fold limit of %zu bytes", limit);
      continue;
    }
    tc_value *outs[16], *ins[64];
    size_t no = n->n_outputs, ni = n->n_inputs;
    for (size_t i = 0; i < no; i++)
      outs[i] = n->outputs[i];
    for (size_t i = 0; i < ni; i++)
      ins[i] = n->inputs[i];
    tc_node_remove(n);
    for (size_t i = 0; i < no; i++)
      if (outs[i] && out[i] && tc_value_make_const(outs[i], out[i]) != 0)
        return tc_pass_nomem(c);
    for (size_t i = 0; i < ni; i++)
      if (ins[i] && only_here(g, ins[i], 0))
        tc_graph_remove_init(g, ins[i]);
    tc_pass_count(c, "folded", 1);
  }
  return TC_STATUS_OK;
}
