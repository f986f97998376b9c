/* SPDX-License-Identifier: MIT */
/* corio/metrics.h in one process: the health probes' answers (readiness
 * callback included), route labels (the pattern, never the raw path; label
 * values escaped), an app gauge with an escaped HELP text, and the
 * registration refusals.  Served with corio/http_test.h on loopback; the
 * exposition's strict parsing and the multi-worker sums are tested by
 * test_metrics.py on examples/hello. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <corio/corio.h>
#include <corio/http_test.h>
#include <corio/metrics.h>
#include <string.h>

static int ok(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "ok");
}

static double two_and_a_half(void *arg) {
    (void)arg;
    return 2.5;
}

static bool ready_flag = true;

static bool is_ready(void *arg) {
    return *(bool *)arg;
}

/* GET path on the test server: its status, and its body copied to buf. */
static int get(corio_http_test *t, const char *path, char *buf, size_t len) {
    corio_http_response *r;
    assert_int_equal(corio_http_test_get(t, &r, path), 0);
    int status = corio_http_response_status(r);
    size_t n;
    const char *body = corio_http_response_body(r, &n);
    assert_true(n < len);
    memcpy(buf, body, n);
    buf[n] = '\0';
    corio_http_response_free(r);
    return status;
}

static int probes_main(void *arg) {
    corio_http_test *t;
    static char body[1 << 16];
    assert_int_equal(corio_http_test_start(&t, arg, NULL), 0);
    assert_int_equal(get(t, "/healthz", body, sizeof body), 200);
    assert_string_equal(body, "ok\n");
    assert_int_equal(get(t, "/readyz", body, sizeof body), 200);
    corio_health_set_ready(is_ready, &ready_flag);
    ready_flag = false;
    assert_int_equal(get(t, "/readyz", body, sizeof body), 503);
    assert_string_equal(body, "not ready\n");
    ready_flag = true;
    assert_int_equal(get(t, "/readyz", body, sizeof body), 200);
    corio_health_set_ready(NULL, NULL);

    assert_int_equal(get(t, "/items/1", body, sizeof body), 200);
    assert_int_equal(get(t, "/items/22", body, sizeof body), 200);
    assert_int_equal(get(t, "/a%22b%5C", body, sizeof body), 200); /* route /a"b\ */
    assert_int_equal(get(t, "/nothing/here", body, sizeof body), 404);
    assert_int_equal(get(t, "/metrics", body, sizeof body), 200);
    assert_non_null(strstr(
        body,
        "corio_http_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"2xx\"} 2\n"));
    assert_non_null(strstr(
        body,
        "corio_http_requests_total{method=\"GET\",route=\"/a\\\"b\\\\\",status=\"2xx\"} 1\n"));
    assert_non_null(strstr(
        body,
        "corio_http_requests_total{method=\"GET\",route=\"(unmatched)\",status=\"4xx\"} 1\n"));
    assert_non_null(strstr(body, "corio_http_requests_total{method=\"GET\",route=\"/readyz\","
                                 "status=\"5xx\"} 1\n"));
    assert_null(strstr(body, "/items/1"));
    assert_null(strstr(body, "/nothing"));
    assert_non_null(strstr(body, "# HELP test_gauge a \\\\ b\\nc\n# TYPE test_gauge gauge\n"
                                 "test_gauge 2.5\n"));
    assert_non_null(strstr(body, "# TYPE corio_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(body, "corio_http_request_duration_seconds_count 8\n"));
    assert_int_equal(corio_http_test_stop(t), 0);
    return 0;
}

static void test_probes_and_labels(void **state) {
    (void)state;
    corio_router *r;
    assert_int_equal(corio_router_new(&r), 0);
    assert_int_equal(corio_router_add(r, "GET", "/items/{id}", ok, NULL), 0);
    assert_int_equal(corio_router_add(r, "GET", "/a\"b\\", ok, NULL), 0);
    assert_int_equal(corio_health_mount(r, NULL, NULL), 0);
    assert_int_equal(corio_health_mount(r, NULL, NULL), CORIO_EALREADY);
    assert_int_equal(corio_metrics_mount(r, NULL), 0);
    assert_int_equal(corio_metrics_gauge("test_gauge", "a \\ b\nc", two_and_a_half, NULL), 0);
    assert_int_equal(corio_run(probes_main, r), 0);
    corio_router_free(r);
}

static void test_gauge_registration_refusals(void **state) {
    (void)state;
    assert_int_equal(corio_metrics_gauge("9lives", "x", two_and_a_half, NULL), CORIO_EINVAL);
    assert_int_equal(corio_metrics_gauge("bad-name", "x", two_and_a_half, NULL), CORIO_EINVAL);
    assert_int_equal(corio_metrics_gauge("fine", "x", NULL, NULL), CORIO_EINVAL);
    /* corio's own families' prefix: a repeat of one would break every scrape */
    assert_int_equal(corio_metrics_gauge("corio_connections_open", "x", two_and_a_half, NULL),
                     CORIO_EINVAL);
    assert_int_equal(corio_metrics_gauge("twice:ok", "x", two_and_a_half, NULL), 0);
    assert_int_equal(corio_metrics_gauge("twice:ok", "x", two_and_a_half, NULL), CORIO_EALREADY);
    assert_int_equal(corio_metrics_mount(NULL, NULL), CORIO_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probes_and_labels),
        cmocka_unit_test(test_gauge_registration_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
