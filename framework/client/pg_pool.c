/* The PostgreSQL client's connection pool and checkout scope (corio/pg.h).
 *
 * Permits, as in the HTTP client's pool (pool.c): a semaphore of max_size
 * permits, one held by each checkout until its exit.  A connection coming
 * back is put on the idle list first and its permit released after, so the
 * first waiter (the semaphore is FIFO) wakes to find it idle and takes it.
 * Idle connections hold no permit; since one becomes idle only by coming
 * back, no more than max_size are ever open.
 *
 * No keeper task: idle connections are looked at when a checkout takes
 * them (closed past idle_timeout_ms, checked with "select 1" past
 * check_after_ms) and closed by corio_pg_pool_free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/scope.h"
#include "pg_internal.h"

/* A pooled connection: on its pool's idle list, or on the thread's list of
 * connections checked out (the checkout's exit hook is given only the
 * caller's variable, and finds the pool from there). */
typedef struct pg_idle {
    struct pg_idle *next;
    corio_pg_conn *c;
    struct corio_pg_pool *pool;
    uint64_t since;
} pg_idle;

static _Thread_local pg_idle *checked_out;

struct corio_pg_pool {
    char *conninfo;
    corio_pg_pool_opts o;
    corio_semaphore permits;
    corio_event drained; /* set when the last checkout returns while closing */
    pg_idle *idle;       /* most recently returned first */
    size_t out;          /* checked out (permits held) */
    size_t nidle;
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
    *out = p;
    return 0;
}

static void close_idle(corio_pg_pool *p) {
    while (p->idle) {
        pg_idle *i = p->idle;
        p->idle = i->next;
        corio_pg_close(i->c);
        free(i);
        p->nidle--;
    }
}

int corio_pg_pool_free(corio_pg_pool *p) {
    if (!p)
        return 0;
    if (!corio_current())
        return CORIO_ENOTASK;
    p->closing = true;
    close_idle(p);
    while (p->out > 0) {
        int rc = corio_event_wait(&p->drained);
        if (rc < 0)
            return rc; /* still closing: call again */
        corio_event_clear(&p->drained);
    }
    close_idle(p);
    free(p->conninfo);
    free(p);
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
static int take(corio_pg_pool *p, corio_pg_conn **out, pg_idle **node) {
    uint64_t now = corio_now();
    while (p->idle) {
        pg_idle *i = p->idle;
        p->idle = i->next;
        p->nidle--;
        corio_pg_conn *c = i->c;
        uint64_t since = i->since;
        free(*node); /* an entry of one closed before, if any */
        *node = i;
        if (!reusable(c) || now - since >= p->o.idle_timeout_ms) {
            corio_pg_close(c);
            continue;
        }
        if (now - since >= p->o.check_after_ms) {
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
    if (!*node && !(*node = malloc(sizeof **node)))
        return CORIO_ENOMEM;
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
    pg_idle *node = NULL; /* the list entry of the connection taken */
    rc = take(p, &c, &node);
    if (rc < 0) {
        free(node);
        give_back(p);
        return rc;
    }
    node->c = c;
    node->pool = p;
    node->next = checked_out;
    checked_out = node;
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
    pg_idle **pp = &checked_out;
    while (*pp && (*pp)->c != c)
        pp = &(*pp)->next;
    pg_idle *i = *pp;
    if (!i) {
        fprintf(stderr, "corio: corio_pg_checkout's exit: the connection variable was changed "
                        "in the body; its connection and permit are lost\n");
        return;
    }
    *pp = i->next;
    corio_pg_pool *p = i->pool;
    if (!p->closing && reusable(c)) {
        i->since = corio_now();
        i->next = p->idle;
        p->idle = i;
        p->nidle++;
    } else {
        corio_pg_close(c);
        free(i);
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
