/* The expert-library path for convolutions: Conv, ConvTranspose and
 * FusedConv in float32 through oneDNN (de)convolution primitives
 * (algorithm direct, or Winograd for the 3x3 stride-1 convolutions
 * tc_conv_algo picks; direct when oneDNN has no Winograd kernel), with the bias, a summed input
 * (FusedConv's Z) and an activation inside the primitive (sum and eltwise post-ops) except on the
 * plain layout (below). The reference kernels in kernels/conv.c stay the
 * definition of correct; tests compare the two.
 *
 * Quantized (QDQ) convolutions use the same machinery with uint8/int8 x,
 * int8 weights and float32 y: the per-channel output scales (x scale times
 * w scale) are fixed in the primitive (oneDNN 2.6 has no int8 convolution
 * taking them at execution), so they are part of the key (a hash, with the
 * entry's copy compared on every hit); x's zero point is given at execution;
 * always the layouts oneDNN picks (nhwc-like blocked int8).
 *
 * int8 MatMul (tc_dnnl_qmatmul_run): uint8 A [M, K] times an int8
 * initializer B [K, N] into int32, through oneDNN's matmul primitive with B
 * in the blocked layout it picks (the brgemm kernel), reordered once and
 * cached in the same entries (key.mm), with B's column sums; no zero points
 * or scales in the primitive (oneDNN 2.6 then falls back to its slower
 * GEMM), the caller subtracts A's zero point times the column sums.
 * bfloat16 MatMul (tc_dnnl_bmatmul_run) the same way: bfloat16 A times a
 * bfloat16 initializer into bfloat16 (float32 sums, rounded to nearest
 * even), on the CPU's bfloat16 dot products where it has them (AVX512_BF16:
 * 216-224 GFLOP/s at BERT-base's shapes on one core of this machine, twice
 * the float32 GEMM's rate); float16 weights (tc_dnnl_hmatmul_run) are
 * widened to float32 when packed, for a float32 matmul. bfloat16 convolutions (tc_dnnl_bconv_run)
 * are entries like the float32 ones with bfloat16 x, w, z and y, the direct algorithm and never the
 * plain layout.
 *
 * Layouts. Runtime tensors are plain (NCHW), except the channels-last
 * (NHWC) values runtime/layout.c picks between convolutions: spec->layout
 * says which of x and y (z follows y) are, and those run with the layout
 * oneDNN picks (never the plain path below), reordered only where it picks
 * another (Winograd's nChw16c). Measured on a 2-core AVX-512
 * machine at batch 1 (oneDNN 2.6, ResNet-50 shapes, 1 and 2 threads): 3x3
 * and 7x7 convs run 25-35% faster with the layouts oneDNN picks (nChw16c
 * activations, blocked weights), reorders of x and y included; grouped and
 * depthwise ones 3-8x faster. Ungrouped 1x1 convs run 10-25% faster plain
 * (oneDNN's GEMM-based kernel) than blocked with the reorders when the
 * output has 14x14 positions or more, but 20-30% slower at 7x7. So those
 * stay plain down to PLAIN_MIN_OUT output positions. Ungrouped 1-D convs
 * (speech front ends) run plain too: a wav2vec2 feature encoder's 512 ->
 * 512 kernel-3 stride-2 conv over 3199 frames 34 -> 27 ms, kernel 2 13.4 ->
 * 9.3 ms, both without the reorders (1 thread); Whisper-base's 80 -> 512
 * and 512 -> 512 stride-2 convs over 3000 frames 45% and 38% faster (the
 * tuner, 2 threads, reorders counted). Without the reorders oneDNN's
 * direct kernel was 13-15% faster on 384-channel Whisper-like shapes, and
 * grouped 1-D convs ran 30% slower plain. That is tc_conv_algo GEMM, which
 * the autotuner measures and can undo per node; every other case lets
 * oneDNN pick (format any). The GEMM-based kernel applies
 * post-ops slowly (a sum takes 1.3-4x the time), so on the plain layout the summed input and the
 * activation come after the primitive, from a binary add (of z, or of a broadcast zero) carrying
 * the activation as its post-op.
 *
 * Cache. One entry per (spec, bias?, sum?, weights identity) holds the
 * primitive, its reorders and, for initializer weights, the weights already
 * reordered. Initializer weights are identified by their model and the
 * payload buffer of the IR tensor (buffer, offset, length); the entry holds
 * a reference on that buffer, so no other payload can take its address while
 * the entry lives, and payloads are never changed in place. A sampled
 * comparison of W with the payload guards against a caller passing other
 * data for the node. The model's arena gets a hook that drops its entries
 * when the model is freed (sessions end before their model). Other weights
 * (graph inputs, computed values) are reordered on every call. Entries are
 * reference-counted while a run uses them and evicted least recently used
 * first; oneDNN's refusals are cached too.
 *
 * Threads. Every primitive uses a user-managed scratchpad and each thread
 * has its own stream and workspace (scratchpad, blocked x and y, per-call
 * weights), so sessions on several threads share primitives safely. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>

#include "kernel.h"

/* oneDNN runs on OpenMP here (see blas.c). */
int omp_get_max_threads(void);

#define MAX_ENTRIES 512
#define MAX_WEIGHT_BYTES ((size_t)1 << 30)
#define ALIGN ((size_t)64)

typedef struct ckey {
  uint64_t hash;
  tc_conv_spec spec;
  bool bias, sum;
  int32_t xdt;    /* 0: float32; TC_DTYPE_U8 / TC_DTYPE_I8: quantized (int8 weights, float y);
                     TC_DTYPE_BF16: bfloat16 x, w and y (float32 bias); TC_DTYPE_F16:
                     float32 x and y, float16 weights widened when packed (always) */
  bool zp;        /* quantized: x has a zero point (given at execution) */
  int32_t ydt;    /* quantized: 0 float32 y, TC_DTYPE_U8 / TC_DTYPE_I8: y quantized in the
                     primitive (the scales include 1 / y's scale) */
  int32_t yzp;    /* y's zero point when ydt (a post-op, fixed in the primitive) */
  uint64_t qhash; /* quantized: hash of the output scales (fixed in the primitive) */
  int threads;    /* oneDNN splits work for the thread count at creation */
  bool mm;   /* an int8 matmul (spec.N rows, spec.C = K, spec.M = N; int32 out, no zero points) */
  bool tb;   /* matmul: the weights are given [N, K] (Gemm's transB) */
  bool yf32; /* bfloat16 matmul: float32 y (Gemm, whose epilogue rounds once) */
  const void *owner;     /* the weights' owner (a model, or a session's arena for
                            constants it computed) and payload; NULL: not cached */
  tc_arena *owner_arena; /* the arena whose freeing drops the owner's entries */
  const tc_buffer *wbuf;
  size_t woff, wlen;
} ckey;

typedef struct prim {
  dnnl_primitive_t p; /* NULL: not needed */
  dnnl_memory_desc_t scratch_md;
  size_t scratch;
} prim;

typedef struct centry {
  struct centry *prev, *next;
  ckey key;
  int refs;
  bool declined;                           /* oneDNN refused the case */
  bool winograd;                           /* the primitive is a Winograd convolution */
  prim conv, x_in, y_out, z_in, w_in, add; /* add: y = act(y + z) after conv */
  dnnl_memory_desc_t x_md, y_md, w_md, b_md, x_user, y_user, w_user;
  dnnl_memory_desc_t one_md; /* a broadcast scalar, the add's z without one */
  dnnl_memory_desc_t zp_md;  /* quantized: x's zero point [1] */
  size_t scratch, x_bytes, y_bytes, w_bytes, y_plain;
  void *wdata;     /* the weights in w_md, when cached */
  float *scales;   /* quantized: the output scales [M] the primitive was made with */
  int32_t *colsum; /* matmul: the weights' column sums [N] */
  tc_buffer *wref;
} centry;

typedef struct wspace {
  dnnl_stream_t stream;
  void *buf;
  size_t cap;
  void *sub; /* TC_CONV_ALGO_SUBSAMPLE's copy of x */
  size_t sub_cap;
  void *zsave; /* z saved when y is its memory and the plain layout adds it after */
  size_t zsave_cap;
} wspace;

/* Set when an entry failed while running (y may be partly written); see
 * tc_dnnl_conv_failed_running. */
