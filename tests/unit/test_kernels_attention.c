/* Attention, RotaryEmbedding, Swish, SwiGLU and loss kernels: what the ONNX
 * node tests do not reach: float64, grouped-query heads worked by hand,
 * fully-masked rows, mean over ignored targets, bad targets, load-time
 * refusals. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "kernel_env.h"

/* Q (1, 2, 1, 1), K (1, 1, 2, 1), V (1, 1, 2, 1): two query heads share one
 * KV head; head size 1 so scale is 1. */
static void attention_gqa_masks(void) {
  env e = env_new();
  int64_t dq[] = {1, 2, 1, 1}, dk[] = {1, 1, 2, 1}, dm[] = {2};
  tc_node *n = mk(&e, "Attention", 4, 4, 1);
  attr_i(n, 0, "qk_matmul_output_mode", 3);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F64, 4, dq, (double[]){1, 2}),
                              ten(&e, TC_DTYPE_F64, 4, dk, (double[]){1, 0}),
                              ten(&e, TC_DTYPE_F64, 4, dk, (double[]){10, 20}), NULL};
  tc_rt_tensor out[4];
  CHECK(run(&e, n, 23, in, 4, out) == TC_STATUS_OK);
  double p0 = exp(1) / (exp(1) + 1), p1 = exp(2) / (exp(2) + 1);
  CHECK(out[0].rank == 4 && out[0].dims[1] == 2 && out[0].dims[3] == 1);
  CHECK(values(&out[0], (double[]){10 * p0 + 20 * (1 - p0), 10 * p1 + 20 * (1 - p1)}, 2));
  CHECK(out[1].dims[2] == 2 && values(&out[1], (double[]){1, 0}, 2)); /* present_key */
  CHECK(values(&out[3], (double[]){p0, 1 - p0, p1, 1 - p1}, 4));
  /* boolean mask keeps key 0 only */
  in[3] = ten(&e, TC_DTYPE_BOOL, 1, dm, (double[]){1, 0});
  CHECK(run(&e, n, 23, in, 4, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){10, 10}, 2));
  /* a fully masked row gives zeros, not NaN */
  in[3] = ten(&e, TC_DTYPE_BOOL, 1, dm, (double[]){0, 0});
  CHECK(run(&e, n, 23, in, 4, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){0, 0}, 2));
  CHECK(values(&out[3], (double[]){0, 0, 0, 0}, 4));
  /* a float mask shorter than the keys: the missing keys are masked */
  int64_t d1[] = {1};
  in[3] = ten(&e, TC_DTYPE_F64, 1, d1, (double[]){0});
  CHECK(run(&e, n, 23, in, 4, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){10, 10}, 2));
  tc_model_free(e.m);
}

/* 3-D inputs with heads given by attributes, causal with a past cache. */
static void attention_3d_causal_past(void) {
  env e = env_new();
  int64_t dq[] = {1, 1, 2}, dp[] = {1, 2, 1, 1};
  tc_node *n = mk(&e, "Attention", 6, 3, 4);
  attr_i(n, 0, "q_num_heads", 2);
  attr_i(n, 1, "kv_num_heads", 2);
  attr_i(n, 2, "is_causal", 1);
  attr_f(n, 3, "scale", 1.0f);
  /* heads: Q (1, 0), K new (0, 0), past K (0, 5); V new (1, 2), past V (3, 4) */
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 3, dq, (double[]){1, 0}),
                              ten(&e, TC_DTYPE_F32, 3, dq, (double[]){0, 0}),
                              ten(&e, TC_DTYPE_F32, 3, dq, (double[]){1, 2}),
                              NULL,
                              ten(&e, TC_DTYPE_F32, 4, dp, (double[]){0, 5}),
                              ten(&e, TC_DTYPE_F32, 4, dp, (double[]){3, 4})};
  tc_rt_tensor out[3];
  CHECK(run(&e, n, 23, in, 6, out) == TC_STATUS_OK);
  /* offset = past length 1: the query sees the past key and its own */
  CHECK(out[0].rank == 3 && out[0].dims[2] == 2);
  CHECK(values(&out[0], (double[]){(3 + 1) / 2.0, (4 + 2) / 2.0}, 2));
  CHECK(out[2].rank == 4 && out[2].dims[2] == 2 && values(&out[2], (double[]){3, 1, 4, 2}, 4));
  /* 3-D without the heads attributes is invalid */
  tc_node *m = mk(&e, "Attention", 3, 1, 0);
  CHECK(run(&e, m, 23, in, 3, out) == TC_STATUS_INVALID);
  tc_model_free(e.m);
}

static void attention_refusals(void) {
  env e = env_new();
  int64_t d[] = {1, 1, 1, 1};
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 4, d, (double[]){1}),
                              ten(&e, TC_DTYPE_F32, 4, d, (double[]){1}),
                              ten(&e, TC_DTYPE_F32, 4, d, (double[]){1})};
  tc_rt_tensor out[4];
  tc_node *w = mk(&e, "Attention", 3, 1, 1);
  attr_i(w, 0, "left_window_size", 2);
  CHECK(run(&e, w, 24, in, 3, out) == TC_STATUS_UNSUPPORTED); /* windows are opset 25 */
  CHECK(run(&e, w, 25, in, 3, out) == TC_STATUS_OK);
  tc_node *m = mk(&e, "Attention", 3, 4, 1);
  attr_i(m, 0, "qk_matmul_output_mode", 4);
  CHECK(run(&e, m, 23, in, 3, out) == TC_STATUS_UNSUPPORTED);
  tc_node *p = mk(&e, "Attention", 3, 1, 1);
  attr_i(p, 0, "softmax_precision", TC_DTYPE_I32);
  CHECK(run(&e, p, 23, in, 3, out) == TC_STATUS_UNSUPPORTED);
  const tc_rt_tensor *ints[] = {ten(&e, TC_DTYPE_I32, 4, d, (double[]){1}), in[1], in[2]};
  tc_node *q = mk(&e, "Attention", 3, 1, 0);
  CHECK(run(&e, q, 23, ints, 3, out) != TC_STATUS_OK);
  tc_model_free(e.m);
}

