/* ONNX backend node-test conformance runner for libtacort.
 *
 * usage: conformance [--filter S] [--expected FILE] [--write-expected FILE]
 *                    [--ops-md FILE] [--timeout SEC] [--target cpu|cuda] [-v] DIR
 * (--target cuda: sessions on libtacort's CUDA backend; the summary says how
 * many tests placed nodes on the GPU and how many of those pass)
 *
 * For every DIR/<test>/model.onnx: load, create a session, run (twice: the
 * second run uses the memory plan the first one built) every
 * test_data_set_N (input_K.pb bound to the graph inputs without initializer,
 * in order; TensorProto, or SequenceProto / OptionalProto for inputs of those
 * types) and compare with output_K.pb using the ONNX backend tests'
 * tolerances (rtol 1e-3, atol 1e-7; integers, bools exact). Each test runs in
 * a child process under a timeout so that a crash or a hang is counted, not
 * fatal. Statuses: PASS, FAIL (wrong result or run-time error), UNSUPPORTED
 * (the session refused an op/attribute/dtype), CRASH, HANG.
 *
 * With --expected, the tests listed there (one name a line) must pass: each
 * one that does not, and every crash or hang, counts as failed in the closing
 * line "conformance: N passed, N failed". --ops-md writes the coverage table
 * of docs/ops.md. */
/* Paths and reasons are bounded buffers; a truncated message in a report is fine. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kernel.h"
#include "onnx-data.pb-c.h"
#include "onnx_io.h"

enum { PASS, FAIL, UNSUPPORTED, CRASH, HANG, N_STATUS };
static const char *status_names[] = {"PASS", "FAIL", "UNSUPPORTED", "CRASH", "HANG"};

typedef struct result {
  char *name;
  int status;
  char *ops;    /* op types of the main graph, comma separated */
  char *reason; /* first line of what went wrong */
  int gpu_nodes; /* --target cuda: nodes the session placed on the GPU */
} result;

static int target = TC_TARGET_CPU; /* --target cpu|cuda */

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? cap * 2 : 65536;
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  fclose(f);
  *len = n;
  return buf;
}

/* Compares got with want; fills why and returns false on a mismatch. */
static bool compare(const tc_ndarray *got, const tc_rt_tensor *want, size_t idx, char *why,
                    size_t cap) {
  if (got->dtype != want->dtype) {
    snprintf(why, cap, "output %zu: dtype %s, expected %s", idx, tc_dtype_name(got->dtype),
             tc_dtype_name(want->dtype));
    return false;
  }
  bool same_shape = got->rank == want->rank;
  for (size_t i = 0; same_shape && i < got->rank; i++)
    same_shape = got->dims[i] == want->dims[i];
  if (!same_shape) {
    snprintf(why, cap, "output %zu: shape differs (rank %zu vs expected %zu)", idx, got->rank,
             want->rank);
    return false;
  }
  if (!tc_dtype_is_float(want->dtype) && !tc_dtype_is_int(want->dtype) &&
      want->dtype != TC_DTYPE_BOOL && want->dtype != TC_DTYPE_STRING) {
    /* float8, sub-byte, complex: no numeric reader; the bytes must match exactly. */
    if (got->size != want->bytes || memcmp(got->data, want->data, want->bytes) != 0) {
      snprintf(why, cap, "output %zu: %s bytes differ", idx, tc_dtype_name(want->dtype));
      return false;
    }
    return true;
  }
  tc_rt_tensor g = {.dtype = got->dtype, .rank = got->rank, .data = got->data, .bytes = got->size};
  memcpy(g.dims, got->dims, sizeof g.dims);
  size_t n = tc_rt_numel(want);
  for (size_t i = 0; i < n; i++) {
    if (tc_dtype_is_float(want->dtype)) {
      double a = tc_rt_get_f64(&g, i), b = tc_rt_get_f64(want, i);
      if (isnan(a) && isnan(b))
        continue;
      if (isinf(b) && a == b)
        continue;
      if (!(fabs(a - b) <= 1e-7 + 1e-3 * fabs(b))) {
        snprintf(why, cap, "output %zu: element %zu is %.9g, expected %.9g", idx, i, a, b);
        return false;
      }
    } else if (want->dtype == TC_DTYPE_STRING) {
      const char *a = ((char *const *)got->data)[i], *b = ((char *const *)want->data)[i];
      if (strcmp(a ? a : "", b ? b : "") != 0) {
        snprintf(why, cap, "output %zu: element %zu is \"%.60s\", expected \"%.60s\"", idx, i,
                 a ? a : "", b ? b : "");
        return false;
      }
    } else if (tc_rt_get_i64(&g, i) != tc_rt_get_i64(want, i)) {
      snprintf(why, cap, "output %zu: element %zu is %lld, expected %lld", idx, i,
               (long long)tc_rt_get_i64(&g, i), (long long)tc_rt_get_i64(want, i));
      return false;
    }
  }
  return true;
}

