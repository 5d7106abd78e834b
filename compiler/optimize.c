/* `tacoc optimize`: load, run the pass pipeline, write the model, and report
 * what changed (a table on stdout, JSON with --report; docs/cli.md). */
#include "optimize.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cuda_target.h"
#include "inspect.h"
#include "json.h"
#include "onnx_io.h"
#include "pipeline.h"
#include "precision.h"
#include "report_html.h"
#include "triton.h"
#include "tune.h"

typedef struct opt_args {
  const char *in, *out, *passes, *report, *dump_after;
  int level;
  bool quiet, explain;
  tc_pass_options popt;
  tc_save_options save;
  /* --precision, --keep-io-types, --calib, ... (precision.h), and what they did */
  tc_precision_options prec;
  tc_precision_result *prec_res;
  /* --codegen, --tune, ... (tune.h), and what they did */
  tc_tune_options tune;
  tc_tune_result *tune_res;
  /* --target cuda, --cuda-arch (cuda_target.h), and what it did */
  tc_cuda_target_options cuda;
  tc_cuda_target_result *cuda_res;
  const char *reports[4]; /* every --report given (report is the last) */
  size_t n_reports;
  bool bench; /* --bench, --bench-runtime */
  tc_bench_runtime bench_runtimes[2];
  size_t n_bench_runtimes;
  tc_triton_opts triton; /* --triton-repo (dir NULL: none), --triton-name, --triton-max-batch */
} opt_args;

/* --bench, --bench-runtime R, --triton-repo DIR, --triton-name NAME,
 * --triton-max-batch N (each also as --opt=VALUE). */
static const char *const serving_options[] = {
    "--bench", "--bench-runtime", "--triton-repo", "--triton-name", "--triton-max-batch", NULL};

static bool is_serving_option(const char *s) {
  for (const char *const *o = serving_options; *o; o++) {
    size_t n = strlen(*o);
    if (strncmp(s, *o, n) == 0 && (s[n] == '\0' || (s[n] == '=' && o != serving_options)))
      return true;
  }
  return false;
}

/* "tacort", "ort", "tacort,ort" or "ort,tacort". */
static int parse_bench_runtimes(const char *v, opt_args *a) {
  char buf[64];
  snprintf(buf, sizeof buf, "%s", v);
  a->n_bench_runtimes = 0;
  for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
    bool known = strcmp(t, "tacort") == 0 || strcmp(t, "ort") == 0;
    tc_bench_runtime rt = strcmp(t, "ort") == 0 ? TC_BENCH_ORT : TC_BENCH_TACORT;
    if (!known || a->n_bench_runtimes == 2 ||
        (a->n_bench_runtimes == 1 && a->bench_runtimes[0] == rt))
      break;
    a->bench_runtimes[a->n_bench_runtimes++] = rt;
    if (!save || !*save)
      return 0;
  }
  return tc_cli_usage_error("--bench-runtime takes tacort, ort or both (tacort,ort), got '%s'", v);
}

static int parse_serving_option(int argc, char **argv, int *i, opt_args *a) {
  const char *s = argv[*i], *eq = strchr(s, '='), *v;
  char name[32];
  snprintf(name, sizeof name, "%.*s", (int)(eq ? eq - s : (ptrdiff_t)strlen(s)), s);
  if (strcmp(name, "--bench") == 0) {
    a->bench = true;
    return 0;
  }
  if (eq)
    v = eq + 1;
  else if (*i + 1 < argc)
    v = argv[++*i];
  else
    return tc_cli_usage_error("%s needs a value", s);
  if (strcmp(name, "--bench-runtime") == 0) {
    a->bench = true;
    if (parse_bench_runtimes(v, a))
      return TC_EXIT_ERROR;
    /* A missing ONNX Runtime helper is an error before anything runs, as in `tacoc bench`. */
    for (size_t r = 0; r < a->n_bench_runtimes; r++)
      if (a->bench_runtimes[r] == TC_BENCH_ORT && tc_bench_ort_check())
        return TC_EXIT_ERROR;
  } else if (strcmp(name, "--triton-repo") == 0) {
    if (!*v)
      return tc_cli_usage_error("--triton-repo needs a folder");
    a->triton.dir = v;
  } else if (strcmp(name, "--triton-name") == 0) {
    a->triton.name = v;
  } else {
    char *end;
    errno = 0;
    long long mb = strtoll(v, &end, 10);
    if (errno || end == v || *end || mb < 0 || mb > (1 << 20))
      return tc_cli_usage_error("--triton-max-batch needs a batch size from 0 to 1048576, got "
                                "'%s'",
                                v);
    a->triton.max_batch = mb;
  }
  return 0;
}

