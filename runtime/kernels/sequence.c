/* sequence kernels: the recurrent ops RNN, GRU and LSTM.
 *
 * float32 tensors with Sigmoid, Tanh or Relu activations take the float32
 * path (cell_fast: GEMMs over steps and rows, vector activations); the rest,
 * and TACORT_KERNELS=reference, the reference walker.
 *
 * One walker serves the three: inputs are read once into double arrays in
 * layout 0 ([seq, batch, ...]), each direction and batch row runs its own
 * time loop over at most sequence_lens[b] steps (reversed for the backward
 * direction), and the hidden (and cell) states are written back converted to
 * X's dtype in the layout asked for. Steps past a row's length leave Y at
 * zero, as ONNX Runtime does; Y_h / Y_c hold the state after the row's last
 * valid step.
 *
 * Activations follow the ONNX list (Relu, Tanh, Sigmoid, Affine, LeakyRelu,
 * ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus),
 * case-insensitive. activation_alpha / activation_beta are consumed in order
 * by the activations that take the parameter (ONNX Runtime's reading); the
 * rest take their defaults. clip bounds every gate's pre-activation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kernel.h"

/* ---- shared helpers ---- */

static const char *node_name(const tc_node *n) { return n->name ? n->name : ""; }

static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

#define NOMEM(k) tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory")

/* ---- activations ---- */

typedef enum act_kind {
  ACT_RELU,
  ACT_TANH,
  ACT_SIGMOID,
  ACT_AFFINE,
  ACT_LEAKYRELU,
  ACT_THRESHOLDEDRELU,
  ACT_SCALEDTANH,
  ACT_HARDSIGMOID,
  ACT_ELU,
  ACT_SOFTSIGN,
  ACT_SOFTPLUS,
} act_kind;

static const struct act_info {
  const char *name;
  act_kind kind;
  bool has_alpha, has_beta;
  double alpha, beta; /* defaults */
} act_table[] = {
    {"Relu", ACT_RELU, false, false, 0, 0},
    {"Tanh", ACT_TANH, false, false, 0, 0},
    {"Sigmoid", ACT_SIGMOID, false, false, 0, 0},
    {"Affine", ACT_AFFINE, true, true, 1.0, 0.0},
    {"LeakyRelu", ACT_LEAKYRELU, true, false, 0.01, 0},
    {"ThresholdedRelu", ACT_THRESHOLDEDRELU, true, false, 1.0, 0},
    {"ScaledTanh", ACT_SCALEDTANH, true, true, 1.0, 1.0},
    {"HardSigmoid", ACT_HARDSIGMOID, true, true, 0.2, 0.5},
    {"Elu", ACT_ELU, true, false, 1.0, 0},
    {"Softsign", ACT_SOFTSIGN, false, false, 0, 0},
    {"Softplus", ACT_SOFTPLUS, false, false, 0, 0},
};

typedef struct act_fn {
  act_kind kind;
  double alpha, beta;
} act_fn;

static double act_apply(const act_fn *f, double x) {
  switch (f->kind) {
  case ACT_RELU: return x > 0 ? x : 0;
  case ACT_TANH: return tanh(x);
  case ACT_SIGMOID: return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
  case ACT_AFFINE: return f->alpha * x + f->beta;
  case ACT_LEAKYRELU: return x >= 0 ? x : f->alpha * x;
  case ACT_THRESHOLDEDRELU: return x > f->alpha ? x : 0;
  case ACT_SCALEDTANH: return f->alpha * tanh(f->beta * x);
  case ACT_HARDSIGMOID: {
    double v = f->alpha * x + f->beta;
    return v < 0 ? 0 : v > 1 ? 1 : v;
  }
  case ACT_ELU: return x >= 0 ? x : f->alpha * (exp(x) - 1.0);
  case ACT_SOFTSIGN: return x / (1.0 + fabs(x));
  case ACT_SOFTPLUS: return x > 30 ? x : log1p(exp(x));
  }
  return x;
}

/* ---- attributes shared by the three ops ---- */

typedef enum cell_kind { CELL_RNN, CELL_GRU, CELL_LSTM } cell_kind;

static int n_gates(cell_kind c) { return c == CELL_RNN ? 1 : c == CELL_GRU ? 3 : 4; }
static int n_acts(cell_kind c) { return c == CELL_RNN ? 1 : c == CELL_GRU ? 2 : 3; }

#define MAX_ACTS 6 /* 3 per direction, 2 directions */

