/* CUDA kernel libraries: the compiled CUDA kernels that travel with a model
 * optimized with `tacoc optimize --target cuda` (docs/ARCHITECTURE.md).
 *
 * The generated kernels are the row kernels of runtime/native.h (the same
 * specs as CPU code generation, plus a dtype), written as CUDA C by
 * codegen/cuda and compiled with NVRTC. The library is a file beside the
 * model; the model names it and binds nodes to kernels in metadata_props:
 *
 *   ai.tacoc.cuda.kernels        = "<file name of the library, in the model's folder>"
 *   ai.tacoc.cuda.kernels.sha256 = "<64 lowercase hex digits>"
 *   ai.tacoc.cuda.kernel:<node>  = "<spec>"  (runtime/native.h's spec string)
 *
 * File format (little-endian):
 *   "TACOCU1\0"                          8 bytes
 *   u32 count, u32 reserved (0)
 *   count entries, each:
 *     u32 arch   SM number the code is for (80 = sm_80; for PTX the
 *                virtual architecture it was compiled for)
 *     u32 kind   TC_CU_PTX (PTX text, NUL-terminated) or TC_CU_CUBIN
 *     u64 size   bytes that follow, then zero padding to a multiple of 8
 *
 * Every entry holds all of the library's kernels. A device runs the CUBIN of
 * the highest arch with its own major version and a minor version not above
 * its own, else the PTX of the highest arch not above it (JIT-compiled by the
 * driver). This part is plain C: libtacort reads libraries without CUDA. */
#ifndef TC_CULIB_H
#define TC_CULIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "native.h"

enum { TC_CU_PTX = 0, TC_CU_CUBIN = 1 };

typedef struct tc_cu_entry {
  uint32_t arch, kind;
  const unsigned char *data; /* borrowed from the library's bytes */
  size_t size;
} tc_cu_entry;

/* Writes a library (count entries) to path; 0 on success, else errno. */
int tc_culib_write(const char *path, const tc_cu_entry *e, size_t count);
/* Parses a library held in memory (entries point into bytes). false when
 * the bytes are not a well-formed library (why says what is wrong). */
bool tc_culib_parse(const unsigned char *bytes, size_t size, tc_cu_entry *e, size_t cap,
                    size_t *count, char *why, size_t why_cap);
/* The entry a device of SM sm (e.g. 86) runs, or NULL when none fits. */
const tc_cu_entry *tc_culib_pick(const tc_cu_entry *e, size_t count, uint32_t sm);

/* Launch geometry of a generated CUDA kernel, shared by the generator and
 * the launcher so that they agree:
 * vec: elements each thread loads at once (16-byte vectors when the row
 *      length allows, else 1);
 * block: threads per block (bias_act: 256; row kinds: one block per row,
 *      a multiple of 32 covering the row's vectors, at most 512);
 * per: vectors each thread of a row kernel holds (row kinds). */
int tc_cu_vec(const tc_cg_spec *sp);
int tc_cu_block(const tc_cg_spec *sp);
int tc_cu_per_thread(const tc_cg_spec *sp);
/* Row kernels keep a row in registers when each thread holds at most this
 * many vectors; longer rows are read from memory again per pass. */
#define TC_CU_MAX_PER 8

/* The kernel argument block every generated CUDA kernel takes by value: the
 * slots of tc_cg_row_fn (in/out pointers in device memory), the epsilon,
 * and the number of rows. */
typedef struct tc_cu_args {
  const void *in[4];
  void *out[2];
  float eps;
  float pad_;
  long long rows;
} tc_cu_args;

#endif
