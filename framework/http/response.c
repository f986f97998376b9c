/* SPDX-License-Identifier: MIT */
/* Responses: heads serialized into the connection's arena, small bodies
 * copied beside them, everything queued for one write per batch; large
 * bodies and streamed chunks are written straight from the caller's memory.
 * A response that cannot be completed (corio_res_abort, an end short of its
 * Content-Length) is marked cut, and dispatch.c ends the connection after
 * it.  The access log, which records responses, is access_log.c.
 * Compression (compress.c) hooks in where a head is about to be queued and
 * where body bytes are written, behind one test of res->gz (res->gzs once
 * a stream is compressed): a response no compressor wraps pays nothing
 * more. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/fmt.h"
#include "base/tchar.h"
#include "http/http_internal.h"
#include "net/proto.h"

#define COPY_BODY_MAX (16 * 1024)
#define WRITE_SLICE (256 * 1024)

/* IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT", 29 bytes: the head copies
 * exactly that many) with English names whatever the application's locale
 * (strftime's %a and %b follow LC_TIME). */
const char *corio__http_date(void) {
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static __thread char buf[80]; /* room for any int the format could see */
    static __thread time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        snprintf(buf, sizeof buf, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT", days + 3 * tm.tm_wday,
                 tm.tm_mday, months + 3 * tm.tm_mon, tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                 tm.tm_sec);
        last = now;
    }
    return buf;
}

