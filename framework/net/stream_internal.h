/* SPDX-License-Identifier: MIT */
/* Private structure of streams, shared by the stream, client, server and TLS
 * code.
 *
 * Layers of a stream.  The raw layer moves bytes between the socket and
 * memory: reading into the read buffer (or, for TLS, into the TLS layer's
 * ciphertext buffer), and writing with uv_try_write first and a queue of
 * copied requests after.  For plain streams the plaintext layer is the raw
 * layer; for TLS streams (s->tls != NULL) tls.c sits between them and the
 * read buffer holds decrypted bytes, so every reading call works unchanged.
 */
#ifndef CORIO_NET_STREAM_INTERNAL_H
#define CORIO_NET_STREAM_INTERNAL_H

#include "corio/stream.h"
#include "corio/tls.h"
#include "net/proto.h"
#include "runtime/internal.h"

#define CORIO__STREAM_TCP 1
#define CORIO__STREAM_PIPE 2

/* A wait on a libuv request that may outlive the waiting task's interest (a
 * cancelled connect, a close awaited under a deadline).  Lives on the task's
 * stack; the callback fills it in and wakes the task only while the task
 * still points the request at it. */
typedef struct corio__req_wait {
    corio_task *task;
    int status;
    bool done;
    struct corio__req_wait **slot; /* where the request points at this wait */
} corio__req_wait;

/* Parks until w->done or the await is cut short.  Returns w->status when
 * done, else CORIO_ECANCELED/CORIO_ETIMEDOUT (the caller then detaches w
 * from the request). */
int corio__req_wait_park(corio__req_wait *w, corio__req_wait **slot, const char *what);
/* Completes w (if not NULL) from a request callback. */
void corio__req_wait_done(corio__req_wait *w, int status);

struct corio_stream {
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    corio_loop *loop;
    /* read side: buffered bytes are rbuf[rpos, rpos + rlen) */
    char *rbuf;
    size_t rcap, rpos, rlen, rmax;
    int rerr; /* sticky CORIO_EOF or socket error */
    corio_task *reader;
    bool *reader_closed; /* on the reader's stack: set when the stream closes */
    char *direct_buf;    /* zero-copy target of a waiting read() */
    size_t direct_len, direct_got;
    /* write side */
    size_t wqueued, whigh, wlevel;
    int werr;
    corio_task *writer;
    bool *writer_closed;
    unsigned pending; /* write and shutdown requests in flight */
    corio__req_wait *shutdown_wait;
    uint64_t rtimeout, wtimeout;
    /* close */
    corio__req_wait *close_wait;
    struct corio__tls *tls;           /* TLS state (tls.c); NULL for a plain stream */
    void (*on_free)(corio_stream *s); /* owner's hook, run before the free */
    void *owner;
    const bool *server_draining; /* the accepting server's draining flag, or NULL */
    /* corio__stream_on_input_end (net/proto.h) */
    corio__stream_input_end_cb *on_input_end;
    void *on_input_end_data;
    /* Called (on the loop's stack) when input arrives — bytes, EOF or an
     * error — while no task waits to read: how a server resumes a
     * connection parked without a task (corio_conn_park). */
    void (*on_input)(corio_stream *s, void *data);
    void *on_input_data;
    void *user; /* corio_stream_data() */
    uint8_t kind;
    bool reading, closing, shut, pinned, idle;
    /* Set with idle by corio_stream_set_idle: the scope of the idle task
     * that a server's drain cancels (the innermost when it was marked). */
    struct corio_scope *idle_scope;
    bool reset_on_close; /* corio_stream_set_reset_on_close */
    bool write_stalled;  /* a writer's own write timeout expired (the peer stopped reading) */
    bool rbig;           /* a read filled the read buffer: start it at the larger size */
};

/* Allocates a stream of `kind` with its libuv handle initialised on L.
 * Returns NULL on ENOMEM (or handle init failure, in *rc). */
corio_stream *corio__stream_new(corio_loop *L, uint8_t kind, int *rc);
/* Closes a stream from code that does not await (the server's teardown);
 * memory is freed in the close callback. */
void corio__stream_close_nowait(corio_stream *s);

/* ---- the raw layer, for tls.c ------------------------------------------------- */

