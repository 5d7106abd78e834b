/* Vector loops of runtime/kernels/conv.c (DynamicQuantizeLinear,
 * QuantizeLinear and DequantizeLinear per tensor, float32 2-D MaxPool and
 * AveragePool, linear and cubic Resize of the last two axes),
 * written with vector extensions (the build's -O2 does not auto-vectorize)
 * and included once per instruction set: the includer defines DQ_LANES
 * (the native width in floats), DQ_NAME(f) (f with the set's suffix) and
 * DQ_TARGET (its target attribute). The same operations on every CPU (no
 * FMA in these targets). Private to conv.c. */
#define DQ_INLINE static inline __attribute__((always_inline))
#define dq_v4f DQ_NAME(dq_v4f)
#define dq_v4i DQ_NAME(dq_v4i)
#define dq_v16s DQ_NAME(dq_v16s)
#define dq_v16u DQ_NAME(dq_v16u)
#define dq_vb DQ_NAME(dq_vb)
#define dq_low_bytes DQ_NAME(dq_low_bytes)
#define dq_splat DQ_NAME(dq_splat)
#define dq_sel DQ_NAME(dq_sel)
#define dq_max DQ_NAME(dq_max)
#define dq_min DQ_NAME(dq_min)
#define dq_load DQ_NAME(dq_load)
#define dq_store_n DQ_NAME(dq_store_n)
#define dq_store_max DQ_NAME(dq_store_max)
#define dynq_block DQ_NAME(dynq_block)
#define dynq_minmax_piece DQ_NAME(dynq_minmax_piece)
#define dynq_quant_piece DQ_NAME(dynq_quant_piece)
#define deq_piece DQ_NAME(deq_piece)
#define dq_quant DQ_NAME(dq_quant)
#define dq_deq8 DQ_NAME(dq_deq8)
#define qadd_piece DQ_NAME(qadd_piece)
#define maxpool2d_planes DQ_NAME(maxpool2d_planes)
#define avgpool2d_planes DQ_NAME(avgpool2d_planes)
#define avgpool_nhwc_rows DQ_NAME(avgpool_nhwc_rows)
#define maxpool8_nhwc_rows DQ_NAME(maxpool8_nhwc_rows)
#define rs_sep_planes DQ_NAME(rs_sep_planes)
#define dq_vhf DQ_NAME(dq_vhf)
#define dq_vd DQ_NAME(dq_vd)

typedef float dq_v4f __attribute__((vector_size(4 * DQ_LANES)));
typedef int32_t dq_v4i __attribute__((vector_size(4 * DQ_LANES)));
/* half a vector of floats, and as many doubles (a whole vector) */
typedef float dq_vhf __attribute__((vector_size(2 * DQ_LANES)));
typedef double dq_vd __attribute__((vector_size(4 * DQ_LANES)));

/* all lanes v, bit for bit */
DQ_INLINE DQ_TARGET dq_v4f dq_splat(float v) {
  int32_t b;
  memcpy(&b, &v, sizeof b);
  return (dq_v4f)((dq_v4i){0} + b);
}

/* m ? a : b per lane */
DQ_INLINE DQ_TARGET dq_v4f dq_sel(dq_v4i m, dq_v4f a, dq_v4f b) {
  return (dq_v4f)((m & (dq_v4i)a) | (~m & (dq_v4i)b));
}

/* a > b ? a : b and a < b ? a : b per lane, b where either is NaN: one
 * maxps / minps (the compare-and-select form compiles to three
 * instructions) */
DQ_INLINE DQ_TARGET dq_v4f dq_max(dq_v4f a, dq_v4f b) {
#if DQ_LANES == 16
  return (dq_v4f)_mm512_max_ps((__m512)a, (__m512)b);
#elif DQ_LANES == 8
  return (dq_v4f)_mm256_max_ps((__m256)a, (__m256)b);
#else
  return (dq_v4f)_mm_max_ps((__m128)a, (__m128)b);
#endif
}
DQ_INLINE DQ_TARGET dq_v4f dq_min(dq_v4f a, dq_v4f b) {
#if DQ_LANES == 16
  return (dq_v4f)_mm512_min_ps((__m512)a, (__m512)b);
#elif DQ_LANES == 8
  return (dq_v4f)_mm256_min_ps((__m256)a, (__m256)b);
#else
  return (dq_v4f)_mm_min_ps((__m128)a, (__m128)b);
#endif
}

