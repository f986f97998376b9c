/* SPDX-License-Identifier: MIT */
/* Router and URL helpers: matching order, parameters, wildcard, 404/405 with
 * Allow, HEAD via GET, bad patterns, percent-decoding. */
#include "corio_test.h"

#include <string.h>

#include "http/http_internal.h"
#include "http/router.h"

static int h_a(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    return 1;
}
static int h_b(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    return 2;
}

static corio_strv sv(const char *s) {
    return (corio_strv){s, strlen(s)};
}

static int route(corio_router *r, const char *method, const char *path, corio__match *m) {
    return corio__router_match(r, sv(method), sv(path), m);
}

static void test_literal_beats_parameter_and_params_are_captured(void **state) {
    (void)state;
    corio_router *r;
    assert_int_equal(corio_router_new(&r), 0);
    assert_int_equal(corio_router_add(r, "GET", "/users/{id}", h_a, NULL), 0);
    assert_int_equal(corio_router_add(r, "GET", "/users/me", h_b, NULL), 0);
    assert_int_equal(corio_router_add(r, "GET", "/users/{id}/posts/{post}", h_b, (void *)7), 0);
    corio__match m;
    assert_int_equal(route(r, "GET", "/users/me", &m), 200);
    assert_ptr_equal(m.fn, h_b);
    assert_int_equal(m.nparams, 0);
    assert_int_equal(route(r, "GET", "/users/42", &m), 200);
    assert_ptr_equal(m.fn, h_a);
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.params[0].name, "id");
    assert_true(corio_strv_eq(m.params[0].value, "42"));
    assert_int_equal(route(r, "GET", "/users/42/posts/9", &m), 200);
    assert_ptr_equal(m.arg, (void *)7);
    assert_int_equal(m.nparams, 2);
    assert_true(corio_strv_eq(m.params[1].value, "9"));
    assert_int_equal(route(r, "GET", "/users", &m), 404);
    assert_int_equal(route(r, "GET", "/users/42/posts", &m), 404);
    corio_router_free(r);
}

static void test_wildcard_takes_the_rest_of_the_path(void **state) {
    (void)state;
    corio_router *r;
    assert_int_equal(corio_router_new(&r), 0);
    assert_int_equal(corio_router_add(r, "GET", "/static/*", h_a, NULL), 0);
    assert_int_equal(corio_router_add(r, "GET", "/static/special", h_b, NULL), 0);
    corio__match m;
    assert_int_equal(route(r, "GET", "/static/css/site.css", &m), 200);
    assert_ptr_equal(m.fn, h_a);
    assert_string_equal(m.params[0].name, "*");
    assert_true(corio_strv_eq(m.params[0].value, "css/site.css"));
    assert_int_equal(route(r, "GET", "/static/special", &m), 200);
    assert_ptr_equal(m.fn, h_b);
    corio_router_free(r);
}

static void test_method_not_allowed_lists_allow_and_get_answers_head(void **state) {
    (void)state;
    corio_router *r;
    assert_int_equal(corio_router_new(&r), 0);
    assert_int_equal(corio_router_add(r, "GET", "/items", h_a, NULL), 0);
    assert_int_equal(corio_router_add(r, "POST", "/items", h_b, NULL), 0);
    corio__match m;
    assert_int_equal(route(r, "HEAD", "/items", &m), 200);
    assert_ptr_equal(m.fn, h_a);
    assert_int_equal(route(r, "DELETE", "/items", &m), 405);
    assert_non_null(strstr(m.allow, "GET"));
    assert_non_null(strstr(m.allow, "HEAD"));
    assert_non_null(strstr(m.allow, "POST"));
    corio_router_free(r);
}

static void test_bad_patterns_and_duplicates_are_refused(void **state) {
    (void)state;
    corio_router *r;
    assert_int_equal(corio_router_new(&r), 0);
    assert_int_equal(corio_router_add(r, "GET", "no-slash", h_a, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "get", "/x", h_a, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "GET", "/a/{}", h_a, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "GET", "/a/{x", h_a, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "GET", "/a/*/b", h_a, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "GET", "/a//b", h_a, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "GET", "/x", NULL, NULL), CORIO_EINVAL);
    assert_int_equal(corio_router_add(r, "GET", "/x/{id}", h_a, NULL), 0);
    assert_int_equal(corio_router_add(r, "GET", "/x/{id}", h_b, NULL), CORIO_EALREADY);
    assert_int_equal(corio_router_add(r, "GET", "/x/{other}", h_b, NULL), CORIO_EINVAL);
    corio_router_free(r);
}

static void test_percent_decoding(void **state) {
    (void)state;
    char out[64];
    assert_int_equal(corio__pct_decode(sv("/a%20b%2Fc"), out, false), 6);
    assert_memory_equal(out, "/a b/c", 6);
    assert_int_equal(corio__pct_decode(sv("a+b"), out, true), 3);
    assert_memory_equal(out, "a b", 3);
    assert_int_equal(corio__pct_decode(sv("a+b"), out, false), 3);
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(corio__pct_decode(sv("%zz"), out, false), -1);
    assert_int_equal(corio__pct_decode(sv("%2"), out, false), -1);
    assert_int_equal(corio__pct_decode(sv("%"), out, false), -1);
    assert_int_equal(corio__pct_decode(sv("a%00"), out, false), -1);
}

static void test_absolute_form_targets_reduce_to_their_path(void **state) {
    (void)state;
    corio_strv t = corio__origin_target(sv("/a?b"));
    assert_true(corio_strv_eq(t, "/a?b"));
    t = corio__origin_target(sv("http://host:80/a/b?c=1"));
    assert_true(corio_strv_eq(t, "/a/b?c=1"));
    t = corio__origin_target(sv("HTTPS://host"));
    assert_true(corio_strv_eq(t, "/"));
    t = corio__origin_target(sv("http://host?x"));
    assert_int_equal(t.len, 0); /* a query without a path: refused by the caller */
    t = corio__origin_target(sv("http:///a"));
    assert_int_equal(t.len, 0); /* no authority */
    t = corio__origin_target(sv("ftp://host/a"));
    assert_true(corio_strv_eq(t, "ftp://host/a")); /* unchanged, refused by the caller */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_beats_parameter_and_params_are_captured),
        cmocka_unit_test(test_wildcard_takes_the_rest_of_the_path),
        cmocka_unit_test(test_method_not_allowed_lists_allow_and_get_answers_head),
        cmocka_unit_test(test_bad_patterns_and_duplicates_are_refused),
        cmocka_unit_test(test_percent_decoding),
        cmocka_unit_test(test_absolute_form_targets_reduce_to_their_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
