/* Channels-last values between convolutions.
 *
 * Runtime tensors are plain (NCHW), but oneDNN's convolutions run on
 * channels-last data (NHWC: brgconv, the depthwise brdgmm kernels) and a
 * plain x or y costs a reorder on each side of every convolution: on a
 * MobileNetV3-Large at batch 1 those reorders took 1.3 ms of 11 per run here.
 * So a session keeps chosen values channels-last: their tensors keep their
 * logical dims [N, C, H, W] while the data are in [N, H, W, C] order, and
 * every node that reads or writes one knows it.
 *
 * A channels-last value of rank r > 4 holds [N, dims[r-2], dims[r-1],
 * dims[1..r-3]]: its middle dims are the channels (a channel shuffle's
 * [N, G, C/G, H, W]).
 *
 * Choice (tc_layout_bind, once per session). Candidates are the first
 * outputs of the main graph's 2-D convolutions (Conv, FusedConv, tacoc's
 * Conv<Act> / ConvAdd<Act>, constant rank-4 W (an initializer or computed
 * at load), running libtacort's own
 * kernel: not a generated-kernel node; a bound QDQ convolution with a
 * float32 output of its own, tc_qdq_float_conv, counts), of unary
 * elementwise nodes and per-tensor QuantizeLinear nodes (whose 8-bit
 * output every reader must take channels-last: DequantizeLinear nodes
 * before bound QDQ convolutions' X; MobileNetV3's mix of int8 pointwise
 * and float depthwise convolutions), of per-tensor DequantizeLinear nodes
 * that run (their bound readers read the 8-bit input instead; the 8-bit
 * values QDQ groups write are decided with these, tc_qdq_layout_prune on
 * each round: DenseNet's int8 convolution outputs read by its float
 * Concats and BatchNormalizations), of a bound int8 Concat over channels
 * with a float32 output of its own while all its 8-bit inputs are
 * channels-last (tc_qdq_float_concat: Inception v2's, read by a
 * QuantizeLinear and an AveragePool),
 * inference BatchNormalization, LRN, MaxPool (without Indices) or
 * AveragePool nodes reading a candidate, of Reshapes to a constant shape
 * of 4 or 5 dims and Transposes (0, 2, 1, 3, 4) reading one (a channel
 * shuffle), of
 * Add/Sub/Mul/Div and Concat over channels (axis 1 or -3) reading one, and
 * every output of a Split over channels (axis 1) reading one.
 * A candidate is dropped, until nothing changes, when it is a graph
 * output, is read inside a subgraph or by any node other than a
 * convolution (as X or Z), a GlobalAveragePool (or a ReduceMean over H
 * and W, which runs as one), a MaxPool or AveragePool,
 * a unary / BatchNormalization / LRN / Reshape / Transpose / binary /
 * Concat node whose output stays a candidate, or a Split one of whose outputs
 * does (the others reordered after it); such an output whose channels-last
 * inputs were all dropped goes too, as does a binary output whose plain
 * operand may have more than 4 dims, and a ConvAdd's Z and output stay
 * only together. What remains is channels-last; everything else stays
 * plain.
 *
 * Execution (tc_layout_run, for the nodes touching a channels-last value).
 * Convolutions get the layout bits in their kernel context and run oneDNN
 * with those layouts (their reference path converts). GlobalAveragePool
 * sums the positions' channel vectors; MaxPool takes the max of the
 * window's channel vectors and AveragePool sums them in double (float32;
 * bfloat16 and float16 on widened copies, rounded once), a plain output
 * reordered after the pooling (ShuffleNet's last 7x7 pool, DenseNet's
 * transitions). A Reshape whose result keeps N, the channel count and the
 * positions (regrouping the channels, or the positions) runs unchanged:
 * the bytes are the same; other shapes convert. A channel shuffle's
 * Transpose swaps each position's G x C/G block of channels
 * (tc_vtranspose_f32: AVX-512 register interleavings for G = 2, 4, 8).
 * A float32 LRN sums each position's squares over shifted windows of a
 * zero-padded row, the plain kernel's arithmetic (GoogLeNet: 26 -> 21
 * reorders per run, 23.4 -> 22.6 ms; AlexNet 6 -> 3, 25.7 -> 24.5).
 * A Split over channels runs its own kernel on the [N * H * W, C] matrix
 * the positions' channel vectors make (ShuffleNetV2's channel splits:
 * 52 -> 146 values channels-last, 31 -> 2 reorders per run).
 * ShuffleNet (caffe2 zoo, [1, 3, 224, 224], 1 thread): its shuffles had
 * kept the values around 30 grouped 1x1 and 16 depthwise convolutions
 * plain, each reordered on both sides: 16 -> 107 values channels-last,
 * 6.5 -> 5.0 ms per run. A float32 BatchNormalization applies its
 * per-channel terms to each position's channel vector (tc_vaffine_ch_f32,
 * the plain fast path's arithmetic). A Concat over channels writes each
 * position's channel vectors one after another, a plain input made
 * channels-last first (DenseNet-121's dense blocks: 176 reorders around its
 * convolutions, 8.1 ms per run, down to 151, 4.4 ms, the 3x3 Winograd
 * convolutions' own). Unary nodes, Cast among them (a mixed-precision
 * model's region boundaries), run unchanged (element order does not
 * matter). A binary node runs unchanged when its operands
 * have equal dims and the same memory order (channels-last, or a layout-
 * free [N, C, 1, 1] / single element); an operand broadcast per channel
 * ([N or 1, C, 1, 1] or [C, 1, 1], of the image's float32, bfloat16 or
 * float16 type) against a channels-last one runs a channel loop (half
 * types widened, rounded once: the reference's bits). Any other case
 * (other dtypes, other broadcasts, reference
 * kernels) converts: channels-last inputs to plain copies, the node's own
 * kernel, the channels-last output converted in place, so the result is
 * always the plain computation's.
 *
 * Off for CUDA sessions, the tuner's capture sessions, when the reference
 * kernels were asked for at session creation, with TACORT_LAYOUT=plain, and
 * for models whose metadata says TC_LAYOUT_KEY = "plain" (written by the
 * autotuner when the whole model measured faster that way). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "layout.h"

enum {
  K_NONE,
  K_CONV,
  K_GAP,
  K_UNARY,
  K_BINARY,
  K_POOL,
  K_BN,
  K_CONCAT,
  K_RESHAPE,
  K_SHUFFLE,
  K_SPLIT,
  K_LRN,
  K_QUANT,   /* a per-tensor QuantizeLinear before bound QDQ convolutions */
  K_DEQUANT, /* a per-tensor DequantizeLinear that runs, of a channels-last 8-bit value */
  K_QCONCAT  /* a bound int8 Concat over channels with a float32 output */
};

