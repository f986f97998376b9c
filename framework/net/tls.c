/* SPDX-License-Identifier: MIT */
/* TLS connections: OpenSSL 3 driven through memory BIOs (see corio/tls.h;
 * contexts are in tls_ctx.c).
 *
 * Where the bytes live.  Ciphertext from the socket goes straight into the
 * connection's read BIO (libuv reads into a per-thread scratch buffer, the
 * read callback BIO_writes it); socket reading pauses while the read BIO
 * holds IN_MAX bytes, which is more than one full record, so OpenSSL can
 * always make progress and a peer can never make us buffer more.  Plaintext
 * is decrypted only when a task asks for it, into the stream's ordinary read
 * buffer (bounded by read_buffer_max) or directly into the buffer of a
 * waiting corio_stream_read(); read_until, buffered/fill/consume and the
 * rest work unchanged on top.  Writes are sealed OUT_CHUNK bytes (one
 * record) at a time; each record is handed from the write BIO to the
 * stream's raw write path (uv_try_write first, then the queue) and the
 * writer waits at the high-water mark between records, so the write BIO
 * never holds more than one record.
 *
 * The handshake runs in the task that needs it (a server connection's task
 * before its handler, or the client's) under a timeout scope: SSL_do_handshake,
 * hand over what it wrote, park as the stream's reader while it wants input.
 *
 * Idle connections stay small: SSL_MODE_RELEASE_BUFFERS returns OpenSSL's
 * record buffers, the read buffer is freed once consumed, and a memory BIO
 * that grew past TRIM_AT is replaced by a fresh one when the connection goes
 * back to waiting for input.
 *
 * OpenSSL's error queue is per thread and every task of a loop shares the
 * thread: each SSL call starts with ERR_clear_error(), and errors are read
 * (logged) before the task can yield.
 *
 * Whatever a peer can make fail (a handshake, a bad record, a renegotiation
 * attempt, replies it never reads) is logged at WARN, so --log-level error
 * silences it, and rate-limited, so a peer cannot flood the log: failed
 * handshakes, which any port scanner makes by the thousand, by a summary
 * per interval (see hs_log below), the rest with corio_log_peer.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "corio/log.h"
#include "corio/scope.h"
#include "net/tls_internal.h"

#define IN_MAX (40 * 1024)     /* ciphertext held in the read BIO, at most */
#define IN_SCRATCH (16 * 1024) /* socket read size */
#define OUT_CHUNK (16 * 1024)  /* plaintext per SSL_write: one full record */
#define OUT_SLACK (64 * 1024)  /* see flush_out() */
#define TRIM_AT 1024           /* memory BIOs larger than this are replaced when idle */
#define CLOSE_NOTIFY_MS 1000

struct corio__tls {
    SSL *ssl;
    BIO *rbio, *wbio;
    corio_tls_ctx *ctx; /* a reference */
    const char *alpn;   /* in ctx->alpn_names, or NULL */
    int in_err;         /* the socket's EOF or error, sticky */
    bool server;
    bool handshaken;
    bool fatal; /* OpenSSL reported a fatal error: no close_notify */
    bool notify_sent;
};

static __thread char in_scratch[IN_SCRATCH];
static __thread char out_stage[OUT_CHUNK];

/* ---- connection state ---------------------------------------------------------------- */

static BIO *new_mem_bio(void) {
    BIO *b = BIO_new(BIO_s_mem());
    if (b)
        BIO_set_mem_eof_return(b, -1); /* empty means "retry", never EOF: we track EOF */
    return b;
}

/* Creates s's TLS state from ctx.  Bytes already in s's read buffer become
 * the first ciphertext. */
