/* SPDX-License-Identifier: MIT */
/* Out-of-memory paths of the HTTP server and client (issue 21 §3): like
 * test_oom.c, this program is linked with -Wl,--wrap for malloc, calloc,
 * realloc, free, strdup and strndup (tests/CMakeLists.txt), so every
 * allocation corio makes can be made to fail.  The scenario, on a real loop
 * and real loopback sockets: an HTTP server (corio_server_start +
 * corio_http_serve, a small router) and corio's HTTP client in the same
 * loop, the access log on (to /dev/null), the client doing GET, POST with a
 * buffered body (corio_req_body on the server), POST with a streamed
 * chunked body (corio_req_read), a chunked response read streamed, a GET
 * on the pooled connection, a 40 KiB POST echoed (the read buffer grows),
 * a 96 KiB chunked response streamed, two GETs at once (a second
 * connection), a 404, /healthz and /metrics; then the client freed and the
 * server shut down.
 *
 * Two sweeps: allocation #N alone fails, for every N from the first to past
 * the last; and every allocation from #N on fails, for every N too.  Each
 * run must:
 *   - get from every call 0 or a documented error: CORIO_ENOMEM, an HTTP
 *     500 or 503, or a connection the server closed (CORIO_EOF,
 *     CORIO_ECONNRESET, CORIO_EPIPE, or CORIO_EBADMSG for a response cut
 *     short); a 200 must carry exactly the right body;
 *   - end without any client timeout or the scenario's deadline passing
 *     (corio's own timers bound every wait: a hang is a CORIO_ETIMEDOUT);
 *   - return from corio_run with 0 (the loop closed, no handle left);
 *   - leave the live allocations as they were before the run: the wrappers
 *     track every pointer they handed out (a pointer set, not a counter,
 *     since a block libc allocated, say inside getaddrinfo, may be freed by
 *     corio's wrapped free), and the set after each run must be the set's
 *     size after the warm-up run.  Two per-thread caches keep blocks across
 *     runs by design: read buffers (net/stream.c, up to 256 of 16 KiB) and
 *     arena chunks (base/arena.c, up to 256 of 4 KiB); a failing run may
 *     leave more of them cached than a clean one (two streams' buffers
 *     given back at once), so both are emptied after every run
 *     (clear_caches) before counting.  Other process-lifetime state (the
 *     metrics' route table, filled by corio_router_add) is made by the
 *     first clean run, before the baseline is taken.
 * Under ASan and valgrind the same runs prove nothing leaks or is touched
 * after free on those paths.
 *
 * Time: about 190 allocations, so some 380 runs: under a second in Release,
 * about 2 s under ASan, 5 s under valgrind; no stride is needed.
 * CORIO_OOM_HTTP_STRIDE=K and CORIO_OOM_HTTP_FROM_STRIDE=K set one anyway.
 * CORIO_OOM_HTTP_VERBOSE=1 prints, for each N whose failure no call
 * reported, the allocation's call stack (failures tolerated by design: a
 * read buffer that could not grow, the pool's keeper task started at the
 * next check-in, the access log's buffer), and for a leak the call stack
 * of every block left behind. */
#include "corio_test.h"

#include "base/arena.h"
#include "net/stream_internal.h"

#include <corio/http_client.h>
#include <execinfo.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* ---- the failing allocator: failing_alloc.h ----------------------------------------------- */

#include "failing_alloc.h"

/* ---- the server ------------------------------------------------------------------------------ */

#define UPLOAD_PIECE 1000
#define UPLOAD_PIECES 3
#define POST_BODY "a buffered request body"
#define CHUNKS "one ", "two ", "three"
#define CHUNKED_BODY "one two three"
#define BIG_POST (40 * 1024) /* past a 16 KiB read buffer: it grows */
#define BIG_GET (96 * 1024)  /* a chunked response of 8 KiB writes */
#define BIG_PIECE (8 * 1024)

/* The bytes of the big bodies: byte i of a body is big_byte(i). */
static char big_byte(size_t i) {
    return (char)('A' + i % 23);
}

static char big_post[BIG_POST];

