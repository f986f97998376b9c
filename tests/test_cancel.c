/* SPDX-License-Identifier: MIT */
/* Cancellation semantics (issue "runtime semantics"): a task that retries
 * failed awaits cannot freeze the loop, corio_cancelled() answers for every
 * kind of cancellation in effect, and a cancel reaches what the task waits
 * on, as in asyncio.
 *
 * The freeze cases run in a child process with a deadline: before the fix
 * the child never returned (the loop never turned again), and the parent
 * sees that as a timeout instead of hanging itself. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "corio_test.h"

/* ---- no spin: failed awaits still let the loop turn ---------------------------------------- */

/* Runs fn in a child's corio_run (grace `grace_ms`) and waits up to 20 s.
 * Returns the child's exit status, or -1 if it had to be killed. */
static int run_in_child(corio_task_fn fn, uint64_t grace_ms) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* the hang the bug was: SIGALRM ends the child */
        corio_run_opts o = {.shutdown_grace_ms = grace_ms};
        int rc = corio_run_ex(&o, fn, NULL);
        _exit(rc == 0 ? 0 : rc == CORIO_EBUSY ? 3 : 4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return WEXITSTATUS(status);
}

static corio_queue *never_fed;

/* The reproduction: a worker that treats every failure as "try again". */
static int retrying_worker(void *arg) {
    (void)arg;
    for (;;) {
        void *item;
        int rc = 0;
        CORIO_WITH(corio_timeout_scope(50)) {
            rc = corio_queue_get(never_fed, &item);
        }
        if (rc < 0)
            continue;
    }
    return 0;
}

static int spin_main(void *arg) {
    (void)arg;
    if (corio_queue_new(&never_fed, 1) != 0)
        return 1;
    corio_task *t;
    if (corio_spawn(&t, "retrier", retrying_worker, NULL) != 0)
        return 1;
    corio_task_release(t);
    corio_sleep(120); /* a few timeouts go by; then main ends and the worker is cancelled */
    return 0;
}

static void test_retrying_worker_cannot_freeze_shutdown(void **state) {
    (void)state;
    /* The worker never ends: corio_run reports it after the grace period and
     * returns CORIO_EBUSY (exit 3) instead of spinning for ever. */
    assert_int_equal(run_in_child(spin_main, 300), 3);
}

typedef struct turn_state {
    int ticks;
    bool stop;
} turn_state;

/* A task whose own deadline has passed, retrying: other tasks still run. */
static int expired_retrier(void *arg) {
    turn_state *st = arg;
    CORIO_WITH(corio_timeout_scope(1)) {
        while (!st->stop)
            (void)corio_sleep(1000); /* ETIMEDOUT at once, again and again */
    }
    return 0;
}

static int ticker(void *arg) {
    turn_state *st = arg;
    while (st->ticks < 5) {
        if (corio_sleep(2) != 0)
            return 1;
        st->ticks++;
    }
    st->stop = true;
    return 0;
}

static int turn_main(void *arg) {
    turn_state *st = arg;
    corio_task *spin = corio_test_spawn("expired", expired_retrier, st);
    corio_task *tick = corio_test_spawn("ticker", ticker, st);
    SOFT(corio_test_join(tick) == 0);
    SOFT(corio_test_join(spin) == 0);
    return 0;
}

static void test_expired_deadline_retry_lets_timers_and_tasks_run(void **state) {
    (void)state;
    turn_state st = {0};
    corio_test_run_checked(turn_main, &st);
    assert_int_equal(st.ticks, 5); /* the ticker's timers fired meanwhile */
}

typedef struct group_spin {
    int body_retries;
    corio_cancel_reason why;
} group_spin;

static int fails_soon(void *arg) {
    (void)arg;
    corio_sleep(5);
    return CORIO_EPIPE;
}

/* A task-group body polling corio_cancelled() and retrying its awaits
 * after a member failed: it sees the group's cancel (reason sibling), and
 * the member's failure reaches the group. */
static int group_spin_main(void *arg) {
    group_spin *st = arg;
    corio_task_group g;
    CORIO_WITH(corio_task_group_scope(&g)) {
        SOFT(corio_task_group_spawn(&g, NULL, "fails", fails_soon, NULL) == 0);
        while (!corio_cancelled()) {
            if (corio_sleep(1) < 0)
                st->body_retries++;
        }
        st->why = corio_cancelled_reason();
        for (int i = 0; i < 3; i++) /* retrying now fails at once, through the loop */
            if (corio_yield() == CORIO_ECANCELED)
                st->body_retries++;
    }
    SOFT(corio_task_group_result(&g) == CORIO_EPIPE);
    return 0;
}

