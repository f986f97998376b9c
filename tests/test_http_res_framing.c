/* SPDX-License-Identifier: MIT */
/* How a streamed response is framed and how it ends (framework/http/response.c,
 * dispatch.c): corio_res_start_length (a Content-Length body written in
 * pieces), corio_res_abort, a corio_res_end short of the length, a handler
 * that fails in mid-body, and corio_req_is_tls on a plain connection.
 *
 * An in-process server on 127.0.0.1 port 0 (corio_server_start +
 * corio_http_serve) whose handlers follow a plan and record what each call
 * returned; a plain socket writes raw (often pipelined) requests and reads
 * to the end of the connection.  The bytes read are compared whole,
 * with only the Date value replaced, and so is how the connection ended: a
 * FIN (CORIO_EOF), a reset, or still open when the client gave up. */
#include "corio_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- plans: what a handler does, and what its calls returned -------------------------------- */

typedef enum then {
    THEN_END,        /* corio_res_end */
    THEN_ABORT,      /* corio_res_abort, then a write, an end and a start are tried */
    THEN_FAIL,       /* returns CORIO_EFAILED, not ended */
    THEN_RETURN,     /* returns 0, not ended */
    THEN_SEND_ABORT, /* corio_res_text, then corio_res_abort (no start, no pieces) */
    THEN_ABORT_FIRST /* corio_res_abort before anything (no start, no pieces) */
} then;

typedef struct plan {
    bool chunked;    /* corio_res_start rather than corio_res_start_length */
    uint64_t length; /* for corio_res_start_length */
    const char *pieces[4];
    then then;
    /* what happened */
    int calls;
    int start_rc, write_rc[4], end_rc;
    int after_write_rc, after_end_rc, after_start_rc; /* after corio_res_abort */
} plan;

static int after_abort(plan *p, corio_res *res) {
    p->after_write_rc = corio_res_write(res, "x", 1);
    p->after_end_rc = corio_res_end(res);
    p->after_start_rc = corio_res_start_length(res, 200, "text/plain", 1);
    return 0;
}

static int planned(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    plan *p = arg;
    p->calls++;
    if (p->then == THEN_ABORT_FIRST) {
        corio_res_abort(res);
        return after_abort(p, res);
    }
    if (p->then == THEN_SEND_ABORT) {
        p->start_rc = corio_res_text(res, 200, "done");
        corio_res_abort(res);
        p->after_end_rc = corio_res_end(res);
        return 0;
    }
    p->start_rc = p->chunked ? corio_res_start(res, 200, "text/plain")
                             : corio_res_start_length(res, 200, "text/plain", p->length);
    if (p->start_rc)
        return p->start_rc;
    for (int i = 0; i < 4 && p->pieces[i]; i++)
        p->write_rc[i] = corio_res_write(res, p->pieces[i], strlen(p->pieces[i]));
    switch (p->then) {
    case THEN_ABORT:
        corio_res_abort(res);
        return after_abort(p, res);
    case THEN_FAIL:
        return CORIO_EFAILED;
    case THEN_RETURN:
        return 0;
    default:
        return p->end_rc = corio_res_end(res);
    }
}

/* Tries what corio_res_start_length must refuse before anything is sent,
 * then sends 2 bytes and tries to start again. */
typedef struct refusals {
    int status_rc[7]; /* 100, 101, 199, 204, 304, 600, 99 */
    int crlf_rc;
    int ok_rc;
    int again_length_rc, again_start_rc, again_send_rc, header_rc;
    int write_rc, end_rc;
} refusals;

static const int refused_status[7] = {100, 101, 199, 204, 304, 600, 99};

static int refuse(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    refusals *r = arg;
    for (int i = 0; i < 7; i++)
        r->status_rc[i] = corio_res_start_length(res, refused_status[i], "text/plain", 2);
    r->crlf_rc = corio_res_start_length(res, 200, "text/plain\r\nX-Injected: 1", 2);
    r->ok_rc = corio_res_start_length(res, 201, NULL, 2);
    r->again_length_rc = corio_res_start_length(res, 200, "text/plain", 2);
    r->again_start_rc = corio_res_start(res, 200, "text/plain");
    r->again_send_rc = corio_res_send(res, 200, "text/plain", "no", 2);
    r->header_rc = corio_res_header(res, "X-Late", "1");
    r->write_rc = corio_res_write(res, "ok", 2);
    r->end_rc = corio_res_end(res);
    return r->end_rc;
}

static int scheme(corio_req *req, corio_res *res, void *arg) {
    int *is_tls = arg;
    *is_tls = corio_req_is_tls(req);
    return corio_res_text(res, 200, *is_tls ? "https" : "http");
}

