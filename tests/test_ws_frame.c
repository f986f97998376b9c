/* SPDX-License-Identifier: MIT */
/* The WebSocket wire format (framework/ws/frame.c, utf8.c): frame heads
 * against RFC 6455 5.7's example frames and every protocol error the
 * parser must refuse, heads given byte by byte, head encoding, masking in
 * pieces, the order of data frames, close payloads, and UTF-8 validation
 * (the classes RFC 3629 excludes, characters split across calls, an
 * exhaustive comparison with a plain decoder).  Pure functions: no loop. */
#include "corio_test.h"

#include <string.h>

#include "ws/frame.h"
#include "ws/utf8.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static const uint8_t rfc_key[4] = {0x37, 0xfa, 0x21, 0x3d};

static int parse_as(corio__ws_role role, const void *buf, size_t n, corio__ws_header *h,
                    corio__ws_fail *fail) {
    corio__ws_rules r = {.role = role};
    return corio__ws_header_parse(&r, buf, n, h, fail);
}

/* Asserts that buf (n bytes, complete) is refused under r with rc and code. */
static void expect_refused_by(const corio__ws_rules *r, const uint8_t *buf, size_t n, int rc,
                              unsigned code, int line) {
    corio__ws_header h;
    corio__ws_fail fail = {0, NULL};
    int got = corio__ws_header_parse(r, buf, n, &h, &fail);
    if (got != rc || fail.code != code || !fail.reason)
        fail_msg("line %d: got %d (close %u), expected %d (close %u)", line, got, fail.code, rc,
                 code);
    assert_true(strlen(fail.reason) <= 40);
}

#define EXPECT_REFUSED(rules, rc, code, ...)                                                       \
    do {                                                                                           \
        const uint8_t b_[] = {__VA_ARGS__};                                                        \
        expect_refused_by((rules), b_, sizeof b_, (rc), (code), __LINE__);                         \
    } while (0)

/* ---- RFC 6455 5.7's examples ------------------------------------------------------------------
 */

static void test_ws_rfc_unmasked_text_frame(void **state) {
    (void)state;
    const uint8_t f[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    corio__ws_header h;
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f, sizeof f, &h, NULL), 2);
    assert_true(h.fin);
    assert_false(h.rsv1 || h.rsv2 || h.rsv3 || h.masked);
    assert_int_equal(h.opcode, CORIO__WS_TEXT);
    assert_int_equal(h.header_len, 2);
    assert_int_equal(h.payload_len, 5);
    assert_memory_equal(f + 2, "Hello", 5);
}

static void test_ws_rfc_masked_text_frame_unmasks_to_hello(void **state) {
    (void)state;
    uint8_t f[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    corio__ws_header h;
    assert_int_equal(parse_as(CORIO__WS_SERVER, f, sizeof f, &h, NULL), 6);
    assert_true(h.fin && h.masked);
    assert_int_equal(h.opcode, CORIO__WS_TEXT);
    assert_int_equal(h.payload_len, 5);
    assert_memory_equal(h.mask, rfc_key, 4);
    corio__ws_mask(f + 6, 5, h.mask, 0);
    assert_memory_equal(f + 6, "Hello", 5);
}

static void test_ws_rfc_fragmented_text_message(void **state) {
    (void)state;
    const uint8_t f1[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    const uint8_t f2[] = {0x80, 0x02, 0x6c, 0x6f};
    corio__ws_header h1, h2;
    bool in_message = false;
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f1, sizeof f1, &h1, NULL), 2);
    assert_false(h1.fin);
    assert_int_equal(h1.opcode, CORIO__WS_TEXT);
    assert_int_equal(corio__ws_frame_order(&in_message, &h1, NULL), 0);
    assert_true(in_message);
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f2, sizeof f2, &h2, NULL), 2);
    assert_true(h2.fin);
    assert_int_equal(h2.opcode, CORIO__WS_CONT);
    assert_int_equal(corio__ws_frame_order(&in_message, &h2, NULL), 0);
    assert_false(in_message);
    assert_memory_equal(f1 + 2, "Hel", 3);
    assert_memory_equal(f2 + 2, "lo", 2);
}

static void test_ws_rfc_unmasked_ping_and_masked_pong(void **state) {
    (void)state;
    const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    corio__ws_header h;
    assert_int_equal(parse_as(CORIO__WS_CLIENT, ping, sizeof ping, &h, NULL), 2);
    assert_int_equal(h.opcode, CORIO__WS_PING);
    assert_int_equal(h.payload_len, 5);
    assert_true(corio__ws_is_control(h.opcode));
    assert_int_equal(parse_as(CORIO__WS_SERVER, pong, sizeof pong, &h, NULL), 6);
    assert_int_equal(h.opcode, CORIO__WS_PONG);
    corio__ws_mask(pong + 6, 5, h.mask, 0);
    assert_memory_equal(pong + 6, "Hello", 5);
}

