/* The CPU code generator's interface (codegen/cpu/cg.h) for a tacoc built
 * without LLVM (`make build/bin/tacoc-nollvm`): a smaller program for
 * machines that only need the passes, the CUDA target and libtacort, e.g.
 * a GPU box without LLVM 16. `--codegen cpu` and `--tune` then fail with a
 * clear error; everything else works as in tacoc. */
#include <stdio.h>

#include "cg.h"

int tc_cg_build_library(const tc_cg_spec *specs, size_t n, const char *cpu, const char *so_path,
                        char *why, size_t why_cap) {
  (void)specs, (void)n, (void)cpu, (void)so_path;
  snprintf(why, why_cap,
           "this tacoc was built without LLVM (tacoc-nollvm): CPU code generation is not "
           "available");
  return 1;
}

void tc_cg_cpu_key(const char *cpu, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/no-llvm", cpu && *cpu ? cpu : "native");
}

void tc_cg_cpu_features(const char *cpu, char *buf, size_t cap) {
  (void)cpu;
  if (cap)
    buf[0] = 0;
}

int tc_cg_native_width(const char *cpu) {
  (void)cpu;
  return __builtin_cpu_supports("avx512f") ? 16 : __builtin_cpu_supports("avx") ? 8 : 4;
}
