/* SPDX-License-Identifier: MIT */
/* The PostgreSQL client (corio/pg.h) against a real server that the test
 * starts itself (pg_server.h; CORIO_TEST_PG=<conninfo> uses another). */
#include "corio_test.h"

#ifdef CORIO_HAVE_PG
#include <corio/pg.h>
#include <math.h>
#include <string.h>

#include "pg_server.h"

static void need_server(void) {
    pg_server_need("test_pg", false);
}

/* ---- connect + select 1 -------------------------------------------------------------- */

static int connect_select_one_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = NULL;
    int rc = corio_pg_connect(&db, pg_srv.conninfo);
    SOFT(rc == 0);
    if (rc) {
        fprintf(stderr, "connect: %s: %s\n", corio_err_name(rc), corio_pg_error(NULL));
        return 0;
    }
    corio_pg_result *r = NULL;
    SOFT(corio_pg_query(db, &r, "select 1 as one", 0, NULL) == 0);
    SOFT(corio_pg_result_rows(r) == 1 && corio_pg_result_cols(r) == 1);
    SOFT(r && strcmp(corio_pg_result_col_name(r, 0), "one") == 0);
    int64_t v = 0;
    SOFT(corio_pg_int64(r, 0, 0, &v) == 0 && v == 1);
    SOFT(corio_pg_text(r, 0, 0) && strcmp(corio_pg_text(r, 0, 0), "1") == 0);
    SOFT(corio_pg_int64(r, 1, 0, &v) == CORIO_EINVAL); /* out of range */
    corio_pg_result_free(r);
    /* a statement without rows */
    SOFT(corio_pg_query(db, &r, "create temporary table t (x int)", 0, NULL) == 0);
    SOFT(corio_pg_result_rows(r) == 0);
    corio_pg_result_free(r);
    SOFT(corio_pg_query(db, &r, "insert into t select generate_series(1, 3)", 0, NULL) == 0);
    SOFT(corio_pg_result_affected(r) == 3);
    corio_pg_result_free(r);
    corio_pg_close(db);
    return 0;
}

static void test_pg_connect_and_select_one(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(connect_select_one_main, NULL);
}

/* ---- parameters round trip ------------------------------------------------------------- */

static int params_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = NULL;
    SOFT(corio_pg_connect(&db, pg_srv.conninfo) == 0);
    if (!db)
        return 0;
    const char *params[] = {"héllo, 'world'", "-9223372036854775808", "2.5", "true", NULL};
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r,
                            "select $1::text, $2::int8, $3::float8, $4::bool, $5::text, "
                            "$2::int8 + 0 = -9223372036854775808, 'NaN'::float8, "
                            "'-Infinity'::float8, 12.000::numeric, 99999999999999999999::numeric",
                            5, params);
    SOFT(rc == 0);
    if (rc) {
        fprintf(stderr, "query: %s: %s\n", corio_err_name(rc), corio_pg_error(db));
        corio_pg_close(db);
        return 0;
    }
    SOFT(corio_pg_result_cols(r) == 10);
    SOFT(strcmp(corio_pg_text(r, 0, 0), params[0]) == 0);
    SOFT(corio_pg_len(r, 0, 0) == strlen(params[0]));
    int64_t i = 0;
    SOFT(corio_pg_int64(r, 0, 1, &i) == 0 && i == INT64_MIN);
    double d = 0;
    SOFT(corio_pg_double(r, 0, 2, &d) == 0 && d == 2.5);
    bool b = false;
    SOFT(corio_pg_bool(r, 0, 3, &b) == 0 && b);
    SOFT(corio_pg_bool(r, 0, 5, &b) == 0 && b);
    SOFT(corio_pg_is_null(r, 0, 4));
    SOFT(corio_pg_text(r, 0, 4) == NULL);
    SOFT(corio_pg_int64(r, 0, 4, &i) == CORIO_ENOENT);
    SOFT(corio_pg_double(r, 0, 6, &d) == 0 && isnan(d));
    SOFT(corio_pg_double(r, 0, 7, &d) == 0 && isinf(d) && d < 0);
    SOFT(corio_pg_int64(r, 0, 8, &i) == 0 && i == 12);
    SOFT(corio_pg_int64(r, 0, 9, &i) == CORIO_ERANGE);
    SOFT(corio_pg_int64(r, 0, 0, &i) == CORIO_EINVAL); /* text is not an integer */
    SOFT(corio_pg_bool(r, 0, 1, &b) == CORIO_EINVAL);
    corio_pg_result_free(r);
    /* false, and a float that needs all 17 digits */
    const char *more[] = {"f", "0.1"};
    SOFT(corio_pg_query(db, &r, "select $1::bool, $2::float8 * 3", 2, more) == 0);
    SOFT(corio_pg_bool(r, 0, 0, &b) == 0 && !b);
    SOFT(corio_pg_double(r, 0, 1, &d) == 0 && d == 0.1 * 3);
    corio_pg_result_free(r);
    corio_pg_close(db);
    return 0;
}

