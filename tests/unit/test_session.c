/* Execution API: a small model runs and gives the right numbers; bad inputs
 * and unsupported ops are refused with clear errors; one session serves
 * concurrent runs from several threads. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "exec.h"
#include "ir.h"

/* An empty IR 8 model at opset 17 (and ai.tacoc 1 with tacoc) whose main
 * graph is named name. */
static tc_model *empty_model(const char *name, bool tacoc) {
  tc_model *m = tc_model_new_empty();
  m->ir_version = 8;
  m->n_opsets = tacoc ? 2 : 1;
  m->opsets = tc_arena_alloc(m->arena, m->n_opsets * sizeof *m->opsets);
  m->opsets[0] = (tc_opset){.domain = "", .version = 17};
  if (tacoc)
    m->opsets[1] = (tc_opset){.domain = "ai.tacoc", .version = 1};
  m->graph = tc_graph_new(m, NULL, name);
  return m;
}

/* y = Relu(x + w), x: float32 [batch, 3], w = [-1, 0, 1]. */
static tc_model *make_model(const char *op2) {
  tc_model *m = empty_model("g", false);
  tc_graph *g = m->graph;
  tc_value *x = tc_graph_new_value(g, "x", NULL), *w = tc_graph_new_value(g, "w", NULL),
           *s = tc_graph_new_value(g, "s", NULL), *y = tc_graph_new_value(g, "y", NULL);
  tc_dim dims[2] = {{.kind = TC_DIM_PARAM, .param = "batch"}, {.kind = TC_DIM_VALUE, .value = 3}};
  tc_value_set_tensor_type(x, TC_DTYPE_F32, 2, dims);
  tc_graph_add_input(g, x, NULL);
  tc_tensor *t = tc_arena_alloc(m->arena, sizeof *t);
  static float wv[3] = {-1, 0, 1};
  tc_buffer *b = tc_buffer_wrap_static(wv, sizeof wv);
  tc_arena_on_free(m->arena, (void (*)(void *))tc_buffer_unref, b);
  static int64_t wdims[1] = {3};
  *t = (tc_tensor){.name = "w",
                   .dtype = TC_DTYPE_F32,
                   .has_dtype = true,
                   .rank = 1,
                   .dims = wdims,
                   .field = TC_FIELD_RAW,
                   .has_raw = true};
  t->data[TC_FIELD_RAW] = (tc_span){b, 0, sizeof wv};
  tc_graph_add_init(g, w, t);
  tc_node *add = tc_graph_append_node(g, "Add", "", "add", 2, 1, 0);
  tc_node_set_input(add, 0, x);
  tc_node_set_input(add, 1, w);
  tc_node_set_output(add, 0, s);
  tc_node *relu = tc_graph_append_node(g, op2, "", "act", 1, 1, 0);
  tc_node_set_input(relu, 0, s);
  tc_node_set_output(relu, 0, y);
  tc_graph_add_output(g, y, NULL);
  return m;
}

static tc_ndarray input(float *v, int64_t rows) {
  tc_ndarray t = {.dtype = TC_DTYPE_F32,
                  .rank = 2,
                  .dims = {rows, 3},
                  .data = v,
                  .size = (size_t)rows * 3 * sizeof(float)};
  return t;
}

static void test_runs_and_computes(void) {
  tc_model *m = make_model("Relu");
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    fprintf(stderr, "  %s\n", tc_diag_message(&d));
    tc_model_free(m);
    return;
  }
  float xv[6] = {0.5f, -2, 3, 1, 1, -7};
  tc_ndarray in = input(xv, 2), out = {0};
  const char *names[] = {"x"};
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
  const float want[6] = {0, 0, 4, 0, 1, 0};
  CHECK(out.dtype == TC_DTYPE_F32 && out.rank == 2 && out.dims[0] == 2 && out.dims[1] == 3);
  CHECK(out.data && memcmp(out.data, want, sizeof want) == 0);
  tc_ndarray_release(&out);
  CHECK(out.data == NULL);
  tc_session_free(s);
  tc_model_free(m);
}

