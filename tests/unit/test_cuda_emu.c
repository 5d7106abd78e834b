/* The generated CUDA kernels' logic without a GPU: the CUDA C that
 * codegen/cuda writes for every variant (kinds, activations, LayerNorm
 * flags, float32 / float16 / bfloat16, row lengths with and without vector
 * tails, rows in registers and streamed) is compiled by the host C++
 * compiler after tests/unit/cuda_emu.hpp (one OS thread per CUDA thread,
 * barriers for __syncthreads and warp shuffles) and run with the launch
 * geometry of runtime/culib.h on random inputs, against the double-precision
 * reference of the ONNX definition; likewise the CUDA backend's fixed
 * kernels (runtime/cuda/kernels.cuh: broadcasting binary ops, the attention
 * softmax with masks, the embedding sum + LayerNorm, casts, im2col, the pools). What only a GPU can
 * show (and tests/gpu/test_cuda checks there) is not covered: the device compiler, memory
 * alignment, timing. */
#include <dlfcn.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "cu_variants.h"
#include "cucg.h"
#include "kernel.h"
#include "kernels.h"

extern char **environ;

typedef int (*launch_fn)(void (*fn)(const tc_cu_args), unsigned grid, unsigned block,
                         const void *args);

static uint64_t rng = 0x2545f4914f6cdd1dull;
static double uniform(void) { /* xorshift64, [-1, 1) */
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (double)(rng >> 11) / (double)(1ull << 53) * 2.0 - 1.0;
}

/* n random values of type dt (scale s) in a 16-byte aligned buffer, and
 * their rounded values. */
static void *fill(int dt, size_t n, double s, double *val) {
  void *b = aligned_alloc(16, (n * cu_esize(dt) + 15) / 16 * 16 + 16);
  for (size_t i = 0; b && i < n; i++) {
    cu_put(dt, b, i, uniform() * s);
    val[i] = cu_get(dt, b, i);
  }
  return b;
}

static double worst[3];

static bool check_variant(launch_fn launch, void *kernel, const tc_cg_spec *sp, int64_t rows) {
  int dt = sp->dtype;
  size_t c = (size_t)sp->cols, n = (size_t)rows * c;
  bool skip = sp->kind == TC_CG_LAYERNORM && (sp->flags & TC_CG_F_SKIP);
  double *xv = malloc(n * sizeof *xv), *sv = malloc(n * sizeof *sv), *gv = malloc(c * sizeof *gv),
         *bv = malloc(c * sizeof *bv), *want = malloc(n * sizeof *want),
         *want_sum = malloc(n * sizeof *want_sum);
  void *x = fill(dt, n, sp->kind == TC_CG_SOFTMAX ? 8 : 3, xv), *s = fill(dt, skip ? n : c, 1, sv),
       *g = fill(dt, c, 1, gv), *b = fill(dt, c, 1, bv), *y = fill(dt, n, 0, want),
       *sum = fill(dt, n, 0, want_sum);
  bool ok = xv && sv && gv && bv && want && want_sum && x && s && g && b && y && sum;
  CHECK(ok);
  if (ok) {
    tc_cu_args a = {.in = {x, s, g, b}, .out = {y, sum}, .eps = 1e-5f, .rows = rows};
    /* bias_act: a small grid so that the grid-stride loop wraps */
    unsigned grid = sp->kind == TC_CG_BIAS_ACT ? 3 : (unsigned)rows;
    ok = launch((void (*)(const tc_cu_args))kernel, grid, (unsigned)tc_cu_block(sp), &a) == 0;
    CHECK(ok);
  }
  if (ok) {
    cu_ref_rows(sp, rows, xv, sv, gv, bv, 1e-5, want, want_sum);
    double rtol = dt == 1 ? 2e-5 : dt == 10 ? 2e-3 : 1.6e-2, atol = dt == 1 ? 2e-6 : 2e-3;
    char what[160];
    tc_cg_spec_format(sp, what, sizeof what);
    for (size_t i = 0; ok && i < n; i++) {
      for (int o = 0; o < ((sp->flags & TC_CG_F_SUM) ? 2 : 1) && ok; o++) {
        double got = cu_get(dt, o ? sum : y, i), w = o ? want_sum[i] : want[i];
        double e = fabs(got - w), rel = e / (fabs(w) + atol);
        int di = dt == 10 ? 1 : dt == 16 ? 2 : 0;
        if (rel > worst[di])
          worst[di] = rel;
        if (!(e <= atol + rtol * fabs(w))) {
          fprintf(stderr, "%s: %s element %zu: emulated %.9g, reference %.9g\n", what,
                  o ? "sum" : "y", i, got, w);
          ok = false;
        }
      }
    }
    CHECK(ok);
  }
  free(xv), free(sv), free(gv), free(bv), free(want), free(want_sum);
  free(x), free(s), free(g), free(b), free(y), free(sum);
  return ok;
}

