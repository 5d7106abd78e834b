/* Function inlining: calls of model-local functions replaced by their
 * bodies. The pass inline-functions (passes/inline_functions.c) runs it on
 * the model it optimizes; a session (session.c) runs it on its own copy of
 * the main graph when the model calls a function libtacort has no kernel
 * for, so such models run without `tacoc optimize`.
 *
 *   function local.F(a) -> (b) { t = Mul(a, a); b = LeakyRelu<alpha = @alpha>(t) }
 *
 *   x ─▶ local.F<alpha=0.2> ─▶ y     ⇒     x ─▶ Mul ─▶ t__7 ─▶ LeakyRelu<alpha=0.2> ─▶ y
 *
 * A call is a node whose domain, op_type and overload name a function of the
 * model (FunctionProto). The body is copied in its place:
 *   - formal inputs read the call's inputs; a formal the call leaves out is
 *     left out of the body nodes that read it (optional inputs);
 *   - formal outputs write the call's output values, so their names (graph
 *     outputs included) survive; a formal output that is a formal input or
 *     repeats another output is copied out with an Identity; outputs the
 *     call does not take become unused values (eliminate-dead drops them);
 *   - every other value gets a fresh name (tc_graph_fresh_name), so nothing
 *     collides with the caller's scope or another copy; nodes are named
 *     <call>/<body node>; subgraphs (If/Loop in a body) are deep-copied;
 *   - an attribute referring to a function attribute (ref_attr_name), in the
 *     body or its subgraphs, takes the call's attribute of that name, else the
 *     function's default (FunctionProto.attribute_proto), else it is left out;
 *   - calls in the copied body (nested calls) are inlined in turn, at most
 *     MAX_DEPTH levels deep; a function that reaches itself is refused.
 * Conditions: each opset the function imports must be the one the model
 * imports for that domain (a domain the model lacks is added to it); another
 * version is refused with an error, since the body's ops would be read under
 * an opset they were not written for. Calls libtacort has a kernel for stay
 * (tacoc's ai.tacoc fused ops: their functions are fallbacks for other
 * runtimes). Then functions nothing calls any more (main graph, subgraphs,
 * bodies of the functions still called) can be removed from the model
 * (tc_remove_uncalled_functions). Subgraphs copied into g are processed with
 * g. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "inline.h"
#include "kernel.h"

#define MAX_DEPTH 64

typedef struct inliner {
  tc_model *model;
  tc_diag *diag;
  const tc_inline_hooks *hooks;
  size_t inlined;
  const tc_function *chain[MAX_DEPTH]; /* functions being expanded, outermost first */
  size_t depth;
} inliner;

static tc_status nomem(tc_diag *diag) {
  return tc_diag_set(diag, TC_STATUS_NOMEM, NULL, NULL, "out of memory while inlining functions");
}

static const char *nz(const char *s) { return s ? s : ""; }

static const char *domain_label(const char *d) {
  return tc_domain_is_onnx(d) ? "ai.onnx (default)" : d;
}

static const char *attr_type_name(int type) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
      &onnx__attribute_proto__attribute_type__descriptor, type);
  return v ? v->name : "UNDEFINED";
}

/* The function n calls, or NULL. */
static tc_function *callee(const tc_model *m, const tc_node *n) {
  const char *overload = n->pb ? n->pb->overload : NULL;
  for (size_t i = 0; i < m->n_functions; i++) {
    tc_function *f = &m->functions[i];
    if (f->name && n->op_type && strcmp(f->name, n->op_type) == 0 &&
        tc_domain_equal(f->domain, n->domain) && strcmp(nz(f->overload), nz(overload)) == 0)
      return f;
  }
  return NULL;
}

/* Each subgraph held by n's attributes. */
#define FOR_SUBGRAPHS(n, sg, body)                                                                 \
  for (size_t a_ = 0; a_ < (n)->n_attrs; a_++) {                                                   \
    tc_attr *at_ = &(n)->attrs[a_];                                                                \
    for (size_t k_ = 0; k_ < (at_->g ? 1 : at_->n_graphs); k_++) {                                 \
      tc_graph *sg = at_->g ? at_->g : at_->graphs[k_];                                            \
      body                                                                                         \
    }                                                                                              \
  }