/* An unknown target is an argument error; the CUDA target either runs
 * (a GPU machine: the same numbers, Add and Relu on the CPU) or is refused
 * as unsupported, saying why, with no session left behind. */
static void test_targets(void) {
  tc_model *m = make_model("Relu");
  tc_session *s = (tc_session *)1;
  tc_diag d = {0};
  tc_session_options o = {.target = 7};
  CHECK(tc_session_new_ex(m, &o, &s, &d) == TC_STATUS_ARG && strstr(tc_diag_message(&d), "target"));
  tc_diag_clear(&d);
  o.target = TC_TARGET_CUDA;
  s = NULL;
  tc_status st = tc_session_new_ex(m, &o, &s, &d);
  if (st == TC_STATUS_OK) {
    float xv[3] = {0.5f, -2, 3};
    tc_ndarray in = input(xv, 1), out = {0};
    const char *names[] = {"x"};
    CHECK(tc_session_device(s)[0] && tc_session_gpu_nodes(s) == 0);
    CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
    const float want[3] = {0, 0, 4};
    CHECK(out.data && memcmp(out.data, want, sizeof want) == 0);
    tc_ndarray_release(&out);
  } else {
    CHECK(st == TC_STATUS_UNSUPPORTED && s == NULL);
    CHECK(strstr(tc_diag_message(&d), "target cuda: ") != NULL);
  }
  tc_session_free(s);
  tc_model_free(m);
}

static void test_bad_inputs_refused(void) {
  tc_model *m = make_model("Relu");
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    tc_model_free(m);
    return;
  }
  float xv[8] = {0};
  const char *names[] = {"x"}, *wrong[] = {"nope"};
  tc_ndarray out = {0};
  tc_ndarray in = input(xv, 2);
  in.dtype = TC_DTYPE_F64;
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_ARG);
  CHECK(strstr(d.reason, "'x' must be float32") != NULL);
  in = input(xv, 2);
  in.rank = 1;
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_ARG);
  CHECK(strstr(d.reason, "rank") != NULL);
  in = (tc_ndarray){.dtype = TC_DTYPE_F32, .rank = 2, .dims = {2, 4}, .data = xv, .size = 32};
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_ARG);
  CHECK(strstr(d.reason, "dim 1 must be 3") != NULL);
  in = input(xv, 2);
  in.size = 4;
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_ARG);
  CHECK(tc_session_run(s, 0, names, &in, &out, &d) == TC_STATUS_ARG);
  CHECK(strstr(d.reason, "'x' is missing") != NULL);
  in = input(xv, 2);
  CHECK(tc_session_run(s, 1, wrong, &in, &out, &d) == TC_STATUS_ARG);
  CHECK(strstr(d.reason, "no input named 'nope'") != NULL);
  CHECK(out.data == NULL);
  tc_session_free(s);
  tc_model_free(m);
}

static void test_unsupported_op_refused_at_load(void) {
  tc_model *m = make_model("NoSuchOp");
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_UNSUPPORTED && s == NULL);
  CHECK(strcmp(d.node, "act") == 0 && strcmp(d.op, "NoSuchOp") == 0);
  tc_model_free(m);
}

typedef struct job {
  tc_session *s;
  int bad;
} job;

static void *worker(void *arg) {
  job *j = arg;
  for (int it = 0; it < 200; it++) {
    float xv[3 * 64];
    for (int i = 0; i < 3 * 64; i++)
      xv[i] = (float)(i % 7) - 3.0f + (float)it;
    tc_ndarray in = input(xv, 64), out = {0};
    const char *names[] = {"x"};
    tc_diag d = {0};
    if (tc_session_run(j->s, 1, names, &in, &out, &d) != TC_STATUS_OK) {
      j->bad++;
      continue;
    }
    const float w[3] = {-1, 0, 1};
    for (int i = 0; i < 3 * 64; i++) {
      float e = xv[i] + w[i % 3];
      j->bad += ((float *)out.data)[i] != (e > 0 ? e : 0);
    }
    tc_ndarray_release(&out);
  }
  return NULL;
}

