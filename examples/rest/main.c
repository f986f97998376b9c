/* SPDX-License-Identifier: MIT */
/* An in-memory REST API of items {"id": n, "name": "...", "qty": n}:
 *
 *     GET    /items        the list                       200
 *     POST   /items        create from a JSON body        201, Location: /items/{id}
 *     GET    /items/{id}   one item                       200 | 404
 *     PUT    /items/{id}   replace name and qty           200 | 404
 *     DELETE /items/{id}   remove                         204 | 404
 *
 * Bad JSON or a missing field is a 400 with {"error": "..."}, a body over
 * 64 KiB a 413.  JSON is parsed and built with jansson.
 *
 * The ideas it shows:
 *  - A lock held across an await.  Each change is written through to a
 *    "backend" (here a corio_yield(), where a real program would await a
 *    database), and other requests run meanwhile.  The store's lock is held
 *    for the whole read-await-write, with CORIO_WITH(corio_lock_scope()), so
 *    two POSTs never take the same id and no reader sees half an update;
 *    remove the scope and concurrent POSTs get duplicate ids.  The scope
 *    releases the lock on every way out, a cancelled request included (its
 *    client went away), which leaves the store as it was.
 *  - Middleware: an access log around every request (method, path, status,
 *    microseconds) and CORS (Access-Control-Allow-Origin: *, and OPTIONS
 *    preflights answered without reaching a route).
 *
 *     ./rest --port 8080 &
 *     curl -i -d '{"name":"bolt","qty":3}' localhost:8080/items
 *
 * The store lives in the process: run it with --workers 1 (the default).
 */
#include <corio/corio.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the store --------------------------------------------------------------------------- */

typedef struct item {
    json_int_t id, qty;
    char *name; /* owned */
} item;

typedef struct store {
    corio_lock lock; /* guards everything below, across awaits */
    item *items;     /* sorted by id (ids only grow, so appending keeps the order) */
    size_t n, cap;
    json_int_t next_id;
} store;

static item *store_find(store *st, json_int_t id) {
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->items[mid].id == id)
            return &st->items[mid];
        if (st->items[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int store_append(store *st, item it) {
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 16;
        item *p = realloc(st->items, cap * sizeof *p);
        if (!p)
            return CORIO_ENOMEM;
        st->items = p;
        st->cap = cap;
    }
    st->items[st->n++] = it;
    return 0;
}

static void store_remove(store *st, item *it) {
    free(it->name);
    size_t i = (size_t)(it - st->items);
    memmove(it, it + 1, (st->n - i - 1) * sizeof *it);
    st->n--;
}

static void store_release(store *st) {
    for (size_t i = 0; i < st->n; i++)
        free(st->items[i].name);
    free(st->items);
}

/* Stands in for a write-through to a database: an await, during which every
 * other request goes on. */
static int backend_write(const item *it) {
    (void)it;
    return corio_yield();
}

/* ---- access log -------------------------------------------------------------------------- */

/* corio_res does not report the status it sent, so every answer of this
 * program goes through reply(), which notes the status in the log record of
 * the request in flight on that response. */
typedef struct access_rec {
    struct access_rec *next;
    const corio_res *res;
    int status;
} access_rec;

static access_rec *in_flight; /* one loop per process: no locking */

static int reply(corio_res *res, int status, const char *ctype, const char *body, size_t len) {
    for (access_rec *r = in_flight; r; r = r->next)
        if (r->res == res)
            r->status = status;
    return corio_res_send(res, status, ctype, body, len);
}

static int access_log(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)arg;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    access_rec rec = {.next = in_flight, .res = res};
    in_flight = &rec;
    int rc = corio_next_call(next);
    for (access_rec **p = &in_flight; *p; p = &(*p)->next)
        if (*p == &rec) {
            *p = rec.next;
            break;
        }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long us = (t1.tv_sec - t0.tv_sec) * 1000000LL + (t1.tv_nsec - t0.tv_nsec) / 1000;
    char status[8] = "-"; /* answered by the server: 404, 405, a failed handler's 500 */
    if (rec.status)
        snprintf(status, sizeof status, "%d", rec.status);
    /* The decoded path is the client's.  corio_log already writes control
     * bytes as \xNN (no forged line, no terminal escape); corio_log_escape
     * also escapes quotes, backslashes and non-ASCII bytes, and cuts it. */
    corio_strv m = corio_req_method(req), path = corio_req_path(req);
    char safe[512];
    corio_log_escape(safe, sizeof safe, path.ptr, path.len);
    corio_log(CORIO_LOG_INFO, "%.*s %s %s %lldus", (int)m.len, m.ptr, safe, status, us);
    return rc;
}

