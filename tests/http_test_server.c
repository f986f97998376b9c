/* SPDX-License-Identifier: MIT */
/* http_test_server — the HTTP/1.1 server under test for tests/test_http.py.
 *
 * A corio_app like examples/hello, with routes that exercise what a real
 * client can provoke: cancellation when the client leaves, buffered and
 * streamed bodies, large responses under backpressure, handler errors,
 * middleware, header injection, streaming, parameter decoding.  Handlers log
 * what the tests cannot see on the wire (a cancel and its reason, a handler
 * that finished after its client left) as lines on stderr.
 *
 *   GET  /plaintext        "Hello, World!"
 *   GET  /sleep?ms=N       sleeps N ms; logs "sleep start ms=N", then either
 *   POST /sleep?ms=N         "sleep done" or "sleep cancelled: <reason>"; never
 *                            reads a request body
 *   GET  /finish?ms=N      finishes even if the client leaves; logs "finish
 *                            start ms=N", then "finish completed rc=<code>"
 *   POST /echo             the buffered body, echoed (&twice=1: read twice,
 *                            checked to be the same)
 *   POST /count            streams the body in 64 KiB reads; "count=N crc32=X
 *                            tag=<X-Tag header, taken before the body>"
 *                            (&pause_ms=N: sleeps N ms once 256 KiB are read)
 *   GET  /fail             returns CORIO_EFAILED without responding (a 500)
 *   GET  /big?mb=N         N MiB (bytes 0..255 repeated): chunked writes of
 *                            64 KiB, or with &send=1 one corio_res_send of a
 *                            heap buffer; logs "big done rc=<code>"; with
 *                            &ignore=1 returns 0 whatever happened
 *   GET  /stream?n=N       N chunks "chunk <i>\n"; with &ms=M, M ms apart, and
 *                            logs "stream done rc=<code>"
 *   GET  /users/{id}       the decoded parameter
 *   GET  /q?x=...          the decoded query parameter x
 *   GET  /hdr              tries a header value with CR LF; body "rc=<name>"
 *   GET  /ctype            tries content types with CR, LF, CRLF in
 *                            corio_res_send and corio_res_start; body
 *                            "send=<name>,<name>,<name> start=<...>"
 *   GET  /private          401 unless "Authorization: Bearer ok" (middleware)
 *   GET  /relay?send=S     what a proxy relaying a body does: S bytes (0..255
 *                            repeated, 64 KiB writes) after corio_res_start,
 *                            or corio_res_start_length with &len=N; &over=1
 *                            then tries one byte more; &then= says how it
 *                            ends: end (corio_res_end, the default), abort
 *                            (corio_res_abort, then a write and an end are
 *                            tried), fail (returns CORIO_EFAILED, not ended),
 *                            return (returns 0, not ended).  Logs "relay start=<rc>
 *                            write=<rc> over=<rc> end=<rc>" (abort: end= is
 *                            "<write after>,<end after>")
 *   GET  /abort-first      corio_res_abort before any response, then tries
 *                            corio_res_text; logs "abort-first text=<rc>";
 *                            returns 0 (&fail=1: CORIO_EFAILED)
 *   GET  /scheme           "https" if corio_req_is_tls, else "http"
 *   GET  /peer-addr        corio_req_peer_addr, twice ("a|a": the second from the cache)
 *   GET  /backend          GETs HTTP_TEST_BACKEND (a URL) twice with the HTTP
 *                            client, setting no header: from the handler, and
 *                            from a task it spawns (which logs "backend child");
 *                            logs "backend handler"; body "<status>,<status>"
 *   every response         "X-Mw: 1" (global middleware)
 *
 * With --admin, its admin router (corio_app.admin_router) answers GET
 * /healthz, /readyz and /admin/hello ("admin"), and has no /metrics.
 *
 * Besides the runner's flags and CORIO_* variables, HTTP limits come from the
 * environment (unset or 0: the server's default): HTTP_TEST_HEADER_TIMEOUT_MS,
 * HTTP_TEST_BODY_TIMEOUT_MS, HTTP_TEST_BODY_MIN_RATE (bytes/s), HTTP_TEST_KEEPALIVE_MS,
 * HTTP_TEST_SEND_TIMEOUT_MS, HTTP_TEST_MAX_BODY (bytes), and HTTP_TEST_ACCESS_LOG=1 turns the
 * access log on.  Not a cmocka test: an executable the Python tests drive.
 */
