/* NumPy .npy files (format versions 1-3, little-endian, C order) <-> tc_ndarray. */
#ifndef TC_NPY_H
#define TC_NPY_H

#include "tacort.h"

/* Reads path into *out (data malloc'd; release with tc_ndarray_release).
 * On failure writes a reason into why and returns -1. */
int tc_npy_read(const char *path, tc_ndarray *out, char *why, size_t cap);
/* Writes t to path (version 1.0 header). -1 with a reason on failure. */
int tc_npy_write(const char *path, const tc_ndarray *t, char *why, size_t cap);

#endif
