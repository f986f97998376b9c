/* SPDX-License-Identifier: MIT */
/* permessage-deflate (framework/ws/deflate.c): round trips of messages
 * whole and in random pieces, both roles; context takeover on and off;
 * RFC 7692's examples (7.2.3); zlib used directly as a peer (as Python's
 * zlib.compressobj(wbits=-15) is) and bytes captured from Python; zip
 * bombs stopped at the cap with bounded memory; corrupt and truncated
 * input; the empty message; window bits 8..15; memory per connection and
 * the per-thread cache; out of memory on every allocation.
 *
 * No loop: the module does no I/O.  malloc, calloc and realloc are wrapped
 * (-Wl,--wrap, tests/CMakeLists.txt) so that the out-of-memory test can
 * fail the Nth allocation.  Skipped when corio is built without zlib
 * (CORIO_HAVE_WS).
 */
#include "corio_test.h"

#include <string.h>

/* ---- a failing allocator -------------------------------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static long alloc_count;  /* allocations since the count was reset */
static long fail_at = -1; /* the allocation made to fail; -1: none */

static bool alloc_fails(void) {
    return fail_at >= 0 && alloc_count++ == fail_at;
}

void *__wrap_malloc(size_t n) {
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size) {
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n) {
    return alloc_fails() ? NULL : __real_realloc(p, n);
}

#ifdef CORIO_HAVE_WS
#include <zlib.h>

#include "ws/deflate.h"

/* ---- messages ------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void fill_random(uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnd();
}

/* JSON-like records: compresses about 10:1. */
static void fill_text(uint8_t *p, size_t n) {
    size_t i = 0;
    for (unsigned k = 0; i < n; k++) {
        char rec[96];
        int m = snprintf(rec, sizeof rec, "{\"id\":%u,\"user\":\"user%u\",\"ok\":true,\"n\":%u},",
                         k, k % 97, (unsigned)(rnd() % 1000));
        for (int j = 0; j < m && i < n; j++)
            p[i++] = (uint8_t)rec[j];
    }
}

static uint8_t *message(size_t n, bool text) {
    uint8_t *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (text)
        fill_text(p, n);
    else
        fill_random(p, n);
    return p;
}

static corio__ws_pmd_params params(int sbits, int cbits, bool s_nct, bool c_nct) {
    corio__ws_pmd_params p;
    corio__ws_pmd_params_init(&p);
    p.server_max_window_bits = (uint8_t)sbits;
    p.client_max_window_bits = (uint8_t)cbits;
    p.server_no_context_takeover = s_nct;
    p.client_no_context_takeover = c_nct;
    p.max_message = 4u << 20;
    p.min_compress = 0;
    return p;
}

/* A server and a client that agreed p. */
typedef struct pair {
    corio__ws_pmd server, client;
} pair;

static void pair_init(pair *pr, const corio__ws_pmd_params *p) {
    assert_corio(corio__ws_pmd_init(&pr->server, p, true), 0);
    assert_corio(corio__ws_pmd_init(&pr->client, p, false), 0);
}

static void pair_release(pair *pr) {
    corio__ws_pmd_release(&pr->server);
    corio__ws_pmd_release(&pr->client);
}

/* ---- sending and receiving whole and in pieces ---------------------------------------------- */

/* Compresses msg as one piece into out (emptied first). */
static void send_whole(corio__ws_pmd *d, const uint8_t *msg, size_t n, corio__ws_buf *out) {
    out->len = 0;
    assert_corio(corio__ws_deflate_buf(d, msg, n, true, out), 0);
    assert_true(out->len >= 1);
}

/* Inflates a whole compressed message into out (emptied first); returns
 * the code. */
static int recv_whole(corio__ws_pmd *d, const uint8_t *comp, size_t n, corio__ws_buf *out) {
    out->len = 0;
    return corio__ws_inflate_buf(d, comp, n, true, out);
}

/* A split of n bytes into random pieces (some empty): the next length. */
static size_t piece(size_t left) {
    switch (rnd() % 4) {
    case 0:
        return 0;
    case 1:
        return left < 7 ? left : rnd() % 7;
    default:
        return left ? rnd() % (left + 1) : 0;
    }
}

/* Compresses msg fed in random pieces and read in random sizes, as a frame
 * writer would; checks that only the last piece says fin and that it is
 * not empty, and that an empty read without fin comes only once the input
 * is consumed. */
static void send_pieces(corio__ws_pmd *d, const uint8_t *msg, size_t n, corio__ws_buf *out) {
    out->len = 0;
    size_t off = 0;
    bool fin = false;
    while (!fin) {
        size_t k = piece(n - off);
        bool last = off + k == n && rnd() % 2;
        assert_corio(corio__ws_deflate_feed(d, msg + off, k, last), 0);
        off += k;
        for (;;) {
            size_t cap = CORIO__WS_DEFLATE_READ_MIN + rnd() % 3000, got;
            if (out->cap - out->len < cap) {
                out->data = realloc(out->data, out->len + cap);
                assert_non_null(out->data);
                out->cap = out->len + cap;
            }
            assert_corio(corio__ws_deflate_read(d, out->data + out->len, cap, &got, &fin), 0);
            out->len += got;
            if (fin) {
                assert_true(last);
                assert_true(got > 0);
                break;
            }
            if (got == 0)
                break;
        }
    }
    assert_int_equal(off, n);
}

/* Inflates a compressed message fed in random pieces and read in random
 * sizes into out; returns the first error, or 0 once fin came. */
static int recv_pieces(corio__ws_pmd *d, const uint8_t *comp, size_t n, corio__ws_buf *out) {
    out->len = 0;
    size_t off = 0;
    bool fin = false;
    while (!fin) {
        size_t k = piece(n - off);
        bool last = off + k == n && rnd() % 2;
        int rc = corio__ws_inflate_feed(d, comp + off, k, last);
        if (rc)
            return rc;
        off += k;
        for (;;) {
            size_t cap = 1 + rnd() % 5000, got;
            if (out->cap - out->len < cap) {
                out->data = realloc(out->data, out->len + cap);
                assert_non_null(out->data);
                out->cap = out->len + cap;
            }
            rc = corio__ws_inflate_read(d, out->data + out->len, cap, &got, &fin);
            if (rc)
                return rc;
            out->len += got;
            if (fin || got == 0)
                break;
        }
    }
    assert_true(fin);
    return 0;
}

