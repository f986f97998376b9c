/* SPDX-License-Identifier: MIT */
/* What a handler sees of a request (framework/http/request.c, router.c):
 * an in-process HTTP server on 127.0.0.1 port 0 (corio_server_start +
 * corio_http_serve), a corio client stream writing raw HTTP bytes, and
 * handlers that record what the accessors returned.  Covers the peer, the
 * header count and order, the raw query string, the minor version, route
 * middleware (corio_route_use) and corio_req_body after corio_req_read. */
#include "corio_test.h"
#include "base/tchar.h"

#include <string.h>

/* ---- the fixture: a server, one request, the response ------------------------------------ */

typedef struct fixture {
    corio_router *router;
    corio_http_server http;
    corio_server *srv;
} fixture;

static int fixture_start(fixture *f) {
    f->http = (corio_http_server){.router = f->router};
    corio_server_opts o = {.host = "127.0.0.1"};
    return corio_server_start(&f->srv, &o, corio_http_serve, &f->http);
}

/* Sends `request` (raw bytes, ending the connection with "Connection:
 * close" or HTTP/1.0) on a new connection and reads the response to EOF
 * into resp (NUL-terminated).  *local gets the client's own address. */
static int exchange(fixture *f, const char *request, char *resp, size_t cap, char *local,
                    size_t local_len) {
    corio_stream *c;
    int rc = corio_connect(&c, "127.0.0.1", (uint16_t)corio_server_port(f->srv), 5000);
    if (rc)
        return rc;
    if (local)
        rc = corio_stream_local_name(c, local, local_len);
    if (rc == 0)
        rc = corio_stream_write(c, request, strlen(request));
    size_t len = 0;
    while (rc == 0) {
        int n = corio_stream_read(c, resp + len, cap - 1 - len);
        if (n == CORIO_EOF)
            break;
        if (n < 0)
            rc = n;
        else if ((len += (size_t)n) == cap - 1)
            rc = CORIO_ERANGE;
    }
    resp[len] = '\0';
    corio_stream_close(c);
    return rc;
}

static int fixture_stop(fixture *f) {
    int rc = corio_server_shutdown(f->srv, 1000);
    corio_router_free(f->router);
    return rc;
}

/* Copies a slice into a C string buffer. */
static void copy_strv(char *dst, size_t cap, corio_strv v) {
    snprintf(dst, cap, "%.*s", (int)v.len, v.ptr ? v.ptr : "");
}

/* ---- peer, headers, query string, version -----------------------------------------------------
 */

typedef struct seen {
    int calls;
    char peer[64];
    int peer_rc, short_peer_rc;
    char query[64];
    bool query_is_empty_slice;
    int minor;
    size_t header_count;
    char headers[8][64]; /* "name: value" in arrival order */
    bool past_end;       /* corio_req_header_at(count) is false */
} seen;

static int record_request(corio_req *req, corio_res *res, void *arg) {
    seen *s = arg;
    s->calls++;
    s->peer_rc = corio_req_peer(req, s->peer, sizeof s->peer);
    char tiny[4];
    s->short_peer_rc = corio_req_peer(req, tiny, sizeof tiny);
    corio_strv q = corio_req_query_string(req);
    copy_strv(s->query, sizeof s->query, q);
    s->query_is_empty_slice = q.len == 0;
    s->minor = corio_req_version_minor(req);
    s->header_count = corio_req_header_count(req);
    for (size_t i = 0; i < s->header_count && i < 8; i++) {
        corio_strv name, value;
        if (corio_req_header_at(req, i, &name, &value))
            snprintf(s->headers[i], sizeof s->headers[i], "%.*s: %.*s", (int)name.len, name.ptr,
                     (int)value.len, value.ptr);
    }
    corio_strv name, value;
    s->past_end = !corio_req_header_at(req, s->header_count, &name, &value);
    return corio_res_text(res, 200, "seen");
}

