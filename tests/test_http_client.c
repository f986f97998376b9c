/* SPDX-License-Identifier: MIT */
/* The HTTP client (framework/client/), the basics: against tests/upstream.py,
 * a Python upstream that misbehaves on purpose (a child process with three
 * origins and a control port on 127.0.0.1, ports 0), and against an
 * in-process corio server.  Covers keep-alive reuse, bodies by
 * Content-Length and chunked, malformed and oversize responses, the retry of
 * an idempotent request on a stale pooled connection, gather of ten with one
 * failure, the URLs refused, and futures owning their responses.
 * The rest of the client's tests: test_http_client_pool.c (the pool at its
 * limits), _timeouts.c (timeouts, deadlines, cancellation), _redirect.c,
 * _hedged.c (corio_http_first and corio_http_hedged) and _stream.c (streamed
 * bodies, TLS, Unix sockets); the shared pieces are in http_client_helpers.h. */
#include "http_client_helpers.h"

#include <signal.h>

/* ---- keep-alive --------------------------------------------------------------------------- */

static int sequential_main(void *arg) {
    ctx *x = arg;
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 100; i++) {
        corio_http_response *r = NULL;
        assert_corio(get(x, "/ok", &r), 0);
        assert_int_equal(corio_http_response_status(r), 200);
        size_t len;
        assert_string_equal(corio_http_response_body(r, &len), "hello");
        assert_int_equal(len, 5);
        assert_string_equal(corio_http_response_header(r, "x-TEST"), "Yes");
        assert_string_equal(corio_http_response_header(r, "content-length"), "5");
        assert_null(corio_http_response_header(r, "X-Missing"));
        assert_int_equal(corio_http_response_header_count(r), 2);
        const char *n, *v;
        assert_corio(corio_http_response_header_at(r, 1, &n, &v), 0);
        assert_string_equal(n, "X-Test");
        assert_corio(corio_http_response_header_at(r, 2, &n, &v), CORIO_ERANGE);
        corio_http_response_free(r);
    }
    int a, cl;
    stats(x, &a, &cl);
    assert_int_equal(a, 1); /* 100 requests and the stats: one connection */
    assert_int_equal(cl, 0);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_100_sequential_gets_use_one_connection(void **state) {
    (void)state;
    run_with_upstream(sequential_main, NULL);
}

/* ---- bodies ------------------------------------------------------------------------------- */

static void check_pattern(corio_http_response *r, size_t n) {
    size_t len;
    const unsigned char *b = (const unsigned char *)corio_http_response_body(r, &len);
    assert_int_equal(len, n);
    for (size_t i = 0; i < n; i++)
        if (b[i] != i % 251)
            fail_msg("byte %zu is %u", i, b[i]);
}

