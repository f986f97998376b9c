/* SPDX-License-Identifier: MIT */
/* Layer 2: tasks (task.h, loop.h): spawning order, results, names and
 * ids, references, misuse outside tasks, dumps, stack sizes, and a task's lazily
 * armed deadline timer (stale fires, the timers of ended tasks).  The loop's
 * timing (sleep, yield, timers, a loop per thread) is in test_loop.c,
 * cancellation and the end of corio_run in test_task_cancel.c.
 *
 * Tasks record what they saw into a state struct; the assertions run after
 * corio_run() returned (cmocka's longjmp out of a coroutine stack is best
 * avoided), and every test checks corio_run()'s own result.
 */
#define _GNU_SOURCE
#include "corio_test.h"
#include "task_helpers.h"

#include <uv.h>

#include "runtime/internal.h"

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

/* ---- the request id: inherited by spawned tasks, unless no_context ------------------- */

static int rid_child(void *arg) {
    const char **seen = arg;
    *seen = corio_current()->request_id;
    return 0;
}

static int rid_main(void *arg) {
    (void)arg;
    char id[] = "req-7";
    corio__task_set_request_id(corio_current(), id);
    const char *inherited = NULL, *background = "unset";
    corio_task *a = NULL, *b = NULL;
    assert_int_equal(corio_spawn(&a, "child", rid_child, &inherited), 0);
    corio_spawn_opts so = {.name = "keeper", .no_context = true};
    assert_int_equal(corio_spawn_ex(&b, &so, rid_child, &background), 0);
    id[0] = 'X'; /* the request's own buffer changes, or goes: the child has a copy */
    corio_await(a);
    corio_await(b);
    assert_non_null(inherited);
    assert_string_equal(inherited, "req-7");
    assert_null(background);
    corio_task_release(a);
    corio_task_release(b);
    corio__task_set_request_id(corio_current(), NULL);
    return 0;
}

static void test_request_id_inherited_unless_no_context(void **state) {
    (void)state;
    assert_int_equal(corio_run(rid_main, NULL), 0);
}

/* ---- the lazy deadline timer (12667a1) ------------------------------------------------------
 *
 * A task's timer is left armed when a park ends early; the next park moves
 * it only if it would fire too late; an early fire for a parked task arms it
 * again for that park's deadline (the visible scope deadline or the sleep's
 * wake time, whichever is first); a fire for a task that is not parked does
 * nothing; the timer is stopped when the task ends.  Each case runs in a
 * task of its own under a watchdog (a timeout scope around the main task's
 * await of it, on the main task's own timer): a lost wake-up cancels the
 * case instead of hanging.  Times are loop time (corio_now()); only lower
 * bounds are checked, and the watchdogs are generous. */

/* The heap entries that are neither the stack pool's timer nor the timer of
 * a live task: timers left behind by tasks that have ended.  Compares
 * addresses only (a stray entry points into freed memory). */
static size_t stray_timers(void) {
    corio_loop *L = corio__tls_loop;
    size_t n = 0;
    for (size_t i = 0; i < L->heap.len; i++) {
        const corio__timer *tm = L->heap.items[i];
        bool live = tm == &L->pool_timer;
        for (corio__link *k = L->tasks.next; !live && k != &L->tasks; k = k->next)
            live = tm == &corio__container_of(k, corio_task, all_link)->timer;
        n += !live;
    }
    return n;
}

static bool timer_in_heap(const corio__timer *tm) {
    corio_loop *L = corio__tls_loop;
    for (size_t i = 0; i < L->heap.len; i++)
        if (L->heap.items[i] == tm)
            return true;
    return false;
}

static bool own_timer_armed(void) {
    return corio__timer_armed(&corio_current()->timer);
}

static int set_event_task(void *arg) {
    corio_event_set(arg);
    return 0;
}

/* Parks the current task under corio_timeout_scope(ms) on an event that a
 * task spawned just before sets as soon as it runs: the park ends early,
 * and the task's timer is left armed for the scope's deadline.  True if it
 * went so (the setup every case below relies on). */
static bool park_woken_early(corio_event *e, uint64_t ms) {
    corio_event_init(e);
    if (corio_spawn(NULL, "lazy-setter", set_event_task, e) != 0)
        return false;
    int rc = -1;
    CORIO_WITH(corio_timeout_scope(ms)) {
        rc = corio_event_wait(e);
    }
    return rc == 0 && own_timer_armed();
}