/* What one run saw. */
typedef struct oom_run {
    corio_http_server http;
    int port;
    int conns;       /* connections the server accepted (resumed ones not counted) */
    int reported;    /* calls that reported a failure (an error, a 500/503) */
    int ok_requests; /* requests answered as in a clean run */
    char bad[256];   /* the first result no documented failure explains */
} oom_run;

static void bad(oom_run *run, int line, const char *what, int rc) {
    if (!run->bad[0])
        snprintf(run->bad, sizeof run->bad, "line %d: %s: %s (%d)", line, what, corio_err_name(rc),
                 rc);
}

/* A failure a call may report when an allocation fails somewhere: out of
 * memory here, or a connection the other side closed on its own failure. */
static bool failure_ok(int rc) {
    return rc == CORIO_ENOMEM || rc == CORIO_EOF || rc == CORIO_ECONNRESET || rc == CORIO_EPIPE;
}

/* Server side: a handler's call returning rc.  0 goes on; a documented
 * failure (a client gone because its own allocation failed: the handler is
 * then cancelled) is returned for the server to answer 500 or close;
 * anything else is recorded as wrong. */
#define SERVER_CALL(run, expr)                                                                     \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            if (!failure_ok(rc_) && rc_ != CORIO_ECANCELED)                                        \
                bad((run), __LINE__, #expr, rc_);                                                  \
            return rc_;                                                                            \
        }                                                                                          \
    } while (0)

static int h_text(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    SERVER_CALL((oom_run *)arg, corio_res_text(res, 200, "hello"));
    return 0;
}

static int h_body(corio_req *req, corio_res *res, void *arg) {
    oom_run *run = arg;
    corio_strv body;
    SERVER_CALL(run, corio_req_body(req, &body));
    SERVER_CALL(run, corio_res_send(res, 200, "text/plain", body.ptr, body.len));
    return 0;
}

/* Reads the streamed upload piece by piece; answers with its length, or
 * "mismatch" if a byte is not the pattern's. */
static int h_read(corio_req *req, corio_res *res, void *arg) {
    oom_run *run = arg;
    char buf[300];
    size_t total = 0;
    bool same = true;
    for (;;) {
        int n = corio_req_read(req, buf, sizeof buf);
        if (n == 0)
            break;
        SERVER_CALL(run, n < 0 ? n : 0);
        for (int i = 0; i < n; i++)
            same = same && buf[i] == (char)('a' + (total + (size_t)i) % 26);
        total += (size_t)n;
    }
    char answer[64];
    snprintf(answer, sizeof answer, same ? "read %zu" : "mismatch", total);
    SERVER_CALL(run, corio_res_text(res, 200, answer));
    return 0;
}

static int h_chunked(corio_req *req, corio_res *res, void *arg) {
    oom_run *run = arg;
    static const char *const chunks[] = {CHUNKS};
    (void)req;
    SERVER_CALL(run, corio_res_start(res, 200, "text/plain"));
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
        SERVER_CALL(run, corio_res_write(res, chunks[i], strlen(chunks[i])));
    SERVER_CALL(run, corio_res_end(res));
    return 0;
}

/* A big chunked response, written piece by piece. */
static int h_big(corio_req *req, corio_res *res, void *arg) {
    oom_run *run = arg;
    char piece[BIG_PIECE];
    (void)req;
    SERVER_CALL(run, corio_res_start(res, 200, "application/octet-stream"));
    for (size_t off = 0; off < BIG_GET; off += sizeof piece) {
        for (size_t i = 0; i < sizeof piece; i++)
            piece[i] = big_byte(off + i);
        SERVER_CALL(run, corio_res_write(res, piece, sizeof piece));
    }
    SERVER_CALL(run, corio_res_end(res));
    return 0;
}

static int conn_handler(corio_stream *s, void *arg) {
    oom_run *run = arg;
    if (!corio_conn_resumed(s))
        run->conns++;
    return corio_http_serve(s, &run->http);
}

