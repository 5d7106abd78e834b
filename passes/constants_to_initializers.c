/* constants-to-initializers: Constant nodes become initializers.
 *
 *   Constant{value=T} ─▶ y        ⇒        initializer y = T
 *
 * Handles value (a tensor), value_float(s) and value_int(s); sparse and
 * string-list forms are left alone. Requires IR version 4 or later (before
 * that every initializer had to be a graph input too); the pipeline raises
 * IR 3 models to 4, which changes nothing else. Unlocks folding and every
 * fusion that tests constant operands. */
#include <string.h>

#include "pass.h"

static tc_tensor *scalar_or_list(tc_pass_ctx *c, const tc_node *n, const tc_attr *a) {
  bool f = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT ||
           a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  bool list = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS ||
              a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  size_t count = list ? (f ? a->n_floats : a->n_ints) : 1;
  size_t esz = f ? sizeof(float) : sizeof(int64_t);
  tc_buffer *b = tc_buffer_new(count ? count * esz : 1);
  if (!b)
    return NULL;
  const void *src = list ? (f ? (const void *)a->floats : (const void *)a->ints)
                         : (f ? (const void *)&a->f : (const void *)&a->i);
  if (count)
    memcpy(tc_buffer_data(b), src, count * esz);
  int64_t dim = (int64_t)count;
  tc_tensor *t = tc_tensor_new(c->model, n->outputs[0]->name, f ? TC_DTYPE_F32 : TC_DTYPE_I64,
                               list ? 1 : 0, &dim, b);
  if (t)
    t->data[TC_FIELD_RAW].len = count * esz;
  return t;
}

tc_status tc_pass_constants_to_initializers(tc_pass_ctx *c, tc_graph *g) {
  if (c->model->ir_version < 4)
    return TC_STATUS_OK;
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (!tc_is_op(n, "Constant") || n->n_outputs != 1 || !n->outputs[0] || n->n_attrs != 1)
      continue;
    const tc_attr *a = &n->attrs[0];
    tc_tensor *t = NULL;
    if (strcmp(a->name, "value") == 0 && a->t && a->t->dtype != TC_DTYPE_STRING) {
      t = a->t;
    } else if (strcmp(a->name, "value_float") == 0 || strcmp(a->name, "value_floats") == 0 ||
               strcmp(a->name, "value_int") == 0 || strcmp(a->name, "value_ints") == 0) {
      if (!(t = scalar_or_list(c, n, a)))
        return tc_pass_nomem(c);
    } else {
      tc_pass_explain(c, n, "attribute %s is not turned into an initializer", a->name);
      continue;
    }
    tc_value *v = n->outputs[0];
    tc_node_remove(n);
    if (tc_value_make_const(v, t) != 0)
      return tc_pass_nomem(c);
    tc_pass_count(c, "Constant", 1);
  }
  return TC_STATUS_OK;
}
