#define _GNU_SOURCE /* O_PATH, sendfile */
/* File responses (see corio/http_file.h).
 *
 * Opening.  The path is checked lexically on the loop (no "." or "..", no
 * NUL or backslash, optionally no dot-files), then resolved and opened on
 * libuv's thread pool: a cold dentry cache or a network file system can take
 * milliseconds, which the loop must not spend.  Under a root the open is
 * openat2(RESOLVE_BENEATH) from a descriptor of the root, so the kernel
 * refuses every escape, symlinks included, atomically; where openat2 is
 * missing, realpath() and a prefix check followed by an O_NOFOLLOW open do
 * the same with a window a local writer of the tree could race.  A task
 * cancelled while the open runs leaves the job to a done callback, which
 * closes the file and frees it: no await waits on a thread.
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
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(SYS_openat2) && __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2 1
#endif

#include "corio/future.h"
#include "corio/http_file.h"
#include "corio/scope.h"
#include "corio/tls.h"
#include "http/http_internal.h"
#include "net/stream_internal.h"

#define SMALL_BODY (16 * 1024)            /* read into the arena, batched with the head */
#define CHUNK (64 * 1024)                 /* pread + stream write unit */
#define YIELD_EVERY (4 * 1024 * 1024)     /* sendfile bytes between two turns for others */
#define SENDFILE_MAX ((size_t)0x7ffff000) /* the most one sendfile() moves on Linux */
#define OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK) /* a FIFO must not block */

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
    size_t n = strlen(rroot);
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
    char *real = malloc(PATH_MAX);
    if (!real)
        return CORIO_ENOMEM;
    int rc = resolve_within(root, name, real);
    if (rc == 0) {
        rc = open(real, OPEN_FLAGS | O_NOFOLLOW);
        if (rc < 0)
            rc = path_error(errno);
    }
    free(real);
    return rc;
}

typedef struct open_job {
    const char *root;  /* NULL: rel is a path used as given */
    const char *rel;   /* under root: cleaned, "" for the root itself */
    const char *index; /* NULL: none */
    bool slash;        /* named with a trailing '/' (index applies) */
    bool via_index;    /* result: the index was opened */
    int fd;            /* result: the open file, or -1 */
    struct stat st;    /* result */
    char text[];       /* the strings above */
} open_job;

/* Opens path as a regular file into j.  Returns 0, -EISDIR, CORIO_EPERM for
 * other file types, or open's codes. */
