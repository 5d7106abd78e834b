/* The pass manager (see pipeline.h). The whole pipeline of each level reads
 * in tc_pipeline_for_level. */
#include "pipeline.h"

#include "cli.h"

#include <string.h>

#define X(fn, name, doc) {name, tc_pass_##fn, doc},
static const tc_pass_def all_passes[] = {TC_PASS_LIST(X)};
#undef X

const tc_pass_def *tc_pass_all(size_t *n) {
  *n = sizeof all_passes / sizeof *all_passes;
  return all_passes;
}

const tc_pass_def *tc_pass_find(const char *name) {
  for (size_t i = 0; i < sizeof all_passes / sizeof *all_passes; i++)
    if (strcmp(all_passes[i].name, name) == 0)
      return &all_passes[i];
  return NULL;
}

static void add(tc_pipeline *p, const char *name) {
  const tc_pass_def *d = tc_pass_find(name);
  if (d && p->n < TC_PIPELINE_MAX)
    p->passes[p->n++] = d;
}

void tc_pipeline_for_level(tc_pipeline *p, int level) {
  p->n = 0;
  if (level < 1)
    return;
  /* -O1: clean-up. Function calls are inlined first so that everything after
   * sees the ops (calls of ops libtacort has a kernel for stay). Folding runs
   * again after CSE, which exposes more of it. */
  add(p, "inline-functions");
  add(p, "constants-to-initializers");
  add(p, "eliminate-identity");
  add(p, "fold-constants");
  add(p, "eliminate-common");
  add(p, "fold-constants");
  add(p, "fold-shapes");
  add(p, "fold-chains");
  add(p, "eliminate-common");
  add(p, "eliminate-dead");
  if (level < 2)
    return;
  /* -O2: fusions, then clean-up of what they left. LayerNorm goes before
   * GELU and attention: removing ReduceMean is what lets the opset rise to
   * 20 and 23. */
  add(p, "fuse-conv-bn");
  /* Hard activations first: their Mul/Add by constants must not be folded
   * into a Conv before they are recognized. */
  add(p, "fuse-hard-activations");
  add(p, "fuse-conv-affine");
  add(p, "fuse-layernorm");
  add(p, "fuse-rmsnorm");
  add(p, "fuse-rotary"); /* before fuse-attention: moves the rotation before the head split */
  add(p, "fuse-skip-layernorm");
  add(p, "fuse-embed-layernorm");
  add(p, "fuse-groupnorm");
  add(p, "fuse-gelu");
  add(p, "fuse-conv-activation"); /* after fuse-gelu: Conv1d + GELU of speech models */
  add(p, "fuse-attention");
  add(p, "fuse-gemm"); /* last: a bias Add other fusions take (BiasGelu, ...) is theirs first */
  add(p, "fold-chains");
  add(p, "eliminate-common");
  add(p, "eliminate-dead");
  /* -O3 adds layout and target-specific rewrites; none exist yet, so it
   * runs the -O2 pipeline. */
}

tc_status tc_pipeline_parse(tc_pipeline *p, const char *list, tc_diag *diag) {
  p->n = 0;
  char name[64];
  for (const char *s = list; *s;) {
    size_t len = strcspn(s, ",");
    if (len == 0 || len >= sizeof name)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL, "bad pass list '%s'", list);
    memcpy(name, s, len);
    name[len] = 0;
    const tc_pass_def *d = tc_pass_find(name);
    if (!d)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL,
                         "unknown pass '%s' (see 'tacoc passes')", name);
    if (p->n == TC_PIPELINE_MAX)
      return tc_diag_set(diag, TC_STATUS_INVALID, NULL, NULL, "more than %d passes",
                         TC_PIPELINE_MAX);
    p->passes[p->n++] = d;
    s += len;
    if (*s == ',')
      s++;
  }
  return TC_STATUS_OK;
}

static void count_graph(const tc_graph *g, size_t *nodes, size_t *inits) {
  *nodes += g->n_nodes;
  *inits += g->n_inits;
  for (const tc_node *n = g->first; n; n = n->next)
    for (size_t a = 0; a < n->n_attrs; a++) {
      if (n->attrs[a].g)
        count_graph(n->attrs[a].g, nodes, inits);
      for (size_t k = 0; k < n->attrs[a].n_graphs; k++)
        count_graph(n->attrs[a].graphs[k], nodes, inits);
    }
}

/* Runs the pass on g's subgraphs first (so that a subgraph no longer reading
 * an outer value lets the outer graph drop it), then on g, then restores
 * topological order. */
