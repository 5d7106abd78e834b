/* ONNX protobuf (protobuf-c) -> IR.
 *
 * The unpacked message tree stays with the model as the carrier of every
 * field the IR does not model (see ir.h). Tensor payloads are moved out of the
 * tree into tc_buffers so the tree itself stays small; external data is
 * memory-mapped. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ir.h"
#include "kernel.h"
#include "onnx_io.h"

typedef struct import_ctx {
  tc_model *m;
  tc_diag *diag;
  /* external data files mapped so far, one buffer per distinct location */
  struct ext_file {
    const char *location;
    tc_buffer *buf;
  } * files;
  size_t n_files, cap_files;
} import_ctx;

static tc_status oom(import_ctx *c) {
  return tc_diag_set(c->diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
}

static void unref_cb(void *p) { tc_buffer_unref(p); }

/* Hands b to the model: it is released when the model is freed. */
static int keep_buffer(tc_model *m, tc_buffer *b) {
  if (tc_arena_on_free(m->arena, unref_cb, b) != 0) {
    tc_buffer_unref(b);
    return -1;
  }
  return 0;
}

/* Moves a heap array out of the protobuf tree into a buffer the model owns. */
static int steal(import_ctx *c, void **ptr, size_t bytes, tc_span *out) {
  if (!*ptr)
    return 0;
  tc_buffer *b = tc_buffer_wrap_heap(*ptr, bytes);
  *ptr = NULL;
  if (!b || keep_buffer(c->m, b) != 0)
    return -1;
  *out = (tc_span){b, 0, bytes};
  return 0;
}

/* ---- external data ---- */
int tc_external_location_ok(const char *loc) {
  if (!loc || !*loc || loc[0] == '/' || loc[0] == '\\')
    return 0;
  /* Reject any ".." path component, with either separator. */
  for (const char *p = loc; *p;) {
    const char *q = p;
    while (*q && *q != '/' && *q != '\\')
      q++;
    if (q - p == 2 && p[0] == '.' && p[1] == '.')
      return 0;
    p = *q ? q + 1 : q;
  }
  return 1;
}

static bool parse_u64(const char *s, uint64_t *out) {
  if (!s || !*s)
    return false;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end || s[0] == '-')
    return false;
  *out = v;
  return true;
}

/* True unless path exists and its real location is outside dir's real
 * location (a missing file is reported by the mapping that follows). */
static bool inside_dir(const char *dir, const char *path) {
  char *rd = realpath(dir, NULL), *rp = realpath(path, NULL);
  bool ok = !rp || (rd && strncmp(rp, rd, strlen(rd)) == 0 &&
                    (rp[strlen(rd)] == '/' || strcmp(rd, "/") == 0));
  free(rd);
  free(rp);
  return ok;
}

static tc_buffer *map_external(import_ctx *c, const char *location, const char *tname) {
  for (size_t i = 0; i < c->n_files; i++)
    if (strcmp(c->files[i].location, location) == 0)
      return c->files[i].buf;
  if (!c->m->dir) {
    tc_diag_set(c->diag, TC_STATUS_ARG, NULL, NULL,
                "tensor '%s' has external data '%s' but the model was loaded from memory "
                "without an external data folder",
                tname, location);
    return NULL;
  }
  size_t n = strlen(c->m->dir) + strlen(location) + 2;
  char *path = tc_arena_alloc(c->m->arena, n);
  if (!path) {
    oom(c);
    return NULL;
  }
  snprintf(path, n, "%s/%s", c->m->dir, location);
  if (!inside_dir(c->m->dir, path)) {
    tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                "tensor '%s': external data '%s' resolves (through a symbolic link) to a file "
                "outside the model's folder",
                tname, location);
    return NULL;
  }
  tc_buffer *b = tc_buffer_map_file(path);
  if (!b) {
    tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "tensor '%s': external data file '%s': %s",
                tname, path, strerror(errno));
    return NULL;
  }
  if (keep_buffer(c->m, b) != 0 ||
      tc_arena_vec_reserve(c->m->arena, (void **)&c->files, &c->cap_files, c->n_files,
                           sizeof *c->files) != 0) {
    oom(c);
    return NULL;
  }
  c->files[c->n_files++] = (struct ext_file){location, b};
  return b;
}

