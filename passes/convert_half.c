/* convert-half: float32 weights and activations to float16 or bfloat16
 * (tc_pass_options.half_type), with the ops that lose accuracy in half
 * precision kept in float32 and Casts only where a half region ends.
 *
 *   x ─▶ MatMul(W) ─▶ Add(b) ─▶ Softmax ─▶ MatMul(W2) ─▶ y            (all float32)
 *   ⇒   x ─▶ Cast(h) ─▶ MatMul(W:h) ─▶ Add(b:h) ─▶ Cast(f32) ─▶ Softmax
 *         ─▶ Cast(h) ─▶ MatMul(W2:h) ─▶ y:h
 *   (keep_io_types: graph inputs and outputs stay float32, so y gets a Cast
 *    back to float32 too; without it, float32 graph inputs and outputs become h)
 *
 * Which nodes compute in half:
 *  - the allow list (`allow` below): MatMul, Gemm, Conv, ConvTranspose,
 *    Add/Sub/Mul/Div, Relu, LeakyRelu, PRelu, Gelu, Sigmoid, Tanh, Erf,
 *    HardSwish, HardSigmoid, Clip, Neg, Abs, Max, Min, the pools;
 *    LayerNormalization, GroupNormalization (21) and RMSNormalization, whose
 *    statistics run in float32 (stash_type 1, required); Attention (23), which
 *    gets softmax_precision = 1 (float32 softmax); tacoc's ai.tacoc.Conv<Act>
 *    (not Clip, whose function builds float32 bounds), SkipLayerNormalization
 *    and BiasGelu (not EmbedLayerNormalization: float32 tables only, nor
 *    QuickGelu: its function builds a float32 constant). Data-movement ops (Transpose, Reshape,
 * Flatten, Squeeze, Unsqueeze, Concat, Slice, Gather*, Split, Expand, Tile, Pad, Identity, Where,
 * DepthToSpace, SpaceToDepth) follow their data input: half when it is half or constant, so they
 * never start a region on their own. Shape, Size and Cast read either type.
 *  - the block list (`blocked`): reductions (Reduce*, CumSum, Einsum),
 *    Softmax/LogSoftmax, BatchNormalization, InstanceNormalization,
 *    LpNormalization, MeanVarianceNormalization, Range, TopK,
 *    NonMaxSuppression, Resize, Upsample, RoiAlign, GridSample, Exp, Log,
 *    Pow, Sqrt, Reciprocal, Softplus, Softsign: stay float32.
 *  - anything else (ops of other domains, control flow, ops not listed) stays
 *    float32, as do nodes in half_keep (the validation's fallback) and nodes
 *    whose op version lacks the type in ONNX (bfloat16 needs 13 for most ops,
 *    22 for Conv and the pools; the opset is raised first when that is exact).
 *
 * Constants: a float32 initializer read by half nodes is stored in half (in
 * place when every reader is half, else as a second initializer). One with a
 * finite value beyond the half range (|x| > 65504 for float16) is an
 * attention-style mask when every path from it runs through Add, Sub, Mul,
 * Where, Min, Max, Neg or shape ops into a Softmax / LogSoftmax input or
 * Attention's mask input: its values beyond a quarter of the largest finite
 * half (16376 for float16) are clamped to that, which gives the same softmax
 * (exp underflows to 0 either way) and leaves room to add a few masks and the
 * scores without overflow. Any other out-of-range constant keeps its readers
 * in float32, as does a nonzero constant all of whose nonzero values round
 * to 0 in half (an epsilon of 1e-12, say).
 *
 * Casts: one Cast per value and target type, shared by its readers, placed
 * right after the value's producer. Afterwards Cast pairs with nothing in
 * between (float32 -> half -> float32, half -> float32 -> half) collapse to
 * their source, and Casts to the type a value already has are removed.
 *
 * Requires: types known (declared or inferred) for the values it converts.
 * Runs on the main graph only; values read inside subgraphs stay float32. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"
#include "pass.h"
#include "shapes.h"

#define ALL 0xffffffffu
#define IN(k) (1u << (k))

enum { R_COMPUTE, R_FOLLOW, R_NORM, R_ATTENTION };
enum { C_NONE = 0, C_F32, C_HALF };
enum { RG_UNCHECKED = 0, RG_OK, RG_CLAMP, RG_OVER, RG_UNDER, RG_UNREADABLE };

typedef struct half_op {
  const char *domain, *op;
  int f16, bf16; /* lowest default-domain opset whose schemas allow the type */
  int role;
  uint32_t t_in, t_out; /* input and output slots of the converted type T */
} half_op;

