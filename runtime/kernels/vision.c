/* vision kernels: NonMaxSuppression, RoiAlign, GridSample, the detection
 * and spatial-transformer ops of CNN exports.
 *
 * NonMaxSuppression follows the ONNX reference: per batch and class, the
 * boxes scoring above score_threshold (all of them without one) are taken in
 * order of falling score (the lower box index first on equal scores); a box
 * is kept unless its IoU with a kept box exceeds iou_threshold; at most
 * max_output_boxes_per_class per class (none when 0 or absent). Boxes are
 * corners [y1, x1, y2, x2] in either order (center_point_box 0) or [x, y, w,
 * h] centers (1); empty boxes and intersections never suppress.
 *
 * RoiAlign is Mask R-CNN's, as the reference and ONNX Runtime compute it:
 * sampling points (sampling_ratio per bin, or ceil(roi size / output size))
 * bilinearly interpolated, a point beyond one pixel outside the map counting
 * 0; avg averages them, max takes the largest weighted corner value (the
 * reference's reading). half_pixel shifts by -0.5 (opset 16), output_half_
 * pixel keeps opset 10's unshifted, at-least-one-pixel rois.
 *
 * GridSample samples X at the normalized positions of grid (x, y[, z] =
 * last dim first), with nearest (round half to even), (bi/tri)linear or
 * cubic (Keys, A = -0.75) interpolation over 1 to 3 spatial dims, and zeros,
 * border or reflection padding; opset 16's bilinear / bicubic are linear /
 * cubic. Cubic with border padding clamps each tap rather than the position
 * (ONNX Runtime's and PyTorch's reading; the reference differs there and no
 * node test covers it). Interpolation is separable: per dim the taps and weights, then the
 * sum over every combination, in double, rounded once to X's dtype. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernel.h"

static const tc_rt_tensor *input(const tc_rt_tensor *const *in, size_t n_in, size_t i) {
  return i < n_in ? in[i] : NULL;
}

#define NOMEM(k) tc_kernel_fail(k, TC_STATUS_NOMEM, "out of memory")

/* ---- NonMaxSuppression ---- */

static tc_status check_nms(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"center_point_box", NULL};
  return tc_kernel_check_attrs(n, diag, ok);
}

typedef struct nms_box {
  double score;
  int64_t idx;
} nms_box;

