/* Symbolic shape inference (for the passes, the tuner, and libtacort's
 * memory plans at session creation): each value's dtype and dims (known
 * numbers or symbols, so "the same unknown batch size" can be recognized),
 * and for small integer tensors computed from shapes (Shape, Gather, Concat,
 * ...) their element values, symbolic too. Kept in a side table by value id:
 * inference never changes the model's own type information.
 *
 * Every dim is either a number (sym NULL) or a symbol: a dim_param name of a
 * graph input, or a fresh name ("?N") for a dim nothing tells us about. Two
 * dims are equal when both are the same number or the same symbol. */
#ifndef TC_SHAPES_H
#define TC_SHAPES_H

#include <stdbool.h>

#include "ir.h"

#define TC_SHAPE_MAX_RANK 8
#define TC_SHAPE_MAX_VALS 8

typedef struct tc_sdim {
  int64_t v;       /* the number, when sym is NULL */
  const char *sym; /* symbol, or NULL */
} tc_sdim;

typedef struct tc_shape {
  bool known; /* rank and dims known */
  int32_t dtype;
  size_t rank;
  tc_sdim dims[TC_SHAPE_MAX_RANK];
  bool has_vals; /* element values known (int tensors of at most TC_SHAPE_MAX_VALS elements) */
  size_t n_vals;
  tc_sdim vals[TC_SHAPE_MAX_VALS];
} tc_shape;

typedef struct tc_shapes tc_shapes;

/* Infers shapes over g (outer-scope values of subgraphs are not followed
 * into). Fresh symbol names go to the model's arena. NULL on OOM. */
tc_shapes *tc_shapes_infer(tc_graph *g);
/* The same, with the symbol names in an arena of its own (freed with the
 * result): the model is not touched, so several threads may infer over one
 * model at once. */
tc_shapes *tc_shapes_infer_private(const tc_graph *g);
/* tc_shapes_infer_private with the dims of g's input i fixed to dims[i]
 * (ranks[i] of them; a NULL dims[i] keeps the declared type): the sizes of
 * a run's actual input shapes. */
tc_shapes *tc_shapes_infer_bound(const tc_graph *g, const int64_t *const *dims,
                                 const size_t *ranks);
void tc_shapes_free(tc_shapes *s);
/* The shape of v; a value made after inference has an unknown shape. */
const tc_shape *tc_shape_of(const tc_shapes *s, const tc_value *v);
bool tc_sdim_eq(tc_sdim a, tc_sdim b);
static inline bool tc_sdim_is(tc_sdim d, int64_t v) { return !d.sym && d.v == v; }

#endif
