/* The oneDNN path against the reference kernels. Each case runs one node in
 * a session twice, with the reference kernels and with oneDNN, and compares:
 *   - MatMul (batched, broadcast, 1-D operands) and Gemm (transposes, alpha,
 *     beta, bias) through sgemm, within fp32 accumulation-order error;
 *   - Conv (groups, depthwise, strides, dilations, pads, auto_pad, 1-D to
 *     3-D, batch > 1), ConvTranspose (output_padding, output_shape, pads,
 *     auto_pad) and FusedConv (every activation, with and without Z) through
 *     oneDNN primitives, within 1e-4 relative;
 *   - ConvInteger, QLinearConv, QLinearMatMul and MatMulInteger through the
 *     int8 GEMM (uint8 and int8 operands, nonzero per-tensor and per-channel
 *     zero points, odd M/N/K), bit for bit.
 * Initializer weights (cached by the oneDNN path) are checked not to go
 * stale when a model with other weights reuses the shapes, and 4 threads
 * running one conv repeatedly must get identical results. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "diag.h"
#include "kernel.h"

static const char *const names[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};

/* A model with one node op(a, b, ...) of domain dom whose inputs are graph
 * inputs, except those in init_mask (bit i), which become initializers
 * holding in[i]. */
static tc_model *node_model(const char *op, const char *dom, size_t n_in, const tc_attr *attrs,
                            size_t n_attrs, unsigned init_mask, const tc_ndarray *in) {
  tc_model *m = tc_model_new_empty();
  m->ir_version = 8;
  m->n_opsets = dom[0] ? 2 : 1;
  m->opsets = tc_arena_alloc(m->arena, 2 * sizeof *m->opsets);
  m->opsets[0] = (tc_opset){.domain = "", .version = 17};
  m->opsets[1] = (tc_opset){.domain = dom, .version = 1};
  tc_graph *g = m->graph = tc_graph_new(m, NULL, "g");
  tc_node *n = tc_graph_append_node(g, op, dom, "n", n_in, 1, n_attrs);
  for (size_t i = 0; i < n_in; i++) {
    tc_value *v = tc_graph_new_value(g, names[i], NULL);
    if (init_mask & (1u << i)) {
      tc_tensor *t = tc_arena_alloc(m->arena, sizeof *t);
      void *copy = malloc(in[i].size ? in[i].size : 1);
      memcpy(copy, in[i].data, in[i].size);
      tc_buffer *b = tc_buffer_wrap_heap(copy, in[i].size);
      tc_arena_on_free(m->arena, (void (*)(void *))tc_buffer_unref, b);
      *t = (tc_tensor){.name = names[i],
                       .dtype = in[i].dtype,
                       .has_dtype = true,
                       .rank = in[i].rank,
                       .dims = tc_arena_memdup(m->arena, in[i].dims, sizeof in[i].dims),
                       .field = TC_FIELD_RAW,
                       .has_raw = true};
      t->data[TC_FIELD_RAW] = (tc_span){b, 0, in[i].size};
      tc_graph_add_init(g, v, t);
    } else {
      tc_graph_add_input(g, v, NULL);
    }
    tc_node_set_input(n, i, v);
  }
  for (size_t i = 0; i < n_attrs; i++)
    n->attrs[i] = attrs[i];
  tc_value *y = tc_graph_new_value(g, "y", NULL);
  tc_node_set_output(n, 0, y);
  tc_graph_add_output(g, y, NULL);
  return m;
}

static tc_model *one_node(const char *op, size_t n_in, const tc_attr *attrs, size_t n_attrs) {
  return node_model(op, "", n_in, attrs, n_attrs, 0, NULL);
}

static unsigned next(unsigned *seed) {
  *seed = *seed * 1103515245u + 12345u;
  return *seed >> 8;
}

/* A tensor of dtype dt with pseudo-random values: floats in [-1, 1], 8-bit
 * integers over their whole range. */
static tc_ndarray random_of(int32_t dt, size_t rank, const int64_t *dims, unsigned seed) {
  tc_ndarray t = {.dtype = dt, .rank = rank};
  size_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= (size_t)(t.dims[i] = dims[i]);
  t.size = tc_dtype_bytes(dt, n);
  t.data = malloc(t.size ? t.size : 1);
  for (size_t i = 0; i < n; i++) {
    unsigned r = next(&seed);
    if (dt == TC_DTYPE_F32)
      ((float *)t.data)[i] = (float)(r % 2001) / 1000.0f - 1.0f;
    else if (dt == TC_DTYPE_I32)
      ((int32_t *)t.data)[i] = (int32_t)(r % 20001) - 10000;
    else
      ((uint8_t *)t.data)[i] = (uint8_t)r;
  }
  return t;
}

static tc_ndarray random_input(size_t rank, const int64_t *dims, unsigned seed) {
  return random_of(TC_DTYPE_F32, rank, dims, seed);
}

static tc_ndarray scalar_of(int32_t dt, double v) {
  tc_ndarray t = {.dtype = dt, .rank = 0, .size = tc_dtype_bytes(dt, 1)};
  t.data = malloc(8);
  tc_rt_tensor rt = {.dtype = dt, .data = t.data};
  tc_rt_set_f64(&rt, 0, v);
  return t;
}

static void free_inputs(tc_ndarray *in, size_t n) {
  for (size_t i = 0; i < n; i++)
    free(in[i].data);
}

/* Runs s with the reference kernels into *ref and with oneDNN into *fast. */
static bool run_both(tc_session *s, size_t n_in, const tc_ndarray *in, tc_ndarray *ref,
                     tc_ndarray *fast) {
  tc_diag d = {0};
  tc_fast_kernels_set(false);
  tc_status a = tc_session_run(s, n_in, names, in, ref, &d);
  if (a)
    fprintf(stderr, "reference: %s\n", d.message);
  tc_fast_kernels_set(true);
  tc_status b = tc_session_run(s, n_in, names, in, fast, &d);
  if (b)
    fprintf(stderr, "fast: %s\n", d.message);
  return !a && !b && ref->size == fast->size && ref->rank == fast->rank &&
         memcmp(ref->dims, fast->dims, sizeof ref->dims) == 0;
}

/* Largest |ref - fast| / (1 + |ref|) of two float32 results. */
static double rel_err(const tc_ndarray *ref, const tc_ndarray *fast) {
  double worst = 0;
  for (size_t i = 0; i < ref->size / 4; i++) {
    double r = ((float *)ref->data)[i], f = ((float *)fast->data)[i];
    double e = fabs(r - f) / (1 + fabs(r));
    worst = e > worst || isnan(e) ? e : worst;
  }
  return worst;
}

/* Graph inputs except those in init_mask; the rest are initializers. */
static size_t feeds(size_t n_in, const tc_ndarray *in, unsigned init_mask, tc_ndarray *out,
                    const char **fnames) {
  size_t n = 0;
  for (size_t i = 0; i < n_in; i++)
    if (!(init_mask & (1u << i))) {
      fnames[n] = names[i];
      out[n++] = in[i];
    }
  return n;
}

/* Compares the two paths on m; tol < 0: bit for bit, else relative error. */
static void compare_model(tc_model *m, size_t n_in, const tc_ndarray *in, unsigned init_mask,
                          double tol) {
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    fprintf(stderr, "session: %s\n", d.message);
    return;
  }
  tc_ndarray fin[9], ref = {0}, fast = {0};
  const char *fn[9];
  size_t nf = feeds(n_in, in, init_mask, fin, fn);
  tc_diag dr = {0}, df = {0};
  tc_fast_kernels_set(false);
  tc_status a = tc_session_run(s, nf, fn, fin, &ref, &dr);
  tc_fast_kernels_set(true);
  tc_status b = tc_session_run(s, nf, fn, fin, &fast, &df);
  CHECK(a == TC_STATUS_OK && b == TC_STATUS_OK);
  if (a || b)
    fprintf(stderr, "run: %s / %s\n", dr.message, df.message);
  CHECK(ref.size == fast.size && ref.rank == fast.rank &&
        memcmp(ref.dims, fast.dims, sizeof ref.dims) == 0);
  if (!a && !b && ref.size == fast.size) {
    if (tol < 0) {
      CHECK(memcmp(ref.data, fast.data, ref.size) == 0);
    } else {
      double e = rel_err(&ref, &fast);
      CHECK(e <= tol);
      if (e > tol)
        fprintf(stderr, "relative error %g\n", e);
    }
  }
  tc_ndarray_release(&ref);
  tc_ndarray_release(&fast);
  tc_session_free(s);
}