/* falling score, then rising index */
static int nms_cmp(const void *a, const void *b) {
  const nms_box *x = a, *y = b;
  if (x->score != y->score)
    return x->score > y->score ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Corners of box i as lo/hi per axis: [y1, x1, y2, x2] or centers. */
static void nms_corners(const tc_rt_tensor *b, size_t off, bool center, double *ymin, double *xmin,
                        double *ymax, double *xmax) {
  double v[4];
  for (int i = 0; i < 4; i++)
    v[i] = tc_rt_get_f64(b, off + (size_t)i);
  if (center) {
    *xmin = v[0] - v[2] / 2, *xmax = v[0] + v[2] / 2;
    *ymin = v[1] - v[3] / 2, *ymax = v[1] + v[3] / 2;
  } else {
    *ymin = fmin(v[0], v[2]), *ymax = fmax(v[0], v[2]);
    *xmin = fmin(v[1], v[3]), *xmax = fmax(v[1], v[3]);
  }
}

static bool nms_suppress(const tc_rt_tensor *b, size_t o1, size_t o2, bool center, double iou) {
  double ay0, ax0, ay1, ax1, by0, bx0, by1, bx1;
  nms_corners(b, o1, center, &ay0, &ax0, &ay1, &ax1);
  nms_corners(b, o2, center, &by0, &bx0, &by1, &bx1);
  double ix0 = fmax(ax0, bx0), ix1 = fmin(ax1, bx1), iy0 = fmax(ay0, by0), iy1 = fmin(ay1, by1);
  if (ix1 <= ix0 || iy1 <= iy0)
    return false;
  double inter = (ix1 - ix0) * (iy1 - iy0);
  double a1 = (ax1 - ax0) * (ay1 - ay0), a2 = (bx1 - bx0) * (by1 - by0), uni = a1 + a2 - inter;
  if (inter <= 0 || a1 <= 0 || a2 <= 0 || uni <= 0)
    return false;
  return inter / uni > iou;
}

static tc_status run_nms(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                         tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_rt_tensor *boxes = input(in, n_in, 0), *scores = input(in, n_in, 1),
                     *maxo = input(in, n_in, 2), *iout = input(in, n_in, 3),
                     *scoret = input(in, n_in, 4);
  if (!boxes || !scores)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "boxes and scores are required");
  if (!tc_dtype_is_float(boxes->dtype))
    return tc_kernel_bad_dtype(k, 0, boxes->dtype);
  if (!tc_dtype_is_float(scores->dtype))
    return tc_kernel_bad_dtype(k, 1, scores->dtype);
  if (boxes->rank != 3 || boxes->dims[2] != 4 || scores->rank != 3 ||
      scores->dims[0] != boxes->dims[0] || scores->dims[2] != boxes->dims[1])
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "boxes must be [batches, boxes, 4] and scores [batches, classes, boxes]");
  if (maxo && (maxo->dtype != TC_DTYPE_I64 || tc_rt_numel(maxo) > 1))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "max_output_boxes_per_class must be one int64");
  if ((iout && (!tc_dtype_is_float(iout->dtype) || tc_rt_numel(iout) > 1)) ||
      (scoret && (!tc_dtype_is_float(scoret->dtype) || tc_rt_numel(scoret) > 1)))
    return tc_kernel_fail(k, TC_STATUS_INVALID, "the thresholds must be single floats");
  bool center = tc_attr_int(k->node, "center_point_box", 0) != 0;
  int64_t max_out = maxo && tc_rt_numel(maxo) ? tc_rt_get_i64(maxo, 0) : 0;
  double iou = iout && tc_rt_numel(iout) ? tc_rt_get_f64(iout, 0) : 0;
  bool has_st = scoret && tc_rt_numel(scoret);
  double st = has_st ? tc_rt_get_f64(scoret, 0) : 0;
  size_t B = (size_t)boxes->dims[0], NB = (size_t)boxes->dims[1], C = (size_t)scores->dims[1];
  if (max_out < 0)
    max_out = 0;
  size_t cap = (size_t)max_out < NB ? (size_t)max_out : NB;
  nms_box *cand = tc_arena_alloc(k->arena, (NB ? NB : 1) * sizeof *cand);
  size_t most = B * C * cap;
  int64_t *sel = tc_arena_alloc(k->arena, (most > 0 ? most : 1) * 3 * sizeof *sel);
  size_t *kept = tc_arena_alloc(k->arena, (cap ? cap : 1) * sizeof *kept);
  if (!cand || !sel || !kept)
    return NOMEM(k);
  size_t n_sel = 0;
  for (size_t b = 0; b < B && cap; b++)
    for (size_t c = 0; c < C; c++) {
      size_t nc = 0, nk = 0;
      for (size_t i = 0; i < NB; i++) {
        double s = tc_rt_get_f64(scores, (b * C + c) * NB + i);
        if (!has_st || s > st)
          cand[nc++] = (nms_box){s, (int64_t)i};
      }
      qsort(cand, nc, sizeof *cand, nms_cmp);
      for (size_t i = 0; i < nc && nk < cap; i++) {
        size_t o = (b * NB + (size_t)cand[i].idx) * 4;
        bool keep = true;
        for (size_t j = 0; j < nk && keep; j++)
          keep = !nms_suppress(boxes, o, (b * NB + kept[j]) * 4, center, iou);
        if (!keep)
          continue;
        kept[nk++] = (size_t)cand[i].idx;
        sel[3 * n_sel] = (int64_t)b, sel[3 * n_sel + 1] = (int64_t)c;
        sel[3 * n_sel + 2] = cand[i].idx;
        n_sel++;
      }
    }
  int64_t dims[2] = {(int64_t)n_sel, 3};
  tc_status s = tc_kernel_alloc(k, &out[0], TC_DTYPE_I64, 2, dims);
  if (!s && n_sel)
    memcpy(out[0].data, sel, n_sel * 3 * sizeof *sel);
  return s;
}