static _Thread_local bool failed_running;
/* What the last entry this thread ran reordered (tc_dnnl_conv_last_reorders)
 * and whether it was a Winograd convolution (tc_dnnl_conv_last_winograd). */
static _Thread_local unsigned last_reorders;
static _Thread_local bool last_winograd;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static dnnl_engine_t engine;
static pthread_key_t ws_key;
static bool ws_key_ok;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static centry *head, *tail;
static size_t n_entries, weight_bytes;

/* Owners whose arena runs owner_freed when it is freed. */
typedef struct hooked {
  const void *owner;
  struct hooked *next;
} hooked;
static hooked *hooked_owners;

/* Weights a session computed from constants when it was made
 * (tc_dnnl_weights_register): their payload, its buffer and the session's
 * arena, which owns them. */
typedef struct regw {
  const void *data;
  size_t bytes;
  tc_buffer *buf;
  tc_arena *owner;
} regw;
static regw *registered;
static size_t n_registered, cap_registered;

static void ws_free(void *p) {
  wspace *w = p;
  if (w->stream)
    dnnl_stream_destroy(w->stream);
  free(w->buf);
  free(w->sub);
  free(w->zsave);
  free(w);
}

static void init_once(void) {
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success)
    engine = NULL;
  ws_key_ok = pthread_key_create(&ws_key, ws_free) == 0;
}

static size_t round_up(size_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

/* The calling thread's stream and a workspace of at least need bytes. */
static wspace *ws_get(size_t need) {
  wspace *w = pthread_getspecific(ws_key);
  if (!w) {
    if (!(w = calloc(1, sizeof *w)))
      return NULL;
    if (dnnl_stream_create(&w->stream, engine, dnnl_stream_default_flags) != dnnl_success ||
        pthread_setspecific(ws_key, w) != 0) {
      ws_free(w);
      return NULL;
    }
  }
  if (w->cap < need || !w->buf) {
    free(w->buf);
    w->cap = round_up(need ? need : 1);
    if (!(w->buf = aligned_alloc(ALIGN, w->cap))) {
      w->cap = 0;
      return NULL;
    }
  }
  return w;
}

/* A buffer of at least need bytes kept in *buf (of capacity *cap) of this
 * thread's workspace; NULL when memory runs out. */
static void *ws_extra(void **buf, size_t *cap, size_t need) {
  if (*cap < need || !*buf) {
    free(*buf);
    *cap = 0;
    if (!(*buf = aligned_alloc(ALIGN, round_up(need ? need : 1))))
      return NULL;
    *cap = round_up(need ? need : 1);
  }
  return *buf;
}

bool tc_dnnl_conv_failed_running(void) { return failed_running; }

unsigned tc_dnnl_conv_last_reorders(void) { return last_reorders; }
bool tc_dnnl_conv_last_winograd(void) { return last_winograd; }

/* ---- memory descriptors ---- */

static int64_t ksize(const tc_conv_spec *c) { return c->k[0] * c->k[1] * c->k[2]; }

/* Output positions from which ungrouped 1x1 convs run plain (see above). */
#define PLAIN_MIN_OUT 100

static tc_conv_algo algo_of(const tc_conv_spec *c);

/* The plain layout: TC_CONV_ALGO_GEMM, asked for or by default. */
static bool plain_layout(const tc_conv_spec *c) { return algo_of(c) == TC_CONV_ALGO_GEMM; }

static bool md_dense_dt(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims,
                        dnnl_data_type_t dt) {
  dnnl_dims_t st;
  st[nd - 1] = 1;
  for (int i = nd - 2; i >= 0; i--)
    st[i] = st[i + 1] * dims[i + 1];
  return dnnl_memory_desc_init_by_strides(md, nd, dims, dt, st) == dnnl_success;
}

static bool md_dense(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims) {
  return md_dense_dt(md, nd, dims, dnnl_f32);
}

/* x or y as the runtime holds it: dense, channels-last when nhwc (2-D only). */
static bool md_user(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims, dnnl_data_type_t dt,
                    bool nhwc) {
  if (!nhwc)
    return md_dense_dt(md, nd, dims, dt);
  return nd == 4 && dnnl_memory_desc_init_by_tag(md, nd, dims, dt, dnnl_acdb) == dnnl_success;
}

static bool md_any_dt(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims, dnnl_data_type_t dt) {
  return dnnl_memory_desc_init_by_tag(md, nd, dims, dt, dnnl_format_tag_any) == dnnl_success;
}

static bool md_any(dnnl_memory_desc_t *md, int nd, const dnnl_dim_t *dims) {
  return md_any_dt(md, nd, dims, dnnl_f32);
}

/* Whether key is an int8 (quantized) case; a bfloat16 one. */
static bool key_q8(const ckey *key) { return key->xdt == TC_DTYPE_U8 || key->xdt == TC_DTYPE_I8; }
static bool key_bf16(const ckey *key) { return key->xdt == TC_DTYPE_BF16; }

/* The data type of x for key->xdt. */
static dnnl_data_type_t x_type(const ckey *key) {
  return key->xdt == TC_DTYPE_U8   ? dnnl_u8
         : key->xdt == TC_DTYPE_I8 ? dnnl_s8
         : key_bf16(key)           ? dnnl_bf16
                                   : dnnl_f32;
}

/* Quantized: the output scales per output channel, fixed in the primitive
 * (oneDNN 2.6's int8 convolutions take no scales at execution), and x's
 * zero point, given at execution. */
static bool quant_attr(const ckey *key, const float *scales, dnnl_primitive_attr_t attr) {
  const int32_t rt_zp = DNNL_RUNTIME_S32_VAL;
  return !key_q8(key) ||
         (dnnl_primitive_attr_set_output_scales(attr, key->spec.M, 1 << 1, scales) ==
              dnnl_success &&
          (!key->zp ||
           dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &rt_zp) == dnnl_success));
}

/* oneDNN's dims of x and y and the stride, dilation (0 = none) and padding
 * vectors of c. */
static void geometry(const tc_conv_spec *c, dnnl_dims_t xd, dnnl_dims_t yd, dnnl_dims_t st,
                     dnnl_dims_t dil, dnnl_dims_t pl, dnnl_dims_t pr) {
  xd[0] = yd[0] = c->N;
  xd[1] = c->C;
  yd[1] = c->M;
  for (size_t i = 0; i < c->nsp; i++) {
    xd[2 + i] = c->in[i];
    yd[2 + i] = c->out[i];
    st[i] = c->s[i];
    dil[i] = c->d[i] - 1;
    pl[i] = c->pb[i];
    /* transposed: out = (in - 1) s + (k - 1) d + 1 - pb - pr */
    pr[i] = c->transposed
                ? (c->in[i] - 1) * c->s[i] + (c->k[i] - 1) * c->d[i] + 1 - c->pb[i] - c->out[i]
                : c->pe[i];
  }
}

/* The weights as the runtime holds them. oneDNN's logical order is
 * ([G,] O, I, k...); ConvTranspose stores I before O ([C, M/group, k]). */
static bool md_weights(const tc_conv_spec *c, bool plain, dnnl_data_type_t dt,
                       dnnl_memory_desc_t *user, dnnl_memory_desc_t *any) {
  int nsp = (int)c->nsp, g = c->group > 1;
  int64_t ksz = ksize(c), Mg = c->M / c->group, Cg = c->C / c->group;
  dnnl_dims_t dims, st;
  int nd = 0;
  if (g)
    dims[nd++] = c->group;
  dims[nd++] = Mg;
  dims[nd++] = Cg;
  for (int i = 0; i < nsp; i++)
    dims[nd++] = c->k[i];
  if (!c->transposed) {
    if (!md_dense_dt(user, nd, dims, dt))
      return false;
  } else {
    st[nd - 1] = 1;
    for (int i = nd - 2; i >= g + 2; i--)
      st[i] = st[i + 1] * dims[i + 1];
    st[g] = ksz;          /* O */
    st[g + 1] = Mg * ksz; /* I */
    if (g)
      st[0] = Cg * Mg * ksz; /* G */
    if (dnnl_memory_desc_init_by_strides(user, nd, dims, dt, st) != dnnl_success)
      return false;
  }
  if (plain) {
    *any = *user;
    return true;
  }
  return md_any_dt(any, nd, dims, dt);
}

