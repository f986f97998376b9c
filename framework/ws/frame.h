/* SPDX-License-Identifier: MIT */
/* The WebSocket wire format (RFC 6455 section 5), with no I/O: frame heads
 * read from and written to caller buffers, payload masking, the order of
 * data frames, close payloads, and (ws/utf8.h) the UTF-8 check of text.
 * The connection layer owns the bytes; these functions only look at them.
 *
 * Reading a frame:
 *
 *     corio__ws_rules rules = {.role = CORIO__WS_SERVER, .max_payload = 1 << 20};
 *     corio__ws_fail fail;
 *     int n = corio__ws_header_parse(&rules, buf, len, &h, &fail);
 *     if (n == 0) read more;                  (a head is 2 to 14 bytes)
 *     if (n < 0) send a close frame with fail.code and fail.reason, close;
 *     else the payload (h.payload_len bytes) starts at buf + n: unmask it
 *          with corio__ws_mask as it arrives, keeping the offset.
 *
 * Errors are those of a peer breaking the protocol: each comes with the close
 * code RFC 6455 7.4.1 gives it (1002 protocol error, 1007 invalid data,
 * 1009 message too big) and a short static reason, so the caller can answer
 * with a close frame and log the same words.
 */
#ifndef CORIO_WS_FRAME_H
#define CORIO_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corio/error.h"

/* The longest frame head: 2 bytes, 8 of 64-bit length, 4 of mask key. */
#define CORIO__WS_HEADER_MAX 14
/* The longest payload of a control frame (ping, pong, close). */
#define CORIO__WS_CONTROL_MAX 125

typedef enum corio__ws_opcode {
    CORIO__WS_CONT = 0x0,
    CORIO__WS_TEXT = 0x1,
    CORIO__WS_BINARY = 0x2,
    CORIO__WS_CLOSE = 0x8,
    CORIO__WS_PING = 0x9,
    CORIO__WS_PONG = 0xa,
} corio__ws_opcode;

/* Close codes (RFC 6455 7.4.1, and 1012-1014 from IANA's registry). */
enum {
    CORIO__WS_CLOSE_NORMAL = 1000,
    CORIO__WS_CLOSE_GOING_AWAY = 1001,
    CORIO__WS_CLOSE_PROTOCOL = 1002,
    CORIO__WS_CLOSE_UNSUPPORTED = 1003,
    CORIO__WS_CLOSE_NO_STATUS = 1005, /* never sent: "the close frame had no code" */
    CORIO__WS_CLOSE_ABNORMAL = 1006,  /* never sent: "no close frame at all" */
    CORIO__WS_CLOSE_INVALID_DATA = 1007,
    CORIO__WS_CLOSE_POLICY = 1008,
    CORIO__WS_CLOSE_TOO_BIG = 1009,
    CORIO__WS_CLOSE_EXTENSION = 1010,
    CORIO__WS_CLOSE_INTERNAL = 1011,
    CORIO__WS_CLOSE_RESTART = 1012,
    CORIO__WS_CLOSE_TRY_LATER = 1013,
    CORIO__WS_CLOSE_BAD_GATEWAY = 1014,
};

/* Which end we are.  A server reads masked frames and writes unmasked ones;
 * a client the other way round (RFC 6455 5.1). */
typedef enum corio__ws_role {
    CORIO__WS_SERVER,
    CORIO__WS_CLIENT,
} corio__ws_role;

/* What the peer did wrong: the close code to send and why (a static string
 * of at most 40 bytes, ASCII, so it fits any close payload). */
typedef struct corio__ws_fail {
    uint16_t code;
    const char *reason;
} corio__ws_fail;

/* How frames are checked as they are read. */
typedef struct corio__ws_rules {
    corio__ws_role role;  /* our role: a server requires masked frames, a client unmasked */
    bool allow_rsv1;      /* permessage-deflate was negotiated: RSV1 may mark a compressed
                           * message, on the first frame of a text or binary message only */
    uint64_t max_payload; /* a longer frame fails with 1009; 0: no limit of ours */
} corio__ws_rules;

/* A frame head as read. */
typedef struct corio__ws_header {
    bool fin, rsv1, rsv2, rsv3;
    bool masked;
    uint8_t opcode;     /* a corio__ws_opcode */
    uint8_t header_len; /* 2 to CORIO__WS_HEADER_MAX: where the payload starts */
    uint8_t mask[4];    /* the key when masked, zeros otherwise */
    uint64_t payload_len;
} corio__ws_header;

/* Whether an opcode is a control frame's (close, ping, pong, reserved 0xb-0xf). */
static inline bool corio__ws_is_control(unsigned opcode) {
    return (opcode & 0x8) != 0;
}

