/* Recurrent (runtime/kernels/sequence.c) and audio (runtime/kernels/audio.c)
 * kernels called directly on small hand-checked cases. */
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
  tc_value outv[3];
  tc_value *outs[3];
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
  for (int i = 0; i < 3; i++)
    e->outs[i] = &e->outv[i];
  e->node.outputs = e->outs;
  e->node.n_outputs = 3;
  e->def = tc_kernel_find(op, "", opset);
  e->k.node = &e->node;
  e->k.opset = opset;
  e->k.diag = &e->diag;
  e->k.arena = e->arena;
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

static void add_strs(env *e, const char *name, size_t n, ProtobufCBinaryData *v) {
  tc_attr *a = &e->attrs[e->node.n_attrs++];
  a->name = name;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS;
  a->n_strings = n;
  a->strings = v;
}

static void add_floats(env *e, const char *name, size_t n, float *v) {
  tc_attr *a = &e->attrs[e->node.n_attrs++];
  a->name = name;
  a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  a->n_floats = n;
  a->floats = v;
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

static ProtobufCBinaryData bin(const char *s) {
  ProtobufCBinaryData b = {strlen(s), (uint8_t *)s};
  return b;
}

/* Bidirectional RNN with an identity Affine cell (h = x + h): running sums,
 * the second row cut to 2 steps by sequence_lens. */
static void test_rnn_seq_lens_bidirectional(void) {
  env e;
  env_init(&e, "RNN", 14);
  ProtobufCBinaryData acts[] = {bin("Affine"), bin("affine")};
  float alpha[] = {1, 1}, beta[] = {0, 0};
  add_int(&e, "hidden_size", 1);
  add_str(&e, "direction", "bidirectional");
  add_strs(&e, "activations", 2, acts);
  add_floats(&e, "activation_alpha", 2, alpha);
  add_floats(&e, "activation_beta", 2, beta);
  float x[] = {1, 10, 2, 20, 3, 30}; /* [seq 3, batch 2, 1] */
  float w[] = {1, 1}, r[] = {1, 1};
  int32_t lens[] = {3, 2};
  int64_t xd[] = {3, 2, 1}, wd[] = {2, 1, 1}, ld[] = {2};
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), W = tensor(TC_DTYPE_F32, 3, wd, w),
               R = tensor(TC_DTYPE_F32, 3, wd, r), L = tensor(TC_DTYPE_I32, 1, ld, lens), out[2];
  const tc_rt_tensor *in[] = {&X, &W, &R, NULL, &L};
  CHECK(run(&e, in, 5, out, 2) == TC_STATUS_OK);
  CHECK(out[0].rank == 4 && out[0].dims[0] == 3 && out[0].dims[1] == 2 && out[0].dims[2] == 2);
  /* Y[t][dir][b] */
  const float want[] = {1, 10, 6, 30, 3, 30, 5, 20, 6, 0, 3, 0};
  for (int i = 0; i < 12; i++)
    CHECK(((float *)out[0].data)[i] == want[i]);
  const float want_h[] = {6, 30, 6, 30};
  for (int i = 0; i < 4; i++)
    CHECK(((float *)out[1].data)[i] == want_h[i]);
  tc_arena_free(e.arena);
}

/* layout 1 puts batch first in X, Y and Y_h. */
static void test_rnn_layout1(void) {
  env e;
  env_init(&e, "RNN", 14);
  ProtobufCBinaryData acts[] = {bin("Relu")};
  add_int(&e, "layout", 1);
  add_strs(&e, "activations", 1, acts);
  float x[] = {1, 2, 3, 10, 20, 30}; /* [batch 2, seq 3, 1] */
  float w[] = {1}, r[] = {1};
  int64_t xd[] = {2, 3, 1}, wd[] = {1, 1, 1};
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), W = tensor(TC_DTYPE_F32, 3, wd, w),
               R = tensor(TC_DTYPE_F32, 3, wd, r), out[2];
  const tc_rt_tensor *in[] = {&X, &W, &R};
  CHECK(run(&e, in, 3, out, 2) == TC_STATUS_OK);
  CHECK(out[0].rank == 4 && out[0].dims[0] == 2 && out[0].dims[1] == 3 && out[0].dims[2] == 1);
  const float want[] = {1, 3, 6, 10, 30, 60};
  for (int i = 0; i < 6; i++)
    CHECK(((float *)out[0].data)[i] == want[i]);
  CHECK(out[1].dims[0] == 2 && ((float *)out[1].data)[0] == 6 && ((float *)out[1].data)[1] == 60);
  tc_arena_free(e.arena);
}

