/* The executor: a session binds a kernel to every node of a model once; a
 * run walks the nodes in order, each kernel allocating its outputs from the
 * run's arena, and copies the graph outputs out for the caller.
 *
 * If, Loop, Scan and SequenceMap run their subgraphs through the same
 * executor (control.c); subgraphs read outer-scope values from the run's
 * value table.
 *
 * A model that calls model-local functions libtacort has no kernel for runs
 * on the session's own copy of its main graph with those calls inlined
 * (inline.c).
 *
 * Sparse initializers are made dense when the session is created, and so is
 * the memory plan when shape inference knows every size from the declared
 * input shapes (static_plan; otherwise the first run of each input shape
 * is traced, plan.c). Sequence and optional values: kernels/seqops.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda_exec.h"
#include "exec.h"
#include "inline.h"
#include "layout.h"
#include "onnx_io.h"
#include "shapes.h"

void tc_ndarray_release(tc_ndarray *t) {
  if (!t)
    return;
  if (t->dtype == TC_DTYPE_SEQUENCE && t->data)
    for (size_t i = 0; i < t->size / sizeof(tc_ndarray); i++)
      tc_ndarray_release(&((tc_ndarray *)t->data)[i]);
  if (t->dtype == TC_DTYPE_STRING && t->data)
    for (size_t i = 0; i < t->size / sizeof(char *); i++)
      free(((char **)t->data)[i]);
  free(t->data);
  memset(t, 0, sizeof *t);
}

static const char *nz(const char *s) { return s ? s : ""; }

tc_status tc_rt_from_ir(const tc_tensor *t, tc_arena *a, tc_rt_tensor *out, tc_diag *diag) {
  memset(out, 0, sizeof *out);
  if (t->rank > TC_MAX_RANK)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "tensor '%s' has rank %zu, above the supported %d", nz(t->name), t->rank,
                       TC_MAX_RANK);
  out->dtype = t->dtype;
  out->rank = t->rank;
  for (size_t i = 0; i < t->rank; i++)
    out->dims[i] = t->dims[i];
  size_t n = tc_tensor_numel(t);
  if (t->dtype == TC_DTYPE_STRING) {
    if (t->n_strings != n)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                         "tensor '%s' has %zu strings for %zu elements", nz(t->name), t->n_strings,
                         n);
    char **s = tc_arena_alloc(a, (n ? n : 1) * sizeof *s);
    if (!s)
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
      s[i] = tc_arena_alloc(a, t->strings[i].len + 1);
      if (!s[i])
        return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
      if (t->strings[i].len)
        memcpy(s[i], t->strings[i].data, t->strings[i].len);
    }
    out->data = s;
    out->bytes = n * sizeof *s;
    return TC_STATUS_OK;
  }
  if (!tc_dtype_known(t->dtype) || tc_dtype_bits(t->dtype) == 0)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL, "tensor '%s' has dtype %d",
                       nz(t->name), (int)t->dtype);
  const void *bytes;
  size_t len;
  void *owned;
  tc_status s = tc_tensor_raw_bytes(t, &bytes, &len, &owned, diag);
  if (s)
    return s;
  size_t want = tc_dtype_bytes(t->dtype, n);
  if (len != want) {
    free(owned);
    return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                       "tensor '%s' holds %zu bytes of data, its shape and dtype need %zu",
                       nz(t->name), len, want);
  }
  /* Copied so that every tensor is aligned and independent of the file. */
  out->data = tc_arena_memdup(a, bytes, len);
  out->bytes = len;
  free(owned);
  return out->data || !len ? TC_STATUS_OK
                           : tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
}

static tc_status bind_graph(tc_session *s, const tc_graph *g, tc_diag *diag) {
  const tc_model *m = s->m;
  for (const tc_node *n = g->first; n; n = n->next) {
    int64_t opset = tc_model_opset(m, n->domain);
    /* A call of a model-local function runs on libtacort's kernel for that
     * op when there is one (tacoc's fused ops carry their decomposition as a
     * function for other runtimes); other calls were inlined into the
     * session's copy of the graph, so one left here could not be. */
    for (size_t f = 0; f < m->n_functions; f++) {
      const tc_function *fn = &m->functions[f];
      if (fn->name && n->op_type && strcmp(fn->name, n->op_type) == 0 &&
          tc_domain_equal(fn->domain, n->domain) && !tc_kernel_find(n->op_type, n->domain, opset))
        return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, nz(n->name), n->op_type,
                           "calls the model-local function %s.%s, which libtacort has no "
                           "kernel for and could not inline",
                           nz(fn->domain), fn->name);
    }
    s->opsets[n->id] = opset;
    if (tc_is_control_op(n)) {
      tc_status st = tc_control_check(n, opset, diag);
      for (size_t a = 0; !st && a < n->n_attrs; a++)
        if (n->attrs[a].g)
          st = bind_graph(s, n->attrs[a].g, diag);
      if (st)
        return st;
      continue;
    }
    for (size_t a = 0; a < n->n_attrs; a++)
      if (n->attrs[a].g || n->attrs[a].n_graphs)
        return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, nz(n->name), nz(n->op_type),
                           "has a subgraph attribute '%s'; only If, Loop and Scan run "
                           "subgraphs",
                           nz(n->attrs[a].name));
    const tc_kernel_def *k = tc_kernel_find(n->op_type, n->domain, opset);
    if (!k)
      return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, nz(n->name), nz(n->op_type),
                         "no kernel for op %s%s%s at opset %lld",
                         tc_domain_is_onnx(n->domain) ? "" : n->domain,
                         tc_domain_is_onnx(n->domain) ? "" : ".", nz(n->op_type), (long long)opset);
    if (k->check) {
      tc_status st = k->check(n, opset, diag);
      if (st)
        return st;
    }
    s->kernels[n->id] = k;
  }
  return TC_STATUS_OK;
}

/* Initializers stored packed in raw_data or external data (the common case)
 * are used where they are: the session borrows the model anyway, so weights
 * are not held twice. Only when the bytes are 16-byte aligned (protobuf-c's
 * own allocations and tacoc's external data files are), so kernels and oneDNN
 * see aligned data; others are decoded into the session's arena. */
static bool borrow_init(const tc_tensor *t, tc_rt_tensor *out) {
  if ((t->field != TC_FIELD_RAW && t->field != TC_FIELD_EXTERNAL) || t->rank > TC_MAX_RANK ||
      t->dtype == TC_DTYPE_STRING || !tc_dtype_known(t->dtype) || tc_dtype_bits(t->dtype) < 8)
    return false;
  tc_span sp = t->data[t->field];
  const void *p = tc_span_data(sp);
  size_t want = tc_dtype_bytes(t->dtype, tc_tensor_numel(t));
  if (!p || sp.len != want || want < 4096 || ((uintptr_t)p & 15) != 0)
    return false;
  memset(out, 0, sizeof *out);
  out->dtype = t->dtype;
  out->rank = t->rank;
  for (size_t i = 0; i < t->rank; i++)
    out->dims[i] = t->dims[i];
  out->data = (void *)p; /* read-only for kernels: inputs are const */
  out->bytes = want;
  return true;
}

/* A sparse initializer made dense: zeros, and its values at its indices
 * ([NNZ] linear or [NNZ, rank] coordinates, as SparseTensorProto allows). */
