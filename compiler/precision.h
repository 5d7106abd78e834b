/* `tacoc optimize --precision fp16|bf16|int8`: the convert-half pass (or
 * quantize-dynamic for int8), checked
 * against the float32 model in libtacort on validation inputs (--calib DIR or
 * --calib-random N), with the nodes that break the accuracy budget moved
 * back to float32 until the model meets it. docs/cli.md describes the
 * options, the fallback and the report. */
#ifndef TC_PRECISION_H
#define TC_PRECISION_H

#include <stdbool.h>
#include <stdio.h>

#include "json.h"
#include "pipeline.h"

#define TC_PRECISION_MAX_SHAPES 16
#define TC_PRECISION_DEFAULT_SETS 4
/* tc_precision_options.type for --precision auto */
#define TC_PRECISION_AUTO (-1)

typedef struct tc_precision_shape {
  const char *name; /* a symbolic dim, or an input (then dims is its whole shape); */
  size_t name_len;  /* not NUL-terminated: it points into argv */
  size_t rank;
  int64_t dims[8];
} tc_precision_shape;

enum { TC_CALIB_MINMAX, TC_CALIB_PERCENTILE, TC_CALIB_ENTROPY };

typedef struct tc_precision_options {
  /* 0: float32, nothing to do; TC_DTYPE_F16 or TC_DTYPE_BF16 (convert-half);
   * TC_DTYPE_I8: int8 (quantize-dynamic, or quantize-static with int8_static);
   * TC_PRECISION_AUTO: per region the lowest of these that keeps the budget
   * and is faster in libtacort, measured */
  int32_t type;
  bool keep_io_types;   /* --keep-io-types */
  bool int8_mode_given; /* --int8-mode given */
  bool int8_static;     /* --int8-mode static: calibrated QDQ (quantize-static) */
  /* static int8's QDQ form: QDQ on the quantized nodes' outputs too (what
   * ONNX Runtime fuses into QLinearConv / QLinearAdd / QGemm; libtacort
   * binds either form), unless --qdq-inputs-only; tc_precision_check_args
   * sets it. --precision auto's candidates keep the input-only form. */
  bool qdq_outputs;
  bool qdq_outputs_given; /* --qdq-outputs (the default, said explicitly) */
  bool qdq_inputs_only;   /* --qdq-inputs-only: QDQ on the quantized nodes' inputs only */
  int calib_method;       /* --calib-method: TC_CALIB_MINMAX (default), _PERCENTILE, _ENTROPY */
  bool calib_method_given;
  const char *calib_dir;   /* --calib DIR, or NULL */
  long calib_random;       /* --calib-random N; -1 when not given */
  double budget_cos;       /* --budget cos=C (default 0.999; 0.99 for int8) */
  bool budget_cos_given;   /* cos was in --budget */
  double budget_max_abs;   /* --budget max-abs=A; negative: no bound */
  bool validation_given;   /* any of --calib, --calib-random, --budget */
  bool shapes_for_codegen; /* --shape may size the tuner's inputs (set by optimize) */
  tc_precision_shape shapes[TC_PRECISION_MAX_SHAPES]; /* --shape NAME=DIMS */
  size_t n_shapes;
} tc_precision_options;

typedef struct tc_precision_result tc_precision_result;

/* One half-precision (or int8) node of the written model: the relative error
 * ||half - float32|| / ||float32|| of its output on the validation inputs. */
typedef struct tc_precision_layer {
  const char *layer, *op;
  double error;
} tc_precision_layer;

/* Sets the defaults (float32, 4 random sets when validating, cos 0.999). */
void tc_precision_defaults(tc_precision_options *o);
/* True for the options tc_precision_parse_arg takes: --precision,
 * --keep-io-types, --calib, --calib-random, --budget, --shape, --int8-mode. */
bool tc_precision_is_option(const char *s);
/* Parses the precision option argv[*i], moving *i past its value: 0, or
 * TC_EXIT_ERROR after printing a usage error. */
int tc_precision_parse_arg(int argc, char **argv, int *i, tc_precision_options *o);
/* After parsing: a usage error (printed, TC_EXIT_ERROR) for validation
 * options without --precision fp16/bf16/int8, else 0. */
int tc_precision_check_args(tc_precision_options *o);
/* Converts *m (the model after the -O pipeline) to o->type: runs the
 * convert-half (or quantize-dynamic) pass, validates the result against the float32 model in
 * libtacort and moves nodes back to float32 until the budget holds. On
 * success *m is the converted model (the float32 one is freed), the pass is
 * appended to p's records, and *res (caller frees with
 * tc_precision_result_free) says what was done. Prints warnings on stderr;
 * on failure prints the error and returns TC_EXIT_ERROR, leaving *m as it
 * was. When p already ran convert-half (--passes), only warns that the
 * conversion is not validated. model_name names the model in messages. */
int tc_precision_apply(tc_model **m, const char *model_name, const tc_pass_options *popt,
                       const tc_precision_options *o, tc_pipeline *p, tc_precision_result **res);
/* Prints the validation results and the nodes kept in float32 to f. */
void tc_precision_print(const tc_precision_result *r, FILE *f);
/* Writes the key "precision" and its object (docs/cli.md) into an open JSON object. */
void tc_precision_json(const tc_precision_result *r, tc_json *j);
/* The per-layer errors of a validated conversion (*n = 0 when none). */
const tc_precision_layer *tc_precision_layers(const tc_precision_result *r, size_t *n);
/* Frees r (NULL is fine). */
void tc_precision_result_free(tc_precision_result *r);

/* Generated inputs for every input of m without an initializer, sized by
 * the --shape options in o (symbolic dims not given: 1), as the precision
 * checks generate them. names[i] is malloc'd; arrays[i] is released with
 * tc_ndarray_release. 0, or TC_EXIT_ERROR after printing the error. */
int tc_precision_random_inputs(const tc_model *m, const tc_precision_options *o, uint64_t *state,
                               char **names, tc_ndarray *arrays, size_t cap, size_t *n);

#endif
