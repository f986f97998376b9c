/* SPDX-License-Identifier: MIT */
/* A todo list as a REST API on PostgreSQL, with a Redis cache in front of
 * its reads:
 *
 *     POST   /todos        {"title": "milk", "done": false}     201, Location: /todos/{id}
 *     GET    /todos        every todo, by id                     200          X-Cache: hit|miss
 *     GET    /todos/{id}   one todo                              200 | 404    X-Cache: hit|miss
 *     PATCH  /todos/{id}   {"title": ...} and/or {"done": ...}   200 | 404
 *     DELETE /todos/{id}                                         204 | 404
 *
 *     todo [--db URI] [--redis HOST:PORT] [--deadline-ms MS] [--cache-ttl-ms MS] [runner flags]
 *
 * The four flags are declared to the runner (corio_app.flags): --help
 * lists them with their defaults and variables, a bad value is refused
 * (exit 2).
 *
 * A todo is {"id": 1, "title": "milk", "done": false, "created_at":
 * "2026-05-01T09:30:00.000Z"}.  A title is a string of 1 to 200 characters,
 * done true or false; a body that is not JSON, holds another field or a bad
 * value is a 400, an unknown id a 404, each with {"error": "..."}.
 *
 * The ideas it shows:
 *  - A transaction scope per request (READ ONLY for reads), on a
 *    connection checked out of a pool (both scopes: corio/pg.h).  Each
 *    write changes its todo and appends a line to todo_log, and the two go
 *    together or not at all: COMMIT when the block ends normally, ROLLBACK
 *    on every other way out.
 *  - A deadline per request: its database work (waiting for a connection,
 *    the statements, COMMIT) runs in a timeout scope of --deadline-ms (2 s).
 *    Past it the statement running is cancelled on the server, the
 *    transaction rolls back, and the client gets a 503 at once, not when
 *    the database gets round to it; a database that cannot be reached is a
 *    503 as well.
 *  - A cache in front of the reads (cache-aside): a GET looks in Redis
 *    first ("todos:all", "todos:<id>"); on a miss it reads PostgreSQL and
 *    stores the JSON it answers for --cache-ttl-ms (30 s).  A write deletes
 *    the entries it changed once it has committed; an entry that escapes
 *    that (see cache_invalidate) is stale for the TTL at most.
 *  - Redis as a help, never a need: each Redis call has 250 ms, and with
 *    Redis down or slow (or without --redis) reads go to PostgreSQL and
 *    writes succeed; the outage is logged once, and the client reconnects
 *    by itself.
 *
 * Each worker process (--workers N) has its own pool and Redis client,
 * made at its first request.
 *
 * --db (or CORIO_DB) is a libpq connection string or URI; without either,
 * libpq's PG* environment variables say where.  The tables are created
 * at start if they are missing (the database must be reachable then).
 * --redis (or CORIO_REDIS): host:port, a socket path or a redis:// URL.
 * `examples/todo/run.sh` runs it against a throwaway PostgreSQL and Redis:
 *
 *     curl -i -d '{"title":"milk"}' localhost:8080/todos
 *     curl -i localhost:8080/todos/1
 */
#include <corio/corio.h>
#include <corio/redis.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(CORIO_HAVE_PG) || !defined(CORIO_HAVE_REDIS)
#error "examples/todo needs corio built with libpq and hiredis (see its CMakeLists.txt)"
#endif

enum {
    MAX_TITLE = 200,        /* characters */
    POOL_SIZE = 8,          /* connections per worker */
    CACHE_TIMEOUT_MS = 250, /* each Redis call; past it the cache is skipped */
    STARTUP_TIMEOUT_MS = 10000,
};

#define LIST_KEY "todos:all"

typedef struct todo_config {
    const char *db;                    /* conninfo or URI; "": libpq's PG* variables */
    const char *redis;                 /* where Redis is, or NULL: no cache */
    int64_t deadline_ms, cache_ttl_ms; /* --deadline-ms, --cache-ttl-ms */
} todo_config;

static todo_config cfg = {.db = "", .deadline_ms = 2000, .cache_ttl_ms = 30000};

/* ---- answers ----------------------------------------------------------------------------- */

/* Sends `len` bytes of JSON text; x_cache ("hit", "miss") or NULL. */
static int reply_text(corio_res *res, int status, const char *text, size_t len,
                      const char *x_cache) {
    int rc = x_cache ? corio_res_header(res, "X-Cache", x_cache) : 0;
    return rc < 0 ? rc : corio_res_send(res, status, "application/json", text, len);
}