static void test_lstm_refuses_unknown_activation(void) {
  env e;
  env_init(&e, "LSTM", 14);
  ProtobufCBinaryData acts[] = {bin("Sigmoid"), bin("Tanh"), bin("Cosh")};
  add_strs(&e, "activations", 3, acts);
  CHECK(e.def && e.def->check(&e.node, 14, &e.diag) == TC_STATUS_UNSUPPORTED);
  tc_arena_free(e.arena);
}

/* LSTM, one step, hidden 1, everything zero but the cell's W: c = tanh(x)/2,
 * h = tanh(c)/2; a second output slot left out gets no memory. */
static void test_lstm_one_step(void) {
  env e;
  env_init(&e, "LSTM", 14);
  e.outs[1] = NULL;
  float x[] = {0.5f}, w[] = {0, 0, 0, 1}, r[] = {0, 0, 0, 0};
  int64_t xd[] = {1, 1, 1}, wd[] = {1, 4, 1};
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), W = tensor(TC_DTYPE_F32, 3, wd, w),
               R = tensor(TC_DTYPE_F32, 3, wd, r), out[3];
  memset(out, 0, sizeof out);
  const tc_rt_tensor *in[] = {&X, &W, &R};
  CHECK(run(&e, in, 3, out, 3) == TC_STATUS_OK);
  double c = 0.5 * tanh(0.5), h = 0.5 * tanh(c);
  CHECK(fabs(((float *)out[0].data)[0] - h) < 1e-6);
  CHECK(out[1].data == NULL);
  CHECK(fabs(((float *)out[2].data)[0] - c) < 1e-6);
  tc_arena_free(e.arena);
}

/* The float32 path of RNN, GRU and LSTM (GEMMs over steps and rows)
 * against the double reference walker (TACORT_KERNELS=reference) on random
 * weights: both directions, sequence_lens shorter than the sequence (rows
 * left as they are), layout 1, initial states, biases or none, LSTM
 * peepholes, input_forget and clip, GRU with and without
 * linear_before_reset, RNN with Relu and odd sizes. */
