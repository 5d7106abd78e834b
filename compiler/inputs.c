/* Model inputs shared by `tacoc run` and `tacoc bench` (see inputs.h). */
#include "inputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "kernel.h"
#include "npy.h"
#include "onnx_io.h"

/* Reads a serialized TensorProto; *name (when non-NULL) gets a malloc'd copy
 * of the name it carries, or NULL when it has none. */
static int load_pb(const char *file, tc_ndarray *out, char **name, char *why, size_t cap) {
  memset(out, 0, sizeof *out);
  if (name)
    *name = NULL;
  FILE *f = fopen(file, "rb");
  if (!f) {
    snprintf(why, cap, "cannot read");
    return -1;
  }
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *bytes = malloc(len > 0 ? (size_t)len : 1);
  size_t got = bytes && len >= 0 ? fread(bytes, 1, (size_t)len, f) : 0;
  fclose(f);
  tc_arena *a = tc_arena_new();
  tc_rt_tensor t;
  const char *pb_name = NULL;
  tc_diag d = {0};
  int rc = -1;
  if (bytes && a && len >= 0 && got == (size_t)len &&
      !tc_rt_from_tensor_proto(bytes, got, a, &t, &pb_name, &d)) {
    if (t.dtype == TC_DTYPE_STRING) {
      snprintf(why, cap, "string tensors are not supported as inputs yet");
    } else if ((out->data = malloc(t.bytes ? t.bytes : 1))) {
      out->dtype = t.dtype;
      out->rank = t.rank;
      memcpy(out->dims, t.dims, sizeof out->dims);
      out->size = t.bytes;
      memcpy(out->data, t.data, t.bytes);
      rc = 0;
      if (name && pb_name && *pb_name && !(*name = strdup(pb_name))) {
        tc_ndarray_release(out);
        snprintf(why, cap, "out of memory");
        rc = -1;
      }
    } else {
      snprintf(why, cap, "out of memory");
    }
  } else {
    snprintf(why, cap, "not a .npy file or a serialized TensorProto: %.200s", d.reason);
  }
  tc_arena_free(a);
  free(bytes);
  return rc;
}

int tc_input_load(const char *file, tc_ndarray *out, char *why, size_t cap) {
  if (tc_cli_ends_with(file, ".npy"))
    return tc_npy_read(file, out, why, cap);
  return load_pb(file, out, NULL, why, cap);
}

static bool name_has_mask(const char *name) {
  for (const char *p = name; p && *p; p++)
    if (strncasecmp(p, "mask", 4) == 0)
      return true;
  return false;
}

int tc_input_random_fill(tc_ndarray *out, const char *name, int32_t dtype, size_t rank,
                         const int64_t *dims, uint64_t *state, char *why, size_t cap) {
  memset(out, 0, sizeof *out);
  bool is_float = dtype == TC_DTYPE_F32 || dtype == TC_DTYPE_F64 || dtype == TC_DTYPE_F16 ||
                  dtype == TC_DTYPE_BF16;
  if (!is_float && !tc_dtype_is_int(dtype) && dtype != TC_DTYPE_BOOL) {
    snprintf(why, cap, "cannot generate %s values; give the input as a file", tc_dtype_name(dtype));
    return -1;
  }
  if (rank > TC_MAX_DIMS) {
    snprintf(why, cap, "rank %zu is above %d", rank, TC_MAX_DIMS);
    return -1;
  }
  out->dtype = dtype;
  out->rank = rank;
  size_t n = 1;
  for (size_t i = 0; i < rank; i++) {
    out->dims[i] = dims[i];
    n *= (size_t)dims[i];
  }
  out->size = tc_dtype_bytes(dtype, n);
  out->data = calloc(1, out->size ? out->size : 1);
  if (!out->data) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  tc_rt_tensor rt = {.dtype = dtype, .rank = rank, .data = out->data, .bytes = out->size};
  bool ones = !is_float && name_has_mask(name);
  for (size_t i = 0; i < n; i++) {
    *state ^= *state << 13, *state ^= *state >> 7, *state ^= *state << 17; /* xorshift64 */
    double u = (double)(*state >> 11) / 9007199254740992.0;
    if (is_float)
      tc_rt_set_f64(&rt, i, 2 * u - 1);
    else
      tc_rt_set_i64(&rt, i,
                    ones                     ? 1
                    : dtype == TC_DTYPE_BOOL ? (int64_t)(u * 2)
                                             : (int64_t)(u * 10));
  }
  return 0;
}

int tc_input_random(const tc_value *v, uint64_t *state, tc_ndarray *out, char *why, size_t cap) {
  const tc_type *t = &v->type;
  if (t->kind != TC_TYPE_TENSOR || !t->has_shape || !tc_dtype_known(t->elem) ||
      t->elem == TC_DTYPE_STRING || t->rank > TC_MAX_DIMS) {
    snprintf(why, cap, "its type does not say dtype and rank; give it with --input");
    return -1;
  }
  int64_t dims[TC_MAX_DIMS];
  for (size_t i = 0; i < t->rank; i++)
    dims[i] = t->dims[i].kind == TC_DIM_VALUE && t->dims[i].value >= 0 ? t->dims[i].value : 1;
  return tc_input_random_fill(out, v->name, t->elem, t->rank, dims, state, why, cap);
}

