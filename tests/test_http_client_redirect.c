/* SPDX-License-Identifier: MIT */
/* The HTTP client's redirects, against tests/upstream.py
 * (http_client_helpers.h): the method and body rules of 301/302/303/307/308,
 * relative, absolute and scheme-relative Locations, max_redirects 0 (the 3xx
 * is the answer) and the limit (one hop more is CORIO_ERANGE), and
 * Authorization, Cookie and a caller's Host dropped once a redirect leaves
 * the origin. */
#include "http_client_helpers.h"

#include <signal.h>
#include <string.h>

/* ---- redirects ---------------------------------------------------------------------------- */

static const corio_http_header creds[] = {
    {"Authorization", "Bearer t"},
    {"Cookie", "a=b"},
    {"Content-Type", "text/plain"},
    {"X-Other", "1"},
};

static int redirects_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    char path[256];
    assert_corio(open_client(x), 0);
    static const struct {
        int code;
        const char *method, *seen;
    } cases[] = {
        {301, "GET", "GET len=0 auth=1 cookie=1 ct=1 other=1 port=main"},
        {301, "POST", "GET len=0 auth=1 cookie=1 ct=0 other=1 port=main"},
        {302, "POST", "GET len=0 auth=1 cookie=1 ct=0 other=1 port=main"},
        {303, "POST", "GET len=0 auth=1 cookie=1 ct=0 other=1 port=main"},
        {303, "PUT", "GET len=0 auth=1 cookie=1 ct=0 other=1 port=main"},
        {307, "POST", "POST len=3 auth=1 cookie=1 ct=1 other=1 port=main"},
        {308, "PUT", "PUT len=3 auth=1 cookie=1 ct=1 other=1 port=main"},
        {302, "DELETE", "DELETE len=0 auth=1 cookie=1 ct=1 other=1 port=main"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool body = strcmp(cases[i].method, "GET") && strcmp(cases[i].method, "DELETE");
        corio_http_req rq = {.method = cases[i].method,
                             .headers = creds,
                             .nheaders = 4,
                             .body = body ? "abc" : NULL,
                             .body_length = body ? 3 : 0,
                             .max_redirects = 1};
        /* A relative Location: the same origin. */
        snprintf(path, sizeof path, "/redirect?code=%d&to=/inspect", cases[i].code);
        assert_corio(request_to(x, rq, MAIN, path, &r), 0);
        if (strcmp(corio_http_response_body(r, NULL), cases[i].seen))
            fail_msg("%s after %d: upstream saw \"%s\", expected \"%s\"", cases[i].method,
                     cases[i].code, corio_http_response_body(r, NULL), cases[i].seen);
        assert_int_equal(corio_http_response_status(r), 200);
        corio_http_response_free(r);
    }
    /* An absolute Location on the same origin keeps the credentials. */
    corio_http_req rq = {.headers = creds, .nheaders = 4, .max_redirects = 1};
    snprintf(path, sizeof path, "/redirect?code=302&to=http://127.0.0.1:%d/inspect",
             x->up.ports[MAIN]);
    assert_corio(request_to(x, rq, MAIN, path, &r), 0);
    assert_string_equal(corio_http_response_body(r, NULL),
                        "GET len=0 auth=1 cookie=1 ct=1 other=1 port=main");
    corio_http_response_free(r);
    /* Every 3xx's body was read away: one connection served them all. */
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 1);

    /* max_redirects 0 (and corio_http_request): the 3xx is the answer. */
    rq.max_redirects = 0;
    assert_corio(request_to(x, rq, MAIN, "/redirect?code=301&to=/inspect", &r), 0);
    assert_int_equal(corio_http_response_status(r), 301);
    assert_string_equal(corio_http_response_header(r, "Location"), "/inspect");
    assert_string_equal(corio_http_response_body(r, NULL), "moved");
    corio_http_response_free(r);
    assert_corio(fetch(x, MAIN, "/redirect?code=307&to=/inspect", &r), 0);
    assert_int_equal(corio_http_response_status(r), 307);
    corio_http_response_free(r);

    /* Exactly max_redirects hops are followed; one more is CORIO_ERANGE. */
    rq.max_redirects = 3;
    assert_corio(request_to(x, rq, MAIN, "/chain?n=3", &r), 0);
    assert_string_equal(corio_http_response_body(r, NULL), "end");
    corio_http_response_free(r);
    rq.max_redirects = 2;
    assert_corio(request_to(x, rq, MAIN, "/chain?n=3", &r), CORIO_ERANGE);
    rq.max_redirects = 5;
    assert_corio(request_to(x, rq, MAIN, "/loop", &r), CORIO_ERANGE);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_redirects_followed_method_body_rules_and_limit(void **state) {
    (void)state;
    run_with_upstream(redirects_main, NULL);
}

