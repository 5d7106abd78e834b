/* Generated kernels (codegen/cpu) against libtacort's reference kernels:
 * every kind and variant the generator has, vector widths 1/4/8/16 and
 * unroll 1/2, row lengths with and without vector tails, random inputs with
 * wide ranges (GELU tails, softmax masks), run through the same adapter
 * libtacort uses (tc_native_run). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cg.h"
#include "check.h"
#include "exec.h"
#include "kernel.h"
#include "native.h"

typedef struct kcase {
  const char *name, *op, *domain;
  int opset;
  size_t n_in, n_out;
  bool in_used[5], out_used[4];
  const char *attr; /* "approximate=tanh" or "epsilon" */
  double x_scale;
} kcase;

static const kcase cases[] = {
    {"BiasGelu", "BiasGelu", "ai.tacoc", 1, 2, 1, {1, 1}, {1}, NULL, 4.0},
    {"Gelu", "Gelu", "", 20, 1, 1, {1}, {1}, NULL, 4.0},
    {"Gelu-tanh", "Gelu", "", 20, 1, 1, {1}, {1}, "tanh", 4.0},
    {"Softmax", "Softmax", "", 13, 1, 1, {1}, {1}, NULL, 20.0},
    {"LayerNorm", "LayerNormalization", "", 17, 3, 1, {1, 1, 1}, {1}, "eps", 3.0},
    {"LayerNorm-nobeta", "LayerNormalization", "", 17, 2, 1, {1, 1}, {1}, "eps", 3.0},
    {"RMSNorm", "RMSNormalization", "", 23, 2, 1, {1, 1}, {1}, "eps", 3.0},
    {"SkipLN-sum", "SkipLayerNormalization", "ai.tacoc", 1, 4, 2, {1, 1, 1, 1}, {1, 1}, "eps", 3},
    {"SkipLN", "SkipLayerNormalization", "ai.tacoc", 1, 4, 1, {1, 1, 1, 1}, {1}, "eps", 3.0},
    {"SkipLN-nobeta", "SkipLayerNormalization", "ai.tacoc", 1, 3, 1, {1, 1, 1}, {1}, "eps", 3.0},
    {"SkipLN-ms-sum",
     "SkipLayerNormalization",
     "com.microsoft",
     1,
     4,
     4,
     {1, 1, 1, 1},
     {1, 0, 0, 1},
     "eps",
     3.0},
};
#define N_CASES (sizeof cases / sizeof cases[0])

static const int widths[] = {1, 4, 8, 16};
static const int unrolls[] = {1, 2};
static const int64_t colss[] = {1, 3, 16, 17, 64, 100, 773};
#define N_W 4
#define N_U 2
#define N_C 7
#define ROWS 5