static tc_status import_external(import_ctx *c, tc_tensor *t, const Onnx__TensorProto *p) {
  const char *tname = t->name ? t->name : "";
  const char *location = NULL;
  uint64_t offset = 0, length = 0;
  bool has_length = false;
  for (size_t i = 0; i < p->n_external_data; i++) {
    const Onnx__StringStringEntryProto *kv = p->external_data[i];
    const char *k = kv->key ? kv->key : "";
    if (strcmp(k, "location") == 0) {
      location = kv->value;
    } else if (strcmp(k, "offset") == 0) {
      if (!parse_u64(kv->value, &offset))
        return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                           "tensor '%s': external data offset '%s' is not a number", tname,
                           kv->value ? kv->value : "");
    } else if (strcmp(k, "length") == 0) {
      if (!parse_u64(kv->value, &length))
        return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                           "tensor '%s': external data length '%s' is not a number", tname,
                           kv->value ? kv->value : "");
      has_length = true;
    }
  }
  if (!location)
    return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                       "tensor '%s' has external data without a location", tname);
  if (!tc_external_location_ok(location))
    return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                       "tensor '%s': external data location '%s' escapes the model's folder "
                       "(absolute paths and '..' are refused)",
                       tname, location);
  tc_buffer *b = map_external(c, location, tname);
  if (!b)
    return c->diag ? c->diag->status : TC_STATUS_IO;
  size_t fsize = tc_buffer_size(b);
  if (!has_length) {
    size_t want = tc_dtype_bytes(t->dtype, tc_tensor_numel(t));
    length = offset <= fsize ? (want ? want : fsize - offset) : 0;
  }
  if (offset > fsize || length > fsize - offset)
    return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                       "tensor '%s': external data range [%llu, +%llu) lies past the end of "
                       "'%s' (%zu bytes)",
                       tname, (unsigned long long)offset, (unsigned long long)length, location,
                       fsize);
  t->field = TC_FIELD_EXTERNAL;
  t->ext_location = location;
  t->ext_offset = offset;
  t->data[TC_FIELD_EXTERNAL] = (tc_span){b, (size_t)offset, (size_t)length};
  return TC_STATUS_OK;
}

/* ---- tensors ---- */
static tc_tensor_field field_for_dtype(int32_t dt) {
  switch (dt) {
  case TC_DTYPE_F32:
  case TC_DTYPE_C64: return TC_FIELD_FLOAT;
  case TC_DTYPE_I64: return TC_FIELD_INT64;
  case TC_DTYPE_F64:
  case TC_DTYPE_C128: return TC_FIELD_DOUBLE;
  case TC_DTYPE_U32:
  case TC_DTYPE_U64: return TC_FIELD_UINT64;
  case TC_DTYPE_STRING: return TC_FIELD_STRING;
  default: return TC_FIELD_INT32;
  }
}

