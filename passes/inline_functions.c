/* inline-functions: calls of model-local functions replaced by their bodies
 * (runtime/inline.c has the rules: names, optional inputs, attribute
 * references, nested calls, opset checks).
 *
 *   function local.F(a) -> (b) { t = Mul(a, a); b = LeakyRelu<alpha = @alpha>(t) }
 *
 *   x ─▶ local.F<alpha=0.2> ─▶ y     ⇒     x ─▶ Mul ─▶ t__7 ─▶ LeakyRelu<alpha=0.2> ─▶ y
 *
 * Calls libtacort has a kernel for stay (tacoc's ai.tacoc fused ops: their
 * functions are fallbacks for other runtimes); --explain says so. Then the
 * functions nothing calls any more are removed from the model. */
#include "inline.h"
#include "pass.h"

static void kept(void *ctx, const tc_node *n) {
  tc_pass_explain(ctx, n, "libtacort has a kernel for %s.%s: the call stays",
                  n->domain ? n->domain : "", n->op_type);
}

tc_status tc_pass_inline_functions(tc_pass_ctx *c, tc_graph *g) {
  if (!c->model->n_functions)
    return TC_STATUS_OK;
  tc_inline_hooks hooks = {.ctx = c, .kept = kept};
  size_t inlined = 0, removed = 0;
  tc_status st = tc_inline_calls(c->model, g, &hooks, &inlined, c->diag);
  if (inlined)
    tc_pass_count(c, "call", inlined);
  if (!st && g == c->model->graph)
    st = tc_remove_uncalled_functions(c->model, &removed, c->diag);
  if (removed)
    tc_pass_count(c, "function removed", removed);
  return st;
}
