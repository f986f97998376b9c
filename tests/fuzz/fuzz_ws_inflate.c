/* SPDX-License-Identifier: MIT */
/* Fuzzes permessage-deflate's decompressor, corio__ws_inflate_*
 * (framework/ws/deflate.c), with messages a peer could send.
 *
 * Feeds: a connection whose options come from the input, then up to 16
 * compressed messages, each fed in pieces and read in buffers of sizes the
 * input chooses (or inflated with corio__ws_inflate_buf).  Input layout:
 *   byte 0   bits 0-2 the peer's window bits - 8, bit 3 the peer's
 *            no_context_takeover, bit 4 we are the server, bits 5-7 the cap
 *            (0, 1, 5, 100, 4 KiB, 64 KiB, 1 MiB, 8 MiB)
 *   byte 1   bits 0-2 the read size (1, 7, 64, 1000, 4 KiB, 16 KiB, 64 KiB,
 *            1 MiB), bits 3-5 the piece size (1, 2, 3, 16, 100, 1000, 64 KiB,
 *            all), bit 6 corio__ws_inflate_buf instead of reads, bit 7 pieces
 *            of random sizes up to the piece size
 *   then per message: 2 bytes of length (little-endian) and that many bytes
 *            (fewer at the input's end).
 * Asserts:
 *   - every call returns 0, CORIO_EBADMSG or CORIO_ERANGE (ENOMEM only if
 *     malloc fails), and an error sticks: the next feed returns it;
 *   - a message never delivers more than the cap, and a growing buffer never
 *     grows past the cap + 1;
 *   - the zlib state a connection holds stays an inflater's (1 << 15 window,
 *     about 7 KiB of state);
 *   - what a message inflates to, however it was cut, is what zlib inflating
 *     the whole message (00 00 ff ff appended, the stream restarted after
 *     BFINAL, a window of 15) gives; a message zlib finds corrupt is not
 *     accepted, nor one that ends inside a block (truncated); with a window
 *     of 15, a message zlib inflates whole (ending between blocks) within
 *     the cap is accepted, one of more than the cap is refused with
 *     CORIO_ERANGE;
 *   - an accepted message, compressed again by corio__ws_deflate_buf, comes
 *     back the same;
 *   - released, nothing is left (the module's count; ASan's leak check).
 */
#define ZLIB_CONST
#include <stdbool.h>
#include <zlib.h>

#include "fuzz.h"
#include "ws/deflate.h"

#define INFLATE_MAX (48 * 1024)

static const size_t caps[8] = {0, 1, 5, 100, 4096, 65536, 1 << 20, 8 << 20};
static const size_t read_sizes[8] = {1, 7, 64, 1000, 4096, 16384, 65536, 1 << 20};
static const size_t piece_sizes[8] = {1, 2, 3, 16, 100, 1000, 65536, SIZE_MAX};

typedef struct run {
    corio__ws_pmd d; /* under test */
    z_stream ref;    /* zlib, the whole message at once */
    bool ref_reset;  /* the peer's no_context_takeover */
    bool ref_whole;  /* zlib stopped between blocks, or at the stream's end */
    size_t cap, read_size, piece_size;
    bool use_buf, random_pieces;
    uint32_t seed;
    uint8_t *out;            /* one read's bytes */
    corio__ws_buf got, want; /* the message under test, zlib's */
} run;

static size_t next_piece(run *r, size_t left) {
    size_t k = r->piece_size;
    if (r->random_pieces && k != SIZE_MAX) {
        r->seed = r->seed * 1103515245u + 12345u;
        k = (r->seed >> 8) % (k + 1);
    }
    return k < left ? k : left;
}

/* zlib's reading of a whole message: the bytes it inflates to (up to cap +
 * 1), Z_OK, or Z_DATA_ERROR; r->ref_whole, whether it stopped between
 * blocks.  Mirrors RFC 7692 7.2.2 as deflate.c reads it. */
