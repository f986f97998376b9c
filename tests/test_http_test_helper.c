/* SPDX-License-Identifier: MIT */
/* corio/http_test.h, the test helper for users' own tests — and the README's
 * example of it ("Testing your handlers"): public headers and cmocka only,
 * as a user's test would be.  A router with a JSON route and a route that
 * reads a POST body is served on 127.0.0.1 port 0 inside the test's loop
 * and called with the helper's client: status, a header and the body are
 * checked, and a 404.  Then the refusals: a NULL router, a bad path, calls
 * outside corio_run; and a handler still running when the test stops. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <corio/corio.h>
#include <corio/http_test.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* ---- the application's handlers --------------------------------------------------------- */

static int get_user(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv id;
    char json[64];
    corio_req_param(req, "id", &id);
    snprintf(json, sizeof json, "{\"id\":\"%.*s\"}", (int)id.len, id.ptr);
    return corio_res_json(res, 200, json);
}

static int post_echo(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv body;
    int rc = corio_req_body(req, &body);
    if (rc)
        return rc;
    char n[24];
    snprintf(n, sizeof n, "%zu", body.len);
    if ((rc = corio_res_header(res, "X-Body-Length", n)))
        return rc;
    return corio_res_send(res, 201, "text/plain", body.ptr, body.len);
}

/* ---- the example: GET, POST, a 404 ------------------------------------------------------ */

static int example_main(void *arg) {
    corio_http_test *t;
    corio_http_response *r = NULL;
    assert_int_equal(corio_http_test_start(&t, arg, NULL), 0);

    assert_int_equal(corio_http_test_get(t, &r, "/users/7"), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    assert_string_equal(corio_http_response_header(r, "Content-Type"), "application/json");
    assert_string_equal(corio_http_response_body(r, NULL), "{\"id\":\"7\"}");
    corio_http_response_free(r);

    corio_http_header h[] = {{"Content-Type", "text/plain"}};
    assert_int_equal(corio_http_test_call(t, &r, "POST", "/echo", h, 1, "hello", 5), 0);
    assert_int_equal(corio_http_response_status(r), 201);
    assert_string_equal(corio_http_response_header(r, "X-Body-Length"), "5");
    assert_string_equal(corio_http_response_body(r, NULL), "hello");
    corio_http_response_free(r);

    assert_int_equal(corio_http_test_get(t, &r, "/nope"), 0);
    assert_int_equal(corio_http_response_status(r), 404);
    corio_http_response_free(r);

    assert_int_equal(corio_http_test_stop(t), 0);
    return 0;
}

static void test_http_test_serves_router_to_get_post_and_404(void **state) {
    (void)state;
    corio_router *router;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_router_add(router, "GET", "/users/{id}", get_user, NULL), 0);
    assert_int_equal(corio_router_add(router, "POST", "/echo", post_echo, NULL), 0);
    assert_int_equal(corio_run(example_main, router), 0); /* 0: the loop closed clean */
    corio_router_free(router);
}

/* ---- the base URL and the client, for requests the helpers do not make ------------------- */

static int base_main(void *arg) {
    corio_http_test *t;
    assert_int_equal(corio_http_test_start(&t, arg, NULL), 0);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", corio_http_test_port(t));
    assert_string_equal(corio_http_test_base(t), url);
    strncat(url, "/users/x%20y", sizeof url - strlen(url) - 1);
    corio_future *f;
    assert_int_equal(
        corio_http_request(corio_http_test_client(t), &f, "GET", url, NULL, 0, NULL, 0), 0);
    assert_int_equal(corio_await(f), 0);
    const corio_http_response *r = corio_future_value(f);
    assert_string_equal(corio_http_response_body(r, NULL), "{\"id\":\"x y\"}");
    corio_future_release(f);
    assert_int_equal(corio_http_test_stop(t), 0);
    return 0;
}

static void test_http_test_base_url_and_client_reach_the_server(void **state) {
    (void)state;
    corio_router *router;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_router_add(router, "GET", "/users/{id}", get_user, NULL), 0);
    assert_int_equal(corio_run(base_main, router), 0);
    corio_router_free(router);
}

