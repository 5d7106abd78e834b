/* CUDA code generation without a GPU: every kernel variant the generator has
 * (kinds, activations, LayerNorm flags, float32 / float16 / bfloat16, row
 * lengths with and without vector tails, register and streaming rows)
 * compiles with NVRTC to PTX and to CUBINs for sm_80 and sm_90, and every
 * kernel is in the output; the kernel library file round-trips and a damaged
 * one is refused; the launch geometry the launcher uses matches what the
 * kernels were built for. Running the kernels needs a GPU: tests/gpu. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cu_variants.h"
#include "cucg.h"
#include "culib.h"

static void test_geometry(void) {
  tc_cg_spec sp = {.kind = TC_CG_LAYERNORM, .cols = 768, .dtype = 1};
  CHECK(tc_cu_vec(&sp) == 4 && tc_cu_block(&sp) == 192 && tc_cu_per_thread(&sp) == 1);
  sp.dtype = 10; /* 8 halves per 16-byte vector: 96 vectors, 3 warps */
  CHECK(tc_cu_vec(&sp) == 8 && tc_cu_block(&sp) == 96 && tc_cu_per_thread(&sp) == 1);
  sp.cols = 17; /* no vectors: one element per load */
  CHECK(tc_cu_vec(&sp) == 1 && tc_cu_block(&sp) == 32 && tc_cu_per_thread(&sp) == 1);
  sp.dtype = 1;
  sp.cols = 20001; /* 20001 scalars over 512 threads: 40 per thread, streamed */
  CHECK(tc_cu_block(&sp) == 512 && tc_cu_per_thread(&sp) == 40);
  CHECK(tc_cu_per_thread(&sp) > TC_CU_MAX_PER);
  sp.cols = 4096; /* 1024 vectors: 2 per thread of 512, in registers */
  CHECK(tc_cu_block(&sp) == 512 && tc_cu_per_thread(&sp) == 2);
  sp.kind = TC_CG_BIAS_ACT;
  CHECK(tc_cu_block(&sp) == 256);
}

static void test_source_refuses_bad_specs(void) {
  tc_cg_spec sp = {.kind = TC_CG_SOFTMAX, .cols = 8, .width = 1, .unroll = 1};
  snprintf(sp.sym, sizeof sp.sym, "bad name");
  CHECK(tc_cu_source(&sp, 1) == NULL);
  snprintf(sp.sym, sizeof sp.sym, "ok");
  sp.dtype = 11; /* float64: not generated */
  CHECK(tc_cu_source(&sp, 1) == NULL);
  sp.dtype = 0;
  char *src = tc_cu_source(&sp, 1);
  CHECK(src && strstr(src, "void __launch_bounds__(32) ok(const tc_cu_args a)"));
  CHECK(src && strstr(src, "tc_softmax<float, 8LL, 4, 32, 1, true>(a);"));
  free(src);
}

/* The PTX names every kernel as an .entry; a CUBIN is an ELF. */
static void test_compile_all_variants(void) {
  static tc_cg_spec specs[600];
  size_t n = cu_variants(specs, 600);
  CHECK(n == CU_N_VARIANTS);
  char *src = tc_cu_source(specs, n);
  CHECK(src != NULL);
  if (!src)
    return;
  char why[4096];
  unsigned char *ptx = NULL;
  size_t size = 0;
  int rc = tc_cu_compile(src, TC_CU_PTX_ARCH, TC_CU_PTX, &ptx, &size, why, sizeof why);
  if (rc)
    fprintf(stderr, "%s\n", why);
  CHECK(rc == 0 && ptx && size > 1 && ptx[size - 1] == 0);
  size_t found = 0;
  for (size_t i = 0; ptx && i < n; i++) {
    char entry[80];
    snprintf(entry, sizeof entry, ".entry %s(", specs[i].sym);
    found += strstr((const char *)ptx, entry) != NULL;
  }
  CHECK(found == n);
  free(ptx);
  for (size_t a = 0; a < tc_cu_n_default_archs; a++) {
    unsigned char *bin = NULL;
    rc = tc_cu_compile(src, tc_cu_default_archs[a], TC_CU_CUBIN, &bin, &size, why, sizeof why);
    if (rc)
      fprintf(stderr, "%s\n", why);
    CHECK(rc == 0 && size > 64 && !memcmp(bin, "\177ELF", 4));
    /* the kernel names are in the ELF's string table */
    size_t named = 0;
    for (size_t i = 0; bin && i < n; i++)
      named += memmem(bin, size, specs[i].sym, strlen(specs[i].sym) + 1) != NULL;
    CHECK(named == n);
    free(bin);
  }
  free(src);
}

