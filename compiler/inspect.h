/* `tacoc inspect`: a summary of a model as text or stable JSON (docs/cli.md). */
#ifndef TC_INSPECT_H
#define TC_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"

typedef struct tc_count_entry {
  char *key; /* op type ("domain:op" outside the default domain) or file name */
  size_t count;
  size_t bytes;
} tc_count_entry;

typedef struct tc_counts {
  tc_count_entry *items;
  size_t n, cap;
} tc_counts;

/* What inspect reports: op histogram (subgraphs included, sorted by key),
 * external files, node and subgraph counts, parameters of the main graph. */
typedef struct tc_model_summary {
  tc_counts ops, ext;
  size_t nodes, subgraphs;
  tc_param_stats params;
  int err;
} tc_model_summary;

/* Fills s for m; 0 on success, -1 on OOM. Free with tc_model_summary_free either way. */
int tc_model_summarize(const tc_model *m, tc_model_summary *s);
void tc_model_summary_free(tc_model_summary *s);
/* Number of nodes of op key in s (0 when absent). */
size_t tc_model_summary_count(const tc_model_summary *s, const char *key);

/* Writes the summary of m (loaded from path) to f. 0 on success. */
int tc_inspect_write(const tc_model *m, const char *path, bool json, FILE *f);

#endif
