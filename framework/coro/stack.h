/* SPDX-License-Identifier: MIT */
/* Coroutine stacks: mmap'd, with a PROT_NONE guard below (256 KiB of address
 * space, see corio__guard_size), pooled per loop.
 *
 * The pool keeps up to `max` stacks of the loop's default size mapped for
 * reuse.  The first `hot` of them keep their pages; stacks pooled beyond that
 * give their pages back to the OS (MADV_DONTNEED) and fault them in again on
 * reuse.  Stacks of other sizes, and returns beyond `max`, are unmapped.
 */
#ifndef CORIO_CORO_STACK_H
#define CORIO_CORO_STACK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct corio__stack {
    void *map; /* start of the mapping: the guard page(s) */
    size_t map_size;
    void *lo;                  /* lowest usable byte, just above the guard */
    size_t size;               /* usable bytes */
    struct corio__stack *next; /* in the pool */
    unsigned vg_id;            /* valgrind stack id */
    bool cold;                 /* pages given back while pooled */
} corio__stack;

typedef struct corio__stack_pool {
    corio__stack *hot, *cold;
    size_t nhot, ncold;
    size_t max, hot_max;
    size_t stack_size; /* the size pooled */
} corio__stack_pool;

size_t corio__page_size(void);
size_t corio__guard_size(void);

void corio__stack_pool_init(corio__stack_pool *p, size_t stack_size, size_t max, size_t hot_max);
/* Unmaps every pooled stack. */
void corio__stack_pool_release(corio__stack_pool *p);

/* Returns a stack of `size` bytes rounded up to pages (0: the pool's size), or
 * NULL when memory is exhausted.  Its usable part (`size` field) is that less
 * the descriptor kept in its top bytes. */
corio__stack *corio__stack_get(corio__stack_pool *p, size_t size);
void corio__stack_put(corio__stack_pool *p, corio__stack *s);

/* Rounds a requested size up to whole pages. */
size_t corio__stack_round(size_t size);

#endif