/* Compiles cpp into the shared object so with the host C++ compiler, c++
 * or else clang++ (the repository's CUDA headers on the include path). */
static int compile(const char *cpp, const char *so) {
  char *argv[] = {"c++",
                  "-std=c++17",
                  "-O1",
                  "-w",
                  "-shared",
                  "-fPIC",
                  "-pthread",
                  "-Itests/unit",
                  "-Icodegen/cuda",
                  "-Iruntime/cuda",
                  "-o",
                  (char *)so,
                  (char *)cpp,
                  NULL};
  pid_t pid;
  if (posix_spawnp(&pid, "c++", NULL, NULL, argv, environ)) {
    argv[0] = "clang++"; /* the one tools/deps.sh installs, where no c++ is set up */
    if (posix_spawnp(&pid, "clang++", NULL, NULL, argv, environ))
      return -1;
  }
  int status = 0;
  return waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) ? -1 : 0;
}

static void test_generated_kernels_emulated(void) {
  static tc_cg_spec specs[CU_N_VARIANTS];
  size_t n = cu_variants(specs, CU_N_VARIANTS);
  char *src = tc_cu_source(specs, n);
  char dir[] = "/tmp/tacoc-cuemu-XXXXXX", cpp[64], so[64], shim[4096];
  CHECK(src && mkdtemp(dir) && realpath("tests/unit/cuda_emu.hpp", shim));
  snprintf(cpp, sizeof cpp, "%s/k.cpp", dir);
  snprintf(so, sizeof so, "%s/k.so", dir);
  FILE *f = fopen(cpp, "w");
  CHECK(f != NULL);
  if (!f || !src) {
    free(src);
    return;
  }
  fprintf(f, "#include \"%s\"\n%s\nTC_EMU_DEFINE_LAUNCH()\n", shim, src);
  fclose(f);
  free(src);
  int rc = compile(cpp, so);
  CHECK(rc == 0);
  void *h = rc ? NULL : dlopen(so, RTLD_NOW | RTLD_LOCAL);
  if (!rc && !h)
    fprintf(stderr, "%s\n", dlerror());
  launch_fn launch = h ? (launch_fn)dlsym(h, "tc_emu_launch") : NULL;
  CHECK(launch != NULL);
  size_t passed = 0;
  for (size_t i = 0; launch && i < n; i++) {
    void *k = dlsym(h, specs[i].sym);
    CHECK(k != NULL);
    int64_t rows = specs[i].cols > 1000 ? 2 : 5;
    passed += k && check_variant(launch, k, &specs[i], rows);
  }
  CHECK(passed == n);
  printf("  %zu of %zu generated CUDA kernel variants match the reference under emulation; worst "
         "error / (|reference| + atol): float32 %.2g, float16 %.2g, bfloat16 %.2g\n",
         passed, n, worst[0], worst[1], worst[2]);
  if (h)
    dlclose(h);
  unlink(cpp);
  unlink(so);
  rmdir(dir);
}

typedef int (*binary_fn)(int dtype, int op, const void *a, const void *b, void *y, int rank,
                         const long long *dims, const long long *sa, const long long *sb);
typedef int (*softmax_fn)(int dtype, const float *scores, const void *mask, void *probs,
                          const tc_attn_rows *p);

