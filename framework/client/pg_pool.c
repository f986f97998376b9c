/* SPDX-License-Identifier: MIT */
/* The PostgreSQL client's connection pool and checkout scope (corio/pg.h).
 *
 * Permits, as in the HTTP client's pool (pool.c): a semaphore of max_size
 * permits, one held by each checkout until its exit.  A connection coming
 * back is put on the idle list first and its permit released after, so the
 * first waiter (the semaphore is FIFO) wakes to find it idle and takes it.
 * Idle connections hold no permit; since one becomes idle only by coming
 * back, no more than max_size are ever open.
 *
 * A keeper task (one per pool, started when the first connection is
 * pooled, as the HTTP client's in pool.c) closes idle connections once they
 * pass idle_timeout_ms, and closes them all when the loop shuts down (it is
 * cancelled then, like every task) or the pool is freed, so a program that
 * never calls corio_pg_pool_free still ends with every connection closed.
 * A checkout also looks at the idle connection it takes (closed past
 * idle_timeout_ms, checked with "select 1" past check_after_ms).
 *
 * Each connection checked out points at its pool (corio_pg_conn.pool): the
 * checkout's exit hook is given only the caller's variable.  Idle ones are
 * linked through corio_pg_conn.idle_next.  corio_pg_close is not an await,
 * so the lists never change under a loop over them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/report.h"
#include "corio/scope.h"
#include "pg_internal.h"

struct corio_pg_pool {
    char *conninfo;
    corio_pg_pool_opts o;
    corio_semaphore permits;
    corio_event drained; /* set when the last checkout returns while closing */
    corio_event pooled;  /* set when a connection is pooled: wakes the keeper */
    corio_task *keeper;  /* NULL: none running */
    corio_pg_conn *idle; /* most recently returned first */
    size_t out;          /* checked out (permits held) */
    size_t nidle;
    unsigned refs; /* corio_pg_pool_free's and the keeper's */
    bool closing;
};

int corio_pg_pool_new(corio_pg_pool **out, const char *conninfo, const corio_pg_pool_opts *opts) {
    if (out)
        *out = NULL;
    if (!out || !conninfo)
        return CORIO_EINVAL;
    corio_pg_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->conninfo = strdup(conninfo))) {
        free(p);
        return CORIO_ENOMEM;
    }
    if (opts)
        p->o = *opts;
    p->o.max_size = p->o.max_size ? p->o.max_size : 10;
    p->o.idle_timeout_ms = p->o.idle_timeout_ms ? p->o.idle_timeout_ms : 60000;
    p->o.check_after_ms = p->o.check_after_ms ? p->o.check_after_ms : 1000;
    corio_semaphore_init(&p->permits, p->o.max_size);
    corio_event_init(&p->drained);
    corio_event_init(&p->pooled);
    p->refs = 1;
    *out = p;
    return 0;
}

static void pool_unref(corio_pg_pool *p) {
    if (--p->refs)
        return;
    free(p->conninfo);
    free(p);
}

/* Closes the idle connections idle since `before` or earlier (all:
 * UINT64_MAX).  Returns the time the next one expires (UINT64_MAX: none). */
static uint64_t close_idle(corio_pg_pool *p, uint64_t before) {
    uint64_t next = UINT64_MAX;
    for (corio_pg_conn **pp = &p->idle; *pp;) {
        corio_pg_conn *c = *pp;
        if (before == UINT64_MAX || c->idle_since <= before) {
            *pp = c->idle_next;
            c->idle_next = NULL;
            p->nidle--;
            corio_pg_close(c);
        } else {
            if (c->idle_since + p->o.idle_timeout_ms < next)
                next = c->idle_since + p->o.idle_timeout_ms;
            pp = &c->idle_next;
        }
    }
    return next;
}

static int keeper_task(void *arg) {
    corio_pg_pool *p = arg;
    while (!p->closing) {
        corio_event_clear(&p->pooled);
        uint64_t now = corio_now();
        uint64_t next = close_idle(p, now >= p->o.idle_timeout_ms ? now - p->o.idle_timeout_ms : 0);
        int rc;
        if (next == UINT64_MAX)
            rc = corio_event_wait(&p->pooled);
        else
            rc = corio_sleep(next > now ? next - now : 0);
        if (rc == CORIO_ECANCELED)
            break; /* the loop shuts down, or the pool is freed */
    }
    close_idle(p, UINT64_MAX);
    corio_task_release(p->keeper);
    p->keeper = NULL;
    pool_unref(p);
    return 0;
}

