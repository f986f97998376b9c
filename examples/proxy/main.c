/* SPDX-License-Identifier: MIT */
/* Reverse proxy: forwards every request under a path prefix to a set of
 * upstreams, round robin, streaming both bodies.
 *
 *     proxy --upstream http://127.0.0.1:9000 --upstream http://127.0.0.1:9001
 *           [--prefix /api] [--upstream-timeout 60s] [runner flags]
 *
 * The three flags are declared to the runner (corio_app.flags): --help
 * lists them with the runner's, a bad value is refused (exit 2). *
 * The request target goes to the upstream as it came (prefix included; an
 * absolute-form one in origin-form), after the upstream URL's own path if it
 * has one.  Hop-by-hop fields (Connection and the fields it names,
 * Keep-Alive, TE, Trailer, Transfer-Encoding, Upgrade, Proxy-*, and these
 * spelt with '_' for '-') are not forwarded either way;
 * X-Forwarded-For, -Proto and -Host and Via are added.  Bodies of any size
 * pass in bounded memory: the handler reads the client's body only as fast
 * as the upstream takes it, and the upstream's only as fast as the client
 * takes it.
 *
 * Failures: an upstream that refuses or cannot be reached is skipped for
 * 5 s (passive health) and the request goes to the next; none healthy: 502
 * at once.  An upstream that does not answer within --upstream-timeout:
 * 504; garbage or a close before its head: 502; a close in the middle of its
 * body: the client's connection is closed, never a short body presented as
 * complete.  A client that goes away cancels the handler, and the upstream
 * request with it (its connection is closed, not pooled half-read).
 */
#include <corio/corio.h>
#include <corio/http_client.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MAX_UPSTREAMS = 64, DOWN_FOR_MS = 5000, CHUNK = 16384 };

typedef struct upstream {
    const char *base; /* "http://host:port[/path]" without a trailing '/' */
    uint64_t down_until;
} upstream;

typedef struct proxy {
    upstream up[MAX_UPSTREAMS];
    size_t n, next;
    uint64_t timeout_ms;
    corio_http_client *client; /* one per worker, made at its first request */
} proxy;

/* The request's body length: CORIO_HTTP_CHUNKED, N, or -2 for none. */
static int64_t body_length(const corio_req *req) {
    corio_strv v;
    if (corio_req_header(req, "Transfer-Encoding", &v))
        return CORIO_HTTP_CHUNKED; /* the server accepts chunked only */
    if (corio_req_header(req, "Content-Length", &v))
        return strtoll(v.ptr, NULL, 10); /* checked by the server's parser */
    return -2;
}

static bool has_body(const corio_req *req) {
    return body_length(req) != -2;
}

/* ---- the handler ------------------------------------------------------------------------ */

static upstream *pick(proxy *p) {
    for (size_t i = 0; i < p->n; i++) {
        upstream *u = &p->up[p->next++ % p->n];
        if (u->down_until <= corio_now())
            return u;
    }
    return NULL;
}

static int relay(corio_req *req, corio_res *res, corio_http_exchange *x);
static int build_request(corio_req *req, const upstream *u, corio_http_req *out);
static const char *copy_response_headers(corio_res *res, const corio_http_response *r);

