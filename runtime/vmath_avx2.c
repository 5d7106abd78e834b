/* runtime/vmath.c's array math for AVX2 with FMA: 8 lanes (vmath_impl.h; the
 * Makefile builds this file with -ffp-contract=fast). */
#if !defined(__clang__) /* the clang build (fuzzing) has the SSE2 set only */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC target("avx2,fma")
#define LANES 8
#define VNAME(f) f##_avx2
#include "vmath_impl.h"
#endif
