/* SPDX-License-Identifier: MIT */
/* Out-of-memory paths of the PostgreSQL and Redis clients (issue 21 §3),
 * the sweep test_oom_http.c makes over the HTTP server and client, here
 * over corio/pg.h and corio/redis.h against real servers on loopback that
 * the test starts itself (pg_server.h, redis_server.h; CORIO_TEST_PG and
 * CORIO_TEST_REDIS name others).  Linked with -Wl,--wrap for malloc,
 * calloc, realloc, free, strdup and strndup (tests/CMakeLists.txt), so
 * every allocation corio's own code makes can be made to fail.
 *
 * WHAT IS NOT SWEPT.  --wrap rewrites only the references of the objects
 * linked into this program: corio's static library and this file.  libpq,
 * hiredis, libuv and OpenSSL are shared libraries whose malloc calls go to
 * libc directly, so their internal allocations (a PGresult, hiredis's
 * reader and reply objects, its output buffer) never fail here; what is
 * swept is every allocation corio makes around them: connections, the
 * conninfo arrays, error records, watchers, futures, tasks and their
 * stacks' bookkeeping, timers, batches, reply and message copies.
 *
 * The PostgreSQL scenario, on one loop: a pool (max 2); a second task
 * checking out a connection of its own meanwhile; on the first: a query
 * with five parameters read with the typed accessors (int64, text,
 * double, bool, NULL), a temporary table, a transaction that commits an
 * insert (read back), a unique violation (CORIO_EFAILED, SQLSTATE 23505,
 * its DETAIL), a prepared statement run twice, a batch of three prepared
 * statements and an independent batch with a unique violation in it;
 * then a checkout of the pooled connection again, corio_pg_retry_tx, and
 * the pool freed.
 *
 * The Redis scenario: a client (SET with a TTL, GET, INCR, a binary-safe
 * SET and GET by corio_redis_command_argv, a WRONGTYPE error reply, a GET
 * of a missing key, DEL), four tasks pipelining SET and GET on the one
 * connection at once, and a subscriber (SUBSCRIBE, PSUBSCRIBE, two
 * messages published by the client and taken with
 * corio_redis_next_message); both closed.
 *
 * Two sweeps per scenario, as in test_oom_http: allocation #N alone fails,
 * for every N from the first to past the last; and every allocation from
 * #N on fails, for every N too.  Each run must:
 *   - get from every call 0 or a documented error: CORIO_ENOMEM; the
 *     server's refusals the scenario provokes (CORIO_EFAILED with SQLSTATE
 *     23505 or a WRONGTYPE reply, CORIO_ENOENT for the missing key, a
 *     batch's CORIO_ECANCELED); a value read back must be the right one;
 *   - end without the scenario's deadline passing (5 s; a clean run takes
 *     some tens of milliseconds): no call may hang on a failure;
 *   - return from corio_run with 0 (the loop closed, no handle left);
 *   - leave the live allocations as they were: the wrappers track every
 *     block they handed out (a pointer set), and the set's size after each
 *     run (the per-thread read-buffer and arena caches emptied, as in
 *     test_oom_http, though these clients use neither) must be its size
 *     after the clean warm-up runs.
 * Under ASan and valgrind the same runs prove nothing leaks or is touched
 * after free on those paths.
 *
 * Failures tolerated by design, that no call reports (counted; printed
 * with CORIO_OOM_BACKENDS_VERBOSE=1, with their call stacks): a failed
 * copy of a server's error message or DETAIL (pg_conn.c dup_trimmed: the
 * record then reads ""; the SQLSTATE is kept in place); a statement the
 * per-connection cache could not remember (pg_batch.c stmt_add: it runs
 * unprepared); and the copy of the host list in corio__pg_params
 * (pg_conninfo.c), which only decides whether a host name needs corio's
 * asynchronous lookup: with 127.0.0.1 nothing changes (with a host name
 * libpq would resolve it itself, blocking: worth an ENOMEM instead).
 *
 * Found by this sweep and fixed: when corio_pg_query (pg_query.c
 * run_query) failed with CORIO_ENOMEM after its statement was sent, the
 * results were left unread and the connection neither drained nor marked
 * broken: the next call failed with CORIO_EFAILED and no SQLSTATE (libpq's
 * "another command is already in progress").  The connection is now marked
 * broken: after a call on it said CORIO_ENOMEM, later calls may fail with
 * CORIO_ECONNABORTED (accepted), never CORIO_EFAILED without a SQLSTATE.
 * Degraded but documented outcomes are accepted and counted too: after a
 * subscriber's message could not be copied the subscriber is over
 * (corio_redis_next_message returns CORIO_ENOMEM from then on).
 *
 * Time: about 80 allocations in a PostgreSQL run and 100 in a Redis run
 * (the PostgreSQL count varies by a few with timing: a wait on the
 * socket makes a future), so some 160 + 200 runs: about 4 s in Release
 * (mostly PostgreSQL's connection start-ups), 6 s under ASan, 19 s under
 * valgrind; no stride is needed.  CORIO_OOM_BACKENDS_STRIDE=K and
 * CORIO_OOM_BACKENDS_FROM_STRIDE=K set one anyway.  CORIO_OOM_BACKENDS_VERBOSE=1 prints the call
 * stack of every silent failure and, for a leak, of every block left behind. */
