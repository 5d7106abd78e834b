/* Helpers shared by the kernels: allocation, attributes, element access,
 * half-precision conversion, broadcasting. */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "onnx_io.h"

size_t tc_rt_numel(const tc_rt_tensor *t) {
  size_t n = 1;
  for (size_t i = 0; i < t->rank; i++)
    n *= (size_t)t->dims[i];
  return n;
}

tc_status tc_kernel_fail(tc_kernel_ctx *k, tc_status s, const char *fmt, ...) {
  char reason[TC_DIAG_TEXT];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  const tc_node *n = k->node;
  return tc_diag_set(k->diag, s, n && n->name ? n->name : "", n ? n->op_type : NULL, "%s", reason);
}

tc_status tc_kernel_bad_dtype(tc_kernel_ctx *k, size_t input, int32_t dtype) {
  return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                        "input %zu has dtype %s, which this op does not support", input,
                        tc_dtype_name(dtype));
}

static tc_status alloc_out(tc_kernel_ctx *k, tc_rt_tensor *out, int32_t dtype, size_t rank,
                           const int64_t *dims, bool zero) {
  if (rank > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "rank %zu is above the supported %d", rank,
                          TC_MAX_RANK);
  size_t n = 1;
  for (size_t i = 0; i < rank; i++) {
    if (dims[i] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "output dim %zu is negative (%lld)", i,
                            (long long)dims[i]);
    if (dims[i] && n > SIZE_MAX / 16 / (size_t)dims[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "output is too large");
    n *= (size_t)dims[i];
  }
  size_t bytes = dtype == TC_DTYPE_STRING ? n * sizeof(char *) : tc_dtype_bytes(dtype, n);
  out->dtype = dtype;
  out->rank = rank;
  if (rank)
    memcpy(out->dims, dims, rank * sizeof *dims);
  out->bytes = bytes;
  const tc_node *on = k->out_node ? k->out_node : k->node;
  if (k->plan_base && k->outputs && out >= k->outputs && out < k->outputs + on->n_outputs) {
    const tc_value *v = on->outputs[out - k->outputs];
    if (v && bytes && k->plan_offset[v->id] >= 0 && k->plan_size[v->id] == bytes) {
      out->data = k->plan_base + k->plan_offset[v->id];
      if (zero)
        memset(out->data, 0, bytes);
      return TC_STATUS_OK;
    }
  }
  out->data = tc_arena_alloc(k->arena, bytes ? bytes : 1);
  if (!out->data)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a %zu-byte output", bytes);
  return TC_STATUS_OK;
}

tc_status tc_kernel_alloc(tc_kernel_ctx *k, tc_rt_tensor *out, int32_t dtype, size_t rank,
                          const int64_t *dims) {
  return alloc_out(k, out, dtype, rank, dims, true);
}

tc_status tc_kernel_alloc_uninit(tc_kernel_ctx *k, tc_rt_tensor *out, int32_t dtype, size_t rank,
                                 const int64_t *dims) {
  return alloc_out(k, out, dtype, rank, dims, false);
}

tc_status tc_kernel_check_attrs(const tc_node *n, tc_diag *diag, const char *const *allowed) {
  for (size_t i = 0; i < n->n_attrs; i++) {
    const char *name = n->attrs[i].name;
    bool ok = false;
    for (const char *const *a = allowed; *a && !ok; a++)
      ok = name && strcmp(name, *a) == 0;
    if (!ok)
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                         "attribute '%s' is not supported", name ? name : "?");
  }
  return TC_STATUS_OK;
}

bool tc_dtype_is_float(int32_t dt) {
  return dt == TC_DTYPE_F32 || dt == TC_DTYPE_F64 || dt == TC_DTYPE_F16 || dt == TC_DTYPE_BF16;
}

