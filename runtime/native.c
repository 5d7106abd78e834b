/* Generated kernels in libtacort: spec strings, which nodes they cover, the
 * adapters that call them, and loading a kernel library. See native.h. */
#include "native.h"

#include <dlfcn.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *const kind_names[] = {"?", "bias_act", "layernorm", "softmax"};

const char *tc_cg_kind_name(int kind) {
  return kind >= TC_CG_BIAS_ACT && kind <= TC_CG_SOFTMAX ? kind_names[kind] : "?";
}

bool tc_cg_spec_parse(const char *s, tc_cg_spec *out) {
  memset(out, 0, sizeof *out);
  out->width = 1;
  out->unroll = 1;
  while (s && *s) {
    while (*s == ' ')
      s++;
    if (!*s)
      break;
    const char *eq = strchr(s, '='), *end = strchr(s, ' ');
    if (!end)
      end = s + strlen(s);
    if (!eq || eq > end)
      return false;
    size_t klen = (size_t)(eq - s), vlen = (size_t)(end - eq - 1);
    char val[64];
    if (vlen >= sizeof val)
      return false;
    memcpy(val, eq + 1, vlen);
    val[vlen] = 0;
    char *tail = NULL;
    long long v = strtoll(val, &tail, 10);
    bool num = vlen && tail && !*tail;
#define KEY(name) (klen == strlen(name) && !strncmp(s, name, klen))
    if (KEY("kind")) {
      for (int k = TC_CG_BIAS_ACT; k <= TC_CG_SOFTMAX; k++)
        if (!strcmp(val, kind_names[k]))
          out->kind = k;
    } else if (KEY("sym")) {
      memcpy(out->sym, val, vlen + 1);
    } else if (!num) {
      return false;
    } else if (KEY("act")) {
      out->act = (int)v;
    } else if (KEY("flags")) {
      out->flags = (int)v;
    } else if (KEY("cols")) {
      out->cols = v;
    } else if (KEY("width")) {
      out->width = (int)v;
    } else if (KEY("unroll")) {
      out->unroll = (int)v;
    } else if (KEY("threads")) {
      out->threads = (int)v;
    } else if (KEY("dtype")) {
      out->dtype = (int)v;
    } /* unknown keys are ignored: newer specs stay readable */
#undef KEY
    s = end;
  }
  return out->kind && out->cols > 0 && out->sym[0] && out->width >= 1 && out->width <= 64 &&
         out->unroll >= 1 && out->unroll <= 8 && out->act >= 0 && out->act <= TC_CG_ACT_GELU_TANH &&
         (out->threads == 0 || out->threads == 1) &&
         (out->dtype == 0 || out->dtype == TC_DTYPE_F32 || out->dtype == TC_DTYPE_F16 ||
          out->dtype == TC_DTYPE_BF16);
}

void tc_cg_spec_format(const tc_cg_spec *sp, char *buf, size_t cap) {
  char thr[16] = "", dt[16] = "";
  if (sp->threads)
    snprintf(thr, sizeof thr, " threads=%d", sp->threads);
  if (sp->dtype && sp->dtype != TC_DTYPE_F32)
    snprintf(dt, sizeof dt, " dtype=%d", sp->dtype);
  snprintf(buf, cap, "kind=%s act=%d flags=%d cols=%lld width=%d unroll=%d%s%s sym=%s",
           tc_cg_kind_name(sp->kind), sp->act, sp->flags, (long long)sp->cols, sp->width,
           sp->unroll, thr, dt, sp->sym);
}

static bool out_used(const tc_node *n, size_t i) { return i < n->n_outputs && n->outputs[i]; }
static bool in_used(const tc_node *n, size_t i) { return i < n->n_inputs && n->inputs[i]; }