#include "corio_test.h"

#if defined(CORIO_HAVE_PG) || defined(CORIO_HAVE_REDIS)

#include "base/arena.h"
#include "net/stream_internal.h"

#include <execinfo.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef CORIO_HAVE_PG
#include "pg_server.h"
#include <corio/pg.h>
#endif
#ifdef CORIO_HAVE_REDIS
#include "redis_server.h"
#include <corio/redis.h>
#endif

/* ---- the failing allocator: failing_alloc.h ----------------------------------------------- */

#include "failing_alloc.h"

/* ---- judging a run --------------------------------------------------------------------------- */

#define DEADLINE_MS 5000 /* the scenario's; a clean run takes tens of milliseconds */
#define SLOW_MS 3000     /* a run this long waited for something that never came */

/* What one run saw. */
typedef struct oom_run {
    int reported;     /* calls that reported a failure (CORIO_ENOMEM ...) */
    int checks;       /* values checked and found right */
    void *tainted[4]; /* connections a call left mid-statement on CORIO_ENOMEM */
    char bad[256];    /* the first result no documented failure explains */
} oom_run;

static long scenario_seq; /* makes the keys and channels of each run its own */

static void bad(oom_run *run, int line, const char *what, int rc) {
    if (!run->bad[0])
        snprintf(run->bad, sizeof run->bad, "line %d: %s: %s (%d)", line, what, corio_err_name(rc),
                 rc);
}

/* A call's result: true on 0; a documented failure (out of memory) is
 * counted, anything else recorded as wrong. */
static bool call_ok(oom_run *run, int line, const char *what, int rc) {
    if (rc == 0)
        return true;
    if (rc == CORIO_ENOMEM)
        run->reported++;
    else
        bad(run, line, what, rc);
    return false;
}
#define CALL(run, expr) call_ok((run), __LINE__, #expr, (expr))

static void want(oom_run *run, int line, const char *what, bool cond) {
    if (cond)
        run->checks++;
    else
        bad(run, line, what, 0);
}
#define WANT(run, cond) want((run), __LINE__, #cond, (cond))

/* Await: t's end, however the await itself fails (the task's state lives
 * in the caller's frame); drops the reference. */
static void join(corio_task *t) {
    corio_future *f = corio_task_future(t);
    while (!corio_future_done(f))
        if (corio_await(t) != 0 && !corio_future_done(f))
            corio_yield();
    corio_task_release(t);
}

/* The scenario's deadline and how long it took; rc is the timeout
 * scope's enter result. */
static void judge_scope(oom_run *run, int rc, uint64_t t0) {
    if (rc == CORIO_ENOMEM)
        run->reported++;
    else if (rc != 0)
        bad(run, __LINE__, "corio_timeout_scope", rc);
    if (corio_now() - t0 >= SLOW_MS)
        bad(run, __LINE__, "the scenario took a timeout's time", CORIO_ETIMEDOUT);
}

/* ---- PostgreSQL ------------------------------------------------------------------------------ */

#ifdef CORIO_HAVE_PG

static bool pg_tainted(oom_run *run, const corio_pg_conn *db) {
    for (size_t i = 0; i < sizeof run->tainted / sizeof run->tainted[0]; i++)
        if (db && run->tainted[i] == db)
            return true;
    return false;
}

static void pg_taint(oom_run *run, corio_pg_conn *db, bool on) {
    for (size_t i = 0; i < sizeof run->tainted / sizeof run->tainted[0]; i++)
        if (on ? !run->tainted[i] && !pg_tainted(run, db) : run->tainted[i] == db) {
            run->tainted[i] = on ? db : NULL;
            return;
        }
}

/* The result of a call on db: as call_ok; after a call on db returned
 * CORIO_ENOMEM, db may be broken: later calls fail with CORIO_ECONNABORTED
 * (see the top of this file). */
