/* Convolution, pooling, quantization and resize kernels: plain reference
 * code (direct loops, double accumulation) that faster paths are checked
 * against.
 *
 * Float ops take float32, float64, float16 and bfloat16: inputs are read into
 * double arrays, computed in double and written back in the output dtype.
 * Convolution and pooling handle 1 to 3 spatial dims by padding the geometry
 * to 3 dims of size 1.
 *
 * Fast paths, unless the reference kernels were asked for: float32 Conv,
 * ConvTranspose and FusedConv run as oneDNN primitives (dnnl_conv.c);
 * ConvInteger, QLinearConv and QLinearMatMul through oneDNN's int8 GEMM,
 * bit-exact with the reference (blas.c). Either falls back to the reference
 * when oneDNN declines a case.
 *
 * FusedConv (com.microsoft and ai.tacoc) is ONNX Runtime's: Conv, plus Z
 * added before the activation; ai.tacoc adds HardSwish, Gelu and Silu. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

#define SP 3 /* spatial dims handled */

static bool is_q8(int32_t dt) { return dt == TC_DTYPE_U8 || dt == TC_DTYPE_I8; }

/* Integer dtypes DequantizeLinear/QuantizeLinear handle, sub-byte ones packed
 * low bits first as ONNX stores them. */
static bool is_qint(int32_t dt) {
  switch (dt) {
  case TC_DTYPE_U8:
  case TC_DTYPE_I8:
  case TC_DTYPE_U16:
  case TC_DTYPE_I16:
  case TC_DTYPE_U4:
  case TC_DTYPE_I4:
  case TC_DTYPE_U2:
  case TC_DTYPE_I2: return true;
  default: return false;
  }
}

static void qrange(int32_t dt, int64_t *lo, int64_t *hi) {
  switch (dt) {
  case TC_DTYPE_U8: *lo = 0, *hi = 255; return;
  case TC_DTYPE_I8: *lo = -128, *hi = 127; return;
  case TC_DTYPE_U16: *lo = 0, *hi = 65535; return;
  case TC_DTYPE_I16: *lo = -32768, *hi = 32767; return;
  case TC_DTYPE_U4: *lo = 0, *hi = 15; return;
  case TC_DTYPE_I4: *lo = -8, *hi = 7; return;
  case TC_DTYPE_U2: *lo = 0, *hi = 3; return;
  case TC_DTYPE_I2: *lo = -2, *hi = 1; return;
  case TC_DTYPE_I32: *lo = INT32_MIN, *hi = INT32_MAX; return;
  default: *lo = 0, *hi = 0; return;
  }
}

/* Element i of an integer tensor, sub-byte dtypes included. */
static int64_t qget(const tc_rt_tensor *t, size_t i) {
  int bits = tc_dtype_bits(t->dtype);
  if (bits >= 8)
    return tc_rt_get_i64(t, i);
  const uint8_t *p = t->data;
  size_t bit = i * (size_t)bits;
  int64_t v = (p[bit / 8] >> (bit % 8)) & ((1 << bits) - 1);
  if ((t->dtype == TC_DTYPE_I4 || t->dtype == TC_DTYPE_I2) && (v & (1 << (bits - 1))))
    v -= (int64_t)1 << bits;
  return v;
}

/* Writes v (already in range) to element i; sub-byte outputs start zeroed. */
static void qset(tc_rt_tensor *t, size_t i, int64_t v) {
  int bits = tc_dtype_bits(t->dtype);
  if (bits >= 8) {
    tc_rt_set_i64(t, i, v);
    return;
  }
  uint8_t *p = t->data;
  size_t bit = i * (size_t)bits;
  p[bit / 8] = (uint8_t)(p[bit / 8] | (((uint64_t)v & ((1u << bits) - 1)) << (bit % 8)));
}

static int64_t clamp64(double v, int64_t lo, int64_t hi) {
  if (isnan(v))
    return 0;
  if (v <= (double)lo)
    return lo;
  if (v >= (double)hi)
    return hi;
  return (int64_t)v;
}

/* Rounds a float32 value the way numpy does for dtype dt (float16 results
 * are rounded through half precision). */
static float round_to(int32_t dt, float v) {
  if (dt == TC_DTYPE_F16)
    return tc_f16_to_f32(tc_f32_to_f16(v));
  if (dt == TC_DTYPE_BF16)
    return tc_bf16_to_f32(tc_f32_to_bf16(v));
  return v;
}

/* Reads a numeric tensor into a fresh double array (arena). */
static double *load(tc_kernel_ctx *k, const tc_rt_tensor *t) {
  size_t n = tc_rt_numel(t);
  double *v = tc_arena_alloc(k->arena, (n ? n : 1) * sizeof *v);
  if (!v) {
    tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    v[i] = tc_rt_get_f64(t, i);
  return v;
}

static double *scratch(tc_kernel_ctx *k, size_t n) {
  double *v = tc_arena_alloc(k->arena, (n ? n : 1) * sizeof *v);
  if (!v)
    tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
  else
    memset(v, 0, (n ? n : 1) * sizeof *v);
  return v;
}

/* Stores a double array into out converting to its dtype. */
static void store(tc_rt_tensor *out, const double *v) {
  size_t n = tc_rt_numel(out);
  for (size_t i = 0; i < n; i++)
    tc_rt_set_f64(out, i, v[i]);
}

static int64_t floordiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

static int64_t ceildiv(int64_t a, int64_t b) { return -floordiv(-a, b); }

/* True when the string attribute name equals val (dflt when absent). */
static bool attr_is(const tc_node *n, const char *name, const char *val, const char *dflt) {
  const tc_attr *a = tc_node_attr(n, name);
  if (!a)
    return dflt && strcmp(dflt, val) == 0;
  return a->s.len == strlen(val) && memcmp(a->s.data, val, a->s.len) == 0;
}

static tc_status refuse(const tc_node *n, tc_diag *diag, const char *fmt, const char *what) {
  return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type, fmt, what);
}

static tc_status check_one_of(const tc_node *n, tc_diag *diag, const char *attr,
                              const char *const *vals) {
  const tc_attr *a = tc_node_attr(n, attr);
  if (!a)
    return TC_STATUS_OK;
  for (const char *const *p = vals; *p; p++)
    if (attr_is(n, attr, *p, NULL))
      return TC_STATUS_OK;
  return refuse(n, diag, "this value of attribute '%s' is not implemented", attr);
}

static const char *const auto_pads[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", NULL};

/* ---- geometry of convolution and pooling windows ---- */

typedef struct geom {
  size_t nsp;
  int64_t in[SP], k[SP], s[SP], d[SP], pb[SP], pe[SP], out[SP];
} geom;

enum { G_CONV, G_POOL };

/* Reads an ints attribute of exactly nsp entries (or 2*nsp for pads) into v,
 * dflt when absent. */
static tc_status ints_attr(tc_kernel_ctx *k, const char *name, size_t want, int64_t dflt,
                           int64_t *v) {
  const int64_t *a;
  ptrdiff_t n = tc_attr_ints(k->node, name, &a);
  if (n < 0 || (n == 0 && want)) {
    for (size_t i = 0; i < want; i++)
      v[i] = dflt;
    return TC_STATUS_OK;
  }
  if ((size_t)n != want)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "attribute %s has %td entries, expected %zu", name,
                          n, want);
  memcpy(v, a, want * sizeof *v);
  return TC_STATUS_OK;
}

/* x: the input ([N, C, spatial...]); kshape: the kernel's spatial dims. */
static tc_status make_geom(tc_kernel_ctx *k, const tc_rt_tensor *x, const int64_t *kshape, int kind,
                           geom *g) {
  if (x->rank < 3 || x->rank > 2 + SP)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "input rank %zu: only 1 to 3 spatial dims are implemented", x->rank);
  size_t nsp = x->rank - 2;
  g->nsp = nsp;
  int64_t pads[2 * SP];
  tc_status st;
  if ((st = ints_attr(k, "strides", nsp, 1, g->s)) ||
      (st = ints_attr(k, "dilations", nsp, 1, g->d)) ||
      (st = ints_attr(k, "pads", 2 * nsp, 0, pads)))
    return st;
  const int64_t *ks;
  ptrdiff_t nks = tc_attr_ints(k->node, "kernel_shape", &ks);
  if (nks >= 0 && (size_t)nks != nsp)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "kernel_shape has %td entries for %zu spatial dims",
                          nks, nsp);
  bool ceil_mode = kind == G_POOL && tc_attr_int(k->node, "ceil_mode", 0) != 0;
  for (size_t i = 0; i < SP; i++) {
    if (i >= nsp) {
      g->in[i] = g->k[i] = g->s[i] = g->d[i] = g->out[i] = 1;
      g->pb[i] = g->pe[i] = 0;
      continue;
    }
    g->in[i] = x->dims[2 + i];
    g->k[i] = kshape ? kshape[i] : (nks >= 0 ? ks[i] : 0);
    if (kshape && nks >= 0 && ks[i] != kshape[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "kernel_shape does not match W");
    if (g->k[i] <= 0 || g->s[i] <= 0 || g->d[i] <= 0 || pads[i] < 0 || pads[nsp + i] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "kernel, strides and dilations must be positive, pads not negative");
    g->pb[i] = pads[i];
    g->pe[i] = pads[nsp + i];
    int64_t dk = (g->k[i] - 1) * g->d[i] + 1;
    const tc_node *n = k->node;
    if (attr_is(n, "auto_pad", "SAME_UPPER", NULL) || attr_is(n, "auto_pad", "SAME_LOWER", NULL)) {
      g->out[i] = ceildiv(g->in[i], g->s[i]);
      int64_t total = (g->out[i] - 1) * g->s[i] + dk - g->in[i];
      if (total < 0)
        total = 0;
      if (attr_is(n, "auto_pad", "SAME_UPPER", NULL))
        g->pb[i] = total / 2;
      else
        g->pb[i] = total - total / 2;
      g->pe[i] = total - g->pb[i];
      continue;
    }
    if (attr_is(n, "auto_pad", "VALID", NULL))
      g->pb[i] = g->pe[i] = 0;
    int64_t span = g->in[i] + g->pb[i] + g->pe[i] - dk;
    if (ceil_mode) {
      g->out[i] = ceildiv(span, g->s[i]) + 1;
      if ((g->out[i] - 1) * g->s[i] >= g->in[i] + g->pb[i])
        g->out[i]--;
    } else {
      g->out[i] = floordiv(span, g->s[i]) + 1;
    }
    if (g->out[i] < 0)
      g->out[i] = 0;
  }
  return TC_STATUS_OK;
}

static void out_dims(const geom *g, int64_t n, int64_t c, int64_t *dims) {
  dims[0] = n;
  dims[1] = c;
  for (size_t i = 0; i < g->nsp; i++)
    dims[2 + i] = g->out[i];
}

static const char *const conv_attrs[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                         "pads",     "strides",   NULL};

static tc_status check_conv(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, conv_attrs);
  return st ? st : check_one_of(n, diag, "auto_pad", auto_pads);
}

/* y[N, M, out] = bias + sum over the group's channels and the window.
 * x: [N, C, in], w: [M, C/group, k]. */
static void conv_core(const geom *g, int64_t N, int64_t C, int64_t M, int64_t group,
                      const double *x, const double *w, const double *bias, double *y) {
  int64_t Cg = C / group, Mg = M / group;
  int64_t isz = g->in[0] * g->in[1] * g->in[2], ksz = g->k[0] * g->k[1] * g->k[2];
  int64_t osz = g->out[0] * g->out[1] * g->out[2];
  for (int64_t n = 0; n < N; n++)
    for (int64_t m = 0; m < M; m++) {
      int64_t gi = m / Mg;
      double *yo = y + (n * M + m) * osz;
      for (int64_t o0 = 0; o0 < g->out[0]; o0++)
        for (int64_t o1 = 0; o1 < g->out[1]; o1++)
          for (int64_t o2 = 0; o2 < g->out[2]; o2++) {
            double acc = bias ? bias[m] : 0;
            for (int64_t c = 0; c < Cg; c++) {
              const double *xc = x + (n * C + gi * Cg + c) * isz;
              const double *wc = w + (m * Cg + c) * ksz;
              for (int64_t k0 = 0; k0 < g->k[0]; k0++) {
                int64_t i0 = o0 * g->s[0] - g->pb[0] + k0 * g->d[0];
                if (i0 < 0 || i0 >= g->in[0])
                  continue;
                for (int64_t k1 = 0; k1 < g->k[1]; k1++) {
                  int64_t i1 = o1 * g->s[1] - g->pb[1] + k1 * g->d[1];
                  if (i1 < 0 || i1 >= g->in[1])
                    continue;
                  for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
                    int64_t i2 = o2 * g->s[2] - g->pb[2] + k2 * g->d[2];
                    if (i2 < 0 || i2 >= g->in[2])
                      continue;
                    acc += xc[(i0 * g->in[1] + i1) * g->in[2] + i2] *
                           wc[(k0 * g->k[1] + k1) * g->k[2] + k2];
                  }
                }
              }
            }
            yo[(o0 * g->out[1] + o1) * g->out[2] + o2] = acc;
          }
    }
}

/* Checks X/W shapes of a convolution and builds its geometry. */
static tc_status conv_setup(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *w, geom *g,
                            int64_t *group) {
  if (!x || !w)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and W are required");
  if (w->rank != x->rank)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "W has rank %zu, X rank %zu", w->rank, x->rank);
  *group = tc_attr_int(k->node, "group", 1);
  if (x->rank < 3)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must have rank 3 or more");
  if (*group <= 0 || x->dims[1] % *group || w->dims[0] % *group ||
      w->dims[1] * *group != x->dims[1])
    return tc_kernel_fail(
        k, TC_STATUS_INVALID, "channels do not match: X has %lld, W %lldx%lld, group %lld",
        (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1], (long long)*group);
  return make_geom(k, x, w->dims + 2, G_CONV, g);
}

/* The oneDNN spec of a float32 convolution with geometry g. */
static void conv_spec(const geom *g, int64_t N, int64_t C, int64_t M, int64_t group,
                      bool transposed, tc_conv_spec *c) {
  memset(c, 0, sizeof *c);
  c->transposed = transposed;
  c->nsp = g->nsp;
  c->N = N, c->C = C, c->M = M, c->group = group;
  for (size_t i = 0; i < SP; i++) {
    c->in[i] = g->in[i], c->k[i] = g->k[i], c->out[i] = g->out[i];
    c->s[i] = g->s[i], c->d[i] = g->d[i], c->pb[i] = g->pb[i], c->pe[i] = g->pe[i];
  }
}

bool tc_conv_node_spec(const tc_node *n, int64_t opset, const tc_rt_tensor *x,
                       const tc_rt_tensor *w, tc_conv_spec *c) {
  tc_diag d = {0};
  tc_kernel_ctx k = {.node = n, .opset = opset, .diag = &d};
  geom g;
  int64_t group;
  if (!x || !w || x->dtype != TC_DTYPE_F32 || w->dtype != TC_DTYPE_F32 ||
      conv_setup(&k, x, w, &g, &group) != TC_STATUS_OK)
    return false;
  conv_spec(&g, x->dims[0], x->dims[1], w->dims[0], group, false, c);
  return true;
}

/* The node's W value (the oneDNN path caches reordered initializers). */
static const tc_value *w_value(const tc_kernel_ctx *k) {
  return k->node && k->node->n_inputs > 1 ? k->node->inputs[1] : NULL;
}

/* ---- FusedConv activations (com.microsoft.FusedConv; more in ai.tacoc) ---- */

typedef struct act_spec {
  tc_conv_act kind;
  float alpha, beta;
} act_spec;

static const struct {
  const char *name;
  tc_conv_act kind;
  ptrdiff_t n_params; /* -1: activation_params ignored */
  bool tacoc_only;
} acts[] = {
    {"Relu", TC_CONV_ACT_RELU, -1, false},
    {"Tanh", TC_CONV_ACT_TANH, -1, false},
    {"Sigmoid", TC_CONV_ACT_SIGMOID, -1, false},
    {"LeakyRelu", TC_CONV_ACT_LEAKY_RELU, 1, false},
    {"Clip", TC_CONV_ACT_CLIP, 2, false},
    {"HardSigmoid", TC_CONV_ACT_HARD_SIGMOID, 2, false},
    {"HardSwish", TC_CONV_ACT_HARD_SWISH, -1, true},
    {"Gelu", TC_CONV_ACT_GELU, -1, true},
    {"Silu", TC_CONV_ACT_SILU, -1, true},
};

enum { ACT_OK, ACT_UNKNOWN, ACT_BAD_PARAMS };

/* Reads the activation and activation_params attributes of a FusedConv node
 * as ONNX Runtime does: no activation is the identity, and the parametrized
 * ones need exactly their parameters. */
static int act_parse(const tc_node *n, act_spec *a) {
  memset(a, 0, sizeof *a);
  if (!tc_node_attr(n, "activation"))
    return ACT_OK;
  bool tacoc = tc_domain_equal(n->domain, "ai.tacoc");
  for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
    if (!attr_is(n, "activation", acts[i].name, NULL) || (acts[i].tacoc_only && !tacoc))
      continue;
    a->kind = acts[i].kind;
    const float *p;
    ptrdiff_t np = tc_attr_floats(n, "activation_params", &p);
    if (acts[i].n_params < 0)
      return ACT_OK;
    if (np != acts[i].n_params)
      return ACT_BAD_PARAMS;
    a->alpha = p[0];
    a->beta = np > 1 ? p[1] : 0;
    return ACT_OK;
  }
  return ACT_UNKNOWN;
}

static double act_apply(const act_spec *a, double v) {
  switch (a->kind) {
  case TC_CONV_ACT_NONE: return v;
  case TC_CONV_ACT_RELU: return v > 0 ? v : 0;
  case TC_CONV_ACT_LEAKY_RELU: return v >= 0 ? v : a->alpha * v;
  case TC_CONV_ACT_TANH: return tanh(v);
  case TC_CONV_ACT_SIGMOID: return 1 / (1 + exp(-v));
  case TC_CONV_ACT_CLIP: return fmin(fmax(v, a->alpha), a->beta);
  case TC_CONV_ACT_HARD_SIGMOID: return fmax(0, fmin(1, a->alpha * v + a->beta));
  case TC_CONV_ACT_HARD_SWISH: return v * fmax(0, fmin(1, v / 6 + 0.5));
  case TC_CONV_ACT_GELU:
    return 0.5 * v * erfc(-v * M_SQRT1_2); /* 1 + erf(v / sqrt 2), no cancellation */
  case TC_CONV_ACT_SILU: return v / (1 + exp(-v));
  }
  return v;
}

static const char *const fusedconv_attrs[] = {
    "activation", "activation_params", "auto_pad", "dilations", "group", "kernel_shape",
    "pads",       "strides",           NULL};

static tc_status check_fusedconv(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, fusedconv_attrs);
  if (!st)
    st = check_one_of(n, diag, "auto_pad", auto_pads);
  if (st)
    return st;
  act_spec a;
  int r = act_parse(n, &a);
  if (r == ACT_OK)
    return TC_STATUS_OK;
  const tc_attr *at = tc_node_attr(n, "activation");
  int len = (int)at->s.len;
  const char *name = (const char *)at->s.data;
  if (r == ACT_UNKNOWN)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                       "activation '%.*s' is not implemented for %s.FusedConv", len, name,
                       n->domain ? n->domain : "");
  return tc_diag_set(diag, TC_STATUS_INVALID, n->name ? n->name : "", n->op_type,
                     "activation %.*s needs %s activation_params", len, name,
                     attr_is(n, "activation", "LeakyRelu", NULL) ? "1 value in" : "2 values in");
}

/* A convolution whose kernel covers its whole unpadded input, one output
 * position per image (squeeze-excite's 1x1 convolutions on pooled
 * [N, C, 1, 1] values): y[n] = act(W x[n] + b + z[n]) as a GEMM, or a
 * matrix-vector product streaming W for one image, instead of a oneDNN
 * convolution primitive, whose per-call overhead dominates there. With one
 * input position per image the layout is the same plain or channels-last.
 * False when the shape is not such (or the GEMM declines). */
static bool dense_conv(tc_kernel_ctx *k, const geom *g, const tc_rt_tensor *x,
                       const tc_rt_tensor *w, const tc_rt_tensor *b, const tc_rt_tensor *z,
                       const act_spec *act, tc_rt_tensor *y) {
  /* channels-last x or z orders a window's elements position-major, W
   * channel-major: only one position then */
  bool nhwc = (k->nhwc_in & (1 | 8)) || (k->nhwc_out & 1);
  size_t K = (size_t)x->dims[1];
  for (size_t i = 0; i < g->nsp; i++) {
    if (g->out[i] != 1 || g->k[i] != g->in[i] || g->pb[i] || g->pe[i] || (nhwc && g->in[i] != 1))
      return false;
    K *= (size_t)g->in[i];
  }
  size_t N = (size_t)x->dims[0], M = (size_t)w->dims[0];
  float *yd = y->data;
  const float *bd = b ? b->data : NULL, *zd = z ? z->data : NULL;
  if (zd == yd) { /* y in z's memory (runtime/plan.c): z kept for the sum */
    float *keep = tc_arena_alloc(k->arena, N * M * sizeof *keep);
    if (!keep)
      return false;
    zd = memcpy(keep, zd, N * M * sizeof *keep);
  }
  if (!tc_sgemm_beta(false, true, N, M, K, 1.0f, x->data, K, w->data, K, 0.0f, yd, M))
    return false;
  for (size_t n = 0; n < N; n++)
    for (size_t m = 0; m < M; m++) {
      float v = yd[n * M + m] + (bd ? bd[m] : 0.0f);
      yd[n * M + m] = (float)act_apply(act, zd ? v + zd[n * M + m] : v);
    }
  return true;
}

