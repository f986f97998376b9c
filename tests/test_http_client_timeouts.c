/* SPDX-License-Identifier: MIT */
/* The HTTP client's timeouts and the caller's deadlines, against
 * tests/upstream.py (http_client_helpers.h): a timeout scope and a cancel
 * around the await (the connection is closed, never pooled), the client's
 * first-byte and read timeouts (a stalled body, not a slow one), a caller's
 * deadline cutting a body slower than it, and a deadline over a gather of
 * ten cancelling the one still running while the nine are answered. */
#include "http_client_helpers.h"

#include <signal.h>

/* ---- deadlines and cancellation ----------------------------------------------------------- */

static int timeout_main(void *arg) {
    ctx *x = arg;
    corio_http_response *r = NULL;
    int rc = 0;
    assert_corio(open_client(x), 0);
    CORIO_WITH(corio_timeout_scope(200)) {
        rc = get(x, "/slow", &r);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    wait_closed(x, 1); /* the slow connection was closed, not pooled */
    corio_http_client_free(x->c);

    /* The client's own first-byte/read timeouts. */
    corio_http_client_opts o = {.read_timeout_ms = 100};
    assert_corio(corio_http_client_new(&x->c, &o), 0);
    assert_corio(get(x, "/slow", &r), CORIO_ETIMEDOUT);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_timeout_scope_around_await_times_out_and_closes_conn(void **state) {
    (void)state;
    run_with_upstream(timeout_main, NULL);
}

static int slow_caller(void *arg) {
    corio_http_response *r = NULL;
    return get(arg, "/slow", &r);
}

static int cancel_main(void *arg) {
    ctx *x = arg;
    int a = 0, cl;
    assert_corio(open_client(x), 0);
    corio_task *t;
    assert_corio(corio_spawn(&t, "caller", slow_caller, x), 0);
    for (int i = 0; i < 500 && a < 2; i++) { /* until the slow request is in */
        assert_corio(corio_sleep(10), 0);
        stats(x, &a, &cl);
    }
    assert_int_equal(a, 2);
    assert_corio(corio_cancel(t), 0);
    assert_corio(corio_await(t), CORIO_ECANCELED);
    corio_task_release(t);
    wait_closed(x, 1);
    stats(x, &a, &cl);
    assert_int_equal(a, 2); /* the stats connection went on; the slow one is gone */
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_cancelling_awaiting_task_cancels_request_and_closes_conn(void **state) {
    (void)state;
    run_with_upstream(cancel_main, NULL);
}

/* ---- timeouts ----------------------------------------------------------------------------- */

static int first_byte_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    assert_corio(open_client(x), 0);
    assert_corio(fetch(x, MAIN, "/silent", &r), CORIO_ETIMEDOUT);
    WAIT_FOR(x, MAIN, st, st.closed == 1);
    fetch_expect(x, MAIN, "/ok", "hello"); /* on a new connection */
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 2);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_first_byte_timeout_on_silent_upstream_closes_conn(void **state) {
    (void)state;
    corio_http_client_opts o = {.first_byte_timeout_ms = 150};
    run_with_upstream(first_byte_main, &o);
}

static int read_timeout_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    assert_corio(open_client(x), 0);
    /* The head, one byte of ten, then nothing. */
    assert_corio(fetch(x, MAIN, "/slow", &r), CORIO_ETIMEDOUT);
    WAIT_FOR(x, MAIN, st, st.closed == 1);
    /* A byte every 30 ms: each read makes progress within 300 ms, though
     * the whole body takes twice as long. */
    fetch_expect(x, MAIN, "/trickle?n=20&ms=30", "tttttttttttttttttttt");
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_read_timeout_on_stalled_body_not_on_slow_progress(void **state) {
    (void)state;
    corio_http_client_opts o = {.read_timeout_ms = 300};
    run_with_upstream(read_timeout_main, &o);
}

static int trickle_deadline_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    int rc = 0;
    assert_corio(open_client(x), 0);
    /* 50 bytes, one every 40 ms: no client timeout fires, the caller's
     * deadline does. */
    CORIO_WITH(corio_timeout_scope(300)) {
        rc = fetch(x, MAIN, "/trickle?n=50&ms=40", &r);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    WAIT_FOR(x, MAIN, st, st.closed == 1);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_caller_deadline_cuts_body_slower_than_it(void **state) {
    (void)state;
    run_with_upstream(trickle_deadline_main, NULL);
}

/* ---- a deadline over a gather ------------------------------------------------------------- */

/* Ten requests under one deadline, one of them held past it: the deadline
 * cancels that one (its connection closed); the nine are answered. */
static int gather_deadline_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *fs[10];
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 10; i++)
        assert_corio(start(x, &fs[i], i == 6 ? ALT : MAIN, i == 6 ? "/hold?id=1" : "/ok"), 0);
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(3000)) { /* nine on new connections, under valgrind too */
        rc = corio_gather(fs, 10);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    for (int i = 0; i < 10; i++) {
        if (i == 6)
            assert_corio(corio_future_result(fs[i]), CORIO_ECANCELED);
        else
            assert_answer(fs[i], 200, "hello");
        corio_future_release(fs[i]);
    }
    WAIT_FOR(x, ALT, st, st.closed == 1);
    ustats(x, MAIN, &st);
    assert_int_equal(st.closed, 0); /* the nine answered ones are pooled */
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_gather_of_ten_deadline_cancels_the_one_still_running(void **state) {
    (void)state;
    run_with_upstream(gather_deadline_main, NULL);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_timeout_scope_around_await_times_out_and_closes_conn),
        cmocka_unit_test(test_client_cancelling_awaiting_task_cancels_request_and_closes_conn),
        cmocka_unit_test(test_client_first_byte_timeout_on_silent_upstream_closes_conn),
        cmocka_unit_test(test_client_read_timeout_on_stalled_body_not_on_slow_progress),
        cmocka_unit_test(test_client_caller_deadline_cuts_body_slower_than_it),
        cmocka_unit_test(test_client_gather_of_ten_deadline_cancels_the_one_still_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
