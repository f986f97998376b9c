/* SPDX-License-Identifier: MIT */
/* The runtime's private structures: loop, task, future, waiter, timer.
 *
 * Waking.  A task that waits parks: it records why, arms its timer when a
 * deadline or a sleep applies, and switches to the loop.  Whatever it waits
 * for wakes it with corio__wake(), which succeeds only for a parked task and
 * puts it on the ready queue with a result; the first wake wins, later ones
 * return false.  Primitives that hand something over (a lock, a permit, an
 * item) do so only when their wake succeeds, so a waiter that has already
 * been woken by a cancel or a deadline is never handed anything.  The parked
 * code cleans up its own waiter nodes after it resumes.
 *
 * Scopes.  A task keeps a stack of entered scopes (scope.h), innermost first,
 * ending in the task's root scope.  Each may carry a deadline, a cancelled
 * flag or a shield; an await looks from the innermost scope outward and stops
 * after the first shield.
 */
#ifndef CORIO_RUNTIME_INTERNAL_H
#define CORIO_RUNTIME_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "base/list.h"
#include "base/report.h"
#include "corio/error.h"
#include "corio/future.h"
#include "corio/loop.h"
#include "corio/resource.h"
#include "corio/task.h"
#include "coro/coro.h"
#include "coro/overflow.h"
#include "coro/stack.h"

#define CORIO__NO_DEADLINE UINT64_MAX

/* ---- timers: a min-heap per loop, driven by one uv_timer_t ------------------ */

typedef struct corio__timer corio__timer;
typedef void (*corio__timer_cb)(corio__timer *t);
struct corio__timer {
    uint64_t when;
    size_t index; /* in the heap; SIZE_MAX when not armed */
    corio__timer_cb cb;
};

typedef struct corio__timer_heap {
    corio__timer **items;
    size_t len, cap;
} corio__timer_heap;

typedef struct corio_loop corio_loop;

void corio__timer_init(corio__timer *t, corio__timer_cb cb);
/* Arms (or re-arms) t at absolute loop time `when`.  Returns 0 or ENOMEM. */
int corio__timer_start(corio_loop *L, corio__timer *t, uint64_t when);
void corio__timer_stop(corio_loop *L, corio__timer *t);
static inline bool corio__timer_armed(const corio__timer *t) {
    return t->index != SIZE_MAX;
}
/* Fires every due timer and re-arms the uv timer; the uv callback. */
void corio__timers_run(corio_loop *L);

/* ---- futures -------------------------------------------------------------------- */

typedef struct corio__waiter corio__waiter;
typedef void (*corio__waiter_fire)(corio__waiter *w, corio_future *f);

/* One task waiting on one thing; lives on the waiting task's stack. */
struct corio__waiter {
    corio__link link;
    corio_task *task;
    corio__waiter_fire fire; /* futures: called instead of a plain wake */
    void *item;              /* queues: the item handed over */
    corio_future *ref;       /* futures: a reference held while waiting */
    void *data;
};

typedef struct corio__done_cb_node {
    struct corio__done_cb_node *next;
    corio_done_cb cb;
    void *data;
} corio__done_cb_node;

struct corio_future {
    corio_loop *loop;
    corio__link waiters; /* corio__waiter.link */
    corio__done_cb_node *callbacks;
    corio__link soon_link; /* in loop->soon while callbacks are due */
    void *value;
    void (*value_free)(void *value); /* corio_future_set_value_free */
    void (*cancel_hook)(corio_future *f, void *data);
    void *cancel_data;
    struct corio_future *ts_next; /* thread-safe completion queue */
    void *ts_value;
    int ts_result;
    uint64_t ts_loop_id; /* its loop's id in threadsafe.c's registry */
    int result;
    atomic_uint refs;
    atomic_bool ts_claimed;
    bool done;
    bool is_task;
};

void corio__future_init(corio_future *f, corio_loop *L, bool is_task);
/* Completes a future (any kind, tasks included); wakes waiters, schedules
 * callbacks.  Returns CORIO_EALREADY if done. */
int corio__future_finish(corio_future *f, int result, void *value);
/* An await of f was cut short by a cancel or a deadline: cancels what f
 * stands for (a task, a future with a cancel hook) if nobody else waits for
 * it (future.c). */
void corio__future_abandoned(corio_future *f);
/* Runs due done callbacks; the loop calls it. */
void corio__run_soon(corio_loop *L);
/* Runs thread-safe completions; the async callback. */
void corio__run_threadsafe(corio_loop *L);
/* threadsafe.c: a loop enters the registry of open loops (after its async
 * handle is initialised) and leaves it before its handles close, delivering
 * what was queued before; from then on thread-safe completions of its
 * futures return CORIO_ECLOSED. */
void corio__ts_open(corio_loop *L);
void corio__ts_close(corio_loop *L);

/* ---- tasks ---------------------------------------------------------------------- */

enum corio__task_state {
    CORIO__READY = 1, /* on the ready queue */
    CORIO__RUNNING,
    CORIO__PARKED,
    CORIO__DONE,
};

