/* CUDA code generation: writes the row kernels of runtime/native.h (bias +
 * activation, LayerNorm / RMSNorm with residual add, Softmax) as CUDA C,
 * specialized per spec (row length, element type, flags, launch geometry of
 * runtime/culib.h), and compiles them with NVRTC into a CUDA kernel library:
 * PTX for a virtual architecture (the driver JIT-compiles it for any newer
 * GPU) and CUBINs for the real architectures asked for. Needs no GPU: NVRTC
 * runs on the host. NVRTC is loaded at run time (dlopen), so tacoc runs, and
 * every other target works, where the CUDA toolkit is absent. */
#ifndef TC_CUCG_H
#define TC_CUCG_H

#include <stdbool.h>
#include <stddef.h>

#include "culib.h"

/* The CUDA C source of one kernel per spec (exported as extern "C" spec.sym).
 * Returns a malloc'd string, NULL on OOM or for a spec it cannot generate. */
char *tc_cu_source(const tc_cg_spec *specs, size_t n);

/* Whether NVRTC can be loaded; false with why saying what is missing. The
 * toolkit is found at $TACOC_CUDA_HOME, else /usr/local/cuda (its lib64 for
 * libnvrtc, its include for cuda_fp16.h), else the loader's search path. */
bool tc_nvrtc_available(char *why, size_t cap);

/* Compiles src with NVRTC for arch (e.g. 80): PTX for compute_<arch> when
 * kind is TC_CU_PTX (NUL-terminated), a CUBIN for sm_<arch> when
 * TC_CU_CUBIN. On success *out is malloc'd and 0 is returned; otherwise why
 * holds NVRTC's error and log. */
int tc_cu_compile(const char *src, unsigned arch, unsigned kind, unsigned char **out, size_t *size,
                  char *why, size_t cap);

/* The architectures tacoc builds CUBINs for by default (sm_80 and sm_90),
 * and the PTX architecture (compute_80). */
extern const unsigned tc_cu_default_archs[];
extern const size_t tc_cu_n_default_archs;
#define TC_CU_PTX_ARCH 80

/* Generates and compiles the kernels of specs into a library at path: PTX
 * for TC_CU_PTX_ARCH and a CUBIN per archs[i]. 0 on success; otherwise why
 * says what failed and nothing is left at path. */
int tc_cu_build_library(const tc_cg_spec *specs, size_t n, const unsigned *archs, size_t n_archs,
                        const char *path, char *why, size_t cap);

#endif
