/* Tensor and shape-manipulation kernels.
 *
 * The fast kernels split the copies of Transpose, Slice, Expand (strided
 * rows, tiles for transposes of the last axis), Gather, Concat, Tile and Pad
 * across threads; the reference kernels walk every element in order.
 *
 * Data movement works on element bytes (memcpy of the element size), so every
 * dtype of at least one byte per element is handled, strings included (their
 * elements are `char *`, and copying the pointers is enough). Sub-byte dtypes
 * (int4, uint4, float4, int2, uint2) are only handled by ops that copy whole
 * tensors (Identity, Constant, Reshape and the like); elsewhere they are
 * refused. Index tensors may be int32 or int64 (any integer dtype, in fact). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "onnx_io.h"

/* ---- small helpers ---- */

static tc_status need_elem(tc_kernel_ctx *k, size_t input, int32_t dt, size_t *es) {
  *es = tc_dtype_elem_bytes(dt);
  return *es ? TC_STATUS_OK : tc_kernel_bad_dtype(k, input, dt);
}

/* True for dtypes tc_rt_get_f64 / tc_rt_set_f64 understand. */
static bool is_numeric(int32_t dt) {
  return tc_dtype_is_float(dt) || tc_dtype_is_int(dt) || dt == TC_DTYPE_BOOL;
}

/* Optional input i (NULL when left out or past the end). */
static const tc_rt_tensor *opt_in(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

/* Checks that inputs 0..n-1 are present. */
static tc_status need_inputs(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             size_t n) {
  for (size_t i = 0; i < n; i++)
    if (i >= n_in || !in[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "required input %zu is missing", i);
  return TC_STATUS_OK;
}

static tc_status need_outputs(tc_kernel_ctx *k, size_t n_out, size_t n) {
  if (n_out < n)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "expected %zu outputs, got %zu", n, n_out);
  return TC_STATUS_OK;
}

/* Reads an integer tensor (any integer dtype) of at most max elements into v. */
static tc_status read_ints(tc_kernel_ctx *k, const tc_rt_tensor *t, size_t input, int64_t *v,
                           size_t max, size_t *n) {
  if (!tc_dtype_is_int(t->dtype))
    return tc_kernel_bad_dtype(k, input, t->dtype);
  size_t c = tc_rt_numel(t);
  if (c > max)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "input %zu has %zu values, more than %zu",
                          input, c, max);
  for (size_t i = 0; i < c; i++)
    v[i] = tc_rt_get_i64(t, i);
  *n = c;
  return TC_STATUS_OK;
}

/* Reads a one-element integer tensor. */
static tc_status read_scalar_int(tc_kernel_ctx *k, const tc_rt_tensor *t, size_t input,
                                 int64_t *v) {
  if (!tc_dtype_is_int(t->dtype))
    return tc_kernel_bad_dtype(k, input, t->dtype);
  if (tc_rt_numel(t) != 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu must hold one value, has %zu", input,
                          tc_rt_numel(t));
  *v = tc_rt_get_i64(t, 0);
  return TC_STATUS_OK;
}

static tc_status check_index_dtype(tc_kernel_ctx *k, const tc_rt_tensor *t, size_t input) {
  return tc_dtype_is_int(t->dtype) ? TC_STATUS_OK : tc_kernel_bad_dtype(k, input, t->dtype);
}

static tc_status norm_axis(tc_kernel_ctx *k, int64_t axis, size_t rank, int64_t *out) {
  *out = tc_axis(axis, rank);
  if (*out < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                          (long long)axis, rank);
  return TC_STATUS_OK;
}

/* Row-major element strides. */
static void strides_of(size_t rank, const int64_t *dims, int64_t *st) {
  int64_t s = 1;
  for (size_t d = rank; d-- > 0;) {
    st[d] = s;
    s *= dims[d];
  }
}

static size_t prod(const int64_t *dims, size_t from, size_t to) {
  size_t p = 1;
  for (size_t d = from; d < to; d++)
    p *= (size_t)dims[d];
  return p;
}

/* Coordinates of linear index i in dims. */
static void unravel(size_t i, size_t rank, const int64_t *dims, int64_t *idx) {
  for (size_t d = rank; d-- > 0;) {
    idx[d] = dims[d] ? (int64_t)(i % (size_t)dims[d]) : 0;
    i = dims[d] ? i / (size_t)dims[d] : 0;
  }
}

/* Copies one element of es bytes. */
static inline void copy_elem(char *d, const char *s, size_t es) {
  switch (es) {
  case 1: *d = *s; break;
  case 2: memcpy(d, s, 2); break;
  case 4: memcpy(d, s, 4); break;
  case 8: memcpy(d, s, 8); break;
  default: memcpy(d, s, es); break;
  }
}

/* ---- strided copies (the fast kernels' Transpose, Slice, Expand) ----
 * dst, contiguous with shape dims, gets dst[o] = src[sum_d o_d * st[d]]
 * (strides in elements, 0 or negative allowed). Dims of size 1 are dropped
 * and adjacent dims merged where src is linear across them; then rows are
 * copied whole (memcpy when the innermost stride is 1), or, when the
 * innermost output dim is strided in src and another dim is src's
 * contiguous one (a transpose moving the last axis), in square tiles so
 * both sides stay in cache. Rows / tile strips are split across threads. */
#define TILE 32
typedef struct strided_job {
  char *dst;
  const char *src;
  size_t es, rank, inner, tdim; /* tdim: src's unit-stride dim, rank when none */
  int64_t dims[TC_MAX_RANK], st[TC_MAX_RANK], dst_st[TC_MAX_RANK];
} strided_job;

/* src and dst element offsets of outer index q over the dims other than
 * skip1 and skip2 (row-major among them). */
static void outer_offsets(const strided_job *j, size_t q, size_t skip1, size_t skip2, int64_t *so,
                          int64_t *dof) {
  *so = 0;
  *dof = 0;
  for (size_t d = j->rank; d-- > 0 && q;) {
    if (d == skip1 || d == skip2)
      continue;
    int64_t c = (int64_t)(q % (size_t)j->dims[d]);
    q /= (size_t)j->dims[d];
    *so += c * j->st[d];
    *dof += c * j->dst_st[d];
  }
}

static void strided_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const strided_job *j = ctx;
  size_t es = j->es, n = j->inner, last = j->rank - 1;
  int64_t s = j->st[last];
  for (size_t r = lo; r < hi; r++) {
    int64_t so, dof;
    outer_offsets(j, r, last, last, &so, &dof);
    char *d = j->dst + (size_t)dof * es;
    const char *src = j->src + so * (int64_t)es;
    if (s == 1) {
      memcpy(d, src, n * es);
    } else if (es == 4) {
      for (size_t i = 0; i < n; i++)
        memcpy(d + i * 4, src + (int64_t)i * s * 4, 4);
    } else {
      for (size_t i = 0; i < n; i++)
        copy_elem(d + i * es, src + (int64_t)i * s * (int64_t)es, es);
    }
  }
}

/* Item q: strip q % strips (TILE values of dim tdim) of batch q / strips. */
static void strided_tiles(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const strided_job *j = ctx;
  size_t es = j->es, last = j->rank - 1, t = j->tdim;
  size_t nt = (size_t)j->dims[t], nl = (size_t)j->dims[last], strips = (nt + TILE - 1) / TILE;
  int64_t sl = j->st[last], dt = j->dst_st[t];
  for (size_t q = lo; q < hi; q++) {
    int64_t so, dof;
    outer_offsets(j, q / strips, t, last, &so, &dof);
    size_t t0 = q % strips * TILE, t1 = t0 + TILE < nt ? t0 + TILE : nt;
    for (size_t l0 = 0; l0 < nl; l0 += TILE) {
      size_t l1 = l0 + TILE < nl ? l0 + TILE : nl;
      for (size_t a = t0; a < t1; a++) {
        char *d = j->dst + ((size_t)dof + a * (size_t)dt) * es;
        const char *src = j->src + (so + (int64_t)a) * (int64_t)es;
        if (es == 4) {
          for (size_t l = l0; l < l1; l++)
            memcpy(d + l * 4, src + (int64_t)l * sl * 4, 4);
        } else {
          for (size_t l = l0; l < l1; l++)
            copy_elem(d + l * es, src + (int64_t)l * sl * (int64_t)es, es);
        }
      }
    }
  }
}

static void copy_strided(void *dst, const void *src, size_t es, size_t rank, const int64_t *dims,
                         const int64_t *st) {
  strided_job j = {.dst = dst, .src = src, .es = es};
  size_t total = prod(dims, 0, rank);
  if (total == 0)
    return;
  /* collapse, innermost first, then put outermost first */
  int64_t cd[TC_MAX_RANK], cs[TC_MAX_RANK];
  size_t cr = 0;
  for (size_t d = rank; d-- > 0;) {
    if (dims[d] == 1)
      continue;
    if (cr > 0 && st[d] == cs[cr - 1] * cd[cr - 1]) {
      cd[cr - 1] *= dims[d];
      continue;
    }
    cd[cr] = dims[d];
    cs[cr++] = st[d];
  }
  if (cr == 0) {
    copy_elem(dst, src, es);
    return;
  }
  j.rank = cr;
  for (size_t d = 0; d < cr; d++) {
    j.dims[d] = cd[cr - 1 - d];
    j.st[d] = cs[cr - 1 - d];
  }
  /* a (batched) 2-D transpose, [N, C, P] read as [N, P, C] (NCHW to NHWC
   * and back): tc_layout_copy's tiles (a [1, 64, 160, 160] Transpose to
   * channels-last 4.6 -> 1.5 ms) */
  size_t o = cr == 3 ? 1 : 0;
  if ((cr == 2 || cr == 3) && j.st[o] == 1 && j.st[o + 1] == j.dims[o] &&
      (cr == 2 || j.st[0] == j.dims[1] * j.dims[2])) {
    tc_layout_copy(dst, src, es, cr == 3 ? (size_t)j.dims[0] : 1, (size_t)j.dims[o + 1],
                   (size_t)j.dims[o], true);
    return;
  }
  int64_t s = 1;
  for (size_t d = cr; d-- > 0;) {
    j.dst_st[d] = s;
    s *= j.dims[d];
  }
  j.inner = (size_t)j.dims[cr - 1];
  j.tdim = cr;
  for (size_t d = 0; d + 1 < cr && j.st[cr - 1] != 1; d++)
    if (j.st[d] == 1 && j.dims[d] >= 4 && j.inner >= 4)
      j.tdim = d;
  if (j.tdim < cr) {
    size_t strips = ((size_t)j.dims[j.tdim] + TILE - 1) / TILE;
    size_t items = total / (size_t)j.dims[j.tdim] / j.inner * strips;
    tc_parallel_for(items, tc_parallel_grain(TILE * j.inner), strided_tiles, &j);
    return;
  }
  tc_parallel_for(total / j.inner, tc_parallel_grain(j.inner * (j.st[cr - 1] == 1 ? 1 : 4)),
                  strided_rows, &j);
}

/* The workhorse of the per-dimension data movement ops (Transpose, Slice,
 * Pad, Tile, Expand, DepthToSpace ...): for every output element o,
 *   dst[o] = src[sum_d map_d(o_d) * sstride[d]]
 * where map_d is maps[d][o_d] (identity when maps or maps[d] is NULL). A map
 * value of -1 writes fill instead (left zero when fill is NULL). */
