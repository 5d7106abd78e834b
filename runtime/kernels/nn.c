/* nn kernels: MatMul Gemm MatMulInteger, Softmax LogSoftmax Hardmax,
 * LayerNormalization BatchNormalization InstanceNormalization
 * GroupNormalization RMSNormalization LpNormalization
 * MeanVarianceNormalization, TopK, Einsum.
 *
 * Matrix products run in one of three compute types: float (float32 and the
 * 16-bit floats, converted once), double (float64) and 64-bit integers with
 * wrap-around (integer types). Normalization statistics accumulate in
 * double. The fast kernels run Softmax rows and normalization rows / groups
 * on several threads, float32 ones with exp in float and four running sums
 * for the statistics. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernel.h"

/* ---- shared helpers ---- */

static const char *node_name(const tc_node *n) { return n->name ? n->name : ""; }

static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

static void *scratch(tc_kernel_ctx *k, size_t n, size_t elem) {
  return tc_arena_alloc(k->arena, n ? n * elem : 1);
}

#define NOMEM(k) tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory")

static size_t prod_dims(const int64_t *dims, size_t from, size_t to) {
  size_t p = 1;
  for (size_t d = from; d < to; d++)
    p *= (size_t)dims[d];
  return p;
}

/* Checks that t broadcasts unidirectionally to (rank, dims) and sets its
 * element strides there. */
static tc_status unidir_strides(tc_kernel_ctx *k, const tc_rt_tensor *t, const char *what,
                                size_t rank, const int64_t *dims, int64_t *strides) {
  bool ok = t->rank <= rank;
  for (size_t d = 0; ok && d < t->rank; d++) {
    int64_t v = t->dims[d], w = dims[rank - t->rank + d];
    ok = v == w || v == 1;
  }
  if (!ok)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s does not broadcast to the expected shape",
                          what);
  tc_broadcast_strides(t, rank, dims, strides);
  return TC_STATUS_OK;
}

/* Offset of linear index j of shape (rank, dims) in a tensor with strides. */
static size_t bcast_offset(size_t j, size_t rank, const int64_t *dims, const int64_t *strides) {
  size_t off = 0;
  for (size_t d = rank; d-- > 0;) {
    size_t q = (size_t)dims[d];
    off += (j % q) * (size_t)strides[d];
    j /= q;
  }
  return off;
}

/* Per-element parameter of a tensor broadcast to a block of shape (rank,
 * dims): either contiguous (the common case) or through strides. */
typedef struct param_view {
  const tc_rt_tensor *t;
  bool direct;
  size_t rank;
  const int64_t *dims;
  int64_t strides[TC_MAX_RANK];
} param_view;

static tc_status param_init(tc_kernel_ctx *k, param_view *p, const tc_rt_tensor *t,
                            const char *what, size_t rank, const int64_t *dims) {
  p->t = t;
  p->rank = rank;
  p->dims = dims;
  p->direct = true;
  if (!t)
    return TC_STATUS_OK;
  tc_status st = unidir_strides(k, t, what, rank, dims, p->strides);
  if (st)
    return st;
  p->direct = tc_rt_numel(t) == prod_dims(dims, 0, rank);
  return TC_STATUS_OK;
}

static double param_get(const param_view *p, size_t j, double dflt) {
  if (!p->t)
    return dflt;
  return tc_rt_get_f64(p->t, p->direct ? j : bcast_offset(j, p->rank, p->dims, p->strides));
}

/* ---- matrix products ---- */

typedef enum ckind { CK_F32, CK_F64, CK_INT } ckind;

static ckind kind_of(int32_t dt) {
  return dt == TC_DTYPE_F64 ? CK_F64 : tc_dtype_is_float(dt) ? CK_F32 : CK_INT;
}

static size_t kind_size(ckind c) { return c == CK_F32 ? sizeof(float) : 8; }

/* C[M,N] = op(A) op(B); op(A) is A[M,K] or, transposed, A[K,M]. C is
 * overwritten. i-k-j order over contiguous rows of B when B is not
 * transposed, dot products otherwise. */
#define GEMM_CORE(NAME, T)                                                                         \
  static void NAME(size_t M, size_t N, size_t K, const T *A, bool ta, const T *B, bool tb, T *C) { \
    if (!tb) {                                                                                     \
      for (size_t i = 0; i < M; i++) {                                                             \
        T *c = C + i * N;                                                                          \
        for (size_t j = 0; j < N; j++)                                                             \
          c[j] = 0;                                                                                \
        for (size_t kk = 0; kk < K; kk++) {                                                        \
          T a = ta ? A[kk * M + i] : A[i * K + kk];                                                \
          const T *b = B + kk * N;                                                                 \
          for (size_t j = 0; j < N; j++)                                                           \
            c[j] += a * b[j];                                                                      \
        }                                                                                          \
      }                                                                                            \
    } else {                                                                                       \
      for (size_t i = 0; i < M; i++)                                                               \
        for (size_t j = 0; j < N; j++) {                                                           \
          const T *b = B + j * K;                                                                  \
          T s = 0;                                                                                 \
          if (ta)                                                                                  \
            for (size_t kk = 0; kk < K; kk++)                                                      \
              s += A[kk * M + i] * b[kk];                                                          \
          else                                                                                     \
            for (size_t kk = 0; kk < K; kk++)                                                      \
              s += A[i * K + kk] * b[kk];                                                          \
          C[i * N + j] = s;                                                                        \
        }                                                                                          \
    }                                                                                              \
  }

GEMM_CORE(gemm_f32, float)
GEMM_CORE(gemm_f64, double)
GEMM_CORE(gemm_int, uint64_t) /* unsigned: wraps like two's complement */

static void gemm_kind(ckind c, size_t M, size_t N, size_t K, const void *A, bool ta, const void *B,
                      bool tb, void *C) {
  switch (c) {
  case CK_F32:
    if (!tc_fast_kernels_enabled() || !tc_sgemm(ta, tb, M, N, K, A, B, C))
      gemm_f32(M, N, K, A, ta, B, tb, C);
    break;
  case CK_F64: gemm_f64(M, N, K, A, ta, B, tb, C); break;
  case CK_INT: gemm_int(M, N, K, A, ta, B, tb, C); break;
  }
}

/* t's data in compute type c: t->data itself when it already is, else a
 * converted copy (NULL on OOM). */
static const void *as_kind(tc_kernel_ctx *k, const tc_rt_tensor *t, ckind c) {
  if ((c == CK_F32 && t->dtype == TC_DTYPE_F32) || (c == CK_F64 && t->dtype == TC_DTYPE_F64) ||
      (c == CK_INT && (t->dtype == TC_DTYPE_I64 || t->dtype == TC_DTYPE_U64)))
    return t->data;
  size_t n = tc_rt_numel(t);
  void *p = scratch(k, n, kind_size(c));
  if (!p)
    return NULL;
  if (c == CK_F32 && tc_dtype_is_half(t->dtype)) { /* exact, as the loop below */
    tc_vhalf_to_f32(t->dtype, p, t->data, n);
    return p;
  }
  for (size_t i = 0; i < n; i++) {
    if (c == CK_F32)
      ((float *)p)[i] = (float)tc_rt_get_f64(t, i);
    else if (c == CK_F64)
      ((double *)p)[i] = tc_rt_get_f64(t, i);
    else
      ((uint64_t *)p)[i] = (uint64_t)tc_rt_get_i64(t, i);
  }
  return p;
}

/* Where results in compute type c go: out->data when the dtypes agree, else
 * scratch (written back by store_kind). */
static void *result_buf(tc_kernel_ctx *k, tc_rt_tensor *out, ckind c) {
  if ((c == CK_F32 && out->dtype == TC_DTYPE_F32) || (c == CK_F64 && out->dtype == TC_DTYPE_F64) ||
      (c == CK_INT && (out->dtype == TC_DTYPE_I64 || out->dtype == TC_DTYPE_U64)))
    return out->data;
  return scratch(k, tc_rt_numel(out), kind_size(c));
}

static void store_kind(tc_rt_tensor *out, const void *buf, ckind c) {
  if (buf == out->data)
    return;
  size_t n = tc_rt_numel(out);
  if (c == CK_F32 && tc_dtype_is_half(out->dtype)) { /* as tc_rt_set_f64 rounds a float */
    tc_vf32_to_half(out->dtype, out->data, buf, n);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (c == CK_F32)
      tc_rt_set_f64(out, i, ((const float *)buf)[i]);
    else if (c == CK_F64)
      tc_rt_set_f64(out, i, ((const double *)buf)[i]);
    else
      tc_rt_set_i64(out, i, (int64_t)((const uint64_t *)buf)[i]);
  }
}

/* numpy matmul of A and B (compute-type data a, b) into out of dtype odt. */
static tc_status matmul_nd(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                           const void *a, const void *b, ckind c, int32_t odt, tc_rt_tensor *out) {
  if (A->rank == 0 || B->rank == 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "MatMul operands must have rank 1 or more");
  bool a1 = A->rank == 1, b1 = B->rank == 1;
  size_t M = a1 ? 1 : (size_t)A->dims[A->rank - 2], K = (size_t)A->dims[A->rank - 1];
  size_t Kb = b1 ? (size_t)B->dims[0] : (size_t)B->dims[B->rank - 2];
  size_t N = b1 ? 1 : (size_t)B->dims[B->rank - 1];
  if (K != Kb)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "inner dimensions differ (%zu vs %zu)", K, Kb);
  tc_rt_tensor ba = {0}, bb = {0};
  ba.rank = a1 ? 0 : A->rank - 2;
  bb.rank = b1 ? 0 : B->rank - 2;
  memcpy(ba.dims, A->dims, ba.rank * sizeof(int64_t));
  memcpy(bb.dims, B->dims, bb.rank * sizeof(int64_t));
  const tc_rt_tensor *bt[2] = {&ba, &bb};
  size_t brank;
  int64_t dims[TC_MAX_RANK + 2];
  tc_status st = tc_broadcast_shape(k, bt, 2, &brank, dims);
  if (st)
    return st;
  int64_t sa[TC_MAX_RANK], sb[TC_MAX_RANK];
  tc_broadcast_strides(&ba, brank, dims, sa);
  tc_broadcast_strides(&bb, brank, dims, sb);
  size_t orank = brank;
  if (!a1)
    dims[orank++] = (int64_t)M;
  if (!b1)
    dims[orank++] = (int64_t)N;
  /* every product element is written (a K = 0 product as zeros) */
  if ((st = tc_kernel_alloc_uninit(k, out, odt, orank, dims)))
    return st;
  size_t nb = prod_dims(dims, 0, brank);
  if (nb * M * N == 0)
    return TC_STATUS_OK;
  void *res = result_buf(k, out, c);
  if (!res)
    return NOMEM(k);
  size_t es = kind_size(c);
  for (size_t bi = 0; bi < nb; bi++) {
    size_t oa = bcast_offset(bi, brank, dims, sa), ob = bcast_offset(bi, brank, dims, sb);
    gemm_kind(c, M, N, K, (const char *)a + oa * M * K * es, false,
              (const char *)b + ob * K * N * es, false, (char *)res + bi * M * N * es);
  }
  store_kind(out, res, c);
  return TC_STATUS_OK;
}

static bool matmul_half_packed(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                               tc_rt_tensor *out);

static tc_status run_matmul(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *A = input(in, n_in, 0), *B = input(in, n_in, 1);
  if (!A || !B)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "MatMul needs two inputs");
  int32_t dt = A->dtype;
  if (!tc_dtype_is_float(dt) && dt != TC_DTYPE_I32 && dt != TC_DTYPE_I64 && dt != TC_DTYPE_U32 &&
      dt != TC_DTYPE_U64)
    return tc_kernel_bad_dtype(k, 0, dt);
  if (B->dtype != dt)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input dtypes differ (%s vs %s)", tc_dtype_name(dt),
                          tc_dtype_name(B->dtype));
  if (k->gemm_algo == TC_GEMM_ALGO_PACKED && tc_matmul_packed(k, A, B, out))
    return TC_STATUS_OK;
  if ((dt == TC_DTYPE_BF16 || dt == TC_DTYPE_F16) && matmul_half_packed(k, A, B, out))
    return TC_STATUS_OK;
  ckind c = kind_of(dt);
  const void *a = as_kind(k, A, c), *b = as_kind(k, B, c);
  if (!a || !b)
    return NOMEM(k);
  return matmul_nd(k, A, B, a, b, c, dt, out);
}

/* Whether A [..., K] (dtype adt) times B [K, N] ([N, K] when tb; bdt, the
 * node's input 1) can take the packed-weights path: fast kernels, A of rank
 * 2 or more, a nonempty product. M (A's rows), K and N are set. */
