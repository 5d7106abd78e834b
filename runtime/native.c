/* Generated kernels in libtacort: spec strings, which nodes they cover, the
 * adapters that call them, and loading a kernel library. See native.h. */
#include "native.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const kind_names[] = {"?",       "bias_act", "layernorm",
                                         "softmax", "ewchain",  "attention"};

const char *tc_cg_kind_name(int kind) {
  return kind >= TC_CG_BIAS_ACT && kind <= TC_CG_ATTENTION ? kind_names[kind] : "?";
}

bool tc_cg_spec_parse(const char *s, tc_cg_spec *out) {
  memset(out, 0, sizeof *out);
  out->width = 1;
  out->unroll = 1;
  while (s && *s) {
    while (*s == ' ')
      s++;
    if (!*s)
      break;
    const char *eq = strchr(s, '='), *end = strchr(s, ' ');
    if (!end)
      end = s + strlen(s);
    if (!eq || eq > end)
      return false;
    size_t klen = (size_t)(eq - s), vlen = (size_t)(end - eq - 1);
    char val[64];
    if (vlen >= sizeof val)
      return false;
    memcpy(val, eq + 1, vlen);
    val[vlen] = 0;
    char *tail = NULL;
    long long v = strtoll(val, &tail, 10);
    bool num = vlen && tail && !*tail;
#define KEY(name) (klen == strlen(name) && !strncmp(s, name, klen))
    if (KEY("kind")) {
      for (int k = TC_CG_BIAS_ACT; k <= TC_CG_ATTENTION; k++)
        if (!strcmp(val, kind_names[k]))
          out->kind = k;
    } else if (KEY("sym")) {
      memcpy(out->sym, val, vlen + 1);
    } else if (KEY("prog")) {
      char *e = NULL;
      out->prog.hash = strtoull(val, &e, 16);
      if (vlen != 16 || !e || *e)
        return false;
    } else if (KEY("types")) {
      if (vlen > TC_EW_MAX_IN || strspn(val, "fbB") != vlen)
        return false;
      memcpy(out->prog.types, val, vlen + 1);
    } else if (KEY("out")) {
      if (vlen != 1 || !strchr("fbB", val[0]))
        return false;
      out->prog.out_type = val[0];
    } else if (KEY("ins")) {
      if (vlen > TC_EW_MAX_IN || strspn(val, "FRS") != vlen)
        return false;
      memcpy(out->prog.ins, val, vlen + 1);
      out->prog.n_in = (int)vlen;
    } else if (!num) {
      return false;
    } else if (KEY("act")) {
      out->act = (int)v;
    } else if (KEY("flags")) {
      out->flags = (int)v;
    } else if (KEY("cols")) {
      out->cols = v;
    } else if (KEY("width")) {
      out->width = (int)v;
    } else if (KEY("unroll")) {
      out->unroll = (int)v;
    } else if (KEY("threads")) {
      out->threads = (int)v;
    } else if (KEY("dtype")) {
      out->dtype = (int)v;
    } else if (KEY("q")) {
      out->att_q = v;
    } else if (KEY("d")) {
      out->att_d = v;
    } else if (KEY("dv")) {
      out->att_dv = v;
    } else if (KEY("h")) {
      out->att_h = (int)v;
    } else if (KEY("kvh")) {
      out->att_kvh = (int)v;
    } /* unknown keys are ignored: newer specs stay readable */
#undef KEY
    s = end;
  }
  if (out->kind == TC_CG_EWCHAIN && (!out->prog.n_in || !out->prog.hash))
    return false;
  if (out->kind == TC_CG_ATTENTION &&
      (out->att_q <= 0 || out->att_d <= 0 || out->att_dv <= 0 || out->att_h <= 0 ||
       out->att_kvh <= 0 || out->att_h % out->att_kvh))
    return false;
  return out->kind && out->cols > 0 && out->sym[0] && out->width >= 1 && out->width <= 64 &&
         out->unroll >= 1 && out->unroll <= 8 && out->act >= 0 && out->act <= TC_CG_ACT_GELU_TANH &&
         (out->threads == 0 || out->threads == 1) &&
         (out->dtype == 0 || out->dtype == TC_DTYPE_F32 || out->dtype == TC_DTYPE_F16 ||
          out->dtype == TC_DTYPE_BF16);
}

