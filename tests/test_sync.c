/* SPDX-License-Identifier: MIT */
/* Layer 3: lock, event, semaphore, bounded queue (include/corio/sync.h).
 *
 * Tasks are ordered with yields and events only: a spawned task runs when the
 * spawner parks or yields, and settle() lets every ready task run until it
 * parks.  Results are recorded into structs and asserted after corio_run()
 * returned; SOFT() records incidental in-task failures the same way.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "corio_test.h"

#include <uv.h>

/* ---- helpers ----------------------------------------------------------------- */

/* Lets every ready task run until it parks (n rounds of the ready queue). */
static void settle(int n) {
    while (n-- > 0)
        SOFT(corio_yield() == 0);
}

/* ---- lock -------------------------------------------------------------------- */

typedef struct lock_ctx lock_ctx;

typedef struct lock_waiter {
    lock_ctx *c;
    corio_task *task;
    int id;
    uint64_t timeout_ms; /* acquire under a timeout scope when not 0 */
    int rc, after_rc;    /* the acquire; the await right after it */
} lock_waiter;

struct lock_ctx {
    corio_lock lock;
    lock_waiter w[6];
    int order[8], n; /* ids in acquisition order (main: 99) */
    int inside, max_inside, counter;
    int r[8]; /* results the test asserts */
};

/* Asserts that the n ints of array arr are the given ones. */
#define assert_ints(arr, n, ...)                                                                   \
    do {                                                                                           \
        int want_[] = {__VA_ARGS__};                                                               \
        assert_int_equal((n), sizeof want_ / sizeof *want_);                                       \
        assert_memory_equal((arr), want_, sizeof want_);                                           \
    } while (0)
#define assert_order(c, ...) assert_ints((c).order, (c).n, __VA_ARGS__)

static int mutex_worker(void *arg) {
    lock_ctx *c = arg;
    for (int i = 0; i < 50; i++) {
        SOFT(corio_lock_acquire(&c->lock) == 0);
        if (++c->inside > c->max_inside)
            c->max_inside = c->inside;
        int v = c->counter; /* read-modify-write across awaits */
        settle(2);
        c->counter = v + 1;
        c->inside--;
        SOFT(corio_lock_release(&c->lock) == 0);
        settle(1);
    }
    return 0;
}

static int lock_mutex_main(void *arg) {
    lock_ctx *c = arg;
    corio_lock_init(&c->lock);
    corio_task *t[4];
    for (int i = 0; i < 4; i++)
        t[i] = corio_test_spawn("worker", mutex_worker, c);
    for (int i = 0; i < 4; i++)
        SOFT(corio_test_join(t[i]) == 0);
    return 0;
}

static void test_lock_mutual_exclusion_across_yields(void **state) {
    (void)state;
    lock_ctx c = {0};
    corio_test_run_checked(lock_mutex_main, &c);
    assert_int_equal(c.max_inside, 1);
    assert_int_equal(c.counter, 4 * 50); /* no lost update */
    assert_false(corio_lock_locked(&c.lock));
}

/* Takes the lock, records its id, holds it across a yield, releases. */
static int lock_waiter_fn(void *arg) {
    lock_waiter *w = arg;
    CORIO_WITH(corio_timeout_scope(w->timeout_ms ? w->timeout_ms : 3600 * 1000))
    w->rc = corio_lock_acquire(&w->c->lock);
    if (w->rc != 0)
        return 0;
    w->c->order[w->c->n++] = w->id;
    w->after_rc = corio_yield();
    SOFT(corio_lock_release(&w->c->lock) == 0);
    return 0;
}

/* Spawns waiters from..to-1, lets each run until it parks on the lock. */
static void start_waiters(lock_ctx *c, int from, int to) {
    for (int i = from; i < to; i++) {
        c->w[i].c = c;
        c->w[i].id = i;
        c->w[i].task = corio_test_spawn("lock waiter", lock_waiter_fn, &c->w[i]);
    }
    settle(2);
}

static void join_waiters(lock_ctx *c, int from, int to) {
    for (int i = from; i < to; i++)
        SOFT(corio_test_join(c->w[i].task) == 0);
}

static int lock_fifo_main(void *arg) {
    lock_ctx *c = arg;
    corio_lock_init(&c->lock);
    SOFT(corio_lock_acquire(&c->lock) == 0);
    start_waiters(c, 0, 5);
    SOFT(corio_lock_release(&c->lock) == 0); /* handed to waiter 0 */
    /* Newcomers after the release: this task, then a fresh one. */
    c->r[0] = corio_lock_try_acquire(&c->lock);
    c->w[5] = (lock_waiter){.c = c, .id = 100};
    c->w[5].task = corio_test_spawn("newcomer", lock_waiter_fn, &c->w[5]);
    c->r[1] = corio_lock_acquire(&c->lock);
    c->order[c->n++] = 99;
    SOFT(corio_lock_release(&c->lock) == 0);
    join_waiters(c, 0, 6);
    return 0;
}

