/* The PostgreSQL client (corio/pg.h) against a real server that the test
 * starts itself (pg_server.h; CORIO_TEST_PG=<conninfo> uses another). */
#include "corio_test.h"

#ifdef CORIO_HAVE_PG
#include <corio/pg.h>
#include <math.h>
#include <string.h>

#include "pg_server.h"

static bool server_up;

static void need_server(void) {
    if (!server_up) {
        fprintf(stderr, "test_pg: skipped: %s\n", pg_srv.skip_why);
        skip();
    }
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
    uint64_t t0 = corio_now();
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(200)) {
        rc = corio_pg_query(db, &r, "select pg_sleep(10)", 0, NULL);
    }
    uint64_t took = corio_now() - t0;
    SOFT(rc == CORIO_ETIMEDOUT);
    SOFT(r == NULL);
    SOFT(took >= 190 && took < 3000);
    fprintf(stderr, "test_pg: pg_sleep(10) under a 200 ms timeout returned after %llu ms\n",
            (unsigned long long)took);
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
    SOFT(corio_sleep(100) == 0);
    /* one call at a time */
    corio_pg_result *r = NULL;
    SOFT(corio_pg_query(s.db, &r, "select 1", 0, NULL) == CORIO_EBUSY);
    uint64_t t0 = corio_now();
    SOFT(corio_cancel(t) == 0);
    corio_test_join(t);
    SOFT(s.rc == CORIO_ECANCELED);
    SOFT(corio_now() - t0 < 3000);
    SOFT(corio_pg_query(s.db, &r, "select 4", 0, NULL) == 0);
    SOFT(corio_pg_text(r, 0, 0) && strcmp(corio_pg_text(r, 0, 0), "4") == 0);
    corio_pg_result_free(r);
    /* closed by another task mid-query: that call fails with ECLOSED */
    s.rc = 0;
    t = corio_test_spawn("sleeper", sleeper_task, &s);
    SOFT(corio_sleep(50) == 0);
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
    int port = pg_server_free_port(); /* nothing listens there */
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
    if (!pg_srv.running) /* CORIO_TEST_PG: its port is not known here */
        skip();
    corio_test_run_checked(connect_by_name_main, NULL);
}

static int group_setup(void **state) {
    (void)state;
    int rc = pg_server_start();
    server_up = rc == 0;
    return rc < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    pg_server_stop();
    return 0;
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
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

#else /* built without libpq */

int main(void) {
    fprintf(stderr, "test_pg: skipped: corio was built without libpq (Debian libpq-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