void tc_cg_spec_format(const tc_cg_spec *sp, char *buf, size_t cap) {
  if (sp->kind == TC_CG_EWCHAIN) {
    const tc_ew_prog *p = &sp->prog;
    bool ints = strspn(p->types, "f") != strlen(p->types) || (p->out_type && p->out_type != 'f');
    char typ[64] = "";
    if (ints)
      snprintf(typ, sizeof typ, " types=%s out=%c", p->types, p->out_type ? p->out_type : 'f');
    snprintf(buf, cap, "kind=ewchain cols=%lld width=%d unroll=%d%s prog=%016llx ins=%s%s sym=%s",
             (long long)sp->cols, sp->width, sp->unroll, sp->threads ? " threads=1" : "",
             (unsigned long long)p->hash, p->ins, typ, sp->sym);
    return;
  }
  char thr[16] = "", dt[16] = "", att[96] = "";
  if (sp->kind == TC_CG_ATTENTION)
    snprintf(att, sizeof att, " q=%lld d=%lld dv=%lld h=%d kvh=%d", (long long)sp->att_q,
             (long long)sp->att_d, (long long)sp->att_dv, sp->att_h, sp->att_kvh);
  if (sp->threads)
    snprintf(thr, sizeof thr, " threads=%d", sp->threads);
  if (sp->dtype && sp->dtype != TC_DTYPE_F32)
    snprintf(dt, sizeof dt, " dtype=%d", sp->dtype);
  snprintf(buf, cap, "kind=%s act=%d flags=%d cols=%lld%s width=%d unroll=%d%s%s sym=%s",
           tc_cg_kind_name(sp->kind), sp->act, sp->flags, (long long)sp->cols, att, sp->width,
           sp->unroll, thr, dt, sp->sym);
}

static bool out_used(const tc_node *n, size_t i) { return i < n->n_outputs && n->outputs[i]; }
static bool in_used(const tc_node *n, size_t i) { return i < n->n_inputs && n->inputs[i]; }

bool tc_cg_node_spec(const tc_node *n, int64_t cols, tc_cg_spec *out) {
  memset(out, 0, sizeof *out);
  out->cols = cols;
  out->width = out->unroll = 1;
  const char *op = n->op_type ? n->op_type : "";
  bool onnx = tc_domain_equal(n->domain, ""), ms = tc_domain_equal(n->domain, "com.microsoft");
  bool ours = tc_domain_equal(n->domain, "ai.tacoc");
  if (cols <= 0)
    return false;
  if (!strcmp(op, "BiasGelu") && (ours || ms) && in_used(n, 0) && in_used(n, 1)) {
    out->kind = TC_CG_BIAS_ACT;
    out->act = TC_CG_ACT_GELU_ERF;
    out->flags = TC_CG_F_BIAS;
  } else if (!strcmp(op, "Gelu") && onnx && in_used(n, 0)) {
    const tc_attr *a = tc_node_attr(n, "approximate");
    bool tanh = a && a->s.len == 4 && !memcmp(a->s.data, "tanh", 4);
    if (a && !tanh && !(a->s.len == 4 && !memcmp(a->s.data, "none", 4)))
      return false;
    out->kind = TC_CG_BIAS_ACT;
    out->act = tanh ? TC_CG_ACT_GELU_TANH : TC_CG_ACT_GELU_ERF;
  } else if (!strcmp(op, "Softmax") && onnx && in_used(n, 0)) {
    out->kind = TC_CG_SOFTMAX;
  } else if ((!strcmp(op, "LayerNormalization") || !strcmp(op, "RMSNormalization")) && onnx &&
             in_used(n, 0) && in_used(n, 1) && !out_used(n, 1) && !out_used(n, 2)) {
    out->kind = TC_CG_LAYERNORM;
    if (op[0] == 'R')
      out->flags = TC_CG_F_RMS;
    else if (in_used(n, 2))
      out->flags = TC_CG_F_BETA;
  } else if (!strcmp(op, "SkipLayerNormalization") && (ours || ms) && in_used(n, 0) &&
             in_used(n, 1) && in_used(n, 2) && !in_used(n, 4) && !out_used(n, ms ? 1 : 2) &&
             !(ms && out_used(n, 2))) {
    out->kind = TC_CG_LAYERNORM;
    out->flags = TC_CG_F_SKIP | (in_used(n, 3) ? TC_CG_F_BETA : 0) |
                 (out_used(n, ms ? 3 : 1) ? TC_CG_F_SUM : 0);
  } else {
    return false;
  }
  return true;
}

bool tc_cg_attention_spec(const tc_node *n, tc_cg_spec *out) {
  memset(out, 0, sizeof *out);
  out->width = out->unroll = 1;
  if (!n->op_type || strcmp(n->op_type, "Attention") || !tc_domain_is_onnx(n->domain) ||
      !in_used(n, 0) || !in_used(n, 1) || !in_used(n, 2) || in_used(n, 4) || in_used(n, 5) ||
      in_used(n, 6) || out_used(n, 1) || out_used(n, 2) || out_used(n, 3) || !out_used(n, 0))
    return false;
  if ((tc_attr_has(n, "softcap") && tc_attr_float(n, "softcap", 0.0f) != 0.0f) ||
      tc_attr_int(n, "softmax_precision", TC_DTYPE_F32) != TC_DTYPE_F32 ||
      tc_attr_int(n, "left_window_size", -1) != -1 || tc_attr_int(n, "right_window_size", -1) != -1)
    return false;
  out->kind = TC_CG_ATTENTION;
  out->flags =
      (in_used(n, 3) ? TC_CG_F_MASK : 0) | (tc_attr_int(n, "is_causal", 0) ? TC_CG_F_CAUSAL : 0);
  return true;
}