static void test_lock_fifo_and_no_overtaking(void **state) {
    (void)state;
    lock_ctx c = {0};
    corio_test_run_checked(lock_fifo_main, &c);
    assert_int_equal(c.r[0], CORIO_EBUSY);
    assert_int_equal(c.r[1], 0);
    assert_order(c, 0, 1, 2, 3, 4, 99, 100);
    assert_false(corio_lock_locked(&c.lock));
}

static int other_misuses(void *arg) {
    lock_ctx *c = arg;
    c->r[4] = corio_lock_try_acquire(&c->lock);
    c->r[5] = corio_lock_release(&c->lock);
    c->r[6] = corio_lock_locked(&c->lock);
    return 0;
}

static int lock_misuse_main(void *arg) {
    lock_ctx *c = arg;
    corio_lock_init(&c->lock);
    c->r[0] = corio_lock_release(&c->lock); /* nobody holds it */
    c->r[1] = corio_lock_try_acquire(&c->lock);
    c->r[2] = corio_lock_try_acquire(&c->lock);
    c->r[3] = corio_lock_acquire(&c->lock);
    SOFT(corio_test_join(corio_test_spawn("other", other_misuses, c)) == 0);
    SOFT(corio_lock_release(&c->lock) == 0);
    c->r[7] = corio_lock_release(&c->lock);
    return 0;
}

static void test_lock_try_acquire_and_misuse(void **state) {
    (void)state;
    lock_ctx c = {0};
    corio_test_run_checked(lock_misuse_main, &c);
    assert_int_equal(c.r[0], CORIO_EPERM);
    assert_int_equal(c.r[1], 0);           /* try_acquire of a free lock */
    assert_int_equal(c.r[2], CORIO_EBUSY); /* try_acquire by the owner */
    assert_int_equal(c.r[3], CORIO_EBUSY); /* acquire by the owner: not recursive */
    assert_int_equal(c.r[4], CORIO_EBUSY); /* try_acquire by another task */
    assert_int_equal(c.r[5], CORIO_EPERM); /* release by a non-owner ... */
    assert_true(c.r[6]);                   /* ... which changes nothing */
    assert_int_equal(c.r[7], CORIO_EPERM); /* release twice */
    assert_false(corio_lock_locked(&c.lock));
}

/* Waiter 1 of three is cancelled while queued; the others get the lock. */
static int lock_cancel_main(void *arg) {
    lock_ctx *c = arg;
    corio_lock_init(&c->lock);
    SOFT(corio_lock_acquire(&c->lock) == 0);
    start_waiters(c, 0, 3);
    SOFT(corio_cancel(c->w[1].task) == 0);
    settle(2); /* it returns ECANCELED and leaves the queue */
    SOFT(corio_lock_release(&c->lock) == 0);
    join_waiters(c, 0, 3);
    return 0;
}

static void test_lock_cancel_waiter_hands_lock_to_next(void **state) {
    (void)state;
    lock_ctx c = {0};
    corio_test_run_checked(lock_cancel_main, &c);
    assert_int_equal(c.w[1].rc, CORIO_ECANCELED);
    assert_int_equal(c.w[0].rc, 0);
    assert_int_equal(c.w[2].rc, 0);
    assert_order(c, 0, 2);
    assert_false(corio_lock_locked(&c.lock));
}

/* Cancel and release in one loop iteration (no await in between). */
static int lock_race_main(void *arg) {
    lock_ctx *c = arg;
    corio_lock_init(&c->lock);
    /* 1: cancel, then release: the lock skips the cancelled waiter 0. */
    SOFT(corio_lock_acquire(&c->lock) == 0);
    start_waiters(c, 0, 2);
    SOFT(corio_cancel(c->w[0].task) == 0);
    SOFT(corio_lock_release(&c->lock) == 0);
    join_waiters(c, 0, 2);
    /* 2: the cancelled waiter 2 is the only one: the lock is free at once. */
    SOFT(corio_lock_acquire(&c->lock) == 0);
    start_waiters(c, 2, 3);
    SOFT(corio_cancel(c->w[2].task) == 0);
    SOFT(corio_lock_release(&c->lock) == 0);
    c->r[0] = corio_lock_locked(&c->lock);
    c->r[1] = corio_lock_try_acquire(&c->lock); /* before waiter 2 ran again */
    /* 3: release, then cancel: the hand-off to waiter 3 already happened, so
     * its acquire succeeds and its next await fails; 4 gets the lock next. */
    start_waiters(c, 3, 5);
    SOFT(corio_lock_release(&c->lock) == 0);
    SOFT(corio_cancel(c->w[3].task) == 0);
    join_waiters(c, 2, 5);
    return 0;
}

