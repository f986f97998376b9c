/* SPDX-License-Identifier: MIT */
/* One request and its response on a checked-out connection: the scoped
 * exchange of http_client.h.
 *
 * The enter hook checks a connection out and sends the request head (and a
 * body that is bytes or a file).  The response is parsed in place from the
 * stream's read buffer: the parser pauses at the head, at each piece of
 * body and at the end, and a piece handed to the caller stays in the buffer
 * (not consumed) until the caller's next call; so the socket is read only
 * as fast as the caller reads.  The exit hook pools the connection only in
 * one state: response complete, both sides keep alive, request fully sent,
 * no error; every other way out closes it.
 *
 * A failure before any response byte on a reused connection (the server
 * closed it while it sat in the pool) sends the request again, once, on a
 * new connection, if the method is idempotent and the body can be sent
 * again.  A redirect, when asked for, reads the 3xx's body away (up to a
 * small bound, else closes) and sends the request to the new location.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "base/fmt.h"
#include "client_internal.h"
#include "corio/scope.h"
#include "net/fileread.h"
#include "net/proto.h"

enum { WRITEV_MAX = 1 << 29 }; /* well under corio_stream_writev's 1 GiB per call */

struct corio_http_exchange {
    corio_http_client *c;
    corio__origin *org;
    corio__req q;
    int error;        /* of corio_http_open's checks: the enter reports it */
    corio__pconn *pc; /* the checked-out connection */
    corio_stream *s;  /* its stream (pc->s), or NULL when none is held */
    bool reused, got_any;
    /* request body */
    int64_t sent;    /* body bytes sent */
    bool req_done;   /* the request went out whole */
    bool req_broken; /* a streamed body ended short: never reuse */
    /* response */
    corio__client_parse p;
    bool parsing; /* p initialised */
    bool head;    /* the final head is in */
    bool body_done;
    int failed;        /* sticky: the first error of the response */
    size_t unconsumed; /* bytes parsed but still in the buffer (a body piece) */
    unsigned redirects;
    corio_http_exchange **out;
};

/* ---- the connection --------------------------------------------------------------------- */

static void set_timeouts(corio_http_exchange *x, bool first_byte) {
    const corio_http_client_opts *o = &x->c->o;
    corio_stream_opts so = {.read_timeout_ms =
                                first_byte ? o->first_byte_timeout_ms : o->read_timeout_ms,
                            .write_timeout_ms = o->read_timeout_ms};
    corio_stream_configure(x->s, &so);
}

/* Lets go of the body piece last handed out: its bytes leave the buffer,
 * which may move again. */
static void let_go(corio_http_exchange *x) {
    if (x->unconsumed) {
        corio_stream_consume(x->s, x->unconsumed);
        x->unconsumed = 0;
        corio__stream_pin(x->s, false);
    }
}

/* Await: gives the connection back (pooled only if everything about it is
 * clean) or closes it. */
static void release_conn(corio_http_exchange *x) {
    if (!x->s)
        return;
    if (x->unconsumed) /* a piece never let go: the check below closes it */
        corio__stream_pin(x->s, false);
    bool reusable = x->req_done && !x->req_broken && x->body_done && !x->failed &&
                    x->p.keep_alive && x->unconsumed == 0;
    corio__checkin(x->c, x->org, x->pc, reusable);
    x->pc = NULL;
    x->s = NULL;
}

/* Await: sends the body of a file from the start, 64 KiB at a time, each
 * read on the loop while the file's pages are cached and on the thread pool
 * when they are not (net/fileread.h): a cold file does not stall the loop.
 * Cut short, a pool read finishes on its own with a descriptor of its own,
 * so the request may close body_fd at once.  A write the socket takes at
 * once does not wait, so a cached file sent to a fast reader would keep the
 * loop to itself: other tasks get a turn every 4 MiB. */
static int send_file(corio_http_exchange *x) {
    char *buf = malloc(65536);
    if (!buf)
        return CORIO_ENOMEM;
    corio__fread in;
    corio__fread_init(&in, x->q.body_fd);
    int rc = 0;
    uint64_t off = 0, len = (uint64_t)x->q.body_length, mark = 0;
    while (rc == 0 && off < len) {
        if (off - mark >= 4 * 1024 * 1024) {
            mark = off;
            rc = corio_yield();
            continue;
        }
        size_t want = len - off < 65536 ? (size_t)(len - off) : 65536;
        rc = corio__fread_all(&in, buf, want, off);
        if (rc == CORIO_EOF) /* the file shrank: the request cannot be completed */
            rc = CORIO_EINVAL;
        else if (rc == 0 && (rc = corio_stream_write(x->s, buf, want)) == 0)
            off += want;
    }
    free(buf);
    return rc;
}

