/* SPDX-License-Identifier: MIT */
/* Layer 2: the loop's timing (loop.h, task.h): ten thousand sleepers,
 * timers in deadline order, yield order and fairness towards timers, and
 * independent loops on two threads.
 *
 * Tasks record what they saw into a state struct; the assertions run after
 * corio_run() returned (cmocka's longjmp out of a coroutine stack is best
 * avoided), and every test checks corio_run()'s own result.
 */
#define _GNU_SOURCE
#include "corio_test.h"
#include "task_helpers.h"

#include <pthread.h>

/* ---- many tasks, sleep, yield ------------------------------------------------------------- */

#define MANY 10000

static struct { int finished, errors, early; } many;

static int many_sleeper(void *arg) {
    uint64_t ms = 1 + (uint64_t)(uintptr_t)arg % 10, t0 = corio_now();
    int rc = corio_sleep(ms);
    many.errors += rc != 0;
    many.early += rc == 0 && corio_now() - t0 < ms;
    many.finished++;
    return rc;
}

static int many_main(void *arg) {
    (void)arg;
    corio_future **fs = calloc(MANY, sizeof *fs);
    if (!fs)
        return CORIO_ENOMEM;
    size_t n = 0;
    for (corio_task *t; n < MANY && (t = spawn(NULL, many_sleeper, ARG(n))) != NULL; n++)
        fs[n] = corio_task_future(t);
    int rc = n < MANY ? CORIO_ENOMEM : corio_gather(fs, MANY);
    for (size_t i = 0; i < n; i++)
        corio_future_release(fs[i]);
    free(fs);
    return rc;
}

static void test_ten_thousand_sleeping_tasks_all_finish(void **state) {
    (void)state;
    memset(&many, 0, sizeof many);
    corio_test_run(many_main, NULL);
    assert_int_equal(many.finished, MANY);
    assert_int_equal(many.errors, 0);
    assert_int_equal(many.early, 0);
}

/* Timers: sleepers wake in deadline order, also with timers removed from the
 * middle of the heap by cancellations. */
#define ORDERED 100

typedef struct sleep_order {
    order_log woke;
    uint64_t deadline[ORDERED + 1]; /* by duration: when each was due */
    int cancelled;
} sleep_order;

static sleep_order *ordered;

/* Sleeper k sleeps k * SPACING_MS: deadlines SPACING_MS apart. */
#define SPACING_MS 5

static int ordered_sleeper(void *arg) {
    int k = (int)(intptr_t)arg;
    uint64_t ms = (uint64_t)k * SPACING_MS;
    /* Due at the clock's reading now plus ms (the spawn loop may have taken
     * a while under valgrind, so durations alone do not order the deadlines). */
    ordered->deadline[k] = corio_now() + ms;
    int rc = corio_sleep(ms);
    if (rc == 0)
        log_put(&ordered->woke, k);
    ordered->cancelled += rc == CORIO_ECANCELED;
    return 0;
}

static int sleep_order_main(void *arg) {
    ordered = arg;
    corio_task *ts[ORDERED];
    corio_future *fs[ORDERED];
    for (int i = 0; i < ORDERED; i++) { /* sleepers 1..100, shuffled */
        ts[i] = spawn("sleeper", ordered_sleeper, ARG((i * 37) % ORDERED + 1));
        fs[i] = corio_task_future(ts[i]);
    }
    corio_yield(); /* all park */
    for (int i = 0; i < ORDERED; i++)
        if (((i * 37) % ORDERED + 1) % 7 == 0)
            corio_cancel(ts[i]);
    int rc = corio_wait_all(fs, ORDERED);
    for (int i = 0; i < ORDERED; i++)
        corio_future_release(fs[i]);
    return rc;
}

static void test_sleepers_wake_in_deadline_order(void **state) {
    (void)state;
    sleep_order st;
    memset(&st, 0, sizeof st);
    corio_test_run(sleep_order_main, &st);
    assert_int_equal(st.cancelled, ORDERED / 7);
    assert_int_equal(st.woke.len, ORDERED - ORDERED / 7);
    /* corio_sleep reads the clock again after the sleeper recorded its
     * deadline: milliseconds may pass between the two reads (under valgrind
     * on a busy machine they did), so a recorded deadline may be early, by
     * less than the spacing unless the process lost its CPU that long. */
    for (int i = 1; i < st.woke.len; i++)
        assert_true(st.deadline[st.woke.items[i - 1]] <=
                    st.deadline[st.woke.items[i]] + SPACING_MS - 1);
}

typedef struct yield_arg {
    order_log *log;
    int tag, rc;
} yield_arg;

static int yielder(void *arg) {
    yield_arg *a = arg;
    for (int i = 0; i < 4; i++) {
        log_put(a->log, a->tag);
        a->rc |= corio_yield();
    }
    return 0;
}

