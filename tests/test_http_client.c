/* The HTTP client (framework/client/): against tests/upstream.py, a Python
 * upstream that misbehaves on purpose (a child process with three origins
 * and a control port on 127.0.0.1, ports 0), and against an in-process
 * corio server.  Covers keep-alive reuse, bodies by Content-Length and
 * chunked, malformed and oversize responses, a timeout scope and a cancel
 * around the await (the connection is closed, never pooled), gather of ten
 * with one failure or under a deadline, the retry of an idempotent request
 * on a stale pooled connection, the URLs refused; the pool at its limits
 * (per origin: FIFO waiters handed connections; over all origins: the LRU
 * idle one closed), the client's timeouts and the caller's deadline,
 * redirects, corio_http_first and corio_http_hedged, and lifetimes (the
 * client freed under running requests, futures owning their responses).
 * The counters and holds go through the control port, so asking for them
 * never touches the pool under test. */
#include "corio_test.h"

#include <corio/http_client.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the upstream: a child process ------------------------------------------------------- */

typedef struct upstream {
    pid_t pid;
    int in;                  /* its stdin: closing it stops it */
    int port, ports[3], ctl; /* ports: MAIN (== port), ALT, THIRD origins; ctl: control */
    char base[64];           /* "http://127.0.0.1:PORT" */
} upstream;

/* The upstream's three origins: same paths, separate connection counters. */
enum { MAIN, ALT, THIRD };
static const char *const origin_names[] = {"main", "alt", "third"};

static void upstream_start(upstream *u) {
    char script[4096];
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    snprintf(script, sizeof script, "%.*supstream.py", slash ? (int)(slash - file + 1) : 0, file);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    u->pid = fork();
    assert_true(u->pid >= 0);
    if (u->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", script, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    u->in = in[1];
    char line[64] = {0};
    size_t n = 0;
    while (n < sizeof line - 1) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    close(out[0]);
    assert_int_equal(
        sscanf(line, "%d %d %d %d", &u->ports[MAIN], &u->ports[ALT], &u->ports[THIRD], &u->ctl), 4);
    u->port = u->ports[MAIN];
    assert_true(u->port > 0);
    snprintf(u->base, sizeof u->base, "http://127.0.0.1:%d", u->port);
}

static void upstream_stop(upstream *u) {
    close(u->in);
    int status;
    assert_int_equal(waitpid(u->pid, &status, 0), u->pid);
}

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct ctx {
    upstream up;
    corio_http_client *c;
    corio_http_client_opts opts;
    corio_http_client *ctl; /* to the control port: never the pool under test */
    corio_task_fn fn;
} ctx;

/* Await: one request; *out the response (caller frees) on success. */
static int call(corio_http_client *c, const char *method, const char *url, const void *body,
                size_t len, corio_http_response **out) {
    corio_future *f;
    int rc = corio_http_request(c, &f, method, url, NULL, 0, body, len);
    if (rc)
        return rc;
    rc = corio_await(f);
    if (rc == 0) {
        *out = corio_future_value(f);
        corio_future_set_value_free(f, NULL); /* taken: the caller frees it */
    }
    corio_future_release(f);
    return rc;
}

static int get(ctx *x, const char *path, corio_http_response **out) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", x->up.base, path);
    return call(x->c, "GET", url, NULL, 0, out);
}

/* Await: the upstream's counters, asked on the pool like any request. */
static void stats(ctx *x, int *accepts, int *closed) {
    corio_http_response *r;
    assert_corio(get(x, "/stats", &r), 0);
    assert_int_equal(
        sscanf(corio_http_response_body(r, NULL), "accepts=%d closed=%d", accepts, closed), 2);
    corio_http_response_free(r);
}

/* Await: polls the counters until `closed` reaches want (bounded: 5 s). */
static void wait_closed(ctx *x, int want) {
    int a, cl = -1;
    for (int i = 0; i < 500; i++) {
        stats(x, &a, &cl);
        if (cl >= want)
            return;
        assert_corio(corio_sleep(10), 0);
    }
    fail_msg("upstream saw %d closed connection(s), expected %d", cl, want);
}

/* The main task: a control client around the test's own. */
static int with_control(void *arg) {
    ctx *x = arg;
    assert_corio(corio_http_client_new(&x->ctl, NULL), 0);
    int rc = x->fn(x);
    corio_http_client_free(x->ctl);
    return rc;
}