#include <corio/corio.h>
#include <corio/metrics.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PIECE (64 * 1024)

/* ---- helpers ------------------------------------------------------------------------ */

static uint32_t crc_table[256];

static void crc32_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* zlib's crc32 (Python's zlib.crc32): pass 0 to start. */
static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n) {
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* A numeric query parameter, or `dflt` when absent or not a number. */
static unsigned long query_num(corio_req *req, const char *name, unsigned long dflt) {
    corio_strv v;
    char buf[32];
    if (!corio_req_query(req, name, &v) || v.len == 0 || v.len >= sizeof buf)
        return dflt;
    memcpy(buf, v.ptr, v.len);
    buf[v.len] = '\0';
    char *end;
    unsigned long n = strtoul(buf, &end, 10);
    return *end ? dflt : n;
}

static const char *cancel_reason(void) {
    return corio_cancel_reason_name(corio_task_cancel_reason(corio_current()));
}

/* ---- handlers ----------------------------------------------------------------------- */

static int plaintext(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_text(res, 200, "Hello, World!");
}

static int sleep_handler(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    unsigned long ms = query_num(req, "ms", 100);
    corio_log(CORIO_LOG_INFO, "sleep start ms=%lu", ms);
    int rc = corio_sleep(ms);
    if (rc == CORIO_ECANCELED) {
        corio_log(CORIO_LOG_INFO, "sleep cancelled: %s", cancel_reason());
        return rc;
    }
    if (rc)
        return rc;
    corio_log(CORIO_LOG_INFO, "sleep done ms=%lu", ms);
    return corio_res_text(res, 200, "slept");
}

static int finish(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_req_finish_on_disconnect(req);
    unsigned long ms = query_num(req, "ms", 100);
    corio_log(CORIO_LOG_INFO, "finish start ms=%lu", ms);
    int rc = corio_sleep(ms);
    corio_log(CORIO_LOG_INFO, "finish completed rc=%s", rc ? corio_err_name(rc) : "0");
    return corio_res_text(res, 200, "finished");
}

static int echo(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv body, again;
    int rc = corio_req_body(req, &body);
    if (rc)
        return rc;
    if (query_num(req, "twice", 0)) { /* as a middleware and its handler would */
        rc = corio_req_body(req, &again);
        if (rc)
            return rc;
        if (again.len != body.len || memcmp(again.ptr, body.ptr, body.len) != 0)
            return corio_res_text(res, 500, "second read differs\n");
    }
    /* Header fields after the body was read: trailers are not among them,
     * and every slice is still readable. */
    size_t fields = 0, bytes = 0;
    corio_strv name, value;
    for (size_t i = 0; corio_req_header_at(req, i, &name, &value); i++) {
        fields++;
        for (size_t k = 0; k < name.len; k++)
            bytes += (unsigned char)name.ptr[k] != 0;
    }
    char count[32];
    snprintf(count, sizeof count, "%zu", fields);
    rc = corio_res_header(res, "X-Fields", count);
    if (rc == 0 && bytes == 0 && fields)
        return CORIO_EFAILED;
    return rc ? rc : corio_res_send(res, 200, "application/octet-stream", body.ptr, body.len);
}

static int count(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    /* A header slice taken before the body streams must stay valid (and
     * unchanged) until the handler returns. */
    corio_strv tag = {"-", 1};
    corio_req_header(req, "X-Tag", &tag);
    unsigned char *buf = corio_req_alloc(req, PIECE);
    if (!buf)
        return CORIO_ENOMEM;
    unsigned long long total = 0;
    uint32_t crc = 0;
    unsigned long pause_ms = query_num(req, "pause_ms", 0); /* once, after 256 KiB */
    for (;;) {
        int n = corio_req_read(req, buf, PIECE);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        total += (unsigned)n;
        crc = crc32_update(crc, buf, (size_t)n);
        if (pause_ms && total >= 256 * 1024 && total - (unsigned)n < 256 * 1024) {
            corio_log(CORIO_LOG_INFO, "count pauses %lu ms", pause_ms);
            int rc = corio_sleep(pause_ms);
            if (rc)
                return rc;
        }
    }
    char out[160];
    snprintf(out, sizeof out, "count=%llu crc32=%08x tag=%.*s", total, crc,
             (int)(tag.len > 64 ? 64 : tag.len), tag.ptr);
    return corio_res_text(res, 200, out);
}

static int fail(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    return CORIO_EFAILED;
}

static unsigned char pattern[PIECE]; /* bytes 0..255 repeated */

static int big_send(corio_res *res, size_t len) {
    unsigned char *body = malloc(len ? len : 1);
    if (!body)
        return CORIO_ENOMEM;
    for (size_t i = 0; i < len; i += PIECE)
        memcpy(body + i, pattern, len - i < PIECE ? len - i : PIECE);
    int rc = corio_res_send(res, 200, "application/octet-stream", body, len);
    free(body);
    return rc;
}

static int big(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    size_t len = (size_t)query_num(req, "mb", 1) << 20;
    int rc;
    if (query_num(req, "send", 0)) {
        rc = big_send(res, len);
    } else {
        rc = corio_res_start(res, 200, "application/octet-stream");
        for (size_t sent = 0; rc == 0 && sent < len; sent += PIECE)
            rc = corio_res_write(res, pattern, len - sent < PIECE ? len - sent : PIECE);
        if (rc == 0)
            rc = corio_res_end(res);
    }
    corio_log(CORIO_LOG_INFO, "big done rc=%s", rc ? corio_err_name(rc) : "0");
    return query_num(req, "ignore", 0) ? 0 : rc;
}

/* n chunks, ms milliseconds apart (?ms=: a stream a drain deadline can cut
 * short; it logs how it ended). */
static int stream(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    unsigned long n = query_num(req, "n", 3), ms = query_num(req, "ms", 0);
    int rc = corio_res_start(res, 200, "text/plain");
    for (unsigned long i = 0; rc == 0 && i < n; i++) {
        char line[32];
        int len = snprintf(line, sizeof line, "chunk %lu\n", i);
        rc = corio_res_write(res, line, (size_t)len);
        if (rc == 0 && ms)
            rc = corio_sleep(ms);
    }
    if (ms)
        corio_log(CORIO_LOG_INFO, "stream done rc=%s", rc ? corio_err_name(rc) : "0");
    return rc ? rc : corio_res_end(res);
}

/* Echoes a decoded value, or 400 if absent. */
static int echo_value(corio_res *res, bool found, corio_strv v) {
    if (!found)
        return corio_res_text(res, 400, "missing\n");
    return corio_res_send(res, 200, "text/plain; charset=utf-8", v.ptr, v.len);
}

static int user(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv v;
    bool found = corio_req_param(req, "id", &v);
    return echo_value(res, found, v);
}

static int query(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv v;
    bool found = corio_req_query(req, "x", &v);
    return echo_value(res, found, v);
}

static int hdr(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    int rc = corio_res_header(res, "X-Evil", "a\r\nX-Injected: 1");
    int good = corio_res_header(res, "X-Good", "1");
    if (good)
        return good;
    char out[64];
    snprintf(out, sizeof out, "rc=%s", rc ? corio_err_name(rc) : "0");
    return corio_res_text(res, 200, out);
}

/* A content type with CR or LF is refused by corio_res_send and
 * corio_res_start alike (no header injection through it); the answer lists
 * what each returned for a bare CR, a bare LF and CRLF. */
static int ctype(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    static const char *const evil[] = {"text/plain\rX-Injected: cr", "text/plain\nX-Injected: lf",
                                       "text/plain\r\nX-Injected: crlf"};
    char out[160];
    size_t n = 0;
    for (int start = 0; start < 2; start++) {
        n += (size_t)snprintf(out + n, sizeof out - n, "%s", start ? " start=" : "send=");
        for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
            int rc = start ? corio_res_start(res, 200, evil[i])
                           : corio_res_send(res, 200, evil[i], "bad", 3);
            n += (size_t)snprintf(out + n, sizeof out - n, "%s%s", i ? "," : "",
                                  rc ? corio_err_name(rc) : "0");
        }
    }
    return corio_res_text(res, 200, out);
}

