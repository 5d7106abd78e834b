/* `tacoc run MODEL [--input NAME=FILE]... [--random-inputs] [--output-dir DIR]`:
 * runs a model in libtacort. `--repeat N` then times N more runs (the first
 * is the warm-up) and prints the median, min and max latency. `--threads N`
 * caps the threads kernels use (default: all cores). FILE is .npy or a serialized TensorProto
 * (.pb). Outputs are summarized on stdout and, with --output-dir, written as DIR/<output name>.npy
 * (characters other than letters, digits, '.', '-' and
 * '_' become '_'). `--allow-native-code` runs the generated kernels of a
 * model optimized with --codegen cpu (or --target cuda). `--target cuda`
 * runs on GPU `--device N` (default 0) through libtacort's CUDA backend;
 * `--cuda-gemm-search N` measures up to N cuBLASLt algorithms per GEMM shape
 * on first use and keeps the fastest. `--profile` prints where
 * the time went: per op type and the slowest nodes (`--profile-nodes N` of them, 0: all; it
 * implies --profile), over the timed runs (or the single run without --repeat). */
#include "run.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "exec.h"
#include "inputs.h"
#include "kernel.h"
#include "npy.h"

#define MAX_INPUTS 256

static void summarize(const char *name, const tc_ndarray *o) {
  if (o->dtype == TC_DTYPE_NONE) {
    printf("%s: empty optional\n", name);
    return;
  }
  if (o->dtype == TC_DTYPE_SEQUENCE) {
    printf("%s: sequence of %lld %s tensors\n", name, (long long)o->dims[0],
           tc_dtype_name((int32_t)o->dims[1]));
    for (int64_t i = 0; i < o->dims[0]; i++) {
      char item[300];
      snprintf(item, sizeof item, "  %s[%lld]", name, (long long)i);
      summarize(item, &((const tc_ndarray *)o->data)[i]);
    }
    return;
  }
  tc_rt_tensor t = {.dtype = o->dtype, .rank = o->rank, .data = o->data, .bytes = o->size};
  memcpy(t.dims, o->dims, sizeof t.dims);
  size_t n = tc_rt_numel(&t);
  printf("%s: %s [", name, tc_dtype_name(o->dtype));
  for (size_t i = 0; i < o->rank; i++)
    printf("%s%lld", i ? ", " : "", (long long)o->dims[i]);
  printf("]");
  if (o->dtype == TC_DTYPE_STRING) {
    printf(" values [");
    for (size_t i = 0; i < n && i < 6; i++)
      printf("%s\"%.40s\"", i ? ", " : "", ((char *const *)o->data)[i]);
    printf("%s]\n", n > 6 ? ", ..." : "");
    return;
  }
  double lo = INFINITY, hi = -INFINITY, sum = 0;
  for (size_t i = 0; i < n; i++) {
    double v = tc_rt_get_f64(&t, i);
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    sum += v;
  }
  printf(" values [");
  for (size_t i = 0; i < n && i < 6; i++)
    printf("%s%.6g", i ? ", " : "", tc_rt_get_f64(&t, i));
  printf("%s]", n > 6 ? ", ..." : "");
  if (n)
    printf(" min %.6g max %.6g mean %.6g", lo, hi, sum / (double)n);
  printf("\n");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Times `repeat` more runs (the run already done is the warm-up) and prints
 * the median, min and max latency. */
static int time_runs(tc_session *s, size_t n_in, const char **names, const tc_ndarray *inputs,
                     size_t n_out, long repeat, tc_diag *d) {
  double *ms = calloc((size_t)repeat, sizeof *ms);
  tc_ndarray *outs = calloc(n_out + 1, sizeof *outs);
  int rc = !ms || !outs;
  for (long r = 0; !rc && r < repeat; r++) {
    double t0 = tc_cli_now_ms();
    rc = tc_session_run(s, n_in, names, inputs, outs, d) != TC_STATUS_OK;
    ms[r] = tc_cli_now_ms() - t0;
    for (size_t i = 0; !rc && i < n_out; i++)
      tc_ndarray_release(&outs[i]);
  }
  if (!rc) {
    qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
    printf("latency: median %.3f ms, min %.3f, max %.3f over %ld runs\n", ms[repeat / 2], ms[0],
           ms[repeat - 1], repeat);
  }
  free(ms);
  free(outs);
  return rc;
}

typedef struct op_total {
  const char *op;
  int64_t ns, calls, nodes;
} op_total;

static int cmp_entry_ns(const void *a, const void *b) {
  int64_t x = ((const tc_profile_entry *)a)->ns, y = ((const tc_profile_entry *)b)->ns;
  return (x < y) - (x > y);
}
static int cmp_total_ns(const void *a, const void *b) {
  int64_t x = ((const op_total *)a)->ns, y = ((const op_total *)b)->ns;
  return (x < y) - (x > y);
}

/* Prints the session's profile: time per op type, then the `top` slowest
 * nodes (0: all). runs is the number of runs profiled (times are per run). */
static void print_profile(const tc_session *s, long runs, long top) {
  size_t n = tc_session_profile(s, NULL, 0);
  tc_profile_entry *e = calloc(n + 1, sizeof *e);
  op_total *t = calloc(n + 1, sizeof *t);
  if (!e || !t) {
    free(e);
    free(t);
    return;
  }
  tc_session_profile(s, e, n);
  size_t n_t = 0;
  int64_t all = 0;
  for (size_t i = 0; i < n; i++) {
    size_t k = 0;
    while (k < n_t && strcmp(t[k].op, e[i].op_type))
      k++;
    if (k == n_t)
      t[n_t++] = (op_total){.op = e[i].op_type};
    t[k].ns += e[i].ns;
    t[k].calls += e[i].calls;
    t[k].nodes++;
    all += e[i].ns;
  }
  qsort(t, n_t, sizeof *t, cmp_total_ns);
  qsort(e, n, sizeof *e, cmp_entry_ns);
  double per = runs > 0 ? (double)runs : 1.0;
  printf("profile: %.3f ms per run in kernels, over %ld run%s\n", (double)all / 1e6 / per, runs,
         runs == 1 ? "" : "s");
  printf("  %-28s %6s %10s %7s\n", "op type", "nodes", "ms/run", "share");
  for (size_t k = 0; k < n_t; k++)
    printf("  %-28s %6lld %10.3f %6.1f%%\n", t[k].op, (long long)t[k].nodes,
           (double)t[k].ns / 1e6 / per, all ? 100.0 * (double)t[k].ns / (double)all : 0.0);
  printf("  slowest nodes:\n");
  for (size_t i = 0; i < n && (top == 0 || i < (size_t)top);
       i++) { /* an unnamed node by its output: "-> y" */
    char who[256];
    snprintf(who, sizeof who, "%s%s", e[i].node[0] ? e[i].node : "-> ",
             e[i].node[0] ? "" : e[i].output);
    printf("  %-40s %-20s %10.3f ms/run\n", who, e[i].op_type, (double)e[i].ns / 1e6 / per);
  }
  size_t prims, wbytes;
  tc_dnnl_conv_cache_stats(&prims, &wbytes);
  printf("  oneDNN primitives cached: %zu, weights packed for them: %.2f MiB\n", prims,
         (double)wbytes / (1 << 20));
  free(e);
  free(t);
}

int tc_cmd_run(int argc, char **argv) {
  const char *model = NULL, *out_dir = NULL;
  const char *names[MAX_INPUTS];
  tc_ndarray inputs[MAX_INPUTS];
  size_t n_in = 0;
  bool random_inputs = false, profile = false, native = false;
  long profile_nodes = 10;
  int target = TC_TARGET_CPU, device = 0, gemm_search = 0;
  long repeat = 0;
  int rc = 2;
  tc_model *m = NULL;
  tc_session *s = NULL;
  tc_ndarray *outs = NULL;
  tc_diag *d = tc_diag_new();
  char why[512];
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--input") && i + 1 < argc) {
      char *spec = argv[++i], *eq = strchr(spec, '=');
      if (!eq || eq == spec || n_in == MAX_INPUTS) {
        rc = tc_cli_error("--input needs NAME=FILE, got '%s'", spec);
        goto done;
      }
      *eq = '\0';
      if (tc_input_load(eq + 1, &inputs[n_in], why, sizeof why)) {
        rc = tc_cli_error("%s: %s", eq + 1, why);
        goto done;
      }
      names[n_in++] = spec;
    } else if (!strcmp(argv[i], "--random-inputs")) {
      random_inputs = true;
    } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
      long t = strtol(argv[++i], NULL, 10);
      if (t < 1 || t > 1024) {
        rc = tc_cli_error("--threads needs a count from 1 to 1024, got '%s'", argv[i]);
        goto done;
      }
      tc_set_num_threads((int)t);
    } else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
      repeat = strtol(argv[++i], NULL, 10);
      if (repeat < 1 || repeat > 1000000) {
        rc = tc_cli_error("--repeat needs a count from 1 to 1000000, got '%s'", argv[i]);
        goto done;
      }
    } else if (!strcmp(argv[i], "--profile")) {
      profile = true;
    } else if (!strcmp(argv[i], "--profile-nodes") && i + 1 < argc) {
      char *end;
      profile_nodes = strtol(argv[++i], &end, 10);
      if (*end || end == argv[i] || profile_nodes < 0 || profile_nodes > 1000000) {
        rc = tc_cli_error("--profile-nodes needs a count of nodes (0: all), got '%s'", argv[i]);
        goto done;
      }
      profile = true;
    } else if (!strcmp(argv[i], "--allow-native-code")) {
      native = true;
    } else if (!strcmp(argv[i], "--target") && i + 1 < argc) {
      const char *t = argv[++i];
      if (strcmp(t, "cpu") && strcmp(t, "cuda")) {
        rc = tc_cli_error("--target takes cpu or cuda, got '%s'", t);
        goto done;
      }
      target = !strcmp(t, "cuda") ? TC_TARGET_CUDA : TC_TARGET_CPU;
    } else if (!strcmp(argv[i], "--cuda-gemm-search") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || end == argv[i] || v < 0 || v > 32) {
        rc = tc_cli_error("--cuda-gemm-search needs a count of candidates from 0 to 32, got '%s'",
                          argv[i]);
        goto done;
      }
      gemm_search = (int)v;
    } else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
      char *end;
      long dv = strtol(argv[++i], &end, 10);
      if (*end || end == argv[i] || dv < 0 || dv > 1024) {
        rc = tc_cli_error("--device needs a GPU number from 0, got '%s'", argv[i]);
        goto done;
      }
      device = (int)dv;
    } else if (!strcmp(argv[i], "--output-dir") && i + 1 < argc) {
      out_dir = argv[++i];
    } else if (argv[i][0] == '-' || model) {
      rc = tc_cli_error("run: unexpected argument '%s'", argv[i]);
      goto done;
    } else {
      model = argv[i];
    }
  }
  if (!model) {
    rc = tc_cli_error("run: no model given");
    goto done;
  }
  tc_session_options so = {.allow_native_code = native,
                           .target = target,
                           .device = device,
                           .cuda_gemm_search = gemm_search};
  if (tc_model_load_file(model, NULL, &m, d) || tc_session_new_ex(m, &so, &s, d)) {
    rc = tc_cli_error("%s", tc_diag_message(d));
    goto done;
  }
  if (tc_session_native_note(s)[0])
    fprintf(stderr, "tacoc: warning: %s; running libtacort's own kernels\n",
            tc_session_native_note(s));
  if (native && target == TC_TARGET_CPU)
    fprintf(stderr, "tacoc: %zu nodes run generated kernels\n", tc_session_native_nodes(s));
  if (target == TC_TARGET_CUDA)
    fprintf(stderr, "tacoc: running on %s: %zu nodes placed on the GPU\n", tc_session_device(s),
            tc_session_gpu_nodes(s));
  if (tc_session_qdq_nodes(s))
    fprintf(stderr, "tacoc: %zu QDQ MatMuls and convolutions run as int8 kernels\n",
            tc_session_qdq_nodes(s));
  if (tc_session_qdq_adds(s) || tc_session_qdq_concats(s) || tc_session_qdq_fused(s))
    fprintf(stderr,
            "tacoc: %zu QDQ Adds and %zu Concats run as int8 kernels; %zu QuantizeLinear nodes "
            "run inside the int8 kernel before them\n",
            tc_session_qdq_adds(s), tc_session_qdq_concats(s), tc_session_qdq_fused(s));
  if (tc_session_qdq_pools(s))
    fprintf(stderr, "tacoc: %zu QDQ MaxPools run on 8-bit values\n", tc_session_qdq_pools(s));
  const char *tuned = tc_model_meta(m, TC_THREADS_KEY);
  if (tuned)
    fprintf(stderr, "tacoc: %d threads (the model's tuned count %s: %s)\n", tc_session_threads(s),
            tuned,
            tc_threads_explicit()                  ? "--threads given instead"
            : tc_session_threads(s) == atoi(tuned) ? "applied"
                                                   : "not for this core count");
  size_t packed, algos = tc_session_algo_nodes(s, &packed);
  if (algos)
    fprintf(stderr,
            "tacoc: %zu nodes run the model's tuned algorithms (%zu MatMuls on packed weights)\n",
            algos, packed);
  if (tc_session_precomputed_nodes(s))
    fprintf(stderr, "tacoc: %zu nodes with constant inputs computed once at load\n",
            tc_session_precomputed_nodes(s));
  if (tc_session_static_plan_bytes(s))
    fprintf(stderr, "tacoc: memory planned at load from the input shapes: %.1f MiB\n",
            (double)tc_session_static_plan_bytes(s) / (1 << 20));
  if (tc_session_channels_last_values(s))
    fprintf(stderr, "tacoc: %zu values between convolutions kept channels-last\n",
            tc_session_channels_last_values(s));
  tc_diag_clear(d); /* run errors name the model once, below */
  uint64_t state = TC_INPUT_SEED;
  for (size_t i = 0; i < m->graph->n_inputs; i++) {
    const tc_value *v = m->graph->inputs[i].value;
    bool given = false;
    for (size_t k = 0; k < n_in; k++)
      given |= strcmp(names[k], v->name) == 0;
    if (given || v->init)
      continue;
    if (!random_inputs) {
      rc = tc_cli_error("%s: input '%s' is not given (use --input NAME=FILE or --random-inputs)",
                        model, v->name);
      goto done;
    }
    if (n_in == MAX_INPUTS || tc_input_random(v, &state, &inputs[n_in], why, sizeof why)) {
      rc = tc_cli_error("input '%s': %s", v->name, why);
      goto done;
    }
    names[n_in++] = v->name;
  }
  size_t n_out = tc_model_num_outputs(m);
  outs = calloc(n_out + 1, sizeof *outs);
  if (profile && !repeat)
    tc_session_set_profiling(s, 1);
  if (!outs || tc_session_run(s, n_in, names, inputs, outs, d)) {
    rc = tc_cli_error("%s: %s", model, outs ? tc_diag_message(d) : "out of memory");
    goto done;
  }
  if (profile && repeat)
    tc_session_set_profiling(s, 1);
  if (repeat && time_runs(s, n_in, names, inputs, n_out, repeat, d)) {
    rc = tc_cli_error("%s: %s", model, tc_diag_message(d));
    goto done;
  }
  if (profile)
    print_profile(s, repeat ? repeat : 1, profile_nodes);
  if (gemm_search && target == TC_TARGET_CUDA) {
    size_t shapes;
    double chosen, first;
    tc_session_gpu_gemm_search(s, &shapes, &chosen, &first);
    fprintf(stderr,
            "tacoc: cuBLASLt search: %zu GEMM shapes measured; chosen algorithms %.1f us, "
            "cuBLASLt's first choices %.1f us (sums of medians)\n",
            shapes, chosen, first);
  }
  if (out_dir && mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
    rc = tc_cli_error("%s: cannot create the output folder", out_dir);
    goto done;
  }
  rc = 0;
  for (size_t i = 0; i < n_out; i++) {
    const char *name = tc_model_output_name(m, i);
    summarize(name, &outs[i]);
    if (!out_dir)
      continue;
    /* a sequence: one file per element, <name>.<index>.npy; an empty optional: none */
    bool seq = outs[i].dtype == TC_DTYPE_SEQUENCE;
    for (int64_t e = 0; outs[i].dtype != TC_DTYPE_NONE && e < (seq ? outs[i].dims[0] : 1); e++) {
      char path[4096], suffix[32];
      snprintf(suffix, sizeof suffix, seq ? ".%lld.npy" : ".npy", (long long)e);
      tc_input_file_path(out_dir, name, suffix, path, sizeof path);
      const tc_ndarray *t = seq ? &((const tc_ndarray *)outs[i].data)[e] : &outs[i];
      if (tc_npy_write(path, t, why, sizeof why))
        rc = tc_cli_error("%s: %s", path, why);
    }
  }
done:
  for (size_t i = 0; outs && m && i < tc_model_num_outputs(m); i++)
    tc_ndarray_release(&outs[i]);
  free(outs);
  for (size_t i = 0; i < n_in; i++)
    tc_ndarray_release(&inputs[i]);
  tc_session_free(s);
  tc_model_free(m);
  tc_diag_free(d);
  return rc;
}
