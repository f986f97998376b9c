/* SPDX-License-Identifier: MIT */
/* corio/http_client.h — an HTTP/1.1 client for backend calls: requests as
 * futures, or as a scoped exchange that streams both bodies; a keep-alive
 * connection pool per origin; http://, https:// and Unix sockets.
 *
 * A request as a future (the body buffered, up to max_body):
 *
 *     corio_future *f;
 *     int rc = corio_http_request(client, &f, "GET", "http://127.0.0.1:9000/users/7",
 *                                 NULL, 0, NULL, 0);
 *     if (rc == 0 && (rc = corio_await(f)) == 0) {
 *         const corio_http_response *r = corio_future_value(f);  // f's: borrowed
 *         ... corio_http_response_status(r), corio_http_response_body(r, &len) ...
 *     }
 *     corio_future_release(f);                                  // frees r too
 *
 * Each such request runs in a task of its own, so a caller may start several
 * and corio_gather them under one corio_timeout_scope (section "Several
 * requests" below).  The future's cancel hook cancels that task: when the
 * await of it is cut short (the caller is cancelled, or a deadline of the
 * caller's passes: task.h's table) the request stops and its connection is
 * closed.
 *
 * A request as a scoped exchange (asyncio: `async with session.get(url) as
 * r`), in the calling task, streaming the response and, if asked, the
 * request body:
 *
 *     corio_http_exchange *x;
 *     corio_http_req rq = {.method = "PUT", .url = url,
 *                          .body_stream = true, .body_length = CORIO_HTTP_CHUNKED};
 *     CORIO_WITH_RC(rc, corio_http_open(client, &rq, &x)) {   // head sent
 *         while ((n = read_some(buf)) > 0)
 *             if ((rc = corio_http_write(x, buf, n)) < 0) break;
 *         if (rc == 0) rc = corio_http_write_end(x);
 *         const corio_http_response *r;
 *         if (rc == 0) rc = corio_http_response_head(x, &r);
 *         const char *p;
 *         while (rc == 0 && (n = corio_http_read(x, &p)) > 0)
 *             ... n bytes at p ...
 *     }   // the connection goes back to the pool only if the response was read
 *         // to its end on a connection both sides keep alive; else closed
 *
 * The client reads from the socket only as fast as corio_http_read is
 * called, and corio_http_write awaits the socket's backpressure: a proxied
 * body of any size passes in bounded memory.
 *
 * POOL.  Per origin (scheme, host, port; or Unix socket path): idle
 * connections are reused, most recently used first.  A connection is "in
 * use" from checkout (the exchange's enter) to its exit; at most
 * max_conns_per_origin are in use per origin and max_conns in all, and an
 * open beyond either waits FIFO, under the caller's deadlines, for one to
 * come back (it is handed over: no reconnect).  Opening a connection when
 * max_conns are open closes the least recently used idle one of another
 * origin first.  An idle connection is checked at checkout: one idle longer
 * than idle_timeout_ms, or whose peer closed it or sent unsolicited bytes, is
 * closed and not used (the kernel is asked only about a connection idle for
 * 100 ms or more: a busy pool reuses connections without a syscall, and a
 * close that races the reuse is handled by the retry below).
 *
 * RETRY.  A request on a reused connection that fails before any response
 * byte (EOF, reset) is sent again once on a new connection, if its method is
 * idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) and its body can be
 * sent again (none, bytes, a file; not a streamed body).
 *
 * TIMEOUTS.  connect_timeout_ms bounds name resolution, TCP connect and the
 * TLS handshake; first_byte_timeout_ms the wait from the end of the request
 * to the first response byte; read_timeout_ms each later read, and each
 * write, that makes no progress.  Every deadline of the calling task
 * (corio_timeout_scope) bounds them all; a cancel of the calling task
 * closes the connection at once.
 *
 * DNS.  Names are resolved with libuv's getaddrinfo (IPv4 and IPv6, each
 * address tried in order) and the answer cached per origin for dns_ttl_ms;
 * a failed connect drops the cached answer.
 *
 * TLS.  https:// verifies the server's certificate chain against the system
 * CA store (plus tls_ca_file) and its name against the URL's host, sends the
 * host as SNI and offers ALPN "http/1.1".  A client given tls_ctx uses that
 * context instead (corio_tls_ctx_new_client: a private CA, or verification
 * off for tests).
 *
 * UNIX SOCKETS.  "http+unix://%2Frun%2Fapp.sock/path": the socket path
 * percent-encoded as the host (Host: localhost is sent).
 *
 * RESPONSES are parsed by llhttp in strict mode under the limits below; a
 * malformed or oversize response fails that call and its connection is
 * closed, never reused.  Informational (1xx) responses are skipped (more
 * than 16 of them: CORIO_EBADMSG).
 *
 * REDIRECTS are followed only when the request asks (max_redirects): 301,
 * 302 and 303 turn a POST (303: any method but HEAD) into a GET without a
 * body or Content-Type; 307 and 308 keep the method and body (a streamed
 * body cannot be sent again: the 3xx is then the answer).  A redirect to
 * another origin drops Authorization, Cookie, Proxy-Authorization and a
 * caller's Host.  Beyond max_redirects: CORIO_ERANGE.
 */