typedef struct mapped_job {
  char *dst;
  const char *src;
  size_t es, rank;
  const int64_t *odims, *sstride;
  int64_t *const *maps;
  const void *fill;
  /* mapped_rows: the last axis as runs of n outputs from o reading source
   * positions c, c + 1, ... (c < 0: fill), when the runs were counted */
  const struct mrun {
    size_t o, n;
    int64_t c;
  } * runs;
  size_t n_runs;
} mapped_job;

/* Output elements [lo, hi). */
static void mapped_range(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const mapped_job *j = ctx;
  size_t es = j->es, rank = j->rank;
  int64_t *const *maps = j->maps;
  int64_t idx[TC_MAX_RANK] = {0};
  unravel(lo, rank, j->odims, idx);
  for (size_t i = lo; i < hi; i++) {
    int64_t off = 0;
    bool pad = false;
    for (size_t d = 0; d < rank; d++) {
      int64_t c = maps && maps[d] ? maps[d][idx[d]] : idx[d];
      if (c < 0) {
        pad = true;
        break;
      }
      off += c * j->sstride[d];
    }
    if (!pad)
      memcpy(j->dst + i * es, j->src + (size_t)off * es, es);
    else if (j->fill)
      memcpy(j->dst + i * es, j->fill, es);
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < j->odims[d])
        break;
      idx[d] = 0;
    }
  }
}

/* Output rows [lo, hi) (rows: all axes but the last): each row's source
 * offset, or fill, once, then its elements through the last axis's map. */
static void mapped_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const mapped_job *j = ctx;
  size_t es = j->es, rank = j->rank, last = rank - 1, ow = (size_t)j->odims[last];
  int64_t *const *maps = j->maps;
  const int64_t *ml = maps[last];
  int64_t sl = j->sstride[last];
  int64_t idx[TC_MAX_RANK] = {0};
  unravel(lo, last, j->odims, idx);
  for (size_t row = lo; row < hi; row++) {
    int64_t base = 0;
    bool pad = false;
    for (size_t d = 0; d < last && !pad; d++) {
      int64_t c = maps[d] ? maps[d][idx[d]] : idx[d];
      pad = c < 0;
      base += c * j->sstride[d];
    }
    char *dst = j->dst + row * ow * es;
    const char *src = j->src + base * (int64_t)es;
    for (size_t r = 0; j->runs && r < j->n_runs; r++) {
      const struct mrun *u = &j->runs[r];
      if (pad || u->c < 0) {
        for (size_t o = u->o; o < u->o + u->n; o++)
          if (j->fill)
            memcpy(dst + o * es, j->fill, es);
          else
            memset(dst + o * es, 0, es);
      } else {
        memcpy(dst + u->o * es, src + u->c * sl * (int64_t)es, u->n * es);
      }
    }
    for (size_t o = 0; !j->runs && o < ow; o++) {
      int64_t c = ml ? ml[o] : (int64_t)o;
      const void *from = pad || c < 0 ? j->fill : src + c * sl * (int64_t)es;
      if (!from)
        memset(dst + o * es, 0, es);
      else if (es == 4)
        memcpy(dst + o * 4, from, 4);
      else
        memcpy(dst + o * es, from, es);
    }
    for (size_t d = last; d-- > 0;) {
      if (++idx[d] < j->odims[d])
        break;
      idx[d] = 0;
    }
  }
}

/* The reference walks every element in order; the fast kernels use the
 * strided copy when there are no maps and split the walk by rows
 * otherwise (a reflect Pad of [1, 64, 160, 160]: 13.9 -> about 1 ms). */
static void copy_mapped(void *dst, const void *src, size_t es, size_t rank, const int64_t *odims,
                        const int64_t *sstride, int64_t *const *maps, const void *fill) {
  mapped_job j = {.dst = dst,
                  .src = src,
                  .es = es,
                  .rank = rank,
                  .odims = odims,
                  .sstride = sstride,
                  .maps = maps,
                  .fill = fill};
  size_t total = prod(odims, 0, rank);
  if (!tc_fast_kernels_enabled()) {
    mapped_range(&j, 0, 0, total);
    return;
  }
  if (!maps) {
    copy_strided(dst, src, es, rank, odims, sstride);
    return;
  }
  size_t ow = rank ? (size_t)odims[rank - 1] : 1;
  if (rank == 0 || ow == 0) {
    tc_parallel_for(total, tc_parallel_grain(2 * rank + 4), mapped_range, &j);
    return;
  }
  /* runs of consecutive source positions along the last axis, copied whole
   * when its source stride is 1 (Pad's interior, Slice's rows) */
  const int64_t *ml = maps[rank - 1];
  struct mrun *runs = NULL;
  if (sstride[rank - 1] == 1 && (runs = malloc(ow * sizeof *runs))) {
    for (size_t o = 0; o < ow; o++) {
      int64_t c = ml ? ml[o] : (int64_t)o;
      struct mrun *u = j.n_runs ? &runs[j.n_runs - 1] : NULL;
      if (u && ((u->c < 0 && c < 0) || (u->c >= 0 && c == u->c + (int64_t)u->n)))
        u->n++;
      else
        runs[j.n_runs++] = (struct mrun){o, 1, c < 0 ? -1 : c};
    }
    j.runs = runs;
  }
  tc_parallel_for(total / ow, tc_parallel_grain(ow + rank), mapped_rows, &j);
  free(runs);
}

/* Output dims[d] = in dims[perm[d]]; copies data transposed. */
static void transpose_raw(void *dst, const void *src, size_t es, size_t rank, const int64_t *dims,
                          const int64_t *perm) {
  int64_t st[TC_MAX_RANK], ost[TC_MAX_RANK], od[TC_MAX_RANK];
  strides_of(rank, dims, st);
  for (size_t d = 0; d < rank; d++) {
    od[d] = dims[perm[d]];
    ost[d] = st[perm[d]];
  }
  copy_mapped(dst, src, es, rank, od, ost, NULL, NULL);
}

static int64_t *arena_i64(tc_kernel_ctx *k, size_t n) {
  return tc_arena_alloc(k->arena, (n ? n : 1) * sizeof(int64_t));
}

static tc_status nomem(tc_kernel_ctx *k) {
  return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
}

/* Copies t into out with the same dtype and new dims (same element count). */
static tc_status copy_reshaped(tc_kernel_ctx *k, const tc_rt_tensor *t, tc_rt_tensor *out,
                               size_t rank, const int64_t *dims) {
  tc_status s = tc_kernel_alloc_uninit(k, out, t->dtype, rank, dims);
  if (s != TC_STATUS_OK)
    return s;
  size_t n = out->bytes < t->bytes ? out->bytes : t->bytes;
  if (n && out->data != t->data) /* the memory plan may have put out in t's place */
    memcpy(out->data, t->data, n);
  return TC_STATUS_OK;
}

/* String attribute compared with one of choices: its index, dflt when the
 * attribute is absent, -1 when it holds something else. */
static int attr_choice(const tc_node *n, const char *name, const char *const *choices, int dflt) {
  const tc_attr *a = tc_node_attr(n, name);
  if (!a)
    return dflt;
  for (int i = 0; choices[i]; i++)
    if (strlen(choices[i]) == a->s.len && memcmp(choices[i], a->s.data, a->s.len) == 0)
      return i;
  return -1;
}

static const char *const pad_modes[] = {"constant", "reflect", "edge", "wrap", NULL};
static const char *const reductions[] = {"none", "add", "mul", "max", "min", NULL};
static const char *const d2s_modes[] = {"DCR", "CRD", NULL};

/* ---- Identity, Constant, ConstantOfShape, Shape, Size ---- */

static tc_status run_identity(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  if (in[0]->dtype == TC_DTYPE_SEQUENCE || in[0]->dtype == TC_DTYPE_NONE) {
    out[0] = *in[0]; /* a sequence's elements are run-arena copies (seqops.c) */
    return TC_STATUS_OK;
  }
  return copy_reshaped(k, in[0], out, in[0]->rank, in[0]->dims);
}

/* Decodes an IR tensor (attribute payload) into out. */
static tc_status decode_tensor(tc_kernel_ctx *k, const tc_tensor *t, tc_rt_tensor *out) {
  if (t->rank > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "tensor rank %zu is above %d", t->rank,
                          TC_MAX_RANK);
  tc_status s = tc_kernel_alloc(k, out, t->dtype, t->rank, t->dims);
  if (s != TC_STATUS_OK)
    return s;
  size_t n = tc_rt_numel(out);
  if (t->dtype == TC_DTYPE_STRING) {
    if (t->n_strings != n)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "string tensor holds %zu values for %zu elements",
                            t->n_strings, n);
    char **dst = out->data;
    for (size_t i = 0; i < n; i++) {
      char *c = tc_arena_alloc(k->arena, t->strings[i].len + 1);
      if (!c)
        return nomem(k);
      if (t->strings[i].len)
        memcpy(c, t->strings[i].data, t->strings[i].len);
      dst[i] = c;
    }
    return TC_STATUS_OK;
  }
  const void *bytes;
  size_t len;
  void *owned = NULL;
  s = tc_tensor_raw_bytes(t, &bytes, &len, &owned, k->diag);
  if (s != TC_STATUS_OK)
    return s;
  if (len != out->bytes) {
    free(owned);
    return tc_kernel_fail(k, TC_STATUS_INVALID, "tensor holds %zu bytes, its shape needs %zu", len,
                          out->bytes);
  }
  if (len)
    memcpy(out->data, bytes, len);
  free(owned);
  return TC_STATUS_OK;
}

static tc_status run_constant(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)in, (void)n_in;
  tc_status s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_node *n = k->node;
  const tc_attr *a;
  if ((a = tc_node_attr(n, "value")) && a->t)
    return decode_tensor(k, a->t, out);
  if ((a = tc_node_attr(n, "value_float"))) {
    if ((s = tc_kernel_alloc(k, out, TC_DTYPE_F32, 0, NULL)) == TC_STATUS_OK)
      ((float *)out->data)[0] = a->f;
    return s;
  }
  if ((a = tc_node_attr(n, "value_int"))) {
    if ((s = tc_kernel_alloc(k, out, TC_DTYPE_I64, 0, NULL)) == TC_STATUS_OK)
      ((int64_t *)out->data)[0] = a->i;
    return s;
  }
  if ((a = tc_node_attr(n, "value_floats"))) {
    int64_t d = (int64_t)a->n_floats;
    if ((s = tc_kernel_alloc(k, out, TC_DTYPE_F32, 1, &d)) == TC_STATUS_OK && d)
      memcpy(out->data, a->floats, a->n_floats * sizeof(float));
    return s;
  }
  if ((a = tc_node_attr(n, "value_ints"))) {
    int64_t d = (int64_t)a->n_ints;
    if ((s = tc_kernel_alloc(k, out, TC_DTYPE_I64, 1, &d)) == TC_STATUS_OK && d)
      memcpy(out->data, a->ints, a->n_ints * sizeof(int64_t));
    return s;
  }
  const ProtobufCBinaryData *strs = NULL;
  size_t count = 0;
  size_t rank = 1;
  if ((a = tc_node_attr(n, "value_string"))) {
    strs = &a->s;
    count = 1;
    rank = 0;
  } else if ((a = tc_node_attr(n, "value_strings"))) {
    strs = a->strings;
    count = a->n_strings;
  } else {
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "Constant has no value attribute this kernel reads");
  }
  int64_t d = (int64_t)count;
  if ((s = tc_kernel_alloc(k, out, TC_DTYPE_STRING, rank, &d)) != TC_STATUS_OK)
    return s;
  char **dst = out->data;
  for (size_t i = 0; i < count; i++) {
    char *c = tc_arena_alloc(k->arena, strs[i].len + 1);
    if (!c)
      return nomem(k);
    if (strs[i].len)
      memcpy(c, strs[i].data, strs[i].len);
    dst[i] = c;
  }
  return TC_STATUS_OK;
}

