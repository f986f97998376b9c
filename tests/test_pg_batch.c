/* SPDX-License-Identifier: MIT */
/* PostgreSQL batches (pipeline mode) and prepared statements (corio/pg.h)
 * against a real server the test starts itself (pg_server.h;
 * CORIO_TEST_PG=<conninfo> uses another). */
#include "corio_test.h"

#ifdef CORIO_HAVE_PG
#include <corio/pg.h>
#include <string.h>

#include "pg_server.h"

static void need_server(void) {
    pg_server_need("test_pg_batch", false);
}

static corio_pg_conn *connect_db(void) {
    corio_pg_conn *db = NULL;
    int rc = corio_pg_connect(&db, pg_srv.conninfo);
    if (rc)
        fprintf(stderr, "connect: %s: %s\n", corio_err_name(rc), corio_pg_error(NULL));
    SOFT(rc == 0);
    return db;
}

/* Runs a statement without rows; 0 or the error. */
static int exec_sql(corio_pg_conn *db, const char *sql) {
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(db, &r, sql, 0, NULL);
    if (rc)
        fprintf(stderr, "%s: %s: %s\n", sql, corio_err_name(rc), corio_pg_error(db));
    corio_pg_result_free(r);
    return rc;
}

/* The single integer a query returns, or -1. */
static int64_t scalar(corio_pg_conn *db, const char *sql) {
    corio_pg_result *r = NULL;
    int64_t v = -1;
    if (corio_pg_query(db, &r, sql, 0, NULL) == 0 && corio_pg_int64(r, 0, 0, &v) != 0)
        v = -1;
    corio_pg_result_free(r);
    return v;
}

/* How many statements named corio_* the server holds for this session. */
static int64_t server_statements(corio_pg_conn *db) {
    return scalar(db, "select count(*) from pg_prepared_statements where name like 'corio\\_%'");
}

/* ---- 100 queries, one failing in the middle ----------------------------------------------- */

static int hundred_main(void *arg) {
    const corio_pg_batch_opts o = *(const corio_pg_batch_opts *)arg;
    corio_pg_conn *db = connect_db();
    if (!db)
        return 0;
    corio_pg_batch *b = NULL;
    SOFT(corio_pg_batch_new(&b, &o) == 0);
    char nums[100][12];
    for (int i = 0; i < 100; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", i);
        const char *p[] = {nums[i]};
        if (i == 50) /* division by zero in the middle */
            SOFT(corio_pg_batch_add(b, "select 1 / ($1::int - 50)", 1, p) == 0);
        else
            SOFT(corio_pg_batch_add(b, "select $1::int * 2, $1::text || 'x'", 1, p) == 0);
    }
    memset(nums, 0, sizeof nums); /* the batch holds copies */
    SOFT(corio_pg_batch_size(b) == 100);
    SOFT(corio_pg_batch_run(db, b) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(db), "22012") == 0); /* the first failure, on db too */
    for (int i = 0; i < 100; i++) {
        const corio_pg_result *r = (const corio_pg_result *)&r;
        int st = corio_pg_batch_result(b, (size_t)i, &r);
        if (i == 50) {
            SOFT(st == CORIO_EFAILED);
            SOFT(r == NULL);
            SOFT(strcmp(corio_pg_batch_sqlstate(b, 50), "22012") == 0);
            SOFT(strstr(corio_pg_batch_error(b, 50), "division by zero") != NULL);
            continue;
        }
        if (!o.independent) { /* one transaction: rolled back, or never ran */
            SOFT(st == CORIO_ECANCELED && r == NULL);
            continue;
        }
        SOFT(st == 0); /* independent: the others ran, before and after it */
        int64_t v = -1;
        SOFT(corio_pg_int64(r, 0, 0, &v) == 0 && v == 2 * i);
        char want[16];
        snprintf(want, sizeof want, "%dx", i);
        SOFT(corio_pg_text(r, 0, 1) && strcmp(corio_pg_text(r, 0, 1), want) == 0);
        SOFT(strcmp(corio_pg_batch_sqlstate(b, (size_t)i), "") == 0);
    }
    SOFT(corio_pg_batch_result(b, 100, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_batch_run(db, b) == CORIO_EINVAL); /* a batch runs once */
    SOFT(corio_pg_batch_add(b, "select 1", 0, NULL) == CORIO_EINVAL);
    corio_pg_batch_free(b);
    /* The connection is out of pipeline mode and usable.  With `prepared`,
     * the two statements were prepared once each (the second one's Parse
     * precedes its failing execution) and both are remembered: a failed
     * execution, unlike a failed Parse, keeps its statement. */
    SOFT(scalar(db, "select 7") == 7);
    SOFT(server_statements(db) == (o.prepared ? 2 : 0));
    corio_pg_close(db);
    return 0;
}

