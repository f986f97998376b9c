/* SPDX-License-Identifier: MIT */
/* corio/stream.h — awaitable byte streams over TCP and Unix sockets
 * (asyncio's StreamReader/StreamWriter), and the TCP client (in one step,
 * or as a lookup and a connect, for a caller that caches DNS answers).
 *
 * Reading.  A stream owns a read buffer that exists only while it holds
 * bytes: an idle connection waiting for input holds none (it is allocated
 * when bytes arrive and given back once they are consumed).  Bytes are read
 * from the socket only while the buffer is below its limit
 * (read_buffer_max); then reading pauses until the task consumes some, so a
 * fast sender can never make the stream buffer without bound.
 *
 * Writing.  corio_stream_write() first tries to write directly to the socket
 * (uv_try_write) and suspends only when the kernel buffer is full: what is
 * left is copied and queued, and the call waits while more than
 * write_high_water bytes are queued, so a slow reader can never make the
 * server buffer without bound.  The caller's buffer may live on its stack.
 *
 * Every call marked "Await" honours the task's cancellation and deadlines
 * (task.h), plus the stream's own read/write timeouts: a read or a write that
 * makes no progress for that long fails with CORIO_ETIMEDOUT.
 *
 * A stream belongs to one task at a time.  One reader and one writer may wait
 * at once (a second task reading, or writing, while another waits to do the
 * same gets CORIO_EBUSY).
 */
#ifndef CORIO_STREAM_H
#define CORIO_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "error.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_stream corio_stream;

/* Limits and timeouts of a stream; 0 in any field means the default. */
typedef struct corio_stream_opts {
    size_t read_buffer_max;    /* default 64 KiB */
    size_t write_high_water;   /* default 64 KiB */
    uint64_t read_timeout_ms;  /* default: none */
    uint64_t write_timeout_ms; /* default: none */
} corio_stream_opts;

/* Applies opts (NULL: defaults) to the stream. */
void corio_stream_configure(corio_stream *s, const corio_stream_opts *opts);

/* Await: reads at least one byte, at most `len`, into buf.  Returns the count,
 * CORIO_EOF once the peer has closed its side and the buffer is empty,
 * CORIO_ECONNRESET and other socket errors, CORIO_ETIMEDOUT,
 * CORIO_ECANCELED, CORIO_ECLOSED after close, CORIO_EBUSY if another task is
 * reading.  len is capped at INT_MAX. */
int corio_stream_read(corio_stream *s, void *buf, size_t len);

/* Await: reads exactly n bytes.  Returns 0, or CORIO_EOF if the stream ended
 * first (the partial bytes were consumed), or read's errors. */
int corio_stream_read_exactly(corio_stream *s, void *buf, size_t n);

/* Await: reads up to and including the first occurrence of delim (dlen >= 1
 * bytes) into buf (capacity cap), sets *out_len.  Returns 0; CORIO_ERANGE
 * when no delimiter is found within min(cap, read_buffer_max) bytes (nothing
 * is consumed); CORIO_EOF if the stream ended before a delimiter (nothing is
 * consumed); read's errors. */
int corio_stream_read_until(corio_stream *s, const void *delim, size_t dlen, void *buf, size_t cap,
                            size_t *out_len);

/* Zero-copy reading, for parsers that work in place.
 * corio_stream_buffered: the bytes buffered now (borrowed; valid until the
 * next await or consume on this stream).  corio_stream_fill: Await until more
 * bytes are buffered; returns the number added, CORIO_EOF, CORIO_ERANGE when
 * the buffer is at read_buffer_max, or read's errors.  corio_stream_consume:
 * drops n (<= buffered) bytes from the front. */
const char *corio_stream_buffered(corio_stream *s, size_t *len);
int corio_stream_fill(corio_stream *s);
void corio_stream_consume(corio_stream *s, size_t n);

/* Await: writes all len bytes (see the top of this file).  Returns 0,
 * CORIO_EPIPE / CORIO_ECONNRESET and other socket errors (the stream is then
 * unusable for writing), CORIO_ETIMEDOUT, CORIO_ECANCELED (bytes may have
 * been queued; the stream should then be closed), CORIO_ECLOSED,
 * CORIO_EBUSY if another task is waiting to write (nothing was queued). */
int corio_stream_write(corio_stream *s, const void *buf, size_t len);

/* Await: writes the buffers in order, as one write where the kernel allows.
 * At most 1 GiB in all per call (CORIO_EINVAL beyond; corio_stream_write
 * has no such limit). */
int corio_stream_writev(corio_stream *s, const struct iovec *iov, size_t n);

/* Await: waits until every queued byte has been handed to the kernel.  */
int corio_stream_drain(corio_stream *s);

/* Await: half-close: sends FIN after the queued bytes; reading goes on.
 * Returns 0, a socket error or CORIO_ENOMEM. */
int corio_stream_shutdown(corio_stream *s);

/* Await: closes the stream and frees it, after libuv's close callback and
 * every pending request callback have run.  Queued bytes not yet written are
 * dropped.  Always ends with s freed, also when the await is cancelled
 * (the memory is then freed by the callback a little later); returns 0 or
 * CORIO_ECANCELED/CORIO_ETIMEDOUT if the wait was cut short.  Do not use s
 * afterwards.  Connections from a server are closed by the server: do not
 * close those yourself. */
