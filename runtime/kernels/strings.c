/* String ops: StringConcat, StringSplit, StringNormalizer, RegexFullMatch,
 * and TfIdfVectorizer (n-gram counts over ids or strings).
 *
 * String tensors hold `char *` (NUL-terminated UTF-8) from the run's arena.
 * Case changes are ASCII only (other bytes are left as they are); regular
 * expressions are POSIX extended ones with glibc's \w \W \s \S \b \B
 * (RE2's syntax for the patterns ONNX's tests use), matched against the
 * whole string. */
#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

static tc_status nomem(tc_kernel_ctx *k) {
  return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
}

/* Inputs 0..count-1 present and string tensors. */
static tc_status string_inputs(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               size_t count) {
  for (size_t i = 0; i < count; i++) {
    if (i >= n_in || !in[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu is required", i);
    if (in[i]->dtype != TC_DTYPE_STRING)
      return tc_kernel_bad_dtype(k, i, in[i]->dtype);
  }
  return TC_STATUS_OK;
}

/* ---- StringConcat (opset 20): x + y with broadcasting ---- */

static tc_status run_string_concat(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                   tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  tc_status st = string_inputs(k, in, n_in, 2);
  size_t rank;
  int64_t dims[TC_MAX_RANK], sa[TC_MAX_RANK], sb[TC_MAX_RANK];
  if (!st)
    st = tc_broadcast_shape(k, in, 2, &rank, dims);
  if (!st)
    st = tc_kernel_alloc(k, out, TC_DTYPE_STRING, rank, dims);
  if (st)
    return st;
  tc_broadcast_strides(in[0], rank, dims, sa);
  tc_broadcast_strides(in[1], rank, dims, sb);
  char *const *a = in[0]->data, *const *b = in[1]->data;
  char **y = out->data;
  size_t n = tc_rt_numel(out);
  for (size_t i = 0; i < n; i++) {
    size_t r = i, ia = 0, ib = 0;
    for (size_t d = rank; d-- > 0;) {
      size_t c = r % (size_t)dims[d];
      r /= (size_t)dims[d];
      ia += c * (size_t)sa[d];
      ib += c * (size_t)sb[d];
    }
    size_t la = strlen(a[ia]), lb = strlen(b[ib]);
    if (!(y[i] = tc_arena_alloc(k->arena, la + lb + 1)))
      return nomem(k);
    memcpy(y[i], a[ia], la);
    memcpy(y[i] + la, b[ib], lb + 1);
  }
  return TC_STATUS_OK;
}

/* ---- StringSplit (opset 20) ----
 * Y [..., max parts] (padded with ""), Z [...] the number of parts. Without
 * a delimiter (or an empty one) runs of whitespace separate and leading /
 * trailing whitespace is dropped; with one, every occurrence separates
 * (empty parts kept). maxsplit bounds the splits; the rest stays whole. */

typedef struct part {
  const char *s;
  size_t len;
} part;

/* Splits s into parts (NULL: count only); returns their number. */
static size_t split(const char *s, const char *delim, int64_t maxsplit, part *parts) {
  size_t n = 0, dl = delim ? strlen(delim) : 0;
  if (!dl) {
    const char *p = s;
    for (;;) {
      while (*p && isspace((unsigned char)*p))
        p++;
      if (!*p)
        return n;
      const char *e = p;
      if (maxsplit >= 0 && (int64_t)n == maxsplit) {
        e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1]))
          e--;
      } else {
        while (*e && !isspace((unsigned char)*e))
          e++;
      }
      if (parts)
        parts[n] = (part){p, (size_t)(e - p)};
      n++;
      p = e;
    }
  }
  const char *p = s;
  for (;;) {
    const char *e = maxsplit >= 0 && (int64_t)n == maxsplit ? NULL : strstr(p, delim);
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (parts)
      parts[n] = (part){p, len};
    n++;
    if (!e)
      return n;
    p = e + dl;
  }
}

