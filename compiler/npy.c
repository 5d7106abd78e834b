#include "npy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *descr;
  int32_t dtype;
  size_t size;
} descrs[] = {
    {"<f4", 1, 4}, {"<f8", 11, 8}, {"<f2", 10, 2}, {"|i1", 3, 1},  {"<i2", 5, 2},  {"<i4", 6, 4},
    {"<i8", 7, 8}, {"|u1", 2, 1},  {"<u2", 4, 2},  {"<u4", 12, 4}, {"<u8", 13, 8}, {"|b1", 9, 1},
};

static int fail(char *why, size_t cap, const char *msg) {
  snprintf(why, cap, "%s", msg);
  return -1;
}

/* Finds 'key': in the header dict and returns the text after it. */
static const char *dict_value(const char *h, const char *key) {
  char pat[32];
  snprintf(pat, sizeof pat, "'%s':", key);
  const char *p = strstr(h, pat);
  if (!p)
    return NULL;
  p += strlen(pat);
  while (*p == ' ')
    p++;
  return p;
}

int tc_npy_read(const char *path, tc_ndarray *out, char *why, size_t cap) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(why, cap, "cannot read: %s", strerror(errno));
    return -1;
  }
  unsigned char pre[10];
  int rc = -1;
  char *h = NULL;
  if (fread(pre, 1, 8, f) != 8 || memcmp(pre, "\x93NUMPY", 6) != 0) {
    fail(why, cap, "not a .npy file (bad magic)");
    goto done;
  }
  size_t hlen;
  if (pre[6] == 1) {
    if (fread(pre, 1, 2, f) != 2)
      goto short_file;
    hlen = pre[0] | (size_t)pre[1] << 8;
  } else {
    if (fread(pre, 1, 4, f) != 4)
      goto short_file;
    hlen = pre[0] | (size_t)pre[1] << 8 | (size_t)pre[2] << 16 | (size_t)pre[3] << 24;
  }
  if (hlen > 1 << 20 || !(h = calloc(1, hlen + 1)) || fread(h, 1, hlen, f) != hlen)
    goto short_file;
  const char *descr = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"),
             *shape = dict_value(h, "shape");
  if (!descr || !fo || !shape || *shape != '(') {
    fail(why, cap, "malformed .npy header");
    goto done;
  }
  if (strncmp(fo, "False", 5) != 0) {
    fail(why, cap, "Fortran-order arrays are not supported (save with C order)");
    goto done;
  }
  size_t esize = 0;
  for (size_t i = 0; i < sizeof descrs / sizeof descrs[0]; i++) {
    size_t n = strlen(descrs[i].descr);
    if (descr[0] == '\'' && strncmp(descr + 1, descrs[i].descr, n) == 0 && descr[1 + n] == '\'') {
      out->dtype = descrs[i].dtype;
      esize = descrs[i].size;
    }
  }
  if (!esize) {
    fail(why, cap, "unsupported dtype in .npy header (little-endian numeric or bool only)");
    goto done;
  }
  size_t count = 1;
  for (const char *p = shape + 1; *p && *p != ')';) {
    while (*p == ' ' || *p == ',')
      p++;
    if (*p == ')')
      break;
    char *end;
    long long d = strtoll(p, &end, 10);
    if (end == p || d < 0 || out->rank >= TC_MAX_DIMS) {
      fail(why, cap, "malformed or too many dims in .npy shape");
      goto done;
    }
    out->dims[out->rank++] = d;
    count *= (size_t)d;
    p = end;
  }
  out->size = count * esize;
  out->data = malloc(out->size ? out->size : 1);
  if (!out->data || fread(out->data, 1, out->size, f) != out->size)
    goto short_file;
  rc = 0;
  goto done;
short_file:
  fail(why, cap, "truncated .npy file");
done:
  if (rc)
    tc_ndarray_release(out);
  free(h);
  fclose(f);
  return rc;
}

/* The next code point of UTF-8 text at *p (advanced); U+FFFD for a byte
 * that does not start a valid sequence. */
