/* SPDX-License-Identifier: MIT */
/* The TechEmpower Framework Benchmarks' test types on corio:
 *
 *     GET /plaintext              Hello, World!                      text/plain
 *     GET /json                   {"message":"Hello, World!"}        application/json
 *     GET /db                     {"id":N,"randomNumber":M}          one random World row
 *     GET /queries?queries=N      [{...}, ...]                       N random rows, one batch
 *     GET /updates?queries=N      [{...}, ...]                       N rows read, changed, written
 *     GET /fortunes               <!DOCTYPE html>...                 Fortune rows + 1, sorted
 *     GET /cached-queries?count=N [{...}, ...]                       N rows of a cache of World
 *
 *     techempower [--db URI] [--db-init] [--db-pool N] [--db-timeout MS] [runner flags]
 *
 * The four flags are declared to the runner (corio_app.flags): --help
 * lists them with their defaults, a bad value is refused (exit 2).
 * --db (or CORIO_DB) is a libpq connection string or URI; without it only
 * /plaintext and /json are served.  --db-init creates the tables World(id,
 * randomnumber) with 10,000 rows and Fortune(id, message) with TechEmpower's
 * 12 rows where they are missing (rows already there are kept), before
 * serving.  Every database route runs under a deadline of --db-timeout
 * (2000 ms) on a connection of a per-worker pool of --db-pool (8)
 * connections; a failure is a 503 (no connection, deadline) or a 500 (the
 * server refused), with a one-line body, and is logged.
 *
 * The N queries of /queries go as one batch (libpq's pipeline mode: one
 * round trip) of a prepared statement.  /updates reads its rows the same
 * way, gives each a new random number, and writes them back as one atomic
 * batch of prepared UPDATEs, in the order of their ids: two requests that
 * update the same rows lock them in the same order, so they cannot
 * deadlock.  /db and /fortunes run a prepared statement each.  The rules:
 * https://github.com/TechEmpower/FrameworkBenchmarks/wiki/Project-Information-Framework-Tests-Overview
 */
#include <corio/corio.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define WORLD_ROWS 10000
#define MAX_QUERIES 500

typedef struct te_config {
    const char *db; /* conninfo, or NULL: no database routes */
    bool db_init;
    int64_t pool_size;  /* --db-pool */
    int64_t timeout_ms; /* --db-timeout */
} te_config;

static te_config cfg = {.pool_size = 8, .timeout_ms = 2000};

/* ---- random numbers ----------------------------------------------------------------------- */

/* xorshift64*, one state per process: workers are forked, so a fork
 * reseeds the child (else every worker would draw the same numbers). */
static uint64_t rng_state;

static void rng_seed(void) {
    uint64_t s = 0;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s)
        s = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15u ^ (uint64_t)getpid();
    rng_state = s ? s : 0x2545f4914f6cdd1du;
}

/* A number in 1..10000. */
static int rand_world(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint32_t x = (uint32_t)((rng_state * 0x2545f4914f6cdd1du) >> 32);
    return (int)(((uint64_t)x * WORLD_ROWS) >> 32) + 1;
}

/* ---- output helpers ----------------------------------------------------------------------- */

/* Writes v in decimal at p (11 bytes at most); returns the end. */
static char *put_int(char *p, int v) {
    unsigned u = (unsigned)v;
    if (v < 0) {
        *p++ = '-';
        u = 0u - u;
    }
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_str(char *p, const char *s, size_t len) {
    memcpy(p, s, len);
    return p + len;
}
#define PUT_LIT(p, lit) put_str((p), (lit), sizeof(lit) - 1)

typedef struct world {
    int id, rn;
} world;

/* The longest {"id":N,"randomNumber":M} plus a comma: N and M of 11 bytes
 * ("-2147483648": a table changed by hand may hold any int). */
#define WORLD_JSON_MAX 46

static char *put_world(char *p, const world *w) {
    p = PUT_LIT(p, "{\"id\":");
    p = put_int(p, w->id);
    p = PUT_LIT(p, ",\"randomNumber\":");
    p = put_int(p, w->rn);
    *p++ = '}';
    return p;
}

static int send_json(corio_res *res, const char *body, size_t len) {
    return corio_res_send(res, 200, "application/json", body, len);
}

/* Sends the rows as a JSON array. */
static int send_worlds(corio_req *req, corio_res *res, const world *w, size_t n) {
    char *buf = corio_req_alloc(req, n * WORLD_JSON_MAX + 2);
    if (!buf)
        return CORIO_ENOMEM;
    char *p = buf;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        p = put_world(p, &w[i]);
    }
    *p++ = ']';
    return send_json(res, buf, (size_t)(p - buf));
}