tc_tensor *tc_import_tensor(import_ctx *c, Onnx__TensorProto *p) {
  tc_tensor *t = tc_arena_alloc(c->m->arena, sizeof *t);
  if (!t) {
    oom(c);
    return NULL;
  }
  t->pb = p;
  t->name = p->name;
  t->dtype = p->data_type;
  t->has_dtype = p->has_data_type;
  t->rank = p->n_dims;
  t->dims = p->dims;
  for (size_t i = 0; i < p->n_dims; i++) {
    if (p->dims[i] < 0) {
      tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL, "tensor '%s' has negative dim %lld",
                  t->name ? t->name : "", (long long)p->dims[i]);
      return NULL;
    }
  }
  int fail = 0;
  t->has_raw = p->has_raw_data;
  fail |= steal(c, (void **)&p->raw_data.data, p->raw_data.len, &t->data[TC_FIELD_RAW]);
  fail |=
      steal(c, (void **)&p->float_data, p->n_float_data * sizeof(float), &t->data[TC_FIELD_FLOAT]);
  fail |= steal(c, (void **)&p->int32_data, p->n_int32_data * sizeof(int32_t),
                &t->data[TC_FIELD_INT32]);
  fail |= steal(c, (void **)&p->int64_data, p->n_int64_data * sizeof(int64_t),
                &t->data[TC_FIELD_INT64]);
  fail |= steal(c, (void **)&p->double_data, p->n_double_data * sizeof(double),
                &t->data[TC_FIELD_DOUBLE]);
  fail |= steal(c, (void **)&p->uint64_data, p->n_uint64_data * sizeof(uint64_t),
                &t->data[TC_FIELD_UINT64]);
  p->raw_data.len = 0;
  p->n_float_data = p->n_int32_data = p->n_int64_data = 0;
  p->n_double_data = p->n_uint64_data = 0;
  if (fail) {
    oom(c);
    return NULL;
  }
  t->n_strings = p->n_string_data;
  t->strings = p->string_data;
  if (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    if (import_external(c, t, p) != TC_STATUS_OK)
      return NULL;
  } else if (t->has_raw) {
    t->field = TC_FIELD_RAW;
  } else {
    t->field = field_for_dtype(t->dtype);
  }
  return t;
}

static tc_sparse_tensor *import_sparse(import_ctx *c, Onnx__SparseTensorProto *p) {
  tc_sparse_tensor *s = tc_arena_alloc(c->m->arena, sizeof *s);
  if (!s) {
    oom(c);
    return NULL;
  }
  s->pb = p;
  s->rank = p->n_dims;
  s->dims = p->dims;
  if (p->values && !(s->values = tc_import_tensor(c, p->values)))
    return NULL;
  if (p->indices && !(s->indices = tc_import_tensor(c, p->indices)))
    return NULL;
  return s;
}

/* ---- types ---- */
static int import_shape(import_ctx *c, tc_type *t, const Onnx__TensorShapeProto *sh) {
  if (!sh)
    return 0;
  t->has_shape = true;
  t->rank = sh->n_dim;
  t->dims = tc_arena_alloc(c->m->arena, (sh->n_dim ? sh->n_dim : 1) * sizeof *t->dims);
  if (!t->dims)
    return -1;
  for (size_t i = 0; i < sh->n_dim; i++) {
    const Onnx__TensorShapeProto__Dimension *d = sh->dim[i];
    if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
      t->dims[i] = (tc_dim){.kind = TC_DIM_VALUE, .value = d->dim_value};
    else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM)
      t->dims[i] = (tc_dim){.kind = TC_DIM_PARAM, .param = d->dim_param};
  }
  return 0;
}

static int import_type(import_ctx *c, tc_type *t, const Onnx__TypeProto *p) {
  memset(t, 0, sizeof *t);
  if (!p)
    return 0;
  switch (p->value_case) {
  case ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE:
    t->kind = TC_TYPE_TENSOR;
    t->elem = p->tensor_type->elem_type;
    return import_shape(c, t, p->tensor_type->shape);
  case ONNX__TYPE_PROTO__VALUE_SPARSE_TENSOR_TYPE:
    t->kind = TC_TYPE_SPARSE;
    t->elem = p->sparse_tensor_type->elem_type;
    return import_shape(c, t, p->sparse_tensor_type->shape);
  case ONNX__TYPE_PROTO__VALUE_SEQUENCE_TYPE: t->kind = TC_TYPE_SEQUENCE; return 0;
  case ONNX__TYPE_PROTO__VALUE_MAP_TYPE: t->kind = TC_TYPE_MAP; return 0;
  case ONNX__TYPE_PROTO__VALUE_OPTIONAL_TYPE: t->kind = TC_TYPE_OPTIONAL; return 0;
  case ONNX__TYPE_PROTO__VALUE_OPAQUE_TYPE: t->kind = TC_TYPE_OPAQUE; return 0;
  default: return 0;
  }
}