static bool pg_ok(oom_run *run, int line, const char *what, corio_pg_conn *db, int rc) {
    if (rc == CORIO_ENOMEM)
        pg_taint(run, db, true);
    if (rc != 0 && pg_tainted(run, db)) {
        if (rc == CORIO_ECONNABORTED) {
            run->reported++;
            return false;
        }
    }
    if (rc != 0 && rc != CORIO_ENOMEM)
        fprintf(stderr, "%s: %s\n", what, corio_pg_error(db));
    return call_ok(run, line, what, rc);
}

/* Await: runs sql, checks nothing but the call; frees the result. */
static bool pg_exec(oom_run *run, int line, corio_pg_conn *db, const char *sql, size_t n,
                    const char *const *params) {
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r, sql, n, params);
    corio_pg_result_free(r);
    return pg_ok(run, line, sql, db, rc);
}

/* Await: a query of one integer, with one parameter, checked. */
static void pg_int(oom_run *run, int line, corio_pg_conn *db, bool prepared, const char *sql,
                   const char *param, int64_t expect) {
    corio_pg_result *r = NULL;
    const char *p[] = {param};
    int rc = prepared ? corio_pg_query_prepared(db, &r, sql, param ? 1 : 0, p)
                      : corio_pg_query(db, &r, sql, param ? 1 : 0, p);
    if (pg_ok(run, line, sql, db, rc)) {
        int64_t v = -1;
        want(run, line, sql, corio_pg_int64(r, 0, 0, &v) == 0 && v == expect);
    }
    corio_pg_result_free(r);
}

/* Await: parameters of five types, read with the typed accessors. */
static void pg_typed(oom_run *run, corio_pg_conn *db) {
    const char *p[] = {"41", "h\xc3\xa9llo, 'world'", "2.5", "t", NULL};
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r, "select $1::int8 + 1, $2::text, $3::float8, $4::bool, $5::text",
                            5, p);
    if (!pg_ok(run, __LINE__, "a query with parameters", db, rc))
        return;
    int64_t i = 0;
    double d = 0;
    bool b = false;
    const char *t = corio_pg_text(r, 0, 1);
    WANT(run, corio_pg_result_rows(r) == 1 && corio_pg_result_cols(r) == 5);
    WANT(run, corio_pg_int64(r, 0, 0, &i) == 0 && i == 42);
    WANT(run, t && strcmp(t, p[1]) == 0 && corio_pg_len(r, 0, 1) == strlen(p[1]));
    WANT(run, corio_pg_double(r, 0, 2, &d) == 0 && d == 2.5);
    WANT(run, corio_pg_bool(r, 0, 3, &b) == 0 && b);
    WANT(run, corio_pg_is_null(r, 0, 4) && corio_pg_int64(r, 0, 4, &i) == CORIO_ENOENT);
    corio_pg_result_free(r);
}

/* A refusal of the server: CORIO_EFAILED, the SQLSTATE, a message, and
 * the DETAIL when it could be copied ("" otherwise: tolerated). */
static void pg_unique_violation(oom_run *run, int line, corio_pg_conn *db, int rc,
                                const corio_pg_result *r, const char *detail) {
    if (rc != CORIO_EFAILED || (pg_tainted(run, db) && !corio_pg_sqlstate(db)[0])) {
        pg_ok(run, line, "a unique violation", db, rc == 0 ? CORIO_EBADMSG : rc);
        return;
    }
    const char *msg = corio_pg_error(db), *det = corio_pg_error_detail(db);
    want(run, line, "no result", r == NULL);
    want(run, line, "SQLSTATE 23505", strcmp(corio_pg_sqlstate(db), "23505") == 0);
    want(run, line, "a message", msg != NULL);
    want(run, line, "the DETAIL or \"\"", det && (!*det || strstr(det, detail)));
}

/* Await: a transaction inserting k = 1; returns the enter's result. */
static int pg_tx(oom_run *run, corio_pg_conn *db, corio_pg_tx *tx) {
    int rc = 0;
    CORIO_WITH_RC(rc, corio_pg_transaction(tx, db, NULL)) {
        const char *p[] = {"1", "one"};
        corio_pg_result *r = NULL;
        if ((rc = corio_pg_query(db, &r, "insert into u values ($1::int, $2) returning k", 2, p)) <
            0)
            return corio_scope_fail(rc);
        WANT(run, corio_pg_result_rows(r) == 1 && corio_pg_result_affected(r) == 1);
        corio_pg_result_free(r);
    }
    return rc;
}

/* Statement i of a batch whose run failed as a whole with rc: its status
 * is rc, or CORIO_EINVAL (not run) when the run was refused before
 * anything was sent (a broken connection). */
static void pg_batch_status(oom_run *run, int line, const corio_pg_batch *b, size_t i, int rc) {
    want(run, line, "a statement's status",
         corio_pg_batch_result(b, i, NULL) == (rc == CORIO_ECONNABORTED ? CORIO_EINVAL : rc));
}

