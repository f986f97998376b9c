/* SPDX-License-Identifier: MIT */
/* The HTTP client's URLs and requests: parsing an absolute URL (or a
 * redirect's Location against the URL it answers), checking and copying a
 * request description, and writing its head.  Nothing here awaits. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fmt.h"
#include "base/report.h"
#include "base/tchar.h"
#include "client_internal.h"

/* ---- URLs --------------------------------------------------------------------------------- */

static int hexval(int c) {
    return isdigit(c) ? c - '0' : isxdigit(c) ? (tolower(c) - 'a' + 10) : -1;
}

/* The authority [s, end) into u: host (brackets off a v6 literal), port.
 * For http+unix the host is a percent-encoded socket path. */
static int parse_authority(const char *s, const char *end, corio__url *u) {
    if (memchr(s, '@', (size_t)(end - s))) /* userinfo: not sent, not supported */
        return CORIO_EINVAL;
    if (u->scheme == CORIO__UNIX) {
        size_t o = 0;
        for (const char *p = s; p < end; p++) {
            int c = (unsigned char)*p;
            if (c == '%') {
                int hi = p + 2 < end ? hexval((unsigned char)p[1]) : -1;
                int lo = hi >= 0 ? hexval((unsigned char)p[2]) : -1;
                if (lo < 0)
                    return CORIO_EINVAL;
                c = hi * 16 + lo;
                p += 2;
            }
            if (c == 0 || o + 1 >= sizeof u->host)
                return CORIO_EINVAL;
            u->host[o++] = (char)c;
        }
        if (o == 0)
            return CORIO_EINVAL;
        u->host[o] = '\0';
        u->port = 0;
        return 0;
    }
    const char *h = s, *he, *port;
    if (*h == '[') { /* [v6] */
        he = memchr(h, ']', (size_t)(end - h));
        if (!he)
            return CORIO_EINVAL;
        h++;
        port = he + 1 < end ? he + 1 : NULL;
        if (port && *port != ':')
            return CORIO_EINVAL;
    } else {
        he = memchr(h, ':', (size_t)(end - h));
        port = he;
        he = he ? he : end;
    }
    size_t hl = (size_t)(he - h);
    if (hl == 0 || hl >= sizeof u->host)
        return CORIO_EINVAL;
    for (size_t i = 0; i < hl; i++) /* goes into Host: no CR/LF, space, control */
        if ((unsigned char)h[i] <= ' ' || h[i] == 0x7f)
            return CORIO_EINVAL;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    u->port = u->scheme == CORIO__HTTPS ? 443 : 80;
    if (port) {
        unsigned long v = 0;
        const char *d = port + 1;
        if (d == end)
            return CORIO_EINVAL;
        for (; d < end; d++)
            if (!isdigit((unsigned char)*d) || (v = v * 10 + (unsigned long)(*d - '0')) > 65535)
                return CORIO_EINVAL;
        if (v == 0)
            return CORIO_EINVAL;
        u->port = (uint16_t)v;
    }
    return 0;
}

/* The target [s, fragment) copied, "/" when empty; no control bytes or
 * spaces (they would break the request line). */
static int set_target(corio__url *u, const char *s) {
    size_t n = strcspn(s, "#");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
            return CORIO_EINVAL;
    bool slash = n && *s == '/';
    if (!(u->target = malloc(n + 2)))
        return CORIO_ENOMEM;
    char *t = u->target;
    if (!slash)
        *t++ = '/';
    memcpy(t, s, n);
    t[n] = '\0';
    return 0;
}

/* RFC 3986 5.2.4: removes "." and ".." segments from the path of t (up to
 * its '?'), in place. */
static void remove_dot_segments(char *t) {
    size_t plen = strcspn(t, "?");
    char *out = t, *in = t, *end = t + plen;
    while (in < end) {
        char *seg = in + 1; /* t starts with '/' and so does each segment */
        char *next = memchr(seg, '/', (size_t)(end - seg));
        next = next ? next : end;
        size_t n = (size_t)(next - seg);
        if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
            if (n == 2) /* back to the previous segment's start */
                while (out > t && *--out != '/') {
                }
            if (next == end) /* "/a/." and "/a/..": the directory, with its slash */
                *out++ = '/';
        } else {
            memmove(out, in, (size_t)(next - in));
            out += next - in;
        }
        in = next;
    }
    if (out == t)
        *out++ = '/';
    memmove(out, end, strlen(end) + 1);
}