/* A half tensor widened to float32 in the run's arena (NULL for NULL;
 * *oom set when memory runs out). */
static float *widened(tc_kernel_ctx *k, const tc_rt_tensor *t, bool *oom) {
  if (!t)
    return NULL;
  float *d = tc_arena_alloc(k->arena, (tc_rt_numel(t) + 1) * sizeof *d);
  if (!d)
    *oom = true;
  else
    tc_vhalf_to_f32(t->dtype, d, t->data, tc_rt_numel(t));
  return d;
}

/* Conv and FusedConv: y = act(conv(x, w) + b + z); b and z may be NULL. */
static tc_status conv_run(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *w,
                          const tc_rt_tensor *b, const tc_rt_tensor *z, const act_spec *act,
                          tc_rt_tensor *out) {
  if (x && !tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (w && w->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 1, w->dtype);
  geom g;
  int64_t group, dims[2 + SP];
  tc_status st = conv_setup(k, x, w, &g, &group);
  if (st)
    return st;
  int64_t M = w->dims[0];
  if (b && (b->dtype != x->dtype || tc_rt_numel(b) != (size_t)M))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "B must be a %lld-element tensor of X's dtype",
                          (long long)M);
  out_dims(&g, x->dims[0], M, dims);
  if (z && (z->dtype != x->dtype || z->rank != x->rank ||
            memcmp(z->dims, dims, x->rank * sizeof *dims) != 0))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Z must have the output's shape and X's dtype");
  /* channels-last operands (runtime/layout.c): x, z (input 3) and y */
  bool xn = k->nhwc_in & 1, zn = z && (k->nhwc_in & 8), yn = k->nhwc_out & 1;
  if ((xn || zn || yn) && x->rank != 4)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "a channels-last convolution needs rank-4 X");
  if ((st = tc_kernel_alloc_uninit(k, &out[0], x->dtype, x->rank, dims))) /* all written */
    return st;
  if (x->dtype == TC_DTYPE_F32 && tc_fast_kernels_enabled() && group == 1 &&
      dense_conv(k, &g, x, w, b, z, act, &out[0]))
    return TC_STATUS_OK;
  bool bf = x->dtype == TC_DTYPE_BF16, f16 = x->dtype == TC_DTYPE_F16;
  if ((x->dtype == TC_DTYPE_F32 || bf || f16) && tc_fast_kernels_enabled() && (!z || zn == yn)) {
    tc_conv_spec c;
    conv_spec(&g, x->dims[0], x->dims[1], M, group, false, &c);
    c.algo = k->conv_algo;
    c.act = act->kind, c.alpha = act->alpha, c.beta = act->beta;
    c.layout = (xn ? TC_CONV_X_NHWC : 0) | (yn ? TC_CONV_Y_NHWC : 0);
    if (bf) { /* bfloat16 on oneDNN's bfloat16 primitive, the bias widened */
      bool oom = false;
      float *bf32 = widened(k, b, &oom);
      if (oom)
        return TC_STATUS_NOMEM;
      if (tc_dnnl_bconv_run(&c, w_value(k), x->data, w->data, bf32, z ? z->data : NULL,
                            out[0].data))
        return TC_STATUS_OK;
    } else if (f16) { /* no float16 primitive on most CPUs: float32 on widened copies,
                         initializer weights widened once into the cached entry */
      bool oom = false;
      float *f[4] = {widened(k, x, &oom), NULL, widened(k, b, &oom), widened(k, z, &oom)},
            *yf = tc_arena_alloc(k->arena, (tc_rt_numel(&out[0]) + 1) * sizeof *yf);
      if (oom || !yf)
        return TC_STATUS_NOMEM;
      if (tc_dnnl_hconv_run(&c, w_value(k), f[0], w->data, f[2], f[3], yf)) {
        tc_vf32_to_f16(out[0].data, yf, tc_rt_numel(&out[0]));
        return TC_STATUS_OK;
      }
      if (!(f[1] = widened(k, w, &oom)))
        return TC_STATUS_NOMEM;
      if (tc_dnnl_conv_run(&c, NULL, f[0], f[1], f[2], f[3], yf)) {
        tc_vf32_to_f16(out[0].data, yf, tc_rt_numel(&out[0]));
        return TC_STATUS_OK;
      }
    } else if (tc_dnnl_conv_run(&c, w_value(k), x->data, w->data, b ? b->data : NULL,
                                z ? z->data : NULL, out[0].data)) {
      return TC_STATUS_OK;
    }
    if (z && z->data == out[0].data && tc_dnnl_conv_failed_running())
      return tc_kernel_fail(k, TC_STATUS_NOMEM,
                            "oneDNN stopped while running the convolution in place (Y in Z's "
                            "memory, so no other kernel can take over): out of memory?");
  }
  size_t ny = tc_rt_numel(&out[0]), nx = tc_rt_numel(x);
  bool any_nhwc = xn || zn || yn;
  double *xd = load(k, x), *wd = load(k, w), *bd = b ? load(k, b) : NULL, *yd = scratch(k, ny);
  double *zd = z ? load(k, z) : NULL, *tmp = any_nhwc ? scratch(k, ny > nx ? ny : nx) : NULL;
  if (!xd || !wd || (b && !bd) || !yd || (z && !zd) || (any_nhwc && !tmp))
    return TC_STATUS_NOMEM;
  /* the reference computes in the plain order: convert around it */
  size_t N = (size_t)x->dims[0], hw_x = any_nhwc ? (size_t)(x->dims[2] * x->dims[3]) : 0,
         hw_y = any_nhwc ? (size_t)(dims[2] * dims[3]) : 0;
  if (xn) {
    tc_layout_copy(tmp, xd, sizeof *xd, N, (size_t)x->dims[1], hw_x, false);
    memcpy(xd, tmp, nx * sizeof *xd);
  }
  if (zn) {
    tc_layout_copy(tmp, zd, sizeof *zd, N, (size_t)M, hw_y, false);
    memcpy(zd, tmp, ny * sizeof *zd);
  }
  conv_core(&g, x->dims[0], x->dims[1], M, group, xd, wd, bd, yd);
  for (size_t i = 0; i < ny; i++)
    yd[i] = act_apply(act, z ? yd[i] + zd[i] : yd[i]);
  if (yn) {
    tc_layout_copy(tmp, yd, sizeof *yd, N, (size_t)M, hw_y, true);
    memcpy(yd, tmp, ny * sizeof *yd);
  }
  store(&out[0], yd);
  return TC_STATUS_OK;
}

static tc_status run_conv(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  act_spec none = {TC_CONV_ACT_NONE, 0, 0};
  return conv_run(k, in[0], n_in > 1 ? in[1] : NULL, n_in > 2 ? in[2] : NULL, NULL, &none, out);
}

/* ai.tacoc.Conv<Act> (tacoc's fuse-conv-activation; the model carries the
 * decomposition as a function): the activation is in the op name and its
 * parameters are plain attributes (alpha, beta, min, max). */
static bool named_act(const tc_node *n, act_spec *a) {
  memset(a, 0, sizeof *a);
  if (strncmp(n->op_type, "Conv", 4) != 0)
    return false;
  /* ConvAdd<Act>: the residual Z (input 3) is added before the activation;
   * ConvAdd alone has none. */
  bool add = strncmp(n->op_type, "ConvAdd", 7) == 0;
  const char *act = n->op_type + (add ? 7 : 4);
  if (add && !*act)
    return true;
  for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
    if (strcmp(act, acts[i].name) != 0)
      continue;
    a->kind = acts[i].kind;
    if (a->kind == TC_CONV_ACT_LEAKY_RELU) {
      a->alpha = tc_attr_float(n, "alpha", 0.01f);
    } else if (a->kind == TC_CONV_ACT_HARD_SIGMOID) {
      a->alpha = tc_attr_float(n, "alpha", 0.2f);
      a->beta = tc_attr_float(n, "beta", 0.5f);
    } else if (a->kind == TC_CONV_ACT_CLIP) {
      a->alpha = tc_attr_float(n, "min", -INFINITY);
      a->beta = tc_attr_float(n, "max", INFINITY);
    }
    return true;
  }
  return false;
}

static tc_status check_named_conv(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"auto_pad", "dilations", "group", "kernel_shape",
                                   "pads",     "strides",   "alpha", "beta",
                                   "min",      "max",       NULL};
  act_spec a;
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (!st)
    st = check_one_of(n, diag, "auto_pad", auto_pads);
  if (!st && !named_act(n, &a))
    st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                     "no ai.tacoc convolution with this activation");
  return st;
}

static tc_status run_named_conv(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  act_spec act;
  named_act(k->node, &act);
  return conv_run(k, in[0], n_in > 1 ? in[1] : NULL, n_in > 2 ? in[2] : NULL,
                  n_in > 3 ? in[3] : NULL, &act, out);
}

static tc_status run_fusedconv(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  act_spec act;
  if (act_parse(k->node, &act) != ACT_OK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "this activation or its activation_params are not implemented");
  return conv_run(k, in[0], n_in > 1 ? in[1] : NULL, n_in > 2 ? in[2] : NULL,
                  n_in > 3 ? in[3] : NULL, &act, out);
}

/* ---- Gemm + activation ----
 * ai.tacoc.Gemm<Act> (tacoc's fuse-conv-activation; the model carries Gemm
 * then the activation as a function): Gemm's attributes, the activation's
 * parameters as activation_alpha / activation_beta (LeakyRelu, HardSigmoid)
 * or min / max (Clip). com.microsoft.FusedGemm (--compat ort, and ONNX
 * Runtime's own optimizer): the activation by name, parameters as
 * activation_alpha / activation_beta. Both run libtacort's Gemm, then the
 * activation on its output. */
static const char *const gemm_act_attrs[] = {
    "alpha",           "beta", "transA", "transB", "activation", "activation_alpha",
    "activation_beta", "min",  "max",    NULL};

/* The activation of a Gemm<Act> / FusedGemm node; false when unknown. */
static bool gemm_act(const tc_node *n, act_spec *a) {
  memset(a, 0, sizeof *a);
  bool fused = !strcmp(n->op_type, "FusedGemm");
  if (!fused && strncmp(n->op_type, "Gemm", 4) != 0)
    return false;
  for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
    bool hit = fused ? attr_is(n, "activation", acts[i].name, NULL) && !acts[i].tacoc_only
                     : !strcmp(n->op_type + 4, acts[i].name);
    if (!hit)
      continue;
    a->kind = acts[i].kind;
    if (a->kind == TC_CONV_ACT_LEAKY_RELU) {
      a->alpha = tc_attr_float(n, "activation_alpha", 0.01f);
    } else if (a->kind == TC_CONV_ACT_HARD_SIGMOID) {
      a->alpha = tc_attr_float(n, "activation_alpha", 0.2f);
      a->beta = tc_attr_float(n, "activation_beta", 0.5f);
    } else if (a->kind == TC_CONV_ACT_CLIP) {
      if (fused)
        return false; /* ONNX Runtime's FusedGemm has no Clip bounds */
      a->alpha = tc_attr_float(n, "min", -INFINITY);
      a->beta = tc_attr_float(n, "max", INFINITY);
    }
    return true;
  }
  return false;
}

static tc_status check_gemm_act(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  act_spec a;
  tc_status st = tc_kernel_check_attrs(n, diag, gemm_act_attrs);
  if (!st && !gemm_act(n, &a))
    st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                     "this Gemm activation is not implemented");
  return st;
}

static tc_status run_gemm_act(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  act_spec a;
  if (!gemm_act(k->node, &a))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "this Gemm activation is not implemented");
  tc_status st = tc_gemm_run(k, in, n_in, out, n_out);
  if (st)
    return st;
  if (!tc_dtype_is_float(out[0].dtype))
    return tc_kernel_bad_dtype(k, 0, out[0].dtype);
  size_t n = tc_rt_numel(&out[0]);
  if (out[0].dtype == TC_DTYPE_F32) {
    float *y = out[0].data;
    for (size_t i = 0; i < n; i++)
      y[i] = (float)act_apply(&a, y[i]);
  } else {
    for (size_t i = 0; i < n; i++)
      tc_rt_set_f64(&out[0], i, act_apply(&a, tc_rt_get_f64(&out[0], i)));
  }
  return TC_STATUS_OK;
}

/* ---- Col2Im (opset 18) ----
 * The inverse of im2col, summing overlaps: x [N, C * prod(block), L] with L
 * the number of sliding blocks over the padded image, image_shape and
 * block_shape 1-D int64 inputs; y [N, C, image...] where column (c, k) of
 * block b adds to position b * stride - pad_begin + k * dilation when that
 * lies inside the image. Any number of spatial dims; in double. */
static tc_status check_col2im(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"dilations", "pads", "strides", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_col2im(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *is = n_in > 1 ? in[1] : NULL, *bs = n_in > 2 ? in[2] : NULL;
  if (!x || !is || !bs)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input, image_shape and block_shape are required");
  if (!tc_dtype_is_float(x->dtype) && !tc_dtype_is_int(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  size_t nd = tc_rt_numel(is);
  if (x->rank != 3 || is->rank != 1 || bs->rank != 1 || tc_rt_numel(bs) != nd || nd < 1 ||
      nd + 2 > TC_MAX_RANK || !tc_dtype_is_int(is->dtype) || !tc_dtype_is_int(bs->dtype))
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "input must be [N, C * prod(block), L], image_shape and block_shape "
                          "1-D integers of one length");
  const int64_t *dil, *pads, *str;
  ptrdiff_t nd_d = tc_attr_ints(k->node, "dilations", &dil),
            np = tc_attr_ints(k->node, "pads", &pads), ns = tc_attr_ints(k->node, "strides", &str);
  if ((nd_d >= 0 && (size_t)nd_d != nd) || (np >= 0 && (size_t)np != 2 * nd) ||
      (ns >= 0 && (size_t)ns != nd))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "dilations, pads and strides must match %zu dims",
                          nd);
  int64_t img[TC_MAX_RANK], blk[TC_MAX_RANK], nb[TC_MAX_RANK], kprod = 1, L = 1;
  for (size_t i = 0; i < nd; i++) {
    img[i] = tc_rt_get_i64(is, i);
    blk[i] = tc_rt_get_i64(bs, i);
    int64_t d = nd_d >= 0 ? dil[i] : 1, s = ns >= 0 ? str[i] : 1, pb = np >= 0 ? pads[i] : 0,
            pe = np >= 0 ? pads[i + nd] : 0;
    if (img[i] <= 0 || blk[i] <= 0 || d <= 0 || s <= 0 || pb < 0 || pe < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "sizes, dilations and strides must be positive");
    nb[i] = (img[i] + pb + pe - d * (blk[i] - 1) - 1) / s + 1;
    if (nb[i] < 1)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "no sliding block fits dim %zu", i);
    kprod *= blk[i];
    L *= nb[i];
  }
  if (x->dims[1] % kprod || x->dims[2] != L)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "input is [%lld, %lld, %lld]; expected dim 1 a multiple of %lld and "
                          "dim 2 %lld (the sliding blocks)",
                          (long long)x->dims[0], (long long)x->dims[1], (long long)x->dims[2],
                          (long long)kprod, (long long)L);
  int64_t N = x->dims[0], C = x->dims[1] / kprod, dims[TC_MAX_RANK], isz = 1;
  dims[0] = N, dims[1] = C;
  for (size_t i = 0; i < nd; i++)
    dims[2 + i] = img[i], isz *= img[i];
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, nd + 2, dims);
  double *acc = st ? NULL : scratch(k, (size_t)(N * C * isz));
  if (st || !acc)
    return st ? st : TC_STATUS_NOMEM;
  for (int64_t nc = 0; nc < N * C; nc++)
    for (int64_t kk = 0; kk < kprod; kk++)
      for (int64_t b = 0; b < L; b++) {
        /* kernel offset and block index per dim, last dim fastest */
        int64_t kr = kk, br = b, pos = 0, mul = 1;
        bool inside = true;
        for (size_t i = nd; i-- > 0;) {
          int64_t ki = kr % blk[i], bi = br % nb[i];
          kr /= blk[i], br /= nb[i];
          int64_t p =
              bi * (ns >= 0 ? str[i] : 1) - (np >= 0 ? pads[i] : 0) + ki * (nd_d >= 0 ? dil[i] : 1);
          inside &= p >= 0 && p < img[i];
          pos += p * mul;
          mul *= img[i];
        }
        if (inside)
          acc[nc * isz + pos] +=
              tc_rt_get_f64(x, (size_t)(((nc / C) * C * kprod + (nc % C) * kprod + kk) * L + b));
      }
  store(&out[0], acc);
  return TC_STATUS_OK;
}

/* ---- DeformConv (opset 19), 2-D ----
 * A convolution whose taps move: for output (i, j) and kernel tap (a, b) of
 * offset group g, X is read at (i s_h - pad_top + a d_h + dh, j s_w -
 * pad_left + b d_w + dw) with (dh, dw) from offset [N, groups * kh * kw * 2,
 * oh, ow], bilinearly (zero outside the image), scaled by mask [N, groups *
 * kh * kw, oh, ow] (ones when absent), times W [M, C / group, kh, kw], plus
 * B. The output's spatial size is the offset's. In double. */
static tc_status check_deform_conv(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"dilations", "group", "kernel_shape", "offset_group", "pads",
                                   "strides",   NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* X[y, x] of one channel plane, 0 outside. */
static double plane_at(const tc_rt_tensor *x, size_t base, int64_t H, int64_t W, int64_t y,
                       int64_t xx) {
  return y < 0 || y >= H || xx < 0 || xx >= W ? 0.0 : tc_rt_get_f64(x, base + (size_t)(y * W + xx));
}

static tc_status run_deform_conv(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *w = n_in > 1 ? in[1] : NULL, *off = n_in > 2 ? in[2] : NULL,
                     *b = n_in > 3 ? in[3] : NULL, *mask = n_in > 4 ? in[4] : NULL;
  if (!x || !w || !off)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X, W and offset are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (x->rank != 4 || w->rank != 4 || off->rank != 4)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "only 2-D deformable convolutions are "
                          "implemented (X, W and offset of rank 4)");
  const tc_node *n = k->node;
  int64_t N = x->dims[0], C = x->dims[1], H = x->dims[2], Wd = x->dims[3], M = w->dims[0];
  int64_t group = tc_attr_int(n, "group", 1), og = tc_attr_int(n, "offset_group", 1);
  int64_t kh = w->dims[2], kw = w->dims[3], oh = off->dims[2], ow = off->dims[3];
  const int64_t *v;
  int64_t st[2] = {1, 1}, dl[2] = {1, 1}, pd[4] = {0, 0, 0, 0};
  if (tc_attr_ints(n, "strides", &v) == 2)
    st[0] = v[0], st[1] = v[1];
  if (tc_attr_ints(n, "dilations", &v) == 2)
    dl[0] = v[0], dl[1] = v[1];
  if (tc_attr_ints(n, "pads", &v) == 4)
    memcpy(pd, v, sizeof pd);
  if (tc_attr_ints(n, "kernel_shape", &v) == 2 && (v[0] != kh || v[1] != kw))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "kernel_shape does not match W");
  if (group <= 0 || og <= 0 || C != w->dims[1] * group || M % group || C % og ||
      off->dims[0] != N || off->dims[1] != og * kh * kw * 2 || st[0] <= 0 || st[1] <= 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "X, W, offset, group and offset_group do not fit together");
  if (mask && (mask->rank != 4 || mask->dims[0] != N || mask->dims[1] != og * kh * kw ||
               mask->dims[2] != oh || mask->dims[3] != ow))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "mask must be [N, offset_group * kh * kw, oh, ow]");
  if (b && tc_rt_numel(b) != (size_t)M)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "B must hold %lld values", (long long)M);
  int64_t dims[4] = {N, M, oh, ow};
  tc_status s = tc_kernel_alloc_uninit(k, &out[0], x->dtype, 4, dims);
  if (s)
    return s;
  int64_t cg = C / group, mg = M / group, cog = C / og, taps = kh * kw;
  for (int64_t bn = 0; bn < N; bn++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t i = 0; i < oh; i++)
        for (int64_t j = 0; j < ow; j++) {
          double acc = b ? tc_rt_get_f64(b, (size_t)m) : 0.0;
          for (int64_t ci = 0; ci < cg; ci++) {
            int64_t c = (m / mg) * cg + ci, g = c / cog;
            size_t plane = (size_t)((bn * C + c) * H * Wd);
            for (int64_t t = 0; t < taps; t++) {
              int64_t a = t / kw, bb = t % kw;
              size_t oi = (size_t)((((bn * og + g) * taps + t) * 2) * oh * ow + i * ow + j);
              double py = (double)(i * st[0] - pd[0] + a * dl[0]) + tc_rt_get_f64(off, oi),
                     px = (double)(j * st[1] - pd[1] + bb * dl[1]) +
                          tc_rt_get_f64(off, oi + (size_t)(oh * ow));
              double y0 = floor(py), x0 = floor(px), ly = py - y0, lx = px - x0;
              int64_t iy = (int64_t)y0, ix = (int64_t)x0;
              double val = (1 - ly) * (1 - lx) * plane_at(x, plane, H, Wd, iy, ix) +
                           (1 - ly) * lx * plane_at(x, plane, H, Wd, iy, ix + 1) +
                           ly * (1 - lx) * plane_at(x, plane, H, Wd, iy + 1, ix) +
                           ly * lx * plane_at(x, plane, H, Wd, iy + 1, ix + 1);
              if (mask)
                val *= tc_rt_get_f64(mask,
                                     (size_t)(((bn * og + g) * taps + t) * oh * ow + i * ow + j));
              acc += val * tc_rt_get_f64(w, (size_t)((m * cg + ci) * taps + t));
            }
          }
          tc_rt_set_f64(&out[0], (size_t)(((bn * M + m) * oh + i) * ow + j), acc);
        }
  return TC_STATUS_OK;
}

