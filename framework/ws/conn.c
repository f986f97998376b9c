/* SPDX-License-Identifier: MIT */
/* A WebSocket on a stream (corio/websocket.h): messages in and out, the
 * control frames, keep-alive, the close handshake.
 *
 * Receiving is one engine, next_piece: it reads frame heads and payloads
 * through the stream's read buffer and hands out each payload piece where
 * it lies (unmasked in place; a compressed message's pieces go through the
 * inflater into ws->zout).  corio_ws_receive_part returns those pieces;
 * corio_ws_receive joins them into one buffer.  Nothing more is read until
 * the caller asks for the next piece, so a slow consumer pushes back on the
 * socket, and memory stays bounded by the read buffer (64 KiB) plus, for
 * whole messages, max_message; and together, over all of a thread's
 * WebSockets, by the receive budget.
 *
 * Sending holds a lock for a whole message, so messages of several tasks
 * never interleave.  Control frames the receiver must send (a pong, a
 * keep-alive ping) must not wait behind a message stalled on a slow peer:
 * with the lock free the receiver sends them at once; held, it leaves them
 * in a slot, and the lock's holder sends them between two frames of its
 * message and before it lets go.  So the receiver never stops reading
 * because of a sender, which would deadlock against a peer that reads only
 * after writing.  The answer to the peer's close is the exception: the
 * receiver waits (bounded) for the lock to send it, since nothing else is
 * left to read.
 *
 * Waiting for bytes, the stream is marked idle: a server drain ends the
 * wait and the WebSocket is closed with 1001.  The wait's own deadline is
 * the next keep-alive event (a ping to send, a pong overdue, the peer's
 * close overdue).
 */
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "corio/scope.h"
#include "corio/server.h"
#include "corio/task.h"
#include "net/proto.h"
#include "runtime/internal.h"
#include "scope/scope_internal.h"
#include "ws/ws_internal.h"

#define WAIT_FOREVER_MS (24ull * 3600 * 1000) /* a wait with no deadline, renewed */
#define MAX_PING_MS WAIT_FOREVER_MS           /* ping_interval_ms, ping_timeout_ms at most */
#define MAX_FRAGMENT (1u << 30)               /* fragment_size at most (a writev's limit) */
/* A receiver that has waited this long with nothing received gives back
 * the stack pages its deeper calls once touched (the handshake's, a send's):
 * most of what an idle WebSocket costs. */
#define TRIM_AFTER_MS 1000

/* ---- options ------------------------------------------------------------------------------- */

int corio__ws_init(corio_ws *ws, const corio_ws_opts *o) {
    if (o)
        ws->o = *o;
    corio_ws_opts *p = &ws->o;
    if (!p->max_message)
        p->max_message = 1u << 20;
    if (!p->receive_budget)
        p->receive_budget = (size_t)256 << 20;
    if (!p->fragment_size)
        p->fragment_size = 64 * 1024;
    if (!p->ping_interval_ms)
        p->ping_interval_ms = 20000;
    if (!p->ping_timeout_ms)
        p->ping_timeout_ms = 20000;
    if (!p->close_timeout_ms)
        p->close_timeout_ms = 5000;
    if (!p->deflate_min_size)
        p->deflate_min_size = 128;
    if (!p->deflate_window_bits)
        p->deflate_window_bits = 12; /* Python websockets' default: ~50 KiB a connection */
    if (p->close_timeout_ms > 30000 || p->deflate_window_bits < 9 || p->deflate_window_bits > 15 ||
        (p->ping_interval_ms > MAX_PING_MS && p->ping_interval_ms != CORIO_WS_NO_PING) ||
        p->ping_timeout_ms > MAX_PING_MS || p->fragment_size > MAX_FRAGMENT ||
        p->deflate_level < 0 || p->deflate_level > 9 || p->max_message > (SIZE_MAX >> 2) ||
        (p->nsubprotocols && !p->subprotocols))
        return CORIO_EINVAL;
    for (size_t i = 0; i < p->nsubprotocols; i++)
        if (!p->subprotocols[i] || !*p->subprotocols[i])
            return CORIO_EINVAL;
    corio_lock_init(&ws->send_lock);
    ws->rules.role = ws->role;
    ws->rules.max_payload = p->max_message;
    ws->msg_first = true;
    ws->last_rx = corio_now();
    return 0;
}

