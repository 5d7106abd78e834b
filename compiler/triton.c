/* Triton model repositories (see triton.h).
 *
 * The batch rule. A model is batched when every input it is fed and every
 * output has a symbolic dim 0 of one and the same name (the batch dim);
 * otherwise max_batch_size is 0 and dims are written in full. A batched
 * model is run in libtacort at batches 1, 2, 4, ... up to --triton-max-batch
 * (default 64; measured last when not a power of two), each point with 2
 * warm-up runs and then timed runs for 0.2 s (the median latency, p50, is
 * used), and the measuring stops after the first batch whose throughput
 * (batch / p50) is not at least 5% above the best of the smaller batches:
 * from there on a bigger batch buys nothing. From that curve:
 *
 *   max_batch_size        the batch with the highest throughput
 *   preferred_batch_size  every measured batch up to max_batch_size whose
 *                         throughput is at least 90% of the highest
 *   max_queue_delay_us    the p50 latency of the smallest preferred batch,
 *                         rounded up, at least 100: a request waits for a
 *                         batch to fill at most about as long as running
 *                         that batch takes, so batching at most doubles
 *                         latency under light load; below 100 us Triton's
 *                         own cost per request dominates and a shorter wait
 *                         would rarely let a second request in
 *
 * Other symbolic dims are -1 in the config and 1 while measuring. */
#include "triton.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench_priv.h"
#include "cli.h"

#define CURVE_WARMUP 2
#define CURVE_SECONDS 0.2
#define MIN_GAIN 0.05       /* a doubling must raise throughput by this much to go on */
#define PREFERRED_SHARE 0.9 /* preferred batches reach this share of the best throughput */
#define MIN_QUEUE_DELAY_US 100

/* Triton's DataType name of an ONNX dtype, or NULL when Triton has none. */
static const char *triton_dtype(int32_t dt) {
  switch (dt) {
  case TC_DTYPE_BOOL: return "TYPE_BOOL";
  case TC_DTYPE_U8: return "TYPE_UINT8";
  case TC_DTYPE_U16: return "TYPE_UINT16";
  case TC_DTYPE_U32: return "TYPE_UINT32";
  case TC_DTYPE_U64: return "TYPE_UINT64";
  case TC_DTYPE_I8: return "TYPE_INT8";
  case TC_DTYPE_I16: return "TYPE_INT16";
  case TC_DTYPE_I32: return "TYPE_INT32";
  case TC_DTYPE_I64: return "TYPE_INT64";
  case TC_DTYPE_F16: return "TYPE_FP16";
  case TC_DTYPE_F32: return "TYPE_FP32";
  case TC_DTYPE_F64: return "TYPE_FP64";
  case TC_DTYPE_STRING: return "TYPE_STRING";
  case TC_DTYPE_BF16: return "TYPE_BF16";
  default: return NULL;
  }
}

