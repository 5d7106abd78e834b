/* CPU code generation through the LLVM C API: builds the row kernels that
 * runtime/native.h describes as LLVM IR (explicit vectors of the spec's
 * width, our own vectorizable exp/erf/tanh), optimizes the module with
 * LLVM's O3 pipeline for the target CPU, emits an object file and links it
 * into a shared object with the system linker (ld). */
#ifndef TC_CG_H
#define TC_CG_H

#include <stdbool.h>
#include <stddef.h>

#include "native.h"

/* Builds one shared object at so_path holding a kernel per spec (exported as
 * spec.sym). cpu: an LLVM CPU name, or NULL / "native" for this machine with
 * its features. 0 on success; otherwise why says what failed. The output is
 * deterministic for the same specs, CPU and LLVM. */
int tc_cg_build_library(const tc_cg_spec *specs, size_t n, const char *cpu, const char *so_path,
                        char *why, size_t why_cap);

/* "cpu-name/feature-hash" of the target (NULL or "native": this machine):
 * what tuning-cache entries are keyed by. */
void tc_cg_cpu_key(const char *cpu, char *buf, size_t cap);

/* The x86 extensions of tc_cpu_feature_names the target has, comma
 * separated: what generated code for it may use. Empty for a named CPU (its
 * feature list is not available through the C API). */
void tc_cg_cpu_features(const char *cpu, char *buf, size_t cap);

/* The widest float vector (in floats) the target's features allow: 16 with
 * AVX-512, 8 with AVX, 4 otherwise. */
int tc_cg_native_width(const char *cpu);

#endif