static int attach(corio_stream *s, corio_tls_ctx *ctx, const char *name) {
    struct corio__tls *x = calloc(1, sizeof *x);
    if (!x)
        return CORIO_ENOMEM;
    ERR_clear_error();
    x->ssl = corio__tls_ctx_new_ssl(ctx);
    x->rbio = new_mem_bio();
    x->wbio = new_mem_bio();
    if (!x->ssl || !x->rbio || !x->wbio) {
        BIO_free(x->rbio);
        BIO_free(x->wbio);
        SSL_free(x->ssl);
        free(x);
        ERR_clear_error();
        return CORIO_ENOMEM;
    }
    SSL_set_bio(x->ssl, x->rbio, x->wbio); /* the SSL owns them now */
    x->server = ctx->server;
    int rc = CORIO_EINVAL; /* a name OpenSSL refuses (over-long, say) */
    if (x->server) {
        SSL_set_accept_state(x->ssl);
    } else {
        SSL_set_connect_state(x->ssl);
        unsigned char ip[16];
        bool is_ip =
            name && (uv_inet_pton(AF_INET, name, ip) == 0 || uv_inet_pton(AF_INET6, name, ip) == 0);
        if (name && !is_ip && !SSL_set_tlsext_host_name(x->ssl, name))
            goto out_free;
        if (ctx->verify && is_ip && !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(x->ssl), name))
            goto out_free;
        if (ctx->verify && !is_ip) {
            SSL_set_hostflags(x->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            if (!SSL_set1_host(x->ssl, name))
                goto out_free;
        }
    }
    rc = CORIO_ENOMEM;
    if (s->rlen && BIO_write(x->rbio, s->rbuf + s->rpos, (int)s->rlen) != (int)s->rlen)
        goto out_free;
    x->ctx = corio__tls_ctx_retain(ctx);
    s->rpos += s->rlen;
    s->rlen = 0;
    corio__stream_rbuf_trim(s);
    x->in_err = s->rerr; /* a plain EOF seen before the upgrade */
    s->rerr = 0;
    corio__stream_stop_reading(s); /* restarted with TLS's callbacks */
    s->tls = x;
    return 0;
out_free:
    ERR_clear_error();
    SSL_free(x->ssl); /* and its BIOs */
    free(x);
    return rc;
}

void corio__tls_free(corio_stream *s) {
    struct corio__tls *x = s->tls;
    s->tls = NULL;
    SSL_free(x->ssl);
    corio_tls_ctx_free(x->ctx);
    free(x);
}

/* Replaces a memory BIO that grew large while it holds nothing, so an idle
 * connection does not keep a record-sized buffer. */
static void trim_bio(struct corio__tls *x, bool reading) {
    BIO *b = reading ? x->rbio : x->wbio;
    BUF_MEM *bm = NULL;
    BIO_get_mem_ptr(b, &bm);
    if (!bm || bm->length || bm->max <= TRIM_AT)
        return;
    BIO *fresh = new_mem_bio();
    if (!fresh)
        return;
    if (reading) {
        SSL_set0_rbio(x->ssl, fresh); /* frees the old one */
        x->rbio = fresh;
    } else {
        SSL_set0_wbio(x->ssl, fresh);
        x->wbio = fresh;
    }
}

/* ---- the socket side ----------------------------------------------------------------- */

bool corio__tls_input_open(const corio_stream *s) {
    return !s->tls->in_err && BIO_ctrl_pending(s->tls->rbio) < IN_MAX;
}

size_t corio__tls_buffered(const corio_stream *s) {
    return s->tls ? BIO_ctrl_pending(s->tls->rbio) : 0;
}

void corio__tls_input_fail(corio_stream *s, int err) {
    s->tls->in_err = err;
}

void corio__tls_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)suggested;
    corio_stream *s = h->data;
    size_t pending = BIO_ctrl_pending(s->tls->rbio);
    size_t room = pending < IN_MAX ? IN_MAX - pending : 0;
    if (room > sizeof in_scratch)
        room = sizeof in_scratch;
    *buf = uv_buf_init(room ? in_scratch : NULL, (unsigned)room); /* 0: UV_ENOBUFS */
}

void corio__tls_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    corio_stream *s = st->data;
    struct corio__tls *x = s->tls;
    if (nread == 0)
        return; /* EAGAIN */
    if (nread > 0) {
        if (BIO_write(x->rbio, buf->base, (int)nread) != (int)nread) {
            ERR_clear_error();
            x->in_err = CORIO_ENOMEM;
            corio__stream_stop_reading(s);
        } else if (BIO_ctrl_pending(x->rbio) >= IN_MAX) {
            corio__stream_stop_reading(s); /* resumed once OpenSSL consumed some */
        }
    } else if (nread == UV_ENOBUFS) {
        corio__stream_stop_reading(s);
        return;
    } else {
        x->in_err = (int)nread; /* UV_EOF == CORIO_EOF */
        corio__stream_stop_reading(s);
        corio__stream_input_ended(s, x->in_err);
    }
    if (s->reader)
        corio__wake(s->reader, CORIO__STREAM_WOKEN);
    else
        corio__stream_input_arrived(s);
}