/* The `name` query parameter as TechEmpower reads it: missing, not an
 * integer or below 1 is 1, above 500 is 500. */
static size_t query_count(corio_req *req, const char *name) {
    corio_strv v;
    if (!corio_req_query(req, name, &v) || v.len == 0)
        return 1;
    size_t i = v.ptr[0] == '-' || v.ptr[0] == '+' ? 1 : 0;
    if (i == v.len)
        return 1;
    size_t n = 0;
    for (; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return 1;
        if (n <= MAX_QUERIES)
            n = n * 10 + (size_t)(v.ptr[i] - '0');
    }
    if (v.ptr[0] == '-' || n < 1)
        return 1;
    return n > MAX_QUERIES ? MAX_QUERIES : n;
}

/* ---- /plaintext and /json ----------------------------------------------------------------- */

static int plaintext(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "Hello, World!");
}

/* Serialized per request, as the rules ask (not a constant body). */
static int json(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    static const char message[] = "Hello, World!";
    char buf[64], *p = buf;
    p = PUT_LIT(p, "{\"message\":\"");
    p = put_str(p, message, sizeof message - 1);
    p = PUT_LIT(p, "\"}");
    return send_json(res, buf, (size_t)(p - buf));
}

/* ---- /cached-queries ---------------------------------------------------------------------- */

/* World's random numbers by id, read at start (--db); forked workers share
 * it.  NULL without a database. */
static int32_t *world_cache;

static int cached_queries(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    size_t n = query_count(req, "count");
    world *w = corio_req_alloc(req, n * sizeof *w);
    if (!w)
        return CORIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        w[i].id = rand_world();
        w[i].rn = world_cache[w[i].id];
    }
    return send_worlds(req, res, w, n);
}

#ifdef CORIO_HAVE_PG
/* ---- the database ------------------------------------------------------------------------- */

static const char SELECT_WORLD[] = "select randomnumber from world where id = $1";
static const char UPDATE_WORLD[] = "update world set randomnumber = $2 where id = $1";
static const char SELECT_FORTUNES[] = "select id, message from fortune";

/* This worker's pool, made by its first request (the pool's keeper task
 * belongs to the loop that pools its first connection: the worker's). */
static corio_pg_pool *pool;

static int worker_pool(corio_pg_pool **out) {
    if (!pool) {
        corio_pg_pool_opts o = {.max_size = (size_t)cfg.pool_size};
        int rc = corio_pg_pool_new(&pool, cfg.db, &o);
        if (rc < 0)
            return rc;
    }
    *out = pool;
    return 0;
}

/* A database step: runs on a checked-out connection under the request's
 * deadline. */
typedef int (*db_fn)(corio_pg_conn *db, void *arg);

/* Runs fn(db, arg) on a connection of the pool, the checkout and fn
 * bounded by --db-timeout.  Returns fn's result or the checkout's error. */
static int with_db(db_fn fn, void *arg) {
    corio_pg_pool *p;
    int rc = worker_pool(&p), crc = 0;
    if (rc < 0)
        return rc;
    CORIO_WITH(corio_timeout_scope((uint64_t)cfg.timeout_ms)) {
        corio_pg_conn *db;
        CORIO_WITH_RC(crc, corio_pg_checkout(p, &db)) {
            rc = fn(db, arg);
        }
    }
    return crc < 0 ? crc : rc;
}

/* Answers a failed database step: 503 when the database could not be
 * reached in time, 500 when it refused; the cause is logged (rate-limited:
 * a database down under load would flood the log otherwise).  A request
 * cancelled (its client gone, the drain deadline) is no database failure:
 * its code goes back to the server, which knows why. */