bool tc_dtype_is_int(int32_t dt) {
  switch (dt) {
  case TC_DTYPE_I8:
  case TC_DTYPE_U8:
  case TC_DTYPE_I16:
  case TC_DTYPE_U16:
  case TC_DTYPE_I32:
  case TC_DTYPE_U32:
  case TC_DTYPE_I64:
  case TC_DTYPE_U64: return true;
  default: return false;
  }
}

/* ---- attributes ---- */
int64_t tc_attr_int(const tc_node *n, const char *name, int64_t dflt) {
  const tc_attr *a = tc_node_attr(n, name);
  return a ? a->i : dflt;
}

float tc_attr_float(const tc_node *n, const char *name, float dflt) {
  const tc_attr *a = tc_node_attr(n, name);
  return a ? a->f : dflt;
}

const char *tc_attr_string(const tc_node *n, const char *name, const char *dflt, tc_arena *a) {
  const tc_attr *at = tc_node_attr(n, name);
  if (!at)
    return dflt;
  char *s = tc_arena_alloc(a, at->s.len + 1);
  if (s && at->s.len)
    memcpy(s, at->s.data, at->s.len);
  return s ? s : dflt;
}

ptrdiff_t tc_attr_ints(const tc_node *n, const char *name, const int64_t **v) {
  const tc_attr *a = tc_node_attr(n, name);
  if (!a)
    return -1;
  *v = a->ints;
  return (ptrdiff_t)a->n_ints;
}

ptrdiff_t tc_attr_floats(const tc_node *n, const char *name, const float **v) {
  const tc_attr *a = tc_node_attr(n, name);
  if (!a)
    return -1;
  *v = a->floats;
  return (ptrdiff_t)a->n_floats;
}

bool tc_attr_has(const tc_node *n, const char *name) { return tc_node_attr(n, name) != NULL; }

/* ---- half precision ---- */
float tc_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while (!(man & 0x400));
      bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    bits = sign | 0x7f800000u | man << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t tc_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) /* inf or nan */
    return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 | ((abs >> 13) & 0x3ff) : 0));
  if (abs >= 0x477ff000) /* rounds to >= 65520: overflow to inf */
    return (uint16_t)(sign | 0x7c00);
  if (abs < 0x38800000) {
    /* Below the smallest normal half: the result is a multiple of 2^-24.
     * Scaling by 2^24 is exact, and nearbyintf rounds to nearest even; 1024
     * lands on the smallest normal encoding, as it should. */
    float mag;
    memcpy(&mag, &abs, 4);
    return (uint16_t)(sign | (uint32_t)nearbyintf(mag * 16777216.0f));
  }
  uint32_t r = abs - 0x38000000; /* rebias exponent 127 -> 15 */
  uint32_t half = r >> 13, rest = r & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
    half++;
  return (uint16_t)(sign | half);
}

float tc_bf16_to_f32(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16;
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t tc_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000)
    return (uint16_t)((x >> 16) | 0x40);
  uint32_t rest = x & 0xffff, keep = x >> 16;
  if (rest > 0x8000 || (rest == 0x8000 && (keep & 1)))
    keep++;
  return (uint16_t)keep;
}

/* ---- element access ---- */
double tc_rt_get_f64(const tc_rt_tensor *t, size_t i) {
  const void *p = t->data;
  switch (t->dtype) {
  case TC_DTYPE_F32: return ((const float *)p)[i];
  case TC_DTYPE_F64: return ((const double *)p)[i];
  case TC_DTYPE_F16: return tc_f16_to_f32(((const uint16_t *)p)[i]);
  case TC_DTYPE_BF16: return tc_bf16_to_f32(((const uint16_t *)p)[i]);
  case TC_DTYPE_U64: return (double)((const uint64_t *)p)[i];
  case TC_DTYPE_I8:
  case TC_DTYPE_U8:
  case TC_DTYPE_BOOL:
  case TC_DTYPE_I16:
  case TC_DTYPE_U16:
  case TC_DTYPE_I32:
  case TC_DTYPE_U32:
  case TC_DTYPE_I64: return (double)tc_rt_get_i64(t, i);
  default: return NAN; /* not a numeric dtype this helper reads: kernels check dtypes first */
  }
}

