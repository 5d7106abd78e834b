/* Conv/pool/quantize kernels called directly on small hand-checked cases. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "diag.h"
#include "kernel.h"

typedef struct env {
  tc_arena *arena;
  tc_diag diag;
  tc_node node;
  tc_attr attrs[8];
  const tc_kernel_def *def;
  tc_kernel_ctx k;
} env;

static void env_init(env *e, const char *op, int64_t opset) {
  memset(e, 0, sizeof *e);
  e->arena = tc_arena_new();
  e->node.op_type = op;
  e->node.domain = "";
  e->node.name = "n";
  e->node.attrs = e->attrs;
  e->def = tc_kernel_find(op, "", opset);
  e->k.node = &e->node;
  e->k.opset = opset;
  e->k.diag = &e->diag;
  e->k.arena = e->arena;
}

static void add_ints(env *e, const char *name, size_t n, int64_t *v) {
  tc_attr *a = &e->attrs[e->node.n_attrs++];
  a->name = name;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  a->n_ints = n;
  a->ints = v;
}

static void add_int(env *e, const char *name, int64_t v) {
  tc_attr *a = &e->attrs[e->node.n_attrs++];
  a->name = name;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  a->i = v;
}

static void add_str(env *e, const char *name, const char *v) {
  tc_attr *a = &e->attrs[e->node.n_attrs++];
  a->name = name;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  a->s.data = (uint8_t *)v;
  a->s.len = strlen(v);
}

static tc_rt_tensor tensor(int32_t dt, size_t rank, const int64_t *dims, void *data) {
  tc_rt_tensor t = {dt, rank, {0}, data, 0};
  memcpy(t.dims, dims, rank * sizeof *dims);
  t.bytes = tc_dtype_bytes(dt, tc_rt_numel(&t));
  return t;
}

static tc_status run(env *e, const tc_rt_tensor **in, size_t n_in, tc_rt_tensor *out,
                     size_t n_out) {
  if (!e->def)
    return TC_STATUS_UNSUPPORTED;
  if (e->def->check) {
    tc_status st = e->def->check(&e->node, e->k.opset, &e->diag);
    if (st)
      return st;
  }
  return e->def->run(&e->k, in, n_in, out, n_out);
}

/* Moves y's data out of e's arena (malloc'd; the caller frees it) and
 * frees the arena. */
static void keep_output(tc_rt_tensor *y, env *e) {
  void *data = malloc(y->bytes);
  memcpy(data, y->data, y->bytes);
  y->data = data;
  tc_arena_free(e->arena);
}

/* ONNX's basic_conv_with_padding: 5x5 ramp, 3x3 ones, pads 1. */
static void test_conv_padding(void) {
  env e;
  env_init(&e, "Conv", 11);
  float x[25], w[9];
  for (int i = 0; i < 25; i++)
    x[i] = (float)i;
  for (int i = 0; i < 9; i++)
    w[i] = 1;
  int64_t xd[] = {1, 1, 5, 5}, wd[] = {1, 1, 3, 3}, pads[] = {1, 1, 1, 1}, ks[] = {3, 3};
  add_ints(&e, "kernel_shape", 2, ks);
  add_ints(&e, "pads", 4, pads);
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 4, xd, x), W = tensor(TC_DTYPE_F32, 4, wd, w), Y;
  const tc_rt_tensor *in[] = {&X, &W};
  CHECK(run(&e, in, 2, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.rank == 4 && Y.dims[2] == 5 && Y.dims[3] == 5);
  const float want[] = {12,  21, 27, 33,  24,  33,  54,  63, 72,  51,  63,  99, 108,
                        117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84};
  for (int i = 0; i < 25; i++)
    CHECK(((float *)Y.data)[i] == want[i]);
  tc_arena_free(e.arena);
}

