/* misc kernels, ops of no larger family: Shrink, BitCast, Det, CenterCropPad,
 * AffineGrid, Unique.
 *
 * Shrink: x < -lambd gives x + bias, x > lambd gives x - bias, else 0,
 * computed in double and stored in x's (numeric) type.
 * BitCast: the bytes of x as another type of the same width (little endian
 * here as on disk); the shape is kept.
 * Det: determinants of [..., M, M] by LU with partial pivoting in double.
 * CenterCropPad: per listed axis, a centered window of the asked size (the
 * extra element of an odd difference at the end), zeros where it pads.
 * AffineGrid: theta [N, 2, 3] / [N, 3, 4] applied to the homogeneous base
 * grid of size [N, C, H, W] / [N, C, D, H, W], positions from -1 to 1 at
 * pixel centers (align_corners 0) or corner pixels (1); grid [N, H, W, 2] /
 * [N, D, H, W, 3] with x (the width) first, as GridSample reads it.
 * Unique: the distinct elements (no axis) or slices along axis, sorted
 * ascending (slices lexicographically; NaNs equal each other and above every
 * number) or in order of first occurrence (sorted 0), with the first
 * occurrence of each, every element's or slice's place in Y, and counts. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

#define NOMEM(k) tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory")

/* ---- Shrink ---- */