int corio__ws_start_deflate(corio_ws *ws, bool server_no_ctx, bool client_no_ctx,
                            uint8_t server_bits, uint8_t client_bits) {
    corio__ws_pmd_params pp;
    corio__ws_pmd_params_init(&pp);
    pp.server_no_context_takeover = server_no_ctx;
    pp.client_no_context_takeover = client_no_ctx;
    pp.server_max_window_bits = server_bits;
    pp.client_max_window_bits = client_bits;
    pp.level = ws->o.deflate_level ? ws->o.deflate_level : -1;
    /* zlib's memLevel with the window: 8 (its default) at 15, 5 at 12 */
    int ours = ws->role == CORIO__WS_SERVER ? server_bits : client_bits;
    pp.mem_level = ours > 14 ? 8 : ours > 8 ? ours - 7 : 1;
    pp.max_message = ws->o.max_message;
    pp.min_compress = ws->o.deflate_min_size;
    int rc = corio__ws_pmd_init(&ws->pmd, &pp, ws->role == CORIO__WS_SERVER);
    if (rc)
        return rc;
    ws->pmd_on = true;
    ws->rules.allow_rsv1 = true;
    /* A compressed payload may be a little longer than what it holds. */
    ws->rules.max_payload = ws->o.max_message + ws->o.max_message / 16 + 1024;
    return 0;
}

void corio__ws_open(corio_ws *ws) {
    corio_stream_opts so;
    corio__stream_get_opts(ws->s, &so);
    so.read_buffer_max = CORIO__WS_READ_MAX;
    so.read_timeout_ms = 0; /* keep-alive pings say when a peer is gone */
    ws->saved_read_timeout = corio__stream_swap_read_timeout(ws->s, 0);
    corio_stream_configure(ws->s, &so);
}

/* ---- sending frames ------------------------------------------------------------------------ */

/* A client's frames are masked (RFC 6455 5.3) with a key from a CSPRNG,
 * a copy at a time through a scratch buffer of this size. */
#define MASK_CHUNK 16384

/* Await, the lock held: a client's frame, its payload masked piece by
 * piece into a scratch buffer. */
static int write_masked(corio_ws *ws, const uint8_t *head, size_t hlen, const uint8_t mask[4],
                        const uint8_t *data, size_t len) {
    if (len == 0)
        return corio_stream_write(ws->s, head, hlen);
    uint8_t *tmp = malloc(len < MASK_CHUNK ? len : MASK_CHUNK);
    if (!tmp)
        return CORIO_ENOMEM;
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len;) {
        size_t n = len - off < MASK_CHUNK ? len - off : MASK_CHUNK;
        corio__ws_mask_copy(tmp, data + off, n, mask, off);
        struct iovec iov[2] = {{(void *)head, hlen}, {tmp, n}};
        rc = off ? corio_stream_write(ws->s, tmp, n) : corio_stream_writev(ws->s, iov, 2);
        off += n;
    }
    free(tmp);
    return rc;
}

/* The receiver's control frames (at most 125 bytes of payload) are queued
 * without waiting for the send queue to drain below its high-water mark
 * (net/proto.h: not on TLS, whose records a writer seals): it must go on
 * reading whatever the peer's reading. */
static int write_control_nowait(corio_ws *ws, const uint8_t *head, size_t hlen,
                                const uint8_t *mask, const void *data, size_t len) {
    uint8_t body[CORIO__WS_CONTROL_MAX];
    if (mask && len)
        corio__ws_mask_copy(body, data, len, mask, 0);
    struct iovec iov[2] = {{(void *)head, hlen}, {mask ? body : (void *)data, len}};
    return corio__stream_write_nowait(ws->s, iov, len ? 2 : 1);
}

/* Await, the send lock held: one frame.  `nowait`: a receiver's control
 * frame (write_control_nowait), where the stream allows it. */
static int write_frame_ex(corio_ws *ws, unsigned flags, unsigned opcode, const void *data,
                          size_t len, bool nowait) {
    uint8_t head[CORIO__WS_HEADER_MAX], mask[4];
    bool client = ws->role == CORIO__WS_CLIENT;
    if (client && RAND_bytes(mask, sizeof mask) != 1)
        return CORIO_EFAILED;
    int n = corio__ws_header_encode(head, flags, opcode, len, client ? mask : NULL);
    if (n < 0)
        return n;
    if (nowait && len <= CORIO__WS_CONTROL_MAX) {
        int rc = write_control_nowait(ws, head, (size_t)n, client ? mask : NULL, data, len);
        if (rc != CORIO_ENOTSUP)
            return rc;
    }
    if (client)
        return write_masked(ws, head, (size_t)n, mask, data, len);
    struct iovec iov[2] = {{head, (size_t)n}, {(void *)data, len}};
    return corio_stream_writev(ws->s, iov, len ? 2 : 1);
}

static int write_frame(corio_ws *ws, unsigned flags, unsigned opcode, const void *data,
                       size_t len) {
    return write_frame_ex(ws, flags, opcode, data, len, false);
}

/* Await, the lock held: the control frames left in the slot (queued
 * without waiting when `nowait`: the receiver's own). */
static int flush_slot(corio_ws *ws, bool nowait) {
    if (ws->fail)
        return CORIO_ECLOSED; /* a frame may be cut: nothing may follow it */
    int rc = 0;
    while (rc == 0 && (ws->pong_pending || ws->ping_pending)) {
        if (ws->pong_pending) {
            ws->pong_pending = false;
            uint8_t copy[CORIO__WS_CONTROL_MAX];
            size_t n = ws->pong_len;
            memcpy(copy, ws->pong, n); /* a newer ping may replace it meanwhile */
            rc = write_frame_ex(ws, CORIO__WS_FIN, CORIO__WS_PONG, copy, n, nowait);
        } else {
            ws->ping_pending = false;
            rc = write_frame_ex(ws, CORIO__WS_FIN, CORIO__WS_PING, NULL, 0, nowait);
        }
    }
    return rc;
}

