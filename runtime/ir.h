/* tacoc's IR: the one graph type of the project (runtime, passes, codegen, CLI).
 *
 * Ownership
 *   A tc_model owns one arena holding every graph, node, value and attribute of
 *   the model (subgraphs and function bodies included); tc_model_free releases
 *   it all. Tensor payloads live in reference-counted tc_buffer objects (heap
 *   or memory-mapped external data) so passes can share, create and drop them.
 *
 * SSA
 *   A tc_value is defined once: by a node output, a graph input or an
 *   initializer (an input may also have an initializer, as IR < 4 writes).
 *   value->uses lists every (node, input slot) reading it, including nodes in
 *   subgraphs that read it from the outer scope. Passes follow these links and
 *   never search by name in a loop.
 *
 * Fidelity
 *   Objects imported from a file keep a pointer to their protobuf-c message
 *   (`pb`). The IR models what passes read and change (ops, edges, attributes,
 *   types, tensor data); export starts from the original message and overwrites
 *   only the modelled fields, so everything else (doc strings, metadata_props,
 *   device configurations, fields the schema does not know, ...) round-trips
 *   untouched. An object a pass creates has pb == NULL. */
#ifndef TC_IR_H
#define TC_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "onnx-ml.pb-c.h"

/* ---- data types: ONNX's TensorProto.DataType numbering ---- */
/* X(enum suffix, onnx number, name, bits per element) */
#define TC_DTYPE_LIST(X)                                                                           \
  X(UNDEFINED, 0, "undefined", 0)                                                                  \
  X(F32, 1, "float32", 32)                                                                         \
  X(U8, 2, "uint8", 8)                                                                             \
  X(I8, 3, "int8", 8)                                                                              \
  X(U16, 4, "uint16", 16)                                                                          \
  X(I16, 5, "int16", 16)                                                                           \
  X(I32, 6, "int32", 32)                                                                           \
  X(I64, 7, "int64", 64)                                                                           \
  X(STRING, 8, "string", 0)                                                                        \
  X(BOOL, 9, "bool", 8)                                                                            \
  X(F16, 10, "float16", 16)                                                                        \
  X(F64, 11, "float64", 64)                                                                        \
  X(U32, 12, "uint32", 32)                                                                         \
  X(U64, 13, "uint64", 64)                                                                         \
  X(C64, 14, "complex64", 64)                                                                      \
  X(C128, 15, "complex128", 128)                                                                   \
  X(BF16, 16, "bfloat16", 16)                                                                      \
  X(F8E4M3FN, 17, "float8e4m3fn", 8)                                                               \
  X(F8E4M3FNUZ, 18, "float8e4m3fnuz", 8)                                                           \
  X(F8E5M2, 19, "float8e5m2", 8)                                                                   \
  X(F8E5M2FNUZ, 20, "float8e5m2fnuz", 8)                                                           \
  X(U4, 21, "uint4", 4)                                                                            \
  X(I4, 22, "int4", 4)                                                                             \
  X(F4E2M1, 23, "float4e2m1", 4)                                                                   \
  X(F8E8M0, 24, "float8e8m0", 8)                                                                   \
  X(U2, 25, "uint2", 2)                                                                            \
  X(I2, 26, "int2", 2)                                                                             \
  X(F6E2M3, 27, "float6e2m3", 8)                                                                   \
  X(F6E3M2, 28, "float6e3m2", 8)

typedef enum tc_dtype {
#define X(e, n, s, b) TC_DTYPE_##e = n,
  TC_DTYPE_LIST(X)
#undef X
      TC_DTYPE_COUNT
} tc_dtype;

/* Name of a dtype ("float32"); "dtype(N)" style names are not returned: unknown gives "unknown". */
const char *tc_dtype_name(int32_t dt);
/* Bits per element (0 for string and undefined or unknown numbers). */
int tc_dtype_bits(int32_t dt);
/* True for numbers this IR knows. */
bool tc_dtype_known(int32_t dt);
/* Bytes that count elements of dt take packed (sub-byte types round up); 0 for strings/unknown. */
size_t tc_dtype_bytes(int32_t dt, size_t count);