static int router_setup(corio_router **out, oom_run *run) {
    corio_router *r;
    int rc = corio_router_new(&r);
    if (rc)
        return rc;
    if ((rc = corio_router_add(r, "GET", "/text", h_text, run)) ||
        (rc = corio_router_add(r, "POST", "/body", h_body, run)) ||
        (rc = corio_router_add(r, "POST", "/read", h_read, run)) ||
        (rc = corio_router_add(r, "GET", "/chunked", h_chunked, run)) ||
        (rc = corio_router_add(r, "GET", "/big", h_big, run)) ||
        (rc = corio_health_mount(r, NULL, NULL)) || (rc = corio_metrics_mount(r, NULL))) {
        corio_router_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

/* ---- the client ------------------------------------------------------------------------------ */

/* Judges one request's outcome: rc (the call's or the future's result),
 * and on 0 the status and body against what a clean run gets. */
static void judge(oom_run *run, int line, const char *what, int rc, int status, const char *body,
                  size_t len, int want_status, const char *want_body, size_t want_len) {
    if (rc != 0) {
        if (failure_ok(rc) || rc == CORIO_EBADMSG) /* EBADMSG: a response cut short */
            run->reported++;
        else
            bad(run, line, what, rc);
        return;
    }
    if (status == 500 || status == 503) {
        run->reported++;
        return;
    }
    if (status != want_status || len != want_len || memcmp(body, want_body, len) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "%s: status %d, body \"%.*s\"", what, status,
                 (int)(len < 60 ? len : 60), body ? body : "");
        bad(run, line, msg, 0);
        return;
    }
    run->ok_requests++;
}

/* Starts a buffered request (corio_http_request); *f NULL if it failed to
 * start (judged then). */
static void start(oom_run *run, int line, corio_http_client *c, corio_future **f,
                  const char *method, const char *path, const char *body, size_t body_len) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", run->port, path);
    *f = NULL;
    int rc = corio_http_request(c, f, method, url, NULL, 0, body, body_len);
    if (rc)
        judge(run, line, path, rc, 0, NULL, 0, 0, NULL, 0);
}

/* Judges a started request's future (its result: it has completed), and
 * releases it. */
static void finish(oom_run *run, int line, corio_future *f, const char *path, int want_status,
                   const char *want_body, size_t want_len) {
    if (!f)
        return;
    int rc = corio_future_result(f);
    const corio_http_response *r = rc == 0 ? corio_future_value(f) : NULL;
    size_t len = 0;
    const char *got = r ? corio_http_response_body(r, &len) : NULL;
    judge(run, line, path, rc, r ? corio_http_response_status(r) : 0, got, len, want_status,
          want_body, want_len);
    corio_future_release(f);
}

/* Await: a buffered request judged. */
static void buffered_n(oom_run *run, int line, corio_http_client *c, const char *method,
                       const char *path, const char *body, size_t body_len, int want_status,
                       const char *want_body, size_t want_len) {
    corio_future *f;
    start(run, line, c, &f, method, path, body, body_len);
    if (!f)
        return;
    int rc = corio_await(f);
    if (!corio_future_done(f)) { /* the await itself failed (ENOMEM arming a timer) */
        judge(run, line, path, rc, 0, NULL, 0, 0, NULL, 0);
        corio_future_release(f);
        return;
    }
    finish(run, line, f, path, want_status, want_body, want_len);
}

static void buffered(oom_run *run, int line, corio_http_client *c, const char *method,
                     const char *path, const char *body, int want_status, const char *want_body) {
    buffered_n(run, line, c, method, path, body, body ? strlen(body) : 0, want_status, want_body,
               strlen(want_body));
}

/* Await: GET /metrics, whose body varies: whole if it ends with a newline
 * after a family every scrape has. */
static void metrics(oom_run *run, corio_http_client *c) {
    corio_future *f;
    start(run, __LINE__, c, &f, "GET", "/metrics", NULL, 0);
    if (!f)
        return;
    int rc = corio_await(f);
    const corio_http_response *r = rc == 0 ? corio_future_value(f) : NULL;
    size_t len = 0;
    const char *b = r ? corio_http_response_body(r, &len) : NULL;
    bool whole = b && len > 0 && b[len - 1] == '\n' && strstr(b, "corio_http_requests_total");
    judge(run, __LINE__, "/metrics", rc, r ? corio_http_response_status(r) : 0,
          whole ? "whole" : "wrong", 5, 200, "whole", 5);
    corio_future_release(f);
}

