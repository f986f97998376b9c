/* SPDX-License-Identifier: MIT */
/* floor_epoll: the lowest reference floor for bench/http_bench.sh: the two
 * hello routes on raw epoll and a minimal hand parser, no libuv, no llhttp.
 *
 *   floor_epoll --port N [--host 127.0.0.1]
 *
 * On the wire the same server as bench/floor_uv.c (and the same header set
 * as examples/hello): GET /plaintext, GET /json (serialized per request),
 * 404 with an empty body for anything else.  One thread, level-triggered
 * epoll, a non-blocking accept4 loop.  Every read goes into one buffer of
 * the loop, after the partial request the connection kept from the last
 * one; each complete head (up to "\r\n\r\n") is checked (request line
 * METHOD SP target SP HTTP/1.x, header lines with a name and a colon, a
 * Connection header's close and keep-alive tokens), and all the answers go
 * into one output buffer written with one write.  What the socket refuses
 * is copied and written on EPOLLOUT, and the connection is not read until
 * it drains.  Request bodies are not supported (a floor for GETs).  A
 * malformed request or a head over 8 KiB gets a 400 and the connection
 * closes.  Prints "listening on HOST:PORT" on stdout; exits 0 on SIGTERM or
 * SIGINT.  The code shared with floor_uv.c is bench/floor_common.h.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "floor_common.h"

/* ---- the parser ------------------------------------------------------------------------ */

typedef struct {
    const char *path;
    size_t path_len;
    bool get, http10, close, keep_alive;
} req;

/* Whether the comma-separated list v..e holds the token tok (lower case), any case. */
static bool has_token(const char *v, const char *e, const char *tok) {
    size_t n = strlen(tok);
    while (v < e) {
        while (v < e && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *t = v;
        while (v < e && *v != ',')
            v++;
        const char *te = v;
        while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - t) == n && strncasecmp(t, tok, n) == 0)
            return true;
    }
    return false;
}

/* A visible ASCII character: no space, control or byte over 0x7e. */
static bool vchar(char ch) {
    return ch > ' ' && ch < 0x7f;
}

/* Parses the head p..end (its lines, each ending in CRLF, without the
 * final empty line) into r; false if it is malformed. */
static bool parse_head(const char *p, const char *end, req *r) {
    const char *m = p;
    while (p < end && *p >= 'A' && *p <= 'Z')
        p++;
    if (p == m || p >= end || *p != ' ')
        return false;
    r->get = p - m == 3 && memcmp(m, "GET", 3) == 0;
    r->path = ++p;
    while (p < end && vchar(*p))
        p++;
    r->path_len = (size_t)(p - r->path);
    if (r->path_len == 0 || end - p < 11 || memcmp(p, " HTTP/1.", 8) != 0 ||
        (p[8] != '0' && p[8] != '1') || p[9] != '\r' || p[10] != '\n')
        return false;
    r->http10 = p[8] == '0';
    r->close = r->keep_alive = false;
    for (p += 11; p < end;) { /* header lines: name ":" value CRLF */
        const char *name = p;
        while (p < end && vchar(*p) && *p != ':')
            p++;
        if (p == name || p >= end || *p != ':')
            return false;
        size_t nlen = (size_t)(p - name);
        const char *v = ++p;
        while (p < end && ((unsigned char)*p >= ' ' || *p == '\t') && *p != 0x7f)
            p++;
        if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
            return false;
        if (nlen == 10 && strncasecmp(name, "connection", 10) == 0) {
            r->close |= has_token(v, p, "close");
            r->keep_alive |= has_token(v, p, "keep-alive");
        }
        p += 2;
    }
    return true;
}

/* ---- connections ----------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    struct conn *prev, *next; /* every connection, freed at exit */
    char *in;                 /* a partial request kept between reads (HEAD_MAX) */
    size_t in_len;
    char *pend; /* output the socket refused, written on EPOLLOUT */
    size_t pend_len, pend_off;
    bool close_after; /* close once the output is written */
} conn;

static int ep;
static conn *conns;
static char rbuf[HEAD_MAX + READ_CAP]; /* a kept partial request, then one read */
static char obuf[OUT_CAP];             /* the answers to one read */
static int listen_tag, signal_tag;     /* epoll data of the two other descriptors */

static void conn_close(conn *c) {
    close(c->fd); /* also takes it out of the epoll set */
    if (c->prev)
        c->prev->next = c->next;
    else
        conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->in);
    free(c->pend);
    free(c);
}