static tc_status run_string_split(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                  tc_rt_tensor *out, size_t n_out) {
  tc_status st = string_inputs(k, in, n_in, 1);
  if (st)
    return st;
  const tc_rt_tensor *x = in[0];
  if (x->rank + 1 > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "input rank %zu is too large", x->rank);
  const char *delim = tc_attr_string(k->node, "delimiter", "", k->arena);
  int64_t maxsplit = tc_attr_has(k->node, "maxsplit") ? tc_attr_int(k->node, "maxsplit", 0) : -1;
  size_t n = tc_rt_numel(x), most = 0;
  char *const *xs = x->data;
  for (size_t i = 0; i < n; i++) {
    size_t c = split(xs[i], delim[0] ? delim : NULL, maxsplit, NULL);
    most = c > most ? c : most;
  }
  int64_t ydims[TC_MAX_RANK];
  memcpy(ydims, x->dims, x->rank * sizeof *ydims);
  ydims[x->rank] = (int64_t)most;
  if ((st = tc_kernel_alloc(k, &out[0], TC_DTYPE_STRING, x->rank + 1, ydims)))
    return st;
  if (n_out > 1 && (st = tc_kernel_alloc(k, &out[1], TC_DTYPE_I64, x->rank, x->dims)))
    return st;
  part *parts = tc_arena_alloc(k->arena, (most ? most : 1) * sizeof *parts);
  if (!parts)
    return nomem(k);
  char **y = out[0].data;
  for (size_t i = 0; i < n; i++) {
    size_t c = split(xs[i], delim[0] ? delim : NULL, maxsplit, parts);
    for (size_t j = 0; j < most; j++) {
      size_t len = j < c ? parts[j].len : 0;
      char *s = tc_arena_alloc(k->arena, len + 1);
      if (!s)
        return nomem(k);
      if (len)
        memcpy(s, parts[j].s, len);
      s[len] = 0;
      y[i * most + j] = s;
    }
    if (n_out > 1)
      ((int64_t *)out[1].data)[i] = (int64_t)c;
  }
  return TC_STATUS_OK;
}

/* ---- StringNormalizer (opset 10) ----
 * x [C] or [1, C]: elements equal to a stopword (compared ignoring ASCII
 * case unless is_case_sensitive) are dropped, the rest case-changed
 * (LOWER / UPPER / NONE); [""] (or [[""]]) when nothing remains. */
static tc_status check_normalizer(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"case_change_action", "is_case_sensitive", "locale", "stopwords",
                                   NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  const tc_attr *a = tc_node_attr(n, "case_change_action");
  if (!st && a &&
      !((a->s.len == 4 && !memcmp(a->s.data, "NONE", 4)) ||
        (a->s.len == 5 && (!memcmp(a->s.data, "LOWER", 5) || !memcmp(a->s.data, "UPPER", 5)))))
    st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                     "case_change_action must be NONE, LOWER or UPPER");
  return st;
}

static bool same_word(const char *a, const ProtobufCBinaryData *w, bool cs) {
  size_t len = strlen(a);
  if (len != w->len)
    return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char x = (unsigned char)a[i], y = w->data[i];
    if (cs ? x != y : tolower(x) != tolower(y))
      return false;
  }
  return true;
}

