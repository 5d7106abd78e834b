/* Precision conversion with validation and fallback (see precision.h).
 * float16/bfloat16 run convert-half; int8 runs quantize-dynamic (default
 * budget cos 0.99), whose quantized MatMuls are the "half" nodes below, each
 * known by its output name and measured from the MatMul's input.
 *
 * The float32 model (after the -O pipeline) is the reference. It is saved to
 * a temporary folder so that every round converts a fresh copy (and the
 * reference that measuring adds outputs to is one too):
 *
 *   round k:  copy ─▶ convert-half (nodes in the keep list stay float32)
 *             ─▶ run reference and copy in libtacort on every input set
 *             ─▶ within budget?  yes: done.   no: diagnose, grow the keep list
 *
 * Diagnosis runs both models once more with every node output as an extra
 * graph output and measures, per node of the converted model, the values it
 * makes non-finite where float32 is finite and its relative L2 error
 * ||half - f32|| / ||f32||. A node whose outputs first go non-finite (its
 * inputs are finite) is the first suspect; without such nodes, the half
 * nodes that add the most error (their output's error minus their inputs')
 * are, 1, 2, 4, ... of them per round. When no node stands out, every node
 * goes back to float32; if the budget still fails then, the conversion fails
 * with the numbers. */
#include "precision.h"

#include <dirent.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "exec.h"
#include "inputs.h"
#include "kernel.h"
#include "onnx_io.h"

#define MAX_INPUTS 256
#define MAX_SETS 256
#define MAX_ROUNDS 40

typedef struct kept_node {
  char *key, *op, *kind, *detail;
  double error;      /* budget fallback: relative error at its output; NaN otherwise */
  size_t non_finite; /* budget fallback: non-finite values it produced */
} kept_node;

typedef struct kept_list {
  kept_node *v;
  size_t n, cap;
} kept_list;

typedef struct out_metric {
  char *name;
  double cos, max_abs;
  size_t non_finite; /* non-finite in the converted model where float32 is finite */
} out_metric;

typedef struct input_set {
  size_t n;
  char *names[MAX_INPUTS];
  tc_ndarray arrays[MAX_INPUTS];
} input_set;

/* --precision auto: one candidate precision and what measuring it found. */
typedef struct auto_cand {
  int32_t type;
  bool int8_static;
  bool usable;        /* converted within the budget with at least one node */
  char note[200];     /* why it is not usable */
  size_t convertible; /* nodes it can convert */
  size_t faster;      /* of those, the regions faster than float32 */
  size_t half_nodes;  /* nodes converted in its model (faster and within the budget) */
  double full_ms;     /* median latency with every node converted; 0: not run */
  double ms;          /* median latency of its model; 0: none */
  tc_pass_record rec;
} auto_cand;

struct tc_precision_result {
  int32_t type;
  bool keep_io, validated, passed, synthetic, all_f32;
  const char *calib_dir;
  size_t n_sets, rounds, half_nodes;
  size_t n_cal, n_ranges; /* int8 static: calibration sets, calibrated activations */
  int calib_method;
  bool held_out;
  double budget_cos, budget_max_abs;
  out_metric *outs;
  size_t n_outs;
  kept_list kept;             /* nodes of the written model left in float32, and why */
  kept_list fallback;         /* the validation's choices, by key */
  tc_precision_layer *layers; /* per half node of the written model: its relative error */
  size_t n_layers;
  /* --precision auto (n_cands > 0) */
  auto_cand *cands;
  size_t n_cands;
  long chosen;             /* index into cands; -1: float32 */
  double ref_ms, final_ms; /* median latency of the float32 and the written model */
  char auto_note[256];
};

static const char *type_name(int32_t t) {
  return t == TC_DTYPE_I8     ? "int8"
         : t == TC_DTYPE_BF16 ? "bfloat16"
         : t == TC_DTYPE_F16  ? "float16"
                              : "float32";
}

/* The pass that converts to type t. */
static const char *pass_name(const tc_precision_options *o) {
  return o->type != TC_DTYPE_I8 ? "convert-half"
         : o->int8_static       ? "quantize-static"
                                : "quantize-dynamic";
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

static void kept_free(kept_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].key);
    free(l->v[i].op);
    free(l->v[i].kind);
    free(l->v[i].detail);
  }
  free(l->v);
  memset(l, 0, sizeof *l);
}

static kept_node *kept_add(kept_list *l, const char *key, const char *op) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 16;
    kept_node *v = realloc(l->v, cap * sizeof *v);
    if (!v)
      return NULL;
    l->v = v;
    l->cap = cap;
  }
  kept_node *k = &l->v[l->n];
  *k = (kept_node){.key = strdup(key), .op = strdup(op), .error = NAN};
  if (!k->key || !k->op) {
    free(k->key);
    free(k->op);
    return NULL;
  }
  l->n++;
  return k;
}

static const kept_node *kept_find(const kept_list *l, const char *key) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->v[i].key, key) == 0)
      return &l->v[i];
  return NULL;
}

/* ---- options ---- */
void tc_precision_defaults(tc_precision_options *o) {
  memset(o, 0, sizeof *o);
  o->calib_random = -1;
  o->budget_cos = 0.999;
  o->budget_max_abs = -1;
}

static int parse_budget(const char *v, tc_precision_options *o) {
  char buf[256];
  if (strlen(v) >= sizeof buf)
    return tc_cli_usage_error("--budget is too long");
  strcpy(buf, v);
  for (char *save = NULL, *part = strtok_r(buf, ",", &save); part;
       part = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(part, '='), *end;
    if (!eq)
      return tc_cli_usage_error("--budget needs cos=C,max-abs=A, got '%s'", v);
    *eq = '\0';
    double x = strtod(eq + 1, &end);
    if (end == eq + 1 || *end || !isfinite(x) || x < 0)
      return tc_cli_usage_error("--budget %s needs a non-negative number, got '%s'", part, eq + 1);
    if (strcmp(part, "cos") == 0) {
      if (x > 1)
        return tc_cli_usage_error("--budget cos must be at most 1, got %g", x);
      o->budget_cos = x;
      o->budget_cos_given = true;
    } else if (strcmp(part, "max-abs") == 0) {
      o->budget_max_abs = x;
    } else {
      return tc_cli_usage_error("--budget knows cos and max-abs, not '%s'", part);
    }
  }
  return 0;
}

static int parse_shape(const char *v, tc_precision_options *o) {
  const char *eq = strchr(v, '=');
  if (!eq || eq == v || !eq[1] || o->n_shapes == TC_PRECISION_MAX_SHAPES)
    return tc_cli_usage_error("--shape needs NAME=N (a symbolic dim) or NAME=DIMS like 1x128 (an "
                              "input), at most %d times",
                              TC_PRECISION_MAX_SHAPES);
  tc_precision_shape *sp = &o->shapes[o->n_shapes];
  int name_len = (int)(eq - v);
  sp->name = v;
  sp->name_len = (size_t)name_len;
  sp->rank = 0;
  for (const char *p = eq + 1; *p;) {
    char *end;
    long long d = strtoll(p, &end, 10);
    if (end == p || d < 0 || sp->rank == 8 || (*end && *end != 'x'))
      return tc_cli_usage_error("--shape %.*s: bad sizes '%s'", name_len, v, eq + 1);
    sp->dims[sp->rank++] = d;
    p = *end ? end + 1 : end;
  }
  o->n_shapes++;
  return 0;
}

static const char *const with_value[] = {"--precision", "--calib",     "--calib-random", "--budget",
                                         "--shape",     "--int8-mode", "--calib-method", NULL};

bool tc_precision_is_option(const char *s) {
  for (const char *const *w = with_value; *w; w++)
    if (strcmp(*w, s) == 0)
      return true;
  return strcmp(s, "--keep-io-types") == 0 || strcmp(s, "--qdq-outputs") == 0 ||
         strcmp(s, "--qdq-inputs-only") == 0;
}

int tc_precision_parse_arg(int argc, char **argv, int *i, tc_precision_options *o) {
  const char *s = argv[*i];
  if (strcmp(s, "--keep-io-types") == 0) {
    o->keep_io_types = true;
    return 0;
  }
  if (strcmp(s, "--qdq-outputs") == 0) {
    o->qdq_outputs_given = true;
    return 0;
  }
  if (strcmp(s, "--qdq-inputs-only") == 0) {
    o->qdq_inputs_only = true;
    return 0;
  }
  if (*i + 1 >= argc)
    return tc_cli_usage_error("%s needs a value", s);
  const char *v = argv[++*i];
  if (strcmp(s, "--precision") == 0) {
    if (strcmp(v, "fp32") == 0)
      o->type = 0;
    else if (strcmp(v, "fp16") == 0)
      o->type = TC_DTYPE_F16;
    else if (strcmp(v, "bf16") == 0)
      o->type = TC_DTYPE_BF16;
    else if (strcmp(v, "int8") == 0)
      o->type = TC_DTYPE_I8;
    else if (strcmp(v, "auto") == 0)
      o->type = TC_PRECISION_AUTO;
    else
      return tc_cli_usage_error("--precision takes fp32, fp16, bf16, int8 or auto, got '%s'", v);
    return 0;
  }
  if (strcmp(s, "--int8-mode") == 0) {
    if (strcmp(v, "static") != 0 && strcmp(v, "dynamic") != 0)
      return tc_cli_usage_error("--int8-mode takes static or dynamic, got '%s'", v);
    o->int8_mode_given = true;
    o->int8_static = strcmp(v, "static") == 0;
    return 0;
  }
  if (strcmp(s, "--calib-method") == 0) {
    if (strcmp(v, "minmax") == 0)
      o->calib_method = TC_CALIB_MINMAX;
    else if (strcmp(v, "percentile") == 0)
      o->calib_method = TC_CALIB_PERCENTILE;
    else if (strcmp(v, "entropy") == 0)
      o->calib_method = TC_CALIB_ENTROPY;
    else
      return tc_cli_usage_error("--calib-method takes minmax, percentile or entropy, got '%s'", v);
    o->calib_method_given = true;
    return 0;
  }
  if (strcmp(s, "--shape") != 0)
    o->validation_given = true;
  if (strcmp(s, "--calib") == 0) {
    o->calib_dir = v;
  } else if (strcmp(s, "--calib-random") == 0) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || n > MAX_SETS)
      return tc_cli_usage_error("--calib-random needs a count from 0 to %d, got '%s'", MAX_SETS, v);
    o->calib_random = n;
  } else if (strcmp(s, "--budget") == 0) {
    if (parse_budget(v, o))
      return TC_EXIT_ERROR;
  } else if (parse_shape(v, o)) {
    return TC_EXIT_ERROR;
  }
  return 0;
}