static void test_ws_rfc_256_byte_and_64k_length_forms(void **state) {
    (void)state;
    const uint8_t f256[] = {0x82, 0x7e, 0x01, 0x00};
    const uint8_t f64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    corio__ws_header h;
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f256, sizeof f256, &h, NULL), 4);
    assert_int_equal(h.opcode, CORIO__WS_BINARY);
    assert_int_equal(h.payload_len, 256);
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f64k, sizeof f64k, &h, NULL), 10);
    assert_int_equal(h.payload_len, 65536);
    /* Not complete: one byte short of each head. */
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f256, 3, &h, NULL), 0);
    assert_int_equal(parse_as(CORIO__WS_CLIENT, f64k, 9, &h, NULL), 0);
}

/* Each example frame's head is what the encoder writes for it. */
static void test_ws_encode_writes_the_rfc_example_heads(void **state) {
    (void)state;
    uint8_t out[CORIO__WS_HEADER_MAX];
    const uint8_t text[] = {0x81, 0x05};
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_TEXT, 5, NULL), 2);
    assert_memory_equal(out, text, 2);
    const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d};
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_TEXT, 5, rfc_key), 6);
    assert_memory_equal(out, masked, 6);
    const uint8_t first[] = {0x01, 0x03}, last[] = {0x80, 0x02};
    assert_int_equal(corio__ws_header_encode(out, 0, CORIO__WS_TEXT, 3, NULL), 2);
    assert_memory_equal(out, first, 2);
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_CONT, 2, NULL), 2);
    assert_memory_equal(out, last, 2);
    const uint8_t f256[] = {0x82, 0x7e, 0x01, 0x00};
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_BINARY, 256, NULL), 4);
    assert_memory_equal(out, f256, 4);
    const uint8_t f64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_BINARY, 65536, NULL),
                     10);
    assert_memory_equal(out, f64k, 10);
}

/* ---- encoding ---------------------------------------------------------------------------------
 */

/* Each length takes the shortest form, and parses back to itself. */
static void test_ws_encode_shortest_length_form_round_trips(void **state) {
    (void)state;
    static const struct {
        uint64_t len;
        int head;
    } cases[] = {{0, 2},      {1, 2},         {125, 2},
                 {126, 4},    {127, 4},       {65535, 4},
                 {65536, 10}, {1u << 20, 10}, {UINT64_MAX >> 1, 10}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int masked = 0; masked < 2; masked++) {
            uint8_t out[CORIO__WS_HEADER_MAX];
            const uint8_t *key = masked ? rfc_key : NULL;
            int n = corio__ws_header_encode(out, CORIO__WS_FIN | CORIO__WS_RSV1, CORIO__WS_BINARY,
                                            cases[i].len, key);
            assert_int_equal(n, cases[i].head + 4 * masked);
            corio__ws_rules r = {.role = masked ? CORIO__WS_SERVER : CORIO__WS_CLIENT,
                                 .allow_rsv1 = true};
            corio__ws_header h;
            assert_int_equal(corio__ws_header_parse(&r, out, (size_t)n, &h, NULL), n);
            assert_true(h.fin && h.rsv1);
            assert_int_equal(h.masked, masked);
            assert_true(h.payload_len == cases[i].len);
            if (masked)
                assert_memory_equal(h.mask, rfc_key, 4);
        }
    }
}

static void test_ws_encode_refuses_what_no_peer_accepts(void **state) {
    (void)state;
    uint8_t out[CORIO__WS_HEADER_MAX];
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, 0x3, 0, NULL), CORIO_EINVAL);
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, 0xb, 0, NULL), CORIO_EINVAL);
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_PING, 126, NULL),
                     CORIO_EINVAL);
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_PING, 125, NULL), 2);
    assert_int_equal(corio__ws_header_encode(out, 0, CORIO__WS_CLOSE, 2, NULL), CORIO_EINVAL);
    assert_int_equal(
        corio__ws_header_encode(out, CORIO__WS_FIN | CORIO__WS_RSV1, CORIO__WS_PONG, 0, NULL),
        CORIO_EINVAL);
    assert_int_equal(corio__ws_header_encode(out, CORIO__WS_RSV1, CORIO__WS_CONT, 0, NULL),
                     CORIO_EINVAL);
    assert_int_equal(
        corio__ws_header_encode(out, CORIO__WS_FIN, CORIO__WS_BINARY, (uint64_t)1 << 63, NULL),
        CORIO_EINVAL);
    assert_int_equal(corio__ws_header_encode(out, 0x20, CORIO__WS_TEXT, 0, NULL), CORIO_EINVAL);
}

/* ---- protocol errors ---------------------------------------------------------------------------
 */

static const corio__ws_rules as_client = {.role = CORIO__WS_CLIENT};
static const corio__ws_rules as_server = {.role = CORIO__WS_SERVER};

