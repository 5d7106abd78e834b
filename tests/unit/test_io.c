/* ONNX I/O: models built in memory are written and read back; bytes that are
 * not a model give a clear status; external data is written, aligned and
 * mapped back; tensor payloads convert to raw bytes. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "onnx_io.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
  static char buf[512];
  snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
  return buf;
}

static tc_tensor *float_tensor(tc_model *m, const char *name, size_t n, float start) {
  tc_tensor *t = tc_arena_alloc(m->arena, sizeof *t);
  tc_buffer *b = tc_buffer_new(n * sizeof(float));
  float *f = tc_buffer_data(b);
  for (size_t i = 0; i < n; i++)
    f[i] = start + (float)i;
  tc_arena_on_free(m->arena, (void (*)(void *))tc_buffer_unref, b);
  t->name = tc_arena_strdup(m->arena, name);
  t->dtype = TC_DTYPE_F32;
  t->has_dtype = true;
  t->rank = 1;
  t->dims = tc_arena_alloc(m->arena, sizeof(int64_t));
  t->dims[0] = (int64_t)n;
  t->field = TC_FIELD_RAW;
  t->has_raw = true;
  t->data[TC_FIELD_RAW] = (tc_span){b, 0, n * sizeof(float)};
  return t;
}

/* y = Add(x, w) with w an initializer of n floats; x has shape [batch, n]. */
static tc_model *make_model(size_t n) {
  tc_model *m = tc_model_new_empty();
  m->ir_version = 8;
  m->n_opsets = 1;
  m->opsets = tc_arena_alloc(m->arena, sizeof *m->opsets);
  m->opsets[0] = (tc_opset){.domain = "", .version = 17};
  tc_graph *g = m->graph = tc_graph_new(m, NULL, "built");
  tc_value *x = tc_graph_new_value(g, "x", NULL), *w = tc_graph_new_value(g, "w", NULL),
           *y = tc_graph_new_value(g, "y", NULL);
  tc_dim dims[2] = {{.kind = TC_DIM_PARAM, .param = "batch"},
                    {.kind = TC_DIM_VALUE, .value = (int64_t)n}};
  tc_value_set_tensor_type(x, TC_DTYPE_F32, 2, dims);
  tc_value_set_tensor_type(y, TC_DTYPE_F32, 2, dims);
  tc_graph_add_input(g, x, NULL);
  tc_graph_add_init(g, w, float_tensor(m, "w", n, 1.0f));
  tc_node *add = tc_graph_append_node(g, "Add", NULL, "add0", 2, 1, 0);
  tc_node_set_input(add, 0, x);
  tc_node_set_input(add, 1, w);
  tc_node_set_output(add, 0, y);
  tc_graph_add_output(g, y, NULL);
  return m;
}

static void test_write_and_read_back(void) {
  tc_model *m = make_model(16);
  tc_diag d = {0};
  CHECK(tc_model_save_file(m, tmp_path("built.onnx"), NULL, &d) == TC_STATUS_OK);
  tc_model_free(m);
  tc_model *r = NULL;
  CHECK(tc_model_load_file(tmp_path("built.onnx"), NULL, &r, &d) == TC_STATUS_OK);
  if (!r)
    return;
  CHECK(r->ir_version == 8 && r->n_opsets == 1 && r->opsets[0].version == 17);
  CHECK(tc_model_num_inputs(r) == 1 && strcmp(tc_model_input_name(r, 0), "x") == 0);
  CHECK(tc_model_num_outputs(r) == 1 && strcmp(tc_model_output_name(r, 0), "y") == 0);
  tc_value *x = r->graph->inputs[0].value;
  CHECK(x->type.kind == TC_TYPE_TENSOR && x->type.elem == TC_DTYPE_F32 && x->type.rank == 2);
  CHECK(x->type.dims[0].kind == TC_DIM_PARAM && strcmp(x->type.dims[0].param, "batch") == 0);
  CHECK(x->type.dims[1].kind == TC_DIM_VALUE && x->type.dims[1].value == 16);
  tc_value *w = tc_graph_lookup(r->graph, "w");
  CHECK(w && w->init && w->init->field == TC_FIELD_RAW);
  const float *f = tc_span_data(w->init->data[TC_FIELD_RAW]);
  CHECK(f && f[0] == 1.0f && f[15] == 16.0f);
  CHECK(r->graph->first && strcmp(r->graph->first->op_type, "Add") == 0);
  CHECK(r->graph->first->inputs[1] == w);
  tc_model_free(r);
}