int tc_precision_check_args(tc_precision_options *o) {
  bool is_auto = o->type == TC_PRECISION_AUTO;
  if (o->validation_given && !o->type)
    return tc_cli_usage_error("--calib, --calib-random and --budget check a precision "
                              "conversion: give --precision fp16, bf16, int8 or auto");
  if (o->n_shapes && !o->type && !o->shapes_for_codegen)
    return tc_cli_usage_error("--shape sizes the inputs a precision conversion is checked on, or "
                              "those the tuner measures on: give --precision or --codegen/--tune");
  if (o->keep_io_types && !o->type)
    return tc_cli_usage_error("--keep-io-types needs --precision fp16, bf16, int8 or auto");
  if (o->int8_mode_given && o->type != TC_DTYPE_I8 && !is_auto)
    return tc_cli_usage_error("--int8-mode needs --precision int8 or auto");
  if (o->calib_method_given && !o->int8_static && !(is_auto && !o->int8_mode_given))
    return tc_cli_usage_error("--calib-method sets how --int8-mode static calibrates "
                              "activation ranges: give --precision int8 --int8-mode static");
  if ((o->qdq_outputs_given || o->qdq_inputs_only) && !(o->type == TC_DTYPE_I8 && o->int8_static))
    return tc_cli_usage_error("%s shapes the QDQ model of --precision int8 --int8-mode static: "
                              "give those",
                              o->qdq_inputs_only ? "--qdq-inputs-only" : "--qdq-outputs");
  if (o->qdq_outputs_given && o->qdq_inputs_only)
    return tc_cli_usage_error("give --qdq-outputs or --qdq-inputs-only, not both");
  o->qdq_outputs = o->type == TC_DTYPE_I8 && o->int8_static && !o->qdq_inputs_only;
  if (o->int8_static && o->calib_random == 0)
    return tc_cli_usage_error("--int8-mode static calibrates on input sets: --calib-random 0 "
                              "leaves none");
  if (is_auto && o->calib_random == 0)
    return tc_cli_usage_error("--precision auto measures and validates on input sets: "
                              "--calib-random 0 leaves none");
  if (o->calib_dir && o->calib_random > 0)
    return tc_cli_usage_error("give --calib DIR or --calib-random N, not both");
  if (o->calib_dir && o->n_shapes)
    return tc_cli_usage_error("--shape sizes generated inputs; inputs from --calib have their own");
  return 0;
}

/* ---- input sets ---- */
static void set_free(input_set *s) {
  for (size_t i = 0; i < s->n; i++) {
    free(s->names[i]);
    tc_ndarray_release(&s->arrays[i]);
  }
  s->n = 0;
}

static const tc_precision_shape *find_shape(const tc_precision_options *o, const char *name,
                                            size_t len) {
  for (size_t i = 0; i < o->n_shapes; i++)
    if (o->shapes[i].name_len == len && strncmp(o->shapes[i].name, name, len) == 0)
      return &o->shapes[i];
  return NULL;
}

/* Size of a symbolic dim: --shape NAME=N, a sum "a+b" of such, else 1. */
static int64_t dim_size(const tc_precision_options *o, const char *param) {
  const tc_precision_shape *sp = find_shape(o, param, strlen(param));
  if (sp && sp->rank == 1)
    return sp->dims[0];
  if (!strchr(param, '+'))
    return 1;
  int64_t sum = 0;
  for (const char *p = param; *p;) {
    size_t len = strcspn(p, "+");
    sp = find_shape(o, p, len);
    sum += sp && sp->rank == 1 ? sp->dims[0] : 1;
    p += len + (p[len] == '+');
  }
  return sum;
}

static int random_set(const tc_model *m, const tc_precision_options *o, uint64_t *state,
                      input_set *out);

int tc_precision_random_inputs(const tc_model *m, const tc_precision_options *o, uint64_t *state,
                               char **names, tc_ndarray *arrays, size_t cap, size_t *n) {
  input_set *set = calloc(1, sizeof *set);
  if (!set)
    return tc_cli_error("out of memory");
  int rc = random_set(m, o, state, set);
  if (!rc && set->n > cap)
    rc = tc_cli_error("%s: more than %zu inputs", m->path ? m->path : "model", cap);
  if (rc) {
    set_free(set);
    free(set);
    return rc;
  }
  for (size_t i = 0; i < set->n; i++) {
    names[i] = set->names[i];
    arrays[i] = set->arrays[i];
  }
  *n = set->n;
  free(set);
  return 0;
}

/* Random inputs for every input of m without an initializer. */
static int random_set(const tc_model *m, const tc_precision_options *o, uint64_t *state,
                      input_set *out) {
  const tc_graph *g = m->graph;
  for (size_t i = 0; i < g->n_inputs; i++) {
    const tc_value *v = g->inputs[i].value;
    if (v->init)
      continue;
    const tc_type *t = &v->type;
    if (out->n == MAX_INPUTS)
      return tc_cli_error("%s: more than %d inputs", m->path ? m->path : "model", MAX_INPUTS);
    if (t->kind != TC_TYPE_TENSOR || !t->has_shape || t->rank > TC_MAX_DIMS)
      return tc_cli_error("input '%s': its type does not give dtype and rank; give inputs with "
                          "--calib DIR",
                          v->name);
    int64_t dims[TC_MAX_DIMS];
    const tc_precision_shape *whole = find_shape(o, v->name, strlen(v->name));
    if (whole && whole->rank != t->rank)
      return tc_cli_error("--shape %s: input '%s' has rank %zu, the shape given has %zu", v->name,
                          v->name, t->rank, whole->rank);
    for (size_t d = 0; d < t->rank; d++) {
      const tc_dim *dd = &t->dims[d];
      dims[d] = whole                                        ? whole->dims[d]
                : dd->kind == TC_DIM_VALUE && dd->value >= 0 ? dd->value
                : dd->kind == TC_DIM_PARAM                   ? dim_size(o, dd->param)
                                           : 1; /* unknown, or -1 as some exporters write */
    }
    char why[256];
    tc_ndarray *a = &out->arrays[out->n];
    if (tc_input_random_fill(a, v->name, t->elem, t->rank, dims, state, why, sizeof why))
      return tc_cli_error("input '%s': %s", v->name, why);
    if (!(out->names[out->n++] = strdup(v->name)))
      return tc_cli_error("out of memory");
  }
  return 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Input sets from --calib DIR: every subfolder (sorted) is one set, or DIR
 * itself when it has none. */
static int calib_sets(const tc_model *m, const char *dir, input_set *sets, size_t *n_sets) {
  DIR *d = opendir(dir);
  if (!d)
    return tc_cli_error("--calib %s: not a folder", dir);
  char *subs[MAX_SETS];
  size_t n = 0;
  int rc = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.')
      continue;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
      continue;
    if (n == MAX_SETS) {
      rc = tc_cli_error("--calib %s: more than %d input sets", dir, MAX_SETS);
      break;
    }
    if (!(subs[n++] = strdup(path))) {
      n--;
      rc = tc_cli_error("out of memory");
      break;
    }
  }
  closedir(d);
  if (!rc && n)
    qsort(subs, n, sizeof *subs, cmp_str);
  size_t want = n ? n : 1;
  for (size_t k = 0; !rc && k < want; k++) {
    const char *folder = n ? subs[k] : dir;
    char why[600];
    input_set *s = &sets[k];
    if (tc_input_load_dir(folder, m, MAX_INPUTS, s->names, s->arrays, &s->n, why, sizeof why)) {
      for (size_t i = 0; i < s->n; i++) {
        free(s->names[i]);
        tc_ndarray_release(&s->arrays[i]);
      }
      s->n = 0;
      rc = tc_cli_error("--calib: %s", why);
    } else {
      *n_sets = k + 1;
    }
  }
  for (size_t k = 0; k < n; k++)
    free(subs[k]);
  return rc;
}

/* ---- running and comparing ---- */

/* a converted to dtype into *out (data malloc'd). */
static int convert_array(const tc_ndarray *a, int32_t dtype, tc_ndarray *out) {
  *out = *a;
  out->dtype = dtype;
  tc_rt_tensor src = {.dtype = a->dtype, .rank = a->rank, .data = a->data, .bytes = a->size};
  memcpy(src.dims, a->dims, sizeof src.dims);
  size_t n = tc_rt_numel(&src);
  out->size = tc_dtype_bytes(dtype, n);
  out->data = malloc(out->size ? out->size : 1);
  if (!out->data)
    return -1;
  tc_rt_tensor dst = src;
  dst.dtype = dtype;
  dst.data = out->data;
  dst.bytes = out->size;
  for (size_t i = 0; i < n; i++)
    tc_rt_set_f64(&dst, i, tc_rt_get_f64(&src, i));
  return 0;
}

/* Runs m on set s, converting float inputs to the dtypes m declares. outs
 * must have room for m's outputs. */
