/* eliminate-dead: removes what no graph output depends on.
 *
 *   x ─▶ A ─▶ (nobody)        ⇒        x
 *
 * A node goes when none of its outputs is read (by any node, subgraphs
 * included) or is a graph output; all ONNX ops are free of side effects.
 * Then initializers nobody reads go (those that are also graph inputs stay:
 * they are part of the model's interface), and value_info entries of values
 * that no longer exist. Nodes are visited last to first so chains go in one
 * sweep. */
#include "pass.h"

static bool dead(const tc_node *n) {
  for (size_t i = 0; i < n->n_outputs; i++) {
    const tc_value *v = n->outputs[i];
    if (v && (v->n_uses || (v->flags & TC_VALUE_OUTPUT)))
      return false;
  }
  return true;
}

tc_status tc_pass_eliminate_dead(tc_pass_ctx *c, tc_graph *g) {
  for (tc_node *n = g->last, *prev; n; n = prev) {
    prev = n->prev;
    if (dead(n)) {
      tc_node_remove(n);
      tc_pass_count(c, "node", 1);
    }
  }
  size_t k = 0;
  for (size_t i = 0; i < g->n_inits; i++) {
    tc_value *v = g->inits[i];
    if (v->n_uses || (v->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT))) {
      g->inits[k++] = v;
    } else {
      v->init = NULL;
      tc_pass_count(c, "initializer", 1);
    }
  }
  g->n_inits = k;
  tc_graph_prune_value_info(g);
  return TC_STATUS_OK;
}