static tc_status densify(tc_session *s, const tc_value *v, tc_rt_tensor *out, tc_diag *diag) {
  const tc_sparse_tensor *sp = v->sparse;
  tc_rt_tensor vals = {0}, idx = {0};
  tc_status st;
  if (!sp->values || (st = tc_rt_from_ir(sp->values, s->arena, &vals, diag)))
    return sp->values ? st
                      : tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                                    "sparse initializer '%s' has no values", v->name);
  if (sp->rank > TC_MAX_RANK || vals.rank != 1)
    return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                       "sparse initializer '%s': values must be 1-D, rank at most %d", v->name,
                       TC_MAX_RANK);
  size_t nnz = (size_t)vals.dims[0], numel = 1, es = tc_dtype_bytes(vals.dtype, 1);
  for (size_t i = 0; i < sp->rank; i++) {
    if (sp->dims[i] < 0)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                         "sparse initializer '%s' has a negative dim", v->name);
    numel *= (size_t)sp->dims[i];
  }
  if (!es || vals.dtype == TC_DTYPE_STRING)
    return tc_diag_set(diag, TC_STATUS_UNSUPPORTED, NULL, NULL,
                       "sparse initializer '%s': dtype %s is not supported", v->name,
                       tc_dtype_name(vals.dtype));
  if (nnz && (!sp->indices || (st = tc_rt_from_ir(sp->indices, s->arena, &idx, diag))))
    return sp->indices ? st
                       : tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                                     "sparse initializer '%s' has values but no indices", v->name);
  bool linear = nnz && idx.rank == 1 && (size_t)idx.dims[0] == nnz;
  bool coords =
      nnz && idx.rank == 2 && (size_t)idx.dims[0] == nnz && (size_t)idx.dims[1] == sp->rank;
  if (nnz && (!(linear || coords) || (idx.dtype != TC_DTYPE_I64 && idx.dtype != TC_DTYPE_I32)))
    return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                       "sparse initializer '%s': indices must be int64 [NNZ] or [NNZ, rank]",
                       v->name);
  out->dtype = vals.dtype;
  out->rank = sp->rank;
  memcpy(out->dims, sp->dims, sp->rank * sizeof *out->dims);
  out->bytes = numel * es;
  if (!(out->data = tc_arena_alloc(s->arena, out->bytes ? out->bytes : 1)))
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  memset(out->data, 0, out->bytes);
  for (size_t k = 0; k < nnz; k++) {
    int64_t lin = 0;
    bool ok = true;
    if (linear) {
      lin = tc_rt_get_i64(&idx, k);
      ok = lin >= 0 && (size_t)lin < numel;
    } else {
      for (size_t d = 0; d < sp->rank && ok; d++) {
        int64_t c = tc_rt_get_i64(&idx, k * sp->rank + d);
        ok = c >= 0 && c < sp->dims[d];
        lin = lin * sp->dims[d] + c;
      }
    }
    if (!ok)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                         "sparse initializer '%s': index %zu is out of its shape", v->name, k);
    memcpy((char *)out->data + (size_t)lin * es, (const char *)vals.data + k * es, es);
  }
  return TC_STATUS_OK;
}

static tc_status decode_inits(tc_session *s, const tc_graph *g, tc_diag *diag) {
  for (size_t i = 0; i < g->n_sparse_inits; i++) {
    tc_value *v = g->sparse_inits[i];
    tc_rt_tensor *t = tc_arena_alloc(s->arena, sizeof *t);
    if (!t)
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    tc_status st = densify(s, v, t, diag);
    if (st)
      return st;
    s->consts[v->id] = t;
  }
  for (size_t i = 0; i < g->n_inits; i++) {
    tc_value *v = g->inits[i];
    tc_rt_tensor *t = tc_arena_alloc(s->arena, sizeof *t);
    if (!t)
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    if (borrow_init(v->init, t)) {
      s->consts[v->id] = t;
      continue;
    }
    tc_status st = tc_rt_from_ir(v->init, s->arena, t, diag);
    if (st)
      return st;
    s->consts[v->id] = t;
  }
  for (const tc_node *n = g->first; n; n = n->next)
    for (size_t a = 0; a < n->n_attrs; a++)
      if (n->attrs[a].g) {
        tc_status st = decode_inits(s, n->attrs[a].g, diag);
        if (st)
          return st;
      }
  return TC_STATUS_OK;
}

const tc_node *tc_graph_node_named(const tc_graph *g, const char *name) {
  const tc_node *n = g->first;
  while (n && (!n->name || strcmp(n->name, name)))
    n = n->next;
  return n;
}

/* The algorithms the model asks for, by node: metadata prefix<node name> =
 * names[a - 1] (algorithm a; written by the autotuner) into *table by node
 * id. They only choose between exact ways to compute the same node
 * (convolutions: TC_CONV_ALGO_KEY "direct" | "winograd" | "gemm"; MatMul:
 * TC_GEMM_ALGO_KEY "sgemm" | "packed"), so an entry naming no main-graph
 * node or another value (a model edited after tuning) is ignored, as ONNX
 * Runtime ignores them all. */
static tc_status bind_algos(tc_session *s, const char *prefix, const char *const *names,
                            size_t n_names, unsigned char **table, tc_diag *diag) {
  const tc_model *m = s->m;
  size_t plen = strlen(prefix);
  for (size_t i = 0; m->pb && i < m->pb->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = m->pb->metadata_props[i];
    if (!e || !e->key || !e->value || strncmp(e->key, prefix, plen))
      continue;
    const tc_node *n = tc_graph_node_named(m->graph, e->key + plen);
    size_t algo = 0;
    for (size_t k = 0; k < n_names && !algo; k++)
      algo = strcmp(e->value, names[k]) ? 0 : k + 1;
    if (!n || !algo)
      continue;
    if (!*table && !(*table = tc_arena_alloc(s->arena, (m->next_node_id + 1) * sizeof **table)))
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    (*table)[n->id] = (unsigned char)algo;
  }
  return TC_STATUS_OK;
}

static tc_status bind_node_algos(tc_session *s, tc_diag *diag) {
  /* in tc_conv_algo / tc_gemm_algo order from 1 */
  static const char *const conv[] = {"direct", "winograd", "gemm", "subsample"}, *const gemm[] = {
                                                                                     "sgemm",
                                                                                     "packed"};
  tc_status st = bind_algos(s, TC_CONV_ALGO_KEY, conv, 4, &s->conv_algo, diag);
  return st ? st : bind_algos(s, TC_GEMM_ALGO_KEY, gemm, 2, &s->gemm_algo, diag);
}

#define KERNELS_KEY "ai.tacoc.kernels"
#define NODE_KEY "ai.tacoc.kernel:"

const char *tc_model_meta(const tc_model *m, const char *key) {
  if (!m->pb)
    return NULL;
  for (size_t i = 0; i < m->pb->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = m->pb->metadata_props[i];
    if (e && e->key && e->value && !strcmp(e->key, key))
      return e->value;
  }
  return NULL;
}

unsigned char *tc_read_file(const char *path, size_t *size) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  unsigned char *buf = NULL;
  long len = -1;
  if (!fseek(f, 0, SEEK_END) && (len = ftell(f)) >= 0 && !fseek(f, 0, SEEK_SET) &&
      (buf = malloc((size_t)len + 1)) && fread(buf, 1, (size_t)len, f) != (size_t)len) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *size = len > 0 ? (size_t)len : 0;
  return buf;
}

