/* SPDX-License-Identifier: MIT */
/* The opening handshake's pure parts (RFC 6455 section 4, RFC 7692
 * sections 5 and 7): the Sec-WebSocket-Key / -Accept pair, header values
 * that are comma-separated lists (Connection, Upgrade,
 * Sec-WebSocket-Protocol), and the permessage-deflate negotiation.  No
 * request or response objects: every function takes a header's value as a
 * (pointer, length) slice, as the HTTP layer holds them, with no
 * surrounding whitespace required or assumed.  A header sent on several
 * lines is one list (RFC 9110 5.3): join the lines with ", ", or call once
 * per line as each function says.
 */
#ifndef CORIO_WS_HANDSHAKE_H
#define CORIO_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corio/error.h"

/* A Sec-WebSocket-Key: base64 of 16 bytes. */
#define CORIO__WS_KEY_LEN 24
/* A Sec-WebSocket-Accept: base64 of a SHA-1 (20 bytes). */
#define CORIO__WS_ACCEPT_LEN 28

/* Whether key is a valid Sec-WebSocket-Key: 24 characters of the standard
 * base64 alphabet, the last two "==", so that it decodes to exactly 16
 * bytes (RFC 6455 4.2.1 item 5).  The unused low bits of the 22nd
 * character are not checked (decoders ignore them; Python's websockets
 * too). */
bool corio__ws_key_valid(const char *key, size_t len);

/* Writes the Sec-WebSocket-Accept for key into out (CORIO__WS_ACCEPT_LEN
 * characters and a NUL): base64(SHA-1(key + the RFC's GUID)).
 * Returns 0, CORIO_EINVAL when the key is not valid (corio__ws_key_valid),
 * or CORIO_EFAILED when OpenSSL cannot compute SHA-1 (out of memory, or no
 * provider offers it). */
int corio__ws_accept_key(const char *key, size_t len, char *out);

/* The client's check of the server's answer: whether accept (the header's
 * value) is the one for the key the client sent.  Returns 0 when it is,
 * CORIO_EBADMSG when not, CORIO_EINVAL or CORIO_EFAILED as
 * corio__ws_accept_key. */
int corio__ws_accept_check(const char *key, size_t key_len, const char *accept, size_t accept_len);

/* Writes a client's Sec-WebSocket-Key into out (CORIO__WS_KEY_LEN
 * characters and a NUL): the base64 of 16 bytes the caller draws from a
 * CSPRNG (RAND_bytes, as for mask keys), so that this function stays pure
 * and testable and one place decides where randomness comes from. */
void corio__ws_client_key(char *out, const uint8_t nonce[16]);

/* Whether the comma-separated list value holds token, compared without
 * regard to ASCII case (Connection: "keep-alive, Upgrade" holds "upgrade";
 * Upgrade: "WebSocket" holds "websocket").  Spaces and tabs around the
 * elements and empty elements are allowed; "websocket/13" is not
 * "websocket".  For several lines, true if any line holds it. */
bool corio__ws_has_token(const char *value, size_t len, const char *token);

/* The subprotocol to answer with: the first of the server's preference
 * list prefs (nprefs names) that the client's Sec-WebSocket-Protocol
 * value offers, compared exactly (subprotocol names are case-sensitive).
 * The server's order wins, not the client's: RFC 6455 4.2.2 leaves the
 * choice to the server, and a server that lists "v2, v1" means it.
 * Returns the index in prefs, or CORIO_ENOENT when the client offers none
 * of them (answer without the header).  For several lines, call once per
 * line and keep the smallest index. */
int corio__ws_subprotocol_select(const char *offered, size_t len, const char *const *prefs,
                                 size_t nprefs);