static int db_failed(corio_req *req, corio_res *res, int rc) {
    if (rc == CORIO_ECANCELED)
        return rc;
    corio_strv path = corio_req_path(req);
    corio_log_peer(CORIO_LOG_WARN, "%.*s: database: %s", (int)path.len, path.ptr,
                   corio_strerror(rc));
    switch (rc) {
    case CORIO_ENOMEM:
        return rc; /* the server's 500 */
    case CORIO_ETIMEDOUT:
    case CORIO_ECONNREFUSED:
    case CORIO_ECONNRESET:
    case CORIO_ECONNABORTED:
    case CORIO_ECLOSED:
    case CORIO_ENOTFOUND:
        return corio_res_text(res, 503, "database unavailable\n");
    default: /* the server refused (CORIO_EFAILED), a row missing (CORIO_ENOENT) */
        return corio_res_text(res, 500, "database error\n");
    }
}

/* The random number of the one row of a "select randomnumber" result.
 * CORIO_ENOENT when the row is missing (an uninitialised table). */
static int read_rn(const corio_pg_result *r, int *rn) {
    int64_t v;
    if (corio_pg_result_rows(r) != 1)
        return CORIO_ENOENT;
    int rc = corio_pg_int64(r, 0, 0, &v);
    if (rc == 0)
        *rn = (int)v;
    return rc;
}

/* Rows to read or write: w[i].id set by the caller. */
typedef struct worlds {
    world *w;
    size_t n;
} worlds;

/* ---- /db ---------------------------------------------------------------------------------- */

static int db_one(corio_pg_conn *db, void *arg) {
    world *w = arg;
    char id[12];
    const char *params[] = {id};
    snprintf(id, sizeof id, "%d", w->id);
    corio_pg_result *r;
    int rc = corio_pg_query_prepared(db, &r, SELECT_WORLD, 1, params);
    if (rc == 0) {
        rc = read_rn(r, &w->rn);
        corio_pg_result_free(r);
    }
    return rc;
}

static int single_query(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    world w = {.id = rand_world()};
    int rc = with_db(db_one, &w);
    if (rc < 0)
        return db_failed(req, res, rc);
    char buf[WORLD_JSON_MAX];
    return send_json(res, buf, (size_t)(put_world(buf, &w) - buf));
}

/* ---- /queries and /updates ---------------------------------------------------------------- */

/* Reads the random numbers of ws's rows: one batch of the prepared SELECT,
 * one round trip, one implicit transaction (the default: one Sync for the
 * lot, and a failure stops the rest rather than let them run). */
static int read_worlds(corio_pg_conn *db, worlds *ws) {
    corio_pg_batch_opts o = {.prepared = true};
    corio_pg_batch *b;
    int rc = corio_pg_batch_new(&b, &o);
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < ws->n; i++) {
        char id[12];
        const char *params[] = {id};
        snprintf(id, sizeof id, "%d", ws->w[i].id);
        rc = corio_pg_batch_add(b, SELECT_WORLD, 1, params);
    }
    if (rc == 0)
        rc = corio_pg_batch_run(db, b);
    for (size_t i = 0; rc == 0 && i < ws->n; i++) {
        const corio_pg_result *r;
        if ((rc = corio_pg_batch_result(b, i, &r)) == 0)
            rc = read_rn(r, &ws->w[i].rn);
    }
    corio_pg_batch_free(b);
    return rc;
}

/* Writes the n rows w[] back in that order (their ids'): one batch of the
 * prepared UPDATE, one round trip, one transaction (the batch's default),
 * so the locks are taken in the order of the ids. */
static int write_worlds(corio_pg_conn *db, world *const *w, size_t n) {
    corio_pg_batch_opts o = {.prepared = true};
    corio_pg_batch *b;
    int rc = corio_pg_batch_new(&b, &o);
    if (rc < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char id[12], rn[12];
        const char *params[] = {id, rn};
        snprintf(id, sizeof id, "%d", w[i]->id);
        snprintf(rn, sizeof rn, "%d", w[i]->rn);
        rc = corio_pg_batch_add(b, UPDATE_WORLD, 2, params);
    }
    if (rc == 0)
        rc = corio_pg_batch_run(db, b);
    corio_pg_batch_free(b);
    return rc;
}

static int db_queries(corio_pg_conn *db, void *arg) {
    return read_worlds(db, arg);
}

/* Picks n random ids into a request-lifetime array. */
static world *random_worlds(corio_req *req, size_t n) {
    world *w = corio_req_alloc(req, n * sizeof *w);
    for (size_t i = 0; w && i < n; i++)
        w[i].id = rand_world();
    return w;
}

static int queries(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    worlds ws = {.n = query_count(req, "queries")};
    if (!(ws.w = random_worlds(req, ws.n)))
        return CORIO_ENOMEM;
    int rc = with_db(db_queries, &ws);
    if (rc < 0)
        return db_failed(req, res, rc);
    return send_worlds(req, res, ws.w, ws.n);
}