static int bodies_main(void *arg) {
    ctx *x = arg;
    corio_http_response *r = NULL;
    assert_corio(open_client(x), 0);
    assert_corio(get(x, "/big?n=300000", &r), 0);
    check_pattern(r, 300000);
    corio_http_response_free(r);
    assert_corio(get(x, "/chunked?n=300000", &r), 0);
    check_pattern(r, 300000);
    assert_null(corio_http_response_header(r, "Content-Length"));
    corio_http_response_free(r);
    char url[128];
    snprintf(url, sizeof url, "%s/big?n=77", x->up.base);
    assert_corio(call(x->c, "HEAD", url, NULL, 0, &r), 0); /* no body, whatever it says */
    assert_string_equal(corio_http_response_header(r, "Content-Length"), "77");
    check_pattern(r, 0);
    corio_http_response_free(r);
    snprintf(url, sizeof url, "%s/echo", x->up.base);
    assert_corio(call(x->c, "POST", url, "a\0b", 3, &r), 0);
    size_t len;
    assert_memory_equal(corio_http_response_body(r, &len), "a\0b", 3);
    assert_int_equal(len, 3);
    corio_http_response_free(r);
    int a, cl;
    stats(x, &a, &cl);
    assert_int_equal(a, 1);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_content_length_chunked_head_and_post_bodies_byte_exact(void **state) {
    (void)state;
    run_with_upstream(bodies_main, NULL);
}

/* ---- bad responses ------------------------------------------------------------------------ */

static int bad_main(void *arg) {
    ctx *x = arg;
    corio_http_response *r = NULL;
    assert_corio(open_client(x), 0);
    assert_corio(get(x, "/ok", &r), 0);
    corio_http_response_free(r);
    assert_corio(get(x, "/malformed", &r), CORIO_EBADMSG); /* on the pooled one */
    assert_corio(get(x, "/oversize", &r), CORIO_ERANGE);
    assert_corio(get(x, "/many-headers", &r), CORIO_ERANGE); /* 150 > max_headers 100 */
    assert_corio(get(x, "/close-headers", &r), CORIO_EBADMSG);
    assert_corio(get(x, "/big?n=2000", &r), CORIO_ERANGE); /* max_body 1000 */
    assert_corio(get(x, "/big?n=1000", &r), 0);
    check_pattern(r, 1000);
    corio_http_response_free(r);
    int a, cl;
    stats(x, &a, &cl);
    /* ok+malformed, oversize, close-headers, big 2000, then big 1000 + stats
     * on one kept connection: no failed one was reused. */
    assert_int_equal(a, 6);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_malformed_oversize_and_truncated_responses_fail_and_drop_conn(void **s) {
    (void)s;
    corio_http_client_opts o = {.max_body = 1000};
    run_with_upstream(bad_main, &o);
}

/* ---- retries ------------------------------------------------------------------------------ */

static int retry_main(void *arg) {
    ctx *x = arg;
    corio_http_response *r = NULL;
    char url[128];
    int a, cl;
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 2; i++) { /* the second is dropped, then retried on a new one */
        assert_corio(get(x, "/drop", &r), 0);
        assert_string_equal(corio_http_response_body(r, NULL), "first");
        corio_http_response_free(r);
    }
    stats(x, &a, &cl);
    assert_int_equal(a, 2);
    /* The pool now holds the retry's connection, which served /drop and
     * /stats: a POST there is dropped, and not retried. */
    snprintf(url, sizeof url, "%s/drop", x->up.base);
    int rc = call(x->c, "POST", url, "p", 1, &r);
    if (rc != CORIO_EOF && rc != CORIO_ECONNRESET)
        fail_msg("POST on a dropped connection: %s", corio_err_name(rc));
    stats(x, &a, &cl);
    assert_int_equal(a, 3);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_stale_pooled_conn_retried_for_get_not_for_post(void **state) {
    (void)state;
    run_with_upstream(retry_main, NULL);
}

/* ---- against a corio server, gather ------------------------------------------------------- */

static int hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "from corio");
}

static int gather_main(void *arg) {
    ctx *x = arg;
    corio_router *router;
    corio_server *srv;
    assert_corio(corio_router_new(&router), 0);
    assert_corio(corio_router_add(router, "GET", "/hello", hello, NULL), 0);
    corio_http_server http = {.router = router};
    corio_server_opts so = {.host = "127.0.0.1"};
    assert_corio(corio_server_start(&srv, &so, corio_http_serve, &http), 0);
    assert_corio(open_client(x), 0);

    char url[128];
    corio_future *fs[10];
    for (int i = 0; i < 10; i++) {
        if (i == 2)
            snprintf(url, sizeof url, "%s/malformed", x->up.base);
        else
            snprintf(url, sizeof url, "http://127.0.0.1:%d/hello", corio_server_port(srv));
        assert_corio(corio_http_request(x->c, &fs[i], "GET", url, NULL, 0, NULL, 0), 0);
    }
    int rc = 0, first = 0;
    CORIO_WITH(corio_timeout_scope(5000)) {
        first = corio_gather(fs, 10); /* returns at the failure */
        rc = corio_wait_all(fs, 10);
    }
    assert_corio(first, CORIO_EBADMSG);
    assert_corio(rc, 0);
    for (int i = 0; i < 10; i++) {
        if (i == 2) {
            assert_corio(corio_future_result(fs[i]), CORIO_EBADMSG);
        } else {
            assert_corio(corio_future_result(fs[i]), 0);
            const corio_http_response *r = corio_future_value(fs[i]);
            assert_int_equal(corio_http_response_status(r), 200);
            assert_string_equal(corio_http_response_body(r, NULL), "from corio");
        }
        corio_future_release(fs[i]);
    }
    corio_http_client_free(x->c);
    assert_corio(corio_server_shutdown(srv, 1000), 0);
    corio_router_free(router);
    return 0;
}