static int parse_args(int argc, char **argv, opt_args *a) {
  a->level = 2;
  tc_precision_defaults(&a->prec);
  a->triton.max_batch = TC_TRITON_DEFAULT_MAX_BATCH;
  for (int i = 0; i < argc; i++) {
    const char *s = argv[i];
    if (strcmp(s, "-o") == 0 || strcmp(s, "--output") == 0) {
      if (++i >= argc)
        return tc_cli_usage_error("%s needs a file name", s);
      a->out = argv[i];
    } else if (strncmp(s, "-O", 2) == 0 && s[2] >= '0' && s[2] <= '3' && !s[3]) {
      a->level = s[2] - '0';
    } else if (strcmp(s, "--passes") == 0 || strcmp(s, "--report") == 0 ||
               strcmp(s, "--dump-after") == 0 || strcmp(s, "--fold-limit") == 0) {
      if (++i >= argc)
        return tc_cli_usage_error("%s needs a value", s);
      if (strcmp(s, "--passes") == 0)
        a->passes = argv[i];
      else if (strcmp(s, "--report") == 0) {
        if (a->n_reports == sizeof a->reports / sizeof *a->reports)
          return tc_cli_usage_error("--report is given more than 4 times");
        a->report = a->reports[a->n_reports++] = argv[i];
      } else if (strcmp(s, "--dump-after") == 0)
        a->dump_after = argv[i];
      else if (!tc_cli_parse_size(argv[i], &a->popt.fold_limit))
        return tc_cli_usage_error("--fold-limit needs a size in bytes");
    } else if (strcmp(s, "--compat") == 0) {
      if (++i >= argc || strcmp(argv[i], "ort") != 0)
        return tc_cli_usage_error("--compat takes 'ort'");
      a->popt.compat_ort = true;
    } else if (strcmp(s, "--explain") == 0) {
      a->explain = true;
    } else if (strcmp(s, "--quiet") == 0 || strcmp(s, "-q") == 0) {
      a->quiet = true;
    } else if (strcmp(s, "--external-data") == 0) {
      /* The file name is optional: take the next word unless it is an option or a model. */
      a->save.external_data = "";
      if (i + 1 < argc && argv[i + 1][0] != '-' && !tc_cli_ends_with(argv[i + 1], ".onnx"))
        a->save.external_data = argv[++i];
    } else if (strncmp(s, "--external-data=", 16) == 0) {
      a->save.external_data = s + 16;
    } else if (strcmp(s, "--external-data-threshold") == 0) {
      if (++i >= argc || !tc_cli_parse_size(argv[i], &a->save.external_threshold))
        return tc_cli_usage_error("--external-data-threshold needs a size in bytes");
    } else if (is_serving_option(s)) {
      int rc = parse_serving_option(argc, argv, &i, a);
      if (rc)
        return rc;
    } else if (tc_precision_is_option(s)) {
      if (tc_precision_parse_arg(argc, argv, &i, &a->prec))
        return TC_EXIT_ERROR;
    } else if (tc_tune_is_option(s)) {
      if (tc_tune_parse_arg(argc, argv, &i, &a->tune))
        return TC_EXIT_ERROR;
    } else if (tc_cuda_target_is_option(s)) {
      if (tc_cuda_target_parse_arg(argc, argv, &i, &a->cuda))
        return TC_EXIT_ERROR;
    } else if (s[0] == '-' && s[1]) {
      return tc_cli_usage_error("optimize: unknown option '%s'", s);
    } else if (!a->in) {
      a->in = s;
    } else {
      return tc_cli_usage_error("optimize: more than one model given ('%s' and '%s')", a->in, s);
    }
  }
  a->prec.shapes_for_codegen = a->tune.codegen;
  if (tc_precision_check_args(&a->prec))
    return TC_EXIT_ERROR;
  if (!a->in)
    return tc_cli_usage_error("optimize: no model given");
  if (!a->out)
    return tc_cli_usage_error("optimize: no output given (-o OUT)");
  return 0;
}