/* Whether per-node kernel spec sp was made for node n. */
static bool bind_node_kernel(const tc_node *n, const tc_cg_spec *sp) {
  tc_cg_spec want;
  if (sp->kind == TC_CG_ATTENTION)
    return tc_cg_attention_spec(n, &want) && want.flags == sp->flags;
  return sp->kind != TC_CG_EWCHAIN && tc_cg_node_spec(n, sp->cols, &want) &&
         want.kind == sp->kind && want.act == sp->act && want.flags == sp->flags;
}

/* Binds the chain ending at root when it is the one spec sp was made for
 * and none of its nodes runs another generated kernel or chain. */
static bool bind_chain(tc_session *s, const tc_node *root, tc_cg_spec *sp) {
  size_t n_ids = s->m->next_node_id + 1;
  tc_ew_chain *ch = tc_arena_alloc(s->arena, sizeof *ch);
  if (!ch || !tc_ew_chain_of(root, ch) || ch->prog.hash != sp->prog.hash ||
      ch->prog.n_in != sp->prog.n_in)
    return false;
  if (!s->chains) {
    s->chains = tc_arena_alloc(s->arena, n_ids * sizeof *s->chains);
    if (!s->chain_root) /* QDQ groups may have made it (qdq.c) */
      s->chain_root = tc_arena_alloc(s->arena, n_ids * sizeof *s->chain_root);
    if (!s->chains || !s->chain_root) {
      s->chains = NULL;
      return false;
    }
  }
  for (size_t i = 0; i < ch->n_nodes; i++) /* the model's kernel over libtacort's int8 groups */
    tc_qdq_release(s, ch->nodes[i]);
  for (size_t i = 0; i < ch->n_nodes; i++) {
    uint32_t id = ch->nodes[i]->id;
    if (s->native_fn[id] || s->chains[id] || s->chain_root[id] || (s->qdq && s->qdq[id]) ||
        (s->qdq_skip && s->qdq_skip[id]) || (s->precomputed && s->precomputed[id]))
      return false;
  }
  memcpy(ch->prog.ins, sp->prog.ins, sizeof ch->prog.ins);
  memcpy(ch->prog.types, sp->prog.types, sizeof ch->prog.types);
  ch->prog.out_type = sp->prog.out_type;
  if (!tc_ew_types_ok(&ch->prog))
    return false;
  sp->prog = ch->prog;
  s->chains[root->id] = ch;
  for (size_t i = 0; i + 1 < ch->n_nodes; i++)
    s->chain_root[ch->nodes[i]->id] = root->id + 1;
  return true;
}

/* Loads the model's kernel library and binds its nodes; any failure leaves
 * a note and the session on its own kernels. */
static void bind_native(tc_session *s, const char *lib_path) {
  const tc_model *m = s->m;
  const char *file = tc_model_meta(m, KERNELS_KEY), *want = tc_model_meta(m, KERNELS_KEY ".sha256");
  if (!file)
    return;
  char *note = s->native_note, why[256] = "";
  size_t cap = sizeof s->native_note;
  if (!want || strlen(want) != 64 || strchr(file, '/') || !strcmp(file, "..") || !file[0]) {
    snprintf(note, cap, "the model's kernel library record is malformed");
    return;
  }
  if (!m->dir && !lib_path) {
    snprintf(note, cap, "kernel library %.300s: the model was not loaded from a file", file);
    return;
  }
  char path[4096];
  if (lib_path)
    snprintf(path, sizeof path, "%s", lib_path);
  else
    snprintf(path, sizeof path, "%s/%s", m->dir, file);
  size_t size = 0;
  unsigned char *bytes = tc_read_file(path, &size);
  if (!bytes) {
    snprintf(note, cap, "kernel library %.300s cannot be read", path);
    return;
  }
  char got[65], lacking[64] = "";
  tc_sha256_hex(bytes, size, got);
  const char *feat = tc_model_meta(m, KERNELS_KEY ".features");
  for (const char *p = feat; p && *p && !lacking[0];) {
    size_t len = strcspn(p, ",");
    char name[32];
    if (len && len < sizeof name) {
      memcpy(name, p, len);
      name[len] = 0;
      if (tc_cpu_has(name) == 0)
        snprintf(lacking, sizeof lacking, "%s", name);
    }
    p += len + (p[len] == ',');
  }
  if (lacking[0]) {
    snprintf(note, cap, "kernel library %.300s needs the CPU feature %s, which this CPU lacks",
             path, lacking);
  } else if (strcmp(got, want)) {
    snprintf(note, cap, "kernel library %.300s does not match the model (sha256 %s, expected %s)",
             path, got, want);
  } else if (!(s->native_lib = tc_native_lib_open(bytes, size, why, sizeof why))) {
    snprintf(note, cap, "kernel library %.300s: %.150s", path, why);
  }
  free(bytes);
  if (!s->native_lib)
    return;
  size_t n_ids = m->next_node_id + 1;
  s->native_fn = tc_arena_alloc(s->arena, n_ids * sizeof *s->native_fn);
  s->native_spec = tc_arena_alloc(s->arena, n_ids * sizeof *s->native_spec);
  if (!s->native_fn || !s->native_spec) {
    s->native_fn = NULL;
    snprintf(note, cap, "out of memory");
    return;
  }
  size_t plen = strlen(NODE_KEY), bad = 0;
  /* per-node kernels first, then chains, which may not take a bound node */
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < m->pb->n_metadata_props; i++) {
      const Onnx__StringStringEntryProto *e = m->pb->metadata_props[i];
      if (!e || !e->key || !e->value || strncmp(e->key, NODE_KEY, plen))
        continue;
      const char *name = e->key + plen;
      tc_cg_spec *sp = tc_arena_alloc(s->arena, sizeof *sp);
      const tc_node *n = tc_graph_node_named(m->graph, name);
      if (!sp || !tc_cg_spec_parse(e->value, sp)) {
        bad += pass == 0;
        continue;
      }
      if ((sp->kind == TC_CG_EWCHAIN) != (pass == 1))
        continue;
      tc_cg_row_fn fn = n ? tc_native_lib_sym(s->native_lib, sp->sym) : NULL;
      bool ok = fn && (pass == 0 ? bind_node_kernel(n, sp) : bind_chain(s, n, sp));
      if (!ok) {
        bad++;
        continue;
      }
      s->native_fn[n->id] = fn;
      s->native_spec[n->id] = sp;
      s->native_count++;
    }
  if (bad)
    snprintf(note, cap, "%zu of the kernel library's node bindings do not match the model", bad);
}

size_t tc_session_native_nodes(const tc_session *s) { return s ? s->native_count : 0; }
size_t tc_session_static_plan_bytes(const tc_session *s) { return s ? s->static_plan_bytes : 0; }
size_t tc_session_precomputed_nodes(const tc_session *s) { return s ? s->n_precomputed : 0; }

size_t tc_session_algo_nodes(const tc_session *s, size_t *packed) {
  size_t n = 0, p = 0;
  for (size_t i = 0; s && i <= s->m->next_node_id; i++) {
    n += (s->conv_algo && s->conv_algo[i]) + (s->gemm_algo && s->gemm_algo[i]);
    p += s->gemm_algo && s->gemm_algo[i] == TC_GEMM_ALGO_PACKED;
  }
  if (packed)
    *packed = p;
  return n;
}

int omp_get_max_threads(void);
int omp_get_num_procs(void);
void omp_set_num_threads(int n);

int tc_session_threads(const tc_session *s) {
  return s && s->threads && !tc_threads_explicit() ? s->threads : omp_get_max_threads();
}

