/* Bump arena: graph structure (nodes, values, attributes, strings) is carved
 * out of large blocks and released in one call. Tensor payloads are not kept
 * here; they live in reference-counted tc_buffer objects (see ir.h). */
#ifndef TC_ARENA_H
#define TC_ARENA_H

#include <stddef.h>

typedef struct tc_arena tc_arena;

/* Creates an empty arena; NULL when out of memory. */
tc_arena *tc_arena_new(void);
/* Releases every block of the arena and runs its cleanup hooks (last added first). */
void tc_arena_free(tc_arena *a);
/* Runs the cleanup hooks and forgets every allocation, keeping the blocks
 * for later allocations of the same arena (no page faults on reuse). */
void tc_arena_reset(tc_arena *a);
/* Returns zeroed, 16-byte aligned memory owned by the arena; NULL when out of memory. */
void *tc_arena_alloc(tc_arena *a, size_t size);
/* Copies a NUL-terminated string into the arena; NULL in gives NULL out. */
char *tc_arena_strdup(tc_arena *a, const char *s);
/* Copies n bytes into the arena (n may be 0); NULL when out of memory. */
void *tc_arena_memdup(tc_arena *a, const void *p, size_t n);
/* Grows an arena vector: *items holds *n of size elem; ensures room for one more.
 * The old storage stays in the arena (it is freed with it). 0 on success. */
int tc_arena_vec_reserve(tc_arena *a, void **items, size_t *cap, size_t n, size_t elem);
/* Registers fn(arg) to run when the arena is freed (used to release buffers). 0 on success. */
int tc_arena_on_free(tc_arena *a, void (*fn)(void *), void *arg);

#endif