typedef struct watched {
    corio_task_fn fn;
    void *arg;
    uint64_t ms;
    int rc;     /* the case task's result */
    bool fired; /* the watchdog cancelled it */
} watched;

static int watchdog_main(void *arg) {
    watched *w = arg;
    corio_task *t = spawn("lazy-case", w->fn, w->arg);
    if (!t)
        return -1;
    int rc = -1;
    CORIO_WITH(corio_timeout_scope(w->ms)) {
        rc = corio_await(t); /* cut short: t is cancelled (nobody else awaits it) */
    }
    w->fired = !corio_task_done(t);
    if (w->fired)
        rc = corio_await(t);
    w->rc = rc;
    corio_task_release(t);
    return 0;
}

static void watchdog_check(const watched *w) {
    if (w->fired)
        fail_msg("watchdog: the case was still running after %llu ms (a lost wake-up)",
                 (unsigned long long)w->ms);
    assert_int_equal(w->rc, 0);
}

/* Runs fn(arg) under a watchdog of ms; the caller checks what it recorded,
 * then watchdog_check(). */
static watched run_watched(corio_task_fn fn, void *arg, uint64_t ms) {
    watched w = {fn, arg, ms, -1, false};
    corio_test_run(watchdog_main, &w);
    return w;
}

/* 1. A stale timer, armed for an earlier park's deadline, fires while the
 * task waits for a later one: armed again, it neither cuts that wait short
 * nor loses it, whether the wait ends at a scope's deadline, at a sleep's
 * wake time, or at the earlier of the two.  And the other way round: an armed
 * timer that would fire too late is moved earlier by the next park. */
typedef struct stale_state {
    corio_event e, never;
    bool armed[4];
    int rc[4];
    uint64_t took[4];
} stale_state;

static int stale_case(void *arg) {
    stale_state *st = arg;
    corio_event_init(&st->never);
    uint64_t t0;
    /* a: armed at +20 ms; the event wait's deadline is at +150 ms */
    st->armed[0] = park_woken_early(&st->e, 20);
    t0 = corio_now();
    st->rc[0] = -1;
    CORIO_WITH(corio_timeout_scope(150)) {
        st->rc[0] = corio_event_wait(&st->never);
    }
    st->took[0] = corio_now() - t0;
    /* b: armed at +20 ms; a sleep of 100 ms, no deadline */
    st->armed[1] = park_woken_early(&st->e, 20);
    t0 = corio_now();
    st->rc[1] = corio_sleep(100);
    st->took[1] = corio_now() - t0;
    /* c: armed at +20 ms; a long sleep under a 120 ms deadline: the deadline first */
    st->armed[2] = park_woken_early(&st->e, 20);
    t0 = corio_now();
    st->rc[2] = -1;
    CORIO_WITH(corio_timeout_scope(120)) {
        st->rc[2] = corio_sleep(100000);
    }
    st->took[2] = corio_now() - t0;
    /* d: armed at +100 s; a sleep of 30 ms must not wait for it (the watchdog would end it) */
    st->armed[3] = park_woken_early(&st->e, 100000);
    t0 = corio_now();
    st->rc[3] = corio_sleep(30);
    st->took[3] = corio_now() - t0;
    return 0;
}

static void test_lazy_timer_stale_deadline_does_not_end_a_later_wait(void **state) {
    (void)state;
    stale_state st;
    memset(&st, 0, sizeof st);
    watched w = run_watched(stale_case, &st, 5000);
    static const int expect_rc[4] = {CORIO_ETIMEDOUT, 0, CORIO_ETIMEDOUT, 0};
    static const uint64_t at_least[4] = {150, 100, 120, 30};
    for (int i = 0; i < 4; i++) {
        if (!st.armed[i])
            fail_msg("phase %c: the early-woken park left no timer armed", 'a' + i);
        if (st.rc[i] != expect_rc[i] || st.took[i] < at_least[i])
            fail_msg("phase %c: %s after %llu ms, expected %s after %llu ms at least", 'a' + i,
                     corio_err_name(st.rc[i]), (unsigned long long)st.took[i],
                     corio_err_name(expect_rc[i]), (unsigned long long)at_least[i]);
    }
    watchdog_check(&w);
}

/* 2. A stale timer fires while the task waits with no deadline at all: the
 * wait goes on until what it waits for happens. */
typedef struct nodeadline_state {
    corio_event e, later;
    bool armed, fired_while_parked;
    int rc;
    uint64_t took;
} nodeadline_state;