/* True for the default ONNX operator domain, which files spell NULL, "" or "ai.onnx". */
bool tc_domain_is_onnx(const char *domain);
/* True when two domains name the same operator set (the default one spelled either way). */
bool tc_domain_equal(const char *a, const char *b);

/* ---- tensor payloads ---- */
typedef struct tc_buffer tc_buffer;
/* Wraps malloc'd memory; the buffer frees it with free(). NULL on OOM (data is then freed). */
tc_buffer *tc_buffer_wrap_heap(void *data, size_t size);
/* Wraps memory the buffer does not own (unref leaves it alone). NULL on OOM. */
tc_buffer *tc_buffer_wrap_static(void *data, size_t size);
/* Allocates a zeroed heap buffer of size bytes. */
tc_buffer *tc_buffer_new(size_t size);
/* Maps a whole file read-only; NULL with errno set on failure. */
tc_buffer *tc_buffer_map_file(const char *path);
void *tc_buffer_data(const tc_buffer *b);
size_t tc_buffer_size(const tc_buffer *b);
tc_buffer *tc_buffer_ref(tc_buffer *b);
void tc_buffer_unref(tc_buffer *b);

/* A byte range of a buffer. */
typedef struct tc_span {
  tc_buffer *buf; /* NULL: empty */
  size_t off, len;
} tc_span;

static inline const void *tc_span_data(tc_span s) {
  return s.buf ? (const unsigned char *)tc_buffer_data(s.buf) + s.off : NULL;
}

/* Where a tensor's values are stored in the protobuf; export writes them back the same way. */
typedef enum tc_tensor_field {
  TC_FIELD_NONE = 0,
  TC_FIELD_RAW,      /* raw_data: little-endian packed bytes */
  TC_FIELD_FLOAT,    /* float_data */
  TC_FIELD_INT32,    /* int32_data (also int8/16, uint8/16, bool, fp16, bf16, fp8 ...) */
  TC_FIELD_INT64,    /* int64_data */
  TC_FIELD_DOUBLE,   /* double_data */
  TC_FIELD_UINT64,   /* uint64_data (also uint32) */
  TC_FIELD_STRING,   /* string_data */
  TC_FIELD_EXTERNAL, /* data_location EXTERNAL: bytes in a file beside the model */
  TC_FIELD_COUNT
} tc_tensor_field;

typedef struct tc_tensor {
  const char *name;
  int32_t dtype;
  bool has_dtype;
  size_t rank;
  int64_t *dims;
  tc_tensor_field field; /* where the values are; the other slots are normally empty */
  /* Per field: RAW and EXTERNAL hold packed little-endian bytes; typed fields
   * hold the native array of that field (count = len / element size). A file
   * may carry several (malformed, but kept as they were). */
  tc_span data[TC_FIELD_COUNT];
  bool has_raw;                 /* raw_data present (possibly empty) */
  size_t n_strings;             /* string_data: */
  ProtobufCBinaryData *strings; /*   elements (arena) */
  const char *ext_location;     /* EXTERNAL: location and offset as read */
  uint64_t ext_offset;
  const Onnx__TensorProto *pb;
} tc_tensor;

/* Number of elements (product of dims; 1 for a scalar). */
size_t tc_tensor_numel(const tc_tensor *t);

typedef struct tc_sparse_tensor {
  tc_tensor *values, *indices;
  size_t rank;
  int64_t *dims;
  const Onnx__SparseTensorProto *pb;
} tc_sparse_tensor;

/* ---- types and shapes ---- */
typedef enum tc_dim_kind { TC_DIM_UNKNOWN = 0, TC_DIM_VALUE, TC_DIM_PARAM } tc_dim_kind;