/* Runs m once with the reference kernels and once with oneDNN; compares. */
static void compare_paths(tc_model *m, size_t n_in, tc_ndarray *in, size_t k_dim) {
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  tc_ndarray ref = {0}, fast = {0};
  CHECK(run_both(s, n_in, in, &ref, &fast));
  double worst = 0;
  for (size_t i = 0; ref.data && fast.data && i < ref.size / 4; i++) {
    double e = fabs((double)((float *)ref.data)[i] - (double)((float *)fast.data)[i]);
    worst = e > worst ? e : worst;
  }
  /* Inputs are in [-1, 1]: sums of k products differ by rounding, ~k * 2^-24 each. */
  CHECK(worst <= 1e-6 * (double)k_dim + 1e-6);
  tc_ndarray_release(&ref);
  tc_ndarray_release(&fast);
  tc_session_free(s);
}

static void test_matmul_shapes(void) {
  struct {
    size_t ra, rb;
    int64_t a[4], b[4];
    size_t k;
  } cases[] = {
      {2, 2, {7, 13}, {13, 5}, 13},
      {2, 2, {64, 768}, {768, 256}, 768},
      {3, 2, {4, 9, 33}, {33, 17}, 33},      /* batched A, shared B */
      {4, 4, {2, 1, 5, 8}, {1, 3, 8, 6}, 8}, /* broadcast batch dims */
      {1, 2, {12}, {12, 7}, 12},             /* 1-D A */
      {3, 1, {2, 6, 12}, {12}, 12},          /* 1-D B */
      {2, 2, {3, 0}, {0, 4}, 1},             /* K = 0: zeros */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    tc_model *m = one_node("MatMul", 2, NULL, 0);
    tc_ndarray in[2] = {random_input(cases[c].ra, cases[c].a, 1 + (unsigned)c),
                        random_input(cases[c].rb, cases[c].b, 100 + (unsigned)c)};
    compare_paths(m, 2, in, cases[c].k);
    free_inputs(in, 2);
    tc_model_free(m);
  }
}

static void test_gemm_transposes(void) {
  /* C broadcast as a row, a column, a full matrix and a scalar; beta 1 takes
   * the fast path's row copy, 2 its scaled fill */
  int64_t M = 19, N = 23, K = 31;
  struct {
    size_t rank;
    int64_t dims[2];
  } cshape[] = {{1, {N}}, {2, {M, 1}}, {2, {M, N}}, {1, {1}}};
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (size_t ci = 0; ci < sizeof cshape / sizeof *cshape; ci++) {
        float beta = ci % 2 ? 1.0f : 2.0f;
        tc_attr attrs[4] = {
            {.name = "transA", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = ta},
            {.name = "transB", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = tb},
            {.name = "alpha", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = 0.5f},
            {.name = "beta", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = beta}};
        tc_model *m = one_node("Gemm", 3, attrs, 4);
        int64_t da[2] = {ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N};
        tc_ndarray in[3] = {random_input(2, da, 7), random_input(2, db, 8),
                            random_input(cshape[ci].rank, cshape[ci].dims, 9)};
        compare_paths(m, 3, in, (size_t)K);
        free_inputs(in, 3);
        tc_model_free(m);
      }
}

/* One row of A (the matrix-vector path of tc_sgemm_beta): both layouts of A
 * and B, alpha and beta with C as a row or a scalar, sizes that are no
 * multiple of the vector width or of the column blocks; MatMul [1, K] x
 * [K, N] too. */
static void test_gemv(void) {
  int64_t K = 301, N = 517;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++)
      for (int ci = 0; ci < 2; ci++) {
        tc_attr attrs[4] = {
            {.name = "transA", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = ta},
            {.name = "transB", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = tb},
            {.name = "alpha", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = 0.75f},
            {.name = "beta",
             .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
             .f = ci ? 2.0f : 1.0f}};
        tc_model *m = one_node("Gemm", 3, attrs, 4);
        int64_t da[2] = {ta ? K : 1, ta ? 1 : K}, db[2] = {tb ? N : K, tb ? K : N},
                dc[1] = {ci ? 1 : N};
        tc_ndarray in[3] = {random_input(2, da, 17), random_input(2, db, 18),
                            random_input(1, dc, 19)};
        compare_paths(m, 3, in, (size_t)K);
        free_inputs(in, 3);
        tc_model_free(m);
      }
  tc_model *m = one_node("MatMul", 2, NULL, 0);
  int64_t da[2] = {1, K}, db[2] = {K, N};
  tc_ndarray in[2] = {random_input(2, da, 20), random_input(2, db, 21)};
  compare_paths(m, 2, in, (size_t)K);
  free_inputs(in, 2);
  tc_model_free(m);
}

static tc_attr ints(const char *name, size_t n, int64_t *v) {
  return (tc_attr){
      .name = name, .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, .n_ints = n, .ints = v};
}

static tc_attr int1(const char *name, int64_t v) {
  return (tc_attr){.name = name, .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = v};
}

static tc_attr str(const char *name, const char *v) {
  return (tc_attr){.name = name,
                   .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING,
                   .s = {strlen(v), (uint8_t *)v}};
}

static tc_attr floats(const char *name, size_t n, float *v) {
  return (tc_attr){.name = name,
                   .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS,
                   .n_floats = n,
                   .floats = v};
}

/* A convolution case: x and w dims, group, per-dim strides / dilations
 * (0: attribute left out), pads (begin..., end...; all -1: left out) and
 * auto_pad (NULL: left out). */
typedef struct conv_case {
  size_t rank;
  int64_t x[5], w[5];
  int64_t group;
  int64_t s[3], d[3], p[6];
  const char *auto_pad;
  bool bias;
} conv_case;

/* The attributes of c into a (room for 8); returns their count. */
static size_t conv_attrs(conv_case *c, tc_attr *a) {
  size_t nsp = c->rank - 2, n = 0;
  if (c->s[0])
    a[n++] = ints("strides", nsp, c->s);
  if (c->d[0])
    a[n++] = ints("dilations", nsp, c->d);
  if (c->p[0] >= 0)
    a[n++] = ints("pads", 2 * nsp, c->p);
  if (c->auto_pad)
    a[n++] = str("auto_pad", c->auto_pad);
  a[n++] = int1("group", c->group);
  return n;
}

static void test_conv_shapes(void) {
  struct {
    size_t rank;
    int64_t x[5], w[5];
    int64_t group, stride, dil, pad;
  } cases[] = {
      {4, {2, 3, 11, 9}, {8, 3, 3, 3}, 1, 1, 1, 1},      /* 3x3 same padding */
      {4, {1, 8, 12, 12}, {16, 8, 1, 1}, 1, 1, 1, 0},    /* 1x1 direct path */
      {4, {1, 8, 12, 12}, {16, 8, 1, 1}, 1, 2, 1, 0},    /* 1x1 strided */
      {4, {1, 6, 15, 13}, {6, 1, 3, 3}, 6, 2, 1, 1},     /* depthwise, stride 2 */
      {4, {2, 4, 14, 14}, {6, 2, 3, 3}, 2, 1, 2, 2},     /* groups and dilation */
      {3, {2, 5, 30}, {7, 5, 4}, 1, 3, 1, 2},            /* 1-D, as in speech front ends */
      {5, {1, 2, 5, 6, 7}, {3, 2, 2, 3, 2}, 1, 1, 1, 1}, /* 3-D */
      {4, {1, 32, 30, 29}, {40, 32, 3, 3}, 1, 1, 1, 1},  /* Winograd, 4x3 tiles (870 outputs) */
      {4, {2, 48, 9, 11}, {32, 48, 3, 3}, 1, 1, 1, 1},   /* Winograd, oneDNN's tile choice */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    size_t nsp = cases[c].rank - 2;
    int64_t st[3], di[3], pa[6], gr[1] = {cases[c].group};
    for (size_t i = 0; i < nsp; i++)
      st[i] = cases[c].stride, di[i] = cases[c].dil, pa[i] = pa[i + nsp] = cases[c].pad;
    tc_attr attrs[4] = {ints("strides", nsp, st), ints("dilations", nsp, di),
                        ints("pads", 2 * nsp, pa), int1("group", gr[0])};
    tc_model *m = one_node("Conv", 3, attrs, 4);
    int64_t bd[1] = {cases[c].w[0]};
    tc_ndarray in[3] = {random_input(cases[c].rank, cases[c].x, 11 + (unsigned)c),
                        random_input(cases[c].rank, cases[c].w, 50 + (unsigned)c),
                        random_input(1, bd, 90 + (unsigned)c)};
    size_t kdim = (size_t)cases[c].w[1];
    for (size_t i = 2; i < cases[c].rank; i++)
      kdim *= (size_t)cases[c].w[i];
    compare_paths(m, 3, in, kdim);
    free_inputs(in, 3);
    tc_model_free(m);
  }
}