static const half_op allow[] = {
    {"", "MatMul", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Gemm", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Conv", 1, 22, R_COMPUTE, ALL, ALL},
    {"", "ConvTranspose", 1, 22, R_COMPUTE, ALL, ALL},
    {"", "Add", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Sub", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Mul", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Div", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Relu", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "LeakyRelu", 1, 16, R_COMPUTE, ALL, ALL},
    {"", "PRelu", 1, 16, R_COMPUTE, ALL, ALL},
    {"", "Gelu", 20, 20, R_COMPUTE, ALL, ALL},
    {"", "Sigmoid", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Tanh", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Erf", 9, 13, R_COMPUTE, ALL, ALL},
    {"", "HardSwish", 14, 22, R_COMPUTE, ALL, ALL},
    {"", "HardSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"", "Clip", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Neg", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Abs", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Max", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "Min", 1, 13, R_COMPUTE, ALL, ALL},
    {"", "MaxPool", 1, 22, R_COMPUTE, IN(0), IN(0)},
    {"", "AveragePool", 1, 22, R_COMPUTE, IN(0), IN(0)},
    {"", "GlobalAveragePool", 1, 22, R_COMPUTE, IN(0), IN(0)},
    {"", "GlobalMaxPool", 1, 22, R_COMPUTE, IN(0), IN(0)},
    {"", "LayerNormalization", 17, 17, R_NORM, ALL, IN(0)},
    {"", "GroupNormalization", 21, 21, R_NORM, ALL, IN(0)},
    {"", "RMSNormalization", 23, 23, R_NORM, ALL, IN(0)},
    {"", "Attention", 23, 23, R_ATTENTION, 0x3f, ALL},
    {"", "Transpose", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Reshape", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Flatten", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Squeeze", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Unsqueeze", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Concat", 1, 13, R_FOLLOW, ALL, ALL},
    {"", "Slice", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Gather", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "GatherElements", 11, 13, R_FOLLOW, IN(0), ALL},
    {"", "GatherND", 11, 13, R_FOLLOW, IN(0), ALL},
    {"", "Split", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Expand", 8, 13, R_FOLLOW, IN(0), ALL},
    {"", "Tile", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Pad", 1, 13, R_FOLLOW, IN(0) | IN(2), ALL},
    {"", "Identity", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "Where", 9, 16, R_FOLLOW, IN(1) | IN(2), ALL},
    {"", "DepthToSpace", 1, 13, R_FOLLOW, IN(0), ALL},
    {"", "SpaceToDepth", 1, 13, R_FOLLOW, IN(0), ALL},
    /* tacoc's fused ops: versions are those of the ops in their functions. */
    {"ai.tacoc", "ConvRelu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvLeakyRelu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvTanh", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvHardSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvHardSwish", 14, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvGelu", 20, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAdd", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddRelu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddLeakyRelu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddTanh", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddHardSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddHardSwish", 14, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddGelu", 20, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvSilu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "ConvAddSilu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmRelu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmLeakyRelu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmTanh", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmHardSigmoid", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmHardSwish", 14, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmGelu", 20, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "GemmSilu", 1, 22, R_COMPUTE, ALL, ALL},
    {"ai.tacoc", "SkipLayerNormalization", 17, 17, R_NORM, ALL, ALL},
    {"ai.tacoc", "BiasGelu", 20, 20, R_COMPUTE, ALL, ALL},
};

static const struct {
  const char *op, *why;
} blocked[] = {
    {"ReduceSum", "reduction"},
    {"ReduceMean", "reduction"},
    {"ReduceProd", "reduction"},
    {"ReduceSumSquare", "reduction"},
    {"ReduceL1", "reduction"},
    {"ReduceL2", "reduction"},
    {"ReduceLogSum", "reduction"},
    {"ReduceLogSumExp", "reduction"},
    {"ReduceMax", "reduction"},
    {"ReduceMin", "reduction"},
    {"CumSum", "reduction"},
    {"Einsum", "reduction"},
    {"Softmax", "softmax"},
    {"LogSoftmax", "softmax"},
    {"BatchNormalization", "normalization statistics"},
    {"InstanceNormalization", "normalization statistics"},
    {"LpNormalization", "normalization statistics"},
    {"MeanVarianceNormalization", "normalization statistics"},
    {"Range", "index arithmetic"},
    {"TopK", "ranking"},
    {"NonMaxSuppression", "box arithmetic"},
    {"Resize", "scales and coordinates"},
    {"Upsample", "scales and coordinates"},
    {"RoiAlign", "scales and coordinates"},
    {"GridSample", "scales and coordinates"},
    {"Exp", "exponent range"},
    {"Log", "exponent range"},
    {"Pow", "exponent range"},
    {"Sqrt", "exponent range"},
    {"Reciprocal", "exponent range"},
    {"Softplus", "exponent range"},
    {"Softsign", "exponent range"},
};

typedef struct conv {
  tc_pass_ctx *c;
  tc_graph *g;
  int32_t ht;        /* TC_DTYPE_F16 or TC_DTYPE_BF16 */
  const char *tname; /* "float16" / "bfloat16" */
  float lim;         /* clamp magnitude for mask constants */
  int64_t opset;
  size_t nv, nn;                /* value / node ids the tables cover */
  int32_t *dt;                  /* by value id: dtype in the float32 model, 0 unknown */
  unsigned char *half;          /* by value id: the value is half after conversion */
  unsigned char *range;         /* by value id: RG_* of a constant */
  float *max_abs;               /* by value id: largest finite |x| of a constant */
  unsigned char *color;         /* by node id: C_* */
  const half_op **def;          /* by node id */
  tc_value **to_half, **to_f32; /* by value id: shared Casts and half constants */
  size_t n_half, n_casts, n_clamped, n_kept;
} conv;

static const half_op *find_allow(const tc_node *n) {
  const char *dom = tc_domain_is_onnx(n->domain) ? "" : n->domain;
  for (size_t i = 0; i < sizeof allow / sizeof *allow; i++)
    if (strcmp(allow[i].op, n->op_type) == 0 && tc_domain_equal(allow[i].domain, dom))
      return &allow[i];
  return NULL;
}

static const char *find_blocked(const tc_node *n) {
  if (!tc_domain_is_onnx(n->domain))
    return NULL;
  for (size_t i = 0; i < sizeof blocked / sizeof *blocked; i++)
    if (strcmp(blocked[i].op, n->op_type) == 0)
      return blocked[i].why;
  return NULL;
}

/* Shape, Size and Cast read any type; their outputs keep theirs. */
static bool reads_any(const tc_node *n) {
  return tc_is_op(n, "Shape") || tc_is_op(n, "Size") || tc_is_op(n, "Cast");
}

static bool has_subgraph(const tc_node *n) {
  for (size_t i = 0; i < n->n_attrs; i++)
    if (n->attrs[i].g || n->attrs[i].n_graphs)
      return true;
  return false;
}

static bool is_float(int32_t dt) { return tc_dtype_is_float(dt); }

static float round_trip(const conv *s, float x) {
  return s->ht == TC_DTYPE_BF16 ? tc_bf16_to_f32(tc_f32_to_bf16(x))
                                : tc_f16_to_f32(tc_f32_to_f16(x));
}

static uint16_t to_bits(const conv *s, float x) {
  return s->ht == TC_DTYPE_BF16 ? tc_f32_to_bf16(x) : tc_f32_to_f16(x);
}

static int need_opset(const conv *s, const half_op *d) {
  return s->ht == TC_DTYPE_BF16 ? d->bf16 : d->f16;
}

static bool in_keep_list(const conv *s, const tc_node *n) {
  const char *const *keep = s->c->opt ? s->c->opt->half_keep : NULL;
  const char *key = NULL;
  for (size_t i = 0; i < n->n_outputs && !key; i++)
    key = n->outputs[i] ? n->outputs[i]->name : NULL;
  for (size_t i = 0; keep && key && keep[i]; i++)
    if (strcmp(keep[i], key) == 0)
      return true;
  return false;
}

/* ---- dtypes of the float32 model ---- */
static tc_status infer_dtypes(conv *s) {
  tc_shapes *sh = tc_shapes_infer(s->g);
  if (!sh)
    return tc_pass_nomem(s->c);
  for (tc_node *n = s->g->first; n; n = n->next) {
    for (size_t i = 0; i < n->n_inputs; i++) {
      tc_value *v = n->inputs[i];
      if (v && v->id < s->nv && !s->dt[v->id]) {
        int32_t d = tc_shape_of(sh, v)->dtype;
        s->dt[v->id] = d ? d : tc_value_dtype(v);
      }
    }
    const half_op *def = find_allow(n);
    int32_t t = 0;
    for (size_t i = 0; def && i < n->n_inputs && !t; i++)
      if (n->inputs[i] && (def->t_in & IN(i)) && is_float(s->dt[n->inputs[i]->id]))
        t = s->dt[n->inputs[i]->id];
    for (size_t i = 0; i < n->n_outputs; i++) {
      tc_value *v = n->outputs[i];
      if (!v || v->id >= s->nv)
        continue;
      int32_t d = tc_shape_of(sh, v)->dtype;
      if (!d)
        d = tc_value_dtype(v);
      if (!d && def && (def->t_out & IN(i)))
        d = t;
      if (!d && i == 0 && !def && find_blocked(n) && n->n_inputs && n->inputs[0] &&
          n->inputs[0]->id < s->nv && is_float(s->dt[n->inputs[0]->id]))
        d = s->dt[n->inputs[0]->id]; /* Resize, Softmax, Reduce*, Exp, ...: T in, T out */
      s->dt[v->id] = d;
    }
  }
  for (size_t i = 0; i < s->g->n_outputs; i++) {
    tc_value *v = s->g->outputs[i].value;
    if (v->id < s->nv && !s->dt[v->id])
      s->dt[v->id] = tc_value_dtype(v);
  }
  tc_shapes_free(sh);
  return TC_STATUS_OK;
}

/* ---- out-of-range constants ---- */

/* True when every path from v leads, through mask arithmetic and shape ops,
 * into a softmax input or Attention's mask (see the header). */
static bool mask_like(const tc_value *v, int depth, int *budget) {
  if (depth > 12 || --*budget < 0 || (v->flags & TC_VALUE_OUTPUT) || !v->n_uses)
    return false;
  static const char *const through[] = {"Add",    "Sub",    "Mul",       "Min",      "Max",
                                        "Neg",    "Expand", "Reshape",   "Squeeze",  "Unsqueeze",
                                        "Concat", "Slice",  "Transpose", "Identity", NULL};
  for (size_t k = 0; k < v->n_uses; k++) {
    const tc_node *u = v->uses[k].node;
    int slot = v->uses[k].slot;
    if (u->graph != v->graph)
      return false;
    if (tc_is_op(u, "Attention") && slot == 3)
      continue;
    if ((tc_is_op(u, "Softmax") || tc_is_op(u, "LogSoftmax")) && slot == 0)
      continue;
    bool pass = tc_is_op(u, "Where") ? slot > 0 : false;
    for (const char *const *t = through; !pass && *t; t++)
      pass = tc_is_op(u, *t);
    if (tc_is_op(u, "Cast"))
      pass = is_float((int32_t)tc_attr_int(u, "to", 0));
    if (!pass || u->n_outputs < 1 || !u->outputs[0] || !mask_like(u->outputs[0], depth + 1, budget))
      return false;
  }
  return true;
}

static int range_of(conv *s, const tc_value *v) {
  unsigned char *r = &s->range[v->id];
  if (*r != RG_UNCHECKED)
    return *r;
  float *f = NULL;
  ptrdiff_t n = tc_const_floats(tc_value_const(v), &f);
  if (n < 0) {
    free(f);
    return *r = RG_UNREADABLE;
  }
  bool over = false;
  size_t nonzero = 0, vanish = 0;
  float mx = 0;
  for (ptrdiff_t i = 0; i < n; i++) {
    float x = f[i];
    if (!isfinite(x))
      continue; /* float32 has it too: not the conversion's doing */
    mx = fabsf(x) > mx ? fabsf(x) : mx;
    float h = round_trip(s, x);
    over |= isinf(h);
    nonzero += x != 0;
    vanish += x != 0 && h == 0;
  }
  bool under = nonzero && vanish == nonzero;
  free(f);
  s->max_abs[v->id] = mx;
  int budget = 256;
  *r = over ? (mask_like(v, 0, &budget) ? RG_CLAMP : RG_OVER) : under ? RG_UNDER : RG_OK;
  return *r;
}

/* ---- classification ---- */
static void note(conv *s, const tc_node *n, const char *why) {
  s->n_kept++;
  const tc_pass_options *o = s->c->opt;
  if (o && o->half_note)
    o->half_note(o->half_note_ctx, n, why);
  tc_pass_explain(s->c, n, "kept in float32: %s", why);
}

static bool is_t_slot(uint32_t mask, size_t i) { return i < 32 && (mask & IN(i)); }

/* Decides node n's color; writes the reason to report into why ("" for none). */
static int classify(conv *s, tc_node *n, char *why, size_t cap) {
  why[0] = 0;
  const half_op *d = find_allow(n);
  uint32_t tin = d ? d->t_in : ALL, tout = d ? d->t_out : ALL;
  bool f32 = false, other = false, unknown = false;
  for (size_t i = 0; i < n->n_inputs + n->n_outputs; i++) {
    bool in = i < n->n_inputs;
    size_t k = in ? i : i - n->n_inputs;
    tc_value *v = in ? n->inputs[k] : n->outputs[k];
    if (!v || v->id >= s->nv || !is_t_slot(in ? tin : tout, k))
      continue;
    int32_t t = s->dt[v->id];
    f32 |= t == TC_DTYPE_F32;
    other |= is_float(t) && t != TC_DTYPE_F32;
    unknown |= t == 0;
  }
  if (!f32 || reads_any(n) || tc_is_op(n, "Constant"))
    return C_NONE;
  if (has_subgraph(n)) {
    snprintf(why, cap, "control flow: its subgraphs stay float32");
    return C_F32;
  }
  if (!d) {
    const char *b = find_blocked(n);
    if (b)
      snprintf(why, cap, "block list (%s: loses accuracy in half precision)", b);
    else
      snprintf(why, cap, "not on the allow list of ops known to be accurate in half precision");
    return C_F32;
  }
  if (other || unknown) {
    snprintf(why, cap, "%s",
             other ? "mixes float32 with other float types" : "input types unknown");
    return C_F32;
  }
  int need = need_opset(s, d);
  if (s->opset < need) {
    snprintf(why, cap, "opset %lld has no %s %s (needs %d)", (long long)s->opset, s->tname,
             n->op_type, need);
    return C_F32;
  }
  if (d->role == R_NORM && tc_attr_int(n, "stash_type", 1) != TC_DTYPE_F32) {
    snprintf(why, cap, "block list (normalization statistics: stash_type is not float32)");
    return C_F32;
  }
  if (in_keep_list(s, n)) {
    snprintf(why, cap, "kept in float32 on request");
    return C_F32;
  }
  bool any_half = false, all_const = true;
  for (size_t i = 0; i < n->n_inputs; i++) {
    tc_value *v = n->inputs[i];
    if (!v || v->id >= s->nv || !is_t_slot(tin, i) || s->dt[v->id] != TC_DTYPE_F32)
      continue;
    if (!tc_value_const(v)) {
      all_const = false;
      any_half |= s->half[v->id] != 0;
      continue;
    }
    int r = range_of(s, v);
    if (r == RG_OVER) {
      snprintf(why, cap, "out-of-range constant '%s' (max |x| %.4g, beyond %s)", v->name,
               (double)s->max_abs[v->id], s->tname);
      return C_F32;
    }
    if (r == RG_UNDER) {
      snprintf(why, cap, "constant '%s' (max |x| %.4g) is all zeros in %s", v->name,
               (double)s->max_abs[v->id], s->tname);
      return C_F32;
    }
    if (r == RG_UNREADABLE) {
      snprintf(why, cap, "constant '%s' cannot be read", v->name);
      return C_F32;
    }
  }
  if (d->role == R_FOLLOW && !any_half && !all_const)
    return C_F32; /* data movement between float32 nodes: no reason to report */
  return C_HALF;
}

/* ---- rewriting ---- */
static bool wants_half(const conv *s, const tc_node *n, size_t slot) {
  if (n->graph != s->g || n->id >= s->nn || s->color[n->id] != C_HALF)
    return false;
  const tc_value *v = n->inputs[slot];
  return v && v->id < s->nv && is_t_slot(s->def[n->id]->t_in, slot) && s->dt[v->id] == TC_DTYPE_F32;
}

/* The shared Cast of v to `to`, made on first use. */
static tc_value *cast_of(conv *s, tc_value *v, int32_t to) {
  tc_value **slot = to == TC_DTYPE_F32 ? &s->to_f32[v->id] : &s->to_half[v->id];
  if (*slot)
    return *slot;
  char base[160];
  snprintf(base, sizeof base, "%.120s_%s", v->name, to == TC_DTYPE_F32 ? "f32" : s->tname);
  tc_node *before = v->producer ? v->producer->next : s->g->first;
  tc_value *out = tc_graph_new_temp(s->g, base);
  tc_node *n = out ? tc_graph_insert_node(s->g, before, "Cast", "", NULL, 1, 1, 1) : NULL;
  if (!n || tc_node_set_attr_int(n, 0, "to", to) || tc_node_set_input(n, 0, v) ||
      tc_node_set_output(n, 0, out) || tc_pass_set_type_like(out, v, to))
    return NULL;
  s->n_casts++;
  return *slot = out;
}

/* v's data in half as a constant: v itself, converted in place, when every
 * reader wants half, else a second initializer. Mask constants are clamped. */
static tc_value *half_const(conv *s, tc_value *v) {
  if (s->to_half[v->id])
    return s->to_half[v->id];
  const tc_tensor *t = tc_value_const(v);
  float *f = NULL;
  ptrdiff_t n = tc_const_floats(t, &f);
  size_t bytes = tc_dtype_bytes(s->ht, n > 0 ? (size_t)n : 0);
  tc_buffer *b = n >= 0 ? tc_buffer_new(bytes ? bytes : 2) : NULL;
  if (!b) {
    free(f);
    return NULL;
  }
  uint16_t *h = tc_buffer_data(b);
  bool clamp = s->range[v->id] == RG_CLAMP, clamped = false;
  for (ptrdiff_t i = 0; i < n; i++) {
    float x = f[i];
    if (clamp && isfinite(x) && fabsf(x) > s->lim) {
      x = copysignf(s->lim, x);
      clamped = true;
    }
    h[i] = to_bits(s, x);
  }
  free(f);
  s->n_clamped += clamped;
  bool in_place = !(v->flags & TC_VALUE_OUTPUT);
  for (size_t k = 0; in_place && k < v->n_uses; k++)
    in_place =
        reads_any(v->uses[k].node) || wants_half(s, v->uses[k].node, (size_t)v->uses[k].slot);
  tc_value *dst = v;
  if (!in_place) {
    char base[160];
    snprintf(base, sizeof base, "%.120s_%s", v->name, s->tname);
    dst = tc_graph_new_temp(s->g, base);
  }
  tc_tensor *nt = dst ? tc_tensor_new(s->g->model, dst->name, s->ht, t->rank, t->dims, b) : NULL;
  if (!dst)
    tc_buffer_unref(b);
  if (!nt)
    return NULL;
  nt->data[TC_FIELD_RAW].len = bytes;
  if (in_place) {
    v->init = nt;
    s->half[v->id] = 1;
  } else if (tc_value_make_const(dst, nt)) {
    return NULL;
  }
  tc_dim dims[TC_MAX_RANK];
  for (size_t i = 0; i < t->rank && i < TC_MAX_RANK; i++)
    dims[i] = (tc_dim){.kind = TC_DIM_VALUE, .value = t->dims[i]};
  if (tc_value_set_tensor_type(dst, s->ht, t->rank, t->rank <= TC_MAX_RANK ? dims : NULL))
    return NULL;
  return s->to_half[v->id] = dst;
}

/* Points n's input i at the value of the type n wants. */
static tc_status rewire_input(conv *s, tc_node *n, size_t i) {
  tc_value *v = n->inputs[i];
  if (!v || v->id >= s->nv || v->graph != s->g)
    return TC_STATUS_OK;
  tc_value *to = NULL;
  if (wants_half(s, n, i)) {
    if (tc_value_const(v))
      to = half_const(s, v);
    else if (!s->half[v->id])
      to = cast_of(s, v, s->ht);
    else
      return TC_STATUS_OK;
  } else if (s->half[v->id] && !(n->graph == s->g && reads_any(n))) {
    to = cast_of(s, v, TC_DTYPE_F32);
  } else {
    return TC_STATUS_OK;
  }
  if (!to || (to != v && tc_node_set_input(n, i, to)))
    return tc_pass_nomem(s->c);
  return TC_STATUS_OK;
}

/* Readers of half value v in subgraphs get float32. */
static tc_status rewire_outer_uses(conv *s, tc_value *v) {
  for (size_t k = v->n_uses; k-- > 0;) {
    if (k >= v->n_uses)
      continue;
    tc_use u = v->uses[k];
    if (u.node->graph == s->g)
      continue;
    tc_value *to = cast_of(s, v, TC_DTYPE_F32);
    if (!to || tc_node_set_input(u.node, (size_t)u.slot, to))
      return tc_pass_nomem(s->c);
  }
  return TC_STATUS_OK;
}

/* Graph output v must keep its name: its producer writes a new value and a
 * Cast to the type the output has to have writes v. */
static tc_status fix_output(conv *s, tc_value *v) {
  if (v->id >= s->nv || s->dt[v->id] != TC_DTYPE_F32 || !v->producer || v->init)
    return TC_STATUS_OK;
  bool keep = s->c->opt && s->c->opt->keep_io_types;
  int32_t have = s->half[v->id] ? s->ht : TC_DTYPE_F32, want = keep ? TC_DTYPE_F32 : s->ht;
  if (have == want)
    return TC_STATUS_OK;
  tc_node *p = v->producer;
  size_t slot = (size_t)v->producer_slot;
  char base[160];
  snprintf(base, sizeof base, "%.120s_%s", v->name, have == TC_DTYPE_F32 ? "f32" : s->tname);
  tc_value *t = tc_graph_new_temp(s->g, base);
  if (!t || tc_node_set_output(p, slot, t) || tc_value_replace_uses(v, t) ||
      tc_pass_set_type_like(t, v, have))
    return tc_pass_nomem(s->c);
  tc_node *n = tc_graph_insert_node(s->g, p->next, "Cast", "", NULL, 1, 1, 1);
  if (!n || tc_node_set_attr_int(n, 0, "to", want) || tc_node_set_input(n, 0, t) ||
      tc_node_set_output(n, 0, v) || tc_pass_set_type_like(v, v, want))
    return tc_pass_nomem(s->c);
  s->n_casts++;
  /* A Cast of v to `want` made for other readers now duplicates v. */
  tc_value *dup = want == TC_DTYPE_F32 ? s->to_f32[v->id] : s->to_half[v->id];
  if (dup && dup->producer) {
    tc_node *c = dup->producer;
    if (tc_value_replace_uses(dup, v))
      return tc_pass_nomem(s->c);
    tc_node_remove(c);
    s->n_casts--;
  }
  return TC_STATUS_OK;
}

/* ---- Cast clean-up ---- */
static int32_t dtype_now(const conv *s, const tc_value *v) {
  if (tc_is_op(v->producer, "Cast"))
    return (int32_t)tc_attr_int(v->producer, "to", 0);
  if (v->init)
    return v->init->dtype;
  if (v->id < s->nv && s->dt[v->id])
    return s->half[v->id] ? s->ht : s->dt[v->id];
  return v->type.kind == TC_TYPE_TENSOR ? v->type.elem : 0;
}

static bool is_half_type(int32_t t) { return t == TC_DTYPE_F16 || t == TC_DTYPE_BF16; }

/* An integer reaches half through float32 exactly as directly: every
 * integer that float16 holds finitely (below 65520) is exact in float32, and
 * 16-bit integers are exact in float32 for bfloat16 too. */
static bool int_direct(const conv *s, int32_t from) {
  bool integer = tc_dtype_is_int(from) || from == TC_DTYPE_BOOL;
  return integer && (s->ht == TC_DTYPE_F16 || tc_dtype_bits(from) <= 16);
}

/* Removes node c, a Cast, when nothing reads its output any more. */
static bool drop_if_unused(conv *s, tc_node *c, tc_node **next) {
  if (!c || !tc_is_op(c, "Cast") || c->graph != s->g || !c->outputs[0] || c->outputs[0]->n_uses ||
      (c->outputs[0]->flags & TC_VALUE_OUTPUT))
    return false;
  if (*next == c)
    *next = c->next;
  tc_node_remove(c);
  return true;
}

/* Removes Casts to the type their input has and Cast pairs float32 -> half ->
 * float32 / half -> float32 -> half; a Cast to half of an integer's Cast to
 * float32 reads the integer itself. Returns the number of Casts removed. */
static size_t clean_casts(conv *s) {
  size_t removed = 0;
  for (tc_node *n = s->g->first, *next; n; n = next) {
    next = n->next;
    if (!tc_is_op(n, "Cast") || n->n_inputs < 1 || !n->inputs[0] || !n->outputs[0])
      continue;
    int32_t to = (int32_t)tc_attr_int(n, "to", 0);
    tc_value *x = n->inputs[0], *src = NULL, *y = NULL;
    tc_node *first = tc_is_op(x->producer, "Cast") ? x->producer : NULL;
    if (first && first->inputs[0] && first->inputs[0]->graph == s->g)
      y = first->inputs[0];
    int32_t tx = dtype_now(s, x), ty = y ? dtype_now(s, y) : 0;
    if (tx == to) {
      src = x;
    } else if (y && ty == to &&
               ((ty == TC_DTYPE_F32 && is_half_type(tx)) ||
                (is_half_type(ty) && tx == TC_DTYPE_F32))) {
      src = y;
    } else if (y && to == s->ht && tx == TC_DTYPE_F32 && int_direct(s, ty)) {
      if (tc_node_set_input(n, 0, y) == 0)
        removed += drop_if_unused(s, first, &next);
      continue;
    }
    if (!src || src->graph != s->g || !tc_pass_bypass(n, src, n->outputs[0]))
      continue;
    removed++;
    if (first != n)
      removed += drop_if_unused(s, first, &next);
  }
  return removed;
}

/* ---- opset ---- */

/* Raises the opset to the highest version a candidate node needs for the
 * type, or failing that the next lower one, when that is exact. */
static tc_status raise_opset(conv *s) {
  int64_t cur = tc_model_opset(s->g->model, "");
  int needs[8];
  size_t nn = 0;
  tc_shapes *sh = tc_shapes_infer(s->g);
  if (!sh)
    return tc_pass_nomem(s->c);
  for (tc_node *n = s->g->first; n; n = n->next) {
    const half_op *d = find_allow(n);
    if (!d || d->role == R_FOLLOW || need_opset(s, d) <= cur || in_keep_list(s, n))
      continue; /* data movement alone is no reason to raise */
    bool f32 = false;
    for (size_t i = 0; i < n->n_inputs && !f32; i++)
      f32 = n->inputs[i] && is_t_slot(d->t_in, i) &&
            (tc_shape_of(sh, n->inputs[i])->dtype ? tc_shape_of(sh, n->inputs[i])->dtype
                                                  : tc_value_dtype(n->inputs[i])) == TC_DTYPE_F32;
    if (!f32)
      continue;
    int need = need_opset(s, d);
    bool seen = false;
    for (size_t k = 0; k < nn; k++)
      seen |= needs[k] == need;
    if (!seen && nn < sizeof needs / sizeof *needs)
      needs[nn++] = need;
  }
  while (nn) {
    size_t hi = 0;
    for (size_t k = 1; k < nn; k++)
      hi = needs[k] > needs[hi] ? k : hi;
    const char *why;
    if (tc_pass_require_opset(s->c, needs[hi], &why))
      break;
    needs[hi] = needs[--nn];
  }
  tc_shapes_free(sh);
  return TC_STATUS_OK;
}

static void free_tables(conv *s) {
  free(s->dt);
  free(s->half);
  free(s->range);
  free(s->max_abs);
  free(s->color);
  free(s->def);
  free(s->to_half);
  free(s->to_f32);
}

static tc_status convert(conv *s) {
  tc_graph *g = s->g;
  tc_status st = infer_dtypes(s);
  if (st)
    return st;
  bool keep_io = s->c->opt && s->c->opt->keep_io_types;
  for (size_t i = 0; i < g->n_inputs; i++) {
    tc_value *v = g->inputs[i].value;
    if (v->id < s->nv && !keep_io && !v->init && tc_value_dtype(v) == TC_DTYPE_F32) {
      s->dt[v->id] = TC_DTYPE_F32;
      s->half[v->id] = 1;
    }
  }
  char why[256];
  size_t count = 0;
  for (tc_node *n = g->first; n; n = n->next) {
    if (n->id >= s->nn)
      continue;
    count++;
    s->def[n->id] = find_allow(n);
    int col = classify(s, n, why, sizeof why);
    s->color[n->id] = (unsigned char)col;
    if (col == C_F32 && why[0])
      note(s, n, why);
    if (col != C_HALF)
      continue;
    s->n_half++;
    if (s->c->opt && s->c->opt->half_note)
      s->c->opt->half_note(s->c->opt->half_note_ctx, n, NULL);
    for (size_t i = 0; i < n->n_outputs; i++) {
      tc_value *v = n->outputs[i];
      if (v && v->id < s->nv && is_t_slot(s->def[n->id]->t_out, i) && s->dt[v->id] == TC_DTYPE_F32)
        s->half[v->id] = 1;
    }
  }
  /* Types of the values that become half (graph outputs are fixed below). */
  for (size_t i = 0; i < g->n_inputs; i++) {
    tc_value *v = g->inputs[i].value;
    if (v->id < s->nv && s->half[v->id] && tc_pass_set_type_like(v, v, s->ht))
      return tc_pass_nomem(s->c);
  }
  tc_node **nodes = malloc((count ? count : 1) * sizeof *nodes);
  if (!nodes)
    return tc_pass_nomem(s->c);
  size_t k = 0;
  for (tc_node *n = g->first; n; n = n->next)
    if (n->id < s->nn)
      nodes[k++] = n;
  for (size_t j = 0; j < k && !st; j++) {
    tc_node *n = nodes[j];
    for (size_t i = 0; i < n->n_outputs; i++) {
      tc_value *v = n->outputs[i];
      if (v && v->id < s->nv && s->half[v->id] && v->type.kind == TC_TYPE_TENSOR &&
          tc_pass_set_type_like(v, v, s->ht)) {
        st = tc_pass_nomem(s->c);
        break;
      }
    }
    if (s->color[n->id] == C_HALF && s->def[n->id]->role == R_ATTENTION &&
        !tc_node_attr(n, "softmax_precision")) {
      size_t na = n->n_attrs;
      if (tc_node_resize(n, n->n_inputs, na + 1) ||
          tc_node_set_attr_int(n, na, "softmax_precision", TC_DTYPE_F32))
        st = tc_pass_nomem(s->c);
    }
  }
  for (size_t j = 0; j < k && !st; j++)
    for (size_t i = 0; i < nodes[j]->n_inputs && !st; i++)
      st = rewire_input(s, nodes[j], i);
  for (size_t j = 0; j < k && !st; j++)
    for (size_t i = 0; i < nodes[j]->n_outputs && !st; i++)
      if (nodes[j]->outputs[i] && nodes[j]->outputs[i]->id < s->nv &&
          s->half[nodes[j]->outputs[i]->id])
        st = rewire_outer_uses(s, nodes[j]->outputs[i]);
  for (size_t i = 0; i < g->n_inputs && !st; i++)
    if (g->inputs[i].value->id < s->nv && s->half[g->inputs[i].value->id])
      st = rewire_outer_uses(s, g->inputs[i].value);
  free(nodes);
  for (size_t i = 0; i < g->n_outputs && !st; i++)
    st = fix_output(s, g->outputs[i].value);
  if (st)
    return st;
  /* Float32 initializers whose readers all moved to a half copy. */
  for (size_t i = 0; i < g->n_inits;) {
    tc_value *v = g->inits[i];
    if (v->id < s->nv && s->to_half[v->id] && s->to_half[v->id] != v && !v->n_uses &&
        !(v->flags & (TC_VALUE_OUTPUT | TC_VALUE_INPUT)))
      tc_graph_remove_init(g, v);
    else
      i++;
  }
  size_t cleaned = clean_casts(s);
  const char *kind = s->ht == TC_DTYPE_BF16 ? "nodes to bfloat16" : "nodes to float16";
  if (s->n_half)
    tc_pass_count(s->c, kind, s->n_half);
  if (s->n_casts)
    tc_pass_count(s->c, "Casts", s->n_casts);
  if (cleaned)
    tc_pass_count(s->c, "Casts removed", cleaned);
  if (s->n_clamped)
    tc_pass_count(s->c, "mask constants clamped", s->n_clamped);
  if (s->n_kept)
    tc_pass_count(s->c, "kept float32", s->n_kept);
  tc_graph_prune_value_info(g);
  return TC_STATUS_OK;
}

tc_status tc_pass_convert_half(tc_pass_ctx *c, tc_graph *g) {
  if (g->parent)
    return TC_STATUS_OK; /* the main graph's pass decides; subgraphs stay float32 */
  conv s = {.c = c, .g = g};
  s.ht = c->opt && c->opt->half_type == TC_DTYPE_BF16 ? TC_DTYPE_BF16 : TC_DTYPE_F16;
  if (c->opt && c->opt->half_type && c->opt->half_type != TC_DTYPE_F16 &&
      c->opt->half_type != TC_DTYPE_BF16)
    return tc_diag_set(c->diag, TC_STATUS_ARG, NULL, NULL,
                       "convert-half: type %s is not float16 or bfloat16",
                       tc_dtype_name(c->opt->half_type));
  s.tname = s.ht == TC_DTYPE_BF16 ? "bfloat16" : "float16";
  /* A quarter of the largest finite value: 65504 / 4, (2 - 2^-7) 2^127 / 4. */
  s.lim = s.ht == TC_DTYPE_BF16 ? 3.3895313892515355e38f / 4 : 65504.0f / 4;
  tc_status st = raise_opset(&s);
  if (st)
    return st;
  s.opset = tc_model_opset(g->model, "");
  s.nv = g->model->next_value_id;
  s.nn = g->model->next_node_id;
  size_t nv = s.nv ? s.nv : 1, nn = s.nn ? s.nn : 1;
  s.dt = calloc(nv, sizeof *s.dt);
  s.half = calloc(nv, 1);
  s.range = calloc(nv, 1);
  s.max_abs = calloc(nv, sizeof *s.max_abs);
  s.color = calloc(nn, 1);
  s.def = calloc(nn, sizeof *s.def);
  s.to_half = calloc(nv, sizeof *s.to_half);
  s.to_f32 = calloc(nv, sizeof *s.to_f32);
  st = s.dt && s.half && s.range && s.max_abs && s.color && s.def && s.to_half && s.to_f32
           ? convert(&s)
           : tc_pass_nomem(c);
  free_tables(&s);
  return st;
}