bool tc_cg_attention_dims(const tc_node *n, const int64_t *q, const int64_t *k, const int64_t *v,
                          tc_cg_spec *sp) {
  int64_t h = tc_attr_int(n, "q_num_heads", 0), kvh = tc_attr_int(n, "kv_num_heads", 0);
  if (h <= 0 || kvh <= 0 || h % kvh || h > 4096 || q[2] % h || v[2] % kvh || q[0] != k[0] ||
      q[0] != v[0] || k[1] != v[1] || q[1] <= 0 || k[1] <= 0)
    return false;
  int64_t d = q[2] / h, L = k[1];
  if (d <= 0 || k[2] != kvh * d || v[2] <= 0 || L > TC_CG_ATT_MAX_KEYS ||
      (L + 15) / 16 * 16 * d > TC_CG_ATT_MAX_KT)
    return false;
  sp->cols = L;
  sp->att_q = q[1];
  sp->att_d = d;
  sp->att_dv = v[2] / kvh;
  sp->att_h = (int)h;
  sp->att_kvh = (int)kvh;
  return true;
}

static bool is_row(const tc_rt_tensor *t, int32_t dt, int64_t cols) {
  return t && t->dtype == dt && t->rank >= 1 && t->dims[t->rank - 1] == cols;
}
static bool is_param(const tc_rt_tensor *t, int32_t dt, int64_t cols) {
  return is_row(t, dt, cols) && (int64_t)tc_rt_numel(t) == cols;
}
static bool same_shape(const tc_rt_tensor *a, const tc_rt_tensor *b) {
  if (a->rank != b->rank)
    return false;
  for (size_t d = 0; d < a->rank; d++)
    if (a->dims[d] != b->dims[d])
      return false;
  return true;
}
/* True when the node's axis attribute names the last dim of rank. */
static bool last_axis(const tc_node *n, int64_t dflt, size_t rank) {
  int64_t a = tc_attr_int(n, "axis", dflt);
  return a == -1 || a == (int64_t)rank - 1;
}

bool tc_native_fit(const tc_kernel_ctx *k, const tc_cg_spec *sp, const tc_rt_tensor *const *in,
                   size_t n_in, size_t n_out, tc_native_bind *b) {
  const tc_node *n = k->node;
  const tc_rt_tensor *x = n_in > 0 ? in[0] : NULL;
  int64_t cols = sp->cols;
  int32_t dt = sp->dtype ? sp->dtype : TC_DTYPE_F32;
  memset(b, 0, sizeof *b);
  if (!is_row(x, dt, cols))
    return false;
  b->in[0] = x;
  switch (sp->kind) {
  case TC_CG_BIAS_ACT:
    if (sp->flags & TC_CG_F_BIAS) {
      if (n_in < 2 || !is_param(in[1], dt, cols) || in[1]->rank != 1)
        return false;
      b->in[1] = in[1];
    }
    break;
  case TC_CG_SOFTMAX:
    if (!last_axis(n, k->opset >= 13 ? -1 : 1, x->rank))
      return false;
    break;
  case TC_CG_LAYERNORM: {
    bool skip = sp->flags & TC_CG_F_SKIP;
    size_t g = skip ? 2 : 1; /* gamma's input slot */
    if (n_in <= g || !is_param(in[g], dt, cols))
      return false;
    if (skip) {
      if (!in[1] || in[1]->dtype != dt || !same_shape(in[1], x))
        return false;
      b->in[1] = in[1];
    } else if (!last_axis(n, -1, x->rank) || tc_attr_int(n, "stash_type", 1) != 1) {
      return false;
    }
    b->in[2] = in[g];
    if (sp->flags & TC_CG_F_BETA) {
      if (n_in <= g + 1 || !is_param(in[g + 1], dt, cols))
        return false;
      b->in[3] = in[g + 1];
    } else if (n_in > g + 1 && in[g + 1] && !(sp->flags & TC_CG_F_RMS)) {
      return false; /* a beta the kernel would ignore */
    }
    b->eps = tc_attr_float(n, "epsilon", 1e-5f);
    if (sp->flags & TC_CG_F_SUM) {
      b->sum_slot = tc_domain_equal(n->domain, "com.microsoft") ? 3 : 1;
      if (n_out <= b->sum_slot)
        return false;
    }
    break;
  }
  default: return false;
  }
  b->rows = (int64_t)(tc_rt_numel(x) / (size_t)cols);
  return true;
}

typedef struct row_job {
  tc_cg_row_fn fn;
  const float *in[TC_EW_MAX_IN];
  float *out[2];
  float params[2];
} row_job;

static void rows_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  row_job *j = ctx;
  j->fn(j->in, j->out, j->params, (int64_t)lo, (int64_t)hi);
}

