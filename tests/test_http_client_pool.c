/* SPDX-License-Identifier: MIT */
/* The HTTP client's connection pool at its limits, against tests/upstream.py
 * (http_client_helpers.h): per origin, FIFO waiters handed connections (a
 * waiter whose caller's deadline passes leaves the queue; one waiting for a
 * connection that closes dials a new one); over all origins, the LRU idle
 * connection of another origin closed to make room; failed requests giving
 * their slots back; the idle timeout; and the client freed under running
 * requests (they finish, their connections are closed, not pooled); and
 * a checkout while the keeper's idle sweep awaits a close (white box: the
 * origin's idle list, client/client_internal.h).
 * The counters and holds go through the control port, so asking for them
 * never touches the pool under test. */
#include "http_client_helpers.h"

#include "client/client_internal.h" /* white box: the origins' idle lists */

#include <signal.h>

/* ---- the pool at its limits --------------------------------------------------------------- */

typedef struct done_order {
    int ids[8];
    int n;
} done_order;

typedef struct done_tag {
    done_order *order;
    int id;
} done_tag;

static void record_done(corio_future *f, void *data) {
    (void)f;
    done_tag *t = data;
    if (t->order->n < 8)
        t->order->ids[t->order->n++] = t->id;
}

/* max_conns_per_origin 2, five requests held by the upstream: two
 * connections only, the waiters served FIFO on the connections handed over,
 * and a waiter whose caller's deadline passes leaves the queue. */
static int pool_max_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *fs[5];
    done_order order = {0};
    done_tag tags[5];
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "/hold?id=%d", i + 1);
        assert_corio(start(x, &fs[i], MAIN, path), 0);
        tags[i] = (done_tag){&order, i + 1};
        assert_corio(corio_future_add_done_cb(fs[i], record_done, &tags[i]), 0);
    }
    /* 1 and 2 hold both connections (reaching the upstream in either
     * order); 3, 4 and 5 wait for one, in that order. */
    WAIT_FOR(x, MAIN, st, st.held == 2);
    assert_int_equal(st.narrived, 2);
    assert_int_equal(st.arrived[0] + st.arrived[1], 1 + 2);

    /* 4's caller gives up: its request leaves the queue, cancelled. */
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(150)) {
        rc = corio_await(fs[3]);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    assert_corio(corio_future_result(fs[3]), CORIO_ECANCELED);

    /* 1's connection goes to the first waiter, 3; 2's to the next, 5. */
    release_hold(x, 1);
    assert_corio(corio_await(fs[0]), 0);
    WAIT_FOR(x, MAIN, st, st.narrived == 3);
    assert_int_equal(st.arrived[2], 3);
    release_hold(x, 2);
    assert_corio(corio_await(fs[1]), 0);
    WAIT_FOR(x, MAIN, st, st.narrived == 4);
    assert_int_equal(st.arrived[3], 5);
    release_hold(x, 3);
    assert_corio(corio_await(fs[2]), 0);
    release_hold(x, 5);
    assert_corio(corio_await(fs[4]), 0);

    const int ids[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof body, "id=%d", ids[i]);
        assert_answer(fs[ids[i] - 1], 200, body);
    }
    assert_int_equal(order.n, 5);
    const int want[] = {4, 1, 2, 3, 5};
    for (int i = 0; i < 5; i++)
        assert_int_equal(order.ids[i], want[i]);
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 2); /* handed over, never closed and reopened */
    assert_int_equal(st.closed, 0);
    assert_int_equal(st.peak, 2);
    for (int i = 0; i < 5; i++)
        corio_future_release(fs[i]);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_pool_at_max_hands_conns_to_fifo_waiters_deadline_leaves_queue(void **s) {
    (void)s;
    corio_http_client_opts o = {.max_conns_per_origin = 2};
    run_with_upstream(pool_max_main, &o);
}

/* max_conns_per_origin 1: the one connection ends closed (Connection:
 * close), so the waiter gets the permit and a new connection. */