static tc_status run_constant_of_shape(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                       tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  int64_t dims[TC_MAX_RANK];
  size_t rank;
  if ((s = read_ints(k, in[0], 0, dims, TC_MAX_RANK, &rank)) != TC_STATUS_OK)
    return s;
  tc_rt_tensor val = {0};
  const tc_attr *a = tc_node_attr(k->node, "value");
  if (a && a->t) {
    if ((s = decode_tensor(k, a->t, &val)) != TC_STATUS_OK)
      return s;
    if (tc_rt_numel(&val) != 1)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "value must hold one element, holds %zu",
                            tc_rt_numel(&val));
  } else {
    if ((s = tc_kernel_alloc(k, &val, TC_DTYPE_F32, 0, NULL)) != TC_STATUS_OK)
      return s;
  }
  size_t es;
  if ((s = need_elem(k, 0, val.dtype, &es)) != TC_STATUS_OK)
    return s;
  if ((s = tc_kernel_alloc_uninit(k, out, val.dtype, rank, dims)) != TC_STATUS_OK)
    return s;
  /* the value once, then the filled part copied after itself: log2(n)
   * copies (an element at a time, AlexNet's 9216 x 4096 classifier weights
   * took 166 ms) */
  size_t n = tc_rt_numel(out), done = n ? 1 : 0;
  char *y = out->data;
  if (n)
    memcpy(y, val.data, es);
  for (; done < n; done *= 2)
    memcpy(y + done * es, y, (done < n - done ? done : n - done) * es);
  return TC_STATUS_OK;
}

static tc_status run_shape(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  int64_t r = (int64_t)in[0]->rank;
  int64_t start = tc_attr_int(k->node, "start", 0), end = tc_attr_int(k->node, "end", r);
  if (start < 0)
    start += r;
  if (end < 0)
    end += r;
  start = start < 0 ? 0 : start > r ? r : start;
  end = end < 0 ? 0 : end > r ? r : end;
  int64_t len = end > start ? end - start : 0;
  if ((s = tc_kernel_alloc(k, out, TC_DTYPE_I64, 1, &len)) != TC_STATUS_OK)
    return s;
  for (int64_t i = 0; i < len; i++)
    ((int64_t *)out->data)[i] = in[0]->dims[start + i];
  return TC_STATUS_OK;
}

static tc_status run_size(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s == TC_STATUS_OK)
    s = tc_kernel_alloc(k, out, TC_DTYPE_I64, 0, NULL);
  if (s == TC_STATUS_OK)
    ((int64_t *)out->data)[0] = (int64_t)tc_rt_numel(in[0]);
  return s;
}

/* ---- Reshape, Flatten, Squeeze, Unsqueeze ---- */

static tc_status run_reshape(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  int64_t dims[TC_MAX_RANK];
  size_t rank;
  if ((s = read_ints(k, in[1], 1, dims, TC_MAX_RANK, &rank)) != TC_STATUS_OK)
    return s;
  bool allowzero = tc_attr_int(k->node, "allowzero", 0) != 0;
  ptrdiff_t infer = -1;
  size_t known = 1;
  for (size_t d = 0; d < rank; d++) {
    if (dims[d] == 0 && !allowzero) {
      if (d >= in[0]->rank)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "shape[%zu] = 0 copies a dim the input lacks",
                              d);
      dims[d] = in[0]->dims[d];
    }
    if (dims[d] == -1) {
      if (infer >= 0)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "shape has more than one -1");
      infer = (ptrdiff_t)d;
    } else if (dims[d] < 0) {
      return tc_kernel_fail(k, TC_STATUS_INVALID, "shape[%zu] = %lld is negative", d,
                            (long long)dims[d]);
    } else {
      known *= (size_t)dims[d];
    }
  }
  size_t n = tc_rt_numel(in[0]);
  if (infer >= 0) {
    if (known == 0 || n % known)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "cannot infer the -1 dim: %zu elements over %zu",
                            n, known);
    dims[infer] = (int64_t)(n / known);
  } else if (known != n) {
    return tc_kernel_fail(k, TC_STATUS_INVALID, "shape has %zu elements, input has %zu", known, n);
  }
  return copy_reshaped(k, in[0], out, rank, dims);
}

static tc_status run_flatten(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  int64_t r = (int64_t)in[0]->rank, axis = tc_attr_int(k->node, "axis", 1);
  if (axis < 0)
    axis += r;
  if (axis < 0 || axis > r)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %lld",
                          (long long)tc_attr_int(k->node, "axis", 1), (long long)r);
  int64_t dims[2] = {(int64_t)prod(in[0]->dims, 0, (size_t)axis),
                     (int64_t)prod(in[0]->dims, (size_t)axis, (size_t)r)};
  return copy_reshaped(k, in[0], out, 2, dims);
}

/* Axes of Squeeze/Unsqueeze: the attribute before opset 13, the input after.
 * *n = -1 when none are given. */
static tc_status squeeze_axes(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              int64_t *axes, ptrdiff_t *n) {
  *n = -1;
  if (k->opset < 13) {
    const int64_t *v;
    ptrdiff_t c = tc_attr_ints(k->node, "axes", &v);
    if (c > TC_MAX_RANK)
      return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "too many axes (%td)", c);
    if (c > 0)
      memcpy(axes, v, (size_t)c * sizeof *axes);
    *n = c;
    return TC_STATUS_OK;
  }
  const tc_rt_tensor *t = opt_in(in, n_in, 1);
  if (!t)
    return TC_STATUS_OK;
  size_t c;
  tc_status s = read_ints(k, t, 1, axes, TC_MAX_RANK, &c);
  *n = (ptrdiff_t)c;
  return s;
}

static tc_status run_squeeze(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  int64_t axes[TC_MAX_RANK];
  ptrdiff_t na;
  if ((s = squeeze_axes(k, in, n_in, axes, &na)) != TC_STATUS_OK)
    return s;
  bool drop[TC_MAX_RANK] = {false};
  if (na < 0) {
    for (size_t d = 0; d < x->rank; d++)
      drop[d] = x->dims[d] == 1;
  } else {
    for (ptrdiff_t i = 0; i < na; i++) {
      int64_t a;
      if ((s = norm_axis(k, axes[i], x->rank, &a)) != TC_STATUS_OK)
        return s;
      if (x->dims[a] != 1)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "cannot squeeze axis %lld of size %lld",
                              (long long)axes[i], (long long)x->dims[a]);
      drop[a] = true;
    }
  }
  int64_t dims[TC_MAX_RANK];
  size_t r = 0;
  for (size_t d = 0; d < x->rank; d++)
    if (!drop[d])
      dims[r++] = x->dims[d];
  return copy_reshaped(k, x, out, r, dims);
}

static tc_status run_unsqueeze(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, k->opset < 13 ? 1 : 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  int64_t axes[TC_MAX_RANK];
  ptrdiff_t na;
  if ((s = squeeze_axes(k, in, n_in, axes, &na)) != TC_STATUS_OK)
    return s;
  if (na < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Unsqueeze needs axes");
  size_t r = x->rank + (size_t)na;
  if (r > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output rank %zu is above %d", r, TC_MAX_RANK);
  bool ins[TC_MAX_RANK] = {false};
  for (ptrdiff_t i = 0; i < na; i++) {
    int64_t a;
    if ((s = norm_axis(k, axes[i], r, &a)) != TC_STATUS_OK)
      return s;
    if (ins[a])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is repeated", (long long)axes[i]);
    ins[a] = true;
  }
  int64_t dims[TC_MAX_RANK];
  for (size_t d = 0, j = 0; d < r; d++)
    dims[d] = ins[d] ? 1 : x->dims[j++];
  return copy_reshaped(k, x, out, r, dims);
}

/* ---- Transpose, Concat, Split ---- */

static tc_status run_transpose(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  int64_t perm[TC_MAX_RANK], od[TC_MAX_RANK];
  const int64_t *p;
  ptrdiff_t np = tc_attr_ints(k->node, "perm", &p);
  if (np >= 0 && (size_t)np != x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "perm has %td entries for rank %zu", np, x->rank);
  bool seen[TC_MAX_RANK] = {false};
  for (size_t d = 0; d < x->rank; d++) {
    int64_t v = np >= 0 ? p[d] : (int64_t)(x->rank - 1 - d);
    int64_t a = tc_axis(v, x->rank);
    if (a < 0 || seen[a])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "perm is not a permutation of 0..%zu",
                            x->rank - 1);
    seen[a] = true;
    perm[d] = a;
    od[d] = x->dims[a];
  }
  if ((s = tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, od)) != TC_STATUS_OK)
    return s;
  transpose_raw(out->data, x->data, es, x->rank, x->dims, perm);
  return TC_STATUS_OK;
}

typedef struct concat_job {
  const tc_rt_tensor *const *in;
  size_t n_in;
  char *dst;
  int64_t *pre; /* bytes of the inputs' chunks before input i in an output row */
} concat_job;

/* Items q = o * n_in + i: input i's chunk of outer row o. */
static void concat_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const concat_job *j = ctx;
  size_t row = (size_t)j->pre[j->n_in];
  for (size_t q = lo; q < hi; q++) {
    size_t o = q / j->n_in, i = q % j->n_in, chunk = (size_t)(j->pre[i + 1] - j->pre[i]);
    if (chunk)
      memcpy(j->dst + o * row + (size_t)j->pre[i], (const char *)j->in[i]->data + o * chunk, chunk);
  }
}

static tc_status run_concat(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  if (k->opset >= 4 && !tc_attr_has(k->node, "axis"))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Concat needs an axis");
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  int64_t axis;
  if ((s = norm_axis(k, tc_attr_int(k->node, "axis", 1), x->rank, &axis)) != TC_STATUS_OK)
    return s;
  int64_t dims[TC_MAX_RANK];
  memcpy(dims, x->dims, x->rank * sizeof *dims);
  dims[axis] = 0;
  for (size_t i = 0; i < n_in; i++) {
    const tc_rt_tensor *t = in[i];
    if (!t)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu is missing", i);
    if (t->dtype != x->dtype || t->rank != x->rank)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu differs in dtype or rank", i);
    for (size_t d = 0; d < x->rank; d++)
      if ((int64_t)d != axis && t->dims[d] != x->dims[d])
        return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu has dim %zu = %lld, expected %lld",
                              i, d, (long long)t->dims[d], (long long)x->dims[d]);
    dims[axis] += t->dims[axis];
  }
  if ((s = tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, dims)) != TC_STATUS_OK)
    return s;
  size_t outer = prod(dims, 0, (size_t)axis), inner = prod(dims, (size_t)axis + 1, x->rank);
  char *dst = out->data;
  if (!tc_fast_kernels_enabled()) {
    for (size_t o = 0; o < outer; o++)
      for (size_t i = 0; i < n_in; i++) {
        size_t chunk = (size_t)in[i]->dims[axis] * inner * es;
        if (chunk)
          memcpy(dst, (const char *)in[i]->data + o * chunk, chunk);
        dst += chunk;
      }
    return TC_STATUS_OK;
  }
  /* fast: the (outer row, input) chunks are independent copies */
  concat_job j = {.in = in, .n_in = n_in, .dst = dst, .pre = arena_i64(k, n_in + 1)};
  if (!j.pre)
    return nomem(k);
  j.pre[0] = 0;
  for (size_t i = 0; i < n_in; i++)
    j.pre[i + 1] = j.pre[i] + in[i]->dims[axis] * (int64_t)(inner * es);
  size_t avg = (size_t)j.pre[n_in] / n_in;
  tc_parallel_for(outer * n_in, tc_parallel_grain(avg / 4 + 1), concat_piece, &j);
  return TC_STATUS_OK;
}

