/* IR construction, editing and the invariant checker. */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- name -> value table (open addressing, arena-backed) ---- */
typedef struct tc_symtab {
  tc_value **slots;
  size_t cap, count;
} tc_symtab;

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static tc_value **symtab_slot(tc_symtab *t, const char *name) {
  size_t mask = t->cap - 1;
  for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask)
    if (!t->slots[i] || strcmp(t->slots[i]->name, name) == 0)
      return &t->slots[i];
}

static int symtab_insert(tc_arena *a, tc_symtab *t, tc_value *v) {
  if ((t->count + 1) * 2 > t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 16;
    tc_value **old = t->slots;
    size_t ocap = t->cap;
    t->slots = tc_arena_alloc(a, ncap * sizeof *t->slots);
    if (!t->slots)
      return -1;
    t->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i])
        *symtab_slot(t, old[i]->name) = old[i];
  }
  *symtab_slot(t, v->name) = v;
  t->count++;
  return 0;
}

/* ---- model and graph ---- */
tc_model *tc_model_new_empty(void) {
  tc_arena *a = tc_arena_new();
  if (!a)
    return NULL;
  tc_model *m = tc_arena_alloc(a, sizeof *m);
  if (!m) {
    tc_arena_free(a);
    return NULL;
  }
  m->arena = a;
  return m;
}

void tc_model_free(tc_model *m) {
  if (!m)
    return;
  if (m->pb)
    protobuf_c_message_free_unpacked(&m->pb->base, NULL);
  tc_arena_free(m->arena);
}

tc_graph *tc_graph_new(tc_model *m, tc_graph *parent, const char *name) {
  tc_graph *g = tc_arena_alloc(m->arena, sizeof *g);
  if (!g)
    return NULL;
  g->model = m;
  g->parent = parent;
  g->name = tc_arena_strdup(m->arena, name);
  g->names = tc_arena_alloc(m->arena, sizeof *g->names);
  return g->names ? g : NULL;
}

tc_value *tc_graph_lookup_local(const tc_graph *g, const char *name) {
  if (!name || !g->names->cap)
    return NULL;
  return *symtab_slot(g->names, name);
}

tc_value *tc_graph_lookup(const tc_graph *g, const char *name) {
  for (; g; g = g->parent) {
    tc_value *v = tc_graph_lookup_local(g, name);
    if (v)
      return v;
  }
  return NULL;
}

tc_value *tc_graph_new_value(tc_graph *g, const char *name, tc_diag *diag) {
  tc_arena *a = g->model->arena;
  if (tc_graph_lookup_local(g, name)) {
    tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL, "value '%s' is defined more than once", name);
    return NULL;
  }
  tc_value *v = tc_arena_alloc(a, sizeof *v);
  if (!v || !(v->name = tc_arena_strdup(a, name)) || symtab_insert(a, g->names, v) != 0) {
    tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    return NULL;
  }
  v->graph = g;
  v->producer_slot = -1;
  v->id = g->model->next_value_id++;
  return v;
}

#define VEC_PUSH(a, arr, n, cap, item)                                                             \
  (tc_arena_vec_reserve((a), (void **)&(arr), &(cap), (n), sizeof *(arr)) != 0                     \
       ? -1                                                                                        \
       : ((arr)[(n)++] = (item), 0))

int tc_graph_add_input(tc_graph *g, tc_value *v, const Onnx__ValueInfoProto *pb) {
  v->flags |= TC_VALUE_INPUT;
  return VEC_PUSH(g->model->arena, g->inputs, g->n_inputs, g->cap_inputs, ((tc_vinfo){v, pb}));
}

int tc_graph_add_output(tc_graph *g, tc_value *v, const Onnx__ValueInfoProto *pb) {
  v->flags |= TC_VALUE_OUTPUT;
  return VEC_PUSH(g->model->arena, g->outputs, g->n_outputs, g->cap_outputs, ((tc_vinfo){v, pb}));
}

int tc_graph_add_value_info(tc_graph *g, tc_value *v, const Onnx__ValueInfoProto *pb) {
  return VEC_PUSH(g->model->arena, g->value_info, g->n_value_info, g->cap_value_info,
                  ((tc_vinfo){v, pb}));
}

int tc_graph_add_init(tc_graph *g, tc_value *v, tc_tensor *t) {
  v->init = t;
  return VEC_PUSH(g->model->arena, g->inits, g->n_inits, g->cap_inits, v);
}

tc_node *tc_graph_append_node(tc_graph *g, const char *op_type, const char *domain,
                              const char *name, size_t n_inputs, size_t n_outputs, size_t n_attrs) {
  tc_arena *a = g->model->arena;
  tc_node *n = tc_arena_alloc(a, sizeof *n);
  if (!n)
    return NULL;
  n->op_type = tc_arena_strdup(a, op_type);
  n->domain = tc_arena_strdup(a, domain);
  n->name = tc_arena_strdup(a, name);
  n->inputs = tc_arena_alloc(a, (n_inputs ? n_inputs : 1) * sizeof *n->inputs);
  n->outputs = tc_arena_alloc(a, (n_outputs ? n_outputs : 1) * sizeof *n->outputs);
  n->attrs = tc_arena_alloc(a, (n_attrs ? n_attrs : 1) * sizeof *n->attrs);
  if ((op_type && !n->op_type) || !n->inputs || !n->outputs || !n->attrs)
    return NULL;
  n->n_inputs = n_inputs;
  n->n_outputs = n_outputs;
  n->n_attrs = n_attrs;
  n->graph = g;
  n->id = g->model->next_node_id++;
  n->prev = g->last;
  if (g->last)
    g->last->next = n;
  else
    g->first = n;
  g->last = n;
  g->n_nodes++;
  return n;
}