/* The first ValueInfoProto that names a value gives it its type. */
static int take_type(import_ctx *c, tc_value *v, const Onnx__ValueInfoProto *vi) {
  if (v->pb_type || !vi->type)
    return 0;
  v->pb_type = vi->type;
  return import_type(c, &v->type, vi->type);
}

/* ---- graphs ---- */
static tc_graph *import_graph(import_ctx *c, tc_graph *parent, tc_node *owner, Onnx__GraphProto *p);

static const char *nz(const char *s) { return s ? s : ""; }

static tc_status import_attr(import_ctx *c, tc_node *n, tc_attr *a, Onnx__AttributeProto *p) {
  a->pb = p;
  a->name = p->name;
  a->type = p->type;
  a->ref_attr_name = p->ref_attr_name;
  a->f = p->f;
  a->i = p->i;
  a->s = p->s;
  a->n_floats = p->n_floats;
  a->floats = p->floats;
  a->n_ints = p->n_ints;
  a->ints = p->ints;
  a->n_strings = p->n_strings;
  a->strings = p->strings;
  if (p->t && !(a->t = tc_import_tensor(c, p->t)))
    goto fail;
  if (p->g && !(a->g = import_graph(c, n->graph, n, p->g)))
    return c->diag ? c->diag->status : TC_STATUS_INVALID;
  if (p->n_tensors) {
    a->tensors = tc_arena_alloc(c->m->arena, p->n_tensors * sizeof *a->tensors);
    if (!a->tensors)
      return oom(c);
    a->n_tensors = p->n_tensors;
    for (size_t i = 0; i < p->n_tensors; i++)
      if (!(a->tensors[i] = tc_import_tensor(c, p->tensors[i])))
        goto fail;
  }
  if (p->n_graphs) {
    a->graphs = tc_arena_alloc(c->m->arena, p->n_graphs * sizeof *a->graphs);
    if (!a->graphs)
      return oom(c);
    a->n_graphs = p->n_graphs;
    for (size_t i = 0; i < p->n_graphs; i++)
      if (!(a->graphs[i] = import_graph(c, n->graph, n, p->graphs[i])))
        return c->diag ? c->diag->status : TC_STATUS_INVALID;
  }
  return TC_STATUS_OK;
fail:
  /* Tensor errors carry no node yet: name the node that holds the attribute. */
  if (c->diag && !c->diag->node[0]) {
    snprintf(c->diag->node, sizeof c->diag->node, "%s", nz(n->name));
    snprintf(c->diag->op, sizeof c->diag->op, "%s", nz(n->op_type));
  }
  return c->diag ? c->diag->status : TC_STATUS_INVALID;
}

static tc_status define_inputs(import_ctx *c, tc_graph *g, Onnx__GraphProto *p) {
  for (size_t i = 0; i < p->n_input; i++) {
    const Onnx__ValueInfoProto *vi = p->input[i];
    if (tc_graph_lookup_local(g, nz(vi->name)))
      return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                         "graph input '%s' is listed more than once", nz(vi->name));
    tc_value *v = tc_graph_new_value(g, nz(vi->name), c->diag);
    if (!v || take_type(c, v, vi) != 0 || tc_graph_add_input(g, v, vi) != 0)
      return v ? oom(c) : c->diag->status;
  }
  return TC_STATUS_OK;
}