static void run_with_upstream(corio_task_fn fn, const corio_http_client_opts *opts) {
    ctx x = {.fn = fn};
    if (opts)
        x.opts = *opts;
    upstream_start(&x.up);
    corio_test_run(with_control, &x);
    upstream_stop(&x.up);
}

static int open_client(ctx *x) {
    return corio_http_client_new(&x->c, &x->opts);
}

/* ---- the control port and requests to any origin ----------------------------------------- */

/* One origin's counters (and the holds, which are global). */
typedef struct ustat {
    int accepts, closed, open, peak, held;
    int arrived[32]; /* /hold ids in the order they reached the upstream */
    size_t narrived;
} ustat;

/* Await: GET path on the control port; *out its body (static, overwritten). */
static const char *control(ctx *x, const char *path) {
    static char body[512];
    char url[256];
    corio_http_response *r;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", x->up.ctl, path);
    assert_corio(call(x->ctl, "GET", url, NULL, 0, &r), 0);
    snprintf(body, sizeof body, "%s", corio_http_response_body(r, NULL));
    corio_http_response_free(r);
    return body;
}

/* Await: origin's counters, asked on the control port (not counted). */
static void ustats(ctx *x, int origin, ustat *st) {
    char path[64];
    snprintf(path, sizeof path, "/stats?p=%s", origin_names[origin]);
    const char *b = control(x, path);
    int used = 0;
    memset(st, 0, sizeof *st);
    assert_int_equal(sscanf(b, "accepts=%d closed=%d open=%d peak=%d held=%d arrived=%n",
                            &st->accepts, &st->closed, &st->open, &st->peak, &st->held, &used),
                     5);
    for (const char *p = b + used; *p && st->narrived < 32;) {
        char *end;
        st->arrived[st->narrived++] = (int)strtol(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
    }
}

/* Await: lets /hold?id=id answer. */
static void release_hold(ctx *x, int id) {
    char path[64];
    snprintf(path, sizeof path, "/release?id=%d", id);
    assert_string_equal(control(x, path), "ok");
}

/* Await: polls origin's counters into st until cond holds (bounded: 5 s).
 * Polling is the wait here: the counters live in another process. */
#define WAIT_FOR(x, origin, st, cond)                                                              \
    do {                                                                                           \
        for (int wait_i_ = 0;; wait_i_++) {                                                        \
            ustats((x), (origin), &(st));                                                          \
            if (cond)                                                                              \
                break;                                                                             \
            if (wait_i_ == 500)                                                                    \
                fail_msg("line %d: still not %s after 5 s", __LINE__, #cond);                      \
            assert_corio(corio_sleep(10), 0);                                                      \
        }                                                                                          \
    } while (0)

static void origin_url(ctx *x, char *buf, size_t size, int origin, const char *path) {
    snprintf(buf, size, "http://127.0.0.1:%d%s", x->up.ports[origin], path);
}

/* Starts GET origin+path on the client under test. */
static int start(ctx *x, corio_future **f, int origin, const char *path) {
    char url[256];
    origin_url(x, url, sizeof url, origin, path);
    return corio_http_request(x->c, f, "GET", url, NULL, 0, NULL, 0);
}

/* Await: GET origin+path; *out the response (caller frees). */
static int fetch(ctx *x, int origin, const char *path, corio_http_response **out) {
    char url[256];
    origin_url(x, url, sizeof url, origin, path);
    return call(x->c, "GET", url, NULL, 0, out);
}

/* Await: GET origin+path, which must answer 200 with `body`. */
static void fetch_expect(ctx *x, int origin, const char *path, const char *body) {
    corio_http_response *r;
    assert_corio(fetch(x, origin, path, &r), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    assert_string_equal(corio_http_response_body(r, NULL), body);
    corio_http_response_free(r);
}

/* A done future's response: status and body checked. */
static void assert_answer(corio_future *f, int status, const char *body) {
    assert_corio(corio_future_result(f), 0);
    const corio_http_response *r = corio_future_value(f);
    assert_non_null(r);
    assert_int_equal(corio_http_response_status(r), status);
    assert_string_equal(corio_http_response_body(r, NULL), body);
}

/* ---- keep-alive --------------------------------------------------------------------------- */

static int sequential_main(void *arg) {
    ctx *x = arg;
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 100; i++) {
        corio_http_response *r;
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
    corio_http_response *r;
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
    corio_http_response *r;
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

/* ---- deadlines and cancellation ----------------------------------------------------------- */

static int timeout_main(void *arg) {
    ctx *x = arg;
    corio_http_response *r = NULL;
    int rc = 0;
    assert_corio(open_client(x), 0);
    CORIO_WITH(corio_timeout_scope(200)) {
        rc = get(x, "/slow", &r);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    wait_closed(x, 1); /* the slow connection was closed, not pooled */
    corio_http_client_free(x->c);

    /* The client's own first-byte/read timeouts. */
    corio_http_client_opts o = {.read_timeout_ms = 100};
    assert_corio(corio_http_client_new(&x->c, &o), 0);
    assert_corio(get(x, "/slow", &r), CORIO_ETIMEDOUT);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_timeout_scope_around_await_times_out_and_closes_conn(void **state) {
    (void)state;
    run_with_upstream(timeout_main, NULL);
}

static int slow_caller(void *arg) {
    corio_http_response *r;
    return get(arg, "/slow", &r);
}

static int cancel_main(void *arg) {
    ctx *x = arg;
    int a = 0, cl;
    assert_corio(open_client(x), 0);
    corio_task *t;
    assert_corio(corio_spawn(&t, "caller", slow_caller, x), 0);
    for (int i = 0; i < 500 && a < 2; i++) { /* until the slow request is in */
        assert_corio(corio_sleep(10), 0);
        stats(x, &a, &cl);
    }
    assert_int_equal(a, 2);
    assert_corio(corio_cancel(t), 0);
    assert_corio(corio_await(t), CORIO_ECANCELED);
    corio_task_release(t);
    wait_closed(x, 1);
    stats(x, &a, &cl);
    assert_int_equal(a, 2); /* the stats connection went on; the slow one is gone */
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_cancelling_awaiting_task_cancels_request_and_closes_conn(void **state) {
    (void)state;
    run_with_upstream(cancel_main, NULL);
}

/* ---- retries ------------------------------------------------------------------------------ */

static int retry_main(void *arg) {
    ctx *x = arg;
    corio_http_response *r;
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

static int request_to(ctx *x, corio_http_req rq, int origin, const char *path,
                      corio_http_response **out);

/* ---- the pool at its limits --------------------------------------------------------------- */

typedef struct done_order {
    int ids[8];
    int n;
} done_order;

typedef struct done_tag {
    done_order *order;
    int id;
} done_tag;

static void record_done(corio_future *f, void *data) {
    (void)f;
    done_tag *t = data;
    if (t->order->n < 8)
        t->order->ids[t->order->n++] = t->id;
}

/* max_conns_per_origin 2, five requests held by the upstream: two
 * connections only, the waiters served FIFO on the connections handed over,
 * and a waiter whose caller's deadline passes leaves the queue. */
static int pool_max_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *fs[5];
    done_order order = {0};
    done_tag tags[5];
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 5; i++) {
        char path[64];
        snprintf(path, sizeof path, "/hold?id=%d", i + 1);
        assert_corio(start(x, &fs[i], MAIN, path), 0);
        tags[i] = (done_tag){&order, i + 1};
        assert_corio(corio_future_add_done_cb(fs[i], record_done, &tags[i]), 0);
    }
    /* 1 and 2 hold both connections (reaching the upstream in either
     * order); 3, 4 and 5 wait for one, in that order. */
    WAIT_FOR(x, MAIN, st, st.held == 2);
    assert_int_equal(st.narrived, 2);
    assert_int_equal(st.arrived[0] + st.arrived[1], 1 + 2);

    /* 4's caller gives up: its request leaves the queue, cancelled. */
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(150)) {
        rc = corio_await(fs[3]);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    assert_corio(corio_future_result(fs[3]), CORIO_ECANCELED);

    /* 1's connection goes to the first waiter, 3; 2's to the next, 5. */
    release_hold(x, 1);
    assert_corio(corio_await(fs[0]), 0);
    WAIT_FOR(x, MAIN, st, st.narrived == 3);
    assert_int_equal(st.arrived[2], 3);
    release_hold(x, 2);
    assert_corio(corio_await(fs[1]), 0);
    WAIT_FOR(x, MAIN, st, st.narrived == 4);
    assert_int_equal(st.arrived[3], 5);
    release_hold(x, 3);
    assert_corio(corio_await(fs[2]), 0);
    release_hold(x, 5);
    assert_corio(corio_await(fs[4]), 0);

    const int ids[] = {1, 2, 3, 5};
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof body, "id=%d", ids[i]);
        assert_answer(fs[ids[i] - 1], 200, body);
    }
    assert_int_equal(order.n, 5);
    const int want[] = {4, 1, 2, 3, 5};
    for (int i = 0; i < 5; i++)
        assert_int_equal(order.ids[i], want[i]);
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 2); /* handed over, never closed and reopened */
    assert_int_equal(st.closed, 0);
    assert_int_equal(st.peak, 2);
    for (int i = 0; i < 5; i++)
        corio_future_release(fs[i]);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_pool_at_max_hands_conns_to_fifo_waiters_deadline_leaves_queue(void **s) {
    (void)s;
    corio_http_client_opts o = {.max_conns_per_origin = 2};
    run_with_upstream(pool_max_main, &o);
}

/* max_conns_per_origin 1: the one connection ends closed (Connection:
 * close), so the waiter gets the permit and a new connection. */
static int pool_closed_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f, *g;
    assert_corio(open_client(x), 0);
    assert_corio(start(x, &f, MAIN, "/hold?id=1&close=1"), 0);
    assert_corio(start(x, &g, MAIN, "/ok"), 0);
    WAIT_FOR(x, MAIN, st, st.held == 1);
    assert_false(corio_future_done(g));
    release_hold(x, 1);
    assert_corio(corio_await(g), 0);
    assert_answer(g, 200, "hello");
    assert_answer(f, 200, "id=1");
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 2); /* (its peak may read 2: it counts the close late) */
    corio_future_release(f);
    corio_future_release(g);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_pool_waiter_gets_new_conn_when_the_one_it_waited_for_closes(void **s) {
    (void)s;
    corio_http_client_opts o = {.max_conns_per_origin = 1};
    run_with_upstream(pool_closed_main, &o);
}

/* max_conns 2 over all origins: with one connection idle (A) and one in use
 * (B), opening one to a third origin closes A's; and B needing a second
 * connection closes the third's idle one. */
static int max_conns_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *held;
    assert_corio(open_client(x), 0);
    fetch_expect(x, MAIN, "/ok", "hello"); /* A: idle in the pool */
    assert_corio(start(x, &held, ALT, "/hold?id=1"), 0);
    WAIT_FOR(x, ALT, st, st.held == 1); /* B: in use */

    fetch_expect(x, THIRD, "/ok", "hello");
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* A's idle one made room */
    assert_int_equal(st.accepts, 1);
    ustats(x, THIRD, &st);
    assert_int_equal(st.accepts, 1);
    assert_int_equal(st.closed, 0);

    fetch_expect(x, ALT, "/ok", "hello"); /* B again: a second connection */
    WAIT_FOR(x, THIRD, st, st.closed == 1);
    ustats(x, ALT, &st);
    assert_int_equal(st.accepts, 2);
    assert_int_equal(st.closed, 0);

    release_hold(x, 1);
    assert_corio(corio_await(held), 0);
    assert_answer(held, 200, "id=1");
    corio_future_release(held);

    /* Both connections in use (ALT, THIRD): a request to MAIN waits for
     * one; when ALT's comes back idle, it is closed to make room. */
    corio_future *third, *waiter;
    assert_corio(start(x, &held, ALT, "/hold?id=2"), 0);    /* one of ALT's two idle */
    assert_corio(start(x, &third, THIRD, "/hold?id=3"), 0); /* closes the other */
    WAIT_FOR(x, ALT, st, st.held == 2 && st.closed == 1);
    assert_corio(start(x, &waiter, MAIN, "/ok"), 0);
    release_hold(x, 2);
    assert_corio(corio_await(waiter), 0);
    assert_answer(waiter, 200, "hello");
    WAIT_FOR(x, ALT, st, st.closed == 2);
    assert_false(corio_future_done(third)); /* still in use: not touched */
    release_hold(x, 3);
    assert_corio(corio_await(third), 0);
    assert_corio(corio_future_result(held), 0);
    corio_future_release(held);
    corio_future_release(third);
    corio_future_release(waiter);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_max_conns_over_origins_closes_lru_idle_of_other_origin(void **state) {
    (void)state;
    corio_http_client_opts o = {.max_conns = 2};
    run_with_upstream(max_conns_main, &o);
}

/* max_conns 2: requests that end in every kind of failure give their
 * connection slots back, so afterwards one idle connection and one new one
 * to another origin fit without closing the idle one. */
static int failures_give_back_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    int rc = 0;
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 3; i++) {
        assert_corio(call(x->c, "GET", "http://127.0.0.1:1/", NULL, 0, &r), CORIO_ECONNREFUSED);
        assert_corio(fetch(x, MAIN, "/silent", &r), CORIO_ETIMEDOUT); /* first byte */
        CORIO_WITH(corio_timeout_scope(100)) {
            rc = fetch(x, MAIN, "/trickle?n=50&ms=40", &r);
        }
        assert_corio(rc, CORIO_ETIMEDOUT);
        assert_corio(fetch(x, MAIN, "/malformed", &r), CORIO_EBADMSG);
        corio_http_req rq = {.max_redirects = 2};
        assert_corio(request_to(x, rq, MAIN, "/loop", &r), CORIO_ERANGE);
    }
    ustats(x, MAIN, &st);
    int base = st.accepts;
    fetch_expect(x, MAIN, "/ok", "hello");
    fetch_expect(x, ALT, "/ok", "hello");
    fetch_expect(x, MAIN, "/ok", "hello");
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, base + 1); /* the idle one was not closed for ALT's */
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_failed_requests_give_back_their_conn_slots(void **state) {
    (void)state;
    corio_http_client_opts o = {.max_conns = 2, .first_byte_timeout_ms = 100};
    run_with_upstream(failures_give_back_main, &o);
}

/* ---- timeouts ----------------------------------------------------------------------------- */

static int first_byte_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r;
    assert_corio(open_client(x), 0);
    assert_corio(fetch(x, MAIN, "/silent", &r), CORIO_ETIMEDOUT);
    WAIT_FOR(x, MAIN, st, st.closed == 1);
    fetch_expect(x, MAIN, "/ok", "hello"); /* on a new connection */
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 2);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_first_byte_timeout_on_silent_upstream_closes_conn(void **state) {
    (void)state;
    corio_http_client_opts o = {.first_byte_timeout_ms = 150};
    run_with_upstream(first_byte_main, &o);
}

