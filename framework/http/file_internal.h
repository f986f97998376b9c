/* SPDX-License-Identifier: MIT */
/* Private interface between the parts of file responses (corio/http_file.h).
 *
 * file.c answers a request with a file and sends it; file_open.c checks
 * request paths and opens files on libuv's thread pool; file_cond.c computes
 * a file's validators and evaluates the preconditions and the Range of a
 * request against them.  Only file.c calls what is declared here.
 */
#ifndef CORIO_HTTP_FILE_INTERNAL_H
#define CORIO_HTTP_FILE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "corio/http.h"
#include "corio/http_file.h"

/* ---- opening (file_open.c) ------------------------------------------------------------ */

/* A file to open on the thread pool, in one allocation with its strings.
 * The caller of corio__file_open reads fd, st, via_index and index; the
 * other fields serve the open. */
typedef struct corio__open_job {
    const char *root;  /* NULL: rel is a path used as given */
    const char *rel;   /* under root: cleaned, "" for the root itself */
    const char *index; /* NULL: none */
    bool slash;        /* named with a trailing '/' (index applies) */
    bool via_index;    /* result: the index was opened */
    int fd;            /* result: the open file, or -1 */
    struct stat st;    /* result */
    char text[];       /* the strings above */
} corio__open_job;

/* Await: opens a regular file for reading, on the thread pool.  With a root,
 * path is a decoded request path, checked on the loop (no "." or ".."
 * segment, no NUL or backslash, no dot-file unless o->dotfiles) and opened
 * beneath root; without one (root NULL) path is opened as given.  A
 * directory named with a trailing '/' opens o->index in it instead, when set.
 * root, path and o are borrowed for the call.  Returns 0 with *out a new job
 * holding the open file (freed by the caller with corio__open_job_free);
 * otherwise *out is NULL and the code is CORIO_ENOENT, CORIO_EPERM (an
 * escape from root, a refused segment, not a regular file), -EISDIR (a
 * directory, no index applies), CORIO_ERANGE (a path too long), CORIO_ENOMEM,
 * another open(2) errno negated, or CORIO_ECANCELED / CORIO_ETIMEDOUT when
 * the await is cut short: the open then finishes on its own and a done
 * callback closes and frees what it produced. */
int corio__file_open(const char *root, corio_strv path, const corio_file_opts *o,
                     corio__open_job **out);

/* Closes j's file, if open, and frees j (transferred). */
void corio__open_job_free(corio__open_job *j);

/* ---- validators and ranges (file_cond.c) ---------------------------------------------- */

/* The validators of a file, as the answer sends and compares them. */
typedef struct corio__file_meta {
    uint64_t size;
    time_t mtime; /* seconds, no later than now */
    time_t now;
    char etag[48];    /* W/"<size hex>-<mtime ns hex>" */
    char lastmod[64]; /* IMF-fixdate */
} corio__file_meta;

/* Fills m from the fstat of a regular file, at the current time. */
void corio__file_meta_init(corio__file_meta *m, const struct stat *st);

/* RFC 9110 13.2.2: whether req's preconditions make the answer 304 Not
 * Modified.  If-None-Match decides when present (weak comparison, "*"
 * matches); else If-Modified-Since (an unparsable date is ignored).  req and
 * m are borrowed. */
bool corio__file_not_modified(const corio_req *req, const corio__file_meta *m);

/* If-Range (RFC 9110 13.1.5): true when req's Range applies, which it does
 * when req has no If-Range.  An entity tag never matches (If-Range compares
 * strongly; ours are weak); a date matches when it equals Last-Modified and
 * that is a strong validator (a second or more in the past).  req and m are
 * borrowed. */
bool corio__file_if_range_holds(const corio_req *req, const corio__file_meta *m);

/* What a Range field asks of a file. */
typedef enum corio__range {
    CORIO__RANGE_NONE,          /* send everything, with 200 */
    CORIO__RANGE_ONE,           /* one range of bytes, with 206 */
    CORIO__RANGE_UNSATISFIABLE, /* 416 */
} corio__range;

/* Parses the Range field v against a file of `size` bytes.  CORIO__RANGE_ONE
 * sets *start and *len (len >= 1, within the file); CORIO__RANGE_NONE for
 * another unit, several ranges, bad syntax, or a suffix range of an empty
 * file; CORIO__RANGE_UNSATISFIABLE for a range that starts at or past the
 * end, or "bytes=-0".  v is borrowed. */
corio__range corio__file_parse_range(corio_strv v, uint64_t size, uint64_t *start, uint64_t *len);

#endif
