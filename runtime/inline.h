/* Inlining of model-local function calls (runtime/inline.c), shared by the
 * pass inline-functions and by sessions on models that call functions
 * libtacort has no kernel for. */
#ifndef TC_INLINE_H
#define TC_INLINE_H

#include "ir.h"

typedef struct tc_inline_hooks {
  void *ctx;
  /* A call that stays because libtacort has a kernel for its op. */
  void (*kept)(void *ctx, const tc_node *call);
} tc_inline_hooks;

/* Replaces every call in g (and its subgraphs, and the copies' nested calls)
 * of a function of m that libtacort has no kernel for by the function's
 * body; *inlined gets the number of calls replaced. hooks may be NULL. On
 * error (recursion, opset clash, bad call) diag names the call; g may then
 * be partly inlined. */
tc_status tc_inline_calls(tc_model *m, tc_graph *g, const tc_inline_hooks *hooks, size_t *inlined,
                          tc_diag *diag);
/* Removes the functions nothing calls any more (from the main graph, its
 * subgraphs or the bodies of functions still called); *removed gets how
 * many. */
tc_status tc_remove_uncalled_functions(tc_model *m, size_t *removed, tc_diag *diag);
/* True when m's graph calls a model-local function libtacort has no kernel
 * for. */
bool tc_model_needs_inlining(const tc_model *m);
/* A model whose main graph is a copy of m's with tc_inline_calls done, for
 * running m: values keep their names and types, initializers share m's
 * tensors, and functions, opsets, path and metadata are m's (read only), so
 * m must outlive it. Free it with tc_model_inlined_copy_free. */
tc_status tc_model_inlined_copy(const tc_model *m, tc_model **out, tc_diag *diag);
void tc_model_inlined_copy_free(tc_model *c);

#endif