static void test_recurrent_fast_matches_reference(void) {
  static const struct {
    const char *op;
    int64_t S, batch, I, H, dirs, layout;
    bool bias, sl, init, peep, forget, clip, lbr;
    const char *act;
  } cases[] = {{"LSTM", 5, 3, 7, 9, 2, 0, true, true, true, true, false, false, false, NULL},
               {"LSTM", 1, 2, 128, 128, 1, 0, true, false, true, false, false, false, false, NULL},
               {"LSTM", 4, 2, 6, 5, 1, 1, false, true, false, false, true, true, false, NULL},
               {"GRU", 6, 3, 5, 8, 2, 0, true, true, true, false, false, false, false, NULL},
               {"GRU", 3, 2, 4, 7, 1, 1, true, false, true, false, false, true, true, NULL},
               {"GRU", 4, 1, 9, 3, 1, 0, false, false, false, false, false, false, true, NULL},
               {"RNN", 7, 2, 3, 6, 2, 0, true, true, true, false, false, false, false, NULL},
               {"RNN", 3, 4, 5, 17, 1, 1, true, false, false, false, false, false, false, "Relu"}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int64_t S = cases[c].S, Bn = cases[c].batch, I = cases[c].I, H = cases[c].H, D = cases[c].dirs;
    int64_t G = !strcmp(cases[c].op, "LSTM") ? 4 : !strcmp(cases[c].op, "GRU") ? 3 : 1;
    size_t nx = (size_t)(S * Bn * I), nw = (size_t)(D * G * H * I), nr = (size_t)(D * G * H * H),
           nb = (size_t)(D * 2 * G * H), ns = (size_t)(D * Bn * H), np = (size_t)(D * 3 * H);
    float *buf = malloc((nx + nw + nr + nb + 2 * ns + np) * sizeof *buf);
    uint32_t r = 99u + (uint32_t)c;
    for (size_t i = 0; i < nx + nw + nr + nb + 2 * ns + np; i++) {
      r = r * 1664525u + 1013904223u;
      buf[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 1.2f;
    }
    float *x = buf, *w = x + nx, *rw = w + nw, *b = rw + nr, *h0 = b + nb, *c0 = h0 + ns,
          *p = c0 + ns;
    int32_t sl[4];
    for (int64_t i = 0; i < Bn; i++)
      sl[i] = (int32_t)(cases[c].sl ? (S - i % S) : S);
    int64_t xd[3] = {S, Bn, I}, wd[3] = {D, G * H, I}, rd[3] = {D, G * H, H},
            bd[2] = {D, 2 * G * H}, sd[1] = {Bn}, hd[3] = {D, Bn, H}, pd[2] = {D, 3 * H};
    if (cases[c].layout) {
      xd[0] = Bn, xd[1] = S;
      hd[0] = Bn, hd[1] = D;
    }
    tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), W = tensor(TC_DTYPE_F32, 3, wd, w),
                 R = tensor(TC_DTYPE_F32, 3, rd, rw), B = tensor(TC_DTYPE_F32, 2, bd, b),
                 SL = tensor(TC_DTYPE_I32, 1, sd, sl), H0 = tensor(TC_DTYPE_F32, 3, hd, h0),
                 C0 = tensor(TC_DTYPE_F32, 3, hd, c0), P = tensor(TC_DTYPE_F32, 2, pd, p);
    const tc_rt_tensor *in[8] = {&X,
                                 &W,
                                 &R,
                                 cases[c].bias ? &B : NULL,
                                 cases[c].sl ? &SL : NULL,
                                 cases[c].init ? &H0 : NULL,
                                 cases[c].init ? &C0 : NULL,
                                 cases[c].peep ? &P : NULL};
    size_t n_in = G == 4 ? 8 : 6, n_out = G == 4 ? 3 : 2;
    env e[2];
    tc_rt_tensor out[2][3];
    for (int fast = 0; fast < 2; fast++) {
      env_init(&e[fast], cases[c].op, 14);
      add_int(&e[fast], "hidden_size", H);
      if (D == 2)
        add_str(&e[fast], "direction", "bidirectional");
      add_int(&e[fast], "layout", cases[c].layout);
      if (cases[c].forget)
        add_int(&e[fast], "input_forget", 1);
      if (cases[c].lbr)
        add_int(&e[fast], "linear_before_reset", 1);
      if (cases[c].clip) {
        static float clip[] = {0.4f};
        tc_attr *a = &e[fast].attrs[e[fast].node.n_attrs++];
        a->name = "clip";
        a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        a->f = clip[0];
      }
      static ProtobufCBinaryData relu[] = {{4, (uint8_t *)"Relu"}, {4, (uint8_t *)"Relu"}};
      if (cases[c].act)
        add_strs(&e[fast], "activations", (size_t)D, relu);
      tc_fast_kernels_set(fast);
      memset(out[fast], 0, sizeof out[fast]);
      CHECK(run(&e[fast], in, n_in, out[fast], n_out) == TC_STATUS_OK);
    }
    tc_fast_kernels_set(true);
    for (size_t o = 0; o < n_out; o++) {
      CHECK(out[0][o].bytes == out[1][o].bytes && out[0][o].rank == out[1][o].rank);
      const float *a = out[0][o].data, *f = out[1][o].data;
      double worst = 0;
      for (size_t i = 0; i < out[0][o].bytes / sizeof(float); i++) {
        double d = fabs((double)a[i] - f[i]) / (1.0 + fabs((double)a[i]));
        worst = d > worst ? d : worst;
      }
      if (!(worst < 1e-5)) {
        fprintf(stderr, "%s case %zu output %zu: relative difference %.3g\n", cases[c].op, c, o,
                worst);
        CHECK(false);
      }
    }
    tc_arena_free(e[0].arena);
    tc_arena_free(e[1].arena);
    free(buf);
  }
}

/* DFT of length L (mixed radix: 4, 2, 3, 5 and any other prime) against
 * the textbook sum; then the one-sided inverse gives the signal back. */