/* TC_THREADS_KEY = "N/M": N threads, when this machine has M cores. */
static void bind_threads(tc_session *s) {
  const char *v = tc_model_meta(s->m, TC_THREADS_KEY);
  int n = 0, cores = 0, used = 0;
  if (v && sscanf(v, "%d/%d%n", &n, &cores, &used) == 2 && !v[used] && n >= 1 && n <= cores &&
      cores == omp_get_num_procs())
    s->threads = n;
}
const char *tc_session_native_note(const tc_session *s) {
  if (!s)
    return "";
  return s->native_note[0] ? s->native_note : tc_cuda_session_note(s->cuda);
}

tc_status tc_session_new(const tc_model *m, tc_session **out, tc_diag *diag) {
  return tc_session_new_ex(m, NULL, out, diag);
}

static tc_status session_new(const tc_model *m, bool native, bool cpu, const char *lib_path,
                             tc_session **out, tc_diag *diag);

tc_status tc_session_new_ex(const tc_model *m, const tc_session_options *opts, tc_session **out,
                            tc_diag *diag) {
  tc_diag local = {0};
  if (!diag)
    diag = &local;
  int target = opts ? opts->target : TC_TARGET_CPU;
  if (target != TC_TARGET_CPU && target != TC_TARGET_CUDA)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "unknown target %d", target);
  bool native = opts && opts->allow_native_code;
  tc_status st = session_new(m, native, target == TC_TARGET_CPU, NULL, out, diag);
  if (st || target != TC_TARGET_CUDA)
    return st;
  tc_layout_unbind(*out); /* the GPU's kernels take plain tensors */
  if ((st = tc_cuda_session_init(*out, opts->device, native, opts->cuda_gemm_search, diag))) {
    tc_diag_set_file(diag, m->path);
    tc_session_free(*out);
    *out = NULL;
  }
  return st;
}

size_t tc_session_gpu_nodes(const tc_session *s) {
  return s ? tc_cuda_session_gpu_nodes(s->cuda) : 0;
}
void tc_session_gpu_gemm_search(const tc_session *s, size_t *shapes, double *chosen_us,
                                double *first_us) {
  tc_cuda_session_gemm_search(s ? s->cuda : NULL, shapes, chosen_us, first_us);
}

const char *tc_session_device(const tc_session *s) {
  return s ? tc_cuda_session_device(s->cuda) : "";
}

tc_status tc_session_new_with_kernels(const tc_model *m, const char *lib_path, tc_session **out,
                                      tc_diag *diag) {
  return session_new(m, true, true, lib_path, out, diag);
}

/* v's statically known tensor (dtype, dims, bytes; no data) in fake[v->id],
 * or NULL when its size is not known before a run. */
static tc_rt_tensor *static_tensor(const tc_shapes *sh, const tc_value *v, tc_rt_tensor *fake) {
  const tc_shape *x = tc_shape_of(sh, v);
  if (!x->known || !x->dtype || x->dtype == TC_DTYPE_STRING || x->rank > TC_MAX_RANK)
    return NULL;
  tc_rt_tensor *t = &fake[v->id];
  size_t n = 1;
  for (size_t d = 0; d < x->rank; d++) {
    if (x->dims[d].sym || x->dims[d].v < 0 ||
        (x->dims[d].v && n > SIZE_MAX / 16 / (size_t)x->dims[d].v))
      return NULL;
    t->dims[d] = x->dims[d].v;
    n *= (size_t)x->dims[d].v;
  }
  t->dtype = x->dtype;
  t->rank = x->rank;
  t->bytes = tc_dtype_bytes(x->dtype, n);
  return t;
}

/* The memory plan for input shapes from shape inference, when every
 * input's shape is fixed and every main-graph kernel output's size follows
 * from it; NULL otherwise (symbolic or data-dependent sizes: plans then come
 * from each signature's first run) or without memory. run_vals: a run's
 * values by id, whose input dims are taken, and run_sig its signature (no
 * plan unless the inferred one matches); NULL: the declared shapes. A size
 * inference got wrong only costs that tensor its slot (plan.c). */
static tc_plan *inferred_plan(tc_session *s, tc_rt_tensor *const *run_vals, const int64_t *run_sig,
                              size_t run_n_sig) {
  const tc_graph *g = s->m->graph;
  size_t nv = s->m->next_value_id + 1, ni = g->n_inputs;
  const int64_t **dims = run_vals ? calloc(ni ? ni : 1, sizeof *dims) : NULL;
  size_t *ranks = run_vals ? calloc(ni ? ni : 1, sizeof *ranks) : NULL;
  for (size_t i = 0; dims && ranks && i < ni; i++) {
    const tc_rt_tensor *t = run_vals[g->inputs[i].value->id];
    if (t && t->rank <= TC_MAX_RANK) {
      dims[i] = t->dims;
      ranks[i] = t->rank;
    }
  }
  tc_shapes *sh = !ni || (run_vals && (!dims || !ranks)) ? NULL
                  : run_vals                             ? tc_shapes_infer_bound(g, dims, ranks)
                                                         : tc_shapes_infer_private(g);
  tc_rt_tensor *fake = sh ? calloc(nv, sizeof *fake) : NULL;
  tc_rt_tensor **vals = fake ? calloc(nv, sizeof *vals) : NULL;
  bool ok = vals != NULL;
  for (size_t i = 0; ok && i < ni; i++)
    ok = (vals[g->inputs[i].value->id] = static_tensor(sh, g->inputs[i].value, fake)) != NULL;
  for (const tc_node *n = g->first; ok && n; n = n->next) {
    if (!s->kernels[n->id] || (s->qdq_skip && s->qdq_skip[n->id]) ||
        (s->chain_root && s->chain_root[n->id]) || (s->precomputed && s->precomputed[n->id]))
      continue; /* control flow (may hand out aliases), or not run */
    for (size_t o = 0; ok && o < n->n_outputs; o++)
      if (n->outputs[o])
        ok = (vals[n->outputs[o]->id] = static_tensor(sh, n->outputs[o], fake)) != NULL;
  }
  int64_t sig[256];
  size_t n_sig = ok ? tc_plan_signature(s, vals, sig, sizeof sig / sizeof sig[0]) : 0;
  /* keyed as the run will look it up (inference gives the inputs' declared
   * dtypes, which bind_inputs has checked) */
  bool same = !run_vals || (n_sig == run_n_sig && !memcmp(sig, run_sig, n_sig * sizeof *sig));
  tc_plan *p = n_sig && same ? tc_plan_build(s, vals, sig, n_sig) : NULL;
  free(vals);
  free(fake);
  free(dims);
  free(ranks);
  tc_shapes_free(sh);
  return p;
}

/* The plan for the declared input shapes, made when the session is: the
 * first run is planned too. */
static void static_plan(tc_session *s) {
  if ((s->plans = inferred_plan(s, NULL, NULL, 0)))
    s->static_plan_bytes = tc_plan_total(s->plans);
}

/* Limits of precompute_constants: one output, and all of them. */
#define PRECOMPUTE_MAX_OUTPUT ((size_t)1 << 30)
#define PRECOMPUTE_MAX_TOTAL ((size_t)2 << 30)

static void unref_buffer(void *b) { tc_buffer_unref(b); }

/* Moves precomputed output t of value v out of the scratch arena into a
 * buffer the session's arena releases. A value some node reads as its
 * input 1 (a convolution's or MatMul's weights) is also registered with
 * the weights cache (tc_dnnl_weights_register), so that those nodes cache
 * it reordered as they do initializers: weights that a model computes from
 * constants (a ConstantOfShape, a Cast of float16 weights) too big for the
 * compiler to fold were reordered on every run, and never took Winograd.
 * False when memory runs out. */