static tc_status run_normalizer(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  tc_status st = string_inputs(k, in, n_in, 1);
  if (st)
    return st;
  const tc_rt_tensor *x = in[0];
  if (!(x->rank == 1 || (x->rank == 2 && x->dims[0] == 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input must be [C] or [1, C]");
  const tc_attr *stops = tc_node_attr(k->node, "stopwords");
  bool cs = tc_attr_int(k->node, "is_case_sensitive", 0) != 0;
  const char *act = tc_attr_string(k->node, "case_change_action", "NONE", k->arena);
  size_t n = tc_rt_numel(x), kept = 0;
  char *const *xs = x->data;
  char **tmp = tc_arena_alloc(k->arena, (n ? n : 1) * sizeof *tmp);
  if (!tmp)
    return nomem(k);
  for (size_t i = 0; i < n; i++) {
    bool stop = false;
    for (size_t w = 0; stops && w < stops->n_strings && !stop; w++)
      stop = same_word(xs[i], &stops->strings[w], cs);
    if (stop)
      continue;
    char *s = tc_arena_strdup(k->arena, xs[i]);
    if (!s)
      return nomem(k);
    for (char *p = s; *p; p++)
      *p = act[0] == 'L'   ? (char)tolower((unsigned char)*p)
           : act[0] == 'U' ? (char)toupper((unsigned char)*p)
                           : *p;
    tmp[kept++] = s;
  }
  if (!kept && !(tmp[kept++] = tc_arena_strdup(k->arena, "")))
    return nomem(k);
  int64_t dims[2] = {1, (int64_t)kept};
  if ((st = tc_kernel_alloc(k, out, TC_DTYPE_STRING, x->rank, x->rank == 1 ? dims + 1 : dims)))
    return st;
  memcpy(out->data, tmp, kept * sizeof *tmp);
  return TC_STATUS_OK;
}

/* ---- RegexFullMatch (opset 20): whether each string matches pattern whole ---- */

/* RE2's class escapes in POSIX terms: \d \D outside brackets; inside a
 * bracket expression (where POSIX takes a backslash literally) \w \d \s
 * become named classes, an escaped '-' moves to the end and other escaped
 * characters stand for themselves. Appends to dst (room for 16 bytes per
 * source byte); false for what cannot be expressed (an escaped ']'). */
static bool re2_to_posix(const unsigned char *p, size_t len, char *dst) {
  size_t o = strlen(dst);
  bool in_class = false, dash = false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = p[i];
    if (!in_class) {
      if (c == '\\' && i + 1 < len && (p[i + 1] == 'd' || p[i + 1] == 'D')) {
        o += (size_t)sprintf(dst + o, p[i + 1] == 'd' ? "[0-9]" : "[^0-9]");
        i++;
        continue;
      }
      if (c == '\\' && i + 1 < len) {
        dst[o++] = (char)c;
        dst[o++] = (char)p[++i];
        continue;
      }
      if (c == '[') {
        in_class = true;
        dash = false;
        dst[o++] = '[';
        if (i + 1 < len && p[i + 1] == '^')
          dst[o++] = (char)p[++i];
        if (i + 1 < len && p[i + 1] == ']')
          dst[o++] = (char)p[++i]; /* a leading ']' is literal */
        continue;
      }
      dst[o++] = (char)c;
      continue;
    }
    if (c == ']') {
      if (dash)
        dst[o++] = '-';
      dst[o++] = ']';
      in_class = false;
      continue;
    }
    if (c == '\\' && i + 1 < len) {
      unsigned char e = p[++i];
      const char *cls = e == 'w'   ? "[:alnum:]_"
                        : e == 'd' ? "[:digit:]"
                        : e == 's' ? "[:space:]"
                                   : NULL;
      if (cls)
        o += (size_t)sprintf(dst + o, "%s", cls);
      else if (e == '-')
        dash = true;
      else if (e == ']' || e == 'W' || e == 'D' || e == 'S')
        return false;
      else
        dst[o++] = (char)e;
      continue;
    }
    dst[o++] = (char)c;
  }
  dst[o] = 0;
  return !in_class;
}

/* pattern (RE2 syntax, see re2_to_posix) anchored as ^(pattern)$ and
 * compiled; false when it cannot be. */
static bool regex_compile(const tc_node *n, regex_t *re) {
  const tc_attr *a = tc_node_attr(n, "pattern");
  size_t len = a ? a->s.len : 0;
  char *full = malloc(16 * len + 8);
  if (!full)
    return false;
  strcpy(full, "^(");
  bool ok = re2_to_posix(a ? a->s.data : NULL, len, full);
  if (ok) {
    strcat(full, ")$");
    ok = regcomp(re, full, REG_EXTENDED | REG_NOSUB) == 0;
  }
  free(full);
  return ok;
}

static tc_status check_regex(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"pattern", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  regex_t re;
  if (!st && !regex_compile(n, &re))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                       "the pattern is not a regular expression libtacort understands");
  if (!st)
    regfree(&re);
  return st;
}

static tc_status run_regex(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  tc_status st = string_inputs(k, in, n_in, 1);
  if (!st)
    st = tc_kernel_alloc(k, out, TC_DTYPE_BOOL, in[0]->rank, in[0]->dims);
  if (st)
    return st;
  regex_t re;
  if (!regex_compile(k->node, &re))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "the pattern does not compile");
  char *const *xs = in[0]->data;
  bool *y = out->data;
  for (size_t i = 0, n = tc_rt_numel(in[0]); i < n; i++)
    y[i] = regexec(&re, xs[i], 0, NULL, 0) == 0;
  regfree(&re);
  return TC_STATUS_OK;
}

/* ---- TfIdfVectorizer (opset 9) ----
 * Counts, per row of X ([N] or [B, N], int32 / int64 ids or strings), the
 * n-grams of the pool (pool_int64s or pool_strings: the 1-grams from
 * ngram_counts[0], the 2-grams from ngram_counts[1], ...) whose length is in
 * [min_gram_length, max_gram_length], their tokens taken every d positions
 * for d = 1 .. max_skip_count + 1 (1-grams once, at d = 1); n-gram j counts
 * into column ngram_indexes[j]. mode TF: the counts; IDF: weight (or 1) where
 * the count is not 0; TFIDF: count times weight (or 1). Float32 out. */
static tc_status check_tfidf(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {
      "max_gram_length", "max_skip_count", "min_gram_length", "mode",    "ngram_counts",
      "ngram_indexes",   "pool_int64s",    "pool_strings",    "weights", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  const tc_attr *m = tc_node_attr(n, "mode");
  if (!st && (!m || !((m->s.len == 2 && !memcmp(m->s.data, "TF", 2)) ||
                      (m->s.len == 3 && !memcmp(m->s.data, "IDF", 3)) ||
                      (m->s.len == 5 && !memcmp(m->s.data, "TFIDF", 5)))))
    st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                     "mode must be TF, IDF or TFIDF");
  return st;
}

