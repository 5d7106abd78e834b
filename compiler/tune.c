/* The CPU autotuner (tune.h).
 *
 * 1. Run the model once in libtacort on generated inputs (--shape fixes
 *    symbolic dims) and capture the operands of every node a generated
 *    kernel can run (tc_cg_node_spec): these are the shapes and values the
 *    candidates are measured on.
 * 2. Group the nodes by signature (kind, activation, flags, row length, rows).
 *    Per signature the candidates are libtacort's own kernel and generated
 *    kernels at several vector widths and unroll factors (--tune fast: the
 *    native width and half of it, unroll 1 and 2; full: widths 4/8/16 and
 *    unroll 1/2/4). --tune off generates the native width, unroll 1, for
 *    every candidate without measuring (deterministic output).
 * 3. Measure: warm-up, then repetitions interleaved across candidates, each
 *    call timed on the monotonic clock; median and spread (interquartile
 *    range) per candidate. A generated kernel wins only when it beats the
 *    built-in kernel by more than the larger of the two spreads, and only
 *    when its output matches the built-in kernel's on the captured operands.
 *    Decisions go to the tuning cache (keyed by CPU and signature) and come
 *    from it when present.
 * 4. Build the winners into one library, record it in the model, then check
 *    the whole model: the generated kernels are kept only when the model's
 *    median latency with them is lower than without them. */
#include "tune.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cg.h"
#include "cli.h"
#include "exec.h"
#include "inputs.h"
#include "layout.h"
#include "meta.h"
#include "native.h"
#include "pass.h"
#include "shapes.h"

#define MAX_CANDS 16
#define MAX_IN TC_EW_MAX_IN

typedef struct cand {
  char name[24]; /* "builtin", "w16u2", or "w16u2t1" (one thread) */
  int width, unroll, threads;
  double med_us, spread_us;
  bool measured, ok;
  double max_err;
  double *t; /* timings */
} cand;

typedef struct sig_entry {
  tc_cg_spec spec; /* kind, act, flags, cols */
  int64_t rows;
  char key[200];
  const tc_node *node; /* the first node with this signature: measured on its operands */
  int64_t opset;
  tc_rt_tensor in[MAX_IN];
  size_t n_in, n_out;
  cand c[MAX_CANDS]; /* c[0]: the built-in kernel */
  size_t n_c;
  int winner; /* index into c */
  bool cached;
  char reason[160];
  char sym[64];  /* in the final library */
  uint32_t *ids; /* every node captured with this signature */
  size_t n_ids, cap_ids;
  const tc_ew_chain *chain; /* ewchain: the chain of node (its last node) */
} sig_entry;

/* An elementwise chain the generator may fuse, with its inputs as captured. */
typedef struct chain_entry {
  tc_ew_chain ch;
  tc_rt_tensor in[TC_EW_MAX_IN];
  bool got[TC_EW_MAX_IN];
  bool sig;      /* became (part of) a signature */
  bool sym_cols; /* its output's last dim is symbolic or unknown before a run */
} chain_entry;

/* A signature with two exact algorithms, measured against each other on
 * the operands of its first node: a float32 convolution that can run
 * Winograd or oneDNN's GEMM-based convolution besides the direct one
 * (tc_conv_algo_alternative), or a float32 MatMul whose B is an initializer
 * (gemm; sgemm or packed: tc_gemm_algo). */
typedef struct algo_sig {
  bool gemm;
  int alg[2];        /* algorithms 1 and 2 (tc_conv_algo / tc_gemm_algo values) */
  tc_conv_spec spec; /* convolution: algo AUTO */
  size_t gm, gk, gn; /* gemm: [gm, gk] x [gk, gn] */
  char key[200];
  const tc_node *node;
  tc_rt_tensor x, w, b;
  bool has_b;
  uint32_t *ids;
  size_t n_ids, cap_ids;
  double alg_us[2], spread_us, max_rel; /* medians of algorithms 1 and 2 */
  int choice;                           /* 0: the default rule (not measured), else 1 or 2 */
  bool measured, cached;
  char reason[160];
} algo_sig;

struct tc_tune_result {
  tc_tune_options o;
  algo_sig *algos;
  size_t n_algos, cap_algos;
  bool algo_checked, algo_kept;
  double algo_ms_auto, algo_ms_tuned;
  size_t n_algo_meta[2]; /* convolution / MatMul nodes whose algorithm is recorded */
  /* channels-last values between convolutions (runtime/layout.c) or plain */
  bool layout_checked, layout_plain;
  /* whole-model thread counts measured (TC_THREADS_KEY) */
  int thr_n, thr_count[8], thr_chosen;
  double thr_ms[8];
  bool thr_recorded;
  size_t layout_values;
  double layout_ms_cl, layout_ms_plain;
  char algo_note[160];
  char cpu_key[160];
  int threads;
  char lib_tmp[4200], lib_final[4200], lib_name[4200], sha[65];
  sig_entry *sigs;
  size_t n_sigs, n_bound, n_candidates;
  chain_entry *chains;
  size_t n_chains, n_chain_nodes;
  uint32_t *chain_of; /* by node id: index + 1 of the chain holding the node */
  bool *att_sym;      /* by node id: an attention node whose sequence lengths are symbolic */
  bool built, model_checked, kept;
  double model_ms_builtin, model_ms_native, seconds;
  char note[512];
  /* tc_tune_report's view */
  tc_report_tuning rep;
  tc_report_tune_decision *rep_d;
  tc_report_tune_cand *rep_c;
};

bool tc_tune_is_option(const char *a) {
  static const char *const opts[] = {"--codegen",      "--tune", "--tune-budget",
                                     "--tuning-cache", "--cpu",  NULL};
  for (size_t i = 0; opts[i]; i++)
    if (!strcmp(a, opts[i]))
      return true;
  return false;
}

int tc_tune_parse_arg(int argc, char **argv, int *i, tc_tune_options *o) {
  const char *s = argv[*i];
  if (*i + 1 >= argc)
    return tc_cli_usage_error("%s needs a value", s);
  const char *v = argv[++*i];
  if (!strcmp(s, "--codegen")) {
    if (strcmp(v, "cpu") && strcmp(v, "off"))
      return tc_cli_usage_error("--codegen takes cpu or off, got '%s'", v);
    o->codegen = !strcmp(v, "cpu");
  } else if (!strcmp(s, "--tune")) {
    if (!strcmp(v, "off"))
      o->mode = TC_TUNE_OFF;
    else if (!strcmp(v, "fast"))
      o->mode = TC_TUNE_FAST;
    else if (!strcmp(v, "full"))
      o->mode = TC_TUNE_FULL;
    else
      return tc_cli_usage_error("--tune takes off, fast or full, got '%s'", v);
    if (o->mode != TC_TUNE_OFF)
      o->codegen = true;
  } else if (!strcmp(s, "--tune-budget")) {
    char *end;
    errno = 0;
    double b = strtod(v, &end);
    if (errno || end == v || *end || !(b > 0) || b > 86400)
      return tc_cli_usage_error("--tune-budget needs seconds (more than 0), got '%s'", v);
    o->budget_s = b;
  } else if (!strcmp(s, "--tuning-cache")) {
    o->cache = v;
  } else { /* --cpu */
    o->cpu = v;
  }
  return 0;
}

static void free_chains(tc_tune_result *r) {
  for (size_t i = 0; i < r->n_chains; i++)
    for (size_t k = 0; k < TC_EW_MAX_IN; k++)
      free(r->chains[i].in[k].data);
  free(r->chains);
  free(r->chain_of);
  free(r->att_sym);
  r->chains = NULL;
  r->chain_of = NULL;
  r->att_sym = NULL;
  r->n_chains = 0;
}

static void tc_tune_result_free_sigs(tc_tune_result *r) {
  for (size_t i = 0; i < r->n_sigs; i++) {
    for (size_t k = 0; k < MAX_IN; k++)
      free(r->sigs[i].in[k].data);
    free(r->sigs[i].ids);
  }
  free(r->sigs);
  r->sigs = NULL;
  r->n_sigs = r->n_candidates = 0;
  for (size_t i = 0; i < r->n_algos; i++) {
    free(r->algos[i].x.data);
    free(r->algos[i].w.data);
    free(r->algos[i].b.data);
    free(r->algos[i].ids);
  }
  free(r->algos);
  r->algos = NULL;
  r->n_algos = r->cap_algos = 0;
}

/* ---- capture ---- */

typedef struct capture {
  tc_tune_result *r;
  size_t cap;
  bool oom;
  bool *nhwc; /* by value id: channels-last in a session of the model (runtime/layout.c) */
} capture;

static int64_t rows_of(const tc_rt_tensor *x) {
  return x->rank && x->dims[x->rank - 1] > 0 ? (int64_t)tc_rt_numel(x) / x->dims[x->rank - 1] : 0;
}

static void sig_key(const tc_cg_spec *sp, int64_t rows, int threads, char *buf, size_t cap) {
  if (sp->kind == TC_CG_EWCHAIN) {
    snprintf(
        buf, cap, "kind=ewchain prog=%016llx ins=%s types=%s:%c cols=%lld rows=%lld threads=%d",
        (unsigned long long)sp->prog.hash, sp->prog.ins, sp->prog.types,
        sp->prog.out_type ? sp->prog.out_type : 'f', (long long)sp->cols, (long long)rows, threads);
    return;
  }
  char att[96] = "";
  if (sp->kind == TC_CG_ATTENTION)
    snprintf(att, sizeof att, " q=%lld d=%lld dv=%lld h=%d kvh=%d", (long long)sp->att_q,
             (long long)sp->att_d, (long long)sp->att_dv, sp->att_h, sp->att_kvh);
  snprintf(buf, cap, "kind=%s act=%d flags=%d cols=%lld%s rows=%lld threads=%d",
           tc_cg_kind_name(sp->kind), sp->act, sp->flags, (long long)sp->cols, att, (long long)rows,
           threads);
}

static bool copy_tensor(const tc_rt_tensor *src, tc_rt_tensor *dst) {
  *dst = *src;
  dst->data = malloc(src->bytes ? src->bytes : 1);
  if (!dst->data)
    return false;
  memcpy(dst->data, src->data, src->bytes);
  return true;
}

/* Appends id to the list; true on OOM. */
static bool push_id(uint32_t **ids, size_t *n, size_t *cap, uint32_t id) {
  if (*n == *cap) {
    size_t c = *cap ? 2 * *cap : 8;
    uint32_t *v = realloc(*ids, c * sizeof *v);
    if (!v)
      return true;
    *ids = v;
    *cap = c;
  }
  (*ids)[(*n)++] = id;
  return false;
}