/* An attention kernel on Q, K, V (and the mask) when they fit its spec. */
static bool attention_run(tc_kernel_ctx *k, const tc_cg_spec *sp, tc_cg_row_fn fn,
                          const tc_rt_tensor *const *in, size_t n_in, tc_rt_tensor *out,
                          tc_status *st) {
  const tc_rt_tensor *q = n_in > 0 ? in[0] : NULL, *kk = n_in > 1 ? in[1] : NULL,
                     *v = n_in > 2 ? in[2] : NULL, *mask = n_in > 3 ? in[3] : NULL;
  for (size_t i = 4; i < n_in; i++)
    if (in[i])
      return false;
  if (!q || !kk || !v || q->dtype != TC_DTYPE_F32 || kk->dtype != TC_DTYPE_F32 ||
      v->dtype != TC_DTYPE_F32 || q->rank != 3 || kk->rank != 3 || v->rank != 3 ||
      !(sp->flags & TC_CG_F_MASK) != !mask)
    return false;
  tc_cg_spec got = *sp;
  if (!tc_cg_attention_dims(k->node, q->dims, kk->dims, v->dims, &got) || got.cols != sp->cols ||
      got.att_q != sp->att_q || got.att_d != sp->att_d || got.att_dv != sp->att_dv ||
      got.att_h != sp->att_h || got.att_kvh != sp->att_kvh)
    return false;
  int64_t B = q->dims[0], H = sp->att_h, Sq = sp->att_q, L = sp->cols;
  /* the mask broadcast to [B, H, Sq, L] along its leading dims */
  int64_t strides[3] = {0, 0, 0}, full[3] = {B, H, Sq};
  if (mask) {
    if (mask->dtype != TC_DTYPE_F32 || mask->rank < 1 || mask->rank > 4 ||
        mask->dims[mask->rank - 1] != L)
      return false;
    int64_t stride = L;
    for (size_t back = 1; back < mask->rank; back++) {
      int64_t dim = mask->dims[mask->rank - 1 - back], full_dim = full[3 - back];
      if (dim != 1 && dim != full_dim)
        return false;
      strides[3 - back] = dim == 1 ? 0 : stride;
      stride *= dim;
    }
  }
  const tc_node *n = k->node;
  double scale = tc_attr_has(n, "scale") ? (double)tc_attr_float(n, "scale", 1.0f)
                                         : 1.0 / sqrt((double)sp->att_d);
  int64_t yd[3] = {B, Sq, H * sp->att_dv};
  if ((*st = tc_kernel_alloc_uninit(k, &out[0], TC_DTYPE_F32, 3, yd)))
    return true;
  row_job j = {.fn = fn,
               .in = {q->data, kk->data, v->data, mask ? mask->data : NULL, (const float *)strides},
               .out = {out[0].data},
               .params = {(float)scale}};
  size_t rows = (size_t)(B * H);
  if (sp->threads == 1)
    rows_piece(&j, 0, 0, rows);
  else
    tc_parallel_for(rows, tc_parallel_grain((size_t)(Sq * L * (sp->att_d + sp->att_dv + 8))),
                    rows_piece, &j);
  *st = TC_STATUS_OK;
  return true;
}

bool tc_native_run(tc_kernel_ctx *k, const tc_cg_spec *sp, tc_cg_row_fn fn,
                   const tc_rt_tensor *const *in, size_t n_in, tc_rt_tensor *out, size_t n_out,
                   tc_status *st) {
  tc_native_bind b;
  if (fn && sp->kind == TC_CG_ATTENTION && (!sp->dtype || sp->dtype == TC_DTYPE_F32))
    return attention_run(k, sp, fn, in, n_in, out, st);
  if (!fn || (sp->dtype && sp->dtype != TC_DTYPE_F32) || !tc_native_fit(k, sp, in, n_in, n_out, &b))
    return false;
  const tc_rt_tensor *x = b.in[0];
  row_job j = {.fn = fn, .params = {b.eps}};
  for (int i = 0; i < 4; i++)
    j.in[i] = b.in[i] ? b.in[i]->data : NULL;
  if ((*st = tc_kernel_alloc_uninit(k, &out[0], TC_DTYPE_F32, x->rank, x->dims)))
    return true;
  j.out[0] = out[0].data;
  if (b.sum_slot) {
    if ((*st = tc_kernel_alloc_uninit(k, &out[b.sum_slot], TC_DTYPE_F32, x->rank, x->dims)))
      return true;
    j.out[1] = out[b.sum_slot].data;
  }
  if (sp->threads == 1)
    rows_piece(&j, 0, 0, (size_t)b.rows);
  else
    tc_parallel_for((size_t)b.rows, tc_parallel_grain((size_t)sp->cols * 8), rows_piece, &j);
  *st = TC_STATUS_OK;
  return true;
}

/* ---- elementwise chains ---- */