static void test_concurrent_runs(void) {
  tc_model *m = make_model("Relu");
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    tc_model_free(m);
    return;
  }
  pthread_t th[4];
  job jobs[4] = {{s, 0}, {s, 0}, {s, 0}, {s, 0}};
  for (int i = 0; i < 4; i++)
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  for (int i = 0; i < 4; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++)
    CHECK(jobs[i].bad == 0);
  tc_session_free(s);
  tc_model_free(m);
}

/* x -> Relu -> Neg -> Relu -> Neg -> y: four tensors of the same size, each
 * alive from its producer to its one reader. */
static tc_model *make_chain_dims(tc_dim batch) {
  tc_model *m = empty_model("chain", false);
  tc_graph *g = m->graph;
  tc_value *prev = tc_graph_new_value(g, "x", NULL);
  tc_dim dims[2] = {batch, {.kind = TC_DIM_VALUE, .value = 3}};
  tc_value_set_tensor_type(prev, TC_DTYPE_F32, 2, dims);
  tc_graph_add_input(g, prev, NULL);
  const char *ops[4] = {"Relu", "Neg", "Relu", "Neg"}, *names[4] = {"v1", "v2", "v3", "y"};
  for (int i = 0; i < 4; i++) {
    tc_value *v = tc_graph_new_value(g, names[i], NULL);
    tc_node *n = tc_graph_append_node(g, ops[i], "", names[i], 1, 1, 0);
    tc_node_set_input(n, 0, prev);
    tc_node_set_output(n, 0, v);
    prev = v;
  }
  tc_graph_add_output(g, prev, NULL);
  return m;
}

static tc_model *make_chain(void) {
  return make_chain_dims((tc_dim){.kind = TC_DIM_PARAM, .param = "batch"});
}

/* One run of the chain model on 64 rows of (i % period) - period / 2:
 * whether y = -relu(-relu(x)). */
static bool chain_runs_right(tc_session *s, int period) {
  const char *names[] = {"x"};
  float xv[3 * 64];
  for (int i = 0; i < 3 * 64; i++)
    xv[i] = (float)(i % period) - (float)(period / 2);
  tc_ndarray in = input(xv, 64), out = {0};
  tc_diag d = {0};
  bool right = tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK && out.data;
  for (int i = 0; right && i < 3 * 64; i++) {
    float r1 = xv[i] > 0 ? xv[i] : 0, r2 = -r1 > 0 ? -r1 : 0;
    right = ((float *)out.data)[i] == -r2;
  }
  tc_ndarray_release(&out);
  return right;
}

/* With every input dim fixed, shape inference plans the memory when the
 * session is created: the first run is planned, and no second plan comes. */
static void test_static_plan(void) {
  tc_model *m = make_chain_dims((tc_dim){.kind = TC_DIM_VALUE, .value = 64});
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    tc_model_free(m);
    return;
  }
  size_t slot = (64 * 3 * sizeof(float) + 63) / 64 * 64;
  CHECK(s->plans && tc_plan_count(s->plans) == 1 && tc_plan_total(s->plans) == 2 * slot);
  for (int round = 0; round < 2; round++)
    CHECK(chain_runs_right(s, 7));
  CHECK(tc_plan_count(s->plans) == 1);
  tc_session_free(s);
  tc_model_free(m);
  /* a symbolic dim: nothing to plan before a run; the first run of each
   * batch size plans from inference over its own shapes, so it is planned too */
  m = make_chain();
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  CHECK(s && !s->plans);
  for (int round = 0; s && round < 2; round++) {
    CHECK(chain_runs_right(s, 5));
    CHECK(s->planned_runs == (size_t)round + 1 && tc_plan_count(s->plans) == 1);
    CHECK(tc_plan_total(s->plans) == 2 * slot);
  }
  tc_session_free(s);
  tc_model_free(m);
}