/* float16 in, float16 out; SAME_UPPER with stride 2 and a bias. */
static void test_conv_f16_same(void) {
  env e;
  env_init(&e, "Conv", 11);
  uint16_t x[4], w[1], b[1];
  for (int i = 0; i < 4; i++)
    x[i] = tc_f32_to_f16((float)(i + 1));
  w[0] = tc_f32_to_f16(2.0f);
  b[0] = tc_f32_to_f16(0.5f);
  int64_t xd[] = {1, 1, 4}, wd[] = {1, 1, 1}, bd[] = {1}, st[] = {2};
  add_str(&e, "auto_pad", "SAME_UPPER");
  add_ints(&e, "strides", 1, st);
  tc_rt_tensor X = tensor(TC_DTYPE_F16, 3, xd, x), W = tensor(TC_DTYPE_F16, 3, wd, w),
               B = tensor(TC_DTYPE_F16, 1, bd, b), Y;
  const tc_rt_tensor *in[] = {&X, &W, &B};
  CHECK(run(&e, in, 3, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.dtype == TC_DTYPE_F16 && Y.dims[2] == 2);
  CHECK(tc_f16_to_f32(((uint16_t *)Y.data)[0]) == 2.5f);
  CHECK(tc_f16_to_f32(((uint16_t *)Y.data)[1]) == 6.5f);
  tc_arena_free(e.arena);
}

static void test_conv_zero_batch(void) {
  env e;
  env_init(&e, "Conv", 11);
  float w[2] = {1, 1};
  int64_t xd[] = {0, 2, 3}, wd[] = {1, 2, 1};
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, w), W = tensor(TC_DTYPE_F32, 3, wd, w), Y;
  const tc_rt_tensor *in[] = {&X, &W};
  CHECK(run(&e, in, 2, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.rank == 3 && Y.dims[0] == 0 && Y.dims[1] == 1 && Y.dims[2] == 3);
  tc_arena_free(e.arena);
}

static void test_conv_refuses_unknown_attr(void) {
  env e;
  env_init(&e, "Conv", 11);
  add_int(&e, "frobnicate", 1);
  CHECK(e.def && e.def->check(&e.node, 11, &e.diag) == TC_STATUS_UNSUPPORTED);
  tc_arena_free(e.arena);
}

/* 1-D ConvTranspose, stride 2: each input spreads the kernel. */
static void test_convtranspose(void) {
  env e;
  env_init(&e, "ConvTranspose", 11);
  float x[] = {1, 2}, w[] = {1, 10, 100};
  int64_t xd[] = {1, 1, 2}, wd[] = {1, 1, 3}, st[] = {2};
  add_ints(&e, "strides", 1, st);
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), W = tensor(TC_DTYPE_F32, 3, wd, w), Y;
  const tc_rt_tensor *in[] = {&X, &W};
  CHECK(run(&e, in, 2, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.dims[2] == 5);
  const float want[] = {1, 10, 102, 20, 200};
  for (int i = 0; i < 5; i++)
    CHECK(((float *)Y.data)[i] == want[i]);
  tc_arena_free(e.arena);
}

static void test_maxpool_indices_ceil(void) {
  env e;
  env_init(&e, "MaxPool", 12);
  float x[] = {1, 5, 2, 4, 3};
  int64_t xd[] = {1, 1, 5}, ks[] = {2}, st[] = {2};
  add_ints(&e, "kernel_shape", 1, ks);
  add_ints(&e, "strides", 1, st);
  add_int(&e, "ceil_mode", 1);
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), Y[2];
  const tc_rt_tensor *in[] = {&X};
  CHECK(run(&e, in, 1, Y, 2) == TC_STATUS_OK);
  CHECK(Y[0].dims[2] == 3);
  const float want[] = {5, 4, 3};
  const int64_t widx[] = {1, 3, 4};
  for (int i = 0; i < 3; i++) {
    CHECK(((float *)Y[0].data)[i] == want[i]);
    CHECK(((int64_t *)Y[1].data)[i] == widx[i]);
  }
  tc_arena_free(e.arena);
}

/* 2-D float32 MaxPool: the separable fast path against the reference, with
 * NaN, -inf, padding, strides, ceil mode and windows hanging off the edge. */
static void test_maxpool2d_fast_matches_reference(void) {
  static const struct {
    int64_t h, w, kh, kw, sh, sw, pt, pl, pb, pr, ceil;
  } cases[] = {{13, 17, 3, 3, 2, 2, 1, 1, 1, 1, 0}, {8, 8, 2, 2, 2, 2, 0, 0, 0, 0, 0},
               {7, 23, 3, 5, 1, 3, 1, 2, 0, 2, 1},  {5, 40, 4, 2, 3, 1, 2, 0, 2, 1, 1},
               {1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},   {9, 33, 3, 3, 2, 2, 0, 0, 0, 0, 1}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int64_t xd[] = {2, 3, cases[c].h, cases[c].w}, ks[] = {cases[c].kh, cases[c].kw},
            st[] = {cases[c].sh, cases[c].sw},
            pads[] = {cases[c].pt, cases[c].pl, cases[c].pb, cases[c].pr};
    size_t n = (size_t)(2 * 3 * cases[c].h * cases[c].w);
    float *x = malloc(n * sizeof *x);
    uint32_t r = 12345u + (uint32_t)c;
    for (size_t i = 0; i < n; i++) {
      r = r * 1664525u + 1013904223u;
      x[i] = (float)((int)(r >> 9) % 2001 - 1000) / 100.0f;
      if (i % 37 == 11)
        x[i] = NAN;
      if (i % 41 == 3)
        x[i] = -INFINITY;
    }
    tc_rt_tensor Y[2][1];
    for (int fast = 0; fast < 2; fast++) {
      env e;
      env_init(&e, "MaxPool", 12);
      add_ints(&e, "kernel_shape", 2, ks);
      add_ints(&e, "strides", 2, st);
      add_ints(&e, "pads", 4, pads);
      add_int(&e, "ceil_mode", cases[c].ceil);
      tc_rt_tensor X = tensor(TC_DTYPE_F32, 4, xd, x);
      const tc_rt_tensor *in[] = {&X};
      tc_fast_kernels_set(fast);
      CHECK(run(&e, in, 1, Y[fast], 1) == TC_STATUS_OK);
      keep_output(&Y[fast][0], &e);
    }
    tc_fast_kernels_set(true);
    CHECK(Y[0][0].bytes == Y[1][0].bytes);
    const float *a = Y[0][0].data, *b = Y[1][0].data;
    bool same = true;
    for (size_t i = 0; i < Y[0][0].bytes / sizeof(float); i++)
      same &= (a[i] == b[i]) || (isnan(a[i]) && isnan(b[i]));
    CHECK(same);
    free(Y[0][0].data);
    free(Y[1][0].data);
    free(x);
  }
}

