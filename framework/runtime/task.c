/* SPDX-License-Identifier: MIT */
/* Tasks: spawn, the switch in and out of a task, parking and waking,
 * cancellation, sleep and yield (see task.h for the contract and
 * runtime/internal.h for the waking rules). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fmt.h"
#include "runtime/internal.h"

static atomic_uint_fast64_t next_task_id = 1;

/* ---- scope visibility ------------------------------------------------------------- */

int corio__await_status(corio_task *t) {
    uint64_t now = corio__now(t->fut.loop);
    int status = 0;
    for (corio_scope *s = t->scopes; s; s = s->outer) {
        if (s->cancelled)
            return CORIO_ECANCELED;
        if (s->deadline <= now)
            status = CORIO_ETIMEDOUT; /* keep looking: a cancel further out wins */
        if (s->shield)
            break;
    }
    return status;
}

corio_cancel_reason corio__cancel_in_effect(corio_task *t) {
    uint64_t now = corio__now(t->fut.loop);
    bool fresh = false;
    corio_cancel_reason why = CORIO_CANCEL_NONE;
    for (corio_scope *s = t->scopes; s; s = s->outer) {
        if (s->cancelled)
            return s == &t->root ? (corio_cancel_reason)t->cancel_reason
                                 : (corio_cancel_reason)s->cancelled;
        /* A poller that does not await never lets the loop clock move: read
         * the clock once when a deadline is pending (corio_cancelled()'s
         * polling idiom must see it pass). */
        if (s->deadline != CORIO__NO_DEADLINE && s->deadline > now && !fresh) {
            now = corio__now_fresh(t->fut.loop);
            fresh = true;
        }
        if (s->deadline <= now)
            why = CORIO_CANCEL_TIMEOUT; /* keep looking: a cancel further out wins */
        if (s->shield)
            break;
    }
    return why;
}

int corio__await_fail(corio_task *t, int status) {
    corio_loop *L = t->fut.loop;
    t->state = CORIO__READY;
    t->waiting_on = "a failed await";
    corio__list_push_back(&L->yielded, &t->ready_link);
    corio__loop_kick(L);
    corio__coro_switch(&t->coro, &L->main_coro, false);
    t->waiting_on = NULL;
    return status;
}

static uint64_t visible_deadline(corio_task *t) {
    uint64_t d = CORIO__NO_DEADLINE;
    for (corio_scope *s = t->scopes; s; s = s->outer) {
        if (s->deadline < d)
            d = s->deadline;
        if (s->shield)
            break;
    }
    return d;
}

/* ---- waking and parking ----------------------------------------------------------- */

bool corio__wake(corio_task *t, int result) {
    if (t->state != CORIO__PARKED)
        return false;
    t->state = CORIO__READY;
    t->wake_result = result;
    corio_loop *L = t->fut.loop;
    corio__list_push_back(&L->ready, &t->ready_link);
    corio__loop_kick(L);
    return true;
}

/* A task's timer is armed lazily (see corio__park): it may fire for a task
 * that is no longer parked, or before the deadline of the park it is in. */
static void on_task_timer(corio__timer *timer) {
    corio_task *t = corio__container_of(timer, corio_task, timer);
    if (t->state != CORIO__PARKED)
        return; /* left armed by an earlier park: nothing waits on it */
    int status = corio__await_status(t);
    corio_loop *L = t->fut.loop;
    if (status == 0 && t->wake_at > corio__now(L)) {
        /* Early: armed for an earlier park's deadline.  Again for this
         * one's (it is later than now, or the status would say so). */
        uint64_t when = visible_deadline(t);
        if (t->wake_at < when)
            when = t->wake_at;
        if (when != CORIO__NO_DEADLINE && corio__timer_start(L, timer, when) != 0)
            corio__wake(t, CORIO_ENOMEM);
        return;
    }
    corio__wake(t, status);
}