static tc_status define_inits(import_ctx *c, tc_graph *g, Onnx__GraphProto *p) {
  for (size_t i = 0; i < p->n_initializer; i++) {
    Onnx__TensorProto *tp = p->initializer[i];
    tc_tensor *t = tc_import_tensor(c, tp);
    if (!t)
      return c->diag->status;
    const char *name = nz(tp->name);
    tc_value *v = tc_graph_lookup_local(g, name);
    if (v && (v->init || v->sparse || !(v->flags & TC_VALUE_INPUT)))
      return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                         "initializer '%s' is defined more than once", name);
    if (!v && !(v = tc_graph_new_value(g, name, c->diag)))
      return c->diag->status;
    if (tc_graph_add_init(g, v, t) != 0)
      return oom(c);
  }
  for (size_t i = 0; i < p->n_sparse_initializer; i++) {
    tc_sparse_tensor *s = import_sparse(c, p->sparse_initializer[i]);
    if (!s)
      return c->diag->status;
    const char *name = s->values ? nz(s->values->name) : "";
    tc_value *v = tc_graph_lookup_local(g, name);
    if (v && (v->init || v->sparse || !(v->flags & TC_VALUE_INPUT)))
      return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                         "sparse initializer '%s' is defined more than once", name);
    if (!v && !(v = tc_graph_new_value(g, name, c->diag)))
      return c->diag->status;
    v->sparse = s;
    if (tc_arena_vec_reserve(c->m->arena, (void **)&g->sparse_inits, &g->cap_sparse_inits,
                             g->n_sparse_inits, sizeof *g->sparse_inits) != 0)
      return oom(c);
    g->sparse_inits[g->n_sparse_inits++] = v;
  }
  return TC_STATUS_OK;
}

/* Creates every node with its outputs, so that inputs can then be resolved
 * whatever the node order (cycles are reported by the verifier). */
static tc_status define_nodes(import_ctx *c, tc_graph *g, Onnx__GraphProto *p,
                              Onnx__NodeProto **pbs, size_t n_pbs) {
  (void)p;
  for (size_t k = 0; k < n_pbs; k++) {
    Onnx__NodeProto *np = pbs[k];
    tc_node *n =
        tc_graph_append_node(g, NULL, NULL, NULL, np->n_input, np->n_output, np->n_attribute);
    if (!n)
      return oom(c);
    n->pb = np;
    n->op_type = np->op_type;
    n->domain = np->domain;
    n->name = np->name;
    for (size_t i = 0; i < np->n_output; i++) {
      const char *name = np->output[i];
      if (!name || !*name)
        continue;
      tc_value *v = tc_graph_lookup_local(g, name);
      if (v) {
        const char *what = v->producer              ? "another node"
                           : (v->init || v->sparse) ? "an initializer"
                                                    : "a graph input";
        if (v->producer)
          return tc_diag_set(c->diag, TC_STATUS_INVALID, nz(n->name), nz(n->op_type),
                             "output '%s' is also produced by node '%s'", name,
                             nz(v->producer->name));
        return tc_diag_set(c->diag, TC_STATUS_INVALID, nz(n->name), nz(n->op_type),
                           "output '%s' is already defined by %s", name, what);
      }
      if (!(v = tc_graph_new_value(g, name, c->diag)))
        return c->diag->status;
      tc_node_set_output(n, i, v);
    }
  }
  return TC_STATUS_OK;
}

static tc_status link_nodes(import_ctx *c, tc_graph *g) {
  for (tc_node *n = g->first; n; n = n->next) {
    const Onnx__NodeProto *np = n->pb;
    for (size_t i = 0; i < np->n_input; i++) {
      const char *name = np->input[i];
      if (!name || !*name)
        continue;
      tc_value *v = tc_graph_lookup(g, name);
      if (!v)
        return tc_diag_set(c->diag, TC_STATUS_INVALID, nz(n->name), nz(n->op_type),
                           "input '%s' is not defined", name);
      if (tc_node_set_input(n, i, v) != 0)
        return oom(c);
    }
    for (size_t i = 0; i < np->n_attribute; i++) {
      tc_status s = import_attr(c, n, &n->attrs[i], np->attribute[i]);
      if (s)
        return s;
    }
  }
  return TC_STATUS_OK;
}