/* The peer's address for a log line, or who it is when it has none. */
static void peer_label(corio_stream *s, char *buf, size_t len) {
    if (corio_stream_peer_name(s, buf, len) != 0)
        snprintf(buf, len, "%s", s->tls->server ? "a client" : "the server");
}

/* Logs a failure the peer caused: "tls: <what> <peer>: <OpenSSL's error
 * queue>", emptying the queue (see the top of this file). */
static void report_peer(corio_stream *s, const char *what) {
    char peer[80], why[320];
    peer_label(s, peer, sizeof peer);
    corio__tls_errors(why, sizeof why);
    corio_log_peer(CORIO_LOG_WARN, "tls: %s %s: %s", what, peer, why);
}

/* Hands what OpenSSL wrote to the raw layer.  On the reading side, output
 * comes from the peer's messages (alerts, KeyUpdate replies); a peer that
 * keeps asking for replies and never reads them would grow our write queue
 * without bound, so past OUT_SLACK above the high-water mark that is an
 * error. */
static int flush_out(corio_stream *s, bool reading) {
    struct corio__tls *x = s->tls;
    char *p;
    long n = BIO_get_mem_data(x->wbio, &p);
    if (n <= 0)
        return 0;
    int rc;
    if (reading && s->wqueued > s->whigh + OUT_SLACK) {
        corio_log_peer(CORIO_LOG_WARN,
                       "tls: peer keeps requesting replies without reading; dropping it");
        x->fatal = true;
        rc = CORIO_ETLS;
    } else {
        struct iovec iov = {.iov_base = p, .iov_len = (size_t)n};
        rc = corio__stream_raw_write(s, &iov, 1);
    }
    (void)BIO_reset(x->wbio);
    return rc;
}

/* What a read gets once OpenSSL wants input that will never come. */
static int input_ended(corio_stream *s) {
    struct corio__tls *x = s->tls;
    if (x->in_err != CORIO_EOF)
        return x->in_err;
    if (!SSL_is_init_finished(x->ssl))
        return CORIO_ECONNRESET; /* the peer closed during the handshake */
    if (BIO_ctrl_pending(x->rbio) || SSL_has_pending(x->ssl))
        return CORIO_ETLS; /* a truncated record */
    return CORIO_EOF;      /* a FIN between records, without close_notify */
}

/* ---- reading ------------------------------------------------------------------------- */

/* Decrypts what OpenSSL can: into a waiting read()'s own buffer, else into
 * the read buffer while it has room.  Returns the plaintext bytes added, 0
 * when OpenSSL needs more input, or a sticky error (CORIO_EOF after
 * close_notify, CORIO_ETLS, CORIO_ENOMEM). */
static int decrypt(corio_stream *s) {
    struct corio__tls *x = s->tls;
    int got = 0, rc = 0;
    for (;;) {
        if (x->fatal) {
            rc = CORIO_ETLS; /* OpenSSL may not know: see flush_out() */
            break;
        }
        bool direct = s->direct_buf && s->rlen == 0 && got == 0;
        size_t room;
        char *dst;
        if (direct) {
            dst = s->direct_buf;
            room = s->direct_len;
        } else if (!(dst = corio__stream_rbuf_room(s, &room))) {
            rc = CORIO_ENOMEM;
            break;
        }
        if (room == 0)
            break;
        ERR_clear_error();
        int n = SSL_read(x->ssl, dst, room > INT_MAX ? INT_MAX : (int)room);
        int err = n > 0 ? SSL_ERROR_NONE : SSL_get_error(x->ssl, n);
        if (err == SSL_ERROR_SSL || err == SSL_ERROR_SYSCALL) {
            x->fatal = true;
            report_peer(s, "reading from");
        }
        int frc = flush_out(s, true);
        if (n > 0) {
            if (direct) {
                s->direct_got = (size_t)n;
                s->direct_buf = NULL;
                got = n;
                break;
            }
            s->rlen += (size_t)n;
            got += n;
            if (got > INT_MAX - OUT_CHUNK)
                break;
            continue;
        }
        if (frc == CORIO_ETLS)
            rc = CORIO_ETLS;
        else if (err == SSL_ERROR_WANT_READ)
            rc = 0;
        else if (err == SSL_ERROR_ZERO_RETURN)
            rc = CORIO_EOF; /* close_notify */
        else
            rc = CORIO_ETLS;
        break;
    }
    corio__stream_rbuf_trim(s);
    corio__stream_start_reading(s); /* OpenSSL may have made room in the read BIO */
    return got ? got : rc;
}

