/* `tacoc inspect`: a summary of a model as text or stable JSON (docs/cli.md). */
#ifndef TC_INSPECT_H
#define TC_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"

/* Writes the summary of m (loaded from path) to f. 0 on success. */
int tc_inspect_write(const tc_model *m, const char *path, bool json, FILE *f);

#endif
