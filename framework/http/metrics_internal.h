/* SPDX-License-Identifier: MIT */
/* The metrics' hooks (http/metrics.c; see corio/metrics.h): what the
 * connection loop, the dispatcher and the router tell the metrics, and what
 * the runner calls around its fork. */
#ifndef CORIO_HTTP_METRICS_INTERNAL_H
#define CORIO_HTTP_METRICS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct corio__hconn;

/* Route ids for the requests counter: one per (method, pattern) added to
 * any router while the metrics can still name it, in order; then these. */
#define CORIO__METRICS_MAX_ROUTES 256
#define CORIO__ROUTE_OTHER CORIO__METRICS_MAX_ROUTES /* past the table: "(other)" */
#define CORIO__ROUTE_UNMATCHED 0xfffe                /* 404 and 405: "(unmatched)" */
#define CORIO__ROUTE_REJECTED 0xffff                 /* refused before routing: "(rejected)" */

/* Set by corio_metrics_mount: requests are counted. */
extern bool corio__metrics_on;

/* The route id of (method, pattern), given one the first time it is seen
 * (router.c, corio_router_add).  Once the workers have forked a new pair
 * gets CORIO__ROUTE_OTHER: its name would be known to one worker only. */
uint16_t corio__metrics_route_id(const char *method, const char *pattern);

/* Per connection run (corio_http_serve's start): starts this loop's lag
 * timer the first time. */
void corio__metrics_conn_begin(void);

/* A request's exchange is over (its response complete, given up, or never
 * started); c->metrics_route says which route, c->started_ns when its head
 * was complete (c->reject: the status the server chose, if it did).
 * A few relaxed stores into this process's slot. */
void corio__metrics_request(struct corio__hconn *c);

/* The runner, before it forks workers (or, with one worker, before it
 * serves): makes the shared segment with room for `workers` (2 slots a
 * worker: a SIGHUP replacement runs beside the worker it replaces, each
 * in a slot of its own) and marks the route and gauge tables complete;
 * with one worker, the slot corio_metrics_mount gave this process is it.
 * Nothing to do unless metrics are mounted.  Returns 0 or CORIO_ENOMEM (then each process counts
 * alone). */
int corio__metrics_prepare(size_t workers);

/* The supervisor reaped `pid`: a slot it owned is free again (its counters
 * stay, summed as ever; its gauges no longer count, and a later process
 * given the same pid does not revive them). */
void corio__metrics_reaped(pid_t pid);

/* A worker, just forked, before it serves: takes a slot of the segment,
 * slot `hint` if it is free (its predecessor's, whose counters it then
 * continues), else any other free one.  Gauges of the slot start at 0. */
void corio__metrics_worker(size_t hint);

/* The server (this process, or the supervisor of this worker) has begun
 * its graceful shutdown: /readyz answers 503 "draining" from now on,
 * whichever listener asks (the admin listener outlives the drain). */
void corio__health_stopping(void);

/* This worker was replaced by a SIGHUP roll and drains, but the server
 * does not: /readyz answers 200 on its listeners as they close (unless
 * corio__health_stopping follows). */
void corio__health_retired(void);

#endif