/* x[i..i+DQ_LANES) with zeros past hi (a constant-size copy for whole
 * blocks, so it compiles to one load; with AVX-512 a masked load, which a
 * variable-size copy through the stack had made a store-forwarding stall) */
DQ_INLINE DQ_TARGET dq_v4f dq_load(const float *x, size_t i, size_t hi) {
#if DQ_LANES == 16
  size_t n = hi - i >= DQ_LANES ? DQ_LANES : hi - i;
  return (dq_v4f)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), x + i);
#else
  dq_v4f v = dq_splat(0);
  if (hi - i >= DQ_LANES)
    memcpy(&v, x + i, sizeof v);
  else
    memcpy(&v, x + i, (hi - i) * sizeof(float));
  return v;
#endif
}

/* y[0..DQ_LANES) = the lane maxima of count rows p, p + step, ...: lanes
 * [i, i + DQ_LANES) of each, zeros past hi; NaN where a row has NaN. */
DQ_INLINE DQ_TARGET void dq_store_max(float *y, const float *p, size_t step, int64_t count,
                                      size_t i, size_t hi) {
  dq_v4f m = dq_splat(-INFINITY);
  dq_v4i nan = (dq_v4i){0};
  for (int64_t r = 0; r < count; r++) {
    dq_v4f v = dq_load(p + r * step, i, hi);
    m = dq_max(v, m);
    nan |= v != v;
  }
  m = dq_sel(nan, dq_splat(NAN), m);
  memcpy(y, &m, sizeof m);
}

/* y[0..n) = v's first n lanes (n <= DQ_LANES) */
DQ_INLINE DQ_TARGET void dq_store_n(float *y, dq_v4f v, size_t n) {
#if DQ_LANES == 16
  _mm512_mask_storeu_ps(y, (__mmask16)((1u << n) - 1), (__m512)v);
#else
  memcpy(y, &v, n * sizeof(float));
#endif
}

DQ_TARGET static void dynq_minmax_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  dynq *j = ctx;
  /* lanes start at 0 and padding is 0: min(0, min x) and max(0, max x),
   * NaN never taken, as the one-loop form */
  dq_v4f mn = dq_splat(0), mx = dq_splat(0), mn2 = mn, mx2 = mx;
  size_t i = lo;
  /* two accumulators of each (the compare-select chain is latency-bound);
   * min and max do not depend on the order */
  for (; hi - i >= 2 * DQ_LANES; i += 2 * DQ_LANES) {
    dq_v4f x = dq_load(j->x, i, hi), y = dq_load(j->x, i + DQ_LANES, hi);
    mx = dq_max(x, mx);
    mn = dq_min(x, mn);
    mx2 = dq_max(y, mx2);
    mn2 = dq_min(y, mn2);
  }
  for (; i < hi; i += DQ_LANES) {
    dq_v4f x = dq_load(j->x, i, hi);
    mx = dq_max(x, mx);
    mn = dq_min(x, mn);
  }
  mx = dq_max(mx2, mx);
  mn = dq_min(mn2, mn);
  float a = 0, b = 0;
  for (int l = 0; l < DQ_LANES; l++) {
    a = mn[l] < a ? mn[l] : a;
    b = mx[l] > b ? mx[l] : b;
  }
  j->minmax[2 * piece] = a;
  j->minmax[2 * piece + 1] = b;
}

typedef int8_t dq_v16s __attribute__((vector_size(DQ_LANES)));
typedef uint8_t dq_v16u __attribute__((vector_size(DQ_LANES)));
typedef uint8_t dq_vb __attribute__((vector_size(4 * DQ_LANES))); /* q's bytes */