static bool op_is(const tc_node *n, const char *op) {
  return tc_domain_is_onnx(n->domain) && n->op_type && strcmp(n->op_type, op) == 0;
}

static bool is_conv(const tc_node *n) {
  if (!n->op_type)
    return false;
  if (op_is(n, "Conv"))
    return true;
  if (!strcmp(n->op_type, "FusedConv"))
    return tc_domain_equal(n->domain, "ai.tacoc") || tc_domain_equal(n->domain, "com.microsoft");
  return tc_domain_equal(n->domain, "ai.tacoc") && !strncmp(n->op_type, "Conv", 4);
}

static const char *const unary_ops[] = {
    "Relu",  "LeakyRelu", "Sigmoid",  "Tanh",     "HardSigmoid", "HardSwish", "Clip",  "Elu",
    "Selu",  "Erf",       "Exp",      "Abs",      "Neg",         "Sqrt",      "Floor", "Ceil",
    "Round", "Sign",      "Softplus", "Softsign", "Cast",        NULL};

/* A ReduceMean over exactly the last two axes of a rank-4 input (2 and 3,
 * or -2 and -1), the axes an attribute or (opset 18) a constant int64
 * input: what GlobalAveragePool computes, [N, C] without keepdims
 * (x.mean([2, 3]) as torch exports it). */
static bool spatial_mean(const tc_session *s, const tc_node *n) {
  const int64_t *a = NULL;
  ptrdiff_t na = tc_attr_ints(n, "axes", &a);
  if (na < 0 && n->n_inputs > 1 && n->inputs[1]) {
    const tc_tensor *t = tc_value_const(n->inputs[1]);
    const tc_rt_tensor *c = t ? NULL : s->consts[n->inputs[1]->id];
    if (c && c->dtype == TC_DTYPE_I64 && c->rank == 1)
      a = c->data, na = (ptrdiff_t)c->dims[0];
  }
  if (na != 2)
    return false;
  int64_t x = a[0] < 0 ? a[0] + 4 : a[0], y = a[1] < 0 ? a[1] + 4 : a[1];
  return (x == 2 && y == 3) || (x == 3 && y == 2);
}

/* What node n of the main graph is to the layout choice. */
static int kind_of(const tc_session *s, const tc_node *n) {
  if (tc_qdq_float_conv(s, n))
    return K_CONV; /* (it runs as a QDQ group, which reads the layout) */
  if (tc_qdq_float_concat(s, n, NULL))
    return K_QCONCAT;
  if (!s->kernels[n->id] || (s->qdq && s->qdq[n->id]) || (s->qdq_skip && s->qdq_skip[n->id]) ||
      (s->native_fn && s->native_fn[n->id]) || (s->chain_root && s->chain_root[n->id]) ||
      (s->precomputed && s->precomputed[n->id]) || n->n_outputs < 1 || !n->outputs[0] ||
      n->n_inputs < 1 || !n->inputs[0])
    return K_NONE;
  if (is_conv(n)) {
    /* W an initializer, or a constant the session computed at load */
    const tc_value *wv = n->n_inputs > 1 ? n->inputs[1] : NULL;
    const tc_tensor *w = wv ? tc_value_const(wv) : NULL;
    const tc_rt_tensor *wc = wv && !w ? s->consts[wv->id] : NULL;
    return ((w && w->rank == 4) || (wc && wc->rank == 4)) && n->n_outputs == 1 ? K_CONV : K_NONE;
  }
  if (op_is(n, "GlobalAveragePool") || (op_is(n, "ReduceMean") && spatial_mean(s, n)))
    return K_GAP;
  if (op_is(n, "MaxPool"))
    return n->n_outputs == 1 || !n->outputs[1] ? K_POOL : K_NONE;
  if (op_is(n, "AveragePool"))
    return n->n_outputs == 1 ? K_POOL : K_NONE;
  if (op_is(n, "BatchNormalization") && n->n_inputs == 5 && !tc_attr_int(n, "training_mode", 0)) {
    for (size_t o = 1; o < n->n_outputs; o++)
      if (n->outputs[o] && n->outputs[o]->n_uses)
        return K_NONE;
    return K_BN;
  }
  /* (the run's layout masks hold 32 inputs and outputs) */
  if (op_is(n, "Split")) /* over channels: ShuffleNetV2's channel split */
    return tc_attr_int(n, "axis", 0) == 1 && n->n_outputs <= 32 ? K_SPLIT : K_NONE;
  if (n->n_outputs != 1)
    return K_NONE;
  if (op_is(n, "LRN"))
    return K_LRN;
  if (op_is(n, "Reshape") && n->n_inputs == 2 && n->inputs[1] && !tc_attr_int(n, "allowzero", 0)) {
    /* a constant shape of 4 or 5 dims (whether it keeps N, H and W is
     * checked on each run) */
    const tc_tensor *t = tc_value_const(n->inputs[1]);
    const tc_rt_tensor *c = t ? NULL : s->consts[n->inputs[1]->id];
    int64_t len = t && t->rank == 1 ? t->dims[0] : c && c->rank == 1 ? c->dims[0] : 0;
    return len == 4 || len == 5 ? K_RESHAPE : K_NONE;
  }
  if (op_is(n, "Transpose")) { /* a channel shuffle's [N, G, C/G, H, W] swap */
    const int64_t *p;
    static const int64_t swap[5] = {0, 2, 1, 3, 4};
    return tc_attr_ints(n, "perm", &p) == 5 && !memcmp(p, swap, sizeof swap) ? K_SHUFFLE : K_NONE;
  }
  if (op_is(n, "Concat")) {
    int64_t axis = tc_attr_int(n, "axis", 0);
    return (axis == 1 || axis == -3) && n->n_inputs <= 32 ? K_CONCAT : K_NONE;
  }
  for (const char *const *u = unary_ops; *u; u++)
    if (op_is(n, *u))
      return K_UNARY;
  bool quant = op_is(n, "QuantizeLinear");
  if ((quant || op_is(n, "DequantizeLinear")) && n->n_inputs >= 2 && n->inputs[1]) {
    /* per tensor (constant scalars): elementwise, whatever the order */
    bool scalar = true;
    for (size_t i = 1; scalar && i < n->n_inputs && i < 3; i++) {
      const tc_rt_tensor *c = n->inputs[i] ? s->consts[n->inputs[i]->id] : NULL;
      scalar = !n->inputs[i] || (c && tc_rt_numel(c) == 1);
    }
    if (!scalar || tc_attr_int(n, "block_size", 0))
      return K_NONE;
    return quant ? K_QUANT : K_DEQUANT;
  }
  if ((op_is(n, "Add") || op_is(n, "Sub") || op_is(n, "Mul") || op_is(n, "Div")) &&
      n->n_inputs == 2 && n->inputs[1])
    return K_BINARY;
  return K_NONE;
}

