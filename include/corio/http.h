/* SPDX-License-Identifier: MIT */
/* corio/http.h — the HTTP/1.1 server: coroutine handlers and routing.
 *
 *     static int hello(corio_req *req, corio_res *res, void *arg) {
 *         return corio_res_text(res, 200, "Hello, World!");
 *     }
 *     corio_router_add(router, "GET", "/plaintext", hello, NULL);
 *
 * One task per connection parses requests with llhttp in strict mode and
 * calls each route's handler on that same task: while a handler awaits (a
 * backend future, a sleep, a body chunk), every other connection goes on.
 * Keep-alive follows HTTP/1.0 and 1.1 rules; pipelined requests are answered
 * in order, and the responses to the requests of one read leave in one write.
 *
 * Strings.  Request strings are corio_strv slices (pointer + length, not NUL
 * terminated) into the connection's read buffer or the request's arena; they
 * stay valid until the handler returns.
 *
 * Errors.  A handler returns 0, or a negative CORIO_E* code: if it had not
 * sent a response, the client gets a 500 with no internals in the body and the
 * error is logged with the request line; if it had started one and not ended
 * it, the response is cut short as by corio_res_abort.  Bad input from a client is answered
 * by the server (400, 408, 413, 414, 431, 501, 505) and, where HTTP requires
 * it, the connection is closed; other connections never notice.
 */
#ifndef CORIO_HTTP_H
#define CORIO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A string slice; not NUL terminated. */
typedef struct corio_strv {
    const char *ptr;
    size_t len;
} corio_strv;

/* True if the slice equals the C string s (case-sensitive). */
bool corio_strv_eq(corio_strv v, const char *s);

typedef struct corio_req corio_req;
typedef struct corio_res corio_res;
typedef struct corio_router corio_router;

/* A route handler; see the top of this file for its return value. */
typedef int (*corio_http_handler)(corio_req *req, corio_res *res, void *arg);

/* ---- request ------------------------------------------------------------------------ */

/* The request's method as sent ("GET", "POST"; borrowed from the request,
 * valid until the handler returns). */
corio_strv corio_req_method(const corio_req *req);
/* The request target as sent ("/a%20b?x=1").  An absolute-form target
 * ("http://host/a?x=1", RFC 9112 3.2.2) is accepted; its path and query are
 * what corio_req_path / corio_req_query_string and routing see. */
corio_strv corio_req_target(const corio_req *req);
/* The path, percent-decoded ("/a b"); a path that decodes to a NUL byte or an
 * invalid escape is answered 400 before any handler runs. */
corio_strv corio_req_path(const corio_req *req);
/* The raw query string after '?', or an empty slice. */
corio_strv corio_req_query_string(const corio_req *req);
/* HTTP minor version: 0 for HTTP/1.0, 1 for HTTP/1.1. */
int corio_req_version_minor(const corio_req *req);

/* The first header field named `name` (case-insensitive).  Returns true and
 * sets *value, or false. */
bool corio_req_header(const corio_req *req, const char *name, corio_strv *value);
/* Header fields in arrival order (repeated fields included).  Returns the
 * count; corio_req_header_at returns false past the end. */
size_t corio_req_header_count(const corio_req *req);
bool corio_req_header_at(const corio_req *req, size_t i, corio_strv *name, corio_strv *value);

/* A path parameter of the route ("/users/{id}" → "id"), percent-decoded.
 * Routes match the path segments as sent, each decoded on its own, so an
 * encoded slash stays in its parameter ("/users/a%2Fb": id "a/b").  Dot
 * segments are not resolved: a parameter may be ".." (sent as ".." or
 * "%2e%2e") and a trailing `*` may hold "../x", so a handler that makes a
 * file path of one must refuse such values first (corio_http_file_path
 * checks one; corio_res_file_under serves only what lies under its root). */
bool corio_req_param(const corio_req *req, const char *name, corio_strv *value);
/* A query parameter, percent-decoded ('+' is a space).  The first one named
 * `name`.  Returns false if absent or not decodable. */