static void use_remove(tc_value *v, const tc_node *n, int slot) {
  for (size_t i = 0; i < v->n_uses; i++) {
    if (v->uses[i].node == n && v->uses[i].slot == slot) {
      v->uses[i] = v->uses[--v->n_uses];
      return;
    }
  }
}

int tc_node_set_input(tc_node *n, size_t i, tc_value *v) {
  tc_value *old = n->inputs[i];
  if (old)
    use_remove(old, n, (int)i);
  n->inputs[i] = v;
  if (!v)
    return 0;
  return VEC_PUSH(n->graph->model->arena, v->uses, v->n_uses, v->cap_uses, ((tc_use){n, (int)i}));
}

int tc_node_set_output(tc_node *n, size_t i, tc_value *v) {
  if (v && (v->producer || v->init || (v->flags & TC_VALUE_INPUT)))
    return -1;
  if (n->outputs[i])
    n->outputs[i]->producer = NULL;
  n->outputs[i] = v;
  if (v) {
    v->producer = n;
    v->producer_slot = (int)i;
  }
  return 0;
}

void tc_node_remove(tc_node *n) {
  tc_graph *g = n->graph;
  for (size_t i = 0; i < n->n_inputs; i++)
    if (n->inputs[i])
      use_remove(n->inputs[i], n, (int)i);
  for (size_t i = 0; i < n->n_outputs; i++)
    if (n->outputs[i] && n->outputs[i]->producer == n)
      n->outputs[i]->producer = NULL;
  if (n->prev)
    n->prev->next = n->next;
  else
    g->first = n->next;
  if (n->next)
    n->next->prev = n->prev;
  else
    g->last = n->prev;
  n->prev = n->next = NULL;
  g->n_nodes--;
}

const tc_attr *tc_node_attr(const tc_node *n, const char *name) {
  for (size_t i = 0; i < n->n_attrs; i++)
    if (n->attrs[i].name && strcmp(n->attrs[i].name, name) == 0)
      return &n->attrs[i];
  return NULL;
}

int tc_value_replace_uses(tc_value *from, tc_value *to) {
  while (from->n_uses) {
    tc_use u = from->uses[from->n_uses - 1];
    if (tc_node_set_input(u.node, (size_t)u.slot, to) != 0)
      return -1;
  }
  return 0;
}

int tc_value_set_tensor_type(tc_value *v, int32_t elem, size_t rank, const tc_dim *dims) {
  tc_arena *a = v->graph->model->arena;
  tc_dim *d = NULL;
  if (dims) {
    d = tc_arena_memdup(a, dims, (rank ? rank : 1) * sizeof *d);
    if (!d)
      return -1;
    for (size_t i = 0; i < rank; i++)
      if (d[i].param && !(d[i].param = tc_arena_strdup(a, d[i].param)))
        return -1;
  }
  v->type = (tc_type){.kind = TC_TYPE_TENSOR,
                      .elem = elem,
                      .has_shape = dims != NULL,
                      .rank = dims ? rank : 0,
                      .dims = d};
  v->type_dirty = true;
  return 0;
}

size_t tc_tensor_numel(const tc_tensor *t) {
  size_t n = 1;
  for (size_t i = 0; i < t->rank; i++)
    n *= t->dims[i] > 0 ? (size_t)t->dims[i] : 0;
  return n;
}

/* ---- verifier ---- */
static const char *node_label(const tc_node *n) { return n->name ? n->name : ""; }

static bool visible_from(const tc_graph *g, const tc_value *v) {
  for (; g; g = g->parent)
    if (v->graph == g)
      return true;
  return false;
}

static bool has_use(const tc_value *v, const tc_node *n, size_t slot) {
  for (size_t i = 0; i < v->n_uses; i++)
    if (v->uses[i].node == n && v->uses[i].slot == (int)slot)
      return true;
  return false;
}

/* Kahn's algorithm over the nodes of g; returns a node on a cycle, or NULL.
 * Iterative so that long chains cannot exhaust the stack. indeg is scratch
 * indexed by node id. */