static int flush_pending(corio_ws *ws) {
    return flush_slot(ws, false);
}

/* The send lock's holder lets go: what is in the slot goes out first. */
static int unlock_send(corio_ws *ws) {
    int rc = ws->close_sent ? 0 : flush_pending(ws); /* nothing follows a close */
    corio_lock_release(&ws->send_lock);
    return rc;
}

/* Another task changed what the receiver waits for (a close sent, the
 * connection broken): its wait's own scope is cancelled, so that it looks
 * again (wait_input) rather than sleeping until its old deadline. */
static void wake_receiver(corio_ws *ws) {
    if (ws->wait_scope && ws->wait_task != corio__tls_loop->current)
        corio__scope_cancel(ws->wait_task, ws->wait_scope, CORIO_CANCEL_USER);
}

/* A failure that leaves the connection unusable (a write error, a message
 * cut short): every later call gets CORIO_ECLOSED. */
static int broken(corio_ws *ws, int rc) {
    if (!ws->fail)
        ws->fail = CORIO_ECLOSED;
    ws->closed = true;
    if (!ws->close_code)
        ws->close_code = CORIO__WS_CLOSE_ABNORMAL;
    wake_receiver(ws);
    return rc;
}

/* A control frame from the receiver (pong, keep-alive ping): at once if the
 * lock is free, else through the slot. */
static int send_control(corio_ws *ws, unsigned opcode, const uint8_t *data, size_t len) {
    if (ws->fail)
        return 0;
    if (opcode == CORIO__WS_PONG) {
        memcpy(ws->pong, data, len);
        ws->pong_len = (uint8_t)len;
        ws->pong_pending = true; /* only the latest ping needs its pong (RFC 6455 5.5.3) */
    } else {
        ws->ping_pending = true;
    }
    if (corio_lock_try_acquire(&ws->send_lock) != 0)
        return 0; /* the holder sends it */
    int rc = ws->close_sent ? 0 : flush_slot(ws, true);
    corio_lock_release(&ws->send_lock);
    return rc ? broken(ws, rc) : 0;
}

/* Await: the close frame, under the lock (waited for, bounded). */
static int send_close(corio_ws *ws, unsigned code, const char *reason) {
    uint8_t payload[CORIO__WS_CONTROL_MAX];
    int n = corio__ws_close_build(payload, code, reason, reason ? strlen(reason) : 0);
    if (n < 0)
        return n;
    ws->close_sent = true;
    ws->close_deadline = corio_now() + ws->o.close_timeout_ms;
    int rc = CORIO_ETIMEDOUT;
    CORIO_WITH(corio_timeout_scope(ws->o.close_timeout_ms)) {
        rc = corio_lock_acquire(&ws->send_lock);
        if (rc == 0) {
            rc = flush_pending(ws); /* CORIO_ECLOSED after a failure: no frame follows */
            if (rc == 0)
                rc = write_frame(ws, CORIO__WS_FIN, CORIO__WS_CLOSE, payload, (size_t)n);
            corio_lock_release(&ws->send_lock);
        }
    }
    /* The peer's time to answer starts when the frame is out (a sender
     * may have held the lock a while). */
    ws->close_deadline = corio_now() + ws->o.close_timeout_ms;
    wake_receiver(ws); /* its wait's deadline is the close's now */
    return rc ? broken(ws, rc) : 0;
}

/* ---- receiving ----------------------------------------------------------------------------- */

/* The peer broke the protocol: close with fail's code, and every later
 * call fails. */
static int protocol_fail(corio_ws *ws, int rc, uint16_t code, const char *reason) {
    if (!ws->close_sent && !ws->fail)
        (void)send_close(ws, code, reason);
    ws->fail = CORIO_ECLOSED;
    ws->closed = true;
    ws->failed_peer = true; /* corio__ws_finish lingers: the close frame must get there */
    ws->close_code = code;  /* ours: the peer sent none */
    return rc;
}

/* Await: the keep-alive's work when the wait's own deadline came. */
static int on_deadline(corio_ws *ws, uint64_t now) {
    if (ws->close_sent) {
        if (now < ws->close_deadline)
            return 0;
        ws->closed = true; /* the peer never answered our close */
        ws->close_code = CORIO__WS_CLOSE_ABNORMAL;
        corio_stream_set_reset_on_close(ws->s);
        ws->reset = true;
        return CORIO_ECLOSED;
    }
    if (ws->pong_due) {
        if (now < ws->pong_due)
            return 0;
        corio_stream_set_reset_on_close(ws->s); /* a dead peer is not waited for */
        ws->reset = true;
        broken(ws, 0);
        return CORIO_ETIMEDOUT;
    }
    ws->pong_due = now + ws->o.ping_timeout_ms;
    return send_control(ws, CORIO__WS_PING, NULL, 0);
}