int64_t tc_rt_get_i64(const tc_rt_tensor *t, size_t i) {
  const void *p = t->data;
  switch (t->dtype) {
  case TC_DTYPE_I8: return ((const int8_t *)p)[i];
  case TC_DTYPE_U8: return ((const uint8_t *)p)[i];
  case TC_DTYPE_BOOL: return ((const uint8_t *)p)[i] != 0;
  case TC_DTYPE_I16: return ((const int16_t *)p)[i];
  case TC_DTYPE_U16: return ((const uint16_t *)p)[i];
  case TC_DTYPE_I32: return ((const int32_t *)p)[i];
  case TC_DTYPE_U32: return ((const uint32_t *)p)[i];
  case TC_DTYPE_I64: return ((const int64_t *)p)[i];
  case TC_DTYPE_U64: return (int64_t)((const uint64_t *)p)[i];
  case TC_DTYPE_F32:
  case TC_DTYPE_F64:
  case TC_DTYPE_F16:
  case TC_DTYPE_BF16: return (int64_t)tc_rt_get_f64(t, i);
  default: return 0; /* not a numeric dtype this helper reads: kernels check dtypes first */
  }
}

void tc_rt_set_f64(tc_rt_tensor *t, size_t i, double v) {
  void *p = t->data;
  switch (t->dtype) {
  case TC_DTYPE_F32: ((float *)p)[i] = (float)v; return;
  case TC_DTYPE_F64: ((double *)p)[i] = v; return;
  case TC_DTYPE_F16: ((uint16_t *)p)[i] = tc_f32_to_f16((float)v); return;
  case TC_DTYPE_BF16: ((uint16_t *)p)[i] = tc_f32_to_bf16((float)v); return;
  case TC_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; return;
  case TC_DTYPE_U64: ((uint64_t *)p)[i] = (uint64_t)v; return;
  case TC_DTYPE_I8:
  case TC_DTYPE_U8:
  case TC_DTYPE_I16:
  case TC_DTYPE_U16:
  case TC_DTYPE_I32:
  case TC_DTYPE_U32:
  case TC_DTYPE_I64: tc_rt_set_i64(t, i, (int64_t)v); return;
  default: return; /* not a numeric dtype this helper writes: kernels check dtypes first */
  }
}

void tc_rt_set_i64(tc_rt_tensor *t, size_t i, int64_t v) {
  void *p = t->data;
  switch (t->dtype) {
  case TC_DTYPE_I8: ((int8_t *)p)[i] = (int8_t)v; return;
  case TC_DTYPE_U8: ((uint8_t *)p)[i] = (uint8_t)v; return;
  case TC_DTYPE_BOOL: ((uint8_t *)p)[i] = v != 0; return;
  case TC_DTYPE_I16: ((int16_t *)p)[i] = (int16_t)v; return;
  case TC_DTYPE_U16: ((uint16_t *)p)[i] = (uint16_t)v; return;
  case TC_DTYPE_I32: ((int32_t *)p)[i] = (int32_t)v; return;
  case TC_DTYPE_U32: ((uint32_t *)p)[i] = (uint32_t)v; return;
  case TC_DTYPE_I64: ((int64_t *)p)[i] = v; return;
  case TC_DTYPE_U64: ((uint64_t *)p)[i] = (uint64_t)v; return;
  case TC_DTYPE_F32:
  case TC_DTYPE_F64:
  case TC_DTYPE_F16:
  case TC_DTYPE_BF16: tc_rt_set_f64(t, i, (double)v); return;
  default: return; /* not a numeric dtype this helper writes: kernels check dtypes first */
  }
}