static tc_status check_shrink(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"bias", "lambd", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_shrink(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input is required");
  if (!tc_dtype_is_float(x->dtype) && !tc_dtype_is_int(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  double lambd = tc_attr_float(k->node, "lambd", 0.5f), bias = tc_attr_float(k->node, "bias", 0);
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, x->dims);
  for (size_t i = 0, n = tc_rt_numel(x); !st && i < n; i++) {
    double v = tc_rt_get_f64(x, i);
    tc_rt_set_f64(&out[0], i, v < -lambd ? v + bias : v > lambd ? v - bias : 0.0);
  }
  return st;
}

/* ---- BitCast ---- */

static tc_status check_bitcast(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"to", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (!st && !tc_node_attr(n, "to"))
    st = tc_diag_set(diag, TC_STATUS_INVALID, n->name ? n->name : "", n->op_type,
                     "attribute 'to' is required");
  return st;
}

static tc_status run_bitcast(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  int32_t to = (int32_t)tc_attr_int(k->node, "to", 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input is required");
  /* widths compared over 8 elements, so 4-bit types compare too */
  size_t wx = tc_dtype_bytes(x->dtype, 8), wt = tc_dtype_bytes(to, 8);
  if (x->dtype == TC_DTYPE_STRING || !wx)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (to == TC_DTYPE_STRING || wt != wx)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "'to' (%d) must be a type as wide as the input's",
                          (int)to);
  tc_status st = tc_kernel_alloc(k, &out[0], to, x->rank, x->dims);
  if (!st && x->bytes)
    memcpy(out[0].data, x->data, x->bytes);
  return st;
}

/* ---- Det ---- */

static tc_status run_det(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (x->rank < 2 || x->dims[x->rank - 1] != x->dims[x->rank - 2])
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must be [..., M, M]");
  size_t M = (size_t)x->dims[x->rank - 1], mats = M ? tc_rt_numel(x) / (M * M) : 0;
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank - 2, x->dims);
  size_t mm = M * M;
  double *a = tc_arena_alloc(k->arena, (mm > 0 ? mm : 1) * sizeof *a);
  if (st || !a)
    return st ? st : NOMEM(k);
  if (!M) { /* a batch of 0x0 matrices: the empty product */
    for (size_t i = 0, n = tc_rt_numel(&out[0]); i < n; i++)
      tc_rt_set_f64(&out[0], i, 1.0);
    return TC_STATUS_OK;
  }
  for (size_t m = 0; m < mats; m++) {
    for (size_t i = 0; i < M * M; i++)
      a[i] = tc_rt_get_f64(x, m * M * M + i);
    double det = 1;
    for (size_t c = 0; c < M && det != 0; c++) {
      size_t p = c;
      for (size_t r = c + 1; r < M; r++)
        if (fabs(a[r * M + c]) > fabs(a[p * M + c]))
          p = r;
      if (a[p * M + c] == 0) {
        det = 0;
        break;
      }
      if (p != c) {
        for (size_t j = 0; j < M; j++) {
          double t = a[c * M + j];
          a[c * M + j] = a[p * M + j];
          a[p * M + j] = t;
        }
        det = -det;
      }
      det *= a[c * M + c];
      for (size_t r = c + 1; r < M; r++) {
        double f = a[r * M + c] / a[c * M + c];
        for (size_t j = c; j < M; j++)
          a[r * M + j] -= f * a[c * M + j];
      }
    }
    tc_rt_set_f64(&out[0], m, det);
  }
  return TC_STATUS_OK;
}

/* ---- CenterCropPad ---- */

static tc_status check_ccp(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axes", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_ccp(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0), *shape = input(in, n_in, 1);
  if (!x || !shape)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input_data and shape are required");
  if (shape->dtype != TC_DTYPE_I64 && shape->dtype != TC_DTYPE_I32)
    return tc_kernel_bad_dtype(k, 1, shape->dtype);
  size_t r = x->rank, ns = tc_rt_numel(shape);
  const int64_t *axes_attr = NULL;
  ptrdiff_t na = tc_attr_ints(k->node, "axes", &axes_attr);
  int64_t axes[TC_MAX_RANK];
  if (na < 0) {
    na = (ptrdiff_t)r;
    for (size_t i = 0; i < r; i++)
      axes[i] = (int64_t)i;
  } else {
    if ((size_t)na > r)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "more axes than X has dims");
    for (ptrdiff_t i = 0; i < na; i++) {
      int64_t a = axes_attr[i] < 0 ? axes_attr[i] + (int64_t)r : axes_attr[i];
      if (a < 0 || a >= (int64_t)r)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range",
                              (long long)axes_attr[i]);
      axes[i] = a;
    }
  }
  if (ns != (size_t)na)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "shape has %zu values for %td axes", ns, na);
  int64_t dims[TC_MAX_RANK], xoff[TC_MAX_RANK] = {0}, yoff[TC_MAX_RANK] = {0};
  memcpy(dims, x->dims, r * sizeof *dims);
  for (ptrdiff_t i = 0; i < na; i++) {
    int64_t a = axes[i], want = tc_rt_get_i64(shape, (size_t)i), have = x->dims[a];
    if (want < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "shape holds a negative size");
    dims[a] = want;
    if (want < have)
      xoff[a] = (have - want) / 2; /* crop: the window starts here in X */
    else
      yoff[a] = (want - have) / 2; /* pad: X starts here in Y */
  }
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, r, dims);
  if (st)
    return st;
  size_t es = tc_dtype_bytes(x->dtype, 1), n = tc_rt_numel(&out[0]);
  if (!es || x->dtype == TC_DTYPE_STRING)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  memset(out[0].data, 0, out[0].bytes);
  /* every element of Y whose source lies inside X, copied element by element */
  for (size_t i = 0; i < n; i++) {
    size_t rest = i, src = 0, stride = 1;
    bool inside = true;
    for (size_t d = r; d-- > 0;) {
      int64_t c = (int64_t)(rest % (size_t)dims[d]);
      rest /= (size_t)dims[d];
      int64_t s = c - yoff[d] + xoff[d];
      inside = inside && s >= 0 && s < x->dims[d];
      src += (size_t)(inside ? s : 0) * stride;
      stride *= (size_t)x->dims[d];
    }
    if (inside)
      memcpy((char *)out[0].data + i * es, (const char *)x->data + src * es, es);
  }
  return TC_STATUS_OK;
}

/* ---- AffineGrid ---- */