static bool onnx_op(const tc_node *n, const char *op) {
  return tc_domain_is_onnx(n->domain) && n->op_type && !strcmp(n->op_type, op);
}
static bool ours_or_ms(const tc_node *n, const char *op) {
  return (tc_domain_equal(n->domain, "ai.tacoc") || tc_domain_equal(n->domain, "com.microsoft")) &&
         n->op_type && !strcmp(n->op_type, op);
}

static const struct {
  const char *op;
  int code;
} unary_ew[] = {{"Neg", TC_EW_NEG},         {"Abs", TC_EW_ABS},
                {"Relu", TC_EW_RELU},       {"Sigmoid", TC_EW_SIGMOID},
                {"Tanh", TC_EW_TANH},       {"Exp", TC_EW_EXP},
                {"Sqrt", TC_EW_SQRT},       {"Reciprocal", TC_EW_RECIP},
                {"Erf", TC_EW_ERF},         {"HardSwish", TC_EW_HARDSWISH},
                {"LeakyRelu", TC_EW_LEAKY}, {"HardSigmoid", TC_EW_HSIGMOID},
                {"Elu", TC_EW_ELU}};
static const struct {
  const char *op;
  int code;
} binary_ew[] = {{"Add", TC_EW_ADD}, {"Sub", TC_EW_SUB}, {"Mul", TC_EW_MUL},
                 {"Div", TC_EW_DIV}, {"Max", TC_EW_MAX}, {"Min", TC_EW_MIN}};

/* The op node n computes in *op, reading operand refs x[slot]; false when n
 * is not a supported elementwise node. (BiasGelu is not: its kernel takes a
 * bias of one row only, which a chain could not promise.) */
static bool node_op(const tc_node *n, const int *x, tc_ew_op *op) {
  memset(op, 0, sizeof *op);
  if (n->n_outputs != 1 || !n->outputs[0])
    return false;
  bool in0 = n->n_inputs >= 1 && n->inputs[0];
  op->a = x[0];
  op->b = op->c = -1;
  for (size_t i = 0; i < sizeof binary_ew / sizeof binary_ew[0]; i++)
    if (onnx_op(n, binary_ew[i].op)) {
      if (n->n_inputs != 2 || !in0 || !n->inputs[1])
        return false;
      op->op = binary_ew[i].code;
      op->b = x[1];
      return true;
    }
  if (!in0)
    return false;
  for (size_t i = 0; i < sizeof unary_ew / sizeof unary_ew[0]; i++)
    if (onnx_op(n, unary_ew[i].op)) {
      if (n->n_inputs != 1)
        return false;
      op->op = unary_ew[i].code;
      if (op->op == TC_EW_LEAKY)
        op->alpha = tc_attr_float(n, "alpha", 0.01f);
      else if (op->op == TC_EW_ELU)
        op->alpha = tc_attr_float(n, "alpha", 1.0f);
      else if (op->op == TC_EW_HSIGMOID) {
        op->alpha = tc_attr_float(n, "alpha", 0.2f);
        op->beta = tc_attr_float(n, "beta", 0.5f);
      }
      return true;
    }
  if (onnx_op(n, "Gelu")) {
    const tc_attr *a = tc_node_attr(n, "approximate");
    bool tanh = a && a->s.len == 4 && !memcmp(a->s.data, "tanh", 4);
    if (n->n_inputs != 1 || (a && !tanh && !(a->s.len == 4 && !memcmp(a->s.data, "none", 4))))
      return false;
    op->op = tanh ? TC_EW_GELU_TANH : TC_EW_GELU_ERF;
    return true;
  }
  if (onnx_op(n, "Clip")) {
    if (tc_model_opset(n->graph->model, n->domain) < 11) {
      if (n->n_inputs != 1)
        return false;
      op->op = TC_EW_CLIPC;
      op->alpha = tc_attr_float(n, "min", -3.402823466e38f);
      op->beta = tc_attr_float(n, "max", 3.402823466e38f);
      return true;
    }
    if (n->n_inputs > 3)
      return false;
    op->op = TC_EW_CLIP;
    op->b = n->n_inputs > 1 && n->inputs[1] ? x[1] : -1;
    op->c = n->n_inputs > 2 && n->inputs[2] ? x[2] : -1;
    return true;
  }
  bool dq = onnx_op(n, "DequantizeLinear"), q = onnx_op(n, "QuantizeLinear");
  if ((dq || q) && n->n_inputs >= 2 && n->n_inputs <= 3 && n->inputs[1]) {
    /* per tensor only (the scale is checked to be one element when bound),
     * no block size, output dtype or precision, saturating */
    for (size_t i = 0; i < n->n_attrs; i++)
      if (strcmp(n->attrs[i].name, "axis") &&
          !(q && !strcmp(n->attrs[i].name, "saturate") && n->attrs[i].i == 1))
        return false;
    op->op = dq ? TC_EW_DQ : TC_EW_Q;
    op->b = x[1];
    op->c = n->n_inputs > 2 && n->inputs[2] ? x[2] : -1;
    return true;
  }
  if (ours_or_ms(n, "QuickGelu") && n->n_inputs == 1) {
    op->op = TC_EW_QUICKGELU;
    op->alpha = tc_attr_float(n, "alpha", 1.702f);
    return true;
  }
  return false;
}