static void assert_same(const corio__ws_buf *b, const uint8_t *msg, size_t n) {
    assert_int_equal(b->len, n);
    if (n)
        assert_memory_equal(b->data, msg, n);
}

/* ---- zlib used directly, as a peer would (Python: zlib.compressobj(wbits=-bits)) ------------ */

/* Raw deflate of all of msg, then a sync flush, whose 00 00 ff ff is left
 * off: Python's compress(msg) + flush(Z_SYNC_FLUSH). */
static void zlib_send(z_stream *z, const uint8_t *msg, size_t n, corio__ws_buf *out) {
    out->len = 0;
    z->next_in = (Bytef *)msg;
    z->avail_in = (uInt)n;
    for (int flush = Z_NO_FLUSH;;) {
        if (out->cap - out->len < 4096) {
            out->data = realloc(out->data, out->cap + 65536);
            assert_non_null(out->data);
            out->cap += 65536;
        }
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)(out->cap - out->len);
        int rc = deflate(z, flush);
        assert_true(rc == Z_OK || rc == Z_BUF_ERROR);
        out->len = out->cap - z->avail_out;
        if (z->avail_out == 0)
            continue;
        if (flush == Z_SYNC_FLUSH)
            break;
        flush = Z_SYNC_FLUSH;
    }
    assert_true(out->len >= 4);
    assert_memory_equal(out->data + out->len - 4, "\x00\x00\xff\xff", 4);
    out->len -= 4;
}

/* Raw inflate of one message with 00 00 ff ff put back; returns zlib's
 * code (Z_OK when all was inflated). */
static int zlib_recv(z_stream *z, const uint8_t *comp, size_t n, corio__ws_buf *out) {
    uint8_t *in = malloc(n + 4);
    assert_non_null(in);
    memcpy(in, comp, n);
    memcpy(in + n, "\x00\x00\xff\xff", 4);
    out->len = 0;
    z->next_in = in;
    z->avail_in = (uInt)n + 4;
    int rc;
    do {
        if (out->cap - out->len < 4096) {
            out->data = realloc(out->data, out->cap + 65536);
            assert_non_null(out->data);
            out->cap += 65536;
        }
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)(out->cap - out->len);
        rc = inflate(z, Z_SYNC_FLUSH);
        out->len = out->cap - z->avail_out;
    } while (rc == Z_OK && (z->avail_in || z->avail_out == 0));
    free(in);
    return rc == Z_BUF_ERROR || rc == Z_STREAM_END ? Z_OK : rc;
}

/* ---- round trips ---------------------------------------------------------------------------- */

static const size_t sizes[] = {0, 1, 100, 64 * 1024, 1024 * 1024};

/* Every size, random and compressible, server to client and back, whole
 * and in pieces, with context takeover (several messages on one pair). */
static void test_round_trip_whole_and_in_pieces(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair pr;
    pair_init(&pr, &p);
    corio__ws_buf comp = {0}, back = {0};
    for (int pieces = 0; pieces < 2; pieces++) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            for (int text = 0; text < 2; text++) {
                for (int dir = 0; dir < 2; dir++) {
                    corio__ws_pmd *tx = dir ? &pr.client : &pr.server;
                    corio__ws_pmd *rx = dir ? &pr.server : &pr.client;
                    uint8_t *msg = message(sizes[i], text);
                    if (pieces)
                        send_pieces(tx, msg, sizes[i], &comp);
                    else
                        send_whole(tx, msg, sizes[i], &comp);
                    if (text && sizes[i] >= 64 * 1024)
                        assert_true(comp.len < sizes[i] / 4);
                    if (!text && sizes[i] >= 64 * 1024)
                        assert_true(comp.len < sizes[i] + sizes[i] / 100);
                    int rc = pieces ? recv_pieces(rx, comp.data, comp.len, &back)
                                    : recv_whole(rx, comp.data, comp.len, &back);
                    assert_corio(rc, 0);
                    assert_same(&back, msg, sizes[i]);
                    free(msg);
                }
            }
        }
    }
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
    pair_release(&pr);
}

/* Many random splits of the same messages, without context takeover:
 * every message decodes however it was cut on either side. */
static void test_round_trip_random_splits(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, true, true);
    pair pr;
    pair_init(&pr, &p);
    corio__ws_buf comp = {0}, back = {0};
    for (int round = 0; round < 200; round++) {
        size_t n = rnd() % 3 == 0 ? rnd() % 70000 : rnd() % 300;
        uint8_t *msg = message(n, round % 2);
        send_pieces(&pr.server, msg, n, &comp);
        assert_corio(recv_pieces(&pr.client, comp.data, comp.len, &back), 0);
        assert_same(&back, msg, n);
        free(msg);
    }
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
    pair_release(&pr);
}

/* ---- context takeover ----------------------------------------------------------------------- */

/* With takeover the second of two identical messages refers back to the
 * first: a small fraction of its size, and undecodable by a fresh peer. */
static void test_takeover_second_message_much_smaller(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair pr;
    pair_init(&pr, &p);
    uint8_t *msg = message(4096, false);
    corio__ws_buf c1 = {0}, c2 = {0}, back = {0};
    send_whole(&pr.server, msg, 4096, &c1);
    send_whole(&pr.server, msg, 4096, &c2);
    assert_true(c1.len > 4096);
    assert_true(c2.len < c1.len / 20);
    assert_corio(recv_whole(&pr.client, c1.data, c1.len, &back), 0);
    assert_corio(recv_whole(&pr.client, c2.data, c2.len, &back), 0);
    assert_same(&back, msg, 4096);

    corio__ws_pmd fresh;
    assert_corio(corio__ws_pmd_init(&fresh, &p, false), 0);
    assert_corio(recv_whole(&fresh, c2.data, c2.len, &back), CORIO_EBADMSG);
    corio__ws_pmd_release(&fresh);
    free(msg);
    corio__ws_buf_release(&c1);
    corio__ws_buf_release(&c2);
    corio__ws_buf_release(&back);
    pair_release(&pr);
}

