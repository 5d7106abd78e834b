#include "inspect.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"

static int counts_add(tc_counts *c, const char *key, size_t bytes) {
  for (size_t i = 0; i < c->n; i++) {
    if (strcmp(c->items[i].key, key) == 0) {
      c->items[i].count++;
      c->items[i].bytes += bytes;
      return 0;
    }
  }
  if (c->n == c->cap) {
    size_t ncap = c->cap ? c->cap * 2 : 32;
    tc_count_entry *p = realloc(c->items, ncap * sizeof *p);
    if (!p)
      return -1;
    c->items = p;
    c->cap = ncap;
  }
  char *k = strdup(key);
  if (!k)
    return -1;
  c->items[c->n++] = (tc_count_entry){k, 1, bytes};
  return 0;
}

static void counts_free(tc_counts *c) {
  for (size_t i = 0; i < c->n; i++)
    free(c->items[i].key);
  free(c->items);
}

static int by_key(const void *a, const void *b) {
  return strcmp(((const tc_count_entry *)a)->key, ((const tc_count_entry *)b)->key);
}

static int by_count(const void *a, const void *b) {
  const tc_count_entry *x = a, *y = b;
  if (x->count != y->count)
    return x->count < y->count ? 1 : -1;
  return strcmp(x->key, y->key);
}

static void note_tensor(tc_model_summary *s, const tc_tensor *t) {
  if (t && t->field == TC_FIELD_EXTERNAL)
    s->err |= counts_add(&s->ext, t->ext_location, t->data[TC_FIELD_EXTERNAL].len);
}

static void walk(tc_model_summary *s, const tc_graph *g, bool top) {
  if (!top)
    s->subgraphs++;
  tc_param_stats p = tc_graph_param_stats(g);
  s->params.count += p.count;
  s->params.bytes += p.bytes;
  s->params.tensors += p.tensors;
  for (size_t i = 0; i < g->n_inits; i++)
    note_tensor(s, g->inits[i]->init);
  for (const tc_node *n = g->first; n; n = n->next) {
    char key[512];
    if (!tc_domain_is_onnx(n->domain))
      snprintf(key, sizeof key, "%s:%s", n->domain, n->op_type ? n->op_type : "");
    else
      snprintf(key, sizeof key, "%s", n->op_type ? n->op_type : "");
    s->err |= counts_add(&s->ops, key, 0);
    s->nodes++;
    for (size_t a = 0; a < n->n_attrs; a++) {
      const tc_attr *at = &n->attrs[a];
      note_tensor(s, at->t);
      for (size_t k = 0; k < at->n_tensors; k++)
        note_tensor(s, at->tensors[k]);
      if (at->g)
        walk(s, at->g, false);
      for (size_t k = 0; k < at->n_graphs; k++)
        walk(s, at->graphs[k], false);
    }
  }
}

static const char *type_kind_name(tc_type_kind k) {
  static const char *names[] = {"unknown",  "tensor",        "sequence", "map",
                                "optional", "sparse_tensor", "opaque"};
  return names[k];
}

static const char *nz(const char *s) { return s ? s : ""; }

static void shape_text(const tc_type *t, char *buf, size_t cap) {
  if (t->kind != TC_TYPE_TENSOR && t->kind != TC_TYPE_SPARSE) {
    snprintf(buf, cap, "%s", type_kind_name(t->kind));
    return;
  }
  if (!t->has_shape) {
    snprintf(buf, cap, "%s [?]", tc_dtype_name(t->elem));
    return;
  }
  size_t len = (size_t)snprintf(buf, cap, "%s [", tc_dtype_name(t->elem));
  for (size_t i = 0; i < t->rank && len < cap; i++) {
    const tc_dim *d = &t->dims[i];
    const char *sep = i ? ", " : "";
    if (d->kind == TC_DIM_VALUE)
      len += (size_t)snprintf(buf + len, cap - len, "%s%lld", sep, (long long)d->value);
    else if (d->kind == TC_DIM_PARAM)
      len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, d->param);
    else
      len += (size_t)snprintf(buf + len, cap - len, "%s?", sep);
  }
  if (len < cap)
    snprintf(buf + len, cap - len, "]");
}

static void human_bytes(size_t b, char *buf, size_t cap) {
  const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = (double)b;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    u++;
  }
  snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void text_values(FILE *f, const char *title, const tc_vinfo *vs, size_t n) {
  fprintf(f, "%s (%zu)\n", title, n);
  for (size_t i = 0; i < n; i++) {
    char shape[512];
    shape_text(&vs[i].value->type, shape, sizeof shape);
    fprintf(f, "  %-24s %s\n", vs[i].value->name, shape);
  }
}