/* True when v is known to have at most 4 dims. */
static bool rank_le4(const tc_session *s, const tc_value *v, const unsigned char *kind) {
  const tc_tensor *t = tc_value_const(v);
  if (t)
    return t->rank <= 4;
  if (v->type.kind == TC_TYPE_TENSOR && v->type.has_shape)
    return v->type.rank <= 4;
  const tc_node *p = v->producer;
  return p && p->graph == s->m->graph && (kind[p->id] == K_GAP || kind[p->id] == K_CONV);
}

/* Whether every reader of K_QUANT's 8-bit output v takes it
 * channels-last: a DequantizeLinear, read as X by bound QDQ convolutions
 * and, when it runs, its float32 output channels-last (cand). */
static bool q8_readers_ok(const tc_session *s, const tc_value *v, const unsigned char *kind,
                          const bool *cand) {
  for (size_t i = 0; i < v->n_uses; i++) {
    const tc_node *d = v->uses[i].node;
    if (d->graph != s->m->graph || v->uses[i].slot != 0 || !d->n_outputs || !d->outputs[0])
      return false;
    bool runs = !(s->qdq_skip && s->qdq_skip[d->id]);
    const tc_value *dv = d->outputs[0];
    if (runs && (kind[d->id] != K_DEQUANT || !cand[dv->id]))
      return false;
    for (size_t k = 0; k < dv->n_uses; k++) {
      const tc_node *u = dv->uses[k].node;
      if (runs && !tc_qdq_reads(s, u, dv->uses[k].slot))
        continue; /* a float reader of the float output */
      if (!tc_qdq_conv_x(s, u, dv->uses[k].slot))
        return false;
    }
  }
  return true;
}

/* Whether node u (of kind ku) can read candidate value v at input slot i. */
static bool reader_ok(const tc_session *s, const tc_node *u, int ku, size_t i, const bool *cand) {
  if (u->graph != s->m->graph)
    return false;
  switch (ku) {
  case K_CONV: return i == 0 || i == 3;
  case K_GAP: return i == 0;
  case K_POOL: return i == 0; /* a plain output converted after the pooling */
  case K_UNARY:
  case K_QUANT:
  case K_BN:
  case K_LRN:
  case K_RESHAPE:
  case K_SHUFFLE: return i == 0 && cand[u->outputs[0]->id];
  case K_BINARY: return i < 2 && cand[u->outputs[0]->id];
  case K_CONCAT: return cand[u->outputs[0]->id];
  case K_SPLIT: /* while one output stays channels-last */
    for (size_t o = 0; i == 0 && o < u->n_outputs; o++)
      if (u->outputs[o] && cand[u->outputs[o]->id])
        return true;
    return false;
  default: return false;
  }
}