struct corio_task {
    corio_future fut; /* first: a task is a future */
    corio__coro coro;
    corio__stack *stack;
    corio_task_fn fn;
    void *arg;
    corio__link ready_link; /* loop->ready */
    corio__link all_link;   /* loop->tasks */
    /* A done hook, registered by what the task is a member of (a task
     * group, scope/task_group.c): called with the task as it ends, after its
     * future completes.  member_link is on that owner's list of members;
     * detach unlinks it and drops the hook. */
    corio__link member_link;
    void (*on_done)(corio_task *t);
    void *on_done_data;
    corio_scope root;    /* root.cancelled: the task is cancelled */
    corio_scope *scopes; /* innermost entered scope */
    corio__timer timer;  /* deadline / sleep while parked */
    uint64_t wake_at;    /* own timer (sleep) while parked */
    uint64_t parked_since;
    const char *waiting_on;
    /* While parked in an await: its waiter nodes, each linked in the list of
     * what it waits on (and holding a reference in `ref` for futures).  Kept
     * so that abandoning the task (shutdown after grace) can unlink them
     * before its stack is recycled and drop those references. */
    corio__waiter *awaiting;
    size_t awaiting_n;
    bool awaiting_heap; /* `awaiting` was malloc'd (gather of many) */
    /* While parked on something that points back at the task without a
     * waiter node (a stream's reader slot, a request wait): undoes that
     * pointer if the task is abandoned at shutdown. */
    void (*on_abandon)(void *data);
    void *on_abandon_data;
    corio__overflow_info ovf;
    uint64_t id;
    int wake_result;
    uint8_t state;
    uint8_t cancel_reason;
    bool run_if_cancelled; /* corio_spawn_opts.run_if_cancelled */
    /* The id of the HTTP request the task serves, for its log lines and
     * its backend calls (corio__log_request_id while it runs), or NULL.
     * Set by the HTTP connection task around each request (pointing into
     * its connection); a task spawned from a task with one gets a copy,
     * kept after its struct in the same allocation (it may outlive the
     * request). */
    const char *request_id;
    char name[48];
};

/* ---- the loop ------------------------------------------------------------------- */

struct corio_loop {
    uv_loop_t uv;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_idle_t idle;
    uv_timer_t timer;
    uv_async_t async;
    corio__link ready;   /* corio_task.ready_link */
    corio__link yielded; /* tasks in corio_yield: ready after the next poll */
    corio__link soon;    /* corio_future.soon_link */
    corio__link tasks;   /* every live task */
    corio__timer_heap heap;
    uint64_t timer_armed_at;
    corio__stack_pool pool;
    corio__timer pool_timer; /* armed while stacks are hot: their decay */
    corio__coro main_coro;   /* the loop's own stack */
    corio_task *current;
    corio_task *main_task;
    size_t stack_size;
    size_t live_tasks;
    size_t blocking_pending;
    uv_mutex_t ts_mutex;
    corio_future *ts_head;
    uint64_t ts_id;                  /* never reused, unlike the address */
    struct corio_loop *ts_open_next; /* threadsafe.c's registry */
    uint32_t polls; /* libuv polls so far (wrapping): one per turn of the loop */
    /* corio__wake_now's fairness: the source of the last task run at once,
     * and in which poll */
    const void *eager_source;
    uint32_t eager_poll;
    uint32_t eager_runs; /* tasks run at once so far (wrapping) */
    bool idle_active;
    bool stopping;
    bool closed; /* tasks are gone: corio_spawn refuses (CORIO_ECLOSED) */
};

extern __thread corio_loop *corio__tls_loop;

/* Makes the loop poll without blocking while tasks or callbacks are due. */
void corio__loop_kick(corio_loop *L);

/* Gives a task's stack back to the loop's pool, and makes sure that hot
 * stacks left unused turn cold in time (loop.c). */
void corio__loop_stack_put(corio_loop *L, corio__stack *s);

/* Gives back the calling task's dead stack pages (corio__stack_trim), before
 * a wait that will be long; the next deeper call faults them in again.  A
 * system call: not for every wait.  Returns the bytes given back (0 outside
 * a task). */
size_t corio__trim_stack(void);

/* Runs ready tasks and due callbacks (bounded per call). */
void corio__loop_run_ready(corio_loop *L);

/* The current task, or NULL after reporting that `what` was called outside a
 * task. */
corio_task *corio__task_require(const char *what);

/* corio__wake, then, from a callback on the loop's own stack (no task
 * running), runs the task at once until it parks again rather than after
 * the other ready tasks: for I/O that only this task waits for, so that it
 * handles its bytes while they are in the cache.  Not twice in a row for
 * one `source` (e.g. a stream) within one poll: libuv reads a socket up to
 * 32 times in a row while each read fills the buffer, and a flooding peer
 * must not have its task run that often while the others wait; that wake
 * queues, as corio__wake does.  Only in a row: one poll may serve tens of
 * thousands of events (libuv polls again at once while epoll fills its
 * array), and a source that comes round again after others ran at once
 * runs at once again, rather than waiting behind all of them for the
 * poll's end; for the same reason the tasks that are queued meanwhile run
 * after every EAGER_DRAIN tasks run at once.  The caller must not free what the task may close (a stream
 * is freed in its close callback, never during a read callback). */