typedef struct rnn_attrs {
  int num_dir;  /* 1 or 2 */
  bool reverse; /* direction "reverse" (num_dir 1) */
  int64_t layout;
  bool has_clip;
  double clip;
  int64_t hidden_size; /* -1 when absent */
  bool linear_before_reset, input_forget;
  act_fn acts[MAX_ACTS]; /* n_acts per direction, direction-major */
} rnn_attrs;

static bool attr_str_eq(const tc_attr *a, const char *s) {
  size_t l = strlen(s);
  return a->s.len == l && (l == 0 || memcmp(a->s.data, s, l) == 0);
}

/* Reads and validates the attributes; on a problem writes why into err and
 * returns false. */
static bool parse_attrs(const tc_node *n, cell_kind cell, rnn_attrs *ra, char *err, size_t errlen) {
  memset(ra, 0, sizeof *ra);
  const tc_attr *dir = tc_node_attr(n, "direction");
  ra->num_dir = 1;
  if (dir) {
    if (attr_str_eq(dir, "bidirectional"))
      ra->num_dir = 2;
    else if (attr_str_eq(dir, "reverse"))
      ra->reverse = true;
    else if (!attr_str_eq(dir, "forward")) {
      snprintf(err, errlen, "direction '%.*s' is not forward, reverse or bidirectional",
               (int)(dir->s.len > 40 ? 40 : dir->s.len),
               dir->s.data ? (const char *)dir->s.data : "");
      return false;
    }
  }
  ra->layout = tc_attr_int(n, "layout", 0);
  if (ra->layout != 0 && ra->layout != 1) {
    snprintf(err, errlen, "layout %lld is not 0 or 1", (long long)ra->layout);
    return false;
  }
  ra->has_clip = tc_attr_has(n, "clip");
  ra->clip = tc_attr_float(n, "clip", 0.0f);
  if (ra->has_clip && !(ra->clip >= 0)) {
    snprintf(err, errlen, "clip must not be negative");
    return false;
  }
  ra->hidden_size = tc_attr_int(n, "hidden_size", -1);
  ra->linear_before_reset = tc_attr_int(n, "linear_before_reset", 0) != 0;
  ra->input_forget = tc_attr_int(n, "input_forget", 0) != 0;

  int per = n_acts(cell), total = per * ra->num_dir;
  static const char *const dflt[3] = {"Sigmoid", "Tanh", "Tanh"};
  const char *names[MAX_ACTS];
  size_t lens[MAX_ACTS];
  const tc_attr *acts = tc_node_attr(n, "activations");
  size_t given = acts ? acts->n_strings : 0;
  if (acts && given != (size_t)total && given != (size_t)per) {
    snprintf(err, errlen, "activations lists %zu functions, expected %d", given, total);
    return false;
  }
  for (int i = 0; i < total; i++) {
    int j = i % per;
    if (acts && given) {
      const ProtobufCBinaryData *s = &acts->strings[given == (size_t)total ? (size_t)i : (size_t)j];
      names[i] = (const char *)s->data;
      lens[i] = s->len;
    } else {
      names[i] = cell == CELL_RNN ? "Tanh" : dflt[j];
      lens[i] = strlen(names[i]);
    }
  }
  const float *alphas = NULL, *betas = NULL;
  ptrdiff_t na = tc_attr_floats(n, "activation_alpha", &alphas);
  ptrdiff_t nb = tc_attr_floats(n, "activation_beta", &betas);
  ptrdiff_t ia = 0, ib = 0;
  for (int i = 0; i < total; i++) {
    const struct act_info *info = NULL;
    for (size_t t = 0; t < sizeof act_table / sizeof act_table[0]; t++)
      if (strlen(act_table[t].name) == lens[i] && lens[i] &&
          strncasecmp(act_table[t].name, names[i], lens[i]) == 0)
        info = &act_table[t];
    if (!info) {
      snprintf(err, errlen, "activation '%.*s' is not supported",
               (int)(lens[i] > 40 ? 40 : lens[i]), names[i] ? names[i] : "");
      return false;
    }
    ra->acts[i].kind = info->kind;
    ra->acts[i].alpha = info->alpha;
    ra->acts[i].beta = info->beta;
    if (info->has_alpha && ia < na)
      ra->acts[i].alpha = alphas[ia++];
    if (info->has_beta && ib < nb)
      ra->acts[i].beta = betas[ib++];
  }
  return true;
}

