/* The generated CUDA kernel variants the CUDA tests cover: every kind,
 * activation (with and without bias) and LayerNorm flag combination, for
 * float32, float16 and bfloat16, over row lengths with and without vector
 * tails, in registers (up to 4096) and streamed (20001). Named k_<i>. */
#ifndef TC_CU_VARIANTS_H
#define TC_CU_VARIANTS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernel.h"
#include "native.h"

static const int64_t cu_variant_cols[] = {1, 3, 8, 17, 768, 1000, 4096, 20001};
static const int cu_variant_dtypes[] = {1, 10, 16};
static const int cu_variant_ln_flags[] = {
    TC_CG_F_BETA,
    0,
    TC_CG_F_RMS,
    TC_CG_F_SKIP | TC_CG_F_BETA | TC_CG_F_SUM,
    TC_CG_F_SKIP | TC_CG_F_BETA,
    TC_CG_F_SKIP,
    TC_CG_F_SKIP | TC_CG_F_RMS,
};
/* Variants per (dtype, row length): 6 bias_act, 7 layernorm, 1 softmax. */
#define CU_VARIANTS_PER 14
#define CU_N_VARIANTS (3 * (sizeof cu_variant_cols / sizeof *cu_variant_cols) * CU_VARIANTS_PER)

__attribute__((unused)) static size_t cu_variants(tc_cg_spec *out, size_t cap) {
  size_t n = 0;
  for (size_t d = 0; d < 3; d++)
    for (size_t c = 0; c < sizeof cu_variant_cols / sizeof *cu_variant_cols; c++) {
      tc_cg_spec base = {
          .cols = cu_variant_cols[c], .width = 1, .unroll = 1, .dtype = cu_variant_dtypes[d]};
      tc_cg_spec v[CU_VARIANTS_PER];
      size_t nv = 0;
      for (int act = 0; act <= TC_CG_ACT_GELU_TANH; act++)
        for (int bias = 0; bias <= 1; bias++) {
          v[nv] = base;
          v[nv].kind = TC_CG_BIAS_ACT;
          v[nv].act = act;
          v[nv++].flags = bias ? TC_CG_F_BIAS : 0;
        }
      for (size_t f = 0; f < sizeof cu_variant_ln_flags / sizeof *cu_variant_ln_flags; f++) {
        v[nv] = base;
        v[nv].kind = TC_CG_LAYERNORM;
        v[nv++].flags = cu_variant_ln_flags[f];
      }
      v[nv] = base;
      v[nv++].kind = TC_CG_SOFTMAX;
      for (size_t i = 0; i < nv && n < cap; i++) {
        out[n] = v[i];
        snprintf(out[n].sym, sizeof out[n].sym, "k_%zu", n);
        n++;
      }
    }
  return n;
}

/* Element i of a float32 / float16 / bfloat16 buffer, as a double; and
 * writing v rounded to the element type. */
__attribute__((unused)) static size_t cu_esize(int dt) { return dt == 10 || dt == 16 ? 2 : 4; }
__attribute__((unused)) static void cu_put(int dt, void *buf, size_t i, double v) {
  if (dt == 10)
    ((uint16_t *)buf)[i] = tc_f32_to_f16((float)v);
  else if (dt == 16)
    ((uint16_t *)buf)[i] = tc_f32_to_bf16((float)v);
  else
    ((float *)buf)[i] = (float)v;
}
__attribute__((unused)) static double cu_get(int dt, const void *buf, size_t i) {
  if (dt == 10)
    return tc_f16_to_f32(((const uint16_t *)buf)[i]);
  if (dt == 16)
    return tc_bf16_to_f32(((const uint16_t *)buf)[i]);
  return ((const float *)buf)[i];
}

/* The ONNX definition of a variant's node in double precision, on the
 * (already rounded) input values: rows x cols x, s (bias [cols] or skip
 * [rows, cols]), gamma g, beta b; y and, for the sum output, sum. */
__attribute__((unused)) static void cu_ref_rows(const tc_cg_spec *sp, int64_t rows, const double *x, const double *s,
                     const double *g, const double *b, double eps, double *y, double *sum) {
  int64_t c = sp->cols;
  for (int64_t r = 0; r < rows; r++) {
    const double *xr = x + r * c;
    double *yr = y + r * c;
    if (sp->kind == TC_CG_BIAS_ACT) {
      for (int64_t j = 0; j < c; j++) {
        double v = xr[j] + (sp->flags & TC_CG_F_BIAS ? s[j] : 0);
        if (sp->act == TC_CG_ACT_GELU_ERF)
          v = 0.5 * v * (1 + erf(v / sqrt(2.0)));
        else if (sp->act == TC_CG_ACT_GELU_TANH)
          v = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        yr[j] = v;
      }
    } else if (sp->kind == TC_CG_SOFTMAX) {
      double m = -INFINITY, t = 0;
      for (int64_t j = 0; j < c; j++)
        m = fmax(m, xr[j]);
      for (int64_t j = 0; j < c; j++)
        t += exp(xr[j] - m);
      for (int64_t j = 0; j < c; j++)
        yr[j] = exp(xr[j] - m) / t;
    } else {
      double mean = 0, var = 0;
      double *v = malloc((size_t)c * sizeof *v);
      for (int64_t j = 0; j < c; j++) {
        v[j] = xr[j] + (sp->flags & TC_CG_F_SKIP ? s[r * c + j] : 0);
        if (sum)
          sum[r * c + j] = v[j];
        mean += v[j];
        var += v[j] * v[j];
      }
      if (sp->flags & TC_CG_F_RMS) {
        mean = 0;
        var /= (double)c;
      } else {
        mean /= (double)c;
        var = 0;
        for (int64_t j = 0; j < c; j++)
          var += (v[j] - mean) * (v[j] - mean);
        var /= (double)c;
      }
      for (int64_t j = 0; j < c; j++)
        yr[j] = (v[j] - mean) / sqrt(var + eps) * g[j] + (sp->flags & TC_CG_F_BETA ? b[j] : 0);
      free(v);
    }
  }
}

#endif