static const tc_node *find_cycle(const tc_graph *g, uint32_t *indeg) {
  size_t n_nodes = 0;
  for (const tc_node *n = g->first; n; n = n->next, n_nodes++) {
    indeg[n->id] = 0;
    for (size_t i = 0; i < n->n_inputs; i++)
      if (n->inputs[i] && n->inputs[i]->producer && n->inputs[i]->producer->graph == g)
        indeg[n->id]++;
  }
  const tc_node **queue = malloc((n_nodes ? n_nodes : 1) * sizeof *queue);
  if (!queue)
    return NULL;
  size_t head = 0, tail = 0;
  for (const tc_node *n = g->first; n; n = n->next)
    if (!indeg[n->id])
      queue[tail++] = n;
  while (head < tail) {
    const tc_node *n = queue[head++];
    for (size_t o = 0; o < n->n_outputs; o++) {
      const tc_value *v = n->outputs[o];
      for (size_t u = 0; v && u < v->n_uses; u++) {
        const tc_node *c = v->uses[u].node;
        if (c->graph == g && --indeg[c->id] == 0)
          queue[tail++] = c;
      }
    }
  }
  free(queue);
  if (tail == n_nodes)
    return NULL;
  /* Some nodes never became ready. Walk producers among them: the walk must
   * revisit a node, and that node is on a cycle. */
  const tc_node *n = g->first;
  while (!indeg[n->id])
    n = n->next;
  for (size_t steps = 0; steps <= n_nodes; steps++) {
    const tc_node *next = NULL;
    for (size_t i = 0; i < n->n_inputs && !next; i++) {
      const tc_value *v = n->inputs[i];
      if (v && v->producer && v->producer->graph == g && indeg[v->producer->id])
        next = v->producer;
    }
    n = next;
  }
  return n;
}

static tc_status verify_graph(const tc_graph *g, uint32_t *state, tc_diag *diag) {
  for (const tc_node *n = g->first; n; n = n->next) {
    if (n->graph != g)
      return tc_diag_set(diag, TC_STATUS_INVALID, node_label(n), n->op_type,
                         "node is linked into the wrong graph");
    for (size_t i = 0; i < n->n_inputs; i++) {
      const tc_value *v = n->inputs[i];
      if (!v)
        continue;
      if (!visible_from(g, v))
        return tc_diag_set(diag, TC_STATUS_INVALID, node_label(n), n->op_type,
                           "input '%s' is not visible in this graph", v->name);
      if (!has_use(v, n, i))
        return tc_diag_set(diag, TC_STATUS_INVALID, node_label(n), n->op_type,
                           "input '%s' does not list the node as a use", v->name);
    }
    for (size_t i = 0; i < n->n_outputs; i++) {
      const tc_value *v = n->outputs[i];
      if (v && (v->producer != n || v->producer_slot != (int)i))
        return tc_diag_set(diag, TC_STATUS_INVALID, node_label(n), n->op_type,
                           "output '%s' names another producer", v->name);
    }
    for (size_t a = 0; a < n->n_attrs; a++) {
      const tc_attr *at = &n->attrs[a];
      if (at->g) {
        tc_status s = verify_graph(at->g, state, diag);
        if (s)
          return s;
      }
      for (size_t k = 0; k < at->n_graphs; k++) {
        tc_status s = verify_graph(at->graphs[k], state, diag);
        if (s)
          return s;
      }
    }
  }
  const tc_node *c = find_cycle(g, state);
  if (c)
    return tc_diag_set(diag, TC_STATUS_INVALID, node_label(c), c->op_type,
                       "the graph has a cycle through this node");
  for (size_t i = 0; i < g->n_outputs; i++) {
    const tc_value *v = g->outputs[i].value;
    if (!v->producer && !v->init && !v->sparse && !(v->flags & TC_VALUE_INPUT) && v->graph == g)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                         "graph output '%s' is not produced by any node", v->name);
  }
  return TC_STATUS_OK;
}

tc_status tc_graph_verify(const tc_graph *g, tc_diag *diag) {
  uint32_t *state = calloc(g->model->next_node_id + 1, sizeof *state);
  if (!state)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  tc_status s = verify_graph(g, state, diag);
  free(state);
  return s;
}

tc_param_stats tc_graph_param_stats(const tc_graph *g) {
  tc_param_stats st = {0};
  for (size_t i = 0; i < g->n_inits; i++) {
    const tc_tensor *t = g->inits[i]->init;
    size_t n = tc_tensor_numel(t);
    st.count += n;
    st.bytes += t->dtype == TC_DTYPE_STRING ? 0 : tc_dtype_bytes(t->dtype, n);
    st.tensors++;
  }
  for (size_t i = 0; i < g->n_sparse_inits; i++) {
    const tc_tensor *t = g->sparse_inits[i]->sparse->values;
    if (!t)
      continue;
    size_t n = tc_tensor_numel(t);
    st.count += n;
    st.bytes += tc_dtype_bytes(t->dtype, n);
    st.tensors++;
  }
  return st;
}

/* ---- opsets ---- */
int64_t tc_model_opset(const tc_model *m, const char *domain) {
  for (size_t i = 0; i < m->n_opsets; i++)
    if (tc_domain_equal(m->opsets[i].domain, domain))
      return m->opsets[i].version;
  return 0;
}

int tc_model_set_opset(tc_model *m, const char *domain, int64_t version) {
  for (size_t i = 0; i < m->n_opsets; i++) {
    if (tc_domain_equal(m->opsets[i].domain, domain)) {
      m->opsets[i].version = version;
      return 0;
    }
  }
  tc_opset *o = tc_arena_alloc(m->arena, (m->n_opsets + 1) * sizeof *o);
  const char *d = tc_arena_strdup(m->arena, domain ? domain : "");
  if (!o || !d)
    return -1;
  if (m->n_opsets)
    memcpy(o, m->opsets, m->n_opsets * sizeof *o);
  o[m->n_opsets++] = (tc_opset){.domain = d, .version = version};
  m->opsets = o;
  return 0;
}