bool corio_req_query(corio_req *req, const char *name, corio_strv *value);

/* Await: the whole body, buffered in the request's arena (or as a slice of
 * the read buffer when it is already there).  A second call returns the same
 * body (middleware may read it before the handler).  Returns 0, CORIO_ERANGE
 * when it exceeds the body limit, CORIO_EINVAL for a malformed chunked body,
 * CORIO_ETIMEDOUT when the client stalls longer than body_timeout_ms,
 * CORIO_EOF when the client ended its side before the body's end — a
 * handler that returns these without responding gets the server's 413,
 * 400, 408 or 400 (an incomplete request), and the connection closes —
 * CORIO_ECONNRESET if the client went away, CORIO_ECANCELED, CORIO_EALREADY
 * if corio_req_read already consumed some of the body. */
int corio_req_body(corio_req *req, corio_strv *body);

/* Await: reads the next piece of a streamed body into buf.  Returns the
 * count, 0 at the end of the body, or corio_req_body's errors.  The server
 * reads from the socket only as fast as the handler consumes.  The first
 * call answers "Expect: 100-continue" (HTTP/1.1, and only while no response
 * has been started); a handler that responds without reading such a body
 * never sends the 100, and its response closes the connection. */
int corio_req_read(corio_req *req, void *buf, size_t len);

/* By default a client that disconnects while its handler runs cancels the
 * handler's task (reason CORIO_CANCEL_PEER_GONE: its awaits return
 * CORIO_ECANCELED).  A client that only half-closes (shuts down its sending
 * side while the handler runs) counts as gone too, as in Go's net/http; one
 * that half-closed before its request was read is still answered.  A handler that must finish its
 * work (a payment, say) calls this first: it then runs to its end and its response is dropped. */
void corio_req_finish_on_disconnect(corio_req *req);

/* The client's address ("127.0.0.1:5555"). */
int corio_req_peer(const corio_req *req, char *buf, size_t len);

/* The client's address without the port ("127.0.0.1", "::1"; "-" for a
 * Unix socket or a client already gone), looked up once per connection (a
 * proxy's X-Forwarded-For).  Borrowed: valid while the connection lasts. */
const char *corio_req_peer_addr(const corio_req *req);

/* The request's id: the client's X-Request-Id field when it is sane (1 to
 * 128 bytes of printable ASCII without spaces; the first such field), else
 * one generated for it (32 lowercase hex digits, unique per process and
 * across the workers: 128 bits of a per-thread random stream), the
 * client's insane one ignored.  Every request has one, those the server
 * refuses too.  The response carries it as "X-Request-Id: <id>" unless the
 * handler sets that field itself (corio_res_header); the access log and
 * every corio_log line from the request's task (and from tasks spawned
 * there, which copy it) carry it, and the HTTP client sends it upstream as
 * X-Request-Id from those tasks (see corio_http_request).  Borrowed,
 * NUL-terminated: valid until the handler returns (copy it to keep it).
 * "" for a NULL req. */
const char *corio_req_id(const corio_req *req);

/* Whether the request came over TLS (a proxy's "X-Forwarded-Proto: https"):
 * the connection's stream is a TLS stream (corio_stream_is_tls).  False for
 * a NULL req. */
bool corio_req_is_tls(const corio_req *req);

/* Allocates n bytes from the request's arena, freed after the response.
 * Returns NULL when out of memory. */
void *corio_req_alloc(corio_req *req, size_t n);

/* ---- response ----------------------------------------------------------------------- */

/* Adds a header field.  Returns 0, CORIO_EINVAL if the name is not a token or
 * the value holds CR, LF or NUL (no header injection), CORIO_EALREADY once the
 * head has been sent (or the response given up), CORIO_ENOMEM.
 * Content-Length, Transfer-Encoding, Date and Connection are the server's:
 * CORIO_EPERM. Strings are copied. */
int corio_res_header(corio_res *res, const char *name, const char *value);