static void test_memory_plan(void) {
  tc_model *m = make_chain();
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  if (!s) {
    tc_model_free(m);
    return;
  }
  const char *names[] = {"x"};
  float xv[3 * 64];
  for (int i = 0; i < 3 * 64; i++)
    xv[i] = (float)(i % 5) - 2.0f;
  for (int round = 0; round < 3; round++) {
    CHECK(chain_runs_right(s, 5));
    /* After the first run a plan exists; v1 and v3, v2 and y share slots. */
    CHECK(s->plans != NULL);
    size_t slot = (64 * 3 * sizeof(float) + 63) / 64 * 64;
    CHECK(s->plans && tc_plan_total(s->plans) == 2 * slot);
  }
  /* A new batch size is a new signature: a second plan. */
  tc_ndarray in = input(xv, 10), out = {0};
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
  tc_ndarray_release(&out);
  CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
  tc_ndarray_release(&out);
  CHECK(tc_plan_count(s->plans) == 2);
  tc_session_free(s);
  tc_model_free(m);
}

/* An initializer of n floats from v (copied into the model). */
static void add_init(tc_model *m, tc_value *v, size_t rank, const int64_t *dims, const float *f,
                     size_t n) {
  tc_tensor *t = tc_arena_alloc(m->arena, sizeof *t);
  float *copy = malloc(n * sizeof *copy);
  memcpy(copy, f, n * sizeof *copy);
  tc_buffer *b = tc_buffer_wrap_heap(copy, n * sizeof *copy);
  tc_arena_on_free(m->arena, (void (*)(void *))tc_buffer_unref, b);
  *t = (tc_tensor){.name = v->name,
                   .dtype = TC_DTYPE_F32,
                   .has_dtype = true,
                   .rank = rank,
                   .dims = tc_arena_memdup(m->arena, dims, rank * sizeof *dims),
                   .field = TC_FIELD_RAW,
                   .has_raw = true};
  t->data[TC_FIELD_RAW] = (tc_span){b, 0, n * sizeof *copy};
  tc_graph_add_init(m->graph, v, t);
}

enum { IC = 8 };

/* x [1, 8, H, H]; r = Relu(x), or GlobalAveragePool(x) when gap; y =
 * ai.tacoc.ConvAddRelu(x, w [8, 8, k, k], b, Z = r) with pads p; with
 * reread, y2 = y + r is the output (r read after the convolution). */
static tc_model *conv_add_model(int64_t H, int64_t k, int64_t p, bool gap, bool reread,
                                const float *w, const float *b) {
  tc_model *m = empty_model("g", true);
  tc_graph *g = m->graph;
  tc_value *x = tc_graph_new_value(g, "x", NULL), *r = tc_graph_new_value(g, "r", NULL),
           *wv = tc_graph_new_value(g, "w", NULL), *bv = tc_graph_new_value(g, "b", NULL),
           *y = tc_graph_new_value(g, "y", NULL);
  tc_dim dims[4] = {{.kind = TC_DIM_VALUE, .value = 1},
                    {.kind = TC_DIM_VALUE, .value = IC},
                    {.kind = TC_DIM_VALUE, .value = H},
                    {.kind = TC_DIM_VALUE, .value = H}};
  tc_value_set_tensor_type(x, TC_DTYPE_F32, 4, dims);
  tc_graph_add_input(g, x, NULL);
  int64_t wd[4] = {IC, IC, k, k}, bd[1] = {IC}, pads[4] = {p, p, p, p};
  add_init(m, wv, 4, wd, w, (size_t)(IC * IC * k * k));
  add_init(m, bv, 1, bd, b, IC);
  tc_node *n = tc_graph_append_node(g, gap ? "GlobalAveragePool" : "Relu", "", "r", 1, 1, 0);
  tc_node_set_input(n, 0, x);
  tc_node_set_output(n, 0, r);
  n = tc_graph_append_node(g, "ConvAddRelu", "ai.tacoc", "conv", 4, 1, 1);
  tc_node_set_attr_ints(n, 0, "pads", pads, 4);
  tc_node_set_input(n, 0, x);
  tc_node_set_input(n, 1, wv);
  tc_node_set_input(n, 2, bv);
  tc_node_set_input(n, 3, r);
  tc_node_set_output(n, 0, y);
  if (reread) {
    tc_value *y2 = tc_graph_new_value(g, "y2", NULL);
    n = tc_graph_append_node(g, "Add", "", "add", 2, 1, 0);
    tc_node_set_input(n, 0, y);
    tc_node_set_input(n, 1, r);
    tc_node_set_output(n, 0, y2);
    y = y2;
  }
  tc_graph_add_output(g, y, NULL);
  return m;
}

