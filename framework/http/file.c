/* SPDX-License-Identifier: MIT */
/* File responses (see corio/http_file.h).
 *
 * The parts: media types, answering and sending here; checking paths and
 * opening on the thread pool in file_open.c; validators, preconditions and
 * ranges in file_cond.c (file_internal.h joins them).
 *
 * Answering.  Validators (weak ETag, Last-Modified) decide 304; a single
 * byte range decides 206 or 416.  The head is serialized by the code of
 * corio_res_send (corio__res_send_head: Content-Length, no body): every
 * response of the server keeps one format.  A small body goes
 * into the arena and leaves with the head in the batch's write; a large one
 * follows the flushed head with sendfile() on plain sockets, falling back to
 * one chunk through the stream's queue whenever the socket is full (the
 * stream's write path is what knows how to wait for a socket), and with
 * pread() + stream writes on TLS.
 *
 * The disk.  A read of pages the page cache does not hold would stall the
 * loop, and every connection of the worker with it (net/fileread.c says
 * why and how it is avoided).  So the loop sendfile()s only what is cached,
 * asking with preadv2(RWF_NOWAIT) (a byte every 256 KiB of the next MiB,
 * corio__fread_is_cached) and copies through the stream otherwise: a chunk
 * read on the loop while it is cached (the read itself is the probe), else
 * read on libuv's thread pool into a buffer the pool job owns and written
 * to the socket from the loop (nginx's "aio threads").
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "corio/http_file.h"
#include "corio/task.h"
#include "http/file_internal.h"
#include "http/http_internal.h"
#include "net/fileread.h"
#include "net/proto.h"

#define SMALL_BODY (16 * 1024)        /* read into the arena, batched with the head */
#define CHUNK (64 * 1024)             /* pread + stream write unit, on the loop */
#define POOL_CHUNK (256 * 1024)       /* the same, read on the thread pool */
#define WINDOW (1024 * 1024)          /* the most one sendfile() moves */
#define YIELD_EVERY (4 * 1024 * 1024) /* sendfile bytes between two turns for others */

/* ---- media types ---------------------------------------------------------------------- */

static const struct {
    const char *ext, *type;
} mime_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"tar", "application/x-tar"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
};

const char *corio_http_mime_type(corio_strv name) {
    size_t i = name.len;
    while (i > 0 && name.ptr[i - 1] != '.' && name.ptr[i - 1] != '/')
        i--;
    if (i == 0 || name.ptr[i - 1] != '.')
        return "application/octet-stream";
    size_t n = name.len - i;
    for (size_t k = 0; k < sizeof mime_types / sizeof mime_types[0]; k++)
        if (strlen(mime_types[k].ext) == n && strncasecmp(mime_types[k].ext, name.ptr + i, n) == 0)
            return mime_types[k].type;
    return "application/octet-stream";
}

/* ---- sending -------------------------------------------------------------------------- */

/* A body in flight: the file's bytes [off, off + left) still to send. */
typedef struct body_out {
    corio_stream *s;
    corio__fread in; /* the file */
    uint64_t off, left;
    uint64_t cached_to; /* [off, cached_to) was probed cached: not asked again */
    uint64_t *sent;     /* the response's body byte count (access log) */
} body_out;

static void advance(body_out *b, uint64_t n) {
    b->off += n;
    b->left -= n;
    *b->sent += n;
}

/* Await: sends the next bytes through the stream, which waits for the socket
 * (and the send timeout) as every write does: up to CHUNK bytes read into
 * buf on the loop while they are cached, else up to POOL_CHUNK read on the
 * thread pool. */
static int copy_chunk(body_out *b, char *buf) {
    size_t n = b->left < CHUNK ? (size_t)b->left : CHUNK;
    ssize_t got = corio__fread_nowait(&b->in, buf, n, b->off);
    if (got < 0)
        return (int)got;
    if (got > 0) {
        int rc = corio_stream_write(b->s, buf, (size_t)got);
        if (rc == 0)
            advance(b, (uint64_t)got);
        return rc;
    }
    n = b->left < POOL_CHUNK ? (size_t)b->left : POOL_CHUNK;
    corio__fread_buf *r;
    int rc = corio__fread_pool(&b->in, n, b->off, &r);
    if (rc)
        return rc;
    rc = corio_stream_write(b->s, r->data, n);
    corio__fread_buf_free(r);
    if (rc == 0)
        advance(b, n);
    return rc;
}

/* Await: the body by pread + stream writes (TLS streams).  A write that the
 * socket takes at once does not wait, so a fast reader of a cached file
 * would keep the loop to itself: other tasks get a turn every YIELD_EVERY
 * bytes, as in send_file. */