/* Sends `doc` (a reference, dropped here); a NULL doc is jansson's out of
 * memory. */
static int reply_json(corio_res *res, int status, json_t *doc) {
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return CORIO_ENOMEM;
    int rc = reply_text(res, status, text, strlen(text), NULL);
    free(text);
    return rc;
}

static int reply_error(corio_res *res, int status, const char *message) {
    return reply_json(res, status, json_pack("{s:s}", "error", message));
}

/* ---- the cache --------------------------------------------------------------------------- */

/* This worker's client (a client belongs to the loop that made it: each
 * worker process makes its own, at its first request), NULL before. */
static corio_redis *redis;
static bool cache_down; /* an outage was logged and has not ended */

/* Logged once per outage, not per request: while Redis is away every
 * request would say the same. */
static void cache_trouble(const char *what) {
    if (!cache_down)
        corio_log(CORIO_LOG_WARN, "redis %s: %s; reads go to PostgreSQL until it is back",
                  cfg.redis, what);
    cache_down = true;
}

/* Why r failed, or what rc says. */
static const char *redis_why(const corio_redis *r, int rc) {
    const char *why = corio_redis_error(r);
    return *why ? why : corio_strerror(rc);
}

static void cache_fine(void) {
    if (cache_down)
        corio_log(CORIO_LOG_INFO, "redis %s: back; caching again", cfg.redis);
    cache_down = false;
}

/* The worker's client when it is ready for commands, else NULL (no cache
 * configured, not connected yet, connection lost).  The client connects
 * in the background and reconnects by itself (Redis may start after this
 * server, or go away and come back): a request never waits for it. */
static corio_redis *cache(void) {
    if (!cfg.redis)
        return NULL;
    if (!redis) {
        corio_redis_opts o = {.connect_timeout_ms = 1000, .connect_in_background = true};
        int rc = corio_redis_connect(&redis, cfg.redis, &o);
        if (rc < 0) { /* a malformed address is refused at start: memory, then */
            cache_trouble(corio_strerror(rc));
            return NULL;
        }
    }
    if (!corio_redis_connected(redis)) {
        const char *why = corio_redis_error(redis);
        if (*why) /* not merely "not yet": an attempt failed, or the connection was lost */
            cache_trouble(why);
        return NULL;
    }
    return redis;
}

/* A failed command: the cache is skipped for this request.  A server's
 * error reply (a key of another type) is not an outage. */
static void cache_failed(int rc, const char *key) {
    if (rc == CORIO_EFAILED)
        corio_log(CORIO_LOG_WARN, "redis %s: %s: refused", cfg.redis, key);
    else if (rc != CORIO_ECANCELED) /* a client gone is no news of Redis */
        cache_trouble(rc == CORIO_ECONNRESET ? redis_why(redis, rc) : corio_strerror(rc));
}

/* The cached value of key (the caller frees it), or NULL: a miss, for
 * whatever reason. */
static corio_redis_reply *cache_get(const char *key) {
    corio_redis *r = cache();
    corio_redis_reply *v = NULL;
    int rc = CORIO_ENOENT;
    if (!r)
        return NULL;
    CORIO_WITH(corio_timeout_scope(CACHE_TIMEOUT_MS)) {
        rc = corio_redis_get(r, &v, key);
    }
    if (rc == 0 || rc == CORIO_ENOENT)
        cache_fine();
    else
        cache_failed(rc, key);
    if (rc == 0)
        return v;
    corio_redis_reply_free(v);
    return NULL;
}

/* Stores len bytes under key for cfg.cache_ttl_ms; a failure only costs
 * the next reader a miss. */
static void cache_put(const char *key, const char *val, size_t len) {
    corio_redis *r = cache();
    int rc = 0;
    if (!r)
        return;
    CORIO_WITH(corio_timeout_scope(CACHE_TIMEOUT_MS)) {
        rc = corio_redis_set(r, key, val, len, (uint64_t)cfg.cache_ttl_ms);
    }
    if (rc == 0)
        cache_fine();
    else
        cache_failed(rc, key);
}