static bool name_char_ok(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

/* NAME: the one given, or OUT's file name without .onnx with characters
 * other than letters, digits, '_', '-' and '.' replaced by '_'. */
static int pick_name(const char *out, const char *given, char *name, size_t cap) {
  if (given) {
    bool bad =
        !*given || strcmp(given, ".") == 0 || strcmp(given, "..") == 0 || strlen(given) >= cap;
    for (const char *p = given; !bad && *p; p++)
      bad = *p == '/' || (unsigned char)*p < 0x20;
    if (bad)
      return tc_cli_usage_error("--triton-name: '%s' is not a model name (a folder name: not "
                                "empty, no '/', not '.' or '..')",
                                given);
    snprintf(name, cap, "%s", given);
    return 0;
  }
  const char *base = strrchr(out, '/');
  base = base ? base + 1 : out;
  size_t len = strlen(base);
  if (tc_cli_ends_with(base, ".onnx"))
    len -= 5;
  if (len >= cap)
    len = cap - 1;
  for (size_t i = 0; i < len; i++)
    name[i] = name_char_ok(base[i]) ? base[i] : '_';
  name[len] = '\0';
  if (len == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
    snprintf(name, cap, "model");
  return 0;
}

/* mkdir -p */
static int make_dirs(const char *path) {
  char buf[4200];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return tc_cli_error("%s: path too long", path);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0')
      continue;
    char c = *p;
    *p = '\0';
    struct stat st;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return tc_cli_error("%s: cannot create the folder: %s", buf, strerror(errno));
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
      return tc_cli_error("%s: exists and is not a folder", buf);
    *p = c;
    if (!c)
      return 0;
  }
}

static const tc_value *fed_input(const tc_graph *g, size_t i) {
  const tc_value *v = g->inputs[i].value;
  return v->init ? NULL : v;
}

/* Checks that Triton can describe v: a tensor of known rank and a Triton dtype. */
static int check_value(const tc_value *v, const char *what) {
  const tc_type *t = &v->type;
  if (t->kind != TC_TYPE_TENSOR)
    return tc_cli_error("--triton-repo: %s '%s' is not a tensor; Triton's config describes "
                        "tensors only",
                        what, v->name);
  if (!t->has_shape)
    return tc_cli_error("--triton-repo: %s '%s' has no declared shape; Triton's config needs its "
                        "dims",
                        what, v->name);
  if (!triton_dtype(t->elem))
    return tc_cli_error("--triton-repo: %s '%s' is %s, which Triton has no data type for", what,
                        v->name, tc_dtype_name(t->elem));
  return 0;
}

/* The name of v's symbolic dim 0, or NULL. */
static const char *dim0_param(const tc_value *v) {
  const tc_type *t = &v->type;
  return t->rank >= 1 && t->dims[0].kind == TC_DIM_PARAM && t->dims[0].param ? t->dims[0].param
                                                                             : NULL;
}

static void describe_dim0(const tc_value *v, char *buf, size_t cap) {
  const tc_type *t = &v->type;
  if (t->rank == 0)
    snprintf(buf, cap, "is a scalar");
  else if (t->dims[0].kind == TC_DIM_VALUE)
    snprintf(buf, cap, "has a fixed dim 0 of %lld", (long long)t->dims[0].value);
  else if (t->dims[0].kind == TC_DIM_PARAM && t->dims[0].param)
    snprintf(buf, cap, "has dim 0 '%s'", t->dims[0].param);
  else
    snprintf(buf, cap, "has an unnamed dim 0");
}

/* Sets p->batch_dim when every fed input and every output share a symbolic
 * dim 0; else p->unbatched says why. */
static void find_batch_dim(const tc_model *m, tc_triton_plan *p) {
  const tc_graph *g = m->graph;
  const char *dim = NULL;
  char why[160];
  size_t n_fed = 0;
  for (size_t i = 0; i < g->n_inputs; i++) {
    const tc_value *v = fed_input(g, i);
    if (!v)
      continue;
    n_fed++;
    const char *d = dim0_param(v);
    if (!d || (dim && strcmp(d, dim) != 0)) {
      describe_dim0(v, why, sizeof why);
      snprintf(p->unbatched, sizeof p->unbatched, "input '%s' %s%s%s%s", v->name, why,
               d ? ", other inputs have '" : "", d ? dim : "", d ? "'" : "");
      return;
    }
    dim = d;
  }
  if (!n_fed) {
    snprintf(p->unbatched, sizeof p->unbatched, "the model has no inputs");
    return;
  }
  for (size_t i = 0; i < g->n_outputs; i++) {
    const tc_value *v = g->outputs[i].value;
    const char *d = dim0_param(v);
    if (!d || strcmp(d, dim) != 0) {
      describe_dim0(v, why, sizeof why);
      snprintf(p->unbatched, sizeof p->unbatched, "output '%s' %s, the inputs have '%s'", v->name,
               why, dim);
      return;
    }
  }
  p->batch_dim = dim;
}

/* Runs the model at batch b in libtacort; *p50 gets the median latency. */
static int measure_point(const char *model, int64_t b, double *p50) {
  tc_bench *bench = calloc(1, sizeof *bench);
  if (!bench)
    return tc_cli_error("out of memory");
  tc_bench_opts *o = &bench->o;
  o->models[0] = model;
  o->n_models = 1;
  o->runtimes[0] = TC_BENCH_TACORT;
  o->n_runtimes = 1;
  o->batches[0] = b;
  o->n_batches = 1;
  o->warmup = CURVE_WARMUP;
  o->iters = 1;
  o->time_s = CURVE_SECONDS;
  o->min_cos = o->max_abs = o->max_rel = NAN;
  int rc = tc_bench_run(bench, NULL);
  if (!rc)
    *p50 = bench->batches[0].rows[0].stats.p50;
  tc_bench_free(bench);
  return rc;
}

/* 1, 2, 4, ..., and the limit itself as the last point. */
static int64_t next_batch(int64_t b, int64_t limit) {
  return b < limit && b * 2 > limit ? limit : b * 2;
}

/* Measures the curve and picks the settings (the rule at the top). */
static int plan_batching(tc_triton_plan *p) {
  double best = 0;
  int64_t limit = p->max_batch_limit;
  for (int64_t b = 1; b <= limit && p->n_curve < TC_TRITON_MAX_POINTS; b = next_batch(b, limit)) {
    double p50 = 0;
    if (measure_point(p->model_path, b, &p50))
      return TC_EXIT_ERROR;
    tc_triton_point *pt = &p->curve[p->n_curve++];
    pt->batch = b;
    pt->p50_ms = p50;
    pt->throughput = p50 > 0 ? (double)b * 1e3 / p50 : 0;
    bool gained = pt->throughput >= best * (1 + MIN_GAIN);
    if (pt->throughput > best)
      best = pt->throughput;
    if ((b > 1 && !gained) || b == limit)
      break;
  }
  size_t top = 0;
  for (size_t i = 1; i < p->n_curve; i++)
    if (p->curve[i].throughput > p->curve[top].throughput)
      top = i;
  p->max_batch_size = p->curve[top].batch;
  for (size_t i = 0; i <= top; i++)
    if (p->curve[i].throughput >= PREFERRED_SHARE * p->curve[top].throughput)
      p->preferred[p->n_preferred++] = p->curve[i].batch;
  for (size_t i = 0; i <= top; i++)
    if (p->curve[i].batch == p->preferred[0]) {
      double us = ceil(p->curve[i].p50_ms * 1e3);
      p->queue_delay_us = us < MIN_QUEUE_DELAY_US ? MIN_QUEUE_DELAY_US : (uint64_t)us;
    }
  return 0;
}

/* A protobuf text-format string literal. */
static void pb_string(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p == '\n')
      fputs("\\n", f);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\%03o", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* One input or output entry; dim 0 is left out when the model is batched.
 * No dims left (a scalar, or only the batch dim): dims [1] reshaped to []. */
static void pb_tensor(FILE *f, const tc_value *v, bool batched) {
  const tc_type *t = &v->type;
  size_t first = batched ? 1 : 0;
  fputs("  {\n    name: ", f);
  pb_string(f, v->name);
  fprintf(f, "\n    data_type: %s\n    dims: [ ", triton_dtype(t->elem));
  if (t->rank <= first)
    fputs("1 ]\n    reshape: { shape: [ ] }\n", f);
  else {
    for (size_t d = first; d < t->rank; d++)
      fprintf(f, "%s%lld", d > first ? ", " : "",
              t->dims[d].kind == TC_DIM_VALUE ? (long long)t->dims[d].value : -1LL);
    fputs(" ]\n", f);
  }
  fputs("  }", f);
}

static void write_config(FILE *f, const tc_model *m, const tc_triton_plan *p) {
  const tc_graph *g = m->graph;
  bool batched = p->max_batch_size > 0;
  fprintf(f,
          "# Written by tacoc %s (tacoc optimize --triton-repo) for Triton's ONNX Runtime "
          "backend.\n",
          tc_version());
  if (batched) {
    fprintf(f, "# Batch dim '%s'. Measured in libtacort (batch: p50 ms, inferences/s):\n",
            p->batch_dim);
    for (size_t i = 0; i < p->n_curve; i++)
      fprintf(f, "#   %lld: %.4f ms, %.1f/s\n", (long long)p->curve[i].batch, p->curve[i].p50_ms,
              p->curve[i].throughput);
    fputs("# max_batch_size: the best throughput; preferred_batch_size: within 90% of it;\n"
          "# max_queue_delay_microseconds: p50 of the smallest preferred batch, at least 100.\n",
          f);
  } else {
    fprintf(f, "# No batching: %s.\n", p->unbatched);
  }
  fputs("name: ", f);
  pb_string(f, p->name);
  fprintf(f, "\nplatform: \"onnxruntime_onnx\"\nmax_batch_size: %lld\n",
          (long long)p->max_batch_size);
  fputs("input [\n", f);
  bool first = true;
  for (size_t i = 0; i < g->n_inputs; i++) {
    const tc_value *v = fed_input(g, i);
    if (!v)
      continue;
    fputs(first ? "" : ",\n", f);
    pb_tensor(f, v, batched);
    first = false;
  }
  fputs("\n]\noutput [\n", f);
  for (size_t i = 0; i < g->n_outputs; i++) {
    fputs(i ? ",\n" : "", f);
    pb_tensor(f, g->outputs[i].value, batched);
  }
  fputs("\n]\n", f);
  if (batched) {
    fputs("dynamic_batching {\n  preferred_batch_size: [ ", f);
    for (size_t i = 0; i < p->n_preferred; i++)
      fprintf(f, "%s%lld", i ? ", " : "", (long long)p->preferred[i]);
    fprintf(f, " ]\n  max_queue_delay_microseconds: %llu\n}\n",
            (unsigned long long)p->queue_delay_us);
  }
}

static int save_config(const tc_model *m, const tc_triton_plan *p) {
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", p->config_path, (long)getpid());
  FILE *f = fopen(tmp, "w");
  if (!f)
    return tc_cli_error("%s: cannot write: %s", p->config_path, strerror(errno));
  write_config(f, m, p);
  bool bad = ferror(f) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, p->config_path) != 0) {
    int e = errno;
    remove(tmp);
    return tc_cli_error("%s: cannot write: %s", p->config_path, strerror(e ? e : EIO));
  }
  return 0;
}

