/* reduce kernels: ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceL1
 * ReduceL2 ReduceLogSum ReduceLogSumExp ReduceSumSquare, ArgMax ArgMin.
 *
 * Reductions run over a generic index walk: every input element is visited
 * once in row-major order together with the index of the output element it
 * folds into. Floating inputs accumulate in double; integer inputs of the
 * ops that stay exact in integers (Sum Prod Max Min L1 SumSquare) accumulate
 * in 64-bit integers with wrap-around, the others go through double. With
 * the fast kernels, float32 reductions over trailing dims fold each output's
 * contiguous run on one thread, the runs split across threads. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

/* ---- shared helpers ---- */

/* Smallest and largest value of an integer dtype (bool: 0 and 1), as int64
 * (uint64's largest as -1, i.e. all ones, compared unsigned by the caller). */
static void int_range(int32_t dt, int64_t *lo, int64_t *hi) {
  switch (dt) {
  case TC_DTYPE_BOOL: *lo = 0, *hi = 1; return;
  case TC_DTYPE_I8: *lo = INT8_MIN, *hi = INT8_MAX; return;
  case TC_DTYPE_U8: *lo = 0, *hi = UINT8_MAX; return;
  case TC_DTYPE_I16: *lo = INT16_MIN, *hi = INT16_MAX; return;
  case TC_DTYPE_U16: *lo = 0, *hi = UINT16_MAX; return;
  case TC_DTYPE_I32: *lo = INT32_MIN, *hi = INT32_MAX; return;
  case TC_DTYPE_U32: *lo = 0, *hi = UINT32_MAX; return;
  case TC_DTYPE_U64: *lo = 0, *hi = -1; return;
  default: *lo = INT64_MIN, *hi = INT64_MAX; return;
  }
}

/* a < b for values of dtype dt held in int64 */
static bool int_less(int32_t dt, int64_t a, int64_t b) {
  return dt == TC_DTYPE_U64 ? (uint64_t)a < (uint64_t)b : a < b;
}

/* ---- reductions ---- */

typedef enum red_op {
  RED_SUM,
  RED_MEAN,
  RED_MAX,
  RED_MIN,
  RED_PROD,
  RED_L1,
  RED_L2,
  RED_LOGSUM,
  RED_LOGSUMEXP,
  RED_SUMSQUARE,
} red_op;

/* Opset from which axes is an input (and noop_with_empty_axes exists). */
static int axes_input_since(red_op op) { return op == RED_SUM ? 13 : 18; }

static tc_status reduce_check(const tc_node *n, int64_t opset, tc_diag *diag, red_op op) {
  static const char *const attr_form[] = {"axes", "keepdims", NULL};
  static const char *const input_form[] = {"keepdims", "noop_with_empty_axes", NULL};
  return tc_kernel_check_attrs(n, diag, opset >= axes_input_since(op) ? input_form : attr_form);
}

/* The walk: calls the body with i (input index) and o (output index). ostr
 * holds the output stride of every input dim (0 for reduced dims). */
#define REDUCE_WALK(in, ostr, BODY)                                                                \
  do {                                                                                             \
    size_t n_ = tc_rt_numel(in), o = 0;                                                            \
    int64_t idx_[TC_MAX_RANK] = {0};                                                               \
    for (size_t i = 0; i < n_; i++) {                                                              \
      BODY;                                                                                        \
      for (size_t d_ = (in)->rank; d_-- > 0;) {                                                    \
        idx_[d_]++;                                                                                \
        o += (size_t)(ostr)[d_];                                                                   \
        if (idx_[d_] < (in)->dims[d_])                                                             \
          break;                                                                                   \
        o -= (size_t)((ostr)[d_] * (in)->dims[d_]);                                                \
        idx_[d_] = 0;                                                                              \
      }                                                                                            \
    }                                                                                              \
  } while (0)

/* ---- float32 fast path ----
 * When the reduced dims come after every kept one (the last axis, or the
 * trailing block), each output folds one contiguous run of the input: the
 * runs are split across threads, each folded by one thread in a fixed order
 * (sums in double: runs of 64 or more by the vector sets' lanes
 * (tc_vdsum_f32, tc_vmoments_f32 for squares; a [1, 64, 160, 160]
 * ReduceMean over H and W 2.0 -> 0.17 ms), shorter ones with four running sums, so within rounding
 * of the reference's single running sum; Max and Min exactly). */
