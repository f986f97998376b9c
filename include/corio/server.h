/* SPDX-License-Identifier: MIT */
/* corio/server.h — TCP and Unix-socket servers (asyncio.start_server).
 *
 * A server accepts connections in libuv's callbacks and runs the handler for
 * each in a task of its own, inside a connection scope: when the handler
 * returns — or fails, or is cancelled — the stream is closed and all its
 * memory returned.  The handler must not close or keep the stream.
 *
 * At max_conns open connections the server stops accepting (new connections
 * wait in the kernel's backlog) and resumes as connections end.  Running out
 * of file descriptors (EMFILE/ENFILE) never spins the CPU: libuv's reserve-fd
 * trick sheds the pending connection and accepting goes on once descriptors
 * free up.
 */
#ifndef CORIO_SERVER_H
#define CORIO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stream.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_server corio_server;

/* A connection handler: runs as its own task; its return value is logged at
 * debug level only.  `s` is borrowed for the handler's duration. */
typedef int (*corio_conn_fn)(corio_stream *s, void *arg);

/* ---- parking: a connection kept open with no task between exchanges ----
 *
 * A protocol with requests (HTTP keep-alive, later WebSocket) spends most
 * of a connection's life waiting for the peer.  Parked, the connection keeps
 * no task and no stack: only its socket, stream and this state (well under
 * 1 KiB plus kernel buffers).  The handler asks for it with corio_conn_park
 * and returns 0; the server then ends the task, watches the socket, and when
 * bytes (or the end of input) arrive runs the handler again, in a new task,
 * on the same stream with what it had buffered.  The resumed handler
 * continues from its corio_conn_state (corio_conn_resumed tells it that it
 * was parked) rather than starting the connection over. */

/* What a server keeps for each connection it accepted, for the connection's
 * protocol: zeroed when the connection is accepted, left as it is across
 * parking (and between the handler's runs), gone with the connection.  The
 * server reads idle_until and never touches proto. */
typedef struct corio_conn_state {
    /* Loop time (corio_now()) at which a parked connection is closed if
     * nothing has arrived; 0: no limit.  Set by corio_conn_park; on resume,
     * the end of the idle time the protocol granted (what is left of it is
     * idle_until - corio_now()). */
    uint64_t idle_until;
    /* The protocol's own word (HTTP: the requests served so far, for
     * max_requests).  The server neither reads nor frees it: a protocol
     * needing more keeps it elsewhere (a pointer here would leak when a
     * parked connection is closed). */
    uint64_t proto;
} corio_conn_state;

/* The state the server keeps for s (see corio_conn_state); NULL for a
 * stream no server accepted (such a stream cannot park).  Borrowed: valid
 * while the handler runs. */
corio_conn_state *corio_conn_state_of(corio_stream *s);

/* Whether the handler running on s was resumed from parking (false on the
 * connection's first run, and for streams no server accepted). */
bool corio_conn_resumed(const corio_stream *s);

/* Asks the server to park s when its handler returns 0, until loop time
 * `idle_until` (stored in the state; 0: no limit): the task ends and its
 * stack goes back to the pool, the connection stays open, and the handler
 * runs again (corio_conn_resumed true) when input arrives.  The connection
 * is closed instead — as if never asked — if the handler returns nonzero,
 * its task was cancelled, the server is draining, or the stream is closing;
 * a parked one is closed when idle_until passes with nothing arrived, and
 * at once when the server shuts down.  Call it just before returning: the
 * request is final for this run of the handler (return nonzero to close
 * instead).  Returns 0, or CORIO_EINVAL for a stream no server accepted or
 * a caller that is not the connection's own handler task. */
int corio_conn_park(corio_stream *s, uint64_t idle_until);

/* True once the server that accepted s has begun shutting down: a protocol
 * should finish the request in hand and close (HTTP answers it with
 * "Connection: close").  False for streams not from a server. */
bool corio_stream_draining(const corio_stream *s);

typedef struct corio_server_opts {
    const char *host;         /* IPv4 or IPv6 literal; NULL: "127.0.0.1" */
    uint16_t port;            /* 0: any free port (see corio_server_port) */
    const char *unix_path;    /* listen on this Unix socket instead of TCP (under
                                 108 bytes: CORIO_EINVAL otherwise) */
    int inherited_fd;         /* >= 3: an already listening socket (systemd
                                 LISTEN_FDS); host/port/unix_path ignored */
    /* SO_REUSEPORT, so several sockets share the port and the kernel
     * spreads connections among them: any socket of the same user with
     * SO_REUSEPORT can join, whichever process it is in (the server does
     * not check that the port is free; the runner does, see app.h).
     * false: the port is this server's alone (another bind fails). */
    bool reuseport;
    int backlog;              /* 0: 511 */
    size_t max_conns;         /* 0: no cap */
    size_t conn_stack_size;   /* 0: the loop's default */
    corio_stream_opts stream; /* limits and timeouts of each connection */
    /* A server TLS context (tls.h): every connection completes a TLS
     * handshake before the handler runs (a failed one is logged and closed
     * without calling the handler).  Borrowed: it must outlive the server.
     * NULL: plain TCP. */
    corio_tls_ctx *tls;
} corio_server_opts;

/* Starts listening and accepting; handler(stream, arg) runs per connection.
 * Callable from a task.  Returns 0, CORIO_EINVAL for bad options (opts.tls a
 * client context among them), the bind
 * or listen error (e.g. -EADDRINUSE), CORIO_ENOMEM, CORIO_ENOTASK.  `arg` is
 * borrowed; opts is copied. */
int corio_server_start(corio_server **out, const corio_server_opts *opts, corio_conn_fn handler,
                       void *arg);

/* The bound TCP port (useful with port 0), or a negative code for Unix
 * sockets. */
int corio_server_port(const corio_server *srv);

/* Connections open now. */
size_t corio_server_conns(const corio_server *srv);

/* Stops accepting (the listening socket is closed; connections go on).
 * Idempotent; callable from any code on the loop thread. */
void corio_server_stop(corio_server *srv);

/* Await: stops accepting, waits up to drain_ms for open connections to end,
 * cancels the rest (reason CORIO_CANCEL_SHUTDOWN), waits for them, and frees
 * the server.  Returns 0, or CORIO_ETIMEDOUT if connections had to be
 * cancelled (the server is freed either way). */
int corio_server_shutdown(corio_server *srv, uint64_t drain_ms);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_SERVER_H */
