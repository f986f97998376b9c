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

/* What a handler returns (through corio_conn_idle) to keep its connection
 * open with no task at all while it waits for the peer: the task ends and its
 * stack goes back to the pool; when bytes (or the end of input) arrive, the
 * server runs the handler again, in a new task, on the same stream with what
 * it had buffered.  An idle connection then costs only its socket and stream
 * (well under 1 KiB plus kernel buffers).  Protocols with requests (HTTP
 * keep-alive) use it between requests; state to keep goes in
 * corio_stream_data(). */
#define CORIO_CONN_IDLE 1

/* Returns CORIO_CONN_IDLE, for `return corio_conn_idle(s, 5000);`: the
 * connection is closed if nothing arrives within timeout_ms (0: no limit),
 * and at once if the server shuts down.  CORIO_EINVAL for a stream no
 * server accepted. */
int corio_conn_idle(corio_stream *s, uint64_t timeout_ms);

/* True once the server that accepted s has begun shutting down: a protocol
 * should finish the request in hand and close (HTTP answers it with
 * "Connection: close").  False for streams not from a server. */
bool corio_stream_draining(const corio_stream *s);

typedef struct corio_server_opts {
    const char *host;         /* IPv4 or IPv6 literal; NULL: "127.0.0.1" */
    uint16_t port;            /* 0: any free port (see corio_server_port) */
    const char *unix_path;    /* listen on this Unix socket instead of TCP */
    int inherited_fd;         /* >= 3: an already listening socket (systemd
                                 LISTEN_FDS); host/port/unix_path ignored */
    bool reuseport;           /* SO_REUSEPORT, so several processes share a port */
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
