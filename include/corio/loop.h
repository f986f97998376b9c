/* SPDX-License-Identifier: MIT */
/* corio/loop.h — running the event loop (asyncio.run).
 *
 * corio_run() creates a fresh libuv loop on the calling thread, runs `main` as
 * the first task, and returns when it ends.  At that point every task still
 * alive is cancelled (reason CORIO_CANCEL_SHUTDOWN) and awaited; a task that
 * does not end within the shutdown grace period is reported on stderr by name.
 * No task outlives corio_run().
 */
#ifndef CORIO_LOOP_H
#define CORIO_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

struct uv_loop_s;

/* A task body (asyncio's coroutine function).  The int it returns is the
 * task's result: >= 0 is success, a negative CORIO_E* code is a failure. */
typedef int (*corio_task_fn)(void *arg);

typedef struct corio_run_opts {
    /* Default stack size for tasks of this run, in bytes; 0 keeps the global
     * default (corio_stack_size_default()).  Rounded up to whole pages. */
    size_t stack_size;
    /* How long tasks left alive when `main` ends get to finish after being
     * cancelled, in ms; 0 means 5000. */
    uint64_t shutdown_grace_ms;
    /* Stacks kept mapped in the per-loop pool for reuse; 0 means 1024.
     * Of those, up to `stack_pool_hot` keep their pages; the rest give all
     * their pages back to the OS (madvise) while pooled.  0 means 256.
     * Pooled stacks that no task needed for half a second give their pages
     * back too (all but 16), so a burst of tasks leaves no memory behind. */
    size_t stack_pool_max;
    size_t stack_pool_hot;
} corio_run_opts;

/* Runs `main(arg)` as a task on a new loop until it ends (asyncio.run).
 * Returns main's result (>= 0 or a CORIO_E* code from main), or
 * CORIO_EBUSY when the loop could not be closed cleanly: a task that would
 * not end after cancellation, a libuv handle left open (each is listed on
 * stderr), or a corio_run_blocking() call still running after the grace
 * period (threads cannot be interrupted: corio_run waits for it to end).  CORIO_ENOMEM /
 * CORIO_EINVAL if the loop could not start, and CORIO_EBUSY when called while a corio loop is
 * already running on this thread.  `arg` is borrowed. */
int corio_run(corio_task_fn main, void *arg);

/* corio_run() with options; `opts` may be NULL and is read only during the
 * call. */
int corio_run_ex(const corio_run_opts *opts, corio_task_fn main, void *arg);

/* The loop's clock in milliseconds (libuv's monotonic loop time, refreshed
 * by this call: like asyncio's loop.time()).  Sleeps and deadlines are
 * measured on it.  0 outside corio_run(). */
uint64_t corio_now(void);

/* The raw libuv loop of the running corio loop on this thread, or NULL.
 * For code that wants libuv on purpose; handles it opens must be closed before
 * corio_run() returns, or corio_run() reports them and returns CORIO_EBUSY. */
struct uv_loop_s *corio_uv_loop(void);

/* The global default task stack size (64 KiB; 256 KiB under AddressSanitizer)
 * and a setter for it.  Returns CORIO_EINVAL for sizes below 16 KiB or above
 * 1 GiB.  Not thread-safe: set it before starting loops. */
size_t corio_stack_size_default(void);
int corio_stack_size_set_default(size_t bytes);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_LOOP_H */