static bool add_id(sig_entry *e, uint32_t id) {
  return push_id(&e->ids, &e->n_ids, &e->cap_ids, id);
}

static bool is_conv_node(const tc_node *n) {
  if (tc_is_op(n, "Conv"))
    return true;
  if (tc_domain_equal(n->domain, "com.microsoft"))
    return n->op_type && !strcmp(n->op_type, "FusedConv");
  return tc_domain_equal(n->domain, "ai.tacoc") && n->op_type && !strncmp(n->op_type, "Conv", 4);
}

/* The signature of a 1-D or 2-D convolution (the only ones with an
 * alternative algorithm). */
static void conv_key(const tc_conv_spec *c, int threads, char *buf, size_t cap) {
  snprintf(buf, cap,
           "conv N=%lld C=%lld M=%lld group=%lld in=%lldx%lld k=%lldx%lld s=%lldx%lld "
           "d=%lldx%lld pads=%lld,%lld,%lld,%lld layout=%u threads=%d",
           (long long)c->N, (long long)c->C, (long long)c->M, (long long)c->group,
           (long long)c->in[0], (long long)c->in[1], (long long)c->k[0], (long long)c->k[1],
           (long long)c->s[0], (long long)c->s[1], (long long)c->d[0], (long long)c->d[1],
           (long long)c->pb[0], (long long)c->pb[1], (long long)c->pe[0], (long long)c->pe[1],
           c->layout, threads);
}

/* Room for element n of the array *v of capacity *cap (doubling, from 16);
 * false on OOM (the array unchanged). */
static bool grow(void **v, size_t *cap, size_t n, size_t elem) {
  if (n < *cap)
    return true;
  size_t c = *cap ? 2 * *cap : 16;
  void *p = realloc(*v, c * elem);
  if (!p)
    return false;
  *v = p;
  *cap = c;
  return true;
}

/* The entry for key (a new one, zeroed but for its key and node, when none
 * has it); NULL on OOM. */
static algo_sig *algo_entry(capture *c, const char *key, const tc_node *n, bool *is_new) {
  tc_tune_result *r = c->r;
  *is_new = false;
  for (size_t i = 0; i < r->n_algos; i++)
    if (!strcmp(r->algos[i].key, key))
      return &r->algos[i];
  if (!grow((void **)&r->algos, &r->cap_algos, r->n_algos, sizeof *r->algos))
    return NULL;
  algo_sig *e = &r->algos[r->n_algos++];
  memset(e, 0, sizeof *e);
  e->node = n;
  snprintf(e->key, sizeof e->key, "%s", key);
  *is_new = true;
  return e;
}

/* Notes a float32 convolution that has an alternative to the direct
 * algorithm (tuned modes only). */
static void observe_conv(capture *c, const tc_node *n, const tc_rt_tensor *const *in, size_t n_in) {
  tc_tune_result *r = c->r;
  tc_conv_spec sp;
  if (r->o.mode == TC_TUNE_OFF || n_in < 2 || !in[0] || !in[1] || !is_conv_node(n) ||
      !tc_conv_node_spec(n, tc_model_opset(n->graph->model, n->domain), in[0], in[1], &sp))
    return;
  /* measured in the layouts the model's sessions give x and y */
  if (c->nhwc && sp.nsp == 2 && n->inputs[0] && n->outputs[0])
    sp.layout = (c->nhwc[n->inputs[0]->id] ? TC_CONV_X_NHWC : 0) |
                (c->nhwc[n->outputs[0]->id] ? TC_CONV_Y_NHWC : 0);
  tc_conv_algo alt = tc_conv_algo_alternative(&sp);
  if (alt == TC_CONV_ALGO_AUTO)
    return;
  char key[200];
  conv_key(&sp, r->threads, key, sizeof key);
  bool fresh;
  algo_sig *e = algo_entry(c, key, n, &fresh);
  if (!e) {
    c->oom = true;
    return;
  }
  if (fresh) {
    e->spec = sp;
    /* SUBSAMPLE against what libtacort runs without a choice */
    e->alg[0] =
        alt == TC_CONV_ALGO_SUBSAMPLE ? (int)tc_conv_algo_default(&sp) : TC_CONV_ALGO_DIRECT;
    e->alg[1] = (int)alt;
    e->has_b = n_in > 2 && in[2] && in[2]->dtype == TC_DTYPE_F32;
    if (!copy_tensor(in[0], &e->x) || !copy_tensor(in[1], &e->w) ||
        (e->has_b && !copy_tensor(in[2], &e->b))) {
      c->oom = true;
      return;
    }
  }
  c->oom |= push_id(&e->ids, &e->n_ids, &e->cap_ids, n->id);
}

/* Notes a float32 MatMul whose B is a 2-D initializer and A has two rows
 * or more (tuned modes only): sgemm or B packed once. */
static void observe_gemm(capture *c, const tc_node *n, const tc_rt_tensor *const *in, size_t n_in) {
  tc_tune_result *r = c->r;
  const tc_value *bv = n->n_inputs > 1 ? n->inputs[1] : NULL;
  if (r->o.mode == TC_TUNE_OFF || n_in != 2 || !in[0] || !in[1] || !tc_is_op(n, "MatMul") || !bv ||
      !bv->init || tc_value_is_input(bv) || in[0]->dtype != TC_DTYPE_F32 ||
      in[1]->dtype != TC_DTYPE_F32 || in[0]->rank < 2 || in[1]->rank != 2 ||
      in[0]->dims[in[0]->rank - 1] != in[1]->dims[0] || in[1]->dims[0] <= 0)
    return;
  size_t K = (size_t)in[1]->dims[0], N = (size_t)in[1]->dims[1], M = tc_rt_numel(in[0]) / K;
  if (M < 2 || N == 0)
    return;
  char key[200];
  snprintf(key, sizeof key, "gemm M=%zu K=%zu N=%zu threads=%d", M, K, N, r->threads);
  bool fresh;
  algo_sig *e = algo_entry(c, key, n, &fresh);
  if (!e || (fresh && (!copy_tensor(in[0], &e->x) || !copy_tensor(in[1], &e->w)))) {
    c->oom = true;
    return;
  }
  if (fresh)
    e->gemm = true, e->gm = M, e->gk = K, e->gn = N, e->alg[0] = TC_GEMM_ALGO_SGEMM,
    e->alg[1] = TC_GEMM_ALGO_PACKED;
  c->oom |= push_id(&e->ids, &e->n_ids, &e->cap_ids, n->id);
}

/* The signature entry for key: the existing one, or a new one with spec sp,
 * node n and copies of its operands in[0..n_in). NULL on OOM. */
static sig_entry *sig_for(capture *c, const char *key, const tc_cg_spec *sp, int64_t rows,
                          const tc_node *n, const tc_rt_tensor *const *in, size_t n_in,
                          size_t n_out) {
  tc_tune_result *r = c->r;
  for (size_t i = 0; i < r->n_sigs; i++)
    if (!strcmp(r->sigs[i].key, key))
      return &r->sigs[i];
  if (!grow((void **)&r->sigs, &c->cap, r->n_sigs, sizeof *r->sigs))
    return NULL;
  sig_entry *e = &r->sigs[r->n_sigs++];
  memset(e, 0, sizeof *e);
  e->spec = *sp;
  e->rows = rows;
  snprintf(e->key, sizeof e->key, "%s", key);
  e->node = n;
  e->n_in = n_in;
  e->n_out = n_out;
  for (size_t i = 0; in && i < n_in; i++)
    if (in[i] && !copy_tensor(in[i], &e->in[i]))
      return NULL;
  return e;
}

/* Elementwise chains: keeps copies of a chain's inputs as its nodes run;
 * at its last node, the signature from the output's shape. */
static void observe_chain(capture *c, const tc_node *n, const tc_rt_tensor *const *in, size_t n_in,
                          const tc_rt_tensor *out) {
  tc_tune_result *r = c->r;
  chain_entry *ce = r->chain_of && r->chain_of[n->id] ? &r->chains[r->chain_of[n->id] - 1] : NULL;
  if (!ce)
    return;
  const tc_ew_chain *ch = &ce->ch;
  for (size_t i = 0; i < n_in; i++)
    for (int k = 0; k < ch->prog.n_in; k++)
      if (in[i] && n->inputs[i] == ch->in[k] && !ce->got[k]) {
        if (!copy_tensor(in[i], &ce->in[k])) {
          c->oom = true;
          return;
        }
        ce->got[k] = true;
      }
  if (n != ch->nodes[ch->n_nodes - 1] || !out[0].data || !tc_ew_type_letter(out[0].dtype) ||
      !out[0].rank || out[0].dims[out[0].rank - 1] <= 0)
    return;
  /* a row length from a symbolic dim is the generated inputs' guess, unless
   * --shape fixed it: a kernel for it would rarely fit */
  if (ce->sym_cols && !(r->o.shapes && r->o.shapes->n_shapes))
    return;
  tc_cg_spec sp = {.kind = TC_CG_EWCHAIN, .width = 1, .unroll = 1, .prog = ch->prog};
  sp.cols = out[0].dims[out[0].rank - 1];
  bool full = false;
  const tc_rt_tensor *ins[TC_EW_MAX_IN];
  for (int k = 0; k < ch->prog.n_in; k++) {
    char kind = ce->got[k] && tc_ew_type_letter(ce->in[k].dtype)
                    ? tc_ew_input_kind(&ce->in[k], out[0].rank, out[0].dims, sp.cols)
                    : 0;
    if (!kind)
      return;
    sp.prog.ins[k] = kind;
    sp.prog.types[k] = tc_ew_type_letter(ce->in[k].dtype);
    full |= kind == 'F';
    ins[k] = &ce->in[k];
  }
  sp.prog.out_type = tc_ew_type_letter(out[0].dtype);
  if (!full || !tc_ew_types_ok(&sp.prog))
    return;
  int64_t rows = r->o.mode == TC_TUNE_OFF ? 0 : rows_of(&out[0]);
  char key[200];
  sig_key(&sp, rows, r->threads, key, sizeof key);
  sig_entry *e = sig_for(c, key, &sp, rows, n, ins, (size_t)ch->prog.n_in, 1);
  if (!e || add_id(e, n->id)) {
    c->oom = true;
    return;
  }
  e->chain = ch;
  ce->sig = true;
  r->n_candidates += ch->n_nodes;
}

