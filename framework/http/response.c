#define _GNU_SOURCE /* memrchr */
/* Responses: heads serialized into the connection's arena, small bodies
 * copied beside them, everything queued for one write per batch; large
 * bodies and streamed chunks are written straight from the caller's memory.
 * Also the access log, which records responses. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/fmt.h"
#include "corio/log.h"
#include "http/http_internal.h"
#include "runtime/internal.h"

#define COPY_BODY_MAX (16 * 1024)
#define WRITE_SLICE (256 * 1024)

const char *corio__http_date(void) {
    static __thread char buf[32];
    static __thread time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

const char *corio__http_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

static bool is_token_char(unsigned char c) {
    return c > 32 && c < 127 && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

int corio_res_header(corio_res *res, const char *name, const char *value) {
    if (!res || !name || !value)
        return CORIO_EINVAL;
    if (res->started)
        return CORIO_EALREADY;
    size_t nlen = strlen(name), vlen = strlen(value);
    if (nlen == 0)
        return CORIO_EINVAL;
    for (size_t i = 0; i < nlen; i++)
        if (!is_token_char((unsigned char)name[i]))
            return CORIO_EINVAL;
    for (size_t i = 0; i < vlen; i++)
        if (value[i] == '\r' || value[i] == '\n')
            return CORIO_EINVAL; /* NUL cannot occur inside a C string */
    static const char *const reserved[] = {"content-length", "transfer-encoding", "date",
                                           "connection"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return CORIO_EPERM;
    size_t need = res->extra_len + nlen + vlen + 4;
    if (need > res->extra_cap) {
        size_t cap = res->extra_cap ? res->extra_cap * 2 : 256;
        while (cap < need)
            cap *= 2;
        char *p = corio__arena_alloc(&res->c->arena, cap);
        if (!p)
            return CORIO_ENOMEM;
        if (res->extra_len)
            memcpy(p, res->extra, res->extra_len);
        res->extra = p;
        res->extra_cap = cap;
    }
    char *p = res->extra + res->extra_len;
    memcpy(p, name, nlen);
    p[nlen] = ':';
    p[nlen + 1] = ' ';
    memcpy(p + nlen + 2, value, vlen);
    p[nlen + 2 + vlen] = '\r';
    p[nlen + 3 + vlen] = '\n';
    res->extra_len += nlen + vlen + 4;
    return 0;
}

static bool bodiless_status(int status) {
    return status == 204 || status == 304;
}

/* A status a final response may carry: 2xx to 5xx.  A 1xx is interim (the
 * client would go on waiting for the final response for ever), and a code
 * outside 100..599 is no HTTP status a client understands. */
static bool final_status(int status) {
    return status >= 200 && status <= 599;
}

/* Writes len > 0 bytes of a borrowed buffer, and the static string tail (or
 * NULL) after them, now, after whatever is queued.  In slices: what
 * the kernel does not take at once the stream copies and queues, and a
 * slice at a time that copy stays small, where one write of a large body
 * would copy all of it (64 MiB sent to a slow client: 64 MiB more held). */
static int write_borrowed(corio__hconn *c, const char *p, size_t len, const char *tail) {
    for (;;) {
        size_t n = len < WRITE_SLICE ? len : WRITE_SLICE;
        bool last = n == len;
        int rc = corio__hconn_queue(c, p, n);
        if (rc == 0 && last && tail)
            rc = corio__hconn_queue(c, tail, strlen(tail));
        if (rc == 0)
            rc = corio__hconn_flush(c);
        if (rc || last)
            return rc;
        p += n;
        len -= n;
    }
}

/* Serializes the head into the arena and queues it. */
/* A header value given as a C string: no CR or LF (no header injection). */
static bool safe_value(const char *v) {
    return !v || !strpbrk(v, "\r\n");
}

static char *append(char *p, const char *s, size_t n) {
    if (n)
        memcpy(p, s, n);
    return p + n;
}

