/* SPDX-License-Identifier: MIT */
/* corio/websocket.h — WebSocket (RFC 6455, with permessage-deflate, RFC
 * 7692) as awaitable messages, asyncio-style:
 *
 *     static int echo(corio_req *req, corio_res *res, void *arg) {
 *         corio_ws *ws;
 *         int rc;
 *         CORIO_WITH_RC(rc, corio_ws_accept(req, res, &ws, NULL)) {
 *             corio_ws_msg m;
 *             while ((rc = corio_ws_receive(ws, &m)) == 0)
 *                 if ((rc = corio_ws_send(ws, m.type, m.data, m.len)) != 0)
 *                     break;
 *         }
 *         return 0;   // the peer closed, or broke the protocol (told): no failure of ours
 *     }
 *
 * corio_ws_accept is a scoped resource (Python's `async with`): its enter
 * checks the request's opening handshake and switches the connection over
 * (101), or answers the request itself (400, or 426 for another protocol
 * version) and fails; its exit closes the WebSocket on every way out (close
 * code 1000 after a normal end, 1011 after a failure, 1001 while the server
 * drains), waits a bounded time for the peer's close, and frees it.  The
 * handler then returns and the server closes the TCP connection.
 *
 * Tasks.  One task receives at a time (CORIO_EBUSY for a second); several
 * may send at once: each message goes out whole, never interleaved with
 * another (a lock inside), and a control frame the receiver must send (a
 * pong, a close) goes out between two frames of a long message rather than
 * after it.  Pongs, keep-alive pings and the answer to the peer's close
 * are sent while a task is inside corio_ws_receive: a handler keeps one
 * receiving.  A task other than the handler's may use ws only inside the
 * handler's scope (a task group inside the CORIO_WITH, say).
 *
 * Errors.  Every call returns 0 or a negative CORIO_E* code.  A peer that
 * breaks the protocol is sent the close code RFC 6455 gives (1002, 1007,
 * 1009) and the call returns CORIO_EBADMSG (CORIO_ERANGE for 1009); after
 * any of those, and after CORIO_ECLOSED, the WebSocket is closed and every
 * call returns CORIO_ECLOSED.
 */
#ifndef CORIO_WEBSOCKET_H
#define CORIO_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "http.h"
#include "http_client.h"
#include "resource.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_ws corio_ws;

/* A data message's type. */
typedef enum corio_ws_type {
    CORIO_WS_TEXT = 1,   /* UTF-8 (checked both ways) */
    CORIO_WS_BINARY = 2, /* bytes */
} corio_ws_type;

/* ping_interval_ms: no keep-alive pings. */
#define CORIO_WS_NO_PING UINT64_MAX

/* Options (NULL or zeroed fields: the defaults; copied, but for the
 * subprotocols).  Out of range (CORIO_EINVAL): ping_interval_ms or
 * ping_timeout_ms over 24 h (but CORIO_WS_NO_PING), fragment_size over
 * 1 GiB, close_timeout_ms over 30 s, deflate_window_bits outside 9..15,
 * deflate_level outside 0..9. */