static void observe(void *ctx, const tc_node *n, const tc_rt_tensor *const *in, size_t n_in,
                    const tc_rt_tensor *out, size_t n_out) {
  capture *c = ctx;
  tc_tune_result *r = c->r;
  observe_conv(c, n, in, n_in);
  observe_gemm(c, n, in, n_in);
  observe_chain(c, n, in, n_in, out);
  const tc_rt_tensor *x = n_in ? in[0] : NULL;
  tc_cg_spec sp;
  if (c->oom || !x || x->dtype != TC_DTYPE_F32 || !x->rank || n_in > MAX_IN)
    return;
  if (tc_cg_attention_spec(n, &sp)) { /* its sizes from Q, K and V, when fixed */
    bool sym = r->att_sym && r->att_sym[n->id] && !(r->o.shapes && r->o.shapes->n_shapes);
    if (sym || n_in < 3 || !in[1] || !in[2] || x->rank != 3 || in[1]->rank != 3 ||
        in[2]->rank != 3 || !tc_cg_attention_dims(n, x->dims, in[1]->dims, in[2]->dims, &sp))
      return;
  } else if (!tc_cg_node_spec(n, x->dims[x->rank - 1], &sp)) {
    return;
  }
  for (size_t i = 0; i < n_in; i++)
    if (in[i] && in[i]->dtype != TC_DTYPE_F32)
      return;
  r->n_candidates++;
  char key[200]; /* untuned kernels do not depend on the number of rows */
  int64_t rows = r->o.mode == TC_TUNE_OFF ? 0 : rows_of(x);
  sig_key(&sp, rows, r->threads, key, sizeof key);
  sig_entry *e = sig_for(c, key, &sp, rows, n, in, n_in, n_out);
  if (!e || add_id(e, n->id))
    c->oom = true;
}

/* The chains the generator may fuse: from the last node back, each node
 * not yet in a chain ends one when tc_ew_chain_of finds one there. Also
 * notes the attention nodes whose sequence lengths are symbolic: their
 * kernels, made for one length, are generated only when --shape fixes the
 * lengths the model is tuned for. */
static bool find_chains(const tc_model *m, tc_tune_result *r) {
  size_t ids = m->next_node_id + 1;
  r->chain_of = calloc(ids, sizeof *r->chain_of);
  r->att_sym = calloc(ids, sizeof *r->att_sym);
  tc_shapes *sh = tc_shapes_infer(m->graph);
  if (!r->chain_of || !r->att_sym || !sh) {
    tc_shapes_free(sh);
    return false;
  }
  for (const tc_node *n = m->graph->first; n; n = n->next) {
    tc_cg_spec sp;
    if (!tc_cg_attention_spec(n, &sp))
      continue;
    for (size_t i = 0; i < 2; i++) { /* Q's and K's sequence dims */
      const tc_shape *s = tc_shape_of(sh, n->inputs[i]);
      r->att_sym[n->id] |= !s || !s->known || s->rank != 3 || s->dims[1].sym;
    }
  }
  size_t cap = 0;
  for (const tc_node *n = m->graph->last; n; n = n->prev) {
    tc_ew_chain ch;
    if (r->chain_of[n->id] || !tc_ew_chain_of(n, &ch))
      continue;
    bool taken = false;
    for (size_t i = 0; i < ch.n_nodes; i++)
      taken |= r->chain_of[ch.nodes[i]->id] != 0;
    if (taken)
      continue;
    if (r->n_chains == cap) {
      cap = cap ? 2 * cap : 16;
      chain_entry *v = realloc(r->chains, cap * sizeof *v);
      if (!v) {
        tc_shapes_free(sh);
        return false;
      }
      r->chains = v;
    }
    chain_entry *ce = &r->chains[r->n_chains++];
    memset(ce, 0, sizeof *ce);
    ce->ch = ch;
    const tc_shape *o = tc_shape_of(sh, n->outputs[0]);
    ce->sym_cols = !o || !o->known || !o->rank || o->dims[o->rank - 1].sym;
    for (size_t i = 0; i < ch.n_nodes; i++)
      r->chain_of[ch.nodes[i]->id] = (uint32_t)r->n_chains;
  }
  tc_shapes_free(sh);
  return true;
}

/* Nodes inside a chain that has a signature run as part of it: they leave
 * the per-node signatures (a signature left without nodes goes too). */
static void drop_chain_members(tc_tune_result *r) {
  size_t w = 0;
  for (size_t i = 0; i < r->n_sigs; i++) {
    sig_entry *e = &r->sigs[i];
    size_t k = 0;
    for (size_t j = 0; j < e->n_ids && e->spec.kind != TC_CG_EWCHAIN; j++) {
      uint32_t ci = r->chain_of ? r->chain_of[e->ids[j]] : 0;
      if (!ci || !r->chains[ci - 1].sig)
        e->ids[k++] = e->ids[j];
    }
    if (e->spec.kind != TC_CG_EWCHAIN)
      e->n_ids = k;
    if (!e->n_ids) {
      for (size_t t = 0; t < MAX_IN; t++)
        free(e->in[t].data);
      free(e->ids);
      continue;
    }
    r->sigs[w++] = *e;
  }
  r->n_sigs = w;
}

/* Generated inputs (the precision checks' generator, --shape applied). */
static int gen_inputs(const tc_model *m, const tc_tune_result *r, char **names, tc_ndarray *in,
                      size_t *n) {
  uint64_t state = TC_INPUT_SEED;
  tc_precision_options none;
  tc_precision_defaults(&none);
  return tc_precision_random_inputs(m, r->o.shapes ? r->o.shapes : &none, &state, names, in, 64, n);
}

static void free_inputs(char **names, tc_ndarray *in, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(names[i]);
    tc_ndarray_release(&in[i]);
  }
}

/* Runs m once on generated inputs with the observer on; -1 with why when
 * the model does not run on them. */
static int capture_run(tc_model *m, tc_tune_result *r, char *why, size_t cap) {
  tc_diag *d = tc_diag_new();
  tc_session *s = NULL;
  tc_ndarray in[64] = {0}, *outs = NULL;
  char *names[64] = {0};
  size_t n_in = 0;
  int rc = -1;
  capture c = {.r = r};
  if (!d || tc_session_new(m, &s, d)) {
    snprintf(why, cap, "%s", d ? tc_diag_message(d) : "out of memory");
    goto out;
  }
  if (gen_inputs(m, r, names, in, &n_in)) {
    snprintf(why, cap, "its inputs cannot be generated");
    goto out;
  }
  size_t n_out = tc_model_num_outputs(m);
  if (!(outs = calloc(n_out + 1, sizeof *outs))) {
    snprintf(why, cap, "out of memory");
    goto out;
  }
  s->observe = observe;
  s->observe_ctx = &c;
  if (s->nhwc) {
    size_t nb = (m->next_value_id + 1) * sizeof *s->nhwc;
    if (!(c.nhwc = malloc(nb))) {
      snprintf(why, cap, "out of memory");
      goto out;
    }
    memcpy(c.nhwc, s->nhwc, nb);
  }
  tc_layout_unbind(s); /* the observer reads operands in the plain order */
  if (tc_session_run(s, n_in, (const char *const *)names, in, outs, d)) {
    snprintf(why, cap, "%s", tc_diag_message(d));
    goto out;
  }
  if (c.oom) {
    snprintf(why, cap, "out of memory");
    goto out;
  }
  rc = 0;
out:
  for (size_t i = 0; outs && i < n_out; i++)
    tc_ndarray_release(&outs[i]);
  free(outs);
  free_inputs(names, in, n_in);
  free(c.nhwc);
  tc_session_free(s);
  tc_diag_free(d);
  return rc;
}

static bool sdim_eq(tc_sdim a, tc_sdim b) {
  return a.sym || b.sym ? a.sym && b.sym && !strcmp(a.sym, b.sym) : a.v == b.v;
}

/* tc_ew_input_kind on static shapes. */
static char static_kind(const tc_shape *t, const tc_shape *o, int64_t cols) {
  if (!t || !t->known || !tc_ew_type_letter(t->dtype) || t->rank > o->rank)
    return 0;
  bool same = t->rank == o->rank, ones = true;
  for (size_t d = 0; d < o->rank && same; d++)
    same = sdim_eq(t->dims[d], o->dims[d]);
  if (same)
    return 'F';
  for (size_t d = 0; d + 1 < t->rank; d++)
    ones &= tc_sdim_is(t->dims[d], 1);
  if (ones && (!t->rank || tc_sdim_is(t->dims[t->rank - 1], 1)))
    return 'S';
  return ones && t->rank && tc_sdim_is(t->dims[t->rank - 1], cols) ? 'R' : 0;
}

/* The chains' signatures from static shapes. */
static bool static_chains(tc_tune_result *r, const tc_shapes *sh, capture *c) {
  for (size_t i = 0; i < r->n_chains; i++) {
    chain_entry *ce = &r->chains[i];
    const tc_ew_chain *ch = &ce->ch;
    const tc_node *root = ch->nodes[ch->n_nodes - 1];
    const tc_shape *o = tc_shape_of(sh, root->outputs[0]);
    if (!o || !o->known || !tc_ew_type_letter(o->dtype) || !o->rank || o->dims[o->rank - 1].sym ||
        o->dims[o->rank - 1].v <= 0)
      continue;
    tc_cg_spec sp = {.kind = TC_CG_EWCHAIN, .width = 1, .unroll = 1, .prog = ch->prog};
    sp.cols = o->dims[o->rank - 1].v;
    bool full = false, ok = true;
    for (int k = 0; k < ch->prog.n_in && ok; k++) {
      const tc_shape *in_sh = tc_shape_of(sh, ch->in[k]);
      sp.prog.ins[k] = static_kind(in_sh, o, sp.cols);
      sp.prog.types[k] = tc_ew_type_letter(in_sh->dtype);
      ok = sp.prog.ins[k] != 0;
      full |= sp.prog.ins[k] == 'F';
    }
    sp.prog.out_type = tc_ew_type_letter(o->dtype);
    if (!ok || !full || !tc_ew_types_ok(&sp.prog))
      continue;
    char key[200];
    sig_key(&sp, 0, r->threads, key, sizeof key);
    sig_entry *e = sig_for(c, key, &sp, 0, root, NULL, (size_t)ch->prog.n_in, 1);
    if (!e || add_id(e, root->id))
      return false;
    e->chain = ch;
    ce->sig = true;
    r->n_candidates += ch->n_nodes;
  }
  return true;
}

/* An attention node's sizes from static shapes: Q, K and V 3-D with every
 * dim known. */