static void test_compile_error_is_reported(void) {
  char why[4096];
  unsigned char *out = (unsigned char *)1;
  size_t size = 1;
  CHECK(tc_cu_compile("__global__ void f() { undeclared(); }", 80, TC_CU_PTX, &out, &size, why,
                      sizeof why) != 0);
  CHECK(out == NULL && size == 0);
  CHECK(strstr(why, "compute_80") && strstr(why, "undeclared"));
}

static void test_library_file(void) {
  char dir[] = "/tmp/tacoc-cucg-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/k.tacocu", dir);
  tc_cg_spec sp[2] = {
      {.kind = TC_CG_LAYERNORM, .flags = TC_CG_F_BETA, .cols = 64, .sym = "ln"},
      {.kind = TC_CG_BIAS_ACT, .act = 1, .flags = TC_CG_F_BIAS, .cols = 5, .dtype = 10, .sym = "g"},
  };
  char why[4096];
  unsigned archs[] = {80, 86, 90};
  int rc = tc_cu_build_library(sp, 2, archs, 3, path, why, sizeof why);
  if (rc)
    fprintf(stderr, "%s\n", why);
  CHECK(rc == 0);
  FILE *f = fopen(path, "rb");
  CHECK(f != NULL);
  static unsigned char buf[1 << 20];
  size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f)
    fclose(f);
  CHECK(len > 16 && len < sizeof buf);
  tc_cu_entry e[8];
  size_t count = 0;
  CHECK(tc_culib_parse(buf, len, e, 8, &count, why, sizeof why));
  CHECK(count == 4);
  CHECK(count == 4 && e[0].kind == TC_CU_PTX && e[0].arch == 80 && e[1].kind == TC_CU_CUBIN &&
        e[1].arch == 80 && e[2].arch == 86 && e[3].arch == 90);
  CHECK(count == 4 && strstr((const char *)e[0].data, ".entry ln(") &&
        strstr((const char *)e[0].data, ".entry g("));
  /* which entry a device runs */
  CHECK(tc_culib_pick(e, count, 80) == &e[1]);
  CHECK(tc_culib_pick(e, count, 89) == &e[2]); /* sm_86 code runs on sm_89 */
  CHECK(tc_culib_pick(e, count, 90) == &e[3]);
  CHECK(tc_culib_pick(e, count, 100) == &e[0]); /* a newer major: the PTX, JIT-compiled */
  CHECK(tc_culib_pick(e, count, 75) == NULL);   /* older than every entry */
  /* damaged files */
  CHECK(!tc_culib_parse(buf, 10, e, 8, &count, why, sizeof why) && strstr(why, "header"));
  CHECK(!tc_culib_parse(buf, len - 9, e, 8, &count, why, sizeof why) && strstr(why, "entry 3"));
  unsigned char save = buf[16 + 4];
  buf[16 + 4] = 7; /* the first entry's kind */
  CHECK(!tc_culib_parse(buf, len, e, 8, &count, why, sizeof why) && strstr(why, "bad kind 7"));
  buf[16 + 4] = save;
  CHECK(tc_culib_parse(buf, len, e, 8, &count, why, sizeof why));
  /* a spec that cannot be generated leaves no file */
  remove(path);
  sp[1].dtype = 11;
  CHECK(tc_cu_build_library(sp, 2, archs, 1, path, why, sizeof why) != 0);
  CHECK(access(path, F_OK) != 0);
  rmdir(dir);
}

static void test_spec_dtype_round_trip(void) {
  tc_cg_spec sp = {.kind = TC_CG_SOFTMAX, .cols = 9, .width = 1, .unroll = 1, .dtype = 16};
  snprintf(sp.sym, sizeof sp.sym, "s");
  char buf[200];
  tc_cg_spec_format(&sp, buf, sizeof buf);
  CHECK(strstr(buf, " dtype=16 ") != NULL);
  tc_cg_spec back;
  CHECK(tc_cg_spec_parse(buf, &back) && back.dtype == 16 && back.cols == 9);
  sp.dtype = 1; /* float32 specs keep the string CPU libraries have always had */
  tc_cg_spec_format(&sp, buf, sizeof buf);
  CHECK(strstr(buf, "dtype") == NULL);
  CHECK(!tc_cg_spec_parse("kind=softmax cols=4 dtype=7 sym=s", &back));
}

int main(void) {
  char why[1500];
  if (!tc_nvrtc_available(why, sizeof why)) {
    /* The toolkit is a build dependency (Makefile CUDA_HOME): its absence is a failure. */
    fprintf(stderr, "NVRTC is not available: %s\n", why);
    printf("test_cucg: 0 passed, 1 failed\n");
    return 1;
  }
  RUN(test_geometry);
  RUN(test_source_refuses_bad_specs);
  RUN(test_spec_dtype_round_trip);
  RUN(test_compile_error_is_reported);
  RUN(test_library_file);
  RUN(test_compile_all_variants);
  return SUMMARY("test_cucg");
}