/* Without takeover (each direction on its own flag) the same message
 * compresses to the same bytes every time, and a fresh peer decodes the
 * second alone. */
static void test_no_takeover_messages_independent(void **state) {
    (void)state;
    for (int dir = 0; dir < 2; dir++) {
        corio__ws_pmd_params p = params(15, 15, dir == 0, dir == 1);
        pair pr;
        pair_init(&pr, &p);
        corio__ws_pmd *tx = dir ? &pr.client : &pr.server;
        uint8_t *msg = message(4096, false);
        corio__ws_buf c1 = {0}, c2 = {0}, back = {0};
        send_whole(tx, msg, 4096, &c1);
        send_whole(tx, msg, 4096, &c2);
        assert_int_equal(c1.len, c2.len);
        assert_memory_equal(c1.data, c2.data, c1.len);

        corio__ws_pmd fresh;
        assert_corio(corio__ws_pmd_init(&fresh, &p, dir == 0), 0);
        assert_corio(recv_whole(&fresh, c2.data, c2.len, &back), 0);
        assert_same(&back, msg, 4096);
        corio__ws_pmd_release(&fresh);
        free(msg);
        corio__ws_buf_release(&c1);
        corio__ws_buf_release(&c2);
        corio__ws_buf_release(&back);
        pair_release(&pr);
    }
}

/* ---- RFC 7692 7.2.3's examples -------------------------------------------------------------- */

static const uint8_t hello_1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
static const uint8_t hello_2[] = {0xf2, 0x00, 0x11, 0x00, 0x00}; /* shares hello_1's window */

/* Decodes one whole message and expects "Hello". */
static void expect_hello(corio__ws_pmd *d, const uint8_t *comp, size_t n) {
    corio__ws_buf back = {0};
    assert_corio(recv_whole(d, comp, n, &back), 0);
    assert_same(&back, (const uint8_t *)"Hello", 5);
    corio__ws_buf_release(&back);
}

/* 7.2.3.1 and 7.2.3.2: "Hello", then "Hello" again through the shared
 * window; our compressor makes exactly those bytes. */
static void test_rfc7692_hello_and_shared_window(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair pr;
    pair_init(&pr, &p);
    expect_hello(&pr.client, hello_1, sizeof hello_1);
    expect_hello(&pr.client, hello_2, sizeof hello_2);

    corio__ws_buf comp = {0};
    send_whole(&pr.server, (const uint8_t *)"Hello", 5, &comp);
    assert_int_equal(comp.len, sizeof hello_1);
    assert_memory_equal(comp.data, hello_1, sizeof hello_1);
    send_whole(&pr.server, (const uint8_t *)"Hello", 5, &comp);
    assert_int_equal(comp.len, sizeof hello_2);
    assert_memory_equal(comp.data, hello_2, sizeof hello_2);
    corio__ws_buf_release(&comp);
    pair_release(&pr);
}

/* 7.2.3.3 (a stored block), 7.2.3.4 (BFINAL set, with and without the
 * byte after it; the next message starts a new stream), 7.2.3.5 (two
 * blocks in one message) and 7.2.3.6 (00: empty); and no payload at all,
 * empty as zlib-based peers read it. */
static void test_rfc7692_other_forms(void **state) {
    (void)state;
    static const uint8_t stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                     0x65, 0x6c, 0x6c, 0x6f, 0x00};
    static const uint8_t bfinal[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    static const uint8_t two_blocks[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                         0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    corio__ws_pmd_params p = params(15, 15, false, false);
    corio__ws_pmd d;
    assert_corio(corio__ws_pmd_init(&d, &p, true), 0);
    expect_hello(&d, stored, sizeof stored);
    expect_hello(&d, bfinal, sizeof bfinal);
    expect_hello(&d, hello_1, sizeof hello_1);
    expect_hello(&d, bfinal, sizeof bfinal - 1);
    expect_hello(&d, two_blocks, sizeof two_blocks);
    corio__ws_buf back = {0};
    assert_corio(recv_whole(&d, (const uint8_t *)"", 1, &back), 0);
    assert_int_equal(back.len, 0);
    expect_hello(&d, hello_1, sizeof hello_1);
    /* no payload at all: empty too, and the window goes on untouched */
    assert_corio(recv_whole(&d, NULL, 0, &back), 0); /* NULL: what a caller may pass */
    assert_int_equal(back.len, 0);
    assert_corio(recv_pieces(&d, (const uint8_t *)"", 0, &back), 0);
    assert_int_equal(back.len, 0);
    expect_hello(&d, hello_2, sizeof hello_2);
    corio__ws_buf_release(&back);
    corio__ws_pmd_release(&d);
}

/* Fed and read one byte at a time, every form still ends between blocks:
 * a stored block whose last bytes are the appended 00 00 ff ff too (zlib
 * reads "H" and the tail as its 5 bytes; a read after the last byte came
 * out must not lose that the stream stopped between blocks). */
static void test_bytewise_feeds_and_reads(void **state) {
    (void)state;
    static const uint8_t stored_in_tail[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 'H'};
    static const struct {
        const uint8_t *comp;
        size_t n;
        const char *text;
        size_t len;
    } msgs[] = {{hello_1, sizeof hello_1, "Hello", 5},
                {hello_2, sizeof hello_2, "Hello", 5},
                {stored_in_tail, sizeof stored_in_tail, "H\x00\x00\xff\xff", 5},
                {(const uint8_t *)"", 1, "", 0}};
    corio__ws_pmd_params p = params(15, 15, false, false);
    corio__ws_pmd d;
    assert_corio(corio__ws_pmd_init(&d, &p, false), 0);
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
        uint8_t got[8];
        size_t len = 0, k;
        bool fin = false;
        for (size_t off = 0; off < msgs[i].n; off++) {
            assert_corio(corio__ws_inflate_feed(&d, msgs[i].comp + off, 1, off + 1 == msgs[i].n),
                         0);
            do {
                assert_corio(corio__ws_inflate_read(&d, got + len, 1, &k, &fin), 0);
                len += k;
                assert_true(len <= msgs[i].len);
            } while (k && !fin);
        }
        assert_true(fin);
        assert_int_equal(len, msgs[i].len);
        assert_memory_equal(got, msgs[i].text, len);
    }
    corio__ws_pmd_release(&d);
}