/* Broadcasting binary ops: the output dims, each operand's strides. */
static bool check_binary(binary_fn fn, int dt, int op, int rank, const long long *dims,
                         const long long *sa, const long long *sb) {
  long long n = 1, na = 1, nb = 1;
  for (int d = 0; d < rank; d++) {
    n *= dims[d];
    na += (dims[d] - 1) * sa[d]; /* one past the largest offset */
    nb += (dims[d] - 1) * sb[d];
  }
  double *av = malloc((size_t)na * sizeof *av), *bv = malloc((size_t)nb * sizeof *bv),
         *yv = malloc((size_t)n * sizeof *yv);
  void *a = fill(dt, (size_t)na, 3, av), *b = fill(dt, (size_t)nb, 3, bv),
       *y = fill(dt, (size_t)n, 0, yv);
  bool ok = av && bv && yv && a && b && y;
  for (long long i = 0; ok && op == TC_BIN_DIV && i < nb; i++) /* keep divisors away from 0 */
    if (fabs(bv[i]) < 0.25) {
      cu_put(dt, b, (size_t)i, 0.5);
      bv[i] = cu_get(dt, b, (size_t)i);
    }
  ok = ok && fn(dt, op, a, b, y, rank, dims, sa, sb) == 0;
  double rtol = dt == 1 ? 1e-6 : dt == 10 ? 1e-3 : 8e-3;
  for (long long i = 0; ok && i < n; i++) {
    long long r = i, oa = 0, ob = 0;
    for (int d = rank - 1; d >= 0; d--) {
      oa += r % dims[d] * sa[d];
      ob += r % dims[d] * sb[d];
      r /= dims[d];
    }
    double x = av[oa], z = bv[ob];
    double w = op == TC_BIN_ADD   ? x + z
               : op == TC_BIN_SUB ? x - z
               : op == TC_BIN_MUL ? x * z
                                  : x / z;
    double got = cu_get(dt, y, (size_t)i);
    if (!(fabs(got - w) <= rtol * (fabs(w) + 1e-3))) {
      fprintf(stderr, "binary op %d dtype %d element %lld: emulated %.9g, reference %.9g\n", op, dt,
              i, got, w);
      ok = false;
    }
  }
  free(av), free(bv), free(yv), free(a), free(b), free(y);
  return ok;
}

/* The attention softmax against a double reference: scores [B, H, Sq, Skv]
 * plus the mask (kind 1 additive of dtype, 2 boolean) through p's strides,
 * causal masking, rows with every key masked giving zeros. zero_row >= 0
 * masks every key of that mask row (boolean masks). */
static bool check_attn_softmax(softmax_fn fn, int dt, tc_attn_rows p, long long mask_elems,
                               long long zero_row) {
  size_t n = (size_t)(p.B * p.H * p.Sq * p.Skv);
  float *sc = malloc(n * sizeof *sc);
  double *mv = malloc((size_t)(mask_elems ? mask_elems : 1) * sizeof *mv),
         *pv = malloc(n * sizeof *pv), *row = malloc((size_t)p.Skv * sizeof *row);
  void *mask = NULL, *probs = fill(dt, n, 0, pv);
  bool ok = sc && mv && pv && row && probs;
  for (size_t i = 0; ok && i < n; i++)
    sc[i] = (float)(uniform() * 4);
  if (ok && p.mask_kind == 1) {
    mask = fill(dt, (size_t)mask_elems, 1, mv);
    for (long long i = 0; mask && i < mask_elems; i += 3) { /* some positions padded away */
      cu_put(dt, mask, (size_t)i, -10000);
      mv[i] = cu_get(dt, mask, (size_t)i);
    }
  } else if (ok && p.mask_kind == 2) {
    mask = malloc((size_t)mask_elems);
    for (long long i = 0; mask && i < mask_elems; i++)
      ((unsigned char *)mask)[i] = i % 4 != 1 && i / p.Skv != zero_row;
  }
  ok = ok && (p.mask_kind == 0 || mask) && fn(dt, sc, mask, probs, &p) == 0;
  double rtol = dt == 1 ? 2e-6 : dt == 10 ? 1e-3 : 8e-3;
  for (long long r = 0; ok && r < p.B * p.H * p.Sq; r++) {
    long long i = r % p.Sq, h = (r / p.Sq) % p.H, b = r / (p.Sq * p.H);
    long long moff = b * p.ms[0] + h * p.ms[1] + i * p.ms[2];
    double m = -INFINITY, sum = 0;
    for (long long j = 0; j < p.Skv; j++) {
      double v = sc[r * p.Skv + j];
      if (p.mask_kind == 1)
        v += mv[moff + j * p.ms[3]];
      else if (p.mask_kind == 2 && !((unsigned char *)mask)[moff + j * p.ms[3]])
        v = -INFINITY;
      if (p.causal && j > i)
        v = -INFINITY;
      row[j] = v;
      m = fmax(m, v);
    }
    for (long long j = 0; j < p.Skv; j++)
      sum += isinf(m) ? 0 : exp(row[j] - m);
    for (long long j = 0; j < p.Skv && ok; j++) {
      double w = isinf(m) ? 0 : exp(row[j] - m) / sum;
      double got = cu_get(dt, probs, (size_t)(r * p.Skv + j));
      if (!(fabs(got - w) <= rtol * fabs(w) + 1e-6)) {
        fprintf(stderr,
                "attention softmax dtype %d mask %d causal %d row %lld key %lld: emulated %.9g, "
                "reference %.9g\n",
                dt, p.mask_kind, p.causal, r, j, got, w);
        ok = false;
      }
    }
  }
  free(row), free(sc), free(mv), free(pv), free(mask), free(probs);
  return ok;
}