static bool packed_operands(const tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                            int32_t adt, int32_t bdt, bool tb, size_t *M, size_t *K, size_t *N) {
  if (!tc_fast_kernels_enabled() || A->dtype != adt || B->dtype != bdt || A->rank < 2 ||
      B->rank != 2 || A->dims[A->rank - 1] != B->dims[tb ? 1 : 0] || k->node->n_inputs < 2)
    return false;
  *K = (size_t)B->dims[tb ? 1 : 0], *N = (size_t)B->dims[tb ? 0 : 1];
  *M = *K ? tc_rt_numel(A) / *K : 0;
  return *M && *N;
}

/* out: A's dims with the last one N, float32 (int32 sums fit it too). */
static bool packed_out(tc_kernel_ctx *k, const tc_rt_tensor *A, size_t N, tc_rt_tensor *out) {
  int64_t dims[TC_MAX_RANK];
  memcpy(dims, A->dims, A->rank * sizeof *dims);
  dims[A->rank - 1] = (int64_t)N;
  return tc_kernel_alloc_uninit(k, out, TC_DTYPE_F32, A->rank, dims) == TC_STATUS_OK;
}

/* Half A times a half initializer B with B packed once, always when it
 * applies (the general path widens both on every call): bfloat16 on
 * oneDNN's bfloat16 matmul; float16 as float32 (A widened, the result
 * rounded once). False, out left for the caller, otherwise. */
static bool matmul_half_packed(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                               tc_rt_tensor *out) {
  size_t M, K, N;
  int64_t dims[TC_MAX_RANK];
  int32_t dt = A->dtype;
  if (!packed_operands(k, A, B, dt, dt, false, &M, &K, &N))
    return false;
  memcpy(dims, A->dims, A->rank * sizeof *dims);
  dims[A->rank - 1] = (int64_t)N;
  if (tc_kernel_alloc_uninit(k, out, dt, A->rank, dims) != TC_STATUS_OK)
    return false;
  if (dt == TC_DTYPE_BF16)
    return tc_dnnl_bmatmul_run(k->node->inputs[1], M, K, N, A->data, B->data, out->data);
  float *a = scratch(k, M * K, sizeof *a), *y = scratch(k, M * N, sizeof *y);
  if (!a || !y)
    return false;
  tc_vf16_to_f32(a, A->data, M * K);
  if (!tc_dnnl_hmatmul_run(k->node->inputs[1], M, K, N, a, B->data, y))
    return false;
  tc_vf32_to_f16(out->data, y, M * N);
  return true;
}

bool tc_matmul_packed(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                      tc_rt_tensor *out) {
  size_t M, K, N;
  return packed_operands(k, A, B, TC_DTYPE_F32, TC_DTYPE_F32, false, &M, &K, &N) &&
         packed_out(k, A, N, out) &&
         tc_dnnl_matmul_run(k->node->inputs[1], M, K, N, A->data, B->data, out->data);
}

/* Integer matrix product with zero points: A - a_zp (a scalar or one per row
 * of A) times B - b_zp (a scalar or one per column of B), into int32. */
static tc_status int_minus_zp(tc_kernel_ctx *k, const tc_rt_tensor *t, const tc_rt_tensor *zp,
                              bool per_row, const char *what, const void **res) {
  size_t n = tc_rt_numel(t);
  uint64_t *p = scratch(k, n, sizeof *p);
  if (!p)
    return NOMEM(k);
  size_t nz = zp ? tc_rt_numel(zp) : 0;
  size_t rows = t->rank >= 2 ? (size_t)t->dims[t->rank - 2] : 1;
  size_t cols = t->rank >= 1 ? (size_t)t->dims[t->rank - 1] : 1;
  if (zp && nz != 1 && !(zp->rank == 1 && nz == (per_row ? rows : cols)))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                          "%s must be a scalar or hold one value per %s (got %zu values)", what,
                          per_row ? "row of A" : "column of B", nz);
  for (size_t i = 0; i < n; i++) {
    int64_t z = 0;
    if (zp)
      z = tc_rt_get_i64(zp, nz == 1 ? 0 : per_row ? (i / cols) % rows : i % cols);
    p[i] = (uint64_t)(tc_rt_get_i64(t, i) - z);
  }
  *res = p;
  return TC_STATUS_OK;
}

/* MatMulInteger through oneDNN's exact int8 GEMM (tc_gemm_q8), product by
 * product over the broadcast batch. *done stays false when that path does
 * not apply (nothing allocated) or a GEMM fails (out of memory); the
 * reference then runs. */
static tc_status matmulinteger_fast(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                                    const tc_rt_tensor *az, const tc_rt_tensor *bz,
                                    tc_rt_tensor *out, bool *done) {
  *done = false;
  if (!tc_fast_kernels_enabled() || A->rank == 0 || B->rank == 0)
    return TC_STATUS_OK;
  bool a1 = A->rank == 1, b1 = B->rank == 1;
  size_t M = a1 ? 1 : (size_t)A->dims[A->rank - 2], K = (size_t)A->dims[A->rank - 1];
  size_t Kb = b1 ? (size_t)B->dims[0] : (size_t)B->dims[B->rank - 2];
  size_t N = b1 ? 1 : (size_t)B->dims[B->rank - 1];
  size_t naz = az ? tc_rt_numel(az) : 0, nbz = bz ? tc_rt_numel(bz) : 0;
  if (K != Kb || !tc_gemm_q8_exact(K) || (naz > 1 && (az->rank != 1 || naz != M)) ||
      (nbz > 1 && (b1 || bz->rank != 1 || nbz != N)))
    return TC_STATUS_OK;
  if (!a1 && B->rank == 2 && naz <= 1 && A->rank > 2) {
    /* [..., M, K] x [K, N]: one GEMM over all rows of A */
    size_t rows = tc_rt_numel(A) / (K ? K : 1);
    int32_t z[2] = {naz ? (int32_t)tc_rt_get_i64(az, 0) : 0, 0};
    int32_t *bzv = scratch(k, nbz, sizeof *bzv);
    if (!bzv)
      return NOMEM(k);
    for (size_t i = 0; i < nbz; i++)
      bzv[i] = (int32_t)tc_rt_get_i64(bz, i);
    int64_t odims[TC_MAX_RANK];
    memcpy(odims, A->dims, A->rank * sizeof *odims);
    odims[A->rank - 1] = (int64_t)N;
    tc_status st = tc_kernel_alloc(k, out, TC_DTYPE_I32, A->rank, odims);
    if (st)
      return st;
    *done = rows * N == 0 || tc_gemm_q8(rows, N, K, A->dtype, A->data, naz ? z : NULL, naz,
                                        B->dtype, B->data, nbz ? bzv : NULL, nbz, out->data);
    return TC_STATUS_OK;
  }
  tc_rt_tensor ba = {0}, bb = {0};
  ba.rank = a1 ? 0 : A->rank - 2;
  bb.rank = b1 ? 0 : B->rank - 2;
  memcpy(ba.dims, A->dims, ba.rank * sizeof(int64_t));
  memcpy(bb.dims, B->dims, bb.rank * sizeof(int64_t));
  const tc_rt_tensor *bt[2] = {&ba, &bb};
  size_t brank;
  int64_t dims[TC_MAX_RANK + 2], sa[TC_MAX_RANK], sb[TC_MAX_RANK];
  tc_status st = tc_broadcast_shape(k, bt, 2, &brank, dims);
  if (st)
    return st;
  tc_broadcast_strides(&ba, brank, dims, sa);
  tc_broadcast_strides(&bb, brank, dims, sb);
  size_t orank = brank;
  if (!a1)
    dims[orank++] = (int64_t)M;
  if (!b1)
    dims[orank++] = (int64_t)N;
  int32_t *azv = scratch(k, naz, sizeof *azv), *bzv = scratch(k, nbz, sizeof *bzv);
  if (!azv || !bzv)
    return NOMEM(k);
  for (size_t i = 0; i < naz; i++)
    azv[i] = (int32_t)tc_rt_get_i64(az, i);
  for (size_t i = 0; i < nbz; i++)
    bzv[i] = (int32_t)tc_rt_get_i64(bz, i);
  if ((st = tc_kernel_alloc(k, out, TC_DTYPE_I32, orank, dims)))
    return st;
  size_t nb = prod_dims(dims, 0, brank);
  for (size_t bi = 0; M && N && bi < nb; bi++) {
    size_t oa = bcast_offset(bi, brank, dims, sa), ob = bcast_offset(bi, brank, dims, sb);
    if (!tc_gemm_q8(M, N, K, A->dtype, (const uint8_t *)A->data + oa * M * K, naz ? azv : NULL, naz,
                    B->dtype, (const uint8_t *)B->data + ob * K * N, nbz ? bzv : NULL, nbz,
                    (int32_t *)out->data + bi * M * N))
      return TC_STATUS_OK;
  }
  *done = true;
  return TC_STATUS_OK;
}

static tc_status run_matmulinteger(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                   tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *A = input(in, n_in, 0), *B = input(in, n_in, 1);
  const tc_rt_tensor *az = input(in, n_in, 2), *bz = input(in, n_in, 3);
  if (!A || !B)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "MatMulInteger needs two inputs");
  const tc_rt_tensor *chk[4] = {A, B, az, bz};
  for (size_t i = 0; i < 4; i++)
    if (chk[i] && chk[i]->dtype != TC_DTYPE_U8 && chk[i]->dtype != TC_DTYPE_I8)
      return tc_kernel_bad_dtype(k, i, chk[i]->dtype);
  bool done;
  tc_status st = matmulinteger_fast(k, A, B, az, bz, out, &done);
  if (st || done)
    return st;
  /* a 1-D A is a single row: its zero point is then a scalar */
  const void *a, *b;
  if ((st = int_minus_zp(k, A, az, true, "a_zero_point", &a)) ||
      (st = int_minus_zp(k, B, bz, false, "b_zero_point", &b)))
    return st;
  return matmul_nd(k, A, B, a, b, CK_INT, TC_DTYPE_I32, out);
}

/* MatMulIntegerToFloat (ai.tacoc, from quantize-dynamic; com.microsoft):
 * Y = float(MatMulInteger(A, B, a_zero_point, b_zero_point)) * (a_scale *
 * b_scale) (+ bias), a_scale a scalar, b_scale and bias scalars or [N]. The
 * int32 product goes into Y's own memory (same size) and is scaled in place,
 * with the same float operations as the unfused Cast, Mul and Add. */
typedef struct mmi_job {
  void *y;
  const int32_t *corr;    /* per column: a's zero point times B's column sum (or NULL) */
  const float *sc, *bias; /* per column: a_scale * b_scale, and the bias (or NULL) */
  size_t n;
} mmi_job;

/* The int32 product of uint8 A (zero point az, scalar) and B, an int8
 * initializer without zero point, through oneDNN's int8 matmul with B packed
 * once (tc_dnnl_qmatmul_run) into out (float32-sized, A's dims with N last);
 * corr [N] gets az times B's column sums; b_value is B's initializer (the
 * cache's key); tb: B given [N, K]. False, having done nothing the caller
 * needs, when this path does not apply. */
static bool mmi_packed(tc_kernel_ctx *k, const tc_value *b_value, bool tb, const tc_rt_tensor *A,
                       const tc_rt_tensor *B, const tc_rt_tensor *az, const tc_rt_tensor *bz,
                       tc_rt_tensor *out, int32_t **corr) {
  size_t M, K, N;
  if (!packed_operands(k, A, B, TC_DTYPE_U8, TC_DTYPE_I8, tb, &M, &K, &N) ||
      (az && (az->dtype != TC_DTYPE_U8 || tc_rt_numel(az) != 1)) || !tc_gemm_q8_exact(K))
    return false;
  if (bz) /* B's zero point: all zeros or not here */
    for (size_t i = 0; i < tc_rt_numel(bz); i++)
      if (tc_rt_get_i64(bz, i) != 0)
        return false;
  int32_t *cs = tc_arena_alloc(k->arena, N * sizeof *cs);
  if (!cs || !packed_out(k, A, N, out))
    return false;
  if (!tc_dnnl_qmatmul_run(b_value, M, K, N, A->data, B->data, tb, out->data, cs))
    return false;
  int32_t zp = az ? *(const uint8_t *)az->data : 0;
  for (size_t c = 0; c < N; c++)
    cs[c] *= zp;
  *corr = zp ? cs : NULL;
  return true;
}

