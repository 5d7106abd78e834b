/* loss kernels: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss.
 *
 * Input (N, C, d1, ..., dk) of floats, target (N, d1, ..., dk) of int32 /
 * int64, optional per-class weight (C). Losses, sums and the log-softmax
 * are computed in double and rounded once to the input's dtype.
 *
 * 'mean' divides by the sum of the applied weights: weight[target] over the
 * samples not ignored, or, without weight, their count. (The ONNX reference
 * for NegativeLogLikelihoodLoss divides by every sample, ignored ones
 * included, in the single case ignore_index == -1 without weight; that
 * contradicts the spec's text and SoftmaxCrossEntropyLoss, and no node test
 * depends on it.) */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

static const char *node_name(const tc_node *n) { return n->name ? n->name : ""; }

/* Refuses every attribute of n not listed in allowed (NULL-terminated). */
static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

typedef enum reduction { RED_NONE, RED_SUM, RED_MEAN, RED_BAD } reduction;

static reduction parse_reduction(const char *s) {
  if (strcmp(s, "none") == 0)
    return RED_NONE;
  if (strcmp(s, "sum") == 0)
    return RED_SUM;
  if (strcmp(s, "mean") == 0)
    return RED_MEAN;
  return RED_BAD;
}

static tc_status check_loss(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"ignore_index", "reduction", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  for (size_t i = 0; i < n->n_attrs; i++) {
    const tc_attr *a = &n->attrs[i];
    if (a->name && strcmp(a->name, "reduction") == 0) {
      char buf[8] = {0};
      size_t len = a->s.len < sizeof buf - 1 ? a->s.len : sizeof buf - 1;
      if (a->s.data && len)
        memcpy(buf, a->s.data, len);
      if (a->s.len >= sizeof buf || parse_reduction(buf) == RED_BAD)
        return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                           "reduction '%.*s' is not supported (none, sum, mean)",
                           (int)(a->s.len > 32 ? 32 : a->s.len),
                           a->s.data ? (const char *)a->s.data : "");
    }
  }
  return TC_STATUS_OK;
}

/* Shared body: x holds log-probabilities (N, C, D...) read through get. */
typedef double (*logp_fn)(const void *src, size_t i);

static double read_tensor(const void *src, size_t i) {
  return tc_rt_get_f64((const tc_rt_tensor *)src, i);
}

static double read_array(const void *src, size_t i) { return ((const double *)src)[i]; }

static tc_status nll(tc_kernel_ctx *k, const tc_rt_tensor *x, const void *src, logp_fn get,
                     const tc_rt_tensor *target, const tc_rt_tensor *weight, tc_rt_tensor *out) {
  const tc_node *n = k->node;
  size_t N = (size_t)x->dims[0], C = (size_t)x->dims[1], D = 1;
  for (size_t d = 2; d < x->rank; d++)
    D *= (size_t)x->dims[d];
  bool has_ii = tc_attr_has(n, "ignore_index");
  int64_t ii = tc_attr_int(n, "ignore_index", 0);
  const char *rs = tc_attr_string(n, "reduction", "mean", k->arena);
  reduction red = parse_reduction(rs ? rs : "mean");
  if (red == RED_BAD)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "reduction '%s' is not supported", rs);
  tc_status st;
  if (red == RED_NONE)
    st = tc_kernel_alloc(k, out, x->dtype, target->rank, target->dims);
  else
    st = tc_kernel_alloc(k, out, x->dtype, 0, NULL);
  if (st)
    return st;
  double sum = 0, wsum = 0;
  for (size_t i = 0; i < N; i++)
    for (size_t d = 0; d < D; d++) {
      size_t t_at = i * D + d;
      int64_t c = tc_rt_get_i64(target, t_at);
      double l = 0, w = 0;
      if (!(has_ii && c == ii)) {
        if (c < 0 || (size_t)c >= C)
          return tc_kernel_fail(k, TC_STATUS_INVALID, "target %lld is out of range [0, %zu)",
                                (long long)c, C);
        w = weight ? tc_rt_get_f64(weight, (size_t)c) : 1.0;
        l = -get(src, (i * C + (size_t)c) * D + d) * w;
      }
      if (red == RED_NONE)
        tc_rt_set_f64(out, t_at, l);
      sum += l;
      wsum += w;
    }
  if (red == RED_SUM)
    tc_rt_set_f64(out, 0, sum);
  else if (red == RED_MEAN)
    tc_rt_set_f64(out, 0, sum / wsum);
  return TC_STATUS_OK;
}

