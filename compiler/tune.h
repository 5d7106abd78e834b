/* The CPU autotuner: chooses, per node, between libtacort's own kernel (the
 * expert path: oneDNN and the hand-written fast kernels) and kernels the LLVM
 * code generator builds for the node's shape (vector width and unroll as
 * tuning knobs), by measurement on this machine; writes the winners into a
 * kernel library beside the model and records them in its metadata
 * (runtime/native.h). A tuning cache keyed by CPU and op signature makes
 * repeat runs fast and reproducible. See docs/ARCHITECTURE.md. */
#ifndef TC_TUNE_H
#define TC_TUNE_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"
#include "json.h"
#include "precision.h"
#include "report_html.h"

typedef enum { TC_TUNE_OFF = 0, TC_TUNE_FAST, TC_TUNE_FULL } tc_tune_mode;

typedef struct tc_tune_options {
  bool codegen;                       /* --codegen cpu (implied by --tune fast|full) */
  tc_tune_mode mode;                  /* --tune */
  double budget_s;                    /* --tune-budget: measuring stops after this many seconds */
  const char *cache;                  /* --tuning-cache FILE, or NULL */
  const char *cpu;                    /* --cpu NAME, or NULL for this machine */
  const char *output;                 /* the optimized model's path: the library goes beside it */
  const tc_precision_options *shapes; /* --shape NAME=DIMS sizes the generated inputs */
} tc_tune_options;

typedef struct tc_tune_result tc_tune_result;

/* The options it takes: --codegen, --tune, --tune-budget, --tuning-cache, --cpu
 * (--shape is parsed with the precision options). */
bool tc_tune_is_option(const char *arg);
/* Parses the option at argv[*i] (advancing *i past its value). Nonzero after
 * printing a usage error. */
int tc_tune_parse_arg(int argc, char **argv, int *i, tc_tune_options *o);

/* Generates kernels for m's candidate nodes, measures them when tuning,
 * builds the library of the winners at "<output>.tacok.tmp" and records it
 * in m's metadata (as "<output file name>.tacok"). Nothing to do (no
 * candidates, no winner) leaves m unchanged. 0 on success; otherwise an
 * error was printed. *res (may be NULL on failure) says what was decided. */
int tc_tune_apply(tc_model *m, const tc_tune_options *o, tc_tune_result **res);
/* Drops a model's records of a kernel library (ai.tacoc.kernel*
 * metadata): what optimize does when it rewrites a model without --codegen,
 * so no stale binding outlives the graph it was made for. */
void tc_tune_strip(tc_model *m);
/* Moves the library into place once the model is written (0 on success);
 * discard removes it instead (the model could not be written). */
int tc_tune_commit(const tc_tune_result *r, bool discard);
void tc_tune_print(const tc_tune_result *r, FILE *f);
/* "tuning": {...} or null. */
void tc_tune_json(const tc_tune_result *r, tc_json *j);
/* The decisions for the HTML report, in memory r owns (valid while r is);
 * NULL for no result or on OOM. */
const tc_report_tuning *tc_tune_report(tc_tune_result *r);
void tc_tune_result_free(tc_tune_result *r);

#endif