/* Await: a batch of three prepared statements (one transaction). */
static void pg_batch(oom_run *run, corio_pg_conn *db) {
    corio_pg_batch *b = NULL;
    corio_pg_batch_opts bo = {.prepared = true};
    if (!CALL(run, corio_pg_batch_new(&b, &bo)))
        return;
    const char *p3[] = {"3"}, *p4[] = {"4"};
    if (CALL(run, corio_pg_batch_add(b, "select $1::int * 2", 1, p3)) &&
        CALL(run,
             corio_pg_batch_add(b, "insert into u values ($1::int, 'b') returning k", 1, p4)) &&
        CALL(run, corio_pg_batch_add(b, "select count(*) from u where k = $1::int", 1, p4))) {
        WANT(run, corio_pg_batch_size(b) == 3);
        int rc = corio_pg_batch_run(db, b);
        if (pg_ok(run, __LINE__, "corio_pg_batch_run", db, rc)) {
            const corio_pg_result *r[3] = {NULL};
            int64_t v[3] = {0};
            for (size_t i = 0; i < 3; i++)
                WANT(run, corio_pg_batch_result(b, i, &r[i]) == 0 && r[i]);
            WANT(run, corio_pg_int64(r[0], 0, 0, &v[0]) == 0 && v[0] == 6);
            WANT(run, corio_pg_int64(r[1], 0, 0, &v[1]) == 0 && v[1] == 4);
            WANT(run, corio_pg_int64(r[2], 0, 0, &v[2]) == 0 && v[2] == 1);
        } else {
            for (size_t i = 0; i < 3; i++)
                pg_batch_status(run, __LINE__, b, i, rc);
        }
    }
    corio_pg_batch_free(b);
}

/* Await: an independent batch whose first statement is a unique
 * violation: it fails, the second still runs. */
static void pg_batch_failing(oom_run *run, corio_pg_conn *db) {
    corio_pg_batch *b = NULL;
    corio_pg_batch_opts bo = {.independent = true};
    if (!CALL(run, corio_pg_batch_new(&b, &bo)))
        return;
    if (CALL(run, corio_pg_batch_add(b, "insert into u values (5, 'a'), (5, 'b')", 0, NULL)) &&
        CALL(run, corio_pg_batch_add(b, "select 7", 0, NULL))) {
        int rc = corio_pg_batch_run(db, b);
        if (rc == CORIO_EFAILED && !(pg_tainted(run, db) && !corio_pg_sqlstate(db)[0])) {
            const corio_pg_result *r = NULL;
            int64_t v = 0;
            const char *det = corio_pg_batch_error(b, 0);
            WANT(run, corio_pg_batch_result(b, 0, NULL) == CORIO_EFAILED);
            WANT(run, strcmp(corio_pg_batch_sqlstate(b, 0), "23505") == 0);
            WANT(run, det != NULL);
            WANT(run, corio_pg_batch_result(b, 1, &r) == 0 && corio_pg_int64(r, 0, 0, &v) == 0 &&
                          v == 7);
        } else {
            pg_ok(run, __LINE__, "corio_pg_batch_run (a unique violation)", db,
                  rc == 0 ? CORIO_EBADMSG : rc);
            if (rc != 0)
                for (size_t i = 0; i < 2; i++)
                    pg_batch_status(run, __LINE__, b, i, rc);
        }
    }
    corio_pg_batch_free(b);
}

/* Await: what the first checkout does with its connection. */
static void pg_body(oom_run *run, corio_pg_conn *db) {
    pg_typed(run, db);
    if (!pg_exec(run, __LINE__, db, "create temporary table u (k int primary key, v text)", 0,
                 NULL))
        return; /* the rest needs the table */
    corio_pg_tx tx = {0};
    int rc = pg_tx(run, db, &tx);
    if (rc < 0)
        corio_scope_handled();
    int txr = corio_pg_tx_result(&tx);
    if (pg_ok(run, __LINE__, "corio_pg_tx_result", db, txr))
        pg_int(run, __LINE__, db, false, "select count(*) from u where k = $1::int", "1", 1);
    /* ENOMEM: rolled back, or (at COMMIT) of unknown outcome: not checked */
    corio_pg_result *r = (corio_pg_result *)&r;
    rc = corio_pg_query(db, &r, "insert into u values (2, 'a'), (2, 'b')", 0, NULL);
    pg_unique_violation(run, __LINE__, db, rc, rc == CORIO_EFAILED ? r : NULL, "(k)=(2)");
    if (rc == 0)
        corio_pg_result_free(r);
    for (int i = 0; i < 2; i++)
        pg_int(run, __LINE__, db, true, "select $1::int + 100", "5", 105);
    pg_batch(run, db);
    pg_batch_failing(run, db);
}

