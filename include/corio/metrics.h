/* SPDX-License-Identifier: MIT */
/* corio/metrics.h — health checks and Prometheus metrics for an HTTP server.
 *
 *     corio_health_mount(router, NULL, NULL);   // GET /healthz, GET /readyz
 *     corio_metrics_mount(router, NULL);        // GET /metrics
 *
 * Health.  /healthz answers 200 "ok" from a handler on the worker's loop:
 * a loop that is stuck (a handler blocking the thread) answers nothing, and
 * the probe times out.  /readyz answers 200 "ready", or 503 "draining" once
 * the server has begun its graceful shutdown (a load balancer then stops
 * sending it traffic while the requests in progress finish), or 503 "not
 * ready" while the app's readiness callback (corio_health_set_ready) says
 * so.  During a drain the listening socket is closed and idle keep-alive
 * connections are closed too, so the 503 is what a request arriving behind
 * one in progress on its connection gets; a new probe is refused (which a
 * readiness probe counts as not ready, as it should).  Mounted on the
 * runner's admin listener (--admin, corio/app.h: where the runner mounts
 * all three when the app brings no admin router), they answer through the
 * drain instead: /readyz 503 "draining" from its start (also under a
 * supervisor, whichever worker answers) until the last request is done.
 *
 * Metrics.  /metrics answers in the Prometheus text exposition format
 * (version 0.0.4):
 *
 *   corio_http_requests_total{method,route,status}   counter: requests answered;
 *       route is the matched route's pattern ("/users/{id}", never the raw
 *       path), "(unmatched)" for a 404 or 405 answer, "(rejected)" for a
 *       request the server refused before routing (a bad or oversized head,
 *       a header timeout), "(other)" for routes past the 256th; status is
 *       the class ("2xx" ... "5xx"), "none" when no response was started
 *       (the handler gave it up, the client left)
 *   corio_http_request_duration_seconds              histogram: from the
 *       request's head complete to its response complete (queued or sent)
 *   corio_http_request_bytes_total                   counter: request heads
 *       as sent plus body bytes read (chunk framing not counted)
 *   corio_http_response_body_bytes_total             counter: response body
 *       bytes handed to the connection (as in the access log; heads not counted)
 *   corio_http_rejected_total{reason}                counter: requests the
 *       server answered itself for a limit or bad input: bad_request (400),
 *       header_timeout and body_timeout (408), body_too_large (413),
 *       uri_too_long (414), header_too_large (431), not_implemented (501),
 *       version_not_supported (505); send_timeout: responses cut short
 *       because the client stopped reading
 *   corio_connections_open                           gauge
 *   corio_connections_accepted_total                 counter
 *   corio_connections_max_conns_waits_total          counter: times a server at
 *       --max-conns left a connection waiting in the kernel's backlog
 *   corio_accept_errors_total{kind}                  counter: fd_limit
 *       (EMFILE/ENFILE), no_memory, other.  Out of descriptors, libuv
 *       sheds waiting connections itself (it frees a reserve descriptor,
 *       accepts and closes them) and tells corio nothing: fd_limit counts
 *       only what that could not shed.  Watch the process's descriptors
 *       (node exporter, /proc/PID/fd) against its limit as well.
 *   corio_tasks_live                                 gauge: live tasks
 *   corio_loop_lag_seconds                           histogram: how late a
 *       100 ms timer fires on each worker's loop
 *   corio_loop_lag_last_seconds{worker}, corio_loop_lag_max_seconds{worker}
 *                                                    gauges, per live worker
 *   corio_workers_live                               gauge
 *   and every gauge registered with corio_metrics_gauge.
 *
 * Whole server, whichever worker answers.  Every worker of a supervisor
 * (--workers N) counts in its own slot of one shared memory segment, made
 * before the workers fork (MAP_SHARED|MAP_ANONYMOUS; the runner prepares it
 * when metrics are mounted).  /metrics sums every slot, so a scraper whose
 * connection the kernel hands to any SO_REUSEPORT worker sees the whole
 * server.  A worker that dies is replaced in its slot and continues its
 * counters: counters never go down while the supervisor lives.  Gauges
 * (open connections, live tasks, app gauges) are summed over live workers
 * only; the lag gauges are labelled with the worker's slot.  Counting costs
 * a few plain stores per request into the worker's own slot: no lock, no
 * allocation, no formatting (formatting happens at scrape time).
 *
 * Counting starts when corio_metrics_mount is first called (before that,
 * nothing is counted).  Mount metrics and register gauges before
 * corio_app_main / corio_http_app_main, as the routes themselves: the
 * routes and gauges known when the workers fork are what every worker can
 * name.  Counters are per process tree; several servers (an app's main and
 * admin listeners) in one process count together.  A process running loops
 * on several threads may lose increments (never tear a value): count from
 * one loop thread per process, as the runner does.
 */
#ifndef CORIO_METRICS_H
#define CORIO_METRICS_H

#include <stdbool.h>

#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Adds GET routes answering the liveness and readiness probes described
 * above.  `healthz` and `readyz` are their patterns; NULL means "/healthz"
 * and "/readyz".  Returns 0, or corio_router_add's errors (CORIO_EINVAL,
 * CORIO_EALREADY, CORIO_ENOMEM); on an error /healthz may have been added
 * without /readyz.  Strings are copied. */
int corio_health_mount(corio_router *r, const char *healthz, const char *readyz);

/* The app's readiness: /readyz answers 503 "not ready" while ready(arg)
 * returns false (a cache still warming, a backend unreachable), 200
 * otherwise; it is called on the loop for each /readyz request and must not
 * await.  One callback per process, set before serving; NULL: always ready
 * (but for a drain).  `arg` is borrowed. */
void corio_health_set_ready(bool (*ready)(void *arg), void *arg);

/* Adds a GET route answering the metrics described above at `path` (NULL:
 * "/metrics") and starts counting.  Returns 0, CORIO_ENOMEM (the shared
 * segment or a buffer), or corio_router_add's errors.  The string is
 * copied. */
int corio_metrics_mount(corio_router *r, const char *path);

/* A gauge of the app's (a backend pool's idle and busy connections, a queue's
 * depth): every worker calls fn(arg) on its loop every 100 ms and at each
 * scrape it answers (fn must not await, and should be cheap), and /metrics
 * shows the sum over the live workers as `name` with the HELP text `help`.
 * Register before the workers fork (before corio_app_main).  Returns 0,
 * CORIO_EINVAL for a name that is not a Prometheus metric name
 * ([a-zA-Z_:][a-zA-Z0-9_:]*), one starting with "corio_" (corio's own
 * families: a gauge repeating one would break every scrape), or a NULL fn,
 * CORIO_EALREADY for a name
 * registered already, CORIO_ERANGE past 32 gauges, CORIO_EBUSY once the
 * workers have forked, CORIO_ENOMEM.  Strings are copied; arg is borrowed. */
int corio_metrics_gauge(const char *name, const char *help, double (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_METRICS_H */
