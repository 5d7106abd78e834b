/* cpu_peak: what this CPU and its expert library reach, measured, so that
 * the benchmarks can say how far a model's latency is from the floor its
 * products set. For each task on the command line it prints one line:
 *
 *   sgemm M K N   float32 C = A B through oneDNN's dnnl_sgemm (A [M, K], B [K, N])
 *   u8gemm M K N  uint8 x int8 -> int32 through dnnl_gemm_u8s8s32
 *   fma           the core's float32 multiply-add peak: independent AVX-512
 *                 vfmadd chains in registers (needs AVX-512)
 *   vnni          its uint8 x int8 peak: independent vpdpbusd chains (needs
 *                 AVX-512 VNNI)
 *   stream MIB    a read pass over MIB mebibytes (larger than the caches: the
 *                 bandwidth weights stream at when they are not cached)
 *
 *   cpu_peak [--threads N] [--reps R] TASK [ARGS] [TASK [ARGS] ...]
 *
 * Each task is warmed up, then timed R times (default 15) over enough calls
 * to take at least 20 ms; the line gives the best and the median rate
 * (GFLOP/s or GOP/s counting a multiply-add as two, GB/s for stream). The
 * best is an upper bound on what was sustained, so the time it implies is a
 * lower bound: bench/floors.py sums those. fma and vnni run on the calling
 * thread only (a per-core peak). Exit status 2 on a bad argument, a failed
 * call or a CPU without the instructions, with the reason on stderr. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

void omp_set_num_threads(int n);

typedef enum task_kind { K_SGEMM, K_U8GEMM, K_FMA, K_VNNI, K_STREAM, K_COUNT } task_kind;

static const char *const kind_names[K_COUNT] = {"sgemm", "u8gemm", "fma", "vnni", "stream"};

typedef struct task {
  task_kind kind;
  long m, k, n;           /* GEMM sizes; stream: m is the byte count */
  void *a, *b, *c;        /* operands */
  volatile uint64_t sink; /* keeps the register loops and the stream pass */
} task;

/* Register-only loops: CHAINS independent accumulators (more than the
 * multiply-add latency times the two pipes; the inner loop unrolled so they
 * stay in registers), LOOP_STEPS steps a call. */
#define CHAINS 12
#define LOOP_STEPS 100000L
_Static_assert(CHAINS == 12, "the unroll pragmas below unroll 12");

__attribute__((target("avx512f"))) static uint64_t fma_loop(void) {
  __m512 acc[CHAINS], m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (int j = 0; j < CHAINS; j++)
    acc[j] = _mm512_set1_ps((float)j);
  for (long i = 0; i < LOOP_STEPS; i++)
#pragma GCC unroll 12
    for (int j = 0; j < CHAINS; j++)
      acc[j] = _mm512_fmadd_ps(acc[j], m, c);
  float s = 0;
  for (int j = 0; j < CHAINS; j++)
    s += _mm512_reduce_add_ps(acc[j]);
  return (uint64_t)s;
}

__attribute__((target("avx512f,avx512vnni"))) static uint64_t vnni_loop(void) {
  __m512i acc[CHAINS], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
  for (int j = 0; j < CHAINS; j++)
    acc[j] = _mm512_set1_epi32(j);
  for (long i = 0; i < LOOP_STEPS; i++)
#pragma GCC unroll 12
    for (int j = 0; j < CHAINS; j++)
      acc[j] = _mm512_dpbusd_epi32(acc[j], a, b);
  int64_t s = 0;
  for (int j = 0; j < CHAINS; j++)
    s += _mm512_reduce_add_epi32(acc[j]);
  return (uint64_t)s;
}

/* A read pass: four independent sums of 64-byte vectors (AVX-512 where the
 * CPU has it: wider loads kept this machine's memory busier, 24.6 against
 * 20.7 GB/s over 256 MiB), so the loads, not the adds, set the pace. */
typedef uint64_t v8u __attribute__((vector_size(64)));

static uint64_t fold(const v8u *s) {
  uint64_t r = 0;
  for (int j = 0; j < 8; j++)
    r += (*s)[j];
  return r;
}

#define STREAM_BODY                                                                                \
  const v8u *p = (const v8u *)q;                                                                   \
  v8u s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};                                                      \
  for (size_t i = 0; i + 4 <= bytes / sizeof *p; i += 4) {                                         \
    s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];                                    \
  }                                                                                                \
  s0 += s1 + s2 + s3;                                                                              \
  return fold(&s0);

__attribute__((target("avx512f"))) static uint64_t stream_sum512(const void *q, size_t bytes) {
  STREAM_BODY
}

static uint64_t stream_sum_generic(const void *q, size_t bytes) { STREAM_BODY }