static bool fast_op(red_op op) {
  return op == RED_SUM || op == RED_MEAN || op == RED_MAX || op == RED_MIN || op == RED_L1 ||
         op == RED_L2 || op == RED_SUMSQUARE;
}

/* True when no kept dim of size > 1 comes after a reduced dim of size > 1. */
static bool trailing(const tc_rt_tensor *x, const bool *reduced) {
  bool seen = false;
  for (size_t d = 0; d < x->rank; d++) {
    if (x->dims[d] == 1)
      continue;
    if (reduced[d])
      seen = true;
    else if (seen)
      return false;
  }
  return true;
}

typedef struct red_job {
  const float *x;
  float *y;
  size_t len;
  red_op op;
} red_job;

/* Folds one run of n floats. */
static double fold_f32(const float *v, size_t n, red_op op) {
  if (op == RED_MAX || op == RED_MIN) {
    double acc = op == RED_MAX ? -INFINITY : INFINITY;
    for (size_t i = 0; i < n; i++) {
      double e = v[i];
      if ((op == RED_MAX ? e > acc : e < acc) || isnan(e))
        acc = e;
    }
    return acc;
  }
  if (n >= 64 && op != RED_L1) { /* the vector sets' double sums (vmath.c) */
    double acc, ms, zero;
    if (op == RED_L2 || op == RED_SUMSQUARE) {
      tc_vmoments_f32(v, n, false, &zero, &ms);
      acc = ms * (double)n;
    } else {
      tc_vdsum_f32(v, n, &acc);
    }
    return op == RED_MEAN ? acc / (double)n : op == RED_L2 ? sqrt(acc) : acc;
  }
  double s[4] = {0, 0, 0, 0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (size_t l = 0; l < 4; l++) {
      double e = v[i + l];
      s[l] += op == RED_L1 ? fabs(e) : (op == RED_L2 || op == RED_SUMSQUARE) ? e * e : e;
    }
  for (; i < n; i++) {
    double e = v[i];
    s[0] += op == RED_L1 ? fabs(e) : (op == RED_L2 || op == RED_SUMSQUARE) ? e * e : e;
  }
  double acc = (s[0] + s[1]) + (s[2] + s[3]);
  return op == RED_MEAN ? acc / (double)n : op == RED_L2 ? sqrt(acc) : acc;
}

/* Runs of fewer than four (a complex number's (re, im), an RGB pixel): one
 * running sum from 0, as fold_f32 takes them, without a call per output. */
static void red_short(const red_job *j, size_t lo, size_t hi) {
  size_t len = j->len;
  const float *x = j->x;
  for (size_t o = lo; o < hi; o++) {
    double s = 0;
    for (size_t i = 0; i < len; i++) {
      double e = x[o * len + i];
      s += j->op == RED_SUMSQUARE ? e * e : e;
    }
    j->y[o] = (float)(j->op == RED_MEAN ? s / (double)len : s);
  }
}

static void red_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const red_job *j = ctx;
  if (j->len < 4 && (j->op == RED_SUM || j->op == RED_MEAN || j->op == RED_SUMSQUARE)) {
    red_short(j, lo, hi);
    return;
  }
  for (size_t o = lo; o < hi; o++)
    j->y[o] = (float)fold_f32(j->x + o * j->len, j->len, j->op);
}

