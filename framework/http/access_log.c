/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* memrchr */
/* The access log (see corio_http_opts.access_log): one line per response,
 * the common log format plus the microseconds from the request's head being
 * complete to its response being complete (handed to the stream, or queued
 * with the batch it leaves in):
 *
 *   127.0.0.1 - - [25/Nov/2026:14:17:21 +0000] "GET /q?x=1 HTTP/1.1" 200 13 87 "3f2a..."
 *
 * (the last field the request's id, corio_req_id), or with JSON log lines
 * (corio_log_get_format) one object per response with those fields under
 * keys (see corio_http_opts.access_log).
 *
 * Lines gather in a per-thread (so per-loop) buffer, written to stderr once
 * it passes 16 KiB, a second after the first line waiting at the latest (a
 * loop timer), and when the thread's last connection ends, which is also
 * how every line is out before a worker exits.  Writes are whole lines, at
 * most PIPE_BUF bytes each, so workers sharing stderr never interleave.
 *
 * Whether a connection logs, and where to: the server's opts.access_log,
 * unless the process says otherwise (corio_http_access_log_set, or else the
 * environment variable CORIO_ACCESS_LOG, read at the first connection):
 * off, on (stderr), or a file every process appends to (O_APPEND: whole
 * lines from several workers do not interleave there either). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/report.h"
#include "base/timefmt.h"
#include "corio/error.h"
#include "corio/log.h"
#include "http/http_internal.h"
#include "runtime/internal.h"

#define ALOG_FLUSH_AT (16 * 1024)
#define ALOG_TARGET_MAX 2048 /* longer targets are cut */
/* every target byte may need \xHH, or in JSON \u00HH */
#define ALOG_LINE_MAX (6 * ALOG_TARGET_MAX + 1024)
#define ALOG_INTERVAL_MS 1000

typedef struct alog {
    char *buf; /* ALOG_FLUSH_AT + ALOG_LINE_MAX bytes while connections live */
    size_t len;
    size_t conns; /* connections with the log on, on this thread */
    corio__timer timer;
    time_t date_at;
    char date[CORIO__TIMEFMT_CLF_SIZE];
} alog;

static __thread alog alog_tls;

/* ---- the process's setting ------------------------------------------------------------ */

typedef enum alog_mode {
    ALOG_OPTS, /* each server's opts.access_log decides */
    ALOG_OFF,
    ALOG_ON,
} alog_mode;

/* Resolved once (the first connection, or corio_http_access_log_set) under
 * the mutex; read without it once `resolved` is set. */
static struct {
    pthread_mutex_t lock;
    atomic_bool resolved;
    alog_mode mode;
    int fd; /* where lines go: STDERR_FILENO or the file */
} alog_cfg = {.lock = PTHREAD_MUTEX_INITIALIZER, .fd = STDERR_FILENO};

static bool word_in(const char *s, const char *const *words, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(s, words[i]) == 0)
            return true;
    return false;
}

/* Applies spec (see corio_http_access_log_set) with the lock held.  Returns
 * 0, or the error opening the file (the setting is then left as it was). */