/* ---- CORS -------------------------------------------------------------------------------- */

/* Any origin may call the API; an OPTIONS request is a browser's preflight
 * and is answered here, before routing. */
static int cors(corio_req *req, corio_res *res, corio_next *next, void *arg) {
    (void)arg;
    int rc = corio_res_header(res, "Access-Control-Allow-Origin", "*");
    if (rc)
        return rc;
    if (corio_strv_eq(corio_req_method(req), "OPTIONS")) {
        if ((rc = corio_res_header(res, "Access-Control-Allow-Methods",
                                   "GET, POST, PUT, DELETE, OPTIONS")) != 0 ||
            (rc = corio_res_header(res, "Access-Control-Allow-Headers", "Content-Type")) != 0 ||
            (rc = corio_res_header(res, "Access-Control-Max-Age", "600")) != 0)
            return rc;
        return reply(res, 204, NULL, NULL, 0);
    }
    /* Let scripts read the Location of a 201. */
    if ((rc = corio_res_header(res, "Access-Control-Expose-Headers", "Location")) != 0)
        return rc;
    return corio_next_call(next);
}

/* ---- JSON in and out --------------------------------------------------------------------- */

/* Sends `doc` (a reference, dropped here) as the body.  A NULL doc is
 * jansson's out-of-memory. */
