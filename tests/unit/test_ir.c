/* IR: building graphs, use lists, editing, the verifier, dtype table. */
#include <string.h>

#include "check.h"
#include "ir.h"

static bool tc_is_same_op(const tc_node *n, const char *op) { return strcmp(n->op_type, op) == 0; }

/* x -> Relu -> a -> Neg -> y, with a second reader of a: Add(a, x) -> z */
typedef struct small {
  tc_model *m;
  tc_graph *g;
  tc_value *x, *a, *y, *z;
  tc_node *relu, *neg, *add;
} small;

static small make_small(void) {
  small s = {0};
  s.m = tc_model_new_empty();
  s.g = s.m->graph = tc_graph_new(s.m, NULL, "g");
  s.x = tc_graph_new_value(s.g, "x", NULL);
  tc_graph_add_input(s.g, s.x, NULL);
  s.a = tc_graph_new_value(s.g, "a", NULL);
  s.y = tc_graph_new_value(s.g, "y", NULL);
  s.z = tc_graph_new_value(s.g, "z", NULL);
  s.relu = tc_graph_append_node(s.g, "Relu", "", "relu", 1, 1, 0);
  tc_node_set_input(s.relu, 0, s.x);
  tc_node_set_output(s.relu, 0, s.a);
  s.neg = tc_graph_append_node(s.g, "Neg", "", "neg", 1, 1, 0);
  tc_node_set_input(s.neg, 0, s.a);
  tc_node_set_output(s.neg, 0, s.y);
  s.add = tc_graph_append_node(s.g, "Add", "", "add", 2, 1, 0);
  tc_node_set_input(s.add, 0, s.a);
  tc_node_set_input(s.add, 1, s.x);
  tc_node_set_output(s.add, 0, s.z);
  tc_graph_add_output(s.g, s.y, NULL);
  tc_graph_add_output(s.g, s.z, NULL);
  return s;
}

static void test_build_and_links(void) {
  small s = make_small();
  CHECK(s.g->n_nodes == 3);
  CHECK(s.a->producer == s.relu && s.a->producer_slot == 0);
  CHECK(s.a->n_uses == 2);
  CHECK(s.x->n_uses == 2);
  CHECK(tc_graph_lookup(s.g, "a") == s.a);
  CHECK(tc_graph_lookup(s.g, "nope") == NULL);
  tc_diag d = {0};
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_OK);
  tc_model_free(s.m);
}

static void test_duplicate_value_refused(void) {
  small s = make_small();
  tc_diag d = {0};
  CHECK(tc_graph_new_value(s.g, "a", &d) == NULL);
  CHECK(d.status == TC_STATUS_INVALID);
  CHECK(strstr(tc_diag_message(&d), "'a'") != NULL);
  tc_model_free(s.m);
}

static void test_replace_and_remove(void) {
  small s = make_small();
  /* Bypass Relu: readers of a read x instead, then drop the node. */
  CHECK(tc_value_replace_uses(s.a, s.x) == 0);
  CHECK(s.a->n_uses == 0);
  CHECK(s.x->n_uses == 4); /* relu, neg, add slot 0, add slot 1 */
  tc_node_remove(s.relu);
  size_t reads = 0;
  for (size_t i = 0; i < s.x->n_uses; i++)
    reads += s.x->uses[i].node != s.relu;
  CHECK(reads == s.x->n_uses);
  CHECK(s.x->n_uses == 3);
  CHECK(s.g->first == s.neg && s.g->n_nodes == 2);
  CHECK(s.a->producer == NULL);
  tc_diag d = {0};
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_OK);
  tc_model_free(s.m);
}

static void test_verifier_finds_cycle(void) {
  small s = make_small();
  /* Make Relu read Neg's output: relu -> a -> neg -> y -> relu. */
  tc_node_set_input(s.relu, 0, s.y);
  tc_diag d = {0};
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_INVALID);
  CHECK(strstr(d.reason, "cycle") != NULL);
  CHECK(strcmp(d.node, "relu") == 0 || strcmp(d.node, "neg") == 0);
  tc_model_free(s.m);
}

static void test_verifier_finds_broken_use_list(void) {
  small s = make_small();
  s.neg->inputs[0] = s.x; /* bypasses tc_node_set_input: x does not list neg */
  tc_diag d = {0};
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_INVALID);
  CHECK(strcmp(d.node, "neg") == 0 && strcmp(d.op, "Neg") == 0);
  tc_model_free(s.m);
}