static void write_text(const tc_model *m, const char *path, tc_model_summary *s, FILE *f) {
  const Onnx__ModelProto *pb = m->pb;
  fprintf(f, "model       %s\n", path);
  fprintf(f, "producer    %s %s\n", nz(pb->producer_name), nz(pb->producer_version));
  fprintf(f, "ir_version  %lld\n", (long long)m->ir_version);
  fprintf(f, "opsets      ");
  for (size_t i = 0; i < m->n_opsets; i++)
    fprintf(f, "%s%s %lld", i ? ", " : "",
            m->opsets[i].domain && *m->opsets[i].domain ? m->opsets[i].domain : "ai.onnx",
            (long long)m->opsets[i].version);
  fprintf(f, "\n");
  text_values(f, "inputs", m->graph->inputs, m->graph->n_inputs);
  text_values(f, "outputs", m->graph->outputs, m->graph->n_outputs);
  fprintf(f, "nodes       %zu (%zu in the main graph, %zu subgraphs)\n", s->nodes,
          m->graph->n_nodes, s->subgraphs);
  if (s->ops.n)
    qsort(s->ops.items, s->ops.n, sizeof *s->ops.items, by_count);
  fprintf(f, "ops         %zu kinds\n", s->ops.n);
  for (size_t i = 0; i < s->ops.n; i++)
    fprintf(f, "  %-24s %zu\n", s->ops.items[i].key, s->ops.items[i].count);
  char hb[64];
  human_bytes(s->params.bytes, hb, sizeof hb);
  fprintf(f, "parameters  %zu in %zu tensors (%s)\n", s->params.count, s->params.tensors, hb);
  if (s->ext.n) {
    fprintf(f, "external data\n");
    for (size_t i = 0; i < s->ext.n; i++) {
      human_bytes(s->ext.items[i].bytes, hb, sizeof hb);
      fprintf(f, "  %-24s %zu tensors, %s\n", s->ext.items[i].key, s->ext.items[i].count, hb);
    }
  }
  if (m->n_functions) {
    fprintf(f, "functions   %zu\n", m->n_functions);
    for (size_t i = 0; i < m->n_functions; i++)
      fprintf(f, "  %s.%s (%zu nodes)\n", nz(m->functions[i].domain), nz(m->functions[i].name),
              m->functions[i].body->n_nodes);
  }
}