static void test_lock_cancel_and_release_same_iteration(void **state) {
    (void)state;
    lock_ctx c = {0};
    corio_test_run_checked(lock_race_main, &c);
    assert_int_equal(c.w[0].rc, CORIO_ECANCELED);
    assert_int_equal(c.w[1].rc, 0);
    assert_int_equal(c.w[2].rc, CORIO_ECANCELED);
    assert_false(c.r[0]);
    assert_int_equal(c.r[1], 0);
    assert_int_equal(c.w[3].rc, 0);
    assert_int_equal(c.w[3].after_rc, CORIO_ECANCELED);
    assert_int_equal(c.w[4].rc, 0);
    assert_int_equal(c.w[4].after_rc, 0);
    assert_order(c, 1, 3, 4); /* no waiter cancelled before the hand-off owned it */
    assert_false(corio_lock_locked(&c.lock));
}

static int lock_timeout_main(void *arg) {
    lock_ctx *c = arg;
    corio_lock_init(&c->lock);
    SOFT(corio_lock_acquire(&c->lock) == 0);
    c->w[0].timeout_ms = 20; /* times out; waiter 1 is queued behind it */
    start_waiters(c, 0, 2);
    join_waiters(c, 0, 1);
    c->r[0] = corio_lock_locked(&c->lock);
    SOFT(corio_lock_release(&c->lock) == 0);
    join_waiters(c, 1, 2);
    return 0;
}

static void test_lock_acquire_timeout_leaves_queue(void **state) {
    (void)state;
    lock_ctx c = {0};
    corio_test_run_checked(lock_timeout_main, &c);
    assert_int_equal(c.w[0].rc, CORIO_ETIMEDOUT);
    assert_true(c.r[0]); /* still the main task's */
    assert_int_equal(c.w[1].rc, 0);
    assert_order(c, 1);
    assert_false(corio_lock_locked(&c.lock));
}

/* ---- event ------------------------------------------------------------------- */

typedef struct event_ctx {
    corio_event ev;
    corio_task *task[3];
    int rc[3]; /* 1 until the wait returned */
    int woken_before_set, immediate_rc, other_ran, cleared_before_run;
    bool set_after_clear;
} event_ctx;

typedef struct event_waiter {
    event_ctx *c;
    int i;
} event_waiter;

static int event_waiter_fn(void *arg) {
    event_waiter *w = arg;
    w->c->rc[w->i] = corio_event_wait(&w->c->ev);
    return 0;
}

static int mark_ran(void *arg) {
    *(int *)arg = 1;
    return 0;
}

static int event_main(void *arg) {
    event_ctx *c = arg;
    event_waiter w[3] = {{c, 0}, {c, 1}, {c, 2}};
    corio_event_init(&c->ev);
    for (int i = 0; i < 3; i++) {
        c->rc[i] = 1;
        c->task[i] = corio_test_spawn("event waiter", event_waiter_fn, &w[i]);
    }
    settle(2);
    c->woken_before_set = (c->rc[0] != 1) + (c->rc[1] != 1) + (c->rc[2] != 1);
    corio_event_set(&c->ev);
    corio_event_clear(&c->ev); /* woken waiters still return 0 */
    c->cleared_before_run = !corio_event_is_set(&c->ev);
    for (int i = 0; i < 3; i++)
        SOFT(corio_test_join(c->task[i]) == 0);

    /* A set event: the wait returns without letting anything else run. */
    corio_event_set(&c->ev);
    corio_task *other = corio_test_spawn("other", mark_ran, &c->other_ran);
    c->immediate_rc = corio_event_wait(&c->ev);
    SOFT(c->other_ran == 0);
    SOFT(corio_test_join(other) == 0);

    /* Cleared again: waiters block until the next set. */
    corio_event_clear(&c->ev);
    c->rc[0] = 1;
    c->task[0] = corio_test_spawn("event waiter", event_waiter_fn, &w[0]);
    settle(3);
    SOFT(c->rc[0] == 1); /* still waiting */
    corio_event_set(&c->ev);
    SOFT(corio_test_join(c->task[0]) == 0);
    c->set_after_clear = corio_event_is_set(&c->ev);
    return 0;
}

static void test_event_set_wakes_all_and_clear(void **state) {
    (void)state;
    event_ctx c = {0};
    corio_test_run_checked(event_main, &c);
    assert_int_equal(c.woken_before_set, 0);
    assert_true(c.cleared_before_run);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.rc[i], 0);
    assert_int_equal(c.immediate_rc, 0);
    assert_int_equal(c.other_ran, 1);
    assert_true(c.set_after_clear);
}

static void set_from_callback(corio_future *f, void *data) {
    (void)f;
    corio_event_set(data); /* on the loop's stack, outside any task */
}