static tc_status check_affinegrid(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"align_corners", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_affinegrid(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *theta = input(in, n_in, 0), *size = input(in, n_in, 1);
  if (!theta || !size)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "theta and size are required");
  if (!tc_dtype_is_float(theta->dtype))
    return tc_kernel_bad_dtype(k, 0, theta->dtype);
  if (size->dtype != TC_DTYPE_I64)
    return tc_kernel_bad_dtype(k, 1, size->dtype);
  size_t ns = tc_rt_numel(size), r = ns >= 2 ? ns - 2 : 0;
  if ((r != 2 && r != 3) || theta->rank != 3 || theta->dims[1] != (int64_t)r ||
      theta->dims[2] != (int64_t)r + 1 || tc_rt_get_i64(size, 0) != theta->dims[0])
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "theta must be [N, 2, 3] with size [N, C, H, W], or [N, 3, 4] with "
                          "size [N, C, D, H, W]");
  bool ac = tc_attr_int(k->node, "align_corners", 0) != 0;
  int64_t dims[5], sp[3];
  dims[0] = theta->dims[0];
  size_t npos = 1;
  for (size_t i = 0; i < r; i++) {
    sp[i] = tc_rt_get_i64(size, 2 + i);
    if (sp[i] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "size holds a negative dim");
    dims[1 + i] = sp[i];
    npos *= (size_t)sp[i];
  }
  dims[1 + r] = (int64_t)r;
  tc_status st = tc_kernel_alloc(k, &out[0], theta->dtype, r + 2, dims);
  if (st)
    return st;
  for (size_t b = 0; b < (size_t)dims[0]; b++)
    for (size_t p = 0; p < npos; p++) {
      /* homogeneous base position: x (last spatial dim) first */
      double h[4];
      size_t rest = p;
      for (size_t i = r; i-- > 0;) {
        int64_t len = sp[i], c = (int64_t)(rest % (size_t)len);
        rest /= (size_t)len;
        h[r - 1 - i] = ac ? (len > 1 ? -1.0 + 2.0 * (double)c / (double)(len - 1) : 0.0)
                          : -1.0 + (2.0 * (double)c + 1.0) / (double)len;
      }
      h[r] = 1.0;
      for (size_t j = 0; j < r; j++) {
        double v = 0;
        for (size_t q = 0; q <= r; q++)
          v += tc_rt_get_f64(theta, (b * r + j) * (r + 1) + q) * h[q];
        tc_rt_set_f64(&out[0], (b * npos + p) * r + j, v);
      }
    }
  return TC_STATUS_OK;
}

/* ---- Unique ---- */