bool tc_cg_node_spec(const tc_node *n, int64_t cols, tc_cg_spec *out) {
  memset(out, 0, sizeof *out);
  out->cols = cols;
  out->width = out->unroll = 1;
  const char *op = n->op_type ? n->op_type : "";
  bool onnx = tc_domain_equal(n->domain, ""), ms = tc_domain_equal(n->domain, "com.microsoft");
  bool ours = tc_domain_equal(n->domain, "ai.tacoc");
  if (cols <= 0)
    return false;
  if (!strcmp(op, "BiasGelu") && (ours || ms) && in_used(n, 0) && in_used(n, 1)) {
    out->kind = TC_CG_BIAS_ACT;
    out->act = TC_CG_ACT_GELU_ERF;
    out->flags = TC_CG_F_BIAS;
  } else if (!strcmp(op, "Gelu") && onnx && in_used(n, 0)) {
    const tc_attr *a = tc_node_attr(n, "approximate");
    bool tanh = a && a->s.len == 4 && !memcmp(a->s.data, "tanh", 4);
    if (a && !tanh && !(a->s.len == 4 && !memcmp(a->s.data, "none", 4)))
      return false;
    out->kind = TC_CG_BIAS_ACT;
    out->act = tanh ? TC_CG_ACT_GELU_TANH : TC_CG_ACT_GELU_ERF;
  } else if (!strcmp(op, "Softmax") && onnx && in_used(n, 0)) {
    out->kind = TC_CG_SOFTMAX;
  } else if ((!strcmp(op, "LayerNormalization") || !strcmp(op, "RMSNormalization")) && onnx &&
             in_used(n, 0) && in_used(n, 1) && !out_used(n, 1) && !out_used(n, 2)) {
    out->kind = TC_CG_LAYERNORM;
    if (op[0] == 'R')
      out->flags = TC_CG_F_RMS;
    else if (in_used(n, 2))
      out->flags = TC_CG_F_BETA;
  } else if (!strcmp(op, "SkipLayerNormalization") && (ours || ms) && in_used(n, 0) &&
             in_used(n, 1) && in_used(n, 2) && !in_used(n, 4) && !out_used(n, ms ? 1 : 2) &&
             !(ms && out_used(n, 2))) {
    out->kind = TC_CG_LAYERNORM;
    out->flags = TC_CG_F_SKIP | (in_used(n, 3) ? TC_CG_F_BETA : 0) |
                 (out_used(n, ms ? 3 : 1) ? TC_CG_F_SUM : 0);
  } else {
    return false;
  }
  return true;
}

static bool is_row(const tc_rt_tensor *t, int32_t dt, int64_t cols) {
  return t && t->dtype == dt && t->rank >= 1 && t->dims[t->rank - 1] == cols;
}
static bool is_param(const tc_rt_tensor *t, int32_t dt, int64_t cols) {
  return is_row(t, dt, cols) && (int64_t)tc_rt_numel(t) == cols;
}
static bool same_shape(const tc_rt_tensor *a, const tc_rt_tensor *b) {
  if (a->rank != b->rank)
    return false;
  for (size_t d = 0; d < a->rank; d++)
    if (a->dims[d] != b->dims[d])
      return false;
  return true;
}
/* True when the node's axis attribute names the last dim of rank. */
static bool last_axis(const tc_node *n, int64_t dflt, size_t rank) {
  int64_t a = tc_attr_int(n, "axis", dflt);
  return a == -1 || a == (int64_t)rank - 1;
}

