/* eliminate-common: common-subexpression elimination.
 *
 *   x ─▶ Shape ─▶ a              x ─▶ Shape ─▶ a ─▶ ...
 *   x ─▶ Shape ─▶ b      ⇒                      └─▶ ...
 *
 * Two nodes with the same op, domain, attributes and input values compute the
 * same outputs; readers of the second are moved to the first. Identical
 * small initializers (same dtype, dims and bytes, up to 4 KiB) are merged
 * first so that nodes reading copies of a constant compare equal. Skipped:
 * nodes with subgraphs or tensor attributes, random ops, and a second node
 * whose outputs are graph outputs. Visiting in order lets merges cascade. */
#include <stdlib.h>
#include <string.h>

#include "onnx_io.h"
#include "pass.h"

#define MERGE_MAX_BYTES 4096

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 1099511628211ull; }

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = mix(h, b[i]);
  return h;
}

static uint64_t hash_str(uint64_t h, const char *s) { return s ? hash_bytes(h, s, strlen(s)) : h; }

/* ---- initializers ---- */
typedef struct init_key {
  tc_value *v;
  const void *data;
  size_t len;
  void *owned;
  uint64_t hash;
} init_key;

static bool same_init(const init_key *a, const init_key *b) {
  const tc_tensor *x = a->v->init, *y = b->v->init;
  return a->hash == b->hash && x->dtype == y->dtype && x->rank == y->rank && a->len == b->len &&
         (!x->rank || memcmp(x->dims, y->dims, x->rank * sizeof *x->dims) == 0) &&
         (!a->len || memcmp(a->data, b->data, a->len) == 0);
}

static int by_hash(const void *pa, const void *pb) {
  const init_key *a = pa, *b = pb;
  if (a->hash != b->hash)
    return a->hash < b->hash ? -1 : 1;
  return a->v->id < b->v->id ? -1 : a->v->id > b->v->id;
}

static tc_status merge_inits(tc_pass_ctx *c, tc_graph *g) {
  size_t n = g->n_inits;
  init_key *keys = calloc(n ? n : 1, sizeof *keys);
  if (!keys)
    return tc_pass_nomem(c);
  size_t nk = 0;
  tc_status st = TC_STATUS_OK;
  for (size_t i = 0; i < n; i++) {
    tc_value *v = g->inits[i];
    const tc_tensor *t = v->init;
    if ((v->flags & (TC_VALUE_INPUT | TC_VALUE_OUTPUT)) || t->dtype == TC_DTYPE_STRING ||
        !tc_dtype_known(t->dtype) || tc_dtype_bytes(t->dtype, tc_tensor_numel(t)) > MERGE_MAX_BYTES)
      continue;
    init_key *k = &keys[nk];
    if (tc_tensor_raw_bytes(t, &k->data, &k->len, &k->owned, NULL) != TC_STATUS_OK)
      continue;
    k->v = v;
    k->hash =
        hash_bytes(mix(hash_bytes(14695981039346656037ull, t->dims, t->rank * sizeof *t->dims),
                       (uint64_t)t->dtype),
                   k->data, k->len);
    nk++;
  }
  /* Equal tensors sort next to each other (ties by value id: the first defined survives). */
  qsort(keys, nk, sizeof *keys, by_hash);
  for (size_t i = 1, keep = 0; i < nk; i++) {
    if (!same_init(&keys[i], &keys[keep])) {
      keep = i;
      continue;
    }
    if (tc_value_replace_uses(keys[i].v, keys[keep].v) != 0) {
      st = tc_pass_nomem(c);
      break;
    }
    tc_pass_count(c, "initializer", 1);
  }
  for (size_t i = 0; i < nk; i++)
    free(keys[i].owned);
  free(keys);
  return st;
}