static tc_status check_cell(const tc_node *n, cell_kind cell, tc_diag *diag) {
  static const char *const rnn_ok[] = {"activation_alpha", "activation_beta", "activations", "clip",
                                       "direction",        "hidden_size",     "layout",      NULL};
  static const char *const gru_ok[] = {
      "activation_alpha", "activation_beta", "activations",         "clip", "direction",
      "hidden_size",      "layout",          "linear_before_reset", NULL};
  static const char *const lstm_ok[] = {
      "activation_alpha", "activation_beta", "activations",  "clip", "direction",
      "hidden_size",      "layout",          "input_forget", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag,
                                       cell == CELL_RNN   ? rnn_ok
                                       : cell == CELL_GRU ? gru_ok
                                                          : lstm_ok);
  if (st)
    return st;
  rnn_attrs ra;
  char err[160];
  if (!parse_attrs(n, cell, &ra, err, sizeof err))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type, "%s", err);
  return TC_STATUS_OK;
}

static tc_status check_rnn(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  return check_cell(n, CELL_RNN, diag);
}
static tc_status check_gru(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  return check_cell(n, CELL_GRU, diag);
}
static tc_status check_lstm(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  return check_cell(n, CELL_LSTM, diag);
}

/* ---- the walker ---- */

/* t as doubles (NULL on OOM). */
static double *to_f64(tc_kernel_ctx *k, const tc_rt_tensor *t) {
  size_t n = tc_rt_numel(t);
  double *p = tc_arena_alloc(k->arena, (n ? n : 1) * sizeof *p);
  if (p)
    for (size_t i = 0; i < n; i++)
      p[i] = tc_rt_get_f64(t, i);
  return p;
}

static bool shape_is(const tc_rt_tensor *t, size_t rank, const int64_t *dims) {
  if (t->rank != rank)
    return false;
  for (size_t d = 0; d < rank; d++)
    if (t->dims[d] != dims[d])
      return false;
  return true;
}

/* Reads a [num_dir, batch, H] state (layout 0) or [batch, num_dir, H] (layout
 * 1) into dst in layout 0. */
static tc_status read_state(tc_kernel_ctx *k, const tc_rt_tensor *t, const char *what,
                            const rnn_attrs *ra, int64_t batch, int64_t H, double *dst) {
  int64_t D = ra->num_dir;
  int64_t want[3] = {D, batch, H};
  if (ra->layout) {
    want[0] = batch;
    want[1] = D;
  }
  if (!shape_is(t, 3, want))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s must have shape [%lld, %lld, %lld]", what,
                          (long long)want[0], (long long)want[1], (long long)want[2]);
  if (!tc_dtype_is_float(t->dtype))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "%s has dtype %s, which this op does not support", what,
                          tc_dtype_name(t->dtype));
  for (int64_t d = 0; d < D; d++)
    for (int64_t b = 0; b < batch; b++)
      for (int64_t h = 0; h < H; h++) {
        size_t src = ra->layout ? (size_t)((b * D + d) * H + h) : (size_t)((d * batch + b) * H + h);
        dst[(d * batch + b) * H + h] = tc_rt_get_f64(t, src);
      }
  return TC_STATUS_OK;
}

static double clipv(const rnn_attrs *ra, double v) {
  if (!ra->has_clip)
    return v;
  return v < -ra->clip ? -ra->clip : v > ra->clip ? ra->clip : v;
}

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

/* ---- the float32 path ---- */

/* The fast kernels take float32 tensors and the activations below. */
static bool act_fast(const act_fn *f) {
  return f->kind == ACT_SIGMOID || f->kind == ACT_TANH || f->kind == ACT_RELU;
}

/* f (act_fast's) over x[0..n) in place. */
static void act_raw(const act_fn *f, float *x, size_t n) {
  if (f->kind == ACT_SIGMOID)
    tc_vsigmoid_f32(x, x, n);
  else if (f->kind == ACT_TANH)
    tc_vtanh_f32(x, x, n);
  else
    for (size_t i = 0; i < n; i++)
      x[i] = x[i] > 0 ? x[i] : 0;
}

/* f over a gate's pre-activations x[0..n) in place, clipped first. */
static void act_vec(const rnn_attrs *ra, const act_fn *f, float *x, size_t n) {
  if (ra->has_clip)
    tc_vclip_f32(x, x, n, (float)-ra->clip, (float)ra->clip);
  act_raw(f, x, n);
}

/* The walker's recurrences in float32 (the reference walker below keeps
 * doubles): per direction, W X for every step and row in one GEMM (both
 * biases added, but GRU's hidden-gate recurrence bias with
 * linear_before_reset), then per step R h for all rows in one GEMM (GRU's
 * hidden gate without linear_before_reset: R_h (r h) in a second) and the
 * gates' arithmetic in vector loops. Rows past their sequence_lens stay
 * as they are, Y zero there, as the walker. Silero VAD's LSTM (one step, two
 * rows, 128 cells) ran 0.5 ms a call converting its weights to doubles. */
