/* SPDX-License-Identifier: MIT */
/* The response serializer, without a socket: heads and bodies are queued on
 * the connection's iovec list, which the test reads back.  Checks the status
 * line, framing headers, Date, extra headers, header-injection refusal,
 * HEAD, bodiless statuses, HTTP/1.0 keep-alive and close. */
#include "corio_test.h"

#include <string.h>

#include "http/http_internal.h"

typedef struct fixture {
    corio__hconn c;
    char wire[8192];
} fixture;

static void setup_conn(fixture *f, int minor, bool head, bool close) {
    memset(f, 0, sizeof *f);
    corio__arena_init(&f->c.arena);
    f->c.req.c = &f->c;
    f->c.res.c = &f->c;
    f->c.req.minor = (uint8_t)minor;
    f->c.req.head_method = head;
    f->c.close = close;
}

/* What would be written: the queued iovecs, joined. */
static const char *wire(fixture *f) {
    size_t n = 0;
    for (size_t i = 0; i < f->c.nout; i++) {
        assert_true(n + f->c.out[i].iov_len < sizeof f->wire);
        memcpy(f->wire + n, f->c.out[i].iov_base, f->c.out[i].iov_len);
        n += f->c.out[i].iov_len;
    }
    f->wire[n] = '\0';
    return f->wire;
}

static void teardown_conn(fixture *f) {
    corio__arena_reset(&f->c.arena);
}

static void test_text_response_has_status_date_length_and_body(void **state) {
    (void)state;
    fixture f;
    setup_conn(&f, 1, false, false);
    assert_int_equal(corio_res_status(&f.c.res), 0); /* nothing started yet */
    assert_int_equal(corio_res_header(&f.c.res, "X-Trace", "abc 123"), 0);
    assert_int_equal(corio_res_text(&f.c.res, 201, "made"), 0);
    const char *w = wire(&f);
    assert_true(strncmp(w, "HTTP/1.1 201 Created\r\n", 22) == 0);
    assert_non_null(strstr(w, "\r\nDate: "));
    assert_non_null(strstr(w, " GMT\r\n"));
    assert_non_null(strstr(w, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(w, "\r\nContent-Length: 4\r\n"));
    assert_non_null(strstr(w, "\r\nX-Trace: abc 123\r\n"));
    assert_null(strstr(w, "Connection:"));
    const char *end = strstr(w, "\r\n\r\n");
    assert_non_null(end);
    assert_string_equal(end + 4, "made");
    assert_int_equal(corio_res_status(&f.c.res), 201);
    /* A second response to the same request is refused. */
    assert_int_equal(corio_res_text(&f.c.res, 200, "again"), CORIO_EALREADY);
    teardown_conn(&f);
}

static void test_header_injection_and_reserved_headers_refused(void **state) {
    (void)state;
    fixture f;
    setup_conn(&f, 1, false, false);
    corio_res *res = &f.c.res;
    assert_int_equal(corio_res_header(res, "X-A", "a\r\nSet-Cookie: x=1"), CORIO_EINVAL);
    assert_int_equal(corio_res_header(res, "X-A", "a\nb"), CORIO_EINVAL);
    assert_int_equal(corio_res_header(res, "Bad Name", "v"), CORIO_EINVAL);
    assert_int_equal(corio_res_header(res, "X:A", "v"), CORIO_EINVAL);
    assert_int_equal(corio_res_header(res, "", "v"), CORIO_EINVAL);
    assert_int_equal(corio_res_header(res, "Content-Length", "5"), CORIO_EPERM);
    assert_int_equal(corio_res_header(res, "transfer-encoding", "chunked"), CORIO_EPERM);
    assert_int_equal(corio_res_json(res, 200, "{}"), 0);
    const char *w = wire(&f);
    assert_null(strstr(w, "Set-Cookie"));
    assert_non_null(strstr(w, "\r\nContent-Type: application/json\r\n"));
    assert_int_equal(corio_res_header(res, "X-Late", "v"), CORIO_EALREADY);
    teardown_conn(&f);
}

static void test_head_and_bodiless_statuses_send_no_body(void **state) {
    (void)state;
    fixture f;
    setup_conn(&f, 1, true, false);
    assert_int_equal(corio_res_text(&f.c.res, 200, "Hello, World!"), 0);
    const char *w = wire(&f);
    assert_non_null(strstr(w, "\r\nContent-Length: 13\r\n"));
    assert_true(strlen(w) >= 4 && strcmp(w + strlen(w) - 4, "\r\n\r\n") == 0);
    teardown_conn(&f);

    setup_conn(&f, 1, false, false);
    assert_int_equal(corio_res_send(&f.c.res, 204, "text/plain", "x", 1), 0);
    w = wire(&f);
    assert_true(strncmp(w, "HTTP/1.1 204 No Content\r\n", 25) == 0);
    assert_null(strstr(w, "Content-Length"));
    assert_null(strstr(w, "Content-Type"));
    assert_true(strcmp(w + strlen(w) - 4, "\r\n\r\n") == 0);
    teardown_conn(&f);

    setup_conn(&f, 1, false, false);
    assert_int_equal(corio_res_send(&f.c.res, 99, NULL, NULL, 0), CORIO_EINVAL);
    assert_int_equal(corio_res_send(&f.c.res, 1000, NULL, NULL, 0), CORIO_EINVAL);
    teardown_conn(&f);
}

static void test_connection_header_follows_keep_alive_rules(void **state) {
    (void)state;
    fixture f;
    setup_conn(&f, 0, false, false); /* HTTP/1.0 kept alive: say so */
    assert_int_equal(corio_res_text(&f.c.res, 200, "x"), 0);
    assert_non_null(strstr(wire(&f), "\r\nConnection: keep-alive\r\n"));
    teardown_conn(&f);
    setup_conn(&f, 1, false, true); /* closing after this response */
    assert_int_equal(corio_res_text(&f.c.res, 200, "x"), 0);
    assert_non_null(strstr(wire(&f), "\r\nConnection: close\r\n"));
    teardown_conn(&f);
}

static void test_status_reasons(void **state) {
    (void)state;
    assert_string_equal(corio__http_reason(200), "OK");
    assert_string_equal(corio__http_reason(404), "Not Found");
    assert_string_equal(corio__http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(corio__http_reason(505), "HTTP Version Not Supported");
    assert_string_equal(corio__http_reason(599), "Unknown");
    const char *date = corio__http_date();
    assert_int_equal(strlen(date), 29);         /* "Wed, 25 Nov 2026 13:37:43 GMT" */
    assert_ptr_equal(corio__http_date(), date); /* formatted once, reused */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_response_has_status_date_length_and_body),
        cmocka_unit_test(test_header_injection_and_reserved_headers_refused),
        cmocka_unit_test(test_head_and_bodiless_statuses_send_no_body),
        cmocka_unit_test(test_connection_header_follows_keep_alive_rules),
        cmocka_unit_test(test_status_reasons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
