/* SPDX-License-Identifier: MIT */
/* The HTTP/1.1 connection task: read a head, route, call the handler,
 * respond, repeat (see corio/http.h and http_internal.h); parse.c turns the
 * bytes into the request, dispatch.c routes it to its handler, output.c
 * queues and writes the responses (this loop flushes between requests).
 *
 * Closing.  A response carries "Connection: close" whenever the connection
 * ends after it: the client asked, HTTP/1.0 without keep-alive, a server
 * drain, a request body the server will not read.  If the client may still
 * be sending at that point, the close lingers (see linger()).
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "corio/scope.h"
#include "http/http_internal.h"
#include "http/metrics_internal.h"
#include "net/proto.h"
#include "runtime/internal.h"

#define HEAD_ONLY_CLOSE 1 /* read_head: the client closed between requests */
#define HEAD_PARK 2       /* read_head: idle between requests, park without a task */
#define HEAD_FLUSH 3      /* read_head: needs more bytes; the loop flushes what is queued first */
#define LINGER_MS 2000    /* a lingering close lasts at most this */
/* Draining, a connection that has had no request yet waits this long (at
 * most) for its first one, and a used one whose last exchange ended less
 * than this ago waits for its next one until this long after it; see
 * read_head. */
#define DRAIN_GRACE_MS 1000

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

/* ---- reading a request head ------------------------------------------------------------------ */

/* corio__hconn_fill_within, with the stream marked idle during the wait if
 * `idle`: a server's drain then cancels the wait's scope (not the task, see
 * corio_stream_set_idle), and read_head decides what comes next. */
static int fill_marked(corio__hconn *c, uint64_t ms, bool idle) {
    int rc = CORIO_ETIMEDOUT;
    if (ms == 0)
        return rc;
    CORIO_WITH(corio_timeout_scope(ms)) {
        if (idle)
            corio_stream_set_idle(c->s, true); /* notes this scope */
        rc = corio_stream_fill(c->s);
        if (idle && rc != CORIO_ECLOSED) /* else the stream may be gone */
            corio_stream_set_idle(c->s, false);
    }
    return rc;
}

int corio__hconn_fill_within(corio__hconn *c, uint64_t ms) {
    return fill_marked(c, ms, false);
}

/* read_head's clocks, kept by the loop across its HEAD_FLUSH returns (zero
 * for each request, but for the keep-alive end a resumed connection
 * continues with); on HEAD_PARK, idle_deadline is the keep-alive end. */
typedef struct head_wait {
    uint64_t head_deadline;
    uint64_t idle_deadline, park_at; /* keep-alive end, parking time */
    uint64_t drain_until;            /* draining: a new connection's wait for a first request */
} head_wait;

/* Parses bytes until a head is complete.  Returns 0, HEAD_ONLY_CLOSE when
 * the client left (or idled out) between requests, HEAD_FLUSH when answers
 * are queued and more bytes are needed (the loop flushes and calls again
 * with the same *w), HEAD_PARK, a status (400...) to answer before closing,
 * or a negative code for a socket error. */