/* In place (runtime/plan.c): a ConvAdd's Y takes the memory of a Z that
 * ends there, so the plan holds one tensor where it held two, and the
 * results are those of a direct loop: 3x3 padded (oneDNN's blocked
 * layout), 1x1 over 12x12 (the plain layout, whose add comes after the
 * convolution), a window covering the whole input (the dense GEMM path);
 * with Z read again after the convolution nothing is shared. */
static void test_in_place_conv_add(void) {
  struct {
    int64_t H, k, p;
    bool gap;
  } cases[] = {{6, 3, 1, false}, {12, 1, 0, false}, {3, 3, 0, true}};
  float w[IC * IC * 9], b[IC], xv[IC * 144];
  for (size_t i = 0; i < sizeof w / sizeof *w; i++)
    w[i] = (float)((int)(i * 37 % 19) - 9) * 0.05f;
  for (size_t i = 0; i < IC; i++)
    b[i] = (float)i * 0.1f - 0.3f;
  for (size_t i = 0; i < sizeof xv / sizeof *xv; i++)
    xv[i] = (float)((int)(i * 53 % 23) - 11) * 0.1f;
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    for (int reread = 0; reread < 2; reread++) {
      int64_t H = cases[c].H, k = cases[c].k, p = cases[c].p, O = H + 2 * p - k + 1;
      tc_model *m = conv_add_model(H, k, p, cases[c].gap, reread, w, b);
      tc_session *s = NULL;
      tc_diag d = {0};
      CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
      if (!s) {
        fprintf(stderr, "in place case %zu: %s\n", c, d.reason);
        tc_model_free(m);
        continue;
      }
      size_t ny = (size_t)(IC * O * O), slot = (ny * sizeof(float) + 63) / 64 * 64;
      /* r and y share a slot unless r is read again (then r, y and y2 coexist) */
      CHECK(tc_session_static_plan_bytes(s) == (reread ? 2 * slot : 0) + ny * sizeof(float));
      tc_ndarray in = {.dtype = TC_DTYPE_F32,
                       .rank = 4,
                       .dims = {1, IC, H, H},
                       .data = xv,
                       .size = (size_t)(IC * H * H) * sizeof(float)},
                 out = {0};
      const char *names[] = {"x"};
      size_t bad = 0;
      for (int round = 0; round < 2; round++) { /* the second run reuses the plan's buffer */
        CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
        for (int64_t mo = 0; out.data && mo < IC; mo++)
          for (int64_t i = 0; i < O; i++)
            for (int64_t j = 0; j < O; j++) {
              double acc = b[mo], r = 0;
              for (int64_t ci = 0; ci < IC; ci++)
                for (int64_t a = 0; a < k; a++)
                  for (int64_t e = 0; e < k; e++) {
                    int64_t yi = i - p + a, xj = j - p + e;
                    if (yi >= 0 && yi < H && xj >= 0 && xj < H)
                      acc +=
                          (double)w[((mo * IC + ci) * k + a) * k + e] * xv[(ci * H + yi) * H + xj];
                  }
              if (cases[c].gap) {
                for (int64_t q = 0; q < H * H; q++)
                  r += xv[mo * H * H + q];
                r /= (double)(H * H);
              } else {
                r = xv[(mo * H + i) * H + j] > 0 ? xv[(mo * H + i) * H + j] : 0;
              }
              double want = acc + r > 0 ? acc + r : 0;
              want += reread ? r : 0;
              float got = ((float *)out.data)[(mo * O + i) * O + j];
              bad += !(fabs(got - want) <= 1e-4 * (fabs(want) + 1));
            }
        tc_ndarray_release(&out);
      }
      CHECK(bad == 0);
      if (bad)
        fprintf(stderr, "in place case %zu (reread %d): %zu outputs wrong\n", c, reread, bad);
      tc_session_free(s);
      tc_model_free(m);
    }
}