/* A value of declared type t from a .pb file: a TensorProto, or for
 * sequence / optional types a SequenceProto / OptionalProto (onnx-data.proto)
 * of tensors, as the C API's tc_ndarray; memory from a. 0, or -1 with why. */
static int tensor_value(const Onnx__TensorProto *tp, tc_arena *a, tc_ndarray *out, char *why,
                        size_t cap) {
  size_t len = onnx__tensor_proto__get_packed_size(tp);
  unsigned char *buf = tc_arena_alloc(a, len ? len : 1);
  tc_rt_tensor t;
  tc_diag d = {0};
  if (!buf || (onnx__tensor_proto__pack(tp, buf), tc_rt_from_tensor_proto(buf, len, a, &t, NULL, &d))) {
    snprintf(why, cap, "%s", buf ? d.reason : "out of memory");
    return -1;
  }
  *out = (tc_ndarray){.dtype = t.dtype, .rank = t.rank, .data = t.data, .size = t.bytes};
  memcpy(out->dims, t.dims, sizeof out->dims);
  return 0;
}

static int sequence_value(const Onnx__SequenceProto *sp, tc_arena *a, tc_ndarray *out, char *why,
                          size_t cap) {
  if (sp->elem_type != ONNX__SEQUENCE_PROTO__DATA_TYPE__TENSOR &&
      sp->elem_type != ONNX__SEQUENCE_PROTO__DATA_TYPE__UNDEFINED) {
    snprintf(why, cap, "a sequence of non-tensors");
    return -1;
  }
  size_t n = sp->n_tensor_values;
  tc_ndarray *e = tc_arena_alloc(a, (n ? n : 1) * sizeof *e);
  if (!e) {
    snprintf(why, cap, "out of memory");
    return -1;
  }
  *out = (tc_ndarray){.dtype = TC_DTYPE_SEQUENCE, .rank = 1, .data = e, .size = n * sizeof *e};
  out->dims[0] = (int64_t)n;
  for (size_t i = 0; i < n; i++)
    if (tensor_value(sp->tensor_values[i], a, &e[i], why, cap))
      return -1;
  out->dims[1] = n ? e[0].dtype : TC_DTYPE_F32;
  return 0;
}

static int read_value(const char *bytes, size_t len, const tc_type *t, tc_arena *a, tc_ndarray *out,
                      char *why, size_t cap) {
  int rc = -1;
  if (t->kind == TC_TYPE_SEQUENCE) {
    Onnx__SequenceProto *sp = onnx__sequence_proto__unpack(NULL, len, (const uint8_t *)bytes);
    rc = sp ? sequence_value(sp, a, out, why, cap) : -1;
    if (!sp)
      snprintf(why, cap, "not a SequenceProto");
    onnx__sequence_proto__free_unpacked(sp, NULL);
  } else if (t->kind == TC_TYPE_OPTIONAL) {
    Onnx__OptionalProto *op = onnx__optional_proto__unpack(NULL, len, (const uint8_t *)bytes);
    if (!op) {
      snprintf(why, cap, "not an OptionalProto");
    } else if (op->tensor_value) {
      rc = tensor_value(op->tensor_value, a, out, why, cap);
    } else if (op->sequence_value) {
      rc = sequence_value(op->sequence_value, a, out, why, cap);
    } else if (op->sparse_tensor_value || op->map_value || op->optional_value) {
      snprintf(why, cap, "an optional of a sparse tensor, map or optional");
    } else {
      *out = (tc_ndarray){.dtype = TC_DTYPE_NONE};
      rc = 0;
    }
    onnx__optional_proto__free_unpacked(op, NULL);
  } else {
    tc_rt_tensor rt;
    tc_diag d = {0};
    if (tc_rt_from_tensor_proto(bytes, len, a, &rt, NULL, &d)) {
      snprintf(why, cap, "%s", d.reason);
    } else {
      *out = (tc_ndarray){.dtype = rt.dtype, .rank = rt.rank, .data = rt.data, .size = rt.bytes};
      memcpy(out->dims, rt.dims, sizeof out->dims);
      rc = 0;
    }
  }
  return rc;
}