/* Stores the low byte of each lane of q (a truncating narrow): one vpmovdb
 * with AVX-512; with AVX2 a byte shuffle, where GCC would narrow lane by
 * lane (8 lanes: 10.6 -> 4.4 ms for BERT-base's DynamicQuantizeLinear). */
DQ_INLINE DQ_TARGET void dq_low_bytes(uint8_t *dst, dq_v4i q) {
#if DQ_LANES == 8
  const dq_vb pick = {0, 4, 8, 12, 16, 20, 24, 28};
  dq_vb b = __builtin_shuffle((dq_vb)q, pick);
#else
  dq_v16u b = __builtin_convertvector(q, dq_v16u);
#endif
  memcpy(dst, &b, DQ_LANES);
}

/* DQ_LANES quantized values of x[i..i+DQ_LANES) (zeros past hi), as int32
 * within [qlo, qhi]: x / scale rounded to nearest even as nearbyintf, plus
 * zp, saturated; NaN gives 0. AVX2 and AVX-512 round with roundps; the
 * SSE2 baseline has none: beyond +-512 the result saturates either way, and
 * within, adding and subtracting 1.5 * 2^23 rounds exactly the same
 * (float32 arithmetic, default rounding). */
DQ_INLINE DQ_TARGET dq_v4i dq_quant(dq_v4f x, dq_v4f scale, dq_v4f zp, dq_v4f qlo, dq_v4f qhi) {
  dq_v4f v = x / scale;
#if DQ_LANES == 16
  v = (dq_v4f)_mm512_roundscale_ps((__m512)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#elif DQ_LANES == 8
  v = (dq_v4f)_mm256_round_ps((__m256)v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
  const dq_v4f magic = dq_splat(0x1.8p23f);
  v = dq_max(dq_splat(-512.0f), dq_min(dq_splat(512.0f), v)); /* NaN stays NaN (operand 2) */
  v = (v + magic) - magic;
#endif
  dq_v4f r = v + zp;
  r = dq_sel(r == r, r, dq_splat(0));
  return __builtin_convertvector(dq_min(dq_max(r, qlo), qhi), dq_v4i);
}

DQ_INLINE DQ_TARGET dq_v4i dynq_block(const dynq *j, size_t i, size_t hi, dq_v4f scale, dq_v4f zp,
                                      dq_v4f qlo, dq_v4f qhi) {
  return dq_quant(dq_load(j->x, i, hi), scale, zp, qlo, qhi);
}

DQ_TARGET static void dynq_quant_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const dynq *j = ctx;
  const dq_v4f scale = dq_splat(j->scale), zp = dq_splat(j->zp);
  const dq_v4f qlo = dq_splat(j->qlo), qhi = dq_splat(j->qhi);
  size_t i = lo;
  /* whole blocks: the values are in range, so the low byte of each lane is
   * the int8 or uint8 result and the store has a constant size */
  for (; hi - i >= DQ_LANES; i += DQ_LANES)
    dq_low_bytes((uint8_t *)j->y + i, dynq_block(j, i, hi, scale, zp, qlo, qhi));
  if (i < hi) {
    dq_v4i q = dynq_block(j, i, hi, scale, zp, qlo, qhi);
    for (size_t l = 0; l < hi - i; l++) {
      if (j->sgn)
        ((int8_t *)j->y)[i + l] = (int8_t)q[l];
      else
        ((uint8_t *)j->y)[i + l] = (uint8_t)q[l];
    }
  }
}

/* (float(x[i + l]) - zp) * scale for the m <= DQ_LANES lanes l from i
 * (zeros' dequantized value past m), x int8 when sgn, else uint8 */
DQ_INLINE DQ_TARGET dq_v4f dq_deq8(const void *x, bool sgn, size_t i, size_t m, dq_v4f zp,
                                   dq_v4f scale) {
  dq_v4i q;
#if DQ_LANES == 16 /* one vpmovzxbd / vpmovsxbd (the generic widening goes lane by lane) */
  if (m == DQ_LANES) {
    __m128i b = _mm_loadu_si128((const __m128i *)((const uint8_t *)x + i));
    q = (dq_v4i)(sgn ? _mm512_cvtepi8_epi32(b) : _mm512_cvtepu8_epi32(b));
    return (__builtin_convertvector(q, dq_v4f) - zp) * scale;
  }
#elif DQ_LANES == 8
  if (m == DQ_LANES) {
    __m128i b = _mm_loadl_epi64((const __m128i *)((const uint8_t *)x + i));
    q = (dq_v4i)(sgn ? _mm256_cvtepi8_epi32(b) : _mm256_cvtepu8_epi32(b));
    return (__builtin_convertvector(q, dq_v4f) - zp) * scale;
  }
#endif
  if (sgn) {
    dq_v16s b = {0};
    if (m == DQ_LANES)
      memcpy(&b, (const int8_t *)x + i, DQ_LANES);
    else
      memcpy(&b, (const int8_t *)x + i, m);
    q = __builtin_convertvector(b, dq_v4i);
  } else {
    dq_v16u b = {0};
    if (m == DQ_LANES)
      memcpy(&b, (const uint8_t *)x + i, DQ_LANES);
    else
      memcpy(&b, (const uint8_t *)x + i, m);
    q = __builtin_convertvector(b, dq_v4i);
  }
  return (__builtin_convertvector(q, dq_v4f) - zp) * scale;
}

/* y = Q(act(DQ(a) + DQ(b))) per element, or the float32 sum: the
 * arithmetic of DequantizeLinear, Add, Relu and QuantizeLinear run one
 * after another (runtime/qdq.c's int8 Add) */
DQ_TARGET static void qadd_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const qadd_job *j = ctx;
  const dq_v4f as = dq_splat(j->as), az = dq_splat(j->az), bs = dq_splat(j->bs),
               bz = dq_splat(j->bz), ys = dq_splat(j->ys), yz = dq_splat(j->yz);
  bool ysgn = j->ydt == TC_DTYPE_I8;
  const dq_v4f qlo = dq_splat(ysgn ? -128.0f : 0.0f), qhi = dq_splat(ysgn ? 127.0f : 255.0f);
  size_t p = j->b_period;
  const dq_v4f b1 = dq_deq8(j->b, j->b_sgn, 0, 1, bz, bs); /* a scalar b: lane 0 */
  for (size_t i = lo, m; i < hi; i += m) {
    /* b's element for i: i itself, or i within b's period (a block never
     * crosses the period's end; the caller gives periods of 1 or of at
     * least a vector) */
    size_t bi = p > 1 ? i % p : i, left = p > 1 ? p - bi : hi - i;
    m = hi - i >= DQ_LANES ? DQ_LANES : hi - i;
    m = m < left ? m : left;
    dq_v4f v = dq_deq8(j->a, j->a_sgn, i, m, az, as) +
               (p == 1 ? dq_splat(b1[0]) : dq_deq8(j->b, j->b_sgn, bi, m, bz, bs));
    if (j->relu)
      v = dq_max(v, dq_splat(0)); /* +0 for -0, as Relu's x > 0 ? x : 0 */
    if (j->ydt == TC_DTYPE_F32) {
      if (m == DQ_LANES)
        memcpy((float *)j->y + i, &v, sizeof v);
      else
        memcpy((float *)j->y + i, &v, m * sizeof(float));
      continue;
    }
    dq_v4i q = dq_quant(v, ys, yz, qlo, qhi);
    if (m == DQ_LANES) {
      dq_low_bytes((uint8_t *)j->y + i, q);
      continue;
    }
    for (size_t l = 0; l < m; l++) {
      if (ysgn)
        ((int8_t *)j->y)[i + l] = (int8_t)q[l];
      else
        ((uint8_t *)j->y)[i + l] = (uint8_t)q[l];
    }
  }
}

