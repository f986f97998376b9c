/* SPDX-License-Identifier: MIT */
/* Fuzzes the router's matching (framework/http/router.c) and the request's
 * query decoding (corio_req_query, framework/http/request.c), against a
 * fixed router of literal, {param}, trailing-* and method-only routes.
 *
 * Feeds: "METHOD TARGET\nNAME": the method up to the first space (when one
 * comes within 24 bytes; GET otherwise, and all of the first line is the
 * target), the target up to the first newline, split at its first '?' into
 * the raw path and the query string, and after the newline a query
 * parameter's name to look up.  Any byte may occur in the method and the path.
 *
 * Asserts:
 *  - corio__router_match_raw (as the server calls it: scratch only when the
 *    raw path holds a '%') returns 200, 404 or 405, and returns the same,
 *    with the same route and parameters, when called again (deterministic);
 *  - when the raw path decodes (the server's precondition: it answers 400
 *    otherwise), the result is that of an independent reference matcher
 *    over the route table: each segment percent-decoded on its own (so an
 *    encoded '/' stays in its parameter, and only there), a trailing '/'
 *    ignored, literal segments before {params} before a trailing '*' at each
 *    position, HEAD answered by GET; the route, every parameter's name and
 *    value (a '*' gets the rest of the path, decoded), and for 405 the Allow
 *    list as a set of methods (HEAD with GET); "." and ".." are segments
 *    like any other: a literal route never matches a path whose decoded
 *    segments differ from its own, whatever dot segments it holds;
 *  - parameter values are slices of the raw path or of scratch, never
 *    elsewhere, and hold a '/' only when the raw segment held "%2F" (or, for
 *    '*', the rest of the path);
 *  - corio__router_match on the decoded path agrees with the reference
 *    run on the decoded path's own segments (no decoding);
 *  - the matched route's metrics id is the one registered for its method
 *    and pattern;
 *  - corio_req_query returns what a reference decoding of the query string
 *    gives ('+' a space, the first pair whose decoded name matches, false
 *    when that pair's value does not decode), a value no longer than its
 *    raw form and free of NUL bytes. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz.h"
#include "http/http_internal.h"
#include "http/metrics_internal.h"
#include "http/router.h"

/* ---- the router ------------------------------------------------------------------------- */

typedef struct rt {
    const char *method, *pattern;
} rt;

/* LOCK is added before UNLOCK, so UNLOCK comes first in its node's list. */
static const rt routes[] = {
    {"GET", "/"},
    {"GET", "/plaintext"},
    {"GET", "/users"},
    {"POST", "/users"},
    {"GET", "/users/me"},
    {"GET", "/users/{id}"},
    {"PUT", "/users/{id}"},
    {"DELETE", "/users/{id}"},
    {"GET", "/users/{id}/posts/{post}"},
    {"HEAD", "/users/{id}/avatar"},
    {"GET", "/static/*"},
    {"GET", "/files/{dir}/*"},
    {"POST", "/api/v1/items"},
    {"GET", "/api/{version}/items"},
    {"OPTIONS", "/api/*"},
    {"GET", "/api/{version}/.."},
    {"LOCK", "/dav/{name}"},
    {"UNLOCK", "/dav/{name}"},
    {"GET", "/a%2Fb"},
    {"GET", "/caf\xc3\xa9/{x}/{y}/{z}"},
};
enum { NROUTES = sizeof routes / sizeof routes[0] };

static int handler(corio_req *req, corio_res *res, void *arg) {
    (void)req, (void)res, (void)arg;
    return 0;
}

static corio_router *router;

static void make_router(void) {
    FUZZ_CHECK(corio_router_new(&router) == 0, "corio_router_new");
    for (size_t i = 0; i < NROUTES; i++)
        FUZZ_CHECK(corio_router_add(router, routes[i].method, routes[i].pattern, handler,
                                    (void *)&routes[i]) == 0,
                   "adding %s %s", routes[i].method, routes[i].pattern);
}

/* ---- the reference --------------------------------------------------------------------- */

static int hexdigit(int c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decodes s (n bytes) into out (n bytes at least); plus: '+' is a
 * space.  Returns the length, or -1 for a bad escape or a NUL. */
static long ref_decode(const char *s, size_t n, char *out, bool plus) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (n - i < 3 || hexdigit(s[i + 1]) < 0 || hexdigit(s[i + 2]) < 0)
                return -1;
            c = hexdigit(s[i + 1]) * 16 + hexdigit(s[i + 2]);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        if (c == 0)
            return -1;
        out[o++] = (char)c;
    }
    return (long)o;
}

