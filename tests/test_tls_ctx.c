/* SPDX-License-Identifier: MIT */
/* TLS contexts: bad configurations are refused, and a server context's
 * certificate is reloaded (or, on a failed reload, kept) under live
 * connections.  Real openssl s_client peers read the certificate served
 * (tls_helpers.h). */
#include "corio_test.h"
#include "tls_helpers.h"

/* ---- certificate reload ------------------------------------------------------------------ */

/* Runs s_client against t's server until it has verified the certificate;
 * the transcript (its "subject=" line) is then in t->c.out. */
static int served_certificate(tls_test *t) {
    return tls_test_sclient(t, (sclient){.steps = {{"Verify return code", NULL}}});
}

static int reload_main(void *arg) {
    (void)arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_ECHO});
    if (rc)
        return rc;
    CHECK_RC(served_certificate(&t), 0);
    CHECK_OUT(&t.c, "subject=CN = corio-a", true);
    /* A connection made before the reload keeps working after it. */
    CHECK_RC(tls_test_connect(&t, "localhost", t.v.port, NULL), 0);
    corio_stream *live = t.s;
    CHECK_RC(corio_tls_ctx_reload(t.v.ctx, pki.b_cert, pki.b_key), 0);
    CHECK_RC(served_certificate(&t), 0);
    CHECK_OUT(&t.c, "subject=CN = corio-b", true);
    CHECK_OUT(&t.c, "corio-a", false);
    char b[4];
    CHECK_RC(corio_stream_write(live, "live", 4), 0);
    CHECK_RC(corio_stream_read_exactly(live, b, 4), 0);
    CHECK(memcmp(b, "live", 4) == 0);
    /* Failed reloads report an error and leave certificate b in place. */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/missing.pem", pki.dir);
    CHECK_RC(corio_tls_ctx_reload(t.v.ctx, missing, pki.a_key), CORIO_ENOENT);
    CHECK_RC(corio_tls_ctx_reload(t.v.ctx, pki.bad, pki.a_key), CORIO_EINVAL);
    CHECK_RC(corio_tls_ctx_reload(t.v.ctx, pki.a_cert, pki.b_key), CORIO_EINVAL); /* key mismatch */
    CHECK_RC(corio_tls_ctx_reload(t.cctx, pki.a_cert, pki.a_key), CORIO_EINVAL);  /* a client ctx */
    CHECK_RC(served_certificate(&t), 0);
    CHECK_OUT(&t.c, "subject=CN = corio-b", true);
    /* A corio client verifies the new certificate too. */
    corio_stream_close(live);
    t.s = NULL;
    CHECK_RC(tls_test_connect(&t, "localhost", t.v.port, NULL), 0);
out:
    return tls_test_end(&t, rc);
}

static void test_tls_reload_switches_certificate_or_keeps_old(void **state) {
    (void)state;
    corio_test_run(reload_main, NULL);
}

/* ---- contexts: bad configurations -------------------------------------------------------- */

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_reload_switches_certificate_or_keeps_old),
        cmocka_unit_test(test_tls_bad_configurations_are_refused),
    };
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