int corio_stream_close(corio_stream *s);

/* Makes the close of s abortive, for a peer that must not be waited for (it
 * stopped reading, the exchange is broken): when s is closed (by
 * corio_stream_close, or by its server once the handler returns) a TCP peer
 * gets a reset (RST) instead of a FIN, what the kernel still holds for it is
 * dropped at once rather than trickled out after the close, and TLS sends no
 * close_notify.  Other kinds of stream close as usual.  A pending
 * corio_stream_shutdown makes it a FIN after all. */
void corio_stream_set_reset_on_close(corio_stream *s);

/* The peer's and our address as "1.2.3.4:80", "[::1]:80" or the socket path.
 * Return 0, CORIO_ENOTSUP for a stream without addresses, CORIO_ERANGE when
 * len is too small. */
int corio_stream_peer_name(corio_stream *s, char *buf, size_t len);
int corio_stream_local_name(corio_stream *s, char *buf, size_t len);

/* For protocols with requests: marks the stream idle (between requests) or
 * busy.  A server shutting down (corio_server_shutdown) ends the wait of
 * idle connections at once and lets busy ones finish: marked inside a scope
 * of the task's own (the wait for the next request), that innermost scope is
 * cancelled (its await returns CORIO_ECANCELED, the task goes on and should
 * check corio_stream_draining (server.h) and close); marked at the task's
 * top level, the task is cancelled with reason shutdown.  Unmark before
 * leaving the scope it was marked in. */
void corio_stream_set_idle(corio_stream *s, bool idle);

/* A slot for the stream's user (the application's per-connection data);
 * NULL at first, never touched by corio.  A protocol's state that must
 * survive parking lives in corio_conn_state (server.h). */
void **corio_stream_data(corio_stream *s);

/* Bytes queued for writing and not yet handed to the kernel. */
size_t corio_stream_write_queued(const corio_stream *s);

/* One socket address (IPv4 or IPv6, port included): sa holds len bytes of
 * a struct sockaddr_in or sockaddr_in6.  A plain value, to copy and keep;
 * corio_resolve zeroes the bytes past len, so its answers compare with
 * memcmp. */
typedef struct corio_addr {
    struct sockaddr_storage sa;
    socklen_t len;
} corio_addr;

/* Await: resolves host (a name, or an IPv4 or IPv6 literal) for TCP to
 * port, with libuv's async getaddrinfo (AF_UNSPEC, SOCK_STREAM,
 * AI_ADDRCONFIG), into out[0..cap): the distinct addresses in getaddrinfo's
 * order, the first cap of them.  out is borrowed for the call; *n is set
 * (0 on any failure).  The lookup outlives a waiter that gives up (its
 * answer is then dropped).  Returns 0 with *n >= 1, CORIO_ENOTFOUND (or
 * another libuv UV_EAI_* code) when the name does not resolve,
 * CORIO_ETIMEDOUT (a deadline of the task's), CORIO_ECANCELED, CORIO_EINVAL
 * (a NULL pointer, cap 0), CORIO_ENOMEM. */
int corio_resolve(const char *host, uint16_t port, corio_addr *out, size_t cap, size_t *n);

/* Await: connects over TCP (no Nagle delay) to addrs[0], then each next
 * address while the previous one fails, until one connects.  addrs is
 * borrowed for the call.  timeout_ms bounds the whole (0: no bound beyond
 * the task's deadlines); a timeout ends the call, it does not move on to the
 * next address.  *out is a new stream to close with corio_stream_close()
 * (NULL on failure).  Returns 0, the socket error of the last address tried
 * (CORIO_ECONNREFUSED, CORIO_EHOSTUNREACH...), CORIO_ETIMEDOUT,
 * CORIO_ECANCELED, CORIO_EINVAL (a NULL pointer, n 0, an address that is not
 * a whole IPv4 or IPv6 one: checked before any is tried), CORIO_ENOMEM. */
int corio_connect_addrs(corio_stream **out, const corio_addr *addrs, size_t n, uint64_t timeout_ms);

/* Await: connects to host:port over TCP: corio_resolve (every distinct
 * address), then corio_connect_addrs.  timeout_ms bounds the whole, lookup
 * included (0: no bound beyond the task's deadlines).  *out is a new stream
 * to close with corio_stream_close().  Returns 0, CORIO_ENOTFOUND (or
 * another libuv UV_EAI_* code) when the name does not resolve, the socket
 * error of the last address tried (CORIO_ECONNREFUSED,
 * CORIO_EHOSTUNREACH...), CORIO_ETIMEDOUT, CORIO_ECANCELED, CORIO_EINVAL,
 * CORIO_ENOMEM. */
int corio_connect(corio_stream **out, const char *host, uint16_t port, uint64_t timeout_ms);

/* Await: connects to a Unix domain socket at `path`.  Returns 0 and *out,
 * CORIO_EINVAL (NULL argument, or a path of 108 bytes or more: a socket
 * address cannot hold it), the socket error (CORIO_ENOENT,
 * CORIO_ECONNREFUSED...), CORIO_ECANCELED, CORIO_ETIMEDOUT. */
int corio_connect_unix(corio_stream **out, const char *path);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_STREAM_H */