enum { MAX_SEGS = 64 };

typedef struct seg {
    size_t off;   /* where it starts in the path */
    char *text;   /* decoded (malloc'd) */
    size_t len;   /* decoded length */
    bool has_sep; /* its raw form holds "%2F" (an encoded '/') */
} seg;

typedef struct path {
    const char *raw;
    size_t len;
    bool decode;
    seg segs[MAX_SEGS];
    size_t n;
    bool too_many;
} path;

static void path_release(path *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->segs[i].text);
}

/* Splits raw (starting with '/') into segments; a last empty one (a trailing
 * '/') is left out. */
static void split(path *p, const char *raw, size_t len, bool decode) {
    memset(p, 0, sizeof *p);
    p->raw = raw;
    p->len = len;
    p->decode = decode;
    size_t i = 1;
    while (i <= len) {
        size_t j = i;
        while (j < len && raw[j] != '/')
            j++;
        if (j == len && j == i) /* empty and last */
            break;
        if (p->n == MAX_SEGS) {
            p->too_many = true;
            return;
        }
        seg *s = &p->segs[p->n++];
        s->off = i;
        s->text = malloc(j - i + 1);
        if (!s->text)
            abort();
        if (decode) {
            long n = ref_decode(raw + i, j - i, s->text, false);
            FUZZ_CHECK(n >= 0, "a segment of a path that decodes does not");
            s->len = (size_t)n;
            for (size_t k = i; k + 2 < j; k++)
                if (raw[k] == '%' && raw[k + 1] == '2' && (raw[k + 2] == 'F' || raw[k + 2] == 'f'))
                    s->has_sep = true;
        } else {
            memcpy(s->text, raw + i, j - i);
            s->len = j - i;
        }
        i = j + 1;
    }
}

typedef struct expect_param {
    const char *name;
    char *value; /* malloc'd */
    size_t len;
} expect_param;

typedef struct expect {
    int rc;
    const rt *route;
    expect_param params[CORIO__MAX_PARAMS];
    size_t nparams;
    const char *allow[NROUTES + 1]; /* for 405 */
    size_t nallow;
} expect;

static void expect_release(expect *e) {
    for (size_t i = 0; i < e->nparams; i++)
        free(e->params[i].value);
}

/* The pattern's segments, after its leading '/' (into a static buffer). */
static size_t pattern_segs(const char *pattern, const char *out[], size_t lens[]) {
    size_t n = 0;
    const char *s = pattern + 1;
    while (*s) {
        size_t l = strcspn(s, "/");
        out[n] = s;
        lens[n++] = l;
        s += l;
        if (*s == '/')
            s++;
    }
    return n;
}

static int kind(const char *s, size_t l) {
    if (l == 1 && s[0] == '*')
        return 2;
    return l >= 2 && s[0] == '{' && s[l - 1] == '}' ? 1 : 0;
}

/* Whether route r's pattern matches the path; key[] gets its order key
 * (literal 0, param 1, '*' 2 per position, -1 for ending with the path). */
static bool pattern_matches(const rt *r, const path *p, int key[], size_t *nkey) {
    const char *ps[MAX_SEGS];
    size_t pl[MAX_SEGS];
    size_t n = pattern_segs(r->pattern, ps, pl);
    *nkey = 0;
    for (size_t i = 0; i < n; i++) {
        int k = kind(ps[i], pl[i]);
        key[(*nkey)++] = k;
        if (k == 2)
            return true; /* the rest, whatever it is (nothing included) */
        if (i >= p->n)
            return false;
        const seg *s = &p->segs[i];
        if (k == 1 ? s->len == 0 : (s->len != pl[i] || memcmp(s->text, ps[i], pl[i]) != 0))
            return false;
    }
    key[(*nkey)++] = -1;
    return n == p->n;
}