static void test_client_gather_of_ten_with_one_failing_against_corio_server(void **state) {
    (void)state;
    run_with_upstream(gather_main, NULL);
}

/* ---- what is refused ---------------------------------------------------------------------- */

static int refused_main(void *arg) {
    (void)arg;
    corio_http_client *c;
    corio_future *f = NULL;
    assert_corio(corio_http_client_new(&c, NULL), 0);
    assert_corio(corio_http_request(c, &f, "GET", "ftp://example.com/", NULL, 0, NULL, 0),
                 CORIO_ENOTSUP);
    assert_corio(corio_http_request(c, &f, "GET", "unix:/tmp/s", NULL, 0, NULL, 0), CORIO_ENOTSUP);
    assert_corio(corio_http_request(c, &f, "GET", "http+unix:///x", NULL, 0, NULL, 0),
                 CORIO_EINVAL);
    corio_http_header owned = {"Transfer-Encoding", "chunked"};
    assert_corio(corio_http_request(c, &f, "GET", "http://h/", &owned, 1, NULL, 0), CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GET", "127.0.0.1/x", NULL, 0, NULL, 0), CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GET", "http://h:99999/", NULL, 0, NULL, 0),
                 CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GET", "http://u@h/", NULL, 0, NULL, 0), CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GET", "http:///", NULL, 0, NULL, 0), CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GE T", "http://h/", NULL, 0, NULL, 0), CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GET(", "http://h/", NULL, 0, NULL, 0), CORIO_EINVAL);
    assert_corio(corio_http_request(c, &f, "GET", "http://h\r\nX-Injected:1/", NULL, 0, NULL, 0),
                 CORIO_EINVAL);
    corio_http_header bad = {"X-A", "1\r\nX-Injected: 2"};
    assert_corio(corio_http_request(c, &f, "GET", "http://h/", &bad, 1, NULL, 0), CORIO_EINVAL);
    assert_null(f);
    /* A refused connection fails the future. */
    assert_corio(corio_http_request(c, &f, "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0), 0);
    assert_corio(corio_await(f), CORIO_ECONNREFUSED);
    corio_future_release(f);
    corio_http_client_free(c);
    return 0;
}

static void test_client_refuses_bad_schemes_urls_and_fields(void **state) {
    (void)state;
    corio_test_run(refused_main, NULL);
}

/* ---- lifetimes ---------------------------------------------------------------------------- */

/* The future owns its response: released without the value read, or
 * before the request completes, the response is freed (valgrind and ASan
 * report a leak otherwise). */
static int owned_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f;
    assert_corio(open_client(x), 0);
    assert_corio(start(x, &f, MAIN, "/big?n=100000"), 0);
    assert_corio(corio_wait_all(&f, 1), 0);
    assert_corio(corio_future_result(f), 0);
    corio_future_release(f); /* value never read */

    /* Released at once: the request runs on and its response dies with it. */
    assert_corio(start(x, &f, MAIN, "/hold?id=1"), 0);
    corio_future_release(f);
    WAIT_FOR(x, MAIN, st, st.held == 1);
    release_hold(x, 1);
    /* One connection per origin: this waits until the other request has
     * given the connection back, i.e. has completed. */
    fetch_expect(x, MAIN, "/ok", "hello");
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 1);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_future_owns_response_released_unread_or_early_no_leak(void **state) {
    (void)state;
    corio_http_client_opts o = {.max_conns_per_origin = 1};
    run_with_upstream(owned_main, &o);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_100_sequential_gets_use_one_connection),
        cmocka_unit_test(test_client_content_length_chunked_head_and_post_bodies_byte_exact),
        cmocka_unit_test(test_client_malformed_oversize_and_truncated_responses_fail_and_drop_conn),
        cmocka_unit_test(test_client_stale_pooled_conn_retried_for_get_not_for_post),
        cmocka_unit_test(test_client_gather_of_ten_with_one_failing_against_corio_server),
        cmocka_unit_test(test_client_refuses_bad_schemes_urls_and_fields),
        cmocka_unit_test(test_client_future_owns_response_released_unread_or_early_no_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
