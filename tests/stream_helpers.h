/* SPDX-License-Identifier: MIT */
/* Helpers shared by the stream tests (test_stream.c, test_tls*.c): an echo
 * loop for servers and a bulk echo round trip through a writer task.
 * Header-only and static: every tests/test_*.c is a program of its own.
 */
#ifndef CORIO_STREAM_HELPERS_H
#define CORIO_STREAM_HELPERS_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <corio/corio.h>

/* Echoes what s reads until the peer's EOF, then half-closes (flush, then
 * FIN).  Returns that shutdown's result, or the first read or write error. */
static inline int echo_until_eof(corio_stream *s) {
    char buf[8192];
    for (;;) {
        int n = corio_stream_read(s, buf, sizeof buf);
        if (n == CORIO_EOF)
            return corio_stream_shutdown(s);
        if (n < 0)
            return n;
        int rc = corio_stream_write(s, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

/* ---- the bulk writer ------------------------------------------------------------------- */

typedef struct bulk {
    corio_stream *s;
    const unsigned char *data;
    size_t len;
    unsigned seed;    /* of the piece sizes */
    size_t max_piece; /* pieces of 1..max_piece bytes */
    bool writev;      /* every second piece of 3 bytes or more as a three-buffer writev */
} bulk;

/* A corio_task_fn: writes b->data in random pieces, then half-closes.
 * Returns 0 or the first write (or shutdown) error. */
static inline int bulk_writer(void *arg) {
    bulk *b = arg;
    size_t off = 0;
    for (int i = 0; off < b->len; i++) {
        size_t n = 1 + (size_t)(rand_r(&b->seed) % b->max_piece);
        if (n > b->len - off)
            n = b->len - off;
        int rc;
        if (!b->writev || i % 2 == 0 || n < 3) {
            rc = corio_stream_write(b->s, b->data + off, n);
        } else {
            struct iovec iov[3] = {{(void *)(b->data + off), 1},
                                   {(void *)(b->data + off + 1), n / 2},
                                   {(void *)(b->data + off + 1 + n / 2), n - 1 - n / 2}};
            rc = corio_stream_writev(b->s, iov, 3);
        }
        if (rc < 0)
            return rc;
        off += n;
    }
    return corio_stream_shutdown(b->s);
}

/* A bulk echo round trip over c, whose peer echoes and half-closes after
 * EOF: `len` random bytes (from `seed`) go out through a bulk_writer task
 * (writer_seed, max_piece, writev as in struct bulk) while this task reads
 * them back in random pieces of 1..max_read bytes (sizes from `seed`, after
 * the data); then EOF must follow. */
typedef struct bulk_echo_opts {
    size_t len;
    unsigned seed;
    size_t max_read;
    unsigned writer_seed;
    size_t max_piece;
    bool writev;
} bulk_echo_opts;

/* Returns 0 when every byte came back in order followed by EOF and the
 * writer succeeded; otherwise the first error (CORIO_EFAILED: a short read,
 * bytes after the echo, or different bytes).  The writer is cancelled and
 * joined on failure. */
static inline int bulk_echo(corio_stream *c, const bulk_echo_opts *o) {
    unsigned char *data = malloc(o->len), *back = malloc(o->len);
    corio_task *w = NULL;
    int rc = data && back ? 0 : CORIO_ENOMEM;
    unsigned seed = o->seed;
    for (size_t i = 0; rc == 0 && i < o->len; i++)
        data[i] = (unsigned char)rand_r(&seed);
    bulk b = {.s = c,
              .data = data,
              .len = o->len,
              .seed = o->writer_seed,
              .max_piece = o->max_piece,
              .writev = o->writev};
    if (rc == 0)
        rc = corio_spawn(&w, "writer", bulk_writer, &b);
    size_t got = 0;
    while (rc == 0 && got < o->len) {
        size_t want = 1 + (size_t)(rand_r(&seed) % o->max_read);
        int n = corio_stream_read(c, back + got, want < o->len - got ? want : o->len - got);
        if (n <= 0)
            rc = n < 0 ? n : CORIO_EFAILED;
        else
            got += (size_t)n;
    }
    char extra;
    if (rc == 0)
        rc = corio_stream_read(c, &extra, 1) == CORIO_EOF ? 0 : CORIO_EFAILED;
    if (rc == 0)
        rc = corio_await(w);
    if (rc == 0 && memcmp(data, back, o->len) != 0)
        rc = CORIO_EFAILED;
    if (w) {
        if (rc != 0) {
            corio_cancel(w);
            corio_await(w);
        }
        corio_task_release(w);
    }
    free(data);
    free(back);
    return rc;
}

#endif
