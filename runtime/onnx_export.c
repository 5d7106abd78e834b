/* IR -> ONNX protobuf file.
 *
 * Every message starts as a copy of the one it was imported from (or the
 * empty message for objects a pass created) and gets the modelled fields
 * written over it, so fields the IR does not model pass through untouched.
 * The protobuf-c messages built here live in an export arena and point at IR
 * memory; nothing is copied but the small message structs. Files are written
 * under temporary names and renamed into place only when all of them are
 * complete. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx_io.h"

typedef struct ext_out {
  const char *location; /* as written into the model */
  char *path, *tmp;
  FILE *f;
  uint64_t end; /* first free byte, for appended tensors */
} ext_out;

typedef struct export_ctx {
  tc_arena *a;
  tc_diag *diag;
  tc_status status;
  const char *out_path, *out_dir;
  const char *new_location; /* --external-data file, or NULL */
  size_t threshold;
  ext_out *files;
  size_t n_files, cap_files;
} export_ctx;

static void *fail(export_ctx *c, tc_status s, const char *fmt, const char *arg) {
  if (!c->status) {
    c->status = s;
    tc_diag_set(c->diag, s, NULL, NULL, fmt, arg ? arg : "");
  }
  return NULL;
}

static void *alloc(export_ctx *c, size_t size) {
  void *p = tc_arena_alloc(c->a, size ? size : 1);
  return p ? p : fail(c, TC_STATUS_NOMEM, "out of memory%s", NULL);
}

/* ---- raw bytes of a tensor ---- */
static size_t field_elem_size(tc_tensor_field f) {
  switch (f) {
  case TC_FIELD_FLOAT:
  case TC_FIELD_INT32: return 4;
  case TC_FIELD_INT64:
  case TC_FIELD_DOUBLE:
  case TC_FIELD_UINT64: return 8;
  default: return 1;
  }
}

tc_status tc_tensor_raw_bytes(const tc_tensor *t, const void **out, size_t *len, void **owned,
                              tc_diag *diag) {
  *owned = NULL;
  tc_tensor_field f = t->field;
  tc_span s = t->data[f];
  if (f == TC_FIELD_STRING || t->dtype == TC_DTYPE_STRING)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "tensor '%s' holds strings, which have no raw form", t->name ? t->name : "");
  if (f == TC_FIELD_RAW || f == TC_FIELD_EXTERNAL || f == TC_FIELD_FLOAT || f == TC_FIELD_INT64 ||
      f == TC_FIELD_DOUBLE || (f == TC_FIELD_INT32 && t->dtype == TC_DTYPE_I32) ||
      (f == TC_FIELD_UINT64 && t->dtype == TC_DTYPE_U64)) {
    *out = tc_span_data(s);
    *len = s.len;
    return TC_STATUS_OK;
  }
  /* int32_data / uint64_data holding narrower types: one element (or, for
   * sub-byte types, one packed byte) per entry; keep the low bytes. */
  int bits = tc_dtype_bits(t->dtype);
  size_t esz = bits >= 8 ? (size_t)bits / 8 : 1;
  size_t n = s.len / field_elem_size(f);
  unsigned char *dst = malloc(n ? n * esz : 1);
  if (!dst)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  const unsigned char *src = tc_span_data(s);
  for (size_t i = 0; i < n; i++)
    memcpy(dst + i * esz, src + i * field_elem_size(f), esz); /* little-endian low bytes */
  *out = dst;
  *len = n * esz;
  *owned = dst;
  return TC_STATUS_OK;
}