void tc_layout_bind(tc_session *s) {
  const char *env = getenv("TACORT_LAYOUT"), *meta = tc_model_meta(s->m, TC_LAYOUT_KEY);
  if ((env && !strcmp(env, "plain")) || (meta && !strcmp(meta, "plain")) ||
      !tc_fast_kernels_enabled())
    return;
  const tc_graph *g = s->m->graph;
  size_t nn = s->m->next_node_id + 1, nv = s->m->next_value_id + 1;
  unsigned char *kind = calloc(nn, 1);
  bool *cand = calloc(nv, sizeof *cand);
  if (!kind || !cand)
    goto out;
  for (const tc_node *n = g->first; n; n = n->next) {
    kind[n->id] = (unsigned char)kind_of(s, n);
    if (kind[n->id] != K_NONE && kind[n->id] != K_GAP)
      cand[n->outputs[0]->id] = true;
    for (size_t o = 1; kind[n->id] == K_SPLIT && o < n->n_outputs; o++)
      if (n->outputs[o])
        cand[n->outputs[o]->id] = true;
  }
  tc_qdq_layout_mark(s, cand); /* 8-bit values between QDQ groups */
  for (bool changed = true; changed;) {
    changed = false;
    for (const tc_node *n = g->first; n; n = n->next) {
      if (kind[n->id] == K_SPLIT && !cand[n->inputs[0]->id]) /* every output with the input */
        for (size_t o = 0; o < n->n_outputs; o++)
          if (n->outputs[o] && cand[n->outputs[o]->id])
            cand[n->outputs[o]->id] = false, changed = true;
      const tc_value *o = n->outputs && n->n_outputs ? n->outputs[0] : NULL;
      if (!o || !cand[o->id])
        continue;
      bool drop = false;
      if (kind[n->id] == K_UNARY || kind[n->id] == K_POOL || kind[n->id] == K_BN ||
          kind[n->id] == K_LRN || kind[n->id] == K_RESHAPE || kind[n->id] == K_SHUFFLE ||
          kind[n->id] == K_QUANT || kind[n->id] == K_DEQUANT)
        drop = !cand[n->inputs[0]->id];
      else if (kind[n->id] == K_CONCAT) {
        drop = true; /* kept while one input is channels-last */
        for (size_t i = 0; drop && i < n->n_inputs; i++)
          drop = !n->inputs[i] || !cand[n->inputs[i]->id];
      } else if (kind[n->id] == K_QCONCAT) { /* all of its 8-bit inputs channels-last */
        drop = !tc_qdq_float_concat(s, n, cand);
      } else if (kind[n->id] == K_BINARY) {
        const tc_value *a = n->inputs[0], *b = n->inputs[1];
        drop = (!cand[a->id] && !cand[b->id]) || (!cand[a->id] && !rank_le4(s, a, kind)) ||
               (!cand[b->id] && !rank_le4(s, b, kind));
      } else if (kind[n->id] == K_CONV && n->n_inputs > 3 && n->inputs[3] &&
                 !cand[n->inputs[3]->id]) {
        drop = true; /* Z and Y share one layout */
      }
      if (drop) {
        cand[o->id] = false;
        changed = true;
      }
    }
    for (const tc_node *n = g->first; n; n = n->next)
      for (size_t oi = 0; kind[n->id] && oi < (kind[n->id] == K_SPLIT ? n->n_outputs : 1); oi++) {
        const tc_value *v = oi < n->n_outputs ? n->outputs[oi] : NULL;
        if (!v || !cand[v->id])
          continue;
        bool drop = (v->flags & TC_VALUE_OUTPUT) != 0;
        if (kind[n->id] == K_QUANT) { /* 8-bit readers (the loop below is for float ones) */
          if (drop || !q8_readers_ok(s, v, kind, cand)) {
            cand[v->id] = false;
            changed = true;
          }
          continue;
        }
        for (size_t i = 0; !drop && i < v->n_uses; i++) {
          const tc_node *u = v->uses[i].node;
          if (kind[n->id] == K_DEQUANT && tc_qdq_reads(s, u, v->uses[i].slot))
            continue; /* a bound node reads the 8-bit value instead (tc_qdq_layout_prune) */
          drop =
              !reader_ok(s, u, u->graph == g ? kind[u->id] : K_NONE, (size_t)v->uses[i].slot, cand);
          /* a ConvAdd's Z keeps its output's layout */
          if (!drop && kind[u->id] == K_CONV && v->uses[i].slot == 3)
            drop = !cand[u->outputs[0]->id];
        }
        if (drop) {
          cand[v->id] = false;
          changed = true;
        }
      }
    if (tc_qdq_layout_prune(s, cand)) /* (they and the float values decide together) */
      changed = true;
  }
  size_t count = 0;
  for (size_t i = 0; i < nv; i++)
    count += cand[i];
  if (!count)
    goto out;
  s->nhwc = tc_arena_alloc(s->arena, nv * sizeof *s->nhwc);
  s->layout = tc_arena_alloc(s->arena, nn);
  if (!s->nhwc || !s->layout) {
    s->nhwc = NULL, s->layout = NULL;
    goto out;
  }
  memcpy(s->nhwc, cand, nv * sizeof *cand);
  memset(s->layout, 0, nn);
  for (const tc_node *n = g->first; n; n = n->next) {
    bool touches = false;
    for (size_t i = 0; i < n->n_inputs; i++)
      touches |= n->inputs[i] && cand[n->inputs[i]->id];
    for (size_t i = 0; i < n->n_outputs; i++)
      touches |= n->outputs[i] && cand[n->outputs[i]->id];
    if (touches)
      s->layout[n->id] = kind[n->id];
  }
  s->layout_values = count;
out:
  free(kind);
  free(cand);
}

size_t tc_session_channels_last_values(const tc_session *s) { return s ? s->layout_values : 0; }

void tc_layout_unbind(tc_session *s) {
  s->layout = NULL;
  s->nhwc = NULL;
  s->layout_values = 0;
}

/* ---- execution ---- */

/* The node's inputs and outputs that are channels-last, as bit masks. */
static uint32_t mask_of(const tc_session *s, tc_value *const *vs, size_t n) {
  uint32_t m = 0;
  for (size_t i = 0; i < n && i < 32; i++)
    if (vs[i] && s->nhwc[vs[i]->id])
      m |= 1u << i;
  return m;
}

/* Same memory in both orders: a single element or [N, C..., 1, 1]. */
static bool order_free(const tc_rt_tensor *t) {
  size_t N, C, HW;
  return tc_rt_numel(t) == 1 || (tc_layout_shape(t, &N, &C, &HW) && HW == 1);
}

static tc_status to_plain(tc_kernel_ctx *k, tc_rt_tensor *t) {
  return tc_layout_reorder(k, t, false);
}

/* Runs the node's kernel on plain copies of its channels-last inputs and
 * converts its channels-last outputs in place. */