/* Reads the frame head at the start of buf (the n bytes buffered so far).
 * Each rule is checked as soon as the bytes it needs are there, so a head
 * given byte by byte gives the same result as given at once.  Refused, with
 * fail->code 1002 (CORIO_EBADMSG): a reserved opcode; RSV2 or RSV3; RSV1
 * unless rules->allow_rsv1 and the frame is text or binary; a control frame
 * not FIN or longer than 125 bytes; a 64-bit length with its top bit set; a
 * length not in its shortest form (RFC 6455 5.2: "the minimal number of
 * bytes MUST be used"); a frame masked when we are a client or unmasked when
 * we are a server.  Refused with 1009 (CORIO_ERANGE): a payload longer than
 * rules->max_payload.
 * Returns the head's length (2 to 14) with *h filled in, 0 when more bytes
 * are needed (*h untouched), CORIO_EBADMSG or CORIO_ERANGE with *fail
 * filled in (fail may be NULL). */
int corio__ws_header_parse(const corio__ws_rules *rules, const uint8_t *buf, size_t n,
                           corio__ws_header *h, corio__ws_fail *fail);

/* Flags of corio__ws_header_encode. */
#define CORIO__WS_FIN 0x80u
#define CORIO__WS_RSV1 0x40u

/* Writes a frame head into out (room for CORIO__WS_HEADER_MAX bytes):
 * flags (CORIO__WS_FIN, CORIO__WS_RSV1), the opcode, the payload length in
 * its shortest form, and when mask is not NULL (a client's frame) the mask
 * bit and the 4-byte key, which the caller draws from a CSPRNG
 * (RAND_bytes) for every frame and then applies with corio__ws_mask.
 * Returns the head's length (2 to 14), or CORIO_EINVAL for what no peer
 * would accept: an opcode that is not one of the six, a control frame
 * longer than 125 bytes or without FIN, RSV1 on anything but a text or
 * binary frame (RFC 7692 6.1), a length of 2^63 or more, other flags. */
int corio__ws_header_encode(uint8_t *out, unsigned flags, unsigned opcode, uint64_t payload_len,
                            const uint8_t *mask);

/* XORs len bytes from src into dst with the mask key, src[0] being byte
 * `offset` of the payload: a payload can be (un)masked piece by piece as it
 * arrives, giving each piece its offset.  dst == src works in place; other
 * overlaps do not.  Masking twice restores the bytes. */
void corio__ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
                         uint64_t offset);

/* corio__ws_mask_copy in place. */
static inline void corio__ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4],
                                  uint64_t offset) {
    corio__ws_mask_copy(buf, buf, len, mask, offset);
}

/* Checks a frame's place in the sequence of data frames (RFC 6455 5.4):
 * a continuation frame only inside a fragmented message, a text or binary
 * frame only outside one; control frames anywhere.  *in_message is the
 * state (false at the start of a connection): true from the first frame of
 * a fragmented message up to its final frame, updated here.
 * Returns 0, or CORIO_EBADMSG with *fail (code 1002; fail may be NULL). */
int corio__ws_frame_order(bool *in_message, const corio__ws_header *h, corio__ws_fail *fail);

/* ---- close frames (RFC 6455 5.5.1, 7.4) ---------------------------------------------------- */

/* A close frame's payload as read.  reason points into the payload. */
typedef struct corio__ws_close {
    uint16_t code; /* CORIO__WS_CLOSE_NO_STATUS (1005) when the payload is empty */
    const uint8_t *reason;
    size_t reason_len;
} corio__ws_close;

/* Whether a close code may appear in a close frame: 1000-1003, 1007-1014
 * (1012-1014 registered by IANA since RFC 6455) and 3000-4999.  1004,
 * 1005, 1006, 1015 and the rest below 3000 are reserved or never sent. */
bool corio__ws_close_code_valid(unsigned code);

/* Reads a close payload (unmasked, len <= 125): empty, or a 2-byte code
 * and a UTF-8 reason.  Returns 0 with *out filled in, or CORIO_EBADMSG with
 * *fail: a 1-byte payload or a code not valid on the wire (1002), a reason
 * that is not UTF-8 (1007). */
int corio__ws_close_parse(const uint8_t *payload, size_t len, corio__ws_close *out,
                          corio__ws_fail *fail);

/* Builds a close payload into out (room for CORIO__WS_CONTROL_MAX bytes):
 * code, then as much of the reason as fits 123 bytes, cut at a UTF-8
 * character boundary; a reason that is not UTF-8 is left out (the peer
 * would fail the connection on it).  Code 1005 builds the empty payload
 * (reason ignored).  reason may be NULL when reason_len is 0.
 * Returns the payload's length (0 to 125), or CORIO_EINVAL for a code that
 * may not be sent (corio__ws_close_code_valid). */
int corio__ws_close_build(uint8_t *out, unsigned code, const char *reason, size_t reason_len);

#endif
