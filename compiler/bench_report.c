/* `tacoc bench` results: latency statistics, accuracy against the first
 * model, the tables on stdout, the gates, the JSON report (tacoc.bench/1) and
 * the Markdown summary. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_priv.h"
#include "cli.h"
#include "ir.h"
#include "json.h"
#include "kernel.h"

/* ---- statistics ---- */

/* Percentile q (0..1) of sorted v, interpolated between the closest ranks. */
static double percentile(const double *v, size_t n, double q) {
  double pos = q * (double)(n - 1);
  size_t lo = (size_t)pos;
  if (lo + 1 >= n)
    return v[n - 1];
  return v[lo] + (v[lo + 1] - v[lo]) * (pos - (double)lo);
}

static int compute_stats(tc_bench_row *row) {
  tc_bench_stats *s = &row->stats;
  s->n = row->n_lat;
  if (!s->n)
    return 0;
  double *v = malloc(s->n * sizeof *v);
  if (!v)
    return -1;
  memcpy(v, row->lat, s->n * sizeof *v);
  qsort(v, s->n, sizeof *v, tc_cli_cmp_double);
  double sum = 0;
  for (size_t i = 0; i < s->n; i++)
    sum += v[i];
  s->p50 = percentile(v, s->n, 0.50);
  s->p90 = percentile(v, s->n, 0.90);
  s->p99 = percentile(v, s->n, 0.99);
  s->mean = sum / (double)s->n;
  s->min = v[0];
  s->max = v[s->n - 1];
  free(v);
  return 0;
}

/* ---- accuracy ---- */

/* References below this magnitude are judged by the absolute error alone. */
#define REL_FLOOR 1e-6