static void mmi_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const mmi_job *j = ctx;
  for (size_t r = lo; r < hi; r++)
    tc_vdequant_i32_f32((float *)j->y + r * j->n, (const int32_t *)j->y + r * j->n, j->corr, j->sc,
                        j->bias, j->n);
}

/* MatMulIntegerToFloat; b_value: B's value (an initializer packs once); tb:
 * B given [N, K] (a Gemm's transB). */
static tc_status mmi_to_float(tc_kernel_ctx *k, const tc_value *b_value, bool tb,
                              const tc_rt_tensor *const *in, size_t n_in, tc_rt_tensor *out,
                              size_t n_out) {
  const tc_rt_tensor *A = input(in, n_in, 0), *B = input(in, n_in, 1), *as = input(in, n_in, 2),
                     *bs = input(in, n_in, 3), *bias = input(in, n_in, 6);
  if (!A || !B || !as || !bs)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "A, B, a_scale and b_scale are required");
  if (as->dtype != TC_DTYPE_F32 || tc_rt_numel(as) != 1)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "a_scale must be one float32 value");
  if (tb && B->rank != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "a transposed B must be 2-D");
  size_t N = tb        ? (size_t)B->dims[0]
             : B->rank ? (size_t)B->dims[B->rank - 1]
                       : 1,
         nb = tc_rt_numel(bs);
  if (bs->dtype != TC_DTYPE_F32 || (nb != 1 && nb != N) || (nb == N && bs->rank > 1))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "b_scale must be float32, one value or [%zu]",
                          N);
  size_t nbias = bias ? tc_rt_numel(bias) : 0;
  if (bias && (bias->dtype != TC_DTYPE_F32 || (nbias != 1 && nbias != N) || bias->rank > 1))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "bias must be float32, one value or [%zu]", N);
  const tc_rt_tensor *mi_in[4] = {A, B, input(in, n_in, 4), input(in, n_in, 5)};
  int32_t *corr = NULL;
  tc_rt_tensor bt;
  if (!mmi_packed(k, b_value, tb, A, B, mi_in[2], mi_in[3], &out[0], &corr)) {
    if (tb) { /* B [N, K] transposed to [K, N] in scratch */
      size_t K = (size_t)B->dims[1];
      unsigned char *d = tc_arena_alloc(k->arena, K * N + 1);
      if (!d)
        return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
      for (size_t r = 0; r < N; r++)
        for (size_t c = 0; c < K; c++)
          d[c * N + r] = ((const unsigned char *)B->data)[r * K + c];
      bt = *B;
      bt.dims[0] = (int64_t)K, bt.dims[1] = (int64_t)N, bt.data = d;
      mi_in[1] = &bt;
    }
    tc_status st = run_matmulinteger(k, mi_in, 4, out, n_out);
    if (st)
      return st;
  }
  size_t rows = N ? tc_rt_numel(&out[0]) / N : 0;
  float *sc = tc_arena_alloc(k->arena, 2 * (N + 1) * sizeof *sc), *bv = sc ? sc + N + 1 : NULL;
  if (!sc)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory for a scratch buffer");
  const float *bsv = bs->data, *biasv = bias ? bias->data : NULL;
  float a = *(const float *)as->data;
  for (size_t c = 0; c < N; c++) {
    sc[c] = a * bsv[nb == 1 ? 0 : c]; /* the unfused Mul(a_scale, b_scale) */
    if (biasv)
      bv[c] = biasv[nbias == 1 ? 0 : c];
  }
  mmi_job j = {.y = out[0].data, .corr = corr, .sc = sc, .bias = biasv ? bv : NULL, .n = N};
  tc_parallel_for(rows, tc_parallel_grain(N * 2), mmi_rows, &j);
  out[0].dtype = TC_DTYPE_F32;
  return TC_STATUS_OK;
}

static tc_status run_mmi_to_float(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                  tc_rt_tensor *out, size_t n_out) {
  return mmi_to_float(k, k->node->n_inputs > 1 ? k->node->inputs[1] : NULL, false, in, n_in, out,
                      n_out);
}

tc_status tc_matmul_qdq_run(tc_kernel_ctx *k, const tc_rt_tensor *xq, const tc_rt_tensor *xs,
                            const tc_rt_tensor *xz, const tc_rt_tensor *wq, const tc_rt_tensor *ws,
                            const tc_value *wq_value, tc_rt_tensor *out) {
  const tc_rt_tensor *in[5] = {xq, wq, xs, ws, xz};
  return mmi_to_float(k, wq_value, false, in, 5, out, 1);
}

tc_status tc_gemm_qdq_run(tc_kernel_ctx *k, const tc_rt_tensor *xq, const tc_rt_tensor *xs,
                          const tc_rt_tensor *xz, const tc_rt_tensor *wq, const tc_rt_tensor *ws,
                          bool tb, const tc_rt_tensor *bias, const tc_value *wq_value,
                          tc_rt_tensor *out) {
  if (!xq || xq->rank != 2 || !wq || wq->rank != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "the int8 Gemm needs 2-D A and B");
  const tc_rt_tensor *in[7] = {xq, wq, xs, ws, xz, NULL, bias};
  return mmi_to_float(k, wq_value, tb, in, 7, out, 1);
}

static tc_status check_gemm(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v1[] = {"alpha", "beta", "transA", "transB", "broadcast", NULL};
  static const char *const v7[] = {"alpha", "beta", "transA", "transB", NULL};
  return tc_kernel_check_attrs(n, diag, opset >= 7 ? v7 : v1);
}

/* float32 Gemm on oneDNN: Y = beta * C broadcast (strides cs), then
 * Y = alpha A B + Y in one sgemm. False when oneDNN declines (Y is then
 * rewritten by the caller's general path). */
static bool gemm_f32_fast(const tc_rt_tensor *A, const tc_rt_tensor *B, const tc_rt_tensor *C,
                          const int64_t *cs, bool ta, bool tb, size_t M, size_t N, size_t K,
                          float alpha, float beta, float *y) {
  bool acc = C && beta != 0.0f;
  if (acc) {
    const float *c = C->data;
    for (size_t i = 0; i < M; i++) {
      const float *ci = c + i * (size_t)cs[0];
      float *yi = y + i * N;
      if (cs[1] == 0) {
        for (size_t j = 0; j < N; j++)
          yi[j] = beta * ci[0];
      } else if (beta == 1.0f) {
        memcpy(yi, ci, N * sizeof *yi);
      } else {
        for (size_t j = 0; j < N; j++)
          yi[j] = beta * ci[j];
      }
    }
  }
  return tc_sgemm_beta(ta, tb, M, N, K, alpha, A->data, ta ? M : K, B->data, tb ? K : N,
                       acc ? 1.0f : 0.0f, y, N);
}

/* bfloat16 / float16 Gemm with B a half initializer (fast kernels, A not
 * transposed): the product on the packed path (tc_dnnl_gemm_half_run) in
 * float32, alpha, beta * C (widened) added in float32, rounded once into
 * out. False when the path does not apply (out is then rewritten by the
 * caller's general path). */
static bool gemm_half_packed(tc_kernel_ctx *k, const tc_rt_tensor *A, const tc_rt_tensor *B,
                             const tc_rt_tensor *C, const int64_t *cs, bool tb, size_t M, size_t N,
                             size_t K, float alpha, float beta, tc_rt_tensor *out) {
  int32_t dt = A->dtype;
  if (!tc_fast_kernels_enabled() || k->node->n_inputs < 2 || !k->node->inputs[1])
    return false;
  float *y = scratch(k, M * N, sizeof *y), *a32 = NULL;
  if (!y)
    return false;
  if (dt == TC_DTYPE_F16) {
    if (!(a32 = scratch(k, M * K, sizeof *a32)))
      return false;
    tc_vf16_to_f32(a32, A->data, M * K);
  }
  if (!tc_dnnl_gemm_half_run(k->node->inputs[1], dt, tb, M, K, N, a32 ? (const void *)a32 : A->data,
                             B->data, y))
    return false;
  /* beta * C widened once (C broadcasts by the strides cs) */
  float *cf = NULL;
  if (C && beta != 0.0f) {
    size_t nc = tc_rt_numel(C);
    if (!(cf = scratch(k, nc, sizeof *cf)))
      return false;
    tc_vhalf_to_f32(dt, cf, C->data, nc);
    if (beta != 1.0f)
      tc_vscale_f32(cf, nc, beta);
  }
  for (size_t i = 0; i < M; i++) {
    float *yi = y + i * N;
    const float *ci = cf ? cf + i * (size_t)cs[0] : NULL;
    if (alpha != 1.0f)
      tc_vscale_f32(yi, N, alpha);
    if (ci && cs[1])
      tc_vadd_inplace_f32(yi, ci, N);
    for (size_t j = 0; ci && !cs[1] && j < N; j++)
      yi[j] += ci[0];
  }
  tc_vf32_to_half(dt, out->data, y, M * N);
  return true;
}

static tc_status run_gemm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *A = input(in, n_in, 0), *B = input(in, n_in, 1), *C = input(in, n_in, 2);
  if (!A || !B)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "Gemm needs A and B");
  int32_t dt = A->dtype;
  if (!tc_dtype_is_float(dt) && dt != TC_DTYPE_I32 && dt != TC_DTYPE_I64 && dt != TC_DTYPE_U32 &&
      dt != TC_DTYPE_U64)
    return tc_kernel_bad_dtype(k, 0, dt);
  if (B->dtype != dt || (C && C->dtype != dt))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input dtypes differ");
  if (A->rank != 2 || B->rank != 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "A and B must be 2-D (ranks %zu and %zu)", A->rank,
                          B->rank);
  const tc_node *n = k->node;
  bool ta = tc_attr_int(n, "transA", 0) != 0, tb = tc_attr_int(n, "transB", 0) != 0;
  double alpha = tc_attr_float(n, "alpha", 1.0f), beta = tc_attr_float(n, "beta", 1.0f);
  size_t M = (size_t)A->dims[ta ? 1 : 0], K = (size_t)A->dims[ta ? 0 : 1];
  size_t Kb = (size_t)B->dims[tb ? 1 : 0], N = (size_t)B->dims[tb ? 0 : 1];
  if (K != Kb)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "inner dimensions differ (%zu vs %zu)", K, Kb);
  int64_t dims[2] = {(int64_t)M, (int64_t)N}, cs[2] = {0, 0};
  tc_status st;
  if (C && (st = unidir_strides(k, C, "C", 2, dims, cs)))
    return st;
  if ((st = tc_kernel_alloc_uninit(k, out, dt, 2, dims)))
    return st;
  if (M * N == 0)
    return TC_STATUS_OK;
  if (dt == TC_DTYPE_F32 && tc_fast_kernels_enabled() &&
      gemm_f32_fast(A, B, C, cs, ta, tb, M, N, K, (float)alpha, (float)beta, out->data))
    return TC_STATUS_OK;
  if (tc_dtype_is_half(dt) && !ta &&
      gemm_half_packed(k, A, B, C, cs, tb, M, N, K, (float)alpha, (float)beta, out))
    return TC_STATUS_OK;
  ckind c = kind_of(dt);
  const void *a = as_kind(k, A, c), *b = as_kind(k, B, c);
  void *res = result_buf(k, out, c);
  if (!a || !b || !res)
    return NOMEM(k);
  gemm_kind(c, M, N, K, a, ta, b, tb, res);
  if (c == CK_F32 && res != out->data && !(alpha == 1.0 && (!C || beta == 0.0))) {
    /* a half Y: alpha and beta * C applied to the float32 product, Y
     * rounded once (the product is not rounded to Y's type first) */
    float *r = res;
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < N; j++) {
        double v = alpha * r[i * N + j];
        if (C && beta != 0.0)
          v += beta * tc_rt_get_f64(C, i * (size_t)cs[0] + j * (size_t)cs[1]);
        r[i * N + j] = (float)v;
      }
    store_kind(out, res, c);
    return TC_STATUS_OK;
  }
  store_kind(out, res, c);
  if (alpha == 1.0 && (!C || beta == 0.0))
    return TC_STATUS_OK;
  bool exact_int = c == CK_INT && alpha == 1.0 && beta == 1.0;
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < N; j++) {
      size_t o = i * N + j, co = i * (size_t)cs[0] + j * (size_t)cs[1];
      if (exact_int) {
        tc_rt_set_i64(out, o,
                      (int64_t)((uint64_t)tc_rt_get_i64(out, o) + (uint64_t)tc_rt_get_i64(C, co)));
        continue;
      }
      double v = alpha * tc_rt_get_f64(out, o);
      if (C && beta != 0.0)
        v += beta * tc_rt_get_f64(C, co);
      tc_rt_set_f64(out, o, v);
    }
  return TC_STATUS_OK;
}