/* Deletes the list's entry and item_key's (if not NULL), after a write.
 * Shielded: a client that leaves once its write committed must not leave
 * the old entries behind.
 *
 * The staleness this leaves: when the DEL fails (Redis down or slow at that
 * moment, but not gone with its memory) the old entries stay, and so does
 * an old value that a reader which missed before this COMMIT stores after
 * this DEL (cache-aside's race).  Either way readers may see the state
 * before this write for cfg.cache_ttl_ms at most: that is the bound the TTL
 * buys, and the reason every entry has one. */
static void cache_invalidate(const char *item_key) {
    CORIO_WITH(corio_shield_scope()) {
        corio_redis *r = cache();
        const char *argv[] = {"DEL", LIST_KEY, item_key};
        corio_redis_reply *rep = NULL;
        int rc = 0;
        if (!r)
            break;
        CORIO_WITH(corio_timeout_scope(CACHE_TIMEOUT_MS)) {
            rc = corio_redis_command_argv(r, &rep, item_key ? 3 : 2, argv, NULL);
        }
        corio_redis_reply_free(rep);
        if (rc == 0)
            cache_fine();
        else
            cache_failed(rc, LIST_KEY);
    }
}

/* ---- the database ------------------------------------------------------------------------ */

/* This worker's pool, made by its first request (the pool's keeper task
 * belongs to the loop that pools its first connection: the worker's). */
static corio_pg_pool *pool;

/* One request's database work: its input, and what came back. */
typedef struct job {
    int64_t id;        /* the todo's; set by a create */
    char id_text[24];  /* id in decimal, a statement's parameter */
    const char *title; /* NUL-terminated, or NULL: left as it is */
    int done;          /* 0, 1, or -1: left as it is (false for a create) */
    bool found;        /* the todo exists (get, update, delete) */
    bool changed;      /* a write's statements ran (committed or not) */
    bool no_conn;      /* the failure was the checkout's: no connection */
    json_t *out;       /* the todo or the list, for the answer; the caller's */
    char sqlstate[6];  /* of a statement the server refused */
} job;

typedef int (*db_fn)(corio_pg_conn *db, job *j);

static void job_set_id(job *j, int64_t id) {
    j->id = id;
    snprintf(j->id_text, sizeof j->id_text, "%lld", (long long)id);
}

/* The columns of a todo, as todo_json reads them. */
#define TODO_COLS                                                                                  \
    "id, title, done, to_char(created_at at time zone 'UTC', "                                     \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The length of the first line of a (libpq) message: its others are hints. */
static int first_line(const char *msg) {
    return (int)strcspn(msg, "\n");
}

/* Runs one prepared statement (prepared on each connection at its first
 * use); *r receives the result, or it is freed when r is NULL.  A
 * statement the server refuses is logged, and its SQLSTATE kept in j:
 * after the transaction's ROLLBACK the connection's record says less. */
static int run(corio_pg_conn *db, job *j, corio_pg_result **r, const char *sql, size_t nparams,
               const char *const *params) {
    corio_pg_result *res;
    int rc = corio_pg_query_prepared(db, &res, sql, nparams, params);
    if (rc == CORIO_EFAILED) {
        snprintf(j->sqlstate, sizeof j->sqlstate, "%s", corio_pg_sqlstate(db));
        const char *msg = corio_pg_error(db);
        corio_log_peer(CORIO_LOG_WARN, "postgresql: %.*s", first_line(msg), msg);
    }
    if (rc == 0 && r)
        *r = res;
    else
        corio_pg_result_free(res);
    return rc;
}

/* Row `row` of a TODO_COLS result as {"id", "title", "done", "created_at"};
 * NULL when out of memory. */
static json_t *todo_json(const corio_pg_result *r, size_t row) {
    int64_t id = 0;
    bool done = false;
    corio_pg_int64(r, row, 0, &id); /* NOT NULL columns: cannot fail */
    corio_pg_bool(r, row, 2, &done);
    return json_pack("{s:I,s:s,s:b,s:s}", "id", (json_int_t)id, "title", corio_pg_text(r, row, 1),
                     "done", done, "created_at", corio_pg_text(r, row, 3));
}

/* The one row of r, if there is one, into j->out. */
static int take_row(job *j, corio_pg_result *r) {
    j->found = corio_pg_result_rows(r) == 1;
    if (j->found && !(j->out = todo_json(r, 0)))
        return CORIO_ENOMEM;
    return 0;
}