/* ---- broadcasting ---- */
tc_status tc_broadcast_shape(tc_kernel_ctx *k, const tc_rt_tensor *const *ts, size_t n,
                             size_t *rank, int64_t *dims) {
  size_t r = 0;
  for (size_t i = 0; i < n; i++)
    if (ts[i] && ts[i]->rank > r)
      r = ts[i]->rank;
  for (size_t d = 0; d < r; d++)
    dims[d] = 1;
  for (size_t i = 0; i < n; i++) {
    const tc_rt_tensor *t = ts[i];
    if (!t)
      continue;
    for (size_t d = 0; d < t->rank; d++) {
      size_t od = r - t->rank + d;
      int64_t v = t->dims[d];
      if (v == dims[od] || v == 1)
        continue;
      if (dims[od] != 1)
        return tc_kernel_fail(k, TC_STATUS_INVALID,
                              "input shapes do not broadcast (dim %zu: %lld vs %lld)", od,
                              (long long)dims[od], (long long)v);
      dims[od] = v;
    }
  }
  *rank = r;
  return TC_STATUS_OK;
}

void tc_broadcast_strides(const tc_rt_tensor *t, size_t rank, const int64_t *dims,
                          int64_t *strides) {
  int64_t s = 1;
  for (size_t d = rank; d-- > 0;) {
    size_t td = d + t->rank;
    if (td < rank) { /* leading dims t does not have */
      strides[d] = 0;
      continue;
    }
    td -= rank;
    int64_t v = t->dims[td];
    strides[d] = (v == 1 && dims[d] != 1) ? 0 : s;
    s *= v;
  }
}

int64_t tc_axis(int64_t axis, size_t rank) {
  int64_t r = (int64_t)rank;
  if (axis < -r || axis >= r)
    return -1;
  return axis < 0 ? axis + r : axis;
}

/* ---- parallel loops ----
 * Built on libgomp's own entry points rather than a second pool: oneDNN runs
 * its GEMMs on the same OpenMP runtime, so one set of worker threads serves
 * both and they never compete for cores. GOMP_parallel is what `#pragma omp
 * parallel` compiles to; calling it directly keeps -fopenmp out of the build.
 * libgomp keeps a persistent team per calling OS thread (created on first
 * use, woken per region, the caller working as thread 0), so sessions run
 * concurrently from several user threads each get their own workers and
 * never wait for one another. Inside a parallel region (a kernel called from
 * a piece, or a caller's own OpenMP region) loops run inline. */
