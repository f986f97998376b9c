/* Private structure of streams, shared by the stream, client, server and TLS
 * code. */
#ifndef CORIO_NET_STREAM_INTERNAL_H
#define CORIO_NET_STREAM_INTERNAL_H

#include "corio/stream.h"
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
} corio__req_wait;

/* Parks until w->done or the await is cut short.  Returns w->status when
 * done, else CORIO_ECANCELED/CORIO_ETIMEDOUT (the caller then detaches w
 * from the request). */
int corio__req_wait_park(corio__req_wait *w, const char *what);
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
    char *direct_buf; /* zero-copy target of a waiting read() */
    size_t direct_len, direct_got;
    /* write side */
    size_t wqueued, whigh, wlevel;
    int werr;
    corio_task *writer;
    unsigned pending; /* write and shutdown requests in flight */
    uv_shutdown_t sreq;
    corio__req_wait *shutdown_wait;
    uint64_t rtimeout, wtimeout;
    /* close */
    corio__req_wait *close_wait;
    void (*on_free)(corio_stream *s); /* owner's hook, run before the free */
    void *owner;
    uint8_t kind;
    bool reading, closing, shut;
};

/* Allocates a stream of `kind` with its libuv handle initialised on L.
 * Returns NULL on ENOMEM (or handle init failure, in *rc). */
corio_stream *corio__stream_new(corio_loop *L, uint8_t kind, int *rc);
/* Closes a stream from code that does not await (the server's teardown);
 * memory is freed in the close callback. */
void corio__stream_close_nowait(corio_stream *s);

#endif