/* Sends the request to one upstream after another until one takes it. */
static int forward(corio_req *req, corio_res *res, void *arg) {
    proxy *p = arg;
    if (!p->client) {
        corio_http_client_opts o = {.max_conns_per_origin = 1024,
                                    .max_conns = 4096,
                                    .connect_timeout_ms = 5000,
                                    .first_byte_timeout_ms = p->timeout_ms,
                                    .read_timeout_ms = p->timeout_ms};
        if (corio_http_client_new(&p->client, &o) < 0)
            return CORIO_ENOMEM;
    }
    int reused_failures = 0;
    for (upstream *u; (u = pick(p));) {
        corio_http_req rq;
        corio_http_exchange *x;
        int rc = build_request(req, u, &rq);
        if (rc < 0)
            return rc;
        CORIO_WITH_RC(rc, corio_http_open(p->client, &rq, &x)) {
            return relay(req, res, x);
        }
        if (rc == CORIO_ECANCELED || rc == CORIO_ENOMEM || rc == CORIO_EINVAL)
            return rc;
        if (rc == CORIO_EPIPE || rc == CORIO_ECONNRESET || rc == CORIO_EOF) {
            if (++reused_failures > 2) /* a pooled connection the upstream had closed */
                break;
            continue; /* the upstream is up: it just dropped an idle connection */
        }
        corio_log(CORIO_LOG_WARN, "proxy: %s: %s; skipped for %d ms", u->base, corio_strerror(rc),
                  DOWN_FOR_MS);
        u->down_until = corio_now() + DOWN_FOR_MS;
    }
    return corio_res_text(res, 502, "Bad Gateway: no upstream available\n");
}

/* Streams the client's body up, then the upstream's response down. */
static int relay(corio_req *req, corio_res *res, corio_http_exchange *x) {
    int rc = 0, n;
    bool body = has_body(req);
    char *buf = body ? corio_req_alloc(req, CHUNK) : NULL;
    while (buf && (n = corio_req_read(req, buf, CHUNK)) != 0) {
        if (n < 0)
            return n; /* the client's fault (408, 413...): the server answers */
        if ((rc = corio_http_write(x, buf, (size_t)n)) < 0)
            return corio_res_text(res, 502, "Bad Gateway\n");
    }
    if (buf && (rc = corio_http_write_end(x)) < 0)
        return corio_res_text(res, 502, "Bad Gateway\n");
    if (body && !buf)
        return CORIO_ENOMEM;
    const corio_http_response *r;
    if ((rc = corio_http_response_head(x, &r)) < 0)
        return rc == CORIO_ECANCELED   ? rc
               : rc == CORIO_ETIMEDOUT ? corio_res_text(res, 504, "Gateway Timeout\n")
                                       : corio_res_text(res, 502, "Bad Gateway\n");
    int status = corio_http_response_status(r);
    if (status < 200 || status > 599)
        return corio_res_text(res, 502, "Bad Gateway\n");
    const char *piece = NULL;
    uint64_t len;
    bool sized = corio_http_response_length(r, &len);
    /* With a length, the first piece is often the whole body: one write for
     * head and body.  Without (events, long polls), the head goes at once. */
    n = sized || status == 204 || status == 304 ? corio_http_read(x, &piece) : 0;
    if (n < 0) /* nothing sent yet: still time for an honest answer */
        return n == CORIO_ECANCELED   ? n
               : n == CORIO_ETIMEDOUT ? corio_res_text(res, 504, "Gateway Timeout\n")
                                      : corio_res_text(res, 502, "Bad Gateway\n");
    const char *ctype = copy_response_headers(res, r);
    if (status == 204 || status == 304)
        return corio_res_send(res, status, ctype, NULL, 0);
    if (sized && n >= 0 && (uint64_t)n == len && corio_req_method(req).ptr[0] != 'H') {
        rc = corio_res_send(res, status, ctype, piece, (size_t)n); /* head and body: one write */
        if (rc == 0)
            corio_http_read(x, &piece); /* 0: the body's end, so the connection is pooled */
        return rc;
    }
    rc = sized ? corio_res_start_length(res, status, ctype, len)
               : corio_res_start(res, status, ctype);
    if (rc == 0 && !sized)
        n = corio_http_read(x, &piece);
    for (; rc == 0 && n > 0; n = corio_http_read(x, &piece))
        rc = corio_res_write(res, piece, (size_t)n);
    if (rc == 0 && n < 0) { /* the upstream died mid-body: so does this response */
        corio_res_abort(res);
        return 0;
    }
    return rc < 0 ? rc : corio_res_end(res);
}

