/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* memmem */
/* Awaitable streams over libuv (see corio/stream.h).
 *
 * Reads: while a task waits in read() with nothing buffered, libuv's alloc
 * callback hands it the task's own buffer, so the bytes land there with no
 * copy and no stream buffer at all.  Otherwise bytes go into the stream's
 * buffer, allocated when bytes arrive and freed once they are consumed.
 * Reading continues ahead of the task while the buffer is below its limit,
 * then pauses (uv_read_stop) until the task consumes.
 *
 * Writes: uv_try_write first; what the kernel does not take is copied into a
 * heap request and queued; the writer waits only while the queue is above
 * its high-water mark.
 *
 * TLS streams (s->tls) share all of this.  tls.c takes over the socket's
 * read callbacks (ciphertext never touches the read buffer), fills the read
 * buffer with plaintext from inside wait_readable(), and encrypts writes
 * before handing them to the same raw write path (corio__stream_raw_write).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/thread_exit.h"
#include "net/stream_internal.h"

/* A stream's read buffer starts at READ_FIRST, enough for nearly every
 * request head (a waiting connection holds it while its task is queued, so
 * thousands of busy connections hold thousands); it doubles when a read
 * fills it, and a stream whose reads filled one starts at READ_CHUNK from
 * then on (a body streaming in, a pipelining client). */
#define READ_FIRST (4 * 1024)
#define READ_CHUNK (16 * 1024)
#define DEFAULT_READ_MAX (64 * 1024)
#define DEFAULT_WRITE_HIGH (64 * 1024)

/* Wake results of a stream wait: a positive value means "the stream changed,
 * look again"; 0 means the stream's own timer ran out. */
#define WOKEN CORIO__STREAM_WOKEN

/* ---- request waits ------------------------------------------------------------------- */

static void abandon_req_wait(void *data) {
    corio__req_wait *w = data;
    *w->slot = NULL; /* the request's callback then finds nobody waiting */
}

int corio__req_wait_park(corio__req_wait *w, corio__req_wait **slot, const char *what) {
    w->slot = slot;
    *slot = w;
    w->task->on_abandon = abandon_req_wait;
    w->task->on_abandon_data = w;
    int rc = corio__park(w->task, CORIO__NO_DEADLINE, what);
    w->task->on_abandon = NULL;
    if (w->done)
        return w->status;
    return rc == WOKEN ? CORIO_EFAILED : rc;
}

void corio__req_wait_done(corio__req_wait *w, int status) {
    if (!w)
        return;
    w->status = status;
    w->done = true;
    corio__wake(w->task, WOKEN);
}

/* ---- lifetime ---------------------------------------------------------------------- */

corio_stream *corio__stream_new(corio_loop *L, uint8_t kind, int *rc) {
    corio_stream *s = calloc(1, sizeof *s);
    if (!s) {
        *rc = CORIO_ENOMEM;
        return NULL;
    }
    s->loop = L;
    s->kind = kind;
    s->rmax = DEFAULT_READ_MAX;
    s->whigh = DEFAULT_WRITE_HIGH;
    *rc = kind == CORIO__STREAM_TCP ? uv_tcp_init(&L->uv, &s->h.tcp)
                                    : uv_pipe_init(&L->uv, &s->h.pipe, 0);
    if (*rc) {
        free(s);
        return NULL;
    }
    s->h.handle.data = s;
    return s;
}

void corio_stream_configure(corio_stream *s, const corio_stream_opts *o) {
    s->rmax = o && o->read_buffer_max ? o->read_buffer_max : DEFAULT_READ_MAX;
    s->whigh = o && o->write_high_water ? o->write_high_water : DEFAULT_WRITE_HIGH;
    s->rtimeout = o ? o->read_timeout_ms : 0;
    s->wtimeout = o ? o->write_timeout_ms : 0;
}

/* Read buffers come and go with every burst of input (an idle stream holds
 * none): keep a few of the common size per thread (one loop per thread) so
 * a request costs no malloc. */
#define RBUF_CACHE_MAX 256 /* 1 MiB of READ_FIRST buffers */
static __thread char *rbuf_cache[RBUF_CACHE_MAX];
static __thread int rbuf_cached;

