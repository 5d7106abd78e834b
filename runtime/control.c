/* If, Loop, Scan and SequenceMap: the executor runs their subgraphs itself. A subgraph's
 * inputs are bound in the run's value table, its nodes run through
 * tc_run_graph, and its outputs are read back from the table; outer-scope
 * values are simply already there. Tensors made inside an iteration live in
 * the run's arena until the run ends. */
#include <string.h>

#include "exec.h"

static const char *nz(const char *s) { return s ? s : ""; }

static tc_status fail(tc_run *r, const tc_node *n, tc_status s, const char *msg) {
  return tc_diag_set(r->diag, s, nz(n->name), nz(n->op_type), "%s", msg);
}

bool tc_is_control_op(const tc_node *n) {
  if (!tc_domain_is_onnx(n->domain))
    return false;
  return n->op_type && (!strcmp(n->op_type, "If") || !strcmp(n->op_type, "Loop") ||
                        !strcmp(n->op_type, "Scan") || !strcmp(n->op_type, "SequenceMap"));
}

static const tc_graph *body(const tc_node *n, const char *name) {
  const tc_attr *a = tc_node_attr(n, name);
  return a ? a->g : NULL;
}

tc_status tc_control_check(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const if_attrs[] = {"then_branch", "else_branch", NULL};
  static const char *const loop_attrs[] = {"body", NULL};
  static const char *const scan_attrs[] = {"body",
                                           "num_scan_inputs",
                                           "scan_input_axes",
                                           "scan_input_directions",
                                           "scan_output_axes",
                                           "scan_output_directions",
                                           NULL};
  const char *op = n->op_type;
  if (!strcmp(op, "If")) {
    if (!body(n, "then_branch") || !body(n, "else_branch"))
      return tc_diag_set(diag, TC_STATUS_INVALID, nz(n->name), op,
                         "needs then_branch and else_branch");
    return tc_kernel_check_attrs(n, diag, if_attrs);
  }
  if (!strcmp(op, "Loop") || !strcmp(op, "SequenceMap")) {
    if (!body(n, "body"))
      return tc_diag_set(diag, TC_STATUS_INVALID, nz(n->name), op, "needs a body");
    return tc_kernel_check_attrs(n, diag, loop_attrs);
  }
  if (opset < 9)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, nz(n->name), op,
                       "Scan before opset 9 (batched, with sequence_lens) is not supported");
  if (!body(n, "body") || !tc_node_attr(n, "num_scan_inputs"))
    return tc_diag_set(diag, TC_STATUS_INVALID, nz(n->name), op,
                       "needs a body and num_scan_inputs");
  return tc_kernel_check_attrs(n, diag, scan_attrs);
}

static bool truthy(const tc_rt_tensor *t) {
  return t && tc_rt_numel(t) >= 1 && tc_rt_get_i64(t, 0) != 0;
}

/* Binds subgraph input k of g to t. */
static void bind(tc_run *r, const tc_graph *g, size_t k, tc_rt_tensor *t) {
  r->vals[g->inputs[k].value->id] = t;
}

static tc_rt_tensor *result(tc_run *r, const tc_graph *g, size_t k) {
  return r->vals[g->outputs[k].value->id];
}

static tc_status run_if(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                        tc_rt_tensor *out) {
  if (!in[0] || tc_rt_numel(in[0]) != 1)
    return fail(r, n, TC_STATUS_INVALID, "the condition must be a single value");
  const tc_graph *g = body(n, truthy(in[0]) ? "then_branch" : "else_branch");
  if (g->n_outputs != n->n_outputs)
    return fail(r, n, TC_STATUS_INVALID,
                "the branch has a different number of outputs than the node");
  tc_status s = tc_run_graph(r, g);
  for (size_t i = 0; !s && i < g->n_outputs; i++) {
    const tc_rt_tensor *t = result(r, g, i);
    if (!t)
      return fail(r, n, TC_STATUS_INVALID, "a branch output was not computed");
    out[i] = *t;
  }
  return s;
}

/* A growing list of per-iteration tensors for one scan output. */
typedef struct parts {
  tc_rt_tensor *items;
  size_t n, cap;
} parts;

static tc_status push(tc_run *r, const tc_node *n, parts *p, const tc_rt_tensor *t) {
  if (p->n && (t->dtype != p->items[0].dtype || t->rank != p->items[0].rank ||
               memcmp(t->dims, p->items[0].dims, t->rank * sizeof *t->dims) != 0))
    return fail(r, n, TC_STATUS_INVALID, "a scan output changes shape or dtype between iterations");
  if (tc_arena_vec_reserve(r->a, (void **)&p->items, &p->cap, p->n, sizeof *p->items))
    return fail(r, n, TC_STATUS_NOMEM, "out of memory");
  p->items[p->n++] = *t;
  return TC_STATUS_OK;
}