/* Await: more bytes in the read buffer.  Returns 0, or an error (the
 * connection's end, a deadline of the caller's, a cancel). */
static int wait_input(corio_ws *ws) {
    for (;;) {
        if (ws->fail)
            return ws->fail;
        if (!ws->close_sent && corio_stream_draining(ws->s)) {
            int rc = send_close(ws, CORIO__WS_CLOSE_GOING_AWAY, "server shutting down");
            if (rc)
                return rc;
        }
        uint64_t now = corio_now(), until = UINT64_MAX;
        if (ws->close_sent)
            until = ws->close_deadline;
        else if (ws->pong_due)
            until = ws->pong_due;
        else if (ws->o.ping_interval_ms != CORIO_WS_NO_PING)
            until = ws->last_rx + ws->o.ping_interval_ms;
        if (until <= now) {
            int rc = on_deadline(ws, now);
            if (rc)
                return rc;
            continue;
        }
        if (!ws->trimmed) {
            uint64_t trim_at = ws->last_rx + TRIM_AFTER_MS;
            if (trim_at <= now) {
                corio__trim_stack();
                ws->trimmed = true;
            } else if (trim_at < until) {
                until = trim_at;
            }
        }
        uint64_t ms = until - now < WAIT_FOREVER_MS ? until - now : WAIT_FOREVER_MS;
        int rc = CORIO_ETIMEDOUT;
        CORIO_WITH(corio_timeout_scope(ms)) {
            ws->wait_task = corio__tls_loop->current;
            ws->wait_scope = ws->wait_task->scopes; /* this one: wake_receiver's */
            corio_stream_set_idle(ws->s, true);
            rc = corio_stream_fill(ws->s);
            if (rc != CORIO_ECLOSED)
                corio_stream_set_idle(ws->s, false);
            ws->wait_scope = NULL;
        }
        if (rc >= 0) {
            ws->last_rx = corio_now();
            ws->trimmed = false;
            ws->pong_due = 0; /* anything from the peer shows it is there */
            return 0;
        }
        /* Our own scope's end (a keep-alive deadline) or a drain's cancel:
         * the loop sees to both.  A caller's deadline or cancel: theirs. */
        if ((rc == CORIO_ETIMEDOUT || rc == CORIO_ECANCELED) && !corio_cancelled())
            continue;
        if (rc == CORIO_EOF || rc == CORIO_ECONNRESET) {
            bool was_closing = ws->close_sent;
            broken(ws, 0);
            return was_closing ? CORIO_ECLOSED : CORIO_EOF;
        }
        return rc;
    }
}

/* The peer's control frame, its payload (unmasked) in ws->ctl.  Returns
 * 0, CORIO_ECLOSED after its close, or a protocol failure. */
static int on_control(corio_ws *ws, const corio__ws_header *h) {
    size_t n = (size_t)h->payload_len;
    if (h->opcode == CORIO__WS_PING)
        return ws->close_sent ? 0 : send_control(ws, CORIO__WS_PONG, ws->ctl, n);
    if (h->opcode == CORIO__WS_PONG)
        return 0; /* its arrival already cleared the keep-alive's deadline */
    corio__ws_close cl;
    corio__ws_fail f;
    if (corio__ws_close_parse(ws->ctl, n, &cl, &f) != 0)
        return protocol_fail(ws, CORIO_EBADMSG, f.code, f.reason);
    ws->close_received = true;
    ws->close_code = cl.code;
    if (!ws->close_sent) /* echo its code (none for none) */
        (void)send_close(ws, cl.code, NULL);
    ws->closed = true;
    if (!ws->fail)
        ws->fail = CORIO_ECLOSED;
    return CORIO_ECLOSED;
}

/* A data frame's head: the message's order, type and size. */
static int on_data_head(corio_ws *ws, const corio__ws_header *h) {
    corio__ws_fail f;
    if (corio__ws_frame_order(&ws->in_message, h, &f) != 0)
        return protocol_fail(ws, CORIO_EBADMSG, f.code, f.reason);
    if (h->opcode != CORIO__WS_CONT) { /* a message's first frame */
        ws->msg_type = h->opcode == CORIO__WS_TEXT ? CORIO_WS_TEXT : CORIO_WS_BINARY;
        ws->msg_compressed = h->rsv1;
        ws->msg_wire = ws->msg_len = 0;
        ws->msg_first = true;
        memset(&ws->utf8, 0, sizeof ws->utf8);
    }
    ws->msg_wire += h->payload_len;
    if (ws->msg_wire > ws->rules.max_payload ||
        (!ws->msg_compressed && ws->msg_wire > ws->o.max_message))
        return protocol_fail(ws, CORIO_ERANGE, CORIO__WS_CLOSE_TOO_BIG, "message too big");
    return 0;
}