static bool static_attention_dims(const tc_shapes *sh, const tc_node *n, tc_cg_spec *sp) {
  int64_t d[3][3];
  for (size_t i = 0; i < 3; i++) {
    const tc_shape *s = n->inputs[i] ? tc_shape_of(sh, n->inputs[i]) : NULL;
    if (!s || !s->known || s->rank != 3)
      return false;
    for (size_t k = 0; k < 3; k++) {
      if (s->dims[k].sym)
        return false;
      d[i][k] = s->dims[k].v;
    }
  }
  return tc_cg_attention_dims(n, d[0], d[1], d[2], sp);
}

/* Without a run: candidates from static shape inference (row length known,
 * rows unknown), for --tune off. */
static int static_candidates(tc_model *m, tc_tune_result *r) {
  tc_shapes *sh = tc_shapes_infer(m->graph);
  if (!sh)
    return tc_cli_error("out of memory");
  capture c = {.r = r};
  for (tc_node *n = m->graph->first; n && !c.oom; n = n->next) {
    const tc_shape *x = n->n_inputs && n->inputs[0] ? tc_shape_of(sh, n->inputs[0]) : NULL;
    if (!x || !x->known || x->dtype != TC_DTYPE_F32 || !x->rank || x->dims[x->rank - 1].sym)
      continue;
    bool f32 = true;
    for (size_t i = 1; i < n->n_inputs; i++) {
      const tc_shape *p = n->inputs[i] ? tc_shape_of(sh, n->inputs[i]) : NULL;
      f32 &= !p || !p->known || p->dtype == TC_DTYPE_F32;
    }
    tc_cg_spec sp;
    if (!f32 || n->n_inputs > MAX_IN)
      continue;
    if (tc_cg_attention_spec(n, &sp)) {
      if (!static_attention_dims(sh, n, &sp))
        continue;
    } else if (!tc_cg_node_spec(n, x->dims[x->rank - 1].v, &sp)) {
      continue;
    }
    r->n_candidates++;
    char key[200];
    sig_key(&sp, 0, r->threads, key, sizeof key);
    sig_entry *e = sig_for(&c, key, &sp, 0, n, NULL, n->n_inputs, n->n_outputs);
    c.oom |= !e || add_id(e, n->id);
  }
  if (!c.oom)
    c.oom = !static_chains(r, sh, &c);
  tc_shapes_free(sh);
  return c.oom ? tc_cli_error("out of memory") : 0;
}

/* ---- candidates and measurement ---- */

static void add_cand(sig_entry *e, int w, int u, int t) {
  if (e->n_c == MAX_CANDS)
    return;
  cand *c = &e->c[e->n_c++];
  memset(c, 0, sizeof *c);
  c->width = w;
  c->unroll = u;
  c->threads = t;
  if (w)
    snprintf(c->name, sizeof c->name, t ? "w%du%dt%d" : "w%du%d", w, u, t);
  else
    snprintf(c->name, sizeof c->name, "builtin");
}

/* Candidates: libtacort's kernel, then generated variants (widths up to the
 * native one, unroll factors) on the thread pool, and the native width on
 * the calling thread alone. */
static void make_candidates(sig_entry *e, tc_tune_mode mode, int native_w) {
  e->n_c = 0;
  add_cand(e, 0, 0, 0);
  if (mode == TC_TUNE_OFF) {
    add_cand(e, native_w, 1, 0);
    return;
  }
  static const int full_w[] = {4, 8, 16}, full_u[] = {1, 2, 4};
  int fast_w[] = {native_w / 2 >= 4 ? native_w / 2 : native_w, native_w};
  const int *ws = mode == TC_TUNE_FULL ? full_w : fast_w;
  size_t nw = mode == TC_TUNE_FULL ? 3 : 2, nu = mode == TC_TUNE_FULL ? 3 : 2;
  for (size_t i = 0; i < nw; i++) {
    if (ws[i] > native_w || (i && ws[i] == ws[i - 1]))
      continue;
    for (size_t k = 0; k < nu; k++)
      add_cand(e, ws[i], full_u[k], 0);
  }
  if (mode == TC_TUNE_FAST && e->spec.kind == TC_CG_ATTENTION)
    add_cand(e, native_w, 4, 0); /* eight query rows at a time: wins on small heads */
  for (size_t k = 0; k < nu; k++)
    add_cand(e, native_w, full_u[k], 1);
}

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

/* A chain the way libtacort runs it without the generated kernel: each
 * node's own kernel in turn. */
static bool run_chain_builtin(sig_entry *e, tc_arena *a, tc_rt_tensor *out) {
  const tc_ew_chain *ch = e->chain;
  tc_rt_tensor res[TC_EW_MAX_OPS];
  tc_diag diag = {0};
  for (size_t i = 0; i < ch->n_nodes; i++) {
    const tc_node *q = ch->nodes[i];
    const tc_rt_tensor *in[3] = {NULL, NULL, NULL};
    for (size_t s = 0; s < q->n_inputs && s < 3; s++) {
      const tc_value *v = q->inputs[s];
      for (int k = 0; v && k < ch->prog.n_in; k++)
        if (ch->in[k] == v)
          in[s] = &e->in[k];
      for (size_t j = 0; v && j < i; j++)
        if (ch->nodes[j]->outputs[0] == v)
          in[s] = &res[j];
    }
    int64_t opset = tc_model_opset(q->graph->model, q->domain);
    const tc_kernel_def *def = tc_kernel_find(q->op_type, q->domain, opset);
    tc_kernel_ctx k = {.node = q, .opset = opset, .diag = &diag, .arena = a};
    memset(&res[i], 0, sizeof res[i]);
    if (!def || def->run(&k, in, q->n_inputs, &res[i], 1))
      return false;
  }
  out[0] = res[ch->n_nodes - 1];
  return true;
}

/* Runs candidate ci once on e's operands; out gets its outputs. */
static bool run_cand(sig_entry *e, size_t ci, tc_cg_row_fn fn, const tc_kernel_def *def,
                     tc_arena *a, tc_rt_tensor *out) {
  tc_diag diag = {0};
  tc_kernel_ctx k = {.node = e->node, .opset = e->opset, .diag = &diag, .arena = a};
  const tc_rt_tensor *in[MAX_IN];
  for (size_t i = 0; i < e->n_in; i++)
    in[i] = e->in[i].data ? &e->in[i] : NULL;
  memset(out, 0, 4 * sizeof *out);
  if (ci == 0)
    return e->chain ? run_chain_builtin(e, a, out)
                    : def->run(&k, in, e->n_in, out, e->n_out) == TC_STATUS_OK;
  tc_cg_spec sp = e->spec;
  sp.width = e->c[ci].width;
  sp.unroll = e->c[ci].unroll;
  sp.threads = e->c[ci].threads;
  tc_status st = TC_STATUS_INVALID;
  if (e->chain)
    return tc_native_chain_run(&k, &sp, fn, in, out, &st) && st == TC_STATUS_OK;
  return tc_native_run(&k, &sp, fn, in, e->n_in, out, e->n_out, &st) && st == TC_STATUS_OK;
}

static double max_diff(const tc_rt_tensor *a, const tc_rt_tensor *b) {
  if (!a->data || !b->data || tc_rt_numel(a) != tc_rt_numel(b) || a->dtype != b->dtype)
    return INFINITY;
  if (a->dtype != TC_DTYPE_F32) /* quantized outputs: exactly the same bytes */
    return a->bytes == b->bytes && !memcmp(a->data, b->data, a->bytes) ? 0 : INFINITY;
  const float *x = a->data, *y = b->data;
  double worst = 0;
  for (size_t i = 0; i < tc_rt_numel(a); i++) {
    double d = fabs((double)x[i] - (double)y[i]) / (1.0 + fabs((double)y[i]));
    if (!(d <= worst))
      worst = isnan(d) ? INFINITY : d;
  }
  return worst;
}

static void measure(sig_entry *e, tc_cg_row_fn *fns, const tc_kernel_def *def, int reps,
                    tc_arena *a) {
  tc_rt_tensor ref[4], got[4];
  /* correctness first: each generated candidate against the built-in kernel */
  bool ok0 = run_cand(e, 0, NULL, def, a, ref);
  size_t n_out = e->n_out < 4 ? e->n_out : 4;
  tc_rt_tensor keep[4] = {0};
  for (size_t o = 0; ok0 && o < n_out; o++)
    if (ref[o].data && !copy_tensor(&ref[o], &keep[o]))
      ok0 = false;
  tc_arena_reset(a);
  e->c[0].ok = ok0;
  for (size_t ci = 1; ci < e->n_c; ci++) {
    cand *c = &e->c[ci];
    c->ok = ok0 && fns[ci] && run_cand(e, ci, fns[ci], def, a, got);
    for (size_t o = 0; c->ok && o < n_out; o++)
      if (keep[o].data) {
        double d = max_diff(&got[o], &keep[o]);
        c->max_err = d > c->max_err ? d : c->max_err;
      }
    if (c->ok && !(c->max_err <= 1e-4))
      c->ok = false;
    tc_arena_reset(a);
  }
  for (size_t o = 0; o < 4; o++)
    free(keep[o].data);
  for (size_t ci = 0; ci < e->n_c; ci++)
    e->c[ci].t = e->c[ci].ok ? calloc((size_t)reps, sizeof(double)) : NULL;
  for (int r = -3; r < reps; r++) /* 3 warm-up rounds */
    for (size_t ci = 0; ci < e->n_c; ci++) {
      cand *c = &e->c[ci];
      if (!c->ok || !c->t)
        continue;
      double t0 = now_us();
      run_cand(e, ci, fns[ci], def, a, got);
      double t1 = now_us();
      tc_arena_reset(a);
      if (r >= 0)
        c->t[r] = t1 - t0;
    }
  for (size_t ci = 0; ci < e->n_c; ci++) {
    cand *c = &e->c[ci];
    if (!c->t)
      continue;
    qsort(c->t, (size_t)reps, sizeof *c->t, tc_cli_cmp_double);
    c->med_us = c->t[reps / 2];
    c->spread_us = c->t[(3 * reps) / 4] - c->t[reps / 4];
    c->measured = true;
    free(c->t);
    c->t = NULL;
  }
}

static void decide(sig_entry *e) {
  cand *b = &e->c[0];
  e->winner = 0;
  if (!b->measured) {
    snprintf(e->reason, sizeof e->reason, "the built-in kernel could not be measured");
    return;
  }
  int best = 0;
  for (size_t ci = 1; ci < e->n_c; ci++) {
    cand *c = &e->c[ci];
    if (c->measured && (best == 0 || c->med_us < e->c[best].med_us))
      best = (int)ci;
  }
  if (!best) {
    snprintf(e->reason, sizeof e->reason, "no generated kernel matched the built-in output");
    return;
  }
  cand *w = &e->c[best];
  double noise = w->spread_us > b->spread_us ? w->spread_us : b->spread_us;
  if (b->med_us - w->med_us > noise) {
    e->winner = best;
    snprintf(e->reason, sizeof e->reason, "%.2fx faster than the built-in kernel",
             b->med_us / (w->med_us > 0 ? w->med_us : 1e-9));
  } else {
    snprintf(e->reason, sizeof e->reason,
             "best generated (%s, %.1f us) does not beat the built-in (%.1f us) by more than the "
             "spread (%.1f us)",
             w->name, w->med_us, b->med_us, noise);
  }
}