/* Sends a complete response with a Content-Length.  `content_type` may be
 * NULL (no Content-Type); one holding CR or LF is refused (CORIO_EINVAL).  `body` is copied (or
 * written before returning). For HEAD requests the body is not sent.  204 and 304 go without a
 * body or Content-Length.  Returns 0, CORIO_EALREADY if a response was already started,
 * CORIO_EINVAL for a status outside 200..599 (a 1xx is interim, never a final response: the
 * client would wait for ever), write errors. */
int corio_res_send(corio_res *res, int status, const char *content_type, const void *body,
                   size_t len);
/* Shorthands: text/plain; charset=utf-8 and application/json. */
int corio_res_text(corio_res *res, int status, const char *text);
int corio_res_json(corio_res *res, int status, const char *json);

/* Streaming (chunked transfer coding on HTTP/1.1; close-delimited on 1.0).
 * corio_res_start sends the head; corio_res_write sends one chunk and awaits
 * backpressure; corio_res_end sends the last chunk.  For HEAD requests only
 * the head is sent: writes are accepted and dropped.  Returns 0 or write
 * errors (CORIO_EPIPE etc. when the client left); corio_res_start also
 * CORIO_EINVAL for a status outside 200..599 or one without a body (204,
 * 304), CORIO_EALREADY if a response was already started (or given up,
 * corio_res_abort); corio_res_write and corio_res_end CORIO_EINVAL with no
 * response started, and corio_res_write after the end.  `data` is borrowed
 * until corio_res_write returns. */
int corio_res_start(corio_res *res, int status, const char *content_type);
int corio_res_write(corio_res *res, const void *data, size_t len);
int corio_res_end(corio_res *res);

/* Streaming a body of known length (a proxy relaying an upstream's
 * Content-Length body): the head carries "Content-Length: length" (0 is an
 * empty body), and each corio_res_write then sends its bytes as they are,
 * with no chunk framing (an HTTP/1.0 connection too may then stay open).
 * A write that would go past `length` returns CORIO_EINVAL and sends
 * nothing.  corio_res_end with fewer than `length` bytes written cannot
 * complete the response honestly: it returns CORIO_EINVAL and the
 * connection closes after what was sent, so the client sees a body short of
 * its Content-Length, never a complete one, and no next response on that
 * connection is read as the rest; a handler that returns without
 * corio_res_end and short is treated alike (and logged).  For HEAD requests
 * only the head is sent: writes are counted (past `length` still refused)
 * and dropped, and corio_res_end completes the response whatever the count.
 * Returns like corio_res_start: 0, write errors, CORIO_EINVAL for a status
 * outside 200..599 or one without a body (204, 304) or a content type
 * holding CR or LF, CORIO_EALREADY if a response was already started (or
 * given up). */
int corio_res_start_length(corio_res *res, int status, const char *content_type, uint64_t length);

/* Gives up the response, for a handler whose source failed mid-body (a
 * proxy whose upstream closed mid-response).  Nothing more of it is sent
 * (no last chunk, no padding up to a Content-Length) and no answer of the
 * server's either: once the handler returns, the connection closes after
 * whatever was already sent, so the client sees a body cut short (chunks
 * without the last one, fewer bytes than the Content-Length; a
 * close-delimited HTTP/1.0 body, whose end would be the close, ends with a
 * reset instead of a FIN), and requests pipelined behind this one are not
 * answered.  Called before any response was started, it closes the
 * connection without answering at all (no 500).  On a response already
 * complete (corio_res_send, corio_res_end) it only closes the connection
 * after it.  A response given up cannot be written, ended (CORIO_EINVAL)
 * or started (CORIO_EALREADY) any more.  The handler's return value is
 * logged as usual (an error) or not (0).  A handler that returns an error
 * after corio_res_start without ending its response gets the same as this;
 * corio_res_abort is the explicit way.  NULL: nothing. */
void corio_res_abort(corio_res *res);