static void print_table(const opt_args *a, const tc_pipeline *p, const tc_model_summary *before,
                        const tc_model_summary *after, FILE *f) {
  fprintf(f, "tacoc: %s -> %s (%s%s)\n", a->in, a->out, a->passes ? "--passes " : "-O",
          a->passes ? a->passes : (const char[]){(char)('0' + a->level), 0});
  bool any = false;
  for (size_t i = 0; i < p->n; i++) {
    const tc_pass_record *r = &p->records[i];
    if (!r->n_kinds)
      continue;
    if (!any)
      fprintf(f, "\n  %-26s %15s  %s\n", "pass", "nodes", "rewrites");
    any = true;
    char nodes[32];
    snprintf(nodes, sizeof nodes, "%zu -> %zu", r->nodes_before, r->nodes_after);
    fprintf(f, "  %-26s %15s  ", r->name, nodes);
    for (size_t k = 0; k < r->n_kinds; k++)
      fprintf(f, "%s%s x%zu", k ? ", " : "", r->rewrites[k].kind, r->rewrites[k].count);
    fputc('\n', f);
  }
  if (!any)
    fprintf(f, "\n  no pass changed the model\n");
  fprintf(f, "\n  %-26s %8s %8s\n", "op", "before", "after");
  /* Merge the two sorted histograms. */
  size_t i = 0, j = 0;
  while (i < before->ops.n || j < after->ops.n) {
    int c = i >= before->ops.n  ? 1
            : j >= after->ops.n ? -1
                                : strcmp(before->ops.items[i].key, after->ops.items[j].key);
    const char *key = c <= 0 ? before->ops.items[i].key : after->ops.items[j].key;
    size_t b = c <= 0 ? before->ops.items[i++].count : 0;
    size_t n = c >= 0 ? after->ops.items[j++].count : 0;
    if (b != n)
      fprintf(f, "  %-26s %8zu %8zu\n", key, b, n);
  }
  fprintf(f, "  %-26s %8zu %8zu\n", "(all nodes)", before->nodes, after->nodes);
  fprintf(f, "  %-26s %8zu %8zu\n", "(parameter bytes)", before->params.bytes, after->params.bytes);
}

static void json_ops(tc_json *j, const char *key, const tc_model_summary *s) {
  tc_json_key(j, key);
  tc_json_begin_object(j);
  for (size_t i = 0; i < s->ops.n; i++) {
    tc_json_key(j, s->ops.items[i].key);
    tc_json_uint(j, s->ops.items[i].count);
  }
  tc_json_end_object(j);
}

static bool report_is_html(const char *path) {
  return tc_cli_ends_with(path, ".html") || tc_cli_ends_with(path, ".htm");
}

static int write_report(const opt_args *a, const char *path, const tc_pipeline *p,
                        const tc_model_summary *before, const tc_model_summary *after,
                        const tc_opt_report *extra) {
  if (report_is_html(path))
    return tc_report_write_html(extra, path);
  FILE *f = fopen(path, "w");
  if (!f)
    return tc_cli_error("%s: cannot write the report: %s", path, strerror(errno));
  tc_json j;
  tc_json_init(&j, f);
  tc_json_begin_object(&j);
  tc_json_key(&j, "schema");
  tc_json_string(&j, "tacoc.optimize-report/1");
  tc_json_key(&j, "input");
  tc_json_string(&j, a->in);
  tc_json_key(&j, "output");
  tc_json_string(&j, a->out);
  tc_json_key(&j, "level");
  if (a->passes)
    tc_json_null(&j);
  else
    tc_json_int(&j, a->level);
  tc_json_key(&j, "passes");
  tc_json_begin_array(&j);
  for (size_t i = 0; i < p->n; i++) {
    const tc_pass_record *r = &p->records[i];
    tc_json_begin_object(&j);
    tc_json_key(&j, "name");
    tc_json_string(&j, r->name);
    tc_json_key(&j, "nodes_before");
    tc_json_uint(&j, r->nodes_before);
    tc_json_key(&j, "nodes_after");
    tc_json_uint(&j, r->nodes_after);
    tc_json_key(&j, "initializers_before");
    tc_json_uint(&j, r->inits_before);
    tc_json_key(&j, "initializers_after");
    tc_json_uint(&j, r->inits_after);
    tc_json_key(&j, "microseconds");
    tc_json_uint(&j, (unsigned long long)(r->ms * 1000.0));
    tc_json_key(&j, "rewrites");
    tc_json_begin_object(&j);
    for (size_t k = 0; k < r->n_kinds; k++) {
      tc_json_key(&j, r->rewrites[k].kind);
      tc_json_uint(&j, r->rewrites[k].count);
    }
    tc_json_end_object(&j);
    tc_json_end_object(&j);
  }
  tc_json_end_array(&j);
  const tc_model_summary *s[2] = {before, after};
  const char *names[2] = {"before", "after"};
  for (int k = 0; k < 2; k++) {
    tc_json_key(&j, names[k]);
    tc_json_begin_object(&j);
    tc_json_key(&j, "nodes");
    tc_json_uint(&j, s[k]->nodes);
    tc_json_key(&j, "parameter_bytes");
    tc_json_uint(&j, s[k]->params.bytes);
    json_ops(&j, "ops", s[k]);
    tc_json_end_object(&j);
  }
  tc_precision_json(a->prec_res, &j);
  tc_tune_json(a->tune_res, &j);
  tc_cuda_target_json(a->cuda_res, &j);
  if (tc_report_json_fields(&j, extra)) {
    fclose(f);
    return tc_cli_error("out of memory");
  }
  tc_json_end_object(&j);
  fputc('\n', f);
  if (fclose(f) != 0)
    return tc_cli_error("%s: cannot write the report: %s", path, strerror(errno));
  return 0;
}

