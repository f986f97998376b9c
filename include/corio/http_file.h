/* SPDX-License-Identifier: MIT */
/* corio/http_file.h — serving files: static responses from the file system.
 *
 *     static int get_static(corio_req *req, corio_res *res, void *arg) {
 *         corio_file_opts o = {.index = "index.html"};
 *         int rc = corio_res_file_under(res, "/srv/www", corio_req_path(req), &o);
 *         if (rc == CORIO_ENOENT || rc == CORIO_EPERM)
 *             return corio_res_text(res, 404, "Not Found\n");
 *         return rc;
 *     }
 *
 * A file response carries Content-Type (by the name's extension, or yours),
 * Content-Length, a weak ETag (W/"<size hex>-<mtime ns hex>"), Last-Modified
 * and "Accept-Ranges: bytes", and answers, for GET and HEAD:
 *   - If-None-Match (weak comparison, "*" too) and, when that field is absent,
 *     If-Modified-Since: 304 Not Modified with no body;
 *   - Range with a single "bytes=a-b", "bytes=a-" or "bytes=-n": 206 with
 *     Content-Range; a range starting past the end, or "bytes=-0": 416 with a
 *     Content-Range that gives only the size (RFC 9110 14.4).  A Range of
 *     several ranges, of another unit, or malformed is ignored and the whole
 *     file is sent with 200 (RFC 9110 allows it).  If-Range is honoured: an entity tag never
 * matches (ours are weak, If-Range compares strongly), a date matches when it equals Last-Modified
 * and that is at least a second old;
 *   - HEAD: the head GET would get, no body.
 * Other methods get the whole file with 200; preconditions and Range are
 * ignored for them.  If-Match and If-Unmodified-Since are not evaluated.
 *
 * How the body goes out.  Files up to 16 KiB are read into the request's
 * arena and leave with the head, in the same write as other pipelined
 * responses.  Larger ones: on plain TCP and Unix streams the head is written,
 * then the file goes out with sendfile(2) straight from the page cache; when
 * the socket is full, one 64 KiB chunk is read and queued through the stream
 * (which waits for the socket like any write, under the send timeout) and
 * sendfile resumes once it has left.  On TLS streams the file is read in
 * 64 KiB chunks and written through the stream.
 *
 * Blocking.  Opening (path resolution, open, fstat) runs on libuv's thread
 * pool, as it can wait on a slow disk or a network file system.  Reading the
 * body (sendfile, pread) runs on the loop's thread: cheap for files in the
 * page cache, a short stall of the loop for cold ones — the trade nginx makes
 * by default.
 *
 * Errors.  Anything that fails before the head leaves is returned with
 * nothing sent (corio_res_started() stays false) and no header added, so the
 * caller answers as it likes: 404 for CORIO_ENOENT, say.  Once the head has
 * left, a failure (the client went away, a read error, a file that shrank)
 * is returned too, and the connection is closed after the handler returns,
 * since the body can no longer be completed.
 *
 * Sending to a client that has gone away raises SIGPIPE: corio_app_main
 * ignores it; programs that run their own server should too.
 */
#ifndef CORIO_HTTP_FILE_H
#define CORIO_HTTP_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "http.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of a file response; NULL or a zeroed struct gives the defaults.
 * Strings are borrowed for the duration of the call. */
typedef struct corio_file_opts {
    /* Content-Type; NULL: by the extension of the name (corio_http_mime_type). */
    const char *content_type;
    /* Cache-Control value added to 200, 206 and 304 answers; NULL: none. */
    const char *cache_control;
    /* Served for a directory named with a trailing '/' ("index.html"), as if
     * it had been named; NULL: directories are never served. */
    const char *index;
    /* corio_res_file_under only: serve path segments that start with '.'
     * (".git", ".env", ".well-known").  false (the default): refused with
     * CORIO_EPERM. */
    bool dotfiles;
} corio_file_opts;

