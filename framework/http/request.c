/* SPDX-License-Identifier: MIT */
/* Request accessors: slices of the head, decoded path and query, body
 * reading.
 *
 * Bodies.  llhttp paused at the end of the head; each body read feeds it the
 * bytes buffered (at most as many as the caller's buffer holds, so the body
 * they carry always fits) and on_body copies into the caller's buffer.  A
 * failure while the handler reads is the client's (a malformed or oversized
 * body, a stall, a disconnect): it is recorded in c->reject, which the
 * server then answers (400, 408, 413) if the handler gives up without a
 * response, and the connection closes. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "corio/tls.h"
#include "http/http_internal.h"
#include "net/proto.h"
#include "runtime/internal.h"

/* ---- request ids ----------------------------------------------------------------------------- */

/* Generated ids: 128 bits of a per-thread splitmix64 stream (Steele, Lea
 * and Flood), as 32 hex digits.  The stream's start is drawn from
 * getrandom once per thread, and again in a child after fork (workers
 * forked from one parent must not share it); splitmix64 is a bijection of
 * its counter, so a thread repeats no id for 2^64 of them, and two streams
 * from independent random starts overlap with negligible probability. */
static __thread struct {
    bool seeded;
    uint64_t state;
} idgen;
static pthread_once_t idgen_once = PTHREAD_ONCE_INIT;

static void idgen_after_fork(void) {
    idgen.seeded = false; /* the forking thread is the child's only one */
}

static void idgen_register(void) {
    pthread_atfork(NULL, NULL, idgen_after_fork);
}