/* A reference that is a relative path ("x", "../x"), a query ("?q") or
 * empty ("", "#f"), resolved against base's target (RFC 3986 5.2.2-5.2.3). */
static int resolve_relative(const char *ref, const corio__url *base, corio__url *u) {
    *u = *base;
    u->target = NULL;
    const char *bt = base->target;
    size_t keep = strcspn(bt, "?");      /* the base path: for "?q" */
    if (ref[0] == '\0' || ref[0] == '#') /* the same document */
        keep = strlen(bt);
    else if (ref[0] != '?')
        while (keep > 1 && bt[keep - 1] != '/') /* its directory (bt starts with '/') */
            keep--;
    size_t rl = strcspn(ref, "#");
    char *t = malloc(keep + rl + 1);
    if (!t)
        return CORIO_ENOMEM;
    memcpy(t, bt, keep);
    memcpy(t + keep, ref, rl);
    t[keep + rl] = '\0';
    remove_dot_segments(t);
    int rc = set_target(u, t);
    free(t);
    return rc;
}

int corio__url_parse(const char *s, const corio__url *base, corio__url *u) {
    static const struct {
        const char *prefix;
        int scheme;
    } schemes[] = {
        {"http://", CORIO__HTTP}, {"https://", CORIO__HTTPS}, {"http+unix://", CORIO__UNIX}};
    memset(u, 0, sizeof *u);
    if (base && s[0] == '/' && s[1] != '/') { /* a path on the same origin */
        *u = *base;
        u->target = NULL;
        int rc = set_target(u, s);
        if (rc == 0)
            remove_dot_segments(u->target);
        return rc;
    }
    size_t scheme_len =
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    if (base && s[0] != '/' && !(scheme_len && s[scheme_len] == ':')) {
        return resolve_relative(s, base, u);
    }
    if (base && s[0] == '/' && s[1] == '/') { /* scheme-relative */
        u->scheme = base->scheme;
        s += 2;
    } else {
        size_t i = 0;
        for (; i < sizeof schemes / sizeof *schemes; i++) {
            size_t n = strlen(schemes[i].prefix);
            if (strncasecmp(s, schemes[i].prefix, n) == 0) {
                u->scheme = schemes[i].scheme;
                s += n;
                break;
            }
        }
        if (i == sizeof schemes / sizeof *schemes) {
            const char *colon = strchr(s, ':');
            bool scheme =
                colon && colon > s &&
                strspn(s, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") == (size_t)(colon - s);
            return scheme ? CORIO_ENOTSUP : CORIO_EINVAL;
        }
    }
    const char *end = s + strcspn(s, "/?#");
    int rc = parse_authority(s, end, u);
    if (rc == 0 && (rc = set_target(u, end)) == 0 && base)
        remove_dot_segments(u->target); /* a Location's path, resolved (RFC 3986 5.2.2) */
    return rc;
}

void corio__url_release(corio__url *u) {
    free(u->target);
    u->target = NULL;
}

/* ---- requests ----------------------------------------------------------------------------- */

/* A token (method, field name), or a value without CR or LF (a header
 * injection otherwise; NUL cannot occur inside a C string). */
static bool clean(const char *s, bool token) {
    if (token && !*s)
        return false;
    for (; *s; s++)
        if (token ? !corio__is_tchar((unsigned char)*s) : (*s == '\r' || *s == '\n'))
            return false;
    return true;
}

/* Fields whose value follows from how the client frames and keeps the
 * connection: a caller's would contradict it. */
static bool owned_by_client(const char *name) {
    static const char *const owned[] = {"Connection", "Content-Length", "Transfer-Encoding",
                                        "Keep-Alive", "Upgrade",        "TE",
                                        "Trailer"};
    for (size_t i = 0; i < sizeof owned / sizeof *owned; i++)
        if (strcasecmp(name, owned[i]) == 0)
            return true;
    return false;
}

/* An Upgrade protocol: a token, or token/token. */
static bool upgrade_ok(const char *p) {
    const char *slash = strchr(p, '/');
    if (!slash)
        return clean(p, true);
    size_t n = (size_t)(slash - p);
    if (n == 0 || !slash[1] || strchr(slash + 1, '/'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!corio__is_tchar((unsigned char)p[i]))
            return false;
    return clean(slash + 1, true);
}

static bool is_idempotent(const char *m) {
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

int corio__req_init(corio__req *q, const corio_http_req *rq, bool copy_body) {
    memset(q, 0, sizeof *q);
    q->body_fd = -1;
    const char *method = rq->method ? rq->method : "GET";
    if (!rq->url || !clean(method, true) || (rq->nheaders && !rq->headers))
        return CORIO_EINVAL;
    int kinds = (rq->body != NULL) + (rq->body_file != NULL) + rq->body_stream;
    if (kinds > 1 || (rq->body && rq->body_length < 0) ||
        (rq->body_stream && rq->body_length < 0 && rq->body_length != CORIO_HTTP_CHUNKED) ||
        (!rq->body && !rq->body_stream && rq->body_length != 0))
        return CORIO_EINVAL;
    if (rq->upgrade && (kinds || rq->max_redirects || !upgrade_ok(rq->upgrade)))
        return CORIO_EINVAL;
    size_t sl = strlen(method) + 1 + (rq->upgrade ? strlen(rq->upgrade) + 1 : 0);
    /* Called from a task serving a request (or spawned by one): its id
     * goes upstream, unless the caller sends one itself. */
    const char *rid = corio__log_request_id;
    for (size_t i = 0; i < rq->nheaders; i++) {
        const corio_http_header *h = &rq->headers[i];
        if (!h->name || !h->value || !clean(h->name, true) || !clean(h->value, false) ||
            owned_by_client(h->name))
            return CORIO_EINVAL;
        sl += strlen(h->name) + strlen(h->value) + 2;
        if (strcasecmp(h->name, "X-Request-Id") == 0)
            rid = NULL;
    }
    if (rid && !clean(rid, false))
        rid = NULL;
    size_t nh = rq->nheaders + (rid != NULL);
    if (rid)
        sl += strlen(rid) + 1;
    int rc = corio__url_parse(rq->url, NULL, &q->url);
    if (rc)
        return rc;
    /* One block: the header array, then the strings. */
    q->headers = malloc(nh * sizeof *q->headers + sl);
    if (!q->headers) {
        corio__req_release(q);
        return CORIO_ENOMEM;
    }
    q->strings = (char *)(q->headers + nh);
    char *at = q->strings;
    q->method = at;
    at = stpcpy(at, method) + 1;
    for (size_t i = 0; i < rq->nheaders; i++) {
        q->headers[i].name = at;
        at = stpcpy(at, rq->headers[i].name) + 1;
        q->headers[i].value = at;
        at = stpcpy(at, rq->headers[i].value) + 1;
    }
    if (rq->upgrade) {
        q->upgrade = at;
        at = stpcpy(at, rq->upgrade) + 1;
    }
    if (rid) {
        q->headers[rq->nheaders].name = "X-Request-Id";
        q->headers[rq->nheaders].value = at;
        stpcpy(at, rid); /* the last string */
    }
    q->nheaders = nh;
    q->idempotent = is_idempotent(q->method);
    q->head = strcmp(q->method, "HEAD") == 0;
    q->max_redirects = rq->max_redirects;
    q->body_length = rq->body_length;
    if (rq->body) {
        q->body_kind = CORIO__BODY_BYTES;
        q->body = rq->body;
        if (copy_body && rq->body_length) {
            void *b = malloc((size_t)rq->body_length);
            if (!b) {
                corio__req_release(q);
                return CORIO_ENOMEM;
            }
            memcpy(b, rq->body, (size_t)rq->body_length);
            q->body = b;
            q->body_owned = true;
        }
    } else if (rq->body_file) {
        q->body_kind = CORIO__BODY_FILE;
        struct stat st = {0}; /* read only when fstat succeeded */
        q->body_fd = open(rq->body_file, O_RDONLY | O_CLOEXEC);
        rc = q->body_fd < 0 || fstat(q->body_fd, &st) != 0 ? -errno
             : !S_ISREG(st.st_mode)                        ? CORIO_EINVAL
                                                           : 0;
        if (rc) {
            corio__req_release(q);
            return rc;
        }
        q->body_length = st.st_size;
    } else if (rq->body_stream) {
        q->body_kind = CORIO__BODY_STREAM;
    }
    return 0;
}

void corio__req_release(corio__req *q) {
    free(q->headers); /* and the strings after it */
    if (q->body_owned)
        free((void *)q->body);
    if (q->body_fd >= 0)
        close(q->body_fd);
    corio__url_release(&q->url);
    memset(q, 0, sizeof *q);
    q->body_fd = -1;
}

static bool has_header(const corio__req *q, const char *name) {
    for (size_t i = 0; i < q->nheaders; i++)
        if (strcasecmp(q->headers[i].name, name) == 0)
            return true;
    return false;
}

typedef struct buf {
    char *b;
    size_t len, cap;
    bool failed;
} buf;

/* Appends s; the first call sizes the buffer for the whole head (cap). */
static void put(buf *b, const char *s) {
    size_t n = strlen(s);
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t want = b->cap ? b->cap * 2 : 512;
        while (want < b->len + n)
            want *= 2;
        char *nb = realloc(b->b, want);
        if (!nb) {
            b->failed = true;
            return;
        }
        b->b = nb;
        b->cap = want;
    }
    memcpy(b->b + b->len, s, n);
    b->len += n;
}

char *corio__req_head(const corio__req *q, size_t *len) {
    /* Room for everything but the fields, and for the fields as copied in
     * corio__req_init (their strings block): one allocation. */
    size_t fields = 0;
    for (size_t i = 0; i < q->nheaders; i++)
        fields += strlen(q->headers[i].name) + strlen(q->headers[i].value) + 4;
    if (q->upgrade)
        fields += strlen(q->upgrade) + 32;
    buf b = {.cap = strlen(q->method) + strlen(q->url.target) + strlen(q->url.host) + fields + 128};
    if (!(b.b = malloc(b.cap)))
        return NULL;
    char num[32];
    put(&b, q->method);
    put(&b, " ");
    put(&b, q->url.target);
    put(&b, " HTTP/1.1\r\n");
    if (!has_header(q, "Host")) {
        const corio__url *u = &q->url;
        put(&b, "Host: ");
        if (u->scheme == CORIO__UNIX) {
            put(&b, "localhost");
        } else {
            bool v6 = strchr(u->host, ':') != NULL;
            put(&b, v6 ? "[" : "");
            put(&b, u->host);
            put(&b, v6 ? "]" : "");
            if (u->port != (u->scheme == CORIO__HTTPS ? 443 : 80)) {
                num[0] = ':';
                num[1 + corio__fmt_u64(num + 1, u->port)] = '\0';
                put(&b, num);
            }
        }
        put(&b, "\r\n");
    }
    for (size_t i = 0; i < q->nheaders; i++) {
        put(&b, q->headers[i].name);
        put(&b, ": ");
        put(&b, q->headers[i].value);
        put(&b, "\r\n");
    }
    if (q->upgrade) {
        put(&b, "Connection: Upgrade\r\nUpgrade: ");
        put(&b, q->upgrade);
        put(&b, "\r\n");
    }
    bool wants_length = q->body_kind != CORIO__BODY_NONE || !strcmp(q->method, "POST") ||
                        !strcmp(q->method, "PUT") || !strcmp(q->method, "PATCH");
    if (q->body_kind == CORIO__BODY_STREAM && q->body_length == CORIO_HTTP_CHUNKED) {
        put(&b, "Transfer-Encoding: chunked\r\n");
    } else if (wants_length) {
        num[corio__fmt_u64(num, (uint64_t)q->body_length)] = '\0';
        put(&b, "Content-Length: ");
        put(&b, num);
        put(&b, "\r\n");
    }
    put(&b, "\r\n");
    if (b.failed) {
        free(b.b);
        return NULL;
    }
    *len = b.len;
    return b.b;
}