typedef struct tc_dim {
  tc_dim_kind kind;
  int64_t value;     /* TC_DIM_VALUE */
  const char *param; /* TC_DIM_PARAM: symbolic name, e.g. "batch" */
} tc_dim;

typedef enum tc_type_kind {
  TC_TYPE_NONE = 0, /* no type information */
  TC_TYPE_TENSOR,
  TC_TYPE_SEQUENCE,
  TC_TYPE_MAP,
  TC_TYPE_OPTIONAL,
  TC_TYPE_SPARSE,
  TC_TYPE_OPAQUE
} tc_type_kind;

typedef struct tc_type {
  tc_type_kind kind;
  int32_t elem; /* tensor / sparse: element dtype; sequence/optional: of the inner tensor if any */
  bool has_shape; /* false: rank unknown */
  size_t rank;
  tc_dim *dims;
} tc_type;

/* ---- graph ---- */

typedef struct tc_graph tc_graph;
typedef struct tc_node tc_node;
typedef struct tc_value tc_value;

typedef struct tc_use {
  tc_node *node;
  int slot; /* input index of node */
} tc_use;

typedef enum tc_value_flags {
  TC_VALUE_INPUT = 1,  /* listed in graph.input */
  TC_VALUE_OUTPUT = 2, /* listed in graph.output */
} tc_value_flags;

struct tc_value {
  const char *name;
  tc_graph *graph; /* the graph that defines it */
  tc_type type;
  /* The imported TypeProto; export writes it while type_dirty is false. */
  const Onnx__TypeProto *pb_type;
  bool type_dirty;
  tc_node *producer; /* NULL for graph inputs and initializers */
  int producer_slot;
  tc_tensor *init;          /* initializer data, or NULL */
  tc_sparse_tensor *sparse; /* sparse initializer, or NULL */
  unsigned flags;
  tc_use *uses;
  size_t n_uses, cap_uses;
  uint32_t id; /* dense per model, for side tables */
};

/* One entry of graph.input / output / value_info: the value plus its ValueInfoProto extras. */
typedef struct tc_vinfo {
  tc_value *value;
  const Onnx__ValueInfoProto *pb;
} tc_vinfo;

typedef struct tc_attr {
  const char *name;
  int type; /* Onnx__AttributeProto__AttributeType */
  const char *ref_attr_name;
  float f;
  int64_t i;
  ProtobufCBinaryData s;
  size_t n_floats, n_ints, n_strings, n_tensors, n_graphs;
  float *floats;
  int64_t *ints;
  ProtobufCBinaryData *strings;
  tc_tensor *t;
  tc_tensor **tensors;
  tc_graph *g;
  tc_graph **graphs;
  const Onnx__AttributeProto *pb; /* sparse tensors and type protos are carried here */
} tc_attr;

struct tc_node {
  const char *op_type;
  const char *domain; /* NULL or "" is the default ONNX domain */
  const char *name;
  tc_graph *graph;
  size_t n_inputs, n_outputs, n_attrs;
  tc_value **inputs;  /* NULL entry: optional input left out ("") */
  tc_value **outputs; /* NULL entry: optional output not produced */
  tc_attr *attrs;
  tc_node *prev, *next;
  uint32_t id;
  const Onnx__NodeProto *pb;
};

struct tc_graph {
  tc_model *model;
  tc_graph *parent; /* enclosing graph for subgraphs, NULL otherwise */
  tc_node *owner;   /* node whose attribute holds this subgraph */
  const char *name;
  tc_node *first, *last;
  size_t n_nodes;
  tc_vinfo *inputs, *outputs, *value_info;
  size_t n_inputs, n_outputs, n_value_info;
  size_t cap_inputs, cap_outputs, cap_value_info;
  tc_value **inits; /* initializers in file order */
  size_t n_inits, cap_inits;
  tc_value **sparse_inits;
  size_t n_sparse_inits, cap_sparse_inits;
  struct tc_symtab *names; /* name -> value of this graph's scope */
  const Onnx__GraphProto *pb;
};