/* 8-bit 2-D MaxPool (QDQ models, runtime/qdq.c): the fast plain path (the
 * float32 loops on a widened copy) and the channels-last byte kernel give
 * the reference's bytes, uint8 and int8 (sign order), with padding that
 * leaves windows empty, strides, ceil mode, dilation, and channel counts
 * that end in a partial vector. */
static void test_maxpool8_matches_reference(void) {
  static const struct {
    int64_t c, h, w, kh, kw, sh, sw, pt, pl, pb, pr, ceil, dil;
  } cases[] = {{64, 13, 17, 3, 3, 2, 2, 0, 0, 0, 0, 1, 1},
               {3, 8, 8, 2, 2, 2, 2, 0, 0, 0, 0, 0, 1},
               {96, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1},
               {17, 5, 6, 2, 3, 3, 2, 1, 2, 1, 2, 1, 1},
               {130, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1, 0, 2}};
  for (int dt = 0; dt < 2; dt++)
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
      int32_t type = dt ? TC_DTYPE_I8 : TC_DTYPE_U8;
      int64_t C = cases[c].c, H = cases[c].h, W = cases[c].w;
      int64_t xd[] = {2, C, H, W}, ks[] = {cases[c].kh, cases[c].kw},
              st[] = {cases[c].sh, cases[c].sw},
              pads[] = {cases[c].pt, cases[c].pl, cases[c].pb, cases[c].pr},
              dl[] = {cases[c].dil, cases[c].dil};
      size_t n = (size_t)(2 * C * H * W);
      uint8_t *x = malloc(n), *xn = malloc(n);
      uint32_t r = 4242u + (uint32_t)c;
      for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (uint8_t)(r >> 24);
      }
      tc_layout_copy(xn, x, 1, 2, (size_t)C, (size_t)(H * W), true);
      tc_rt_tensor Y[3][1];
      uint8_t *y[3];
      for (int pass = 0; pass < 3; pass++) { /* reference, fast plain, channels-last */
        env e;
        env_init(&e, "MaxPool", 12);
        add_ints(&e, "kernel_shape", 2, ks);
        add_ints(&e, "strides", 2, st);
        add_ints(&e, "pads", 4, pads);
        add_ints(&e, "dilations", 2, dl);
        add_int(&e, "ceil_mode", cases[c].ceil);
        tc_rt_tensor X = tensor(type, 4, xd, pass == 2 ? xn : x);
        const tc_rt_tensor *in[] = {&X};
        e.k.nhwc_in = e.k.nhwc_out = pass == 2 ? 1 : 0;
        tc_fast_kernels_set(pass != 0);
        CHECK(run(&e, in, 1, Y[pass], 1) == TC_STATUS_OK);
        keep_output(&Y[pass][0], &e);
        CHECK(Y[pass][0].dtype == type && Y[pass][0].rank == 4);
        y[pass] = Y[pass][0].data;
      }
      tc_fast_kernels_set(true);
      size_t ny = tc_rt_numel(&Y[0][0]);
      const int64_t *od = Y[0][0].dims;
      uint8_t *yp = malloc(ny + 1);
      tc_layout_copy(yp, y[2], 1, (size_t)od[0], (size_t)od[1], (size_t)(od[2] * od[3]), false);
      CHECK(tc_rt_numel(&Y[1][0]) == ny && tc_rt_numel(&Y[2][0]) == ny);
      CHECK(memcmp(y[0], y[1], ny) == 0);
      CHECK(memcmp(y[0], yp, ny) == 0);
      free(yp);
      for (int pass = 0; pass < 3; pass++)
        free(y[pass]);
      free(x);
      free(xn);
    }
}