static uint64_t splitmix64(void) {
    uint64_t z = (idgen.state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void idgen_seed(void) {
    pthread_once(&idgen_once, idgen_register);
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts; /* no entropy yet (early boot): time, pid, address */
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
               ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&idgen;
    }
    idgen.state = seed;
    idgen.seeded = true;
}

/* A sane id from a client: 1..CORIO__REQUEST_ID_MAX bytes of printable
 * ASCII, no space. */
static bool sane_id(corio_strv v) {
    if (v.len == 0 || v.len > CORIO__REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.ptr[i] <= 0x20 || (unsigned char)v.ptr[i] >= 0x7f)
            return false;
    return true;
}

void corio__hconn_set_request_id(corio__hconn *c, bool use_header) {
    corio_req *r = &c->req;
    corio_strv v = {0};
    if (use_header && r->id_hdr) {
        const corio__hdr *h = &r->hdrs[r->id_hdr - 1];
        v = (corio_strv){corio__req_head(r) + h->value.off, h->value.len};
    }
    if (sane_id(v)) {
        memcpy(c->req_id, v.ptr, v.len);
        c->req_id_len = (uint8_t)v.len;
    } else {
        if (!idgen.seeded)
            idgen_seed();
        /* A byte at a time, through a table of the 256 two-digit pairs:
         * every response carries an id, so this runs per request. */
        static const char pairs[] = /* "00" "01" ... "ff" */
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
            "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
            "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
            "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
            "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
            "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
            "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
            "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
        for (int half = 0; half < 2; half++) {
            uint64_t x = splitmix64();
            for (int i = 0; i < 8; i++, x >>= 8)
                memcpy(c->req_id + half * 16 + i * 2, pairs + (x & 255) * 2, 2);
        }
        c->req_id_len = 32;
    }
    c->req_id[c->req_id_len] = '\0';
    if (c->task)
        corio__task_set_request_id(c->task, c->req_id);
}

const char *corio_req_id(const corio_req *req) {
    return req ? req->c->req_id : "";
}

void corio__req_track_head(corio__hconn *c) {
    size_t len;
    c->req.head = c->req.head_copy ? c->req.head_copy : corio_stream_buffered(c->s, &len);
}

static corio_strv span(const corio_req *r, corio__span s) {
    return (corio_strv){corio__req_head(r) + s.off, s.len};
}

corio_strv corio_req_method(const corio_req *req) {
    return span(req, req->method);
}

corio_strv corio_req_target(const corio_req *req) {
    return span(req, req->target);
}

corio_strv corio_req_path(const corio_req *req) {
    return req->path;
}

corio_strv corio_req_query_string(const corio_req *req) {
    return req->query;
}

int corio_req_version_minor(const corio_req *req) {
    return req->minor;
}

static bool name_eq(corio_strv name, const char *want) {
    size_t n = strlen(want);
    return name.len == n && strncasecmp(name.ptr, want, n) == 0;
}

bool corio_req_header(const corio_req *req, const char *name, corio_strv *value) {
    const char *head = corio__req_head(req);
    for (size_t i = 0; i < req->nhdrs; i++) {
        corio_strv n = {head + req->hdrs[i].name.off, req->hdrs[i].name.len};
        if (name_eq(n, name)) {
            *value = (corio_strv){head + req->hdrs[i].value.off, req->hdrs[i].value.len};
            return true;
        }
    }
    return false;
}

size_t corio_req_header_count(const corio_req *req) {
    return req->nhdrs;
}

bool corio_req_header_at(const corio_req *req, size_t i, corio_strv *name, corio_strv *value) {
    if (i >= req->nhdrs)
        return false;
    const char *head = corio__req_head(req);
    *name = (corio_strv){head + req->hdrs[i].name.off, req->hdrs[i].name.len};
    *value = (corio_strv){head + req->hdrs[i].value.off, req->hdrs[i].value.len};
    return true;
}

bool corio_req_param(const corio_req *req, const char *name, corio_strv *value) {
    for (size_t i = 0; i < req->nparams; i++) {
        if (strcmp(req->params[i].name, name) == 0) {
            *value = req->params[i].value;
            return true;
        }
    }
    return false;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long corio__pct_decode(corio_strv s, char *dst, bool plus_is_space) {
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        char ch = s.ptr[i];
        if (ch == '%') {
            if (i + 2 >= s.len)
                return -1;
            int hi = hexval(s.ptr[i + 1]), lo = hexval(s.ptr[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        if (ch == '\0')
            return -1;
        dst[o++] = ch;
    }
    return (long)o;
}

bool corio_req_query(corio_req *req, const char *name, corio_strv *value) {
    corio_strv q = req->query;
    size_t nlen = strlen(name);
    size_t i = 0;
    while (i <= q.len && q.len) {
        const char *amp = memchr(q.ptr + i, '&', q.len - i);
        size_t end = amp ? (size_t)(amp - q.ptr) : q.len;
        corio_strv pair = {q.ptr + i, end - i};
        const char *eq = memchr(pair.ptr, '=', pair.len);
        corio_strv key = {pair.ptr, eq ? (size_t)(eq - pair.ptr) : pair.len};
        corio_strv val = eq ? (corio_strv){eq + 1, pair.len - key.len - 1} : (corio_strv){"", 0};
        char *kbuf = corio__arena_alloc(&req->c->arena, key.len + 1);
        if (!kbuf)
            return false;
        long klen = corio__pct_decode(key, kbuf, true);
        if (klen == (long)nlen && memcmp(kbuf, name, nlen) == 0) {
            char *vbuf = corio__arena_alloc(&req->c->arena, val.len + 1);
            if (!vbuf)
                return false;
            long vlen = corio__pct_decode(val, vbuf, true);
            if (vlen < 0)
                return false;
            *value = (corio_strv){vbuf, (size_t)vlen};
            return true;
        }
        if (!amp)
            break;
        i = end + 1;
    }
    return false;
}

void corio__hconn_peer(corio__hconn *c) {
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

const char *corio_req_peer_addr(const corio_req *req) {
    if (!req)
        return "-";
    if (!req->c->peer[0])
        corio__hconn_peer(req->c);
    return req->c->peer;
}

int corio_req_peer(const corio_req *req, char *buf, size_t len) {
    return corio_stream_peer_name(req->c->s, buf, len);
}

bool corio_req_draining(const corio_req *req) {
    return req && corio_stream_draining(req->c->s);
}

bool corio_req_is_tls(const corio_req *req) {
    return req && corio_stream_is_tls(req->c->s);
}

void *corio_req_alloc(corio_req *req, size_t n) {
    return corio__arena_alloc(&req->c->arena, n);
}

/* ---- bodies ------------------------------------------------------------------------------ */

/* Moves the head into the arena so the read buffer can be consumed from the
 * front while the body streams (or, upgraded, while the new protocol reads
 * it: corio__req_own_head). */
static int relocate_head(corio__hconn *c) {
    corio_req *r = &c->req;
    if (r->head_copy)
        return 0;
    size_t len;
    const char *buf = corio_stream_buffered(c->s, &len);
    char *copy = corio__arena_alloc(&c->arena, r->head_len);
    if (!copy)
        return CORIO_ENOMEM;
    memcpy(copy, buf, r->head_len);
    /* Slices handed out so far (path, query, parameters) pointed into the
     * buffer. */
    if (r->raw_path.ptr >= buf && r->raw_path.ptr < buf + r->head_len)
        r->raw_path.ptr = copy + (r->raw_path.ptr - buf);
    if (r->path.ptr >= buf && r->path.ptr < buf + r->head_len)
        r->path.ptr = copy + (r->path.ptr - buf);
    if (r->query.ptr >= buf && r->query.ptr < buf + r->head_len)
        r->query.ptr = copy + (r->query.ptr - buf);
    for (size_t i = 0; i < r->nparams; i++)
        if (r->params[i].value.ptr >= buf && r->params[i].value.ptr < buf + r->head_len)
            r->params[i].value.ptr = copy + (r->params[i].value.ptr - buf);
    r->head_copy = r->head = copy;
    corio__stream_pin(c->s, false); /* nothing points into the buffer now */
    corio_stream_consume(c->s, r->head_len);
    c->parsed = 0;
    return 0;
}

int corio__req_own_head(corio__hconn *c) {
    return relocate_head(c);
}

/* The client's failure while its body is read: close after answering, and
 * answer with `status` should the handler give up. */
static int body_failed(corio__hconn *c, int status, int rc) {
    c->close = true;
    if (!c->reject)
        c->reject = status;
    return rc;
}

/* "100 Continue", before the first body read: only to an HTTP/1.1 client
 * that asked, and only while no final response has begun (an interim
 * response after the final one would corrupt the stream) nor been given up
 * (corio_res_abort: no answer at all). */
static int send_continue(corio__hconn *c) {
    corio_req *r = &c->req;
    if (!r->expect_continue || r->continue_sent || r->minor == 0 || c->res.started || c->res.cut)
        return 0;
    r->continue_sent = true;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    int rc = corio__hconn_queue(c, cont, sizeof cont - 1);
    return rc ? rc : corio__hconn_flush(c);
}

/* Whether the whole body is in the read buffer behind the head. */
static bool body_all_buffered(corio__hconn *c) {
    size_t avail;
    corio_stream_buffered(c->s, &avail);
    return !c->req.chunked && avail - c->parsed >= c->req.content_length;
}

int corio__req_prepare_body(corio__hconn *c) {
    corio_req *r = &c->req;
    /* A body that must stream through the read buffer needs the buffer's
     * front: the head moves out now, before the handler can take slices of
     * it that reading the body would then leave dangling.  A body already
     * here whole is read in place, behind the head. */
    if (!r->has_body || r->head_copy || body_all_buffered(c))
        return 0;
    return relocate_head(c);
}

/* How long the next wait for body bytes may last: body_timeout_ms without
 * progress, and within the body's budget by body_min_rate: body_timeout_ms
 * plus a second per body_min_rate bytes received, spent only by time the
 * reads actually waited for the client (a handler that pauses between reads
 * -- a backend call, a semaphore -- is not the client's slowness).  0: the
 * budget is spent, the wait fails at once.  Saturating: body_timeout_ms may
 * be UINT64_MAX ("none"). */
static uint64_t body_wait(corio__hconn *c) {
    uint64_t rate = c->opts.body_min_rate, got = c->req.body_read;
    uint64_t earned = rate >= SIZE_MAX ? 0 : got / rate * 1000 + got % rate * 1000 / rate;
    uint64_t budget = c->opts.body_timeout_ms;
    budget = earned > UINT64_MAX - budget ? UINT64_MAX : budget + earned;
    uint64_t left = budget > c->body_waited ? budget - c->body_waited : 0;
    return left < c->opts.body_timeout_ms ? left : c->opts.body_timeout_ms;
}

int corio_req_read(corio_req *r, void *buf, size_t len) {
    corio__hconn *c = r->c;
    if (!r->has_body || r->body_done || len == 0)
        return 0;
    if (c->reject)
        return c->reject == 413 ? CORIO_ERANGE : CORIO_EINVAL; /* llhttp stopped */
    int rc = send_continue(c);
    if (rc)
        return rc;
    for (;;) {
        size_t avail;
        const char *data = corio_stream_buffered(c->s, &avail);
        size_t skip = r->head_copy ? 0 : c->parsed; /* in place: behind the head */
        if (avail > skip) {
            data += skip;
            avail -= skip;
            /* Feed at most len bytes: the body they carry is never more. */
            size_t feed = avail < len ? avail : len;
            r->sink = buf;
            r->sink_len = len;
            llhttp_errno_t err = corio__hconn_feed_body(c, data, feed);
            size_t used = feed;
            if (err == HPE_PAUSED) {
                used = (size_t)(llhttp_get_error_pos(&c->parser) - data);
                llhttp_resume(&c->parser);
            } else if (err != HPE_OK) {
                r->sink = NULL;
                if (c->reject == 413)
                    return body_failed(c, 413, CORIO_ERANGE);
                return body_failed(c, 400, CORIO_EINVAL);
            }
            size_t got = len - r->sink_len;
            r->sink = NULL;
            if (r->head_copy)
                corio_stream_consume(c->s, used);
            else
                c->parsed += used;
            if (got || r->body_done)
                return (int)got;
            continue;
        }
        if (!r->head_copy) {
            /* Read in place, yet not all here (cannot happen: see
             * corio__req_prepare_body); make room the only way there is. */
            rc = relocate_head(c);
            if (rc)
                return rc;
            continue;
        }
        uint64_t waited_from = corio__now(corio__tls_loop);
        rc = corio__hconn_fill_within(c, body_wait(c));
        c->body_waited += corio__now(corio__tls_loop) - waited_from;
        if (rc == CORIO_ETIMEDOUT && !corio_cancelled())
            return body_failed(c, 408, rc);
        /* The client ended its side before the body: an incomplete request
         * (RFC 9112 8), answered 400 should the handler give up; it may
         * still be reading. */
        if (rc == CORIO_EOF)
            return body_failed(c, 400, rc);
        if (rc < 0) {
            c->close = true; /* gone, reset, cancelled: nobody to answer */
            return rc;
        }
    }
}

int corio_req_body(corio_req *r, corio_strv *body) {
    corio__hconn *c = r->c;
    *body = (corio_strv){"", 0};
    if (!r->has_body)
        return 0;
    if (r->body_buffered) { /* a second call (middleware, then handler) */
        *body = r->body;
        return 0;
    }
    if (r->body_done || r->body_read)
        return CORIO_EALREADY; /* read with corio_req_read: gone */
    size_t avail;
    const char *buf = corio_stream_buffered(c->s, &avail);
    /* Already all here, in one piece: a slice of the read buffer. */
    if (!r->chunked && !r->head_copy && avail - c->parsed >= r->content_length) {
        llhttp_errno_t err = llhttp_execute(&c->parser, buf + c->parsed, r->content_length);
        if (err == HPE_PAUSED)
            llhttp_resume(&c->parser);
        r->body = (corio_strv){buf + c->parsed, r->content_length};
        c->parsed += r->content_length;
        r->body_done = r->body_buffered = true;
        *body = r->body;
        return 0;
    }
    /* A body of exactly max_body bytes fits: one byte more of room lets the
     * parser, not the buffer's size, find a body that does not. */
    size_t limit = c->opts.max_body + 1;
    size_t cap = r->chunked ? 4096 : r->content_length;
    char *out = corio__arena_alloc(&c->arena, cap);
    size_t used = 0;
    if (!out)
        return CORIO_ENOMEM;
    for (;;) {
        if (used == cap) {
            if (cap >= limit)
                return body_failed(c, 413, CORIO_ERANGE);
            size_t ncap = cap * 2 < limit ? cap * 2 : limit;
            char *n = corio__arena_alloc(&c->arena, ncap);
            if (!n)
                return CORIO_ENOMEM;
            memcpy(n, out, used);
            out = n;
            cap = ncap;
        }
        int got = corio_req_read(r, out + used, cap - used);
        if (got < 0)
            return got;
        used += (size_t)got;
        if (r->body_done)
            break;
    }
    r->body = (corio_strv){out, used};
    r->body_buffered = true;
    *body = r->body;
    return 0;
}

/* Reads and drops the rest of the body, up to CORIO__DRAIN_BODY_MAX.  Out
 * of line: its scratch buffer would otherwise be in corio__req_skip_body's
 * frame, whose stack-clash probe then touches a page of the connection's
 * stack after every request, body or not (a cache and TLB miss per request
 * with many connections). */
static __attribute__((noinline)) int drop_body(corio__hconn *c) {
    corio_req *r = &c->req;
    char scratch[4096];
    size_t dropped = 0;
    while (!r->body_done) {
        int n = corio_req_read(r, scratch, sizeof scratch);
        if (n < 0)
            return n;
        dropped += (size_t)n;
        if (dropped > CORIO__DRAIN_BODY_MAX) {
            c->close = true;
            return 0;
        }
    }
    return 0;
}

int corio__req_skip_body(corio__hconn *c) {
    corio_req *r = &c->req;
    corio__drain d = corio__req_drain(r);
    if (d == CORIO__DRAIN_NONE || c->close || c->reject)
        return 0;
    if (d == CORIO__DRAIN_CLOSE) {
        c->close = true; /* not announced as coming, or not worth reading */
        return 0;
    }
    return drop_body(c);
}
