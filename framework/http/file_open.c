/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* O_PATH */
/* File responses: checking request paths and opening files (see
 * file_internal.h, corio/http_file.h).
 *
 * Opening.  The path is checked lexically on the loop (no "." or "..", no
 * NUL or backslash, optionally no dot-files), then resolved and opened on
 * libuv's thread pool: a cold dentry cache or a network file system can take
 * milliseconds, which the loop must not spend.  Under a root the open is
 * openat2(RESOLVE_BENEATH) from a descriptor of the root, so the kernel
 * refuses every escape, symlinks included, atomically; where openat2 is
 * missing, a walk of the path one component at a time (lstat, readlink)
 * applies the same rules (absolute symlinks refused, even those that point
 * back inside) and an O_NOFOLLOW open of its result follows, with a window a
 * local writer of the tree could race.  A task
 * cancelled while the open runs leaves the job to a done callback, which
 * closes the file and frees it: no await waits on a thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(SYS_openat2) && __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif

#include "corio/future.h"
#include "corio/http_file.h"
#include "corio/scope.h"
#include "http/file_internal.h"

#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) /* a FIFO must not block */

/* ---- paths ------------------------------------------------------------------------------ */

/* An errno from path resolution or open as a corio code. */
static int path_error(int err) {
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return CORIO_ENOENT;
    case ENAMETOOLONG:
        return CORIO_ERANGE;
    case EXDEV: /* openat2: the resolution left the root */
    case ELOOP: /* a symlink where O_NOFOLLOW allows none, or a loop */
        return CORIO_EPERM;
    default:
        return -err;
    }
}

/* Checks the segments of a decoded request path and writes them, joined by
 * '/', to rel (cap >= p.len + 2): no leading '/', empty segments dropped, a
 * trailing '/' kept.  Returns 0, or CORIO_EPERM for a "." or ".." segment, a
 * dot-file segment (unless dotfiles), or a NUL or backslash anywhere. */
static int clean_rel(corio_strv p, bool dotfiles, char *rel) {
    size_t o = 0, i = 0;
    while (i < p.len) {
        if (p.ptr[i] == '/') {
            i++;
            continue;
        }
        size_t j = i;
        for (; j < p.len && p.ptr[j] != '/'; j++)
            if (p.ptr[j] == '\0' || p.ptr[j] == '\\')
                return CORIO_EPERM;
        const char *seg = p.ptr + i;
        size_t n = j - i;
        if (seg[0] == '.' && (n == 1 || (n == 2 && seg[1] == '.') || !dotfiles))
            return CORIO_EPERM;
        if (o)
            rel[o++] = '/';
        memcpy(rel + o, seg, n);
        o += n;
        i = j;
    }
    if (o && p.ptr[p.len - 1] == '/')
        rel[o++] = '/';
    rel[o] = '\0';
    return 0;
}

/* Resolves root/rel with realpath() into real (PATH_MAX bytes) and checks it
 * lies within realpath(root).  Returns 0, CORIO_EPERM when it does not,
 * path_error() codes, CORIO_ENOMEM. */
static int resolve_within(const char *root, const char *rel, char *real) {
    struct {
        char root[PATH_MAX], joined[PATH_MAX];
    } *scratch = malloc(sizeof *scratch);
    if (!scratch)
        return CORIO_ENOMEM;
    char *rroot = scratch->root, *joined = scratch->joined;
    int rc = 0;
    size_t n;
    if (!realpath(root, rroot)) {
        rc = path_error(errno);
        goto out_free;
    }
    if ((size_t)snprintf(joined, PATH_MAX, "%s/%s", rroot, rel) >= PATH_MAX) {
        rc = CORIO_ERANGE;
        goto out_free;
    }
    if (!realpath(joined, real)) {
        rc = path_error(errno);
        goto out_free;
    }
    n = strlen(rroot);
    if (n == 1) /* the root is "/" */
        goto out_free;
    if (strncmp(real, rroot, n) != 0 || (real[n] != '\0' && real[n] != '/'))
        rc = CORIO_EPERM;
out_free:
    free(scratch);
    return rc;
}

