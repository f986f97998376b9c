/* SPDX-License-Identifier: MIT */
/* corio/http_test.h — a router served on loopback for the caller's own tests
 * (aiohttp's TestClient, Go's httptest.NewServer).
 *
 *     static int test_main(void *arg) {           // run with corio_run(test_main, router)
 *         corio_http_test *t;
 *         corio_http_response *r;
 *         assert_int_equal(corio_http_test_start(&t, arg, NULL), 0);
 *         assert_int_equal(corio_http_test_get(t, &r, "/users/7"), 0);
 *         assert_int_equal(corio_http_response_status(r), 200);
 *         corio_http_response_free(r);
 *         assert_int_equal(corio_http_test_stop(t), 0);
 *         return 0;
 *     }
 *
 * corio_http_test_start serves the router with corio_http_serve on
 * 127.0.0.1, on a port the kernel picks, inside the calling task's loop, and
 * makes an HTTP client (http_client.h) for it.  Requests go over a real TCP
 * connection through the whole server (parsing, limits, middleware, 404 and
 * 405 answers, keep-alive), so what a test sees is what a client would.
 * Server and client live on the test's loop: every call here, and the
 * handlers, run on it, and a test that needs more than the helpers below
 * (a streamed exchange, several requests gathered, other client options)
 * uses corio_http_test_client or its own client on corio_http_test_base.
 *
 * Everything is called from a task (inside corio_run); corio_http_test_stop
 * must have been called before that task's loop ends, or corio_run reports
 * the server's and client's handles left open.
 */
#ifndef CORIO_HTTP_TEST_H
#define CORIO_HTTP_TEST_H

#include <stddef.h>

#include "error.h"
#include "http.h"
#include "http_client.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_http_test corio_http_test;

/* How long corio_http_test_stop lets requests still running finish before
 * it cancels their handlers. */
#define CORIO_HTTP_TEST_DRAIN_MS 1000

/* Starts serving `router` on 127.0.0.1, port 0 (any free port), with the
 * limits and timeouts of `opts` (NULL: the defaults; copied), and creates a
 * client with default options.  Not an await: the server accepts from the
 * moment this returns.  `router` is borrowed: it stays the caller's, and
 * must outlive the test server (free it after corio_http_test_stop); routes
 * added to it meanwhile are served.  Returns 0 and *out; CORIO_EINVAL if out
 * or router is NULL; CORIO_ENOTASK outside a corio task (reported on
 * stderr); the bind or listen error (an -errno code); CORIO_ENOMEM.  On
 * error *out is untouched and nothing is left open. */
int corio_http_test_start(corio_http_test **out, corio_router *router, const corio_http_opts *opts);

/* The server's base URL, "http://127.0.0.1:PORT" with no trailing slash, for
 * a client of the caller's own.  Borrowed: valid until corio_http_test_stop. */
const char *corio_http_test_base(const corio_http_test *t);

/* The bound TCP port. */
int corio_http_test_port(const corio_http_test *t);

/* The test server's client (default options), for requests the helpers
 * below do not make: corio_http_request on corio_http_test_base + path,
 * corio_http_open for a streamed exchange.  Borrowed: corio_http_test_stop
 * frees it (do not call corio_http_client_free on it). */
corio_http_client *corio_http_test_client(corio_http_test *t);

/* Await: sends one request for `path` to the test server and waits for the
 * whole response.
 *   out      on success, the response (status, headers and the whole body,
 *            corio_http_response_*): transferred, the caller frees it with
 *            corio_http_response_free.  Untouched on error.
 *   method   "GET", "POST"...
 *   path     the request target, starting with '/' ("/users/7?full=1");
 *            percent-encoding is the caller's.
 *   headers  nheaders fields, body len bytes (or NULL and 0): as for
 *            corio_http_request (http_client.h), which adds Host and
 *            Content-Length.  All borrowed for the call only.
 * Any status is a success: a 404 or a 500 is a response to assert on.
 * Returns 0; CORIO_EINVAL (t, out, method or path NULL, a path not starting
 * with '/', and corio_http_request's refusals: a method or header with
 * CR/LF, a header the client owns); CORIO_ENOTASK outside a task; or the
 * request's failure: CORIO_ECONNREFUSED and the like, CORIO_ETIMEDOUT (the
 * client's timeouts, 30 s by default, or a deadline of the caller's),
 * CORIO_EBADMSG, CORIO_ERANGE (a response body over the client's 1 MiB),
 * CORIO_EOF / CORIO_ECONNRESET (the server closed the connection without a
 * response: a handler that called corio_res_abort first, say),
 * CORIO_ECANCELED (the calling task was cancelled: the request is cancelled
 * too), CORIO_ENOMEM. */
int corio_http_test_call(corio_http_test *t, corio_http_response **out, const char *method,
                         const char *path, const corio_http_header *headers, size_t nheaders,
                         const void *body, size_t len);

/* Await: corio_http_test_call with "GET", no header and no body. */
int corio_http_test_get(corio_http_test *t, corio_http_response **out, const char *path);

/* Await: frees the client (its idle connections are closed), shuts the
 * server down (corio_server_shutdown: requests still running get
 * CORIO_HTTP_TEST_DRAIN_MS to finish, then their handlers are cancelled)
 * and frees t.  The router is not touched.  Runs to its end even when the
 * calling task is cancelled.  Returns 0; CORIO_ETIMEDOUT if handlers still
 * running had to be cancelled (t is freed all the same: a test can assert
 * that none hung); CORIO_ENOTASK outside a task, and then nothing is freed.
 * t may be NULL (returns 0). */
int corio_http_test_stop(corio_http_test *t);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_HTTP_TEST_H */