tc_status tc_gemm_run(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                      tc_rt_tensor *out, size_t n_out) {
  return run_gemm(k, in, n_in, out, n_out);
}

/* ---- Softmax, LogSoftmax, Hardmax ---- */

typedef enum smax_op { SM_SOFTMAX, SM_LOGSOFTMAX, SM_HARDMAX } smax_op;

static tc_status check_axis_only(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axis", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* Splits x around an axis: outer x len x inner, row elements inner apart.
 * Before opset 13 (coerce) the input is seen as 2-D [outer, rest]. */
static tc_status split_axis(tc_kernel_ctx *k, const tc_rt_tensor *x, int64_t axis, bool coerce,
                            size_t *outer, size_t *len, size_t *inner) {
  int64_t ax = tc_axis(axis, x->rank);
  if (ax < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                          (long long)axis, x->rank);
  *outer = prod_dims(x->dims, 0, (size_t)ax);
  if (coerce) {
    *len = prod_dims(x->dims, (size_t)ax, x->rank);
    *inner = 1;
  } else {
    *len = (size_t)x->dims[ax];
    *inner = prod_dims(x->dims, (size_t)ax + 1, x->rank);
  }
  return TC_STATUS_OK;
}

/* v rounded to a 16-bit float dtype (identity for the others). */
static double round_to(int32_t dt, double v) {
  if (dt == TC_DTYPE_F16)
    return tc_f16_to_f32(tc_f32_to_f16((float)v));
  if (dt == TC_DTYPE_BF16)
    return tc_bf16_to_f32(tc_f32_to_bf16((float)v));
  return v;
}

/* Softmax of one 16-bit row rounded step by step the way the ONNX reference
 * (numpy in the storage dtype) does: x - max, exp, the sum (bfloat16: each
 * addition rounded; float16: one rounding of a wide sum), the quotient.
 * Computing in double and rounding once is closer to the exact value, but
 * lands one unit off the reference outputs of the expanded Attention tests. */
static void softmax_16(const tc_rt_tensor *x, tc_rt_tensor *out, size_t base, size_t len,
                       size_t inner, double mx) {
  int32_t dt = x->dtype;
  double sum = 0;
  for (size_t j = 0; j < len; j++) {
    size_t e = base + j * inner;
    double v = round_to(dt, exp(round_to(dt, tc_rt_get_f64(x, e) - mx)));
    tc_rt_set_f64(out, e, v); /* exact: v is representable */
    sum = dt == TC_DTYPE_BF16 ? round_to(dt, sum + v) : sum + v;
  }
  sum = round_to(dt, sum);
  for (size_t j = 0; j < len; j++) {
    size_t e = base + j * inner;
    tc_rt_set_f64(out, e, tc_rt_get_f64(out, e) / sum);
  }
}

typedef struct smax_job {
  const tc_rt_tensor *x;
  tc_rt_tensor *out;
  size_t len, inner;
  smax_op op;
} smax_job;

/* Row r (the reference): elements base + j * inner, accumulated in double. */
static void smax_row(const smax_job *jb, size_t r) {
  const tc_rt_tensor *x = jb->x;
  tc_rt_tensor *out = jb->out;
  size_t len = jb->len, inner = jb->inner, base = r / inner * len * inner + r % inner;
  double mx = -INFINITY;
  size_t arg = 0;
  for (size_t j = 0; j < len; j++) {
    double v = tc_rt_get_f64(x, base + j * inner);
    if (j == 0 || v > mx)
      mx = v, arg = j;
  }
  if (jb->op == SM_HARDMAX) {
    if (len)
      tc_rt_set_f64(out, base + arg * inner, 1.0);
    return;
  }
  if (jb->op == SM_SOFTMAX && (x->dtype == TC_DTYPE_F16 || x->dtype == TC_DTYPE_BF16)) {
    softmax_16(x, out, base, len, inner, mx);
    return;
  }
  double sum = 0;
  for (size_t j = 0; j < len; j++)
    sum += exp(tc_rt_get_f64(x, base + j * inner) - mx);
  double lsum = log(sum);
  for (size_t j = 0; j < len; j++) {
    double d = tc_rt_get_f64(x, base + j * inner) - mx;
    tc_rt_set_f64(out, base + j * inner, jb->op == SM_SOFTMAX ? exp(d) / sum : d - lsum);
  }
}

/* Sum of n floats in double, four running sums (the order is fixed, so the
 * result is too). */
static double sum_f32(const float *v, size_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += v[i];
    s1 += v[i + 1];
    s2 += v[i + 2];
    s3 += v[i + 3];
  }
  for (; i < n; i++)
    s0 += v[i];
  return (s0 + s1) + (s2 + s3);
}

/* A contiguous float32 row, Softmax or LogSoftmax: exp in float (vmath.c),
 * the sum in double. */
static void smax_row_f32(const smax_job *jb, size_t r) {
  size_t len = jb->len;
  const float *x = (const float *)jb->x->data + r * len;
  float *y = (float *)jb->out->data + r * len;
  if (len == 0)
    return;
  /* the largest element not NaN: a NaN anywhere makes the whole row NaN
   * either way (through exp and the sum), as in smax_row */
  float mx = tc_vmax_f32(x, len);
  if (jb->op == SM_SOFTMAX) { /* vector passes: exp(x - max) with its sum, then the scaling */
    tc_vscale_f32(y, len, (float)(1.0 / (double)tc_vexp_sub_sum_f32(y, x, len, mx)));
    return;
  }
  for (size_t j = 0; j < len; j++)
    y[j] = x[j] - mx;
  tc_vexp_f32(y, y, len);
  double lsum = log(sum_f32(y, len));
  for (size_t j = 0; j < len; j++)
    y[j] = (float)((double)x[j] - mx - lsum);
}

static void smax_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const smax_job *jb = ctx;
  bool f32 = jb->x->dtype == TC_DTYPE_F32 && jb->inner == 1 && jb->op != SM_HARDMAX;
  for (size_t r = lo; r < hi; r++) {
    if (f32)
      smax_row_f32(jb, r);
    else
      smax_row(jb, r);
  }
}

/* Float32 Softmax / LogSoftmax over a non-last axis (inner > 1: a channel
 * softmax of a segmentation head), across SMAX_COLS inner positions at a
 * time: the positions' maximum over the axis, exp(x - max) row by row with
 * their float sum, then the scaling (or x - max - log(sum) in double); the vector
 * sets' loops, where the reference walked each position's strided column
 * in double (a [1, 64, 160, 160] channel Softmax: 31 ms). */
enum { SMAX_COLS = 512 };

static void smax_cols_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const smax_job *jb = ctx;
  size_t len = jb->len, inner = jb->inner, blocks = (inner + SMAX_COLS - 1) / SMAX_COLS;
  float mx[SMAX_COLS], sum[SMAX_COLS];
  for (size_t b = lo; b < hi; b++) {
    size_t o = b / blocks, i0 = b % blocks * SMAX_COLS;
    size_t n = inner - i0 < SMAX_COLS ? inner - i0 : SMAX_COLS;
    const float *x = (const float *)jb->x->data + o * len * inner + i0;
    float *y = (float *)jb->out->data + o * len * inner + i0;
    memcpy(mx, x, n * sizeof *mx);
    for (size_t j = 1; j < len; j++)
      tc_vbinary_f32(mx, mx, x + j * inner, n, 'M');
    memset(sum, 0, n * sizeof *sum);
    for (size_t j = 0; j < len; j++) {
      float *yj = y + j * inner;
      tc_vbinary_f32(yj, x + j * inner, mx, n, '-');
      tc_vexp_f32(yj, yj, n);
      tc_vbinary_f32(sum, sum, yj, n, '+');
    }
    if (jb->op == SM_SOFTMAX) {
      for (size_t i = 0; i < n; i++)
        sum[i] = 1.0f / sum[i];
      for (size_t j = 0; j < len; j++)
        tc_vbinary_f32(y + j * inner, y + j * inner, sum, n, '*');
      continue;
    }
    double lsum[SMAX_COLS]; /* log-softmax: x - max - log(sum) in double, as the rows */
    for (size_t i = 0; i < n; i++)
      lsum[i] = log((double)sum[i]);
    for (size_t j = 0; j < len; j++)
      for (size_t i = 0; i < n; i++)
        y[j * inner + i] = (float)((double)x[j * inner + i] - mx[i] - lsum[i]);
  }
}

static tc_status softmax_run(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, smax_op op) {
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  bool coerce = k->opset < 13;
  int64_t axis = tc_attr_int(k->node, "axis", coerce ? 1 : -1);
  size_t outer, len, inner;
  tc_status st = split_axis(k, x, axis, coerce, &outer, &len, &inner);
  if (st)
    return st;
  /* Hardmax writes only the ones */
  st = op == SM_HARDMAX ? tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims)
                        : tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, x->dims);
  if (st)
    return st;
  smax_job j = {.x = x, .out = out, .len = len, .inner = inner, .op = op};
  if (!tc_fast_kernels_enabled()) {
    for (size_t r = 0; r < outer * inner; r++)
      smax_row(&j, r);
    return TC_STATUS_OK;
  }
  if (x->dtype == TC_DTYPE_F32 && inner > 1 && len > 0 && op != SM_HARDMAX) {
    size_t blocks = outer * ((inner + SMAX_COLS - 1) / SMAX_COLS);
    tc_parallel_for(blocks, tc_parallel_grain(len * SMAX_COLS * 4), smax_cols_piece, &j);
    return TC_STATUS_OK;
  }
  tc_parallel_for(outer * inner, tc_parallel_grain(len * 16), smax_piece, &j);
  return TC_STATUS_OK;
}

static tc_status run_softmax(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return softmax_run(k, in, n_in, out, SM_SOFTMAX);
}
static tc_status run_logsoftmax(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return softmax_run(k, in, n_in, out, SM_LOGSOFTMAX);
}
static tc_status run_hardmax(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  return softmax_run(k, in, n_in, out, SM_HARDMAX);
}

/* ---- normalizations ---- */

static bool float_stash(int64_t s) {
  return s == TC_DTYPE_F32 || s == TC_DTYPE_F64 || s == TC_DTYPE_F16 || s == TC_DTYPE_BF16;
}

static tc_status check_stash(const tc_node *n, tc_diag *diag) {
  int64_t s = tc_attr_int(n, "stash_type", 1);
  if (!float_stash(s))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "stash_type %lld is not a floating type", (long long)s);
  return TC_STATUS_OK;
}

static tc_status check_layernorm(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axis", "epsilon", "stash_type", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  return st ? st : check_stash(n, diag);
}

/* Mean and variance (population) of block elements x[base + j*step]. */
static void moments(const tc_rt_tensor *x, size_t base, size_t n, size_t step, double *mean,
                    double *var) {
  double s = 0, s2 = 0;
  for (size_t j = 0; j < n; j++)
    s += tc_rt_get_f64(x, base + j * step);
  double m = n ? s / (double)n : 0;
  for (size_t j = 0; j < n; j++) {
    double d = tc_rt_get_f64(x, base + j * step) - m;
    s2 += d * d;
  }
  *mean = m;
  *var = n ? s2 / (double)n : 0;
}

typedef struct tnorm_job {
  const tc_rt_tensor *x;
  tc_rt_tensor *y, *mean_t, *inv_t; /* statistics outputs may be NULL */
  const param_view *ps, *pb;
  size_t blk;
  double eps;
  bool rms;
  /* float32 x still to be written as add_a + add_b, row by row (skip
   * LayerNorm's sum: each row summed just before it is normalized, in the
   * piece that normalizes it), or NULL */
  const float *add_a, *add_b;
} tnorm_job;

/* Normalizes row o of the trailing-block walk (the reference). */
static void tnorm_row(const tnorm_job *j, size_t o) {
  const tc_rt_tensor *x = j->x;
  size_t base = o * j->blk, blk = j->blk;
  double mean = 0, var;
  if (j->rms) {
    double s2 = 0;
    for (size_t e = 0; e < blk; e++) {
      double v = tc_rt_get_f64(x, base + e);
      s2 += v * v;
    }
    var = blk ? s2 / (double)blk : 0;
  } else {
    moments(x, base, blk, 1, &mean, &var);
  }
  double inv = 1.0 / sqrt(var + j->eps);
  if (j->mean_t)
    tc_rt_set_f64(j->mean_t, o, mean);
  if (j->inv_t)
    tc_rt_set_f64(j->inv_t, o, inv);
  for (size_t e = 0; e < blk; e++) {
    double v = (tc_rt_get_f64(x, base + e) - mean) * inv;
    tc_rt_set_f64(j->y, base + e, v * param_get(j->ps, e, 1.0) + param_get(j->pb, e, 0.0));
  }
}