/* The media type for a file name, by its extension (case-insensitive):
 * "text/html; charset=utf-8" for "a.html", "image/png" for "b.PNG", and
 * "application/octet-stream" for unknown or no extension.  Text types carry
 * "; charset=utf-8".  Returns a static string; never NULL. */
const char *corio_http_mime_type(corio_strv name);

/* Maps a percent-decoded request path (corio_req_path) to a file under
 * `root`, refusing every way out: segments "." and "..", NUL bytes and
 * backslashes anywhere, and symbolic links whose target lies outside the
 * root.  Empty segments ("a//b") are dropped.  On success `out` (capacity
 * len) receives the resolved absolute path (symlinks resolved, no trailing
 * '/'), which exists and lies within realpath(root).
 *
 * It touches the file system (realpath(3) stats every component), so call it
 * where a short block is acceptable, or from corio_run_blocking().  Between
 * this check and a later open, a local user who can write into the tree could
 * swap a component for a symlink: corio_res_file_under() closes that window
 * and should be preferred for serving.
 *
 * Returns 0; CORIO_EPERM for a refused path (the segments above, or a target
 * outside the root); CORIO_ENOENT when the path or root does not exist or a
 * component is not a directory; CORIO_ERANGE when the result does not fit in
 * len (or exceeds PATH_MAX); CORIO_EINVAL for a NULL argument or len 0; other
 * negative errno values from realpath (-EACCES).  A symlink loop counts as
 * refused (CORIO_EPERM).  root and
 * decoded_path are borrowed. */
int corio_http_file_path(const char *root, corio_strv decoded_path, char *out, size_t len);

/* Await: answers the current request with the regular file at `path`, a
 * file system path the application chose (it is not checked: use
 * corio_res_file_under for paths that come from a request).  opts may be
 * NULL.  See the top of this file for the answers and how the body is sent.
 *
 * Returns 0 once the response is complete (200, 206, 304, 416, or a HEAD
 * answer).  Before anything is sent: CORIO_EINVAL for a NULL res or path;
 * CORIO_EALREADY if a response was already started; CORIO_ENOENT when the
 * file does not exist or a component is not a directory; -EISDIR for a
 * directory (with opts->index, only when the path has no trailing '/' or the
 * index is missing: CORIO_ENOENT then); CORIO_EPERM for something other than
 * a regular file or directory (a FIFO, a device); CORIO_ERANGE for a path
 * longer than PATH_MAX; -EACCES and other negative errno values from open or
 * fstat; CORIO_ENOMEM; CORIO_ECANCELED / CORIO_ETIMEDOUT while the open
 * was awaited; CORIO_ENOTASK outside a task.  After the head was sent: the
 * stream's write errors (CORIO_EPIPE, CORIO_ECONNRESET, CORIO_ETIMEDOUT,
 * CORIO_ECANCELED), read errors (-EIO), CORIO_EOF when the file shrank while
 * it was sent; the connection is then closed.  res, path and opts are
 * borrowed. */
int corio_res_file(corio_res *res, const char *path, const corio_file_opts *opts);

/* Await: corio_res_file for a percent-decoded request path (corio_req_path)
 * served from under the directory `root`, with the refusals of
 * corio_http_file_path (plus dot-files, unless opts->dotfiles).  The
 * resolution cannot be raced: the file is opened with openat2(2)
 * RESOLVE_BENEATH relative to the root, so the kernel refuses any ".." or
 * symlink that leads out of it, including absolute symlinks (also those
 * pointing back inside).  On kernels without openat2 (before 5.6, or where a
 * sandbox hides it) it falls back to realpath(3) and a prefix check, then
 * opens the resolved path with O_NOFOLLOW.  The Content-Type comes from the
 * requested name (or the index's), not a symlink's target.
 *
 * Returns corio_res_file's codes, with CORIO_EPERM also for a refused path;
 * CORIO_ENOENT also when root does not exist.  root, decoded_path and opts
 * are borrowed. */
int corio_res_file_under(corio_res *res, const char *root, corio_strv decoded_path,
                         const corio_file_opts *opts);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_HTTP_FILE_H */