int corio__tls_fill(corio_stream *s, corio_task *t) {
    struct corio__tls *x = s->tls;
    for (;;) {
        int n = decrypt(s);
        if (n > 0)
            return 0;
        if (n < 0) {
            s->rerr = n;
            return 0;
        }
        if (s->rlen >= s->rmax && !s->direct_buf)
            return 0; /* the read buffer is full: the caller sees it */
        if (x->in_err) {
            s->rerr = input_ended(s);
            return 0;
        }
        trim_bio(x, true);
        trim_bio(x, false);
        corio__stream_start_reading(s);
        if (x->in_err)
            continue;
        int rc = corio__stream_park_reader(s, t);
        if (rc)
            return rc; /* CORIO_ECLOSED: s may be gone */
    }
}

/* ---- writing ------------------------------------------------------------------------- */

/* Seals one record's worth of plaintext, hands it to the raw layer and waits
 * while the queue is above the high-water mark. */
static int seal(corio_stream *s, corio_task *t, const char *p, size_t len) {
    struct corio__tls *x = s->tls;
    ERR_clear_error();
    if (SSL_write(x->ssl, p, (int)len) <= 0) {
        x->fatal = true;
        report_peer(s, "writing to");
        s->werr = CORIO_ETLS;
        return CORIO_ETLS;
    }
    int rc = flush_out(s, false);
    if (rc)
        return rc;
    if (s->wqueued > s->whigh)
        return corio__stream_wait_queue(s, t, s->whigh);
    return 0;
}

int corio__tls_writev(corio_stream *s, corio_task *t, const struct iovec *iov, size_t n) {
    struct corio__tls *x = s->tls;
    if (x->notify_sent)
        return CORIO_EPIPE;
    if (!x->handshaken || x->fatal)
        return CORIO_ETLS;
    /* Small buffers are gathered into one record (out_stage is only used
     * between two seals, never across an await); big ones are sealed in
     * place. */
    size_t staged = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len) {
            int rc = 0;
            size_t k;
            if (staged == 0 && len >= OUT_CHUNK) {
                k = OUT_CHUNK;
                rc = seal(s, t, p, k);
            } else {
                k = len < OUT_CHUNK - staged ? len : OUT_CHUNK - staged;
                memcpy(out_stage + staged, p, k);
                staged += k;
                if (staged == OUT_CHUNK) {
                    staged = 0;
                    rc = seal(s, t, out_stage, OUT_CHUNK);
                }
            }
            if (rc)
                return rc;
            p += k;
            len -= k;
        }
    }
    return staged ? seal(s, t, out_stage, staged) : 0;
}

int corio__tls_close_notify(corio_stream *s, corio_task *t) {
    struct corio__tls *x = s->tls;
    if (!x->handshaken || x->fatal || x->notify_sent || s->werr)
        return 0;
    x->notify_sent = true;
    ERR_clear_error();
    if (SSL_shutdown(x->ssl) < 0) {
        ERR_clear_error();
        return 0;
    }
    if (flush_out(s, false) || !t || s->wqueued == 0 || s->writer)
        return 0;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(CLOSE_NOTIFY_MS)) {
        rc = corio__stream_wait_queue(s, t, 0);
    }
    return rc == CORIO_ECLOSED ? rc : 0;
}

/* ---- the handshake ------------------------------------------------------------------- */

