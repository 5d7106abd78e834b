/* The oneDNN GEMM path against the reference kernels: MatMul (batched,
 * broadcast, 1-D operands), Gemm (transposes, alpha, beta, bias) and Conv
 * (im2col + sgemm: groups, strides, dilations, padding, 1-D to 3-D) give the
 * same numbers both ways, within fp32 accumulation-order error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kernel.h"

/* A model with one node op(a, b[, c]) whose inputs are graph inputs. */
static tc_model *one_node(const char *op, size_t n_in, const tc_attr *attrs, size_t n_attrs) {
  tc_model *m = tc_model_new_empty();
  m->ir_version = 8;
  m->n_opsets = 1;
  m->opsets = tc_arena_alloc(m->arena, sizeof *m->opsets);
  m->opsets[0] = (tc_opset){.domain = "", .version = 17};
  tc_graph *g = m->graph = tc_graph_new(m, NULL, "g");
  tc_node *n = tc_graph_append_node(g, op, "", "n", n_in, 1, n_attrs);
  const char *names[] = {"a", "b", "c"};
  for (size_t i = 0; i < n_in; i++) {
    tc_value *v = tc_graph_new_value(g, names[i], NULL);
    tc_graph_add_input(g, v, NULL);
    tc_node_set_input(n, i, v);
  }
  for (size_t i = 0; i < n_attrs; i++)
    n->attrs[i] = attrs[i];
  tc_value *y = tc_graph_new_value(g, "y", NULL);
  tc_node_set_output(n, 0, y);
  tc_graph_add_output(g, y, NULL);
  return m;
}

static tc_ndarray random_input(size_t rank, const int64_t *dims, unsigned seed) {
  tc_ndarray t = {.dtype = TC_DTYPE_F32, .rank = rank};
  size_t n = 1;
  for (size_t i = 0; i < rank; i++)
    n *= (size_t)(t.dims[i] = dims[i]);
  t.size = n * sizeof(float);
  t.data = malloc(t.size ? t.size : 1);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    ((float *)t.data)[i] = (float)((seed >> 8) % 2001) / 1000.0f - 1.0f;
  }
  return t;
}

/* Runs m once with the reference kernels and once with oneDNN; compares. */
static void compare_paths(tc_model *m, size_t n_in, tc_ndarray *in, size_t k_dim) {
  const char *names[] = {"a", "b", "c"};
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  tc_ndarray ref = {0}, fast = {0};
  tc_fast_kernels_set(false);
  CHECK(tc_session_run(s, n_in, names, in, &ref, &d) == TC_STATUS_OK);
  tc_fast_kernels_set(true);
  CHECK(tc_session_run(s, n_in, names, in, &fast, &d) == TC_STATUS_OK);
  CHECK(ref.size == fast.size && ref.rank == fast.rank);
  CHECK(memcmp(ref.dims, fast.dims, sizeof ref.dims) == 0);
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
    free(in[0].data);
    free(in[1].data);
    tc_model_free(m);
  }
}

static void test_gemm_transposes(void) {
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      tc_attr attrs[4] = {
          {.name = "transA", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = ta},
          {.name = "transB", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = tb},
          {.name = "alpha", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = 0.5f},
          {.name = "beta", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, .f = 2.0f}};
      tc_model *m = one_node("Gemm", 3, attrs, 4);
      int64_t M = 19, N = 23, K = 31;
      int64_t da[2] = {ta ? K : M, ta ? M : K}, db[2] = {tb ? N : K, tb ? K : N}, dc[1] = {N};
      tc_ndarray in[3] = {random_input(2, da, 7), random_input(2, db, 8), random_input(1, dc, 9)};
      compare_paths(m, 3, in, (size_t)K);
      for (int i = 0; i < 3; i++)
        free(in[i].data);
      tc_model_free(m);
    }
}

static tc_attr ints(const char *name, size_t n, int64_t *v) {
  return (tc_attr){
      .name = name, .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, .n_ints = n, .ints = v};
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
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    size_t nsp = cases[c].rank - 2;
    int64_t st[3], di[3], pa[6], gr[1] = {cases[c].group};
    for (size_t i = 0; i < nsp; i++)
      st[i] = cases[c].stride, di[i] = cases[c].dil, pa[i] = pa[i + nsp] = cases[c].pad;
    tc_attr attrs[4] = {
        ints("strides", nsp, st),
        ints("dilations", nsp, di),
        ints("pads", 2 * nsp, pa),
        {.name = "group", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, .i = gr[0]}};
    tc_model *m = one_node("Conv", 3, attrs, 4);
    int64_t bd[1] = {cases[c].w[0]};
    tc_ndarray in[3] = {random_input(cases[c].rank, cases[c].x, 11 + (unsigned)c),
                        random_input(cases[c].rank, cases[c].w, 50 + (unsigned)c),
                        random_input(1, bd, 90 + (unsigned)c)};
    size_t kdim = (size_t)cases[c].w[1];
    for (size_t i = 2; i < cases[c].rank; i++)
      kdim *= (size_t)cases[c].w[i];
    compare_paths(m, 3, in, kdim);
    for (int i = 0; i < 3; i++)
      free(in[i].data);
    tc_model_free(m);
  }
}

int main(void) {
  RUN(test_matmul_shapes);
  RUN(test_gemm_transposes);
  RUN(test_conv_shapes);
  tc_fast_kernels_set(true);
  return SUMMARY("unit.blas");
}