/* The piece handed out last, and the inflater's input, lie in the
 * stream's read buffer: it is pinned (not moved, not grown) until they are
 * let go, and read ahead into what room it has. */
static void hold_buffer(corio_ws *ws) {
    if (!ws->pinned) {
        corio__stream_pin(ws->s, true);
        ws->pinned = true;
    }
}

static void let_go(corio_ws *ws) {
    if (ws->unconsumed) {
        corio_stream_consume(ws->s, ws->unconsumed);
        ws->unconsumed = 0;
    }
    if (ws->pinned && !ws->zfeeding) {
        corio__stream_pin(ws->s, false);
        ws->pinned = false;
    }
}

/* Fills *p with a piece of the message; `last` ends it (its text must then
 * be whole). */
static int give_piece(corio_ws *ws, corio_ws_part *p, const uint8_t *data, size_t n, bool last) {
    if (ws->msg_type == CORIO_WS_TEXT &&
        (corio__ws_utf8_feed(&ws->utf8, data, n) != 0 ||
         (last && corio__ws_utf8_end(&ws->utf8) != 0)))
        return protocol_fail(ws, CORIO_EBADMSG, CORIO__WS_CLOSE_INVALID_DATA, "invalid UTF-8");
    ws->msg_len += n;
    *p = (corio_ws_part){.type = ws->msg_type, .data = data, .len = n, .first = ws->msg_first,
                         .last = last};
    ws->msg_first = last;
    return 0;
}

/* The inflater's next output.  Returns 1 with a piece, 0 when it needs the
 * next payload bytes, or an error. */
static int inflate_out(corio_ws *ws, corio_ws_part *p) {
    if (!ws->zout && !(ws->zout = malloc(CORIO__WS_ZOUT)))
        return protocol_fail(ws, CORIO_ENOMEM, CORIO__WS_CLOSE_INTERNAL, "out of memory");
    size_t n;
    bool fin;
    int rc = corio__ws_inflate_read(&ws->pmd, ws->zout, CORIO__WS_ZOUT, &n, &fin);
    if (rc == CORIO_ERANGE)
        return protocol_fail(ws, rc, CORIO__WS_CLOSE_TOO_BIG, "message too big");
    if (rc == CORIO_EBADMSG)
        return protocol_fail(ws, rc, CORIO__WS_CLOSE_INVALID_DATA, "bad compressed data");
    if (rc)
        return protocol_fail(ws, rc, CORIO__WS_CLOSE_INTERNAL, "inflate failed");
    if (fin || n == 0) { /* the bytes fed are all taken */
        corio_stream_consume(ws->s, ws->zfed);
        ws->zfeeding = false;
        let_go(ws);
    }
    if (n == 0 && !fin)
        return 0;
    rc = give_piece(ws, p, ws->zout, n, fin);
    return rc ? rc : 1;
}

/* Await: the next piece of a message (see the top of the file). */
static int next_piece(corio_ws *ws, corio_ws_part *p) {
    let_go(ws);
    for (;;) {
        if (ws->fail)
            return ws->fail;
        if (ws->zfeeding) {
            int rc = inflate_out(ws, p);
            if (rc)
                return rc < 0 ? rc : 0;
            continue;
        }
        size_t len;
        const uint8_t *buf = (const uint8_t *)corio_stream_buffered(ws->s, &len);
        if (!ws->in_frame) {
            corio__ws_fail f;
            int n = corio__ws_header_parse(&ws->rules, buf, len, &ws->h, &f);
            if (n < 0)
                return protocol_fail(ws, n, f.code, f.reason);
            if (n == 0) {
                int rc = wait_input(ws);
                if (rc)
                    return rc;
                continue;
            }
            corio_stream_consume(ws->s, (size_t)n);
            ws->in_frame = true;
            ws->got = 0;
            if (!corio__ws_is_control(ws->h.opcode)) {
                int rc = on_data_head(ws, &ws->h);
                if (rc)
                    return rc;
            }
            continue;
        }
        corio__ws_header *h = &ws->h;
        if (corio__ws_is_control(h->opcode)) { /* all of it (<= 125 bytes) at once */
            if (len < h->payload_len) {
                int rc = wait_input(ws);
                if (rc)
                    return rc;
                continue;
            }
            size_t n = (size_t)h->payload_len;
            if (n && h->masked) /* an empty one may have no buffer at all */
                corio__ws_mask_copy(ws->ctl, buf, n, h->mask, 0);
            else if (n)
                memcpy(ws->ctl, buf, n);
            corio_stream_consume(ws->s, n);
            ws->in_frame = false;
            int rc = on_control(ws, h);
            if (rc)
                return rc;
            continue;
        }
        uint64_t left = h->payload_len - ws->got;
        size_t n = left < len ? (size_t)left : len;
        if (n == 0 && left > 0) {
            int rc = wait_input(ws);
            if (rc)
                return rc;
            continue;
        }
        uint8_t *piece = (uint8_t *)(uintptr_t)buf; /* the buffer is ours: unmasked in place */
        if (h->masked)
            corio__ws_mask(piece, n, h->mask, ws->got);
        ws->got += n;
        bool frame_end = ws->got == h->payload_len, msg_end = frame_end && h->fin;
        if (frame_end)
            ws->in_frame = false;
        if (ws->msg_compressed) {
            int rc = corio__ws_inflate_feed(&ws->pmd, piece, n, msg_end);
            if (rc)
                return protocol_fail(ws, rc, rc == CORIO_EBADMSG ? CORIO__WS_CLOSE_INVALID_DATA
                                                                 : CORIO__WS_CLOSE_INTERNAL,
                                     "bad compressed data");
            ws->zfeeding = true;
            ws->zfed = n;
            hold_buffer(ws); /* zlib reads these bytes where they are */
            continue;
        }
        if (n == 0 && !msg_end)
            continue; /* an empty frame inside a message */
        int rc = give_piece(ws, p, piece, n, msg_end);
        if (rc)
            return rc;
        ws->unconsumed = n;
        if (n)
            hold_buffer(ws);
        return 0;
    }
}