typedef struct accessors_state {
    seen v11, v10;
    char local11[64], resp11[1024], resp10[1024];
    int rc11, rc10;
} accessors_state;

static int accessors_main(void *arg) {
    accessors_state *st = arg;
    fixture f = {0};
    int rc = corio_router_new(&f.router);
    if (rc == 0)
        rc = corio_router_add(f.router, "GET", "/v11", record_request, &st->v11);
    if (rc == 0)
        rc = corio_router_add(f.router, "GET", "/v10", record_request, &st->v10);
    if (rc == 0)
        rc = fixture_start(&f);
    if (rc) {
        corio_router_free(f.router);
        return rc;
    }
    st->rc11 = exchange(&f,
                        "GET /v11?a=1&b=two%20x&a=3 HTTP/1.1\r\n"
                        "Host: example\r\n"
                        "X-One: first\r\n"
                        "X-Two: 2\r\n"
                        "x-one: second\r\n"
                        "Connection: close\r\n"
                        "\r\n",
                        st->resp11, sizeof st->resp11, st->local11, sizeof st->local11);
    st->rc10 = exchange(&f, "GET /v10 HTTP/1.0\r\n\r\n", st->resp10, sizeof st->resp10, NULL, 0);
    return fixture_stop(&f);
}

/* The tchar bitmap (base/tchar.h) against RFC 9110's definition, every
 * byte value. */
static void test_tchar_bits_match_the_definition(void **state) {
    (void)state;
    for (int ch = 0; ch < 256; ch++) {
        bool want = ch > 32 && ch < 127 && !strchr("\"(),/:;<=>?@[\\]{}", ch);
        if (corio__is_tchar((unsigned char)ch) != want)
            fail_msg("byte 0x%02x: tchar %d, RFC 9110 says %d", ch, !want, want);
    }
}

static void test_request_accessors_report_what_the_client_sent(void **state) {
    (void)state;
    accessors_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(accessors_main, &st);
    assert_int_equal(st.rc11, 0);
    assert_int_equal(st.rc10, 0);
    assert_true(strncmp(st.resp11, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strstr(st.resp10, " 200 "));
    /* HTTP/1.1 with a query and five fields, one name repeated. */
    assert_int_equal(st.v11.calls, 1);
    assert_int_equal(st.v11.peer_rc, 0);
    assert_string_equal(st.v11.peer, st.local11); /* the client's own address */
    assert_true(st.v11.short_peer_rc < 0);        /* http.h names no code; the stream says ERANGE */
    assert_string_equal(st.v11.query, "a=1&b=two%20x&a=3"); /* raw: not decoded */
    assert_int_equal(st.v11.minor, 1);
    assert_int_equal(st.v11.header_count, 5);
    assert_string_equal(st.v11.headers[0], "Host: example");
    assert_string_equal(st.v11.headers[1], "X-One: first");
    assert_string_equal(st.v11.headers[2], "X-Two: 2");
    assert_string_equal(st.v11.headers[3], "x-one: second");
    assert_string_equal(st.v11.headers[4], "Connection: close");
    assert_true(st.v11.past_end);
    /* HTTP/1.0, no query, no fields. */
    assert_int_equal(st.v10.calls, 1);
    assert_int_equal(st.v10.minor, 0);
    assert_true(st.v10.query_is_empty_slice);
    assert_int_equal(st.v10.header_count, 0);
    assert_true(st.v10.past_end);
    assert_int_equal(st.v10.peer_rc, 0);
    assert_true(strncmp(st.v10.peer, "127.0.0.1:", 10) == 0);
}

/* ---- route middleware
 * ----------------------------------------------------------------------------- */

typedef struct trail {
    char steps[16][16];
    int n;
} trail;

static void step(trail *t, const char *what) {
    if (t->n < 16)
        snprintf(t->steps[t->n++], sizeof t->steps[0], "%s", what);
}

typedef struct mw_ctx {
    trail *t;
    const char *name;
} mw_ctx;

/* Records itself, then runs the rest of the chain. */
static int passing_mw(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)req;
    mw_ctx *m = arg;
    step(m->t, m->name);
    int rc = corio_res_header(res, "X-Mw", m->name);
    return rc ? rc : corio_next_call(next);
}