static conv_case conv_cases[] = {
    /* odd sizes, asymmetric pads, batch 3 */
    {4, {3, 5, 17, 11}, {7, 5, 3, 3}, 1, {1, 1}, {1, 1}, {1, 0, 2, 1}, NULL, true},
    /* strides 2 and 3, no bias */
    {4, {2, 3, 19, 23}, {4, 3, 5, 3}, 1, {2, 3}, {0}, {2, 1, 2, 1}, NULL, false},
    /* dilations 2 and 3 */
    {4, {1, 4, 20, 21}, {5, 4, 3, 3}, 1, {1, 1}, {2, 3}, {2, 3, 2, 3}, NULL, true},
    /* groups of 2 input and 3 output channels */
    {4, {2, 6, 9, 10}, {9, 2, 3, 3}, 3, {1, 2}, {0}, {1, 1, 1, 1}, NULL, true},
    /* depthwise, channel multiplier 2 */
    {4, {1, 4, 13, 12}, {8, 1, 3, 3}, 4, {2, 2}, {0}, {1, 1, 1, 1}, NULL, true},
    /* depthwise 5x5 on 32 channels, like MobileNet */
    {4, {1, 32, 14, 14}, {32, 1, 5, 5}, 32, {1, 1}, {0}, {2, 2, 2, 2}, NULL, true},
    /* auto_pad SAME_UPPER and SAME_LOWER with stride 2, VALID */
    {4, {1, 3, 10, 9}, {4, 3, 4, 3}, 1, {2, 2}, {0}, {-1}, "SAME_UPPER", true},
    {4, {1, 3, 10, 9}, {4, 3, 4, 3}, 1, {2, 2}, {0}, {-1}, "SAME_LOWER", true},
    {4, {2, 3, 10, 9}, {4, 3, 3, 2}, 1, {3, 2}, {0}, {-1}, "VALID", true},
    /* 1x1: plain layout (>= 100 outputs) padded; blocked (fewer) strided; grouped */
    {4, {2, 16, 11, 13}, {24, 16, 1, 1}, 1, {1, 1}, {0}, {1, 0, 0, 1}, NULL, true},
    {4, {1, 16, 8, 8}, {8, 16, 1, 1}, 1, {2, 2}, {0}, {0, 0, 0, 0}, NULL, false},
    {4, {1, 16, 8, 8}, {8, 4, 1, 1}, 4, {1, 1}, {0}, {0, 0, 0, 0}, NULL, true},
    /* ResNet-style 3x3 at real channel counts */
    {4, {1, 64, 28, 28}, {64, 64, 3, 3}, 1, {1, 1}, {0}, {1, 1, 1, 1}, NULL, true},
    {4, {2, 32, 15, 15}, {48, 32, 3, 3}, 1, {2, 2}, {0}, {1, 1, 1, 1}, NULL, true},
    /* 1-D: strided, grouped, dilated */
    {3, {2, 6, 31}, {4, 3, 5}, 2, {2}, {2}, {3, 1}, NULL, true},
    {3, {1, 8, 40}, {8, 1, 3}, 8, {1}, {0}, {-1}, "SAME_UPPER", true},
    /* 3-D: strides, dilation, batch 2 */
    {5, {2, 3, 7, 6, 9}, {4, 3, 3, 2, 3}, 1, {2, 1, 2}, {1, 2, 1}, {1, 0, 1, 1, 1, 0}, NULL, true},
    {5, {1, 4, 5, 5, 5}, {4, 1, 3, 3, 3}, 4, {1, 1, 1}, {0}, {1, 1, 1, 1, 1, 1}, NULL, true},
};

static void test_conv_cases(void) {
  for (size_t c = 0; c < sizeof conv_cases / sizeof conv_cases[0]; c++) {
    conv_case *cc = &conv_cases[c];
    tc_attr a[8];
    size_t na = conv_attrs(cc, a), n_in = cc->bias ? 3 : 2;
    int64_t bd[1] = {cc->w[0]};
    tc_ndarray in[3] = {random_input(cc->rank, cc->x, 21 + (unsigned)c),
                        random_input(cc->rank, cc->w, 61 + (unsigned)c),
                        random_input(1, bd, 97 + (unsigned)c)};
    /* W (and B) as graph inputs, then as initializers (cached reordered) */
    for (unsigned mask = 0; mask < 2; mask++) {
      tc_model *m = node_model("Conv", "", n_in, a, na, mask ? 6u : 0u, in);
      compare_model(m, n_in, in, mask ? 6u : 0u, 1e-4);
      tc_model_free(m);
    }
    free_inputs(in, 3);
  }
}

/* ConvTranspose: strides, pads, output_padding, output_shape, dilations,
 * groups, auto_pad, kernels that tile the output; 1-D to 3-D. */
static void test_convtranspose(void) {
  struct {
    size_t rank;
    int64_t x[5], w[5], group, s[3], d[3], p[6], op[3], os[3];
    const char *auto_pad;
  } cases[] = {
      {4, {1, 3, 5, 4}, {3, 2, 3, 3}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, {0}, {0}, NULL},
      {4, {2, 4, 5, 6}, {4, 3, 3, 3}, 1, {2, 2}, {1, 1}, {1, 1, 1, 1}, {1, 1}, {0}, NULL},
      {4, {1, 4, 6, 5}, {4, 2, 4, 3}, 2, {2, 3}, {1, 1}, {1, 0, 2, 1}, {1, 2}, {0}, NULL},
      {4, {1, 2, 4, 4}, {2, 3, 3, 3}, 1, {2, 2}, {2, 2}, {0, 0, 0, 0}, {0}, {0}, NULL},
      {4, {1, 3, 5, 5}, {3, 1, 3, 3}, 3, {2, 2}, {1, 1}, {0}, {0}, {10, 11}, NULL},
      {4, {1, 2, 4, 5}, {2, 3, 3, 2}, 1, {2, 2}, {1, 1}, {0}, {0}, {0}, "SAME_UPPER"},
      {4, {1, 2, 4, 5}, {2, 3, 3, 2}, 1, {2, 2}, {1, 1}, {0}, {0}, {0}, "SAME_LOWER"},
      {3, {2, 3, 9}, {3, 4, 5}, 1, {3}, {1}, {2, 1}, {2}, {0}, NULL},
      /* kernel == stride: one GEMM and a depth-to-space (one output channel,
       * batch 2, odd sizes; a 3x2 kernel); with output padding or groups,
       * the general path */
      {4, {2, 5, 3, 7}, {5, 1, 2, 2}, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, {0}, {0}, NULL},
      {4, {1, 3, 4, 5}, {3, 4, 3, 2}, 1, {3, 2}, {1, 1}, {0, 0, 0, 0}, {0}, {0}, NULL},
      {4, {1, 4, 3, 3}, {4, 2, 2, 2}, 1, {2, 2}, {1, 1}, {0, 0, 0, 0}, {1, 1}, {0}, NULL},
      {4, {1, 4, 3, 3}, {4, 2, 2, 2}, 2, {2, 2}, {1, 1}, {0, 0, 0, 0}, {0}, {0}, NULL},
      {5,
       {1, 2, 3, 4, 3},
       {2, 2, 2, 3, 2},
       1,
       {2, 1, 2},
       {1, 1, 1},
       {0, 1, 0, 0, 1, 1},
       {1, 0, 1},
       {0},
       NULL},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    size_t nsp = cases[c].rank - 2, na = 0;
    tc_attr a[8];
    a[na++] = ints("strides", nsp, cases[c].s);
    a[na++] = ints("dilations", nsp, cases[c].d);
    a[na++] = int1("group", cases[c].group);
    if (cases[c].os[0])
      a[na++] = ints("output_shape", nsp, cases[c].os);
    else if (cases[c].auto_pad)
      a[na++] = str("auto_pad", cases[c].auto_pad);
    else
      a[na++] = ints("pads", 2 * nsp, cases[c].p);
    if (cases[c].op[0] || cases[c].op[1])
      a[na++] = ints("output_padding", nsp, cases[c].op);
    int64_t bd[1] = {cases[c].w[1] * cases[c].group};
    tc_ndarray in[3] = {random_input(cases[c].rank, cases[c].x, 3 + (unsigned)c),
                        random_input(cases[c].rank, cases[c].w, 33 + (unsigned)c),
                        random_input(1, bd, 77 + (unsigned)c)};
    for (unsigned mask = 0; mask < 2; mask++) {
      tc_model *m = node_model("ConvTranspose", "", 3, a, na, mask ? 2u : 0u, in);
      compare_model(m, 3, in, mask ? 2u : 0u, 1e-4);
      tc_model_free(m);
    }
    free_inputs(in, 3);
  }
}

