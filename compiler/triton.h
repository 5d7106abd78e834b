/* `tacoc optimize --triton-repo DIR`: a Triton Inference Server model
 * repository for the optimized model, served by Triton's ONNX Runtime backend:
 *
 *   DIR/NAME/config.pbtxt      platform "onnxruntime_onnx", inputs, outputs,
 *                              max_batch_size, dynamic_batching
 *   DIR/NAME/1/model.onnx      the model (and its external data file, if any)
 *
 * max_batch_size and dynamic_batching come from a batch-latency curve
 * measured in libtacort (triton.c has the rule, docs/cli.md explains it). */
#ifndef TC_TRITON_H
#define TC_TRITON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ir.h"
#include "json.h"

#define TC_TRITON_MAX_POINTS 24
#define TC_TRITON_DEFAULT_MAX_BATCH 64

typedef struct tc_triton_opts {
  const char *dir;             /* --triton-repo */
  const char *name;            /* --triton-name, NULL: OUT's file name without .onnx */
  int64_t max_batch;           /* --triton-max-batch: largest batch measured (0: no batching) */
  const tc_save_options *save; /* how OUT was saved (external data) */
} tc_triton_opts;

/* One point of the batch-latency curve. */
typedef struct tc_triton_point {
  int64_t batch;
  double p50_ms;     /* median latency of one run at this batch */
  double throughput; /* batch / p50, inferences per second */
} tc_triton_point;

/* What was written and why. */
typedef struct tc_triton_plan {
  char name[256];
  char model_dir[4096];   /* DIR/NAME */
  char model_path[4200];  /* DIR/NAME/1/model.onnx */
  char config_path[4200]; /* DIR/NAME/config.pbtxt */
  const char *batch_dim;  /* the shared symbolic batch dim (owned by the model), NULL: none */
  char unbatched[256];    /* why max_batch_size is 0 (empty when it is not) */
  int64_t max_batch_limit;
  int64_t max_batch_size; /* 0: no batching, full dims */
  int64_t preferred[TC_TRITON_MAX_POINTS];
  size_t n_preferred;
  uint64_t queue_delay_us;
  tc_triton_point curve[TC_TRITON_MAX_POINTS];
  size_t n_curve;
} tc_triton_plan;

/* Writes the repository for m (already saved as OUT with o->save) into
 * o->dir, measures the batch curve of the written model when its inputs and
 * outputs share a symbolic dim 0, and fills plan. Prints the error and
 * returns TC_EXIT_ERROR on failure (an input or output Triton cannot
 * describe, a bad name, a file that cannot be written, a run that fails). */
int tc_triton_write(const tc_model *m, const char *out, const tc_triton_opts *o,
                    tc_triton_plan *plan);
/* Prints what was written and the curve on f. */
void tc_triton_print(const tc_triton_plan *plan, FILE *f);
/* Writes plan as the value of the current key of j (an object). */
void tc_triton_json(tc_json *j, const tc_triton_plan *plan);

#endif