static tc_status run_set(tc_session *sess, const tc_model *m, const input_set *s, tc_ndarray *outs,
                         tc_diag *d) {
  tc_ndarray conv[MAX_INPUTS];
  const char *names[MAX_INPUTS];
  bool owned[MAX_INPUTS] = {false};
  tc_status st = TC_STATUS_OK;
  for (size_t i = 0; i < s->n; i++) {
    names[i] = s->names[i];
    conv[i] = s->arrays[i];
    const tc_value *v = tc_graph_lookup_local(m->graph, s->names[i]);
    int32_t want = v && v->type.kind == TC_TYPE_TENSOR ? v->type.elem : 0;
    if (want && want != s->arrays[i].dtype && tc_dtype_is_float(want) &&
        tc_dtype_is_float(s->arrays[i].dtype)) {
      if (convert_array(&s->arrays[i], want, &conv[i])) {
        st = tc_diag_set(d, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
        break;
      }
      owned[i] = true;
    }
  }
  if (!st)
    st = tc_session_run(sess, s->n, names, conv, outs, d);
  for (size_t i = 0; i < s->n; i++)
    if (owned[i])
      free(conv[i].data);
  return st;
}

typedef struct cmp_acc {
  double dot, na, nb, d2, max_abs;
  size_t non_finite, n;
  bool shape_differs;
} cmp_acc;

static tc_rt_tensor view(const tc_ndarray *a) {
  tc_rt_tensor t = {.dtype = a->dtype, .rank = a->rank, .data = a->data, .bytes = a->size};
  memcpy(t.dims, a->dims, sizeof t.dims);
  return t;
}

/* Adds the comparison of got against ref to c. */
static void compare(cmp_acc *c, const tc_ndarray *ref, const tc_ndarray *got) {
  bool same = ref->rank == got->rank;
  for (size_t i = 0; same && i < ref->rank; i++)
    same = ref->dims[i] == got->dims[i];
  if (!same) {
    c->shape_differs = true;
    return;
  }
  tc_rt_tensor a = view(ref), b = view(got);
  size_t n = tc_rt_numel(&a);
  for (size_t i = 0; i < n; i++) {
    double x = tc_rt_get_f64(&a, i), y = tc_rt_get_f64(&b, i);
    if (!isfinite(x))
      continue;
    if (!isfinite(y)) {
      c->non_finite++;
      continue;
    }
    double e = fabs(x - y);
    c->dot += x * y;
    c->na += x * x;
    c->nb += y * y;
    c->d2 += e * e;
    c->max_abs = e > c->max_abs ? e : c->max_abs;
    c->n++;
  }
}

static double cosine(const cmp_acc *c) {
  if (c->na == 0 && c->nb == 0)
    return 1;
  if (c->na == 0 || c->nb == 0)
    return 0;
  return c->dot / (sqrt(c->na) * sqrt(c->nb));
}

static double rel_err(const cmp_acc *c) {
  return c->na > 0 ? sqrt(c->d2 / c->na) : c->d2 > 0 ? 1 : 0;
}

/* ---- the conversion loop ---- */
typedef struct prec_ctx {
  const tc_precision_options *o;
  const tc_pass_options *popt;
  const char *model_name;
  char tmpdir[256], fp32_path[300];
  tc_model *ref; /* the float32 model: a copy (measuring adds outputs to it) */
  input_set sets[MAX_SETS];
  size_t n_sets;
  tc_ndarray *ref_outs; /* n_sets x ref outputs */
  size_t n_ref_outs;
  tc_precision_result *res;
  kept_list half;         /* nodes the last conversion made half (key, op) */
  size_t n_cal, val_from; /* calibration sets [0, n_cal), validation [val_from, n_sets) */
  tc_qrange *ranges;      /* int8 static: calibrated activation ranges */
  size_t n_ranges;
  bool note_failed;
  bool quiet; /* --precision auto: a candidate that misses the budget is no error */
  tc_diag *d;
} prec_ctx;

static const char *node_key(const tc_node *n) {
  for (size_t i = 0; i < n->n_outputs; i++)
    if (n->outputs[i])
      return n->outputs[i]->name;
  return NULL;
}

static const char *reason_kind(const char *why) {
  if (strncmp(why, "block list", 10) == 0)
    return "block list";
  if (strncmp(why, "out-of-range", 12) == 0 || strstr(why, "is all zeros in"))
    return "out-of-range constant";
  if (strncmp(why, "opset", 5) == 0)
    return "opset";
  if (strncmp(why, "kept in float32 on request", 26) == 0)
    return "budget fallback";
  if (strncmp(why, "grouped", 7) == 0)
    return "grouped convolution";
  if (strncmp(why, "no calibrated range", 19) == 0)
    return "not calibrated";
  if (strncmp(why, "not on the allow list", 21) == 0)
    return "not on the allow list";
  return "other";
}

static void on_note(void *ctx, const tc_node *n, const char *why) {
  prec_ctx *x = ctx;
  const char *key = node_key(n);
  if (!key)
    return;
  kept_list *l = why ? &x->res->kept : &x->half;
  kept_node *k = kept_add(l, key, n->op_type);
  if (!k) {
    x->note_failed = true;
    return;
  }
  if (!why)
    return;
  const kept_node *fb = kept_find(&x->res->fallback, key);
  k->kind = strdup(fb && fb->kind ? fb->kind : reason_kind(why));
  k->detail = strdup(fb && fb->detail ? fb->detail : why);
  if (fb) {
    k->error = fb->error;
    k->non_finite = fb->non_finite;
  }
  if (!k->kind || !k->detail)
    x->note_failed = true;
}

/* Loads a fresh copy of the float32 model and converts it with the current
 * keep list; *rec gets the pass record. NULL after printing an error. */
static tc_model *convert_copy(prec_ctx *x, tc_pass_record *rec) {
  tc_model *m = NULL;
  if (tc_model_load_file(x->fp32_path, NULL, &m, x->d) != TC_STATUS_OK) {
    tc_cli_report(x->d);
    return NULL;
  }
  const char **keys = calloc(x->res->fallback.n + 1, sizeof *keys);
  if (!keys) {
    tc_model_free(m);
    tc_cli_error("out of memory");
    return NULL;
  }
  for (size_t i = 0; i < x->res->fallback.n; i++)
    keys[i] = x->res->fallback.v[i].key;
  tc_pass_options po = *x->popt;
  po.half_type = x->o->type;
  po.keep_io_types = x->o->keep_io_types;
  po.half_keep = keys;
  po.half_note = on_note;
  po.half_note_ctx = x;
  po.qranges = x->ranges;
  po.n_qranges = x->n_ranges;
  po.qdq_outputs = x->o->qdq_outputs;
  kept_free(&x->res->kept);
  kept_free(&x->half);
  x->note_failed = false;
  tc_pipeline q = {0};
  q.passes[q.n++] = tc_pass_find(pass_name(x->o));
  tc_status st = q.passes[0] ? tc_pipeline_run(&q, m, &po, x->d) : TC_STATUS_INVALID;
  free(keys);
  if (st != TC_STATUS_OK || x->note_failed) {
    if (x->note_failed)
      tc_cli_error("out of memory");
    else
      tc_cli_report(x->d);
    tc_model_free(m);
    return NULL;
  }
  *rec = q.records[0];
  x->res->half_nodes = x->half.n;
  return m;
}

/* Runs the converted model on every set; fills res->outs. -1 after printing
 * an error. */
static int validate(prec_ctx *x, tc_model *m) {
  tc_precision_result *r = x->res;
  size_t no = tc_model_num_outputs(m);
  if (no != x->n_ref_outs) {
    tc_cli_error("internal error: the converted model has %zu outputs, float32 %zu", no,
                 x->n_ref_outs);
    return -1;
  }
  tc_session *s = NULL;
  tc_ndarray *outs = calloc(no + 1, sizeof *outs);
  cmp_acc *acc = calloc(no + 1, sizeof *acc);
  double *cmin = calloc(no + 1, sizeof *cmin);
  int rc = -1;
  if (!outs || !acc || !cmin) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (tc_session_new(m, &s, x->d) != TC_STATUS_OK) {
    tc_cli_error("%s: libtacort cannot run the %s model to validate it: %s (--calib-random 0 "
                 "skips validation)",
                 x->model_name, type_name(x->o->type), tc_diag_message(x->d));
    goto done;
  }
  for (size_t k = 0; k < no; k++)
    cmin[k] = 1;
  for (size_t si = x->val_from; si < x->n_sets; si++) {
    if (run_set(s, m, &x->sets[si], outs, x->d) != TC_STATUS_OK) {
      tc_cli_error("%s: the %s model failed on validation set %zu: %s", x->model_name,
                   type_name(x->o->type), si, tc_diag_message(x->d));
      goto done;
    }
    for (size_t k = 0; k < no; k++) {
      cmp_acc one = {0};
      compare(&one, &x->ref_outs[si * no + k], &outs[k]);
      compare(&acc[k], &x->ref_outs[si * no + k], &outs[k]);
      if (one.shape_differs) {
        tc_cli_error("internal error: output '%s' of the %s model has another shape",
                     tc_model_output_name(m, k), type_name(x->o->type));
        goto done;
      }
      double c = cosine(&one);
      cmin[k] = c < cmin[k] ? c : cmin[k];
      tc_ndarray_release(&outs[k]);
    }
  }
  for (size_t k = 0; k < r->n_outs; k++)
    free(r->outs[k].name);
  free(r->outs);
  r->outs = calloc(no + 1, sizeof *r->outs);
  if (!r->outs) {
    tc_cli_error("out of memory");
    goto done;
  }
  r->n_outs = no;
  r->passed = true;
  for (size_t k = 0; k < no; k++) {
    if (acc[k].n + acc[k].non_finite == 0) {
      tc_cli_error("%s: validation compared no value of output '%s': the %s give it no finite "
                   "elements%s",
                   x->model_name, tc_model_output_name(m, k),
                   x->o->calib_dir ? "--calib inputs" : "random inputs",
                   x->o->calib_dir ? "" : " (give sizes of symbolic dims with --shape NAME=N)");
      goto done;
    }
  }
  for (size_t k = 0; k < no; k++) {
    out_metric *om = &r->outs[k];
    if (!(om->name = strdup(tc_model_output_name(m, k)))) {
      tc_cli_error("out of memory");
      goto done;
    }
    om->cos = cmin[k];
    om->max_abs = acc[k].max_abs;
    om->non_finite = acc[k].non_finite;
    if (om->non_finite || !(om->cos >= x->o->budget_cos) ||
        (x->o->budget_max_abs >= 0 && om->max_abs > x->o->budget_max_abs))
      r->passed = false;
  }
  rc = 0;
done:
  for (size_t k = 0; outs && k < no; k++)
    tc_ndarray_release(&outs[k]);
  free(outs);
  free(acc);
  free(cmin);
  tc_session_free(s);
  return rc;
}

/* ---- diagnosis ---- */
typedef struct probe {
  const char *name;
  long ref_out, conv_out; /* output index in each model, -1: none */
  cmp_acc acc;
} probe;

/* Output index of v in m, making v an output if it is not one. -1 on OOM. */
static long output_index(tc_model *m, tc_value *v) {
  tc_graph *g = m->graph;
  for (size_t i = 0; i < g->n_outputs; i++)
    if (g->outputs[i].value == v)
      return (long)i;
  if (tc_graph_add_output(g, v, NULL))
    return -1;
  return (long)g->n_outputs - 1;
}

static const probe *probe_of(const probe *p, size_t n, const tc_value *v) {
  for (size_t i = 0; v && i < n; i++)
    if (p[i].conv_out >= 0 && strcmp(p[i].name, v->name) == 0)
      return &p[i];
  return NULL;
}

/* The probe measuring v in the converted model: its own, or that of the Cast
 * of it which the conversion made a graph output. */
static const probe *probe_of_value(const probe *p, size_t n, const tc_value *v) {
  const probe *q = probe_of(p, n, v);
  for (size_t k = 0; !q && v && k < v->n_uses; k++)
    if (tc_is_op(v->uses[k].node, "Cast"))
      q = probe_of(p, n, v->uses[k].node->outputs[0]);
  return q;
}

/* The value a node input comes from, looking through Casts. */
static const tc_value *through_casts(const tc_value *v) {
  while (v && tc_is_op(v->producer, "Cast") && v->producer->inputs[0])
    v = v->producer->inputs[0];
  return v;
}

typedef struct suspect {
  const tc_node *n;
  const char *key;
  double out_err, local;
  size_t non_finite;
  bool origin;
} suspect;

static int cmp_suspect(const void *a, const void *b) {
  double x = ((const suspect *)a)->local, y = ((const suspect *)b)->local;
  return (x < y) - (x > y);
}

/* The key under which conversion knows node n (its first output, or the
 * graph output a Cast of it became). */
static const char *conv_key(const tc_model *ref, const tc_node *n) {
  const char *key = node_key(n);
  if (!key || tc_graph_lookup_local(ref->graph, key))
    return key;
  const tc_value *v = n->outputs[0];
  for (size_t k = 0; v && k < v->n_uses; k++) {
    const tc_node *u = v->uses[k].node;
    if (tc_is_op(u, "Cast") && u->outputs[0] && (u->outputs[0]->flags & TC_VALUE_OUTPUT))
      return u->outputs[0]->name;
  }
  return key;
}

/* The largest error of the measured values v comes from: v itself, or, when
 * the conversion made v (int8: the quantized MatMul's inner values), the
 * inputs of its producer, up to depth nodes back. */
static void input_error(const probe *pr, size_t np, const tc_value *v, int depth, double *err,
                        bool *bad) {
  if (!v)
    return;
  const probe *q = probe_of_value(pr, np, through_casts(v));
  if (q) {
    double e = rel_err(&q->acc);
    *err = e > *err ? e : *err;
    *bad |= q->acc.non_finite > 0;
    return;
  }
  const tc_node *p = through_casts(v)->producer;
  for (size_t i = 0; p && depth > 0 && i < p->n_inputs; i++)
    input_error(pr, np, p->inputs[i], depth - 1, err, bad);
}

/* Adds the half node n with its measurements as a suspect. */
static void add_suspect(prec_ctx *x, const probe *pr, size_t np, const tc_node *n, suspect *s) {
  *s = (suspect){.n = n, .key = conv_key(x->ref, n)};
  for (size_t i = 0; i < n->n_outputs; i++) {
    const probe *q = probe_of_value(pr, np, n->outputs[i]);
    if (!q)
      continue;
    double e = rel_err(&q->acc);
    s->out_err = e > s->out_err ? e : s->out_err;
    s->non_finite += q->acc.non_finite;
  }
  double in_err = 0;
  bool in_bad = false;
  for (size_t i = 0; i < n->n_inputs; i++)
    input_error(pr, np, n->inputs[i], 4, &in_err, &in_bad);
  s->local = s->out_err - in_err;
  s->origin = s->non_finite > 0 && !in_bad;
}

/* Adds suspect s to the fallback list with detail (taken over). */
static int fall_back(prec_ctx *x, const suspect *s, char *detail) {
  kept_node *k = detail ? kept_add(&x->res->fallback, s->key, s->n->op_type) : NULL;
  if (!k || !(k->kind = strdup("budget fallback"))) {
    free(detail);
    return tc_cli_error("out of memory");
  }
  k->detail = detail;
  k->error = s->out_err;
  k->non_finite = s->non_finite;
  return 0;
}

/* Picks the nodes to move back to float32 (see the top of the file). */
static int choose(prec_ctx *x, suspect *sus, size_t ns, size_t round) {
  int added = 0;
  for (size_t i = 0; i < ns; i++) {
    if (!sus[i].origin)
      continue;
    if (fall_back(x, &sus[i],
                  dupf("budget fallback: %zu non-finite values in %s where float32 has none",
                       sus[i].non_finite, type_name(x->o->type))))
      return -1;
    added++;
  }
  if (added)
    return added;
  qsort(sus, ns, sizeof *sus, cmp_suspect);
  size_t want = (size_t)1 << (round < 6 ? round : 6);
  bool everything = ns == 0 || !(sus[0].local > 1e-7) || round + 1 >= MAX_ROUNDS;
  for (size_t i = 0; i < ns; i++) {
    if (!everything && ((size_t)added == want || !(sus[i].local > 1e-7)))
      break;
    char *detail =
        everything
            ? dupf("budget fallback: no single node explains the error, every node moved back")
            : dupf("budget fallback: relative error %.3g at its output, %.3g more than at its "
                   "inputs",
                   sus[i].out_err, sus[i].local);
    if (fall_back(x, &sus[i], detail))
      return -1;
    added++;
  }
  return added;
}

/* Moves every node the last conversion made half back to float32 (when the
 * measurements single out none). */
static int fall_back_all(prec_ctx *x) {
  for (size_t i = 0; i < x->half.n; i++) {
    const kept_node *h = &x->half.v[i];
    if (kept_find(&x->res->fallback, h->key))
      continue;
    kept_node *k = kept_add(&x->res->fallback, h->key, h->op);
    if (!k || !(k->kind = strdup("budget fallback")) ||
        !(k->detail =
              strdup("budget fallback: no single node explains the error, every node moved back")))
      return tc_cli_error("out of memory");
  }
  return 0;
}

/* Measures every node output of both models and adds the nodes to move back
 * to float32 to the fallback list; returns how many, -1 after an error. */
/* Keeps each suspect's output error as the per-layer error of the result. */
static int record_layers(prec_ctx *x, const suspect *sus, size_t ns) {
  tc_precision_result *r = x->res;
  r->layers = calloc(ns + 1, sizeof *r->layers);
  if (!r->layers)
    return tc_cli_error("out of memory");
  for (size_t i = 0; i < ns; i++) {
    tc_precision_layer *l = &r->layers[r->n_layers];
    /* the op conversion was told of (int8: the MatMul a Mul now ends) */
    const kept_node *h = kept_find(&x->half, sus[i].key);
    if (!(l->layer = strdup(sus[i].key)) || !(l->op = strdup(h ? h->op : sus[i].n->op_type)))
      return tc_cli_error("out of memory");
    l->error = sus[i].out_err;
    r->n_layers++;
  }
  return 0;
}

/* Measures every half node's error against the float32 model (the model's
 * node outputs exposed as outputs); then either picks nodes to move back to
 * float32 (choose) or, with record_only, keeps the errors for the report. */
static int diagnose(prec_ctx *x, tc_model *conv, size_t round, bool record_only) {
  tc_graph *rg = x->ref->graph, *cg = conv->graph;
  size_t cap = 0, np = 0, nro = 0, nco = 0, ns = 0;
  for (tc_node *n = rg->first; n; n = n->next)
    cap += n->n_outputs;
  probe *pr = calloc(cap + 1, sizeof *pr);
  suspect *sus = calloc(cg->n_nodes + 1, sizeof *sus);
  tc_session *rs = NULL, *cs = NULL;
  tc_ndarray *ro = NULL, *co = NULL;
  int added = -1;
  if (!pr || !sus) {
    tc_cli_error("out of memory");
    goto done;
  }
  for (tc_node *n = rg->first; n; n = n->next)
    for (size_t i = 0; i < n->n_outputs; i++) {
      tc_value *v = n->outputs[i];
      tc_value *cv = v ? tc_graph_lookup_local(cg, v->name) : NULL;
      if (!cv || !cv->producer)
        continue;
      pr[np].name = v->name;
      pr[np].ref_out = output_index(x->ref, v);
      pr[np].conv_out = output_index(conv, cv);
      if (pr[np].ref_out < 0 || pr[np].conv_out < 0) {
        tc_cli_error("out of memory");
        goto done;
      }
      np++;
    }
  nro = rg->n_outputs;
  nco = cg->n_outputs;
  ro = calloc(nro + 1, sizeof *ro);
  co = calloc(nco + 1, sizeof *co);
  if (!ro || !co) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (tc_session_new(x->ref, &rs, x->d) || tc_session_new(conv, &cs, x->d)) {
    tc_cli_error("%s: cannot measure the nodes: %s", x->model_name, tc_diag_message(x->d));
    goto done;
  }
  for (size_t si = x->val_from; si < x->n_sets; si++) {
    bool ok = run_set(rs, x->ref, &x->sets[si], ro, x->d) == TC_STATUS_OK &&
              run_set(cs, conv, &x->sets[si], co, x->d) == TC_STATUS_OK;
    for (size_t k = 0; ok && k < np; k++)
      compare(&pr[k].acc, &ro[pr[k].ref_out], &co[pr[k].conv_out]);
    for (size_t k = 0; k < nro; k++)
      tc_ndarray_release(&ro[k]);
    for (size_t k = 0; k < nco; k++)
      tc_ndarray_release(&co[k]);
    if (!ok) {
      tc_cli_error("%s: cannot measure the nodes: %s", x->model_name, tc_diag_message(x->d));
      goto done;
    }
  }
  for (tc_node *n = cg->first; n; n = n->next) {
    const char *key = conv_key(x->ref, n);
    if (key && kept_find(&x->half, key))
      add_suspect(x, pr, np, n, &sus[ns++]);
  }
  added = record_only ? record_layers(x, sus, ns) : choose(x, sus, ns, round);
done:
  tc_session_free(rs);
  tc_session_free(cs);
  free(ro);
  free(co);
  free(pr);
  free(sus);
  return added;
}

/* ---- the entry point ---- */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* Removes the temporary folder and what saving put in it (external data
 * files keep their relative locations, subfolders included). */
static void remove_tmpdir(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Runs the float32 model on every set and keeps its outputs. */
static int reference_outputs(prec_ctx *x) {
  size_t no = tc_model_num_outputs(x->ref);
  tc_session *s = NULL;
  x->ref_outs = calloc(x->n_sets * no + 1, sizeof *x->ref_outs);
  x->n_ref_outs = no;
  if (!x->ref_outs)
    return tc_cli_error("out of memory");
  if (tc_session_new(x->ref, &s, x->d) != TC_STATUS_OK)
    return tc_cli_error("%s: libtacort cannot run the float32 model to validate the conversion: "
                        "%s (--calib-random 0 skips validation)",
                        x->model_name, tc_diag_message(x->d));
  int rc = 0;
  for (size_t si = x->val_from; si < x->n_sets && !rc; si++)
    if (run_set(s, x->ref, &x->sets[si], &x->ref_outs[si * no], x->d) != TC_STATUS_OK)
      rc =
          tc_cli_error("%s: the float32 model failed on validation set %zu: %s%s", x->model_name,
                       si, tc_diag_message(x->d),
                       x->o->calib_dir ? "" : " (give sizes of symbolic dims with --shape NAME=N)");
  tc_session_free(s);
  return rc;
}

/* ---- calibration (int8 static) ----
 * The float32 model runs on the calibration sets with every activation that
 * quantize-static may quantize (input 0 of a MatMul, Gemm or convolution) as an
 * extra output. minmax keeps the smallest and largest finite value;
 * percentile and entropy run the sets a second time to fill a histogram:
 * percentile cuts 0.001% of the values off each end of CAL_BINS bins;
 * entropy (TensorRT's calibration) picks the clip threshold t of |x| whose
 * 8-bit quantization has the least KL divergence from a histogram of |x|
 * with CAL_BINS bins, fewer when there are under 32 values a bin (a sparse
 * histogram's noise makes KL pick thresholds far too low). */
#define CAL_BINS 2048

typedef struct cal_t {
  const char *name;
  long out;
  double lo, hi;
  size_t count; /* finite values seen */
  int bins;
  double *hist;
} cal_t;

static void cal_minmax(cal_t *c, const tc_ndarray *a) {
  const float *v = a->data;
  for (size_t i = 0; i < a->size / sizeof(float); i++)
    if (isfinite(v[i])) {
      c->count++;
      c->lo = v[i] < c->lo ? v[i] : c->lo;
      c->hi = v[i] > c->hi ? v[i] : c->hi;
    }
}

static void cal_hist(cal_t *c, const tc_ndarray *a, bool absolute) {
  const float *v = a->data;
  double amax = fmax(fabs(c->lo), fabs(c->hi));
  double base = absolute ? 0 : c->lo, width = (absolute ? amax : c->hi - c->lo) / c->bins;
  if (!(width > 0))
    return;
  for (size_t i = 0; i < a->size / sizeof(float); i++) {
    if (!isfinite(v[i]))
      continue;
    double x = absolute ? fabs(v[i]) : v[i];
    long b = (long)((x - base) / width);
    c->hist[b < 0 ? 0 : b >= c->bins ? c->bins - 1 : b] += 1;
  }
}

static void cal_percentile(cal_t *c) {
  double total = 0, acc = 0, width = (c->hi - c->lo) / CAL_BINS; /* c->bins == CAL_BINS */
  for (int b = 0; b < CAL_BINS; b++)
    total += c->hist[b];
  if (!(total > 0) || !(width > 0))
    return;
  double cut = total * 1e-5;
  int first = 0, last = CAL_BINS - 1;
  for (acc = 0; first < CAL_BINS - 1 && acc + c->hist[first] <= cut; first++)
    acc += c->hist[first];
  for (acc = 0; last > first && acc + c->hist[last] <= cut; last--)
    acc += c->hist[last];
  double lo = c->lo + first * width, hi = c->lo + (last + 1) * width;
  c->lo = lo;
  c->hi = hi;
}

/* KL(p || q) of histogram h[0..i) (the tail folded into its last bin)
 * against its nq-level quantization. */
static double cal_kl(const double *h, int i, int nq, double tail, double *p, double *q) {
  double ps = 0;
  for (int b = 0; b < i; b++)
    p[b] = h[b] + (b == i - 1 ? tail : 0), ps += p[b];
  for (int j = 0; j < nq; j++) {
    int b0 = (int)((long)j * i / nq), b1 = (int)((long)(j + 1) * i / nq);
    double sum = 0;
    int nz = 0;
    for (int b = b0; b < b1; b++)
      sum += h[b], nz += h[b] > 0;
    for (int b = b0; b < b1; b++)
      q[b] = h[b] > 0 ? sum / nz : 0;
  }
  double qs = 0, kl = 0;
  for (int b = 0; b < i; b++)
    qs += q[b];
  for (int b = 0; b < i; b++)
    if (p[b] > 0)
      kl += q[b] > 0 ? p[b] / ps * log((p[b] / ps) / (q[b] / qs)) : 1e3; /* p with no q */
  return kl;
}

static int cal_entropy(cal_t *c) {
  double amax = fmax(fabs(c->lo), fabs(c->hi)), width = amax / c->bins;
  if (!(width > 0))
    return 0;
  int nq = c->lo >= 0 ? 255 : 127, nb = c->bins;
  double *p = malloc(2 * (size_t)nb * sizeof *p), *q = p ? p + nb : NULL;
  if (!p)
    return tc_cli_error("out of memory");
  double best = INFINITY, tail = 0;
  int best_i = nb;
  for (int b = nq; b < nb; b++)
    tail += c->hist[b];
  for (int i = nq; i <= nb; i++) {
    double kl = cal_kl(c->hist, i, nq, tail, p, q);
    if (kl < best)
      best = kl, best_i = i;
    if (i < nb)
      tail -= c->hist[i];
  }
  free(p);
  double t = best_i * width;
  c->lo = c->lo >= 0 ? 0 : fmax(c->lo, -t);
  c->hi = fmin(c->hi, t);
  return 0;
}

/* Fills x->ranges from the calibration sets [0, x->n_cal). */
static int calibrate(prec_ctx *x) {
  tc_model *m = NULL;
  tc_session *s = NULL;
  cal_t *cal = NULL;
  tc_ndarray *outs = NULL;
  size_t nc = 0, no = 0;
  int rc = -1;
  if (tc_model_load_file(x->fp32_path, NULL, &m, x->d) != TC_STATUS_OK) {
    tc_cli_report(x->d);
    return -1;
  }
  tc_graph *g = m->graph;
  cal = calloc(2 * g->n_nodes + 1, sizeof *cal);
  if (!cal) {
    tc_cli_error("out of memory");
    goto done;
  }
  /* each candidate's input, and in the full QDQ form its output */
  for (tc_node *n = g->first; n; n = n->next) {
    if (!(tc_is_op(n, "MatMul") || tc_pass_is_gemm(n) || tc_pass_is_conv(n)))
      continue;
    tc_value *vs[2] = {n->n_inputs ? n->inputs[0] : NULL,
                       x->o->qdq_outputs && n->n_outputs ? n->outputs[0] : NULL};
    for (int j = 0; j < 2; j++) {
      tc_value *v = vs[j];
      bool seen = !v || v->init;
      for (size_t k = 0; k < nc && !seen; k++)
        seen = strcmp(cal[k].name, v->name) == 0;
      if (seen)
        continue;
      cal[nc] = (cal_t){.name = v->name, .lo = INFINITY, .hi = -INFINITY};
      if ((cal[nc].out = output_index(m, v)) < 0) {
        tc_cli_error("out of memory");
        goto done;
      }
      nc++;
    }
  }
  x->ranges = calloc(nc + 1, sizeof *x->ranges);
  no = g->n_outputs;
  outs = calloc(no + 1, sizeof *outs);
  if (!x->ranges || !outs) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (!nc) {
    rc = 0;
    goto done;
  }
  if (tc_session_new(m, &s, x->d) != TC_STATUS_OK) {
    tc_cli_error("%s: libtacort cannot run the float32 model to calibrate it: %s", x->model_name,
                 tc_diag_message(x->d));
    goto done;
  }
  int method = x->o->calib_method;
  for (int pass = 0; pass < (method == TC_CALIB_MINMAX ? 1 : 2); pass++) {
    for (size_t k = 0; pass == 1 && k < nc; k++) {
      size_t want = cal[k].count / 32;
      cal[k].bins = method == TC_CALIB_PERCENTILE || want >= CAL_BINS ? CAL_BINS
                    : want > 256                                      ? (int)want
                                                                      : 256;
      if (!(cal[k].hist = calloc((size_t)cal[k].bins, sizeof *cal[k].hist))) {
        tc_cli_error("out of memory");
        goto done;
      }
    }
    for (size_t si = 0; si < x->n_cal; si++) {
      if (run_set(s, m, &x->sets[si], outs, x->d) != TC_STATUS_OK) {
        tc_cli_error("%s: the float32 model failed on calibration set %zu: %s", x->model_name, si,
                     tc_diag_message(x->d));
        goto done;
      }
      for (size_t k = 0; k < nc; k++) {
        const tc_ndarray *a = &outs[cal[k].out];
        if (a->dtype != TC_DTYPE_F32)
          continue;
        if (pass == 0)
          cal_minmax(&cal[k], a);
        else
          cal_hist(&cal[k], a, method == TC_CALIB_ENTROPY);
      }
      for (size_t k = 0; k < no; k++)
        tc_ndarray_release(&outs[k]);
    }
  }
  for (size_t k = 0; k < nc; k++) {
    cal_t *c = &cal[k];
    if (!(c->lo <= c->hi))
      continue; /* no finite value seen: not quantized */
    if (method == TC_CALIB_PERCENTILE)
      cal_percentile(c);
    else if (method == TC_CALIB_ENTROPY && cal_entropy(c))
      goto done;
    tc_qrange *r = &x->ranges[x->n_ranges];
    if (!(r->name = strdup(c->name))) {
      tc_cli_error("out of memory");
      goto done;
    }
    r->lo = c->lo;
    r->hi = c->hi;
    x->n_ranges++;
  }
  rc = 0;
done:
  for (size_t k = 0; outs && k < no; k++)
    tc_ndarray_release(&outs[k]);
  free(outs);
  for (size_t k = 0; cal && k < nc; k++)
    free(cal[k].hist);
  free(cal);
  tc_session_free(s);
  tc_model_free(m);
  return rc;
}

static void fail_budget(const prec_ctx *x) {
  const tc_precision_result *r = x->res;
  char nums[1024] = "";
  size_t len = 0;
  for (size_t k = 0; k < r->n_outs && len < sizeof nums - 1; k++) {
    int w = snprintf(nums + len, sizeof nums - len,
                     "%soutput '%s': cos %.8f, max abs err %.3g, %zu non-finite", k ? "; " : "",
                     r->outs[k].name, r->outs[k].cos, r->outs[k].max_abs, r->outs[k].non_finite);
    len += w > 0 ? (size_t)w : 0;
  }
  char budget[64] = "";
  if (x->o->budget_max_abs >= 0)
    snprintf(budget, sizeof budget, ", max abs err <= %.10g", x->o->budget_max_abs);
  tc_cli_error(
      "%s: the %s model misses the accuracy budget (cos >= %.10g%s) even with every node in "
      "float32: %s%s; nothing written",
      x->model_name, type_name(x->o->type), x->o->budget_cos, budget, nums,
      x->o->keep_io_types || x->o->type == TC_DTYPE_I8
          ? ""
          : " (the half-precision graph inputs and outputs lose this: "
            "--keep-io-types keeps them float32)");
}

/* A result for options o; the conversion fills in the rest. */
static tc_precision_result *result_new(const tc_precision_options *o) {
  tc_precision_result *r = calloc(1, sizeof *r);
  if (r)
    *r = (tc_precision_result){.type = o->type,
                               .keep_io = o->keep_io_types,
                               .calib_dir = o->calib_dir,
                               .synthetic = !o->calib_dir,
                               .budget_cos = o->budget_cos,
                               .budget_max_abs = o->budget_max_abs,
                               .chosen = -1};
  return r;
}

/* What x's input sets give a conversion with options o. */
static void result_sets(const prec_ctx *x, tc_precision_result *r, const tc_precision_options *o) {
  r->n_sets = x->n_sets - x->val_from;
  r->validated = r->n_sets > 0;
  r->n_cal = o->int8_static ? x->n_cal : 0;
  r->held_out = o->int8_static && x->val_from > 0;
  r->calib_method = o->calib_method;
  r->n_ranges = o->int8_static ? x->n_ranges : 0;
}

/* The temporary folder with the float32 model m, the input sets (split
 * into calibration and validation sets when split), and the float32
 * outputs on the validation sets. -1 after printing an error. */
static int ctx_open(prec_ctx *x, const tc_model *m, bool split) {
  const tc_precision_options *o = x->o;
  const char *tmp = getenv("TMPDIR");
  snprintf(x->tmpdir, sizeof x->tmpdir, "%s/tacoc-precision-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(x->tmpdir)) {
    x->tmpdir[0] = 0;
    return tc_cli_error("cannot create a temporary folder in %s", tmp && *tmp ? tmp : "/tmp");
  }
  snprintf(x->fp32_path, sizeof x->fp32_path, "%s/fp32.onnx", x->tmpdir);
  if (tc_model_save_file(m, x->fp32_path, NULL, x->d) != TC_STATUS_OK ||
      tc_model_load_file(x->fp32_path, NULL, &x->ref, x->d) != TC_STATUS_OK) {
    tc_cli_report(x->d);
    return -1;
  }
  if (o->calib_dir) {
    if (calib_sets(m, o->calib_dir, x->sets, &x->n_sets))
      return -1;
  } else {
    size_t n = o->calib_random >= 0 ? (size_t)o->calib_random
               : split              ? 2 * TC_PRECISION_DEFAULT_SETS
                                    : TC_PRECISION_DEFAULT_SETS;
    uint64_t state = TC_INPUT_SEED;
    for (size_t k = 0; k < n; k++, x->n_sets++)
      if (random_set(m, o, &state, &x->sets[k]))
        return -1;
  }
  if (split) {
    /* calibrate on the first half, check the budget on the held-out rest
     * (on the one set itself when there is only one) */
    x->n_cal = x->n_sets > 1 ? x->n_sets / 2 : x->n_sets;
    x->val_from = x->n_sets > 1 ? x->n_cal : 0;
    if (x->n_sets == 1)
      fprintf(stderr,
              "tacoc: warning: %s: one input set: int8 ranges are calibrated and checked on the "
              "same inputs (give more sets to hold some out)\n",
              x->model_name);
  }
  return x->n_sets > x->val_from ? reference_outputs(x) : 0;
}

static void ctx_close(prec_ctx *x) {
  tc_model_free(x->ref);
  for (size_t k = 0; k < x->n_sets; k++)
    set_free(&x->sets[k]);
  for (size_t k = 0; x->ref_outs && k < x->n_sets * x->n_ref_outs; k++)
    tc_ndarray_release(&x->ref_outs[k]);
  free(x->ref_outs);
  kept_free(&x->half);
  for (size_t k = 0; k < x->n_ranges; k++)
    free((char *)x->ranges[k].name);
  free(x->ranges);
  if (x->tmpdir[0])
    remove_tmpdir(x->tmpdir);
}

/* Converts a fresh copy of the float32 model with x->o, moving nodes back
 * to float32 until the budget holds (the rounds at the top of the file),
 * then measures the per-layer errors of the result. 0 with *out the model
 * and *rec the pass record; 1 when even every node in float32 misses the
 * budget (printed unless x->quiet); -1 after printing an error. */
static int convert_loop(prec_ctx *x, tc_model **out, tc_pass_record *rec) {
  tc_precision_result *r = x->res;
  tc_model *conv = NULL;
  *out = NULL;
  for (size_t round = 0;; round++) {
    tc_model_free(conv);
    if (!(conv = convert_copy(x, rec)))
      return -1;
    r->rounds = round + 1;
    if (!r->validated)
      break;
    if (validate(x, conv))
      goto fail;
    if (r->passed)
      break;
    if (!x->half.n) {
      if (!x->quiet)
        fail_budget(x);
      tc_model_free(conv);
      return 1;
    }
    int added = diagnose(x, conv, round, false);
    if (added < 0 || (added == 0 && fall_back_all(x)))
      goto fail;
  }
  r->all_f32 = x->half.n == 0;
  /* The per-layer errors of the written model, for the report: measured on a
   * fresh conversion (measuring adds outputs to the model it runs). */
  if (r->validated && !r->all_f32) {
    tc_pass_record tmp;
    tc_model *mc = convert_copy(x, &tmp);
    int bad = !mc || diagnose(x, mc, 0, true) < 0;
    tc_model_free(mc);
    if (bad)
      goto fail;
  }
  *out = conv;
  return 0;
fail:
  tc_model_free(conv);
  return -1;
}

/* Appends the conversion's pass to p, replaces *mp by conv and warns about
 * what the user should know of the result. */
static void finish(prec_ctx *x, tc_model **mp, tc_model *conv, const tc_pass_record *rec,
                   tc_pipeline *p) {
  const tc_precision_result *r = x->res;
  p->passes[p->n] = tc_pass_find(pass_name(x->o));
  p->records[p->n++] = *rec;
  tc_model_free(*mp);
  *mp = conv;
  if (!r->validated)
    fprintf(stderr, "tacoc: warning: %s: the %s model is not validated (--calib-random 0)\n",
            x->model_name, type_name(x->o->type));
  else if (r->all_f32 && r->fallback.n)
    fprintf(stderr,
            "tacoc: warning: %s: no node could stay in %s within the budget: every node is "
            "float32\n",
            x->model_name, type_name(x->o->type));
  if (r->all_f32 && !r->fallback.n)
    fprintf(stderr, "tacoc: warning: %s: no node could be converted to %s (%zu kept in float32)\n",
            x->model_name, type_name(x->o->type), r->kept.n);
}

/* One precision: convert, validate, fall back (see the top of the file). */
static int apply_one(prec_ctx *x, tc_model **mp, tc_pipeline *p) {
  tc_precision_result *r = x->res;
  if (ctx_open(x, *mp, x->o->int8_static))
    return -1;
  if (x->o->int8_static && calibrate(x))
    return -1;
  result_sets(x, r, x->o);
  tc_pass_record rec = {0};
  tc_model *conv = NULL;
  if (convert_loop(x, &conv, &rec))
    return -1;
  finish(x, mp, conv, &rec, p);
  return 0;
}

/* ---- --precision auto ----
 * Candidates: int8 dynamic, int8 static (--int8-mode keeps one of them),
 * float16, bfloat16. For each:
 *  1. convert every node the candidate can take and run the model in
 *     libtacort with per-node profiling, on the first validation set, next
 *     to the float32 model's profile. A region is one converted node with
 *     the nodes the conversion added for it (quantizers, casts; a node read
 *     by several regions is split evenly between them); its time is the
 *     sum of its nodes' median times, against the float32 node's median;
 *  2. convert again with the regions not faster than float32 kept float32,
 *     and validate with budget fallback as above (no region faster: the
 *     candidate stops here, unvalidated);
 *  3. time that model (median of AUTO_REPS runs).
 * The fastest candidate is written when, timed interleaved with the
 * float32 model, its median latency is at least AUTO_MIN_GAIN lower (a
 * gain within the noise is not worth the accuracy); otherwise the model
 * stays float32. A model whose first run after the warm-up takes over
 * AUTO_SLOW times the float32 median is timed on that one run: medians
 * decide close calls; one whose warm-up takes over AUTO_FAR times is judged
 * on the warm-up itself (its first-run costs can only make it look slower). */
#define AUTO_REPS 5
#define AUTO_CHECK_REPS 7
#define AUTO_SLOW 3.0
#define AUTO_FAR 20.0
#define AUTO_MIN_GAIN 0.03

/* Runs m on the first validation set, a warm-up and then AUTO_REPS
 * profiled runs (one when the first took over AUTO_SLOW x ref_ms, none but
 * the warm-up when that took over AUTO_FAR x ref_ms; with ref_ms > 0): ns[id] (when ns is not NULL;
 * room for every node id) gets each node's median kernel time in nanoseconds, *ms the median run in
 * milliseconds. */
static int node_times(prec_ctx *x, const tc_model *m, double ref_ms, double *ns, double *ms) {
  size_t ids = (size_t)m->next_node_id + 1, no = tc_model_num_outputs(m);
  double *t = calloc(ids * AUTO_REPS + 1, sizeof *t), run[AUTO_REPS];
  tc_ndarray *outs = calloc(no + 1, sizeof *outs);
  tc_session *s = NULL;
  int rc = -1, reps = AUTO_REPS;
  if (!t || !outs) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (tc_session_new(m, &s, x->d) != TC_STATUS_OK) {
    tc_cli_error("%s: libtacort cannot run the model to time it: %s", x->model_name,
                 tc_diag_message(x->d));
    goto done;
  }
  for (int k = -1; k < reps; k++) {
    tc_session_set_profiling(s, ns != NULL);
    double t0 = tc_cli_now_ms();
    tc_status st = run_set(s, m, &x->sets[x->val_from], outs, x->d);
    double t1 = tc_cli_now_ms();
    for (size_t i = 0; i < no; i++)
      tc_ndarray_release(&outs[i]);
    if (st != TC_STATUS_OK) {
      tc_cli_error("%s: timing the model: %s", x->model_name, tc_diag_message(x->d));
      goto done;
    }
    if (ns && !s->prof_table) {
      tc_cli_error("out of memory");
      goto done;
    }
    bool far = ref_ms > 0 && t1 - t0 > AUTO_FAR * ref_ms;
    if (k < 0 && !far)
      continue; /* the warm-up pays for first-run work (plans, packed weights) */
    if (k < 0)
      k = 0, reps = 1; /* judged on the warm-up: its first-run costs only make it look slower */
    else if (k == 0 && ref_ms > 0 && t1 - t0 > AUTO_SLOW * ref_ms)
      reps = 1;
    run[k] = t1 - t0;
    for (size_t id = 0; ns && id < ids; id++)
      t[id * AUTO_REPS + (size_t)k] = (double)s->prof_table[2 * id + 1];
  }
  for (size_t id = 0; ns && id < ids; id++)
    ns[id] = tc_cli_median(&t[id * AUTO_REPS], (size_t)reps);
  *ms = tc_cli_median(run, (size_t)reps);
  rc = 0;
done:
  tc_session_free(s);
  free(outs);
  free(t);
  return rc;
}

/* Median latencies of a and b on the first validation set, runs interleaved. */
static int latency_pair(prec_ctx *x, const tc_model *a, const tc_model *b, double *ma, double *mb) {
  const tc_model *m[2] = {a, b};
  tc_session *s[2] = {NULL, NULL};
  double t[2][AUTO_CHECK_REPS];
  int rc = -1;
  size_t na = tc_model_num_outputs(a), nb = tc_model_num_outputs(b);
  tc_ndarray *outs = calloc((na > nb ? na : nb) + 1, sizeof *outs);
  if (!outs) {
    tc_cli_error("out of memory");
    goto done;
  }
  for (int w = 0; w < 2; w++)
    if (tc_session_new(m[w], &s[w], x->d) != TC_STATUS_OK) {
      tc_cli_error("%s: libtacort cannot run the model to time it: %s", x->model_name,
                   tc_diag_message(x->d));
      goto done;
    }
  for (int k = -2; k < AUTO_CHECK_REPS; k++)
    for (int w = 0; w < 2; w++) {
      double t0 = tc_cli_now_ms();
      tc_status st = run_set(s[w], m[w], &x->sets[x->val_from], outs, x->d);
      double t1 = tc_cli_now_ms();
      for (size_t i = 0; i < tc_model_num_outputs(m[w]); i++)
        tc_ndarray_release(&outs[i]);
      if (st != TC_STATUS_OK) {
        tc_cli_error("%s: timing the model: %s", x->model_name, tc_diag_message(x->d));
        goto done;
      }
      if (k >= 0)
        t[w][k] = t1 - t0;
    }
  *ma = tc_cli_median(t[0], AUTO_CHECK_REPS);
  *mb = tc_cli_median(t[1], AUTO_CHECK_REPS);
  rc = 0;
done:
  tc_session_free(s[0]);
  tc_session_free(s[1]);
  free(outs);
  return rc;
}

static long half_index(const prec_ctx *x, const char *key) {
  for (size_t i = 0; key && i < x->half.n; i++)
    if (strcmp(x->half.v[i].key, key) == 0)
      return (long)i;
  return -1;
}

/* Adds the regions node n of the converted model counts towards to idx
 * (*k of cap used): its own when the conversion made it half; for a node
 * the conversion added, those of its readers (dir > 0) or of its inputs'
 * producers (dir < 0), up to depth nodes away; none for a node the float32
 * model has unchanged. */
static void collect_regions(const prec_ctx *x, const tc_node *n, int dir, int depth, long *idx,
                            size_t *k, size_t cap) {
  const char *key = conv_key(x->ref, n);
  long h = half_index(x, key);
  if (h >= 0) {
    for (size_t i = 0; i < *k; i++)
      if (idx[i] == h)
        return;
    if (*k < cap)
      idx[(*k)++] = h;
    return;
  }
  if (!key || tc_graph_lookup_local(x->ref->graph, key) || depth == 0)
    return;
  if (dir > 0)
    for (size_t i = 0; i < n->n_outputs; i++)
      for (size_t u = 0; n->outputs[i] && u < n->outputs[i]->n_uses; u++)
        collect_regions(x, n->outputs[i]->uses[u].node, dir, depth - 1, idx, k, cap);
  else
    for (size_t i = 0; i < n->n_inputs; i++)
      if (n->inputs[i] && n->inputs[i]->producer)
        collect_regions(x, n->inputs[i]->producer, dir, depth - 1, idx, k, cap);
}

/* Step 1 for candidate c: times conv (every node converted) against the
 * float32 node times ref_ns, counts c->faster and puts the regions not
 * faster than float32 in x->res->fallback, kind "slower". */
static int time_regions(prec_ctx *x, auto_cand *c, const tc_model *conv, const double *ref_ns) {
  size_t nr = x->half.n;
  double *ns = calloc((size_t)conv->next_node_id + 2, sizeof *ns);
  double *rt = calloc(nr + 1, sizeof *rt);
  int rc = -1;
  if (!ns || !rt) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (node_times(x, conv, x->res->ref_ms, ns, &c->full_ms))
    goto done;
  for (const tc_node *n = conv->graph->first; n; n = n->next) {
    long idx[64];
    size_t k = 0;
    collect_regions(x, n, 1, 6, idx, &k, 64);
    if (!k)
      collect_regions(x, n, -1, 6, idx, &k, 64);
    for (size_t i = 0; i < k; i++)
      rt[idx[i]] += ns[n->id] / (double)k;
  }
  for (size_t i = 0; i < nr; i++) {
    const kept_node *h = &x->half.v[i];
    const tc_value *v = tc_graph_lookup_local(x->ref->graph, h->key);
    double t32 = v && v->producer ? ref_ns[v->producer->id] : 0;
    if (rt[i] < t32) {
      c->faster++;
      continue;
    }
    kept_node *kn = kept_add(&x->res->fallback, h->key, h->op);
    if (!kn || !(kn->kind = strdup("slower")) ||
        !(kn->detail = dupf("slower in %s than float32 on this CPU: %.4f ms vs %.4f ms (medians)",
                            type_name(c->type), rt[i] / 1e6, t32 / 1e6))) {
      tc_cli_error("out of memory");
      goto done;
    }
  }
  rc = 0;
done:
  free(ns);
  free(rt);
  return rc;
}

static const char *cand_name(const auto_cand *c) {
  return c->type != TC_DTYPE_I8 ? type_name(c->type)
         : c->int8_static       ? "int8 static"
                                : "int8 dynamic";
}

/* Candidate c's options: the user's, with its precision, and int8's
 * default budget for int8 when none is given. */
static tc_precision_options cand_options(const tc_precision_options *user, const auto_cand *c) {
  tc_precision_options o = *user;
  o.type = c->type;
  o.int8_static = c->int8_static;
  if (c->type == TC_DTYPE_I8 && !user->budget_cos_given)
    o.budget_cos = 0.99;
  return o;
}

/* Steps 1-3 for candidate c with options o (x->o) and result x->res: 0
 * with *out its model when usable, else NULL and c->note says why; -1
 * after printing an error. */
static int try_candidate(prec_ctx *x, auto_cand *c, const double *ref_ns, tc_model **out) {
  tc_precision_result *r = x->res;
  tc_model *conv = NULL;
  tc_pass_record rec;
  *out = NULL;
  if (c->int8_static && !x->ranges && calibrate(x))
    return -1;
  result_sets(x, r, x->o);
  if (!(conv = convert_copy(x, &rec)))
    return -1;
  c->convertible = x->half.n;
  int rc = x->half.n ? time_regions(x, c, conv, ref_ns) : 0;
  tc_model_free(conv);
  conv = NULL;
  if (rc)
    return -1;
  if (!c->convertible) {
    snprintf(c->note, sizeof c->note, "no node can be converted");
    return 0;
  }
  if (!c->faster) {
    snprintf(c->note, sizeof c->note, "no region faster than float32");
    return 0;
  }
  int st = convert_loop(x, &conv, &rec);
  if (st < 0)
    return -1;
  c->half_nodes = st ? 0 : x->half.n;
  if (st > 0 || !c->half_nodes) {
    snprintf(c->note, sizeof c->note, "%s",
             st > 0 ? "misses the budget even with every node in float32"
                    : "no region faster than float32 stays within the budget");
    tc_model_free(conv);
    return 0;
  }
  if (node_times(x, conv, 0, NULL, &c->ms)) {
    tc_model_free(conv);
    return -1;
  }
  c->usable = true;
  c->rec = rec;
  *out = conv;
  return 0;
}

/* Tries every candidate and leaves in x->res (x->o: its options, in opt)
 * the result to write: the fastest candidate's, or, with chosen -1, the
 * float32 model's. *best is the model to write, NULL for float32. */
static int apply_auto(prec_ctx *x, const tc_model *m, tc_model **best, tc_pass_record *best_rec,
                      tc_precision_options *opt) {
  static const struct {
    int32_t type;
    bool int8_static;
  } all[] = {
      {TC_DTYPE_I8, false}, {TC_DTYPE_I8, true}, {TC_DTYPE_F16, false}, {TC_DTYPE_BF16, false}};
  const size_t n_all = sizeof all / sizeof *all;
  const tc_precision_options *user = x->o;
  tc_precision_result *top = x->res, *win = NULL;
  top->type = 0;
  *best = NULL;
  if (ctx_open(x, m, true))
    return -1;
  result_sets(x, top, user);
  double *ref_ns = calloc((size_t)x->ref->next_node_id + 2, sizeof *ref_ns);
  top->cands = calloc(n_all, sizeof *top->cands);
  if (!ref_ns || !top->cands) {
    free(ref_ns);
    return tc_cli_error("out of memory");
  }
  int rc = node_times(x, x->ref, 0, ref_ns, &top->ref_ms);
  tc_precision_options o = *user;
  for (size_t i = 0; !rc && i < n_all; i++) {
    if (all[i].type == TC_DTYPE_I8 && user->int8_mode_given &&
        all[i].int8_static != user->int8_static)
      continue;
    auto_cand *c = &top->cands[top->n_cands++];
    c->type = all[i].type;
    c->int8_static = all[i].int8_static;
    tc_precision_options oc = cand_options(user, c);
    tc_precision_result *r = result_new(&oc);
    tc_model *cm = NULL;
    if (!r) {
      rc = tc_cli_error("out of memory");
      break;
    }
    r->ref_ms = top->ref_ms;
    x->o = &oc;
    x->res = r;
    rc = try_candidate(x, c, ref_ns, &cm);
    x->o = user;
    x->res = top;
    if (!rc && cm && (top->chosen < 0 || c->ms < top->cands[top->chosen].ms)) {
      tc_model_free(*best);
      tc_precision_result_free(win);
      *best = cm;
      *best_rec = c->rec;
      win = r;
      o = oc;
      top->chosen = (long)(c - top->cands);
    } else {
      tc_model_free(cm);
      tc_precision_result_free(r);
    }
  }
  free(ref_ns);
  if (!rc && *best) {
    tc_model *fp32 = NULL;
    if (tc_model_load_file(x->fp32_path, NULL, &fp32, x->d) != TC_STATUS_OK)
      rc = tc_cli_report(x->d);
    else
      rc = latency_pair(x, fp32, *best, &top->ref_ms, &top->final_ms);
    tc_model_free(fp32);
    if (!rc && !(top->final_ms < (1 - AUTO_MIN_GAIN) * top->ref_ms)) {
      snprintf(top->auto_note, sizeof top->auto_note,
               "the %s model is not %.0f%% faster than float32 as a whole (%.3f ms vs %.3f ms)",
               cand_name(&top->cands[top->chosen]), 100 * AUTO_MIN_GAIN, top->final_ms,
               top->ref_ms);
      top->chosen = -1;
    }
  } else if (!rc) {
    snprintf(top->auto_note, sizeof top->auto_note,
             "no candidate has a region faster than float32 within the budget");
  }
  if (rc || top->chosen < 0) {
    tc_model_free(*best);
    *best = NULL;
    tc_precision_result_free(win);
    return rc ? -1 : 0;
  }
  /* the winner's result carries the auto fields from here on */
  win->cands = top->cands;
  win->n_cands = top->n_cands;
  win->chosen = top->chosen;
  win->ref_ms = top->ref_ms;
  win->final_ms = top->final_ms;
  top->cands = NULL;
  top->n_cands = 0;
  tc_precision_result_free(top);
  x->res = win;
  *opt = o;
  x->o = opt;
  return 0;
}

int tc_precision_apply(tc_model **mp, const char *model_name, const tc_pass_options *popt,
                       const tc_precision_options *o, tc_pipeline *p, tc_precision_result **out) {
  *out = NULL;
  if (!o->type)
    return 0;
  /* int8 has its own default budget; the copy lives until the end of the call. */
  tc_precision_options eff = *o;
  if (o->type == TC_DTYPE_I8 && !o->budget_cos_given)
    eff.budget_cos = 0.99;
  o = &eff;
  static const char *const conversions[] = {"convert-half", "quantize-dynamic", "quantize-static"};
  for (size_t i = 0; i < p->n; i++)
    for (size_t k = 0; k < 3; k++)
      if (strcmp(p->passes[i]->name, conversions[k]) == 0 &&
          (o->type == TC_PRECISION_AUTO || strcmp(conversions[k], pass_name(o)) == 0)) {
        fprintf(stderr,
                "tacoc: warning: %s: %s ran from --passes, so the precision is neither "
                "chosen nor validated (leave it out of --passes to validate it)\n",
                model_name, conversions[k]);
        return 0;
      }
  if (p->n == TC_PIPELINE_MAX)
    return tc_cli_error("more than %d passes", TC_PIPELINE_MAX);
  prec_ctx *x = calloc(1, sizeof *x);
  tc_precision_result *r = result_new(o);
  tc_diag *d = tc_diag_new();
  if (!x || !r || !d) {
    free(x);
    free(r);
    tc_diag_free(d);
    return tc_cli_error("out of memory");
  }
  *x = (prec_ctx){.o = o, .popt = popt, .model_name = model_name, .res = r, .d = d};
  int rc;
  if (o->type == TC_PRECISION_AUTO) {
    tc_precision_options chosen;
    tc_model *best = NULL;
    tc_pass_record rec = {0};
    x->quiet = true;
    rc = apply_auto(x, *mp, &best, &rec, &chosen);
    if (!rc && best)
      finish(x, mp, best, &rec, p);
  } else {
    rc = apply_one(x, mp, p);
  }
  r = x->res; /* auto: the chosen candidate's */
  ctx_close(x);
  tc_diag_free(d);
  free(x);
  if (rc) {
    tc_precision_result_free(r);
    return TC_EXIT_ERROR;
  }
  *out = r;
  return 0;
}

/* ---- results ---- */
/* --precision auto: the candidates and the choice. */
static void print_auto(const tc_precision_result *r, FILE *f) {
  fprintf(f,
          "\n  precision auto: candidates timed in libtacort on one validation set, float32 "
          "%.3f ms\n  (regions: a converted node with the casts or quantizers added for it, "
          "per-node medians)\n",
          r->ref_ms);
  fprintf(f, "  %-13s %11s %7s %10s %11s %10s  %s\n", "candidate", "convertible", "faster",
          "all ms", "converted", "ms", "");
  for (size_t k = 0; k < r->n_cands; k++) {
    const auto_cand *c = &r->cands[k];
    char full[32] = "-", ms[32] = "-";
    if (c->full_ms > 0)
      snprintf(full, sizeof full, "%.3f", c->full_ms);
    if (c->ms > 0)
      snprintf(ms, sizeof ms, "%.3f", c->ms);
    fprintf(f, "  %-13s %11zu %7zu %10s %11zu %10s  %s\n", cand_name(c), c->convertible, c->faster,
            full, c->half_nodes, ms, (long)k == r->chosen ? "chosen" : c->note);
  }
  if (r->chosen >= 0)
    fprintf(f, "  written: %s, %.3f ms vs float32 %.3f ms (medians of %d interleaved runs)\n",
            cand_name(&r->cands[r->chosen]), r->final_ms, r->ref_ms, AUTO_CHECK_REPS);
  else
    fprintf(f, "  written: float32: %s\n", r->auto_note);
}

void tc_precision_print(const tc_precision_result *r, FILE *f) {
  if (!r)
    return;
  static const char *const methods[] = {"minmax", "percentile", "entropy"};
  if (r->n_cands)
    print_auto(r, f);
  if (r->n_cands && r->chosen < 0)
    return;
  fprintf(f, "\n  precision: %s, graph inputs and outputs %s\n", type_name(r->type),
          r->type == TC_DTYPE_I8 && r->n_cal ? "float32 (static int8 QDQ)"
          : r->type == TC_DTYPE_I8           ? "float32 (dynamic int8 MatMuls)"
          : r->keep_io                       ? "float32 (--keep-io-types)"
                                             : type_name(r->type));
  if (r->n_cal)
    fprintf(f, "  %zu activation ranges calibrated (%s) in libtacort on %zu input set%s%s\n",
            r->n_ranges, methods[r->calib_method], r->n_cal, r->n_cal == 1 ? "" : "s",
            r->held_out ? ", the budget checked on the others"
                        : ", the budget checked on them too");
  if (!r->validated) {
    fprintf(f, "  NOT validated (--calib-random 0)\n");
  } else if (r->synthetic) {
    fprintf(f,
            "  validated in libtacort on %zu random input sets: accuracy is ESTIMATED ON "
            "SYNTHETIC DATA\n  (floats uniform in [-1, 1), integers in [0, 10), integer *mask* "
            "inputs all ones);\n  give --calib DIR for real inputs\n",
            r->n_sets);
  } else {
    fprintf(f, "  validated in libtacort on %zu input sets from %s\n", r->n_sets, r->calib_dir);
  }
  if (r->validated) {
    fprintf(f, "  budget: cos >= %.10g", r->budget_cos);
    if (r->budget_max_abs >= 0)
      fprintf(f, ", max abs err <= %.10g", r->budget_max_abs);
    fprintf(f, ": %s after %zu round%s\n", r->passed ? "met" : "MISSED", r->rounds,
            r->rounds == 1 ? "" : "s");
    fprintf(f, "\n  %-30s %11s %12s %11s\n", "output", "cos", "max abs err", "non-finite");
    for (size_t k = 0; k < r->n_outs; k++)
      fprintf(f, "  %-30s %11.8f %12.3e %11zu\n", r->outs[k].name, r->outs[k].cos,
              r->outs[k].max_abs, r->outs[k].non_finite);
  }
  fprintf(f, "\n  %zu node%s in %s, %zu kept in float32%s\n", r->half_nodes,
          r->half_nodes == 1 ? "" : "s", type_name(r->type), r->kept.n, r->kept.n ? ":" : "");
  for (size_t k = 0; k < r->kept.n; k++) {
    char who[200];
    snprintf(who, sizeof who, "%s '%s'", r->kept.v[k].op, r->kept.v[k].key);
    fprintf(f, "    %-36s %s\n", who, r->kept.v[k].detail);
  }
}

/* "key": v, or null when !have. */
static void json_opt_double(tc_json *j, const char *key, double v, bool have) {
  tc_json_key(j, key);
  if (have)
    tc_json_double(j, v);
  else
    tc_json_null(j);
}

static void json_auto(const tc_precision_result *r, tc_json *j) {
  tc_json_key(j, "auto");
  tc_json_begin_object(j);
  tc_json_key(j, "chosen");
  tc_json_string(j, r->chosen >= 0 ? cand_name(&r->cands[r->chosen]) : "float32");
  tc_json_key(j, "note");
  tc_json_string(j, r->chosen >= 0 ? NULL : r->auto_note);
  tc_json_key(j, "float32_ms");
  tc_json_double(j, r->ref_ms);
  json_opt_double(j, "written_ms", r->final_ms, r->chosen >= 0);
  tc_json_key(j, "candidates");
  tc_json_begin_array(j);
  for (size_t k = 0; k < r->n_cands; k++) {
    const auto_cand *c = &r->cands[k];
    tc_json_begin_object(j);
    tc_json_key(j, "precision");
    tc_json_string(j, cand_name(c));
    tc_json_key(j, "usable");
    tc_json_bool(j, c->usable);
    tc_json_key(j, "note");
    tc_json_string(j, c->note[0] ? c->note : NULL);
    tc_json_key(j, "convertible");
    tc_json_uint(j, c->convertible);
    tc_json_key(j, "faster");
    tc_json_uint(j, c->faster);
    json_opt_double(j, "all_converted_ms", c->full_ms, c->full_ms > 0);
    tc_json_key(j, "converted");
    tc_json_uint(j, c->half_nodes);
    json_opt_double(j, "ms", c->ms, c->ms > 0);
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  tc_json_end_object(j);
}

void tc_precision_json(const tc_precision_result *r, tc_json *j) {
  if (!r)
    return;
  tc_json_key(j, "precision");
  tc_json_begin_object(j);
  tc_json_key(j, "type");
  tc_json_string(j, type_name(r->type));
  if (r->n_cands)
    json_auto(r, j);
  if (r->n_cands && r->chosen < 0) { /* nothing converted, nothing validated */
    tc_json_key(j, "half_nodes");
    tc_json_uint(j, 0);
    tc_json_key(j, "validation");
    tc_json_null(j);
    tc_json_key(j, "kept_fp32");
    tc_json_begin_array(j);
    tc_json_end_array(j);
    tc_json_end_object(j);
    return;
  }
  tc_json_key(j, "keep_io_types");
  tc_json_bool(j, r->keep_io);
  tc_json_key(j, "half_nodes");
  tc_json_uint(j, r->half_nodes);
  if (r->type == TC_DTYPE_I8) {
    static const char *const methods[] = {"minmax", "percentile", "entropy"};
    tc_json_key(j, "int8_mode");
    tc_json_string(j, r->n_cal ? "static" : "dynamic");
    tc_json_key(j, "calibration");
    if (!r->n_cal) {
      tc_json_null(j);
    } else {
      tc_json_begin_object(j);
      tc_json_key(j, "method");
      tc_json_string(j, methods[r->calib_method]);
      tc_json_key(j, "sets");
      tc_json_uint(j, r->n_cal);
      tc_json_key(j, "activations");
      tc_json_uint(j, r->n_ranges);
      tc_json_end_object(j);
    }
  }
  tc_json_key(j, "validation");
  if (!r->validated) {
    tc_json_null(j);
  } else {
    tc_json_begin_object(j);
    tc_json_key(j, "runtime");
    tc_json_string(j, "tacort");
    tc_json_key(j, "source");
    tc_json_string(j, r->calib_dir ? "calib" : "random");
    tc_json_key(j, "calib");
    tc_json_string(j, r->calib_dir);
    tc_json_key(j, "sets");
    tc_json_uint(j, r->n_sets);
    tc_json_key(j, "synthetic");
    tc_json_bool(j, r->synthetic);
    tc_json_key(j, "budget");
    tc_json_begin_object(j);
    tc_json_key(j, "cos");
    tc_json_double(j, r->budget_cos);
    json_opt_double(j, "max_abs", r->budget_max_abs, r->budget_max_abs >= 0);
    tc_json_end_object(j);
    tc_json_key(j, "passed");
    tc_json_bool(j, r->passed);
    tc_json_key(j, "rounds");
    tc_json_uint(j, r->rounds);
    tc_json_key(j, "outputs");
    tc_json_begin_array(j);
    for (size_t k = 0; k < r->n_outs; k++) {
      tc_json_begin_object(j);
      tc_json_key(j, "name");
      tc_json_string(j, r->outs[k].name);
      tc_json_key(j, "cos");
      tc_json_double(j, r->outs[k].cos);
      tc_json_key(j, "max_abs");
      tc_json_double(j, r->outs[k].max_abs);
      tc_json_key(j, "non_finite");
      tc_json_uint(j, r->outs[k].non_finite);
      tc_json_end_object(j);
    }
    tc_json_end_array(j);
    tc_json_end_object(j);
  }
  tc_json_key(j, "kept_fp32");
  tc_json_begin_array(j);
  for (size_t k = 0; k < r->kept.n; k++) {
    const kept_node *n = &r->kept.v[k];
    tc_json_begin_object(j);
    tc_json_key(j, "node");
    tc_json_string(j, n->key);
    tc_json_key(j, "op");
    tc_json_string(j, n->op);
    tc_json_key(j, "reason");
    tc_json_string(j, n->kind);
    tc_json_key(j, "detail");
    tc_json_string(j, n->detail);
    tc_json_key(j, "error");
    if (isnan(n->error)) {
      tc_json_null(j);
    } else {
      tc_json_begin_object(j);
      tc_json_key(j, "relative_l2");
      tc_json_double(j, n->error);
      tc_json_key(j, "non_finite");
      tc_json_uint(j, n->non_finite);
      tc_json_end_object(j);
    }
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  tc_json_end_object(j);
}

void tc_precision_result_free(tc_precision_result *r) {
  if (!r)
    return;
  free(r->cands);
  for (size_t k = 0; k < r->n_outs; k++)
    free(r->outs[k].name);
  free(r->outs);
  kept_free(&r->kept);
  kept_free(&r->fallback);
  for (size_t k = 0; k < r->n_layers; k++) {
    free((char *)r->layers[k].layer);
    free((char *)r->layers[k].op);
  }
  free(r->layers);
  free(r);
}

const tc_precision_layer *tc_precision_layers(const tc_precision_result *r, size_t *n) {
  *n = r ? r->n_layers : 0;
  return r ? r->layers : NULL;
}
