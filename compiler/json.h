/* A minimal streaming JSON writer with stable formatting (two-space indent). */
#ifndef TC_JSON_H
#define TC_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct tc_json {
  FILE *f;
  int depth;
  bool first[64]; /* per depth: nothing written yet at this level */
  bool after_key;
} tc_json;

void tc_json_init(tc_json *j, FILE *f);
void tc_json_begin_object(tc_json *j);
void tc_json_end_object(tc_json *j);
void tc_json_begin_array(tc_json *j);
void tc_json_end_array(tc_json *j);
void tc_json_key(tc_json *j, const char *k);
void tc_json_string(tc_json *j, const char *s); /* NULL writes null */
void tc_json_int(tc_json *j, long long v);
void tc_json_uint(tc_json *j, unsigned long long v);
/* A number with 9 significant digits; NaN and infinities (which JSON lacks) as null. */
void tc_json_double(tc_json *j, double v);
void tc_json_bool(tc_json *j, bool v);
void tc_json_null(tc_json *j);

#endif