/* FusedConv: every activation of both domains, with and without Z, on
 * blocked (3x3, depthwise) and plain (1x1) layouts. */
static void test_fusedconv(void) {
  static struct {
    const char *name;
    size_t np;
    float p[2];
    bool tacoc_only;
  } acts[] = {
      {NULL, 0, {0}, false},
      {"Relu", 0, {0}, false},
      {"Tanh", 0, {0}, false},
      {"Sigmoid", 0, {0}, false},
      {"LeakyRelu", 1, {0.1f}, false},
      {"Clip", 2, {-0.5f, 0.75f}, false},
      {"HardSigmoid", 2, {0.3f, 0.4f}, false},
      {"HardSwish", 0, {0}, true},
      {"Gelu", 0, {0}, true},
      {"Silu", 0, {0}, true},
  };
  const char *doms[] = {"com.microsoft", "ai.tacoc"};
  conv_case shapes[] = {
      {4, {2, 5, 9, 8}, {6, 5, 3, 3}, 1, {1, 1}, {0}, {1, 1, 1, 1}, NULL, true},
      {4, {1, 8, 12, 11}, {12, 8, 1, 1}, 1, {1, 1}, {0}, {0, 0, 0, 0}, NULL, true},
      {4, {1, 6, 9, 9}, {6, 1, 3, 3}, 6, {2, 2}, {0}, {1, 1, 1, 1}, NULL, true},
  };
  for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
    conv_case *cc = &shapes[sh];
    tc_attr base[8];
    size_t nb = conv_attrs(cc, base);
    int64_t bd[1] = {cc->w[0]}, yd[4] = {cc->x[0], cc->w[0], 0, 0};
    for (size_t i = 0; i < 2; i++) { /* output dims for pads 1 (3x3) or 0 (1x1) */
      int64_t pad = cc->p[i] + cc->p[i + 2], dk = cc->w[2 + i];
      yd[2 + i] = (cc->x[2 + i] + pad - dk) / cc->s[i] + 1;
    }
    /* Z scaled to [-3, 3] so the activations see both their regions */
    tc_ndarray in[4] = {random_input(4, cc->x, 5), random_input(4, cc->w, 6),
                        random_input(1, bd, 7), random_input(4, yd, 8)};
    for (size_t i = 0; i < in[3].size / 4; i++)
      ((float *)in[3].data)[i] *= 3;
    for (size_t dm = 0; dm < 2; dm++)
      for (size_t ai = 0; ai < sizeof acts / sizeof acts[0]; ai++) {
        if (acts[ai].tacoc_only && dm == 0)
          continue;
        for (size_t with_z = 0; with_z < 2; with_z++) {
          tc_attr a[10];
          memcpy(a, base, nb * sizeof *a);
          size_t na = nb;
          if (acts[ai].name)
            a[na++] = str("activation", acts[ai].name);
          if (acts[ai].np)
            a[na++] = floats("activation_params", acts[ai].np, acts[ai].p);
          size_t n_in = with_z ? 4 : 3;
          tc_model *m = node_model("FusedConv", doms[dm], n_in, a, na, 2u, in);
          compare_model(m, n_in, in, 2u, 1e-4);
          tc_model_free(m);
        }
      }
    free_inputs(in, 4);
  }
}

/* FusedConv refuses at session creation what it does not implement. */
static void test_fusedconv_refusals(void) {
  struct {
    const char *dom, *act;
    size_t np;
    tc_status want;
  } cases[] = {
      {"com.microsoft", "Gelu", 0, TC_STATUS_UNSUPPORTED}, /* ai.tacoc only */
      {"ai.tacoc", "Softplus", 0, TC_STATUS_UNSUPPORTED},
      {"com.microsoft", "LeakyRelu", 0, TC_STATUS_INVALID},
      {"ai.tacoc", "Clip", 1, TC_STATUS_INVALID},
      {"com.microsoft", "Relu", 0, TC_STATUS_OK},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    float p[2] = {0.5f, 1};
    tc_attr a[2] = {str("activation", cases[c].act), floats("activation_params", cases[c].np, p)};
    tc_model *m = node_model("FusedConv", cases[c].dom, 2, a, cases[c].np ? 2 : 1, 0, NULL);
    tc_session *s = NULL;
    tc_diag d = {0};
    CHECK(tc_session_new(m, &s, &d) == cases[c].want);
    if (cases[c].want)
      CHECK(strcmp(d.node, "n") == 0 && strcmp(d.op, "FusedConv") == 0 &&
            strstr(d.reason, cases[c].act));
    tc_session_free(s);
    tc_model_free(m);
  }
}

/* Cached weights never go stale: each model with the same shapes and
 * other weights (its payload possibly where the last one's was) gives its
 * own results, sessions of one model share the reordered weights, freeing
 * the model drops them and clearing the cache drops everything. */
static void test_conv_cache_weights(void) {
  int64_t xd[4] = {1, 16, 12, 12}, wd[4] = {16, 16, 3, 3}, pads[4] = {1, 1, 1, 1};
  tc_attr a[1] = {ints("pads", 4, pads)};
  tc_ndarray x = random_input(4, xd, 1);
  tc_ndarray prev = {0};
  size_t n0, w0, n1, w1;
  tc_dnnl_conv_cache_stats(&n0, &w0);
  for (unsigned round = 0; round < 4; round++) {
    tc_ndarray in[2] = {x, random_input(4, wd, 100 + round)};
    tc_model *m = node_model("Conv", "", 2, a, 1, 2u, in);
    compare_model(m, 2, in, 2u, 1e-4);
    tc_dnnl_conv_cache_stats(&n1, &w1);
    CHECK(w1 > w0); /* 16x16x3x3 weights reordered once for the model */
    tc_session *s = NULL;
    tc_diag d = {0};
    CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
    tc_ndarray out = {0};
    CHECK(tc_session_run(s, 1, names, in, &out, &d) == TC_STATUS_OK);
    CHECK(!prev.data || memcmp(prev.data, out.data, out.size) != 0);
    tc_ndarray_release(&prev);
    prev = out;
    tc_session_free(s);
    size_t n2, w2;
    tc_dnnl_conv_cache_stats(&n2, &w2);
    CHECK(n2 == n1 && w2 == w1); /* the second session hit the cache */
    tc_model_free(m);
    tc_dnnl_conv_cache_stats(&n2, &w2);
    CHECK(n2 == n1 - 1 && w2 == w0);
    free(in[1].data);
  }
  tc_dnnl_conv_cache_clear(); /* no run is using any entry now */
  tc_dnnl_conv_cache_stats(&n1, &w1);
  CHECK(n1 == 0 && w1 == 0);
  tc_ndarray_release(&prev);
  free(x.data);
}

/* ---- int8 ---- */

static tc_ndarray q8(int32_t dt, size_t rank, const int64_t *dims, unsigned seed) {
  return random_of(dt, rank, dims, seed);
}

static tc_ndarray per_channel(int32_t dt, int64_t n, unsigned seed) {
  int64_t d[1] = {n};
  return random_of(dt, 1, d, seed);
}

/* ConvInteger and QLinearConv over uint8/int8 x and w, nonzero zero points
 * (per tensor for x, per output channel for w), groups, pads, strides. */