/* ---- CausalConvWithState (opset 27) ----
 * A causal depthwise 1-D convolution carrying state across calls (Mamba,
 * Gated DeltaNet, streaming speech): x [B, C, L], w [C, 1, K], bias [C]?,
 * past [B, C, K-1]? (zeros when absent). Over padded = past ++ x along the
 * length, y[b, c, t] = bias[c] + sum_j w[c, 0, j] padded[b, c, t + j], then
 * SiLU when activation is "silu" / "swish"; present = the last K-1 positions
 * of padded. Computed in double, rounded once. */
static bool causal_silu(const tc_node *n) {
  return attr_is(n, "activation", "silu", "none") || attr_is(n, "activation", "swish", "none");
}

static tc_status check_causal_conv(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"activation", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (!st && !attr_is(n, "activation", "none", "none") && !causal_silu(n))
    st = refuse(n, diag, "%s: only none, silu and swish are defined", "activation");
  return st;
}

static tc_status run_causal_conv(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  const tc_rt_tensor *x = in[0], *w = n_in > 1 ? in[1] : NULL, *b = n_in > 2 ? in[2] : NULL,
                     *past = n_in > 3 ? in[3] : NULL;
  if (!x || !w)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input and weight are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (w->dtype != x->dtype || (b && b->dtype != x->dtype) || (past && past->dtype != x->dtype))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "inputs must share the input's dtype");
  if (x->rank != 3 || w->rank != 3 || w->dims[0] != x->dims[1] || w->dims[1] != 1 || w->dims[2] < 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "input must be [B, C, L] and weight [C, 1, K] with K >= 1");
  int64_t B = x->dims[0], C = x->dims[1], L = x->dims[2], K = w->dims[2];
  if (b && tc_rt_numel(b) != (size_t)C)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "bias must hold %lld values", (long long)C);
  if (past &&
      (past->rank != 3 || past->dims[0] != B || past->dims[1] != C || past->dims[2] != K - 1))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "past_state must be [%lld, %lld, %lld]",
                          (long long)B, (long long)C, (long long)(K - 1));
  bool silu = causal_silu(k->node);
  int64_t ydims[3] = {B, C, L}, sdims[3] = {B, C, K - 1};
  tc_status st = tc_kernel_alloc_uninit(k, &out[0], x->dtype, 3, ydims);
  if (!st && n_out > 1)
    st = tc_kernel_alloc_uninit(k, &out[1], x->dtype, 3, sdims);
  if (st)
    return st;
  double *row = scratch(k, (size_t)(K - 1 + L));
  if (!row)
    return TC_STATUS_NOMEM;
  for (int64_t bc = 0; bc < B * C; bc++) {
    int64_t c = bc % C;
    for (int64_t i = 0; i < K - 1; i++)
      row[i] = past ? tc_rt_get_f64(past, (size_t)(bc * (K - 1) + i)) : 0.0;
    for (int64_t t = 0; t < L; t++)
      row[K - 1 + t] = tc_rt_get_f64(x, (size_t)(bc * L + t));
    for (int64_t t = 0; t < L; t++) {
      double acc = b ? tc_rt_get_f64(b, (size_t)c) : 0.0;
      for (int64_t j = 0; j < K; j++)
        acc += tc_rt_get_f64(w, (size_t)(c * K + j)) * row[t + j];
      tc_rt_set_f64(&out[0], (size_t)(bc * L + t), silu ? acc / (1.0 + exp(-acc)) : acc);
    }
    for (int64_t i = 0; n_out > 1 && i < K - 1; i++)
      tc_rt_set_f64(&out[1], (size_t)(bc * (K - 1) + i), row[L + i]);
  }
  return TC_STATUS_OK;
}

/* ---- ConvTranspose ---- */

static const char *const convt_attrs[] = {"auto_pad",     "dilations",      "group",
                                          "kernel_shape", "output_padding", "output_shape",
                                          "pads",         "strides",        NULL};

static tc_status check_convt(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, convt_attrs);
  return st ? st : check_one_of(n, diag, "auto_pad", auto_pads);
}

/* A float32 ConvTranspose whose kernel tiles its output (kernel == stride
 * on every axis, dilation 1, no padding or output padding, one group; the
 * 2x2-stride-2 upsampling of detection heads): each input position writes
 * its own kh x kw patch of every output channel, so an image is one GEMM,
 * T[(m, a, b), p] = sum_c W[c, (m, a, b)] X[c, p], whose rows are then
 * placed (depth to space) with the bias. oneDNN's deconvolution pads a
 * single output channel to 16 and reorders both sides: PP-OCRv4's 24 -> 1
 * one at 640x640 took 7.5 ms, this about 0.3. False when the case is not
 * such or memory runs out. */
static bool convt_tiled(tc_kernel_ctx *k, const geom *g, int64_t group, const int64_t *opad,
                        const tc_rt_tensor *x, const tc_rt_tensor *w, const tc_rt_tensor *b,
                        tc_rt_tensor *y) {
  if (x->dtype != TC_DTYPE_F32 || group != 1 || g->nsp != 2)
    return false;
  for (size_t i = 0; i < 2; i++)
    if (g->k[i] != g->s[i] || g->d[i] != 1 || g->pb[i] || g->pe[i] || opad[i] ||
        g->out[i] != g->in[i] * g->s[i])
      return false;
  size_t N = (size_t)x->dims[0], C = (size_t)x->dims[1], M = (size_t)w->dims[1];
  size_t H = (size_t)g->in[0], W = (size_t)g->in[1], kh = (size_t)g->k[0], kw = (size_t)g->k[1];
  size_t rows = M * kh * kw, hw = H * W;
  float *t = tc_arena_alloc(k->arena, (rows * hw + 1) * sizeof *t);
  if (!t)
    return false;
  const float *bias = b ? b->data : NULL;
  for (size_t n = 0; n < N; n++) {
    const float *xn = (const float *)x->data + n * C * hw;
    if (!tc_sgemm(true, false, rows, hw, C, w->data, xn, t))
      return false;
    float *yn = (float *)y->data + n * M * hw * kh * kw;
    for (size_t m = 0; m < M; m++) {
      float bm = bias ? bias[m] : 0.0f;
      for (size_t i = 0; i < H; i++)
        for (size_t a = 0; a < kh; a++) {
          float *yr = yn + (m * H * kh + i * kh + a) * W * kw;
          for (size_t bb = 0; bb < kw; bb++) {
            const float *tr = t + ((m * kh + a) * kw + bb) * hw + i * W;
            for (size_t j = 0; j < W; j++)
              yr[j * kw + bb] = tr[j] + bm;
          }
        }
    }
  }
  return true;
}

static tc_status run_convt(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *w = n_in > 1 ? in[1] : NULL, *b = n_in > 2 ? in[2] : NULL;
  if (!x || !w)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and W are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (w->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 1, w->dtype);
  if (x->rank < 3 || x->rank > 2 + SP || w->rank != x->rank)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "X rank %zu, W rank %zu: 1 to 3 spatial dims are implemented", x->rank,
                          w->rank);
  int64_t group = tc_attr_int(k->node, "group", 1);
  int64_t C = x->dims[1];
  if (group <= 0 || C % group || w->dims[0] != C)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "W has %lld input channels, X %lld (group %lld)",
                          (long long)w->dims[0], (long long)C, (long long)group);
  int64_t Mg = w->dims[1], M = Mg * group, Cg = C / group;
  size_t nsp = x->rank - 2;
  geom g;
  g.nsp = nsp;
  int64_t pads[2 * SP], opad[SP];
  tc_status st;
  if ((st = ints_attr(k, "strides", nsp, 1, g.s)) ||
      (st = ints_attr(k, "dilations", nsp, 1, g.d)) ||
      (st = ints_attr(k, "pads", 2 * nsp, 0, pads)) ||
      (st = ints_attr(k, "output_padding", nsp, 0, opad)))
    return st;
  const int64_t *ks, *os;
  ptrdiff_t nks = tc_attr_ints(k->node, "kernel_shape", &ks);
  ptrdiff_t nos = tc_attr_ints(k->node, "output_shape", &os);
  if (nks >= 0 && (size_t)nks != nsp)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "kernel_shape has %td entries", nks);
  if (nos >= 0 && (size_t)nos != nsp && (size_t)nos != nsp + 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "output_shape has %td entries", nos);
  if (nos >= 0 && (size_t)nos == nsp + 2)
    os += 2;
  const tc_node *n = k->node;
  bool same =
      attr_is(n, "auto_pad", "SAME_UPPER", NULL) || attr_is(n, "auto_pad", "SAME_LOWER", NULL);
  bool upper = attr_is(n, "auto_pad", "SAME_UPPER", NULL);
  bool valid = attr_is(n, "auto_pad", "VALID", NULL);
  for (size_t i = 0; i < SP; i++) {
    if (i >= nsp) {
      g.in[i] = g.k[i] = g.s[i] = g.d[i] = g.out[i] = 1;
      g.pb[i] = g.pe[i] = 0;
      continue;
    }
    g.in[i] = x->dims[2 + i];
    g.k[i] = w->dims[2 + i];
    if (nks >= 0 && ks[i] != g.k[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "kernel_shape does not match W");
    if (g.s[i] <= 0 || g.d[i] <= 0 || opad[i] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "strides and dilations must be positive");
    int64_t dk = (g.k[i] - 1) * g.d[i] + 1;
    int64_t full = g.s[i] * (g.in[i] - 1) + opad[i] + dk;
    if (nos >= 0 || same) {
      g.out[i] = nos >= 0 ? os[i] : g.in[i] * g.s[i];
      if (same || nos >= 0) {
        int64_t total = full - g.out[i];
        if (nos >= 0 && !same && tc_attr_has(n, "pads")) {
          g.pb[i] = pads[i];
          g.pe[i] = pads[nsp + i];
        } else {
          if (total < 0)
            total = 0;
          g.pb[i] = upper ? total / 2 : total - total / 2;
          g.pe[i] = total - g.pb[i];
        }
      }
    } else {
      g.pb[i] = valid ? 0 : pads[i];
      g.pe[i] = valid ? 0 : pads[nsp + i];
      g.out[i] = full - g.pb[i] - g.pe[i];
    }
    if (g.out[i] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "output dim %zu would be negative", i);
  }
  if (b && (b->dtype != x->dtype || tc_rt_numel(b) != (size_t)M))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "B must be a %lld-element tensor of X's dtype",
                          (long long)M);
  int64_t dims[2 + SP], N = x->dims[0];
  out_dims(&g, N, M, dims);
  if ((st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, dims)))
    return st;
  if (x->dtype == TC_DTYPE_F32 && tc_fast_kernels_enabled() &&
      convt_tiled(k, &g, group, opad, x, w, b, &out[0]))
    return TC_STATUS_OK;
  if (x->dtype == TC_DTYPE_F32 && tc_fast_kernels_enabled()) {
    tc_conv_spec c;
    conv_spec(&g, N, C, M, group, true, &c);
    if (tc_dnnl_conv_run(&c, w_value(k), x->data, w->data, b ? b->data : NULL, NULL, out[0].data))
      return TC_STATUS_OK;
  }
  double *xd = load(k, x), *wd = load(k, w), *bd = b ? load(k, b) : NULL,
         *yd = scratch(k, tc_rt_numel(&out[0]));
  if (!xd || !wd || (b && !bd) || !yd)
    return TC_STATUS_NOMEM;
  int64_t isz = g.in[0] * g.in[1] * g.in[2], ksz = g.k[0] * g.k[1] * g.k[2];
  int64_t osz = g.out[0] * g.out[1] * g.out[2];
  for (int64_t nn = 0; nn < N; nn++)
    for (int64_t m = 0; m < M; m++)
      for (int64_t o = 0; o < osz; o++)
        yd[(nn * M + m) * osz + o] = bd ? bd[m] : 0;
  for (int64_t nn = 0; nn < N; nn++)
    for (int64_t ci = 0; ci < C; ci++) {
      int64_t gi = ci / Cg;
      const double *xc = xd + (nn * C + ci) * isz;
      for (int64_t m = 0; m < Mg; m++) {
        const double *wc = wd + (ci * Mg + m) * ksz;
        double *yo = yd + (nn * M + gi * Mg + m) * osz;
        for (int64_t i0 = 0; i0 < g.in[0]; i0++)
          for (int64_t i1 = 0; i1 < g.in[1]; i1++)
            for (int64_t i2 = 0; i2 < g.in[2]; i2++) {
              double xv = xc[(i0 * g.in[1] + i1) * g.in[2] + i2];
              for (int64_t k0 = 0; k0 < g.k[0]; k0++) {
                int64_t o0 = i0 * g.s[0] - g.pb[0] + k0 * g.d[0];
                if (o0 < 0 || o0 >= g.out[0])
                  continue;
                for (int64_t k1 = 0; k1 < g.k[1]; k1++) {
                  int64_t o1 = i1 * g.s[1] - g.pb[1] + k1 * g.d[1];
                  if (o1 < 0 || o1 >= g.out[1])
                    continue;
                  for (int64_t k2 = 0; k2 < g.k[2]; k2++) {
                    int64_t o2 = i2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                    if (o2 < 0 || o2 >= g.out[2])
                      continue;
                    yo[(o0 * g.out[1] + o1) * g.out[2] + o2] +=
                        xv * wc[(k0 * g.k[1] + k1) * g.k[2] + k2];
                  }
                }
              }
            }
      }
    }
  store(&out[0], yd);
  return TC_STATUS_OK;
}

/* ---- pooling ---- */

enum { P_MAX, P_AVG, P_LP };