/* ---- the fixture -------------------------------------------------------------------------------
 */

typedef struct route {
    const char *method, *pattern;
    corio_http_handler fn;
    void *arg;
} route;

typedef struct fixture {
    corio_router *router;
    corio_http_server http;
    corio_server *srv;
} fixture;

/* A server with these routes plus GET /ok ("ok", counted in *ok_calls). */
static int ok_handler(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (*(int *)arg)++;
    return corio_res_text(res, 200, "ok");
}

static int fixture_start(fixture *f, const route *routes, size_t n, int *ok_calls) {
    int rc = corio_router_new(&f->router);
    if (rc == 0)
        rc = corio_router_add(f->router, "GET", "/ok", ok_handler, ok_calls);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = corio_router_add(f->router, routes[i].method, routes[i].pattern, routes[i].fn,
                              routes[i].arg);
    if (rc == 0) {
        f->http = (corio_http_server){.router = f->router};
        corio_server_opts o = {.host = "127.0.0.1"};
        rc = corio_server_start(&f->srv, &o, corio_http_serve, &f->http);
    }
    if (rc)
        corio_router_free(f->router);
    return rc;
}

static int fixture_stop(fixture *f) {
    int rc = corio_server_shutdown(f->srv, 1000);
    corio_router_free(f->router);
    return rc;
}

/* Replaces each Date value (29 bytes) with "D", in place. */
static void mask_dates(char *s) {
    char *p = s;
    while ((p = strstr(p, "\r\nDate: ")) != NULL) {
        p += 8;
        if (strlen(p) < 29)
            return;
        *p = 'D';
        memmove(p + 1, p + 29, strlen(p + 29) + 1);
    }
}

/* Drops each "X-Request-Id: ...\r\n" line (a generated id), in place. */
static void mask_request_ids(char *s) {
    char *p = s;
    while ((p = strstr(p, "\r\nX-Request-Id: ")) != NULL) {
        char *end = strstr(p + 2, "\r\n");
        if (!end)
            return;
        memmove(p, end, strlen(end) + 1);
    }
}

/* What one connection received, and how it ended. */
typedef struct wire {
    char bytes[4096];
    size_t len;
    int end; /* CORIO_EOF (a FIN), CORIO_ECONNRESET, CORIO_ETIMEDOUT (still open) ... */
} wire;

/* Sends `request` on a new connection and reads until the connection ends
 * or 3 s pass; w->bytes gets what came (NUL-terminated, Dates masked,
 * X-Request-Id lines dropped).
 * The client is a plain socket read with recv, as most clients read: a
 * libuv stream reports a reset that comes with the last bytes as an EOF. */
static int exchange(fixture *f, const char *request, wire *w) {
    memset(w, 0, sizeof *w);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)corio_server_port(f->srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    /* Blocking, but brief: the kernel completes the handshake from the
     * listen backlog and takes the request into its buffers. */
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request))
        rc = -errno;
    w->end = CORIO_ETIMEDOUT;
    for (int waited = 0; rc == 0 && waited < 3000 && w->len < sizeof w->bytes - 1;) {
        ssize_t n = recv(fd, w->bytes + w->len, sizeof w->bytes - 1 - w->len, MSG_DONTWAIT);
        if (n > 0) {
            w->len += (size_t)n;
        } else if (n == 0) {
            w->end = CORIO_EOF;
            break;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            rc = corio_sleep(1); /* the server runs meanwhile */
            waited++;
        } else {
            w->end = -errno;
            break;
        }
    }
    w->bytes[w->len] = '\0';
    mask_dates(w->bytes);
    mask_request_ids(w->bytes);
    close(fd);
    return rc;
}

#define GET(path) "GET " path " HTTP/1.1\r\nHost: x\r\n\r\n"
#define GET_CLOSE(path) "GET " path " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
#define HEAD(path) "HEAD " path " HTTP/1.1\r\nHost: x\r\n\r\n"

#define HEAD_LINES "HTTP/1.1 200 OK\r\nServer: corio\r\nDate: D\r\n"
#define TEXT_HEAD(len) HEAD_LINES "Content-Type: text/plain\r\nContent-Length: " len "\r\n"
#define CHUNKED_HEAD HEAD_LINES "Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
#define OK_RESPONSE                                                                                \
    HEAD_LINES "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n\r\nok"
#define OK_RESPONSE_CLOSE                                                                          \
    HEAD_LINES "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\n"                  \
               "Connection: close\r\n\r\nok"