static tc_status check_opsets(inliner *c, const tc_node *call, const tc_function *f) {
  tc_model *m = c->model;
  for (size_t i = 0; i < f->n_opsets; i++) {
    const tc_opset *o = &f->opsets[i];
    int64_t have = tc_model_opset(m, o->domain);
    if (have && have != o->version)
      return tc_diag_set(c->diag, TC_STATUS_UNSUPPORTED, nz(call->name), call->op_type,
                         "cannot inline function %s.%s: it imports domain %s at version %lld but "
                         "the model imports %s at version %lld, and its ops would be read under "
                         "the model's version; convert the model or the function to one version",
                         nz(f->domain), f->name, domain_label(o->domain), (long long)o->version,
                         domain_label(o->domain), (long long)have);
  }
  for (size_t i = 0; i < f->n_opsets; i++)
    if (!tc_model_opset(m, f->opsets[i].domain) &&
        tc_model_set_opset(m, f->opsets[i].domain, f->opsets[i].version) != 0)
      return nomem(c->diag);
  return TC_STATUS_OK;
}

/* The value of n's attribute a that refers to function attribute
 * a->ref_attr_name: the call's, else f's default. *found false: neither. */
static tc_status actual_attr(inliner *c, tc_node *n, const tc_attr *a, const tc_node *call,
                             const tc_function *f, tc_attr *out, bool *found) {
  *found = true;
  const tc_attr *given = tc_node_attr(call, a->ref_attr_name);
  if (given) {
    if (a->type && given->type != a->type)
      return tc_diag_set(c->diag, TC_STATUS_INVALID, nz(call->name), call->op_type,
                         "attribute '%s' is %s but function %s.%s uses it as %s (in node '%s')",
                         a->ref_attr_name, attr_type_name(given->type), nz(f->domain), f->name,
                         attr_type_name(a->type), nz(n->name));
    tc_value_map map = {0};
    tc_status st = tc_attr_copy(out, n, given, &map, c->diag);
    tc_value_map_free(&map);
    return st;
  }
  for (size_t i = 0; f->pb && i < f->pb->n_attribute_proto; i++) {
    const Onnx__AttributeProto *p = f->pb->attribute_proto[i];
    if (p->name && strcmp(p->name, a->ref_attr_name) == 0)
      return tc_attr_from_pb(c->model, out, p, c->diag);
  }
  *found = false;
  return TC_STATUS_OK;
}

static tc_status resolve_graph(inliner *c, tc_graph *g, const tc_node *call, const tc_function *f);

/* Gives n's attributes that refer to function attributes (its subgraphs'
 * too) their values for this call. */
static tc_status resolve_refs(inliner *c, tc_node *n, const tc_node *call, const tc_function *f) {
  size_t k = 0;
  for (size_t i = 0; i < n->n_attrs; i++) {
    tc_attr a = n->attrs[i];
    if (!a.ref_attr_name) {
      tc_status st = TC_STATUS_OK;
      if (a.g)
        st = resolve_graph(c, a.g, call, f);
      for (size_t j = 0; !st && j < a.n_graphs; j++)
        st = resolve_graph(c, a.graphs[j], call, f);
      if (st)
        return st;
      n->attrs[k++] = a;
      continue;
    }
    tc_attr v;
    bool found;
    tc_status st = actual_attr(c, n, &a, call, f, &v, &found);
    if (st) {
      char reason[sizeof c->diag->reason];
      memcpy(reason, c->diag->reason, sizeof reason);
      if (!c->diag->node[0])
        tc_diag_set(c->diag, st, nz(call->name), call->op_type, "%s (function %s.%s)", reason,
                    nz(f->domain), f->name);
      return st;
    }
    if (!found)
      continue;
    v.name = a.name;
    v.ref_attr_name = NULL;
    n->attrs[k++] = v;
  }
  n->n_attrs = k;
  return TC_STATUS_OK;
}

static tc_status resolve_graph(inliner *c, tc_graph *g, const tc_node *call, const tc_function *f) {
  for (tc_node *n = g->first; n; n = n->next) {
    tc_status st = resolve_refs(c, n, call, f);
    if (st)
      return st;
  }
  return TC_STATUS_OK;
}

/* Clears the reads of every node in n's subgraphs, so that outer values do
 * not keep uses by nodes that are going away with n. */
static void drop_subgraph_reads(tc_node *n) {
  FOR_SUBGRAPHS(n, sg, {
    for (tc_node *s = sg->first; s; s = s->next) {
      for (size_t i = 0; i < s->n_inputs; i++)
        tc_node_set_input(s, i, NULL);
      drop_subgraph_reads(s);
    }
  })
}