/* ---- what is refused -------------------------------------------------------------------- */

static int refused_main(void *arg) {
    corio_http_test *t = NULL;
    corio_http_response *r = NULL;
    assert_int_equal(corio_http_test_start(&t, NULL, NULL), CORIO_EINVAL);
    assert_int_equal(corio_http_test_start(NULL, arg, NULL), CORIO_EINVAL);
    assert_null(t);
    assert_int_equal(corio_http_test_stop(NULL), 0);

    assert_int_equal(corio_http_test_start(&t, arg, NULL), 0);
    assert_int_equal(corio_http_test_get(t, &r, "users/7"), CORIO_EINVAL);
    assert_int_equal(corio_http_test_get(t, &r, NULL), CORIO_EINVAL);
    assert_int_equal(corio_http_test_get(t, NULL, "/"), CORIO_EINVAL);
    assert_int_equal(corio_http_test_call(t, &r, NULL, "/", NULL, 0, NULL, 0), CORIO_EINVAL);
    assert_int_equal(corio_http_test_call(t, &r, "GET", "/\r\nX-Injected: 1", NULL, 0, NULL, 0),
                     CORIO_EINVAL);
    corio_http_header owned = {"Transfer-Encoding", "chunked"};
    assert_int_equal(corio_http_test_call(t, &r, "GET", "/", &owned, 1, NULL, 0), CORIO_EINVAL);
    assert_null(r);
    assert_int_equal(corio_http_test_stop(t), 0);
    return 0;
}

static void test_http_test_refuses_null_router_and_bad_paths(void **state) {
    (void)state;
    corio_router *router;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_run(refused_main, router), 0);
    corio_router_free(router);
}

static void test_http_test_outside_corio_run_is_enotask(void **state) {
    (void)state;
    corio_router *router;
    corio_http_test *t = NULL;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_http_test_start(&t, router, NULL), CORIO_ENOTASK);
    assert_null(t);
    corio_router_free(router);
}

/* ---- a handler still running when the test stops ---------------------------------------- */

static int sleep_long(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    corio_event_set(arg); /* the test may stop the server now */
    int rc = corio_sleep(60000); /* cancelled by the stop's drain deadline */
    if (rc)
        return rc;
    return corio_res_text(res, 200, "late");
}

static corio_event handler_running;

static int hung_main(void *arg) {
    corio_http_test *t;
    corio_event_init(&handler_running);
    assert_int_equal(corio_http_test_start(&t, arg, NULL), 0);
    corio_future *f;
    char url[64];
    snprintf(url, sizeof url, "%s/sleep", corio_http_test_base(t));
    assert_int_equal(
        corio_http_request(corio_http_test_client(t), &f, "GET", url, NULL, 0, NULL, 0), 0);
    assert_int_equal(corio_event_wait(&handler_running), 0);
    assert_int_equal(corio_http_test_stop(t), CORIO_ETIMEDOUT); /* the drain ran out */
    /* The handler was cancelled: its request got the server's answer to a
     * handler that failed before responding (a 5xx), or a closed connection. */
    int rc = corio_await(f);
    if (rc == 0)
        assert_true(corio_http_response_status(corio_future_value(f)) >= 500);
    else
        assert_true(rc == CORIO_EOF || rc == CORIO_ECONNRESET || rc == CORIO_EBADMSG);
    corio_future_release(f);
    return 0;
}

static void test_http_test_stop_cancels_a_handler_still_running(void **state) {
    (void)state;
    corio_router *router;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_router_add(router, "GET", "/sleep", sleep_long, &handler_running), 0);
    assert_int_equal(corio_run(hung_main, router), 0);
    corio_router_free(router);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_test_serves_router_to_get_post_and_404),
        cmocka_unit_test(test_http_test_base_url_and_client_reach_the_server),
        cmocka_unit_test(test_http_test_refuses_null_router_and_bad_paths),
        cmocka_unit_test(test_http_test_outside_corio_run_is_enotask),
        cmocka_unit_test(test_http_test_stop_cancels_a_handler_still_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
