/* SPDX-License-Identifier: MIT */
/* Timers: a binary min-heap of deadlines per loop, driven by a single
 * uv_timer_t armed for the earliest one.  Entries are embedded in their
 * owners (tasks, task groups), so arming and disarming never allocate except
 * when the heap array grows. */
#include <stdlib.h>

#include "runtime/internal.h"

void corio__timer_init(corio__timer *t, corio__timer_cb cb) {
    t->when = 0;
    t->index = SIZE_MAX;
    t->cb = cb;
}

static void heap_set(corio__timer_heap *h, size_t i, corio__timer *t) {
    h->items[i] = t;
    t->index = i;
}

static void sift_up(corio__timer_heap *h, size_t i) {
    corio__timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->when <= t->when)
            break;
        heap_set(h, i, h->items[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void sift_down(corio__timer_heap *h, size_t i) {
    corio__timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && h->items[child + 1]->when < h->items[child]->when)
            child++;
        if (t->when <= h->items[child]->when)
            break;
        heap_set(h, i, h->items[child]);
        i = child;
    }
    heap_set(h, i, t);
}

static void heap_remove(corio__timer_heap *h, corio__timer *t) {
    size_t i = t->index;
    corio__timer *last = h->items[--h->len];
    t->index = SIZE_MAX;
    if (last == t)
        return;
    heap_set(h, i, last);
    if (i > 0 && h->items[(i - 1) / 2]->when > last->when)
        sift_up(h, i);
    else
        sift_down(h, i);
}

static void on_uv_timer(uv_timer_t *handle) {
    corio__timers_run(handle->data);
}

/* Keeps the uv timer armed for the heap's earliest entry.  Removing entries
 * does not disarm it: an early wake-up finds nothing due and re-arms. */
static void rearm(corio_loop *L) {
    if (L->heap.len == 0) {
        if (L->timer_armed_at != CORIO__NO_DEADLINE) {
            uv_timer_stop(&L->timer);
            L->timer_armed_at = CORIO__NO_DEADLINE;
        }
        return;
    }
    uint64_t when = L->heap.items[0]->when;
    if (when == L->timer_armed_at)
        return;
    uint64_t now = corio__now(L);
    uv_timer_start(&L->timer, on_uv_timer, when > now ? when - now : 0, 0);
    L->timer_armed_at = when;
}

int corio__timer_start(corio_loop *L, corio__timer *t, uint64_t when) {
    corio__timer_heap *h = &L->heap;
    if (corio__timer_armed(t))
        heap_remove(h, t);
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        corio__timer **items = realloc(h->items, cap * sizeof(corio__timer *));
        if (!items)
            return CORIO_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    t->when = when;
    h->items[h->len] = t;
    t->index = h->len++;
    sift_up(h, t->index);
    if (when < L->timer_armed_at)
        rearm(L);
    return 0;
}

void corio__timer_stop(corio_loop *L, corio__timer *t) {
    if (corio__timer_armed(t))
        heap_remove(&L->heap, t);
}

void corio__timers_run(corio_loop *L) {
    L->timer_armed_at = CORIO__NO_DEADLINE;
    uint64_t now = corio__now(L);
    while (L->heap.len > 0 && L->heap.items[0]->when <= now) {
        corio__timer *t = L->heap.items[0];
        heap_remove(&L->heap, t);
        t->cb(t);
    }
    rearm(L);
}
