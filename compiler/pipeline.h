/* The pass manager: named pipelines per -O level, or an explicit pass list,
 * run over the model with the IR verified after every pass. */
#ifndef TC_PIPELINE_H
#define TC_PIPELINE_H

#include <stdio.h>

#include "pass.h"

#define TC_PIPELINE_MAX 64

typedef struct tc_pass_record {
  const char *name;
  size_t nodes_before, nodes_after; /* main graph and subgraphs */
  size_t inits_before, inits_after;
  struct {
    const char *kind;
    size_t count;
  } rewrites[TC_PASS_MAX_KINDS];
  size_t n_kinds;
  double ms;
} tc_pass_record;

typedef struct tc_pipeline {
  const tc_pass_def *passes[TC_PIPELINE_MAX];
  size_t n;
  const char *dump_after; /* pass name, "all", or NULL */
  FILE *dump;             /* where dumps go */
  tc_pass_record records[TC_PIPELINE_MAX];
} tc_pipeline;

/* Fills p with the pipeline of -O level (0..3). */
void tc_pipeline_for_level(tc_pipeline *p, int level);
/* Fills p from a comma-separated pass list; INVALID naming an unknown pass. */
tc_status tc_pipeline_parse(tc_pipeline *p, const char *list, tc_diag *diag);
/* Runs p over m; records statistics in p->records. Stops at the first pass
 * that fails or leaves the IR invalid (diag names the pass). */
tc_status tc_pipeline_run(tc_pipeline *p, tc_model *m, const tc_pass_options *opt, tc_diag *diag);
/* Writes a readable listing of g (and its subgraphs) to f: one node per line. */
void tc_graph_dump(const tc_graph *g, FILE *f, int indent);

#endif