/* The other half of every write: its line in todo_log. */
static int log_change(corio_pg_conn *db, job *j, const char *op) {
    const char *params[] = {j->id_text, op};
    return run(db, j, NULL, "insert into todo_log (todo_id, op) values ($1, $2)", 2, params);
}

static int db_list(corio_pg_conn *db, job *j) {
    corio_pg_result *r = NULL;
    int rc = run(db, j, &r, "select " TODO_COLS " from todos order by id", 0, NULL);
    if (rc < 0)
        return rc;
    j->out = json_array();
    for (size_t i = 0; rc == 0 && i < corio_pg_result_rows(r); i++)
        if (!j->out || json_array_append_new(j->out, todo_json(r, i)) != 0)
            rc = CORIO_ENOMEM;
    corio_pg_result_free(r);
    return rc;
}

static int db_get(corio_pg_conn *db, job *j) {
    const char *params[] = {j->id_text};
    corio_pg_result *r = NULL;
    int rc = run(db, j, &r, "select " TODO_COLS " from todos where id = $1", 1, params);
    if (rc == 0) {
        rc = take_row(j, r);
        corio_pg_result_free(r);
    }
    return rc;
}

static int tx_create(corio_pg_conn *db, job *j) {
    const char *params[] = {j->title, j->done == 1 ? "true" : "false"};
    corio_pg_result *r = NULL;
    int rc = run(db, j, &r, "insert into todos (title, done) values ($1, $2) returning " TODO_COLS,
                 2, params);
    if (rc < 0)
        return rc;
    j->changed = true;
    int64_t id = 0;
    corio_pg_int64(r, 0, 0, &id);
    job_set_id(j, id);
    rc = take_row(j, r);
    corio_pg_result_free(r);
    return rc < 0 ? rc : log_change(db, j, "create");
}

static int tx_update(corio_pg_conn *db, job *j) {
    const char *params[] = {j->id_text, j->title, j->done < 0 ? NULL : j->done ? "true" : "false"};
    corio_pg_result *r = NULL;
    int rc = run(db, j, &r,
                 "update todos set title = coalesce($2, title), "
                 "done = coalesce($3::boolean, done) where id = $1 returning " TODO_COLS,
                 3, params);
    if (rc < 0)
        return rc;
    rc = take_row(j, r);
    corio_pg_result_free(r);
    if (rc < 0 || !j->found)
        return rc;
    j->changed = true;
    return log_change(db, j, "update");
}

static int tx_delete(corio_pg_conn *db, job *j) {
    const char *params[] = {j->id_text};
    corio_pg_result *r = NULL;
    int rc = run(db, j, &r, "delete from todos where id = $1", 1, params);
    if (rc < 0)
        return rc;
    j->found = corio_pg_result_affected(r) == 1;
    corio_pg_result_free(r);
    if (!j->found)
        return 0;
    j->changed = true;
    return log_change(db, j, "delete");
}

/* Runs fn on a connection of the worker's pool, in a transaction scope
 * (READ ONLY unless `write`: a read that writes by mistake fails), all of
 * it under the request's deadline.  (A lone SELECT would be a transaction
 * of its own without the scope; the scope costs two round trips and keeps
 * every route the same shape.)  Returns fn's result, the checkout's (j->no_conn
 * set), or the transaction's outcome: CORIO_ETIMEDOUT when the deadline
 * passed before COMMIT (rolled back), a COMMIT that failed ... */
static int db_run(db_fn fn, job *j, bool write) {
    if (!pool) {
        corio_pg_pool_opts o = {.max_size = POOL_SIZE};
        int rc = corio_pg_pool_new(&pool, cfg.db, &o);
        if (rc < 0)
            return rc;
    }
    int rc = 0, crc = 0, trc = 0;
    CORIO_WITH(corio_timeout_scope((uint64_t)cfg.deadline_ms)) {
        corio_pg_conn *db;
        corio_pg_tx tx;
        const corio_pg_tx_opts txo = {.read_only = !write};
        CORIO_WITH_RC(crc, corio_pg_checkout(pool, &db)) {
            CORIO_WITH_RC(trc, corio_pg_transaction(&tx, db, &txo)) {
                if ((rc = fn(db, j)) < 0) {
                    corio_scope_fail(rc); /* ROLLBACK */
                    break;
                }
            } /* COMMIT, unless the deadline passed meanwhile */
            if (trc < 0)
                rc = trc; /* BEGIN failed */
            else if (rc == 0 && (rc = corio_pg_tx_result(&tx)) == CORIO_EFAILED)
                snprintf(j->sqlstate, sizeof j->sqlstate, "%s", corio_pg_sqlstate(db));
        }
        if (crc < 0) {
            const char *msg = corio_pg_error(NULL);
            j->no_conn = true;
            if (crc != CORIO_ECANCELED && crc != CORIO_ETIMEDOUT) /* logged by db_failed */
                corio_log_peer(CORIO_LOG_WARN, "postgresql: no connection: %.*s", first_line(msg),
                               *msg ? msg : corio_strerror(crc));
        }
    }
    return crc < 0 ? crc : rc;
}

