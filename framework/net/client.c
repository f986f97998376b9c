/* TCP and Unix-socket clients: corio_connect with libuv's async DNS, and
 * corio_tls_connect on top of it.
 *
 * libuv requests (getaddrinfo, connect) outlive a waiter that gives up (a
 * cancel, a deadline): each lives on the heap, and the callback either hands
 * its result to the waiting task or, when the task has left, cleans up
 * alone. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/scope.h"
#include "net/stream_internal.h"

typedef struct dns_req {
    uv_getaddrinfo_t req;
    corio__req_wait *wait;
    struct addrinfo *res;
} dns_req;

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    dns_req *d = req->data;
    if (!d->wait) { /* the task gave up */
        uv_freeaddrinfo(res);
        free(d);
        return;
    }
    d->res = res;
    corio__req_wait_done(d->wait, status);
}

static int resolve(corio_task *t, const char *host, uint16_t port, struct addrinfo **out) {
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    dns_req *d = calloc(1, sizeof *d);
    if (!d)
        return CORIO_ENOMEM;
    d->req.data = d;
    int rc = uv_getaddrinfo(&t->fut.loop->uv, &d->req, on_resolved, host, service, &hints);
    if (rc) {
        free(d);
        return rc;
    }
    corio__req_wait w = {.task = t};
    rc = corio__req_wait_park(&w, &d->wait, "dns");
    if (!w.done) {
        d->wait = NULL;
        uv_cancel((uv_req_t *)&d->req); /* the callback frees d either way */
        return rc;
    }
    *out = d->res;
    free(d);
    return rc;
}

typedef struct connect_req {
    uv_connect_t req;
    corio__req_wait *wait;
} connect_req;

static void on_connected(uv_connect_t *req, int status) {
    connect_req *c = req->data;
    corio__req_wait_done(c->wait, status);
    free(c);
}

/* Connects stream s to addr; on any failure s is closed (and freed). */
static int connect_stream(corio_task *t, corio_stream *s, const struct sockaddr *addr,
                          const char *path) {
    connect_req *c = calloc(1, sizeof *c);
    if (!c) {
        corio__stream_close_nowait(s);
        return CORIO_ENOMEM;
    }
    c->req.data = c;
    int rc = 0;
    if (path)
        uv_pipe_connect(&c->req, &s->h.pipe, path, on_connected);
    else
        rc = uv_tcp_connect(&c->req, &s->h.tcp, addr, on_connected);
    if (rc) {
        free(c);
        corio__stream_close_nowait(s);
        return rc;
    }
    corio__req_wait w = {.task = t};
    rc = corio__req_wait_park(&w, &c->wait, "connect");
    if (!w.done)
        c->wait = NULL; /* closing the stream cancels the request; its callback frees c */
    if (rc < 0)
        corio__stream_close_nowait(s);
    return rc;
}

int corio_connect(corio_stream **out, const char *host, uint16_t port, uint64_t timeout_ms) {
    if (!out || !host)
        return CORIO_EINVAL;
    *out = NULL;
    int rc;
    corio_task *t = corio__await_begin("corio_connect", &rc);
    if (!t)
        return rc;
    CORIO_WITH(corio_timeout_scope(timeout_ms ? timeout_ms : CORIO__NO_DEADLINE - 1)) {
        struct addrinfo *res = NULL;
        rc = resolve(t, host, port, &res);
        if (rc < 0)
            break;
        rc = CORIO_EINVAL;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            corio_stream *s = corio__stream_new(t->fut.loop, CORIO__STREAM_TCP, &rc);
            if (!s)
                break;
            uv_tcp_nodelay(&s->h.tcp, 1);
            rc = connect_stream(t, s, ai->ai_addr, NULL);
            if (rc == 0) {
                *out = s;
                break;
            }
            if (rc == CORIO_ECANCELED || rc == CORIO_ETIMEDOUT)
                break;
        }
        uv_freeaddrinfo(res);
    }
    return rc;
}

int corio_connect_unix(corio_stream **out, const char *path) {
    if (!out || !path)
        return CORIO_EINVAL;
    *out = NULL;
    int rc;
    corio_task *t = corio__await_begin("corio_connect_unix", &rc);
    if (!t)
        return rc;
    corio_stream *s = corio__stream_new(t->fut.loop, CORIO__STREAM_PIPE, &rc);
    if (!s)
        return rc;
    rc = connect_stream(t, s, NULL, path);
    if (rc == 0)
        *out = s;
    return rc;
}

int corio_tls_connect(corio_stream **out, const char *host, uint16_t port, corio_tls_ctx *ctx,
                      uint64_t timeout_ms) {
    if (!out || !host || !ctx)
        return CORIO_EINVAL;
    *out = NULL;
    if (corio__tls_ctx_is_server(ctx)) {
        corio__report("corio_tls_connect: ctx is a server TLS context");
        return CORIO_EINVAL;
    }
    int rc;
    corio_task *t = corio__await_begin("corio_tls_connect", &rc);
    if (!t)
        return rc;
    CORIO_WITH(corio_timeout_scope(timeout_ms ? timeout_ms : CORIO__NO_DEADLINE - 1)) {
        corio_stream *s;
        rc = corio_connect(&s, host, port, 0);
        if (rc)
            break;
        rc = corio_stream_start_tls(s, ctx, host);
        if (rc == 0) {
            *out = s;
            break;
        }
        CORIO_WITH(corio_shield_scope()) {
            corio_stream_close(s); /* no close_notify: the handshake did not finish */
        }
    }
    return rc;
}