/* One test's server, requests and what came back; run as a task. */
typedef struct scenario {
    const route *routes;
    size_t nroutes;
    const char *requests[4]; /* one connection each */
    wire got[4];
    int ok_calls;
    int rc[4];
} scenario;

static int scenario_main(void *arg) {
    scenario *sc = arg;
    fixture f = {0};
    int rc = fixture_start(&f, sc->routes, sc->nroutes, &sc->ok_calls);
    if (rc)
        return rc;
    for (int i = 0; i < 4 && sc->requests[i]; i++)
        sc->rc[i] = exchange(&f, sc->requests[i], &sc->got[i]);
    return fixture_stop(&f);
}

static void run_scenario(scenario *sc) {
    corio_test_run(scenario_main, sc);
    for (int i = 0; i < 4 && sc->requests[i]; i++)
        assert_int_equal(sc->rc[i], 0);
}

#define ROUTES(...)                                                                                \
    .routes = (const route[]){__VA_ARGS__},                                                        \
    .nroutes = sizeof((const route[]){__VA_ARGS__}) / sizeof(route)

/* ---- Content-Length responses
 * -------------------------------------------------------------------- */

static void test_length_body_leaves_unframed_and_the_connection_goes_on(void **state) {
    (void)state;
    plan p = {.length = 11, .pieces = {"hello ", "world"}};
    plan empty = {.length = 0};
    scenario sc = {ROUTES({"GET", "/len", planned, &p}, {"GET", "/empty", planned, &empty}),
                   .requests = {GET("/len") GET("/empty") GET_CLOSE("/ok"),
                                /* HTTP/1.0 keeps the connection too: the length frames it */
                                "GET /len HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
                                "GET /ok HTTP/1.0\r\n\r\n"}};
    run_scenario(&sc);
    assert_string_equal(sc.got[0].bytes,
                        TEXT_HEAD("11") "\r\nhello world" TEXT_HEAD("0") "\r\n" OK_RESPONSE_CLOSE);
    assert_int_equal(sc.got[0].end, CORIO_EOF);
    assert_string_equal(
        sc.got[1].bytes,
        TEXT_HEAD("11") "Connection: keep-alive\r\n\r\nhello world" OK_RESPONSE_CLOSE);
    assert_int_equal(sc.got[1].end, CORIO_EOF);
    assert_int_equal(p.calls, 2);
    assert_int_equal(p.start_rc, 0);
    assert_int_equal(p.write_rc[0], 0);
    assert_int_equal(p.write_rc[1], 0);
    assert_int_equal(p.end_rc, 0);
    assert_int_equal(empty.end_rc, 0);
    assert_int_equal(sc.ok_calls, 2);
}

