/* SPDX-License-Identifier: MIT */
/* Coroutine stacks and their per-loop pool (see stack.h).
 *
 * The stack descriptor lives in the top bytes of its own mapping, so getting
 * a pooled stack costs no allocation.  A cold stack gives back that page too:
 * the pool remembers its mapping (and valgrind id) in an array, and the
 * descriptor is written again when the stack is reused.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "coro/sanitizer.h"
#include "coro/stack.h"

#ifndef MAP_STACK
#define MAP_STACK 0
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

size_t corio__page_size(void) {
    static size_t page;
    if (!page) {
        long p = sysconf(_SC_PAGESIZE);
        page = p > 0 ? (size_t)p : 4096;
    }
    return page;
}

/* The guard below each stack is PROT_NONE address space, never memory.  One
 * page is not enough: a frame larger than the guard (a big local buffer)
 * steps over it, and as pooled stacks are mapped next to each other, its
 * writes then land silently in the neighbouring stack instead of faulting.
 * So the guard spans what the overflow handler attributes to a stack
 * (OVERFLOW_SLACK in overflow.c): frames up to that size fault in it. */
#define GUARD_BYTES (256 * 1024)

size_t corio__guard_size(void) {
    return corio__stack_round(GUARD_BYTES);
}

size_t corio__stack_round(size_t size) {
    size_t page = corio__page_size();
    return (size + page - 1) & ~(page - 1);
}

void corio__stack_pool_init(corio__stack_pool *p, size_t stack_size, size_t max, size_t hot_max) {
    p->hot = NULL;
    p->cold = NULL;
    p->nhot = p->ncold = p->hot_low = 0;
    p->stack_size = corio__stack_round(stack_size);
    p->max = max;
    p->hot_max = hot_max < max ? hot_max : max;
}

/* Writes the descriptor of the stack mapped at map (map_size bytes, the
 * guard first) at its very top, 16-byte aligned; the usable stack ends
 * below it. */
static corio__stack *stack_describe(void *map, size_t map_size, unsigned vg_id) {
    uintptr_t top = (uintptr_t)map + map_size;
    corio__stack *s = (corio__stack *)((top - sizeof(corio__stack)) & ~(uintptr_t)15);
    s->map = map;
    s->map_size = map_size;
    s->lo = (char *)map + corio__guard_size();
    s->size = (size_t)((uintptr_t)s - (uintptr_t)s->lo);
    s->next = NULL;
    s->vg_id = vg_id;
    return s;
}

static corio__stack *stack_map(size_t size) {
    size_t guard = corio__guard_size();
    /* An absurd size (SIZE_MAX wraps to 0 when rounded; near it, size + guard
     * wraps) would map only the guard and put the descriptor in it: fail as
     * out of memory instead. */
    if (size < corio__page_size() || size > SIZE_MAX - guard)
        return NULL;
    size_t map_size = size + guard;
    void *map = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    if (mprotect(map, guard, PROT_NONE) != 0) {
        munmap(map, map_size);
        return NULL;
    }
    corio__stack *s = stack_describe(map, map_size, 0);
#if defined(CORIO_HAVE_VALGRIND)
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s->lo + s->size);
#endif
    return s;
}

static void stack_unmap(corio__stack *s) {
#if defined(CORIO_HAVE_VALGRIND)
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#endif
#if defined(CORIO_ASAN)
    /* Frames that never returned (a task's last one) leave poison behind. */
    ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#endif
    munmap(s->map, s->map_size);
}

corio__stack *corio__stack_get(corio__stack_pool *p, size_t size) {
    size = size ? corio__stack_round(size) : p->stack_size;
    if (size == p->stack_size) {
        if (p->hot) {
            corio__stack *s = p->hot;
            p->hot = s->next;
            if (--p->nhot < p->hot_low)
                p->hot_low = p->nhot;
            s->next = NULL;
            return s;
        }
        if (p->ncold) {
            corio__cold_stack c = p->cold[--p->ncold];
            return stack_describe(c.map, p->stack_size + corio__guard_size(), c.vg_id);
        }
    }
    return stack_map(size);
}

/* Below this frame only the madvise wrapper's is live during the call:
 * glibc's and musl's push a return address and no more.  Kept: that, and
 * room for a small interposer.  Not more: a kilobyte would often keep one
 * more page of dead frames (an idle WebSocket measured 13.96 KiB with 1024
 * here, 9.96 with 256). */
#define TRIM_KEEP 256

__attribute__((noinline)) size_t corio__stack_trim(corio__stack *s) {
    volatile char here = 0; /* this frame, the deepest before the system call */
    uintptr_t lo = (uintptr_t)s->lo, sp = (uintptr_t)&here;
    if (sp < lo + TRIM_KEEP || sp > (uintptr_t)s)
        return 0; /* not on s */
    uintptr_t hi = (sp - TRIM_KEEP) & ~(uintptr_t)(corio__page_size() - 1);
    if (hi <= lo)
        return 0;
    madvise(s->lo, hi - lo, MADV_DONTNEED);
    return hi - lo;
}

/* Gives every page of s back, descriptor included, and files it as cold;
 * unmaps it when the pool cannot hold it. */
static void put_cold(corio__stack_pool *p, corio__stack *s) {
    if (!p->cold && !(p->cold = malloc(p->max * sizeof *p->cold))) {
        stack_unmap(s);
        return;
    }
    corio__cold_stack c = {s->map, s->vg_id};
    madvise(s->lo, s->map_size - corio__guard_size(), MADV_DONTNEED); /* s is gone now */
    p->cold[p->ncold++] = c;
}

void corio__stack_put(corio__stack_pool *p, corio__stack *s) {
#if defined(CORIO_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#endif
    size_t usable_map = s->map_size - corio__guard_size();
    if (usable_map != p->stack_size || p->nhot + p->ncold >= p->max) {
        stack_unmap(s);
        return;
    }
    if (p->nhot < p->hot_max) {
        s->next = p->hot;
        p->hot = s;
        p->nhot++;
        return;
    }
    put_cold(p, s);
}

size_t corio__stack_pool_decay(corio__stack_pool *p, size_t keep) {
    size_t idle = p->hot_low;
    if (p->nhot < keep + idle)
        idle = p->nhot > keep ? p->nhot - keep : 0;
    /* The stacks to turn cold are the least recently used: the hot list is
     * a stack (LIFO), so they are at its end. */
    if (idle) {
        corio__stack **tail = &p->hot;
        for (size_t i = p->nhot - idle; i; i--)
            tail = &(*tail)->next;
        corio__stack *s = *tail;
        *tail = NULL;
        p->nhot -= idle;
        while (s) {
            corio__stack *next = s->next;
            put_cold(p, s);
            s = next;
        }
    }
    p->hot_low = p->nhot;
    return p->nhot;
}

static void unmap_hot(corio__stack_pool *p) {
    while (p->hot) {
        corio__stack *s = p->hot;
        p->hot = s->next;
        stack_unmap(s);
    }
}

void corio__stack_pool_release(corio__stack_pool *p) {
    unmap_hot(p);
    size_t map_size = p->stack_size + corio__guard_size();
    while (p->ncold) {
        corio__cold_stack c = p->cold[--p->ncold];
        stack_unmap(stack_describe(c.map, map_size, c.vg_id));
    }
    free(p->cold);
    p->cold = NULL;
    p->nhot = p->hot_low = 0;
}