/* ---- the empty message ---------------------------------------------------------------------- */

/* An empty message is the byte 00, first or after others (where zlib
 * itself makes nothing: a second flush in a row), and every peer (ours,
 * zlib's inflate) reads it as empty, its window intact. */
static void test_empty_message_is_one_zero_byte(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair pr;
    pair_init(&pr, &p);
    z_stream zin = {0};
    assert_int_equal(inflateInit2(&zin, -15), Z_OK);
    corio__ws_buf comp = {0}, back = {0};
    static const char *msgs[] = {"", "Hello", "", "", "Hello", ""};
    for (size_t i = 0; i < sizeof msgs / sizeof *msgs; i++) {
        size_t n = strlen(msgs[i]);
        if (i % 2)
            send_pieces(&pr.server, (const uint8_t *)msgs[i], n, &comp);
        else
            send_whole(&pr.server, (const uint8_t *)msgs[i], n, &comp);
        if (n == 0) {
            assert_int_equal(comp.len, 1);
            assert_int_equal(comp.data[0], 0x00);
        }
        assert_corio(recv_whole(&pr.client, comp.data, comp.len, &back), 0);
        assert_same(&back, (const uint8_t *)msgs[i], n);
        assert_int_equal(zlib_recv(&zin, comp.data, comp.len, &back), Z_OK);
        assert_same(&back, (const uint8_t *)msgs[i], n);
    }
    inflateEnd(&zin);
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
    pair_release(&pr);
}

/* ---- zip bombs ------------------------------------------------------------------------------ */

#define BOMB_SIZE ((size_t)100 << 20)
#define BOMB_CAP ((size_t)1 << 20)

/* 100 MiB of zeros, deflated as one message (about 100 KiB). */
static corio__ws_buf bomb(void) {
    static corio__ws_buf b;
    if (b.len)
        return b;
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_RLE), Z_OK);
    static uint8_t zeros[1 << 16];
    b.data = malloc(b.cap = 256 * 1024);
    assert_non_null(b.data);
    for (size_t done = 0; done < BOMB_SIZE; done += sizeof zeros) {
        z.next_in = zeros;
        z.avail_in = sizeof zeros;
        int flush = done + sizeof zeros == BOMB_SIZE ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        z.next_out = b.data + b.len;
        z.avail_out = (uInt)(b.cap - b.len);
        assert_int_equal(deflate(&z, flush), Z_OK);
        assert_true(z.avail_out > 0);
        b.len = b.cap - z.avail_out;
    }
    deflateEnd(&z);
    b.len -= 4;
    return b;
}

/* The most zlib state one inflating connection holds: a 32 KiB window,
 * the 7 KiB state, the counting headers and struct. */
#define INFLATE_STATE_MAX (48 * 1024)

/* Inflated whole into a growing buffer: CORIO_ERANGE, the buffer never
 * grew past the cap + 1, zlib's memory stayed an inflater's, the error
 * sticks and the state is freed. */
static void test_zip_bomb_buffered_stops_at_cap(void **state) {
    (void)state;
    corio__ws_buf b = bomb();
    corio__ws_pmd_params p = params(15, 15, false, false);
    p.max_message = BOMB_CAP;
    corio__ws_pmd d;
    assert_corio(corio__ws_pmd_init(&d, &p, true), 0);
    size_t base = corio__ws_pmd_thread_bytes(NULL), peak;
    corio__ws_pmd_peak_reset();
    corio__ws_buf back = {0};
    assert_corio(recv_whole(&d, b.data, b.len, &back), CORIO_ERANGE);
    assert_true(back.cap <= BOMB_CAP + 1);
    corio__ws_pmd_thread_bytes(&peak);
    assert_true(peak - base <= INFLATE_STATE_MAX);
    assert_int_equal(corio__ws_pmd_bytes(&d), 0);
    assert_corio(recv_whole(&d, hello_1, sizeof hello_1, &back), CORIO_ERANGE);
    corio__ws_buf_release(&back);
    corio__ws_pmd_release(&d);
}

/* Streamed (frames of 1 KiB, reads of 16 KiB): the error comes once the
 * cap is passed, after a small part of the input; no read delivered more
 * than the cap in all. */
static void test_zip_bomb_streamed_stops_early(void **state) {
    (void)state;
    corio__ws_buf b = bomb();
    corio__ws_pmd_params p = params(15, 15, true, true);
    p.max_message = BOMB_CAP;
    corio__ws_pmd d;
    assert_corio(corio__ws_pmd_init(&d, &p, true), 0);
    static uint8_t out[16384];
    size_t off = 0, delivered = 0;
    int rc = 0;
    while (rc == 0 && off < b.len) {
        size_t k = b.len - off < 1024 ? b.len - off : 1024;
        rc = corio__ws_inflate_feed(&d, b.data + off, k, off + k == b.len);
        off += k;
        for (size_t got = 1; rc == 0 && got;) {
            bool fin;
            rc = corio__ws_inflate_read(&d, out, sizeof out, &got, &fin);
            delivered += rc == 0 ? got : 0;
            assert_false(rc == 0 && fin);
        }
    }
    assert_corio(rc, CORIO_ERANGE);
    assert_true(delivered <= BOMB_CAP);
    assert_true(off < b.len / 20);
    corio__ws_pmd_release(&d);
}

/* At the cap exactly a message passes; one byte more is refused, whole
 * and in pieces. */