static int read_timeout_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r;
    assert_corio(open_client(x), 0);
    /* The head, one byte of ten, then nothing. */
    assert_corio(fetch(x, MAIN, "/slow", &r), CORIO_ETIMEDOUT);
    WAIT_FOR(x, MAIN, st, st.closed == 1);
    /* A byte every 30 ms: each read makes progress within 300 ms, though
     * the whole body takes twice as long. */
    fetch_expect(x, MAIN, "/trickle?n=20&ms=30", "tttttttttttttttttttt");
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_read_timeout_on_stalled_body_not_on_slow_progress(void **state) {
    (void)state;
    corio_http_client_opts o = {.read_timeout_ms = 300};
    run_with_upstream(read_timeout_main, &o);
}

static int trickle_deadline_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r = NULL;
    int rc = 0;
    assert_corio(open_client(x), 0);
    /* 50 bytes, one every 40 ms: no client timeout fires, the caller's
     * deadline does. */
    CORIO_WITH(corio_timeout_scope(300)) {
        rc = fetch(x, MAIN, "/trickle?n=50&ms=40", &r);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    WAIT_FOR(x, MAIN, st, st.closed == 1);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_caller_deadline_cuts_body_slower_than_it(void **state) {
    (void)state;
    run_with_upstream(trickle_deadline_main, NULL);
}

static int idle_timeout_main(void *arg) {
    ctx *x = arg;
    ustat st;
    assert_corio(open_client(x), 0);
    fetch_expect(x, MAIN, "/ok", "hello");
    fetch_expect(x, MAIN, "/ok", "hello"); /* young enough: reused */
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 1);
    assert_corio(corio_sleep(700), 0); /* time passing is the point: no event to wait for */
    fetch_expect(x, MAIN, "/ok", "hello");
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* the old one closed, not used */
    assert_int_equal(st.accepts, 2);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_idle_timeout_conn_older_is_closed_not_reused(void **state) {
    (void)state;
    corio_http_client_opts o = {.idle_timeout_ms = 500};
    run_with_upstream(idle_timeout_main, &o);
}

/* ---- redirects ---------------------------------------------------------------------------- */

/* Await: rq to origin+path (the URL built here); *out the response. */
static int request_to(ctx *x, corio_http_req rq, int origin, const char *path,
                      corio_http_response **out) {
    char url[512];
    origin_url(x, url, sizeof url, origin, path);
    rq.url = url;
    corio_future *f;
    int rc = corio_http_request_ex(x->c, &f, &rq);
    if (rc)
        return rc;
    rc = corio_await(f);
    if (rc == 0) {
        *out = corio_future_value(f);
        corio_future_set_value_free(f, NULL);
    }
    corio_future_release(f);
    return rc;
}

static const corio_http_header creds[] = {
    {"Authorization", "Bearer t"},
    {"Cookie", "a=b"},
    {"Content-Type", "text/plain"},
    {"X-Other", "1"},
};

static int redirects_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_http_response *r;
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
    corio_http_response *r;
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
    ustats(x, ALT, &st);
    assert_int_equal(st.accepts, 1);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_redirect_to_other_origin_drops_authorization_and_cookie(void **state) {
    (void)state;
    run_with_upstream(redirect_cross_origin_main, NULL);
}

/* ---- the first good answer, hedged requests ----------------------------------------------- */

static int first_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *fs[4];
    size_t winner = 99;
    assert_corio(open_client(x), 0);
    /* refused, 503, 200 after 300 ms, never */
    assert_corio(corio_http_request(x->c, &fs[0], "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0),
                 0);
    assert_corio(start(x, &fs[1], MAIN, "/status?code=503"), 0);
    assert_corio(start(x, &fs[2], MAIN, "/delay?ms=300"), 0);
    assert_corio(start(x, &fs[3], ALT, "/hold?id=1"), 0);
    assert_corio(corio_http_first(fs, 4, &winner), 0);
    assert_int_equal(winner, 2);
    assert_answer(fs[2], 200, "delayed");
    assert_corio(corio_future_result(fs[0]), CORIO_ECONNREFUSED);
    assert_answer(fs[1], 503, "status");
    assert_true(corio_future_done(fs[3]));
    assert_corio(corio_future_result(fs[3]), CORIO_ECANCELED);
    WAIT_FOR(x, ALT, st, st.closed == 1); /* the cancelled one's connection */
    for (int i = 0; i < 4; i++)
        corio_future_release(fs[i]);

    /* Every answer a 5xx: the first of them (first by index and in time). */
    assert_corio(start(x, &fs[0], MAIN, "/status?code=500"), 0);
    assert_corio(start(x, &fs[1], MAIN, "/delay?ms=100&code=503"), 0);
    assert_corio(start(x, &fs[2], MAIN, "/delay?ms=200&code=502"), 0);
    winner = 99;
    assert_corio(corio_http_first(fs, 3, &winner), 0);
    assert_int_equal(winner, 0);
    assert_answer(fs[0], 500, "status");
    assert_answer(fs[1], 503, "delayed");
    assert_answer(fs[2], 502, "delayed");
    for (int i = 0; i < 3; i++)
        corio_future_release(fs[i]);

    /* Every one failing: the failure that came last. */
    assert_corio(start(x, &fs[0], MAIN, "/malformed?ms=100"), 0);
    assert_corio(corio_http_request(x->c, &fs[1], "GET", "http://127.0.0.1:1/", NULL, 0, NULL, 0),
                 0);
    assert_corio(corio_http_first(fs, 2, &winner), CORIO_EBADMSG);
    assert_corio(corio_future_result(fs[1]), CORIO_ECONNREFUSED);
    for (int i = 0; i < 2; i++)
        corio_future_release(fs[i]);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_first_good_answer_wins_else_first_5xx_else_last_error(void **state) {
    (void)state;
    run_with_upstream(first_main, NULL);
}

static int hedged_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f = NULL;
    char u0[256], u1[256];
    const char *urls[2] = {u0, u1};
    corio_http_req rq = {0};
    assert_corio(open_client(x), 0);

    /* [slow, fast], 50 ms: the hedge wins, the slow one is cancelled. */
    origin_url(x, u0, sizeof u0, ALT, "/hold?id=1");
    origin_url(x, u1, sizeof u1, MAIN, "/ok");
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 2, 50), 0);
    assert_true(corio_future_done(f));
    assert_answer(f, 200, "hello");
    corio_future_release(f);
    WAIT_FOR(x, ALT, st, st.closed == 1);
    assert_int_equal(st.accepts, 1);

    /* [fast, other]: the first answers within the delay; no second attempt. */
    origin_url(x, u0, sizeof u0, MAIN, "/ok");
    origin_url(x, u1, sizeof u1, THIRD, "/ok");
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 2, 1000), 0);
    assert_answer(f, 200, "hello");
    corio_future_release(f);
    /* [fast] alone. */
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 1, 50), 0);
    assert_answer(f, 200, "hello");
    corio_future_release(f);
    ustats(x, THIRD, &st);
    assert_int_equal(st.accepts, 0);
    ustats(x, MAIN, &st);
    assert_int_equal(st.accepts, 1); /* all three on the one pooled connection */

    /* [refused, good] with a 10 s delay, under a 3 s deadline: the second is
     * sent as soon as the first fails, not after the delay. */
    snprintf(u0, sizeof u0, "http://127.0.0.1:1/");
    origin_url(x, u1, sizeof u1, THIRD, "/ok");
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(3000)) {
        rc = corio_http_hedged(x->c, &f, &rq, urls, 2, 10000);
    }
    assert_corio(rc, 0);
    assert_answer(f, 200, "hello");
    corio_future_release(f);

    /* Every attempt a 5xx: the first 5xx. */
    origin_url(x, u0, sizeof u0, MAIN, "/status?code=503");
    origin_url(x, u1, sizeof u1, MAIN, "/status?code=502");
    assert_corio(corio_http_hedged(x->c, &f, &rq, urls, 2, 10), 0);
    assert_answer(f, 503, "status");
    corio_future_release(f);
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_hedged_second_wins_after_delay_or_at_once_after_failure(void **state) {
    (void)state;
    run_with_upstream(hedged_main, NULL);
}