/* ---- external data files ---- */
static ext_out *ext_file(export_ctx *c, const char *location) {
  for (size_t i = 0; i < c->n_files; i++)
    if (strcmp(c->files[i].location, location) == 0)
      return &c->files[i];
  if (tc_arena_vec_reserve(c->a, (void **)&c->files, &c->cap_files, c->n_files, sizeof *c->files) !=
      0)
    return fail(c, TC_STATUS_NOMEM, "out of memory%s", NULL);
  ext_out *e = &c->files[c->n_files];
  memset(e, 0, sizeof *e);
  e->location = location;
  size_t n = strlen(c->out_dir) + strlen(location) + 2;
  e->path = alloc(c, n);
  e->tmp = alloc(c, n + 32);
  if (!e->path || !e->tmp)
    return NULL;
  snprintf(e->path, n, "%s/%s", c->out_dir, location);
  snprintf(e->tmp, n + 32, "%s.tmp-%ld", e->path, (long)getpid());
  /* Locations may name subfolders ("weights/w.bin"): create them. */
  for (char *p = e->path + strlen(c->out_dir) + 1; (p = strchr(p, '/')); p++) {
    *p = '\0';
    int rc = mkdir(e->path, 0777);
    *p = '/';
    if (rc != 0 && errno != EEXIST)
      break;
  }
  e->f = fopen(e->tmp, "wb");
  if (!e->f) {
    c->status = TC_STATUS_IO;
    tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "cannot write external data '%s': %s", e->path,
                strerror(errno));
    return NULL;
  }
  c->n_files++;
  return e;
}

static int ext_write(export_ctx *c, ext_out *e, uint64_t off, const void *data, size_t len) {
  if (len && (fseeko(e->f, (off_t)off, SEEK_SET) != 0 || fwrite(data, 1, len, e->f) != len)) {
    c->status = TC_STATUS_IO;
    tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "writing external data '%s': %s", e->path,
                strerror(errno));
    return -1;
  }
  if (off + len > e->end)
    e->end = off + len;
  return 0;
}

static Onnx__StringStringEntryProto *kv(export_ctx *c, const char *k, const char *v) {
  Onnx__StringStringEntryProto *e = alloc(c, sizeof *e);
  if (!e)
    return NULL;
  onnx__string_string_entry_proto__init(e);
  e->key = tc_arena_strdup(c->a, k);
  e->value = tc_arena_strdup(c->a, v);
  return e->key && e->value ? e : fail(c, TC_STATUS_NOMEM, "out of memory%s", NULL);
}

static void clear_payload(Onnx__TensorProto *o) {
  o->has_raw_data = 0;
  o->raw_data = (ProtobufCBinaryData){0, NULL};
  o->n_float_data = o->n_int32_data = o->n_int64_data = 0;
  o->n_double_data = o->n_uint64_data = o->n_string_data = 0;
  o->n_external_data = 0;
  o->has_data_location = 0;
}

/* Appends t's bytes to the --external-data file and points o at them. */
static int move_external(export_ctx *c, const tc_tensor *t, Onnx__TensorProto *o) {
  const void *bytes;
  size_t len;
  void *owned;
  if (tc_tensor_raw_bytes(t, &bytes, &len, &owned, c->diag) != TC_STATUS_OK) {
    c->status = c->diag->status;
    return -1;
  }
  ext_out *e = ext_file(c, c->new_location);
  int rc = -1;
  if (e) {
    uint64_t align = len >= TC_EXTERNAL_ALIGN_LARGE ? TC_EXTERNAL_ALIGN : TC_EXTERNAL_ALIGN_SMALL;
    uint64_t off = (e->end + align - 1) / align * align;
    char so[32], sl[32];
    snprintf(so, sizeof so, "%llu", (unsigned long long)off);
    snprintf(sl, sizeof sl, "%llu", (unsigned long long)len);
    Onnx__StringStringEntryProto **ents = alloc(c, 3 * sizeof *ents);
    if (ents && ext_write(c, e, off, bytes, len) == 0 &&
        (ents[0] = kv(c, "location", c->new_location)) && (ents[1] = kv(c, "offset", so)) &&
        (ents[2] = kv(c, "length", sl))) {
      clear_payload(o);
      o->external_data = ents;
      o->n_external_data = 3;
      o->has_data_location = 1;
      o->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
      rc = 0;
    }
  }
  free(owned);
  return rc;
}

/* Writes an external tensor back to its own location and offset. */
static int keep_external(export_ctx *c, const tc_tensor *t) {
  ext_out *e = ext_file(c, t->ext_location);
  if (!e)
    return -1;
  tc_span s = t->data[TC_FIELD_EXTERNAL];
  return ext_write(c, e, t->ext_offset, tc_span_data(s), s.len);
}