static int set_later_task(void *arg) {
    nodeadline_state *st = arg;
    int rc = corio_sleep(150);
    corio_event_set(&st->later);
    return rc;
}

static int nodeadline_case(void *arg) {
    nodeadline_state *st = arg;
    corio_event_init(&st->later);
    st->armed = park_woken_early(&st->e, 20);
    uint64_t t0 = corio_now();
    corio_task *setter = spawn("lazy-later", set_later_task, st);
    st->rc = corio_event_wait(&st->later);
    st->took = corio_now() - t0;
    st->fired_while_parked = !own_timer_armed(); /* it fired at +20 ms and was not armed again */
    return join(setter);
}

static void test_lazy_timer_stale_deadline_does_not_wake_a_wait_without_one(void **state) {
    (void)state;
    nodeadline_state st;
    memset(&st, 0, sizeof st);
    watched w = run_watched(nodeadline_case, &st, 5000);
    assert_true(st.armed);
    if (st.rc != 0 || st.took < 150)
        fail_msg("the wait ended with %s after %llu ms, expected 0 after 150 ms at least",
                 corio_err_name(st.rc), (unsigned long long)st.took);
    assert_true(st.fired_while_parked);
    watchdog_check(&w);
}

/* 3. A stale timer fires while its task is ready (yielding round the loop):
 * nothing happens to the task, which goes on and ends normally, and its
 * next wait with a deadline times out as it should. */
typedef struct ready_state {
    corio_event e, never;
    bool armed, fired_while_ready;
    int yield_rc, wait_rc;
    long yields;
    uint64_t took;
} ready_state;

static int ready_case(void *arg) {
    ready_state *st = arg;
    corio_event_init(&st->never);
    st->armed = park_woken_early(&st->e, 5);
    uint64_t t0 = corio_now();
    while (corio_now() - t0 < 30) {
        st->yield_rc = corio_yield();
        if (st->yield_rc)
            break;
        st->yields++;
    }
    st->fired_while_ready = !own_timer_armed();
    t0 = corio_now();
    st->wait_rc = -1;
    CORIO_WITH(corio_timeout_scope(40)) {
        st->wait_rc = corio_event_wait(&st->never);
    }
    st->took = corio_now() - t0;
    return 42;
}

static int ready_main(void *arg) {
    ready_state *st = arg;
    int rc = join(spawn("lazy-ready", ready_case, st));
    return rc == 42 ? 0 : -1;
}

static void test_lazy_timer_firing_while_task_is_ready_does_nothing(void **state) {
    (void)state;
    ready_state st;
    memset(&st, 0, sizeof st);
    watched w = run_watched(ready_main, &st, 5000);
    watchdog_check(&w); /* and the task returned 42 */
    assert_true(st.armed);
    assert_int_equal(st.yield_rc, 0);
    assert_true(st.yields > 0);
    assert_true(st.fired_while_ready);
    assert_int_equal(st.wait_rc, CORIO_ETIMEDOUT);
    assert_true(st.took >= 40);
}

/* 4. Many tasks wait again and again under a deadline well ahead (their
 * timers stay armed across the waits), then end with their timers still
 * armed: every one ends, and none leaves its timer in the loop's heap. */
#define LAZY_TASKS 200
#define LAZY_ROUNDS 50

typedef struct many_state {
    corio_event ev[LAZY_TASKS];
    int done[LAZY_TASKS];
    int errors, finished, armed_at_end;
    size_t stray, heap_len, heap_expect, heap_peak;
} many_state;

typedef struct many_arg {
    many_state *st;
    int i;
} many_arg;

static many_arg many_args[LAZY_TASKS];

static int many_worker(void *arg) {
    many_arg *a = arg;
    many_state *st = a->st;
    for (int r = 0; r < LAZY_ROUNDS; r++) {
        int rc = -1;
        CORIO_WITH(corio_timeout_scope(1000)) {
            rc = corio_event_wait(&st->ev[a->i]);
        }
        st->errors += rc != 0;
        corio_event_clear(&st->ev[a->i]);
        st->done[a->i]++;
    }
    st->armed_at_end += own_timer_armed();
    st->finished++;
    return 0;
}