bool tc_ew_node_supported(const tc_node *n) {
  int x[3] = {0, 0, 0};
  tc_ew_op op;
  return n && node_op(n, x, &op);
}

static bool has_node(const tc_node *const *v, size_t n, const tc_node *x) {
  for (size_t i = 0; i < n; i++)
    if (v[i] == x)
      return true;
  return false;
}

/* The values the nodes mem[0..n) read that none of them makes, in order of
 * first use, into ext; their count, or -1 past TC_EW_MAX_IN. */
static int chain_inputs(const tc_node *const *mem, size_t n, const tc_value **ext) {
  int n_ext = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t s = 0; s < mem[i]->n_inputs; s++) {
      const tc_value *v = mem[i]->inputs[s];
      if (!v || (v->producer && has_node(mem, n, v->producer)))
        continue;
      int e = 0;
      while (e < n_ext && ext[e] != v)
        e++;
      if (e == n_ext && n_ext++ == TC_EW_MAX_IN)
        return -1;
      ext[e] = v;
    }
  return n_ext;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* Whether n's inputs are all constant (initializers that are not graph
 * inputs, or outputs of such nodes): libtacort computes such a node once
 * when a session is made, so chains leave it out. */
static bool const_node(const tc_node *n, int depth) {
  if (tc_op_is_random(n) || onnx_op(n, "Dropout")) /* as precompute_constants (session.c) */
    return false;
  if (depth > 16 || !n->n_outputs)
    return false;
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_value *v = n->inputs[i];
    if (v && !(v->init && !tc_value_is_input(v)) &&
        !(v->producer && v->producer->graph == n->graph && const_node(v->producer, depth + 1)))
      return false;
  }
  return true;
}

bool tc_ew_chain_of(const tc_node *root, tc_ew_chain *ch) {
  memset(ch, 0, sizeof *ch);
  const tc_graph *g = root ? root->graph : NULL;
  if (!g || g->parent || !tc_ew_node_supported(root) || const_node(root, 0))
    return false;
  const tc_node *mem[TC_EW_MAX_OPS], *rejected[TC_EW_MAX_OPS];
  const tc_value *ext[TC_EW_MAX_IN + 1];
  size_t n = 0, n_rej = 0;
  mem[n++] = root;
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t m = 0; m < n; m++)
      for (size_t s = 0; s < mem[m]->n_inputs; s++) {
        const tc_value *v = mem[m]->inputs[s];
        const tc_node *p = v ? v->producer : NULL;
        if (!p || p->graph != g || has_node(mem, n, p) || has_node(rejected, n_rej, p) ||
            (v->flags & TC_VALUE_OUTPUT) || !tc_ew_node_supported(p) || n == TC_EW_MAX_OPS ||
            const_node(p, 0))
          continue;
        bool only_chain = true;
        for (size_t u = 0; u < v->n_uses && only_chain; u++)
          only_chain = has_node(mem, n, v->uses[u].node);
        if (!only_chain)
          continue;
        mem[n++] = p;
        if (chain_inputs(mem, n, ext) < 0) {
          n--;
          if (n_rej < TC_EW_MAX_OPS)
            rejected[n_rej++] = p;
          continue;
        }
        changed = true;
      }
  }
  if (n < 2)
    return false;
  /* graph order: walking back from root meets every member */
  size_t k = n;
  for (const tc_node *q = root; q && k; q = q->prev)
    if (has_node(mem, n, q))
      ch->nodes[--k] = q;
  if (k)
    return false;
  ch->n_nodes = n;
  tc_ew_prog *p = &ch->prog;
  p->n_in = chain_inputs(ch->nodes, n, ch->in);
  if (p->n_in < 0)
    return false;
  /* one op per node: node i's result is operand n_in + i */
  for (size_t i = 0; i < n; i++) {
    const tc_node *q = ch->nodes[i];
    int x[3] = {-1, -1, -1};
    for (size_t s = 0; s < q->n_inputs && s < 3; s++) {
      const tc_value *v = q->inputs[s];
      for (size_t j = 0; v && j < i; j++)
        if (ch->nodes[j]->outputs[0] == v)
          x[s] = p->n_in + (int)j;
      for (int e = 0; v && e < p->n_in; e++)
        if (ch->in[e] == v)
          x[s] = e;
    }
    node_op(q, x, &p->ops[p->n_ops++]);
  }
  uint64_t h = 1469598103934665603ull;
  h = fnv(h, &p->n_in, sizeof p->n_in);
  for (int i = 0; i < p->n_ops; i++) {
    const tc_ew_op *o = &p->ops[i];
    int32_t f[4] = {o->op, o->a, o->b, o->c};
    h = fnv(fnv(fnv(h, f, sizeof f), &o->alpha, sizeof o->alpha), &o->beta, sizeof o->beta);
  }
  p->hash = h ? h : 1;
  return true;
}