/* "<prefix>/<body node name>", or "<prefix>/<op>_<index in the body>" for
 * unnamed nodes: unique per call when the prefix is. */
static const char *copy_name(inliner *c, const char *prefix, const tc_node *n, size_t index) {
  char buf[512];
  if (n->name && *n->name)
    snprintf(buf, sizeof buf, "%.250s/%.250s", prefix, n->name);
  else
    snprintf(buf, sizeof buf, "%.250s/%.200s_%zu", prefix, n->op_type, index);
  return tc_arena_strdup(c->model->arena, buf);
}

/* Formal output i of the call: the call's value y, and whether the body
 * cannot write y directly (the formal is an input or an earlier output). */
typedef struct out_bind {
  tc_value *y;
  bool alias;
} out_bind;

/* Copies f's body before call, bound to the call's values, and removes the
 * call. Nested calls in the copy are left to the caller. */
static tc_status inline_call(inliner *c, tc_graph *g, tc_node *call, const tc_function *f) {
  const tc_graph *body = f->body;
  if (call->n_inputs > body->n_inputs || call->n_outputs > body->n_outputs)
    return tc_diag_set(c->diag, TC_STATUS_INVALID, nz(call->name), call->op_type,
                       "has %zu inputs and %zu outputs but function %s.%s takes %zu and gives %zu",
                       call->n_inputs, call->n_outputs, nz(f->domain), f->name, body->n_inputs,
                       body->n_outputs);
  tc_value_map map = {0};
  out_bind *outs = calloc(call->n_outputs + 1, sizeof *outs);
  tc_node *prev = call->prev;
  tc_status st = TC_STATUS_OK;
  if (!outs)
    goto nomem;
  for (size_t j = 0; j < body->n_inputs; j++)
    if (tc_value_map_set(&map, body->inputs[j].value,
                         j < call->n_inputs ? call->inputs[j] : NULL) != 0)
      goto nomem;
  for (size_t i = 0; i < call->n_outputs; i++) {
    tc_value *y = call->outputs[i], *to;
    if (!y)
      continue;
    tc_node_set_output(call, i, NULL);
    outs[i].y = y;
    const tc_value *formal = body->outputs[i].value;
    if (tc_value_map_get(&map, formal, &to))
      outs[i].alias = true;
    else if (tc_value_map_set(&map, formal, y) != 0)
      goto nomem;
  }
  if ((st = tc_graph_copy_nodes(g, call, body, &map, c->diag)))
    goto done;
  /* Node names must stay unique (ONNX Runtime checks): an unnamed call
   * gets a fresh prefix. */
  const char *prefix = call->name && *call->name ? call->name : tc_graph_fresh_name(g, f->name);
  size_t index = 0;
  for (tc_node *n = prev ? prev->next : g->first; n != call; n = n->next) {
    if (!prefix || !(n->name = copy_name(c, prefix, n, index++)))
      goto nomem;
    if ((st = resolve_refs(c, n, call, f)))
      goto done;
  }
  for (size_t i = 0; i < call->n_outputs; i++) {
    tc_value *src = NULL;
    if (!outs[i].alias)
      continue;
    tc_value_map_get(&map, body->outputs[i].value, &src);
    if (!src) {
      st = tc_diag_set(c->diag, TC_STATUS_INVALID, nz(call->name), call->op_type,
                       "output %zu of function %s.%s is its input '%s', which the call leaves out",
                       i, nz(f->domain), f->name, body->outputs[i].value->name);
      goto done;
    }
    tc_node *id = tc_graph_insert_node(g, call, "Identity", "", NULL, 1, 1, 0);
    if (!id || !(id->name = copy_name(c, prefix, id, body->n_nodes + i)) ||
        tc_node_set_input(id, 0, src) != 0 || tc_node_set_output(id, 0, outs[i].y) != 0)
      goto nomem;
  }
  /* Types the function declares for its internal values. */
  for (size_t i = 0; i < body->n_value_info; i++) {
    const tc_value *v = body->value_info[i].value;
    tc_value *to;
    if (!(v->flags & (TC_VALUE_INPUT | TC_VALUE_OUTPUT)) && tc_value_map_get(&map, v, &to) && to &&
        to->graph == g && tc_graph_add_value_info(g, to, body->value_info[i].pb) != 0)
      goto nomem;
  }
  drop_subgraph_reads(call);
  tc_node_remove(call);
  goto done;
nomem:
  st = nomem(c->diag);
done:
  free(outs);
  tc_value_map_free(&map);
  return st;
}

