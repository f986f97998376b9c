/* The HTTP/1.1 client: one task per request, a keep-alive pool per origin.
 *
 * corio_http_request copies everything it is given into a request, spawns
 * the task that runs it and hands back a future of the response whose
 * cancel hook cancels that task.  The task checks a connection out of its
 * origin's pool (or opens one), writes the request in one write, parses the
 * response with llhttp, then either gives the connection back (the response
 * was read to its end, both sides keep it alive, nobody is waiting for a
 * permit) or closes it (every other way out: an error, a limit, a timeout,
 * a cancel).  A connection is never pooled half-read.
 *
 * The pool counts open connections with a semaphore of max_conns_per_origin
 * permits: opening one takes a permit (waiting FIFO when none is free),
 * closing one gives it back.  A connection coming back while a request waits
 * for a permit is closed instead of pooled, so the waiter gets the permit at
 * once: simple and fair, at the price of a reconnect under contention.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/fmt.h"
#include "base/tchar.h"
#include "client_internal.h"
#include "corio/scope.h"
#include "corio/stream.h"
#include "corio/sync.h"
#include "net/proto.h"

typedef struct pconn {
    struct pconn *next;
    corio_stream *s;
    uint64_t idle_since;
} pconn;

typedef struct origin {
    struct origin *next;
    char *host;
    uint16_t port;
    corio_semaphore permits; /* max_conns_per_origin - open connections */
    size_t waiting;          /* requests waiting for a permit */
    pconn *idle;             /* most recently used first */
} origin;

struct corio_http_client {
    corio_http_client_opts o;
    size_t refs;
    bool closed;
    origin *origins;
};

typedef struct request {
    corio_http_client *c;
    origin *org;
    corio_future *fut;
    corio_task *task;
    char *wire; /* the whole request: head and body */
    size_t wire_len;
    bool idempotent, head;
} request;

/* ---- the client --------------------------------------------------------------------------- */

int corio_http_client_new(corio_http_client **out, const corio_http_client_opts *opts) {
    if (!out)
        return CORIO_EINVAL;
    corio_http_client *c = calloc(1, sizeof *c);
    if (!c)
        return CORIO_ENOMEM;
    if (opts)
        c->o = *opts;
    corio_http_client_opts *o = &c->o;
    o->max_conns_per_origin = o->max_conns_per_origin ? o->max_conns_per_origin : 16;
    o->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 30000;
    o->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    o->first_byte_timeout_ms = o->first_byte_timeout_ms ? o->first_byte_timeout_ms : 30000;
    o->read_timeout_ms = o->read_timeout_ms ? o->read_timeout_ms : 30000;
    o->max_header_bytes = o->max_header_bytes ? o->max_header_bytes : 16384;
    o->max_headers = o->max_headers ? o->max_headers : 100;
    o->max_body = o->max_body ? o->max_body : (size_t)1 << 20;
    c->refs = 1;
    *out = c;
    return 0;
}

/* Drops a reference; the last frees the client (its pools are empty by
 * then: corio_http_client_free closed the idle connections and no request
 * pools one after it). */
static void client_unref(corio_http_client *c) {
    if (--c->refs)
        return;
    for (origin *o = c->origins, *next; o; o = next) {
        next = o->next;
        free(o->host);
        free(o);
    }
    free(c);
}

/* Await: closes a connection and gives its permit back. */
static void conn_close(origin *o, corio_stream *s) {
    CORIO_WITH(corio_shield_scope()) {
        corio_stream_close(s);
    }
    corio_semaphore_release(&o->permits);
}

void corio_http_client_free(corio_http_client *c) {
    if (!c)
        return;
    c->closed = true;
    for (origin *o = c->origins; o; o = o->next) {
        while (o->idle) {
            pconn *pc = o->idle;
            o->idle = pc->next;
            conn_close(o, pc->s);
            free(pc);
        }
    }
    client_unref(c);
}

/* ---- the pool ----------------------------------------------------------------------------- */