bool tc_native_fit(const tc_kernel_ctx *k, const tc_cg_spec *sp, const tc_rt_tensor *const *in,
                   size_t n_in, size_t n_out, tc_native_bind *b) {
  const tc_node *n = k->node;
  const tc_rt_tensor *x = n_in > 0 ? in[0] : NULL;
  int64_t cols = sp->cols;
  int32_t dt = sp->dtype ? sp->dtype : TC_DTYPE_F32;
  memset(b, 0, sizeof *b);
  if (!is_row(x, dt, cols))
    return false;
  b->in[0] = x;
  switch (sp->kind) {
  case TC_CG_BIAS_ACT:
    if (sp->flags & TC_CG_F_BIAS) {
      if (n_in < 2 || !is_param(in[1], dt, cols) || in[1]->rank != 1)
        return false;
      b->in[1] = in[1];
    }
    break;
  case TC_CG_SOFTMAX:
    if (!last_axis(n, k->opset >= 13 ? -1 : 1, x->rank))
      return false;
    break;
  case TC_CG_LAYERNORM: {
    bool skip = sp->flags & TC_CG_F_SKIP;
    size_t g = skip ? 2 : 1; /* gamma's input slot */
    if (n_in <= g || !is_param(in[g], dt, cols))
      return false;
    if (skip) {
      if (!in[1] || in[1]->dtype != dt || !same_shape(in[1], x))
        return false;
      b->in[1] = in[1];
    } else if (!last_axis(n, -1, x->rank) || tc_attr_int(n, "stash_type", 1) != 1) {
      return false;
    }
    b->in[2] = in[g];
    if (sp->flags & TC_CG_F_BETA) {
      if (n_in <= g + 1 || !is_param(in[g + 1], dt, cols))
        return false;
      b->in[3] = in[g + 1];
    } else if (n_in > g + 1 && in[g + 1] && !(sp->flags & TC_CG_F_RMS)) {
      return false; /* a beta the kernel would ignore */
    }
    b->eps = tc_attr_float(n, "epsilon", 1e-5f);
    if (sp->flags & TC_CG_F_SUM) {
      b->sum_slot = tc_domain_equal(n->domain, "com.microsoft") ? 3 : 1;
      if (n_out <= b->sum_slot)
        return false;
    }
    break;
  }
  default: return false;
  }
  b->rows = (int64_t)(tc_rt_numel(x) / (size_t)cols);
  return true;
}

typedef struct row_job {
  tc_cg_row_fn fn;
  const float *in[4];
  float *out[2];
  float params[2];
} row_job;

static void rows_piece(void *ctx, size_t piece, size_t lo, size_t hi) {
  (void)piece;
  row_job *j = ctx;
  j->fn(j->in, j->out, j->params, (int64_t)lo, (int64_t)hi);
}

bool tc_native_run(tc_kernel_ctx *k, const tc_cg_spec *sp, tc_cg_row_fn fn,
                   const tc_rt_tensor *const *in, size_t n_in, tc_rt_tensor *out, size_t n_out,
                   tc_status *st) {
  tc_native_bind b;
  if (!fn || (sp->dtype && sp->dtype != TC_DTYPE_F32) || !tc_native_fit(k, sp, in, n_in, n_out, &b))
    return false;
  const tc_rt_tensor *x = b.in[0];
  row_job j = {.fn = fn, .params = {b.eps}};
  for (int i = 0; i < 4; i++)
    j.in[i] = b.in[i] ? b.in[i]->data : NULL;
  if ((*st = tc_kernel_alloc_uninit(k, &out[0], TC_DTYPE_F32, x->rank, x->dims)))
    return true;
  j.out[0] = out[0].data;
  if (b.sum_slot) {
    if ((*st = tc_kernel_alloc_uninit(k, &out[b.sum_slot], TC_DTYPE_F32, x->rank, x->dims)))
      return true;
    j.out[1] = out[b.sum_slot].data;
  }
  if (sp->threads == 1)
    rows_piece(&j, 0, 0, (size_t)b.rows);
  else
    tc_parallel_for((size_t)b.rows, tc_parallel_grain((size_t)sp->cols * 8), rows_piece, &j);
  *st = TC_STATUS_OK;
  return true;
}

const char *const tc_cpu_feature_names[] = {"sse",
                                            "sse2",
                                            "sse3",
                                            "ssse3",
                                            "sse4.1",
                                            "sse4.2",
                                            "popcnt",
                                            "avx",
                                            "avx2",
                                            "fma",
                                            "bmi",
                                            "bmi2",
                                            "avx512f",
                                            "avx512dq",
                                            "avx512cd",
                                            "avx512bw",
                                            "avx512vl",
                                            "avx512ifma",
                                            "avx512vbmi",
                                            "avx512vbmi2",
                                            "avx512vnni",
                                            "avx512bitalg",
                                            "avx512vpopcntdq",
                                            "avx512bf16",
                                            "avx512er",
                                            "avx512pf",
                                            NULL};