static void test_pg_params_round_trip(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(params_main, NULL);
}

/* ---- a server error ------------------------------------------------------------------- */

static int syntax_error_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = NULL;
    SOFT(corio_pg_connect(&db, pg_srv.conninfo) == 0);
    if (!db)
        return 0;
    corio_pg_result *r = (corio_pg_result *)&r;
    SOFT(corio_pg_query(db, &r, "selec 1", 0, NULL) == CORIO_EFAILED);
    SOFT(r == NULL);
    SOFT(strcmp(corio_pg_sqlstate(db), "42601") == 0);
    SOFT(strstr(corio_pg_error(db), "syntax error") != NULL);
    /* an error with a detail: a unique violation */
    SOFT(corio_pg_query(db, &r, "create temporary table u (k int primary key)", 0, NULL) == 0);
    corio_pg_result_free(r);
    SOFT(corio_pg_query(db, &r, "insert into u values (1), (1)", 0, NULL) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(db), "23505") == 0);
    SOFT(strstr(corio_pg_error_detail(db), "(k)=(1)") != NULL);
    /* the connection stays usable, and a success clears the record */
    SOFT(corio_pg_query(db, &r, "select 2", 0, NULL) == 0);
    int64_t v = 0;
    SOFT(corio_pg_int64(r, 0, 0, &v) == 0 && v == 2);
    SOFT(strcmp(corio_pg_sqlstate(db), "") == 0 && strcmp(corio_pg_error(db), "") == 0);
    corio_pg_result_free(r);
    corio_pg_close(db);
    return 0;
}

static void test_pg_syntax_error_has_sqlstate_and_conn_stays_usable(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(syntax_error_main, NULL);
}

/* ---- a query cut short by a deadline, and by a cancel --------------------------------- */

static int timeout_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = NULL;
    SOFT(corio_pg_connect(&db, pg_srv.conninfo) == 0);
    if (!db)
        return 0;
    corio_pg_result *r = NULL;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(200)) {
        rc = corio_pg_query(db, &r, "select pg_sleep(10)", 0, NULL);
    }
    SOFT(rc == CORIO_ETIMEDOUT); /* the deadline ended it; that the server cancelled the
                                  * query (not a broken connection) the next query shows */
    SOFT(r == NULL);
    /* the same connection works at once */
    SOFT(corio_pg_query(db, &r, "select 3", 0, NULL) == 0);
    int64_t v = 0;
    SOFT(corio_pg_int64(r, 0, 0, &v) == 0 && v == 3);
    corio_pg_result_free(r);
    corio_pg_close(db);
    return 0;
}

static void test_pg_query_cancelled_by_deadline_and_conn_reusable(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(timeout_main, NULL);
}

typedef struct sleeper {
    corio_pg_conn *db;
    int rc;
} sleeper;

static int sleeper_task(void *arg) {
    sleeper *s = arg;
    corio_pg_result *r = NULL;
    s->rc = corio_pg_query(s->db, &r, "select pg_sleep(10)", 0, NULL);
    corio_pg_result_free(r);
    return 0;
}

static int cancel_main(void *arg) {
    (void)arg;
    sleeper s = {0};
    SOFT(corio_pg_connect(&s.db, pg_srv.conninfo) == 0);
    if (!s.db)
        return 0;
    corio_task *t = corio_test_spawn("sleeper", sleeper_task, &s);
    SOFT(pg_server_wait_running("select pg_sleep(10)") == 0);
    /* one call at a time */
    corio_pg_result *r = NULL;
    SOFT(corio_pg_query(s.db, &r, "select 1", 0, NULL) == CORIO_EBUSY);
    SOFT(corio_cancel(t) == 0);
    corio_test_join(t);
    SOFT(s.rc == CORIO_ECANCELED);
    SOFT(corio_pg_query(s.db, &r, "select 4", 0, NULL) == 0);
    SOFT(corio_pg_text(r, 0, 0) && strcmp(corio_pg_text(r, 0, 0), "4") == 0);
    corio_pg_result_free(r);
    /* closed by another task mid-query: that call fails with ECLOSED */
    s.rc = 0;
    t = corio_test_spawn("sleeper", sleeper_task, &s);
    SOFT(pg_server_wait_running("select pg_sleep(10)") == 0);
    corio_pg_close(s.db);
    corio_test_join(t);
    SOFT(s.rc == CORIO_ECLOSED);
    return 0;
}

static void test_pg_query_cancelled_by_task_cancel_and_close_mid_query(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(cancel_main, NULL);
}

/* ---- connect failures ---------------------------------------------------------------------- */

