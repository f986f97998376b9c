/* SPDX-License-Identifier: MIT */
/* The WebSocket connection (corio/websocket.h): its record, shared by
 * conn.c (messages, control frames, the close handshake, keep-alive) and
 * server.c (the opening handshake, the scope).  The wire format is
 * frame.h's, compression deflate.h's, the handshake's pure parts
 * handshake.h's.
 */
#ifndef CORIO_WS_INTERNAL_H
#define CORIO_WS_INTERNAL_H

#include "corio/stream.h"
#include "corio/sync.h"
#include "corio/websocket.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/utf8.h"

/* Inflated bytes handed out per piece of a compressed message. */
#define CORIO__WS_ZOUT 16384
/* The read buffer's limit: payloads are read through it in pieces. */
#define CORIO__WS_READ_MAX (64 * 1024)

struct corio_ws {
    /* (in this order: no padding between the fields) */
    corio_stream *s;
    const char *subprotocol;
    uint64_t saved_read_timeout; /* the stream's, put back at the end */
    corio_task *receiver;        /* the task inside a receive call, or NULL */
    uint64_t got;                /* payload bytes of h taken so far */
    size_t unconsumed;           /* read-buffer bytes handed out by the last piece */
    uint64_t msg_wire;           /* payload bytes of the message on the wire */
    uint64_t msg_len;            /* ... and after decompression */
    uint8_t *zout;               /* inflated bytes, CORIO__WS_ZOUT */
    size_t zfed;                 /* bytes fed to the inflater (consumed once taken) */
    uint64_t last_rx;            /* corio_now() when bytes last came */
    uint64_t pong_due;           /* a keep-alive ping's deadline, 0: none outstanding */
    /* the receiver's wait, while it waits: its task and own timeout scope */
    corio_task *wait_task;
    corio_scope *wait_scope;
    uint64_t close_deadline;
    uint8_t *sbuf; /* send scratch: compressed pieces */
    size_t sbuf_cap;
    size_t charged; /* bytes of msg counted in the thread's receive budget */
    corio__ws_rules rules;
    corio_lock send_lock;
    corio__ws_header h;
    corio__ws_buf msg; /* corio_ws_receive's message */
    corio_ws_opts o;   /* defaults applied; subprotocols borrowed */
    corio__ws_pmd pmd;
    corio__ws_role role;
    corio_ws_type msg_type;
    int close_code;
    int fail; /* sticky: what every call returns once the WebSocket failed */
    bool pmd_on;
    bool in_message;     /* frame order: inside a fragmented message */
    bool in_frame;       /* h is the frame whose payload is being read */
    bool part_mid;       /* corio_ws_receive_part is inside a message */
    bool msg_compressed; /* RSV1 on the message's first frame */
    bool msg_first;      /* the next piece is the message's first */
    corio__ws_utf8 utf8;
    bool zfeeding; /* payload bytes fed to the inflater, not all taken */
    /* control frames waiting for the send lock's holder */
    bool pong_pending, ping_pending;
    uint8_t pong_len;
    /* closing */
    bool close_sent, close_received, closed;
    bool failed_peer; /* we closed it for breaking the protocol */
    bool reset;       /* its close will be a reset: nothing more to wait for */
    bool pinned;      /* the read buffer is pinned: a piece or zlib's input lies in it */
    bool msg_partial; /* corio_ws_receive was cut inside a message: ws->msg holds its start */
    bool trimmed;     /* idle: the receiver gave back its dead stack pages */
    uint8_t ctl[CORIO__WS_CONTROL_MAX];
    uint8_t pong[CORIO__WS_CONTROL_MAX];
};

/* Readies ws (zeroed, s and role set) with options o (NULL: defaults;
 * copied).  Returns 0 or CORIO_EINVAL for options out of range. */
int corio__ws_init(corio_ws *ws, const corio_ws_opts *o);

/* Starts permessage-deflate with what the handshake agreed. */
int corio__ws_start_deflate(corio_ws *ws, bool server_no_ctx, bool client_no_ctx,
                            uint8_t server_bits, uint8_t client_bits);

/* The connection starts: the stream's options for WebSocket reads. */
void corio__ws_open(corio_ws *ws);

/* Await: reads and drops what the peer sends, for at most ms, until its
 * input ends (after half-closing ours when `shutdown`): a lingering close,
 * or a client waiting for the server to close first. */
void corio__ws_drop_input(corio_ws *ws, uint64_t ms, bool shutdown);

/* Await: the end of a WebSocket's life on its stream: a close (`code`)
 * unless one was sent or the connection failed, the bounded wait for the
 * peer's, and every buffer and compression state freed (ws itself is the
 * caller's).  The stream stays open. */
void corio__ws_finish(corio_ws *ws, int code);

#endif
