/* SPDX-License-Identifier: MIT */
/* Reading a file range without blocking the loop on the disk (see
 * net/fileread.h).
 *
 * A read of pages the page cache does not hold blocks the thread that makes
 * it, and on the loop that stalls every connection of the worker
 * (bench/cold_file.py: with a 50 MiB/s disk, a small request waited up to
 * 400 ms behind a cold download).  So the loop reads only what is cached,
 * asking with preadv2(RWF_NOWAIT), and hands what is not to libuv's thread
 * pool: a pread into a buffer the pool job owns, which the loop then uses
 * (nginx's "aio threads").  A file system without RWF_NOWAIT is read on the
 * loop when it lives in memory (tmpfs, ramfs) and on the pool otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* preadv2, RWF_NOWAIT */
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include "corio/future.h"
#include "corio/scope.h"
#include "corio/task.h"
#include "net/fileread.h"

#define PROBE_STRIDE (256 * 1024) /* bytes between two cache probes of a range */

void corio__fread_init(corio__fread *r, int fd) {
    r->fd = fd;
    r->probe = CORIO__PROBE_UNTRIED;
}

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

/* The probe for a file whose file system refused RWF_NOWAIT. */
static corio__fread_probe probe_fs(int fd) {
    struct statfs fs;
    if (fstatfs(fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC))
        return CORIO__PROBE_MEMORY;
    return CORIO__PROBE_NONE;
}

ssize_t corio__fread_nowait(corio__fread *r, void *buf, size_t len, uint64_t off) {
    if (r->probe == CORIO__PROBE_NONE)
        return 0;
    if (r->probe == CORIO__PROBE_MEMORY) {
        int rc = read_at(r->fd, buf, len, off);
        return rc ? rc : (ssize_t)len;
    }
    struct iovec v = {.iov_base = buf, .iov_len = len};
    for (;;) {
        ssize_t n = preadv2(r->fd, &v, 1, (off_t)off, RWF_NOWAIT);
        if (n > 0) {
            r->probe = CORIO__PROBE_NOWAIT;
            return n;
        }
        if (n == 0)
            return CORIO_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            r->probe = CORIO__PROBE_NOWAIT;
            return 0;
        }
        if (r->probe == CORIO__PROBE_UNTRIED &&
            (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
            r->probe = probe_fs(r->fd);
            return corio__fread_nowait(r, buf, len, off);
        }
        return -errno;
    }
}

/* A byte every PROBE_STRIDE and the last one are read with RWF_NOWAIT. */
bool corio__fread_is_cached(corio__fread *r, uint64_t off, uint64_t len) {
    char c;
    for (uint64_t at = 0; at < len; at += PROBE_STRIDE) {
        uint64_t last = at + PROBE_STRIDE >= len ? len - 1 : at;
        ssize_t n = corio__fread_nowait(r, &c, 1, off + last);
        if (n == 0)
            return false;
        if (n < 0 || r->probe == CORIO__PROBE_MEMORY)
            return true;
        if (last != at && corio__fread_nowait(r, &c, 1, off + at) == 0)
            return false;
    }
    return true;
}

/* ---- on the thread pool --------------------------------------------------------------- */

/* A read on the pool owns its buffer and a duplicate of the descriptor: a
 * task that stops waiting hands it to a done callback, so the thread never
 * touches what the task frees (or closes). */

static int pool_read_run(void *arg) {
    corio__fread_buf *b = arg;
    return read_at(b->fd, b->data, b->len, b->off);
}

void corio__fread_buf_free(corio__fread_buf *b) {
    if (!b)
        return;
    close(b->fd);
    free(b);
}

static void pool_read_abandoned(corio_future *f, void *data) {
    (void)f;
    corio__fread_buf_free(data);
}

int corio__fread_pool(corio__fread *r, size_t len, uint64_t off, corio__fread_buf **out) {
    *out = NULL;
    corio__fread_buf *b = malloc(sizeof *b + len);
    if (!b)
        return CORIO_ENOMEM;
    b->fd = fcntl(r->fd, F_DUPFD_CLOEXEC, 0);
    if (b->fd < 0) {
        int rc = -errno;
        free(b);
        return rc;
    }
    b->off = off;
    b->len = len;
    corio_future *f;
    int rc = corio_run_blocking(&f, pool_read_run, b);
    if (rc) {
        corio__fread_buf_free(b);
        return rc;
    }
    rc = corio_await(f);
    if (!corio_future_done(f)) {
        if (corio_future_add_done_cb(f, pool_read_abandoned, b) == 0) {
            b = NULL;
        } else {
            CORIO_WITH(corio_shield_scope()) { /* no memory: wait for the thread */
                (void)corio_await(f);
            }
        }
    }
    corio_future_release(f);
    if (rc == 0)
        *out = b;
    else
        corio__fread_buf_free(b);
    return rc;
}

/* ---- both ----------------------------------------------------------------------------- */

int corio__fread_all(corio__fread *r, void *buf, size_t len, uint64_t off) {
    char *p = buf;
    while (len) {
        ssize_t n = corio__fread_nowait(r, p, len, off);
        if (n < 0)
            return (int)n;
        if (n == 0) {
            corio__fread_buf *b;
            int rc = corio__fread_pool(r, len, off, &b);
            if (rc == 0) {
                /* b is set: an await returns 0 only once f is done (which
                 * clang-analyzer does not know):
                 * NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
                memcpy(p, b->data, len);
                corio__fread_buf_free(b);
            }
            return rc;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}