/* Sequences through the C API: s (sequence of float) and x [2] in;
 * SequenceInsert(s, x) -> s2, SequenceLength(s2) -> n, ConcatFromSequence
 * (s2, axis 0) -> cat out; then inputs of the wrong kind are refused. */
static void test_sequences_through_the_api(void) {
  tc_model *m = tc_model_new_empty();
  m->ir_version = 8;
  tc_model_set_opset(m, "", 17);
  tc_graph *g = m->graph = tc_graph_new(m, NULL, "seq");
  tc_value *sv = tc_graph_new_value(g, "s", NULL), *x = tc_graph_new_value(g, "x", NULL);
  sv->type.kind = TC_TYPE_SEQUENCE;
  sv->type.elem = TC_DTYPE_F32;
  tc_dim d2 = {.kind = TC_DIM_VALUE, .value = 2};
  tc_value_set_tensor_type(x, TC_DTYPE_F32, 1, &d2);
  tc_graph_add_input(g, sv, NULL);
  tc_graph_add_input(g, x, NULL);
  const char *ops[3] = {"SequenceInsert", "SequenceLength", "ConcatFromSequence"};
  const char *outs[3] = {"s2", "n", "cat"};
  tc_value *s2 = NULL;
  for (int i = 0; i < 3; i++) {
    tc_node *n = tc_graph_append_node(g, ops[i], "", outs[i], i ? 1 : 2, 1, i == 2);
    tc_node_set_input(n, 0, i ? s2 : sv);
    if (!i)
      tc_node_set_input(n, 1, x);
    if (i == 2)
      tc_node_set_attr_int(n, 0, "axis", 0);
    tc_value *o = tc_graph_new_value(g, outs[i], NULL);
    tc_node_set_output(n, 0, o);
    tc_graph_add_output(g, o, NULL);
    if (!i)
      s2 = o;
  }
  tc_session *s = NULL;
  tc_diag d = {0};
  CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
  float a[2] = {1, 2}, b[2] = {3, 4}, c[2] = {5, 6};
  tc_ndarray items[2] = {{.dtype = TC_DTYPE_F32, .rank = 1, .dims = {2}, .data = a, .size = 8},
                         {.dtype = TC_DTYPE_F32, .rank = 1, .dims = {2}, .data = b, .size = 8}};
  tc_ndarray in[2] = {{.dtype = TC_DTYPE_SEQUENCE,
                       .rank = 1,
                       .dims = {2, TC_DTYPE_F32},
                       .data = items,
                       .size = sizeof items},
                      {.dtype = TC_DTYPE_F32, .rank = 1, .dims = {2}, .data = c, .size = 8}};
  const char *names[2] = {"s", "x"};
  tc_ndarray out[3] = {{0}};
  for (int round = 0; s && round < 2; round++) { /* the second run is planned */
    CHECK(tc_session_run(s, 2, names, in, out, &d) == TC_STATUS_OK);
    CHECK(out[0].dtype == TC_DTYPE_SEQUENCE && out[0].dims[0] == 3 &&
          out[0].dims[1] == TC_DTYPE_F32 && out[0].size == 3 * sizeof(tc_ndarray));
    const tc_ndarray *e = out[0].data;
    CHECK(e && e[2].rank == 1 && e[2].dims[0] == 2 && ((float *)e[2].data)[0] == 5 &&
          ((float *)e[0].data)[1] == 2 && e[0].data != (void *)a); /* copies */
    CHECK(out[1].dtype == TC_DTYPE_I64 && ((int64_t *)out[1].data)[0] == 3);
    bool cat = out[2].dtype == TC_DTYPE_F32 && out[2].dims[0] == 6;
    for (int i = 0; cat && i < 6; i++)
      cat = ((float *)out[2].data)[i] == (float)(i + 1);
    CHECK(cat);
    for (int i = 0; i < 3; i++)
      tc_ndarray_release(&out[i]);
  }
  /* a tensor where the sequence goes; an element of the wrong dtype */
  tc_ndarray bad[2] = {in[1], in[1]};
  CHECK(s && tc_session_run(s, 2, names, bad, out, &d) == TC_STATUS_ARG &&
        strstr(tc_diag_message(&d), "must be a sequence"));
  items[1].dtype = TC_DTYPE_I32;
  CHECK(s && tc_session_run(s, 2, names, in, out, &d) == TC_STATUS_ARG &&
        strstr(tc_diag_message(&d), "element 1 is int32"));
  tc_session_free(s);
  tc_model_free(m);
}