/* ---- headers ---------------------------------------------------------------------------- */

/* A NUL-terminated copy of v in the request's arena. */
static char *dup_strv(corio_req *req, corio_strv v) {
    char *s = corio_req_alloc(req, v.len + 1);
    if (s) {
        memcpy(s, v.ptr, v.len);
        s[v.len] = '\0';
    }
    return s;
}

/* Whether `name` appears as a token in the comma-separated list. */
static bool listed(const char *list, size_t list_len, const char *name, size_t name_len) {
    for (size_t i = 0; i < list_len;) {
        while (i < list_len && (list[i] == ' ' || list[i] == '\t' || list[i] == ','))
            i++;
        size_t start = i;
        while (i < list_len && list[i] != ',' && list[i] != ' ' && list[i] != '\t')
            i++;
        if (i - start == name_len && strncasecmp(list + start, name, name_len) == 0)
            return true;
    }
    return false;
}

/* Whether name (len bytes) is one of the NULL-terminated names, ignoring
 * case and reading '_' as '-': servers that turn field names into variables
 * (CGI's HTTP_TRANSFER_ENCODING) take "Transfer_Encoding" for
 * "Transfer-Encoding", so it is dropped with it, or it would reach them
 * beside the framing the proxy chose (and "X_Forwarded_For" beside ours). */
static bool one_of(const char *name, size_t len, const char *const *names) {
    for (; *names; names++) {
        size_t i = 0;
        for (; i < len && (*names)[i]; i++) {
            char a = name[i] == '_' ? '-' : name[i], b = (*names)[i];
            if ((a >= 'A' && a <= 'Z' ? a + 32 : a) != (b >= 'A' && b <= 'Z' ? b + 32 : b))
                break;
        }
        if (i == len && (*names)[len] == '\0') /* [len]: in bounds, as i == len */
            return true;
    }
    return false;
}

/* Hop-by-hop fields, the fields `connection` names, and those the proxy or
 * the client set themselves (`also`, NULL-terminated). */
static bool dropped(const char *name, size_t len, const char *connection, size_t clen,
                    const char *const *also) {
    static const char *const hop[] = {
        "Connection", "Keep-Alive",     "TE", "Trailer", "Transfer-Encoding",
        "Upgrade",    "Content-Length", NULL};
    return one_of(name, len, hop) || one_of(name, len, also) ||
           (len >= 6 && strncasecmp(name, "Proxy", 5) == 0 && (name[5] == '-' || name[5] == '_')) ||
           (connection && listed(connection, clen, name, len));
}

/* Every value of the fields named `name`, joined with ", " in the
 * request's arena (a list field may come as several fields: RFC 9110 5.3).
 * {NULL, 0} when there is none. */
static corio_strv joined(corio_req *req, const char *name) {
    corio_strv n, v, all = {0};
    size_t len = 0, count = corio_req_header_count(req);
    for (size_t i = 0; i < count && corio_req_header_at(req, i, &n, &v); i++)
        if (n.len == strlen(name) && strncasecmp(n.ptr, name, n.len) == 0)
            len += v.len + 2;
    char *out = len ? corio_req_alloc(req, len) : NULL;
    for (size_t i = 0; out && i < count && corio_req_header_at(req, i, &n, &v); i++)
        if (n.len == strlen(name) && strncasecmp(n.ptr, name, n.len) == 0) {
            if (all.len) {
                memcpy(out + all.len, ", ", 2);
                all.len += 2;
            }
            memcpy(out + all.len, v.ptr, v.len);
            all.len += v.len;
        }
    if (out) {
        out[all.len] = '\0';
        all.ptr = out;
    }
    return all;
}

/* The target in origin-form: an absolute-form one ("http://a/p?q", which a
 * server must accept, RFC 9112 3.2.2) goes upstream as its path and query
 * ("/" without a path); its authority is the Host field already (the server
 * made it so).  The server refused any other form but OPTIONS's "*", which
 * no route matches. */
