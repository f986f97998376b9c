/* SPDX-License-Identifier: MIT */
/* gzip response compression (framework/http/compress.c and its hooks in
 * response.c and dispatch.c), through corio/http_test.h: a router served on
 * loopback, corio's HTTP client for HTTP/1.1 and a plain socket for what the
 * client cannot send (HTTP/1.0).  Every compressed body is decoded with
 * zlib's inflate and compared with what the handler sent.
 *
 * Checks run inside the loop's tasks record the first failure (where and
 * what) and end the task's part; the test asserts that none was recorded
 * after corio_run returns, which also proves the loop closed clean. */
#include "corio_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#ifdef CORIO_HAVE_GZIP
#include <zlib.h>

#include "http/http_internal.h" /* corio__gz_live_bytes */

/* ---- failures recorded inside tasks --------------------------------------------------------- */

static char failure[512];

static bool failf(int line, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool failf(int line, const char *fmt, ...) {
    if (failure[0])
        return false;
    int n = snprintf(failure, sizeof failure, "line %d: ", line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(failure + n, sizeof failure - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

#define CHECK(cond) ((cond) ? true : failf(__LINE__, "%s", #cond))
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!CHECK(cond))                                                                          \
            return CORIO_EFAILED;                                                                  \
    } while (0)
#define REQUIRE_RC(expr, want)                                                                     \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != (want)) {                                                                       \
            failf(__LINE__, "%s: %s, expected %s", #expr, corio_err_name(rc_),                     \
                  corio_err_name(want));                                                           \
            return CORIO_EFAILED;                                                                  \
        }                                                                                          \
    } while (0)
