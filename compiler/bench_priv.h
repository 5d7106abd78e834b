/* The bench machinery of `tacoc bench` (bench.c, bench_ort.c, bench_report.c),
 * also run from inside `tacoc optimize` (--bench, --triton-repo) through
 * tc_bench_run: the options, the inputs every model gets, and the measured rows. */
#ifndef TC_BENCH_PRIV_H
#define TC_BENCH_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "json.h"
#include "tacort.h"

#define TC_BENCH_MAX_MODELS 16
#define TC_BENCH_MAX_INPUTS 256
#define TC_BENCH_MAX_BATCHES 32
#define TC_BENCH_EXIT_GATE 1

typedef enum tc_bench_runtime { TC_BENCH_TACORT = 0, TC_BENCH_ORT = 1 } tc_bench_runtime;

typedef struct tc_bench_opts {
  const char *models[TC_BENCH_MAX_MODELS];
  size_t n_models;
  tc_bench_runtime runtimes[2];
  size_t n_runtimes;
  int threads;                           /* 0: the runtime's default */
  int64_t batches[TC_BENCH_MAX_BATCHES]; /* --batch; none given: n_batches 0 */
  size_t n_batches;
  long warmup;   /* untimed runs per model and batch */
  long iters;    /* timed runs per model and batch, or */
  double time_s; /* > 0: time rounds for this long per batch */
  const char *json, *markdown;
  double fail_if_slower;            /* 0: no gate */
  double min_cos, max_abs, max_rel; /* NAN: no gate */
  bool has_max_error;
  bool allow_native_code; /* --allow-native-code: models' generated kernels (tacort) */
  int target, device;     /* --target cpu|cuda, --device N: where tacort runs */
} tc_bench_opts;

/* One input, fed to every model. */
typedef struct tc_bench_input {
  char *name;
  int32_t dtype;
  size_t rank;
  int64_t dims[TC_MAX_DIMS]; /* the shape fed before the batch is applied */
  char decl[256];            /* the first model's declared shape, e.g. "[batch, 64]" */
  const char *source;        /* the file it was read from, or NULL: generated */
  tc_ndarray data;           /* what the file held (data NULL when generated) */
  bool batch;                /* dim 0 is the batch dim (a fixed one is rewritten when it differs) */
} tc_bench_input;

typedef struct tc_bench_stats {
  size_t n;
  double p50, p90, p99, mean, min, max;
} tc_bench_stats;

/* Accuracy of one output against the reference row's output of the same name. */
typedef struct tc_bench_acc {
  const char *output; /* owned by the reference row */
  double max_abs, max_rel, cos;
} tc_bench_acc;

/* One model in one runtime at one batch. */
typedef struct tc_bench_row {
  size_t model;
  tc_bench_runtime rt;
  double *lat; /* ms of each timed run, in run order */
  size_t n_lat, cap_lat;
  tc_bench_stats stats;
  double throughput;  /* batch / p50, inferences per second */
  double ratio;       /* p50 / the p50 of the first model in the same runtime */
  int64_t peak_bytes; /* -1: not measured */
  size_t n_out;
  char **out_names;
  tc_ndarray *outs;  /* outputs of the first run, for accuracy; released after comparing */
  tc_bench_acc *acc; /* per output of the reference; NULL for the reference row */
  size_t n_acc;
} tc_bench_row;

typedef struct tc_bench_batch {
  int64_t batch;
  int64_t shapes[TC_BENCH_MAX_INPUTS][TC_MAX_DIMS]; /* the shape fed, per input */
  tc_bench_row *rows;                               /* runtime-major: rows[r * n_models + k] */
  size_t n_rows;
} tc_bench_batch;

typedef struct tc_bench {
  tc_bench_opts o;
  tc_bench_input inputs[TC_BENCH_MAX_INPUTS];
  size_t n_inputs;
  tc_bench_batch *batches;
  size_t n_batches;
  const char *memory_method; /* how tacort's peak memory was measured, NULL: not measured */
  char ort_version[64];      /* set by the ORT helper */
  char **failures;           /* gate failures, one line each */
  size_t n_failures;
  bool progress; /* stderr is a terminal */
} tc_bench;

/* Runs the benchmark that b->o describes (models, runtimes, batches, warm-up,
 * iterations; b is zeroed apart from b->o) on generated inputs, as `tacoc
 * bench` without --input/--shape does, except that a symbolic or unknown dim
 * other than the batch dim is 1. Writes the header and each batch's tables
 * to out (NULL: nothing) and fills b->batches. Prints the error and returns
 * TC_EXIT_ERROR on failure; b is to be freed with tc_bench_free either way. */
int tc_bench_run(tc_bench *b, FILE *out);
/* Frees b and everything it holds (NULL is fine). */
void tc_bench_free(tc_bench *b);
/* Writes the fields of the JSON report (schema tacoc.bench/1: models, inputs,
 * results, gates) into the object open in j. */
void tc_bench_json_fields(tc_json *j, const tc_bench *b);

/* Appends one timed latency to row. -1 on OOM. */
int tc_bench_row_add(tc_bench_row *row, double ms);
/* Name of a runtime ("tacort", "ort"). */
const char *tc_bench_runtime_name(tc_bench_runtime rt);

/* Checks that the ONNX Runtime helper and its Python exist; prints the error
 * and returns -1 when not. */
int tc_bench_ort_check(void);
/* Runs the models of b in ONNX Runtime through tools/ort_runner.py on the
 * inputs (names[i], arrays[i]) at batch bb; fills rows[k] for each model k
 * (latencies, peak memory, outputs). Prints the error and returns -1 on failure. */
int tc_bench_run_ort(tc_bench *b, const tc_bench_batch *bb, tc_bench_row *rows,
                     const char *const *names, const tc_ndarray *arrays);

/* Computes the statistics of every row of bb, and accuracy against rows[0];
 * releases the outputs. Prints the error and returns -1 when an output
 * cannot be compared (missing, or a different shape). */
int tc_bench_finish_batch(tc_bench *b, tc_bench_batch *bb);
/* Prints the latency and accuracy tables of one batch on f. */
void tc_bench_print_batch(const tc_bench *b, const tc_bench_batch *bb, FILE *f);
/* Checks the gates over every batch, recording failures in b. -1 on OOM. */
int tc_bench_check_gates(tc_bench *b);
/* Writes the JSON report (schema tacoc.bench/1) / the Markdown summary to
 * path atomically. Prints the error and returns -1 on failure. */
int tc_bench_write_json(const tc_bench *b, const char *path);
int tc_bench_write_markdown(const tc_bench *b, const char *path);
/* Formats a byte count as "1.5 MiB" into buf. */
void tc_bench_format_bytes(int64_t bytes, char *buf, size_t cap);

#endif
