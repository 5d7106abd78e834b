/* libtacort's side of the CUDA target (cuda_exec.h). The backend is reached
 * only through the function pointers resolved here, so libtacort itself
 * links no CUDA library. */
#include "cuda_exec.h"

#include <dlfcn.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/tacort_cuda.h"
#include "culib.h"
#include "diag.h"

#define CUDA_LIB_KEY "ai.tacoc.cuda.kernels"
#define CUDA_NODE_KEY "ai.tacoc.cuda.kernel:"

/* The backend's entry points (tacort_cuda.h). */
typedef struct backend {
  __typeof__(tc_cuda_open) *open;
  __typeof__(tc_cuda_close) *close;
  __typeof__(tc_cuda_bind) *bind;
  __typeof__(tc_cuda_describe) *describe;
  __typeof__(tc_cuda_sm) *sm;
  __typeof__(tc_cuda_alloc) *alloc;
  __typeof__(tc_cuda_free) *free;
  __typeof__(tc_cuda_upload) *upload;
  __typeof__(tc_cuda_download) *download;
  __typeof__(tc_cuda_copy) *copy;
  __typeof__(tc_cuda_sync) *sync;
  __typeof__(tc_cuda_kernels_load) *kernels_load;
  __typeof__(tc_cuda_kernels_free) *kernels_free;
  __typeof__(tc_cuda_row_launch) *row_launch;
  __typeof__(tc_cuda_gemm_run) *gemm_run;
  __typeof__(tc_cuda_binary) *binary;
  __typeof__(tc_cuda_attention) *attention;
  __typeof__(tc_cuda_embed_ln) *embed_ln;
  __typeof__(tc_cuda_cast) *cast;
  __typeof__(tc_cuda_conv2d) *conv2d;
  __typeof__(tc_cuda_maxpool) *maxpool;
  __typeof__(tc_cuda_gavgpool) *gavgpool;
  __typeof__(tc_cuda_set_gemm_search) *set_gemm_search;
  __typeof__(tc_cuda_gemm_search_stats) *gemm_search_stats;
} backend;

enum {
  PLACE_CPU = 0,
  PLACE_MATMUL,
  PLACE_GEMM,
  PLACE_ROW,
  PLACE_BINARY,
  PLACE_ATTENTION,
  PLACE_EMBED,
  PLACE_CAST,
  PLACE_CONV,
  PLACE_MAXPOOL,
  PLACE_GAVGPOOL,
  PLACE_VIEW
};
enum { ON_HOST = 1, ON_DEV = 2 };

struct tc_cuda_state {
  void *dl;
  backend b;
  tc_cuda *ctx;
  tc_cuda_kernels *kern;
  unsigned char *place;    /* by node id */
  const tc_cg_spec **spec; /* by node id: the generated kernel of a PLACE_ROW node */
  bool *host_needed;       /* by value id: a CPU node, subgraph or the caller reads it */
  void **const_dev;        /* by value id: device copy of an initializer */
  size_t *const_bytes;     /* by value id: its size */
  size_t n_values, n_gpu;
  pthread_mutex_t lock; /* one run at a time */
  char device[256], note[512];
};

typedef struct dev_alloc {
  void *p;
  size_t bytes;
  struct dev_alloc *next;
} dev_alloc;

struct tc_cuda_run {
  void **dev;           /* by value id */
  unsigned char *where; /* by value id: ON_HOST | ON_DEV; 0 means on the host */
  dev_alloc *allocs;
};

/* ---- loading the backend ---- */

static void *try_open(const char *path, char *why, size_t cap) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h && !why[0])
    snprintf(why, cap, "%s", dlerror());
  return h;
}

/* $TACORT_CUDA_LIBRARY, else beside the program or shared object holding
 * libtacort (and in its ../lib), else the loader's search path. */
static void *open_backend(char *why, size_t cap) {
  why[0] = 0;
  const char *env = getenv("TACORT_CUDA_LIBRARY");
  if (env && *env)
    return try_open(env, why, cap);
  Dl_info info;
  if (dladdr((void *)tc_cuda_session_init, &info) && info.dli_fname) {
    char buf[4096], path[4200];
    snprintf(buf, sizeof buf, "%s", info.dli_fname);
    const char *dir = dirname(buf);
    const char *rel[] = {"/libtacort_cuda.so", "/../lib/libtacort_cuda.so"};
    for (size_t i = 0; i < 2; i++) {
      snprintf(path, sizeof path, "%s%s", dir, rel[i]);
      void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
      if (h)
        return h;
    }
  }
  return try_open("libtacort_cuda.so", why, cap);
}

