/* Helpers shared by the tacoc commands (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tc_cli_usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tacoc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see 'tacoc help')\n", stderr);
  va_end(ap);
  return TC_EXIT_ERROR;
}

int tc_cli_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tacoc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return TC_EXIT_ERROR;
}

int tc_cli_report(tc_diag *d) {
  fprintf(stderr, "tacoc: error: %s\n", tc_diag_message(d));
  return TC_EXIT_ERROR;
}

tc_model *tc_cli_load(const char *path, tc_diag *d) {
  tc_model *m = NULL;
  if (tc_model_load_file(path, NULL, &m, d) != TC_STATUS_OK) {
    tc_cli_report(d);
    return NULL;
  }
  return m;
}

bool tc_cli_parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-')
    return false;
  *out = (size_t)v;
  return true;
}

bool tc_cli_ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

double tc_cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int tc_cli_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double tc_cli_median(double *v, size_t n) {
  qsort(v, n, sizeof *v, tc_cli_cmp_double);
  return v[n / 2];
}
