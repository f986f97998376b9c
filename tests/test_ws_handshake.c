/* SPDX-License-Identifier: MIT */
/* The WebSocket opening handshake's pure parts (framework/ws/handshake.c):
 * Sec-WebSocket-Key and -Accept against RFC 6455's example, list headers
 * (Connection, Upgrade), the choice of a subprotocol, and the
 * permessage-deflate negotiation of RFC 7692 on both sides: offers
 * accepted, declined or skipped, the server's config applied, a client's
 * checks of a response, and the two sides agreeing with each other.
 * Pure functions: no loop. */
#include "corio_test.h"

#include <string.h>

#include <openssl/evp.h>

#include "ws/handshake.h"

#define S(lit) lit, sizeof(lit) - 1

/* ---- keys ------------------------------------------------------------------------------------ */

/* RFC 6455 1.3: the key "dGhlIHNhbXBsZSBub25jZQ==" is answered with
 * "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" (Python's hashlib agrees). */
static void test_ws_accept_key_matches_rfc_6455_example(void **state) {
    (void)state;
    char out[CORIO__WS_ACCEPT_LEN + 1];
    assert_int_equal(corio__ws_accept_key(S("dGhlIHNhbXBsZSBub25jZQ=="), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_int_equal(corio__ws_accept_key(S("dGhlIHNhbXBsZSBub25jZQ="), out), CORIO_EINVAL);
}

static void test_ws_accept_check_compares_exactly(void **state) {
    (void)state;
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(corio__ws_accept_check(key, 24, S("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")), 0);
    assert_int_equal(corio__ws_accept_check(key, 24, S("s3pPLMBiTxaQ9kYGzzhZRbK+xoo=")),
                     CORIO_EBADMSG);
    assert_int_equal(corio__ws_accept_check(key, 24, S("s3pPLMBiTxaQ9kYGzzhZRbK+xOo")),
                     CORIO_EBADMSG);
    assert_int_equal(corio__ws_accept_check(key, 24, S("s3pPLMBiTxaQ9kYGzzhZRbK+xOo= ")),
                     CORIO_EBADMSG);
    assert_int_equal(corio__ws_accept_check(S("short"), S("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")),
                     CORIO_EINVAL);
}

static void test_ws_key_valid_means_16_bytes_of_base64(void **state) {
    (void)state;
    assert_true(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQ==")));
    assert_true(corio__ws_key_valid(S("AAAAAAAAAAAAAAAAAAAAAA==")));
    assert_true(corio__ws_key_valid(S("+/+/+/+/+/+/+/+/+/+/+w==")));
    assert_false(corio__ws_key_valid(S("")));
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQ=")));   /* 23 */
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQ==="))); /* 25 */
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25jZQAA")));  /* 18 bytes */
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25jZ===")));  /* 15 bytes */
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25-ZQ==")));  /* URL-safe alphabet */
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBsZSBub25_ZQ==")));
    assert_false(corio__ws_key_valid(S("dGhlIHNhbXBs ZSBub25jZQ=")));
    assert_false(corio__ws_key_valid(S("AAAAAAAAAAAAAAAAAAAA"))); /* 15 bytes, unpadded */
}

/* The RFC's example key is the base64 of "the sample nonce"; any nonce
 * gives a valid key that decodes back to it. */
static void test_ws_client_key_is_base64_of_the_nonce(void **state) {
    (void)state;
    char key[CORIO__WS_KEY_LEN + 1];
    corio__ws_client_key(key, (const uint8_t *)"the sample nonce");
    assert_string_equal(key, "dGhlIHNhbXBsZSBub25jZQ==");
    uint8_t nonce[16];
    for (unsigned seed = 0; seed < 256; seed++) {
        for (size_t i = 0; i < 16; i++)
            nonce[i] = (uint8_t)(seed * 31 + i * 17);
        corio__ws_client_key(key, nonce);
        assert_int_equal(strlen(key), CORIO__WS_KEY_LEN);
        assert_true(corio__ws_key_valid(key, CORIO__WS_KEY_LEN));
        unsigned char back[18];
        assert_int_equal(EVP_DecodeBlock(back, (const unsigned char *)key, 24), 18);
        assert_memory_equal(back, nonce, 16);
    }
}

/* ---- list headers -------------------------------------------------------------------------- */

static void test_ws_has_token_case_insensitive_with_ows(void **state) {
    (void)state;
    assert_true(corio__ws_has_token(S("Upgrade"), "upgrade"));
    assert_true(corio__ws_has_token(S("keep-alive, Upgrade"), "upgrade"));
    assert_true(corio__ws_has_token(S("keep-alive ,\tUPGRADE\t "), "upgrade"));
    assert_true(corio__ws_has_token(S(",, upgrade ,,"), "upgrade"));
    assert_true(corio__ws_has_token(S("WebSocket"), "websocket"));
    assert_false(corio__ws_has_token(S("keep-alive"), "upgrade"));
    assert_false(corio__ws_has_token(S("Upgrade2"), "upgrade"));
    assert_false(corio__ws_has_token(S("xUpgrade"), "upgrade"));
    assert_false(corio__ws_has_token(S("up grade"), "upgrade"));
    assert_false(corio__ws_has_token(S("websocket/13"), "websocket"));
    assert_false(corio__ws_has_token(S(""), "upgrade"));
    assert_false(corio__ws_has_token(S(" , "), "upgrade"));
    assert_false(corio__ws_has_token(NULL, 0, "upgrade"));
    /* The length bounds the value: a token past it is not seen. */
    assert_false(corio__ws_has_token("close, upgrade", 5, "upgrade"));
}

static void test_ws_subprotocol_server_preference_wins(void **state) {
    (void)state;
    const char *prefs[] = {"chat.v2", "chat"};
    assert_int_equal(corio__ws_subprotocol_select(S("chat, chat.v2"), prefs, 2), 0);
    assert_int_equal(corio__ws_subprotocol_select(S("chat"), prefs, 2), 1);
    assert_int_equal(corio__ws_subprotocol_select(S(" chat.v1 ,chat "), prefs, 2), 1);
    assert_int_equal(corio__ws_subprotocol_select(S("superchat, chat.v3"), prefs, 2), CORIO_ENOENT);
    assert_int_equal(corio__ws_subprotocol_select(S("Chat"), prefs, 2), CORIO_ENOENT);
    assert_int_equal(corio__ws_subprotocol_select(S(""), prefs, 2), CORIO_ENOENT);
    assert_int_equal(corio__ws_subprotocol_select(S("chat"), prefs, 0), CORIO_ENOENT);
}

/* ---- permessage-deflate: the server ------------------------------------------------------- */

static const corio__ws_pmd_config defaults = {false, false, 0, 0};

/* Runs the server's negotiation of offers under cfg; expects the response
 * `want` (NULL: none accepted) and, when accepted, the agreed windows. */
static void server_case(const corio__ws_pmd_config *cfg, const char *offers, const char *want,
                        int sbits, int cbits, int line) {
    char resp[CORIO__WS_PMD_HEADER_MAX];
    corio__ws_pmd_agreed a = {true, true, 0, 0};
    int n = corio__ws_pmd_accept(cfg, offers, strlen(offers), &a, resp, sizeof resp);
    if (!want) {
        if (n != 0)
            fail_msg("line %d: '%s' accepted as '%s'", line, offers, resp);
        return;
    }
    if (n <= 0 || strcmp(resp, want) != 0 || (size_t)n != strlen(want))
        fail_msg("line %d: '%s' gave %d '%s', expected '%s'", line, offers, n, n > 0 ? resp : "",
                 want);
    if (a.server_max_window_bits != sbits || a.client_max_window_bits != cbits)
        fail_msg("line %d: agreed windows %d/%d, expected %d/%d", line, a.server_max_window_bits,
                 a.client_max_window_bits, sbits, cbits);
}

#define SERVER(cfg, offers, want, sbits, cbits)                                                    \
    server_case((cfg), (offers), (want), (sbits), (cbits), __LINE__)
#define DECLINED(cfg, offers) server_case((cfg), (offers), NULL, 0, 0, __LINE__)

/* The offers RFC 7692 uses as examples (5.2, 7.1.2), under the RFC's
 * defaults. */
static void test_ws_pmd_server_accepts_rfc_7692_example_offers(void **state) {
    (void)state;
    SERVER(&defaults, "permessage-deflate", "permessage-deflate", 15, 15);
    SERVER(&defaults, "permessage-deflate; client_max_window_bits", "permessage-deflate", 15, 15);
    SERVER(&defaults,
           "permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
           "permessage-deflate; client_max_window_bits",
           "permessage-deflate; server_max_window_bits=10", 10, 15);
    SERVER(&defaults, "permessage-deflate; server_max_window_bits=10",
           "permessage-deflate; server_max_window_bits=10", 10, 15);
    SERVER(&defaults, "permessage-deflate; client_max_window_bits=10",
           "permessage-deflate; client_max_window_bits=10", 15, 10);
    corio__ws_pmd_agreed a;
    char resp[CORIO__WS_PMD_HEADER_MAX];
    const char *both = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
    assert_int_equal(corio__ws_pmd_accept(&defaults, both, strlen(both), &a, resp, sizeof resp),
                     (int)strlen(both));
    assert_string_equal(resp, both);
    assert_true(a.server_no_context_takeover && a.client_no_context_takeover);
}

/* RFC 7692 7.1: an offer with an unknown, repeated or malformed parameter
 * is declined, and the next offer is tried. */
static void test_ws_pmd_server_declines_bad_offers_and_tries_the_next(void **state) {
    (void)state;
    static const char *bad[] = {
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; client_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=\"1 0\"",
        "permessage-deflate; client_max_window_bits=\"\"",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"\"",
        "permessage-deflate;",
        "permessage-deflate; ; server_no_context_takeover",
        "permessage-deflate server_no_context_takeover",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; =10",
        "Permessage-Deflate",
        "permessage-deflate; Server_No_Context_Takeover",
    };
    char offers[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        DECLINED(&defaults, bad[i]);
        snprintf(offers, sizeof offers, "%s, permessage-deflate; server_max_window_bits=11",
                 bad[i]);
        bool unterminated = strchr(bad[i], '"') && strchr(bad[i], '"') == strrchr(bad[i], '"');
        if (unterminated) /* the quote runs to the end: nothing after it is an offer */
            DECLINED(&defaults, offers);
        else
            SERVER(&defaults, offers, "permessage-deflate; server_max_window_bits=11", 11, 15);
    }
}

static void test_ws_pmd_server_skips_other_extensions_and_syntax(void **state) {
    (void)state;
    SERVER(&defaults, "x-webkit-deflate-frame, permessage-deflate", "permessage-deflate", 15, 15);
    SERVER(&defaults, "foo; a=\"x,y\"; b, permessage-deflate", "permessage-deflate", 15, 15);
    SERVER(&defaults, "@@@, permessage-deflate", "permessage-deflate", 15, 15);
    SERVER(&defaults, " ,\t, permessage-deflate ,", "permessage-deflate", 15, 15);
    SERVER(&defaults, "permessage-deflate ; server_max_window_bits = 12 ",
           "permessage-deflate; server_max_window_bits=12", 12, 15);
    /* Quoted values, escapes included (RFC 6455 9.1: unescaped, a token). */
    SERVER(&defaults, "permessage-deflate; server_max_window_bits=\"12\"",
           "permessage-deflate; server_max_window_bits=12", 12, 15);
    SERVER(&defaults, "permessage-deflate; client_max_window_bits=\"1\\2\"",
           "permessage-deflate; client_max_window_bits=12", 15, 12);
    DECLINED(&defaults, "");
    DECLINED(&defaults, "x-foo, x-bar; a=1");
    corio__ws_pmd_agreed a;
    char resp[CORIO__WS_PMD_HEADER_MAX];
    assert_int_equal(corio__ws_pmd_accept(&defaults, NULL, 0, &a, resp, sizeof resp), 0);
    assert_int_equal(corio__ws_pmd_confirm(&defaults, NULL, 0, &a), CORIO_EBADMSG);
    assert_int_equal(corio__ws_subprotocol_select(NULL, 0, NULL, 0), CORIO_ENOENT);
}

static void test_ws_pmd_server_applies_its_config(void **state) {
    (void)state;
    corio__ws_pmd_config cfg = {.server_no_context_takeover = true,
                                .client_no_context_takeover = true,
                                .server_max_window_bits = 12,
                                .client_max_window_bits = 11};
    /* Imposed even when not asked; the client's window only when offered. */
    SERVER(&cfg, "permessage-deflate",
           "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=12",
           12, 15);
    SERVER(&cfg, "permessage-deflate; client_max_window_bits",
           "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
           "server_max_window_bits=12; client_max_window_bits=11",
           12, 11);
    /* The smaller of both sides' windows. */
    cfg = (corio__ws_pmd_config){.server_max_window_bits = 12, .client_max_window_bits = 11};
    SERVER(&cfg, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
           "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9", 10, 9);
    SERVER(&cfg, "permessage-deflate; server_max_window_bits=14; client_max_window_bits=15",
           "permessage-deflate; server_max_window_bits=12; client_max_window_bits=11", 12, 11);
    /* Window bits 8 (handshake.h): accepted as offered, never asked for. */
    SERVER(&defaults, "permessage-deflate; server_max_window_bits=8",
           "permessage-deflate; server_max_window_bits=8", 8, 15);
    SERVER(&cfg, "permessage-deflate; client_max_window_bits=8",
           "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8", 12, 8);
}

static void test_ws_pmd_server_refuses_bad_config_and_small_buffers(void **state) {
    (void)state;
    corio__ws_pmd_agreed a;
    char resp[CORIO__WS_PMD_HEADER_MAX];
    static const uint8_t bad_bits[] = {1, 8, 16, 255};
    for (size_t i = 0; i < sizeof bad_bits; i++) {
        corio__ws_pmd_config s = {.server_max_window_bits = bad_bits[i]};
        corio__ws_pmd_config c = {.client_max_window_bits = bad_bits[i]};
        assert_int_equal(corio__ws_pmd_accept(&s, S("permessage-deflate"), &a, resp, sizeof resp),
                         CORIO_EINVAL);
        assert_int_equal(corio__ws_pmd_offer(&c, resp, sizeof resp), CORIO_EINVAL);
        assert_int_equal(corio__ws_pmd_confirm(&c, S("permessage-deflate"), &a), CORIO_EINVAL);
    }
    /* The longest response fits CORIO__WS_PMD_HEADER_MAX; one byte less
     * than it needs is CORIO_ERANGE. */
    corio__ws_pmd_config cfg = {true, true, 15, 15};
    const char *offer = "permessage-deflate; client_max_window_bits";
    int n = corio__ws_pmd_accept(&cfg, offer, strlen(offer), &a, resp, sizeof resp);
    assert_true(n > 100 && n < CORIO__WS_PMD_HEADER_MAX);
    assert_int_equal(corio__ws_pmd_accept(&cfg, offer, strlen(offer), &a, resp, (size_t)n),
                     CORIO_ERANGE);
    assert_int_equal(corio__ws_pmd_accept(&cfg, offer, strlen(offer), &a, resp, (size_t)n + 1), n);
}

/* ---- permessage-deflate: the client ------------------------------------------------------- */

static void test_ws_pmd_client_offer_says_what_it_wants(void **state) {
    (void)state;
    char out[CORIO__WS_PMD_HEADER_MAX];
    assert_int_equal(corio__ws_pmd_offer(&defaults, out, sizeof out), 18);
    assert_string_equal(out, "permessage-deflate");
    corio__ws_pmd_config cfg = {true, true, 10, 12};
    int n = corio__ws_pmd_offer(&cfg, out, sizeof out);
    assert_string_equal(out, "permessage-deflate; server_no_context_takeover; "
                             "client_no_context_takeover; server_max_window_bits=10; "
                             "client_max_window_bits=12");
    assert_int_equal(n, (int)strlen(out));
    assert_int_equal(corio__ws_pmd_offer(&cfg, out, 20), CORIO_ERANGE);
}

static int confirm(const corio__ws_pmd_config *cfg, const char *resp, corio__ws_pmd_agreed *a) {
    return corio__ws_pmd_confirm(cfg, resp, strlen(resp), a);
}

static void test_ws_pmd_client_accepts_responses_within_its_offer(void **state) {
    (void)state;
    corio__ws_pmd_agreed a;
    assert_int_equal(confirm(&defaults, "permessage-deflate", &a), 0);
    assert_true(!a.server_no_context_takeover && !a.client_no_context_takeover);
    assert_true(a.server_max_window_bits == 15 && a.client_max_window_bits == 15);
    /* The server may limit itself, and ask us not to keep context. */
    assert_int_equal(confirm(&defaults,
                             "permessage-deflate; server_max_window_bits=9; "
                             "client_no_context_takeover; server_no_context_takeover",
                             &a),
                     0);
    assert_true(a.server_no_context_takeover && a.client_no_context_takeover);
    assert_int_equal(a.server_max_window_bits, 9);
    corio__ws_pmd_config cfg = {.client_no_context_takeover = true,
                                .server_max_window_bits = 12,
                                .client_max_window_bits = 12};
    assert_int_equal(confirm(&cfg, "permessage-deflate; server_max_window_bits=12", &a), 0);
    assert_true(a.client_no_context_takeover);      /* we offered it: we keep to it */
    assert_int_equal(a.client_max_window_bits, 12); /* as offered, not repeated */
    assert_int_equal(
        confirm(&cfg, "permessage-deflate;server_max_window_bits=\"8\";client_max_window_bits=8",
                &a),
        0);
    assert_true(a.server_max_window_bits == 8 && a.client_max_window_bits == 8);
}

/* RFC 7692 7.1: what the client must fail the connection for. */
static void test_ws_pmd_client_fails_responses_outside_its_offer(void **state) {
    (void)state;
    corio__ws_pmd_agreed a;
    corio__ws_pmd_config cfg = {.server_no_context_takeover = true,
                                .server_max_window_bits = 10,
                                .client_max_window_bits = 12};
    static const char *bad[] = {
        "permessage-deflate; server_max_window_bits=10",  /* no server_no_context_... */
        "permessage-deflate; server_no_context_takeover", /* no server_max_window_bits */
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
        "client_max_window_bits=13",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
        "client_max_window_bits", /* a response needs the value */
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; foo",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover; "
        "server_max_window_bits=10",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10, "
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
        "x-webkit-deflate-frame",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10;",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (confirm(&cfg, bad[i], &a) != CORIO_EBADMSG)
            fail_msg("'%s' was accepted", bad[i]);
    assert_int_equal(
        confirm(&cfg, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
                &a),
        0);
    /* Not offered: the server may not set our window. */
    assert_int_equal(confirm(&defaults, "permessage-deflate; client_max_window_bits=15", &a),
                     CORIO_EBADMSG);
}

/* Whatever the two configs, the server's response passes the client's
 * check, and both sides agree on the same parameters. */
static void test_ws_pmd_both_sides_agree(void **state) {
    (void)state;
    static const uint8_t bits[] = {0, 9, 12, 15};
    unsigned checked = 0;
    for (unsigned flags = 0; flags < 16; flags++)
        for (size_t i = 0; i < 16; i++) {
            corio__ws_pmd_config client = {flags & 1, flags & 2, bits[i % 4], bits[i / 4]};
            corio__ws_pmd_config server = {flags & 4, flags & 8, bits[(i + 1) % 4],
                                           bits[(i + 2) % 4]};
            char offer[CORIO__WS_PMD_HEADER_MAX], resp[CORIO__WS_PMD_HEADER_MAX];
            corio__ws_pmd_agreed sa, ca;
            int n = corio__ws_pmd_offer(&client, offer, sizeof offer);
            assert_true(n > 0);
            n = corio__ws_pmd_accept(&server, offer, (size_t)n, &sa, resp, sizeof resp);
            assert_true(n > 0);
            if (corio__ws_pmd_confirm(&client, resp, (size_t)n, &ca) != 0)
                fail_msg("offer '%s', response '%s' refused", offer, resp);
            assert_int_equal(sa.server_no_context_takeover, ca.server_no_context_takeover);
            assert_int_equal(sa.client_no_context_takeover, ca.client_no_context_takeover);
            assert_int_equal(sa.server_max_window_bits, ca.server_max_window_bits);
            assert_int_equal(sa.client_max_window_bits, ca.client_max_window_bits);
            /* Nobody's window above what either side wanted. */
            assert_true(!client.server_max_window_bits ||
                        sa.server_max_window_bits <= client.server_max_window_bits);
            assert_true(!server.server_max_window_bits ||
                        sa.server_max_window_bits <= server.server_max_window_bits);
            assert_true(!client.client_max_window_bits ||
                        ca.client_max_window_bits <= client.client_max_window_bits);
            checked++;
        }
    assert_int_equal(checked, 256);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_accept_key_matches_rfc_6455_example),
        cmocka_unit_test(test_ws_accept_check_compares_exactly),
        cmocka_unit_test(test_ws_key_valid_means_16_bytes_of_base64),
        cmocka_unit_test(test_ws_client_key_is_base64_of_the_nonce),
        cmocka_unit_test(test_ws_has_token_case_insensitive_with_ows),
        cmocka_unit_test(test_ws_subprotocol_server_preference_wins),
        cmocka_unit_test(test_ws_pmd_server_accepts_rfc_7692_example_offers),
        cmocka_unit_test(test_ws_pmd_server_declines_bad_offers_and_tries_the_next),
        cmocka_unit_test(test_ws_pmd_server_skips_other_extensions_and_syntax),
        cmocka_unit_test(test_ws_pmd_server_applies_its_config),
        cmocka_unit_test(test_ws_pmd_server_refuses_bad_config_and_small_buffers),
        cmocka_unit_test(test_ws_pmd_client_offer_says_what_it_wants),
        cmocka_unit_test(test_ws_pmd_client_accepts_responses_within_its_offer),
        cmocka_unit_test(test_ws_pmd_client_fails_responses_outside_its_offer),
        cmocka_unit_test(test_ws_pmd_both_sides_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