/* Writes "Content-Length: <n>\r\n" and a NUL into buf (>= 48 bytes). */
static void content_length_line(char *buf, size_t n) {
    char *p = append(buf, "Content-Length: ", 16);
    p += corio__fmt_u64(p, n);
    memcpy(p, "\r\n", 3);
}

static int queue_head(corio_res *res, int status, const char *ctype, const char *framing) {
    corio__hconn *c = res->c;
    if (corio_stream_draining(c->s))
        c->close = true; /* the server is shutting down: this is the last response */
    if (corio__hconn_body_blocks_keepalive(c))
        c->close = true; /* say so now: the unread body will end the connection */
    bool keep = !c->close;
    /* Built with memcpy, not snprintf: this runs once per response, and
     * snprintf was a fifth of the server's CPU under pipelined load. */
    const char *reason = corio__http_reason(status);
    size_t rlen = strlen(reason), clen = ctype ? strlen(ctype) : 0;
    size_t flen = framing ? strlen(framing) : 0;
    size_t cap = 128 + rlen + clen + flen + res->extra_len;
    char *h = corio__arena_alloc(&c->arena, cap);
    if (!h)
        return CORIO_ENOMEM;
    char *p = h;
    memcpy(p, "HTTP/1.1 ", 9);
    p[9] = (char)('0' + status / 100);
    p[10] = (char)('0' + status / 10 % 10);
    p[11] = (char)('0' + status % 10);
    p[12] = ' ';
    p += 13;
    p = append(p, reason, rlen);
    p = append(p, "\r\nServer: corio\r\nDate: ", 23);
    p = append(p, corio__http_date(), 29);
    p = append(p, "\r\n", 2);
    if (ctype) {
        p = append(p, "Content-Type: ", 14);
        p = append(p, ctype, clen);
        p = append(p, "\r\n", 2);
    }
    p = append(p, framing, flen);
    p = append(p, res->extra, res->extra_len);
    if (!keep)
        p = append(p, "Connection: close\r\n", 19);
    else if (c->req.minor == 0)
        p = append(p, "Connection: keep-alive\r\n", 24);
    p = append(p, "\r\n", 2);
    res->started = true;
    res->status = status;
    return corio__hconn_queue(c, h, (size_t)(p - h));
}

int corio__res_send_head(corio_res *res, int status, const char *content_type, uint64_t len) {
    if (!res)
        return CORIO_EINVAL;
    if (res->started)
        return CORIO_EALREADY;
    if (!final_status(status) || !safe_value(content_type))
        return CORIO_EINVAL;
    if (len > SIZE_MAX)
        return CORIO_ERANGE;
    char framing[48];
    bool no_body = bodiless_status(status);
    if (no_body)
        framing[0] = '\0';
    else
        content_length_line(framing, (size_t)len);
    int rc = queue_head(res, status, no_body ? NULL : content_type, framing);
    if (rc == 0)
        res->ended = true;
    return rc;
}

int corio_res_send(corio_res *res, int status, const char *content_type, const void *body,
                   size_t len) {
    int rc = corio__res_send_head(res, status, content_type, len);
    if (rc)
        return rc;
    corio__hconn *c = res->c;
    if (bodiless_status(status) || c->req.head_method || len == 0)
        return 0;
    res->body_bytes = len;
    if (len <= COPY_BODY_MAX) {
        void *copy = corio__arena_alloc(&c->arena, len);
        if (!copy)
            return CORIO_ENOMEM;
        memcpy(copy, body, len);
        return corio__hconn_queue(c, copy, len);
    }
    return write_borrowed(c, body, len, NULL); /* body is borrowed: write it now */
}

int corio_res_text(corio_res *res, int status, const char *text) {
    return corio_res_send(res, status, "text/plain; charset=utf-8", text, text ? strlen(text) : 0);
}

int corio_res_json(corio_res *res, int status, const char *json) {
    return corio_res_send(res, status, "application/json", json, json ? strlen(json) : 0);
}