static const char *const maxpool_attrs[] = {
    "auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "storage_order", "strides", NULL};
static const char *const avgpool_attrs[] = {
    "auto_pad",     "ceil_mode", "count_include_pad", "dilations",
    "kernel_shape", "pads",      "strides",           NULL};
static const char *const lppool_attrs[] = {"auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                           "p",        "pads",      "strides",   NULL};

static tc_status check_pool_common(const tc_node *n, tc_diag *diag, const char *const *known) {
  tc_status st = tc_kernel_check_attrs(n, diag, known);
  if (!st)
    st = check_one_of(n, diag, "auto_pad", auto_pads);
  if (!st && !tc_attr_has(n, "kernel_shape"))
    st = refuse(n, diag, "%s: the kernel_shape attribute is required", "pooling");
  return st;
}

static tc_status check_maxpool(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = check_pool_common(n, diag, maxpool_attrs);
  int64_t so = tc_attr_int(n, "storage_order", 0);
  if (!st && so != 0 && so != 1)
    st = refuse(n, diag, "%s: only 0 and 1 are defined", "storage_order");
  return st;
}

static tc_status check_avgpool(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  return check_pool_common(n, diag, avgpool_attrs);
}

static tc_status check_lppool(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  return check_pool_common(n, diag, lppool_attrs);
}

static double dtype_lowest(int32_t dt) {
  switch (dt) {
  case TC_DTYPE_U8: return 0;
  case TC_DTYPE_I8: return -128;
  default: return -INFINITY;
  }
}

/* Float32 MaxPool / AveragePool without indices: the reference's windows
 * and rules (a NaN in the window makes the max NaN; an empty window is the lowest value;
 * averages over the valid or, with count_include_pad, the padded window),
 * sums in double, planes (n, c) in parallel. */
typedef struct pool32_job {
  const float *x;
  float *y;
  geom g;
  int kind;
  bool include_pad;
  float lowest;
  /* maxpool2d_planes: per piece two rows of in[1] + 32 floats, column and
   * window maxima (avgpool2d_planes: doubles, sums); the column tap ranges
   * [cb, ce) of every output column */
  float *rows;
  double *sums;
  int64_t *cb, *ce;
} pool32_job;

static tc_par_fn maxpool2d_planes(void);
static tc_par_fn avgpool2d_planes(void);

/* A float32 linear or cubic Resize of the last two axes (rs_separable): per
 * output row the first input row of its taps (sh), per output column its
 * taps' input columns, clamped (sw, nw per column), and their weights (nh /
 * nw per output); rows: per piece, W doubles. */
typedef struct rs_sep {
  const float *x;
  float *y;
  int64_t H, W, OH, OW;
  int nh, nw;
  const int64_t *sh, *sw;
  const double *wh, *ww;
  double *rows;
} rs_sep;

static tc_par_fn rs_sep_planes(void);

/* The kernel taps [*b, *e) of output position o along one axis that land
 * inside the input (no per-tap bounds checks in the loops). */
static void tap_range(const geom *g, size_t a, int64_t o, int64_t *b, int64_t *e) {
  int64_t base = o * g->s[a] - g->pb[a];
  *b = 0;
  while (*b < g->k[a] && base + *b * g->d[a] < 0)
    (*b)++;
  *e = g->k[a];
  while (*e > *b && base + (*e - 1) * g->d[a] >= g->in[a])
    (*e)--;
}

/* Taps of output o along axis a inside the padded input (count_include_pad). */
static int64_t padded_taps(const geom *g, size_t a, int64_t o) {
  int64_t c = 0;
  for (int64_t kk = 0; kk < g->k[a]; kk++) {
    int64_t i = o * g->s[a] - g->pb[a] + kk * g->d[a];
    c += i >= -g->pb[a] && i < g->in[a] + g->pe[a];
  }
  return c;
}

static void pool32_planes(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const pool32_job *j = ctx;
  const geom *g = &j->g;
  int64_t isz = g->in[0] * g->in[1] * g->in[2], osz = g->out[0] * g->out[1] * g->out[2];
  bool max = j->kind == P_MAX;
  for (size_t nc = lo; nc < hi; nc++) {
    const float *xc = j->x + (int64_t)nc * isz;
    float *yc = j->y + (int64_t)nc * osz;
    for (int64_t o0 = 0; o0 < g->out[0]; o0++) {
      int64_t b0, e0;
      tap_range(g, 0, o0, &b0, &e0);
      for (int64_t o1 = 0; o1 < g->out[1]; o1++) {
        int64_t b1, e1;
        tap_range(g, 1, o1, &b1, &e1);
        for (int64_t o2 = 0; o2 < g->out[2]; o2++) {
          int64_t b2, e2;
          tap_range(g, 2, o2, &b2, &e2);
          int64_t cnt = (e0 - b0) * (e1 - b1) * (e2 - b2);
          float r;
          if (max) {
            float mx = -INFINITY;
            bool nan = false;
            for (int64_t k0 = b0; k0 < e0; k0++)
              for (int64_t k1 = b1; k1 < e1; k1++) {
                const float *row = xc +
                                   ((o0 * g->s[0] - g->pb[0] + k0 * g->d[0]) * g->in[1] +
                                    o1 * g->s[1] - g->pb[1] + k1 * g->d[1]) *
                                       g->in[2] +
                                   o2 * g->s[2] - g->pb[2];
                for (int64_t k2 = b2; k2 < e2; k2++) {
                  float v = row[k2 * g->d[2]];
                  mx = v > mx ? v : mx;
                  nan |= v != v; /* a NaN in the window makes the max NaN */
                }
              }
            r = !cnt ? j->lowest : nan ? NAN : mx;
          } else {
            double sum = 0;
            for (int64_t k0 = b0; k0 < e0; k0++)
              for (int64_t k1 = b1; k1 < e1; k1++) {
                const float *row = xc +
                                   ((o0 * g->s[0] - g->pb[0] + k0 * g->d[0]) * g->in[1] +
                                    o1 * g->s[1] - g->pb[1] + k1 * g->d[1]) *
                                       g->in[2] +
                                   o2 * g->s[2] - g->pb[2];
                for (int64_t k2 = b2; k2 < e2; k2++)
                  sum += row[k2 * g->d[2]];
              }
            int64_t div = j->include_pad ? padded_taps(g, 0, o0) * padded_taps(g, 1, o1) *
                                               padded_taps(g, 2, o2)
                                         : cnt;
            r = div ? (float)(sum / (double)div) : NAN;
          }
          yc[(o0 * g->out[1] + o1) * g->out[2] + o2] = r;
        }
      }
    }
  }
}

/* Float32 2-D MaxPool on channels-last x and y (runtime/layout.c): each
 * output position is the lane-wise max of its window's channel vectors,
 * with the reference's rules (NaN wins, an empty window is the lowest). */
typedef struct maxpool_nhwc_job {
  const float *x;
  float *y;
  geom g;
  size_t C;
} maxpool_nhwc_job;

static void maxpool_nhwc_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const maxpool_nhwc_job *j = ctx;
  const geom *g = &j->g;
  size_t C = j->C;
  for (size_t r = lo; r < hi; r++) { /* r: image n, output row o0 */
    int64_t n = (int64_t)r / g->out[0], o0 = (int64_t)r % g->out[0], b0, e0;
    tap_range(g, 0, o0, &b0, &e0);
    for (int64_t o1 = 0; o1 < g->out[1]; o1++) {
      int64_t b1, e1;
      tap_range(g, 1, o1, &b1, &e1);
      float *y = j->y + ((n * g->out[0] + o0) * g->out[1] + o1) * (int64_t)C;
      bool first = true;
      ptrdiff_t off[64]; /* up to 64 taps: the window's channel vectors in one pass */
      size_t taps = 0;
      bool many = (e0 - b0) * (e1 - b1) > 64;
      for (int64_t k0 = b0; k0 < e0; k0++)
        for (int64_t k1 = b1; k1 < e1; k1++) {
          int64_t i0 = o0 * g->s[0] - g->pb[0] + k0 * g->d[0],
                  i1 = o1 * g->s[1] - g->pb[1] + k1 * g->d[1];
          int64_t at = ((n * g->in[0] + i0) * g->in[1] + i1) * (int64_t)C;
          if (!many) {
            off[taps++] = (ptrdiff_t)at;
          } else if (first) {
            memcpy(y, j->x + at, C * sizeof *y);
          } else {
            tc_vbinary_f32(y, y, j->x + at, C, 'M');
          }
          first = false;
        }
      if (taps)
        tc_vmax_taps_f32(y, j->x, off, taps, C);
      for (size_t c = 0; first && c < C; c++)
        y[c] = -INFINITY;
    }
  }
}

/* Float32 2-D AveragePool on channels-last x and y (runtime/layout.c):
 * each output position's channel vector is its window's channel vectors
 * summed in double, divided by the valid (or, with count_include_pad, the
 * padded) taps, as the plain kernels (avgpool_nhwc_rows in conv_vec.h). */
typedef struct avgpool_nhwc_job {
  const float *x;
  float *y;
  geom g;
  size_t C;
  bool include_pad;
} avgpool_nhwc_job;

static tc_par_fn avgpool_nhwc_rows(void);

/* 8-bit 2-D MaxPool on channels-last x and y (a QDQ model's pooling between
 * int8 convolutions, runtime/qdq.c): each output position's channel bytes
 * the bytewise max of its window's, int8 compared as uint8 after flipping
 * the sign bit; an empty window gives the lowest value, as pool32_planes. */
typedef struct maxpool8_nhwc_job {
  const uint8_t *x;
  uint8_t *y;
  geom g;
  size_t C;
  uint8_t flip; /* 0x80 for int8 */
} maxpool8_nhwc_job;

static tc_par_fn maxpool8_nhwc_rows(void);

/* (vector loops defined with the quantizers below) */
static void quantize_f32(const float *x, size_t n, float scale, float zp, int32_t odt, void *y);
static void dequantize_q8(const void *x, int32_t dt, size_t n, float scale, float zp, float *y);

/* The float32 x and y a pooling loop reads and writes: the tensors' own
 * data, or for bfloat16 / float16 and 8-bit MaxPool a widened copy of x and
 * a float32 y the caller rounds (narrows, exactly) into out (pool_result).
 * False when memory runs out. */
static bool pool_operands(tc_kernel_ctx *k, const tc_rt_tensor *x, tc_rt_tensor *out,
                          const float **xf, float **yf) {
  *xf = x->data;
  *yf = out->data;
  if (!tc_dtype_is_half(x->dtype) && !is_q8(x->dtype))
    return true;
  bool oom = false;
  if (is_q8(x->dtype)) { /* (x - 0) * 1: exact */
    size_t n = tc_rt_numel(x);
    float *d = tc_arena_alloc(k->arena, (n + 1) * sizeof *d);
    if ((*xf = d))
      dequantize_q8(x->data, x->dtype, n, 1.0f, 0.0f, d);
  } else {
    *xf = widened(k, x, &oom);
  }
  *yf = tc_arena_alloc(k->arena, (tc_rt_numel(out) + 1) * sizeof **yf);
  return !oom && *xf && *yf;
}

/* pool_operands' float32 y into out, when it was a copy. */
static void pool_result(tc_rt_tensor *out, const float *yf) {
  size_t n = tc_rt_numel(out);
  if (tc_dtype_is_half(out->dtype))
    tc_vf32_to_half(out->dtype, out->data, yf, n);
  else if (is_q8(out->dtype)) /* maxima of 8-bit values, or the lowest: exact */
    quantize_f32(yf, n, 1.0f, 0.0f, out->dtype, out->data);
}

static tc_status run_pool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, tc_rt_tensor *out,
                          size_t n_out, int kind) {
  const tc_rt_tensor *x = in[0];
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  if (!tc_dtype_is_float(x->dtype) && !(kind == P_MAX && is_q8(x->dtype)))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  geom g;
  tc_status st = make_geom(k, x, NULL, G_POOL, &g);
  if (st)
    return st;
  int64_t dims[2 + SP];
  out_dims(&g, x->dims[0], x->dims[1], dims);
  if ((st = tc_kernel_alloc_uninit(k, &out[0], x->dtype, x->rank, dims))) /* all written */
    return st;
  tc_rt_tensor *idx = NULL;
  if (kind == P_MAX && n_out > 1) {
    idx = &out[1];
    if ((st = tc_kernel_alloc(k, idx, TC_DTYPE_I64, x->rank, dims)))
      return st;
  }
  if (k->nhwc_in & 1) { /* layout.c and qdq.c ask for this case only */
    bool bf = tc_dtype_is_half(x->dtype), q8 = kind == P_MAX && is_q8(x->dtype);
    if (kind == P_LP || idx || (x->dtype != TC_DTYPE_F32 && !bf && !q8) || x->rank != 4 ||
        g.in[2] != 1 || !(k->nhwc_out & 1) || !tc_fast_kernels_enabled())
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "channels-last pooling is float32, half or 8-bit 2-D MaxPool without "
                            "indices or AveragePool");
    if (q8) {
      maxpool8_nhwc_job j = {x->data, out[0].data, g, (size_t)x->dims[1],
                             x->dtype == TC_DTYPE_I8 ? 0x80 : 0};
      int64_t work = g.out[1] * g.k[0] * g.k[1] * x->dims[1] / 4;
      tc_parallel_for((size_t)(x->dims[0] * g.out[0]),
                      tc_parallel_grain((size_t)(work > 0 ? work : 1)), maxpool8_nhwc_rows(), &j);
      return TC_STATUS_OK;
    }
    const float *xf; /* half: the float32 loop on a widened copy, rounded once */
    float *yf;
    if (!pool_operands(k, x, &out[0], &xf, &yf))
      return TC_STATUS_NOMEM;
    size_t rows = (size_t)(x->dims[0] * g.out[0]), C = (size_t)x->dims[1];
    int64_t work = g.out[1] * g.k[0] * g.k[1] * x->dims[1];
    size_t grain = tc_parallel_grain((size_t)(work > 0 ? work : 1));
    if (kind == P_MAX) {
      maxpool_nhwc_job j = {xf, yf, g, C};
      tc_parallel_for(rows, grain, maxpool_nhwc_rows, &j);
    } else {
      avgpool_nhwc_job j = {xf, yf, g, C, tc_attr_int(k->node, "count_include_pad", 0) != 0};
      tc_parallel_for(rows, grain, avgpool_nhwc_rows(), &j);
    }
    if (bf)
      pool_result(&out[0], yf);
    return TC_STATUS_OK;
  }
  bool col_major = kind == P_MAX && tc_attr_int(k->node, "storage_order", 0) == 1;
  bool include_pad = kind == P_AVG && tc_attr_int(k->node, "count_include_pad", 0) != 0;
  /* bfloat16 / float16, and 8-bit MaxPool: the float32 loops on a widened
   * copy, rounded back (max pooling exactly so) */
  bool half = tc_dtype_is_half(x->dtype) || (kind == P_MAX && is_q8(x->dtype));
  if (tc_fast_kernels_enabled() && (x->dtype == TC_DTYPE_F32 || half) && kind != P_LP && !idx) {
    const float *xf;
    float *yf;
    if (!pool_operands(k, x, &out[0], &xf, &yf))
      return TC_STATUS_NOMEM;
    pool32_job j = {.x = xf,
                    .y = yf,
                    .g = g,
                    .kind = kind,
                    .include_pad = include_pad,
                    .lowest = (float)dtype_lowest(x->dtype)};
    size_t planes = (size_t)(x->dims[0] * x->dims[1]);
    int64_t work = g.out[0] * g.out[1] * g.out[2] * g.k[0] * g.k[1] * g.k[2];
    size_t grain = tc_parallel_grain((size_t)(work > 0 ? work : 1));
    /* 2-D pooling without dilation (spatial axes 0 and 1; axis 2 is the
     * unit one a 2-D geometry pads with): separable */
    bool sep =
        g.in[2] == 1 && g.k[2] == 1 && g.out[2] == 1 && g.d[0] == 1 && g.d[1] == 1 && g.in[1] > 0;
    size_t pieces = tc_parallel_pieces(planes, grain), row = 2 * pieces * ((size_t)g.in[1] + 32);
    if (sep &&
        (kind == P_MAX ? (j.rows = tc_arena_alloc(k->arena, row * sizeof(float))) != NULL
                       : (j.sums = tc_arena_alloc(k->arena, row * sizeof(double))) != NULL) &&
        (j.cb = tc_arena_alloc(k->arena, 2 * (size_t)(g.out[1] + 1) * sizeof(int64_t)))) {
      j.ce = j.cb + g.out[1] + 1;
      for (int64_t o = 0; o < g.out[1]; o++)
        tap_range(&g, 1, o, &j.cb[o], &j.ce[o]);
      tc_parallel_for(planes, grain, kind == P_MAX ? maxpool2d_planes() : avgpool2d_planes(), &j);
    } else {
      tc_parallel_for(planes, grain, pool32_planes, &j);
    }
    if (half)
      pool_result(&out[0], yf);
    return TC_STATUS_OK;
  }
  double p = 1;
  if (kind == P_LP) { /* p is a float before opset 2, an int since */
    const tc_attr *pa = tc_node_attr(k->node, "p");
    p = !pa ? 2 : pa->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT ? pa->f : (double)pa->i;
    if (!(p > 0))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "p must be positive");
  }
  double *xd = load(k, x), *yd = scratch(k, tc_rt_numel(&out[0]));
  if (!xd || !yd)
    return TC_STATUS_NOMEM;
  int64_t NC = x->dims[0] * x->dims[1];
  int64_t isz = g.in[0] * g.in[1] * g.in[2], osz = g.out[0] * g.out[1] * g.out[2];
  for (int64_t nc = 0; nc < NC; nc++) {
    const double *xc = xd + nc * isz;
    for (int64_t o0 = 0; o0 < g.out[0]; o0++)
      for (int64_t o1 = 0; o1 < g.out[1]; o1++)
        for (int64_t o2 = 0; o2 < g.out[2]; o2++) {
          int64_t o[SP] = {o0, o1, o2}, cnt_pad[SP];
          for (size_t a = 0; a < SP; a++) { /* window positions inside the padded input */
            cnt_pad[a] = 0;
            for (int64_t kk = 0; kk < g.k[a]; kk++) {
              int64_t i = o[a] * g.s[a] - g.pb[a] + kk * g.d[a];
              cnt_pad[a] += i >= -g.pb[a] && i < g.in[a] + g.pe[a];
            }
          }
          double acc = kind == P_MAX ? -INFINITY : 0;
          int64_t best = -1, cnt = 0;
          for (int64_t k0 = 0; k0 < g.k[0]; k0++) {
            int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
            if (i0 < 0 || i0 >= g.in[0])
              continue;
            for (int64_t k1 = 0; k1 < g.k[1]; k1++) {
              int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
              if (i1 < 0 || i1 >= g.in[1])
                continue;
              for (int64_t k2 = 0; k2 < g.k[2]; k2++) {
                int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                if (i2 < 0 || i2 >= g.in[2])
                  continue;
                int64_t ii = (i0 * g.in[1] + i1) * g.in[2] + i2;
                double v = xc[ii];
                if (col_major) /* indices count the first spatial dim fastest */
                  ii = i0 + g.in[0] * (i1 + g.in[1] * i2);
                cnt++;
                if (kind == P_MAX) {
                  if (v > acc || best < 0 || isnan(v)) {
                    if (!(best >= 0 && isnan(acc)))
                      acc = v, best = ii;
                  }
                } else if (kind == P_AVG) {
                  acc += v;
                } else {
                  acc += pow(fabs(v), p);
                }
              }
            }
          }
          int64_t oi = nc * osz + (o0 * g.out[1] + o1) * g.out[2] + o2;
          if (kind == P_MAX) {
            if (best < 0)
              acc = dtype_lowest(x->dtype);
            yd[oi] = acc;
            if (idx)
              ((int64_t *)idx->data)[oi] = best < 0 ? -1 : nc * isz + best;
          } else if (kind == P_AVG) {
            int64_t div = include_pad ? cnt_pad[0] * cnt_pad[1] * cnt_pad[2] : cnt;
            yd[oi] = div ? acc / (double)div : NAN;
          } else {
            yd[oi] = pow(acc, 1.0 / p);
          }
        }
  }
  store(&out[0], yd);
  return TC_STATUS_OK;
}

static tc_status run_maxpool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_in;
  return run_pool(k, in, out, n_out, P_MAX);
}
static tc_status run_avgpool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_in;
  return run_pool(k, in, out, n_out, P_AVG);
}
static tc_status run_lppool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_in;
  return run_pool(k, in, out, n_out, P_LP);
}

/* Global pools: reduce every spatial position of each (n, c); float32
 * averages on the fast path take one vector sum per (n, c) row. */
typedef struct gavg_job {
  const float *x;
  float *y;
  size_t sp;
} gavg_job;

static void gavg_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const gavg_job *j = ctx;
  for (size_t r = lo; r < hi; r++)
    j->y[r] = tc_vsum_f32(j->x + r * j->sp, j->sp) / (float)j->sp;
}

static tc_status run_global(tc_kernel_ctx *k, const tc_rt_tensor *const *in, tc_rt_tensor *out,
                            int kind) {
  const tc_rt_tensor *x = in[0];
  if (!x || x->rank < 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must have rank 2 or more");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  int64_t dims[TC_MAX_RANK];
  for (size_t i = 0; i < x->rank; i++)
    dims[i] = i < 2 ? x->dims[i] : 1;
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, dims);
  if (st)
    return st;
  size_t NC = (size_t)(x->dims[0] * x->dims[1]), sp = NC ? tc_rt_numel(x) / NC : 0;
  /* bfloat16 / float16: the float32 sums of a widened copy, rounded once */
  bool half = tc_dtype_is_half(x->dtype);
  if (kind == P_AVG && (x->dtype == TC_DTYPE_F32 || half) && sp && tc_fast_kernels_enabled()) {
    gavg_job j;
    if (!pool_operands(k, x, &out[0], &j.x, &j.y))
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    j.sp = sp;
    tc_parallel_for(NC, tc_parallel_grain(sp), gavg_rows, &j);
    if (half)
      tc_vf32_to_half(x->dtype, out[0].data, j.y, NC);
    return TC_STATUS_OK;
  }
  for (size_t nc = 0; nc < NC; nc++) {
    double acc = kind == P_MAX ? -INFINITY : 0;
    for (size_t i = 0; i < sp; i++) {
      double v = tc_rt_get_f64(x, nc * sp + i);
      if (kind == P_MAX)
        acc = (v > acc || isnan(v)) && !isnan(acc) ? v : acc;
      else
        acc += v;
    }
    tc_rt_set_f64(&out[0], nc, kind == P_MAX ? acc : (sp ? acc / (double)sp : NAN));
  }
  return TC_STATUS_OK;
}

static tc_status run_gavgpool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_in, (void)n_out;
  return run_global(k, in, out, P_AVG);
}
static tc_status run_gmaxpool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_in, (void)n_out;
  return run_global(k, in, out, P_MAX);
}

static const char *const no_attrs[] = {NULL};
static tc_status check_none(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  return tc_kernel_check_attrs(n, diag, no_attrs);
}

/* ---- LRN ---- */

static const char *const lrn_attrs[] = {"alpha", "beta", "bias", "size", NULL};
static tc_status check_lrn(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, lrn_attrs);
  if (!st && tc_attr_int(n, "size", 0) <= 0)
    st = refuse(n, diag, "%s must be given and positive", "size");
  return st;
}

/* Float32 LRN with the fast kernels: per chunk of LRN_CHUNK positions of
 * one batch item, its channels in order, each channel's squares computed
 * once into a ring of `size` rows and each output channel's window summed
 * from the ring in channel order (in float), then x (bias + alpha / size
 * sum)^-beta as x exp(-beta log(base)) on the vector sets (the reference
 * divides by pow in double: within a few units in the last place; AlexNet's
 * two LRNs 8.1 ms in the reference). Each input value is read from memory
 * once, not once per window it is in (GoogLeNet's [1, 192, 56, 56] LRN,
 * 2.4 MB: 1.52 ms when each output plane summed its window's planes). */
enum { LRN_CHUNK = 512, LRN_RING_MAX = 64 };

typedef struct lrn_job {
  const float *x;
  float *y;
  size_t C, sp, chunks; /* chunks: of LRN_CHUNK positions per batch item */
  int64_t lo, hi;       /* channels of the window before and after */
  float scale, bias, nbeta;
  float *ring; /* per piece: (lo + hi + 1) * LRN_CHUNK floats */
} lrn_job;

void tc_lrn_apply(float *y, const float *x, float *sum, size_t n, float scale, float bias,
                  float nbeta) {
  tc_vaffine_f32(sum, sum, n, 0.0f, scale, bias); /* bias + scale sum */
  tc_vlog_f32(sum, sum, n);
  tc_vscale_f32(sum, n, nbeta);
  tc_vexp_f32(sum, sum, n);
  tc_vbinary_f32(y, x, sum, n, '*');
}

static void lrn_chunks(void *ctx, size_t piece, size_t q0, size_t q1) {
  const lrn_job *j = ctx;
  size_t size = (size_t)(j->lo + j->hi + 1);
  float acc[LRN_CHUNK], *ring = j->ring + piece * size * LRN_CHUNK;
  for (size_t q = q0; q < q1; q++) {
    size_t nb = q / j->chunks, s0 = q % j->chunks * LRN_CHUNK;
    size_t n = j->sp - s0 < LRN_CHUNK ? j->sp - s0 : LRN_CHUNK;
    int64_t next = 0; /* the next channel whose squares go into the ring */
    for (int64_t c = 0; c < (int64_t)j->C; c++) {
      int64_t c0 = c - j->lo < 0 ? 0 : c - j->lo,
              c1 = c + j->hi >= (int64_t)j->C ? (int64_t)j->C - 1 : c + j->hi;
      for (; next <= c1; next++) { /* overwrites channel next - size, before c0 */
        const float *xr = j->x + (nb * j->C + (size_t)next) * j->sp + s0;
        tc_vbinary_f32(ring + (size_t)next % size * LRN_CHUNK, xr, xr, n, '*');
      }
      memset(acc, 0, n * sizeof *acc);
      for (int64_t cc = c0; cc <= c1; cc++)
        tc_vadd_inplace_f32(acc, ring + (size_t)cc % size * LRN_CHUNK, n);
      size_t at = (nb * j->C + (size_t)c) * j->sp + s0;
      tc_lrn_apply(j->y + at, j->x + at, acc, n, j->scale, j->bias, j->nbeta);
    }
  }
}