static char *rbuf_alloc(size_t size) {
    if (size == READ_FIRST && rbuf_cached > 0)
        return rbuf_cache[--rbuf_cached];
    return malloc(size);
}

/* A thread that ends (a loop run on a thread of its own) frees its cache
 * (base/thread_exit.h); without that, nothing is kept. */
static __thread bool rbuf_armed;

static void rbuf_free(char *p, size_t size) {
    if (p && size == READ_FIRST && rbuf_cached < RBUF_CACHE_MAX &&
        corio__thread_exit_arm(corio__stream_rbuf_cache_clear, &rbuf_armed))
        rbuf_cache[rbuf_cached++] = p;
    else
        free(p);
}

void corio__stream_rbuf_cache_clear(void) {
    while (rbuf_cached > 0)
        free(rbuf_cache[--rbuf_cached]);
}

static void release_rbuf(corio_stream *s) {
    rbuf_free(s->rbuf, s->rcap);
    s->rbuf = NULL;
    s->rcap = s->rpos = 0;
}

/* The only place a stream is freed: libuv calls it after every other
 * callback of the handle, so a task run from within on_read (which may close
 * the stream) never frees the stream under libuv's read loop. */
static void on_close(uv_handle_t *h) {
    corio_stream *s = h->data;
    if (s->on_free)
        s->on_free(s);
    if (s->tls)
        corio__tls_free(s);
    corio__req_wait_done(s->close_wait, 0);
    rbuf_free(s->rbuf, s->rcap);
    free(s);
}

/* Marks the stream closing, wakes a waiting reader and writer with
 * CORIO_ECLOSED, and starts libuv's close. */
static void begin_close(corio_stream *s) {
    s->closing = true;
    s->reading = false;
    /* A waiting reader or writer learns of the close through a flag on its
     * own stack, even if something else woke it first: after the close
     * callback it must not touch s. */
    if (s->reader) {
        *s->reader_closed = true;
        corio__wake(s->reader, CORIO_ECLOSED);
    }
    if (s->writer) {
        *s->writer_closed = true;
        corio__wake(s->writer, CORIO_ECLOSED);
    }
    s->reader = s->writer = NULL;
    /* uv_tcp_close_reset refuses while a shutdown is pending: a FIN then. */
    if (!s->reset_on_close || s->kind != CORIO__STREAM_TCP ||
        uv_tcp_close_reset(&s->h.tcp, on_close) != 0)
        uv_close(&s->h.handle, on_close);
}

void corio_stream_set_reset_on_close(corio_stream *s) {
    if (s)
        s->reset_on_close = true;
}

void corio_stream_set_idle(corio_stream *s, bool idle) {
    if (!s)
        return;
    corio_task *t = corio__current();
    s->idle = idle;
    s->idle_scope = idle && t ? t->scopes : NULL;
}

void corio__stream_close_nowait(corio_stream *s) {
    if (!s->closing)
        begin_close(s);
}

int corio_stream_close(corio_stream *s) {
    if (!s)
        return CORIO_EINVAL;
    if (s->closing) {
        corio__report("corio_stream_close called twice on one stream");
        return CORIO_ECLOSED;
    }
    if (s->owner) {
        corio__report("corio_stream_close on a connection its server owns: return from the "
                      "handler instead (the server closes it)");
        return CORIO_EPERM;
    }
    corio_task *t = corio__current();
    if (s->tls && !s->reset_on_close && corio__tls_close_notify(s, t) == CORIO_ECLOSED) {
        corio__report("corio_stream_close called twice on one stream");
        return CORIO_ECLOSED; /* closed by another task while close_notify went out */
    }
    begin_close(s);
    if (!t)
        return 0; /* freed by the close callback */
    corio__req_wait w = {.task = t};
    int rc = corio__await_check(t);
    if (rc)
        return rc; /* still freed by the close callback */
    rc = corio__req_wait_park(&w, &s->close_wait, "stream close");
    if (!w.done)
        s->close_wait = NULL; /* cut short: the callback frees s alone */
    return rc;
}

/* ---- reading ----------------------------------------------------------------------- */