static corio_strv origin_form(corio_strv t) {
    if (t.len == 0 || t.ptr[0] == '/')
        return t;
    const char *end = t.ptr + t.len, *p = memchr(t.ptr, ':', t.len);
    for (p = p ? p + 3 : end; p < end && *p != '/';) /* after "scheme://authority" */
        p++;
    return p < end ? (corio_strv){p, (size_t)(end - p)} : (corio_strv){"/", 1};
}

static int build_request(corio_req *req, const upstream *u, corio_http_req *out) {
    /* X-Request-Id: the request's own id goes upstream (the client's when
     * it was sane, else the one the server gave it), once. */
    static const char *const ours[] = {
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Via", "X-Request-Id", NULL};
    size_t n = corio_req_header_count(req), k = 0;
    corio_http_header *h = corio_req_alloc(req, (n + 5) * sizeof *h);
    corio_strv target = origin_form(corio_req_target(req)), method = corio_req_method(req), name,
               value, conn = joined(req, "Connection"), prev;
    const char *addr = corio_req_peer_addr(req); /* "127.0.0.1", "::1" */
    char *url = corio_req_alloc(req, strlen(u->base) + target.len + 1);
    if (!h || !url)
        return CORIO_ENOMEM;
    memcpy(stpcpy(url, u->base), target.ptr, target.len);
    url[strlen(u->base) + target.len] = '\0';
    for (size_t i = 0; i < n && corio_req_header_at(req, i, &name, &value); i++)
        if (!dropped(name.ptr, name.len, conn.ptr, conn.len, ours) &&
            !(h[k].name = dup_strv(req, name), h[k].value = dup_strv(req, value),
              !h[k].name || !h[k].value))
            k++;
    char *xff = NULL, *via = NULL, *host = NULL;
    if ((prev = joined(req, "X-Forwarded-For")).ptr &&
        (xff = corio_req_alloc(req, prev.len + strlen(addr) + 3)))
        sprintf(xff, "%s, %s", prev.ptr, addr);
    if ((prev = joined(req, "Via")).ptr && (via = corio_req_alloc(req, prev.len + 16)))
        sprintf(via, "%s, 1.1 corio", prev.ptr);
    if (corio_req_header(req, "Host", &prev))
        host = dup_strv(req, prev);
    h[k++] = (corio_http_header){"X-Forwarded-For", xff ? xff : addr};
    h[k++] = (corio_http_header){"X-Forwarded-Proto", corio_req_is_tls(req) ? "https" : "http"};
    if (host)
        h[k++] = (corio_http_header){"X-Forwarded-Host", host};
    h[k++] = (corio_http_header){"Via", via ? via : "1.1 corio"};
    h[k++] = (corio_http_header){"X-Request-Id", corio_req_id(req)};
    int64_t len = body_length(req);
    *out = (corio_http_req){.method = dup_strv(req, method),
                            .url = url,
                            .headers = h,
                            .nheaders = k,
                            .body_stream = len != -2,
                            .body_length = len == -2 ? 0 : len};
    return out->method ? 0 : CORIO_ENOMEM;
}

/* Copies the upstream's end-to-end fields; returns its Content-Type (the
 * server writes that one itself), or NULL. */
static const char *copy_response_headers(corio_res *res, const corio_http_response *r) {
    static const char *const ours[] = {"Date", "Server", "Content-Type", NULL};
    const char *name, *value;
    char conn[1024] = ""; /* every Connection field's tokens (a longer list: cut) */
    for (size_t i = 0; corio_http_response_header_at(r, i, &name, &value) == 0; i++)
        if (strcasecmp(name, "Connection") == 0 && strlen(conn) + strlen(value) + 3 < sizeof conn)
            strcat(strcat(conn, ", "), value);
    for (size_t i = 0; corio_http_response_header_at(r, i, &name, &value) == 0; i++)
        if (!dropped(name, strlen(name), conn, strlen(conn), ours))
            corio_res_header(res, name, value); /* a field the server refuses is left out */
    corio_res_header(res, "Via", "1.1 corio");
    return corio_http_response_header(r, "Content-Type");
}

/* ---- the command line ------------------------------------------------------------------- */

/* --upstream URL, once per upstream. */
static int add_upstream(const char *v, void *arg) {
    proxy *p = arg;
    if (p->n == MAX_UPSTREAMS || (strncmp(v, "http://", 7) && strncmp(v, "https://", 8)))
        return CORIO_EINVAL;
    char *b = strdup(v);
    if (!b)
        return CORIO_ENOMEM;
    size_t bl = strlen(b);
    while (bl > 8 && b[bl - 1] == '/')
        b[--bl] = '\0';
    p->up[p->n++].base = b;
    return 0;
}

/* --prefix PATH */
static int set_prefix(const char *v, void *arg) {
    if (v[0] != '/' || strlen(v) >= 1024)
        return CORIO_EINVAL;
    *(const char **)arg = v;
    return 0;
}

static proxy p = {.timeout_ms = 60000};
static const char *prefix = "/";

/* Once the flags are parsed (corio_app.setup): the routes under --prefix.
 * Returns 0, or 2 after a line on stderr. */
static int add_routes(void *arg) {
    corio_router *router = arg;
    if (p.n == 0) {
        fprintf(stderr, "proxy: at least one --upstream URL is needed\n");
        return 2;
    }
    /* prefix "/api" routes "/api" and "/api/..."; "/" routes everything. */
    char exact[1024], rest[1040];
    size_t pl = strlen(prefix);
    while (pl > 1 && prefix[pl - 1] == '/')
        pl--;
    snprintf(exact, sizeof exact, "%.*s", (int)pl, prefix);
    snprintf(rest, sizeof rest, "%s/*", pl == 1 ? "" : exact);
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sizeof methods / sizeof *methods; i++) {
        rc = corio_router_add(router, methods[i], rest, forward, &p);
        if (rc == 0 && pl > 1)
            rc = corio_router_add(router, methods[i], exact, forward, &p);
    }
    if (rc) {
        fprintf(stderr, "proxy: --prefix %s: %s\n", prefix, corio_strerror(rc));
        return 2;
    }
    return 0;
}