static int redirect_cross_origin_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    char path[256];
    assert_corio(open_client(x), 0);
    corio_http_req rq = {.method = "POST",
                         .headers = creds,
                         .nheaders = 4,
                         .body = "abc",
                         .body_length = 3,
                         .max_redirects = 2};
    snprintf(path, sizeof path, "/redirect?code=307&to=http://127.0.0.1:%d/inspect",
             x->up.ports[ALT]);
    assert_corio(request_to(x, rq, MAIN, path, &r), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    assert_string_equal(corio_http_response_body(r, NULL),
                        "POST len=3 auth=0 cookie=0 ct=1 other=1 port=alt");
    corio_http_response_free(r);
    /* And back: the credentials stay dropped for the rest of the chain. */
    char back[128];
    snprintf(back, sizeof back, "http://127.0.0.1:%d/redirect?code=302&to=/inspect",
             x->up.ports[ALT]);
    snprintf(path, sizeof path, "/redirect?code=302&to=%s", back);
    rq = (corio_http_req){.headers = creds, .nheaders = 4, .max_redirects = 2};
    assert_corio(request_to(x, rq, MAIN, path, &r), 0);
    assert_string_equal(corio_http_response_body(r, NULL),
                        "GET len=0 auth=0 cookie=0 ct=1 other=1 port=alt");
    corio_http_response_free(r);
    /* A scheme-relative Location names another origin too. */
    snprintf(path, sizeof path, "/redirect?code=302&to=//127.0.0.1:%d/inspect", x->up.ports[THIRD]);
    assert_corio(request_to(x, rq, MAIN, path, &r), 0);
    assert_string_equal(corio_http_response_body(r, NULL),
                        "GET len=0 auth=0 cookie=0 ct=1 other=1 port=third");
    corio_http_response_free(r);
    /* A caller's Host names the origin it was given for: not sent to another. */
    static const corio_http_header host[] = {{"Host", "api.example"}};
    rq = (corio_http_req){.headers = host, .nheaders = 1, .max_redirects = 1};
    snprintf(path, sizeof path, "/redirect?code=302&to=http://127.0.0.1:%d/host", x->up.ports[ALT]);
    assert_corio(request_to(x, rq, MAIN, path, &r), 0);
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", x->up.ports[ALT]);
    assert_string_equal(corio_http_response_body(r, NULL), want);
    corio_http_response_free(r);
    assert_corio(request_to(x, rq, MAIN, "/redirect?code=302&to=/host", &r), 0);
    assert_string_equal(corio_http_response_body(r, NULL), "api.example"); /* same origin: kept */
    corio_http_response_free(r);
    ustats(x, ALT, &st);
    assert_int_equal(st.accepts, 1);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_redirect_to_other_origin_drops_authorization_and_cookie(void **state) {
    (void)state;
    run_with_upstream(redirect_cross_origin_main, NULL);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_redirects_followed_method_body_rules_and_limit),
        cmocka_unit_test(test_client_redirect_to_other_origin_drops_authorization_and_cookie),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
