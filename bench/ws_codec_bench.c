/* SPDX-License-Identifier: MIT */
/* ws_codec_bench — corio's WebSocket frame codec (framework/ws/frame.c)
 * against wslay's frame layer (Debian's libwslay-dev), on the server's side
 * of a connection: reading masked client frames from memory and unmasking
 * their payloads.  The evidence for writing the framing ourselves.
 *
 * Two streams, built once: 1,000,000 frames of 32 bytes and 1,000 frames of
 * 64 KiB, each frame masked with its own key.  Each codec reads the whole
 * stream, best of 5 runs:
 *   corio in place  corio__ws_header_parse on the bytes, then
 *                   corio__ws_mask on the payload where it lies (what the
 *                   connection layer does with its read buffer);
 *   corio copy      the same with corio__ws_mask_copy into a second buffer
 *                   (the copy wslay's design makes, for a like-for-like
 *                   comparison);
 *   wslay           wslay_frame_recv with a recv callback copying from the
 *                   stream (it reads into its own 4 KiB buffer, unmasks
 *                   there, and hands out the payload in pieces).
 * Before timing, one pass of each checksums every unmasked payload byte,
 * and the three must agree.  wslay's frame layer leaves the mask bit's
 * role check and size limits to its caller, which corio's parser does, so
 * the comparison favours wslay, if anything.
 *
 * Build (not part of the CMake tree unless libwslay is found; see the
 * report): gcc -O2 -Iinclude -Iframework bench/ws_codec_bench.c
 *     framework/ws/frame.c framework/ws/utf8.c -lwslay -o ws_codec_bench
 */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <wslay/wslay.h>

#include "ws/frame.h"

typedef struct stream {
    uint8_t *buf;
    size_t len;
    size_t frames;
    size_t payload; /* bytes of one frame's payload */
} stream;

static uint32_t rng = 2463534242u;