static int event_cancel_main(void *arg) {
    event_ctx *c = arg;
    event_waiter w[2] = {{c, 0}, {c, 1}};
    corio_event_init(&c->ev);
    for (int i = 0; i < 2; i++) {
        c->rc[i] = 1;
        c->task[i] = corio_test_spawn("event waiter", event_waiter_fn, &w[i]);
    }
    settle(2);
    SOFT(corio_cancel(c->task[0]) == 0);
    settle(2);
    c->woken_before_set = (c->rc[0] != 1) + (c->rc[1] != 1);
    corio_future *f = NULL;
    SOFT(corio_future_new(&f) == 0);
    SOFT(corio_future_add_done_cb(f, set_from_callback, &c->ev) == 0);
    SOFT(corio_future_resolve(f, NULL) == 0);
    corio_future_release(f);
    for (int i = 0; i < 2; i++)
        SOFT(corio_test_join(c->task[i]) == 0);
    return 0;
}

static void test_event_cancel_waiter(void **state) {
    (void)state;
    event_ctx c = {0};
    corio_test_run_checked(event_cancel_main, &c);
    assert_int_equal(c.woken_before_set, 1); /* the cancelled one only */
    assert_int_equal(c.rc[0], CORIO_ECANCELED);
    assert_int_equal(c.rc[1], 0); /* set by a done callback */
}

/* ---- semaphore --------------------------------------------------------------- */

typedef struct sem_ctx {
    corio_semaphore sem;
    int active, max_active, rounds;
    int order[8], n;
    corio_task *task[10];
    int rc[10];
    int try_after_release;
    size_t value_mid, value_end;
} sem_ctx;

typedef struct sem_worker {
    sem_ctx *c;
    int id;
} sem_worker;

static int sem_bounded_fn(void *arg) {
    sem_worker *w = arg;
    sem_ctx *c = w->c;
    for (int i = 0; i < 5; i++) {
        SOFT(corio_semaphore_acquire(&c->sem) == 0);
        if (++c->active > c->max_active)
            c->max_active = c->active;
        for (int y = 0; y <= w->id % 3; y++)
            SOFT(corio_yield() == 0);
        c->active--;
        c->rounds++;
        corio_semaphore_release(&c->sem);
    }
    return 0;
}

static int sem_bounded_main(void *arg) {
    sem_ctx *c = arg;
    sem_worker w[10];
    corio_semaphore_init(&c->sem, 3);
    for (int i = 0; i < 10; i++) {
        w[i] = (sem_worker){c, i};
        c->task[i] = corio_test_spawn("sem worker", sem_bounded_fn, &w[i]);
    }
    for (int i = 0; i < 10; i++)
        SOFT(corio_test_join(c->task[i]) == 0);
    c->value_end = corio_semaphore_value(&c->sem);
    return 0;
}

static void test_semaphore_bounds_concurrency(void **state) {
    (void)state;
    sem_ctx c = {0};
    corio_test_run_checked(sem_bounded_main, &c);
    assert_int_equal(c.max_active, 3);
    assert_int_equal(c.rounds, 50);
    assert_int_equal(c.value_end, 3);
}

/* Acquires once, records its id, gives the permit back. */
static int sem_once_fn(void *arg) {
    sem_worker *w = arg;
    w->c->rc[w->id] = corio_semaphore_acquire(&w->c->sem);
    if (w->c->rc[w->id] == 0) {
        w->c->order[w->c->n++] = w->id;
        corio_semaphore_release(&w->c->sem);
    }
    return 0;
}

static int sem_fifo_main(void *arg) {
    sem_ctx *c = arg;
    sem_worker w[5];
    corio_semaphore_init(&c->sem, 0);
    for (int i = 0; i < 4; i++) {
        w[i] = (sem_worker){c, i};
        c->task[i] = corio_test_spawn("sem waiter", sem_once_fn, &w[i]);
    }
    settle(2);
    corio_semaphore_release(&c->sem); /* straight to waiter 0 */
    c->value_mid = corio_semaphore_value(&c->sem);
    c->try_after_release = corio_semaphore_try_acquire(&c->sem);
    w[4] = (sem_worker){c, 4};
    c->task[4] = corio_test_spawn("newcomer", sem_once_fn, &w[4]);
    for (int i = 0; i < 5; i++)
        SOFT(corio_test_join(c->task[i]) == 0);
    c->value_end = corio_semaphore_value(&c->sem);
    return 0;
}

static void test_semaphore_fifo(void **state) {
    (void)state;
    sem_ctx c = {0};
    corio_test_run_checked(sem_fifo_main, &c);
    assert_int_equal(c.value_mid, 0);
    assert_int_equal(c.try_after_release, CORIO_EBUSY);
    assert_order(c, 0, 1, 2, 3, 4);
    assert_int_equal(c.value_end, 1);
}