static tc_status convert_run(const tc_session *s, const tc_node *n, tc_kernel_ctx *k,
                             const tc_rt_tensor *const *in, tc_rt_tensor *out, uint32_t in_mask,
                             uint32_t out_mask) {
  const tc_rt_tensor **pin = tc_arena_alloc(k->arena, (n->n_inputs + 1) * sizeof *pin);
  if (!pin)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  for (size_t i = 0; i < n->n_inputs; i++)
    if (!(pin[i] = in[i] && (in_mask >> i & 1) ? tc_layout_plain_copy(k, in[i]) : in[i]) && in[i])
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  tc_status st = s->kernels[n->id]->run(k, pin, n->n_inputs, out, n->n_outputs);
  for (size_t o = 0; !st && o < n->n_outputs; o++) {
    tc_rt_tensor *t = &out[o];
    if (!(out_mask >> o & 1))
      continue;
    if (t->rank < 4 && !order_free(t))
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "output %zu has %zu dims where the session's layout plan expects 4 or "
                            "more",
                            o, t->rank);
    if ((st = tc_layout_reorder(k, t, true)))
      return st;
  }
  return st;
}

/* Elements a half row is widened by at a time (on the stack). */
enum { HCHUNK = 2048 };

/* A float32 view of t's data: the data itself, or for bfloat16 / float16 a
 * widened copy in the run's arena (NULL when memory runs out). */
static const float *f32_view(tc_kernel_ctx *k, const tc_rt_tensor *t) {
  if (!tc_dtype_is_half(t->dtype))
    return t->data;
  size_t n = tc_rt_numel(t);
  float *d = tc_arena_alloc(k->arena, (n + 1) * sizeof *d);
  if (d)
    tc_vhalf_to_f32(t->dtype, d, t->data, n);
  return d;
}

/* Where a float32 result for out goes: out's data, or for a half out a
 * float32 buffer in the run's arena that round_out rounds into it. */
static float *f32_result(tc_kernel_ctx *k, tc_rt_tensor *out) {
  if (!tc_dtype_is_half(out->dtype))
    return out->data;
  return tc_arena_alloc(k->arena, (tc_rt_numel(out) + 1) * sizeof(float));
}

static void round_out(tc_rt_tensor *out, const float *y) {
  if (tc_dtype_is_half(out->dtype))
    tc_vf32_to_half(out->dtype, out->data, y, tc_rt_numel(out));
}

/* GlobalAveragePool of a channels-last float32 x: y[n, c] = mean over the
 * positions p of x[n, p, c]; bfloat16 / float16 on a widened copy, the
 * means rounded once. */
static tc_status gap_nhwc(tc_kernel_ctx *k, const tc_rt_tensor *x, tc_rt_tensor *out) {
  int64_t dims[4] = {x->dims[0], x->dims[1], 1, 1};
  tc_status st = tc_kernel_alloc_uninit(k, out, x->dtype, 4, dims);
  if (st)
    return st;
  size_t C = (size_t)x->dims[1], HW = (size_t)(x->dims[2] * x->dims[3]);
  bool half = tc_dtype_is_half(x->dtype);
  float *y = f32_result(k, out), xa[HCHUNK];
  if (!y)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  for (size_t n = 0; n < (size_t)x->dims[0]; n++) {
    float *yn = y + n * C;
    memset(yn, 0, C * sizeof *yn);
    /* half: a run of positions widened at a time (long rows in pieces) */
    size_t per = half && C <= HCHUNK ? HCHUNK / C : 1;
    for (size_t p = 0; p < HW; p += per) {
      size_t at = (n * HW + p) * C, np = HW - p < per ? HW - p : per;
      if (!half) {
        tc_vadd_inplace_f32(yn, (const float *)x->data + at, C);
        continue;
      }
      for (size_t c = 0; c < C; c += HCHUNK) {
        size_t m = C - c < HCHUNK ? C - c : HCHUNK;
        tc_vhalf_to_f32(x->dtype, xa, (const uint16_t *)x->data + at + c, np * m);
        for (size_t q = 0; q < np; q++)
          tc_vadd_inplace_f32(yn + c, xa + q * m, m);
      }
    }
    tc_vscale_f32(yn, C, 1.0f / (float)HW);
  }
  round_out(out, y);
  return TC_STATUS_OK;
}

/* y = a op b with a channels-last [N, C, H, W] and b float32 per channel
 * (b_n 1 or N batches of C values); swap: y = b op a. */
typedef struct chan_job {
  const void *a; /* the image: float32, or bfloat16 / float16 (dt) */
  const float *b;
  void *y; /* of a's type */
  size_t C, HW, b_n;
  int32_t dt;
  char op;
  bool swap;
} chan_job;

/* y = a op b over m values, or b op a with the job's swap. */
static void chan_op(const chan_job *j, float *y, const float *a, const float *b, size_t m) {
  if (j->swap)
    tc_vbinary_f32(y, b, a, m, j->op);
  else
    tc_vbinary_f32(y, a, b, m, j->op);
}

static void chan_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const chan_job *j = ctx;
  bool half = tc_dtype_is_half(j->dt);
  float xa[HCHUNK], r[HCHUNK];
  for (size_t row = lo; row < hi; row++) { /* one position of one image */
    if (!half) {
      const float *b = j->b + (j->b_n > 1 ? row / j->HW * j->C : 0);
      const float *a = (const float *)j->a + row * j->C;
      chan_op(j, (float *)j->y + row * j->C, a, b, j->C);
      continue;
    }
    /* rows of up to HCHUNK channels widened and rounded a run of rows at a
     * time; longer rows a piece at a time */
    size_t per = j->C <= HCHUNK ? HCHUNK / j->C : 1, nr = hi - row < per ? hi - row : per;
    for (size_t c = 0; c < j->C; c += HCHUNK) {
      size_t m = j->C - c < HCHUNK ? j->C - c : HCHUNK, at = row * j->C + c;
      tc_vhalf_to_f32(j->dt, xa, (const uint16_t *)j->a + at, nr * m);
      for (size_t q = 0; q < nr; q++) {
        const float *bq = j->b + (j->b_n > 1 ? (row + q) / j->HW * j->C : 0) + c;
        chan_op(j, r + q * m, xa + q * m, bq, m);
      }
      tc_vf32_to_half(j->dt, (uint16_t *)j->y + at, r, nr * m);
    }
    row += nr - 1;
  }
}

/* Whether b broadcasts against rank-4 a as one value per channel: [N or 1,
 * C, 1, 1] or [C, 1, 1]; *bn gets its batch count. */