static bool post_ops(const tc_conv_spec *c, bool sum, float shift, dnnl_primitive_attr_t attr) {
  if (!sum && c->act == TC_CONV_ACT_NONE && shift == 0)
    return true;
  dnnl_post_ops_t po;
  if (dnnl_post_ops_create(&po) != dnnl_success)
    return false;
  bool ok = !sum || dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
  dnnl_alg_kind_t alg = dnnl_alg_kind_undef;
  float a = 0, b = 0;
  switch (c->act) {
  case TC_CONV_ACT_NONE: break;
  case TC_CONV_ACT_RELU: alg = dnnl_eltwise_relu; break;
  case TC_CONV_ACT_LEAKY_RELU: alg = dnnl_eltwise_relu, a = c->alpha; break;
  case TC_CONV_ACT_TANH: alg = dnnl_eltwise_tanh; break;
  case TC_CONV_ACT_SIGMOID: alg = dnnl_eltwise_logistic; break;
  case TC_CONV_ACT_CLIP: alg = dnnl_eltwise_clip, a = c->alpha, b = c->beta; break;
  case TC_CONV_ACT_HARD_SIGMOID: /* oneDNN 2.6 has no hardsigmoid: linear, then clip */
    ok = ok && dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, c->alpha, c->beta) ==
                   dnnl_success;
    alg = dnnl_eltwise_clip, a = 0, b = 1;
    break;
  case TC_CONV_ACT_HARD_SWISH: alg = dnnl_eltwise_hardswish; break;
  case TC_CONV_ACT_GELU: alg = dnnl_eltwise_gelu_erf; break;
  case TC_CONV_ACT_SILU: alg = dnnl_eltwise_swish, a = 1; break;
  }
  if (alg != dnnl_alg_kind_undef)
    ok = ok && dnnl_post_ops_append_eltwise(po, 1.0f, alg, a, b) == dnnl_success;
  if (shift != 0) /* a quantized y's zero point, after the activation */
    ok = ok &&
         dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_linear, 1.0f, shift) == dnnl_success;
  ok = ok && dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
  dnnl_post_ops_destroy(po);
  return ok;
}

static bool user_scratchpad(dnnl_primitive_attr_t *attr) {
  if (dnnl_primitive_attr_create(attr) != dnnl_success)
    return false;
  if (dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user) == dnnl_success)
    return true;
  dnnl_primitive_attr_destroy(*attr);
  return false;
}

/* Creates p from pd (which it destroys) and reads its scratchpad size. */
static bool prim_from(prim *p, dnnl_primitive_desc_t pd) {
  const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  if (sp) {
    p->scratch_md = *sp;
    p->scratch = dnnl_memory_desc_get_size(sp);
  }
  bool ok = dnnl_primitive_create(&p->p, pd) == dnnl_success;
  if (!ok)
    p->p = NULL;
  dnnl_primitive_desc_destroy(pd);
  return ok;
}

/* A reorder from a to b, or none (p->p NULL) when the layouts agree. */
static bool reorder_make(prim *p, const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b) {
  if (dnnl_memory_desc_equal(a, b))
    return true;
  dnnl_primitive_attr_t attr;
  if (!user_scratchpad(&attr))
    return false;
  dnnl_primitive_desc_t pd;
  bool ok = dnnl_reorder_primitive_desc_create(&pd, a, engine, b, engine, attr) == dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  return ok && prim_from(p, pd);
}

/* y = act(y + z) in place, z shaped like y (md) or a broadcast scalar
 * (z_md): the plain layout's post-ops (see the top of the file). */
static bool add_make(prim *p, const tc_conv_spec *c, const dnnl_memory_desc_t *md,
                     const dnnl_memory_desc_t *z_md) {
  dnnl_binary_desc_t bd;
  dnnl_primitive_attr_t attr;
  if (dnnl_binary_desc_init(&bd, dnnl_binary_add, md, z_md, md) != dnnl_success ||
      !user_scratchpad(&attr))
    return false;
  dnnl_primitive_desc_t pd;
  bool ok = post_ops(c, false, 0, attr) &&
            dnnl_primitive_desc_create(&pd, &bd, attr, engine, NULL) == dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  return ok && prim_from(p, pd);
}

static void prim_free(prim *p) {
  if (p->p)
    dnnl_primitive_destroy(p->p);
}

static void entry_free(centry *e) {
  prim *ps[] = {&e->conv, &e->x_in, &e->y_out, &e->z_in, &e->w_in, &e->add};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
    prim_free(ps[i]);
  free(e->wdata);
  free(e->scales);
  free(e->colsum);
  tc_buffer_unref(e->wref);
  free(e);
}

/* ---- execution ---- */

static bool mem(dnnl_memory_t *m, const dnnl_memory_desc_t *md, const void *data) {
  if (dnnl_memory_create(m, md, engine, (void *)data) == dnnl_success)
    return true;
  *m = NULL;
  return false;
}

/* Runs p with args (n of them) and, when p has one, the scratchpad. */
static bool exec(const prim *p, wspace *ws, dnnl_exec_arg_t *args, int n) {
  dnnl_memory_t sp = NULL;
  bool ok = true;
  if (p->scratch) {
    ok = mem(&sp, &p->scratch_md, ws->buf);
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sp};
  }
  ok = ok && dnnl_primitive_execute(p->p, ws->stream, n, args) == dnnl_success;
  if (sp)
    dnnl_memory_destroy(sp);
  return ok;
}

static bool reorder_run(const prim *p, wspace *ws, const dnnl_memory_desc_t *amd, const void *a,
                        const dnnl_memory_desc_t *bmd, void *b) {
  dnnl_memory_t ma = NULL, mb = NULL;
  bool ok = mem(&ma, amd, a) && mem(&mb, bmd, b);
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, ma}, {DNNL_ARG_TO, mb}};
  ok = ok && exec(p, ws, args, 2);
  if (ma)
    dnnl_memory_destroy(ma);
  if (mb)
    dnnl_memory_destroy(mb);
  return ok;
}

/* Output positions from which Winograd takes oneDNN's 4x3-tile kernel. */
#define WINO_4X3_MIN_OUT 784

/* Winograd: oneDNN offers its 2x3-tile kernel first on most shapes; its
 * 4x3-tile one (F(4x4, 3x3): fewer multiplications per output) is taken
 * instead when offered and the output has at least WINO_4X3_MIN_OUT
 * positions. In ResNet-50 (1 thread, channels-
 * last values, reorders counted) the 56x56 64-channel convolutions ran
 * 1.41 -> 1.13 ms with it, but the 14x14 256-channel ones 1.33 -> 1.55 and
 * the 7x7 512-channel ones 1.93 -> 2.5 (alone, without the reorders, 4x3
 * was faster on all three); oneDNN picks 4x3 itself at 28x28. */
/* Depthwise convolutions: oneDNN lists its brdgmm kernel first, but its
 * jit_dw one ran every MobileNetV3-Large depthwise shape faster here
 * (channels-last, primitive alone, 1 thread: 112x112x16 67 -> 39 us,
 * 56x56x72 88 -> 58, 28x28x120 5x5 78 -> 53, 14x14x672 45 -> 34, 7x7x960
 * 5x5 30 -> 25; 2 threads 20-43% faster), so that one when offered. */
#define DW_PREFER "jit_dw"

/* The weights a float32 primitive reads: w itself, or float16 w (h)
 * widened into *wf (the caller frees it); NULL when memory runs out. */
static const void *weights_f32(bool h, const void *w, size_t n, float **wf) {
  *wf = NULL;
  if (!h)
    return w;
  if ((*wf = malloc((n ? n : 1) * sizeof **wf)))
    tc_vf16_to_f32(*wf, w, n);
  return *wf;
}

/* The weights' element count of c. */
static size_t weight_count(const tc_conv_spec *c) {
  return (size_t)(c->M * (c->C / c->group) * ksize(c));
}

/* The primitive of cd: the first implementation oneDNN offers whose name
 * contains prefer (NULL: oneDNN's own first choice), else its first. */