typedef struct tc_opset {
  const char *domain;
  int64_t version;
  const Onnx__OperatorSetIdProto *pb;
} tc_opset;

typedef struct tc_function {
  const char *name, *domain, *overload;
  tc_graph *body; /* inputs/outputs are the function's formal parameters */
  tc_opset *opsets;
  size_t n_opsets;
  /* Attribute parameters of a function a pass created (imported functions
   * keep theirs in pb). */
  const char **attr_names;
  size_t n_attr_names;
  const Onnx__FunctionProto *pb;
} tc_function;

struct tc_model {
  tc_arena *arena;
  int64_t ir_version;
  tc_opset *opsets;
  size_t n_opsets;
  tc_graph *graph;
  tc_function *functions;
  size_t n_functions;
  const char *path;     /* file it came from, or NULL */
  const char *dir;      /* folder external data is resolved against, or NULL */
  Onnx__ModelProto *pb; /* owned: freed with the model */
  uint32_t next_value_id, next_node_id;
  uint32_t next_fresh; /* counter of tc_graph_fresh_name */
};

/* ---- building and editing (all memory from the model's arena) ---- */
/* Creates an empty model with its arena; NULL on OOM. */
tc_model *tc_model_new_empty(void);
void tc_model_free(tc_model *m);
/* New empty graph of model m under parent (NULL for a top-level graph). */
tc_graph *tc_graph_new(tc_model *m, tc_graph *parent, const char *name);
/* Finds a value visible from g by name (g, then its enclosing graphs); NULL if none. */
tc_value *tc_graph_lookup(const tc_graph *g, const char *name);
/* Finds a value defined in g itself; NULL if none. */
tc_value *tc_graph_lookup_local(const tc_graph *g, const char *name);
/* Creates a value named name in g (name copied). Fails with NULL on OOM or when
 * g already defines that name (diag gets the reason when non-NULL). */
tc_value *tc_graph_new_value(tc_graph *g, const char *name, tc_diag *diag);
/* Appends v to g's input / output / value_info lists. 0 on success. */
int tc_graph_add_input(tc_graph *g, tc_value *v, const Onnx__ValueInfoProto *pb);
int tc_graph_add_output(tc_graph *g, tc_value *v, const Onnx__ValueInfoProto *pb);
int tc_graph_add_value_info(tc_graph *g, tc_value *v, const Onnx__ValueInfoProto *pb);
/* Makes v an initializer of g holding t. 0 on success. */
int tc_graph_add_init(tc_graph *g, tc_value *v, tc_tensor *t);
/* Appends a node with room for the given numbers of inputs/outputs/attributes
 * (all slots NULL) at the end of g. Strings are copied. NULL on OOM. */
tc_node *tc_graph_append_node(tc_graph *g, const char *op_type, const char *domain,
                              const char *name, size_t n_inputs, size_t n_outputs, size_t n_attrs);
/* Sets input slot i of n to v (NULL clears it), keeping use lists right. 0 on success. */
int tc_node_set_input(tc_node *n, size_t i, tc_value *v);
/* Makes v output slot i of n. v must have no producer and not be an input/initializer. */
int tc_node_set_output(tc_node *n, size_t i, tc_value *v);
/* Unlinks n from its graph and from the use lists of its inputs; its outputs
 * lose their producer. The memory stays in the arena. */
void tc_node_remove(tc_node *n);
/* Finds attribute name on n; NULL if absent. */
const tc_attr *tc_node_attr(const tc_node *n, const char *name);
/* Sets every use of from to read to instead (outer-scope uses included). */
int tc_value_replace_uses(tc_value *from, tc_value *to);
/* Sets a value's tensor type; marks it changed so export writes the new type. */
int tc_value_set_tensor_type(tc_value *v, int32_t elem, size_t rank, const tc_dim *dims);