static void shape_text(const tc_ndarray *t, char *buf, size_t cap) {
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (size_t i = 0; i < t->rank && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
  if (len < cap)
    snprintf(buf + len, cap - len, "]");
}

static tc_rt_tensor as_rt(const tc_ndarray *a) {
  tc_rt_tensor t = {.dtype = a->dtype, .rank = a->rank, .data = a->data, .bytes = a->size};
  memcpy(t.dims, a->dims, sizeof t.dims);
  return t;
}

static void compare(const tc_ndarray *ref, const tc_ndarray *got, tc_bench_acc *acc) {
  tc_rt_tensor r = as_rt(ref), g = as_rt(got);
  size_t n = tc_rt_numel(&r);
  double max_abs = 0, max_rel = 0, dot = 0, nr = 0, ng = 0;
  for (size_t i = 0; i < n; i++) {
    double a = tc_rt_get_f64(&r, i), x = tc_rt_get_f64(&g, i);
    double diff;
    if (isnan(a) || isnan(x))
      diff = isnan(a) && isnan(x) ? 0 : INFINITY;
    else
      diff = a == x ? 0 : fabs(x - a); /* equal infinities are no error */
    max_abs = diff > max_abs ? diff : max_abs;
    if (fabs(a) >= REL_FLOOR && diff / fabs(a) > max_rel)
      max_rel = diff / fabs(a);
    dot += a * x, nr += a * a, ng += x * x;
  }
  acc->max_abs = max_abs;
  acc->max_rel = max_rel;
  double cos = dot / sqrt(nr * ng); /* NaN when a value is not finite */
  if (nr == 0 && ng == 0)
    cos = 1;
  else if (nr == 0 || ng == 0)
    cos = 0;
  acc->cos = isnan(cos) ? NAN : cos > 1 ? 1 : cos < -1 ? -1 : cos;
}

static const char *row_label(const tc_bench *b, const tc_bench_row *row) {
  return b->o.models[row->model];
}

/* The output of row that matches output j of the reference: the same name,
 * else the same position when both have as many outputs. */
static long match_output(const tc_bench_row *ref, size_t j, const tc_bench_row *row) {
  for (size_t i = 0; i < row->n_out; i++)
    if (strcmp(row->out_names[i], ref->out_names[j]) == 0)
      return (long)i;
  return row->n_out == ref->n_out ? (long)j : -1;
}

static int accuracy(const tc_bench *b, const tc_bench_row *ref, tc_bench_row *row) {
  row->acc = calloc(ref->n_out + 1, sizeof *row->acc);
  if (!row->acc)
    return tc_cli_error("out of memory");
  row->n_acc = ref->n_out;
  for (size_t j = 0; j < ref->n_out; j++) {
    long i = match_output(ref, j, row);
    const char *who = row_label(b, row), *rt = tc_bench_runtime_name(row->rt);
    if (i < 0)
      return tc_cli_error("%s (%s): no output '%s' to compare with %s's", who, rt,
                          ref->out_names[j], row_label(b, ref));
    const tc_ndarray *x = &ref->outs[j], *y = &row->outs[i];
    bool same = x->rank == y->rank;
    for (size_t d = 0; same && d < x->rank; d++)
      same = x->dims[d] == y->dims[d];
    if (!same) {
      char sx[128], sy[128];
      shape_text(x, sx, sizeof sx);
      shape_text(y, sy, sizeof sy);
      return tc_cli_error("%s (%s): output '%s' has shape %s, %s's has %s", who, rt,
                          row->out_names[i], sy, row_label(b, ref), sx);
    }
    row->acc[j].output = ref->out_names[j];
    compare(x, y, &row->acc[j]);
  }
  return 0;
}

int tc_bench_finish_batch(tc_bench *b, tc_bench_batch *bb) {
  size_t n = b->o.n_models;
  for (size_t r = 0; r < bb->n_rows; r++) {
    tc_bench_row *row = &bb->rows[r];
    if (compute_stats(row))
      return tc_cli_error("out of memory");
    const tc_bench_row *first = &bb->rows[(r / n) * n];
    row->throughput = row->stats.p50 > 0 ? (double)bb->batch * 1e3 / row->stats.p50 : NAN;
    row->ratio = first->stats.p50 > 0 ? row->stats.p50 / first->stats.p50 : NAN;
  }
  for (size_t r = 1; r < bb->n_rows; r++)
    if (accuracy(b, &bb->rows[0], &bb->rows[r]))
      return -1;
  for (size_t r = 0; r < bb->n_rows; r++) {
    tc_bench_row *row = &bb->rows[r];
    for (size_t o = 0; row->outs && o < row->n_out; o++)
      tc_ndarray_release(&row->outs[o]);
  }
  return 0;
}

/* ---- text tables ---- */

void tc_bench_format_bytes(int64_t bytes, char *buf, size_t cap) {
  if (bytes < 0)
    snprintf(buf, cap, "n/a");
  else if (bytes < 1024)
    snprintf(buf, cap, "%lld B", (long long)bytes);
  else if (bytes < 1024 * 1024)
    snprintf(buf, cap, "%.1f KiB", (double)bytes / 1024);
  else if (bytes < 1024LL * 1024 * 1024)
    snprintf(buf, cap, "%.1f MiB", (double)bytes / (1024.0 * 1024));
  else
    snprintf(buf, cap, "%.2f GiB", (double)bytes / (1024.0 * 1024 * 1024));
}

static const char *fmt_ms(double v, char *buf, size_t cap) {
  snprintf(buf, cap, v >= 100 ? "%.2f" : v >= 1 ? "%.3f" : "%.4f", v);
  return buf;
}

static int model_width(const tc_bench *b) {
  size_t w = 5;
  for (size_t k = 0; k < b->o.n_models; k++)
    w = strlen(b->o.models[k]) > w ? strlen(b->o.models[k]) : w;
  return (int)w;
}

void tc_bench_print_batch(const tc_bench *b, const tc_bench_batch *bb, FILE *f) {
  int mw = model_width(b);
  char c[7][32], mem[32];
  fprintf(f, "\nbatch %lld\n", (long long)bb->batch);
  fprintf(f, "  %-*s  %-7s %10s %10s %10s %10s %10s %10s %6s %12s %10s %9s\n", mw, "model",
          "runtime", "p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms", "max ms", "runs", "inf/s",
          "peak mem", "p50/first");
  for (size_t r = 0; r < bb->n_rows; r++) {
    const tc_bench_row *row = &bb->rows[r];
    const tc_bench_stats *s = &row->stats;
    tc_bench_format_bytes(row->peak_bytes, mem, sizeof mem);
    fprintf(f, "  %-*s  %-7s %10s %10s %10s %10s %10s %10s %6zu %12.1f %10s %8.2fx\n", mw,
            row_label(b, row), tc_bench_runtime_name(row->rt), fmt_ms(s->p50, c[0], 32),
            fmt_ms(s->p90, c[1], 32), fmt_ms(s->p99, c[2], 32), fmt_ms(s->mean, c[3], 32),
            fmt_ms(s->min, c[4], 32), fmt_ms(s->max, c[5], 32), s->n, row->throughput, mem,
            row->ratio);
  }
  if (bb->n_rows < 2)
    return;
  const tc_bench_row *ref = &bb->rows[0];
  int ow = 6;
  for (size_t j = 0; j < ref->n_out; j++)
    ow = (int)strlen(ref->out_names[j]) > ow ? (int)strlen(ref->out_names[j]) : ow;
  fprintf(f, "  accuracy vs %s (%s):\n", row_label(b, ref), tc_bench_runtime_name(ref->rt));
  fprintf(f, "  %-*s  %-7s %-*s %12s %12s %12s\n", mw, "model", "runtime", ow, "output",
          "max abs err", "max rel err", "cosine");
  for (size_t r = 1; r < bb->n_rows; r++) {
    const tc_bench_row *row = &bb->rows[r];
    for (size_t j = 0; j < row->n_acc; j++)
      fprintf(f, "  %-*s  %-7s %-*s %12.3g %12.3g %12.6f\n", mw, row_label(b, row),
              tc_bench_runtime_name(row->rt), ow, row->acc[j].output, row->acc[j].max_abs,
              row->acc[j].max_rel, row->acc[j].cos);
  }
}

/* ---- gates ---- */

static int fail(tc_bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(tc_bench *b, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  char **f = realloc(b->failures, (b->n_failures + 1) * sizeof *f);
  if (!f)
    return -1;
  b->failures = f;
  if (!(f[b->n_failures] = strdup(line)))
    return -1;
  b->n_failures++;
  return 0;
}

int tc_bench_check_gates(tc_bench *b) {
  const tc_bench_opts *o = &b->o;
  size_t n = o->n_models;
  char x[32], y[32];
  for (size_t i = 0; i < b->n_batches; i++) {
    const tc_bench_batch *bb = &b->batches[i];
    for (size_t r = 0; r < bb->n_rows; r++) {
      const tc_bench_row *row = &bb->rows[r], *first = &bb->rows[(r / n) * n];
      const char *who = row_label(b, row), *rt = tc_bench_runtime_name(row->rt);
      long long batch = (long long)bb->batch;
      if (o->fail_if_slower > 0 && row != first && !(row->ratio <= o->fail_if_slower) &&
          fail(b, "batch %lld: %s (%s) p50 %s ms is %.2fx %s's %s ms (limit %gx)", batch, who, rt,
               fmt_ms(row->stats.p50, x, sizeof x), row->ratio, row_label(b, first),
               fmt_ms(first->stats.p50, y, sizeof y), o->fail_if_slower))
        return -1;
      for (size_t j = 0; o->has_max_error && j < row->n_acc; j++) {
        const tc_bench_acc *a = &row->acc[j];
        if (!isnan(o->min_cos) && !(a->cos >= o->min_cos) &&
            fail(b, "batch %lld: %s (%s) output '%s': cosine %.9g is below %g", batch, who, rt,
                 a->output, a->cos, o->min_cos))
          return -1;
        if (!isnan(o->max_abs) && !(a->max_abs <= o->max_abs) &&
            fail(b, "batch %lld: %s (%s) output '%s': max abs error %.6g is above %g", batch, who,
                 rt, a->output, a->max_abs, o->max_abs))
          return -1;
        if (!isnan(o->max_rel) && !(a->max_rel <= o->max_rel) &&
            fail(b, "batch %lld: %s (%s) output '%s': max rel error %.6g is above %g", batch, who,
                 rt, a->output, a->max_rel, o->max_rel))
          return -1;
      }
    }
  }
  return 0;
}

/* ---- files ---- */

/* Opens a temporary file beside path; *tmp gets its name. */
static FILE *open_tmp(const char *path, char *tmp, size_t cap) {
  snprintf(tmp, cap, "%s.tmp%ld", path, (long)getpid());
  return fopen(tmp, "w");
}

static int close_tmp(FILE *f, const char *tmp, const char *path) {
  bool bad = ferror(f) != 0;
  bad |= fclose(f) != 0;
  if (bad || rename(tmp, path) != 0) {
    int e = errno;
    remove(tmp);
    return tc_cli_error("%s: cannot write: %s", path, strerror(e ? e : EIO));
  }
  return 0;
}

static void json_num(tc_json *j, const char *key, double v) {
  tc_json_key(j, key);
  tc_json_double(j, v);
}

static void json_bool(tc_json *j, const char *key, bool v) {
  tc_json_key(j, key);
  tc_json_bool(j, v);
}

static void json_limit(tc_json *j, const char *key, double v) {
  if (isnan(v)) {
    tc_json_key(j, key);
    tc_json_null(j);
  } else {
    json_num(j, key, v);
  }
}

static void json_row(tc_json *j, const tc_bench *b, const tc_bench_row *row) {
  tc_json_begin_object(j);
  tc_json_key(j, "model");
  tc_json_string(j, row_label(b, row));
  tc_json_key(j, "model_index");
  tc_json_uint(j, row->model);
  tc_json_key(j, "runtime");
  tc_json_string(j, tc_bench_runtime_name(row->rt));
  tc_json_key(j, "iterations");
  tc_json_uint(j, row->stats.n);
  tc_json_key(j, "latency_ms");
  tc_json_begin_object(j);
  json_num(j, "p50", row->stats.p50);
  json_num(j, "p90", row->stats.p90);
  json_num(j, "p99", row->stats.p99);
  json_num(j, "mean", row->stats.mean);
  json_num(j, "min", row->stats.min);
  json_num(j, "max", row->stats.max);
  tc_json_end_object(j);
  json_num(j, "throughput_per_s", row->throughput);
  json_num(j, "p50_ratio_to_first", row->ratio);
  tc_json_key(j, "peak_memory_bytes");
  if (row->peak_bytes < 0)
    tc_json_null(j);
  else
    tc_json_int(j, row->peak_bytes);
  tc_json_key(j, "accuracy");
  if (!row->acc) {
    tc_json_null(j);
  } else {
    tc_json_begin_array(j);
    for (size_t k = 0; k < row->n_acc; k++) {
      tc_json_begin_object(j);
      tc_json_key(j, "output");
      tc_json_string(j, row->acc[k].output);
      json_num(j, "max_abs", row->acc[k].max_abs);
      json_num(j, "max_rel", row->acc[k].max_rel);
      json_num(j, "cos", row->acc[k].cos);
      tc_json_end_object(j);
    }
    tc_json_end_array(j);
  }
  tc_json_end_object(j);
}

static void json_header(tc_json *j, const tc_bench *b) {
  const tc_bench_opts *o = &b->o;
  tc_json_key(j, "schema");
  tc_json_string(j, "tacoc.bench/1");
  tc_json_key(j, "tacoc_version");
  tc_json_string(j, tc_version());
  tc_json_key(j, "models");
  tc_json_begin_array(j);
  for (size_t k = 0; k < o->n_models; k++)
    tc_json_string(j, o->models[k]);
  tc_json_end_array(j);
  tc_json_key(j, "runtimes");
  tc_json_begin_array(j);
  for (size_t r = 0; r < o->n_runtimes; r++)
    tc_json_string(j, tc_bench_runtime_name(o->runtimes[r]));
  tc_json_end_array(j);
  tc_json_key(j, "onnxruntime_version");
  tc_json_string(j, b->ort_version[0] ? b->ort_version : NULL);
  tc_json_key(j, "tacort_target");
  tc_json_string(j, o->target == TC_TARGET_CUDA ? "cuda" : "cpu");
  tc_json_key(j, "threads");
  if (o->threads)
    tc_json_int(j, o->threads);
  else
    tc_json_null(j);
  tc_json_key(j, "warmup");
  tc_json_int(j, o->warmup);
  tc_json_key(j, "iterations");
  if (o->time_s > 0)
    tc_json_null(j);
  else
    tc_json_int(j, o->iters);
  json_limit(j, "time_seconds", o->time_s > 0 ? o->time_s : NAN);
  tc_json_key(j, "memory_method");
  tc_json_string(j, b->memory_method);
  tc_json_key(j, "inputs");
  tc_json_begin_array(j);
  for (size_t i = 0; i < b->n_inputs; i++) {
    const tc_bench_input *in = &b->inputs[i];
    tc_json_begin_object(j);
    tc_json_key(j, "name");
    tc_json_string(j, in->name);
    tc_json_key(j, "dtype");
    tc_json_string(j, tc_dtype_name(in->dtype));
    tc_json_key(j, "declared_shape");
    tc_json_string(j, in->decl);
    json_bool(j, "batch", in->batch);
    tc_json_key(j, "source");
    tc_json_string(j, in->source ? in->source : "generated");
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
}

void tc_bench_json_fields(tc_json *j, const tc_bench *b) {
  json_header(j, b);
  tc_json_key(j, "results");
  tc_json_begin_array(j);
  for (size_t i = 0; i < b->n_batches; i++) {
    const tc_bench_batch *bb = &b->batches[i];
    tc_json_begin_object(j);
    tc_json_key(j, "batch");
    tc_json_int(j, bb->batch);
    tc_json_key(j, "input_shapes");
    tc_json_begin_object(j);
    for (size_t k = 0; k < b->n_inputs; k++) {
      tc_json_key(j, b->inputs[k].name);
      tc_json_begin_array(j);
      for (size_t d = 0; d < b->inputs[k].rank; d++)
        tc_json_int(j, bb->shapes[k][d]);
      tc_json_end_array(j);
    }
    tc_json_end_object(j);
    tc_json_key(j, "runs");
    tc_json_begin_array(j);
    for (size_t r = 0; r < bb->n_rows; r++)
      json_row(j, b, &bb->rows[r]);
    tc_json_end_array(j);
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  tc_json_key(j, "gates");
  tc_json_begin_object(j);
  json_limit(j, "fail_if_slower", b->o.fail_if_slower > 0 ? b->o.fail_if_slower : NAN);
  tc_json_key(j, "max_error");
  if (!b->o.has_max_error) {
    tc_json_null(j);
  } else {
    tc_json_begin_object(j);
    json_limit(j, "cos", b->o.min_cos);
    json_limit(j, "max_abs", b->o.max_abs);
    json_limit(j, "max_rel", b->o.max_rel);
    tc_json_end_object(j);
  }
  json_bool(j, "passed", b->n_failures == 0);
  tc_json_key(j, "failures");
  tc_json_begin_array(j);
  for (size_t i = 0; i < b->n_failures; i++)
    tc_json_string(j, b->failures[i]);
  tc_json_end_array(j);
  tc_json_end_object(j);
}

int tc_bench_write_json(const tc_bench *b, const char *path) {
  char tmp[4200];
  FILE *f = open_tmp(path, tmp, sizeof tmp);
  if (!f)
    return tc_cli_error("%s: cannot write: %s", path, strerror(errno));
  tc_json j;
  tc_json_init(&j, f);
  tc_json_begin_object(&j);
  tc_bench_json_fields(&j, b);
  tc_json_end_object(&j);
  return close_tmp(f, tmp, path);
}

/* A Markdown table cell: '|' escaped, newlines as spaces. */
static void md_cell(FILE *f, const char *s) {
  fputs(" ", f);
  for (; *s; s++) {
    if (*s == '|')
      fputs("\\|", f);
    else
      fputc(*s == '\n' ? ' ' : *s, f);
  }
  fputs(" |", f);
}

int tc_bench_write_markdown(const tc_bench *b, const char *path) {
  char tmp[4200], c[7][32], mem[32], num[64];
  FILE *f = open_tmp(path, tmp, sizeof tmp);
  if (!f)
    return tc_cli_error("%s: cannot write: %s", path, strerror(errno));
  const tc_bench_opts *o = &b->o;
  fprintf(f, "## tacoc bench\n\nRuntime ");
  for (size_t r = 0; r < o->n_runtimes; r++)
    fprintf(f, "%s`%s`", r ? ", " : "", tc_bench_runtime_name(o->runtimes[r]));
  fprintf(f, ", warm-up %ld, ", o->warmup);
  if (o->time_s > 0)
    fprintf(f, "timed for %g s per batch", o->time_s);
  else
    fprintf(f, "%ld timed runs per model", o->iters);
  fprintf(f, " (models interleaved). Latency in ms; throughput = batch / p50.\n\n");
  fprintf(f, "| model | runtime | batch | p50 ms | p90 ms | p99 ms | mean ms | min ms | max ms | "
             "inferences/s | peak memory | p50 vs first |\n");
  fprintf(f, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  for (size_t i = 0; i < b->n_batches; i++) {
    const tc_bench_batch *bb = &b->batches[i];
    for (size_t r = 0; r < bb->n_rows; r++) {
      const tc_bench_row *row = &bb->rows[r];
      const tc_bench_stats *s = &row->stats;
      fputc('|', f);
      md_cell(f, row_label(b, row));
      md_cell(f, tc_bench_runtime_name(row->rt));
      tc_bench_format_bytes(row->peak_bytes, mem, sizeof mem);
      fprintf(f, " %lld | %s | %s | %s | %s | %s | %s | %.1f | %s | %.2fx |\n",
              (long long)bb->batch, fmt_ms(s->p50, c[0], 32), fmt_ms(s->p90, c[1], 32),
              fmt_ms(s->p99, c[2], 32), fmt_ms(s->mean, c[3], 32), fmt_ms(s->min, c[4], 32),
              fmt_ms(s->max, c[5], 32), row->throughput, mem, row->ratio);
    }
  }
  if (b->n_batches && b->batches[0].n_rows > 1) {
    const tc_bench_row *ref = &b->batches[0].rows[0];
    fprintf(f, "\n### Accuracy vs %s (%s)\n\n", row_label(b, ref), tc_bench_runtime_name(ref->rt));
    fprintf(f, "| model | runtime | batch | output | max abs error | max rel error | cosine |\n");
    fprintf(f, "|---|---|--:|---|--:|--:|--:|\n");
    for (size_t i = 0; i < b->n_batches; i++) {
      const tc_bench_batch *bb = &b->batches[i];
      for (size_t r = 1; r < bb->n_rows; r++) {
        const tc_bench_row *row = &bb->rows[r];
        for (size_t k = 0; k < row->n_acc; k++) {
          fputc('|', f);
          md_cell(f, row_label(b, row));
          md_cell(f, tc_bench_runtime_name(row->rt));
          snprintf(num, sizeof num, "%lld", (long long)bb->batch);
          md_cell(f, num);
          md_cell(f, row->acc[k].output);
          fprintf(f, " %.3g | %.3g | %.6f |\n", row->acc[k].max_abs, row->acc[k].max_rel,
                  row->acc[k].cos);
        }
      }
    }
  }
  if (o->fail_if_slower > 0 || o->has_max_error) {
    fprintf(f, "\n**Gates: %s**\n", b->n_failures ? "FAILED" : "passed");
    for (size_t i = 0; i < b->n_failures; i++)
      fprintf(f, "%s- %s\n", i ? "" : "\n", b->failures[i]);
  }
  return close_tmp(f, tmp, path);
}