/* What --report, --bench and --triton-repo gather after the passes. */
typedef struct opt_extras {
  tc_capture explain; /* the passes' --explain lines, kept for the report */
  FILE *explain_f;
  tc_bench *bench;
  tc_triton_plan *triton;
} opt_extras;

/* --bench: the original against the optimized model, in the bench code. */
static int run_bench(const opt_args *a, opt_extras *x) {
  if (!(x->bench = calloc(1, sizeof *x->bench)))
    return tc_cli_error("out of memory");
  tc_bench_opts *o = &x->bench->o;
  o->models[0] = a->in;
  o->models[1] = a->out;
  o->n_models = 2;
  o->allow_native_code = a->tune.codegen; /* the kernels this run generated */
  o->runtimes[0] = TC_BENCH_TACORT;
  o->n_runtimes = 1;
  if (a->n_bench_runtimes) {
    memcpy(o->runtimes, a->bench_runtimes, sizeof o->runtimes);
    o->n_runtimes = a->n_bench_runtimes;
  }
  o->warmup = 3;
  o->iters = 20;
  o->min_cos = o->max_abs = o->max_rel = NAN;
  if (!a->quiet)
    putchar('\n');
  return tc_bench_run(x->bench, a->quiet ? NULL : stdout);
}

/* --triton-repo: the repository for the optimized model. */
static int run_triton(const opt_args *a, const tc_model *m, opt_extras *x) {
  if (!(x->triton = calloc(1, sizeof *x->triton)))
    return tc_cli_error("out of memory");
  tc_triton_opts o = a->triton;
  o.save = &a->save;
  if (tc_triton_write(m, a->out, &o, x->triton))
    return TC_EXIT_ERROR;
  if (!a->quiet)
    tc_triton_print(x->triton, stdout);
  return 0;
}

static void free_extras(opt_extras *x) {
  if (x->explain_f)
    fclose(x->explain_f);
  tc_capture_free(&x->explain);
  tc_bench_free(x->bench);
  free(x->triton);
}

