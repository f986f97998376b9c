/* SPDX-License-Identifier: MIT */
/* The waiting pattern every sync primitive shares: check the task's status,
 * queue a waiter node, park, and leave the queue again whatever woke us. */
#ifndef CORIO_SYNC_WAIT_H
#define CORIO_SYNC_WAIT_H

#include "corio/sync.h"
#include "runtime/internal.h"

/* Parks the current task with `w` queued on `queue`.  Returns the wake
 * result: 0 when the primitive woke it (and handed it what it waited for),
 * or the primitive's error, CORIO_ECANCELED, CORIO_ETIMEDOUT. */
static inline int corio__wait_in(corio_task *t, corio__link *queue, corio__waiter *w,
                                 const char *what) {
    w->task = t;
    w->fire = NULL;
    w->data = NULL;
    w->ref = NULL;
    corio__list_init(&w->link);
    corio__list_push_back(queue, &w->link);
    t->awaiting = w; /* so an abandoned task leaves the queue (task.c) */
    t->awaiting_n = 1;
    int rc = corio__park(t, CORIO__NO_DEADLINE, what);
    t->awaiting = NULL;
    t->awaiting_n = 0;
    corio__list_remove(&w->link); /* still queued if woken by cancel/deadline */
    return rc;
}

/* Wakes the first waiter of `queue` that can still be woken, with `result`.
 * Waiters already woken otherwise (cancel, deadline) are dropped from the
 * queue on the way.  Returns the woken waiter, or NULL. */
static inline corio__waiter *corio__wake_first(corio__link *queue, int result) {
    corio__link *n;
    while ((n = corio__list_pop_front(queue))) {
        corio__waiter *w = corio__container_of(n, corio__waiter, link);
        if (corio__wake(w->task, result))
            return w;
    }
    return NULL;
}

/* Wakes every waiter of `queue` with `result`. */
static inline void corio__wake_all(corio__link *queue, int result) {
    while (corio__wake_first(queue, result))
        ;
}

#endif