/* ---- the tuning cache: lines "tacoc-tune/1\tCPU\tSIGNATURE\tWINNER\tBUILTIN_US\tWINNER_US" */

/* The last line of the cache at path for cpu and key whose winner accept
 * takes (NULL: any): winner and the two times. */
static bool cache_read(const char *path, const char *cpu, const char *key,
                       bool (*accept)(const char *), char *winner, size_t cap, double *base_us,
                       double *win_us) {
  FILE *f = path ? fopen(path, "r") : NULL;
  if (!f)
    return false;
  char line[1024];
  bool found = false;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *f0 = strtok(line, "\t"), *f1 = strtok(NULL, "\t"), *f2 = strtok(NULL, "\t"),
         *f3 = strtok(NULL, "\t"), *f4 = strtok(NULL, "\t"), *f5 = strtok(NULL, "\t");
    if (!f5 || strcmp(f0, "tacoc-tune/1") || strcmp(f1, cpu) || strcmp(f2, key) ||
        (accept && !accept(f3)))
      continue;
    snprintf(winner, cap, "%s", f3);
    *base_us = atof(f4);
    *win_us = atof(f5);
    found = true;
  }
  fclose(f);
  return found;
}

static bool cache_lookup(const char *path, const char *cpu, sig_entry *e) {
  char win[64];
  double base_us, win_us;
  if (!cache_read(path, cpu, e->key, NULL, win, sizeof win, &base_us, &win_us))
    return false;
  int w = 0, u = 0, t = 0;
  e->winner = -1;
  if (!strcmp(win, "builtin"))
    e->winner = 0;
  else if (sscanf(win, "w%du%dt%d", &w, &u, &t) >= 2)
    for (size_t ci = 1; ci < e->n_c; ci++)
      if (e->c[ci].width == w && e->c[ci].unroll == u && e->c[ci].threads == t)
        e->winner = (int)ci;
  if (e->winner < 0) { /* a variant this mode does not generate: keep it anyway */
    add_cand(e, w, u, t);
    e->winner = (int)e->n_c - 1;
  }
  e->c[0].med_us = base_us;
  e->c[e->winner].med_us = win_us;
  e->c[0].measured = e->c[e->winner].measured = true;
  e->cached = true;
  snprintf(e->reason, sizeof e->reason, "from the tuning cache");
  return true;
}

static void cache_line(FILE *f, const char *cpu, const char *key, const char *winner,
                       double base_us, double win_us) {
  fprintf(f, "tacoc-tune/1\t%s\t%s\t%s\t%.3f\t%.3f\n", cpu, key, winner, base_us, win_us);
}

static void cache_append(const char *path, const char *cpu, const tc_tune_result *r) {
  FILE *f = path ? fopen(path, "a") : NULL;
  if (!f)
    return;
  for (size_t i = 0; i < r->n_sigs; i++) {
    const sig_entry *e = &r->sigs[i];
    if (e->cached || !e->c[0].measured)
      continue;
    cache_line(f, cpu, e->key, e->c[e->winner].name, e->c[0].med_us, e->c[e->winner].med_us);
  }
  fclose(f);
}

/* ---- model metadata ---- */

/* Every record of the tuner: kernel library, bindings, convolution algorithms. */
static void meta_strip(tc_model *m) { tc_meta_strip_prefix(m, "ai.tacoc.kernel"); }

/* The generated kernels' records only. */
static void meta_strip_codegen(tc_model *m) {
  tc_meta_strip_prefix(m, "ai.tacoc.kernels");
  tc_meta_strip_prefix(m, "ai.tacoc.kernel:");
}

void tc_tune_strip(tc_model *m) {
  if (m->pb)
    meta_strip(m);
}

/* Nodes a generated kernel may bind, and convolutions: bindings go by name. */
static bool bindable(const tc_node *n) {
  tc_cg_spec sp;
  return tc_cg_node_spec(n, 1, &sp) || tc_cg_attention_spec(n, &sp) || is_conv_node(n) ||
         tc_is_op(n, "MatMul") || tc_ew_node_supported(n);
}

/* Median latency of sessions a and b over reps interleaved runs. */
static int time_pair(const tc_model *m, tc_tune_result *r, tc_session *a, tc_session *b, int reps,
                     double *ms_a, double *ms_b) {
  tc_diag *d = tc_diag_new();
  tc_ndarray in[64] = {0}, *outs = NULL;
  char *names[64] = {0};
  size_t n_in = 0, n_out = tc_model_num_outputs(m);
  int rc = TC_EXIT_ERROR;
  double *t[2] = {calloc((size_t)reps, sizeof(double)), calloc((size_t)reps, sizeof(double))};
  tc_session *s[2] = {a, b};
  if (!d || !t[0] || !t[1] || !(outs = calloc(n_out + 1, sizeof *outs))) {
    tc_cli_error("out of memory");
    goto out;
  }
  if (gen_inputs(m, r, names, in, &n_in))
    goto out;
  for (int k = -2; k < reps; k++)
    for (int which = 0; which < 2; which++) {
      double t0 = now_us();
      if (tc_session_run(s[which], n_in, (const char *const *)names, in, outs, d)) {
        tc_cli_error("--tune: checking the whole model: %s", tc_diag_message(d));
        goto out;
      }
      double t1 = now_us();
      for (size_t o = 0; o < n_out; o++)
        tc_ndarray_release(&outs[o]);
      if (k >= 0)
        t[which][k] = (t1 - t0) / 1e3;
    }
  qsort(t[0], (size_t)reps, sizeof(double), tc_cli_cmp_double);
  qsort(t[1], (size_t)reps, sizeof(double), tc_cli_cmp_double);
  *ms_a = t[0][reps / 2];
  *ms_b = t[1][reps / 2];
  rc = 0;
out:
  free_inputs(names, in, n_in);
  free(outs);
  free(t[0]);
  free(t[1]);
  tc_diag_free(d);
  return rc;
}

/* Median latency of m with and without the generated kernels, runs
 * interleaved; drops the kernels (metadata and library) unless they make
 * the model faster. */
static int whole_model_check(tc_model *m, tc_tune_result *r) {
  tc_diag *d = tc_diag_new();
  tc_session *s[2] = {NULL, NULL};
  int rc = TC_EXIT_ERROR;
  if (!d) {
    tc_cli_error("out of memory");
    goto out;
  }
  if (tc_session_new(m, &s[0], d) || tc_session_new_with_kernels(m, r->lib_tmp, &s[1], d)) {
    tc_cli_error("codegen: %s", tc_diag_message(d));
    goto out;
  }
  if (tc_session_native_nodes(s[1]) != r->n_bound) {
    tc_cli_error("codegen: the generated library binds %zu of %zu nodes: %s",
                 tc_session_native_nodes(s[1]), r->n_bound, tc_session_native_note(s[1]));
    goto out;
  }
  if (time_pair(m, r, s[0], s[1], r->o.mode == TC_TUNE_FULL ? 15 : 7, &r->model_ms_builtin,
                &r->model_ms_native))
    goto out;
  r->model_checked = true;
  r->kept = r->model_ms_native < r->model_ms_builtin;
  if (!r->kept) {
    snprintf(r->note, sizeof r->note,
             "whole model not faster with the generated kernels (%.3f ms vs %.3f ms): dropped",
             r->model_ms_native, r->model_ms_builtin);
    meta_strip_codegen(m);
    unlink(r->lib_tmp);
    r->built = false;
    r->n_bound = 0;
  }
  rc = 0;
out:
  tc_session_free(s[0]);
  tc_session_free(s[1]);
  tc_diag_free(d);
  return rc;
}

/* ---- algorithms per signature: convolutions direct, Winograd or
 * GEMM-based, MatMul sgemm or packed ---- */

/* The name of e's algorithm a (1 or 2), as the model's metadata names it. */
static const char *algo_name(const algo_sig *e, int a) {
  /* by tc_conv_algo / tc_gemm_algo value */
  static const char *const conv[] = {"auto", "direct", "winograd", "gemm", "subsample"},
                           *const gemm[] = {"auto", "sgemm", "packed"};
  return e->gemm ? gemm[e->alg[a == 2]] : conv[e->alg[a == 2]];
}

/* Which of e's algorithms (1 or 2) libtacort runs without a recorded choice. */
static int algo_default(const algo_sig *e) {
  int d = e->gemm ? TC_GEMM_ALGO_SGEMM : (int)tc_conv_algo_default(&e->spec);
  return d == e->alg[1] ? 2 : 1;
}

static bool algo_name_ok(const char *s) {
  return !strcmp(s, "winograd") || !strcmp(s, "direct") || !strcmp(s, "gemm") ||
         !strcmp(s, "subsample") || !strcmp(s, "sgemm") || !strcmp(s, "packed");
}

static bool algo_cache_lookup(const char *path, const char *cpu, algo_sig *e) {
  char win[64];
  if (!cache_read(path, cpu, e->key, algo_name_ok, win, sizeof win, &e->alg_us[0], &e->alg_us[1]))
    return false;
  e->choice = !strcmp(win, algo_name(e, 2)) ? 2 : 1;
  e->cached = true;
  snprintf(e->reason, sizeof e->reason, "from the tuning cache");
  return true;
}

/* Runs algorithm a of e on its operands into y. */
static bool run_algo(const algo_sig *e, int a, float *y) {
  const tc_value *wv = e->node->n_inputs > 1 ? e->node->inputs[1] : NULL;
  if (e->gemm)
    return e->alg[a - 1] == TC_GEMM_ALGO_PACKED
               ? tc_dnnl_matmul_run(wv, e->gm, e->gk, e->gn, e->x.data, e->w.data, y)
               : tc_sgemm(false, false, e->gm, e->gn, e->gk, e->x.data, e->w.data, y);
  tc_conv_spec sp = e->spec;
  sp.algo = (tc_conv_algo)e->alg[a - 1];
  return tc_dnnl_conv_run(&sp, wv, e->x.data, e->w.data, e->has_b ? e->b.data : NULL, NULL, y);
}

