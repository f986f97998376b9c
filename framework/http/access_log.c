#define _GNU_SOURCE /* memrchr */
/* The access log (see corio_http_opts.access_log): one line per response,
 * the common log format plus the microseconds from the request's head being
 * complete to its response being complete (handed to the stream, or queued
 * with the batch it leaves in):
 *
 *   127.0.0.1 - - [25/Nov/2026:14:17:21 +0000] "GET /q?x=1 HTTP/1.1" 200 13 87
 *
 * Lines gather in a per-thread (so per-loop) buffer, written to stderr once
 * it passes 16 KiB, a second after the first line waiting at the latest (a
 * loop timer), and when the thread's last connection ends, which is also
 * how every line is out before a worker exits.  Writes are whole lines, at
 * most PIPE_BUF bytes each, so workers sharing stderr never interleave. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "corio/log.h"
#include "http/http_internal.h"
#include "runtime/internal.h"

#define ALOG_FLUSH_AT (16 * 1024)
#define ALOG_TARGET_MAX 2048                      /* longer targets are cut */
#define ALOG_LINE_MAX (4 * ALOG_TARGET_MAX + 512) /* every target byte may need \xHH */
#define ALOG_INTERVAL_MS 1000

typedef struct alog {
    char *buf; /* ALOG_FLUSH_AT + ALOG_LINE_MAX bytes while connections live */
    size_t len;
    size_t conns; /* connections with the log on, on this thread */
    corio__timer timer;
    time_t date_at;
    char date[32];
} alog;

static __thread alog alog_tls;

static void alog_write(alog *l) {
    size_t off = 0;
    while (off < l->len) {
        size_t n = l->len - off;
        if (n > PIPE_BUF) { /* up to the last whole line that fits */
            const char *nl = memrchr(l->buf + off, '\n', PIPE_BUF);
            n = nl ? (size_t)(nl - (l->buf + off)) + 1 : PIPE_BUF;
        }
        ssize_t w = write(STDERR_FILENO, l->buf + off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* stderr is gone: the lines are dropped */
        off += (size_t)w;
    }
    l->len = 0;
}

static void alog_on_timer(corio__timer *t) {
    (void)t;
    alog_write(&alog_tls);
}

void corio__access_log_conn_begin(corio__hconn *c) {
    corio__hconn_peer(c); /* now: once the client has gone, the socket no longer knows */
    alog *l = &alog_tls;
    if (l->conns++ > 0)
        return;
    l->buf = malloc(ALOG_FLUSH_AT + ALOG_LINE_MAX);
    l->len = 0;
    corio__timer_init(&l->timer, alog_on_timer);
}

void corio__access_log_conn_end(void) {
    alog *l = &alog_tls;
    if (--l->conns > 0)
        return;
    corio__timer_stop(corio__tls_loop, &l->timer);
    if (l->buf)
        alog_write(l);
    free(l->buf);
    l->buf = NULL;
}

void corio__access_log(corio__hconn *c) {
    alog *l = &alog_tls;
    if (!l->buf)
        return; /* no memory for the buffer when the connections began */
    time_t now = time(NULL);
    if (now != l->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(l->date, sizeof l->date, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        l->date_at = now;
    }
    const corio_req *r = &c->req;
    char *line = l->buf + l->len;
    size_t n = (size_t)snprintf(line, ALOG_LINE_MAX, "%s - - [%s] \"", c->peer, l->date);
    if (r->version.len) { /* the request line was read whole */
        corio_strv target = corio_req_target(r);
        if (target.len > ALOG_TARGET_MAX)
            target.len = ALOG_TARGET_MAX;
        corio_strv m = corio_req_method(r);
        n += corio_log_escape(line + n, ALOG_LINE_MAX - n, m.ptr, m.len);
        line[n++] = ' ';
        n += corio_log_escape(line + n, ALOG_LINE_MAX - n, target.ptr, target.len);
        n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, " HTTP/1.%d",
                              llhttp_get_http_minor(&c->parser));
    } else {
        line[n++] = '-';
    }
    char bytes[24] = "-";
    if (c->res.body_bytes)
        snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)c->res.body_bytes);
    n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, "\" %d %s %llu\n", c->res.status, bytes,
                          (unsigned long long)((uv_hrtime() - c->started_ns) / 1000));
    l->len += n;
    if (l->len >= ALOG_FLUSH_AT)
        alog_write(l);
    else if (!corio__timer_armed(&l->timer))
        corio__timer_start(corio__tls_loop, &l->timer,
                           corio__now_fresh(corio__tls_loop) + ALOG_INTERVAL_MS);
}
