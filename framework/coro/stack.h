/* SPDX-License-Identifier: MIT */
/* Coroutine stacks: mmap'd, with a PROT_NONE guard below (256 KiB of address
 * space, see corio__guard_size), pooled per loop.
 *
 * The pool keeps up to `max` stacks of the loop's default size mapped for
 * reuse.  Up to `hot_max` of them are hot: they keep their pages, so reusing
 * one costs nothing.  The others are cold: mapped, but with every page given
 * back to the OS (MADV_DONTNEED), descriptor included, so a cold stack costs
 * address space and no memory; its pages fault in again on reuse.  Hot
 * stacks that went unused for a whole decay period turn cold
 * (corio__stack_pool_decay), so that a burst's stacks do not stay resident
 * once it is over.  Stacks of other sizes, and returns beyond `max`, are
 * unmapped.
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
} corio__stack;

/* A cold stack: its mapping, all of whose pages were given back. */
typedef struct corio__cold_stack {
    void *map;
    unsigned vg_id;
} corio__cold_stack;

typedef struct corio__stack_pool {
    corio__stack *hot;
    corio__cold_stack *cold; /* max entries, allocated on the first cold return */
    size_t nhot, ncold;
    size_t max, hot_max;
    size_t stack_size; /* the size pooled */
    size_t hot_low;    /* the fewest hot stacks pooled since the last decay */
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

/* Turns cold the hot stacks that no corio__stack_get needed since the last
 * call (the fewest pooled over that period), keeping at least `keep` hot.
 * Returns how many stay hot.  The loop calls it periodically while stacks
 * are hot (runtime/loop.c). */
size_t corio__stack_pool_decay(corio__stack_pool *p, size_t keep);

/* Gives back the pages of s that lie wholly below the caller's frames: the
 * dead frames of a task that will wait long (what a handshake or another
 * deep call once touched).  Called by the task that runs on s; its live
 * frames are all above this call's.  Returns the bytes given back (pages
 * that were not resident count too). */
size_t corio__stack_trim(corio__stack *s);

/* Rounds a requested size up to whole pages. */
size_t corio__stack_round(size_t size);

#endif