static bool pick_pd(dnnl_primitive_desc_t *pd, const dnnl_convolution_desc_t *cd,
                    dnnl_primitive_attr_t attr, const char *prefer) {
  if (!prefer)
    return dnnl_primitive_desc_create(pd, cd, attr, engine, NULL) == dnnl_success;
  dnnl_primitive_desc_iterator_t it;
  if (dnnl_primitive_desc_iterator_create(&it, cd, attr, engine, NULL) != dnnl_success)
    return false;
  dnnl_primitive_desc_t first = NULL, pick = NULL;
  do {
    dnnl_primitive_desc_t p = dnnl_primitive_desc_iterator_fetch(it);
    const char *impl = NULL;
    if (!p)
      break;
    if (dnnl_primitive_desc_query(p, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
        strstr(impl, prefer))
      pick = p;
    else if (!first)
      first = p;
    else
      dnnl_primitive_desc_destroy(p);
  } while (!pick && dnnl_primitive_desc_iterator_next(it) == dnnl_success);
  dnnl_primitive_desc_iterator_destroy(it);
  if (pick && first)
    dnnl_primitive_desc_destroy(first);
  *pd = pick ? pick : first;
  return *pd != NULL;
}

/* Builds the entry for key (declined when oneDNN refuses the case); w is
 * reordered into the entry when the key names a weights payload. NULL when
 * memory runs out. */
static centry *mm_build(centry *e, const void *w);

/* Whether blocked layout b (one block of all the channels, 16 for
 * nChw16c) puts every element of a 4-D tensor of dims where channels-last
 * puts it: then a primitive's nChw16c output is a channels-last tensor. */
static bool blocked_is_nhwc(const dnnl_memory_desc_t *b, const dnnl_dim_t *dims) {
  const dnnl_blocking_desc_t *k = &b->format_desc.blocking;
  if (b->ndims != 4 || b->format_kind != dnnl_blocked || b->offset0 != 0 || k->inner_nblks != 1 ||
      k->inner_idxs[0] != 1 || k->inner_blks[0] != dims[1])
    return false;
  for (int d = 0; d < 4; d++)
    if (b->padded_dims[d] != dims[d] || b->padded_offsets[d] != 0)
      return false;
  return k->strides[3] == dims[1] && k->strides[2] == dims[3] * dims[1] &&
         (dims[0] == 1 || k->strides[0] == dims[1] * dims[2] * dims[3]);
}

/* The first convolution of an image model: float32 x plain with few
 * channels (RGB), 16 output channels wanted channels-last. oneDNN's jit
 * kernel reads such an x as it is and writes nChw16c, which for 16
 * channels is channels-last byte for byte (blocked_is_nhwc): neither x nor
 * y is reordered. MobileNetV3-Large's 3 -> 16 stem (224x224, stride 2,
 * 1 thread): the reorder of x to channels-last and the brgconv kernel took
 * 0.21-0.27 ms per run in the model, this 0.16. A reference implementation
 * is never taken (oneDNN's ref:any ran this shape in 136 ms); the usual
 * path is then tried. */
static bool stem16_pd(const tc_conv_spec *c, const ckey *key, const dnnl_memory_desc_t *x_user,
                      const dnnl_memory_desc_t *wa, const dnnl_memory_desc_t *bmd,
                      const dnnl_dim_t *yd, const dnnl_dim_t *st, const dnnl_dim_t *dil,
                      const dnnl_dim_t *pl, const dnnl_dim_t *pr, dnnl_primitive_desc_t *pd) {
  if (key->xdt || key->sum || c->transposed || c->nsp != 2 || c->group != 1 || c->C >= 16 ||
      c->M != 16 || (c->layout & TC_CONV_X_NHWC) || !(c->layout & TC_CONV_Y_NHWC))
    return false;
  dnnl_memory_desc_t ya;
  dnnl_convolution_desc_t cd;
  dnnl_primitive_attr_t attr;
  if (dnnl_memory_desc_init_by_tag(&ya, 4, yd, dnnl_f32, dnnl_aBcd16b) != dnnl_success ||
      dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                 dnnl_convolution_direct, x_user, wa, bmd, &ya, st,
                                                 dil, pl, pr) != dnnl_success ||
      !user_scratchpad(&attr))
    return false;
  bool ok = post_ops(c, false, 0, attr) &&
            dnnl_primitive_desc_create(pd, &cd, attr, engine, NULL) == dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  const char *impl = NULL;
  if (ok && (dnnl_primitive_desc_query(*pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
             !impl || strncmp(impl, "ref", 3) == 0 ||
             !blocked_is_nhwc(dnnl_primitive_desc_query_md(*pd, dnnl_query_dst_md, 0), yd))) {
    dnnl_primitive_desc_destroy(*pd);
    ok = false;
  }
  return ok;
}

static centry *entry_build(const ckey *key, const void *w, const float *scales) {
  centry *e = calloc(1, sizeof *e);
  if (!e)
    return NULL;
  if (key->mm) {
    e->key = *key;
    return mm_build(e, w);
  }
  if (key_q8(key)) {
    if (!(e->scales = malloc((size_t)key->spec.M * sizeof *scales))) {
      free(e);
      return NULL;
    }
    memcpy(e->scales, scales, (size_t)key->spec.M * sizeof *scales);
  }
  e->key = *key;
  e->declined = true;
  const tc_conv_spec *c = &key->spec;
  int nd = 2 + (int)c->nsp;
  dnnl_dims_t xd, yd, bd = {c->M}, st, dil, pl, pr;
  geometry(c, xd, yd, st, dil, pl, pr);
  bool plain = !key->xdt && plain_layout(c);
  dnnl_data_type_t xt = x_type(key), wt = key_q8(key) ? dnnl_s8 : xt,
                   yt = key->ydt == TC_DTYPE_U8   ? dnnl_u8
                        : key->ydt == TC_DTYPE_I8 ? dnnl_s8
                        : key_bf16(key)           ? dnnl_bf16
                                                  : dnnl_f32;
  dnnl_memory_desc_t xa, ya, wa;
  dnnl_dims_t one = {1};
  if (!md_user(&e->x_user, nd, xd, xt, c->layout & TC_CONV_X_NHWC) ||
      !md_user(&e->y_user, nd, yd, yt, c->layout & TC_CONV_Y_NHWC) ||
      !md_weights(c, plain, wt, &e->w_user, &wa) || !md_dense(&e->b_md, 1, bd) ||
      !md_dense_dt(&e->zp_md, 1, one, dnnl_s32))
    return e;
  if (plain)
    xa = e->x_user, ya = e->y_user;
  else if (!md_any_dt(&xa, nd, xd, xt) || !md_any_dt(&ya, nd, yd, yt))
    return e;
  dnnl_primitive_desc_t pd = NULL;
  bool add = plain && (key->sum || c->act != TC_CONV_ACT_NONE), ok = false;
  bool depthwise =
      !c->transposed && !key_q8(key) && c->group > 1 && c->group == c->C && c->group == c->M;
  bool stem =
      !plain && c->algo != TC_CONV_ALGO_WINOGRAD &&
      stem16_pd(c, key, &e->x_user, &wa, key->bias ? &e->b_md : NULL, yd, st, dil, pl, pr, &pd);
  ok = stem;
  /* Winograd when asked for, else (or when oneDNN has none here) direct */
  for (int wino = c->algo == TC_CONV_ALGO_WINOGRAD && !plain; wino >= 0 && !ok; wino--) {
    dnnl_convolution_desc_t cd;
    const dnnl_memory_desc_t *bmd = key->bias ? &e->b_md : NULL;
    dnnl_alg_kind_t alg = wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    dnnl_status_t s =
        c->transposed ? dnnl_dilated_deconvolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                                     dnnl_deconvolution_direct, &xa,
                                                                     &wa, bmd, &ya, st, dil, pl, pr)
                      : dnnl_dilated_convolution_forward_desc_init(
                            &cd, dnnl_forward_inference, alg, &xa, &wa, bmd, &ya, st, dil, pl, pr);
    dnnl_primitive_attr_t attr;
    if (s != dnnl_success || !user_scratchpad(&attr))
      continue;
    ok = (add || post_ops(c, key->sum, (float)key->yzp, attr)) && quant_attr(key, scales, attr) &&
         pick_pd(&pd, &cd, attr,
                 wino        ? (c->out[0] * c->out[1] >= WINO_4X3_MIN_OUT ? "wino_4x3" : NULL)
                 : depthwise ? DW_PREFER
                             : NULL);
    dnnl_primitive_attr_destroy(attr);
    e->winograd = ok && wino;
  }
  if (!ok)
    return e;
  e->x_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0);
  e->y_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0);
  e->w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  if (!prim_from(&e->conv, pd) || !reorder_make(&e->x_in, &e->x_user, &e->x_md) ||
      (!stem && !reorder_make(&e->y_out, &e->y_md, &e->y_user)) ||
      (key->sum && !reorder_make(&e->z_in, &e->y_user, &e->y_md)) ||
      !reorder_make(&e->w_in, &e->w_user, &e->w_md))
    return e;
  e->x_bytes = e->x_in.p ? round_up(dnnl_memory_desc_get_size(&e->x_md)) : 0;
  e->y_bytes = e->y_out.p ? round_up(dnnl_memory_desc_get_size(&e->y_md)) : 0;
  e->w_bytes = e->w_in.p ? round_up(dnnl_memory_desc_get_size(&e->w_md)) : 0;
  e->y_plain = dnnl_memory_desc_get_size(&e->y_user);
  dnnl_dims_t ones = {1, 1, 1, 1, 1};
  if (add && (!md_dense(&e->one_md, nd, ones) ||
              !add_make(&e->add, c, &e->y_user, key->sum ? &e->y_user : &e->one_md)))
    return e;
  const prim *ps[] = {&e->conv, &e->x_in, &e->y_out, &e->z_in, &e->w_in, &e->add};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
    if (ps[i]->scratch > e->scratch)
      e->scratch = ps[i]->scratch;
  e->scratch = round_up(e->scratch);
  /* float16 weights (tc_dnnl_hconv_run): widened once, then reordered or
   * kept as they are, always in the entry */
  bool h = key->xdt == TC_DTYPE_F16;
  if (key->wbuf && (e->w_in.p || h)) {
    size_t nw = weight_count(c);
    float *wf;
    if (!(w = weights_f32(h, w, nw, &wf))) {
      entry_free(e);
      return NULL;
    }
    if (!e->w_in.p)
      e->w_bytes = round_up(dnnl_memory_desc_get_size(&e->w_md));
    wspace *ws = ws_get(e->scratch);
    bool ok = ws && (e->wdata = aligned_alloc(ALIGN, e->w_bytes));
    if (ok && !e->w_in.p)
      memcpy(e->wdata, w, nw * sizeof(float));
    else if (ok)
      ok = reorder_run(&e->w_in, ws, &e->w_user, w, &e->w_md, e->wdata) &&
           dnnl_stream_wait(ws->stream) == dnnl_success;
    free(wf);
    if (!ok) {
      entry_free(e); /* out of memory: not remembered as a refusal */
      return NULL;
    }
  }
  e->declined = false;
  return e;
}