static int connect_fail_main(void *arg) {
    (void)arg;
    int port = test_free_port(); /* nothing listens there */
    char ci[128];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d user=postgres dbname=postgres", port);
    corio_pg_conn *db = (corio_pg_conn *)&db;
    SOFT(corio_pg_connect(&db, ci) == CORIO_ECONNREFUSED);
    SOFT(db == NULL);
    SOFT(strstr(corio_pg_error(NULL), "Connection refused") != NULL);
    fprintf(stderr, "test_pg: closed port: %s\n", corio_pg_error(NULL));
    SOFT(corio_pg_connect(&db, "host=127.0.0.1 nonsense=1") == CORIO_EINVAL);
    SOFT(strstr(corio_pg_error(NULL), "nonsense") != NULL);
    SOFT(corio_pg_connect(&db, "host=no-such-host.invalid") < 0);
    SOFT(strstr(corio_pg_error(NULL), "no-such-host.invalid") != NULL);
    return 0;
}

static void test_pg_connect_to_closed_port_fails_clearly(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(connect_fail_main, NULL);
}

/* "localhost": resolved with corio_resolve; each address tried (::1 may refuse). */
static int connect_by_name_main(void *arg) {
    (void)arg;
    char ci[128];
    snprintf(ci, sizeof ci, "host=localhost port=%d user=postgres dbname=postgres", pg_srv.port);
    corio_pg_conn *db = NULL;
    int rc = corio_pg_connect(&db, ci);
    SOFT(rc == 0);
    if (rc)
        fprintf(stderr, "connect: %s: %s\n", corio_err_name(rc), corio_pg_error(NULL));
    corio_pg_result *r = NULL;
    if (db)
        SOFT(corio_pg_query(db, &r, "select 1", 0, NULL) == 0);
    corio_pg_result_free(r);
    corio_pg_close(db);
    return 0;
}

static void test_pg_connect_by_host_name(void **state) {
    (void)state;
    need_server();
    if (!pg_srv.running) { /* CORIO_TEST_PG: its port is not known here */
        fprintf(stderr, "    SKIP: connecting by host name needs the test's own server\n");
        skip();
    }
    corio_test_run_checked(connect_by_name_main, NULL);
}

/* ---- pools and transactions ----------------------------------------------------------------- */

/* Runs sql, dropping its rows; returns corio_pg_query's code. */
static int q(corio_pg_conn *db, const char *sql) {
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r, sql, 0, NULL);
    if (rc < 0 && rc != CORIO_ECANCELED && rc != CORIO_ETIMEDOUT)
        fprintf(stderr, "test_pg: %s: %s: %s (%s)\n", sql, corio_err_name(rc), corio_pg_error(db),
                corio_pg_sqlstate(db));
    corio_pg_result_free(r);
    return rc;
}

/* The integer the one-row, one-column query sql returns, or -1. */
static int64_t q_int(corio_pg_conn *db, const char *sql) {
    corio_pg_result *r = NULL;
    int64_t v = -1;
    if (corio_pg_query(db, &r, sql, 0, NULL) == 0 && corio_pg_int64(r, 0, 0, &v) != 0)
        v = -1;
    corio_pg_result_free(r);
    return v;
}

typedef struct holder {
    corio_pg_pool *pool;
    corio_event go;   /* set: give the connection back */
    int rc;           /* the checkout's */
    int64_t pid;      /* the server process of the connection it got */
    uint64_t got_at;  /* corio_now() when it got one; 0: not yet */
    uint64_t timeout; /* ms of a timeout scope around the checkout; 0: none */
} holder;

/* Checks out a connection and keeps it until h->go is set. */
static int keeper_task(void *arg) {
    holder *h = arg;
    corio_pg_conn *db = NULL;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(h->timeout ? h->timeout : 60000)) {
        CORIO_WITH_RC(rc, corio_pg_checkout(h->pool, &db)) {
            h->got_at = corio_now();
            h->pid = q_int(db, "select pg_backend_pid()");
            corio_event_wait(&h->go);
        }
    }
    h->rc = rc;
    return 0;
}

/* Waits until *v is no longer 0 (a field another task sets), polling:
 * false if it stays 0 for 30 s. */
#define until_set(v) until_set_((const void *)(v), sizeof *(v))

static bool until_set_(const void *v, size_t size) {
    static const char zero[8];
    for (uint64_t t0 = corio_now(); corio_now() - t0 < 30000;) {
        if (memcmp(v, zero, size) != 0)
            return true;
        if (corio_sleep(5) != 0)
            return false;
    }
    return false;
}