int corio__park(corio_task *t, uint64_t wake_at, const char *what) {
    corio_loop *L = t->fut.loop;
    /* A cancel or deadline that arrived while the task was ready (not
     * parked) woke nobody: honour it here, or a loop that parks again would
     * sleep through it. */
    int status = corio__await_check(t);
    if (status)
        return status;
    uint64_t when = visible_deadline(t);
    if (wake_at < when)
        when = wake_at;
    t->wake_at = wake_at;
    /* The timer is left armed when the task wakes, and armed again here
     * only if it would fire too late: a connection waiting for request
     * after request with a deadline seconds ahead then moves no heap entry
     * per request (the timer fires once, early, and is armed again for the
     * wait of the moment; see on_task_timer). */
    if (when != CORIO__NO_DEADLINE &&
        (!corio__timer_armed(&t->timer) || t->timer.when > when)) {
        int rc = corio__timer_start(L, &t->timer, when);
        if (rc < 0)
            return rc;
    }
    t->state = CORIO__PARKED;
    t->waiting_on = what;
    t->parked_since = corio__now(L);
    corio__coro_switch(&t->coro, &L->main_coro, false);
    /* Running again, switched in by corio__task_resume(); the timer may
     * still be armed. */
    t->waiting_on = NULL;
    int rc = t->wake_result;
    if (rc == CORIO_ETIMEDOUT && corio__await_status(t) == CORIO_ECANCELED)
        rc = CORIO_ECANCELED; /* a cancel wins over a timeout */
    return rc;
}

static void clear_slot(void *data) {
    *(corio_task **)data = NULL;
}

int corio__park_in_slot(corio_task *t, corio_task **slot, uint64_t wake_at, const char *what) {
    *slot = t;
    t->on_abandon = clear_slot;
    t->on_abandon_data = slot;
    int rc = corio__park(t, wake_at, what);
    t->on_abandon = NULL;
    *slot = NULL;
    return rc;
}

/* corio__wake_now: after this many tasks run at once, the ready queue runs
 * (from the same callback): a poll may last tens of thousands of events. */
#define EAGER_DRAIN 64

bool corio__wake_now(corio_task *t, int result, const void *source) {
    corio_loop *L = t->fut.loop;
    if (L->current || t->state != CORIO__PARKED ||
        (L->eager_source == source && L->eager_poll == L->polls))
        return corio__wake(t, result); /* inside a task, or again in a row: queued */
    L->eager_source = source;
    L->eager_poll = L->polls;
    t->wake_result = result;
    corio__task_resume(L, t);
    if (++L->eager_runs % EAGER_DRAIN == 0)
        corio__loop_run_ready(L); /* what was queued meanwhile */
    return true;
}

void corio__task_resume(corio_loop *L, corio_task *t) {
    t->state = CORIO__RUNNING;
    L->current = t;
    corio__overflow_current = &t->ovf;
    corio__log_request_id = t->request_id;
    corio__coro_switch(&L->main_coro, &t->coro, false);
    corio__log_request_id = NULL;
    corio__overflow_current = NULL;
    L->current = NULL;
    if (t->state != CORIO__DONE)
        return;
    /* The task's function returned: its stack is free to reuse, and its
     * timer (armed lazily, see corio__park) is done. */
    corio__timer_stop(L, &t->timer);
    corio__loop_stack_put(L, t->stack);
    t->stack = NULL;
    corio__list_remove(&t->all_link);
    corio_task_release(t); /* the loop's reference */
}

corio_task *corio__task_require(const char *what) {
    corio_task *t = corio__current();
    if (!t)
        corio__report("%s called outside a corio task (it is an await: call it from a task)", what);
    return t;
}

/* ---- the task's own stack ------------------------------------------------------------ */

static void task_entry(void *arg) {
    corio_task *t = arg;
    corio__coro_started();
    int rc;
    corio_loop *L = t->fut.loop;
    if (t->root.cancelled && !t->run_if_cancelled)
        rc = CORIO_ECANCELED; /* cancelled before it first ran: fn never runs */
    else
        rc = t->fn(t->arg);
    if (t->scopes != &t->root) { /* its scopes live in frames that are gone */
        corio__report("task '%s' (id %llu) ended with a scope still entered (longjmp out of "
                      "CORIO_WITH is not supported); aborting",
                      t->name, (unsigned long long)t->id);
        abort();
    }
    t->state = CORIO__DONE;
    L->live_tasks--;
    corio__future_finish(&t->fut, rc, NULL);
    if (t->on_done)
        t->on_done(t);
    if (t == L->main_task)
        uv_stop(&L->uv);
    else if (L->stopping && L->live_tasks == 0)
        uv_stop(&L->uv);
    corio__coro_switch(&t->coro, &L->main_coro, true);
    abort(); /* never resumed */
}

/* ---- public API -------------------------------------------------------------------- */