static const char *rc_name(int rc) {
    return rc ? corio_err_name(rc) : "0";
}

/* How /relay ends its response (?then=). */
static int relay_end(corio_req *req, corio_res *res, char *out, size_t cap) {
    corio_strv then = {"end", 3};
    corio_req_query(req, "then", &then);
    if (corio_strv_eq(then, "abort")) {
        corio_res_abort(res);
        int w = corio_res_write(res, "x", 1);
        int e = corio_res_end(res);
        snprintf(out, cap, "%s,%s", rc_name(w), rc_name(e));
        return 0;
    }
    if (corio_strv_eq(then, "fail") || corio_strv_eq(then, "return")) {
        snprintf(out, cap, "none");
        return corio_strv_eq(then, "fail") ? CORIO_EFAILED : 0;
    }
    int rc = corio_res_end(res);
    snprintf(out, cap, "%s", rc_name(rc));
    return rc;
}

static int relay(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    unsigned long send = query_num(req, "send", 0), len = query_num(req, "len", ULONG_MAX);
    int start = len == ULONG_MAX
                    ? corio_res_start(res, 200, "application/octet-stream")
                    : corio_res_start_length(res, 200, "application/octet-stream", len);
    int wrc = 0, over = 0;
    for (unsigned long sent = 0; start == 0 && wrc == 0 && sent < send; sent += PIECE)
        wrc = corio_res_write(res, pattern, send - sent < PIECE ? send - sent : PIECE);
    if (start == 0 && wrc == 0 && query_num(req, "over", 0))
        over = corio_res_write(res, pattern, 1);
    char end[64] = "-";
    int rc = start ? start : wrc ? wrc : relay_end(req, res, end, sizeof end);
    corio_log(CORIO_LOG_INFO, "relay start=%s write=%s over=%s end=%s", rc_name(start),
              rc_name(wrc), rc_name(over), end);
    return rc;
}