static int pool_exhaustion_main(void *arg) {
    (void)arg;
    corio_pg_pool *pool = NULL;
    corio_pg_pool_opts o = {.max_size = 2};
    SOFT(corio_pg_pool_new(&pool, pg_srv.conninfo, &o) == 0);
    holder h[5] = {{0}};
    corio_task *t[5];
    for (int i = 0; i < 5; i++) {
        h[i].pool = pool;
        corio_event_init(&h[i].go);
    }
    h[3].timeout = 150; /* a waiter with a deadline, queued between two without */
    for (int i = 0; i < 5; i++) {
        t[i] = corio_test_spawn("keeper", keeper_task, &h[i]);
        if (i < 2)
            SOFT(until_set(&h[i].pid)); /* the first two are connected */
        else
            SOFT(corio_sleep(20) == 0); /* queued, in this order */
    }
    SOFT(corio_test_join(t[3]) == 0); /* the waiter with a deadline gave up */
    SOFT(h[0].pid != h[1].pid);
    SOFT(!h[2].got_at && !h[4].got_at);
    SOFT(h[3].rc == CORIO_ETIMEDOUT && !h[3].got_at); /* timed out waiting, left the queue */
    SOFT(corio_pg_pool_in_use(pool) == 2);
    /* one comes back: the first waiter (FIFO) gets that very connection */
    corio_event_set(&h[0].go);
    corio_test_join(t[0]);
    SOFT(until_set(&h[2].pid));
    SOFT(!h[4].got_at);
    SOFT(h[2].pid == h[0].pid); /* handed over, no reconnect */
    corio_event_set(&h[1].go);
    corio_test_join(t[1]);
    SOFT(until_set(&h[4].pid));
    SOFT(h[4].pid == h[1].pid);
    corio_event_set(&h[2].go);
    corio_event_set(&h[4].go);
    corio_test_join(t[2]);
    corio_test_join(t[4]);
    SOFT(h[0].rc == 0 && h[1].rc == 0 && h[2].rc == 0 && h[4].rc == 0);
    SOFT(corio_pg_pool_in_use(pool) == 0 && corio_pg_pool_idle(pool) == 2);
    SOFT(corio_pg_pool_free(pool) == 0);
    return 0;
}

static void test_pg_pool_exhaustion_fifo_waiters_and_a_waiter_timing_out(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(pool_exhaustion_main, NULL);
}

static int pool_return_main(void *arg) {
    (void)arg;
    corio_pg_pool *pool = NULL;
    corio_pg_pool_opts o = {.max_size = 1, .check_after_ms = 100};
    SOFT(corio_pg_pool_new(&pool, pg_srv.conninfo, &o) == 0);
    corio_pg_conn *db = NULL;
    int rc = -1;
    int64_t pid1 = -1, pid2 = -1, pid3 = -1, pid4 = -1;
    /* left inside a transaction: closed, not pooled */
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pid1 = q_int(db, "select pg_backend_pid()");
        SOFT(q(db, "begin") == 0);
        SOFT(q(db, "create temporary table left_open (x int)") == 0);
    }
    SOFT(rc == 0 && db == NULL);
    SOFT(corio_pg_pool_idle(pool) == 0 && corio_pg_pool_in_use(pool) == 0);
    /* the next checkout gets a fresh connection, outside any transaction */
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pid2 = q_int(db, "select pg_backend_pid()");
        SOFT(q_int(db, "select count(*) from pg_tables where tablename = 'left_open'") == 0);
        /* a failed statement inside a transaction: not pooled either */
        SOFT(q(db, "begin") == 0);
        SOFT(q(db, "select 1/0") == CORIO_EFAILED);
    }
    SOFT(rc == 0 && pid2 > 0 && pid2 != pid1);
    SOFT(corio_pg_pool_idle(pool) == 0);
    /* a clean one is pooled and handed out again */
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pid3 = q_int(db, "select pg_backend_pid()");
    }
    SOFT(rc == 0 && pid3 > 0 && pid3 != pid2);
    SOFT(corio_pg_pool_idle(pool) == 1);
    /* broken while idle (the server ended it): the health check after
     * check_after_ms finds it and the checkout opens a new one */
    corio_pg_conn *admin = NULL;
    SOFT(corio_pg_connect(&admin, pg_srv.conninfo) == 0);
    char sql[96];
    snprintf(sql, sizeof sql, "select pg_terminate_backend(%lld)", (long long)pid3);
    SOFT(admin && q(admin, sql) == 0);
    corio_pg_close(admin);
    SOFT(corio_sleep(200) == 0);
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pid4 = q_int(db, "select pg_backend_pid()");
    }
    SOFT(rc == 0 && pid4 > 0 && pid4 != pid3);
    SOFT(corio_pg_pool_idle(pool) == 1);
    SOFT(corio_pg_pool_free(pool) == 0);
    return 0;
}

static void test_pg_pool_does_not_return_a_conn_left_in_a_transaction(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(pool_return_main, NULL);
}

/* Whether the row k is in tx_t, seen from another connection. */
static int64_t committed(const char *k) {
    corio_pg_conn *other = NULL;
    if (corio_pg_connect(&other, pg_srv.conninfo) != 0)
        return -1;
    const char *params[] = {k};
    corio_pg_result *r = NULL;
    int64_t v = -1;
    if (corio_pg_query(other, &r, "select count(*) from tx_t where k = $1", 1, params) == 0)
        corio_pg_int64(r, 0, 0, &v);
    corio_pg_result_free(r);
    corio_pg_close(other);
    return v;
}