/* Await: a connection (fresh: a new one), and the request head on it with
 * a body that is bytes or a file. */
static int send_request(corio_http_exchange *x, bool fresh) {
    /* A new exchange from here: nothing of the last one's head stands. */
    x->got_any = x->req_done = x->req_broken = x->head = x->body_done = false;
    x->failed = 0;
    x->sent = 0;
    x->unconsumed = 0;
    int rc = corio__checkout(x->c, x->org, fresh, &x->pc, &x->reused);
    if (rc < 0)
        return x->failed = rc;
    x->s = x->pc->s;
    if (x->parsing)
        corio__client_parse_release(&x->p);
    x->parsing = false;
    if ((rc = corio__client_parse_init(&x->p, &x->c->o, x->q.head)) < 0)
        return rc;
    x->parsing = true;
    set_timeouts(x, true);
    size_t hlen;
    char *head = corio__req_head(&x->q, &hlen);
    if (!head)
        return CORIO_ENOMEM;
    if (x->q.body_kind == CORIO__BODY_BYTES && x->q.body_length <= WRITEV_MAX) {
        struct iovec iov[2] = {{head, hlen}, {(void *)x->q.body, (size_t)x->q.body_length}};
        rc = corio_stream_writev(x->s, iov, x->q.body_length ? 2 : 1);
    } else if (x->q.body_kind == CORIO__BODY_BYTES) { /* past writev's limit: two writes */
        rc = corio_stream_write(x->s, head, hlen);
        if (rc == 0)
            rc = corio_stream_write(x->s, x->q.body, (size_t)x->q.body_length);
    } else {
        rc = corio_stream_write(x->s, head, hlen);
        if (rc == 0 && x->q.body_kind == CORIO__BODY_FILE)
            rc = send_file(x);
    }
    free(head);
    if (rc == 0 && x->q.body_kind != CORIO__BODY_STREAM)
        x->req_done = true;
    return rc;
}

/* ---- the response ------------------------------------------------------------------------- */

/* Await: parses on to the next event (CORIO__PARSE_HEAD, _BODY with the
 * piece in x->p.span, _DONE).  Errors are sticky. */
static int step(corio_http_exchange *x, int *ev) {
    *ev = CORIO__PARSE_MORE;
    if (x->failed)
        return x->failed;
    corio_stream *s = x->s;
    for (;;) {
        let_go(x);
        size_t n, used;
        const char *d = corio_stream_buffered(s, &n);
        int rc = corio__client_parse_feed(&x->p, d, n, &used, ev);
        if (rc == 0 && *ev == CORIO__PARSE_MORE) {
            corio_stream_consume(s, used);
            rc = corio_stream_fill(s);
            if (rc == CORIO_EOF) {
                rc = corio__client_parse_eof(&x->p);
                if (rc == 0 && !x->p.done)
                    rc = x->got_any ? CORIO_EBADMSG : CORIO_EOF;
                if (rc == 0) { /* a body that ends with the connection */
                    x->p.keep_alive = false;
                    *ev = x->head ? CORIO__PARSE_DONE : CORIO__PARSE_HEAD;
                    return 0;
                }
            } else if (rc > 0) {
                if (!x->got_any) {
                    x->got_any = true;
                    if (x->c->o.read_timeout_ms != x->c->o.first_byte_timeout_ms)
                        set_timeouts(x, false); /* from now on, the idle read timeout */
                }
                continue;
            }
        }
        if (rc < 0) {
            x->failed = rc;
            return rc;
        }
        if (*ev == CORIO__PARSE_BODY) {
            /* The piece stays readable until the next call: pinned, so that
             * reading ahead while the caller awaits cannot move it. */
            x->unconsumed = used;
            corio__stream_pin(s, true);
        } else {
            corio_stream_consume(s, used);
        }
        return 0;
    }
}

static bool retryable(const corio_http_exchange *x, int rc) {
    return x->reused && !x->got_any && x->q.idempotent && x->q.body_kind != CORIO__BODY_STREAM &&
           (rc == CORIO_EOF || rc == CORIO_ECONNRESET || rc == CORIO_EPIPE);
}

/* Await: a redirect to follow?  Reads the 3xx away and sends the request to
 * its Location.  Returns 1 when a new request is on its way, 0 when the
 * response stands, < 0 on error. */