static bool per_channel(const tc_rt_tensor *a, const tc_rt_tensor *b, size_t *bn) {
  if (b->rank == 4 && (b->dims[0] == a->dims[0] || b->dims[0] == 1) && b->dims[1] == a->dims[1] &&
      b->dims[2] == 1 && b->dims[3] == 1) {
    *bn = (size_t)b->dims[0];
    return true;
  }
  *bn = 1;
  return b->rank == 3 && b->dims[0] == a->dims[1] && b->dims[1] == 1 && b->dims[2] == 1;
}

static tc_status binary_run(const tc_session *s, const tc_node *n, tc_kernel_ctx *k,
                            const tc_rt_tensor *const *in, tc_rt_tensor *out, uint32_t in_mask,
                            uint32_t out_mask) {
  const tc_rt_tensor *a = in[0], *b = in[1];
  bool an = in_mask & 1, bn = in_mask & 2;
  /* the same memory order on both sides and equal dims: element by element */
  bool a_ok = an || order_free(a), b_ok = bn || order_free(b);
  if (a_ok && b_ok &&
      ((a->rank == b->rank && !memcmp(a->dims, b->dims, a->rank * sizeof *a->dims)) ||
       tc_rt_numel(a) == 1 || tc_rt_numel(b) == 1))
    return s->kernels[n->id]->run(k, in, n->n_inputs, out, n->n_outputs);
  /* a channels-last image and one float32 value per channel */
  const tc_rt_tensor *img = an && !order_free(a) ? a : b, *ch = img == a ? b : a;
  size_t b_n;
  /* bfloat16 / float16 (both operands of that type): the float32 loop on
   * widened copies, rounded once (the reference's bits, as DEF_HROW_BIN) */
  int32_t dt = img->dtype;
  if (tc_fast_kernels_enabled() && (in_mask & (img == a ? 1 : 2)) && img->rank == 4 &&
      (dt == TC_DTYPE_F32 || tc_dtype_is_half(dt)) && ch->dtype == dt &&
      per_channel(img, ch, &b_n)) {
    tc_status st = tc_kernel_alloc_uninit(k, out, dt, 4, img->dims);
    if (st)
      return st;
    const float *chf = f32_view(k, ch); /* [b_n, C]: widened once */
    if (!chf)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    chan_job j = {.a = img->data,
                  .b = chf,
                  .y = out->data,
                  .C = (size_t)img->dims[1],
                  .HW = (size_t)(img->dims[2] * img->dims[3]),
                  .b_n = b_n,
                  .dt = dt,
                  .op = n->op_type[0] == 'A'   ? '+'
                        : n->op_type[0] == 'M' ? '*'
                        : n->op_type[0] == 'S' ? '-'
                                               : '/',
                  .swap = img == b};
    size_t rows = (size_t)img->dims[0] * j.HW;
    tc_parallel_for(rows, tc_parallel_grain(j.C), chan_rows, &j);
    return TC_STATUS_OK;
  }
  return convert_run(s, n, k, in, out, in_mask, out_mask);
}

/* BatchNormalization of a channels-last float32 x (inference, float32
 * [C] parameters): each channel's terms in double as the plain kernel, each
 * position's channel vector as (x - mean) * g + b in float (tc_vaffine_ch_f32:
 * the plain fast path's arithmetic, so its bits). False: not such a case. */
typedef struct bn_rows_job {
  const float *x, *m, *g, *b;
  float *y;
  size_t C;
} bn_rows_job;

static void bn_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const bn_rows_job *j = ctx;
  for (size_t r = lo; r < hi; r++)
    tc_vaffine_ch_f32(j->y + r * j->C, j->x + r * j->C, j->C, j->m, j->g, j->b);
}

static bool bn_nhwc(tc_kernel_ctx *k, const tc_node *n, const tc_rt_tensor *const *in,
                    tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  if (!x || x->dtype != TC_DTYPE_F32 || x->rank != 4)
    return false;
  size_t C = (size_t)x->dims[1];
  for (size_t i = 1; i < 5; i++)
    if (!in[i] || in[i]->dtype != TC_DTYPE_F32 || tc_rt_numel(in[i]) != C || in[i]->rank != 1)
      return false;
  float *t = tc_arena_alloc(k->arena, 3 * (C + 1) * sizeof *t);
  if (!t || (*st = tc_kernel_alloc_uninit(k, out, x->dtype, 4, x->dims))) {
    if (!t)
      *st = tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    return true;
  }
  double eps = tc_attr_float(n, "epsilon", 1e-5f);
  const float *sc = in[1]->data, *bb = in[2]->data, *mu = in[3]->data, *var = in[4]->data;
  bn_rows_job j = {x->data, t, t + C + 1, t + 2 * (C + 1), out->data, C};
  for (size_t c = 0; c < C; c++) {
    t[c] = (float)(double)mu[c];
    t[C + 1 + c] = (float)((double)sc[c] / sqrt((double)var[c] + eps));
    t[2 * (C + 1) + c] = bb[c];
  }
  size_t rows = (size_t)(x->dims[0] * x->dims[2] * x->dims[3]);
  tc_parallel_for(rows, tc_parallel_grain(2 * C), bn_rows, &j);
  *st = TC_STATUS_OK;
  return true;
}

/* LRN of a channels-last float32 x [N, C, H, W] (windows of at most 64
 * channels), the plain kernel's arithmetic: a block of positions at a time,
 * each position's squares in a row padded with lo zeros before and hi
 * after, the window sums as size shifted adds over the whole block (in
 * channel order; the zeros add nothing), then tc_lrn_apply over the
 * block's channel vectors at once. False: not such a case. */
enum { LRN_BLOCK_FLOATS = 8192 };

