/* SPDX-License-Identifier: MIT */
/* Helpers shared by the HTTP client tests (test_http_client.c and
 * test_http_client_{pool,timeouts,redirect,hedged}.c): tests/upstream.py
 * started and stopped as a child process (three origins and a control port
 * on 127.0.0.1, ports 0), a ctx that runs a test's main task with a control
 * client beside the client under test (run_with_upstream), requests and
 * their answers (call, get, start, fetch, fetch_expect, request_to,
 * assert_answer), and the upstream's counters and holds, asked through the
 * control port so that asking never touches the pool under test (ustats,
 * WAIT_FOR, release_hold, control); stats and wait_closed ask on the pool.
 * Header-only and static: every tests/test_*.c is a program of its own.
 * The child process itself: upstream_child.h.
 */
#ifndef CORIO_HTTP_CLIENT_HELPERS_H
#define CORIO_HTTP_CLIENT_HELPERS_H

#include "corio_test.h"
#include "upstream_child.h"

#include <corio/http_client.h>
#include <string.h>

/* ---- the upstream: a child process ------------------------------------------------------- */

typedef struct upstream {
    upstream_child child;
    int port, ports[3], ctl; /* ports: MAIN (== port), ALT, THIRD origins; ctl: control */
    char base[64];           /* "http://127.0.0.1:PORT" */
} upstream;

/* The upstream's three origins: same paths, separate connection counters. */
enum { MAIN, ALT, THIRD };
static const char *const origin_names[] = {"main", "alt", "third"};

static inline void upstream_start(upstream *u) {
    char line[64];
    upstream_child_start(&u->child, "upstream.py", line, sizeof line);
    assert_int_equal(
        sscanf(line, "%d %d %d %d", &u->ports[MAIN], &u->ports[ALT], &u->ports[THIRD], &u->ctl), 4);
    u->port = u->ports[MAIN];
    assert_true(u->port > 0);
    snprintf(u->base, sizeof u->base, "http://127.0.0.1:%d", u->port);
}

static inline void upstream_stop(upstream *u) {
    upstream_child_stop(&u->child);
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
static inline int call(corio_http_client *c, const char *method, const char *url, const void *body,
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

static inline int get(ctx *x, const char *path, corio_http_response **out) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", x->up.base, path);
    return call(x->c, "GET", url, NULL, 0, out);
}

/* Await: the upstream's counters, asked on the pool like any request. */
static inline void stats(ctx *x, int *accepts, int *closed) {
    corio_http_response *r = NULL;
    assert_corio(get(x, "/stats", &r), 0);
    assert_int_equal(
        sscanf(corio_http_response_body(r, NULL), "accepts=%d closed=%d", accepts, closed), 2);
    corio_http_response_free(r);
}

/* Await: polls the counters until `closed` reaches want (bounded: 5 s). */
static inline void wait_closed(ctx *x, int want) {
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
static inline int with_control(void *arg) {
    ctx *x = arg;
    assert_corio(corio_http_client_new(&x->ctl, NULL), 0);
    int rc = x->fn(x);
    corio_http_client_free(x->ctl);
    return rc;
}

static inline void run_with_upstream(corio_task_fn fn, const corio_http_client_opts *opts) {
    ctx x = {.fn = fn};
    if (opts)
        x.opts = *opts;
    upstream_start(&x.up);
    corio_test_run(with_control, &x);
    upstream_stop(&x.up);
}

static inline int open_client(ctx *x) {
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
static inline const char *control(ctx *x, const char *path) {
    static char body[512];
    char url[256];
    corio_http_response *r = NULL;
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", x->up.ctl, path);
    assert_corio(call(x->ctl, "GET", url, NULL, 0, &r), 0);
    snprintf(body, sizeof body, "%s", corio_http_response_body(r, NULL));
    corio_http_response_free(r);
    return body;
}

/* Await: origin's counters, asked on the control port (not counted). */
static inline void ustats(ctx *x, int origin, ustat *st) {
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
static inline void release_hold(ctx *x, int id) {
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

static inline void origin_url(ctx *x, char *buf, size_t size, int origin, const char *path) {
    snprintf(buf, size, "http://127.0.0.1:%d%s", x->up.ports[origin], path);
}

/* Starts GET origin+path on the client under test. */
static inline int start(ctx *x, corio_future **f, int origin, const char *path) {
    char url[256];
    origin_url(x, url, sizeof url, origin, path);
    return corio_http_request(x->c, f, "GET", url, NULL, 0, NULL, 0);
}

/* Await: GET origin+path; *out the response (caller frees). */
static inline int fetch(ctx *x, int origin, const char *path, corio_http_response **out) {
    char url[256];
    origin_url(x, url, sizeof url, origin, path);
    return call(x->c, "GET", url, NULL, 0, out);
}

/* Await: GET origin+path, which must answer 200 with `body`. */
static inline void fetch_expect(ctx *x, int origin, const char *path, const char *body) {
    corio_http_response *r = NULL;
    assert_corio(fetch(x, origin, path, &r), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    assert_string_equal(corio_http_response_body(r, NULL), body);
    corio_http_response_free(r);
}

/* A done future's response: status and body checked. */
static inline void assert_answer(corio_future *f, int status, const char *body) {
    assert_corio(corio_future_result(f), 0);
    const corio_http_response *r = corio_future_value(f);
    assert_non_null(r);
    assert_int_equal(corio_http_response_status(r), status);
    assert_string_equal(corio_http_response_body(r, NULL), body);
}

/* Await: rq to origin+path (the URL built here); *out the response. */
static inline int request_to(ctx *x, corio_http_req rq, int origin, const char *path,
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

#endif