static bool keep_output(tc_session *s, const tc_value *v, tc_rt_tensor *t) {
  if (t->dtype == TC_DTYPE_STRING) { /* pointers to strings in the scratch arena: copied too */
    size_t n = tc_rt_numel(t);
    char **src = t->data, **dst = tc_arena_alloc(s->arena, (n ? n : 1) * sizeof *dst);
    for (size_t i = 0; dst && i < n; i++)
      if (src[i] && !(dst[i] = tc_arena_strdup(s->arena, src[i])))
        return false;
    t->data = dst;
    return dst != NULL;
  }
  tc_buffer *buf = tc_buffer_new(t->bytes);
  if (!buf)
    return false;
  if (tc_arena_on_free(s->arena, unref_buffer, buf) != 0) {
    tc_buffer_unref(buf);
    return false;
  }
  if (t->bytes)
    memcpy(tc_buffer_data(buf), t->data, t->bytes);
  t->data = tc_buffer_data(buf);
  bool weights = false;
  for (size_t i = 0; i < v->n_uses && !weights; i++)
    weights = v->uses[i].slot == 1;
  if (weights && t->bytes &&
      (t->dtype == TC_DTYPE_F32 || tc_dtype_is_half(t->dtype) || t->dtype == TC_DTYPE_I8) &&
      !tc_dnnl_weights_register(s->arena, tc_buffer_ref(buf)))
    tc_buffer_unref(buf);
  return true;
}

/* Main-graph nodes whose inputs are all constant (initializers that are
 * not graph inputs, or outputs of such nodes) run once here, as ONNX
 * Runtime folds constants when it loads a model: their outputs become
 * session constants and runs pass over them (a per-run DequantizeLinear of
 * a constant weight, a weight Transpose, a ConstantOfShape of a
 * classifier's weights). Each runs in a scratch arena and its outputs move
 * into buffers of their own (keep_output): one copy of each in memory.
 * Left to run time: random ops, control flow, nodes bound to int8 kernels
 * or not run at all (qdq.c), outputs above PRECOMPUTE_MAX_OUTPUT or beyond
 * PRECOMPUTE_MAX_TOTAL in all, and any node whose kernel fails here (the
 * run then reports it). CPU sessions only. */
static void precompute_constants(tc_session *s) {
  const tc_graph *g = s->m->graph;
  size_t n_ids = s->m->next_node_id + 1, total = 0;
  tc_arena *tmp = tc_arena_new();
  for (const tc_node *n = tmp ? g->first : NULL; n; n = n->next, tc_arena_reset(tmp)) {
    if (!s->kernels[n->id] || tc_op_is_random(n) || tc_is_op(n, "Dropout") || !n->n_outputs ||
        (s->qdq && s->qdq[n->id]) || (s->qdq_skip && s->qdq_skip[n->id]))
      continue;
    bool constant = true;
    for (size_t i = 0; constant && i < n->n_inputs; i++) {
      const tc_value *v = n->inputs[i];
      constant = !v || (s->consts[v->id] && !tc_value_is_input(v));
    }
    const tc_rt_tensor **in = constant ? tc_arena_alloc(tmp, (n->n_inputs + 1) * sizeof *in) : NULL;
    if (!in)
      continue;
    for (size_t i = 0; i < n->n_inputs; i++)
      in[i] = n->inputs[i] ? s->consts[n->inputs[i]->id] : NULL;
    tc_rt_tensor *out = tc_arena_alloc(tmp, n->n_outputs * sizeof *out);
    tc_diag d = {0};
    tc_kernel_ctx k = {.node = n, .opset = s->opsets[n->id], .diag = &d, .arena = tmp};
    if (!out || s->kernels[n->id]->run(&k, in, n->n_inputs, out, n->n_outputs))
      continue;
    size_t bytes = 0;
    bool ok = true;
    for (size_t o = 0; o < n->n_outputs; o++) {
      ok &= !n->outputs[o] || (out[o].dtype != TC_DTYPE_SEQUENCE && out[o].dtype != TC_DTYPE_NONE &&
                               out[o].bytes <= PRECOMPUTE_MAX_OUTPUT);
      bytes += n->outputs[o] ? out[o].bytes : 0;
    }
    if (!ok || total + bytes > PRECOMPUTE_MAX_TOTAL)
      continue;
    tc_rt_tensor *kept = tc_arena_memdup(s->arena, out, n->n_outputs * sizeof *out);
    for (size_t o = 0; kept && o < n->n_outputs; o++)
      if (n->outputs[o] && !keep_output(s, n->outputs[o], &kept[o]))
        kept = NULL;
    if (!kept || (!s->precomputed && !(s->precomputed = tc_arena_alloc(s->arena, n_ids))))
      break; /* out of memory: the rest runs at run time */
    total += bytes;
    for (size_t o = 0; o < n->n_outputs; o++)
      if (n->outputs[o])
        s->consts[n->outputs[o]->id] = &kept[o];
    s->precomputed[n->id] = 1;
    s->n_precomputed++;
  }
  tc_arena_free(tmp);
}

static tc_status session_new(const tc_model *m, bool native, bool cpu, const char *lib_path,
                             tc_session **out, tc_diag *diag) {
  tc_diag local = {0};
  if (!diag)
    diag = &local;
  if (!m || !out)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "no model or result pointer given");
  *out = NULL;
  tc_session *s = calloc(1, sizeof *s);
  tc_status st = TC_STATUS_NOMEM;
  if (!s || !(s->arena = tc_arena_new()))
    goto fail;
  /* Calls of functions without a kernel run as their bodies, inlined into
   * the session's own copy of the main graph (the model stays as it is). */
  if (tc_model_needs_inlining(m)) {
    if ((st = tc_model_inlined_copy(m, &s->own_model, diag)))
      goto fail;
    m = s->own_model;
  }
  s->m = m;
  pthread_mutex_init(&s->lock, NULL);
  s->kernels = tc_arena_alloc(s->arena, (m->next_node_id + 1) * sizeof *s->kernels);
  s->opsets = tc_arena_alloc(s->arena, (m->next_node_id + 1) * sizeof *s->opsets);
  s->consts = tc_arena_alloc(s->arena, (m->next_value_id + 1) * sizeof *s->consts);
  if (!s->kernels || !s->opsets || !s->consts)
    goto fail;
  if ((st = bind_graph(s, m->graph, diag)) || (st = decode_inits(s, m->graph, diag)))
    goto fail;
  tc_qdq_bind_session(s);
  if ((st = bind_node_algos(s, diag)))
    goto fail;
  if (cpu && !getenv("TACORT_NO_PRECOMPUTE"))
    precompute_constants(s);
  if (native)
    bind_native(s, lib_path);
  tc_layout_bind(s);
  static_plan(s);
  bind_threads(s);
  *out = s;
  return TC_STATUS_OK;
fail:
  if (st == TC_STATUS_NOMEM && !diag->status)
    tc_diag_set(diag, st, NULL, NULL, "out of memory");
  tc_diag_set_file(diag, m ? m->path : NULL);
  tc_session_free(s);
  return st;
}

