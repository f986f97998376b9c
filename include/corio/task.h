/* SPDX-License-Identifier: MIT */
/* corio/task.h — tasks (asyncio.Task), cancellation, sleep.
 *
 * A task runs a corio_task_fn on a stack of its own.  Spawning only schedules
 * it: nothing runs until the loop picks it from its ready queue, and a task is
 * only ever resumed from the loop's own stack, never nested in another task.
 * A task is a future (corio_task_future()): awaiting it joins it and yields
 * its result.
 *
 * Cancellation.  corio_cancel(t) asks t to stop.  From then on, t's pending
 * await and every later await return CORIO_ECANCELED until t ends, except
 * inside a shield scope (scope.h).  An await is any call documented as one:
 * corio_await, corio_sleep, corio_yield, lock/semaphore/queue/event waits,
 * stream reads and writes.  A cancelled waiter is removed from whatever it
 * waited on: a lock it was queued for is handed to the next waiter, a queue
 * item it was about to receive stays in the queue, nothing leaks.  If the
 * thing a task waited for completed before the cancel arrived (a lock already
 * handed to it, an item already given), that await still succeeds and the
 * next one fails.  A cancel carries a reason the task can read; the first
 * reason given wins.
 *
 * Every await is a checkpoint.  An await that fails at once because the
 * task is cancelled or past a deadline still goes round the loop (as
 * corio_yield does) before it returns: a task that retries failed awaits
 * cannot keep I/O, timers or other tasks from running, and the shutdown
 * grace period (loop.h) holds against it.  An await that would not suspend
 * does not fail: awaiting a future (or gathering futures) already complete
 * returns the result, cancelled or not, as in asyncio.  A task cancelled
 * before it first runs never runs its function: it ends with
 * CORIO_ECANCELED.
 *
 * What a cancel reaches (asyncio's behaviour, corio's, and why):
 *
 *   await of          | asyncio                     | corio
 *   ------------------+-----------------------------+-----------------------------------
 *   a future with a   | Task.cancel() cancels the   | the same: corio_future_cancel(),
 *   cancel hook       | future the task waits on    | so the hook stops the operation
 *   a plain future    | cancelled too               | left pending: no hook, nothing to
 *                     |                             | stop, and its producer may still
 *                     |                             | complete it (and free its value)
 *   a task            | the awaited task is         | the same (corio_cancel, reason
 *   (corio_await)     | cancelled                   | user), if no other task awaits it
 *   gather / wait_*   | gather cancels its children | every pending future or task as
 *                     | (wait() does not)           | above, for gather and wait_* alike:
 *                     |                             | a structured choice, nothing is
 *                     |                             | left running unawaited
 *   anything, inside  | asyncio.shield: the inner   | the cancel does not reach the
 *   a shield scope    | future runs on              | await at all (scope.h)
 *
 * The same holds when a deadline, not a cancel, cuts the await short (as
 * asyncio.timeout() cancels the task).  "If no other task awaits it": a
 * future or task several tasks wait for is cancelled only when the last
 * of them stops waiting by a cancel or deadline (asyncio would cancel it
 * for all of them).
 *
 * Deadlines.  Inside a timeout scope (scope.h) every await fails with
 * CORIO_ETIMEDOUT once the scope's deadline has passed; nested scopes take the
 * earliest deadline; if a task is both cancelled and past a deadline, its
 * awaits report CORIO_ECANCELED (a cancel wins over a timeout).
 *
 * References.  corio_spawn() hands the caller one reference (unless `out` is
 * NULL: a detached task); drop it with corio_task_release().  The loop holds
 * its own reference while the task runs, so releasing early is fine.
 */
#ifndef CORIO_TASK_H
#define CORIO_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_task corio_task;
typedef struct corio_future corio_future;

/* Why a task was cancelled. */
typedef enum corio_cancel_reason {
    CORIO_CANCEL_NONE = 0,  /* not cancelled */
    CORIO_CANCEL_USER,      /* corio_cancel() */
    CORIO_CANCEL_TIMEOUT,   /* a deadline the task ran under (task group) */
    CORIO_CANCEL_SHUTDOWN,  /* the loop or server is shutting down */
    CORIO_CANCEL_PEER_GONE, /* the peer of the task's connection went away */
    CORIO_CANCEL_SIBLING,   /* another task of its task group failed */
} corio_cancel_reason;

typedef struct corio_spawn_opts {
    const char *name;  /* copied (up to 47 bytes); NULL: "task-<id>" */
    size_t stack_size; /* 0: the loop's default; rounded up to pages */
    /* Run fn even if the task is cancelled before it first runs (its awaits
     * then fail at once): for a fn that owns `arg` and must release it. */
    bool run_if_cancelled;
    /* A background task that outlives its spawner's request (a pool's
     * keeper): it does not inherit the spawner's request id (a task does
     * otherwise, as asyncio's tasks copy their creator's context;
     * corio_req_id, http.h), so its log lines and backend calls carry
     * none. */
    bool no_context;
} corio_spawn_opts;