static tc_status run_split(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  int64_t axis;
  if ((s = norm_axis(k, tc_attr_int(k->node, "axis", 0), x->rank, &axis)) != TC_STATUS_OK)
    return s;
  int64_t dim = x->dims[axis];
  int64_t *sizes = arena_i64(k, n_out);
  if (!sizes)
    return nomem(k);
  const tc_rt_tensor *st = k->opset >= 13 ? opt_in(in, n_in, 1) : NULL;
  const int64_t *sa = NULL;
  ptrdiff_t nsa = k->opset < 13 ? tc_attr_ints(k->node, "split", &sa) : -1;
  if (st || nsa >= 0) {
    size_t c = st ? tc_rt_numel(st) : (size_t)nsa;
    if (st && !tc_dtype_is_int(st->dtype))
      return tc_kernel_bad_dtype(k, 1, st->dtype);
    if (c != n_out)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "split has %zu entries for %zu outputs", c,
                            n_out);
    int64_t sum = 0;
    for (size_t i = 0; i < c; i++) {
      sizes[i] = st ? tc_rt_get_i64(st, i) : sa[i];
      if (sizes[i] < 0)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "split[%zu] is negative", i);
      sum += sizes[i];
    }
    if (sum != dim)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "split sums to %lld, axis has %lld",
                            (long long)sum, (long long)dim);
  } else {
    int64_t parts = (int64_t)n_out;
    if (k->opset >= 18 && tc_attr_has(k->node, "num_outputs")) {
      parts = tc_attr_int(k->node, "num_outputs", 0);
      if (parts != (int64_t)n_out)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "num_outputs is %lld, node has %zu outputs",
                              (long long)parts, n_out);
      int64_t chunk = (dim + parts - 1) / parts;
      for (int64_t i = 0; i < parts; i++) {
        int64_t left = dim - chunk * i;
        sizes[i] = left < 0 ? 0 : left < chunk ? left : chunk;
      }
    } else {
      if (dim % parts)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "axis of %lld does not split in %lld parts",
                              (long long)dim, (long long)parts);
      for (int64_t i = 0; i < parts; i++)
        sizes[i] = dim / parts;
    }
  }
  size_t outer = prod(x->dims, 0, (size_t)axis), inner = prod(x->dims, (size_t)axis + 1, x->rank);
  int64_t off = 0;
  for (size_t i = 0; i < n_out; i++) {
    int64_t dims[TC_MAX_RANK];
    memcpy(dims, x->dims, x->rank * sizeof *dims);
    dims[axis] = sizes[i];
    if ((s = tc_kernel_alloc(k, &out[i], x->dtype, x->rank, dims)) != TC_STATUS_OK)
      return s;
    size_t chunk = (size_t)sizes[i] * inner * es, row = (size_t)dim * inner * es;
    for (size_t o = 0; o < outer && chunk; o++)
      memcpy((char *)out[i].data + o * chunk,
             (const char *)x->data + o * row + (size_t)off * inner * es, chunk);
    off += sizes[i];
  }
  return TC_STATUS_OK;
}

/* ---- Slice ---- */

static tc_status run_slice(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, k->opset >= 10 ? 3 : 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  size_t r = x->rank;
  int64_t starts[TC_MAX_RANK], ends[TC_MAX_RANK], axes[TC_MAX_RANK], steps[TC_MAX_RANK];
  size_t ns, ne, na, nst;
  if (k->opset >= 10) {
    if ((s = read_ints(k, in[1], 1, starts, TC_MAX_RANK, &ns)) != TC_STATUS_OK ||
        (s = read_ints(k, in[2], 2, ends, TC_MAX_RANK, &ne)) != TC_STATUS_OK)
      return s;
    const tc_rt_tensor *ta = opt_in(in, n_in, 3), *ts = opt_in(in, n_in, 4);
    na = ns;
    nst = ns;
    if (ta && (s = read_ints(k, ta, 3, axes, TC_MAX_RANK, &na)) != TC_STATUS_OK)
      return s;
    if (!ta)
      for (size_t i = 0; i < ns; i++)
        axes[i] = (int64_t)i;
    if (ts && (s = read_ints(k, ts, 4, steps, TC_MAX_RANK, &nst)) != TC_STATUS_OK)
      return s;
    if (!ts)
      for (size_t i = 0; i < ns; i++)
        steps[i] = 1;
  } else {
    const int64_t *v;
    ptrdiff_t c1 = tc_attr_ints(k->node, "starts", &v);
    if (c1 < 0 || c1 > TC_MAX_RANK)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "bad or missing starts");
    memcpy(starts, v, (size_t)c1 * sizeof *v);
    ptrdiff_t c2 = tc_attr_ints(k->node, "ends", &v);
    if (c2 < 0 || c2 > TC_MAX_RANK)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "bad or missing ends");
    memcpy(ends, v, (size_t)c2 * sizeof *v);
    ns = (size_t)c1;
    ne = (size_t)c2;
    ptrdiff_t c3 = tc_attr_ints(k->node, "axes", &v);
    if (c3 > TC_MAX_RANK)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "too many axes");
    na = c3 >= 0 ? (size_t)c3 : ns;
    for (size_t i = 0; i < na; i++)
      axes[i] = c3 >= 0 ? v[i] : (int64_t)i;
    nst = ns;
    for (size_t i = 0; i < ns; i++)
      steps[i] = 1;
  }
  if (ne != ns || na != ns || nst != ns)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "starts, ends, axes and steps differ in length");
  int64_t first[TC_MAX_RANK], step[TC_MAX_RANK], od[TC_MAX_RANK];
  bool seen[TC_MAX_RANK] = {false};
  for (size_t d = 0; d < r; d++) {
    first[d] = 0;
    step[d] = 1;
    od[d] = x->dims[d];
  }
  for (size_t i = 0; i < ns; i++) {
    int64_t a;
    if ((s = norm_axis(k, axes[i], r, &a)) != TC_STATUS_OK)
      return s;
    if (seen[a])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is repeated", (long long)axes[i]);
    seen[a] = true;
    int64_t n = x->dims[a], b = starts[i], e = ends[i], st = steps[i];
    if (st == 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "step of axis %lld is 0", (long long)a);
    if (b < 0)
      b += n;
    if (e < 0)
      e += n;
    int64_t cnt;
    if (st > 0) {
      b = b < 0 ? 0 : b > n ? n : b;
      e = e < 0 ? 0 : e > n ? n : e;
      cnt = e > b ? (e - b - 1) / st + 1 : 0;
    } else {
      b = b < 0 ? 0 : b > n - 1 ? n - 1 : b;
      e = e < -1 ? -1 : e > n - 1 ? n - 1 : e;
      cnt = b > e ? (int64_t)((uint64_t)(b - e - 1) / ((uint64_t)0 - (uint64_t)st)) + 1 : 0;
    }
    first[a] = b;
    step[a] = st;
    od[a] = cnt;
  }
  if ((s = tc_kernel_alloc_uninit(k, out, x->dtype, r, od)) != TC_STATUS_OK)
    return s;
  int64_t sst[TC_MAX_RANK], *maps[TC_MAX_RANK];
  strides_of(r, x->dims, sst);
  if (tc_fast_kernels_enabled()) {
    /* element o_d of dim d is first_d + o_d * step_d: a strided copy (every
     * first_d is a valid index when the output is not empty) */
    int64_t base = 0, fst[TC_MAX_RANK];
    for (size_t d = 0; d < r; d++) {
      base += first[d] * sst[d];
      fst[d] = step[d] * sst[d];
    }
    if (tc_rt_numel(out))
      copy_strided(out->data, (const char *)x->data + base * (int64_t)es, es, r, od, fst);
    return TC_STATUS_OK;
  }
  for (size_t d = 0; d < r; d++) {
    if (!(maps[d] = arena_i64(k, (size_t)od[d])))
      return nomem(k);
    for (int64_t o = 0; o < od[d]; o++)
      maps[d][o] = first[d] + o * step[d];
  }
  copy_mapped(out->data, x->data, es, r, od, sst, maps, NULL);
  return TC_STATUS_OK;
}

/* ---- Gather family ---- */

static tc_status index_at(tc_kernel_ctx *k, const tc_rt_tensor *idx, size_t i, int64_t n,
                          int64_t *v) {
  int64_t j = tc_rt_get_i64(idx, i);
  if (j < -n || j >= n)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "index %lld is out of range [-%lld, %lld)",
                          (long long)j, (long long)n, (long long)n);
  *v = j < 0 ? j + n : j;
  return TC_STATUS_OK;
}

typedef struct gather_job {
  const tc_rt_tensor *x, *idx;
  char *dst;
  size_t ni, n, chunk; /* indices, the axis' length, bytes per gathered slice */
} gather_job;

/* Items q = o * ni + i: slice idx[i] of outer block o (indices checked). */
static void gather_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const gather_job *j = ctx;
  for (size_t q = lo; q < hi && j->chunk; q++) {
    size_t o = q / j->ni;
    int64_t v = tc_rt_get_i64(j->idx, q % j->ni);
    if (v < 0)
      v += (int64_t)j->n;
    memcpy(j->dst + q * j->chunk, (const char *)j->x->data + (o * j->n + (size_t)v) * j->chunk,
           j->chunk);
  }
}

static tc_status run_gather(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *idx = in[1];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK ||
      (s = check_index_dtype(k, idx, 1)) != TC_STATUS_OK)
    return s;
  int64_t axis;
  if ((s = norm_axis(k, tc_attr_int(k->node, "axis", 0), x->rank, &axis)) != TC_STATUS_OK)
    return s;
  size_t r = x->rank - 1 + idx->rank;
  if (r > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output rank %zu is above %d", r, TC_MAX_RANK);
  int64_t dims[TC_MAX_RANK];
  size_t j = 0;
  for (int64_t d = 0; d < axis; d++)
    dims[j++] = x->dims[d];
  for (size_t d = 0; d < idx->rank; d++)
    dims[j++] = idx->dims[d];
  for (size_t d = (size_t)axis + 1; d < x->rank; d++)
    dims[j++] = x->dims[d];
  if ((s = tc_kernel_alloc_uninit(k, out, x->dtype, r, dims)) != TC_STATUS_OK)
    return s;
  size_t outer = prod(x->dims, 0, (size_t)axis), inner = prod(x->dims, (size_t)axis + 1, x->rank);
  size_t ni = tc_rt_numel(idx), n = (size_t)x->dims[axis], chunk = inner * es;
  char *dst = out->data;
  if (tc_fast_kernels_enabled()) {
    /* every index checked first: the threads cannot report errors */
    for (size_t i = 0; i < ni; i++) {
      int64_t v;
      if ((s = index_at(k, idx, i, (int64_t)n, &v)) != TC_STATUS_OK)
        return s;
    }
    gather_job j = {.x = x, .idx = idx, .dst = dst, .ni = ni, .n = n, .chunk = chunk};
    tc_parallel_for(outer * ni, tc_parallel_grain(chunk / 4 + 4), gather_piece, &j);
    return TC_STATUS_OK;
  }
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < ni; i++) {
      int64_t v = 0;
      if ((s = index_at(k, idx, i, (int64_t)n, &v)) != TC_STATUS_OK)
        return s;
      if (chunk)
        memcpy(dst, (const char *)x->data + (o * n + (size_t)v) * chunk, chunk);
      dst += chunk;
    }
  return TC_STATUS_OK;
}

