/* SPDX-License-Identifier: MIT */
/* Streaming uploads to disk:
 *
 *     POST /upload   ->  201 {"bytes": n, "sha256": "...", "file": "upload-XXXXXX"}
 *                        413 past the size limit
 *
 *     UPLOAD_DIR=/tmp UPLOAD_MAX=104857600 ./upload --port 8080 &
 *     curl -T big.iso http://127.0.0.1:8080/upload
 *
 * The body goes to a new file in UPLOAD_DIR (default /tmp), at most
 * UPLOAD_MAX bytes (default 100 MiB).  The ideas it shows:
 *  - A streamed request body: corio_req_read() fills 64 KiB pieces as they
 *    arrive, and the server reads from the socket only as fast as the handler
 *    consumes, so memory stays flat (two pieces) whatever the size.
 *  - Blocking work off the loop.  Each piece is hashed (SHA-256) and written
 *    with corio_run_blocking() on libuv's thread pool, not with a plain
 *    write(2) in the handler: writing a file can block (dirty-page
 *    throttling, a slow or network filesystem), and a blocked loop stalls
 *    every connection of the worker.  The price, one thread-pool round trip
 *    per 64 KiB, is hidden: while one piece is written the next one is read.
 *  - The size limit is the server's max_body, set from UPLOAD_MAX: a
 *    Content-Length over it is answered 413 before the handler runs; a
 *    chunked body that grows past it makes corio_req_read() return
 *    CORIO_ERANGE, and the handler answers 413 and removes the partial file.
 *  - Cleanup that must finish: if the client goes away mid-upload its
 *    handler is cancelled, but a piece being written still uses the buffer
 *    and the file, so the handler waits for it inside a shield scope.
 */
#include <corio/corio.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PIECE (64 * 1024)

typedef struct config {
    const char *dir;
    unsigned long long max;
} config;

typedef struct upload {
    int fd;
    EVP_MD_CTX *sha;
    unsigned long long bytes;
} upload;

/* ---- on the thread pool: plain C, no corio calls ----------------------------------------- */

typedef struct piece {
    upload *u;
    const char *buf;
    size_t len;
} piece;

static int store_piece(void *arg) {
    piece *p = arg;
    if (EVP_DigestUpdate(p->u->sha, p->buf, p->len) != 1)
        return CORIO_EFAILED;
    for (size_t off = 0; off < p->len;) {
        ssize_t n = write(p->u->fd, p->buf + off, p->len - off);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0)
            off += (size_t)n;
    }
    return 0;
}

/* ---- on the loop ------------------------------------------------------------------------- */

/* Reads body bytes until buf holds a whole piece or the body ends; *len
 * receives the count (0: the body is over). */
static int fill_piece(corio_req *req, char *buf, size_t *len) {
    *len = 0;
    while (*len < PIECE) {
        int n = corio_req_read(req, buf + *len, PIECE - *len);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    return 0;
}

/* Awaits the piece in flight, if any; keeps *busy if the await was cut short
 * (the piece is still being written). */
static int piece_done(corio_future **busy) {
    if (!*busy)
        return 0;
    int rc = corio_await(*busy);
    if (corio_future_done(*busy)) {
        corio_future_release(*busy);
        *busy = NULL;
    }
    return rc;
}

/* Moves the body to u: piece k is written on the thread pool while piece
 * k+1 is read from the socket into the other buffer. */
static int receive(corio_req *req, upload *u, char *buf[2]) {
    corio_future *busy = NULL;
    piece jobs[2];
    int rc;
    for (int cur = 0;; cur ^= 1) {
        size_t len;
        if ((rc = fill_piece(req, buf[cur], &len)) < 0)
            break;
        if ((rc = piece_done(&busy)) < 0 || len == 0)
            break;
        jobs[cur] = (piece){.u = u, .buf = buf[cur], .len = len};
        if ((rc = corio_run_blocking(&busy, store_piece, &jobs[cur])) < 0)
            break;
        u->bytes += len;
    }
    if (busy) { /* failed or cancelled with a piece in flight: it uses buf and fd */
        CORIO_WITH(corio_shield_scope()) {
            (void)corio_await(busy); /* nothing interrupts it; its result no longer matters */
        }
        corio_future_release(busy);
    }
    return rc;
}

static int reply_created(corio_res *res, upload *u, const char *path) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(u->sha, md, &mdlen) != 1)
        return CORIO_EFAILED;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    const char *name = strrchr(path, '/') + 1; /* mkstemp's name: [A-Za-z0-9-] */
    char body[256];
    int n = snprintf(body, sizeof body, "{\"bytes\":%llu,\"sha256\":\"%s\",\"file\":\"%s\"}\n",
                     u->bytes, hex, name);
    return corio_res_send(res, 201, "application/json", body, (size_t)n);
}

static int upload_file(corio_req *req, corio_res *res, void *arg) {
    const config *cfg = arg;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/upload-XXXXXX", cfg->dir) >= (int)sizeof path)
        return CORIO_ERANGE;
    char *buf[2] = {corio_req_alloc(req, PIECE), corio_req_alloc(req, PIECE)};
    upload u = {.fd = -1, .sha = EVP_MD_CTX_new()};
    if (!buf[0] || !buf[1] || !u.sha) {
        EVP_MD_CTX_free(u.sha);
        return CORIO_ENOMEM;
    }
    int rc = EVP_DigestInit_ex(u.sha, EVP_sha256(), NULL) == 1 ? 0 : CORIO_EFAILED;
    if (rc == 0 && (u.fd = mkstemp(path)) < 0)
        rc = -errno;
    if (rc == 0) {
        rc = receive(req, &u, buf);
        if (close(u.fd) != 0 && rc == 0)
            rc = -errno;
        if (rc == 0)
            rc = reply_created(res, &u, path);
        else
            unlink(path); /* no partial files */
    }
    EVP_MD_CTX_free(u.sha);
    if (rc == CORIO_ERANGE)
        return corio_res_text(res, 413, "upload too large\n");
    if (rc < 0 && rc != CORIO_ECANCELED)
        corio_log(CORIO_LOG_WARN, "upload: %s", corio_strerror(rc));
    return rc;
}

/* UPLOAD_DIR and UPLOAD_MAX, checked before serving. */
static int read_config(config *cfg) {
    cfg->dir = getenv("UPLOAD_DIR");
    if (!cfg->dir || !*cfg->dir)
        cfg->dir = "/tmp";
    if (access(cfg->dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "upload: UPLOAD_DIR %s: %s\n", cfg->dir, strerror(errno));
        return -1;
    }
    cfg->max = 100ULL * 1024 * 1024;
    const char *max = getenv("UPLOAD_MAX");
    if (max && *max) {
        char *end;
        errno = 0;
        cfg->max = strtoull(max, &end, 10);
        if (errno || *end || cfg->max == 0 || max[0] == '-' || cfg->max > SIZE_MAX) {
            fprintf(stderr, "upload: UPLOAD_MAX must be a positive number of bytes\n");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    config cfg;
    if (read_config(&cfg) != 0)
        return 2;
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "upload: out of memory\n");
        return 1;
    }
    if (corio_router_add(router, "POST", "/upload", upload_file, &cfg) != 0) {
        fprintf(stderr, "upload: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    corio_app app = {
        .name = "upload",
        .description = "streams POST /upload bodies to files in UPLOAD_DIR (at most UPLOAD_MAX)",
        .default_port = 8080,
    };
    /* The server enforces the limit on every body, chunked or not. */
    corio_http_opts opts = {.max_body = (size_t)cfg.max};
    return corio_http_app_main(&app, router, &opts, argc, argv); /* frees router */
}
