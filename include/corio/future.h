/* SPDX-License-Identifier: MIT */
/* corio/future.h — futures (asyncio.Future), await, gather/wait, to_thread.
 *
 * A future is a result that arrives later: pending, then done exactly once
 * with a result (>= 0 for success, a negative CORIO_E* code for failure) and
 * an optional value pointer.  Any code on the loop's thread may complete it
 * (a task, a libuv callback); other threads use the *_threadsafe variants.
 * Completing a future puts its awaiting tasks on the ready queue; it never
 * runs them nested in the completer.
 *
 * This is how a callback-style C API becomes awaitable: create a future,
 * start the operation with the future as its callback data, complete the
 * future in the callback, and await it (see examples/wrap_callback).
 *
 * References: corio_future_new() gives the caller one reference.  Whoever
 * keeps a future past the current callback or await holds a reference.
 */
#ifndef CORIO_FUTURE_H
#define CORIO_FUTURE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Creates a pending future on the running loop.  Returns 0, CORIO_ENOTASK
 * outside corio_run(), CORIO_ENOMEM. */
int corio_future_new(corio_future **out);

/* Reference counting; both accept NULL.  Releasing the last reference of a
 * pending future is allowed (nobody can await it any more). */
corio_future *corio_future_retain(corio_future *f);
void corio_future_release(corio_future *f);

/* Completes f with `result` (>= 0 success, < 0 failure) and `value`
 * (borrowed: corio never frees it).  Callable on the loop thread only.
 * Returns 0, or CORIO_EALREADY if f was already done (nothing changes), or
 * CORIO_EINVAL if f is a task (a task completes by returning). */
int corio_future_complete(corio_future *f, int result, void *value);

/* Shorthands: resolve = complete(f, 0, value); fail = complete(f, err, NULL)
 * with err < 0 (CORIO_EINVAL otherwise). */
int corio_future_resolve(corio_future *f, void *value);
int corio_future_fail(corio_future *f, int err);

/* Cancels a plain future (asyncio.Future.cancel): if pending, runs its cancel
 * hook (corio_future_on_cancel) and fails it with CORIO_ECANCELED.  On a task
 * this is corio_cancel().  Returns 0 or CORIO_EALREADY if already done. */
int corio_future_cancel(corio_future *f);

/* Registers a hook called (on the loop thread) when f is cancelled with
 * corio_future_cancel() while pending, so the operation behind it can be
 * stopped.  One hook per future; a second call replaces the first. */
void corio_future_on_cancel(corio_future *f, void (*hook)(corio_future *f, void *data), void *data);

/* Makes f own its value: when f's last reference is released, fn(value) is
 * called if f completed with a value that is not NULL (asyncio: the result
 * lives as long as the future).  Whoever reads the value with
 * corio_future_value borrows it until they release f.  A second call
 * replaces the first; NULL: f owns nothing (the default) — which is also
 * how a caller takes an owned value out of f, to free it itself later.
 * Loop thread only; not for tasks (CORIO_EINVAL).  Returns 0. */
int corio_future_set_value_free(corio_future *f, void (*fn)(void *value));

/* Thread-safe completion, from any thread (a thread-pool worker, a foreign
 * library's thread), at any time, also after f's loop has ended.  The caller
 * must hold a reference to f for the duration of the call (retained on the
 * loop thread and handed over; `value` stays borrowed as for
 * corio_future_complete).  Returns:
 *   0               accepted: f is completed on its loop's thread soon after,
 *                   and its waiters and done callbacks run before corio_run()
 *                   returns (unless f was completed on the loop meanwhile:
 *                   the first completion wins).
 *   CORIO_EALREADY  a thread-safe completion of f was accepted before; at
 *                   most one is.
 *   CORIO_ECLOSED   f's loop has ended or is closing (main and every task
 *                   have ended; see corio_run): nothing happens, f stays as
 *                   it was, no callback runs, and the loop's memory is not
 *                   touched.  Never delivered to a later loop.
 *   CORIO_EINVAL    f is NULL or a task; fail_threadsafe with err >= 0.
 * A completion racing the loop's end gets exactly one of 0 (delivered) and
 * CORIO_ECLOSED (not).
 *
 * A future's memory belongs to its references, not to its loop: a foreign
 * thread holding one may, after the loop ended, call these functions and
 * corio_future_retain()/corio_future_release() (the last release frees f on
 * that thread; nothing of the loop is touched) — and nothing else: its
 * state (corio_future_done() ...) is the loop thread's to read. */
int corio_future_complete_threadsafe(corio_future *f, int result, void *value);
int corio_future_resolve_threadsafe(corio_future *f, void *value);
int corio_future_fail_threadsafe(corio_future *f, int err);

/* State of f.  result/value are meaningful once done; result of a pending
 * future is CORIO_EAGAIN. */
bool corio_future_done(const corio_future *f);
int corio_future_result(const corio_future *f);
void *corio_future_value(const corio_future *f);

/* Adds a done callback (asyncio add_done_callback): called on the loop's stack
 * soon after f completes (soon, not immediately, if it is already done), with
 * f still referenced.  It must not await.  Returns 0, CORIO_ENOMEM. */
typedef void (*corio_done_cb)(corio_future *f, void *data);
int corio_future_add_done_cb(corio_future *f, corio_done_cb cb, void *data);

/* Await: suspends the current task until f is done and returns its result.
 * Returns CORIO_ECANCELED / CORIO_ETIMEDOUT if the task is cancelled or a
 * deadline passes first (f itself is left untouched and pending), and
 * CORIO_ENOTASK outside a task (a programming error, also reported on
 * stderr).  Awaiting the current task's own future is CORIO_EINVAL. */
int corio_future_await(corio_future *f);

/* corio_await(x): await a future or a task (a task is a future). */
#define corio_await(x)                                                                             \
    corio_future_await(_Generic((x), corio_task *                                                  \
                                : corio_task_future((corio_task *)(x)), corio_future *             \
                                : (x)))

/* Await: gather (asyncio.gather).  Waits until every future in fs[0..n) is
 * done and returns 0, or returns the first failure's code as soon as one
 * fails (the others keep running: use a task group to cancel siblings).
 * Each result is then read with corio_future_result().  Also returns
 * CORIO_ECANCELED / CORIO_ETIMEDOUT as any await.  n == 0 returns 0. */
int corio_gather(corio_future *const *fs, size_t n);

/* Await: waits until at least one future is done; *index (if not NULL)
 * receives the lowest index of a done future.  Returns 0, CORIO_EINVAL for
 * n == 0, or CORIO_ECANCELED / CORIO_ETIMEDOUT. */
int corio_wait_any(corio_future *const *fs, size_t n, size_t *index);

/* Await: waits until every future is done, whatever their results.  Returns
 * 0, or CORIO_ECANCELED / CORIO_ETIMEDOUT. */
int corio_wait_all(corio_future *const *fs, size_t n);

/* Runs fn(arg) on libuv's thread pool (asyncio.to_thread) and gives a future
 * completed with fn's return value as result.  fn must not call corio
 * functions other than the *_threadsafe ones.  *out is a new reference.  If
 * the awaiting task is cancelled, fn still runs to its end (threads cannot be
 * interrupted) and the future completes then.  Returns 0, CORIO_ENOTASK,
 * CORIO_EINVAL, CORIO_ENOMEM. */
int corio_run_blocking(corio_future **out, corio_task_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_FUTURE_H */
