/* Executor internals shared by session.c and control.c. */
#ifndef TC_EXEC_H
#define TC_EXEC_H

#include "kernel.h"

struct tc_session {
  const tc_model *m;
  tc_arena *arena;               /* decoded initializers, kernel table */
  const tc_kernel_def **kernels; /* by node id; NULL for control-flow nodes */
  int64_t *opsets;               /* by node id */
  tc_rt_tensor **consts;         /* by value id: decoded initializers */
};

/* One run's state: every value's tensor by value id (outer-scope values are
 * read from here by subgraphs), and the arena all run memory comes from. */
typedef struct tc_run {
  const tc_session *s;
  tc_rt_tensor **vals;
  tc_arena *a;
  tc_diag *diag;
} tc_run;

/* Runs the nodes of g (a main graph or subgraph whose inputs are bound). */
tc_status tc_run_graph(tc_run *r, const tc_graph *g);
/* True for If, Loop and Scan, which the executor runs itself. */
bool tc_is_control_op(const tc_node *n);
/* Load-time check of a control-flow node (opset, attributes). */
tc_status tc_control_check(const tc_node *n, int64_t opset, tc_diag *diag);
/* Runs a control-flow node: inputs in, outputs written to out. */
tc_status tc_run_control(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                         tc_rt_tensor *out);

#endif