static void test_group_body_sees_sibling_cancel_and_polling_is_correct(void **state) {
    (void)state;
    group_spin st = {0};
    corio_test_run_checked(group_spin_main, &st);
    assert_int_equal(st.why, CORIO_CANCEL_SIBLING);
    assert_true(st.body_retries >= 3);
}

/* ---- corio_cancelled() and its reason -------------------------------------------------------- */

typedef struct poll_state {
    bool before, in_deadline, in_shield, own;
    corio_cancel_reason deadline_why, shield_why, own_why;
} poll_state;

static int poll_main(void *arg) {
    poll_state *st = arg;
    st->before = corio_cancelled();
    CORIO_WITH(corio_timeout_scope(1)) {
        corio_sleep(10); /* lets the deadline pass */
        st->in_deadline = corio_cancelled();
        st->deadline_why = corio_cancelled_reason();
        CORIO_WITH(corio_shield_scope()) {
            st->in_shield = corio_cancelled();
            st->shield_why = corio_cancelled_reason();
        }
    }
    corio_cancel_with(corio_current(), CORIO_CANCEL_PEER_GONE);
    st->own = corio_cancelled();
    st->own_why = corio_cancelled_reason();
    return 0;
}

static void test_cancelled_answers_for_deadline_shield_and_own_cancel(void **state) {
    (void)state;
    poll_state st = {0};
    corio_test_run(poll_main, &st);
    assert_false(st.before);
    assert_true(st.in_deadline);
    assert_int_equal(st.deadline_why, CORIO_CANCEL_TIMEOUT);
    assert_false(st.in_shield);
    assert_int_equal(st.shield_why, CORIO_CANCEL_NONE);
    assert_true(st.own);
    assert_int_equal(st.own_why, CORIO_CANCEL_PEER_GONE);
    assert_string_equal(corio_cancel_reason_name(st.own_why), "peer gone");
}

/* ---- a cancel reaches what the task waits on ------------------------------------------------- */

typedef struct op {
    corio_future *f;
    int hooked; /* times the cancel hook ran */
} op;

static void op_cancel_hook(corio_future *f, void *data) {
    (void)f;
    ((op *)data)->hooked++;
}

static void op_init(op *o) {
    assert_int_equal(corio_future_new(&o->f), 0);
    corio_future_on_cancel(o->f, op_cancel_hook, o);
}

typedef struct prop_state {
    op single, gathered[2], timed;
    corio_future *plain;
    int await_rc, gather_rc, timed_rc, plain_rc;
    int worker_rc, shared_worker_done;
} prop_state;

static int await_single(void *arg) {
    prop_state *st = arg;
    st->await_rc = corio_await(st->single.f);
    return 0;
}

static int await_gathered(void *arg) {
    prop_state *st = arg;
    corio_future *fs[2] = {st->gathered[0].f, st->gathered[1].f};
    st->gather_rc = corio_gather(fs, 2);
    return 0;
}

static int prop_main(void *arg) {
    prop_state *st = arg;
    op_init(&st->single);
    op_init(&st->gathered[0]);
    op_init(&st->gathered[1]);
    op_init(&st->timed);
    SOFT(corio_future_new(&st->plain) == 0);
    corio_task *a = corio_test_spawn("await", await_single, st);
    corio_task *g = corio_test_spawn("gather", await_gathered, st);
    corio_yield(); /* both wait now */
    corio_cancel(a);
    corio_cancel(g);
    corio_test_join(a);
    corio_test_join(g);
    /* A deadline cuts an await short too (asyncio.wait_for cancels). */
    CORIO_WITH(corio_timeout_scope(5)) {
        st->timed_rc = corio_await(st->timed.f);
    }
    /* A plain future (no hook: nothing to stop) stays pending. */
    CORIO_WITH(corio_timeout_scope(5)) {
        st->plain_rc = corio_await(st->plain);
    }
    SOFT(!corio_future_done(st->plain));
    SOFT(corio_future_resolve(st->plain, NULL) == 0);
    corio_future_release(st->single.f);
    corio_future_release(st->gathered[0].f);
    corio_future_release(st->gathered[1].f);
    corio_future_release(st->timed.f);
    corio_future_release(st->plain);
    return 0;
}