static uint32_t utf8_next(const unsigned char **p) {
  const unsigned char *s = *p;
  int len = s[0] < 0x80         ? 1
            : (s[0] >> 5) == 6  ? 2
            : (s[0] >> 4) == 14 ? 3
            : (s[0] >> 3) == 30 ? 4
                                : 0;
  uint32_t c = len == 1 ? s[0] : len == 2 ? s[0] & 0x1f : len == 3 ? s[0] & 0x0f : s[0] & 0x07;
  for (int i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) {
      len = 0;
      break;
    }
    c = c << 6 | (s[i] & 0x3f);
  }
  *p = s + (len ? len : 1);
  return len ? c : 0xfffd;
}

/* A string tensor as numpy's fixed-width '<U' (UTF-32LE, padded with 0):
 * malloc'd, *width code points per element. NULL on OOM. */
static uint32_t *utf32_of(const tc_ndarray *t, size_t *width, size_t *count) {
  size_t n = t->size / sizeof(char *), w = 1;
  char *const *s = t->data;
  for (size_t i = 0; i < n; i++) {
    size_t c = 0;
    for (const unsigned char *p = (const unsigned char *)s[i]; *p; c++)
      utf8_next(&p);
    w = c > w ? c : w;
  }
  uint32_t *u = calloc(n * w + 1, sizeof *u);
  for (size_t i = 0; u && i < n; i++) {
    size_t c = 0;
    for (const unsigned char *p = (const unsigned char *)s[i]; *p;)
      u[i * w + c++] = utf8_next(&p);
  }
  *width = w;
  *count = n;
  return u;
}

int tc_npy_write(const char *path, const tc_ndarray *t, char *why, size_t cap) {
  const char *descr = NULL;
  char str_descr[32];
  uint32_t *u32 = NULL;
  tc_ndarray utf32 = *t;
  if (t->dtype == 8) { /* ONNX string: numpy's unicode strings */
    size_t w, n;
    if (!(u32 = utf32_of(t, &w, &n))) {
      snprintf(why, cap, "out of memory");
      return -1;
    }
    snprintf(str_descr, sizeof str_descr, "<U%zu", w);
    descr = str_descr;
    utf32.data = u32;
    utf32.size = n * w * sizeof *u32;
    t = &utf32;
  }
  for (size_t i = 0; !descr && i < sizeof descrs / sizeof descrs[0]; i++)
    if (descrs[i].dtype == t->dtype)
      descr = descrs[i].descr;
  if (!descr) {
    snprintf(why, cap, "dtype %d has no .npy form", (int)t->dtype);
    return -1;
  }
  char shape[512] = "";
  size_t len = 0;
  for (size_t i = 0; i < t->rank; i++)
    len += (size_t)snprintf(shape + len, sizeof shape - len, "%lld,%s", (long long)t->dims[i],
                            i + 1 < t->rank ? " " : "");
  char header[1024];
  int n = snprintf(header, sizeof header,
                   "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shape);
  /* Pad with spaces so that magic + length + header + newline is a multiple of 64. */
  size_t total = 10 + (size_t)n + 1;
  size_t pad = (64 - total % 64) % 64;
  FILE *f = fopen(path, "wb");
  if (!f) {
    snprintf(why, cap, "cannot write: %s", strerror(errno));
    free(u32);
    return -1;
  }
  unsigned hl = (unsigned)(n + pad + 1);
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, hl & 0xff, hl >> 8};
  bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(header, 1, (size_t)n, f) == (size_t)n;
  for (size_t i = 0; ok && i < pad; i++)
    ok = fputc(' ', f) != EOF;
  ok = ok && fputc('\n', f) != EOF && fwrite(t->data, 1, t->size, f) == t->size;
  ok = (fclose(f) == 0) && ok;
  free(u32);
  if (!ok)
    snprintf(why, cap, "write failed: %s", strerror(errno));
  return ok ? 0 : -1;
}
