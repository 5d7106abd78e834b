/* `tacoc optimize --target cuda` (cuda_target.h). */
#include "cuda_target.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cucg.h"
#include "meta.h"
#include "native.h"
#include "pass.h"
#include "shapes.h"

#define KEY_LIB "ai.tacoc.cuda.kernels"
#define KEY_SHA "ai.tacoc.cuda.kernels.sha256"
#define KEY_NODE "ai.tacoc.cuda.kernel:"

struct tc_cuda_target_result {
  bool built;
  char lib_tmp[4200], lib_final[4200], lib_name[4200], sha[65];
  size_t n_kernels, n_bound, bytes;
  unsigned archs[8];
  size_t n_archs;
  double seconds;
  char note[256];
};

bool tc_cuda_target_is_option(const char *a) {
  return !strcmp(a, "--target") || !strcmp(a, "--cuda-arch");
}

int tc_cuda_target_parse_arg(int argc, char **argv, int *i, tc_cuda_target_options *o) {
  const char *opt = argv[*i];
  if (++*i >= argc)
    return tc_cli_usage_error("%s needs a value", opt);
  const char *v = argv[*i];
  if (!strcmp(opt, "--target")) {
    if (strcmp(v, "cpu") && strcmp(v, "cuda"))
      return tc_cli_usage_error("--target takes cpu or cuda, got '%s'", v);
    o->on = !strcmp(v, "cuda");
    return 0;
  }
  /* --cuda-arch 80,90 */
  o->n_archs = 0;
  for (const char *s = v; *s;) {
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (errno || end == s || a < 75 || a > 200 || (*end && *end != ',') ||
        o->n_archs == sizeof o->archs / sizeof *o->archs)
      return tc_cli_usage_error("--cuda-arch takes up to 8 SM numbers from 75 up, e.g. 80,90; got "
                                "'%s'",
                                v);
    o->archs[o->n_archs++] = (unsigned)a;
    s = *end ? end + 1 : end;
  }
  if (!o->n_archs)
    return tc_cli_usage_error("--cuda-arch needs at least one SM number");
  return 0;
}

void tc_cuda_target_strip(tc_model *m) {
  if (m->pb)
    tc_meta_strip_prefix(m, "ai.tacoc.cuda.");
}

static bool is_float_type(int32_t dt) {
  return dt == TC_DTYPE_F32 || dt == TC_DTYPE_F16 || dt == TC_DTYPE_BF16;
}

/* The spec of node n when its operands are known to fit a CUDA row kernel:
 * row length static, every operand of one floating type, the normalized
 * axis the last one. */
static bool node_spec(const tc_node *n, const tc_shapes *sh, int64_t opset, tc_cg_spec *sp) {
  const tc_shape *x = n->n_inputs && n->inputs[0] ? tc_shape_of(sh, n->inputs[0]) : NULL;
  if (!x || !x->known || !x->rank || x->dims[x->rank - 1].sym || !is_float_type(x->dtype))
    return false;
  int64_t cols = x->dims[x->rank - 1].v;
  if (!tc_cg_node_spec(n, cols, sp))
    return false;
  for (size_t i = 1; i < n->n_inputs; i++) {
    const tc_shape *p = n->inputs[i] ? tc_shape_of(sh, n->inputs[i]) : NULL;
    if (n->inputs[i] && (!p || !p->known || p->dtype != x->dtype || !p->rank ||
                         p->dims[p->rank - 1].sym || p->dims[p->rank - 1].v != cols))
      return false;
  }
  int64_t axis = tc_attr_int(n, "axis", sp->kind == TC_CG_SOFTMAX && opset < 13 ? 1 : -1);
  if (sp->kind != TC_CG_BIAS_ACT && axis != -1 && axis != (int64_t)x->rank - 1)
    return false;
  if (sp->kind == TC_CG_LAYERNORM && tc_attr_int(n, "stash_type", 1) != 1)
    return false;
  sp->dtype = x->dtype;
  return true;
}

static bool bindable(const tc_node *n) {
  tc_cg_spec sp;
  return tc_cg_node_spec(n, 1, &sp);
}

static bool same_kernel(const tc_cg_spec *a, const tc_cg_spec *b) {
  return a->kind == b->kind && a->act == b->act && a->flags == b->flags && a->cols == b->cols &&
         a->dtype == b->dtype;
}