static tc_status list_outputs(import_ctx *c, tc_graph *g, Onnx__ValueInfoProto **outs,
                              size_t n_outs) {
  for (size_t i = 0; i < n_outs; i++) {
    const char *name = nz(outs[i]->name);
    tc_value *v = tc_graph_lookup(g, name);
    if (!v)
      return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL, "graph output '%s' is not defined",
                         name);
    for (size_t k = 0; k < g->n_outputs; k++)
      if (g->outputs[k].value == v)
        return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                           "graph output '%s' is listed more than once", name);
    if (take_type(c, v, outs[i]) != 0 || tc_graph_add_output(g, v, outs[i]) != 0)
      return oom(c);
  }
  return TC_STATUS_OK;
}

/* value_info may describe names no node defines (ONNX tolerates it): they get
 * a value of their own that is not in the scope, so nothing can read it. */
static tc_status list_value_info(import_ctx *c, tc_graph *g, Onnx__ValueInfoProto **vis,
                                 size_t n_vis) {
  for (size_t i = 0; i < n_vis; i++) {
    tc_value *v = tc_graph_lookup(g, nz(vis[i]->name));
    if (!v) {
      v = tc_arena_alloc(c->m->arena, sizeof *v);
      if (!v)
        return oom(c);
      v->name = nz(vis[i]->name);
      v->graph = g;
      v->producer_slot = -1;
      v->id = c->m->next_value_id++;
    }
    if (take_type(c, v, vis[i]) != 0 || tc_graph_add_value_info(g, v, vis[i]) != 0)
      return oom(c);
  }
  return TC_STATUS_OK;
}

static tc_graph *import_graph(import_ctx *c, tc_graph *parent, tc_node *owner,
                              Onnx__GraphProto *p) {
  tc_graph *g = tc_graph_new(c->m, parent, NULL);
  if (!g) {
    oom(c);
    return NULL;
  }
  g->pb = p;
  g->name = p->name;
  g->owner = owner;
  if (define_inputs(c, g, p) || define_inits(c, g, p) ||
      define_nodes(c, g, p, p->node, p->n_node) || link_nodes(c, g) ||
      list_outputs(c, g, p->output, p->n_output) ||
      list_value_info(c, g, p->value_info, p->n_value_info))
    return NULL;
  return g;
}

static tc_status import_opsets(import_ctx *c, Onnx__OperatorSetIdProto **ps, size_t n,
                               tc_opset **out, size_t *n_out) {
  *out = tc_arena_alloc(c->m->arena, (n ? n : 1) * sizeof **out);
  if (!*out)
    return oom(c);
  *n_out = n;
  for (size_t i = 0; i < n; i++)
    (*out)[i] = (tc_opset){ps[i]->domain, ps[i]->version, ps[i]};
  return TC_STATUS_OK;
}

static tc_status import_function(import_ctx *c, tc_function *f, Onnx__FunctionProto *p) {
  f->pb = p;
  f->name = p->name;
  f->domain = p->domain;
  f->overload = p->overload;
  tc_status s = import_opsets(c, p->opset_import, p->n_opset_import, &f->opsets, &f->n_opsets);
  if (s)
    return s;
  tc_graph *g = f->body = tc_graph_new(c->m, NULL, p->name);
  if (!g)
    return oom(c);
  for (size_t i = 0; i < p->n_input; i++) {
    tc_value *v = tc_graph_new_value(g, nz(p->input[i]), c->diag);
    if (!v)
      return c->diag->status;
    if (tc_graph_add_input(g, v, NULL) != 0)
      return oom(c);
  }
  if ((s = define_nodes(c, g, NULL, p->node, p->n_node)) || (s = link_nodes(c, g)))
    return s;
  for (size_t i = 0; i < p->n_output; i++) {
    tc_value *v = tc_graph_lookup(g, nz(p->output[i]));
    if (!v)
      return tc_diag_set(c->diag, TC_STATUS_INVALID, NULL, NULL,
                         "function '%s': output '%s' is not defined", nz(p->name),
                         nz(p->output[i]));
    if (tc_graph_add_output(g, v, NULL) != 0)
      return oom(c);
  }
  return list_value_info(c, g, p->value_info, p->n_value_info);
}