static tc_status check_unique(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axis", "sorted", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* x viewed as [outer, A, inner]: slice i is x[:, i, :] */
typedef struct uq_view {
  const tc_rt_tensor *x;
  size_t outer, A, inner;
} uq_view;

static int uq_cmp_val(double a, double b) {
  bool na = isnan(a), nb = isnan(b);
  if (na || nb)
    return na && nb ? 0 : na ? 1 : -1;
  return a < b ? -1 : a > b;
}

static int uq_cmp_slices(const uq_view *v, size_t i, size_t j) {
  for (size_t o = 0; o < v->outer; o++)
    for (size_t k = 0; k < v->inner; k++) {
      size_t base = o * v->A * v->inner + k;
      int c = uq_cmp_val(tc_rt_get_f64(v->x, base + i * v->inner),
                         tc_rt_get_f64(v->x, base + j * v->inner));
      if (c)
        return c;
    }
  return 0;
}

/* slices in ascending order, equal ones by index (stable) */
static int uq_sort_cmp(const void *a, const void *b, void *ctx) {
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  int c = uq_cmp_slices(ctx, i, j);
  return c ? c : (i > j) - (i < j);
}

static int uq_by_value(const void *a, const void *b, void *ctx) {
  const int64_t *first = ctx;
  size_t i = *(const size_t *)a, j = *(const size_t *)b;
  return (first[i] > first[j]) - (first[i] < first[j]);
}

static tc_status run_unique(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  size_t es = tc_dtype_bytes(x->dtype, 1);
  if (!es || x->dtype == TC_DTYPE_STRING)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  bool has_axis = tc_attr_has(k->node, "axis"), sorted = tc_attr_int(k->node, "sorted", 1) != 0;
  int64_t axis = tc_attr_int(k->node, "axis", 0);
  uq_view v = {.x = x, .outer = 1, .A = tc_rt_numel(x), .inner = 1};
  if (has_axis) {
    if (axis < 0)
      axis += (int64_t)x->rank;
    if (axis < 0 || axis >= (int64_t)x->rank)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "axis is out of range for rank %zu", x->rank);
    v.A = (size_t)x->dims[axis];
    for (int64_t d = 0; d < axis; d++)
      v.outer *= (size_t)x->dims[d];
    for (size_t d = (size_t)axis + 1; d < x->rank; d++)
      v.inner *= (size_t)x->dims[d];
  }
  size_t A = v.A, *order = tc_arena_alloc(k->arena, (A + 1) * sizeof *order);
  int64_t *first = tc_arena_alloc(k->arena, (A + 1) * sizeof *first),
          *cnt = tc_arena_alloc(k->arena, (A + 1) * sizeof *cnt);
  size_t *group = tc_arena_alloc(k->arena, (A + 1) * sizeof *group),
         *rank_of = tc_arena_alloc(k->arena, (A + 1) * sizeof *rank_of);
  if (!order || !first || !cnt || !group || !rank_of)
    return NOMEM(k);
  for (size_t i = 0; i < A; i++)
    order[i] = i;
  qsort_r(order, A, sizeof *order, uq_sort_cmp, &v);
  /* groups of equal slices, in ascending order; first = smallest index */
  size_t U = 0;
  for (size_t p = 0; p < A; p++) {
    if (!p || uq_cmp_slices(&v, order[p - 1], order[p])) {
      first[U] = (int64_t)order[p];
      cnt[U++] = 0;
    }
    cnt[U - 1]++;
    group[order[p]] = U - 1;
  }
  /* output position of each group: ascending, or by first occurrence */
  for (size_t u = 0; u < U; u++)
    order[u] = u;
  if (!sorted)
    qsort_r(order, U, sizeof *order, uq_by_value, first);
  for (size_t pos = 0; pos < U; pos++)
    rank_of[order[pos]] = pos;
  int64_t ydims[TC_MAX_RANK], one[1] = {(int64_t)U}, adim[1] = {(int64_t)A};
  size_t yrank = has_axis ? x->rank : 1;
  if (has_axis) {
    memcpy(ydims, x->dims, x->rank * sizeof *ydims);
    ydims[axis] = (int64_t)U;
  } else {
    ydims[0] = (int64_t)U;
  }
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, yrank, ydims);
  for (size_t o = 1; !st && o < n_out; o++)
    st = tc_kernel_alloc(k, &out[o], TC_DTYPE_I64, 1, o == 2 ? adim : one);
  if (st)
    return st;
  for (size_t pos = 0; pos < U; pos++) {
    size_t src = (size_t)first[order[pos]];
    for (size_t o = 0; o < v.outer; o++)
      memcpy((char *)out[0].data + ((o * U + pos) * v.inner) * es,
             (const char *)x->data + ((o * A + src) * v.inner) * es, v.inner * es);
    if (n_out > 1)
      ((int64_t *)out[1].data)[pos] = (int64_t)src;
    if (n_out > 3)
      ((int64_t *)out[3].data)[pos] = cnt[order[pos]];
  }
  for (size_t i = 0; n_out > 2 && i < A; i++)
    ((int64_t *)out[2].data)[i] = (int64_t)rank_of[group[i]];
  return TC_STATUS_OK;
}

/* ---- ai.onnx.ml: Binarizer, ArrayFeatureExtractor ---- */

/* y = x > threshold ? 1 : 0, in x's numeric dtype. */
static tc_status run_binarizer(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  (void)n_in, (void)n_out;
  const tc_rt_tensor *x = in[0];
  if (!x || !(tc_dtype_is_float(x->dtype) || tc_dtype_is_int(x->dtype)))
    return x ? tc_kernel_bad_dtype(k, 0, x->dtype)
             : tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  tc_status st = tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, x->dims);
  if (st)
    return st;
  double t = tc_attr_float(k->node, "threshold", 0.0f);
  for (size_t i = 0, n = tc_rt_numel(x); i < n; i++)
    tc_rt_set_f64(out, i, tc_rt_get_f64(x, i) > t ? 1.0 : 0.0);
  return TC_STATUS_OK;
}