void tc_input_file_path(const char *dir, const char *name, const char *ext, char *buf, size_t cap) {
  int len = snprintf(buf, cap, "%s/", dir);
  if (len < 0 || (size_t)len >= cap)
    return;
  size_t room = cap - strlen(ext) - 1;
  for (const char *p = name; *p && (size_t)len < room; p++) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    buf[len++] = ok ? c : '_';
  }
  snprintf(buf + len, cap - (size_t)len, "%s", ext);
}

bool tc_input_split_spec(char *spec, const char **name, const char **file) {
  char *eq = strchr(spec, '=');
  if (!eq || eq == spec)
    return false;
  *eq = '\0';
  *name = spec;
  *file = eq + 1;
  return true;
}

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Index among the inputs to feed (wanted) of name, or -1. */
static long find_name(const tc_value *const *wanted, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(wanted[i]->name, name) == 0)
      return (long)i;
  return -1;
}

/* ONNX test data: pbdir/input_<k>.pb for k = 0, 1, ... */
static int load_pb_dir(const char *pbdir, const tc_value *const *wanted, size_t n_wanted,
                       char **names, tc_ndarray *arrays, char *why, size_t cap) {
  char path[4096];
  for (size_t k = 0;; k++) {
    snprintf(path, sizeof path, "%s/input_%zu.pb", pbdir, k);
    if (!is_file(path))
      break;
    char *pb_name = NULL, reason[400];
    tc_ndarray a;
    if (load_pb(path, &a, &pb_name, reason, sizeof reason)) {
      snprintf(why, cap, "%s: %s", path, reason);
      return -1;
    }
    long at = pb_name ? find_name(wanted, n_wanted, pb_name) : -1;
    if (at < 0)
      at = k < n_wanted ? (long)k : -1;
    free(pb_name);
    if (at < 0) {
      tc_ndarray_release(&a);
      snprintf(why, cap, "%s: the model has only %zu inputs to feed", path, n_wanted);
      return -1;
    }
    if (names[at]) {
      tc_ndarray_release(&a);
      snprintf(why, cap, "%s: input '%s' is given twice", path, wanted[at]->name);
      return -1;
    }
    names[at] = strdup(wanted[at]->name);
    arrays[at] = a;
    if (!names[at]) {
      snprintf(why, cap, "out of memory");
      return -1;
    }
  }
  for (size_t i = 0; i < n_wanted; i++)
    if (!names[i]) {
      snprintf(why, cap, "%s: no input_<k>.pb for input '%s'", pbdir, wanted[i]->name);
      return -1;
    }
  return 0;
}

int tc_input_load_dir(const char *dir, const tc_model *m, size_t cap_inputs, char **names,
                      tc_ndarray *arrays, size_t *n, char *why, size_t cap) {
  const tc_graph *g = m->graph;
  *n = 0;
  const tc_value **wanted = calloc(g->n_inputs + 1, sizeof *wanted);
  if (!wanted) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  size_t n_wanted = 0;
  for (size_t i = 0; i < g->n_inputs; i++)
    if (!g->inputs[i].value->init)
      wanted[n_wanted++] = g->inputs[i].value;
  int rc = -1;
  if (n_wanted > cap_inputs) {
    snprintf(why, cap, "the model has more than %zu inputs", cap_inputs);
    goto done;
  }
  *n = n_wanted;
  for (size_t i = 0; i < n_wanted; i++) {
    names[i] = NULL;
    memset(&arrays[i], 0, sizeof arrays[i]);
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(why, cap, "%s: not a folder", dir);
    goto done;
  }
  char pbdir[4096];
  snprintf(pbdir, sizeof pbdir, "%s/input_0.pb", dir);
  if (is_file(pbdir)) {
    rc = load_pb_dir(dir, wanted, n_wanted, names, arrays, why, cap);
    goto done;
  }
  snprintf(pbdir, sizeof pbdir, "%s/test_data_set_0/input_0.pb", dir);
  if (is_file(pbdir)) {
    snprintf(pbdir, sizeof pbdir, "%s/test_data_set_0", dir);
    rc = load_pb_dir(pbdir, wanted, n_wanted, names, arrays, why, cap);
    goto done;
  }
  for (size_t i = 0; i < n_wanted; i++) {
    char path[4096], reason[400];
    tc_input_file_path(dir, wanted[i]->name, ".npy", path, sizeof path);
    if (!is_file(path)) {
      snprintf(why, cap, "%s: no file for input '%s' (expected %s, or ONNX test data input_0.pb)",
               dir, wanted[i]->name, path);
      goto done;
    }
    if (tc_npy_read(path, &arrays[i], reason, sizeof reason)) {
      snprintf(why, cap, "%s: %s", path, reason);
      goto done;
    }
    if (!(names[i] = strdup(wanted[i]->name))) {
      snprintf(why, cap, "out of memory");
      goto done;
    }
  }
  rc = 0;
done:
  free(wanted);
  return rc;
}