/* A stream wait's wake result meaning "the stream changed, look again". */
#define CORIO__STREAM_WOKEN 1

/* Starts reading from the socket unless the stream is closing, reading
 * already, or its input is full or ended (plain: the read buffer; TLS:
 * corio__tls_input_open). */
void corio__stream_start_reading(corio_stream *s);
void corio__stream_stop_reading(corio_stream *s);

/* Parks t as the stream's reader until input arrives (the read callback
 * wakes it), the read timeout passes or the await is cut short.  Returns 0
 * to look again, CORIO_ETIMEDOUT, CORIO_ECANCELED, or CORIO_ECLOSED when the
 * stream was closed meanwhile (s may be freed: do not touch it). */
int corio__stream_park_reader(corio_stream *s, corio_task *t);

/* Free space at the end of the read buffer, allocating or growing it within
 * read_buffer_max.  Returns the space and sets *room (0 at the limit), or
 * NULL with *room 0 when out of memory. */
char *corio__stream_rbuf_room(corio_stream *s, size_t *room);

/* Pinning, the input probes and write_stalled: see net/proto.h. */

/* Tells the owner's on_input hook, if no reader is waiting. */
void corio__stream_input_arrived(corio_stream *s);

/* Tells the owner's on_input_end hook, if no reader is waiting. */
void corio__stream_input_ended(corio_stream *s, int err);

/* Frees the read buffer if it holds nothing. */
void corio__stream_rbuf_trim(corio_stream *s);

/* Frees the calling thread's cached read buffers (for a test's leak
 * accounting, as corio__arena_cache_clear). */
void corio__stream_rbuf_cache_clear(void);

/* Hands bufs to the socket without waiting: uv_try_write when nothing is
 * queued, the rest copied into a queued request.  Returns 0, or a socket
 * error (kept in s->werr) or CORIO_ENOMEM. */
int corio__stream_raw_write(corio_stream *s, const struct iovec *iov, size_t n);

/* Waits until at most `level` bytes are queued for the socket.  Returns 0,
 * s->werr, CORIO_EBUSY (another task waits to write), CORIO_ETIMEDOUT,
 * CORIO_ECANCELED, CORIO_ECLOSED (s may be freed). */
int corio__stream_wait_queue(corio_stream *s, corio_task *t, size_t level);

/* ---- the TLS layer (tls.c) ------------------------------------------------------- */

/* libuv's read callbacks of TLS streams: socket bytes go to the ciphertext
 * buffer, which holds at most a fixed bound. */
void corio__tls_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void corio__tls_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
/* Whether socket reading should run: no socket error or EOF yet and room in
 * the ciphertext buffer. */
bool corio__tls_input_open(const corio_stream *s);
/* Records a failure to start reading (from uv_read_start). */
void corio__tls_input_fail(corio_stream *s, int err);

/* The reading calls' wait for more plaintext on a TLS stream: decrypts what
 * has arrived into the direct buffer of a waiting read() or the read
 * buffer, else parks until ciphertext arrives.  Returns 0 to look again
 * (plaintext added or s->rerr set), or the park's error. */
int corio__tls_fill(corio_stream *s, corio_task *t);

/* corio_stream_writev on a TLS stream (after the common checks). */
int corio__tls_writev(corio_stream *s, corio_task *t, const struct iovec *iov, size_t n);

/* Sends close_notify (once, and only after a completed handshake without a
 * fatal error) and hands it to the raw layer.  With t, then waits up to a
 * second for the write queue to empty.  A close_notify that cannot be sent
 * is skipped.  Returns 0, or CORIO_ECLOSED if another task closed s
 * meanwhile (s may be gone). */
int corio__tls_close_notify(corio_stream *s, corio_task *t);

/* Frees the TLS state; from the stream's close callback. */
void corio__tls_free(corio_stream *s);

/* The server side of a connection: attaches TLS from ctx and completes the
 * handshake under the context's deadline.  A failure is logged with the
 * peer's address.  Returns 0 or a handshake error. */
int corio__tls_accept(corio_stream *s, corio_tls_ctx *ctx);

/* Whether ctx is a server context. */
bool corio__tls_ctx_is_server(const corio_tls_ctx *ctx);

/* Ciphertext received and not yet decrypted (for tests). */
size_t corio__tls_buffered(const corio_stream *s);

#endif