bool corio__wake_now(corio_task *t, int result, const void *source);

/* Puts a parked task on the ready queue with `result`; false if it was not
 * parked (already woken, running, done). */
bool corio__wake(corio_task *t, int result);

/* Before an await: CORIO_ECANCELED, CORIO_ETIMEDOUT or 0, from the scopes
 * visible to the task (cancel wins). */
int corio__await_status(corio_task *t);

/* What an await that fails at once returns through: the task goes round
 * the loop once (behind I/O and the other ready tasks, as corio_yield), so
 * a task that retries failed awaits can never keep the loop from turning
 * (I/O, timers, the shutdown grace period).  Returns status. */
int corio__await_fail(corio_task *t, int status);

/* The check every await makes before it waits: 0, or (after going round the
 * loop, see corio__await_fail) CORIO_ECANCELED or CORIO_ETIMEDOUT. */
static inline int corio__await_check(corio_task *t) {
    int status = corio__await_status(t);
    return status ? corio__await_fail(t, status) : 0;
}

/* The prologue of an await that checks at once (corio__task_require, then
 * corio__await_check): the current task with *rc = 0, or NULL with *rc =
 * CORIO_ENOTASK (reported, naming `what`) or the check's CORIO_ECANCELED /
 * CORIO_ETIMEDOUT (after going round the loop).  An await that does
 * something between the two (returns a done future's result, cancels what
 * it awaits on a failed check) writes them out. */
static inline corio_task *corio__await_begin(const char *what, int *rc) {
    corio_task *t = corio__task_require(what);
    if (!t) {
        *rc = CORIO_ENOTASK;
        return NULL;
    }
    *rc = corio__await_check(t);
    return *rc ? NULL : t;
}

/* The cancellation in effect for t's awaits now: the reason of the
 * innermost cancelled visible scope (the task's own reason for its root),
 * CORIO_CANCEL_TIMEOUT for an expired deadline, or CORIO_CANCEL_NONE. */
corio_cancel_reason corio__cancel_in_effect(corio_task *t);

/* Parks the current task until woken, its deadline passes (ETIMEDOUT), it
 * is cancelled (ECANCELED), or, with wake_at != CORIO__NO_DEADLINE, loop time
 * reaches wake_at (0).  `what` shows in task dumps.  Call only after
 * corio__await_status() said 0. */
int corio__park(corio_task *t, uint64_t wake_at, const char *what);

/* corio__park for a wait known by a slot pointing at the task (a group's or
 * a server's waiter): sets *slot to t while parked, clears it after, and
 * also if the task is abandoned at shutdown. */
int corio__park_in_slot(corio_task *t, corio_task **slot, uint64_t wake_at, const char *what);

/* Resumes t from the loop's stack; the loop calls it. */
void corio__task_resume(corio_loop *L, corio_task *t);

/* Shutdown after grace, for a task whose function will never finish:
 * detach undoes everything that points at it or its stack (waiter nodes,
 * group link, on_abandon); abandon then recycles its stack and frees it.
 * Every stuck task is detached before any is abandoned, since one stuck
 * task's stack may hold what another points at (a task group). */
void corio__task_detach(corio_loop *L, corio_task *t);
void corio__task_abandon(corio_loop *L, corio_task *t);

/* Whether scope `target` of t is seen by an await at t's innermost scope:
 * entered, and not behind a shield. */
static inline bool corio__scope_visible(corio_task *t, const corio_scope *target) {
    for (corio_scope *s = t->scopes; s; s = s->outer) {
        if (s == target)
            return true;
        if (s->shield)
            return false;
    }
    return false;
}

/* Sets t's request id (see corio_task.request_id; borrowed: it must stay
 * valid while set), and the log's if t runs now. */
static inline void corio__task_set_request_id(corio_task *t, const char *id) {
    t->request_id = id;
    if (corio__tls_loop && corio__tls_loop->current == t)
        corio__log_request_id = id;
}

static inline corio_task *corio__current(void) {
    corio_loop *L = corio__tls_loop;
    return L ? L->current : NULL;
}

static inline uint64_t corio__now(corio_loop *L) {
    return uv_now(&L->uv);
}

/* The loop time refreshed first: for relative deadlines ("ms from now")
 * taken by a task that may have run long since the iteration began, where
 * the cached time would make them expire early. */
static inline uint64_t corio__now_fresh(corio_loop *L) {
    uv_update_time(&L->uv);
    return uv_now(&L->uv);
}

/* The deadline `ms` from now, saturating (UINT64_MAX stays "no deadline"). */
static inline uint64_t corio__deadline_after(corio_loop *L, uint64_t ms) {
    uint64_t now = corio__now_fresh(L);
    return ms >= CORIO__NO_DEADLINE - 1 - now ? CORIO__NO_DEADLINE - 1 : now + ms;
}

#endif
