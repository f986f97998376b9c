/* SPDX-License-Identifier: MIT */
/* Router: a tree of path segments.  Each node has literal children, at most
 * one parameter child and an optional trailing-wildcard route; routes hang
 * off nodes by method.  Matching tries literal children before the parameter
 * child, and backtracks, so "/users/me" beats "/users/{id}".
 *
 * Requests are matched on their raw (still percent-encoded) path, one
 * segment at a time, each segment decoded on its own: an encoded slash
 * ("/users/a%2Fb") stays inside its segment, as the client meant, instead of
 * becoming a separator as it would if the whole path were decoded first. */
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "http/metrics_internal.h"
#include "http/router.h"

typedef struct route {
    struct route *next;
    char method[16];
    corio_http_handler fn;
    void *arg;
    corio__mw *mws;
    size_t nmws;
    uint16_t metrics_id; /* corio__metrics_route_id */
} route;

typedef struct node node;
struct node {
    char *segment;  /* literal text, or the parameter's name */
    node *children; /* literal children */
    node *sibling;
    node *param;     /* "{name}" child */
    route *routes;   /* ending here */
    route *wildcard; /* "*" ending here */
};

struct corio_router {
    node root;
    corio__mw *global;
    size_t nglobal;
};

static int append_mw(corio__mw **list, size_t *n, corio_middleware fn, void *arg) {
    if (!fn)
        return CORIO_EINVAL;
    corio__mw *l = realloc(*list, (*n + 1) * sizeof *l);
    if (!l)
        return CORIO_ENOMEM;
    l[*n] = (corio__mw){fn, arg};
    *list = l;
    (*n)++;
    return 0;
}

int corio_router_use(corio_router *r, corio_middleware mw, void *arg) {
    return r ? append_mw(&r->global, &r->nglobal, mw, arg) : CORIO_EINVAL;
}

const corio__mw *corio__router_global(const corio_router *r, size_t *n) {
    *n = r->nglobal;
    return r->global;
}

bool corio_strv_eq(corio_strv v, const char *s) {
    size_t n = strlen(s);
    return v.len == n && memcmp(v.ptr, s, n) == 0;
}

int corio_router_new(corio_router **out) {
    *out = calloc(1, sizeof **out);
    return *out ? 0 : CORIO_ENOMEM;
}

static void free_routes(route *r) {
    while (r) {
        route *next = r->next;
        free(r->mws);
        free(r);
        r = next;
    }
}

static void free_node(node *n) {
    while (n->children) {
        node *c = n->children;
        n->children = c->sibling;
        free_node(c);
        free(c);
    }
    if (n->param) {
        free_node(n->param);
        free(n->param);
    }
    free_routes(n->routes);
    free_routes(n->wildcard);
    free(n->segment);
}

void corio_router_free(corio_router *r) {
    if (!r)
        return;
    free_node(&r->root);
    free(r->global);
    free(r);
}

static bool valid_method(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n >= sizeof(((route *)0)->method))
        return false;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    return true;
}

static node *find_child(node *parent, const char *seg, size_t len, bool param) {
    if (param)
        return parent->param && strlen(parent->param->segment) == len &&
                       memcmp(parent->param->segment, seg, len) == 0
                   ? parent->param
                   : NULL;
    for (node *c = parent->children; c; c = c->sibling)
        if (strlen(c->segment) == len && memcmp(c->segment, seg, len) == 0)
            return c;
    return NULL;
}

/* The child for a segment, made if need be.  NULL with *err: CORIO_EINVAL
 * for a second parameter name at one position, CORIO_ENOMEM. */
static node *child(node *parent, const char *seg, size_t len, bool param, int *err) {
    *err = CORIO_EINVAL;
    if (param) {
        if (parent->param) {
            if (strlen(parent->param->segment) != len ||
                memcmp(parent->param->segment, seg, len) != 0)
                return NULL; /* one parameter name per position */
            return parent->param;
        }
    } else {
        for (node *c = parent->children; c; c = c->sibling)
            if (strlen(c->segment) == len && memcmp(c->segment, seg, len) == 0)
                return c;
    }
    *err = CORIO_ENOMEM;
    node *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->segment = strndup(seg, len);
    if (!c->segment) {
        free(c);
        return NULL;
    }
    if (param) {
        parent->param = c;
    } else {
        c->sibling = parent->children;
        parent->children = c;
    }
    return c;
}