int corio_http_file_path(const char *root, corio_strv decoded_path, char *out, size_t len) {
    if (!root || !out || len == 0 || (!decoded_path.ptr && decoded_path.len))
        return CORIO_EINVAL;
    char *rel = malloc(decoded_path.len + 2);
    char *real = malloc(PATH_MAX);
    int rc = rel && real ? 0 : CORIO_ENOMEM;
    if (rc == 0)
        rc = clean_rel(decoded_path, true, rel);
    if (rc == 0)
        rc = resolve_within(root, rel, real);
    if (rc == 0) {
        size_t n = strlen(real);
        if (n >= len)
            rc = CORIO_ERANGE;
        else
            memcpy(out, real, n + 1);
    }
    free(real);
    free(rel);
    return rc;
}

/* ---- opening, on the thread pool ---------------------------------------------------- */

#ifdef HAVE_OPENAT2
static atomic_bool no_openat2; /* set once the kernel said ENOSYS */
#endif

/* Without openat2: resolves root/rel one component at a time as
 * RESOLVE_BENEATH does, following relative symlinks but refusing absolute
 * ones (also those pointing back inside) and any ".." that would climb
 * above the root, then opens the result with O_NOFOLLOW.  Unlike openat2
 * this can be raced by a local writer of the tree (see the top of this
 * file).  Returns a descriptor or a negative code. */
#define MAX_LINKS 40
static int open_walked(const char *root, const char *rel) {
    struct {
        char cur[PATH_MAX], todo[PATH_MAX], link[PATH_MAX];
    } *w = malloc(sizeof *w);
    if (!w)
        return CORIO_ENOMEM;
    int rc = 0, links = 0;
    size_t base, len;
    char *next = w->todo;
    if (!realpath(root, w->cur)) {
        rc = path_error(errno);
        goto out_free;
    }
    base = len = strlen(w->cur);
    if (base == 1)
        base = len = 0; /* the root is "/": components append "/name" */
    if ((size_t)snprintf(w->todo, sizeof w->todo, "%s", rel) >= sizeof w->todo) {
        rc = CORIO_ERANGE;
        goto out_free;
    }
    while (*next) {
        char *seg = next;
        while (*seg == '/')
            seg++;
        char *end = strchrnul(seg, '/');
        size_t n = (size_t)(end - seg);
        next = end;
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            if (len == base) {
                rc = CORIO_EPERM; /* above the root */
                goto out_free;
            }
            while (len > base && w->cur[--len] != '/')
                ;
            w->cur[len] = '\0';
            continue;
        }
        if (len + 1 + n >= sizeof w->cur) {
            rc = CORIO_ERANGE;
            goto out_free;
        }
        size_t at = len;
        w->cur[len++] = '/';
        memcpy(w->cur + len, seg, n);
        len += n;
        w->cur[len] = '\0';
        struct stat st;
        if (lstat(w->cur, &st) != 0) {
            rc = path_error(errno);
            goto out_free;
        }
        if (S_ISLNK(st.st_mode)) {
            ssize_t k = readlink(w->cur, w->link, sizeof w->link - 1);
            if (k <= 0 || ++links > MAX_LINKS) {
                rc = k < 0 ? path_error(errno) : CORIO_EPERM;
                goto out_free;
            }
            if (w->link[0] == '/') {
                rc = CORIO_EPERM; /* absolute: RESOLVE_BENEATH refuses it too */
                goto out_free;
            }
            size_t rest = strlen(next);
            if ((size_t)k + rest + 1 > sizeof w->todo) {
                rc = CORIO_ERANGE;
                goto out_free;
            }
            memmove(w->todo + k, next, rest + 1); /* the link's target, then the rest */
            memcpy(w->todo, w->link, (size_t)k);
            next = w->todo;
            len = at; /* the link's own name goes: its target is walked instead */
            w->cur[len] = '\0';
        } else if (*next && !S_ISDIR(st.st_mode)) {
            rc = CORIO_ENOENT; /* a file used as a directory (ENOTDIR) */
            goto out_free;
        }
    }
    rc = open(len ? w->cur : "/", OPEN_FLAGS | O_NOFOLLOW);
    if (rc < 0)
        rc = path_error(errno);
out_free:
    free(w);
    return rc;
}

/* Opens rel beneath root.  Returns a descriptor or a negative code. */
static int open_beneath(const char *root, const char *rel) {
    const char *name = rel[0] ? rel : ".";
#ifdef HAVE_OPENAT2
    if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
        int dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
            return path_error(errno);
        struct open_how how = {.flags = OPEN_FLAGS,
                               .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
        long fd = syscall(SYS_openat2, dfd, name, &how, sizeof how);
        int err = errno;
        close(dfd);
        if (fd >= 0)
            return (int)fd;
        if (err == ENOSYS)
            atomic_store_explicit(&no_openat2, true, memory_order_relaxed);
        else if (err != EPERM) /* EPERM: a sandbox that filters the call */
            return path_error(err);
    }
#endif
    return open_walked(root, name);
}