/* ---- messages ---- */
static Onnx__TensorProto *build_tensor(export_ctx *c, const tc_tensor *t, bool may_move) {
  Onnx__TensorProto *o = alloc(c, sizeof *o);
  if (!o)
    return NULL;
  if (t->pb)
    *o = *t->pb;
  else
    onnx__tensor_proto__init(o);
  o->name = (char *)t->name;
  o->has_data_type = t->has_dtype;
  o->data_type = t->dtype;
  o->n_dims = t->rank;
  o->dims = t->dims;
  o->has_raw_data = t->has_raw;
  o->raw_data = (ProtobufCBinaryData){t->data[TC_FIELD_RAW].len,
                                      (uint8_t *)tc_span_data(t->data[TC_FIELD_RAW])};
#define SET_FIELD(F, member, type)                                                                 \
  o->n_##member = t->data[F].len / sizeof(type);                                                   \
  o->member = (type *)tc_span_data(t->data[F]);
  SET_FIELD(TC_FIELD_FLOAT, float_data, float)
  SET_FIELD(TC_FIELD_INT32, int32_data, int32_t)
  SET_FIELD(TC_FIELD_INT64, int64_data, int64_t)
  SET_FIELD(TC_FIELD_DOUBLE, double_data, double)
  SET_FIELD(TC_FIELD_UINT64, uint64_data, uint64_t)
#undef SET_FIELD
  o->n_string_data = t->n_strings;
  o->string_data = t->strings;

  bool big = t->dtype != TC_DTYPE_STRING && t->field != TC_FIELD_STRING &&
             tc_dtype_bytes(t->dtype, tc_tensor_numel(t)) >= c->threshold;
  if (c->new_location && may_move) {
    if (big)
      return move_external(c, t, o) == 0 ? o : NULL;
    if (t->field == TC_FIELD_EXTERNAL) {
      /* Small tensors come back inline. */
      clear_payload(o);
      o->has_raw_data = 1;
      o->raw_data = (ProtobufCBinaryData){t->data[TC_FIELD_EXTERNAL].len,
                                          (uint8_t *)tc_span_data(t->data[TC_FIELD_EXTERNAL])};
    }
    return o;
  }
  if (t->field == TC_FIELD_EXTERNAL && keep_external(c, t) != 0)
    return NULL;
  return o;
}

static Onnx__TypeProto *build_type(export_ctx *c, const tc_type *t) {
  if (t->kind != TC_TYPE_TENSOR)
    return NULL;
  Onnx__TypeProto *o = alloc(c, sizeof *o);
  Onnx__TypeProto__Tensor *tt = alloc(c, sizeof *tt);
  if (!o || !tt)
    return NULL;
  onnx__type_proto__init(o);
  onnx__type_proto__tensor__init(tt);
  o->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  o->tensor_type = tt;
  tt->has_elem_type = 1;
  tt->elem_type = t->elem;
  if (!t->has_shape)
    return o;
  Onnx__TensorShapeProto *sh = alloc(c, sizeof *sh);
  Onnx__TensorShapeProto__Dimension **dims = alloc(c, t->rank * sizeof *dims);
  if (!sh || !dims)
    return NULL;
  onnx__tensor_shape_proto__init(sh);
  for (size_t i = 0; i < t->rank; i++) {
    Onnx__TensorShapeProto__Dimension *d = dims[i] = alloc(c, sizeof *d);
    if (!d)
      return NULL;
    onnx__tensor_shape_proto__dimension__init(d);
    if (t->dims[i].kind == TC_DIM_VALUE) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      d->dim_value = t->dims[i].value;
    } else if (t->dims[i].kind == TC_DIM_PARAM) {
      d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      d->dim_param = (char *)t->dims[i].param;
    }
  }
  sh->n_dim = t->rank;
  sh->dim = dims;
  tt->shape = sh;
  return o;
}

static Onnx__ValueInfoProto **build_vinfos(export_ctx *c, const tc_vinfo *vs, size_t n) {
  Onnx__ValueInfoProto **out = alloc(c, n * sizeof *out);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    const tc_value *v = vs[i].value;
    Onnx__ValueInfoProto *o = out[i] = alloc(c, sizeof *o);
    if (!o)
      return NULL;
    if (vs[i].pb)
      *o = *vs[i].pb;
    else
      onnx__value_info_proto__init(o);
    o->name = (char *)v->name;
    if (v->type_dirty || !vs[i].pb) {
      o->type = build_type(c, &v->type);
      if (c->status)
        return NULL;
    }
  }
  return out;
}