#ifndef CORIO_HTTP_CLIENT_H
#define CORIO_HTTP_CLIENT_H
#include "error.h"
#include "future.h"
#include "resource.h"
#include "task.h"
#include "tls.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_http_client corio_http_client;
typedef struct corio_http_response corio_http_response;
typedef struct corio_http_exchange corio_http_exchange;

/* Limits and timeouts; 0 in any field means the default. */
typedef struct corio_http_client_opts {
    size_t max_conns_per_origin;    /* 16 connections in use per origin */
    size_t max_conns;               /* 256 connections open in all */
    uint64_t idle_timeout_ms;       /* 30 s: an idle pooled connection older is closed */
    uint64_t connect_timeout_ms;    /* 10 s: resolution, TCP connect, TLS handshake */
    uint64_t first_byte_timeout_ms; /* 30 s: request sent -> first response byte */
    uint64_t read_timeout_ms;       /* 30 s: each later read or write without progress */
    uint64_t dns_ttl_ms;            /* 10 s: how long a resolved name is reused */
    size_t max_header_bytes;        /* 16 KiB: status line + header section */
    size_t max_headers;             /* 100 fields */
    size_t max_body;                /* 1 MiB: a buffered body beyond fails, CORIO_ERANGE */
    const char *tls_ca_file;        /* PEM CAs trusted beside the system's (copied) */
    corio_tls_ctx *tls_ctx;         /* a client context to use instead (borrowed: it
                                     * must outlive the client's connections) */
} corio_http_client_opts;

/* One request header: both strings borrowed for the duration of the call
 * that takes them (they are copied into the request). */
typedef struct corio_http_header {
    const char *name;
    const char *value;
} corio_http_header;

/* body_length of a streamed body of unknown length: chunked coding. */
#define CORIO_HTTP_CHUNKED (-1)

/* A request.  Strings and the header array are copied by the call that
 * takes the request; `body` bytes are borrowed until the response head has
 * arrived (a retry or a redirect may send them again). */
typedef struct corio_http_req {
    const char *method; /* NULL: "GET" */
    const char *url;    /* http://host[:port][/path][?query], https://, http+unix:// */
    const corio_http_header *headers;
    size_t nheaders;
    /* The body: at most one of these three (CORIO_EINVAL otherwise). */
    const void *body;       /* body_length bytes */
    const char *body_file;  /* a file's content, sent with its length */
    bool body_stream;       /* written with corio_http_write, ended with _write_end;
                             * exchanges only */
    int64_t body_length;    /* bytes of `body`, or of the streamed body
                             * (CORIO_HTTP_CHUNKED: unknown, sent chunked) */
    unsigned max_redirects; /* 0: a 3xx is the response; else follow up to this many */
    /* A protocol to switch to (a token, or token/token, e.g. "websocket"):
     * the head carries "Connection: Upgrade" and "Upgrade: <protocol>"; no
     * body (CORIO_EINVAL), no redirects followed.  Exchanges only: a 101
     * answer hands the connection over (corio_http_exchange_detach). */
    const char *upgrade;
} corio_http_req;

/* Creates a client (opts NULL: the defaults; opts is copied).  Returns 0
 * and *out, CORIO_EINVAL if out is NULL, CORIO_ENOMEM.  Usable from any task
 * of the loop it was first used on. */
