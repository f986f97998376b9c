/* SPDX-License-Identifier: MIT */
/* Reading a file range without blocking the loop on the disk (fileread.c).
 *
 * For the protocols that send bodies from files: HTTP file responses
 * (http/file.c) and the HTTP client's request bodies (client/exchange.c).
 * Cached pages are read on the loop, pages the page cache does not hold on
 * libuv's thread pool.  It lives in net, beside the stream's sendfile
 * (net/proto.h), whose windows it also probes, so that both protocols,
 * which may not include each other, can use it.
 *
 * Every call runs on the loop's thread; r and buffers are borrowed.
 */
#ifndef CORIO_NET_FILEREAD_H
#define CORIO_NET_FILEREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* How a file tells whether a read would wait for the disk. */
typedef enum corio__fread_probe {
    CORIO__PROBE_UNTRIED, /* not asked yet */
    CORIO__PROBE_NOWAIT,  /* preadv2(RWF_NOWAIT) answers EAGAIN for pages not cached */
    CORIO__PROBE_MEMORY,  /* tmpfs, ramfs: nothing to wait for, every read on the loop */
    CORIO__PROBE_NONE,    /* cannot tell (a network or FUSE file system): every read on the pool */
} corio__fread_probe;

/* Reads of one open file: the descriptor (borrowed: the caller keeps it
 * open across every call and closes it) and what its file system answered
 * to the probe.  Holds nothing else: there is no release. */
typedef struct corio__fread {
    int fd;
    corio__fread_probe probe;
} corio__fread;

/* Sets r up to read fd, not probed yet. */
void corio__fread_init(corio__fread *r, int fd);

/* Await: reads exactly len bytes at off into buf: on the loop while they
 * are cached, on the thread pool from the first page that is not.  Returns
 * 0; CORIO_EOF if the file ends first (it shrank); -errno of the read;
 * CORIO_ENOMEM; CORIO_ECANCELED / CORIO_ETIMEDOUT when the await is cut
 * short (buf then holds an unspecified part of the range; the pool read
 * finishes on its own into memory of its own and frees itself). */
int corio__fread_all(corio__fread *r, void *buf, size_t len, uint64_t off);

/* Reads up to len bytes at off into buf if that waits for no disk; never
 * waits.  Returns the count (> 0: fewer than len when what follows is not
 * cached), 0 when the first page is not cached or the file system says
 * reads must go to the pool (corio__fread_pool), CORIO_EOF at the end of
 * the file, -errno. */
ssize_t corio__fread_nowait(corio__fread *r, void *buf, size_t len, uint64_t off);

/* Whether reading (or sendfile()ing) [off, off + len) waits for no disk: a
 * byte every 256 KiB and the last one are read with RWF_NOWAIT.  An error
 * or the end of the file counts as cached (the read or sendfile then
 * reports it).  len >= 1. */
bool corio__fread_is_cached(corio__fread *r, uint64_t off, uint64_t len);

/* A read done on the thread pool: len bytes in data, owned by the caller
 * of corio__fread_pool until corio__fread_buf_free. */
typedef struct corio__fread_buf {
    int fd; /* the pool job's duplicate of the file's descriptor */
    uint64_t off;
    size_t len;
    char data[]; /* len bytes */
} corio__fread_buf;

/* Await: reads exactly len bytes at off on the thread pool, into memory of
 * the read's own (so a caller that stops waiting frees nothing the thread
 * still writes).  Returns 0 with *out the read (the caller frees it with
 * corio__fread_buf_free); otherwise *out is NULL and the code is CORIO_EOF,
 * -errno (of the read, or of duplicating the descriptor), CORIO_ENOMEM,
 * CORIO_ECANCELED / CORIO_ETIMEDOUT when the await is cut short (the read
 * then finishes on its own and is freed by a done callback). */
int corio__fread_pool(corio__fread *r, size_t len, uint64_t off, corio__fread_buf **out);

/* Frees b (transferred) and its descriptor.  b may be NULL. */
void corio__fread_buf_free(corio__fread_buf *b);

#endif