/* Switches the connection to another protocol (RFC 9110 §7.8; what
 * corio_ws_accept stands on).  Await: sends "101 Switching Protocols" with
 * the fields set by corio_res_header and "Connection: Upgrade" and
 * "Upgrade: <protocol>", after any responses still queued, and sets *out to
 * the connection's stream: the handler's, borrowed until it returns, to
 * read and write the new protocol on (what the client sent after the
 * request's head is already buffered on it).  The request's strings stay
 * valid (its head moves into its arena).  When the handler returns, the
 * server closes the connection and sends nothing more of its own (no 500,
 * no next request).  The access log and the metrics count a 101, the whole
 * session as its duration.  Returns 0; CORIO_EINVAL for a NULL argument, a
 * protocol that is not a token (or token/token), or a request that did not
 * ask for an upgrade (Connection: upgrade and Upgrade fields, HTTP/1.1), or
 * has a body; CORIO_EALREADY if a response was started; write errors
 * (*out is then NULL, and the connection ends when the handler returns). */
int corio_res_upgrade(corio_res *res, const char *protocol, corio_stream **out);

/* Whether a response has been started. */
bool corio_res_started(const corio_res *res);

/* The status of the response started, or 0 before one is (for middleware
 * that logs or measures after corio_next_call). */
int corio_res_status(const corio_res *res);

/* True once the server has begun a graceful shutdown: a long-running
 * handler (server-sent events, long polling) should finish its response
 * soon; the drain deadline cancels it otherwise. */
bool corio_req_draining(const corio_req *req);

/* ---- routing ------------------------------------------------------------------------- */

/* Creates an empty router.  Returns 0, CORIO_ENOMEM. */
int corio_router_new(corio_router **out);
void corio_router_free(corio_router *r);

/* Adds a route.  `method` is an upper-case token ("GET"; a GET route also
 * answers HEAD).  `pattern` is a path of literal segments, `{name}`
 * parameters (one segment each) and an optional trailing `*` (the rest of the
 * path, readable as parameter "*").  Literal segments win over parameters.
 * Returns 0, CORIO_EINVAL for a bad pattern or method, CORIO_EALREADY for a
 * duplicate route, CORIO_ENOMEM.  Strings are copied; arg is borrowed. */
int corio_router_add(corio_router *r, const char *method, const char *pattern,
                     corio_http_handler fn, void *arg);

/* Middleware: runs around the handler (asyncio-web style).  It may answer
 * itself and return (auth refusing a request), or call corio_next() to run
 * the rest of the chain (the next middleware, then the handler) and act after
 * it (logging, adding headers before it).  Returns like a handler.
 * Global middleware (corio_router_use) wraps every request, 404 and 405
 * answers included, in the order added; route middleware
 * (corio_route_use) runs inside it, for that route only. */
typedef struct corio_next corio_next;
typedef int (*corio_middleware)(corio_req *req, corio_res *res, corio_next *next, void *arg);

/* Runs the rest of the chain; returns its result. */
int corio_next_call(corio_next *next);

/* Adds global middleware.  Returns 0, CORIO_EINVAL, CORIO_ENOMEM. */
int corio_router_use(corio_router *r, corio_middleware mw, void *arg);

/* Adds middleware to the route added with this method and pattern.  Returns
 * 0, CORIO_ENOENT if there is no such route, CORIO_EINVAL, CORIO_ENOMEM. */
int corio_route_use(corio_router *r, const char *method, const char *pattern, corio_middleware mw,
                    void *arg);

/* ---- compression --------------------------------------------------------------------- */

