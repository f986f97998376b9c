/* SPDX-License-Identifier: MIT */
/* TLS handshakes on loopback: protocol versions and cipher suites,
 * renegotiation, ALPN, the client's verification of chain and name, and
 * peers that do not speak TLS or never finish the handshake (real openssl
 * s_client peers and corio clients; tls_helpers.h). */
#include "corio_test.h"
#include "tls_helpers.h"

/* ---- s_client: TLS 1.2 and 1.3 work; older versions and weak ciphers are refused -------- */

static int sclient_versions_main(void *arg) {
    (void)arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_LINES});
    if (rc)
        return rc;
    /* TLS 1.2, ECDHE with an AEAD cipher. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.args = {"-tls1_2"},
                                            .steps = {{NULL, "hello\n"}, {"echo:hello", NULL}}}),
             0);
    CHECK_OUT(&t.c, "echo:hello", true);
    CHECK_OUT(&t.c, "New, TLSv1.2, Cipher is ECDHE-ECDSA-AES256-GCM-SHA384", true);
    CHECK(strcmp(t.v.version, "TLSv1.2") == 0);
    /* TLS 1.3 by default. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.steps = {{NULL, "hi\n"}, {"echo:hi", NULL}}}), 0);
    CHECK_OUT(&t.c, "New, TLSv1.3", true);
    CHECK(strcmp(t.v.version, "TLSv1.3") == 0);
    CHECK(t.v.handled == 2);
    /* TLS 1.0 and 1.1: the server answers with a protocol_version alert. */
    const char *old[] = {"-tls1", "-tls1_1"};
    for (int i = 0; i < 2; i++) {
        CHECK_RC(tls_test_sclient(&t, (sclient){.args = {old[i], "-cipher", "DEFAULT:@SECLEVEL=0"},
                                                .steps = {{NULL, "hello\n"}}}),
                 0);
        CHECK_OUT(&t.c, "alert protocol version", true);
        CHECK_OUT(&t.c, "echo:", false);
        CHECK(t.c.status != 0);
    }
    /* Weak TLS 1.2 suites (RSA key exchange, CBC with SHA-1 even with
     * ECDHE): no shared cipher, a handshake_failure alert. */
    const char *weak[] = {"AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256"};
    for (int i = 0; i < 3; i++) {
        CHECK_RC(tls_test_sclient(&t, (sclient){.args = {"-tls1_2", "-cipher", weak[i]},
                                                .steps = {{NULL, "hello\n"}}}),
                 0);
        CHECK_OUT(&t.c, "alert handshake failure", true);
        CHECK_OUT(&t.c, "echo:", false);
        CHECK(t.c.status != 0);
    }
    CHECK(t.v.handled == 2); /* the refused handshakes never reached the handler */
out:
    return tls_test_end(&t, rc);
}

static void test_tls_s_client_versions_and_ciphers(void **state) {
    (void)state;
    corio_test_run(sclient_versions_main, NULL);
}

/* ---- s_client: renegotiation is refused -------------------------------------------------- */

static int reneg_main(void *arg) {
    (void)arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_LINES});
    if (rc)
        return rc;
    /* "R" at the start of a line makes s_client renegotiate (TLS 1.2); the
     * next line triggers the new handshake. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.args = {"-tls1_2"},
                                            .steps = {{NULL, "hello\n"},
                                                      {"echo:hello", "R\n"},
                                                      {"RENEGOTIATING", "after\n"},
                                                      {"no renegotiation", NULL}}}),
             0);
    CHECK_OUT(&t.c, "echo:after", false);
    CHECK(t.c.status != 0);
out:
    /* One handshake only; the connection ended on s_client's fatal alert,
     * and no byte after the refused renegotiation was read. */
    return tls_test_end_expect(&t, rc, 1, CORIO_ETLS);
}

static void test_tls_renegotiation_refused(void **state) {
    (void)state;
    corio_test_run(reneg_main, NULL);
}

/* ---- ALPN -------------------------------------------------------------------------------- */