static Onnx__GraphProto *build_graph(export_ctx *c, const tc_graph *g);

static Onnx__AttributeProto *build_attr(export_ctx *c, const tc_attr *a) {
  Onnx__AttributeProto *o = alloc(c, sizeof *o);
  if (!o)
    return NULL;
  if (a->pb) {
    *o = *a->pb;
  } else {
    onnx__attribute_proto__init(o);
    o->has_type = 1;
    o->has_f = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    o->has_i = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    o->has_s = a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  }
  o->name = (char *)a->name;
  o->type = a->type;
  o->ref_attr_name = (char *)a->ref_attr_name;
  o->f = a->f;
  o->i = a->i;
  o->s = a->s;
  o->n_floats = a->n_floats;
  o->floats = a->floats;
  o->n_ints = a->n_ints;
  o->ints = a->ints;
  o->n_strings = a->n_strings;
  o->strings = a->strings;
  /* Tensors inside attributes stay inline: they are part of the node. */
  if (a->t && !(o->t = build_tensor(c, a->t, false)))
    return NULL;
  if (a->g && !(o->g = build_graph(c, a->g)))
    return NULL;
  o->n_tensors = a->n_tensors;
  if (a->n_tensors && !(o->tensors = alloc(c, a->n_tensors * sizeof *o->tensors)))
    return NULL;
  for (size_t i = 0; i < a->n_tensors; i++)
    if (!(o->tensors[i] = build_tensor(c, a->tensors[i], false)))
      return NULL;
  o->n_graphs = a->n_graphs;
  if (a->n_graphs && !(o->graphs = alloc(c, a->n_graphs * sizeof *o->graphs)))
    return NULL;
  for (size_t i = 0; i < a->n_graphs; i++)
    if (!(o->graphs[i] = build_graph(c, a->graphs[i])))
      return NULL;
  return o;
}

static char **value_names(export_ctx *c, tc_value *const *vs, size_t n) {
  char **names = alloc(c, n * sizeof *names);
  if (!names)
    return NULL;
  for (size_t i = 0; i < n; i++)
    names[i] = vs[i] ? (char *)vs[i]->name : "";
  return names;
}

static Onnx__NodeProto *build_node(export_ctx *c, const tc_node *n) {
  Onnx__NodeProto *o = alloc(c, sizeof *o);
  if (!o)
    return NULL;
  if (n->pb)
    *o = *n->pb;
  else
    onnx__node_proto__init(o);
  o->op_type = (char *)n->op_type;
  o->domain = (char *)n->domain;
  o->name = (char *)n->name;
  o->n_input = n->n_inputs;
  o->n_output = n->n_outputs;
  o->n_attribute = n->n_attrs;
  if (!(o->input = value_names(c, n->inputs, n->n_inputs)) ||
      !(o->output = value_names(c, n->outputs, n->n_outputs)) ||
      !(o->attribute = alloc(c, n->n_attrs * sizeof *o->attribute)))
    return NULL;
  for (size_t i = 0; i < n->n_attrs; i++)
    if (!(o->attribute[i] = build_attr(c, &n->attrs[i])))
      return NULL;
  return o;
}

static Onnx__NodeProto **build_nodes(export_ctx *c, const tc_graph *g) {
  Onnx__NodeProto **out = alloc(c, g->n_nodes * sizeof *out);
  if (!out)
    return NULL;
  size_t i = 0;
  for (const tc_node *n = g->first; n; n = n->next)
    if (!(out[i++] = build_node(c, n)))
      return NULL;
  return out;
}

