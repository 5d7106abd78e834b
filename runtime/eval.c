/* Single-node evaluation for constant folding (see eval.h). */
#include "eval.h"

#include <string.h>

#include "exec.h"

tc_status tc_node_eval(const tc_node *n, const tc_tensor *const *inputs, tc_tensor **out,
                       tc_diag *diag) {
  tc_model *m = n->graph->model;
  int64_t opset = tc_model_opset(m, n->domain);
  const tc_kernel_def *def = tc_kernel_find(n->op_type, n->domain, opset);
  if (!def || tc_is_control_op(n))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name, n->op_type, "no kernel to fold it");
  if (def->check) {
    tc_status st = def->check(n, opset, diag);
    if (st)
      return st;
  }
  for (size_t i = 0; i < n->n_outputs; i++)
    out[i] = NULL;
  tc_arena *a = tc_arena_new();
  if (!a)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  tc_status st = TC_STATUS_OK;
  size_t ni = n->n_inputs, no = n->n_outputs;
  tc_rt_tensor *in = tc_arena_alloc(a, (ni + 1) * sizeof *in);
  const tc_rt_tensor **inp = tc_arena_alloc(a, (ni + 1) * sizeof *inp);
  tc_rt_tensor *res = tc_arena_alloc(a, (no + 1) * sizeof *res);
  if (!in || !inp || !res) {
    st = tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < ni; i++) {
    inp[i] = NULL;
    if (!inputs[i])
      continue;
    if ((st = tc_rt_from_ir(inputs[i], a, &in[i], diag)))
      goto done;
    inp[i] = &in[i];
  }
  tc_kernel_ctx k = {.node = n, .opset = opset, .diag = diag, .arena = a, .outputs = res};
  if ((st = def->run(&k, inp, ni, res, no)))
    goto done;
  for (size_t i = 0; i < no; i++) {
    if (res[i].dtype == TC_DTYPE_SEQUENCE || res[i].dtype == TC_DTYPE_NONE) {
      st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name, n->op_type,
                       "sequence and optional outputs are not folded (no initializer holds one)");
      goto done;
    }
    if (!n->outputs[i] || !res[i].data)
      continue;
    if (res[i].dtype == TC_DTYPE_STRING) {
      st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name, n->op_type,
                       "string outputs are not folded");
      goto done;
    }
    size_t bytes = tc_dtype_bytes(res[i].dtype, tc_rt_numel(&res[i]));
    tc_buffer *b = tc_buffer_new(bytes ? bytes : 1);
    if (!b) {
      st = tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
      goto done;
    }
    memcpy(tc_buffer_data(b), res[i].data, bytes);
    out[i] = tc_tensor_new(m, n->outputs[i]->name, res[i].dtype, res[i].rank, res[i].dims, b);
    if (!out[i]) {
      st = tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
      goto done;
    }
    out[i]->data[TC_FIELD_RAW].len = bytes;
  }
done:
  tc_arena_free(a);
  return st;
}