/* ---- permessage-deflate negotiation (RFC 7692 5, 7.1) --------------------------------------
 *
 * One configuration for either role, saying what we want:
 *   server_no_context_takeover  the server resets its compressor after each
 *                               message (asked by a client, imposed by a server)
 *   client_no_context_takeover  the client does (the same)
 *   server_max_window_bits      the server's LZ77 window, 2^bits bytes: 0 for
 *                               no limit of ours (15), else 9 to 15
 *   client_max_window_bits      the client's: 0 or 9 to 15; a client with 0
 *                               does not offer the parameter at all, so no
 *                               server can limit its window
 *
 * Window bits 8.  zlib cannot compress raw deflate with a 256-byte window
 * (deflateInit2 with windowBits -8 fails since zlib 1.2.9; before, it
 * silently used 512 bytes, whose distances a 256-byte inflater rejects), so
 * rounding 8 up to 9 would break the agreement.  Instead 8 is accepted as
 * the RFC allows, and a side whose own window was set to 8 sends its
 * messages uncompressed (RFC 7692 lets a sender leave any message
 * uncompressed; ws/deflate.h does so): the peer's messages are still
 * inflated (inflate supports 8), the handshake never fails over it, and no
 * offer is declined for it.  corio itself never asks for 8: the config takes
 * 9 to 15, as a zlib peer asked for 8 could then not compress.
 *
 * The agreed parameters: the server compresses with server_max_window_bits
 * and decompresses with client_max_window_bits, and a client the other way
 * round (the same four fields as corio__ws_pmd_params in ws/deflate.h).
 */

typedef struct corio__ws_pmd_config {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 0, or 9 to 15 */
    uint8_t client_max_window_bits; /* 0, or 9 to 15 */
} corio__ws_pmd_config;

typedef struct corio__ws_pmd_agreed {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8 to 15 (15 when not limited) */
    uint8_t client_max_window_bits; /* 8 to 15 */
} corio__ws_pmd_agreed;

/* Room for any offer or response corio builds, with its NUL. */
#define CORIO__WS_PMD_HEADER_MAX 160

/* The server's side: reads the client's Sec-WebSocket-Extensions value
 * (offers separated by commas, each "name; param[=value]; ...", values a
 * token or a quoted string as RFC 6455 9.1 allows) and accepts the first
 * well-formed permessage-deflate offer.  An offer with an unknown, repeated
 * or malformed parameter is declined and the next one tried (RFC 7692
 * 7.1); other extensions and elements that do not parse are skipped.
 * Extension and parameter names are compared exactly, as registered.  In
 * the accepted offer cfg is applied: each window no larger than both sides
 * want, and each "no context takeover" that either side asked for.
 * Returns the length of the response value written to resp (a NUL-ended
 * string, e.g. "permessage-deflate; server_max_window_bits=12") with
 * *agreed filled in; 0 when no offer was accepted (no header in the
 * response, no compression); CORIO_EINVAL for a cfg out of range;
 * CORIO_ERANGE when cap is too small (CORIO__WS_PMD_HEADER_MAX is
 * enough).  For several lines, call once per line until one accepts. */
int corio__ws_pmd_accept(const corio__ws_pmd_config *cfg, const char *offers, size_t len,
                         corio__ws_pmd_agreed *agreed, char *resp, size_t cap);

/* The client's side, before: writes its one offer, from cfg, into out (a
 * NUL-ended Sec-WebSocket-Extensions value).  Returns its length,
 * CORIO_EINVAL for a cfg out of range, CORIO_ERANGE when cap is too small. */
int corio__ws_pmd_offer(const corio__ws_pmd_config *cfg, char *out, size_t cap);

/* The client's side, after: checks the server's Sec-WebSocket-Extensions
 * value (resp, present: without the header there is no compression)
 * against the offer corio__ws_pmd_offer made from the same cfg, which
 * offered nothing else.  It must be one permessage-deflate element whose
 * parameters are each known, once, well-formed, and within the offer: no
 * client_max_window_bits unless offered, and not above the offered value;
 * server_max_window_bits present and not above the offered value when one
 * was offered; server_no_context_takeover when it was asked.
 * Returns 0 with *agreed filled in, CORIO_EBADMSG when the handshake must
 * fail (RFC 7692 7.1), CORIO_EINVAL for a cfg out of range. */
int corio__ws_pmd_confirm(const corio__ws_pmd_config *cfg, const char *resp, size_t len,
                          corio__ws_pmd_agreed *agreed);

#endif
