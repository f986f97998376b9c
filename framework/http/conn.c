/* The HTTP/1.1 connection task: parse, route, call the handler, respond,
 * repeat (see corio/http.h and http_internal.h).
 *
 * llhttp runs in strict mode and pauses twice per request: when the head is
 * complete (so the handler can run before the body is read) and when the
 * message is complete (so the next request starts from a clean state).
 * Everything llhttp leaves to its caller is checked here: sizes of the
 * request line and the head, the HTTP version, Host, Transfer-Encoding,
 * Upgrade and CONNECT.
 *
 * Closing.  A response carries "Connection: close" whenever the connection
 * ends after it: the client asked, HTTP/1.0 without keep-alive, a server
 * drain, a request body the server will not read.  If the client may still
 * be sending at that point, the close lingers (see linger()).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corio/log.h"
#include "http/http_internal.h"
#include "net/stream_internal.h"

#define HEAD_ONLY_CLOSE 1 /* read_head: the client closed between requests */
#define HEAD_PARK 2       /* read_head: idle between requests, park without a task */
#define LINGER_MS 2000    /* a lingering close lasts at most this */
/* Draining, a connection that has had no request yet waits this long (at
 * most) for its first one; see read_head. */
#define DRAIN_FIRST_REQUEST_MS 1000
/* The bytes between two chunks' data: CRLF, size, extensions (at most
 * CHUNK_EXT_MAX of them), CRLF. */
#define CHUNK_EXT_MAX 1024
#define CHUNK_LINE_MAX (CHUNK_EXT_MAX + 64)

static const corio_http_opts default_opts = {
    .max_request_line = 8 * 1024,
    .max_header_bytes = 16 * 1024,
    .max_headers = 100,
    .max_body = 1024 * 1024,
    .max_requests = 0,
    .header_timeout_ms = 10000,
    .body_timeout_ms = 15000,
    .body_min_rate = 500,
    .keepalive_timeout_ms = 5000,
    .park_after_ms = 100,
    .send_timeout_ms = 30000,
};

/* ---- output queue ----------------------------------------------------------------------- */

int corio__hconn_queue(corio__hconn *c, const void *p, size_t len) {
    if (c->nout == c->cap_out) {
        size_t cap = c->cap_out ? c->cap_out * 2 : 16;
        struct iovec *out = corio__arena_alloc(&c->arena, cap * sizeof *out);
        if (!out)
            return CORIO_ENOMEM;
        if (c->nout)
            memcpy(out, c->out, c->nout * sizeof *out);
        c->out = out;
        c->cap_out = cap;
    }
    c->out[c->nout++] = (struct iovec){.iov_base = (void *)p, .iov_len = len};
    c->out_bytes += len;
    return 0;
}

void corio__hconn_send_failed(corio__hconn *c, int rc) {
    if (c->send_failed)
        return;
    c->send_failed = rc;
    c->close = true;
    if (rc == CORIO_ECLOSED)
        return; /* the stream may be gone */
    c->peer_failed = rc == CORIO_EPIPE || rc == CORIO_ECONNRESET ||
                     (rc == CORIO_ETIMEDOUT && corio__stream_write_stalled(c->s));
    /* A peer that stopped reading would have the kernel trickle out what it
     * holds after a FIN: reset instead.  A handler's own deadline or cancel
     * is no reason to drop earlier answers still in the kernel: FIN. */
    if (c->peer_failed)
        corio_stream_set_reset_on_close(c->s);
}

int corio__hconn_flush(corio__hconn *c) {
    if (c->send_failed) {
        c->nout = 0; /* nothing more goes out after a cut */
        c->out_bytes = 0;
        return c->send_failed;
    }
    if (c->nout == 0)
        return 0;
    int rc = corio_stream_writev(c->s, c->out, c->nout);
    if (rc < 0)
        corio__hconn_send_failed(c, rc);
    /* The iovec array stays for the next batch: a long stream of chunks
     * must not take a new one from the arena per flush. */
    c->nout = 0;
    c->out_bytes = 0;
    return rc;
}

/* Frees the arena, which nothing queued may point into any more. */
static void arena_reset(corio__hconn *c) {
    corio__arena_reset(&c->arena);
    c->out = NULL;
    c->cap_out = 0;
}

/* ---- llhttp callbacks --------------------------------------------------------------------- */

static corio__hconn *conn_of(llhttp_t *p) {
    return p->data;
}

/* Offsets are relative to the start of the head, which is where the stream's
 * buffered bytes begin while the head is parsed. */
