/* Reduce and nn kernels: the semantics the ONNX node tests (newest opsets,
 * float32 mostly) do not reach: older opsets, 16-bit floats, integer paths,
 * empty sets, rank 0, load-time refusals. */
#include <math.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "kernel_env.h"

static void reduce_sum_attr_axes_f16(void) {
  env e = env_new();
  int64_t axes[] = {-1}, d[] = {2, 3};
  double x[] = {1, 2, 3, 4, 5, 6};
  tc_node *n = mk(&e, "ReduceSum", 1, 1, 2);
  attr_ints(n, 0, "axes", axes, 1);
  attr_i(n, 1, "keepdims", 0);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F16, 2, d, x)};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 11, in, 1, out) == TC_STATUS_OK);
  CHECK(out[0].dtype == TC_DTYPE_F16 && out[0].rank == 1 && out[0].dims[0] == 2);
  CHECK(values(&out[0], (double[]){6, 15}, 2));
  /* at opset 13 axes is an input: the attribute is refused at load time */
  CHECK(run(&e, n, 13, in, 1, out) == TC_STATUS_UNSUPPORTED);
  tc_model_free(e.m);
}

static void reduce_axes_input_and_noop(void) {
  env e = env_new();
  int64_t d[] = {2, 2}, one = 1;
  double x[] = {-1, 2, -3, 4};
  tc_node *n = mk(&e, "ReduceL1", 2, 1, 1);
  attr_i(n, 0, "noop_with_empty_axes", 1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_BF16, 2, d, x), NULL};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 18, in, 2, out) == TC_STATUS_OK); /* no axes + noop: elementwise |x| */
  CHECK(out[0].rank == 2 && values(&out[0], (double[]){1, 2, 3, 4}, 4));
  in[1] = ten(&e, TC_DTYPE_I64, 1, &one, (double[]){0});
  CHECK(run(&e, n, 18, in, 2, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 2 && out[0].dims[0] == 1 && values(&out[0], (double[]){4, 6}, 2));
  tc_model_free(e.m);
}

static void reduce_int_and_empty(void) {
  env e = env_new();
  int64_t d[] = {2, 0};
  tc_node *n = mk(&e, "ReduceMax", 1, 1, 2);
  int64_t axes[] = {1};
  attr_ints(n, 0, "axes", axes, 1);
  attr_i(n, 1, "keepdims", 1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_I32, 2, d, NULL)};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 13, in, 1, out) == TC_STATUS_OK);
  CHECK(out[0].dtype == TC_DTYPE_I32 && out[0].dims[1] == 1);
  CHECK(tc_rt_get_i64(&out[0], 0) == INT32_MIN && tc_rt_get_i64(&out[0], 1) == INT32_MIN);
  /* int64 sum stays exact past 2^53 */
  int64_t d2[] = {2};
  tc_node *s = mk(&e, "ReduceSum", 1, 1, 0);
  tc_rt_tensor *big = ten(&e, TC_DTYPE_I64, 1, d2, (double[]){0, 1});
  ((int64_t *)big->data)[0] = (INT64_C(1) << 60) + 1;
  const tc_rt_tensor *in2[] = {big};
  CHECK(run(&e, s, 11, in2, 1, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 1 && tc_rt_get_i64(&out[0], 0) == (INT64_C(1) << 60) + 2);
  /* rank 0 */
  tc_node *m = mk(&e, "ReduceMean", 1, 1, 0);
  const tc_rt_tensor *in3[] = {ten(&e, TC_DTYPE_F64, 0, NULL, (double[]){2.5})};
  CHECK(run(&e, m, 18, in3, 1, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 0 && values(&out[0], (double[]){2.5}, 1));
  /* bool min of the empty set is true */
  tc_node *b = mk(&e, "ReduceMin", 1, 1, 0);
  const tc_rt_tensor *in4[] = {ten(&e, TC_DTYPE_BOOL, 2, d, NULL)};
  CHECK(run(&e, b, 20, in4, 1, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 2 && out[0].dims[0] == 1 && tc_rt_get_i64(&out[0], 0) == 1);
  tc_model_free(e.m);
}

static void argmax_last_index(void) {
  env e = env_new();
  int64_t d[] = {2, 3};
  tc_node *n = mk(&e, "ArgMax", 1, 1, 3);
  attr_i(n, 0, "axis", -1);
  attr_i(n, 1, "keepdims", 0);
  attr_i(n, 2, "select_last_index", 1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_I64, 2, d, (double[]){5, 1, 5, 0, 0, 0})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 13, in, 1, out) == TC_STATUS_OK);
  CHECK(out[0].dtype == TC_DTYPE_I64 && out[0].rank == 1);
  CHECK(tc_rt_get_i64(&out[0], 0) == 2 && tc_rt_get_i64(&out[0], 1) == 2);
  CHECK(run(&e, n, 11, in, 1, out) == TC_STATUS_UNSUPPORTED); /* no select_last_index at 11 */
  tc_model_free(e.m);
}