static tc_status import_model(import_ctx *c, Onnx__ModelProto *p) {
  tc_model *m = c->m;
  if (!p->graph)
    return tc_diag_set(c->diag, TC_STATUS_PARSE, NULL, NULL,
                       "not an ONNX model: it has no graph (ModelProto.graph is missing)");
  if (!p->has_ir_version)
    return tc_diag_set(c->diag, TC_STATUS_PARSE, NULL, NULL,
                       "not an ONNX model: it has no ir_version");
  if (p->ir_version < 1 || p->ir_version > ONNX__VERSION__IR_VERSION)
    return tc_diag_set(c->diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "IR version %lld is not supported (1 to %d are)", (long long)p->ir_version,
                       (int)ONNX__VERSION__IR_VERSION);
  m->ir_version = p->ir_version;
  tc_status s = import_opsets(c, p->opset_import, p->n_opset_import, &m->opsets, &m->n_opsets);
  if (s)
    return s;
  if (p->n_functions) {
    m->functions = tc_arena_alloc(m->arena, p->n_functions * sizeof *m->functions);
    if (!m->functions)
      return oom(c);
    m->n_functions = p->n_functions;
    for (size_t i = 0; i < p->n_functions; i++) {
      if ((s = import_function(c, &m->functions[i], p->functions[i]))) {
        snprintf(c->diag->reason + strlen(c->diag->reason),
                 sizeof c->diag->reason - strlen(c->diag->reason), " in function '%s'",
                 nz(p->functions[i]->name));
        return s;
      }
    }
  }
  if (!(m->graph = import_graph(c, NULL, NULL, p->graph)))
    return c->diag->status;
  return TC_STATUS_OK;
}

/* Raw_data payloads of at least this many bytes are cut before unpacking. */
#define PAYLOAD_CUT_MIN 1024

/* Fills the initializers tc_pb_cut_payloads cut out of the unpacked model
 * with 64-byte aligned copies of their bytes in data, in file order; when
 * data is a file mapping, drops each payload's whole pages from it once
 * copied, so the weights are resident once, not twice, while loading. */
static tc_status fill_payloads(Onnx__ModelProto *pb, const uint8_t *data, bool mapped,
                               const tc_pb_payload *pl, size_t n, tc_diag *diag) {
  long page = mapped ? sysconf(_SC_PAGESIZE) : 0;
  for (size_t i = 0; i < n; i++) {
    Onnx__TensorProto *tp = pb->graph && pl[i].init < pb->graph->n_initializer
                                ? pb->graph->initializer[pl[i].init]
                                : NULL;
    if (!tp || tp->has_raw_data) /* cannot happen: the cut copy has no raw_data there */
      return tc_diag_set(diag, TC_STATUS_PARSE, NULL, NULL,
                         "initializer %zu: its raw_data was not where the scan found it",
                         pl[i].init);
    void *copy = aligned_alloc(64, (pl[i].len + 63) & ~(size_t)63);
    if (!copy)
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    memcpy(copy, data + pl[i].off, pl[i].len);
    tp->raw_data = (ProtobufCBinaryData){pl[i].len, copy}; /* freed with the tree or stolen */
    tp->has_raw_data = 1;
    if (page > 0) {
      uintptr_t lo = ((uintptr_t)(data + pl[i].off) + (uintptr_t)page - 1) & ~((uintptr_t)page - 1),
                hi = (uintptr_t)(data + pl[i].off + pl[i].len) & ~((uintptr_t)page - 1);
      if (hi > lo)
        madvise((void *)lo, hi - lo, MADV_DONTNEED); /* read again from the file if touched */
    }
  }
  return TC_STATUS_OK;
}