/* Checks the operands shared by both losses. */
static tc_status loss_operands(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *target,
                               const tc_rt_tensor *weight) {
  if (!x || !target)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input and target are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (target->dtype != TC_DTYPE_I32 && target->dtype != TC_DTYPE_I64)
    return tc_kernel_bad_dtype(k, 1, target->dtype);
  if (weight && weight->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 2, weight->dtype);
  if (x->rank < 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input must be (N, C, d1, ...) (has rank %zu)",
                          x->rank);
  bool ok = target->rank == x->rank - 1 && target->dims[0] == x->dims[0];
  for (size_t d = 2; ok && d < x->rank; d++)
    ok = target->dims[d - 1] == x->dims[d];
  if (!ok)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "target must have shape (N, d1, ..., dk)");
  if (weight && (weight->rank != 1 || weight->dims[0] != x->dims[1]))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "weight must have shape (C)");
  return TC_STATUS_OK;
}

static tc_status run_nll(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0), *target = input(in, n_in, 1),
                     *weight = input(in, n_in, 2);
  tc_status st = loss_operands(k, x, target, weight);
  if (st)
    return st;
  return nll(k, x, x, read_tensor, target, weight, &out[0]);
}

static tc_status run_sce(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  const tc_rt_tensor *x = input(in, n_in, 0), *target = input(in, n_in, 1),
                     *weight = input(in, n_in, 2);
  tc_status st = loss_operands(k, x, target, weight);
  if (st)
    return st;
  size_t N = (size_t)x->dims[0], C = (size_t)x->dims[1], D = 1;
  for (size_t d = 2; d < x->rank; d++)
    D *= (size_t)x->dims[d];
  size_t total = tc_rt_numel(x);
  double *lp = tc_arena_alloc(k->arena, total ? total * sizeof(double) : 1);
  if (!lp)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  /* log-softmax over axis 1 */
  for (size_t i = 0; i < N; i++)
    for (size_t d = 0; d < D; d++) {
      size_t base = i * C * D + d;
      double m = -INFINITY;
      for (size_t c = 0; c < C; c++) {
        double v = tc_rt_get_f64(x, base + c * D);
        if (isnan(v) || v > m)
          m = v;
        if (isnan(m))
          break;
      }
      double s = 0;
      for (size_t c = 0; c < C; c++)
        s += exp(tc_rt_get_f64(x, base + c * D) - m);
      double ls = log(s);
      for (size_t c = 0; c < C; c++)
        lp[base + c * D] = tc_rt_get_f64(x, base + c * D) - m - ls;
    }
  if ((st = nll(k, x, lp, read_array, target, weight, &out[0])))
    return st;
  if (n_out > 1 && k->node->n_outputs > 1 && k->node->outputs[1]) {
    if ((st = tc_kernel_alloc(k, &out[1], x->dtype, x->rank, x->dims)))
      return st;
    for (size_t i = 0; i < total; i++)
      tc_rt_set_f64(&out[1], i, lp[i]);
  }
  return TC_STATUS_OK;
}

const tc_kernel_def tc_kernels_loss[] = {
    {"NegativeLogLikelihoodLoss", "", 12, run_nll, check_loss},
    {"SoftmaxCrossEntropyLoss", "", 12, run_sce, check_loss},
    {NULL},
};
