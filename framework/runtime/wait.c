/* SPDX-License-Identifier: MIT */
/* Waiting on many futures at once: gather, wait_any, wait_all.
 *
 * One waiter per pending future, all pointing at a shared state; a future's
 * completion updates the counts and wakes the task only when the condition
 * it waits for holds, so waiting on n futures costs O(n) in total, not
 * O(n) per completion. */
#include <stdlib.h>

#include "runtime/internal.h"

enum wait_mode { WAIT_ANY, WAIT_ALL, WAIT_FIRST_FAILURE };

typedef struct wait_state {
    corio_task *task;
    size_t pending;
    enum wait_mode mode;
    corio__waiter *ws; /* waiter i is for fs[i] */
    size_t failed;     /* the index of the first to fail while waiting */
} wait_state;

static void on_fire(corio__waiter *w, corio_future *f) {
    wait_state *st = w->data;
    st->pending--;
    /* Gather reports the failure that happened first, not the lowest index
     * among those that failed before it got to run. */
    if (f->result < 0 && st->failed == SIZE_MAX)
        st->failed = (size_t)(w - st->ws);
    if (st->mode == WAIT_ANY || st->pending == 0 ||
        (st->mode == WAIT_FIRST_FAILURE && f->result < 0))
        corio__wake(st->task, 0);
}

/* Whether the condition already holds; *index gets the first done one. */
static bool satisfied(corio_future *const *fs, size_t n, enum wait_mode mode, size_t *index,
                      size_t *pending) {
    size_t first = SIZE_MAX, left = 0;
    bool failed = false;
    for (size_t i = 0; i < n; i++) {
        if (!fs[i]->done) {
            left++;
            continue;
        }
        if (first == SIZE_MAX)
            first = i;
        if (fs[i]->result < 0)
            failed = true;
    }
    *index = first;
    *pending = left;
    switch (mode) {
    case WAIT_ANY:
        return first != SIZE_MAX;
    case WAIT_FIRST_FAILURE:
        return left == 0 || failed;
    case WAIT_ALL:
    default:
        return left == 0;
    }
}

static int wait_many(const char *what, corio_future *const *fs, size_t n, enum wait_mode mode,
                     size_t *index) {
    corio_task *t = corio__task_require(what);
    if (!t)
        return CORIO_ENOTASK;
    if (n && !fs)
        return CORIO_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i] || fs[i] == &t->fut)
            return CORIO_EINVAL;
    size_t first, pending;
    if (satisfied(fs, n, mode, &first, &pending)) {
        if (index)
            *index = first; /* nothing suspends: no cancellation point */
        return 0;
    }
    int rc = corio__await_status(t);
    if (rc) {
        /* As if cut short while waiting (see corio_future_await). */
        for (size_t i = 0; i < n; i++)
            corio_future_retain(fs[i]); /* a hook may drop others' references */
        for (size_t i = 0; i < n; i++)
            corio__future_abandoned(fs[i]);
        for (size_t i = 0; i < n; i++)
            corio_future_release(fs[i]);
        return corio__await_fail(t, rc);
    }
    corio__waiter local[8];
    corio__waiter *ws = n <= 8 ? local : malloc(n * sizeof *ws);
    if (!ws)
        return CORIO_ENOMEM;
    wait_state st = {.task = t, .pending = pending, .mode = mode, .ws = ws, .failed = SIZE_MAX};
    for (size_t i = 0; i < n; i++) {
        corio__list_init(&ws[i].link);
        ws[i].task = t;
        ws[i].fire = on_fire;
        ws[i].data = &st;
        ws[i].item = NULL;
        ws[i].ref = NULL; /* the future, once referenced */
        if (!fs[i]->done) {
            ws[i].ref = corio_future_retain(fs[i]);
            corio__list_push_back(&fs[i]->waiters, &ws[i].link);
        }
    }
    t->awaiting = ws; /* for corio__task_abandon */
    t->awaiting_n = n;
    t->awaiting_heap = ws != local;
    rc = corio__park(t, CORIO__NO_DEADLINE, what);
    t->awaiting = NULL;
    t->awaiting_n = 0;
    t->awaiting_heap = false;
    for (size_t i = 0; i < n; i++)
        corio__list_remove(&ws[i].link);
    /* Cut short by a cancel or a deadline: what we waited on is cancelled
     * (asyncio.gather's children are), unless someone else waits for it. */
    for (size_t i = 0; i < n; i++) {
        if ((rc == CORIO_ECANCELED || rc == CORIO_ETIMEDOUT) && ws[i].ref)
            corio__future_abandoned(ws[i].ref);
        corio_future_release(ws[i].ref);
    }
    if (ws != local)
        free(ws);
    if (rc == 0 && index) {
        satisfied(fs, n, mode, &first, &pending);
        *index = mode == WAIT_FIRST_FAILURE && st.failed != SIZE_MAX ? st.failed : first;
    }
    return rc;
}

int corio_gather(corio_future *const *fs, size_t n) {
    size_t index;
    int rc = wait_many("corio_gather", fs, n, WAIT_FIRST_FAILURE, &index);
    if (rc)
        return rc;
    if (index < n && fs[index]->done && fs[index]->result < 0)
        return fs[index]->result; /* the failure that ended the wait */
    for (size_t i = 0; i < n; i++)
        if (fs[i]->done && fs[i]->result < 0)
            return fs[i]->result;
    return 0;
}

int corio_wait_any(corio_future *const *fs, size_t n, size_t *index) {
    if (n == 0)
        return CORIO_EINVAL;
    return wait_many("corio_wait_any", fs, n, WAIT_ANY, index);
}

int corio_wait_all(corio_future *const *fs, size_t n) {
    return wait_many("corio_wait_all", fs, n, WAIT_ALL, NULL);
}