/* Times algorithms 1 and 2 on the entry's operands, interleaved, and
 * decides: 2 when its median beats 1's by more than the larger spread and
 * its output stays within 1e-5 of the output's range of 1's. */
static void measure_algos(algo_sig *e, int reps) {
  const tc_conv_spec *c = &e->spec;
  size_t ny = e->gemm ? e->gm * e->gn : (size_t)(c->N * c->M * c->out[0] * c->out[1]);
  float *y[2] = {malloc(ny * sizeof(float)), malloc(ny * sizeof(float))};
  double *t[2] = {calloc((size_t)reps, sizeof(double)), calloc((size_t)reps, sizeof(double))};
  const char *n1 = algo_name(e, 1), *n2 = algo_name(e, 2);
  e->choice = 1;
  if (!y[0] || !y[1] || !t[0] || !t[1]) {
    snprintf(e->reason, sizeof e->reason, "out of memory: %s kept", n1);
    goto out;
  }
  for (int k = -2; k < reps; k++)
    for (int a = 0; a < 2; a++) {
      double t0 = now_us();
      if (!run_algo(e, a + 1, y[a])) {
        snprintf(e->reason, sizeof e->reason, "oneDNN declined %s: %s kept", a ? n2 : n1, n1);
        goto out;
      }
      if (k >= 0)
        t[a][k] = now_us() - t0;
    }
  double range = 0, diff = 0;
  for (size_t i = 0; i < ny; i++) {
    double d = fabs((double)y[0][i]), w = fabs((double)y[1][i] - (double)y[0][i]);
    range = d > range ? d : range;
    diff = w > diff || isnan(w) ? w : diff;
  }
  e->max_rel = range > 0 ? diff / range : diff;
  double spread = 0;
  for (int a = 0; a < 2; a++) {
    qsort(t[a], (size_t)reps, sizeof(double), tc_cli_cmp_double);
    double iqr = t[a][3 * reps / 4] - t[a][reps / 4];
    spread = iqr > spread ? iqr : spread;
  }
  e->alg_us[0] = t[0][reps / 2];
  e->alg_us[1] = t[1][reps / 2];
  e->spread_us = spread;
  e->measured = true;
  if (!(e->max_rel <= 1e-5))
    snprintf(e->reason, sizeof e->reason,
             "%s differs from %s by %.2g of the output's range: %s kept", n2, n1, e->max_rel, n1);
  else if (e->alg_us[1] + spread < e->alg_us[0]) {
    e->choice = 2;
    snprintf(e->reason, sizeof e->reason, "%s %.0f%% faster", n2,
             100 * (1 - e->alg_us[1] / e->alg_us[0]));
  } else {
    snprintf(e->reason, sizeof e->reason, "%s not faster beyond the spread (%.0f us)", n2, spread);
  }
out:
  free(y[0]);
  free(y[1]);
  free(t[0]);
  free(t[1]);
}

/* Measures (or reads from the cache) the algorithm of every convolution and
 * MatMul signature the capture found, records the choices in m's metadata,
 * and keeps them only when the whole model is faster with them than with
 * libtacort's default rule. */
static int tune_algos(tc_model *m, tc_tune_result *r, double t_start) {
  if (!r->n_algos)
    return 0;
  int reps = r->o.mode == TC_TUNE_FULL ? 61 : 21;
  double budget_us = (r->o.budget_s > 0 ? r->o.budget_s : 1e9) * 1e6;
  for (size_t i = 0; i < r->n_algos; i++) {
    algo_sig *e = &r->algos[i];
    if (algo_cache_lookup(r->o.cache, r->cpu_key, e))
      continue;
    if (now_us() - t_start > budget_us) {
      snprintf(e->reason, sizeof e->reason, "tuning budget spent: the default rule applies");
      e->choice = 0;
      continue;
    }
    measure_algos(e, reps);
  }
  FILE *f = r->o.cache ? fopen(r->o.cache, "a") : NULL;
  for (size_t i = 0; f && i < r->n_algos; i++) {
    const algo_sig *e = &r->algos[i];
    if (e->measured)
      cache_line(f, r->cpu_key, e->key, algo_name(e, e->choice), e->alg_us[0], e->alg_us[1]);
  }
  if (f)
    fclose(f);
  /* only the choices the default rule would not make are recorded */
  size_t differ = 0;
  for (size_t i = 0; i < r->n_algos; i++)
    differ += r->algos[i].choice && r->algos[i].choice != algo_default(&r->algos[i]);
  if (!differ) {
    snprintf(r->algo_note, sizeof r->algo_note,
             "the default rule makes every choice: nothing recorded");
    return 0;
  }
  tc_diag *d = tc_diag_new();
  tc_session *s[2] = {NULL, NULL};
  int rc = TC_EXIT_ERROR;
  if (!d || tc_session_new(m, &s[0], d)) {
    tc_cli_error("--tune: %s", d ? tc_diag_message(d) : "out of memory");
    goto out;
  }
  for (size_t i = 0; i < r->n_algos; i++) {
    const algo_sig *e = &r->algos[i];
    if (!e->choice || e->choice == algo_default(e))
      continue;
    for (tc_node *n = m->graph->first; n; n = n->next) {
      bool mine = false;
      for (size_t k = 0; k < e->n_ids && !mine; k++)
        mine = e->ids[k] == n->id;
      char key[600];
      snprintf(key, sizeof key, "%s%s", e->gemm ? TC_GEMM_ALGO_KEY : TC_CONV_ALGO_KEY, n->name);
      if (mine && tc_meta_add(m, key, algo_name(e, e->choice))) {
        tc_cli_error("out of memory");
        goto out;
      }
      r->n_algo_meta[e->gemm] += mine;
    }
  }
  if (tc_session_new(m, &s[1], d)) {
    tc_cli_error("--tune: %s", tc_diag_message(d));
    goto out;
  }
  if (time_pair(m, r, s[0], s[1], r->o.mode == TC_TUNE_FULL ? 15 : 7, &r->algo_ms_auto,
                &r->algo_ms_tuned))
    goto out;
  r->algo_checked = true;
  r->algo_kept = r->algo_ms_tuned <= r->algo_ms_auto;
  if (!r->algo_kept) {
    tc_meta_strip_prefix(m, TC_CONV_ALGO_KEY);
    tc_meta_strip_prefix(m, TC_GEMM_ALGO_KEY);
    r->n_algo_meta[0] = r->n_algo_meta[1] = 0;
  }
  rc = 0;
out:
  tc_session_free(s[0]);
  tc_session_free(s[1]);
  tc_diag_free(d);
  return rc;
}

/* The report's "convolutions" (gemm false) or "gemms" object: nodes
 * recorded, the whole-model check (shared by both), every decision with
 * both algorithms' times. */
