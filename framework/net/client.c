/* SPDX-License-Identifier: MIT */
/* TCP and Unix-socket clients: corio_resolve (libuv's async DNS),
 * corio_connect_addrs, corio_connect (the two in one await), and
 * corio_tls_connect on top of it.
 *
 * libuv requests (getaddrinfo, connect) outlive a waiter that gives up (a
 * cancel, a deadline): each lives on the heap, and the callback either hands
 * its result to the waiting task or, when the task has left, cleans up
 * alone. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

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

/* Whether ai is an address corio_addr holds and corio_connect_addrs takes. */
static bool addrinfo_usable(const struct addrinfo *ai) {
    return ai->ai_addr && (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
           ai->ai_addrlen <= sizeof(struct sockaddr_storage);
}

/* Copies the distinct usable addresses of res, in order, into out[0..cap),
 * zeroed past their length; a duplicate takes no slot.  Returns how many. */
static size_t copy_addrs(const struct addrinfo *res, corio_addr *out, size_t cap) {
    size_t n = 0;
    for (const struct addrinfo *ai = res; ai && n < cap; ai = ai->ai_next) {
        if (!addrinfo_usable(ai))
            continue;
        corio_addr a;
        memset(&a, 0, sizeof a);
        memcpy(&a.sa, ai->ai_addr, ai->ai_addrlen);
        a.len = (socklen_t)ai->ai_addrlen;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = out[i].len == a.len && memcmp(&out[i].sa, &a.sa, a.len) == 0;
        if (!seen)
            memcpy(&out[n++], &a, sizeof a); /* the zeroes (and padding) too */
    }
    return n;
}

/* Resolves host:port into a new array (to free()) of every distinct
 * address, *n >= 1 of them. */
static int resolve_all(corio_task *t, const char *host, uint16_t port, corio_addr **out,
                       size_t *n) {
    struct addrinfo *res = NULL;
    int rc = resolve(t, host, port, &res);
    if (rc < 0)
        return rc;
    size_t cap = 0;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
        cap += addrinfo_usable(ai);
    *out = cap ? malloc(cap * sizeof **out) : NULL;
    *n = *out ? copy_addrs(res, *out, cap) : 0;
    uv_freeaddrinfo(res);
    if (!*out)
        return cap ? CORIO_ENOMEM : CORIO_ENOTFOUND;
    return 0;
}

int corio_resolve(const char *host, uint16_t port, corio_addr *out, size_t cap, size_t *n) {
    if (n)
        *n = 0;
    if (!host || !out || !cap || !n)
        return CORIO_EINVAL;
    int rc;
    corio_task *t = corio__await_begin("corio_resolve", &rc);
    if (!t)
        return rc;
    struct addrinfo *res = NULL;
    rc = resolve(t, host, port, &res);
    if (rc < 0)
        return rc;
    *n = copy_addrs(res, out, cap);
    uv_freeaddrinfo(res);
    return *n ? 0 : CORIO_ENOTFOUND;
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

/* Whether a is a whole IPv4 or IPv6 address (uv_tcp_connect reads as many
 * bytes as its family says). */
static bool addr_usable(const corio_addr *a) {
    switch (a->sa.ss_family) {
    case AF_INET:
        return a->len >= sizeof(struct sockaddr_in) && a->len <= sizeof a->sa;
    case AF_INET6:
        return a->len >= sizeof(struct sockaddr_in6) && a->len <= sizeof a->sa;
    default:
        return false;
    }
}

/* Tries addrs[0..n) in order until one connects; the caller's timeout scope
 * bounds the whole.  A timeout or a cancel ends the tries. */
static int connect_each(corio_task *t, corio_stream **out, const corio_addr *addrs, size_t n) {
    int rc = CORIO_EINVAL;
    for (size_t i = 0; i < n; i++) {
        corio_stream *s = corio__stream_new(t->fut.loop, CORIO__STREAM_TCP, &rc);
        if (!s)
            return rc;
        uv_tcp_nodelay(&s->h.tcp, 1);
        rc = connect_stream(t, s, (const struct sockaddr *)&addrs[i].sa, NULL);
        if (rc == 0) {
            *out = s;
            return 0;
        }
        if (rc == CORIO_ECANCELED || rc == CORIO_ETIMEDOUT)
            return rc;
    }
    return rc;
}

int corio_connect_addrs(corio_stream **out, const corio_addr *addrs, size_t n,
                        uint64_t timeout_ms) {
    if (out)
        *out = NULL;
    if (!out || !addrs || n == 0)
        return CORIO_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!addr_usable(&addrs[i]))
            return CORIO_EINVAL;
    int rc;
    corio_task *t = corio__await_begin("corio_connect_addrs", &rc);
    if (!t)
        return rc;
    CORIO_WITH(corio_timeout_scope(timeout_ms ? timeout_ms : CORIO__NO_DEADLINE - 1)) {
        rc = connect_each(t, out, addrs, n);
    }
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
        corio_addr *addrs = NULL;
        size_t n = 0;
        rc = resolve_all(t, host, port, &addrs, &n);
        if (rc < 0)
            break;
        rc = connect_each(t, out, addrs, n);
        free(addrs);
    }
    return rc;
}

int corio_connect_unix(corio_stream **out, const char *path) {
    /* libuv cuts a longer path short and would connect to another socket */
    if (!out || !path || strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
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