static int send_copy(body_out *b) {
    char *buf = malloc(CHUNK);
    if (!buf)
        return CORIO_ENOMEM;
    int rc = 0;
    uint64_t mark = b->left;
    while (rc == 0 && b->left) {
        if (mark - b->left >= YIELD_EVERY) {
            mark = b->left;
            rc = corio_yield();
            continue;
        }
        rc = copy_chunk(b, buf);
    }
    free(buf);
    return rc;
}

/* Await: the body by sendfile() on the socket (plain streams), once every
 * byte queued on the stream has left: the kernel must not see the file
 * overtake the head.  sendfile runs on the loop only for bytes the page
 * cache holds (it would block the loop on the disk otherwise), a WINDOW at a
 * time.  When the next bytes are not cached, or the socket is full, one chunk
 * goes through the stream instead (read on the thread pool if it must be),
 * and sendfile resumes once the queue is empty again. */
static int send_file(body_out *b) {
    corio_stream *s = b->s;
    char *buf = NULL;
    uint64_t since_await = 0;
    int rc = corio_stream_drain(s);
    while (rc == 0 && b->left) {
        if (since_await >= YIELD_EVERY) { /* a fast reader: let other tasks run */
            since_await = 0;
            rc = corio_yield();
            continue;
        }
        rc = corio__stream_write_error(s); /* closing: the descriptor may be gone */
        if (rc)
            break;
        size_t want = b->left < WINDOW ? (size_t)b->left : WINDOW;
        uint64_t from = b->cached_to > b->off ? b->cached_to : b->off;
        bool hot =
            from >= b->off + want || corio__fread_is_cached(&b->in, from, b->off + want - from);
        if (hot) {
            b->cached_to = b->off + want; /* a socket-full retry does not probe again */
            ssize_t n = corio__stream_sendfile(s, b->in.fd, b->off, want);
            if (n > 0) {
                advance(b, (uint64_t)n);
                since_await += (uint64_t)n;
                continue;
            }
            if (n == 0) {
                rc = CORIO_EOF; /* the file shrank */
                break;
            }
            if (n == -EINTR)
                continue;
            if (n != CORIO_EAGAIN) {
                rc = (int)n;
                break;
            }
        }
        if (!buf && !(buf = malloc(CHUNK))) {
            rc = CORIO_ENOMEM;
            break;
        }
        rc = copy_chunk(b, buf);
        if (rc == 0)
            rc = corio_stream_drain(s);
        since_await = 0;
    }
    free(buf);
    return rc;
}

/* Adds the headers of a 200, 206 or 304 answer. */
static int add_validators(corio_res *res, const corio__file_meta *m, const corio_file_opts *o) {
    int rc = corio_res_header(res, "ETag", m->etag);
    if (rc == 0)
        rc = corio_res_header(res, "Last-Modified", m->lastmod);
    if (rc == 0 && o->cache_control)
        rc = corio_res_header(res, "Cache-Control", o->cache_control);
    return rc;
}

/* Await: the body of a 200/206 answer, after its head is queued. */
static int send_body(corio_res *res, int fd, int status, const char *ctype, uint64_t off,
                     uint64_t len) {
    corio__hconn *c = res->c;
    if (len <= SMALL_BODY) { /* read first: a failure leaves nothing sent */
        char *buf = len ? corio__arena_alloc(&c->arena, (size_t)len) : NULL;
        if (len && !buf)
            return CORIO_ENOMEM;
        corio__fread in;
        corio__fread_init(&in, fd);
        int rc = len ? corio__fread_all(&in, buf, (size_t)len, off) : 0;
        if (rc == 0)
            rc = corio__res_send_head(res, status, ctype, len);
        if (rc == 0 && len)
            rc = corio__hconn_queue(c, buf, (size_t)len);
        if (rc == 0)
            res->body_bytes = len;
        return rc;
    }
    int rc = corio__res_send_head(res, status, ctype, len);
    if (rc == 0)
        rc = corio__hconn_flush(c); /* earlier pipelined answers, then this head */
    body_out b = {.s = c->s, .off = off, .left = len, .sent = &res->body_bytes};
    corio__fread_init(&b.in, fd);
    if (rc == 0)
        rc = corio__stream_can_sendfile(c->s) ? send_file(&b) : send_copy(&b);
    if (rc < 0)
        corio__hconn_send_failed(c, rc); /* the body is cut short */
    return rc;
}

/* Await: a whole 200 body through the public response calls, so that the
 * compression middleware (compress.c) sees it as any handler's: read
 * into the arena and corio_res_send when small, else
 * corio_res_start_length and writes a chunk at a time (which the
 * middleware turns into a compressed chunked stream, or leaves as it is:
 * a type it does not compress, a client that does not accept gzip).  No
 * sendfile on this path: compressed bytes are not the file's. */
