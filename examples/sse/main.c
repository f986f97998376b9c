/* SPDX-License-Identifier: MIT */
/* A server-sent-events clock:
 *
 *     GET /clock  ->  text/event-stream, "data: 2026-01-02T03:04:05Z" every second
 *     GET /       ->  a small page that shows it with an EventSource
 *
 *     ./sse --port 8080     then open http://127.0.0.1:8080/ (or curl -N .../clock)
 *
 * The ideas it shows:
 *  - A streamed response: corio_res_start() sends the head (chunked), each
 *    corio_res_write() one event, and corio_sleep() waits for the next second
 *    in this connection's task while every other connection goes on.
 *  - Ending on shutdown.  On SIGTERM the server stops accepting and lets
 *    open requests finish for --drain-timeout; a clock never finishes by
 *    itself, so it asks corio_req_draining() every second and then sends a
 *    last "bye" event and ends.  Should the drain deadline come first, its
 *    task is cancelled (reason "shutdown") and the same goodbye goes out
 *    inside a shield scope (a cancelled task's writes fail otherwise).  The
 *    page closes its EventSource on "bye" instead of reconnecting.
 *  - A client that goes away cancels its handler too (reason "peer gone"):
 *    the same path out, without the goodbye.
 */
#include <corio/corio.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char page[] =
    "<!doctype html>\n"
    "<meta charset=\"utf-8\">\n"
    "<title>corio SSE clock</title>\n"
    "<h1 id=\"now\">connecting...</h1>\n"
    "<p id=\"state\"></p>\n"
    "<script>\n"
    "const es = new EventSource('/clock');\n"
    "es.onmessage = e => { document.getElementById('now').textContent = e.data; };\n"
    "es.onerror = () => { document.getElementById('state').textContent = 'reconnecting...'; };\n"
    "es.addEventListener('bye', e => {\n"
    "  es.close();\n"
    "  document.getElementById('state').textContent = 'server: ' + e.data;\n"
    "});\n"
    "</script>\n";

static int index_page(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_send(res, 200, "text/html; charset=utf-8", page, sizeof page - 1);
}

/* Milliseconds until the wall clock reaches second t (0 if it has). */
static uint64_t ms_until(time_t t) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = ((long long)t - ts.tv_sec) * 1000 - ts.tv_nsec / 1000000;
    return ms > 0 ? (uint64_t)ms : 0;
}

static int send_time(corio_res *res, time_t t) {
    char ev[64];
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(ev, sizeof ev, "data: %Y-%m-%dT%H:%M:%SZ\n\n", &tm);
    return corio_res_write(res, ev, n);
}

static int clock_stream(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    int rc = corio_res_header(res, "Cache-Control", "no-cache");
    if (rc == 0)
        rc = corio_res_start(res, 200, "text/event-stream");
    /* Each event shows the second it was due for: the loop's timers and
     * the wall clock may disagree by a millisecond. */
    for (time_t second = time(NULL); rc == 0 && !corio_req_draining(req); second++) {
        rc = send_time(res, second);
        if (rc == 0)
            rc = corio_sleep(ms_until(second + 1));
    }
    /* Shutting down: say goodbye and end the stream (within a second of
     * SIGTERM; the drain deadline would cancel us otherwise). */
    if (corio_req_draining(req) ||
        corio_task_cancel_reason(corio_current()) == CORIO_CANCEL_SHUTDOWN) {
        static const char bye[] = "event: bye\ndata: shutting down\n\n";
        CORIO_WITH(corio_shield_scope()) {
            rc = corio_res_write(res, bye, sizeof bye - 1);
        }
        return rc;
    }
    /* The client left: nobody to tell. */
    return rc == CORIO_ECANCELED || rc == CORIO_EPIPE || rc == CORIO_ECONNRESET ? 0 : rc;
}

int main(int argc, char **argv) {
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "sse: out of memory\n");
        return 1;
    }
    if (corio_router_add(router, "GET", "/", index_page, NULL) != 0 ||
        corio_router_add(router, "GET", "/clock", clock_stream, NULL) != 0) {
        fprintf(stderr, "sse: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    corio_app app = {
        .name = "sse",
        .description = "server-sent-events clock (GET /clock; GET / for a page that shows it)",
        .default_port = 8080,
    };
    return corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
}
