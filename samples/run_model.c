/* Embedding libtacort: load a model, print its inputs and outputs, run it
 * once on inputs filled with a constant (symbolic dims set to 1), and print
 * the first values of each output. Uses only include/tacort.h.
 *
 * build: cc -Iinclude samples/run_model.c build/lib/libtacort.a -lprotobuf-c -lm
 * usage: run_model MODEL.onnx */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tacort.h"

static size_t elem_size(int32_t dtype) {
  switch (dtype) {
  case 1: case 6: case 12: return 4; /* float32, int32, uint32 */
  case 7: case 11: case 13: return 8; /* int64, float64, uint64 */
  case 10: case 16: case 4: case 5: return 2;
  case 2: case 3: case 9: return 1;
  default: return 0;
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL.onnx\n", argv[0]);
    return 2;
  }
  tc_diag *d = tc_diag_new();
  tc_model *m = NULL;
  tc_session *s = NULL;
  int rc = 1;
  size_t n_in = 0, n_out = 0;
  tc_ndarray *in = NULL, *out = NULL;
  const char **names = NULL;
  if (tc_model_load_file(argv[1], NULL, &m, d) || tc_session_new(m, &s, d)) {
    fprintf(stderr, "error: %s\n", tc_diag_message(d));
    goto done;
  }
  n_in = tc_model_num_inputs(m);
  n_out = tc_model_num_outputs(m);
  in = calloc(n_in + 1, sizeof *in);
  out = calloc(n_out + 1, sizeof *out);
  names = calloc(n_in + 1, sizeof *names);
  for (size_t i = 0; i < n_in; i++) {
    tc_ndarray *t = &in[i];
    tc_model_io_info(m, 1, i, &t->dtype, &t->rank, t->dims, TC_MAX_DIMS);
    size_t esize = elem_size(t->dtype), n = 1;
    if (!esize || t->rank > TC_MAX_DIMS) {
      fprintf(stderr, "error: input %s: this sample fills numeric tensors of known rank only\n",
              tc_model_input_name(m, i));
      goto done;
    }
    printf("input  %s: dtype %d, rank %zu\n", tc_model_input_name(m, i), (int)t->dtype, t->rank);
    for (size_t k = 0; k < t->rank; k++) {
      if (t->dims[k] < 0)
        t->dims[k] = 1; /* symbolic dim, e.g. batch */
      n *= (size_t)t->dims[k];
    }
    t->size = n * esize;
    t->data = calloc(1, t->size ? t->size : 1); /* zeros: valid for every numeric dtype */
    names[i] = tc_model_input_name(m, i);
  }
  if (tc_session_run(s, n_in, names, in, out, d)) {
    fprintf(stderr, "error: %s\n", tc_diag_message(d));
    goto done;
  }
  for (size_t i = 0; i < n_out; i++) {
    printf("output %s: dtype %d, shape [", tc_model_output_name(m, i), (int)out[i].dtype);
    for (size_t k = 0; k < out[i].rank; k++)
      printf("%s%lld", k ? ", " : "", (long long)out[i].dims[k]);
    printf("]");
    if (out[i].dtype == 1)
      for (size_t k = 0; k < 4 && k < out[i].size / 4; k++)
        printf(" %g", (double)((float *)out[i].data)[k]);
    printf("\n");
    tc_ndarray_release(&out[i]); /* the caller owns outputs */
  }
  rc = 0;
done:
  for (size_t i = 0; in && i < n_in; i++)
    free(in[i].data); /* inputs stay the caller's */
  free(in);
  free(out);
  free(names);
  tc_session_free(s);
  tc_model_free(m);
  tc_diag_free(d);
  return rc;
}