static void test_subgraph_outer_scope(void) {
  small s = make_small();
  /* An If whose then-branch reads x from the outer scope. */
  tc_node *iff = tc_graph_append_node(s.g, "If", "", "if", 1, 1, 1);
  tc_node_set_input(iff, 0, s.z);
  tc_graph *body = tc_graph_new(s.m, s.g, "then");
  body->owner = iff;
  tc_value *r = tc_graph_new_value(body, "r", NULL);
  tc_node *id = tc_graph_append_node(body, "Identity", "", "id", 1, 1, 0);
  tc_node_set_input(id, 0, s.x);
  tc_node_set_output(id, 0, r);
  tc_graph_add_output(body, r, NULL);
  iff->attrs[0] = (tc_attr){
      .name = "then_branch", .type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH, .g = body};
  CHECK(tc_graph_lookup(body, "x") == s.x);
  CHECK(tc_graph_lookup_local(body, "x") == NULL);
  bool seen = false;
  for (size_t i = 0; i < s.x->n_uses; i++)
    seen |= s.x->uses[i].node == id;
  CHECK(seen);
  tc_diag d = {0};
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_OK);
  /* A value of the subgraph is not visible to the outer graph. */
  tc_node_set_input(s.neg, 0, r);
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_INVALID);
  tc_model_free(s.m);
}

static void test_toposort(void) {
  small s = make_small();
  tc_diag d = {0};
  /* Already sorted: unchanged. */
  CHECK(tc_graph_toposort(s.g, &d) == TC_STATUS_OK);
  CHECK(s.g->first == s.relu && s.relu->next == s.neg && s.neg->next == s.add);
  /* A node appended at the end that others read moves before them; the
   * rest keep their order. */
  tc_value *b = tc_graph_new_temp(s.g, "b");
  tc_node *exp = tc_graph_append_node(s.g, "Exp", "", "exp", 1, 1, 0);
  tc_node_set_input(exp, 0, s.x);
  tc_node_set_output(exp, 0, b);
  tc_node_set_input(s.neg, 0, b);
  CHECK(tc_graph_toposort(s.g, &d) == TC_STATUS_OK);
  CHECK(s.g->first == s.relu && s.relu->next == exp && exp->next == s.neg && s.neg->next == s.add &&
        s.g->last == s.add && s.add->next == NULL);
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_OK);
  /* A cycle is refused and names a node on it. */
  tc_node_set_input(exp, 0, s.y);
  CHECK(tc_graph_toposort(s.g, &d) == TC_STATUS_INVALID);
  CHECK(strstr(d.reason, "cycle") != NULL);
  tc_model_free(s.m);
}

static void test_editing_helpers(void) {
  small s = make_small();
  const char *n1 = tc_graph_fresh_name(s.g, "a");
  const char *n2 = tc_graph_fresh_name(s.g, "a");
  CHECK(n1 && n2 && strcmp(n1, "a") != 0 && strcmp(n1, n2) != 0);
  tc_node *mul = tc_graph_insert_node(s.g, s.neg, "Mul", "", NULL, 2, 1, 2);
  CHECK(s.relu->next == mul && mul->next == s.neg && mul->prev == s.relu);
  CHECK(tc_node_set_attr_int(mul, 0, "axis", -1) == 0);
  CHECK(tc_node_set_attr_string(mul, 1, "mode", "tanh") == 0);
  CHECK(tc_node_attr(mul, "axis")->i == -1 &&
        memcmp(tc_node_attr(mul, "mode")->s.data, "tanh", 4) == 0);
  CHECK(tc_model_opset(s.m, "") == 0);
  CHECK(tc_model_set_opset(s.m, "ai.onnx", 17) == 0 && tc_model_opset(s.m, "") == 17);
  CHECK(tc_model_set_opset(s.m, "", 20) == 0 && tc_model_opset(s.m, "ai.onnx") == 20);
  CHECK(s.m->n_opsets == 1);
  float one = 1.0f;
  tc_buffer *buf = tc_buffer_new(sizeof one);
  memcpy(tc_buffer_data(buf), &one, sizeof one);
  tc_value *c = tc_graph_new_temp(s.g, "c");
  tc_tensor *t = tc_tensor_new(s.m, c->name, TC_DTYPE_F32, 0, NULL, buf);
  CHECK(t && tc_value_make_const(c, t) == 0);
  CHECK(tc_value_const(c) == t && s.g->n_inits == 1);
  tc_graph_remove_init(s.g, c);
  CHECK(s.g->n_inits == 0 && tc_value_const(c) == NULL);
  tc_model_free(s.m);
}