static tc_status recursion_error(inliner *in, const tc_node *call, const tc_function *f) {
  char chain[512] = "";
  size_t len = 0;
  for (size_t d = 0; d < in->depth && len < sizeof chain; d++) {
    int k = snprintf(chain + len, sizeof chain - len, "%s -> ", in->chain[d]->name);
    len += k > 0 ? (size_t)k : 0;
  }
  if (len < sizeof chain)
    snprintf(chain + len, sizeof chain - len, "%s", f->name);
  if (in->depth == MAX_DEPTH)
    return tc_diag_set(in->diag, TC_STATUS_UNSUPPORTED, nz(call->name), call->op_type,
                       "function calls nest deeper than %d levels (%s)", MAX_DEPTH, chain);
  return tc_diag_set(in->diag, TC_STATUS_INVALID, nz(call->name), call->op_type,
                     "function %s.%s calls itself (%s); recursive functions cannot be inlined",
                     nz(f->domain), f->name, chain);
}

/* Inlines every call among the nodes of g from first up to (not including)
 * stop, and in their subgraphs; the copies are processed one level deeper. */
static tc_status inline_range(inliner *in, tc_graph *g, tc_node *first, tc_node *stop) {
  inliner *c = in;
  tc_model *m = c->model;
  for (tc_node *n = first, *next; n && n != stop; n = next) {
    next = n->next;
    FOR_SUBGRAPHS(n, sg, {
      tc_status st = inline_range(in, sg, sg->first, NULL);
      if (st)
        return st;
    })
    tc_function *f = callee(m, n);
    if (!f)
      continue;
    if (tc_kernel_find(n->op_type, n->domain, tc_model_opset(m, n->domain))) {
      if (in->hooks && in->hooks->kept)
        in->hooks->kept(in->hooks->ctx, n);
      continue;
    }
    bool recursive = in->depth == MAX_DEPTH;
    for (size_t d = 0; d < in->depth && !recursive; d++)
      recursive = in->chain[d] == f;
    if (recursive)
      return recursion_error(in, n, f);
    tc_status st = check_opsets(c, n, f);
    if (st)
      return st;
    tc_node *prev = n->prev;
    if ((st = inline_call(c, g, n, f)))
      return st;
    in->inlined++;
    in->chain[in->depth++] = f;
    st = inline_range(in, g, prev ? prev->next : g->first, next);
    in->depth--;
    if (st)
      return st;
  }
  return TC_STATUS_OK;
}

/* Marks the functions called from g (and its subgraphs) that are not marked
 * yet, and pushes them on stack. */
static void mark_calls(tc_model *m, tc_graph *g, bool *used, size_t *stack, size_t *sp) {
  for (tc_node *n = g->first; n; n = n->next) {
    FOR_SUBGRAPHS(n, sg, { mark_calls(m, sg, used, stack, sp); })
    tc_function *f = callee(m, n);
    if (f && !used[f - m->functions]) {
      used[f - m->functions] = true;
      stack[(*sp)++] = (size_t)(f - m->functions);
    }
  }
}

tc_status tc_remove_uncalled_functions(tc_model *m, size_t *removed, tc_diag *diag) {
  size_t n = m->n_functions, sp = 0, k = 0;
  bool *used = calloc(n + 1, sizeof *used);
  size_t *stack = malloc((n + 1) * sizeof *stack);
  *removed = 0;
  if (!used || !stack) {
    free(used);
    free(stack);
    return nomem(diag);
  }
  mark_calls(m, m->graph, used, stack, &sp);
  while (sp)
    mark_calls(m, m->functions[stack[--sp]].body, used, stack, &sp);
  for (size_t i = 0; i < n; i++)
    if (used[i])
      m->functions[k++] = m->functions[i];
  m->n_functions = k;
  *removed = n - k;
  free(used);
  free(stack);
  return TC_STATUS_OK;
}

tc_status tc_inline_calls(tc_model *m, tc_graph *g, const tc_inline_hooks *hooks, size_t *inlined,
                          tc_diag *diag) {
  inliner in = {.model = m, .diag = diag, .hooks = hooks};
  tc_status st = m->n_functions ? inline_range(&in, g, g->first, NULL) : TC_STATUS_OK;
  *inlined = in.inlined;
  return st;
}