static tc_status reduce_run(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, red_op op) {
  const tc_rt_tensor *x = n_in > 0 ? in[0] : NULL;
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input data");
  int32_t dt = x->dtype;
  bool fl = tc_dtype_is_float(dt), integer = tc_dtype_is_int(dt);
  if (dt == TC_DTYPE_BOOL && (op == RED_MAX || op == RED_MIN))
    integer = true;
  if (!fl && !integer)
    return tc_kernel_bad_dtype(k, 0, dt);

  const tc_node *n = k->node;
  int64_t keepdims = tc_attr_int(n, "keepdims", 1);
  bool reduced[TC_MAX_RANK] = {false};
  bool all = false;
  size_t rank = x->rank;
  if (rank > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "rank %zu is above %d", rank, TC_MAX_RANK);

  const int64_t *axes_attr = NULL;
  ptrdiff_t n_axes = -1;
  const tc_rt_tensor *axes_t = NULL;
  if (k->opset >= axes_input_since(op)) {
    axes_t = n_in > 1 ? in[1] : NULL;
    if (axes_t) {
      if (axes_t->dtype != TC_DTYPE_I64)
        return tc_kernel_bad_dtype(k, 1, axes_t->dtype);
      if (axes_t->rank > 1)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "axes must be 1-D");
      n_axes = (ptrdiff_t)tc_rt_numel(axes_t);
    }
    if (n_axes <= 0) {
      if (tc_attr_int(n, "noop_with_empty_axes", 0))
        n_axes = 0; /* nothing reduced: each output folds one element */
      else
        all = true;
    }
  } else {
    n_axes = tc_attr_ints(n, "axes", &axes_attr);
    if (n_axes <= 0)
      all = true;
  }
  if (all) {
    for (size_t d = 0; d < rank; d++)
      reduced[d] = true;
  } else {
    for (ptrdiff_t j = 0; j < n_axes; j++) {
      int64_t a = axes_t ? ((const int64_t *)axes_t->data)[j] : axes_attr[j];
      int64_t ax = tc_axis(a, rank);
      if (ax < 0)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                              (long long)a, rank);
      reduced[ax] = true;
    }
  }

  /* output shape and the output stride of every input dim */
  int64_t odims[TC_MAX_RANK], ostr[TC_MAX_RANK];
  size_t orank = 0;
  for (size_t d = 0; d < rank; d++) {
    if (!reduced[d])
      odims[orank++] = x->dims[d];
    else if (keepdims)
      odims[orank++] = 1;
  }
  {
    int64_t s = 1;
    for (size_t d = rank; d-- > 0;) {
      if (reduced[d]) {
        ostr[d] = 0;
      } else {
        ostr[d] = s;
        s *= x->dims[d];
      }
    }
  }
  tc_status st = tc_kernel_alloc_uninit(k, out, dt, orank, odims);
  if (st)
    return st;
  size_t no = tc_rt_numel(out);
  if (no == 0)
    return TC_STATUS_OK;
  size_t count = 1; /* elements folded into each output */
  for (size_t d = 0; d < rank; d++)
    if (reduced[d])
      count *= (size_t)x->dims[d];

  if (tc_fast_kernels_enabled() && dt == TC_DTYPE_F32 && count > 0 && fast_op(op) &&
      trailing(x, reduced)) {
    red_job j = {.x = x->data, .y = out->data, .len = count, .op = op};
    tc_parallel_for(no, tc_parallel_grain(count * 2), red_piece, &j);
    return TC_STATUS_OK;
  }

  bool int_path = integer && (op == RED_SUM || op == RED_PROD || op == RED_MAX || op == RED_MIN ||
                              op == RED_L1 || op == RED_SUMSQUARE);
  if (int_path) {
    int64_t *acc = tc_arena_alloc(k->arena, no * sizeof *acc);
    if (!acc)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    int64_t lo, hi, init = 0;
    int_range(dt, &lo, &hi);
    if (op == RED_PROD)
      init = 1;
    else if (op == RED_MAX)
      init = lo;
    else if (op == RED_MIN)
      init = hi;
    for (size_t j = 0; j < no; j++)
      acc[j] = init;
    switch (op) {
    case RED_SUM:
      REDUCE_WALK(x, ostr, acc[o] = (int64_t)((uint64_t)acc[o] + (uint64_t)tc_rt_get_i64(x, i)));
      break;
    case RED_PROD:
      REDUCE_WALK(x, ostr, acc[o] = (int64_t)((uint64_t)acc[o] * (uint64_t)tc_rt_get_i64(x, i)));
      break;
    case RED_L1:
      REDUCE_WALK(x, ostr, {
        int64_t v = tc_rt_get_i64(x, i);
        uint64_t a = dt == TC_DTYPE_U64 || v >= 0 ? (uint64_t)v : -(uint64_t)v;
        acc[o] = (int64_t)((uint64_t)acc[o] + a);
      });
      break;
    case RED_SUMSQUARE:
      REDUCE_WALK(x, ostr, {
        uint64_t v = (uint64_t)tc_rt_get_i64(x, i);
        acc[o] = (int64_t)((uint64_t)acc[o] + v * v);
      });
      break;
    case RED_MAX:
      REDUCE_WALK(x, ostr, {
        int64_t v = tc_rt_get_i64(x, i);
        if (int_less(dt, acc[o], v))
          acc[o] = v;
      });
      break;
    case RED_MIN:
      REDUCE_WALK(x, ostr, {
        int64_t v = tc_rt_get_i64(x, i);
        if (int_less(dt, v, acc[o]))
          acc[o] = v;
      });
      break;
    default: break;
    }
    for (size_t j = 0; j < no; j++)
      tc_rt_set_i64(out, j, acc[j]);
    return TC_STATUS_OK;
  }

  double *acc = tc_arena_alloc(k->arena, no * sizeof *acc);
  if (!acc)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  double init = 0;
  if (op == RED_PROD)
    init = 1;
  else if (op == RED_MAX || op == RED_LOGSUMEXP)
    init = -INFINITY;
  else if (op == RED_MIN)
    init = INFINITY;
  for (size_t j = 0; j < no; j++)
    acc[j] = init;
  switch (op) {
  case RED_SUM:
  case RED_MEAN:
  case RED_LOGSUM: REDUCE_WALK(x, ostr, acc[o] += tc_rt_get_f64(x, i)); break;
  case RED_PROD: REDUCE_WALK(x, ostr, acc[o] *= tc_rt_get_f64(x, i)); break;
  case RED_L1: REDUCE_WALK(x, ostr, acc[o] += fabs(tc_rt_get_f64(x, i))); break;
  case RED_L2:
  case RED_SUMSQUARE:
    REDUCE_WALK(x, ostr, {
      double v = tc_rt_get_f64(x, i);
      acc[o] += v * v;
    });
    break;
  case RED_MAX: /* NaN propagates, as numpy's max does */
    REDUCE_WALK(x, ostr, {
      double v = tc_rt_get_f64(x, i);
      if (v > acc[o] || isnan(v))
        acc[o] = v;
    });
    break;
  case RED_MIN:
    REDUCE_WALK(x, ostr, {
      double v = tc_rt_get_f64(x, i);
      if (v < acc[o] || isnan(v))
        acc[o] = v;
    });
    break;
  case RED_LOGSUMEXP: {
    /* two passes: the max of each output's set, then sum of exp(x - max) */
    double *sum = tc_arena_alloc(k->arena, no * sizeof *sum);
    if (!sum)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    REDUCE_WALK(x, ostr, {
      double v = tc_rt_get_f64(x, i);
      if (v > acc[o] || isnan(v))
        acc[o] = v;
    });
    REDUCE_WALK(x, ostr, {
      if (isfinite(acc[o]))
        sum[o] += exp(tc_rt_get_f64(x, i) - acc[o]);
    });
    for (size_t j = 0; j < no; j++)
      if (isfinite(acc[j]))
        acc[j] += log(sum[j]);
    break;
  }
  }
  for (size_t j = 0; j < no; j++) {
    double v = acc[j];
    if (op == RED_MEAN)
      v = count ? v / (double)count : NAN;
    else if (op == RED_L2)
      v = sqrt(v);
    else if (op == RED_LOGSUM)
      v = log(v);
    tc_rt_set_f64(out, j, v);
  }
  return TC_STATUS_OK;
}