/* compare() over sequences and optionals too. */
static bool compare_value(const tc_ndarray *got, const tc_ndarray *want, size_t idx, char *why,
                          size_t cap) {
  if (got->dtype == TC_DTYPE_NONE || want->dtype == TC_DTYPE_NONE ||
      got->dtype == TC_DTYPE_SEQUENCE || want->dtype == TC_DTYPE_SEQUENCE) {
    if (got->dtype != want->dtype) {
      snprintf(why, cap, "output %zu: a %s, expected a %s", idx, tc_dtype_name(got->dtype),
               tc_dtype_name(want->dtype));
      return false;
    }
    if (got->dtype == TC_DTYPE_NONE)
      return true;
    if (got->dims[0] != want->dims[0]) {
      snprintf(why, cap, "output %zu: %lld elements, expected %lld", idx, (long long)got->dims[0],
               (long long)want->dims[0]);
      return false;
    }
    for (int64_t i = 0; i < got->dims[0]; i++)
      if (!compare_value(&((const tc_ndarray *)got->data)[i], &((const tc_ndarray *)want->data)[i],
                         idx, why, cap)) {
        size_t l = strlen(why);
        snprintf(why + l, cap - l, " (sequence element %lld)", (long long)i);
        return false;
      }
    return true;
  }
  tc_rt_tensor w = {.dtype = want->dtype, .rank = want->rank, .data = want->data, .bytes = want->size};
  memcpy(w.dims, want->dims, sizeof w.dims);
  return compare(got, &w, idx, why, cap);
}

/* Runs one data set; returns a status and fills why. */
static int run_set(tc_session *s, const tc_model *m, const char *dir, tc_arena *a, char *why,
                   size_t cap) {
  const tc_graph *g = m->graph;
  size_t n_in = 0;
  const char *names[64];
  tc_ndarray in[64];
  for (size_t i = 0; i < g->n_inputs && n_in < 64; i++) {
    const tc_value *v = g->inputs[i].value;
    if (v->init)
      continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/input_%zu.pb", dir, n_in);
    size_t len;
    char *bytes = read_file(path, &len);
    if (!bytes)
      break; /* optional inputs left out */
    char reason[256] = "";
    int rc = read_value(bytes, len, &v->type, a, &in[n_in], reason, sizeof reason);
    free(bytes);
    if (rc) {
      snprintf(why, cap, "input %zu: %s", n_in, reason);
      return UNSUPPORTED;
    }
    names[n_in] = v->name;
    n_in++;
  }
  /* Twice: the first run of a shape is unplanned and builds the memory plan
   * that the second one uses; both must give the expected outputs. */
  int status = PASS;
  for (int pass = 0; pass < 2 && status == PASS; pass++) {
    tc_ndarray *out = calloc(g->n_outputs + 1, sizeof *out);
    tc_diag d = {0};
    tc_status st = tc_session_run(s, n_in, names, in, out, &d);
    if (st) {
      snprintf(why, cap, "run %d: %s", pass + 1, tc_diag_message(&d));
      status = st == TC_STATUS_UNSUPPORTED ? UNSUPPORTED : FAIL;
    }
    for (size_t i = 0; status == PASS && i < g->n_outputs; i++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/output_%zu.pb", dir, i);
      size_t len;
      char *bytes = read_file(path, &len);
      tc_ndarray want;
      char reason[256] = "";
      if (!bytes || read_value(bytes, len, &g->outputs[i].value->type, a, &want, reason,
                               sizeof reason)) {
        snprintf(why, cap, "output %zu: expected data unreadable: %s", i, reason);
        status = UNSUPPORTED;
      } else if (!compare_value(&out[i], &want, i, why, cap)) {
        if (pass == 1) {
          size_t l = strlen(why);
          snprintf(why + l, cap - l, " (planned run)");
        }
        status = FAIL;
      }
      free(bytes);
    }
    for (size_t i = 0; !st && i < g->n_outputs; i++)
      tc_ndarray_release(&out[i]);
    free(out);
  }
  return status;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted subfolder names of dir starting with prefix. */
static char **list_dirs(const char *dir, const char *prefix, size_t *n) {
  DIR *d = opendir(dir);
  *n = 0;
  if (!d)
    return NULL;
  char **names = NULL;
  size_t cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)) != 0)
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 256;
      names = realloc(names, cap * sizeof *names);
    }
    names[(*n)++] = strdup(e->d_name);
  }
  closedir(d);
  if (*n)
    qsort(names, *n, sizeof *names, cmp_str);
  return names;
}

