/* fuse-skip-layernorm: the residual Add before a LayerNormalization, as one op.
 *
 *   a ─┐
 *      ├─▶ Add ─▶ s ─▶ LayerNormalization(gamma, [beta]) ─▶ y        (s may have other readers)
 *   b ─┘
 *   ⇒   a, b ─▶ ai.tacoc.SkipLayerNormalization(gamma, [beta]; axis, epsilon) ─▶ y [, s]
 *
 * ONNX has no fused form, so the op is tacoc's own and the model carries its
 * decomposition as a model-local function (Sum = Add(X, Skip); Y =
 * LayerNormalization(Sum, Scale, B)), which other runtimes inline. Conditions:
 * neither Add input is a constant (that is a bias, not a residual), both have
 * the same known shape (symbolic shape inference: no broadcasting), the
 * LayerNormalization produces only Y. The fused op always has both outputs
 * (ONNX Runtime's function inliner wants every output of the function on the
 * call); Sum keeps s's name and readers when it has any (pre-LN
 * transformers). Runs after fuse-layernorm. With --compat ort (and the last
 * axis normalized) it emits com.microsoft.SkipLayerNormalization instead,
 * the sum as its output 3 when something reads it. */
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

#define TACOC_DOMAIN "ai.tacoc"

static tc_status ensure_function(tc_pass_ctx *c) {
  static const char *const ins[] = {"X", "Skip", "Scale", "B", NULL},
                           *const outs[] = {"Y", "Sum", NULL},
                           *const attrs[] = {"axis", "epsilon", NULL};
  bool exists;
  tc_function *f =
      tc_pass_begin_function(c, TACOC_DOMAIN, "SkipLayerNormalization", ins, outs, attrs, &exists);
  if (exists)
    return TC_STATUS_OK;
  static const char *const add_in[] = {"X", "Skip", NULL}, *const add_out[] = {"Sum", NULL},
                           *const ln_in[] = {"Sum", "Scale", "B", NULL},
                           *const ln_out[] = {"Y", NULL};
  tc_node *add = f ? tc_pass_fn_node(f, "Add", add_in, add_out, 0) : NULL;
  tc_node *ln = add ? tc_pass_fn_node(f, "LayerNormalization", ln_in, ln_out, 2) : NULL;
  if (!ln)
    return tc_pass_nomem(c);
  tc_pass_ref_attr(ln, 0, "axis", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  tc_pass_ref_attr(ln, 1, "epsilon", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  return TC_STATUS_OK;
}

static bool same_known_shape(const tc_shape *a, const tc_shape *b) {
  if (!a->known || !b->known || a->rank != b->rank)
    return false;
  for (size_t i = 0; i < a->rank; i++)
    if (!tc_sdim_eq(a->dims[i], b->dims[i]))
      return false;
  return true;
}

tc_status tc_pass_fuse_skip_layernorm(tc_pass_ctx *c, tc_graph *g) {
  tc_shapes *s = NULL;
  tc_status st = TC_STATUS_OK;
  for (tc_node *ln = g->first, *next; ln; ln = next) {
    next = ln->next;
    if (!tc_is_op(ln, "LayerNormalization") || ln->n_inputs < 2 || !ln->inputs[0] || !ln->inputs[1])
      continue;
    tc_node *add = tc_producer_op(ln->inputs[0], "Add");
    if (!add || add->n_inputs != 2 || !add->inputs[0] || !add->inputs[1] || add->graph != g)
      continue;
    bool extra_out = false;
    for (size_t i = 1; i < ln->n_outputs; i++)
      extra_out |= ln->outputs[i] != NULL;
    if (extra_out || tc_value_const(add->inputs[0]) || tc_value_const(add->inputs[1]))
      continue;
    if (!s && !(s = tc_shapes_infer(g))) {
      st = tc_pass_nomem(c);
      break;
    }
    if (!same_known_shape(tc_shape_of(s, add->inputs[0]), tc_shape_of(s, add->inputs[1]))) {
      tc_pass_explain(c, ln,
                      "skip LayerNorm candidate rejected: the Add's inputs are not "
                      "known to have the same shape");
      continue;
    }
    /* --compat ort: com.microsoft.SkipLayerNormalization normalizes the last
     * axis only and puts the sum at output 3. */
    const tc_shape *xs = tc_shape_of(s, add->inputs[0]);
    int64_t axis = tc_attr_int(ln, "axis", -1);
    bool ort = c->opt && c->opt->compat_ort &&
               (axis == -1 || (xs->known && axis == (int64_t)xs->rank - 1));
    const char *domain = ort ? "com.microsoft" : TACOC_DOMAIN;
    if (!ort && (st = ensure_function(c)))
      break;
    if (tc_model_opset(c->model, domain) < 1 && tc_model_set_opset(c->model, domain, 1)) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_value *sum = add->outputs[0];
    bool sum_read = sum->n_uses > 1 || (sum->flags & TC_VALUE_OUTPUT);
    size_t ni = 4, no = ort ? (sum_read ? 4 : 1) : 2;
    tc_node *f = tc_graph_insert_node(g, ln, "SkipLayerNormalization", domain, ln->name, ni, no,
                                      ort ? 1 : 2);
    if (!f ||
        (ort ? tc_node_set_attr_float(f, 0, "epsilon", tc_attr_float(ln, "epsilon", 1e-5f))
             : (tc_node_set_attr_int(f, 0, "axis", axis) ||
                tc_node_set_attr_float(f, 1, "epsilon", tc_attr_float(ln, "epsilon", 1e-5f))))) {
      st = tc_pass_nomem(c);
      break;
    }
    /* ONNX Runtime's function inliner crashes on an omitted optional input, so
     * a LayerNorm without bias gets explicit zeros (shaped like the scale). */
    tc_value *beta = ln->n_inputs > 2 ? ln->inputs[2] : NULL;
    if (!beta) {
      const tc_tensor *gt = tc_value_const(ln->inputs[1]);
      size_t cnt = gt ? tc_tensor_numel(gt) : 0;
      float *z = gt && gt->dtype == TC_DTYPE_F32 ? calloc(cnt ? cnt : 1, sizeof *z) : NULL;
      beta = z ? tc_pass_new_const_f32(g, "ln_bias", z, gt->rank, gt->dims) : NULL;
      free(z);
      if (!beta) {
        tc_node_remove(f);
        tc_pass_explain(c, ln,
                        "skip LayerNorm candidate rejected: no bias and no float32 "
                        "constant scale to shape one");
        continue;
      }
    }
    tc_value *ins[4] = {add->inputs[0], add->inputs[1], ln->inputs[1], beta};
    tc_value *y = ln->outputs[0];
    if (next == add)
      next = add->next;
    tc_node_remove(ln);
    tc_node_remove(add);
    for (size_t i = 0; i < ni; i++)
      if (tc_node_set_input(f, i, ins[i])) {
        st = tc_pass_nomem(c);
        goto done;
      }
    if (tc_node_set_output(f, 0, y) || (no > 1 && tc_node_set_output(f, no - 1, sum))) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_pass_count(c, "SkipLayerNormalization", 1);
  }
done:
  tc_shapes_free(s);
  return st;
}