static int sem_cancel_main(void *arg) {
    sem_ctx *c = arg;
    sem_worker w[3];
    corio_semaphore_init(&c->sem, 2);
    SOFT(corio_semaphore_try_acquire(&c->sem) == 0);
    SOFT(corio_semaphore_acquire(&c->sem) == 0);
    c->try_after_release = corio_semaphore_try_acquire(&c->sem); /* none left */
    for (int i = 0; i < 3; i++) {
        w[i] = (sem_worker){c, i};
        c->task[i] = corio_test_spawn("sem waiter", sem_once_fn, &w[i]);
    }
    settle(2);
    SOFT(corio_cancel(c->task[1]) == 0);
    settle(2);
    corio_semaphore_release(&c->sem); /* handed to waiter 0 */
    SOFT(corio_cancel(c->task[2]) == 0);
    corio_semaphore_release(&c->sem); /* cancelled in this iteration: kept */
    c->value_mid = corio_semaphore_value(&c->sem);
    for (int i = 0; i < 3; i++)
        SOFT(corio_test_join(c->task[i]) == 0);
    c->value_end = corio_semaphore_value(&c->sem);
    return 0;
}

static void test_semaphore_cancel_waiter_keeps_permits(void **state) {
    (void)state;
    sem_ctx c = {0};
    corio_test_run_checked(sem_cancel_main, &c);
    assert_int_equal(c.try_after_release, CORIO_EBUSY);
    assert_int_equal(c.rc[0], 0);
    assert_int_equal(c.rc[1], CORIO_ECANCELED);
    assert_int_equal(c.rc[2], CORIO_ECANCELED);
    assert_int_equal(c.value_mid, 1);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.value_end, 2);
}

/* ---- queue ------------------------------------------------------------------- */

#define ITEMS 10000
#define IT(n) ((void *)(uintptr_t)(n))

typedef struct queue_ctx {
    corio_queue *q, *q2, *q3;
    corio_task *task[4];
    int rc[4]; /* of the waiting tasks */
    void *got[4];
    int step; /* bumped by a task when its await returned */
    size_t received, max_size;
    int out_of_order, producer_rc, end_rc;
    int drained[4], n_drained;
    int r[8]; /* results of the main task's calls */
} queue_ctx;

typedef struct q_op {
    queue_ctx *c;
    int i;
    corio_queue *q;
    void *item;
    uint64_t timeout_ms;
} q_op;

static int q_put_fn(void *arg) {
    q_op *op = arg;
    op->c->rc[op->i] = corio_queue_put(op->q, op->item);
    op->c->step++;
    return 0;
}

static int q_get_fn(void *arg) {
    q_op *op = arg;
    CORIO_WITH(corio_timeout_scope(op->timeout_ms ? op->timeout_ms : 3600 * 1000))
    op->c->rc[op->i] = corio_queue_get(op->q, &op->c->got[op->i]);
    op->c->step++;
    return 0;
}

static int producer(void *arg) {
    queue_ctx *c = arg;
    for (uintptr_t i = 1; i <= ITEMS; i++) {
        int rc = corio_queue_put(c->q, IT(i));
        if (rc) {
            c->producer_rc = rc;
            break;
        }
        if (corio_queue_size(c->q) > c->max_size)
            c->max_size = corio_queue_size(c->q);
    }
    corio_queue_close(c->q);
    return 0;
}

static int queue_pc_main(void *arg) {
    queue_ctx *c = arg;
    SOFT(corio_queue_new(&c->q, 4) == 0);
    corio_task *p = corio_test_spawn("producer", producer, c);
    void *item;
    int rc;
    while ((rc = corio_queue_get(c->q, &item)) == 0) {
        if (item != IT(c->received + 1))
            c->out_of_order++;
        c->received++;
    }
    c->end_rc = rc;
    SOFT(corio_test_join(p) == 0);
    SOFT(corio_queue_free(c->q) == 0);
    return 0;
}

static void test_queue_10000_items_through_capacity_4(void **state) {
    (void)state;
    queue_ctx c = {0};
    corio_test_run_checked(queue_pc_main, &c);
    assert_int_equal(c.producer_rc, 0);
    assert_int_equal(c.received, ITEMS);
    assert_int_equal(c.out_of_order, 0);
    assert_true(c.max_size <= 4);
    assert_int_equal(c.end_rc, CORIO_ECLOSED);
}