#define REDUCE_DEF(NAME, OP)                                                                       \
  static tc_status run_##NAME(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,        \
                              tc_rt_tensor *out, size_t n_out) {                                   \
    (void)n_out;                                                                                   \
    return reduce_run(k, in, n_in, out, OP);                                                       \
  }                                                                                                \
  static tc_status check_##NAME(const tc_node *n, int64_t opset, tc_diag *diag) {                  \
    return reduce_check(n, opset, diag, OP);                                                       \
  }

REDUCE_DEF(sum, RED_SUM)
REDUCE_DEF(mean, RED_MEAN)
REDUCE_DEF(max, RED_MAX)
REDUCE_DEF(min, RED_MIN)
REDUCE_DEF(prod, RED_PROD)
REDUCE_DEF(l1, RED_L1)
REDUCE_DEF(l2, RED_L2)
REDUCE_DEF(logsum, RED_LOGSUM)
REDUCE_DEF(logsumexp, RED_LOGSUMEXP)
REDUCE_DEF(sumsquare, RED_SUMSQUARE)

/* ---- ArgMax / ArgMin ---- */

static tc_status arg_check(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v1[] = {"axis", "keepdims", NULL};
  static const char *const v12[] = {"axis", "keepdims", "select_last_index", NULL};
  return tc_kernel_check_attrs(n, diag, opset >= 12 ? v12 : v1);
}