static Onnx__GraphProto *build_graph(export_ctx *c, const tc_graph *g) {
  Onnx__GraphProto *o = alloc(c, sizeof *o);
  if (!o)
    return NULL;
  if (g->pb)
    *o = *g->pb;
  else
    onnx__graph_proto__init(o);
  o->name = (char *)g->name;
  o->n_node = g->n_nodes;
  o->n_input = g->n_inputs;
  o->n_output = g->n_outputs;
  o->n_value_info = g->n_value_info;
  o->n_initializer = g->n_inits;
  o->n_sparse_initializer = g->n_sparse_inits;
  if (!(o->node = build_nodes(c, g)) || !(o->input = build_vinfos(c, g->inputs, g->n_inputs)) ||
      !(o->output = build_vinfos(c, g->outputs, g->n_outputs)) ||
      !(o->value_info = build_vinfos(c, g->value_info, g->n_value_info)) ||
      !(o->initializer = alloc(c, g->n_inits * sizeof *o->initializer)) ||
      !(o->sparse_initializer = alloc(c, g->n_sparse_inits * sizeof *o->sparse_initializer)))
    return NULL;
  for (size_t i = 0; i < g->n_inits; i++)
    if (!(o->initializer[i] = build_tensor(c, g->inits[i]->init, true)))
      return NULL;
  for (size_t i = 0; i < g->n_sparse_inits; i++) {
    const tc_sparse_tensor *s = g->sparse_inits[i]->sparse;
    Onnx__SparseTensorProto *so = o->sparse_initializer[i] = alloc(c, sizeof *so);
    if (!so)
      return NULL;
    if (s->pb)
      *so = *s->pb;
    else
      onnx__sparse_tensor_proto__init(so);
    so->n_dims = s->rank;
    so->dims = s->dims;
    if ((s->values && !(so->values = build_tensor(c, s->values, false))) ||
        (s->indices && !(so->indices = build_tensor(c, s->indices, false))))
      return NULL;
  }
  return o;
}

static Onnx__OperatorSetIdProto **build_opsets(export_ctx *c, const tc_opset *ops, size_t n) {
  Onnx__OperatorSetIdProto **out = alloc(c, n * sizeof *out);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    Onnx__OperatorSetIdProto *o = out[i] = alloc(c, sizeof *o);
    if (!o)
      return NULL;
    if (ops[i].pb)
      *o = *ops[i].pb;
    else
      onnx__operator_set_id_proto__init(o), o->has_version = 1;
    o->domain = (char *)ops[i].domain;
    o->version = ops[i].version;
  }
  return out;
}

static Onnx__FunctionProto *build_function(export_ctx *c, const tc_function *f) {
  Onnx__FunctionProto *o = alloc(c, sizeof *o);
  if (!o)
    return NULL;
  if (f->pb)
    *o = *f->pb;
  else
    onnx__function_proto__init(o);
  const tc_graph *g = f->body;
  o->name = (char *)f->name;
  o->domain = (char *)f->domain;
  o->overload = (char *)f->overload;
  o->n_node = g->n_nodes;
  o->n_input = g->n_inputs;
  o->n_output = g->n_outputs;
  o->n_opset_import = f->n_opsets;
  o->n_value_info = g->n_value_info;
  if (!(o->node = build_nodes(c, g)) || !(o->input = alloc(c, g->n_inputs * sizeof(char *))) ||
      !(o->output = alloc(c, g->n_outputs * sizeof(char *))) ||
      !(o->opset_import = build_opsets(c, f->opsets, f->n_opsets)) ||
      !(o->value_info = build_vinfos(c, g->value_info, g->n_value_info)))
    return NULL;
  for (size_t i = 0; i < g->n_inputs; i++)
    o->input[i] = (char *)g->inputs[i].value->name;
  for (size_t i = 0; i < g->n_outputs; i++)
    o->output[i] = (char *)g->outputs[i].value->name;
  if (!f->pb) {
    o->n_attribute = f->n_attr_names;
    o->attribute = (char **)f->attr_names;
  }
  return o;
}

static Onnx__ModelProto *build_model(export_ctx *c, const tc_model *m) {
  Onnx__ModelProto *o = alloc(c, sizeof *o);
  if (!o)
    return NULL;
  if (m->pb)
    *o = *m->pb;
  else
    onnx__model_proto__init(o);
  o->has_ir_version = 1;
  o->ir_version = m->ir_version;
  o->n_opset_import = m->n_opsets;
  o->n_functions = m->n_functions;
  if (!(o->opset_import = build_opsets(c, m->opsets, m->n_opsets)) ||
      !(o->functions = alloc(c, m->n_functions * sizeof *o->functions)))
    return NULL;
  for (size_t i = 0; i < m->n_functions; i++)
    if (!(o->functions[i] = build_function(c, &m->functions[i])))
      return NULL;
  if (m->graph && !(o->graph = build_graph(c, m->graph)))
    return NULL;
  return o;
}

/* ---- writing ---- */
typedef struct file_sink {
  ProtobufCBuffer base;
  FILE *f;
  int err;
} file_sink;