static tc_status check_binarizer(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"threshold", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* X[..., indices] along the last axis (all the indices, flattened); a 1-D X
 * gives [1, count], as ONNX Runtime does. */
static tc_status run_afe(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *ix = n_in > 1 ? in[1] : NULL;
  if (!x || !ix || !tc_dtype_is_int(ix->dtype) || x->rank < 1 || x->dtype == TC_DTYPE_STRING)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X (numeric) and integer indices are required");
  size_t es = tc_dtype_bytes(x->dtype, 1), cnt = tc_rt_numel(ix);
  int64_t last = x->dims[x->rank - 1], dims[TC_MAX_RANK];
  size_t rank = x->rank == 1 ? 2 : x->rank;
  if (x->rank == 1)
    dims[0] = 1;
  else
    memcpy(dims, x->dims, (x->rank - 1) * sizeof *dims);
  dims[rank - 1] = (int64_t)cnt;
  if (!es || tc_dtype_bits(x->dtype) % 8)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  for (size_t j = 0; j < cnt; j++)
    if (tc_rt_get_i64(ix, j) < 0 || tc_rt_get_i64(ix, j) >= last)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "index %lld is outside [0, %lld)",
                            (long long)tc_rt_get_i64(ix, j), (long long)last);
  tc_status st = tc_kernel_alloc_uninit(k, out, x->dtype, rank, dims);
  if (st)
    return st;
  size_t rows = last ? tc_rt_numel(x) / (size_t)last : 0;
  for (size_t r = 0; r < rows; r++)
    for (size_t j = 0; j < cnt; j++)
      memcpy((char *)out->data + (r * cnt + j) * es,
             (const char *)x->data + (r * (size_t)last + (size_t)tc_rt_get_i64(ix, j)) * es, es);
  return TC_STATUS_OK;
}

static tc_status check_afe(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const none[] = {NULL};
  return tc_kernel_check_attrs(n, diag, none);
}

/* ---- ai.onnx.ml LabelEncoder (opset 1-4) ----
 * Maps each element of X through keys -> values (keys_strings / keys_int64s
 * / keys_floats / keys_tensor, likewise values_*), default_* (or
 * default_tensor) where X has no key: "_Unused", -1 or -0.0 when absent. Y
 * has X's shape and the values' dtype. Float keys match NaN to NaN. */
typedef struct lenc_list {
  int32_t dtype; /* TC_DTYPE_STRING, TC_DTYPE_I64 or a float dtype */
  size_t n;
  tc_rt_tensor t; /* the list as a tensor (attribute lists are wrapped) */
} lenc_list;

/* The keys_ or values_ list of node n; false when there is none. */
static bool lenc_list_of(tc_kernel_ctx *k, const char *prefix, lenc_list *l) {
  char name[32];
  const tc_node *n = k->node;
  const tc_attr *a;
  memset(l, 0, sizeof *l);
  snprintf(name, sizeof name, "%s_tensor", prefix);
  if ((a = tc_node_attr(n, name)) && a->t) {
    if (tc_rt_from_ir(a->t, k->arena, &l->t, k->diag))
      return false;
    l->dtype = l->t.dtype;
    l->n = tc_rt_numel(&l->t);
    return true;
  }
  l->t.rank = 1;
  snprintf(name, sizeof name, "%s_strings", prefix);
  if ((a = tc_node_attr(n, name))) {
    char **v = tc_arena_alloc(k->arena, (a->n_strings + 1) * sizeof *v);
    for (size_t i = 0; v && i < a->n_strings; i++)
      if ((v[i] = tc_arena_alloc(k->arena, a->strings[i].len + 1))) {
        if (a->strings[i].len)
          memcpy(v[i], a->strings[i].data, a->strings[i].len);
        v[i][a->strings[i].len] = 0;
      }
    l->dtype = TC_DTYPE_STRING, l->n = a->n_strings, l->t.data = v;
  } else if (snprintf(name, sizeof name, "%s_int64s", prefix), (a = tc_node_attr(n, name))) {
    l->dtype = TC_DTYPE_I64, l->n = a->n_ints, l->t.data = a->ints;
  } else if (snprintf(name, sizeof name, "%s_floats", prefix), (a = tc_node_attr(n, name))) {
    l->dtype = TC_DTYPE_F32, l->n = a->n_floats, l->t.data = a->floats;
  } else {
    return false;
  }
  l->t.dtype = l->dtype;
  l->t.dims[0] = (int64_t)l->n;
  l->t.bytes = tc_dtype_bytes(l->dtype, l->n);
  return l->t.data || !l->n;
}