/* ---- RoiAlign ---- */

static tc_status check_roialign(const tc_node *n, int64_t opset, tc_diag *diag) {
  (void)opset;
  static const char *const ok[] = {"coordinate_transformation_mode",
                                   "mode",
                                   "output_height",
                                   "output_width",
                                   "sampling_ratio",
                                   "spatial_scale",
                                   NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  const tc_attr *m = tc_node_attr(n, "mode"),
                *c = tc_node_attr(n, "coordinate_transformation_mode");
  if (m && !(m->s.len == 3 && (!memcmp(m->s.data, "avg", 3) || !memcmp(m->s.data, "max", 3))))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                       "mode must be avg or max");
  if (c && !((c->s.len == 10 && !memcmp(c->s.data, "half_pixel", 10)) ||
             (c->s.len == 17 && !memcmp(c->s.data, "output_half_pixel", 17))))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                       "coordinate_transformation_mode must be half_pixel or output_half_pixel");
  return TC_STATUS_OK;
}

typedef struct roi_tap {
  size_t pos[4];
  double w[4];
} roi_tap;

static tc_status run_roialign(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                              tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_node *n = k->node;
  const tc_rt_tensor *x = input(in, n_in, 0), *rois = input(in, n_in, 1), *bi = input(in, n_in, 2);
  if (!x || !rois || !bi)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X, rois and batch_indices are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (rois->dtype != x->dtype)
    return tc_kernel_bad_dtype(k, 1, rois->dtype);
  if (bi->dtype != TC_DTYPE_I64)
    return tc_kernel_bad_dtype(k, 2, bi->dtype);
  if (x->rank != 4 || rois->rank != 2 || rois->dims[1] != 4 || bi->rank != 1 ||
      bi->dims[0] != rois->dims[0])
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "X must be [N, C, H, W], rois [R, 4] and batch_indices [R]");
  int64_t oh = tc_attr_int(n, "output_height", 1), ow = tc_attr_int(n, "output_width", 1);
  int64_t ratio = tc_attr_int(n, "sampling_ratio", 0);
  double scale = tc_attr_float(n, "spatial_scale", 1.0f);
  const char *mode = tc_attr_string(n, "mode", "avg", k->arena);
  const char *ctm = tc_attr_string(n, "coordinate_transformation_mode",
                                   k->opset >= 16 ? "half_pixel" : "output_half_pixel", k->arena);
  if (!mode || !ctm)
    return NOMEM(k);
  if (oh <= 0 || ow <= 0 || ratio < 0)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "output_height and output_width must be positive, sampling_ratio >= 0");
  bool avg = !strcmp(mode, "avg"), half = !strcmp(ctm, "half_pixel");
  size_t R = (size_t)rois->dims[0], C = (size_t)x->dims[1], H = (size_t)x->dims[2],
         W = (size_t)x->dims[3];
  int64_t dims[4] = {(int64_t)R, (int64_t)C, oh, ow};
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, 4, dims);
  if (st)
    return st;
  for (size_t r = 0; r < R; r++) {
    int64_t b = tc_rt_get_i64(bi, r);
    if (b < 0 || b >= x->dims[0])
      return tc_kernel_fail(k, TC_STATUS_INVALID, "batch index %lld is out of range [0, %lld)",
                            (long long)b, (long long)x->dims[0]);
    double off = half ? 0.5 : 0.0;
    double sw = tc_rt_get_f64(rois, 4 * r) * scale - off,
           sh = tc_rt_get_f64(rois, 4 * r + 1) * scale - off;
    double ew = tc_rt_get_f64(rois, 4 * r + 2) * scale - off,
           eh = tc_rt_get_f64(rois, 4 * r + 3) * scale - off;
    double rw = ew - sw, rh = eh - sh;
    if (!half) {
      rw = fmax(rw, 1.0);
      rh = fmax(rh, 1.0);
    }
    double bh = rh / (double)oh, bw = rw / (double)ow;
    int64_t gh = ratio > 0 ? ratio : (int64_t)ceil(rh / (double)oh);
    int64_t gw = ratio > 0 ? ratio : (int64_t)ceil(rw / (double)ow);
    if (gh < 0)
      gh = 0;
    if (gw < 0)
      gw = 0;
    size_t count = (size_t)(gh * gw > 1 ? gh * gw : 1);
    size_t ntap = (size_t)(oh * ow * gh * gw);
    roi_tap *taps = tc_arena_alloc(k->arena, (ntap ? ntap : 1) * sizeof *taps);
    if (!taps)
      return NOMEM(k);
    size_t t = 0;
    for (int64_t ph = 0; ph < oh; ph++)
      for (int64_t pw = 0; pw < ow; pw++)
        for (int64_t iy = 0; iy < gh; iy++) {
          double yy = sh + (double)ph * bh + ((double)iy + 0.5) * bh / (double)gh;
          for (int64_t ix = 0; ix < gw; ix++, t++) {
            double xx = sw + (double)pw * bw + ((double)ix + 0.5) * bw / (double)gw;
            roi_tap *p = &taps[t];
            memset(p, 0, sizeof *p);
            if (yy < -1.0 || yy > (double)H || xx < -1.0 || xx > (double)W)
              continue;
            double y = fmax(yy, 0), xv = fmax(xx, 0);
            size_t yl = (size_t)y, xl = (size_t)xv, yh2, xh2;
            if (yl >= H - 1) {
              yh2 = yl = H - 1;
              y = (double)yl;
            } else {
              yh2 = yl + 1;
            }
            if (xl >= W - 1) {
              xh2 = xl = W - 1;
              xv = (double)xl;
            } else {
              xh2 = xl + 1;
            }
            double ly = y - (double)yl, lx = xv - (double)xl, hy = 1 - ly, hx = 1 - lx;
            p->pos[0] = yl * W + xl, p->pos[1] = yl * W + xh2;
            p->pos[2] = yh2 * W + xl, p->pos[3] = yh2 * W + xh2;
            p->w[0] = hy * hx, p->w[1] = hy * lx, p->w[2] = ly * hx, p->w[3] = ly * lx;
          }
        }
    for (size_t c = 0; c < C; c++) {
      size_t base = ((size_t)b * C + c) * H * W, ob = (r * C + c) * (size_t)(oh * ow);
      t = 0;
      for (int64_t q = 0; q < oh * ow; q++) {
        double acc = 0;
        bool first = true;
        for (int64_t s = 0; s < gh * gw; s++, t++) {
          const roi_tap *p = &taps[t];
          double v[4];
          for (int i = 0; i < 4; i++)
            v[i] = p->w[i] * tc_rt_get_f64(x, base + p->pos[i]);
          if (avg) {
            acc += v[0] + v[1] + v[2] + v[3];
          } else {
            double m = fmax(fmax(v[0], v[1]), fmax(v[2], v[3]));
            acc = first || m > acc ? m : acc;
            first = false;
          }
        }
        tc_rt_set_f64(&out[0], ob + (size_t)q, avg ? acc / (double)count : acc);
      }
    }
  }
  return TC_STATUS_OK;
}