static bool resolve(void *dl, backend *b, char *why, size_t cap) {
#define SYM(field, name)                                                                           \
  if (!(*(void **)&b->field = dlsym(dl, #name))) {                                                 \
    snprintf(why, cap, "the CUDA backend has no %s (a libtacort_cuda.so of another version?)",     \
             #name);                                                                               \
    return false;                                                                                  \
  }
  SYM(open, tc_cuda_open)
  SYM(close, tc_cuda_close)
  SYM(bind, tc_cuda_bind)
  SYM(describe, tc_cuda_describe)
  SYM(sm, tc_cuda_sm)
  SYM(alloc, tc_cuda_alloc)
  SYM(free, tc_cuda_free)
  SYM(upload, tc_cuda_upload)
  SYM(download, tc_cuda_download)
  SYM(copy, tc_cuda_copy)
  SYM(sync, tc_cuda_sync)
  SYM(kernels_load, tc_cuda_kernels_load)
  SYM(kernels_free, tc_cuda_kernels_free)
  SYM(row_launch, tc_cuda_row_launch)
  SYM(gemm_run, tc_cuda_gemm_run)
  SYM(binary, tc_cuda_binary)
  SYM(attention, tc_cuda_attention)
  SYM(embed_ln, tc_cuda_embed_ln)
  SYM(cast, tc_cuda_cast)
  SYM(conv2d, tc_cuda_conv2d)
  SYM(maxpool, tc_cuda_maxpool)
  SYM(gavgpool, tc_cuda_gavgpool)
  SYM(set_gemm_search, tc_cuda_set_gemm_search)
  SYM(gemm_search_stats, tc_cuda_gemm_search_stats)
#undef SYM
  return true;
}

/* ---- placement ---- */

static bool is_float(int32_t dt) {
  return dt == TC_DTYPE_F32 || dt == TC_DTYPE_F16 || dt == TC_DTYPE_BF16;
}

/* Loads the model's CUDA kernel library and binds its nodes; any failure
 * leaves a note and those nodes on the CPU. */
static void bind_kernels(tc_session *s, tc_cuda_state *c) {
  const tc_model *m = s->m;
  const char *file = tc_model_meta(m, CUDA_LIB_KEY),
             *want = tc_model_meta(m, CUDA_LIB_KEY ".sha256");
  if (!file)
    return;
  if (!want || strlen(want) != 64 || strchr(file, '/') || !file[0] || !m->dir) {
    snprintf(c->note, sizeof c->note,
             "the model's CUDA kernel library record is malformed or the model was not loaded "
             "from a file");
    return;
  }
  char path[4096], got[65], why[512] = "";
  snprintf(path, sizeof path, "%s/%s", m->dir, file);
  size_t size = 0;
  unsigned char *bytes = tc_read_file(path, &size);
  if (!bytes) {
    snprintf(c->note, sizeof c->note, "CUDA kernel library %.300s cannot be read", path);
    return;
  }
  tc_sha256_hex(bytes, size, got);
  if (strcmp(got, want))
    snprintf(c->note, sizeof c->note, "CUDA kernel library %.300s does not match the model", path);
  else if (c->b.kernels_load(c->ctx, bytes, size, &c->kern, why, sizeof why))
    snprintf(c->note, sizeof c->note, "CUDA kernel library %.300s: %.180s", path, why);
  free(bytes);
  if (!c->kern)
    return;
  size_t plen = strlen(CUDA_NODE_KEY), bad = 0;
  for (size_t i = 0; i < m->pb->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = m->pb->metadata_props[i];
    if (!e || !e->key || !e->value || strncmp(e->key, CUDA_NODE_KEY, plen))
      continue;
    const tc_node *n = tc_graph_node_named(m->graph, e->key + plen);
    tc_cg_spec *sp = tc_arena_alloc(s->arena, sizeof *sp), want_sp;
    if (!sp || !n || !tc_cg_spec_parse(e->value, sp) || !tc_cg_node_spec(n, sp->cols, &want_sp) ||
        want_sp.kind != sp->kind || want_sp.act != sp->act || want_sp.flags != sp->flags ||
        !s->kernels[n->id]) {
      bad++;
      continue;
    }
    c->spec[n->id] = sp;
    c->place[n->id] = PLACE_ROW;
  }
  if (bad)
    snprintf(c->note, sizeof c->note,
             "%zu of the CUDA kernel library's node bindings do not match the model", bad);
}

static void place_nodes(tc_session *s, tc_cuda_state *c) {
  const tc_graph *g = s->m->graph;
  bool control = false;
  for (const tc_node *n = g->first; n; n = n->next) {
    control |= !s->kernels[n->id];
    bool ours = tc_domain_equal(n->domain, "ai.tacoc");
    if (!c->place[n->id] && s->kernels[n->id] && ours &&
        !strncmp(n->op_type, "EmbedLayerNormalization", 23))
      c->place[n->id] = PLACE_EMBED;
    if (!c->place[n->id] && s->kernels[n->id] && ours &&
        (!strcmp(n->op_type, "ConvRelu") || !strcmp(n->op_type, "ConvAddRelu")))
      c->place[n->id] = PLACE_CONV;
    if (c->place[n->id] || !s->kernels[n->id] || !tc_domain_equal(n->domain, "") ||
        (s->qdq && s->qdq[n->id]))
      continue; /* control flow, other domains, integer QDQ kernels: the CPU */
    const char *op = n->op_type;
    if (!strcmp(op, "MatMul"))
      c->place[n->id] = PLACE_MATMUL;
    else if (!strcmp(op, "Gemm"))
      c->place[n->id] = PLACE_GEMM;
    else if (!strcmp(op, "Add") || !strcmp(op, "Sub") || !strcmp(op, "Mul") || !strcmp(op, "Div"))
      c->place[n->id] = PLACE_BINARY;
    else if (!strcmp(op, "Attention"))
      c->place[n->id] = PLACE_ATTENTION;
    else if (!strcmp(op, "Cast"))
      c->place[n->id] = PLACE_CAST;
    else if (!strcmp(op, "Conv"))
      c->place[n->id] = PLACE_CONV;
    else if (!strcmp(op, "MaxPool"))
      c->place[n->id] = PLACE_MAXPOOL;
    else if (!strcmp(op, "GlobalAveragePool"))
      c->place[n->id] = PLACE_GAVGPOOL;
    else if (!strcmp(op, "Reshape") || !strcmp(op, "Flatten") || !strcmp(op, "Squeeze") ||
             !strcmp(op, "Unsqueeze") || !strcmp(op, "Identity"))
      c->place[n->id] = PLACE_VIEW;
  }
  /* which values must reach the host as soon as they are made */
  for (size_t i = 0; i < c->n_values; i++)
    c->host_needed[i] = control; /* subgraphs read outer values directly */
  for (size_t i = 0; i < g->n_outputs; i++)
    c->host_needed[g->outputs[i].value->id] = true;
  for (const tc_node *n = g->first; n; n = n->next) {
    if (c->place[n->id])
      c->n_gpu++;
    else
      for (size_t i = 0; i < n->n_inputs; i++)
        if (n->inputs[i])
          c->host_needed[n->inputs[i]->id] = true;
  }
}

tc_status tc_cuda_session_init(tc_session *s, int dev, bool native, int gemm_search,
                               tc_diag *diag) {
  tc_cuda_state *c = calloc(1, sizeof *c);
  if (!c)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  pthread_mutex_init(&c->lock, NULL);
  s->cuda = c;
  char why[1024];
  if (!(c->dl = open_backend(why, sizeof why)))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "target cuda: cannot load the CUDA backend libtacort_cuda.so: %s", why);
  if (!resolve(c->dl, &c->b, why, sizeof why))
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL, "target cuda: %s", why);
  int rc = c->b.open(dev, &c->ctx, why, sizeof why);
  if (rc)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL, "target cuda: %s", why);
  c->b.describe(c->ctx, c->device, sizeof c->device);
  c->b.set_gemm_search(c->ctx, gemm_search);
  const tc_model *m = s->m;
  c->n_values = m->next_value_id + 1;
  c->place = calloc(m->next_node_id + 1, 1);
  c->spec = calloc(m->next_node_id + 1, sizeof *c->spec);
  c->host_needed = calloc(c->n_values, sizeof *c->host_needed);
  c->const_dev = calloc(c->n_values, sizeof *c->const_dev);
  c->const_bytes = calloc(c->n_values, sizeof *c->const_bytes);
  if (!c->place || !c->spec || !c->host_needed || !c->const_dev || !c->const_bytes)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  if (native)
    bind_kernels(s, c);
  place_nodes(s, c);
  return TC_STATUS_OK;
}