typedef struct corio_ws_opts {
    /* Subprotocols the server speaks, most preferred first: the first one
     * the client offers is chosen (corio_ws_subprotocol), none if it offers
     * none of them; a client offers them in this order.  Borrowed (the
     * array and its strings): they must outlive the WebSocket. */
    const char *const *subprotocols;
    size_t nsubprotocols;
    /* A message longer than this (after decompression) is refused: close
     * 1009, CORIO_ERANGE.  0: 1 MiB. */
    size_t max_message;
    /* max_message bounds one connection; this bounds what many hold
     * together, whatever their peers send (a few KiB compressed inflate to
     * max_message).  The bytes all of this thread's WebSockets may hold at
     * once in corio_ws_receive's message buffers beyond the first 64 KiB
     * of each (the message being received, and the last one until the next
     * receive; a buffer grows by doubling while the budget has room, else
     * 64 KiB at a time).  A message that would need more than is left is
     * refused: the receive returns CORIO_EAGAIN and the peer gets close
     * 1013 (try again later).  The connection growing its message applies its own
     * value.  0: 256 MiB. */
    size_t receive_budget;
    /* Messages longer than this are sent as several frames.  0: 64 KiB. */
    size_t fragment_size;
    /* A ping after this long with nothing received; 0: 20 s;
     * CORIO_WS_NO_PING: none. */
    uint64_t ping_interval_ms;
    /* ... and nothing received within this long after it: the peer is gone
     * (receive returns CORIO_ETIMEDOUT, the connection is reset).  0: 20 s. */
    uint64_t ping_timeout_ms;
    /* How long a close waits for the peer's close.  0: 5 s; at most 30 s. */
    uint64_t close_timeout_ms;
    /* permessage-deflate: accepted when the client offers it (a client
     * offers it).  A connection's compression state, from its first
     * compressed message on: about 39 KiB to compress and 11 KiB to
     * decompress with the default window (12 bits, as Python's websockets;
     * 15 bits: 262 and 39 KiB). */
    bool deflate;
    /* ... with no context takeover either way: no compression state held
     * between messages (shared per thread while one is compressed), at
     * some cost in ratio. */
    bool deflate_no_context_takeover;
    uint8_t deflate_window_bits; /* 9..15, both ways; 0: 12 */
    int deflate_level;           /* 1..9; 0: zlib's default (6) */
    size_t deflate_min_size;     /* shorter messages are sent uncompressed; 0: 128 */
} corio_ws_opts;

/* A scoped resource for CORIO_WITH_RC, inside a route handler: its enter
 * checks the request's opening handshake (RFC 6455 4.2.1: GET, HTTP/1.1,
 * "Upgrade: websocket", "Connection: upgrade", "Sec-WebSocket-Version: 13",
 * a valid Sec-WebSocket-Key), chooses a subprotocol and permessage-deflate
 * from opts (NULL: the defaults; copied), sends the 101 (with the fields
 * set by corio_res_header before it), and sets *out, valid inside the
 * scope.  A request that is not a valid handshake is answered by the enter
 * (400; 426 with "Sec-WebSocket-Version: 13" for another version) and the
 * enter returns CORIO_EINVAL: the handler then just returns.  Other enter
 * errors: CORIO_EINVAL for bad opts or arguments (answered 500 by the
 * server), CORIO_EALREADY if a response was started, CORIO_ENOMEM, write
 * errors.  The exit: see the top of this file. */
corio_resource corio_ws_accept(corio_req *req, corio_res *res, corio_ws **out,
                               const corio_ws_opts *opts);

/* A scoped resource for CORIO_WITH_RC: the client's side.  Its enter
 * connects to url (ws://host[:port]/path or wss://..., through client:
 * its DNS, TLS settings and timeouts; NULL: a client of its own for the
 * handshake), sends the opening handshake (a key from a CSPRNG; the
 * subprotocols in opts offered in order; permessage-deflate offered when
 * opts->deflate), checks the server's 101 (Sec-WebSocket-Accept, a
 * subprotocol and extension parameters it was offered) and sets *out,
 * valid inside the scope; the connection is then the WebSocket's, outside
 * the client's pool and limits.  Enter errors: CORIO_EINVAL (bad url or
 * opts), CORIO_ENOTSUP (another scheme), CORIO_EBADMSG (the server
 * answered with another status, or a 101 that breaks the handshake), and
 * those of corio_http_open (DNS, connect, TLS, timeouts).  The exit closes
 * as the server's does, then waits (close_timeout) for the server to close
 * the TCP connection (RFC 6455 7.1.1) and closes it. */
corio_resource corio_ws_connect(corio_http_client *client, const char *url, corio_ws **out,
                                const corio_ws_opts *opts);

/* A received message.  data is borrowed until the next receive on the
 * WebSocket; a text message is followed by a NUL (not counted in len). */
typedef struct corio_ws_msg {
    corio_ws_type type;
    const void *data;
    size_t len;
} corio_ws_msg;