/* Version of domain the model imports (the default domain spelled either way); 0 if none. */
int64_t tc_model_opset(const tc_model *m, const char *domain);
/* Sets (or adds) the model's import of domain to version. 0 on success. */
int tc_model_set_opset(tc_model *m, const char *domain, int64_t version);

/* The model-local function domain.name, or NULL. */
tc_function *tc_model_find_function(tc_model *m, const char *domain, const char *name);
/* Adds an empty model-local function domain.name (body graph, no opsets) and
 * returns it; the pointer stays valid until the next call. NULL on OOM. */
tc_function *tc_model_add_function(tc_model *m, const char *domain, const char *name);

/* ---- editing helpers for passes ---- */
/* A name starting with base that no value visible from g, and no value the
 * model has named so far through this function, uses. Arena memory; NULL on OOM. */
const char *tc_graph_fresh_name(tc_graph *g, const char *base);
/* A new value in g named after base (made unique). NULL on OOM. */
tc_value *tc_graph_new_temp(tc_graph *g, const char *base);
/* Like tc_graph_append_node but links the node just before `before`
 * (NULL: at the end). Node name NULL: none. */
tc_node *tc_graph_insert_node(tc_graph *g, tc_node *before, const char *op_type, const char *domain,
                              const char *name, size_t n_inputs, size_t n_outputs, size_t n_attrs);
/* Sets attribute slot i of n (created with room for it). Strings and arrays
 * are copied into the arena. 0 on success. */
int tc_node_set_attr_int(tc_node *n, size_t i, const char *name, int64_t v);
int tc_node_set_attr_float(tc_node *n, size_t i, const char *name, float v);
int tc_node_set_attr_string(tc_node *n, size_t i, const char *name, const char *v);
int tc_node_set_attr_ints(tc_node *n, size_t i, const char *name, const int64_t *v, size_t count);
int tc_node_set_attr_floats(tc_node *n, size_t i, const char *name, const float *v, size_t count);
/* Gives n room for n_inputs inputs and n_attrs attributes in place (the node
 * keeps its identity): new slots are empty, inputs past the new count are
 * cleared, attributes past it dropped. 0 on success. */
int tc_node_resize(tc_node *n, size_t n_inputs, size_t n_attrs);
/* Removes attribute name from n, if present. */
void tc_node_remove_attr(tc_node *n, const char *name);
/* Copies attribute a (arrays shared, name kept) into slot i of n. */
void tc_node_copy_attr(tc_node *n, size_t i, const tc_attr *a);
/* A dense tensor holding buf's bytes (RAW field); takes over the caller's
 * reference to buf (released with the model, or here on failure). NULL on OOM. */
tc_tensor *tc_tensor_new(tc_model *m, const char *name, int32_t dtype, size_t rank,
                         const int64_t *dims, tc_buffer *buf);
/* Whether a caller may feed v: it is listed in graph.input, and it is not
 * an initializer of a model below IR version 4 (IR 3 listed every
 * initializer as a graph input too; ONNX Runtime reads those as constants
 * and refuses them as inputs, and so does libtacort). */
bool tc_value_is_input(const tc_value *v);
/* Raises m to IR version 4 when it is below, meaning the same: from IR 4 an
 * initializer listed as an input is a default the caller may override, so
 * the IR 3 initializers leave the input lists of every graph (they stay
 * initializers: constants). Nothing when m is at 4 or above. */
void tc_model_raise_ir4(tc_model *m);
/* The constant data of v: its initializer when v is one and not a graph
 * input a caller may override (tc_value_is_input). NULL otherwise. */
const tc_tensor *tc_value_const(const tc_value *v);
/* Makes v an initializer of its graph holding t (v must have no producer). */
int tc_value_make_const(tc_value *v, tc_tensor *t);
/* Drops v from its graph's initializer list (v keeps its name and uses). */
void tc_graph_remove_init(tc_graph *g, tc_value *v);
/* Drops value_info entries of values that no node, input or initializer
 * defines any more. */
