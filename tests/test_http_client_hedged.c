/* SPDX-License-Identifier: MIT */
/* corio_http_first and corio_http_hedged, against tests/upstream.py
 * (http_client_helpers.h): the first good answer wins, else the first 5xx,
 * else the last error (the others cancelled, their connections closed); the
 * hedge sent after its delay, or at once when an attempt fails; and a good
 * answer done in the same turn of the loop as a 5xx wins. */
#include "http_client_helpers.h"

#include <signal.h>
#include <unistd.h>

/* ---- the first good answer, hedged requests ----------------------------------------------- */

static int first_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *fs[4];
    size_t winner = 99;
    assert_corio(open_client(x), 0);
    /* refused, 503, 200 after 300 ms, never */
    assert_corio(corio_http_request(x->c, &fs[0], "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0),
                 0);
    assert_corio(start(x, &fs[1], MAIN, "/status?code=503"), 0);
    assert_corio(start(x, &fs[2], MAIN, "/delay?ms=300"), 0);
    assert_corio(start(x, &fs[3], ALT, "/hold?id=1"), 0);
    assert_corio(corio_http_first(fs, 4, &winner), 0);
    assert_int_equal(winner, 2);
    assert_answer(fs[2], 200, "delayed");
    assert_corio(corio_future_result(fs[0]), CORIO_ECONNREFUSED);
    assert_answer(fs[1], 503, "status");
    assert_true(corio_future_done(fs[3]));
    assert_corio(corio_future_result(fs[3]), CORIO_ECANCELED);
    WAIT_FOR(x, ALT, st, st.closed == 1); /* the cancelled one's connection */
    for (int i = 0; i < 4; i++)
        corio_future_release(fs[i]);

    /* Every answer a 5xx: the first of them (first by index and in time). */
    assert_corio(start(x, &fs[0], MAIN, "/status?code=500"), 0);
    assert_corio(start(x, &fs[1], MAIN, "/delay?ms=100&code=503"), 0);
    assert_corio(start(x, &fs[2], MAIN, "/delay?ms=200&code=502"), 0);
    winner = 99;
    assert_corio(corio_http_first(fs, 3, &winner), 0);
    assert_int_equal(winner, 0);
    assert_answer(fs[0], 500, "status");
    assert_answer(fs[1], 503, "delayed");
    assert_answer(fs[2], 502, "delayed");
    for (int i = 0; i < 3; i++)
        corio_future_release(fs[i]);

    /* Every one failing: the failure that came last. */
    assert_corio(start(x, &fs[0], MAIN, "/malformed?ms=100"), 0);
    assert_corio(corio_http_request(x->c, &fs[1], "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0),
                 0);
    assert_corio(corio_http_first(fs, 2, &winner), CORIO_EBADMSG);
    assert_corio(corio_future_result(fs[1]), CORIO_ECONNREFUSED);
    for (int i = 0; i < 2; i++)
        corio_future_release(fs[i]);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_first_good_answer_wins_else_first_5xx_else_last_error(void **state) {
    (void)state;
    run_with_upstream(first_main, NULL);
}

static int hedged_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f = NULL;
    char u0[256], u1[256];
    const char *urls[2] = {u0, u1};
    corio_http_req rq = {0};
    assert_corio(open_client(x), 0);

    /* [slow, fast], 50 ms: the hedge wins, the slow one is cancelled. */
    origin_url(x, u0, sizeof u0, ALT, "/hold?id=1");
    origin_url(x, u1, sizeof u1, MAIN, "/ok");
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 2, 50), 0);
    assert_true(corio_future_done(f));
    assert_answer(f, 200, "hello");
    corio_future_release(f);
    WAIT_FOR(x, ALT, st, st.closed == 1);
    assert_int_equal(st.accepts, 1);

    /* [fast, other]: the first answers within the delay; no second attempt. */
    origin_url(x, u0, sizeof u0, MAIN, "/ok");
    origin_url(x, u1, sizeof u1, THIRD, "/ok");
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 2, 1000), 0);
    assert_answer(f, 200, "hello");
    corio_future_release(f);
    /* [fast] alone. */
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 1, 50), 0);
    assert_answer(f, 200, "hello");
    corio_future_release(f);
    ustats(x, THIRD, &st);
    assert_int_equal(st.accepts, 0);
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 1); /* all three on the one pooled connection */

    /* [refused, good] with a 10 s delay, under a 3 s deadline: the second is
     * sent as soon as the first fails, not after the delay. */
    snprintf(u0, sizeof u0, "http://127.0.0.1:1/");
    origin_url(x, u1, sizeof u1, THIRD, "/ok");
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(3000)) {
        rc = corio_http_hedged(x->c, &f, &rq, urls, 2, 10000);
    }
    assert_corio(rc, 0);
    assert_answer(f, 200, "hello");
    corio_future_release(f);

    /* Every attempt a 5xx: the first 5xx. */
    origin_url(x, u0, sizeof u0, MAIN, "/status?code=503");
    origin_url(x, u1, sizeof u1, MAIN, "/status?code=502");
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 2, 10), 0);
    assert_answer(f, 503, "status");
    corio_future_release(f);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_hedged_second_wins_after_delay_or_at_once_after_failure(void **state) {
    (void)state;
    run_with_upstream(hedged_main, NULL);
}