typedef int (*embed_fn)(const long long *ids, const long long *seg, const float *w, const float *p,
                        const float *t, const float *g, const float *b, float *y, long long rows,
                        long long S, long long H, float eps);

/* The embedding sum + LayerNorm of B x S tokens of width H (segments when
 * n_types > 0) against a double reference. */
static bool check_embed_ln(embed_fn fn, long long B, long long S, long long H, long long n_types) {
  long long vocab = 50, rows = B * S;
  double *tmp = malloc((size_t)(vocab * H) * sizeof *tmp);
  float *w = fill(1, (size_t)(vocab * H), 1, tmp), *p = fill(1, (size_t)(S * H), 1, tmp),
        *t = n_types ? fill(1, (size_t)(n_types * H), 1, tmp) : NULL,
        *g = fill(1, (size_t)H, 1, tmp), *b = fill(1, (size_t)H, 1, tmp),
        *y = fill(1, (size_t)(rows * H), 0, tmp);
  long long *ids = malloc((size_t)rows * sizeof *ids), *seg = malloc((size_t)rows * sizeof *seg);
  bool ok = tmp && w && p && g && b && y && ids && seg && (!n_types || t);
  for (long long r = 0; ok && r < rows; r++) {
    ids[r] = (r * 7 + 3) % vocab;
    seg[r] = n_types ? r % n_types : 0;
  }
  ok = ok && fn(ids, n_types ? seg : NULL, w, p, t, g, b, y, rows, S, H, 1e-12f) == 0;
  for (long long r = 0; ok && r < rows; r++) {
    double mean = 0, var = 0;
    for (long long c = 0; c < H; c++)
      tmp[c] = (double)w[ids[r] * H + c] + p[(r % S) * H + c] + (n_types ? t[seg[r] * H + c] : 0);
    for (long long c = 0; c < H; c++)
      mean += tmp[c];
    mean /= (double)H;
    for (long long c = 0; c < H; c++)
      var += (tmp[c] - mean) * (tmp[c] - mean);
    var /= (double)H;
    for (long long c = 0; c < H && ok; c++) {
      double want = (tmp[c] - mean) / sqrt(var + 1e-12) * g[c] + b[c], got = y[r * H + c];
      if (!(fabs(got - want) <= 2e-5 * (fabs(want) + 0.1))) {
        fprintf(stderr, "embed_ln H=%lld token %lld column %lld: emulated %.9g, reference %.9g\n",
                H, r, c, got, want);
        ok = false;
      }
    }
  }
  free(tmp), free(w), free(p), free(t), free(g), free(b), free(y), free(ids), free(seg);
  return ok;
}

typedef int (*cast_fn)(int from, int to, const void *x, void *y, long long n);

/* Every pair of float32 / float16 / bfloat16: the emulated kernel rounds
 * like libtacort's conversions (exactly: both round to nearest even). */
