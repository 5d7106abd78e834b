/* `tacoc bench --runtime ort`: runs the models in ONNX Runtime through
 * tools/ort_runner.py, started as `.venv/bin/python tools/ort_runner.py` in a
 * child process (tacoc links no Python). The protocol:
 *
 *   tacoc writes    TMP/in_<i>.npy (the inputs at this batch)
 *   tacoc runs      python ort_runner.py --out TMP --warmup W (--iters N | --time S)
 *                     [--threads T] [--batch B --batch-input NAME]...
 *                     --input NAME TMP/in_<i>.npy ... -- MODEL...
 *   the helper      writes TMP/result.txt, lines of
 *                     "tacoc-ort-runner 1" / "onnxruntime VERSION" /
 *                     "peak K BYTES" / "output K J NAME" / "latency K MS MS ..."
 *                   and TMP/m<K>_o<J>.npy (model K's outputs of its first run),
 *                   exit 0; or an error line on stderr and a non-zero exit.
 *
 * Where the helper lives: $TACOC_ORT_RUNNER, else tools/ort_runner.py of the
 * checkout tacoc was built in (two folders above the binary), else of the
 * current folder; the Python is $TACOC_ORT_PYTHON, else .venv/bin/python
 * beside that tools/ folder. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_priv.h"
#include "cli.h"
#include "npy.h"

extern char **environ;

#define RUNNER_REL "tools/ort_runner.py"
#define TMP_MAX_LEN 1024 /* the temporary folder's path */

static bool is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Finds the helper and its Python; prints the error and returns -1 if missing. */
static int find_runner(char *runner, char *python, size_t cap) {
  const char *env_runner = getenv("TACOC_ORT_RUNNER"), *env_python = getenv("TACOC_ORT_PYTHON");
  char root[PATH_MAX] = "";
  if (env_runner && *env_runner) {
    snprintf(runner, cap, "%s", env_runner);
  } else {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    runner[0] = '\0';
    if (n > 0) {
      exe[n] = '\0';
      snprintf(root, sizeof root, "%s/../..", dirname(exe)); /* BUILD/bin/tacoc */
      snprintf(runner, cap, "%s/%s", root, RUNNER_REL);
    }
    if (!runner[0] || !is_file(runner)) {
      snprintf(root, sizeof root, ".");
      snprintf(runner, cap, "%s", RUNNER_REL);
    }
  }
  if (!is_file(runner)) {
    tc_cli_error("--runtime ort: the ONNX Runtime helper %s is missing (set TACOC_ORT_RUNNER, or "
                 "run tacoc from its checkout)",
                 runner);
    return -1;
  }
  if (env_python && *env_python) {
    snprintf(python, cap, "%s", env_python);
  } else {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", runner);
    snprintf(python, cap, "%s/../.venv/bin/python", dirname(dir));
  }
  if (access(python, X_OK) != 0) {
    tc_cli_error("--runtime ort: ONNX Runtime runs through %s, which is missing (run 'make deps' "
                 "to create .venv)",
                 python);
    return -1;
  }
  return 0;
}

static void remove_tree(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < (int)sizeof path)
          remove(path);
      }
    closedir(d);
  }
  rmdir(dir);
}

/* The last non-empty line of a file, for the helper's error. */
static void last_line(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  char line[1024];
  buf[0] = '\0';
  while (f && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0])
      snprintf(buf, cap, "%s", line);
  }
  if (f)
    fclose(f);
  if (!buf[0])
    snprintf(buf, cap, "no message");
}

typedef struct argv_buf {
  char *v[4 * TC_BENCH_MAX_INPUTS + 3 * TC_BENCH_MAX_INPUTS + TC_BENCH_MAX_MODELS + 32];
  size_t n;
  char store[64][64]; /* numbers */
  size_t n_store;
} argv_buf;

static void arg(argv_buf *a, const char *s) { a->v[a->n++] = (char *)s; }

static const char *num(argv_buf *a, const char *fmt, double v) {
  char *s = a->store[a->n_store++];
  snprintf(s, 64, fmt, v);
  return s;
}