static int key_cmp(const int *a, size_t na, const int *b, size_t nb) {
    for (size_t i = 0; i < na && i < nb; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return na < nb ? -1 : na > nb;
}

static bool method_is(corio_strv m, const char *s) {
    return m.len == strlen(s) && memcmp(m.ptr, s, m.len) == 0;
}

/* Whether the routes of pattern accept method (HEAD: a GET route too). */
static const rt *accepting(const char *pattern, corio_strv method) {
    const rt *get = NULL;
    for (size_t i = 0; i < NROUTES; i++) {
        if (strcmp(routes[i].pattern, pattern) != 0)
            continue;
        if (method_is(method, routes[i].method))
            return &routes[i];
        if (strcmp(routes[i].method, "GET") == 0)
            get = &routes[i];
    }
    return method_is(method, "HEAD") ? get : NULL;
}

static void add_method(expect *e, const char *m) {
    for (size_t i = 0; i < e->nallow; i++)
        if (strcmp(e->allow[i], m) == 0)
            return;
    e->allow[e->nallow++] = m;
}

static void reference(const path *p, corio_strv method, expect *e) {
    memset(e, 0, sizeof *e);
    e->rc = 404;
    const rt *best = NULL;
    int best_key[MAX_SEGS + 1];
    size_t best_n = 0;
    for (size_t i = 0; i < NROUTES; i++) {
        int key[MAX_SEGS + 1];
        size_t nkey;
        if (!pattern_matches(&routes[i], p, key, &nkey))
            continue;
        add_method(e, routes[i].method);
        if (strcmp(routes[i].method, "GET") == 0)
            add_method(e, "HEAD");
        const rt *r = accepting(routes[i].pattern, method);
        if (r && (!best || key_cmp(key, nkey, best_key, best_n) < 0)) {
            best = r;
            memcpy(best_key, key, nkey * sizeof key[0]);
            best_n = nkey;
        }
        if (e->rc == 404)
            e->rc = 405;
    }
    if (!best)
        return;
    e->rc = 200;
    e->route = best;
    const char *ps[MAX_SEGS];
    size_t pl[MAX_SEGS];
    size_t n = pattern_segs(best->pattern, ps, pl);
    for (size_t i = 0; i < n; i++) {
        int k = kind(ps[i], pl[i]);
        if (k == 0)
            continue;
        expect_param *ep = &e->params[e->nparams++];
        if (k == 1) {
            ep->name = ps[i] + 1; /* compared on pl[i] - 2 bytes */
            ep->len = p->segs[i].len;
            ep->value = fuzz_strndup(p->segs[i].text, ep->len);
            continue;
        }
        ep->name = "*";
        size_t off = i < p->n ? p->segs[i].off : p->len;
        ep->value = malloc(p->len - off + 1);
        if (!ep->value)
            abort();
        if (p->decode) {
            long dn = ref_decode(p->raw + off, p->len - off, ep->value, false);
            FUZZ_CHECK(dn >= 0, "the rest of a path that decodes does not");
            ep->len = (size_t)dn;
        } else {
            memcpy(ep->value, p->raw + off, p->len - off);
            ep->len = p->len - off;
        }
    }
}

/* ---- the comparison -------------------------------------------------------------------- */

static bool param_name_is(const char *want, const char *name) {
    if (strcmp(want, "*") == 0)
        return strcmp(name, "*") == 0;
    size_t n = strcspn(want, "}");
    return strlen(name) == n && memcmp(name, want, n) == 0;
}

static void compare(const char *what, int rc, const corio__match *m, const expect *e,
                    const path *p) {
    FUZZ_CHECK(rc == e->rc, "%s: %d, the reference says %d", what, rc, e->rc);
    if (rc == 405) {
        /* The Allow list, as a set. */
        const char *a = m->allow;
        size_t count = 0;
        while (*a) {
            size_t l = strcspn(a, ",");
            bool known = false;
            for (size_t i = 0; i < e->nallow; i++)
                known |= strlen(e->allow[i]) == l && memcmp(e->allow[i], a, l) == 0;
            FUZZ_CHECK(known, "%s: Allow '%s' names a method no matching route has", what,
                       m->allow);
            count++;
            a += l;
            if (*a == ',')
                a += 2; /* ", " */
        }
        FUZZ_CHECK(count == e->nallow, "%s: Allow '%s' has %zu methods, the reference %zu", what,
                   m->allow, count, e->nallow);
    }
    if (rc != 200)
        return;
    FUZZ_CHECK(m->fn == handler && m->arg == e->route, "%s: route '%s %s', expected '%s %s'", what,
               ((const rt *)m->arg)->method, ((const rt *)m->arg)->pattern, e->route->method,
               e->route->pattern);
    FUZZ_CHECK(m->metrics_id == corio__metrics_route_id(e->route->method, e->route->pattern),
               "%s: metrics id %u", what, m->metrics_id);
    FUZZ_CHECK(m->nparams == e->nparams, "%s: %zu parameters, expected %zu", what, m->nparams,
               e->nparams);
    for (size_t i = 0; i < m->nparams; i++) {
        const corio__param *q = &m->params[i];
        const expect_param *x = &e->params[i];
        FUZZ_CHECK(param_name_is(x->name, q->name), "%s: parameter %zu is '%s'", what, i, q->name);
        FUZZ_CHECK(q->value.len == x->len && memcmp(q->value.ptr, x->value, x->len) == 0,
                   "%s: parameter '%s' is '%.*s', expected '%.*s'", what, q->name,
                   (int)q->value.len, q->value.ptr, (int)x->len, x->value);
        if (strcmp(q->name, "*") != 0 && memchr(q->value.ptr, '/', q->value.len)) {
            bool sep = false;
            for (size_t k = 0; k < p->n; k++)
                sep |= p->segs[k].has_sep;
            FUZZ_CHECK(sep, "%s: parameter '%s' holds a '/' no \"%%2F\" made", what, q->name);
        }
    }
}

static void check_slices(const corio__match *m, corio_strv raw, const char *scratch) {
    for (size_t i = 0; i < m->nparams; i++) {
        const char *v = m->params[i].value.ptr;
        size_t n = m->params[i].value.len;
        bool in_raw = v >= raw.ptr && v + n <= raw.ptr + raw.len;
        bool in_scratch = scratch && v >= scratch && v + n <= scratch + raw.len;
        FUZZ_CHECK(in_raw || in_scratch || n == 0, "parameter %zu points outside the path", i);
    }
}

/* ---- corio_req_query ----------------------------------------------------------------------- */

static bool ref_query(corio_strv q, const char *name, char *out, size_t *len) {
    if (q.len == 0)
        return false;
    size_t i = 0;
    for (;;) {
        const char *amp = memchr(q.ptr + i, '&', q.len - i);
        size_t end = amp ? (size_t)(amp - q.ptr) : q.len;
        const char *eq = memchr(q.ptr + i, '=', end - i);
        size_t klen = eq ? (size_t)(eq - q.ptr) - i : end - i;
        char *k = malloc(klen + 1);
        if (!k)
            abort();
        long kn = ref_decode(q.ptr + i, klen, k, true);
        bool hit = kn >= 0 && (size_t)kn == strlen(name) && memcmp(k, name, (size_t)kn) == 0;
        free(k);
        if (hit) {
            if (!eq) {
                *len = 0;
                return true;
            }
            long vn = ref_decode(eq + 1, end - (size_t)(eq + 1 - q.ptr), out, true);
            if (vn < 0)
                return false;
            *len = (size_t)vn;
            return true;
        }
        if (!amp)
            return false;
        i = end + 1;
    }
}

static void check_query(corio_strv q, const char *name) {
    static corio__hconn conn;
    corio__arena_init(&conn.arena);
    conn.req.c = &conn;
    conn.req.query = q;
    corio_strv v = {NULL, 0};
    bool got = corio_req_query(&conn.req, name, &v);
    char *want = malloc(q.len + 1);
    if (!want)
        abort();
    size_t wlen = 0;
    bool expected = ref_query(q, name, want, &wlen);
    FUZZ_CHECK(got == expected, "query '%.*s', name '%s': %d, expected %d", (int)q.len, q.ptr, name,
               got, expected);
    if (got) {
        FUZZ_CHECK(v.len <= q.len && !memchr(v.ptr, '\0', v.len), "query value of %zu bytes",
                   v.len);
        FUZZ_CHECK(v.len == wlen && memcmp(v.ptr, want, wlen) == 0,
                   "query '%.*s', name '%s': '%.*s', expected '%.*s'", (int)q.len, q.ptr, name,
                   (int)v.len, v.ptr, (int)wlen, want);
    }
    free(want);
    corio__arena_reset(&conn.arena);
}

/* ---- the entry point ------------------------------------------------------------------- */

static void check_raw(corio_strv method, corio_strv raw) {
    /* As dispatch.c calls it: scratch (raw.len bytes) only for a '%'. */
    char *scratch = NULL, *scratch2 = NULL;
    if (memchr(raw.ptr, '%', raw.len)) {
        scratch = malloc(raw.len ? raw.len : 1);
        scratch2 = malloc(raw.len ? raw.len : 1);
        if (!scratch || !scratch2)
            abort();
    }
    corio__match m, m2;
    int rc = corio__router_match_raw(router, method, raw, scratch, &m);
    FUZZ_CHECK(rc == 200 || rc == 404 || rc == 405, "corio__router_match_raw: %d", rc);
    check_slices(&m, raw, scratch);
    int rc2 = corio__router_match_raw(router, method, raw, scratch2, &m2);
    FUZZ_CHECK(rc2 == rc, "a second match differs: %d then %d", rc, rc2);
    FUZZ_CHECK(rc != 200 || (m2.fn == m.fn && m2.arg == m.arg && m2.nparams == m.nparams),
               "a second match found another route");
    FUZZ_CHECK(rc != 405 || strcmp(m.allow, m2.allow) == 0, "a second match allows '%s', not '%s'",
               m2.allow, m.allow);
    for (size_t i = 0; rc == 200 && i < m.nparams; i++)
        FUZZ_CHECK(
            m.params[i].name == m2.params[i].name &&
                m.params[i].value.len == m2.params[i].value.len &&
                memcmp(m.params[i].value.ptr, m2.params[i].value.ptr, m.params[i].value.len) == 0,
            "a second match differs in parameter %zu", i);

    if (raw.len == 0 || raw.ptr[0] != '/')
        FUZZ_CHECK(rc == 404, "a path not starting with '/': %d", rc);

    /* The server's precondition: the whole path decodes. */
    char *decoded = malloc(raw.len + 1);
    if (!decoded)
        abort();
    long dn = ref_decode(raw.ptr, raw.len, decoded, false);
    if (dn >= 0 && raw.len && raw.ptr[0] == '/') {
        FUZZ_CHECK(corio__pct_decode(raw, scratch2 ? scratch2 : decoded, false) == dn,
                   "corio__pct_decode disagrees on the path's length");
        path p;
        expect e;
        split(&p, raw.ptr, raw.len, true);
        if (!p.too_many) {
            reference(&p, method, &e);
            compare("raw", rc, &m, &e, &p);
            expect_release(&e);
        }
        path_release(&p);

        /* The decoded path, matched as it is. */
        corio_strv dp = {decoded, (size_t)dn};
        rc = corio__router_match(router, method, dp, &m);
        check_slices(&m, dp, NULL);
        split(&p, decoded, (size_t)dn, false);
        if (!p.too_many) {
            reference(&p, method, &e);
            compare("decoded", rc, &m, &e, &p);
            expect_release(&e);
        }
        path_release(&p);
    } else if (dn < 0) {
        FUZZ_CHECK(corio__pct_decode(raw, decoded, false) < 0,
                   "corio__pct_decode takes a path the reference refuses");
    }
    free(decoded);
    free(scratch);
    free(scratch2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!router)
        make_router();
    const char *s = (const char *)data, *end = s + size;
    const char *nl = memchr(s, '\n', size);
    const char *line_end = nl ? nl : end;
    const char *sp = memchr(s, ' ', (size_t)(line_end - s) < 24 ? (size_t)(line_end - s) : 24);
    corio_strv method = sp ? (corio_strv){s, (size_t)(sp - s)} : (corio_strv){"GET", 3};
    const char *target = sp ? sp + 1 : s;
    const char *q = memchr(target, '?', (size_t)(line_end - target));
    corio_strv raw = {target, (size_t)((q ? q : line_end) - target)};
    corio_strv query = q ? (corio_strv){q + 1, (size_t)(line_end - q - 1)} : (corio_strv){"", 0};

    /* Exactly the path's bytes, so that a read past it is caught. */
    char *path = malloc(raw.len ? raw.len : 1);
    if (!path)
        abort();
    memcpy(path, raw.ptr, raw.len);
    check_raw(method, (corio_strv){path, raw.len});
    free(path);

    char *name = nl ? fuzz_strndup(nl + 1, (size_t)(end - nl - 1)) : fuzz_strndup("", 0);
    check_query(query, name);
    free(name);
    return 0;
}