char *corio__stream_rbuf_room(corio_stream *s, size_t *room) {
    *room = 0;
    if (!s->rbuf) {
        size_t first = s->rbig ? READ_CHUNK : READ_FIRST;
        s->rcap = s->rmax < first ? s->rmax : first;
        s->rbuf = rbuf_alloc(s->rcap);
        s->rpos = 0;
        if (!s->rbuf) {
            s->rcap = 0;
            return NULL;
        }
    }
    if (s->pinned) {
        size_t n = s->rcap - s->rpos - s->rlen;
        if (s->rlen + n > s->rmax)
            n = s->rlen < s->rmax ? s->rmax - s->rlen : 0;
        *room = n;
        return n ? s->rbuf + s->rpos + s->rlen : NULL; /* NULL: reading pauses */
    }
    if (s->rpos && s->rpos + s->rlen == s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    if (s->rpos + s->rlen == s->rcap && s->rcap < s->rmax) {
        size_t cap = s->rcap * 2 < s->rmax ? s->rcap * 2 : s->rmax;
        char *p = realloc(s->rbuf, cap);
        if (p) {
            s->rbuf = p;
            s->rcap = cap;
        }
    }
    size_t n = s->rcap - s->rpos - s->rlen;
    if (n > s->rmax - s->rlen)
        n = s->rlen < s->rmax ? s->rmax - s->rlen : 0;
    *room = n;
    return s->rbuf + s->rpos + s->rlen;
}

void corio__stream_pin(corio_stream *s, bool pin) {
    s->pinned = pin;
    if (!pin)
        corio__stream_start_reading(s);
}

void **corio_stream_data(corio_stream *s) {
    return &s->user;
}

void corio__stream_input_arrived(corio_stream *s) {
    if (!s->reader && s->on_input)
        s->on_input(s, s->on_input_data);
}

bool corio__stream_has_input(const corio_stream *s) {
    if (s->rlen || s->rerr)
        return true;
    return s->tls && (corio__tls_buffered(s) > 0 || !corio__tls_input_open(s));
}

bool corio__stream_input_pending(const corio_stream *s) {
    if (corio__stream_has_input(s))
        return true;
    uv_os_fd_t fd;
    if (s->closing || uv_fileno(&s->h.handle, &fd) != 0)
        return false;
    char byte;
    ssize_t n;
    do
        n = recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    return n >= 0; /* a byte, or the end of input (0) */
}

void corio__stream_input_ended(corio_stream *s, int err) {
    if (!s->reader && s->on_input_end)
        s->on_input_end(s, err, s->on_input_end_data);
}

void corio__stream_rbuf_trim(corio_stream *s) {
    if (s->rlen == 0)
        release_rbuf(s);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    corio_stream *s = h->data;
    if (s->direct_buf && s->rlen == 0) {
        *buf = uv_buf_init(s->direct_buf, (unsigned)s->direct_len);
        return;
    }
    size_t room;
    char *p = corio__stream_rbuf_room(s, &room);
    *buf = uv_buf_init(p, (unsigned)room); /* NULL: libuv reports UV_ENOBUFS */
}

void corio__stream_stop_reading(corio_stream *s) {
    if (s->reading) {
        uv_read_stop(&s->h.stream);
        s->reading = false;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    corio_stream *s = st->data;
    if (nread > 0) {
        if (buf->base == s->direct_buf) {
            s->direct_got = (size_t)nread;
            s->direct_buf = NULL;
        } else {
            s->rlen += (size_t)nread;
            if (s->rpos + s->rlen == s->rcap)
                s->rbig = true; /* it filled the buffer: start larger next time */
            if (s->rlen >= s->rmax)
                corio__stream_stop_reading(s);
        }
        /* The reader runs now, with its bytes in the cache.  It may close s;
         * s is freed only in its close callback (on_close), later. */
        if (s->reader)
            corio__wake_now(s->reader, WOKEN, s);
        else
            corio__stream_input_arrived(s);
        return;
    }
    if (nread == 0) { /* EAGAIN: the buffer just allocated may be all there is */
        if (s->rlen == 0 && !s->pinned && buf->base != s->direct_buf)
            release_rbuf(s);
        return;
    }
    if (nread == UV_ENOBUFS) {
        corio__stream_stop_reading(s); /* out of memory or at the limit: resume on consume */
        if (!s->rbuf && s->reader)
            s->rerr = CORIO_ENOMEM;
    } else {
        s->rerr = (int)nread; /* UV_EOF == CORIO_EOF */
        corio__stream_stop_reading(s);
        corio__stream_input_ended(s, s->rerr);
    }
    if (s->rlen == 0 && !s->pinned)
        release_rbuf(s);
    if (s->reader)
        corio__wake(s->reader, WOKEN);
    else if (nread != UV_ENOBUFS)
        corio__stream_input_arrived(s);
}

void corio__stream_start_reading(corio_stream *s) {
    if (s->reading || s->closing)
        return;
    if (s->tls) {
        if (!corio__tls_input_open(s))
            return;
        int rc = uv_read_start(&s->h.stream, corio__tls_on_alloc, corio__tls_on_read);
        if (rc)
            corio__tls_input_fail(s, rc);
        else
            s->reading = true;
        return;
    }
    if (s->rerr || s->rlen >= s->rmax)
        return;
    int rc = uv_read_start(&s->h.stream, on_alloc, on_read);
    if (rc)
        s->rerr = rc;
    else
        s->reading = true;
}

static void abandon_reader(void *data) {
    corio_stream *s = data;
    s->reader = NULL;
    s->reader_closed = NULL;
    s->direct_buf = NULL;
}

static void abandon_writer(void *data) {
    corio_stream *s = data;
    s->writer = NULL;
    s->writer_closed = NULL;
}

/* Parks t as the stream's reader or writer (`slot`, `closed_slot`) until the
 * stream changes (0), its own timeout passes without progress
 * (CORIO_ETIMEDOUT), the stream is closed (CORIO_ECLOSED: s may be gone,
 * do not touch it), or the await is cut short. */
static int park_on(corio_stream *s, corio_task *t, corio_task **slot, bool **closed_slot,
                   uint64_t timeout, void (*abandon)(void *), const char *what) {
    uint64_t at = timeout ? corio__deadline_after(s->loop, timeout) : CORIO__NO_DEADLINE;
    bool closed = false;
    *slot = t;
    *closed_slot = &closed;
    t->on_abandon = abandon;
    t->on_abandon_data = s;
    int rc = corio__park(t, at, what);
    t->on_abandon = NULL;
    if (closed)
        return CORIO_ECLOSED;
    *slot = NULL;
    *closed_slot = NULL;
    if (rc == WOKEN)
        return 0;
    if (rc != 0)
        return rc;
    if (slot == &s->writer) /* the stream's own timer, not a deadline of the task's */
        s->write_stalled = true;
    return CORIO_ETIMEDOUT;
}

bool corio__stream_write_stalled(const corio_stream *s) {
    return s->write_stalled;
}

int corio__stream_park_reader(corio_stream *s, corio_task *t) {
    return park_on(s, t, &s->reader, &s->reader_closed, s->rtimeout, abandon_reader, "stream read");
}

/* Waits until the stream has something new for the reader: bytes, an error,
 * EOF.  Returns 0 to look again, or the await's error. */
static int wait_readable(corio_stream *s, corio_task *t) {
    if (s->reader)
        return CORIO_EBUSY;
    if (s->tls)
        return corio__tls_fill(s, t);
    corio__stream_start_reading(s);
    if (s->rerr && s->rlen == 0 && !s->direct_got)
        return 0;
    return corio__stream_park_reader(s, t);
}

static corio_task *begin_io(corio_stream *s, const char *what, int *rc) {
    corio_task *t = corio__task_require(what);
    if (!t) {
        *rc = CORIO_ENOTASK;
        return NULL;
    }
    if (!s || s->closing) {
        *rc = s ? CORIO_ECLOSED : CORIO_EINVAL;
        return NULL;
    }
    *rc = corio__await_check(t);
    return *rc ? NULL : t;
}

void corio_stream_consume(corio_stream *s, size_t n) {
    if (n > s->rlen)
        n = s->rlen;
    s->rpos += n;
    s->rlen -= n;
    if (s->rlen == 0)
        release_rbuf(s); /* an idle stream holds no read buffer */
    corio__stream_start_reading(s);
}

const char *corio_stream_buffered(corio_stream *s, size_t *len) {
    *len = s->rlen;
    return s->rlen ? s->rbuf + s->rpos : NULL;
}

int corio_stream_fill(corio_stream *s) {
    int rc;
    corio_task *t = begin_io(s, "corio_stream_fill", &rc);
    if (!t)
        return rc;
    if (s->rlen >= s->rmax)
        return CORIO_ERANGE;
    size_t before = s->rlen;
    while (s->rlen == before) {
        if (s->rerr)
            return s->rerr;
        rc = wait_readable(s, t);
        if (rc)
            return rc;
    }
    return (int)(s->rlen - before);
}

int corio_stream_read(corio_stream *s, void *buf, size_t len) {
    int rc;
    corio_task *t = begin_io(s, "corio_stream_read", &rc);
    if (!t)
        return rc;
    if (len == 0)
        return 0;
    if (len > INT32_MAX)
        len = INT32_MAX;
    for (;;) {
        if (s->rlen) {
            size_t n = s->rlen < len ? s->rlen : len;
            memcpy(buf, s->rbuf + s->rpos, n);
            corio_stream_consume(s, n);
            return (int)n;
        }
        if (s->rerr)
            return s->rerr;
        if (s->reader)
            return CORIO_EBUSY; /* before touching the other reader's state */
        s->direct_buf = buf;
        s->direct_len = len;
        s->direct_got = 0;
        rc = wait_readable(s, t);
        if (rc == CORIO_ECLOSED)
            return rc;
        s->direct_buf = NULL;
        if (s->direct_got) {
            size_t got = s->direct_got;
            s->direct_got = 0;
            return (int)got;
        }
        if (rc)
            return rc;
    }
}

int corio_stream_read_exactly(corio_stream *s, void *buf, size_t n) {
    char *p = buf;
    while (n > 0) {
        int rc = corio_stream_read(s, p, n);
        if (rc < 0)
            return rc;
        p += rc;
        n -= (size_t)rc;
    }
    return 0;
}

static const char *find(const char *hay, size_t hlen, const char *needle, size_t nlen) {
    if (nlen == 1)
        return memchr(hay, needle[0], hlen);
    return memmem(hay, hlen, needle, nlen);
}

int corio_stream_read_until(corio_stream *s, const void *delim, size_t dlen, void *buf, size_t cap,
                            size_t *out_len) {
    if (!delim || dlen == 0 || !buf || !out_len)
        return CORIO_EINVAL;
    *out_len = 0;
    size_t limit = cap < s->rmax ? cap : s->rmax;
    size_t scanned = 0; /* bytes already searched, minus a delimiter's overlap */
    for (;;) {
        const char *hit = s->rlen > scanned
                              ? find(s->rbuf + s->rpos + scanned, s->rlen - scanned, delim, dlen)
                              : NULL;
        if (hit) {
            size_t n = (size_t)(hit - (s->rbuf + s->rpos)) + dlen;
            if (n > limit)
                return CORIO_ERANGE;
            memcpy(buf, s->rbuf + s->rpos, n);
            corio_stream_consume(s, n);
            *out_len = n;
            return 0;
        }
        if (s->rlen >= limit)
            return CORIO_ERANGE;
        scanned = s->rlen >= dlen ? s->rlen - dlen + 1 : 0;
        int rc = corio_stream_fill(s);
        if (rc < 0)
            return rc == CORIO_ERANGE ? CORIO_ERANGE : rc;
    }
}

/* ---- writing ----------------------------------------------------------------------- */

typedef struct write_req {
    uv_write_t req;
    corio_stream *stream;
    size_t len;
    char data[];
} write_req;

static void on_write(uv_write_t *req, int status) {
    write_req *w = (write_req *)req;
    corio_stream *s = w->stream;
    s->wqueued -= w->len;
    s->pending--;
    if (status < 0 && status != UV_ECANCELED && !s->werr)
        s->werr = status;
    free(w);
    if (s->writer && (s->wqueued <= s->wlevel || s->werr))
        corio__wake(s->writer, WOKEN);
}

/* Waits until at most `level` bytes are queued.  Each completed write counts
 * as progress and restarts the write timeout. */
int corio__stream_wait_queue(corio_stream *s, corio_task *t, size_t level) {
    while (s->wqueued > level && !s->werr) {
        if (s->writer)
            return CORIO_EBUSY;
        s->wlevel = level;
        int rc = park_on(s, t, &s->writer, &s->writer_closed, s->wtimeout, abandon_writer,
                         "stream write");
        if (rc)
            return rc; /* CORIO_ECLOSED: s may be gone */
    }
    return s->werr;
}

/* Small scattered writes (a response's head and body, a batch of
 * pipelined responses) are gathered into one buffer first: the kernel
 * takes one contiguous buffer (write) for less than the same bytes in
 * pieces (writev walks and copies each).  One buffer per thread, warm in
 * the cache, used only for the duration of the call. */
#define GATHER_MAX 8192
static __thread char gather_buf[GATHER_MAX];

int corio__stream_raw_write(corio_stream *s, const struct iovec *iov, size_t n) {
    if (s->werr)
        return s->werr;
    size_t total = 0, skip = 0;
    for (size_t i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (total == 0)
        return 0;
    struct iovec gathered;
    if (n > 1 && total <= GATHER_MAX && s->wqueued == 0) {
        char *p = gather_buf;
        for (size_t i = 0; i < n; i++) {
            if (iov[i].iov_len)
                memcpy(p, iov[i].iov_base, iov[i].iov_len);
            p += iov[i].iov_len;
        }
        gathered = (struct iovec){.iov_base = gather_buf, .iov_len = total};
        iov = &gathered;
        n = 1;
    }
    /* On Unix uv_buf_t is laid out as struct iovec (libuv documents it), so
     * an array too large to gather goes to the kernel as it is. */
    _Static_assert(sizeof(uv_buf_t) == sizeof(struct iovec), "uv_buf_t is not an iovec");
    if (s->wqueued == 0 && n <= 1024) {
        int w = uv_try_write(&s->h.stream, (const uv_buf_t *)(const void *)iov, (unsigned)n);
        if (w >= 0 && (size_t)w == total)
            return 0;
        if (w < 0 && w != UV_EAGAIN && w != UV_ENOSYS) {
            s->werr = w;
            return w;
        }
        skip = w > 0 ? (size_t)w : 0;
    }
    /* Queue what the kernel did not take, as one copied request. */
    size_t rest = total - skip;
    write_req *w = malloc(sizeof *w + rest);
    if (!w)
        return CORIO_ENOMEM;
    char *p = w->data;
    for (size_t i = 0; i < n; i++) {
        size_t len = iov[i].iov_len;
        const char *base = iov[i].iov_base;
        if (skip >= len) {
            skip -= len;
            continue;
        }
        memcpy(p, base + skip, len - skip);
        p += len - skip;
        skip = 0;
    }
    w->stream = s;
    w->len = rest;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)rest);
    int rc = uv_write(&w->req, &s->h.stream, &b, 1, on_write);
    if (rc) {
        free(w);
        s->werr = rc;
        return rc;
    }
    s->wqueued += rest;
    s->pending++;
    return 0;
}

int corio__stream_write_nowait(corio_stream *s, const struct iovec *iov, size_t n) {
    if (s->tls)
        return CORIO_ENOTSUP;
    if (s->closing)
        return CORIO_ECLOSED;
    if (s->werr)
        return s->werr;
    if (s->shut)
        return CORIO_EPIPE;
    return corio__stream_raw_write(s, iov, n);
}

int corio_stream_writev(corio_stream *s, const struct iovec *iov, size_t n) {
    int rc;
    corio_task *t = begin_io(s, "corio_stream_write", &rc);
    if (!t)
        return rc;
    if (s->werr)
        return s->werr;
    if (s->shut)
        return CORIO_EPIPE;
    /* Before a byte is queued: bytes queued behind a waiting writer's would
     * land in the middle of its data, and a caller told EBUSY could not
     * know they went out. */
    if (s->writer)
        return CORIO_EBUSY;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += iov[i].iov_len;
        if (iov[i].iov_len > ((size_t)1 << 30) || total > ((size_t)1 << 30))
            return CORIO_EINVAL; /* libuv's buffers are 32-bit: use corio_stream_write */
    }
    if (s->tls)
        return corio__tls_writev(s, t, iov, n);
    rc = corio__stream_raw_write(s, iov, n);
    if (rc)
        return rc;
    return corio__stream_wait_queue(s, t, s->whigh);
}