/* y = Relu(x + Neg(w)): Neg reads only the initializer w, so it runs once
 * when the session is created; not with TACORT_NO_PRECOMPUTE, and not when
 * w is also a graph input (a caller may override it). */
static void test_constant_nodes_computed_at_load(void) {
  for (int variant = 0; variant < 3; variant++) {
    tc_model *m = make_model("Relu");
    tc_graph *g = m->graph;
    tc_node *add = g->first;
    tc_value *w = add->inputs[1], *nw = tc_graph_new_temp(g, "nw");
    tc_node *neg = tc_graph_insert_node(g, add, "Neg", "", "neg", 1, 1, 0);
    tc_node_set_input(neg, 0, w);
    tc_node_set_output(neg, 0, nw);
    tc_node_set_input(add, 1, nw);
    if (variant == 2)
      tc_graph_add_input(g, w, NULL); /* an input with a default */
    if (variant == 1)
      setenv("TACORT_NO_PRECOMPUTE", "1", 1);
    tc_session *s = NULL;
    tc_diag d = {0};
    CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
    unsetenv("TACORT_NO_PRECOMPUTE");
    CHECK(tc_session_precomputed_nodes(s) == (variant == 0 ? 1u : 0u));
    float xv[6] = {0.5f, -2, 3, 1, 1, -1};
    const char *names[] = {"x"};
    for (int round = 0; s && round < 2; round++) {
      tc_ndarray in = input(xv, 2), out = {0};
      CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
      const float want[6] = {1.5f, 0, 2, 2, 1, 0}; /* relu(x - [-1, 0, 1]) */
      CHECK(out.data && memcmp(out.data, want, sizeof want) == 0);
      tc_ndarray_release(&out);
    }
    tc_session_free(s);
    tc_model_free(m);
  }
}

/* In place (runtime/plan.c): a Flatten whose input ends there writes its
 * output where the input is (the plan gives both one offset, the kernel
 * copies nothing); with the input read again after it they are apart. x
 * [1, 8, 6, 6] -> Relu r -> Flatten f -> Neg y [, y2 = y + Flatten(r)]:
 * the results are the direct loop's on both runs (the second reuses the
 * plan's buffer). */
