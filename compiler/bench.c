/* `tacoc bench MODEL [MODEL...]`: runs every model on the same inputs and
 * reports latency (p50/p90/p99 with the spread), throughput, peak memory and
 * accuracy against the first model, per batch; gates for CI. docs/cli.md has
 * the reference.
 *
 * How it times: per batch, each model is loaded, prepared and run untimed
 * (--warmup; the first run's outputs are the ones compared for accuracy), one
 * model after the other, with its peak memory measured around that; then the
 * timed runs go round-robin, one run of every model per round, the model
 * that starts a round rotating, so drift (heat, frequency, other load) hits
 * all models alike. Each run is timed alone with CLOCK_MONOTONIC.
 *
 * This file: options, inputs, the libtacort runs and the order of things;
 * bench_ort.c runs ONNX Runtime through tools/ort_runner.py; bench_report.c
 * computes the statistics and writes the tables, JSON, Markdown and gates. */
#include "bench.h"

#include <errno.h>
#include <libgen.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench_priv.h"
#include "cli.h"
#include "inputs.h"
#include "ir.h"

typedef struct shape_spec {
  const char *name;
  size_t rank;
  int64_t dims[TC_MAX_DIMS];
  bool used;
} shape_spec;

typedef struct input_spec {
  const char *name, *file;
} input_spec;

/* What the command line says beyond tc_bench_opts. */
typedef struct bench_args {
  input_spec given[TC_BENCH_MAX_INPUTS];
  size_t n_given;
  const char *inputs_dir;
  shape_spec shapes[TC_BENCH_MAX_INPUTS];
  size_t n_shapes;
  bool iters_set;
  bool unit_dims; /* tc_bench_run: a symbolic or unknown dim without a size is 1 */
} bench_args;

/* ---- option parsing ---- */

/* Matches "--name VALUE" or "--name=VALUE" at argv[*i]; advances *i past it.
 * A missing value is reported and sets *bad. */
static bool opt_value(int argc, char **argv, int *i, const char *name, const char **val,
                      bool *bad) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return false;
  if (argv[*i][n] == '=') {
    *val = argv[*i] + n + 1;
    return true;
  }
  if (argv[*i][n] != '\0')
    return false;
  if (*i + 1 >= argc) {
    tc_cli_usage_error("bench: %s needs a value", name);
    *bad = true;
    return true;
  }
  *val = argv[++*i];
  return true;
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    return false;
  *out = v;
  return true;
}

static bool parse_double(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !isfinite(v))
    return false;
  *out = v;
  return true;
}

/* "1x128" (or "8"): dims of at least 1, at most TC_MAX_DIMS of them. */
static bool parse_dims(const char *s, size_t *rank, int64_t *dims) {
  *rank = 0;
  for (const char *p = s;;) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno || end == p || v < 1 || *rank == TC_MAX_DIMS || *p == '-' || *p == '+')
      return false;
    dims[(*rank)++] = v;
    if (*end == '\0')
      return true;
    if (*end != 'x')
      return false;
    p = end + 1;
  }
}

static int parse_runtimes(const char *s, tc_bench_opts *o) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", s);
  o->n_runtimes = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    tc_bench_runtime rt;
    if (strcmp(t, "tacort") == 0)
      rt = TC_BENCH_TACORT;
    else if (strcmp(t, "ort") == 0)
      rt = TC_BENCH_ORT;
    else
      return tc_cli_usage_error("bench: --runtime takes tacort, ort or both (tacort,ort), got '%s'",
                                s);
    for (size_t i = 0; i < o->n_runtimes; i++)
      if (o->runtimes[i] == rt)
        return tc_cli_usage_error("bench: --runtime names '%s' twice", t);
    o->runtimes[o->n_runtimes++] = rt;
  }
  if (o->n_runtimes == 0)
    return tc_cli_usage_error("bench: --runtime takes tacort, ort or both (tacort,ort)");
  return 0;
}

static int parse_batches(const char *s, tc_bench_opts *o) {
  o->n_batches = 0;
  for (const char *p = s;;) {
    char *end;
    errno = 0;
    long long v = strtoll(p, &end, 10);
    if (errno || end == p || v < 1 || v > 1000000 || *p == '-' || *p == '+' ||
        (*end != ',' && *end != '\0'))
      return tc_cli_usage_error("bench: --batch takes sizes from 1 to 1000000 like 1,8,32, got "
                                "'%s'",
                                s);
    if (o->n_batches == TC_BENCH_MAX_BATCHES)
      return tc_cli_usage_error("bench: --batch takes at most %d sizes", TC_BENCH_MAX_BATCHES);
    o->batches[o->n_batches++] = v;
    if (*end == '\0')
      return 0;
    p = end + 1;
  }
}

/* "cos=0.999,max-abs=1e-3,max-rel=0.01": any of the three. */
static int parse_max_error(const char *s, tc_bench_opts *o) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", s);
  o->has_max_error = true;
  bool any = false;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(t, '=');
    double v;
    if (!eq || !parse_double(eq + 1, &v) || v < 0)
      return tc_cli_usage_error("bench: --max-error takes cos=C,max-abs=A,max-rel=R (any of "
                                "them, non-negative numbers), got '%s'",
                                s);
    *eq = '\0';
    if (strcmp(t, "cos") == 0 && v > 1)
      return tc_cli_usage_error("bench: --max-error: cos is a cosine similarity, at most 1, got "
                                "'%s'",
                                eq + 1);
    if (strcmp(t, "cos") == 0)
      o->min_cos = v;
    else if (strcmp(t, "max-abs") == 0)
      o->max_abs = v;
    else if (strcmp(t, "max-rel") == 0)
      o->max_rel = v;
    else
      return tc_cli_usage_error("bench: --max-error: unknown limit '%s' (cos, max-abs, max-rel)",
                                t);
    any = true;
  }
  if (!any)
    return tc_cli_usage_error("bench: --max-error takes cos=C,max-abs=A,max-rel=R");
  return 0;
}