int tc_cuda_target_apply(tc_model *m, const tc_cuda_target_options *o,
                         tc_cuda_target_result **res) {
  *res = NULL;
  if (!o->on)
    return 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (!m->pb)
    return tc_cli_error("--target cuda: the model has no protobuf record to note the kernels in");
  char why[8192];
  if (!tc_nvrtc_available(why, sizeof why))
    return tc_cli_error("--target cuda needs NVRTC from the CUDA toolkit: %s", why);
  tc_cuda_target_result *r = calloc(1, sizeof *r);
  if (!r)
    return tc_cli_error("out of memory");
  *res = r;
  if (o->n_archs) {
    memcpy(r->archs, o->archs, o->n_archs * sizeof *o->archs);
    r->n_archs = o->n_archs;
  } else {
    for (size_t i = 0; i < tc_cu_n_default_archs; i++)
      r->archs[r->n_archs++] = tc_cu_default_archs[i];
  }
  snprintf(r->lib_final, sizeof r->lib_final, "%s.tacocu", o->output);
  snprintf(r->lib_tmp, sizeof r->lib_tmp, "%s.tacocu.tmp", o->output);
  const char *slash = strrchr(r->lib_final, '/');
  snprintf(r->lib_name, sizeof r->lib_name, "%s", slash ? slash + 1 : r->lib_final);
  tc_cuda_target_strip(m);
  if (tc_meta_name_nodes(m, bindable))
    return tc_cli_error("out of memory");
  tc_shapes *sh = tc_shapes_infer(m->graph);
  size_t cap = 0;
  for (tc_node *n = m->graph->first; n; n = n->next)
    cap++;
  tc_cg_spec *specs = calloc(cap ? cap : 1, sizeof *specs),
             *bound = calloc(cap ? cap : 1, sizeof *bound);
  const tc_node **nodes = calloc(cap ? cap : 1, sizeof *nodes);
  if (!sh || !specs || !bound || !nodes) {
    tc_shapes_free(sh);
    free(specs), free(bound), free(nodes);
    return tc_cli_error("out of memory");
  }
  int64_t opset = tc_model_opset(m, "");
  for (tc_node *n = m->graph->first; n; n = n->next) {
    tc_cg_spec sp;
    if (!node_spec(n, sh, opset, &sp))
      continue;
    size_t k = 0;
    while (k < r->n_kernels && !same_kernel(&specs[k], &sp))
      k++;
    if (k == r->n_kernels) {
      specs[k] = sp;
      snprintf(specs[k].sym, sizeof specs[k].sym, "tcu_%zu", k);
      r->n_kernels++;
    }
    bound[r->n_bound] = specs[k];
    nodes[r->n_bound++] = n;
  }
  tc_shapes_free(sh);
  int rc = 0;
  if (!r->n_kernels) {
    snprintf(r->note, sizeof r->note,
             "no node fits a generated CUDA kernel: the model is unchanged");
  } else if (tc_cu_build_library(specs, r->n_kernels, r->archs, r->n_archs, r->lib_tmp, why,
                                 sizeof why)) {
    rc = tc_cli_error("--target cuda: %s", why);
  } else {
    r->built = true;
    if (!tc_meta_file_sha256(r->lib_tmp, r->sha)) {
      rc = tc_cli_error("--target cuda: cannot read back %s", r->lib_tmp);
    } else {
      FILE *f = fopen(r->lib_tmp, "rb");
      if (f && !fseek(f, 0, SEEK_END))
        r->bytes = (size_t)ftell(f);
      if (f)
        fclose(f);
      rc = tc_meta_add(m, KEY_LIB, r->lib_name) || tc_meta_add(m, KEY_SHA, r->sha);
      for (size_t i = 0; !rc && i < r->n_bound; i++) {
        char spec[256], key[1200];
        tc_cg_spec_format(&bound[i], spec, sizeof spec);
        snprintf(key, sizeof key, KEY_NODE "%s", nodes[i]->name);
        rc = tc_meta_add(m, key, spec);
      }
      if (rc)
        rc = tc_cli_error("out of memory");
    }
  }
  free(specs), free(bound), free(nodes);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  r->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  return rc;
}

int tc_cuda_target_commit(const tc_cuda_target_result *r, bool discard) {
  return r && r->built ? tc_meta_commit_file(r->lib_tmp, r->lib_final, discard) : 0;
}

static void arch_list(const tc_cuda_target_result *r, char *buf, size_t cap) {
  size_t len = 0;
  buf[0] = 0;
  for (size_t i = 0; i < r->n_archs && len < cap; i++)
    len += (size_t)snprintf(buf + len, cap - len, "%ssm_%u", i ? ", " : "", r->archs[i]);
}

void tc_cuda_target_print(const tc_cuda_target_result *r, FILE *f) {
  if (!r)
    return;
  if (!r->built) {
    fprintf(f, "\ncuda: %s\n", r->note);
    return;
  }
  char archs[128];
  arch_list(r, archs, sizeof archs);
  fprintf(f,
          "\ncuda: %zu generated kernels for %zu nodes, CUBIN for %s and PTX for compute_%d,\n"
          "      in %s (%.1f KiB, %.1f s)\n",
          r->n_kernels, r->n_bound, archs, TC_CU_PTX_ARCH, r->lib_name, (double)r->bytes / 1024,
          r->seconds);
}

void tc_cuda_target_json(const tc_cuda_target_result *r, tc_json *j) {
  if (!r)
    return;
  tc_json_key(j, "cuda");
  tc_json_begin_object(j);
  tc_json_key(j, "library");
  tc_json_string(j, r->built ? r->lib_name : NULL);
  tc_json_key(j, "kernels");
  tc_json_uint(j, r->n_kernels);
  tc_json_key(j, "nodes_bound");
  tc_json_uint(j, r->n_bound);
  tc_json_key(j, "cubin_archs");
  tc_json_begin_array(j);
  for (size_t i = 0; i < r->n_archs; i++)
    tc_json_uint(j, r->archs[i]);
  tc_json_end_array(j);
  tc_json_key(j, "ptx_arch");
  tc_json_uint(j, TC_CU_PTX_ARCH);
  tc_json_key(j, "bytes");
  tc_json_uint(j, r->bytes);
  tc_json_key(j, "seconds");
  tc_json_double(j, r->seconds);
  tc_json_end_object(j);
}

void tc_cuda_target_result_free(tc_cuda_target_result *r) { free(r); }