/* The child: runs test dir and writes "STATUS\tops\treason" to fd. */
static void child(const char *dir, int fd) {
  char why[1024] = "";
  char ops[1024] = "";
  int status = PASS;
  char path[4096];
  snprintf(path, sizeof path, "%s/model.onnx", dir);
  tc_diag *d = tc_diag_new();
  tc_model *m = NULL;
  tc_session *s = NULL;
  if (tc_model_load_file(path, NULL, &m, d)) {
    status = FAIL;
    snprintf(why, sizeof why, "load: %s", tc_diag_message(d));
  } else {
    size_t len = 0;
    for (const tc_node *n = m->graph->first; n; n = n->next) {
      char op[300];
      bool dflt = tc_domain_is_onnx(n->domain);
      snprintf(op, sizeof op, "%s%s%s", dflt ? "" : n->domain, dflt ? "" : ":", n->op_type);
      char key[310];
      snprintf(key, sizeof key, ",%s,", op);
      char padded[1030];
      snprintf(padded, sizeof padded, ",%s,", ops);
      if (!strstr(padded, key) && len + strlen(op) + 2 < sizeof ops)
        len += (size_t)snprintf(ops + len, sizeof ops - len, "%s%s", len ? "," : "", op);
    }
    tc_session_options so = {.target = target};
    if (tc_session_new_ex(m, &so, &s, d)) {
      status = tc_diag_status(d) == TC_STATUS_UNSUPPORTED ? UNSUPPORTED : FAIL;
      snprintf(why, sizeof why, "session: %s", tc_diag_message(d));
    }
  }
  size_t n_sets = 0;
  char **sets = s ? list_dirs(dir, "test_data_set_", &n_sets) : NULL;
  tc_arena *a = tc_arena_new();
  for (size_t i = 0; status == PASS && i < n_sets; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, sets[i]);
    status = run_set(s, m, path, a, why, sizeof why);
  }
  if (s && !n_sets && status == PASS) {
    status = FAIL;
    snprintf(why, sizeof why, "no test data sets");
  }
  for (char *p = why; *p; p++)
    if (*p == '\n' || *p == '\t')
      *p = ' ';
  dprintf(fd, "%d:%zu\t%s\t%s", status, tc_session_gpu_nodes(s), ops, why);
  exit(0);
}