static void test_bad_bytes(void) {
  tc_diag d = {0};
  tc_model *m = NULL;
  CHECK(tc_model_load_bytes("", 0, NULL, &m, &d) == TC_STATUS_PARSE && m == NULL);
  unsigned char junk[64];
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)(i * 37 + 11);
  CHECK(tc_model_load_bytes(junk, sizeof junk, NULL, &m, &d) == TC_STATUS_PARSE && m == NULL);
  /* ir_version = 8 and nothing else: a valid protobuf, but no graph. */
  unsigned char nograph[] = {0x08, 0x08};
  CHECK(tc_model_load_bytes(nograph, sizeof nograph, NULL, &m, &d) == TC_STATUS_PARSE);
  CHECK(strstr(d.reason, "no graph") != NULL);
}

static void test_truncated_file(void) {
  tc_model *m = make_model(300);
  tc_diag d = {0};
  CHECK(tc_model_save_file(m, tmp_path("t.onnx"), NULL, &d) == TC_STATUS_OK);
  tc_model_free(m);
  FILE *f = fopen(tmp_path("t.onnx"), "rb");
  unsigned char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  int refused = 0;
  for (size_t cut = 1; cut < n; cut += 7) {
    tc_model *r = NULL;
    tc_status s = tc_model_load_bytes(buf, cut, NULL, &r, &d);
    refused += s != TC_STATUS_OK;
    tc_model_free(r);
  }
  CHECK(refused > 0);
  /* The whole file loads, so the cuts above were refused for being cut. */
  tc_model *r = NULL;
  CHECK(tc_model_load_bytes(buf, n, NULL, &r, &d) == TC_STATUS_OK);
  tc_model_free(r);
}

static void test_external_data_round_trip(void) {
  tc_model *m = make_model(300000); /* 1.2 MB of weights: gets 64 KiB alignment */
  tc_diag d = {0};
  tc_save_options o = {.external_data = "weights/w.bin"};
  CHECK(tc_model_save_file(m, tmp_path("ext.onnx"), &o, &d) == TC_STATUS_OK);
  tc_model_free(m);
  struct stat st;
  CHECK(stat(tmp_path("weights/w.bin"), &st) == 0 && st.st_size >= 1200000);
  tc_model *r = NULL;
  CHECK(tc_model_load_file(tmp_path("ext.onnx"), NULL, &r, &d) == TC_STATUS_OK);
  if (!r)
    return;
  tc_tensor *t = tc_graph_lookup(r->graph, "w")->init;
  CHECK(t->field == TC_FIELD_EXTERNAL && strcmp(t->ext_location, "weights/w.bin") == 0);
  CHECK(t->ext_offset % TC_EXTERNAL_ALIGN == 0);
  const float *f = tc_span_data(t->data[TC_FIELD_EXTERNAL]);
  CHECK(f[0] == 1.0f && f[299999] == 300000.0f);
  /* Written again with default options, the tensor stays external at its place. */
  CHECK(tc_model_save_file(r, tmp_path("ext2.onnx"), NULL, &d) == TC_STATUS_OK);
  CHECK(stat(tmp_path("weights/w.bin"), &st) == 0);
  tc_model_free(r);
}

static void test_external_location_rules(void) {
  CHECK(tc_external_location_ok("w.bin"));
  CHECK(tc_external_location_ok("sub/w.bin"));
  CHECK(tc_external_location_ok("..w.bin"));
  CHECK(!tc_external_location_ok("/etc/passwd"));
  CHECK(!tc_external_location_ok("../w.bin"));
  CHECK(!tc_external_location_ok("a/../../w.bin"));
  CHECK(!tc_external_location_ok("a\\..\\w.bin"));
  CHECK(!tc_external_location_ok(""));
  tc_model *m = make_model(4);
  tc_diag d = {0};
  tc_save_options o = {.external_data = "../escape.bin", .external_threshold = 1};
  CHECK(tc_model_save_file(m, tmp_path("esc.onnx"), &o, &d) == TC_STATUS_ARG);
  CHECK(access(tmp_path("esc.onnx"), F_OK) != 0);
  tc_model_free(m);
}

static void test_raw_bytes_from_int32_field(void) {
  tc_model *m = tc_model_new_empty();
  tc_buffer *b = tc_buffer_new(3 * sizeof(int32_t));
  int32_t *v = tc_buffer_data(b);
  v[0] = -1;
  v[1] = 127;
  v[2] = -128;
  tc_tensor t = {.dtype = TC_DTYPE_I8, .field = TC_FIELD_INT32};
  t.data[TC_FIELD_INT32] = (tc_span){b, 0, 3 * sizeof(int32_t)};
  const void *out;
  size_t len;
  void *owned;
  tc_diag d = {0};
  CHECK(tc_tensor_raw_bytes(&t, &out, &len, &owned, &d) == TC_STATUS_OK);
  CHECK(len == 3 && owned == out);
  const int8_t *i8 = out;
  CHECK(i8[0] == -1 && i8[1] == 127 && i8[2] == -128);
  free(owned);
  tc_buffer_unref(b);
  tc_model_free(m);
}

