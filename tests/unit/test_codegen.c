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

int main(void) {
  model = tc_model_new_empty();
  graph = model->graph = tc_graph_new(model, NULL, "g");
  RUN(test_spec_strings);
  RUN(test_bad_spec_refused);
  RUN(test_library_bytes_checked);
  RUN(test_kernels_match_reference);
  tc_model_free(model);
  return SUMMARY("codegen");
}