static tc_status run_gather_elements(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                     tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *idx = in[1];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK ||
      (s = check_index_dtype(k, idx, 1)) != TC_STATUS_OK)
    return s;
  int64_t axis;
  if ((s = norm_axis(k, tc_attr_int(k->node, "axis", 0), x->rank, &axis)) != TC_STATUS_OK)
    return s;
  if (idx->rank != x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "indices rank %zu differs from data rank %zu",
                          idx->rank, x->rank);
  if ((s = tc_kernel_alloc(k, out, x->dtype, idx->rank, idx->dims)) != TC_STATUS_OK)
    return s;
  int64_t st[TC_MAX_RANK], c[TC_MAX_RANK];
  strides_of(x->rank, x->dims, st);
  size_t n = tc_rt_numel(idx);
  for (size_t i = 0; i < n; i++) {
    unravel(i, idx->rank, idx->dims, c);
    if ((s = index_at(k, idx, i, x->dims[axis], &c[axis])) != TC_STATUS_OK)
      return s;
    int64_t off = 0;
    for (size_t d = 0; d < x->rank; d++) {
      if (c[d] >= x->dims[d])
        return tc_kernel_fail(k, TC_STATUS_INVALID, "indices are larger than data on dim %zu", d);
      off += c[d] * st[d];
    }
    memcpy((char *)out->data + i * es, (const char *)x->data + (size_t)off * es, es);
  }
  return TC_STATUS_OK;
}

static tc_status run_gather_nd(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *idx = in[1];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK ||
      (s = check_index_dtype(k, idx, 1)) != TC_STATUS_OK)
    return s;
  int64_t b = tc_attr_int(k->node, "batch_dims", 0);
  if (idx->rank < 1 || b < 0 || (size_t)b >= idx->rank || (size_t)b >= x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "batch_dims %lld does not fit the ranks",
                          (long long)b);
  size_t m = (size_t)idx->dims[idx->rank - 1];
  if ((size_t)b + m > x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "index tuples of %zu are too long for rank %zu", m,
                          x->rank);
  for (int64_t d = 0; d < b; d++)
    if (x->dims[d] != idx->dims[d])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "batch dim %lld differs", (long long)d);
  int64_t dims[TC_MAX_RANK];
  size_t r = 0;
  for (size_t d = 0; d + 1 < idx->rank; d++)
    dims[r++] = idx->dims[d];
  for (size_t d = (size_t)b + m; d < x->rank; d++) {
    if (r >= TC_MAX_RANK)
      return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output rank is above %d", TC_MAX_RANK);
    dims[r++] = x->dims[d];
  }
  if ((s = tc_kernel_alloc(k, out, x->dtype, r, dims)) != TC_STATUS_OK)
    return s;
  int64_t st[TC_MAX_RANK];
  strides_of(x->rank, x->dims, st);
  size_t batches = prod(x->dims, 0, (size_t)b);
  size_t per_batch = prod(idx->dims, (size_t)b, idx->rank - 1);
  size_t slice = prod(x->dims, (size_t)b + m, x->rank) * es;
  size_t batch_elems = prod(x->dims, (size_t)b, x->rank);
  char *dst = out->data;
  for (size_t bi = 0; bi < batches; bi++)
    for (size_t t = 0; t < per_batch; t++) {
      size_t base = (bi * per_batch + t) * m;
      int64_t off = 0;
      for (size_t j = 0; j < m; j++) {
        int64_t v = 0;
        if ((s = index_at(k, idx, base + j, x->dims[(size_t)b + j], &v)) != TC_STATUS_OK)
          return s;
        off += v * st[(size_t)b + j];
      }
      if (slice)
        memcpy(dst, (const char *)x->data + (bi * batch_elems + (size_t)off) * es, slice);
      dst += slice;
    }
  return TC_STATUS_OK;
}

/* ---- Scatter family ---- */

/* dst[di] = reduce(dst[di], src[si]); reduction 0 (none) copies element bytes. */
static void scatter_one(tc_rt_tensor *dst, size_t di, const tc_rt_tensor *src, size_t si, int red,
                        size_t es) {
  if (red == 0) {
    memcpy((char *)dst->data + di * es, (const char *)src->data + si * es, es);
  } else if (tc_dtype_is_float(dst->dtype)) {
    double a = tc_rt_get_f64(dst, di), b = tc_rt_get_f64(src, si);
    double v = red == 1 ? a + b : red == 2 ? a * b : red == 3 ? (a > b ? a : b) : (a < b ? a : b);
    tc_rt_set_f64(dst, di, v);
  } else if (dst->dtype == TC_DTYPE_U64) {
    uint64_t a = ((uint64_t *)dst->data)[di], b = ((const uint64_t *)src->data)[si];
    ((uint64_t *)dst->data)[di] = red == 1   ? a + b
                                  : red == 2 ? a * b
                                  : red == 3 ? (a > b ? a : b)
                                             : (a < b ? a : b);
  } else {
    int64_t a = tc_rt_get_i64(dst, di), b = tc_rt_get_i64(src, si);
    int64_t v = red == 1   ? (int64_t)((uint64_t)a + (uint64_t)b)
                : red == 2 ? (int64_t)((uint64_t)a * (uint64_t)b)
                : red == 3 ? (a > b ? a : b)
                           : (a < b ? a : b);
    tc_rt_set_i64(dst, di, v);
  }
}

static tc_status scatter_setup(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out, size_t *es, int *red) {
  tc_status s = need_inputs(k, in, n_in, 3);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  if ((s = need_elem(k, 0, x->dtype, es)) != TC_STATUS_OK ||
      (s = check_index_dtype(k, in[1], 1)) != TC_STATUS_OK)
    return s;
  if (in[2]->dtype != x->dtype)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "updates dtype %s differs from data dtype %s",
                          tc_dtype_name(in[2]->dtype), tc_dtype_name(x->dtype));
  *red = attr_choice(k->node, "reduction", reductions, 0);
  if (*red < 0)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "unknown reduction");
  if (*red && !is_numeric(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  return copy_reshaped(k, x, out, x->rank, x->dims);
}

static tc_status run_scatter_elements(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                      tc_rt_tensor *out, size_t n_out) {
  size_t es;
  int red;
  tc_status s = scatter_setup(k, in, n_in, out, n_out, &es, &red);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *idx = in[1], *upd = in[2];
  int64_t axis;
  if ((s = norm_axis(k, tc_attr_int(k->node, "axis", 0), x->rank, &axis)) != TC_STATUS_OK)
    return s;
  if (idx->rank != x->rank || upd->rank != x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "data, indices and updates differ in rank");
  for (size_t d = 0; d < x->rank; d++)
    if (idx->dims[d] != upd->dims[d])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "indices and updates differ in shape");
  int64_t st[TC_MAX_RANK], c[TC_MAX_RANK];
  strides_of(x->rank, x->dims, st);
  size_t n = tc_rt_numel(idx);
  for (size_t i = 0; i < n; i++) {
    unravel(i, idx->rank, idx->dims, c);
    if ((s = index_at(k, idx, i, x->dims[axis], &c[axis])) != TC_STATUS_OK)
      return s;
    int64_t off = 0;
    for (size_t d = 0; d < x->rank; d++) {
      if (c[d] >= x->dims[d])
        return tc_kernel_fail(k, TC_STATUS_INVALID, "indices are larger than data on dim %zu", d);
      off += c[d] * st[d];
    }
    scatter_one(out, (size_t)off, upd, i, red, es);
  }
  return TC_STATUS_OK;
}

static tc_status run_scatter_nd(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  size_t es;
  int red;
  tc_status s = scatter_setup(k, in, n_in, out, n_out, &es, &red);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *idx = in[1], *upd = in[2];
  if (idx->rank < 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "indices must have rank >= 1");
  size_t m = (size_t)idx->dims[idx->rank - 1];
  if (m > x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "index tuples of %zu are too long for rank %zu", m,
                          x->rank);
  /* updates shape: indices.shape[:-1] + data.shape[m:] */
  size_t ur = idx->rank - 1 + x->rank - m;
  bool ok = upd->rank == ur;
  for (size_t d = 0; ok && d + 1 < idx->rank; d++)
    ok = upd->dims[d] == idx->dims[d];
  for (size_t d = m; ok && d < x->rank; d++)
    ok = upd->dims[idx->rank - 1 + d - m] == x->dims[d];
  if (!ok)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "updates shape does not match indices and data");
  int64_t st[TC_MAX_RANK];
  strides_of(x->rank, x->dims, st);
  size_t tuples = prod(idx->dims, 0, idx->rank - 1), slice = prod(x->dims, m, x->rank);
  for (size_t t = 0; t < tuples; t++) {
    int64_t off = 0;
    for (size_t j = 0; j < m; j++) {
      int64_t v = 0;
      if ((s = index_at(k, idx, t * m + j, x->dims[j], &v)) != TC_STATUS_OK)
        return s;
      off += v * st[j];
    }
    for (size_t e = 0; e < slice; e++)
      scatter_one(out, (size_t)off + e, upd, t * slice + e, red, es);
  }
  return TC_STATUS_OK;
}

/* ---- Expand, Tile, Pad ---- */

static tc_status run_expand(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  tc_rt_tensor shape = {0};
  if ((s = read_ints(k, in[1], 1, shape.dims, TC_MAX_RANK, &shape.rank)) != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *both[2] = {x, &shape};
  int64_t dims[TC_MAX_RANK], st[TC_MAX_RANK];
  size_t r;
  if ((s = tc_broadcast_shape(k, both, 2, &r, dims)) != TC_STATUS_OK)
    return s;
  if ((s = tc_kernel_alloc_uninit(k, out, x->dtype, r, dims)) != TC_STATUS_OK)
    return s;
  tc_broadcast_strides(x, r, dims, st);
  copy_mapped(out->data, x->data, es, r, dims, st, NULL, NULL);
  return TC_STATUS_OK;
}

static tc_status run_tile(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es, nr;
  int64_t rep[TC_MAX_RANK], dims[TC_MAX_RANK], st[TC_MAX_RANK], *maps[TC_MAX_RANK];
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK ||
      (s = read_ints(k, in[1], 1, rep, TC_MAX_RANK, &nr)) != TC_STATUS_OK)
    return s;
  if (nr != x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "repeats has %zu entries for rank %zu", nr,
                          x->rank);
  for (size_t d = 0; d < x->rank; d++) {
    if (rep[d] < 0 || (x->dims[d] && rep[d] > INT64_MAX / x->dims[d]))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "repeats[%zu] = %lld is out of range", d,
                            (long long)rep[d]);
    dims[d] = x->dims[d] * rep[d];
  }
  if ((s = tc_kernel_alloc(k, out, x->dtype, x->rank, dims)) != TC_STATUS_OK)
    return s;
  strides_of(x->rank, x->dims, st);
  for (size_t d = 0; d < x->rank; d++) {
    if (!(maps[d] = arena_i64(k, (size_t)dims[d])))
      return nomem(k);
    for (int64_t o = 0; o < dims[d]; o++)
      maps[d][o] = o % x->dims[d];
  }
  copy_mapped(out->data, x->data, es, x->rank, dims, st, maps, NULL);
  return TC_STATUS_OK;
}

