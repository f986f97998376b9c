/* SPDX-License-Identifier: MIT */
/* Layer 2: cancelling tasks (task.h) and the end of corio_run: a cancel is
 * sticky and keeps its first reason, a shield defers it; leftover tasks are
 * cancelled and awaited at shutdown; a task that ignores cancellation, or
 * tasks stuck awaiting each other, are reported and abandoned safely.  The
 * cancellation semantics of awaits (checkpoints, what a cancel reaches,
 * corio_cancelled()) are in test_cancel.c.
 *
 * Tasks record what they saw into a state struct; the assertions run after
 * corio_run() returned (cmocka's longjmp out of a coroutine stack is best
 * avoided), and every test checks corio_run()'s own result.
 */
#define _GNU_SOURCE
#include "corio_test.h"
#include "task_helpers.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancel_sleeping_task_is_sticky_with_user_reason),
        cmocka_unit_test(test_cancel_reason_first_wins_and_shield_defers),
        cmocka_unit_test(test_shutdown_cancels_and_awaits_leftover_tasks),
        cmocka_unit_test(test_task_ignoring_cancellation_makes_run_return_ebusy),
        cmocka_unit_test(test_stuck_tasks_awaiting_each_other_are_abandoned_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