int corio_res_start(corio_res *res, int status, const char *content_type) {
    if (!res)
        return CORIO_EINVAL;
    if (res->started)
        return CORIO_EALREADY;
    if (!final_status(status) || bodiless_status(status) || !safe_value(content_type))
        return CORIO_EINVAL;
    corio__hconn *c = res->c;
    const char *framing = NULL;
    if (c->req.minor >= 1) {
        res->chunked = true;
        framing = "Transfer-Encoding: chunked\r\n";
    } else {
        res->close_delimited = true;
        c->close = true;
    }
    int rc = queue_head(res, status, content_type, framing);
    return rc ? rc : corio__hconn_flush(c);
}

int corio_res_write(corio_res *res, const void *data, size_t len) {
    if (!res || !res->started || res->ended)
        return CORIO_EINVAL;
    corio__hconn *c = res->c;
    if (len == 0 || c->req.head_method)
        return 0;
    res->body_bytes += len;
    if (!res->chunked)
        return write_borrowed(c, data, len, NULL);
    /* The size line lives in res, not the arena: a stream of many chunks
     * (server-sent events) must not grow the arena with each. */
    int n = snprintf(res->chunk_line, sizeof res->chunk_line, "%zx\r\n", len);
    int rc = corio__hconn_queue(c, res->chunk_line, (size_t)n);
    return rc ? rc : write_borrowed(c, data, len, "\r\n");
}

int corio_res_end(corio_res *res) {
    if (!res || !res->started)
        return CORIO_EINVAL;
    if (res->ended)
        return 0;
    res->ended = true;
    if (res->chunked && !res->c->req.head_method)
        return corio__hconn_queue(res->c, "0\r\n\r\n", 5);
    return 0;
}

int corio_res_status(const corio_res *res) {
    return res && res->started ? res->status : 0;
}

bool corio_res_started(const corio_res *res) {
    return res && res->started;
}

int corio__http_send_error(corio__hconn *c, int status, bool close) {
    if (close)
        c->close = true;
    corio_res *res = &c->res;
    if (res->started)
        return 0;
    res->extra_len = 0;
    char body[64];
    snprintf(body, sizeof body, "%s\n", corio__http_reason(status));
    return corio_res_text(res, status, body);
}

/* ---- access log ------------------------------------------------------------------------- */

/* One line per response, the common log format plus the microseconds from
 * the request's head being complete to its response being complete (handed
 * to the stream, or queued with the batch it leaves in):
 *
 *   127.0.0.1 - - [25/Nov/2026:14:17:21 +0000] "GET /q?x=1 HTTP/1.1" 200 13 87
 *
 * Lines gather in a per-thread (so per-loop) buffer, written to stderr once
 * it passes 16 KiB, a second after the first line waiting at the latest (a
 * loop timer), and when the thread's last connection ends, which is also
 * how every line is out before a worker exits.  Writes are whole lines, at
 * most PIPE_BUF bytes each, so workers sharing stderr never interleave. */

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

/* The client's address without the port ("127.0.0.1", "::1"), or "-" when
 * it has none (a Unix socket).  Taken when the connection begins: once the
 * client has gone, the socket no longer knows. */
static void alog_peer(corio__hconn *c) {
    char name[sizeof c->peer + 8];
    if (corio_stream_peer_name(c->s, name, sizeof name) != 0 || !name[0]) {
        strcpy(c->peer, "-");
        return;
    }
    const char *start = name[0] == '[' ? name + 1 : name;
    const char *end = name[0] == '[' ? strchr(name, ']') : strrchr(name, ':');
    size_t n = end ? (size_t)(end - start) : strlen(start);
    if (n >= sizeof c->peer)
        n = sizeof c->peer - 1;
    memcpy(c->peer, start, n);
    c->peer[n] = '\0';
}

void corio__access_log_conn_begin(corio__hconn *c) {
    alog_peer(c);
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