static tc_status run_lrn(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_in, (void)n_out;
  const tc_rt_tensor *x = in[0];
  if (!x || x->rank < 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must have rank 2 or more");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  double alpha = tc_attr_float(k->node, "alpha", 1e-4f),
         beta = tc_attr_float(k->node, "beta", 0.75f);
  double bias = tc_attr_float(k->node, "bias", 1.0f);
  int64_t size = tc_attr_int(k->node, "size", 0);
  if (size <= 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "size must be positive");
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, x->dims);
  if (st)
    return st;
  int64_t N = x->dims[0], C = x->dims[1], sp = 1;
  for (size_t i = 2; i < x->rank; i++)
    sp *= x->dims[i];
  int64_t lo = (size - 1) / 2, hi = size - 1 - lo;
  if (x->dtype == TC_DTYPE_F32 && tc_fast_kernels_enabled() && size <= LRN_RING_MAX && sp > 0) {
    size_t chunks = ((size_t)sp + LRN_CHUNK - 1) / LRN_CHUNK, items = (size_t)N * chunks,
           grain = tc_parallel_grain((size_t)C * LRN_CHUNK * (size_t)size);
    lrn_job j = {x->data,
                 out[0].data,
                 (size_t)C,
                 (size_t)sp,
                 chunks,
                 lo,
                 hi,
                 (float)(alpha / (double)size),
                 (float)bias,
                 (float)-beta,
                 tc_arena_alloc(k->arena, tc_parallel_pieces(items, grain) * (size_t)size *
                                              LRN_CHUNK * sizeof(float))};
    if (!j.ring)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    tc_parallel_for(items, grain, lrn_chunks, &j);
    return TC_STATUS_OK;
  }
  double *xd = load(k, x);
  if (!xd)
    return TC_STATUS_NOMEM;
  for (int64_t n = 0; n < N; n++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t s = 0; s < sp; s++) {
        double sum = 0;
        for (int64_t cc = c - lo; cc <= c + hi; cc++)
          if (cc >= 0 && cc < C) {
            double v = xd[(n * C + cc) * sp + s];
            sum += v * v;
          }
        size_t i = (size_t)((n * C + c) * sp + s);
        tc_rt_set_f64(&out[0], i, xd[i] / pow(bias + alpha / (double)size * sum, beta));
      }
  return TC_STATUS_OK;
}

/* ---- integer and quantized convolution ---- */

/* Zero point / scale of per-tensor or per-channel (count entries) tensors. */
static bool per_ok(const tc_rt_tensor *t, int64_t count) {
  size_t n = tc_rt_numel(t);
  return t->rank <= 1 && (n == 1 || n == (size_t)count);
}
static double per_at(const tc_rt_tensor *t, const double *v, int64_t i) {
  return tc_rt_numel(t) == 1 ? v[0] : v[i];
}

/* Unfolds the windows of one image's group of 8-bit channels x [Cg, in]
 * into col [Cg * k, out] as int8: uint8 values shifted by -128, positions
 * in the padding set to pad (x's zero point, shifted alike), so they add
 * nothing once the zero point is taken off. */
static void im2col_q8(const geom *g, int64_t Cg, const uint8_t *x, int shift, int8_t pad,
                      int8_t *col) {
  int64_t osz = g->out[0] * g->out[1] * g->out[2];
  for (int64_t c = 0; c < Cg; c++)
    for (int64_t k0 = 0; k0 < g->k[0]; k0++)
      for (int64_t k1 = 0; k1 < g->k[1]; k1++)
        for (int64_t k2 = 0; k2 < g->k[2]; k2++) {
          int8_t *row = col + ((c * g->k[0] + k0) * g->k[1] * g->k[2] + k1 * g->k[2] + k2) * osz;
          for (int64_t o0 = 0; o0 < g->out[0]; o0++) {
            int64_t i0 = o0 * g->s[0] - g->pb[0] + k0 * g->d[0];
            for (int64_t o1 = 0; o1 < g->out[1]; o1++) {
              int64_t i1 = o1 * g->s[1] - g->pb[1] + k1 * g->d[1];
              int8_t *r = row + (o0 * g->out[1] + o1) * g->out[2];
              bool in01 = i0 >= 0 && i0 < g->in[0] && i1 >= 0 && i1 < g->in[1];
              const uint8_t *xr = in01 ? x + ((c * g->in[0] + i0) * g->in[1] + i1) * g->in[2] : x;
              for (int64_t o2 = 0; o2 < g->out[2]; o2++) {
                int64_t i2 = o2 * g->s[2] - g->pb[2] + k2 * g->d[2];
                r[o2] = in01 && i2 >= 0 && i2 < g->in[2] ? (int8_t)(xr[i2] - shift) : pad;
              }
            }
          }
        }
}

/* The integer conv through oneDNN's exact int8 GEMM (tc_gemm_q8): per image
 * and group, y[Mg, out] = (w_g - w_zero_point)(col - x_zero_point) + B, col
 * the unfolded input (or x itself for 1x1 unit-stride unpadded kernels).
 * False when the GEMM would not be exact here or memory runs out. */
/* What becomes of one output channel's int32 sums acc[osz] (image n,
 * channel m). */
typedef void (*qconv_epilogue)(void *ctx, int64_t n, int64_t m, const int32_t *acc, int64_t osz);

static bool qconv_fast(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *xzp,
                       const tc_rt_tensor *w, const tc_rt_tensor *wzp, const geom *g, int64_t group,
                       qconv_epilogue epi, void *ectx) {
  int64_t N = x->dims[0], C = x->dims[1], M = w->dims[0], Cg = C / group, Mg = M / group;
  int64_t isz = g->in[0] * g->in[1] * g->in[2], ksz = g->k[0] * g->k[1] * g->k[2];
  int64_t osz = g->out[0] * g->out[1] * g->out[2];
  size_t K = (size_t)(Cg * ksz), nwz = wzp ? tc_rt_numel(wzp) : 0;
  if (!tc_gemm_q8_exact(K))
    return false;
  bool direct = ksz == 1 && isz == osz;
  for (size_t d = 0; d < SP; d++)
    direct = direct && g->s[d] == 1 && g->pb[d] == 0 && g->pe[d] == 0;
  int shift = x->dtype == TC_DTYPE_U8 ? 128 : 0;
  int32_t xz = xzp ? (int32_t)tc_rt_get_i64(xzp, 0) : 0, bz = direct ? xz : xz - shift;
  int32_t *wz = nwz ? tc_arena_alloc(k->arena, nwz * sizeof *wz) : NULL;
  int32_t *acc = tc_arena_alloc(k->arena, (size_t)(Mg * osz) * sizeof *acc);
  int8_t *col = direct ? NULL : tc_arena_alloc(k->arena, K * (size_t)osz);
  if ((nwz && !wz) || !acc || (!direct && !col))
    return false;
  for (size_t i = 0; i < nwz; i++)
    wz[i] = (int32_t)tc_rt_get_i64(wzp, i);
  for (int64_t n = 0; n < N; n++)
    for (int64_t gi = 0; gi < group; gi++) {
      const uint8_t *xg = (const uint8_t *)x->data + (n * C + gi * Cg) * isz;
      if (!direct)
        im2col_q8(g, Cg, xg, shift, (int8_t)(xz - shift), col);
      const int32_t *az = nwz == 1 ? wz : wz ? wz + gi * Mg : NULL;
      if (!tc_gemm_q8((size_t)Mg, (size_t)osz, K, w->dtype,
                      (const int8_t *)w->data + gi * Mg * (int64_t)K, az,
                      nwz == 1 ? 1 : (size_t)(wz ? Mg : 0), direct ? x->dtype : TC_DTYPE_I8,
                      direct ? (const void *)xg : col, &bz, 1, acc))
        return false;
      for (int64_t m = 0; m < Mg; m++)
        epi(ectx, n, gi * Mg + m, acc + m * osz, osz);
    }
  return true;
}

/* The integer sums plus an int32 bias, as doubles (ConvInteger, QLinearConv). */
typedef struct qconv_dbl {
  double *y;
  const int32_t *bias;
  int64_t M;
} qconv_dbl;

static void qconv_to_double(void *ctx, int64_t n, int64_t m, const int32_t *acc, int64_t osz) {
  const qconv_dbl *e = ctx;
  double *yo = e->y + (n * e->M + m) * osz;
  int64_t bm = e->bias ? e->bias[m] : 0;
  for (int64_t o = 0; o < osz; o++)
    yo[o] = (double)(acc[o] + bm);
}

/* Integer conv of quantized x and w minus their zero points; y as doubles
 * (exact: integer sums stay far below 2^53). */
static tc_status qconv(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *xzp,
                       const tc_rt_tensor *w, const tc_rt_tensor *wzp, const tc_rt_tensor *b,
                       geom *g, double **y, size_t *ny) {
  int64_t group;
  tc_status st = conv_setup(k, x, w, g, &group);
  if (st)
    return st;
  int64_t M = w->dims[0];
  if (xzp && (!per_ok(xzp, 1) || xzp->dtype != x->dtype))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x_zero_point must be a scalar of x's dtype");
  if (wzp && (!per_ok(wzp, M) || wzp->dtype != w->dtype))
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "w_zero_point must be a scalar or have one entry per output channel");
  if (b && (b->dtype != TC_DTYPE_I32 || tc_rt_numel(b) != (size_t)M))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "B must be an int32 tensor of %lld entries",
                          (long long)M);
  *ny = (size_t)(x->dims[0] * M * g->out[0] * g->out[1] * g->out[2]);
  if (!(*y = scratch(k, *ny)))
    return TC_STATUS_NOMEM;
  qconv_dbl e = {.y = *y, .bias = b ? b->data : NULL, .M = M};
  if (*ny == 0 ||
      (tc_fast_kernels_enabled() && qconv_fast(k, x, xzp, w, wzp, g, group, qconv_to_double, &e)))
    return TC_STATUS_OK;
  double *xd = load(k, x), *wd = load(k, w), *bd = b ? load(k, b) : NULL;
  if (!xd || !wd || (b && !bd))
    return TC_STATUS_NOMEM;
  double xz = xzp ? tc_rt_get_f64(xzp, 0) : 0;
  size_t nx = tc_rt_numel(x), nw = tc_rt_numel(w), per_m = M ? nw / (size_t)M : 0;
  for (size_t i = 0; i < nx; i++)
    xd[i] -= xz;
  if (wzp)
    for (size_t i = 0; i < nw; i++)
      wd[i] -= tc_rt_get_f64(wzp, tc_rt_numel(wzp) == 1 ? 0 : i / per_m);
  conv_core(g, x->dims[0], x->dims[1], M, group, xd, wd, bd, *y);
  return TC_STATUS_OK;
}