typedef struct update_job {
    worlds ws;
    world **order; /* the rows of ws by id */
} update_job;

/* Reads the rows, gives each a new random number (a row drawn twice gets
 * the same one: the response shows what the table holds) and writes them
 * back in the order of their ids. */
static int db_updates(corio_pg_conn *db, void *arg) {
    update_job *job = arg;
    int rc = read_worlds(db, &job->ws);
    if (rc < 0)
        return rc;
    world **o = job->order;
    for (size_t i = 0; i < job->ws.n; i++)
        o[i]->rn = i > 0 && o[i - 1]->id == o[i]->id ? o[i - 1]->rn : rand_world();
    return write_worlds(db, o, job->ws.n);
}

static int by_id(const void *a, const void *b) {
    int x = (*(world *const *)a)->id, y = (*(world *const *)b)->id;
    return (x > y) - (x < y);
}

static int updates(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    update_job job = {.ws.n = query_count(req, "queries")};
    job.ws.w = random_worlds(req, job.ws.n);
    job.order = corio_req_alloc(req, job.ws.n * sizeof *job.order);
    if (!job.ws.w || !job.order)
        return CORIO_ENOMEM;
    for (size_t i = 0; i < job.ws.n; i++)
        job.order[i] = &job.ws.w[i];
    qsort(job.order, job.ws.n, sizeof *job.order, by_id);
    int rc = with_db(db_updates, &job);
    if (rc < 0)
        return db_failed(req, res, rc);
    return send_worlds(req, res, job.ws.w, job.ws.n);
}

/* ---- /fortunes ---------------------------------------------------------------------------- */

typedef struct fortune {
    int id;
    const char *msg; /* borrowed from the result, or a literal */
    size_t len;
} fortune;

static int db_fortunes(corio_pg_conn *db, void *arg) {
    return corio_pg_query_prepared(db, arg, SELECT_FORTUNES, 0, NULL);
}