/* ---- GridSample ---- */

enum { GS_NEAREST, GS_LINEAR, GS_CUBIC };
enum { GS_ZEROS, GS_BORDER, GS_REFLECTION };

static int gs_mode(const char *s) {
  if (!strcmp(s, "nearest"))
    return GS_NEAREST;
  if (!strcmp(s, "linear") || !strcmp(s, "bilinear"))
    return GS_LINEAR;
  if (!strcmp(s, "cubic") || !strcmp(s, "bicubic"))
    return GS_CUBIC;
  return -1;
}

static int gs_padding(const char *s) {
  if (!strcmp(s, "zeros"))
    return GS_ZEROS;
  if (!strcmp(s, "border"))
    return GS_BORDER;
  if (!strcmp(s, "reflection"))
    return GS_REFLECTION;
  return -1;
}

static tc_status check_gridsample(const tc_node *n, int64_t opset, tc_diag *diag) {
  static const char *const ok[] = {"align_corners", "mode", "padding_mode", NULL};
  tc_status st = tc_kernel_check_attrs(n, diag, ok);
  if (st)
    return st;
  const char *what[2] = {"mode", "padding_mode"};
  for (int i = 0; i < 2; i++) {
    const tc_attr *a = tc_node_attr(n, what[i]);
    char buf[16] = {0};
    if (!a)
      continue;
    if (a->s.len < sizeof buf && a->s.data)
      memcpy(buf, a->s.data, a->s.len);
    bool good = a->s.len < sizeof buf && (i == 0 ? gs_mode(buf) >= 0 : gs_padding(buf) >= 0);
    /* opset 16 names the modes bilinear / bicubic, 20 linear / cubic */
    if (good && i == 0 && opset < 20 && (!strcmp(buf, "linear") || !strcmp(buf, "cubic")))
      good = false;
    if (!good)
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, n->name ? n->name : "", n->op_type,
                         "%s '%.*s' is not supported", what[i],
                         (int)(a->s.len > 32 ? 32 : a->s.len),
                         a->s.data ? (const char *)a->s.data : "");
  }
  return TC_STATUS_OK;
}

