/* libtacort's side of the CUDA target: loads the CUDA backend
 * (libtacort_cuda.so, runtime/cuda/tacort_cuda.h) with dlopen when a session
 * asks for TC_TARGET_CUDA, places nodes on the GPU, and runs them there
 * from the executor (session.c), keeping their results on the device while
 * only GPU nodes read them.
 *
 * Placement: MatMul (float32 / float16 / bfloat16, B 2-D or batched with the
 * same batch dims as A) and Gemm (C absent, a bias row with beta 1, or a
 * full [M, N] matrix) run as cuBLASLt GEMMs; Add/Sub/Mul/Div, Cast between
 * floating types, Attention (3-D form), ai.tacoc.EmbedLayerNormalization,
 * Conv / ConvRelu / ConvAddRelu, MaxPool and GlobalAveragePool on the
 * backend's fixed kernels and cuBLASLt, Reshape-like views of device values
 * as device copies (docs/gpu.md); nodes the model binds to its
 * CUDA kernel library (`tacoc optimize --target cuda`, loaded when native
 * code is allowed and its SHA-256 matches) run their generated kernels.
 * Every other node, and a GPU node whose run-time shapes do not fit, runs
 * on libtacort's CPU kernel, after its device-only inputs are copied back.
 *
 * A value is on the host, on the device, or both (by value id, per run).
 * GPU results that only GPU nodes read stay on the device; graph outputs
 * and values any CPU node (or any control-flow subgraph) reads are copied
 * back as they are made. Initializers are uploaded once per session. Runs
 * of one CUDA session take turns (one stream). */
#ifndef TC_CUDA_EXEC_H
#define TC_CUDA_EXEC_H

#include "exec.h"

typedef struct tc_cuda_state tc_cuda_state;
typedef struct tc_cuda_run tc_cuda_run;

/* Opens device dev for session s (its nodes bound) and places its nodes;
 * native: whether the model's CUDA kernel library may be used.
 * TC_STATUS_UNSUPPORTED when the backend cannot be loaded or there is no
 * CUDA device, with the reason in diag. */
tc_status tc_cuda_session_init(tc_session *s, int dev, bool native, int gemm_search, tc_diag *diag);
void tc_cuda_session_free(tc_cuda_state *c);
size_t tc_cuda_session_gpu_nodes(const tc_cuda_state *c);
const char *tc_cuda_session_device(const tc_cuda_state *c);
/* Why the model's CUDA kernel library was not used ("" when it was or
 * there is none). */
const char *tc_cuda_session_note(const tc_cuda_state *c);
/* The backend's GEMM search statistics (zeros without a session). */
void tc_cuda_session_gemm_search(const tc_cuda_state *c, size_t *shapes, double *chosen_us,
                                 double *first_us);

/* Starts a run of a CUDA session (waits for the session's previous run)
 * and ends it (frees the run's device memory). */
tc_status tc_cuda_run_begin(tc_run *r);
void tc_cuda_run_end(tc_run *r);
/* Runs main-graph node n on the GPU when it is placed there and its
 * run-time inputs fit; false when the caller must run its CPU kernel (after
 * tc_cuda_host_inputs). *st is the status when it ran. */
bool tc_cuda_try(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                 tc_rt_tensor *out, tc_status *st);
/* Copies n's device-only inputs back to their host tensors. */
tc_status tc_cuda_host_inputs(tc_run *r, const tc_node *n);

#endif
