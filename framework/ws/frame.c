/* SPDX-License-Identifier: MIT */
/* WebSocket frames on the wire (see ws/frame.h): heads read and written,
 * payloads masked, data frames kept in order, close payloads.
 *
 * The head parser keeps no state: the caller gives it all the bytes
 * buffered so far and calls again when more arrive (a head is at most 14
 * bytes, so re-reading it costs nothing).  Every rule is checked as soon as
 * its bytes are there: a frame that breaks one is refused before its
 * payload is waited for, and the answer does not depend on how the bytes
 * were split.
 *
 * Lengths must be in their shortest form: RFC 6455 5.2 says the minimal
 * number of bytes MUST be used, so a peer that does otherwise is not
 * speaking the protocol, and wslay refuses such frames too (WSLAY_ERR_PROTO).
 * It also means a parsed head encodes back to the same bytes, which the
 * fuzz harness checks.
 */
#include <string.h>

#include "ws/frame.h"
#include "ws/utf8.h"

/* Fills *fail and returns the error its close code stands for. */
static int fail_with(corio__ws_fail *fail, uint16_t code, const char *reason) {
    if (fail) {
        fail->code = code;
        fail->reason = reason;
    }
    return code == CORIO__WS_CLOSE_TOO_BIG ? CORIO_ERANGE : CORIO_EBADMSG;
}

static int protocol_error(corio__ws_fail *fail, const char *reason) {
    return fail_with(fail, CORIO__WS_CLOSE_PROTOCOL, reason);
}

static bool opcode_known(unsigned op) {
    return op <= CORIO__WS_BINARY || (op >= CORIO__WS_CLOSE && op <= CORIO__WS_PONG);
}

static bool opcode_data(unsigned op) {
    return op == CORIO__WS_TEXT || op == CORIO__WS_BINARY;
}

/* ---- reading a head ------------------------------------------------------------------------ */

/* The rules the first two bytes decide: opcode, reserved bits, control
 * frames' limits, the mask bit for our role.  Returns 0 or the failure. */
static int check_start(const corio__ws_rules *r, uint8_t b0, uint8_t b1, corio__ws_fail *fail) {
    unsigned op = b0 & 0x0fu;
    if (!opcode_known(op))
        return protocol_error(fail, "reserved opcode");
    if (b0 & 0x30u)
        return protocol_error(fail, "reserved bit RSV2 or RSV3 set");
    if ((b0 & 0x40u) && !(r->allow_rsv1 && opcode_data(op)))
        return protocol_error(fail, "reserved bit RSV1 set");
    if (corio__ws_is_control(op)) {
        if (!(b0 & 0x80u))
            return protocol_error(fail, "fragmented control frame");
        if ((b1 & 0x7fu) > CORIO__WS_CONTROL_MAX)
            return protocol_error(fail, "control frame longer than 125 bytes");
    }
    bool masked = (b1 & 0x80u) != 0;
    if (r->role == CORIO__WS_SERVER && !masked)
        return protocol_error(fail, "unmasked frame from a client");
    if (r->role == CORIO__WS_CLIENT && masked)
        return protocol_error(fail, "masked frame from a server");
    return 0;
}

