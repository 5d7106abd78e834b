/* libFuzzer target: any bytes given to the loader must give a model or a
 * status, never a crash, a leak or undefined behaviour. Models that load are
 * also verified and written back out, to cover the exporter. */
#include <stdio.h>
#include <unistd.h>

#include "ir.h"
#include "tacort.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  tc_diag *d = tc_diag_new();
  tc_model *m = NULL;
  if (tc_model_load_bytes(data, size, NULL, &m, d) == TC_STATUS_OK) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/tacoc-fuzz-%ld.onnx", (long)getpid());
    if (tc_model_save_file(m, path, NULL, d) == TC_STATUS_OK)
      unlink(path);
  }
  (void)tc_diag_message(d);
  tc_model_free(m);
  tc_diag_free(d);
  return 0;
}