tc_status tc_import_bytes(const void *data, size_t size, const char *dir, bool verify, bool mapped,
                          tc_model **out, tc_diag *diag) {
  *out = NULL;
  tc_model *m = tc_model_new_empty();
  if (!m)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  m->dir = tc_arena_strdup(m->arena, dir);
  if (size == 0) {
    tc_model_free(m);
    return tc_diag_set(diag, TC_STATUS_PARSE, NULL, NULL, "not an ONNX model: the file is empty");
  }
  if (!tc_pb_depth_ok(data, size)) {
    tc_model_free(m);
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "messages nest deeper than %d levels (subgraphs within subgraphs); "
                       "refused to protect the stack",
                       TC_MAX_MESSAGE_DEPTH);
  }
  tc_pb_payload *pl = NULL;
  size_t n_pl = 0, cut_size = 0;
  uint8_t *cut = tc_pb_cut_payloads(data, size, PAYLOAD_CUT_MIN, &pl, &n_pl, &cut_size);
  m->pb = onnx__model_proto__unpack(NULL, cut ? cut_size : size, cut ? cut : data);
  free(cut);
  if (!m->pb) {
    free(pl);
    tc_model_free(m);
    return tc_diag_set(diag, TC_STATUS_PARSE, NULL, NULL,
                       "not a valid ONNX protobuf (truncated or corrupt, %zu bytes)", size);
  }
  tc_status s = fill_payloads(m->pb, data, mapped, pl, n_pl, diag);
  free(pl);
  if (s) {
    tc_model_free(m);
    return s;
  }
  import_ctx c = {.m = m, .diag = diag};
  s = import_model(&c, m->pb);
  for (size_t i = 0; !s && verify && i < m->n_functions; i++)
    s = tc_graph_verify(m->functions[i].body, diag);
  if (!s && verify)
    s = tc_graph_verify(m->graph, diag);
  if (s) {
    tc_model_free(m);
    return s;
  }
  *out = m;
  return TC_STATUS_OK;
}

tc_status tc_rt_from_tensor_proto(const void *data, size_t size, tc_arena *a,
                                  struct tc_rt_tensor *out, const char **name, tc_diag *diag) {
  Onnx__TensorProto *p = onnx__tensor_proto__unpack(NULL, size, data);
  if (!p)
    return tc_diag_set(diag, TC_STATUS_PARSE, NULL, NULL, "not a valid TensorProto");
  if (p->has_data_location && p->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "a TensorProto file with external data is not supported");
  }
  /* Borrow the payload arrays through a throwaway tc_tensor; tc_rt_from_ir copies. */
  tc_tensor t = {.name = p->name,
                 .dtype = p->data_type,
                 .has_dtype = p->has_data_type,
                 .rank = p->n_dims,
                 .dims = p->dims,
                 .has_raw = p->has_raw_data,
                 .n_strings = p->n_string_data,
                 .strings = p->string_data};
  struct {
    void *ptr;
    size_t bytes;
    tc_tensor_field f;
  } fields[] = {
      {p->raw_data.data, p->raw_data.len, TC_FIELD_RAW},
      {p->float_data, p->n_float_data * sizeof(float), TC_FIELD_FLOAT},
      {p->int32_data, p->n_int32_data * sizeof(int32_t), TC_FIELD_INT32},
      {p->int64_data, p->n_int64_data * sizeof(int64_t), TC_FIELD_INT64},
      {p->double_data, p->n_double_data * sizeof(double), TC_FIELD_DOUBLE},
      {p->uint64_data, p->n_uint64_data * sizeof(uint64_t), TC_FIELD_UINT64},
  };
  tc_buffer *bufs[6] = {0};
  tc_status s = TC_STATUS_OK;
  for (size_t i = 0; i < 6; i++) {
    if (!fields[i].ptr)
      continue;
    if (!(bufs[i] = tc_buffer_wrap_static(fields[i].ptr, fields[i].bytes))) {
      s = tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
      break;
    }
    t.data[fields[i].f] = (tc_span){bufs[i], 0, fields[i].bytes};
  }
  t.field = t.has_raw ? TC_FIELD_RAW : field_for_dtype(t.dtype);
  if (!s)
    s = tc_rt_from_ir(&t, a, out, diag);
  if (!s && name)
    *name = tc_arena_strdup(a, p->name ? p->name : "");
  for (size_t i = 0; i < 6; i++)
    tc_buffer_unref(bufs[i]);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  return s;
}