int main(int argc, char **argv) {
    static const corio_app_flag flags[] = {
        {.name = "upstream",
         .type = CORIO_APP_FLAG_FUNC,
         .parse = add_upstream,
         .target = &p,
         .accepts = "an http:// or https:// URL (at most 64 upstreams)",
         .help = "an upstream to forward to; repeat it for more (round robin)"},
        {.name = "prefix",
         .type = CORIO_APP_FLAG_FUNC,
         .parse = set_prefix,
         .target = &prefix,
         .accepts = "a path starting with '/'",
         .default_text = "/",
         .help = "forward the requests under this path"},
        {.name = "upstream-timeout",
         .type = CORIO_APP_FLAG_DURATION,
         .target = &p.timeout_ms,
         .min = 1,
         .max = INT64_MAX,
         .accepts = "a duration such as 500ms or 60s",
         .help = "an upstream that has not answered by then: 504"},
    };
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "proxy: out of memory\n");
        return 1;
    }
    /* Bodies are streamed, never held: no size limit of the proxy's own
     * (the upstream has its own); the body deadlines still apply. */
    corio_http_opts opts = {.max_body = SIZE_MAX};
    corio_app app = {
        .name = "proxy",
        .description = "reverse proxy",
        .default_port = 8080,
        .flags = flags,
        .nflags = sizeof flags / sizeof flags[0],
        .setup = add_routes,
        .setup_arg = router,
    };
    return corio_http_app_main(&app, router, &opts, argc, argv); /* frees router */
}