/* Copies the name, or makes "task-<id>"; by hand, since snprintf was a fifth
 * of the cost of a spawn. */
static void set_name(corio_task *t, const char *name) {
    if (name) {
        size_t n = strnlen(name, sizeof t->name - 1);
        memcpy(t->name, name, n);
        t->name[n] = '\0';
        return;
    }
    memcpy(t->name, "task-", 5);
    t->name[5 + corio__fmt_u64(t->name + 5, t->id)] = '\0';
}

int corio_spawn_ex(corio_task **out, const corio_spawn_opts *opts, corio_task_fn fn, void *arg) {
    if (out)
        *out = NULL;
    corio_loop *L = corio__tls_loop;
    if (!L) {
        corio__report("corio_spawn called outside corio_run()");
        return CORIO_ENOTASK;
    }
    if (!fn)
        return CORIO_EINVAL;
    if (L->closed)
        return CORIO_ECLOSED; /* corio_run is tearing down: it would never run */
    /* A request id is inherited, as asyncio's tasks copy the context they
     * are created in: copied, since the request may end first. */
    const char *rid = L->current && !(opts && opts->no_context) ? L->current->request_id : NULL;
    size_t rlen = rid ? strlen(rid) + 1 : 0;
    corio_task *t = malloc(sizeof *t + rlen);
    if (!t)
        return CORIO_ENOMEM;
    t->request_id = rid ? memcpy((char *)(t + 1), rid, rlen) : NULL;
    size_t want = opts && opts->stack_size ? opts->stack_size : 0;
    t->stack = corio__stack_get(&L->pool, want);
    if (!t->stack) {
        free(t);
        return CORIO_ENOMEM;
    }
    corio__future_init(&t->fut, L, true);
    atomic_store_explicit(&t->fut.refs, out ? 2 : 1, memory_order_relaxed);
    t->fn = fn;
    t->arg = arg;
    corio__list_init(&t->member_link);
    t->on_done = NULL;
    t->on_done_data = NULL;
    memset(&t->root, 0, sizeof t->root);
    t->root.deadline = CORIO__NO_DEADLINE;
    t->root.task = t;
    t->root.entered = 1;
    t->scopes = &t->root;
    corio__timer_init(&t->timer, on_task_timer);
    t->wake_at = CORIO__NO_DEADLINE;
    t->parked_since = 0;
    t->waiting_on = NULL;
    t->awaiting = NULL;
    t->awaiting_n = 0;
    t->awaiting_heap = false;
    t->on_abandon = NULL;
    t->on_abandon_data = NULL;
    t->id = atomic_fetch_add_explicit(&next_task_id, 1, memory_order_relaxed);
    t->wake_result = 0;
    t->cancel_reason = CORIO_CANCEL_NONE;
    t->run_if_cancelled = opts && opts->run_if_cancelled;
    set_name(t, opts ? opts->name : NULL);
    t->ovf.name = t->name;
    t->ovf.id = t->id;
    t->ovf.stack = t->stack;
    corio__coro_make(&t->coro, t->stack, task_entry, t);
    corio__list_push_back(&L->tasks, &t->all_link);
    L->live_tasks++;
    if (L->stopping) {
        t->root.cancelled = 1;
        t->cancel_reason = CORIO_CANCEL_SHUTDOWN;
    }
    t->state = CORIO__READY;
    corio__list_push_back(&L->ready, &t->ready_link);
    corio__loop_kick(L);
    if (out)
        *out = t;
    return 0;
}

int corio_spawn(corio_task **out, const char *name, corio_task_fn fn, void *arg) {
    corio_spawn_opts opts = {.name = name, .stack_size = 0};
    return corio_spawn_ex(out, &opts, fn, arg);
}

corio_future *corio_task_future(corio_task *t) {
    return t ? &t->fut : NULL;
}

corio_task *corio_task_retain(corio_task *t) {
    if (t)
        corio_future_retain(&t->fut);
    return t;
}

void corio_task_release(corio_task *t) {
    if (t)
        corio_future_release(&t->fut);
}

size_t corio__trim_stack(void) {
    corio_loop *L = corio__tls_loop;
    corio_task *t = L ? L->current : NULL;
    return t && t->stack ? corio__stack_trim(t->stack) : 0;
}

corio_task *corio_current(void) {
    return corio__current();
}

const char *corio_task_name(const corio_task *t) {
    return t ? t->name : "?";
}