static int read_head(corio__hconn *c, head_wait *w) {
    uint64_t head_deadline = w->head_deadline;
    uint64_t idle_deadline = w->idle_deadline, park_at = w->park_at;
    uint64_t drain_until = w->drain_until;
    for (;;) {
        size_t len;
        const char *buf = corio_stream_buffered(c->s, &len);
        if (len > c->parsed) {
            if (!head_deadline)
                head_deadline = corio__now(corio__tls_loop) + c->opts.header_timeout_ms;
            c->req.head = buf; /* the spans' base (the buffer moves between reads) */
            llhttp_errno_t err = llhttp_execute(&c->parser, buf + c->parsed, len - c->parsed);
            if (err == HPE_PAUSED) {
                c->parsed = (size_t)(llhttp_get_error_pos(&c->parser) - buf);
                llhttp_resume(&c->parser);
                return c->reject ? c->reject : 0;
            }
            if (err != HPE_OK) {
                /* What was parsed before the fault (the error answer's
                 * HEAD test and the bytes counted in) */
                const char *at = llhttp_get_error_pos(&c->parser);
                if (at && at >= buf + c->parsed && at <= buf + len)
                    c->parsed = (size_t)(at - buf);
                return corio__hconn_status_for(c, err);
            }
            c->parsed = len;
        }
        /* + 2: the line's CRLF, which max_request_line does not count
         * (corio__hconn_prepare does not either), so that where a read
         * ends does not decide a 414. */
        if (c->line_end == 0 && c->parsed > c->opts.max_request_line + 2)
            return 414;
        if (c->line_end && c->parsed - c->line_end > c->opts.max_header_bytes)
            return 431;
        if (c->line_end == 0 && c->parsed > c->opts.max_request_line + c->opts.max_header_bytes)
            return 431;
        /* Answers to earlier pipelined requests go out before we wait:
         * the loop flushes them (it alone flushes between requests) and
         * calls again, which parses whatever came meanwhile (the flush may
         * have waited for the client to read) before asking for more. */
        if (c->nout || c->send_failed) {
            *w = (head_wait){head_deadline, idle_deadline, park_at, drain_until};
            return HEAD_FLUSH;
        }
        /* Nothing queued points into the arena now, and a partly read head
         * holds nothing there (its fields are inline or in hdrs_heap):
         * free it.  A client that pipelines without pause is met here with
         * a head half read every time; were the arena freed only when a
         * read ends between two requests, its requests would pile up. */
        corio__hconn_arena_reset(c);
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
        bool mark_idle = idle;      /* a server's drain may end this wait */
        if (idle && corio_stream_draining(c->s)) {
            /* Shutting down: a request whose bytes have come is one the
             * server took, and is served (and the connection closed after
             * it, with Connection: close).  Otherwise a connection waits a
             * moment for a request that may be on its way, so that a
             * client that retries nothing sees no failure: a new one for
             * its first (it may come from the accept queue the drain
             * emptied), a used one whose exchange ended a moment ago for
             * its next (a client in a steady exchange sends it at once).
             * A used one idle for longer closes (its client retries
             * elsewhere, RFC 9112 9.3.1). */
            if (!corio__stream_input_pending(c->s)) {
                uint64_t grace = c->opts.header_timeout_ms < DRAIN_GRACE_MS
                                     ? c->opts.header_timeout_ms
                                     : DRAIN_GRACE_MS;
                if (!drain_until)
                    drain_until = c->requests > 0
                                      ? idle_deadline - c->opts.keepalive_timeout_ms + grace
                                      : now + grace;
                if (drain_until <= now)
                    return HEAD_ONLY_CLOSE;
                if (drain_until - now < wait)
                    wait = drain_until - now;
            }
            mark_idle = false;
        }
        /* Between requests, with nothing buffered and nothing to write, a
         * connection from a server that stays idle for park_after_ms gives
         * its task and stack back (corio_conn_park): the server runs
         * corio_http_serve again when bytes come, which continues with the
         * requests served and what is left of the keep-alive time.
         * Waiting that long first spares a busy connection a task start
         * per request. */
        bool may_park =
            mark_idle && c->parsed == 0 && c->nout == 0 && c->can_park && park_at < idle_deadline;
        if (may_park && now >= park_at && !corio__stream_has_input(c->s)) { /* TLS: undecrypted */
            /* parked until the keep-alive end */
            *w = (head_wait){.idle_deadline = idle_deadline};
            return HEAD_PARK;
        }
        if (may_park && park_at > now && park_at - now < wait)
            wait = park_at - now;
        /* Between requests the keep-alive timeout governs, not a read
         * timeout set on the stream (see corio_http_serve). */
        uint64_t read_timeout = idle ? corio__stream_swap_read_timeout(c->s, 0) : 0;
        int rc = fill_marked(c, wait, mark_idle);
        if (rc == CORIO_ECLOSED)
            return rc; /* the stream may be gone */
        if (idle)
            corio__stream_swap_read_timeout(c->s, read_timeout);
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

static void reset_request(corio__hconn *c) {
    /* All but the route parameters, which nparams (zeroed) says are unset:
     * three cache lines of the connection not written per request. */
    _Static_assert(offsetof(corio_req, nparams) ==
                       offsetof(corio_req, params) + sizeof(((corio_req *)0)->params),
                   "nparams follows params");
    memset(&c->req, 0, offsetof(corio_req, params));
    memset(&c->req.nparams, 0, sizeof c->req - offsetof(corio_req, nparams));
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
    c->chunk_line_ext = 0;
    c->last_chunk = false;
    c->fed_cr = false;
    c->trailer_mid_line = false;
    c->body_waited = 0;
    c->metrics_route = CORIO__ROUTE_REJECTED; /* until routed */
    c->req_id_len = 0;
    c->req_id[0] = '\0';
}

/* The request is over: the connection's task serves none until the next
 * one's id is set. */
static void end_request_id(corio__hconn *c) {
    if (c->task && c->req_id_len)
        corio__task_set_request_id(c->task, NULL);
}

/* Whether the client may still be sending when we close: then closing at
 * once would make the kernel answer its next bytes with a reset, which can
 * destroy the response before the client has read it. */
static bool may_still_send(corio__hconn *c) {
    if (corio__stream_input_finished(c->s))
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
    end_request_id(c);
    corio__hconn_arena_reset(c);
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
    int st = corio__hconn_prepare(c);
    corio__hconn_set_request_id(c, st == 0);
    if (st) {
        c->reject = st;
        return corio__http_send_error(c, st, true);
    }
    c->requests++;
    if (!c->req.keep_alive || (c->opts.max_requests && c->requests >= c->opts.max_requests))
        c->close = true;
    int rc = corio__hconn_dispatch(c);
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
    c.opts = srv->opts;
    apply_defaults(&c.opts);
    c.opts.access_log = corio__access_log_wanted(c.opts.access_log);
    /* Accepted by a server: the connection may park between requests, and
     * its state says where a resumed one is (zero on a first run). */
    corio_conn_state *cs = corio_conn_state_of(s);
    c.can_park = cs != NULL;
    head_wait resume = {0};
    if (cs) {
        c.requests = (size_t)cs->proto;
        if (corio_conn_resumed(s) && cs->idle_until) /* the keep-alive time left */
            resume = (head_wait){.idle_deadline = cs->idle_until,
                                 .park_at = corio__now(corio__tls_loop) + c.opts.park_after_ms};
    }
    corio__arena_init(&c.arena);
    corio__hconn_parser_init(&c);
    /* Per-read and per-write timeouts the server set on the stream (the
     * runner's --read-timeout and --write-timeout) still bound every read
     * and write, as well as the HTTP timeouts: the shorter wins. */
    corio_stream_opts so; /* the server's high-water mark and timeouts */
    corio__stream_get_opts(s, &so);
    if (!so.write_timeout_ms || so.write_timeout_ms > c.opts.send_timeout_ms)
        so.write_timeout_ms = c.opts.send_timeout_ms;
    so.read_buffer_max = c.opts.max_request_line + c.opts.max_header_bytes + 4096;
    corio_stream_configure(s, &so);
    if (c.opts.access_log)
        corio__access_log_conn_begin(&c);
    if (corio__metrics_on)
        corio__metrics_conn_begin();
    int rc = 0;
    for (;;) {
        reset_request(&c);
        if (c.nout == 0)
            corio__hconn_arena_reset(&c); /* the previous requests' memory, all written */
        head_wait w = resume;
        resume = (head_wait){0}; /* the next request's wait starts afresh */
        int st;
        while ((st = read_head(&c, &w)) == HEAD_FLUSH) {
            st = corio__hconn_flush(&c); /* before read_head waits for more */
            if (st)
                break;
            corio__hconn_arena_reset(&c); /* see read_head */
        }
        if (st == HEAD_PARK) {
            /* read_head parks only when c.can_park: cs is the server's, which
             * clang-analyzer does not follow.
             * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
            cs->proto = c.requests;
            conn_release(&c);
            return corio_conn_park(s, w.idle_deadline);
        }
        if (st == HEAD_ONLY_CLOSE || st < 0) {
            rc = st < 0 ? st : 0;
            break;
        }
        if (c.opts.access_log || corio__metrics_on)
            c.started_ns = uv_hrtime();
        if (st) {
            c.reject = st;
            corio__hconn_set_request_id(&c, false);
            rc = corio__http_send_error(&c, st, true);
        } else {
            rc = serve_request(&c);
        }
        if (c.opts.access_log && c.res.started) {
            corio__req_track_head(&c);
            corio__access_log(&c);
        }
        if (corio__metrics_on)
            corio__metrics_request(&c);
        end_request_id(&c);
        /* A cancelled task serves no next request, and its flush before the
         * next read would fail: what is queued goes out below. */
        if (rc < 0 || c.close || corio_cancelled())
            break;
        /* The request's bytes (its head, and its body if read in place). */
        if (!c.req.head_copy)
            corio_stream_consume(s, c.parsed);
        /* Keep going while more pipelined bytes are here; flush otherwise
         * (above, when read_head says it must wait for more). */
        if (c.out_bytes > 64 * 1024)
            rc = corio__hconn_flush(&c);
        if (rc < 0)
            break;
    }
    int frc = final_flush(&c);
    if (rc >= 0 && frc == 0 && c.close && !c.upgraded && may_still_send(&c))
        linger(&c);
    conn_release(&c);
    return rc < 0 ? rc : frc;
}
