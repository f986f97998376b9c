/* SPDX-License-Identifier: MIT */
/* Static file server: serves one directory and nothing outside it.
 *
 *     static [--root DIR] [--realpath] [runner flags]   (or STATIC_ROOT=DIR; default ".")
 *
 * A root that is missing, not a directory, or that this user cannot read
 * is refused at start (exit 2), rather than answering 403 to everything.
 *
 *     GET/HEAD /path   ->  DIR/path, with ETag, Last-Modified, 304 and Range
 *     GET /dir/        ->  DIR/dir/index.html
 *     GET /dir         ->  301 to /dir/ (so the index's relative links work)
 *     anything else    ->  404 (missing, "..", dot-files, symlinks leading out)
 *
 * corio_res_file_under() resolves the path beneath the root in the kernel
 * (openat2 RESOLVE_BENEATH).  With --realpath the example takes the two-step
 * road instead: corio_http_file_path() maps and checks the path, then
 * corio_res_file() serves it (this path blocks the loop in realpath(); it is
 * kept to show and test the helper).  Both flags are declared to the runner
 * (corio_app.flags), which parses them with its own (--port, --workers,
 * ...), lists them in --help and refuses bad values.
 */
#include <corio/corio.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct site {
    char root[PATH_MAX];
    bool two_step; /* --realpath */
} site;

static const corio_file_opts file_opts = {.index = "index.html"};

/* A path with a segment starting with '.' (".git", ".env"). */
static bool has_dotfile(corio_strv p) {
    for (size_t i = 0; i < p.len; i++)
        if (p.ptr[i] == '.' && (i == 0 || p.ptr[i - 1] == '/'))
            return true;
    return false;
}

/* Appends byte c to p, percent-encoded unless `keep` says it may stand. */
static char *put_byte(char *p, unsigned char c, bool keep) {
    static const char hex[] = "0123456789ABCDEF";
    if (keep) {
        *p++ = (char)c;
    } else {
        *p++ = '%';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 15];
    }
    return p;
}

/* RFC 3986 pchar without '%': what a path segment may hold unencoded. */
static bool segment_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~!$&'()*+,;=:@", c));
}

/* What may stay unencoded in the query copied over: printable ASCII but
 * for the characters that are never valid in a URI ('%' stays: the query
 * is still encoded). */
static bool query_char(unsigned char c) {
    return c > 0x20 && c < 0x7f && !strchr("\"<>\\^`{|}#", c);
}

/* 301 to the directory's URL: the request's path with a '/' after it, and
 * its query.  Built from the decoded path only, never from the raw target:
 * an absolute-form target ("GET http://evil.example/sub") would redirect
 * to another host, and "//sub" is a scheme-relative URL (host "sub").  Only
 * a path corio_res_file* resolved gets here, so it holds no "." or ".."
 * segment (they are refused first); empty segments are dropped and each
 * segment percent-encoded again, so the Location starts with exactly one
 * '/'. */
static int redirect_to_dir(corio_req *req, corio_res *res) {
    corio_strv path = corio_req_path(req), query = corio_req_query_string(req);
    char *loc = corio_req_alloc(req, 3 * (path.len + query.len) + 4);
    if (!loc)
        return CORIO_ENOMEM;
    char *p = loc;
    for (size_t k = 0; k < path.len; k++) {
        unsigned char c = (unsigned char)path.ptr[k];
        if (c != '/')
            p = put_byte(p, c, segment_char(c));
        else if (p == loc || p[-1] != '/') /* empty segments dropped */
            *p++ = '/';
    }
    if (p > loc && p[-1] == '/')
        p--;
    *p++ = '/';
    if (query.len) {
        *p++ = '?';
        for (size_t k = 0; k < query.len; k++)
            p = put_byte(p, (unsigned char)query.ptr[k], query_char((unsigned char)query.ptr[k]));
    }
    *p = '\0';
    int rc = corio_res_header(res, "Location", loc);
    return rc ? rc : corio_res_text(res, 301, "Moved Permanently\n");
}

/* Answers what corio_res_file* could not serve (nothing was sent yet). */
static int answer_error(corio_req *req, corio_res *res, int rc) {
    if (rc == 0 || corio_res_started(res))
        return rc;
    switch (rc) {
    case -EISDIR:
        return redirect_to_dir(req, res);
    case CORIO_ENOENT:
    case CORIO_EPERM:
    case CORIO_ERANGE:
        return corio_res_text(res, 404, "Not Found\n");
    case -EACCES:
        return corio_res_text(res, 403, "Forbidden\n");
    default:
        return rc; /* the server answers 500 and logs it */
    }
}

/* --realpath: map with corio_http_file_path, then serve the checked path. */
static int serve_two_step(corio_req *req, corio_res *res, const site *st) {
    corio_strv path = corio_req_path(req);
    char *file = corio_req_alloc(req, PATH_MAX + 1);
    if (!file)
        return CORIO_ENOMEM;
    int rc = corio_http_file_path(st->root, path, file, PATH_MAX);
    if (rc == 0 && has_dotfile(path))
        rc = CORIO_EPERM; /* the policy corio_res_file_under applies by default */
    if (rc == 0 && path.len && path.ptr[path.len - 1] == '/')
        strcat(file, "/"); /* the '/' that selects the index */
    if (rc == 0)
        rc = corio_res_file(res, file, &file_opts);
    return answer_error(req, res, rc);
}

static int serve(corio_req *req, corio_res *res, void *arg) {
    const site *st = arg;
    if (st->two_step)
        return serve_two_step(req, res, st);
    int rc = corio_res_file_under(res, st->root, corio_req_path(req), &file_opts);
    return answer_error(req, res, rc);
}

static site st;
static const char *root = ".";

/* Resolves --root into st.root, refusing a root the server could not serve
 * from: missing, not a directory, or one this user cannot list and enter
 * (every request would be answered 403).  Runs once the flags are parsed
 * (corio_app.setup).  Returns 0, or 2 after a line on stderr. */
static int check_root(void *arg) {
    (void)arg;
    struct stat sb;
    const char *why = NULL;
    if (!realpath(root, st.root) || stat(st.root, &sb) != 0)
        why = errno == ENOENT ? "no such directory" : strerror(errno);
    else if (!S_ISDIR(sb.st_mode))
        why = "not a directory";
    else if (access(st.root, R_OK | X_OK) != 0)
        why = errno == EACCES ? "cannot read it (permission denied)" : strerror(errno);
    if (!why)
        return 0;
    fprintf(stderr, "static: --root %s: %s\n", root, why);
    return 2;
}

int main(int argc, char **argv) {
    static const corio_app_flag flags[] = {
        {.name = "root",
         .type = CORIO_APP_FLAG_STRING,
         .target = &root,
         .env = "STATIC_ROOT",
         .accepts = "a directory",
         .help = "the directory to serve"},
        {.name = "realpath",
         .type = CORIO_APP_FLAG_BOOL,
         .target = &st.two_step,
         .help = "map paths with corio_http_file_path, then corio_res_file"},
    };
    corio_router *router;
    if (corio_router_new(&router) != 0 || corio_router_add(router, "GET", "/*", serve, &st) != 0) {
        fprintf(stderr, "static: cannot build the router\n");
        return 1;
    }
    corio_app app = {
        .name = "static",
        .description = "static file server",
        .default_port = 8080,
        .flags = flags,
        .nflags = sizeof flags / sizeof flags[0],
        .setup = check_root,
    };
    return corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
}