/* Answers a failed db_run: 503 when the database could not be reached in
 * time (no connection, a lost one, the deadline, a server shutting down),
 * 500 when it refused the statement. */
static int db_failed(corio_req *req, corio_res *res, int rc, const job *j) {
    const char *s = j->sqlstate;
    corio_strv m = corio_req_method(req), path = corio_req_path(req);
    char safe[128];
    corio_log_escape(safe, sizeof safe, path.ptr, path.len);
    switch (rc) {
    case CORIO_ECANCELED: /* the client went away (or the server is stopping) */
    case CORIO_ENOMEM:    /* the server's 500 */
        return rc;
    case CORIO_ETIMEDOUT:
        corio_log_peer(CORIO_LOG_WARN, "%.*s %s: the database did not answer within %llu ms",
                       (int)m.len, m.ptr, safe, (unsigned long long)cfg.deadline_ms);
        return reply_error(res, 503, "the database did not answer within the deadline");
    case CORIO_EFAILED:
        /* Connection exceptions (08), insufficient resources (53), operator
         * intervention (57: a shutdown) are the database's unavailability. */
        if (!j->no_conn && strncmp(s, "08", 2) != 0 && strncmp(s, "53", 2) != 0 &&
            strncmp(s, "57", 2) != 0)
            return reply_error(res, 500, "the database refused the request");
        /* fall through */
    default:             /* no connection, a lost one (CORIO_ECONNREFUSED, _ECONNRESET ...) */
        if (!j->no_conn) /* a checkout's failure is logged already */
            corio_log_peer(CORIO_LOG_WARN, "%.*s %s: database: %s", (int)m.len, m.ptr, safe,
                           corio_strerror(rc));
        return reply_error(res, 503, "the database is unavailable");
    }
}

/* ---- requests ---------------------------------------------------------------------------- */

/* The {id} of the route as a positive number; 0 if it is not one. */
static int64_t todo_id(const corio_req *req) {
    corio_strv v;
    if (!corio_req_param(req, "id", &v) || v.len == 0 || v.len > 18)
        return 0;
    int64_t id = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return 0;
        id = id * 10 + (v.ptr[i] - '0');
    }
    return id;
}