/* The matmul entry of e->key: x [M, K] and y [M, N] as the runtime holds
 * them (int8: uint8 x, int32 y; bfloat16: both bfloat16; else float32),
 * the weights [K, N] reordered into the layout oneDNN picks (always cached:
 * the key names their payload), int8 ones' column sums kept. Declined when
 * oneDNN refuses; NULL when memory runs out. */
static centry *mm_build(centry *e, const void *w) {
  const tc_conv_spec *c = &e->key.spec;
  e->declined = true;
  dnnl_dims_t xd = {c->N, c->C}, wd = {c->C, c->M}, yd = {c->N, c->M}, wtr = {1, c->C};
  dnnl_memory_desc_t wa;
  dnnl_matmul_desc_t md;
  dnnl_primitive_attr_t attr;
  dnnl_primitive_desc_t pd = NULL;
  bool bf = key_bf16(&e->key), q = key_q8(&e->key), h = e->key.xdt == TC_DTYPE_F16;
  dnnl_data_type_t xt = q    ? dnnl_u8
                        : bf ? dnnl_bf16
                             : dnnl_f32,
                   wt = q    ? dnnl_s8
                        : bf ? dnnl_bf16
                             : dnnl_f32,
                   yt = q                    ? dnnl_s32
                        : bf && !e->key.yf32 ? dnnl_bf16
                                             : dnnl_f32;
  bool w_ok = e->key.tb
                  ? dnnl_memory_desc_init_by_strides(&e->w_user, 2, wd, wt, wtr) == dnnl_success
                  : md_dense_dt(&e->w_user, 2, wd, wt);
  if (!md_dense_dt(&e->x_md, 2, xd, xt) || !w_ok || !md_any_dt(&wa, 2, wd, wt) ||
      !md_dense_dt(&e->y_md, 2, yd, yt) ||
      dnnl_matmul_desc_init(&md, &e->x_md, &wa, NULL, &e->y_md) != dnnl_success ||
      !user_scratchpad(&attr))
    return e;
  bool ok = dnnl_primitive_desc_create(&pd, &md, attr, engine, NULL) == dnnl_success;
  dnnl_primitive_attr_destroy(attr);
  if (!ok)
    return e;
  e->w_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  if (!prim_from(&e->conv, pd) || !reorder_make(&e->w_in, &e->w_user, &e->w_md))
    return e;
  e->x_user = e->x_md;
  e->y_user = e->y_md;
  e->scratch = round_up(e->conv.scratch > e->w_in.scratch ? e->conv.scratch : e->w_in.scratch);
  e->w_bytes = round_up(dnnl_memory_desc_get_size(&e->w_md));
  size_t K = (size_t)c->C, N = (size_t)c->M;
  wspace *ws = ws_get(e->scratch);
  if (!ws || (q && !(e->colsum = calloc(N, sizeof *e->colsum))) ||
      !(e->wdata = aligned_alloc(ALIGN, e->w_bytes))) {
    entry_free(e);
    return NULL;
  }
  float *wf; /* float16 weights, widened */
  if (!(w = weights_f32(h, w, K * N, &wf))) {
    entry_free(e);
    return NULL;
  }
  if (!e->w_in.p) { /* oneDNN keeps the plain layout */
    memcpy(e->wdata, w, K * N * (q ? 1 : bf ? 2 : sizeof(float)));
  } else if (!reorder_run(&e->w_in, ws, &e->w_user, w, &e->w_md, e->wdata) ||
             dnnl_stream_wait(ws->stream) != dnnl_success) {
    free(wf);
    entry_free(e);
    return NULL;
  }
  free(wf);
  for (size_t kk = 0; q && kk < K; kk++)
    for (size_t j = 0; j < N; j++)
      e->colsum[j] += ((const int8_t *)w)[e->key.tb ? j * K + kk : kk * N + j];
  e->declined = false;
  return e;
}

/* Runs e: y = act(conv(x, w) + b + z), quantized: y = act(scale[m] *
 * conv(x - zp, w) + b + z) (b already divided by scale, see tc_dnnl_qconv_run). */
static bool entry_run(const centry *e, const void *x, const void *w, const float *b,
                      const int32_t *zp, const float *z, void *y) {
  bool w_tmp = e->w_in.p && !e->wdata && !e->key.mm;
  wspace *ws = ws_get(e->scratch + e->x_bytes + e->y_bytes + (w_tmp ? e->w_bytes : 0));
  if (!ws)
    return false;
  char *p = (char *)ws->buf + e->scratch;
  void *xb = p, *yb = p + e->x_bytes, *wb = p + e->x_bytes + e->y_bytes;
  const void *xs = e->x_in.p ? xb : x, *wsrc = e->wdata ? e->wdata : w_tmp ? wb : w;
  void *yd = e->y_out.p ? yb : y;
  bool ok = true;
  last_reorders = (e->x_in.p ? TC_DNNL_REORDERS_X : 0u) | (e->y_out.p ? TC_DNNL_REORDERS_Y : 0u);
  last_winograd = e->winograd;
  if (e->x_in.p)
    ok = reorder_run(&e->x_in, ws, &e->x_user, x, &e->x_md, xb);
  if (ok && w_tmp)
    ok = reorder_run(&e->w_in, ws, &e->w_user, w, &e->w_md, wb);
  if (ok && z && e->z_in.p)
    ok = reorder_run(&e->z_in, ws, &e->y_user, z, &e->y_md, yb);
  else if (ok && z && z != y && !e->add.p)
    memcpy(y, z, e->y_plain);
  if (ok && z == y && e->add.p) { /* y in z's memory: the add below needs z kept */
    void *keep = ws_extra(&ws->zsave, &ws->zsave_cap, e->y_plain);
    if (!(ok = keep != NULL))
      return false; /* nothing written yet */
    z = memcpy(keep, z, e->y_plain);
  }
  dnnl_memory_t mx = NULL, mw = NULL, mb = NULL, my = NULL, mzp = NULL;
  ok = ok && mem(&mx, &e->x_md, xs) && mem(&mw, &e->w_md, wsrc) && (!b || mem(&mb, &e->b_md, b)) &&
       mem(&my, &e->y_md, yd) && (!zp || mem(&mzp, &e->zp_md, zp));
  dnnl_exec_arg_t args[8] = {{DNNL_ARG_SRC, mx}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, my}};
  int n = 3;
  if (b)
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, mb};
  if (zp)
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, mzp};
  ok = ok && exec(&e->conv, ws, args, n);
  dnnl_memory_t ms[] = {mx, mw, mb, my, mzp};
  for (size_t i = 0; i < sizeof ms / sizeof *ms; i++)
    if (ms[i])
      dnnl_memory_destroy(ms[i]);
  if (ok && e->y_out.p)
    ok = reorder_run(&e->y_out, ws, &e->y_md, yb, &e->y_user, y);
  if (ok && e->add.p) {
    dnnl_memory_t my2 = NULL, mz = NULL;
    static const float zero[1];
    ok = mem(&my2, &e->y_user, y) && (z ? mem(&mz, &e->y_user, z) : mem(&mz, &e->one_md, zero));
    dnnl_exec_arg_t a2[4] = {{DNNL_ARG_SRC_0, my2}, {DNNL_ARG_SRC_1, mz}, {DNNL_ARG_DST, my2}};
    ok = ok && exec(&e->add, ws, a2, 3);
    if (my2)
      dnnl_memory_destroy(my2);
    if (mz)
      dnnl_memory_destroy(mz);
  }
  ok = dnnl_stream_wait(ws->stream) == dnnl_success && ok;
  failed_running = !ok;
  return ok;
}

