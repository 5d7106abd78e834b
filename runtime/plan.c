/* Memory plans: one buffer per run, with every tensor a main-graph kernel
 * produces placed by liveness, cached per input-shape signature.
 *
 * The first run of a signature runs unplanned (each output from the run's
 * arena) and is used as the trace: it gives every value's size. Lifetimes are
 * node positions in the main graph, from the producer to the last reader (a
 * reader inside a subgraph counts at the If/Loop/Scan holding it; graph
 * outputs live to the end). A control-flow node may hand out a tensor it did
 * not allocate (an If branch returning an outer value): such aliases extend
 * the lifetime of the tensor they point into. Values are placed largest
 * first at the lowest offset free for their whole lifetime, 64-byte aligned.
 * Later runs of the same signature take their outputs from the plan's
 * buffer; a tensor whose size differs from the trace (data-dependent shapes)
 * falls back to the arena, so a plan is never wrong, only less useful.
 *
 * In place: a convolution with a summed input Z (tacoc's ConvAdd<Act>,
 * FusedConv) whose Z is a planned value of Y's size read last by it, and
 * not as X, W or B, writes Y into Z's memory: oneDNN's sum post-op adds
 * the result to what the output holds, so Y = Z + conv needs no copy of Z
 * (ResNet-50: sixteen copies, 22 MB per inference). Likewise a Reshape,
 * Flatten, Squeeze or Unsqueeze whose data input ends there writes its
 * output where that input is, and its kernel's copy is skipped (a
 * ShuffleNet's 33 Reshapes: 0.29 ms per run). Not for CUDA sessions, QDQ
 * or generated-kernel nodes. */
#include <stdlib.h>
#include <string.h>

#include "exec.h"

#define PLAN_ALIGN 64

struct tc_plan {
  int64_t *sig;
  size_t n_sig;
  size_t total;
  int64_t *offset; /* by value id; -1: not planned */
  size_t *size;    /* by value id */
  struct tc_plan *next;
};

size_t tc_plan_signature(const tc_session *s, tc_rt_tensor *const *vals, int64_t *sig, size_t cap) {
  const tc_graph *g = s->m->graph;
  size_t n = 0;
  for (size_t i = 0; i < g->n_inputs; i++) {
    const tc_rt_tensor *t = vals[g->inputs[i].value->id];
    if (n + 2 + t->rank > cap)
      return 0; /* too many dims to key: run unplanned */
    sig[n++] = t->dtype;
    sig[n++] = (int64_t)t->rank;
    for (size_t d = 0; d < t->rank; d++)
      sig[n++] = t->dims[d];
  }
  return n;
}

const tc_plan *tc_plan_find(const tc_plan *list, const int64_t *sig, size_t n) {
  for (const tc_plan *p = list; p; p = p->next)
    if (p->n_sig == n && memcmp(p->sig, sig, n * sizeof *sig) == 0)
      return p;
  return NULL;
}

size_t tc_plan_total(const tc_plan *p) { return p->total; }
const int64_t *tc_plan_offsets(const tc_plan *p) { return p->offset; }
const size_t *tc_plan_sizes(const tc_plan *p) { return p->size; }

void tc_plan_free_list(tc_plan *p) {
  while (p) {
    tc_plan *next = p->next;
    free(p->sig);
    free(p->offset);
    free(p->size);
    free(p);
    p = next;
  }
}

typedef struct slot {
  uint32_t id;
  size_t size;
  size_t def, last;
} slot;

static int by_size_desc(const void *a, const void *b) {
  const slot *x = a, *y = b;
  if (x->size != y->size)
    return x->size < y->size ? 1 : -1;
  return x->def < y->def ? -1 : x->def > y->def;
}

typedef struct placed {
  size_t off, end;
} placed;

