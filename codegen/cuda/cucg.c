/* CUDA code generation and NVRTC compilation (cucg.h).
 *
 * The kernels are C++ templates in a fixed prelude (below); each spec adds
 * one extern "C" kernel instantiating its template with the spec's row
 * length, element type, vector width, block size and flags as compile-time
 * constants, so NVRTC sees fully specialized code (unrolled loops over a
 * known number of 16-byte vectors, no run-time shape arithmetic).
 *
 * Row kernels (LayerNorm, Softmax) run one block per row. A row that fits in
 * registers (at most TC_CU_MAX_PER vectors per thread) is read once; longer
 * rows are read again in each pass. Reductions are warp shuffles, then one
 * value per warp through shared memory. All arithmetic is float32; float16 /
 * bfloat16 rows are converted on load and rounded to nearest even on store.
 * Numerics follow libtacort's reference kernels: two-pass mean / variance,
 * max-subtracted softmax with expf, erf GELU with erff. */
#include "cucg.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nvrtc.h>

const unsigned tc_cu_default_archs[] = {80, 90};
const size_t tc_cu_n_default_archs = sizeof tc_cu_default_archs / sizeof *tc_cu_default_archs;

/* The kernels' templates: codegen/cuda/prelude.cuh, made a C string at
 * build time (build/gen/cuda_prelude.inc). */
static const char prelude[] =
#include "cuda_prelude.inc"
    ;

static const char *type_name(int dtype) {
  return dtype == 10 ? "__half" : dtype == 16 ? "__nv_bfloat16" : "float";
}

static bool valid_sym(const char *s) {
  if (!s[0] || (s[0] >= '0' && s[0] <= '9'))
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_'))
      return false;
  return true;
}

char *tc_cu_source(const tc_cg_spec *specs, size_t n) {
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if (!f)
    return NULL;
  bool ok = fputs(prelude, f) >= 0;
  for (size_t i = 0; ok && i < n; i++) {
    const tc_cg_spec *sp = &specs[i];
    int dt = sp->dtype ? sp->dtype : 1;
    if (!valid_sym(sp->sym) || sp->cols <= 0 || (dt != 1 && dt != 10 && dt != 16)) {
      ok = false;
      break;
    }
    int vec = tc_cu_vec(sp), nt = tc_cu_block(sp), per = tc_cu_per_thread(sp);
    bool reg = per <= TC_CU_MAX_PER;
    const char *t = type_name(dt);
    fprintf(f, "extern \"C\" __global__ void __launch_bounds__(%d) %s(const tc_cu_args a) {\n  ",
            nt, sp->sym);
    switch (sp->kind) {
    case TC_CG_BIAS_ACT:
      fprintf(f, "tc_bias_act<%s, %lldLL, %d, %d, %d>(a);\n", t, (long long)sp->cols, vec, sp->act,
              sp->flags & TC_CG_F_BIAS);
      break;
    case TC_CG_LAYERNORM:
      fprintf(f, "tc_layernorm<%s, %lldLL, %d, %d, %d, %s, %d>(a);\n", t, (long long)sp->cols, vec,
              nt, reg ? per : 1, reg ? "true" : "false", sp->flags);
      break;
    case TC_CG_SOFTMAX:
      fprintf(f, "tc_softmax<%s, %lldLL, %d, %d, %d, %s>(a);\n", t, (long long)sp->cols, vec, nt,
              reg ? per : 1, reg ? "true" : "false");
      break;
    default: ok = false;
    }
    ok = ok && fputs("}\n", f) >= 0;
  }
  if (fclose(f) || !ok) {
    free(buf);
    return NULL;
  }
  return buf;
}

/* ---- NVRTC, loaded at run time ---- */

static struct {
  bool tried, ok;
  char why[1400];
  char include[600]; /* "-I<toolkit>/include" */
  __typeof__(nvrtcCreateProgram) *create;
  __typeof__(nvrtcCompileProgram) *compile;
  __typeof__(nvrtcDestroyProgram) *destroy;
  __typeof__(nvrtcGetProgramLogSize) *log_size;
  __typeof__(nvrtcGetProgramLog) *log;
  __typeof__(nvrtcGetPTXSize) *ptx_size;
  __typeof__(nvrtcGetPTX) *ptx;
  __typeof__(nvrtcGetCUBINSize) *cubin_size;
  __typeof__(nvrtcGetCUBIN) *cubin;
  __typeof__(nvrtcGetErrorString) *error_string;
} nv;

