/* SPDX-License-Identifier: MIT */
/* The connection's output: responses are queued (slices of the arena or of
 * the caller's memory) and leave in one write per batch when the connection
 * loop flushes (conn.c: before it waits for the next request, or past 64
 * KiB queued) or a body write must go out now (streamed chunks, files, 100
 * Continue).  A write that fails cuts the connection: nothing more is sent
 * on it. */
#include <string.h>

#include "http/http_internal.h"
#include "net/proto.h"

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