int tc_cmd_optimize(int argc, char **argv) {
  opt_args a = {0};
  int rc = parse_args(argc, argv, &a);
  if (rc)
    return rc;
  tc_diag *d = tc_diag_new();
  if (!d)
    return tc_cli_error("out of memory");
  tc_pipeline *p = calloc(1, sizeof *p);
  tc_model_summary before = {0}, after = {0};
  tc_model *m = NULL;
  opt_extras x = {0};
  rc = TC_EXIT_ERROR;
  if (!p) {
    tc_cli_error("out of memory");
    goto done;
  }
  if (a.passes) {
    if (tc_pipeline_parse(p, a.passes, d) != TC_STATUS_OK) {
      tc_cli_usage_error("%s", d->reason);
      goto done;
    }
  } else {
    tc_pipeline_for_level(p, a.level);
  }
  p->dump_after = a.dump_after;
  p->dump = stderr;
  a.popt.level = a.level;
  a.popt.half_type = a.prec.type > 0 ? a.prec.type : 0; /* auto: chosen later */
  a.popt.int8_follows = a.prec.type == TC_DTYPE_I8 || a.prec.type == TC_PRECISION_AUTO;
  a.popt.qdq_outputs = a.prec.qdq_outputs;
  a.popt.keep_io_types = a.prec.keep_io_types;
  a.popt.explain = a.explain ? stderr : NULL;
  if (a.report &&
      !(a.popt.explain = x.explain_f = tc_capture_open(&x.explain, a.explain ? stderr : NULL))) {
    tc_cli_error("cannot collect the rejected candidates: %s", strerror(errno));
    goto done;
  }
  if (!(m = tc_cli_load(a.in, d)))
    goto done;
  if (tc_model_summarize(m, &before) != 0) {
    tc_cli_error("out of memory");
    goto done;
  }
  tc_diag_clear(d);
  if (tc_pipeline_run(p, m, &a.popt, d) != TC_STATUS_OK) {
    tc_diag_set_file(d, a.in);
    tc_cli_report(d);
    goto done;
  }
  if (tc_precision_apply(&m, a.in, &a.popt, &a.prec, p, &a.prec_res))
    goto done;
  if (x.explain_f) {
    fclose(x.explain_f);
    x.explain_f = NULL;
    a.popt.explain = NULL;
  }
  if (tc_model_summarize(m, &after) != 0) {
    tc_cli_error("out of memory");
    goto done;
  }
  a.tune.output = a.out;
  a.tune.shapes = &a.prec;
  a.cuda.output = a.out;
  if (!a.tune.codegen && (a.passes || a.level > 0))
    tc_tune_strip(m); /* -O0 keeps the model as it is */
  if (!a.cuda.on && (a.passes || a.level > 0))
    tc_cuda_target_strip(m);
  if (tc_tune_apply(m, &a.tune, &a.tune_res) || tc_cuda_target_apply(m, &a.cuda, &a.cuda_res)) {
    tc_tune_commit(a.tune_res, true);
    tc_cuda_target_commit(a.cuda_res, true);
    goto done;
  }
  if (tc_model_save_file(m, a.out, &a.save, d) != TC_STATUS_OK) {
    tc_tune_commit(a.tune_res, true);
    tc_cuda_target_commit(a.cuda_res, true);
    tc_cli_report(d);
    goto done;
  }
  if (tc_tune_commit(a.tune_res, false) || tc_cuda_target_commit(a.cuda_res, false))
    goto done;
  if (!a.quiet)
    print_table(&a, p, &before, &after, stdout);
  if (!a.quiet)
    tc_precision_print(a.prec_res, stdout);
  if (!a.quiet)
    tc_tune_print(a.tune_res, stdout);
  if (!a.quiet)
    tc_cuda_target_print(a.cuda_res, stdout);
  if (a.bench && run_bench(&a, &x))
    goto done;
  if (a.triton.dir && run_triton(&a, m, &x))
    goto done;
  /* Per-layer precision errors for the report's chart. */
  size_t n_layers = 0;
  const tc_precision_layer *layers = tc_precision_layers(a.prec_res, &n_layers);
  tc_report_layer_error *lerr = n_layers ? calloc(n_layers, sizeof *lerr) : NULL;
  if (n_layers && !lerr) {
    tc_cli_error("out of memory");
    goto done;
  }
  for (size_t i = 0; i < n_layers; i++)
    lerr[i] = (tc_report_layer_error){layers[i].layer, layers[i].op, layers[i].error};
  tc_opt_report extra = {.input = a.in,
                         .output = a.out,
                         .level = a.passes ? -1 : a.level,
                         .passes = a.passes,
                         .pipeline = p,
                         .before = &before,
                         .after = &after,
                         .explain = x.explain.buf,
                         .bench = x.bench,
                         .triton = x.triton,
                         .layer_errors = lerr,
                         .n_layer_errors = n_layers,
                         .layer_error_metric = "relative error of the node's output vs float32",
                         .tuning = tc_tune_report(a.tune_res)};
  int report_rc = 0;
  for (size_t i = 0; i < a.n_reports && !report_rc; i++)
    report_rc = write_report(&a, a.reports[i], p, &before, &after, &extra);
  free(lerr);
  if (report_rc)
    goto done;
  if (fflush(stdout) != 0) {
    tc_cli_error("writing the tables: %s", strerror(errno));
    goto done;
  }
  rc = 0;
done:
  tc_precision_result_free(a.prec_res);
  tc_tune_result_free(a.tune_res);
  tc_cuda_target_result_free(a.cuda_res);
  free_extras(&x);
  tc_model_summary_free(&before);
  tc_model_summary_free(&after);
  tc_model_free(m);
  tc_diag_free(d);
  free(p);
  return rc;
}

int tc_cmd_passes(void) {
  size_t n;
  const tc_pass_def *all = tc_pass_all(&n);
  for (size_t i = 0; i < n; i++)
    printf("%-28s %s\n", all[i].name, all[i].doc);
  for (int level = 1; level <= 3; level++) {
    tc_pipeline p = {0};
    tc_pipeline_for_level(&p, level);
    printf("\n-O%d:", level);
    for (size_t i = 0; i < p.n; i++)
      printf("%s%s", i ? "," : " ", p.passes[i]->name);
    putchar('\n');
  }
  return 0;
}