static bool check_casts(cast_fn fn) {
  bool ok = true;
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 3; b++) {
      int from = cu_variant_dtypes[a], to = cu_variant_dtypes[b];
      size_t n = 1000;
      double *xv = malloc(n * sizeof *xv), *yv = malloc(n * sizeof *yv);
      void *x = fill(from, n, 70000, xv), *y = fill(to, n, 0, yv); /* beyond float16's range too */
      bool good = xv && yv && x && y && fn(from, to, x, y, (long long)n) == 0;
      for (size_t i = 0; good && i < n; i++) {
        double want = cu_get(to, y, i), got;
        cu_put(to, y, i, xv[i]); /* libtacort's rounding of the same value */
        got = want;
        want = cu_get(to, y, i);
        if (!(got == want || (isnan(got) && isnan(want)))) {
          fprintf(stderr, "cast %d -> %d element %zu (%.9g): emulated %.9g, libtacort %.9g\n", from,
                  to, i, xv[i], got, want);
          good = false;
        }
      }
      ok &= good;
      free(xv), free(yv), free(x), free(y);
    }
  return ok;
}

typedef int (*im2col_fn)(int dtype, const void *x, void *col, const tc_im2col *p);

/* im2col against a direct reading of the definition; OH/OW from the
 * convolution's size formula. */
static bool check_im2col(im2col_fn fn, int dt, tc_im2col p) {
  p.OH = (p.H + 2 * p.ph - p.dh * (p.KH - 1) - 1) / p.sh + 1;
  p.OW = (p.W + 2 * p.pw - p.dw * (p.KW - 1) - 1) / p.sw + 1;
  size_t nx = (size_t)(p.N * p.C * p.H * p.W), P = (size_t)(p.OH * p.OW),
         rows = (size_t)(p.C * p.KH * p.KW), nc = (size_t)p.N * rows * P;
  double *xv = malloc(nx * sizeof *xv), *cv = malloc(nc * sizeof *cv);
  void *x = fill(dt, nx, 1, xv), *col = fill(dt, nc, 1, cv); /* col starts non-zero */
  bool ok = xv && cv && x && col && fn(dt, x, col, &p) == 0;
  for (size_t i = 0; ok && i < nc; i++) {
    size_t pos = i % P, row = i / P % rows, n = i / (P * rows);
    long long kw = (long long)row % p.KW, kh = (long long)row / p.KW % p.KH,
              c = (long long)row / (p.KW * p.KH), oh = (long long)pos / p.OW,
              ow = (long long)pos % p.OW;
    long long ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
    double want = ih >= 0 && ih < p.H && iw >= 0 && iw < p.W
                      ? xv[(((long long)n * p.C + c) * p.H + ih) * p.W + iw]
                      : 0.0;
    if (cu_get(dt, col, i) != want) {
      fprintf(stderr, "im2col element %zu: emulated %g, reference %g\n", i, cu_get(dt, col, i),
              want);
      ok = false;
    }
  }
  free(xv), free(cv), free(x), free(col);
  return ok;
}

typedef int (*maxpool_fn)(const float *x, float *y, const tc_im2col *p);
typedef int (*gavg_fn)(const float *x, float *y, long long planes, long long len);

/* MaxPool (float32) against the definition; OH/OW from the floor formula. */
static bool check_maxpool(maxpool_fn fn, tc_im2col p) {
  p.OH = (p.H + 2 * p.ph - p.dh * (p.KH - 1) - 1) / p.sh + 1;
  p.OW = (p.W + 2 * p.pw - p.dw * (p.KW - 1) - 1) / p.sw + 1;
  size_t nx = (size_t)(p.N * p.C * p.H * p.W), ny = (size_t)(p.N * p.C * p.OH * p.OW);
  double *xv = malloc(nx * sizeof *xv), *yv = malloc(ny * sizeof *yv);
  float *x = fill(1, nx, 5, xv), *y = fill(1, ny, 0, yv);
  bool ok = xv && yv && x && y && fn(x, y, &p) == 0;
  for (size_t i = 0; ok && i < ny; i++) {
    long long ow = (long long)i % p.OW, oh = (long long)i / p.OW % p.OH,
              plane = (long long)i / (p.OW * p.OH);
    double m = -INFINITY;
    for (long long kh = 0; kh < p.KH; kh++)
      for (long long kw = 0; kw < p.KW; kw++) {
        long long ih = oh * p.sh - p.ph + kh * p.dh, iw = ow * p.sw - p.pw + kw * p.dw;
        if (ih >= 0 && ih < p.H && iw >= 0 && iw < p.W)
          m = fmax(m, xv[(plane * p.H + ih) * p.W + iw]);
      }
    if (y[i] != m) {
      fprintf(stderr, "maxpool element %zu: emulated %g, reference %g\n", i, y[i], m);
      ok = false;
    }
  }
  free(xv), free(yv), free(x), free(y);
  return ok;
}