uint64_t corio_task_id(const corio_task *t) {
    return t ? t->id : 0;
}

bool corio_task_done(const corio_task *t) {
    return t && t->state == CORIO__DONE;
}

int corio_cancel_with(corio_task *t, corio_cancel_reason reason) {
    if (!t)
        return CORIO_EINVAL;
    if (t->state == CORIO__DONE)
        return CORIO_EALREADY;
    if (!t->root.cancelled) {
        t->cancel_reason = (uint8_t)(reason ? reason : CORIO_CANCEL_USER);
        t->root.cancelled = t->cancel_reason;
    }
    if (t->state == CORIO__PARKED && corio__scope_visible(t, &t->root))
        corio__wake(t, CORIO_ECANCELED);
    return 0;
}

int corio_cancel(corio_task *t) {
    return corio_cancel_with(t, CORIO_CANCEL_USER);
}

corio_cancel_reason corio_task_cancel_reason(const corio_task *t) {
    return t ? (corio_cancel_reason)t->cancel_reason : CORIO_CANCEL_NONE;
}

bool corio_cancelled(void) {
    corio_task *t = corio__current();
    return t && corio__cancel_in_effect(t) != CORIO_CANCEL_NONE;
}

corio_cancel_reason corio_cancelled_reason(void) {
    corio_task *t = corio__current();
    return t ? corio__cancel_in_effect(t) : CORIO_CANCEL_NONE;
}

const char *corio_cancel_reason_name(corio_cancel_reason reason) {
    switch (reason) {
    case CORIO_CANCEL_NONE:
        return "none";
    case CORIO_CANCEL_USER:
        return "user";
    case CORIO_CANCEL_TIMEOUT:
        return "timeout";
    case CORIO_CANCEL_SHUTDOWN:
        return "shutdown";
    case CORIO_CANCEL_PEER_GONE:
        return "peer gone";
    case CORIO_CANCEL_SIBLING:
        return "sibling failed";
    }
    return "unknown";
}

/* corio_yield once its prologue (corio__await_begin) has passed. */
static int yield_now(corio_task *t) {
    corio_loop *L = t->fut.loop;
    t->state = CORIO__READY;
    t->waiting_on = "yield";
    corio__list_push_back(&L->yielded, &t->ready_link);
    corio__loop_kick(L);
    corio__coro_switch(&t->coro, &L->main_coro, false);
    t->waiting_on = NULL;
    return corio__await_status(t);
}

int corio_yield(void) {
    int rc;
    corio_task *t = corio__await_begin("corio_yield", &rc);
    return t ? yield_now(t) : rc;
}

int corio_sleep(uint64_t ms) {
    int rc;
    corio_task *t = corio__await_begin("corio_sleep", &rc);
    if (!t)
        return rc;
    if (ms == 0)
        return yield_now(t);
    return corio__park(t, corio__deadline_after(t->fut.loop, ms), "sleep");
}

void corio__task_detach(corio_loop *L, corio_task *t) {
    corio__timer_stop(L, &t->timer);
    if (corio__list_linked(&t->ready_link))
        corio__list_remove(&t->ready_link);
    if (t->on_done) {
        corio__list_remove(&t->member_link);
        t->on_done = NULL;
        t->on_done_data = NULL;
    }
    /* Its await will never return to clean up: unlink its waiter nodes, which
     * live on the stack about to be recycled (completing those futures later
     * would write into that stack and wake a freed task), and drop the
     * references they hold (leaked otherwise). */
    for (size_t i = 0; i < t->awaiting_n; i++) {
        corio__list_remove(&t->awaiting[i].link);
        corio_future_release(t->awaiting[i].ref);
    }
    if (t->awaiting_heap)
        free(t->awaiting);
    t->awaiting = NULL;
    t->awaiting_n = 0;
    t->awaiting_heap = false;
    if (t->on_abandon)
        t->on_abandon(t->on_abandon_data);
    t->on_abandon = NULL;
}

void corio__task_abandon(corio_loop *L, corio_task *t) {
    corio__timer_stop(L, &t->timer);
    corio__list_remove(&t->all_link);
    corio__loop_stack_put(L, t->stack);
    t->stack = NULL;
    t->state = CORIO__DONE;
    L->live_tasks--;
    corio__future_finish(&t->fut, CORIO_ECANCELED, NULL);
    corio_task_release(t);
}