/* ---- the thread's receive budget ------------------------------------------------------------ */

/* A message buffer's first RECEIVE_FREE bytes are not counted: small
 * messages never meet the budget. */
#define RECEIVE_FREE (64 * 1024)
/* A buffer the budget cannot double grows in steps of this much. */
#define RECEIVE_STEP (64 * 1024)

static __thread size_t budget_used;

size_t corio_ws_receive_budget_used(void) {
    return budget_used;
}

/* Counts ws's message buffer at cap bytes: false (nothing counted) if
 * that would pass the budget. */
static bool charge(corio_ws *ws, size_t cap) {
    size_t over = cap > RECEIVE_FREE ? cap - RECEIVE_FREE : 0;
    if (over > ws->charged) {
        size_t more = over - ws->charged;
        if (more > ws->o.receive_budget || budget_used > ws->o.receive_budget - more)
            return false;
        budget_used += more;
    } else {
        budget_used -= ws->charged - over;
    }
    ws->charged = over;
    return true;
}

/* Makes room for `need` bytes in ws's message buffer: doubling it while
 * the budget has room (never past max_message + 1, the most a message
 * takes), else in steps of RECEIVE_STEP.  Returns 0, or the failure, the
 * peer told (1013 for the budget, 1011 out of memory). */
static int grow_message(corio_ws *ws, size_t need) {
    size_t cap = ws->msg.cap ? ws->msg.cap : 256, most = ws->o.max_message + 1;
    while (cap < need)
        cap *= 2;
    if (cap > most && need <= most)
        cap = most;
    if (!charge(ws, cap)) {
        cap = (need + RECEIVE_STEP - 1) / RECEIVE_STEP * RECEIVE_STEP;
        if (cap > most)
            cap = need;
        if (!charge(ws, cap))
            return protocol_fail(ws, CORIO_EAGAIN, CORIO__WS_CLOSE_TRY_LATER, "busy");
    }
    uint8_t *d = realloc(ws->msg.data, cap);
    if (!d) {
        (void)charge(ws, ws->msg.cap); /* back to what it holds: never refused */
        return protocol_fail(ws, CORIO_ENOMEM, CORIO__WS_CLOSE_INTERNAL, "out of memory");
    }
    ws->msg.data = d;
    ws->msg.cap = cap;
    return 0;
}

static void release_message(corio_ws *ws) {
    corio__ws_buf_release(&ws->msg);
    budget_used -= ws->charged;
    ws->charged = 0;
}

/* Whether the calling task may receive now: 0 or the refusal. */
static int begin_receive(corio_ws *ws) {
    corio_task *me = corio_current();
    if (!me)
        return CORIO_ENOTASK;
    if (ws->receiver && ws->receiver != me)
        return CORIO_EBUSY;
    ws->receiver = me;
    return 0;
}

int corio_ws_receive_part(corio_ws *ws, corio_ws_part *part) {
    if (!ws || !part || ws->msg_partial) /* corio_ws_receive holds the message's start */
        return CORIO_EINVAL;
    int rc = begin_receive(ws);
    if (rc)
        return rc;
    rc = next_piece(ws, part);
    if (rc == 0)
        ws->part_mid = !part->last;
    ws->receiver = NULL;
    return rc;
}