static int handshake_step(corio_stream *s, corio_task *t) {
    struct corio__tls *x = s->tls;
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(x->ssl);
        int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(x->ssl, r);
        int frc = flush_out(s, false); /* our flight, or the alert that ends it */
        if (r == 1) {
            const unsigned char *p;
            unsigned len;
            SSL_get0_alpn_selected(x->ssl, &p, &len);
            x->alpn = len ? corio__tls_ctx_alpn(x->ctx, p, len) : NULL;
            x->handshaken = true;
            return frc;
        }
        if (err != SSL_ERROR_WANT_READ) {
            x->fatal = true;
            if (!x->server && x->ctx->verify && SSL_get_verify_result(x->ssl) != X509_V_OK)
                return CORIO_ETLS_VERIFY;
            return CORIO_ETLS;
        }
        if (frc)
            return frc;
        if (x->in_err)
            return input_ended(s);
        corio__stream_start_reading(s);
        if (x->in_err)
            continue;
        int rc = corio__stream_park_reader(s, t);
        if (rc)
            return rc; /* CORIO_ECLOSED: s may be gone */
    }
}

/* ---- failed handshakes in the log --------------------------------------------------- */

/* Each interval of corio__tls_hs_log_interval_ms writes its first
 * HS_LOG_FULL failed handshakes in full; the others are counted, and when
 * the interval ends (a loop timer) one line sums them up,
 *
 *   tls: handshake failures: 995 similar messages suppressed in the last 5 s
 *   (the last with 127.0.0.1:40312: ...wrong version number)
 *
 * so a scanner costs at most HS_LOG_FULL + 1 lines an interval however fast
 * it goes.  The first failure after the interval starts the next one.  The
 * state is per thread, so per loop (per worker process) and lock-free; a
 * count still pending when its loop ends is written by the next failure on
 * that thread, late rather than lost.  ("N similar messages suppressed" is
 * corio_log_peer's wording: one phrase to grep for, whatever was dropped.) */
#define HS_LOG_FULL 5
#define HS_LOG_INTERVAL_MS 5000

/* Test hooks (tests/test_tls_log_ratelimit.c declares them): the interval,
 * read when one starts; and corio__tls_hs_log_flush, which ends the current
 * interval now, as its timer would. */
uint64_t corio__tls_hs_log_interval_ms = HS_LOG_INTERVAL_MS;
void corio__tls_hs_log_flush(void);

static __thread struct {
    uint64_t loop_id; /* ts_id of the loop the rest belongs to; 0: none yet */
    bool open;        /* an interval runs */
    uint64_t started, ends;
    unsigned logged;     /* failures written in full in it */
    uint64_t suppressed; /* failures only counted */
    char last[768];      /* the last one counted: "<peer>: <why>" */
    corio__timer timer;  /* at `ends`, while something is counted */
} hs_log;

/* Writes the count (if any) and ends the interval. */
static void hs_log_summary(uint64_t now) {
    if (hs_log.suppressed) {
        uint64_t secs = now > hs_log.started ? (now - hs_log.started + 999) / 1000 : 1;
        corio_log(CORIO_LOG_WARN,
                  "tls: handshake failures: %llu similar messages suppressed in the last %llu s "
                  "(the last with %s)",
                  (unsigned long long)hs_log.suppressed, (unsigned long long)(secs ? secs : 1),
                  hs_log.last);
    }
    hs_log.suppressed = 0;
    hs_log.open = false;
}

static void hs_log_on_timer(corio__timer *t) {
    (void)t;
    hs_log_summary(hs_log.ends);
}

/* Makes hs_log the current loop's.  After an earlier loop on this thread
 * ended, its timer is gone with its heap: written off, not stopped. */
static void hs_log_attach(corio_loop *L) {
    if (hs_log.loop_id == L->ts_id)
        return;
    if (hs_log.open)
        hs_log_summary(hs_log.ends);
    hs_log.loop_id = L->ts_id;
    corio__timer_init(&hs_log.timer, hs_log_on_timer);
}

void corio__tls_hs_log_flush(void) {
    corio_loop *L = corio__tls_loop;
    if (!L || hs_log.loop_id != L->ts_id || !hs_log.open)
        return;
    corio__timer_stop(L, &hs_log.timer);
    hs_log_summary(corio__now_fresh(L));
}

