/* SPDX-License-Identifier: MIT */
/* permessage-deflate (RFC 7692) for one WebSocket connection, on zlib: the
 * compressor of the messages it sends and the decompressor of the messages
 * it receives, given the parameters the handshake agreed and the role.  No
 * I/O: the frame codec feeds payload bytes in and takes bytes out.
 *
 * Shape.  Both directions work the way zlib does: *feed* a piece of the
 * message (borrowed until it is consumed), then *read* what it turns into,
 * into a buffer of the caller's, as many times as bytes come out.  A frame
 * writer that fragments large messages reads straight into its frame
 * buffer, one frame per read (`fin` says which is the last); a reader of
 * large messages gets the inflated bytes piece by piece.  The _buf variants
 * do the same into a growable corio__ws_buf, for whole messages.
 *
 * The wire format (RFC 7692 7.2).  Sending: deflate, Z_SYNC_FLUSH at the
 * message's end, and the flush's trailing 00 00 ff ff left off (an empty
 * message is the single byte 00, 7.2.3.6).  Receiving: 00 00 ff ff appended
 * at the message's end, then inflate; a message must end on a block
 * boundary (anything else is a truncated or corrupt stream), except one
 * with no payload at all, taken as empty (zlib declines a second flush in
 * a row, and a peer that strips nothing then sends nothing); a message that
 * ends its DEFLATE stream (a block with BFINAL set, 7.2.3.4) is accepted,
 * what follows that block in the message is ignored, and the next message
 * starts a new stream (as Python's zlib-based peers do).
 *
 * Roles.  A server deflates with server_max_window_bits and resets after
 * each message when server_no_context_takeover, and inflates with
 * client_max_window_bits / client_no_context_takeover; a client the other
 * way round.
 *
 * Window bits 8.  zlib (since 1.2.9) refuses a raw deflate window of 256
 * bytes, and 1.2.8 and older silently used 512 bytes, which a peer
 * inflating with 256 rejects.  So when our own window is 8 we send every
 * message uncompressed (corio__ws_deflate_wanted() is false; RFC 7692 lets
 * a sender do that with any message), which is correct whether or not the
 * negotiation accepts 8.  Inflating, a window of 8 is raised to 9 (256
 * bytes more): it takes what old zlib peers send when they agreed to 8.
 * Otherwise the inflater's window is exactly the peer's, not always 15
 * (which would be safe too): it costs no more memory than it must.  (It is
 * no check on the peer: zlib refuses a distance past the data it has, but
 * within one inflate call it reaches back into that call's output whatever
 * the window.)
 *
 * Errors of the peer's data (the caller closes the connection with the
 * code in brackets): CORIO_EBADMSG, a corrupt or truncated DEFLATE stream
 * (1007, invalid frame payload data, as Node's ws sends; Python's
 * websockets sends 1002; the payload's framing was fine, its contents were
 * not); CORIO_ERANGE, a message that inflates to more than max_message
 * bytes (1009, message too big), returned as soon as max_message + 1 bytes
 * have come out, whatever the input still holds.  Both are sticky: every
 * later inflate call returns them.  CORIO_ENOMEM (1011) when zlib or a
 * buffer cannot get memory; never an abort.
 *
 * Memory.  zlib's state is allocated lazily, when the first compressed
 * message is sent (deflate) or received (inflate), through counting
 * allocator hooks.  Deflate holds (1 << (w + 2)) + (1 << (m + 9)) bytes plus
 * about 5.8 KiB of state (w the window bits, m memLevel: 262 KiB at 15 and
 * 8); inflate about 7.1 KiB of state plus a window of 1 << w bytes
 * allocated at its first output (39 KiB at 15).  With context takeover a
 * connection keeps its state from its first compressed message to its
 * release.  Without it (per direction) the state is borrowed from a
 * per-thread cache for the length of one message (every loop runs on a
 * thread of its own) and given back reset, so an idle connection holds
 * nothing and all the connections of a loop share a few states; a message
 * sent or received in pieces across awaits keeps its state until its end,
 * and a second such message meanwhile gets another.  The cache keeps at
 * most CORIO__WS_PMD_CACHE_MAX states per direction, freed at the thread's
 * exit.  A corio__ws_pmd is used on one thread.
 */
