/* SPDX-License-Identifier: MIT */
/* corio/sync.h — lock, event, semaphore, bounded queue (asyncio.Lock, Event,
 * Semaphore, Queue).
 *
 * All are loop-local (use them from tasks of one loop), FIFO-fair (waiters are
 * served in arrival order, and a newcomer never overtakes a waiter), and every
 * wait is an await: it honours cancellation and deadlines (task.h).  A
 * cancelled or timed-out waiter leaves the wait queue: it is never handed a
 * lock, a permit or an item after its wait failed, so nothing is lost and no
 * lock is left held.
 *
 * The lock, event and semaphore live in caller storage and hold no memory:
 * they need an _init and no release, but must not be freed or moved while a
 * task waits on them.  Their acquire/release verbs are asyncio's.
 */
#ifndef CORIO_SYNC_H
#define CORIO_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "link.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- lock -------------------------------------------------------------- */

typedef struct corio_lock {
    corio__link waiters; /* private */
    corio_task *owner;   /* private */
} corio_lock;

/* Initialises a lock, free (asyncio.Lock()).  Caller storage; nothing to
 * free. */
void corio_lock_init(corio_lock *l);

/* Await: takes the lock, waiting in FIFO order while another task holds it.
 * Returns 0 (the caller owns it), CORIO_ECANCELED, CORIO_ETIMEDOUT,
 * CORIO_ENOTASK, or CORIO_EBUSY if the caller already holds it (corio locks
 * are not recursive).  Prefer the lock scope (scope.h), which releases on
 * every way out. */
int corio_lock_acquire(corio_lock *l);

/* Takes the lock only if it is free and nobody waits.  Returns 0 or
 * CORIO_EBUSY (CORIO_ENOTASK outside a task). */
int corio_lock_try_acquire(corio_lock *l);

/* Releases the lock, handing it to the first waiter.  Returns 0, or
 * CORIO_EPERM if the calling task does not hold it (reported on stderr). */
int corio_lock_release(corio_lock *l);

/* Whether some task holds the lock (asyncio's locked()). */
bool corio_lock_locked(const corio_lock *l);

/* ---- event ------------------------------------------------------------- */

typedef struct corio_event {
    corio__link waiters; /* private */
    bool set;            /* private */
} corio_event;

/* Initialises an event, clear (asyncio.Event()).  Caller storage; nothing
 * to free. */
void corio_event_init(corio_event *e);
/* Sets the flag and wakes every waiter (callable from any code on the loop
 * thread, also outside tasks). */
void corio_event_set(corio_event *e);
void corio_event_clear(corio_event *e);
bool corio_event_is_set(const corio_event *e);
/* Await: returns 0 at once if set, else waits for corio_event_set().
 * Returns CORIO_ECANCELED / CORIO_ETIMEDOUT / CORIO_ENOTASK. */
int corio_event_wait(corio_event *e);

/* ---- semaphore ------------------------------------------------------------ */

typedef struct corio_semaphore {
    corio__link waiters; /* private */
    size_t value;        /* private */
} corio_semaphore;

/* Initialises a semaphore with `value` permits (asyncio.Semaphore(value)).
 * Caller storage; nothing to free. */
void corio_semaphore_init(corio_semaphore *s, size_t value);
/* Await: takes one permit, waiting FIFO while none is free.  Returns 0,
 * CORIO_ECANCELED, CORIO_ETIMEDOUT, CORIO_ENOTASK. */
int corio_semaphore_acquire(corio_semaphore *s);
/* Returns 0 or CORIO_EBUSY when no permit is free (or a waiter is first). */
int corio_semaphore_try_acquire(corio_semaphore *s);
/* Gives a permit back, straight to the first waiter if there is one.  Callable
 * from any code on the loop thread. */
void corio_semaphore_release(corio_semaphore *s);
size_t corio_semaphore_value(const corio_semaphore *s);

/* ---- bounded queue ---------------------------------------------------------- */

typedef struct corio_queue corio_queue;

/* Creates a FIFO queue of at most `capacity` (>= 1) void* items.  Returns 0,
 * CORIO_EINVAL, CORIO_ENOMEM. */
int corio_queue_new(corio_queue **out, size_t capacity);

/* Frees the queue.  Returns CORIO_EBUSY (and frees nothing) while a task still
 * waits on it: close it first and let the waiters go.  Items still queued are
 * dropped (corio never owns them). */
int corio_queue_free(corio_queue *q);

/* Await: appends item, waiting while the queue is full (backpressure).
 * Returns 0, CORIO_ECLOSED if the queue is or gets closed (the item was not
 * queued), CORIO_ECANCELED, CORIO_ETIMEDOUT, CORIO_ENOTASK. */
int corio_queue_put(corio_queue *q, void *item);

/* Appends without waiting.  Returns 0, CORIO_EAGAIN when full, CORIO_ECLOSED.
 * Callable from any code on the loop thread. */
int corio_queue_try_put(corio_queue *q, void *item);

/* Await: takes the oldest item into *item, waiting while the queue is empty.
 * Returns 0, CORIO_ECLOSED once the queue is closed and empty (items queued
 * before the close are still delivered), CORIO_ECANCELED, CORIO_ETIMEDOUT,
 * CORIO_ENOTASK. */
int corio_queue_get(corio_queue *q, void **item);

/* Takes without waiting.  Returns 0, CORIO_EAGAIN when empty, CORIO_ECLOSED
 * when closed and empty. */
int corio_queue_try_get(corio_queue *q, void **item);

/* Closes the queue: later puts fail with CORIO_ECLOSED, every waiting putter
 * and (once empty) getter is woken with CORIO_ECLOSED.  Idempotent. */
void corio_queue_close(corio_queue *q);

/* The items queued now, the capacity given to corio_queue_new, and whether
 * the queue was closed. */
size_t corio_queue_size(const corio_queue *q);
size_t corio_queue_capacity(const corio_queue *q);
bool corio_queue_closed(const corio_queue *q);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_SYNC_H */