void tc_session_set_profiling(tc_session *s, int on) {
  if (!s)
    return;
  if (!on) {
    s->prof = NULL; /* the table stays in the session's arena */
    return;
  }
  size_t n = 2 * ((size_t)s->m->next_node_id + 1);
  if (!s->prof_table)
    s->prof_table = tc_arena_alloc(s->arena, n * sizeof *s->prof_table);
  if (s->prof_table)
    memset(s->prof_table, 0, n * sizeof *s->prof_table);
  s->prof = s->prof_table;
}

static size_t profile_graph(const tc_session *s, const tc_graph *g, tc_profile_entry *out,
                            size_t cap, size_t k) {
  for (const tc_node *n = g->first; n; n = n->next) {
    if (s->prof_table[2 * n->id] > 0) {
      const tc_value *o = n->n_outputs ? n->outputs[0] : NULL;
      if (k < cap)
        out[k] = (tc_profile_entry){n->name ? n->name : "", n->op_type ? n->op_type : "",
                                    o && o->name ? o->name : "", s->prof_table[2 * n->id],
                                    s->prof_table[2 * n->id + 1]};
      k++;
    }
    for (size_t i = 0; i < n->n_attrs; i++)
      for (size_t j = 0; j < n->attrs[i].n_graphs; j++)
        k = profile_graph(s, n->attrs[i].graphs[j], out, cap, k);
  }
  return k;
}

size_t tc_session_profile(const tc_session *s, tc_profile_entry *out, size_t cap) {
  if (!s || !s->prof_table)
    return 0;
  return profile_graph(s, s->m->graph, out, cap, 0);
}

void tc_session_free(tc_session *s) {
  if (!s)
    return;
  tc_plan_free_list(s->plans);
  tc_native_lib_close(s->native_lib);
  tc_cuda_session_free(s->cuda);
  for (size_t i = 0; i < 8; i++)
    free(s->pool[i]);
  for (size_t i = 0; i < sizeof s->arenas / sizeof s->arenas[0]; i++)
    tc_arena_free(s->arenas[i]);
  pthread_mutex_destroy(&s->lock);
  tc_arena_free(s->arena);
  tc_model_inlined_copy_free(s->own_model); /* last: caches hook the model's arena */
  free(s);
}

/* Checks a caller's tensor's rank and dims (dims_only) or also that its
 * size matches its dtype and dims. */
static tc_status check_payload(const char *name, const tc_ndarray *in, bool dims_only,
                               tc_diag *diag) {
  if (in->rank > TC_MAX_DIMS)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s': rank %zu is above %d", name,
                       in->rank, TC_MAX_DIMS);
  size_t n = 1;
  for (size_t i = 0; i < in->rank; i++) {
    if (in->dims[i] < 0)
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s': dim %zu is negative", name,
                         i);
    n *= (size_t)in->dims[i];
  }
  size_t want = in->dtype == TC_DTYPE_STRING ? n * sizeof(char *) : tc_dtype_bytes(in->dtype, n);
  if (!dims_only && (!tc_dtype_known(in->dtype) || in->size != want || (want && !in->data)))
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL,
                       "input '%s': %zu bytes given, dtype %s and the shape need %zu", name,
                       in->size, tc_dtype_name(in->dtype), want);
  return TC_STATUS_OK;
}

/* Checks a caller's sequence: its elements are tensors of one dtype (the
 * declared one, when declared). */
static tc_status check_sequence(const tc_value *v, const tc_ndarray *in, tc_diag *diag) {
  const tc_ndarray *e = in->data;
  if (in->rank != 1 || in->dims[0] < 0 || in->size != (size_t)in->dims[0] * sizeof *e ||
      (in->dims[0] && !e))
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL,
                       "input '%s': a sequence needs rank 1, dims[0] elements and size "
                       "dims[0] * sizeof(tc_ndarray)",
                       v->name);
  int32_t want = v->type.elem ? v->type.elem : (int32_t)in->dims[1];
  for (int64_t i = 0; i < in->dims[0]; i++) {
    if (e[i].dtype != want)
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL,
                         "input '%s': element %lld is %s, the sequence holds %s", v->name,
                         (long long)i, tc_dtype_name(e[i].dtype), tc_dtype_name(want));
    tc_status st = check_payload(v->name, &e[i], false, diag);
    if (st)
      return st;
  }
  return TC_STATUS_OK;
}

/* Checks a caller's tensor against the graph input's declared type. */
static tc_status check_input(const tc_value *v, const tc_ndarray *in, tc_diag *diag) {
  const tc_type *t = &v->type;
  bool seq = in->dtype == TC_DTYPE_SEQUENCE, none = in->dtype == TC_DTYPE_NONE;
  if (t->kind == TC_TYPE_OPTIONAL && none)
    return TC_STATUS_OK;
  if (t->kind == TC_TYPE_SEQUENCE || (t->kind == TC_TYPE_OPTIONAL && seq)) {
    if (!seq)
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s' must be a sequence", v->name);
    return check_sequence(v, in, diag);
  }
  if (seq || none)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s' must be a tensor", v->name);
  tc_status st = check_payload(v->name, in, true, diag);
  if (st || t->kind != TC_TYPE_TENSOR)
    return st ? st : check_payload(v->name, in, false, diag);
  if (t->elem && in->dtype != t->elem)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s' must be %s, got %s", v->name,
                       tc_dtype_name(t->elem), tc_dtype_name(in->dtype));
  if (t->has_shape && t->rank != in->rank)
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s' must have rank %zu, got %zu",
                       v->name, t->rank, in->rank);
  for (size_t i = 0; t->has_shape && i < t->rank; i++)
    /* A negative dim_value (older exporters write -1) means unknown, as in ONNX Runtime. */
    if (t->dims[i].kind == TC_DIM_VALUE && t->dims[i].value >= 0 && t->dims[i].value != in->dims[i])
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL,
                         "input '%s': dim %zu must be %lld, got %lld", v->name, i,
                         (long long)t->dims[i].value, (long long)in->dims[i]);
  return check_payload(v->name, in, false, diag);
}

/* The run's view of a caller's value (a sequence's elements converted into
 * the arena; tensor data stay the caller's). */
static bool view_input(const tc_ndarray *in, tc_rt_tensor *t, tc_arena *a) {
  t->dtype = in->dtype;
  t->rank = in->rank;
  memcpy(t->dims, in->dims, sizeof t->dims);
  t->data = in->data;
  t->bytes = in->size;
  if (in->dtype != TC_DTYPE_SEQUENCE)
    return true;
  size_t n = (size_t)in->dims[0];
  tc_rt_tensor *e = tc_arena_alloc(a, (n ? n : 1) * sizeof *e);
  if (!e)
    return false;
  for (size_t i = 0; i < n; i++)
    view_input(&((const tc_ndarray *)in->data)[i], &e[i], a);
  t->data = e;
  t->bytes = n * sizeof *e;
  return true;
}

static tc_status bind_inputs(const tc_session *s, size_t n_inputs, const char *const *names,
                             const tc_ndarray *inputs, tc_rt_tensor **vals, tc_arena *a,
                             tc_diag *diag) {
  const tc_graph *g = s->m->graph;
  for (size_t i = 0; i < n_inputs; i++) {
    const tc_value *v = names[i] ? tc_graph_lookup_local(g, names[i]) : NULL;
    if (v && (v->flags & TC_VALUE_INPUT) && !tc_value_is_input(v))
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL,
                         "'%s' is a constant, not an input: the model's IR version %lld lists its "
                         "initializers as inputs, and they cannot be fed",
                         v->name, (long long)s->m->ir_version);
    if (!v || !(v->flags & TC_VALUE_INPUT))
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "the model has no input named '%s'",
                         nz(names[i]));
    if (vals[v->id] && vals[v->id] != s->consts[v->id])
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s' is given twice", v->name);
    tc_status st = check_input(v, &inputs[i], diag);
    if (st)
      return st;
    tc_rt_tensor *t = tc_arena_alloc(a, sizeof *t);
    if (!t || !view_input(&inputs[i], t, a))
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    vals[v->id] = t;
  }
  for (size_t i = 0; i < g->n_inputs; i++) {
    const tc_value *v = g->inputs[i].value;
    if (!vals[v->id])
      return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "input '%s' is missing", v->name);
  }
  return TC_STATUS_OK;
}