/* Await: the next whole message (fragments joined, decompressed, text
 * checked as UTF-8 as it arrives).  Answers pings, sends keep-alive pings,
 * and answers the peer's close while it waits.  Returns 0 and *msg;
 * CORIO_ECLOSED when the WebSocket closed (the peer's close, answered, or
 * ours completed; corio_ws_close_code says which code); CORIO_EBADMSG or
 * CORIO_ERANGE (see the top); CORIO_EOF when the connection ended without
 * a close (code 1006); CORIO_ETIMEDOUT when a keep-alive ping got no answer
 * (or a deadline of the caller's passed: then ws stays usable, and the
 * next call goes on where this one stopped); CORIO_EAGAIN when the
 * thread's receive budget cannot hold the message (close 1013, see
 * corio_ws_opts); CORIO_ENOMEM (close 1011); CORIO_ECANCELED;
 * CORIO_EBUSY if another task is receiving; CORIO_EINVAL for NULL
 * arguments or inside a message being read with corio_ws_receive_part. */
int corio_ws_receive(corio_ws *ws, corio_ws_msg *msg);

/* A piece of a message, for messages too large to hold: part->data is
 * borrowed until the next receive call. */
typedef struct corio_ws_part {
    corio_ws_type type;
    const void *data;
    size_t len;  /* may be 0 (an empty message or frame) */
    bool first;  /* the message's first piece */
    bool last;   /* ... its last */
} corio_ws_part;

/* Await: the next piece of the current (or next) message, as its frames
 * arrive: at most the read buffer's worth (64 KiB) is read ahead of the
 * caller, and nothing more until it asks for the next piece
 * (backpressure).  Text pieces may end inside a character
 * (the message as a whole is checked).  max_message still applies to the
 * message.  Returns as corio_ws_receive; CORIO_EINVAL also after a
 * corio_ws_receive cut short inside a message (it holds the message's
 * start: finish it with corio_ws_receive). */
int corio_ws_receive_part(corio_ws *ws, corio_ws_part *part);

/* Await: sends a message (len bytes of data, borrowed until the call
 * returns), compressed when negotiated and worth it, in frames of
 * fragment_size.  Waits only while the socket's send buffer is full (its
 * high-water mark) or another task is sending.  Returns 0; CORIO_EINVAL
 * for a bad type, NULL data with len > 0, or text that is not UTF-8;
 * CORIO_ECLOSED once a close was sent or received; write errors
 * (CORIO_EPIPE, CORIO_ECONNRESET, CORIO_ETIMEDOUT: the peer stopped
 * reading), CORIO_ECANCELED (a message cut short closes the connection:
 * its frames cannot be resumed). */
int corio_ws_send(corio_ws *ws, corio_ws_type type, const void *data, size_t len);
int corio_ws_send_text(corio_ws *ws, const char *text); /* strlen(text) bytes */
int corio_ws_send_binary(corio_ws *ws, const void *data, size_t len);

/* Await: sends a ping with up to 125 bytes of data (its pong is taken by
 * the receiving task).  Returns as corio_ws_send, CORIO_EINVAL over 125. */
int corio_ws_ping(corio_ws *ws, const void *data, size_t len);

/* Await: starts the close handshake: sends a close frame with `code`
 * (1000-1003, 1007-1014, 3000-4999) and a reason (NULL or UTF-8, cut to
 * fit 123 bytes).  If no task is receiving, it then waits (close_timeout
 * at most) for the peer's close, dropping data that still arrives.
 * Returns 0 (also if already closing: the first close counts), CORIO_EINVAL
 * for a code that may not be sent, write errors. */
int corio_ws_close(corio_ws *ws, int code, const char *reason);

/* The close code: the peer's once its close frame arrived (1005 if it had
 * none), 1006 when the connection ended without one, 0 while open. */
int corio_ws_close_code(const corio_ws *ws);

/* The subprotocol chosen, or NULL. */
const char *corio_ws_subprotocol(const corio_ws *ws);

/* Whether permessage-deflate was negotiated. */
bool corio_ws_compressed(const corio_ws *ws);

/* Bytes the WebSocket holds now beyond its stream: its own record, buffers
 * and compression state (what 10,000 idle WebSockets cost). */
size_t corio_ws_memory(const corio_ws *ws);

/* Bytes of the calling thread's receive budget in use now (see
 * corio_ws_opts.receive_budget). */
size_t corio_ws_receive_budget_used(void);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_WEBSOCKET_H */