/* ---- the cache (every function here runs under lock) ---- */

static void unlink_entry(centry *e) {
  if (e->prev)
    e->prev->next = e->next;
  else
    head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    tail = e->prev;
  e->prev = e->next = NULL;
  n_entries--;
  weight_bytes -= e->wdata ? e->w_bytes : 0;
}

static void push_front(centry *e) {
  e->prev = NULL;
  e->next = head;
  if (head)
    head->prev = e;
  head = e;
  if (!tail)
    tail = e;
  n_entries++;
  weight_bytes += e->wdata ? e->w_bytes : 0;
}

/* Drops unused entries from the tail while over the limits (all when force). */
static void evict(bool force) {
  for (centry *e = tail, *prev; e; e = prev) {
    prev = e->prev;
    if (!force && n_entries <= MAX_ENTRIES && weight_bytes <= MAX_WEIGHT_BYTES)
      return;
    if (e->refs == 0) {
      unlink_entry(e);
      entry_free(e);
    }
  }
}

/* The entry for key (quantized: made with these scales), or NULL. */
static centry *cache_find(const ckey *key, const float *scales) {
  for (centry *e = head; e; e = e->next)
    if (e->key.hash == key->hash && memcmp(&e->key, key, sizeof *key) == 0 &&
        (!key_q8(key) || key->mm ||
         memcmp(e->scales, scales, (size_t)key->spec.M * sizeof *scales) == 0)) {
      unlink_entry(e);
      push_front(e);
      e->refs++;
      return e;
    }
  return NULL;
}

