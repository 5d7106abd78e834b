/* Harness for kernel unit tests that build nodes in a model and set their
 * attributes by slot: env_new() gives a model with one graph, mk() appends a
 * node with every output requested, attr_*() fill attribute slots, ten()
 * makes a tensor from double values, run() applies the kernel's load-time
 * check and then the kernel, values() compares with a tolerance. */
#ifndef TC_TEST_KERNEL_ENV_H
#define TC_TEST_KERNEL_ENV_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "kernel.h"

typedef struct env {
  tc_model *m;
  tc_graph *g;
  tc_arena *a;
  tc_diag diag;
} env;

static inline env env_new(void) {
  env e;
  memset(&e, 0, sizeof e);
  e.m = tc_model_new_empty();
  e.g = e.m->graph = tc_graph_new(e.m, NULL, "g");
  e.a = e.m->arena;
  return e;
}

static inline tc_node *mk(env *e, const char *op, size_t n_in, size_t n_out, size_t n_attrs) {
  tc_node *n = tc_graph_append_node(e->g, op, "", "n", n_in, n_out, n_attrs);
  for (size_t i = 0; i < n_out; i++) { /* every output requested */
    char name[32];
    snprintf(name, sizeof name, "o%u_%zu", n->id, i);
    tc_node_set_output(n, i, tc_graph_new_value(e->g, name, NULL));
  }
  return n;
}

static inline void attr_i(tc_node *n, size_t slot, const char *name, int64_t v) {
  n->attrs[slot].name = name;
  n->attrs[slot].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  n->attrs[slot].i = v;
}

static inline void attr_f(tc_node *n, size_t slot, const char *name, float v) {
  n->attrs[slot].name = name;
  n->attrs[slot].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  n->attrs[slot].f = v;
}

static inline void attr_ints(tc_node *n, size_t slot, const char *name, int64_t *v, size_t cnt) {
  n->attrs[slot].name = name;
  n->attrs[slot].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  n->attrs[slot].ints = v;
  n->attrs[slot].n_ints = cnt;
}

static inline void attr_s(tc_node *n, size_t slot, const char *name, const char *s) {
  n->attrs[slot].name = name;
  n->attrs[slot].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  n->attrs[slot].s.data = (uint8_t *)s;
  n->attrs[slot].s.len = strlen(s);
}

static inline tc_rt_tensor *ten(env *e, int32_t dt, size_t rank, const int64_t *dims,
                                const double *v) {
  tc_rt_tensor *t = tc_arena_alloc(e->a, sizeof *t);
  t->dtype = dt;
  t->rank = rank;
  if (rank)
    memcpy(t->dims, dims, rank * sizeof *dims);
  size_t n = tc_rt_numel(t);
  t->bytes = tc_dtype_bytes(dt, n);
  t->data = tc_arena_alloc(e->a, t->bytes ? t->bytes : 1);
  for (size_t i = 0; v && i < n; i++)
    tc_rt_set_f64(t, i, v[i]);
  return t;
}

/* Runs n's kernel (check first) at opset. */
static inline tc_status run(env *e, tc_node *n, int64_t opset, const tc_rt_tensor *const *in,
                            size_t n_in, tc_rt_tensor *out) {
  tc_diag_clear(&e->diag);
  const tc_kernel_def *d = tc_kernel_find(n->op_type, n->domain ? n->domain : "", opset);
  if (!d)
    return TC_STATUS_UNSUPPORTED;
  tc_status st = d->check ? d->check(n, opset, &e->diag) : TC_STATUS_OK;
  if (st)
    return st;
  tc_kernel_ctx k = {.node = n, .opset = opset, .diag = &e->diag, .arena = e->a};
  return d->run(&k, in, n_in, out, n->n_outputs);
}

static inline bool near(double a, double b) { return fabs(a - b) <= 1e-3 * (1 + fabs(b)); }

static inline bool values(const tc_rt_tensor *t, const double *v, size_t n) {
  if (tc_rt_numel(t) != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!near(tc_rt_get_f64(t, i), v[i]) && !(isinf(v[i]) && tc_rt_get_f64(t, i) == v[i]))
      return false;
  return true;
}

#endif