static void test_qconv(void) {
  conv_case shapes[] = {
      {4, {2, 5, 9, 7}, {7, 5, 3, 3}, 1, {1, 1}, {0}, {1, 0, 2, 1}, NULL, true},
      {4, {1, 6, 11, 10}, {9, 2, 3, 2}, 3, {2, 1}, {2, 1}, {1, 1, 1, 1}, NULL, true},
      {4, {1, 8, 6, 5}, {5, 8, 1, 1}, 1, {1, 1}, {0}, {0, 0, 0, 0}, NULL, true},
      {3, {2, 4, 17}, {3, 4, 4}, 1, {3}, {0}, {2, 1}, NULL, true},
      {5, {1, 3, 4, 5, 4}, {2, 3, 2, 3, 2}, 1, {1, 2, 1}, {0}, {1, 0, 1, 0, 1, 1}, NULL, true},
      {4, {1, 64, 9, 9}, {32, 64, 3, 3}, 1, {1, 1}, {0}, {1, 1, 1, 1}, NULL, true},
  };
  int32_t dts[2] = {TC_DTYPE_U8, TC_DTYPE_I8};
  for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
    for (int xi = 0; xi < 2; xi++)
      for (int wi = 0; wi < 2; wi++) {
        conv_case *cc = &shapes[sh];
        int32_t xdt = dts[xi], wdt = dts[wi];
        tc_attr a[8];
        size_t na = conv_attrs(cc, a);
        unsigned seed = (unsigned)(sh * 4 + (size_t)xi * 2 + (size_t)wi);
        int64_t M = cc->w[0];
        /* ConvInteger(x, w, x_zero_point, w_zero_point) */
        tc_ndarray ci[4] = {q8(xdt, cc->rank, cc->x, seed + 1), q8(wdt, cc->rank, cc->w, seed + 2),
                            scalar_of(xdt, xdt == TC_DTYPE_U8 ? 131 : -7),
                            per_channel(wdt, M, seed + 3)};
        tc_model *m = node_model("ConvInteger", "", 4, a, na, 0, ci);
        compare_model(m, 4, ci, 0, -1);
        tc_model_free(m);
        /* per-tensor zero points, then none */
        tc_ndarray ci2[4] = {ci[0], ci[1], scalar_of(xdt, xdt == TC_DTYPE_U8 ? 0 : 100),
                             scalar_of(wdt, wdt == TC_DTYPE_U8 ? 3 : -128)};
        for (size_t n_in = 4; n_in >= 2; n_in -= 2) {
          m = node_model("ConvInteger", "", n_in, a, na, 0, ci2);
          compare_model(m, n_in, ci2, 0, -1);
          tc_model_free(m);
        }
        free(ci2[2].data), free(ci2[3].data);
        /* QLinearConv(x, xs, xzp, w, ws, wzp, ys, yzp, B) */
        int64_t bd[1] = {M};
        tc_ndarray ql[9] = {ci[0],
                            scalar_of(TC_DTYPE_F32, 0.02),
                            ci[2],
                            ci[1],
                            random_of(TC_DTYPE_F32, 1, bd, seed + 4),
                            ci[3],
                            scalar_of(TC_DTYPE_F32, 7.5),
                            scalar_of(xdt, xdt == TC_DTYPE_U8 ? 120 : -3),
                            random_of(TC_DTYPE_I32, 1, bd, seed + 5)};
        for (int64_t i = 0; i < M; i++) /* positive per-channel scales */
          ((float *)ql[4].data)[i] = 0.01f + fabsf(((float *)ql[4].data)[i]) * 0.05f;
        m = node_model("QLinearConv", "", 9, a, na, 0, ql);
        compare_model(m, 9, ql, 0, -1);
        tc_model_free(m);
        free_inputs(ci, 4);
        free(ql[1].data), free(ql[4].data), free(ql[6].data), free(ql[7].data), free(ql[8].data);
      }
}

/* MatMulInteger and QLinearMatMul: uint8/int8 operands, per-row and
 * per-column zero points, batch broadcasting, 1-D operands, odd sizes. */
static void test_qmatmul(void) {
  struct {
    size_t ra, rb;
    int64_t a[4], b[4];
    bool vec_zp;
  } cases[] = {
      {2, 2, {7, 13}, {13, 5}, true},      {2, 2, {33, 129}, {129, 65}, true},
      {3, 2, {3, 9, 31}, {31, 17}, false}, {4, 4, {2, 1, 5, 8}, {1, 3, 8, 6}, true},
      {1, 2, {12}, {12, 7}, false},        {3, 1, {2, 6, 12}, {12}, false},
      {2, 2, {1, 1000}, {1000, 3}, true},
  };
  int32_t dts[2] = {TC_DTYPE_U8, TC_DTYPE_I8};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int ai = 0; ai < 2; ai++)
      for (int bi = 0; bi < 2; bi++) {
        int32_t adt = dts[ai], bdt = dts[bi];
        unsigned seed = (unsigned)(c * 4 + (size_t)ai * 2 + (size_t)bi) * 7;
        int64_t M = cases[c].ra > 1 ? cases[c].a[cases[c].ra - 2] : 1;
        int64_t N = cases[c].rb > 1 ? cases[c].b[cases[c].rb - 1] : 1;
        bool vec = cases[c].vec_zp;
        tc_ndarray A = q8(adt, cases[c].ra, cases[c].a, seed + 1),
                   B = q8(bdt, cases[c].rb, cases[c].b, seed + 2);
        tc_ndarray az = vec ? per_channel(adt, M, seed + 3) : scalar_of(adt, ai ? -5 : 200);
        tc_ndarray bz = vec ? per_channel(bdt, N, seed + 4) : scalar_of(bdt, bi ? 77 : 9);
        tc_ndarray mi[4] = {A, B, az, bz};
        tc_model *m = one_node("MatMulInteger", 4, NULL, 0);
        compare_model(m, 4, mi, 0, -1);
        tc_model_free(m);
        /* QLinearMatMul(a, as, azp, b, bs, bzp, ys, yzp) */
        tc_ndarray as = vec ? random_of(TC_DTYPE_F32, 1, (int64_t[1]){M}, seed + 5)
                            : scalar_of(TC_DTYPE_F32, 0.05);
        tc_ndarray bs = vec ? random_of(TC_DTYPE_F32, 1, (int64_t[1]){N}, seed + 6)
                            : scalar_of(TC_DTYPE_F32, 0.03);
        for (size_t i = 0; vec && i < (size_t)M; i++)
          ((float *)as.data)[i] = 0.01f + fabsf(((float *)as.data)[i]) * 0.05f;
        for (size_t i = 0; vec && i < (size_t)N; i++)
          ((float *)bs.data)[i] = 0.01f + fabsf(((float *)bs.data)[i]) * 0.05f;
        tc_ndarray ql[8] = {
            A, as, az, B, bs, bz, scalar_of(TC_DTYPE_F32, 3.0), scalar_of(bdt, bi ? 10 : 128)};
        if (!(cases[c].ra == 1 && vec)) {
          m = one_node("QLinearMatMul", 8, NULL, 0);
          compare_model(m, 8, ql, 0, -1);
          tc_model_free(m);
        }
        free_inputs(mi, 4);
        free(as.data), free(bs.data), free(ql[6].data), free(ql[7].data);
      }
}

/* Extreme values over a long K: the int8 GEMM must not saturate anywhere. */
static void test_qmatmul_extremes(void) {
  int64_t ad[2] = {3, 4001}, bd[2] = {4001, 5};
  int32_t dts[2] = {TC_DTYPE_U8, TC_DTYPE_I8};
  for (int ai = 0; ai < 2; ai++)
    for (int bi = 0; bi < 2; bi++) {
      tc_ndarray A = q8(dts[ai], 2, ad, 1), B = q8(dts[bi], 2, bd, 2);
      for (size_t i = 0; i < A.size; i++)
        ((uint8_t *)A.data)[i] = dts[ai] == TC_DTYPE_U8 ? 255 : 0x80; /* 255 or -128 */
      for (size_t i = 0; i < B.size; i++)
        ((uint8_t *)B.data)[i] = (i % 3) ? 0x80 : 0x7f; /* -128 / 127 (int8), 128 / 127 */
      tc_ndarray mi[2] = {A, B};
      tc_model *m = one_node("MatMulInteger", 2, NULL, 0);
      compare_model(m, 2, mi, 0, -1);
      tc_model_free(m);
      free_inputs(mi, 2);
    }
}

/* ---- threads ---- */

typedef struct worker {
  tc_session *s;
  const tc_ndarray *x;
  const tc_ndarray *want;
  int mismatches;
} worker;