int corio_http_client_new(corio_http_client **out, const corio_http_client_opts *opts);

/* Await: closes the client's idle connections and drops the caller's
 * reference: c must not be used after this call (asyncio's closed session:
 * the pointer may be freed at once).  Requests and exchanges still running
 * keep the client's memory alive, finish, and close their connections when
 * they end (none is pooled any more; a redirect they would follow fails
 * with CORIO_ECLOSED).  c may be NULL.  Call it from a task; closing is
 * shielded so a cancelled caller still closes every idle connection. */
void corio_http_client_free(corio_http_client *c);

/* ---- requests as futures ------------------------------------------------------------------ */

/* Starts a request and gives a future of its response.
 *   method   "GET", "POST"... (copied)
 *   url      as corio_http_req.url (copied); port 80 (443 for https) by default.
 *   headers  nheaders fields sent as given (copied); Host and, when a body
 *            is given or the method is POST/PUT/PATCH, Content-Length are
 *            added (Host unless present).  Connection, Content-Length,
 *            Transfer-Encoding, Keep-Alive, Upgrade, TE and Trailer are the
 *            client's (it frames the body and keeps the connection):
 *            CORIO_EINVAL.  Called from a task serving an HTTP request (or
 *            spawned by one), "X-Request-Id: <corio_req_id>" is added
 *            unless a field of that name is given (corio_http_open too).
 *   body     len bytes (copied), or NULL with len 0.
 * On success *out is a new future (release it with corio_future_release)
 * that completes with:
 *   0 and value a corio_http_response * with the whole body; the future
 *     owns it (borrow it with corio_future_value until the release);
 *   or an error and no value: a connect error (CORIO_ECONNREFUSED,
 *     CORIO_ENOTFOUND...), CORIO_ETLS / CORIO_ETLS_VERIFY, CORIO_ETIMEDOUT
 *     (a client timeout above), CORIO_EBADMSG (a response llhttp in strict
 *     mode refused, or the connection ended inside it), CORIO_ERANGE
 *     (header section, header count or body over its limit; too many
 *     redirects), CORIO_EOF / CORIO_ECONNRESET (the connection ended before
 *     a complete response), CORIO_ECANCELED, CORIO_ENOMEM.
 * Returns 0; CORIO_EINVAL (NULL argument, a URL that does not parse, a
 * method or header with CR/LF or a field the client owns); CORIO_ENOTSUP
 * for a scheme other than http, https, http+unix; CORIO_ENOTASK outside
 * corio_run; CORIO_ENOMEM.
 * On error *out is untouched and nothing was started. */
int corio_http_request(corio_http_client *c, corio_future **out, const char *method,
                       const char *url, const corio_http_header *headers, size_t nheaders,
                       const void *body, size_t len);

/* The same from a request description (a body from bytes or a file;
 * body_stream is for exchanges: CORIO_EINVAL).  The body bytes are copied. */
int corio_http_request_ex(corio_http_client *c, corio_future **out, const corio_http_req *rq);

/* ---- requests as scoped exchanges --------------------------------------------------------- */

/* A scoped resource for CORIO_WITH_RC: its enter validates rq (errors as
 * corio_http_request's), checks a connection out of the pool (waiting for
 * one, connecting, handshaking) and sends the request head — and the whole
 * body when it is bytes or a file.  It then sets *out (valid inside the
 * body of the CORIO_WITH only).  Its exit returns the connection to the
 * pool if the response was read to its end (corio_http_read returned 0) on
 * a connection both sides keep alive, and closes it on every other way
 * out: an error, an unread body, a cancel, a deadline.  rq is read during
 * corio_http_open and the enter; its body bytes as corio_http_req says. */
corio_resource corio_http_open(corio_http_client *c, const corio_http_req *rq,
                               corio_http_exchange **out);

/* Await: sends len bytes of a streamed request body (rq.body_stream); one
 * chunk when chunked.  Awaits the socket's backpressure.  Returns 0,
 * CORIO_EINVAL (no streamed body, or len past a declared body_length),
 * CORIO_EALREADY after corio_http_write_end, write errors (CORIO_EPIPE,
 * CORIO_ECONNRESET, CORIO_ETIMEDOUT), CORIO_ECANCELED. */
int corio_http_write(corio_http_exchange *x, const void *buf, size_t len);