static int apply_locked(const char *spec) {
    static const char *const off[] = {"off", "0", "false", "no"};
    static const char *const on[] = {"on", "1", "true", "yes", "stderr", "-"};
    alog_mode mode = ALOG_ON;
    int fd = STDERR_FILENO;
    if (!spec || !*spec) {
        mode = ALOG_OPTS;
    } else if (word_in(spec, off, sizeof off / sizeof off[0])) {
        mode = ALOG_OFF;
    } else if (!word_in(spec, on, sizeof on / sizeof on[0])) {
        fd = open(spec, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
    }
    if (alog_cfg.fd != STDERR_FILENO)
        close(alog_cfg.fd);
    alog_cfg.mode = mode;
    alog_cfg.fd = fd;
    atomic_store(&alog_cfg.resolved, true);
    return 0;
}

int corio_http_access_log_set(const char *spec) {
    pthread_mutex_lock(&alog_cfg.lock);
    int rc = apply_locked(spec);
    pthread_mutex_unlock(&alog_cfg.lock);
    return rc;
}

/* The environment's setting, on first use (unless set in code before). */
static void resolve(void) {
    pthread_mutex_lock(&alog_cfg.lock);
    if (!atomic_load(&alog_cfg.resolved)) {
        const char *spec = getenv("CORIO_ACCESS_LOG");
        int rc = apply_locked(spec);
        if (rc) {
            corio__report("CORIO_ACCESS_LOG=%s: cannot open the file (%s); the access log goes "
                          "to stderr",
                          spec, corio_strerror(rc));
            apply_locked("on");
        }
    }
    pthread_mutex_unlock(&alog_cfg.lock);
}

bool corio__access_log_wanted(bool opt) {
    if (!atomic_load_explicit(&alog_cfg.resolved, memory_order_acquire))
        resolve();
    return alog_cfg.mode == ALOG_OPTS ? opt : alog_cfg.mode == ALOG_ON;
}

/* ---- the per-thread buffer --------------------------------------------------------------- */

static void alog_write(alog *l) {
    size_t off = 0;
    while (off < l->len) {
        size_t n = l->len - off;
        if (n > PIPE_BUF) { /* up to the last whole line that fits */
            const char *nl = memrchr(l->buf + off, '\n', PIPE_BUF);
            n = nl ? (size_t)(nl - (l->buf + off)) + 1 : PIPE_BUF;
        }
        ssize_t w = write(alog_cfg.fd, l->buf + off, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* stderr (or the file) is gone: the lines are dropped */
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

/* The JSON object for the response into line (ALOG_LINE_MAX bytes).
 * Returns its length, the newline included. */
static size_t json_line(corio__hconn *c, char *line) {
    const corio_req *r = &c->req;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char when[CORIO__TIMEFMT_ISO_MS_SIZE];
    corio__timefmt_iso_ms(when, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    size_t n = (size_t)snprintf(line, ALOG_LINE_MAX, "{\"time\":\"%s\",\"remote\":\"", when);
    n += corio_log_json_escape(line + n, ALOG_LINE_MAX - n, c->peer, strlen(c->peer));
    if (r->version.len) {
        corio_strv target = corio_req_target(r), m = corio_req_method(r);
        if (target.len > ALOG_TARGET_MAX)
            target.len = ALOG_TARGET_MAX;
        n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, "\",\"method\":\"");
        n += corio_log_json_escape(line + n, ALOG_LINE_MAX - n, m.ptr, m.len);
        n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, "\",\"target\":\"");
        n += corio_log_json_escape(line + n, ALOG_LINE_MAX - n, target.ptr, target.len);
        n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, "\",\"protocol\":\"HTTP/1.%d\"",
                              llhttp_get_http_minor(&c->parser));
    } else {
        n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n,
                              "\",\"method\":null,\"target\":null,\"protocol\":null");
    }
    n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n,
                          ",\"status\":%d,\"bytes\":%llu,\"duration_us\":%llu,\"request_id\":\"",
                          c->res.status, (unsigned long long)c->res.body_bytes,
                          (unsigned long long)((uv_hrtime() - c->started_ns) / 1000));
    n += corio_log_json_escape(line + n, ALOG_LINE_MAX - n, c->req_id, c->req_id_len);
    n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, "\"}\n");
    return n;
}

/* The common log format line, then the duration and the id. */
static size_t text_line(alog *l, corio__hconn *c, char *line) {
    time_t now = time(NULL);
    if (now != l->date_at) { /* English month names, whatever LC_TIME says */
        corio__timefmt_clf(l->date, now);
        l->date_at = now;
    }
    const corio_req *r = &c->req;
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
    n += (size_t)snprintf(line + n, ALOG_LINE_MAX - n, "\" %d %s %llu \"", c->res.status, bytes,
                          (unsigned long long)((uv_hrtime() - c->started_ns) / 1000));
    n += corio_log_escape(line + n, ALOG_LINE_MAX - n, c->req_id, c->req_id_len);
    line[n++] = '"';
    line[n++] = '\n';
    return n;
}

void corio__access_log(corio__hconn *c) {
    alog *l = &alog_tls;
    if (!l->buf)
        return; /* no memory for the buffer when the connections began */
    char *line = l->buf + l->len;
    l->len += corio_log_get_format() == CORIO_LOG_JSON ? json_line(c, line) : text_line(l, c, line);
    if (l->len >= ALOG_FLUSH_AT)
        alog_write(l);
    else if (!corio__timer_armed(&l->timer))
        corio__timer_start(corio__tls_loop, &l->timer,
                           corio__now_fresh(corio__tls_loop) + ALOG_INTERVAL_MS);
}
