#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void copy_str(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

const char *tc_status_name(tc_status s) {
  switch (s) {
  case TC_STATUS_OK: return "ok";
  case TC_STATUS_IO: return "io";
  case TC_STATUS_PARSE: return "parse";
  case TC_STATUS_INVALID: return "invalid";
  case TC_STATUS_UNSUPPORTED: return "unsupported";
  case TC_STATUS_NOMEM: return "out of memory";
  case TC_STATUS_ARG: return "bad argument";
  }
  return "unknown";
}

tc_diag *tc_diag_new(void) { return calloc(1, sizeof(tc_diag)); }

void tc_diag_free(tc_diag *d) { free(d); }

void tc_diag_clear(tc_diag *d) {
  if (d)
    memset(d, 0, sizeof *d);
}

tc_status tc_diag_status(const tc_diag *d) { return d ? d->status : TC_STATUS_OK; }

tc_status tc_diag_set(tc_diag *d, tc_status status, const char *node, const char *op,
                      const char *fmt, ...) {
  if (!d)
    return status;
  d->status = status;
  copy_str(d->node, sizeof d->node, node);
  copy_str(d->op, sizeof d->op, op);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->reason, sizeof d->reason, fmt, ap);
  va_end(ap);
  return status;
}

void tc_diag_set_file(tc_diag *d, const char *file) {
  if (d && !d->file[0])
    copy_str(d->file, sizeof d->file, file);
}

const char *tc_diag_message(tc_diag *d) {
  if (!d)
    return "";
  char where[512] = "";
  if (d->node[0] || d->op[0]) {
    if (d->node[0] && d->op[0])
      snprintf(where, sizeof where, " (node '%s', op %s)", d->node, d->op);
    else if (d->node[0])
      snprintf(where, sizeof where, " (node '%s')", d->node);
    else
      snprintf(where, sizeof where, " (op %s)", d->op);
  }
  if (d->file[0])
    snprintf(d->message, sizeof d->message, "%s: %s%s", d->file, d->reason, where);
  else
    snprintf(d->message, sizeof d->message, "%s%s", d->reason, where);
  return d->message;
}
