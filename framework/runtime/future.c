/* SPDX-License-Identifier: MIT */
/* Futures: completion, await and done callbacks (see future.h; thread-safe
 * completion is in threadsafe.c).  Reference counts are atomic because a
 * foreign thread may hold and drop a reference around a thread-safe
 * completion; everything else happens on the loop thread. */
#include <stdlib.h>

#include "runtime/internal.h"

void corio__future_init(corio_future *f, corio_loop *L, bool is_task) {
    f->loop = L;
    corio__list_init(&f->waiters);
    f->callbacks = NULL;
    corio__list_init(&f->soon_link);
    f->value = NULL;
    f->value_free = NULL;
    f->cancel_hook = NULL;
    f->cancel_data = NULL;
    f->ts_next = NULL;
    f->ts_value = NULL;
    f->ts_result = 0;
    f->ts_loop_id = L->ts_id; /* threadsafe.c */
    f->result = CORIO_EAGAIN;
    atomic_init(&f->refs, 1);
    atomic_init(&f->ts_claimed, false);
    f->done = false;
    f->is_task = is_task;
}

int corio_future_new(corio_future **out) {
    *out = NULL;
    corio_loop *L = corio__tls_loop;
    if (!L) {
        corio__report("corio_future_new called outside corio_run()");
        return CORIO_ENOTASK;
    }
    corio_future *f = malloc(sizeof *f);
    if (!f)
        return CORIO_ENOMEM;
    corio__future_init(f, L, false);
    *out = f;
    return 0;
}