/* Await: ends a streamed request body (the last chunk when chunked).
 * Returns 0, CORIO_EINVAL if fewer bytes than body_length were written
 * (the connection is then unusable: it will be closed), write errors. */
int corio_http_write_end(corio_http_exchange *x);

/* Await: the final response's status line and header fields (1xx skipped,
 * redirects followed as asked).  *out is borrowed until the exchange's
 * scope ends; its body (corio_http_response_body) is empty: read it with
 * corio_http_read.  A streamed request body must have been ended first
 * (CORIO_EINVAL).  Returns 0 or the errors of corio_http_request's future.
 * A second call returns the same head. */
int corio_http_response_head(corio_http_exchange *x, const corio_http_response **out);

/* Await: the next piece of the response body, without copying: *data
 * points into the connection's buffer and is valid until the next call on
 * x.  Returns the piece's length (> 0), 0 at the end of the body (then the
 * connection is reusable), or an error: CORIO_EBADMSG (bad framing, or the
 * connection ended inside the body: the body is truncated), CORIO_ETIMEDOUT,
 * CORIO_ECONNRESET, CORIO_ECANCELED.  Calls corio_http_response_head first
 * if it was not called. */
int corio_http_read(corio_http_exchange *x, const char **data);

/* Takes the connection out of an exchange whose request asked for an
 * upgrade (corio_http_req.upgrade) and whose final response, read with
 * corio_http_response_head, is a 101: *out is the caller's to use for the
 * new protocol and to close (corio_stream_close), with the bytes the
 * server sent after the 101's head buffered on it; it no longer counts
 * against the client's limits, and the exchange's scope ends without
 * touching it.  The response head stays readable until the scope ends.
 * Returns 0; CORIO_EINVAL for NULL arguments, no head read yet, a status
 * other than 101, or a request without .upgrade. */
int corio_http_exchange_detach(corio_http_exchange *x, corio_stream **out);

/* ---- several requests --------------------------------------------------------------------- */

/* Several requests under one deadline are corio_gather of their futures
 * inside a corio_timeout_scope: when it passes, every request still running
 * is cancelled (its connection closed).
 *
 * Await: the first good answer of n futures (a response with status below
 * 500): returns 0 and *winner (its index); every other request still
 * running is cancelled.  When none is good, returns the last failure (an
 * error code, or CORIO_EBADMSG... ) or, if every one answered with a 5xx,
 * 0 with *winner the first of them.  fs are borrowed. */
int corio_http_first(corio_future *const *fs, size_t n, size_t *winner);

/* Await: a hedged request: sends rq to urls[0], and if no good answer
 * (status < 500) has come after delay_ms, the same request to urls[1], and
 * so on; the first good answer wins and the others are cancelled.  rq->url is
 * ignored.  On success *out is a new future (already completed) as
 * corio_http_request's.  Returns 0 or the error of the last attempt. */
int corio_http_hedged(corio_http_client *c, corio_future **out, const corio_http_req *rq,
                      const char *const *urls, size_t n, uint64_t delay_ms);

/* ---- responses ---------------------------------------------------------------------------- */

/* The status code (200...). */
int corio_http_response_status(const corio_http_response *r);
/* The first header named `name` (case-insensitive), or NULL.  Borrowed:
 * lives as long as r. */
const char *corio_http_response_header(const corio_http_response *r, const char *name);
/* The number of header fields, and field i's name and value (borrowed, in
 * the order received; trailers of a chunked body are not among them).
 * Returns 0 or CORIO_ERANGE if i is out of range. */
size_t corio_http_response_header_count(const corio_http_response *r);
int corio_http_response_header_at(const corio_http_response *r, size_t i, const char **name,
                                  const char **value);
/* The buffered body (borrowed, NUL-terminated for convenience; *len excludes
 * the NUL); empty for an exchange's head.  len may be NULL. */
const char *corio_http_response_body(const corio_http_response *r, size_t *len);
/* Whether the body's length is known (Content-Length) and, if so, *len.
 * For a response to HEAD: the length a GET's body would have. */
bool corio_http_response_length(const corio_http_response *r, uint64_t *len);
/* Frees a response a future no longer owns; accepts NULL.  (A future's
 * response is freed with the future: do not free that one.) */
void corio_http_response_free(corio_http_response *r);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_HTTP_CLIENT_H */
