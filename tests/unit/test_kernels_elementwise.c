/* Unit tests of the elementwise kernels (runtime/kernels/elementwise.c): the
 * cases the ONNX node tests do not reach (integer edge cases, strided
 * broadcasting, rank-0 and empty tensors, old opsets, rounding, load-time
 * refusals). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "kernel_node.h"

static void test_int_division_edges(void) {
  int32_t a[6] = {7, -7, 7, -7, INT32_MIN, 5}, b[6] = {2, 2, -2, -2, -1, 0};
  int64_t d6 = 6;
  tc_rt_tensor x = mk(TC_DTYPE_I32, 1, &d6, a), y = mk(TC_DTYPE_I32, 1, &d6, b), out;
  const tc_rt_tensor *in[2] = {&x, &y};
  CHECK(run(node("Div", 2, 1, NULL, 0), 14, in, 2, &out, 1) == TC_STATUS_OK);
  int32_t *o = out.data;
  CHECK(o[0] == 3 && o[1] == -3 && o[2] == -3 && o[3] == 3 && o[4] == INT32_MIN && o[5] == 0);
  CHECK(run(node("Mod", 2, 1, NULL, 0), 13, in, 2, &out, 1) == TC_STATUS_OK); /* Python signs */
  o = out.data;
  CHECK(o[0] == 1 && o[1] == 1 && o[2] == -1 && o[3] == -1 && o[4] == 0 && o[5] == 0);
  tc_attr fm = int_attr("fmod", 1);
  CHECK(run(node("Mod", 2, 1, &fm, 1), 13, in, 2, &out, 1) == TC_STATUS_OK); /* C signs */
  o = out.data;
  CHECK(o[0] == 1 && o[1] == -1 && o[2] == 1 && o[3] == -1);
  CHECK(run(node("Add", 2, 1, NULL, 0), 14, in, 2, &out, 1) == TC_STATUS_OK); /* wraps */
  CHECK(((int32_t *)out.data)[4] == INT32_MAX);
}

/* Where by masks: each element size, a broadcast condition and a scalar
 * operand, with the expected values written out. */
static void test_where_sizes(void) {
  uint8_t c[4] = {1, 0, 0, 1};
  int64_t d4 = 4, d22[2] = {2, 2};
  float xf[4] = {1, 2, 3, 4}, yf = -1;
  uint8_t x8[4] = {10, 20, 30, 40}, y8[4] = {250, 251, 252, 253};
  uint16_t x16[4] = {1000, 2000, 3000, 4000}, y16[4] = {9, 8, 7, 6};
  int64_t x64[4] = {INT64_MIN, -2, 3, INT64_MAX}, y64[4] = {5, 6, 7, 8};
  tc_rt_tensor cond = mk(TC_DTYPE_BOOL, 1, &d4, c), out;
  tc_rt_tensor a = mk(TC_DTYPE_F32, 1, &d4, xf), b = mk(TC_DTYPE_F32, 0, NULL, &yf);
  const tc_rt_tensor *in[3] = {&cond, &a, &b};
  CHECK(run(node("Where", 3, 1, NULL, 0), 16, in, 3, &out, 1) == TC_STATUS_OK);
  float *of = out.data;
  CHECK(of[0] == 1 && of[1] == -1 && of[2] == -1 && of[3] == 4);
  tc_rt_tensor a8 = mk(TC_DTYPE_U8, 1, &d4, x8), b8 = mk(TC_DTYPE_U8, 1, &d4, y8);
  const tc_rt_tensor *in8[3] = {&cond, &a8, &b8};
  CHECK(run(node("Where", 3, 1, NULL, 0), 16, in8, 3, &out, 1) == TC_STATUS_OK);
  uint8_t *o8 = out.data;
  CHECK(o8[0] == 10 && o8[1] == 251 && o8[2] == 252 && o8[3] == 40);
  tc_rt_tensor a16 = mk(TC_DTYPE_F16, 1, &d4, x16), b16 = mk(TC_DTYPE_F16, 1, &d4, y16);
  const tc_rt_tensor *in16[3] = {&cond, &a16, &b16};
  CHECK(run(node("Where", 3, 1, NULL, 0), 16, in16, 3, &out, 1) == TC_STATUS_OK);
  uint16_t *o16 = out.data;
  CHECK(o16[0] == 1000 && o16[1] == 8 && o16[2] == 7 && o16[3] == 4000);
  /* a [2, 2] result: the condition's row broadcast down the columns */
  tc_rt_tensor c2 = mk(TC_DTYPE_BOOL, 1, &(int64_t){2}, c + 2);
  tc_rt_tensor a64 = mk(TC_DTYPE_I64, 2, d22, x64), b64 = mk(TC_DTYPE_I64, 2, d22, y64);
  const tc_rt_tensor *in64[3] = {&c2, &a64, &b64};
  CHECK(run(node("Where", 3, 1, NULL, 0), 16, in64, 3, &out, 1) == TC_STATUS_OK);
  int64_t *o64 = out.data;
  CHECK(out.rank == 2 && o64[0] == 5 && o64[1] == -2 && o64[2] == 7 && o64[3] == INT64_MAX);
}