static uint32_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* frames masked client frames of payload bytes each, random contents. */
static stream make_stream(size_t frames, size_t payload) {
    stream s = {.frames = frames, .payload = payload};
    s.buf = malloc(frames * (payload + CORIO__WS_HEADER_MAX));
    if (!s.buf)
        abort();
    for (size_t f = 0; f < frames; f++) {
        uint8_t key[4];
        uint32_t k = next_rand();
        memcpy(key, &k, 4);
        int hl =
            corio__ws_header_encode(s.buf + s.len, CORIO__WS_FIN, CORIO__WS_BINARY, payload, key);
        if (hl < 0)
            abort();
        s.len += (size_t)hl;
        for (size_t i = 0; i < payload; i++)
            s.buf[s.len + i] = (uint8_t)next_rand();
        corio__ws_mask(s.buf + s.len, payload, key, 0);
        s.len += payload;
    }
    return s;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- corio ------------------------------------------------------------------------------------
 */

/* Reads every frame of s; unmasks in place (out NULL: s is changed, the
 * caller restores it) or into out.  Sums
 * every payload byte when full, else the first byte of each frame (so the
 * work is not optimised away).  Returns the sum, or UINT64_MAX on error. */
static uint64_t corio_read(stream *s, uint8_t *out, int full) {
    corio__ws_rules rules = {.role = CORIO__WS_SERVER, .max_payload = 1 << 20};
    uint64_t sum = 0;
    size_t pos = 0, frames = 0;
    while (pos < s->len) {
        corio__ws_header h;
        int hl = corio__ws_header_parse(&rules, s->buf + pos, s->len - pos, &h, NULL);
        if (hl <= 0)
            return UINT64_MAX;
        pos += (size_t)hl;
        size_t n = (size_t)h.payload_len;
        uint8_t *p = out ? out : s->buf + pos;
        corio__ws_mask_copy(p, s->buf + pos, n, h.mask, 0);
        if (full)
            for (size_t i = 0; i < n; i++)
                sum += p[i];
        else
            sum += p[0];
        pos += n;
        frames++;
    }
    return frames == s->frames ? sum : UINT64_MAX;
}

/* ---- wslay ------------------------------------------------------------------------------------
 */

typedef struct source {
    const stream *s;
    size_t pos;
} source;

static ssize_t wslay_recv(uint8_t *buf, size_t len, int flags, void *user) {
    (void)flags;
    source *src = user;
    size_t n = src->s->len - src->pos;
    if (n > len)
        n = len;
    if (n == 0)
        return -1; /* wslay_frame_recv answers WSLAY_ERR_WANT_READ */
    memcpy(buf, src->s->buf + src->pos, n);
    src->pos += n;
    return (ssize_t)n;
}

static ssize_t wslay_send(const uint8_t *data, size_t len, int flags, void *user) {
    (void)data, (void)flags, (void)user;
    return (ssize_t)len;
}

static int wslay_genmask(uint8_t *buf, size_t len, void *user) {
    (void)user;
    memset(buf, 0, len);
    return 0;
}

/* As corio_read, through wslay's frame layer. */
static uint64_t wslay_read(const stream *s, int full) {
    struct wslay_frame_callbacks cb = {wslay_send, wslay_recv, wslay_genmask};
    source src = {s, 0};
    wslay_frame_context_ptr ctx;
    if (wslay_frame_context_init(&ctx, &cb, &src) != 0)
        return UINT64_MAX;
    uint64_t sum = 0;
    size_t frames = 0, got = 0;
    while (frames < s->frames) {
        struct wslay_frame_iocb iocb;
        memset(&iocb, 0, sizeof iocb);
        ssize_t r = wslay_frame_recv(ctx, &iocb);
        if (r < 0 || !iocb.mask)
            break;
        if (full)
            for (size_t i = 0; i < iocb.data_length; i++)
                sum += iocb.data[i];
        else if (got == 0 && iocb.data_length)
            sum += iocb.data[0];
        got += iocb.data_length;
        if (got == iocb.payload_length) {
            frames++;
            got = 0;
        }
    }
    wslay_frame_context_free(ctx);
    return frames == s->frames ? sum : UINT64_MAX;
}

/* ---- the runs -----------------------------------------------------------------------------------
 */

enum { CORIO_IN_PLACE, CORIO_COPY, WSLAY, NCODECS };
static const char *names[NCODECS] = {"corio in place", "corio copy", "wslay"};

/* One pass of codec `which` over s.  In place, s is first restored from
 * pristine (outside the timing: the caller's clock starts after). */
static uint64_t pass(int which, stream *s, uint8_t *scratch, int full) {
    if (which == CORIO_IN_PLACE)
        return corio_read(s, NULL, full);
    if (which == CORIO_COPY)
        return corio_read(s, scratch, full);
    return wslay_read(s, full);
}

static void bench(const char *title, size_t frames, size_t payload) {
    stream s = make_stream(frames, payload);
    uint8_t *pristine = malloc(s.len), *scratch = malloc(payload);
    if (!pristine || !scratch)
        abort();
    memcpy(pristine, s.buf, s.len);
    uint64_t sums[NCODECS];
    for (int w = 0; w < NCODECS; w++) {
        memcpy(s.buf, pristine, s.len);
        sums[w] = pass(w, &s, scratch, 1);
    }
    if (sums[0] == UINT64_MAX || sums[0] != sums[1] || sums[0] != sums[2]) {
        fprintf(stderr, "%s: checksums differ: %llu %llu %llu\n", title,
                (unsigned long long)sums[0], (unsigned long long)sums[1],
                (unsigned long long)sums[2]);
        exit(1);
    }
    printf("%s: %zu frames of %zu bytes, %.1f MB on the wire (checksums agree)\n", title, frames,
           payload, (double)s.len / 1e6);
    for (int w = 0; w < NCODECS; w++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            memcpy(s.buf, pristine, s.len);
            double t0 = now();
            uint64_t r = pass(w, &s, scratch, 0);
            double t = now() - t0;
            if (r == UINT64_MAX)
                exit(1);
            if (t < best)
                best = t;
        }
        printf("  %-15s %8.1f ns/frame %9.0f MB/s of payload\n", names[w],
               best * 1e9 / (double)frames, (double)(frames * payload) / best / 1e6);
    }
    free(scratch);
    free(pristine);
    free(s.buf);
}

int main(void) {
    bench("small", 1000000, 32);
    bench("large", 1000, 64 * 1024);
    return 0;
}
