/* SPDX-License-Identifier: MIT */
/* floor_uv: a reference floor for bench/http_bench.sh: the two hello routes
 * on corio's own dependencies alone, libuv's stream API and llhttp (strict
 * mode, built as corio builds it), with no coroutines, router or arena.
 *
 *   floor_uv --port N [--host 127.0.0.1]
 *
 * One thread.  GET /plaintext and GET /json (serialized per request), 404
 * with an empty body for anything else, the same header set as
 * examples/hello (Server, Date, Content-Type, Content-Length, X-Request-Id)
 * so that the bytes on the wire match.  Keep-alive and pipelining: every
 * request of a read is answered into one buffer, written with one
 * uv_try_write; only what the socket refuses is copied and queued with
 * uv_write, and the connection stops reading until it drains.  A malformed
 * request or one whose head exceeds 8 KiB gets a 400 and the connection
 * closes.  Prints "listening on HOST:PORT" on stdout; exits 0 on SIGTERM or
 * SIGINT.  bench/floor_epoll.c is the same server on raw epoll; the code
 * they share (the responses, the Date header, the start) is floor_common.h.
 */
#define _GNU_SOURCE
#include <llhttp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "floor_common.h"

#define PATH_CAP 64 /* longer paths are no route: 404 */

/* ---- connections --------------------------------------------------------------------- */

typedef struct {
    uv_tcp_t tcp; /* first: the handle's address is the conn's */
    llhttp_t parser;
    char path[PATH_CAP];
    size_t path_len; /* > PATH_CAP: too long for a route, a 404 */
    size_t head_len; /* URL and header bytes of the current request */
    char *pend;      /* what uv_try_write left, queued with uv_write */
    uv_write_t wreq;
    bool close_after; /* close once the output is written */
    bool closing;
} conn;

static uv_loop_t *loop;
static char rbuf[READ_CAP]; /* one read buffer for the loop: parsed at once */
static char obuf[OUT_CAP];  /* one output buffer for the loop */
static char *op;            /* the end of what obuf holds */
static llhttp_settings_t settings;

static void on_closed(uv_handle_t *h) {
    conn *c = (conn *)h;
    free(c->pend);
    free(c);
}

static void conn_close(conn *c) {
    if (!c->closing) {
        c->closing = true;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

/* ---- llhttp callbacks ----------------------------------------------------------------- */

static int on_message_begin(llhttp_t *p) {
    conn *c = p->data;
    c->path_len = 0;
    c->head_len = 0;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n) {
    conn *c = p->data;
    if ((c->head_len += n) > HEAD_MAX)
        return -1; /* HPE_USER: a 400 */
    if (c->path_len + n <= PATH_CAP)
        memcpy(c->path + c->path_len, at, n);
    c->path_len += n;
    return 0;
}

static int on_header(llhttp_t *p, const char *at, size_t n) {
    (void)at;
    conn *c = p->data;
    return (c->head_len += n) > HEAD_MAX ? -1 : 0;
}

static int on_message_complete(llhttp_t *p) {
    conn *c = p->data;
    if (p->http_major != 1)
        return -1; /* HTTP/0.9 ("GET /"), 2.0: a 400 */
    if (obuf + OUT_CAP - op < 2 * RESP_MAX)
        return -1; /* cannot happen with requests of 16 bytes or more; a 400 */
    bool keep = llhttp_should_keep_alive(p);
    int route = R_404;
    if (p->method == HTTP_GET && c->path_len <= PATH_CAP)
        route = floor_route(c->path, c->path_len);
    op = floor_response(op, route, keep, p->http_minor == 0);
    if (!keep) {
        c->close_after = true;
        return HPE_PAUSED; /* answer no request after this one */
    }
    return 0;
}

/* ---- the stream ----------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)h, (void)hint;
    *buf = uv_buf_init(rbuf, READ_CAP);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_written(uv_write_t *w, int status) {
    conn *c = w->data;
    free(c->pend);
    c->pend = NULL;
    if (status < 0 || c->close_after)
        conn_close(c);
    else
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Writes obuf..op: uv_try_write, and the rest (a full socket) with uv_write. */
static void flush(conn *c) {
    size_t len = (size_t)(op - obuf);
    uv_buf_t b = uv_buf_init(obuf, (unsigned)len);
    int n = len ? uv_try_write((uv_stream_t *)&c->tcp, &b, 1) : 0;
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((size_t)n == len) {
        if (c->close_after)
            conn_close(c);
        return;
    }
    c->pend = malloc(len - (size_t)n);
    if (!c->pend) {
        conn_close(c);
        return;
    }
    memcpy(c->pend, obuf + n, len - (size_t)n);
    c->wreq.data = c;
    uv_read_stop((uv_stream_t *)&c->tcp); /* until the output drains */
    b = uv_buf_init(c->pend, (unsigned)(len - (size_t)n));
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written) < 0) {
        free(c->pend);
        c->pend = NULL;
        conn_close(c);
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    conn *c = (conn *)s;
    if (nread <= 0) {
        if (nread < 0) /* EOF or an error; 0 is EAGAIN */
            conn_close(c);
        return;
    }
    op = obuf;
    llhttp_errno_t err = llhttp_execute(&c->parser, buf->base, (size_t)nread);
    if (err != HPE_OK && err != HPE_PAUSED) {
        /* Malformed or too big: a 400 after the answers before it (an
         * upgrade, answered already: just the close). */
        if (err != HPE_PAUSED_UPGRADE)
            op = floor_response(op, R_400, false, false);
        c->close_after = true;
    }
    if (c->close_after)
        uv_read_stop(s);
    flush(c);
}

static void on_connection(uv_stream_t *server, int status) {
    if (status < 0)
        return;
    conn *c = calloc(1, sizeof *c);
    if (!c)
        return; /* the connection waits in the backlog */
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- the Date header and shutdown ----------------------------------------------------- */

/* Reformats the Date header, then fires again just after the next second. */
static void on_tick(uv_timer_t *t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    floor_set_date(ts.tv_sec);
    uv_timer_start(t, on_tick, 1001 - (uint64_t)(ts.tv_nsec / 1000000), 0);
}

static void on_signal(uv_signal_t *h, int signum) {
    (void)signum;
    uv_stop(h->loop);
}

static void close_any(uv_handle_t *h, void *arg) {
    (void)arg;
    if (h->type == UV_TCP && h->data)
        conn_close(h->data);
    else if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int main(int argc, char **argv) {
    const char *host;
    int port;
    if (floor_start(argc, argv, &host, &port) < 0)
        return 2;
    loop = uv_default_loop();
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_message_begin;
    settings.on_url = on_url;
    settings.on_header_field = on_header;
    settings.on_header_value = on_header;
    settings.on_message_complete = on_message_complete;

    uv_tcp_t server;
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(host, port, &addr);
    if (rc == 0)
        rc = uv_tcp_init(loop, &server);
    server.data = NULL;
    if (rc == 0)
        rc = uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0); /* SO_REUSEADDR on Unix */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, 4096, on_connection);
    int namelen = sizeof addr;
    if (rc == 0)
        rc = uv_tcp_getsockname(&server, (struct sockaddr *)&addr, &namelen);
    if (rc < 0) {
        fprintf(stderr, "floor_uv: listen on %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    on_tick(&tick);
    uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    floor_listening(host, ntohs(addr.sin_port));

    uv_run(loop, UV_RUN_DEFAULT);
    /* Stopped by a signal: close every handle, let the callbacks free the conns. */
    uv_walk(loop, close_any, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    return uv_loop_close(loop) == 0 ? 0 : 1;
}
