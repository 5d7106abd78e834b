// Host emulation of the CUDA features tacoc's generated kernels use
// (codegen/cuda), so that their logic can be checked on a CPU: the test
// compiles the generated CUDA C with a host C++ compiler after this header
// and runs each kernel through tc_emu_launch. One OS thread per CUDA thread
// of a block; blocks run one after another (so __shared__ can be static);
// __syncthreads is a barrier; warp shuffles go through a per-block array
// between barriers (every thread of the block calls them, as the kernels
// do). It checks indexing, reductions and flags, not what only a GPU has
// (timing, memory alignment faults, occupancy).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <pthread.h>

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(n)
#define __shared__ static

struct tc_emu_dim {
  unsigned x, y, z;
};
static thread_local tc_emu_dim threadIdx, blockIdx;
static tc_emu_dim blockDim, gridDim;
static pthread_barrier_t tc_emu_bar;
static float tc_emu_lanes[1024];

static inline void __syncthreads() { pthread_barrier_wait(&tc_emu_bar); }
static inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  pthread_barrier_wait(&tc_emu_bar); // the previous exchange has been read
  tc_emu_lanes[threadIdx.x] = v;
  pthread_barrier_wait(&tc_emu_bar);
  return tc_emu_lanes[threadIdx.x ^ (unsigned)lane_mask];
}
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline float __int_as_float(int i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}

// float16 / bfloat16 storage with round-to-nearest-even conversions.
struct __half {
  uint16_t x;
};
struct __nv_bfloat16 {
  uint16_t x;
};
static inline float __half2float(__half h) {
  uint32_t s = (uint32_t)(h.x & 0x8000) << 16, e = (h.x >> 10) & 0x1f, m = h.x & 0x3ff, b;
  if (e == 0x1f)
    b = s | 0x7f800000 | (m << 13);
  else if (e)
    b = s | ((e + 112) << 23) | (m << 13);
  else if (!m)
    b = s;
  else { // subnormal: normalize
    e = 113;
    while (!(m & 0x400)) {
      m <<= 1;
      e--;
    }
    b = s | (e << 23) | ((m & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static inline __half __float2half_rn(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  uint32_t s = (b >> 16) & 0x8000, a = b & 0x7fffffff;
  __half h;
  if (a >= 0x7f800000) { // inf, nan
    h.x = (uint16_t)(s | 0x7c00 | (a > 0x7f800000 ? 0x200 : 0));
    return h;
  }
  if (a >= 0x477ff000) { // rounds to above the largest half
    h.x = (uint16_t)(s | 0x7c00);
    return h;
  }
  if (a < 0x38800000) { // subnormal or zero: scale into an integer of the 2^-24 unit
    float v;
    memcpy(&v, &a, 4);
    float q = v * 16777216.0f; // exact power-of-two scaling
    uint32_t r = (uint32_t)nearbyintf(q); // round to nearest even (default mode)
    h.x = (uint16_t)(s | r);
    return h;
  }
  uint32_t mant = a & 0x7fffff, e = (a >> 23) - 112;
  uint32_t v = (e << 10) | (mant >> 13), rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (v & 1)))
    v++;
  h.x = (uint16_t)(s | v);
  return h;
}
static inline float __bfloat162float(__nv_bfloat16 h) {
  uint32_t b = (uint32_t)h.x << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}
static inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  __nv_bfloat16 h;
  if ((b & 0x7fffffff) > 0x7f800000)
    h.x = (uint16_t)((b >> 16) | 0x40);
  else
    h.x = (uint16_t)((b + 0x7fff + ((b >> 16) & 1)) >> 16);
  return h;
}

// Defines tc_emu_launch(name, grid, block, args) after the kernels (it
// needs their tc_cu_args): runs kernel fn over grid blocks of block threads.
#define TC_EMU_DEFINE_LAUNCH()                                                                     \
  struct tc_emu_job {                                                                              \
    void (*fn)(const tc_cu_args);                                                                  \
    const tc_cu_args *a;                                                                           \
    unsigned t;                                                                                    \
  };                                                                                               \
  static void *tc_emu_thread(void *p) {                                                            \
    tc_emu_job *j = (tc_emu_job *)p;                                                               \
    threadIdx = {j->t, 0, 0};                                                                      \
    for (unsigned b = 0; b < gridDim.x; b++) {                                                     \
      blockIdx = {b, 0, 0};                                                                        \
      j->fn(*j->a);                                                                                \
      pthread_barrier_wait(&tc_emu_bar); /* the block is done with shared memory */              \
    }                                                                                              \
    return nullptr;                                                                                \
  }                                                                                                \
  extern "C" int tc_emu_launch(void (*fn)(const tc_cu_args), unsigned grid, unsigned block,        \
                               const void *args) {                                                 \
    if (!block || block > 1024)                                                                    \
      return -1;                                                                                   \
    gridDim = {grid, 1, 1};                                                                        \
    blockDim = {block, 1, 1};                                                                      \
    pthread_barrier_init(&tc_emu_bar, nullptr, block);                                             \
    pthread_attr_t attr; /* small stacks: up to 1024 threads per launch */                        \
    pthread_attr_init(&attr);                                                                      \
    pthread_attr_setstacksize(&attr, 256 << 10);                                                   \
    static tc_emu_job jobs[1024];                                                                  \
    static pthread_t th[1024];                                                                     \
    unsigned started = 0;                                                                          \
    int rc = 0;                                                                                    \
    for (; started < block; started++) {                                                           \
      jobs[started] = {fn, (const tc_cu_args *)args, started};                                     \
      if (pthread_create(&th[started], &attr, tc_emu_thread, &jobs[started])) {                    \
        rc = -1;                                                                                   \
        break;                                                                                     \
      }                                                                                            \
    }                                                                                              \
    if (rc) /* threads that started wait at the barrier forever: give up loudly */               \
      return -2;                                                                                   \
    for (unsigned t = 0; t < block; t++)                                                           \
      pthread_join(th[t], nullptr);                                                                \
    pthread_barrier_destroy(&tc_emu_bar);                                                          \
    pthread_attr_destroy(&attr);                                                                   \
    return 0;                                                                                      \
  }