static int64_t pos_mod(int64_t a, int64_t n) {
  int64_t m = a % n;
  return m < 0 ? m + n : m;
}

static tc_status run_pad(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, k->opset >= 11 ? 2 : 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es, r = x->rank;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  int mode = attr_choice(k->node, "mode", pad_modes, 0);
  if (mode < 0)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "unknown pad mode");
  int64_t begin[TC_MAX_RANK] = {0}, end[TC_MAX_RANK] = {0}, pads[2 * TC_MAX_RANK];
  int64_t axes[TC_MAX_RANK];
  size_t np, na;
  /* fill: 16 bytes is enough for any element */
  _Alignas(16) unsigned char fill[16] = {0};
  const char *empty = "";
  if (x->dtype == TC_DTYPE_STRING)
    memcpy(fill, &empty, sizeof empty);
  if (k->opset >= 11) {
    if ((s = read_ints(k, in[1], 1, pads, 2 * TC_MAX_RANK, &np)) != TC_STATUS_OK)
      return s;
    const tc_rt_tensor *cv = opt_in(in, n_in, 2), *ta = opt_in(in, n_in, 3);
    if (cv && tc_rt_numel(cv) > 0) {
      if (cv->dtype != x->dtype)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "constant_value dtype differs from data");
      memcpy(fill, cv->data, es);
    }
    if (ta) {
      if ((s = read_ints(k, ta, 3, axes, TC_MAX_RANK, &na)) != TC_STATUS_OK)
        return s;
    } else {
      na = r;
      for (size_t d = 0; d < r; d++)
        axes[d] = (int64_t)d;
    }
  } else {
    const int64_t *v;
    ptrdiff_t c = tc_attr_ints(k->node, "pads", &v);
    if (c < 0 || c > 2 * TC_MAX_RANK)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "bad or missing pads");
    memcpy(pads, v, (size_t)c * sizeof *v);
    np = (size_t)c;
    na = r;
    for (size_t d = 0; d < r; d++)
      axes[d] = (int64_t)d;
    if (!is_numeric(x->dtype))
      return tc_kernel_bad_dtype(k, 0, x->dtype);
    tc_rt_tensor ft = {.dtype = x->dtype, .data = fill};
    tc_rt_set_f64(&ft, 0, tc_attr_float(k->node, "value", 0.0f));
  }
  if (np != 2 * na)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "pads has %zu entries for %zu axes", np, na);
  for (size_t i = 0; i < na; i++) {
    int64_t a;
    if ((s = norm_axis(k, axes[i], r, &a)) != TC_STATUS_OK)
      return s;
    const int64_t lim = (int64_t)1 << 40;
    if (pads[i] < -lim || pads[i] > lim || pads[na + i] < -lim || pads[na + i] > lim)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "pads of axis %lld are too large", (long long)a);
    begin[a] = pads[i];
    end[a] = pads[na + i];
  }
  int64_t dims[TC_MAX_RANK], st[TC_MAX_RANK], *maps[TC_MAX_RANK];
  for (size_t d = 0; d < r; d++) {
    dims[d] = x->dims[d] + begin[d] + end[d];
    if (dims[d] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "pads make dim %zu negative", d);
  }
  if ((s = tc_kernel_alloc(k, out, x->dtype, r, dims)) != TC_STATUS_OK)
    return s;
  strides_of(r, x->dims, st);
  for (size_t d = 0; d < r; d++) {
    int64_t n = x->dims[d];
    if (!(maps[d] = arena_i64(k, (size_t)dims[d])))
      return nomem(k);
    for (int64_t o = 0; o < dims[d]; o++) {
      int64_t c = o - begin[d];
      if (c < 0 || c >= n) {
        if (mode != 0 && n == 0)
          return tc_kernel_fail(k, TC_STATUS_INVALID, "cannot %s-pad an empty dim %zu",
                                pad_modes[mode], d);
        switch (mode) {
        case 0: c = -1; break;
        case 1: /* reflect, excluding the edge; repeats like numpy */
          if (n == 1) {
            c = 0;
          } else {
            c = pos_mod(c, 2 * (n - 1));
            if (c >= n)
              c = 2 * (n - 1) - c;
          }
          break;
        case 2: c = c < 0 ? 0 : n - 1; break;
        default: c = pos_mod(c, n); break;
        }
      }
      maps[d][o] = c;
    }
  }
  copy_mapped(out->data, x->data, es, r, dims, st, maps, fill);
  return TC_STATUS_OK;
}

/* ---- Range, Trilu, OneHot, NonZero, CumSum, EyeLike ---- */

static tc_status run_range(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 3);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  int32_t dt = in[0]->dtype;
  for (size_t i = 0; i < 3; i++) {
    if (in[i]->dtype != dt || !(tc_dtype_is_float(dt) || tc_dtype_is_int(dt)))
      return tc_kernel_bad_dtype(k, i, in[i]->dtype);
    if (tc_rt_numel(in[i]) != 1)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu must be a scalar", i);
  }
  int64_t n;
  if (tc_dtype_is_float(dt)) {
    double a = tc_rt_get_f64(in[0], 0), l = tc_rt_get_f64(in[1], 0), d = tc_rt_get_f64(in[2], 0);
    if (d == 0 || isnan(a) || isnan(l) || isnan(d))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "delta is zero or a value is NaN");
    double c = ceil((l - a) / d);
    if (!(c < 9e15))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "range is too long");
    n = c > 0 ? (int64_t)c : 0;
    if ((s = tc_kernel_alloc(k, out, dt, 1, &n)) != TC_STATUS_OK)
      return s;
    bool narrow = dt == TC_DTYPE_F16 || dt == TC_DTYPE_BF16; /* stash_type float */
    for (int64_t i = 0; i < n; i++)
      tc_rt_set_f64(out, (size_t)i,
                    narrow ? (double)((float)a + (float)i * (float)d) : a + (double)i * d);
  } else {
    int64_t a = tc_rt_get_i64(in[0], 0), l = tc_rt_get_i64(in[1], 0), d = tc_rt_get_i64(in[2], 0);
    if (d == 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "delta is zero");
    /* unsigned differences: |l - a| of two int64 values may not fit an int64 */
    double span = (double)l - (double)a;
    if (span / (double)d > 9e15)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "range is too long");
    if (d > 0)
      n = l > a ? (int64_t)(((uint64_t)l - (uint64_t)a - 1) / (uint64_t)d) + 1 : 0;
    else
      n = a > l ? (int64_t)(((uint64_t)a - (uint64_t)l - 1) / ((uint64_t)0 - (uint64_t)d)) + 1 : 0;
    if ((s = tc_kernel_alloc(k, out, dt, 1, &n)) != TC_STATUS_OK)
      return s;
    for (int64_t i = 0; i < n; i++)
      tc_rt_set_i64(out, (size_t)i, (int64_t)((uint64_t)a + (uint64_t)i * (uint64_t)d));
  }
  return TC_STATUS_OK;
}

static tc_status run_trilu(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  if (x->rank < 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input must have rank >= 2");
  int64_t kk = 0;
  const tc_rt_tensor *kt = opt_in(in, n_in, 1);
  if (kt && (s = read_scalar_int(k, kt, 1, &kk)) != TC_STATUS_OK)
    return s;
  bool upper = tc_attr_int(k->node, "upper", 1) != 0;
  if ((s = tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims)) != TC_STATUS_OK)
    return s;
  int64_t rows = x->dims[x->rank - 2], cols = x->dims[x->rank - 1];
  size_t mats = prod(x->dims, 0, x->rank - 2);
  const char *empty = "";
  for (size_t m = 0; m < mats; m++)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) {
        size_t e = (m * (size_t)rows + (size_t)i) * (size_t)cols + (size_t)j;
        bool keep = upper ? j - i >= kk : j - i <= kk;
        if (keep)
          memcpy((char *)out->data + e * es, (const char *)x->data + e * es, es);
        else if (x->dtype == TC_DTYPE_STRING)
          memcpy((char *)out->data + e * es, &empty, es);
      }
  return TC_STATUS_OK;
}

static tc_status run_onehot(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 3);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *idx = in[0], *dep = in[1], *vals = in[2];
  size_t es;
  if (!is_numeric(idx->dtype))
    return tc_kernel_bad_dtype(k, 0, idx->dtype);
  if (!is_numeric(dep->dtype))
    return tc_kernel_bad_dtype(k, 1, dep->dtype);
  if ((s = need_elem(k, 2, vals->dtype, &es)) != TC_STATUS_OK)
    return s;
  if (tc_rt_numel(dep) != 1 || tc_rt_numel(vals) != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "depth must hold 1 value and values 2");
  double dd = tc_rt_get_f64(dep, 0);
  if (!(dd >= 0 && dd < 4e18))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "depth %g is out of range", dd);
  int64_t depth = (int64_t)dd;
  int64_t axis;
  if ((s = norm_axis(k, tc_attr_int(k->node, "axis", -1), idx->rank + 1, &axis)) != TC_STATUS_OK)
    return s;
  if (idx->rank + 1 > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output rank is above %d", TC_MAX_RANK);
  int64_t dims[TC_MAX_RANK];
  for (size_t d = 0, j = 0; d <= idx->rank; d++)
    dims[d] = (int64_t)d == axis ? depth : idx->dims[j++];
  if ((s = tc_kernel_alloc(k, out, vals->dtype, idx->rank + 1, dims)) != TC_STATUS_OK)
    return s;
  size_t outer = prod(idx->dims, 0, (size_t)axis), inner = prod(idx->dims, (size_t)axis, idx->rank);
  const char *off_v = vals->data, *on_v = (const char *)vals->data + es;
  char *dst = out->data;
  for (size_t o = 0; o < outer; o++)
    for (int64_t c = 0; c < depth; c++)
      for (size_t i = 0; i < inner; i++) {
        double v = tc_rt_get_f64(idx, o * inner + i);
        int64_t j = -1; /* out of [-depth, depth): all off */
        if (v >= -(double)depth && v < (double)depth)
          j = (int64_t)v < 0 ? (int64_t)v + depth : (int64_t)v;
        memcpy(dst, j == c ? on_v : off_v, es);
        dst += es;
      }
  return TC_STATUS_OK;
}

static bool elem_nonzero(const tc_rt_tensor *t, size_t i) {
  return tc_dtype_is_float(t->dtype) ? tc_rt_get_f64(t, i) != 0 : tc_rt_get_i64(t, i) != 0;
}