typedef struct hedge_call {
    ctx *x;
    char u0[256], u1[256];
    corio_future *f;
} hedge_call;

static int hedge_caller(void *arg) {
    hedge_call *h = arg;
    const char *urls[2] = {h->u0, h->u1};
    corio_http_req rq = {0};
    return corio_http_hedged(h->x->c, &h->f, &rq, urls, 2, 20);
}

/* Both attempts answer in the same turn of the loop, the first with a 503
 * and the second with a 200: the 200 must win.  Checked with SOFT (no
 * longjmp out of the loop), so a failure here leaves the next tests alone. */
static int hedged_together_main(void *arg) {
    ctx *x = arg;
    ustat st;
    hedge_call h = {.x = x};
    assert_corio(open_client(x), 0);
    origin_url(x, h.u0, sizeof h.u0, MAIN, "/hold?id=1&code=503");
    origin_url(x, h.u1, sizeof h.u1, ALT, "/hold?id=2");
    corio_task *t;
    assert_corio(corio_spawn(&t, "hedge", hedge_caller, &h), 0);
    WAIT_FOR(x, MAIN, st, st.held == 2);
    /* Both answers go out 100 ms from now, together, while this task blocks
     * the loop thread (on purpose: no other way to make them arrive in one
     * turn of the loop). */
    assert_string_equal(control(x, "/release-all?ms=100"), "ok");
    usleep(400 * 1000);
    int rc = corio_await(t);
    corio_task_release(t);
    if (rc)
        fprintf(stderr, "corio_http_hedged: %s\n", corio_err_name(rc));
    SOFT(rc == 0);
    if (rc == 0) {
        const corio_http_response *r = corio_future_value(h.f);
        SOFT(r && corio_http_response_status(r) == 200);
        corio_future_release(h.f);
    }
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_hedged_good_answer_done_with_a_5xx_in_one_turn_wins(void **state) {
    (void)state;
    ctx x = {.fn = hedged_together_main};
    upstream_start(&x.up);
    corio_test_soft_failure[0] = '\0';
    corio_test_run(with_control, &x);
    upstream_stop(&x.up);
    if (corio_test_soft_failure[0])
        fail_msg("in-task check failed: %s", corio_test_soft_failure);
}

/* ---- lifetimes ---------------------------------------------------------------------------- */

/* Ten requests under one deadline, one of them held past it: the deadline
 * cancels that one (its connection closed); the nine are answered. */
static int gather_deadline_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *fs[10];
    assert_corio(open_client(x), 0);
    for (int i = 0; i < 10; i++)
        assert_corio(start(x, &fs[i], i == 6 ? ALT : MAIN, i == 6 ? "/hold?id=1" : "/ok"), 0);
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(1000)) {
        rc = corio_gather(fs, 10);
    }
    assert_corio(rc, CORIO_ETIMEDOUT);
    for (int i = 0; i < 10; i++) {
        if (i == 6)
            assert_corio(corio_future_result(fs[i]), CORIO_ECANCELED);
        else
            assert_answer(fs[i], 200, "hello");
        corio_future_release(fs[i]);
    }
    WAIT_FOR(x, ALT, st, st.closed == 1);
    ustats(x, MAIN, &st);
    assert_int_equal(st.closed, 0); /* the nine answered ones are pooled */
    corio_http_client_free(x->c);
    return 0;
}