typedef struct cell_dims {
  int64_t G, D, S, batch, I, H;
} cell_dims;

static tc_status cell_fast(tc_kernel_ctx *k, cell_kind cell, const rnn_attrs *ra,
                           const cell_dims *cd, const tc_rt_tensor *const *t, tc_rt_tensor *out,
                           size_t n_out) {
  const tc_rt_tensor *X = t[0], *W = t[1], *R = t[2], *B = t[3], *SL = t[4], *H0 = t[5], *C0 = t[6],
                     *P = t[7];
  int64_t G = cd->G, D = cd->D, S = cd->S, batch = cd->batch, I = cd->I, H = cd->H;
  size_t GH = (size_t)(G * H), rows = (size_t)(S * batch), hs = (size_t)H;
  size_t state_n = (size_t)(D * batch * H);
  float *gx = tc_arena_alloc(k->arena, (rows * GH + 1) * sizeof *gx);
  float *rg = tc_arena_alloc(k->arena, ((size_t)batch * GH + 1) * sizeof *rg);
  float *h = tc_arena_alloc(k->arena, ((size_t)batch * hs + 1) * sizeof *h);
  float *c = tc_arena_alloc(k->arena, ((size_t)batch * hs + 1) * sizeof *c);
  float *rh = tc_arena_alloc(k->arena, (2 * (size_t)batch * hs + 1) * sizeof *rh);
  float *y = tc_arena_alloc(k->arena, ((size_t)S * state_n + 1) * sizeof *y);
  float *yh = tc_arena_alloc(k->arena, (2 * state_n + 1) * sizeof *yh), *yc = yh + state_n;
  float *tmp = tc_arena_alloc(k->arena, (hs + 1) * sizeof *tmp);
  if (!gx || !rg || !h || !c || !rh || !y || !yh || !tmp)
    return NOMEM(k);
  memset(y, 0, (size_t)S * state_n * sizeof *y);
  memset(rh, 0, 2 * (size_t)batch * hs * sizeof *rh); /* (finished rows' stay 0) */
  int per = n_acts(cell);
  const float *x = X->data;
  for (int64_t d = 0; d < D; d++) {
    bool rev = D == 2 ? d == 1 : ra->reverse;
    const float *wd = (const float *)W->data + d * G * H * I,
                *rd = (const float *)R->data + d * G * H * H;
    const float *wb = B ? (const float *)B->data + d * 2 * G * H : NULL, *rb = wb ? wb + GH : NULL;
    const float *pi = P ? (const float *)P->data + d * 3 * H : NULL, *po = pi ? pi + H : NULL,
                *pf = pi ? po + H : NULL;
    const act_fn *f = &ra->acts[d * per], *g = per > 1 ? &ra->acts[d * per + 1] : NULL;
    const act_fn *hf = per > 2 ? &ra->acts[d * per + 2] : NULL;
    bool lbr = cell == CELL_GRU && ra->linear_before_reset;
    /* W x for X's rows in X's own order: (t, b) at t * batch + b, or
     * b * S + t in layout 1 */
    if (!tc_sgemm(false, true, rows, GH, (size_t)I, x, wd, gx))
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "the input GEMM failed");
    for (size_t r = 0; wb && r < rows; r++) {
      float *gr = gx + r * GH;
      tc_vadd_inplace_f32(gr, wb, GH);
      tc_vadd_inplace_f32(gr, rb, lbr ? 2 * hs : GH);
    }
    for (int64_t b = 0; b < batch; b++) { /* initial states, zero without them */
      for (int64_t q = 0; q < H; q++) {
        size_t at = ra->layout ? (size_t)((b * D + d) * H + q) : (size_t)((d * batch + b) * H + q);
        h[b * H + q] = H0 ? ((const float *)H0->data)[at] : 0.0f;
        c[b * H + q] = C0 ? ((const float *)C0->data)[at] : 0.0f;
      }
    }
    for (int64_t s = 0; s < S; s++) {
      /* R h for every row (a finished row's result is not used) */
      if (!tc_sgemm(false, true, (size_t)batch, GH, hs, h, rd, rg))
        return tc_kernel_fail(k, TC_STATUS_NOMEM, "the recurrent GEMM failed");
      for (int phase = 0; phase < (cell == CELL_GRU && !lbr ? 2 : 1); phase++) {
        if (phase == 1) { /* GRU: R_h (r h), r now in rh */
          for (size_t i = 0; i < (size_t)batch * hs; i++)
            rh[i] *= h[i];
          if (!tc_sgemm(false, true, (size_t)batch, hs, hs, rh, rd + 2 * H * H,
                        rh + (size_t)batch * hs))
            return tc_kernel_fail(k, TC_STATUS_NOMEM, "the recurrent GEMM failed");
        }
        for (int64_t b = 0; b < batch; b++) {
          int64_t len = SL ? tc_rt_get_i64(SL, (size_t)b) : S;
          if (s >= len)
            continue;
          int64_t tt = rev ? len - 1 - s : s;
          float *gr = gx + (ra->layout ? b * S + tt : tt * batch + b) * (int64_t)GH;
          float *rr = rg + b * (int64_t)GH, *hb = h + b * H, *cb = c + b * H;
          if (cell == CELL_GRU && phase == 0) {
            float *z = gr, *r = gr + H, *hg = gr + 2 * H;
            tc_vadd_inplace_f32(z, rr, 2 * hs); /* z and r */
            act_vec(ra, f, z, 2 * hs);
            if (!lbr) { /* the hidden gate after R_h (r h) */
              memcpy(rh + b * H, r, hs * sizeof *rh);
              continue;
            }
            for (int64_t q = 0; q < H; q++)
              hg[q] += r[q] * (rr[2 * H + q] + (rb ? rb[2 * H + q] : 0.0f));
          }
          if (cell == CELL_GRU) {
            float *z = gr, *hg = gr + 2 * H;
            if (!lbr)
              tc_vadd_inplace_f32(hg, rh + (size_t)batch * hs + b * H, hs);
            act_vec(ra, g, hg, hs);
            for (int64_t q = 0; q < H; q++)
              hb[q] = (1.0f - z[q]) * hg[q] + z[q] * hb[q];
          } else if (cell == CELL_RNN) {
            tc_vadd_inplace_f32(gr, rr, hs);
            act_vec(ra, f, gr, hs);
            memcpy(hb, gr, hs * sizeof *hb);
          } else { /* i, o, f, c */
            tc_vadd_inplace_f32(gr, rr, GH);
            float *ig = gr, *og = gr + H, *fg = gr + 2 * H, *cg = gr + 3 * H;
            for (int64_t q = 0; pi && q < H; q++) {
              ig[q] += pi[q] * cb[q];
              fg[q] += pf[q] * cb[q];
            }
            act_vec(ra, f, ig, hs);
            if (ra->input_forget)
              for (int64_t q = 0; q < H; q++)
                fg[q] = 1.0f - ig[q];
            else
              act_vec(ra, f, fg, hs);
            act_vec(ra, g, cg, hs);
            for (int64_t q = 0; q < H; q++)
              cb[q] = fg[q] * cb[q] + ig[q] * cg[q];
            for (int64_t q = 0; po && q < H; q++)
              og[q] += po[q] * cb[q];
            act_vec(ra, f, og, hs);
            memcpy(tmp, cb, hs * sizeof *tmp);
            act_raw(hf, tmp, hs); /* (the cell state is not clipped) */
            for (int64_t q = 0; q < H; q++)
              hb[q] = og[q] * tmp[q];
          }
          memcpy(y + ((tt * D + d) * batch + b) * H, hb, hs * sizeof *y);
        }
      }
    }
    memcpy(yh + d * batch * H, h, (size_t)batch * hs * sizeof *yh);
    memcpy(yc + d * batch * H, c, (size_t)batch * hs * sizeof *yc);
  }
  const tc_node *n = k->node;
  tc_status st;
  if (n_out > 0 && n->outputs[0]) {
    int64_t od[4] = {S, D, batch, H};
    if (ra->layout)
      od[0] = batch, od[1] = S, od[2] = D;
    if ((st = tc_kernel_alloc(k, &out[0], TC_DTYPE_F32, 4, od)))
      return st;
    float *o = out[0].data;
    for (int64_t tt = 0; tt < S; tt++)
      for (int64_t d = 0; d < D; d++)
        for (int64_t b = 0; b < batch; b++)
          memcpy(o + (ra->layout ? ((b * S + tt) * D + d) * H : ((tt * D + d) * batch + b) * H),
                 y + ((tt * D + d) * batch + b) * H, hs * sizeof *o);
  }
  for (size_t o = 1; o < 3 && o < n_out; o++) {
    if (!n->outputs[o] || (o == 2 && cell != CELL_LSTM))
      continue;
    const float *src = o == 1 ? yh : yc;
    int64_t od[3] = {D, batch, H};
    if (ra->layout)
      od[0] = batch, od[1] = D;
    if ((st = tc_kernel_alloc(k, &out[o], TC_DTYPE_F32, 3, od)))
      return st;
    float *dst = out[o].data;
    for (int64_t d = 0; d < D; d++)
      for (int64_t b = 0; b < batch; b++)
        memcpy(dst + (ra->layout ? (b * D + d) * H : (d * batch + b) * H),
               src + (d * batch + b) * H, hs * sizeof *dst);
  }
  return TC_STATUS_OK;
}