static int queue_wait_main(void *arg) {
    queue_ctx *c = arg;
    void *item = NULL;
    SOFT(corio_queue_new(&c->q, 2) == 0);
    SOFT(corio_queue_capacity(c->q) == 2);
    c->rc[3] = corio_queue_try_get(c->q, &item); /* EAGAIN: empty */

    /* get awaits while empty. */
    q_op g = {c, 0, c->q, NULL, 0};
    c->task[0] = corio_test_spawn("getter", q_get_fn, &g);
    settle(3);
    SOFT(c->step == 0);
    SOFT(corio_queue_try_put(c->q, IT(7)) == 0); /* straight to the getter */
    SOFT(corio_queue_size(c->q) == 0);
    SOFT(corio_test_join(c->task[0]) == 0);

    /* put awaits while full, until a get makes room. */
    SOFT(corio_queue_try_put(c->q, IT(1)) == 0);
    SOFT(corio_queue_put(c->q, IT(2)) == 0);     /* room: no wait */
    c->rc[2] = corio_queue_try_put(c->q, IT(9)); /* EAGAIN: full */
    q_op p = {c, 1, c->q, IT(3), 0};
    c->task[1] = corio_test_spawn("putter", q_put_fn, &p);
    settle(3);
    SOFT(c->step == 1); /* the putter is still blocked */
    SOFT(corio_queue_size(c->q) == 2);
    SOFT(corio_queue_get(c->q, &item) == 0 && item == IT(1));
    SOFT(corio_queue_size(c->q) == 2); /* the putter's item moved in */
    SOFT(corio_test_join(c->task[1]) == 0);
    SOFT(corio_queue_try_get(c->q, &item) == 0 && item == IT(2));
    SOFT(corio_queue_try_get(c->q, &item) == 0 && item == IT(3));
    SOFT(corio_queue_free(c->q) == 0);
    return 0;
}

static void test_queue_backpressure_and_empty_wait(void **state) {
    (void)state;
    queue_ctx c = {0};
    corio_test_run_checked(queue_wait_main, &c);
    assert_int_equal(c.rc[0], 0);
    assert_ptr_equal(c.got[0], IT(7));
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], CORIO_EAGAIN);
    assert_int_equal(c.rc[3], CORIO_EAGAIN);
}

static int queue_close_main(void *arg) {
    queue_ctx *c = arg;
    SOFT(corio_queue_new(&c->q, 2) == 0);  /* full: putters wait */
    SOFT(corio_queue_new(&c->q2, 2) == 0); /* empty: getters wait */
    SOFT(corio_queue_try_put(c->q, IT(1)) == 0);
    SOFT(corio_queue_try_put(c->q, IT(2)) == 0);
    q_op ops[4] = {{c, 0, c->q, IT(3), 0},
                   {c, 1, c->q, IT(4), 0},
                   {c, 2, c->q2, NULL, 0},
                   {c, 3, c->q2, NULL, 0}};
    for (int i = 0; i < 4; i++)
        c->task[i] = corio_test_spawn("waiter", i < 2 ? q_put_fn : q_get_fn, &ops[i]);
    settle(2);
    corio_queue_close(c->q);
    corio_queue_close(c->q2);
    corio_queue_close(c->q2); /* idempotent */
    for (int i = 0; i < 4; i++)
        SOFT(corio_test_join(c->task[i]) == 0);
    SOFT(corio_queue_closed(c->q));
    void *item;
    int rc;
    while ((rc = corio_queue_get(c->q, &item)) == 0)
        c->drained[c->n_drained++] = (int)(uintptr_t)item;
    c->r[0] = rc;
    c->r[1] = corio_queue_try_get(c->q, &item);
    c->r[2] = corio_queue_put(c->q, IT(5));
    c->r[3] = corio_queue_try_put(c->q, IT(5));
    c->r[4] = corio_queue_free(c->q);
    c->r[5] = corio_queue_free(c->q2);
    return 0;
}

static void test_queue_close_wakes_everyone(void **state) {
    (void)state;
    queue_ctx c = {0};
    corio_test_run_checked(queue_close_main, &c);
    /* Every waiting putter and getter woken; 3 and 4 were never queued. */
    assert_ints(c.rc, 4, CORIO_ECLOSED, CORIO_ECLOSED, CORIO_ECLOSED, CORIO_ECLOSED);
    assert_ints(c.drained, c.n_drained, 1, 2); /* queued before the close */
    /* get, try_get, put, try_put after the close; free of both queues. */
    assert_ints(c.r, 6, CORIO_ECLOSED, CORIO_ECLOSED, CORIO_ECLOSED, CORIO_ECLOSED, 0, 0);
}

static int queue_cancel_getter_main(void *arg) {
    queue_ctx *c = arg;
    SOFT(corio_queue_new(&c->q, 2) == 0);
    q_op ops[3] = {{c, 0, c->q, NULL, 0}, {c, 1, c->q, NULL, 0}, {c, 2, c->q, NULL, 20}};
    c->task[0] = corio_test_spawn("getter", q_get_fn, &ops[0]);
    c->task[1] = corio_test_spawn("getter", q_get_fn, &ops[1]);
    settle(2);
    /* Cancel and put in the same iteration: the item skips getter 0. */
    SOFT(corio_cancel(c->task[0]) == 0);
    SOFT(corio_queue_try_put(c->q, IT(1)) == 0);
    SOFT(corio_queue_size(c->q) == 0);
    SOFT(corio_test_join(c->task[0]) == 0);
    SOFT(corio_test_join(c->task[1]) == 0);
    /* The only getter times out: the next item stays queued. */
    c->task[2] = corio_test_spawn("getter", q_get_fn, &ops[2]);
    SOFT(corio_test_join(c->task[2]) == 0);
    SOFT(corio_queue_put(c->q, IT(2)) == 0);
    SOFT(corio_queue_size(c->q) == 1);
    void *item = NULL;
    SOFT(corio_queue_try_get(c->q, &item) == 0 && item == IT(2));
    SOFT(corio_queue_free(c->q) == 0);
    return 0;
}