static int pool_closed_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f, *g;
    assert_corio(open_client(x), 0);
    assert_corio(start(x, &f, MAIN, "/hold?id=1&close=1"), 0);
    assert_corio(start(x, &g, MAIN, "/ok"), 0);
    WAIT_FOR(x, MAIN, st, st.held == 1);
    assert_false(corio_future_done(g));
    release_hold(x, 1);
    assert_corio(corio_await(g), 0);
    assert_answer(g, 200, "hello");
    assert_answer(f, 200, "id=1");
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 2); /* (its peak may read 2: it counts the close late) */
    corio_future_release(f);
    corio_future_release(g);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_pool_waiter_gets_new_conn_when_the_one_it_waited_for_closes(void **s) {
    (void)s;
    corio_http_client_opts o = {.max_conns_per_origin = 1};
    run_with_upstream(pool_closed_main, &o);
}

/* max_conns 2 over all origins: with one connection idle (A) and one in use
 * (B), opening one to a third origin closes A's; and B needing a second
 * connection closes the third's idle one. */
static int max_conns_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *held;
    assert_corio(open_client(x), 0);
    fetch_expect(x, MAIN, "/ok", "hello"); /* A: idle in the pool */
    assert_corio(start(x, &held, ALT, "/hold?id=1"), 0);
    WAIT_FOR(x, ALT, st, st.held == 1); /* B: in use */

    fetch_expect(x, THIRD, "/ok", "hello");
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* A's idle one made room */
    assert_int_equal(st.accepts, 1);
    ustats(x, THIRD, &st);
    assert_int_equal(st.accepts, 1);
    assert_int_equal(st.closed, 0);

    fetch_expect(x, ALT, "/ok", "hello"); /* B again: a second connection */
    WAIT_FOR(x, THIRD, st, st.closed == 1);
    ustats(x, ALT, &st);
    assert_int_equal(st.accepts, 2);
    assert_int_equal(st.closed, 0);

    release_hold(x, 1);
    assert_corio(corio_await(held), 0);
    assert_answer(held, 200, "id=1");
    corio_future_release(held);

    /* Both connections in use (ALT, THIRD): a request to MAIN waits for
     * one; when ALT's comes back idle, it is closed to make room. */
    corio_future *third, *waiter;
    assert_corio(start(x, &held, ALT, "/hold?id=2"), 0);    /* one of ALT's two idle */
    assert_corio(start(x, &third, THIRD, "/hold?id=3"), 0); /* closes the other */
    WAIT_FOR(x, ALT, st, st.held == 2 && st.closed == 1);
    assert_corio(start(x, &waiter, MAIN, "/ok"), 0);
    release_hold(x, 2);
    assert_corio(corio_await(waiter), 0);
    assert_answer(waiter, 200, "hello");
    WAIT_FOR(x, ALT, st, st.closed == 2);
    assert_false(corio_future_done(third)); /* still in use: not touched */
    release_hold(x, 3);
    assert_corio(corio_await(third), 0);
    assert_corio(corio_future_result(held), 0);
    corio_future_release(held);
    corio_future_release(third);
    corio_future_release(waiter);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_max_conns_over_origins_closes_lru_idle_of_other_origin(void **state) {
    (void)state;
    corio_http_client_opts o = {.max_conns = 2};
    run_with_upstream(max_conns_main, &o);
}

/* max_conns 2: requests that end in every kind of failure give their
 * connection slots back, so afterwards one idle connection and one new one
 * to another origin fit without closing the idle one. */