static int parse_args(int argc, char **argv, tc_bench_opts *o, bench_args *a) {
  o->runtimes[0] = TC_BENCH_TACORT;
  o->n_runtimes = 1;
  o->warmup = 3;
  o->iters = 20;
  o->min_cos = o->max_abs = o->max_rel = NAN;
  for (int i = 0; i < argc; i++) {
    const char *v = NULL;
    bool bad = false;
    long n;
    if (opt_value(argc, argv, &i, "--input", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      char *spec = (char *)v;
      if (a->n_given == TC_BENCH_MAX_INPUTS ||
          !tc_input_split_spec(spec, &a->given[a->n_given].name, &a->given[a->n_given].file))
        return tc_cli_usage_error("bench: --input needs NAME=FILE, got '%s'", v);
      for (size_t k = 0; k < a->n_given; k++)
        if (strcmp(a->given[k].name, a->given[a->n_given].name) == 0)
          return tc_cli_usage_error("bench: --input '%s' is given twice", a->given[k].name);
      a->n_given++;
    } else if (opt_value(argc, argv, &i, "--inputs", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      a->inputs_dir = v;
    } else if (opt_value(argc, argv, &i, "--shape", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      shape_spec *sp = &a->shapes[a->n_shapes];
      const char *eq = strchr(v, '=');
      if (a->n_shapes == TC_BENCH_MAX_INPUTS || !eq || eq == v ||
          !parse_dims(eq + 1, &sp->rank, sp->dims))
        return tc_cli_usage_error("bench: --shape needs NAME=DIMS with DIMS like 1x128 (sizes of "
                                  "at least 1), got '%s'",
                                  v);
      ((char *)v)[eq - v] = '\0';
      sp->name = v;
      for (size_t k = 0; k < a->n_shapes; k++)
        if (strcmp(a->shapes[k].name, sp->name) == 0)
          return tc_cli_usage_error("bench: --shape '%s' is given twice", sp->name);
      a->n_shapes++;
    } else if (opt_value(argc, argv, &i, "--runtime", &v, &bad)) {
      if (bad || parse_runtimes(v, o))
        return TC_EXIT_ERROR;
    } else if (opt_value(argc, argv, &i, "--threads", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      if (!parse_long(v, 1, 1024, &n))
        return tc_cli_usage_error("bench: --threads needs a count from 1 to 1024, got '%s'", v);
      o->threads = (int)n;
    } else if (opt_value(argc, argv, &i, "--batch", &v, &bad)) {
      if (bad || parse_batches(v, o))
        return TC_EXIT_ERROR;
    } else if (opt_value(argc, argv, &i, "--warmup", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      if (!parse_long(v, 0, 1000000, &o->warmup))
        return tc_cli_usage_error("bench: --warmup needs a count from 0 to 1000000, got '%s'", v);
    } else if (opt_value(argc, argv, &i, "--iters", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      if (!parse_long(v, 1, 10000000, &o->iters))
        return tc_cli_usage_error("bench: --iters needs a count from 1 to 10000000, got '%s'", v);
      a->iters_set = true;
    } else if (opt_value(argc, argv, &i, "--time", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      if (!parse_double(v, &o->time_s) || o->time_s <= 0 || o->time_s > 86400)
        return tc_cli_usage_error("bench: --time needs seconds above 0 (at most 86400), got '%s'",
                                  v);
    } else if (opt_value(argc, argv, &i, "--json", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      o->json = v;
    } else if (opt_value(argc, argv, &i, "--markdown", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      o->markdown = v;
    } else if (opt_value(argc, argv, &i, "--fail-if-slower", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      if (!parse_double(v, &o->fail_if_slower) || o->fail_if_slower <= 0)
        return tc_cli_usage_error("bench: --fail-if-slower needs a ratio above 0 like 1.1, got "
                                  "'%s'",
                                  v);
    } else if (opt_value(argc, argv, &i, "--max-error", &v, &bad)) {
      if (bad || parse_max_error(v, o))
        return TC_EXIT_ERROR;
    } else if (!strcmp(argv[i], "--allow-native-code")) {
      o->allow_native_code = true;
    } else if (opt_value(argc, argv, &i, "--target", &v, &bad)) {
      if (bad)
        return TC_EXIT_ERROR;
      if (strcmp(v, "cpu") && strcmp(v, "cuda"))
        return tc_cli_usage_error("bench: --target takes cpu or cuda, got '%s'", v);
      o->target = !strcmp(v, "cuda") ? TC_TARGET_CUDA : TC_TARGET_CPU;
    } else if (opt_value(argc, argv, &i, "--device", &v, &bad)) {
      char *end;
      long dv = bad ? -1 : strtol(v, &end, 10);
      if (bad || *end || end == v || dv < 0 || dv > 1024)
        return bad ? TC_EXIT_ERROR
                   : tc_cli_usage_error("bench: --device needs a GPU number from 0, got '%s'", v);
      o->device = (int)dv;
    } else if (argv[i][0] == '-' && argv[i][1]) {
      return tc_cli_usage_error("bench: unknown option '%s'", argv[i]);
    } else {
      if (o->n_models == TC_BENCH_MAX_MODELS)
        return tc_cli_usage_error("bench: at most %d models", TC_BENCH_MAX_MODELS);
      o->models[o->n_models++] = argv[i];
    }
  }
  if (o->n_models == 0)
    return tc_cli_usage_error("bench: no model given");
  if (a->iters_set && o->time_s > 0)
    return tc_cli_usage_error("bench: give either --iters or --time, not both");
  if (a->inputs_dir && a->n_given)
    return tc_cli_usage_error("bench: give either --input or --inputs, not both");
  const char *outs[2] = {o->json, o->markdown};
  for (int k = 0; k < 2; k++) {
    char dir[4096];
    if (!outs[k])
      continue;
    snprintf(dir, sizeof dir, "%s", outs[k]);
    if (access(dirname(dir), W_OK) != 0)
      return tc_cli_error("%s: cannot write: %s", outs[k], strerror(errno));
  }
  if (a->n_shapes && (a->inputs_dir || a->n_given))
    return tc_cli_usage_error("bench: --shape shapes generated inputs; inputs read from files "
                              "have their own shape");
  return 0;
}

/* ---- inputs ---- */

static bool dim_fixed(const tc_dim *d) { return d->kind == TC_DIM_VALUE && d->value >= 0; }

/* "[batch, 64, ?]" */
static void format_decl(const tc_type *t, char *buf, size_t cap) {
  if (t->kind != TC_TYPE_TENSOR || !t->has_shape) {
    snprintf(buf, cap, "(shape not declared)");
    return;
  }
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (size_t i = 0; i < t->rank && len < cap; i++) {
    const tc_dim *d = &t->dims[i];
    const char *sep = i ? ", " : "";
    if (dim_fixed(d))
      len += (size_t)snprintf(buf + len, cap - len, "%s%lld", sep, (long long)d->value);
    else if (d->kind == TC_DIM_PARAM && d->param)
      len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, d->param);
    else
      len += (size_t)snprintf(buf + len, cap - len, "%s?", sep);
  }
  if (len < cap)
    snprintf(buf + len, cap - len, "]");
}

static const tc_value *model_input(const tc_model *m, const char *name) {
  for (size_t i = 0; i < m->graph->n_inputs; i++)
    if (strcmp(m->graph->inputs[i].value->name, name) == 0)
      return m->graph->inputs[i].value;
  return NULL;
}

static shape_spec *find_shape(bench_args *a, const char *name) {
  for (size_t i = 0; name && i < a->n_shapes; i++)
    if (strcmp(a->shapes[i].name, name) == 0)
      return &a->shapes[i];
  return NULL;
}

/* Reads --input files / the --inputs folder into b->inputs. */
static int read_given_inputs(tc_bench *b, bench_args *a, const tc_model *m0) {
  const char *model = b->o.models[0];
  char why[600];
  if (a->inputs_dir) {
    char *names[TC_BENCH_MAX_INPUTS] = {0};
    tc_ndarray arrays[TC_BENCH_MAX_INPUTS];
    size_t n = 0;
    int rc = tc_input_load_dir(a->inputs_dir, m0, TC_BENCH_MAX_INPUTS, names, arrays, &n, why,
                               sizeof why);
    for (size_t i = 0; i < n; i++) {
      b->inputs[i].name = names[i];
      b->inputs[i].data = arrays[i];
      b->inputs[i].source = a->inputs_dir;
    }
    b->n_inputs = n;
    return rc ? tc_cli_error("--inputs %s", why) : 0;
  }
  for (size_t i = 0; i < a->n_given; i++) {
    const tc_value *v = model_input(m0, a->given[i].name);
    if (!v)
      return tc_cli_error("%s: --input %s: the model has no input named '%s'", model,
                          a->given[i].name, a->given[i].name);
    tc_bench_input *in = &b->inputs[b->n_inputs++];
    in->source = a->given[i].file;
    if (!(in->name = strdup(a->given[i].name)))
      return tc_cli_error("out of memory");
    if (tc_input_load(a->given[i].file, &in->data, why, sizeof why))
      return tc_cli_error("%s: %s", a->given[i].file, why);
  }
  for (size_t i = 0; i < m0->graph->n_inputs; i++) {
    const tc_value *v = m0->graph->inputs[i].value;
    if (v->init)
      continue;
    bool given = false;
    for (size_t k = 0; k < b->n_inputs; k++)
      given |= strcmp(b->inputs[k].name, v->name) == 0;
    if (!given)
      return tc_cli_error("%s: input '%s' is not given (give every input with --input NAME=FILE, "
                          "or none to generate them)",
                          model, v->name);
  }
  return 0;
}

/* Checks a file's array against the first model's declaration. */
static int check_given(const tc_bench *b, const tc_bench_input *in, const tc_value *v) {
  const tc_type *t = &v->type;
  const char *model = b->o.models[0];
  if (t->kind != TC_TYPE_TENSOR)
    return 0;
  if (tc_dtype_known(t->elem) && t->elem != in->data.dtype)
    return tc_cli_error("%s: input '%s' is %s, %s holds %s", model, in->name,
                        tc_dtype_name(t->elem), in->source, tc_dtype_name(in->data.dtype));
  if (t->has_shape && t->rank != in->data.rank)
    return tc_cli_error("%s: input '%s' has rank %zu, %s holds rank %zu", model, in->name, t->rank,
                        in->source, in->data.rank);
  for (size_t d = 0; t->has_shape && d < t->rank; d++)
    if (dim_fixed(&t->dims[d]) && t->dims[d].value != in->data.dims[d] &&
        !(d == 0 && in->batch && b->o.n_batches))
      return tc_cli_error("%s: input '%s' dim %zu is %lld, %s holds %lld", model, in->name, d,
                          (long long)t->dims[d].value, in->source, (long long)in->data.dims[d]);
  return 0;
}

/* The batch inputs: those whose dim 0 is symbolic in the first model, or, when
 * none is, every input when all have the same fixed dim 0. */
static void find_batch_inputs(tc_bench *b, const tc_model *m0) {
  bool any = false;
  for (size_t i = 0; i < b->n_inputs; i++) {
    tc_bench_input *in = &b->inputs[i];
    const tc_type *t = &model_input(m0, in->name)->type;
    bool declared = t->kind == TC_TYPE_TENSOR && t->has_shape;
    size_t rank = declared ? t->rank : in->data.rank;
    in->batch = rank >= 1 && (!declared || !dim_fixed(&t->dims[0]));
    any |= in->batch;
  }
  if (any || b->n_inputs == 0)
    return;
  int64_t first = -1;
  for (size_t i = 0; i < b->n_inputs; i++) {
    const tc_type *t = &model_input(m0, b->inputs[i].name)->type;
    if (t->rank < 1 || (first >= 0 && t->dims[0].value != first))
      return;
    first = t->dims[0].value;
  }
  for (size_t i = 0; i < b->n_inputs; i++)
    b->inputs[i].batch = true;
}

/* Resolves the shape of a generated input from its declaration and --shape. */
static int resolve_generated(tc_bench *b, bench_args *a, tc_bench_input *in, const tc_value *v) {
  const tc_type *t = &v->type;
  const char *model = b->o.models[0];
  if (t->kind != TC_TYPE_TENSOR || !t->has_shape || !tc_dtype_known(t->elem))
    return tc_cli_error("%s: input '%s': its type does not give dtype and rank, so it cannot be "
                        "generated; give it with --input %s=FILE",
                        model, v->name, v->name);
  if (t->rank > TC_MAX_DIMS)
    return tc_cli_error("%s: input '%s': rank %zu is above %d", model, v->name, t->rank,
                        TC_MAX_DIMS);
  in->dtype = t->elem;
  in->rank = t->rank;
  shape_spec *whole = find_shape(a, v->name);
  if (whole) {
    whole->used = true;
    if (whole->rank != t->rank)
      return tc_cli_error("--shape %s: input '%s' has rank %zu, the shape given has %zu", v->name,
                          v->name, t->rank, whole->rank);
  }
  for (size_t d = 0; d < t->rank; d++) {
    const tc_dim *dim = &t->dims[d];
    shape_spec *named = dim->kind == TC_DIM_PARAM ? find_shape(a, dim->param) : NULL;
    if (whole && dim_fixed(dim) && whole->dims[d] != dim->value &&
        !(d == 0 && in->batch && b->o.n_batches))
      return tc_cli_error("--shape %s: dim %zu of input '%s' is fixed at %lld, not %lld", v->name,
                          d, v->name, (long long)dim->value, (long long)whole->dims[d]);
    if (whole) {
      in->dims[d] = whole->dims[d];
    } else if (dim_fixed(dim)) {
      in->dims[d] = dim->value;
    } else if (named && named->rank == 1) {
      named->used = true;
      in->dims[d] = named->dims[0];
    } else if (d == 0 && in->batch && b->o.n_batches) {
      in->dims[d] = b->o.batches[0];
    } else if (a->unit_dims) {
      in->dims[d] = 1;
    } else if (dim->kind == TC_DIM_PARAM && dim->param) {
      return tc_cli_error("%s: input '%s': dim %zu ('%s') is symbolic; give its size with --shape "
                          "%s=N or the whole shape with --shape %s=DIMS%s",
                          model, v->name, d, dim->param, dim->param, v->name,
                          d == 0 && in->batch ? " (or --batch N)" : "");
    } else {
      return tc_cli_error("%s: input '%s': dim %zu has no size or name; give the whole shape "
                          "with --shape %s=DIMS%s",
                          model, v->name, d, v->name, d == 0 && in->batch ? " (or --batch N)" : "");
    }
  }
  return 0;
}

/* True when --shape NAME names an input that is fed, or a symbolic dim of one. */
static bool shape_name_known(const tc_bench *b, const char *name, const tc_model *m0) {
  for (size_t i = 0; i < b->n_inputs; i++) {
    const tc_type *t = &model_input(m0, b->inputs[i].name)->type;
    if (strcmp(b->inputs[i].name, name) == 0)
      return true;
    for (size_t d = 0; t->kind == TC_TYPE_TENSOR && t->has_shape && d < t->rank; d++)
      if (t->dims[d].kind == TC_DIM_PARAM && t->dims[d].param &&
          strcmp(t->dims[d].param, name) == 0)
        return true;
  }
  return false;
}

/* Fills b->inputs from the files given or from the first model's declarations,
 * then checks that every model takes exactly these inputs. */
static int setup_inputs(tc_bench *b, bench_args *a, tc_model **models) {
  const tc_model *m0 = models[0];
  bool generate = !a->inputs_dir && a->n_given == 0;
  if (!generate) {
    if (read_given_inputs(b, a, m0))
      return TC_EXIT_ERROR;
  } else {
    for (size_t i = 0; i < m0->graph->n_inputs; i++) {
      const tc_value *v = m0->graph->inputs[i].value;
      if (v->init)
        continue;
      if (b->n_inputs == TC_BENCH_MAX_INPUTS)
        return tc_cli_error("%s: more than %d inputs", b->o.models[0], TC_BENCH_MAX_INPUTS);
      if (!(b->inputs[b->n_inputs++].name = strdup(v->name)))
        return tc_cli_error("out of memory");
    }
  }
  for (size_t i = 0; i < a->n_shapes; i++)
    if (!shape_name_known(b, a->shapes[i].name, m0))
      return tc_cli_error("--shape %s: %s has no input or symbolic dim named '%s'",
                          a->shapes[i].name, b->o.models[0], a->shapes[i].name);
    else if (!model_input(m0, a->shapes[i].name) && a->shapes[i].rank != 1)
      return tc_cli_error("--shape %s: '%s' is a symbolic dim, it takes one size (--shape %s=N)",
                          a->shapes[i].name, a->shapes[i].name, a->shapes[i].name);
  find_batch_inputs(b, m0);
  for (size_t i = 0; i < b->n_inputs; i++) {
    tc_bench_input *in = &b->inputs[i];
    const tc_value *v = model_input(m0, in->name);
    format_decl(&v->type, in->decl, sizeof in->decl);
    if (!generate) {
      if (check_given(b, in, v))
        return TC_EXIT_ERROR;
      in->dtype = in->data.dtype;
      in->rank = in->data.rank;
      memcpy(in->dims, in->data.dims, sizeof in->dims);
      if (in->batch && in->rank >= 1 && in->dims[0] == 0 && b->o.n_batches)
        return tc_cli_error("%s: input '%s' has no rows (dim 0 is 0) to make a batch from",
                            in->source, in->name);
    } else if (resolve_generated(b, a, in, v)) {
      return TC_EXIT_ERROR;
    }
  }
  for (size_t i = 0; i < a->n_shapes; i++)
    if (!a->shapes[i].used)
      return tc_cli_error("--shape %s: no dim of %s's inputs takes it (the input's whole shape "
                          "is given too)",
                          a->shapes[i].name, b->o.models[0]);
  if (b->o.n_batches && !b->n_inputs)
    return tc_cli_error("%s: --batch: the model has no inputs", b->o.models[0]);
  bool any_batch = false;
  for (size_t i = 0; i < b->n_inputs; i++)
    any_batch |= b->inputs[i].batch;
  if (b->o.n_batches && !any_batch)
    return tc_cli_error("%s: --batch: no input has a batch dim (dim 0 symbolic, or the same fixed "
                        "size in every input)",
                        b->o.models[0]);
  for (size_t k = 1; k < b->o.n_models; k++) {
    const tc_model *m = models[k];
    const char *name0 = b->o.models[0], *name = b->o.models[k];
    for (size_t i = 0; i < m->graph->n_inputs; i++) {
      const tc_value *v = m->graph->inputs[i].value;
      bool fed = false;
      for (size_t j = 0; j < b->n_inputs; j++)
        fed |= strcmp(b->inputs[j].name, v->name) == 0;
      if (!v->init && !fed)
        return tc_cli_error("%s: input '%s' is not an input of %s (every model gets the same "
                            "inputs)",
                            name, v->name, name0);
    }
    for (size_t j = 0; j < b->n_inputs; j++) {
      const tc_bench_input *in = &b->inputs[j];
      const tc_value *v = model_input(m, in->name);
      if (!v)
        return tc_cli_error("%s: the model has no input '%s' (%s has; every model gets the same "
                            "inputs)",
                            name, in->name, name0);
      const tc_type *t = &v->type;
      if (t->kind == TC_TYPE_TENSOR && tc_dtype_known(t->elem) && t->elem != in->dtype)
        return tc_cli_error("%s: input '%s' is %s, in %s it is %s", name, in->name,
                            tc_dtype_name(t->elem), name0, tc_dtype_name(in->dtype));
      if (t->kind == TC_TYPE_TENSOR && t->has_shape && t->rank != in->rank)
        return tc_cli_error("%s: input '%s' has rank %zu, in %s it has rank %zu", name, in->name,
                            t->rank, name0, in->rank);
    }
  }
  return 0;
}

/* The inputs at batch: generated (the same seed for every batch) or the
 * files' arrays, repeated or cut along dim 0 for batch inputs. owned[i] says
 * whether arrays[i] must be released. */
static int make_batch_inputs(const tc_bench *b, int64_t batch, tc_ndarray *arrays, bool *owned,
                             tc_bench_batch *bb) {
  uint64_t state = TC_INPUT_SEED;
  char why[256];
  for (size_t i = 0; i < b->n_inputs; i++) {
    const tc_bench_input *in = &b->inputs[i];
    int64_t dims[TC_MAX_DIMS];
    memcpy(dims, in->dims, sizeof dims);
    if (in->batch && b->o.n_batches)
      dims[0] = batch;
    memcpy(bb->shapes[i], dims, sizeof dims);
    owned[i] = true;
    if (!in->source) {
      if (tc_input_random_fill(&arrays[i], in->name, in->dtype, in->rank, dims, &state, why,
                               sizeof why))
        return tc_cli_error("input '%s': %s", in->name, why);
      continue;
    }
    if (in->rank == 0 || dims[0] == in->data.dims[0]) {
      arrays[i] = in->data;
      owned[i] = false;
      continue;
    }
    size_t row = in->data.size / (size_t)in->data.dims[0];
    arrays[i] = in->data;
    arrays[i].dims[0] = batch;
    arrays[i].size = row * (size_t)batch;
    if (!(arrays[i].data = malloc(arrays[i].size ? arrays[i].size : 1)))
      return tc_cli_error("out of memory");
    for (int64_t r = 0; r < batch; r++)
      memcpy((char *)arrays[i].data + (size_t)r * row,
             (const char *)in->data.data + (size_t)(r % in->data.dims[0]) * row, row);
  }
  return 0;
}

/* ---- peak memory ---- */

/* A /proc/self/status field in bytes, or -1. */
static int64_t status_bytes(const char *key) {
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return -1;
  char line[256];
  size_t n = strlen(key);
  int64_t v = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      v = strtoll(line + n + 1, NULL, 10) * 1024;
      break;
    }
  fclose(f);
  return v;
}

static int64_t maxrss_bytes(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? (int64_t)ru.ru_maxrss * 1024 : -1;
}

typedef struct mem_probe {
  int64_t base;          /* resident bytes before */
  int64_t maxrss_before; /* when the peak could not be reset */
  bool hwm;              /* VmHWM was reset to the current RSS */
} mem_probe;

/* Starts measuring: gives freed heap memory back so the baseline is what is
 * really held, then resets the process's peak RSS (VmHWM) to the current RSS
 * through /proc/self/clear_refs (Linux 4.0+). */
static void mem_begin(mem_probe *p) {
  malloc_trim(0);
  p->base = status_bytes("VmRSS");
  FILE *f = fopen("/proc/self/clear_refs", "w");
  p->hwm = f && fputs("5", f) >= 0;
  if (f && fclose(f) != 0)
    p->hwm = false;
  p->maxrss_before = maxrss_bytes();
}

/* Growth of the peak RSS since mem_begin, -1 when unknown. Without the reset
 * only growth above the process's earlier peak shows (getrusage ru_maxrss). */
static int64_t mem_end(const mem_probe *p, const char **method) {
  if (p->base < 0)
    return -1;
  if (p->hwm) {
    int64_t peak = status_bytes("VmHWM");
    *method = "vmhwm";
    return peak < 0 ? -1 : peak > p->base ? peak - p->base : 0;
  }
  int64_t after = maxrss_bytes();
  if (after < 0)
    return -1;
  *method = "maxrss";
  int64_t floor = p->maxrss_before > p->base ? p->maxrss_before : p->base;
  return after > floor ? after - floor : 0;
}

/* ---- progress on stderr ---- */

typedef struct progress {
  bool on;
  double last_ms;
  char label[96];
} progress;

static void progress_show(progress *p, double done, double total, bool force) {
  if (!p->on)
    return;
  double now = tc_cli_now_ms();
  if (!force && now - p->last_ms < 100)
    return;
  p->last_ms = now;
  int width = 30, filled = total > 0 ? (int)(width * (done < total ? done : total) / total) : 0;
  char bar[64];
  for (int i = 0; i < width; i++)
    bar[i] = i < filled ? '#' : '.';
  bar[width] = '\0';
  fprintf(stderr, "\r%s [%s] %3d%%", p->label, bar, total > 0 ? (int)(100 * done / total) : 0);
  fflush(stderr);
}

static void progress_clear(progress *p) {
  if (p->on) {
    fputs("\r\033[K", stderr);
    fflush(stderr);
  }
}

/* ---- libtacort ---- */

int tc_bench_row_add(tc_bench_row *row, double ms) {
  if (row->n_lat == row->cap_lat) {
    size_t cap = row->cap_lat ? row->cap_lat * 2 : 64;
    double *lat = realloc(row->lat, cap * sizeof *lat);
    if (!lat)
      return -1;
    row->lat = lat;
    row->cap_lat = cap;
  }
  row->lat[row->n_lat++] = ms;
  return 0;
}

const char *tc_bench_runtime_name(tc_bench_runtime rt) {
  return rt == TC_BENCH_ORT ? "ort" : "tacort";
}

/* The declared fixed dim 0 of a batch input becomes unknown when the batch
 * differs, so the session accepts the rewritten batch. */
static void free_batch_dim(const tc_bench *b, tc_model *m, int64_t batch) {
  for (size_t i = 0; b->o.n_batches && i < b->n_inputs; i++) {
    if (!b->inputs[i].batch)
      continue;
    tc_value *v = (tc_value *)model_input(m, b->inputs[i].name);
    if (v && v->type.kind == TC_TYPE_TENSOR && v->type.has_shape && v->type.rank >= 1 &&
        dim_fixed(&v->type.dims[0]) && v->type.dims[0].value != batch)
      v->type.dims[0] = (tc_dim){.kind = TC_DIM_UNKNOWN};
  }
}

/* One untimed, unmeasured load and run of model k, so that process-wide
 * one-time costs (kernel code generated for these shapes, library
 * initialization, the page cache) are not charged to whichever model is
 * measured first. */
static int tacort_prime(const tc_bench *b, size_t k, int64_t batch, const char *const *names,
                        const tc_ndarray *arrays, tc_diag *d) {
  const char *path = b->o.models[k];
  tc_model *m = NULL;
  tc_session *s = NULL;
  tc_ndarray *outs = NULL;
  int rc = TC_EXIT_ERROR;
  tc_diag_clear(d);
  if (tc_model_load_file(path, NULL, &m, d)) {
    tc_cli_report(d);
    goto done;
  }
  free_batch_dim(b, m, batch);
  tc_session_options so = {
      .allow_native_code = b->o.allow_native_code, .target = b->o.target, .device = b->o.device};
  if (tc_session_new_ex(m, &so, &s, d)) {
    tc_cli_report(d);
    goto done;
  }
  if (!(outs = calloc(tc_model_num_outputs(m) + 1, sizeof *outs))) {
    tc_cli_error("out of memory");
    goto done;
  }
  tc_diag_clear(d);
  if (tc_session_run(s, b->n_inputs, names, arrays, outs, d)) {
    tc_cli_error("%s: %s", path, tc_diag_message(d));
    goto done;
  }
  for (size_t i = 0; i < tc_model_num_outputs(m); i++)
    tc_ndarray_release(&outs[i]);
  rc = 0;
done:
  free(outs);
  tc_session_free(s);
  tc_model_free(m);
  return rc;
}

typedef struct tacort_model {
  tc_model *m;
  tc_session *s;
  tc_ndarray *outs; /* scratch outputs of timed runs */
  size_t n_out;
} tacort_model;

/* Loads, prepares and warms model k up at this batch, keeping the first run's
 * outputs in row; row->peak_bytes gets the peak RSS growth over all of it. */
static int tacort_prepare(tc_bench *b, size_t k, tacort_model *tm, tc_bench_row *row, int64_t batch,
                          const char *const *names, const tc_ndarray *arrays, tc_diag *d) {
  const char *path = b->o.models[k];
  mem_probe probe;
  mem_begin(&probe);
  tc_diag_clear(d);
  if (tc_model_load_file(path, NULL, &tm->m, d))
    return tc_cli_report(d);
  free_batch_dim(b, tm->m, batch);
  tc_session_options so = {
      .allow_native_code = b->o.allow_native_code, .target = b->o.target, .device = b->o.device};
  if (tc_session_new_ex(tm->m, &so, &tm->s, d))
    return tc_cli_report(d);
  if (b->o.target == TC_TARGET_CUDA)
    fprintf(stderr, "tacoc: %s: libtacort on %s, %zu nodes placed on the GPU\n", path,
            tc_session_device(tm->s), tc_session_gpu_nodes(tm->s));
  if (tc_session_native_note(tm->s)[0])
    fprintf(stderr, "tacoc: warning: %s: %s; running libtacort's own kernels\n", path,
            tc_session_native_note(tm->s));
  tm->n_out = tc_model_num_outputs(tm->m);
  row->n_out = tm->n_out;
  row->outs = calloc(tm->n_out + 1, sizeof *row->outs);
  row->out_names = calloc(tm->n_out + 1, sizeof *row->out_names);
  tm->outs = calloc(tm->n_out + 1, sizeof *tm->outs);
  if (!row->outs || !row->out_names || !tm->outs)
    return tc_cli_error("out of memory");
  for (size_t i = 0; i < tm->n_out; i++)
    if (!(row->out_names[i] = strdup(tc_model_output_name(tm->m, i))))
      return tc_cli_error("out of memory");
  tc_diag_clear(d);
  if (tc_session_run(tm->s, b->n_inputs, names, arrays, row->outs, d))
    return tc_cli_error("%s: %s", path, tc_diag_message(d));
  for (long w = 1; w < b->o.warmup; w++) {
    if (tc_session_run(tm->s, b->n_inputs, names, arrays, tm->outs, d))
      return tc_cli_error("%s: %s", path, tc_diag_message(d));
    for (size_t i = 0; i < tm->n_out; i++)
      tc_ndarray_release(&tm->outs[i]);
  }
  row->peak_bytes = mem_end(&probe, &b->memory_method);
  return 0;
}

static int tacort_timed_run(const tc_bench *b, size_t k, tacort_model *tm, tc_bench_row *row,
                            const char *const *names, const tc_ndarray *arrays, tc_diag *d) {
  double t0 = tc_cli_now_ms();
  tc_status st = tc_session_run(tm->s, b->n_inputs, names, arrays, tm->outs, d);
  double ms = tc_cli_now_ms() - t0;
  if (st)
    return tc_cli_error("%s: %s", b->o.models[k], tc_diag_message(d));
  for (size_t i = 0; i < tm->n_out; i++)
    tc_ndarray_release(&tm->outs[i]);
  return tc_bench_row_add(row, ms) ? tc_cli_error("out of memory") : 0;
}

/* Runs every model at this batch in libtacort: prepared one after the other,
 * then timed round-robin. */
static int run_tacort(tc_bench *b, const tc_bench_batch *bb, tc_bench_row *rows,
                      const char *const *names, const tc_ndarray *arrays, progress *pg) {
  size_t n = b->o.n_models;
  tacort_model tms[TC_BENCH_MAX_MODELS] = {0};
  tc_diag *d = tc_diag_new();
  int rc = TC_EXIT_ERROR;
  if (!d) {
    tc_cli_error("out of memory");
    goto done;
  }
  snprintf(pg->label, sizeof pg->label, "batch %lld, tacort", (long long)bb->batch);
  progress_show(pg, 0, 1, true);
  for (size_t k = 0; k < n; k++)
    if (tacort_prime(b, k, bb->batch, names, arrays, d))
      goto done;
  for (size_t k = 0; k < n; k++) {
    if (tacort_prepare(b, k, &tms[k], &rows[k], bb->batch, names, arrays, d))
      goto done;
  }
  double total = b->o.time_s > 0 ? b->o.time_s * 1e3 : (double)b->o.iters;
  double start = tc_cli_now_ms();
  for (long r = 0;; r++) {
    double done_ = b->o.time_s > 0 ? tc_cli_now_ms() - start : (double)r;
    if (done_ >= total)
      break;
    progress_show(pg, done_, total, false);
    for (size_t j = 0; j < n; j++) {
      size_t k = ((size_t)r + j) % n;
      if (tacort_timed_run(b, k, &tms[k], &rows[k], names, arrays, d))
        goto done;
    }
  }
  rc = 0;
done:
  for (size_t k = 0; k < n; k++) {
    for (size_t i = 0; tms[k].outs && i < tms[k].n_out; i++)
      tc_ndarray_release(&tms[k].outs[i]);
    free(tms[k].outs);
    tc_session_free(tms[k].s);
    tc_model_free(tms[k].m);
  }
  tc_diag_free(d);
  return rc;
}

/* ---- the command ---- */

static void print_header(const tc_bench *b, FILE *f) {
  const tc_bench_opts *o = &b->o;
  fprintf(f, "tacoc bench: %zu model%s, runtime ", o->n_models, o->n_models == 1 ? "" : "s");
  for (size_t r = 0; r < o->n_runtimes; r++)
    fprintf(f, "%s%s", r ? "," : "", tc_bench_runtime_name(o->runtimes[r]));
  if (o->threads)
    fprintf(f, ", %d threads", o->threads);
  else
    fprintf(f, ", default threads");
  fprintf(f, ", warm-up %ld", o->warmup);
  if (o->time_s > 0)
    fprintf(f, ", timed for %g s per batch", o->time_s);
  else
    fprintf(f, ", %ld timed runs per model", o->iters);
  fprintf(f, ", models interleaved\n");
  for (size_t i = 0; i < b->n_inputs; i++) {
    const tc_bench_input *in = &b->inputs[i];
    fprintf(f, "input %s: %s %s, %s%s%s\n", in->name, tc_dtype_name(in->dtype), in->decl,
            in->source ? "from " : "generated", in->source ? in->source : "",
            in->batch && o->n_batches ? " (dim 0 is the batch)" : "");
  }
}

static void free_bench(tc_bench *b) {
  for (size_t i = 0; i < b->n_inputs; i++) {
    free(b->inputs[i].name);
    tc_ndarray_release(&b->inputs[i].data);
  }
  for (size_t i = 0; i < b->n_batches; i++) {
    tc_bench_batch *bb = &b->batches[i];
    for (size_t r = 0; bb->rows && r < bb->n_rows; r++) {
      tc_bench_row *row = &bb->rows[r];
      free(row->lat);
      for (size_t o = 0; o < row->n_out; o++) {
        if (row->outs)
          tc_ndarray_release(&row->outs[o]);
        if (row->out_names)
          free(row->out_names[o]);
      }
      free(row->outs);
      free(row->out_names);
      free(row->acc);
    }
    free(bb->rows);
  }
  free(b->batches);
  for (size_t i = 0; i < b->n_failures; i++)
    free(b->failures[i]);
  free(b->failures);
}

/* The batch size when --batch is not given: dim 0 of the batch inputs, else 1. */
static int64_t natural_batch(const tc_bench *b) {
  for (size_t i = 0; i < b->n_inputs; i++)
    if (b->inputs[i].batch && b->inputs[i].rank >= 1)
      return b->inputs[i].dims[0];
  return 1;
}

static int run_batch(tc_bench *b, tc_bench_batch *bb, progress *pg) {
  const char *names[TC_BENCH_MAX_INPUTS];
  tc_ndarray arrays[TC_BENCH_MAX_INPUTS] = {0};
  bool owned[TC_BENCH_MAX_INPUTS] = {0};
  size_t n = b->o.n_models;
  int rc = TC_EXIT_ERROR;
  bb->n_rows = b->o.n_runtimes * n;
  if (!(bb->rows = calloc(bb->n_rows, sizeof *bb->rows))) {
    tc_cli_error("out of memory");
    goto done;
  }
  for (size_t i = 0; i < b->n_inputs; i++)
    names[i] = b->inputs[i].name;
  if (make_batch_inputs(b, bb->batch, arrays, owned, bb))
    goto done;
  for (size_t r = 0; r < b->o.n_runtimes; r++) {
    tc_bench_row *rows = &bb->rows[r * n];
    for (size_t k = 0; k < n; k++) {
      rows[k].model = k;
      rows[k].rt = b->o.runtimes[r];
      rows[k].peak_bytes = -1;
    }
    if (b->o.runtimes[r] == TC_BENCH_TACORT) {
      if (run_tacort(b, bb, rows, names, arrays, pg))
        goto done;
    } else {
      snprintf(pg->label, sizeof pg->label, "batch %lld, onnxruntime", (long long)bb->batch);
      progress_show(pg, 0, 1, true);
      if (tc_bench_run_ort(b, bb, rows, names, arrays))
        goto done;
    }
  }
  progress_clear(pg);
  rc = tc_bench_finish_batch(b, bb) ? TC_EXIT_ERROR : 0;
done:
  progress_clear(pg);
  for (size_t i = 0; i < b->n_inputs; i++)
    if (owned[i])
      tc_ndarray_release(&arrays[i]);
  return rc;
}

/* Loads the models, sets the inputs up and runs every batch, printing the
 * header and the tables on out (NULL: nothing). */
static int execute(tc_bench *b, bench_args *a, FILE *out) {
  tc_model *models[TC_BENCH_MAX_MODELS] = {0};
  tc_diag *d = tc_diag_new();
  progress pg = {0};
  int rc = TC_EXIT_ERROR;
  if (!d) {
    tc_cli_error("out of memory");
    goto done;
  }
  for (size_t r = 0; r < b->o.n_runtimes; r++)
    if (b->o.runtimes[r] == TC_BENCH_ORT && tc_bench_ort_check())
      goto done;
  for (size_t k = 0; k < b->o.n_models; k++) {
    tc_diag_clear(d); /* a record names the first file set in it */
    if (!(models[k] = tc_cli_load(b->o.models[k], d)))
      goto done;
  }
  if (setup_inputs(b, a, models))
    goto done;
  /* Declarations are copied out: each batch loads the models afresh, so
   * their memory is measured from the same start. */
  for (size_t k = 0; k < b->o.n_models; k++) {
    tc_model_free(models[k]);
    models[k] = NULL;
  }
  if (b->o.threads)
    tc_set_num_threads(b->o.threads);
  b->n_batches = b->o.n_batches ? b->o.n_batches : 1;
  if (!(b->batches = calloc(b->n_batches, sizeof *b->batches))) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (out) {
    print_header(b, out);
    fflush(out);
  }
  pg.on = b->progress;
  for (size_t i = 0; i < b->n_batches; i++) {
    b->batches[i].batch = b->o.n_batches ? b->o.batches[i] : natural_batch(b);
    if (run_batch(b, &b->batches[i], &pg))
      goto done;
    if (out) {
      tc_bench_print_batch(b, &b->batches[i], out);
      fflush(out);
    }
  }
  rc = 0;
done:
  for (size_t k = 0; k < TC_BENCH_MAX_MODELS; k++)
    tc_model_free(models[k]);
  tc_diag_free(d);
  return rc;
}

int tc_bench_run(tc_bench *b, FILE *out) {
  bench_args *a = calloc(1, sizeof *a);
  if (!a)
    return tc_cli_error("out of memory");
  a->unit_dims = true;
  b->progress = isatty(STDERR_FILENO);
  int rc = execute(b, a, out);
  free(a);
  return rc;
}

void tc_bench_free(tc_bench *b) {
  if (b)
    free_bench(b);
  free(b);
}

int tc_cmd_bench(int argc, char **argv) {
  tc_bench *b = calloc(1, sizeof *b);
  bench_args *a = calloc(1, sizeof *a);
  int rc = TC_EXIT_ERROR;
  if (!b || !a) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (parse_args(argc, argv, &b->o, a))
    goto done;
  b->progress = isatty(STDERR_FILENO);
  if (execute(b, a, stdout))
    goto done;
  if (tc_bench_check_gates(b)) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (b->o.json && tc_bench_write_json(b, b->o.json))
    goto done;
  if (b->o.markdown && tc_bench_write_markdown(b, b->o.markdown))
    goto done;
  for (size_t i = 0; i < b->n_failures; i++)
    fprintf(stderr, "tacoc: gate failed: %s\n", b->failures[i]);
  if (b->o.fail_if_slower > 0 || b->o.has_max_error)
    printf("\ngates: %s\n", b->n_failures ? "FAILED" : "passed");
  rc = b->n_failures ? TC_BENCH_EXIT_GATE : 0;
  if (fflush(stdout) != 0)
    rc = tc_cli_error("writing the tables: %s", strerror(errno));
done:
  tc_bench_free(b);
  free(a);
  return rc;
}