static void watch(conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Writes obuf..o with one write; what the socket refuses waits for EPOLLOUT. */
static void flush(conn *c, const char *o) {
    size_t len = (size_t)(o - obuf);
    ssize_t n = len ? write(c->fd, obuf, len) : 0;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        n = 0;
    if (n < 0) {
        conn_close(c);
    } else if ((size_t)n == len) {
        if (c->close_after)
            conn_close(c);
    } else if (!(c->pend = malloc(len - (size_t)n))) {
        conn_close(c);
    } else {
        memcpy(c->pend, obuf + n, len - (size_t)n);
        c->pend_len = len - (size_t)n;
        c->pend_off = 0;
        watch(c, EPOLLOUT); /* and no EPOLLIN until it drains */
    }
}

static void on_writable(conn *c) {
    ssize_t n = write(c->fd, c->pend + c->pend_off, c->pend_len - c->pend_off);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) {
        conn_close(c);
        return;
    }
    if ((c->pend_off += (size_t)n) < c->pend_len)
        return;
    free(c->pend);
    c->pend = NULL;
    if (c->close_after)
        conn_close(c);
    else
        watch(c, EPOLLIN);
}

static void on_readable(conn *c) {
    size_t have = c->in_len;
    if (have)
        memcpy(rbuf, c->in, have);
    ssize_t n = read(c->fd, rbuf + have, READ_CAP);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    const char *p = rbuf, *end = rbuf + have + n;
    char *o = obuf;
    while (!c->close_after) {
        /* The first read after a kept part: the end of the head may straddle it. */
        const char *from = p == rbuf && have > 3 ? rbuf + have - 3 : p;
        const char *eoh = memmem(from, (size_t)(end - from), "\r\n\r\n", 4);
        req r;
        if (!eoh) {
            if (end - p <= HEAD_MAX)
                break; /* a partial head: kept for the next read */
            o = floor_response(o, R_400, false, false);
            c->close_after = true;
        } else if (eoh + 4 - p > HEAD_MAX || !parse_head(p, eoh + 2, &r) ||
                   obuf + OUT_CAP - o < 2 * RESP_MAX) {
            o = floor_response(o, R_400, false, false);
            c->close_after = true;
        } else {
            bool keep = r.http10 ? r.keep_alive && !r.close : !r.close;
            o = floor_response(o, r.get ? floor_route(r.path, r.path_len) : R_404, keep, r.http10);
            c->close_after = !keep;
            p = eoh + 4;
        }
    }
    c->in_len = c->close_after ? 0 : (size_t)(end - p);
    if (c->in_len) {
        if (!c->in && !(c->in = malloc(HEAD_MAX))) {
            conn_close(c);
            return;
        }
        memcpy(c->in, p, c->in_len);
    } else {
        free(c->in);
        c->in = NULL;
    }
    flush(c, o);
}

static void on_accept(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN: all taken (or an error: tried again on the next event) */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->next = conns;
        if (conns)
            conns->prev = c;
        conns = c;
    }
}

int main(int argc, char **argv) {
    const char *host;
    int port;
    if (floor_start(argc, argv, &host, &port) < 0)
        return 2;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t alen = sizeof addr;
    int one = 1;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1 || lfd < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        fprintf(stderr, "floor_epoll: listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    int sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &listen_tag};
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = &signal_tag};
    if (sfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev) < 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sev) < 0) {
        fprintf(stderr, "floor_epoll: %s\n", strerror(errno));
        return 1;
    }
    time_t date_sec = 0;
    floor_listening(host, ntohs(addr.sin_port));

    struct epoll_event evs[256];
    for (bool running = true; running;) {
        int n = epoll_wait(ep, evs, 256, -1);
        struct timespec now;
        clock_gettime(CLOCK_REALTIME_COARSE, &now);
        if (now.tv_sec != date_sec)
            floor_set_date(date_sec = now.tv_sec);
        for (int i = 0; i < n; i++) {
            void *d = evs[i].data.ptr;
            if (d == &listen_tag)
                on_accept(lfd);
            else if (d == &signal_tag)
                running = false;
            else if (((conn *)d)->pend)
                on_writable(d); /* EPOLLOUT, or an error or hang-up: write says which */
            else
                on_readable(d);
        }
    }
    while (conns)
        conn_close(conns);
    close(lfd);
    close(sfd);
    close(ep);
    return 0;
}
