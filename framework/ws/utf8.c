/* SPDX-License-Identifier: MIT */
/* Incremental UTF-8 validation (see ws/utf8.h): a deterministic automaton
 * over byte classes, in the manner of Bjoern Hoehrmann's decoder but with
 * tables of our own.  Each byte is mapped to one of 12 classes, and the
 * state with the class gives the next state; the state is all that is
 * carried between calls.  The states name what the next byte must be:
 *
 *   ACCEPT   between characters: any lead byte or ASCII
 *   NEED1..3 1, 2 or 3 continuation bytes (80-BF) still to come
 *   E0       after E0: A0-BF (below A0 is an overlong 3-byte form)
 *   ED       after ED: 80-9F (A0-BF would encode a surrogate D800-DFFF)
 *   F0       after F0: 90-BF (below 90 is an overlong 4-byte form)
 *   F4       after F4: 80-8F (90 and up is above U+10FFFF)
 *   REJECT   not UTF-8, for good
 *
 * The restricted second bytes are RFC 3629 section 4's table.  Text is
 * mostly ASCII, so between characters 16 or 8 bytes at a time are checked
 * for a high bit first (loaded with memcpy: no unaligned access).
 */
#include <string.h>

#include "ws/utf8.h"

enum { ACCEPT, REJECT, NEED1, NEED2, NEED3, AFTER_E0, AFTER_ED, AFTER_F0, AFTER_F4, NSTATES };

/* Byte classes: 0 ASCII; 1 80-8F, 2 90-9F, 3 A0-BF (continuations, split
 * where E0, ED, F0 and F4 restrict the next byte); 4 never valid (C0, C1,
 * F5-FF); 5 C2-DF; 6 E0; 7 E1-EC and EE-EF; 8 ED; 9 F0; 10 F1-F3; 11 F4. */
static const uint8_t byte_class[256] = {
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 00 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 10 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 20 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 30 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 40 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 50 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 60 */
    0, 0,  0,  0,  0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 70 */
    1, 1,  1,  1,  1,  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 80 */
    2, 2,  2,  2,  2,  2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 90 */
    3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* A0 */
    3, 3,  3,  3,  3,  3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, /* B0 */
    4, 4,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* C0 */
    5, 5,  5,  5,  5,  5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* D0 */
    6, 7,  7,  7,  7,  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7, /* E0 */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, /* F0 */
};

#define NCLASSES 12

/* next_state[state][class], the columns in the order of the classes
 * above; short names: A accept, R reject, N1-N3 need 1-3 more. */
#define A ACCEPT
#define R REJECT
#define N1 NEED1
#define N2 NEED2
#define N3 NEED3
static const uint8_t next_state[NSTATES][NCLASSES] = {
    [ACCEPT] = {A, R, R, R, R, N1, AFTER_E0, N2, AFTER_ED, AFTER_F0, N3, AFTER_F4},
    [REJECT] = {R, R, R, R, R, R, R, R, R, R, R, R},
    [NEED1] = {R, A, A, A, R, R, R, R, R, R, R, R},
    [NEED2] = {R, N1, N1, N1, R, R, R, R, R, R, R, R},
    [NEED3] = {R, N2, N2, N2, R, R, R, R, R, R, R, R},
    [AFTER_E0] = {R, R, R, N1, R, R, R, R, R, R, R, R},
    [AFTER_ED] = {R, N1, N1, R, R, R, R, R, R, R, R, R},
    [AFTER_F0] = {R, R, N2, N2, R, R, R, R, R, R, R, R},
    [AFTER_F4] = {R, N2, R, R, R, R, R, R, R, R, R, R},
};
#undef A
#undef R
#undef N1
#undef N2
#undef N3

#define HIGH_BITS 0x8080808080808080u

/* Skips whole words of ASCII from p + i: returns the start of the first
 * 8-byte block holding a byte of 0x80 or more, or of the last partial
 * block (fewer than 8 bytes before n), for the byte loop to go on from. */
static size_t skip_ascii(const uint8_t *p, size_t i, size_t n) {
    uint64_t a, b;
    while (n - i >= 16) {
        memcpy(&a, p + i, 8);
        memcpy(&b, p + i + 8, 8);
        if ((a | b) & HIGH_BITS)
            break;
        i += 16;
    }
    while (n - i >= 8) {
        memcpy(&a, p + i, 8);
        if (a & HIGH_BITS)
            break;
        i += 8;
    }
    return i;
}

int corio__ws_utf8_feed(corio__ws_utf8 *u, const uint8_t *p, size_t n) {
    unsigned s = u->state;
    size_t i = 0;
    while (i < n && s != REJECT) {
        if (s == ACCEPT) {
            i = skip_ascii(p, i, n);
            if (i == n)
                break;
        }
        s = next_state[s][byte_class[p[i++]]];
    }
    u->state = (uint8_t)s;
    return s == REJECT ? CORIO_EBADMSG : 0;
}

int corio__ws_utf8_end(const corio__ws_utf8 *u) {
    return u->state == ACCEPT ? 0 : CORIO_EBADMSG;
}

int corio__ws_utf8_check(const uint8_t *p, size_t n) {
    corio__ws_utf8 u = {0};
    int rc = corio__ws_utf8_feed(&u, p, n);
    return rc ? rc : corio__ws_utf8_end(&u);
}
