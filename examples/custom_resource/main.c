/* SPDX-License-Identifier: MIT */
/* A resource type of your own (an async context manager: __aenter__ and
 * __aexit__), here a connection checked out of a pool of two.
 *
 *     async with pool.connection() as conn:   # may wait for a free one
 *         await conn.query(...)
 *
 * enter checks a connection out, awaiting while none is free (FIFO, through
 * a semaphore).  exit gives it back and is told how the body ended (`how`):
 * after a failure or a cancellation it first "resets" the connection, an
 * await that works even in a cancelled task because exit hooks run shielded,
 * under a deadline of their own.  If enter fails (the wait timed out) the
 * body is skipped and exit does not run.
 *
 * `how` follows control (scope.h's failure rule): `return
 * corio_scope_fail(rc)` from a scope nested inside the checkout is a failure
 * for every scope that return leaves, the checkout included, and so is a
 * deadline or cancellation the return passes on; a failure handled inside,
 * after which the body goes on to its end, is a normal end.
 */
#include <corio/corio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#define POOL_SIZE 2
#define RESET_MS 10

/* ---- the pool and its resource type ---------------------------------------- */

typedef struct conn {
    int id;
    unsigned queries;
} conn;

typedef struct pool {
    corio_semaphore available; /* one permit per free connection */
    conn conns[POOL_SIZE];
    conn *free[POOL_SIZE];
    size_t nfree;
} pool;

/* One checkout: CORIO_WITH's object, and where the body finds its conn. */
typedef struct lease {
    pool *pool;
    conn *conn;
    const char *who;
} lease;

static uint64_t t0;

static void say(const char *who, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("[%3llu ms] %-9s ", (unsigned long long)(corio_now() - t0), who);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static int lease_enter(void *self, uint64_t arg) {
    (void)arg;
    lease *l = self;
    int rc = corio_semaphore_acquire(&l->pool->available);
    if (rc < 0)
        return rc; /* the body is skipped, exit does not run */
    l->conn = l->pool->free[--l->pool->nfree];
    say(l->who, "checked out conn %d", l->conn->id);
    return 0;
}

static void lease_exit(void *self, int how) {
    lease *l = self;
    if (how < 0) {
        /* Mid-transaction, maybe: reset before anyone else uses it.  This
         * await succeeds even if the task was cancelled (shielded exit). */
        int rc = corio_sleep(RESET_MS);
        say(l->who, "returns conn %d, how=%s: reset it first (%s)", l->conn->id,
            corio_err_name(how), corio_err_name(rc));
    } else {
        say(l->who, "returns conn %d, how=%s", l->conn->id, corio_err_name(how));
    }
    l->pool->free[l->pool->nfree++] = l->conn;
    l->conn = NULL;
    corio_semaphore_release(&l->pool->available);
}

static const corio_resource_type lease_type = {
    .name = "pool connection", /* shown by corio_tasks_dump */
    .enter = lease_enter,
    .exit = lease_exit,
    .exit_timeout_ms = 1000, /* a reset that hangs is abandoned after 1 s */
};

static corio_resource pool_connection(pool *p, lease *l, const char *who) {
    *l = (lease){.pool = p, .conn = NULL, .who = who};
    return (corio_resource){.type = &lease_type, .self = l, .arg = 0};
}

static void pool_init(pool *p) {
    corio_semaphore_init(&p->available, POOL_SIZE);
    for (int i = 0; i < POOL_SIZE; i++) {
        p->conns[i] = (conn){.id = i + 1, .queries = 0};
        p->free[i] = &p->conns[i];
    }
    p->nfree = POOL_SIZE;
}

/* ---- users of the pool -------------------------------------------------------- */

typedef struct job {
    pool *pool;
    const char *name;
    uint64_t query_ms;
    bool fails;           /* the query fails: early return */
    uint64_t patience_ms; /* 0: wait for a connection as long as it takes */
} job;

static int use_connection(job *j) {
    lease l;
    int enter_rc = 0;
    CORIO_WITH_RC(enter_rc, pool_connection(j->pool, &l, j->name)) {
        /* The query has a second at most, in a scope of its own. */
        CORIO_WITH(corio_timeout_scope(1000)) {
            int rc = corio_sleep(j->query_ms); /* the query */
            if (rc < 0)
                return rc; /* cancelled: both exits see how=ECANCELED */
            if (j->fails) {
                say(j->name, "query failed, returning early");
                /* Leaves the timeout scope and the checkout: lease_exit,
                 * two scopes out, sees how=EPIPE and resets the conn. */
                return corio_scope_fail(CORIO_EPIPE);
            }
        }
        l.conn->queries++;
        say(j->name, "query done on conn %d", l.conn->id);
    }
    return enter_rc;
}

static int worker(void *arg) {
    job *j = arg;
    int rc = 0;
    if (j->patience_ms == 0)
        return use_connection(j);
    CORIO_WITH(corio_timeout_scope(j->patience_ms)) {
        rc = use_connection(j);
    }
    if (rc == CORIO_ETIMEDOUT)
        say(j->name, "gave up waiting for a connection after %llu ms",
            (unsigned long long)j->patience_ms);
    return rc;
}

static int amain(void *arg) {
    (void)arg;
    pool p;
    pool_init(&p);
    job jobs[] = {
        {.pool = &p, .name = "report", .query_ms = 50},
        {.pool = &p, .name = "flaky", .query_ms = 20, .fails = true},
        {.pool = &p, .name = "batch", .query_ms = 30},
        {.pool = &p, .name = "stuck", .query_ms = 60 * 1000},
        {.pool = &p, .name = "impatient", .query_ms = 10, .patience_ms = 20},
    };
    enum { NJOBS = sizeof jobs / sizeof jobs[0], STUCK = 3 };
    corio_task *ts[NJOBS] = {0};
    t0 = corio_now();
    int rc = 0;
    for (size_t i = 0; i < NJOBS && rc == 0; i++)
        rc = corio_spawn(&ts[i], jobs[i].name, worker, &jobs[i]);
    if (rc == 0)
        rc = corio_sleep(100);
    if (rc == 0) {
        say("main", "cancelling stuck");
        rc = corio_cancel(ts[STUCK]);
    }
    int results[NJOBS];
    for (size_t i = 0; i < NJOBS; i++) {
        if (rc < 0 && ts[i])
            (void)corio_cancel(ts[i]); /* something failed: stop everyone */
        results[i] = ts[i] ? corio_await(ts[i]) : CORIO_EFAILED;
        corio_task_release(ts[i]);
    }
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < NJOBS; i++)
        printf("%-9s -> %s\n", jobs[i].name, corio_err_name(results[i]));
    printf("pool: %zu of %d connections free; queries: conn 1 %u, conn 2 %u\n", p.nfree, POOL_SIZE,
           p.conns[0].queries, p.conns[1].queries);
    return p.nfree == POOL_SIZE ? 0 : CORIO_EFAILED;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "custom_resource: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