tc_function *tc_model_find_function(tc_model *m, const char *domain, const char *name) {
  for (size_t i = 0; i < m->n_functions; i++) {
    tc_function *f = &m->functions[i];
    if (f->name && strcmp(f->name, name) == 0 && tc_domain_equal(f->domain, domain))
      return f;
  }
  return NULL;
}

tc_function *tc_model_add_function(tc_model *m, const char *domain, const char *name) {
  tc_function *fs = tc_arena_alloc(m->arena, (m->n_functions + 1) * sizeof *fs);
  if (!fs)
    return NULL;
  if (m->n_functions)
    memcpy(fs, m->functions, m->n_functions * sizeof *fs);
  tc_function *f = &fs[m->n_functions];
  f->name = tc_arena_strdup(m->arena, name);
  f->domain = tc_arena_strdup(m->arena, domain);
  f->body = tc_graph_new(m, NULL, name);
  if (!f->name || !f->domain || !f->body)
    return NULL;
  m->functions = fs;
  m->n_functions++;
  return f;
}

/* ---- editing helpers ---- */
const char *tc_graph_fresh_name(tc_graph *g, const char *base) {
  tc_arena *a = g->model->arena;
  char buf[256];
  for (;;) {
    snprintf(buf, sizeof buf, "%.200s__%u", base, g->model->next_fresh++);
    if (!tc_graph_lookup(g, buf))
      return tc_arena_strdup(a, buf);
  }
}

tc_value *tc_graph_new_temp(tc_graph *g, const char *base) {
  const char *name = tc_graph_fresh_name(g, base);
  return name ? tc_graph_new_value(g, name, NULL) : NULL;
}

tc_node *tc_graph_insert_node(tc_graph *g, tc_node *before, const char *op_type, const char *domain,
                              const char *name, size_t n_inputs, size_t n_outputs, size_t n_attrs) {
  tc_node *n = tc_graph_append_node(g, op_type, domain, name, n_inputs, n_outputs, n_attrs);
  if (!n || !before || before == n)
    return n;
  /* Unlink from the end and relink before `before`. */
  g->last = n->prev;
  g->last->next = NULL;
  n->prev = before->prev;
  n->next = before;
  if (before->prev)
    before->prev->next = n;
  else
    g->first = n;
  before->prev = n;
  return n;
}

static tc_attr *attr_slot(tc_node *n, size_t i, const char *name, int type) {
  tc_attr *a = &n->attrs[i];
  *a = (tc_attr){.name = tc_arena_strdup(n->graph->model->arena, name), .type = type};
  return a->name ? a : NULL;
}