static int fails_inside(corio_pg_conn *db, corio_pg_tx *tx) {
    int rc = 0;
    CORIO_WITH_RC(rc, corio_pg_transaction(tx, db, NULL)) {
        if ((rc = q(db, "insert into tx_t values ('error')")) < 0)
            return rc;
        return corio_scope_fail(CORIO_EINVAL); /* the body's own failure */
    }
    return rc;
}

typedef struct tx_sleeper {
    corio_pg_conn *db;
    corio_pg_tx tx;
    int rc;
} tx_sleeper;

static int tx_sleeper_task(void *arg) {
    tx_sleeper *s = arg;
    CORIO_WITH_RC(s->rc, corio_pg_transaction(&s->tx, s->db, NULL)) {
        if (q(s->db, "insert into tx_t values ('cancel')") == 0)
            s->rc = q(s->db, "select pg_sleep(10)");
    }
    return 0;
}

static int tx_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = NULL;
    SOFT(corio_pg_connect(&db, pg_srv.conninfo) == 0);
    if (!db)
        return 0;
    SOFT(q(db, "create table if not exists tx_t (k text primary key)") == 0);
    corio_pg_tx tx;
    int rc = -1;
    /* a normal end: committed */
    CORIO_WITH_RC(rc, corio_pg_transaction(&tx, db, NULL)) {
        SOFT(q(db, "insert into tx_t values ('commit')") == 0);
        SOFT(committed("commit") == 0); /* not yet */
    }
    SOFT(rc == 0 && corio_pg_tx_result(&tx) == 0);
    SOFT(committed("commit") == 1);
    /* an error return: rolled back, the result is the failure */
    SOFT(fails_inside(db, &tx) == CORIO_EINVAL);
    corio_scope_handled();
    SOFT(corio_pg_tx_result(&tx) == CORIO_EINVAL);
    SOFT(committed("error") == 0);
    /* a timeout: rolled back though the body ends normally */
    CORIO_WITH(corio_timeout_scope(200)) {
        CORIO_WITH_RC(rc, corio_pg_transaction(&tx, db, NULL)) {
            SOFT(q(db, "insert into tx_t values ('timeout')") == 0);
            SOFT(q(db, "select pg_sleep(10)") == CORIO_ETIMEDOUT);
        }
    }
    SOFT(corio_pg_tx_result(&tx) == CORIO_ETIMEDOUT);
    SOFT(committed("timeout") == 0);
    SOFT(q_int(db, "select 5") == 5); /* the connection, out of the transaction */
    /* a cancel: rolled back */
    tx_sleeper s = {.db = db};
    corio_task *t = corio_test_spawn("tx", tx_sleeper_task, &s);
    SOFT(corio_sleep(150) == 0);
    SOFT(corio_cancel(t) == 0);
    corio_test_join(t);
    SOFT(s.rc == CORIO_ECANCELED);
    SOFT(corio_pg_tx_result(&s.tx) == CORIO_ECANCELED);
    SOFT(committed("cancel") == 0);
    SOFT(q_int(db, "select 6") == 6);
    /* a statement failed and the body went on: the server rolls back at COMMIT */
    CORIO_WITH_RC(rc, corio_pg_transaction(&tx, db, NULL)) {
        SOFT(q(db, "insert into tx_t values ('aborted')") == 0);
        SOFT(q(db, "insert into tx_t values ('commit')") == CORIO_EFAILED);
    }
    SOFT(corio_pg_tx_result(&tx) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(db), "25P02") == 0);
    SOFT(committed("aborted") == 0);
    /* read only, repeatable read: a write fails */
    corio_pg_tx_opts ro = {.isolation = CORIO_PG_REPEATABLE_READ, .read_only = true};
    CORIO_WITH_RC(rc, corio_pg_transaction(&tx, db, &ro)) {
        SOFT(q_int(db, "select (current_setting('transaction_read_only') = 'on')::int") == 1);
        SOFT(q_int(db, "select (current_setting('transaction_isolation') = 'repeatable read')"
                       "::int") == 1);
        SOFT(q(db, "insert into tx_t values ('ro')") == CORIO_EFAILED);
        SOFT(strcmp(corio_pg_sqlstate(db), "25006") == 0);
    }
    SOFT(rc == 0 && corio_pg_tx_result(&tx) == CORIO_EFAILED);
    SOFT(q(db, "drop table tx_t") == 0);
    corio_pg_close(db);
    return 0;
}

static void test_pg_transaction_commits_and_rolls_back(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(tx_main, NULL);
}