static void test_copy_nodes_with_value_map(void) {
  small s = make_small();
  /* Copy relu -> neg -> add into a second graph whose input w stands for x:
   * the copies read w, their outputs are fresh values of that graph. */
  tc_graph *g2 = tc_graph_new(s.m, NULL, "g2");
  tc_value *w = tc_graph_new_value(g2, "w", NULL);
  tc_graph_add_input(g2, w, NULL);
  tc_value_map map = {0};
  CHECK(tc_value_map_set(&map, s.x, w) == 0);
  tc_value *got = NULL;
  CHECK(tc_value_map_get(&map, s.x, &got) && got == w);
  CHECK(!tc_value_map_get(&map, s.a, &got));
  tc_diag d = {0};
  CHECK(tc_graph_copy_nodes(g2, NULL, s.g, &map, &d) == TC_STATUS_OK);
  CHECK(g2->n_nodes == s.g->n_nodes);
  tc_value *a2 = NULL, *y2 = NULL;
  CHECK(tc_value_map_get(&map, s.a, &a2) && a2 && a2 != s.a && a2->graph == g2);
  CHECK(tc_value_map_get(&map, s.y, &y2) && y2 && y2 != s.y);
  CHECK(a2->producer && tc_is_same_op(a2->producer, "Relu") && a2->producer->inputs[0] == w);
  CHECK(y2->producer && y2->producer->inputs[0] == a2);
  CHECK(tc_graph_lookup_local(g2, a2->name) == a2);
  tc_graph_add_output(g2, y2, NULL);
  CHECK(tc_graph_verify(g2, &d) == TC_STATUS_OK);
  /* The originals are untouched. */
  CHECK(s.relu->inputs[0] == s.x && s.a->producer == s.relu && s.x->n_uses == 2);
  CHECK(tc_graph_verify(s.g, &d) == TC_STATUS_OK);
  /* Copying a graph into itself is refused, not an endless loop. */
  CHECK(tc_graph_copy_nodes(s.g, NULL, s.g, &map, &d) == TC_STATUS_INVALID);
  tc_value_map_free(&map);
  tc_model_free(s.m);
}

static void test_dtypes(void) {
  CHECK(strcmp(tc_dtype_name(TC_DTYPE_F32), "float32") == 0);
  CHECK(strcmp(tc_dtype_name(TC_DTYPE_BF16), "bfloat16") == 0);
  CHECK(tc_dtype_bits(TC_DTYPE_F16) == 16);
  CHECK(tc_dtype_bytes(TC_DTYPE_I4, 3) == 2);
  CHECK(tc_dtype_bytes(TC_DTYPE_F64, 3) == 24);
  CHECK(!tc_dtype_known(999) && strcmp(tc_dtype_name(999), "unknown") == 0);
}

static void test_arena(void) {
  tc_arena *a = tc_arena_new();
  char *big = tc_arena_alloc(a, 1 << 20);
  CHECK(big != NULL && big[12345] == 0);
  char *s = tc_arena_strdup(a, "hello");
  CHECK(s && strcmp(s, "hello") == 0);
  int *v = NULL;
  size_t n = 0, cap = 0;
  for (int i = 0; i < 1000; i++) {
    CHECK(tc_arena_vec_reserve(a, (void **)&v, &cap, n, sizeof *v) == 0);
    v[n++] = i;
  }
  CHECK(n == 1000 && v[999] == 999 && v[0] == 0);
  tc_arena_free(a);
}

int main(void) {
  RUN(test_build_and_links);
  RUN(test_duplicate_value_refused);
  RUN(test_replace_and_remove);
  RUN(test_verifier_finds_cycle);
  RUN(test_verifier_finds_broken_use_list);
  RUN(test_subgraph_outer_scope);
  RUN(test_toposort);
  RUN(test_editing_helpers);
  RUN(test_copy_nodes_with_value_map);
  RUN(test_dtypes);
  RUN(test_arena);
  return SUMMARY("unit.ir");
}