/* Convolutions whose kernel covers the unpadded input (squeeze-excite's 1x1
 * on pooled values; a 3x3 kernel on a 3x3 input) run as a GEMM or
 * matrix-vector product: the same values as the reference, with the bias,
 * Z and activation (FusedConv); a padded one is no such case. */
static void test_dense_conv_matches_reference(void) {
  static const struct {
    int64_t n, c, m, hw, pad;
    const char *act;
    bool z;
  } cases[] = {{2, 64, 48, 1, 0, "Relu", false},
               {1, 96, 200, 1, 0, "HardSigmoid", true},
               {1, 5, 7, 3, 0, NULL, false},
               {3, 5, 7, 3, 0, "Relu", true},
               {1, 8, 6, 3, 1, NULL, false}};
  for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
    int64_t N = cases[t].n, C = cases[t].c, M = cases[t].m, hw = cases[t].hw;
    int64_t oh = hw + 2 * cases[t].pad - hw + 1;
    int64_t xd[] = {N, C, hw, hw}, wd[] = {M, C, hw, hw}, bd[] = {M}, yd[] = {N, M, oh, oh},
            ks[] = {hw, hw}, pads[] = {cases[t].pad, cases[t].pad, cases[t].pad, cases[t].pad};
    size_t nx = (size_t)(N * C * hw * hw), nw = (size_t)(M * C * hw * hw),
           ny = (size_t)(N * M * oh * oh);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w),
          *b = malloc((size_t)M * sizeof *b), *z = malloc(ny * sizeof *z);
    uint32_t r = 777u + (uint32_t)t;
    float *all[] = {x, w, b, z};
    size_t lens[] = {nx, nw, (size_t)M, ny};
    for (int a = 0; a < 4; a++)
      for (size_t i = 0; i < lens[a]; i++) {
        r = r * 1664525u + 1013904223u;
        all[a][i] = (float)((int)(r >> 9) % 2001 - 1000) / 1000.0f;
      }
    tc_rt_tensor Y[2][1];
    for (int fast = 0; fast < 2; fast++) {
      env e;
      if (cases[t].act) {
        env_init(&e, "FusedConv", 1);
        e.node.domain = "com.microsoft";
        e.def = tc_kernel_find("FusedConv", "com.microsoft", 1);
        add_str(&e, "activation", cases[t].act);
      } else {
        env_init(&e, "Conv", 11);
      }
      add_ints(&e, "kernel_shape", 2, ks);
      add_ints(&e, "pads", 4, pads);
      static float hs[] = {0.2f, 0.5f};
      if (cases[t].act && !strcmp(cases[t].act, "HardSigmoid")) {
        tc_attr *a = &e.attrs[e.node.n_attrs++];
        a->name = "activation_params";
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
        a->n_floats = 2;
        a->floats = hs;
      }
      tc_rt_tensor X = tensor(TC_DTYPE_F32, 4, xd, x), W = tensor(TC_DTYPE_F32, 4, wd, w),
                   B = tensor(TC_DTYPE_F32, 1, bd, b), Z = tensor(TC_DTYPE_F32, 4, yd, z);
      const tc_rt_tensor *in[] = {&X, &W, &B, &Z};
      tc_fast_kernels_set(fast);
      CHECK(run(&e, in, cases[t].z ? 4 : 3, Y[fast], 1) == TC_STATUS_OK);
      keep_output(&Y[fast][0], &e);
    }
    tc_fast_kernels_set(true);
    CHECK(Y[0][0].bytes == ny * sizeof(float) && Y[1][0].bytes == ny * sizeof(float));
    const float *a = Y[0][0].data, *f = Y[1][0].data;
    double worst = 0;
    for (size_t i = 0; i < ny; i++)
      worst = fmax(worst, fabs((double)a[i] - (double)f[i]) / (1 + fabs((double)a[i])));
    if (worst > 2e-5) /* float sums of up to 96 products near 1 against double's */
      fprintf(stderr, "dense conv case %zu: relative error %.3g\n", t, worst);
    CHECK(worst <= 2e-5);
    free(Y[0][0].data);
    free(Y[1][0].data);
    free(x), free(w), free(b), free(z);
  }
}

