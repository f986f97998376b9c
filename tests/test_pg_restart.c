/* SPDX-License-Identifier: MIT */
/* A PostgreSQL server that goes away under a running pool, and comes back
 * (corio/pg.h): calls fail clearly and promptly, the pool recovers.  The
 * test starts its own server (pg_server.h); with CORIO_TEST_PG it skips,
 * since it must stop and start the server. */
#include "corio_test.h"

#ifdef CORIO_HAVE_PG
#include <corio/pg.h>
#include <signal.h>
#include <string.h>

#include "pg_server.h"

static int halt_job(void *arg) {
    (void)arg;
    return pg_server_halt() == 0 ? 0 : CORIO_EFAILED;
}

static int resume_job(void *arg) {
    (void)arg;
    return pg_server_resume() == 0 ? 0 : CORIO_EFAILED;
}

/* Runs a blocking pg_ctl job on the thread pool, the loop going on. */
static int off_loop(corio_task_fn job) {
    corio_future *f = NULL;
    int rc = corio_run_blocking(&f, job, NULL);
    if (rc == 0) {
        rc = corio_future_await(f);
        corio_future_release(f);
    }
    return rc;
}

/* Checks a connection out and runs `select <n>`; the result code, and the
 * value in *got. */
static int pooled_select(corio_pg_pool *pool, int n, int64_t *got) {
    corio_pg_conn *db = NULL;
    int rc = 0, qrc = CORIO_EFAILED;
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        char sql[32];
        snprintf(sql, sizeof sql, "select %d", n);
        corio_pg_result *r = NULL;
        qrc = corio_pg_query(db, &r, sql, 0, NULL);
        if (qrc == 0 && corio_pg_int64(r, 0, 0, got) != 0)
            qrc = CORIO_EFAILED;
        if (qrc)
            fprintf(stderr, "test_pg_restart: select %d: %s: [%s] %s\n", n, corio_err_name(qrc),
                    corio_pg_sqlstate(db), corio_pg_error(db));
        corio_pg_result_free(r);
    }
    if (rc < 0) {
        fprintf(stderr, "test_pg_restart: checkout: %s: %s\n", corio_err_name(rc),
                corio_pg_error(NULL));
        return rc;
    }
    return qrc;
}

typedef struct sleeper {
    corio_pg_pool *pool;
    int rc;
    char sqlstate[6];
    bool done;
} sleeper;

static int sleeper_task(void *arg) {
    sleeper *s = arg;
    corio_pg_conn *db = NULL;
    CORIO_WITH_RC(s->rc, corio_pg_checkout(s->pool, &db)) {
        corio_pg_result *r = NULL;
        s->rc = corio_pg_query(db, &r, "select pg_sleep(60)", 0, NULL);
        snprintf(s->sqlstate, sizeof s->sqlstate, "%s", corio_pg_sqlstate(db));
        corio_pg_result_free(r);
    }
    s->done = true;
    return 0;
}

static int restart_main(void *arg) {
    (void)arg;
    corio_pg_pool *pool = NULL;
    const corio_pg_pool_opts opts = {.max_size = 3, .check_after_ms = 60000};
    SOFT(corio_pg_pool_new(&pool, pg_srv.conninfo, &opts) == 0);
    if (!pool)
        return 0;
    int64_t v = 0;
    SOFT(pooled_select(pool, 1, &v) == 0 && v == 1);
    SOFT(corio_pg_pool_idle(pool) == 1);

    /* A query in flight when the server shuts down fails at once, with a
     * clear code, and its connection is not pooled again. */
    sleeper s = {.pool = pool};
    corio_task *t = corio_test_spawn("sleeper", sleeper_task, &s);
    SOFT(pg_server_wait_running("select pg_sleep(60)") == 0);
    SOFT(off_loop(halt_job) == 0);
    corio_test_join(t);
    SOFT(s.done);
    SOFT(s.rc == CORIO_ECONNRESET); /* a FATAL that came first is reported so too */
    fprintf(stderr, "test_pg_restart: in flight: %s [%s]\n", corio_err_name(s.rc), s.sqlstate);
    SOFT(corio_pg_pool_in_use(pool) == 0);
    SOFT(corio_pg_pool_idle(pool) == 0); /* neither connection was kept */

    /* While the server is down: a checkout fails clearly, without waiting
     * out a timeout. */
    SOFT(pooled_select(pool, 2, &v) == CORIO_ECONNREFUSED);
    SOFT(strstr(corio_pg_error(NULL), "refused") != NULL);
    SOFT(corio_pg_pool_in_use(pool) == 0);

    /* Back: the pool opens fresh connections. */
    SOFT(off_loop(resume_job) == 0);
    SOFT(pooled_select(pool, 3, &v) == 0 && v == 3);
    SOFT(corio_pg_pool_idle(pool) == 1);

    /* An idle pooled connection that the server dropped while it was away
     * (and handed out unchecked: check_after_ms is long here) fails its
     * first query clearly; the checkout's exit closes it; the next
     * checkout works. */
    SOFT(off_loop(halt_job) == 0);
    SOFT(off_loop(resume_job) == 0);
    char state[6] = "";
    corio_pg_conn *db = NULL;
    int rc = 0, qrc = 0;
    CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
        corio_pg_result *r = NULL;
        qrc = corio_pg_query(db, &r, "select 4", 0, NULL);
        snprintf(state, sizeof state, "%s", corio_pg_sqlstate(db));
        fprintf(stderr, "test_pg_restart: stale idle: %s [%s] %s\n", corio_err_name(qrc), state,
                corio_pg_error(db));
        corio_pg_result_free(r);
    }
    SOFT(rc == 0);
    SOFT(qrc == CORIO_ECONNRESET);
    SOFT(corio_pg_pool_idle(pool) == 0);
    SOFT(pooled_select(pool, 5, &v) == 0 && v == 5);
    SOFT(corio_pg_pool_free(pool) == 0);
    return 0;
}

