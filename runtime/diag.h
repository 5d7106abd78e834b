/* Diagnostics: the one error style of tacoc. A fallible function returns a
 * tc_status and records what went wrong (file, node, op, opset, reason). */
#ifndef TC_DIAG_H
#define TC_DIAG_H

#include "tacort.h"

#define TC_DIAG_TEXT 1024

struct tc_diag {
  tc_status status;
  char file[TC_DIAG_TEXT / 2];
  char node[256];
  char op[128];
  long long opset; /* 0: not known */
  char reason[TC_DIAG_TEXT];
  char message[TC_DIAG_TEXT * 2];
};

/* Records an error (diag may be NULL) and returns status. The node and op
 * strings may be NULL. The reason is printf-formatted. */
tc_status tc_diag_set(tc_diag *d, tc_status status, const char *node, const char *op,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Sets the file an error is about, if none was set yet. */
void tc_diag_set_file(tc_diag *d, const char *file);
/* Clears the record. */
void tc_diag_clear(tc_diag *d);

#endif