static int many_case(void *arg) {
    many_state *st = arg;
    corio_loop *L = corio__tls_loop;
    static corio_task *workers[LAZY_TASKS];
    int rc = 0;
    for (int i = 0; i < LAZY_TASKS; i++) {
        corio_event_init(&st->ev[i]);
        many_args[i] = (many_arg){st, i};
        workers[i] = spawn("lazy-worker", many_worker, &many_args[i]);
        if (!workers[i])
            return -1;
    }
    for (int r = 0; r < LAZY_ROUNDS; r++) {
        for (int i = 0; i < LAZY_TASKS; i++)
            corio_event_set(&st->ev[i]);
        for (;;) { /* until every worker has had round r */
            int behind = 0;
            for (int i = 0; i < LAZY_TASKS; i++)
                behind += st->done[i] <= r;
            if (!behind || (rc = corio_yield()) != 0)
                break;
        }
        if (rc)
            break;
        if (L->heap.len > st->heap_peak)
            st->heap_peak = L->heap.len;
    }
    for (int i = 0; i < LAZY_TASKS; i++)
        rc |= join(workers[i]);
    st->stray = stray_timers();
    st->heap_len = L->heap.len;
    st->heap_expect = corio__timer_armed(&L->pool_timer) + own_timer_armed() +
                      corio__timer_armed(&L->main_task->timer);
    return rc;
}

static void test_lazy_timers_of_many_ended_tasks_leave_the_heap(void **state) {
    (void)state;
    static many_state st;
    memset(&st, 0, sizeof st);
    watched w = run_watched(many_case, &st, 60000);
    watchdog_check(&w);
    assert_int_equal(st.finished, LAZY_TASKS);
    assert_int_equal(st.errors, 0);
    assert_true(st.armed_at_end > 0); /* they did end with their timers armed */
    assert_true(st.heap_peak >= LAZY_TASKS);
    assert_int_equal(st.stray, 0);
    assert_int_equal(st.heap_len, st.heap_expect); /* the pool's and the watchdog's at most */
}

/* 5. A task cancelled while parked with no deadline, its timer still armed
 * from an earlier park that ended early: it ends with ECANCELED, and its
 * timer leaves the heap. */
typedef struct cancel_state {
    corio_event e, never;
    bool armed, parked, armed_when_cancelled, armed_after, in_heap_after;
    int rc;
    size_t heap_before, heap_after, stray;
} cancel_state;

static int cancelled_task(void *arg) {
    cancel_state *st = arg;
    corio_event_init(&st->never);
    st->armed = park_woken_early(&st->e, 100000);
    st->parked = true;
    return corio_event_wait(&st->never);
}

static size_t heap_len_but_pool(void) {
    corio_loop *L = corio__tls_loop;
    return L->heap.len - corio__timer_armed(&L->pool_timer);
}

static int cancel_case(void *arg) {
    cancel_state *st = arg;
    st->heap_before = heap_len_but_pool();
    corio_task *t = spawn("lazy-cancelled", cancelled_task, st);
    if (!t)
        return -1;
    for (int i = 0; i < 100 && !(st->parked && t->state == CORIO__PARKED); i++)
        corio_yield();
    st->armed_when_cancelled = corio__timer_armed(&t->timer);
    corio_cancel(t);
    st->rc = corio_await(t);
    st->armed_after = corio__timer_armed(&t->timer); /* our reference keeps t */
    st->in_heap_after = timer_in_heap(&t->timer);
    st->heap_after = heap_len_but_pool();
    st->stray = stray_timers();
    corio_task_release(t);
    return 0;
}

static void test_lazy_timer_of_cancelled_task_leaves_the_heap(void **state) {
    (void)state;
    cancel_state st;
    memset(&st, 0, sizeof st);
    watched w = run_watched(cancel_case, &st, 5000);
    watchdog_check(&w);
    assert_true(st.armed);
    assert_true(st.parked);
    assert_true(st.armed_when_cancelled);
    assert_int_equal(st.rc, CORIO_ECANCELED);
    assert_false(st.armed_after);
    assert_false(st.in_heap_after);
    assert_int_equal(st.heap_after, st.heap_before);
    assert_int_equal(st.stray, 0);
}

/* ---- tasks run at once from a callback: fairness (corio__wake_now) --------------------------- */

/* A callback on the loop's stack runs parked tasks at once, one per source
 * (as a stream's read callback does for its reader).  Not twice in a row
 * for one source in one poll; again once another source ran in between;
 * and a task queued meanwhile runs after every EAGER_DRAIN (64) of them,
 * inside the callback, not only after it (one libuv poll can serve tens of
 * thousands of events). */
#define EAGER_N 200