/* Token t of X equals pool entry p. */
static bool token_is(const tc_rt_tensor *x, size_t t, const tc_attr *ints, const tc_attr *strs,
                     size_t p) {
  if (x->dtype == TC_DTYPE_STRING) {
    const char *a = ((char *const *)x->data)[t];
    size_t len = strs->strings[p].len;
    return strlen(a) == len && (!len || !memcmp(a, strs->strings[p].data, len));
  }
  return tc_rt_get_i64(x, t) == ints->ints[p];
}

static tc_status run_tfidf(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = n_in ? in[0] : NULL;
  const tc_node *n = k->node;
  const tc_attr *ints = tc_node_attr(n, "pool_int64s"), *strs = tc_node_attr(n, "pool_strings");
  const int64_t *counts, *idx;
  const float *wts;
  ptrdiff_t nc = tc_attr_ints(n, "ngram_counts", &counts),
            ni = tc_attr_ints(n, "ngram_indexes", &idx), nw = tc_attr_floats(n, "weights", &wts);
  if (!x || x->rank > 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must be [N] or [B, N]");
  bool str = x->dtype == TC_DTYPE_STRING;
  if (str ? !strs : !(ints && (x->dtype == TC_DTYPE_I32 || x->dtype == TC_DTYPE_I64)))
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "X must be strings with pool_strings or int32/int64 with pool_int64s");
  size_t pool = str ? strs->n_strings : ints->n_ints;
  int64_t minl = tc_attr_int(n, "min_gram_length", 1), maxl = tc_attr_int(n, "max_gram_length", 1),
          skips = tc_attr_int(n, "max_skip_count", 0), cols = 0;
  if (nc < 1 || ni < 0 || minl < 1 || maxl < minl || skips < 0 || (nw >= 0 && nw != ni))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "inconsistent n-gram attributes");
  for (ptrdiff_t j = 0; j < ni; j++)
    cols = idx[j] + 1 > cols ? idx[j] + 1 : cols;
  int64_t B = x->rank == 2 ? x->dims[0] : 1, N = x->rank ? x->dims[x->rank - 1] : 1;
  int64_t dims[2] = {B, cols};
  tc_status st =
      tc_kernel_alloc(k, out, TC_DTYPE_F32, x->rank == 2 ? 2 : 1, x->rank == 2 ? dims : dims + 1);
  if (st)
    return st;
  float *y = out->data;
  const tc_attr *m = tc_node_attr(n, "mode");
  char mode = m->s.len == 2 ? 'T' : m->s.len == 3 ? 'I' : 'B';
  for (int64_t r = 0; r < B; r++) {
    float *row = y + r * cols;
    ptrdiff_t g = 0; /* n-gram number across the pool */
    for (ptrdiff_t level = 0; level < nc; level++) {
      size_t len = (size_t)level + 1, from = (size_t)counts[level],
             to = level + 1 < nc ? (size_t)counts[level + 1] : pool;
      if (from > to || to > pool || (to - from) % len)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "ngram_counts does not split the pool");
      for (size_t p = from; p < to; p += len, g++) {
        if (g >= ni)
          return tc_kernel_fail(k, TC_STATUS_INVALID, "more n-grams than ngram_indexes");
        if ((int64_t)len < minl || (int64_t)len > maxl)
          continue;
        float c = 0;
        for (int64_t d = 1; d <= (len == 1 ? 1 : skips + 1); d++)
          for (int64_t s0 = 0; s0 + d * (int64_t)(len - 1) < N; s0++) {
            bool hit = true;
            for (size_t t = 0; t < len && hit; t++)
              hit = token_is(x, (size_t)(r * N + s0 + d * (int64_t)t), ints, strs, p + t);
            c += hit;
          }
        row[idx[g]] += c;
      }
    }
    for (int64_t j = 0; j < cols && mode != 'T'; j++) {
      float w = 1;
      for (ptrdiff_t q = 0; q < ni && nw > 0; q++)
        if (idx[q] == j)
          w = wts[q];
      row[j] = mode == 'I' ? (row[j] > 0 ? w : 0) : row[j] * w;
    }
  }
  return TC_STATUS_OK;
}

static tc_status check_none(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const none[] = {NULL};
  return tc_kernel_check_attrs(n, diag, none);
}

static tc_status check_split(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"delimiter", "maxsplit", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

const tc_kernel_def tc_kernels_strings[] = {
    {"StringConcat", "", 20, run_string_concat, check_none},
    {"StringSplit", "", 20, run_string_split, check_split},
    {"StringNormalizer", "", 10, run_normalizer, check_normalizer},
    {"RegexFullMatch", "", 20, run_regex, check_regex},
    {"TfIdfVectorizer", "", 9, run_tfidf, check_tfidf},
    {NULL},
};
