/* All kernel tables. Each op family lives in its own file and exports one
 * table ending with a {NULL} entry. */
#include <string.h>

#include "kernel.h"

extern const tc_kernel_def tc_kernels_elementwise[];
extern const tc_kernel_def tc_kernels_tensor[];
extern const tc_kernel_def tc_kernels_reduce[];
extern const tc_kernel_def tc_kernels_nn[];
extern const tc_kernel_def tc_kernels_conv[];
extern const tc_kernel_def tc_kernels_attention[];
extern const tc_kernel_def tc_kernels_loss[];
extern const tc_kernel_def tc_kernels_sequence[];
extern const tc_kernel_def tc_kernels_audio[];
extern const tc_kernel_def tc_kernels_vision[];
extern const tc_kernel_def tc_kernels_misc[];
extern const tc_kernel_def tc_kernels_strings[];
extern const tc_kernel_def tc_kernels_seqops[];

static const tc_kernel_def *const tables[] = {
    tc_kernels_elementwise, tc_kernels_tensor,    tc_kernels_reduce, tc_kernels_nn,
    tc_kernels_conv,        tc_kernels_attention, tc_kernels_loss,   tc_kernels_sequence,
    tc_kernels_audio,       tc_kernels_vision,    tc_kernels_misc,   tc_kernels_strings,
    tc_kernels_seqops,
};

const tc_kernel_def *tc_kernel_find(const char *op_type, const char *domain, int64_t opset) {
  const tc_kernel_def *best = NULL;
  if (!op_type)
    return NULL;
  for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
    for (const tc_kernel_def *d = tables[t]; d->op_type; d++)
      if (strcmp(d->op_type, op_type) == 0 && tc_domain_equal(d->domain, domain) &&
          d->since <= opset && (!best || d->since > best->since))
        best = d;
  return best;
}
