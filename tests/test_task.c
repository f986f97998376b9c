/* SPDX-License-Identifier: MIT */
/* Layer 2: tasks (task.h, loop.h): spawning order, results, names and
 * ids, references, misuse outside tasks, dumps and stack sizes.  The loop's
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
        cmocka_unit_test_teardown(test_stack_size_set_default_rejects_bad_sizes,
                                  restore_default_stack_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