void GOMP_parallel(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
int omp_get_max_threads(void);
int omp_get_level(void);

typedef struct par_job {
  tc_par_fn fn;
  void *ctx;
  size_t n, pieces;
  atomic_size_t next; /* the next piece nobody has claimed */
} par_job;

/* Bounds of piece p of pieces over [0, n): sizes differ by at most one. */
static void piece_range(size_t n, size_t pieces, size_t p, size_t *lo, size_t *hi) {
  size_t q = n / pieces, r = n % pieces;
  *lo = p * q + (p < r ? p : r);
  *hi = *lo + q + (p < r);
}

/* Each thread of the team claims pieces until none is left: the work of a
 * thread that starts late (descheduled on a busy machine) is taken by the
 * others, though the region still ends only when it checks in; a smaller
 * team than asked for still covers every piece. Which thread runs a piece
 * does not change its result. */
static void par_body(void *data) {
  par_job *j = data;
  for (;;) {
    size_t p = atomic_fetch_add(&j->next, 1);
    if (p >= j->pieces)
      return;
    size_t lo, hi;
    piece_range(j->n, j->pieces, p, &lo, &hi);
    if (lo < hi)
      j->fn(j->ctx, p, lo, hi);
  }
}

size_t tc_parallel_pieces(size_t n, size_t grain) {
  size_t most = n / (grain ? grain : 1);
  if (most < 2 || omp_get_level() > 0)
    return 1;
  int t = omp_get_max_threads();
  size_t nt = t > 0 ? (size_t)t : 1;
  return nt < most ? nt : most;
}

void tc_parallel_for(size_t n, size_t grain, tc_par_fn fn, void *ctx) {
  if (n == 0)
    return;
  size_t pieces = tc_parallel_pieces(n, grain);
  if (pieces <= 1) {
    fn(ctx, 0, 0, n);
    return;
  }
  par_job j = {.fn = fn, .ctx = ctx, .n = n, .pieces = pieces};
  atomic_init(&j.next, 0);
  GOMP_parallel(par_body, &j, (unsigned)pieces, 0);
}

size_t tc_parallel_grain(size_t cost) {
  /* ~32k elementary operations (some tens of microseconds) per piece:
   * waking a sleeping worker costs a few microseconds */
  size_t g = 32768 / (cost ? cost : 1);
  return g ? g : 1;
}

/* tc_layout_copy in tiles of LC_TILE positions x LC_TILE channels, so both
 * sides' cache lines are used whole (a position-by-channel loop read or
 * wrote one element per line: [96, 160x160] took 6.9 ms here, tiled 2.0);
 * pieces are runs of position tiles. */
enum { LC_TILE = 16 };

typedef struct lc_job {
  unsigned char *d;
  const unsigned char *s;
  size_t es, C, HW, tiles; /* tiles: position tiles per image */
  bool to_nhwc;
} lc_job;

/* One tile: rows of `cols` elements of src (stride ss) to columns of dst
 * (stride ds), for `rows` rows. The inner loop walks the positions, so the
 * plane-sized stride (HW) is never the inner one: stores a plane apart all
 * hit one cache set (to plain order, walking channels inside, took 5.2x
 * the time). Locals only, so the stores cannot alias them. */
#define LC_TILE_LOOP(es)                                                                           \
  do {                                                                                             \
    if (cols_are_positions) {                                                                      \
      for (size_t r = 0; r < rows; r++)                                                            \
        for (size_t c = 0; c < cols; c++)                                                          \
          memcpy(d + (es) * (c * ds + r), s + (es) * (r * ss + c), (es));                          \
    } else {                                                                                       \
      for (size_t c = 0; c < cols; c++)                                                            \
        for (size_t r = 0; r < rows; r++)                                                          \
          memcpy(d + (es) * (c * ds + r), s + (es) * (r * ss + c), (es));                          \
    }                                                                                              \
  } while (0)

static void lc_tile(unsigned char *d, size_t ds, const unsigned char *s, size_t ss, size_t rows,
                    size_t cols, size_t es, bool cols_are_positions) {
  if (es == 4)
    LC_TILE_LOOP(4);
  else
    LC_TILE_LOOP(es);
}

static void lc_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const lc_job *j = ctx;
  size_t C = j->C, HW = j->HW, es = j->es, tiles = j->tiles;
  bool to_nhwc = j->to_nhwc;
  unsigned char *dst = j->d;
  const unsigned char *src = j->s;
  for (size_t t = lo; t < hi; t++) {
    size_t n = t / tiles, p0 = t % tiles * LC_TILE;
    size_t np = p0 + LC_TILE < HW ? LC_TILE : HW - p0;
    const unsigned char *s = src + n * C * HW * es;
    unsigned char *d = dst + n * C * HW * es;
    /* element (c, p) sits at c HW + p plain and p C + c channels-last */
    for (size_t c0 = 0; c0 < C; c0 += LC_TILE) {
      size_t nc = c0 + LC_TILE < C ? LC_TILE : C - c0;
      if (to_nhwc) /* rows: channels of plain; columns: positions */
        lc_tile(d + es * (p0 * C + c0), C, s + es * (c0 * HW + p0), HW, nc, np, es, true);
      else
        lc_tile(d + es * (c0 * HW + p0), HW, s + es * (p0 * C + c0), C, np, nc, es, false);
    }
  }
}