static void test_pg_restart_under_a_running_pool(void **state) {
    (void)state;
    pg_server_need("test_pg_restart", true);
    corio_test_run_checked(restart_main, NULL);
}

/* ---- a stalled server: cancels do not eat the thread pool; close ends a call at once ----- */

/* The postmaster's pid (first line of data/postmaster.pid), or -1. */
static pid_t postmaster_pid(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/data/postmaster.pid", pg_srv.dir);
    FILE *f = fopen(path, "r");
    long pid = -1;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = -1;
        fclose(f);
    }
    return (pid_t)pid;
}

typedef struct stalled {
    corio_pg_conn *db;
    int rc;
    bool done;
} stalled;

/* A query cut by a 100 ms deadline while the postmaster is stopped: its
 * cancel request (PQcancel, a new connection to the postmaster) waits. */
static int stalled_task(void *arg) {
    stalled *s = arg;
    corio_pg_result *r = NULL;
    CORIO_WITH(corio_timeout_scope(100)) {
        s->rc = corio_pg_query(s->db, &r, "select pg_sleep(2)", 0, NULL);
    }
    corio_pg_result_free(r);
    s->done = true;
    return 0;
}

static int noop_job(void *arg) {
    (void)arg;
    return 7;
}

static int stall_main(void *arg) {
    (void)arg;
    enum { N = 4 };
    stalled s[N] = {0};
    for (int i = 0; i < N; i++) {
        SOFT(corio_pg_connect(&s[i].db, pg_srv.conninfo) == 0);
        if (!s[i].db)
            return 0;
    }
    pid_t pm = postmaster_pid();
    SOFT(pm > 0 && kill(pm, SIGSTOP) == 0);
    corio_task *t[N];
    for (int i = 0; i < N; i++)
        t[i] = corio_test_spawn("stalled", stalled_task, &s[i]);
    /* Let every query's 100 ms deadline pass and its call reach its drain
     * (the cancels waiting on the stopped postmaster): nothing outside the
     * client shows that state, and the postmaster cannot be asked. */
    SOFT(corio_sleep(300) == 0);
    /* libuv's pool (4 threads) still runs other work: at most two cancels
     * wait in it. */
    corio_future *f = NULL;
    int rc = CORIO_EFAILED;
    CORIO_WITH(corio_timeout_scope(10000)) {
        SOFT(corio_run_blocking(&f, noop_job, NULL) == 0);
        rc = corio_future_await(f);
    }
    SOFT(rc == 7);
    corio_future_release(f);
    /* Closing a connection whose call waits on its cancel ends that call
     * now, while the postmaster is still stopped. */
    for (int i = 0; i < N; i++)
        corio_pg_close(s[i].db);
    for (int i = 0; i < N; i++) {
        corio_test_join(t[i]);
        SOFT(s[i].done && s[i].rc == CORIO_ECLOSED);
    }
    SOFT(kill(pm, SIGCONT) == 0);
    return 0;
}

static void test_pg_stalled_server_cancels_bounded_and_close_is_prompt(void **state) {
    (void)state;
    pg_server_need("test_pg_restart", true);
    corio_test_run_checked(stall_main, NULL);
    pid_t pm = postmaster_pid(); /* never leave it stopped, even on failure */
    if (pm > 0)
        kill(pm, SIGCONT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_restart_under_a_running_pool),
        cmocka_unit_test(test_pg_stalled_server_cancels_bounded_and_close_is_prompt),
    };
    return cmocka_run_group_tests(tests, pg_server_group_setup, pg_server_group_teardown);
}

#else /* built without libpq */

int main(void) {
    fprintf(stderr, "test_pg_restart: skipped: corio was built without libpq (Debian libpq-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