static void test_in_place_flatten(void) {
  float xv[8 * 36];
  for (size_t i = 0; i < 8 * 36; i++)
    xv[i] = (float)((int)(i * 53 % 23) - 11) * 0.1f;
  for (int reread = 0; reread < 2; reread++) {
    tc_model *m = empty_model("g", false);
    tc_graph *g = m->graph;
    tc_value *x = tc_graph_new_value(g, "x", NULL), *r = tc_graph_new_value(g, "r", NULL),
             *f = tc_graph_new_value(g, "f", NULL), *y = tc_graph_new_value(g, "y", NULL);
    tc_dim dims[4] = {{.kind = TC_DIM_VALUE, .value = 1},
                      {.kind = TC_DIM_VALUE, .value = 8},
                      {.kind = TC_DIM_VALUE, .value = 6},
                      {.kind = TC_DIM_VALUE, .value = 6}};
    tc_value_set_tensor_type(x, TC_DTYPE_F32, 4, dims);
    tc_graph_add_input(g, x, NULL);
    tc_node *n = tc_graph_append_node(g, "Relu", "", "relu", 1, 1, 0);
    tc_node_set_input(n, 0, x);
    tc_node_set_output(n, 0, r);
    n = tc_graph_append_node(g, "Flatten", "", "flat", 1, 1, 0);
    tc_node_set_input(n, 0, r);
    tc_node_set_output(n, 0, f);
    n = tc_graph_append_node(g, "Neg", "", "neg", 1, 1, 0);
    tc_node_set_input(n, 0, f);
    tc_node_set_output(n, 0, y);
    if (reread) {
      tc_value *f2 = tc_graph_new_value(g, "f2", NULL), *y2 = tc_graph_new_value(g, "y2", NULL);
      n = tc_graph_append_node(g, "Flatten", "", "flat2", 1, 1, 0);
      tc_node_set_input(n, 0, r);
      tc_node_set_output(n, 0, f2);
      n = tc_graph_append_node(g, "Add", "", "add", 2, 1, 0);
      tc_node_set_input(n, 0, y);
      tc_node_set_input(n, 1, f2);
      tc_node_set_output(n, 0, y2);
      y = y2;
    }
    tc_graph_add_output(g, y, NULL);
    tc_session *s = NULL;
    tc_diag d = {0};
    CHECK(tc_session_new(m, &s, &d) == TC_STATUS_OK);
    if (!s) {
      tc_model_free(m);
      continue;
    }
    const int64_t *off = s->plans ? tc_plan_offsets(s->plans) : NULL;
    CHECK(off && off[r->id] >= 0 && (off[f->id] == off[r->id]) == !reread);
    tc_ndarray in = {.dtype = TC_DTYPE_F32,
                     .rank = 4,
                     .dims = {1, 8, 6, 6},
                     .data = xv,
                     .size = sizeof xv},
               out = {0};
    const char *names[] = {"x"};
    for (int round = 0; round < 2; round++) {
      CHECK(tc_session_run(s, 1, names, &in, &out, &d) == TC_STATUS_OK);
      bool right = out.data && out.rank == 2 && out.dims[1] == 8 * 36;
      for (size_t i = 0; right && i < 8 * 36; i++) {
        float rv = xv[i] > 0 ? xv[i] : 0;
        right = ((float *)out.data)[i] == (reread ? -rv + rv : -rv);
      }
      CHECK(right);
      tc_ndarray_release(&out);
    }
    tc_session_free(s);
    tc_model_free(m);
  }
}

int main(void) {
  RUN(test_runs_and_computes);
  RUN(test_bad_inputs_refused);
  RUN(test_targets);
  RUN(test_unsupported_op_refused_at_load);
  RUN(test_concurrent_runs);
  RUN(test_memory_plan);
  RUN(test_static_plan);
  RUN(test_in_place_conv_add);
  RUN(test_in_place_flatten);
  RUN(test_sequences_through_the_api);
  RUN(test_constant_nodes_computed_at_load);
  return SUMMARY("unit.session");
}