static void test_avgpool_include_pad(void) {
  env e;
  env_init(&e, "AveragePool", 19);
  double x[] = {2, 4};
  int64_t xd[] = {1, 1, 2}, ks[] = {2}, pads[] = {1, 1};
  add_ints(&e, "kernel_shape", 1, ks);
  add_ints(&e, "pads", 2, pads);
  add_int(&e, "count_include_pad", 1);
  tc_rt_tensor X = tensor(TC_DTYPE_F64, 3, xd, x), Y;
  const tc_rt_tensor *in[] = {&X};
  CHECK(run(&e, in, 1, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.dims[2] == 3);
  const double want[] = {1, 3, 2};
  for (int i = 0; i < 3; i++)
    CHECK(((double *)Y.data)[i] == want[i]);
  tc_arena_free(e.arena);
}

static void test_quantize_roundtrip(void) {
  env e;
  env_init(&e, "QuantizeLinear", 13);
  float x[] = {0, 1, 2.5f, -3, 1000}, s[] = {0.5f};
  int8_t zp[] = {1};
  int64_t xd[] = {5}, one[] = {1};
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 1, xd, x), S = tensor(TC_DTYPE_F32, 0, one, s),
               Z = tensor(TC_DTYPE_I8, 0, one, zp), Y, D;
  const tc_rt_tensor *in[] = {&X, &S, &Z};
  CHECK(run(&e, in, 3, &Y, 1) == TC_STATUS_OK);
  const int8_t want[] = {1, 3, 6, -5, 127}; /* 2.5/0.5 = 5 exactly, +1 */
  for (int i = 0; i < 5; i++)
    CHECK(((int8_t *)Y.data)[i] == want[i]);
  env d;
  env_init(&d, "DequantizeLinear", 13);
  const tc_rt_tensor *din[] = {&Y, &S, &Z};
  CHECK(run(&d, din, 3, &D, 1) == TC_STATUS_OK);
  CHECK(D.dtype == TC_DTYPE_F32 && ((float *)D.data)[3] == -3.0f && ((float *)D.data)[4] == 63.0f);
  tc_arena_free(e.arena);
  tc_arena_free(d.arena);
}

/* Random QDQ convolution operands: x (8-bit), int8 w, per-channel w
 * scales, the int32 bias and its scales (xs times w's). */
static void qconv_operands(uint32_t *r, uint8_t *x, size_t nx, uint8_t *w, size_t nw, float xs,
                           float *ws, float *bs, int32_t *bq, int64_t M) {
  for (size_t i = 0; i < nx; i++)
    x[i] = (uint8_t)((*r = *r * 1103515245u + 12345u) >> 16);
  for (size_t i = 0; i < nw; i++)
    w[i] = (uint8_t)((int)((*r = *r * 1103515245u + 12345u) >> 16) % 255 - 127);
  for (int64_t m = 0; m < M; m++) {
    ws[m] = 0.001f + 0.0001f * (float)m;
    bs[m] = xs * ws[m];
    bq[m] = (int32_t)((*r = *r * 1103515245u + 12345u) >> 16) % 20001 - 10000;
  }
}

/* A com.microsoft FusedConv node of square kernel k, stride s, pads p, a
 * Relu or none: the node the QDQ convolution tests run. */
static void fused_conv_env(env *e, int64_t k, int64_t s, int64_t p, bool relu) {
  env_init(e, "FusedConv", 1);
  e->node.domain = "com.microsoft";
  int64_t v[8] = {p, p, p, p, s, s, k, k}, *a = tc_arena_memdup(e->arena, v, sizeof v);
  add_ints(e, "pads", 4, a); /* (the node keeps pointers: held in its arena) */
  add_ints(e, "strides", 2, a + 4);
  add_ints(e, "kernel_shape", 2, a + 6);
  if (relu)
    add_str(e, "activation", "Relu");
}

/* A bound QDQ convolution (tc_conv_qdq_run) through oneDNN's int8
 * primitive against the reference (dequantize, float convolution): uint8
 * and int8 activations with and without a zero point, per-channel weight
 * scales, an int32 bias, a summed Z and a Relu, strides, pads, 1x1 and 7x7
 * kernels. The oneDNN cache must have grown, so the int8 primitive ran. */
