/* SPDX-License-Identifier: MIT */
/* fuzz_ws_frame — the WebSocket codec (framework/ws/frame.c, utf8.c) on a
 * stream of frames read as a connection reads them.
 *
 * Feeds: byte 0 the rules (bit 0 our role: server, else client; bit 1 RSV1
 * allowed; bits 2-3 max_payload: none, 125, 65535, 1 MiB), byte 1 where to
 * split each payload for piecewise unmasking and UTF-8 (a fraction of its
 * length), then the bytes of the stream: frame after frame, each head
 * parsed from all the bytes left, its payload the bytes that follow (cut
 * short at the end of the input).
 *
 * Asserts:
 *  - the head parser returns 0, a head length in 2..14, CORIO_EBADMSG with
 *    close code 1002 or CORIO_ERANGE with 1009, a reason of at most 40
 *    bytes; every shorter prefix of the input gives "need more" or the same
 *    failure (the answer does not depend on how the bytes arrive);
 *  - a parsed head keeps every rule: known opcode, no RSV2/RSV3, RSV1 only
 *    when allowed and on text or binary, control frames FIN and at most 125
 *    bytes, masked exactly when we are a server, length below 2^63 and
 *    within max_payload; and it is the shortest encoding, so
 *    corio__ws_header_encode writes back the very bytes parsed;
 *  - unmasking in two pieces (each with its offset) equals unmasking at
 *    once and the byte-wise definition; masking again restores the bytes;
 *  - the UTF-8 validator agrees with a plain decoder on each payload, whole
 *    or split, and runs across the frames of a text message;
 *  - a close payload parses to a valid code (or 1005 for none) and a UTF-8
 *    reason inside the payload, or fails with 1002 or 1007; what parses
 *    builds back to the same code and reason.
 */
#include "fuzz.h"

#include "ws/frame.h"
#include "ws/utf8.h"

/* RFC 3629 the plain way (as tests/test_ws_frame.c). */
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

static void check_fail(int rc, const corio__ws_fail *f) {
    FUZZ_CHECK(rc == CORIO_EBADMSG || rc == CORIO_ERANGE, "returned %d", rc);
    FUZZ_CHECK(f->code == (rc == CORIO_ERANGE ? 1009 : 1002), "rc %d with close code %u", rc,
               f->code);
    FUZZ_CHECK(f->reason && strlen(f->reason) <= 40, "reason");
}

/* Every prefix of the n bytes gives 0 or the whole answer `want`. */
static void check_prefixes(const corio__ws_rules *r, const uint8_t *p, size_t n, int want,
                           const corio__ws_fail *wf) {
    size_t upto = n < CORIO__WS_HEADER_MAX ? n : CORIO__WS_HEADER_MAX;
    for (size_t k = 0; k < upto; k++) {
        corio__ws_header h;
        corio__ws_fail f = {0, NULL};
        int rc = corio__ws_header_parse(r, p, k, &h, &f);
        FUZZ_CHECK(rc == 0 || rc == want, "prefix %zu of %zu: %d, whole %d", k, n, rc, want);
        FUZZ_CHECK(rc >= 0 || (f.code == wf->code && f.reason == wf->reason), "prefix %zu", k);
        FUZZ_CHECK(rc <= 0 || (size_t)rc <= k, "head of %d from %zu bytes", rc, k);
    }
}

static void check_head(const corio__ws_rules *r, const corio__ws_header *h, const uint8_t *p,
                       int hl) {
    unsigned op = h->opcode;
    bool data = op == CORIO__WS_TEXT || op == CORIO__WS_BINARY;
    FUZZ_CHECK(hl >= 2 && hl <= CORIO__WS_HEADER_MAX && hl == h->header_len, "head %d", hl);
    FUZZ_CHECK(op <= 2 || (op >= 8 && op <= 10), "opcode %u", op);
    FUZZ_CHECK(!h->rsv2 && !h->rsv3 && (!h->rsv1 || (r->allow_rsv1 && data)), "reserved bits");
    FUZZ_CHECK(!corio__ws_is_control(op) || (h->fin && h->payload_len <= 125), "control frame");
    FUZZ_CHECK(h->masked == (r->role == CORIO__WS_SERVER), "mask bit %d", h->masked);
    FUZZ_CHECK(h->payload_len >> 63 == 0, "length %llu", (unsigned long long)h->payload_len);
    FUZZ_CHECK(!r->max_payload || h->payload_len <= r->max_payload, "over max");
    uint8_t out[CORIO__WS_HEADER_MAX];
    unsigned flags = (h->fin ? CORIO__WS_FIN : 0) | (h->rsv1 ? CORIO__WS_RSV1 : 0);
    int n = corio__ws_header_encode(out, flags, op, h->payload_len, h->masked ? h->mask : NULL);
    FUZZ_CHECK(n == hl && memcmp(out, p, (size_t)hl) == 0, "encoded back to %d bytes, not %d", n,
               hl);
}

/* Unmasks the payload (n bytes at p) into a buffer of its own, at once and
 * in two pieces; returns the unmasked copy (malloc'd). */