/* The number of characters of a UTF-8 string (jansson has checked it). */
static size_t utf8_chars(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* Checks one field of the body into j; returns NULL or what is wrong. */
static const char *take_field(corio_req *req, const char *key, json_t *v, job *j) {
    if (strcmp(key, "done") == 0) {
        if (!json_is_boolean(v))
            return "\"done\" must be true or false";
        j->done = json_is_true(v);
        return NULL;
    }
    if (strcmp(key, "title") != 0)
        return "unknown field: a todo has \"title\" and \"done\"";
    if (!json_is_string(v))
        return "\"title\" must be a string";
    size_t len = json_string_length(v), chars = utf8_chars(json_string_value(v));
    if (chars == 0)
        return "\"title\" must not be empty";
    if (chars > MAX_TITLE)
        return "\"title\" is longer than 200 characters";
    char *t = corio_req_alloc(req, len + 1);
    if (!t)
        return "out of memory";
    memcpy(t, json_string_value(v), len + 1);
    j->title = t;
    return NULL;
}

/* Reads the body into j->title and j->done (unchanged when absent): for a
 * create the title is required, for an update one of the two.  Returns 0,
 * 1 after answering 400 (413 for a body too large), or a negative code. */
static int read_fields(corio_req *req, corio_res *res, job *j, bool create) {
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
    const char *bad = NULL, *key;
    char msg[256];
    json_t *v;
    if (!doc) {
        snprintf(msg, sizeof msg, "invalid JSON: %s (line %d, column %d)", err.text, err.line,
                 err.column);
        bad = msg;
    } else if (!json_is_object(doc)) {
        bad = "the body must be a JSON object";
    } else {
        json_object_foreach(doc, key, v) {
            if ((bad = take_field(req, key, v, j)) != NULL)
                break;
        }
    }
    if (!bad && create && !j->title)
        bad = "\"title\" is required";
    if (!bad && !create && !j->title && j->done < 0)
        bad = "nothing to change: give \"title\", \"done\" or both";
    json_decref(doc);
    if (!bad)
        return 0;
    rc = reply_error(res, 400, bad);
    return rc < 0 ? rc : 1;
}

/* Answers a read from PostgreSQL (`doc`, dropped here), after storing it
 * in the cache under key: stored before answered, so the next request,
 * from any client, finds it. */
static int reply_fresh(corio_res *res, json_t *doc, const char *key) {
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return CORIO_ENOMEM;
    size_t len = strlen(text);
    cache_put(key, text, len);
    int rc = reply_text(res, 200, text, len, "miss");
    free(text);
    return rc;
}

static int reply_cached(corio_res *res, corio_redis_reply *hit) {
    size_t len;
    const char *text = corio_redis_reply_str(hit, &len);
    int rc = reply_text(res, 200, text, len, "hit");
    corio_redis_reply_free(hit);
    return rc;
}

static void item_key(char *key, size_t cap, int64_t id) {
    snprintf(key, cap, "todos:%lld", (long long)id);
}

/* ---- handlers ---------------------------------------------------------------------------- */

static int todos_list(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    corio_redis_reply *hit = cache_get(LIST_KEY);
    if (hit)
        return reply_cached(res, hit);
    job j = {.done = -1};
    int rc = db_run(db_list, &j, false);
    if (rc < 0) {
        json_decref(j.out);
        return db_failed(req, res, rc, &j);
    }
    return reply_fresh(res, j.out, LIST_KEY);
}

static int todo_get(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    job j = {.done = -1};
    job_set_id(&j, todo_id(req));
    if (!j.id)
        return reply_error(res, 404, "no such todo");
    char key[40];
    item_key(key, sizeof key, j.id);
    corio_redis_reply *hit = cache_get(key);
    if (hit)
        return reply_cached(res, hit);
    int rc = db_run(db_get, &j, false);
    if (rc < 0) {
        json_decref(j.out);
        return db_failed(req, res, rc, &j);
    }
    if (!j.found)
        return reply_error(res, 404, "no such todo"); /* not cached: it may come */
    return reply_fresh(res, j.out, key);
}

static int todos_create(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    job j = {.done = -1};
    int rc = read_fields(req, res, &j, true);
    if (rc)
        return rc < 0 ? rc : 0;
    rc = db_run(tx_create, &j, true);
    /* Whatever the outcome, once the statements ran: a key deleted too many
     * costs a miss, one too few a stale read. */
    if (j.changed)
        cache_invalidate(NULL);
    if (rc < 0) {
        json_decref(j.out);
        return db_failed(req, res, rc, &j);
    }
    char location[40];
    snprintf(location, sizeof location, "/todos/%lld", (long long)j.id);
    if ((rc = corio_res_header(res, "Location", location)) < 0) {
        json_decref(j.out);
        return rc;
    }
    return reply_json(res, 201, j.out);
}

static int todo_update(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    job j = {.done = -1};
    job_set_id(&j, todo_id(req));
    if (!j.id)
        return reply_error(res, 404, "no such todo");
    int rc = read_fields(req, res, &j, false);
    if (rc)
        return rc < 0 ? rc : 0;
    rc = db_run(tx_update, &j, true);
    if (j.changed) {
        char key[40];
        item_key(key, sizeof key, j.id);
        cache_invalidate(key);
    }
    if (rc < 0) {
        json_decref(j.out);
        return db_failed(req, res, rc, &j);
    }
    if (!j.found)
        return reply_error(res, 404, "no such todo");
    return reply_json(res, 200, j.out);
}

static int todo_delete(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    job j = {.done = -1};
    job_set_id(&j, todo_id(req));
    if (!j.id)
        return reply_error(res, 404, "no such todo");
    int rc = db_run(tx_delete, &j, true);
    if (j.changed) {
        char key[40];
        item_key(key, sizeof key, j.id);
        cache_invalidate(key);
    }
    if (rc < 0)
        return db_failed(req, res, rc, &j);
    if (!j.found)
        return reply_error(res, 404, "no such todo");
    return corio_res_send(res, 204, NULL, NULL, 0);
}

/* ---- start and stop ---------------------------------------------------------------------- */

static const char *const SCHEMA[] = {
    "set client_min_messages = warning", /* no NOTICE that a table exists */
    "create table if not exists todos (id bigserial primary key, title text not null, "
    "done boolean not null default false, created_at timestamptz not null default now())",
    "create table if not exists todo_log (seq bigserial primary key, todo_id bigint not null, "
    "op text not null, at timestamptz not null default now())",
};

/* Creates the tables if they are missing, before the server starts: a
 * database that cannot be reached then is a failed start (exit 1). */
static int startup(void *arg) {
    (void)arg;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(STARTUP_TIMEOUT_MS)) {
        corio_pg_conn *db;
        if ((rc = corio_pg_connect(&db, cfg.db)) < 0) {
            fprintf(stderr, "todo: --db: %s: %s\n", corio_strerror(rc), corio_pg_error(NULL));
            break;
        }
        for (size_t i = 0; rc == 0 && i < sizeof SCHEMA / sizeof *SCHEMA; i++) {
            corio_pg_result *r;
            if ((rc = corio_pg_query(db, &r, SCHEMA[i], 0, NULL)) < 0)
                fprintf(stderr, "todo: creating the tables: %s\n",
                        rc == CORIO_EFAILED ? corio_pg_error(db) : corio_strerror(rc));
            corio_pg_result_free(r);
        }
        corio_pg_close(db);
    }
    return rc;
}

