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
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include "corio/http_file.h"
#include "corio/task.h"
#include "corio/tls.h"
#include "http/file_internal.h"
#include "http/http_internal.h"
#include "net/stream_internal.h"

#define SMALL_BODY (16 * 1024)            /* read into the arena, batched with the head */
#define CHUNK (64 * 1024)                 /* pread + stream write unit */
#define YIELD_EVERY (4 * 1024 * 1024)     /* sendfile bytes between two turns for others */
#define SENDFILE_MAX ((size_t)0x7ffff000) /* the most one sendfile() moves on Linux */

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

/* Reads len bytes at off.  Returns 0, -errno, or CORIO_EOF if the file ends
 * first (it shrank since fstat). */
static int read_at(int fd, char *buf, size_t len, uint64_t off) {
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return CORIO_EOF;
        got += (size_t)n;
    }
    return 0;
}

/* A body in flight: the file's bytes [off, off + left) still to send. */
typedef struct body_out {
    corio_stream *s;
    int fd;
    uint64_t off, left;
    uint64_t *sent; /* the response's body byte count (access log) */
} body_out;

static void advance(body_out *b, uint64_t n) {
    b->off += n;
    b->left -= n;
    *b->sent += n;
}

/* Await: reads one chunk and writes it through the stream, which waits for
 * the socket (and the send timeout) as every write does. */
static int copy_chunk(body_out *b, char *buf) {
    size_t n = b->left < CHUNK ? (size_t)b->left : CHUNK;
    int rc = read_at(b->fd, buf, n, b->off);
    if (rc == 0)
        rc = corio_stream_write(b->s, buf, n);
    if (rc == 0)
        advance(b, n);
    return rc;
}

/* Await: the body by pread + stream writes (TLS streams). */
static int send_copy(body_out *b) {
    char *buf = malloc(CHUNK);
    if (!buf)
        return CORIO_ENOMEM;
    int rc = 0;
    while (rc == 0 && b->left)
        rc = copy_chunk(b, buf);
    free(buf);
    return rc;
}

/* Await: the body by sendfile() on the socket (plain streams), once every
 * byte queued on the stream has left: the kernel must not see the file
 * overtake the head.  When the socket is full, one chunk goes through the
 * stream instead, and sendfile resumes once the queue is empty again. */
static int send_file(body_out *b) {
    corio_stream *s = b->s;
    uv_os_fd_t sock;
    if (uv_fileno(&s->h.handle, &sock) != 0)
        return send_copy(b);
    char *buf = NULL;
    uint64_t since_await = 0;
    int rc = corio_stream_drain(s);
    while (rc == 0 && b->left) {
        if (since_await >= YIELD_EVERY) { /* a fast reader: let other tasks run */
            since_await = 0;
            rc = corio_yield();
            continue;
        }
        if (s->werr || s->closing) { /* closing: the descriptor may be gone */
            rc = s->werr ? s->werr : CORIO_ECLOSED;
            break;
        }
        off_t o = (off_t)b->off;
        size_t want = b->left < SENDFILE_MAX ? (size_t)b->left : SENDFILE_MAX;
        ssize_t n = sendfile(sock, b->fd, &o, want);
        if (n > 0) {
            advance(b, (uint64_t)n);
            since_await += (uint64_t)n;
            continue;
        }
        if (n == 0) {
            rc = CORIO_EOF; /* the file shrank */
            break;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN) {
            rc = -errno;
            break;
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
        int rc = len ? read_at(fd, buf, (size_t)len, off) : 0;
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
    body_out b = {.s = c->s, .fd = fd, .off = off, .left = len, .sent = &res->body_bytes};
    if (rc == 0)
        rc = corio_stream_is_tls(c->s) ? send_copy(&b) : send_file(&b);
    if (rc < 0)
        corio__hconn_send_failed(c, rc); /* the body is cut short */
    return rc;
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