#ifndef CORIO_WS_DEFLATE_H
#define CORIO_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corio/error.h"

/* Idle zlib states kept per thread and direction for the connections
 * without context takeover. */
#define CORIO__WS_PMD_CACHE_MAX 4
/* The smallest buffer corio__ws_deflate_read() writes into. */
#define CORIO__WS_DEFLATE_READ_MIN 16

/* What the handshake agreed (RFC 7692 7.1; the negotiation fills these,
 * an absent *_max_window_bits is 15) and how this side compresses. */
typedef struct corio__ws_pmd_params {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15 */
    uint8_t client_max_window_bits; /* 8..15 */
    int level;                      /* zlib's 0..9, or -1 for its default (6) */
    int mem_level;                  /* zlib's memLevel, 1..9 (8: its default) */
    size_t max_message;             /* cap on the inflated size of one message */
    size_t min_compress;            /* messages shorter than this are sent uncompressed */
} corio__ws_pmd_params;

typedef struct corio__ws_zctx corio__ws_zctx; /* a zlib stream and its bytes (deflate.c) */

/* One connection's compression state.  Fields are private to deflate.c. */
typedef struct corio__ws_pmd {
    corio__ws_pmd_params p;
    int deflate_bits, inflate_bits;    /* windows used, from p and the role */
    bool deflate_reset, inflate_reset; /* no context takeover, per direction */
    corio__ws_zctx *def, *inf;         /* NULL while not held */
    /* the message being compressed */
    const uint8_t *din; /* fed bytes not yet handed to zlib */
    size_t din_len;
    size_t dout;            /* compressed bytes made for the message */
    bool dopen, dlast;      /* a message is open; its last piece was fed */
    uint8_t hold[5], nhold; /* the end of the output, held back (see .c) */
    /* the message being inflated */
    const uint8_t *iin;
    size_t iin_len;
    size_t inflated; /* bytes the message has inflated to */
    bool iopen, ilast;
    bool tail_given; /* 00 00 ff ff handed to zlib */
    bool ended;      /* the peer ended its stream (BFINAL) */
    bool more_out;   /* zlib may have output left for more room */
    bool boundary;   /* zlib stopped between two blocks (see deflate.c) */
    bool payload;    /* the message had a byte of payload */
    int ierr;        /* the sticky error of the peer's data */
} corio__ws_pmd;

/* A growable byte buffer for the _buf variants: data[0..len) holds bytes,
 * cap is allocated.  Zero-initialised is empty; freed with
 * corio__ws_buf_release. */
typedef struct corio__ws_buf {
    uint8_t *data;
    size_t len, cap;
} corio__ws_buf;

/* ---- the connection ------------------------------------------------------------------------- */

/* Sets RFC 7692's defaults (no flags, both windows 15) and the local ones:
 * level -1, mem_level 8, max_message 1 MiB, min_compress 128. */
void corio__ws_pmd_params_init(corio__ws_pmd_params *p);

/* Readies d for a connection with parameters p (copied) in the role given
 * (server true, client false).  Allocates nothing.  Returns 0, or
 * CORIO_EINVAL for a parameter out of range (window bits 8..15, level
 * -1..9, mem_level 1..9, max_message below SIZE_MAX). */
int corio__ws_pmd_init(corio__ws_pmd *d, const corio__ws_pmd_params *p, bool server);

/* Frees what d holds (a message in progress is abandoned); d may be
 * initialised again. */
void corio__ws_pmd_release(corio__ws_pmd *d);

/* Bytes of zlib state d holds now (both directions; the allocator hooks'
 * count).  0 before its first compressed message and, without context
 * takeover, between messages. */
size_t corio__ws_pmd_bytes(const corio__ws_pmd *d);

/* Bytes of zlib state allocated on the calling thread now (every
 * connection's and the cache's); *peak, if not NULL, gets the most since
 * the thread started or since corio__ws_pmd_peak_reset(). */