static void softmax_coerced_before_13(void) {
  env e = env_new();
  int64_t d[] = {2, 2};
  double x[] = {0, 0, 0, 0};
  tc_node *n = mk(&e, "Softmax", 1, 1, 1);
  attr_i(n, 0, "axis", 0);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 2, d, x)};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 11, in, 1, out) == TC_STATUS_OK); /* one row of 4 */
  CHECK(values(&out[0], (double[]){.25, .25, .25, .25}, 4));
  CHECK(run(&e, n, 13, in, 1, out) == TC_STATUS_OK); /* along axis 0 */
  CHECK(values(&out[0], (double[]){.5, .5, .5, .5}, 4));
  tc_model_free(e.m);
}

static void matmul_batched_int_and_1d(void) {
  env e = env_new();
  int64_t da[] = {2, 1, 2, 3}, db[] = {3};
  double a[12], b[] = {1, 10, 100};
  for (int i = 0; i < 12; i++)
    a[i] = i;
  tc_node *n = mk(&e, "MatMul", 2, 1, 0);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_I64, 4, da, a), ten(&e, TC_DTYPE_I64, 1, db, b)};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 13, in, 2, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 3 && out[0].dims[0] == 2 && out[0].dims[1] == 1 && out[0].dims[2] == 2);
  CHECK(values(&out[0], (double[]){210, 543, 876, 1209}, 4));
  /* broadcast batch: [3,1,2,2] x [2,2] in float16 */
  int64_t dc[] = {3, 1, 2, 2}, dd[] = {2, 2};
  double c[12], id[] = {0, 1, 1, 0};
  for (int i = 0; i < 12; i++)
    c[i] = i;
  const tc_rt_tensor *in2[] = {ten(&e, TC_DTYPE_F16, 4, dc, c), ten(&e, TC_DTYPE_F16, 2, dd, id)};
  CHECK(run(&e, n, 13, in2, 2, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 4 && values(&out[0], (double[]){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10}, 12));
  tc_model_free(e.m);
}

static void gemm_trans_bf16(void) {
  env e = env_new();
  int64_t da[] = {2, 2}, dc[] = {1};
  tc_node *n = mk(&e, "Gemm", 3, 1, 2);
  attr_i(n, 0, "transA", 1);
  attr_i(n, 1, "transB", 1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_BF16, 2, da, (double[]){1, 2, 3, 4}),
                              ten(&e, TC_DTYPE_BF16, 2, da, (double[]){1, 0, 0, 1}),
                              ten(&e, TC_DTYPE_BF16, 1, dc, (double[]){10})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 13, in, 3, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){11, 13, 12, 14}, 4));
  tc_model_free(e.m);
}

static void matmulinteger_zero_points(void) {
  env e = env_new();
  int64_t d[] = {2, 2}, one = 1;
  tc_node *n = mk(&e, "MatMulInteger", 4, 1, 0);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_U8, 2, d, (double[]){11, 12, 13, 14}),
                              ten(&e, TC_DTYPE_I8, 2, d, (double[]){1, -1, 2, 0}), NULL,
                              ten(&e, TC_DTYPE_I8, 1, &one, (double[]){0})};
  tc_rt_tensor *az = ten(&e, TC_DTYPE_U8, 0, NULL, (double[]){10});
  in[2] = az;
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 13, in, 4, out) == TC_STATUS_OK);
  CHECK(out[0].dtype == TC_DTYPE_I32 && values(&out[0], (double[]){5, -1, 11, -3}, 4));
  tc_model_free(e.m);
}

static void topk_attr_and_smallest(void) {
  env e = env_new();
  int64_t d[] = {5};
  double x[] = {3, 1, 4, 1, 5};
  tc_node *n = mk(&e, "TopK", 1, 2, 1);
  attr_i(n, 0, "k", 2);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 1, d, x)};
  tc_rt_tensor out[2];
  CHECK(run(&e, n, 1, in, 1, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){5, 4}, 2) && values(&out[1], (double[]){4, 2}, 2));
  tc_node *s = mk(&e, "TopK", 2, 2, 1);
  attr_i(s, 0, "largest", 0);
  int64_t one = 1;
  const tc_rt_tensor *in2[] = {in[0], ten(&e, TC_DTYPE_I64, 1, &one, (double[]){3})};
  CHECK(run(&e, s, 11, in2, 2, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){1, 1, 3}, 3) && values(&out[1], (double[]){1, 3, 0}, 3));
  tc_model_free(e.m);
}