/* Stacks p's items along a new axis `axis` (reversed when reverse). */
static tc_status stack(tc_run *r, const tc_node *n, const parts *p, int64_t axis, bool reverse,
                       int32_t dtype_if_empty, tc_rt_tensor *out) {
  tc_kernel_ctx k = {.node = n, .diag = r->diag, .arena = r->a};
  if (!p->n) /* no iteration: an empty tensor, its element shape unknown */
    return tc_kernel_alloc(&k, out, dtype_if_empty, 1, (int64_t[]){0});
  const tc_rt_tensor *e = &p->items[0];
  if (axis < 0)
    axis += (int64_t)e->rank + 1;
  if (axis < 0 || axis > (int64_t)e->rank || e->rank + 1 > TC_MAX_RANK)
    return fail(r, n, TC_STATUS_INVALID, "scan output axis out of range");
  size_t es = tc_dtype_elem_bytes(e->dtype);
  if (!es)
    return fail(r, n, TC_STATUS_UNSUPPORTED, "sub-byte dtypes cannot be stacked");
  int64_t dims[TC_MAX_RANK];
  for (size_t d = 0, j = 0; d <= e->rank; d++)
    dims[d] = (int64_t)d == axis ? (int64_t)p->n : e->dims[j++];
  tc_status s = tc_kernel_alloc(&k, out, e->dtype, e->rank + 1, dims);
  if (s)
    return s;
  size_t outer = 1, inner = es;
  for (size_t d = 0; d < e->rank; d++)
    *((int64_t)d < axis ? &outer : &inner) *= (size_t)e->dims[d];
  for (size_t t = 0; t < p->n; t++) {
    size_t pos = reverse ? p->n - 1 - t : t;
    for (size_t o = 0; o < outer; o++)
      memcpy((char *)out->data + (o * p->n + pos) * inner,
             (const char *)p->items[t].data + o * inner, inner);
  }
  return TC_STATUS_OK;
}

static tc_status scalar(tc_run *r, const tc_node *n, int32_t dtype, int64_t v, tc_rt_tensor **out) {
  tc_kernel_ctx k = {.node = n, .diag = r->diag, .arena = r->a};
  *out = tc_arena_alloc(r->a, sizeof **out);
  if (!*out)
    return fail(r, n, TC_STATUS_NOMEM, "out of memory");
  tc_status s = tc_kernel_alloc(&k, *out, dtype, 0, NULL);
  if (!s)
    tc_rt_set_i64(*out, 0, v);
  return s;
}

static int32_t declared_dtype(const tc_graph *g, size_t k) {
  const tc_type *t = &g->outputs[k].value->type;
  return t->kind == TC_TYPE_TENSOR && t->elem ? t->elem : TC_DTYPE_F32;
}

static tc_status run_loop(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                          tc_rt_tensor *out) {
  const tc_graph *g = body(n, "body");
  size_t n_carried = n->n_inputs >= 2 ? n->n_inputs - 2 : 0;
  if (g->n_inputs != n_carried + 2 || g->n_outputs < n_carried + 1 ||
      n->n_outputs != g->n_outputs - 1)
    return fail(r, n, TC_STATUS_INVALID, "the body's inputs and outputs do not match the node");
  size_t n_scan = g->n_outputs - 1 - n_carried;
  bool has_max = in[0] != NULL;
  int64_t max_trip = has_max ? tc_rt_get_i64(in[0], 0) : 0;
  bool keep = in[1] ? truthy(in[1]) : true;
  tc_rt_tensor **carried = tc_arena_alloc(r->a, (n_carried + 1) * sizeof *carried);
  parts *scans = tc_arena_alloc(r->a, (n_scan + 1) * sizeof *scans);
  if (!carried || !scans)
    return fail(r, n, TC_STATUS_NOMEM, "out of memory");
  for (size_t j = 0; j < n_carried; j++) {
    if (!in[2 + j])
      return fail(r, n, TC_STATUS_UNSUPPORTED, "optional loop-carried values are not supported");
    carried[j] = (tc_rt_tensor *)in[2 + j];
  }
  tc_status s = TC_STATUS_OK;
  for (int64_t it = 0; keep && (!has_max || it < max_trip); it++) {
    tc_rt_tensor *iter, *cond;
    if ((s = scalar(r, n, TC_DTYPE_I64, it, &iter)) || (s = scalar(r, n, TC_DTYPE_BOOL, 1, &cond)))
      return s;
    bind(r, g, 0, iter);
    bind(r, g, 1, cond);
    for (size_t j = 0; j < n_carried; j++)
      bind(r, g, 2 + j, carried[j]);
    if ((s = tc_run_graph(r, g)))
      return s;
    for (size_t k = 0; k < g->n_outputs; k++)
      if (!result(r, g, k))
        return fail(r, n, TC_STATUS_INVALID, "a body output was not computed");
    keep = truthy(result(r, g, 0));
    for (size_t j = 0; j < n_carried; j++)
      carried[j] = result(r, g, 1 + j);
    for (size_t k = 0; k < n_scan; k++)
      if ((s = push(r, n, &scans[k], result(r, g, 1 + n_carried + k))))
        return s;
  }
  for (size_t j = 0; j < n_carried; j++)
    out[j] = *carried[j];
  for (size_t k = 0; k < n_scan && !s; k++)
    s = stack(r, n, &scans[k], 0, false, declared_dtype(g, 1 + n_carried + k), &out[n_carried + k]);
  return s;
}