static uint64_t read_be(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* An extended length of ext (2 or 8) bytes: shortest form, top bit clear.
 * Returns 0 or the failure. */
static int check_length(uint64_t len, size_t ext, corio__ws_fail *fail) {
    if (ext == 8 && len >> 63)
        return protocol_error(fail, "64-bit length with the top bit set");
    if ((ext == 2 && len < 126) || (ext == 8 && len <= 0xffffu))
        return protocol_error(fail, "length not in its shortest form");
    return 0;
}

int corio__ws_header_parse(const corio__ws_rules *rules, const uint8_t *buf, size_t n,
                           corio__ws_header *h, corio__ws_fail *fail) {
    if (n < 2)
        return 0;
    int rc = check_start(rules, buf[0], buf[1], fail);
    if (rc)
        return rc;
    unsigned len7 = buf[1] & 0x7fu;
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (n < 2 + ext)
        return 0;
    uint64_t len = len7;
    if (ext) {
        len = read_be(buf + 2, ext);
        if ((rc = check_length(len, ext, fail)) != 0)
            return rc;
    }
    if (rules->max_payload && len > rules->max_payload)
        return fail_with(fail, CORIO__WS_CLOSE_TOO_BIG, "message too big");
    bool masked = (buf[1] & 0x80u) != 0;
    size_t hl = 2 + ext + (masked ? 4 : 0);
    if (n < hl)
        return 0;
    *h = (corio__ws_header){
        .fin = (buf[0] & 0x80u) != 0,
        .rsv1 = (buf[0] & 0x40u) != 0,
        .rsv2 = (buf[0] & 0x20u) != 0, /* false: refused above, kept for completeness */
        .rsv3 = (buf[0] & 0x10u) != 0,
        .masked = masked,
        .opcode = (uint8_t)(buf[0] & 0x0fu),
        .header_len = (uint8_t)hl,
        .payload_len = len,
    };
    if (masked)
        memcpy(h->mask, buf + 2 + ext, 4);
    return (int)hl;
}

/* ---- writing a head ------------------------------------------------------------------------ */

int corio__ws_header_encode(uint8_t *out, unsigned flags, unsigned opcode, uint64_t payload_len,
                            const uint8_t *mask) {
    if ((flags & ~(CORIO__WS_FIN | CORIO__WS_RSV1)) || !opcode_known(opcode) || payload_len >> 63)
        return CORIO_EINVAL;
    if ((flags & CORIO__WS_RSV1) && !opcode_data(opcode))
        return CORIO_EINVAL; /* RFC 7692 6.1: only on a data message's first frame */
    if (corio__ws_is_control(opcode) &&
        (payload_len > CORIO__WS_CONTROL_MAX || !(flags & CORIO__WS_FIN)))
        return CORIO_EINVAL;
    uint8_t m = mask ? 0x80u : 0;
    size_t i = 2;
    out[0] = (uint8_t)(flags | opcode);
    if (payload_len < 126) {
        out[1] = (uint8_t)(m | payload_len);
    } else {
        size_t ext = payload_len <= 0xffffu ? 2 : 8;
        out[1] = (uint8_t)(m | (ext == 2 ? 126 : 127));
        for (size_t k = 0; k < ext; k++)
            out[2 + k] = (uint8_t)(payload_len >> (8 * (ext - 1 - k)));
        i += ext;
    }
    if (mask) {
        memcpy(out + i, mask, 4);
        i += 4;
    }
    return (int)i;
}

/* ---- masking --------------------------------------------------------------------------------- */

/* The key is rotated to the payload offset and widened to 8 bytes once;
 * then 32 and 8 bytes at a time through memcpy'd words (compilers make
 * plain loads of them; no alignment is assumed, so no undefined
 * behaviour), the last bytes one by one.  Every block starts a multiple of
 * 8 from src, so byte i always meets key[i % 8]. */
void corio__ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
                         uint64_t offset) {
    uint8_t key[8];
    for (unsigned j = 0; j < 8; j++)
        key[j] = mask[(offset + j) & 3];
    uint64_t k, w[4];
    memcpy(&k, key, 8);
    size_t i = 0;
    for (; len - i >= 32; i += 32) {
        memcpy(w, src + i, 32);
        w[0] ^= k;
        w[1] ^= k;
        w[2] ^= k;
        w[3] ^= k;
        memcpy(dst + i, w, 32);
    }
    for (; len - i >= 8; i += 8) {
        memcpy(w, src + i, 8);
        w[0] ^= k;
        memcpy(dst + i, w, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ key[i & 7];
}

/* ---- the order of data frames ------------------------------------------------------------ */

int corio__ws_frame_order(bool *in_message, const corio__ws_header *h, corio__ws_fail *fail) {
    if (corio__ws_is_control(h->opcode))
        return 0; /* may come between the fragments of a message (RFC 6455 5.4) */
    if (h->opcode == CORIO__WS_CONT) {
        if (!*in_message)
            return protocol_error(fail, "continuation frame outside a message");
    } else if (*in_message) {
        return protocol_error(fail, "new message inside a fragmented one");
    }
    *in_message = !h->fin;
    return 0;
}

/* ---- close payloads ---------------------------------------------------------------------- */

bool corio__ws_close_code_valid(unsigned code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int corio__ws_close_parse(const uint8_t *payload, size_t len, corio__ws_close *out,
                          corio__ws_fail *fail) {
    if (len > CORIO__WS_CONTROL_MAX)
        return protocol_error(fail, "control frame longer than 125 bytes");
    if (len == 1)
        return protocol_error(fail, "close payload of 1 byte");
    if (len == 0) {
        *out = (corio__ws_close){.code = CORIO__WS_CLOSE_NO_STATUS, .reason = payload};
        return 0;
    }
    unsigned code = (unsigned)payload[0] << 8 | payload[1];
    if (!corio__ws_close_code_valid(code))
        return protocol_error(fail, "invalid close code");
    if (corio__ws_utf8_check(payload + 2, len - 2))
        return fail_with(fail, CORIO__WS_CLOSE_INVALID_DATA, "close reason is not UTF-8");
    *out = (corio__ws_close){.code = (uint16_t)code, .reason = payload + 2, .reason_len = len - 2};
    return 0;
}

int corio__ws_close_build(uint8_t *out, unsigned code, const char *reason, size_t reason_len) {
    if (code == CORIO__WS_CLOSE_NO_STATUS)
        return 0;
    if (!corio__ws_close_code_valid(code))
        return CORIO_EINVAL;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    const uint8_t *r = (const uint8_t *)reason;
    size_t n = reason_len;
    if (n > CORIO__WS_CONTROL_MAX - 2) { /* cut before the character holding byte 123 */
        n = CORIO__WS_CONTROL_MAX - 2;
        while (n > 0 && (r[n] & 0xc0u) == 0x80u)
            n--;
    }
    if (n && corio__ws_utf8_check(r, n))
        n = 0;
    if (n)
        memcpy(out + 2, r, n);
    return (int)(2 + n);
}