/* A contiguous float32 parameter (Scale, B) of one value per block element,
 * or NULL. */
static const float *direct_f32(const param_view *p) {
  return p->t && p->direct && p->t->dtype == TC_DTYPE_F32 ? p->t->data : NULL;
}

/* Rows [o, o + rows) of x written as add_a + add_b (see tnorm_job). */
static void tnorm_add_rows(const tnorm_job *j, size_t o, size_t rows) {
  size_t b = o * j->blk;
  tc_vbinary_f32((float *)j->x->data + b, j->add_a + b, j->add_b + b, rows * j->blk, '+');
}

static void tnorm_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const tnorm_job *j = ctx;
  const float *sc = direct_f32(j->ps), *bi = direct_f32(j->pb);
  if (j->x->dtype != TC_DTYPE_F32 || !sc || (j->pb->t && !bi)) {
    if (j->add_a)
      tnorm_add_rows(j, lo, hi - lo);
    for (size_t o = lo; o < hi; o++)
      tnorm_row(j, o);
    return;
  }
  size_t blk = j->blk;
  for (size_t o = lo; o < hi; o++) {
    float *x = (float *)j->x->data + o * blk, *y = (float *)j->y->data + o * blk;
    double mean, var;
    if (j->add_a) /* the row's sum written in the pass that sums it */
      tc_vsum_moments_f32(x, j->add_a + o * blk, j->add_b + o * blk, blk, !j->rms, &mean, &var);
    else
      tc_vmoments_f32(x, blk, !j->rms, &mean, &var);
    double inv = 1.0 / sqrt(var + j->eps);
    if (j->mean_t)
      tc_rt_set_f64(j->mean_t, o, mean);
    if (j->inv_t)
      tc_rt_set_f64(j->inv_t, o, inv);
    tc_vnorm_f32(y, x, blk, mean, inv, sc, bi);
  }
}

/* LayerNormalization (mean-centred) and RMSNormalization share the
 * normalize-the-trailing-block walk; with add_a, float32 X is written as
 * add_a + add_b on the way (tnorm_job). */
static tc_status trailing_norm_add(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                   tc_rt_tensor *out, size_t n_out, bool rms, const float *add_a,
                                   const float *add_b) {
  const tc_rt_tensor *x = input(in, n_in, 0), *scale = input(in, n_in, 1);
  const tc_rt_tensor *bias = rms ? NULL : input(in, n_in, 2);
  if (!x || !scale)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and Scale are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (!tc_dtype_is_float(scale->dtype))
    return tc_kernel_bad_dtype(k, 1, scale->dtype);
  if (bias && !tc_dtype_is_float(bias->dtype))
    return tc_kernel_bad_dtype(k, 2, bias->dtype);
  const tc_node *n = k->node;
  int64_t a = tc_attr_int(n, "axis", -1);
  int64_t ax = tc_axis(a, x->rank);
  if (ax < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                          (long long)a, x->rank);
  double eps = tc_attr_float(n, "epsilon", 1e-5f);
  int32_t stash = (int32_t)tc_attr_int(n, "stash_type", 1);
  if (!float_stash(stash))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "stash_type %d is not supported", stash);
  size_t brank = x->rank - (size_t)ax;
  const int64_t *bdims = x->dims + ax;
  size_t outer = prod_dims(x->dims, 0, (size_t)ax), blk = prod_dims(bdims, 0, brank);
  param_view ps, pb;
  tc_status st;
  if ((st = param_init(k, &ps, scale, "Scale", brank, bdims)) ||
      (st = param_init(k, &pb, bias, "B", brank, bdims)))
    return st;
  if ((st = tc_kernel_alloc_uninit(k, &out[0], x->dtype, x->rank, x->dims)))
    return st;
  /* optional Mean / InvStdDev: X's shape with the normalized dims set to 1 */
  int64_t sdims[TC_MAX_RANK];
  for (size_t d = 0; d < x->rank; d++)
    sdims[d] = (int64_t)d < ax ? x->dims[d] : 1;
  tc_rt_tensor *mean_t = NULL, *inv_t = NULL;
  if (!rms && n_out > 1 && n->outputs[1]) {
    if ((st = tc_kernel_alloc(k, &out[1], stash, x->rank, sdims)))
      return st;
    mean_t = &out[1];
  }
  if (!rms && n_out > 2 && n->outputs[2]) {
    if ((st = tc_kernel_alloc(k, &out[2], stash, x->rank, sdims)))
      return st;
    inv_t = &out[2];
  }
  tnorm_job j = {.x = x,
                 .y = &out[0],
                 .mean_t = mean_t,
                 .inv_t = inv_t,
                 .ps = &ps,
                 .pb = &pb,
                 .blk = blk,
                 .eps = eps,
                 .rms = rms,
                 .add_a = add_a,
                 .add_b = add_b};
  if (!tc_fast_kernels_enabled()) { /* add_a is NULL then (run_skip_layernorm) */
    for (size_t o = 0; o < outer; o++)
      tnorm_row(&j, o);
    return TC_STATUS_OK;
  }
  tc_parallel_for(outer, tc_parallel_grain(blk * 8), tnorm_piece, &j);
  return TC_STATUS_OK;
}

/* t (NULL stays NULL) as float32: itself, or a half one's converted copy
 * in the run's arena (NULL on OOM, *oom set). */
static const tc_rt_tensor *f32_of(tc_kernel_ctx *k, const tc_rt_tensor *t, bool *oom) {
  if (!t || !tc_dtype_is_half(t->dtype))
    return t;
  tc_rt_tensor *c = tc_arena_alloc(k->arena, sizeof *c);
  void *d = c ? scratch(k, tc_rt_numel(t), sizeof(float)) : NULL;
  if (!d) {
    *oom = true;
    return NULL;
  }
  *c = *t;
  c->dtype = TC_DTYPE_F32;
  c->data = d;
  c->bytes = tc_rt_numel(t) * sizeof(float);
  tc_vhalf_to_f32(t->dtype, d, t->data, tc_rt_numel(t));
  return c;
}

/* A bfloat16 or float16 normalization whose only output is Y (fast
 * kernels): the float32 rows on float32 copies of X (with x_add: X + x_add,
 * rounded to X's dtype into sum16 first, as the unfused Add), Scale and B,
 * Y rounded once. *done false: the caller runs the general path. */
static tc_status norm_half(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                           tc_rt_tensor *out, bool rms, const tc_rt_tensor *x_add, void *sum16,
                           bool *done) {
  const tc_rt_tensor *x = in[0];
  int32_t dt = x->dtype;
  *done = false;
  if (!tc_fast_kernels_enabled() || !tc_dtype_is_half(dt))
    return TC_STATUS_OK;
  bool oom = false;
  const tc_rt_tensor *f[3];
  tc_rt_tensor xs;
  if (x_add) { /* the sum, rounded to X's dtype, then widened */
    const tc_rt_tensor *a = f32_of(k, x, &oom), *b = f32_of(k, x_add, &oom);
    if (oom)
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
    xs = *a;
    xs.data = (void *)a->data; /* the widened X's scratch takes the sum */
    tc_vbinary_f32(xs.data, a->data, b->data, tc_rt_numel(x), '+');
    tc_vf32_to_half(dt, sum16, xs.data, tc_rt_numel(x));
    tc_vhalf_to_f32(dt, xs.data, sum16, tc_rt_numel(x));
    f[0] = &xs;
  } else {
    f[0] = f32_of(k, x, &oom);
  }
  for (size_t i = 1; i < 3; i++)
    f[i] = i < n_in ? f32_of(k, in[i], &oom) : NULL;
  if (oom)
    return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  tc_rt_tensor y32;
  tc_status st = trailing_norm_add(k, f, n_in < 3 ? n_in : 3, &y32, 1, rms, NULL, NULL);
  if (st || (st = tc_kernel_alloc_uninit(k, &out[0], dt, x->rank, x->dims)))
    return st;
  tc_vf32_to_half(dt, out[0].data, y32.data, tc_rt_numel(x));
  *done = true;
  return TC_STATUS_OK;
}

static tc_status trailing_norm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out, bool rms) {
  bool only_y = true, done;
  for (size_t i = 1; i < n_out && i < k->node->n_outputs; i++)
    only_y &= k->node->outputs[i] == NULL;
  if (only_y && n_in > 1 && in[0] && in[1]) {
    tc_status st = norm_half(k, in, n_in, out, rms, NULL, NULL, &done);
    if (st || done)
      return st;
  }
  return trailing_norm_add(k, in, n_in, out, n_out, rms, NULL, NULL);
}

static tc_status run_layernorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  return trailing_norm(k, in, n_in, out, n_out, false);
}

static tc_status run_rmsnorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                             tc_rt_tensor *out, size_t n_out) {
  return trailing_norm(k, in, n_in, out, n_out, true);
}

/* ai.tacoc.SkipLayerNormalization (tacoc's fuse-skip-layernorm; the model
 * carries the decomposition as a function): Sum = X + Skip (same shapes),
 * Y = LayerNormalization(Sum, Scale, B; axis, epsilon). Outputs Y and,
 * optionally, Sum. */
static tc_status check_skip_layernorm(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axis", "epsilon", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  /* ONNX Runtime's op: its mean / inv_std_var outputs and its extra bias
   * input are not implemented. */
  if (!st && tc_domain_equal(n->domain, "com.microsoft") &&
      ((n->n_outputs > 1 && n->outputs[1]) || (n->n_outputs > 2 && n->outputs[2]) ||
       (n->n_inputs > 4 && n->inputs[4])))
    st = tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                     "com.microsoft.SkipLayerNormalization with a bias input or mean/inv_std_var "
                     "outputs is not implemented");
  return st;
}

static tc_status run_skip_layernorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                    tc_rt_tensor *out, size_t n_out) {
  const tc_rt_tensor *x = input(in, n_in, 0), *skip = input(in, n_in, 1);
  if (!x || !skip)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and Skip are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (skip->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 1, skip->dtype);
  bool same = skip->rank == x->rank;
  for (size_t d = 0; same && d < x->rank; d++)
    same = skip->dims[d] == x->dims[d];
  if (!same)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and Skip must have the same shape");
  tc_rt_tensor sum, *sp = &sum;
  tc_status st;
  /* The sum is output 1 of tacoc's op, output 3 of ONNX Runtime's. */
  size_t si = tc_domain_equal(k->node->domain, "com.microsoft") ? 3 : 1;
  if (n_out > si && k->node->outputs[si]) {
    if ((st = tc_kernel_alloc_uninit(k, &out[si], x->dtype, x->rank, x->dims)))
      return st;
    sp = &out[si];
  } else {
    sum = *x;
    if (!(sum.data = tc_arena_alloc(k->arena, x->bytes ? x->bytes : 1)))
      return tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory");
  }
  const tc_rt_tensor *norm_in[3] = {sp, input(in, n_in, 2), input(in, n_in, 3)};
  if (x->dtype == TC_DTYPE_F32 && tc_fast_kernels_enabled()) /* each row summed, then normalized */
    return trailing_norm_add(k, norm_in, 3, out, 1, false, x->data, skip->data);
  if (tc_dtype_is_half(x->dtype) && norm_in[1]) { /* the sum rounded, then float32 rows */
    const tc_rt_tensor *bin[3] = {x, norm_in[1], norm_in[2]};
    bool done;
    st = norm_half(k, bin, 3, out, false, skip, sp->data, &done);
    if (st || done)
      return st;
  }
  size_t count = tc_rt_numel(x);
  for (size_t i = 0; i < count; i++)
    tc_rt_set_f64(sp, i, tc_rt_get_f64(x, i) + tc_rt_get_f64(skip, i));
  return trailing_norm(k, norm_in, 3, out, 1, false);
}

/* ai.tacoc.EmbedLayerNormalization[WithSegment] (tacoc's fuse-embed-layernorm;
 * the model carries the decomposition as a function): for ids [B, S],
 * Y[b, s] = LayerNorm(W[ids[b, s]] + P[s] (+ T[seg[b, s]])) over the width H,
 * float32 tables. */