/* Reads TMP/result.txt and the outputs into rows. */
static int read_results(tc_bench *b, const char *tmp, tc_bench_row *rows) {
  char path[TMP_MAX_LEN + 64], why[512];
  snprintf(path, sizeof path, "%s/result.txt", tmp);
  FILE *f = fopen(path, "r");
  if (!f)
    return tc_cli_error("--runtime ort: the helper wrote no results");
  char *line = NULL;
  size_t cap = 0;
  int rc = 0;
  size_t n = b->o.n_models;
  bool header = false;
  while (!rc && getline(&line, &cap, f) > 0) {
    line[strcspn(line, "\r\n")] = '\0';
    unsigned long k, j;
    long long bytes;
    int used = 0;
    if (strncmp(line, "tacoc-ort-runner 1", 18) == 0) {
      header = true;
    } else if (sscanf(line, "onnxruntime %63s", b->ort_version) == 1) {
      continue;
    } else if (sscanf(line, "peak %lu %lld", &k, &bytes) == 2 && k < n) {
      rows[k].peak_bytes = bytes;
    } else if (sscanf(line, "output %lu %lu %n", &k, &j, &used) == 2 && used > 0 && k < n &&
               j == rows[k].n_out) {
      tc_bench_row *row = &rows[k];
      char **names = realloc(row->out_names, (j + 1) * sizeof *names);
      tc_ndarray *outs = names ? realloc(row->outs, (j + 1) * sizeof *outs) : NULL;
      if (names)
        row->out_names = names;
      if (outs)
        row->outs = outs;
      if (!names || !outs || !(names[j] = strdup(line + used))) {
        rc = tc_cli_error("out of memory");
        break;
      }
      memset(&outs[j], 0, sizeof outs[j]);
      row->n_out++;
      snprintf(path, sizeof path, "%s/m%lu_o%lu.npy", tmp, k, j);
      if (tc_npy_read(path, &outs[j], why, sizeof why))
        rc = tc_cli_error("--runtime ort: output '%s' of %s: %s", names[j], b->o.models[k], why);
    } else if (sscanf(line, "latency %lu %n", &k, &used) == 1 && used > 0 && k < n) {
      for (char *p = line + used, *end; *p; p = end) {
        double ms = strtod(p, &end);
        if (end == p)
          break;
        if (tc_bench_row_add(&rows[k], ms)) {
          rc = tc_cli_error("out of memory");
          break;
        }
      }
    } else {
      rc = tc_cli_error("--runtime ort: unexpected line from the helper: %.200s", line);
    }
  }
  free(line);
  fclose(f);
  if (!rc && !header)
    rc = tc_cli_error("--runtime ort: the helper's results have no 'tacoc-ort-runner 1' header");
  for (size_t k = 0; !rc && k < n; k++)
    if (!rows[k].n_lat)
      rc = tc_cli_error("--runtime ort: no latencies for %s", b->o.models[k]);
  return rc ? -1 : 0;
}

int tc_bench_ort_check(void) {
  char runner[PATH_MAX], python[PATH_MAX];
  return find_runner(runner, python, sizeof runner);
}

int tc_bench_run_ort(tc_bench *b, const tc_bench_batch *bb, tc_bench_row *rows,
                     const char *const *names, const tc_ndarray *arrays) {
  char runner[PATH_MAX], python[PATH_MAX], tmp[TMP_MAX_LEN], why[512];
  if (find_runner(runner, python, sizeof runner))
    return -1;
  const char *tmpdir = getenv("TMPDIR");
  int len = snprintf(tmp, sizeof tmp, "%s/tacoc-bench-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
  if (len >= (int)sizeof tmp)
    errno = ENAMETOOLONG;
  if (len >= (int)sizeof tmp || !mkdtemp(tmp)) {
    tc_cli_error("cannot create a temporary folder in %s: %s", tmpdir && *tmpdir ? tmpdir : "/tmp",
                 strerror(errno));
    return -1;
  }
  int rc = -1;
  argv_buf *a = calloc(1, sizeof *a);
  char(*files)[TMP_MAX_LEN + 32] = calloc(b->n_inputs + 1, sizeof *files);
  if (!a || !files) {
    tc_cli_error("out of memory");
    goto done;
  }
  arg(a, python);
  arg(a, runner);
  arg(a, "--out");
  arg(a, tmp);
  arg(a, "--warmup");
  arg(a, num(a, "%.0f", (double)b->o.warmup));
  if (b->o.time_s > 0) {
    arg(a, "--time");
    arg(a, num(a, "%.17g", b->o.time_s));
  } else {
    arg(a, "--iters");
    arg(a, num(a, "%.0f", (double)b->o.iters));
  }
  if (b->o.threads) {
    arg(a, "--threads");
    arg(a, num(a, "%.0f", b->o.threads));
  }
  if (b->o.n_batches) {
    arg(a, "--batch");
    arg(a, num(a, "%.0f", (double)bb->batch));
  }
  for (size_t i = 0; i < b->n_inputs; i++) {
    if (b->o.n_batches && b->inputs[i].batch) {
      arg(a, "--batch-input");
      arg(a, names[i]);
    }
    snprintf(files[i], sizeof files[i], "%s/in_%zu.npy", tmp, i);
    if (tc_npy_write(files[i], &arrays[i], why, sizeof why)) {
      tc_cli_error("%s: %s", files[i], why);
      goto done;
    }
    arg(a, "--input");
    arg(a, names[i]);
    arg(a, files[i]);
  }
  arg(a, "--");
  for (size_t k = 0; k < b->o.n_models; k++)
    arg(a, b->o.models[k]);
  a->v[a->n] = NULL;

  char log[TMP_MAX_LEN + 16];
  snprintf(log, sizeof log, "%s/log.txt", tmp);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid;
  int err = posix_spawn(&pid, python, &fa, NULL, a->v, environ);
  posix_spawn_file_actions_destroy(&fa);
  if (err) {
    tc_cli_error("--runtime ort: cannot start %s: %s", python, strerror(err));
    goto done;
  }
  int status;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char msg[1024];
    last_line(log, msg, sizeof msg);
    if (WIFEXITED(status))
      tc_cli_error("--runtime ort: %s", msg);
    else
      tc_cli_error("--runtime ort: the helper was killed by signal %d", WTERMSIG(status));
    goto done;
  }
  rc = read_results(b, tmp, rows);
done:
  free(a);
  free(files);
  remove_tree(tmp);
  return rc;
}
