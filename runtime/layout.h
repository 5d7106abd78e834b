/* Channels-last values between convolutions (runtime/layout.c). */
#ifndef TC_LAYOUT_H
#define TC_LAYOUT_H

#include "exec.h"

/* Chooses the session's channels-last values (s->nhwc, s->layout); leaves
 * both NULL when there are none or memory runs out (everything plain). Call
 * once the node bindings (kernels, QDQ, generated kernels) are final. */
void tc_layout_bind(tc_session *s);
/* Makes every value plain again (before any run). */
void tc_layout_unbind(tc_session *s);
/* Runs main-graph node n, which reads or writes a channels-last value
 * (s->layout[n->id] != 0), with the kernel context k prepared by the
 * executor. */
tc_status tc_layout_run(const tc_session *s, const tc_node *n, tc_kernel_ctx *k,
                        const tc_rt_tensor *const *in, tc_rt_tensor *out);

#endif