static void *work(void *arg) {
  worker *w = arg;
  for (int r = 0; r < 40; r++) {
    tc_ndarray out = {0};
    tc_diag d = {0};
    if (tc_session_run(w->s, 1, names, w->x, &out, &d) != TC_STATUS_OK ||
        out.size != w->want->size || memcmp(out.data, w->want->data, out.size) != 0)
      w->mismatches++;
    tc_ndarray_release(&out);
  }
  return NULL;
}

/* 4 threads running the same session (one conv, cached weights) agree. */
static void test_conv_threads(void) {
  int64_t xd[4] = {2, 32, 17, 17}, wd[4] = {48, 32, 3, 3}, bd[1] = {48}, pads[4] = {1, 1, 1, 1};
  tc_attr a[1] = {ints("pads", 4, pads)};
  tc_ndarray in[3] = {random_input(4, xd, 3), random_input(4, wd, 4), random_input(1, bd, 5)};
  tc_model *m = node_model("Conv", "", 3, a, 1, 6u, in);
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  tc_ndarray want = {0};
  CHECK(s && tc_session_run(s, 1, names, in, &want, &d) == TC_STATUS_OK);
  worker w[4];
  pthread_t t[4];
  for (int i = 0; s && i < 4; i++) {
    w[i] = (worker){s, &in[0], &want, 0};
    CHECK(pthread_create(&t[i], NULL, work, &w[i]) == 0);
  }
  for (int i = 0; s && i < 4; i++) {
    pthread_join(t[i], NULL);
    CHECK(w[i].mismatches == 0);
  }
  tc_ndarray_release(&want);
  tc_session_free(s);
  tc_model_free(m);
  free_inputs(in, 3);
}

/* Random bfloat16 or float16 values in [-1, 1] (random_of's floats,
 * rounded). */
static tc_ndarray random_half(int32_t dt, size_t rank, const int64_t *dims, unsigned seed) {
  tc_ndarray f = random_of(TC_DTYPE_F32, rank, dims, seed), t = f;
  size_t n = f.size / 4;
  t.dtype = dt;
  t.size = 2 * n;
  t.data = malloc(t.size ? t.size : 1);
  for (size_t i = 0; i < n; i++) {
    float v = ((float *)f.data)[i];
    ((uint16_t *)t.data)[i] = dt == TC_DTYPE_BF16 ? tc_f32_to_bf16(v) : tc_f32_to_f16(v);
  }
  free(f.data);
  return t;
}

/* Runs m (one half node) on the reference kernels and on the fast ones,
 * feeding the first n_fed of in, and counts the outputs further apart than
 * one step of the half type plus what float32 sums of up to 768 products in
 * another order can move. *entries gets how many oneDNN cache entries the
 * fast run added, *packed their weight bytes. -1: a run failed. */
static long half_paths(tc_model *m, size_t n_fed, const tc_ndarray *in, int32_t dt, size_t *entries,
                       size_t *packed) {
  float step = dt == TC_DTYPE_BF16 ? 0x1p-7f : 0x1p-9f;
  tc_session *s = NULL;
  tc_diag d = {0};
  if (tc_session_new(m, &s, &d) != TC_STATUS_OK)
    return -1;
  tc_dnnl_conv_cache_clear();
  size_t n0, w0, n1, w1;
  tc_dnnl_conv_cache_stats(&n0, &w0);
  tc_ndarray ref = {0}, fast = {0};
  tc_fast_kernels_set(false);
  tc_status a = tc_session_run(s, n_fed, names, in, &ref, &d);
  tc_fast_kernels_set(true);
  tc_status b = tc_session_run(s, n_fed, names, in, &fast, &d);
  tc_dnnl_conv_cache_stats(&n1, &w1);
  *entries = n1 - n0, *packed = w1 - w0;
  long worse = -1;
  if (a == TC_STATUS_OK && b == TC_STATUS_OK && ref.dtype == dt && fast.dtype == dt &&
      ref.size == fast.size) {
    worse = 0;
    for (size_t i = 0; i < ref.size / 2; i++) {
      uint16_t rb = ((uint16_t *)ref.data)[i], fb = ((uint16_t *)fast.data)[i];
      float r = dt == TC_DTYPE_BF16 ? tc_bf16_to_f32(rb) : tc_f16_to_f32(rb);
      float f = dt == TC_DTYPE_BF16 ? tc_bf16_to_f32(fb) : tc_f16_to_f32(fb);
      if (!(fabsf(r - f) <= fabsf(r) * step + 1e-3f))
        worse++;
    }
  }
  tc_ndarray_release(&ref);
  tc_ndarray_release(&fast);
  tc_session_free(s);
  tc_dnnl_conv_cache_clear();
  return worse;
}

/* Half MatMul: with B an initializer, B packed once (a cache entry
 * appears): bfloat16 on oneDNN's bfloat16 matmul, float16 widened to a
 * float32 matmul; with B a graph input, float32 GEMM on converted copies.
 * All within one rounding of the half type of the reference (float32 sums
 * in another order, then rounded). */
static void test_half_matmul_of(int32_t dt) {
  struct {
    size_t ra;
    int64_t a[3], b[2];
  } cases[] = {{2, {7, 13}, {13, 5}},
               {3, {2, 9, 33}, {33, 17}},
               {2, {1, 64}, {64, 40}},
               {2, {128, 768}, {768, 96}}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int init = 0; init < 2; init++) {
      tc_ndarray in[2] = {random_half(dt, cases[c].ra, cases[c].a, (unsigned)c * 5 + 1),
                          random_half(dt, 2, cases[c].b, (unsigned)c * 5 + 2)};
      tc_model *m = node_model("MatMul", "", 2, NULL, 0, init ? 2u : 0u, in);
      size_t entries = 0, packed = 0;
      long worse = half_paths(m, init ? 1 : 2, in, dt, &entries, &packed);
      CHECK(worse == 0);
      /* packed once with B an initializer (the blocked layout may pad; float16
       * packed as float32) */
      size_t kn = (size_t)(cases[c].b[0] * cases[c].b[1]) * (dt == TC_DTYPE_BF16 ? 2 : 4);
      CHECK(init ? entries == 1 && packed >= kn : entries == 0);
      if (worse)
        fprintf(stderr, "%s MatMul case %zu (B %s): %ld elements differ\n", tc_dtype_name(dt), c,
                init ? "initializer" : "input", worse);
      tc_model_free(m);
      free(in[0].data), free(in[1].data);
    }
}

/* Half Gemm with B and C initializers: the product on the packed path
 * (bfloat16 matmul or float16 widened, B as given or transposed) in
 * float32, alpha and beta * C added there, rounded once; C a row, a full
 * matrix, a scalar or absent; one row of A too (MobileNetV3's classifier).
 * With transA the general path (no entry). */
static void test_half_gemm_of(int32_t dt) {
  struct {
    int64_t M, K, N;
    int c; /* 0: [N], 1: [M, N], 2: [1], 3: no C */
  } cases[] = {{19, 31, 23, 0}, {19, 31, 23, 1}, {1, 301, 517, 0},
               {64, 96, 40, 2}, {7, 13, 5, 3},   {1, 1280, 1000, 0}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++) {
        int64_t M = cases[c].M, K = cases[c].K, N = cases[c].N;
        int64_t da[2] = {ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N};
        int64_t dc_row[1] = {N}, dc_full[2] = {M, N}, dc_one[1] = {1};
        int kind = cases[c].c;
        size_t n_in = kind == 3 ? 2 : 3;
        float beta = c % 2 ? 1.0f : 2.0f;
        tc_attr attrs[4] = {
            int1("transA", ta),
            int1("transB", tb),
            {.name = "alpha",
             .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
             .f = c == 2 ? 1.0f : 0.5f},
            {.name = "beta", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = beta}};
        tc_ndarray in[3] = {random_half(dt, 2, da, (unsigned)c * 7 + 1),
                            random_half(dt, 2, db, (unsigned)c * 7 + 2),
                            random_half(dt, kind == 1 ? 2 : 1,
                                        kind == 1   ? dc_full
                                        : kind == 2 ? dc_one
                                                    : dc_row,
                                        (unsigned)c * 7 + 3)};
        tc_model *m = node_model("Gemm", "", n_in, attrs, 4, 6u, in);
        size_t entries = 0, packed = 0;
        long worse = half_paths(m, 1, in, dt, &entries, &packed);
        CHECK(worse == 0);
        size_t kn = (size_t)(K * N) * (dt == TC_DTYPE_BF16 ? 2 : 4);
        CHECK(ta ? entries == 0 : entries == 1 && packed >= kn);
        if (worse || (ta ? entries != 0 : entries != 1))
          fprintf(stderr,
                  "%s Gemm case %zu transA %d transB %d: %ld elements differ, %zu entries\n",
                  tc_dtype_name(dt), c, ta, tb, worse, entries);
        tc_model_free(m);
        free_inputs(in, 3);
      }
}