static void groupnorm_18_per_group(void) {
  env e = env_new();
  int64_t d[] = {1, 4, 1}, dg[] = {2};
  tc_node *n = mk(&e, "GroupNormalization", 3, 1, 2);
  attr_i(n, 0, "num_groups", 2);
  n->attrs[1].name = "epsilon";
  n->attrs[1].type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  n->attrs[1].f = 0;
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 3, d, (double[]){1, 3, 5, 9}),
                              ten(&e, TC_DTYPE_F32, 1, dg, (double[]){1, 2}),
                              ten(&e, TC_DTYPE_F32, 1, dg, (double[]){0, 10})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 18, in, 3, out) == TC_STATUS_OK);
  CHECK(values(&out[0], (double[]){-1, 1, 8, 12}, 4));
  CHECK(run(&e, n, 21, in, 3, out) == TC_STATUS_INVALID); /* 21 wants one per channel */
  tc_model_free(e.m);
}

static void layernorm_outputs(void) {
  env e = env_new();
  int64_t d[] = {2, 2}, ds[] = {2};
  tc_node *n = mk(&e, "LayerNormalization", 2, 3, 0);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F16, 2, d, (double[]){1, 3, 2, 2}),
                              ten(&e, TC_DTYPE_F16, 1, ds, (double[]){1, 1})};
  tc_rt_tensor out[3];
  CHECK(run(&e, n, 17, in, 2, out) == TC_STATUS_OK);
  CHECK(out[0].dtype == TC_DTYPE_F16 && values(&out[0], (double[]){-1, 1, 0, 0}, 4));
  CHECK(out[1].dtype == TC_DTYPE_F32 && out[1].rank == 2 && out[1].dims[1] == 1);
  CHECK(values(&out[1], (double[]){2, 2}, 2));
  CHECK(fabs(tc_rt_get_f64(&out[2], 1) - 1 / sqrt(1e-5)) < 1);
  tc_model_free(e.m);
}

static void einsum_diagonal_and_implicit(void) {
  env e = env_new();
  int64_t d[] = {2, 2, 2};
  double x[] = {1, 2, 3, 4, 5, 6, 7, 8};
  tc_node *n = mk(&e, "Einsum", 1, 1, 1);
  attr_s(n, 0, "equation", "...ii->...i");
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 3, d, x)};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 12, in, 1, out) == TC_STATUS_OK);
  CHECK(out[0].rank == 2 && values(&out[0], (double[]){1, 4, 5, 8}, 4));
  tc_node *m = mk(&e, "Einsum", 2, 1, 1);
  attr_s(m, 0, "equation", "ij,jk");
  int64_t d2[] = {2, 2};
  const tc_rt_tensor *in2[] = {ten(&e, TC_DTYPE_I32, 2, d2, (double[]){1, 2, 3, 4}),
                               ten(&e, TC_DTYPE_I32, 2, d2, (double[]){0, 1, 1, 0})};
  CHECK(run(&e, m, 12, in2, 2, out) == TC_STATUS_OK);
  CHECK(out[0].dtype == TC_DTYPE_I32 && values(&out[0], (double[]){2, 1, 4, 3}, 4));
  tc_model_free(e.m);
}

static void refusals(void) {
  env e = env_new();
  int64_t d[] = {2};
  tc_node *n = mk(&e, "BatchNormalization", 5, 1, 1);
  attr_i(n, 0, "training_mode", 1);
  const tc_rt_tensor *in[] = {ten(&e, TC_DTYPE_F32, 1, d, (double[]){1, 2})};
  tc_rt_tensor out[1];
  CHECK(run(&e, n, 15, in, 1, out) == TC_STATUS_UNSUPPORTED);
  tc_node *m = mk(&e, "MatMul", 2, 1, 1);
  attr_i(m, 0, "bogus", 1);
  CHECK(run(&e, m, 13, in, 1, out) == TC_STATUS_UNSUPPORTED);
  tc_node *r = mk(&e, "ReduceSum", 1, 1, 0);
  const tc_rt_tensor *bad[] = {ten(&e, TC_DTYPE_STRING, 1, d, NULL)};
  CHECK(run(&e, r, 13, bad, 1, out) == TC_STATUS_UNSUPPORTED);
  tc_model_free(e.m);
}

int main(void) {
  RUN(reduce_sum_attr_axes_f16);
  RUN(reduce_axes_input_and_noop);
  RUN(reduce_int_and_empty);
  RUN(argmax_last_index);
  RUN(softmax_coerced_before_13);
  RUN(matmul_batched_int_and_1d);
  RUN(gemm_trans_bf16);
  RUN(matmulinteger_zero_points);
  RUN(topk_attr_and_smallest);
  RUN(groupnorm_18_per_group);
  RUN(layernorm_outputs);
  RUN(einsum_diagonal_and_implicit);
  RUN(refusals);
  return SUMMARY("kernels_reduce_nn");
}
