#include "json.h"

#include <math.h>

static void indent(tc_json *j) {
  fputc('\n', j->f);
  for (int i = 0; i < j->depth; i++)
    fputs("  ", j->f);
}

/* Separator and indentation before a value or key at the current level. */
static void item(tc_json *j) {
  if (j->after_key) {
    j->after_key = false;
    return;
  }
  if (j->depth > 0) {
    if (!j->first[j->depth])
      fputc(',', j->f);
    indent(j);
  }
  j->first[j->depth] = false;
}

void tc_json_init(tc_json *j, FILE *f) {
  *j = (tc_json){.f = f};
  j->first[0] = true;
}

static void open_(tc_json *j, char c) {
  item(j);
  fputc(c, j->f);
  if (j->depth < 63)
    j->depth++;
  j->first[j->depth] = true;
}

static void close_(tc_json *j, char c) {
  bool empty = j->first[j->depth];
  j->depth--;
  if (!empty)
    indent(j);
  fputc(c, j->f);
  if (j->depth == 0)
    fputc('\n', j->f);
}

void tc_json_begin_object(tc_json *j) { open_(j, '{'); }
void tc_json_end_object(tc_json *j) { close_(j, '}'); }
void tc_json_begin_array(tc_json *j) { open_(j, '['); }
void tc_json_end_array(tc_json *j) { close_(j, ']'); }

static void quoted(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20)
        fprintf(f, "\\u%04x", *p);
      else
        fputc(*p, f);
    }
  }
  fputc('"', f);
}

void tc_json_key(tc_json *j, const char *k) {
  item(j);
  quoted(j->f, k);
  fputs(": ", j->f);
  j->after_key = true;
}

void tc_json_string(tc_json *j, const char *s) {
  item(j);
  if (s)
    quoted(j->f, s);
  else
    fputs("null", j->f);
}

void tc_json_int(tc_json *j, long long v) {
  item(j);
  fprintf(j->f, "%lld", v);
}

void tc_json_uint(tc_json *j, unsigned long long v) {
  item(j);
  fprintf(j->f, "%llu", v);
}

void tc_json_double(tc_json *j, double v) {
  item(j);
  if (isfinite(v))
    fprintf(j->f, "%.9g", v);
  else
    fputs("null", j->f);
}

void tc_json_bool(tc_json *j, bool v) {
  item(j);
  fputs(v ? "true" : "false", j->f);
}

void tc_json_null(tc_json *j) {
  item(j);
  fputs("null", j->f);
}