static void test_cap_exact_passes_one_more_refused(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    p.max_message = 1000;
    for (int pieces = 0; pieces < 2; pieces++) {
        for (size_t n = 999; n <= 1001; n++) {
            pair pr;
            pair_init(&pr, &p);
            uint8_t *msg = message(n, n % 2);
            corio__ws_buf comp = {0}, back = {0};
            send_whole(&pr.server, msg, n, &comp);
            int rc = pieces ? recv_pieces(&pr.client, comp.data, comp.len, &back)
                            : recv_whole(&pr.client, comp.data, comp.len, &back);
            assert_corio(rc, n <= 1000 ? 0 : CORIO_ERANGE);
            assert_true(back.len <= 1001);
            if (!pieces)
                assert_true(back.cap <= 1001);
            free(msg);
            corio__ws_buf_release(&comp);
            corio__ws_buf_release(&back);
            pair_release(&pr);
        }
    }
}

/* ---- corrupt input -------------------------------------------------------------------------- */

/* Expects CORIO_EBADMSG for a message, whole and in pieces, then the
 * error again on the next call, and no zlib state held. */
static void expect_corrupt(const corio__ws_pmd_params *p, const uint8_t *comp, size_t n) {
    for (int pieces = 0; pieces < 2; pieces++) {
        corio__ws_pmd d;
        corio__ws_buf back = {0};
        assert_corio(corio__ws_pmd_init(&d, p, false), 0);
        int rc = pieces ? recv_pieces(&d, comp, n, &back) : recv_whole(&d, comp, n, &back);
        assert_corio(rc, CORIO_EBADMSG);
        assert_int_equal(corio__ws_pmd_bytes(&d), 0);
        assert_corio(recv_whole(&d, hello_1, sizeof hello_1, &back), CORIO_EBADMSG);
        corio__ws_buf_release(&back);
        corio__ws_pmd_release(&d);
    }
}

static void test_corrupt_input_is_ebadmsg(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    static const uint8_t reserved_type[] = {0xff, 0xff, 0xff};
    static const uint8_t bad_stored_len[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'};
    static const uint8_t truncated[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07};
    /* "Hello world" deflated by Python against a zdict of "Hello world":
     * a match before the stream's start */
    static const uint8_t distance_before_start[] = {0xf2, 0x40, 0x30, 0x01, 0x00};
    expect_corrupt(&p, reserved_type, sizeof reserved_type);
    expect_corrupt(&p, bad_stored_len, sizeof bad_stored_len);
    expect_corrupt(&p, truncated, sizeof truncated);
    expect_corrupt(&p, distance_before_start, sizeof distance_before_start);
    expect_corrupt(&p, hello_2, sizeof hello_2); /* refers to a window it never had */
}

/* ---- window bits ---------------------------------------------------------------------------- */

/* A message with repeats at every distance up to 32 KiB. */
static uint8_t *far_repeats(size_t n) {
    uint8_t *msg = message(n, false);
    for (size_t i = 1024; i < n; i += 1024) {
        size_t back = (size_t)1 << (7 + rnd() % 9), len = 200 + rnd() % 600;
        if (back <= i && i + len <= n)
            memmove(msg + i, msg + i - back, len);
    }
    return msg;
}

/* Windows 9..15, each side on its own: round trips both ways, and zlib
 * inflating with exactly the agreed window takes what we send (we never
 * reach further back than agreed). */
static void test_window_bits_9_to_15_both_ways(void **state) {
    (void)state;
    for (int sbits = 9; sbits <= 15; sbits++) {
        int cbits = 24 - sbits; /* 15..9 */
        corio__ws_pmd_params p = params(sbits, cbits, false, false);
        pair pr;
        pair_init(&pr, &p);
        z_stream zs = {0}, zc = {0}; /* as a client would (server's window) and a server */
        assert_int_equal(inflateInit2(&zs, -sbits), Z_OK);
        assert_int_equal(inflateInit2(&zc, -cbits), Z_OK);
        corio__ws_buf comp = {0}, back = {0};
        for (int m = 0; m < 3; m++) {
            uint8_t *msg = far_repeats(64 * 1024);
            send_whole(&pr.server, msg, 64 * 1024, &comp);
            assert_int_equal(zlib_recv(&zs, comp.data, comp.len, &back), Z_OK);
            assert_same(&back, msg, 64 * 1024);
            assert_corio(recv_whole(&pr.client, comp.data, comp.len, &back), 0);
            assert_same(&back, msg, 64 * 1024);
            send_pieces(&pr.client, msg, 64 * 1024, &comp);
            assert_int_equal(zlib_recv(&zc, comp.data, comp.len, &back), Z_OK);
            assert_same(&back, msg, 64 * 1024);
            assert_corio(recv_pieces(&pr.server, comp.data, comp.len, &back), 0);
            assert_same(&back, msg, 64 * 1024);
            free(msg);
        }
        inflateEnd(&zs);
        inflateEnd(&zc);
        corio__ws_buf_release(&comp);
        corio__ws_buf_release(&back);
        pair_release(&pr);
    }
}

/* Our own window 8: nothing is compressed (zlib cannot deflate raw with
 * 256 bytes); the peer's window 8: inflated with 9, so that what an old
 * zlib sends (it used 512 bytes when asked for 256) is taken. */
static void test_window_bits_8(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(8, 15, false, false);
    corio__ws_pmd server, client;
    assert_corio(corio__ws_pmd_init(&server, &p, true), 0);
    assert_corio(corio__ws_pmd_init(&client, &p, false), 0);
    assert_false(corio__ws_deflate_wanted(&server, 1000));
    assert_false(corio__ws_deflate_wanted(&server, SIZE_MAX));
    assert_corio(corio__ws_deflate_feed(&server, "x", 1, true), CORIO_ENOTSUP);
    assert_true(corio__ws_deflate_wanted(&client, 1000));

    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, -9, 8, Z_DEFAULT_STRATEGY), Z_OK);
    corio__ws_buf comp = {0}, back = {0};
    uint8_t *msg = far_repeats(8192);
    for (size_t i = 300; i < 8192; i += 700)
        memcpy(msg + i, msg + i - 300, 100); /* matches 300 bytes back */
    zlib_send(&z, msg, 8192, &comp);
    assert_corio(recv_whole(&client, comp.data, comp.len, &back), 0);
    assert_same(&back, msg, 8192);
    deflateEnd(&z);
    free(msg);
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
    corio__ws_pmd_release(&server);
    corio__ws_pmd_release(&client);
}