static result run_test(const char *root, const char *name, int timeout) {
  result r = {.name = strdup(name), .status = CRASH, .ops = strdup(""), .reason = strdup("")};
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", root, name);
  int fds[2];
  if (pipe(fds) != 0)
    return r;
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    alarm((unsigned)timeout);
    child(dir, fds[1]);
  }
  close(fds[1]);
  char buf[4096];
  size_t n = 0;
  ssize_t got;
  while (n < sizeof buf - 1 && (got = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)got;
  buf[n] = '\0';
  close(fds[0]);
  int ws = 0;
  waitpid(pid, &ws, 0);
  if (WIFSIGNALED(ws)) {
    r.status = WTERMSIG(ws) == SIGALRM ? HANG : CRASH;
    free(r.reason);
    r.reason = strdup(WTERMSIG(ws) == SIGALRM ? "timed out" : strsignal(WTERMSIG(ws)));
    return r;
  }
  char *t1 = strchr(buf, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
  if (!t1 || !t2)
    return r;
  *t1 = *t2 = '\0';
  r.status = atoi(buf);
  r.gpu_nodes = strchr(buf, ':') ? atoi(strchr(buf, ':') + 1) : 0;
  free(r.ops);
  free(r.reason);
  r.ops = strdup(t1 + 1);
  r.reason = strdup(t2 + 1);
  return r;
}

static bool listed(char **names, size_t n, const char *name) {
  return n && bsearch(&name, names, n, sizeof *names, cmp_str) != NULL;
}

static char **read_list(const char *path, size_t *n) {
  *n = 0;
  size_t len;
  char *text = path ? read_file(path, &len) : NULL;
  if (!text)
    return NULL;
  char **names = calloc(len / 2 + 1, sizeof *names);
  char *save = NULL;
  text = realloc(text, len + 1);
  text[len] = '\0';
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
    if (*line && *line != '#')
      names[(*n)++] = line;
  qsort(names, *n, sizeof *names, cmp_str);
  return names;
}

typedef struct op_row {
  char *op;
  int total, passed;
} op_row;

static void write_ops_md(const char *path, result *rs, size_t n) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "conformance: cannot write %s\n", path);
    return;
  }
  op_row *rows = calloc(n * 4 + 1, sizeof *rows);
  size_t n_rows = 0;
  for (size_t i = 0; i < n; i++) {
    char *ops = strdup(rs[i].ops), *save = NULL;
    for (char *op = strtok_r(ops, ",", &save); op; op = strtok_r(NULL, ",", &save)) {
      size_t k = 0;
      while (k < n_rows && strcmp(rows[k].op, op) != 0)
        k++;
      if (k == n_rows) {
        rows[n_rows++] = (op_row){.op = strdup(op)};
      }
      rows[k].total++;
      rows[k].passed += rs[i].status == PASS;
    }
    free(ops);
  }
  int pass = 0;
  for (size_t i = 0; i < n; i++)
    pass += rs[i].status == PASS;
  fprintf(f, "# Operator coverage\n\n");
  fprintf(f, "Generated by `make ops-doc` from the conformance run of libtacort over the ONNX\n"
             "backend node tests of the pinned onnx package (tests/conformance/conformance.c):\n"
             "%d of %zu tests pass (%.1f%%).\n\n",
          pass, n, n ? 100.0 * pass / (double)n : 0.0);
  fprintf(f, "Every op of every domain loads, checks and round-trips through `tacoc optimize`\n"
             "losslessly; this table is about execution in libtacort. An op is *passing* when\n"
             "all the node tests that use it pass, *partial* when some do, *not passing* when\n"
             "it has a kernel but none of its tests pass (often because the test also uses\n"
             "another op without a kernel: see the reasons below), *unsupported* when no\n"
             "kernel exists.\n\n");
  fprintf(f, "| op | status | tests passing |\n|---|---|---|\n");
  for (size_t k = 0; k < n_rows; k++) {
    char *colon = strchr(rows[k].op, ':');
    const tc_kernel_def *def =
        colon ? (*colon = '\0', tc_kernel_find(colon + 1, rows[k].op, INT64_MAX))
              : tc_kernel_find(rows[k].op, "", INT64_MAX);
    if (colon)
      *colon = ':';
    const char *st = !def                            ? "unsupported"
                     : rows[k].passed == rows[k].total ? "passing"
                     : rows[k].passed                  ? "partial"
                                                       : "not passing";
    fprintf(f, "| %s | %s | %d / %d |\n", rows[k].op, st, rows[k].passed, rows[k].total);
  }
  fprintf(f, "\n## Tests that do not pass, with the reason\n\n");
  for (size_t i = 0; i < n; i++)
    if (rs[i].status != PASS)
      fprintf(f, "- `%s` (%s): %s %s\n", rs[i].name, rs[i].ops, status_names[rs[i].status],
              rs[i].reason);
  fclose(f);
  for (size_t k = 0; k < n_rows; k++)
    free(rows[k].op);
  free(rows);
}