static int by_message(const void *a, const void *b) {
    const fortune *x = a, *y = b;
    int c = memcmp(x->msg, y->msg, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Writes s HTML-escaped (& < > " ') at p; at most 6 bytes per byte. */
static char *put_html(char *p, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        switch (s[i]) {
        case '&':
            p = PUT_LIT(p, "&amp;");
            break;
        case '<':
            p = PUT_LIT(p, "&lt;");
            break;
        case '>':
            p = PUT_LIT(p, "&gt;");
            break;
        case '"':
            p = PUT_LIT(p, "&quot;");
            break;
        case '\'':
            p = PUT_LIT(p, "&#39;");
            break;
        default:
            *p++ = s[i];
        }
    }
    return p;
}

static const char FORTUNES_HEAD[] = "<!DOCTYPE html><html><head><title>Fortunes</title></head>"
                                    "<body><table><tr><th>id</th><th>message</th></tr>";
static const char FORTUNES_TAIL[] = "</table></body></html>";
static const char FORTUNE_EXTRA[] = "Additional fortune added at request time.";

/* The page of fortunes f[0..n), sorted here.  NULL when out of memory. */
static char *render_fortunes(corio_req *req, fortune *f, size_t n, size_t *len) {
    qsort(f, n, sizeof *f, by_message);
    size_t cap = sizeof FORTUNES_HEAD + sizeof FORTUNES_TAIL;
    for (size_t i = 0; i < n; i++)
        cap += 6 * f[i].len + 40;
    char *buf = corio_req_alloc(req, cap), *p = buf;
    if (!buf)
        return NULL;
    p = PUT_LIT(p, FORTUNES_HEAD);
    for (size_t i = 0; i < n; i++) {
        p = PUT_LIT(p, "<tr><td>");
        p = put_int(p, f[i].id);
        p = PUT_LIT(p, "</td><td>");
        p = put_html(p, f[i].msg, f[i].len);
        p = PUT_LIT(p, "</td></tr>");
    }
    p = PUT_LIT(p, FORTUNES_TAIL);
    *len = (size_t)(p - buf);
    return buf;
}

static int fortunes(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_pg_result *r = NULL;
    int rc = with_db(db_fortunes, &r);
    if (rc < 0)
        return db_failed(req, res, rc);
    size_t rows = corio_pg_result_rows(r), n = 0;
    fortune *f = corio_req_alloc(req, (rows + 1) * sizeof *f);
    for (size_t i = 0; f && i < rows; i++) {
        int64_t id;
        if (corio_pg_int64(r, i, 0, &id) != 0 || !corio_pg_text(r, i, 1))
            continue; /* cannot happen: both columns are NOT NULL */
        f[n++] = (fortune){(int)id, corio_pg_text(r, i, 1), corio_pg_len(r, i, 1)};
    }
    char *page = NULL;
    size_t len = 0;
    if (f) {
        f[n++] = (fortune){0, FORTUNE_EXTRA, sizeof FORTUNE_EXTRA - 1};
        page = render_fortunes(req, f, n, &len);
    }
    corio_pg_result_free(r); /* the messages were copied into the page */
    if (!page)
        return CORIO_ENOMEM;
    return corio_res_send(res, 200, "text/html; charset=utf-8", page, len);
}

/* ---- start-up: --db-init and the cache ---------------------------------------------------- */

static const char *const FORTUNE_ROWS[] = {
    "fortune: No such file or directory",
    "A computer scientist is someone who fixes things that aren't broken.",
    "After enough decimal places, nobody gives a damn.",
    "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1",
    "A computer program does what you tell it to do, not what you want it to do.",
    "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen",
    "Any program that runs right is obsolete.",
    "A list is only as strong as its weakest link. — Donald Knuth",
    "Feature: A bug with seniority.",
    "Computers make very fast, very accurate mistakes.",
    "<script>alert(\"This should not be displayed in a browser alert box.\");</script>",
    "フレームワークのベンチマーク",
};

/* Runs one statement and drops its result. */
static int exec(corio_pg_conn *db, const char *sql, size_t nparams, const char *const *params) {
    corio_pg_result *r;
    int rc = corio_pg_query(db, &r, sql, nparams, params);
    if (rc == 0)
        corio_pg_result_free(r);
    else
        fprintf(stderr, "techempower: %s: %s\n", sql, corio_pg_error(db));
    return rc;
}

/* Creates what is missing of the two tables, in one transaction; rows
 * already there are kept (a second --db-init adds nothing). */
static int init_tables(corio_pg_conn *db) {
    int rc = 0, txrc;
    corio_pg_tx tx;
    CORIO_WITH_RC(txrc, corio_pg_transaction(&tx, db, NULL)) {
        rc = exec(db,
                  "create table if not exists world (id integer not null primary key, "
                  "randomnumber integer not null default 0)",
                  0, NULL);
        if (rc == 0)
            rc = exec(db,
                      "insert into world (id, randomnumber) select x, least(floor(random() * "
                      "10000 + 1), 10000) from generate_series(1, 10000) as x "
                      "on conflict (id) do nothing",
                      0, NULL);
        if (rc == 0)
            rc = exec(db,
                      "create table if not exists fortune (id integer not null primary key, "
                      "message varchar(2048) not null)",
                      0, NULL);
        for (size_t i = 0; rc == 0 && i < sizeof FORTUNE_ROWS / sizeof *FORTUNE_ROWS; i++) {
            char id[12];
            const char *params[] = {id, FORTUNE_ROWS[i]};
            snprintf(id, sizeof id, "%zu", i + 1);
            rc = exec(db,
                      "insert into fortune (id, message) values ($1, $2) "
                      "on conflict (id) do nothing",
                      2, params);
        }
        if (rc < 0)
            return corio_scope_fail(rc);
    }
    if (txrc < 0)
        return txrc;
    if ((rc = corio_pg_tx_result(&tx)) < 0)
        fprintf(stderr, "techempower: --db-init: COMMIT: %s\n", corio_pg_error(db));
    return rc;
}

/* Fills world_cache from the table. */
static int load_cache(corio_pg_conn *db) {
    corio_pg_result *r;
    int rc = corio_pg_query(db, &r, "select id, randomnumber from world", 0, NULL);
    if (rc < 0) {
        fprintf(stderr, "techempower: reading World: %s\n", corio_pg_error(db));
        return rc;
    }
    world_cache = calloc(WORLD_ROWS + 1, sizeof *world_cache);
    if (!world_cache)
        rc = CORIO_ENOMEM;
    for (size_t i = 0; rc == 0 && i < corio_pg_result_rows(r); i++) {
        int64_t id, rn;
        if (corio_pg_int64(r, i, 0, &id) == 0 && corio_pg_int64(r, i, 1, &rn) == 0 && id >= 1 &&
            id <= WORLD_ROWS)
            world_cache[id] = (int32_t)rn;
    }
    corio_pg_result_free(r);
    return rc;
}

/* The start-up task: --db-init, then the cache.  Runs before the runner
 * forks its workers. */
static int startup(void *arg) {
    (void)arg;
    corio_pg_conn *db;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(60000)) {
        if ((rc = corio_pg_connect(&db, cfg.db)) < 0) {
            fprintf(stderr, "techempower: --db: %s\n", corio_pg_error(NULL));
            break;
        }
        if (cfg.db_init)
            rc = init_tables(db);
        if (rc == 0)
            rc = load_cache(db);
        corio_pg_close(db);
    }
    return rc;
}

/* After the server stopped (one process, no workers): frees the pool. */
static int free_pool(void *arg) {
    (void)arg;
    return corio_pg_pool_free(pool);
}
#endif /* CORIO_HAVE_PG */

/* ---- main --------------------------------------------------------------------------------- */

/* Once the flags are parsed (corio_app.setup; not for --help or
 * --version): --db-init, the cache and the database routes, before the
 * runner forks its workers.  Returns 0, or the exit code after a line on
 * stderr. */
static int setup(void *arg) {
    corio_router *router = arg;
    if (cfg.db_init && !cfg.db) {
        fprintf(stderr, "techempower: --db-init needs --db\n");
        return 2;
    }
    if (!cfg.db)
        return 0;
#ifdef CORIO_HAVE_PG
    if (corio_run(startup, NULL) != 0)
        return 1;
    static const struct {
        const char *path;
        corio_http_handler fn;
    } routes[] = {{"/db", single_query},
                  {"/queries", queries},
                  {"/updates", updates},
                  {"/fortunes", fortunes},
                  {"/cached-queries", cached_queries}};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
        if (corio_router_add(router, "GET", routes[i].path, routes[i].fn, NULL) != 0) {
            fprintf(stderr, "techempower: cannot build the router\n");
            return 1;
        }
    return 0;
#else
    (void)router;
    (void)cached_queries;
    fprintf(stderr, "techempower: --db: this build has no PostgreSQL client (libpq-dev was "
                    "not found when corio was configured)\n");
    return 2;
#endif
}

int main(int argc, char **argv) {
    static const corio_app_flag flags[] = {
        {.name = "db",
         .type = CORIO_APP_FLAG_STRING,
         .target = &cfg.db,
         .env = "CORIO_DB",
         .accepts = "a connection string or URI",
         .help = "PostgreSQL (libpq conninfo); without it only /plaintext and /json"},
        {.name = "db-init",
         .type = CORIO_APP_FLAG_BOOL,
         .target = &cfg.db_init,
         .help = "create and fill the World and Fortune tables where missing"},
        {.name = "db-pool",
         .type = CORIO_APP_FLAG_INT,
         .target = &cfg.pool_size,
         .min = 1,
         .max = 1000,
         .help = "database connections per worker"},
        {.name = "db-timeout",
         .type = CORIO_APP_FLAG_INT,
         .target = &cfg.timeout_ms,
         .min = 1,
         .max = 3600000,
         .accepts = "milliseconds, 1..3600000",
         .help = "deadline of each database route"},
    };
    rng_seed();
    if (pthread_atfork(NULL, NULL, rng_seed) != 0) {
        fprintf(stderr, "techempower: pthread_atfork failed\n");
        return 1;
    }
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "techempower: out of memory\n");
        return 1;
    }
    if (corio_router_add(router, "GET", "/plaintext", plaintext, NULL) != 0 ||
        corio_router_add(router, "GET", "/json", json, NULL) != 0) {
        fprintf(stderr, "techempower: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    corio_app app = {
        .name = "techempower",
        .description = "TechEmpower benchmark routes (/plaintext /json /db /queries /updates "
                       "/fortunes /cached-queries)",
        .default_port = 8080,
        .flags = flags,
        .nflags = sizeof flags / sizeof flags[0],
        .setup = setup,
        .setup_arg = router,
    };
    int code = corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
#ifdef CORIO_HAVE_PG
    if (pool && corio_run(free_pool, NULL) != 0)
        code = code ? code : 1;
#endif
    free(world_cache);
    return code;
}