static void test_conv_qdq_dnnl_matches_reference(void) {
  struct {
    int64_t N, C, H, W, M, k, s, p;
    int32_t xdt;
    int xzp;
    bool bias, z, relu;
  } cases[] = {
      {1, 16, 9, 9, 32, 3, 1, 1, TC_DTYPE_U8, 0, true, false, false},
      {2, 8, 11, 10, 16, 3, 2, 1, TC_DTYPE_U8, 100, true, true, true},
      {1, 32, 7, 7, 64, 1, 1, 0, TC_DTYPE_U8, 37, false, true, false},
      {1, 3, 20, 20, 16, 7, 2, 3, TC_DTYPE_U8, 128, true, false, true},
      {1, 16, 8, 8, 16, 3, 1, 1, TC_DTYPE_I8, -3, true, false, false},
  };
  uint32_t r = 12345;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int64_t N = cases[c].N, C = cases[c].C, M = cases[c].M, k = cases[c].k, s = cases[c].s,
            p = cases[c].p;
    int64_t OH = (cases[c].H + 2 * p - k) / s + 1, OW = (cases[c].W + 2 * p - k) / s + 1;
    size_t nx = (size_t)(N * C * cases[c].H * cases[c].W), nw = (size_t)(M * C * k * k),
           ny = (size_t)(N * M * OH * OW);
    uint8_t *x = malloc(nx), *w = malloc(nw), xz[1];
    float xs = 0.021f, *ws = malloc((size_t)M * sizeof(float)), *bs = malloc((size_t)M * 4),
          *z = malloc(ny * sizeof(float));
    int32_t *bq = malloc((size_t)M * sizeof(int32_t));
    qconv_operands(&r, x, nx, w, nw, xs, ws, bs, bq, M);
    for (size_t i = 0; i < ny; i++)
      z[i] = (float)((int)((r = r * 1103515245u + 12345u) >> 16) % 2001 - 1000) / 500.0f;
    if (cases[c].xdt == TC_DTYPE_U8)
      xz[0] = (uint8_t)cases[c].xzp;
    else
      xz[0] = (uint8_t)(int8_t)cases[c].xzp;
    int64_t xd[4] = {N, C, cases[c].H, cases[c].W}, wd[4] = {M, C, k, k}, md[1] = {M},
            yd[4] = {N, M, OH, OW}, sd[1] = {1};
    tc_rt_tensor X = tensor(cases[c].xdt, 4, xd, x), XS = tensor(TC_DTYPE_F32, 0, sd, &xs),
                 XZ = tensor(cases[c].xdt, 0, sd, xz), W = tensor(TC_DTYPE_I8, 4, wd, w),
                 WS = tensor(TC_DTYPE_F32, 1, md, ws), BQ = tensor(TC_DTYPE_I32, 1, md, bq),
                 BS = tensor(TC_DTYPE_F32, 1, md, bs), Z = tensor(TC_DTYPE_F32, 4, yd, z);
    tc_conv_qdq q = {.xq = &X,
                     .xs = &XS,
                     .xz = cases[c].xzp ? &XZ : NULL,
                     .wq = &W,
                     .ws = &WS,
                     .bq = cases[c].bias ? &BQ : NULL,
                     .bs = cases[c].bias ? &BS : NULL,
                     .z = cases[c].z ? &Z : NULL};
    float *y[2] = {NULL, NULL};
    size_t n0, n1, w0, w1; /* w: weights are cached only for initializers */
    tc_dnnl_conv_cache_stats(&n0, &w0);
    for (int fast = 0; fast < 2; fast++) {
      env e;
      fused_conv_env(&e, k, s, p, cases[c].relu);
      tc_rt_tensor Y;
      tc_fast_kernels_set(fast);
      CHECK(tc_conv_qdq_run(&e.k, &q, &Y) == TC_STATUS_OK);
      CHECK(Y.rank == 4 && Y.dims[1] == M && Y.dims[2] == OH && Y.dims[3] == OW);
      y[fast] = malloc(ny * sizeof(float));
      memcpy(y[fast], Y.data, ny * sizeof(float));
      tc_arena_free(e.arena);
    }
    tc_fast_kernels_set(true);
    tc_dnnl_conv_cache_stats(&n1, &w1);
    CHECK(n1 > n0); /* oneDNN made an int8 primitive for it */
    double maxd = 0, maxv = 0;
    for (size_t i = 0; i < ny; i++) {
      double d = fabs((double)y[0][i] - y[1][i]);
      maxd = d > maxd ? d : maxd;
      maxv = fabs(y[0][i]) > maxv ? fabs(y[0][i]) : maxv;
    }
    CHECK(maxv > 0 && maxd <= 1e-5 * maxv + 1e-6);
    free(x), free(w), free(ws), free(bs), free(z), free(bq), free(y[0]), free(y[1]);
  }
}

/* A bound QDQ convolution writing the QuantizeLinear after it (ys, yz:
 * runtime/qdq.c): oneDNN's int8 primitive with uint8 / int8 y against the
 * reference (float32 y, then QuantizeLinear's arithmetic), with and
 * without a Relu and y's zero point. The primitive rounds scale * sum / ys
 * where the reference rounds (scale * sum + b) / ys, so a value at a
 * rounding boundary may land one step away: every element within one
 * step, fewer than 1% off, and the int8 primitive made. */