static uint64_t stream_sum(const void *q, size_t bytes) {
  return __builtin_cpu_supports("avx512f") ? stream_sum512(q, bytes) : stream_sum_generic(q, bytes);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int call(task *t) {
  int32_t co = 0;
  switch (t->kind) {
  case K_SGEMM:
    return dnnl_sgemm('N', 'N', t->m, t->n, t->k, 1.0f, t->a, t->k, t->b, t->n, 0.0f, t->c, t->n) ==
                   dnnl_success
               ? 0
               : -1;
  case K_U8GEMM:
    return dnnl_gemm_u8s8s32('N', 'N', 'F', t->m, t->n, t->k, 1.0f, t->a, t->k, 0, t->b, t->n, 0,
                             0.0f, t->c, t->n, &co) == dnnl_success
               ? 0
               : -1;
  case K_FMA: t->sink = fma_loop(); return 0;
  case K_VNNI: t->sink = vnni_loop(); return 0;
  default: t->sink = stream_sum(t->a, (size_t)t->m); return 0;
  }
}

/* Work per call: operations (a multiply-add counts two), bytes for stream. */
static double work(const task *t) {
  switch (t->kind) {
  case K_FMA: return 2.0 * 16 * CHAINS * LOOP_STEPS;
  case K_VNNI: return 2.0 * 64 * CHAINS * LOOP_STEPS;
  case K_STREAM: return (double)t->m;
  default: return 2.0 * (double)t->m * (double)t->k * (double)t->n;
  }
}

static void *filled(size_t bytes, unsigned seed) {
  unsigned char *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (p)
    for (size_t i = 0; i < bytes; i++)
      p[i] = (unsigned char)((i * 2654435761u + seed) >> 24) & 0x3f; /* small, finite floats too */
  return p;
}

static int setup(task *t) {
  if (t->kind == K_FMA || t->kind == K_VNNI)
    return 0;
  if (t->kind == K_STREAM)
    return (t->a = filled((size_t)t->m, 1)) ? 0 : -1;
  size_t es = t->kind == K_SGEMM ? 4 : 1;
  t->a = filled((size_t)t->m * (size_t)t->k * es, 1);
  t->b = filled((size_t)t->k * (size_t)t->n * es, 2);
  t->c = aligned_alloc(64, ((size_t)t->m * (size_t)t->n * 4 + 63) / 64 * 64);
  return t->a && t->b && t->c ? 0 : -1;
}

static void report(const task *t, const double *rate, int reps) {
  const char *name = kind_names[t->kind];
  if (t->kind == K_STREAM)
    printf("stream %ld best %.1f median %.1f GB/s\n", t->m >> 20, rate[reps - 1], rate[reps / 2]);
  else if (t->kind == K_FMA || t->kind == K_VNNI)
    printf("%s best %.1f median %.1f %s\n", name, rate[reps - 1], rate[reps / 2],
           t->kind == K_FMA ? "GFLOP/s" : "GOP/s");
  else
    printf("%s %ld %ld %ld best %.1f median %.1f %s\n", name, t->m, t->k, t->n, rate[reps - 1],
           rate[reps / 2], t->kind == K_SGEMM ? "GFLOP/s" : "GOP/s");
  fflush(stdout);
}

static int run(task *t, int reps) {
  int rc = -1;
  double *rate = malloc((size_t)reps * sizeof *rate);
  if (!rate || setup(t)) {
    fprintf(stderr, "cpu_peak: %s: out of memory\n", kind_names[t->kind]);
    goto done;
  }
  double t0 = now();
  long calls = 0;
  do { /* warm-up, and how many calls make 20 ms */
    if (call(t)) {
      fprintf(stderr, "cpu_peak: %s %ld %ld %ld failed\n", kind_names[t->kind], t->m, t->k, t->n);
      goto done;
    }
    calls++;
  } while (now() - t0 < 0.05);
  long per = (long)((double)calls * 0.02 / (now() - t0)) + 1;
  for (int r = 0; r < reps; r++) {
    double s = now();
    for (long i = 0; i < per; i++)
      call(t);
    rate[r] = work(t) * (double)per / (now() - s) / 1e9;
  }
  qsort(rate, (size_t)reps, sizeof *rate, cmp_double);
  report(t, rate, reps);
  rc = 0;
done:
  free(rate);
  free(t->a);
  free(t->b);
  free(t->c);
  return rc;
}

static int usage(const char *why) {
  fprintf(stderr,
          "cpu_peak: %s\nusage: cpu_peak [--threads N] [--reps R] "
          "(sgemm M K N | u8gemm M K N | fma | vnni | stream MIB)...\n",
          why);
  return 2;
}

static long positive(const char *s) {
  char *end;
  long v = s ? strtol(s, &end, 10) : 0;
  return s && *end == '\0' && v > 0 && v <= (1L << 20) ? v : -1;
}

/* The task at argv[*i] and its arguments; *i moves past them. */
static int parse_task(char **argv, int argc, int *i, task *t) {
  int k = 0;
  while (k < K_COUNT && strcmp(argv[*i], kind_names[k]))
    k++;
  if (k == K_COUNT)
    return usage("unknown task");
  *t = (task){.kind = (task_kind)k};
  int nargs = k == K_SGEMM || k == K_U8GEMM ? 3 : k == K_STREAM ? 1 : 0;
  if (*i + nargs >= argc)
    return usage(nargs == 3 ? "a GEMM takes M K N" : "stream takes a size in MiB");
  long v[3] = {0};
  for (int j = 0; j < nargs; j++)
    if ((v[j] = positive(argv[*i + 1 + j])) < 0)
      return usage("sizes must be positive counts");
  if (k == K_FMA && !__builtin_cpu_supports("avx512f"))
    return usage("fma needs AVX-512");
  if (k == K_VNNI && !__builtin_cpu_supports("avx512vnni"))
    return usage("vnni needs AVX-512 VNNI");
  t->m = k == K_STREAM ? v[0] << 20 : v[0], t->k = v[1], t->n = v[2];
  *i += 1 + nargs;
  return 0;
}

int main(int argc, char **argv) {
  int reps = 15, i = 1;
  omp_set_num_threads(1);
  for (; i + 1 < argc && !strncmp(argv[i], "--", 2); i += 2) {
    long v = positive(argv[i + 1]);
    if (v < 0)
      return usage("--threads and --reps take a positive count");
    if (!strcmp(argv[i], "--threads"))
      omp_set_num_threads((int)v);
    else if (!strcmp(argv[i], "--reps"))
      reps = (int)v;
    else
      return usage("unknown option");
  }
  if (i >= argc)
    return usage("no task");
  while (i < argc) {
    task t;
    if (parse_task(argv, argc, &i, &t))
      return 2;
    if (run(&t, reps))
      return 2;
  }
  return 0;
}