#define REQUIRE_STR(got, want)                                                                     \
    do {                                                                                           \
        const char *got_ = (got), *want_ = (want);                                                 \
        if (!got_ || strcmp(got_, want_) != 0) {                                                   \
            failf(__LINE__, "%s is \"%s\", expected \"%s\"", #got, got_ ? got_ : "(none)", want_); \
            return CORIO_EFAILED;                                                                  \
        }                                                                                          \
    } while (0)

/* ---- bodies --------------------------------------------------------------------------------- */

#define JSON_SIZE (10 * 1024)
#define BIG_SIZE (1024 * 1024)

static char json[JSON_SIZE + 1]; /* JSON-like records, as an API would send */
static char big[BIG_SIZE];       /* random letters: compresses to ~60%, many output slices */

static void make_bodies(void) {
    uint32_t x = 12345;
    size_t n = 0;
    n += (size_t)snprintf(json, sizeof json, "[");
    for (int i = 1; n < JSON_SIZE - 120; i++) {
        x = x * 1103515245u + 12345u;
        n += (size_t)snprintf(json + n, sizeof json - n,
                              "%s{\"id\":%d,\"name\":\"user %u\",\"score\":%u.%02u,\"active\":%s}",
                              i > 1 ? "," : "", i, x % 997, x % 1000, x % 100,
                              x & 1 ? "true" : "false");
    }
    while (n < JSON_SIZE - 1)
        json[n++] = ' ';
    json[n++] = ']';
    json[n] = '\0';
    for (size_t i = 0; i < BIG_SIZE; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (char)('a' + (x >> 16) % 26);
    }
}

/* Decodes a whole gzip stream.  Returns the decoded length, or -1. */
static long gunzip(const void *in, size_t n, char *out, size_t cap) {
    z_stream z = {0};
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return -1;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    long got = rc == Z_STREAM_END && z.avail_in == 0 ? (long)z.total_out : -1;
    inflateEnd(&z);
    return got;
}

static char decoded[BIG_SIZE + 1];

/* Whether a response body is the gzip of want[0..n). */
static bool gunzips_to(const corio_http_response *r, const char *want, size_t n) {
    size_t len;
    const char *body = corio_http_response_body(r, &len);
    long got = gunzip(body, len, decoded, sizeof decoded);
    return got == (long)n && memcmp(decoded, want, n) == 0;
}

/* Whether response r has a field `name` with exactly `value` (any of its
 * lines). */
static bool has(const corio_http_response *r, const char *name, const char *value) {
    for (size_t i = 0; i < corio_http_response_header_count(r); i++) {
        const char *k, *v;
        if (corio_http_response_header_at(r, i, &k, &v) == 0 && strcasecmp(k, name) == 0 &&
            strcmp(v, value) == 0)
            return true;
    }
    return false;
}

/* ---- handlers ------------------------------------------------------------------------------- */

/* Files: corio_res_file on a compressed route (the router's middleware). */
static char file_dir[64];

static int h_file(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    char path[128];
    snprintf(path, sizeof path, "%s/%s", file_dir, (const char *)arg);
    return corio_res_file(res, path, NULL);
}

static int h_json(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_send(res, 200, "application/json", json, JSON_SIZE);
}

static int h_small(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_send(res, 200, "application/json", json, 1000); /* below 1024 */
}

static int h_png(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_send(res, 200, "image/png", json, JSON_SIZE);
}

static int h_big(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_send(res, 200, "text/plain; charset=utf-8", big, BIG_SIZE);
}

/* Sets the field named by the route (arg: "Name: value"), then sends the JSON. */
static int h_field(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    char name[64];
    const char *colon = strchr(arg, ':');
    snprintf(name, sizeof name, "%.*s", (int)(colon - (const char *)arg), (const char *)arg);
    int rc = corio_res_header(res, name, colon + 2);
    return rc ? rc : corio_res_send(res, 200, "application/json", json, JSON_SIZE);
}

static int h_ctype_field(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    int rc = corio_res_header(res, "Content-Type", "Text/HTML; charset=utf-8");
    return rc ? rc : corio_res_send(res, 200, NULL, json, JSON_SIZE);
}

static int h_partial(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    int rc = corio_res_header(res, "Content-Range", "bytes 0-10239/20000");
    return rc ? rc : corio_res_send(res, 206, "application/json", json, JSON_SIZE);
}

static int h_status(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    return corio_res_send(res, (int)(intptr_t)arg, "application/json", NULL, 0);
}

static int h_no_compress(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    corio_res_no_compress(res);
    return corio_res_send(res, 200, "application/json", json, JSON_SIZE);
}

/* A chunked stream of events; ?abort=1 gives it up after two. */
#define EVENTS 40
static size_t live_mid; /* corio__gz_live_bytes() in mid-stream */

static size_t event_text(char *buf, size_t cap, int i) {
    return (size_t)snprintf(buf, cap, "id: %d\nevent: tick\ndata: {\"n\":%d,\"msg\":\"hello\"}\n\n",
                            i, i * 7);
}

static int h_stream(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv v;
    bool abort_it = corio_req_query(req, "abort", &v);
    int rc = corio_res_start(res, 200, "text/event-stream");
    for (int i = 0; rc == 0 && i < EVENTS; i++) {
        char ev[128];
        rc = corio_res_write(res, ev, event_text(ev, sizeof ev, i));
        if (i == 1)
            live_mid = corio__gz_live_bytes();
        if (i == 1 && abort_it) {
            corio_res_abort(res);
            return 0;
        }
    }
    return rc ? rc : corio_res_end(res);
}

/* corio_res_start_length: JSON_SIZE bytes in pieces of 1000; ?short=1 ends
 * 10 bytes short. */
static int h_length(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_strv v;
    bool cut = corio_req_query(req, "short", &v);
    size_t n = cut ? JSON_SIZE - 10 : JSON_SIZE;
    int rc = corio_res_start_length(res, 200, "application/json", JSON_SIZE);
    for (size_t off = 0; rc == 0 && off < n; off += 1000)
        rc = corio_res_write(res, json + off, n - off < 1000 ? n - off : 1000);
    if (rc == 0)
        rc = corio_res_end(res);
    return cut && rc == CORIO_EINVAL ? 0 : rc; /* short on purpose: no error to log */
}

/* Server-sent events in step with the client: event i is written, then the
 * handler waits (up to 3 s) until the client has decoded it. */
#define LIVE_EVENTS 3
typedef struct live {
    corio_event seen[LIVE_EVENTS];
    int waited_rc[LIVE_EVENTS];
} live;

static int h_live(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    live *l = arg;
    int rc = corio_res_start(res, 200, "text/event-stream");
    for (int i = 0; rc == 0 && i < LIVE_EVENTS; i++) {
        char ev[128];
        rc = corio_res_write(res, ev, event_text(ev, sizeof ev, i));
        l->waited_rc[i] = CORIO_ETIMEDOUT;
        CORIO_WITH(corio_timeout_scope(3000)) {
            l->waited_rc[i] = corio_event_wait(&l->seen[i]);
        }
    }
    return rc ? rc : corio_res_end(res);
}

/* ---- the server ----------------------------------------------------------------------------- */

typedef struct env {
    corio_router *router;
    corio_http_test *t;
    corio_http_compress *gz, *tiny;
    live live;
} env;

typedef int (*body_fn)(env *e);

static const char *const f_encoded = "Content-Encoding: br";
static const char *const f_no_transform = "Cache-Control: public, no-transform";
static const char *const f_etag = "ETag: \"v1-abc\"";
static const char *const f_weak = "ETag: W/\"v2\"";
static const char *const f_vary = "Vary: Origin";
static const char *const f_vary_ae = "Vary: accept-encoding, Origin";

/* The routes every test serves: the default compressor on all of them,
 * and /tiny/... with a compressor whose memory is too small for any stream. */
static int build_router(env *e) {
    corio_router *r;
    int rc = corio_router_new(&r);
    if (rc)
        return rc;
    e->router = r;
    corio_http_compress_opts tiny = {.max_memory = 64 * 1024};
    struct {
        const char *path;
        corio_http_handler fn;
        const void *arg;
    } routes[] = {
        {"/json", h_json, NULL},
        {"/small", h_small, NULL},
        {"/png", h_png, NULL},
        {"/big", h_big, NULL},
        {"/encoded", h_field, f_encoded},
        {"/no-transform", h_field, f_no_transform},
        {"/etag", h_field, f_etag},
        {"/weak", h_field, f_weak},
        {"/vary", h_field, f_vary},
        {"/vary-ae", h_field, f_vary_ae},
        {"/ctype-field", h_ctype_field, NULL},
        {"/partial", h_partial, NULL},
        {"/204", h_status, (void *)(intptr_t)204},
        {"/304", h_status, (void *)(intptr_t)304},
        {"/no-compress", h_no_compress, NULL},
        {"/stream", h_stream, NULL},
        {"/length", h_length, NULL},
        {"/live", h_live, &e->live},
        {"/tiny/json", h_json, NULL},
        {"/tiny/stream", h_stream, NULL},
        {"/bogus", h_json, NULL},
        {"/file/small.json", h_file, "small.json"},
        {"/file/big.json", h_file, "big.json"},
        {"/file/pic.png", h_file, "pic.png"},
    };
    for (size_t i = 0; rc == 0 && i < sizeof routes / sizeof routes[0]; i++)
        rc = corio_router_add(r, "GET", routes[i].path, routes[i].fn, (void *)routes[i].arg);
    if (rc == 0)
        rc = corio_http_compress_new(&e->tiny, &tiny);
    if (rc == 0)
        rc = corio_router_use(r, corio_http_compress_middleware, NULL); /* the defaults */
    if (rc == 0)
        rc = corio_route_use(r, "GET", "/tiny/json", corio_http_compress_middleware, e->tiny);
    if (rc == 0)
        rc = corio_route_use(r, "GET", "/tiny/stream", corio_http_compress_middleware, e->tiny);
    /* The options given where the compressor made of them belongs. */
    static const corio_http_compress_opts mistaken = {.level = 6};
    if (rc == 0)
        rc = corio_route_use(r, "GET", "/bogus", corio_http_compress_middleware, (void *)&mistaken);
    return rc;
}

static int serve_main(void *arg) {
    env *e = ((void **)arg)[0];
    body_fn body = (body_fn)((void **)arg)[1];
    int rc = corio_http_test_start(&e->t, e->router, NULL);
    if (rc)
        return failf(__LINE__, "corio_http_test_start: %s", corio_err_name(rc)), rc;
    rc = body(e);
    int src = corio_http_test_stop(e->t);
    return rc ? rc : src;
}

/* Runs body against a fresh server; asserts nothing failed. */
static void run(body_fn body) {
    env e = {0};
    for (int i = 0; i < LIVE_EVENTS; i++)
        corio_event_init(&e.live.seen[i]);
    failure[0] = '\0';
    assert_int_equal(build_router(&e), 0);
    void *args[2] = {&e, (void *)body};
    int rc = corio_run(serve_main, args);
    corio_router_free(e.router);
    corio_http_compress_free(e.tiny);
    if (failure[0])
        fail_msg("%s", failure);
    assert_int_equal(rc, 0);
    assert_int_equal(corio__gz_live_bytes(), 0); /* every deflate stream freed */
}

/* GET path with one Accept-Encoding field (NULL: none). */
static int get_ae(env *e, corio_http_response **out, const char *path, const char *ae) {
    corio_http_header h = {"Accept-Encoding", ae};
    return corio_http_test_call(e->t, out, "GET", path, ae ? &h : NULL, ae ? 1 : 0, NULL, 0);
}

/* ---- whole bodies --------------------------------------------------------------------------- */

static int json_compressed_body(env *e) {
    corio_http_response *r;
    REQUIRE_RC(get_ae(e, &r, "/json", "gzip, deflate, br"), 0);
    bool ok =
        CHECK(corio_http_response_status(r) == 200) && CHECK(has(r, "Content-Encoding", "gzip")) &&
        CHECK(has(r, "Vary", "Accept-Encoding")) &&
        CHECK(has(r, "Content-Type", "application/json")) && CHECK(gunzips_to(r, json, JSON_SIZE));
    uint64_t len = 0;
    size_t blen;
    corio_http_response_body(r, &blen);
    ok = ok && CHECK(corio_http_response_length(r, &len) && len == blen) &&
         CHECK(blen < JSON_SIZE / 3); /* JSON compresses well */
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_json_compressed_with_length_vary_and_decodes(void **state) {
    (void)state;
    run(json_compressed_body);
}

static int without_accept_encoding_body(env *e) {
    corio_http_response *r;
    REQUIRE_RC(get_ae(e, &r, "/json", NULL), 0);
    size_t len;
    const char *b = corio_http_response_body(r, &len);
    bool ok = CHECK(corio_http_response_header(r, "Content-Encoding") == NULL) &&
              CHECK(has(r, "Vary", "Accept-Encoding")) && CHECK(len == JSON_SIZE) &&
              CHECK(memcmp(b, json, len) == 0);
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_no_accept_encoding_sends_identity_with_vary(void **state) {
    (void)state;
    run(without_accept_encoding_body);
}

/* Accept-Encoding values and whether gzip is chosen (RFC 9110 12.5.3). */
static const struct {
    const char *ae;
    bool gzip;
} negotiation[] = {
    {"gzip", true},
    {"GZip", true},
    {"x-gzip", true},
    {"deflate, gzip;q=1.0, br", true},
    {"gzip ; q=0.3", true}, /* OWS around the weight */
    {"gzip;Q=0.5", true},   /* "q" is case-insensitive */
    {"gzip;q=0.5", true},   /* identity not weighed: acceptable, not preferred */
    {"gzip;q=0.8, identity;q=0.5", true},
    {"*", true},           /* gzip through the wildcard */
    {"br, *;q=0.1", true}, /* gzip and identity both 0.1: ours is gzip */
    {"identity;q=0, gzip", true},
    {"gzip;q=0", false}, /* refused */
    {"gzip;q=0.000", false},
    {"gzip;q=0, *", false}, /* the explicit refusal beats the wildcard */
    {"*;q=0", false},
    {"gzip;q=0.5, identity;q=0.8", false}, /* identity preferred */
    {"gzip;q=0.5, *", false},              /* identity through the wildcard, at 1 */
    {"gzip, gzip;q=0", false},             /* named twice: the refusal stands */
    {"gzip;q=2", false},                   /* a malformed weight counts as 0 */
    {"gzip;q=0.1234", false},
    {"gzip;q=1.001", false},
    {"gzip;q=", false},
    {"identity", false},
    {"deflate, br", false},
    {"gzipx", false},
    {"", false}, /* empty: no coding wanted */
    {" , ,", false},
};

static int negotiation_body(env *e) {
    for (size_t i = 0; i < sizeof negotiation / sizeof negotiation[0]; i++) {
        corio_http_response *r;
        REQUIRE_RC(get_ae(e, &r, "/json", negotiation[i].ae), 0);
        bool gz = corio_http_response_header(r, "Content-Encoding") != NULL;
        bool ok = gz == negotiation[i].gzip && has(r, "Vary", "Accept-Encoding") &&
                  (!gz || gunzips_to(r, json, JSON_SIZE));
        corio_http_response_free(r);
        if (!ok)
            return failf(__LINE__, "Accept-Encoding \"%s\": gzip %d, expected %d",
                         negotiation[i].ae, gz, negotiation[i].gzip),
                   CORIO_EFAILED;
    }
    /* Two fields make one list. */
    corio_http_header two[] = {{"Accept-Encoding", "br"}, {"accept-encoding", "gzip"}};
    corio_http_response *r;
    REQUIRE_RC(corio_http_test_call(e->t, &r, "GET", "/json", two, 2, NULL, 0), 0);
    bool ok = CHECK(has(r, "Content-Encoding", "gzip"));
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_accept_encoding_tokens_qvalues_wildcard_identity(void **state) {
    (void)state;
    run(negotiation_body);
}

/* Routes never compressed, for any client: no Content-Encoding of ours
 * and no Vary. */
static int never_body(env *e) {
    static const char *const paths[] = {"/small",   "/png", "/encoded",    "/no-transform",
                                        "/partial", "/204", "/no-compress"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        corio_http_response *r;
        REQUIRE_RC(get_ae(e, &r, paths[i], "gzip"), 0);
        const char *ce = corio_http_response_header(r, "Content-Encoding");
        size_t len;
        const char *b = corio_http_response_body(r, &len);
        bool ok = (ce == NULL || strcmp(ce, "br") == 0) &&
                  corio_http_response_header(r, "Vary") == NULL &&
                  (len == 0 || memcmp(b, json, len) == 0);
        corio_http_response_free(r);
        if (!ok)
            return failf(__LINE__, "%s was compressed or got Vary", paths[i]), CORIO_EFAILED;
    }
    return 0;
}

static void test_small_binary_encoded_ranges_204_and_opt_out_untouched(void **state) {
    (void)state;
    run(never_body);
}

static int fields_body(env *e) {
    corio_http_response *r;
    /* A strong ETag is weakened; a weak one stays. */
    REQUIRE_RC(get_ae(e, &r, "/etag", "gzip"), 0);
    bool ok = CHECK(has(r, "ETag", "W/\"v1-abc\"")) && CHECK(has(r, "Content-Encoding", "gzip"));
    corio_http_response_free(r);
    REQUIRE(ok);
    REQUIRE_RC(get_ae(e, &r, "/etag", NULL), 0); /* uncompressed: the handler's own */
    ok = CHECK(has(r, "ETag", "\"v1-abc\""));
    corio_http_response_free(r);
    REQUIRE(ok);
    REQUIRE_RC(get_ae(e, &r, "/weak", "gzip"), 0);
    ok = CHECK(has(r, "ETag", "W/\"v2\""));
    corio_http_response_free(r);
    REQUIRE(ok);
    /* The handler's Vary keeps its line, and ours is added beside it... */
    REQUIRE_RC(get_ae(e, &r, "/vary", "gzip"), 0);
    ok = CHECK(has(r, "Vary", "Origin")) && CHECK(has(r, "Vary", "Accept-Encoding")) &&
         CHECK(gunzips_to(r, json, JSON_SIZE));
    corio_http_response_free(r);
    REQUIRE(ok);
    /* ...unless it names Accept-Encoding already. */
    REQUIRE_RC(get_ae(e, &r, "/vary-ae", "gzip"), 0);
    ok = CHECK(!has(r, "Vary", "Accept-Encoding")) && CHECK(has(r, "Content-Encoding", "gzip"));
    corio_http_response_free(r);
    REQUIRE(ok);
    /* A Content-Type set as a field counts, case-insensitively. */
    REQUIRE_RC(get_ae(e, &r, "/ctype-field", "gzip"), 0);
    ok = CHECK(has(r, "Content-Encoding", "gzip")) && CHECK(gunzips_to(r, json, JSON_SIZE));
    corio_http_response_free(r);
    REQUIRE(ok);
    /* A 304 carries the Vary its 200 would (its type is compressible). */
    REQUIRE_RC(get_ae(e, &r, "/304", "gzip"), 0);
    ok = CHECK(corio_http_response_status(r) == 304) && CHECK(has(r, "Vary", "Accept-Encoding")) &&
         CHECK(corio_http_response_header(r, "Content-Encoding") == NULL);
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_etag_weakened_vary_merged_field_type_and_304(void **state) {
    (void)state;
    run(fields_body);
}

static int head_body(env *e) {
    corio_http_header h = {"Accept-Encoding", "gzip"};
    corio_http_response *r;
    REQUIRE_RC(corio_http_test_call(e->t, &r, "HEAD", "/json", &h, 1, NULL, 0), 0);
    size_t len;
    corio_http_response_body(r, &len);
    bool ok = CHECK(corio_http_response_status(r) == 200) &&
              CHECK(has(r, "Content-Encoding", "gzip")) &&
              CHECK(has(r, "Vary", "Accept-Encoding")) &&
              CHECK(corio_http_response_header(r, "Content-Length") == NULL) && CHECK(len == 0);
    corio_http_response_free(r);
    REQUIRE(ok);
    /* The connection goes on: the next answer is whole. */
    REQUIRE_RC(get_ae(e, &r, "/json", "gzip"), 0);
    ok = CHECK(gunzips_to(r, json, JSON_SIZE));
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_head_has_get_fields_without_content_length(void **state) {
    (void)state;
    run(head_body);
}

/* 1 MiB of random letters: compressed into many arena slices, queued with
 * flushes along the way.  A client of its own, with room for 4 MiB: a body
 * that came uncompressed fails the checks, not the read. */
static int big_body(env *e) {
    corio_http_client_opts o = {.max_body = 4 * BIG_SIZE};
    corio_http_client *c;
    REQUIRE_RC(corio_http_client_new(&c, &o), 0);
    char url[128];
    snprintf(url, sizeof url, "%s/big", corio_http_test_base(e->t));
    corio_http_header h = {"Accept-Encoding", "gzip"};
    corio_future *f = NULL;
    int rc = corio_http_request(c, &f, "GET", url, &h, 1, NULL, 0);
    if (rc == 0)
        rc = corio_await(f);
    bool ok = CHECK(rc == 0);
    if (ok) {
        const corio_http_response *r = corio_future_value(f);
        size_t len;
        corio_http_response_body(r, &len);
        ok = CHECK(has(r, "Content-Encoding", "gzip")) && CHECK(len < BIG_SIZE) &&
             CHECK(gunzips_to(r, big, BIG_SIZE));
    }
    if (f)
        corio_future_release(f);
    corio_http_client_free(c);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_large_body_compressed_in_slices(void **state) {
    (void)state;
    run(big_body);
}

/* ---- streams -------------------------------------------------------------------------------- */

static int stream_body(env *e) {
    corio_http_response *r;
    REQUIRE_RC(get_ae(e, &r, "/stream", "gzip"), 0);
    char want[EVENTS * 128];
    size_t n = 0;
    for (int i = 0; i < EVENTS; i++)
        n += event_text(want + n, sizeof want - n, i);
    bool ok = CHECK(has(r, "Transfer-Encoding", "chunked")) &&
              CHECK(has(r, "Content-Encoding", "gzip")) &&
              CHECK(has(r, "Vary", "Accept-Encoding")) && CHECK(gunzips_to(r, want, n)) &&
              /* a stream's memory at the defaults (corio/http.h: 278 KiB)... */
              CHECK(live_mid > 270 * 1024 && live_mid < 290 * 1024) &&
              /* ...given back with its end, before the client had it all */
              CHECK(corio__gz_live_bytes() == 0);
    corio_http_response_free(r);
    REQUIRE(ok);
    /* Not accepted: the same events as they are. */
    REQUIRE_RC(get_ae(e, &r, "/stream", "identity"), 0);
    size_t len;
    const char *b = corio_http_response_body(r, &len);
    ok = CHECK(corio_http_response_header(r, "Content-Encoding") == NULL) &&
         CHECK(has(r, "Vary", "Accept-Encoding")) && CHECK(len == n && memcmp(b, want, n) == 0);
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_chunked_stream_compressed_and_ended(void **state) {
    (void)state;
    run(stream_body);
}

/* Reads /live as an exchange, inflating each piece as it comes; event i
 * must decode before the handler writes event i + 1. */
static int live_body(env *e) {
    char url[128];
    snprintf(url, sizeof url, "%s/live", corio_http_test_base(e->t));
    corio_http_header h = {"Accept-Encoding", "gzip"};
    corio_http_req rq = {.url = url, .headers = &h, .nheaders = 1};
    corio_http_exchange *x;
    int rc, seen = 0;
    char out[4096], want[128];
    size_t have = 0;
    z_stream z = {0};
    REQUIRE(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
    CORIO_WITH_RC(rc, corio_http_open(corio_http_test_client(e->t), &rq, &x)) {
        const corio_http_response *r;
        if ((rc = corio_http_response_head(x, &r)) != 0 ||
            !CHECK(has(r, "Content-Encoding", "gzip")))
            break;
        const char *p;
        int n;
        while ((n = corio_http_read(x, &p)) > 0) {
            z.next_in = (Bytef *)(uintptr_t)p;
            z.avail_in = (uInt)n;
            while (z.avail_in) {
                z.next_out = (Bytef *)out + have;
                z.avail_out = (uInt)(sizeof out - have);
                int zrc = inflate(&z, Z_SYNC_FLUSH);
                if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
                    break;
                have = sizeof out - have - z.avail_out + have;
                if (zrc == Z_STREAM_END)
                    break;
            }
            /* Every event decoded so far: tell the handler. */
            while (seen < LIVE_EVENTS) {
                size_t len = event_text(want, sizeof want, seen);
                if (have < len || memcmp(out, want, len) != 0)
                    break;
                memmove(out, out + len, have - len);
                have -= len;
                corio_event_set(&e->live.seen[seen++]);
            }
        }
        rc = n;
    }
    inflateEnd(&z);
    REQUIRE_RC(rc, 0);
    REQUIRE(seen == LIVE_EVENTS && have == 0);
    for (int i = 0; i < LIVE_EVENTS; i++)
        if (e->live.waited_rc[i] != 0)
            return failf(__LINE__, "event %d did not reach the client before the next: %s", i,
                         corio_err_name(e->live.waited_rc[i])),
                   CORIO_EFAILED;
    return 0;
}

static void test_each_write_reaches_the_client_decodable_at_once(void **state) {
    (void)state;
    run(live_body);
}

static int length_body(env *e) {
    corio_http_response *r;
    REQUIRE_RC(get_ae(e, &r, "/length", "gzip"), 0);
    bool ok = CHECK(has(r, "Transfer-Encoding", "chunked")) &&
              CHECK(corio_http_response_header(r, "Content-Length") == NULL) &&
              CHECK(has(r, "Content-Encoding", "gzip")) && CHECK(gunzips_to(r, json, JSON_SIZE));
    corio_http_response_free(r);
    REQUIRE(ok);
    /* Not accepted: the Content-Length body as it was. */
    REQUIRE_RC(get_ae(e, &r, "/length", NULL), 0);
    ok = CHECK(has(r, "Content-Length", "10240")) && CHECK(has(r, "Vary", "Accept-Encoding"));
    corio_http_response_free(r);
    REQUIRE(ok);
    /* Ended short of its length: cut, the client sees no complete body. */
    int rc = get_ae(e, &r, "/length?short=1", "gzip");
    if (rc == 0)
        corio_http_response_free(r);
    REQUIRE(rc == CORIO_EBADMSG || rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    return 0;
}

static void test_length_stream_becomes_chunked_and_short_end_is_cut(void **state) {
    (void)state;
    run(length_body);
}

static int abort_body(env *e) {
    corio_http_response *r;
    int rc = get_ae(e, &r, "/stream?abort=1", "gzip");
    if (rc == 0)
        corio_http_response_free(r);
    REQUIRE(rc == CORIO_EBADMSG || rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    /* The stream's memory went when the handler returned. */
    REQUIRE(corio__gz_live_bytes() == 0);
    return 0;
}

static void test_stream_given_up_frees_its_deflate_memory(void **state) {
    (void)state;
    run(abort_body);
}

/* Past max_memory: uncompressed, never failed. */
static int budget_body(env *e) {
    static const char *const paths[] = {"/tiny/json", "/tiny/stream"};
    for (size_t i = 0; i < 2; i++) {
        corio_http_response *r;
        REQUIRE_RC(get_ae(e, &r, paths[i], "gzip"), 0);
        bool ok = CHECK(corio_http_response_status(r) == 200) &&
                  CHECK(corio_http_response_header(r, "Content-Encoding") == NULL) &&
                  CHECK(has(r, "Vary", "Accept-Encoding"));
        corio_http_response_free(r);
        REQUIRE(ok);
    }
    return 0;
}

static int bogus_body(env *e) {
    corio_http_response *r;
    REQUIRE_RC(get_ae(e, &r, "/bogus", "gzip"), 0);
    bool ok = CHECK(corio_http_response_status(r) == 500);
    corio_http_response_free(r);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_middleware_arg_not_a_compressor_is_refused(void **state) {
    (void)state;
    run(bogus_body);
}

static void test_over_memory_budget_sends_uncompressed(void **state) {
    (void)state;
    run(budget_body);
}

/* ---- HTTP/1.0, on a plain socket ------------------------------------------------------------ */

/* Sends `request` on a new connection and reads until the server closes
 * (or 3 s pass) into buf; returns the byte count or a negative code. */
static long raw_exchange(env *e, const char *request, char *buf, size_t cap) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)corio_http_test_port(e->t)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    long got = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, request, strlen(request), MSG_NOSIGNAL) != (ssize_t)strlen(request))
        got = -errno;
    for (int waited = 0; got >= 0 && waited < 3000 && (size_t)got < cap;) {
        ssize_t n = recv(fd, buf + got, cap - (size_t)got, MSG_DONTWAIT);
        if (n > 0)
            got += n;
        else if (n == 0)
            break;
        else if (errno == EAGAIN || errno == EWOULDBLOCK)
            corio_sleep(1), waited++;
        else
            got = -errno;
    }
    close(fd);
    return got;
}

static char raw[64 * 1024];

/* Whether the head that ends at `end` holds `line` ("\r\nName: value\r\n"). */
static bool in_head(const char *head, const char *end, const char *line) {
    const char *p = strstr(head, line);
    return p && p < end;
}

static int http10_body(env *e) {
    /* A whole body: compressed, with its Content-Length; the connection
     * is kept (the next response follows it). */
    long n = raw_exchange(e,
                          "GET /json HTTP/1.0\r\nAccept-Encoding: gzip\r\n"
                          "Connection: keep-alive\r\n\r\nGET /small HTTP/1.0\r\n\r\n",
                          raw, sizeof raw - 1);
    REQUIRE(n > 0);
    raw[n] = '\0';
    char *end = strstr(raw, "\r\n\r\n");
    REQUIRE(end && in_head(raw, end, "\r\nContent-Encoding: gzip\r\n") &&
            in_head(raw, end, "\r\nConnection: keep-alive\r\n"));
    unsigned long cl = 0;
    const char *p = strstr(raw, "\r\nContent-Length: ");
    REQUIRE(p && p < end && sscanf(p, "\r\nContent-Length: %lu", &cl) == 1);
    REQUIRE((long)(end + 4 - raw) + (long)cl < n);
    REQUIRE(gunzip(end + 4, cl, decoded, sizeof decoded) == JSON_SIZE);
    REQUIRE(memcmp(decoded, json, JSON_SIZE) == 0);
    REQUIRE(strncmp(end + 4 + cl, "HTTP/1.1 200 OK\r\n", 17) == 0);
    /* A declared length: as it is (chunks would cost the connection). */
    n = raw_exchange(e, "GET /length HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n", raw,
                     sizeof raw - 1);
    REQUIRE(n > 0);
    raw[n] = '\0';
    end = strstr(raw, "\r\n\r\n");
    REQUIRE(end && strstr(raw, "\r\nContent-Length: 10240\r\n") &&
            strstr(raw, "Content-Encoding") == NULL &&
            strstr(raw, "\r\nVary: Accept-Encoding\r\n"));
    REQUIRE(n - (end + 4 - raw) == JSON_SIZE && memcmp(end + 4, json, JSON_SIZE) == 0);
    /* A stream: close-delimited, compressed. */
    n = raw_exchange(e, "GET /stream HTTP/1.0\r\nAccept-Encoding: gzip\r\n\r\n", raw,
                     sizeof raw - 1);
    REQUIRE(n > 0);
    raw[n] = '\0';
    end = strstr(raw, "\r\n\r\n");
    REQUIRE(end && strstr(raw, "\r\nContent-Encoding: gzip\r\n") &&
            strstr(raw, "Transfer-Encoding") == NULL);
    char want[EVENTS * 128];
    size_t wn = 0;
    for (int i = 0; i < EVENTS; i++)
        wn += event_text(want + wn, sizeof want - wn, i);
    long dn = gunzip(end + 4, (size_t)(n - (end + 4 - raw)), decoded, sizeof decoded);
    REQUIRE(dn == (long)wn && memcmp(decoded, want, wn) == 0);
    return 0;
}

static void test_http10_whole_bodies_and_streams_compressed_lengths_not(void **state) {
    (void)state;
    run(http10_body);
}

/* ---- options -------------------------------------------------------------------------------- */

static void test_options_validated_and_types_copied(void **state) {
    (void)state;
    corio_http_compress *gz = NULL;
    static const char *const none[] = {NULL};
    static const char *const two_stars[] = {"a/**", NULL};
    static const char *const empty[] = {"", NULL};
    const corio_http_compress_opts bad[] = {
        {.level = 10},     {.level = -1},   {.window_bits = 8},   {.window_bits = 16},
        {.mem_level = 10}, {.types = none}, {.types = two_stars}, {.types = empty},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(corio_http_compress_new(&gz, &bad[i]), CORIO_EINVAL);
        assert_null(gz);
    }
    assert_int_equal(corio_http_compress_new(NULL, NULL), CORIO_EINVAL);
    assert_int_equal(corio_http_compress_new(&gz, NULL), 0);
    corio_http_compress_free(gz);
    char mine[] = "Application/X-Mine";
    const char *types[] = {mine, NULL};
    corio_http_compress_opts o = {
        .level = 9, .min_size = 1, .types = types, .window_bits = 9, .mem_level = 1};
    assert_int_equal(corio_http_compress_new(&gz, &o), 0);
    memset(mine, 'x', sizeof mine - 1); /* copied: the caller's strings may go */
    corio_http_compress_free(gz);
    corio_http_compress_free(NULL);
    corio_res_no_compress(NULL);
    assert_int_equal(corio_http_compress_middleware(NULL, NULL, NULL, NULL), CORIO_EINVAL);
}

/* Custom types and a minimum of 1 byte: a 10-byte body of the type goes
 * compressed; level 9 is no larger than level 1. */
typedef struct opts_env {
    corio_router *router;
    corio_http_compress *fast, *best;
    size_t fast_len, best_len;
} opts_env;

static int h_mine(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)arg;
    return corio_res_send(res, 200, "application/x-mine; v=1", json, 10);
}

static size_t compressed_len(corio_http_test *t, const char *path, const char *want, size_t n) {
    corio_http_response *r;
    corio_http_header h = {"Accept-Encoding", "gzip"};
    if (corio_http_test_call(t, &r, "GET", path, &h, 1, NULL, 0) != 0)
        return 0;
    size_t len = 0;
    if (has(r, "Content-Encoding", "gzip") && gunzips_to(r, want, n))
        corio_http_response_body(r, &len);
    corio_http_response_free(r);
    return len;
}

static int opts_main(void *arg) {
    opts_env *o = arg;
    corio_http_test *t;
    int rc = corio_http_test_start(&t, o->router, NULL);
    if (rc)
        return rc;
    o->fast_len = compressed_len(t, "/fast", json, JSON_SIZE);
    o->best_len = compressed_len(t, "/best", json, JSON_SIZE);
    size_t mine = compressed_len(t, "/mine", json, 10);
    if (mine == 0)
        failf(__LINE__, "a 10-byte body of a listed type was not compressed");
    return corio_http_test_stop(t);
}

static void test_level_and_custom_types(void **state) {
    (void)state;
    opts_env o = {0};
    static const char *const mine[] = {"application/x-mine", NULL};
    corio_http_compress *custom;
    assert_int_equal(corio_router_new(&o.router), 0);
    assert_int_equal(corio_http_compress_new(&o.fast, &(corio_http_compress_opts){.level = 1}), 0);
    assert_int_equal(corio_http_compress_new(&o.best, &(corio_http_compress_opts){.level = 9}), 0);
    assert_int_equal(
        corio_http_compress_new(&custom, &(corio_http_compress_opts){.types = mine, .min_size = 1}),
        0);
    assert_int_equal(corio_router_add(o.router, "GET", "/fast", h_json, NULL), 0);
    assert_int_equal(corio_router_add(o.router, "GET", "/best", h_json, NULL), 0);
    assert_int_equal(corio_router_add(o.router, "GET", "/mine", h_mine, NULL), 0);
    assert_int_equal(
        corio_route_use(o.router, "GET", "/fast", corio_http_compress_middleware, o.fast), 0);
    assert_int_equal(
        corio_route_use(o.router, "GET", "/best", corio_http_compress_middleware, o.best), 0);
    assert_int_equal(
        corio_route_use(o.router, "GET", "/mine", corio_http_compress_middleware, custom), 0);
    failure[0] = '\0';
    assert_int_equal(corio_run(opts_main, &o), 0);
    corio_router_free(o.router);
    corio_http_compress_free(o.fast);
    corio_http_compress_free(o.best);
    corio_http_compress_free(custom);
    if (failure[0])
        fail_msg("%s", failure);
    assert_true(o.fast_len > 0 && o.best_len > 0);
    assert_true(o.best_len <= o.fast_len);
}

/* ---- files ---------------------------------------------------------------------------------- */

#define BIG_FILE (300 * 1024)

static int write_file(const char *name, size_t len) {
    char path[128];
    snprintf(path, sizeof path, "%s/%s", file_dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    for (size_t i = 0; i < len; i += JSON_SIZE)
        fwrite(json, 1, len - i < JSON_SIZE ? len - i : JSON_SIZE, f);
    return fclose(f);
}

/* What a file of len bytes holds: json repeated. */
static char *file_bytes(size_t len) {
    char *b = malloc(len);
    for (size_t i = 0; b && i < len; i++)
        b[i] = json[i % JSON_SIZE];
    return b;
}

static int files_body(env *e) {
    corio_http_response *r;
    char *big = file_bytes(BIG_FILE);
    REQUIRE(big != NULL);
    bool ok = true;
    /* A compressible file, small and large: gzip, decodes to the file. */
    REQUIRE_RC(get_ae(e, &r, "/file/small.json", "gzip"), 0);
    ok = ok && CHECK(corio_http_response_status(r) == 200) &&
         CHECK(has(r, "Content-Encoding", "gzip")) && CHECK(has(r, "Vary", "Accept-Encoding")) &&
         CHECK(gunzips_to(r, json, JSON_SIZE));
    corio_http_response_free(r);
    REQUIRE_RC(get_ae(e, &r, "/file/big.json", "gzip"), 0);
    ok = ok && CHECK(has(r, "Content-Encoding", "gzip")) && CHECK(gunzips_to(r, big, BIG_FILE));
    const char *etag = corio_http_response_header(r, "ETag");
    ok = ok && CHECK(etag && strncmp(etag, "W/", 2) == 0); /* not the file's bytes */
    corio_http_response_free(r);
    /* Not accepted: the file as it is, with its length and Vary. */
    REQUIRE_RC(get_ae(e, &r, "/file/big.json", NULL), 0);
    size_t len;
    const char *b = corio_http_response_body(r, &len);
    uint64_t clen = 0;
    ok = ok && CHECK(corio_http_response_header(r, "Content-Encoding") == NULL) &&
         CHECK(has(r, "Vary", "Accept-Encoding")) && CHECK(len == BIG_FILE) &&
         CHECK(memcmp(b, big, len) == 0) && CHECK(corio_http_response_length(r, &clen)) &&
         CHECK(clen == BIG_FILE);
    corio_http_response_free(r);
    /* A range: the bytes asked for, uncompressed. */
    corio_http_header h[] = {{"Accept-Encoding", "gzip"}, {"Range", "bytes=100-199"}};
    REQUIRE_RC(corio_http_test_call(e->t, &r, "GET", "/file/big.json", h, 2, NULL, 0), 0);
    b = corio_http_response_body(r, &len);
    ok = ok && CHECK(corio_http_response_status(r) == 206) &&
         CHECK(corio_http_response_header(r, "Content-Encoding") == NULL) && CHECK(len == 100) &&
         CHECK(memcmp(b, big + 100, 100) == 0);
    corio_http_response_free(r);
    /* HEAD: the fields of the compressed GET, no Content-Length. */
    REQUIRE_RC(corio_http_test_call(e->t, &r, "HEAD", "/file/big.json", h, 1, NULL, 0), 0);
    ok = ok && CHECK(corio_http_response_status(r) == 200) &&
         CHECK(has(r, "Content-Encoding", "gzip")) &&
         CHECK(corio_http_response_header(r, "Content-Length") == NULL);
    corio_http_response_free(r);
    /* A type not compressed: sent as it is (sendfile), no Vary. */
    REQUIRE_RC(get_ae(e, &r, "/file/pic.png", "gzip"), 0);
    b = corio_http_response_body(r, &len);
    ok = ok && CHECK(corio_http_response_header(r, "Content-Encoding") == NULL) &&
         CHECK(corio_http_response_header(r, "Vary") == NULL) && CHECK(len == BIG_FILE) &&
         CHECK(memcmp(b, big, len) == 0);
    corio_http_response_free(r);
    free(big);
    return ok ? 0 : CORIO_EFAILED;
}

static void test_files_compressed_whole_never_in_ranges_and_types_kept(void **state) {
    (void)state;
    snprintf(file_dir, sizeof file_dir, "/tmp/corio-gzfiles-XXXXXX");
    assert_non_null(mkdtemp(file_dir));
    assert_int_equal(write_file("small.json", JSON_SIZE), 0);
    assert_int_equal(write_file("big.json", BIG_FILE), 0);
    assert_int_equal(write_file("pic.png", BIG_FILE), 0);
    run(files_body);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf %s", file_dir);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    make_bodies();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_compressed_with_length_vary_and_decodes),
        cmocka_unit_test(test_no_accept_encoding_sends_identity_with_vary),
        cmocka_unit_test(test_accept_encoding_tokens_qvalues_wildcard_identity),
        cmocka_unit_test(test_small_binary_encoded_ranges_204_and_opt_out_untouched),
        cmocka_unit_test(test_etag_weakened_vary_merged_field_type_and_304),
        cmocka_unit_test(test_head_has_get_fields_without_content_length),
        cmocka_unit_test(test_large_body_compressed_in_slices),
        cmocka_unit_test(test_chunked_stream_compressed_and_ended),
        cmocka_unit_test(test_each_write_reaches_the_client_decodable_at_once),
        cmocka_unit_test(test_length_stream_becomes_chunked_and_short_end_is_cut),
        cmocka_unit_test(test_stream_given_up_frees_its_deflate_memory),
        cmocka_unit_test(test_over_memory_budget_sends_uncompressed),
        cmocka_unit_test(test_middleware_arg_not_a_compressor_is_refused),
        cmocka_unit_test(test_http10_whole_bodies_and_streams_compressed_lengths_not),
        cmocka_unit_test(test_options_validated_and_types_copied),
        cmocka_unit_test(test_level_and_custom_types),
        cmocka_unit_test(test_files_compressed_whole_never_in_ranges_and_types_kept),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else /* no zlib: corio has no compression; the API says so */

static void test_compression_unavailable_without_zlib(void **state) {
    (void)state;
    corio_http_compress *gz = NULL;
    assert_int_equal(corio_http_compress_new(&gz, NULL), CORIO_ENOTSUP);
    assert_null(gz);
    skip();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compression_unavailable_without_zlib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