static tc_status run_convinteger(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *w = n_in > 1 ? in[1] : NULL;
  const tc_rt_tensor *xzp = n_in > 2 ? in[2] : NULL, *wzp = n_in > 3 ? in[3] : NULL;
  if (x && !is_q8(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (w && !is_q8(w->dtype))
    return tc_kernel_bad_dtype(k, 1, w->dtype);
  geom g;
  double *y;
  size_t ny;
  tc_status st = qconv(k, x, xzp, w, wzp, NULL, &g, &y, &ny);
  if (st)
    return st;
  int64_t dims[2 + SP];
  out_dims(&g, x->dims[0], w->dims[0], dims);
  if ((st = tc_kernel_alloc(k, &out[0], TC_DTYPE_I32, x->rank, dims)))
    return st;
  for (size_t i = 0; i < ny; i++)
    ((int32_t *)out[0].data)[i] = (int32_t)clamp64(y[i], INT32_MIN, INT32_MAX);
  return TC_STATUS_OK;
}

static tc_status run_qlinearconv(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  if (n_in < 8 || !in[0] || !in[1] || !in[3] || !in[4] || !in[6])
    return tc_kernel_fail(k, TC_STATUS_INVALID, "QLinearConv needs x, scales and w");
  const tc_rt_tensor *x = in[0], *xs = in[1], *xzp = in[2], *w = in[3], *ws = in[4], *wzp = in[5],
                     *ys = in[6], *yzp = in[7], *b = n_in > 8 ? in[8] : NULL;
  if (!is_q8(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (!is_q8(w->dtype))
    return tc_kernel_bad_dtype(k, 3, w->dtype);
  if (yzp && !is_q8(yzp->dtype))
    return tc_kernel_bad_dtype(k, 7, yzp->dtype);
  if (xs->dtype != TC_DTYPE_F32 || ws->dtype != TC_DTYPE_F32 || ys->dtype != TC_DTYPE_F32)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "scales must be float32");
  geom g;
  double *y;
  size_t ny;
  tc_status st = qconv(k, x, xzp, w, wzp, b, &g, &y, &ny);
  if (st)
    return st;
  int64_t M = w->dims[0];
  if (!per_ok(xs, 1) || !per_ok(ys, 1) || !per_ok(ws, M) || (yzp && !per_ok(yzp, 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "bad scale or zero point shape");
  int32_t odt = yzp ? yzp->dtype : x->dtype;
  int64_t lo, hi, dims[2 + SP];
  qrange(odt, &lo, &hi);
  out_dims(&g, x->dims[0], M, dims);
  if ((st = tc_kernel_alloc(k, &out[0], odt, x->rank, dims)))
    return st;
  double zp = yzp ? tc_rt_get_f64(yzp, 0) : 0;
  float xsv = ((const float *)xs->data)[0], ysv = ((const float *)ys->data)[0];
  size_t per_m = M ? ny / (size_t)(x->dims[0] * M) : 0;
  for (size_t i = 0; i < ny; i++) {
    int64_t m = per_m ? (int64_t)(i / per_m) % M : 0;
    float wsv = ((const float *)ws->data)[tc_rt_numel(ws) == 1 ? 0 : m];
    float mult = xsv * wsv / ysv;
    double r = y[i] * (double)mult + zp;
    r = r < (double)lo ? (double)lo : r > (double)hi ? (double)hi : r;
    qset(&out[0], i, (int64_t)nearbyint(r));
  }
  return TC_STATUS_OK;
}

/* ---- QDQ convolutions (runtime/qdq.c binds them) ---- */

/* The activation of a convolution node of any of the forms conv_run serves. */
static void node_act(const tc_node *n, act_spec *a) {
  memset(a, 0, sizeof *a);
  if (tc_domain_is_onnx(n->domain))
    return;
  if (strcmp(n->op_type, "FusedConv") == 0)
    act_parse(n, a);
  else
    named_act(n, a);
}

/* y = act(acc * scale[m] + bias[m] (+ z)) as float32. */
typedef struct qconv_flt {
  float *y;
  const float *scale, *bias, *z;
  int64_t M;
  act_spec act;
} qconv_flt;

static void qconv_to_float(void *ctx, int64_t n, int64_t m, const int32_t *acc, int64_t osz) {
  const qconv_flt *e = ctx;
  size_t at = (size_t)((n * e->M + m) * osz);
  float *yo = e->y + at, sc = e->scale[m], b = e->bias[m];
  const float *zo = e->z ? e->z + at : NULL;
  for (int64_t o = 0; o < osz; o++) {
    float v = (float)acc[o] * sc + b;
    if (zo)
      v += zo[o];
    if (e->act.kind == TC_CONV_ACT_RELU)
      v = v > 0 ? v : 0;
    else if (e->act.kind != TC_CONV_ACT_NONE)
      v = (float)act_apply(&e->act, v);
    yo[o] = v;
  }
}

/* A float32 view of q dequantized with per-tensor (ns == 1) or per-axis-0
 * scales, in the arena. */
static bool dequant_view(tc_kernel_ctx *k, const tc_rt_tensor *q, const float *s, size_t ns,
                         float zp, tc_rt_tensor *out) {
  size_t n = tc_rt_numel(q), per = ns > 1 && q->dims[0] ? n / (size_t)q->dims[0] : n;
  *out = *q;
  out->dtype = TC_DTYPE_F32;
  out->bytes = n * sizeof(float);
  float *y = tc_arena_alloc(k->arena, out->bytes + sizeof(float));
  if (!y)
    return false;
  for (size_t i = 0; i < n; i++)
    y[i] = ((float)qget(q, i) - zp) * s[ns > 1 ? i / per : 0];
  out->data = y;
  return true;
}

/* The QDQ convolution as oneDNN's int8 convolution (its blocked layouts,
 * scales, zero point, bias, sum and activation in one primitive). oneDNN
 * adds the bias before the output scale, so it gets b / scale. A quantized
 * y (ydt 8-bit) takes the scales divided by y's scale ys and its zero point
 * yzp; layout: bit 0 x, bit 1 y channels-last. False when oneDNN declines. */
static bool qconv_dnnl(const tc_conv_qdq *q, const geom *g, int64_t group, const tc_rt_tensor *x,
                       const tc_rt_tensor *w, const float *sc, float *bf, const act_spec *act,
                       int32_t ydt, float ys, int32_t yzp, unsigned layout, void *y) {
  int64_t M = w->dims[0];
  bool bias = false;
  for (int64_t m = 0; m < M; m++) {
    bias |= bf[m] != 0;
    if (!(sc[m] > 0) || !isfinite(sc[m]))
      return false; /* b / scale needs a positive finite scale */
  }
  if (ydt != TC_DTYPE_F32 && (!(ys > 0) || !isfinite(ys)))
    return false;                           /* the division by y's scale stays QuantizeLinear's */
  float *bd = bf + M + 1, *sy = bd + M + 1; /* room left after bf by the caller */
  for (int64_t m = 0; bias && m < M; m++)
    bd[m] = bf[m] / sc[m];
  for (int64_t m = 0; m < M; m++)
    sy[m] = ydt == TC_DTYPE_F32 ? sc[m] : sc[m] / ys;
  tc_conv_spec c;
  conv_spec(g, x->dims[0], x->dims[1], M, group, false, &c);
  c.act = act->kind, c.alpha = act->alpha, c.beta = act->beta;
  c.layout = (layout & 1 ? TC_CONV_X_NHWC : 0) | (layout & 2 ? TC_CONV_Y_NHWC : 0);
  int32_t xzp = q->xz ? (int32_t)qget(q->xz, 0) : 0;
  return tc_dnnl_qconv_run(&c, q->wq_value, x->dtype, x->data, xzp, w->data, sy, bias ? bd : NULL,
                           q->z ? q->z->data : NULL, ydt, yzp, y);
}

/* The convolution in the plain order around channels-last x and y: x copied
 * plain, y converted in place after. */
static tc_status qconv_via_plain(tc_kernel_ctx *k, const tc_conv_qdq *q, tc_rt_tensor *out) {
  tc_kernel_ctx kp = *k;
  kp.nhwc_in = kp.nhwc_out = 0;
  tc_conv_qdq qp = *q;
  if ((k->nhwc_in & 1) && !(qp.xq = tc_layout_plain_copy(k, q->xq)))
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  tc_status st = tc_conv_qdq_run(&kp, &qp, out);
  return st || !(k->nhwc_out & 1) ? st : tc_layout_reorder(k, &out[0], true);
}

tc_status tc_conv_qdq_run(tc_kernel_ctx *k, const tc_conv_qdq *q, tc_rt_tensor *out) {
  const tc_rt_tensor *x = q->xq, *w = q->wq;
  if (!x || !w || !q->xs || !q->ws)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "the quantized convolution lacks an operand");
  if (!is_q8(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (w->dtype != TC_DTYPE_I8 || q->xs->dtype != TC_DTYPE_F32 || q->ws->dtype != TC_DTYPE_F32 ||
      tc_rt_numel(q->xs) != 1 || (q->xz && (q->xz->dtype != x->dtype || tc_rt_numel(q->xz) != 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "bad quantization parameters");
  geom g;
  int64_t group, dims[2 + SP];
  tc_status st = conv_setup(k, x, w, &g, &group);
  if (st)
    return st;
  int64_t M = w->dims[0];
  size_t nws = tc_rt_numel(q->ws);
  if (nws != 1 && nws != (size_t)M)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "w_scale must have 1 or %lld entries",
                          (long long)M);
  out_dims(&g, x->dims[0], M, dims);
  const tc_rt_tensor *z = q->z;
  if (z && (z->dtype != TC_DTYPE_F32 || z->rank != x->rank ||
            memcmp(z->dims, dims, x->rank * sizeof *dims) != 0))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Z must be float32 of the output's shape");
  if (((k->nhwc_in | k->nhwc_out) & 1) && (x->rank != 4 || z))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "a channels-last convolution needs rank-4 X, no Z");
  act_spec act;
  node_act(k->node, &act);
  if (q->relu && act.kind == TC_CONV_ACT_NONE)
    act.kind = TC_CONV_ACT_RELU;
  else if (q->relu && act.kind != TC_CONV_ACT_RELU)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "a Relu after this activation is not bound");
  /* a quantized y: the QuantizeLinear after the convolution (runtime/qdq.c) */
  int32_t ydt = TC_DTYPE_F32, yzp = 0;
  float ys = 1;
  if (q->ys) {
    ydt = q->yz ? q->yz->dtype : TC_DTYPE_U8;
    if (q->ys->dtype != TC_DTYPE_F32 || tc_rt_numel(q->ys) != 1 ||
        (q->yz && (!is_q8(ydt) || tc_rt_numel(q->yz) != 1)))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "bad quantization parameters of y");
    if (z || (act.kind != TC_CONV_ACT_NONE && act.kind != TC_CONV_ACT_RELU))
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "a quantized y takes no Z and no activation but Relu");
    ys = *(const float *)q->ys->data;
    yzp = q->yz ? (int32_t)qget(q->yz, 0) : 0;
  }
  if ((st = tc_kernel_alloc(k, &out[0], ydt, x->rank, dims)))
    return st;
  /* scales, bias, the bias divided by the scales and the scales over y's
   * (qconv_dnnl) */
  float *sc = tc_arena_alloc(k->arena, 4 * (size_t)(M + 1) * sizeof *sc), *bf = sc + M + 1;
  if (!sc)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
  const float *ws = q->ws->data, xs = *(const float *)q->xs->data;
  for (int64_t m = 0; m < M; m++) {
    sc[m] = xs * ws[nws == 1 ? 0 : m];
    bf[m] = 0;
  }
  if (q->b) {
    if (q->b->dtype != TC_DTYPE_F32 || tc_rt_numel(q->b) != (size_t)M)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "B must be %lld float32 values", (long long)M);
    memcpy(bf, q->b->data, (size_t)M * sizeof *bf);
  } else if (q->bq) {
    size_t nbs = q->bs ? tc_rt_numel(q->bs) : 0;
    if (q->bq->dtype != TC_DTYPE_I32 || tc_rt_numel(q->bq) != (size_t)M || !q->bs ||
        q->bs->dtype != TC_DTYPE_F32 || (nbs != 1 && nbs != (size_t)M))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "bad quantized bias");
    const int32_t *bq = q->bq->data;
    const float *bs = q->bs->data;
    for (int64_t m = 0; m < M; m++)
      bf[m] = (float)bq[m] * bs[nbs == 1 ? 0 : m];
  }
  if (tc_rt_numel(&out[0]) == 0)
    return TC_STATUS_OK;
  bool xn = k->nhwc_in & 1, yn = k->nhwc_out & 1; /* channels-last x, y (runtime/qdq.c) */
  if (tc_fast_kernels_enabled() && qconv_dnnl(q, &g, group, x, w, sc, bf, &act, ydt, ys, yzp,
                                              (xn ? 1u : 0u) | (yn ? 2u : 0u), out[0].data))
    return TC_STATUS_OK;
  if (xn || yn)
    return qconv_via_plain(k, q, out);
  if (q->ys) { /* float32 y, then QuantizeLinear's arithmetic */
    tc_rt_tensor yf;
    tc_conv_qdq qf = *q;
    qf.ys = qf.yz = NULL;
    if ((st = tc_conv_qdq_run(k, &qf, &yf)))
      return st;
    quantize_f32(yf.data, tc_rt_numel(&yf), ys, (float)yzp, ydt, out[0].data);
    return TC_STATUS_OK;
  }
  qconv_flt e = {
      .y = out[0].data, .scale = sc, .bias = bf, .z = z ? z->data : NULL, .M = M, .act = act};
  if (tc_fast_kernels_enabled() && qconv_fast(k, x, q->xz, w, NULL, &g, group, qconv_to_float, &e))
    return TC_STATUS_OK;
  /* what the QDQ graph says: dequantize, then the float convolution */
  tc_rt_tensor xf, wf,
      bt = {.dtype = TC_DTYPE_F32,
            .rank = 1,
            .dims = {M},
            .data = bf,
            .bytes = (size_t)M * sizeof(float)};
  float xzv = q->xz ? (float)qget(q->xz, 0) : 0.0f;
  if (!dequant_view(k, x, &xs, 1, xzv, &xf) || !dequant_view(k, w, ws, nws, 0, &wf))
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
  return conv_run(k, &xf, &wf, &bt, z, &act, out);
}

/* ---- QLinearMatMul ---- */

/* Zero points as int32 and the accumulator of the int8 GEMM path. */
typedef struct qmm_fast {
  int32_t *az, *bz, *acc;
  size_t n_az, n_bz;
} qmm_fast;

static int32_t *zp_values(tc_kernel_ctx *k, const tc_rt_tensor *zp, size_t *n) {
  *n = zp ? tc_rt_numel(zp) : 0;
  int32_t *v = zp ? tc_arena_alloc(k->arena, (*n ? *n : 1) * sizeof *v) : NULL;
  for (size_t i = 0; v && i < *n; i++)
    v[i] = (int32_t)tc_rt_get_i64(zp, i);
  return v;
}

static tc_status qmm_fast_init(tc_kernel_ctx *k, const tc_rt_tensor *azp, const tc_rt_tensor *bzp,
                               size_t mn, qmm_fast *f) {
  f->az = zp_values(k, azp, &f->n_az);
  f->bz = zp_values(k, bzp, &f->n_bz);
  f->acc = tc_arena_alloc(k->arena, mn * sizeof *f->acc);
  if ((azp && !f->az) || (bzp && !f->bz) || !f->acc)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
  return TC_STATUS_OK;
}

static tc_status run_qlinearmatmul(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                   tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  if (n_in < 8 || !in[0] || !in[1] || !in[3] || !in[4] || !in[6])
    return tc_kernel_fail(k, TC_STATUS_INVALID, "QLinearMatMul needs a, b and the scales");
  const tc_rt_tensor *a = in[0], *as = in[1], *azp = in[2], *b = in[3], *bs = in[4], *bzp = in[5],
                     *ys = in[6], *yzp = in[7];
  if (!is_q8(a->dtype))
    return tc_kernel_bad_dtype(k, 0, a->dtype);
  if (!is_q8(b->dtype))
    return tc_kernel_bad_dtype(k, 3, b->dtype);
  if (yzp && !is_q8(yzp->dtype))
    return tc_kernel_bad_dtype(k, 7, yzp->dtype);
  if (!tc_dtype_is_float(as->dtype) || !tc_dtype_is_float(bs->dtype) ||
      !tc_dtype_is_float(ys->dtype))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "scales must be floating point");
  if (a->rank < 1 || b->rank < 1)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "a and b must have rank 1 or more");
  /* Views as [..., M, K] and [..., K, N]. */
  tc_rt_tensor av = *a, bv = *b;
  if (av.rank == 1) {
    av.rank = 2, av.dims[1] = av.dims[0], av.dims[0] = 1;
  }
  if (bv.rank == 1)
    bv.rank = 2, bv.dims[1] = 1;
  int64_t M = av.dims[av.rank - 2], K = av.dims[av.rank - 1], N = bv.dims[bv.rank - 1];
  if (bv.dims[bv.rank - 2] != K)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "inner dims differ (%lld vs %lld)", (long long)K,
                          (long long)bv.dims[bv.rank - 2]);
  tc_rt_tensor ab = av, bb = bv; /* batch parts */
  ab.rank -= 2, bb.rank -= 2;
  const tc_rt_tensor *bt[2] = {&ab, &bb};
  size_t brank;
  int64_t bdims[TC_MAX_RANK], sa[TC_MAX_RANK], sb[TC_MAX_RANK];
  tc_status st = tc_broadcast_shape(k, bt, 2, &brank, bdims);
  if (st)
    return st;
  tc_broadcast_strides(&ab, brank, bdims, sa);
  tc_broadcast_strides(&bb, brank, bdims, sb);
  int64_t odims[TC_MAX_RANK];
  size_t orank = brank;
  memcpy(odims, bdims, brank * sizeof *bdims);
  if (a->rank > 1)
    odims[orank++] = M;
  if (b->rank > 1)
    odims[orank++] = N;
  if (!per_ok(as, M) || !per_ok(bs, N) || !per_ok(ys, 1) || (azp && !per_ok(azp, M)) ||
      (bzp && !per_ok(bzp, N)) || (yzp && !per_ok(yzp, 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "bad scale or zero point shape");
  int32_t odt = yzp ? yzp->dtype : a->dtype;
  if ((st = tc_kernel_alloc(k, &out[0], odt, orank, odims)))
    return st;
  double *ad = NULL, *bd = NULL, *asd = load(k, as), *bsd = load(k, bs);
  if (!asd || !bsd)
    return TC_STATUS_NOMEM;
  double azd = 0, bzd = 0;
  float ysv = (float)tc_rt_get_f64(ys, 0);
  double yz = yzp ? tc_rt_get_f64(yzp, 0) : 0;
  int64_t lo, hi;
  qrange(odt, &lo, &hi);
  size_t nb = 1;
  for (size_t i = 0; i < brank; i++)
    nb *= (size_t)bdims[i];
  /* The fast path: each product through oneDNN's exact int8 GEMM. */
  qmm_fast fast = {0};
  if (tc_fast_kernels_enabled() && (!azp || is_q8(azp->dtype)) && (!bzp || is_q8(bzp->dtype)) &&
      tc_gemm_q8_exact((size_t)K) && M * N > 0 &&
      (st = qmm_fast_init(k, azp, bzp, (size_t)(M * N), &fast)))
    return st;
  for (size_t bi = 0; bi < nb; bi++) {
    int64_t oa = 0, ob = 0;
    size_t r = bi;
    for (size_t d = brank; d-- > 0;) {
      int64_t c = (int64_t)(r % (size_t)bdims[d]);
      r /= (size_t)bdims[d];
      oa += c * sa[d], ob += c * sb[d];
    }
    bool got =
        fast.acc && tc_gemm_q8((size_t)M, (size_t)N, (size_t)K, a->dtype,
                               (const uint8_t *)a->data + oa * M * K, fast.az, fast.n_az, b->dtype,
                               (const uint8_t *)b->data + ob * K * N, fast.bz, fast.n_bz, fast.acc);
    if (!got && !ad && (!(ad = load(k, a)) || !(bd = load(k, b))))
      return TC_STATUS_NOMEM;
    const double *ap = got ? NULL : ad + oa * M * K, *bp = got ? NULL : bd + ob * K * N;
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double acc = 0;
        if (got) {
          acc = fast.acc[i * N + j];
        } else {
          azd = azp ? tc_rt_get_f64(azp, tc_rt_numel(azp) == 1 ? 0 : (size_t)i) : 0;
          bzd = bzp ? tc_rt_get_f64(bzp, tc_rt_numel(bzp) == 1 ? 0 : (size_t)j) : 0;
          for (int64_t kk = 0; kk < K; kk++)
            acc += (ap[i * K + kk] - azd) * (bp[kk * N + j] - bzd);
        }
        float mult = (float)per_at(as, asd, i) * (float)per_at(bs, bsd, j) / ysv;
        double v = nearbyint(acc * (double)mult) + yz;
        qset(&out[0], bi * (size_t)(M * N) + (size_t)(i * N + j), clamp64(v, lo, hi));
      }
  }
  return TC_STATUS_OK;
}

/* ---- QuantizeLinear / DequantizeLinear ---- */

/* Index into a per-tensor / per-axis / blocked scale for element i of a
 * tensor viewed as [outer, D, inner] around the axis. */
typedef struct qaxis {
  size_t D, inner, nblk, bs;
  int mode; /* 0 per tensor, 1 per axis, 2 blocked */
} qaxis;

static size_t qaxis_at(const qaxis *q, size_t i) {
  if (q->mode == 0)
    return 0;
  size_t c = (i / q->inner) % q->D;
  if (q->mode == 1)
    return c;
  size_t outer = i / (q->inner * q->D), r = i % q->inner;
  return (outer * q->nblk + c / q->bs) * q->inner + r;
}

static tc_status qaxis_make(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *s,
                            const tc_rt_tensor *zp, qaxis *q) {
  int64_t axis = k->opset >= 13 ? tc_attr_int(k->node, "axis", 1) : 1;
  int64_t bs = k->opset >= 21 ? tc_attr_int(k->node, "block_size", 0) : 0;
  memset(q, 0, sizeof *q);
  q->D = q->inner = q->nblk = q->bs = 1;
  if (zp && tc_rt_numel(zp) == 1 && tc_rt_numel(s) == 1 && zp->rank <= 1 && s->rank <= 1) {
    /* per tensor: a scalar and a one-element vector mix */
  } else if (zp) {
    bool same = zp->rank == s->rank;
    for (size_t i = 0; same && i < s->rank; i++)
      same = zp->dims[i] == s->dims[i];
    if (!same)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "zero point and scale shapes differ");
  }
  size_t ns = tc_rt_numel(s);
  if (bs == 0 && (s->rank == 0 || (s->rank == 1 && ns == 1)))
    return TC_STATUS_OK;
  int64_t ax = tc_axis(axis, x->rank);
  if (ax < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range", (long long)axis);
  q->D = (size_t)x->dims[ax];
  for (size_t i = (size_t)ax + 1; i < x->rank; i++)
    q->inner *= (size_t)x->dims[i];
  if (bs == 0) {
    if (s->rank != 1 || ns != q->D)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "per-axis scale must have %zu entries", q->D);
    q->mode = 1;
    return TC_STATUS_OK;
  }
  if (bs < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "block_size must be positive");
  q->bs = (size_t)bs;
  q->nblk = (q->D + q->bs - 1) / q->bs;
  bool ok = s->rank == x->rank;
  for (size_t i = 0; ok && i < x->rank; i++)
    ok = (int64_t)i == ax ? (size_t)s->dims[i] == q->nblk : s->dims[i] == x->dims[i];
  if (!ok)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "blocked scale shape does not match x");
  q->mode = 2;
  return TC_STATUS_OK;
}

static const char *const quant_attrs[] = {"axis",         "saturate",  "block_size",
                                          "output_dtype", "precision", NULL};

static tc_status check_quant(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, quant_attrs);
  if (st)
    return st;
  int64_t od = tc_attr_int(n, "output_dtype", 0);
  if (od && !is_qint((int32_t)od))
    return refuse(n, diag, "output_dtype %s is not implemented", tc_dtype_name((int32_t)od));
  int64_t pr = tc_attr_int(n, "precision", 0);
  if (pr && !tc_dtype_is_float((int32_t)pr))
    return refuse(n, diag, "precision %s is not implemented", tc_dtype_name((int32_t)pr));
  return TC_STATUS_OK;
}

static void dequantize_axis_q8(const void *x, bool sgn, size_t n, const float *s, float *zf,
                               size_t D, size_t inner, float *y);

static tc_status run_quantize(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *s = n_in > 1 ? in[1] : NULL, *zp = n_in > 2 ? in[2] : NULL;
  if (!x || !s)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x and y_scale are required");
  if (!tc_dtype_is_float(x->dtype) && x->dtype != TC_DTYPE_I32)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (!tc_dtype_is_float(s->dtype))
    return tc_kernel_bad_dtype(k, 1, s->dtype);
  int32_t odt = (int32_t)(k->opset >= 21 ? tc_attr_int(k->node, "output_dtype", 0) : 0);
  if (zp) {
    if (odt && odt != zp->dtype)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "output_dtype differs from the zero point's");
    odt = zp->dtype;
  }
  if (!odt)
    odt = TC_DTYPE_U8;
  bool mini = tc_minifloat_dtype(odt);
  if (!is_qint(odt) && !mini)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "quantizing to %s is not implemented",
                          tc_dtype_name(odt));
  qaxis q;
  tc_status st = qaxis_make(k, x, s, zp, &q);
  if (st || (st = tc_kernel_alloc(k, &out[0], odt, x->rank, x->dims)))
    return st;
  /* numpy divides in the promoted dtype of x and the scale (or precision). */
  int32_t cdt = (int32_t)(k->opset >= 23 ? tc_attr_int(k->node, "precision", 0) : 0);
  if (!cdt) {
    if (x->dtype == TC_DTYPE_F64 || s->dtype == TC_DTYPE_F64)
      cdt = TC_DTYPE_F64;
    else if (x->dtype == s->dtype)
      cdt = x->dtype;
    else
      cdt = TC_DTYPE_F32;
  }
  int64_t lo, hi;
  qrange(odt, &lo, &hi);
  size_t n = tc_rt_numel(x);
  if (tc_fast_kernels_enabled() && q.mode == 0 && x->dtype == TC_DTYPE_F32 &&
      s->dtype == TC_DTYPE_F32 && cdt == TC_DTYPE_F32 && is_q8(odt)) {
    /* per tensor, float32 to 8 bits: vector loops (conv_vec.h), the same results */
    quantize_f32(x->data, n, *(const float *)s->data, zp ? (float)qget(zp, 0) : 0.0f, odt,
                 out[0].data);
    return TC_STATUS_OK;
  }
  bool saturate = tc_attr_int(k->node, "saturate", 1) != 0;
  for (size_t i = 0; i < n; i++) {
    size_t si = qaxis_at(&q, i);
    double v, sv = tc_rt_get_f64(s, si);
    if (cdt == TC_DTYPE_F64)
      v = tc_rt_get_f64(x, i) / sv;
    else
      v = round_to(cdt, (float)tc_rt_get_f64(x, i) / round_to(cdt, (float)sv));
    if (mini) { /* a float cast of x / scale; float4 adds its zero point first */
      if (zp && odt == TC_DTYPE_F4E2M1)
        v = round_to(cdt, (float)(v + tc_minifloat_get(zp, si)));
      tc_minifloat_set(&out[0], i, v, saturate);
      continue;
    }
    double r = nearbyint(v) + (zp ? (double)qget(zp, si) : 0);
    qset(&out[0], i, clamp64(r, lo, hi));
  }
  return TC_STATUS_OK;
}

static const char *const dequant_attrs[] = {"axis", "block_size", "output_dtype", NULL};

static tc_status check_dequant(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, dequant_attrs);
  if (st)
    return st;
  int64_t od = tc_attr_int(n, "output_dtype", 0);
  if (od && !tc_dtype_is_float((int32_t)od))
    return refuse(n, diag, "output_dtype %s is not implemented", tc_dtype_name((int32_t)od));
  return TC_STATUS_OK;
}

static tc_status run_dequantize(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *s = n_in > 1 ? in[1] : NULL, *zp = n_in > 2 ? in[2] : NULL;
  if (!x || !s)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x and x_scale are required");
  bool mini = tc_minifloat_dtype(x->dtype);
  if (!is_qint(x->dtype) && x->dtype != TC_DTYPE_I32 && !mini)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (!tc_dtype_is_float(s->dtype))
    return tc_kernel_bad_dtype(k, 1, s->dtype);
  if (zp && zp->dtype != x->dtype)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x_zero_point's dtype differs from x's");
  int32_t odt = (int32_t)(k->opset >= 23 ? tc_attr_int(k->node, "output_dtype", 0) : 0);
  if (!odt)
    odt = s->dtype;
  qaxis q;
  tc_status st = qaxis_make(k, x, s, zp, &q);
  if (st || (st = tc_kernel_alloc(k, &out[0], odt, x->rank, x->dims)))
    return st;
  size_t n = tc_rt_numel(x);
  if (tc_fast_kernels_enabled() && q.mode == 0 && is_q8(x->dtype) && s->dtype == TC_DTYPE_F32 &&
      odt == TC_DTYPE_F32) {
    dequantize_q8(x->data, x->dtype, n, *(const float *)s->data, zp ? (float)qget(zp, 0) : 0.0f,
                  out[0].data);
    return TC_STATUS_OK;
  }
  if (tc_fast_kernels_enabled() && q.mode == 1 && is_q8(x->dtype) && s->dtype == TC_DTYPE_F32 &&
      odt == TC_DTYPE_F32 && n) {
    float *zf = tc_arena_alloc(k->arena, q.D * sizeof *zf);
    if (!zf)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    for (size_t c = 0; c < q.D; c++)
      zf[c] = zp ? (float)qget(zp, c) : 0.0f;
    dequantize_axis_q8(x->data, x->dtype == TC_DTYPE_I8, n, s->data, zf, q.D, q.inner, out[0].data);
    return TC_STATUS_OK;
  }
  for (size_t i = 0; i < n; i++) {
    size_t si = qaxis_at(&q, i);
    float dx = mini ? (float)tc_minifloat_get(x, i) - (zp ? (float)tc_minifloat_get(zp, si) : 0.0f)
                    : (float)qget(x, i) - (zp ? (float)qget(zp, si) : 0.0f);
    float sv = (float)tc_rt_get_f64(s, si);
    if (s->dtype == TC_DTYPE_F64)
      tc_rt_set_f64(&out[0], i, (double)dx * tc_rt_get_f64(s, si));
    else
      tc_rt_set_f64(&out[0], i, dx * sv);
  }
  return TC_STATUS_OK;
}

/* DynamicQuantizeLinear over float32, in pieces: each piece's min and max
 * (with 0), then y = saturate(round(x / scale) + zp) element by element, the
 * same operations for every element as a single pass. The reference kernels
 * (TACORT_KERNELS=reference) quantize with nearbyintf in one loop; the
 * results are identical. */
typedef struct dynq {
  const float *x;
  void *y;       /* uint8, or int8 when sgn */
  float *minmax; /* per piece: min, max */
  size_t pieces;
  float scale, zp;
  float qlo, qhi; /* the output dtype's range */
  bool sgn;
} dynq;

