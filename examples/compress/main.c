/* SPDX-License-Identifier: MIT */
/* gzip-compressed responses, whole and streamed:
 *
 *     GET /data.json    ->  10 KiB of JSON (10,240 bytes), gzip when the client asks
 *     GET /events?n=N   ->  text/event-stream, an event every --interval (N of them,
 *                           or until shutdown), each one compressed and flushed
 *     GET /secret.json  ->  a small token beside reflected input: never compressed
 *
 *     ./compress --port 8080 [--level 1..9] [--min-size BYTES] [--interval 1s]
 *     curl --compressed -v http://127.0.0.1:8080/data.json
 *     curl --compressed -N http://127.0.0.1:8080/events
 *
 * The ideas it shows:
 *  - Compression is middleware: corio_router_use(router,
 *    corio_http_compress_middleware, gz) wraps every route, and the
 *    handlers do not change.  Whether a response is compressed is decided
 *    when its head goes out: the client's Accept-Encoding (q-values
 *    included), the Content-Type, the size (--min-size), and what the
 *    handler set (a Content-Encoding of its own, Cache-Control:
 *    no-transform).  Responses that could be compressed say
 *    "Vary: Accept-Encoding" either way, for caches.
 *  - A stream is compressed write by write: each corio_res_write is
 *    flushed through deflate, so an event reaches the browser as soon as it
 *    is written, and the deflate stream (about 280 KiB at the defaults) is
 *    freed as the response ends.
 *  - corio_res_no_compress for a response that carries a secret next to
 *    text the client chose (BREACH).
 * The runner's flags (--host, --port, --workers, ...) apply as everywhere;
 * SIGINT or SIGTERM drain and exit.
 */
#include <corio/corio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_SIZE 10240

static char data[DATA_SIZE + 1];
static int64_t level = 1, min_size = 1024;
static uint64_t interval_ms = 1000;
static corio_http_compress *gz;

/* Deterministic records, as an API would return them: the same bytes on
 * every start (bench/compress_bench.sh serves them from nginx too). */
static void make_data(void) {
    static const char *const names[] = {"Ada",     "Grace",    "Linus",  "Ken",    "Dennis",
                                        "Barbara", "Margaret", "Donald", "Edsger", "Frances"};
    static const char *const cities[] = {"Paris", "Berlin", "Lisbon", "Oslo", "Tokyo", "Lima"};
    uint32_t x = 2463534242u; /* xorshift32 */
    size_t n = 1;
    data[0] = '[';
    for (int i = 1;; i++) {
        char rec[256];
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        uint32_t a = x;
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        uint32_t b = x;
        int len = snprintf(rec, sizeof rec,
                           "%s{\"id\":%d,\"name\":\"%s %c.\",\"email\":\"user%u@example.com\","
                           "\"city\":\"%s\",\"active\":%s,\"score\":%u.%02u,"
                           "\"created\":\"2026-%02u-%02uT%02u:%02u:00Z\"}",
                           i > 1 ? "," : "", i, names[a % 10], 'A' + (int)(b % 26), b % 100000,
                           cities[b % 6], a & 1 ? "true" : "false", a % 1000, b % 100, 1 + a % 12,
                           1 + b % 28, a % 24, b % 60);
        if (n + (size_t)len + 1 > DATA_SIZE)
            break;
        memcpy(data + n, rec, (size_t)len);
        n += (size_t)len;
    }
    while (n < DATA_SIZE - 1) /* pad to exactly 10 KiB, as JSON allows */
        data[n++] = ' ';
    data[n++] = ']';
    data[n] = '\0';
}

static int get_data(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    int rc = corio_res_header(res, "Cache-Control", "no-cache");
    return rc ? rc : corio_res_send(res, 200, "application/json", data, DATA_SIZE);
}

static int get_events(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv v;
    long n = -1; /* until shutdown */
    if (corio_req_query(req, "n", &v)) {
        char buf[16];
        snprintf(buf, sizeof buf, "%.*s", (int)(v.len < 15 ? v.len : 15), v.ptr);
        n = strtol(buf, NULL, 10);
    }
    int rc = corio_res_header(res, "Cache-Control", "no-cache");
    if (rc == 0)
        rc = corio_res_start(res, 200, "text/event-stream");
    for (long i = 0; rc == 0 && i != n && !corio_req_draining(req); i++) {
        char ev[128];
        int len =
            snprintf(ev, sizeof ev, "id: %ld\ndata: {\"tick\":%ld,\"status\":\"ok\"}\n\n", i, i);
        rc = corio_res_write(res, ev, (size_t)len);
        if (rc == 0 && i + 1 != n)
            rc = corio_sleep(interval_ms);
    }
    if (rc == CORIO_ECANCELED || rc == CORIO_EPIPE || rc == CORIO_ECONNRESET)
        return 0; /* the client left, or the drain deadline came: nobody to answer */
    return rc ? rc : corio_res_end(res);
}

/* A per-session token next to the client's own text: compressing both
 * would let an attacker who controls `q` guess the token byte by byte from
 * the compressed sizes (BREACH). */
static int get_secret(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv q = {"", 0};
    corio_req_query(req, "q", &q);
    char body[2048];
    int len = snprintf(body, sizeof body, "{\"token\":\"%s\",\"q\":\"%.*s\"}", "3f2a9c81d4e7b605",
                       (int)(q.len > 1000 ? 1000 : q.len), q.ptr);
    corio_res_no_compress(res);
    return corio_res_send(res, 200, "application/json", body, (size_t)len);
}

/* Once the flags are parsed: the compressor, wrapping every route. */
static int setup(void *arg) {
    corio_router *router = arg;
    corio_http_compress_opts o = {.level = (int)level, .min_size = (size_t)min_size};
    int rc = corio_http_compress_new(&gz, &o);
    if (rc == 0)
        rc = corio_router_use(router, corio_http_compress_middleware, gz);
    if (rc) {
        fprintf(stderr, "compress: cannot set up compression: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    static const corio_app_flag flags[] = {
        {.name = "level",
         .type = CORIO_APP_FLAG_INT,
         .target = &level,
         .min = 1,
         .max = 9,
         .help = "gzip level, 1 (fastest) to 9 (smallest)"},
        {.name = "min-size",
         .type = CORIO_APP_FLAG_INT,
         .target = &min_size,
         .min = 1,
         .max = INT32_MAX,
         .help = "bodies shorter than this many bytes go uncompressed"},
        {.name = "interval",
         .type = CORIO_APP_FLAG_DURATION,
         .target = &interval_ms,
         .min = 1,
         .max = 3600000,
         .help = "time between two events of /events"},
    };
    make_data();
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "compress: out of memory\n");
        return 1;
    }
    if (corio_router_add(router, "GET", "/data.json", get_data, NULL) != 0 ||
        corio_router_add(router, "GET", "/events", get_events, NULL) != 0 ||
        corio_router_add(router, "GET", "/secret.json", get_secret, NULL) != 0) {
        fprintf(stderr, "compress: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    corio_app app = {
        .name = "compress",
        .description = "gzip-compressed JSON and server-sent events",
        .default_port = 8080,
        .flags = flags,
        .nflags = sizeof flags / sizeof flags[0],
        .setup = setup,
        .setup_arg = router,
    };
    int code = corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
    corio_http_compress_free(gz); /* after the router and every worker are done with it */
    return code;
}
