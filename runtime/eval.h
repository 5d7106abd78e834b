/* Evaluation of single nodes on constant inputs: how the compiler folds
 * constants with libtacort's own kernels (so folding and running agree). */
#ifndef TC_EVAL_H
#define TC_EVAL_H

#include "ir.h"

/* Runs node n on the given input tensors (NULL for an optional input left
 * out) with the kernel of n's op at the model's opset. On success out[i] is a
 * new tensor of n's model (named after output i) for every output n
 * produces, NULL for the others. UNSUPPORTED when there is no kernel, the node
 * has subgraphs, or an output holds strings; kernel errors as the kernel
 * reports them. */
tc_status tc_node_eval(const tc_node *n, const tc_tensor *const *inputs, tc_tensor **out,
                       tc_diag *diag);

#endif
