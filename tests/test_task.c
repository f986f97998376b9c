/* Layer 2: the loop and tasks (loop.h, task.h): scheduling order, results,
 * sleep and yield, cancellation, shutdown, misuse, dumps and stack sizes.
 *
 * Tasks record what they saw into a state struct; the assertions run after
 * corio_run() returned (cmocka's longjmp out of a coroutine stack is best
 * avoided), and every test checks corio_run()'s own result.
 */
#define _GNU_SOURCE
#include "corio_test.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "runtime/internal.h"

#define KiB ((size_t)1024)
#define ARG(i) ((void *)(intptr_t)(i))

/* ---- helpers -------------------------------------------------------------------------- */

/* Sends this process's stderr into a memfd while a test provokes reports. */
typedef struct capture {
    int saved, fd;
    char text[8192];
} capture;

static void capture_begin(capture *c) {
    fflush(stderr);
    c->fd = memfd_create("corio-test-stderr", 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->fd >= 0 && c->saved >= 0);
    dup2(c->fd, STDERR_FILENO);
}

static const char *capture_end(capture *c) {
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    ssize_t n = pread(c->fd, c->text, sizeof c->text - 1, 0);
    c->text[n > 0 ? n : 0] = '\0';
    close(c->fd);
    return c->text;
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Spawns a task and returns the caller's reference (NULL on failure). */
static corio_task *spawn(const char *name, corio_task_fn fn, void *arg) {
    corio_task *t = NULL;
    corio_spawn(&t, name, fn, arg);
    return t;
}

/* Awaits t and drops the reference; CORIO_ENOMEM if spawning had failed. */
static int join(corio_task *t) {
    if (!t)
        return CORIO_ENOMEM;
    int rc = corio_await(t);
    corio_task_release(t);
    return rc;
}

static int return_arg(void *arg) {
    return (int)(intptr_t)arg;
}

/* An ordered log written by tasks. */
typedef struct order_log {
    int items[128], len;
} order_log;

static void log_put(order_log *l, int v) {
    if (l->len < (int)(sizeof l->items / sizeof l->items[0]))
        l->items[l->len++] = v;
}

/* ---- scheduling order, results ------------------------------------------------------------ */

typedef struct fifo_arg {
    order_log *log;
    int index;
} fifo_arg;

static int fifo_child(void *arg) {
    fifo_arg *a = arg;
    log_put(a->log, a->index);
    return 0;
}

static int fifo_main(void *arg) {
    order_log *log = arg;
    static fifo_arg args[6];
    int rc = 0;
    for (int i = 0; i < 6; i++) {
        args[i] = (fifo_arg){log, i};
        if (i < 3) /* three with a handle dropped at once: the loop keeps its own */
            corio_task_release(spawn("fifo", fifo_child, &args[i]));
        else /* three detached */
            rc |= corio_spawn(NULL, "fifo", fifo_child, &args[i]);
    }
    log_put(log, 100 + log->len); /* 100: spawning ran nothing */
    rc |= corio_yield();          /* all six run, in order, before we are back */
    log_put(log, 200);
    return rc;
}

static void test_spawn_is_fifo_and_runs_nothing_until_scheduled(void **state) {
    (void)state;
    order_log log = {0};
    corio_test_run(fifo_main, &log);
    int expect[] = {100, 0, 1, 2, 3, 4, 5, 200};
    assert_int_equal(log.len, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(log.items[i], expect[i]);
}

static void test_run_returns_main_result(void **state) {
    (void)state;
    corio_test_run_expect(return_arg, ARG(42), 42);
    corio_test_run_expect(return_arg, ARG(CORIO_EPIPE), CORIO_EPIPE);
}

typedef struct result_state {
    int via_task, via_future, failed, after_result;
    bool done_before, done_after;
    char main_name[48], anon[48], expect_anon[48], longname[64];
    uint64_t id_a, id_b;
} result_state;

static int result_main(void *arg) {
    result_state *st = arg;
    corio_task *a = spawn(NULL, return_arg, ARG(7));
    corio_task *b =
        spawn("0123456789012345678901234567890123456789-abcdefghij", return_arg, ARG(CORIO_EPIPE));
    if (!a || !b)
        return -1;
    st->done_before = corio_task_done(a);
    st->via_task = corio_await(a);
    st->via_future = corio_await(corio_task_future(a)); /* joining twice is fine */
    st->failed = corio_await(corio_task_future(b));
    st->done_after = corio_task_done(a) && corio_future_done(corio_task_future(b));
    st->after_result = corio_future_result(corio_task_future(a));
    snprintf(st->main_name, sizeof st->main_name, "%s", corio_task_name(corio_current()));
    snprintf(st->anon, sizeof st->anon, "%s", corio_task_name(a));
    snprintf(st->expect_anon, sizeof st->expect_anon, "task-%llu",
             (unsigned long long)corio_task_id(a));
    snprintf(st->longname, sizeof st->longname, "%s", corio_task_name(b));
    st->id_a = corio_task_id(a);
    st->id_b = corio_task_id(b);
    corio_task_release(a);
    corio_task_release(b);
    return 0;
}

static void test_task_result_name_and_id(void **state) {
    (void)state;
    result_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(result_main, &st);
    assert_false(st.done_before);
    assert_int_equal(st.via_task, 7);
    assert_int_equal(st.via_future, 7);
    assert_int_equal(st.failed, CORIO_EPIPE);
    assert_true(st.done_after);
    assert_int_equal(st.after_result, 7);
    assert_string_equal(st.main_name, "main");
    assert_string_equal(st.anon, st.expect_anon);
    assert_int_equal(strlen(st.longname), 47); /* names are cut at 47 bytes */
    assert_true(st.id_a != 0 && st.id_b > st.id_a);
}

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

static int ordered_sleeper(void *arg) {
    int ms = (int)(intptr_t)arg;
    /* Due at the clock's reading now plus ms (the spawn loop may have taken
     * a while under valgrind, so durations alone do not order the deadlines). */
    ordered->deadline[ms] = corio_now() + (uint64_t)ms;
    int rc = corio_sleep((uint64_t)ms);
    if (rc == 0)
        log_put(&ordered->woke, ms);
    ordered->cancelled += rc == CORIO_ECANCELED;
    return 0;
}

static int sleep_order_main(void *arg) {
    ordered = arg;
    corio_task *ts[ORDERED];
    corio_future *fs[ORDERED];
    for (int i = 0; i < ORDERED; i++) { /* durations 1..100 ms, shuffled */
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
    for (int i = 1; i < st.woke.len; i++)
        assert_true(st.deadline[st.woke.items[i - 1]] <= st.deadline[st.woke.items[i]]);
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

/* ---- cancellation ----------------------------------------------------------------------- */

typedef struct cancel_state {
    int sleep_rc, sleep_again_rc, yield_rc, await_rc, reason, cancel_rc, join_rc, done_rc;
    bool cancelled_flag;
} cancel_state;

static int cancel_victim(void *arg) {
    cancel_state *st = arg;
    st->sleep_rc = corio_sleep(1000000);
    /* Sticky: every later await fails too. */
    st->sleep_again_rc = corio_sleep(1);
    st->yield_rc = corio_yield();
    corio_future *f;
    if (corio_future_new(&f) == 0) {
        st->await_rc = corio_await(f);
        corio_future_release(f);
    }
    st->reason = corio_task_cancel_reason(corio_current());
    st->cancelled_flag = corio_cancelled();
    return st->sleep_rc;
}

static int cancel_main(void *arg) {
    cancel_state *st = arg;
    corio_task *t = spawn("victim", cancel_victim, st);
    corio_yield(); /* the victim runs and parks in its sleep */
    st->cancel_rc = corio_cancel(t);
    st->join_rc = corio_await(t);
    st->done_rc = corio_cancel(t);
    corio_task_release(t);
    return 0;
}

static void test_cancel_sleeping_task_is_sticky_with_user_reason(void **state) {
    (void)state;
    cancel_state st = {0};
    corio_test_run(cancel_main, &st);
    assert_int_equal(st.cancel_rc, 0);
    assert_int_equal(st.sleep_rc, CORIO_ECANCELED);
    assert_int_equal(st.sleep_again_rc, CORIO_ECANCELED);
    assert_int_equal(st.yield_rc, CORIO_ECANCELED);
    assert_int_equal(st.await_rc, CORIO_ECANCELED);
    assert_int_equal(st.reason, CORIO_CANCEL_USER);
    assert_true(st.cancelled_flag);
    assert_int_equal(st.join_rc, CORIO_ECANCELED);
    assert_int_equal(st.done_rc, CORIO_EALREADY); /* cancelling a done task */
}

typedef struct reason_state {
    int first_await, reason_seen, reason_after, second_cancel_rc, join_rc;
    int shielded_sleep, after_shield, timed_out, timeout_then_cancel;
    bool cancelled_in_shield;
} reason_state;

static int first_await_reporter(void *arg) {
    reason_state *st = arg;
    st->first_await = corio_yield();
    st->reason_seen = corio_task_cancel_reason(corio_current());
    return 0;
}

static int shielded_victim(void *arg) {
    reason_state *st = arg;
    CORIO_WITH(corio_shield_scope()) {
        st->shielded_sleep = corio_sleep(30); /* the cancel arrives meanwhile */
        st->cancelled_in_shield = corio_cancelled();
    }
    st->after_shield = corio_yield(); /* not lost */
    return 0;
}

static int reason_main(void *arg) {
    reason_state *st = arg;
    /* Cancelled before it ever ran, with a reason (a second one is
     * ignored): its function never runs, and it ends cancelled. */
    st->first_await = 1; /* stays 1: first_await_reporter never runs */
    corio_task *t = spawn("early", first_await_reporter, st);
    corio_cancel_with(t, CORIO_CANCEL_SHUTDOWN);
    st->second_cancel_rc = corio_cancel(t);
    st->reason_after = corio_task_cancel_reason(t);
    st->join_rc = join(t);
    /* Cancelled while shielded. */
    t = spawn("shielded", shielded_victim, st);
    corio_yield();
    corio_cancel(t);
    join(t);
    /* Past a deadline and cancelled: the cancel wins. */
    CORIO_WITH(corio_timeout_scope(5)) {
        st->timed_out = corio_sleep(1000);
        corio_cancel(corio_current());
        st->timeout_then_cancel = corio_yield();
    }
    return 0;
}

static void test_cancel_reason_first_wins_and_shield_defers(void **state) {
    (void)state;
    reason_state st = {0};
    corio_test_run(reason_main, &st);
    assert_int_equal(st.second_cancel_rc, 0);
    assert_int_equal(st.first_await, 1);
    assert_int_equal(st.reason_seen, CORIO_CANCEL_NONE);
    assert_int_equal(st.reason_after, CORIO_CANCEL_SHUTDOWN);
    assert_string_equal(corio_cancel_reason_name(st.reason_after), "shutdown");
    assert_int_equal(st.join_rc, CORIO_ECANCELED);
    assert_int_equal(st.shielded_sleep, 0);
    assert_false(st.cancelled_in_shield); /* recorded, not in effect behind the shield */
    assert_int_equal(st.after_shield, CORIO_ECANCELED);
    assert_int_equal(st.timed_out, CORIO_ETIMEDOUT);
    assert_int_equal(st.timeout_then_cancel, CORIO_ECANCELED);
}

/* ---- shutdown -------------------------------------------------------------------------- */

#define LEFTOVERS 4

typedef struct shutdown_state {
    int started;
    int sleep_rc[LEFTOVERS], later_rc[LEFTOVERS], cleanup_rc[LEFTOVERS], reason[LEFTOVERS];
    bool cleaned[LEFTOVERS];
} shutdown_state;

static int leftover(void *arg) {
    shutdown_state *st = arg;
    int i = st->started++;
    st->sleep_rc[i] = corio_sleep(1000000);
    st->reason[i] = corio_task_cancel_reason(corio_current());
    st->later_rc[i] = corio_yield();
    CORIO_WITH(corio_shield_scope()) {
        st->cleanup_rc[i] = corio_sleep(5); /* cleanup that awaits */
    }
    st->cleaned[i] = true;
    return 0;
}

static int shutdown_main(void *arg) {
    for (int i = 0; i < LEFTOVERS - 1; i++)
        if (corio_spawn(NULL, "leftover", leftover, arg))
            return -1;
    corio_yield(); /* they park in their sleeps */
    /* One more that has not even started when main returns. */
    return corio_spawn(NULL, "leftover-late", leftover, arg);
}

static void test_shutdown_cancels_and_awaits_leftover_tasks(void **state) {
    (void)state;
    shutdown_state st = {0};
    corio_test_run(shutdown_main, &st);
    assert_int_equal(st.started, LEFTOVERS);
    for (int i = 0; i < LEFTOVERS; i++) {
        assert_int_equal(st.sleep_rc[i], CORIO_ECANCELED);
        assert_int_equal(st.reason[i], CORIO_CANCEL_SHUTDOWN);
        assert_int_equal(st.later_rc[i], CORIO_ECANCELED);
        assert_int_equal(st.cleanup_rc[i], 0);
        assert_true(st.cleaned[i]);
    }
}

static int stubborn(void *arg) {
    long *iterations = arg;
    CORIO_WITH(corio_shield_scope()) {
        for (;;) {
            (void)corio_sleep(10); /* ignores every error */
            (*iterations)++;
        }
    }
    return 0;
}

static int stubborn_main(void *arg) {
    int rc = corio_spawn(NULL, "stubborn", stubborn, arg);
    corio_yield();
    return rc;
}

static void test_task_ignoring_cancellation_makes_run_return_ebusy(void **state) {
    (void)state;
    long iterations = 0;
    corio_run_opts opts = {.shutdown_grace_ms = 200};
    capture cap;
    capture_begin(&cap);
    uint64_t t0 = mono_ms();
    int rc = corio_run_ex(&opts, stubborn_main, &iterations);
    uint64_t elapsed = mono_ms() - t0;
    const char *err = capture_end(&cap);
    assert_int_equal(rc, CORIO_EBUSY);
    assert_true(elapsed >= 199); /* the grace period, in whole loop milliseconds */
    assert_true(iterations > 0);
    if (!strstr(err, "task 'stubborn'") || !strstr(err, "did not end within 200 ms"))
        fail_msg("no report of the stuck task in:\n%s", err);
}

/* Stuck tasks awaiting each other and futures: abandoning one must undo its
 * await (no dangling waiter on a recycled stack, no leaked reference), so
 * that abandoning the next does not wake a freed task. */
#define STUCK_FUTURES 10 /* more than gather keeps on its stack */

typedef struct stuck_state {
    corio_task *a;
    corio_future *fs[STUCK_FUTURES];
    long spins;
    int a_result, a_callbacks;
} stuck_state;

static void note_abandoned(corio_future *f, void *data) {
    stuck_state *st = data;
    st->a_result = corio_future_result(f);
    st->a_callbacks++;
}

static int await_a_shielded(void *arg) {
    CORIO_WITH(corio_shield_scope()) {
        corio_await(((stuck_state *)arg)->a);
    }
    return 0;
}

static int gather_shielded(void *arg) {
    CORIO_WITH(corio_shield_scope()) {
        corio_gather(((stuck_state *)arg)->fs, STUCK_FUTURES);
    }
    return 0;
}

static int stuck_main(void *arg) {
    stuck_state *st = arg;
    /* The waiter first, so that it is abandoned before what it awaits. */
    if (corio_spawn(NULL, "awaits-a", await_a_shielded, st) ||
        corio_spawn(&st->a, "a", stubborn, &st->spins) ||
        corio_spawn(NULL, "gathers", gather_shielded, st) ||
        corio_future_add_done_cb(corio_task_future(st->a), note_abandoned, st))
        return -1;
    for (int i = 0; i < STUCK_FUTURES; i++)
        if (corio_future_new(&st->fs[i]))
            return -1;
    corio_yield(); /* all three park */
    corio_task_release(st->a);
    for (int i = 0; i < STUCK_FUTURES; i++)
        corio_future_release(st->fs[i]); /* the gather holds them now */
    return 0;
}

static void test_stuck_tasks_awaiting_each_other_are_abandoned_safely(void **state) {
    (void)state;
    stuck_state st;
    memset(&st, 0, sizeof st);
    corio_run_opts opts = {.shutdown_grace_ms = 50};
    capture cap;
    capture_begin(&cap);
    int rc = corio_run_ex(&opts, stuck_main, &st);
    const char *err = capture_end(&cap);
    assert_int_equal(rc, CORIO_EBUSY);
    assert_int_equal(count_of(err, "did not end within 50 ms"), 3);
    assert_int_equal(st.a_callbacks, 1); /* its done callback still ran */
    assert_int_equal(st.a_result, CORIO_ECANCELED);
    assert_non_null(strstr(err, "task 'awaits-a'"));
    assert_non_null(strstr(err, "task 'gathers'"));
}

/* ---- misuse -------------------------------------------------------------------------- */

typedef struct misuse_state {
    uv_timer_t timer, left_open, left_running; /* outlive main: closed later */
    corio_future *f;
    int cb_sleep, cb_yield, cb_await, cb_spawn, spawned_ran;
    int nested_rc, nested_ran, null_fn, self_await, cancel_null;
    bool cb_current_null;
} misuse_state;

static int mark_ran(void *arg) {
    (*(int *)arg)++;
    return 0;
}

static void on_misuse_timer(uv_timer_t *h) {
    misuse_state *st = h->data;
    /* On the loop's own stack: no task runs here. */
    st->cb_current_null = corio_current() == NULL;
    st->cb_sleep = corio_sleep(1);
    st->cb_yield = corio_yield();
    st->cb_await = corio_await(st->f);
    /* Spawning is allowed from a libuv callback. */
    st->cb_spawn = corio_spawn(NULL, "from-callback", mark_ran, &st->spawned_ran);
    corio_future_resolve(st->f, NULL);
    uv_close((uv_handle_t *)h, NULL);
}

static int misuse_main(void *arg) {
    misuse_state *st = arg;
    st->null_fn = corio_spawn(NULL, "null", NULL, NULL);
    st->self_await = corio_await(corio_current());
    st->cancel_null = corio_cancel(NULL);
    st->nested_rc = corio_run(mark_ran, &st->nested_ran);
    if (corio_future_new(&st->f))
        return -1;
    uv_timer_init(corio_uv_loop(), &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, on_misuse_timer, 1, 0);
    int rc = corio_await(st->f);
    corio_future_release(st->f);
    corio_yield(); /* the task spawned by the callback runs */
    return rc;
}

static void test_misuse_outside_tasks_and_nested_run_are_rejected(void **state) {
    (void)state;
    misuse_state st;
    memset(&st, 0, sizeof st);
    capture cap;
    capture_begin(&cap);
    /* Outside corio_run. */
    int out_sleep = corio_sleep(1), out_yield = corio_yield();
    int out_await = corio_future_await(NULL);
    corio_task *t = (corio_task *)&st; /* must be reset to NULL */
    int out_spawn = corio_spawn(&t, "x", mark_ran, NULL);
    corio_future *f = NULL;
    int out_future = corio_future_new(&f);
    bool nothing = !corio_current() && !corio_now() && !corio_uv_loop() && !corio_cancelled();
    int rc = corio_run(misuse_main, &st);
    const char *err = capture_end(&cap);
    assert_int_equal(rc, 0);
    assert_int_equal(out_sleep, CORIO_ENOTASK);
    assert_int_equal(out_yield, CORIO_ENOTASK);
    assert_int_equal(out_await, CORIO_ENOTASK);
    assert_int_equal(out_spawn, CORIO_ENOTASK);
    assert_null(t);
    assert_int_equal(out_future, CORIO_ENOTASK);
    assert_true(nothing);
    /* Inside corio_run, on the loop's stack. */
    assert_true(st.cb_current_null);
    assert_int_equal(st.cb_sleep, CORIO_ENOTASK);
    assert_int_equal(st.cb_yield, CORIO_ENOTASK);
    assert_int_equal(st.cb_await, CORIO_ENOTASK);
    assert_int_equal(st.cb_spawn, 0);
    assert_int_equal(st.spawned_ran, 1);
    /* Inside a task. */
    assert_int_equal(st.null_fn, CORIO_EINVAL);
    assert_int_equal(st.self_await, CORIO_EINVAL);
    assert_int_equal(st.cancel_null, CORIO_EINVAL);
    assert_int_equal(st.nested_rc, CORIO_EBUSY);
    assert_int_equal(st.nested_ran, 0);
    assert_true(count_of(err, "called outside a corio task") >= 6);
    assert_non_null(strstr(err, "corio_run called while a corio loop runs"));
}

static void never_fires(uv_timer_t *h) {
    (void)h;
    abort();
}

static int leave_handles_open(void *arg) {
    misuse_state *st = arg;
    uv_timer_init(corio_uv_loop(), &st->left_open);
    uv_timer_init(corio_uv_loop(), &st->left_running);
    uv_timer_start(&st->left_running, never_fires, 1000000, 1000000);
    return 0;
}

static void test_open_uv_handle_makes_run_return_ebusy(void **state) {
    (void)state;
    misuse_state st;
    memset(&st, 0, sizeof st);
    capture cap;
    capture_begin(&cap);
    int rc = corio_run(leave_handles_open, &st);
    const char *err = capture_end(&cap);
    assert_int_equal(rc, CORIO_EBUSY);
    assert_int_equal(count_of(err, "a libuv handle (timer) was left open"), 2);
    corio_test_run(return_arg, NULL); /* nothing was left behind */
}

/* ---- dump ------------------------------------------------------------------------------ */

typedef struct dump_state {
    int listed, listed_after;
    char text[4096];
} dump_state;

static int dump_sleeper(void *arg) {
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(1000000)) {
        rc = corio_sleep(1000000);
    }
    return rc == (int)(intptr_t)arg ? 0 : -1;
}

static int dump_main(void *arg) {
    dump_state *st = arg;
    corio_task *sleeper = spawn("dump-sleeper", dump_sleeper, ARG(CORIO_ECANCELED));
    corio_yield(); /* the sleeper parks */
    corio_task *fresh = spawn("dump-fresh", return_arg, NULL);
    int fd = memfd_create("dump", 0);
    if (fd < 0)
        return -1;
    st->listed = corio_tasks_dump(fd);
    corio_cancel(sleeper);
    st->listed_after = corio_tasks_dump(fd);
    ssize_t n = pread(fd, st->text, sizeof st->text - 1, 0);
    st->text[n > 0 ? n : 0] = '\0';
    close(fd);
    int rc = join(sleeper);
    return rc | join(fresh);
}

static void test_tasks_dump_lists_live_tasks(void **state) {
    (void)state;
    dump_state st = {0};
    corio_test_run(dump_main, &st);
    assert_int_equal(st.listed, 3);
    assert_int_equal(st.listed_after, 3);
    const char *expect[] = {
        "3 live task(s)", "main",       "running",    "dump-sleeper", "waiting",
        "on sleep",       "in timeout", "dump-fresh", "ready",        "(cancelled: user)"};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        if (!strstr(st.text, expect[i]))
            fail_msg("no '%s' in the dump:\n%s", expect[i], st.text);
}

/* ---- stack sizes ----------------------------------------------------------------------- */

typedef struct stack_state {
    size_t big_stack, default_stack, main_stack;
    int big_rc;
} stack_state;

static size_t my_stack_size(void) {
    const corio__stack *s = corio_current()->stack;
    return s->map_size - corio__guard_size();
}

static int stack_hungry(void *arg) {
    volatile unsigned char buf[200 * 1024];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)i;
    ((stack_state *)arg)->big_stack = my_stack_size();
    return buf[sizeof buf - 1];
}

static int default_stack(void *arg) {
    ((stack_state *)arg)->default_stack = my_stack_size();
    return 0;
}

static int stack_main(void *arg) {
    stack_state *st = arg;
    st->main_stack = my_stack_size();
    corio_task *big, *dflt;
    corio_spawn_opts opts = {.name = "hungry", .stack_size = 512 * KiB};
    if (corio_spawn_ex(&big, &opts, stack_hungry, st) ||
        corio_spawn_ex(&dflt, NULL, default_stack, st))
        return -1;
    st->big_rc = join(big);
    return join(dflt);
}

static void test_spawn_stack_size_is_honoured(void **state) {
    (void)state;
    stack_state st = {0};
    corio_run_opts opts = {.stack_size = 100 * KiB + 1}; /* rounded up to pages */
    assert_int_equal(corio_run_ex(&opts, stack_main, &st), 0);
    assert_int_equal(st.big_rc, (unsigned char)(200 * 1024 - 1));
    assert_int_equal(st.big_stack, 512 * KiB);
    assert_int_equal(st.main_stack, corio__stack_round(100 * KiB + 1));
    assert_int_equal(st.default_stack, corio__stack_round(100 * KiB + 1));
}

static size_t saved_default;

static int restore_default_stack_size(void **state) {
    (void)state;
    if (saved_default)
        corio_stack_size_set_default(saved_default);
    return 0;
}

static void test_stack_size_set_default_rejects_bad_sizes(void **state) {
    (void)state;
    saved_default = corio_stack_size_default();
    assert_true(saved_default >= 64 * KiB);
    assert_int_equal(corio_stack_size_set_default(0), CORIO_EINVAL);
    assert_int_equal(corio_stack_size_set_default(16 * KiB - 1), CORIO_EINVAL);
    assert_int_equal(corio_stack_size_set_default(((size_t)1 << 30) + 1), CORIO_EINVAL);
    assert_int_equal(corio_stack_size_default(), saved_default); /* unchanged */
    assert_int_equal(corio_stack_size_set_default((size_t)1 << 30), 0);
    assert_int_equal(corio_stack_size_set_default(16 * KiB), 0);
    assert_int_equal(corio_stack_size_default(), 16 * KiB);
    assert_int_equal(corio_stack_size_set_default(saved_default + 1), 0);
    assert_int_equal(corio_stack_size_default(), corio__stack_round(saved_default + 1));
    /* A run without options uses the new default. */
    stack_state st = {0};
    corio_test_run(default_stack, &st);
    assert_int_equal(st.default_stack, corio__stack_round(saved_default + 1));
}

/* ---- references ----------------------------------------------------------------------- */

typedef struct retain_state {
    bool same, null_ok, done;
    int result, ran_unreferenced;
    char name[16];
} retain_state;

static int return_five(void *arg) {
    (void)arg;
    corio_yield();
    return 5;
}

static int retain_main(void *arg) {
    retain_state *st = arg;
    corio_task *t;
    if (corio_spawn(&t, "retained", return_five, NULL))
        return -1;
    st->same = corio_task_retain(t) == t;
    corio_task_release(t); /* the spawn's reference: the retained one keeps t */
    corio_await(t);
    corio_yield(); /* were that the last reference, t would be freed by now */
    st->done = corio_task_done(t);
    st->result = corio_future_result(corio_task_future(t));
    snprintf(st->name, sizeof st->name, "%s", corio_task_name(t));
    corio_task_release(t); /* the last: freed (valgrind and ASan see a leak or a double free) */
    st->null_ok = corio_task_retain(NULL) == NULL;
    corio_task_release(NULL);
    /* Every reference dropped before the task ran: it still runs to its end. */
    corio_task *u;
    if (corio_spawn(&u, "unreferenced", mark_ran, &st->ran_unreferenced))
        return -1;
    corio_task_release(corio_task_retain(u));
    corio_task_release(u);
    return corio_yield();
}

static void test_task_retain_keeps_an_ended_task_until_released(void **state) {
    (void)state;
    retain_state st = {0};
    corio_test_run(retain_main, &st);
    assert_true(st.same);
    assert_true(st.done);
    assert_int_equal(st.result, 5);
    assert_string_equal(st.name, "retained");
    assert_true(st.null_ok);
    assert_int_equal(st.ran_unreferenced, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_is_fifo_and_runs_nothing_until_scheduled),
        cmocka_unit_test(test_run_returns_main_result),
        cmocka_unit_test(test_task_result_name_and_id),
        cmocka_unit_test(test_ten_thousand_sleeping_tasks_all_finish),
        cmocka_unit_test(test_sleepers_wake_in_deadline_order),
        cmocka_unit_test(test_yield_interleaves_tasks_in_order),
        cmocka_unit_test(test_sleep_takes_at_least_its_time),
        cmocka_unit_test(test_yield_loop_does_not_starve_timers),
        cmocka_unit_test(test_loops_on_two_threads_are_independent),
        cmocka_unit_test(test_cancel_sleeping_task_is_sticky_with_user_reason),
        cmocka_unit_test(test_cancel_reason_first_wins_and_shield_defers),
        cmocka_unit_test(test_shutdown_cancels_and_awaits_leftover_tasks),
        cmocka_unit_test(test_task_ignoring_cancellation_makes_run_return_ebusy),
        cmocka_unit_test(test_stuck_tasks_awaiting_each_other_are_abandoned_safely),
        cmocka_unit_test(test_misuse_outside_tasks_and_nested_run_are_rejected),
        cmocka_unit_test(test_open_uv_handle_makes_run_return_ebusy),
        cmocka_unit_test(test_tasks_dump_lists_live_tasks),
        cmocka_unit_test(test_spawn_stack_size_is_honoured),
        cmocka_unit_test(test_task_retain_keeps_an_ended_task_until_released),
        cmocka_unit_test_teardown(test_stack_size_set_default_rejects_bad_sizes,
                                  restore_default_stack_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