/* Copies slice `index` of t along axis into a new tensor of one rank less. */
static tc_status slice(tc_run *r, const tc_node *n, const tc_rt_tensor *t, int64_t axis,
                       int64_t index, tc_rt_tensor *out) {
  tc_kernel_ctx k = {.node = n, .diag = r->diag, .arena = r->a};
  size_t es = tc_dtype_elem_bytes(t->dtype);
  if (!es)
    return fail(r, n, TC_STATUS_UNSUPPORTED, "sub-byte dtypes cannot be scanned");
  int64_t dims[TC_MAX_RANK];
  size_t outer = 1, inner = es;
  for (size_t d = 0, j = 0; d < t->rank; d++) {
    if ((int64_t)d == axis)
      continue;
    dims[j++] = t->dims[d];
    *((int64_t)d < axis ? &outer : &inner) *= (size_t)t->dims[d];
  }
  tc_status s = tc_kernel_alloc(&k, out, t->dtype, t->rank - 1, dims);
  size_t len = (size_t)t->dims[axis];
  for (size_t o = 0; !s && o < outer; o++)
    memcpy((char *)out->data + o * inner, (const char *)t->data + (o * len + (size_t)index) * inner,
           inner);
  return s;
}

/* Value i of an ints attribute, or 0 when absent or short. */
static int64_t attr_at(const tc_node *n, const char *name, size_t i) {
  const int64_t *v;
  ptrdiff_t c = tc_attr_ints(n, name, &v);
  return c > (ptrdiff_t)i ? v[i] : 0;
}

static tc_status run_scan(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                          tc_rt_tensor *out) {
  const tc_graph *g = body(n, "body");
  size_t m = (size_t)tc_attr_int(n, "num_scan_inputs", 0);
  if (m == 0 || m > n->n_inputs)
    return fail(r, n, TC_STATUS_INVALID, "num_scan_inputs is out of range");
  size_t n_state = n->n_inputs - m;
  if (g->n_inputs != n->n_inputs || g->n_outputs != n->n_outputs || g->n_outputs < n_state)
    return fail(r, n, TC_STATUS_INVALID, "the body's inputs and outputs do not match the node");
  size_t n_scan_out = g->n_outputs - n_state;
  int64_t len = -1;
  int64_t *axes = tc_arena_alloc(r->a, m * sizeof *axes);
  tc_rt_tensor **state = tc_arena_alloc(r->a, (n_state + 1) * sizeof *state);
  parts *scans = tc_arena_alloc(r->a, (n_scan_out + 1) * sizeof *scans);
  if (!axes || !state || !scans)
    return fail(r, n, TC_STATUS_NOMEM, "out of memory");
  for (size_t j = 0; j < m; j++) {
    const tc_rt_tensor *t = in[n_state + j];
    if (!t)
      return fail(r, n, TC_STATUS_INVALID, "a scan input is missing");
    axes[j] = tc_axis(attr_at(n, "scan_input_axes", j), t->rank);
    if (axes[j] < 0)
      return fail(r, n, TC_STATUS_INVALID, "scan input axis out of range");
    if (len >= 0 && t->dims[axes[j]] != len)
      return fail(r, n, TC_STATUS_INVALID, "scan inputs differ in sequence length");
    len = t->dims[axes[j]];
  }
  for (size_t j = 0; j < n_state; j++)
    state[j] = (tc_rt_tensor *)in[j];
  tc_status s = TC_STATUS_OK;
  for (int64_t t = 0; t < len; t++) {
    for (size_t j = 0; j < n_state; j++)
      bind(r, g, j, state[j]);
    for (size_t j = 0; j < m; j++) {
      tc_rt_tensor *sl = tc_arena_alloc(r->a, sizeof *sl);
      int64_t idx = attr_at(n, "scan_input_directions", j) ? len - 1 - t : t;
      if (!sl)
        return fail(r, n, TC_STATUS_NOMEM, "out of memory");
      if ((s = slice(r, n, in[n_state + j], axes[j], idx, sl)))
        return s;
      bind(r, g, n_state + j, sl);
    }
    if ((s = tc_run_graph(r, g)))
      return s;
    for (size_t k = 0; k < g->n_outputs; k++)
      if (!result(r, g, k))
        return fail(r, n, TC_STATUS_INVALID, "a body output was not computed");
    for (size_t j = 0; j < n_state; j++)
      state[j] = result(r, g, j);
    for (size_t k = 0; k < n_scan_out; k++)
      if ((s = push(r, n, &scans[k], result(r, g, n_state + k))))
        return s;
  }
  for (size_t j = 0; j < n_state; j++)
    out[j] = *state[j];
  for (size_t k = 0; k < n_scan_out && !s; k++)
    s = stack(r, n, &scans[k], attr_at(n, "scan_output_axes", k),
              attr_at(n, "scan_output_directions", k) != 0, declared_dtype(g, n_state + k),
              &out[n_state + k]);
  return s;
}