/* gzip response compression (RFC 9110 8.4.1.3), as middleware:
 *
 *     corio_router_use(router, corio_http_compress_middleware, NULL);  // defaults
 *
 *     corio_http_compress *gz;                                         // or options
 *     corio_http_compress_opts o = {.level = 6, .min_size = 256};
 *     if (corio_http_compress_new(&gz, &o) == 0)
 *         corio_route_use(router, "GET", "/events", corio_http_compress_middleware, gz);
 *
 * A response that the middleware wraps is compressed when the head is about
 * to go out and everything below holds; its body then goes through deflate:
 *   - the client accepts gzip: an Accept-Encoding field lists gzip (or
 *     x-gzip), or "*", with a q-value above 0, and not below the q-value it
 *     gives identity (explicitly or through "*"); no Accept-Encoding field, or
 *     an empty one, means no compression (what browsers and curl expect);
 *   - its Content-Type (the content_type argument, else a Content-Type set
 *     with corio_res_header) matches the compressor's types;
 *   - a whole body (corio_res_send) or a declared length
 *     (corio_res_start_length) is at least min_size bytes; a chunked stream
 *     (corio_res_start) of unknown length always qualifies;
 *   - no Content-Encoding field was set by the handler (the body is already
 *     encoded), nor Content-Range, nor "Cache-Control: no-transform", and
 *     corio_res_no_compress was not called;
 *   - the status is not 204, 206 or 304.
 * A compressed response carries "Content-Encoding: gzip", and its ETag, if
 * the handler set a strong one, is made weak (W/"...": the bytes differ from
 * the identity representation's).  "Vary: Accept-Encoding" is added to every
 * response that qualified by everything but the client's Accept-Encoding,
 * compressed or not (unless a Vary field already names Accept-Encoding or
 * "*"), and to a 304 whose content_type (not sent on a 304) qualifies.
 *
 * Framing.  corio_res_send: the body is compressed whole and sent with the
 * compressed Content-Length (HTTP/1.0 keeps its connection too).  For HEAD
 * the head GET would get, with Content-Encoding and Vary but no
 * Content-Length (RFC 9110 8.6 allows leaving it out; computing it would
 * mean compressing a body that is never sent).  corio_res_start: chunked,
 * or close-delimited on HTTP/1.0, as uncompressed; each corio_res_write is
 * compressed and flushed (Z_SYNC_FLUSH), so what it wrote reaches the
 * client whole at once (a server-sent event is readable when written) and
 * corio_res_end finishes the gzip stream.  corio_res_start_length on
 * HTTP/1.1: compressed and chunked instead of the Content-Length (the
 * length still bounds and completes what the handler writes, counted in
 * uncompressed bytes); on HTTP/1.0, where that would cost the connection
 * (no chunks), sent uncompressed with its Content-Length.  File responses
 * (corio/http_file.h: sendfile, ranges) and corio_res_upgrade are never
 * compressed.  The access log counts the bytes sent: compressed.
 *
 * Memory.  A deflate stream exists only while a compressed response is
 * written: corio_res_send compresses and frees it within the call (its
 * window shrunk to the body's size; the compressed body goes to the
 * request's arena, in slices), a streamed response holds one from
 * corio_res_start until corio_res_end (or the handler's return), about
 * 2^(window_bits+2) + 2^(mem_level+9) bytes plus up to 16 KiB of output
 * buffer (278 KiB at the defaults; 16 KiB at window_bits 10, mem_level 2).
 * Nothing is held per connection.  When a worker thread's deflate streams
 * would pass max_memory, or malloc fails, the response goes uncompressed:
 * compression never fails a request.
 *
 * Security.  Compressing a response that carries a secret (a CSRF token)
 * next to text an attacker controls (a reflected query parameter) over TLS
 * leaks the secret byte by byte (BREACH): call corio_res_no_compress for
 * such responses. */