static void sink_append(ProtobufCBuffer *b, size_t len, const uint8_t *data) {
  file_sink *s = (file_sink *)b;
  if (!s->err && len && fwrite(data, 1, len, s->f) != len)
    s->err = errno ? errno : EIO;
}

static char *dir_of(tc_arena *a, const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return tc_arena_strdup(a, ".");
  if (slash == path)
    return tc_arena_strdup(a, "/");
  char *d = tc_arena_memdup(a, path, (size_t)(slash - path) + 1);
  if (d)
    d[slash - path] = '\0';
  return d;
}

static void drop_files(export_ctx *c) {
  for (size_t i = 0; i < c->n_files; i++) {
    if (c->files[i].f)
      fclose(c->files[i].f);
    unlink(c->files[i].tmp);
  }
}

static tc_status write_model(export_ctx *c, const tc_model *m) {
  Onnx__ModelProto *o = build_model(c, m);
  if (!o)
    return c->status ? c->status : TC_STATUS_NOMEM;
  size_t size = protobuf_c_message_get_packed_size(&o->base);
  if (size > (size_t)INT32_MAX)
    return tc_diag_set(c->diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "the model would be %zu bytes, over protobuf's 2 GiB limit: use "
                       "--external-data to store its weights beside it",
                       size);
  for (size_t i = 0; i < c->n_files; i++) {
    if (fclose(c->files[i].f) != 0) {
      c->files[i].f = NULL;
      return tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "writing '%s': %s", c->files[i].path,
                         strerror(errno));
    }
    c->files[i].f = NULL;
  }
  size_t n = strlen(c->out_path) + 32;
  char *tmp = alloc(c, n);
  if (!tmp)
    return TC_STATUS_NOMEM;
  snprintf(tmp, n, "%s.tmp-%ld", c->out_path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f)
    return tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "cannot write '%s': %s", c->out_path,
                       strerror(errno));
  file_sink sink = {.base = {.append = sink_append}, .f = f};
  protobuf_c_message_pack_to_buffer(&o->base, &sink.base);
  int err = sink.err;
  if (fclose(f) != 0 && !err)
    err = errno ? errno : EIO;
  if (err) {
    unlink(tmp);
    return tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "writing '%s': %s", c->out_path,
                       strerror(err));
  }
  for (size_t i = 0; i < c->n_files; i++) {
    if (rename(c->files[i].tmp, c->files[i].path) != 0) {
      unlink(tmp);
      return tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "cannot write '%s': %s",
                         c->files[i].path, strerror(errno));
    }
  }
  if (rename(tmp, c->out_path) != 0) {
    unlink(tmp);
    return tc_diag_set(c->diag, TC_STATUS_IO, NULL, NULL, "cannot write '%s': %s", c->out_path,
                       strerror(errno));
  }
  return TC_STATUS_OK;
}

tc_status tc_model_save_file(const tc_model *m, const char *path, const tc_save_options *opts,
                             tc_diag *diag) {
  tc_diag local = {0};
  if (!diag)
    diag = &local;
  if (!m || !path || !*path)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "no model or output path given");
  export_ctx c = {.diag = diag,
                  .out_path = path,
                  .threshold = opts && opts->external_threshold ? opts->external_threshold
                                                                : TC_EXTERNAL_THRESHOLD_DEFAULT};
  if (!(c.a = tc_arena_new()))
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  tc_status s = TC_STATUS_NOMEM;
  if (!(c.out_dir = dir_of(c.a, path)))
    goto done;
  if (opts && opts->external_data) {
    const char *loc = opts->external_data;
    if (!*loc) {
      const char *base = strrchr(path, '/');
      base = base ? base + 1 : path;
      size_t n = strlen(base) + 6;
      char *d = tc_arena_alloc(c.a, n);
      if (!d)
        goto done;
      snprintf(d, n, "%s.data", base);
      loc = d;
    }
    if (!tc_external_location_ok(loc)) {
      s = tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL,
                      "external data file '%s' must be a path relative to the output's folder "
                      "without '..'",
                      loc);
      goto done;
    }
    c.new_location = loc;
  }
  s = write_model(&c, m);
done:
  if (s)
    drop_files(&c);
  tc_diag_set_file(diag, path);
  tc_arena_free(c.a);
  return s;
}