int main(int argc, char **argv) {
  const char *filter = "", *expected = NULL, *write_expected = NULL, *ops_md = NULL, *root = NULL;
  int timeout = 20;
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--filter") && i + 1 < argc)
      filter = argv[++i];
    else if (!strcmp(argv[i], "--expected") && i + 1 < argc)
      expected = argv[++i];
    else if (!strcmp(argv[i], "--write-expected") && i + 1 < argc)
      write_expected = argv[++i];
    else if (!strcmp(argv[i], "--ops-md") && i + 1 < argc)
      ops_md = argv[++i];
    else if (!strcmp(argv[i], "--target") && i + 1 < argc && (!strcmp(argv[i + 1], "cpu") ||
                                                              !strcmp(argv[i + 1], "cuda")))
      target = !strcmp(argv[++i], "cuda") ? TC_TARGET_CUDA : TC_TARGET_CPU;
    else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
      timeout = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-v"))
      verbose = true;
    else
      root = argv[i];
  }
  if (!root) {
    fprintf(stderr, "usage: conformance [--filter S] [--expected FILE] [--write-expected FILE] "
                    "[--ops-md FILE] [--timeout SEC] [--target cpu|cuda] [-v] DIR\n");
    return 2;
  }
  size_t n_tests;
  char **tests = list_dirs(root, "test_", &n_tests);
  size_t n_exp;
  char **exp = read_list(expected, &n_exp);
  result *rs = calloc(n_tests + 1, sizeof *rs);
  int counts[N_STATUS] = {0}, regressions = 0, shown = 0, on_gpu = 0, passed_on_gpu = 0;
  for (size_t i = 0; i < n_tests; i++) {
    if (!strstr(tests[i], filter))
      continue;
    result r = run_test(root, tests[i], timeout);
    rs[shown++] = r;
    counts[r.status]++;
    on_gpu += r.gpu_nodes > 0;
    passed_on_gpu += r.gpu_nodes > 0 && r.status == PASS;
    bool regressed = r.status == CRASH || r.status == HANG ||
                     (r.status != PASS && listed(exp, n_exp, r.name));
    regressions += regressed;
    if (verbose || regressed || (*filter && r.status != PASS) || (*filter && r.status == PASS))
      printf("%s%s %s [%s] %s\n", regressed ? "REGRESSION " : "", status_names[r.status], r.name,
             r.ops, r.reason);
  }
  int total = shown;
  printf("conformance: %d of %d node tests pass (%.1f%%); %d wrong or failing at run time, %d "
         "unsupported, %d crashes, %d hangs\n",
         counts[PASS], total, total ? 100.0 * counts[PASS] / total : 0.0, counts[FAIL],
         counts[UNSUPPORTED], counts[CRASH], counts[HANG]);
  if (target == TC_TARGET_CUDA)
    printf("conformance: %d tests placed nodes on the GPU, %d of them pass\n", on_gpu,
           passed_on_gpu);
  if (write_expected) {
    FILE *f = fopen(write_expected, "w");
    if (f) {
      fprintf(f, "# Node tests that pass and must keep passing (tests/conformance/conformance.c).\n");
      for (int i = 0; i < shown; i++)
        if (rs[i].status == PASS)
          fprintf(f, "%s\n", rs[i].name);
      fclose(f);
    }
  }
  if (ops_md)
    write_ops_md(ops_md, rs, (size_t)shown);
  printf("conformance: %d passed, %d failed\n", counts[PASS], regressions);
  return regressions ? 1 : 0;
}
