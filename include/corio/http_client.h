/* corio/http_client.h — an HTTP/1.1 client whose requests are futures
 * (backend calls), with a keep-alive connection pool per origin.
 *
 *     corio_future *f;
 *     int rc = corio_http_request(client, &f, "GET", "http://127.0.0.1:9000/users/7",
 *                                 NULL, 0, NULL, 0);
 *     if (rc == 0 && (rc = corio_await(f)) == 0) {
 *         corio_http_response *r = corio_future_value(f);   // the caller's now
 *         ... corio_http_response_status(r), corio_http_response_body(r, &len) ...
 *         corio_http_response_free(r);
 *     }
 *     corio_future_release(f);
 *
 * Each request runs in a task of its own, spawned by corio_http_request, so
 * a caller may start several and corio_gather them under one deadline.  The
 * future has a cancel hook: when the await of it is cut short (the caller is
 * cancelled, or a deadline of the caller's passes: task.h's table), the
 * request task is cancelled and closes its connection; a connection goes
 * back to the pool only after a response read to its end on a connection
 * both sides keep alive.
 *
 * Pool.  Per origin (host, port): idle connections are reused (most recently
 * used first); at most max_conns_per_origin are open at once, and a request
 * beyond that waits (FIFO, under the caller's deadline) for one to close or
 * come back.  An idle connection is checked at checkout: one idle longer than
 * idle_timeout_ms, or whose peer has closed it or sent unsolicited bytes, is
 * closed and not used (no timer runs: an idle connection stays open until
 * the next checkout of its origin or corio_http_client_free).  A request on a
 * reused connection that fails before any response byte (EOF, reset) is
 * retried once on a new connection if its method is idempotent (GET, HEAD,
 * PUT, DELETE, OPTIONS, TRACE).
 *
 * Not yet: https:// and Unix sockets (CORIO_ENOTSUP), streamed request and
 * response bodies, redirects, a DNS cache, a limit over all origins.
 */
#ifndef CORIO_HTTP_CLIENT_H
#define CORIO_HTTP_CLIENT_H
#include "error.h"
#include "future.h"
#include "task.h"
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_http_client corio_http_client;
typedef struct corio_http_response corio_http_response;

/* Limits and timeouts; 0 in any field means the default. */
typedef struct corio_http_client_opts {
    size_t max_conns_per_origin;    /* 16 */
    uint64_t idle_timeout_ms;       /* 30 s: an idle pooled connection older is closed */
    uint64_t connect_timeout_ms;    /* 10 s: name resolution and TCP connect */
    uint64_t first_byte_timeout_ms; /* 30 s: request sent -> first response byte */
    uint64_t read_timeout_ms;       /* 30 s: each later read that makes no progress */
    size_t max_header_bytes;        /* 16 KiB: status line + header section */
    size_t max_headers;             /* 100 fields */
    size_t max_body;                /* 1 MiB: a buffered body beyond fails, CORIO_ERANGE */
} corio_http_client_opts;

/* One request header: both strings borrowed for the duration of the call
 * to corio_http_request (they are copied into the request). */
typedef struct corio_http_header {
    const char *name;
    const char *value;
} corio_http_header;

/* Creates a client (opts NULL: the defaults; opts is copied).  Returns 0
 * and *out, CORIO_EINVAL if out is NULL, CORIO_ENOMEM.  Usable from any task
 * of the loop it was first used on. */
int corio_http_client_new(corio_http_client **out, const corio_http_client_opts *opts);

/* Await: closes the client's idle connections and drops the caller's
 * reference.  Requests still running keep the client's memory alive and
 * close their connections when they end (none is pooled any more).  c may
 * be NULL.  Call it from a task; closing is shielded so a cancelled caller
 * still closes every idle connection. */
void corio_http_client_free(corio_http_client *c);

/* Starts a request and gives a future of its response.
 *   method   "GET", "POST"... (copied)
 *   url      "http://host[:port][/path][?query]" (copied); port 80 by default.
 *   headers  nheaders fields sent as given (copied); Host and, when a body
 *            is given or the method is POST/PUT/PATCH, Content-Length are
 *            added unless present.  Do not send Transfer-Encoding.
 *   body     len bytes (copied), or NULL with len 0.
 * On success *out is a new future (release it with corio_future_release)
 * that completes with:
 *   0 and value a corio_http_response * that belongs to whoever takes it
 *     with corio_future_value (free it with corio_http_response_free; a
 *     resolved future whose response nobody takes leaks it);
 *   or an error and no value: a connect error (CORIO_ECONNREFUSED,
 *     CORIO_ENOTFOUND...), CORIO_ETIMEDOUT (a client timeout above),
 *     CORIO_EBADMSG (a response llhttp in strict mode refused, or the
 *     connection ended inside it), CORIO_ERANGE (header section, header count
 *     or body over its limit), CORIO_EOF / CORIO_ECONNRESET (the connection
 *     ended before a complete response), CORIO_ECANCELED,
 *     CORIO_ENOMEM.
 * Returns 0; CORIO_EINVAL (NULL argument, a URL that does not parse, a
 * method or header with CR/LF); CORIO_ENOTSUP for a scheme other than
 * http:// (https:// and Unix sockets are not supported yet); CORIO_ECLOSED
 * after corio_http_client_free; CORIO_ENOTASK outside corio_run;
 * CORIO_ENOMEM.  On error *out is untouched and nothing was started. */
int corio_http_request(corio_http_client *c, corio_future **out, const char *method,
                       const char *url, const corio_http_header *headers, size_t nheaders,
                       const void *body, size_t len);

/* The status code (200...). */
int corio_http_response_status(const corio_http_response *r);
/* The first header named `name` (case-insensitive), or NULL.  Borrowed:
 * lives as long as r. */
const char *corio_http_response_header(const corio_http_response *r, const char *name);
/* The number of header fields, and field i's name and value (borrowed, in
 * the order received).  Returns 0 or CORIO_ERANGE if i is out of range. */
size_t corio_http_response_header_count(const corio_http_response *r);
int corio_http_response_header_at(const corio_http_response *r, size_t i, const char **name,
                                  const char **value);
/* The body (borrowed, NUL-terminated for convenience; *len excludes the
 * NUL).  len may be NULL. */
const char *corio_http_response_body(const corio_http_response *r, size_t *len);
/* Frees r and everything borrowed from it; accepts NULL. */
void corio_http_response_free(corio_http_response *r);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_HTTP_CLIENT_H */