/* After the server stopped: the pool's memory (its connections were closed
 * when the server's loop ended). */
static int free_pool(void *arg) {
    (void)arg;
    return corio_pg_pool_free(pool);
}

/* Once the flags are parsed (corio_app.setup; not for --help or
 * --version): the tables, before the runner forks its workers. */
static int setup(void *arg) {
    (void)arg;
    return corio_run(startup, NULL) != 0 ? 1 : 0;
}

int main(int argc, char **argv) {
    static const corio_app_flag flags[] = {
        {.name = "db",
         .type = CORIO_APP_FLAG_STRING,
         .target = &cfg.db,
         .env = "CORIO_DB",
         .accepts = "a connection string or URI",
         .default_text = "libpq's PG* variables",
         .help = "PostgreSQL (libpq conninfo or URI)"},
        {.name = "redis",
         .type = CORIO_APP_FLAG_STRING,
         .target = &cfg.redis,
         .env = "CORIO_REDIS",
         .accepts = "HOST:PORT, a socket path or a redis:// URL",
         .default_text = "none: no cache",
         .help = "Redis, the cache in front of the reads"},
        {.name = "deadline-ms",
         .type = CORIO_APP_FLAG_INT,
         .target = &cfg.deadline_ms,
         .min = 1,
         .max = 3600000,
         .accepts = "milliseconds, 1..3600000",
         .help = "deadline of each request's database work"},
        {.name = "cache-ttl-ms",
         .type = CORIO_APP_FLAG_INT,
         .target = &cfg.cache_ttl_ms,
         .min = 1,
         .max = 3600000,
         .accepts = "milliseconds, 1..3600000",
         .help = "how long a cached read is kept"},
    };
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "todo: out of memory\n");
        return 1;
    }
    if (corio_router_add(router, "GET", "/todos", todos_list, NULL) != 0 ||
        corio_router_add(router, "POST", "/todos", todos_create, NULL) != 0 ||
        corio_router_add(router, "GET", "/todos/{id}", todo_get, NULL) != 0 ||
        corio_router_add(router, "PATCH", "/todos/{id}", todo_update, NULL) != 0 ||
        corio_router_add(router, "DELETE", "/todos/{id}", todo_delete, NULL) != 0) {
        fprintf(stderr, "todo: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    corio_app app = {
        .name = "todo",
        .description = "todo list API on PostgreSQL with a Redis cache",
        .default_port = 8080,
        .flags = flags,
        .nflags = sizeof flags / sizeof flags[0],
        .setup = setup,
    };
    corio_http_opts opts = {.max_body = (size_t)64 * 1024, .access_log = true};
    int code = corio_http_app_main(&app, router, &opts, argc, argv); /* frees router */
    if (pool && corio_run(free_pool, NULL) != 0)
        code = code ? code : 1;
    corio_redis_close(redis); /* disconnected when the loop ended */
    return code;
}