static int serialization_main(void *arg) {
    (void)arg;
    corio_pg_conn *a = NULL, *b = NULL;
    SOFT(corio_pg_connect(&a, pg_srv.conninfo) == 0);
    SOFT(corio_pg_connect(&b, pg_srv.conninfo) == 0);
    if (!a || !b) {
        corio_pg_close(a);
        corio_pg_close(b);
        return 0;
    }
    SOFT(q(a, "create table ser_t (class int, value int)") == 0);
    SOFT(q(a, "insert into ser_t values (1, 10), (1, 20), (2, 100), (2, 200)") == 0);
    corio_pg_tx_opts ser = {.isolation = CORIO_PG_SERIALIZABLE};
    corio_pg_tx ta, tb;
    int rca = -1, rcb = -1;
    /* write skew: each reads what the other writes */
    CORIO_WITH_RC(rca, corio_pg_transaction(&ta, a, &ser)) {
        CORIO_WITH_RC(rcb, corio_pg_transaction(&tb, b, &ser)) {
            SOFT(q_int(a, "select sum(value) from ser_t where class = 1") == 30);
            SOFT(q_int(b, "select sum(value) from ser_t where class = 2") == 300);
            SOFT(q(a, "insert into ser_t values (2, 30)") == 0);
            SOFT(q(b, "insert into ser_t values (1, 300)") == 0);
        } /* b commits first */
        SOFT(corio_pg_tx_result(&tb) == 0);
    } /* a's COMMIT fails */
    SOFT(rca == 0 && rcb == 0);
    SOFT(corio_pg_tx_result(&ta) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(a), "40001") == 0);
    fprintf(stderr, "test_pg: COMMIT: %s (%s)\n", corio_pg_error(a), corio_pg_sqlstate(a));
    SOFT(q_int(a, "select count(*) from ser_t") == 5); /* b's row only */
    SOFT(q(a, "drop table ser_t") == 0);
    corio_pg_close(a);
    corio_pg_close(b);
    return 0;
}

static void test_pg_serialization_failure_at_commit_reaches_the_caller(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(serialization_main, NULL);
}

/* ---- the pool's keeper task ------------------------------------------------------------------ */

/* Whether the server still has the backend pid (1) or not (0); -1: no answer. */
static int64_t backend_alive(int64_t pid) {
    corio_pg_conn *admin = NULL;
    if (corio_pg_connect(&admin, pg_srv.conninfo) != 0)
        return -1;
    char sql[96];
    snprintf(sql, sizeof sql, "select count(*) from pg_stat_activity where pid = %lld",
             (long long)pid);
    int64_t v = q_int(admin, sql);
    corio_pg_close(admin);
    return v;
}

/* Polls backend_alive until it says 0, for up to 3 s (a backend takes a
 * moment to go after its client closes). */
static bool backend_gone(int64_t pid) {
    for (int i = 0; i < 60; i++) {
        if (backend_alive(pid) == 0)
            return true;
        if (corio_sleep(50) != 0)
            return false;
    }
    return false;
}

static int keeper_idle_main(void *arg) {
    (void)arg;
    corio_pg_pool *pool = NULL;
    corio_pg_pool_opts o = {.max_size = 2, .idle_timeout_ms = 300};
    SOFT(corio_pg_pool_new(&pool, pg_srv.conninfo, &o) == 0);
    corio_pg_conn *db = NULL;
    int rc = -1;
    int64_t pid = -1;
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        pid = q_int(db, "select pg_backend_pid()");
    }
    SOFT(rc == 0 && pid > 0);
    SOFT(corio_pg_pool_idle(pool) == 1);
    SOFT(corio_sleep(100) == 0);
    SOFT(corio_pg_pool_idle(pool) == 1); /* not yet expired */
    SOFT(backend_alive(pid) == 1);
    /* past idle_timeout_ms: closed by the keeper, no checkout involved */
    SOFT(corio_sleep(400) == 0);
    SOFT(corio_pg_pool_idle(pool) == 0 && corio_pg_pool_in_use(pool) == 0);
    SOFT(backend_gone(pid));
    /* the pool goes on: a new connection, pooled again, then freed */
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        SOFT(q_int(db, "select 7") == 7);
    }
    SOFT(rc == 0 && corio_pg_pool_idle(pool) == 1);
    SOFT(corio_pg_pool_free(pool) == 0);
    return 0;
}

static void test_pg_pool_keeper_closes_expired_idle_connections(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(keeper_idle_main, NULL);
}

static corio_pg_pool *unfreed_pool;
static int64_t unfreed_pid = -1;

/* Pools a connection and returns without corio_pg_pool_free. */
static int unfreed_main(void *arg) {
    (void)arg;
    SOFT(corio_pg_pool_new(&unfreed_pool, pg_srv.conninfo, NULL) == 0);
    corio_pg_conn *db = NULL;
    int rc = -1;
    CORIO_WITH_RC(rc, corio_pg_checkout(unfreed_pool, &db)) {
        unfreed_pid = q_int(db, "select pg_backend_pid()");
    }
    SOFT(rc == 0 && unfreed_pid > 0);
    SOFT(corio_pg_pool_idle(unfreed_pool) == 1);
    return 0; /* the loop shuts down: the keeper closes the idle connection */
}