/* Drops the entries and registered weights of an owner being freed. */
static void owner_freed(void *arg) {
  pthread_mutex_lock(&lock);
  for (centry *e = head, *next; e; e = next) {
    next = e->next;
    if (e->key.owner == arg && e->refs == 0) {
      unlink_entry(e);
      entry_free(e);
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < n_registered; i++)
    if (registered[i].owner == arg)
      tc_buffer_unref(registered[i].buf);
    else
      registered[kept++] = registered[i];
  n_registered = kept;
  for (hooked **h = &hooked_owners; *h; h = &(*h)->next)
    if ((*h)->owner == arg) {
      hooked *dead = *h;
      *h = dead->next;
      free(dead);
      break;
    }
  pthread_mutex_unlock(&lock);
}

/* Makes sure owner_freed(owner) runs when arena a is freed (false when
 * memory runs out: then cache entries stay correct, only kept until
 * evicted). */
static bool hook_owner(tc_arena *a, const void *owner) {
  for (hooked *h = hooked_owners; h; h = h->next)
    if (h->owner == owner)
      return true;
  hooked *h = malloc(sizeof *h);
  if (!h)
    return false;
  if (tc_arena_on_free(a, owner_freed, (void *)owner) != 0) {
    free(h);
    return false;
  }
  *h = (hooked){owner, hooked_owners};
  hooked_owners = h;
  return true;
}

bool tc_dnnl_weights_register(tc_arena *owner, tc_buffer *buf) {
  pthread_mutex_lock(&lock);
  bool ok = hook_owner(owner, owner);
  if (ok && n_registered == cap_registered) {
    size_t cap = cap_registered ? 2 * cap_registered : 16;
    regw *r = realloc(registered, cap * sizeof *r);
    if ((ok = r != NULL))
      registered = r, cap_registered = cap;
  }
  if (ok)
    registered[n_registered++] = (regw){tc_buffer_data(buf), tc_buffer_size(buf), buf, owner};
  pthread_mutex_unlock(&lock);
  return ok;
}

/* Adds a built entry; when another thread added the same key first, that
 * one is used and e freed. */
static centry *cache_add(centry *e) {
  centry *old = cache_find(&e->key, e->scales);
  if (old) {
    entry_free(e);
    return old;
  }
  if (e->key.owner)
    hook_owner(e->key.owner_arena, e->key.owner);
  if (e->wdata)
    e->wref = tc_buffer_ref((tc_buffer *)e->key.wbuf);
  e->refs = 1;
  push_front(e);
  evict(false);
  return e;
}

void tc_dnnl_conv_cache_clear(void) {
  pthread_mutex_lock(&lock);
  evict(true);
  pthread_mutex_unlock(&lock);
}

void tc_dnnl_conv_cache_stats(size_t *entries, size_t *wbytes) {
  pthread_mutex_lock(&lock);
  *entries = 0;
  for (const centry *e = head; e; e = e->next)
    *entries += !e->declined;
  *wbytes = weight_bytes;
  pthread_mutex_unlock(&lock);
}

/* ---- keys ---- */

static bool spec_ok(const tc_conv_spec *c) {
  if (c->nsp < 1 || c->nsp > 3 || c->N <= 0 || c->C <= 0 || c->M <= 0 || c->group <= 0 ||
      c->C % c->group || c->M % c->group)
    return false;
  for (size_t i = 0; i < 3; i++) {
    if (c->in[i] <= 0 || c->k[i] <= 0 || c->out[i] <= 0 || c->s[i] <= 0 || c->d[i] <= 0 ||
        c->pb[i] < 0 || (!c->transposed && c->pe[i] < 0))
      return false;
    if (i >= c->nsp && (c->in[i] != 1 || c->k[i] != 1 || c->out[i] != 1))
      return false;
  }
  return !c->layout || (c->nsp == 2 && !c->transposed);
}

/* A shape oneDNN's Winograd convolution takes: 2-D, 3x3, stride 1, no
 * dilation, one group, forward. */
static bool winograd_shape(const tc_conv_spec *c) {
  return !c->transposed && c->nsp == 2 && c->group == 1 && c->k[0] == 3 && c->k[1] == 3 &&
         c->s[0] == 1 && c->s[1] == 1 && c->d[0] == 1 && c->d[1] == 1;
}

/* A shape the plain layout's GEMM-based convolution takes: ungrouped,
 * forward, on plain x and y. */
static bool gemm_shape(const tc_conv_spec *c) {
  return !c->layout && !c->transposed && c->group == 1;
}

/* Output positions from which 24 to 31 output channels take Winograd. */
#define WINO_M24_MIN_OUT 1600

tc_conv_algo tc_conv_algo_default(const tc_conv_spec *c) {
  if (winograd_shape(c) && c->C >= 32 &&
      (c->M >= 32 || (c->M >= 24 && c->out[0] * c->out[1] >= WINO_M24_MIN_OUT)))
    return TC_CONV_ALGO_WINOGRAD;
  if (gemm_shape(c) &&
      (c->nsp == 1 || (ksize(c) == 1 && c->out[0] * c->out[1] * c->out[2] >= PLAIN_MIN_OUT)))
    return TC_CONV_ALGO_GEMM;
  return TC_CONV_ALGO_DIRECT;
}

/* A shape SUBSAMPLE takes: 2-D 1x1, forward, strided, unpadded. */
static bool subsample_shape(const tc_conv_spec *c) {
  return !c->transposed && c->nsp == 2 && c->k[0] == 1 && c->k[1] == 1 &&
         (c->s[0] > 1 || c->s[1] > 1) && !c->pb[0] && !c->pb[1] && !c->pe[0] && !c->pe[1];
}

tc_conv_algo tc_conv_algo_alternative(const tc_conv_spec *c) {
  if (tc_dnnl_conv_has_winograd(c))
    return TC_CONV_ALGO_WINOGRAD;
  if (subsample_shape(c) && spec_ok(c))
    return TC_CONV_ALGO_SUBSAMPLE;
  return gemm_shape(c) && c->nsp == 1 && spec_ok(c) ? TC_CONV_ALGO_GEMM : TC_CONV_ALGO_AUTO;
}

/* The algorithm c runs: what it asks for where its shape allows it, the
 * default rule for AUTO, direct otherwise. */
static tc_conv_algo algo_of(const tc_conv_spec *c) {
  switch (c->algo) {
  case TC_CONV_ALGO_AUTO: return tc_conv_algo_default(c);
  case TC_CONV_ALGO_WINOGRAD: return winograd_shape(c) ? c->algo : TC_CONV_ALGO_DIRECT;
  case TC_CONV_ALGO_GEMM: return gemm_shape(c) ? c->algo : TC_CONV_ALGO_DIRECT;
  case TC_CONV_ALGO_SUBSAMPLE: return subsample_shape(c) ? c->algo : TC_CONV_ALGO_DIRECT;
  default: return TC_CONV_ALGO_DIRECT;
  }
}

/* Fields copied one by one into a zeroed key, so padding compares equal. */
static void key_make(const tc_conv_spec *c, bool bias, bool sum, ckey *key) {
  memset(key, 0, sizeof *key);
  tc_conv_spec *k = &key->spec;
  k->transposed = c->transposed;
  k->nsp = c->nsp;
  k->N = c->N, k->C = c->C, k->M = c->M, k->group = c->group;
  for (size_t i = 0; i < c->nsp; i++) {
    k->in[i] = c->in[i], k->k[i] = c->k[i], k->out[i] = c->out[i];
    k->s[i] = c->s[i], k->d[i] = c->d[i], k->pb[i] = c->pb[i];
    k->pe[i] = c->transposed ? 0 : c->pe[i];
  }
  for (size_t i = c->nsp; i < 3; i++)
    k->in[i] = k->k[i] = k->out[i] = k->s[i] = k->d[i] = 1;
  k->act = c->act;
  k->layout = c->layout;
  bool params = c->act == TC_CONV_ACT_LEAKY_RELU || c->act == TC_CONV_ACT_CLIP ||
                c->act == TC_CONV_ACT_HARD_SIGMOID;
  k->alpha = params ? c->alpha : 0;
  k->beta = params && c->act != TC_CONV_ACT_LEAKY_RELU ? c->beta : 0;
  k->algo = algo_of(c);
  key->bias = bias;
  key->sum = sum;
  key->threads = omp_get_max_threads();
}

/* Names in key the weights registered by a session whose payload w is,
 * n elements of es bytes. */
static void key_registered(const void *w, size_t n, size_t es, ckey *key) {
  pthread_mutex_lock(&lock);
  for (size_t i = 0; i < n_registered; i++)
    if (registered[i].data == w && registered[i].bytes == n * es) {
      key->owner = key->owner_arena = registered[i].owner;
      key->wbuf = registered[i].buf;
      key->wlen = registered[i].bytes;
      break;
    }
  pthread_mutex_unlock(&lock);
}

/* Names the weights' payload in key when w_value is an initializer whose
 * payload holds exactly the bytes of w (sampled), or w is the payload of
 * weights a session registered (tc_dnnl_weights_register). */
static void key_weights(const tc_value *v, const void *w, int32_t dt, size_t n, ckey *key) {
  size_t es = dt == TC_DTYPE_F32 ? sizeof(float) : tc_dtype_is_half(dt) ? 2 : 1;
  if (!v || !v->init) {
    if (w)
      key_registered(w, n, es, key);
    return;
  }
  if (tc_value_is_input(v) || v->init->dtype != dt || !v->graph || !v->graph->model)
    return;
  const tc_tensor *t = v->init;
  if (t->field != TC_FIELD_RAW && t->field != TC_FIELD_EXTERNAL &&
      !(dt == TC_DTYPE_F32 && t->field == TC_FIELD_FLOAT))
    return;
  tc_span sp = t->data[t->field];
  const unsigned char *p = tc_span_data(sp);
  if (!p || sp.len != n * es)
    return;
  for (size_t i = 0; i < 17 && i < n; i++) {
    size_t j = n <= 17 ? i : i * (n - 1) / 16;
    if (memcmp(p + j * es, (const unsigned char *)w + j * es, es) != 0)
      return;
  }
  key->owner = v->graph->model;
  key->owner_arena = v->graph->model->arena;
  key->wbuf = sp.buf;
  key->woff = sp.off;
  key->wlen = sp.len;
}

static uint64_t key_hash(const ckey *key) {
  const unsigned char *p = (const unsigned char *)key + sizeof key->hash;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = sizeof key->hash; i < sizeof *key; i++, p++)
    h = (h ^ *p) * 1099511628211ull;
  return h;
}

/* Finds or builds the entry for key and runs it; colsum (matmul entries,
 * may be NULL) gets the weights' column sums while the entry is held. */
static bool cached_run(ckey *key, const void *x, const void *w, const float *b, const float *scale,
                       const int32_t *zp, const float *z, void *y, int32_t *colsum) {
  failed_running = false;
  key->hash = key_hash(key);
  pthread_mutex_lock(&lock);
  centry *e = cache_find(key, scale);
  pthread_mutex_unlock(&lock);
  if (!e) {
    if (!(e = entry_build(key, w, scale)))
      return false;
    pthread_mutex_lock(&lock);
    e = cache_add(e);
    pthread_mutex_unlock(&lock);
  }
  bool ok = !e->declined && entry_run(e, x, w, b, zp, z, y);
  if (ok && colsum)
    memcpy(colsum, e->colsum, (size_t)key->spec.M * sizeof *colsum);
  pthread_mutex_lock(&lock);
  e->refs--;
  evict(false);
  pthread_mutex_unlock(&lock);
  return ok;
}

bool tc_dnnl_conv_has_winograd(const tc_conv_spec *c) {
  pthread_once(&once, init_once);
  if (!engine || !spec_ok(c) || !winograd_shape(c))
    return false;
  dnnl_dims_t xd, yd, st, dil, pl, pr;
  geometry(c, xd, yd, st, dil, pl, pr);
  dnnl_memory_desc_t xa, ya, wu, wa;
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  bool ok = md_any_dt(&xa, 4, xd, dnnl_f32) && md_any(&ya, 4, yd) &&
            md_weights(c, false, dnnl_f32, &wu, &wa) &&
            dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference,
                                                       dnnl_convolution_winograd, &xa, &wa, NULL,
                                                       &ya, st, dil, pl, pr) == dnnl_success &&
            dnnl_primitive_desc_create(&pd, &cd, NULL, engine, NULL) == dnnl_success;
  if (pd)
    dnnl_primitive_desc_destroy(pd);
  return ok;
}

/* SUBSAMPLE: the positions c's strides read, copied from x (es-byte
 * elements, x's layout) into this thread's workspace; *c2 becomes the
 * stride-1 convolution on them (AUTO's algorithm). NULL when memory runs
 * out. */
