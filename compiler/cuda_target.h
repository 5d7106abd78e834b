/* `tacoc optimize --target cuda`: generates the CUDA kernels of the
 * optimized model's row nodes (Gelu / BiasGelu, LayerNormalization,
 * RMSNormalization, SkipLayerNormalization, Softmax over the last axis;
 * float32, float16 or bfloat16 with a static row length), compiles them with
 * NVRTC (codegen/cuda) to PTX and CUBINs for the requested SMs, writes the
 * CUDA kernel library beside the model and records it and the node
 * bindings in the model's metadata (runtime/culib.h). The graph stays
 * standard ONNX, so ONNX Runtime runs the model unchanged. */
#ifndef TC_CUDA_TARGET_H
#define TC_CUDA_TARGET_H

#include <stdbool.h>
#include <stdio.h>

#include "ir.h"
#include "json.h"

typedef struct tc_cuda_target_options {
  bool on;           /* --target cuda */
  unsigned archs[8]; /* --cuda-arch 80,90 (default: tc_cu_default_archs) */
  size_t n_archs;
  const char *output; /* the optimized model's path: the library goes beside it */
} tc_cuda_target_options;

typedef struct tc_cuda_target_result tc_cuda_target_result;

/* --target and --cuda-arch. */
bool tc_cuda_target_is_option(const char *arg);
/* Parses the option at argv[*i] (advancing past its value); nonzero after
 * printing a usage error. */
int tc_cuda_target_parse_arg(int argc, char **argv, int *i, tc_cuda_target_options *o);
/* Drops a model's CUDA records (ai.tacoc.cuda.*): a rewritten graph must not
 * keep bindings made for another. */
void tc_cuda_target_strip(tc_model *m);
/* With o->on: builds "<output>.tacocu.tmp" and records it (as
 * "<output file name>.tacocu") in m. No candidate nodes leave m unchanged.
 * 0 on success; otherwise an error was printed. */
int tc_cuda_target_apply(tc_model *m, const tc_cuda_target_options *o, tc_cuda_target_result **res);
/* Moves the library into place once the model is written (0 on success), or
 * removes it (discard: the model could not be written). */
int tc_cuda_target_commit(const tc_cuda_target_result *r, bool discard);
void tc_cuda_target_print(const tc_cuda_target_result *r, FILE *f);
/* "cuda": {...} or nothing without a result. */
void tc_cuda_target_json(const tc_cuda_target_result *r, tc_json *j);
void tc_cuda_target_result_free(tc_cuda_target_result *r);

#endif