/* Walks (and with `create`, builds) the tree for a pattern.  Returns the
 * route list the pattern ends in, or NULL with *err: CORIO_EINVAL for a bad
 * pattern (or, without `create`, an unknown one), CORIO_ENOMEM. */
static route **route_list(corio_router *r, const char *pattern, bool create, int *err) {
    *err = CORIO_EINVAL;
    if (!r || !pattern || pattern[0] != '/')
        return NULL;
    node *n = &r->root;
    bool wildcard = false;
    const char *p = pattern + 1;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 1 && p[0] == '*' && !slash) {
            wildcard = true;
            break;
        }
        bool param = len >= 2 && p[0] == '{' && p[len - 1] == '}';
        if (param) {
            p++;
            len -= 2;
        }
        if (len == 0 || memchr(p, '{', len) || memchr(p, '}', len) || memchr(p, '*', len))
            return NULL;
        n = create ? child(n, p, len, param, err) : find_child(n, p, len, param);
        if (!n)
            return NULL;
        *err = CORIO_EINVAL; /* what a later NULL means, unless child says */
        p += len + (param ? 1 : 0);
        if (*p == '/')
            p++;
        else
            break;
    }
    return wildcard ? &n->wildcard : &n->routes;
}

int corio_router_add(corio_router *r, const char *method, const char *pattern,
                     corio_http_handler fn, void *arg) {
    if (!method || !fn || !valid_method(method))
        return CORIO_EINVAL;
    int err;
    route **list = route_list(r, pattern, true, &err);
    if (!list)
        return err; /* CORIO_EINVAL, or CORIO_ENOMEM for a node */
    for (route *e = *list; e; e = e->next)
        if (strcmp(e->method, method) == 0)
            return CORIO_EALREADY;
    route *e = calloc(1, sizeof *e);
    if (!e)
        return CORIO_ENOMEM;
    strcpy(e->method, method);
    e->metrics_id = corio__metrics_route_id(method, pattern);
    e->fn = fn;
    e->arg = arg;
    e->next = *list;
    *list = e;
    return 0;
}

int corio_route_use(corio_router *r, const char *method, const char *pattern, corio_middleware mw,
                    void *arg) {
    if (!method)
        return CORIO_EINVAL;
    int err;
    route **list = route_list(r, pattern, false, &err);
    for (route *e = list ? *list : NULL; e; e = e->next)
        if (strcmp(e->method, method) == 0)
            return append_mw(&e->mws, &e->nmws, mw, arg);
    return CORIO_ENOENT;
}

static const route *find_method(const route *list, corio_strv method) {
    const route *get = NULL;
    for (const route *e = list; e; e = e->next) {
        if (corio_strv_eq(method, e->method))
            return e;
        if (strcmp(e->method, "GET") == 0)
            get = e;
    }
    return corio_strv_eq(method, "HEAD") ? get : NULL;
}

/* Whether the Allow list names method: as a whole entry, not inside one
 * ("UNLOCK" does not name LOCK). */
static bool allows(const char *allow, const char *method) {
    size_t n = strlen(method);
    for (const char *a = allow; *a;) {
        size_t l = strcspn(a, ",");
        if (l == n && memcmp(a, method, n) == 0)
            return true;
        a += l;
        a += strspn(a, ", ");
    }
    return false;
}

/* Appends method to the Allow list, once, and whole or not at all. */
static void allow_add(corio__match *m, const char *method) {
    size_t used = strlen(m->allow), n = strlen(method);
    if (allows(m->allow, method) || used + 2 + n >= sizeof m->allow)
        return;
    if (used) {
        memcpy(m->allow + used, ", ", 2);
        used += 2;
    }
    memcpy(m->allow + used, method, n + 1);
}