/* ---- nodes ---- */
static bool eligible(const tc_node *n) {
  for (size_t i = 0; i < n->n_attrs; i++) {
    const tc_attr *a = &n->attrs[i];
    if (a->g || a->n_graphs || a->t || a->n_tensors || a->ref_attr_name ||
        a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR ||
        a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS ||
        a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO ||
        a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS)
      return false;
  }
  for (size_t i = 0; i < n->n_outputs; i++)
    if (!n->outputs[i])
      return false;
  return !tc_op_is_random(n);
}

static const tc_attr *find_attr(const tc_node *n, const char *name) {
  return tc_node_attr(n, name);
}

static bool same_attr(const tc_attr *a, const tc_attr *b) {
  if (a->type != b->type || a->f != b->f || a->i != b->i || a->s.len != b->s.len ||
      a->n_floats != b->n_floats || a->n_ints != b->n_ints || a->n_strings != b->n_strings)
    return false;
  if ((a->s.len && memcmp(a->s.data, b->s.data, a->s.len)) ||
      (a->n_floats && memcmp(a->floats, b->floats, a->n_floats * sizeof *a->floats)) ||
      (a->n_ints && memcmp(a->ints, b->ints, a->n_ints * sizeof *a->ints)))
    return false;
  for (size_t i = 0; i < a->n_strings; i++)
    if (a->strings[i].len != b->strings[i].len ||
        memcmp(a->strings[i].data, b->strings[i].data, a->strings[i].len))
      return false;
  return true;
}

static bool same_node(const tc_node *a, const tc_node *b) {
  if (strcmp(a->op_type, b->op_type) != 0 || !tc_domain_equal(a->domain, b->domain) ||
      a->n_inputs != b->n_inputs || a->n_outputs != b->n_outputs || a->n_attrs != b->n_attrs)
    return false;
  for (size_t i = 0; i < a->n_inputs; i++)
    if (a->inputs[i] != b->inputs[i])
      return false;
  for (size_t i = 0; i < a->n_attrs; i++) {
    const tc_attr *o = find_attr(b, a->attrs[i].name);
    if (!o || !same_attr(&a->attrs[i], o))
      return false;
  }
  return true;
}

static uint64_t node_hash(const tc_node *n) {
  uint64_t h = hash_str(14695981039346656037ull, n->op_type);
  for (size_t i = 0; i < n->n_inputs; i++)
    h = mix(h, n->inputs[i] ? n->inputs[i]->id + 1 : 0);
  return mix(h, n->n_attrs);
}

tc_status tc_pass_eliminate_common(tc_pass_ctx *c, tc_graph *g) {
  tc_status st = merge_inits(c, g);
  if (st)
    return st;
  size_t cap = 16;
  while (cap < g->n_nodes * 2)
    cap *= 2;
  tc_node **table = calloc(cap, sizeof *table);
  if (!table)
    return tc_pass_nomem(c);
  for (tc_node *n = g->first, *next; n; n = next) {
    next = n->next;
    if (!eligible(n))
      continue;
    size_t i = node_hash(n) & (cap - 1);
    for (; table[i]; i = (i + 1) & (cap - 1))
      if (same_node(table[i], n))
        break;
    if (!table[i]) {
      table[i] = n;
      continue;
    }
    bool outputs = false;
    for (size_t o = 0; o < n->n_outputs; o++)
      outputs |= (n->outputs[o]->flags & TC_VALUE_OUTPUT) != 0;
    if (outputs) {
      tc_pass_explain(c, n, "duplicate of '%s' kept: its outputs are graph outputs",
                      table[i]->name ? table[i]->name : "");
      continue;
    }
    for (size_t o = 0; o < n->n_outputs; o++)
      if (tc_value_replace_uses(n->outputs[o], table[i]->outputs[o]) != 0) {
        free(table);
        return tc_pass_nomem(c);
      }
    tc_node_remove(n);
    tc_pass_count(c, "node", 1);
  }
  free(table);
  return TC_STATUS_OK;
}