static int abort_first(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_res_abort(res);
    int rc = corio_res_text(res, 200, "answered after all");
    corio_log(CORIO_LOG_INFO, "abort-first text=%s", rc_name(rc));
    return query_num(req, "fail", 0) ? CORIO_EFAILED : 0;
}

static int scheme(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    return corio_res_text(res, 200, corio_req_is_tls(req) ? "https" : "http");
}

static int peer_addr(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    char body[128];
    snprintf(body, sizeof body, "%s|%s", corio_req_peer_addr(req), corio_req_peer_addr(req));
    return corio_res_text(res, 200, body);
}

static int private_page(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_text(res, 200, "secret");
}

/* ---- middleware --------------------------------------------------------------------- */

static int mw_header(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)req, (void)arg;
    int rc = corio_res_header(res, "X-Mw", "1");
    return rc ? rc : corio_next_call(next);
}

static int mw_auth(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)arg;
    corio_strv auth;
    if (corio_strv_eq(corio_req_path(req), "/private") &&
        !(corio_req_header(req, "Authorization", &auth) && corio_strv_eq(auth, "Bearer ok"))) {
        int rc = corio_res_header(res, "WWW-Authenticate", "Bearer");
        return rc ? rc : corio_res_text(res, 401, "Unauthorized\n");
    }
    return corio_next_call(next);
}

/* ---- /backend: the request id goes upstream ------------------------------------------ */

/* GETs HTTP_TEST_BACKEND; returns its status or an error. */
static int backend_get(void) {
    const char *url = getenv("HTTP_TEST_BACKEND");
    corio_http_client *c;
    corio_future *f = NULL;
    if (!url)
        return CORIO_EINVAL;
    int rc = corio_http_client_new(&c, NULL);
    if (rc)
        return rc;
    rc = corio_http_request(c, &f, "GET", url, NULL, 0, NULL, 0);
    if (rc == 0)
        rc = corio_await(f);
    if (rc == 0)
        rc = corio_http_response_status(corio_future_value(f));
    corio_future_release(f);
    corio_http_client_free(c);
    return rc;
}

static int backend_child(void *arg) {
    (void)arg;
    corio_log(CORIO_LOG_INFO, "backend child");
    return backend_get();
}