static void test_broadcast_strided_and_scalar(void) {
  /* (2,1,3) + (4,1) -> (2,4,3); then a rank-0 scalar */
  float a[6] = {0, 1, 2, 3, 4, 5}, b[4] = {10, 20, 30, 40}, s = 100;
  int64_t da[3] = {2, 1, 3}, db[2] = {4, 1};
  tc_rt_tensor x = mk(TC_DTYPE_F32, 3, da, a), y = mk(TC_DTYPE_F32, 2, db, b), out;
  const tc_rt_tensor *in[2] = {&x, &y};
  CHECK(run(node("Add", 2, 1, NULL, 0), 14, in, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 3 && out.dims[0] == 2 && out.dims[1] == 4 && out.dims[2] == 3);
  float *o = out.data;
  bool ok = true;
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 4; j++)
      for (int k = 0; k < 3; k++)
        ok = ok && o[(i * 4 + j) * 3 + k] == a[i * 3 + k] + b[j];
  CHECK(ok);
  tc_rt_tensor sc = mk(TC_DTYPE_F32, 0, NULL, &s);
  const tc_rt_tensor *in2[2] = {&sc, &x};
  CHECK(run(node("Sub", 2, 1, NULL, 0), 14, in2, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 3 && ((float *)out.data)[5] == 95);
  const tc_rt_tensor *in3[2] = {&sc, &sc};
  CHECK(run(node("Mul", 2, 1, NULL, 0), 14, in3, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 0 && ((float *)out.data)[0] == 10000);
  /* shapes that do not broadcast */
  int64_t dc[1] = {4};
  tc_rt_tensor z = mk(TC_DTYPE_F32, 1, dc, b);
  const tc_rt_tensor *bad[2] = {&x, &z};
  CHECK(run(node("Add", 2, 1, NULL, 0), 14, bad, 2, &out, 1) == TC_STATUS_INVALID);
}

static void test_empty_and_variadic(void) {
  int64_t d0[2] = {0, 3}, d3 = 3, d1 = 1;
  float e = 0, a[3] = {1, 2, 3}, b[1] = {10}, c[3] = {-1, 50, 0};
  tc_rt_tensor x = mk(TC_DTYPE_F32, 2, d0, &e), y = mk(TC_DTYPE_F32, 1, &d3, a), out;
  const tc_rt_tensor *in[2] = {&x, &y};
  CHECK(run(node("Add", 2, 1, NULL, 0), 14, in, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 2 && out.dims[0] == 0 && out.dims[1] == 3);
  CHECK(run(node("Relu", 1, 1, NULL, 0), 14, in, 1, &out, 1) == TC_STATUS_OK && out.dims[0] == 0);
  tc_rt_tensor p = mk(TC_DTYPE_F32, 1, &d3, a), q = mk(TC_DTYPE_F32, 1, &d1, b),
               r = mk(TC_DTYPE_F32, 1, &d3, c);
  const tc_rt_tensor *three[3] = {&p, &q, &r};
  CHECK(run(node("Max", 3, 1, NULL, 0), 13, three, 3, &out, 1) == TC_STATUS_OK);
  float *o = out.data;
  CHECK(o[0] == 10 && o[1] == 50 && o[2] == 10);
  CHECK(run(node("Mean", 3, 1, NULL, 0), 13, three, 3, &out, 1) == TC_STATUS_OK);
  o = out.data;
  CHECK(fabsf(o[0] - 10.0f / 3) < 1e-6f && fabsf(o[1] - 62.0f / 3) < 1e-5f);
  const tc_rt_tensor *one[1] = {&q};
  CHECK(run(node("Sum", 1, 1, NULL, 0), 13, one, 1, &out, 1) == TC_STATUS_OK);
  CHECK(((float *)out.data)[0] == 10);
}

static void test_where_strings(void) {
  const char *xs[2] = {"a", "b"}, *ys[1] = {"z"};
  uint8_t c[2] = {1, 0};
  int64_t d2 = 2, d1 = 1;
  tc_rt_tensor cond = mk(TC_DTYPE_BOOL, 1, &d2, c), x = mk(TC_DTYPE_STRING, 1, &d2, (void *)xs),
               y = mk(TC_DTYPE_STRING, 1, &d1, (void *)ys), out;
  const tc_rt_tensor *in[3] = {&cond, &x, &y};
  CHECK(run(node("Where", 3, 1, NULL, 0), 16, in, 3, &out, 1) == TC_STATUS_OK);
  char **o = out.data;
  CHECK(strcmp(o[0], "a") == 0 && strcmp(o[1], "z") == 0 && o[0] != xs[0]);
  const tc_rt_tensor *eq[2] = {&x, &y};
  CHECK(run(node("Equal", 2, 1, NULL, 0), 19, eq, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.dtype == TC_DTYPE_BOOL && ((uint8_t *)out.data)[0] == 0);
}

static void test_clip_old_and_new(void) {
  float a[4] = {-5, 0.5f, 5, NAN};
  int64_t d4 = 4;
  tc_rt_tensor x = mk(TC_DTYPE_F32, 1, &d4, a), out;
  const tc_rt_tensor *in[1] = {&x};
  tc_attr mm[2] = {float_attr("min", -1), float_attr("max", 1)};
  CHECK(run(node("Clip", 1, 1, mm, 2), 6, in, 1, &out, 1) == TC_STATUS_OK);
  float *o = out.data;
  CHECK(o[0] == -1 && o[1] == 0.5f && o[2] == 1 && isnan(o[3]));
  /* opset 11+: min attribute refused, bounds from inputs (max only here) */
  CHECK(run(node("Clip", 1, 1, mm, 2), 13, in, 1, &out, 1) == TC_STATUS_UNSUPPORTED);
  int64_t v[3] = {-3, 7, 100}, hi = 7, d3 = 3;
  tc_rt_tensor xi = mk(TC_DTYPE_I64, 1, &d3, v), h = mk(TC_DTYPE_I64, 0, NULL, &hi);
  const tc_rt_tensor *in3[3] = {&xi, NULL, &h};
  CHECK(run(node("Clip", 3, 1, NULL, 0), 13, in3, 3, &out, 1) == TC_STATUS_OK);
  int64_t *oi = out.data;
  CHECK(oi[0] == -3 && oi[1] == 7 && oi[2] == 7);
}

static void test_rounding_and_casts(void) {
  float a[6] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f};
  int64_t d6 = 6, d1 = 1;
  tc_rt_tensor x = mk(TC_DTYPE_F32, 1, &d6, a), out;
  const tc_rt_tensor *in[1] = {&x};
  CHECK(run(node("Round", 1, 1, NULL, 0), 11, in, 1, &out, 1) == TC_STATUS_OK);
  float *o = out.data;
  CHECK(o[0] == 0 && o[1] == 2 && o[2] == 2 && o[3] == 0 && o[4] == -2 && o[5] == 2);
  /* float64 -> float16 rounds once: 1 + 2^-11 + 2^-40 is above the tie */
  double d = 1 + ldexp(1, -11) + ldexp(1, -40);
  tc_rt_tensor xd = mk(TC_DTYPE_F64, 1, &d1, &d);
  const tc_rt_tensor *ind[1] = {&xd};
  tc_attr to = int_attr("to", TC_DTYPE_F16);
  CHECK(run(node("Cast", 1, 1, &to, 1), 13, ind, 1, &out, 1) == TC_STATUS_OK);
  CHECK(((uint16_t *)out.data)[0] == 0x3c01);
  /* float -> int8 goes through int64 and wraps like numpy; NaN gives 0 */
  float f[3] = {300.7f, -1.9f, NAN};
  int64_t d3 = 3;
  tc_rt_tensor xf = mk(TC_DTYPE_F32, 1, &d3, f);
  const tc_rt_tensor *inf[1] = {&xf};
  tc_attr to8 = int_attr("to", TC_DTYPE_I8);
  CHECK(run(node("Cast", 1, 1, &to8, 1), 13, inf, 1, &out, 1) == TC_STATUS_OK);
  int8_t *o8 = out.data;
  CHECK(o8[0] == 44 && o8[1] == -1 && o8[2] == 0);
  tc_attr tos = int_attr("to", TC_DTYPE_STRING);
  CHECK(run(node("Cast", 1, 1, &tos, 1), 13, inf, 1, &out, 1) == TC_STATUS_UNSUPPORTED);
}

static void test_refusals(void) {
  float a[1] = {1};
  int64_t d1 = 1;
  tc_rt_tensor x = mk(TC_DTYPE_F32, 1, &d1, a), out;
  const tc_rt_tensor *in[2] = {&x, &x};
  tc_attr axis = int_attr("axis", 1);
  CHECK(run(node("Add", 2, 1, &axis, 1), 6, in, 2, &out, 1) == TC_STATUS_UNSUPPORTED);
  CHECK(strstr(diag.reason, "axis") != NULL);
  tc_attr approx = str_attr("approximate", "erf");
  CHECK(run(node("Gelu", 1, 1, &approx, 1), 20, in, 1, &out, 1) == TC_STATUS_UNSUPPORTED);
  tc_attr alpha_int = int_attr("alpha", 2);
  CHECK(run(node("LeakyRelu", 1, 1, &alpha_int, 1), 16, in, 1, &out, 1) == TC_STATUS_UNSUPPORTED);
  tc_attr dir = str_attr("direction", "UP");
  CHECK(run(node("BitShift", 2, 1, &dir, 1), 11, in, 2, &out, 1) == TC_STATUS_UNSUPPORTED);
  /* a dtype outside the schema */
  CHECK(run(node("Sqrt", 1, 1, NULL, 0), 13,
            (const tc_rt_tensor *const[]){&(tc_rt_tensor){.dtype = TC_DTYPE_I32, .data = a}}, 1,
            &out, 1) == TC_STATUS_UNSUPPORTED);
  /* signed BitShift arrived in opset 28 */
  int8_t v = -8, s = 1;
  tc_rt_tensor xi = mk(TC_DTYPE_I8, 0, NULL, &v), si = mk(TC_DTYPE_I8, 0, NULL, &s);
  const tc_rt_tensor *ins[2] = {&xi, &si};
  tc_attr right = str_attr("direction", "RIGHT");
  CHECK(run(node("BitShift", 2, 1, &right, 1), 11, ins, 2, &out, 1) == TC_STATUS_UNSUPPORTED);
  CHECK(run(node("BitShift", 2, 1, &right, 1), 28, ins, 2, &out, 1) == TC_STATUS_OK);
  CHECK(((int8_t *)out.data)[0] == -4);
}

int main(void) {
  model = tc_model_new_empty();
  model->graph = tc_graph_new(model, NULL, "g");
  arena = tc_arena_new();
  RUN(test_int_division_edges);
  RUN(test_broadcast_strided_and_scalar);
  RUN(test_empty_and_variadic);
  RUN(test_where_strings);
  RUN(test_where_sizes);
  RUN(test_clip_old_and_new);
  RUN(test_rounding_and_casts);
  RUN(test_refusals);
  tc_arena_free(arena);
  tc_model_free(model);
  return SUMMARY("kernels_elementwise");
}