typedef struct pg_side {
    oom_run *run;
    corio_pg_pool *pool;
} pg_side;

/* A second task: a connection of its own from the pool, meanwhile. */
static int pg_side_task(void *arg) {
    pg_side *s = arg;
    corio_pg_conn *db = NULL;
    int trc = 0, crc = 0;
    uint64_t t0 = corio_now();
    CORIO_WITH_RC(trc, corio_timeout_scope(DEADLINE_MS)) {
        CORIO_WITH_RC(crc, corio_pg_checkout(s->pool, &db)) {
            pg_int(s->run, __LINE__, db, false, "select $1::int * 2", "21", 42);
            pg_taint(s->run, db, false); /* closed at its check-in, its memory reused */
        }
        call_ok(s->run, __LINE__, "corio_pg_checkout (side)", crc);
    }
    judge_scope(s->run, trc, t0);
    return 0;
}

static int pg_retry_body(corio_pg_conn *db, void *arg) {
    oom_run *run = arg;
    corio_pg_result *r = NULL;
    const char *p[] = {"9"};
    int rc = corio_pg_query(db, &r, "select $1::int", 1, p);
    int64_t v = 0;
    if (rc == 0)
        WANT(run, corio_pg_int64(r, 0, 0, &v) == 0 && v == 9);
    corio_pg_result_free(r);
    return rc;
}

static void pg_sequence(oom_run *run, corio_pg_pool *pool) {
    pg_side side = {.run = run, .pool = pool};
    corio_task *t = NULL;
    CALL(run, corio_spawn(&t, "pg-side", pg_side_task, &side));
    corio_pg_conn *db = NULL;
    int rc = 0;
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pg_body(run, db);
        pg_taint(run, db, false);
    }
    call_ok(run, __LINE__, "corio_pg_checkout", rc);
    if (t)
        join(t);
    /* A pooled connection again. */
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pg_int(run, __LINE__, db, true, "select $1::int + 100", "6", 106);
        pg_taint(run, db, false);
    }
    call_ok(run, __LINE__, "corio_pg_checkout (again)", rc);
    CALL(run, corio_pg_retry_tx(pool, NULL, 3, pg_retry_body, run));
}

static int pg_scenario(void *arg) {
    oom_run *run = arg;
    corio_pg_pool *pool = NULL;
    corio_pg_pool_opts po = {.max_size = 2};
    scenario_seq++;
    if (!CALL(run, corio_pg_pool_new(&pool, pg_srv.conninfo, &po)))
        return 0;
    int rc = 0;
    uint64_t t0 = corio_now();
    CORIO_WITH_RC(rc, corio_timeout_scope(DEADLINE_MS)) {
        pg_sequence(run, pool);
    }
    judge_scope(run, rc, t0);
    rc = corio_pg_pool_free(pool);
    if (rc != 0)
        bad(run, __LINE__, "corio_pg_pool_free", rc);
    return 0;
}

#endif /* CORIO_HAVE_PG */

/* ---- Redis ----------------------------------------------------------------------------------- */

#ifdef CORIO_HAVE_REDIS

static redis_server redis_srv;