static void check_dft_len(int64_t L) {
  env e;
  env_init(&e, "DFT", 20);
  double x[512];
  for (int i = 0; i < L; i++)
    x[i] = sin(1.0 + i * i * 0.37) + 0.1 * i;
  int64_t xd[] = {1, L, 1}, sd[] = {1};
  int64_t axis = 1;
  tc_rt_tensor X = tensor(TC_DTYPE_F64, 3, xd, x), A = tensor(TC_DTYPE_I64, 0, sd, &axis), Y;
  const tc_rt_tensor *in[] = {&X, NULL, &A};
  CHECK(run(&e, in, 3, &Y, 1) == TC_STATUS_OK);
  CHECK(Y.dims[1] == L && Y.dims[2] == 2);
  const double *y = Y.data;
  for (int k = 0; k < L; k++) {
    double re = 0, im = 0;
    for (int n = 0; n < L; n++) {
      re += x[n] * cos(-2 * M_PI * k * n / (double)L);
      im += x[n] * sin(-2 * M_PI * k * n / (double)L);
    }
    if (!(fabs(y[2 * k] - re) < 1e-9 && fabs(y[2 * k + 1] - im) < 1e-9)) {
      fprintf(stderr, "DFT length %lld bin %d: %.12g %.12g, textbook %.12g %.12g\n", (long long)L,
              k, y[2 * k], y[2 * k + 1], re, im);
      CHECK(false);
      break;
    }
  }
  tc_arena_free(e.arena);

  env_init(&e, "DFT", 20);
  add_int(&e, "onesided", 1);
  tc_rt_tensor F;
  CHECK(run(&e, in, 3, &F, 1) == TC_STATUS_OK);
  CHECK(F.dims[1] == L / 2 + 1);
  add_int(&e, "inverse", 1);
  int64_t len = L;
  tc_rt_tensor N = tensor(TC_DTYPE_I64, 0, sd, &len), B;
  const tc_rt_tensor *in2[] = {&F, &N, &A};
  CHECK(run(&e, in2, 3, &B, 1) == TC_STATUS_OK);
  CHECK(B.dims[1] == L && B.dims[2] == 1);
  for (int n = 0; n < L; n++)
    CHECK(fabs(((double *)B.data)[n] - x[n]) < 1e-9);
  tc_arena_free(e.arena);
}

static void test_dft_lengths(void) {
  int64_t lens[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,   10,  11,  12,  13,  15,  16,
                    20, 25, 27, 32, 49, 60, 64, 77, 100, 121, 128, 200, 256, 400, 401};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
    check_dft_len(lens[i]);
}

/* STFT frames against the textbook sum: a real signal with an even frame
 * (the half-length path), an odd frame, and a complex signal two-sided;
 * then a float32 run split over two threads gives the bits of one thread. */
static void check_stft(int64_t fl, int64_t c, bool onesided) {
  enum { LEN = 1000 };
  static double x[2 * LEN], w[LEN];
  for (int i = 0; i < LEN * c; i++)
    x[i] = sin(0.05 * i + 0.3 * (i % 7)) + 0.01 * (i % 13);
  for (int i = 0; i < fl; i++)
    w[i] = 0.5 - 0.5 * cos(2 * M_PI * i / (double)fl);
  int64_t step = 160, xd[] = {1, LEN, c}, wd[] = {fl}, sd[] = {1};
  env e;
  env_init(&e, "STFT", 17);
  add_int(&e, "onesided", onesided);
  tc_rt_tensor X = tensor(TC_DTYPE_F64, 3, xd, x), S = tensor(TC_DTYPE_I64, 0, sd, &step),
               W = tensor(TC_DTYPE_F64, 1, wd, w), Y;
  const tc_rt_tensor *in[] = {&X, &S, &W, NULL};
  CHECK(run(&e, in, 4, &Y, 1) == TC_STATUS_OK);
  int64_t frames = (LEN - fl) / step + 1, bins = onesided ? fl / 2 + 1 : fl;
  CHECK(Y.dims[1] == frames && Y.dims[2] == bins && Y.dims[3] == 2);
  const double *y = Y.data;
  bool ok = true;
  for (int64_t f = 0; f < frames && ok; f++)
    for (int64_t k = 0; k < bins && ok; k++) {
      double re = 0, im = 0;
      for (int64_t n = 0; n < fl; n++) {
        double a = -2 * M_PI * (double)(k * n % fl) / (double)fl;
        double xr = x[(f * step + n) * c] * w[n],
               xi = c == 2 ? x[(f * step + n) * c + 1] * w[n] : 0;
        re += xr * cos(a) - xi * sin(a);
        im += xr * sin(a) + xi * cos(a);
      }
      const double *o = y + (f * bins + k) * 2;
      ok = fabs(o[0] - re) < 1e-9 && fabs(o[1] - im) < 1e-9;
      if (!ok)
        fprintf(stderr, "STFT frame %lld bin %lld: %.12g %.12g, textbook %.12g %.12g\n",
                (long long)f, (long long)k, o[0], o[1], re, im);
    }
  CHECK(ok);
  tc_arena_free(e.arena);
}