static uint64_t rng = 88172645463325252ull;
static double uniform(void) { /* xorshift64, [-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

static tc_model *model;
static tc_graph *graph;

static tc_node *make_node(const kcase *kc) {
  tc_node *n = tc_graph_append_node(graph, kc->op, kc->domain, kc->name, kc->n_in, kc->n_out,
                                    kc->attr ? 1 : 0);
  for (size_t i = 0; i < kc->n_in; i++)
    if (kc->in_used[i])
      tc_node_set_input(n, i, tc_graph_new_temp(graph, "in"));
  for (size_t i = 0; i < kc->n_out; i++)
    if (kc->out_used[i])
      tc_node_set_output(n, i, tc_graph_new_temp(graph, "out"));
  if (kc->attr && !strcmp(kc->attr, "tanh"))
    tc_node_set_attr_string(n, 0, "approximate", "tanh");
  else if (kc->attr)
    tc_node_set_attr_float(n, 0, "epsilon", 1e-5f);
  return n;
}

/* Input i of a case for rows x cols: x and skip are [ROWS, cols], the
 * parameters [cols]. */
static tc_rt_tensor input(const kcase *kc, size_t i, int64_t cols, float *buf) {
  bool row = i == 0 || (i == 1 && !strncmp(kc->op, "Skip", 4));
  size_t n = row ? (size_t)(ROWS * cols) : (size_t)cols;
  for (size_t k = 0; k < n; k++) {
    double v = uniform() * (row ? kc->x_scale : 1.0);
    if (i == 0 && k % 29 == 7)
      v = -9.5; /* far GELU tail */
    if (i == 0 && !strcmp(kc->op, "Softmax") && k % 13 == 5)
      v = -1e9; /* a masked position */
    buf[k] = (float)v;
  }
  tc_rt_tensor t = {.dtype = TC_DTYPE_F32, .rank = row ? 2 : 1, .data = buf, .bytes = n * 4};
  t.dims[0] = row ? ROWS : cols;
  t.dims[1] = cols;
  return t;
}

static double max_err; /* worst error seen, for the summary */

static bool close_all(const tc_rt_tensor *got, const tc_rt_tensor *want, const char *what) {
  if (got->dtype != want->dtype || tc_rt_numel(got) != tc_rt_numel(want))
    return false;
  const float *g = got->data, *w = want->data;
  for (size_t i = 0; i < tc_rt_numel(want); i++) {
    double e = fabs((double)g[i] - (double)w[i]);
    if (e > max_err)
      max_err = e;
    if (!(e <= 1e-5 + 1e-5 * fabs((double)w[i]))) {
      fprintf(stderr, "%s: element %zu: generated %.9g, reference %.9g\n", what, i, g[i], w[i]);
      return false;
    }
  }
  return true;
}

/* Builds specs[0..n) into a library and loads it (NULL, checked, on failure). */
static tc_native_lib *build_lib(const tc_cg_spec *specs, size_t n) {
  char dir[] = "/tmp/tacoc-cg-XXXXXX", so[256], why[512];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(so, sizeof so, "%s/c.so", dir);
  int rc = tc_cg_build_library(specs, n, NULL, so, why, sizeof why);
  if (rc)
    fprintf(stderr, "build failed: %s\n", why);
  CHECK(rc == 0);
  size_t size = 0;
  unsigned char *bytes = tc_read_file(so, &size);
  unlink(so);
  rmdir(dir);
  tc_native_lib *lib = bytes ? tc_native_lib_open(bytes, size, why, sizeof why) : NULL;
  free(bytes);
  CHECK(lib != NULL);
  return lib;
}

static void test_kernels_match_reference(void) {
  char dir[] = "/tmp/tacoc-cg-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  static tc_cg_spec specs[N_CASES * N_W * N_U * N_C];
  size_t n = 0;
  tc_node *nodes[N_CASES];
  for (size_t c = 0; c < N_CASES; c++) {
    nodes[c] = make_node(&cases[c]);
    for (size_t w = 0; w < N_W; w++)
      for (size_t u = 0; u < N_U; u++)
        for (size_t k = 0; k < N_C; k++) {
          tc_cg_spec *sp = &specs[n];
          CHECK(tc_cg_node_spec(nodes[c], colss[k], sp));
          sp->width = widths[w];
          sp->unroll = unrolls[u];
          snprintf(sp->sym, sizeof sp->sym, "k_%zu", n);
          n++;
        }
  }
  char so[256], why[512];
  snprintf(so, sizeof so, "%s/k.so", dir);
  int rc = tc_cg_build_library(specs, n, NULL, so, why, sizeof why);
  if (rc)
    fprintf(stderr, "build failed: %s\n", why);
  CHECK(rc == 0);
  FILE *f = fopen(so, "rb");
  CHECK(f != NULL);
  if (!f)
    return;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *bytes = malloc((size_t)size);
  CHECK(fread(bytes, 1, (size_t)size, f) == (size_t)size);
  fclose(f);
  unlink(so);
  rmdir(dir);
  tc_native_lib *lib = tc_native_lib_open(bytes, (size_t)size, why, sizeof why);
  free(bytes);
  CHECK(lib != NULL);
  if (!lib)
    return;
  tc_arena *a = tc_arena_new();
  tc_diag diag = {0};
  size_t checked = 0;
  for (size_t s = 0; s < n; s++) {
    const tc_cg_spec *sp = &specs[s];
    size_t ci = s / (N_W * N_U * N_C);
    const kcase *kc = &cases[ci];
    tc_cg_row_fn fn = tc_native_lib_sym(lib, sp->sym);
    CHECK(fn != NULL);
    float *buf[5] = {0};
    tc_rt_tensor in_t[5];
    const tc_rt_tensor *in[5] = {0};
    for (size_t i = 0; i < kc->n_in; i++) {
      buf[i] = malloc((size_t)(ROWS * sp->cols) * sizeof(float));
      in_t[i] = input(kc, i, sp->cols, buf[i]);
      in[i] = kc->in_used[i] ? &in_t[i] : NULL;
    }
    const tc_kernel_def *d = tc_kernel_find(kc->op, kc->domain, kc->opset);
    CHECK(d != NULL);
    tc_rt_tensor want[4] = {0}, got[4] = {0};
    tc_kernel_ctx k = {.node = nodes[ci], .opset = kc->opset, .diag = &diag, .arena = a};
    CHECK(d && d->run(&k, in, kc->n_in, want, kc->n_out) == TC_STATUS_OK);
    tc_status st = TC_STATUS_INVALID;
    CHECK(fn && tc_native_run(&k, sp, fn, in, kc->n_in, got, kc->n_out, &st));
    CHECK(st == TC_STATUS_OK);
    char what[160];
    snprintf(what, sizeof what, "%s cols %lld width %d unroll %d", kc->name, (long long)sp->cols,
             sp->width, sp->unroll);
    for (size_t o = 0; o < kc->n_out; o++)
      if (kc->out_used[o])
        CHECK(close_all(&got[o], &want[o], what));
    /* rows [1, 3) only: rows 0, 3 and 4 stay as they were */
    if (fn && sp->cols == 17) {
      size_t total = (size_t)(ROWS * sp->cols);
      float *y = malloc(total * sizeof(float)), *sum = malloc(total * sizeof(float));
      for (size_t i = 0; i < total; i++)
        y[i] = sum[i] = 12345.0f;
      const float *pin[4] = {in[0]->data, NULL, NULL, NULL};
      for (size_t i = 1; i < kc->n_in && i < 4; i++)
        pin[strcmp(kc->op, "LayerNormalization") && strcmp(kc->op, "RMSNormalization") ? i
                                                                                       : i + 1] =
            in[i] ? in[i]->data : NULL;
      float *pout[2] = {y, sum};
      float params[2] = {1e-5f, 0};
      fn(pin, pout, params, 1, 3);
      bool kept = true;
      for (size_t i = 0; i < total; i++)
        if (i < (size_t)sp->cols || i >= (size_t)(3 * sp->cols))
          kept &= y[i] == 12345.0f;
      CHECK(kept);
      free(y);
      free(sum);
    }
    for (size_t i = 0; i < 5; i++)
      free(buf[i]);
    tc_arena_reset(a);
    checked++;
  }
  printf("codegen: %zu generated kernels checked against the reference, max abs error %.3g\n",
         checked, max_err);
  tc_arena_free(a);
  tc_native_lib_close(lib);
}

static void test_spec_strings(void) {
  tc_cg_spec sp = {.kind = TC_CG_LAYERNORM, .flags = 7, .cols = 768, .width = 16, .unroll = 2};
  snprintf(sp.sym, sizeof sp.sym, "tck_3");
  char buf[256];
  tc_cg_spec_format(&sp, buf, sizeof buf);
  CHECK(!strcmp(buf, "kind=layernorm act=0 flags=7 cols=768 width=16 unroll=2 sym=tck_3"));
  tc_cg_spec back;
  CHECK(tc_cg_spec_parse(buf, &back));
  CHECK(back.kind == sp.kind && back.flags == 7 && back.cols == 768 && back.width == 16 &&
        back.unroll == 2 && !strcmp(back.sym, "tck_3"));
  CHECK(!tc_cg_spec_parse("kind=conv cols=3 sym=x", &back));
  CHECK(!tc_cg_spec_parse("kind=softmax cols=-1 sym=x", &back));
  CHECK(!tc_cg_spec_parse("kind=softmax cols=8", &back));
  CHECK(!tc_cg_spec_parse("kind=softmax cols=8x sym=a", &back));
  CHECK(!tc_cg_spec_parse("kind=softmax cols=8 threads=3 sym=a", &back));
  sp.threads = 1;
  tc_cg_spec_format(&sp, buf, sizeof buf);
  CHECK(
      !strcmp(buf, "kind=layernorm act=0 flags=7 cols=768 width=16 unroll=2 threads=1 sym=tck_3"));
  CHECK(tc_cg_spec_parse(buf, &back) && back.threads == 1);
  /* chains: program hash, input kinds, and types only when not all float32 */
  tc_cg_spec ch = {.kind = TC_CG_EWCHAIN, .cols = 64, .width = 16, .unroll = 1};
  ch.prog = (tc_ew_prog){.n_in = 3, .hash = 0x0123456789abcdefull, .ins = "FSS", .types = "fff"};
  snprintf(ch.sym, sizeof ch.sym, "tck_0");
  tc_cg_spec_format(&ch, buf, sizeof buf);
  CHECK(!strcmp(buf,
                "kind=ewchain cols=64 width=16 unroll=1 prog=0123456789abcdef ins=FSS sym=tck_0"));
  memcpy(ch.prog.types, "fBB", 4);
  ch.prog.out_type = 'b';
  tc_cg_spec_format(&ch, buf, sizeof buf);
  CHECK(!strcmp(buf, "kind=ewchain cols=64 width=16 unroll=1 prog=0123456789abcdef ins=FSS "
                     "types=fBB out=b sym=tck_0"));
  CHECK(tc_cg_spec_parse(buf, &back) && back.kind == TC_CG_EWCHAIN &&
        back.prog.hash == ch.prog.hash && !strcmp(back.prog.ins, "FSS") && back.prog.n_in == 3 &&
        !strcmp(back.prog.types, "fBB") && back.prog.out_type == 'b');
  CHECK(!tc_cg_spec_parse("kind=ewchain cols=8 prog=12 ins=F sym=a", &back)); /* short hash */
  CHECK(!tc_cg_spec_parse("kind=ewchain cols=8 prog=0123456789abcdef sym=a", &back)); /* no ins */
  CHECK(!tc_cg_spec_parse("kind=ewchain cols=8 prog=0123456789abcdef ins=FX sym=a", &back));
  /* attention: the head shape and query length */
  tc_cg_spec at = {.kind = TC_CG_ATTENTION,
                   .flags = TC_CG_F_MASK,
                   .cols = 128,
                   .width = 16,
                   .unroll = 2,
                   .att_q = 128,
                   .att_d = 64,
                   .att_dv = 64,
                   .att_h = 12,
                   .att_kvh = 4};
  snprintf(at.sym, sizeof at.sym, "tck_9");
  tc_cg_spec_format(&at, buf, sizeof buf);
  CHECK(!strcmp(buf, "kind=attention act=0 flags=1 cols=128 q=128 d=64 dv=64 h=12 kvh=4 width=16 "
                     "unroll=2 sym=tck_9"));
  CHECK(tc_cg_spec_parse(buf, &back) && back.kind == TC_CG_ATTENTION && back.att_q == 128 &&
        back.att_d == 64 && back.att_dv == 64 && back.att_h == 12 && back.att_kvh == 4 &&
        back.cols == 128 && back.flags == TC_CG_F_MASK);
  CHECK(!tc_cg_spec_parse("kind=attention flags=0 cols=8 d=4 dv=4 h=2 kvh=2 sym=a", &back)); /* q */
  CHECK(!tc_cg_spec_parse("kind=attention flags=0 cols=8 q=8 d=4 dv=4 h=3 kvh=2 sym=a", &back));
}

static void test_bad_spec_refused(void) {
  tc_cg_spec sp = {.kind = TC_CG_SOFTMAX, .cols = 8, .width = 3, .unroll = 1};
  snprintf(sp.sym, sizeof sp.sym, "bad");
  char why[256] = "";
  CHECK(tc_cg_build_library(&sp, 1, NULL, "/tmp/tacoc-never.so", why, sizeof why) != 0);
  CHECK(strstr(why, "unsupported spec") != NULL);
  CHECK(access("/tmp/tacoc-never.so", F_OK) != 0);
}

static void test_library_bytes_checked(void) {
  char why[256] = "";
  const char junk[] = "not an ELF file";
  CHECK(tc_native_lib_open(junk, sizeof junk, why, sizeof why) == NULL);
  CHECK(strstr(why, "cannot load") != NULL);
  char hex[65];
  tc_sha256_hex("abc", 3, hex);
  CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

/* ---- elementwise chains ---- */

/* A chain test: ext inputs (kind letters F/R/S, R and S given with rank
 * rr / rs), nodes reading refs (0..n_ext-1 inputs, n_ext + i node i, -1
 * absent), one float attribute each at most. */
typedef struct cnode {
  const char *op, *domain;
  int in[3];
  const char *attr;
  float av;
} cnode;
typedef struct ccase {
  const char *name, *kinds;
  cnode nodes[13];
  double scale;
  const char *types; /* per input 'f' / 'b' / 'B', then the output's; NULL: all float32 */
} ccase;

static const ccase chains[] = {
    {"swiglu", "FF", {{"QuickGelu", "ai.tacoc", {0}, "alpha", 1.0f}, {"Mul", "", {2, 1}}}, 4},
    {"gelu-decomposed",
     "FSSS",
     {{"Div", "", {0, 1}},
      {"Erf", "", {4}},
      {"Add", "", {5, 2}},
      {"Mul", "", {0, 6}},
      {"Mul", "", {7, 3}}},
     4},
    {"bias-gelu-tanh-residual",
     "FRF",
     {{"Add", "", {0, 1}}, {"Gelu", "", {3}, "tanh"}, {"Sub", "", {4, 2}}},
     4},
    {"unary-a",
     "FR",
     {{"Neg", "", {0}},
      {"Abs", "", {2}},
      {"Sqrt", "", {3}},
      {"Relu", "", {0}},
      {"Add", "", {4, 5}},
      {"Sigmoid", "", {6}},
      {"Tanh", "", {0}},
      {"Max", "", {7, 8}},
      {"Min", "", {9, 1}},
      {"Exp", "", {10}},
      {"Reciprocal", "", {11}}},
     6},
    {"unary-b",
     "FSS",
     {{"HardSwish", "", {0}},
      {"LeakyRelu", "", {0}, "alpha", 0.1f},
      {"HardSigmoid", "", {0}, "alpha", 0.3f},
      {"Elu", "", {0}, "alpha", 0.7f},
      {"Add", "", {3, 4}},
      {"Add", "", {5, 6}},
      {"Clip", "", {7, 1, 2}},
      {"Clip", "", {9, 1, -1}},
      {"Mul", "", {8, 10}},
      {"Add", "", {11, 0}},
      {"Gelu", "", {12}},
      {"QuickGelu", "com.microsoft", {13}}},
     5},
    /* a QDQ residual block: DQ(a) + DQ(b) -> Relu -> Q, uint8 in and out */
    {"qdq-residual",
     "FFSSSSSS",
     {{"DequantizeLinear", "", {0, 2, 3}},
      {"DequantizeLinear", "", {1, 4, 5}},
      {"Add", "", {8, 9}},
      {"Relu", "", {10}},
      {"QuantizeLinear", "", {11, 6, 7}}},
     1,
     "BBfBfBfBB"},
    /* int8 without zero points in, int8 out with one */
    {"qdq-int8",
     "FSSS",
     {{"DequantizeLinear", "", {0, 1}}, {"Sigmoid", "", {4}}, {"QuantizeLinear", "", {5, 2, 3}}},
     1,
     "bffbb"},
    /* fake quantization inside a float chain */
    {"fake-quant",
     "FSS",
     {{"QuantizeLinear", "", {0, 1, 2}}, {"DequantizeLinear", "", {3, 1, 2}}, {"Sub", "", {0, 4}}},
     30,
     "ffBf"},
};
#define N_CHAINS (sizeof chains / sizeof chains[0])

static size_t chain_len(const ccase *cc) {
  size_t n = 0;
  while (n < 13 && cc->nodes[n].op)
    n++;
  return n;
}

/* Builds the case's nodes; v gets the values (inputs, then outputs). */
static tc_node *build_chain(const ccase *cc, tc_value **v) {
  size_t ne = strlen(cc->kinds), nn = chain_len(cc);
  for (size_t i = 0; i < ne; i++)
    v[i] = tc_graph_new_temp(graph, "cin");
  tc_node *last = NULL;
  for (size_t i = 0; i < nn; i++) {
    const cnode *c = &cc->nodes[i];
    static const char *const two[] = {"Add", "Sub", "Mul", "Div", "Max", "Min"};
    size_t n_in = !strcmp(c->op, "Clip") ? 3 : 1;
    if (strstr(c->op, "uantizeLinear")) /* Q or DQ, with or without a zero point */
      n_in = c->in[2] ? 3 : 2;
    for (size_t k = 0; k < sizeof two / sizeof two[0]; k++)
      n_in = strcmp(c->op, two[k]) ? n_in : 2;
    last = tc_graph_append_node(graph, c->op, c->domain, cc->name, n_in, 1, c->attr ? 1 : 0);
    for (size_t s = 0; s < n_in; s++)
      if (c->in[s] >= 0)
        tc_node_set_input(last, s, v[c->in[s]]);
    v[ne + i] = tc_graph_new_temp(graph, "cout");
    tc_node_set_output(last, 0, v[ne + i]);
    if (c->attr && !strcmp(c->attr, "tanh"))
      tc_node_set_attr_string(last, 0, "approximate", "tanh");
    else if (c->attr)
      tc_node_set_attr_float(last, 0, c->attr, c->av);
  }
  return last;
}

/* An input of kind k for rows x cols (R as [1, cols], S as [1]). */
static tc_rt_tensor chain_input(char k, char ty, int64_t cols, double scale, float *buf) {
  size_t n = k == 'F' ? (size_t)(ROWS * cols) : k == 'R' ? (size_t)cols : 1;
  for (size_t i = 0; i < n; i++)
    buf[i] = (float)(uniform() * scale);
  if (k == 'S')
    buf[0] = (float)(1.0 + fabs(uniform()));
  int32_t dt = ty == 'b' ? TC_DTYPE_I8 : ty == 'B' ? TC_DTYPE_U8 : TC_DTYPE_F32;
  if (dt != TC_DTYPE_F32) { /* whole int8 / uint8 range; zero points near the middle */
    for (size_t i = 0; i < n; i++) {
      int v = k == 'S' ? (ty == 'B' ? 120 : -7) + (int)(uniform() * 8) : (int)(uniform() * 128);
      if (ty == 'B')
        ((uint8_t *)buf)[i] = (uint8_t)(k == 'S' ? v : v + 127);
      else
        ((int8_t *)buf)[i] = (int8_t)v;
    }
  } else if (k == 'S' && scale == 1) { /* a quantization scale */
    buf[0] = (float)(0.01 + 0.04 * fabs(uniform()));
  }
  tc_rt_tensor t = {.dtype = dt,
                    .rank = k == 'S' ? 1 : 2,
                    .data = buf,
                    .bytes = n * (dt == TC_DTYPE_F32 ? 4 : 1)};
  t.dims[0] = k == 'F' ? ROWS : 1;
  t.dims[1] = k == 'S' ? 0 : cols;
  return t;
}

static void test_chains_match_reference(void) {
  static const int64_t ccols[] = {1, 3, 16, 17, 100};
  enum { NCC = 5 };
  static tc_cg_spec specs[N_CHAINS * N_W * N_U * NCC];
  static tc_ew_chain ch[N_CHAINS];
  static tc_value *vals[N_CHAINS][24];
  size_t n = 0;
  for (size_t c = 0; c < N_CHAINS; c++) {
    tc_node *root = build_chain(&chains[c], vals[c]);
    CHECK(tc_ew_chain_of(root, &ch[c]));
    CHECK(ch[c].n_nodes == chain_len(&chains[c]));
    CHECK(ch[c].prog.n_in == (int)strlen(chains[c].kinds));
    for (size_t w = 0; w < N_W; w++)
      for (size_t u = 0; u < N_U; u++)
        for (size_t k = 0; k < NCC; k++) {
          tc_cg_spec *sp = &specs[n];
          *sp = (tc_cg_spec){.kind = TC_CG_EWCHAIN,
                             .cols = ccols[k],
                             .width = widths[w],
                             .unroll = unrolls[u],
                             .prog = ch[c].prog};
          for (int i = 0; i < ch[c].prog.n_in; i++) /* kinds in the chain's input order */
            for (size_t e = 0; e < strlen(chains[c].kinds); e++)
              if (ch[c].in[i] == vals[c][e]) { /* a row of one element is a scalar */
                sp->prog.ins[i] =
                    chains[c].kinds[e] == 'R' && ccols[k] == 1 ? 'S' : chains[c].kinds[e];
                sp->prog.types[i] = chains[c].types ? chains[c].types[e] : 'f';
              }
          size_t ne = strlen(chains[c].kinds);
          sp->prog.out_type = chains[c].types ? chains[c].types[ne] : 'f';
          CHECK(tc_ew_types_ok(&sp->prog));
          snprintf(sp->sym, sizeof sp->sym, "c_%zu", n);
          n++;
        }
  }
  tc_native_lib *lib = build_lib(specs, n);
  if (!lib)
    return;
  tc_fast_kernels_set(false); /* the reference kernels */
  tc_arena *a = tc_arena_new();
  tc_diag diag = {0};
  size_t checked = 0;
  double worst = 0;
  for (size_t s = 0; s < n; s++) {
    const tc_cg_spec *sp = &specs[s];
    size_t c = s / (N_W * N_U * NCC), ne = strlen(chains[c].kinds);
    float *buf[TC_EW_MAX_IN] = {0};
    tc_rt_tensor in_t[TC_EW_MAX_IN];
    const tc_rt_tensor *by_val[24] = {0}, *in[TC_EW_MAX_IN] = {0};
    for (size_t e = 0; e < ne; e++) {
      buf[e] = malloc((size_t)(ROWS * sp->cols) * sizeof(float));
      in_t[e] = chain_input(chains[c].kinds[e], chains[c].types ? chains[c].types[e] : 'f',
                            sp->cols, chains[c].scale, buf[e]);
      by_val[e] = &in_t[e];
    }
    for (int i = 0; i < sp->prog.n_in; i++)
      for (size_t e = 0; e < ne; e++)
        if (ch[c].in[i] == vals[c][e])
          in[i] = &in_t[e];
    /* the reference: every node's own kernel in turn */
    tc_rt_tensor res[13];
    bool ok = true;
    for (size_t i = 0; i < ch[c].n_nodes && ok; i++) {
      const tc_node *q = ch[c].nodes[i];
      const tc_rt_tensor *qi[3] = {0};
      for (size_t k = 0; k < q->n_inputs; k++)
        for (size_t e = 0; q->inputs[k] && e < ne + i; e++)
          if (q->inputs[k] == vals[c][e])
            qi[k] = by_val[e];
      int64_t opset = tc_model_opset(model, q->domain);
      const tc_kernel_def *d = tc_kernel_find(q->op_type, q->domain, opset);
      tc_kernel_ctx k = {.node = q, .opset = opset, .diag = &diag, .arena = a};
      memset(&res[i], 0, sizeof res[i]);
      ok = d && d->run(&k, qi, q->n_inputs, &res[i], 1) == TC_STATUS_OK;
      by_val[ne + i] = &res[i];
    }
    CHECK(ok);
    tc_rt_tensor got = {0};
    tc_kernel_ctx k = {.node = ch[c].nodes[ch[c].n_nodes - 1], .diag = &diag, .arena = a};
    tc_status st = TC_STATUS_INVALID;
    tc_cg_row_fn fn = tc_native_lib_sym(lib, sp->sym);
    CHECK(fn && tc_native_chain_run(&k, sp, fn, in, &got, &st) && st == TC_STATUS_OK);
    char what[160];
    snprintf(what, sizeof what, "chain %s cols %lld width %d unroll %d", chains[c].name,
             (long long)sp->cols, sp->width, sp->unroll);
    double before = max_err;
    max_err = 0;
    if (ok && got.data)
      CHECK(got.dtype == TC_DTYPE_F32
                ? close_all(&got, &res[ch[c].n_nodes - 1], what)
                : got.dtype == res[ch[c].n_nodes - 1].dtype &&
                      got.bytes == res[ch[c].n_nodes - 1].bytes &&
                      !memcmp(got.data, res[ch[c].n_nodes - 1].data, got.bytes));
    worst = max_err > worst ? max_err : worst;
    max_err = before > max_err ? before : max_err;
    /* an input of another kind than the spec's does not fit */
    if (fn && sp->prog.ins[0] == 'F' && sp->cols > 1) {
      tc_rt_tensor odd = *in[0];
      odd.dims[1] = sp->cols - 1;
      odd.dims[0] = 1;
      const tc_rt_tensor *in2[TC_EW_MAX_IN];
      memcpy(in2, in, sizeof in2);
      in2[0] = &odd;
      CHECK(!tc_native_chain_fits(sp, in2));
    }
    for (size_t e = 0; e < ne; e++)
      free(buf[e]);
    tc_arena_reset(a);
    checked++;
  }
  tc_fast_kernels_set(true);
  printf("codegen: %zu generated chain kernels checked against the reference kernels, max abs "
         "error %.3g\n",
         checked, worst);
  tc_arena_free(a);
  tc_native_lib_close(lib);
}

/* A node op(a[, b]) -> y in the test graph, room for n_attrs attributes. */
static tc_node *op_node(const char *op, const char *name, tc_value *a, tc_value *b, tc_value *y,
                        size_t n_attrs) {
  tc_node *n = tc_graph_append_node(graph, op, "", name, b ? 2 : 1, 1, n_attrs);
  tc_node_set_input(n, 0, a);
  if (b)
    tc_node_set_input(n, 1, b);
  tc_node_set_output(n, 0, y);
  return n;
}

/* What a chain takes: not a value read outside it or a graph output, the
 * same program for the same graph, another hash for another attribute. */
static void test_chain_boundaries(void) {
  tc_value *x = tc_graph_new_temp(graph, "bx"), *t1 = tc_graph_new_temp(graph, "bt1"),
           *t2 = tc_graph_new_temp(graph, "bt2"), *t3 = tc_graph_new_temp(graph, "bt3"),
           *t4 = tc_graph_new_temp(graph, "bt4");
  tc_node *a = op_node("Sigmoid", "b_a", x, NULL, t1, 0);
  tc_node *b = op_node("Relu", "b_b", t1, NULL, t2, 0);
  op_node("Mul", "b_c", t2, x, t3, 0);
  tc_node *d = op_node("LeakyRelu", "b_d", t3, NULL, t4, 1);
  tc_node_set_attr_float(d, 0, "alpha", 0.2f);
  tc_ew_chain ch, again;
  CHECK(tc_ew_chain_of(d, &ch) && ch.n_nodes == 4 && ch.prog.n_in == 1 && ch.in[0] == x);
  CHECK(tc_ew_chain_of(d, &again) && again.prog.hash == ch.prog.hash);
  tc_node_set_attr_float(d, 0, "alpha", 0.3f);
  CHECK(tc_ew_chain_of(d, &again) && again.prog.hash != ch.prog.hash);
  /* t1 read outside the chain: the chain starts after it */
  tc_node *e = op_node("Softmax", "b_e", t1, NULL, tc_graph_new_temp(graph, "bt5"), 0);
  CHECK(tc_ew_chain_of(d, &ch) && ch.n_nodes == 3 && ch.nodes[0] == b && ch.in[0] == t1);
  /* a non-elementwise node ends nothing */
  CHECK(!tc_ew_chain_of(e, &ch));
  /* a single node is no chain */
  CHECK(!tc_ew_chain_of(a, &ch));
  /* a node reading only an initializer is computed when a session is made:
   * left out, and so is a chain it would end */
  static float wv[4] = {1, 2, 3, 4};
  static int64_t wd[1] = {4};
  tc_buffer *buf = tc_buffer_wrap_static(wv, sizeof wv);
  tc_arena_on_free(model->arena, (void (*)(void *))tc_buffer_unref, buf);
  tc_tensor *t = tc_arena_alloc(model->arena, sizeof *t);
  *t = (tc_tensor){.name = "cw",
                   .dtype = TC_DTYPE_F32,
                   .has_dtype = true,
                   .rank = 1,
                   .dims = wd,
                   .field = TC_FIELD_RAW,
                   .has_raw = true};
  t->data[TC_FIELD_RAW] = (tc_span){buf, 0, sizeof wv};
  tc_value *w = tc_graph_new_value(graph, "cw", NULL), *nw = tc_graph_new_temp(graph, "cnw"),
           *sw = tc_graph_new_temp(graph, "csw"), *y = tc_graph_new_temp(graph, "cy");
  tc_graph_add_init(graph, w, t);
  tc_node *neg = op_node("Neg", "c_neg", w, NULL, nw, 0);
  tc_node *sig = op_node("Sigmoid", "c_sig", nw, NULL, sw, 0);
  tc_node *mul = op_node("Mul", "c_mul", x, sw, y, 0);
  CHECK(!tc_ew_chain_of(sig, &ch)); /* constant itself */
  CHECK(!tc_ew_chain_of(mul, &ch)); /* its producers are constant: one node */
  tc_node_set_input(neg, 0, x);     /* no longer constant */
  CHECK(tc_ew_chain_of(mul, &ch) && ch.n_nodes == 3);
}

/* ---- attention ---- */

/* An attention case: Q [B, Sq, H*D], K [B, L, KVH*D], V [B, L, KVH*Dv],
 * an optional float mask of the given dims (rank 0: none), causal or not,
 * a scale attribute or the default. */
typedef struct acase {
  const char *name;
  int64_t B, Sq, L, H, KVH, D, Dv;
  size_t mrank;
  int64_t mdims[4];
  bool causal;
  float scale; /* 0: the default 1/sqrt(D) */
} acase;

static const acase acases[] = {
    {"odd sizes", 2, 5, 7, 3, 3, 5, 6, 0, {0}, false, 0},
    {"BERT-like mask", 1, 33, 33, 4, 4, 64, 64, 4, {1, 1, 33, 33}, false, 0},
    {"GQA, mask over keys", 2, 3, 40, 4, 2, 8, 8, 4, {2, 1, 1, 40}, false, 0.3f},
    {"causal, 2-D mask", 1, 17, 17, 2, 2, 16, 12, 2, {17, 17}, true, 0},
    {"causal", 1, 20, 20, 1, 1, 3, 3, 0, {0}, true, 0},
    {"per-head mask", 2, 9, 18, 3, 3, 32, 20, 4, {2, 3, 9, 18}, false, 0},
};
#define N_AC (sizeof acases / sizeof acases[0])
static const int att_unrolls[] = {1, 2, 4};

static tc_rt_tensor rand_tensor(size_t rank, const int64_t *dims, double scale) {
  tc_rt_tensor t = {.dtype = TC_DTYPE_F32, .rank = rank};
  size_t n = 1;
  for (size_t d = 0; d < rank; d++)
    n *= (size_t)(t.dims[d] = dims[d]);
  float *v = malloc(n * sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = (float)(uniform() * scale);
  t.data = v;
  t.bytes = n * sizeof *v;
  return t;
}

static tc_node *attention_node(const acase *ac) {
  tc_node *n = tc_graph_append_node(graph, "Attention", "", ac->name, ac->mrank ? 4 : 3, 1,
                                    ac->scale ? 4 : 3);
  for (size_t i = 0; i < (ac->mrank ? 4u : 3u); i++)
    tc_node_set_input(n, i, tc_graph_new_temp(graph, "in"));
  tc_node_set_output(n, 0, tc_graph_new_temp(graph, "out"));
  tc_node_set_attr_int(n, 0, "q_num_heads", ac->H);
  tc_node_set_attr_int(n, 1, "kv_num_heads", ac->KVH);
  tc_node_set_attr_int(n, 2, "is_causal", ac->causal);
  if (ac->scale)
    tc_node_set_attr_float(n, 3, "scale", ac->scale);
  return n;
}

/* Every case at widths 1/4/8/16 and unroll 1/2/4 (2, 4, 8 query rows at a
 * time) against libtacort's Attention kernel: masks of several broadcasts
 * with a fully masked query row, keys not a multiple of the width, GQA,
 * causal, head sizes that leave vector tails. */
static void test_attention_matches_reference(void) {
  static tc_cg_spec specs[N_AC * N_W * 3];
  tc_node *nodes[N_AC];
  size_t n = 0;
  for (size_t c = 0; c < N_AC; c++) {
    const acase *ac = &acases[c];
    nodes[c] = attention_node(ac);
    int64_t qd[3] = {ac->B, ac->Sq, ac->H * ac->D}, kd[3] = {ac->B, ac->L, ac->KVH * ac->D},
            vd[3] = {ac->B, ac->L, ac->KVH * ac->Dv};
    for (size_t w = 0; w < N_W; w++)
      for (size_t u = 0; u < 3; u++) {
        tc_cg_spec *sp = &specs[n];
        CHECK(tc_cg_attention_spec(nodes[c], sp));
        CHECK(tc_cg_attention_dims(nodes[c], qd, kd, vd, sp));
        CHECK(sp->flags == ((ac->mrank ? TC_CG_F_MASK : 0) | (ac->causal ? TC_CG_F_CAUSAL : 0)));
        sp->width = widths[w];
        sp->unroll = att_unrolls[u];
        snprintf(sp->sym, sizeof sp->sym, "a_%zu", n);
        n++;
      }
  }
  tc_native_lib *lib = build_lib(specs, n);
  if (!lib)
    return;
  tc_arena *a = tc_arena_new();
  tc_diag diag = {0};
  const tc_kernel_def *def = tc_kernel_find("Attention", "", 23);
  CHECK(def != NULL);
  size_t checked = 0;
  double worst = 0;
  for (size_t s = 0; s < n && def; s++) {
    const tc_cg_spec *sp = &specs[s];
    const acase *ac = &acases[s / (N_W * 3)];
    int64_t qd[3] = {ac->B, ac->Sq, ac->H * ac->D}, kd[3] = {ac->B, ac->L, ac->KVH * ac->D},
            vd[3] = {ac->B, ac->L, ac->KVH * ac->Dv};
    tc_rt_tensor t[4] = {rand_tensor(3, qd, 2.0), rand_tensor(3, kd, 2.0), rand_tensor(3, vd, 1.0)};
    const tc_rt_tensor *in[4] = {&t[0], &t[1], &t[2], NULL};
    if (ac->mrank) {
      t[3] = rand_tensor(ac->mrank, ac->mdims, 1.0);
      float *m = t[3].data;
      size_t L = (size_t)ac->L, nm = tc_rt_numel(&t[3]);
      for (size_t i = 0; i < nm; i += 7)
        m[i] = -10000.0f; /* BERT's padding value */
      if (nm >= 2 * L && !ac->causal)
        for (size_t j = 0; j < L; j++)
          m[L + j] = -INFINITY; /* a fully masked query row (of the mask's second row) */
      in[3] = &t[3];
    }
    tc_kernel_ctx k = {.node = nodes[s / (N_W * 3)], .opset = 23, .diag = &diag, .arena = a};
    tc_rt_tensor want = {0}, got = {0};
    CHECK(def->run(&k, in, ac->mrank ? 4 : 3, &want, 1) == TC_STATUS_OK);
    tc_status st = TC_STATUS_INVALID;
    tc_cg_row_fn fn = tc_native_lib_sym(lib, sp->sym);
    CHECK(fn && tc_native_run(&k, sp, fn, in, ac->mrank ? 4 : 3, &got, 1, &st));
    CHECK(st == TC_STATUS_OK);
    if (st == TC_STATUS_OK && got.data && tc_rt_numel(&got) == tc_rt_numel(&want)) {
      const float *g = got.data, *wv = want.data;
      for (size_t i = 0; i < tc_rt_numel(&want); i++) {
        double e = fabs((double)g[i] - (double)wv[i]);
        worst = e > worst ? e : worst;
        if (!(e <= 1e-5 + 1e-5 * fabs((double)wv[i]))) {
          fprintf(stderr,
                  "attention %s width %d unroll %d element %zu: generated %.9g, reference %.9g\n",
                  ac->name, sp->width, sp->unroll, i, g[i], wv[i]);
          CHECK(false);
          break;
        }
      }
      checked++;
    } else {
      CHECK(false);
    }
    /* a boolean mask, or other sizes than the spec's, run the built-in kernel */
    if (ac->mrank && sp->width == 16 && sp->unroll == 1) {
      tc_rt_tensor bm = t[3];
      bm.dtype = TC_DTYPE_BOOL;
      const tc_rt_tensor *bin[4] = {in[0], in[1], in[2], &bm};
      tc_rt_tensor none = {0};
      CHECK(!tc_native_run(&k, sp, fn, bin, 4, &none, 1, &st));
      tc_cg_spec other = *sp;
      other.cols++;
      CHECK(!tc_native_run(&k, &other, fn, in, 4, &none, 1, &st));
      CHECK(!tc_native_run(&k, sp, fn, in, 3, &none, 1, &st)); /* the mask left out */
    }
    for (int i = 0; i < 4; i++)
      free(t[i].data);
    tc_arena_reset(a);
  }
  printf("codegen: %zu attention kernels checked against the reference, max abs error %.3g\n",
         checked, worst);
  tc_arena_free(a);
  tc_native_lib_close(lib);
}

int main(void) {
  model = tc_model_new_empty();
  graph = model->graph = tc_graph_new(model, NULL, "g");
  tc_model_set_opset(model, "", 20);
  tc_model_set_opset(model, "ai.tacoc", 1);
  tc_model_set_opset(model, "com.microsoft", 1);
  RUN(test_spec_strings);
  RUN(test_bad_spec_refused);
  RUN(test_library_bytes_checked);
  RUN(test_kernels_match_reference);
  RUN(test_chains_match_reference);
  RUN(test_chain_boundaries);
  RUN(test_attention_matches_reference);
  tc_model_free(model);
  return SUMMARY("codegen");
}