static void test_conv_qdq_quantized_output(void) {
  struct {
    int64_t C, H, M, k, s, p;
    int32_t ydt;
    int yzp;
    bool relu;
  } cases[] = {
      {16, 9, 32, 3, 1, 1, TC_DTYPE_U8, 128, false},
      {32, 7, 64, 1, 1, 0, TC_DTYPE_U8, 0, true},
      {8, 11, 24, 3, 2, 1, TC_DTYPE_I8, -5, false},
      {3, 20, 16, 7, 2, 3, TC_DTYPE_U8, 0, false},
  };
  uint32_t r = 777;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int64_t C = cases[c].C, H = cases[c].H, M = cases[c].M, k = cases[c].k, s = cases[c].s,
            p = cases[c].p, OH = (H + 2 * p - k) / s + 1;
    size_t nx = (size_t)(C * H * H), nw = (size_t)(M * C * k * k), ny = (size_t)(M * OH * OH);
    uint8_t *x = malloc(nx), *w = malloc(nw), xz[1] = {120};
    float xs = 0.02f, *ws = malloc((size_t)M * sizeof(float)), *bs = malloc((size_t)M * 4);
    int32_t *bq = malloc((size_t)M * sizeof(int32_t));
    qconv_operands(&r, x, nx, w, nw, xs, ws, bs, bq, M);
    int64_t xd[4] = {1, C, H, H}, wd[4] = {M, C, k, k}, md[1] = {M}, sd[1] = {1};
    uint8_t yzb =
        cases[c].ydt == TC_DTYPE_U8 ? (uint8_t)cases[c].yzp : (uint8_t)(int8_t)cases[c].yzp;
    float ys = 0;
    tc_rt_tensor X = tensor(TC_DTYPE_U8, 4, xd, x), XS = tensor(TC_DTYPE_F32, 0, sd, &xs),
                 XZ = tensor(TC_DTYPE_U8, 0, sd, xz), W = tensor(TC_DTYPE_I8, 4, wd, w),
                 WS = tensor(TC_DTYPE_F32, 1, md, ws), BQ = tensor(TC_DTYPE_I32, 1, md, bq),
                 BS = tensor(TC_DTYPE_F32, 1, md, bs), YS = tensor(TC_DTYPE_F32, 0, sd, &ys),
                 YZ = tensor(cases[c].ydt, 0, sd, &yzb);
    tc_conv_qdq q = {.xq = &X, .xs = &XS, .xz = &XZ, .wq = &W, .ws = &WS, .bq = &BQ, .bs = &BS};
    unsigned char *y[4] = {NULL, NULL, NULL, NULL}, *xn = malloc(nx);
    tc_layout_copy(xn, x, 1, 1, (size_t)C, (size_t)(H * H), true);
    tc_rt_tensor XN = tensor(TC_DTYPE_U8, 4, xd, xn);
    size_t n0 = 0, n1 = 0, w0, w1;
    /* 0: float y for the scale; 1: reference; 2: oneDNN; 3, 4: both with
     * channels-last x and y (runtime/qdq.c's layout) */
    for (int pass = 0; pass < 5; pass++) {
      env e;
      fused_conv_env(&e, k, s, p, cases[c].relu);
      if (pass) {
        q.ys = &YS;
        q.yz = cases[c].yzp ? &YZ : NULL;
      }
      q.xq = pass >= 3 ? &XN : &X;
      e.k.nhwc_in = e.k.nhwc_out = pass >= 3 ? 1 : 0;
      tc_fast_kernels_set(pass != 1 && pass != 4);
      if (pass == 2)
        tc_dnnl_conv_cache_stats(&n0, &w0);
      tc_rt_tensor Y;
      CHECK(tc_conv_qdq_run(&e.k, &q, &Y) == TC_STATUS_OK);
      if (pass == 0) { /* y spans about 200 steps */
        float mx = 0;
        for (size_t i = 0; i < ny; i++)
          mx = fabsf(((float *)Y.data)[i]) > mx ? fabsf(((float *)Y.data)[i]) : mx;
        ys = mx / 100.0f;
      } else {
        CHECK(Y.dtype == (q.yz ? cases[c].ydt : TC_DTYPE_U8) && tc_rt_numel(&Y) == ny);
        y[pass - 1] = malloc(ny);
        if (pass >= 3) /* back to the plain order */
          tc_layout_copy(y[pass - 1], Y.data, 1, 1, (size_t)M, (size_t)(OH * OH), false);
        else
          memcpy(y[pass - 1], Y.data, ny);
      }
      tc_arena_free(e.arena);
    }
    tc_fast_kernels_set(true);
    tc_dnnl_conv_cache_stats(&n1, &w1);
    CHECK(n1 > n0); /* oneDNN made an int8 primitive with an 8-bit y */
    bool sgn = q.yz && cases[c].ydt == TC_DTYPE_I8;
    size_t off = 0, lo = 0;
    for (size_t i = 0; i < ny; i++) {
      int a = sgn ? (int8_t)y[0][i] : y[0][i], b = sgn ? (int8_t)y[1][i] : y[1][i];
      CHECK(abs(a - b) <= 1);
      off += a != b;
      lo += a == (sgn ? -128 : 0);
    }
    CHECK(off * 100 < ny && lo < ny); /* not everything saturated */
    /* channels-last: oneDNN's own layouts, and the reference around copies */
    CHECK(!memcmp(y[2], y[1], ny) && !memcmp(y[3], y[0], ny));
    free(x), free(xn), free(w), free(ws), free(bs), free(bq);
    for (int i = 0; i < 4; i++)
      free(y[i]);
  }
}