static bool lrn_nhwc(tc_kernel_ctx *k, const tc_node *n, const tc_rt_tensor *const *in,
                     tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  int64_t size = tc_attr_int(n, "size", 0);
  if (!x || x->dtype != TC_DTYPE_F32 || x->rank != 4 || size <= 0 || size > 64 || !x->dims[1])
    return false;
  size_t C = (size_t)x->dims[1], lo = (size_t)(size - 1) / 2, W = C + (size_t)size - 1;
  size_t P = LRN_BLOCK_FLOATS / W ? LRN_BLOCK_FLOATS / W : 1,
         rows = (size_t)(x->dims[0] * x->dims[2] * x->dims[3]);
  double alpha = tc_attr_float(n, "alpha", 1e-4f), beta = tc_attr_float(n, "beta", 0.75f);
  float scale = (float)(alpha / (double)size), bias = tc_attr_float(n, "bias", 1.0f),
        nbeta = (float)-beta;
  float *sq = tc_arena_alloc(k->arena, (P * W + 1) * sizeof *sq),
        *acc = tc_arena_alloc(k->arena, (P * W + 1) * sizeof *acc);
  if (!sq || !acc || (*st = tc_kernel_alloc_uninit(k, out, x->dtype, 4, x->dims))) {
    if (!sq || !acc)
      *st = tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    return true;
  }
  memset(sq, 0, P * W * sizeof *sq);
  const float *xd = x->data;
  float *yd = out->data;
  for (size_t r0 = 0; r0 < rows; r0 += P) {
    size_t np = rows - r0 < P ? rows - r0 : P, nw = np * W - ((size_t)size - 1);
    for (size_t p = 0; p < np; p++) /* the pads stay zero */
      tc_vbinary_f32(sq + p * W + lo, xd + (r0 + p) * C, xd + (r0 + p) * C, C, '*');
    memset(acc, 0, nw * sizeof *acc);
    for (size_t t = 0; t < (size_t)size; t++)
      tc_vadd_inplace_f32(acc, sq + t, nw);
    for (size_t p = 1; p < np; p++) /* position p's sums to p * C */
      memmove(acc + p * C, acc + p * W, C * sizeof *acc);
    size_t m = np * C;
    tc_lrn_apply(yd + r0 * C, xd + r0 * C, acc, m, scale, bias, nbeta);
  }
  *st = TC_STATUS_OK;
  return true;
}

/* Concat over channels into a channels-last y: each position's channel
 * vectors of the inputs one after another; a plain input is made
 * channels-last first. False: not such a case (ranks, dims, dtypes). */
static bool concat_nhwc(tc_kernel_ctx *k, const tc_node *n, const tc_rt_tensor *const *in,
                        tc_rt_tensor *out, uint32_t in_mask, tc_status *st) {
  const tc_rt_tensor *x0 = in[0];
  if (!x0 || x0->rank != 4 || n->n_inputs > 32)
    return false;
  int64_t dims[4] = {x0->dims[0], 0, x0->dims[2], x0->dims[3]};
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_rt_tensor *x = in[i];
    if (!x || x->rank != 4 || x->dtype != x0->dtype || x->dims[0] != dims[0] ||
        x->dims[2] != dims[2] || x->dims[3] != dims[3] || x->dtype == TC_DTYPE_STRING)
      return false;
    dims[1] += x->dims[1];
  }
  if ((*st = tc_kernel_alloc_uninit(k, out, x0->dtype, 4, dims)))
    return true;
  size_t es = tc_dtype_bytes(x0->dtype, 1), rows = (size_t)(dims[0] * dims[2] * dims[3]);
  size_t ct = (size_t)dims[1] * es, off = 0;
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_rt_tensor *x = in[i];
    size_t ci = (size_t)x->dims[1] * es;
    const unsigned char *src = x->data;
    if (!(in_mask >> i & 1) && !order_free(x) && x->bytes) {
      unsigned char *c = tc_arena_alloc(k->arena, x->bytes);
      if (!c) {
        *st = tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
        return true;
      }
      tc_layout_copy(c, src, es, (size_t)dims[0], (size_t)x->dims[1], (size_t)(dims[2] * dims[3]),
                     true);
      src = c;
    }
    unsigned char *y = (unsigned char *)out->data + off;
    for (size_t r = 0; ci && r < rows; r++)
      memcpy(y + r * ct, src + r * ci, ci);
    off += ci;
  }
  *st = TC_STATUS_OK;
  return true;
}

/* A Reshape of a channels-last x into a channels-last y with the same N,
 * channel count (the middle dims' product) and positions (the last two's)
 * only regroups the channels (a shuffle's [N, C, H, W] <-> [N, G, C/G, H,
 * W]) or the positions: the bytes are the same in both orders, so the
 * kernel runs unchanged. False (and *st untouched) when the dims it made
 * are not such. */
static bool reshape_nhwc(const tc_session *s, const tc_node *n, tc_kernel_ctx *k,
                         const tc_rt_tensor *const *in, tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  size_t xn, xc, xhw, yn, yc, yhw;
  if (!x || !tc_layout_shape(x, &xn, &xc, &xhw))
    return false;
  tc_status r = s->kernels[n->id]->run(k, in, n->n_inputs, out, n->n_outputs);
  if (!r && (!tc_layout_shape(out, &yn, &yc, &yhw) || yn != xn || yc != xc || yhw != xhw))
    return false;
  *st = r;
  return true;
}

/* Transpose [0, 2, 1, 3, 4] of a channels-last [N, A, B, H, W]: at each
 * position the A x B block of channels becomes B x A. */
typedef struct shuffle_job {
  const unsigned char *x;
  unsigned char *y;
  size_t A, B, es;
} shuffle_job;

static void shuffle_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const shuffle_job *j = ctx;
  size_t A = j->A, B = j->B, blk = A * B;
  for (size_t p = lo; p < hi; p++) {
    if (j->es == 4) {
      tc_vtranspose_f32((float *)j->y + p * blk, (const float *)j->x + p * blk, A, B);
      continue;
    }
    for (size_t a = 0; a < A; a++)
      for (size_t b = 0; b < B; b++)
        memcpy(j->y + ((p * B + b) * A + a) * j->es, j->x + ((p * A + a) * B + b) * j->es, j->es);
  }
}