static int failures_give_back_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    int rc = 0;
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 3; i++) {
        assert_corio(call(x->c, "GET", "http://127.0.0.1:1/", NULL, 0, &r), CORIO_ECONNREFUSED);
        assert_corio(fetch(x, MAIN, "/silent", &r), CORIO_ETIMEDOUT); /* first byte */
        CORIO_WITH(corio_timeout_scope(100)) {
            rc = fetch(x, MAIN, "/trickle?n=50&ms=40", &r);
        }
        assert_corio(rc, CORIO_ETIMEDOUT);
        assert_corio(fetch(x, MAIN, "/malformed", &r), CORIO_EBADMSG);
        corio_http_req rq = {.max_redirects = 2};
        assert_corio(request_to(x, rq, MAIN, "/loop", &r), CORIO_ERANGE);
    }
    ustats(x, MAIN, &st);
    int base = st.accepts;
    fetch_expect(x, MAIN, "/ok", "hello");
    fetch_expect(x, ALT, "/ok", "hello");
    fetch_expect(x, MAIN, "/ok", "hello");
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, base + 1); /* the idle one was not closed for ALT's */
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_failed_requests_give_back_their_conn_slots(void **state) {
    (void)state;
    /* 400 ms: /silent times out; the answers that must come in time come
     * from a Python upstream on a machine running other tests. */
    corio_http_client_opts o = {.max_conns = 2, .first_byte_timeout_ms = 400};
    run_with_upstream(failures_give_back_main, &o);
}

/* ---- idle connections --------------------------------------------------------------------- */

static int idle_timeout_main(void *arg) {
    ctx *x = arg;
    ustat st;
    assert_corio(open_client(x), 0);
    fetch_expect(x, MAIN, "/ok", "hello");
    fetch_expect(x, MAIN, "/ok", "hello"); /* young enough: reused */
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 1);
    assert_corio(corio_sleep(700), 0); /* time passing is the point: no event to wait for */
    fetch_expect(x, MAIN, "/ok", "hello");
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* the old one closed, not used */
    assert_int_equal(st.accepts, 2);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_idle_timeout_conn_older_is_closed_not_reused(void **state) {
    (void)state;
    corio_http_client_opts o = {.idle_timeout_ms = 500};
    run_with_upstream(idle_timeout_main, &o);
}

/* The idle connections of all the client's origins. */
static size_t idle_count(const corio_http_client *c) {
    size_t n = 0;
    for (corio__origin *o = c->origins; o; o = o->next)
        for (corio__pconn *pc = o->idle; pc; pc = pc->next)
            n++;
    return n;
}

/* Await: the exchange's response, which must be 200 "hello" (/ok), read
 * to its end. */
