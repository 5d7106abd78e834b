/* The reports of `tacoc optimize --report FILE.json|FILE.html`: what the JSON
 * report (tacoc.optimize-report/1) adds beyond the per-pass table and op
 * counts, and the self-contained HTML report (inline CSS and SVG charts, a
 * small script that only sorts tables; readable offline and without scripts).
 *
 * The HTML is a list of sections, each written only when the report has its
 * data: a section never shows an empty chart or table. A new kind of data
 * (precision decisions, tuning) adds a field to tc_opt_report, a JSON key
 * and a section function in report_html.c that returns early without it. */
#ifndef TC_REPORT_HTML_H
#define TC_REPORT_HTML_H

#include <stdbool.h>
#include <stdio.h>

#include "bench_priv.h"
#include "inspect.h"
#include "json.h"
#include "pipeline.h"
#include "triton.h"

/* A stream whose writes go to an echo stream (or nowhere) and are kept in
 * memory: what the passes' --explain output (tc_pass_options.explain) is
 * pointed at so that the report can list the rejected candidates. */
typedef struct tc_capture {
  FILE *echo; /* NULL: writes are only kept */
  char *buf;  /* NUL-terminated; owned, freed by tc_capture_free */
  size_t len, cap;
  bool oom; /* a write could not be kept */
} tc_capture;

/* Opens the capturing stream over c (zeroed by the caller); NULL on failure.
 * Close it with fclose before reading c->buf. */
FILE *tc_capture_open(tc_capture *c, FILE *echo);
/* Frees what c holds. */
void tc_capture_free(tc_capture *c);

/* One layer's error against the original model (precision decisions). */
typedef struct tc_report_layer_error {
  const char *layer, *op;
  double error;
} tc_report_layer_error;

/* The tuner's decisions (tune.c fills it from its result). */
typedef struct tc_report_tune_cand {
  const char *name;
  double median_us; /* NAN: not measured */
} tc_report_tune_cand;
typedef struct tc_report_tune_decision {
  const char *signature, *op, *winner, *reason;
  size_t nodes;
  bool cached;
  const tc_report_tune_cand *cands; /* cands[0] is libtacort's own kernel */
  size_t n_cands;
} tc_report_tune_decision;
typedef struct tc_report_tuning {
  const char *mode, *cpu, *library, *note; /* library: NULL when none was kept */
  bool model_checked;
  double builtin_ms, generated_ms; /* whole model, when checked */
  const tc_report_tune_decision *d;
  size_t n;
} tc_report_tuning;

/* Everything a report shows; optional parts are NULL / empty. Nothing is owned. */
typedef struct tc_opt_report {
  const char *input, *output;
  int level;          /* -O level, -1 when passes is set */
  const char *passes; /* --passes list, or NULL */
  const tc_pipeline *pipeline;
  const tc_model_summary *before, *after;
  const char *explain;          /* "PASS: node 'N' (Op): reason" lines, or NULL */
  const tc_bench *bench;        /* --bench: models[0] the original, models[1] the optimized */
  const tc_triton_plan *triton; /* --triton-repo */
  const tc_report_layer_error *layer_errors; /* per-layer precision error; none: no section */
  size_t n_layer_errors;
  const char *layer_error_metric; /* what error is, e.g. "max abs error" */
  const tc_report_tuning *tuning; /* --codegen / --tune */
} tc_opt_report;

/* Adds the report's optional parts to the JSON object open in j: "explain"
 * (the rejected candidates, parsed), "bench" (tacoc.bench/1 fields, or
 * null), "triton" (or null), and "layer_errors" when there are any. -1 on OOM. */
int tc_report_json_fields(tc_json *j, const tc_opt_report *r);
/* Writes the HTML report to path atomically. Prints the error and returns
 * TC_EXIT_ERROR on failure. */
int tc_report_write_html(const tc_opt_report *r, const char *path);

#endif