/* Await: two GETs at once: the pooled connection and a new one. */
static void concurrent(oom_run *run, corio_http_client *c) {
    corio_future *fs[2];
    start(run, __LINE__, c, &fs[0], "GET", "/text", NULL, 0);
    start(run, __LINE__, c, &fs[1], "GET", "/text", NULL, 0);
    corio_future *wait[2];
    size_t n = 0;
    for (int i = 0; i < 2; i++)
        if (fs[i])
            wait[n++] = fs[i];
    int rc = corio_wait_all(wait, n);
    if (rc) {
        judge(run, __LINE__, "corio_wait_all", rc, 0, NULL, 0, 0, NULL, 0);
        for (size_t i = 0; i < n; i++)
            corio_future_release(wait[i]);
        return;
    }
    for (int i = 0; i < 2; i++)
        finish(run, __LINE__, fs[i], "/text", 200, "hello", 5);
}

/* Await: GET /big as an exchange, its pattern checked as it streams. */
static void streamed_big(oom_run *run, corio_http_client *c) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/big", run->port);
    corio_http_req rq = {.method = "GET", .url = url};
    corio_http_exchange *x;
    int rc = 0, rrc = 0, status = 0;
    size_t got = 0;
    bool same = true;
    CORIO_WITH_RC(rc, corio_http_open(c, &rq, &x)) {
        const corio_http_response *r;
        if ((rrc = corio_http_response_head(x, &r)) != 0)
            break;
        status = corio_http_response_status(r);
        const char *p;
        while ((rrc = corio_http_read(x, &p)) > 0) {
            for (int i = 0; i < rrc; i++)
                same = same && p[i] == big_byte(got + (size_t)i);
            got += (size_t)rrc;
        }
    }
    const char *verdict = same && got == BIG_GET ? "whole" : "wrong";
    judge(run, __LINE__, "/big", rc ? rc : rrc, status, verdict, 5, 200, "whole", 5);
}

/* Await: reads an exchange's response whole into buf. */
static int read_all(corio_http_exchange *x, int *status, char *buf, size_t cap, size_t *len) {
    const corio_http_response *r;
    int rc = corio_http_response_head(x, &r);
    if (rc)
        return rc;
    *status = corio_http_response_status(r);
    const char *p;
    int n;
    while ((n = corio_http_read(x, &p)) > 0) {
        size_t k = (size_t)n < cap - *len ? (size_t)n : cap - *len;
        memcpy(buf + *len, p, k);
        *len += k;
    }
    return n;
}