static tc_status check_embed_ln(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"epsilon", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static bool id_at(const tc_rt_tensor *ids, size_t i, int64_t rows, int64_t *out) {
  int64_t v = tc_rt_get_i64(ids, i);
  *out = v;
  return v >= 0 && v < rows;
}

/* The embedding sum and LayerNorm of the ids [B, S]: y[b, s] = LayerNorm(W[ids]
 * + P[pos] (+ T[seg])), pos = s or pos_ids[b, s] (pos_ids [B, S] or [1, S]),
 * sum (may be NULL) gets the sum before normalizing. */
typedef struct embed_args {
  const tc_rt_tensor *ids, *seg, *w, *p, *t, *gamma, *beta, *pos;
} embed_args;

static tc_status embed_ln(tc_kernel_ctx *k, const embed_args *a, tc_rt_tensor *y_out,
                          tc_rt_tensor *sum_out) {
  const tc_rt_tensor *ids = a->ids, *sids = a->seg, *w = a->w, *p = a->p, *t = a->t;
  bool seg = sids != NULL;
  if (ids->rank != 2 || !tc_dtype_is_int(ids->dtype))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "ids must be a 2-D integer tensor");
  if (seg && (sids->rank != 2 || sids->dims[0] != ids->dims[0] || sids->dims[1] != ids->dims[1] ||
              !tc_dtype_is_int(sids->dtype)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "segment ids must be shaped like the ids");
  if (seg != (t != NULL))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "segment ids and their table come together");
  const tc_rt_tensor *tabs[3] = {w, p, t};
  int64_t h = w->rank == 2 ? w->dims[1] : 0;
  for (int i = 0; i < 3; i++)
    if (tabs[i] && (tabs[i]->dtype != TC_DTYPE_F32 || tabs[i]->rank != 2 || tabs[i]->dims[1] != h))
      return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED,
                            "the tables must be float32 2-D tensors of one width");
  if (a->gamma->dtype != TC_DTYPE_F32 || a->beta->dtype != TC_DTYPE_F32 ||
      tc_rt_numel(a->gamma) != (size_t)h || tc_rt_numel(a->beta) != (size_t)h)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "gamma and beta must be float32 of width %lld",
                          (long long)h);
  int64_t B = ids->dims[0], S = ids->dims[1];
  const tc_rt_tensor *pos = a->pos;
  if (pos && (pos->rank != 2 || !tc_dtype_is_int(pos->dtype) || pos->dims[1] != S ||
              (pos->dims[0] != B && pos->dims[0] != 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "position ids must be [%lld or 1, %lld] integers",
                          (long long)B, (long long)S);
  if (!pos && S > p->dims[0])
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "sequence length %lld exceeds the %lld position embeddings", (long long)S,
                          (long long)p->dims[0]);
  int64_t dims[3] = {B, S, h};
  tc_status st = tc_kernel_alloc_uninit(k, y_out, TC_DTYPE_F32, 3, dims);
  if (!st && sum_out)
    st = tc_kernel_alloc_uninit(k, sum_out, TC_DTYPE_F32, 3, dims);
  if (st)
    return st;
  double eps = tc_attr_float(k->node, "epsilon", 1e-12f);
  const float *W = w->data, *P = p->data, *T = t ? t->data : NULL, *g = a->gamma->data,
              *bb = a->beta->data;
  float *y = y_out->data;
  for (int64_t r = 0; r < B * S; r++) {
    int64_t wi, ti = 0, pi = r % S;
    if (!id_at(ids, (size_t)r, w->dims[0], &wi))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "id %lld at position %lld is out of range",
                            (long long)wi, (long long)r);
    if (seg && !id_at(sids, (size_t)r, t->dims[0], &ti))
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "segment id %lld at position %lld is out of range", (long long)ti,
                            (long long)r);
    if (pos && !id_at(pos, (size_t)(pos->dims[0] == 1 ? r % S : r), p->dims[0], &pi))
      return tc_kernel_fail(k, TC_STATUS_INVALID,
                            "position id %lld at position %lld is out of range", (long long)pi,
                            (long long)r);
    float *row = y + r * h;
    const float *pw = W + wi * h, *pp = P + pi * h, *pt = T ? T + ti * h : NULL;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < h; i++) {
      row[i] = pw[i] + pp[i] + (pt ? pt[i] : 0.0f);
      mean += row[i];
    }
    if (sum_out)
      memcpy((float *)sum_out->data + r * h, row, (size_t)h * sizeof *row);
    mean /= (double)h;
    for (int64_t i = 0; i < h; i++)
      var += (row[i] - mean) * (row[i] - mean);
    double inv = 1.0 / sqrt(var / (double)h + eps);
    for (int64_t i = 0; i < h; i++)
      row[i] = (float)((row[i] - mean) * inv) * g[i] + bb[i];
  }
  return TC_STATUS_OK;
}

static tc_status run_embed_ln(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  if (n_in != 5 && n_in != 7)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "takes 5 inputs, or 7 with segments");
  for (size_t i = 0; i < n_in; i++)
    if (!in[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu is required", i);
  bool seg = n_in == 7;
  embed_args a = {in[0],
                  seg ? in[1] : NULL,
                  in[seg ? 2 : 1],
                  in[seg ? 3 : 2],
                  seg ? in[4] : NULL,
                  in[seg ? 5 : 3],
                  in[seg ? 6 : 4],
                  NULL};
  return embed_ln(k, &a, &out[0], NULL);
}

/* com.microsoft.EmbedLayerNormalization (ONNX Runtime's contrib op, what
 * tacoc writes with --compat ort and ONNX Runtime's transformer optimizer
 * writes): input_ids, segment_ids?, word, position and segment? tables,
 * gamma, beta, mask?, position_ids?; outputs y, mask_index? (per batch row,
 * the number of mask entries equal to 1; zeros without a mask) and
 * embedding_sum? (the sum before normalizing). */
static tc_status check_embed_ln_ms(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"epsilon", "mask_index_type", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

static tc_status run_embed_ln_ms(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                 tc_rt_tensor *out, size_t n_out) {
  if (n_in < 7)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "takes 7 to 9 inputs");
  static const size_t required[] = {0, 2, 3, 5, 6};
  for (size_t i = 0; i < sizeof required / sizeof *required; i++)
    if (!in[required[i]])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu is required", required[i]);
  const tc_rt_tensor *mask = n_in > 7 ? in[7] : NULL;
  embed_args a = {in[0], in[1], in[2], in[3], in[4], in[5], in[6], n_in > 8 ? in[8] : NULL};
  bool want_sum = n_out > 2 && k->node->outputs[2];
  tc_status st = embed_ln(k, &a, &out[0], want_sum ? &out[2] : NULL);
  if (st || n_out < 2 || !k->node->outputs[1])
    return st;
  int64_t B = a.ids->dims[0], S = a.ids->dims[1];
  if (mask && (mask->rank != 2 || mask->dims[0] != B || mask->dims[1] != S ||
               !tc_dtype_is_int(mask->dtype)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "mask must be a [%lld, %lld] integer tensor",
                          (long long)B, (long long)S);
  if ((st = tc_kernel_alloc(k, &out[1], TC_DTYPE_I32, 1, &B)))
    return st;
  int32_t *mi = out[1].data;
  for (int64_t b = 0; mask && b < B; b++)
    for (int64_t s = 0; s < S; s++)
      mi[b] += tc_rt_get_i64(mask, (size_t)(b * S + s)) == 1;
  return TC_STATUS_OK;
}

static tc_status check_batchnorm(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v1[] = {"epsilon", "momentum",        "spatial",
                                   "is_test", "consumed_inputs", NULL};
  static const char *const v7[] = {"epsilon", "momentum", "spatial", NULL};
  static const char *const v9[] = {"epsilon", "momentum", NULL};
  static const char *const v14[] = {"epsilon", "momentum", "training_mode", NULL};
  const char *const *ok = opset >= 14 ? v14 : opset >= 9 ? v9 : opset >= 7 ? v7 : v1;
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  if (tc_attr_int(n, "training_mode", 0) != 0)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "training_mode=1 is not supported (inference only)");
  if (opset < 9 && tc_attr_int(n, "spatial", 1) == 0)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "spatial=0 is not supported");
  if (opset < 7 && tc_attr_has(n, "is_test") && tc_attr_int(n, "is_test", 0) == 0)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "is_test=0 (training) is not supported");
  for (size_t i = 1; i < n->n_outputs; i++)
    if (n->outputs[i])
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                         "training outputs (running statistics) are not supported");
  return TC_STATUS_OK;
}

/* Per (batch, channel) walk of an N x C x D1... tensor. */
static tc_status nchw(tc_kernel_ctx *k, const tc_rt_tensor *x, size_t *N, size_t *C, size_t *S) {
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (x->rank < 2)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "input must have rank 2 or more (N x C x ...)");
  *N = (size_t)x->dims[0];
  *C = (size_t)x->dims[1];
  *S = prod_dims(x->dims, 2, x->rank);
  return TC_STATUS_OK;
}

static tc_status need_vec(tc_kernel_ctx *k, const tc_rt_tensor *t, size_t i, size_t len,
                          const char *what) {
  if (!t)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s is required", what);
  if (!tc_dtype_is_float(t->dtype))
    return tc_kernel_bad_dtype(k, i, t->dtype);
  if (tc_rt_numel(t) != len)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "%s must hold %zu values (has %zu)", what, len,
                          tc_rt_numel(t));
  return TC_STATUS_OK;
}

typedef struct bn_job {
  const tc_rt_tensor *x;
  tc_rt_tensor *out;
  size_t C, S;
  double *g, *m, *b; /* per channel: scale / sqrt(var + eps), mean, bias */
} bn_job;

/* Elements [lo, hi) of an N x C x S tensor, plane by plane. */
static void bn_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const bn_job *j = ctx;
  bool f32 = j->x->dtype == TC_DTYPE_F32;
  const float *xf = j->x->data;
  float *yf = j->out->data;
  for (size_t i = lo; i < hi;) {
    size_t plane = i / j->S, end = (plane + 1) * j->S < hi ? (plane + 1) * j->S : hi;
    size_t c = plane % j->C;
    double g = j->g[c], m = j->m[c], bb = j->b[c];
    if (f32) {
      tc_vaffine_f32(yf + i, xf + i, end - i, (float)m, (float)g, (float)bb);
      i = end;
    } else {
      for (; i < end; i++)
        tc_rt_set_f64(j->out, i, (tc_rt_get_f64(j->x, i) - m) * g + bb);
    }
  }
}

static tc_status run_batchnorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input X");
  if (tc_attr_int(k->node, "training_mode", 0))
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "training_mode=1 is not supported");
  size_t N, C, S;
  tc_status st = nchw(k, x, &N, &C, &S);
  if (st)
    return st;
  static const char *const names[] = {"scale", "B", "input_mean", "input_var"};
  for (size_t i = 1; i < 5; i++)
    if ((st = need_vec(k, input(in, n_in, i), i, C, names[i - 1])))
      return st;
  const tc_rt_tensor *sc = in[1], *b = in[2], *mu = in[3], *var = in[4];
  double eps = tc_attr_float(k->node, "epsilon", 1e-5f);
  if ((st = tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, x->dims)))
    return st;
  if (!tc_fast_kernels_enabled()) {
    for (size_t c = 0; c < C; c++) {
      double g = tc_rt_get_f64(sc, c) / sqrt(tc_rt_get_f64(var, c) + eps);
      double m = tc_rt_get_f64(mu, c), bb = tc_rt_get_f64(b, c);
      for (size_t nn = 0; nn < N; nn++) {
        size_t base = (nn * C + c) * S;
        for (size_t j = 0; j < S; j++)
          tc_rt_set_f64(out, base + j, (tc_rt_get_f64(x, base + j) - m) * g + bb);
      }
    }
    return TC_STATUS_OK;
  }
  /* per-channel terms computed once in double, elements split across
   * threads; float32 planes in float (tc_vaffine_f32: within a few units in
   * the last place of the reference's double arithmetic) */
  bn_job j = {.x = x, .out = out, .C = C, .S = S};
  j.g = scratch(k, C, sizeof(double));
  j.m = scratch(k, C, sizeof(double));
  j.b = scratch(k, C, sizeof(double));
  if (!j.g || !j.m || !j.b)
    return NOMEM(k);
  for (size_t c = 0; c < C; c++) {
    j.g[c] = tc_rt_get_f64(sc, c) / sqrt(tc_rt_get_f64(var, c) + eps);
    j.m[c] = tc_rt_get_f64(mu, c);
    j.b[c] = tc_rt_get_f64(b, c);
  }
  tc_parallel_for(N * C * S, tc_parallel_grain(2), bn_piece, &j);
  return TC_STATUS_OK;
}