int tc_cpu_has(const char *name) {
  __builtin_cpu_init();
  /* __builtin_cpu_supports takes only string literals */
  const int has[] = {
      __builtin_cpu_supports("sse"),
      __builtin_cpu_supports("sse2"),
      __builtin_cpu_supports("sse3"),
      __builtin_cpu_supports("ssse3"),
      __builtin_cpu_supports("sse4.1"),
      __builtin_cpu_supports("sse4.2"),
      __builtin_cpu_supports("popcnt"),
      __builtin_cpu_supports("avx"),
      __builtin_cpu_supports("avx2"),
      __builtin_cpu_supports("fma"),
      __builtin_cpu_supports("bmi"),
      __builtin_cpu_supports("bmi2"),
      __builtin_cpu_supports("avx512f"),
      __builtin_cpu_supports("avx512dq"),
      __builtin_cpu_supports("avx512cd"),
      __builtin_cpu_supports("avx512bw"),
      __builtin_cpu_supports("avx512vl"),
      __builtin_cpu_supports("avx512ifma"),
      __builtin_cpu_supports("avx512vbmi"),
      __builtin_cpu_supports("avx512vbmi2"),
      __builtin_cpu_supports("avx512vnni"),
      __builtin_cpu_supports("avx512bitalg"),
      __builtin_cpu_supports("avx512vpopcntdq"),
      __builtin_cpu_supports("avx512bf16"),
      __builtin_cpu_supports("avx512er"),
      __builtin_cpu_supports("avx512pf"),
  };
  _Static_assert(sizeof has / sizeof *has + 1 ==
                     sizeof tc_cpu_feature_names / sizeof *tc_cpu_feature_names,
                 "one check per feature name");
  for (size_t i = 0; tc_cpu_feature_names[i]; i++)
    if (!strcmp(name, tc_cpu_feature_names[i]))
      return has[i] != 0;
  return -1;
}

void tc_sha256_hex(const void *data, size_t size, char hex[65]) {
  unsigned char md[32];
  unsigned len = 0;
  if (!EVP_Digest(data, size, md, &len, EVP_sha256(), NULL) || len != 32)
    memset(md, 0, sizeof md);
  for (size_t i = 0; i < 32; i++)
    snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

struct tc_native_lib {
  void *handle;
};

tc_native_lib *tc_native_lib_open(const void *data, size_t size, char *why, size_t why_cap) {
  int fd = memfd_create("tacoc-kernels", MFD_CLOEXEC);
  if (fd < 0) {
    snprintf(why, why_cap, "cannot create a memory file: %s", strerror(errno));
    return NULL;
  }
  const unsigned char *p = data;
  for (size_t done = 0; done < size;) {
    ssize_t w = write(fd, p + done, size - done);
    if (w <= 0) {
      snprintf(why, why_cap, "cannot write the memory file: %s", strerror(errno));
      close(fd);
      return NULL;
    }
    done += (size_t)w;
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  close(fd); /* the mapping keeps the contents */
  if (!h) {
    const char *e = dlerror();
    snprintf(why, why_cap, "cannot load it: %s", e ? e : "unknown error");
    return NULL;
  }
  tc_native_lib *lib = calloc(1, sizeof *lib);
  if (!lib) {
    dlclose(h);
    snprintf(why, why_cap, "out of memory");
    return NULL;
  }
  lib->handle = h;
  return lib;
}

tc_cg_row_fn tc_native_lib_sym(tc_native_lib *lib, const char *sym) {
  if (!lib || !sym)
    return NULL;
  void *f = dlsym(lib->handle, sym);
  tc_cg_row_fn fn;
  memcpy(&fn, &f, sizeof fn);
  return fn;
}

void tc_native_lib_close(tc_native_lib *lib) {
  if (!lib)
    return;
  dlclose(lib->handle);
  free(lib);
}
