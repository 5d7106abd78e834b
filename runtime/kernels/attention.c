/* attention kernels. */
#include "kernel.h"

const tc_kernel_def tc_kernels_attention[] = {
    {NULL},
};
