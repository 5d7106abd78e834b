/* Helpers shared by the tacoc commands. Exit status: 0 success, 2 any error. */
#ifndef TC_CLI_H
#define TC_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "ir.h"

#define TC_EXIT_ERROR 2

/* Prints "tacoc: error: ..." and a hint to 'tacoc help'; returns TC_EXIT_ERROR. */
int tc_cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "tacoc: error: ..." and returns TC_EXIT_ERROR. */
int tc_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints the diagnostics record as an error line; returns TC_EXIT_ERROR. */
int tc_cli_report(tc_diag *d);
/* Loads a model, printing the error and returning NULL on failure. */
tc_model *tc_cli_load(const char *path, tc_diag *d);
/* Parses a non-negative decimal size. */
bool tc_cli_parse_size(const char *s, size_t *out);
bool tc_cli_ends_with(const char *s, const char *suffix);
/* Monotonic clock in milliseconds. */
double tc_cli_now_ms(void);
/* qsort comparator for doubles, ascending. */
int tc_cli_cmp_double(const void *a, const void *b);
/* Sorts v[0..n) (n > 0) in place and returns its median (the upper one for even n). */
double tc_cli_median(double *v, size_t n);

#endif