typedef struct eager_case {
    corio_task *t[EAGER_N], *queued, *a, *b, *c;
    unsigned runs;              /* tasks run so far (after their park) */
    unsigned ran_at[EAGER_N];   /* runs when each ran, 0: not yet */
    unsigned queued_at, a_at, b_at, c_at;
    bool queued_in_cb, b_in_cb;
    bool all_at_once, a_at_once, c_at_once;
    bool in_cb;
    uv_timer_t timer;
} eager_case;

static eager_case *eager_st;

static int eager_parker(void *arg) {
    unsigned *at = arg;
    int rc = corio__park(corio_current(), CORIO__NO_DEADLINE, "eager test");
    *at = ++eager_st->runs;
    if (at == &eager_st->queued_at)
        eager_st->queued_in_cb = eager_st->in_cb;
    if (at == &eager_st->b_at)
        eager_st->b_in_cb = eager_st->in_cb;
    return rc;
}

static void on_eager_timer(uv_timer_t *h) {
    eager_case *st = h->data;
    int src[EAGER_N], x, y;
    st->in_cb = true;
    corio__wake(st->queued, 0); /* queued: runs only from the ready queue */
    st->all_at_once = true;
    for (int i = 0; i < EAGER_N; i++) {
        corio__wake_now(st->t[i], 0, &src[i]);
        if (!st->ran_at[i])
            st->all_at_once = false;
    }
    corio__wake_now(st->a, 0, &x);
    st->a_at_once = st->a_at != 0;
    corio__wake_now(st->b, 0, &x); /* x again, in a row: queued */
    corio__wake_now(st->c, 0, &y);
    st->c_at_once = st->c_at != 0;
    st->in_cb = false;
    uv_close((uv_handle_t *)h, NULL);
}

static int eager_main(void *arg) {
    eager_case *st = arg;
    eager_st = st;
    for (int i = 0; i < EAGER_N; i++)
        st->t[i] = spawn("eager", eager_parker, &st->ran_at[i]);
    st->queued = spawn("eager-queued", eager_parker, &st->queued_at);
    st->a = spawn("eager-a", eager_parker, &st->a_at);
    st->b = spawn("eager-b", eager_parker, &st->b_at);
    st->c = spawn("eager-c", eager_parker, &st->c_at);
    corio_yield(); /* every one of them has parked */
    uv_timer_init(corio_uv_loop(), &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, on_eager_timer, 0, 0);
    int rc = 0;
    for (int i = 0; i < EAGER_N; i++)
        rc |= join(st->t[i]);
    rc |= join(st->queued) | join(st->a) | join(st->b) | join(st->c);
    return rc;
}

static void test_wake_now_is_fair_to_queued_tasks_and_other_sources(void **state) {
    (void)state;
    eager_case st;
    memset(&st, 0, sizeof st);
    assert_int_equal(corio_run(eager_main, &st), 0);
    assert_true(st.all_at_once); /* 200 sources, each ran inside its wake */
    assert_true(st.queued_in_cb); /* ... and the queued one did not wait for them all */
    assert_true(st.queued_at < 2 * 64 + 1);
    assert_true(st.a_at_once);
    assert_false(st.b_in_cb); /* the same source in a row: queued, after the callback */
    assert_true(st.c_at_once);
    assert_true(st.b_at > st.c_at);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_id_inherited_unless_no_context),
        cmocka_unit_test(test_spawn_is_fifo_and_runs_nothing_until_scheduled),
        cmocka_unit_test(test_run_returns_main_result),
        cmocka_unit_test(test_task_result_name_and_id),
        cmocka_unit_test(test_misuse_outside_tasks_and_nested_run_are_rejected),
        cmocka_unit_test(test_open_uv_handle_makes_run_return_ebusy),
        cmocka_unit_test(test_tasks_dump_lists_live_tasks),
        cmocka_unit_test(test_spawn_stack_size_is_honoured),
        cmocka_unit_test(test_task_retain_keeps_an_ended_task_until_released),
        cmocka_unit_test(test_lazy_timer_stale_deadline_does_not_end_a_later_wait),
        cmocka_unit_test(test_lazy_timer_stale_deadline_does_not_wake_a_wait_without_one),
        cmocka_unit_test(test_lazy_timer_firing_while_task_is_ready_does_nothing),
        cmocka_unit_test(test_lazy_timers_of_many_ended_tasks_leave_the_heap),
        cmocka_unit_test(test_lazy_timer_of_cancelled_task_leaves_the_heap),
        cmocka_unit_test(test_wake_now_is_fair_to_queued_tasks_and_other_sources),
        cmocka_unit_test_teardown(test_stack_size_set_default_rejects_bad_sizes,
                                  restore_default_stack_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