static int backend(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    corio_log(CORIO_LOG_INFO, "backend handler");
    int first = backend_get();
    corio_task *t;
    int rc = corio_spawn(&t, "backend-child", backend_child, NULL);
    if (rc)
        return rc;
    rc = corio_await(t);
    corio_task_release(t);
    char body[64];
    snprintf(body, sizeof body, "%d,%d", first, rc);
    return corio_res_text(res, 200, body);
}

/* ---- main --------------------------------------------------------------------------- */

static unsigned long long env_num(const char *name) {
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : 0;
}

typedef struct route_def {
    const char *method, *pattern;
    corio_http_handler fn;
} route_def;

static const route_def routes[] = {
    {"GET", "/plaintext", plaintext},
    {"GET", "/sleep", sleep_handler},
    {"POST", "/sleep", sleep_handler},
    {"GET", "/finish", finish},
    {"POST", "/echo", echo},
    {"POST", "/count", count},
    {"GET", "/fail", fail},
    {"GET", "/big", big},
    {"GET", "/stream", stream},
    {"GET", "/users/{id}", user},
    {"GET", "/q", query},
    {"GET", "/hdr", hdr},
    {"GET", "/ctype", ctype},
    {"GET", "/private", private_page},
    {"GET", "/relay", relay},
    {"GET", "/abort-first", abort_first},
    {"GET", "/scheme", scheme},
    {"GET", "/peer-addr", peer_addr},
    {"GET", "/backend", backend},
};

/* GET /admin/hello on the admin listener (--admin) only. */
static int admin_hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "admin\n");
}

int main(int argc, char **argv) {
    crc32_init();
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (unsigned char)i;
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "http_test_server: out of memory\n");
        return 1;
    }
    int rc = corio_router_use(router, mw_header, NULL);
    if (rc == 0)
        rc = corio_router_use(router, mw_auth, NULL);
    for (size_t i = 0; rc == 0 && i < sizeof routes / sizeof routes[0]; i++)
        rc = corio_router_add(router, routes[i].method, routes[i].pattern, routes[i].fn, NULL);
    if (rc) {
        fprintf(stderr, "http_test_server: cannot build the router: %s\n", corio_strerror(rc));
        corio_router_free(router);
        return 1;
    }
    corio_http_server http = {
        .router = router,
        .opts =
            {
                .header_timeout_ms = env_num("HTTP_TEST_HEADER_TIMEOUT_MS"),
                .body_timeout_ms = env_num("HTTP_TEST_BODY_TIMEOUT_MS"),
                .body_min_rate = (size_t)env_num("HTTP_TEST_BODY_MIN_RATE"),
                .keepalive_timeout_ms = env_num("HTTP_TEST_KEEPALIVE_MS"),
                .send_timeout_ms = env_num("HTTP_TEST_SEND_TIMEOUT_MS"),
                .park_after_ms = env_num("HTTP_TEST_PARK_AFTER_MS"),
                .max_body = (size_t)env_num("HTTP_TEST_MAX_BODY"),
                .access_log = env_num("HTTP_TEST_ACCESS_LOG") != 0,
                .max_requests = (size_t)env_num("HTTP_TEST_MAX_REQUESTS"),
            },
    };
    /* Its own admin routes (served with --admin): the probes and one of
     * its own, and no /metrics. */
    corio_router *admin = NULL;
    rc = corio_router_new(&admin);
    if (rc == 0)
        rc = corio_health_mount(admin, NULL, NULL);
    if (rc == 0)
        rc = corio_router_add(admin, "GET", "/admin/hello", admin_hello, NULL);
    if (rc) {
        fprintf(stderr, "http_test_server: cannot build the admin router: %s\n",
                corio_strerror(rc));
        corio_router_free(router);
        corio_router_free(admin);
        return 1;
    }
    corio_app app = {
        .name = "http_test_server",
        .description = "the HTTP/1.1 server under test (tests/test_http.py)",
        .handler = corio_http_serve,
        .arg = &http,
        .default_port = 8080,
        .admin_router = admin,
    };
    int code = corio_app_main(&app, argc, argv);
    corio_router_free(router);
    corio_router_free(admin);
    return code;
}