static int alpn_main(void *arg) {
    (void)arg;
    tls_test t;
    srv v2;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_LINES, .alpn = "http/1.1"});
    if (rc)
        return rc;
    rc = srv_start(&v2, (srv_cfg){.mode = SRV_ECHO, .alpn = "h2,http/1.1"});
    if (rc)
        return tls_test_end(&t, rc);
    /* s_client offers h2 and http/1.1; the server only has http/1.1. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.args = {"-alpn", "h2,http/1.1"},
                                            .steps = {{NULL, "x\n"}, {"echo:x", NULL}}}),
             0);
    CHECK_OUT(&t.c, "ALPN protocol: http/1.1", true);
    CHECK(strcmp(t.v.alpn, "http/1.1") == 0);
    /* Without ALPN from the client: none. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.steps = {{NULL, "y\n"}, {"echo:y", NULL}}}), 0);
    CHECK_OUT(&t.c, "No ALPN negotiated", true);
    CHECK(strcmp(t.v.alpn, "(none)") == 0);
    /* corio client offering http/1.1 then h2: the server's preference (h2)
     * wins, and both sides read it. */
    CHECK_RC(tls_test_connect(&t, "localhost", v2.port, "http/1.1,h2"), 0);
    CHECK(corio_stream_alpn(t.s) && strcmp(corio_stream_alpn(t.s), "h2") == 0);
    CHECK_RC(corio_stream_write(t.s, "z", 1), 0);
    char b;
    CHECK_RC(corio_stream_read_exactly(t.s, &b, 1), 0);
    CHECK(strcmp(v2.alpn, "h2") == 0);
    corio_stream_close(t.s);
    t.s = NULL;
    corio_tls_ctx_free(t.cctx);
    t.cctx = NULL;
    /* No protocol in common: the connection goes on without ALPN. */
    CHECK_RC(tls_test_connect(&t, "localhost", v2.port, "spdy/3"), 0);
    CHECK(corio_stream_alpn(t.s) == NULL);
    CHECK_RC(corio_stream_write(t.s, "z", 1), 0);
    CHECK_RC(corio_stream_read_exactly(t.s, &b, 1), 0);
    CHECK(strcmp(v2.alpn, "(none)") == 0);
out:
    rc = tls_test_end(&t, rc);
    int rc3 = srv_stop(&v2);
    return rc ? rc : rc3;
}

static void test_tls_alpn_server_picks_from_its_list(void **state) {
    (void)state;
    corio_test_run(alpn_main, NULL);
}

/* ---- client verification ----------------------------------------------------------------- */

static int verify_main(void *arg) {
    (void)arg;
    tls_test t; /* t.v: the good server */
    srv rogue;
    corio_tls_ctx *insecure = NULL;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_ECHO});
    if (rc)
        return rc;
    rc = srv_start(&rogue,
                   (srv_cfg){.mode = SRV_ECHO, .cert = pki.rogue_cert, .key = pki.rogue_key});
    if (rc)
        return tls_test_end(&t, rc);
    /* A certificate from a CA we do not trust. */
    CHECK_RC(tls_test_connect(&t, "localhost", rogue.port, NULL), CORIO_ETLS_VERIFY);
    CHECK(t.s == NULL);
    /* The right CA, but the certificate is not for this name. */
    CHECK_RC(corio_connect(&t.s, "127.0.0.1", (uint16_t)t.v.port, 5000), 0);
    CHECK_RC(corio_stream_start_tls(t.s, t.cctx, "wrong.example"), CORIO_ETLS_VERIFY);
    corio_stream_close(t.s);
    t.s = NULL;
    /* Upgrading a plain stream with the right name works. */
    CHECK_RC(corio_connect(&t.s, "127.0.0.1", (uint16_t)t.v.port, 5000), 0);
    CHECK_RC(corio_stream_start_tls(t.s, t.cctx, "localhost"), 0);
    CHECK_RC(corio_stream_start_tls(t.s, t.cctx, "localhost"), CORIO_EALREADY);
    CHECK_RC(corio_stream_write(t.s, "ok", 2), 0);
    char b[2];
    CHECK_RC(corio_stream_read_exactly(t.s, b, 2), 0);
    corio_stream_close(t.s);
    t.s = NULL;
    /* Verification switched off explicitly: the rogue server is accepted. */
    corio_tls_client_opts io = {.insecure_no_verify = true};
    CHECK_RC(corio_tls_ctx_new_client(&insecure, &io), 0);
    CHECK_RC(corio_tls_connect(&t.s, "localhost", (uint16_t)rogue.port, insecure, 5000), 0);
    CHECK_RC(corio_stream_write(t.s, "ok", 2), 0);
    CHECK_RC(corio_stream_read_exactly(t.s, b, 2), 0);
    corio_stream_close(t.s);
    t.s = NULL;