size_t corio__ws_pmd_thread_bytes(size_t *peak);
void corio__ws_pmd_peak_reset(void);

/* Frees the calling thread's cached zlib states (a test's accounting; the
 * thread's exit does it too). */
void corio__ws_pmd_cache_clear(void);

/* ---- sending -------------------------------------------------------------------------------- */

/* Whether a message of len bytes (SIZE_MAX: not known yet, a streamed
 * message) should be sent compressed (RSV1 set): false below min_compress,
 * and always when our window is 8 (see above). */
bool corio__ws_deflate_wanted(const corio__ws_pmd *d, size_t len);

/* Hands the next n bytes of the message being sent to the compressor; the
 * first call opens a message, last says this is its end (n may be 0).  The
 * bytes are borrowed until corio__ws_deflate_read() has consumed them.
 * Returns 0; CORIO_ENOMEM when the zlib state cannot be made (nothing is
 * open then: call again or send the message uncompressed); CORIO_ENOTSUP
 * when our window is 8; CORIO_EINVAL when the last bytes fed are not all
 * read yet or the message's end was already fed. */
int corio__ws_deflate_feed(corio__ws_pmd *d, const void *in, size_t n, bool last);

/* Writes up to cap (at least CORIO__WS_DEFLATE_READ_MIN) bytes of the
 * compressed message into out: *outlen gets how many, *fin whether they
 * end the message (the last piece of a message is never empty).  *outlen
 * 0 without *fin: the bytes fed are consumed, feed more.  After *fin the
 * next feed opens a new message.  Returns 0, CORIO_EINVAL (cap too small)
 * or CORIO_EFAILED (zlib refused its own state: a bug). */
int corio__ws_deflate_read(corio__ws_pmd *d, void *out, size_t cap, size_t *outlen, bool *fin);

/* Feeds n bytes and appends all they compress to (the message's end too
 * when last) to out, which grows as needed.  Returns what feed and read
 * return, and CORIO_ENOMEM when out cannot grow: the message cannot be
 * finished then (its bytes so far are lost), the connection is to be
 * closed. */
int corio__ws_deflate_buf(corio__ws_pmd *d, const void *in, size_t n, bool last,
                          corio__ws_buf *out);

/* ---- receiving ------------------------------------------------------------------------------ */

/* Hands the next n bytes of a compressed message's payload (a frame's or
 * part of one) to the decompressor; the first call opens a message, last
 * says these bytes end it.  Borrowed until corio__ws_inflate_read() has
 * consumed them.  Returns 0, the sticky CORIO_EBADMSG / CORIO_ERANGE /
 * CORIO_ENOMEM of an earlier failure, CORIO_ENOMEM when the zlib state
 * cannot be made (nothing is open then), or CORIO_EINVAL when the bytes
 * fed before are not all read or the message's end was already fed. */
int corio__ws_inflate_feed(corio__ws_pmd *d, const void *in, size_t n, bool last);

/* Writes up to cap bytes of the inflated message into out: *outlen gets
 * how many, *fin whether the message is complete.  *outlen 0 without
 * *fin: the bytes fed are consumed, feed more.  Returns 0, CORIO_EBADMSG
 * (corrupt or truncated data), CORIO_ERANGE (the message inflates past
 * max_message) or CORIO_ENOMEM; the three are sticky, and what this call
 * wrote is not part of the message. */
int corio__ws_inflate_read(corio__ws_pmd *d, void *out, size_t cap, size_t *outlen, bool *fin);

/* Feeds n bytes and appends all they inflate to to out, which grows as
 * needed but never past max_message + 1 bytes more than it held when the
 * message opened.  When last returns 0, out ends with the whole message.
 * Returns what feed and read return, and CORIO_ENOMEM (sticky, as read's)
 * when out cannot grow. */
int corio__ws_inflate_buf(corio__ws_pmd *d, const void *in, size_t n, bool last,
                          corio__ws_buf *out);

/* Frees b's bytes; b is empty again. */
void corio__ws_buf_release(corio__ws_buf *b);

#endif