void tc_cuda_session_free(tc_cuda_state *c) {
  if (!c)
    return;
  if (c->ctx) {
    for (size_t i = 0; c->const_dev && i < c->n_values; i++)
      if (c->const_dev[i])
        c->b.free(c->ctx, c->const_dev[i], c->const_bytes[i]);
    c->b.kernels_free(c->kern);
    c->b.close(c->ctx);
  }
  free(c->place);
  free(c->spec);
  free(c->host_needed);
  free(c->const_dev);
  free(c->const_bytes);
  pthread_mutex_destroy(&c->lock);
  /* the backend stays loaded: CUDA libraries do not expect to be unloaded */
  free(c);
}

size_t tc_cuda_session_gpu_nodes(const tc_cuda_state *c) { return c ? c->n_gpu : 0; }
const char *tc_cuda_session_device(const tc_cuda_state *c) { return c ? c->device : ""; }
const char *tc_cuda_session_note(const tc_cuda_state *c) { return c ? c->note : ""; }

void tc_cuda_session_gemm_search(const tc_cuda_state *c, size_t *shapes, double *chosen_us,
                                 double *first_us) {
  *shapes = 0;
  *chosen_us = *first_us = 0;
  if (c && c->ctx) {
    pthread_mutex_lock((pthread_mutex_t *)&c->lock); /* not while a run measures */
    c->b.gemm_search_stats(c->ctx, shapes, chosen_us, first_us);
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
  }
}

/* ---- runs ---- */