/* y = (float(q) - zp) * scale, as run_dequantize's loop */
DQ_TARGET static void deq_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const deq *j = ctx;
  const dq_v4f scale = dq_splat(j->scale), zp = dq_splat(j->zp);
  for (size_t i = lo; i < hi; i += DQ_LANES) {
    size_t m = hi - i >= DQ_LANES ? DQ_LANES : hi - i;
    dq_v4f f = dq_deq8(j->x, j->sgn, i, m, zp, scale);
    if (m == DQ_LANES)
      memcpy(j->y + i, &f, sizeof f);
    else
      memcpy(j->y + i, &f, m * sizeof(float));
  }
}

/* MaxPool over 2-D planes (no dilation), separable: per output row, the
 * column maxima over its window's input rows (sixteen lanes), then the
 * maxima of every K consecutive columns (sixteen lanes; an output whose
 * window lies inside the row takes its own), else (padding) each output's
 * maximum over its window's columns. A NaN in a window makes its maximum
 * NaN and an empty window gives the lowest value, as pool32_planes. The
 * column step was a scalar loop per output: [1, 128, 55, 55] 3x3 stride 2
 * 0.51-0.81 -> 0.28 ms, and with stride 2 taking every other window
 * maximum as the even lanes of two vectors (masked loads and stores for
 * the row ends), 0.13-0.17 ms (ONNX Runtime 0.08-0.11). */