/* "oomb:<pid>:<run>:<name>": a key or channel of this run. */
static const char *rkey(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "oomb:%d:%ld:%s", (int)getpid(), scenario_seq, name);
    return buf;
}
#define KEY(var, name)                                                                             \
    char var##_buf[96];                                                                            \
    const char *var = rkey(var##_buf, sizeof var##_buf, name)

static bool bytes_are(const char *p, size_t n, const char *s, size_t len) {
    return p && n == len && memcmp(p, s, len) == 0;
}

static bool str_is(const corio_redis_reply *rep, const char *s, size_t len) {
    size_t n = 0;
    const char *p = corio_redis_reply_str(rep, &n);
    return bytes_are(p, n, s, len);
}

/* Await: SET key val (60 s TTL), then GET it back. */
static void redis_set_get(oom_run *run, corio_redis *r, const char *k, const char *val) {
    if (!CALL(run, corio_redis_set(r, k, val, strlen(val), 60000)))
        return;
    corio_redis_reply *rep = NULL;
    if (CALL(run, corio_redis_get(r, &rep, k)))
        WANT(run,
             corio_redis_reply_type(rep) == CORIO_REDIS_STRING && str_is(rep, val, strlen(val)));
    corio_redis_reply_free(rep);
}

static void redis_basics(oom_run *run, corio_redis *r) {
    KEY(k, "string");
    KEY(n, "counter");
    KEY(b, "binary");
    KEY(missing, "missing");
    corio_redis_reply *rep = NULL;
    bool set = CALL(run, corio_redis_set(r, k, "value", 5, 60000));
    if (set && CALL(run, corio_redis_get(r, &rep, k)))
        WANT(run, str_is(rep, "value", 5));
    corio_redis_reply_free(rep);
    int64_t v = 0;
    if (CALL(run, corio_redis_incr(r, n, &v)))
        WANT(run, v == 1);
    /* binary safe, by argv */
    const char bin[] = {'x', '\0', 'y'};
    const char *argv[] = {"SET", b, bin, "PX", "60000"};
    size_t lens[] = {3, strlen(b), sizeof bin, 2, 5};
    rep = NULL;
    bool bset = CALL(run, corio_redis_command_argv(r, &rep, 5, argv, lens));
    if (bset)
        WANT(run, corio_redis_reply_type(rep) == CORIO_REDIS_STATUS && str_is(rep, "OK", 2));
    corio_redis_reply_free(rep);
    const char *get[] = {"GET", b};
    rep = NULL;
    if (bset && CALL(run, corio_redis_command_argv(r, &rep, 2, get, NULL)))
        WANT(run, str_is(rep, bin, sizeof bin));
    corio_redis_reply_free(rep);
    /* an error reply: WRONGTYPE (or, when the SET that made the key a
     * string reported a failure, maybe a push onto a new list) */
    rep = NULL;
    int rc = corio_redis_command(r, &rep, "LPUSH %s x", k);
    if (rc == CORIO_EFAILED) {
        const char *msg = corio_redis_reply_str(rep, NULL);
        WANT(run, corio_redis_reply_type(rep) == CORIO_REDIS_ERROR && msg &&
                      strncmp(msg, "WRONGTYPE", 9) == 0);
    } else if (rc == 0) {
        WANT(run, !set && corio_redis_reply_type(rep) == CORIO_REDIS_INTEGER);
    } else {
        call_ok(run, __LINE__, "LPUSH", rc);
        WANT(run, rep == NULL);
    }
    corio_redis_reply_free(rep);
    rep = (corio_redis_reply *)&rep;
    rc = corio_redis_get(r, &rep, missing);
    if (rc == CORIO_ENOENT)
        WANT(run, rep == NULL);
    else
        call_ok(run, __LINE__, "GET of a missing key", rc == 0 ? CORIO_EBADMSG : rc);
    int64_t removed = -1;
    if (CALL(run, corio_redis_del(r, k, &removed)))
        WANT(run, removed == 1 || !set);
    CALL(run, corio_redis_del(r, n, NULL));
    CALL(run, corio_redis_del(r, b, NULL));
}

#define PIPERS 4

typedef struct piper {
    oom_run *run;
    corio_redis *r;
    int i;
} piper;

/* One of PIPERS tasks whose commands share the connection at once. */
static int piper_task(void *arg) {
    piper *p = arg;
    char name[16], val[32];
    snprintf(name, sizeof name, "pipe:%d", p->i);
    snprintf(val, sizeof val, "value-%d", p->i);
    KEY(k, name);
    redis_set_get(p->run, p->r, k, val);
    CALL(p->run, corio_redis_del(p->r, k, NULL));
    return 0;
}

static void redis_concurrent(oom_run *run, corio_redis *r) {
    piper ps[PIPERS];
    corio_task *ts[PIPERS] = {NULL};
    for (int i = 0; i < PIPERS; i++) {
        ps[i] = (piper){.run = run, .r = r, .i = i};
        CALL(run, corio_spawn(&ts[i], "piper", piper_task, &ps[i]));
    }
    for (int i = 0; i < PIPERS; i++)
        if (ts[i])
            join(ts[i]);
}

/* Await: the next message, checked; false when none came (a failure,
 * counted or recorded). */
static bool redis_expect(oom_run *run, int line, corio_redis_sub *sub, const char *channel,
                         const char *pattern, const char *data) {
    corio_redis_message *m = NULL;
    int rc = corio_redis_next_message(sub, &m);
    if (!call_ok(run, line, "corio_redis_next_message", rc))
        return false;
    want(run, line, "the message",
         bytes_are(m->channel, m->channel_len, channel, strlen(channel)) &&
             (pattern ? bytes_are(m->pattern, m->pattern_len, pattern, strlen(pattern))
                      : m->pattern == NULL) &&
             bytes_are(m->data, m->len, data, strlen(data)));
    corio_redis_message_free(m);
    return true;
}

static void redis_pubsub(oom_run *run, corio_redis *r) {
    KEY(ch, "news");
    KEY(pat, "ev.*");
    KEY(ev, "ev.1");
    corio_redis_sub *sub = NULL;
    corio_redis_opts o = {.connect_timeout_ms = 4000};
    if (!CALL(run, corio_redis_sub_connect(&sub, redis_srv.addr, &o)))
        return;
    const char *chans[] = {ch}, *pats[] = {pat};
    bool subscribed = CALL(run, corio_redis_subscribe(sub, 1, chans));
    bool psubscribed = CALL(run, corio_redis_psubscribe(sub, 1, pats));
    /* A message is expected only after a PUBLISH that said it was
     * delivered: one that reported a failure may have been, or not. */
    bool sure = true, first = false, second = false;
    int64_t receivers = -1;
    if (subscribed) {
        sure = first = CALL(run, corio_redis_publish(r, ch, "one", 3, &receivers));
        if (first)
            WANT(run, receivers == 1);
    }
    if (psubscribed && sure) {
        second = CALL(run, corio_redis_publish(r, ev, "two", 3, &receivers));
        /* 0: the first message could not be copied, and the subscriber
         * ended (its connection closed) before this PUBLISH ran */
        if (second)
            WANT(run, receivers == 1 || (receivers == 0 && corio_redis_sub_status(sub) != 0));
    }
    bool live = true;
    if (first)
        live = redis_expect(run, __LINE__, sub, ch, NULL, "one");
    if (second && live)
        redis_expect(run, __LINE__, sub, ev, pat, "two");
    corio_redis_sub_close(sub);
}

static int redis_scenario(void *arg) {
    oom_run *run = arg;
    corio_redis *r = NULL;
    corio_redis_opts o = {.connect_timeout_ms = 4000};
    scenario_seq++;
    int rc = 0;
    uint64_t t0 = corio_now();
    CORIO_WITH_RC(rc, corio_timeout_scope(DEADLINE_MS)) {
        if (CALL(run, corio_redis_connect(&r, redis_srv.addr, &o))) {
            redis_basics(run, r);
            redis_concurrent(run, r);
            redis_pubsub(run, r);
            WANT(run, corio_redis_pending(r) == 0);
        }
    }
    judge_scope(run, rc, t0);
    corio_redis_close(r);
    return 0;
}

#endif /* CORIO_HAVE_REDIS */

/* ---- the sweeps ------------------------------------------------------------------------------ */

/* Empties the per-thread caches (see the top of this file). */
static void clear_caches(void) {
    corio__stream_rbuf_cache_clear();
    corio__arena_cache_clear();
}

static bool verbose(void) {
    const char *v = getenv("CORIO_OOM_BACKENDS_VERBOSE");
    return v && *v && *v != '0';
}

static long env_long(const char *name, long dflt) {
    const char *v = getenv(name);
    return v && *v ? atol(v) : dflt;
}

static void print_fail_stack(void) {
    backtrace_symbols_fd(fail_stack, fail_stack_depth, STDERR_FILENO);
}

/* Runs the scenario once with allocation #n failing (and, with from, every
 * later one); returns the number of allocations attempted, and fails the
 * test on a wrong result or a leak. */

static long run_once(const char *name, corio_task_fn scenario, long n, bool from, size_t baseline,
                     long *silent) {
    oom_run run = {0};
    pthread_mutex_lock(&alloc_mu);
    alloc_count = 0;
    run_id++;
    fail_at = n;
    fail_from = from;
    fail_stack_depth = 0;
    pthread_mutex_unlock(&alloc_mu);
    int rc = corio_run(scenario, &run);
    clear_caches();
    pthread_mutex_lock(&alloc_mu);
    long made = alloc_count;
    fail_at = -1;
    pthread_mutex_unlock(&alloc_mu);
    const char *mode = from ? "from" : "only";
    if (made <= n)
        return made; /* nothing failed: past the last allocation */
    size_t after = live_now();
    bool wrong = (rc != 0 && rc != CORIO_ENOMEM) || run.bad[0] || after != baseline;
    if (wrong) {
        fprintf(stderr, "%s: allocation #%ld (%s) failing; its call stack:\n", name, n, mode);
        print_fail_stack();
        if (after != baseline)
            live_report();
    }
    if (rc != 0 && rc != CORIO_ENOMEM)
        fail_msg("%s: allocation #%ld (%s) failing: corio_run returned %s", name, n, mode,
                 corio_err_name(rc));
    if (run.bad[0])
        fail_msg("%s: allocation #%ld (%s) failing: %s", name, n, mode, run.bad);
    if (after != baseline)
        fail_msg("%s: allocation #%ld (%s) failing: %zu block(s) live after the run, %zu before",
                 name, n, mode, after, baseline);
    if (rc == 0 && run.reported == 0) {
        (*silent)++;
        if (verbose()) {
            fprintf(stderr, "%s: allocation #%ld (%s) failed and no call reported it:\n", name, n,
                    mode);
            print_fail_stack();
        }
    }
    return made;
}

/* Both sweeps over one scenario, after two clean runs (the first makes
 * process-lifetime state, the second counts the allocations and sets the
 * baseline). */
static void sweep(const char *name, corio_task_fn scenario) {
    capture_stack = true;
    block_stacks = verbose();
    void *warm[1];
    backtrace(warm, 1); /* loads libgcc's unwinder now, not inside a failing run */
    int checks = -1;
    for (int i = 0; i < 2; i++) {
        oom_run run = {0};
        pthread_mutex_lock(&alloc_mu);
        alloc_count = 0;
        pthread_mutex_unlock(&alloc_mu);
        corio_test_run(scenario, &run);
        clear_caches();
        if (run.bad[0])
            fail_msg("%s: clean run: %s", name, run.bad);
        assert_int_equal(run.reported, 0);
        assert_true(checks < 0 || run.checks == checks); /* every value checked, both times */
        checks = run.checks;
    }
    long clean = alloc_count;
    size_t baseline = live_now();
    assert_true(clean > 0);

    long stride = env_long("CORIO_OOM_BACKENDS_STRIDE", 1);
    long from_stride = env_long("CORIO_OOM_BACKENDS_FROM_STRIDE", 1);
    long silent = 0, runs = 0, from_runs = 0;
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    /* A run's allocation count varies a little with timing (a wait on the
     * socket makes a future each time it waits): a run that made fewer
     * than N allocations ends a sweep only once N is past the clean run's
     * count. */
    for (long n = 0;; n += stride) {
        if (run_once(name, scenario, n, false, baseline, &silent) > n)
            runs++;
        else if (n >= clean)
            break;
        assert_true(n < 4 * clean);
    }
    assert_true(runs * stride >= clean / 2); /* the clean run's allocations were reached */
    for (long n = 0;; n += from_stride) {
        if (run_once(name, scenario, n, true, baseline, &silent) > n)
            from_runs++;
        else if (n >= clean)
            break;
        assert_true(n < 4 * clean);
    }
    clock_gettime(CLOCK_MONOTONIC, &ts1);
    fprintf(stderr,
            "%s: %ld allocations and %d checked values in a clean run; single-failure sweep: "
            "%ld runs (stride %ld), from-N-on sweep: %ld runs (stride %ld); %ld failures no "
            "call reported; %.1f s\n",
            name, clean, checks, runs, stride, from_runs, from_stride, silent,
            (double)(ts1.tv_sec - ts0.tv_sec) + (double)(ts1.tv_nsec - ts0.tv_nsec) / 1e9);
}

#ifdef CORIO_HAVE_PG
static void test_every_allocation_failure_in_pg_client(void **state) {
    (void)state;
    if (!pg_srv.up) {
        fprintf(stderr, "test_oom_backends: PostgreSQL skipped: %s\n", pg_srv.skip_why);
        skip();
    }
    sweep("pg", pg_scenario);
}
#endif

#ifdef CORIO_HAVE_REDIS
static bool redis_up;

static void test_every_allocation_failure_in_redis_client(void **state) {
    (void)state;
    if (!redis_up) {
        fprintf(stderr, "test_oom_backends: Redis skipped: %s\n", redis_srv.skip_why);
        skip();
    }
    sweep("redis", redis_scenario);
}
#endif

/* Starts the servers (either may be missing: its test skips). */
static int group_setup(void **state) {
    (void)state;
#ifdef CORIO_HAVE_PG
    int rc = pg_server_start();
    if (rc < 0)
        return -1;
    pg_srv.up = rc == 0;
#endif
#ifdef CORIO_HAVE_REDIS
    int rrc = redis_server_start(&redis_srv, true);
    if (rrc < 0)
        return -1;
    redis_up = rrc == 0;
#endif
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
#ifdef CORIO_HAVE_PG
    pg_server_stop();
#endif
#ifdef CORIO_HAVE_REDIS
    redis_server_remove(&redis_srv);
#endif
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
#ifdef CORIO_HAVE_PG
        cmocka_unit_test(test_every_allocation_failure_in_pg_client),
#endif
#ifdef CORIO_HAVE_REDIS
        cmocka_unit_test(test_every_allocation_failure_in_redis_client),
#endif
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

#else /* built without libpq and hiredis */

int main(void) {
    fprintf(stderr, "test_oom_backends: skipped: corio was built without libpq and hiredis "
                    "(Debian libpq-dev, libhiredis-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
