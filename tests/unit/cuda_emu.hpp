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

// Runs body() as a kernel over grid blocks of block threads: one OS thread
// per CUDA thread, every thread walking the blocks in order with a barrier
// between blocks (so the block's shared memory is free for the next).
struct tc_emu_job {
  void (*body)(void *);
  void *ctx;
  unsigned t;
};
static void *tc_emu_thread(void *p) {
  tc_emu_job *j = (tc_emu_job *)p;
  threadIdx = {j->t, 0, 0};
  for (unsigned b = 0; b < gridDim.x; b++) {
    blockIdx = {b, 0, 0};
    j->body(j->ctx);
    pthread_barrier_wait(&tc_emu_bar);
  }
  return nullptr;
}
static int tc_emu_run(unsigned grid, unsigned block, void (*body)(void *), void *ctx) {
  if (!block || block > 1024)
    return -1;
  gridDim = {grid, 1, 1};
  blockDim = {block, 1, 1};
  pthread_barrier_init(&tc_emu_bar, nullptr, block);
  pthread_attr_t attr; // small stacks: up to 1024 threads per launch
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 << 10);
  static tc_emu_job jobs[1024];
  static pthread_t th[1024];
  for (unsigned t = 0; t < block; t++) {
    jobs[t] = {body, ctx, t};
    if (pthread_create(&th[t], &attr, tc_emu_thread, &jobs[t]))
      return -2; // threads already started wait at the barrier forever: the test hangs loudly
  }
  for (unsigned t = 0; t < block; t++)
    pthread_join(th[t], nullptr);
  pthread_barrier_destroy(&tc_emu_bar);
  pthread_attr_destroy(&attr);
  return 0;
}
// A lambda as a kernel body.
template <typename F> static int tc_emu_launch_fn(unsigned grid, unsigned block, F f) {
  return tc_emu_run(grid, block, [](void *p) { (*(F *)p)(); }, &f);
}

// Defines tc_emu_launch(fn, grid, block, args) for the generated kernels,
// after them (it needs their tc_cu_args).
#define TC_EMU_DEFINE_LAUNCH()                                                                     \
  extern "C" int tc_emu_launch(void (*fn)(const tc_cu_args), unsigned grid, unsigned block,        \
                               const void *args) {                                                 \
    const tc_cu_args *a = (const tc_cu_args *)args;                                                \
    return tc_emu_launch_fn(grid, block, [fn, a] { fn(*a); });                                     \
  }