static void json_values(tc_json *j, const char *key, const tc_vinfo *vs, size_t n) {
  tc_json_key(j, key);
  tc_json_begin_array(j);
  for (size_t i = 0; i < n; i++) {
    const tc_type *t = &vs[i].value->type;
    tc_json_begin_object(j);
    tc_json_key(j, "name");
    tc_json_string(j, vs[i].value->name);
    tc_json_key(j, "type");
    tc_json_string(j, type_kind_name(t->kind));
    tc_json_key(j, "dtype");
    if (t->kind == TC_TYPE_TENSOR || t->kind == TC_TYPE_SPARSE)
      tc_json_string(j, tc_dtype_name(t->elem));
    else
      tc_json_null(j);
    tc_json_key(j, "shape");
    if ((t->kind == TC_TYPE_TENSOR || t->kind == TC_TYPE_SPARSE) && t->has_shape) {
      tc_json_begin_array(j);
      for (size_t d = 0; d < t->rank; d++) {
        if (t->dims[d].kind == TC_DIM_VALUE)
          tc_json_int(j, t->dims[d].value);
        else if (t->dims[d].kind == TC_DIM_PARAM)
          tc_json_string(j, t->dims[d].param);
        else
          tc_json_null(j);
      }
      tc_json_end_array(j);
    } else {
      tc_json_null(j);
    }
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
}

static void write_json(const tc_model *m, const char *path, tc_model_summary *s, FILE *f) {
  const Onnx__ModelProto *pb = m->pb;
  tc_json j;
  tc_json_init(&j, f);
  tc_json_begin_object(&j);
  tc_json_key(&j, "schema");
  tc_json_string(&j, "tacoc.inspect/1");
  tc_json_key(&j, "file");
  tc_json_string(&j, path);
  tc_json_key(&j, "ir_version");
  tc_json_int(&j, m->ir_version);
  tc_json_key(&j, "producer");
  tc_json_begin_object(&j);
  tc_json_key(&j, "name");
  tc_json_string(&j, pb->producer_name);
  tc_json_key(&j, "version");
  tc_json_string(&j, pb->producer_version);
  tc_json_end_object(&j);
  tc_json_key(&j, "opsets");
  tc_json_begin_array(&j);
  for (size_t i = 0; i < m->n_opsets; i++) {
    tc_json_begin_object(&j);
    tc_json_key(&j, "domain");
    tc_json_string(&j, nz(m->opsets[i].domain));
    tc_json_key(&j, "version");
    tc_json_int(&j, m->opsets[i].version);
    tc_json_end_object(&j);
  }
  tc_json_end_array(&j);
  json_values(&j, "inputs", m->graph->inputs, m->graph->n_inputs);
  json_values(&j, "outputs", m->graph->outputs, m->graph->n_outputs);
  tc_json_key(&j, "nodes");
  tc_json_uint(&j, s->nodes);
  tc_json_key(&j, "subgraphs");
  tc_json_uint(&j, s->subgraphs);
  if (s->ops.n)
    qsort(s->ops.items, s->ops.n, sizeof *s->ops.items, by_key);
  tc_json_key(&j, "ops");
  tc_json_begin_object(&j);
  for (size_t i = 0; i < s->ops.n; i++) {
    tc_json_key(&j, s->ops.items[i].key);
    tc_json_uint(&j, s->ops.items[i].count);
  }
  tc_json_end_object(&j);
  tc_json_key(&j, "parameters");
  tc_json_begin_object(&j);
  tc_json_key(&j, "count");
  tc_json_uint(&j, s->params.count);
  tc_json_key(&j, "bytes");
  tc_json_uint(&j, s->params.bytes);
  tc_json_key(&j, "tensors");
  tc_json_uint(&j, s->params.tensors);
  tc_json_end_object(&j);
  if (s->ext.n)
    qsort(s->ext.items, s->ext.n, sizeof *s->ext.items, by_key);
  tc_json_key(&j, "external_data");
  tc_json_begin_array(&j);
  for (size_t i = 0; i < s->ext.n; i++) {
    tc_json_begin_object(&j);
    tc_json_key(&j, "location");
    tc_json_string(&j, s->ext.items[i].key);
    tc_json_key(&j, "tensors");
    tc_json_uint(&j, s->ext.items[i].count);
    tc_json_key(&j, "bytes");
    tc_json_uint(&j, s->ext.items[i].bytes);
    tc_json_end_object(&j);
  }
  tc_json_end_array(&j);
  tc_json_key(&j, "functions");
  tc_json_begin_array(&j);
  for (size_t i = 0; i < m->n_functions; i++) {
    const tc_function *fn = &m->functions[i];
    tc_json_begin_object(&j);
    tc_json_key(&j, "domain");
    tc_json_string(&j, nz(fn->domain));
    tc_json_key(&j, "name");
    tc_json_string(&j, nz(fn->name));
    tc_json_key(&j, "inputs");
    tc_json_uint(&j, fn->body->n_inputs);
    tc_json_key(&j, "outputs");
    tc_json_uint(&j, fn->body->n_outputs);
    tc_json_key(&j, "nodes");
    tc_json_uint(&j, fn->body->n_nodes);
    tc_json_end_object(&j);
  }
  tc_json_end_array(&j);
  tc_json_key(&j, "metadata");
  tc_json_begin_object(&j);
  for (size_t i = 0; i < pb->n_metadata_props; i++) {
    tc_json_key(&j, nz(pb->metadata_props[i]->key));
    tc_json_string(&j, nz(pb->metadata_props[i]->value));
  }
  tc_json_end_object(&j);
  tc_json_end_object(&j);
}

int tc_model_summarize(const tc_model *m, tc_model_summary *s) {
  memset(s, 0, sizeof *s);
  walk(s, m->graph, true);
  if (s->ops.n)
    qsort(s->ops.items, s->ops.n, sizeof *s->ops.items, by_key);
  return s->err ? -1 : 0;
}

void tc_model_summary_free(tc_model_summary *s) {
  counts_free(&s->ops);
  counts_free(&s->ext);
}

size_t tc_model_summary_count(const tc_model_summary *s, const char *op) {
  for (size_t i = 0; i < s->ops.n; i++)
    if (strcmp(s->ops.items[i].key, op) == 0)
      return s->ops.items[i].count;
  return 0;
}

int tc_inspect_write(const tc_model *m, const char *path, bool json, FILE *f) {
  tc_model_summary s;
  int err = tc_model_summarize(m, &s);
  if (!err) {
    if (json)
      write_json(m, path, &s, f);
    else
      write_text(m, path, &s, f);
  }
  tc_model_summary_free(&s);
  return err;
}