static int reply_json(corio_res *res, int status, json_t *doc) {
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return CORIO_ENOMEM;
    int rc = reply(res, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

static int reply_error(corio_res *res, int status, const char *message) {
    return reply_json(res, status, json_pack("{s:s}", "error", message));
}

static json_t *item_json(const item *it) {
    return json_pack("{s:I,s:s,s:I}", "id", it->id, "name", it->name, "qty", it->qty);
}

/* Reads the body as {"name": non-empty string, "qty": integer >= 0}.  Returns
 * 0 and sets *name (malloc'ed, the caller's) and *qty; 1 after answering 400;
 * or a negative code (the client went away, out of memory). */
static int read_item(corio_req *req, corio_res *res, char **name, json_int_t *qty) {
    corio_strv body;
    int rc = corio_req_body(req, &body);
    if (rc == CORIO_ERANGE) { /* a chunked body past max_body */
        rc = reply_error(res, 413, "body too large");
        return rc < 0 ? rc : 1;
    }
    if (rc < 0)
        return rc;
    json_error_t err;
    json_t *doc = json_loadb(body.ptr, body.len, 0, &err);
    if (!doc) {
        char msg[256];
        snprintf(msg, sizeof msg, "invalid JSON: %s (line %d, column %d)", err.text, err.line,
                 err.column);
        rc = reply_error(res, 400, msg);
        return rc < 0 ? rc : 1;
    }
    const char *s = NULL;
    json_int_t q = -1;
    if (json_unpack(doc, "{s:s,s:I}", "name", &s, "qty", &q) != 0 || !*s || q < 0) {
        json_decref(doc);
        rc = reply_error(res, 400, "need {\"name\": non-empty string, \"qty\": integer >= 0}");
        return rc < 0 ? rc : 1;
    }
    *name = strdup(s);
    *qty = q;
    json_decref(doc);
    return *name ? 0 : CORIO_ENOMEM;
}

/* The {id} of the route, as a positive number; 0 if it is not one. */
static json_int_t item_id(const corio_req *req) {
    corio_strv v;
    if (!corio_req_param(req, "id", &v) || v.len == 0 || v.len > 18)
        return 0;
    json_int_t id = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return 0;
        id = id * 10 + (v.ptr[i] - '0');
    }
    return id;
}

/* ---- handlers ---------------------------------------------------------------------------- */

static int items_list(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    store *st = arg;
    json_t *list = NULL;
    int rc;
    /* Built under the lock, sent after it: a slow client must not hold up
     * every writer. */
    CORIO_WITH_RC(rc, corio_lock_scope(&st->lock)) {
        list = json_array();
        for (size_t i = 0; list && i < st->n; i++)
            if (json_array_append_new(list, item_json(&st->items[i])) != 0) {
                json_decref(list);
                list = NULL;
            }
    }
    return rc < 0 ? rc : reply_json(res, 200, list);
}

static int items_create(corio_req *req, corio_res *res, void *arg) {
    store *st = arg;
    char *name;
    json_int_t qty;
    int rc = read_item(req, res, &name, &qty);
    if (rc)
        return rc < 0 ? rc : 0;
    item it = {.qty = qty, .name = name};
    json_t *doc = NULL;
    int lrc;
    CORIO_WITH_RC(lrc, corio_lock_scope(&st->lock)) {
        it.id = st->next_id;     /* read the next id ...           */
        rc = backend_write(&it); /* ... await (others run here) ... */
        if (rc == 0)
            rc = store_append(st, it); /* ... and take it: still ours */
        if (rc == 0) {
            st->next_id = it.id + 1;
            name = NULL; /* the store's now */
            doc = item_json(&it);
        }
    }
    free(name);
    if (lrc < 0 || rc < 0) {
        json_decref(doc);
        return lrc < 0 ? lrc : rc;
    }
    char location[48];
    snprintf(location, sizeof location, "/items/%lld", (long long)it.id);
    if ((rc = corio_res_header(res, "Location", location)) != 0) {
        json_decref(doc);
        return rc;
    }
    return reply_json(res, 201, doc);
}

static int items_get(corio_req *req, corio_res *res, void *arg) {
    store *st = arg;
    json_t *doc = NULL;
    bool found = false;
    int rc;
    CORIO_WITH_RC(rc, corio_lock_scope(&st->lock)) {
        item *it = store_find(st, item_id(req));
        found = it != NULL;
        if (found)
            doc = item_json(it);
    }
    if (rc < 0)
        return rc;
    return found ? reply_json(res, 200, doc) : reply_error(res, 404, "no such item");
}

static int items_put(corio_req *req, corio_res *res, void *arg) {
    store *st = arg;
    char *name;
    json_int_t qty;
    int rc = read_item(req, res, &name, &qty);
    if (rc)
        return rc < 0 ? rc : 0;
    json_t *doc = NULL;
    bool found = false;
    int lrc;
    CORIO_WITH_RC(lrc, corio_lock_scope(&st->lock)) {
        item *it = store_find(st, item_id(req));
        if (!it)
            break; /* leaves the scope: the lock is released */
        found = true;
        item next = {.id = it->id, .qty = qty, .name = name};
        rc = backend_write(&next);
        if (rc < 0)
            break;
        /* `it` still points at the item: nobody else changed the store. */
        char *old = it->name;
        *it = next;
        name = old; /* freed below */
        doc = item_json(it);
    }
    free(name);
    if (lrc < 0 || rc < 0) {
        json_decref(doc);
        return lrc < 0 ? lrc : rc;
    }
    return found ? reply_json(res, 200, doc) : reply_error(res, 404, "no such item");
}

static int items_delete(corio_req *req, corio_res *res, void *arg) {
    store *st = arg;
    bool found = false;
    int rc = 0, lrc;
    CORIO_WITH_RC(lrc, corio_lock_scope(&st->lock)) {
        item *it = store_find(st, item_id(req));
        if (!it)
            break;
        found = true;
        if ((rc = backend_write(it)) == 0)
            store_remove(st, it);
    }
    if (lrc < 0 || rc < 0)
        return lrc < 0 ? lrc : rc;
    return found ? reply(res, 204, NULL, NULL, 0) : reply_error(res, 404, "no such item");
}

int main(int argc, char **argv) {
    static store st = {.next_id = 1};
    corio_lock_init(&st.lock);
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "rest: out of memory\n");
        return 1;
    }
    if (corio_router_use(router, access_log, NULL) != 0 ||
        corio_router_use(router, cors, NULL) != 0 ||
        corio_router_add(router, "GET", "/items", items_list, &st) != 0 ||
        corio_router_add(router, "POST", "/items", items_create, &st) != 0 ||
        corio_router_add(router, "GET", "/items/{id}", items_get, &st) != 0 ||
        corio_router_add(router, "PUT", "/items/{id}", items_put, &st) != 0 ||
        corio_router_add(router, "DELETE", "/items/{id}", items_delete, &st) != 0) {
        fprintf(stderr, "rest: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    corio_app app = {
        .name = "rest",
        .description = "in-memory CRUD API of items (run with --workers 1: one store per process)",
        .default_port = 8080,
    };
    corio_http_opts opts = {.max_body = 64 * 1024};
    int code = corio_http_app_main(&app, router, &opts, argc, argv); /* frees router */
    store_release(&st);
    return code;
}