static void test_queue_cancelled_getter_loses_nothing(void **state) {
    (void)state;
    queue_ctx c = {0};
    corio_test_run_checked(queue_cancel_getter_main, &c);
    assert_int_equal(c.rc[0], CORIO_ECANCELED);
    assert_null(c.got[0]);
    assert_int_equal(c.rc[1], 0);
    assert_ptr_equal(c.got[1], IT(1));
    assert_int_equal(c.rc[2], CORIO_ETIMEDOUT);
    assert_null(c.got[2]);
}

static int queue_cancel_putter_main(void *arg) {
    queue_ctx *c = arg;
    SOFT(corio_queue_new(&c->q, 1) == 0);
    SOFT(corio_queue_try_put(c->q, IT(1)) == 0);
    q_op ops[2] = {{c, 0, c->q, IT(2), 0}, {c, 1, c->q, IT(3), 0}};
    c->task[0] = corio_test_spawn("putter", q_put_fn, &ops[0]);
    c->task[1] = corio_test_spawn("putter", q_put_fn, &ops[1]);
    settle(2);
    SOFT(corio_cancel(c->task[0]) == 0);
    void *item = NULL;
    SOFT(corio_queue_try_get(c->q, &item) == 0 && item == IT(1)); /* same iteration */
    SOFT(corio_queue_try_get(c->q, &item) == 0 && item == IT(3));
    c->rc[2] = corio_queue_try_get(c->q, &item); /* 2 never got in */
    for (int i = 0; i < 2; i++)
        SOFT(corio_test_join(c->task[i]) == 0);
    c->rc[3] = corio_queue_try_get(c->q, &item);
    SOFT(corio_queue_free(c->q) == 0);
    return 0;
}

static void test_queue_cancelled_putter_item_never_queued(void **state) {
    (void)state;
    queue_ctx c = {0};
    corio_test_run_checked(queue_cancel_putter_main, &c);
    assert_int_equal(c.rc[0], CORIO_ECANCELED);
    assert_int_equal(c.rc[1], 0);
    assert_int_equal(c.rc[2], CORIO_EAGAIN);
    assert_int_equal(c.rc[3], CORIO_EAGAIN);
}

static int queue_free_main(void *arg) {
    queue_ctx *c = arg;
    c->r[0] = corio_queue_new(&c->q3, 0);
    c->r[1] = corio_queue_new(&c->q2, SIZE_MAX);
    SOFT(corio_queue_new(&c->q, 1) == 0);
    q_op op = {c, 0, c->q, NULL, 0};
    c->task[0] = corio_test_spawn("getter", q_get_fn, &op);
    settle(2);
    c->r[2] = corio_queue_free(c->q);
    corio_queue_close(c->q);
    /* The waiter left the queue when woken, before it even runs again. */
    c->r[3] = corio_queue_free(c->q);
    SOFT(corio_test_join(c->task[0]) == 0);
    return 0;
}

static void test_queue_free_busy_and_invalid_capacity(void **state) {
    (void)state;
    queue_ctx c = {0};
    c.q3 = (corio_queue *)&c; /* must be reset to NULL */
    corio_test_run_checked(queue_free_main, &c);
    assert_int_equal(c.r[0], CORIO_EINVAL); /* capacity 0 */
    assert_null(c.q3);
    assert_int_equal(c.r[1], CORIO_EINVAL); /* capacity too large */
    assert_int_equal(c.r[2], CORIO_EBUSY);  /* a getter waits */
    assert_int_equal(c.r[3], 0);            /* closed: the getter left */
    assert_int_equal(c.rc[0], CORIO_ECLOSED);
}

/* ---- awaits outside a task ---------------------------------------------------------- */

/* Every awaiting call of each primitive, made where no task runs, with the
 * primitive in the state where the call would not even wait (a free lock, a
 * set event, a free permit, room and an item in the queue): each is
 * CORIO_ENOTASK and changes nothing. */
typedef struct notask_result {
    int lock_acquire, lock_try, event_wait_clear, event_wait_set, sem_acquire_free,
        sem_acquire_none, queue_put, queue_get;
    bool unchanged;
} notask_result;

typedef struct notask_ctx {
    corio_lock lock;
    corio_event clear_ev, set_ev;
    corio_semaphore free_sem, empty_sem;
    corio_queue *q;
    int item;
    notask_result outside_run, in_callback;
    uv_timer_t timer;
    corio_event timer_done;
} notask_ctx;