int tc_triton_write(const tc_model *m, const char *out, const tc_triton_opts *o,
                    tc_triton_plan *p) {
  memset(p, 0, sizeof *p);
  p->max_batch_limit = o->max_batch;
  if (pick_name(out, o->name, p->name, sizeof p->name))
    return TC_EXIT_ERROR;
  const tc_graph *g = m->graph;
  for (size_t i = 0; i < g->n_inputs; i++)
    if (fed_input(g, i) && check_value(fed_input(g, i), "input"))
      return TC_EXIT_ERROR;
  for (size_t i = 0; i < g->n_outputs; i++)
    if (check_value(g->outputs[i].value, "output"))
      return TC_EXIT_ERROR;
  char version_dir[4104];
  if (snprintf(p->model_dir, sizeof p->model_dir, "%s/%s", o->dir, p->name) >=
      (int)sizeof p->model_dir)
    return tc_cli_error("--triton-repo: path too long");
  snprintf(version_dir, sizeof version_dir, "%s/1", p->model_dir);
  snprintf(p->model_path, sizeof p->model_path, "%s/model.onnx", version_dir);
  snprintf(p->config_path, sizeof p->config_path, "%s/config.pbtxt", p->model_dir);
  if (make_dirs(version_dir))
    return TC_EXIT_ERROR;
  tc_diag *d = tc_diag_new();
  if (!d)
    return tc_cli_error("out of memory");
  tc_status st = tc_model_save_file(m, p->model_path, o->save, d);
  int rc = st ? tc_cli_report(d) : 0;
  tc_diag_free(d);
  if (rc)
    return rc;
  if (o->max_batch > 0)
    find_batch_dim(m, p);
  else
    snprintf(p->unbatched, sizeof p->unbatched, "--triton-max-batch 0");
  if (p->batch_dim && plan_batching(p))
    return TC_EXIT_ERROR;
  return save_config(m, p);
}