out:
    corio_tls_ctx_free(insecure);
    rc = tls_test_end(&t, rc);
    int rc3 = srv_stop(&rogue);
    if (rc == 0 && (t.v.handled != 1 || rogue.handled != 1)) {
        fprintf(stderr, "handled: good %d, rogue %d\n", t.v.handled, rogue.handled);
        rc = CORIO_EFAILED;
    }
    return rc ? rc : rc3;
}

static void test_tls_client_verifies_chain_and_name(void **state) {
    (void)state;
    corio_test_run(verify_main, NULL);
}

/* ---- peers that are not TLS, or never finish --------------------------------------------- */

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
    tls_test t;
    size_t got;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_LINES, .handshake_ms = 200});
    if (rc)
        return rc;
    /* Plain HTTP to the TLS port: an alert at most, then the close. */
    CHECK_RC(corio_connect(&t.s, "127.0.0.1", (uint16_t)t.v.port, 5000), 0);
    CHECK_RC(corio_stream_write(t.s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 0);
    rc = read_to_end(t.s, &got);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    CHECK(got < 64);
    corio_stream_close(t.s);
    /* A peer that sends nothing: closed at the handshake deadline. */
    CHECK_RC(corio_connect(&t.s, "127.0.0.1", (uint16_t)t.v.port, 5000), 0);
    rc = read_to_end(t.s, &got);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    corio_stream_close(t.s);
    /* A peer that starts a ClientHello and stalls: the same. */
    CHECK_RC(corio_connect(&t.s, "127.0.0.1", (uint16_t)t.v.port, 5000), 0);
    CHECK_RC(corio_stream_write(t.s, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), 0);
    rc = read_to_end(t.s, &got);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    corio_stream_close(t.s);
    /* A flood of garbage: closed early, whatever is still being sent. */
    CHECK_RC(corio_connect(&t.s, "127.0.0.1", (uint16_t)t.v.port, 5000), 0);
    corio_task *w;
    CHECK_RC(corio_spawn(&w, "garbage", garbage_writer, t.s), 0);
    rc = read_to_end(t.s, &got);
    int wrc = corio_await(w);
    corio_task_release(w);
    CHECK(rc == CORIO_EOF || rc == CORIO_ECONNRESET);
    rc = 0;
    CHECK(wrc == CORIO_EPIPE || wrc == CORIO_ECONNRESET); /* the flood was cut short */
    corio_stream_close(t.s);
    t.s = NULL;
out:
    return tls_test_end_expect(&t, rc, 0, SRV_ANY); /* no handshake reached the handler */
}

static void test_tls_plain_bytes_to_tls_port_end_in_close(void **state) {
    (void)state;
    corio_test_run(not_tls_main, NULL);
}

static int hello_to_plain_main(void *arg) {
    (void)arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_ECHO, .plain = true}); /* plain echo */
    if (rc)
        return rc;
    /* The echo sends our own ClientHello back: not a ServerHello. */
    CHECK_RC(tls_test_connect(&t, "localhost", t.v.port, NULL), CORIO_ETLS);
    CHECK(t.s == NULL);
    /* Same for a real s_client. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.steps = {{NULL, "hello\n"}}}), 0);
    CHECK(t.c.status != 0);
    CHECK_OUT(&t.c, "Cipher is (NONE)", true);
out:
    return tls_test_end(&t, rc);
}

static void test_tls_client_hello_to_plain_port_ends_in_close(void **state) {
    (void)state;
    corio_test_run(hello_to_plain_main, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_s_client_versions_and_ciphers),
        cmocka_unit_test(test_tls_renegotiation_refused),
        cmocka_unit_test(test_tls_alpn_server_picks_from_its_list),
        cmocka_unit_test(test_tls_client_verifies_chain_and_name),
        cmocka_unit_test(test_tls_plain_bytes_to_tls_port_end_in_close),
        cmocka_unit_test(test_tls_client_hello_to_plain_port_ends_in_close),
    };
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