static void test_pg_batch_hundred_independent_queries_one_failing_in_the_middle(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(hundred_main, &(corio_pg_batch_opts){.independent = true});
    corio_test_run_checked(hundred_main,
                           &(corio_pg_batch_opts){.independent = true, .prepared = true});
}

static void test_pg_batch_hundred_queries_in_one_transaction_one_failing(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(hundred_main, &(corio_pg_batch_opts){0});
    corio_test_run_checked(hundred_main, &(corio_pg_batch_opts){.prepared = true});
}

/* ---- a batch is one transaction, unless independent ------------------------------------------ */

static int atomic_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = connect_db();
    if (!db)
        return 0;
    SOFT(exec_sql(db, "create temporary table at (x int primary key)") == 0);
    corio_pg_batch *b = NULL;
    SOFT(corio_pg_batch_new(&b, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (1)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (2)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (1)", 0, NULL) == 0); /* duplicate */
    SOFT(corio_pg_batch_add(b, "insert into at values (3)", 0, NULL) == 0);
    SOFT(corio_pg_batch_run(db, b) == CORIO_EFAILED);
    SOFT(corio_pg_batch_result(b, 0, NULL) == CORIO_ECANCELED); /* rolled back */
    SOFT(corio_pg_batch_result(b, 1, NULL) == CORIO_ECANCELED);
    SOFT(corio_pg_batch_result(b, 2, NULL) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_batch_sqlstate(b, 2), "23505") == 0);
    SOFT(corio_pg_batch_result(b, 3, NULL) == CORIO_ECANCELED); /* never ran */
    corio_pg_batch_free(b);
    SOFT(scalar(db, "select count(*) from at") == 0);
    /* the same, independent: three rows */
    const corio_pg_batch_opts ind = {.independent = true};
    SOFT(corio_pg_batch_new(&b, &ind) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (1)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (2)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (1)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (3)", 0, NULL) == 0);
    SOFT(corio_pg_batch_run(db, b) == CORIO_EFAILED);
    const corio_pg_result *r = NULL;
    SOFT(corio_pg_batch_result(b, 3, &r) == 0 && corio_pg_result_affected(r) == 1);
    corio_pg_batch_free(b);
    SOFT(scalar(db, "select count(*) from at") == 3);
    /* a batch that succeeds commits */
    SOFT(corio_pg_batch_new(&b, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "insert into at values (4)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "update at set x = x + 10 where x = 4", 0, NULL) == 0);
    SOFT(corio_pg_batch_run(db, b) == 0);
    corio_pg_batch_free(b);
    SOFT(scalar(db, "select max(x) from at") == 14);
    corio_pg_close(db);
    return 0;
}

static void test_pg_batch_is_one_transaction_unless_independent(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(atomic_main, NULL);
}

/* ---- prepared statements ------------------------------------------------------------------- */

static int prepared_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = connect_db();
    if (!db)
        return 0;
    const char *sql = "select $1::int + 1";
    for (int i = 0; i < 5; i++) {
        char n[12];
        snprintf(n, sizeof n, "%d", i);
        const char *p[] = {n};
        corio_pg_result *r = NULL;
        SOFT(corio_pg_query_prepared(db, &r, sql, 1, p) == 0);
        int64_t v = -1;
        SOFT(corio_pg_int64(r, 0, 0, &v) == 0 && v == i + 1);
        corio_pg_result_free(r);
    }
    /* prepared once on the server, used five times */
    corio_pg_result *r = NULL;
    SOFT(corio_pg_query(db, &r,
                        "select count(*), min(statement) from pg_prepared_statements "
                        "where name like 'corio\\_%'",
                        0, NULL) == 0);
    SOFT(corio_pg_text(r, 0, 0) && strcmp(corio_pg_text(r, 0, 0), "1") == 0);
    SOFT(corio_pg_text(r, 0, 1) && strcmp(corio_pg_text(r, 0, 1), sql) == 0);
    corio_pg_result_free(r);
    /* a statement that does not prepare fails and is not remembered */
    SOFT(corio_pg_query_prepared(db, &r, "select from nowhere_at_all", 0, NULL) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(db), "42P01") == 0);
    SOFT(r == NULL);
    SOFT(server_statements(db) == 1);
    /* The server forgets it (DEALLOCATE ALL): the next run fails once with
     * 26000 and the one after prepares it again. */
    SOFT(exec_sql(db, "deallocate all") == 0);
    const char *p[] = {"41"};
    SOFT(corio_pg_query_prepared(db, &r, sql, 1, p) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(db), "26000") == 0);
    SOFT(corio_pg_query_prepared(db, &r, sql, 1, p) == 0);
    SOFT(scalar(db, "select 0") == 0);
    int64_t v = -1;
    SOFT(corio_pg_int64(r, 0, 0, &v) == 0 && v == 42);
    corio_pg_result_free(r);
    /* bad calls */
    SOFT(corio_pg_query_prepared(NULL, &r, sql, 0, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_query_prepared(db, NULL, sql, 0, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_query_prepared(db, &r, NULL, 0, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_query_prepared(db, &r, sql, 1, NULL) == CORIO_EINVAL);
    /* the cache is bounded: 300 distinct statements, 256 prepared */
    corio_pg_batch *b = NULL;
    const corio_pg_batch_opts o = {.prepared = true};
    SOFT(corio_pg_batch_new(&b, &o) == 0);
    for (int i = 0; i < 300; i++) {
        char q[64];
        snprintf(q, sizeof q, "select %d", i);
        SOFT(corio_pg_batch_add(b, q, 0, NULL) == 0);
    }
    SOFT(corio_pg_batch_run(db, b) == 0);
    for (size_t i = 0; i < 300; i++) {
        const corio_pg_result *br = NULL;
        SOFT(corio_pg_batch_result(b, i, &br) == 0);
        SOFT(corio_pg_int64(br, 0, 0, &v) == 0 && v == (int64_t)i);
    }
    corio_pg_batch_free(b);
    SOFT(server_statements(db) == 256);
    corio_pg_close(db);
    return 0;
}

static void test_pg_prepared_statements_cached_per_connection(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(prepared_main, NULL);
}

/* ---- a batch cut short ---------------------------------------------------------------------- */

typedef struct cut {
    corio_pg_conn *db;
    int rc;
    bool independent;
} cut;

static int cut_task(void *arg) {
    cut *s = arg;
    corio_pg_batch *b = NULL;
    const corio_pg_batch_opts o = {.prepared = true, .independent = s->independent};
    SOFT(corio_pg_batch_new(&b, &o) == 0);
    SOFT(corio_pg_batch_add(b, "select 1", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "select pg_sleep(30)", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "select 3", 0, NULL) == 0);
    /* Independent statements each run after the one before is cancelled:
     * this one needs a cancel of its own, or the drain would wait 30 s,
     * give up at 5 s and leave the connection broken. */
    SOFT(corio_pg_batch_add(b, "select pg_sleep(30)", 0, NULL) == 0);
    s->rc = corio_pg_batch_run(s->db, b);
    for (size_t i = 0; i < 4; i++) {
        const corio_pg_result *r = (const corio_pg_result *)&r;
        SOFT(corio_pg_batch_result(b, i, &r) == s->rc);
        SOFT(r == NULL);
    }
    corio_pg_batch_free(b);
    return 0;
}

static int cut_main(void *arg) {
    (void)arg;
    cut s = {.db = connect_db()};
    if (!s.db)
        return 0;
    /* by a deadline */
    CORIO_WITH(corio_timeout_scope(200)) {
        cut_task(&s);
    }
    SOFT(s.rc == CORIO_ETIMEDOUT);
    SOFT(scalar(s.db, "select 5") == 5); /* drained, out of pipeline mode */
    /* by a cancel, independent statements this time */
    s.independent = true;
    s.rc = 0;
    corio_task *t = corio_test_spawn("batch", cut_task, &s);
    SOFT(pg_server_wait_running("select pg_sleep(30)") == 0);
    SOFT(corio_pg_query(s.db, &(corio_pg_result *){NULL}, "select 1", 0, NULL) == CORIO_EBUSY);
    SOFT(corio_cancel(t) == 0);
    corio_test_join(t);
    SOFT(s.rc == CORIO_ECANCELED);
    SOFT(scalar(s.db, "select 6") == 6);
    /* prepares whose outcome was read stay; the run's unknown ones are
     * forgotten: the next prepared run works either way */
    corio_pg_result *r = NULL;
    SOFT(corio_pg_query_prepared(s.db, &r, "select 3", 0, NULL) == 0);
    corio_pg_result_free(r);
    /* closed by another task during a run: that run fails with ECLOSED */
    s.rc = 0;
    t = corio_test_spawn("batch", cut_task, &s);
    SOFT(pg_server_wait_running("select pg_sleep(30)") == 0);
    corio_pg_close(s.db);
    corio_test_join(t);
    SOFT(s.rc == CORIO_ECLOSED);
    return 0;
}

static void test_pg_batch_cut_by_deadline_cancel_and_close(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(cut_main, NULL);
}

/* ---- a call after its deadline sends nothing; a changed schema; a failed Prepare used twice -- */

static int edge_main(void *arg) {
    (void)arg;
    corio_pg_conn *db = connect_db();
    if (!db)
        return 0;
    SOFT(exec_sql(db, "create temporary table late (x int)") == 0);
    CORIO_WITH(corio_timeout_scope(20)) {
        SOFT(corio_sleep(10000) == CORIO_ETIMEDOUT);
        corio_pg_result *r = NULL;
        SOFT(corio_pg_query(db, &r, "insert into late values (1)", 0, NULL) == CORIO_ETIMEDOUT);
        SOFT(corio_pg_query_prepared(db, &r, "insert into late values (2)", 0, NULL) ==
             CORIO_ETIMEDOUT);
        corio_pg_batch *b = NULL;
        SOFT(corio_pg_batch_new(&b, NULL) == 0);
        SOFT(corio_pg_batch_add(b, "insert into late values (3)", 0, NULL) == 0);
        SOFT(corio_pg_batch_run(db, b) == CORIO_ETIMEDOUT);
        SOFT(corio_pg_batch_result(b, 0, NULL) == CORIO_EINVAL); /* not run: may run again */
        corio_pg_batch_free(b);
    }
    SOFT(scalar(db, "select count(*) from late") == 0); /* none of them was sent */

    /* A cached `select *` whose table changed: 0A000 once, then prepared
     * afresh. */
    SOFT(exec_sql(db, "create temporary table shape (a int)") == 0);
    SOFT(exec_sql(db, "insert into shape values (1)") == 0);
    corio_pg_result *r = NULL;
    SOFT(corio_pg_query_prepared(db, &r, "select * from shape", 0, NULL) == 0);
    SOFT(corio_pg_result_cols(r) == 1);
    corio_pg_result_free(r);
    SOFT(exec_sql(db, "alter table shape add column b int default 7") == 0);
    SOFT(corio_pg_query_prepared(db, &r, "select * from shape", 0, NULL) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_sqlstate(db), "0A000") == 0);
    SOFT(corio_pg_query_prepared(db, &r, "select * from shape", 0, NULL) == 0);
    SOFT(corio_pg_result_cols(r) == 2);
    corio_pg_result_free(r);

    /* The same statement twice in a run, its Prepare failing: both report
     * the Prepare's reason. */
    corio_pg_batch *b = NULL;
    const corio_pg_batch_opts o = {.prepared = true, .independent = true};
    SOFT(corio_pg_batch_new(&b, &o) == 0);
    SOFT(corio_pg_batch_add(b, "select * from no_such_table", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "select 1", 0, NULL) == 0);
    SOFT(corio_pg_batch_add(b, "select * from no_such_table", 0, NULL) == 0);
    SOFT(corio_pg_batch_run(db, b) == CORIO_EFAILED);
    SOFT(corio_pg_batch_result(b, 0, NULL) == CORIO_EFAILED);
    SOFT(corio_pg_batch_result(b, 1, NULL) == 0);
    SOFT(corio_pg_batch_result(b, 2, NULL) == CORIO_EFAILED);
    SOFT(strcmp(corio_pg_batch_sqlstate(b, 0), "42P01") == 0);
    SOFT(strcmp(corio_pg_batch_sqlstate(b, 2), "42P01") == 0);
    SOFT(strstr(corio_pg_batch_error(b, 2), "no_such_table") != NULL);
    corio_pg_batch_free(b);
    corio_pg_close(db);
    return 0;
}

static void test_pg_late_call_schema_change_and_a_failed_prepare_used_twice(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(edge_main, NULL);
}

/* ---- bad calls ---------------------------------------------------------------------------- */

static int bad_calls_main(void *arg) {
    (void)arg;
    corio_pg_batch *b = NULL;
    SOFT(corio_pg_batch_new(NULL, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_batch_new(&b, NULL) == 0);
    SOFT(corio_pg_batch_add(NULL, "select 1", 0, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_batch_add(b, NULL, 0, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_batch_add(b, "select $1", 1, NULL) == CORIO_EINVAL);
    SOFT(corio_pg_batch_add(b, "select 1", 70000, (const char *const[]){"1"}) == CORIO_EINVAL);
    SOFT(corio_pg_batch_size(b) == 0 && corio_pg_batch_size(NULL) == 0);
    SOFT(corio_pg_batch_result(b, 0, NULL) == CORIO_EINVAL); /* not run */
    SOFT(strcmp(corio_pg_batch_sqlstate(b, 0), "") == 0);
    SOFT(strcmp(corio_pg_batch_error(NULL, 0), "") == 0);
    corio_pg_conn *db = connect_db();
    if (db) {
        SOFT(corio_pg_batch_run(db, b) == CORIO_EINVAL); /* empty */
        SOFT(corio_pg_batch_run(NULL, b) == CORIO_EINVAL);
        SOFT(corio_pg_batch_run(db, NULL) == CORIO_EINVAL);
        /* a NULL parameter is SQL NULL; a COPY has no place in a batch */
        SOFT(corio_pg_batch_add(b, "select $1::int is null", 1, (const char *const[]){NULL}) == 0);
        SOFT(corio_pg_batch_run(db, b) == 0);
        const corio_pg_result *r = NULL;
        bool isnull = false;
        SOFT(corio_pg_batch_result(b, 0, &r) == 0 && corio_pg_bool(r, 0, 0, &isnull) == 0 &&
             isnull);
        corio_pg_batch_free(b);
        SOFT(corio_pg_batch_new(&b, NULL) == 0);
        SOFT(corio_pg_batch_add(b, "copy (select 1) to stdout", 0, NULL) == 0);
        int rc = corio_pg_batch_run(db, b);
        SOFT(rc == CORIO_ENOTSUP);
        fprintf(stderr, "test_pg_batch: copy in a batch: %s: %s\n", corio_err_name(rc),
                corio_pg_error(db));
        corio_pg_close(db);
    }
    corio_pg_batch_free(b);
    corio_pg_batch_free(NULL);
    return 0;
}

static void test_pg_batch_bad_calls(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(bad_calls_main, NULL);
}

static void test_pg_batch_outside_a_task(void **state) {
    (void)state;
    corio_pg_batch *b = NULL;
    assert_int_equal(corio_pg_batch_new(&b, NULL), 0);
    assert_int_equal(corio_pg_batch_add(b, "select 1", 0, NULL), 0);
    /* no connection can exist outside a task; a fake pointer is never read */
    assert_int_equal(corio_pg_batch_run((corio_pg_conn *)&b, b), CORIO_ENOTASK);
    corio_pg_batch_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_batch_hundred_independent_queries_one_failing_in_the_middle),
        cmocka_unit_test(test_pg_batch_hundred_queries_in_one_transaction_one_failing),
        cmocka_unit_test(test_pg_batch_is_one_transaction_unless_independent),
        cmocka_unit_test(test_pg_prepared_statements_cached_per_connection),
        cmocka_unit_test(test_pg_batch_cut_by_deadline_cancel_and_close),
        cmocka_unit_test(test_pg_late_call_schema_change_and_a_failed_prepare_used_twice),
        cmocka_unit_test(test_pg_batch_bad_calls),
        cmocka_unit_test(test_pg_batch_outside_a_task),
    };
    return cmocka_run_group_tests(tests, pg_server_group_setup, pg_server_group_teardown);
}

#else /* built without libpq */

int main(void) {
    fprintf(stderr, "test_pg_batch: skipped: corio was built without libpq (Debian libpq-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