/* ---- zlib and Python as peers --------------------------------------------------------------- */

/* zlib used directly the way Python's zlib.compressobj(wbits=-15) and
 * decompressobj(wbits=-15) are, several messages on one context: it
 * reads ours, we read its. */
static void test_zlib_direct_as_peer(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    corio__ws_pmd d;
    assert_corio(corio__ws_pmd_init(&d, &p, true), 0);
    z_stream zd = {0}, zi = {0};
    assert_int_equal(deflateInit2(&zd, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    assert_int_equal(inflateInit2(&zi, -15), Z_OK);
    corio__ws_buf comp = {0}, back = {0};
    for (int m = 0; m < 12; m++) {
        size_t n = sizes[m % 5];
        uint8_t *msg = message(n, m % 3);
        send_whole(&d, msg, n, &comp);
        assert_int_equal(zlib_recv(&zi, comp.data, comp.len, &back), Z_OK);
        assert_same(&back, msg, n);
        zlib_send(&zd, msg, n, &comp);
        assert_corio(recv_whole(&d, comp.data, comp.len, &back), 0);
        assert_same(&back, msg, n);
        free(msg);
    }
    deflateEnd(&zd);
    inflateEnd(&zi);
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
    corio__ws_pmd_release(&d);
}

/* Two messages from Python 3 (zlib 1.2.13), context takeover:
 *   c = zlib.compressobj(wbits=-15)
 *   (c.compress(m) + c.flush(zlib.Z_SYNC_FLUSH))[:-4] for each m */
static void test_python_bytes_decode(void **state) {
    (void)state;
    static const uint8_t m1[] = {
        0xaa, 0x56, 0x2a, 0xa9, 0x2c, 0x48, 0x55, 0xb2, 0x52, 0x4a, 0xce, 0x48, 0x2c, 0x51, 0xd2,
        0x51, 0x2a, 0x49, 0xad, 0x28, 0x01, 0xf2, 0x32, 0x52, 0x73, 0x72, 0xf2, 0x75, 0x14, 0xca,
        0xf3, 0x8b, 0x72, 0x52, 0x80, 0xa2, 0xc5, 0xa9, 0x85, 0x4a, 0x56, 0x86, 0xb5, 0x00, 0x00};
    static const uint8_t m2[] = {0xaa, 0x26, 0x5e, 0xb1, 0x51, 0x2d, 0x00};
    static const char *text[] = {"{\"type\":\"chat\",\"text\":\"hello, world\",\"seq\":1}",
                                 "{\"type\":\"chat\",\"text\":\"hello, world\",\"seq\":2}"};
    corio__ws_pmd_params p = params(15, 15, false, false);
    corio__ws_pmd d;
    assert_corio(corio__ws_pmd_init(&d, &p, false), 0);
    corio__ws_buf back = {0};
    assert_corio(recv_whole(&d, m1, sizeof m1, &back), 0);
    assert_same(&back, (const uint8_t *)text[0], strlen(text[0]));
    assert_corio(recv_pieces(&d, m2, sizeof m2, &back), 0);
    assert_same(&back, (const uint8_t *)text[1], strlen(text[1]));
    corio__ws_buf_release(&back);
    corio__ws_pmd_release(&d);
}

/* ---- memory --------------------------------------------------------------------------------- */

/* Sends and receives one message of each kind on d's pair; returns the
 * bytes the sender and the receiver hold afterwards. */
static void one_exchange(pair *pr, size_t *tx_bytes, size_t *rx_bytes) {
    uint8_t *msg = message(20000, true);
    corio__ws_buf comp = {0}, back = {0};
    send_whole(&pr->server, msg, 20000, &comp);
    assert_corio(recv_whole(&pr->client, comp.data, comp.len, &back), 0);
    assert_same(&back, msg, 20000);
    *tx_bytes = corio__ws_pmd_bytes(&pr->server);
    *rx_bytes = corio__ws_pmd_bytes(&pr->client);
    free(msg);
    corio__ws_buf_release(&comp);
    corio__ws_buf_release(&back);
}

/* With takeover: nothing before the first message; after it the sender
 * holds zlib's deflate state, (1 << (w + 2)) + (1 << (m + 9)) and a few
 * KiB, the receiver 1 << w and about 7 KiB.  Prints what it measured. */
static void test_memory_lazy_and_as_documented(void **state) {
    (void)state;
    static const int cfg[][2] = {{15, 8}, {15, 9}, {13, 7}, {12, 5}, {10, 4}, {9, 1}};
    corio__ws_pmd_cache_clear();
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg; i++) {
        int w = cfg[i][0], m = cfg[i][1];
        corio__ws_pmd_params p = params(w, w, false, false);
        p.mem_level = m;
        pair pr;
        pair_init(&pr, &p);
        assert_int_equal(corio__ws_pmd_bytes(&pr.server), 0);
        size_t tx, rx;
        one_exchange(&pr, &tx, &rx);
        size_t dformula = ((size_t)1 << (w + 2)) + ((size_t)1 << (m + 9));
        size_t iformula = (size_t)1 << w;
        print_message("window %2d memLevel %d: deflate %7zu bytes (formula %7zu), "
                      "inflate %6zu bytes (window %5zu)\n",
                      w, m, tx, dformula, rx, iformula);
        assert_true(tx >= dformula && tx <= dformula + 8 * 1024);
        assert_true(rx >= iformula && rx <= iformula + 8 * 1024);
        pair_release(&pr);
    }
    corio__ws_pmd_cache_clear();
    assert_int_equal(corio__ws_pmd_thread_bytes(NULL), 0);
}

/* Without takeover an idle connection holds nothing; connections take
 * turns with one state per direction from the thread's cache; a message
 * streamed in pieces keeps its state, and another connection's message
 * meanwhile gets one of its own. */
static void test_memory_no_takeover_shared_per_thread(void **state) {
    (void)state;
    corio__ws_pmd_cache_clear();
    corio__ws_pmd_params p = params(15, 15, true, true);
    enum { CONNS = 50 };
    static pair prs[CONNS];
    size_t tx, rx, one_pair = 0;
    for (int i = 0; i < CONNS; i++) {
        pair_init(&prs[i], &p);
        one_exchange(&prs[i], &tx, &rx);
        assert_int_equal(tx, 0);
        assert_int_equal(rx, 0);
        if (i == 0)
            one_pair = corio__ws_pmd_thread_bytes(NULL);
        assert_int_equal(corio__ws_pmd_thread_bytes(NULL), one_pair); /* the same two states */
    }
    print_message("no context takeover, 15/8: %d connections hold 0 bytes each; the thread's "
                  "cache %zu bytes\n",
                  CONNS, one_pair);

    uint8_t out[64];
    size_t got;
    bool fin;
    assert_corio(corio__ws_deflate_feed(&prs[0].server, "abc", 3, false), 0);
    assert_corio(corio__ws_deflate_read(&prs[0].server, out, sizeof out, &got, &fin), 0);
    assert_true(corio__ws_pmd_bytes(&prs[0].server) > 0);
    one_exchange(&prs[1], &tx, &rx);
    assert_true(corio__ws_pmd_thread_bytes(NULL) > one_pair); /* a second deflate state */
    assert_corio(corio__ws_deflate_feed(&prs[0].server, "def", 3, true), 0);
    assert_corio(corio__ws_deflate_read(&prs[0].server, out, sizeof out, &got, &fin), 0);
    assert_true(fin);
    assert_int_equal(corio__ws_pmd_bytes(&prs[0].server), 0);
    for (int i = 0; i < CONNS; i++)
        pair_release(&prs[i]);
    corio__ws_pmd_cache_clear();
    assert_int_equal(corio__ws_pmd_thread_bytes(NULL), 0);
}

/* A connection that fails in the middle of a message gives its states back
 * to the thread's cache with zlib's input half taken, and the input (the
 * stream's read buffer, the message being sent) is then freed.  The next
 * connection gets those states: they must start clean, not go on reading
 * the freed input (under ASan: a use after free; else corrupt data). */
static void test_states_given_back_mid_message_start_clean(void **state) {
    (void)state;
    corio__ws_pmd_cache_clear();
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair a;
    pair_init(&a, &p);
    uint8_t *msg = message(256u << 10, true);
    corio__ws_buf wire = {0};
    send_whole(&a.server, msg, 256u << 10, &wire);
    uint8_t *in = malloc(wire.len); /* a read buffer, freed below */
    assert_non_null(in);
    memcpy(in, wire.data, wire.len);
    uint8_t out[64];
    size_t got;
    bool fin;
    assert_corio(corio__ws_inflate_feed(&a.client, in, wire.len, true), 0);
    assert_corio(corio__ws_inflate_read(&a.client, out, sizeof out, &got, &fin), 0);
    assert_true(got > 0 && !fin); /* most of the input not taken yet */
    uint8_t *tx = malloc(256u << 10); /* a message being sent, freed below */
    assert_non_null(tx);
    memcpy(tx, msg, 256u << 10);
    assert_corio(corio__ws_deflate_feed(&a.server, tx, 256u << 10, true), 0);
    assert_corio(corio__ws_deflate_read(&a.server, out, sizeof out, &got, &fin), 0);
    assert_false(fin);
    pair_release(&a); /* the connection failed: both states to the cache */
    free(in);
    free(tx);

    pair b; /* the cache's states, both ways */
    pair_init(&b, &p);
    corio__ws_buf back = {0};
    for (int k = 0; k < 2; k++) {
        corio__ws_pmd *from = k ? &b.client : &b.server, *to = k ? &b.server : &b.client;
        send_whole(from, msg, 4096, &wire);
        assert_corio(recv_whole(to, wire.data, wire.len, &back), 0);
        assert_same(&back, msg, 4096);
    }
    pair_release(&b);
    corio__ws_pmd_cache_clear();
    free(msg);
    corio__ws_buf_release(&wire);
    corio__ws_buf_release(&back);
}

/* ---- out of memory -------------------------------------------------------------------------- */

/* Fails each allocation in turn, in turn of: the first message sent (its
 * zlib state, the output buffer's growth) and the first received; every
 * failure is CORIO_ENOMEM, never an abort, and leaves nothing allocated
 * once the connection is released.  A connection whose feed failed sends
 * and receives normally afterwards. */
static void test_out_of_memory_every_allocation(void **state) {
    (void)state;
    uint8_t *msg = message(100000, true);
    corio__ws_buf comp = {0};
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair ref;
    pair_init(&ref, &p);
    send_whole(&ref.server, msg, 100000, &comp);
    pair_release(&ref);
    corio__ws_pmd_cache_clear();

    int failures = 0;
    for (long at = 0;; at++) {
        corio__ws_buf out = {0}, back = {0};
        pair pr;
        pair_init(&pr, &p);
        alloc_count = 0;
        fail_at = at;
        int tx = corio__ws_deflate_buf(&pr.server, msg, 100000, true, &out);
        int rx = corio__ws_inflate_buf(&pr.client, comp.data, comp.len, true, &back);
        fail_at = -1;
        assert_true(tx == 0 || tx == CORIO_ENOMEM);
        assert_true(rx == 0 || rx == CORIO_ENOMEM);
        failures += tx != 0 || rx != 0;
        if (rx == 0)
            assert_same(&back, msg, 100000);
        if (tx == CORIO_ENOMEM && out.len == 0 && corio__ws_pmd_bytes(&pr.server) == 0) {
            send_whole(&pr.server, msg, 100000, &out); /* nothing was open: all is well */
            assert_corio(recv_whole(&pr.client, out.data, out.len, &back), 0);
            assert_same(&back, msg, 100000);
        }
        if (rx == CORIO_ENOMEM) { /* at the feed, nothing open: all is well; later, sticky */
            int again = recv_whole(&pr.client, comp.data, comp.len, &back);
            assert_true(again == 0 || again == CORIO_ENOMEM);
            if (again == 0)
                assert_same(&back, msg, 100000);
        }
        corio__ws_buf_release(&out);
        corio__ws_buf_release(&back);
        pair_release(&pr);
        corio__ws_pmd_cache_clear();
        assert_int_equal(corio__ws_pmd_thread_bytes(NULL), 0);
        if (alloc_count <= at)
            break; /* no allocation left to fail */
    }
    assert_true(failures >= 5);
    free(msg);
    corio__ws_buf_release(&comp);
}

/* ---- parameters and misuse ------------------------------------------------------------------ */

static void test_params_checked_and_small_messages_uncompressed(void **state) {
    (void)state;
    corio__ws_pmd_params p;
    corio__ws_pmd d;
    corio__ws_pmd_params_init(&p);
    assert_int_equal(p.server_max_window_bits, 15);
    assert_corio(corio__ws_pmd_init(&d, &p, true), 0);
    assert_false(corio__ws_deflate_wanted(&d, p.min_compress - 1));
    assert_true(corio__ws_deflate_wanted(&d, p.min_compress));
    assert_true(corio__ws_deflate_wanted(&d, SIZE_MAX));
    corio__ws_pmd_release(&d);
    static const struct {
        int sbits, cbits, level, mem;
    } bad[] = {{7, 15, -1, 8},  {15, 16, -1, 8}, {15, 15, 10, 8},
               {15, 15, -2, 8}, {15, 15, -1, 0}, {15, 15, -1, 10}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        corio__ws_pmd_params_init(&p);
        p.server_max_window_bits = (uint8_t)bad[i].sbits;
        p.client_max_window_bits = (uint8_t)bad[i].cbits;
        p.level = bad[i].level;
        p.mem_level = bad[i].mem;
        assert_corio(corio__ws_pmd_init(&d, &p, i % 2), CORIO_EINVAL);
    }
    corio__ws_pmd_params_init(&p);
    p.max_message = SIZE_MAX;
    assert_corio(corio__ws_pmd_init(&d, &p, true), CORIO_EINVAL);
}

/* Feeding before the last bytes fed are read, or after a message's end
 * was fed, is refused; so is a read buffer below the minimum. */
static void test_misuse_refused(void **state) {
    (void)state;
    corio__ws_pmd_params p = params(15, 15, false, false);
    pair pr;
    pair_init(&pr, &p);
    uint8_t out[64];
    size_t got = 99;
    bool fin = true;
    assert_corio(corio__ws_deflate_read(&pr.server, out, sizeof out, &got, &fin), 0);
    assert_true(got == 0 && !fin); /* nothing open */
    assert_corio(corio__ws_deflate_feed(&pr.server, "abc", 3, false), 0);
    assert_corio(corio__ws_deflate_feed(&pr.server, "abc", 3, false), CORIO_EINVAL);
    assert_corio(
        corio__ws_deflate_read(&pr.server, out, CORIO__WS_DEFLATE_READ_MIN - 1, &got, &fin),
        CORIO_EINVAL);
    assert_corio(corio__ws_deflate_read(&pr.server, out, sizeof out, &got, &fin), 0);
    assert_corio(corio__ws_deflate_feed(&pr.server, "", 0, true), 0);
    assert_corio(corio__ws_deflate_feed(&pr.server, "", 0, true), CORIO_EINVAL);

    assert_corio(corio__ws_inflate_feed(&pr.client, hello_1, 3, false), 0);
    assert_corio(corio__ws_inflate_feed(&pr.client, hello_1 + 3, 4, true), CORIO_EINVAL);
    assert_corio(corio__ws_inflate_read(&pr.client, out, sizeof out, &got, &fin), 0);
    assert_corio(corio__ws_inflate_feed(&pr.client, hello_1 + 3, 4, true), 0);
    assert_corio(corio__ws_inflate_feed(&pr.client, "", 0, true), CORIO_EINVAL);
    pair_release(&pr); /* both messages abandoned half-way */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_whole_and_in_pieces),
        cmocka_unit_test(test_round_trip_random_splits),
        cmocka_unit_test(test_takeover_second_message_much_smaller),
        cmocka_unit_test(test_no_takeover_messages_independent),
        cmocka_unit_test(test_rfc7692_hello_and_shared_window),
        cmocka_unit_test(test_rfc7692_other_forms),
        cmocka_unit_test(test_bytewise_feeds_and_reads),
        cmocka_unit_test(test_empty_message_is_one_zero_byte),
        cmocka_unit_test(test_zip_bomb_buffered_stops_at_cap),
        cmocka_unit_test(test_zip_bomb_streamed_stops_early),
        cmocka_unit_test(test_cap_exact_passes_one_more_refused),
        cmocka_unit_test(test_corrupt_input_is_ebadmsg),
        cmocka_unit_test(test_window_bits_9_to_15_both_ways),
        cmocka_unit_test(test_window_bits_8),
        cmocka_unit_test(test_zlib_direct_as_peer),
        cmocka_unit_test(test_python_bytes_decode),
        cmocka_unit_test(test_memory_lazy_and_as_documented),
        cmocka_unit_test(test_memory_no_takeover_shared_per_thread),
        cmocka_unit_test(test_states_given_back_mid_message_start_clean),
        cmocka_unit_test(test_out_of_memory_every_allocation),
        cmocka_unit_test(test_params_checked_and_small_messages_uncompressed),
        cmocka_unit_test(test_misuse_refused),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    corio__ws_buf b = bomb();
    free(b.data);
    corio__ws_pmd_cache_clear();
    return rc;
}

#else /* built without zlib */

int main(void) {
    fprintf(stderr, "test_ws_deflate: skipped: corio was built without zlib (Debian zlib1g-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
