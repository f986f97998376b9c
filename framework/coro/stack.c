/* SPDX-License-Identifier: MIT */
/* Coroutine stacks and their per-loop pool (see stack.h).
 *
 * The stack descriptor lives in the top bytes of its own mapping, so getting
 * a pooled stack costs no allocation; that top page is never given back while
 * pooled.
 */
#include <stdint.h>
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
    p->hot = p->cold = NULL;
    p->nhot = p->ncold = 0;
    p->stack_size = corio__stack_round(stack_size);
    p->max = max;
    p->hot_max = hot_max < max ? hot_max : max;
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
    /* Descriptor at the very top, 16-byte aligned; the usable stack ends
     * below it. */
    uintptr_t top = (uintptr_t)map + map_size;
    corio__stack *s = (corio__stack *)((top - sizeof(corio__stack)) & ~(uintptr_t)15);
    s->map = map;
    s->map_size = map_size;
    s->lo = (char *)map + guard;
    s->size = (size_t)((uintptr_t)s - (uintptr_t)s->lo);
    s->next = NULL;
    s->cold = false;
#if defined(CORIO_HAVE_VALGRIND)
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s->lo + s->size);
#else
    s->vg_id = 0;
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
        corio__stack *s = p->hot ? p->hot : p->cold;
        if (s) {
            if (s == p->hot) {
                p->hot = s->next;
                p->nhot--;
            } else {
                p->cold = s->next;
                p->ncold--;
            }
            s->next = NULL;
            s->cold = false;
            return s;
        }
    }
    return stack_map(size);
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
    /* Give back every page but the top one, which holds the descriptor. */
    size_t page = corio__page_size();
    size_t release = usable_map - page;
    if (release)
        madvise(s->lo, release, MADV_DONTNEED);
    s->cold = true;
    s->next = p->cold;
    p->cold = s;
    p->ncold++;
}

static void unmap_all(corio__stack **list) {
    while (*list) {
        corio__stack *s = *list;
        *list = s->next;
        stack_unmap(s);
    }
}

void corio__stack_pool_release(corio__stack_pool *p) {
    unmap_all(&p->hot);
    unmap_all(&p->cold);
    p->nhot = p->ncold = 0;
}