static bool check_gavgpool(gavg_fn fn, long long planes, long long len) {
  double *xv = malloc((size_t)(planes * len) * sizeof *xv), *yv = malloc((size_t)planes * 8);
  float *x = fill(1, (size_t)(planes * len), 3, xv), *y = fill(1, (size_t)planes, 0, yv);
  bool ok = xv && yv && x && y && fn(x, y, planes, len) == 0;
  for (long long i = 0; ok && i < planes; i++) {
    double want = 0;
    for (long long j = 0; j < len; j++)
      want += xv[i * len + j];
    want /= (double)len;
    if (!(fabs(y[i] - want) <= 1e-5 * (fabs(want) + 0.1))) {
      fprintf(stderr, "global average pool plane %lld: emulated %g, reference %g\n", i, y[i], want);
      ok = false;
    }
  }
  free(xv), free(yv), free(x), free(y);
  return ok;
}

static void test_fixed_kernels_emulated(void) {
  char dir[] = "/tmp/tacoc-cuemu-XXXXXX", so[64];
  CHECK(mkdtemp(dir) != NULL);
  snprintf(so, sizeof so, "%s/fixed.so", dir);
  int rc = compile("tests/unit/cuda_emu_kernels.cpp", so);
  CHECK(rc == 0);
  void *h = rc ? NULL : dlopen(so, RTLD_NOW | RTLD_LOCAL);
  binary_fn bin = h ? (binary_fn)dlsym(h, "emu_binary") : NULL;
  softmax_fn sm = h ? (softmax_fn)dlsym(h, "emu_attn_softmax") : NULL;
  embed_fn emb = h ? (embed_fn)dlsym(h, "emu_embed_ln") : NULL;
  cast_fn cast = h ? (cast_fn)dlsym(h, "emu_cast") : NULL;
  im2col_fn i2c = h ? (im2col_fn)dlsym(h, "emu_im2col") : NULL;
  maxpool_fn mp = h ? (maxpool_fn)dlsym(h, "emu_maxpool") : NULL;
  gavg_fn gap = h ? (gavg_fn)dlsym(h, "emu_gavgpool") : NULL;
  CHECK(bin && sm && emb && cast && i2c && mp && gap);
  if (mp) { /* ResNet's 3x3 stride 2 pad 1; 2x2 stride 2; dilated */
    CHECK(check_maxpool(mp, (tc_im2col){.N = 2,
                                        .C = 3,
                                        .H = 11,
                                        .W = 12,
                                        .KH = 3,
                                        .KW = 3,
                                        .sh = 2,
                                        .sw = 2,
                                        .ph = 1,
                                        .pw = 1,
                                        .dh = 1,
                                        .dw = 1}));
    CHECK(check_maxpool(
        mp,
        (tc_im2col){
            .N = 1, .C = 2, .H = 8, .W = 6, .KH = 2, .KW = 2, .sh = 2, .sw = 2, .dh = 1, .dw = 1}));
    CHECK(check_maxpool(mp, (tc_im2col){.N = 1,
                                        .C = 2,
                                        .H = 9,
                                        .W = 9,
                                        .KH = 2,
                                        .KW = 3,
                                        .sh = 1,
                                        .sw = 2,
                                        .ph = 1,
                                        .pw = 0,
                                        .dh = 2,
                                        .dw = 2}));
  }
  if (gap) { /* 7x7 planes; planes longer than a block */
    CHECK(check_gavgpool(gap, 6, 49));
    CHECK(check_gavgpool(gap, 3, 1000));
  }
  for (int dt = 0; i2c && dt < 2; dt++) { /* 3x3 pad 1; 7x7 stride 2 pad 3; dilated; 1x1 stride 2 */
    int t = cu_variant_dtypes[dt];
    CHECK(check_im2col(i2c, t,
                       (tc_im2col){.N = 2,
                                   .C = 3,
                                   .H = 5,
                                   .W = 6,
                                   .KH = 3,
                                   .KW = 3,
                                   .sh = 1,
                                   .sw = 1,
                                   .ph = 1,
                                   .pw = 1,
                                   .dh = 1,
                                   .dw = 1}));
    CHECK(check_im2col(i2c, t,
                       (tc_im2col){.N = 1,
                                   .C = 2,
                                   .H = 9,
                                   .W = 11,
                                   .KH = 7,
                                   .KW = 7,
                                   .sh = 2,
                                   .sw = 2,
                                   .ph = 3,
                                   .pw = 3,
                                   .dh = 1,
                                   .dw = 1}));
    CHECK(check_im2col(i2c, t,
                       (tc_im2col){.N = 2,
                                   .C = 2,
                                   .H = 8,
                                   .W = 7,
                                   .KH = 3,
                                   .KW = 2,
                                   .sh = 1,
                                   .sw = 2,
                                   .ph = 2,
                                   .pw = 0,
                                   .dh = 2,
                                   .dw = 3}));
    CHECK(check_im2col(i2c, t,
                       (tc_im2col){.N = 2,
                                   .C = 4,
                                   .H = 6,
                                   .W = 6,
                                   .KH = 1,
                                   .KW = 1,
                                   .sh = 2,
                                   .sw = 2,
                                   .ph = 0,
                                   .pw = 0,
                                   .dh = 1,
                                   .dw = 1}));
  }
  CHECK(cast && check_casts(cast));
  if (emb) { /* BERT-like width; an odd width, shorter than a block, with segments */
    CHECK(check_embed_ln(emb, 2, 5, 768, 0));
    CHECK(check_embed_ln(emb, 3, 4, 37, 2));
  }
  for (int dt = 0; bin && dt < 3; dt++) {
    int t = cu_variant_dtypes[dt];
    /* [2, 3, 4] + [4] (a bias row) */
    long long d1[] = {2, 3, 4}, a1[] = {12, 4, 1}, b1[] = {0, 0, 1};
    CHECK(check_binary(bin, t, TC_BIN_ADD, 3, d1, a1, b1));
    /* [2, 1, 4] op [3, 1] -> [2, 3, 4] */
    long long a2[] = {4, 0, 1}, b2[] = {0, 1, 0};
    for (int op = TC_BIN_SUB; op <= TC_BIN_DIV; op++)
      CHECK(check_binary(bin, t, op, 3, d1, a2, b2));
    /* 1000 elements times a scalar: the grid-stride loop wraps */
    long long d3[] = {1000}, a3[] = {1}, b3[] = {0};
    CHECK(check_binary(bin, t, TC_BIN_MUL, 1, d3, a3, b3));
  }
  for (int dt = 0; sm && dt < 3; dt++) {
    int t = cu_variant_dtypes[dt];
    /* no mask; a padding mask [B, 1, 1, Skv]; a boolean mask [B, 1, Sq, Skv] with a row of
     * every key masked, keys longer than a block; causal with an additive [Sq, Skv] mask */
    tc_attn_rows none = {.B = 2, .H = 3, .Sq = 5, .Skv = 7};
    CHECK(check_attn_softmax(sm, t, none, 0, -1));
    tc_attn_rows pad = {.B = 2, .H = 3, .Sq = 5, .Skv = 7, .ms = {7, 0, 0, 1}, .mask_kind = 1};
    CHECK(check_attn_softmax(sm, t, pad, 14, -1));
    tc_attn_rows bm = {
        .B = 2, .H = 3, .Sq = 5, .Skv = 300, .ms = {1500, 0, 300, 1}, .mask_kind = 2};
    CHECK(check_attn_softmax(sm, t, bm, 3000, 7));
    tc_attn_rows causal = {
        .B = 1, .H = 2, .Sq = 6, .Skv = 6, .ms = {0, 0, 6, 1}, .mask_kind = 1, .causal = 1};
    CHECK(check_attn_softmax(sm, t, causal, 36, -1));
  }
  if (h)
    dlclose(h);
  unlink(so);
  rmdir(dir);
}

int main(void) {
  RUN(test_generated_kernels_emulated);
  RUN(test_fixed_kernels_emulated);
  return SUMMARY("test_cuda_emu");
}