static uint8_t *unmask(const corio__ws_header *h, const uint8_t *p, size_t n, size_t split) {
    uint8_t *whole = malloc(n + 1), *pieces = malloc(n + 1);
    if (!whole || !pieces)
        abort();
    if (!h->masked) {
        memcpy(whole, p, n);
        free(pieces);
        return whole;
    }
    corio__ws_mask_copy(whole, p, n, h->mask, 0);
    memcpy(pieces, p, n);
    corio__ws_mask(pieces, split, h->mask, 0);
    corio__ws_mask(pieces + split, n - split, h->mask, split);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(whole[i] == (p[i] ^ h->mask[i & 3]) && pieces[i] == whole[i],
                   "byte %zu of %zu (split %zu)", i, n, split);
    corio__ws_mask(pieces, n, h->mask, 0);
    FUZZ_CHECK(n == 0 || memcmp(pieces, p, n) == 0, "masking twice did not restore");
    free(pieces);
    return whole;
}

static void check_utf8(const uint8_t *p, size_t n, size_t split) {
    bool want = ref_utf8_valid(p, n);
    FUZZ_CHECK((corio__ws_utf8_check(p, n) == 0) == want, "whole: expected %d", want);
    corio__ws_utf8 u = {0};
    int rc = corio__ws_utf8_feed(&u, p, split);
    if (rc == 0)
        rc = corio__ws_utf8_feed(&u, p + split, n - split);
    if (rc == 0)
        rc = corio__ws_utf8_end(&u);
    FUZZ_CHECK((rc == 0) == want, "split at %zu of %zu: expected %d", split, n, want);
}

static void check_close(const uint8_t *p, size_t n) {
    corio__ws_close c;
    corio__ws_fail f = {0, NULL};
    int rc = corio__ws_close_parse(p, n, &c, &f);
    if (rc) {
        FUZZ_CHECK(rc == CORIO_EBADMSG && (f.code == 1002 || f.code == 1007), "close: %d", rc);
        return;
    }
    FUZZ_CHECK(c.code == 1005 ? n == 0 : corio__ws_close_code_valid(c.code), "code %u", c.code);
    FUZZ_CHECK(c.reason_len == (n ? n - 2 : 0) && (!c.reason_len || c.reason == p + 2), "reason");
    FUZZ_CHECK(ref_utf8_valid(c.reason, c.reason_len), "reason not UTF-8");
    uint8_t out[CORIO__WS_CONTROL_MAX];
    int m = corio__ws_close_build(out, c.code, (const char *)c.reason, c.reason_len);
    FUZZ_CHECK(m >= 0 && (size_t)m == n && memcmp(out, p, n) == 0, "rebuilt %d of %zu", m, n);
}

typedef struct stream {
    bool in_message, text;
    corio__ws_utf8 utf8;
} stream;

/* The payload of a parsed frame: unmasked, then its message's checks. */
static void check_payload(stream *s, const corio__ws_header *h, const uint8_t *p, size_t avail,
                          uint8_t split_byte) {
    size_t split = avail * split_byte / 255;
    uint8_t *data = unmask(h, p, avail, split);
    check_utf8(data, avail, split);
    bool was_in = s->in_message;
    corio__ws_fail f = {0, NULL};
    if (corio__ws_frame_order(&s->in_message, h, &f) == 0 && !corio__ws_is_control(h->opcode)) {
        if (!was_in) { /* a new message */
            s->text = h->opcode == CORIO__WS_TEXT;
            s->utf8 = (corio__ws_utf8){0};
        }
        if (s->text && corio__ws_utf8_feed(&s->utf8, data, avail) == 0 && h->fin)
            (void)corio__ws_utf8_end(&s->utf8);
    }
    if (h->opcode == CORIO__WS_CLOSE && avail == h->payload_len)
        check_close(data, avail);
    free(data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    uint8_t opt = fuzz_u8(&in), split_byte = fuzz_u8(&in);
    static const uint64_t maxes[4] = {0, 125, 65535, 1u << 20};
    corio__ws_rules r = {.role = (opt & 1) ? CORIO__WS_SERVER : CORIO__WS_CLIENT,
                         .allow_rsv1 = (opt & 2) != 0,
                         .max_payload = maxes[(opt >> 2) & 3]};
    stream s = {0};
    const uint8_t *p = in.p;
    size_t left = in.n;
    for (;;) {
        corio__ws_header h;
        corio__ws_fail f = {0, NULL};
        int rc = corio__ws_header_parse(&r, p, left, &h, &f);
        if (rc < 0)
            check_fail(rc, &f);
        check_prefixes(&r, p, left, rc, &f);
        if (rc <= 0)
            return 0;
        check_head(&r, &h, p, rc);
        p += rc;
        left -= (size_t)rc;
        size_t avail = h.payload_len < left ? (size_t)h.payload_len : left;
        check_payload(&s, &h, p, avail, split_byte);
        p += avail;
        left -= avail;
        if (avail < h.payload_len)
            return 0;
    }
}