static int open_regular(open_job *j, const char *path) {
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
    open_job *j = arg;
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

static void open_job_free(open_job *j) {
    if (j->fd >= 0)
        close(j->fd);
    free(j);
}

/* A job whose task stopped waiting: its result is dropped here. */
static void open_job_abandoned(corio_future *f, void *data) {
    (void)f;
    open_job_free(data);
}

/* Builds the job for path (under root when root is not NULL).  Returns it,
 * or NULL with *rc set. */
static open_job *open_job_new(const char *root, corio_strv path, const corio_file_opts *o,
                              int *rc) {
    size_t rlen = root ? strlen(root) + 1 : 0, ilen = o->index ? strlen(o->index) + 1 : 0;
    open_job *j = malloc(sizeof *j + rlen + path.len + 2 + ilen);
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
static int open_async(open_job **jp) {
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

/* ---- validators and ranges ------------------------------------------------------------ */

static const char day_names[] = "SunMonTueWedThuFriSat";
static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

typedef struct file_meta {
    uint64_t size;
    time_t mtime; /* seconds, no later than now */
    time_t now;
    char etag[48];    /* W/"<size hex>-<mtime ns hex>" */
    char lastmod[64]; /* IMF-fixdate */
} file_meta;

static void meta_init(file_meta *m, const struct stat *st) {
    m->size = (uint64_t)st->st_size;
    m->now = time(NULL);
    m->mtime = st->st_mtim.tv_sec < m->now ? st->st_mtim.tv_sec : m->now;
    uint64_t ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    snprintf(m->etag, sizeof m->etag, "W/\"%" PRIx64 "-%" PRIx64 "\"", m->size, ns);
    struct tm tm;
    gmtime_r(&m->mtime, &tm);
    snprintf(m->lastmod, sizeof m->lastmod, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
             day_names + 3 * tm.tm_wday, tm.tm_mday, month_names + 3 * tm.tm_mon, tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* v without the spaces and tabs around it. */
static corio_strv trim_ows(corio_strv v) {
    while (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++;
        v.len--;
    }
    while (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

static bool take_char(const char **p, const char *end, char ch) {
    if (*p >= end || **p != ch)
        return false;
    (*p)++;
    return true;
}

static bool take_digits(const char **p, const char *end, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (*p >= end || **p < '0' || **p > '9')
            return false;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return true;
}

static bool take_month(const char **p, const char *end, int *mon) {
    if (end - *p < 3)
        return false;
    for (int i = 0; i < 12; i++) {
        if (memcmp(month_names + 3 * i, *p, 3) == 0) {
            *mon = i;
            *p += 3;
            return true;
        }
    }
    return false;
}

static bool take_time(const char **p, const char *end, struct tm *tm) {
    return take_digits(p, end, 2, &tm->tm_hour) && take_char(p, end, ':') &&
           take_digits(p, end, 2, &tm->tm_min) && take_char(p, end, ':') &&
           take_digits(p, end, 2, &tm->tm_sec);
}

/* Parses an HTTP-date in any of its three forms (RFC 9110 5.6.7):
 * "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
 * "Sun Nov  6 08:49:37 1994". */
static bool parse_http_date(corio_strv v, time_t *out) {
    v = trim_ows(v);
    const char *p = v.ptr, *end = v.ptr + v.len;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
        p++; /* the day's name */
    struct tm tm = {0};
    int year;
    if (take_char(&p, end, ',')) {
        char sep = end - p > 3 ? p[3] : 0; /* ' ' IMF-fixdate, '-' RFC 850 */
        if (!take_char(&p, end, ' ') || !take_digits(&p, end, 2, &tm.tm_mday) ||
            (sep != ' ' && sep != '-') || !take_char(&p, end, sep) ||
            !take_month(&p, end, &tm.tm_mon) || !take_char(&p, end, sep))
            return false;
        if (sep == ' ' ? !take_digits(&p, end, 4, &year) : !take_digits(&p, end, 2, &year))
            return false;
        if (sep == '-')
            year += year < 70 ? 2000 : 1900;
        if (!take_char(&p, end, ' ') || !take_time(&p, end, &tm) || !take_char(&p, end, ' ') ||
            end - p != 3 || memcmp(p, "GMT", 3) != 0)
            return false;
    } else { /* asctime */
        if (!take_char(&p, end, ' ') || !take_month(&p, end, &tm.tm_mon) ||
            !take_char(&p, end, ' '))
            return false;
        if (take_char(&p, end, ' ') ? !take_digits(&p, end, 1, &tm.tm_mday)
                                    : !take_digits(&p, end, 2, &tm.tm_mday))
            return false;
        if (!take_char(&p, end, ' ') || !take_time(&p, end, &tm) || !take_char(&p, end, ' ') ||
            !take_digits(&p, end, 4, &year) || p != end)
            return false;
    }
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

/* If-None-Match: whether the list holds "*" or our tag (weak comparison:
 * the W/ prefixes are ignored). */
static bool etag_listed(corio_strv v, const char *etag) {
    const char *tag = etag + 2; /* past our W/ */
    size_t tlen = strlen(tag);
    size_t i = 0;
    for (;;) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
            i++;
        if (i >= v.len)
            return false;
        if (v.ptr[i] == '*')
            return true;
        if (v.len - i >= 2 && v.ptr[i] == 'W' && v.ptr[i + 1] == '/')
            i += 2;
        if (i >= v.len || v.ptr[i] != '"')
            return false; /* malformed: no match */
        const char *close = memchr(v.ptr + i + 1, '"', v.len - i - 1);
        if (!close)
            return false;
        size_t n = (size_t)(close - (v.ptr + i)) + 1;
        if (n == tlen && memcmp(v.ptr + i, tag, n) == 0)
            return true;
        i += n;
    }
}

/* RFC 9110 13.2.2: If-None-Match decides when present, else
 * If-Modified-Since (an unparsable date is ignored). */
static bool not_modified(const corio_req *req, const file_meta *m) {
    corio_strv v;
    if (corio_req_header(req, "If-None-Match", &v))
        return etag_listed(v, m->etag);
    time_t since;
    if (corio_req_header(req, "If-Modified-Since", &v) && parse_http_date(v, &since))
        return m->mtime <= since;
    return false;
}

/* If-Range (RFC 9110 13.1.5): true when the Range applies.  An entity tag
 * never matches (If-Range compares strongly; ours are weak); a date matches
 * when it equals Last-Modified and that is a strong validator (a second or
 * more in the past). */
static bool if_range_holds(const corio_req *req, const file_meta *m) {
    corio_strv v;
    if (!corio_req_header(req, "If-Range", &v))
        return true;
    time_t t;
    return parse_http_date(v, &t) && t == m->mtime && m->mtime < m->now;
}

enum { RANGE_NONE, RANGE_ONE, RANGE_UNSATISFIABLE };

/* Decimal digits, saturating at UINT64_MAX.  Returns false if there are none. */
static bool take_u64(const char **p, const char *end, uint64_t *out) {
    const char *start = *p;
    uint64_t v = 0;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
        unsigned d = (unsigned)(**p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    return *p > start;
}

/* Parses a Range field against a file of `size` bytes.  RANGE_ONE sets
 * *start and *len; RANGE_NONE (send everything) for another unit, several
 * ranges, bad syntax, or a suffix range of an empty file. */
static int parse_range(corio_strv v, uint64_t size, uint64_t *start, uint64_t *len) {
    v = trim_ows(v);
    if (v.len < 6 || strncasecmp(v.ptr, "bytes=", 6) != 0 || memchr(v.ptr, ',', v.len))
        return RANGE_NONE;
    const char *p = v.ptr, *end = v.ptr + v.len;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    uint64_t a, b;
    if (take_char(&p, end, '-')) { /* the last b bytes */
        if (!take_u64(&p, end, &b) || p != end)
            return RANGE_NONE;
        if (b == 0)
            return RANGE_UNSATISFIABLE;
        if (size == 0)
            return RANGE_NONE;
        *start = b >= size ? 0 : size - b;
        *len = size - *start;
        return RANGE_ONE;
    }
    if (!take_u64(&p, end, &a) || !take_char(&p, end, '-'))
        return RANGE_NONE;
    bool open_end = !take_u64(&p, end, &b);
    if (p != end || (!open_end && b < a))
        return RANGE_NONE;
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    if (open_end || b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return RANGE_ONE;
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
static int add_validators(corio_res *res, const file_meta *m, const corio_file_opts *o) {
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
    return rc;
}

/* Await: answers with the open regular file fd.  `name` picks the type. */
static int answer(corio_res *res, int fd, const struct stat *st, corio_strv name,
                  const corio_file_opts *o) {
    corio_req *req = &res->c->req;
    corio_strv method = corio_req_method(req);
    bool get = corio_strv_eq(method, "GET") || corio_strv_eq(method, "HEAD");
    file_meta m;
    meta_init(&m, st);
    if (get && not_modified(req, &m)) {
        int rc = add_validators(res, &m, o);
        return rc ? rc : corio_res_send(res, 304, NULL, NULL, 0);
    }
    int status = 200;
    uint64_t off = 0, len = m.size;
    corio_strv range;
    if (get && corio_req_header(req, "Range", &range) && if_range_holds(req, &m)) {
        int r = parse_range(range, m.size, &off, &len);
        char field[80];
        if (r == RANGE_UNSATISFIABLE) {
            snprintf(field, sizeof field, "bytes */%" PRIu64, m.size);
            int rc = corio_res_header(res, "Content-Range", field);
            static const char body[] = "Range Not Satisfiable\n";
            return rc ? rc
                      : corio_res_send(res, 416, "text/plain; charset=utf-8", body,
                                       sizeof body - 1);
        }
        if (r == RANGE_ONE) {
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
    int rc;
    open_job *j = open_job_new(root, path, o, &rc);
    if (!j)
        return rc;
    rc = open_async(&j);
    if (rc == 0 && j) {
        size_t extra = res->extra_len;
        corio_strv name = j->via_index ? (corio_strv){j->index, strlen(j->index)} : path;
        rc = answer(res, j->fd, &j->st, name, o);
        if (rc && !res->started)
            res->extra_len = extra; /* nothing sent: leave no header of ours behind */
        else if (rc)
            res->c->close = true; /* a body cut short cannot be repaired */
    }
    if (j)
        open_job_free(j);
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