/* One failed handshake with `peer` ("127.0.0.1:40312 (name)"), for `why`. */
static void hs_log_failure(const char *peer, const char *why) {
    if (corio_log_get_level() < CORIO_LOG_WARN)
        return; /* neither written nor counted */
    corio_loop *L = corio__tls_loop;
    hs_log_attach(L);
    uint64_t now = corio__now_fresh(L);
    if (hs_log.open && now >= hs_log.ends) { /* the timer could not be armed */
        corio__timer_stop(L, &hs_log.timer);
        hs_log_summary(now);
    }
    if (!hs_log.open) {
        hs_log.open = true;
        hs_log.started = now;
        hs_log.ends = now + corio__tls_hs_log_interval_ms;
        hs_log.logged = 0;
    }
    if (hs_log.logged < HS_LOG_FULL) {
        hs_log.logged++;
        corio_log(CORIO_LOG_WARN, "tls: handshake with %s failed: %s", peer, why);
        return;
    }
    hs_log.suppressed++;
    snprintf(hs_log.last, sizeof hs_log.last, "%s: %s", peer, why);
    if (!corio__timer_armed(&hs_log.timer))
        (void)corio__timer_start(L, &hs_log.timer, hs_log.ends); /* else: the next failure */
}

static void report_handshake(corio_stream *s, const char *name, int rc) {
    struct corio__tls *x = s->tls;
    char peer[80], who[360], why[400];
    peer_label(s, peer, sizeof peer);
    if (rc == CORIO_ETLS_VERIFY) {
        snprintf(why, sizeof why, "certificate verify failed: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(x->ssl)));
        ERR_clear_error();
    } else if (rc == CORIO_ETLS) {
        corio__tls_errors(why, sizeof why);
    } else if (rc == CORIO_ETIMEDOUT) {
        snprintf(why, sizeof why, "timed out (handshake deadline %llu ms)",
                 (unsigned long long)x->ctx->handshake_ms);
    } else if (rc == CORIO_ECONNRESET) {
        snprintf(why, sizeof why, "the peer closed the connection");
    } else {
        snprintf(why, sizeof why, "%s", corio_strerror(rc));
    }
    snprintf(who, sizeof who, "%s%s%s%s", peer, name ? " (" : "", name ? name : "",
             name ? ")" : "");
    hs_log_failure(who, why);
}

/* Runs the handshake under the context's deadline; logs a failure.  A
 * handshake cut short by a cancellation or by closing the stream is not
 * logged (and after CORIO_ECLOSED s may be gone). */
static int handshake(corio_stream *s, corio_task *t, const char *name) {
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(s->tls->ctx->handshake_ms)) {
        rc = handshake_step(s, t);
    }
    if (rc == CORIO_ECLOSED)
        return rc;
    if (rc && rc != CORIO_ECANCELED)
        report_handshake(s, name, rc);
    ERR_clear_error();
    return rc;
}

int corio__tls_accept(corio_stream *s, corio_tls_ctx *ctx) {
    corio_task *t = corio__current();
    int rc = attach(s, ctx, NULL);
    if (rc) {
        corio__report("tls: cannot set up a connection: %s", corio_strerror(rc));
        return rc;
    }
    return handshake(s, t, NULL);
}

int corio_stream_start_tls(corio_stream *s, corio_tls_ctx *ctx, const char *server_name) {
    corio_task *t = corio__task_require("corio_stream_start_tls");
    if (!t)
        return CORIO_ENOTASK;
    if (!s || !ctx)
        return CORIO_EINVAL;
    if (s->closing)
        return CORIO_ECLOSED;
    if (s->tls)
        return CORIO_EALREADY;
    if (s->reader)
        return CORIO_EBUSY;
    if (!ctx->server && ctx->verify && (!server_name || !*server_name)) {
        corio__report("corio_stream_start_tls: a server name is needed to verify the server");
        return CORIO_EINVAL;
    }
    int rc = corio__await_check(t);
    if (rc)
        return rc;
    rc = attach(s, ctx, ctx->server ? NULL : server_name);
    if (rc)
        return rc;
    return handshake(s, t, ctx->server ? NULL : server_name);
}

/* ---- accessors ----------------------------------------------------------------------- */

bool corio_stream_is_tls(const corio_stream *s) {
    return s && s->tls;
}

const char *corio_stream_alpn(const corio_stream *s) {
    return s && s->tls ? s->tls->alpn : NULL;
}

const char *corio_stream_tls_version(const corio_stream *s) {
    return s && s->tls ? SSL_get_version(s->tls->ssl) : NULL;
}