/* Runs node n of graph g (is_main: the model's main graph). */
static tc_status run_node(tc_run *r, const tc_node *n, bool is_main) {
  const tc_session *s = r->s;
  tc_rt_tensor **vals = r->vals;
  tc_diag *diag = r->diag;
  /* a bound elementwise chain: its kernel when the tensors fit, else its
   * other nodes now (they were passed over) and then this one as usual */
  const tc_rt_tensor *ext[TC_EW_MAX_IN];
  const tc_ew_chain *ch = is_main && s->chains ? s->chains[n->id] : NULL;
  bool chain = false;
  if (ch) {
    for (int i = 0; i < ch->prog.n_in; i++)
      ext[i] = vals[ch->in[i]->id];
    chain = !r->cu && tc_native_chain_fits(s->native_spec[n->id], ext);
    for (size_t i = 0; !chain && i + 1 < ch->n_nodes; i++) {
      tc_status st = run_node(r, ch->nodes[i], true);
      if (st)
        return st;
    }
  }
  const tc_rt_tensor **in = tc_arena_alloc(r->a, (n->n_inputs ? n->n_inputs : 1) * sizeof *in);
  if (!in)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  bool qdq = is_main && s->qdq && s->qdq[n->id];
  for (size_t i = 0; i < n->n_inputs; i++) {
    const tc_value *v = n->inputs[i];
    in[i] = v ? vals[v->id] : NULL;
    if (v && !in[i] && !chain && !(qdq && tc_qdq_reads(s, n, (int)i)))
      return tc_diag_set(diag, TC_STATUS_INVALID, nz(n->name), nz(n->op_type),
                         "input '%s' has not been computed (the graph is not in "
                         "topological order)",
                         v->name);
  }
  tc_rt_tensor *out = tc_arena_alloc(r->a, (n->n_outputs ? n->n_outputs : 1) * sizeof *out);
  if (!out)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  tc_status st;
  if (!s->kernels[n->id]) {
    st = tc_run_control(r, n, in, out);
  } else {
    tc_kernel_ctx k = {.node = n, .opset = s->opsets[n->id], .diag = diag, .arena = r->a};
    if (s->conv_algo)
      k.conv_algo = (tc_conv_algo)s->conv_algo[n->id];
    if (s->gemm_algo)
      k.gemm_algo = (tc_gemm_algo)s->gemm_algo[n->id];
    if (r->plan && is_main) {
      k.outputs = out;
      k.plan_base = r->base;
      k.plan_offset = tc_plan_offsets(r->plan);
      k.plan_size = tc_plan_sizes(r->plan);
    }
    const tc_cg_spec *nsp = s->native_fn && s->native_fn[n->id] ? s->native_spec[n->id] : NULL;
    struct timespec t0, t1;
    if (s->prof)
      clock_gettime(CLOCK_MONOTONIC, &t0);
    st = TC_STATUS_OK;
    bool on_gpu = r->cu && is_main && tc_cuda_try(r, n, &k, in, out, &st);
    if (r->cu && !on_gpu)
      st = tc_cuda_host_inputs(r, n); /* the CPU kernel reads them */
    if (on_gpu || st) {
      /* ran on the GPU, or its inputs could not be brought back */
    } else if (chain) {
      if (!tc_native_chain_run(&k, nsp, s->native_fn[n->id], ext, out, &st))
        st = tc_diag_set(diag, TC_STATUS_INVALID, nz(n->name), nz(n->op_type),
                         "the generated chain kernel refused tensors it had accepted");
    } else if (qdq)
      st = tc_qdq_run(r, n, &k, in, out);
    else if (is_main && s->layout && s->layout[n->id])
      st = tc_layout_run(s, n, &k, in, out);
    else if (!nsp ||
             !tc_native_run(&k, nsp, s->native_fn[n->id], in, n->n_inputs, out, n->n_outputs, &st))
      st = s->kernels[n->id]->run(&k, in, n->n_inputs, out, n->n_outputs);
    if (s->prof) {
      clock_gettime(CLOCK_MONOTONIC, &t1);
      int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
      uint32_t id = qdq ? tc_qdq_runs(s, n)->id : n->id; /* a QDQ group: its kernel's node */
      __atomic_add_fetch(&s->prof[2 * id], 1, __ATOMIC_RELAXED);
      __atomic_add_fetch(&s->prof[2 * id + 1], ns, __ATOMIC_RELAXED);
    }
  }
  if (st) {
    if (!diag->node[0] && !diag->op[0]) { /* name the node if the kernel did not */
      snprintf(diag->node, sizeof diag->node, "%s", nz(n->name));
      snprintf(diag->op, sizeof diag->op, "%s", nz(n->op_type));
    }
    return st;
  }
  for (size_t o = 0; o < n->n_outputs; o++)
    if (n->outputs[o])
      vals[n->outputs[o]->id] = &out[o];
  if (s->observe && is_main)
    s->observe(s->observe_ctx, n, in, n->n_inputs, out, n->n_outputs);
  return TC_STATUS_OK;
}

tc_status tc_run_graph(tc_run *r, const tc_graph *g) {
  const tc_session *s = r->s;
  tc_rt_tensor **vals = r->vals;
  for (size_t i = 0; i < g->n_inits; i++)
    vals[g->inits[i]->id] = s->consts[g->inits[i]->id];
  for (size_t i = 0; i < g->n_sparse_inits; i++)
    vals[g->sparse_inits[i]->id] = s->consts[g->sparse_inits[i]->id];
  bool is_main = g == s->m->graph;
  for (const tc_node *n = g->first; n; n = n->next) {
    if (is_main && s->qdq_skip && s->qdq_skip[n->id])
      continue; /* its readers take the quantized operand (qdq.c) */
    if (is_main && s->chain_root && s->chain_root[n->id])
      continue; /* runs with its chain's last node */
    if (is_main && s->precomputed && s->precomputed[n->id]) {
      for (size_t o = 0; o < n->n_outputs; o++) /* computed when the session was made */
        if (n->outputs[o])
          vals[n->outputs[o]->id] = s->consts[n->outputs[o]->id];
      continue;
    }
    tc_status st = run_node(r, n, is_main);
    if (st)
      return st;
  }
  return TC_STATUS_OK;
}