static int by_off(const void *a, const void *b) {
  const placed *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* The input whose memory n's output may take (-1: none): Z (input 3) for
 * libtacort's convolution kernel with a summed input, which computes Y in
 * place when Y is Z's memory; the data (input 0) of a Reshape, Flatten,
 * Squeeze or Unsqueeze, whose kernel copies nothing onto itself. */
static int in_place_input(const tc_session *s, const tc_node *n) {
  if (s->cuda || !s->kernels[n->id] || (s->qdq && s->qdq[n->id]) ||
      (s->native_fn && s->native_fn[n->id]) || (s->chain_root && s->chain_root[n->id]) ||
      n->n_inputs < 1 || n->n_outputs != 1 || !n->outputs[0] || !n->op_type)
    return -1;
  if (tc_domain_is_onnx(n->domain) &&
      (!strcmp(n->op_type, "Reshape") || !strcmp(n->op_type, "Flatten") ||
       !strcmp(n->op_type, "Squeeze") || !strcmp(n->op_type, "Unsqueeze"))) {
    for (size_t i = 1; i < n->n_inputs; i++)
      if (n->inputs[i] == n->inputs[0])
        return -1;
    return n->inputs[0] ? 0 : -1;
  }
  if (n->n_inputs < 4 || !n->inputs[3])
    return -1;
  bool fused = !strcmp(n->op_type, "FusedConv") && (tc_domain_equal(n->domain, "ai.tacoc") ||
                                                    tc_domain_equal(n->domain, "com.microsoft"));
  bool conv_add = tc_domain_equal(n->domain, "ai.tacoc") && !strncmp(n->op_type, "ConvAdd", 7);
  if (!fused && !conv_add)
    return -1;
  for (size_t i = 0; i < 3; i++)
    if (n->inputs[i] == n->inputs[3])
      return -1;
  return 3;
}

tc_plan *tc_plan_build(const tc_session *s, tc_rt_tensor *const *vals, const int64_t *sig,
                       size_t n_sig) {
  const tc_model *m = s->m;
  const tc_graph *g = m->graph;
  size_t nv = m->next_value_id + 1, nn = m->next_node_id + 1;
  tc_plan *p = calloc(1, sizeof *p);
  size_t *pos = calloc(nn, sizeof *pos); /* node id -> position */
  size_t *def = calloc(nv, sizeof *def), *last = calloc(nv, sizeof *last);
  uint32_t *root = calloc(nv, sizeof *root); /* value id -> value whose slot it uses */
  bool *planned = calloc(nv, sizeof *planned), *inplace = calloc(nv, sizeof *inplace);
  slot *slots = calloc(nv, sizeof *slots);
  placed *busy = calloc(nv, sizeof *busy);
  if (!p || !pos || !def || !last || !root || !planned || !inplace || !slots || !busy)
    goto fail;
  p->sig = malloc((n_sig ? n_sig : 1) * sizeof *p->sig);
  p->offset = malloc(nv * sizeof *p->offset);
  p->size = calloc(nv, sizeof *p->size);
  if (!p->sig || !p->offset || !p->size)
    goto fail;
  memcpy(p->sig, sig, n_sig * sizeof *sig);
  p->n_sig = n_sig;
  for (size_t i = 0; i < nv; i++)
    p->offset[i] = -1, root[i] = (uint32_t)i;

  size_t n_nodes = 0;
  for (const tc_node *n = g->first; n; n = n->next)
    pos[n->id] = n_nodes++;
  /* Planned values: outputs of kernels; aliases: control-flow outputs that
   * point into a planned value's tensor. */
  for (const tc_node *n = g->first; n; n = n->next)
    for (size_t o = 0; o < n->n_outputs; o++) {
      const tc_value *v = n->outputs[o];
      const tc_rt_tensor *t = v ? vals[v->id] : NULL;
      if (!t || (s->precomputed && s->precomputed[n->id]))
        continue; /* session constants are not planned */
      def[v->id] = last[v->id] = pos[n->id];
      if (s->kernels[n->id]) {
        planned[v->id] = t->bytes > 0;
        continue;
      }
      for (const tc_node *q = g->first; q != n; q = q->next)
        for (size_t k = 0; k < q->n_outputs; k++) {
          const tc_value *w = q->outputs[k];
          const tc_rt_tensor *u = w ? vals[w->id] : NULL;
          if (u && planned[root[w->id]] && t->data >= u->data &&
              (const char *)t->data < (const char *)u->data + u->bytes)
            root[v->id] = root[w->id];
        }
    }
  /* Last use of every main-graph value, then folded onto roots. */
  for (const tc_node *n = g->first; n; n = n->next)
    for (size_t o = 0; o < n->n_outputs; o++) {
      const tc_value *v = n->outputs[o];
      if (!v)
        continue;
      for (size_t u = 0; u < v->n_uses; u++) {
        const tc_node *reader = v->uses[u].node;
        while (reader->graph != g)
          reader = reader->graph->owner;
        size_t at = pos[reader->id];
        /* a DequantizeLinear whose readers are bound to its quantized
         * operand (qdq.c): they read v, whether or not it runs for others
         * (a float Add beside a bound convolution: --qdq-outputs) */
        const tc_value *dq = s->qdq && reader->graph == g && reader->n_outputs &&
                                     tc_domain_is_onnx(reader->domain) &&
                                     !strcmp(reader->op_type, "DequantizeLinear")
                                 ? reader->outputs[0]
                                 : NULL;
        for (size_t k = 0; dq && k < dq->n_uses; k++) {
          const tc_node *b = dq->uses[k].node;
          /* (a bound node passed over runs with the QuantizeLinear after it) */
          size_t b_at =
              s->chain_root && s->chain_root[b->id] ? pos[s->chain_root[b->id] - 1] : pos[b->id];
          if (tc_qdq_reads(s, b, dq->uses[k].slot) && b_at > at)
            at = b_at;
        }
        /* a node of a generated chain runs (if at all) with the chain's last
         * node; a bound QDQ node taken over by a QuantizeLinear with it */
        if (s->chain_root && s->chain_root[reader->id] && pos[s->chain_root[reader->id] - 1] > at)
          at = pos[s->chain_root[reader->id] - 1];
        if (at > last[v->id])
          last[v->id] = at;
      }
      if (v->flags & TC_VALUE_OUTPUT)
        last[v->id] = n_nodes;
    }
  for (size_t i = 0; i < nv; i++)
    if (root[i] != i && last[i] > last[root[i]])
      last[root[i]] = last[i];
  /* in place: Y takes the slot of an input Z that ends at its node (see
   * in_place_input) */
  for (const tc_node *n = g->first; n; n = n->next) {
    int zi = in_place_input(s, n);
    if (zi < 0)
      continue;
    const tc_value *z = n->inputs[zi], *y = n->outputs[0];
    uint32_t r = root[z->id];
    if (!planned[y->id] || !planned[r] || (r != z->id && !inplace[z->id]) ||
        last[z->id] != pos[n->id] || vals[z->id]->bytes != vals[y->id]->bytes ||
        (z->flags & TC_VALUE_OUTPUT))
      continue;
    planned[y->id] = false;
    inplace[y->id] = true;
    root[y->id] = r;
    if (last[y->id] > last[r])
      last[r] = last[y->id];
  }

  size_t ns = 0;
  for (size_t i = 0; i < nv; i++)
    if (planned[i])
      slots[ns++] = (slot){(uint32_t)i, vals[i]->bytes, def[i], last[i]};
  qsort(slots, ns, sizeof *slots, by_size_desc);
  for (size_t i = 0; i < ns; i++) {
    size_t nb = 0;
    for (size_t j = 0; j < i; j++) /* placed slots alive at the same time */
      if (slots[j].def <= slots[i].last && slots[i].def <= slots[j].last)
        busy[nb++] = (placed){(size_t)p->offset[slots[j].id],
                              (size_t)p->offset[slots[j].id] + slots[j].size};
    qsort(busy, nb, sizeof *busy, by_off);
    size_t off = 0;
    for (size_t j = 0; j < nb; j++) {
      if (busy[j].off >= off + slots[i].size)
        break;
      if (busy[j].end > off)
        off = (busy[j].end + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
    }
    p->offset[slots[i].id] = (int64_t)off;
    p->size[slots[i].id] = slots[i].size;
    if (off + slots[i].size > p->total)
      p->total = off + slots[i].size;
  }
  for (size_t i = 0; i < nv; i++)
    if (inplace[i] && p->offset[root[i]] >= 0) {
      p->offset[i] = p->offset[root[i]];
      p->size[i] = vals[i]->bytes;
    }
  free(pos), free(def), free(last), free(root), free(planned), free(inplace), free(slots),
      free(busy);
  return p;
fail:
  free(pos), free(def), free(last), free(root), free(planned), free(inplace), free(slots),
      free(busy);
  tc_plan_free_list(p);
  return NULL;
}

void tc_plan_link(tc_plan *p, tc_plan *next) { p->next = next; }

size_t tc_plan_count(const tc_plan *list) {
  size_t n = 0;
  for (; list; list = list->next)
    n++;
  return n;
}
