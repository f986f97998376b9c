/* SPDX-License-Identifier: MIT */
/* UTF-8 validation for WebSocket text (RFC 6455 8.1: a text message or a
 * close reason that is not UTF-8 fails the connection with 1007), as the
 * bytes arrive: a message comes in several frames, each in several reads,
 * and a character may be split anywhere, so the state is carried from one
 * call to the next.  Valid means RFC 3629: no overlong forms, no surrogates
 * (U+D800-DFFF), nothing above U+10FFFF, no 0xC0, 0xC1, 0xF5-0xFF.
 *
 *     corio__ws_utf8 u = {0};                       (one per message)
 *     for each piece: if (corio__ws_utf8_feed(&u, p, n)) close with 1007;
 *     at the final frame: if (corio__ws_utf8_end(&u)) close with 1007;
 *
 * A failure is reported at the first byte that cannot continue valid text,
 * so a bad message is refused as early as possible (Autobahn's "fail fast"
 * cases 6.x), not at its end.
 */
#ifndef CORIO_WS_UTF8_H
#define CORIO_WS_UTF8_H

#include <stddef.h>
#include <stdint.h>

#include "corio/error.h"

/* The state between calls; zero-initialised at the start of a message. */
typedef struct corio__ws_utf8 {
    uint8_t state; /* private: a state of the automaton in utf8.c */
} corio__ws_utf8;

/* Checks the next n bytes of a text.  Returns 0 while the text so far can
 * still be valid (it may end inside a character), CORIO_EBADMSG once it
 * cannot (and for every call after that). */
int corio__ws_utf8_feed(corio__ws_utf8 *u, const uint8_t *p, size_t n);

/* At the end of the text: returns 0 if it is complete valid UTF-8,
 * CORIO_EBADMSG if it was not or stopped inside a character. */
int corio__ws_utf8_end(const corio__ws_utf8 *u);

/* Both at once, for a text that is all there (a close reason).
 * Returns 0 or CORIO_EBADMSG. */
int corio__ws_utf8_check(const uint8_t *p, size_t n);

#endif