/* Reflects x into [lo, hi] by the near border until within (the reference's). */
static double gs_reflect(double x, double lo, double hi) {
  double rng = hi - lo;
  if (x < lo) {
    double dx = lo - x;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    int64_t n = (int64_t)(dx / rng);
    double r = dx - (double)n * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

static void gs_cubic(double t, double *c) {
  const double A = -0.75;
  t = fabs(t);
  c[0] = ((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A;
  c[1] = ((A + 2) * t - (A + 3)) * t * t + 1;
  c[2] = ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1;
  c[3] = ((A * (2 - t) - 5 * A) * (2 - t) + 8 * A) * (2 - t) - 4 * A;
}

/* Index i of a dim of size d after padding: -1 reads 0 (zeros). */
static int64_t gs_index(int64_t i, int64_t d, int pad, double lo, double hi) {
  if (i >= 0 && i < d)
    return i;
  if (pad == GS_ZEROS)
    return -1;
  if (pad == GS_BORDER)
    return i < 0 ? 0 : d - 1;
  int64_t j = (int64_t)gs_reflect((double)i, lo, hi);
  return j < 0 ? 0 : j >= d ? d - 1 : j;
}

static tc_status run_gridsample(tc_kernel_ctx *k, const tc_rt_tensor *const *in, size_t n_in,
                                tc_rt_tensor *out, size_t n_out) {
  (void)n_out;
  const tc_node *n = k->node;
  const tc_rt_tensor *x = input(in, n_in, 0), *grid = input(in, n_in, 1);
  if (!x || !grid)
    return tc_kernel_fail(k, TC_STATUS_INVALID, "X and grid are required");
  if (!tc_dtype_is_float(x->dtype))
    return tc_kernel_bad_dtype(k, 0, x->dtype);
  if (!tc_dtype_is_float(grid->dtype))
    return tc_kernel_bad_dtype(k, 1, grid->dtype);
  size_t r = x->rank >= 3 ? x->rank - 2 : 0;
  if (r < 1 || r > 3 || grid->rank != x->rank || grid->dims[0] != x->dims[0] ||
      grid->dims[grid->rank - 1] != (int64_t)r)
    return tc_kernel_fail(k, TC_STATUS_INVALID,
                          "X must be [N, C, d1..dr] (r = 1 to 3) and grid [N, D1..Dr, r]");
  const char *ms = tc_attr_string(n, "mode", k->opset >= 20 ? "linear" : "bilinear", k->arena);
  const char *ps = tc_attr_string(n, "padding_mode", "zeros", k->arena);
  if (!ms || !ps)
    return NOMEM(k);
  int mode = gs_mode(ms), pad = gs_padding(ps);
  bool ac = tc_attr_int(n, "align_corners", 0) != 0;
  size_t N = (size_t)x->dims[0], C = (size_t)x->dims[1];
  int64_t dims[2 + 3];
  dims[0] = (int64_t)N, dims[1] = (int64_t)C;
  size_t npos = 1, nin = 1;
  for (size_t i = 0; i < r; i++) {
    dims[2 + i] = grid->dims[1 + i];
    npos *= (size_t)grid->dims[1 + i];
    nin *= (size_t)x->dims[2 + i];
  }
  tc_status st = tc_kernel_alloc(k, &out[0], x->dtype, 2 + r, dims);
  if (st)
    return st;
  int ntaps = mode == GS_CUBIC ? 4 : mode == GS_LINEAR ? 2 : 1;
  for (size_t b = 0; b < N; b++)
    for (size_t p = 0; p < npos; p++) {
      /* per dim (d1 first): the taps' indices (-1: zero) and weights */
      int64_t idx[3][4];
      double w[3][4];
      for (size_t i = 0; i < r; i++) {
        int64_t d = x->dims[2 + i];
        /* grid holds (x, y, z): the last spatial dim first */
        double g = tc_rt_get_f64(grid, (b * npos + p) * r + (r - 1 - i));
        double v = ac ? (g + 1) / 2.0 * (double)(d - 1) : ((g + 1) * (double)d - 1) / 2.0;
        double lo = ac ? 0.0 : -0.5, hi = ac ? (double)(d - 1) : (double)d - 0.5;
        if (mode == GS_NEAREST)
          v = nearbyint(v);
        /* Cubic with border padding clamps each tap (gs_index), not the
         * position, as ONNX Runtime and PyTorch do; the ONNX reference
         * clamps the position first, which no node test covers. */
        if ((v < lo || v > hi) && !(mode == GS_CUBIC && pad == GS_BORDER)) {
          if (pad == GS_BORDER)
            v = v < 0 ? 0 : v > (double)(d - 1) ? (double)(d - 1) : v;
          else if (pad == GS_REFLECTION)
            v = gs_reflect(v, lo, hi);
        }
        if (mode == GS_NEAREST) {
          idx[i][0] = gs_index((int64_t)v, d, pad, lo, hi);
          w[i][0] = 1;
          continue;
        }
        double f = floor(v), t = v - f;
        int64_t i0 = (int64_t)f - (mode == GS_CUBIC ? 1 : 0);
        if (mode == GS_CUBIC) {
          gs_cubic(t, w[i]);
        } else {
          w[i][0] = 1 - t;
          w[i][1] = t;
        }
        for (int q = 0; q < ntaps; q++)
          idx[i][q] = gs_index(i0 + q, d, pad, lo, hi);
      }
      size_t combos = 1, stride[3];
      for (size_t i = r, st2 = 1; i-- > 0;) {
        combos *= (size_t)ntaps;
        stride[i] = st2;
        st2 *= (size_t)x->dims[2 + i];
      }
      for (size_t c = 0; c < C; c++) {
        size_t base = (b * C + c) * nin;
        double acc = 0;
        for (size_t m = 0; m < combos; m++) {
          size_t rest = m, off = 0;
          double wt = 1;
          bool zero = false;
          for (size_t i = r; i-- > 0 && !zero;) { /* the last dim varies fastest */
            int q = (int)(rest % (size_t)ntaps);
            rest /= (size_t)ntaps;
            zero = idx[i][q] < 0;
            wt *= w[i][q];
            off += zero ? 0 : (size_t)idx[i][q] * stride[i];
          }
          if (zero)
            continue;
          acc += wt * tc_rt_get_f64(x, base + off);
        }
        tc_rt_set_f64(&out[0], (b * C + c) * npos + p, acc);
      }
    }
  return TC_STATUS_OK;
}

const tc_kernel_def tc_kernels_vision[] = {
    {"NonMaxSuppression", "", 10, run_nms, check_nms},
    {"RoiAlign", "", 10, run_roialign, check_roialign},
    {"GridSample", "", 16, run_gridsample, check_gridsample},
    {NULL, NULL, 0, NULL, NULL},
};