/* Await: GET /chunked as an exchange, the body read as it streams. */
static void streamed_get(oom_run *run, corio_http_client *c) {
    char url[128], buf[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/chunked", run->port);
    corio_http_req rq = {.method = "GET", .url = url};
    corio_http_exchange *x;
    int rc = 0, rrc = 0, status = 0;
    size_t len = 0;
    CORIO_WITH_RC(rc, corio_http_open(c, &rq, &x)) {
        rrc = read_all(x, &status, buf, sizeof buf, &len);
    }
    judge(run, __LINE__, "/chunked", rc ? rc : rrc, status, buf, len, 200, CHUNKED_BODY,
          strlen(CHUNKED_BODY));
}

/* Await: POST /read with a body streamed in chunks (corio_http_write). */
static void streamed_post(oom_run *run, corio_http_client *c) {
    char url[128], piece[UPLOAD_PIECE], buf[64], want[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/read", run->port);
    snprintf(want, sizeof want, "read %d", UPLOAD_PIECE * UPLOAD_PIECES);
    corio_http_req rq = {
        .method = "POST", .url = url, .body_stream = true, .body_length = CORIO_HTTP_CHUNKED};
    corio_http_exchange *x;
    int rc = 0, wrc = 0, status = 0;
    size_t len = 0;
    CORIO_WITH_RC(rc, corio_http_open(c, &rq, &x)) {
        for (int k = 0; k < UPLOAD_PIECES && wrc == 0; k++) {
            for (int i = 0; i < UPLOAD_PIECE; i++)
                piece[i] = (char)('a' + (k * UPLOAD_PIECE + i) % 26);
            wrc = corio_http_write(x, piece, sizeof piece);
        }
        if (wrc == 0)
            wrc = corio_http_write_end(x);
        /* A server that failed may answer (500) before reading the body:
         * the response is read even after a failed write. */
        int rrc = read_all(x, &status, buf, sizeof buf, &len);
        if (wrc == 0 || (rrc == 0 && status >= 500))
            wrc = rrc;
    }
    judge(run, __LINE__, "/read", rc ? rc : wrc, status, buf, len, 200, want, strlen(want));
}

#define DEADLINE_MS 5000 /* the scenario's; client timeouts below it */
#define CLIENT_TIMEOUT_MS 4000
#define DRAIN_MS 2000

static void client_sequence(oom_run *run, corio_http_client *c) {
    buffered(run, __LINE__, c, "GET", "/text", NULL, 200, "hello");
    buffered(run, __LINE__, c, "POST", "/body", POST_BODY, 200, POST_BODY);
    streamed_post(run, c);
    streamed_get(run, c);
    buffered(run, __LINE__, c, "GET", "/text", NULL, 200, "hello"); /* pooled */
    buffered_n(run, __LINE__, c, "POST", "/body", big_post, BIG_POST, 200, big_post, BIG_POST);
    streamed_big(run, c);
    concurrent(run, c);
    buffered(run, __LINE__, c, "GET", "/missing", NULL, 404, "Not Found\n");
    buffered(run, __LINE__, c, "GET", "/healthz", NULL, 200, "ok\n");
    metrics(run, c);
}

#define REQUESTS 12 /* client_sequence's */

/* The scenario: every call's failure recorded, every object released on
 * every path. */
static int scenario(void *arg) {
    oom_run *run = arg;
    corio_router *router = NULL;
    corio_server *srv = NULL;
    corio_http_client *c = NULL;
    int rc;
#define SETUP(expr, label)                                                                         \
    do {                                                                                           \
        if ((rc = (expr)) != 0) {                                                                  \
            if (rc == CORIO_ENOMEM)                                                                \
                run->reported++;                                                                   \
            else                                                                                   \
                bad(run, __LINE__, #expr, rc);                                                     \
            goto label;                                                                            \
        }                                                                                          \
    } while (0)
    rc = router_setup(&router, run);
    SETUP(rc, out);
    run->http = (corio_http_server){.router = router, .opts = {.access_log = true}};
    corio_server_opts so = {.host = "127.0.0.1"};
    SETUP(corio_server_start(&srv, &so, conn_handler, run), out_router);
    run->port = corio_server_port(srv);
    corio_http_client_opts co = {.connect_timeout_ms = CLIENT_TIMEOUT_MS,
                                 .first_byte_timeout_ms = CLIENT_TIMEOUT_MS,
                                 .read_timeout_ms = CLIENT_TIMEOUT_MS};
    SETUP(corio_http_client_new(&c, &co), out_server);
    uint64_t t0 = corio_now();
    CORIO_WITH_RC(rc, corio_timeout_scope(DEADLINE_MS)) {
        client_sequence(run, c);
    }
    if (rc == CORIO_ENOMEM)
        run->reported++;
    else if (rc != 0)
        bad(run, __LINE__, "corio_timeout_scope", rc);
    if (corio_now() - t0 >= CLIENT_TIMEOUT_MS)
        bad(run, __LINE__, "the client's requests took a timeout's time", CORIO_ETIMEDOUT);
    corio_http_client_free(c);
out_server:
    rc = corio_server_shutdown(srv, DRAIN_MS);
    if (rc != 0)
        bad(run, __LINE__, "corio_server_shutdown", rc);
out_router:
    corio_router_free(router);
out:
    return 0;
#undef SETUP
}

/* ---- the sweeps ------------------------------------------------------------------------------ */

/* Empties the per-thread caches (see the top of this file). */
static void clear_caches(void) {
    corio__stream_rbuf_cache_clear();
    corio__arena_cache_clear();
}

static bool verbose(void) {
    const char *v = getenv("CORIO_OOM_HTTP_VERBOSE");
    return v && *v && *v != '0';
}

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

static void print_fail_stack(void) {
    backtrace_symbols_fd(fail_stack, fail_stack_depth, STDERR_FILENO);
}

/* Runs the scenario once with allocation #n failing (and, with from, every
 * later one); returns the number of allocations attempted, and fails the
 * test on a wrong result or a leak. */
static long run_once(long n, bool from, size_t baseline, long *silent) {
    oom_run run = {0};
    pthread_mutex_lock(&alloc_mu);
    alloc_count = 0;
    run_id++;
    fail_at = n;
    fail_from = from;
    fail_stack_depth = 0;
    pthread_mutex_unlock(&alloc_mu);
    int rc = corio_run(scenario, &run);
    clear_caches();
    pthread_mutex_lock(&alloc_mu);
    long made = alloc_count;
    fail_at = -1;
    pthread_mutex_unlock(&alloc_mu);
    const char *mode = from ? "from" : "only";
    if (made <= n)
        return made; /* nothing failed: past the last allocation */
    size_t after = live_now();
    bool wrong = (rc != 0 && rc != CORIO_ENOMEM) || run.bad[0] || after != baseline;
    if (wrong) {
        fprintf(stderr, "allocation #%ld (%s) failing; its call stack:\n", n, mode);
        print_fail_stack();
        if (after != baseline)
            live_report();
    }
    if (rc != 0 && rc != CORIO_ENOMEM)
        fail_msg("allocation #%ld (%s) failing: corio_run returned %s", n, mode,
                 corio_err_name(rc));
    if (run.bad[0])
        fail_msg("allocation #%ld (%s) failing: %s", n, mode, run.bad);
    if (after != baseline)
        fail_msg("allocation #%ld (%s) failing: %zu block(s) live after the run, %zu before", n,
                 mode, after, baseline);
    if (rc == 0 && run.reported == 0) {
        (*silent)++;
        if (verbose()) {
            fprintf(stderr, "allocation #%ld (%s) failed and no call reported it:\n", n, mode);
            print_fail_stack();
        }
    }
    return made;
}

static void test_every_allocation_failure_in_http_server_and_client(void **state) {
    (void)state;
    capture_stack = true;
    block_stacks = verbose();
    /* The access log (on in the scenario's server) to /dev/null. */
    assert_int_equal(corio_http_access_log_set("/dev/null"), 0);
    for (size_t i = 0; i < BIG_POST; i++)
        big_post[i] = big_byte(i);
    void *warm[1];
    backtrace(warm, 1); /* loads libgcc's unwinder now, not inside a failing run */

    /* A clean run, twice: the first creates process-lifetime state, the
     * second counts the allocations and sets the baseline. */
    for (int i = 0; i < 2; i++) {
        oom_run run = {0};
        pthread_mutex_lock(&alloc_mu);
        alloc_count = 0;
        pthread_mutex_unlock(&alloc_mu);
        corio_test_run(scenario, &run);
        clear_caches();
        if (run.bad[0])
            fail_msg("clean run: %s", run.bad);
        assert_int_equal(run.reported, 0);
        assert_int_equal(run.ok_requests, REQUESTS);
        /* Every request on the pooled connection, but the second of two at once. */
        assert_int_equal(run.conns, 2);
    }
    long clean = alloc_count;
    size_t baseline = live_now();
    assert_true(clean > 0);

    long stride = env_long("CORIO_OOM_HTTP_STRIDE", 1);
    long from_stride = env_long("CORIO_OOM_HTTP_FROM_STRIDE", 1);
    long silent = 0, runs = 0, made = 0;
    for (long n = 0;; n += stride) {
        made = run_once(n, false, baseline, &silent);
        if (made <= n)
            break;
        runs++;
    }
    assert_true(runs * stride >= clean); /* every allocation of the clean run was reached */
    long from_runs = 0;
    for (long n = 0;; n += from_stride) {
        made = run_once(n, true, baseline, &silent);
        if (made <= n)
            break;
        from_runs++;
    }
    fprintf(stderr,
            "test_oom_http: %ld allocations in a clean run; single-failure sweep: %ld runs "
            "(stride %ld), from-N-on sweep: %ld runs (stride %ld); %ld failures no call "
            "reported\n",
            clean, runs, stride, from_runs, from_stride, silent);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_failure_in_http_server_and_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