static int send_through(corio_res *res, int fd, const char *ctype, uint64_t len) {
    corio__hconn *c = res->c;
    corio__fread in;
    corio__fread_init(&in, fd);
    if (len <= SMALL_BODY) {
        char *buf = len ? corio__arena_alloc(&c->arena, (size_t)len) : NULL;
        if (len && !buf)
            return CORIO_ENOMEM;
        int rc = len ? corio__fread_all(&in, buf, (size_t)len, 0) : 0;
        return rc ? rc : corio_res_send(res, 200, ctype, buf, (size_t)len);
    }
    char *buf = malloc(CHUNK);
    if (!buf)
        return CORIO_ENOMEM;
    int rc = corio_res_start_length(res, 200, ctype, len);
    for (uint64_t off = 0; rc == 0 && off < len;) {
        size_t n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
        rc = corio__fread_all(&in, buf, n, off);
        if (rc == CORIO_EOF) /* the file shrank: the response cannot be completed */
            rc = CORIO_EINVAL;
        if (rc == 0)
            rc = corio_res_write(res, buf, n);
        off += n;
    }
    free(buf);
    return rc ? rc : corio_res_end(res);
}

/* Await: answers with the open regular file fd.  `name` picks the type. */
static int answer(corio_res *res, int fd, const struct stat *st, corio_strv name,
                  const corio_file_opts *o) {
    corio_req *req = &res->c->req;
    corio_strv method = corio_req_method(req);
    bool get = corio_strv_eq(method, "GET") || corio_strv_eq(method, "HEAD");
    corio__file_meta m;
    corio__file_meta_init(&m, st);
    if (get && corio__file_not_modified(req, &m)) {
        int rc = add_validators(res, &m, o);
        return rc ? rc : corio_res_send(res, 304, NULL, NULL, 0);
    }
    int status = 200;
    uint64_t off = 0, len = m.size;
    corio_strv range;
    if (get && corio_req_header(req, "Range", &range) && corio__file_if_range_holds(req, &m)) {
        corio__range r = corio__file_parse_range(range, m.size, &off, &len);
        char field[80];
        if (r == CORIO__RANGE_UNSATISFIABLE) {
            snprintf(field, sizeof field, "bytes */%" PRIu64, m.size);
            int rc = corio_res_header(res, "Content-Range", field);
            static const char body[] = "Range Not Satisfiable\n";
            return rc ? rc
                      : corio_res_send(res, 416, "text/plain; charset=utf-8", body,
                                       sizeof body - 1);
        }
        if (r == CORIO__RANGE_ONE) {
            status = 206;
            snprintf(field, sizeof field, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, off,
                     off + len - 1, m.size);
            int rc = corio_res_header(res, "Content-Range", field);
            if (rc)
                return rc;
        }
    }
    int rc = add_validators(res, &m, o);
    if (rc == 0)
        rc = corio_res_header(res, "Accept-Ranges", "bytes");
    if (rc)
        return rc;
    const char *ctype = o->content_type ? o->content_type : corio_http_mime_type(name);
    /* A route with compression, and a body it compresses for this client:
     * a whole body goes through the response calls (ranges never do).
     * Anything else keeps sendfile (with Vary where another client would
     * get it compressed). */
    bool through = false;
    if (status == 200 && (rc = corio__gz_file(res, ctype, len, &through)) != 0)
        return rc;
    if (through && !req->head_method)
        return send_through(res, fd, ctype, len);
    if (through) { /* HEAD: the fields a GET would get */
        int hrc = corio_res_start_length(res, 200, ctype, len);
        return hrc ? hrc : corio_res_end(res);
    }
    if (req->head_method)
        return corio__res_send_head(res, status, ctype, len);
    return send_body(res, fd, status, ctype, off, len);
}

/* Await: the common part of corio_res_file and corio_res_file_under. */
static int respond(corio_res *res, const char *root, corio_strv path, const corio_file_opts *o) {
    static const corio_file_opts defaults;
    if (!o)
        o = &defaults;
    if (res->started)
        return CORIO_EALREADY;
    corio__open_job *j;
    int rc = corio__file_open(root, path, o, &j);
    if (rc)
        return rc;
    size_t extra = res->extra_len;
    corio_strv name = j->via_index ? (corio_strv){j->index, strlen(j->index)} : path;
    rc = answer(res, j->fd, &j->st, name, o);
    if (rc && !res->started)
        res->extra_len = extra; /* nothing sent: leave no header of ours behind */
    else if (rc)
        res->c->close = true; /* a body cut short cannot be repaired */
    corio__open_job_free(j);
    return rc;
}

int corio_res_file(corio_res *res, const char *path, const corio_file_opts *opts) {
    if (!res || !path)
        return CORIO_EINVAL;
    return respond(res, NULL, (corio_strv){path, strlen(path)}, opts);
}

int corio_res_file_under(corio_res *res, const char *root, corio_strv decoded_path,
                         const corio_file_opts *opts) {
    if (!res || !root || (!decoded_path.ptr && decoded_path.len))
        return CORIO_EINVAL;
    return respond(res, root, decoded_path, opts);
}