typedef struct deq {
  const void *x;
  float *y;
  float scale, zp;
  bool sgn;
} deq;

/* tc_qadd_run's operands (qadd_piece in conv_vec.h) */
typedef struct qadd_job {
  const void *a, *b;
  void *y;
  float as, az, bs, bz, ys, yz;
  bool a_sgn, b_sgn, relu;
  int32_t ydt;
  size_t b_period; /* 0: b has a's shape; else b repeats every b_period elements */
} qadd_job;

/* The vector loops below (conv_vec.h) are built once per instruction set
 * at its native width, as runtime/vmath.c's array math and chosen the same
 * way (tc_vmath_name: the widest this CPU runs, or TACORT_VMATH's): 16-lane
 * vectors in 16-lane target_clones had made GCC scalarize their compares
 * in the AVX2 and SSE2 clones. The same operations for every element
 * whatever the width. */
#if !defined(__clang__) /* the clang build (fuzzing) has the SSE2 loops only */
#pragma GCC diagnostic ignored "-Wpsabi"
#define DQ_LANES 16
#define DQ_NAME(f) f##_avx512
#define DQ_TARGET __attribute__((target("avx512f")))
#include "conv_vec.h"
#undef DQ_LANES
#undef DQ_NAME
#undef DQ_TARGET
#define DQ_LANES 8
#define DQ_NAME(f) f##_avx2
#define DQ_TARGET __attribute__((target("avx2")))
#include "conv_vec.h"
#undef DQ_LANES
#undef DQ_NAME
#undef DQ_TARGET
#endif
#define DQ_LANES 4
#define DQ_NAME(f) f##_sse2
#define DQ_TARGET
#include "conv_vec.h"
#undef DQ_LANES
#undef DQ_NAME
#undef DQ_TARGET

#if !defined(__clang__)
#define DQ_PICK(f)                                                                                 \
  (!strcmp(tc_vmath_name(), "avx512") ? f##_avx512                                                 \
   : !strcmp(tc_vmath_name(), "avx2") ? f##_avx2                                                   \
                                      : f##_sse2)
#else
#define DQ_PICK(f) f##_sse2
#endif

static tc_par_fn maxpool2d_planes(void) { return DQ_PICK(maxpool2d_planes); }
static tc_par_fn avgpool2d_planes(void) { return DQ_PICK(avgpool2d_planes); }
static tc_par_fn avgpool_nhwc_rows(void) { return DQ_PICK(avgpool_nhwc_rows); }
static tc_par_fn maxpool8_nhwc_rows(void) { return DQ_PICK(maxpool8_nhwc_rows); }
static tc_par_fn rs_sep_planes(void) { return DQ_PICK(rs_sep_planes); }

/* QuantizeLinear per tensor from float32 (see run_quantize). */
static void quantize_f32(const float *x, size_t n, float scale, float zp, int32_t odt, void *y) {
  bool sgn = odt == TC_DTYPE_I8;
  dynq j = {.x = x,
            .y = y,
            .scale = scale,
            .zp = zp,
            .qlo = sgn ? -128 : 0,
            .qhi = sgn ? 127 : 255,
            .sgn = sgn};
  tc_parallel_for(n, tc_parallel_grain(4), DQ_PICK(dynq_quant_piece), &j);
}

void tc_qadd_run(const tc_qadd *q) {
  qadd_job j = {.a = q->a,
                .b = q->b,
                .y = q->y,
                .as = q->as,
                .az = (float)q->az,
                .bs = q->bs,
                .bz = (float)q->bz,
                .ys = q->ys,
                .yz = (float)q->yz,
                .a_sgn = q->adt == TC_DTYPE_I8,
                .b_sgn = q->bdt == TC_DTYPE_I8,
                .relu = q->relu,
                .ydt = q->ydt,
                .b_period = q->b_period};
  tc_parallel_for(q->n, tc_parallel_grain(4), DQ_PICK(qadd_piece), &j);
}

static void dequantize_q8(const void *x, int32_t dt, size_t n, float scale, float zp, float *y) {
  deq j = {.x = x, .y = y, .scale = scale, .zp = zp, .sgn = dt == TC_DTYPE_I8};
  tc_parallel_for(n, tc_parallel_grain(4), DQ_PICK(deq_piece), &j);
}

/* Per-axis int8 / uint8 to float32: blocks of `inner` elements share channel
 * c's scale and zero point; with inner 1 (the last axis) a row of D
 * elements takes the channels' vectors. The reference's arithmetic,
 * (float(x) - float(zp)) * scale, element by element. */
typedef struct deq_axis {
  const void *x;
  float *y;
  const float *s;
  size_t D, inner;
  bool sgn;
  float *zf; /* zero points as floats, D of them */
} deq_axis;

static float deq_x(const deq_axis *j, size_t i) {
  return j->sgn ? (float)((const int8_t *)j->x)[i] : (float)((const uint8_t *)j->x)[i];
}

static void deq_axis_piece(void *ctx, size_t piece, size_t lo, size_t hi);

static void dequantize_axis_q8(const void *x, bool sgn, size_t n, const float *s, float *zf,
                               size_t D, size_t inner, float *y) {
  deq_axis j = {.x = x, .y = y, .s = s, .zf = zf, .D = D, .inner = inner, .sgn = sgn};
  size_t items = inner == 1 ? n / D : n / inner;
  tc_parallel_for(items, tc_parallel_grain(inner == 1 ? D : inner), deq_axis_piece, &j);
}

static void deq_axis_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const deq_axis *j = ctx;
  if (j->inner == 1) { /* items are rows of D */
    for (size_t r = lo; r < hi; r++)
      for (size_t c = 0; c < j->D; c++)
        j->y[r * j->D + c] = (deq_x(j, r * j->D + c) - j->zf[c]) * j->s[c];
    return;
  }
  for (size_t b = lo; b < hi; b++) { /* items are blocks of inner */
    size_t c = b % j->D;
    float sc = j->s[c], z = j->zf[c];
    for (size_t i = b * j->inner; i < (b + 1) * j->inner; i++)
      j->y[i] = (deq_x(j, i) - z) * sc;
  }
}

/* The scale and zero point of DynamicQuantizeLinear for min(0, min x) and
 * max(0, max x). */
static void dynq_params(float mn, float mx, float *scale, float *zp) {
  *scale = (mx == mn ? 1.0f : mx - mn) / 255.0f;
  float zp0 = 0.0f - mn / *scale;
  zp0 = zp0 < 0 ? 0 : zp0 > 255 ? 255 : zp0;
  *zp = nearbyintf(zp0);
}

static tc_status run_dynquant(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_in;
  const tc_rt_tensor *x = in[0];
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "x is required");
  if (x->dtype != TC_DTYPE_F32)
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (n_out < 3)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "DynamicQuantizeLinear has three outputs");
  tc_status st = tc_kernel_alloc_uninit(k, &out[0], TC_DTYPE_U8, x->rank, x->dims);
  if (st || (st = tc_kernel_alloc(k, &out[1], TC_DTYPE_F32, 0, NULL)) ||
      (st = tc_kernel_alloc(k, &out[2], TC_DTYPE_U8, 0, NULL)))
    return st;
  const float *xv = x->data;
  size_t n = tc_rt_numel(x);
  float mx = 0, mn = 0, scale, zp;
  if (!tc_fast_kernels_enabled()) {
    for (size_t i = 0; i < n; i++) {
      mx = xv[i] > mx ? xv[i] : mx;
      mn = xv[i] < mn ? xv[i] : mn;
    }
    dynq_params(mn, mx, &scale, &zp);
    uint8_t *y = out[0].data;
    for (size_t i = 0; i < n; i++)
      y[i] = (uint8_t)clamp64((double)(nearbyintf(xv[i] / scale) + zp), 0, 255);
  } else {
    size_t grain = tc_parallel_grain(4), pieces = tc_parallel_pieces(n, grain);
    dynq j = {.x = xv, .y = out[0].data, .pieces = pieces, .qlo = 0, .qhi = 255};
    if (!(j.minmax = tc_arena_alloc(k->arena, 2 * pieces * sizeof *j.minmax)))
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
    memset(j.minmax, 0, 2 * pieces * sizeof *j.minmax); /* n = 0 runs no piece */
    tc_parallel_for(n, grain, DQ_PICK(dynq_minmax_piece), &j);
    /* min(0, min x) and max(0, max x): the piece order does not matter */
    for (size_t p = 0; p < pieces; p++) {
      mn = j.minmax[2 * p] < mn ? j.minmax[2 * p] : mn;
      mx = j.minmax[2 * p + 1] > mx ? j.minmax[2 * p + 1] : mx;
    }
    dynq_params(mn, mx, &scale, &zp);
    j.scale = scale;
    j.zp = zp;
    tc_parallel_for(n, grain, DQ_PICK(dynq_quant_piece), &j);
  }
  *(float *)out[1].data = scale;
  *(uint8_t *)out[2].data = (uint8_t)zp;
  return TC_STATUS_OK;
}

/* ---- Resize / Upsample ---- */

typedef enum { R_NEAREST, R_LINEAR, R_CUBIC } rmode;
typedef enum {
  C_HALF_PIXEL,
  C_HALF_PIXEL_SYM,
  C_PYTORCH_HALF_PIXEL,
  C_ALIGN_CORNERS,
  C_ASYMMETRIC,
  C_TF_CROP
} rctm;
typedef enum { N_PREFER_FLOOR, N_PREFER_CEIL, N_FLOOR, N_CEIL, N_SIMPLE } rnear;

typedef struct rparams {
  rmode mode;
  rctm ctm;
  rnear nearest;
  double cubic_a, extrap;
  bool exclude_outside, antialias;
} rparams;

/* Interpolation weights for one output coordinate: fills w (n of them) for
 * ratio, scale. Returns the number of taps. */
static int rs_coeffs(const rparams *p, double ratio, double scale, double *w, int cap) {
  if (p->mode == R_NEAREST) {
    if (ratio == 1.0) {
      w[0] = 0, w[1] = 1;
      return 2;
    }
    bool hi;
    switch (p->nearest) {
    case N_PREFER_FLOOR: hi = ratio > 0.5; break;
    case N_PREFER_CEIL: hi = ratio >= 0.5; break;
    case N_FLOOR: hi = false; break;
    case N_CEIL: hi = true; break;
    default: hi = scale < 1.0; break; /* simple: ceil when downsampling */
    }
    w[0] = !hi, w[1] = hi;
    return 2;
  }
  if (p->mode == R_LINEAR) {
    if (!p->antialias) {
      w[0] = 1 - ratio, w[1] = ratio;
      return 2;
    }
    double sc = scale < 1 ? scale : 1;
    int start = (int)floor(-1 / sc) + 1, n = 2 - 2 * start;
    if (n > cap)
      return -1;
    double sum = 0;
    for (int i = 0; i < n; i++) {
      double a = fabs((start + i - ratio) * sc);
      w[i] = a < 1 ? 1 - a : 0;
      sum += w[i];
    }
    for (int i = 0; i < n; i++)
      w[i] /= sum;
    return n;
  }
  double A = p->cubic_a;
  if (!p->antialias) {
    double r = ratio, q = 1 - ratio;
    w[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
    w[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
    w[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
    w[3] = ((A * (q + 1) - 5 * A) * (q + 1) + 8 * A) * (q + 1) - 4 * A;
    return 4;
  }
  double sc = scale < 1 ? scale : 1;
  int start = (int)floor(-2 / sc) + 1, n = 2 - 2 * start;
  if (n > cap)
    return -1;
  double sum = 0;
  for (int i = 0; i < n; i++) {
    double x = fabs(sc * (start + i - ratio)), x2 = x * x, x3 = x2 * x;
    w[i] = x <= 1  ? (A + 2) * x3 - (A + 3) * x2 + 1
           : x < 2 ? A * x3 - 5 * A * x2 + 8 * A * x - 4 * A
                   : 0;
    sum += w[i];
  }
  for (int i = 0; i < n; i++)
    w[i] /= sum;
  return n;
}

#define RS_MAXTAPS 256

/* Output coordinate y of an axis resized from inw to outw positions: its
 * taps' first input index *start and their weights w (the count returned,
 * -1 when an antialiased downscale needs more than RS_MAXTAPS), *extrap
 * when the coordinate falls outside the input (tf_crop_and_resize). */
static int rs_taps(const rparams *p, int64_t inw, int64_t outw, double scale, double roi0,
                   double roi1, int64_t y, double *w, int64_t *start, bool *extrap) {
  double owf = scale * (double)inw, x;
  *extrap = false;
  switch (p->ctm) {
  case C_ALIGN_CORNERS: x = owf == 1 ? 0 : (double)y * (double)(inw - 1) / (owf - 1); break;
  case C_ASYMMETRIC: x = (double)y / scale; break;
  case C_TF_CROP:
    x = owf == 1 ? (roi1 - roi0) * (double)(inw - 1) / 2
                 : (double)y * (roi1 - roi0) * (double)(inw - 1) / (owf - 1);
    x += roi0 * (double)(inw - 1);
    *extrap = x < 0 || x > (double)(inw - 1);
    break;
  case C_PYTORCH_HALF_PIXEL: x = owf == 1 ? -0.5 : ((double)y + 0.5) / scale - 0.5; break;
  case C_HALF_PIXEL_SYM: {
    double adj = (double)outw / owf, center = (double)inw / 2, off = center * (1 - adj);
    x = off + ((double)y + 0.5) / scale - 0.5;
    break;
  }
  default: x = ((double)y + 0.5) / scale - 0.5; break;
  }
  double fl = floor(x);
  double ratio = x == fl ? 1.0 : x - fl;
  int n = rs_coeffs(p, ratio, scale, w, RS_MAXTAPS);
  if (n < 0)
    return n;
  double frac = x - fl;
  int64_t off;
  if (n % 2 == 0)
    off = frac == 0 ? -(n / 2) : -(n / 2) + 1;
  else
    off = frac <= 0.5 ? -((n - 1) / 2) : -((n - 1) / 2) + 1;
  *start = (int64_t)fl + off;
  if (p->exclude_outside) {
    double sum = 0;
    for (int j = 0; j < n; j++) {
      if (*start + j < 0 || *start + j >= inw)
        w[j] = 0;
      sum += w[j];
    }
    if (sum == 0)
      sum = 1;
    for (int j = 0; j < n; j++)
      w[j] /= sum;
  }
  return n;
}

/* Resizes axis `axis` of src (dims) into dst (dims with dims[axis] = outw). */
static tc_status rs_axis(tc_kernel_ctx *k, const rparams *p, const double *src, double *dst,
                         size_t rank, const int64_t *dims, size_t axis, int64_t outw, double scale,
                         double roi0, double roi1) {
  int64_t inw = dims[axis];
  size_t outer = 1, inner = 1;
  for (size_t i = 0; i < axis; i++)
    outer *= (size_t)dims[i];
  for (size_t i = axis + 1; i < rank; i++)
    inner *= (size_t)dims[i];
  double w[RS_MAXTAPS];
  for (int64_t y = 0; y < outw; y++) {
    int64_t start;
    bool extrap;
    int n = rs_taps(p, inw, outw, scale, roi0, roi1, y, w, &start, &extrap);
    if (n < 0)
      return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "antialias downscale too strong");
    for (size_t o = 0; o < outer; o++)
      for (size_t r = 0; r < inner; r++) {
        double acc = 0;
        if (extrap) {
          acc = p->extrap;
        } else {
          for (int j = 0; j < n; j++) {
            if (w[j] == 0)
              continue;
            int64_t ii = start + j;
            ii = ii < 0 ? 0 : ii >= inw ? inw - 1 : ii;
            acc += w[j] * src[(o * (size_t)inw + (size_t)ii) * inner + r];
          }
        }
        dst[(o * (size_t)outw + (size_t)y) * inner + r] = acc;
      }
  }
  return TC_STATUS_OK;
}

/* Nearest-neighbour resize as a gather: each output element is a copy of
 * the input element rs_taps picks along every axis (the tap of weight 1,
 * clamped as rs_axis clamps), so any dtype, bit for bit what the reference
 * computes. Rows of the output (all axes but the last) are split between
 * threads. */
typedef struct rs_gather {
  const unsigned char *x;
  unsigned char *y;
  size_t rank, es;
  const int64_t *odims;
  int64_t *idx[TC_MAX_RANK];   /* per axis, the input index of each output index */
  size_t istride[TC_MAX_RANK]; /* input strides in elements */
} rs_gather;

static void rs_gather_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const rs_gather *j = ctx;
  size_t last = j->rank - 1, ow = (size_t)j->odims[last], es = j->es;
  const int64_t *il = j->idx[last];
  for (size_t row = lo; row < hi; row++) {
    size_t base = 0, rem = row;
    for (size_t a = last; a-- > 0;) {
      size_t i = rem % (size_t)j->odims[a];
      rem /= (size_t)j->odims[a];
      base += (size_t)j->idx[a][i] * j->istride[a];
    }
    unsigned char *dst = j->y + row * ow * es;
    const unsigned char *src = j->x + base * es;
    if (es == 4)
      for (size_t q = 0; q < ow; q++)
        memcpy(dst + q * 4, src + (size_t)il[q] * 4, 4);
    else
      for (size_t q = 0; q < ow; q++)
        memcpy(dst + q * es, src + (size_t)il[q] * es, es);
  }
}

/* False when the case is not a plain gather (extrapolation, exclude_outside,
 * a string or empty tensor) or memory runs out: the caller takes the
 * reference path. */
static bool rs_nearest(tc_kernel_ctx *k, const rparams *p, const tc_rt_tensor *x,
                       const int64_t *osz, const double *scales, const double *roi,
                       tc_rt_tensor *out) {
  size_t r = x->rank, es = tc_dtype_bytes(x->dtype, 1);
  if (p->mode != R_NEAREST || p->ctm == C_TF_CROP || p->exclude_outside || r == 0 || !es ||
      x->dtype == TC_DTYPE_STRING || !tc_rt_numel(x) || !tc_rt_numel(&out[0]))
    return false;
  rs_gather j = {.x = x->data, .y = out[0].data, .rank = r, .es = es, .odims = osz};
  double w[RS_MAXTAPS];
  for (size_t a = r; a-- > 0;) {
    j.istride[a] = a + 1 == r ? 1 : j.istride[a + 1] * (size_t)x->dims[a + 1];
    if (!(j.idx[a] = tc_arena_alloc(k->arena, (size_t)osz[a] * sizeof(int64_t))))
      return false;
    int64_t inw = x->dims[a];
    for (int64_t y = 0; y < osz[a]; y++) {
      int64_t start;
      bool extrap;
      int n = rs_taps(p, inw, osz[a], scales[a], roi ? roi[a] : 0, roi ? roi[r + a] : 1, y, w,
                      &start, &extrap);
      if (n != 2 || extrap)
        return false;
      int64_t ii = start + (w[1] != 0);
      j.idx[a][y] = ii < 0 ? 0 : ii >= inw ? inw - 1 : ii;
    }
  }
  size_t rows = tc_rt_numel(&out[0]) / (size_t)osz[r - 1];
  tc_parallel_for(rows, tc_parallel_grain((size_t)osz[r - 1]), rs_gather_rows, &j);
  return true;
}

/* Whether rs_run leaves axis a as it is (scale 1, same size, whole roi). */
static bool rs_identity(const int64_t *dims, const int64_t *osz, const double *scales,
                        const double *roi, size_t r, size_t a) {
  return fabs(scales[a] - 1) <= 1e-9 && osz[a] == dims[a] &&
         (!roi || (roi[a] == 0 && fabs(roi[r + a] - 1) <= 1e-9));
}

/* One axis's tap table for rs_separable: identity axes one tap of weight 1
 * (what skipping them computes); false when a tap count is not the axis's
 * n (antialias) or a coordinate extrapolates. */
static bool rs_table(tc_kernel_ctx *k, const rparams *p, const tc_rt_tensor *x, const int64_t *osz,
                     const double *scales, const double *roi, size_t a, int *n, int64_t **st,
                     double **wt) {
  size_t r = x->rank;
  bool id = rs_identity(x->dims, osz, scales, roi, r, a);
  double w[RS_MAXTAPS];
  int64_t start;
  bool extrap;
  *n = id ? 1
          : rs_taps(p, x->dims[a], osz[a], scales[a], roi ? roi[a] : 0, roi ? roi[r + a] : 1, 0, w,
                    &start, &extrap);
  if (*n < 1 || *n > 4 || !(*st = tc_arena_alloc(k->arena, (size_t)osz[a] * sizeof **st)) ||
      !(*wt = tc_arena_alloc(k->arena, (size_t)osz[a] * (size_t)*n * sizeof **wt)))
    return false;
  for (int64_t o = 0; o < osz[a]; o++) {
    if (id) {
      (*st)[o] = o, (*wt)[o] = 1.0;
      continue;
    }
    int m = rs_taps(p, x->dims[a], osz[a], scales[a], roi ? roi[a] : 0, roi ? roi[r + a] : 1, o, w,
                    &start, &extrap);
    if (m != *n || extrap)
      return false;
    (*st)[o] = start;
    memcpy(*wt + o * *n, w, (size_t)*n * sizeof *w);
  }
  return true;
}

/* Float32 linear or cubic Resize (no antialias) of the last two axes only,
 * separably: each output row's column sums over its taps' input rows, then
 * each output's sum over its column taps, both in double in the
 * reference's tap order with the same zero-weight skips and index clamps,
 * rounded once: the reference's bits (rs_axis resizes the axes one after
 * the other in double), without its double copies of the whole tensor.
 * False when the case is not such or memory runs out. */
static bool rs_separable(tc_kernel_ctx *k, const rparams *p, const tc_rt_tensor *x,
                         const int64_t *osz, const double *scales, const double *roi,
                         tc_rt_tensor *out) {
  size_t r = x->rank;
  if (x->dtype != TC_DTYPE_F32 || r < 2 || p->mode == R_NEAREST || p->antialias ||
      p->ctm == C_TF_CROP || !tc_rt_numel(x) || !tc_rt_numel(&out[0]))
    return false;
  for (size_t a = 0; a + 2 < r; a++)
    if (!rs_identity(x->dims, osz, scales, roi, r, a))
      return false;
  rs_sep j = {.x = x->data,
              .y = out[0].data,
              .H = x->dims[r - 2],
              .W = x->dims[r - 1],
              .OH = osz[r - 2],
              .OW = osz[r - 1]};
  int64_t *sh, *sw;
  double *wh, *ww;
  if (!rs_table(k, p, x, osz, scales, roi, r - 2, &j.nh, &sh, &wh) ||
      !rs_table(k, p, x, osz, scales, roi, r - 1, &j.nw, &sw, &ww))
    return false;
  int64_t *cidx = tc_arena_alloc(k->arena, (size_t)(j.OW * j.nw) * sizeof *cidx);
  if (!cidx)
    return false;
  for (int64_t o = 0; o < j.OW; o++) /* column taps clamped once, as rs_axis clamps */
    for (int t = 0; t < j.nw; t++) {
      int64_t i = sw[o] + t;
      cidx[o * j.nw + t] = i < 0 ? 0 : i >= j.W ? j.W - 1 : i;
    }
  j.sh = sh, j.sw = cidx, j.wh = wh, j.ww = ww;
  size_t planes = tc_rt_numel(x) / (size_t)(j.H * j.W);
  size_t grain = tc_parallel_grain((size_t)(j.OH * (j.W * j.nh + j.OW * j.nw)));
  size_t pieces = tc_parallel_pieces(planes, grain);
  if (!(j.rows = tc_arena_alloc(k->arena, pieces * (size_t)j.W * sizeof(double))))
    return false;
  tc_parallel_for(planes, grain, rs_sep_planes(), &j);
  return true;
}

/* Runs the resize once output sizes, scales and roi (2*rank, or NULL) are known. */
static tc_status rs_run(tc_kernel_ctx *k, const rparams *p, const tc_rt_tensor *x,
                        const int64_t *osz, const double *scales, const double *roi,
                        tc_rt_tensor *out) {
  if (!tc_dtype_is_float(x->dtype) && !is_q8(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  tc_status st = tc_kernel_alloc_uninit(k, &out[0], x->dtype, x->rank, osz); /* all written */
  if (st)
    return st;
  if (tc_fast_kernels_enabled() &&
      (rs_nearest(k, p, x, osz, scales, roi, out) || rs_separable(k, p, x, osz, scales, roi, out)))
    return TC_STATUS_OK;
  double *cur = load(k, x);
  if (!cur)
    return TC_STATUS_NOMEM;
  int64_t dims[TC_MAX_RANK];
  memcpy(dims, x->dims, x->rank * sizeof *dims);
  size_t r = x->rank;
  for (size_t a = 0; a < r; a++) {
    double r0 = roi ? roi[a] : 0, r1 = roi ? roi[r + a] : 1;
    if (fabs(scales[a] - 1) <= 1e-9 && osz[a] == dims[a] &&
        (!roi || (r0 == 0 && fabs(r1 - 1) <= 1e-9)))
      continue;
    if (dims[a] == 0 && osz[a] > 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "cannot resize an empty axis to %lld",
                            (long long)osz[a]);
    size_t n = 1;
    for (size_t i = 0; i < r; i++)
      n *= (size_t)(i == a ? osz[a] : dims[i]);
    double *nxt = scratch(k, n);
    if (!nxt)
      return TC_STATUS_NOMEM;
    if ((st = rs_axis(k, p, cur, nxt, r, dims, a, osz[a], scales[a], r0, r1)))
      return st;
    dims[a] = osz[a];
    cur = nxt;
  }
  size_t n = tc_rt_numel(&out[0]);
  if (is_q8(x->dtype)) {
    int64_t lo, hi;
    qrange(x->dtype, &lo, &hi);
    for (size_t i = 0; i < n; i++)
      tc_rt_set_i64(&out[0], i, clamp64(nearbyint(cur[i]), lo, hi));
  } else {
    store(&out[0], cur);
  }
  return TC_STATUS_OK;
}

static const char *const resize_modes[] = {"nearest", "linear", "cubic", NULL};
static const char *const resize_ctms[] = {"half_pixel",
                                          "half_pixel_symmetric",
                                          "pytorch_half_pixel",
                                          "align_corners",
                                          "asymmetric",
                                          "tf_crop_and_resize",
                                          NULL};
static const char *const resize_nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor",
                                             "ceil", NULL};
static const char *const resize_kar[] = {"stretch", "not_larger", "not_smaller", NULL};
static const char *const resize_attrs[] = {"antialias",
                                           "axes",
                                           "coordinate_transformation_mode",
                                           "cubic_coeff_a",
                                           "exclude_outside",
                                           "extrapolation_value",
                                           "keep_aspect_ratio_policy",
                                           "mode",
                                           "nearest_mode",
                                           NULL};
static const char *const resize10_attrs[] = {"mode", NULL};
static const char *const upsample7_attrs[] = {"mode", "scales", NULL};
static const char *const resize10_modes[] = {"nearest", "linear", NULL};

static tc_status check_resize(const tc_node *n, int64_t opset, tc_diag *diag) {
  tc_status st;
  if (opset < 11) {
    if ((st = tc_kernel_check_attrs(n, diag, resize10_attrs)))
      return st;
    return check_one_of(n, diag, "mode", resize10_modes);
  }
  if ((st = tc_kernel_check_attrs(n, diag, resize_attrs)) ||
      (st = check_one_of(n, diag, "mode", resize_modes)) ||
      (st = check_one_of(n, diag, "coordinate_transformation_mode", resize_ctms)) ||
      (st = check_one_of(n, diag, "nearest_mode", resize_nearest)) ||
      (st = check_one_of(n, diag, "keep_aspect_ratio_policy", resize_kar)))
    return st;
  if (attr_is(n, "mode", "nearest", "nearest") && tc_attr_int(n, "antialias", 0))
    return refuse(n, diag, "%s is not defined for mode nearest", "antialias");
  return TC_STATUS_OK;
}

static tc_status check_upsample(const tc_node *n, int64_t opset, tc_diag *diag) {
  tc_status st = tc_kernel_check_attrs(n, diag, opset < 9 ? upsample7_attrs : resize10_attrs);
  if (st)
    return st;
  if (opset < 9 && !tc_attr_has(n, "scales"))
    return refuse(n, diag, "%s attribute is required", "scales");
  return check_one_of(n, diag, "mode", resize10_modes);
}

/* Output sizes from per-dim scales (floor(scale * in)). */
static tc_status sizes_from_scales(tc_kernel_ctx *k, const tc_rt_tensor *x, const double *sc,
                                   int64_t *osz) {
  for (size_t i = 0; i < x->rank; i++) {
    if (!(sc[i] > 0))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "scales must be positive");
    osz[i] = (int64_t)floor(sc[i] * (double)x->dims[i]);
  }
  return TC_STATUS_OK;
}

static tc_status run_resize_simple(tc_kernel_ctx *k, const tc_rt_tensor *x, const double *sc,
                                   tc_rt_tensor *out) {
  rparams p = {0};
  p.mode = attr_is(k->node, "mode", "linear", "nearest") ? R_LINEAR : R_NEAREST;
  p.ctm = C_ASYMMETRIC;
  p.nearest = N_SIMPLE;
  int64_t osz[TC_MAX_RANK];
  tc_status st = sizes_from_scales(k, x, sc, osz);
  return st ? st : rs_run(k, &p, x, osz, sc, NULL, out);
}

static tc_status read_scales(tc_kernel_ctx *k, const tc_rt_tensor *x, const tc_rt_tensor *s,
                             double *sc) {
  if (!s || tc_rt_numel(s) != x->rank || !tc_dtype_is_float(s->dtype))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "scales must hold one float per dim of X");
  for (size_t i = 0; i < x->rank; i++)
    sc[i] = tc_rt_get_f64(s, i);
  return TC_STATUS_OK;
}