static void add_allow(corio__match *m, const route *list) {
    for (const route *e = list; e; e = e->next) {
        allow_add(m, e->method);
        if (strcmp(e->method, "GET") == 0)
            allow_add(m, "HEAD");
    }
}

/* Where decoded segments go: scratch has the raw path's size, and a segment
 * starting at raw offset i decodes to scratch + i (decoding never lengthens),
 * so the segments of one path never overlap.  scratch NULL: the path is
 * matched as it is (already decoded, or free of escapes). */
typedef struct decoder {
    const char *raw;
    char *scratch;
} decoder;

static corio_strv decode(const decoder *d, const char *p, size_t len) {
    if (!d->scratch || !memchr(p, '%', len))
        return (corio_strv){p, len};
    char *dst = d->scratch + (p - d->raw);
    long n = corio__pct_decode((corio_strv){p, len}, dst, false);
    /* The server has checked that the whole path decodes; a segment cannot
     * end inside an escape, since '/' is not a hex digit. */
    return n < 0 ? (corio_strv){p, len} : (corio_strv){dst, (size_t)n};
}

/* Returns 200 (found), 405 (path found, method not) or 404. */
static int match(const node *n, const char *p, const char *end, corio_strv method, corio__match *m,
                 const decoder *d) {
    if (p == end) {
        const route *e = find_method(n->routes, method);
        if (e) {
            m->fn = e->fn;
            m->arg = e->arg;
            m->mws = e->mws;
            m->nmws = e->nmws;
            m->metrics_id = e->metrics_id;
            return 200;
        }
        if (n->routes || n->wildcard) {
            add_allow(m, n->routes);
            add_allow(m, n->wildcard);
            if (!n->wildcard)
                return 405;
        }
    } else {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *seg_end = slash ? slash : end;
        const char *next = slash ? slash + 1 : end; /* "a/" ends at the node of "a" */
        corio_strv seg = decode(d, p, (size_t)(seg_end - p));
        int best = 404;
        for (const node *c = n->children; c; c = c->sibling) {
            if (corio_strv_eq(seg, c->segment)) {
                int rc = match(c, next, end, method, m, d);
                if (rc == 200)
                    return rc;
                if (rc == 405)
                    best = 405;
            }
        }
        if (n->param && seg.len > 0 && m->nparams < CORIO__MAX_PARAMS) {
            m->params[m->nparams].name = n->param->segment;
            m->params[m->nparams].value = seg;
            m->nparams++;
            int rc = match(n->param, next, end, method, m, d);
            if (rc == 200)
                return rc;
            m->nparams--;
            if (rc == 405)
                best = 405;
        }
        if (best == 405 && !n->wildcard)
            return 405;
    }
    if (n->wildcard) {
        const route *e = find_method(n->wildcard, method);
        if (e && m->nparams < CORIO__MAX_PARAMS) {
            m->params[m->nparams].name = "*";
            m->params[m->nparams].value = decode(d, p, (size_t)(end - p));
            m->nparams++;
            m->fn = e->fn;
            m->arg = e->arg;
            m->mws = e->mws;
            m->nmws = e->nmws;
            m->metrics_id = e->metrics_id;
            return 200;
        }
        add_allow(m, n->wildcard);
        return 405;
    }
    return 404;
}

static int match_root(const corio_router *r, corio_strv method, corio_strv path, corio__match *m,
                      const decoder *d) {
    m->fn = NULL;
    m->mws = NULL;
    m->nmws = 0;
    m->nparams = 0;
    m->allow[0] = '\0';
    if (path.len == 0 || path.ptr[0] != '/')
        return 404;
    return match(&r->root, path.ptr + 1, path.ptr + path.len, method, m, d);
}

int corio__router_match(const corio_router *r, corio_strv method, corio_strv path,
                        corio__match *m) {
    decoder d = {path.ptr, NULL};
    return match_root(r, method, path, m, &d);
}

int corio__router_match_raw(const corio_router *r, corio_strv method, corio_strv raw_path,
                            char *scratch, corio__match *m) {
    decoder d = {raw_path.ptr, scratch};
    return match_root(r, method, raw_path, m, &d);
}