static void test_ws_parse_refuses_reserved_opcodes(void **state) {
    (void)state;
    for (unsigned op = 0; op < 16; op++) {
        uint8_t f[2] = {(uint8_t)(0x80 | op), 0x00};
        corio__ws_header h;
        corio__ws_fail fail = {0, NULL};
        int rc = corio__ws_header_parse(&as_client, f, 2, &h, &fail);
        bool reserved = (op >= 3 && op <= 7) || op >= 0xb;
        assert_int_equal(rc, reserved ? CORIO_EBADMSG : 2);
        if (reserved)
            assert_int_equal(fail.code, CORIO__WS_CLOSE_PROTOCOL);
    }
}

static void test_ws_parse_refuses_reserved_bits(void **state) {
    (void)state;
    corio__ws_rules deflate = {.role = CORIO__WS_CLIENT, .allow_rsv1 = true};
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0xa1, 0x00); /* RSV2 */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x91, 0x00); /* RSV3 */
    EXPECT_REFUSED(&deflate, CORIO_EBADMSG, 1002, 0xa1, 0x00);   /* RSV2 with deflate */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0xc1, 0x00); /* RSV1, no deflate */
    EXPECT_REFUSED(&deflate, CORIO_EBADMSG, 1002, 0xc0, 0x00);   /* RSV1 on a continuation */
    EXPECT_REFUSED(&deflate, CORIO_EBADMSG, 1002, 0xc9, 0x00);   /* RSV1 on a ping */
    EXPECT_REFUSED(&deflate, CORIO_EBADMSG, 1002, 0xc8, 0x00);   /* RSV1 on a close */
    corio__ws_header h;
    const uint8_t text[] = {0xc1, 0x00}, binary[] = {0x42, 0x00};
    assert_int_equal(corio__ws_header_parse(&deflate, text, 2, &h, NULL), 2);
    assert_true(h.rsv1);
    assert_int_equal(corio__ws_header_parse(&deflate, binary, 2, &h, NULL), 2);
    assert_true(h.rsv1 && !h.fin);
}

static void test_ws_parse_refuses_bad_control_frames(void **state) {
    (void)state;
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x09, 0x00);             /* ping without FIN */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x08, 0x02, 3, 0xe8);    /* close without FIN */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x88, 0x7e, 0x00, 0x7e); /* close of 126 */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x8a, 0x7f);             /* pong, 64-bit */
    corio__ws_header h;
    const uint8_t ping125[] = {0x89, 0x7d};
    assert_int_equal(corio__ws_header_parse(&as_client, ping125, 2, &h, NULL), 2);
    assert_int_equal(h.payload_len, 125);
}

static void test_ws_parse_refuses_bad_lengths(void **state) {
    (void)state;
    /* 64-bit length with its top bit set. */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0);
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                   0xff, 0xff);
    /* Not the shortest form: 125 in 16 bits, 0 in 16 bits, 65535 and 126 in 64. */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x82, 0x7e, 0x00, 0x7d);
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x82, 0x7e, 0x00, 0x00);
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff);
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0x00, 0x7e);
    /* The smallest of each form is fine. */
    corio__ws_header h;
    const uint8_t f126[] = {0x82, 0x7e, 0x00, 0x7e};
    const uint8_t f65536[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0};
    const uint8_t fmax[] = {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(corio__ws_header_parse(&as_client, f126, 4, &h, NULL), 4);
    assert_int_equal(corio__ws_header_parse(&as_client, f65536, 10, &h, NULL), 10);
    assert_int_equal(corio__ws_header_parse(&as_client, fmax, 10, &h, NULL), 10);
    assert_true(h.payload_len == UINT64_MAX >> 1);
}

static void test_ws_parse_refuses_mask_wrong_for_role(void **state) {
    (void)state;
    EXPECT_REFUSED(&as_server, CORIO_EBADMSG, 1002, 0x81, 0x05);             /* unmasked */
    EXPECT_REFUSED(&as_client, CORIO_EBADMSG, 1002, 0x81, 0x85, 1, 2, 3, 4); /* masked */
    EXPECT_REFUSED(&as_server, CORIO_EBADMSG, 1002, 0x89, 0x00);             /* ping too */
    /* Refused from the first two bytes, before the mask key arrives. */
    corio__ws_header h;
    const uint8_t masked[] = {0x81, 0x85};
    assert_int_equal(corio__ws_header_parse(&as_client, masked, 2, &h, NULL), CORIO_EBADMSG);
}

