/* runtime/vmath.c's array math for AVX512F: 16 lanes (vmath_impl.h). */
#if !defined(__clang__) /* the clang build (fuzzing) has the SSE2 set only */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

#pragma GCC diagnostic ignored "-Wpsabi"
#pragma GCC target("avx512f")
#define LANES 16
#define VNAME(f) f##_avx512
#include "vmath_impl.h"
#endif