#if DQ_LANES == 16
#define DQ_EVEN(a, b)                                                                              \
  __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#elif DQ_LANES == 8
#define DQ_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#else
#define DQ_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6)
#endif

DQ_TARGET static void maxpool2d_planes(void *ctx, size_t piece, size_t lo, size_t hi) {
  const pool32_job *j = ctx;
  const geom *g = &j->g;
  int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1], K = g->k[1];
  int64_t nsl = W - K + 1, S = g->s[1]; /* windows of K columns inside the row */
  /* two rows per piece, each with two vectors' slack: whole-vector loads
   * and stores */
  float *tmp = j->rows + piece * 2 * ((size_t)W + 2 * DQ_LANES), *sl = tmp + W + 2 * DQ_LANES;
  /* the outputs [olo, ohi) whose windows lie inside the row (contiguous) */
  int64_t olo = 0, ohi = 0;
  for (int64_t ow = 0; ow < OW; ow++) {
    int64_t c0 = ow * S - g->pb[1];
    bool inside = j->cb[ow] == 0 && j->ce[ow] == K && c0 >= 0 && c0 < nsl;
    if (inside && ohi == 0)
      olo = ow, ohi = ow + 1;
    else if (inside && ohi == ow)
      ohi = ow + 1;
  }
  for (size_t nc = lo; nc < hi; nc++) {
    const float *xc = j->x + (int64_t)nc * H * W;
    float *yc = j->y + (int64_t)nc * OH * OW;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t b1, e1;
      tap_range(g, 0, oh, &b1, &e1);
      const float *r0 = xc + (oh * g->s[0] - g->pb[0] + b1) * W;
      for (int64_t w = 0; w < W; w += DQ_LANES) /* the window's rows */
        dq_store_max(tmp + w, r0, (size_t)W, e1 - b1, (size_t)w, (size_t)W);
      /* windows of K columns; lanes past nsl read the slack and are never used */
      for (int64_t w = 0; w < nsl; w += DQ_LANES)
        dq_store_max(sl + w, tmp, 1, K, (size_t)w, (size_t)w + DQ_LANES);
      float *yr = yc + oh * OW;
      bool rows_in = e1 > b1;
      if (rows_in && S == 2) { /* every other window: the even lanes of two vectors */
        for (int64_t ow = olo; ow < ohi; ow += DQ_LANES) {
          dq_v4f a, b;
          memcpy(&a, sl + 2 * ow - g->pb[1], sizeof a);
          memcpy(&b, sl + 2 * ow - g->pb[1] + DQ_LANES, sizeof b);
          dq_v4f e = DQ_EVEN(a, b);
          dq_store_n(yr + ow, e, ohi - ow < DQ_LANES ? (size_t)(ohi - ow) : DQ_LANES);
        }
      } else if (rows_in) {
        for (int64_t ow = olo; ow < ohi; ow++)
          yr[ow] = sl[ow * S - g->pb[1]];
      }
      for (int64_t ow = 0; ow < OW; ow++) {
        int64_t b2 = j->cb[ow], e2 = j->ce[ow], c0 = ow * S - g->pb[1];
        if (rows_in && ow == olo && ohi > olo) { /* done above */
          ow = ohi - 1;
          continue;
        }
        const float *t = tmp + c0;
        float mx = -INFINITY;
        bool isnan_ = false;
        for (int64_t kk = b2; kk < e2; kk++) {
          float v = t[kk];
          mx = v > mx ? v : mx;
          isnan_ |= v != v;
        }
        yr[ow] = (e1 - b1) * (e2 - b2) == 0 ? j->lowest : isnan_ ? NAN : mx;
      }
    }
  }
}
#undef DQ_EVEN