/* float16 convolutions with initializer weights: widened and reordered
 * once into a cached entry (its weights float32), float32 arithmetic on
 * widened activations, rounded once: dense 3x3 (Winograd by the default
 * rule), 1x1 strided, depthwise, with and without bias. */
static void test_half_conv(void) {
  struct {
    int64_t x[4], w[4], group, stride, pad;
    bool bias;
  } cases[] = {{{1, 32, 12, 11}, {40, 32, 3, 3}, 1, 1, 1, true},
               {{2, 24, 9, 9}, {16, 24, 1, 1}, 1, 2, 0, false},
               {{1, 16, 10, 13}, {16, 1, 3, 3}, 16, 1, 1, true}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    int64_t st[2] = {cases[c].stride, cases[c].stride}, pa[4], bd[1] = {cases[c].w[0]};
    for (int i = 0; i < 4; i++)
      pa[i] = cases[c].pad;
    tc_attr attrs[3] = {ints("strides", 2, st), ints("pads", 4, pa), int1("group", cases[c].group)};
    tc_ndarray in[3] = {random_half(TC_DTYPE_F16, 4, cases[c].x, 70 + (unsigned)c),
                        random_half(TC_DTYPE_F16, 4, cases[c].w, 80 + (unsigned)c),
                        random_half(TC_DTYPE_F16, 1, bd, 90 + (unsigned)c)};
    size_t n_in = cases[c].bias ? 3 : 2;
    tc_model *m = node_model("Conv", "", n_in, attrs, 3, 6u, in);
    size_t entries = 0, packed = 0;
    long worse = half_paths(m, 1, in, TC_DTYPE_F16, &entries, &packed);
    size_t nw = (size_t)(cases[c].w[0] * cases[c].w[1] * cases[c].w[2] * cases[c].w[3]);
    CHECK(worse == 0 && entries == 1 && packed >= nw * sizeof(float));
    if (worse || entries != 1)
      fprintf(stderr, "float16 Conv case %zu: %ld elements differ, %zu entries, %zu bytes\n", c,
              worse, entries, packed);
    tc_model_free(m);
    free_inputs(in, 3);
  }
}

static void test_half_gemm(void) {
  test_half_gemm_of(TC_DTYPE_BF16);
  test_half_gemm_of(TC_DTYPE_F16);
}

static void test_half_matmul(void) {
  test_half_matmul_of(TC_DTYPE_BF16);
  test_half_matmul_of(TC_DTYPE_F16);
}

/* TC_CONV_ALGO_SUBSAMPLE (a strided 1x1 convolution as a stride-1 one on
 * the positions its strides read) against a direct loop, float32 and
 * bfloat16, plain and channels-last x and y, strides 2x2 and 3x2 over
 * sizes the strides do not divide. */
/* The spec of a 2-D convolution, group 1: N images of C x H x W, M
 * outputs, a k x k kernel, strides s0 x s1, p padding on every side. */
static tc_conv_spec spec2d(int64_t N, int64_t C, int64_t M, int64_t H, int64_t W, int64_t k,
                           int64_t s0, int64_t s1, int64_t p) {
  tc_conv_spec c = {.nsp = 2,
                    .N = N,
                    .C = C,
                    .M = M,
                    .group = 1,
                    .in = {H, W, 1},
                    .k = {k, k, 1},
                    .out = {(H + 2 * p - k) / s0 + 1, (W + 2 * p - k) / s1 + 1, 1},
                    .s = {s0, s1, 1},
                    .d = {1, 1, 1},
                    .pb = {p, p, 0},
                    .pe = {p, p, 0}};
  return c;
}

/* A first convolution (RGB x plain, 16 outputs channels-last, 3x3 stride 2
 * padded, hard-swish) reads x and writes y where they lie, with neither
 * reordered (oneDNN's nChw16c output is channels-last for 16 channels);
 * 32 outputs take the usual path, which reorders x. Against a direct loop,
 * batch 2, odd sizes. */
static void test_conv_stem16(void) {
  const int64_t N = 2, C = 3, H = 23, W = 19, OH = 12, OW = 10;
  for (int64_t M = 16; M <= 32; M += 16) {
    int64_t xd[4] = {N, C, H, W}, wd[4] = {M, C, 3, 3}, bd[1] = {M};
    tc_ndarray x = random_input(4, xd, 41), w = random_input(4, wd, 42),
               b = random_input(1, bd, 43);
    const float *xf = x.data, *wf = w.data, *bf = b.data;
    tc_conv_spec c = spec2d(N, C, M, H, W, 3, 2, 2, 1);
    c.act = TC_CONV_ACT_HARD_SWISH;
    c.layout = TC_CONV_Y_NHWC;
    CHECK(c.out[0] == OH && c.out[1] == OW);
    size_t ny = (size_t)(N * M * OH * OW);
    float *y = calloc(ny, sizeof *y);
    bool ok = tc_dnnl_conv_run(&c, NULL, xf, wf, bf, NULL, y);
    CHECK(ok);
    unsigned re = tc_dnnl_conv_last_reorders();
    CHECK(M == 16 ? re == 0 : (re & TC_DNNL_REORDERS_X) != 0);
    size_t worse = 0;
    for (int64_t n = 0; ok && n < N; n++)
      for (int64_t m = 0; m < M; m++)
        for (int64_t i = 0; i < OH; i++)
          for (int64_t j = 0; j < OW; j++) {
            double acc = bf[m];
            for (int64_t ch = 0; ch < C; ch++)
              for (int64_t u = 0; u < 3; u++)
                for (int64_t v = 0; v < 3; v++) {
                  int64_t r = i * 2 - 1 + u, q = j * 2 - 1 + v;
                  if (r >= 0 && r < H && q >= 0 && q < W)
                    acc += (double)wf[((m * C + ch) * 3 + u) * 3 + v] *
                           xf[((n * C + ch) * H + r) * W + q];
                }
            double want = acc * fmin(fmax(acc / 6 + 0.5, 0), 1);
            float got = y[((n * OH + i) * OW + j) * M + m];
            worse += !(fabs(got - want) <= 1e-5 * (fabs(want) + 1));
          }
    if (worse)
      fprintf(stderr, "stem %lld outputs: %zu elements differ\n", (long long)M, worse);
    CHECK(worse == 0);
    free(y);
    free_inputs(&x, 1), free_inputs(&w, 1), free_inputs(&b, 1);
  }
}

/* Weights a session computes from constants when it is made (here
 * Neg(initializer), as a ConstantOfShape or a Cast of float16 weights too
 * big for the compiler to fold) are cached reordered like an initializer's,
 * so a 32 -> 32 3x3 convolution takes Winograd; each model's session gives
 * its own results (the reference kernels agree), and freeing the session
 * drops its entry while the model lives on. Without the precomputation
 * (TACORT_NO_PRECOMPUTE) nothing is cached. */