static const void *subsampled(const tc_conv_spec *c, const void *x, size_t es, tc_conv_spec *c2) {
  size_t N = (size_t)c->N, C = (size_t)c->C, H = (size_t)c->in[0], W = (size_t)c->in[1];
  size_t OH = (size_t)c->out[0], OW = (size_t)c->out[1], s0 = (size_t)c->s[0], s1 = (size_t)c->s[1],
         need = N * C * OH * OW * es;
  wspace *ws = ws_get(0);
  unsigned char *d = ws ? ws_extra(&ws->sub, &ws->sub_cap, need) : NULL;
  if (!d)
    return NULL;
  const unsigned char *src = x;
  bool nhwc = c->layout & TC_CONV_X_NHWC;
  for (size_t n = 0; n < N; n++)
    for (size_t i = 0; i < OH; i++)
      if (nhwc) { /* one channel vector per position */
        for (size_t j = 0; j < OW; j++)
          memcpy(d + ((n * OH + i) * OW + j) * C * es,
                 src + ((n * H + i * s0) * W + j * s1) * C * es, C * es);
      } else {
        for (size_t ch = 0; ch < C; ch++)
          for (size_t j = 0; j < OW; j++)
            memcpy(d + (((n * C + ch) * OH + i) * OW + j) * es,
                   src + (((n * C + ch) * H + i * s0) * W + j * s1) * es, es);
      }
  *c2 = *c;
  c2->in[0] = c->out[0], c2->in[1] = c->out[1], c2->s[0] = 1, c2->s[1] = 1;
  c2->algo = TC_CONV_ALGO_AUTO;
  return d;
}

/* What every float (de)convolution entry point does first: the engine, a
 * spec oneDNN can take, SUBSAMPLE's copy of x (es-byte elements; *c then
 * points at c2, *x at the copy) and the key. False: the caller declines
 * (nothing ran, which tc_dnnl_conv_failed_running then says). */
static bool conv_begin(const tc_conv_spec **c, const void **x, size_t es, tc_conv_spec *c2,
                       bool bias, bool sum, ckey *key) {
  failed_running = false;
  pthread_once(&once, init_once);
  if (!engine || !ws_key_ok || !spec_ok(*c))
    return false;
  if (algo_of(*c) == TC_CONV_ALGO_SUBSAMPLE) {
    if (!(*x = subsampled(*c, *x, es, c2)))
      return false;
    *c = c2;
  }
  key_make(*c, bias, sum, key);
  return true;
}

bool tc_dnnl_conv_run(const tc_conv_spec *c, const tc_value *w_value, const float *x,
                      const float *w, const float *b, const float *z, float *y) {
  tc_conv_spec c2;
  ckey key;
  const void *xv = x;
  if (!conv_begin(&c, &xv, sizeof *x, &c2, b != NULL, z != NULL, &key))
    return false;
  if (!plain_layout(c))
    key_weights(w_value, w, TC_DTYPE_F32, weight_count(c), &key);
  /* Winograd transforms uncached weights on every call (a 320 x 192 3x3
   * kernel: 8-14 ms here, against about 1 ms for the convolution): the
   * default rule takes it only for weights the entry keeps */
  if (!key.wbuf && c->algo == TC_CONV_ALGO_AUTO && key.spec.algo == TC_CONV_ALGO_WINOGRAD)
    key.spec.algo = TC_CONV_ALGO_DIRECT;
  return cached_run(&key, xv, w, b, NULL, NULL, z, y, NULL);
}

bool tc_dnnl_hconv_run(const tc_conv_spec *c, const tc_value *w_value, const float *x,
                       const uint16_t *w, const float *b, const float *z, float *y) {
  tc_conv_spec c2;
  ckey key;
  const void *xv = x;
  if (!conv_begin(&c, &xv, sizeof *x, &c2, b != NULL, z != NULL, &key))
    return false;
  key.xdt = TC_DTYPE_F16;
  key_weights(w_value, w, TC_DTYPE_F16, weight_count(c), &key);
  /* the entry holds the widened weights: only for initializers */
  return key.wbuf && cached_run(&key, xv, w, b, NULL, NULL, z, y, NULL);
}

bool tc_dnnl_bconv_run(const tc_conv_spec *c, const tc_value *w_value, const void *x, const void *w,
                       const float *b, const void *z, void *y) {
  tc_conv_spec c2;
  ckey key;
  if (c->transposed || !conv_begin(&c, &x, 2, &c2, b != NULL, z != NULL, &key))
    return false;
  key.spec.algo = TC_CONV_ALGO_DIRECT; /* Winograd and the GEMM-based kernel are float32 here */
  key.xdt = TC_DTYPE_BF16;
  key_weights(w_value, w, TC_DTYPE_BF16, weight_count(c), &key);
  return cached_run(&key, x, w, b, NULL, NULL, z, y, NULL);
}

bool tc_dnnl_qconv_run(const tc_conv_spec *c, const tc_value *w_value, int32_t xdt, const void *x,
                       int32_t xzp, const int8_t *w, const float *scale, const float *b,
                       const float *z, int32_t ydt, int32_t yzp, void *y) {
  pthread_once(&once, init_once);
  bool yq = ydt == TC_DTYPE_U8 || ydt == TC_DTYPE_I8;
  if (!engine || !ws_key_ok || !spec_ok(c) || c->transposed ||
      (xdt != TC_DTYPE_U8 && xdt != TC_DTYPE_I8) || (!yq && ydt != TC_DTYPE_F32) ||
      (yq && (z || (c->act != TC_CONV_ACT_NONE && c->act != TC_CONV_ACT_RELU))))
    return false; /* a quantized y: no sum, and only activations that commute with the scale */
  ckey key;
  key_make(c, b != NULL, z != NULL, &key);
  key.spec.algo = TC_CONV_ALGO_DIRECT; /* Winograd is float32 only here */
  key.xdt = xdt;
  key.zp = xzp != 0;
  key.ydt = yq ? ydt : 0;
  key.yzp = yq ? yzp : 0;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < (size_t)c->M * sizeof *scale; i++)
    h = (h ^ ((const unsigned char *)scale)[i]) * 1099511628211ull;
  key.qhash = h;
  key_weights(w_value, w, TC_DTYPE_I8, (size_t)(c->M * (c->C / c->group) * ksize(c)), &key);
  return cached_run(&key, x, w, b, scale, key.zp ? &xzp : NULL, z, y, NULL);
}

/* The matmul entry for a [M, K] (x type xdt: 0 float32, TC_DTYPE_U8,
 * TC_DTYPE_BF16) times the initializer b, run into c; colsum (int8 only)
 * gets b's column sums. */
static bool matmul_run(const tc_value *b_value, int32_t xdt, bool tb, bool yf32, size_t M, size_t K,
                       size_t N, const void *a, const void *b, void *c, int32_t *colsum) {
  pthread_once(&once, init_once);
  if (!engine || !ws_key_ok || !M || !K || !N || M > INT32_MAX || K > INT32_MAX || N > INT32_MAX)
    return false;
  ckey key;
  memset(&key, 0, sizeof key);
  key.mm = true;
  key.tb = tb;
  key.yf32 = yf32;
  key.xdt = xdt;
  key.spec.N = (int64_t)M, key.spec.C = (int64_t)K, key.spec.M = (int64_t)N;
  key.threads = omp_get_max_threads();
  key_weights(b_value, b,
              tc_dtype_is_half(xdt) ? xdt
              : xdt                 ? TC_DTYPE_I8
                                    : TC_DTYPE_F32,
              K * N, &key);
  if (!key.wbuf)
    return false; /* packing pays only when it is kept */
  return cached_run(&key, a, b, NULL, NULL, NULL, NULL, c, colsum);
}

bool tc_dnnl_qmatmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const uint8_t *a,
                         const int8_t *b, bool tb, int32_t *c, int32_t *colsum) {
  return matmul_run(b_value, TC_DTYPE_U8, tb, false, M, K, N, a, b, c, colsum);
}

bool tc_dnnl_matmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const float *a,
                        const float *b, float *c) {
  return matmul_run(b_value, 0, false, false, M, K, N, a, b, c, NULL);
}

bool tc_dnnl_bmatmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const uint16_t *a,
                         const uint16_t *b, uint16_t *c) {
  return matmul_run(b_value, TC_DTYPE_BF16, false, false, M, K, N, a, b, c, NULL);
}

bool tc_dnnl_gemm_half_run(const tc_value *b_value, int32_t dt, bool tb, size_t M, size_t K,
                           size_t N, const void *a, const uint16_t *b, float *c) {
  if (dt != TC_DTYPE_BF16 && dt != TC_DTYPE_F16)
    return false;
  return matmul_run(b_value, dt, tb, dt == TC_DTYPE_BF16, M, K, N, a, b, c, NULL);
}

bool tc_dnnl_hmatmul_run(const tc_value *b_value, size_t M, size_t K, size_t N, const float *a,
                         const uint16_t *b, float *c) {
  return matmul_run(b_value, TC_DTYPE_F16, false, false, M, K, N, a, b, c, NULL);
}