static tc_status run_cell(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out, cell_kind cell) {
  const tc_node *n = k->node;
  rnn_attrs ra;
  char err[160];
  if (!parse_attrs(n, cell, &ra, err, sizeof err))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "%s", err);
  const tc_rt_tensor *X = input(in, n_in, 0), *W = input(in, n_in, 1), *R = input(in, n_in, 2);
  const tc_rt_tensor *B = input(in, n_in, 3), *SL = input(in, n_in, 4), *H0 = input(in, n_in, 5);
  const tc_rt_tensor *C0 = cell == CELL_LSTM ? input(in, n_in, 6) : NULL;
  const tc_rt_tensor *P = cell == CELL_LSTM ? input(in, n_in, 7) : NULL;
  if (!X || !W || !R)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X, W and R are required");
  const tc_rt_tensor *fl[] = {X, W, R, B, NULL, H0, C0, P};
  for (size_t i = 0; i < 8; i++)
    if (fl[i] && !tc_dtype_is_float(fl[i]->dtype))
      return tc_kernel_bad_dtype(k, i, fl[i]->dtype);
  if (X->rank != 3 || W->rank != 3 || R->rank != 3)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X, W and R must have rank 3");
  int64_t G = n_gates(cell), D = ra.num_dir;
  int64_t S = ra.layout ? X->dims[1] : X->dims[0];
  int64_t batch = ra.layout ? X->dims[0] : X->dims[1];
  int64_t I = X->dims[2];
  int64_t H = R->dims[2];
  if (ra.hidden_size >= 0 && ra.hidden_size != H)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "hidden_size %lld does not match R's last dim %lld",
                          (long long)ra.hidden_size, (long long)H);
  int64_t wd[3] = {D, G * H, I}, rd[3] = {D, G * H, H};
  if (!shape_is(W, 3, wd))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "W must have shape [%lld, %lld, %lld]",
                          (long long)D, (long long)(G * H), (long long)I);
  if (!shape_is(R, 3, rd))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "R must have shape [%lld, %lld, %lld]",
                          (long long)D, (long long)(G * H), (long long)H);
  int64_t bd[2] = {D, 2 * G * H}, pd[2] = {D, 3 * H};
  if (B && !shape_is(B, 2, bd))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "B must have shape [%lld, %lld]", (long long)D,
                          (long long)(2 * G * H));
  if (P && !shape_is(P, 2, pd))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "P must have shape [%lld, %lld]", (long long)D,
                          (long long)(3 * H));
  if (SL) {
    if (!tc_dtype_is_int(SL->dtype))
      return tc_kernel_bad_dtype(k, 4, SL->dtype);
    if (SL->rank != 1 || SL->dims[0] != batch)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "sequence_lens must have shape [%lld]",
                            (long long)batch);
    for (int64_t b = 0; b < batch; b++) {
      int64_t l = tc_rt_get_i64(SL, (size_t)b);
      if (l < 0 || l > S)
        return tc_kernel_fail(k, TC_STATUS_INVALID,
                              "sequence_lens[%lld] = %lld is outside [0, %lld]", (long long)b,
                              (long long)l, (long long)S);
    }
  }

  bool fast = tc_fast_kernels_enabled() && S > 0 && batch > 0 && H > 0 && I > 0;
  for (size_t i = 0; fast && i < 8; i++)
    fast = !fl[i] || fl[i]->dtype == TC_DTYPE_F32;
  for (int i = 0; fast && i < n_acts(cell) * D; i++)
    fast = act_fast(&ra.acts[i]);
  if (fast) {
    const cell_dims cd = {G, D, S, batch, I, H};
    const tc_rt_tensor *t[8] = {X, W, R, B, SL, H0, C0, P};
    return cell_fast(k, cell, &ra, &cd, t, out, n_out);
  }

  /* inputs as doubles, X in layout 0 */
  size_t state_n = (size_t)(D * batch * H);
  double *x = tc_arena_alloc(k->arena, ((size_t)(S * batch * I) + 1) * sizeof *x);
  double *w = to_f64(k, W), *r = to_f64(k, R);
  double *bias = tc_arena_alloc(k->arena, (size_t)(D * 2 * G * H + 1) * sizeof *bias);
  double *peep = tc_arena_alloc(k->arena, (size_t)(D * 3 * H + 1) * sizeof *peep);
  double *h0 = tc_arena_alloc(k->arena, (state_n + 1) * sizeof *h0);
  double *c0 = tc_arena_alloc(k->arena, (state_n + 1) * sizeof *c0);
  double *y = tc_arena_alloc(k->arena, ((size_t)S * state_n + 1) * sizeof *y);
  double *yh = tc_arena_alloc(k->arena, (state_n + 1) * sizeof *yh);
  double *yc = tc_arena_alloc(k->arena, (state_n + 1) * sizeof *yc);
  double *gates = tc_arena_alloc(k->arena, (size_t)(G * H + 1) * sizeof *gates);
  double *hcur = tc_arena_alloc(k->arena, (size_t)(2 * H + 1) * sizeof *hcur);
  double *ccur = tc_arena_alloc(k->arena, (size_t)(H + 1) * sizeof *ccur);
  double *tmp = tc_arena_alloc(k->arena, (size_t)(H + 1) * sizeof *tmp);
  if (!x || !w || !r || !bias || !peep || !h0 || !c0 || !y || !yh || !yc || !gates || !hcur ||
      !ccur || !tmp)
    return NOMEM(k);
  for (int64_t t = 0; t < S; t++)
    for (int64_t b = 0; b < batch; b++)
      for (int64_t i = 0; i < I; i++) {
        size_t src = ra.layout ? (size_t)((b * S + t) * I + i) : (size_t)((t * batch + b) * I + i);
        x[(t * batch + b) * I + i] = tc_rt_get_f64(X, src);
      }
  for (size_t i = 0; i < (size_t)(D * 2 * G * H); i++)
    bias[i] = B ? tc_rt_get_f64(B, i) : 0.0;
  for (size_t i = 0; i < (size_t)(D * 3 * H); i++)
    peep[i] = P ? tc_rt_get_f64(P, i) : 0.0;
  memset(h0, 0, (state_n + 1) * sizeof *h0);
  memset(c0, 0, (state_n + 1) * sizeof *c0);
  tc_status st;
  if (H0 && (st = read_state(k, H0, "initial_h", &ra, batch, H, h0)))
    return st;
  if (C0 && (st = read_state(k, C0, "initial_c", &ra, batch, H, c0)))
    return st;
  memset(y, 0, ((size_t)S * state_n + 1) * sizeof *y);

  int per = n_acts(cell);
  for (int64_t d = 0; d < D; d++) {
    bool rev = D == 2 ? d == 1 : ra.reverse;
    const double *wd_ = w + d * G * H * I, *rd_ = r + d * G * H * H;
    const double *wb = bias + d * 2 * G * H, *rb = wb + G * H;
    const double *pi = peep + d * 3 * H, *po = pi + H, *pf = po + H;
    const act_fn *f = &ra.acts[d * per], *g = per > 1 ? &ra.acts[d * per + 1] : NULL;
    const act_fn *hf = per > 2 ? &ra.acts[d * per + 2] : NULL;
    for (int64_t b = 0; b < batch; b++) {
      int64_t len = SL ? tc_rt_get_i64(SL, (size_t)b) : S;
      double *h = hcur, *c = ccur;
      memcpy(h, h0 + (d * batch + b) * H, (size_t)H * sizeof *h);
      memcpy(c, c0 + (d * batch + b) * H, (size_t)H * sizeof *c);
      for (int64_t s = 0; s < len; s++) {
        int64_t t = rev ? len - 1 - s : s;
        const double *xt = x + (t * batch + b) * I;
        /* gates = W x + Wb (+ R h + Rb, except GRU's hidden gate) */
        for (int64_t q = 0; q < G * H; q++)
          gates[q] = dot(wd_ + q * I, xt, I) + wb[q];
        if (cell == CELL_RNN) {
          for (int64_t q = 0; q < H; q++)
            tmp[q] = act_apply(f, clipv(&ra, gates[q] + dot(rd_ + q * H, h, H) + rb[q]));
          memcpy(h, tmp, (size_t)H * sizeof *h);
        } else if (cell == CELL_GRU) {
          /* z, r, h gates */
          double *zg = gates, *rg = gates + H, *hg = gates + 2 * H;
          for (int64_t q = 0; q < 2 * H; q++)
            gates[q] = act_apply(f, clipv(&ra, gates[q] + dot(rd_ + q * H, h, H) + rb[q]));
          const double *rh = rd_ + 2 * H * H;
          if (ra.linear_before_reset) {
            for (int64_t q = 0; q < H; q++)
              hg[q] =
                  act_apply(g, clipv(&ra, hg[q] + rg[q] * (dot(rh + q * H, h, H) + rb[2 * H + q])));
          } else {
            double *rhv = hcur + H; /* r * h */
            for (int64_t q = 0; q < H; q++)
              rhv[q] = rg[q] * h[q];
            for (int64_t q = 0; q < H; q++)
              hg[q] = act_apply(g, clipv(&ra, hg[q] + dot(rh + q * H, rhv, H) + rb[2 * H + q]));
          }
          for (int64_t q = 0; q < H; q++)
            h[q] = (1.0 - zg[q]) * hg[q] + zg[q] * h[q];
        } else {
          /* i, o, f, c gates */
          for (int64_t q = 0; q < G * H; q++)
            gates[q] += dot(rd_ + q * H, h, H) + rb[q];
          double *ig = gates, *og = gates + H, *fg = gates + 2 * H, *cg = gates + 3 * H;
          for (int64_t q = 0; q < H; q++) {
            double iv = act_apply(f, clipv(&ra, ig[q] + pi[q] * c[q]));
            double fv = ra.input_forget ? 1.0 - iv : act_apply(f, clipv(&ra, fg[q] + pf[q] * c[q]));
            double cv = act_apply(g, clipv(&ra, cg[q]));
            double cn = fv * c[q] + iv * cv;
            double ov = act_apply(f, clipv(&ra, og[q] + po[q] * cn));
            c[q] = cn;
            h[q] = ov * act_apply(hf, cn);
          }
        }
        memcpy(y + ((t * D + d) * batch + b) * H, h, (size_t)H * sizeof *h);
      }
      memcpy(yh + (d * batch + b) * H, h, (size_t)H * sizeof *h);
      memcpy(yc + (d * batch + b) * H, c, (size_t)H * sizeof *c);
    }
  }

  /* outputs in X's dtype and the asked layout */
  int32_t dt = X->dtype;
  if (n_out > 0 && n->outputs[0]) {
    int64_t od[4] = {S, D, batch, H};
    if (ra.layout) {
      od[0] = batch;
      od[1] = S;
      od[2] = D;
    }
    if ((st = tc_kernel_alloc(k, &out[0], dt, 4, od)))
      return st;
    for (int64_t t = 0; t < S; t++)
      for (int64_t d = 0; d < D; d++)
        for (int64_t b = 0; b < batch; b++)
          for (int64_t q = 0; q < H; q++) {
            size_t dst = ra.layout ? (size_t)(((b * S + t) * D + d) * H + q)
                                   : (size_t)(((t * D + d) * batch + b) * H + q);
            tc_rt_set_f64(&out[0], dst, y[((t * D + d) * batch + b) * H + q]);
          }
  }
  for (size_t o = 1; o < 3 && o < n_out; o++) {
    if (!n->outputs[o] || (o == 2 && cell != CELL_LSTM))
      continue;
    const double *src = o == 1 ? yh : yc;
    int64_t od[3] = {D, batch, H};
    if (ra.layout) {
      od[0] = batch;
      od[1] = D;
    }
    if ((st = tc_kernel_alloc(k, &out[o], dt, 3, od)))
      return st;
    for (int64_t d = 0; d < D; d++)
      for (int64_t b = 0; b < batch; b++)
        for (int64_t q = 0; q < H; q++) {
          size_t dst =
              ra.layout ? (size_t)((b * D + d) * H + q) : (size_t)((d * batch + b) * H + q);
          tc_rt_set_f64(&out[o], dst, src[(d * batch + b) * H + q]);
        }
  }
  return TC_STATUS_OK;
}

static tc_status run_rnn(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  return run_cell(k, in, n_in, out, n_out, CELL_RNN);
}
static tc_status run_gru(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  return run_cell(k, in, n_in, out, n_out, CELL_GRU);
}
static tc_status run_lstm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  return run_cell(k, in, n_in, out, n_out, CELL_LSTM);
}

const tc_kernel_def tc_kernels_sequence[] = {
    {"RNN", "", 7, run_rnn, check_rnn},
    {"GRU", "", 7, run_gru, check_gru},
    {"LSTM", "", 7, run_lstm, check_lstm},
    {NULL},
};