static void test_cancel_reaches_the_awaited_operation(void **state) {
    (void)state;
    prop_state st = {0};
    corio_test_run_checked(prop_main, &st);
    assert_int_equal(st.await_rc, CORIO_ECANCELED);
    assert_int_equal(st.single.hooked, 1);
    assert_int_equal(st.gather_rc, CORIO_ECANCELED);
    assert_int_equal(st.gathered[0].hooked, 1);
    assert_int_equal(st.gathered[1].hooked, 1);
    assert_int_equal(st.timed_rc, CORIO_ETIMEDOUT);
    assert_int_equal(st.timed.hooked, 1);
    assert_int_equal(st.plain_rc, CORIO_ETIMEDOUT);
}

static int long_worker(void *arg) {
    prop_state *st = arg;
    st->worker_rc = corio_sleep(10000);
    return st->worker_rc;
}

static corio_task *shared_worker;

static int joiner(void *arg) {
    (void)arg;
    return corio_await(shared_worker);
}

static int join_main(void *arg) {
    prop_state *st = arg;
    /* The only awaiter of a task is cancelled: the task is cancelled. */
    corio_task *w = corio_test_spawn("worker", long_worker, st);
    corio_task *j;
    SOFT(corio_spawn(&j, "joiner", joiner, NULL) == 0);
    shared_worker = w;
    corio_yield();
    corio_cancel(j);
    SOFT(corio_test_join(j) == CORIO_ECANCELED);
    SOFT(corio_test_join(w) == CORIO_ECANCELED);
    SOFT(st->worker_rc == CORIO_ECANCELED);
    /* Two awaiters, one cancelled: the task goes on for the other. */
    st->worker_rc = 1;
    w = corio_test_spawn("worker", long_worker, st);
    shared_worker = w;
    corio_task *j1, *j2;
    SOFT(corio_spawn(&j1, "joiner1", joiner, NULL) == 0);
    SOFT(corio_spawn(&j2, "joiner2", joiner, NULL) == 0);
    corio_yield();
    corio_cancel(j1);
    SOFT(corio_test_join(j1) == CORIO_ECANCELED);
    st->shared_worker_done = corio_task_done(w);
    corio_cancel(w); /* now end it */
    SOFT(corio_test_join(j2) == CORIO_ECANCELED);
    corio_test_join(w);
    return 0;
}

static void test_cancelled_joiner_cancels_a_task_only_it_awaits(void **state) {
    (void)state;
    prop_state st = {0};
    corio_test_run_checked(join_main, &st);
    assert_false(st.shared_worker_done);
}

typedef struct done_state {
    int await_rc, gather_rc, wait_any_rc;
    size_t index;
} done_state;

static int done_main(void *arg) {
    done_state *st = arg;
    corio_future *f;
    SOFT(corio_future_new(&f) == 0);
    SOFT(corio_future_resolve(f, NULL) == 0);
    corio_cancel(corio_current());
    st->await_rc = corio_await(f); /* nothing suspends: the result */
    corio_future *fs[2] = {f, f};
    st->gather_rc = corio_gather(fs, 2);
    st->wait_any_rc = corio_wait_any(fs, 2, &st->index);
    corio_future_release(f);
    return 0;
}

static void test_awaiting_a_done_future_in_a_cancelled_task_gives_its_result(void **state) {
    (void)state;
    done_state st = {.index = 9};
    corio_test_run(done_main, &st);
    assert_int_equal(st.await_rc, 0);
    assert_int_equal(st.gather_rc, 0);
    assert_int_equal(st.wait_any_rc, 0);
    assert_int_equal(st.index, 0);
}

/* ---- review findings ------------------------------------------------------------------------ */

typedef struct precheck_state {
    op pending;
    corio_cancel_reason child_reason;
    int await_rc, child_rc;
} precheck_state;

static int sleeper(void *arg) {
    (void)arg;
    return corio_sleep(10000);
}

/* An await that fails at its very first check (the task already cancelled,
 * a deadline already passed) still cancels what it awaits, as one cut short
 * while waiting does. */
static int precheck_main(void *arg) {
    precheck_state *st = arg;
    op_init(&st->pending);
    corio_task *child = corio_test_spawn("child", sleeper, NULL);
    corio_yield(); /* the child sleeps */
    CORIO_WITH(corio_timeout_scope(0)) {
        SOFT(corio_await(child) == CORIO_ETIMEDOUT);
    }
    st->child_rc = corio_await(child);
    st->child_reason = corio_task_cancel_reason(child);
    corio_task_release(child);
    corio_cancel(corio_current());
    st->await_rc = corio_await(st->pending.f);
    corio_future_release(st->pending.f);
    return 0;
}

static void test_await_failing_at_once_still_cancels_what_it_awaits(void **state) {
    (void)state;
    precheck_state st = {0};
    corio_test_run_checked(precheck_main, &st);
    assert_int_equal(st.child_rc, CORIO_ECANCELED);
    assert_int_equal(st.child_reason, CORIO_CANCEL_USER);
    assert_int_equal(st.await_rc, CORIO_ECANCELED);
    assert_int_equal(st.pending.hooked, 1);
}