/* AveragePool over 2-D planes (no dilation), separable: per output row, the
 * column sums over its window's input rows (in double, half a vector of
 * floats at a time), then each output's sum over its window's columns,
 * divided by the taps inside the input (or, with count_include_pad, inside
 * the padded input) and rounded once: pool32_planes' double sums, added in
 * another order (the same value unless a sum of the window's floats is not
 * exact in double). An empty window gives NaN, as there. */
DQ_TARGET static void avgpool2d_planes(void *ctx, size_t piece, size_t lo, size_t hi) {
  const pool32_job *j = ctx;
  const geom *g = &j->g;
  int64_t H = g->in[0], W = g->in[1], OH = g->out[0], OW = g->out[1];
  enum { HALF = DQ_LANES / 2 };
  double *tmp = j->sums + piece * (size_t)W;
  for (size_t nc = lo; nc < hi; nc++) {
    const float *xc = j->x + (int64_t)nc * H * W;
    float *yc = j->y + (int64_t)nc * OH * OW;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t b1, e1;
      tap_range(g, 0, oh, &b1, &e1);
      const float *r0 = xc + (oh * g->s[0] - g->pb[0] + b1) * W;
      int64_t w = 0;
      for (; w + HALF <= W; w += HALF) {
        dq_vd sum = {0};
        for (int64_t r = 0; r < e1 - b1; r++) {
          dq_vhf v;
          memcpy(&v, r0 + r * W + w, sizeof v);
          sum += __builtin_convertvector(v, dq_vd);
        }
        memcpy(tmp + w, &sum, sizeof sum);
      }
      for (; w < W; w++) { /* the row's tail */
        double sum = 0;
        for (int64_t r = 0; r < e1 - b1; r++)
          sum += r0[r * W + w];
        tmp[w] = sum;
      }
      int64_t rows = j->include_pad ? padded_taps(g, 0, oh) : e1 - b1;
      for (int64_t ow = 0; ow < OW; ow++) {
        int64_t b2 = j->cb[ow], e2 = j->ce[ow];
        const double *t = tmp + ow * g->s[1] - g->pb[1];
        double sum = 0;
        for (int64_t kk = b2; kk < e2; kk++)
          sum += t[kk];
        int64_t div = rows * (j->include_pad ? padded_taps(g, 1, ow) : e2 - b2);
        yc[oh * OW + ow] = e1 > b1 && e2 > b2 && div ? (float)(sum / (double)div) : NAN;
      }
    }
  }
}

/* AveragePool on channels-last x and y: per output position, half a vector
 * of channels at a time, the window's values widened to double and summed
 * in tap order, divided by the taps (valid or padded) and rounded once: the
 * plain kernels' double sums (the same value unless a sum of the window's
 * floats is not exact in double). An empty window gives NaN, as there. */
/* 8-bit MaxPool on channels-last rows (maxpool8_nhwc_job): per output
 * position, its window's channel vectors' bytewise max, 32 bytes at a
 * time (16 in SSE2; the tail through a copy) with pmaxub (GCC scalarizes
 * the compare-and-select form of byte vectors, and avx512f has no byte
 * max); int8 as uint8 with the sign bit flipped, so 0 is the lowest value
 * of either and an empty window gives it. */