int corio_pg_pool_free(corio_pg_pool *p) {
    if (!p)
        return 0;
    if (!corio_current())
        return CORIO_ENOTASK;
    p->closing = true;
    close_idle(p, UINT64_MAX);
    if (p->keeper)
        corio_cancel(p->keeper);
    while (p->out > 0) {
        int rc = corio_event_wait(&p->drained);
        if (rc < 0)
            return rc; /* still closing: call again */
        corio_event_clear(&p->drained);
    }
    close_idle(p, UINT64_MAX);
    pool_unref(p);
    return 0;
}

size_t corio_pg_pool_idle(const corio_pg_pool *p) {
    return p ? p->nidle : 0;
}

size_t corio_pg_pool_in_use(const corio_pg_pool *p) {
    return p ? p->out : 0;
}

/* Whether an idle connection may be handed out again as it is. */
static bool reusable(const corio_pg_conn *c) {
    return !c->busy && !c->closing && !c->broken && PQstatus(c->pg) == CONNECTION_OK &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

/* Gives the permit back (and wakes corio_pg_pool_free when the last one is). */
static void give_back(corio_pg_pool *p) {
    p->out--;
    corio_semaphore_release(&p->permits);
    if (p->closing && p->out == 0)
        corio_event_set(&p->drained);
}

/* Await, holding a permit: an idle connection that passes its checks, or
 * a new one. */
static int take(corio_pg_pool *p, corio_pg_conn **out) {
    uint64_t now = corio_now();
    while (p->idle) {
        corio_pg_conn *c = p->idle;
        p->idle = c->idle_next;
        c->idle_next = NULL;
        p->nidle--;
        if (!reusable(c) || now - c->idle_since >= p->o.idle_timeout_ms) {
            corio_pg_close(c);
            continue;
        }
        if (now - c->idle_since >= p->o.check_after_ms) {
            corio_pg_result *r = NULL;
            int rc = corio_pg_query(c, &r, "select 1", 0, NULL);
            corio_pg_result_free(r);
            if (rc == CORIO_ECANCELED || rc == CORIO_ETIMEDOUT) {
                corio_pg_close(c); /* the caller is leaving */
                return rc;
            }
            if (rc < 0 || !reusable(c)) {
                corio_pg_close(c);
                continue;
            }
        }
        *out = c;
        return 0;
    }
    return corio_pg_connect(out, p->conninfo);
}

static int checkout_enter(void *self, uint64_t arg) {
    corio_pg_conn **out = self;
    corio_pg_pool *p = (corio_pg_pool *)(uintptr_t)arg;
    if (!out || !p)
        return CORIO_EINVAL;
    *out = NULL;
    if (!corio_current())
        return CORIO_ENOTASK;
    if (p->closing)
        return CORIO_ECLOSED;
    int rc = corio_semaphore_acquire(&p->permits);
    if (rc < 0)
        return rc;
    p->out++;
    if (p->closing) {
        give_back(p);
        return CORIO_ECLOSED;
    }
    corio_pg_conn *c = NULL;
    rc = take(p, &c);
    if (rc < 0) {
        give_back(p);
        return rc;
    }
    c->pool = p;
    *out = c;
    return 0;
}

static void checkout_exit(void *self, int how) {
    (void)how;
    corio_pg_conn **slot = self;
    corio_pg_conn *c = *slot;
    *slot = NULL;
    if (!c)
        return; /* the caller cleared it: the permit is lost (documented) */
    corio_pg_pool *p = c->pool;
    if (!p) {
        corio__report("corio_pg_checkout's exit: the connection variable was changed in the "
                      "body; its connection and permit are lost");
        return;
    }
    c->pool = NULL;
    if (!p->closing && reusable(c)) {
        c->idle_since = corio_now();
        c->idle_next = p->idle;
        p->idle = c;
        p->nidle++;
        corio_event_set(&p->pooled);
        corio_spawn_opts so = {.name = "pg-pool", .run_if_cancelled = true, .no_context = true};
        if (!p->keeper && corio_spawn_ex(&p->keeper, &so, keeper_task, p) == 0)
            p->refs++;
    } else {
        corio_pg_close(c);
    }
    give_back(p);
}
static const corio_resource_type checkout_type = {
    .name = "pg_checkout",
    .enter = checkout_enter,
    .exit = checkout_exit,
};

corio_resource corio_pg_checkout(corio_pg_pool *pool, corio_pg_conn **conn) {
    return (corio_resource){&checkout_type, conn, (uint64_t)(uintptr_t)pool};
}