/* Opens path as a regular file into j.  Returns 0, -EISDIR, CORIO_EPERM for
 * other file types, or open's codes. */
static int open_regular(corio__open_job *j, const char *path) {
    int fd = j->root ? open_beneath(j->root, path) : open(path, OPEN_FLAGS);
    if (fd < 0)
        return j->root ? fd : path_error(errno);
    int rc = 0;
    if (fstat(fd, &j->st) != 0)
        rc = -errno;
    else if (S_ISDIR(j->st.st_mode))
        rc = -EISDIR;
    else if (!S_ISREG(j->st.st_mode))
        rc = CORIO_EPERM;
    else if (fcntl(fd, F_SETFL, 0) != 0) /* O_NONBLOCK off: reads may wait for the disk */
        rc = -errno;
    if (rc) {
        close(fd);
        return rc;
    }
    j->fd = fd;
    return 0;
}

static int open_job_run(void *arg) {
    corio__open_job *j = arg;
    int rc = open_regular(j, j->rel);
    if (rc != -EISDIR || !j->index || !j->slash)
        return rc;
    size_t n = strlen(j->rel);
    char *path = malloc(n + strlen(j->index) + 1);
    if (!path)
        return CORIO_ENOMEM;
    memcpy(path, j->rel, n);
    strcpy(path + n, j->index);
    rc = open_regular(j, path);
    free(path);
    j->via_index = rc == 0;
    return rc == -EISDIR ? CORIO_ENOENT : rc;
}

void corio__open_job_free(corio__open_job *j) {
    if (j->fd >= 0)
        close(j->fd);
    free(j);
}

/* A job whose task stopped waiting: its result is dropped here. */
static void open_job_abandoned(corio_future *f, void *data) {
    (void)f;
    corio__open_job_free(data);
}

/* Builds the job for path (under root when root is not NULL).  Returns it,
 * or NULL with *rc set. */
static corio__open_job *open_job_new(const char *root, corio_strv path, const corio_file_opts *o,
                                     int *rc) {
    size_t rlen = root ? strlen(root) + 1 : 0, ilen = o->index ? strlen(o->index) + 1 : 0;
    corio__open_job *j = malloc(sizeof *j + rlen + path.len + 2 + ilen);
    if (!j) {
        *rc = CORIO_ENOMEM;
        return NULL;
    }
    char *p = j->text;
    j->root = root ? memcpy(p, root, rlen) : NULL;
    p += rlen;
    j->rel = p;
    if (root) {
        *rc = clean_rel(path, o->dotfiles, p);
        if (*rc) {
            free(j);
            return NULL;
        }
    } else {
        memcpy(p, path.ptr, path.len);
        p[path.len] = '\0';
    }
    p += path.len + 2;
    j->index = o->index ? memcpy(p, o->index, ilen) : NULL;
    j->slash = path.len == 0 || path.ptr[path.len - 1] == '/';
    j->via_index = false;
    j->fd = -1;
    return j;
}

/* Await: runs *jp on the thread pool and returns its result; the caller
 * still owns *jp.  If the await is cut short, the job is handed to a done
 * callback, *jp becomes NULL and CORIO_ECANCELED / CORIO_ETIMEDOUT is
 * returned. */
static int open_async(corio__open_job **jp) {
    corio_future *f;
    int rc = corio_run_blocking(&f, open_job_run, *jp);
    if (rc)
        return rc;
    rc = corio_await(f);
    if (!corio_future_done(f)) {
        if (corio_future_add_done_cb(f, open_job_abandoned, *jp) == 0) {
            *jp = NULL;
        } else {
            CORIO_WITH(corio_shield_scope()) { /* no memory: wait for the thread */
                (void)corio_await(f);
            }
        }
    }
    corio_future_release(f);
    return rc;
}

int corio__file_open(const char *root, corio_strv path, const corio_file_opts *o,
                     corio__open_job **out) {
    int rc;
    corio__open_job *j = open_job_new(root, path, o, &rc);
    if (j)
        rc = open_async(&j);
    if (rc && j) {
        corio__open_job_free(j);
        j = NULL;
    }
    *out = j;
    return rc;
}