int corio_stream_write(corio_stream *s, const void *buf, size_t len) {
    /* libuv's buffers hold at most 4 GiB: larger writes go in pieces. */
    const char *p = buf;
    do {
        size_t n = len < ((size_t)1 << 30) ? len : ((size_t)1 << 30);
        struct iovec iov = {.iov_base = (void *)p, .iov_len = n};
        int rc = corio_stream_writev(s, &iov, 1);
        if (rc)
            return rc;
        p += n;
        len -= n;
    } while (len);
    return 0;
}

int corio_stream_drain(corio_stream *s) {
    int rc;
    corio_task *t = begin_io(s, "corio_stream_drain", &rc);
    if (!t)
        return rc;
    return corio__stream_wait_queue(s, t, 0);
}

size_t corio_stream_write_queued(const corio_stream *s) {
    return s->wqueued;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
    corio_stream *s = req->data;
    free(req);
    s->pending--;
    corio__req_wait_done(s->shutdown_wait, status);
    s->shutdown_wait = NULL;
}

int corio_stream_shutdown(corio_stream *s) {
    int rc;
    corio_task *t = begin_io(s, "corio_stream_shutdown", &rc);
    if (!t)
        return rc;
    if (s->shut)
        return 0;
    if (s->tls && !s->reset_on_close)
        corio__tls_close_notify(s, NULL); /* queued ahead of the FIN */
    /* Allocated for the occasion: a stream is shut down once at most, and
     * an idle stream is smaller without it. */
    uv_shutdown_t *req = malloc(sizeof *req);
    if (!req)
        return CORIO_ENOMEM;
    req->data = s;
    rc = uv_shutdown(req, &s->h.stream, on_shutdown);
    if (rc) {
        free(req);
        return rc;
    }
    s->shut = true;
    s->pending++;
    corio__req_wait w = {.task = t};
    rc = corio__req_wait_park(&w, &s->shutdown_wait, "stream shutdown");
    if (!w.done && rc != CORIO_ECLOSED)
        s->shutdown_wait = NULL;
    return rc;
}