static bool lenc_match(const tc_rt_tensor *x, size_t i, const lenc_list *keys, size_t j) {
  if (x->dtype == TC_DTYPE_STRING)
    return !strcmp(((char *const *)x->data)[i], ((char *const *)keys->t.data)[j]);
  if (tc_dtype_is_float(keys->dtype)) {
    double a = tc_rt_get_f64(x, i), b = tc_rt_get_f64(&keys->t, j);
    return a == b || (isnan(a) && isnan(b));
  }
  return tc_rt_get_i64(x, i) == tc_rt_get_i64(&keys->t, j);
}

static tc_status run_label_encoder(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                   tc_rt_tensor *out, size_t n_out) {
  (void)n_in, (void)n_out;
  const tc_rt_tensor *x = in[0];
  lenc_list keys, vals;
  if (!lenc_list_of(k, "keys", &keys) || !lenc_list_of(k, "values", &vals) || keys.n != vals.n)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "keys and values must be given, of one length");
  if (!x || (x->dtype == TC_DTYPE_STRING) != (keys.dtype == TC_DTYPE_STRING))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and the keys must both be strings or numbers");
  tc_status st = tc_kernel_alloc(k, out, vals.dtype, x->rank, x->dims);
  if (st)
    return st;
  const tc_attr *dt = tc_node_attr(k->node, "default_tensor");
  tc_rt_tensor dflt = {0};
  if (dt && dt->t && tc_rt_from_ir(dt->t, k->arena, &dflt, k->diag))
    return TC_STATUS_INVALID;
  for (size_t i = 0, n = tc_rt_numel(x); i < n; i++) {
    size_t j = 0;
    while (j < keys.n && !lenc_match(x, i, &keys, j))
      j++;
    if (vals.dtype == TC_DTYPE_STRING) {
      const char *v = j < keys.n  ? ((char *const *)vals.t.data)[j]
                      : dflt.data ? ((char *const *)dflt.data)[0]
                                  : tc_attr_string(k->node, "default_string", "_Unused", k->arena);
      if (!(((char **)out->data)[i] = tc_arena_strdup(k->arena, v ? v : "")))
        return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    } else if (j < keys.n) {
      tc_rt_set_f64(out, i, tc_rt_get_f64(&vals.t, j));
    } else if (dflt.data) {
      tc_rt_set_f64(out, i, tc_rt_get_f64(&dflt, 0));
    } else if (vals.dtype == TC_DTYPE_I64) {
      tc_rt_set_i64(out, i, tc_attr_int(k->node, "default_int64", -1));
    } else {
      tc_rt_set_f64(out, i, tc_attr_float(k->node, "default_float", -0.0f));
    }
  }
  return TC_STATUS_OK;
}

static tc_status check_label_encoder(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"keys_strings",
                                   "keys_int64s",
                                   "keys_floats",
                                   "keys_tensor",
                                   "values_strings",
                                   "values_int64s",
                                   "values_floats",
                                   "values_tensor",
                                   "default_string",
                                   "default_int64",
                                   "default_float",
                                   "default_tensor",
                                   NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

const tc_kernel_def tc_kernels_misc[] = {
    {"LabelEncoder", "ai.onnx.ml", 1, run_label_encoder, check_label_encoder},
    {"Binarizer", "ai.onnx.ml", 1, run_binarizer, check_binarizer},
    {"ArrayFeatureExtractor", "ai.onnx.ml", 1, run_afe, check_afe},
    {"Unique", "", 11, run_unique, check_unique},
    {"AffineGrid", "", 20, run_affinegrid, check_affinegrid},
    {"Shrink", "", 9, run_shrink, check_shrink},
    {"BitCast", "", 26, run_bitcast, check_bitcast},
    {"Det", "", 11, run_det, NULL},
    {"CenterCropPad", "", 18, run_ccp, check_ccp},
    {NULL, NULL, 0, NULL, NULL},
};