/* A later loop: the connection is gone on the server; the pool's memory
 * is freed. */
static int unfreed_after_main(void *arg) {
    (void)arg;
    SOFT(corio_pg_pool_idle(unfreed_pool) == 0);
    SOFT(backend_gone(unfreed_pid));
    SOFT(corio_pg_pool_free(unfreed_pool) == 0);
    unfreed_pool = NULL;
    return 0;
}

static void test_pg_pool_never_freed_still_ends_the_loop_cleanly(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(unfreed_main, NULL); /* corio_run returned 0: no handle left */
    corio_test_run_checked(unfreed_after_main, NULL);
}

/* ---- corio_pg_retry_tx ------------------------------------------------------------------------
 */

typedef struct skew {
    corio_pg_pool *pool;
    corio_event both_read; /* set when both first attempts have read */
    int nread;
    int attempts[2];
    int rc[2];
} skew;

typedef struct skew_arg {
    skew *s;
    int i;
} skew_arg;

/* Task i reads the sum of class i+1 and inserts into the other class: each
 * reads what the other writes (the write skew of serialization_main). */
static int skew_body(corio_pg_conn *db, void *arg) {
    skew_arg *a = arg;
    skew *s = a->s;
    s->attempts[a->i]++;
    const char *read = a->i == 0 ? "select sum(value) from ser_t where class = 1"
                                 : "select sum(value) from ser_t where class = 2";
    const char *write =
        a->i == 0 ? "insert into ser_t values (2, 30)" : "insert into ser_t values (1, 300)";
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r, read, 0, NULL);
    corio_pg_result_free(r);
    if (rc < 0)
        return rc;
    if (s->attempts[a->i] == 1) { /* the first attempts overlap */
        if (++s->nread == 2)
            corio_event_set(&s->both_read);
        if ((rc = corio_event_wait(&s->both_read)) < 0)
            return rc;
    }
    if ((rc = corio_pg_query(db, &r, write, 0, NULL)) < 0)
        fprintf(stderr, "test_pg: retry_tx body %d: %s (%s)\n", a->i, corio_pg_error(db),
                corio_pg_sqlstate(db));
    corio_pg_result_free(r);
    return rc;
}

static int skew_task(void *arg) {
    skew_arg *a = arg;
    corio_pg_tx_opts ser = {.isolation = CORIO_PG_SERIALIZABLE};
    a->s->rc[a->i] = corio_pg_retry_tx(a->s->pool, &ser, 5, skew_body, a);
    return 0;
}

static int own_error_body(corio_pg_conn *db, void *arg) {
    int *n = arg;
    (*n)++;
    int rc = q(db, "insert into ser_t values (3, 1)");
    if (rc < 0)
        return rc;
    return CORIO_EINVAL; /* the body's own failure: rolled back, not retried */
}

static int always_40001_body(corio_pg_conn *db, void *arg) {
    int *n = arg;
    (*n)++;
    /* raises a serialization failure at a statement */
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r,
                            "do $$ begin raise exception 'retry me' using errcode = '40001'; "
                            "end $$",
                            0, NULL);
    corio_pg_result_free(r);
    return rc;
}

static int always_40p01_body(corio_pg_conn *db, void *arg) {
    int *n = arg;
    (*n)++;
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r,
                            "do $$ begin raise exception 'deadlocked' using errcode = '40P01'; "
                            "end $$",
                            0, NULL);
    corio_pg_result_free(r);
    return rc;
}

static int duplicate_body(corio_pg_conn *db, void *arg) {
    int *n = arg;
    (*n)++;
    return q(db, "insert into uniq_t values (1)");
}