static void test_conv_cache_computed_weights(void) {
  int64_t xd[4] = {1, 32, 10, 10}, wd[4] = {32, 32, 3, 3}, pads[4] = {1, 1, 1, 1};
  tc_attr a[1] = {ints("pads", 4, pads)};
  tc_ndarray x = random_input(4, xd, 7);
  tc_conv_spec c = spec2d(1, 32, 32, 10, 10, 3, 1, 1, 1);
  for (unsigned round = 0; round < 3; round++) {
    tc_ndarray in[2] = {x, random_input(4, wd, 200 + round)};
    tc_model *m = node_model("Conv", "", 2, a, 1, 2u, in);
    tc_graph *g = m->graph;
    tc_node *conv = g->first;
    tc_value *nw = tc_graph_new_temp(g, "nw");
    tc_node *neg = tc_graph_insert_node(g, conv, "Neg", "", "neg", 1, 1, 0);
    tc_node_set_input(neg, 0, conv->inputs[1]);
    tc_node_set_output(neg, 0, nw);
    tc_node_set_input(conv, 1, nw);
    bool pre = round < 2;
    if (!pre)
      setenv("TACORT_NO_PRECOMPUTE", "1", 1);
    size_t n0, w0, n1, w1;
    tc_dnnl_conv_cache_stats(&n0, &w0);
    tc_session *s = NULL;
    tc_diag d = {0};
    CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
    unsetenv("TACORT_NO_PRECOMPUTE");
    tc_ndarray ref = {0}, fast = {0};
    CHECK(s && run_both(s, 1, in, &ref, &fast) && rel_err(&ref, &fast) <= 1e-4);
    CHECK(tc_dnnl_conv_last_winograd() == (pre && tc_dnnl_conv_has_winograd(&c)));
    tc_dnnl_conv_cache_stats(&n1, &w1);
    CHECK(pre ? w1 > w0 : w1 == w0); /* reordered once for the session, or not kept */
    tc_session_free(s);
    tc_dnnl_conv_cache_stats(&n1, &w1);
    CHECK(w1 == w0 && n1 <= n0 + 1); /* the weights went with the session */
    tc_ndarray_release(&ref);
    tc_ndarray_release(&fast);
    tc_model_free(m);
    free(in[1].data);
  }
  free(x.data);
}

/* The default rule runs a 3x3 stride-1 convolution of 32 input channels as
 * Winograd (32 outputs or more; 24 to 31 from 1600 output positions, where
 * direct pads them to 32) only when the cache entry keeps its weights (an
 * initializer): weights computed at run time would be Winograd-transformed
 * on every call, which took longer than the convolution. Both ways give the
 * same output within float32 rounding. */
static void test_conv_winograd_needs_cached_weights(void) {
  const int64_t N = 1, C = 32;
  const int64_t shapes[3][3] = {{32, 9, 7}, {24, 40, 41}, {24, 39, 40}}; /* M, H, W */
  for (size_t k = 0; k < 3; k++) {
    int64_t M = shapes[k][0], H = shapes[k][1], W = shapes[k][2];
    int64_t xd[4] = {N, H, W, C}, wd[4] = {M, C, 3, 3}, bd[1] = {M};
    tc_ndarray in[3] = {random_input(4, xd, 51), random_input(4, wd, 52), random_input(1, bd, 53)};
    tc_conv_spec c = spec2d(N, C, M, H, W, 3, 1, 1, 1);
    c.layout = TC_CONV_X_NHWC | TC_CONV_Y_NHWC;
    bool wino = k < 2; /* 39 x 40 outputs: below the threshold for 24 */
    CHECK(tc_conv_algo_default(&c) == (wino ? TC_CONV_ALGO_WINOGRAD : TC_CONV_ALGO_DIRECT));
    size_t ny = (size_t)(N * M * H * W);
    float *y0 = calloc(ny, sizeof *y0), *y1 = calloc(ny, sizeof *y1);
    CHECK(tc_dnnl_conv_run(&c, NULL, in[0].data, in[1].data, in[2].data, NULL, y0));
    CHECK(!tc_dnnl_conv_last_winograd());
    tc_model *m = node_model("Conv", "", 2, NULL, 0, 2u, in);
    const tc_value *wv = tc_graph_lookup_local(m->graph, "b");
    CHECK(wv && tc_value_const(wv));
    CHECK(tc_dnnl_conv_run(&c, wv, in[0].data, in[1].data, in[2].data, NULL, y1));
    CHECK(tc_dnnl_conv_last_winograd() == (wino && tc_dnnl_conv_has_winograd(&c)));
    size_t worse = 0;
    for (size_t i = 0; i < ny; i++)
      worse += !(fabsf(y0[i] - y1[i]) <= 1e-4f * (fabsf(y0[i]) + 1));
    CHECK(worse == 0);
    tc_model_free(m);
    free(y0), free(y1);
    free_inputs(in, 3);
  }
}

static void test_conv_subsample(void) {
  const int64_t N = 2, C = 24, M = 40, H = 11, W = 9;
  const int64_t strides[2][2] = {{2, 2}, {3, 2}};
  int64_t xd[4] = {N, C, H, W}, wd[2] = {M, C}, bd[1] = {M};
  tc_ndarray x = random_input(4, xd, 31), w = random_input(2, wd, 32), b = random_input(1, bd, 33);
  const float *xf = x.data, *wf = w.data, *bf = b.data;
  for (int bf16 = 0; bf16 < 2; bf16++)
    for (int st = 0; st < 2; st++)
      for (int nhwc = 0; nhwc < 2; nhwc++) {
        int64_t s0 = strides[st][0], s1 = strides[st][1];
        tc_conv_spec c = spec2d(N, C, M, H, W, 1, s0, s1, 0);
        c.algo = TC_CONV_ALGO_SUBSAMPLE;
        c.layout = nhwc ? TC_CONV_X_NHWC | TC_CONV_Y_NHWC : 0;
        int64_t OH = c.out[0], OW = c.out[1];
        size_t ny = (size_t)(N * M * OH * OW), nx = (size_t)(N * C * H * W);
        float *y = calloc(ny, sizeof *y), *xr = malloc(nx * sizeof *xr),
              *wr = malloc((size_t)(M * C) * sizeof *wr);
        uint16_t *xh = malloc(nx * 2), *wh = malloc((size_t)(M * C) * 2), *yh = malloc(ny * 2);
        /* bfloat16: the operands rounded, so the loop sums the same values */
        for (size_t i = 0; i < nx; i++)
          xh[i] = tc_f32_to_bf16(xf[i]), xr[i] = bf16 ? tc_bf16_to_f32(xh[i]) : xf[i];
        for (size_t i = 0; i < (size_t)(M * C); i++)
          wh[i] = tc_f32_to_bf16(wf[i]), wr[i] = bf16 ? tc_bf16_to_f32(wh[i]) : wf[i];
        bool ok = bf16 ? tc_dnnl_bconv_run(&c, NULL, xh, wh, bf, NULL, yh)
                       : tc_dnnl_conv_run(&c, NULL, xf, wf, bf, NULL, y);
        CHECK(ok);
        if (bf16)
          for (size_t i = 0; i < ny; i++)
            y[i] = tc_bf16_to_f32(yh[i]);
        size_t worse = 0;
        for (int64_t n = 0; ok && n < N; n++)
          for (int64_t m = 0; m < M; m++)
            for (int64_t i = 0; i < OH; i++)
              for (int64_t j = 0; j < OW; j++) {
                double acc = bf[m];
                for (int64_t ch = 0; ch < C; ch++) {
                  int64_t at = nhwc ? ((n * H + i * s0) * W + j * s1) * C + ch
                                    : ((n * C + ch) * H + i * s0) * W + j * s1;
                  acc += (double)wr[m * C + ch] * xr[at];
                }
                int64_t o =
                    nhwc ? ((n * OH + i) * OW + j) * M + m : ((n * M + m) * OH + i) * OW + j;
                worse += !(fabs(y[o] - acc) <= (bf16 ? 0x1p-7 : 1e-5) * (fabs(acc) + 1));
              }
        CHECK(worse == 0);
        if (worse)
          fprintf(stderr, "subsample %s strides %lldx%lld %s: %zu elements differ\n",
                  bf16 ? "bfloat16" : "float32", (long long)s0, (long long)s1,
                  nhwc ? "channels-last" : "plain", worse);
        free(y), free(xr), free(wr), free(xh), free(wh), free(yh);
      }
  free_inputs(&x, 1), free_inputs(&w, 1), free_inputs(&b, 1);
}

int main(void) {
  RUN(test_matmul_shapes);
  RUN(test_gemm_transposes);
  RUN(test_gemv);
  RUN(test_conv_shapes);
  RUN(test_conv_cases);
  RUN(test_convtranspose);
  RUN(test_fusedconv);
  RUN(test_fusedconv_refusals);
  RUN(test_conv_cache_weights);
  RUN(test_conv_cache_computed_weights);
  RUN(test_qconv);
  RUN(test_qmatmul);
  RUN(test_qmatmul_extremes);
  RUN(test_half_matmul);
  RUN(test_half_gemm);
  RUN(test_half_conv);
  RUN(test_conv_threads);
  RUN(test_conv_stem16);
  RUN(test_conv_winograd_needs_cached_weights);
  RUN(test_conv_subsample);
  tc_fast_kernels_set(true);
  return SUMMARY("unit.blas");
}