int corio_ws_receive(corio_ws *ws, corio_ws_msg *msg) {
    if (!ws || !msg || ws->part_mid)
        return CORIO_EINVAL;
    int rc = begin_receive(ws);
    if (rc)
        return rc;
    /* The last message is the caller's no more: an idle WebSocket holds no
     * buffer of its own.  Unless a deadline of the caller's cut the last
     * call inside a message: that goes on where it stopped. */
    if (!ws->msg_partial)
        release_message(ws);
    corio_ws_part p;
    while ((rc = next_piece(ws, &p)) == 0) {
        size_t need = ws->msg.len + p.len + 1; /* + a NUL after text */
        if (need > ws->msg.cap && (rc = grow_message(ws, need)) != 0)
            break;
        if (p.len)
            memcpy(ws->msg.data + ws->msg.len, p.data, p.len);
        ws->msg.len += p.len;
        let_go(ws); /* copied: the read buffer is free to move */
        ws->msg_partial = !p.last;
        if (p.last) {
            ws->msg.data[ws->msg.len] = 0;
            *msg = (corio_ws_msg){.type = p.type, .data = ws->msg.data, .len = ws->msg.len};
            free(ws->zout); /* the inflater's output is in msg now */
            ws->zout = NULL;
            break;
        }
    }
    if (rc && ws->fail) { /* the WebSocket is done: its message's start goes now */
        release_message(ws);
        ws->msg_partial = false;
    }
    ws->receiver = NULL;
    return rc;
}

/* ---- sending messages ---------------------------------------------------------------------- */

/* Await, the lock held: a message as it is, in frames of fragment_size. */
static int send_plain(corio_ws *ws, unsigned opcode, const uint8_t *data, size_t len) {
    size_t off = 0;
    do {
        size_t n = len - off < ws->o.fragment_size ? len - off : ws->o.fragment_size;
        bool last = off + n == len;
        int rc = write_frame(ws, last ? CORIO__WS_FIN : 0, off ? CORIO__WS_CONT : opcode,
                             data + off, n);
        if (rc == 0 && !last)
            rc = flush_pending(ws); /* control frames go between the fragments */
        if (rc)
            return rc;
        off += n;
    } while (off < len);
    return 0;
}

/* Await, the lock held: a message compressed, each piece the deflater gives
 * a frame.  CORIO_ENOMEM before any frame: send it plain instead. */
#define NOT_STARTED 1 /* send_deflated: nothing fed nor sent, for want of memory */

static int send_deflated(corio_ws *ws, unsigned opcode, const uint8_t *data, size_t len) {
    size_t cap = ws->o.fragment_size < 16384 ? ws->o.fragment_size : 16384;
    if (cap < CORIO__WS_DEFLATE_READ_MIN)
        cap = CORIO__WS_DEFLATE_READ_MIN;
    if (!ws->sbuf) {
        if (!(ws->sbuf = malloc(cap)))
            return NOT_STARTED;
        ws->sbuf_cap = cap;
    }
    int rc = corio__ws_deflate_feed(&ws->pmd, data, len, true);
    if (rc)
        return rc == CORIO_ENOMEM ? NOT_STARTED : rc;
    bool first = true, fin = false;
    while (!fin) {
        size_t n;
        rc = corio__ws_deflate_read(&ws->pmd, ws->sbuf, ws->sbuf_cap, &n, &fin);
        if (rc)
            return broken(ws, rc);
        if (n == 0 && !fin)
            continue;
        unsigned flags = (fin ? CORIO__WS_FIN : 0) | (first ? CORIO__WS_RSV1 : 0);
        rc = write_frame(ws, flags, first ? opcode : CORIO__WS_CONT, ws->sbuf, n);
        if (rc == 0 && !fin)
            rc = flush_pending(ws);
        if (rc)
            return rc;
        first = false;
    }
    free(ws->sbuf); /* held only while a message is sent */
    ws->sbuf = NULL;
    ws->sbuf_cap = 0;
    return 0;
}

int corio_ws_send(corio_ws *ws, corio_ws_type type, const void *data, size_t len) {
    if (!ws || (type != CORIO_WS_TEXT && type != CORIO_WS_BINARY) || (!data && len))
        return CORIO_EINVAL;
    if (type == CORIO_WS_TEXT && corio__ws_utf8_check(data, len) != 0)
        return CORIO_EINVAL;
    if (ws->fail || ws->close_sent || ws->closed)
        return CORIO_ECLOSED;
    int rc = corio_lock_acquire(&ws->send_lock);
    if (rc)
        return rc;
    if (ws->fail || ws->close_sent) { /* while we waited */
        corio_lock_release(&ws->send_lock);
        return CORIO_ECLOSED;
    }
    unsigned opcode = type == CORIO_WS_TEXT ? CORIO__WS_TEXT : CORIO__WS_BINARY;
    rc = flush_pending(ws);
    if (rc == 0 && ws->pmd_on && corio__ws_deflate_wanted(&ws->pmd, len)) {
        rc = send_deflated(ws, opcode, data, len);
        if (rc == NOT_STARTED)
            rc = send_plain(ws, opcode, data, len);
    } else if (rc == 0) {
        rc = send_plain(ws, opcode, data, len);
    }
    if (rc) {
        /* A message cut short cannot be resumed: its frames are half out,
         * so nothing may follow (broken before the lock goes to anyone). */
        broken(ws, rc);
        corio_lock_release(&ws->send_lock);
        return rc;
    }
    rc = unlock_send(ws);
    return rc ? broken(ws, rc) : 0;
}