static bool file_exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static bool nvrtc_load(void) {
  if (nv.tried)
    return nv.ok;
  nv.tried = true;
  const char *home = getenv("TACOC_CUDA_HOME");
  if (!home || !*home)
    home = "/usr/local/cuda";
  char path[600], hdr[600];
  snprintf(hdr, sizeof hdr, "%s/include/cuda_fp16.h", home);
  if (!file_exists(hdr)) {
    snprintf(nv.why, sizeof nv.why,
             "the CUDA toolkit's headers are not at %s/include (set TACOC_CUDA_HOME)", home);
    return false;
  }
  snprintf(nv.include, sizeof nv.include, "-I%s/include", home);
  snprintf(path, sizeof path, "%s/lib64/libnvrtc.so", home);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    h = dlopen("libnvrtc.so", RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(nv.why, sizeof nv.why, "cannot load NVRTC (%s or libnvrtc.so): %s", path, dlerror());
    return false;
  }
#define SYM(field, name)                                                                           \
  if (!(*(void **)&nv.field = dlsym(h, #name))) {                                                  \
    snprintf(nv.why, sizeof nv.why, "NVRTC has no %s", #name);                                     \
    return false;                                                                                  \
  }
  SYM(create, nvrtcCreateProgram)
  SYM(compile, nvrtcCompileProgram)
  SYM(destroy, nvrtcDestroyProgram)
  SYM(log_size, nvrtcGetProgramLogSize)
  SYM(log, nvrtcGetProgramLog)
  SYM(ptx_size, nvrtcGetPTXSize)
  SYM(ptx, nvrtcGetPTX)
  SYM(cubin_size, nvrtcGetCUBINSize)
  SYM(cubin, nvrtcGetCUBIN)
  SYM(error_string, nvrtcGetErrorString)
#undef SYM
  nv.ok = true;
  return true;
}

bool tc_nvrtc_available(char *why, size_t cap) {
  if (nvrtc_load())
    return true;
  snprintf(why, cap, "%s", nv.why);
  return false;
}

int tc_cu_compile(const char *src, unsigned arch, unsigned kind, unsigned char **out, size_t *size,
                  char *why, size_t cap) {
  *out = NULL;
  *size = 0;
  if (!nvrtc_load()) {
    snprintf(why, cap, "%s", nv.why);
    return -1;
  }
  nvrtcProgram p;
  nvrtcResult r = nv.create(&p, src, "tacoc_kernels.cu", 0, NULL, NULL);
  if (r != NVRTC_SUCCESS) {
    snprintf(why, cap, "NVRTC: %s", nv.error_string(r));
    return -1;
  }
  char arch_opt[48];
  snprintf(arch_opt, sizeof arch_opt, "--gpu-architecture=%s_%u",
           kind == TC_CU_PTX ? "compute" : "sm", arch);
  const char *opts[] = {arch_opt, "--std=c++17", nv.include};
  r = nv.compile(p, 3, opts);
  if (r != NVRTC_SUCCESS) {
    size_t n = 0;
    char *log = NULL;
    if (nv.log_size(p, &n) == NVRTC_SUCCESS && n && (log = malloc(n)) &&
        nv.log(p, log) != NVRTC_SUCCESS)
      log[0] = 0;
    snprintf(why, cap, "NVRTC (%s): %s: %s", arch_opt, nv.error_string(r), log ? log : "");
    free(log);
    nv.destroy(&p);
    return -1;
  }
  size_t n = 0;
  r = kind == TC_CU_PTX ? nv.ptx_size(p, &n) : nv.cubin_size(p, &n);
  unsigned char *b = r == NVRTC_SUCCESS && n ? malloc(n) : NULL;
  if (b)
    r = kind == TC_CU_PTX ? nv.ptx(p, (char *)b) : nv.cubin(p, (char *)b);
  nv.destroy(&p);
  if (!b || r != NVRTC_SUCCESS) {
    free(b);
    snprintf(why, cap, "NVRTC (%s): %s", arch_opt,
             b ? nv.error_string(r) : "out of memory or empty output");
    return -1;
  }
  *out = b;
  *size = n;
  return 0;
}

int tc_cu_build_library(const tc_cg_spec *specs, size_t n, const unsigned *archs, size_t n_archs,
                        const char *path, char *why, size_t cap) {
  char *src = tc_cu_source(specs, n);
  if (!src) {
    snprintf(why, cap, "cannot generate CUDA C for these kernels (bad spec or out of memory)");
    return -1;
  }
  tc_cu_entry e[1 + 16];
  size_t ne = 0;
  int rc = 0;
  if (n_archs > 16)
    n_archs = 16;
  for (size_t i = 0; i <= n_archs && !rc; i++) {
    unsigned char *b;
    size_t sz;
    unsigned arch = i ? archs[i - 1] : TC_CU_PTX_ARCH, kind = i ? TC_CU_CUBIN : TC_CU_PTX;
    rc = tc_cu_compile(src, arch, kind, &b, &sz, why, cap);
    if (!rc)
      e[ne++] = (tc_cu_entry){.arch = arch, .kind = kind, .data = b, .size = sz};
  }
  if (!rc && (rc = tc_culib_write(path, e, ne)))
    snprintf(why, cap, "cannot write %s: %s", path, strerror(rc));
  for (size_t i = 0; i < ne; i++)
    free((void *)e[i].data);
  free(src);
  return rc ? -1 : 0;
}