corio_future *corio_future_retain(corio_future *f) {
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

static void free_callbacks(corio_future *f) {
    while (f->callbacks) {
        corio__done_cb_node *n = f->callbacks;
        f->callbacks = n->next;
        free(n);
    }
}

void corio_future_release(corio_future *f) {
    if (!f)
        return;
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    /* Last reference.  Nobody awaits (an awaiting task holds a reference)
     * and no callback is due (a due callback holds one too). */
    free_callbacks(f);
    if (f->value_free && f->done && f->value)
        f->value_free(f->value);
    free(f); /* a task's future is its first member: this frees the task */
}

static void schedule_callbacks(corio_future *f) {
    if (!f->callbacks || corio__list_linked(&f->soon_link))
        return;
    corio_future_retain(f);
    corio__list_push_back(&f->loop->soon, &f->soon_link);
    corio__loop_kick(f->loop);
}

int corio__future_finish(corio_future *f, int result, void *value) {
    if (f->done)
        return CORIO_EALREADY;
    f->done = true;
    f->result = result;
    f->value = value;
    f->cancel_hook = NULL;
    corio__link *n;
    while ((n = corio__list_pop_front(&f->waiters))) {
        corio__waiter *w = corio__container_of(n, corio__waiter, link);
        if (w->fire)
            w->fire(w, f);
        else
            corio__wake(w->task, 0);
    }
    schedule_callbacks(f);
    return 0;
}

int corio_future_complete(corio_future *f, int result, void *value) {
    if (!f)
        return CORIO_EINVAL;
    if (f->is_task) {
        corio__report("corio_future_complete called on a task (a task completes by returning)");
        return CORIO_EINVAL;
    }
    return corio__future_finish(f, result, value);
}

int corio_future_set_value_free(corio_future *f, void (*fn)(void *value)) {
    if (!f || f->is_task)
        return CORIO_EINVAL;
    f->value_free = fn;
    return 0;
}

int corio_future_resolve(corio_future *f, void *value) {
    return corio_future_complete(f, 0, value);
}

int corio_future_fail(corio_future *f, int err) {
    if (err >= 0)
        return CORIO_EINVAL;
    return corio_future_complete(f, err, NULL);
}

int corio_future_cancel(corio_future *f) {
    if (!f)
        return CORIO_EINVAL;
    if (f->is_task)
        return corio_cancel((corio_task *)f);
    if (f->done)
        return CORIO_EALREADY;
    void (*hook)(corio_future *, void *) = f->cancel_hook;
    f->cancel_hook = NULL;
    if (hook) {
        corio_future_retain(f);
        hook(f, f->cancel_data);
        int rc = corio__future_finish(f, CORIO_ECANCELED, NULL);
        corio_future_release(f);
        (void)rc; /* the hook may have completed it already */
        return 0;
    }
    return corio__future_finish(f, CORIO_ECANCELED, NULL);
}

void corio_future_on_cancel(corio_future *f, void (*hook)(corio_future *f, void *data),
                            void *data) {
    f->cancel_hook = hook;
    f->cancel_data = data;
}

bool corio_future_done(const corio_future *f) {
    return f && f->done;
}

int corio_future_result(const corio_future *f) {
    return f && f->done ? f->result : CORIO_EAGAIN;
}

void *corio_future_value(const corio_future *f) {
    return f && f->done ? f->value : NULL;
}

int corio_future_add_done_cb(corio_future *f, corio_done_cb cb, void *data) {
    if (!f || !cb)
        return CORIO_EINVAL;
    corio__done_cb_node *n = malloc(sizeof *n);
    if (!n)
        return CORIO_ENOMEM;
    n->cb = cb;
    n->data = data;
    /* Append, so callbacks run in registration order. */
    n->next = NULL;
    corio__done_cb_node **tail = &f->callbacks;
    while (*tail)
        tail = &(*tail)->next;
    *tail = n;
    if (f->done)
        schedule_callbacks(f);
    return 0;
}

void corio__run_soon(corio_loop *L) {
    corio__link *n;
    while ((n = corio__list_pop_front(&L->soon))) {
        corio_future *f = corio__container_of(n, corio_future, soon_link);
        while (f->callbacks) {
            corio__done_cb_node *cb = f->callbacks;
            f->callbacks = cb->next;
            cb->cb(f, cb->data);
            free(cb);
        }
        corio_future_release(f);
    }
}

int corio_future_await(corio_future *f) {
    corio_task *t = corio__task_require("corio_await");
    if (!t)
        return CORIO_ENOTASK;
    if (!f)
        return CORIO_EINVAL;
    if (f == &t->fut) {
        corio__report("task '%s' awaited itself", t->name);
        return CORIO_EINVAL;
    }
    if (f->done)
        return f->result; /* nothing suspends: no cancellation point (asyncio) */
    int rc = corio__await_status(t);
    if (rc) {
        /* Cancelled or past a deadline before it could wait: the same as an
         * await cut short (asyncio hands a pending cancel on to the future
         * the task awaits), then round the loop. */
        corio__future_abandoned(f);
        return corio__await_fail(t, rc);
    }
    corio__waiter w = {
        .task = t, .fire = NULL, .item = NULL, .data = NULL, .ref = corio_future_retain(f)};
    corio__list_init(&w.link);
    corio__list_push_back(&f->waiters, &w.link);
    t->awaiting = &w; /* for corio__task_abandon */
    t->awaiting_n = 1;
    rc = corio__park(t, CORIO__NO_DEADLINE, f->is_task ? "task" : "future");
    t->awaiting = NULL;
    t->awaiting_n = 0;
    corio__list_remove(&w.link);
    if (rc == 0)
        rc = f->result;
    else if (rc == CORIO_ECANCELED || rc == CORIO_ETIMEDOUT)
        corio__future_abandoned(f);
    /* w.ref: corio__future_abandoned cannot have dropped the last reference
     * (clang-analyzer does not follow the count): NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
    corio_future_release(f);
    return rc;
}

/* An await of f was cut short (cancel or deadline): the operation behind f
 * is cancelled too, as asyncio's Task.cancel() cancels the future its task
 * waits on, when nobody else waits for it and there is something to stop:
 * a task, or a future with a cancel hook.  A plain future is left pending
 * (whoever completes it still can). */
void corio__future_abandoned(corio_future *f) {
    if (f->done || !corio__list_empty(&f->waiters))
        return;
    if (f->is_task || f->cancel_hook)
        corio_future_cancel(f);
}