static origin *origin_get(corio_http_client *c, const char *host, uint16_t port) {
    for (origin *o = c->origins; o; o = o->next)
        if (o->port == port && strcasecmp(o->host, host) == 0)
            return o;
    origin *o = calloc(1, sizeof *o);
    if (!o || !(o->host = strdup(host))) {
        free(o);
        return NULL;
    }
    o->port = port;
    corio_semaphore_init(&o->permits, c->o.max_conns_per_origin);
    o->next = c->origins;
    c->origins = o;
    return o;
}

/* Await: a connection for q: an idle one that is still good (unless
 * `fresh`), else a new one once a permit is free.  *reused tells which. */
static int checkout(request *q, bool fresh, corio_stream **out, bool *reused) {
    origin *o = q->org;
    while (!fresh && o->idle) {
        pconn *pc = o->idle;
        o->idle = pc->next;
        corio_stream *s = pc->s;
        bool stale = corio_now() - pc->idle_since >= q->c->o.idle_timeout_ms ||
                     corio__stream_input_pending(s); /* closed by the peer, or junk */
        free(pc);
        if (!stale) {
            *out = s;
            *reused = true;
            return 0;
        }
        conn_close(o, s);
    }
    o->waiting++;
    int rc = corio_semaphore_acquire(&o->permits);
    o->waiting--;
    if (rc)
        return rc;
    rc = corio_connect(out, o->host, o->port, q->c->o.connect_timeout_ms);
    if (rc) {
        corio_semaphore_release(&o->permits);
        return rc;
    }
    *reused = false;
    return 0;
}

/* Gives a connection back after a complete response, or closes it. */
static void checkin(request *q, corio_stream *s, bool reusable) {
    origin *o = q->org;
    pconn *pc = NULL;
    /* Buffered bytes past the response: junk.  Bytes still in the kernel
     * are the checkout's to find (its peek), not a second recv here. */
    if (reusable && !q->c->closed && o->waiting == 0 && !corio__stream_has_input(s))
        pc = malloc(sizeof *pc);
    if (!pc) {
        conn_close(o, s);
        return;
    }
    pc->s = s;
    pc->idle_since = corio_now();
    pc->next = o->idle;
    o->idle = pc;
}

/* ---- one exchange ------------------------------------------------------------------------- */

/* Await: reads and parses the response.  *got_any: a response byte came. */
static int read_response(request *q, corio_stream *s, corio__client_parse *p, bool *got_any) {
    char buf[4096];
    for (;;) {
        int n = corio_stream_read(s, buf, sizeof buf);
        if (n == CORIO_EOF) {
            int rc = corio__client_parse_eof(p);
            if (rc == 0 && !p->done)
                rc = *got_any ? CORIO_EBADMSG : CORIO_EOF;
            if (rc == 0)
                p->keep_alive = false;
            return rc;
        }
        if (n < 0)
            return n;
        if (!*got_any) {
            *got_any = true; /* from now on, the idle read timeout */
            corio_stream_opts so = {.read_timeout_ms = q->c->o.read_timeout_ms,
                                    .write_timeout_ms = q->c->o.read_timeout_ms};
            corio_stream_configure(s, &so);
        }
        size_t used;
        int rc = corio__client_parse_feed(p, buf, (size_t)n, &used);
        if (rc)
            return rc;
        if (p->done) {
            if (used != (size_t)n)
                p->keep_alive = false; /* bytes after the response: do not trust it */
            return 0;
        }
    }
}

/* Await: one attempt on one connection.  *retry: it failed in a way a
 * fresh connection may not (a reused one closed by the server). */