int corio_ws_send_text(corio_ws *ws, const char *text) {
    return text ? corio_ws_send(ws, CORIO_WS_TEXT, text, strlen(text)) : CORIO_EINVAL;
}

int corio_ws_send_binary(corio_ws *ws, const void *data, size_t len) {
    return corio_ws_send(ws, CORIO_WS_BINARY, data, len);
}

int corio_ws_ping(corio_ws *ws, const void *data, size_t len) {
    if (!ws || len > CORIO__WS_CONTROL_MAX || (!data && len))
        return CORIO_EINVAL;
    if (ws->fail || ws->close_sent || ws->closed)
        return CORIO_ECLOSED;
    int rc = corio_lock_acquire(&ws->send_lock);
    if (rc)
        return rc;
    rc = ws->close_sent ? CORIO_ECLOSED : flush_pending(ws); /* ECLOSED after a failure */
    if (rc == 0)
        rc = write_frame(ws, CORIO__WS_FIN, CORIO__WS_PING, data, len);
    if (rc) {
        if (rc != CORIO_ECLOSED)
            broken(ws, rc);
        corio_lock_release(&ws->send_lock);
        return rc;
    }
    rc = unlock_send(ws);
    return rc ? broken(ws, rc) : 0;
}

/* ---- closing ------------------------------------------------------------------------------- */

/* Await: reads (and drops) until the peer's close or the close deadline. */
static void await_peer_close(corio_ws *ws) {
    corio_ws_part p;
    if (ws->part_mid || ws->receiver)
        return;
    ws->receiver = corio_current();
    while (next_piece(ws, &p) == 0) {
    }
    ws->receiver = NULL;
}

int corio_ws_close(corio_ws *ws, int code, const char *reason) {
    if (!ws || code < 0 || !corio__ws_close_code_valid((unsigned)code) ||
        (reason && corio__ws_utf8_check((const uint8_t *)reason, strlen(reason)) != 0))
        return CORIO_EINVAL;
    if (ws->close_sent || ws->closed)
        return 0;
    int rc = send_close(ws, (unsigned)code, reason);
    if (rc)
        return rc;
    await_peer_close(ws);
    return 0;
}

/* Await: after failing a peer that broke the protocol, its close frame
 * must reach it before the connection goes: closing a socket with unread
 * input resets it at once, and the reset can destroy what is still queued
 * for the peer.  So: half-close, then read and drop for a moment (at most
 * LINGER_MS and CORIO__WS_READ_MAX bytes at a time), as a lingering HTTP
 * close does. */
#define LINGER_MS 1000

void corio__ws_drop_input(corio_ws *ws, uint64_t ms, bool shutdown) {
    CORIO_WITH(corio_timeout_scope(ms)) {
        if (!shutdown || corio_stream_shutdown(ws->s) == 0) {
            size_t len;
            while (corio_stream_buffered(ws->s, &len), corio_stream_consume(ws->s, len),
                   corio_stream_fill(ws->s) >= 0) {
            }
        }
    }
}

void corio__ws_finish(corio_ws *ws, int code) {
    ws->part_mid = false; /* nobody holds pieces now: the rest of a message is dropped */
    if (!ws->close_sent && !ws->closed && !ws->fail) {
        if (corio_stream_draining(ws->s))
            code = CORIO__WS_CLOSE_GOING_AWAY;
        if (send_close(ws, (unsigned)code, NULL) == 0)
            await_peer_close(ws);
    } else if (ws->close_sent && !ws->closed) {
        await_peer_close(ws);
    }
    ws->zfeeding = false; /* a message's compressed input goes with the rest */
    let_go(ws);
    if (ws->failed_peer) {
        corio__ws_drop_input(ws, LINGER_MS, true);
    } else if (!ws->reset) { /* what is queued (our close, its echo) goes out first */
        CORIO_WITH(corio_timeout_scope(ws->o.close_timeout_ms)) {
            (void)corio_stream_drain(ws->s);
        }
    }
    if (ws->pmd_on)
        corio__ws_pmd_release(&ws->pmd);
    release_message(ws);
    free(ws->zout);
    free(ws->sbuf);
    ws->zout = ws->sbuf = NULL;
    (void)corio__stream_swap_read_timeout(ws->s, ws->saved_read_timeout);
}

/* ---- what a WebSocket says about itself ---------------------------------------------------- */

int corio_ws_close_code(const corio_ws *ws) {
    return ws ? ws->close_code : 0;
}

const char *corio_ws_subprotocol(const corio_ws *ws) {
    return ws ? ws->subprotocol : NULL;
}

bool corio_ws_compressed(const corio_ws *ws) {
    return ws && ws->pmd_on;
}

size_t corio_ws_memory(const corio_ws *ws) {
    if (!ws)
        return 0;
    return sizeof *ws + ws->msg.cap + (ws->zout ? CORIO__WS_ZOUT : 0) + ws->sbuf_cap +
           (ws->pmd_on ? corio__ws_pmd_bytes(&ws->pmd) : 0);
}