static void rotary_3d_positions(void) {
  env e = env_new();
  /* X (1, 1, 4) with num_heads 1: one rotation pair (0, 2), (1, 3) */
  int64_t dx[] = {1, 1, 4}, dc[] = {2, 2}, dp[] = {1, 1};
  tc_node *n = mk(&e, "RotaryEmbedding", 4, 1, 1);
  attr_i(n, 0, "num_heads", 1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 3, dx, (double[]){1, 2, 3, 4}),
                              ten(&e, TC_DTYPE_F32, 2, dc, (double[]){1, 1, 0, 0}),
                              ten(&e, TC_DTYPE_F32, 2, dc, (double[]){0, 0, 1, 1}),
                              ten(&e, TC_DTYPE_I64, 2, dp, (double[]){1})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 23, in, 4, out) == TC_STATUS_OK);
  /* cos 0, sin 1: (x1, x2) -> (-x2, x1) */
  CHECK(values(&out[0], (double[]){-3, -4, 1, 2}, 4));
  in[3] = ten(&e, TC_DTYPE_I64, 2, dp, (double[]){2}); /* out of the cache */
  CHECK(run(&e, n, 23, in, 4, out) == TC_STATUS_INVALID);
  tc_model_free(e.m);
}

static void swish_swiglu(void) {
  env e = env_new();
  int64_t d[] = {2};
  tc_node *n = mk(&e, "Swish", 1, 1, 1);
  attr_f(n, 0, "alpha", 2.0f);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F64, 1, d, (double[]){0, 1}),
                              ten(&e, TC_DTYPE_F64, 1, d, (double[]){3, 4})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 24, in, 1, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){0, 1 / (1 + exp(-2))}, 2));
  tc_node *g = mk(&e, "SwiGLU", 2, 1, 0);
  CHECK(run(&e, g, 28, in, 2, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){0, 4 / (1 + exp(-1))}, 2));
  int64_t d3[] = {3};
  const tc_rt_tensor *bad[] = {in[0], ten(&e, TC_DTYPE_F64, 1, d3, (double[]){1, 2, 3})};
  CHECK(run(&e, g, 28, bad, 2, out) == TC_STATUS_INVALID); /* no broadcasting */
  tc_model_free(e.m);
}

static void nll_mean_ignore_and_bad_target(void) {
  env e = env_new();
  int64_t dx[] = {3, 2}, dt[] = {3};
  tc_node *n = mk(&e, "NegativeLogLikelihoodLoss", 2, 1, 1);
  attr_i(n, 0, "ignore_index", -1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F16, 2, dx, (double[]){-1, -2, -3, -4, -5, -6}),
                              ten(&e, TC_DTYPE_I32, 1, dt, (double[]){1, -1, 0})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 22, in, 2, out) == TC_STATUS_OK);
  /* mean over the two samples not ignored */
  CHECK(out[0].rank == 0 && out[0].dtype == TC_DTYPE_F16 && values(&out[0], (double[]){3.5}, 1));
  in[1] = ten(&e, TC_DTYPE_I32, 1, dt, (double[]){1, 2, 0});
  CHECK(run(&e, n, 22, in, 2, out) == TC_STATUS_INVALID);
  tc_node *r = mk(&e, "NegativeLogLikelihoodLoss", 2, 1, 1);
  attr_s(r, 0, "reduction", "max");
  CHECK(run(&e, r, 22, in, 2, out) == TC_STATUS_UNSUPPORTED);
  tc_model_free(e.m);
}

static void sce_log_prob_sum(void) {
  env e = env_new();
  int64_t dx[] = {1, 2}, dt[] = {1};
  tc_node *n = mk(&e, "SoftmaxCrossEntropyLoss", 3, 2, 1);
  attr_s(n, 0, "reduction", "sum");
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F64, 2, dx, (double[]){0, 0}),
                              ten(&e, TC_DTYPE_I64, 1, dt, (double[]){1}),
                              ten(&e, TC_DTYPE_F64, 1, (int64_t[]){2}, (double[]){1, 3})};
  tc_rt_tensor out[2];
  CHECK(run(&e, n, 13, in, 3, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 0 && values(&out[0], (double[]){3 * log(2)}, 1));
  CHECK(out[1].rank == 2 && values(&out[1], (double[]){-log(2), -log(2)}, 2));
  tc_model_free(e.m);
}

int main(void) {
  RUN(attention_gqa_masks);
  RUN(attention_3d_causal_past);
  RUN(attention_refusals);
  RUN(rotary_3d_positions);
  RUN(swish_swiglu);
  RUN(nll_mean_ignore_and_bad_target);
  RUN(sce_log_prob_sum);
  return SUMMARY("kernels_attention_loss");
}