static void test_client_gather_of_ten_deadline_cancels_the_one_still_running(void **state) {
    (void)state;
    run_with_upstream(gather_deadline_main, NULL);
}

/* corio_http_client_free with requests running: they finish (the client's
 * memory lives on), their connections are closed, not pooled; a waiter
 * queued for a connection is still served; a cancel after the free works. */
static int free_running_main(void *arg) {
    ctx *x = arg;
    ustat st;
    corio_future *f, *g;
    assert_corio(open_client(x), 0);
    fetch_expect(x, ALT, "/ok", "hello"); /* idle: the free closes it */
    assert_corio(start(x, &f, MAIN, "/hold?id=1"), 0);
    assert_corio(start(x, &g, MAIN, "/hold?id=2"), 0); /* waits: 1 per origin */
    WAIT_FOR(x, MAIN, st, st.held == 1);
    corio_http_client_free(x->c);
    WAIT_FOR(x, ALT, st, st.closed == 1);
    release_hold(x, 1);
    assert_corio(corio_await(f), 0);
    assert_answer(f, 200, "id=1");
    corio_future_release(f);
    WAIT_FOR(x, MAIN, st, st.closed == 1); /* not pooled after the free */
    release_hold(x, 2);
    assert_corio(corio_await(g), 0); /* on a connection of its own */
    assert_answer(g, 200, "id=2");
    corio_future_release(g);
    WAIT_FOR(x, MAIN, st, st.closed == 2);
    assert_int_equal(st.accepts, 2);

    /* The caller cancels instead. */
    assert_corio(open_client(x), 0);
    assert_corio(start(x, &f, MAIN, "/hold?id=3"), 0);
    WAIT_FOR(x, MAIN, st, st.held == 1);
    corio_http_client_free(x->c);
    assert_corio(corio_future_cancel(f), 0);
    assert_corio(corio_future_result(f), CORIO_ECANCELED);
    corio_future_release(f);
    WAIT_FOR(x, MAIN, st, st.closed == 3);
    return 0;
}