static void notask_prepare(notask_ctx *c) {
    corio_lock_init(&c->lock);
    corio_event_init(&c->clear_ev);
    corio_event_init(&c->set_ev);
    corio_event_set(&c->set_ev);
    corio_semaphore_init(&c->free_sem, 1);
    corio_semaphore_init(&c->empty_sem, 0);
}

static void notask_calls(notask_ctx *c, notask_result *r) {
    void *got = NULL;
    size_t queued = corio_queue_size(c->q);
    r->lock_acquire = corio_lock_acquire(&c->lock);
    r->lock_try = corio_lock_try_acquire(&c->lock);
    r->event_wait_clear = corio_event_wait(&c->clear_ev);
    r->event_wait_set = corio_event_wait(&c->set_ev);
    r->sem_acquire_free = corio_semaphore_acquire(&c->free_sem);
    r->sem_acquire_none = corio_semaphore_acquire(&c->empty_sem);
    r->queue_put = corio_queue_put(c->q, &c->item);
    r->queue_get = corio_queue_get(c->q, &got);
    r->unchanged = !corio_lock_locked(&c->lock) && corio_semaphore_value(&c->free_sem) == 1 &&
                   corio_semaphore_value(&c->empty_sem) == 0 && corio_queue_size(c->q) == queued &&
                   got == NULL;
}

static void notask_on_timer(uv_timer_t *h) {
    notask_ctx *c = h->data;
    notask_calls(c, &c->in_callback); /* on the loop's own stack */
    uv_close((uv_handle_t *)h, NULL);
    corio_event_set(&c->timer_done);
}

static int notask_main(void *arg) {
    notask_ctx *c = arg;
    corio_event_init(&c->timer_done);
    SOFT(uv_timer_init(corio_uv_loop(), &c->timer) == 0);
    c->timer.data = c;
    SOFT(uv_timer_start(&c->timer, notask_on_timer, 0, 0) == 0);
    return corio_event_wait(&c->timer_done);
}

static void assert_notask(const notask_result *r) {
    assert_int_equal(r->lock_acquire, CORIO_ENOTASK);
    assert_int_equal(r->lock_try, CORIO_ENOTASK);
    assert_int_equal(r->event_wait_clear, CORIO_ENOTASK);
    assert_int_equal(r->event_wait_set, CORIO_ENOTASK);
    assert_int_equal(r->sem_acquire_free, CORIO_ENOTASK);
    assert_int_equal(r->sem_acquire_none, CORIO_ENOTASK);
    assert_int_equal(r->queue_put, CORIO_ENOTASK);
    assert_int_equal(r->queue_get, CORIO_ENOTASK);
    assert_true(r->unchanged);
}

static void test_sync_awaits_outside_a_task_fail_with_enotask(void **state) {
    (void)state;
    notask_ctx c;
    memset(&c, 0, sizeof c);
    notask_prepare(&c);
    assert_int_equal(corio_queue_new(&c.q, 4), 0);
    assert_int_equal(corio_queue_try_put(c.q, &c.item), 0); /* an item to get, room to put */
    /* Outside corio_run. */
    notask_calls(&c, &c.outside_run);
    /* Inside corio_run, in a libuv callback. */
    corio_test_run_checked(notask_main, &c);
    assert_int_equal(corio_queue_free(c.q), 0);
    assert_notask(&c.outside_run);
    assert_notask(&c.in_callback);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_mutual_exclusion_across_yields),
        cmocka_unit_test(test_lock_fifo_and_no_overtaking),
        cmocka_unit_test(test_lock_try_acquire_and_misuse),
        cmocka_unit_test(test_lock_cancel_waiter_hands_lock_to_next),
        cmocka_unit_test(test_lock_cancel_and_release_same_iteration),
        cmocka_unit_test(test_lock_acquire_timeout_leaves_queue),
        cmocka_unit_test(test_event_set_wakes_all_and_clear),
        cmocka_unit_test(test_event_cancel_waiter),
        cmocka_unit_test(test_semaphore_bounds_concurrency),
        cmocka_unit_test(test_semaphore_fifo),
        cmocka_unit_test(test_semaphore_cancel_waiter_keeps_permits),
        cmocka_unit_test(test_queue_10000_items_through_capacity_4),
        cmocka_unit_test(test_queue_backpressure_and_empty_wait),
        cmocka_unit_test(test_queue_close_wakes_everyone),
        cmocka_unit_test(test_queue_cancelled_getter_loses_nothing),
        cmocka_unit_test(test_queue_cancelled_putter_item_never_queued),
        cmocka_unit_test(test_queue_free_busy_and_invalid_capacity),
        cmocka_unit_test(test_sync_awaits_outside_a_task_fail_with_enotask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
