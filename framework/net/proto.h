/* SPDX-License-Identifier: MIT */
/* The stream interface of protocol layers (HTTP today; the HTTP client, the
 * proxy and WebSocket next): what a protocol needs of a stream beyond
 * corio/stream.h, without its fields (struct corio_stream stays private to
 * net/, see stream_internal.h).
 *
 * Every call is a plain function call on the loop's thread, none waits, and
 * none allocates; s is borrowed.  Implemented in stream.c (pinning and the
 * input probes) and proto.c (the rest).
 */
#ifndef CORIO_NET_PROTO_H
#define CORIO_NET_PROTO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "corio/stream.h"

/* ---- reading ---------------------------------------------------------------------------- */

/* Pins the read buffer: while pinned, bytes already buffered never move
 * (no compaction, no growth), so pointers into them stay valid across
 * awaits; reading ahead stops when the space after them is full.  Unpinning
 * resumes it. */
void corio__stream_pin(corio_stream *s, bool pin);

/* Whether a read would return at once: bytes buffered (for TLS, ciphertext
 * pending too) or the end of input seen. */
bool corio__stream_has_input(const corio_stream *s);

/* corio__stream_has_input, or the kernel holds bytes (or the end of input)
 * for s that libuv has not read yet: whether a read would find something
 * without waiting for the peer.  Peeks at the socket; never blocks. */
bool corio__stream_input_pending(const corio_stream *s);

/* Whether the peer's input has ended or failed (a read would return
 * CORIO_EOF or the error once the buffer is empty). */
bool corio__stream_input_finished(const corio_stream *s);

/* Called on the loop's stack when the end of the peer's input (EOF or an
 * error, in err) is seen while no task waits to read: how a protocol
 * notices a peer that went away while a request is being handled. */
typedef void corio__stream_input_end_cb(corio_stream *s, int err, void *data);

/* Sets (cb != NULL) or clears (cb NULL) the stream's input-end callback;
 * data is borrowed until it is cleared. */
void corio__stream_on_input_end(corio_stream *s, corio__stream_input_end_cb *cb, void *data);

/* A scoped override of the read timeout: sets the stream's read timeout to
 * ms (0: none) and returns the one it replaces, which the caller puts back
 * with a second call when its scope ends (unless the stream was closed
 * meanwhile). */
uint64_t corio__stream_swap_read_timeout(corio_stream *s, uint64_t ms);

/* ---- writing ---------------------------------------------------------------------------- */

/* Whether s is still writable: 0, or the sticky write error, or
 * CORIO_ECLOSED once it is closing (its descriptor may be gone). */
int corio__stream_write_error(const corio_stream *s);

/* Not an await: queues iov's bytes (a few, e.g. a WebSocket's pong) behind
 * what is queued, without waiting for the queue to fall below the
 * high-water mark, for a protocol that must not stop reading while its
 * peer is slow to read.  The caller sees to it that no other write of s is
 * half done (a frame cut in two).  Returns 0, the sticky write error,
 * CORIO_EPIPE after a shutdown, CORIO_ECLOSED while closing, CORIO_ENOMEM,
 * or CORIO_ENOTSUP on a TLS stream (records are sealed by a writer: use
 * corio_stream_writev). */
int corio__stream_write_nowait(corio_stream *s, const struct iovec *iov, size_t n);

/* Whether a write on s failed because its own write timeout expired: the
 * peer stopped reading (not a deadline or cancel of the writing task). */
bool corio__stream_write_stalled(const corio_stream *s);

/* The stream's current options: its read and write timeouts and write
 * high-water mark (read_buffer_max is left 0: not reported). */
void corio__stream_get_opts(const corio_stream *s, corio_stream_opts *out);

/* ---- files ------------------------------------------------------------------------------- */

/* Whether s can take file bytes with corio__stream_sendfile: a plain
 * stream with a socket descriptor.  Otherwise (TLS: the kernel would send
 * the file unencrypted) the protocol copies the file through
 * corio_stream_write: the fallback. */
bool corio__stream_can_sendfile(const corio_stream *s);

/* One sendfile() of up to len bytes of fd at offset off straight to s's
 * socket, without waiting: call it only when nothing is queued on the
 * stream (after corio_stream_drain), or the file would overtake queued
 * bytes.  Returns the bytes sent (> 0), 0 when the file ends at off,
 * CORIO_EAGAIN when the socket is full (write through the stream, which
 * knows how to wait), CORIO_ECLOSED when s has no descriptor, or another
 * negative errno of sendfile() (-EINTR: try again). */
ssize_t corio__stream_sendfile(corio_stream *s, int fd, uint64_t off, size_t len);

#endif