/* Appends a length-delimited field to buf at *n. */
static size_t put_field(unsigned char *buf, size_t n, unsigned num, const unsigned char *payload,
                        size_t len) {
  unsigned char hdr[16];
  size_t h = 0;
  hdr[h++] = (unsigned char)(num << 3 | 2);
  for (size_t v = len;; v >>= 7) {
    hdr[h++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    if (v <= 0x7f)
      break;
  }
  memmove(buf + n + h, payload, len);
  memcpy(buf + n, hdr, h);
  return n + h + len;
}

/* A model of `levels` If nodes nested through their graph attribute. */
static size_t nested_model(unsigned char *out, unsigned char *tmp, int levels) {
  size_t g = 0;
  for (int i = 0; i < levels; i++) {
    size_t a = put_field(tmp, 0, 1, (const unsigned char *)"g", 1); /* name */
    tmp[a++] = 0xa0, tmp[a++] = 0x01, tmp[a++] = 5; /* type (field 20, varint) = GRAPH */
    a = put_field(tmp, a, 6, out, g);               /* g */
    size_t nd = put_field(out, 0, 4, (const unsigned char *)"If", 2); /* op_type */
    nd = put_field(out, nd, 5, tmp, a);                               /* attribute */
    memcpy(tmp, out, nd);
    g = put_field(out, 0, 1, tmp, nd); /* graph.node */
  }
  memcpy(tmp, out, g);
  size_t m = 0;
  out[m++] = 1 << 3, out[m++] = 8; /* ir_version 8 */
  return put_field(out, m, 7, tmp, g);
}

static void test_deep_nesting_refused(void) {
  static unsigned char out[1 << 20], tmp[1 << 20];
  tc_diag d = {0};
  tc_model *m = NULL;
  size_t n = nested_model(out, tmp, 10);
  CHECK(tc_model_load_bytes(out, n, NULL, &m, &d) == TC_STATUS_OK);
  tc_model_free(m);
  m = NULL;
  n = nested_model(out, tmp, 20000); /* would overflow the stack if unpacked */
  CHECK(tc_model_load_bytes(out, n, NULL, &m, &d) == TC_STATUS_UNSUPPORTED && !m);
  CHECK(strstr(d.reason, "nest deeper") != NULL);
}

/* Large initializer payloads are cut out before unpacking and filled back
 * from the file: the values are the file's, small ones stay in the message,
 * and layouts protobuf-c would merge are left alone. */
static void test_payload_cut(void) {
  tc_model *m = make_model(1000); /* w: 4000 bytes, cut */
  tc_graph_add_init(m->graph, tc_graph_new_value(m->graph, "small", NULL),
                    float_tensor(m, "small", 16, 5.0f)); /* 64 bytes: kept */
  tc_graph_add_init(m->graph, tc_graph_new_value(m->graph, "mid", NULL),
                    float_tensor(m, "mid", 300, -7.0f)); /* 1200 bytes: cut */
  tc_diag d = {0};
  CHECK(tc_model_save_file(m, tmp_path("cut.onnx"), NULL, &d) == TC_STATUS_OK);
  tc_model_free(m);
  FILE *f = fopen(tmp_path("cut.onnx"), "rb");
  static unsigned char buf[1 << 16], big[1 << 16];
  size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
  if (f)
    fclose(f);
  tc_pb_payload *pl = NULL;
  size_t n_pl = 0, cut_size = 0;
  uint8_t *cut = tc_pb_cut_payloads(buf, n, 1024, &pl, &n_pl, &cut_size);
  CHECK(cut && n_pl == 2);
  if (!cut || n_pl != 2) {
    free(cut);
    free(pl);
    return;
  }
  /* the payloads are the tensors' bytes in the file, in initializer order */
  float w0 = 1.0f, mid0 = -7.0f;
  CHECK(pl[0].len == 4000 && memcmp(buf + pl[0].off, &w0, 4) == 0);
  CHECK(pl[1].len == 1200 && memcmp(buf + pl[1].off, &mid0, 4) == 0 &&
        pl[1].init == pl[0].init + 2);
  CHECK(cut_size < n - 5200 && cut_size > n - 5300); /* the payloads and their headers */
  Onnx__ModelProto *pb = onnx__model_proto__unpack(NULL, cut_size, cut);
  CHECK(pb && pb->graph && pb->graph->n_initializer == 3);
  if (pb && pb->graph && pb->graph->n_initializer == 3) {
    CHECK(!pb->graph->initializer[pl[0].init]->has_raw_data);
    CHECK(pb->graph->initializer[pl[0].init + 1]->raw_data.len == 64);
    CHECK(!pb->graph->initializer[pl[1].init]->has_raw_data);
    CHECK(strcmp(pb->graph->node[0]->op_type, "Add") == 0);
  }
  if (pb)
    protobuf_c_message_free_unpacked(&pb->base, NULL);
  free(cut);
  free(pl);
  /* loaded from the file (mapped, pages dropped) and from memory: the values */
  for (int from_file = 0; from_file < 2; from_file++) {
    tc_model *r = NULL;
    CHECK((from_file ? tc_model_load_file(tmp_path("cut.onnx"), NULL, &r, &d)
                     : tc_model_load_bytes(buf, n, NULL, &r, &d)) == TC_STATUS_OK);
    if (!r)
      continue;
    const char *names[] = {"w", "small", "mid"};
    float first[] = {1.0f, 5.0f, -7.0f}, count[] = {1000, 16, 300};
    for (int i = 0; i < 3; i++) {
      tc_value *v = tc_graph_lookup(r->graph, names[i]);
      const float *x = v && v->init ? tc_span_data(v->init->data[TC_FIELD_RAW]) : NULL;
      CHECK(x && v->init->data[TC_FIELD_RAW].len == (size_t)count[i] * 4 && x[0] == first[i] &&
            x[(int)count[i] - 1] == first[i] + count[i] - 1);
      CHECK(x && ((uintptr_t)x & (i == 1 ? 15 : 63)) == 0); /* cut: 64-byte aligned */
    }
    tc_model_free(r);
  }
  /* the graph field twice (protobuf-c merges them): nothing cut */
  memcpy(big, buf, n);
  big[n] = 7 << 3 | 2, big[n + 1] = 0;
  CHECK(!tc_pb_cut_payloads(big, n + 2, 1024, &pl, &n_pl, &cut_size) && !pl && n_pl == 0);
  /* a tensor with two raw_data fields (the last one wins): nothing cut */
  static unsigned char payload[1100], t[4096], g[4096];
  size_t tn = put_field(t, 0, 9, payload, sizeof payload);
  tn = put_field(t, tn, 9, payload, sizeof payload);
  size_t gn = put_field(g, 0, 5, t, tn), mn = 2;
  big[0] = 1 << 3, big[1] = 8;
  mn = put_field(big, mn, 7, g, gn);
  CHECK(!tc_pb_cut_payloads(big, mn, 1024, &pl, &n_pl, &cut_size));
  /* one raw_data: cut, and the message shrinks by exactly its field */
  tn = put_field(t, 0, 9, payload, sizeof payload);
  gn = put_field(g, 0, 5, t, tn);
  mn = put_field(big, 2, 7, g, gn);
  cut = tc_pb_cut_payloads(big, mn, 1024, &pl, &n_pl, &cut_size);
  CHECK(cut && n_pl == 1 && pl[0].init == 0 && pl[0].len == sizeof payload);
  static const unsigned char want[] = {1 << 3, 8, 7 << 3 | 2, 2, 5 << 3 | 2, 0};
  CHECK(cut && cut_size == sizeof want && memcmp(cut, want, sizeof want) == 0);
  free(cut);
  free(pl);
  /* truncated inside a payload: left to protobuf-c */
  CHECK(!tc_pb_cut_payloads(big, mn - 10, 1024, &pl, &n_pl, &cut_size));
}

static void test_save_failure_leaves_nothing(void) {
  tc_model *m = make_model(4);
  tc_diag d = {0};
  CHECK(tc_model_save_file(m, tmp_path("missing-dir/out.onnx"), NULL, &d) == TC_STATUS_IO);
  CHECK(strstr(tc_diag_message(&d), "missing-dir/out.onnx") != NULL);
  tc_model_free(m);
}

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/tacoc-test-io-%ld", (long)getpid());
  mkdir(tmpdir, 0777);
  RUN(test_write_and_read_back);
  RUN(test_bad_bytes);
  RUN(test_truncated_file);
  RUN(test_external_data_round_trip);
  RUN(test_external_location_rules);
  RUN(test_raw_bytes_from_int32_field);
  RUN(test_save_failure_leaves_nothing);
  RUN(test_deep_nesting_refused);
  RUN(test_payload_cut);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmpdir);
  return SUMMARY("unit.io");
}