static tc_status run_nonzero(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  if (!is_numeric(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  size_t n = tc_rt_numel(x), nnz = 0;
  for (size_t i = 0; i < n; i++)
    nnz += elem_nonzero(x, i);
  size_t r = x->rank ? x->rank : 1; /* a scalar counts as one dim, as numpy does */
  int64_t dims[2] = {(int64_t)r, (int64_t)nnz}, c[TC_MAX_RANK], one = 1;
  if ((s = tc_kernel_alloc(k, out, TC_DTYPE_I64, 2, dims)) != TC_STATUS_OK)
    return s;
  int64_t *o = out->data;
  for (size_t i = 0, j = 0; i < n; i++) {
    if (!elem_nonzero(x, i))
      continue;
    unravel(i, x->rank ? x->rank : 1, x->rank ? x->dims : &one, c);
    for (size_t d = 0; d < r; d++)
      o[d * nnz + j] = c[d];
    j++;
  }
  return TC_STATUS_OK;
}

static tc_status run_cumsum(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  if (!tc_dtype_is_float(x->dtype) && !tc_dtype_is_int(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  int64_t a, axis;
  if ((s = read_scalar_int(k, in[1], 1, &a)) != TC_STATUS_OK ||
      (s = norm_axis(k, a, x->rank, &axis)) != TC_STATUS_OK)
    return s;
  bool excl = tc_attr_int(k->node, "exclusive", 0) != 0,
       rev = tc_attr_int(k->node, "reverse", 0) != 0;
  if ((s = tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims)) != TC_STATUS_OK)
    return s;
  size_t outer = prod(x->dims, 0, (size_t)axis), inner = prod(x->dims, (size_t)axis + 1, x->rank);
  size_t n = (size_t)x->dims[axis];
  bool fl = tc_dtype_is_float(x->dtype);
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < inner; i++) {
      double accf = 0;
      int64_t acci = 0;
      for (size_t t = 0; t < n; t++) {
        size_t j = rev ? n - 1 - t : t, e = (o * n + j) * inner + i;
        if (excl) {
          fl ? tc_rt_set_f64(out, e, accf) : tc_rt_set_i64(out, e, acci);
        }
        if (fl)
          accf += tc_rt_get_f64(x, e);
        else
          acci = (int64_t)((uint64_t)acci + (uint64_t)tc_rt_get_i64(x, e));
        if (!excl) {
          fl ? tc_rt_set_f64(out, e, accf) : tc_rt_set_i64(out, e, acci);
        }
      }
    }
  return TC_STATUS_OK;
}

static tc_status run_eyelike(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  if (x->rank != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input must be 2-D, is %zu-D", x->rank);
  int32_t dt = (int32_t)tc_attr_int(k->node, "dtype", x->dtype);
  if (!is_numeric(dt))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output dtype %s is not supported",
                          tc_dtype_name(dt));
  int64_t kk = tc_attr_int(k->node, "k", 0);
  if ((s = tc_kernel_alloc(k, out, dt, 2, x->dims)) != TC_STATUS_OK)
    return s;
  for (int64_t i = 0; i < x->dims[0]; i++) {
    int64_t j = i + kk;
    if (j >= 0 && j < x->dims[1])
      tc_rt_set_f64(out, (size_t)(i * x->dims[1] + j), 1.0);
  }
  return TC_STATUS_OK;
}

/* ---- DepthToSpace, SpaceToDepth ---- */

/* DepthToSpace by output rows: row (n, c', h, i) of the [N, c, H b, W b]
 * output interleaves b input rows, out[w b + j] = x[n, ch(i, j), h, w] with
 * ch = (i b + j) c + c' (DCR) or (c' b + i) b + j (CRD). The 6-D transpose
 * it is walked runs of b elements: [1, 64, 160, 160] with b = 2 took 12 ms. */
typedef struct d2s_job {
  const char *x;
  char *y;
  size_t es, C, c, H, W, b;
  bool crd;
} d2s_job;

static void d2s_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const d2s_job *j = ctx;
  size_t es = j->es, c = j->c, H = j->H, W = j->W, b = j->b;
  for (size_t r = lo; r < hi; r++) {
    size_t i = r % b, h = r / b % H, cc = r / (b * H) % c, n = r / (b * H * c);
    char *dst = j->y + r * W * b * es;
    for (size_t jj = 0; jj < b; jj++) {
      size_t ch = j->crd ? (cc * b + i) * b + jj : (i * b + jj) * c + cc;
      const char *src = j->x + (((n * j->C + ch) * H + h) * W) * es;
      if (es == 4)
        for (size_t w = 0; w < W; w++)
          memcpy(dst + (w * b + jj) * 4, src + w * 4, 4);
      else
        for (size_t w = 0; w < W; w++)
          memcpy(dst + (w * b + jj) * es, src + w * es, es);
    }
  }
}

static tc_status run_depth_space(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  bool to_space = strcmp(k->node->op_type, "DepthToSpace") == 0;
  int64_t b = tc_attr_int(k->node, "blocksize", 0);
  int mode = attr_choice(k->node, "mode", d2s_modes, 0);
  if (mode < 0)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "unknown mode");
  if (x->rank != 4 || b <= 0 || b > ((int64_t)1 << 20))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "needs a 4-D input and a positive blocksize");
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], W = x->dims[3];
  int64_t view[6], od[4];
  int64_t perm[6];
  if (to_space) {
    if (C % (b * b))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "channels %lld do not divide by blocksize^2",
                            (long long)C);
    int64_t c = C / (b * b);
    if (mode == 0) { /* DCR: [N, b, b, c, H, W] -> [N, c, H, b, W, b] */
      int64_t v[6] = {N, b, b, c, H, W}, p[6] = {0, 3, 4, 1, 5, 2};
      memcpy(view, v, sizeof v);
      memcpy(perm, p, sizeof p);
    } else { /* CRD: [N, c, b, b, H, W] -> [N, c, H, b, W, b] */
      int64_t v[6] = {N, c, b, b, H, W}, p[6] = {0, 1, 4, 2, 5, 3};
      memcpy(view, v, sizeof v);
      memcpy(perm, p, sizeof p);
    }
    int64_t o[4] = {N, c, H * b, W * b};
    memcpy(od, o, sizeof o);
  } else {
    if (H % b || W % b)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "spatial dims do not divide by blocksize");
    int64_t v[6] = {N, C, H / b, b, W / b, b};
    memcpy(view, v, sizeof v);
    if (mode == 0) { /* DCR: -> [N, b, b, C, H/b, W/b] */
      int64_t p[6] = {0, 3, 5, 1, 2, 4};
      memcpy(perm, p, sizeof p);
    } else { /* CRD: -> [N, C, b, b, H/b, W/b] */
      int64_t p[6] = {0, 1, 3, 5, 2, 4};
      memcpy(perm, p, sizeof p);
    }
    int64_t o[4] = {N, C * b * b, H / b, W / b};
    memcpy(od, o, sizeof o);
  }
  if ((s = tc_kernel_alloc(k, out, x->dtype, 4, od)) != TC_STATUS_OK)
    return s;
  if (to_space && tc_fast_kernels_enabled()) {
    d2s_job j = {x->data,   out->data, es,        (size_t)C, (size_t)(C / (b * b)),
                 (size_t)H, (size_t)W, (size_t)b, mode != 0};
    tc_parallel_for((size_t)(N * od[1] * H * b), tc_parallel_grain((size_t)(W * b)), d2s_rows, &j);
    return TC_STATUS_OK;
  }
  transpose_raw(out->data, x->data, es, 6, view, perm);
  return TC_STATUS_OK;
}

/* ---- Compress, ReverseSequence, Dropout ---- */

static tc_status run_compress(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *cond = in[1];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK)
    return s;
  if (!is_numeric(cond->dtype))
    return tc_kernel_bad_dtype(k, 1, cond->dtype);
  bool has_axis = tc_attr_has(k->node, "axis");
  int64_t axis = 0;
  /* Without an axis the input is seen flattened. */
  int64_t flat = (int64_t)tc_rt_numel(x);
  size_t vr = has_axis ? x->rank : 1;
  const int64_t *vd = has_axis ? x->dims : &flat;
  if (has_axis &&
      (s = norm_axis(k, tc_attr_int(k->node, "axis", 0), x->rank, &axis)) != TC_STATUS_OK)
    return s;
  size_t n = (size_t)vd[axis], nc = tc_rt_numel(cond);
  if (nc > n)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "condition has %zu values for a dim of %zu", nc, n);
  size_t sel = 0;
  for (size_t i = 0; i < nc; i++)
    sel += elem_nonzero(cond, i);
  int64_t dims[TC_MAX_RANK];
  memcpy(dims, vd, vr * sizeof *dims);
  dims[axis] = (int64_t)sel;
  if ((s = tc_kernel_alloc(k, out, x->dtype, vr, dims)) != TC_STATUS_OK)
    return s;
  size_t outer = prod(vd, 0, (size_t)axis), inner = prod(vd, (size_t)axis + 1, vr) * es;
  char *dst = out->data;
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < nc; i++)
      if (elem_nonzero(cond, i) && inner) {
        memcpy(dst, (const char *)x->data + (o * n + i) * inner, inner);
        dst += inner;
      }
  return TC_STATUS_OK;
}

static tc_status run_reverse_sequence(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                      tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 2);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0], *lens = in[1];
  size_t es;
  if ((s = need_elem(k, 0, x->dtype, &es)) != TC_STATUS_OK ||
      (s = check_index_dtype(k, lens, 1)) != TC_STATUS_OK)
    return s;
  int64_t ba, ta;
  if ((s = norm_axis(k, tc_attr_int(k->node, "batch_axis", 1), x->rank, &ba)) != TC_STATUS_OK ||
      (s = norm_axis(k, tc_attr_int(k->node, "time_axis", 0), x->rank, &ta)) != TC_STATUS_OK)
    return s;
  if (x->rank < 2 || ba == ta)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "batch_axis and time_axis must differ");
  if ((int64_t)tc_rt_numel(lens) != x->dims[ba])
    return tc_kernel_fail(k, TC_STATUS_INVALID, "sequence_lens has %zu values for a batch of %lld",
                          tc_rt_numel(lens), (long long)x->dims[ba]);
  if ((s = tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims)) != TC_STATUS_OK)
    return s;
  int64_t st[TC_MAX_RANK], c[TC_MAX_RANK];
  strides_of(x->rank, x->dims, st);
  size_t n = tc_rt_numel(x);
  for (size_t i = 0; i < n; i++) {
    unravel(i, x->rank, x->dims, c);
    int64_t len = tc_rt_get_i64(lens, (size_t)c[ba]);
    if (len < 0 || len > x->dims[ta])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "sequence length %lld is out of range",
                            (long long)len);
    size_t src = i;
    if (c[ta] < len)
      src = i + (size_t)((len - 1 - 2 * c[ta]) * st[ta]);
    memcpy((char *)out->data + i * es, (const char *)x->data + src * es, es);
  }
  return TC_STATUS_OK;
}

