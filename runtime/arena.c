#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TC_ARENA_BLOCK (64 * 1024)

typedef struct tc_block {
  struct tc_block *next;
  size_t size, used;
  _Alignas(16) unsigned char data[];
} tc_block;

typedef struct tc_hook {
  struct tc_hook *next;
  void (*fn)(void *);
  void *arg;
} tc_hook;

struct tc_arena {
  tc_block *head;
  tc_hook *hooks;
  tc_block *spare; /* blocks kept by tc_arena_reset for reuse */
};

tc_arena *tc_arena_new(void) { return calloc(1, sizeof(tc_arena)); }

static void free_blocks(tc_block *b) {
  while (b) {
    tc_block *next = b->next;
    free(b);
    b = next;
  }
}

static void run_hooks(tc_arena *a) {
  for (tc_hook *h = a->hooks; h; h = h->next)
    h->fn(h->arg);
  a->hooks = NULL;
}

void tc_arena_free(tc_arena *a) {
  if (!a)
    return;
  run_hooks(a);
  free_blocks(a->head);
  free_blocks(a->spare);
  free(a);
}

void tc_arena_reset(tc_arena *a) {
  run_hooks(a);
  while (a->head) {
    tc_block *b = a->head;
    a->head = b->next;
    b->used = 0;
    b->next = a->spare;
    a->spare = b;
  }
}

/* A spare block of at least bs bytes (and not wastefully larger), or NULL. */
static tc_block *take_spare(tc_arena *a, size_t bs) {
  for (tc_block **p = &a->spare; *p; p = &(*p)->next) {
    tc_block *b = *p;
    if (b->size >= bs && b->size <= 4 * bs) {
      *p = b->next;
      return b;
    }
  }
  return NULL;
}

void *tc_arena_alloc(tc_arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size == 0)
    size = 16;
  tc_block *b = a->head;
  if (!b || b->size - b->used < size) {
    /* Large requests get a block of their own so the current block keeps its free tail. */
    size_t bs = size > TC_ARENA_BLOCK / 4 ? size : TC_ARENA_BLOCK;
    tc_block *nb = take_spare(a, bs);
    if (nb) {
      bs = nb->size;
    } else {
      if (!(nb = malloc(sizeof(tc_block) + bs)))
        return NULL;
      nb->size = bs;
    }
    nb->used = 0;
    if (b && bs != TC_ARENA_BLOCK) {
      nb->next = b->next;
      b->next = nb;
    } else {
      nb->next = b;
      a->head = nb;
    }
    b = nb;
  }
  void *p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

char *tc_arena_strdup(tc_arena *a, const char *s) {
  if (!s)
    return NULL;
  return tc_arena_memdup(a, s, strlen(s) + 1);
}

void *tc_arena_memdup(tc_arena *a, const void *p, size_t n) {
  void *q = tc_arena_alloc(a, n);
  if (q && n)
    memcpy(q, p, n);
  return q;
}

int tc_arena_vec_reserve(tc_arena *a, void **items, size_t *cap, size_t n, size_t elem) {
  if (n < *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 4;
  void *q = tc_arena_alloc(a, ncap * elem);
  if (!q)
    return -1;
  if (n)
    memcpy(q, *items, n * elem);
  *items = q;
  *cap = ncap;
  return 0;
}

int tc_arena_on_free(tc_arena *a, void (*fn)(void *), void *arg) {
  tc_hook *h = tc_arena_alloc(a, sizeof(tc_hook));
  if (!h)
    return -1;
  h->fn = fn;
  h->arg = arg;
  h->next = a->hooks;
  a->hooks = h;
  return 0;
}