static void test_write_past_length_refused_and_nothing_of_it_sent(void **state) {
    (void)state;
    /* "abc" fits, "defgh" would pass 5 and is refused whole, "de" fits. */
    plan p = {.length = 5, .pieces = {"abc", "defgh", "de", ""}};
    scenario sc = {ROUTES({"GET", "/len", planned, &p}),
                   .requests = {GET("/len") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    assert_int_equal(p.write_rc[0], 0);
    assert_int_equal(p.write_rc[1], CORIO_EINVAL);
    assert_int_equal(p.write_rc[2], 0);
    assert_int_equal(p.write_rc[3], 0); /* an empty write at the end: nothing past it */
    assert_int_equal(p.end_rc, 0);
    assert_string_equal(sc.got[0].bytes, TEXT_HEAD("5") "\r\nabcde" OK_RESPONSE_CLOSE);
    assert_int_equal(sc.got[0].end, CORIO_EOF);
}

static void test_short_end_closes_after_what_was_sent(void **state) {
    (void)state;
    plan ended = {.length = 10, .pieces = {"abc"}};
    plan returned = {.length = 10, .pieces = {"abc"}, .then = THEN_RETURN};
    plan failed = {.length = 10, .pieces = {"abc"}, .then = THEN_FAIL};
    plan none = {.length = 10, .then = THEN_END}; /* not one byte of the body */
    scenario sc = {ROUTES({"GET", "/ended", planned, &ended},
                          {"GET", "/returned", planned, &returned},
                          {"GET", "/failed", planned, &failed}, {"GET", "/none", planned, &none}),
                   /* each with a pipelined request behind it that must not be answered */
                   .requests = {GET("/ended") GET_CLOSE("/ok"), GET("/returned") GET_CLOSE("/ok"),
                                GET("/failed") GET_CLOSE("/ok"), GET("/none") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    assert_int_equal(ended.end_rc, CORIO_EINVAL);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(sc.got[i].bytes, TEXT_HEAD("10") "\r\nabc");
        assert_int_equal(sc.got[i].end, CORIO_EOF);
    }
    assert_int_equal(none.end_rc, CORIO_EINVAL);
    assert_string_equal(sc.got[3].bytes, TEXT_HEAD("10") "\r\n");
    assert_int_equal(sc.got[3].end, CORIO_EOF);
    assert_int_equal(sc.ok_calls, 0);
}

static void test_head_sends_the_length_and_no_body(void **state) {
    (void)state;
    plan full = {.length = 11, .pieces = {"hello ", "world", "!"}};
    plan unwritten = {.length = 11}; /* a proxy relaying a HEAD answer writes nothing */
    scenario sc = {
        ROUTES({"GET", "/full", planned, &full}, {"GET", "/unwritten", planned, &unwritten}),
        .requests = {HEAD("/full") HEAD("/unwritten") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    assert_int_equal(full.write_rc[0], 0);
    assert_int_equal(full.write_rc[1], 0);
    assert_int_equal(full.write_rc[2], CORIO_EINVAL); /* past the length, HEAD or not */
    assert_int_equal(full.end_rc, 0);
    assert_int_equal(unwritten.end_rc, 0); /* a HEAD response is whole without its body */
    assert_string_equal(sc.got[0].bytes,
                        TEXT_HEAD("11") "\r\n" TEXT_HEAD("11") "\r\n" OK_RESPONSE_CLOSE);
    assert_int_equal(sc.got[0].end, CORIO_EOF);
}

static void test_start_length_refuses_bodiless_and_bad_statuses(void **state) {
    (void)state;
    refusals r;
    memset(&r, 0x55, sizeof r);
    scenario sc = {ROUTES({"GET", "/refuse", refuse, &r}),
                   .requests = {GET("/refuse") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    for (int i = 0; i < 7; i++)
        assert_int_equal(r.status_rc[i], CORIO_EINVAL);
    assert_int_equal(r.crlf_rc, CORIO_EINVAL);
    assert_int_equal(r.ok_rc, 0);
    assert_int_equal(r.again_length_rc, CORIO_EALREADY);
    assert_int_equal(r.again_start_rc, CORIO_EALREADY);
    assert_int_equal(r.again_send_rc, CORIO_EALREADY);
    assert_int_equal(r.header_rc, CORIO_EALREADY);
    assert_int_equal(r.write_rc, 0);
    assert_int_equal(r.end_rc, 0);
    /* Only the 201 went out (no Content-Type: none was given). */
    assert_string_equal(sc.got[0].bytes, "HTTP/1.1 201 Created\r\nServer: corio\r\nDate: D\r\n"
                                         "Content-Length: 2\r\n\r\nok" OK_RESPONSE_CLOSE);
}

/* ---- giving a response up ---------------------------------------------------------------------
 */

static void test_abort_mid_body_closes_without_completing(void **state) {
    (void)state;
    plan chunked = {.chunked = true, .pieces = {"abc"}, .then = THEN_ABORT};
    plan length = {.length = 10, .pieces = {"abc"}, .then = THEN_ABORT};
    plan full = {.length = 3, .pieces = {"abc"}, .then = THEN_ABORT}; /* all written, not ended */
    scenario sc = {ROUTES({"GET", "/chunked", planned, &chunked},
                          {"GET", "/length", planned, &length}, {"GET", "/full", planned, &full}),
                   .requests = {GET("/chunked") GET_CLOSE("/ok"), GET("/length") GET_CLOSE("/ok"),
                                GET("/full") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    /* No last chunk, no padding, no 500, and nothing for the pipelined request. */
    assert_string_equal(sc.got[0].bytes, CHUNKED_HEAD "3\r\nabc\r\n");
    assert_string_equal(sc.got[1].bytes, TEXT_HEAD("10") "\r\nabc");
    assert_string_equal(sc.got[2].bytes, TEXT_HEAD("3") "\r\nabc");
    plan *plans[3] = {&chunked, &length, &full};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sc.got[i].end, CORIO_EOF);
        assert_int_equal(plans[i]->write_rc[0], 0);
        assert_int_equal(plans[i]->after_write_rc, CORIO_EINVAL);
        assert_int_equal(plans[i]->after_end_rc, CORIO_EINVAL);
        assert_int_equal(plans[i]->after_start_rc, CORIO_EALREADY);
    }
    assert_int_equal(sc.ok_calls, 0);
}

static void test_handler_error_mid_body_is_cut_short_like_abort(void **state) {
    (void)state;
    plan chunked = {.chunked = true, .pieces = {"abc"}, .then = THEN_FAIL};
    scenario sc = {ROUTES({"GET", "/chunked", planned, &chunked}),
                   .requests = {GET("/chunked") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    assert_string_equal(sc.got[0].bytes, CHUNKED_HEAD "3\r\nabc\r\n");
    assert_int_equal(sc.got[0].end, CORIO_EOF);
    assert_int_equal(sc.ok_calls, 0);
}

static void test_abort_before_a_response_closes_without_answering(void **state) {
    (void)state;
    plan first = {.then = THEN_ABORT_FIRST};
    scenario sc = {ROUTES({"GET", "/first", planned, &first}),
                   /* the request before it is answered, the one after it is not */
                   .requests = {GET("/ok") GET("/first") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    assert_string_equal(sc.got[0].bytes, OK_RESPONSE);
    assert_int_equal(sc.got[0].end, CORIO_EOF);
    assert_int_equal(sc.ok_calls, 1);
    assert_int_equal(first.calls, 1);
    assert_int_equal(first.after_write_rc, CORIO_EINVAL);
    assert_int_equal(first.after_end_rc, CORIO_EINVAL);
    assert_int_equal(first.after_start_rc, CORIO_EALREADY);
}

static void test_abort_after_a_complete_response_only_closes(void **state) {
    (void)state;
    plan sent = {.then = THEN_SEND_ABORT};
    scenario sc = {ROUTES({"GET", "/sent", planned, &sent}),
                   .requests = {GET("/sent") GET_CLOSE("/ok")}};
    run_scenario(&sc);
    assert_int_equal(sent.start_rc, 0);
    assert_int_equal(sent.after_end_rc, 0); /* it was complete, and stays so */
    assert_string_equal(sc.got[0].bytes, HEAD_LINES "Content-Type: text/plain; charset=utf-8\r\n"
                                                    "Content-Length: 4\r\n\r\ndone");
    assert_int_equal(sc.got[0].end, CORIO_EOF);
    assert_int_equal(sc.ok_calls, 0);
}

static void test_close_delimited_body_cut_short_ends_with_a_reset(void **state) {
    (void)state;
    /* HTTP/1.0 streaming is close-delimited: a FIN would say "complete". */
    plan aborted = {.chunked = true, .pieces = {"abc"}, .then = THEN_ABORT};
    plan failed = {.chunked = true, .pieces = {"abc"}, .then = THEN_FAIL};
    plan ended = {.chunked = true, .pieces = {"abc"}};
    scenario sc = {ROUTES({"GET", "/aborted", planned, &aborted},
                          {"GET", "/failed", planned, &failed}, {"GET", "/ended", planned, &ended}),
                   .requests = {"GET /aborted HTTP/1.0\r\n\r\n", "GET /failed HTTP/1.0\r\n\r\n",
                                "GET /ended HTTP/1.0\r\n\r\n"}};
    run_scenario(&sc);
    assert_int_equal(sc.got[0].end, CORIO_ECONNRESET);
    assert_int_equal(sc.got[1].end, CORIO_ECONNRESET);
    /* The same stream ended normally closes with a FIN after its body. */
    assert_int_equal(sc.got[2].end, CORIO_EOF);
    assert_string_equal(sc.got[2].bytes,
                        HEAD_LINES "Content-Type: text/plain\r\nConnection: close\r\n\r\nabc");
}

/* ---- corio_req_is_tls
 * ---------------------------------------------------------------------------- */

static void test_req_is_tls_false_on_plain_tcp(void **state) {
    (void)state;
    int is_tls = -1;
    scenario sc = {ROUTES({"GET", "/scheme", scheme, &is_tls}), .requests = {GET_CLOSE("/scheme")}};
    run_scenario(&sc);
    assert_int_equal(is_tls, 0);
    assert_non_null(strstr(sc.got[0].bytes, "\r\n\r\nhttp"));
    assert_false(corio_req_is_tls(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_body_leaves_unframed_and_the_connection_goes_on),
        cmocka_unit_test(test_write_past_length_refused_and_nothing_of_it_sent),
        cmocka_unit_test(test_short_end_closes_after_what_was_sent),
        cmocka_unit_test(test_head_sends_the_length_and_no_body),
        cmocka_unit_test(test_start_length_refuses_bodiless_and_bad_statuses),
        cmocka_unit_test(test_abort_mid_body_closes_without_completing),
        cmocka_unit_test(test_handler_error_mid_body_is_cut_short_like_abort),
        cmocka_unit_test(test_abort_before_a_response_closes_without_answering),
        cmocka_unit_test(test_abort_after_a_complete_response_only_closes),
        cmocka_unit_test(test_close_delimited_body_cut_short_ends_with_a_reset),
        cmocka_unit_test(test_req_is_tls_false_on_plain_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