static tc_status run_dropout(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  tc_status s = need_inputs(k, in, n_in, 1);
  if (s == TC_STATUS_OK)
    s = need_outputs(k, n_out, 1);
  if (s != TC_STATUS_OK)
    return s;
  const tc_rt_tensor *x = in[0];
  if (k->opset >= 12) {
    const tc_rt_tensor *ratio = opt_in(in, n_in, 1), *train = opt_in(in, n_in, 2);
    if (train && !is_numeric(train->dtype))
      return tc_kernel_bad_dtype(k, 2, train->dtype);
    if (train && tc_rt_numel(train) && elem_nonzero(train, 0)) {
      double r = 0.5;
      if (ratio && tc_rt_numel(ratio) && is_numeric(ratio->dtype))
        r = tc_rt_get_f64(ratio, 0);
      if (r != 0)
        return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                              "training-mode Dropout (random masks) is not supported");
    }
  }
  if ((s = copy_reshaped(k, x, out, x->rank, x->dims)) != TC_STATUS_OK)
    return s;
  if (n_out > 1) {
    /* Before opset 10 the mask has the input's dtype; bool after. */
    int32_t mdt = k->opset >= 10 ? TC_DTYPE_BOOL : x->dtype;
    if (!is_numeric(mdt))
      return tc_kernel_bad_dtype(k, 0, mdt);
    if ((s = tc_kernel_alloc(k, &out[1], mdt, x->rank, x->dims)) != TC_STATUS_OK)
      return s;
    size_t n = tc_rt_numel(x);
    for (size_t i = 0; i < n; i++)
      tc_rt_set_f64(&out[1], i, 1.0);
  }
  return TC_STATUS_OK;
}

/* ---- load-time checks ---- */

/* Attributes each op reads, comma-separated; anything else is refused. */
static const struct {
  const char *op, *attrs;
} known_attrs[] = {
    {"Identity", ""},
    {"Constant", "value,value_float,value_floats,value_int,value_ints,value_string,value_strings"},
    {"ConstantOfShape", "value"},
    {"Shape", "start,end"},
    {"Size", ""},
    {"TensorScatter", "axis,mode"},
    {"Reshape", "allowzero"},
    {"Flatten", "axis"},
    {"Squeeze", "axes"},
    {"Unsqueeze", "axes"},
    {"Transpose", "perm"},
    {"Concat", "axis"},
    {"Split", "axis,split,num_outputs"},
    {"Slice", "starts,ends,axes"},
    {"Gather", "axis"},
    {"GatherElements", "axis"},
    {"GatherND", "batch_dims"},
    {"Scatter", "axis"},
    {"ScatterElements", "axis,reduction"},
    {"ScatterND", "reduction"},
    {"Expand", ""},
    {"Tile", ""},
    {"Pad", "mode,pads,value"},
    {"Range", "stash_type"},
    {"Trilu", "upper"},
    {"OneHot", "axis"},
    {"NonZero", ""},
    {"CumSum", "exclusive,reverse"},
    {"DepthToSpace", "blocksize,mode"},
    {"SpaceToDepth", "blocksize,mode"},
    {"EyeLike", "dtype,k"},
    {"Compress", "axis"},
    {"ReverseSequence", "batch_axis,time_axis"},
    {"Dropout", "ratio,seed"},
};

static bool in_list(const char *list, const char *name) {
  size_t len = strlen(name);
  for (const char *p = list; *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == len && memcmp(p, name, len) == 0)
      return true;
    if (!e)
      break;
    p = e + 1;
  }
  return false;
}

static tc_status refuse(const tc_node *n, tc_diag *diag, const char *what) {
  return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type, "%s", what);
}

static tc_status check_tensor_op(const tc_node *n, int64_t opset, tc_diag *diag) {
  const char *list = NULL;
  for (size_t i = 0; i < sizeof known_attrs / sizeof known_attrs[0]; i++)
    if (strcmp(known_attrs[i].op, n->op_type) == 0)
      list = known_attrs[i].attrs;
  if (!list)
    return refuse(n, diag, "op is not in the tensor kernel family");
  for (size_t i = 0; i < n->n_attrs; i++) {
    const tc_attr *a = &n->attrs[i];
    if (!in_list(list, a->name))
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                         "attribute '%s' is not supported", a->name);
    if (a->ref_attr_name)
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                         "attribute '%s' refers to a function attribute", a->name);
  }
  const char *op = n->op_type;
  if (strcmp(op, "Pad") == 0 && attr_choice(n, "mode", pad_modes, 0) < 0)
    return refuse(n, diag, "pad mode is not constant, reflect, edge or wrap");
  if ((strcmp(op, "ScatterElements") == 0 || strcmp(op, "ScatterND") == 0) &&
      attr_choice(n, "reduction", reductions, 0) < 0)
    return refuse(n, diag, "reduction is not none, add, mul, max or min");
  if ((strcmp(op, "DepthToSpace") == 0 || strcmp(op, "SpaceToDepth") == 0) &&
      attr_choice(n, "mode", d2s_modes, 0) < 0)
    return refuse(n, diag, "mode is not DCR or CRD");
  if (strcmp(op, "Range") == 0 && tc_attr_int(n, "stash_type", 1) != TC_DTYPE_F32)
    return refuse(n, diag, "stash_type other than float is not supported");
  if (strcmp(op, "Split") == 0 && opset >= 13 && tc_attr_has(n, "split"))
    return refuse(n, diag, "the split attribute is an input from opset 13");
  if ((strcmp(op, "Squeeze") == 0 || strcmp(op, "Unsqueeze") == 0) && opset >= 13 &&
      tc_attr_has(n, "axes"))
    return refuse(n, diag, "the axes attribute is an input from opset 13");
  if (strcmp(op, "Slice") == 0 && opset >= 10 && n->n_attrs)
    return refuse(n, diag, "Slice takes inputs, not attributes, from opset 10");
  if (strcmp(op, "Pad") == 0 && opset >= 11 && (tc_attr_has(n, "pads") || tc_attr_has(n, "value")))
    return refuse(n, diag, "Pad takes pads and value as inputs from opset 11");
  if (strcmp(op, "Constant") == 0) {
    if (n->n_attrs != 1)
      return refuse(n, diag, "Constant needs exactly one value attribute");
    const tc_attr *v = tc_node_attr(n, "value");
    if (v && !v->t)
      return refuse(n, diag, "value is not a dense tensor");
  }
  return TC_STATUS_OK;
}

/* ---- TensorScatter (opset 24): writing new positions into a KV cache ----
 * present = past_cache with update's positions along axis (default -2)
 * written at write_indices[batch] + s (batch: dim 0; indices [B], zeros when
 * absent); mode circular wraps at the cache length, linear refuses writes
 * past it. Every other dim of update equals the cache's. */
static const char *const scatter_modes[] = {"linear", "circular", NULL};

static tc_status run_tensor_scatter(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                    tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *past = in[0], *upd = opt_in(in, n_in, 1), *wi = opt_in(in, n_in, 2);
  if (!past || !upd)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "past_cache and update are required");
  size_t es;
  tc_status st = need_elem(k, 0, past->dtype, &es);
  if (st)
    return st;
  if (past->dtype == TC_DTYPE_STRING || upd->dtype != past->dtype)
    return tc_kernel_bad_dtype(k, 1, upd->dtype);
  size_t r = past->rank;
  int64_t axis = tc_attr_int(k->node, "axis", -2);
  axis = axis < 0 ? axis + (int64_t)r : axis;
  if (r < 2 || upd->rank != r || axis < 1 || axis >= (int64_t)r)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "past_cache and update must share a rank of 2 or more, axis past 0");
  for (size_t i = 0; i < r; i++)
    if ((int64_t)i != axis ? upd->dims[i] != past->dims[i] : upd->dims[i] > past->dims[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "update does not fit the cache in dim %zu", i);
  int64_t B = past->dims[0];
  if (wi && (tc_rt_numel(wi) != (size_t)B || !tc_dtype_is_int(wi->dtype)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "write_indices must hold %lld integers",
                          (long long)B);
  bool circular = attr_choice(k->node, "mode", scatter_modes, 0) == 1;
  if ((st = tc_kernel_alloc_uninit(k, out, past->dtype, r, past->dims)))
    return st;
  memcpy(out->data, past->data, past->bytes);
  size_t prefix = 1, inner = es; /* dims before axis (batch first), bytes after it */
  for (int64_t i = 0; i < axis; i++)
    prefix *= (size_t)past->dims[i];
  for (size_t i = (size_t)axis + 1; i < r; i++)
    inner *= (size_t)past->dims[i];
  int64_t maxlen = past->dims[axis], len = upd->dims[axis];
  size_t per_batch = prefix / (size_t)(B ? B : 1);
  for (size_t p = 0; p < prefix; p++) {
    int64_t start = wi ? tc_rt_get_i64(wi, p / per_batch) : 0;
    for (int64_t t = 0; t < len; t++) {
      int64_t at = start + t;
      if (circular)
        at = ((at % maxlen) + maxlen) % maxlen;
      if (at < 0 || at >= maxlen)
        return tc_kernel_fail(k, TC_STATUS_INVALID,
                              "position %lld is outside the cache of length %lld", (long long)at,
                              (long long)maxlen);
      memcpy((char *)out->data + (p * (size_t)maxlen + (size_t)at) * inner,
             (const char *)upd->data + (p * (size_t)len + (size_t)t) * inner, inner);
    }
  }
  return TC_STATUS_OK;
}

const tc_kernel_def tc_kernels_tensor[] = {
    {"TensorScatter", "", 24, run_tensor_scatter, check_tensor_op},
    {"Identity", "", 1, run_identity, check_tensor_op},
    {"Constant", "", 1, run_constant, check_tensor_op},
    {"ConstantOfShape", "", 9, run_constant_of_shape, check_tensor_op},
    {"Shape", "", 1, run_shape, check_tensor_op},
    {"Size", "", 1, run_size, check_tensor_op},
    {"Reshape", "", 5, run_reshape, check_tensor_op},
    {"Flatten", "", 1, run_flatten, check_tensor_op},
    {"Squeeze", "", 1, run_squeeze, check_tensor_op},
    {"Unsqueeze", "", 1, run_unsqueeze, check_tensor_op},
    {"Transpose", "", 1, run_transpose, check_tensor_op},
    {"Concat", "", 1, run_concat, check_tensor_op},
    {"Split", "", 2, run_split, check_tensor_op},
    {"Slice", "", 1, run_slice, check_tensor_op},
    {"Gather", "", 1, run_gather, check_tensor_op},
    {"GatherElements", "", 11, run_gather_elements, check_tensor_op},
    {"GatherND", "", 11, run_gather_nd, check_tensor_op},
    {"Scatter", "", 9, run_scatter_elements, check_tensor_op},
    {"ScatterElements", "", 11, run_scatter_elements, check_tensor_op},
    {"ScatterND", "", 11, run_scatter_nd, check_tensor_op},
    {"Expand", "", 8, run_expand, check_tensor_op},
    {"Tile", "", 6, run_tile, check_tensor_op},
    {"Pad", "", 2, run_pad, check_tensor_op},
    {"Range", "", 11, run_range, check_tensor_op},
    {"Trilu", "", 14, run_trilu, check_tensor_op},
    {"OneHot", "", 9, run_onehot, check_tensor_op},
    {"NonZero", "", 9, run_nonzero, check_tensor_op},
    {"CumSum", "", 11, run_cumsum, check_tensor_op},
    {"DepthToSpace", "", 1, run_depth_space, check_tensor_op},
    {"SpaceToDepth", "", 1, run_depth_space, check_tensor_op},
    {"EyeLike", "", 9, run_eyelike, check_tensor_op},
    {"Compress", "", 9, run_compress, check_tensor_op},
    {"ReverseSequence", "", 10, run_reverse_sequence, check_tensor_op},
    {"Dropout", "", 7, run_dropout, check_tensor_op},
    {NULL},
};