static int yield_main(void *arg) {
    yield_arg a = {arg, 'A', 0}, b = {arg, 'B', 0};
    corio_task *ta = spawn("A", yielder, &a), *tb = spawn("B", yielder, &b);
    int rc = join(ta);
    rc |= join(tb);
    return rc ? rc : a.rc | b.rc;
}

static void test_yield_interleaves_tasks_in_order(void **state) {
    (void)state;
    order_log log = {0};
    corio_test_run(yield_main, &log);
    assert_int_equal(log.len, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(log.items[i], i % 2 ? 'B' : 'A');
}

typedef struct sleep_state {
    uint64_t elapsed[3];
    int rc[3];
} sleep_state;

static int sleep_main(void *arg) {
    sleep_state *st = arg;
    static const uint64_t ms[3] = {0, 1, 50};
    for (int i = 0; i < 3; i++) {
        uint64_t t0 = corio_now();
        st->rc[i] = corio_sleep(ms[i]);
        st->elapsed[i] = corio_now() - t0;
    }
    return 0;
}

static void test_sleep_takes_at_least_its_time(void **state) {
    (void)state;
    sleep_state st = {0};
    corio_test_run(sleep_main, &st);
    for (int i = 0; i < 3; i++)
        assert_int_equal(st.rc[i], 0);
    assert_true(st.elapsed[1] >= 1);
    assert_true(st.elapsed[2] >= 50);
}

/* A task yielding in a loop must not keep timers (and I/O) from running. */
typedef struct starve_state {
    bool timer_fired, gave_up;
} starve_state;

static int busy_yielder(void *arg) {
    starve_state *st = arg;
    uint64_t start = mono_ms();
    for (long n = 1; !st->timer_fired; n++) {
        corio_yield();
        if (n % 1024 == 0 && mono_ms() - start > 20000) {
            st->gave_up = true; /* starved: fail instead of hanging */
            break;
        }
    }
    return 0;
}

static int starve_sleeper(void *arg) {
    int rc = corio_sleep(20);
    ((starve_state *)arg)->timer_fired = true;
    return rc;
}

static int starve_main(void *arg) {
    corio_task *a = spawn("busy", busy_yielder, arg), *b = spawn("sleeper", starve_sleeper, arg);
    int rc = join(a);
    return rc | join(b);
}

static void test_yield_loop_does_not_starve_timers(void **state) {
    (void)state;
    starve_state st = {0};
    corio_test_run(starve_main, &st);
    assert_true(st.timer_fired);
    assert_false(st.gave_up);
}

/* Each thread runs a loop of its own. */
typedef struct thread_loop {
    pthread_t tid;
    pthread_barrier_t *both_running;
    void *uv;
    int rc, done;
} thread_loop;

static int counting_sleeper(void *arg) {
    int rc = corio_sleep(1);
    if (rc == 0)
        rc = corio_yield();
    ((thread_loop *)arg)->done += rc == 0;
    return rc;
}

static int thread_loop_main(void *arg) {
    thread_loop *tl = arg;
    tl->uv = corio_uv_loop();
    pthread_barrier_wait(tl->both_running); /* the two loops overlap */
    corio_task *ts[50];
    for (int i = 0; i < 50; i++)
        ts[i] = spawn("counter", counting_sleeper, tl);
    int rc = 0;
    for (int i = 0; i < 50; i++)
        rc |= join(ts[i]);
    return rc ? rc : tl->done;
}

static void *run_thread_loop(void *arg) {
    thread_loop *tl = arg;
    tl->rc = corio_run(thread_loop_main, tl);
    return NULL;
}

static void test_loops_on_two_threads_are_independent(void **state) {
    (void)state;
    thread_loop tl[2];
    memset(tl, 0, sizeof tl);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, 2);
    for (int i = 0; i < 2; i++) {
        tl[i].both_running = &barrier;
        assert_int_equal(pthread_create(&tl[i].tid, NULL, run_thread_loop, &tl[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(tl[i].tid, NULL);
    pthread_barrier_destroy(&barrier);
    assert_int_equal(tl[0].rc, 50);
    assert_int_equal(tl[1].rc, 50);
    assert_ptr_not_equal(tl[0].uv, tl[1].uv);
    assert_null(corio_uv_loop()); /* none on this thread */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ten_thousand_sleeping_tasks_all_finish),
        cmocka_unit_test(test_sleepers_wake_in_deadline_order),
        cmocka_unit_test(test_yield_interleaves_tasks_in_order),
        cmocka_unit_test(test_sleep_takes_at_least_its_time),
        cmocka_unit_test(test_yield_loop_does_not_starve_timers),
        cmocka_unit_test(test_loops_on_two_threads_are_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