static tc_status run_on(const tc_pass_def *d, tc_pass_ctx *c, tc_graph *g) {
  for (tc_node *n = g->first; n; n = n->next)
    for (size_t a = 0; a < n->n_attrs; a++) {
      tc_attr *at = &n->attrs[a];
      size_t ng = at->g ? 1 : at->n_graphs;
      for (size_t k = 0; k < ng; k++) {
        tc_status st = run_on(d, c, at->g ? at->g : at->graphs[k]);
        if (st)
          return st;
      }
    }
  tc_status st = d->run(c, g);
  return st ? st : tc_graph_toposort(g, c->diag);
}

tc_status tc_pipeline_run(tc_pipeline *p, tc_model *m, const tc_pass_options *opt, tc_diag *diag) {
  /* Passes create initializers, which IR 3 would have to list as inputs
   * (where they read as constants); IR 4 lists them only as initializers. */
  if (p->n)
    tc_model_raise_ir4(m);
  for (size_t i = 0; i < p->n; i++) {
    const tc_pass_def *d = p->passes[i];
    tc_pass_record *r = &p->records[i];
    memset(r, 0, sizeof *r);
    r->name = d->name;
    count_graph(m->graph, &r->nodes_before, &r->inits_before);
    tc_pass_ctx c = {.model = m, .opt = opt, .diag = diag, .pass = d->name};
    double t0 = tc_cli_now_ms();
    tc_status st = run_on(d, &c, m->graph);
    r->ms = tc_cli_now_ms() - t0;
    if (st)
      return st;
    st = tc_graph_verify(m->graph, diag);
    if (st) {
      char reason[sizeof diag->reason];
      memcpy(reason, diag->reason, sizeof reason);
      int k = snprintf(diag->reason, sizeof diag->reason,
                       "internal error: pass %s left the IR invalid: ", d->name);
      if (k > 0 && (size_t)k < sizeof diag->reason)
        strncat(diag->reason, reason, sizeof diag->reason - (size_t)k - 1);
      return st;
    }
    count_graph(m->graph, &r->nodes_after, &r->inits_after);
    r->n_kinds = c.n_kinds;
    memcpy(r->rewrites, c.rewrites, sizeof r->rewrites);
    if (p->dump_after && p->dump &&
        (strcmp(p->dump_after, "all") == 0 || strcmp(p->dump_after, d->name) == 0)) {
      fprintf(p->dump, "; after %s\n", d->name);
      tc_graph_dump(m->graph, p->dump, 0);
    }
  }
  return TC_STATUS_OK;
}

/* ---- listing ---- */
static void dump_attr(const tc_attr *a, FILE *f, int indent) {
  fprintf(f, " %s=", a->name);
  switch (a->type) {
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT: fprintf(f, "%g", a->f); break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT: fprintf(f, "%lld", (long long)a->i); break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
    fprintf(f, "\"%.*s\"", (int)a->s.len, (const char *)a->s.data);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
    for (size_t i = 0; i < a->n_ints; i++)
      fprintf(f, "%s%lld", i ? "," : "[", (long long)a->ints[i]);
    fputs(a->n_ints ? "]" : "[]", f);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
    for (size_t i = 0; i < a->n_floats; i++)
      fprintf(f, "%s%g", i ? "," : "[", a->floats[i]);
    fputs(a->n_floats ? "]" : "[]", f);
    break;
  case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
    fputs("{\n", f);
    tc_graph_dump(a->g, f, indent + 4);
    fprintf(f, "%*s}", indent + 2, "");
    break;
  default: fputs("...", f);
  }
}

void tc_graph_dump(const tc_graph *g, FILE *f, int indent) {
  fprintf(f, "%*sgraph %s (%zu nodes, %zu initializers)\n", indent, "", g->name ? g->name : "",
          g->n_nodes, g->n_inits);
  for (const tc_node *n = g->first; n; n = n->next) {
    fprintf(f, "%*s  ", indent, "");
    for (size_t i = 0; i < n->n_outputs; i++)
      fprintf(f, "%s%%%s", i ? ", " : "", n->outputs[i] ? n->outputs[i]->name : "");
    fprintf(f, " = %s%s%s(", tc_domain_is_onnx(n->domain) ? "" : n->domain,
            tc_domain_is_onnx(n->domain) ? "" : ".", n->op_type);
    for (size_t i = 0; i < n->n_inputs; i++)
      fprintf(f, "%s%s%s", i ? ", " : "", n->inputs[i] && n->inputs[i]->init ? "$" : "%",
              n->inputs[i] ? n->inputs[i]->name : "");
    fputc(')', f);
    for (size_t a = 0; a < n->n_attrs; a++)
      dump_attr(&n->attrs[a], f, indent);
    fputc('\n', f);
  }
}