static int attempt(request *q, bool fresh, corio_http_response **resp, bool *retry) {
    corio_stream *s;
    bool reused = false, got_any = false;
    int rc = checkout(q, fresh, &s, &reused);
    if (rc)
        return rc;
    corio_stream_opts so = {.read_timeout_ms = q->c->o.first_byte_timeout_ms,
                            .write_timeout_ms = q->c->o.read_timeout_ms};
    corio_stream_configure(s, &so);
    corio__client_parse p;
    rc = corio__client_parse_init(&p, &q->c->o, q->head);
    if (rc == 0)
        rc = corio_stream_write(s, q->wire, q->wire_len);
    if (rc == 0)
        rc = read_response(q, s, &p, &got_any);
    if (rc == 0 && !(*resp = corio__client_parse_take(&p)))
        rc = CORIO_ENOMEM;
    bool reusable = rc == 0 && p.keep_alive;
    corio__client_parse_release(&p);
    checkin(q, s, reusable); /* every way out: pooled only if reusable */
    *retry = rc < 0 && reused && !got_any && q->idempotent &&
             (rc == CORIO_EOF || rc == CORIO_ECONNRESET || rc == CORIO_EPIPE);
    return rc;
}

static void request_free(request *q) {
    corio_future_release(q->fut);
    corio_task_release(q->task);
    client_unref(q->c);
    free(q->wire);
    free(q);
}

static int request_task(void *arg) {
    request *q = arg;
    corio_http_response *resp = NULL;
    bool retry = false;
    int rc = attempt(q, false, &resp, &retry);
    if (retry)
        rc = attempt(q, true, &resp, &retry);
    if (rc == 0 && corio_future_resolve(q->fut, resp) == 0)
        resp = NULL; /* the future's taker owns it now */
    else if (rc < 0)
        corio_future_fail(q->fut, rc); /* CORIO_EALREADY if cancelled: fine */
    corio_http_response_free(resp);
    request_free(q);
    return rc < 0 ? rc : 0;
}

static void on_cancel(corio_future *f, void *data) {
    (void)f;
    corio_cancel(((request *)data)->task);
}

/* ---- building a request ------------------------------------------------------------------- */

typedef struct url {
    char host[256];
    uint16_t port;
    const char *target; /* into the caller's URL; "" means "/" */
    size_t target_len;
} url;

static int parse_url(const char *s, url *u) {
    static const char http[] = "http://";
    if (strncasecmp(s, http, sizeof http - 1) != 0) {
        const char *colon = strchr(s, ':');
        return colon && colon > s ? CORIO_ENOTSUP : CORIO_EINVAL; /* https:, unix:... */
    }
    s += sizeof http - 1;
    const char *end = s + strcspn(s, "/?#");
    const char *h = s, *he;
    const char *port = NULL;
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
    if (hl == 0 || hl >= sizeof u->host || memchr(h, '@', (size_t)(end - h)))
        return CORIO_EINVAL;
    for (size_t i = 0; i < hl; i++) /* goes into Host: no CR/LF, space, control */
        if ((unsigned char)h[i] <= ' ' || h[i] == 0x7f)
            return CORIO_EINVAL;
    memcpy(u->host, h, hl);
    u->host[hl] = '\0';
    u->port = 80;
    if (port) {
        unsigned long v = 0;
        const char *d = port + 1;
        if (d == end)
            return CORIO_EINVAL;
        for (; d < end; d++) {
            if (!isdigit((unsigned char)*d) || (v = v * 10 + (unsigned long)(*d - '0')) > 65535)
                return CORIO_EINVAL;
        }
        if (v == 0)
            return CORIO_EINVAL;
        u->port = (uint16_t)v;
    }
    u->target = end;
    u->target_len = strcspn(end, "#");
    for (size_t i = 0; i < u->target_len; i++)
        if ((unsigned char)end[i] <= ' ' || end[i] == 0x7f)
            return CORIO_EINVAL;
    return 0;
}

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

static bool has_header(const corio_http_header *h, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return true;
    return false;
}

static int append(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n > *cap) {
        size_t want = *cap ? *cap * 2 : 512;
        while (want < *len + n)
            want *= 2;
        char *nb = realloc(*b, want);
        if (!nb)
            return CORIO_ENOMEM;
        *b = nb;
        *cap = want;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    return 0;
}