/* Records itself and answers, never calling the handler. */
static int refusing_mw(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)req, (void)next;
    mw_ctx *m = arg;
    step(m->t, m->name);
    return corio_res_text(res, 403, "refused");
}

static int trail_handler(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    step(arg, "handler");
    return corio_res_text(res, 200, "handled");
}

typedef struct route_mw_state {
    trail a, b, c;
    char resp_a[1024], resp_b[1024], resp_c[1024];
    int rc[3], use_missing, use_wrong_method, use_null, use_ok[3];
} route_mw_state;

/* Global middleware: records itself in the trail of the path's route. */
static int global_mw(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)res;
    route_mw_state *st = arg;
    corio_strv path = corio_req_path(req);
    trail *t = corio_strv_eq(path, "/a") ? &st->a : corio_strv_eq(path, "/b") ? &st->b : &st->c;
    step(t, "global");
    return corio_next_call(next);
}

static int route_mw_main(void *arg) {
    route_mw_state *st = arg;
    fixture f = {0};
    mw_ctx r_a = {&st->a, "route-a"}, r_a2 = {&st->a, "route-a2"}, r_c = {&st->c, "route-c"};
    int rc = corio_router_new(&f.router);
    if (rc)
        return rc;
    rc = corio_router_add(f.router, "GET", "/a", trail_handler, &st->a);
    if (rc == 0)
        rc = corio_router_add(f.router, "GET", "/b", trail_handler, &st->b);
    if (rc == 0)
        rc = corio_router_add(f.router, "GET", "/c", trail_handler, &st->c);
    if (rc == 0)
        rc = corio_router_use(f.router, global_mw, st);
    st->use_ok[0] = corio_route_use(f.router, "GET", "/a", passing_mw, &r_a);
    st->use_ok[1] = corio_route_use(f.router, "GET", "/a", passing_mw, &r_a2);
    st->use_ok[2] = corio_route_use(f.router, "GET", "/c", refusing_mw, &r_c);
    st->use_missing = corio_route_use(f.router, "GET", "/nowhere", passing_mw, &r_a);
    st->use_wrong_method = corio_route_use(f.router, "POST", "/a", passing_mw, &r_a);
    st->use_null = corio_route_use(f.router, "GET", "/a", NULL, NULL);
    if (rc == 0)
        rc = fixture_start(&f);
    if (rc) {
        corio_router_free(f.router);
        return rc;
    }
    static const char *const paths[3] = {"/a", "/b", "/c"};
    char *resp[3] = {st->resp_a, st->resp_b, st->resp_c};
    for (int i = 0; i < 3; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 paths[i]);
        st->rc[i] = exchange(&f, req, resp[i], sizeof st->resp_a, NULL, 0);
    }
    return fixture_stop(&f);
}

static void assert_trail(const trail *t, const char *const *want, int n) {
    if (t->n != n)
        fail_msg("%d steps, expected %d (first: %s)", t->n, n, t->n ? t->steps[0] : "-");
    for (int i = 0; i < n; i++)
        assert_string_equal(t->steps[i], want[i]);
}