static tc_status copy_out(const tc_rt_tensor *t, const char *name, tc_ndarray *o, tc_diag *diag) {
  memset(o, 0, sizeof *o);
  if (t->dtype == TC_DTYPE_NONE) {
    o->dtype = TC_DTYPE_NONE;
    return TC_STATUS_OK;
  }
  if (t->dtype == TC_DTYPE_SEQUENCE) { /* elements copied one by one */
    size_t n = (size_t)t->dims[0];
    tc_ndarray *dst = calloc(n ? n : 1, sizeof *dst);
    if (!dst)
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    o->dtype = TC_DTYPE_SEQUENCE;
    o->rank = 1;
    o->dims[0] = t->dims[0];
    o->dims[1] = t->dims[1];
    o->data = dst;
    o->size = n * sizeof *dst;
    for (size_t i = 0; i < n; i++) {
      tc_status st = copy_out(&((const tc_rt_tensor *)t->data)[i], name, &dst[i], diag);
      if (st)
        return st; /* the caller releases o, and with it what was copied */
    }
    return TC_STATUS_OK;
  }
  if (t->dtype == TC_DTYPE_STRING) { /* an array of malloc'd copies */
    size_t n = tc_rt_numel(t);
    char **dst = calloc(n ? n : 1, sizeof *dst);
    if (!dst)
      return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
    o->dtype = t->dtype;
    o->rank = t->rank;
    memcpy(o->dims, t->dims, sizeof o->dims);
    o->data = dst;
    o->size = n * sizeof *dst;
    for (size_t i = 0; i < n; i++)
      if (!(dst[i] = strdup(((char *const *)t->data)[i] ? ((char *const *)t->data)[i] : "")))
        return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory (output '%s')", name);
    return TC_STATUS_OK;
  }
  o->dtype = t->dtype;
  o->rank = t->rank;
  memcpy(o->dims, t->dims, sizeof o->dims);
  o->size = t->bytes;
  o->data = malloc(t->bytes ? t->bytes : 1);
  if (!o->data)
    return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory");
  if (t->bytes)
    memcpy(o->data, t->data, t->bytes);
  return TC_STATUS_OK;
}

/* A buffer of at least size bytes for a planned run: one from the pool, or
 * new. *got gets its real size. */
static unsigned char *pool_take(tc_session *s, size_t size, size_t *got) {
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < 8; i++) {
    if (s->pool[i] && s->pool_size[i] >= size) {
      unsigned char *b = s->pool[i];
      *got = s->pool_size[i];
      s->pool[i] = NULL;
      pthread_mutex_unlock(&s->lock);
      return b;
    }
  }
  pthread_mutex_unlock(&s->lock);
  *got = size;
  size_t rounded = size ? (size + 63) / 64 * 64 : 64;
  return aligned_alloc(64, rounded);
}

static void pool_give(tc_session *s, unsigned char *b, size_t size) {
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < 8; i++) {
    if (!s->pool[i]) {
      s->pool[i] = b;
      s->pool_size[i] = size;
      b = NULL;
      break;
    }
  }
  pthread_mutex_unlock(&s->lock);
  free(b);
}

/* Caches plan p of signature sig (once per signature; p is freed when
 * another thread cached one first) and returns the cached one; NULL p: NULL. */
static const tc_plan *keep_plan(tc_session *s, tc_plan *p, const int64_t *sig, size_t n_sig) {
  if (!p)
    return NULL; /* out of memory: later runs stay unplanned, which is still correct */
  pthread_mutex_lock(&s->lock);
  const tc_plan *had = tc_plan_find(s->plans, sig, n_sig);
  if (had) {
    tc_plan_free_list(p);
  } else {
    tc_plan_link(p, s->plans);
    s->plans = p;
  }
  pthread_mutex_unlock(&s->lock);
  return had ? had : p;
}

/* A run arena: a reset one from the session's pool, or a new one. */
static tc_arena *arena_take(tc_session *s) {
  tc_arena *a = NULL;
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < sizeof s->arenas / sizeof s->arenas[0] && !a; i++) {
    a = s->arenas[i];
    s->arenas[i] = NULL;
  }
  pthread_mutex_unlock(&s->lock);
  return a ? a : tc_arena_new();
}

static void arena_give(tc_session *s, tc_arena *a) {
  if (!a)
    return;
  tc_arena_reset(a);
  pthread_mutex_lock(&s->lock);
  for (size_t i = 0; i < sizeof s->arenas / sizeof s->arenas[0] && a; i++) {
    if (!s->arenas[i]) {
      s->arenas[i] = a;
      a = NULL;
    }
  }
  pthread_mutex_unlock(&s->lock);
  tc_arena_free(a);
}

tc_status tc_session_run(tc_session *s, size_t n_inputs, const char *const *names,
                         const tc_ndarray *inputs, tc_ndarray *outputs, tc_diag *diag) {
  tc_diag local = {0};
  if (!diag)
    diag = &local;
  if (!s || !outputs || (n_inputs && (!names || !inputs)))
    return tc_diag_set(diag, TC_STATUS_ARG, NULL, NULL, "no session, inputs or outputs given");
  const tc_model *m = s->m;
  const tc_graph *g = m->graph;
  /* the tuned thread count, unless the caller chose one; restored after */
  int prev_threads = s->threads && !tc_threads_explicit() ? omp_get_max_threads() : 0;
  if (prev_threads)
    omp_set_num_threads(s->threads);
  tc_arena *a = arena_take(s);
  tc_rt_tensor **vals = calloc(m->next_value_id + 1, sizeof *vals);
  tc_run r = {.s = s, .vals = vals, .a = a, .diag = diag};
  int64_t sig[256];
  size_t n_sig = 0, base_size = 0;
  tc_status st = TC_STATUS_NOMEM;
  if (!a || !vals) {
    tc_diag_set(diag, st, NULL, NULL, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < g->n_inits; i++)
    vals[g->inits[i]->id] = s->consts[g->inits[i]->id];
  for (size_t i = 0; i < g->n_sparse_inits; i++)
    vals[g->sparse_inits[i]->id] = s->consts[g->sparse_inits[i]->id];
  if ((st = bind_inputs(s, n_inputs, names, inputs, vals, a, diag)) ||
      (s->cuda && (st = tc_cuda_run_begin(&r))))
    goto done;
  n_sig = tc_plan_signature(s, vals, sig, sizeof sig / sizeof sig[0]);
  if (n_sig) {
    pthread_mutex_lock(&s->lock);
    r.plan = tc_plan_find(s->plans, sig, n_sig);
    pthread_mutex_unlock(&s->lock);
    /* new input shapes: a plan from shape inference over them when it gives
     * every size, so that this run too reuses memory; else this run is the
     * trace that gives the sizes */
    if (!r.plan)
      r.plan = keep_plan(s, inferred_plan(s, vals, sig, n_sig), sig, n_sig);
  }
  if (r.plan && !(r.base = pool_take(s, tc_plan_total(r.plan), &base_size)))
    r.plan = NULL; /* no memory for the buffer: run unplanned */
  if (r.plan)
    __atomic_fetch_add(&s->planned_runs, 1, __ATOMIC_RELAXED);
  if ((st = tc_run_graph(&r, g)))
    goto done;
  if (n_sig && !r.plan)
    keep_plan(s, tc_plan_build(s, vals, sig, n_sig), sig, n_sig);
  for (size_t i = 0; i < g->n_outputs; i++) {
    const tc_value *v = g->outputs[i].value;
    if (!vals[v->id]) {
      st =
          tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL, "output '%s' was not computed", v->name);
    } else {
      st = copy_out(vals[v->id], v->name, &outputs[i], diag);
    }
    if (st) {
      for (size_t k = 0; k <= i; k++) /* output i too: what copy_out had filled */
        tc_ndarray_release(&outputs[k]);
      goto done;
    }
  }
done:
  tc_cuda_run_end(&r);
  if (r.base)
    pool_give(s, r.base, base_size);
  free(vals);
  arena_give(s, a);
  if (prev_threads)
    omp_set_num_threads(prev_threads);
  return st;
}