/* Options of a compressor; a zeroed struct (or NULL) gives the defaults. */
typedef struct corio_http_compress_opts {
    /* zlib level 1 (fastest) .. 9 (smallest); 0: 1, as nginx's
     * gzip_comp_level.  On a 10 KiB JSON body (bench/compress_bench.sh)
     * level 1 makes it 4.5x smaller for about 31 us of CPU, level 6 5.2x
     * for 61 us: 14% fewer bytes for twice the CPU. */
    int level;
    /* Bodies (or declared lengths) shorter than this go as they are; 0:
     * 1024.  A body under about a kilobyte leaves in one packet with its
     * head either way, and gzip's framing (18 bytes) eats part of the
     * gain. */
    size_t min_size;
    /* The media types to compress, a NULL-terminated list of patterns
     * matched case-insensitively against the Content-Type's type/subtype
     * (parameters ignored), each with at most one '*' standing for any
     * run of characters (written "\*" here only because a comment cannot
     * hold a slash and a star): "text/\*", "application/json",
     * "application/\*+json".  NULL: text/\*, application/json,
     * application/\*+json, application/javascript, application/xml,
     * application/\*+xml, image/svg+xml, application/x-ndjson,
     * application/wasm, font/ttf, font/otf, image/x-icon, image/bmp
     * (text/event-stream included: server-sent events compress well).
     * Copied by corio_http_compress_new. */
    const char *const *types;
    /* deflate's window, 9..15 (a 512 B .. 32 KiB history); 0: 15.  A whole
     * body (corio_res_send) uses the smallest window that holds it. */
    int window_bits;
    /* deflate's hash memory, 1..9; 0: 8 (zlib's default). */
    int mem_level;
    /* The most deflate memory one worker thread holds at once for
     * responses of this compressor; past it, responses go uncompressed.
     * 0: 64 MiB (about 235 concurrent compressed streams at the defaults). */
    size_t max_memory;
} corio_http_compress_opts;

/* A compressor: validated options, shared read-only by every request and
 * worker thread that uses it. */
typedef struct corio_http_compress corio_http_compress;

/* Creates a compressor from opts (NULL: the defaults; borrowed for the
 * call: the strings of opts->types are copied).  Returns 0 and *out (free
 * it with corio_http_compress_free once no router or server uses it);
 * CORIO_EINVAL for a NULL out, a level, window_bits or mem_level out of
 * range, an empty type list, or a pattern that is empty, holds two '*' or
 * a character that is neither a token's nor '/';
 * CORIO_ENOMEM; CORIO_ENOTSUP when corio was built without zlib.  *out is
 * untouched on error. */
int corio_http_compress_new(corio_http_compress **out, const corio_http_compress_opts *opts);

/* Frees a compressor (NULL: nothing).  No request may be using it: free it
 * after the servers that route through it have stopped. */
void corio_http_compress_free(corio_http_compress *gz);

/* The middleware (corio_middleware) that compresses the responses of the
 * rest of the chain as described above; `arg` is a corio_http_compress
 * (borrowed: it must outlive the router's use), or NULL for the defaults.
 * Register it with corio_router_use (every route, 404 and 405 answers
 * included) or corio_route_use (one route); when both wrap a route, the
 * route's compressor applies.  Returns what the rest of the chain returns;
 * CORIO_EINVAL for a NULL res or next, or an arg that is not a compressor
 * (reported once, as a programming error; the request is answered 500).
 * Without zlib it only runs the rest of the chain. */
int corio_http_compress_middleware(corio_req *req, corio_res *res, corio_next *next, void *arg);

/* Sends this response uncompressed, whatever middleware wraps it (a
 * response mixing a secret with reflected input, see Security above).
 * Call it before the response starts; afterwards, and for a NULL res, it
 * does nothing. */
void corio_res_no_compress(corio_res *res);

/* ---- serving ------------------------------------------------------------------------- */