static tc_status arg_run(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, bool is_max) {
  const tc_rt_tensor *x = n_in > 0 ? in[0] : NULL;
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input data");
  int32_t dt = x->dtype;
  bool fl = tc_dtype_is_float(dt);
  if (!fl && !tc_dtype_is_int(dt))
    return tc_kernel_bad_dtype(k, 0, dt);
  const tc_node *n = k->node;
  int64_t a = tc_attr_int(n, "axis", 0);
  int64_t ax = tc_axis(a, x->rank);
  if (ax < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                          (long long)a, x->rank);
  bool keepdims = tc_attr_int(n, "keepdims", 1) != 0;
  bool last = tc_attr_int(n, "select_last_index", 0) != 0;
  int64_t odims[TC_MAX_RANK];
  size_t orank = 0;
  for (size_t d = 0; d < x->rank; d++) {
    if ((int64_t)d != ax)
      odims[orank++] = x->dims[d];
    else if (keepdims)
      odims[orank++] = 1;
  }
  tc_status st = tc_kernel_alloc(k, out, TC_DTYPE_I64, orank, odims);
  if (st)
    return st;
  size_t outer = 1, inner = 1, len = (size_t)x->dims[ax];
  for (int64_t d = 0; d < ax; d++)
    outer *= (size_t)x->dims[d];
  for (size_t d = (size_t)ax + 1; d < x->rank; d++)
    inner *= (size_t)x->dims[d];
  if (outer * inner == 0)
    return TC_STATUS_OK;
  if (len == 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "cannot take the arg%s of an empty axis",
                          is_max ? "max" : "min");
  int64_t *res = out->data;
  for (size_t o = 0; o < outer; o++)
    for (size_t in_ = 0; in_ < inner; in_++) {
      size_t base = o * len * inner + in_, best = 0;
      if (fl) {
        double bv = tc_rt_get_f64(x, base);
        for (size_t j = 1; j < len && !isnan(bv); j++) {
          double v = tc_rt_get_f64(x, base + j * inner);
          bool better =
              isnan(v) || (is_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv));
          if (better)
            bv = v, best = j;
        }
      } else {
        int64_t bv = tc_rt_get_i64(x, base);
        for (size_t j = 1; j < len; j++) {
          int64_t v = tc_rt_get_i64(x, base + j * inner);
          bool better = is_max ? (last ? !int_less(dt, v, bv) : int_less(dt, bv, v))
                               : (last ? !int_less(dt, bv, v) : int_less(dt, v, bv));
          if (better)
            bv = v, best = j;
        }
      }
      res[o * inner + in_] = (int64_t)best;
    }
  return TC_STATUS_OK;
}

static tc_status run_argmax(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return arg_run(k, in, n_in, out, true);
}

static tc_status run_argmin(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return arg_run(k, in, n_in, out, false);
}

const tc_kernel_def tc_kernels_reduce[] = {
    {"ReduceSum", "", 1, run_sum, check_sum},
    {"ReduceMean", "", 1, run_mean, check_mean},
    {"ReduceMax", "", 1, run_max, check_max},
    {"ReduceMin", "", 1, run_min, check_min},
    {"ReduceProd", "", 1, run_prod, check_prod},
    {"ReduceL1", "", 1, run_l1, check_l1},
    {"ReduceL2", "", 1, run_l2, check_l2},
    {"ReduceLogSum", "", 1, run_logsum, check_logsum},
    {"ReduceLogSumExp", "", 1, run_logsumexp, check_logsumexp},
    {"ReduceSumSquare", "", 1, run_sumsquare, check_sumsquare},
    {"ArgMax", "", 1, run_argmax, arg_check},
    {"ArgMin", "", 1, run_argmin, arg_check},
    {NULL},
};