static void json_algos(tc_json *j, const tc_tune_result *r, bool gemm) {
  tc_json_key(j, gemm ? "gemms" : "convolutions");
  tc_json_begin_object(j);
  tc_json_key(j, "nodes_recorded");
  tc_json_uint(j, r->n_algo_meta[gemm]);
  tc_json_key(j, "whole_model");
  if (r->algo_checked) {
    tc_json_begin_object(j);
    tc_json_key(j, "default_ms");
    tc_json_double(j, r->algo_ms_auto);
    tc_json_key(j, "tuned_ms");
    tc_json_double(j, r->algo_ms_tuned);
    tc_json_key(j, "kept");
    tc_json_bool(j, r->algo_kept);
    tc_json_end_object(j);
  } else {
    tc_json_null(j);
  }
  tc_json_key(j, "decisions");
  tc_json_begin_array(j);
  for (size_t i = 0; i < r->n_algos; i++) {
    const algo_sig *e = &r->algos[i];
    if (e->gemm != gemm)
      continue;
    bool timed = e->measured || e->cached;
    tc_json_begin_object(j);
    tc_json_key(j, "signature");
    tc_json_string(j, e->key);
    tc_json_key(j, "nodes");
    tc_json_uint(j, e->n_ids);
    tc_json_key(j, "algorithm");
    tc_json_string(j, e->choice ? algo_name(e, e->choice) : NULL);
    for (int a = 1; a <= 2; a++) {
      char k[32];
      snprintf(k, sizeof k, "%s_us", algo_name(e, a));
      tc_json_key(j, k);
      if (timed)
        tc_json_double(j, e->alg_us[a - 1]);
      else
        tc_json_null(j);
    }
    tc_json_key(j, "cached");
    tc_json_bool(j, e->cached);
    tc_json_key(j, "reason");
    tc_json_string(j, e->reason);
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  tc_json_end_object(j);
}

/* ---- layout: channels-last values between convolutions, or all plain ---- */

/* Times the whole model with libtacort's channels-last values and with every
 * value plain, runs interleaved; records TC_LAYOUT_KEY = "plain" when plain
 * wins by more than 3% (the layouts only choose between two exact ways to
 * compute the same model). */
static int tune_layout(tc_model *m, tc_tune_result *r) {
  tc_diag *d = tc_diag_new();
  tc_session *s[2] = {NULL, NULL};
  int rc = TC_EXIT_ERROR;
  if (!d || tc_session_new(m, &s[0], d) || tc_session_new(m, &s[1], d)) {
    tc_cli_error("--tune: %s", d ? tc_diag_message(d) : "out of memory");
    goto out;
  }
  rc = 0;
  if (!(r->layout_values = tc_session_channels_last_values(s[0])))
    goto out;
  tc_layout_unbind(s[1]);
  if ((rc = time_pair(m, r, s[0], s[1], r->o.mode == TC_TUNE_FULL ? 15 : 9, &r->layout_ms_cl,
                      &r->layout_ms_plain)))
    goto out;
  r->layout_checked = true;
  r->layout_plain = r->layout_ms_plain < 0.97 * r->layout_ms_cl;
  if (r->layout_plain && tc_meta_add(m, TC_LAYOUT_KEY, "plain"))
    rc = tc_cli_error("out of memory");
out:
  tc_session_free(s[0]);
  tc_session_free(s[1]);
  tc_diag_free(d);
  return rc;
}

int omp_get_num_procs(void);
void omp_set_num_threads(int n);

/* The whole model at 1, 2, 4, ... threads and at the default count (all
 * cores), interleaved, medians; records TC_THREADS_KEY = "N/cores" when N
 * threads beat the default by more than 3%. */
static int tune_threads(tc_model *m, tc_tune_result *r) {
  int dflt = r->threads, reps = r->o.mode == TC_TUNE_FULL ? 15 : 9;
  if (dflt < 2)
    return 0;
  for (int c = 1; c < dflt && r->thr_n < 7; c *= 2)
    r->thr_count[r->thr_n++] = c;
  r->thr_count[r->thr_n++] = dflt;
  tc_diag *d = tc_diag_new();
  tc_session *s = NULL;
  tc_ndarray in[64] = {0}, *outs = NULL;
  char *names[64] = {0};
  size_t n_in = 0, n_out = tc_model_num_outputs(m);
  double *t = calloc((size_t)(reps * r->thr_n), sizeof *t);
  int rc = TC_EXIT_ERROR;
  if (!d || !t || !(outs = calloc(n_out + 1, sizeof *outs)) || tc_session_new(m, &s, d)) {
    rc = tc_cli_error("--tune: %s", d && s == NULL ? tc_diag_message(d) : "out of memory");
    goto out;
  }
  if (gen_inputs(m, r, names, in, &n_in))
    goto out;
  for (int k = -2; k < reps; k++)
    for (int c = 0; c < r->thr_n; c++) {
      omp_set_num_threads(r->thr_count[c]);
      double t0 = now_us();
      tc_status st = tc_session_run(s, n_in, (const char *const *)names, in, outs, d);
      double t1 = now_us();
      for (size_t o = 0; o < n_out; o++)
        tc_ndarray_release(&outs[o]);
      if (st) {
        rc = tc_cli_error("--tune: timing thread counts: %s", tc_diag_message(d));
        goto out;
      }
      if (k >= 0)
        t[c * reps + k] = (t1 - t0) / 1e3;
    }
  int best = r->thr_n - 1;
  for (int c = 0; c < r->thr_n; c++) {
    qsort(t + c * reps, (size_t)reps, sizeof *t, tc_cli_cmp_double);
    r->thr_ms[c] = t[c * reps + reps / 2];
    if (r->thr_ms[c] < r->thr_ms[best])
      best = c;
  }
  r->thr_chosen = r->thr_count[r->thr_n - 1];
  if (best != r->thr_n - 1 && r->thr_ms[best] < 0.97 * r->thr_ms[r->thr_n - 1]) {
    char v[32];
    snprintf(v, sizeof v, "%d/%d", r->thr_count[best], omp_get_num_procs());
    r->thr_chosen = r->thr_count[best];
    r->thr_recorded = true;
    if (tc_meta_add(m, TC_THREADS_KEY, v)) {
      rc = tc_cli_error("out of memory");
      goto out;
    }
  }
  rc = 0;
out:
  omp_set_num_threads(dflt);
  free_inputs(names, in, n_in);
  free(outs);
  free(t);
  tc_session_free(s);
  tc_diag_free(d);
  return rc;
}

int tc_tune_apply(tc_model *m, const tc_tune_options *o, tc_tune_result **res) {
  *res = NULL;
  if (!o->codegen)
    return 0;
  double t_start = now_us();
  if (!m->pb)
    return tc_cli_error("codegen: the model has no protobuf record to note the kernels in");
  tc_tune_result *r = calloc(1, sizeof *r);
  if (!r)
    return tc_cli_error("out of memory");
  *res = r;
  r->o = *o;
  r->threads = tc_parallel_pieces((size_t)1 << 30, 1);
  tc_cg_cpu_key(o->cpu, r->cpu_key, sizeof r->cpu_key);
  snprintf(r->lib_final, sizeof r->lib_final, "%s.tacok", o->output);
  snprintf(r->lib_tmp, sizeof r->lib_tmp, "%s.tacok.tmp", o->output);
  const char *slash = strrchr(r->lib_final, '/');
  snprintf(r->lib_name, sizeof r->lib_name, "%s", slash ? slash + 1 : r->lib_final);
  meta_strip(m);
  if (tc_meta_name_nodes(m, bindable))
    return tc_cli_error("out of memory");
  char cwhy[512] = "";
  if (!find_chains(m, r))
    return tc_cli_error("out of memory");
  if (capture_run(m, r, cwhy, sizeof cwhy)) {
    if (o->mode != TC_TUNE_OFF)
      return tc_cli_error("--tune: the model does not run on generated inputs, so there is "
                          "nothing to measure on: %s (give --shape NAME=DIMS for its inputs or "
                          "symbolic dims, or use --tune off)",
                          cwhy);
    tc_tune_result_free_sigs(r);
    for (size_t i = 0; i < r->n_chains; i++)
      r->chains[i].sig = false;
    if (static_candidates(m, r))
      return TC_EXIT_ERROR;
    snprintf(r->note, sizeof r->note,
             "row lengths from static shapes: the model does not run on generated inputs (%.300s)",
             cwhy);
  }
  drop_chain_members(r);
  int native_w = tc_cg_native_width(o->cpu);
  /* candidates, cache, measurement */
  bool native_cpu = !o->cpu || !strcmp(o->cpu, "native");
  if (o->mode != TC_TUNE_OFF && native_cpu &&
      (tune_algos(m, r, t_start) || tune_layout(m, r) || tune_threads(m, r)))
    return TC_EXIT_ERROR;
  tc_cg_spec *specs = calloc(r->n_sigs * MAX_CANDS + 1, sizeof *specs);
  if (!specs)
    return tc_cli_error("out of memory");
  size_t n_specs = 0;
  for (size_t i = 0; i < r->n_sigs; i++) {
    sig_entry *e = &r->sigs[i];
    e->opset = 1;
    for (size_t k = 0; k < m->n_opsets; k++)
      if (tc_domain_equal(m->opsets[k].domain, e->node->domain))
        e->opset = m->opsets[k].version;
    make_candidates(e, o->mode, native_w);
    if (o->mode == TC_TUNE_OFF) {
      e->winner = 1;
      snprintf(e->reason, sizeof e->reason, "not tuned (--tune off): generated at width %d",
               native_w);
    } else if (!cache_lookup(o->cache, r->cpu_key, e) && !native_cpu) {
      e->winner = 1;
      snprintf(e->reason, sizeof e->reason, "not measured: --cpu %s is not this machine (width %d)",
               o->cpu, native_w);
    }
    for (size_t ci = 1; ci < e->n_c; ci++) {
      tc_cg_spec *sp = &specs[n_specs++];
      *sp = e->spec;
      sp->width = e->c[ci].width;
      sp->unroll = e->c[ci].unroll;
      snprintf(sp->sym, sizeof sp->sym, "tune_%zu_%zu", i, ci);
    }
  }
  int rc = 0;
  char why[512];
  bool need_measure = false;
  for (size_t i = 0; i < r->n_sigs; i++)
    need_measure |= o->mode != TC_TUNE_OFF && native_cpu && !r->sigs[i].cached;
  if (need_measure && n_specs) {
    /* one library of every candidate, loaded here to measure */
    char probe[4300];
    snprintf(probe, sizeof probe, "%s.probe", r->lib_tmp);
    if (tc_cg_build_library(specs, n_specs, o->cpu, probe, why, sizeof why)) {
      free(specs);
      return tc_cli_error("codegen: %s", why);
    }
    FILE *f = fopen(probe, "rb");
    size_t size = 0;
    unsigned char *bytes = NULL;
    if (f && !fseek(f, 0, SEEK_END)) {
      long len = ftell(f);
      if (len > 0 && !fseek(f, 0, SEEK_SET) && (bytes = malloc((size_t)len)) &&
          fread(bytes, 1, (size_t)len, f) == (size_t)len)
        size = (size_t)len;
    }
    if (f)
      fclose(f);
    unlink(probe);
    tc_native_lib *lib = size ? tc_native_lib_open(bytes, size, why, sizeof why) : NULL;
    free(bytes);
    if (!lib) {
      free(specs);
      return tc_cli_error("codegen: cannot load the candidate kernels: %s", why);
    }
    tc_arena *a = tc_arena_new();
    int reps = o->mode == TC_TUNE_FULL ? 61 : 21;
    double budget_us = (o->budget_s > 0 ? o->budget_s : 1e9) * 1e6;
    for (size_t i = 0; i < r->n_sigs && a; i++) {
      sig_entry *e = &r->sigs[i];
      if (e->cached)
        continue;
      if (now_us() - t_start > budget_us) {
        e->winner = 0;
        snprintf(e->reason, sizeof e->reason, "tuning budget spent: built-in kernel kept");
        continue;
      }
      tc_cg_row_fn fns[MAX_CANDS] = {0};
      for (size_t ci = 1; ci < e->n_c; ci++) {
        char sym[64];
        snprintf(sym, sizeof sym, "tune_%zu_%zu", i, ci);
        fns[ci] = tc_native_lib_sym(lib, sym);
      }
      const tc_kernel_def *def = tc_kernel_find(e->node->op_type, e->node->domain, e->opset);
      if (!def) {
        snprintf(e->reason, sizeof e->reason, "no built-in kernel to compare with");
        continue;
      }
      measure(e, fns, def, reps, a);
      decide(e);
    }
    tc_arena_free(a);
    tc_native_lib_close(lib);
    cache_append(o->cache, r->cpu_key, r);
  }
  free(specs);
  /* the library of the winners */
  n_specs = 0;
  tc_cg_spec *win = calloc(r->n_sigs + 1, sizeof *win);
  if (!win)
    return tc_cli_error("out of memory");
  for (size_t i = 0; i < r->n_sigs; i++) {
    sig_entry *e = &r->sigs[i];
    if (!e->winner)
      continue;
    tc_cg_spec *sp = &win[n_specs];
    *sp = e->spec;
    sp->width = e->c[e->winner].width;
    sp->unroll = e->c[e->winner].unroll;
    snprintf(sp->sym, sizeof sp->sym, "tck_%zu", n_specs);
    snprintf(e->sym, sizeof e->sym, "%s", sp->sym);
    n_specs++;
  }
  if (!n_specs) {
    snprintf(r->note, sizeof r->note, "no generated kernel was chosen: the model is unchanged");
    free(win);
    r->seconds = (now_us() - t_start) / 1e6;
    return 0;
  }
  if (tc_cg_build_library(win, n_specs, o->cpu, r->lib_tmp, why, sizeof why)) {
    free(win);
    return tc_cli_error("codegen: %s", why);
  }
  free(win);
  r->built = true;
  if (!tc_meta_file_sha256(r->lib_tmp, r->sha))
    return tc_cli_error("codegen: cannot read back %s", r->lib_tmp);
  /* bind the nodes: rerun the capture's matching by signature on each node */
  char features[512];
  tc_cg_cpu_features(o->cpu, features, sizeof features);
  rc = tc_meta_add(m, "ai.tacoc.kernels", r->lib_name) ||
       tc_meta_add(m, "ai.tacoc.kernels.sha256", r->sha) ||
       (features[0] && tc_meta_add(m, "ai.tacoc.kernels.features", features));
  for (size_t i = 0; !rc && i < r->n_sigs; i++) {
    sig_entry *e = &r->sigs[i];
    if (!e->winner)
      continue;
    tc_cg_spec sp = e->spec;
    sp.width = e->c[e->winner].width;
    sp.unroll = e->c[e->winner].unroll;
    sp.threads = e->c[e->winner].threads;
    snprintf(sp.sym, sizeof sp.sym, "%s", e->sym);
    char spec[256], key[600];
    tc_cg_spec_format(&sp, spec, sizeof spec);
    for (tc_node *n = m->graph->first; !rc && n; n = n->next) {
      bool mine = false;
      for (size_t k = 0; k < e->n_ids && !mine; k++)
        mine = e->ids[k] == n->id;
      if (!mine)
        continue;
      snprintf(key, sizeof key, "ai.tacoc.kernel:%s", n->name);
      rc = tc_meta_add(m, key, spec);
      r->n_bound++;
    }
  }
  if (rc)
    return tc_cli_error("out of memory");
  if (o->mode != TC_TUNE_OFF && native_cpu && whole_model_check(m, r))
    return TC_EXIT_ERROR;
  r->seconds = (now_us() - t_start) / 1e6;
  return 0;
}

int tc_tune_commit(const tc_tune_result *r, bool discard) {
  return r && r->built ? tc_meta_commit_file(r->lib_tmp, r->lib_final, discard) : 0;
}

static const char *mode_name(tc_tune_mode m) {
  return m == TC_TUNE_FULL ? "full" : m == TC_TUNE_FAST ? "fast" : "off";
}

void tc_tune_print(const tc_tune_result *r, FILE *f) {
  if (!r)
    return;
  fprintf(f,
          "\n  codegen cpu (%s), --tune %s: %zu candidate nodes, %zu signatures, %zu nodes bound, "
          "%.1f s\n",
          r->cpu_key, mode_name(r->o.mode), r->n_candidates, r->n_sigs, r->n_bound, r->seconds);
  for (size_t i = 0; i < r->n_sigs; i++) {
    const sig_entry *e = &r->sigs[i];
    fprintf(f, "  %-60s x%-3zu %-8s %s\n", e->key, e->n_ids, e->c[e->winner].name, e->reason);
  }
  if (r->model_checked)
    fprintf(f, "  whole model: %.3f ms built-in, %.3f ms with generated kernels (median)\n",
            r->model_ms_builtin, r->model_ms_native);
  if (r->n_algos)
    fprintf(f, "  convolution and GEMM algorithms (%zu signatures):\n", r->n_algos);
  for (size_t i = 0; i < r->n_algos; i++) {
    const algo_sig *e = &r->algos[i];
    fprintf(f, "  %-72s x%-3zu %-8s", e->key, e->n_ids,
            e->choice ? algo_name(e, e->choice) : "default");
    if (e->measured || e->cached)
      fprintf(f, " %s %.0f us, %s %.0f us:", algo_name(e, 1), e->alg_us[0], algo_name(e, 2),
              e->alg_us[1]);
    fprintf(f, " %s\n", e->reason);
  }
  if (r->algo_checked)
    fprintf(f,
            "  whole model: %.3f ms with the default rule, %.3f ms with the %zu nodes' choices "
            "that differ from it: %s\n",
            r->algo_ms_auto, r->algo_ms_tuned, r->n_algo_meta[0] + r->n_algo_meta[1],
            r->algo_kept ? "recorded" : "not recorded");
  else if (r->algo_note[0])
    fprintf(f, "  %s\n", r->algo_note);
  if (r->layout_checked)
    fprintf(f, "  layout: %.3f ms with %zu values channels-last, %.3f ms all plain: %s\n",
            r->layout_ms_cl, r->layout_values, r->layout_ms_plain,
            r->layout_plain ? "plain recorded" : "channels-last kept");
  if (r->thr_n) {
    fprintf(f, "  threads:");
    for (int c = 0; c < r->thr_n; c++)
      fprintf(f, " %d: %.4g ms%s", r->thr_count[c], r->thr_ms[c], c + 1 < r->thr_n ? "," : "");
    fprintf(f, " (median): %d %s\n", r->thr_chosen,
            r->thr_recorded ? "recorded" : "kept (the default)");
  }
  if (r->note[0])
    fprintf(f, "  %s\n", r->note);
  else if (r->built)
    fprintf(f, "  kernel library: %s (sha256 %.16s...)\n", r->lib_final, r->sha);
}

void tc_tune_json(const tc_tune_result *r, tc_json *j) {
  tc_json_key(j, "tuning");
  if (!r) {
    tc_json_null(j);
    return;
  }
  tc_json_begin_object(j);
  tc_json_key(j, "mode");
  tc_json_string(j, mode_name(r->o.mode));
  tc_json_key(j, "cpu");
  tc_json_string(j, r->cpu_key);
  tc_json_key(j, "library");
  tc_json_string(j, r->built ? r->lib_name : NULL);
  tc_json_key(j, "sha256");
  tc_json_string(j, r->built ? r->sha : NULL);
  tc_json_key(j, "nodes_bound");
  tc_json_uint(j, r->n_bound);
  tc_json_key(j, "seconds");
  tc_json_double(j, r->seconds);
  tc_json_key(j, "whole_model");
  if (r->model_checked) {
    tc_json_begin_object(j);
    tc_json_key(j, "builtin_ms");
    tc_json_double(j, r->model_ms_builtin);
    tc_json_key(j, "generated_ms");
    tc_json_double(j, r->model_ms_native);
    tc_json_key(j, "kept");
    tc_json_bool(j, r->kept);
    tc_json_end_object(j);
  } else {
    tc_json_null(j);
  }
  tc_json_key(j, "note");
  tc_json_string(j, r->note[0] ? r->note : NULL);
  tc_json_key(j, "layout");
  if (r->layout_checked) {
    tc_json_begin_object(j);
    tc_json_key(j, "channels_last_values");
    tc_json_uint(j, r->layout_values);
    tc_json_key(j, "channels_last_ms");
    tc_json_double(j, r->layout_ms_cl);
    tc_json_key(j, "plain_ms");
    tc_json_double(j, r->layout_ms_plain);
    tc_json_key(j, "chosen");
    tc_json_string(j, r->layout_plain ? "plain" : "channels_last");
    tc_json_end_object(j);
  } else {
    tc_json_null(j);
  }
  tc_json_key(j, "threads");
  if (r->thr_n) {
    tc_json_begin_object(j);
    tc_json_key(j, "candidates");
    tc_json_begin_array(j);
    for (int c = 0; c < r->thr_n; c++) {
      tc_json_begin_object(j);
      tc_json_key(j, "threads");
      tc_json_uint(j, (size_t)r->thr_count[c]);
      tc_json_key(j, "median_ms");
      tc_json_double(j, r->thr_ms[c]);
      tc_json_end_object(j);
    }
    tc_json_end_array(j);
    tc_json_key(j, "chosen");
    tc_json_uint(j, (size_t)r->thr_chosen);
    tc_json_key(j, "recorded");
    tc_json_bool(j, r->thr_recorded);
    tc_json_end_object(j);
  } else {
    tc_json_null(j);
  }
  json_algos(j, r, false);
  json_algos(j, r, true);
  tc_json_key(j, "decisions");
  tc_json_begin_array(j);
  for (size_t i = 0; i < r->n_sigs; i++) {
    const sig_entry *e = &r->sigs[i];
    tc_json_begin_object(j);
    tc_json_key(j, "signature");
    tc_json_string(j, e->key);
    tc_json_key(j, "op");
    tc_json_string(j, e->node->op_type);
    tc_json_key(j, "nodes");
    tc_json_uint(j, e->n_ids);
    tc_json_key(j, "winner");
    tc_json_string(j, e->c[e->winner].name);
    tc_json_key(j, "cached");
    tc_json_bool(j, e->cached);
    tc_json_key(j, "reason");
    tc_json_string(j, e->reason);
    tc_json_key(j, "candidates");
    tc_json_begin_array(j);
    for (size_t ci = 0; ci < e->n_c; ci++) {
      const cand *c = &e->c[ci];
      tc_json_begin_object(j);
      tc_json_key(j, "name");
      tc_json_string(j, c->name);
      tc_json_key(j, "median_us");
      if (c->measured)
        tc_json_double(j, c->med_us);
      else
        tc_json_null(j);
      tc_json_key(j, "spread_us");
      if (c->measured && !e->cached)
        tc_json_double(j, c->spread_us);
      else
        tc_json_null(j);
      tc_json_end_object(j);
    }
    tc_json_end_array(j);
    tc_json_end_object(j);
  }
  tc_json_end_array(j);
  tc_json_end_object(j);
}

const tc_report_tuning *tc_tune_report(tc_tune_result *r) {
  if (!r)
    return NULL;
  free(r->rep_d);
  free(r->rep_c);
  r->rep_d = calloc(r->n_sigs + 1, sizeof *r->rep_d);
  r->rep_c = calloc(r->n_sigs * MAX_CANDS + 1, sizeof *r->rep_c);
  if (!r->rep_d || !r->rep_c)
    return NULL;
  for (size_t i = 0; i < r->n_sigs; i++) {
    const sig_entry *e = &r->sigs[i];
    tc_report_tune_cand *c = r->rep_c + i * MAX_CANDS;
    for (size_t k = 0; k < e->n_c; k++)
      c[k] = (tc_report_tune_cand){e->c[k].name, e->c[k].measured ? e->c[k].med_us : NAN};
    r->rep_d[i] = (tc_report_tune_decision){.signature = e->key,
                                            .op = e->node->op_type,
                                            .winner = e->c[e->winner].name,
                                            .reason = e->reason,
                                            .nodes = e->n_ids,
                                            .cached = e->cached,
                                            .cands = c,
                                            .n_cands = e->n_c};
  }
  r->rep = (tc_report_tuning){.mode = mode_name(r->o.mode),
                              .cpu = r->cpu_key,
                              .library = r->built ? r->lib_name : NULL,
                              .note = r->note[0] ? r->note : NULL,
                              .model_checked = r->model_checked,
                              .builtin_ms = r->model_ms_builtin,
                              .generated_ms = r->model_ms_native,
                              .d = r->rep_d,
                              .n = r->n_sigs};
  return &r->rep;
}

void tc_tune_result_free(tc_tune_result *r) {
  if (!r)
    return;
  tc_tune_result_free_sigs(r);
  free_chains(r);
  free(r->rep_d);
  free(r->rep_c);
  free(r);
}