void tc_triton_print(const tc_triton_plan *p, FILE *f) {
  fprintf(f, "\ntriton: %s (config.pbtxt, 1/model.onnx)\n", p->model_dir);
  if (p->max_batch_size <= 0) {
    fprintf(f, "  max_batch_size 0 (no batching: %s)\n", p->unbatched);
    return;
  }
  fprintf(f, "  %8s %12s %14s   (batch dim '%s', libtacort)\n", "batch", "p50 ms", "inf/s",
          p->batch_dim);
  for (size_t i = 0; i < p->n_curve; i++)
    fprintf(f, "  %8lld %12.4f %14.1f\n", (long long)p->curve[i].batch, p->curve[i].p50_ms,
            p->curve[i].throughput);
  fprintf(f, "  max_batch_size %lld, preferred_batch_size [", (long long)p->max_batch_size);
  for (size_t i = 0; i < p->n_preferred; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)p->preferred[i]);
  fprintf(f, "], max_queue_delay_microseconds %llu\n", (unsigned long long)p->queue_delay_us);
}

void tc_triton_json(tc_json *j, const tc_triton_plan *p) {
  tc_json_begin_object(j);
  tc_json_key(j, "model_dir");
  tc_json_string(j, p->model_dir);
  tc_json_key(j, "name");
  tc_json_string(j, p->name);
  tc_json_key(j, "model");
  tc_json_string(j, p->model_path);
  tc_json_key(j, "config");
  tc_json_string(j, p->config_path);
  tc_json_key(j, "platform");
  tc_json_string(j, "onnxruntime_onnx");
  tc_json_key(j, "batch_dim");
  tc_json_string(j, p->max_batch_size > 0 ? p->batch_dim : NULL);
  tc_json_key(j, "unbatched_reason");
  tc_json_string(j, p->max_batch_size > 0 ? NULL : p->unbatched);
  tc_json_key(j, "max_batch_limit");
  tc_json_int(j, p->max_batch_limit);
  tc_json_key(j, "max_batch_size");
  tc_json_int(j, p->max_batch_size);
  tc_json_key(j, "dynamic_batching");
  if (p->max_batch_size <= 0) {
    tc_json_null(j);
  } else {
    tc_json_begin_object(j);
    tc_json_key(j, "preferred_batch_size");
    tc_json_begin_array(j);
    for (size_t i = 0; i < p->n_preferred; i++)
      tc_json_int(j, p->preferred[i]);
    tc_json_end_array(j);
    tc_json_key(j, "max_queue_delay_microseconds");
    tc_json_uint(j, p->queue_delay_us);
    tc_json_end_object(j);
  }
  tc_json_key(j, "curve");
  tc_json_begin_array(j);
  for (size_t i = 0; i < p->n_curve; i++) {
    tc_json_begin_object(j);
    tc_json_key(j, "batch");
    tc_json_int(j, p->curve[i].batch);
    tc_json_key(j, "p50_ms");
    tc_json_double(j, p->curve[i].p50_ms);
    tc_json_key(j, "throughput_per_s");
    tc_json_double(j, p->curve[i].throughput);
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  tc_json_end_object(j);
}
