/* The generated CUDA kernels' logic without a GPU: the CUDA C that
 * codegen/cuda writes for every variant (kinds, activations, LayerNorm
 * flags, float32 / float16 / bfloat16, row lengths with and without vector
 * tails, rows in registers and streamed) is compiled by the host C++
 * compiler after tests/unit/cuda_emu.hpp (one OS thread per CUDA thread,
 * barriers for __syncthreads and warp shuffles) and run with the launch
 * geometry of runtime/culib.h on random inputs, against the double-precision
 * reference of the ONNX definition. What only a GPU can show (and
 * tests/gpu/test_cuda checks there) is not covered: the device compiler,
 * memory alignment, timing. */
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

static int compile(const char *cpp, const char *so) {
  char *argv[] = {"c++",      "-std=c++17", "-O1",      "-w",        "-shared", "-fPIC",
                  "-pthread", "-o",         (char *)so, (char *)cpp, NULL};
  pid_t pid;
  if (posix_spawnp(&pid, "c++", NULL, NULL, argv, environ))
    return -1;
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

int main(void) {
  RUN(test_generated_kernels_emulated);
  return SUMMARY("test_cuda_emu");
}
