/* The public model API of libtacort (include/tacort.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_io.h"

#define TC_VERSION "0.1.0"

const char *tc_version(void) { return TC_VERSION; }

static char *dir_of_path(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash)
    return strdup(".");
  if (slash == path)
    return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

tc_status tc_model_load_file(const char *path, const tc_load_options *opts, tc_model **out,
                             tc_diag *diag) {
  tc_diag local = {0};
  if (!diag)
    diag = &local;
  if (!out || !path)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "no path or result pointer given");
  *out = NULL;
  tc_buffer *b = tc_buffer_map_file(path);
  if (!b) {
    tc_diag_set(diag, TC_STATUS_IO, NULL, NULL, "cannot read: %s", strerror(errno));
    tc_diag_set_file(diag, path);
    return TC_STATUS_IO;
  }
  char *dir = dir_of_path(path);
  tc_status s = dir ? tc_import_bytes(tc_buffer_data(b), tc_buffer_size(b), dir,
                                      !(opts && opts->no_verify), true, out, diag)
                    : tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  if (*out && !((*out)->path = tc_arena_strdup((*out)->arena, path))) {
    tc_model_free(*out);
    *out = NULL;
    s = tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  }
  free(dir);
  tc_buffer_unref(b);
  tc_diag_set_file(diag, path);
  return s;
}

tc_status tc_model_load_bytes(const void *data, size_t size, const tc_load_options *opts,
                              tc_model **out, tc_diag *diag) {
  tc_diag local = {0};
  if (!diag)
    diag = &local;
  if (!out || (!data && size))
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "no data or result pointer given");
  return tc_import_bytes(data, size, opts ? opts->external_data_dir : NULL,
                         !(opts && opts->no_verify), false, out, diag);
}

size_t tc_model_num_inputs(const tc_model *m) { return m->graph->n_inputs; }
const char *tc_model_input_name(const tc_model *m, size_t i) {
  return i < m->graph->n_inputs ? m->graph->inputs[i].value->name : NULL;
}
size_t tc_model_num_outputs(const tc_model *m) { return m->graph->n_outputs; }
const char *tc_model_output_name(const tc_model *m, size_t i) {
  return i < m->graph->n_outputs ? m->graph->outputs[i].value->name : NULL;
}

static const tc_type *io_type(const tc_model *m, int is_input, size_t i) {
  const tc_graph *g = m->graph;
  if (is_input)
    return i < g->n_inputs ? &g->inputs[i].value->type : NULL;
  return i < g->n_outputs ? &g->outputs[i].value->type : NULL;
}

tc_status tc_model_io_info(const tc_model *m, int is_input, size_t i, int32_t *dtype, size_t *rank,
                           int64_t *dims, size_t max_dims) {
  const tc_type *t = m ? io_type(m, is_input, i) : NULL;
  if (!t || !dtype || !rank)
    return TC_STATUS_ARG;
  bool tensor = t->kind == TC_TYPE_TENSOR;
  *dtype = tensor ? t->elem : 0;
  *rank = tensor && t->has_shape ? t->rank : SIZE_MAX;
  for (size_t d = 0; tensor && t->has_shape && d < t->rank && d < max_dims; d++)
    dims[d] = t->dims[d].kind == TC_DIM_VALUE && t->dims[d].value >= 0 ? t->dims[d].value : -1;
  return TC_STATUS_OK;
}

const char *tc_model_dim_name(const tc_model *m, int is_input, size_t i, size_t d) {
  const tc_type *t = m ? io_type(m, is_input, i) : NULL;
  if (!t || !t->has_shape || d >= t->rank || t->dims[d].kind != TC_DIM_PARAM)
    return NULL;
  return t->dims[d].param;
}