void tc_graph_prune_value_info(tc_graph *g);
/* Reorders g's nodes topologically, keeping the current order wherever it
 * already is one (so a sorted graph is unchanged). Nodes whose subgraphs read
 * outer values come after those values' producers. INVALID on a cycle. */
tc_status tc_graph_toposort(tc_graph *g, tc_diag *diag);

/* ---- copying (function inlining, subgraph duplication) ---- */
/* Source value -> the value a copy uses instead, by value id. Start from
 * {0}; entries are set explicitly or by the copies; heap memory. */
typedef struct tc_value_map {
  tc_value **to;
  bool *set; /* set with to NULL: the copy leaves the input out */
  size_t n;
} tc_value_map;
/* Maps from to to (NULL allowed). 0 on success, -1 on OOM. */
int tc_value_map_set(tc_value_map *map, const tc_value *from, tc_value *to);
/* True when from is mapped; *to gets its value (may be NULL). */
bool tc_value_map_get(const tc_value_map *map, const tc_value *from, tc_value **to);
/* Frees the map's memory (not the values). */
void tc_value_map_free(tc_value_map *map);
/* Maps from to a new value of g named fresh after it (type copied); NULL on OOM. */
tc_value *tc_value_map_fresh(tc_value_map *map, tc_graph *g, const tc_value *from);
/* Copies the nodes of src into g before `before` (NULL: at the end), in
 * order: every node output not yet mapped first gets a fresh value of g;
 * inputs read their mapped value (unmapped ones are read as they are, so
 * they must be visible from g). Subgraphs are deep-copied (tc_attr_copy). */
tc_status tc_graph_copy_nodes(tc_graph *g, tc_node *before, const tc_graph *src, tc_value_map *map,
                              tc_diag *diag);
/* Deep copy of graph src as a subgraph of parent held by owner: inputs,
 * initializers and node outputs get fresh names, reads of outer values go
 * through map. NULL on failure (diag set). */
tc_graph *tc_graph_copy(tc_graph *parent, tc_node *owner, const tc_graph *src, tc_value_map *map,
                        tc_diag *diag);
/* Copies attribute a into *dst for node owner: subgraphs deep-copied
 * (tc_graph_copy, under owner), tensors as structs of their own sharing the
 * payload, arrays and strings shared. */
tc_status tc_attr_copy(tc_attr *dst, tc_node *owner, const tc_attr *a, tc_value_map *map,
                       tc_diag *diag);
/* Fills *a from an AttributeProto import did not read (e.g. a
 * FunctionProto.attribute_proto default), sharing p's arrays and viewing its
 * tensors in place (p must live as long as m); graph values are UNSUPPORTED. */
tc_status tc_attr_from_pb(tc_model *m, tc_attr *a, const Onnx__AttributeProto *p, tc_diag *diag);

/* ---- checks ---- */
/* Checks the IR's invariants on g and its subgraphs: use lists match inputs,
 * producers match outputs, every node input is visible, no cycles. Returns
 * TC_STATUS_INVALID with the offending node in diag. */
tc_status tc_graph_verify(const tc_graph *g, tc_diag *diag);

/* ---- statistics used by inspect ---- */
typedef struct tc_param_stats {
  size_t count;   /* number of elements over all initializers (dense + sparse values) */
  size_t bytes;   /* payload bytes */
  size_t tensors; /* number of initializers */
} tc_param_stats;
/* Sums initializer sizes of g (not subgraphs). */
tc_param_stats tc_graph_param_stats(const tc_graph *g);

/* True when n is op op_type of the default ONNX domain. */
bool tc_is_op(const tc_node *n, const char *op_type);
/* True for ops whose result is random (never folded, merged or computed ahead). */
bool tc_op_is_random(const tc_node *n);
/* Elements of a constant as int64 (int dtypes) into a new heap array;
 * returns the count or -1. The caller frees *out. (kernel_util.c) */
ptrdiff_t tc_const_ints(const tc_tensor *t, int64_t **out);

#endif
