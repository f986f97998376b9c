/* TLS streams on loopback: corio TLS server and client, real openssl
 * s_client peers, and peers that do not speak TLS at all.  A throwaway PKI
 * (trusted CA, two server certificates, a rogue CA) is made with the
 * openssl command line before the tests and removed after. */
#include "corio_test.h"
#include "tls_helpers.h"

#include "net/stream_internal.h" /* white box: corio__tls_buffered, s->rlen */

static tls_pki pki;

/* Checks inside tasks: no cmocka assert there (it would longjmp off the
 * task's stack); report, mark the failure and leave through `out`. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            rc = CORIO_EFAILED;                                                                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_RC(expr, want)                                                                       \
    do {                                                                                           \
        int got_ = (expr);                                                                         \
        if (got_ != (want)) {                                                                      \
            fprintf(stderr, "%s:%d: %s: got %s (%d), want %s (%d)\n", __FILE__, __LINE__, #expr,   \
                    corio_err_name(got_), got_, corio_err_name(want), (int)(want));                \
            rc = CORIO_EFAILED;                                                                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* An s_client transcript must (or must not) contain text. */
#define CHECK_OUT(c, text, present)                                                                \
    do {                                                                                           \
        if ((strstr((c)->out, (text)) != NULL) != (present)) {                                     \
            fprintf(stderr, "%s:%d: s_client output %s \"%s\":\n%s\n", __FILE__, __LINE__,         \
                    (present) ? "lacks" : "has", (text), (c)->out);                                \
            rc = CORIO_EFAILED;                                                                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- servers under test ------------------------------------------------------------------ */

typedef enum srv_mode {
    SRV_ECHO,  /* echoes bytes; half-closes after the peer's EOF */
    SRV_LINES, /* answers each line with "echo:" + the line, for s_client */
    SRV_BYE,   /* writes "bye\n" and returns (the server closes) */
    SRV_SINK,  /* never reads; waits for sink_go */
} srv_mode;

typedef struct srv {
    srv_mode mode;
    corio_server *server;
    corio_tls_ctx *ctx; /* NULL: a plain server */
    int port;
    int handled; /* handler runs: handshakes that succeeded */
    int last_rc; /* the last handler's result */
    char alpn[32];
    char version[16];
    corio_stream *sink; /* SRV_SINK: the connection while its handler waits */
    corio_event sink_go;
} srv;

static int echo_bytes(corio_stream *s) {
    char buf[8192];
    for (;;) {
        int n = corio_stream_read(s, buf, sizeof buf);
        if (n == CORIO_EOF)
            return corio_stream_shutdown(s);
        if (n < 0)
            return n;
        int rc = corio_stream_write(s, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

static int echo_lines(corio_stream *s) {
    char line[1024];
    memcpy(line, "echo:", 5);
    for (;;) {
        size_t n;
        int rc = corio_stream_read_until(s, "\n", 1, line + 5, sizeof line - 5, &n);
        if (rc == CORIO_EOF)
            return 0;
        if (rc < 0)
            return rc;
        rc = corio_stream_write(s, line, n + 5);
        if (rc < 0)
            return rc;
    }
}

static int srv_handler(corio_stream *s, void *arg) {
    srv *v = arg;
    v->handled++;
    const char *alpn = corio_stream_alpn(s), *version = corio_stream_tls_version(s);
    snprintf(v->alpn, sizeof v->alpn, "%s", alpn ? alpn : "(none)");
    snprintf(v->version, sizeof v->version, "%s", version ? version : "(plain)");
    int rc = 0;
    switch (v->mode) {
    case SRV_ECHO:
        rc = echo_bytes(s);
        break;
    case SRV_LINES:
        rc = echo_lines(s);
        break;
    case SRV_BYE:
        rc = corio_stream_write(s, "bye\n", 4);
        break;
    case SRV_SINK:
        v->sink = s;
        rc = corio_event_wait(&v->sink_go);
        v->sink = NULL;
        break;
    }
    v->last_rc = rc;
    return rc;
}

typedef struct srv_cfg {
    srv_mode mode;
    const char *cert, *key; /* NULL: a plain server */
    const char *alpn;
    uint64_t handshake_ms;
} srv_cfg;

static int srv_start(srv *v, srv_cfg cfg) {
    memset(v, 0, sizeof *v);
    v->mode = cfg.mode;
    corio_event_init(&v->sink_go);
    if (cfg.cert) {
        corio_tls_server_opts to = {.cert_file = cfg.cert,
                                    .key_file = cfg.key,
                                    .alpn = cfg.alpn,
                                    .handshake_timeout_ms = cfg.handshake_ms};
        int rc = corio_tls_ctx_new_server(&v->ctx, &to);
        if (rc)
            return rc;
    }
    corio_server_opts o = {.host = "127.0.0.1", .tls = v->ctx};
    int rc = corio_server_start(&v->server, &o, srv_handler, v);
    if (rc) {
        corio_tls_ctx_free(v->ctx);
        return rc;
    }
    v->port = corio_server_port(v->server);
    return 0;
}

/* Waits for the connections to end (their results are then in v), frees
 * the server and then its context.  Returns 0 if none had to be cancelled. */
static int srv_stop(srv *v) {
    corio_event_set(&v->sink_go);
    int rc = corio_server_shutdown(v->server, 5000);
    corio_tls_ctx_free(v->ctx);
    return rc;
}

static int client_ctx(corio_tls_ctx **out, const char *alpn, bool insecure) {
    corio_tls_client_opts o = {.ca_file = pki.ca, .alpn = alpn, .insecure_no_verify = insecure};
    return corio_tls_ctx_new_client(out, &o);
}

/* Runs an s_client dialogue on the thread pool while the loop serves. */
static int run_sclient(sclient *c) {
    corio_future *f;
    int rc = corio_run_blocking(&f, sclient_run, c);
    if (rc)
        return rc;
    rc = corio_await(f);
    corio_future_release(f);
    if (rc == 0 && !c->waited) {
        fprintf(stderr, "s_client dialogue stalled; output:\n%s\n", c->out);
        rc = CORIO_EFAILED;
    }
    return rc;
}

/* ---- corio server and client: 1 MiB echo with random write sizes ------------------------------
 */

typedef struct bulk {
    corio_stream *s;
    const unsigned char *data;
    size_t len;
    unsigned seed;
} bulk;

/* Writes b->data in random pieces, alternating write and a three-buffer
 * writev, then half-closes. */
static int bulk_writer(void *arg) {
    bulk *b = arg;
    size_t off = 0;
    for (int i = 0; off < b->len; i++) {
        size_t n = 1 + (size_t)(rand_r(&b->seed) % 40000);
        if (n > b->len - off)
            n = b->len - off;
        int rc;
        if (i % 2 == 0 || n < 3) {
            rc = corio_stream_write(b->s, b->data + off, n);
        } else {
            struct iovec iov[3] = {{(void *)(b->data + off), 1},
                                   {(void *)(b->data + off + 1), n / 2},
                                   {(void *)(b->data + off + 1 + n / 2), n - 1 - n / 2}};
            rc = corio_stream_writev(b->s, iov, 3);
        }
        if (rc < 0)
            return rc;
        off += n;
    }
    return corio_stream_shutdown(b->s);
}

static int echo_1mib_main(void *arg) {
    (void)arg;
    srv v;
    corio_tls_ctx *cctx = NULL;
    corio_stream *c = NULL;
    corio_task *w = NULL;
    enum { LEN = 1 << 20 };
    unsigned char *data = malloc(LEN), *back = malloc(LEN);
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_ECHO, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        goto out_free;
    unsigned seed = 4242;
    for (size_t i = 0; i < LEN; i++)
        data[i] = (unsigned char)rand_r(&seed);
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    CHECK_RC(corio_tls_connect(&c, "localhost", (uint16_t)v.port, cctx, 5000), 0);
    CHECK(corio_stream_is_tls(c));
    CHECK(strcmp(corio_stream_tls_version(c), "TLSv1.3") == 0);
    bulk b = {.s = c, .data = data, .len = LEN, .seed = 7};
    CHECK_RC(corio_spawn(&w, "writer", bulk_writer, &b), 0);
    size_t got = 0;
    while (got < LEN) {
        size_t want = 1 + (size_t)(rand_r(&seed) % 30000);
        int n = corio_stream_read(c, back + got, want < LEN - got ? want : LEN - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    char extra;
    CHECK_RC(corio_stream_read(c, &extra, 1), CORIO_EOF);
    CHECK_RC(corio_await(w), 0);
    CHECK(memcmp(data, back, LEN) == 0);
out:
    if (w) {
        corio_cancel(w);
        corio_await(w);
        corio_task_release(w);
    }
    if (c)
        corio_stream_close(c);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v);
    if (rc == 0 && (rc2 != 0 || v.last_rc != 0 || v.handled != 1))
        rc = CORIO_EFAILED;
out_free:
    free(data);
    free(back);
    return rc;
}

static void test_tls_echo_1mib_random_write_sizes(void **state) {
    (void)state;
    corio_test_run(echo_1mib_main, NULL);
}

/* ---- every reading call over TLS ---------------------------------------------------------------
 */

static int reads_main(void *arg) {
    (void)arg;
    srv v;
    corio_tls_ctx *cctx = NULL;
    corio_stream *c = NULL;
    char *big = NULL, *back = NULL;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_ECHO, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    /* By IP: verified against the certificate's IP address. */
    CHECK_RC(corio_tls_connect(&c, "127.0.0.1", (uint16_t)v.port, cctx, 5000), 0);
    const char msg[] = "hello\r\nworld\r\nrest";
    CHECK_RC(corio_stream_write(c, msg, sizeof msg - 1), 0);
    char line[64];
    size_t n = 0;
    CHECK_RC(corio_stream_read_until(c, "\r\n", 2, line, sizeof line, &n), 0);
    CHECK(n == 7 && memcmp(line, "hello\r\n", 7) == 0);
    CHECK_RC(corio_stream_read_until(c, "\r\n", 2, line, sizeof line, &n), 0);
    CHECK(n == 7 && memcmp(line, "world\r\n", 7) == 0);
    CHECK_RC(corio_stream_read_exactly(c, line, 4), 0);
    CHECK(memcmp(line, "rest", 4) == 0);
    /* A line longer than the caller's limit: ERANGE, nothing consumed. */
    CHECK_RC(corio_stream_write(c, "0123456789\n", 11), 0);
    CHECK_RC(corio_stream_read_until(c, "\n", 1, line, 5, &n), CORIO_ERANGE);
    CHECK_RC(corio_stream_read_until(c, "\n", 1, line, sizeof line, &n), 0);
    CHECK(n == 11);
    /* Zero-copy reading: fill until six bytes are buffered, consume them. */
    CHECK_RC(corio_stream_write(c, "abcdef", 6), 0);
    size_t len = 0;
    while (corio_stream_buffered(c, &len), len < 6)
        CHECK(corio_stream_fill(c) > 0);
    CHECK(len == 6 && memcmp(corio_stream_buffered(c, &len), "abcdef", 6) == 0);
    corio_stream_consume(c, 6);
    CHECK(corio_stream_buffered(c, &len) == NULL && len == 0);
    /* A line that arrives in two records: read_until waits for the second
     * with the first already buffered. */
    CHECK_RC(corio_stream_write(c, "par", 3), 0);
    while (corio_stream_buffered(c, &len), len < 3)
        CHECK(corio_stream_fill(c) > 0);
    CHECK_RC(corio_stream_write(c, "tial\n", 5), 0);
    CHECK_RC(corio_stream_read_until(c, "\n", 1, line, sizeof line, &n), 0);
    CHECK(n == 8 && memcmp(line, "partial\n", 8) == 0);
    /* drain: 512 KiB handed to the kernel, then read back. */
    enum { BIG = 512 * 1024 };
    big = malloc(BIG);
    back = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 31 + 7);
    CHECK_RC(corio_stream_write(c, big, BIG / 2), 0); /* the echo flows back meanwhile */
    CHECK_RC(corio_stream_read_exactly(c, back, BIG / 2), 0);
    CHECK_RC(corio_stream_write(c, big + BIG / 2, BIG / 2), 0);
    CHECK_RC(corio_stream_drain(c), 0);
    CHECK(corio_stream_write_queued(c) == 0);
    CHECK_RC(corio_stream_read_exactly(c, back + BIG / 2, BIG / 2), 0);
    CHECK(memcmp(big, back, BIG) == 0);
    /* Half-close: the server sees EOF, half-closes too; reading still works
     * until then. */
    CHECK_RC(corio_stream_shutdown(c), 0);
    CHECK_RC(corio_stream_write(c, "x", 1), CORIO_EPIPE);
    CHECK_RC(corio_stream_read(c, line, sizeof line), CORIO_EOF);
out:
    free(big);
    free(back);
    if (c)
        corio_stream_close(c);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v);
    if (rc == 0 && (rc2 != 0 || v.last_rc != 0))
        rc = CORIO_EFAILED;
    return rc;
}

static void test_tls_every_read_call_works(void **state) {
    (void)state;
    corio_test_run(reads_main, NULL);
}

/* ---- s_client: TLS 1.2 and 1.3 work; older versions and weak ciphers are refused ----------------
 */

static int sclient_versions_main(void *arg) {
    (void)arg;
    srv v;
    sclient c;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_LINES, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    /* TLS 1.2, ECDHE with an AEAD cipher. */
    c = (sclient){
        .port = v.port, .args = {"-tls1_2"}, .steps = {{NULL, "hello\n"}, {"echo:hello", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "echo:hello", true);
    CHECK_OUT(&c, "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384", true);
    CHECK(strcmp(v.version, "TLSv1.2") == 0);
    /* TLS 1.3 by default. */
    c = (sclient){.port = v.port, .steps = {{NULL, "hi\n"}, {"echo:hi", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "New, TLSv1.3", true);
    CHECK(strcmp(v.version, "TLSv1.3") == 0);
    CHECK(v.handled == 2);
    /* TLS 1.0 and 1.1: the server answers with a protocol_version alert. */
    const char *old[] = {"-tls1", "-tls1_1"};
    for (int i = 0; i < 2; i++) {
        c = (sclient){.port = v.port,
                      .args = {old[i], "-cipher", "DEFAULT:@SECLEVEL=0"},
                      .steps = {{NULL, "hello\n"}}};
        CHECK_RC(run_sclient(&c), 0);
        CHECK_OUT(&c, "alert protocol version", true);
        CHECK_OUT(&c, "echo:", false);
        CHECK(c.status != 0);
    }
    /* Weak TLS 1.2 suites (RSA key exchange, CBC with SHA-1 even with
     * ECDHE): no shared cipher, a handshake_failure alert. */
    const char *weak[] = {"AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256"};
    for (int i = 0; i < 3; i++) {
        c = (sclient){
            .port = v.port, .args = {"-tls1_2", "-cipher", weak[i]}, .steps = {{NULL, "hello\n"}}};
        CHECK_RC(run_sclient(&c), 0);
        CHECK_OUT(&c, "alert handshake failure", true);
        CHECK_OUT(&c, "echo:", false);
        CHECK(c.status != 0);
    }
    CHECK(v.handled == 2); /* the refused handshakes never reached the handler */
out:;
    int rc2 = srv_stop(&v);
    return rc ? rc : rc2;
}

static void test_tls_s_client_versions_and_ciphers(void **state) {
    (void)state;
    corio_test_run(sclient_versions_main, NULL);
}

/* ---- s_client: renegotiation is refused ---------------------------------------------------------
 */

static int reneg_main(void *arg) {
    (void)arg;
    srv v;
    sclient c;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_LINES, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    /* "R" at the start of a line makes s_client renegotiate (TLS 1.2); the
     * next line triggers the new handshake. */
    c = (sclient){.port = v.port,
                  .args = {"-tls1_2"},
                  .steps = {{NULL, "hello\n"},
                            {"echo:hello", "R\n"},
                            {"RENEGOTIATING", "after\n"},
                            {"no renegotiation", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "echo:after", false);
    CHECK(c.status != 0);
out:;
    int rc2 = srv_stop(&v);
    if (rc == 0 && rc2 == 0) {
        /* One handshake only; the connection ended on s_client's fatal
         * alert, and no byte after the refused renegotiation was read. */
        if (v.handled != 1 || v.last_rc != CORIO_ETLS) {
            fprintf(stderr, "handled %d, last_rc %d\n", v.handled, v.last_rc);
            rc = CORIO_EFAILED;
        }
    }
    return rc ? rc : rc2;
}

static void test_tls_renegotiation_refused(void **state) {
    (void)state;
    corio_test_run(reneg_main, NULL);
}

/* ---- ALPN -------------------------------------------------------------------------------------
 */

static int alpn_main(void *arg) {
    (void)arg;
    srv v, v2;
    sclient c;
    corio_tls_ctx *cctx = NULL;
    corio_stream *s = NULL;
    int rc = srv_start(
        &v, (srv_cfg){.mode = SRV_LINES, .cert = pki.a_cert, .key = pki.a_key, .alpn = "http/1.1"});
    if (rc)
        return rc;
    rc = srv_start(
        &v2,
        (srv_cfg){.mode = SRV_ECHO, .cert = pki.a_cert, .key = pki.a_key, .alpn = "h2,http/1.1"});
    if (rc) {
        srv_stop(&v);
        return rc;
    }
    /* s_client offers h2 and http/1.1; the server only has http/1.1. */
    c = (sclient){.port = v.port,
                  .args = {"-alpn", "h2,http/1.1"},
                  .steps = {{NULL, "x\n"}, {"echo:x", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "ALPN protocol: http/1.1", true);
    CHECK(strcmp(v.alpn, "http/1.1") == 0);
    /* Without ALPN from the client: none. */
    c = (sclient){.port = v.port, .steps = {{NULL, "y\n"}, {"echo:y", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "No ALPN negotiated", true);
    CHECK(strcmp(v.alpn, "(none)") == 0);
    /* corio client offering http/1.1 then h2: the server's preference (h2)
     * wins, and both sides read it. */
    CHECK_RC(client_ctx(&cctx, "http/1.1,h2", false), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)v2.port, cctx, 5000), 0);
    CHECK(corio_stream_alpn(s) && strcmp(corio_stream_alpn(s), "h2") == 0);
    CHECK_RC(corio_stream_write(s, "z", 1), 0);
    char b;
    CHECK_RC(corio_stream_read_exactly(s, &b, 1), 0);
    CHECK(strcmp(v2.alpn, "h2") == 0);
    corio_stream_close(s);
    s = NULL;
    corio_tls_ctx_free(cctx);
    cctx = NULL;
    /* No protocol in common: the connection goes on without ALPN. */
    CHECK_RC(client_ctx(&cctx, "spdy/3", false), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)v2.port, cctx, 5000), 0);
    CHECK(corio_stream_alpn(s) == NULL);
    CHECK_RC(corio_stream_write(s, "z", 1), 0);
    CHECK_RC(corio_stream_read_exactly(s, &b, 1), 0);
    CHECK(strcmp(v2.alpn, "(none)") == 0);
out:
    if (s)
        corio_stream_close(s);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v), rc3 = srv_stop(&v2);
    return rc ? rc : rc2 ? rc2 : rc3;
}

static void test_tls_alpn_server_picks_from_its_list(void **state) {
    (void)state;
    corio_test_run(alpn_main, NULL);
}

/* ---- client verification ------------------------------------------------------------------------
 */

static int verify_main(void *arg) {
    (void)arg;
    srv good, rogue;
    corio_tls_ctx *cctx = NULL, *insecure = NULL;
    corio_stream *s = NULL;
    int rc = srv_start(&good, (srv_cfg){.mode = SRV_ECHO, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    rc = srv_start(&rogue,
                   (srv_cfg){.mode = SRV_ECHO, .cert = pki.rogue_cert, .key = pki.rogue_key});
    if (rc) {
        srv_stop(&good);
        return rc;
    }
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    /* A certificate from a CA we do not trust. */
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)rogue.port, cctx, 5000),
             CORIO_ETLS_VERIFY);
    CHECK(s == NULL);
    /* The right CA, but the certificate is not for this name. */
    CHECK_RC(corio_connect(&s, "127.0.0.1", (uint16_t)good.port, 5000), 0);
    CHECK_RC(corio_stream_start_tls(s, cctx, "wrong.example"), CORIO_ETLS_VERIFY);
    corio_stream_close(s);
    s = NULL;
    /* Upgrading a plain stream with the right name works. */
    CHECK_RC(corio_connect(&s, "127.0.0.1", (uint16_t)good.port, 5000), 0);
    CHECK_RC(corio_stream_start_tls(s, cctx, "localhost"), 0);
    CHECK_RC(corio_stream_start_tls(s, cctx, "localhost"), CORIO_EALREADY);
    CHECK_RC(corio_stream_write(s, "ok", 2), 0);
    char b[2];
    CHECK_RC(corio_stream_read_exactly(s, b, 2), 0);
    corio_stream_close(s);
    s = NULL;
    /* Verification switched off explicitly: the rogue server is accepted. */
    corio_tls_client_opts io = {.insecure_no_verify = true};
    CHECK_RC(corio_tls_ctx_new_client(&insecure, &io), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)rogue.port, insecure, 5000), 0);
    CHECK_RC(corio_stream_write(s, "ok", 2), 0);
    CHECK_RC(corio_stream_read_exactly(s, b, 2), 0);
    corio_stream_close(s);
    s = NULL;
out:
    if (s)
        corio_stream_close(s);
    corio_tls_ctx_free(cctx);
    corio_tls_ctx_free(insecure);
    int rc2 = srv_stop(&good), rc3 = srv_stop(&rogue);
    if (rc == 0 && (good.handled != 1 || rogue.handled != 1)) {
        fprintf(stderr, "handled: good %d, rogue %d\n", good.handled, rogue.handled);
        rc = CORIO_EFAILED;
    }
    return rc ? rc : rc2 ? rc2 : rc3;
}

static void test_tls_client_verifies_chain_and_name(void **state) {
    (void)state;
    corio_test_run(verify_main, NULL);
}

/* ---- certificate reload
 * -------------------------------------------------------------------------- */

static int reload_main(void *arg) {
    (void)arg;
    srv v;
    sclient c;
    corio_tls_ctx *cctx = NULL;
    corio_stream *live = NULL;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_ECHO, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    c = (sclient){.port = v.port, .steps = {{"Verify return code", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "subject=CN = corio-a", true);
    /* A connection made before the reload keeps working after it. */
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    CHECK_RC(corio_tls_connect(&live, "localhost", (uint16_t)v.port, cctx, 5000), 0);
    CHECK_RC(corio_tls_ctx_reload(v.ctx, pki.b_cert, pki.b_key), 0);
    c = (sclient){.port = v.port, .steps = {{"Verify return code", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "subject=CN = corio-b", true);
    CHECK_OUT(&c, "corio-a", false);
    char b[4];
    CHECK_RC(corio_stream_write(live, "live", 4), 0);
    CHECK_RC(corio_stream_read_exactly(live, b, 4), 0);
    CHECK(memcmp(b, "live", 4) == 0);
    /* Failed reloads report an error and leave certificate b in place. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.pem", pki.dir);
    CHECK_RC(corio_tls_ctx_reload(v.ctx, missing, pki.a_key), CORIO_ENOENT);
    CHECK_RC(corio_tls_ctx_reload(v.ctx, pki.bad, pki.a_key), CORIO_EINVAL);
    CHECK_RC(corio_tls_ctx_reload(v.ctx, pki.a_cert, pki.b_key), CORIO_EINVAL); /* key mismatch */
    CHECK_RC(corio_tls_ctx_reload(cctx, pki.a_cert, pki.a_key), CORIO_EINVAL);  /* a client ctx */
    c = (sclient){.port = v.port, .steps = {{"Verify return code", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "subject=CN = corio-b", true);
    /* A corio client verifies the new certificate too. */
    corio_stream_close(live);
    CHECK_RC(corio_tls_connect(&live, "localhost", (uint16_t)v.port, cctx, 5000), 0);
out:
    if (live)
        corio_stream_close(live);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v);
    return rc ? rc : rc2;
}

static void test_tls_reload_switches_certificate_or_keeps_old(void **state) {
    (void)state;
    corio_test_run(reload_main, NULL);
}

/* ---- peers that are not TLS, or never finish
 * ------------------------------------------------------ */

/* Reads until the peer closes; returns the final code (CORIO_EOF or a
 * reset), counting the bytes in *got. */
static int read_to_end(corio_stream *s, size_t *got) {
    char buf[4096];
    *got = 0;
    for (;;) {
        int n = corio_stream_read(s, buf, sizeof buf);
        if (n < 0)
            return n;
        *got += (size_t)n;
    }
}

static int garbage_writer(void *arg) {
    corio_stream *s = arg;
    static char junk[64 * 1024];
    unsigned seed = 99;
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)rand_r(&seed);
    junk[0] = 0x17; /* looks like an application-data record */
    /* Up to 1 GiB: far more than the socket buffers of both ends hold, so
     * only a server that read and dropped it all would let every write
     * succeed (the handshake deadline ends even that). */
    for (int i = 0; i < 16384; i++) {
        int rc = corio_stream_write(s, junk, sizeof junk);
        if (rc < 0)
            return rc; /* the server closed on us: expected */
    }
    return 0;
}

static int not_tls_main(void *arg) {
    (void)arg;
    srv v;
    corio_stream *s = NULL;
    size_t got;
    int rc = srv_start(
        &v,
        (srv_cfg){.mode = SRV_LINES, .cert = pki.a_cert, .key = pki.a_key, .handshake_ms = 200});
    if (rc)
        return rc;
    /* Plain HTTP to the TLS port: an alert at most, then the close. */
    CHECK_RC(corio_connect(&s, "127.0.0.1", (uint16_t)v.port, 5000), 0);
    CHECK_RC(corio_stream_write(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 0);
    rc = read_to_end(s, &got);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    CHECK(got < 64);
    corio_stream_close(s);
    /* A peer that sends nothing: closed at the handshake deadline. */
    CHECK_RC(corio_connect(&s, "127.0.0.1", (uint16_t)v.port, 5000), 0);
    rc = read_to_end(s, &got);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    corio_stream_close(s);
    /* A peer that starts a ClientHello and stalls: the same. */
    CHECK_RC(corio_connect(&s, "127.0.0.1", (uint16_t)v.port, 5000), 0);
    CHECK_RC(corio_stream_write(s, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 0);
    rc = read_to_end(s, &got);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    corio_stream_close(s);
    /* A flood of garbage: closed early, whatever is still being sent. */
    CHECK_RC(corio_connect(&s, "127.0.0.1", (uint16_t)v.port, 5000), 0);
    corio_task *w;
    CHECK_RC(corio_spawn(&w, "garbage", garbage_writer, s), 0);
    rc = read_to_end(s, &got);
    int wrc = corio_await(w);
    corio_task_release(w);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    CHECK(wrc == CORIO_EPIPE || wrc == CORIO_ECONNRESET); /* the flood was cut short */
    corio_stream_close(s);
    s = NULL;
out:
    if (s)
        corio_stream_close(s);
    int rc2 = srv_stop(&v);
    if (rc == 0 && v.handled != 0)
        rc = CORIO_EFAILED;
    return rc ? rc : rc2;
}

static void test_tls_plain_bytes_to_tls_port_end_in_close(void **state) {
    (void)state;
    corio_test_run(not_tls_main, NULL);
}

static int hello_to_plain_main(void *arg) {
    (void)arg;
    srv v;
    sclient c;
    corio_tls_ctx *cctx = NULL;
    corio_stream *s = NULL;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_ECHO}); /* plain echo */
    if (rc)
        return rc;
    /* The echo sends our own ClientHello back: not a ServerHello. */
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)v.port, cctx, 5000), CORIO_ETLS);
    CHECK(s == NULL);
    /* Same for a real s_client. */
    c = (sclient){.port = v.port, .steps = {{NULL, "hello\n"}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK(c.status != 0);
    CHECK_OUT(&c, "Cipher is (NONE)", true);
out:
    if (s)
        corio_stream_close(s);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v);
    return rc ? rc : rc2;
}

static void test_tls_client_hello_to_plain_port_ends_in_close(void **state) {
    (void)state;
    corio_test_run(hello_to_plain_main, NULL);
}

/* ---- close_notify
 * ------------------------------------------------------------------------------------ */

static int close_notify_main(void *arg) {
    (void)arg;
    srv v;
    sclient c;
    corio_tls_ctx *cctx = NULL;
    corio_stream *s = NULL;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_BYE, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    /* s_client reports a clean close ("closed"), not an unexpected EOF.
     * Its stdin stays open until then, so only the server ends it. */
    c = (sclient){.port = v.port, .steps = {{"closed", NULL}}};
    CHECK_RC(run_sclient(&c), 0);
    CHECK_OUT(&c, "bye", true);
    CHECK_OUT(&c, "unexpected eof", false);
    /* A corio client reads the bytes, then EOF. */
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)v.port, cctx, 5000), 0);
    char b[4];
    CHECK_RC(corio_stream_read_exactly(s, b, 4), 0);
    CHECK(memcmp(b, "bye\n", 4) == 0);
    CHECK_RC(corio_stream_read(s, b, 1), CORIO_EOF);
out:
    if (s)
        corio_stream_close(s);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v);
    return rc ? rc : rc2;
}

static void test_tls_close_sends_close_notify(void **state) {
    (void)state;
    corio_test_run(close_notify_main, NULL);
}

/* ---- bounded buffering
 * ----------------------------------------------------------------------------- */

typedef struct flood {
    corio_stream *s;
    size_t sent;
} flood;

/* Writes 64 KiB chunks until cancelled, the stream fails, or 64 MiB. */
static int flood_writer(void *arg) {
    flood *f = arg;
    static char chunk[64 * 1024];
    while (f->sent < ((size_t)64 << 20)) {
        int rc = corio_stream_write(f->s, chunk, sizeof chunk);
        if (rc < 0)
            return rc;
        f->sent += sizeof chunk;
    }
    return 0;
}

/* Whether the server has stopped reading the flood: its handler runs (and
 * never reads), its socket reading is paused, and the client's writes queue
 * up behind full kernel buffers. */
static bool flood_stalled(const srv *v, corio_stream *c) {
    return v->sink && !v->sink->reading && corio_stream_write_queued(c) > 0;
}

/* The server's handler never reads.  The client floods it; the server must
 * stop reading from the socket once its bounded ciphertext buffer is full,
 * decrypt nothing, and stay so however long the client keeps trying.  No
 * timer is involved: the main task yields (the loop polls I/O every
 * READY_BUDGET resumptions) until the stall shows, bounded by a count. */
static int bounded_main(void *arg) {
    (void)arg;
    srv v;
    corio_tls_ctx *cctx = NULL;
    corio_stream *s = NULL;
    corio_task *w = NULL;
    int rc = srv_start(&v, (srv_cfg){.mode = SRV_SINK, .cert = pki.a_cert, .key = pki.a_key});
    if (rc)
        return rc;
    CHECK_RC(client_ctx(&cctx, NULL, false), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", (uint16_t)v.port, cctx, 5000), 0);
    flood f = {.s = s};
    CHECK_RC(corio_spawn(&w, "flood", flood_writer, &f), 0);
    long spins = 0;
    while (!flood_stalled(&v, s) && !corio_task_done(w) && spins < 50L * 1000 * 1000) {
        CHECK_RC(corio_yield(), 0);
        spins++;
    }
    CHECK(flood_stalled(&v, s));
    /* Many more polls: nothing moves any more. */
    size_t sent = f.sent;
    for (int i = 0; i < 20 * 1024; i++)
        CHECK_RC(corio_yield(), 0);
    CHECK(flood_stalled(&v, s));
    CHECK(f.sent == sent);
    CHECK(corio__tls_buffered(v.sink) > 0);
    CHECK(corio__tls_buffered(v.sink) <= 40 * 1024);
    CHECK(v.sink->rlen == 0 && v.sink->rbuf == NULL);
    CHECK(f.sent < ((size_t)64 << 20));
out:
    if (w) {
        corio_cancel(w);
        corio_await(w);
        corio_task_release(w);
    }
    corio_event_set(&v.sink_go);
    if (s)
        corio_stream_close(s);
    corio_tls_ctx_free(cctx);
    int rc2 = srv_stop(&v);
    return rc ? rc : rc2;
}

static void test_tls_unread_input_stays_bounded(void **state) {
    (void)state;
    corio_test_run(bounded_main, NULL);
}

/* ---- contexts: bad configurations
 * ------------------------------------------------------------------- */

static int bad_config_main(void *arg) {
    (void)arg;
    corio_tls_ctx *x = NULL, *cctx = NULL;
    corio_server *srv = NULL;
    corio_stream *s = NULL;
    int rc = 0;
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.pem", pki.dir);
    corio_tls_server_opts o = {.cert_file = missing, .key_file = pki.a_key};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), CORIO_ENOENT);
    CHECK(x == NULL);
    o = (corio_tls_server_opts){.cert_file = pki.bad, .key_file = pki.a_key};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), CORIO_EINVAL);
    o = (corio_tls_server_opts){.cert_file = pki.a_cert, .key_file = pki.b_key};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), CORIO_EINVAL);
    o = (corio_tls_server_opts){.cert_file = pki.a_cert, .key_file = NULL};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), CORIO_EINVAL);
    o = (corio_tls_server_opts){.cert_file = pki.a_cert, .key_file = pki.a_key, .alpn = "h2,,x"};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), CORIO_EINVAL);
    o = (corio_tls_server_opts){
        .cert_file = pki.a_cert, .key_file = pki.a_key, .ciphers = "ECDHE+AESGCM:AES128-SHA"};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), CORIO_EINVAL);
    corio_tls_client_opts co = {.ca_file = missing};
    CHECK_RC(corio_tls_ctx_new_client(&x, &co), CORIO_ENOENT);
    /* A client context where a server one is expected, and the reverse. */
    CHECK_RC(corio_tls_ctx_new_client(&cctx, NULL), 0);
    corio_server_opts so = {.host = "127.0.0.1", .tls = cctx};
    CHECK_RC(corio_server_start(&srv, &so, srv_handler, NULL), CORIO_EINVAL);
    o = (corio_tls_server_opts){.cert_file = pki.a_cert, .key_file = pki.a_key};
    CHECK_RC(corio_tls_ctx_new_server(&x, &o), 0);
    CHECK_RC(corio_tls_connect(&s, "localhost", 1, x, 1000), CORIO_EINVAL);