static int follow(corio_http_exchange *x) {
    const corio_http_response *r = x->p.resp;
    int st = r->status;
    if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308)
        return 0;
    const char *loc = corio_http_response_header(r, "Location");
    if (!loc || x->q.max_redirects == 0)
        return 0;
    if (x->redirects >= x->q.max_redirects)
        return CORIO_ERANGE;
    bool to_get = st == 303 || ((st == 301 || st == 302) && strcmp(x->q.method, "POST") == 0);
    if (!to_get && x->q.body_kind == CORIO__BODY_STREAM)
        return 0; /* the body cannot be sent again: the caller sees the 3xx */
    corio__url u;
    int rc = corio__url_parse(loc, &x->q.url, &u);
    if (rc < 0)
        return rc == CORIO_ENOMEM ? rc : CORIO_EBADMSG;
    if (u.scheme == CORIO__UNIX && x->q.url.scheme != CORIO__UNIX) {
        corio__url_release(&u); /* a remote server may not send us to a local socket */
        return 0;
    }
    if (x->c->closed) {
        corio__url_release(&u);
        return CORIO_ECLOSED;
    }
    corio__origin *org = corio__origin_get(x->c, &u);
    if (!org) {
        corio__url_release(&u);
        return CORIO_ENOMEM;
    }
    /* The 3xx's body: read away if small, so the connection can be reused. */
    size_t drained = 0;
    int ev = CORIO__PARSE_HEAD;
    while (!x->p.done && drained < 65536 && step(x, &ev) == 0 && ev == CORIO__PARSE_BODY)
        drained += x->p.span_len;
    x->body_done = x->p.done && !x->failed;
    release_conn(x);
    x->redirects++;
    if (org != x->org) { /* credentials are for the origin they were given to, and a
                          * caller's Host names the old one */
        size_t k = 0;
        for (size_t i = 0; i < x->q.nheaders; i++) {
            const char *n = x->q.headers[i].name;
            if (strcasecmp(n, "Authorization") != 0 && strcasecmp(n, "Cookie") != 0 &&
                strcasecmp(n, "Proxy-Authorization") != 0 && strcasecmp(n, "Host") != 0)
                x->q.headers[k++] = x->q.headers[i];
        }
        x->q.nheaders = k;
    }
    if (to_get) {
        size_t k = 0;
        for (size_t i = 0; i < x->q.nheaders; i++)
            if (strcasecmp(x->q.headers[i].name, "Content-Type") != 0)
                x->q.headers[k++] = x->q.headers[i];
        x->q.nheaders = k;
        if (strcmp(x->q.method, "HEAD") != 0)
            x->q.method = "GET";
        x->q.body_kind = CORIO__BODY_NONE;
        x->q.body_length = 0;
        x->q.idempotent = true;
    }
    corio__url_release(&x->q.url);
    x->q.url = u;
    x->org = org;
    rc = send_request(x, false);
    return rc < 0 ? rc : 1;
}

int corio_http_response_head(corio_http_exchange *x, const corio_http_response **out) {
    if (!x || !out)
        return CORIO_EINVAL;
    if (x->head) {
        *out = x->p.resp;
        return 0;
    }
    if (!x->s)
        return x->failed ? x->failed : CORIO_ECLOSED;
    if (!x->req_done)
        return CORIO_EINVAL; /* a streamed body not ended */
    for (bool retried = false;;) {
        int ev, rc = step(x, &ev);
        if (rc < 0 && !retried && retryable(x, rc)) {
            retried = true;
            x->failed = 0;
            release_conn(x);
            if ((rc = send_request(x, true)) < 0)
                return x->failed = rc;
            continue;
        }
        if (rc < 0)
            return rc;
        x->head = true;
        x->body_done = x->p.done; /* HEAD, 204, 304: no body */
        if ((rc = follow(x)) < 0)
            return x->failed = rc;
        if (rc == 1) {
            retried = false;
            continue;
        }
        *out = x->p.resp;
        return 0;
    }
}

int corio_http_read(corio_http_exchange *x, const char **data) {
    if (!x || !data)
        return CORIO_EINVAL;
    const corio_http_response *r;
    int rc = x->head ? 0 : corio_http_response_head(x, &r);
    if (rc < 0)
        return rc;
    if (x->body_done) {
        let_go(x); /* the last piece is read */
        return 0;
    }
    for (;;) {
        int ev;
        if ((rc = step(x, &ev)) < 0)
            return rc;
        if (ev == CORIO__PARSE_DONE) {
            x->body_done = true;
            return 0;
        }
        if (ev == CORIO__PARSE_BODY && x->p.span_len) {
            *data = x->p.span;
            return (int)x->p.span_len; /* pieces are at most the read buffer */
        }
    }
}

/* ---- the streamed request body ------------------------------------------------------------ */