static bool shuffle_nhwc(tc_kernel_ctx *k, const tc_rt_tensor *const *in, tc_rt_tensor *out,
                         tc_status *st) {
  const tc_rt_tensor *x = in[0];
  if (!x || x->rank != 5 || x->dtype == TC_DTYPE_STRING)
    return false;
  int64_t dims[5] = {x->dims[0], x->dims[2], x->dims[1], x->dims[3], x->dims[4]};
  if ((*st = tc_kernel_alloc_uninit(k, out, x->dtype, 5, dims)))
    return true;
  shuffle_job j = {x->data, out->data, (size_t)x->dims[1], (size_t)x->dims[2],
                   tc_dtype_bytes(x->dtype, 1)};
  size_t rows = (size_t)(dims[0] * dims[3] * dims[4]);
  if (j.es && j.A && j.B)
    tc_parallel_for(rows, tc_parallel_grain(2 * j.A * j.B), shuffle_rows, &j);
  return true;
}

/* Split over channels of a channels-last x: the positions' channel vectors
 * are the rows of an [N * H * W, C] matrix, split along its columns by
 * the node's own kernel on that view; the outputs then take their 4-D dims
 * (channels-last), and those the plan wants plain are reordered. False:
 * not such a case. */
static bool split_nhwc(const tc_session *s, const tc_node *n, tc_kernel_ctx *k,
                       const tc_rt_tensor *const *in, tc_rt_tensor *out, uint32_t out_mask,
                       tc_status *st) {
  const tc_rt_tensor *x = in[0];
  if (!x || x->rank != 4 || n->n_inputs > 2)
    return false;
  tc_rt_tensor v = *x;
  v.rank = 2;
  v.dims[0] = x->dims[0] * x->dims[2] * x->dims[3];
  v.dims[1] = x->dims[1];
  const tc_rt_tensor *vin[2] = {&v, n->n_inputs > 1 ? in[1] : NULL};
  if ((*st = s->kernels[n->id]->run(k, vin, n->n_inputs, out, n->n_outputs)))
    return true;
  for (size_t o = 0; o < n->n_outputs; o++) {
    tc_rt_tensor *t = &out[o];
    int64_t c = t->dims[1];
    t->rank = 4;
    t->dims[0] = x->dims[0], t->dims[1] = c, t->dims[2] = x->dims[2], t->dims[3] = x->dims[3];
    if (!(out_mask >> o & 1) && (*st = to_plain(k, t)))
      return true;
  }
  return true;
}

tc_status tc_layout_run(const tc_session *s, const tc_node *n, tc_kernel_ctx *k,
                        const tc_rt_tensor *const *in, tc_rt_tensor *out) {
  uint32_t in_mask = mask_of(s, n->inputs, n->n_inputs),
           out_mask = mask_of(s, n->outputs, n->n_outputs);
  const tc_rt_tensor *x = in[0];
  switch (s->layout[n->id]) {
  case K_CONV:
    k->nhwc_in = in_mask;
    k->nhwc_out = out_mask;
    return s->kernels[n->id]->run(k, in, n->n_inputs, out, n->n_outputs);
  case K_GAP:
    if ((in_mask & 1) && tc_fast_kernels_enabled() && x && x->rank == 4 &&
        (x->dtype == TC_DTYPE_F32 || tc_dtype_is_half(x->dtype)) && x->dims[2] * x->dims[3] > 0) {
      tc_status st = gap_nhwc(k, x, out);
      if (!st && op_is(n, "ReduceMean") && !tc_attr_int(n, "keepdims", 1))
        out->rank = 2; /* [N, C, 1, 1] -> [N, C] */
      return st;
    }
    break;
  case K_POOL:
    if ((in_mask & 1) && tc_fast_kernels_enabled() && x &&
        (x->dtype == TC_DTYPE_F32 || tc_dtype_is_half(x->dtype)) && x->rank == 4) {
      k->nhwc_in = 1;
      k->nhwc_out = 1;
      tc_status st = s->kernels[n->id]->run(k, in, n->n_inputs, out, n->n_outputs);
      return st || (out_mask & 1) ? st : to_plain(k, out);
    }
    break;
  case K_UNARY:
  case K_QUANT:
  case K_DEQUANT:
    if ((in_mask & 1) == (out_mask & 1))
      return s->kernels[n->id]->run(k, in, n->n_inputs, out, n->n_outputs);
    break;
  case K_BINARY:
    if (in[0] && in[1])
      return binary_run(s, n, k, in, out, in_mask, out_mask);
    break;
  case K_LRN: {
    tc_status st;
    if ((in_mask & 1) && (out_mask & 1) && tc_fast_kernels_enabled() &&
        lrn_nhwc(k, n, in, out, &st))
      return st;
    break;
  }
  case K_BN: {
    tc_status st;
    if ((in_mask & 1) && (out_mask & 1) && tc_fast_kernels_enabled() && bn_nhwc(k, n, in, out, &st))
      return st;
    break;
  }
  case K_CONCAT: {
    tc_status st;
    if ((out_mask & 1) && tc_fast_kernels_enabled() && concat_nhwc(k, n, in, out, in_mask, &st))
      return st;
    break;
  }
  case K_RESHAPE: {
    tc_status st;
    if ((in_mask & 1) && (out_mask & 1) && reshape_nhwc(s, n, k, in, out, &st))
      return st;
    break;
  }
  case K_SHUFFLE: {
    tc_status st;
    if ((in_mask & 1) && (out_mask & 1) && shuffle_nhwc(k, in, out, &st))
      return st;
    break;
  }
  case K_SPLIT: {
    tc_status st;
    if ((in_mask & 1) && split_nhwc(s, n, k, in, out, out_mask, &st))
      return st;
    break;
  }
  }
  return convert_run(s, n, k, in, out, in_mask, out_mask);
}
