/* Harness for kernel unit tests that build a node from attribute values:
 * the test sets `model` (with a graph) and `arena`; node() appends a node,
 * *_attr() make attribute values, mk() wraps caller data as a tensor, run()
 * applies the kernel's load-time check and then the kernel. */
#ifndef TC_TEST_KERNEL_NODE_H
#define TC_TEST_KERNEL_NODE_H

#include <stdint.h>
#include <string.h>

#include "kernel.h"

/* The test file's model (whose first graph nodes go into), arena and diag. */
static tc_model *model;
static tc_arena *arena;
static tc_diag diag;

/* A node of op with the given attributes (copied by value). */
static inline tc_node *node(const char *op, size_t n_in, size_t n_out, const tc_attr *attrs,
                            size_t n_attrs) {
  tc_node *n = tc_graph_append_node(model->graph, op, "", op, n_in, n_out, n_attrs);
  for (size_t i = 0; i < n_attrs; i++)
    n->attrs[i] = attrs[i];
  return n;
}

static inline tc_attr ints_attr(const char *name, int64_t *v, size_t n) {
  return (tc_attr){
      .name = name, .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, .ints = v, .n_ints = n};
}
static inline tc_attr int_attr(const char *name, int64_t v) {
  return (tc_attr){.name = name, .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = v};
}
static inline tc_attr float_attr(const char *name, float v) {
  return (tc_attr){.name = name, .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = v};
}
static inline tc_attr str_attr(const char *name, const char *v) {
  return (tc_attr){.name = name,
                   .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING,
                   .s = {strlen(v), (uint8_t *)v}};
}

static inline tc_rt_tensor mk(int32_t dt, size_t rank, const int64_t *dims, void *data) {
  tc_rt_tensor t = {.dtype = dt, .rank = rank, .data = data};
  size_t n = 1;
  for (size_t i = 0; i < rank; i++) {
    t.dims[i] = dims[i];
    n *= (size_t)dims[i];
  }
  t.bytes = dt == TC_DTYPE_STRING ? n * sizeof(char *) : tc_dtype_bytes(dt, n);
  return t;
}

/* Checks then runs n at opset. */
static inline tc_status run(tc_node *n, int64_t opset, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  const tc_kernel_def *d = tc_kernel_find(n->op_type, "", opset);
  if (!d)
    return TC_STATUS_UNSUPPORTED;
  tc_diag_clear(&diag);
  if (d->check) {
    tc_status s = d->check(n, opset, &diag);
    if (s != TC_STATUS_OK)
      return s;
  }
  tc_kernel_ctx k = {.node = n, .opset = opset, .diag = &diag, .arena = arena};
  memset(out, 0, n_out * sizeof *out);
  return d->run(&k, in, n_in, out, n_out);
}

#endif