static tc_status check_eps(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"epsilon", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* InstanceNormalization and GroupNormalization: statistics over each group
 * of C / G consecutive channels of one batch item (InstanceNormalization:
 * G = C), then scale and bias per channel or per group. */
typedef struct gnorm_job {
  const tc_rt_tensor *x, *sc, *bi;
  tc_rt_tensor *out;
  size_t C, G, S;
  double eps;
  bool per_channel; /* scale / bias per channel (else per group) */
  bool instance;    /* InstanceNormalization's grouping of the terms */
} gnorm_job;

/* Group p (batch item p / G, group p % G): the reference. */
static void gnorm_group(const gnorm_job *j, size_t p) {
  size_t cpg = j->C / j->G, g = p % j->G, base = p * cpg * j->S;
  double mean, var;
  moments(j->x, base, cpg * j->S, 1, &mean, &var);
  double inv = 1.0 / sqrt(var + j->eps);
  for (size_t c = 0; c < cpg; c++) {
    size_t q = j->per_channel ? g * cpg + c : g;
    double sc = tc_rt_get_f64(j->sc, q), bb = tc_rt_get_f64(j->bi, q);
    if (j->instance) {
      double gg = sc / sqrt(var + j->eps);
      for (size_t e = 0; e < j->S; e++)
        tc_rt_set_f64(j->out, base + e, (tc_rt_get_f64(j->x, base + e) - mean) * gg + bb);
      continue;
    }
    for (size_t e = 0; e < j->S; e++) {
      size_t o = base + c * j->S + e;
      tc_rt_set_f64(j->out, o, (tc_rt_get_f64(j->x, o) - mean) * inv * sc + bb);
    }
  }
}

/* Groups [lo, hi): float32 with the statistics from four running sums,
 * other dtypes as the reference. */
static void gnorm_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const gnorm_job *j = ctx;
  if (j->x->dtype != TC_DTYPE_F32) {
    for (size_t p = lo; p < hi; p++)
      gnorm_group(j, p);
    return;
  }
  size_t cpg = j->C / j->G, n = cpg * j->S;
  for (size_t p = lo; p < hi; p++) {
    const float *x = (const float *)j->x->data + p * n;
    float *y = (float *)j->out->data + p * n;
    double mean, var;
    tc_vmoments_f32(x, n, true, &mean, &var);
    double inv = 1.0 / sqrt(var + j->eps);
    for (size_t c = 0; c < cpg; c++) {
      size_t q = j->per_channel ? p % j->G * cpg + c : p % j->G;
      double gg = inv * tc_rt_get_f64(j->sc, q), bb = tc_rt_get_f64(j->bi, q);
      for (size_t e = c * j->S; e < (c + 1) * j->S; e++)
        y[e] = (float)((x[e] - mean) * gg + bb);
    }
  }
}

static tc_status run_instancenorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                  tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input");
  size_t N, C, S;
  tc_status st = nchw(k, x, &N, &C, &S);
  if (st || (st = need_vec(k, input(in, n_in, 1), 1, C, "scale")) ||
      (st = need_vec(k, input(in, n_in, 2), 2, C, "B")))
    return st;
  double eps = tc_attr_float(k->node, "epsilon", 1e-5f);
  if ((st = tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, x->dims)))
    return st;
  gnorm_job j = {.x = x,
                 .out = out,
                 .sc = in[1],
                 .bi = in[2],
                 .C = C,
                 .G = C,
                 .S = S,
                 .eps = eps,
                 .per_channel = true,
                 .instance = true};
  if (!tc_fast_kernels_enabled()) {
    for (size_t p = 0; p < N * C; p++)
      gnorm_group(&j, p);
    return TC_STATUS_OK;
  }
  tc_parallel_for(N * C, tc_parallel_grain(S * 4), gnorm_piece, &j);
  return TC_STATUS_OK;
}

static tc_status check_groupnorm(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v18[] = {"epsilon", "num_groups", NULL};
  static const char *const v21[] = {"epsilon", "num_groups", "stash_type", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, opset >= 21 ? v21 : v18);
  if (st)
    return st;
  if (!tc_attr_has(n, "num_groups"))
    return tc_diag_set(diag, TC_STATUS_INVALID, node_name(n), n->op_type,
                       "the num_groups attribute is required");
  return check_stash(n, diag);
}

static tc_status run_groupnorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                               tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input");
  size_t N, C, S;
  tc_status st = nchw(k, x, &N, &C, &S);
  if (st)
    return st;
  int64_t G = tc_attr_int(k->node, "num_groups", 0);
  if (G <= 0 || C % (size_t)G)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "num_groups (%lld) must be positive and divide the %zu channels",
                          (long long)G, C);
  /* opset 18: one scale/bias per group; opset 21: one per channel */
  bool per_group = k->opset < 21;
  size_t plen = per_group ? (size_t)G : C, cpg = C / (size_t)G;
  if ((st = need_vec(k, input(in, n_in, 1), 1, plen, "scale")) ||
      (st = need_vec(k, input(in, n_in, 2), 2, plen, "bias")))
    return st;
  double eps = tc_attr_float(k->node, "epsilon", 1e-5f);
  if ((st = tc_kernel_alloc_uninit(k, out, x->dtype, x->rank, x->dims)))
    return st;
  gnorm_job j = {.x = x,
                 .out = out,
                 .sc = in[1],
                 .bi = in[2],
                 .C = C,
                 .G = (size_t)G,
                 .S = S,
                 .eps = eps,
                 .per_channel = !per_group};
  if (!tc_fast_kernels_enabled()) {
    for (size_t p = 0; p < N * (size_t)G; p++)
      gnorm_group(&j, p);
    return TC_STATUS_OK;
  }
  tc_parallel_for(N * (size_t)G, tc_parallel_grain(cpg * S * 4), gnorm_piece, &j);
  return TC_STATUS_OK;
}

static tc_status check_lpnorm(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axis", "p", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  int64_t p = tc_attr_int(n, "p", 2);
  if (p != 1 && p != 2)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, node_name(n), n->op_type,
                       "p=%lld is not supported (1 or 2)", (long long)p);
  return TC_STATUS_OK;
}

static tc_status run_lpnorm(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  int64_t p = tc_attr_int(k->node, "p", 2);
  if (p != 1 && p != 2)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "p=%lld is not supported", (long long)p);
  size_t outer, len, inner;
  tc_status st = split_axis(k, x, tc_attr_int(k->node, "axis", -1), false, &outer, &len, &inner);
  if (st || (st = tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims)))
    return st;
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < inner; i++) {
      size_t base = o * len * inner + i;
      double s = 0;
      for (size_t j = 0; j < len; j++) {
        double v = tc_rt_get_f64(x, base + j * inner);
        s += p == 1 ? fabs(v) : v * v;
      }
      double norm = p == 1 ? s : sqrt(s);
      /* a zero vector stays zero (as the reference does) */
      for (size_t j = 0; j < len; j++)
        tc_rt_set_f64(out, base + j * inner,
                      norm == 0 ? 0.0 : tc_rt_get_f64(x, base + j * inner) / norm);
    }
  return TC_STATUS_OK;
}

static tc_status check_mvn(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"axes", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

/* (X - mean) / (sqrt(var) + 1e-9) over the axes (default 0, 2, 3), as the
 * function body defines it. */
static tc_status run_mvn(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  static const int64_t dflt[] = {0, 2, 3};
  const int64_t *axes = dflt;
  ptrdiff_t na = tc_attr_ints(k->node, "axes", &axes);
  if (na < 0) {
    axes = dflt;
    na = 3;
  }
  bool red[TC_MAX_RANK] = {false};
  for (ptrdiff_t i = 0; i < na; i++) {
    int64_t ax = tc_axis(axes[i], x->rank);
    if (ax < 0)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "axis %lld is out of range for rank %zu",
                            (long long)axes[i], x->rank);
    red[ax] = true;
  }
  tc_status st = tc_kernel_alloc(k, out, x->dtype, x->rank, x->dims);
  if (st)
    return st;
  size_t n = tc_rt_numel(x);
  if (!n)
    return TC_STATUS_OK;
  /* group index of every element: the kept dims in row-major order */
  int64_t gstr[TC_MAX_RANK], s = 1;
  for (size_t d = x->rank; d-- > 0;) {
    gstr[d] = red[d] ? 0 : s;
    if (!red[d])
      s *= x->dims[d];
  }
  size_t ng = (size_t)s, cnt = n / ng;
  double *sum = scratch(k, ng, sizeof(double)), *sq = scratch(k, ng, sizeof(double));
  size_t *gi = scratch(k, n, sizeof(size_t));
  if (!sum || !sq || !gi)
    return NOMEM(k);
  for (size_t i = 0; i < n; i++) {
    gi[i] = bcast_offset(i, x->rank, x->dims, gstr);
    sum[gi[i]] += tc_rt_get_f64(x, i);
  }
  for (size_t g = 0; g < ng; g++)
    sum[g] /= (double)cnt;
  for (size_t i = 0; i < n; i++) {
    double d = tc_rt_get_f64(x, i) - sum[gi[i]];
    sq[gi[i]] += d * d;
  }
  for (size_t g = 0; g < ng; g++)
    sq[g] = sqrt(sq[g] / (double)cnt) + 1e-9;
  for (size_t i = 0; i < n; i++)
    tc_rt_set_f64(out, i, (tc_rt_get_f64(x, i) - sum[gi[i]]) / sq[gi[i]]);
  return TC_STATUS_OK;
}

/* ---- TopK ---- */

static tc_status check_topk(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const v1[] = {"axis", "k", NULL};
  static const char *const v10[] = {"axis", NULL};
  static const char *const v11[] = {"axis", "largest", "sorted", NULL};
  return tc_kernel_check_attrs(n, diag, opset >= 11 ? v11 : opset >= 10 ? v10 : v1);
}

typedef struct topk_key {
  double f;
  int64_t i;
  int64_t idx;
} topk_key;

/* Ordering for TopK: a comes first when it is larger (smaller), ties by index. */
static bool topk_before(const topk_key *a, const topk_key *b, bool fl, bool u64, bool largest) {
  int c;
  if (fl) {
    /* NaN counts as the largest value */
    bool an = isnan(a->f), bn = isnan(b->f);
    c = an || bn ? (an && !bn) - (bn && !an) : (a->f > b->f) - (a->f < b->f);
  } else if (u64) {
    c = ((uint64_t)a->i > (uint64_t)b->i) - ((uint64_t)a->i < (uint64_t)b->i);
  } else {
    c = (a->i > b->i) - (a->i < b->i);
  }
  if (!largest)
    c = -c;
  return c > 0 || (c == 0 && a->idx < b->idx);
}

static void topk_sort(topk_key *v, topk_key *tmp, size_t n, bool fl, bool u64, bool largest) {
  if (n < 2)
    return;
  size_t h = n / 2;
  topk_sort(v, tmp, h, fl, u64, largest);
  topk_sort(v + h, tmp, n - h, fl, u64, largest);
  size_t i = 0, j = h, o = 0;
  while (i < h && j < n)
    tmp[o++] = topk_before(&v[j], &v[i], fl, u64, largest) ? v[j++] : v[i++];
  while (i < h)
    tmp[o++] = v[i++];
  while (j < n)
    tmp[o++] = v[j++];
  memcpy(v, tmp, n * sizeof *v);
}