int corio_http_write(corio_http_exchange *x, const void *buf, size_t len) {
    if (!x || (len && !buf) || x->q.body_kind != CORIO__BODY_STREAM)
        return CORIO_EINVAL;
    if (x->req_done)
        return CORIO_EALREADY;
    if (!x->s)
        return x->failed ? x->failed : CORIO_ECLOSED;
    if (len == 0)
        return 0;
    int rc;
    if (x->q.body_length == CORIO_HTTP_CHUNKED) {
        char size[24];
        size_t n = corio__fmt_hex(size, len);
        size[n++] = '\r';
        size[n++] = '\n';
        struct iovec iov[3] = {{size, n}, {(void *)buf, len}, {"\r\n", 2}};
        rc = corio_stream_writev(x->s, iov, 3);
    } else {
        if ((uint64_t)x->sent + len > (uint64_t)x->q.body_length)
            return CORIO_EINVAL;
        rc = corio_stream_write(x->s, buf, len);
    }
    if (rc < 0) {
        x->req_broken = true;
        return rc;
    }
    x->sent += (int64_t)len;
    return 0;
}

int corio_http_write_end(corio_http_exchange *x) {
    if (!x || x->q.body_kind != CORIO__BODY_STREAM)
        return CORIO_EINVAL;
    if (x->req_done)
        return CORIO_EALREADY;
    if (!x->s)
        return x->failed ? x->failed : CORIO_ECLOSED;
    if (x->q.body_length == CORIO_HTTP_CHUNKED) {
        int rc = corio_stream_write(x->s, "0\r\n\r\n", 5);
        if (rc < 0) {
            x->req_broken = true;
            return rc;
        }
    } else if (x->sent != x->q.body_length) {
        x->req_broken = true; /* the server waits for bytes that will not come */
        return CORIO_EINVAL;
    }
    x->req_done = true;
    return 0;
}

/* ---- the scope ---------------------------------------------------------------------------- */

static void exchange_free(corio_http_exchange *x) {
    if (x->parsing)
        corio__client_parse_release(&x->p);
    corio__req_release(&x->q);
    if (x->c)
        corio__client_unref(x->c);
    free(x);
}

static int exchange_enter(void *self, uint64_t arg) {
    corio_http_exchange *x = self;
    if (!x)
        return (int)(int64_t)arg; /* corio_http_open could not allocate it */
    int rc = x->error;
    if (rc == 0) {
        rc = send_request(x, false);
        if (rc < 0 && retryable(x, rc)) {
            release_conn(x);
            rc = send_request(x, true);
        }
    }
    if (rc < 0) {
        release_conn(x);
        exchange_free(x);
        return rc;
    }
    *x->out = x;
    return 0;
}

static void exchange_exit(void *self, int how) {
    (void)how; /* the connection's state decides, whatever ended the scope */
    corio_http_exchange *x = self;
    release_conn(x);
    exchange_free(x);
}

static const corio_resource_type exchange_type = {
    .name = "http exchange",
    .enter = exchange_enter,
    .exit = exchange_exit,
};

/* The exchange, with its request taken from q (or from rq when q is NULL). */
static corio_resource open_exchange(corio_http_client *c, const corio_http_req *rq, corio__req *q,
                                    corio_http_exchange **out) {
    corio_resource res = {.type = &exchange_type};
    corio_http_exchange *x = calloc(1, sizeof *x);
    if (!x) {
        if (q)
            corio__req_release(q);
        res.arg = (uint64_t)(int64_t)CORIO_ENOMEM;
        return res;
    }
    x->q.body_fd = -1;
    res.self = x;
    x->out = out;
    if (q) {
        x->q = *q;
        memset(q, 0, sizeof *q);
        q->body_fd = -1;
    }
    if (!c || (!rq && !q) || !out)
        x->error = CORIO_EINVAL;
    else if (c->closed)
        x->error = CORIO_ECLOSED;
    else if (!q)
        x->error = corio__req_init(&x->q, rq, false);
    if (!x->error && !(x->org = corio__origin_get(c, &x->q.url)))
        x->error = CORIO_ENOMEM;
    if (c) {
        x->c = c;
        corio__client_ref(c);
    }
    return res;
}

corio_resource corio_http_open(corio_http_client *c, const corio_http_req *rq,
                               corio_http_exchange **out) {
    return open_exchange(c, rq, NULL, out);
}

corio_resource corio__http_open_req(corio_http_client *c, corio__req *q,
                                    corio_http_exchange **out) {
    return open_exchange(c, NULL, q, out);
}

int corio_http_exchange_detach(corio_http_exchange *x, corio_stream **out) {
    if (out)
        *out = NULL;
    if (!x || !out || !x->s || !x->head || !x->q.upgrade || !x->p.resp ||
        corio_http_response_status(x->p.resp) != 101)
        return CORIO_EINVAL;
    let_go(x);
    *out = x->s;
    corio__detach(x->c, x->org, x->pc);
    x->pc = NULL;
    x->s = NULL; /* release_conn: nothing to give back */
    return 0;
}

corio_http_response *corio__exchange_take(corio_http_exchange *x) {
    return corio__client_parse_take(&x->p);
}

corio_http_response *corio__exchange_response(corio_http_exchange *x) {
    return x->p.resp;
}