static int extend(corio__hconn *c, corio__span *s, const char *at, size_t len) {
    const char *base = corio__req_head(&c->req);
    if (s->len == 0) {
        s->off = (uint32_t)(at - base);
    } else if (at != base + s->off + s->len) {
        c->reject = 400; /* not contiguous: a folded (obs-fold) line */
        return -1;
    }
    s->len += (uint32_t)len;
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    return extend(c, &c->req.method, at, len);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    return extend(c, &c->req.target, at, len);
}

static int on_version(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    return extend(c, &c->req.version, at, len);
}

/* Trailer fields (after a chunked body) arrive through the header callbacks
 * too, long after the head: they are not part of the request's headers (and
 * their bytes are nowhere near the head), so they are only counted against
 * the header limit and dropped. */
static int trailer_bytes(corio__hconn *c, size_t len) {
    c->trailer_bytes += len;
    if (c->trailer_bytes > c->opts.max_header_bytes) {
        c->reject = 431;
        return -1;
    }
    return 0;
}

/* More header fields than hdrs_inline holds go to hdrs_heap, kept across
 * requests and bounded by max_headers.  Not the arena: a head read in parts
 * must survive the arena's reset after each flush (see read_head). */
static int grow_hdrs(corio__hconn *c) {
    corio_req *r = &c->req;
    size_t cap = r->cap_hdrs * 2;
    if (cap > c->opts.max_headers)
        cap = c->opts.max_headers;
    bool on_heap = r->hdrs == c->hdrs_heap; /* before realloc moves it */
    if (cap > c->hdrs_heap_cap) {
        corio__hdr *h = realloc(c->hdrs_heap, cap * sizeof *h);
        if (!h)
            return CORIO_ENOMEM;
        c->hdrs_heap = h;
        c->hdrs_heap_cap = cap;
    }
    if (!on_heap)
        memcpy(c->hdrs_heap, r->hdrs, r->nhdrs * sizeof *r->hdrs);
    r->hdrs = c->hdrs_heap;
    r->cap_hdrs = cap;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    corio_req *r = &c->req;
    if (c->head_done)
        return trailer_bytes(c, len);
    if (c->line_end == 0)
        c->line_end = (size_t)(at - corio__req_head(r));
    if (c->in_value || r->nhdrs == 0) {
        if (r->nhdrs >= c->opts.max_headers) {
            c->reject = 431;
            return -1;
        }
        if (r->nhdrs == 0) {
            r->hdrs = c->hdrs_inline;
            r->cap_hdrs = CORIO__HDRS_INLINE;
        } else if (r->nhdrs == r->cap_hdrs && grow_hdrs(c) != 0) {
            c->reject = 503;
            return -1;
        }
        r->hdrs[r->nhdrs++] = (corio__hdr){{0, 0}, {0, 0}};
        c->in_value = false;
    }
    return extend(c, &r->hdrs[r->nhdrs - 1].name, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    if (c->head_done)
        return trailer_bytes(c, len);
    c->in_value = true;
    return extend(c, &c->req.hdrs[c->req.nhdrs - 1].value, at, len);
}

/* With a body, pause here so the handler runs before the body is read;
 * without one, go on to on_message_complete, which pauses (and leaves the
 * parser ready for the next request). */
static int on_headers_complete(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    c->head_done = true;
    c->in_chunk_line = (p->flags & F_CHUNKED) != 0; /* the first size line comes next */
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    return body ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    corio_req *r = &c->req;
    if (r->sink) { /* streaming into the handler's buffer, which fits it */
        memcpy(r->sink, at, len);
        r->sink += len;
        r->sink_len -= len;
    }
    r->body_read += len;
    c->body_end = at + len;
    if (r->body_read > c->opts.max_body) {
        c->reject = 413;
        return -1;
    }
    return 0;
}

static int on_message_complete(llhttp_t *p) {
    conn_of(p)->req.body_done = true;
    return HPE_PAUSED;
}

/* Chunk extensions are parsed and ignored: bounded per chunk, or a client
 * could stream them forever without sending a byte of body. */
static int on_chunk_extension(llhttp_t *p, const char *at, size_t len) {
    (void)at;
    corio__hconn *c = conn_of(p);
    c->chunk_ext_bytes += len;
    if (c->chunk_ext_bytes > CHUNK_EXT_MAX) {
        c->reject = 400;
        return -1;
    }
    return 0;
}

/* The size line is over: chunk data (or, for the last chunk, trailers)
 * follows. */
static int on_chunk_header(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    c->chunk_ext_bytes = 0;
    c->in_chunk_line = false;
    c->chunk_line_bytes = 0;
    return 0;
}

/* A chunk's data and its CRLF are over: the next size line begins. */
static int on_chunk_complete(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    c->in_chunk_line = true;
    c->chunk_line_bytes = 0;
    return 0;
}

/* llhttp has no callback for a chunk's size digits, and counts leading
 * zeros without end: without a bound, a client could send megabytes of
 * "000..." and hold the request open far below max_body.  After each
 * execute that ends inside a size line, the bytes since the last body byte
 * of this feed (or since the feed began) are the line's (give or take the
 * CRLF before it), and they add up across feeds until the line ends. */
llhttp_errno_t corio__hconn_feed_body(corio__hconn *c, const char *data, size_t len) {
    c->body_end = NULL;
    llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
    if (err != HPE_OK || !c->in_chunk_line)
        return err;
    const char *from = c->body_end ? c->body_end : data;
    c->chunk_line_bytes += (size_t)(data + len - from);
    if (c->chunk_line_bytes > CHUNK_LINE_MAX) {
        c->reject = 400;
        return HPE_USER;
    }
    return HPE_OK;
}

static const llhttp_settings_t settings = {
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
    .on_method = on_method,
    .on_url = on_url,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- reading a request head ------------------------------------------------------------------ */

static bool is_tchar(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int status_for(corio__hconn *c, llhttp_errno_t err) {
    if (c->reject)
        return c->reject;
    switch (err) {
    case HPE_INVALID_TRANSFER_ENCODING:
        return 501;
    case HPE_INVALID_VERSION:
        return 505;
    case HPE_INVALID_METHOD: {
        /* A well-formed token llhttp does not know is a method we do not
         * implement; anything else is not HTTP. */
        size_t len;
        const char *buf = corio_stream_buffered(c->s, &len);
        size_t i = 0;
        while (i < len && i < 32 && is_tchar((unsigned char)buf[i]))
            i++;
        return i > 0 && i < len && buf[i] == ' ' ? 501 : 400;
    }
    default:
        return 400;
    }
}

int corio__hconn_fill_within(corio__hconn *c, uint64_t ms) {
    int rc = CORIO_ETIMEDOUT;
    if (ms == 0)
        return rc;
    CORIO_WITH(corio_timeout_scope(ms)) {
        rc = corio_stream_fill(c->s);
    }
    return rc;
}

/* Parses bytes until a head is complete.  Returns 0, HEAD_ONLY_CLOSE when
 * the client left (or idled out) between requests, a status (400...) to
 * answer before closing, or a negative code for a socket error. */
/* corio__hconn_fill_within, with the stream marked idle during the wait if
 * `idle`: a server's drain then cancels the wait's scope (not the task, see
 * corio_stream_set_idle), and read_head decides what comes next. */
static int fill_marked(corio__hconn *c, uint64_t ms, bool idle) {
    int rc = CORIO_ETIMEDOUT;
    if (ms == 0)
        return rc;
    CORIO_WITH(corio_timeout_scope(ms)) {
        corio_stream_set_idle(c->s, idle); /* notes this scope */
        rc = corio_stream_fill(c->s);
        if (rc != CORIO_ECLOSED) /* else the stream may be gone */
            corio_stream_set_idle(c->s, false);
    }
    return rc;
}

static int read_head(corio__hconn *c) {
    uint64_t head_deadline = 0;
    uint64_t idle_deadline = 0, park_at = 0; /* keep-alive end, parking time */
    uint64_t drain_until = 0; /* draining: a new connection's wait for a first request */
    for (;;) {
        size_t len;
        const char *buf = corio_stream_buffered(c->s, &len);
        if (len > c->parsed) {
            if (!head_deadline)
                head_deadline = corio__now(corio__tls_loop) + c->opts.header_timeout_ms;
            llhttp_errno_t err = llhttp_execute(&c->parser, buf + c->parsed, len - c->parsed);
            if (err == HPE_PAUSED) {
                c->parsed = (size_t)(llhttp_get_error_pos(&c->parser) - buf);
                llhttp_resume(&c->parser);
                return c->reject ? c->reject : 0;
            }
            if (err != HPE_OK)
                return status_for(c, err);
            c->parsed = len;
        }
        if (c->line_end == 0 && c->parsed > c->opts.max_request_line)
            return 414;
        if (c->line_end && c->parsed - c->line_end > c->opts.max_header_bytes)
            return 431;
        if (c->line_end == 0 && c->parsed > c->opts.max_request_line + c->opts.max_header_bytes)
            return 431;
        int rc = corio__hconn_flush(c); /* answers to earlier pipelined requests */
        if (rc)
            return rc;
        /* Nothing queued points into the arena now, and a partly read head
         * holds nothing there (its fields are inline or in hdrs_heap):
         * free it.  A client that pipelines without pause is met here with
         * a head half read every time; were the arena freed only when a
         * read ends between two requests, its requests would pile up. */
        arena_reset(c);
        /* The flush may have waited for the client to read, and more of
         * its requests may have come meanwhile, filling the buffer: parse
         * them before asking for more (which would fail with ERANGE). */
        corio_stream_buffered(c->s, &len);
        if (len > c->parsed)
            continue;
        uint64_t now = corio__now(corio__tls_loop); /* cached: a deadline of seconds */
        bool idle = !head_deadline;
        if (idle && !idle_deadline) {
            idle_deadline = now + c->opts.keepalive_timeout_ms;
            park_at = now + c->opts.park_after_ms;
        }
        uint64_t until = idle ? idle_deadline : head_deadline;
        uint64_t wait = until > now ? until - now : 0;
        if (idle && wait == 0)
            return HEAD_ONLY_CLOSE; /* idled out */
        bool mark_idle = idle; /* a server's drain may end this wait */
        if (idle && corio_stream_draining(c->s)) {
            /* Shutting down: a request whose bytes have come is one the
             * server took, and is served (and the connection closed after
             * it).  Otherwise a used connection closes (its client retries
             * elsewhere, RFC 9112 9.3.1), and a new one waits a moment for
             * its first request: it may come from the accept queue the
             * drain emptied, its request on the way. */
            if (!corio__stream_input_pending(c->s)) {
                if (c->requests > 0)
                    return HEAD_ONLY_CLOSE;
                if (!drain_until)
                    drain_until = now + (c->opts.header_timeout_ms < DRAIN_FIRST_REQUEST_MS
                                             ? c->opts.header_timeout_ms
                                             : DRAIN_FIRST_REQUEST_MS);
                if (drain_until <= now)
                    return HEAD_ONLY_CLOSE;
                if (drain_until - now < wait)
                    wait = drain_until - now;
            }
            mark_idle = false;
        }
        /* Between requests, with nothing buffered and nothing to write, a
         * connection from a server that stays idle for park_after_ms gives
         * its task and stack back: the server runs corio_http_serve again
         * when bytes come, for what is left of the keep-alive time.
         * Waiting that long first spares a busy connection a task start
         * per request. */
        bool may_park =
            mark_idle && c->parsed == 0 && c->nout == 0 && c->can_park && park_at < idle_deadline;
        if (may_park && now >= park_at && !corio__stream_has_input(c->s)) { /* TLS: undecrypted */
            c->park_timeout_ms = wait;
            return HEAD_PARK;
        }
        if (may_park && park_at > now && park_at - now < wait)
            wait = park_at - now;
        /* Between requests the keep-alive timeout governs, not a read
         * timeout set on the stream (see corio_http_serve). */
        uint64_t read_timeout = c->s->rtimeout;
        if (idle)
            c->s->rtimeout = 0;
        rc = fill_marked(c, wait, mark_idle);
        if (rc == CORIO_ECLOSED)
            return rc; /* the stream may be gone */
        c->s->rtimeout = read_timeout;
        /* Our own wait ended (not a deadline or cancel of the task's): time
         * to park, or the loop finds the keep-alive time spent; or a drain
         * cancelled it, and the loop finds the server draining. */
        if ((rc == CORIO_ETIMEDOUT || rc == CORIO_ECANCELED) && idle &&
            corio__await_status(c->task) == 0)
            continue;
        if (rc >= 0)
            continue;
        if (rc == CORIO_ERANGE)
            return c->line_end ? 431 : 414;
        if (rc == CORIO_ETIMEDOUT)
            return head_deadline ? 408 : HEAD_ONLY_CLOSE;
        if (rc == CORIO_EOF)
            return head_deadline ? 400 : HEAD_ONLY_CLOSE;
        return rc;
    }
}

/* ---- checking a head ------------------------------------------------------------------------ */

static bool span_ieq(const corio_req *r, corio__span s, const char *want) {
    size_t n = strlen(want);
    return s.len == n && strncasecmp(corio__req_head(r) + s.off, want, n) == 0;
}

/* The origin-form part of a target: "/p?q" as is; for the absolute form
 * "http://host:port/p?q" the part from the path on ("/" when it has none).
 * Anything else is returned unchanged (and refused by the caller). */
corio_strv corio__origin_target(corio_strv t) {
    size_t skip = t.len >= 7 && strncasecmp(t.ptr, "http://", 7) == 0    ? 7
                  : t.len >= 8 && strncasecmp(t.ptr, "https://", 8) == 0 ? 8
                                                                         : 0;
    if (!skip)
        return t;
    const char *p = t.ptr + skip, *end = t.ptr + t.len;
    while (p < end && *p != '/' && *p != '?')
        p++;
    if (p == t.ptr + skip)
        return (corio_strv){"", 0}; /* no authority: not a target */
    if (p == end || *p == '?') {
        static const char root[] = "/";
        return p == end ? (corio_strv){root, 1} : (corio_strv){"", 0};
    }
    return (corio_strv){p, (size_t)(end - p)};
}

/* Validates what llhttp leaves to us and fills in the request.  Returns 0 or
 * the status to answer with. */
static int prepare(corio__hconn *c) {
    corio_req *r = &c->req;
    llhttp_t *p = &c->parser;
    if (llhttp_get_http_major(p) != 1)
        return 505;
    r->minor = llhttp_get_http_minor(p);
    if (llhttp_get_method(p) == HTTP_CONNECT)
        return 501;
    /* RFC 9112 3: one SP on each side of the target.  llhttp, strict mode
     * or not, skips a run of spaces before and after it. */
    if (r->target.off != r->method.off + r->method.len + 1 ||
        r->version.off != r->target.off + r->target.len + sizeof " HTTP/" - 1)
        return 400;
    size_t line_len = r->version.off + r->version.len;
    if (line_len > c->opts.max_request_line)
        return 414;
    if (c->parsed - line_len > c->opts.max_header_bytes)
        return 431;
    const char *head = corio__req_head(r);
    size_t hosts = 0, tes = 0;
    for (size_t i = 0; i < r->nhdrs; i++) {
        corio__hdr *h = &r->hdrs[i];
        for (uint32_t k = 0; k < h->name.len; k++)
            if (!is_tchar((unsigned char)head[h->name.off + k]))
                return 400;
        for (uint32_t k = 0; k < h->value.len; k++) {
            unsigned char ch = (unsigned char)head[h->value.off + k];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return 400; /* CR, LF, NUL and other controls */
        }
    }
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (span_ieq(r, r->hdrs[i].name, "host"))
            hosts++;
        else if (span_ieq(r, r->hdrs[i].name, "transfer-encoding")) {
            tes++;
            if (!span_ieq(r, r->hdrs[i].value, "chunked"))
                return 501;
        } else if (span_ieq(r, r->hdrs[i].name, "expect")) {
            if (!span_ieq(r, r->hdrs[i].value, "100-continue"))
                return 417;
            r->expect_continue = true;
        }
    }
    if (hosts > 1 || (r->minor >= 1 && hosts == 0) || tes > 1)
        return 400;
    /* RFC 9112 6.1: HTTP/1.0 has no Transfer-Encoding, so its framing is
     * faulty; a front end that ignores the field would see the "body" as
     * the next request.  Refused and closed, as nginx does. */
    if (r->minor == 0 && tes)
        return 400;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = r->chunked ? 0 : p->content_length;
    r->has_body = r->chunked || r->content_length > 0;
    if (!r->chunked && r->content_length > c->opts.max_body)
        return 413;
    r->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    r->head_method = llhttp_get_method(p) == HTTP_HEAD;
    r->head_len = c->parsed;
    /* Target: origin-form, absolute-form (RFC 9112 3.2.2: a server must
     * accept it; its path is used) or "*" for OPTIONS. */
    corio_strv target = corio__origin_target(corio_req_target(r));
    if (target.len == 0 || (target.ptr[0] != '/' && !(target.len == 1 && target.ptr[0] == '*')))
        return 400;
    const char *q = memchr(target.ptr, '?', target.len);
    corio_strv raw_path = {target.ptr, q ? (size_t)(q - target.ptr) : target.len};
    r->query = q ? (corio_strv){q + 1, target.len - raw_path.len - 1} : (corio_strv){"", 0};
    if (memchr(raw_path.ptr, '%', raw_path.len)) {
        char *dec = corio__arena_alloc(&c->arena, raw_path.len + 1);
        if (!dec)
            return 503;
        long n = corio__pct_decode(raw_path, dec, false);
        if (n < 0)
            return 400;
        r->path = (corio_strv){dec, (size_t)n};
    } else {
        r->path = raw_path;
    }
    return 0;
}

/* ---- one request ----------------------------------------------------------------------------- */

static void log_request_error(corio__hconn *c, int rc) {
    corio_strv m = corio_req_method(&c->req), t = corio_req_target(&c->req);
    corio_log(CORIO_LOG_ERROR, "handler for \"%.*s %.*s\" failed: %s", (int)m.len, m.ptr,
              (int)(t.len > 200 ? 200 : t.len), t.ptr, corio_strerror(rc));
}

/* The client closed or reset while its handler ran. */
static void on_peer_gone(corio_stream *s, int err, void *data) {
    (void)s;
    (void)err;
    corio__hconn *c = data;
    c->close = true;
    if (!c->req.finish_on_disconnect)
        corio_cancel_with(c->task, CORIO_CANCEL_PEER_GONE);
}

void corio_req_finish_on_disconnect(corio_req *req) {
    if (req)
        req->finish_on_disconnect = true;
}

struct corio_next {
    corio__hconn *c;
    corio__match *m;
    int found;
    const corio__mw *global;
    size_t nglobal, i;
};

/* The end of the chain: the route's handler, or the 404/405 answer. */
static int run_endpoint(corio__hconn *c, corio__match *m, int found) {
    corio_req *r = &c->req;
    corio_res *res = &c->res;
    if (found != 200 && r->has_body) {
        /* Read the body first: it keeps the connection in step, and a
         * malformed one is answered 400 rather than 404/405. */
        int rc = corio__req_skip_body(c);
        if (rc < 0 || c->reject)
            return corio__http_send_error(c, c->reject ? c->reject : 400, true);
    }
    /* Not corio__http_send_error: that drops the headers set so far, and
     * the middleware around us set them for this answer too. */
    if (found == 404)
        return corio_res_text(res, 404, "Not Found\n");
    if (found == 405) {
        corio_res_header(res, "Allow", m->allow);
        return corio_res_text(res, 405, "Method Not Allowed\n");
    }
    return m->fn(r, res, m->arg);
}

int corio_next_call(corio_next *n) {
    if (!n)
        return CORIO_EINVAL;
    size_t i = n->i++;
    corio_req *r = &n->c->req;
    corio_res *res = &n->c->res;
    if (i < n->nglobal)
        return n->global[i].fn(r, res, n, n->global[i].arg);
    i -= n->nglobal;
    if (n->found == 200 && i < n->m->nmws)
        return n->m->mws[i].fn(r, res, n, n->m->mws[i].arg);
    if (n->i > n->nglobal + (n->found == 200 ? n->m->nmws : 0) + 1)
        return CORIO_EALREADY; /* the handler already ran */
    return run_endpoint(n->c, n->m, n->found);
}

/* Routes on the raw path (see router.c), so parameters are decoded one
 * segment at a time. */
static int route(corio__hconn *c, corio__match *m) {
    corio_req *r = &c->req;
    corio_strv target = corio__origin_target(corio_req_target(r));
    const char *q = memchr(target.ptr, '?', target.len);
    corio_strv raw = {target.ptr, q ? (size_t)(q - target.ptr) : target.len};
    char *scratch = NULL;
    if (memchr(raw.ptr, '%', raw.len)) {
        scratch = corio__arena_alloc(&c->arena, raw.len);
        if (!scratch)
            return CORIO_ENOMEM;
    }
    int found = corio__router_match_raw(c->srv->router, corio_req_method(r), raw, scratch, m);
    if (found == 200) {
        memcpy(r->params, m->params, m->nparams * sizeof m->params[0]);
        r->nparams = m->nparams;
    }
    return found;
}

static int dispatch(corio__hconn *c) {
    corio_res *res = &c->res;
    corio__match m;
    int found = route(c, &m);
    if (found < 0 || corio__req_prepare_body(c) != 0)
        return corio__http_send_error(c, 503, true);
    corio_next next = {.c = c, .m = &m, .found = found};
    next.global = corio__router_global(c->srv->router, &next.nglobal);
    /* While the handler runs, the slices it holds stay put (where the head
     * is still in the read buffer), and a client that goes away cancels it
     * (reason "peer gone") unless it asked to finish. */
    corio__stream_pin(c->s, !c->req.head_copy);
    c->s->on_input_end = on_peer_gone;
    c->s->on_input_end_data = c;
    int rc = corio_next_call(&next);
    c->s->on_input_end = NULL;
    corio__stream_pin(c->s, false);
    /* A client that left, did not read its response within the send
     * timeout, or sent a bad body, is no handler failure (and must not be
     * able to flood the log with ERROR lines); nor is a handler the drain
     * deadline cut short (the runner logs that once, not per request). */
    bool client_left =
        rc == CORIO_EOF || rc == CORIO_ECONNRESET || rc == CORIO_EPIPE || c->peer_failed;
    corio_cancel_reason why = corio_task_cancel_reason(c->task);
    if (rc < 0 && !c->reject && !client_left && why != CORIO_CANCEL_PEER_GONE &&
        why != CORIO_CANCEL_SHUTDOWN)
        log_request_error(c, rc);
    if (rc < 0 && client_left)
        c->close = true;
    if (!res->started) {
        if (rc >= 0)
            corio_log(CORIO_LOG_ERROR, "a handler returned without a response");
        /* The body's own failure (400, 408, 413) if that is why. */
        return corio__http_send_error(c, c->reject ? c->reject : 500, c->reject != 0);
    }
    int erc = 0;
    if (!res->ended) {
        if (rc < 0)
            c->close = true; /* a stream cut short cannot be repaired */
        else
            erc = corio_res_end(res);
    }
    /* A response cut short ends the connection, whatever the handler
     * returned (one that ignored the error would have the next response
     * follow a truncated body). */
    return c->send_failed ? c->send_failed : erc;
}

static void reset_request(corio__hconn *c) {
    memset(&c->req, 0, sizeof c->req);
    memset(&c->res, 0, sizeof c->res);
    c->req.c = c;
    c->res.c = c;
    c->parsed = 0;
    c->line_end = 0;
    c->reject = 0;
    c->in_value = false;
    c->head_done = false;
    c->trailer_bytes = 0;
    c->chunk_ext_bytes = 0;
    c->in_chunk_line = false;
    c->chunk_line_bytes = 0;
    c->body_started = 0;
}

/* Whether the client may still be sending when we close: then closing at
 * once would make the kernel answer its next bytes with a reset, which can
 * destroy the response before the client has read it. */
static bool may_still_send(corio__hconn *c) {
    if (c->s->rerr)
        return false; /* its input already ended (or failed) */
    size_t buffered;
    corio_stream_buffered(c->s, &buffered);
    size_t mine = c->req.head_copy ? 0 : c->parsed;
    return c->reject || (c->req.has_body && !c->req.body_done) || buffered > mine;
}

/* Closing with the client still sending (a body we will not read, a request
 * we refused): send everything, half-close, and read and drop what still
 * comes for a moment, as Apache's and nginx's lingering close do.  Marked
 * idle meanwhile: a server shutdown need not wait for it.  Not inlined: its
 * scratch buffer would push every handler's frames a page further down the
 * connection's stack, a page more of memory per pooled stack. */
static __attribute__((noinline)) void linger(corio__hconn *c) {
    corio_stream_set_idle(c->s, true);
    CORIO_WITH(corio_timeout_scope(LINGER_MS)) {
        if (corio__hconn_flush(c) == 0 && corio_stream_shutdown(c->s) == 0) {
            char scratch[4096];
            while (corio_stream_read(c->s, scratch, sizeof scratch) > 0) {
            }
        }
    }
    corio_stream_set_idle(c->s, false);
}

/* What is still queued when the connection ends is whole responses (body
 * writes are flushed as they are made): it goes out even if the task was
 * cancelled since (a drain deadline, say), so a handler that answered and
 * returned keeps its answer's last bytes (a chunked stream's terminator).
 * A response cut short has nothing queued and still ends without its
 * terminator.  A cancelled task's flush is shielded and bounded like a
 * lingering close; otherwise the stream's write timeout bounds it. */
static int final_flush(corio__hconn *c) {
    if (!corio_cancelled())
        return corio__hconn_flush(c);
    int rc = CORIO_ETIMEDOUT;
    CORIO_WITH(corio_shield_scope()) {
        CORIO_WITH(corio_timeout_scope(LINGER_MS)) {
            rc = corio__hconn_flush(c);
        }
    }
    return rc;
}

/* What the connection's task holds, given back when it ends or parks. */
static void conn_release(corio__hconn *c) {
    arena_reset(c);
    free(c->hdrs_heap);
    c->hdrs_heap = NULL;
    c->hdrs_heap_cap = 0;
    if (c->opts.access_log)
        corio__access_log_conn_end();
}

/* 0 in a field of opts means its default. */
static void apply_defaults(corio_http_opts *o) {
#define DEFAULT(field)                                                                             \
    if (!o->field)                                                                                 \
        o->field = default_opts.field;
    DEFAULT(max_request_line)
    DEFAULT(max_header_bytes)
    DEFAULT(max_headers)
    DEFAULT(max_body)
    DEFAULT(header_timeout_ms)
    DEFAULT(body_timeout_ms)
    DEFAULT(body_min_rate)
    DEFAULT(keepalive_timeout_ms)
    DEFAULT(park_after_ms)
    DEFAULT(send_timeout_ms)
#undef DEFAULT
}

/* Serves one request whose head has been read; returns 0 to go on with the
 * next one, or a negative code (socket errors: the connection is done). */
static int serve_request(corio__hconn *c) {
    int st = prepare(c);
    if (st) {
        c->reject = st;
        return corio__http_send_error(c, st, true);
    }
    c->requests++;
    if (!c->req.keep_alive || (c->opts.max_requests && c->requests >= c->opts.max_requests))
        c->close = true;
    int rc = dispatch(c);
    if (rc == 0)
        rc = corio__req_skip_body(c);
    if (c->reject)
        c->close = true; /* e.g. a body found too large after the answer */
    return rc;
}

int corio_http_serve(corio_stream *s, void *arg) {
    const corio_http_server *srv = arg;
    if (!s || !srv || !srv->router)
        return CORIO_EINVAL;
    corio__hconn c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.srv = srv;
    c.task = corio_current();
    c.requests = (size_t)(uintptr_t)*corio_stream_data(s); /* when resumed after parking */
    c.can_park = s->owner != NULL; /* accepted by a server: corio_conn_idle works */
    c.opts = srv->opts;
    apply_defaults(&c.opts);
    corio__arena_init(&c.arena);
    llhttp_init(&c.parser, HTTP_REQUEST, &settings);
    c.parser.data = &c;
    /* Per-read and per-write timeouts the server set on the stream (the
     * runner's --read-timeout and --write-timeout) still bound every read
     * and write, as well as the HTTP timeouts: the shorter wins. */
    uint64_t send_ms = c.opts.send_timeout_ms;
    if (s->wtimeout && s->wtimeout < send_ms)
        send_ms = s->wtimeout;
    corio_stream_opts so = {.read_buffer_max =
                                c.opts.max_request_line + c.opts.max_header_bytes + 4096,
                            .write_high_water = s->whigh, /* the server's */
                            .read_timeout_ms = s->rtimeout,
                            .write_timeout_ms = send_ms};
    corio_stream_configure(s, &so);
    if (c.opts.access_log)
        corio__access_log_conn_begin(&c);
    int rc = 0;
    for (;;) {
        reset_request(&c);
        if (c.nout == 0)
            arena_reset(&c); /* the previous requests' memory, all written */
        int st = read_head(&c);
        if (st == HEAD_PARK) {
            *corio_stream_data(s) = (void *)(uintptr_t)c.requests; /* kept while parked */
            conn_release(&c);
            return corio_conn_idle(s, c.park_timeout_ms);
        }
        if (st == HEAD_ONLY_CLOSE || st < 0) {
            rc = st < 0 ? st : 0;
            break;
        }
        if (c.opts.access_log)
            c.started_ns = uv_hrtime();
        if (st) {
            c.reject = st;
            rc = corio__http_send_error(&c, st, true);
        } else {
            rc = serve_request(&c);
        }
        if (c.opts.access_log && c.res.started)
            corio__access_log(&c);
        /* A cancelled task serves no next request, and its flush before the
         * next read would fail: what is queued goes out below. */
        if (rc < 0 || c.close || corio_cancelled())
            break;
        /* The request's bytes (its head, and its body if read in place). */
        if (!c.req.head_copy)
            corio_stream_consume(s, c.parsed);
        /* Keep going while more pipelined bytes are here; flush otherwise
         * (read_head does, before it waits). */
        if (c.out_bytes > 64 * 1024)
            rc = corio__hconn_flush(&c);
        if (rc < 0)
            break;
    }
    int frc = final_flush(&c);
    if (rc >= 0 && frc == 0 && c.close && may_still_send(&c))
        linger(&c);
    conn_release(&c);
    return rc < 0 ? rc : frc;
}