static tc_status run_topk(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                          tc_rt_tensor *out, size_t n_out) {
  const tc_rt_tensor *x = input(in, n_in, 0);
  if (!x)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing input");
  bool fl = tc_dtype_is_float(x->dtype);
  if (!fl && !tc_dtype_is_int(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  int64_t kk;
  if (k->opset >= 10) {
    const tc_rt_tensor *kt = input(in, n_in, 1);
    if (!kt || tc_rt_numel(kt) != 1)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "K must be a 1-element tensor");
    if (kt->dtype != TC_DTYPE_I64)
      return tc_kernel_bad_dtype(k, 1, kt->dtype);
    kk = tc_rt_get_i64(kt, 0);
  } else {
    if (!tc_attr_has(k->node, "k"))
      return tc_kernel_fail(k, TC_STATUS_INVALID, "the k attribute is required");
    kk = tc_attr_int(k->node, "k", 0);
  }
  bool largest = tc_attr_int(k->node, "largest", 1) != 0;
  /* sorted=0 leaves the order unspecified: sorted output satisfies it */
  size_t outer, len, inner;
  int64_t axis = tc_attr_int(k->node, "axis", -1);
  tc_status st = split_axis(k, x, axis, false, &outer, &len, &inner);
  if (st)
    return st;
  if (kk < 0 || (size_t)kk > len)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "K=%lld is outside [0, %zu]", (long long)kk, len);
  int64_t ax = tc_axis(axis, x->rank), dims[TC_MAX_RANK];
  memcpy(dims, x->dims, x->rank * sizeof *dims);
  dims[ax] = kk;
  if ((st = tc_kernel_alloc(k, &out[0], x->dtype, x->rank, dims)))
    return st;
  tc_rt_tensor idx_scratch, *idx = n_out > 1 ? &out[1] : &idx_scratch;
  if ((st = tc_kernel_alloc(k, idx, TC_DTYPE_I64, x->rank, dims)))
    return st;
  topk_key *keys = scratch(k, len, sizeof *keys), *tmp = scratch(k, len, sizeof *tmp);
  if (!keys || !tmp)
    return NOMEM(k);
  bool u64 = x->dtype == TC_DTYPE_U64;
  size_t K = (size_t)kk;
  for (size_t o = 0; o < outer; o++)
    for (size_t i = 0; i < inner; i++) {
      size_t base = o * len * inner + i, obase = o * K * inner + i;
      for (size_t j = 0; j < len; j++) {
        size_t e = base + j * inner;
        keys[j].idx = (int64_t)j;
        if (fl)
          keys[j].f = tc_rt_get_f64(x, e);
        else
          keys[j].i = tc_rt_get_i64(x, e);
      }
      topk_sort(keys, tmp, len, fl, u64, largest);
      for (size_t j = 0; j < K; j++) {
        size_t oe = obase + j * inner;
        if (fl)
          tc_rt_set_f64(&out[0], oe, keys[j].f);
        else
          tc_rt_set_i64(&out[0], oe, keys[j].i);
        ((int64_t *)idx->data)[oe] = keys[j].idx;
      }
    }
  return TC_STATUS_OK;
}

/* ---- Einsum ---- */

static tc_status check_einsum(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"equation", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  if (!tc_attr_has(n, "equation"))
    return tc_diag_set(diag, TC_STATUS_INVALID, node_name(n), n->op_type,
                       "the equation attribute is required");
  return TC_STATUS_OK;
}

#define EIN_MAX_OPS 16
#define EIN_LABELS 64 /* 52 letters, then up to 12 ellipsis dims */

static int ein_label(char c) {
  if (c >= 'a' && c <= 'z')
    return c - 'a';
  if (c >= 'A' && c <= 'Z')
    return 26 + c - 'A';
  return -1;
}

/* Parses one term (letters and at most one "...") into labels; the ellipsis
 * expands to ell_rank labels 52.. (right-aligned). Returns the count or -1. */
static int ein_term(const char *s, size_t len, int ell_rank, int *labels, bool *has_ell) {
  int n = 0;
  *has_ell = false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == ' ')
      continue;
    if (c == '.') {
      if (i + 2 >= len || s[i + 1] != '.' || s[i + 2] != '.' || *has_ell)
        return -1;
      *has_ell = true;
      i += 2;
      for (int e = 0; e < ell_rank; e++) {
        if (n >= TC_MAX_RANK * 2)
          return -1;
        labels[n++] = 52 + e;
      }
      continue;
    }
    int l = ein_label(c);
    if (l < 0 || n >= TC_MAX_RANK * 2)
      return -1;
    labels[n++] = l;
  }
  return n;
}

static tc_status run_einsum(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                            tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const char *eq = tc_attr_string(k->node, "equation", NULL, k->arena);
  if (!eq)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "missing equation");
  if (n_in == 0 || n_in > EIN_MAX_OPS)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "Einsum with %zu inputs", n_in);
  int32_t dt = in[0] ? in[0]->dtype : 0;
  bool fl = tc_dtype_is_float(dt);
  if (!fl && !tc_dtype_is_int(dt))
    return tc_kernel_bad_dtype(k, 0, dt);
  for (size_t i = 0; i < n_in; i++) {
    if (!in[i])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu is missing", i);
    if (in[i]->dtype != dt)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "input dtypes differ");
  }
  const char *arrow = strstr(eq, "->");
  size_t lhs_len = arrow ? (size_t)(arrow - eq) : strlen(eq);
  /* operand terms */
  int labels[EIN_MAX_OPS][TC_MAX_RANK * 2], nl[EIN_MAX_OPS];
  int ell_rank = 0;
  const char *p = eq;
  int64_t size[EIN_LABELS];
  int count[EIN_LABELS] = {0};
  for (int l = 0; l < EIN_LABELS; l++)
    size[l] = -1;
  for (size_t t = 0; t < n_in; t++) {
    const char *end = memchr(p, ',', (size_t)(eq + lhs_len - p));
    if (!end)
      end = eq + lhs_len;
    if (t + 1 < n_in && end == eq + lhs_len)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "equation has fewer terms than inputs");
    size_t letters = 0;
    bool dots = false;
    for (const char *q = p; q < end; q++) {
      if (ein_label(*q) >= 0)
        letters++;
      else if (*q == '.')
        dots = true;
    }
    int er = 0;
    if (dots) {
      if (in[t]->rank < letters)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "input %zu has too few dims", t);
      er = (int)(in[t]->rank - letters);
      if (er > 12)
        return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "ellipsis covers too many dims");
    }
    bool he;
    /* ellipsis dims right-aligned across operands: shift labels */
    int tmp[TC_MAX_RANK * 2];
    int n = ein_term(p, (size_t)(end - p), er, tmp, &he);
    if (n < 0 || (size_t)n != in[t]->rank)
      return tc_kernel_fail(k, TC_STATUS_INVALID, "term %zu does not match input rank %zu", t,
                            in[t]->rank);
    nl[t] = n;
    memcpy(labels[t], tmp, (size_t)n * sizeof(int));
    if (er > ell_rank)
      ell_rank = er;
    /* store ellipsis rank for right alignment below */
    for (int d = 0; d < n; d++)
      if (labels[t][d] >= 52)
        labels[t][d] = 52 + 12 - er + (labels[t][d] - 52); /* right-aligned slot */
    p = end + 1;
  }
  /* sizes (ellipsis dims broadcast) */
  for (size_t t = 0; t < n_in; t++)
    for (int d = 0; d < nl[t]; d++) {
      int l = labels[t][d];
      int64_t v = in[t]->dims[d];
      count[l]++;
      if (size[l] < 0 || size[l] == 1)
        size[l] = v;
      else if (v != size[l] && !(l >= 52 && v == 1))
        return tc_kernel_fail(k, TC_STATUS_INVALID, "label sizes disagree (%lld vs %lld)",
                              (long long)size[l], (long long)v);
    }
  /* output labels */
  int olab[TC_MAX_RANK * 2], no = 0;
  if (arrow) {
    const char *r = arrow + 2;
    for (size_t i = 0; r[i]; i++) {
      char c = r[i];
      if (c == ' ')
        continue;
      if (c == '.') {
        if (strncmp(r + i, "...", 3) != 0)
          return tc_kernel_fail(k, TC_STATUS_INVALID, "bad ellipsis in the output term");
        i += 2;
        for (int e = 64 - ell_rank; e < 64; e++)
          olab[no++] = e;
        continue;
      }
      int l = ein_label(c);
      if (l < 0 || count[l] == 0 || no >= TC_MAX_RANK)
        return tc_kernel_fail(k, TC_STATUS_INVALID, "bad output label '%c'", c);
      olab[no++] = l;
    }
  } else { /* implicit: ellipsis dims, then labels seen once, alphabetically */
    for (int e = 64 - ell_rank; e < 64; e++)
      olab[no++] = e;
    for (int l = 0; l < 52; l++)
      if (count[l] == 1)
        olab[no++] = l;
  }
  if (no > TC_MAX_RANK)
    return tc_kernel_fail(k, TC_STATUS_UNSUPPORTED, "output rank %d is too large", no);
  /* every label in use: output ones first, then summed ones */
  int all[EIN_LABELS], na = 0;
  bool in_out[EIN_LABELS] = {false};
  for (int i = 0; i < no; i++) {
    all[na++] = olab[i];
    in_out[olab[i]] = true;
  }
  for (int l = 0; l < EIN_LABELS; l++)
    if (count[l] && !in_out[l])
      all[na++] = l;
  int64_t odims[TC_MAX_RANK];
  for (int i = 0; i < no; i++)
    odims[i] = size[olab[i]] < 0 ? 1 : size[olab[i]];
  tc_status st = tc_kernel_alloc(k, out, dt, (size_t)no, odims);
  if (st)
    return st;
  /* each operand's distinct labels and their strides (a repeated label adds
   * its strides up: a diagonal); broadcast ellipsis dims get stride 0 */
  int ul[EIN_MAX_OPS][TC_MAX_RANK * 2], nu[EIN_MAX_OPS];
  int64_t us[EIN_MAX_OPS][TC_MAX_RANK * 2];
  for (size_t t = 0; t < n_in; t++) {
    int64_t s = 1;
    nu[t] = 0;
    for (int d = nl[t]; d-- > 0;) {
      int l = labels[t][d], u = 0;
      while (u < nu[t] && ul[t][u] != l)
        u++;
      if (u == nu[t]) {
        ul[t][u] = l;
        us[t][u] = 0;
        nu[t]++;
      }
      if (in[t]->dims[d] != 1 || size[l] == 1)
        us[t][u] += s;
      s *= in[t]->dims[d];
    }
  }
  size_t nout = tc_rt_numel(out), nsum = 1;
  for (int i = no; i < na; i++)
    nsum *= (size_t)size[all[i]];
  int64_t cur[EIN_LABELS];
  for (size_t o = 0; o < nout; o++) {
    size_t rem = o;
    for (int i = no; i-- > 0;) {
      cur[all[i]] = (int64_t)(rem % (size_t)size[all[i]]);
      rem /= (size_t)size[all[i]];
    }
    double acc = 0;
    uint64_t iacc = 0;
    for (size_t s = 0; s < nsum; s++) {
      size_t r = s;
      for (int i = na; i-- > no;) {
        cur[all[i]] = (int64_t)(r % (size_t)size[all[i]]);
        r /= (size_t)size[all[i]];
      }
      double pf = 1;
      uint64_t pi = 1;
      for (size_t t = 0; t < n_in; t++) {
        size_t off = 0;
        for (int u = 0; u < nu[t]; u++)
          off += (size_t)(cur[ul[t][u]] * us[t][u]);
        if (fl)
          pf *= tc_rt_get_f64(in[t], off);
        else
          pi *= (uint64_t)tc_rt_get_i64(in[t], off);
      }
      acc += pf;
      iacc += pi;
    }
    if (fl)
      tc_rt_set_f64(out, o, acc);
    else
      tc_rt_set_i64(out, o, (int64_t)iacc);
  }
  return TC_STATUS_OK;
}

static tc_status check_none(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

const tc_kernel_def tc_kernels_nn[] = {
    {"MatMul", "", 1, run_matmul, check_none},
    {"MatMulInteger", "", 10, run_matmulinteger, check_none},
    {"MatMulIntegerToFloat", "ai.tacoc", 1, run_mmi_to_float, check_none},
    {"MatMulIntegerToFloat", "com.microsoft", 1, run_mmi_to_float, check_none},
    {"Gemm", "", 1, run_gemm, check_gemm},
    {"Softmax", "", 1, run_softmax, check_axis_only},
    {"LogSoftmax", "", 1, run_logsoftmax, check_axis_only},
    {"Hardmax", "", 1, run_hardmax, check_axis_only},
    {"LayerNormalization", "", 17, run_layernorm, check_layernorm},
    {"RMSNormalization", "", 23, run_rmsnorm, check_layernorm},
    {"SkipLayerNormalization", "ai.tacoc", 1, run_skip_layernorm, check_skip_layernorm},
    {"SkipLayerNormalization", "com.microsoft", 1, run_skip_layernorm, check_skip_layernorm},
    {"EmbedLayerNormalization", "ai.tacoc", 1, run_embed_ln, check_embed_ln},
    {"EmbedLayerNormalizationWithSegment", "ai.tacoc", 1, run_embed_ln, check_embed_ln},
    {"EmbedLayerNormalization", "com.microsoft", 1, run_embed_ln_ms, check_embed_ln_ms},
    {"BatchNormalization", "", 1, run_batchnorm, check_batchnorm},
    {"InstanceNormalization", "", 1, run_instancenorm, check_eps},
    {"GroupNormalization", "", 18, run_groupnorm, check_groupnorm},
    {"LpNormalization", "", 1, run_lpnorm, check_lpnorm},
    {"MeanVarianceNormalization", "", 9, run_mvn, check_mvn},
    {"TopK", "", 1, run_topk, check_topk},
    {"Einsum", "", 12, run_einsum, check_einsum},
    {NULL},
};