static void test_stft_paths(void) {
  check_stft(400, 1, true);  /* half-length transform of 200 */
  check_stft(256, 1, true);  /* of 128 */
  check_stft(399, 1, true);  /* odd: the full transform */
  check_stft(100, 2, false); /* complex, two-sided */
  check_stft(2, 1, true);
  /* threads: 298 frames of a float32 signal */
  enum { LEN = 48000 };
  static float x[LEN], w[400];
  for (int i = 0; i < LEN; i++)
    x[i] = (float)sin(0.01 * i * (1 + i % 3));
  for (int i = 0; i < 400; i++)
    w[i] = (float)(0.5 - 0.5 * cos(2 * M_PI * i / 400.0));
  int64_t step = 160, xd[] = {1, LEN, 1}, wd[] = {400}, sd[] = {1};
  tc_rt_tensor X = tensor(TC_DTYPE_F32, 3, xd, x), S = tensor(TC_DTYPE_I64, 0, sd, &step),
               W = tensor(TC_DTYPE_F32, 1, wd, w), Y[2];
  const tc_rt_tensor *in[] = {&X, &S, &W, NULL};
  env e[2];
  for (int t = 0; t < 2; t++) {
    tc_set_num_threads(t + 1);
    env_init(&e[t], "STFT", 17);
    CHECK(run(&e[t], in, 4, &Y[t], 1) == TC_STATUS_OK);
  }
  CHECK(tc_parallel_pieces(298, tc_parallel_grain(400 * 16)) > 1);
  CHECK(Y[0].bytes == Y[1].bytes && Y[0].bytes == 298 * 201 * 2 * sizeof(float) &&
        memcmp(Y[0].data, Y[1].data, Y[0].bytes) == 0);
  for (int t = 0; t < 2; t++)
    tc_arena_free(e[t].arena);
}

static void test_cumprod_int_exclusive_reverse(void) {
  env e;
  env_init(&e, "CumProd", 26);
  add_int(&e, "exclusive", 1);
  add_int(&e, "reverse", 1);
  int32_t x[] = {1, 2, 3};
  int64_t xd[] = {3}, axis = 0;
  tc_rt_tensor X = tensor(TC_DTYPE_I32, 1, xd, x), A = tensor(TC_DTYPE_I64, 0, xd, &axis), Y;
  const tc_rt_tensor *in[] = {&X, &A};
  CHECK(run(&e, in, 2, &Y, 1) == TC_STATUS_OK);
  const int32_t *y = Y.data;
  CHECK(Y.dtype == TC_DTYPE_I32 && y[0] == 6 && y[1] == 3 && y[2] == 1);
  tc_arena_free(e.arena);
}

static void test_hann_symmetric_f64(void) {
  env e;
  env_init(&e, "HannWindow", 17);
  add_int(&e, "periodic", 0);
  add_int(&e, "output_datatype", TC_DTYPE_F64);
  int64_t size = 4, sd[] = {1};
  tc_rt_tensor S = tensor(TC_DTYPE_I64, 0, sd, &size), Y;
  const tc_rt_tensor *in[] = {&S};
  CHECK(run(&e, in, 1, &Y, 1) == TC_STATUS_OK);
  const double *y = Y.data;
  CHECK(Y.dtype == TC_DTYPE_F64 && Y.dims[0] == 4);
  CHECK(fabs(y[0]) < 1e-15 && fabs(y[1] - 0.75) < 1e-15 && fabs(y[2] - 0.75) < 1e-15 &&
        fabs(y[3]) < 1e-15);
  tc_arena_free(e.arena);
}

int main(void) {
  RUN(test_rnn_seq_lens_bidirectional);
  RUN(test_rnn_layout1);
  RUN(test_lstm_refuses_unknown_activation);
  RUN(test_lstm_one_step);
  RUN(test_recurrent_fast_matches_reference);
  RUN(test_dft_lengths);
  RUN(test_stft_paths);
  RUN(test_cumprod_int_exclusive_reverse);
  RUN(test_hann_symmetric_f64);
  return SUMMARY("kernels_audio");
}
