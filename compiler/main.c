/* tacoc: the command-line driver. Only this file decides exit codes:
 * 0 success, 2 any error (bad usage, unreadable or invalid model, failed write). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inspect.h"
#include "ir.h"
#include "onnx_io.h"
#include "run.h"

#define EXIT_ERROR 2

static const char usage_text[] =
    "usage: tacoc <command> [options]\n"
    "\n"
    "commands:\n"
    "  optimize MODEL -o OUT [-O0] [--external-data[=FILE]] [--external-data-threshold BYTES]\n"
    "      Read MODEL, run the optimization pipeline and write OUT (ONNX).\n"
    "      -O0 runs no pass (a lossless rewrite of the model); higher levels\n"
    "      arrive with the pass pipeline.\n"
    "      --external-data[=FILE]  store tensors of at least BYTES (default 1024)\n"
    "                              in FILE beside OUT (default OUT's name + .data)\n"
    "  inspect MODEL [--json]\n"
    "      Summarize a model: producer, IR version, opsets, inputs and outputs,\n"
    "      op histogram, parameters, external data, functions.\n"
    "  run MODEL [--input NAME=FILE]... [--random-inputs] [--output-dir DIR] [--repeat N]\n"
    "      [--threads N]\n"
    "      Run a model in libtacort. FILE is .npy or a serialized TensorProto (.pb).\n"
    "      Prints each output's dtype, shape, first values, min/max/mean; with\n"
    "      --output-dir writes DIR/<output name>.npy; --repeat N times N more runs.\n"
    "  version\n";

static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("tacoc: error: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see 'tacoc help')\n", stderr);
  va_end(ap);
  return EXIT_ERROR;
}

static int report(tc_diag *d) {
  fprintf(stderr, "tacoc: error: %s\n", tc_diag_message(d));
  return EXIT_ERROR;
}

static tc_model *load(const char *path, tc_diag *d) {
  tc_model *m = NULL;
  if (tc_model_load_file(path, NULL, &m, d) != TC_STATUS_OK) {
    report(d);
    return NULL;
  }
  return m;
}

static bool parse_size(const char *s, size_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-')
    return false;
  *out = (size_t)v;
  return true;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int cmd_optimize(int argc, char **argv) {
  const char *in = NULL, *out = NULL;
  int level = 0;
  tc_save_options save = {0};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) {
      if (++i >= argc)
        return usage_error("%s needs a file name", a);
      out = argv[i];
    } else if (strncmp(a, "-O", 2) == 0 && a[2] >= '0' && a[2] <= '3' && !a[3]) {
      level = a[2] - '0';
    } else if (strcmp(a, "--external-data") == 0) {
      /* The file name is optional: take the next word unless it is an option or a model. */
      save.external_data = "";
      if (i + 1 < argc && argv[i + 1][0] != '-' && !ends_with(argv[i + 1], ".onnx"))
        save.external_data = argv[++i];
    } else if (strncmp(a, "--external-data=", 16) == 0) {
      save.external_data = a + 16;
    } else if (strcmp(a, "--external-data-threshold") == 0) {
      if (++i >= argc || !parse_size(argv[i], &save.external_threshold))
        return usage_error("--external-data-threshold needs a size in bytes");
    } else if (a[0] == '-' && a[1]) {
      return usage_error("optimize: unknown option '%s'", a);
    } else if (!in) {
      in = a;
    } else {
      return usage_error("optimize: more than one model given ('%s' and '%s')", in, a);
    }
  }
  if (!in)
    return usage_error("optimize: no model given");
  if (!out)
    return usage_error("optimize: no output given (-o OUT)");
  if (level != 0)
    return usage_error("optimize: -O%d is not available yet; only -O0 (no passes) is", level);

  tc_diag *d = tc_diag_new();
  if (!d)
    return usage_error("out of memory");
  int rc = EXIT_ERROR;
  tc_model *m = load(in, d);
  if (m) {
    tc_diag_clear(d);
    rc = tc_model_save_file(m, out, &save, d) == TC_STATUS_OK ? 0 : report(d);
  }
  tc_model_free(m);
  tc_diag_free(d);
  return rc;
}

static int cmd_inspect(int argc, char **argv) {
  const char *in = NULL;
  bool json = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (argv[i][0] == '-' && argv[i][1])
      return usage_error("inspect: unknown option '%s'", argv[i]);
    else if (!in)
      in = argv[i];
    else
      return usage_error("inspect: more than one model given");
  }
  if (!in)
    return usage_error("inspect: no model given");
  tc_diag *d = tc_diag_new();
  if (!d)
    return usage_error("out of memory");
  int rc = EXIT_ERROR;
  tc_model *m = load(in, d);
  if (m) {
    rc = tc_inspect_write(m, in, json, stdout) == 0 ? 0 : usage_error("%s: out of memory", in);
    if (fflush(stdout) != 0)
      rc = usage_error("writing the summary: %s", strerror(errno));
  }
  tc_model_free(m);
  tc_diag_free(d);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return usage_error("no command given");
  const char *cmd = argv[1];
  if (strcmp(cmd, "optimize") == 0)
    return cmd_optimize(argc - 2, argv + 2);
  if (strcmp(cmd, "run") == 0)
    return tc_cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "inspect") == 0)
    return cmd_inspect(argc - 2, argv + 2);
  if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
    printf("tacoc %s\n", tc_version());
    return 0;
  }
  if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
    fputs(usage_text, stdout);
    return 0;
  }
  return usage_error("unknown command '%s'", cmd);
}