/* SequenceMap: the body once per element of the input sequence; inputs
 * that are sequences (of the same length) give their element, tensors are
 * passed whole; each body output is collected (copied into the arena) into
 * an output sequence. */
static tc_status run_sequence_map(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                                  tc_rt_tensor *out) {
  const tc_graph *g = body(n, "body");
  if (g->n_inputs != n->n_inputs || g->n_outputs != n->n_outputs || !n->n_inputs)
    return fail(r, n, TC_STATUS_INVALID, "the body's inputs and outputs do not match the node");
  if (!in[0] || in[0]->dtype != TC_DTYPE_SEQUENCE)
    return fail(r, n, TC_STATUS_INVALID, "input_sequence must be a sequence");
  size_t len = (size_t)in[0]->dims[0];
  for (size_t j = 1; j < n->n_inputs; j++)
    if (!in[j] || (in[j]->dtype == TC_DTYPE_SEQUENCE && (size_t)in[j]->dims[0] != len))
      return fail(r, n, TC_STATUS_INVALID,
                  in[j] ? "an additional sequence differs in length from input_sequence"
                        : "an additional input is missing");
  for (size_t o = 0; o < n->n_outputs; o++) {
    tc_rt_tensor *items = tc_arena_alloc(r->a, (len ? len : 1) * sizeof *items);
    if (!items)
      return fail(r, n, TC_STATUS_NOMEM, "out of memory");
    out[o] = (tc_rt_tensor){
        .dtype = TC_DTYPE_SEQUENCE, .rank = 1, .data = items, .bytes = len * sizeof *items};
    out[o].dims[0] = (int64_t)len;
    out[o].dims[1] = declared_dtype(g, o);
  }
  for (size_t i = 0; i < len; i++) {
    for (size_t j = 0; j < n->n_inputs; j++)
      bind(r, g, j,
           in[j]->dtype == TC_DTYPE_SEQUENCE ? &((tc_rt_tensor *)in[j]->data)[i]
                                             : (tc_rt_tensor *)in[j]);
    tc_status s = tc_run_graph(r, g);
    if (s)
      return s;
    for (size_t o = 0; o < n->n_outputs; o++) {
      const tc_rt_tensor *t = result(r, g, o);
      tc_rt_tensor *e = &((tc_rt_tensor *)out[o].data)[i];
      if (!t || t->dtype == TC_DTYPE_SEQUENCE || t->dtype == TC_DTYPE_NONE)
        return fail(r, n, TC_STATUS_INVALID, "a body output is not a tensor");
      *e = *t;
      if (!(e->data = tc_arena_alloc(r->a, t->bytes ? t->bytes : 1)))
        return fail(r, n, TC_STATUS_NOMEM, "out of memory");
      if (t->bytes)
        memcpy(e->data, t->data, t->bytes);
      out[o].dims[1] = t->dtype;
    }
  }
  return TC_STATUS_OK;
}

tc_status tc_run_control(tc_run *r, const tc_node *n, const tc_rt_tensor *const *in,
                         tc_rt_tensor *out) {
  if (!strcmp(n->op_type, "SequenceMap"))
    return run_sequence_map(r, n, in, out);
  if (!strcmp(n->op_type, "If"))
    return run_if(r, n, in, out);
  if (!strcmp(n->op_type, "Loop"))
    return run_loop(r, n, in, out);
  return run_scan(r, n, in, out);
}