void tc_layout_copy(void *dst, const void *src, size_t esize, size_t N, size_t C, size_t HW,
                    bool to_nhwc) {
  size_t tiles = (HW + LC_TILE - 1) / LC_TILE;
  lc_job j = {dst, src, esize, C, HW, tiles, to_nhwc};
  tc_parallel_for(N * tiles, tc_parallel_grain(LC_TILE * C), lc_piece, &j);
}

bool tc_layout_shape(const tc_rt_tensor *t, size_t *N, size_t *C, size_t *HW) {
  if (t->rank < 4)
    return false;
  size_t r = t->rank, c = 1;
  for (size_t d = 1; d + 2 < r; d++)
    c *= (size_t)t->dims[d];
  *N = (size_t)t->dims[0], *C = c, *HW = (size_t)(t->dims[r - 2] * t->dims[r - 1]);
  return true;
}

tc_status tc_layout_reorder(tc_kernel_ctx *k, tc_rt_tensor *t, bool to_nhwc) {
  size_t N, C, HW;
  if (tc_rt_numel(t) == 1 || !tc_layout_shape(t, &N, &C, &HW) || HW == 1)
    return TC_STATUS_OK; /* the same memory in both orders */
  void *tmp = tc_arena_alloc(k->arena, t->bytes ? t->bytes : 1);
  if (!tmp)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  memcpy(tmp, t->data, t->bytes);
  tc_layout_copy(t->data, tmp, tc_dtype_bytes(t->dtype, 1), N, C, HW, to_nhwc);
  return TC_STATUS_OK;
}

const tc_rt_tensor *tc_layout_plain_copy(tc_kernel_ctx *k, const tc_rt_tensor *t) {
  size_t N, C, HW;
  if (tc_rt_numel(t) == 1 || !tc_layout_shape(t, &N, &C, &HW) || HW == 1)
    return t;
  tc_rt_tensor *c = tc_arena_alloc(k->arena, sizeof *c);
  void *d = c ? tc_arena_alloc(k->arena, t->bytes ? t->bytes : 1) : NULL;
  if (!d)
    return NULL;
  *c = *t;
  c->data = d;
  tc_layout_copy(d, t->data, tc_dtype_bytes(t->dtype, 1), N, C, HW, false);
  return c;
}

bool tc_tensor_view(const tc_tensor *t, tc_rt_tensor *rt, void **owned) {
  const void *p;
  size_t len;
  if (t->rank > TC_MAX_RANK || tc_tensor_raw_bytes(t, &p, &len, owned, NULL) != TC_STATUS_OK)
    return false;
  size_t n = tc_tensor_numel(t);
  if (len != tc_dtype_bytes(t->dtype, n) || tc_dtype_bits(t->dtype) < 8) {
    free(*owned);
    *owned = NULL;
    return false;
  }
  *rt = (tc_rt_tensor){.dtype = t->dtype, .rank = t->rank, .data = (void *)p, .bytes = len};
  for (size_t i = 0; i < t->rank; i++)
    rt->dims[i] = t->dims[i];
  return true;
}

ptrdiff_t tc_const_ints(const tc_tensor *t, int64_t **out) {
  tc_rt_tensor rt;
  void *owned = NULL;
  if (!t || !tc_dtype_is_int(t->dtype) || !tc_tensor_view(t, &rt, &owned))
    return -1;
  size_t n = tc_rt_numel(&rt);
  int64_t *v = malloc((n ? n : 1) * sizeof *v);
  if (v)
    for (size_t i = 0; i < n; i++)
      v[i] = tc_rt_get_i64(&rt, i);
  free(owned);
  *out = v;
  return v ? (ptrdiff_t)n : -1;
}

size_t tc_dtype_elem_bytes(int32_t dt) {
  if (dt == TC_DTYPE_STRING)
    return sizeof(char *);
  int bits = tc_dtype_bits(dt);
  return bits >= 8 && bits % 8 == 0 ? (size_t)bits / 8 : 0;
}