#define APPEND_STR(s) append(&q->wire, &q->wire_len, &cap, (s), strlen(s))

static int build_wire(request *q, const char *method, const url *u, const corio_http_header *h,
                      size_t nh, const void *body, size_t len) {
    size_t cap = 0;
    char num[64];
    int rc = APPEND_STR(method);
    rc = rc ? rc : APPEND_STR(" ");
    rc = rc ? rc : (u->target_len && *u->target == '/' ? 0 : APPEND_STR("/"));
    rc = rc ? rc : append(&q->wire, &q->wire_len, &cap, u->target, u->target_len);
    rc = rc ? rc : APPEND_STR(" HTTP/1.1\r\n");
    if (rc == 0 && !has_header(h, nh, "Host")) {
        bool v6 = strchr(u->host, ':') != NULL;
        num[0] = ':';
        num[1 + corio__fmt_u64(num + 1, u->port)] = '\0';
        rc = APPEND_STR("Host: ");
        rc = rc ? rc : APPEND_STR(v6 ? "[" : "");
        rc = rc ? rc : APPEND_STR(u->host);
        rc = rc ? rc : APPEND_STR(v6 ? "]" : "");
        rc = rc ? rc : APPEND_STR(u->port == 80 ? "" : num);
        rc = rc ? rc : APPEND_STR("\r\n");
    }
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        rc = APPEND_STR(h[i].name);
        rc = rc ? rc : APPEND_STR(": ");
        rc = rc ? rc : APPEND_STR(h[i].value);
        rc = rc ? rc : APPEND_STR("\r\n");
    }
    bool wants_length =
        len || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
    if (rc == 0 && wants_length && !has_header(h, nh, "Content-Length")) {
        num[corio__fmt_u64(num, len)] = '\0';
        rc = APPEND_STR("Content-Length: ");
        rc = rc ? rc : APPEND_STR(num);
        rc = rc ? rc : APPEND_STR("\r\n");
    }
    rc = rc ? rc : APPEND_STR("\r\n");
    rc = rc || !len ? rc : append(&q->wire, &q->wire_len, &cap, body, len);
    return rc;
}

static bool idempotent(const char *m) {
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

int corio_http_request(corio_http_client *c, corio_future **out, const char *method,
                       const char *url_s, const corio_http_header *headers, size_t nheaders,
                       const void *body, size_t len) {
    if (!c || !out || !method || !url_s || (nheaders && !headers) || (len && !body) ||
        !clean(method, true))
        return CORIO_EINVAL;
    for (size_t i = 0; i < nheaders; i++)
        if (!headers[i].name || !headers[i].value || !clean(headers[i].name, true) ||
            !clean(headers[i].value, false))
            return CORIO_EINVAL;
    if (c->closed)
        return CORIO_ECLOSED;
    url u;
    int rc = parse_url(url_s, &u);
    if (rc)
        return rc;
    request *q = calloc(1, sizeof *q);
    if (!q)
        return CORIO_ENOMEM;
    q->idempotent = idempotent(method);
    q->head = strcmp(method, "HEAD") == 0;
    rc = build_wire(q, method, &u, headers, nheaders, body, len);
    if (rc == 0 && !(q->org = origin_get(c, u.host, u.port)))
        rc = CORIO_ENOMEM;
    if (rc == 0)
        rc = corio_future_new(&q->fut);
    if (rc) {
        corio_future_release(q->fut);
        free(q->wire);
        free(q);
        return rc;
    }
    q->c = c;
    c->refs++;
    corio_spawn_opts so = {.name = "http-client", .run_if_cancelled = true};
    rc = corio_spawn_ex(&q->task, &so, request_task, q);
    if (rc) {
        request_free(q);
        return rc;
    }
    corio_future_on_cancel(q->fut, on_cancel, q);
    *out = corio_future_retain(q->fut);
    return 0;
}
