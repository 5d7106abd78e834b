/* Unit tests of the tensor / shape kernels (runtime/kernels/tensor.c): the
 * cases the ONNX node tests do not reach (old opsets, strings, int32
 * indices, zero-size dims, load-time refusals). */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "kernel.h"
#include "kernel_node.h"

static void test_transpose_strings(void) {
  const char *v[6] = {"a", "b", "c", "d", "e", "f"};
  int64_t dims[2] = {2, 3};
  tc_rt_tensor x = mk(TC_DTYPE_STRING, 2, dims, (void *)v), out;
  const tc_rt_tensor *in[1] = {&x};
  CHECK(run(node("Transpose", 1, 1, NULL, 0), 13, in, 1, &out, 1) == TC_STATUS_OK);
  char **o = out.data;
  CHECK(out.dims[0] == 3 && out.dims[1] == 2);
  CHECK(strcmp(o[0], "a") == 0 && strcmp(o[1], "d") == 0 && strcmp(o[5], "f") == 0);
}

static void test_slice_opset1_and_negative_steps(void) {
  int64_t data[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, d10 = 10;
  tc_rt_tensor x = mk(TC_DTYPE_I64, 1, &d10, data), out;
  int64_t st[1] = {-8}, en[1] = {100};
  tc_attr a[2] = {ints_attr("starts", st, 1), ints_attr("ends", en, 1)};
  const tc_rt_tensor *in1[1] = {&x};
  CHECK(run(node("Slice", 1, 1, a, 2), 1, in1, 1, &out, 1) == TC_STATUS_OK);
  CHECK(out.dims[0] == 8 && ((int64_t *)out.data)[0] == 2);
  /* opset 13: start -1, end INT64_MIN, step -3 -> 9 6 3 0; int32 starts */
  int32_t s32 = -1;
  int64_t e64 = INT64_MIN, stp = -3, one = 1;
  tc_rt_tensor ts = mk(TC_DTYPE_I32, 1, &one, &s32), te = mk(TC_DTYPE_I64, 1, &one, &e64),
               tp = mk(TC_DTYPE_I64, 1, &one, &stp);
  const tc_rt_tensor *in2[5] = {&x, &ts, &te, NULL, &tp};
  CHECK(run(node("Slice", 5, 1, NULL, 0), 13, in2, 5, &out, 1) == TC_STATUS_OK);
  int64_t *o = out.data;
  CHECK(out.dims[0] == 4 && o[0] == 9 && o[1] == 6 && o[2] == 3 && o[3] == 0);
  /* An attribute at opset 13 is refused at load time. */
  CHECK(run(node("Slice", 5, 1, a, 2), 13, in2, 5, &out, 1) == TC_STATUS_UNSUPPORTED);
}

static void test_pad_opset2_and_modes(void) {
  int32_t v[3] = {1, 2, 3};
  int64_t d[2] = {1, 3};
  tc_rt_tensor x = mk(TC_DTYPE_I32, 2, d, v), out;
  const tc_rt_tensor *in[1] = {&x};
  int64_t pads[4] = {0, 5, 0, 5};
  tc_attr a[2] = {ints_attr("pads", pads, 4), str_attr("mode", "reflect")};
  CHECK(run(node("Pad", 1, 1, a, 2), 2, in, 1, &out, 1) == TC_STATUS_OK);
  int32_t want[13] = {2, 1, 2, 3, 2, 1, 2, 3, 2, 1, 2, 3, 2};
  CHECK(out.dims[1] == 13 && memcmp(out.data, want, sizeof want) == 0);
  tc_attr c[2] = {ints_attr("pads", pads, 4), float_attr("value", 7.0f)};
  CHECK(run(node("Pad", 1, 1, c, 2), 2, in, 1, &out, 1) == TC_STATUS_OK);
  CHECK(((int32_t *)out.data)[0] == 7 && ((int32_t *)out.data)[5] == 1);
  /* opset 19 wrap with inputs, negative pad crops */
  int64_t p2[4] = {0, 4, 0, -1}, four = 4;
  tc_rt_tensor tp = mk(TC_DTYPE_I64, 1, &four, p2);
  const tc_rt_tensor *in2[2] = {&x, &tp};
  tc_attr w[1] = {str_attr("mode", "wrap")};
  CHECK(run(node("Pad", 2, 1, w, 1), 19, in2, 2, &out, 1) == TC_STATUS_OK);
  int32_t want2[6] = {3, 1, 2, 3, 1, 2};
  CHECK(out.dims[1] == 6 && memcmp(out.data, want2, sizeof want2) == 0);
  tc_attr bad[1] = {str_attr("mode", "mirror")};
  CHECK(run(node("Pad", 2, 1, bad, 1), 19, in2, 2, &out, 1) == TC_STATUS_UNSUPPORTED);
}

static void test_split_squeeze_old_opsets(void) {
  float v[6] = {1, 2, 3, 4, 5, 6};
  int64_t d[2] = {1, 6};
  tc_rt_tensor x = mk(TC_DTYPE_F32, 2, d, v), out[2];
  const tc_rt_tensor *in[1] = {&x};
  int64_t sp[2] = {2, 4};
  tc_attr a[2] = {int_attr("axis", -1), ints_attr("split", sp, 2)};
  CHECK(run(node("Split", 1, 2, a, 2), 11, in, 1, out, 2) == TC_STATUS_OK);
  CHECK(out[0].dims[1] == 2 && out[1].dims[1] == 4 && ((float *)out[1].data)[0] == 3);
  /* opset 18 num_outputs, uneven: 6 in 4 -> 2 2 2 0 */
  tc_rt_tensor o4[4];
  tc_attr b[2] = {int_attr("axis", 1), int_attr("num_outputs", 4)};
  CHECK(run(node("Split", 1, 4, b, 2), 18, in, 1, o4, 4) == TC_STATUS_OK);
  CHECK(o4[0].dims[1] == 2 && o4[2].dims[1] == 2 && o4[3].dims[1] == 0);
  int64_t ax[1] = {0};
  tc_attr s[1] = {ints_attr("axes", ax, 1)};
  CHECK(run(node("Squeeze", 1, 1, s, 1), 11, in, 1, out, 1) == TC_STATUS_OK);
  CHECK(out[0].rank == 1 && out[0].dims[0] == 6);
  CHECK(run(node("Unsqueeze", 1, 1, s, 1), 11, in, 1, out, 1) == TC_STATUS_OK);
  CHECK(out[0].rank == 3 && out[0].dims[0] == 1 && out[0].dims[2] == 6);
  CHECK(run(node("Squeeze", 1, 1, s, 1), 13, in, 1, out, 1) == TC_STATUS_UNSUPPORTED);
}

static void test_gather_int32_scalar_index(void) {
  double v[6] = {1, 2, 3, 4, 5, 6};
  int64_t d[2] = {2, 3};
  int32_t idx = -1;
  tc_rt_tensor x = mk(TC_DTYPE_F64, 2, d, v), ti = mk(TC_DTYPE_I32, 0, NULL, &idx), out;
  const tc_rt_tensor *in[2] = {&x, &ti};
  tc_attr a[1] = {int_attr("axis", 1)};
  CHECK(run(node("Gather", 2, 1, a, 1), 13, in, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 1 && out.dims[0] == 2);
  CHECK(((double *)out.data)[0] == 3 && ((double *)out.data)[1] == 6);
  idx = 3;
  CHECK(run(node("Gather", 2, 1, a, 1), 13, in, 2, &out, 1) == TC_STATUS_INVALID);
}

static void test_zero_size_and_reshape(void) {
  int64_t d0[2] = {0, 2}, d1[2] = {1, 2};
  float b[2] = {5, 6};
  tc_rt_tensor e = mk(TC_DTYPE_F32, 2, d0, b), f = mk(TC_DTYPE_F32, 2, d1, b), out;
  const tc_rt_tensor *in[2] = {&e, &f};
  tc_attr a[1] = {int_attr("axis", 0)};
  CHECK(run(node("Concat", 2, 1, a, 1), 13, in, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.dims[0] == 1 && ((float *)out.data)[1] == 6);
  /* Reshape of an empty tensor to [0, 5] with allowzero */
  int64_t shp[2] = {0, 5}, two = 2;
  tc_rt_tensor ts = mk(TC_DTYPE_I64, 1, &two, shp);
  const tc_rt_tensor *in2[2] = {&e, &ts};
  tc_attr z[1] = {int_attr("allowzero", 1)};
  CHECK(run(node("Reshape", 2, 1, z, 1), 14, in2, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 2 && out.dims[0] == 0 && out.dims[1] == 5);
  /* Without allowzero 0 copies the input dim: [1, 2] -> [1, -1] */
  int64_t shp2[2] = {0, -1};
  tc_rt_tensor ts2 = mk(TC_DTYPE_I64, 1, &two, shp2);
  const tc_rt_tensor *in3[2] = {&f, &ts2};
  CHECK(run(node("Reshape", 2, 1, NULL, 0), 14, in3, 2, &out, 1) == TC_STATUS_OK);
  CHECK(out.dims[0] == 1 && out.dims[1] == 2);
  /* Identity and Shape on a scalar */
  tc_rt_tensor sc = mk(TC_DTYPE_F32, 0, NULL, b);
  const tc_rt_tensor *in4[1] = {&sc};
  CHECK(run(node("Identity", 1, 1, NULL, 0), 21, in4, 1, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 0 && ((float *)out.data)[0] == 5);
  CHECK(run(node("Shape", 1, 1, NULL, 0), 21, in4, 1, &out, 1) == TC_STATUS_OK);
  CHECK(out.rank == 1 && out.dims[0] == 0);
}

static void test_range_and_constant(void) {
  int32_t a = 10, l = 4, dl = -2;
  tc_rt_tensor ta = mk(TC_DTYPE_I32, 0, NULL, &a), tl = mk(TC_DTYPE_I32, 0, NULL, &l),
               td = mk(TC_DTYPE_I32, 0, NULL, &dl), out;
  const tc_rt_tensor *in[3] = {&ta, &tl, &td};
  CHECK(run(node("Range", 3, 1, NULL, 0), 11, in, 3, &out, 1) == TC_STATUS_OK);
  int32_t *o = out.data;
  CHECK(out.dims[0] == 3 && o[0] == 10 && o[1] == 8 && o[2] == 6);
  int64_t v[3] = {4, 5, 6};
  tc_attr c[1] = {ints_attr("value_ints", v, 3)};
  CHECK(run(node("Constant", 0, 1, c, 1), 13, NULL, 0, &out, 1) == TC_STATUS_OK);
  CHECK(out.dtype == TC_DTYPE_I64 && out.dims[0] == 3 && ((int64_t *)out.data)[2] == 6);
  tc_attr bad[2] = {ints_attr("value_ints", v, 3), int_attr("value_int", 1)};
  CHECK(run(node("Constant", 0, 1, bad, 2), 13, NULL, 0, &out, 1) == TC_STATUS_UNSUPPORTED);
}

static void test_scatter_nonzero_refusals(void) {
  float v[4] = {1, 2, 3, 4}, u[2] = {10, 10};
  int64_t d[1] = {4}, d2[1] = {2};
  int32_t idx[2] = {1, -1};
  tc_rt_tensor x = mk(TC_DTYPE_F32, 1, d, v), ti = mk(TC_DTYPE_I32, 1, d2, idx),
               tu = mk(TC_DTYPE_F32, 1, d2, u), out;
  const tc_rt_tensor *in[3] = {&x, &ti, &tu};
  tc_attr r[1] = {str_attr("reduction", "mul")};
  CHECK(run(node("ScatterElements", 3, 1, r, 1), 18, in, 3, &out, 1) == TC_STATUS_OK);
  float *o = out.data;
  CHECK(o[0] == 1 && o[1] == 20 && o[2] == 3 && o[3] == 40);
  tc_attr bad[1] = {str_attr("reduction", "mean")};
  CHECK(run(node("ScatterElements", 3, 1, bad, 1), 18, in, 3, &out, 1) == TC_STATUS_UNSUPPORTED);
  tc_attr unk[1] = {int_attr("bogus", 1)};
  CHECK(run(node("Transpose", 1, 1, unk, 1), 13, in, 1, &out, 1) == TC_STATUS_UNSUPPORTED);
  uint8_t bv[4] = {0, 1, 0, 1};
  int64_t bd[2] = {2, 2};
  tc_rt_tensor tb = mk(TC_DTYPE_BOOL, 2, bd, bv);
  const tc_rt_tensor *in2[1] = {&tb};
  CHECK(run(node("NonZero", 1, 1, NULL, 0), 13, in2, 1, &out, 1) == TC_STATUS_OK);
  int64_t *n = out.data;
  CHECK(out.dims[0] == 2 && out.dims[1] == 2 && n[0] == 0 && n[1] == 1 && n[2] == 1 && n[3] == 1);
}

int main(void) {
  model = tc_model_new_empty();
  model->graph = tc_graph_new(model, NULL, "g");
  arena = tc_arena_new();
  RUN(test_transpose_strings);
  RUN(test_slice_opset1_and_negative_steps);
  RUN(test_pad_opset2_and_modes);
  RUN(test_split_squeeze_old_opsets);
  RUN(test_gather_int32_scalar_index);
  RUN(test_zero_size_and_reshape);
  RUN(test_range_and_constant);
  RUN(test_scatter_nonzero_refusals);
  tc_arena_free(arena);
  tc_model_free(model);
  return SUMMARY("kernels_tensor");
}