static int retry_tx_main(void *arg) {
    (void)arg;
    skew s = {0};
    corio_event_init(&s.both_read);
    corio_pg_pool_opts o = {.max_size = 4};
    SOFT(corio_pg_pool_new(&s.pool, pg_srv.conninfo, &o) == 0);
    corio_pg_conn *db = NULL;
    int rc = -1;
    CORIO_WITH_RC(rc, corio_pg_checkout(s.pool, &db)) {
        SOFT(q(db, "create table ser_t (class int, value int)") == 0);
        SOFT(q(db, "insert into ser_t values (1, 10), (1, 20), (2, 100), (2, 200)") == 0);
    }
    SOFT(rc == 0);
    skew_arg a0 = {&s, 0}, a1 = {&s, 1};
    corio_task *t0 = corio_test_spawn("skew0", skew_task, &a0);
    corio_task *t1 = corio_test_spawn("skew1", skew_task, &a1);
    corio_test_join(t0);
    corio_test_join(t1);
    fprintf(stderr, "test_pg: retry_tx: attempts %d and %d\n", s.attempts[0], s.attempts[1]);
    SOFT(s.rc[0] == 0 && s.rc[1] == 0);       /* both committed in the end */
    SOFT(s.attempts[0] + s.attempts[1] == 3); /* one of them retried once */
    SOFT(s.attempts[0] >= 1 && s.attempts[1] >= 1);
    int own = 0, always = 0;
    SOFT(corio_pg_retry_tx(s.pool, NULL, 5, own_error_body, &own) == CORIO_EINVAL);
    SOFT(own == 1);
    SOFT(corio_pg_retry_tx(s.pool, NULL, 3, always_40001_body, &always) == CORIO_EFAILED);
    SOFT(always == 3);
    /* why it failed, though the connection is back in the pool */
    SOFT(strcmp(corio_pg_sqlstate(NULL), "40001") == 0);
    SOFT(strstr(corio_pg_error(NULL), "retry me") != NULL);
    always = 0;
    SOFT(corio_pg_retry_tx(s.pool, NULL, 2, always_40p01_body, &always) == CORIO_EFAILED);
    SOFT(always == 2); /* a deadlock is retried too */
    SOFT(strcmp(corio_pg_sqlstate(NULL), "40P01") == 0);
    /* a failure that a retry cannot clear: once, and its SQLSTATE */
    int dup = 0;
    CORIO_WITH_RC(rc, corio_pg_checkout(s.pool, &db)) {
        SOFT(q(db, "create table uniq_t (k int primary key)") == 0);
        SOFT(q(db, "insert into uniq_t values (1)") == 0);
    }
    SOFT(corio_pg_retry_tx(s.pool, NULL, 5, duplicate_body, &dup) == CORIO_EFAILED);
    SOFT(dup == 1);
    SOFT(strcmp(corio_pg_sqlstate(NULL), "23505") == 0);
    /* a transaction scope rolled back by a failed statement keeps its
     * SQLSTATE readable after the block (the ROLLBACK does not clear it) */
    CORIO_WITH_RC(rc, corio_pg_checkout(s.pool, &db)) {
        corio_pg_tx tx;
        int trc = 0;
        CORIO_WITH_RC(trc, corio_pg_transaction(&tx, db, NULL)) {
            int qrc = q(db, "insert into uniq_t values (1)");
            if (qrc < 0) {
                corio_scope_fail(qrc);
                break;
            }
        }
        corio_scope_handled();
        SOFT(trc == 0);
        SOFT(corio_pg_tx_result(&tx) == CORIO_EFAILED);
        SOFT(strcmp(corio_pg_sqlstate(db), "23505") == 0);
        SOFT(strstr(corio_pg_error(db), "duplicate") != NULL);
        SOFT(q(db, "drop table uniq_t") == 0);
    }
    SOFT(corio_pg_retry_tx(s.pool, NULL, 0, always_40001_body, &always) == CORIO_EINVAL);
    CORIO_WITH_RC(rc, corio_pg_checkout(s.pool, &db)) {
        SOFT(q_int(db, "select count(*) from ser_t") == 6); /* both rows, not the body's own */
        SOFT(q_int(db, "select count(*) from ser_t where class = 3") == 0);
        SOFT(q(db, "drop table ser_t") == 0);
    }
    SOFT(rc == 0);
    SOFT(corio_pg_pool_free(s.pool) == 0);
    return 0;
}

static void test_pg_retry_tx_write_skew_both_commit_one_retried(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(retry_tx_main, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_connect_and_select_one),
        cmocka_unit_test(test_pg_params_round_trip),
        cmocka_unit_test(test_pg_syntax_error_has_sqlstate_and_conn_stays_usable),
        cmocka_unit_test(test_pg_query_cancelled_by_deadline_and_conn_reusable),
        cmocka_unit_test(test_pg_query_cancelled_by_task_cancel_and_close_mid_query),
        cmocka_unit_test(test_pg_connect_to_closed_port_fails_clearly),
        cmocka_unit_test(test_pg_connect_by_host_name),
        cmocka_unit_test(test_pg_pool_exhaustion_fifo_waiters_and_a_waiter_timing_out),
        cmocka_unit_test(test_pg_pool_does_not_return_a_conn_left_in_a_transaction),
        cmocka_unit_test(test_pg_transaction_commits_and_rolls_back),
        cmocka_unit_test(test_pg_serialization_failure_at_commit_reaches_the_caller),
        cmocka_unit_test(test_pg_pool_keeper_closes_expired_idle_connections),
        cmocka_unit_test(test_pg_pool_never_freed_still_ends_the_loop_cleanly),
        cmocka_unit_test(test_pg_retry_tx_write_skew_both_commit_one_retried),
    };
    return cmocka_run_group_tests(tests, pg_server_group_setup, pg_server_group_teardown);
}

#else /* built without libpq */

int main(void) {
    fprintf(stderr, "test_pg: skipped: corio was built without libpq (Debian libpq-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