#if DQ_LANES >= 8
#define DQ_PB __m256i
#define DQ_PB_MAX _mm256_max_epu8
#define DQ_PB_XOR _mm256_xor_si256
#define DQ_PB_SET1 _mm256_set1_epi8
#else
#define DQ_PB __m128i
#define DQ_PB_MAX _mm_max_epu8
#define DQ_PB_XOR _mm_xor_si128
#define DQ_PB_SET1 _mm_set1_epi8
#endif
DQ_TARGET static void maxpool8_nhwc_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const maxpool8_nhwc_job *j = ctx;
  const geom *g = &j->g;
  size_t C = j->C, VB = sizeof(DQ_PB);
  DQ_PB flip = DQ_PB_SET1((char)j->flip);
  for (size_t r = lo; r < hi; r++) { /* r: image n, output row o0 */
    int64_t n = (int64_t)r / g->out[0], o0 = (int64_t)r % g->out[0], b0, e0;
    tap_range(g, 0, o0, &b0, &e0);
    for (int64_t o1 = 0; o1 < g->out[1]; o1++) {
      int64_t b1, e1;
      tap_range(g, 1, o1, &b1, &e1);
      uint8_t *y = j->y + ((n * g->out[0] + o0) * g->out[1] + o1) * (int64_t)C;
      for (size_t c = 0; c < C; c += VB) {
        size_t m = C - c < VB ? C - c : VB;
        DQ_PB acc = DQ_PB_SET1(0);
        for (int64_t k0 = b0; k0 < e0; k0++) {
          int64_t i0 = o0 * g->s[0] - g->pb[0] + k0 * g->d[0];
          const uint8_t *row = j->x + (n * g->in[0] + i0) * g->in[1] * (int64_t)C + c;
          for (int64_t k1 = b1; k1 < e1; k1++) {
            const uint8_t *x = row + (o1 * g->s[1] - g->pb[1] + k1 * g->d[1]) * (int64_t)C;
            DQ_PB v = DQ_PB_SET1(0);
            if (m == VB)
              memcpy(&v, x, sizeof v); /* one unaligned load */
            else
              memcpy(&v, x, m);
            acc = DQ_PB_MAX(acc, DQ_PB_XOR(v, flip));
          }
        }
        acc = DQ_PB_XOR(acc, flip);
        if (m == VB)
          memcpy(y + c, &acc, sizeof acc);
        else
          memcpy(y + c, &acc, m);
      }
    }
  }
}
#undef DQ_PB
#undef DQ_PB_MAX
#undef DQ_PB_XOR
#undef DQ_PB_SET1

DQ_TARGET static void avgpool_nhwc_rows(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  const avgpool_nhwc_job *j = ctx;
  const geom *g = &j->g;
  size_t C = j->C;
  enum { HALF = DQ_LANES / 2 };
  for (size_t r = lo; r < hi; r++) { /* r: image n, output row o0 */
    int64_t n = (int64_t)r / g->out[0], o0 = (int64_t)r % g->out[0], b0, e0;
    tap_range(g, 0, o0, &b0, &e0);
    for (int64_t o1 = 0; o1 < g->out[1]; o1++) {
      int64_t b1, e1;
      tap_range(g, 1, o1, &b1, &e1);
      int64_t cnt = (e0 - b0) * (e1 - b1),
              div = j->include_pad ? padded_taps(g, 0, o0) * padded_taps(g, 1, o1) : cnt;
      float *y = j->y + ((n * g->out[0] + o0) * g->out[1] + o1) * (int64_t)C;
      if (!cnt || !div) {
        for (size_t c = 0; c < C; c++)
          y[c] = NAN;
        continue;
      }
      /* the window's first tap; the others rows and columns from it */
      int64_t i0 = o0 * g->s[0] - g->pb[0] + b0 * g->d[0],
              i1 = o1 * g->s[1] - g->pb[1] + b1 * g->d[1];
      const float *x0 = j->x + ((n * g->in[0] + i0) * g->in[1] + i1) * (int64_t)C;
      int64_t rs = g->d[0] * g->in[1] * (int64_t)C, cs = g->d[1] * (int64_t)C;
      size_t c = 0;
      for (; c + HALF <= C; c += HALF) {
        dq_vd sum = {0};
        for (int64_t a = 0; a < e0 - b0; a++)
          for (int64_t b = 0; b < e1 - b1; b++) {
            dq_vhf v;
            memcpy(&v, x0 + a * rs + b * cs + c, sizeof v);
            sum += __builtin_convertvector(v, dq_vd);
          }
        dq_vhf q = __builtin_convertvector(sum / (double)div, dq_vhf);
        memcpy(y + c, &q, sizeof q);
      }
      for (; c < C; c++) { /* the channels' tail */
        double sum = 0;
        for (int64_t a = 0; a < e0 - b0; a++)
          for (int64_t b = 0; b < e1 - b1; b++)
            sum += x0[a * rs + b * cs + c];
        y[c] = (float)(sum / (double)div);
      }
    }
  }
}