/* ---- addresses ------------------------------------------------------------------------- */

static int format_addr(const struct sockaddr_storage *ss, char *buf, size_t len) {
    char host[64];
    int port;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, host, sizeof host);
        port = ntohs(a->sin_port);
        if ((size_t)snprintf(buf, len, "%s:%d", host, port) >= len)
            return CORIO_ERANGE;
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, host, sizeof host);
        port = ntohs(a->sin6_port);
        if ((size_t)snprintf(buf, len, "[%s]:%d", host, port) >= len)
            return CORIO_ERANGE;
        return 0;
    }
    return CORIO_ENOTSUP;
}

static int stream_name(corio_stream *s, char *buf, size_t len, bool peer) {
    if (!s || !buf || !len)
        return CORIO_EINVAL;
    if (s->kind == CORIO__STREAM_PIPE) {
        size_t n = len;
        int rc = peer ? uv_pipe_getpeername(&s->h.pipe, buf, &n)
                      : uv_pipe_getsockname(&s->h.pipe, buf, &n);
        return rc == UV_ENOBUFS ? CORIO_ERANGE : rc;
    }
    struct sockaddr_storage ss;
    int n = sizeof ss;
    int rc = peer ? uv_tcp_getpeername(&s->h.tcp, (struct sockaddr *)&ss, &n)
                  : uv_tcp_getsockname(&s->h.tcp, (struct sockaddr *)&ss, &n);
    if (rc)
        return rc;
    return format_addr(&ss, buf, len);
}

int corio_stream_peer_name(corio_stream *s, char *buf, size_t len) {
    return stream_name(s, buf, len, true);
}

int corio_stream_local_name(corio_stream *s, char *buf, size_t len) {
    return stream_name(s, buf, len, false);
}