typedef struct hedge_call {
    ctx *x;
    char u0[256], u1[256];
    corio_future *f;
} hedge_call;

static int hedge_caller(void *arg) {
    hedge_call *h = arg;
    const char *urls[2] = {h->u0, h->u1};
    corio_http_req rq = {0};
    return corio_http_hedged(h->x->c, &h->f, &rq, urls, 2, 20);
}

/* Both attempts answer in the same turn of the loop, the first with a 503
 * and the second with a 200: the 200 must win.  Checked with SOFT (no
 * longjmp out of the loop), so a failure here leaves the next tests alone. */
static int hedged_together_main(void *arg) {
    ctx *x = arg;
    ustat st;
    hedge_call h = {.x = x};
    assert_corio(open_client(x), 0);
    origin_url(x, h.u0, sizeof h.u0, MAIN, "/hold?id=1&code=503");
    origin_url(x, h.u1, sizeof h.u1, ALT, "/hold?id=2");
    corio_task *t;
    assert_corio(corio_spawn(&t, "hedge", hedge_caller, &h), 0);
    WAIT_FOR(x, MAIN, st, st.held == 2);
    /* Both answers go out 100 ms from now, together, while this task blocks
     * the loop thread (on purpose: no other way to make them arrive in one
     * turn of the loop). */
    assert_string_equal(control(x, "/release-all?ms=100"), "ok");
    usleep(400 * 1000);
    int rc = corio_await(t);
    corio_task_release(t);
    if (rc)
        fprintf(stderr, "corio_http_hedged: %s\n", corio_err_name(rc));
    SOFT(rc == 0);
    if (rc == 0) {
        const corio_http_response *r = corio_future_value(h.f);
        SOFT(r && corio_http_response_status(r) == 200);
        corio_future_release(h.f);
    }
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_hedged_good_answer_done_with_a_5xx_in_one_turn_wins(void **state) {
    (void)state;
    ctx x = {.fn = hedged_together_main};
    upstream_start(&x.up);
    corio_test_soft_failure[0] = '\0';
    corio_test_run(with_control, &x);
    upstream_stop(&x.up);
    if (corio_test_soft_failure[0])
        fail_msg("in-task check failed: %s", corio_test_soft_failure);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_first_good_answer_wins_else_first_5xx_else_last_error),
        cmocka_unit_test(test_client_hedged_second_wins_after_delay_or_at_once_after_failure),
        cmocka_unit_test(test_client_hedged_good_answer_done_with_a_5xx_in_one_turn_wins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