static int owns_its_arg(void *arg) {
    free(arg); /* must run even if cancelled before it starts */
    return corio_cancelled() ? CORIO_ECANCELED : 0;
}

static int early_ran;

static int not_run(void *arg) {
    (void)arg;
    early_ran = 1;
    return 0;
}

static int prerun_main(void *arg) {
    (void)arg;
    corio_spawn_opts o = {.name = "owner", .run_if_cancelled = true};
    corio_task *t, *u;
    SOFT(corio_spawn_ex(&t, &o, owns_its_arg, malloc(64)) == 0);
    SOFT(corio_spawn(&u, "plain", not_run, NULL) == 0);
    corio_cancel(t);
    corio_cancel(u);
    SOFT(corio_test_join(t) == CORIO_ECANCELED); /* it ran, and freed its arg */
    SOFT(corio_test_join(u) == CORIO_ECANCELED); /* it never ran */
    return 0;
}

static void test_run_if_cancelled_runs_a_task_cancelled_before_it_started(void **state) {
    (void)state;
    early_ran = 0;
    corio_test_run_checked(prerun_main, NULL);
    assert_int_equal(early_ran, 0); /* and LeakSanitizer/valgrind see the 64 bytes freed */
}

static int poll_spins;

/* CPU work without an await inside a timeout scope: polling corio_cancelled()
 * sees the deadline pass (the loop's clock is refreshed for it). */
static int poll_cpu_main(void *arg) {
    (void)arg;
    CORIO_WITH(corio_timeout_scope(20)) {
        while (!corio_cancelled() && poll_spins < 2000000000)
            poll_spins++;
        SOFT(corio_cancelled_reason() == CORIO_CANCEL_TIMEOUT);
    }
    return 0;
}

static void test_polling_cancelled_sees_a_deadline_without_awaiting(void **state) {
    (void)state;
    poll_spins = 0;
    corio_test_run_checked(poll_cpu_main, NULL);
    assert_true(poll_spins < 2000000000); /* ended by the deadline, not by the count */
}

static int late_spawn_rc = 1, late_ran;

static int late_task(void *arg) {
    (void)arg;
    late_ran = 1;
    return 0;
}

static void spawn_at_teardown(corio_future *f, void *data) {
    (void)f;
    (void)data;
    late_spawn_rc = corio_spawn(NULL, "late", late_task, NULL);
}

static int stuck_in_shield(void *arg) {
    (void)arg;
    CORIO_WITH(corio_shield_scope()) {
        corio_sleep(100000);
    }
    return 0;
}

static int teardown_main(void *arg) {
    (void)arg;
    corio_task *t;
    if (corio_spawn(&t, "stuck", stuck_in_shield, NULL) != 0)
        return 1;
    corio_future_add_done_cb(corio_task_future(t), spawn_at_teardown, NULL);
    corio_task_release(t);
    return corio_sleep(1);
}

static void test_spawn_from_a_teardown_callback_is_refused(void **state) {
    (void)state;
    corio_run_opts o = {.shutdown_grace_ms = 50};
    /* The stuck task is reported and reclaimed: EBUSY.  Its done callback
     * runs after every task is gone: its spawn is refused, nothing leaks. */
    assert_int_equal(corio_run_ex(&o, teardown_main, NULL), CORIO_EBUSY);
    assert_int_equal(late_spawn_rc, CORIO_ECLOSED);
    assert_int_equal(late_ran, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_await_failing_at_once_still_cancels_what_it_awaits),
        cmocka_unit_test(test_run_if_cancelled_runs_a_task_cancelled_before_it_started),
        cmocka_unit_test(test_polling_cancelled_sees_a_deadline_without_awaiting),
        cmocka_unit_test(test_spawn_from_a_teardown_callback_is_refused),
        cmocka_unit_test(test_retrying_worker_cannot_freeze_shutdown),
        cmocka_unit_test(test_expired_deadline_retry_lets_timers_and_tasks_run),
        cmocka_unit_test(test_group_body_sees_sibling_cancel_and_polling_is_correct),
        cmocka_unit_test(test_cancelled_answers_for_deadline_shield_and_own_cancel),
        cmocka_unit_test(test_cancel_reaches_the_awaited_operation),
        cmocka_unit_test(test_cancelled_joiner_cancels_a_task_only_it_awaits),
        cmocka_unit_test(test_awaiting_a_done_future_in_a_cancelled_task_gives_its_result),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