static void test_ws_parse_refuses_payload_over_max_with_1009(void **state) {
    (void)state;
    corio__ws_rules r = {.role = CORIO__WS_CLIENT, .max_payload = 1000};
    corio__ws_header h;
    const uint8_t at_max[] = {0x82, 0x7e, 0x03, 0xe8};
    assert_int_equal(corio__ws_header_parse(&r, at_max, 4, &h, NULL), 4);
    EXPECT_REFUSED(&r, CORIO_ERANGE, 1009, 0x82, 0x7e, 0x03, 0xe9);
    EXPECT_REFUSED(&r, CORIO_ERANGE, 1009, 0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 0);
    r.max_payload = 10;
    EXPECT_REFUSED(&r, CORIO_ERANGE, 1009, 0x01, 0x0b);
    /* A protocol error outranks the size: a control frame of 126+ is 1002. */
    EXPECT_REFUSED(&r, CORIO_EBADMSG, 1002, 0x89, 0x7e, 0x00, 0x7e);
    /* Known from the length, before the mask key is there. */
    r.role = CORIO__WS_SERVER;
    const uint8_t big[] = {0x82, 0xfe, 0x03, 0xe9};
    assert_int_equal(corio__ws_header_parse(&r, big, 4, &h, NULL), CORIO_ERANGE);
    /* 0: no limit of ours. */
    r.max_payload = 0;
    const uint8_t huge[] = {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    assert_int_equal(corio__ws_header_parse(&r, huge, sizeof huge, &h, NULL), 14);
}

/* ---- incremental parsing ----------------------------------------------------------------------
 */

static bool same_header(const corio__ws_header *a, const corio__ws_header *b) {
    return a->fin == b->fin && a->rsv1 == b->rsv1 && a->rsv2 == b->rsv2 && a->rsv3 == b->rsv3 &&
           a->masked == b->masked && a->opcode == b->opcode && a->header_len == b->header_len &&
           memcmp(a->mask, b->mask, 4) == 0 && a->payload_len == b->payload_len;
}

/* Every prefix of f gives "need more" until the whole result is known, and
 * from then on the same result as the whole. */
static void check_prefixes(const corio__ws_rules *r, const uint8_t *f, size_t n) {
    corio__ws_header whole, part;
    corio__ws_fail wf = {0, NULL}, pf = {0, NULL};
    memset(&whole, 0, sizeof whole);
    int want = corio__ws_header_parse(r, f, n, &whole, &wf);
    bool seen = false;
    for (size_t k = 0; k <= n; k++) {
        memset(&part, 0xa5, sizeof part);
        int got = corio__ws_header_parse(r, f, k, &part, &pf);
        if (got == 0) {
            assert_false(seen); /* once known, known for good */
            continue;
        }
        seen = true;
        assert_int_equal(got, want);
        if (got > 0)
            assert_true(same_header(&part, &whole));
        else
            assert_true(pf.code == wf.code && pf.reason == wf.reason);
    }
    assert_true(seen);
}

static void test_ws_parse_byte_by_byte_equals_at_once(void **state) {
    (void)state;
    static const uint8_t frames[][14] = {
        {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d},
        {0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4},
        {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 9, 8, 7, 6},
        {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, /* top bit */
        {0x82, 0xfe, 0x00, 0x10, 0, 0, 0, 0},                /* not shortest */
        {0x82, 0xff, 0, 0, 0, 0, 0, 0x10, 0, 1, 0, 0, 0, 0}, /* over max */
        {0x83, 0x80, 0, 0, 0, 0},                            /* reserved opcode */
        {0x81, 0x05},                                        /* unmasked */
        {0x09, 0x80, 1, 2, 3, 4},                            /* ping without FIN */
    };
    corio__ws_rules r = {.role = CORIO__WS_SERVER, .max_payload = 1 << 20};
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++)
        check_prefixes(&r, frames[i], sizeof frames[i]);
    /* Every 2-byte start, for both roles, padded to a whole head. */
    for (unsigned role = 0; role < 2; role++) {
        r.role = role ? CORIO__WS_CLIENT : CORIO__WS_SERVER;
        for (unsigned b = 0; b < 65536; b += 7) {
            uint8_t f[14] = {(uint8_t)(b >> 8), (uint8_t)b, 0, 1, 0, 0, 0, 0, 0, 0, 5, 6, 7, 8};
            check_prefixes(&r, f, sizeof f);
        }
    }
}

/* ---- masking ----------------------------------------------------------------------------------
 */

static void mask_reference(uint8_t *p, size_t n, const uint8_t key[4], size_t offset) {
    for (size_t i = 0; i < n; i++)
        p[i] ^= key[(offset + i) % 4];
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* Masked in two pieces split anywhere (each piece given its offset), from
 * any alignment, the payload is what the byte-wise definition gives. */
static void test_ws_mask_in_pieces_at_every_split_equals_at_once(void **state) {
    (void)state;
    enum { N = 300 };
    uint8_t src[N + 8], want[N], got[N + 8];
    const uint8_t key[4] = {0x9e, 0x01, 0x7c, 0xf3};
    fill(src, sizeof src, 7);
    for (size_t align = 0; align < 8; align++) {
        memcpy(want, src + align, N);
        mask_reference(want, N, key, 0);
        for (size_t split = 0; split <= N; split++) {
            memcpy(got + align, src + align, N);
            corio__ws_mask(got + align, split, key, 0);
            corio__ws_mask(got + align + split, N - split, key, split);
            if (memcmp(got + align, want, N) != 0)
                fail_msg("align %zu, split %zu differs", align, split);
        }
    }
    /* Three pieces, with a 64-bit running offset past 4 GiB. */
    uint64_t base = ((uint64_t)1 << 32) + 2;
    memcpy(want, src, N);
    mask_reference(want, N, key, 2);
    for (size_t a = 0; a <= N; a += 13)
        for (size_t b = a; b <= N; b += 11) {
            memcpy(got, src, N);
            corio__ws_mask(got, a, key, base);
            corio__ws_mask(got + a, b - a, key, base + a);
            corio__ws_mask(got + b, N - b, key, base + b);
            assert_memory_equal(got, want, N);
        }
}

static void test_ws_mask_copy_leaves_source_and_twice_restores(void **state) {
    (void)state;
    enum { N = 1000 };
    uint8_t src[N], copy[N], dst[N + 3];
    fill(src, N, 99);
    memcpy(copy, src, N);
    for (size_t len = 0; len <= N; len += 37) {
        corio__ws_mask_copy(dst + 3, src, len, rfc_key, 1);
        assert_memory_equal(src, copy, N); /* the source is untouched */
        uint8_t ref[N];
        memcpy(ref, src, len);
        mask_reference(ref, len, rfc_key, 1);
        if (len)
            assert_memory_equal(dst + 3, ref, len);
        corio__ws_mask(dst + 3, len, rfc_key, 1);
        if (len)
            assert_memory_equal(dst + 3, src, len);
    }
}

/* ---- the order of data frames --------------------------------------------------------------- */

static corio__ws_header frame(unsigned opcode, bool fin) {
    corio__ws_header h = {.fin = fin, .opcode = (uint8_t)opcode, .header_len = 2};
    return h;
}

static void test_ws_frame_order_refuses_orphan_and_interleaved_data(void **state) {
    (void)state;
    bool in = false;
    corio__ws_fail fail = {0, NULL};
    corio__ws_header cont = frame(CORIO__WS_CONT, true), text = frame(CORIO__WS_TEXT, false);
    assert_int_equal(corio__ws_frame_order(&in, &cont, &fail), CORIO_EBADMSG);
    assert_int_equal(fail.code, 1002);
    assert_int_equal(corio__ws_frame_order(&in, &text, NULL), 0);
    assert_true(in);
    corio__ws_header ping = frame(CORIO__WS_PING, true), bin = frame(CORIO__WS_BINARY, true);
    assert_int_equal(corio__ws_frame_order(&in, &ping, NULL), 0); /* between fragments: fine */
    assert_true(in);
    fail.code = 0;
    assert_int_equal(corio__ws_frame_order(&in, &bin, &fail), CORIO_EBADMSG);
    assert_int_equal(fail.code, 1002);
    corio__ws_header mid = frame(CORIO__WS_CONT, false);
    assert_int_equal(corio__ws_frame_order(&in, &mid, NULL), 0);
    assert_true(in);
    assert_int_equal(corio__ws_frame_order(&in, &cont, NULL), 0);
    assert_false(in);
    assert_int_equal(corio__ws_frame_order(&in, &bin, NULL), 0);
    assert_false(in);
}

/* ---- close payloads ---------------------------------------------------------------------------
 */

static void test_ws_close_code_validity_matches_rfc_6455_7_4(void **state) {
    (void)state;
    for (unsigned c = 0; c < 65536; c++) {
        bool want =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        if (corio__ws_close_code_valid(c) != want)
            fail_msg("close code %u", c);
    }
    assert_false(corio__ws_close_code_valid(1004));
    assert_false(corio__ws_close_code_valid(1005));
    assert_false(corio__ws_close_code_valid(1006));
    assert_false(corio__ws_close_code_valid(1015));
    assert_true(corio__ws_close_code_valid(1012));
}

static void test_ws_close_parse_cases(void **state) {
    (void)state;
    corio__ws_close c;
    corio__ws_fail fail = {0, NULL};
    const uint8_t one[] = {0x03};
    assert_int_equal(corio__ws_close_parse(one, 0, &c, NULL), 0);
    assert_int_equal(c.code, 1005);
    assert_int_equal(c.reason_len, 0);
    assert_int_equal(corio__ws_close_parse(one, 1, &c, &fail), CORIO_EBADMSG);
    assert_int_equal(fail.code, 1002);
    const uint8_t bye[] = {0x03, 0xe8, 'b', 'y', 'e'};
    assert_int_equal(corio__ws_close_parse(bye, sizeof bye, &c, NULL), 0);
    assert_int_equal(c.code, 1000);
    assert_int_equal(c.reason_len, 3);
    assert_memory_equal(c.reason, "bye", 3);
    static const unsigned bad[] = {0,    999,  1004, 1005, 1006, 1015,
                                   1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const uint8_t p[] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        fail.code = 0;
        assert_int_equal(corio__ws_close_parse(p, 2, &c, &fail), CORIO_EBADMSG);
        assert_int_equal(fail.code, 1002);
    }
    static const unsigned good[] = {1000, 1001, 1002, 1003, 1007, 1011, 1012, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        const uint8_t p[] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        assert_int_equal(corio__ws_close_parse(p, 2, &c, NULL), 0);
        assert_int_equal(c.code, good[i]);
    }
    const uint8_t not_utf8[] = {0x03, 0xe8, 'o', 0xc0, 0xaf};
    fail.code = 0;
    assert_int_equal(corio__ws_close_parse(not_utf8, sizeof not_utf8, &c, &fail), CORIO_EBADMSG);
    assert_int_equal(fail.code, 1007);
    const uint8_t cut_utf8[] = {0x03, 0xe8, 0xe2, 0x82}; /* the start of a euro sign */
    assert_int_equal(corio__ws_close_parse(cut_utf8, sizeof cut_utf8, &c, &fail), CORIO_EBADMSG);
    uint8_t big[126] = {0x03, 0xe8};
    memset(big + 2, 'a', sizeof big - 2);
    assert_int_equal(corio__ws_close_parse(big, 125, &c, NULL), 0);
    assert_int_equal(corio__ws_close_parse(big, 126, &c, &fail), CORIO_EBADMSG);
}

static void test_ws_close_build_cuts_reason_at_a_character(void **state) {
    (void)state;
    uint8_t out[CORIO__WS_CONTROL_MAX];
    assert_int_equal(corio__ws_close_build(out, 1000, "bye", 3), 5);
    const uint8_t want[] = {0x03, 0xe8, 'b', 'y', 'e'};
    assert_memory_equal(out, want, 5);
    assert_int_equal(corio__ws_close_build(out, 1005, "ignored", 7), 0);
    assert_int_equal(corio__ws_close_build(out, 1006, NULL, 0), CORIO_EINVAL);
    assert_int_equal(corio__ws_close_build(out, 999, NULL, 0), CORIO_EINVAL);
    assert_int_equal(corio__ws_close_build(out, 4000, NULL, 0), 2);
    char reason[200];
    memset(reason, 'a', sizeof reason);
    assert_int_equal(corio__ws_close_build(out, 1001, reason, sizeof reason), 125);
    /* A 3-byte euro sign (E2 82 AC) at bytes 122-124 of the reason: byte 123
     * is inside it, so the reason stops before it, at 122 bytes. */
    memcpy(reason + 122, "\xe2\x82\xac", 3);
    assert_int_equal(corio__ws_close_build(out, 1001, reason, sizeof reason), 2 + 122);
    /* Ending exactly at 123 keeps it. */
    memset(reason, 'a', sizeof reason);
    memcpy(reason + 120, "\xe2\x82\xac", 3);
    assert_int_equal(corio__ws_close_build(out, 1001, reason, sizeof reason), 125);
    /* A 4-byte character at 121-124: cut to 121. */
    memset(reason, 'a', sizeof reason);
    memcpy(reason + 121, "\xf0\x9f\x98\x80", 4);
    int n = corio__ws_close_build(out, 1001, reason, sizeof reason);
    assert_int_equal(n, 2 + 121);
    corio__ws_close c;
    assert_int_equal(corio__ws_close_parse(out, (size_t)n, &c, NULL), 0);
    assert_int_equal(c.code, 1001);
    /* A reason that is not UTF-8 is left out. */
    assert_int_equal(corio__ws_close_build(out, 1000, "a\xff", 2), 2);
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* RFC 3629 the plain way: decode each character and check its range. */
static bool ref_utf8_valid(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t b = p[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        }
        if ((b & 0xe0) == 0xc0)
            len = 2, cp = b & 0x1fu, min = 0x80;
        else if ((b & 0xf0) == 0xe0)
            len = 3, cp = b & 0x0fu, min = 0x800;
        else if ((b & 0xf8) == 0xf0)
            len = 4, cp = b & 0x07u, min = 0x10000;
        else
            return false;
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3fu);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static int utf8_split(const uint8_t *p, size_t n, size_t split) {
    corio__ws_utf8 u = {0};
    int rc = corio__ws_utf8_feed(&u, p, split);
    if (rc == 0)
        rc = corio__ws_utf8_feed(&u, p + split, n - split);
    return rc ? rc : corio__ws_utf8_end(&u);
}

#define UTF8_OK(s) assert_int_equal(corio__ws_utf8_check((const uint8_t *)(s), sizeof(s) - 1), 0)
#define UTF8_BAD(s)                                                                                \
    assert_int_equal(corio__ws_utf8_check((const uint8_t *)(s), sizeof(s) - 1), CORIO_EBADMSG)

static void test_ws_utf8_accepts_valid_text(void **state) {
    (void)state;
    UTF8_OK("");
    UTF8_OK("Hello");
    UTF8_OK("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"); /* kosme, Autobahn 6.2 */
    UTF8_OK("\xc2\x80");                                     /* U+0080 */
    UTF8_OK("\xdf\xbf");                                     /* U+07FF */
    UTF8_OK("\xe0\xa0\x80");                                 /* U+0800 */
    UTF8_OK("\xed\x9f\xbf");                                 /* U+D7FF */
    UTF8_OK("\xee\x80\x80");                                 /* U+E000 */
    UTF8_OK("\xef\xbf\xbf");                                 /* U+FFFF */
    UTF8_OK("\xf0\x90\x80\x80");                             /* U+10000 */
    UTF8_OK("\xf4\x8f\xbf\xbf");                             /* U+10FFFF */
    UTF8_OK("0123456789abcdef0123456789abcdef\xe2\x82\xac"
            "0123456789abcdef01234");
}

static void test_ws_utf8_refuses_each_invalid_class(void **state) {
    (void)state;
    UTF8_BAD("\xc0\x80");                 /* overlong NUL */
    UTF8_BAD("\xc1\xbf");                 /* overlong 2-byte */
    UTF8_BAD("\xe0\x80\x80");             /* overlong 3-byte */
    UTF8_BAD("\xe0\x9f\xbf");             /* overlong U+07FF */
    UTF8_BAD("\xf0\x80\x80\x80");         /* overlong 4-byte */
    UTF8_BAD("\xf0\x8f\xbf\xbf");         /* overlong U+FFFF */
    UTF8_BAD("\xed\xa0\x80");             /* U+D800 */
    UTF8_BAD("\xed\xbf\xbf");             /* U+DFFF */
    UTF8_BAD("\xed\xa0\x80\xed\xb0\x80"); /* a surrogate pair, CESU-8 */
    UTF8_BAD("\xf4\x90\x80\x80");         /* U+110000 */
    UTF8_BAD("\xf5\x80\x80\x80");         /* lead byte past F4 */
    UTF8_BAD("\xf8\x88\x80\x80\x80");     /* 5-byte form */
    UTF8_BAD("\xfe");
    UTF8_BAD("\xff");
    UTF8_BAD("\x80"); /* lone continuation */
    UTF8_BAD("a\xbf");
    UTF8_BAD("\xc2\x41");             /* lead then ASCII */
    UTF8_BAD("\xe2\x82\xe2\x82\xac"); /* lead before the end of a character */
    UTF8_BAD("0123456789abcdef0123456789abcdef0123456789\xff"); /* after the fast path */
    UTF8_BAD("0123456789abcdef\xe2\x82");                       /* truncated at the end */
}

/* A message may stop anywhere in the middle (the next frame goes on), but
 * not at its end; and a bad byte is refused when it arrives. */
static void test_ws_utf8_truncated_end_and_fail_fast(void **state) {
    (void)state;
    const uint8_t euro[] = {0xe2, 0x82, 0xac};
    for (size_t k = 1; k < 3; k++) {
        corio__ws_utf8 u = {0};
        assert_int_equal(corio__ws_utf8_feed(&u, euro, k), 0);
        assert_int_equal(corio__ws_utf8_end(&u), CORIO_EBADMSG);
    }
    static const char *early[] = {"\xed\xa0", "\xf4\x90", "\xe0\x9f", "\xf0\x8f",
                                  "\xc0",     "\xf5",     "ab\x80"};
    for (size_t i = 0; i < sizeof early / sizeof early[0]; i++) {
        corio__ws_utf8 u = {0};
        assert_int_equal(corio__ws_utf8_feed(&u, (const uint8_t *)early[i], strlen(early[i])),
                         CORIO_EBADMSG);
        /* Sticky: valid bytes after it do not bring it back. */
        assert_int_equal(corio__ws_utf8_feed(&u, (const uint8_t *)"abc", 3), CORIO_EBADMSG);
        assert_int_equal(corio__ws_utf8_end(&u), CORIO_EBADMSG);
    }
}

/* Every character split at every position across two calls (and fed one
 * byte at a time) is accepted. */
static void test_ws_utf8_split_at_every_position(void **state) {
    (void)state;
    const char *text = "a\xc2\x80"
                       "b\xe2\x82\xac"
                       "c\xf0\x9f\x98\x80"
                       "d\xed\x9f\xbf\xf4\x8f\xbf\xbf"
                       "0123456789abcdefghij";
    const uint8_t *p = (const uint8_t *)text;
    size_t n = strlen(text);
    for (size_t s = 0; s <= n; s++)
        assert_int_equal(utf8_split(p, n, s), 0);
    corio__ws_utf8 u = {0};
    for (size_t i = 0; i < n; i++)
        assert_int_equal(corio__ws_utf8_feed(&u, p + i, 1), 0);
    assert_int_equal(corio__ws_utf8_end(&u), 0);
    /* And an invalid one at every split is refused. */
    const uint8_t bad[] = {'x', 0xed, 0xa0, 0x80, 'y'};
    for (size_t s = 0; s <= sizeof bad; s++)
        assert_int_equal(utf8_split(bad, sizeof bad, s), CORIO_EBADMSG);
}

/* Every sequence of 1 to 3 bytes, and 4-byte ones around every boundary,
 * as the plain decoder says; whole and split alike. */
static void test_ws_utf8_exhaustive_against_a_plain_decoder(void **state) {
    (void)state;
    for (uint32_t v = 0; v < (1u << 24); v++) {
        const uint8_t p[3] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        bool want = ref_utf8_valid(p, 3);
        if ((corio__ws_utf8_check(p, 3) == 0) != want || (utf8_split(p, 3, 1) == 0) != want ||
            (utf8_split(p, 3, 2) == 0) != want)
            fail_msg("%02x %02x %02x: expected %s", p[0], p[1], p[2], want ? "valid" : "invalid");
        if (v < (1u << 16) && (corio__ws_utf8_check(p + 1, 2) == 0) != ref_utf8_valid(p + 1, 2))
            fail_msg("%02x %02x", p[1], p[2]);
    }
    static const uint8_t tails[] = {0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc2};
    for (unsigned lead = 0xc0; lead < 0x100; lead++)
        for (unsigned b1 = 0; b1 < 256; b1++)
            for (size_t i = 0; i < sizeof tails; i++)
                for (size_t j = 0; j < sizeof tails; j++) {
                    const uint8_t p[4] = {(uint8_t)lead, (uint8_t)b1, tails[i], tails[j]};
                    bool want = ref_utf8_valid(p, 4);
                    if ((corio__ws_utf8_check(p, 4) == 0) != want ||
                        (utf8_split(p, 4, 3) == 0) != want)
                        fail_msg("%02x %02x %02x %02x", p[0], p[1], p[2], p[3]);
                }
}

/* Long texts (ASCII runs through the word-at-a-time path, characters of
 * every length, now and then a corrupted byte) split at random places. */
static void test_ws_utf8_long_texts_against_a_plain_decoder(void **state) {
    (void)state;
    static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\x9f\xbf"};
    uint32_t seed = 12345;
    uint8_t buf[600];
    for (int round = 0; round < 20000; round++) {
        size_t n = 0;
        while (n < sizeof buf - 40) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = seed >> 16;
            if (r % 3) {
                size_t run = r % 37;
                memset(buf + n, 'a' + (int)(r % 26), run);
                n += run;
            } else {
                const char *c = chars[r % 4];
                memcpy(buf + n, c, strlen(c));
                n += strlen(c);
            }
            if (r % 97 == 0 && n)
                buf[(r >> 3) % n] = (uint8_t)(r >> 7); /* corrupt a byte */
        }
        seed = seed * 1103515245u + 12345u;
        size_t split = (seed >> 8) % (n + 1);
        bool want = ref_utf8_valid(buf, n);
        assert_int_equal(corio__ws_utf8_check(buf, n) == 0, want);
        assert_int_equal(utf8_split(buf, n, split) == 0, want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ws_rfc_unmasked_text_frame),
        cmocka_unit_test(test_ws_rfc_masked_text_frame_unmasks_to_hello),
        cmocka_unit_test(test_ws_rfc_fragmented_text_message),
        cmocka_unit_test(test_ws_rfc_unmasked_ping_and_masked_pong),
        cmocka_unit_test(test_ws_rfc_256_byte_and_64k_length_forms),
        cmocka_unit_test(test_ws_encode_writes_the_rfc_example_heads),
        cmocka_unit_test(test_ws_encode_shortest_length_form_round_trips),
        cmocka_unit_test(test_ws_encode_refuses_what_no_peer_accepts),
        cmocka_unit_test(test_ws_parse_refuses_reserved_opcodes),
        cmocka_unit_test(test_ws_parse_refuses_reserved_bits),
        cmocka_unit_test(test_ws_parse_refuses_bad_control_frames),
        cmocka_unit_test(test_ws_parse_refuses_bad_lengths),
        cmocka_unit_test(test_ws_parse_refuses_mask_wrong_for_role),
        cmocka_unit_test(test_ws_parse_refuses_payload_over_max_with_1009),
        cmocka_unit_test(test_ws_parse_byte_by_byte_equals_at_once),
        cmocka_unit_test(test_ws_mask_in_pieces_at_every_split_equals_at_once),
        cmocka_unit_test(test_ws_mask_copy_leaves_source_and_twice_restores),
        cmocka_unit_test(test_ws_frame_order_refuses_orphan_and_interleaved_data),
        cmocka_unit_test(test_ws_close_code_validity_matches_rfc_6455_7_4),
        cmocka_unit_test(test_ws_close_parse_cases),
        cmocka_unit_test(test_ws_close_build_cuts_reason_at_a_character),
        cmocka_unit_test(test_ws_utf8_accepts_valid_text),
        cmocka_unit_test(test_ws_utf8_refuses_each_invalid_class),
        cmocka_unit_test(test_ws_utf8_truncated_end_and_fail_fast),
        cmocka_unit_test(test_ws_utf8_split_at_every_position),
        cmocka_unit_test(test_ws_utf8_exhaustive_against_a_plain_decoder),
        cmocka_unit_test(test_ws_utf8_long_texts_against_a_plain_decoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