/* rs_separable's planes: per output row, tmp[w] = 0 + sum of its nonzero
 * row weights times those input rows (clamped), in tap order, half a
 * vector of floats widened at a time; then each output column's sum over
 * its nonzero column taps of tmp (columns clamped in the table), rounded to
 * float. */
DQ_TARGET static void rs_sep_planes(void *ctx, size_t piece, size_t lo, size_t hi) {
  const rs_sep *j = ctx;
  int64_t H = j->H, W = j->W, OH = j->OH, OW = j->OW;
  int nh = j->nh, nw = j->nw;
  enum { HALF = DQ_LANES / 2 };
  double *tmp = j->rows + piece * (size_t)W;
  for (size_t nc = lo; nc < hi; nc++) {
    const float *xc = j->x + (int64_t)nc * H * W;
    float *yc = j->y + (int64_t)nc * OH * OW;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t w = 0;
      for (; w + HALF <= W; w += HALF) {
        dq_vd sum = {0};
        for (int t = 0; t < nh; t++) {
          double wt = j->wh[oh * nh + t];
          if (wt == 0)
            continue;
          int64_t ih = j->sh[oh] + t;
          ih = ih < 0 ? 0 : ih >= H ? H - 1 : ih;
          dq_vhf v;
          memcpy(&v, xc + ih * W + w, sizeof v);
          sum += wt * __builtin_convertvector(v, dq_vd);
        }
        memcpy(tmp + w, &sum, sizeof sum);
      }
      for (; w < W; w++) { /* the row's tail */
        double sum = 0;
        for (int t = 0; t < nh; t++) {
          double wt = j->wh[oh * nh + t];
          int64_t ih = j->sh[oh] + t;
          ih = ih < 0 ? 0 : ih >= H ? H - 1 : ih;
          if (wt != 0)
            sum += wt * xc[ih * W + w];
        }
        tmp[w] = sum;
      }
      const double *ww = j->ww;
      const int64_t *ci = j->sw;
      float *yr = yc + oh * OW;
      if (nw == 2) { /* linear */
        for (int64_t ow = 0; ow < OW; ow++) {
          double acc = 0, w0 = ww[2 * ow], w1 = ww[2 * ow + 1];
          if (w0 != 0)
            acc += w0 * tmp[ci[2 * ow]];
          if (w1 != 0)
            acc += w1 * tmp[ci[2 * ow + 1]];
          yr[ow] = (float)acc;
        }
        continue;
      }
      for (int64_t ow = 0; ow < OW; ow++) {
        double acc = 0;
        for (int t = 0; t < nw; t++) {
          double wt = ww[ow * nw + t];
          if (wt != 0)
            acc += wt * tmp[ci[ow * nw + t]];
        }
        yr[ow] = (float)acc;
      }
    }
  }
}

#undef dq_v4f
#undef dq_v4i
#undef dq_vhf
#undef rs_sep_planes
#undef dq_vd
#undef avgpool2d_planes
#undef avgpool_nhwc_rows
#undef maxpool8_nhwc_rows
#undef dq_v16s
#undef dq_v16u
#undef dq_vb
#undef dq_low_bytes
#undef dq_splat
#undef dq_sel
#undef dq_max
#undef dq_min
#undef dq_load
#undef dq_store_n
#undef dq_store_max
#undef dynq_block
#undef dynq_minmax_piece
#undef dynq_quant_piece
#undef deq_piece
#undef maxpool2d_planes
#undef DQ_INLINE
