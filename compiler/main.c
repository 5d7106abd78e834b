/* tacoc: the command-line driver. Only this file decides exit codes:
 * 0 success, 2 any error (bad usage, unreadable or invalid model, failed write);
 * bench also exits 1 when a CI gate fails. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "inspect.h"
#include "ir.h"
#include "onnx_io.h"
#include "optimize.h"
#include "run.h"

static const char usage_text[] =
    "usage: tacoc <command> [options]\n"
    "\n"
    "commands:\n"
    "  optimize MODEL -o OUT [-O0|-O1|-O2|-O3] [--passes P,Q,...] [--report FILE.json]\n"
    "      [--explain] [--dump-after PASS|all] [--fold-limit BYTES] [--quiet]\n"
    "      [--external-data[=FILE]] [--external-data-threshold BYTES]\n"
    "      Read MODEL, run the optimization pipeline and write OUT (ONNX).\n"
    "      -O0 runs no pass (a lossless rewrite), -O1 clean-up, -O2 (default)\n"
    "      adds fusions, -O3 adds layout and target rewrites (none yet).\n"
    "      Prints a table of the passes and op counts; --report writes it as JSON.\n"
    "      --explain lists fusion candidates that were rejected, and why.\n"
    "      --external-data[=FILE]  store tensors of at least BYTES (default 1024)\n"
    "                              in FILE beside OUT (default OUT's name + .data)\n"
    "      --precision fp16|bf16|int8|auto [--int8-mode dynamic|static\n"
    "      [--qdq-inputs-only]] [--keep-io-types]\n"
    "      [--calib DIR | --calib-random N] [--calib-method minmax|percentile|entropy]\n"
    "      [--budget cos=C,max-abs=A]  convert under an accuracy budget (docs/cli.md);\n"
    "      auto: per region the lowest precision within it that runs faster, measured\n"
    "  passes\n"
    "      List the passes --passes accepts.\n"
    "  inspect MODEL [--json]\n"
    "      Summarize a model: producer, IR version, opsets, inputs and outputs,\n"
    "      op histogram, parameters, external data, functions.\n"
    "  run MODEL [--input NAME=FILE]... [--random-inputs] [--output-dir DIR] [--repeat N]\n"
    "      [--threads N] [--profile] [--profile-nodes N]\n"
    "      Run a model in libtacort. FILE is .npy or a serialized TensorProto (.pb).\n"
    "      Prints each output's dtype, shape, first values, min/max/mean; with\n"
    "      --output-dir writes DIR/<output name>.npy; --repeat N times N more runs.\n"
    "      --profile: time per op type and the slowest nodes (--profile-nodes N of\n"
    "      them, 0 for all; default 10).\n"
    "  bench MODEL [MODEL...] [--input NAME=FILE]... [--inputs DIR] [--shape NAME=DIMS]...\n"
    "      [--runtime tacort|ort|tacort,ort] [--threads N] [--batch 1,8,32] [--warmup N]\n"
    "      [--iters N | --time SECONDS] [--json FILE] [--markdown FILE]\n"
    "      [--fail-if-slower RATIO] [--max-error cos=C,max-abs=A,max-rel=R]\n"
    "      Run the models on the same inputs, interleaved, and print per batch the\n"
    "      latency p50/p90/p99 with the spread, throughput, peak memory, and accuracy\n"
    "      against the first model. Exit 1 when a gate fails, 2 on any error.\n"
    "  version\n";

static int cmd_inspect(int argc, char **argv) {
  const char *in = NULL;
  bool json = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (argv[i][0] == '-' && argv[i][1])
      return tc_cli_usage_error("inspect: unknown option '%s'", argv[i]);
    else if (!in)
      in = argv[i];
    else
      return tc_cli_usage_error("inspect: more than one model given");
  }
  if (!in)
    return tc_cli_usage_error("inspect: no model given");
  tc_diag *d = tc_diag_new();
  if (!d)
    return tc_cli_usage_error("out of memory");
  int rc = TC_EXIT_ERROR;
  tc_model *m = tc_cli_load(in, d);
  if (m) {
    rc = tc_inspect_write(m, in, json, stdout) == 0 ? 0
                                                    : tc_cli_usage_error("%s: out of memory", in);
    if (fflush(stdout) != 0)
      rc = tc_cli_usage_error("writing the summary: %s", strerror(errno));
  }
  tc_model_free(m);
  tc_diag_free(d);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2)
    return tc_cli_usage_error("no command given");
  const char *cmd = argv[1];
  if (strcmp(cmd, "optimize") == 0)
    return tc_cmd_optimize(argc - 2, argv + 2);
  if (strcmp(cmd, "passes") == 0)
    return tc_cmd_passes();
  if (strcmp(cmd, "run") == 0)
    return tc_cmd_run(argc - 2, argv + 2);
  if (strcmp(cmd, "bench") == 0)
    return tc_cmd_bench(argc - 2, argv + 2);
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
  return tc_cli_usage_error("unknown command '%s'", cmd);
}