static void test_route_middleware_runs_for_its_route_only_in_order(void **state) {
    (void)state;
    route_mw_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(route_mw_main, &st);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(st.use_ok[i], 0);
        assert_int_equal(st.rc[i], 0);
    }
    assert_int_equal(st.use_missing, CORIO_ENOENT);
    assert_int_equal(st.use_wrong_method, CORIO_ENOENT);
    assert_int_equal(st.use_null, CORIO_EINVAL);
    /* /a: global middleware, then the route's two in the order added, then
     * the handler. */
    static const char *const want_a[] = {"global", "route-a", "route-a2", "handler"};
    assert_trail(&st.a, want_a, 4);
    assert_true(strncmp(st.resp_a, "HTTP/1.1 200 ", 13) == 0);
    assert_non_null(strstr(st.resp_a, "X-Mw: route-a\r\n"));
    assert_non_null(strstr(st.resp_a, "X-Mw: route-a2\r\n"));
    /* /b: none of /a's middleware. */
    static const char *const want_b[] = {"global", "handler"};
    assert_trail(&st.b, want_b, 2);
    assert_null(strstr(st.resp_b, "X-Mw"));
    /* /c: the middleware answers; the handler never runs. */
    static const char *const want_c[] = {"global", "route-c"};
    assert_trail(&st.c, want_c, 2);
    assert_true(strncmp(st.resp_c, "HTTP/1.1 403 ", 13) == 0);
}

/* ---- corio_req_body after corio_req_read -------------------------------------------------- */

typedef struct body_seen {
    int first_read, body_rc, rest_rc, end_rc;
    char got[64];
    size_t len;
} body_seen;

/* Reads 5 bytes of the body, then asks for the whole body (EALREADY), then
 * reads the rest, which must be intact. */
static int read_then_body(corio_req *req, corio_res *res, void *arg) {
    body_seen *b = arg;
    b->first_read = corio_req_read(req, b->got, 5);
    if (b->first_read > 0)
        b->len = (size_t)b->first_read;
    corio_strv body = {0};
    b->body_rc = corio_req_body(req, &body);
    int n;
    while ((n = corio_req_read(req, b->got + b->len, sizeof b->got - 1 - b->len)) > 0)
        b->len += (size_t)n;
    b->rest_rc = n;
    b->got[b->len] = '\0';
    /* The whole body consumed: still EALREADY, never an empty "whole body". */
    b->end_rc = corio_req_body(req, &body);
    return corio_res_text(res, 200, "read");
}

typedef struct body_state {
    body_seen plain, chunked;
    char resp[2][1024];
    int rc[2];
} body_state;

static int body_main(void *arg) {
    body_state *st = arg;
    fixture f = {0};
    int rc = corio_router_new(&f.router);
    if (rc == 0)
        rc = corio_router_add(f.router, "POST", "/plain", read_then_body, &st->plain);
    if (rc == 0)
        rc = corio_router_add(f.router, "POST", "/chunked", read_then_body, &st->chunked);
    if (rc == 0)
        rc = fixture_start(&f);
    if (rc) {
        corio_router_free(f.router);
        return rc;
    }
    st->rc[0] = exchange(&f,
                         "POST /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
                         "Connection: close\r\n\r\nhello world",
                         st->resp[0], sizeof st->resp[0], NULL, 0);
    st->rc[1] = exchange(&f,
                         "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         "Connection: close\r\n\r\n3\r\nhel\r\n8\r\nlo world\r\n0\r\n\r\n",
                         st->resp[1], sizeof st->resp[1], NULL, 0);
    return fixture_stop(&f);
}

static void assert_body_seen(const body_seen *b) {
    assert_true(b->first_read > 0 && b->first_read <= 5);
    assert_int_equal(b->body_rc, CORIO_EALREADY);
    assert_int_equal(b->rest_rc, 0);
    assert_string_equal(b->got, "hello world");
    assert_int_equal(b->end_rc, CORIO_EALREADY);
}

static void test_req_body_after_streaming_read_is_ealready(void **state) {
    (void)state;
    body_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(body_main, &st);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(st.rc[i], 0);
        assert_true(strncmp(st.resp[i], "HTTP/1.1 200 ", 13) == 0);
    }
    assert_body_seen(&st.plain);
    assert_body_seen(&st.chunked);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tchar_bits_match_the_definition),
        cmocka_unit_test(test_request_accessors_report_what_the_client_sent),
        cmocka_unit_test(test_route_middleware_runs_for_its_route_only_in_order),
        cmocka_unit_test(test_req_body_after_streaming_read_is_ealready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