/* True when g (or a subgraph) calls a function of m that has no kernel. */
static bool needs_inlining(const tc_model *m, const tc_graph *g) {
  for (const tc_node *n = g->first; n; n = n->next) {
    FOR_SUBGRAPHS(n, sg, {
      if (needs_inlining(m, sg))
        return true;
    })
    if (callee(m, n) && !tc_kernel_find(n->op_type, n->domain, tc_model_opset(m, n->domain)))
      return true;
  }
  return false;
}

bool tc_model_needs_inlining(const tc_model *m) {
  return m->n_functions && needs_inlining(m, m->graph);
}

/* A value of g named like v with v's type, mapped from v. NULL on failure. */
static tc_value *twin(tc_graph *g, tc_value_map *map, const tc_value *v, tc_diag *diag) {
  tc_value *t = tc_graph_new_value(g, v->name, diag);
  if (!t)
    return NULL;
  t->type = v->type;
  return tc_value_map_set(map, v, t) == 0 ? t : NULL;
}

tc_status tc_model_inlined_copy(const tc_model *m, tc_model **out, tc_diag *diag) {
  const tc_graph *src = m->graph;
  tc_value_map map = {0};
  tc_status st = TC_STATUS_NOMEM;
  *out = NULL;
  tc_model *c = tc_model_new_empty();
  if (!c)
    return nomem(diag);
  c->ir_version = m->ir_version;
  c->functions = m->functions;
  c->n_functions = m->n_functions;
  c->path = m->path;
  c->dir = m->dir;
  c->pb = m->pb;
  for (size_t i = 0; i < m->n_opsets; i++)
    if (tc_model_set_opset(c, m->opsets[i].domain, m->opsets[i].version) != 0)
      goto fail;
  tc_graph *g = c->graph = tc_graph_new(c, NULL, src->name);
  if (!g)
    goto fail;
  /* every value keeps its name: inputs, initializers and node outputs are
   * made first, so the node copies write them rather than fresh ones */
  for (size_t i = 0; i < src->n_inputs; i++) {
    tc_value *v = twin(g, &map, src->inputs[i].value, diag);
    if (!v || tc_graph_add_input(g, v, src->inputs[i].pb) != 0)
      goto fail;
  }
  for (size_t i = 0; i < src->n_inits; i++) {
    const tc_value *o = src->inits[i];
    tc_value *v = tc_graph_lookup_local(g, o->name);
    if (!v && !(v = twin(g, &map, o, diag)))
      goto fail;
    if (tc_graph_add_init(g, v, o->init) != 0)
      goto fail;
  }
  for (size_t i = 0; i < src->n_sparse_inits; i++) {
    const tc_value *o = src->sparse_inits[i];
    tc_value *v = tc_graph_lookup_local(g, o->name);
    if (!v && !(v = twin(g, &map, o, diag)))
      goto fail;
    v->sparse = o->sparse;
    if (tc_arena_vec_reserve(c->arena, (void **)&g->sparse_inits, &g->cap_sparse_inits,
                             g->n_sparse_inits, sizeof *g->sparse_inits) != 0)
      goto fail;
    g->sparse_inits[g->n_sparse_inits++] = v;
  }
  for (const tc_node *n = src->first; n; n = n->next)
    for (size_t i = 0; i < n->n_outputs; i++)
      if (n->outputs[i] && !twin(g, &map, n->outputs[i], diag))
        goto fail;
  if ((st = tc_graph_copy_nodes(g, NULL, src, &map, diag)))
    goto fail;
  st = TC_STATUS_NOMEM;
  for (size_t i = 0; i < src->n_outputs; i++) {
    tc_value *v = NULL;
    if (!tc_value_map_get(&map, src->outputs[i].value, &v) || !v ||
        tc_graph_add_output(g, v, src->outputs[i].pb) != 0)
      goto fail;
  }
  size_t inlined;
  if ((st = tc_inline_calls(c, g, NULL, &inlined, diag)))
    goto fail;
  tc_value_map_free(&map);
  *out = c;
  return TC_STATUS_OK;
fail:
  tc_value_map_free(&map);
  tc_model_inlined_copy_free(c);
  return st == TC_STATUS_NOMEM && !diag->status ? nomem(diag) : st;
}

void tc_model_inlined_copy_free(tc_model *c) {
  if (!c)
    return;
  c->pb = NULL; /* m's, not the copy's */
  tc_model_free(c);
}