static tc_status run_upsample(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0];
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  if (x->rank > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "rank too high");
  double sc[TC_MAX_RANK];
  if (k->opset < 9) {
    const float *f;
    ptrdiff_t n = tc_attr_floats(k->node, "scales", &f);
    if (n != (ptrdiff_t)x->rank)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "scales must hold one float per dim of X");
    for (size_t i = 0; i < x->rank; i++)
      sc[i] = f[i];
  } else {
    tc_status st = read_scales(k, x, n_in > 1 ? in[1] : NULL, sc);
    if (st)
      return st;
  }
  return run_resize_simple(k, x, sc, out);
}

static rctm parse_ctm(const tc_node *n) {
  static const rctm v[] = {C_HALF_PIXEL,    C_HALF_PIXEL_SYM, C_PYTORCH_HALF_PIXEL,
                           C_ALIGN_CORNERS, C_ASYMMETRIC,     C_TF_CROP};
  for (int i = 0; resize_ctms[i]; i++)
    if (attr_is(n, "coordinate_transformation_mode", resize_ctms[i], "half_pixel"))
      return v[i];
  return C_HALF_PIXEL;
}

static tc_status run_resize(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0];
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X is required");
  if (x->rank > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "rank too high");
  size_t r = x->rank;
  double sc[TC_MAX_RANK];
  if (k->opset < 11) {
    tc_status st = read_scales(k, x, n_in > 1 ? in[1] : NULL, sc);
    return st ? st : run_resize_simple(k, x, sc, out);
  }
  const tc_node *nd = k->node;
  rparams p = {0};
  p.mode = attr_is(nd, "mode", "linear", "nearest")  ? R_LINEAR
           : attr_is(nd, "mode", "cubic", "nearest") ? R_CUBIC
                                                     : R_NEAREST;
  p.ctm = parse_ctm(nd);
  p.nearest = attr_is(nd, "nearest_mode", "round_prefer_ceil", "round_prefer_floor") ? N_PREFER_CEIL
              : attr_is(nd, "nearest_mode", "floor", "round_prefer_floor")           ? N_FLOOR
              : attr_is(nd, "nearest_mode", "ceil", "round_prefer_floor")            ? N_CEIL
                                                                          : N_PREFER_FLOOR;
  p.cubic_a = tc_attr_float(nd, "cubic_coeff_a", -0.75f);
  p.extrap = tc_attr_float(nd, "extrapolation_value", 0.0f);
  p.exclude_outside = tc_attr_int(nd, "exclude_outside", 0) != 0;
  p.antialias = k->opset >= 18 && tc_attr_int(nd, "antialias", 0) != 0 && p.mode != R_NEAREST;
  /* axes */
  int64_t axes[TC_MAX_RANK];
  size_t naxes = r;
  const int64_t *av;
  ptrdiff_t na = k->opset >= 18 ? tc_attr_ints(nd, "axes", &av) : -1;
  if (na >= 0) {
    if ((size_t)na > r)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "too many axes");
    naxes = (size_t)na;
    for (size_t i = 0; i < naxes; i++) {
      axes[i] = tc_axis(av[i], r);
      if (axes[i] < 0)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range", (long long)av[i]);
    }
  } else {
    for (size_t i = 0; i < r; i++)
      axes[i] = (int64_t)i;
  }
  const tc_rt_tensor *roi_t = n_in > 1 ? in[1] : NULL, *s_t = n_in > 2 ? in[2] : NULL,
                     *z_t = n_in > 3 ? in[3] : NULL;
  if (s_t && tc_rt_numel(s_t) == 0)
    s_t = NULL;
  if (z_t && tc_rt_numel(z_t) == 0)
    z_t = NULL;
  if (!s_t == !z_t)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "exactly one of scales and sizes must be given");
  int64_t osz[TC_MAX_RANK];
  memcpy(osz, x->dims, r * sizeof *osz);
  for (size_t i = 0; i < r; i++)
    sc[i] = 1;
  if (s_t) {
    if (tc_rt_numel(s_t) != naxes || !tc_dtype_is_float(s_t->dtype))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "scales must hold %zu floats", naxes);
    for (size_t i = 0; i < naxes; i++)
      sc[axes[i]] = tc_rt_get_f64(s_t, i);
    tc_status st = sizes_from_scales(k, x, sc, osz);
    if (st)
      return st;
  } else {
    if (tc_rt_numel(z_t) != naxes || z_t->dtype != TC_DTYPE_I64)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "sizes must hold %zu int64 values", naxes);
    for (size_t i = 0; i < naxes; i++) {
      int64_t a = axes[i];
      osz[a] = ((const int64_t *)z_t->data)[i];
      if (osz[a] < 0)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "sizes must not be negative");
      sc[a] = x->dims[a] ? (double)osz[a] / (double)x->dims[a] : 1;
    }
    bool larger = attr_is(nd, "keep_aspect_ratio_policy", "not_larger", "stretch");
    bool smaller = attr_is(nd, "keep_aspect_ratio_policy", "not_smaller", "stretch");
    if (k->opset >= 18 && (larger || smaller) && naxes) {
      double s = sc[axes[0]];
      for (size_t i = 1; i < naxes; i++)
        s = larger ? fmin(s, sc[axes[i]]) : fmax(s, sc[axes[i]]);
      for (size_t i = 0; i < naxes; i++) {
        sc[axes[i]] = s;
        osz[axes[i]] = (int64_t)(s * (double)x->dims[axes[i]] + 0.5);
      }
    }
  }
  double roi[2 * TC_MAX_RANK];
  bool has_roi = false;
  if (p.ctm == C_TF_CROP && roi_t && tc_rt_numel(roi_t)) {
    if (tc_rt_numel(roi_t) != 2 * naxes || !tc_dtype_is_float(roi_t->dtype))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "roi must hold %zu floats", 2 * naxes);
    for (size_t i = 0; i < r; i++)
      roi[i] = 0, roi[r + i] = 1;
    for (size_t i = 0; i < naxes; i++) {
      roi[axes[i]] = tc_rt_get_f64(roi_t, i);
      roi[r + axes[i]] = tc_rt_get_f64(roi_t, naxes + i);
    }
    has_roi = true;
  } else if (p.ctm == C_TF_CROP) {
    return tc_kernel_fail(k, TC_STATUS_INVALID, "tf_crop_and_resize needs roi");
  }
  return rs_run(k, &p, x, osz, sc, has_roi ? roi : NULL, out);
}

/* ---- MaxUnpool: scatters X to the flat output positions I names ---- */

static const char *const unpool_attrs[] = {"kernel_shape", "pads", "strides", NULL};

static tc_status check_unpool(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  tc_status st = tc_kernel_check_attrs(n, diag, unpool_attrs);
  if (!st && !tc_attr_has(n, "kernel_shape"))
    st = refuse(n, diag, "%s: the kernel_shape attribute is required", "MaxUnpool");
  return st;
}

static tc_status run_unpool(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = in[0], *ix = n_in > 1 ? in[1] : NULL, *os = n_in > 2 ? in[2] : NULL;
  if (!x || !ix)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and I are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (ix->dtype != TC_DTYPE_I64 || tc_rt_numel(ix) != tc_rt_numel(x))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "I must be int64 and shaped like X");
  if (x->rank < 3)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X must have rank 3 or more");
  size_t nsp = x->rank - 2;
  int64_t ks[TC_MAX_RANK], st_[TC_MAX_RANK], pads[2 * TC_MAX_RANK], dims[TC_MAX_RANK];
  tc_status st;
  if ((st = ints_attr(k, "kernel_shape", nsp, 0, ks)) ||
      (st = ints_attr(k, "strides", nsp, 1, st_)) || (st = ints_attr(k, "pads", 2 * nsp, 0, pads)))
    return st;
  int64_t inf[TC_MAX_RANK]; /* the shape I indexes; output_shape may pad it at the ends */
  inf[0] = x->dims[0], inf[1] = x->dims[1];
  for (size_t i = 0; i < nsp; i++)
    inf[2 + i] = (x->dims[2 + i] - 1) * st_[i] + ks[i] - pads[i] - pads[nsp + i];
  memcpy(dims, inf, x->rank * sizeof *dims);
  if (os && tc_rt_numel(os)) {
    if (os->dtype != TC_DTYPE_I64 || tc_rt_numel(os) != x->rank)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "output_shape must hold %zu int64 values",
                            x->rank);
    memcpy(dims, os->data, x->rank * sizeof *dims);
    for (size_t i = 0; i < x->rank; i++)
      if (dims[i] < inf[i])
        return tc_kernel_fail(k, TC_STATUS_INVALID,
                              "output_shape is smaller than the pooled input");
  }
  for (size_t i = 0; i < x->rank; i++)
    if (inf[i] < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "the unpooled shape would be negative");
  if ((st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, dims)))
    return st;
  size_t n = tc_rt_numel(x), ninf = 1;
  for (size_t i = 0; i < x->rank; i++)
    ninf *= (size_t)inf[i];
  double *y = scratch(k, ninf);
  if (!y)
    return TC_STATUS_NOMEM;
  for (size_t i = 0; i < n; i++) {
    int64_t j = ((const int64_t *)ix->data)[i];
    if (j < 0 || (size_t)j >= ninf)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "index %lld is outside the output", (long long)j);
    y[j] = tc_rt_get_f64(x, i);
  }
  for (size_t i = 0; i < ninf; i++) { /* place the unpooled block at the output's origin */
    size_t r = i, o = 0, mul = 1;
    for (size_t d = x->rank; d-- > 0;) {
      o += (r % (size_t)inf[d]) * mul;
      r /= (size_t)inf[d];
      mul *= (size_t)dims[d];
    }
    tc_rt_set_f64(&out[0], o, y[i]);
  }
  return TC_STATUS_OK;
}

/* ---- table ---- */

const tc_kernel_def tc_kernels_conv[] = {
    {"Conv", "", 1, run_conv, check_conv},
    {"FusedConv", "com.microsoft", 1, run_fusedconv, check_fusedconv},
    {"FusedConv", "ai.tacoc", 1, run_fusedconv, check_fusedconv},
    {"ConvRelu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvLeakyRelu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvClip", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvSigmoid", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvHardSigmoid", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvHardSwish", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvTanh", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAdd", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddRelu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddLeakyRelu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddClip", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddSigmoid", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddHardSigmoid", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddHardSwish", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddTanh", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvGelu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvSilu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"ConvAddSilu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"GemmSilu", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"ConvAddGelu", "ai.tacoc", 1, run_named_conv, check_named_conv},
    {"GemmRelu", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmLeakyRelu", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmClip", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmSigmoid", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmHardSigmoid", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmHardSwish", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmTanh", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"GemmGelu", "ai.tacoc", 1, run_gemm_act, check_gemm_act},
    {"FusedGemm", "com.microsoft", 1, run_gemm_act, check_gemm_act},
    {"CausalConvWithState", "", 27, run_causal_conv, check_causal_conv},
    {"Col2Im", "", 18, run_col2im, check_col2im},
    {"DeformConv", "", 19, run_deform_conv, check_deform_conv},
    {"ConvTranspose", "", 1, run_convt, check_convt},
    {"MaxPool", "", 1, run_maxpool, check_maxpool},
    {"AveragePool", "", 1, run_avgpool, check_avgpool},
    {"LpPool", "", 1, run_lppool, check_lppool},
    {"GlobalAveragePool", "", 1, run_gavgpool, check_none},
    {"GlobalMaxPool", "", 1, run_gmaxpool, check_none},
    {"LRN", "", 1, run_lrn, check_lrn},
    {"ConvInteger", "", 10, run_convinteger, check_conv},
    {"QLinearConv", "", 10, run_qlinearconv, check_conv},
    {"QLinearMatMul", "", 10, run_qlinearmatmul, check_none},
    {"QuantizeLinear", "", 10, run_quantize, check_quant},
    {"DequantizeLinear", "", 10, run_dequantize, check_dequant},
    {"DynamicQuantizeLinear", "", 11, run_dynquant, check_none},
    {"Resize", "", 10, run_resize, check_resize},
    {"Upsample", "", 7, run_upsample, check_upsample},
    {"MaxUnpool", "", 9, run_unpool, check_unpool},
    {NULL},
};