static int ref_inflate(run *r, const uint8_t *msg, size_t n) {
    r->want.len = 0;
    r->ref_whole = n == 0; /* no payload: an empty message, nothing inflated */
    if (n == 0)
        return Z_OK;
    uint8_t *in = malloc(n + 4);
    FUZZ_CHECK(in, "malloc");
    memcpy(in, msg, n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    r->ref.next_in = in;
    r->ref.avail_in = (uInt)n + 4;
    int rc = Z_OK;
    while (rc == Z_OK && r->want.len <= r->cap) {
        if (r->want.len == r->want.cap) {
            r->want.cap = r->want.cap ? r->want.cap * 2 : 4096;
            r->want.data = realloc(r->want.data, r->want.cap);
            FUZZ_CHECK(r->want.data, "realloc");
        }
        r->ref.next_out = r->want.data + r->want.len;
        r->ref.avail_out = (uInt)(r->want.cap - r->want.len);
        rc = inflate(&r->ref, Z_SYNC_FLUSH);
        r->want.len = r->want.cap - r->ref.avail_out;
        if (rc != Z_BUF_ERROR) /* a call with nothing to do leaves the state it reports */
            r->ref_whole = rc == Z_STREAM_END || (r->ref.data_type & 128);
        if (rc == Z_OK && r->ref.avail_in == 0 && r->ref.avail_out)
            break;
    }
    free(in);
    if (rc == Z_STREAM_END || r->ref_reset)
        inflateReset(&r->ref);
    return rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR ? Z_OK : Z_DATA_ERROR;
}

/* Inflates one message under test, fed and read as the options say, into
 * r->got.  Returns the module's code. */
static int inflate_message(run *r, const uint8_t *msg, size_t n) {
    r->got.len = 0;
    size_t off = 0;
    for (bool fin = false; !fin;) {
        size_t k = next_piece(r, n - off);
        bool last = off + k == n;
        if (r->use_buf) {
            int rc = corio__ws_inflate_buf(&r->d, msg + off, k, last, &r->got);
            FUZZ_CHECK(r->got.cap <= r->cap + 1, "buffer %zu past cap %zu", r->got.cap, r->cap);
            if (rc)
                return rc;
            off += k;
            fin = last;
            continue;
        }
        int rc = corio__ws_inflate_feed(&r->d, msg + off, k, last);
        off += k;
        for (size_t got = 1; rc == 0 && got && !fin;) {
            rc = corio__ws_inflate_read(&r->d, r->out, r->read_size, &got, &fin);
            FUZZ_CHECK(rc || r->got.len + got <= r->cap, "%zu bytes past cap %zu", r->got.len + got,
                       r->cap);
            if (rc == 0 && got) {
                if (r->got.cap - r->got.len < got) {
                    r->got.cap = 2 * (r->got.len + got);
                    r->got.data = realloc(r->got.data, r->got.cap);
                    FUZZ_CHECK(r->got.data, "realloc");
                }
                memcpy(r->got.data + r->got.len, r->out, got);
                r->got.len += got;
            }
        }
        FUZZ_CHECK(corio__ws_pmd_bytes(&r->d) <= INFLATE_MAX, "holds %zu",
                   corio__ws_pmd_bytes(&r->d));
        if (rc)
            return rc;
    }
    return 0;
}

/* An accepted message compressed again (our window: the peer's, at least
 * 9) comes back the same through a fresh pair. */
static void round_trip(const run *r, int bits) {
    corio__ws_pmd_params p;
    corio__ws_pmd_params_init(&p);
    p.server_max_window_bits = p.client_max_window_bits = (uint8_t)(bits < 9 ? 9 : bits);
    p.max_message = r->got.len;
    corio__ws_pmd tx, rx;
    FUZZ_CHECK(corio__ws_pmd_init(&tx, &p, true) == 0, "init");
    FUZZ_CHECK(corio__ws_pmd_init(&rx, &p, false) == 0, "init");
    corio__ws_buf comp = {0}, back = {0};
    int rc = corio__ws_deflate_buf(&tx, r->got.data, r->got.len, true, &comp);
    FUZZ_CHECK(rc == 0, "deflate: %d", rc);
    rc = corio__ws_inflate_buf(&rx, comp.data, comp.len, true, &back);
    FUZZ_CHECK(rc == 0, "inflate of our own: %d", rc);
    FUZZ_CHECK(back.len == r->got.len && (!back.len || !memcmp(back.data, r->got.data, back.len)),
               "round trip differs");
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
    corio__ws_pmd_release(&tx);
    corio__ws_pmd_release(&rx);
}

/* Checks one message's outcome against zlib's; returns false once the
 * connection has failed. */
static bool check_message(run *r, const uint8_t *msg, size_t n, int bits) {
    int rc = inflate_message(r, msg, n);
    int ref = ref_inflate(r, msg, n);
    FUZZ_CHECK(rc == 0 || rc == CORIO_EBADMSG || rc == CORIO_ERANGE || rc == CORIO_ENOMEM,
               "code %d", rc);
    if (rc == 0) {
        FUZZ_CHECK(ref == Z_OK, "accepted what zlib finds corrupt");
        FUZZ_CHECK(r->ref_whole, "accepted a message that ends inside a block");
        FUZZ_CHECK(r->want.len == r->got.len, "%zu bytes, zlib %zu", r->got.len, r->want.len);
        FUZZ_CHECK(!r->got.len || !memcmp(r->got.data, r->want.data, r->got.len), "bytes differ");
        if (r->got.len <= 65536)
            round_trip(r, bits);
        return true;
    }
    if (rc == CORIO_ERANGE)
        FUZZ_CHECK(r->want.len > r->cap, "refused %zu bytes under cap %zu", r->want.len, r->cap);
    if (ref == Z_OK && r->want.len <= r->cap && r->ref_whole && bits == 15)
        FUZZ_CHECK(rc == CORIO_ENOMEM, "refused what zlib takes whole: code %d", rc);
    /* With a window of 15 both see the same data (smaller ones may refuse,
     * across inflate calls, what reaches past the window agreed) */
    if (ref == Z_OK && r->want.len > r->cap && bits == 15)
        FUZZ_CHECK(rc == CORIO_ERANGE, "over the cap, code %d", rc);
    FUZZ_CHECK(corio__ws_inflate_feed(&r->d, "", 0, true) == rc, "error not sticky");
    FUZZ_CHECK(corio__ws_pmd_bytes(&r->d) == 0, "failed, still holds state");
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    uint8_t o0 = fuzz_u8(&in), o1 = fuzz_u8(&in);
    int bits = 8 + (o0 & 7);
    run r = {.ref_reset = o0 & 8,
             .cap = caps[o0 >> 5],
             .read_size = read_sizes[o1 & 7],
             .piece_size = piece_sizes[(o1 >> 3) & 7],
             .use_buf = o1 & 64,
             .random_pieces = o1 & 128,
             .seed = o0 | (uint32_t)o1 << 8};
    corio__ws_pmd_params p;
    corio__ws_pmd_params_init(&p);
    bool server = o0 & 16;
    *(server ? &p.client_max_window_bits : &p.server_max_window_bits) = (uint8_t)bits;
    *(server ? &p.client_no_context_takeover : &p.server_no_context_takeover) = r.ref_reset;
    p.max_message = r.cap;
    FUZZ_CHECK(corio__ws_pmd_init(&r.d, &p, server) == 0, "init");
    FUZZ_CHECK(inflateInit2(&r.ref, -15) == Z_OK, "zlib");
    r.out = malloc(r.read_size);
    FUZZ_CHECK(r.out, "malloc");
    for (int m = 0; m < 16 && in.n; m++) {
        size_t n = fuzz_u8(&in);
        n |= (size_t)fuzz_u8(&in) << 8;
        n = n < in.n ? n : in.n;
        bool ok = check_message(&r, in.p, n, bits);
        in.p += n;
        in.n -= n;
        if (!ok)
            break;
    }
    corio__ws_pmd_release(&r.d);
    inflateEnd(&r.ref);
    free(r.out);
    corio__ws_buf_release(&r.got);
    corio__ws_buf_release(&r.want);
    corio__ws_pmd_cache_clear();
    FUZZ_CHECK(corio__ws_pmd_thread_bytes(NULL) == 0, "%zu bytes left",
               corio__ws_pmd_thread_bytes(NULL));
    return 0;
}
