/* Responses: heads serialized into the connection's arena, small bodies
 * copied beside them, everything queued for one write per batch; large
 * bodies and streamed chunks are written straight from the caller's memory. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http/http_internal.h"

#define COPY_BODY_MAX (16 * 1024)

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
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
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
    return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/* Serializes the head into the arena and queues it. */
static int queue_head(corio_res *res, int status, const char *ctype, const char *framing) {
    corio__hconn *c = res->c;
    if (corio_stream_draining(c->s))
        c->close = true; /* the server is shutting down: this is the last response */
    bool keep = !c->close;
    size_t cap = 256 + res->extra_len + (ctype ? strlen(ctype) : 0);
    char *h = corio__arena_alloc(&c->arena, cap);
    if (!h)
        return CORIO_ENOMEM;
    int n = snprintf(h, cap, "HTTP/1.1 %d %s\r\nServer: corio\r\nDate: %s\r\n", status,
                     corio__http_reason(status), corio__http_date());
    if (ctype)
        n += snprintf(h + n, cap - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (framing)
        n += snprintf(h + n, cap - (size_t)n, "%s", framing);
    if (res->extra_len) {
        memcpy(h + n, res->extra, res->extra_len);
        n += (int)res->extra_len;
    }
    if (!keep)
        n += snprintf(h + n, cap - (size_t)n, "Connection: close\r\n");
    else if (c->req.minor == 0)
        n += snprintf(h + n, cap - (size_t)n, "Connection: keep-alive\r\n");
    n += snprintf(h + n, cap - (size_t)n, "\r\n");
    res->started = true;
    return corio__hconn_queue(c, h, (size_t)n);
}

int corio_res_send(corio_res *res, int status, const char *content_type, const void *body,
                   size_t len) {
    if (!res)
        return CORIO_EINVAL;
    if (res->started)
        return CORIO_EALREADY;
    if (status < 100 || status > 999)
        return CORIO_EINVAL;
    corio__hconn *c = res->c;
    char framing[48];
    bool no_body = bodiless_status(status);
    if (no_body)
        framing[0] = '\0';
    else
        snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", len);
    int rc = queue_head(res, status, no_body ? NULL : content_type, framing);
    if (rc)
        return rc;
    res->ended = true;
    if (no_body || c->req.head_method || len == 0)
        return 0;
    if (len <= COPY_BODY_MAX) {
        void *copy = corio__arena_alloc(&c->arena, len);
        if (!copy)
            return CORIO_ENOMEM;
        memcpy(copy, body, len);
        return corio__hconn_queue(c, copy, len);
    }
    rc = corio__hconn_queue(c, body, len);
    return rc ? rc : corio__hconn_flush(c); /* body is borrowed: write it now */
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
    if (status < 200 || status > 999 || bodiless_status(status))
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
    if (!res->chunked) {
        int rc = corio__hconn_queue(c, data, len);
        return rc ? rc : corio__hconn_flush(c);
    }
    char *size = corio__arena_alloc(&c->arena, 24);
    if (!size)
        return CORIO_ENOMEM;
    int n = snprintf(size, 24, "%zx\r\n", len);
    int rc = corio__hconn_queue(c, size, (size_t)n);
    if (rc == 0)
        rc = corio__hconn_queue(c, data, len);
    if (rc == 0)
        rc = corio__hconn_queue(c, "\r\n", 2);
    return rc ? rc : corio__hconn_flush(c);
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