int tc_node_set_attr_int(tc_node *n, size_t i, const char *name, int64_t v) {
  tc_attr *a = attr_slot(n, i, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  if (!a)
    return -1;
  a->i = v;
  return 0;
}

int tc_node_set_attr_float(tc_node *n, size_t i, const char *name, float v) {
  tc_attr *a = attr_slot(n, i, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  if (!a)
    return -1;
  a->f = v;
  return 0;
}

int tc_node_set_attr_string(tc_node *n, size_t i, const char *name, const char *v) {
  tc_attr *a = attr_slot(n, i, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  size_t len = strlen(v);
  if (!a || !(a->s.data = tc_arena_memdup(n->graph->model->arena, v, len + 1)))
    return -1;
  a->s.len = len;
  return 0;
}

int tc_node_set_attr_ints(tc_node *n, size_t i, const char *name, const int64_t *v, size_t count) {
  tc_attr *a = attr_slot(n, i, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  if (!a || !(a->ints = tc_arena_memdup(n->graph->model->arena, v, count * sizeof *v)))
    return -1;
  a->n_ints = count;
  return 0;
}

int tc_node_set_attr_floats(tc_node *n, size_t i, const char *name, const float *v, size_t count) {
  tc_attr *a = attr_slot(n, i, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
  if (!a || !(a->floats = tc_arena_memdup(n->graph->model->arena, v, count * sizeof *v)))
    return -1;
  a->n_floats = count;
  return 0;
}

void tc_node_copy_attr(tc_node *n, size_t i, const tc_attr *a) { n->attrs[i] = *a; }

int tc_node_resize(tc_node *n, size_t n_inputs, size_t n_attrs) {
  tc_arena *a = n->graph->model->arena;
  for (size_t i = n_inputs; i < n->n_inputs; i++)
    tc_node_set_input(n, i, NULL);
  if (n_inputs > n->n_inputs) {
    tc_value **in = tc_arena_alloc(a, n_inputs * sizeof *in);
    if (!in)
      return -1;
    memcpy(in, n->inputs, n->n_inputs * sizeof *in);
    n->inputs = in;
  }
  n->n_inputs = n_inputs;
  if (n_attrs > n->n_attrs) {
    tc_attr *at = tc_arena_alloc(a, n_attrs * sizeof *at);
    if (!at)
      return -1;
    memcpy(at, n->attrs, n->n_attrs * sizeof *at);
    n->attrs = at;
  }
  n->n_attrs = n_attrs;
  return 0;
}

void tc_node_remove_attr(tc_node *n, const char *name) {
  size_t k = 0;
  for (size_t i = 0; i < n->n_attrs; i++)
    if (!n->attrs[i].name || strcmp(n->attrs[i].name, name) != 0)
      n->attrs[k++] = n->attrs[i];
  n->n_attrs = k;
}

static void unref_buffer(void *p) { tc_buffer_unref(p); }

tc_tensor *tc_tensor_new(tc_model *m, const char *name, int32_t dtype, size_t rank,
                         const int64_t *dims, tc_buffer *buf) {
  if (tc_arena_on_free(m->arena, unref_buffer, buf) != 0) {
    tc_buffer_unref(buf);
    return NULL;
  }
  tc_tensor *t = tc_arena_alloc(m->arena, sizeof *t);
  if (!t)
    return NULL;
  t->name = tc_arena_strdup(m->arena, name);
  t->dims = tc_arena_memdup(m->arena, dims, rank * sizeof *dims);
  if (!t->name || (rank && !t->dims))
    return NULL;
  t->dtype = dtype;
  t->has_dtype = true;
  t->rank = rank;
  t->field = TC_FIELD_RAW;
  t->has_raw = true;
  t->data[TC_FIELD_RAW] = (tc_span){buf, 0, tc_buffer_size(buf)};
  return t;
}

bool tc_value_is_input(const tc_value *v) {
  return v && (v->flags & TC_VALUE_INPUT) &&
         !(v->init && v->graph && v->graph->model && v->graph->model->ir_version < 4);
}

static void drop_init_inputs(tc_graph *g) {
  size_t k = 0;
  for (size_t i = 0; i < g->n_inputs; i++) {
    tc_value *v = g->inputs[i].value;
    if (v->init)
      v->flags &= ~(unsigned)TC_VALUE_INPUT;
    else
      g->inputs[k++] = g->inputs[i];
  }
  g->n_inputs = k;
  for (tc_node *n = g->first; n; n = n->next)
    for (size_t a = 0; a < n->n_attrs; a++) {
      const tc_attr *at = &n->attrs[a];
      if (at->g)
        drop_init_inputs(at->g);
      for (size_t j = 0; j < at->n_graphs; j++)
        drop_init_inputs(at->graphs[j]);
    }
}

void tc_model_raise_ir4(tc_model *m) {
  if (m->ir_version >= 4)
    return;
  drop_init_inputs(m->graph);
  m->ir_version = 4;
}

const tc_tensor *tc_value_const(const tc_value *v) {
  return v && v->init && !tc_value_is_input(v) ? v->init : NULL;
}

int tc_value_make_const(tc_value *v, tc_tensor *t) {
  if (v->producer || v->init)
    return -1;
  t->name = v->name;
  return tc_graph_add_init(v->graph, v, t);
}

void tc_graph_remove_init(tc_graph *g, tc_value *v) {
  size_t k = 0;
  for (size_t i = 0; i < g->n_inits; i++)
    if (g->inits[i] != v)
      g->inits[k++] = g->inits[i];
  g->n_inits = k;
  v->init = NULL;
}

void tc_graph_prune_value_info(tc_graph *g) {
  size_t k = 0;
  for (size_t i = 0; i < g->n_value_info; i++) {
    const tc_value *v = g->value_info[i].value;
    if (v->producer || v->init || v->sparse || (v->flags & TC_VALUE_INPUT))
      g->value_info[k++] = g->value_info[i];
  }
  g->n_value_info = k;
}

/* Calls fn for every value of g's scope that a node inside the subgraphs of n reads. */
static void outer_reads(const tc_graph *g, const tc_node *n, void (*fn)(const tc_value *, void *),
                        void *arg) {
  for (size_t a = 0; a < n->n_attrs; a++) {
    const tc_attr *at = &n->attrs[a];
    size_t ng = at->g ? 1 : at->n_graphs;
    for (size_t k = 0; k < ng; k++) {
      const tc_graph *sg = at->g ? at->g : at->graphs[k];
      for (const tc_node *c = sg->first; c; c = c->next) {
        for (size_t i = 0; i < c->n_inputs; i++)
          if (c->inputs[i] && c->inputs[i]->graph == g)
            fn(c->inputs[i], arg);
        outer_reads(g, c, fn, arg);
      }
    }
  }
}

typedef struct topo_state {
  tc_node **stack;
  size_t sp, cap;
  uint8_t *mark; /* by node id: 0 new, 1 pushed, 2 expanded (producers pending), 3 placed */
  const tc_node *cycle;
  bool nomem;
} topo_state;

static void push_producer(const tc_value *v, void *arg) {
  topo_state *t = arg;
  tc_node *p = v->producer;
  if (!p || p->graph != v->graph || t->mark[p->id] == 3)
    return;
  if (t->mark[p->id] == 2) {
    t->cycle = p;
    return;
  }
  if (t->sp == t->cap) {
    size_t ncap = t->cap * 2;
    tc_node **ns = realloc(t->stack, ncap * sizeof *ns);
    if (!ns) {
      t->nomem = true;
      return;
    }
    t->stack = ns;
    t->cap = ncap;
  }
  t->mark[p->id] = 1;
  t->stack[t->sp++] = p;
}

tc_status tc_graph_toposort(tc_graph *g, tc_diag *diag) {
  size_t n_nodes = g->n_nodes;
  tc_model *m = g->model;
  topo_state t = {.cap = n_nodes + 16, .mark = calloc(m->next_node_id + 1, 1)};
  t.stack = malloc(t.cap * sizeof *t.stack);
  tc_node **order = malloc((n_nodes + 1) * sizeof *order);
  tc_status st = TC_STATUS_OK;
  if (!t.stack || !t.mark || !order)
    goto nomem;
  /* Depth-first from each node in list order, producers first: a graph that
   * is already sorted keeps its order. A node is expanded (its producers
   * pushed) the first time it reaches the top and placed the second time; a
   * producer met while expanded is an ancestor, hence a cycle. */
  size_t placed = 0;
  for (tc_node *root = g->first; root; root = root->next) {
    if (t.mark[root->id] == 3)
      continue;
    t.sp = 0;
    t.mark[root->id] = 1;
    t.stack[t.sp++] = root;
    while (t.sp) {
      tc_node *n = t.stack[t.sp - 1];
      if (t.mark[n->id] == 3) {
        t.sp--;
      } else if (t.mark[n->id] == 2) {
        t.sp--;
        t.mark[n->id] = 3;
        order[placed++] = n;
      } else {
        t.mark[n->id] = 2;
        for (size_t i = n->n_inputs; i-- > 0;)
          if (n->inputs[i] && n->inputs[i]->graph == g)
            push_producer(n->inputs[i], &t);
        outer_reads(g, n, push_producer, &t);
        if (t.nomem)
          goto nomem;
        if (t.cycle) {
          st = tc_diag_set(diag, TC_STATUS_INVALID, node_label(t.cycle), t.cycle->op_type,
                           "the graph has a cycle through this node");
          goto done;
        }
      }
    }
  }
  g->first = placed ? order[0] : NULL;
  g->last = placed ? order[placed - 1] : NULL;
  for (size_t i = 0; i < placed; i++) {
    order[i]->prev = i ? order[i - 1] : NULL;
    order[i]->next = i + 1 < placed ? order[i + 1] : NULL;
  }
  goto done;
nomem:
  st = tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
done:
  free(t.stack);
  free(t.mark);
  free(order);
  return st;
}

/* ---- copying ---- */
int tc_value_map_set(tc_value_map *map, const tc_value *from, tc_value *to) {
  size_t id = from->id;
  if (id >= map->n) {
    size_t n = map->n ? map->n : 64;
    while (n <= id)
      n *= 2;
    tc_value **nt = realloc(map->to, n * sizeof *nt);
    if (nt)
      map->to = nt;
    bool *ns = nt ? realloc(map->set, n * sizeof *ns) : NULL;
    if (!ns)
      return -1;
    map->set = ns;
    memset(map->set + map->n, 0, (n - map->n) * sizeof *ns);
    map->n = n;
  }
  map->to[id] = to;
  map->set[id] = true;
  return 0;
}

bool tc_value_map_get(const tc_value_map *map, const tc_value *from, tc_value **to) {
  if (from->id >= map->n || !map->set[from->id])
    return false;
  *to = map->to[from->id];
  return true;
}

void tc_value_map_free(tc_value_map *map) {
  free(map->to);
  free(map->set);
  *map = (tc_value_map){0};
}

tc_value *tc_value_map_fresh(tc_value_map *map, tc_graph *g, const tc_value *from) {
  tc_arena *a = g->model->arena;
  tc_value *v = tc_graph_new_temp(g, from->name);
  if (!v)
    return NULL;
  v->type = from->type;
  v->pb_type = from->pb_type;
  v->type_dirty = from->type_dirty;
  if (from->type.rank && from->type.dims &&
      !(v->type.dims = tc_arena_memdup(a, from->type.dims, from->type.rank * sizeof *v->type.dims)))
    return NULL;
  return tc_value_map_set(map, from, v) == 0 ? v : NULL;
}

static tc_status copy_oom(tc_diag *diag) {
  return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
}

/* The value a copy reads where the original read v. */
static tc_value *mapped(const tc_value_map *map, tc_value *v) {
  tc_value *to;
  return v && tc_value_map_get(map, v, &to) ? to : v;
}

static tc_status copy_node(tc_graph *g, tc_node *before, const tc_node *n, tc_value_map *map,
                           tc_diag *diag) {
  tc_node *c = tc_graph_insert_node(g, before, n->op_type, n->domain, n->name, n->n_inputs,
                                    n->n_outputs, n->n_attrs);
  if (!c)
    return copy_oom(diag);
  c->pb = n->pb;
  for (size_t i = 0; i < n->n_inputs; i++)
    if (tc_node_set_input(c, i, mapped(map, n->inputs[i])) != 0)
      return copy_oom(diag);
  for (size_t i = 0; i < n->n_outputs; i++) {
    tc_value *v = mapped(map, n->outputs[i]);
    if (v && v == n->outputs[i] && !(v = tc_value_map_fresh(map, g, v)))
      return copy_oom(diag);
    if (tc_node_set_output(c, i, v) != 0)
      return tc_diag_set(diag, TC_STATUS_INVALID, n->name ? n->name : "", n->op_type,
                         "copy of output '%s' would have a second producer", v->name);
  }
  for (size_t i = 0; i < n->n_attrs; i++) {
    tc_status s = tc_attr_copy(&c->attrs[i], c, &n->attrs[i], map, diag);
    if (s)
      return s;
  }
  return TC_STATUS_OK;
}

tc_status tc_graph_copy_nodes(tc_graph *g, tc_node *before, const tc_graph *src, tc_value_map *map,
                              tc_diag *diag) {
  if (src == g) /* the copies would be copied again, without end */
    return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL, "a graph cannot be copied into itself");
  /* All outputs first: a reader may come before its producer in src. */
  tc_value *to;
  for (const tc_node *n = src->first; n; n = n->next)
    for (size_t i = 0; i < n->n_outputs; i++)
      if (n->outputs[i] && !tc_value_map_get(map, n->outputs[i], &to) &&
          !tc_value_map_fresh(map, g, n->outputs[i]))
        return copy_oom(diag);
  for (const tc_node *n = src->first; n; n = n->next) {
    tc_status s = copy_node(g, before, n, map, diag);
    if (s)
      return s;
  }
  return TC_STATUS_OK;
}

static tc_tensor *rename_tensor(tc_model *m, const tc_tensor *t, const char *name) {
  tc_tensor *c = t ? tc_arena_memdup(m->arena, t, sizeof *c) : NULL;
  if (c)
    c->name = name;
  return c;
}

static tc_status copy_inits(tc_graph *g, const tc_graph *src, tc_value_map *map, tc_diag *diag) {
  tc_model *m = g->model;
  for (size_t i = 0; i < src->n_inits; i++) {
    tc_value *s = src->inits[i], *v = mapped(map, s);
    if (v == s && !(v = tc_value_map_fresh(map, g, s)))
      return copy_oom(diag);
    tc_tensor *t = rename_tensor(m, s->init, v->name);
    if (!t || tc_graph_add_init(g, v, t) != 0)
      return copy_oom(diag);
  }
  for (size_t i = 0; i < src->n_sparse_inits; i++) {
    tc_value *s = src->sparse_inits[i], *v = mapped(map, s);
    if (v == s && !(v = tc_value_map_fresh(map, g, s)))
      return copy_oom(diag);
    tc_sparse_tensor *sp = tc_arena_memdup(m->arena, s->sparse, sizeof *sp);
    if (!sp || (s->sparse->values && !(sp->values = rename_tensor(m, s->sparse->values, v->name))))
      return copy_oom(diag);
    v->sparse = sp;
    if (tc_arena_vec_reserve(m->arena, (void **)&g->sparse_inits, &g->cap_sparse_inits,
                             g->n_sparse_inits, sizeof *g->sparse_inits) != 0)
      return copy_oom(diag);
    g->sparse_inits[g->n_sparse_inits++] = v;
  }
  return TC_STATUS_OK;
}

tc_graph *tc_graph_copy(tc_graph *parent, tc_node *owner, const tc_graph *src, tc_value_map *map,
                        tc_diag *diag) {
  tc_graph *g = tc_graph_new(parent->model, parent, NULL);
  if (!g) {
    copy_oom(diag);
    return NULL;
  }
  /* src->pb is not kept: its quantization annotations name the old values. */
  g->name = src->name;
  g->owner = owner;
  for (size_t i = 0; i < src->n_inputs; i++) {
    tc_value *v = tc_value_map_fresh(map, g, src->inputs[i].value);
    if (!v || tc_graph_add_input(g, v, src->inputs[i].pb) != 0) {
      copy_oom(diag);
      return NULL;
    }
  }
  if (copy_inits(g, src, map, diag) || tc_graph_copy_nodes(g, NULL, src, map, diag))
    return NULL;
  for (size_t i = 0; i < src->n_outputs; i++) {
    tc_value *v = mapped(map, src->outputs[i].value);
    if (!v) {
      tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                  "subgraph output '%s' is a value that was left out", src->outputs[i].value->name);
      return NULL;
    }
    if (tc_graph_add_output(g, v, src->outputs[i].pb) != 0) {
      copy_oom(diag);
      return NULL;
    }
  }
  for (size_t i = 0; i < src->n_value_info; i++) {
    tc_value *v = src->value_info[i].value, *to;
    if (tc_value_map_get(map, v, &to) && to && to->graph == g &&
        tc_graph_add_value_info(g, to, src->value_info[i].pb) != 0) {
      copy_oom(diag);
      return NULL;
    }
  }
  return g;
}

tc_status tc_attr_copy(tc_attr *dst, tc_node *owner, const tc_attr *a, tc_value_map *map,
                       tc_diag *diag) {
  tc_model *m = owner->graph->model;
  *dst = *a;
  /* Tensors get their own struct (passes rename them), sharing the payload. */
  if (a->t && !(dst->t = rename_tensor(m, a->t, a->t->name)))
    return copy_oom(diag);
  if (a->n_tensors &&
      !(dst->tensors = tc_arena_alloc(m->arena, a->n_tensors * sizeof *dst->tensors)))
    return copy_oom(diag);
  for (size_t k = 0; k < a->n_tensors; k++)
    if (!(dst->tensors[k] = rename_tensor(m, a->tensors[k], a->tensors[k]->name)))
      return copy_oom(diag);
  if (a->g && !(dst->g = tc_graph_copy(owner->graph, owner, a->g, map, diag)))
    return diag && diag->status ? diag->status : TC_STATUS_NOMEM;
  if (!a->n_graphs)
    return TC_STATUS_OK;
  dst->graphs = tc_arena_alloc(m->arena, a->n_graphs * sizeof *dst->graphs);
  if (!dst->graphs)
    return copy_oom(diag);
  for (size_t k = 0; k < a->n_graphs; k++)
    if (!(dst->graphs[k] = tc_graph_copy(owner->graph, owner, a->graphs[k], map, diag)))
      return diag && diag->status ? diag->status : TC_STATUS_NOMEM;
  return TC_STATUS_OK;
}

/* A span of memory p does not own (empty when ptr is NULL). 0 on success. */
static int view_span(tc_model *m, const void *ptr, size_t bytes, tc_span *out) {
  if (!ptr)
    return 0;
  tc_buffer *b = tc_buffer_wrap_static((void *)ptr, bytes);
  if (!b || tc_arena_on_free(m->arena, unref_buffer, b) != 0) {
    tc_buffer_unref(b);
    return -1;
  }
  *out = (tc_span){b, 0, bytes};
  return 0;
}

/* A tensor viewing the payload of p in place; NULL (diag set) on failure. */
static tc_tensor *view_tensor(tc_model *m, const Onnx__TensorProto *p, tc_diag *diag) {
  if (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                "tensor '%s' in an attribute default has external data", p->name ? p->name : "");
    return NULL;
  }
  tc_tensor *t = tc_arena_alloc(m->arena, sizeof *t);
  if (!t) {
    copy_oom(diag);
    return NULL;
  }
  *t = (tc_tensor){.name = p->name,
                   .dtype = p->data_type,
                   .has_dtype = p->has_data_type,
                   .rank = p->n_dims,
                   .dims = p->dims,
                   .has_raw = p->has_raw_data,
                   .n_strings = p->n_string_data,
                   .strings = p->string_data,
                   .pb = p};
  struct {
    const void *ptr;
    size_t bytes;
    tc_tensor_field f;
  } fields[] = {
      {p->has_raw_data ? p->raw_data.data : NULL, p->raw_data.len, TC_FIELD_RAW},
      {p->float_data, p->n_float_data * sizeof(float), TC_FIELD_FLOAT},
      {p->int32_data, p->n_int32_data * sizeof(int32_t), TC_FIELD_INT32},
      {p->int64_data, p->n_int64_data * sizeof(int64_t), TC_FIELD_INT64},
      {p->double_data, p->n_double_data * sizeof(double), TC_FIELD_DOUBLE},
      {p->uint64_data, p->n_uint64_data * sizeof(uint64_t), TC_FIELD_UINT64},
  };
  t->field = p->n_string_data ? TC_FIELD_STRING : TC_FIELD_RAW;
  bool found = p->has_raw_data;
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    if (!fields[i].ptr)
      continue;
    if (view_span(m, fields[i].ptr, fields[i].bytes, &t->data[fields[i].f]) != 0) {
      copy_oom(diag);
      return NULL;
    }
    if (!found) {
      t->field = fields[i].f;
      found = true;
    }
  }
  return t;
}

tc_status tc_attr_from_pb(tc_model *m, tc_attr *a, const Onnx__AttributeProto *p, tc_diag *diag) {
  if (p->g || p->n_graphs)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "attribute '%s' has a graph as its default value", p->name ? p->name : "");
  *a = (tc_attr){.name = p->name,
                 .type = p->type,
                 .ref_attr_name = p->ref_attr_name,
                 .f = p->f,
                 .i = p->i,
                 .s = p->s,
                 .n_floats = p->n_floats,
                 .n_ints = p->n_ints,
                 .n_strings = p->n_strings,
                 .floats = p->floats,
                 .ints = p->ints,
                 .strings = p->strings,
                 .pb = p};
  if (p->t && !(a->t = view_tensor(m, p->t, diag)))
    return diag && diag->status ? diag->status : TC_STATUS_NOMEM;
  if (p->n_tensors && !(a->tensors = tc_arena_alloc(m->arena, p->n_tensors * sizeof *a->tensors)))
    return copy_oom(diag);
  a->n_tensors = p->n_tensors;
  for (size_t i = 0; i < p->n_tensors; i++)
    if (!(a->tensors[i] = view_tensor(m, p->tensors[i], diag)))
      return diag && diag->status ? diag->status : TC_STATUS_NOMEM;
  return TC_STATUS_OK;
}

bool tc_is_op(const tc_node *n, const char *op_type) {
  return n && tc_domain_is_onnx(n->domain) && strcmp(n->op_type, op_type) == 0;
}

bool tc_op_is_random(const tc_node *n) {
  static const char *const random_ops[] = {"RandomNormal",
                                           "RandomUniform",
                                           "RandomNormalLike",
                                           "RandomUniformLike",
                                           "Multinomial",
                                           "Bernoulli",
                                           NULL};
  if (!tc_domain_is_onnx(n->domain))
    return false;
  for (const char *const *r = random_ops; *r; r++)
    if (strcmp(n->op_type, *r) == 0)
      return true;
  return false;
}