static void test_client_free_while_requests_run_they_finish_and_nothing_leaks(void **state) {
    (void)state;
    corio_http_client_opts o = {.max_conns_per_origin = 1};
    run_with_upstream(free_running_main, &o);
}

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
        cmocka_unit_test(test_client_timeout_scope_around_await_times_out_and_closes_conn),
        cmocka_unit_test(test_client_cancelling_awaiting_task_cancels_request_and_closes_conn),
        cmocka_unit_test(test_client_stale_pooled_conn_retried_for_get_not_for_post),
        cmocka_unit_test(test_client_gather_of_ten_with_one_failing_against_corio_server),
        cmocka_unit_test(test_client_refuses_bad_schemes_urls_and_fields),
        cmocka_unit_test(test_client_pool_at_max_hands_conns_to_fifo_waiters_deadline_leaves_queue),
        cmocka_unit_test(test_client_pool_waiter_gets_new_conn_when_the_one_it_waited_for_closes),
        cmocka_unit_test(test_client_max_conns_over_origins_closes_lru_idle_of_other_origin),
        cmocka_unit_test(test_client_failed_requests_give_back_their_conn_slots),
        cmocka_unit_test(test_client_first_byte_timeout_on_silent_upstream_closes_conn),
        cmocka_unit_test(test_client_read_timeout_on_stalled_body_not_on_slow_progress),
        cmocka_unit_test(test_client_caller_deadline_cuts_body_slower_than_it),
        cmocka_unit_test(test_client_idle_timeout_conn_older_is_closed_not_reused),
        cmocka_unit_test(test_client_redirects_followed_method_body_rules_and_limit),
        cmocka_unit_test(test_client_redirect_to_other_origin_drops_authorization_and_cookie),
        cmocka_unit_test(test_client_first_good_answer_wins_else_first_5xx_else_last_error),
        cmocka_unit_test(test_client_hedged_second_wins_after_delay_or_at_once_after_failure),
        cmocka_unit_test(test_client_hedged_good_answer_done_with_a_5xx_in_one_turn_wins),
        cmocka_unit_test(test_client_gather_of_ten_deadline_cancels_the_one_still_running),
        cmocka_unit_test(test_client_free_while_requests_run_they_finish_and_nothing_leaks),
        cmocka_unit_test(test_client_future_owns_response_released_unread_or_early_no_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