out:
    corio_tls_ctx_free(x);
    corio_tls_ctx_free(cctx);
    return rc;
}

static void test_tls_bad_configurations_are_refused(void **state) {
    (void)state;
    corio_test_run(bad_config_main, NULL);
}

/* ---- the group
 * ------------------------------------------------------------------------------------- */

static int group_setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* s_client may leave before we write to it */
    if (pki_make(&pki) == 0)
        return 0;
    pki_remove(&pki);
    return -1;
}

static int group_teardown(void **state) {
    (void)state;
    pki_remove(&pki);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_echo_1mib_random_write_sizes),
        cmocka_unit_test(test_tls_every_read_call_works),
        cmocka_unit_test(test_tls_s_client_versions_and_ciphers),
        cmocka_unit_test(test_tls_renegotiation_refused),
        cmocka_unit_test(test_tls_alpn_server_picks_from_its_list),
        cmocka_unit_test(test_tls_client_verifies_chain_and_name),
        cmocka_unit_test(test_tls_reload_switches_certificate_or_keeps_old),
        cmocka_unit_test(test_tls_plain_bytes_to_tls_port_end_in_close),
        cmocka_unit_test(test_tls_client_hello_to_plain_port_ends_in_close),
        cmocka_unit_test(test_tls_close_sends_close_notify),
        cmocka_unit_test(test_tls_unread_input_stays_bounded),
        cmocka_unit_test(test_tls_bad_configurations_are_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