/* Creates a task running fn(arg) and puts it on the ready queue
 * (asyncio.create_task).  Callable from a task or from a libuv callback on
 * the loop's thread while corio_run() runs.  On success *out (if `out` is
 * not NULL) receives a reference the caller must drop with
 * corio_task_release().  Returns 0, CORIO_ENOTASK outside corio_run(),
 * CORIO_EINVAL if fn is NULL, CORIO_ENOMEM when no stack or memory is left,
 * CORIO_ECLOSED once corio_run() is tearing down (a done callback spawning
 * after the last task ended).  On error fn is never called; nor on success
 * if the task is cancelled before it first runs (a spawn during shutdown
 * is): if fn owns `arg` and must release it, spawn with
 * corio_spawn_opts.run_if_cancelled.  `name` is copied; `arg` is borrowed. */
int corio_spawn(corio_task **out, const char *name, corio_task_fn fn, void *arg);

/* corio_spawn() with options; `opts` may be NULL. */
int corio_spawn_ex(corio_task **out, const corio_spawn_opts *opts, corio_task_fn fn, void *arg);

/* The task as a future (same object, no new reference): awaiting it joins the
 * task; its result is the int the task returned. */
corio_future *corio_task_future(corio_task *t);

/* Reference counting.  retain returns t; release of the last reference frees
 * the task once it has ended.  Both accept NULL. */
corio_task *corio_task_retain(corio_task *t);
void corio_task_release(corio_task *t);

/* The task running now, or NULL on the loop's stack / outside corio_run.
 * Borrowed. */
corio_task *corio_current(void);

/* The task's name (borrowed, lives as long as the task). */
const char *corio_task_name(const corio_task *t);

/* Numeric id, unique within the process. */
uint64_t corio_task_id(const corio_task *t);

/* True once the task's function has returned. */
bool corio_task_done(const corio_task *t);

/* Requests cancellation of t (reason CORIO_CANCEL_USER), see the top of this
 * file.  Returns 0, or CORIO_EALREADY if t has already ended (nothing
 * happens).  Cancelling a task twice keeps the first reason. */
int corio_cancel(corio_task *t);

/* corio_cancel() with a reason other than CORIO_CANCEL_USER. */
int corio_cancel_with(corio_task *t, corio_cancel_reason reason);

/* The reason t was cancelled, or CORIO_CANCEL_NONE. */
corio_cancel_reason corio_task_cancel_reason(const corio_task *t);

/* Whether a cancellation is in effect for the caller's awaits right now:
 * its own task's cancel, an enclosing task group's (a member failed), or an
 * expired deadline of an enclosing timeout scope; not behind a shield scope
 * (scope.h).  False outside a task.  Polling it is a correct idiom:
 *     while (!corio_cancelled()) { ... }
 * (and a loop that retries a failed await instead goes round the loop each
 * time: it cannot freeze it, see "Every await is a checkpoint" above). */
bool corio_cancelled(void);

/* Which cancellation corio_cancelled() sees: the task's own reason
 * (CORIO_CANCEL_USER, _SHUTDOWN, _PEER_GONE...), CORIO_CANCEL_SIBLING for
 * a task group whose member failed, CORIO_CANCEL_TIMEOUT for an expired
 * deadline, CORIO_CANCEL_NONE when none is in effect.  When several apply,
 * the innermost cancelled scope's reason; a cancel wins over a deadline.
 * corio_cancel_reason_name() names it. */
corio_cancel_reason corio_cancelled_reason(void);

/* A static name for a reason ("user", "timeout", "shutdown", "peer gone"...). */
const char *corio_cancel_reason_name(corio_cancel_reason reason);

/* Await: lets every other ready task run once and libuv poll for I/O once,
 * then continues (asyncio.sleep(0)).  Returns 0, CORIO_ECANCELED, CORIO_ETIMEDOUT or
 * CORIO_ENOTASK. */
int corio_yield(void);

/* Await: suspends the current task for `ms` milliseconds of loop time.
 * Returns 0 after the time passed, CORIO_ECANCELED / CORIO_ETIMEDOUT if the
 * task is cancelled or a deadline expires first, CORIO_ENOTASK outside a
 * task. */
int corio_sleep(uint64_t ms);

/* Prints every live task of this thread's loop to `fd`: id, name, state, what
 * it awaits and for how long (like `python -m asyncio pstree`).  Safe to call
 * from the loop thread only.  Returns the number of tasks listed. */
int corio_tasks_dump(int fd);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_TASK_H */