static void read_hello(corio_http_exchange *e) {
    const corio_http_response *r;
    assert_corio(corio_http_response_head(e, &r), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    char body[16];
    size_t len = 0;
    const char *piece;
    int n;
    while ((n = corio_http_read(e, &piece)) > 0) {
        assert_true(len + (size_t)n < sizeof body);
        memcpy(body + len, piece, (size_t)n);
        len += (size_t)n;
    }
    assert_corio(n, 0);
    body[len] = '\0';
    assert_string_equal(body, "hello");
}

/* idle_timeout_ms 300: B pooled at t0, A at t0 + 150 (the idle list: A,
 * B).  At t0 + 300 the keeper's sweep unlinks B and awaits its close; a
 * request then checks A out, which frees A's entry of the list.  The sweep
 * must not go on from that entry when the close returns (it did: a use
 * after free, a crash or ASan's heap-use-after-free in close_idle); the
 * request is answered on A, and B is closed. */
static int keeper_sweep_main(void *arg) {
    ctx *x = arg;
    ustat st;
    char url[256];
    origin_url(x, url, sizeof url, MAIN, "/ok");
    corio_http_req rq = {.url = url};
    corio_http_exchange *a, *b;
    int rc = -1, rc2 = -1;
    assert_corio(open_client(x), 0);
    CORIO_WITH_RC(rc, corio_http_open(x->c, &rq, &a)) {
        CORIO_WITH_RC(rc2, corio_http_open(x->c, &rq, &b)) {
            read_hello(b);
        } /* B pooled: t0 */
        assert_corio(rc2, 0);
        assert_corio(corio_sleep(150), 0);
        read_hello(a);
    } /* A pooled: t0 + 150 */
    assert_corio(rc, 0);
    assert_int_equal(idle_count(x->c), 2);
    assert_int_equal(x->c->open, 2);

    /* Yielding (not sleeping) lets this task see the list the moment the
     * sweep has unlinked B: the close it then awaits is still under way
     * (B still counts as open). */
    uint64_t until = corio_now() + 5000;
    while (idle_count(x->c) == 2 && corio_now() < until)
        assert_corio(corio_yield(), 0);
    assert_int_equal(idle_count(x->c), 1);
    if (x->c->open != 2)
        fail_msg("B's close has already ended: the checkout did not meet the sweep");

    corio_http_exchange *y;
    CORIO_WITH_RC(rc, corio_http_open(x->c, &rq, &y)) { /* takes A: its entry freed */
        read_hello(y);
    }
    assert_corio(rc, 0);
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* B */
    assert_int_equal(st.accepts, 2);       /* the request went on A */
    assert_int_equal(idle_count(x->c), 1);
    fetch_expect(x, MAIN, "/ok", "hello"); /* the pool and its keeper go on */
    corio_http_client_free(x->c);
    WAIT_FOR(x, MAIN, st, st.closed == 2);
    assert_int_equal(st.accepts, 2);
    return 0;
}

static void test_client_keeper_sweep_meets_checkout_of_the_entry_it_stands_on(void **state) {
    (void)state;
    corio_http_client_opts o = {.idle_timeout_ms = 300};
    run_with_upstream(keeper_sweep_main, &o);
}

/* ---- the client freed under running requests ---------------------------------------------- */

/* corio_http_client_free with requests running: they finish (the client's
 * memory lives on), their connections are closed, not pooled; a waiter
 * queued for a connection is still served; a cancel after the free works. */
static int free_running_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f, *g;
    assert_corio(open_client(x), 0);
    fetch_expect(x, ALT, "/ok", "hello"); /* idle: the free closes it */
    assert_corio(start(x, &f, MAIN, "/hold?id=1"), 0);
    assert_corio(start(x, &g, MAIN, "/hold?id=2"), 0); /* waits: 1 per origin */
    WAIT_FOR(x, MAIN, st, st.held == 1);
    corio_http_client_free(x->c);
    WAIT_FOR(x, ALT, st, st.closed == 1);
    release_hold(x, 1);
    assert_corio(corio_await(f), 0);
    assert_answer(f, 200, "id=1");
    corio_future_release(f);
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* not pooled after the free */
    release_hold(x, 2);
    assert_corio(corio_await(g), 0); /* on a connection of its own */
    assert_answer(g, 200, "id=2");
    corio_future_release(g);
    WAIT_FOR(x, MAIN, st, st.closed == 2);
    assert_int_equal(st.accepts, 2);

    /* The caller cancels instead. */
    assert_corio(open_client(x), 0);
    assert_corio(start(x, &f, MAIN, "/hold?id=3"), 0);
    WAIT_FOR(x, MAIN, st, st.held == 1);
    corio_http_client_free(x->c);
    assert_corio(corio_future_cancel(f), 0);
    assert_corio(corio_future_result(f), CORIO_ECANCELED);
    corio_future_release(f);
    WAIT_FOR(x, MAIN, st, st.closed == 3);
    return 0;
}

static void test_client_free_while_requests_run_they_finish_and_nothing_leaks(void **state) {
    (void)state;
    corio_http_client_opts o = {.max_conns_per_origin = 1};
    run_with_upstream(free_running_main, &o);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_pool_at_max_hands_conns_to_fifo_waiters_deadline_leaves_queue),
        cmocka_unit_test(test_client_pool_waiter_gets_new_conn_when_the_one_it_waited_for_closes),
        cmocka_unit_test(test_client_max_conns_over_origins_closes_lru_idle_of_other_origin),
        cmocka_unit_test(test_client_failed_requests_give_back_their_conn_slots),
        cmocka_unit_test(test_client_idle_timeout_conn_older_is_closed_not_reused),
        cmocka_unit_test(test_client_keeper_sweep_meets_checkout_of_the_entry_it_stands_on),
        cmocka_unit_test(test_client_free_while_requests_run_they_finish_and_nothing_leaks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