char tc_ew_type_letter(int32_t dt) {
  return dt == TC_DTYPE_F32 ? 'f' : dt == TC_DTYPE_I8 ? 'b' : dt == TC_DTYPE_U8 ? 'B' : 0;
}

static char type_of(const tc_ew_prog *p, int ref) {
  return ref < 0 || ref >= p->n_in ? 'f' : p->types[0] ? p->types[ref] : 'f';
}

bool tc_ew_types_ok(const tc_ew_prog *p) {
  bool reads_int[TC_EW_MAX_IN] = {false}, int_ok[TC_EW_MAX_IN] = {false};
  if (p->types[0] && (int)strlen(p->types) != p->n_in)
    return false;
  for (int k = 0; k < p->n_ops; k++) {
    const tc_ew_op *o = &p->ops[k];
    int refs[3] = {o->a, o->b, o->c};
    for (int r = 0; r < 3; r++)
      if (refs[r] >= 0 && refs[r] < p->n_in && type_of(p, refs[r]) != 'f')
        reads_int[refs[r]] = true;
    if (o->op != TC_EW_DQ && o->op != TC_EW_Q)
      continue;
    /* scale (float) and zero point: one-element inputs */
    if (o->b >= p->n_in || p->ins[o->b] != 'S' || type_of(p, o->b) != 'f' ||
        (o->c >= 0 && (o->c >= p->n_in || p->ins[o->c] != 'S' || type_of(p, o->c) == 'f')))
      return false;
    if (o->op == TC_EW_DQ) { /* x: an int input (of the zero point's type) or a Q result */
      char xt = type_of(p, o->a);
      if (o->a < p->n_in ? xt == 'f' : p->ops[o->a - p->n_in].op != TC_EW_Q)
        return false;
      if (o->a < p->n_in && o->c >= 0 && type_of(p, o->c) != xt)
        return false;
      if (o->a < p->n_in)
        int_ok[o->a] = true;
    }
    if (o->c >= 0)
      int_ok[o->c] = true;
  }
  for (int i = 0; i < p->n_in; i++)
    if (reads_int[i] && !int_ok[i])
      return false;
  const tc_ew_op *root = &p->ops[p->n_ops - 1];
  char out = p->out_type ? p->out_type : 'f';
  char want = root->op != TC_EW_Q ? 'f' : root->c >= 0 ? type_of(p, root->c) : 'B';
  return out == want;
}

char tc_ew_input_kind(const tc_rt_tensor *t, size_t o_rank, const int64_t *o_dims, int64_t cols) {
  if (!t || t->rank > o_rank)
    return 0;
  size_t n = tc_rt_numel(t);
  bool same = t->rank == o_rank;
  for (size_t d = 0; same && d < o_rank; d++)
    same = t->dims[d] == o_dims[d];
  if (same)
    return 'F';
  if (n == 1)
    return 'S';
  if ((int64_t)n == cols && t->rank && t->dims[t->rank - 1] == cols)
    return 'R';
  return 0;
}

/* The first 'F' input, when the inputs fit sp. */
static const tc_rt_tensor *chain_fit(const tc_cg_spec *sp, const tc_rt_tensor *const *in) {
  const tc_ew_prog *p = &sp->prog;
  const tc_rt_tensor *f = NULL;
  if (sp->kind != TC_CG_EWCHAIN || (sp->dtype && sp->dtype != TC_DTYPE_F32))
    return NULL;
  for (int i = 0; i < p->n_in && !f; i++)
    if (p->ins[i] == 'F')
      f = in[i];
  if (!f || !f->rank || f->dims[f->rank - 1] != sp->cols)
    return NULL;
  for (int i = 0; i < p->n_in; i++)
    if (!in[i] || tc_ew_type_letter(in[i]->dtype) != type_of(p, i) ||
        tc_ew_input_kind(in[i], f->rank, f->dims, sp->cols) != p->ins[i])
      return NULL;
  return tc_ew_types_ok(p) ? f : NULL;
}

bool tc_native_chain_fits(const tc_cg_spec *sp, const tc_rt_tensor *const *in) {
  return sp && chain_fit(sp, in);
}

bool tc_native_chain_run(tc_kernel_ctx *k, const tc_cg_spec *sp, tc_cg_row_fn fn,
                         const tc_rt_tensor *const *in, tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *f = fn ? chain_fit(sp, in) : NULL;
  if (!f)
    return false;
  row_job j = {.fn = fn};
  for (int i = 0; i < sp->prog.n_in; i++)
    j.in[i] = in[i]->data; /* int8 / uint8 inputs too: the kernel knows their types */
  int32_t odt = sp->prog.out_type == 'b'   ? TC_DTYPE_I8
                : sp->prog.out_type == 'B' ? TC_DTYPE_U8
                                           : TC_DTYPE_F32;
  if ((*st = tc_kernel_alloc_uninit(k, &out[0], odt, f->rank, f->dims)))
    return true;
  j.out[0] = out[0].data;
  size_t rows = tc_rt_numel(f) / (size_t)sp->cols;
  if (sp->threads == 1)
    rows_piece(&j, 0, 0, rows);
  else
    tc_parallel_for(rows, tc_parallel_grain((size_t)sp->cols * 4), rows_piece, &j);
  *st = TC_STATUS_OK;
  return true;
}