const char *corio__http_reason(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
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

int corio_res_header(corio_res *res, const char *name, const char *value) {
    if (!res || !name || !value)
        return CORIO_EINVAL;
    if (res->started || res->cut)
        return CORIO_EALREADY;
    size_t nlen = strlen(name), vlen = strlen(value);
    if (nlen == 0)
        return CORIO_EINVAL;
    for (size_t i = 0; i < nlen; i++)
        if (!corio__is_tchar((unsigned char)name[i]))
            return CORIO_EINVAL;
    for (size_t i = 0; i < vlen; i++)
        if (value[i] == '\r' || value[i] == '\n')
            return CORIO_EINVAL; /* NUL cannot occur inside a C string */
    static const char *const reserved[] = {"content-length", "transfer-encoding", "date",
                                           "connection"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcasecmp(name, reserved[i]) == 0)
            return CORIO_EPERM;
    if (nlen == 12 && strcasecmp(name, "x-request-id") == 0)
        res->own_request_id = true;
    if (nlen == 7 && strcasecmp(name, "upgrade") == 0)
        res->offers_upgrade = true; /* Connection then names it (RFC 9110 7.8) */
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
static void content_length_line(char *buf, uint64_t n) {
    char *p = append(buf, "Content-Length: ", 16);
    p += corio__fmt_u64(p, n);
    memcpy(p, "\r\n", 3);
}

/* Serializes the head into the arena and queues it.  `conn_lines`: the
 * Connection field (and what goes with it) in place of the server's own
 * (corio_res_upgrade), or NULL. */
static int queue_head(corio_res *res, int status, const char *ctype, const char *framing,
                      const char *conn_lines) {
    corio__hconn *c = res->c;
    if (corio_stream_draining(c->s))
        c->close = true; /* the server is shutting down: this is the last response */
    if (corio__req_drain(&c->req) > CORIO__DRAIN_READ)
        c->close = true; /* say so now: the unread body will end the connection */
    bool keep = !c->close;
    /* Built with memcpy, not snprintf: this runs once per response, and
     * snprintf was a fifth of the server's CPU under pipelined load. */
    const char *reason = corio__http_reason(status);
    size_t rlen = strlen(reason), clen = ctype ? strlen(ctype) : 0;
    size_t flen = framing ? strlen(framing) : 0, conn_len = conn_lines ? strlen(conn_lines) : 0;
    size_t cap = 128 + rlen + clen + flen + res->extra_len + 16 + c->req_id_len + conn_len;
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
    if (c->req_id_len && !res->own_request_id) {
        p = append(p, "X-Request-Id: ", 14);
        p = append(p, c->req_id, c->req_id_len);
        p = append(p, "\r\n", 2);
    }
    if (conn_lines)
        p = append(p, conn_lines, conn_len);
    else if (res->offers_upgrade) /* a 426, say: Upgrade is a connection option */
        p = !keep               ? append(p, "Connection: Upgrade, close\r\n", 28)
            : c->req.minor == 0 ? append(p, "Connection: Upgrade, keep-alive\r\n", 33)
                                : append(p, "Connection: Upgrade\r\n", 21);
    else if (!keep)
        p = append(p, "Connection: close\r\n", 19);
    else if (c->req.minor == 0)
        p = append(p, "Connection: keep-alive\r\n", 24);
    p = append(p, "\r\n", 2);
    res->started = true;
    res->status = status;
    return corio__hconn_queue(c, h, (size_t)(p - h));
}

/* What starting a response refuses: 0 or the code.  A streamed body cannot
 * follow a bodiless status (204, 304); a head alone may (bodiless). */
static int start_refused(const corio_res *res, int status, const char *content_type,
                         bool bodiless) {
    if (!res)
        return CORIO_EINVAL;
    if (res->started || res->cut)
        return CORIO_EALREADY;
    if (!final_status(status) || (!bodiless && bodiless_status(status)) ||
        !safe_value(content_type))
        return CORIO_EINVAL;
    return 0;
}

int corio__res_send_head(corio_res *res, int status, const char *content_type, uint64_t len) {
    int rc = start_refused(res, status, content_type, true);
    if (rc)
        return rc;
    if (len > SIZE_MAX)
        return CORIO_ERANGE;
    char framing[48];
    bool no_body = bodiless_status(status);
    if (no_body)
        framing[0] = '\0';
    else
        content_length_line(framing, len);
    rc = queue_head(res, status, no_body ? NULL : content_type, framing, NULL);
    if (rc == 0)
        res->ended = true;
    return rc;
}

/* corio_res_send when a compressor wraps the response: the body
 * compressed (CORIO__GZ_BODY), or for HEAD the head alone
 * (CORIO__GZ_HEAD: no Content-Length, since only compressing would tell
 * it).  The compressed body is in the arena: queued, with a flush every
 * WRITE_SLICE bytes as write_borrowed does for a large body.  Returns 1
 * when the body is to go as it is (compress.c decided against), else as
 * corio_res_send.  Not inlined: corio_res_send's own frame stays small
 * (no array, no stack protector) for the responses no compressor wraps. */
static __attribute__((noinline)) int send_compressed(corio_res *res, int status, const char *ctype,
                                                     const void *body, size_t len) {
    corio__gz_out z;
    corio__gz_how how = corio__gz_send(res, status, ctype, body, len, &z);
    if (how == CORIO__GZ_PLAIN)
        return 1;
    corio__hconn *c = res->c;
    char framing[48];
    if (how == CORIO__GZ_HEAD)
        framing[0] = '\0';
    else
        content_length_line(framing, z.len);
    int rc = queue_head(res, status, ctype, framing, NULL);
    if (rc)
        return rc;
    res->ended = true;
    res->body_bytes = how == CORIO__GZ_BODY ? z.len : 0;
    for (size_t i = 0; how == CORIO__GZ_BODY && i < z.n; i++) {
        rc = corio__hconn_queue(c, z.iov[i].iov_base, z.iov[i].iov_len);
        if (rc) {
            corio_res_abort(res); /* the head is queued without all its body */
            return rc;
        }
        if (c->out_bytes >= WRITE_SLICE && (rc = corio__hconn_flush(c)) != 0)
            return rc;
    }
    return 0;
}

int corio_res_send(corio_res *res, int status, const char *content_type, const void *body,
                   size_t len) {
    int rc = start_refused(res, status, content_type, true);
    if (rc)
        return rc;
    if (res->gz && (rc = send_compressed(res, status, content_type, body, len)) <= 0)
        return rc;
    corio__hconn *c = res->c;
    bool with_body = !bodiless_status(status) && !c->req.head_method && len > 0;
    /* The body is copied before the head is queued: a head whose body then
     * failed to follow would be a complete response to the server (ended)
     * and an unfinished one to the client, which would wait for the
     * Content-Length's bytes on a connection kept alive.  Failing here, the
     * handler's CORIO_ENOMEM is answered 500 instead. */
    void *copy = NULL;
    if (with_body && len <= COPY_BODY_MAX) {
        if (!(copy = corio__arena_alloc(&c->arena, len)))
            return CORIO_ENOMEM;
        memcpy(copy, body, len);
    }
    rc = corio__res_send_head(res, status, content_type, len);
    if (rc || !with_body)
        return rc;
    res->body_bytes = len;
    if (!copy)
        return write_borrowed(c, body, len, NULL); /* body is borrowed: write it now */
    rc = corio__hconn_queue(c, copy, len);
    if (rc)
        corio_res_abort(res); /* the head is queued without its body: close after it */
    return rc;
}

int corio_res_text(corio_res *res, int status, const char *text) {
    return corio_res_send(res, status, "text/plain; charset=utf-8", text, text ? strlen(text) : 0);
}

int corio_res_json(corio_res *res, int status, const char *json) {
    return corio_res_send(res, status, "application/json", json, json ? strlen(json) : 0);
}

int corio_res_start(corio_res *res, int status, const char *content_type) {
    int rc = start_refused(res, status, content_type, false);
    if (rc)
        return rc;
    if (res->gz)
        corio__gz_start(res, status, content_type, false, 0); /* the framing stays */
    corio__hconn *c = res->c;
    const char *framing = NULL;
    if (c->req.minor >= 1) {
        res->chunked = true;
        framing = "Transfer-Encoding: chunked\r\n";
    } else {
        res->close_delimited = true;
        c->close = true;
    }
    rc = queue_head(res, status, content_type, framing, NULL);
    return rc ? rc : corio__hconn_flush(c);
}

int corio_res_start_length(corio_res *res, int status, const char *content_type, uint64_t length) {
    int rc = start_refused(res, status, content_type, false);
    if (rc)
        return rc;
    char framing[48];
    content_length_line(framing, length);
    res->length_framed = true;
    res->length_left = length;
    if (res->gz && corio__gz_start(res, status, content_type, true, length)) {
        /* Compressed (HTTP/1.1 only): chunked, the length still counted. */
        res->chunked = true;
        memcpy(framing, "Transfer-Encoding: chunked\r\n", 29);
    }
    rc = queue_head(res, status, content_type, framing, NULL);
    return rc ? rc : corio__hconn_flush(res->c);
}

int corio_res_write(corio_res *res, const void *data, size_t len) {
    if (!res || !res->started || res->ended)
        return CORIO_EINVAL;
    if (res->length_framed) {
        if (len > res->length_left)
            return CORIO_EINVAL; /* past the Content-Length: the next response would start inside */
        res->length_left -= len;
    }
    if (len == 0 || res->c->req.head_method)
        return 0;
    if (res->gzs)
        return corio__gz_write(res, data, len);
    return corio__res_emit(res, data, len);
}

int corio__res_emit(corio_res *res, const void *data, size_t len) {
    corio__hconn *c = res->c;
    res->body_bytes += len;
    if (!res->chunked) /* Content-Length or close-delimited: the bytes as they are */
        return write_borrowed(c, data, len, NULL);
    /* The size line lives in res, not the arena: a stream of many chunks
     * (server-sent events) must not grow the arena with each. */
    int n = snprintf(res->chunk_line, sizeof res->chunk_line, "%zx\r\n", len);
    int rc = corio__hconn_queue(c, res->chunk_line, (size_t)n);
    return rc ? rc : write_borrowed(c, data, len, "\r\n");
}

int corio_res_end(corio_res *res) {
    if (!res || res->cut || !res->started)
        return CORIO_EINVAL;
    if (res->ended)
        return 0;
    res->ended = true;
    corio__hconn *c = res->c;
    if (res->length_framed && res->length_left && !c->req.head_method) {
        /* Short of its Content-Length: the client would wait for the rest,
         * or read the next response as the rest.  The close says it was
         * cut short. */
        res->cut = true;
        c->close = true;
        return CORIO_EINVAL;
    }
    if (res->gzs) { /* the gzip stream's last bytes, queued before the last chunk */
        int rc = corio__gz_finish(res);
        if (rc) {
            res->cut = true; /* the stream cannot end whole: close after what was sent */
            c->close = true;
            return rc;
        }
    }
    if (res->chunked && !c->req.head_method)
        return corio__hconn_queue(c, "0\r\n\r\n", 5);
    return 0;
}

void corio_res_abort(corio_res *res) {
    if (!res)
        return;
    res->c->close = true;
    if (res->ended && !res->cut)
        return; /* complete already: it stays so, and the connection ends after it */
    res->cut = true;
    res->ended = res->started;
}

/* An Upgrade field's protocol: a token, or token/token (RFC 9110 §7.8). */
static bool protocol_ok(const char *p) {
    size_t i = 0, n = strlen(p), slash = 0;
    for (; i < n; i++) {
        if (p[i] == '/' && i > 0 && !slash)
            slash = i;
        else if (!corio__is_tchar((unsigned char)p[i]))
            return false;
    }
    return n > 0 && slash + 1 < n;
}

int corio_res_upgrade(corio_res *res, const char *protocol, corio_stream **out) {
    if (out)
        *out = NULL;
    if (!res || !protocol || !out || !protocol_ok(protocol))
        return CORIO_EINVAL;
    if (res->started || res->cut)
        return CORIO_EALREADY;
    corio__hconn *c = res->c;
    if (!c->req.upgrade || c->req.minor < 1 || c->req.has_body)
        return CORIO_EINVAL;
    if (c->send_failed)
        return c->send_failed;
    size_t plen = strlen(protocol);
    char *lines = corio__arena_alloc(&c->arena, plen + 40);
    if (!lines)
        return CORIO_ENOMEM;
    memcpy(lines, "Connection: Upgrade\r\nUpgrade: ", 30);
    memcpy(lines + 30, protocol, plen);
    memcpy(lines + 30 + plen, "\r\n", 3);
    c->close = true; /* no next request: the connection is the protocol's */
    c->upgraded = true;
    /* The new protocol reads the peer's end itself (a WebSocket's close
     * then FIN must not cancel the handler before it answers). */
    corio__stream_on_input_end(c->s, NULL, NULL);
    int rc = queue_head(res, 101, NULL, NULL, lines);
    res->ended = true;
    if (rc == 0)
        rc = corio__hconn_flush(c);
    if (rc == 0)
        rc = corio__req_own_head(c);
    if (rc)
        return rc;
    *out = c->s;
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
    if (res->started || res->cut)
        return 0;
    res->extra_len = 0;
    res->own_request_id = false;
    res->offers_upgrade = false;
    /* A refusal before the head was prepared (a bad field, 414, 431, 505)
     * has not set head_method yet: a HEAD request's answer has no body
     * either way (the span, not llhttp's method: that may still be the
     * previous request's). */
    if (!c->req.head_method && c->req.method.len == 4 && c->req.method.off + 4 < c->parsed) {
        corio__req_track_head(c);
        const char *m = corio__req_head(&c->req) + c->req.method.off;
        c->req.head_method = memcmp(m, "HEAD", 4) == 0 && m[4] == ' '; /* not "HEAD0" */
    }
    char body[64];
    snprintf(body, sizeof body, "%s\n", corio__http_reason(status));
    return corio_res_text(res, status, body);
}