/* tc_qadd_run against DequantizeLinear, Add, Relu and QuantizeLinear one
 * after another (scalar float32 arithmetic): bit for bit, for uint8 and
 * int8 operands, odd lengths (the vector loop's tails), and float32 y. */
static void test_qadd_matches_ops(void) {
  uint32_t r = 99;
  size_t lens[] = {1, 15, 16, 17, 1000, 4099};
  for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
    for (int mode = 0; mode < 4; mode++) {
      size_t n = lens[li];
      uint8_t *a = malloc(n), *b = malloc(n), *y = malloc(n * 4);
      for (size_t i = 0; i < n; i++) {
        a[i] = (uint8_t)((r = r * 1103515245u + 12345u) >> 16);
        b[i] = (uint8_t)((r = r * 1103515245u + 12345u) >> 16);
      }
      tc_qadd q = {.a = a,
                   .b = b,
                   .y = y,
                   .adt = mode & 1 ? TC_DTYPE_I8 : TC_DTYPE_U8,
                   .bdt = TC_DTYPE_U8,
                   .ydt = mode == 3   ? TC_DTYPE_F32
                          : mode == 2 ? TC_DTYPE_I8
                                      : TC_DTYPE_U8,
                   .as = 0.0173f,
                   .bs = 0.0291f,
                   .ys = 0.0337f,
                   .az = mode & 1 ? -3 : 131,
                   .bz = 120,
                   .yz = mode == 2 ? 7 : 60,
                   .relu = mode != 1,
                   .n = n};
      tc_qadd_run(&q);
      for (size_t i = 0; i < n; i++) {
        float fa = ((float)(mode & 1 ? (int8_t)a[i] : a[i]) - (float)q.az) * q.as;
        float v = fa + ((float)b[i] - (float)q.bz) * q.bs;
        if (q.relu)
          v = v > 0 ? v : 0;
        if (q.ydt == TC_DTYPE_F32) {
          CHECK(((float *)y)[i] == v);
          continue;
        }
        float t = nearbyintf(v / q.ys) + (float)q.yz;
        float lo = q.ydt == TC_DTYPE_I8 ? -128 : 0, hi = q.ydt == TC_DTYPE_I8 ? 127 : 255;
        int want = (int)(t < lo ? lo : t > hi ? hi : t);
        CHECK((q.ydt == TC_DTYPE_I8 ? (int)(int8_t)y[i] : (int)y[i]) == want);
      }
      free(a), free(b), free(y);
    }
}

static void test_resize_nearest(void) {
  env e;
  env_init(&e, "Resize", 13);
  float x[] = {1, 2, 3, 4}, sc[] = {1, 1, 2, 2};
  int64_t xd[] = {1, 1, 2, 2}, sd[] = {4};
  add_str(&e, "mode", "nearest");
  add_str(&e, "coordinate_transformation_mode", "asymmetric");
  add_str(&e, "nearest_mode", "floor");
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 4, xd, x), S = tensor(TC_DTYPE_F32, 1, sd, sc), Y;
  const tc_rt_tensor *in[] = {&X, NULL, &S};
  CHECK(run(&e, in, 3, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.dims[2] == 4 && Y.dims[3] == 4);
  const float want[] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
  for (int i = 0; i < 16; i++)
    CHECK(((float *)Y.data)[i] == want[i]);
  tc_arena_free(e.arena);
}

int main(void) {
  RUN(test_conv_padding);
  RUN(test_conv_f16_same);
  RUN(test_conv_zero_batch);
  RUN(test_conv_refuses_unknown_attr);
  RUN(test_convtranspose);
  RUN(test_maxpool_indices_ceil);
  RUN(test_maxpool2d_fast_matches_reference);
  RUN(test_maxpool8_matches_reference);
  RUN(test_dense_conv_matches_reference);
  RUN(test_avgpool_include_pad);
  RUN(test_quantize_roundtrip);
  RUN(test_conv_qdq_dnnl_matches_reference);
  RUN(test_conv_qdq_quantized_output);
  RUN(test_qadd_matches_ops);
  RUN(test_resize_nearest);
  return SUMMARY("kernels_conv");
}