tc_status tc_cuda_run_begin(tc_run *r) {
  tc_cuda_state *c = r->s->cuda;
  tc_cuda_run *cr = calloc(1, sizeof *cr);
  if (cr) {
    cr->dev = calloc(c->n_values, sizeof *cr->dev);
    cr->where = calloc(c->n_values, 1);
  }
  if (!cr || !cr->dev || !cr->where) {
    if (cr) {
      free(cr->dev);
      free(cr->where);
    }
    free(cr);
    return tc_diag_set(r->diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  }
  pthread_mutex_lock(&c->lock);
  r->cu = cr;
  char why[512];
  if (c->b.bind(c->ctx, why, sizeof why)) /* runs may come from any thread */
    return tc_diag_set(r->diag, TC_STATUS_INVALID, NULL, NULL, "target cuda: %s", why);
  return TC_STATUS_OK;
}

void tc_cuda_run_end(tc_run *r) {
  tc_cuda_run *cr = r->cu;
  if (!cr)
    return;
  tc_cuda_state *c = r->s->cuda;
  char why[256];
  c->b.sync(c->ctx, why, sizeof why); /* nothing may still use what is freed */
  for (dev_alloc *a = cr->allocs, *next; a; a = next) {
    next = a->next;
    c->b.free(c->ctx, a->p, a->bytes);
    free(a);
  }
  free(cr->dev);
  free(cr->where);
  free(cr);
  r->cu = NULL;
  pthread_mutex_unlock(&c->lock);
}

static tc_status cuda_error(tc_run *r, const tc_node *n, const char *why) {
  return tc_diag_set(r->diag, TC_STATUS_INVALID, n->name ? n->name : "", n->op_type,
                     "on the GPU: %s", why);
}

/* Device memory for this run, freed when it ends. */
static tc_status run_alloc(tc_run *r, const tc_node *n, size_t bytes, void **p) {
  tc_cuda_state *c = r->s->cuda;
  char why[512];
  dev_alloc *a = malloc(sizeof *a);
  if (!a)
    return tc_diag_set(r->diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  if (c->b.alloc(c->ctx, bytes, p, why, sizeof why)) {
    free(a);
    return cuda_error(r, n, why);
  }
  a->p = *p;
  a->bytes = bytes;
  a->next = r->cu->allocs;
  r->cu->allocs = a;
  return TC_STATUS_OK;
}

/* The device address of input slot i of n (tensor t), uploading it first
 * when it is only on the host. */
static tc_status dev_input(tc_run *r, const tc_node *n, size_t i, const tc_rt_tensor *t,
                           const void **p) {
  tc_cuda_state *c = r->s->cuda;
  tc_cuda_run *cr = r->cu;
  const tc_value *v = n->inputs[i];
  char why[512];
  if (cr->where[v->id] & ON_DEV) {
    *p = cr->dev[v->id];
    return TC_STATUS_OK;
  }
  bool is_const = r->s->consts[v->id] == t;
  void **slot = is_const ? &c->const_dev[v->id] : &cr->dev[v->id];
  if (!*slot) {
    tc_status st;
    if (is_const) {
      if (c->b.alloc(c->ctx, t->bytes, slot, why, sizeof why))
        return cuda_error(r, n, why);
      c->const_bytes[v->id] = t->bytes;
    } else if ((st = run_alloc(r, n, t->bytes, slot))) {
      return st;
    }
    if (c->b.upload(c->ctx, *slot, t->data, t->bytes, why, sizeof why))
      return cuda_error(r, n, why);
  }
  if (!is_const)
    cr->where[v->id] = ON_HOST | ON_DEV;
  *p = *slot;
  return TC_STATUS_OK;
}

/* Output slot o of n: its host tensor (allocated as CPU kernels do, so
 * planned runs keep their layout) and device memory. */
static tc_status dev_output(tc_run *r, const tc_node *n, tc_kernel_ctx *k, tc_rt_tensor *out,
                            size_t o, int32_t dt, size_t rank, const int64_t *dims, void **p) {
  tc_status st = tc_kernel_alloc_uninit(k, &out[o], dt, rank, dims);
  if (st)
    return st;
  if ((st = run_alloc(r, n, out[o].bytes, p)))
    return st;
  if (n->outputs[o])
    r->cu->dev[n->outputs[o]->id] = *p;
  return TC_STATUS_OK;
}

/* After a GPU node: its outputs are on the device, and on the host too
 * where something there reads them. */
static tc_status finish_outputs(tc_run *r, const tc_node *n, tc_rt_tensor *out) {
  tc_cuda_state *c = r->s->cuda;
  char why[512];
  for (size_t o = 0; o < n->n_outputs; o++) {
    const tc_value *v = n->outputs[o];
    if (!v || !out[o].data)
      continue;
    r->cu->where[v->id] = ON_DEV;
    if (c->host_needed[v->id]) {
      if (c->b.download(c->ctx, out[o].data, r->cu->dev[v->id], out[o].bytes, why, sizeof why))
        return cuda_error(r, n, why);
      r->cu->where[v->id] |= ON_HOST;
    }
  }
  return TC_STATUS_OK;
}

tc_status tc_cuda_host_inputs(tc_run *r, const tc_node *n) {
  tc_cuda_state *c = r->s->cuda;
  char why[512];
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_value *v = n->inputs[i];
    if (!v || r->cu->where[v->id] != ON_DEV)
      continue;
    tc_rt_tensor *t = r->vals[v->id];
    if (c->b.download(c->ctx, t->data, r->cu->dev[v->id], t->bytes, why, sizeof why))
      return cuda_error(r, n, why);
    r->cu->where[v->id] |= ON_HOST;
  }
  return TC_STATUS_OK;
}

static int64_t prod(const int64_t *d, size_t n) {
  int64_t p = 1;
  for (size_t i = 0; i < n; i++)
    p *= d[i];
  return p;
}

static bool try_matmul(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                       tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *a = in[0], *b = n->n_inputs > 1 ? in[1] : NULL;
  if (!a || !b || !is_float(a->dtype) || b->dtype != a->dtype || a->rank < 2 || b->rank < 2)
    return false;
  int64_t kk = a->dims[a->rank - 1], nn = b->dims[b->rank - 1];
  if (b->dims[b->rank - 2] != kk)
    return false;
  tc_cuda_gemm g = {.dtype = a->dtype, .k = kk, .n = nn, .alpha = 1};
  if (b->rank == 2) {
    g.m = prod(a->dims, a->rank - 1); /* the batch folds into M */
  } else {
    if (a->rank != b->rank || memcmp(a->dims, b->dims, (a->rank - 2) * sizeof *a->dims))
      return false;
    g.m = a->dims[a->rank - 2];
    g.batch = prod(a->dims, a->rank - 2);
    g.stride_a = g.m * kk;
    g.stride_b = kk * nn;
    g.stride_c = g.m * nn;
  }
  if (g.m <= 0 || g.n <= 0 || g.k <= 0)
    return false;
  int64_t dims[TC_MAX_DIMS];
  memcpy(dims, a->dims, a->rank * sizeof *dims);
  dims[a->rank - 1] = nn;
  const void *pa, *pb;
  void *pc;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, a, &pa)) || (*st = dev_input(r, n, 1, b, &pb)) ||
      (*st = dev_output(r, n, k, out, 0, a->dtype, a->rank, dims, &pc)))
    return true;
  if (c->b.gemm_run(c->ctx, &g, pa, pb, pc, NULL, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

static bool try_gemm(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                     tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *a = in[0], *b = n->n_inputs > 1 ? in[1] : NULL,
                     *cc = n->n_inputs > 2 ? in[2] : NULL;
  if (!a || !b || !is_float(a->dtype) || b->dtype != a->dtype || a->rank != 2 || b->rank != 2 ||
      (cc && cc->dtype != a->dtype))
    return false;
  tc_cuda_gemm g = {.dtype = a->dtype,
                    .trans_a = tc_attr_int(n, "transA", 0) != 0,
                    .trans_b = tc_attr_int(n, "transB", 0) != 0,
                    .alpha = tc_attr_float(n, "alpha", 1.0f)};
  float beta = tc_attr_float(n, "beta", 1.0f);
  g.m = a->dims[g.trans_a ? 1 : 0];
  g.k = a->dims[g.trans_a ? 0 : 1];
  g.n = b->dims[g.trans_b ? 0 : 1];
  if (b->dims[g.trans_b ? 1 : 0] != g.k || g.m <= 0 || g.n <= 0 || g.k <= 0)
    return false;
  bool bias = false, full = false;
  if (cc && beta != 0) {
    bias = beta == 1 && (int64_t)tc_rt_numel(cc) == g.n && cc->dims[cc->rank - 1] == g.n &&
           cc->rank <= 2;
    full = !bias && cc->rank == 2 && cc->dims[0] == g.m && cc->dims[1] == g.n;
    if (!bias && !full)
      return false; /* other broadcasts of C: the CPU kernel */
  }
  int64_t dims[2] = {g.m, g.n};
  const void *pa, *pb, *pcc = NULL;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, a, &pa)) || (*st = dev_input(r, n, 1, b, &pb)) ||
      (cc && beta != 0 && (*st = dev_input(r, n, 2, cc, &pcc))) ||
      (*st = dev_output(r, n, k, out, 0, a->dtype, 2, dims, &py)))
    return true;
  if (bias)
    g.bias = pcc;
  if (full) { /* Y starts as C; the GEMM accumulates beta * Y */
    g.beta = beta;
    if (c->b.copy(c->ctx, py, pcc, out[0].bytes, why, sizeof why)) {
      *st = cuda_error(r, n, why);
      return true;
    }
  }
  if (c->b.gemm_run(c->ctx, &g, pa, pb, py, NULL, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

static bool try_row(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                    tc_rt_tensor *out, tc_status *st) {
  tc_cuda_state *c = r->s->cuda;
  const tc_cg_spec *sp = c->spec[n->id];
  tc_native_bind b;
  if (!sp || !tc_native_fit(k, sp, in, n->n_inputs, n->n_outputs, &b) || !b.rows)
    return false;
  tc_cu_args args = {.eps = b.eps, .rows = b.rows};
  for (int j = 0; j < 4; j++) {
    if (!b.in[j])
      continue;
    size_t slot = 0;
    while (slot < n->n_inputs && in[slot] != b.in[j])
      slot++;
    if (slot == n->n_inputs)
      return false; /* cannot happen: fit returns the node's own inputs */
    if ((*st = dev_input(r, n, slot, b.in[j], &args.in[j])))
      return true;
  }
  const tc_rt_tensor *x = b.in[0];
  if ((*st = dev_output(r, n, k, out, 0, x->dtype, x->rank, x->dims, &args.out[0])) ||
      (b.sum_slot &&
       (*st = dev_output(r, n, k, out, b.sum_slot, x->dtype, x->rank, x->dims, &args.out[1]))))
    return true;
  char why[1024];
  if (c->b.row_launch(c->ctx, c->kern, sp, &args, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* Add, Sub, Mul, Div of two tensors of one floating type, broadcast. */
static bool try_binary(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                       tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *a = in[0], *b = n->n_inputs > 1 ? in[1] : NULL;
  if (!a || !b || !is_float(a->dtype) || b->dtype != a->dtype)
    return false;
  size_t rank = a->rank > b->rank ? a->rank : b->rank;
  int64_t dims[TC_MAX_DIMS], sa[TC_MAX_DIMS], sb[TC_MAX_DIMS], ra = 1, rb = 1;
  for (size_t d = rank; d-- > 0;) { /* right-aligned; a dim of 1 broadcasts */
    size_t back = rank - 1 - d;
    int64_t da = back < a->rank ? a->dims[a->rank - 1 - back] : 1,
            db = back < b->rank ? b->dims[b->rank - 1 - back] : 1;
    if (da != db && da != 1 && db != 1)
      return false; /* the CPU kernel says what is wrong */
    dims[d] = da == 1 ? db : da;
    sa[d] = da == 1 ? 0 : ra;
    sb[d] = db == 1 ? 0 : rb;
    ra *= da;
    rb *= db;
  }
  if (rank > 8 || !prod(dims, rank) || !tc_rt_numel(a) || !tc_rt_numel(b))
    return false;
  int op = n->op_type[0] == 'A' ? 0 : n->op_type[0] == 'S' ? 1 : n->op_type[0] == 'M' ? 2 : 3;
  const void *pa, *pb;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, a, &pa)) || (*st = dev_input(r, n, 1, b, &pb)) ||
      (*st = dev_output(r, n, k, out, 0, a->dtype, rank, dims, &py)))
    return true;
  if (c->b.binary(c->ctx, a->dtype, op, pa, pb, py, rank, dims, sa, sb, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* ONNX Attention in its 3-D form without a cache: Q [B, Sq, H * D],
 * K [B, Skv, H * D], V [B, Skv, H * Dv], one head count, an optional mask
 * (additive of Q's type, or boolean) whose last dim is Skv, causal only when
 * Sq == Skv, no softcap or window, only output Y. */
static bool try_attention(tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                          const tc_rt_tensor *const *in, tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *q = in[0], *kk = n->n_inputs > 1 ? in[1] : NULL,
                     *v = n->n_inputs > 2 ? in[2] : NULL, *mask = n->n_inputs > 3 ? in[3] : NULL;
  for (size_t i = 4; i < n->n_inputs; i++)
    if (n->inputs[i])
      return false; /* past key / value, nonpad lengths */
  for (size_t o = 1; o < n->n_outputs; o++)
    if (n->outputs[o])
      return false; /* present key / value, the QK output */
  int64_t H = tc_attr_int(n, "q_num_heads", 0);
  if (!q || !kk || !v || !is_float(q->dtype) || kk->dtype != q->dtype || v->dtype != q->dtype ||
      q->rank != 3 || kk->rank != 3 || v->rank != 3 || H <= 0 ||
      tc_attr_int(n, "kv_num_heads", 0) != H || tc_attr_float(n, "softcap", 0.0f) != 0.0f ||
      tc_attr_int(n, "left_window_size", -1) != -1 || tc_attr_int(n, "right_window_size", -1) != -1)
    return false;
  tc_cuda_attn p = {.dtype = q->dtype,
                    .B = q->dims[0],
                    .Sq = q->dims[1],
                    .Skv = kk->dims[1],
                    .H = H,
                    .causal = tc_attr_int(n, "is_causal", 0) != 0};
  if (q->dims[2] % H || v->dims[2] % H || kk->dims[0] != p.B || v->dims[0] != p.B ||
      v->dims[1] != p.Skv || kk->dims[2] != q->dims[2] || (p.causal && p.Sq != p.Skv))
    return false;
  p.D = q->dims[2] / H;
  p.Dv = v->dims[2] / H;
  p.scale = tc_attr_has(n, "scale") ? tc_attr_float(n, "scale", 1.0f) : 1.0f / sqrtf((float)p.D);
  if (mask) {
    if (mask->dtype == q->dtype)
      p.mask_kind = 1;
    else if (mask->dtype == TC_DTYPE_BOOL)
      p.mask_kind = 2;
    else
      return false;
    int64_t full[4] = {p.B, p.H, p.Sq, p.Skv}, stride = 1;
    if (mask->rank > 4 || !mask->rank || mask->dims[mask->rank - 1] != p.Skv)
      return false;
    for (int d = 3; d >= 0; d--) { /* right-aligned; a missing or size-1 dim broadcasts */
      size_t back = 3 - (size_t)d;
      int64_t dv = back < mask->rank ? mask->dims[mask->rank - 1 - back] : 1;
      if (dv != 1 && dv != full[d])
        return false;
      p.mstride[d] = dv == 1 ? 0 : stride;
      stride *= dv;
    }
  }
  int64_t dims[3] = {p.B, p.Sq, H * p.Dv};
  const void *pq, *pk, *pv, *pm = NULL;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if (!p.B || !p.Sq || !p.Skv)
    return false;
  if ((*st = dev_input(r, n, 0, q, &pq)) || (*st = dev_input(r, n, 1, kk, &pk)) ||
      (*st = dev_input(r, n, 2, v, &pv)) || (mask && (*st = dev_input(r, n, 3, mask, &pm))) ||
      (*st = dev_output(r, n, k, out, 0, q->dtype, 3, dims, &py)))
    return true;
  if (c->b.attention(c->ctx, &p, pq, pk, pv, pm, py, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* Whether every id of t (int64) is on the host and in [0, rows). */
static bool ids_in_range(tc_run *r, const tc_node *n, size_t slot, const tc_rt_tensor *t,
                         int64_t rows) {
  if (t->dtype != TC_DTYPE_I64 || r->cu->where[n->inputs[slot]->id] == ON_DEV)
    return false;
  const int64_t *v = t->data;
  for (size_t i = 0; i < tc_rt_numel(t); i++)
    if (v[i] < 0 || v[i] >= rows)
      return false; /* the CPU kernel names the bad id */
  return true;
}

/* ai.tacoc.EmbedLayerNormalization[WithSegment] with int64 ids and float32
 * tables (the CPU kernel's checks; ids out of range go to it for its error). */
static bool try_embed(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                      tc_rt_tensor *out, tc_status *st) {
  bool seg = n->n_inputs == 7;
  if (n->n_inputs != 5 && !seg)
    return false;
  for (size_t i = 0; i < n->n_inputs; i++)
    if (!in[i])
      return false;
  const tc_rt_tensor *ids = in[0], *sids = seg ? in[1] : NULL, *w = in[seg ? 2 : 1],
                     *p = in[seg ? 3 : 2], *t = seg ? in[4] : NULL, *g = in[seg ? 5 : 3],
                     *b = in[seg ? 6 : 4];
  const tc_rt_tensor *tabs[3] = {w, p, t};
  int64_t H = w->rank == 2 ? w->dims[1] : 0;
  for (int i = 0; i < 3; i++)
    if (tabs[i] && (tabs[i]->dtype != TC_DTYPE_F32 || tabs[i]->rank != 2 || tabs[i]->dims[1] != H))
      return false;
  if (ids->rank != 2 || g->dtype != TC_DTYPE_F32 || b->dtype != TC_DTYPE_F32 ||
      tc_rt_numel(g) != (size_t)H || tc_rt_numel(b) != (size_t)H || ids->dims[1] > p->dims[0] ||
      !ids_in_range(r, n, 0, ids, w->dims[0]) ||
      (seg && (sids->rank != 2 || sids->dims[0] != ids->dims[0] || sids->dims[1] != ids->dims[1] ||
               !ids_in_range(r, n, 1, sids, t->dims[0]))) ||
      !tc_rt_numel(ids) || H <= 0)
    return false;
  int64_t dims[3] = {ids->dims[0], ids->dims[1], H};
  const void *pi, *ps = NULL, *pw, *pp, *pt = NULL, *pg, *pb;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  size_t base = seg ? 2 : 1;
  if ((*st = dev_input(r, n, 0, ids, &pi)) || (seg && (*st = dev_input(r, n, 1, sids, &ps))) ||
      (*st = dev_input(r, n, base, w, &pw)) || (*st = dev_input(r, n, base + 1, p, &pp)) ||
      (seg && (*st = dev_input(r, n, 4, t, &pt))) || (*st = dev_input(r, n, seg ? 5 : 3, g, &pg)) ||
      (*st = dev_input(r, n, seg ? 6 : 4, b, &pb)) ||
      (*st = dev_output(r, n, k, out, 0, TC_DTYPE_F32, 3, dims, &py)))
    return true;
  if (c->b.embed_ln(c->ctx, pi, ps, pw, pp, pt, pg, pb, py, dims[0], dims[1], H,
                    tc_attr_float(n, "epsilon", 1e-12f), why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* Cast between float32, float16 and bfloat16. */
static bool try_cast(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                     tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  int32_t to = (int32_t)tc_attr_int(n, "to", 0);
  if (!x || !is_float(x->dtype) || !is_float(to) || !tc_rt_numel(x))
    return false;
  const void *px;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, x, &px)) ||
      (*st = dev_output(r, n, k, out, 0, to, x->rank, x->dims, &py)))
    return true;
  if (c->b.cast(c->ctx, x->dtype, to, px, py, tc_rt_numel(x), why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* The ints attribute name of n when it has exactly count values (else
 * dflt for every one); false when it has another count. */
static bool ints_attr(const tc_node *n, const char *name, size_t count, int64_t dflt,
                      int64_t *out) {
  const int64_t *v;
  ptrdiff_t len = tc_attr_ints(n, name, &v);
  if (len >= 0 && (size_t)len != count)
    return false;
  for (size_t i = 0; i < count; i++)
    out[i] = len >= 0 ? v[i] : dflt;
  return true;
}

/* The 2-D window of a Conv or MaxPool node on NCHW input x: auto_pad NOTSET
 * or VALID, pads, strides, dilations and kernel_shape (which must agree
 * with kh x kw when those are known, 0 otherwise); fills p's input, window
 * and output sizes. false for what the GPU path does not take. */
static bool window_2d(const tc_node *n, const tc_rt_tensor *x, int64_t kh, int64_t kw,
                      tc_cuda_conv *p) {
  const tc_attr *ap = tc_node_attr(n, "auto_pad");
  bool valid = ap && ap->s.len == 5 && !memcmp(ap->s.data, "VALID", 5);
  int64_t pads[4], strides[2], dil[2], ks[2];
  if ((ap && !valid && !(ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6))) ||
      !ints_attr(n, "pads", 4, 0, pads) || !ints_attr(n, "strides", 2, 1, strides) ||
      !ints_attr(n, "dilations", 2, 1, dil) || !ints_attr(n, "kernel_shape", 2, 0, ks) ||
      (kh && ks[0] && (ks[0] != kh || ks[1] != kw)))
    return false;
  if (valid)
    memset(pads, 0, sizeof pads);
  *p = (tc_cuda_conv){.dtype = x->dtype,
                      .N = x->dims[0],
                      .C = x->dims[1],
                      .H = x->dims[2],
                      .W = x->dims[3],
                      .KH = kh ? kh : ks[0],
                      .KW = kh ? kw : ks[1],
                      .sh = strides[0],
                      .sw = strides[1],
                      .ph = pads[0],
                      .pw = pads[1],
                      .dh = dil[0],
                      .dw = dil[1]};
  if (p->KH <= 0 || p->KW <= 0 || p->sh <= 0 || p->sw <= 0 || p->dh <= 0 || p->dw <= 0 ||
      pads[0] < 0 || pads[1] < 0 || pads[2] < 0 || pads[3] < 0)
    return false;
  p->OH = (p->H + pads[0] + pads[2] - p->dh * (p->KH - 1) - 1) / p->sh + 1;
  p->OW = (p->W + pads[1] + pads[3] - p->dw * (p->KW - 1) - 1) / p->sw + 1;
  return p->OH > 0 && p->OW > 0 && p->N && p->C;
}

/* 2-D Conv, ai.tacoc.ConvRelu and ConvAddRelu: one group, explicit pads
 * (auto_pad NOTSET or VALID), operands of one floating type. */
static bool try_conv(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                     tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0], *w = n->n_inputs > 1 ? in[1] : NULL,
                     *b = n->n_inputs > 2 ? in[2] : NULL, *z = n->n_inputs > 3 ? in[3] : NULL;
  bool add = !strcmp(n->op_type, "ConvAddRelu"), relu = add || !strcmp(n->op_type, "ConvRelu");
  if (!x || !w || x->rank != 4 || w->rank != 4 || !is_float(x->dtype) || w->dtype != x->dtype ||
      (b && (b->dtype != x->dtype || tc_rt_numel(b) != (size_t)w->dims[0])) ||
      (z && (!add || z->dtype != x->dtype)) || (add && !z) || tc_attr_int(n, "group", 1) != 1 ||
      w->dims[1] != x->dims[1])
    return false;
  tc_cuda_conv p;
  if (!window_2d(n, x, w->dims[2], w->dims[3], &p) || !w->dims[0])
    return false;
  p.M = w->dims[0];
  p.act = relu ? TC_CUDA_EPI_RELU : TC_CUDA_EPI_NONE;
  int64_t dims[4] = {p.N, p.M, p.OH, p.OW};
  if (z && (z->rank != 4 || memcmp(z->dims, dims, sizeof dims)))
    return false;
  const void *px, *pw, *pb = NULL, *pz = NULL;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, x, &px)) || (*st = dev_input(r, n, 1, w, &pw)) ||
      (b && (*st = dev_input(r, n, 2, b, &pb))) || (z && (*st = dev_input(r, n, 3, z, &pz))) ||
      (*st = dev_output(r, n, k, out, 0, x->dtype, 4, dims, &py)))
    return true;
  if (c->b.conv2d(c->ctx, &p, px, pw, pb, pz, py, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* 2-D MaxPool without indices, floor sizes (ceil_mode 0), row-major
 * storage, explicit or VALID pads. */
static bool try_maxpool(tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                        const tc_rt_tensor *const *in, tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  tc_cuda_conv p;
  if (!x || x->rank != 4 || !is_float(x->dtype) || (n->n_outputs > 1 && n->outputs[1]) ||
      tc_attr_int(n, "ceil_mode", 0) || tc_attr_int(n, "storage_order", 0) ||
      !window_2d(n, x, 0, 0, &p) || p.ph >= p.KH || p.pw >= p.KW)
    return false;
  int64_t dims[4] = {p.N, p.C, p.OH, p.OW};
  const void *px;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, x, &px)) ||
      (*st = dev_output(r, n, k, out, 0, x->dtype, 4, dims, &py)))
    return true;
  if (c->b.maxpool(c->ctx, &p, px, py, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

static bool try_gavgpool(tc_run *r, const tc_node *n, tc_kernel_ctx *k,
                         const tc_rt_tensor *const *in, tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  if (!x || x->rank < 3 || !is_float(x->dtype) || !tc_rt_numel(x))
    return false;
  int64_t dims[TC_MAX_DIMS], planes = x->dims[0] * x->dims[1];
  int64_t len = (int64_t)tc_rt_numel(x) / planes;
  for (size_t d = 0; d < x->rank; d++)
    dims[d] = d < 2 ? x->dims[d] : 1;
  const void *px;
  void *py;
  tc_cuda_state *c = r->s->cuda;
  char why[1024];
  if ((*st = dev_input(r, n, 0, x, &px)) ||
      (*st = dev_output(r, n, k, out, 0, x->dtype, x->rank, dims, &py)))
    return true;
  if (c->b.gavgpool(c->ctx, x->dtype, px, py, planes, len, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

/* Reshape, Flatten, Squeeze, Unsqueeze, Identity of a value only on the
 * device (its host buffer is the run's own): the same bytes under another
 * shape. The CPU kernel makes the output's
 * shape (it reads only the shape inputs, which are on the host; the data it
 * copies or aliases is stale and nobody reads it), the bytes are copied on
 * the device. A value only on the host takes the plain CPU path. */
static bool try_view(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                     tc_rt_tensor *out, tc_status *st) {
  const tc_rt_tensor *x = in[0];
  tc_cuda_state *c = r->s->cuda;
  if (!x || !n->inputs[0] || r->cu->where[n->inputs[0]->id] != ON_DEV || n->n_outputs != 1 ||
      !n->outputs[0])
    return false; /* on the host too: the CPU kernel, which may alias it, needs no copy */
  for (size_t i = 1; i < n->n_inputs; i++) /* shape / axes inputs */
    if (n->inputs[i] && r->cu->where[n->inputs[i]->id] == ON_DEV)
      return false;
  if ((*st = r->s->kernels[n->id]->run(k, in, n->n_inputs, out, n->n_outputs)))
    return true;
  if (out[0].bytes != x->bytes) {
    *st = cuda_error(r, n, "the output's size differs from the input's");
    return true;
  }
  void *py;
  char why[1024];
  if ((*st = run_alloc(r, n, out[0].bytes, &py)))
    return true;
  r->cu->dev[n->outputs[0]->id] = py;
  if (c->b.copy(c->ctx, py, r->cu->dev[n->inputs[0]->id], out[0].bytes, why, sizeof why))
    *st = cuda_error(r, n, why);
  else
    *st = finish_outputs(r, n, out);
  return true;
}

bool tc_cuda_try(tc_run *r, const tc_node *n, tc_kernel_ctx *k, const tc_rt_tensor *const *in,
                 tc_rt_tensor *out, tc_status *st) {
  tc_cuda_state *c = r->s->cuda;
  switch (c->place[n->id]) {
  case PLACE_MATMUL: return try_matmul(r, n, k, in, out, st);
  case PLACE_GEMM: return try_gemm(r, n, k, in, out, st);
  case PLACE_ROW: return try_row(r, n, k, in, out, st);
  case PLACE_BINARY: return try_binary(r, n, k, in, out, st);
  case PLACE_ATTENTION: return try_attention(r, n, k, in, out, st);
  case PLACE_EMBED: return try_embed(r, n, k, in, out, st);
  case PLACE_CAST: return try_cast(r, n, k, in, out, st);
  case PLACE_CONV: return try_conv(r, n, k, in, out, st);
  case PLACE_MAXPOOL: return try_maxpool(r, n, k, in, out, st);
  case PLACE_GAVGPOOL: return try_gavgpool(r, n, k, in, out, st);
  case PLACE_VIEW: return try_view(r, n, k, in, out, st);
  default: return false;
  }
}