/* Limits and timeouts; 0 in a field means its default. */
typedef struct corio_http_opts {
    size_t max_request_line;    /* 8 KiB; beyond: 414 and close */
    size_t max_header_bytes;    /* 16 KiB; beyond: 431 and close */
    size_t max_headers;         /* 100 fields; beyond: 431 and close */
    size_t max_body;            /* 1 MiB; beyond: 413 and close */
    size_t max_requests;        /* per connection; 0: no cap */
    uint64_t header_timeout_ms; /* 10 s for the whole head: 408 */
    uint64_t body_timeout_ms;   /* 15 s without progress: 408 */
    /* A body must also come at this average rate (bytes/s, 500 by default):
     * the time the body's reads spend waiting for the client may total
     * body_timeout_ms plus one second per body_min_rate bytes received
     * (Apache's mod_reqtimeout "body=N,MinRate=R"; time the handler spends
     * between its reads is not counted); past it, 408 and close.  Without
     * it a client sending a byte every body_timeout_ms would hold a request
     * open for weeks below max_body.  SIZE_MAX makes body_timeout_ms the
     * deadline of the whole body. */
    size_t body_min_rate;
    uint64_t keepalive_timeout_ms; /* 5 s idle between requests: close */
    uint64_t send_timeout_ms;      /* 30 s without progress: abort */
    /* A keep-alive connection (accepted by a corio_server) that has waited
     * this long for its next request gives back its task and its coroutine
     * stack, and costs well under 1 KiB until bytes come, when it is served
     * again in a new task (the rest of keepalive_timeout_ms still applies).
     * 100 ms by default (0 means the default; 1 parks almost at once): a
     * connection that sends requests more often keeps its task and is
     * spared a task start per request. */
    uint64_t park_after_ms;
    /* Access log: one line per response on stderr, in the common log format
     * followed by the request's duration in microseconds (from its head
     * complete to its response complete) and its id (corio_req_id), quoted:
     *   127.0.0.1 - - [25/Nov/2026:14:17:21 +0000] "GET /a?b=1 HTTP/1.1" 200 13 87 "3f2a..."
     * (the date in UTC with English month names, whatever the locale).
     * With JSON log lines (corio_log_set_format, --log-format json), one
     * object per response instead, on one line:
     *   {"time":"2026-11-25T14:17:21.123Z","remote":"127.0.0.1","method":"GET",
     *    "target":"/a?b=1","protocol":"HTTP/1.1","status":200,"bytes":13,
     *    "duration_us":87,"request_id":"3f2a..."}
     * (method, target and protocol null when the request line was not read
     * whole; bytes 0 for no body; strings escaped as corio_log_json_escape
     * says, so a hostile target stays inside its string).
     * Lines are buffered per thread and written as whole lines when 16 KiB
     * have gathered, within a second, and when the thread's last connection
     * ends.  Off by default.  The process-wide setting overrides it: the
     * environment variable CORIO_ACCESS_LOG, or corio_http_access_log_set
     * (the runner's --access-log). */
    bool access_log;
} corio_http_opts;

typedef struct corio_http_server {
    corio_router *router; /* borrowed */
    corio_http_opts opts;
} corio_http_server;

/* The access log's process-wide setting, which overrides the
 * opts.access_log of every server in the process:
 *   "off" (also "0", "false", "no")   no access log;
 *   "on" (also "1", "true", "yes", "stderr", "-")   lines on stderr;
 *   anything else                     the path of a file the lines are
 *                                     appended to (created 0644 if need
 *                                     be; a file named "on" is "./on");
 *   NULL or ""                        no override: each server's
 *                                     opts.access_log, lines on stderr.
 * Until this is called, the environment variable CORIO_ACCESS_LOG holds the
 * setting, in the same words, read at the process's first HTTP connection
 * (a file it names that cannot be opened is reported once, as an ERROR
 * line, and the lines go to stderr).  Keywords are case-insensitive.
 * Call it before serving (the runner calls it before it forks its workers,
 * which then share the file; the file is opened O_APPEND, and a line is one
 * write, so their lines do not interleave).  spec is borrowed for the call.
 * Returns 0, or the error opening the file as a negative errno code
 * (CORIO_ENOENT, CORIO_EACCES, ...; the setting is then unchanged). */
int corio_http_access_log_set(const char *spec);

/* A connection handler (corio_conn_fn) that serves HTTP/1.1 on `s` with the
 * corio_http_server passed as arg.  Use it as the handler of a corio_app or a
 * corio_server. */
int corio_http_serve(corio_stream *s, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_HTTP_H */