const char *const tc_cpu_feature_names[] = {"sse",
                                            "sse2",
                                            "sse3",
                                            "ssse3",
                                            "sse4.1",
                                            "sse4.2",
                                            "popcnt",
                                            "avx",
                                            "avx2",
                                            "fma",
                                            "bmi",
                                            "bmi2",
                                            "avx512f",
                                            "avx512dq",
                                            "avx512cd",
                                            "avx512bw",
                                            "avx512vl",
                                            "avx512ifma",
                                            "avx512vbmi",
                                            "avx512vbmi2",
                                            "avx512vnni",
                                            "avx512bitalg",
                                            "avx512vpopcntdq",
                                            "avx512bf16",
                                            "avx512er",
                                            "avx512pf",
                                            NULL};

int tc_cpu_has(const char *name) {
  __builtin_cpu_init();
  /* __builtin_cpu_supports takes only string literals */
  const int has[] = {
      __builtin_cpu_supports("sse"),
      __builtin_cpu_supports("sse2"),
      __builtin_cpu_supports("sse3"),
      __builtin_cpu_supports("ssse3"),
      __builtin_cpu_supports("sse4.1"),
      __builtin_cpu_supports("sse4.2"),
      __builtin_cpu_supports("popcnt"),
      __builtin_cpu_supports("avx"),
      __builtin_cpu_supports("avx2"),
      __builtin_cpu_supports("fma"),
      __builtin_cpu_supports("bmi"),
      __builtin_cpu_supports("bmi2"),
      __builtin_cpu_supports("avx512f"),
      __builtin_cpu_supports("avx512dq"),
      __builtin_cpu_supports("avx512cd"),
      __builtin_cpu_supports("avx512bw"),
      __builtin_cpu_supports("avx512vl"),
      __builtin_cpu_supports("avx512ifma"),
      __builtin_cpu_supports("avx512vbmi"),
      __builtin_cpu_supports("avx512vbmi2"),
      __builtin_cpu_supports("avx512vnni"),
      __builtin_cpu_supports("avx512bitalg"),
      __builtin_cpu_supports("avx512vpopcntdq"),
      __builtin_cpu_supports("avx512bf16"),
      __builtin_cpu_supports("avx512er"),
      __builtin_cpu_supports("avx512pf"),
  };
  _Static_assert(sizeof has / sizeof *has + 1 ==
                     sizeof tc_cpu_feature_names / sizeof *tc_cpu_feature_names,
                 "one check per feature name");
  for (size_t i = 0; tc_cpu_feature_names[i]; i++)
    if (!strcmp(name, tc_cpu_feature_names[i]))
      return has[i] != 0;
  return -1;
}

void tc_sha256_hex(const void *data, size_t size, char hex[65]) {
  unsigned char md[32];
  unsigned len = 0;
  if (!EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) || len != 32)
    memset(md, 0, sizeof md);
  for (size_t i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

struct tc_native_lib {
  void *handle;
};

tc_native_lib *tc_native_lib_open(const void *data, size_t size, char *why, size_t why_cap) {
  int fd = memfd_create("tacoc-kernels", MFD_CLOEXEC);
  if (fd < 0) {
    snprintf(why, why_cap, "cannot create a memory file: %s", strerror(errno));
    return NULL;
  }
  const unsigned char *p = data;
  for (size_t done = 0; done < size;) {
    ssize_t w = write(fd, p + done, size - done);
    if (w <= 0) {
      snprintf(why, why_cap, "cannot write the memory file: %s", strerror(errno));
      close(fd);
      return NULL;
    }
    done += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  close(fd); /* the mapping keeps the contents */
  if (!h) {
    const char *e = dlerror();
    snprintf(why, why_cap, "cannot load it: %s", e ? e : "unknown error");
    return NULL;
  }
  tc_native_lib *lib = calloc(1, sizeof *lib);
  if (!lib) {
    dlclose(h);
    snprintf(why, why_cap, "out of memory");
    return NULL;
  }
  lib->handle = h;
  return lib;
}

tc_cg_row_fn tc_native_lib_sym(tc_native_lib *lib, const char *sym) {
  if (!lib || !sym)
    return NULL;
  void *f = dlsym(lib->handle, sym);
  tc_cg_row_fn fn;
  memcpy(&fn, &f, sizeof fn);
  return fn;
}

void tc_native_lib_close(tc_native_lib *lib) {
  if (!lib)
    return;
  dlclose(lib->handle);
  free(lib);
}
