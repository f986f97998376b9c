/* SPDX-License-Identifier: MIT */
/* Batches and prepared statements on a PostgreSQL connection (corio/pg.h),
 * on libpq's pipeline mode.
 *
 * A run enters pipeline mode, queues every statement — a Prepare first for
 * a statement new to the connection's cache, then its execution (by name,
 * or unnamed with PQsendQueryParams), then one Sync at the end (one
 * implicit transaction; a Sync after each statement when they are
 * independent: libpq flushes at each, and the server too) — flushes
 * it all, and reads the answers back in the same order: each command's
 * result followed by a NULL, each Sync as PGRES_PIPELINE_SYNC.  The reading
 * is a cursor over the queued commands, so a run cut short by a deadline
 * or a cancel resumes it to drain, after a cancel request, exactly what is
 * still owed, then leaves pipeline mode with the connection idle.
 *
 * The statement cache maps SQL text to "corio_<n>"; an entry is added when
 * a run first sends its Prepare, is usable by later statements of the same
 * run at once (the server handles the Prepare first), and is dropped when
 * the Prepare fails or its outcome is unknown (a drained run), or when
 * the server no longer takes it (26000: deallocated; 0A000: the schema
 * changed under it).  Names are never reused, so a dropped entry's
 * statement lingering on the server cannot clash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/task.h"
#include "pg_internal.h"

#define MAX_PARAMS 65535

/* One statement of a run: borrowed text, then its outcome. */
typedef struct pg_item {
    const char *sql;
    const char *const *params;
    int nparams;
    unsigned stmt;  /* the cache's statement number, or 0: unnamed */
    bool prepares;  /* a Prepare of stmt precedes the execution */
    bool sync;      /* a Sync follows */
    int status;     /* 0, CORIO_EFAILED, CORIO_ECANCELED, or the run's code */
    PGresult *res;  /* the result, or the failure's (for its error fields) */
    size_t same_as; /* 1 + the item whose failed Prepare this one used, or 0 */
    char *mem;      /* a batch's copies of sql and params (one block) */
} pg_item;

struct corio_pg_batch {
    corio_pg_batch_opts opts;
    pg_item *items;
    size_t n, cap;
    bool ran;
};

/* Where a run's reading stands: the next item, and within it the next
 * message to read (PREPARE, EXEC, SYNC), then NEXT. */
enum { PH_PREPARE, PH_EXEC, PH_SYNC, PH_NEXT };
typedef struct cursor {
    size_t i;
    int phase;
    bool copy;
} cursor;

/* ---- the statement cache ---------------------------------------------------- */

static uint64_t hash_sql(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static corio__pg_stmt *stmt_find(corio_pg_conn *c, const char *sql, uint64_t h) {
    for (size_t i = 0; i < c->nstmts; i++)
        if (c->stmts[i].hash == h && !strcmp(c->stmts[i].sql, sql))
            return &c->stmts[i];
    return NULL;
}

static corio__pg_stmt *stmt_by_id(corio_pg_conn *c, unsigned id) {
    for (size_t i = 0; i < c->nstmts; i++)
        if (c->stmts[i].id == id)
            return &c->stmts[i];
    return NULL;
}

/* A new entry; NULL when the cache is full or memory is short
 * (the statement then runs unnamed). */
static corio__pg_stmt *stmt_add(corio_pg_conn *c, const char *sql, uint64_t h) {
    if (c->nstmts == CORIO__PG_STMTS_MAX)
        return NULL;
    if (c->nstmts == c->cap_stmts) {
        size_t cap = c->cap_stmts ? c->cap_stmts * 2 : 8;
        corio__pg_stmt *s = realloc(c->stmts, cap * sizeof *s);
        if (!s)
            return NULL;
        c->stmts = s;
        c->cap_stmts = cap;
    }
    char *copy = strdup(sql);
    if (!copy)
        return NULL;
    corio__pg_stmt *s = &c->stmts[c->nstmts++];
    *s = (corio__pg_stmt){.sql = copy, .hash = h, .id = ++c->next_stmt};
    return s;
}

static void stmt_drop(corio_pg_conn *c, unsigned id) {
    corio__pg_stmt *s = stmt_by_id(c, id);
    if (!s)
        return;
    free(s->sql);
    *s = c->stmts[--c->nstmts];
}

void corio__pg_stmts_free(corio_pg_conn *c) {
    for (size_t i = 0; i < c->nstmts; i++)
        free(c->stmts[i].sql);
    free(c->stmts);
    c->stmts = NULL;
    c->nstmts = c->cap_stmts = 0;
}

static void stmt_name(char *buf, size_t len, unsigned id) {
    snprintf(buf, len, "corio_%u", id);
}

/* ---- sending --------------------------------------------------------------------- */

/* Queues every item.  On failure (libpq refused: the connection gone, or
 * memory short) the pipeline's state is not worth reasoning about: c is
 * broken.  Returns 0 or an error. */
static int send_all(corio_pg_conn *c, pg_item *it, size_t n, const corio_pg_batch_opts *o) {
    char name[32];
    for (size_t i = 0; i < n; i++) {
        pg_item *t = &it[i];
        if (o->prepared) {
            uint64_t h = hash_sql(t->sql);
            corio__pg_stmt *s = stmt_find(c, t->sql, h);
            if (!s && (s = stmt_add(c, t->sql, h)) != NULL)
                t->prepares = true;
            t->stmt = s ? s->id : 0;
        }
        stmt_name(name, sizeof name, t->stmt);
        int ok = 1;
        if (t->prepares)
            ok = PQsendPrepare(c->pg, name, t->sql, t->nparams, NULL);
        if (ok && t->stmt)
            ok = PQsendQueryPrepared(c->pg, name, t->nparams, t->params, NULL, NULL, 0);
        else if (ok)
            ok = PQsendQueryParams(c->pg, t->sql, t->nparams, NULL, t->params, NULL, NULL, 0);
        t->sync = o->independent || i + 1 == n;
        if (ok && t->sync)
            ok = PQpipelineSync(c->pg);
        if (!ok) {
            return corio__pg_lost(c); /* run_items drops this run's prepares */
        }
    }
    return 0;
}

/* ---- reading ---------------------------------------------------------------------- */

/* Reads one command's results up to its NULL.  *first receives the first
 * result (NULL when the command gave none); the others are dropped. */
static int read_command(corio_pg_conn *c, cursor *cur, PGresult **first) {
    *first = NULL;
    for (;;) {
        int rc = corio__pg_await_result(c);
        if (rc < 0) {
            PQclear(*first);
            *first = NULL;
            return rc;
        }
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            return 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            /* COPY has no place in a pipeline: libpq cannot go on from
             * here without the COPY protocol. */
            cur->copy = true;
            PQclear(r);
            PQclear(*first);
            *first = NULL;
            return corio__pg_lost(c);
        }
        if (*first)
            PQclear(r);
        else
            *first = r;
    }
}

static bool result_ok(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* The outcome of a command's first result, into t (which keeps only its
 * first failure). */
static void settle(pg_item *t, PGresult *r) {
    if (t->status != 0 || t->res) { /* failed at its Prepare already */
        PQclear(r);
        return;
    }
    if (!r) {
        t->status = CORIO_EFAILED;
        return;
    }
    if (PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
        t->status = CORIO_ECANCELED;
        PQclear(r);
        return;
    }
    t->status = result_ok(r) ? 0 : CORIO_EFAILED;
    t->res = r;
}

/* Reads what is owed from cur on.  Returns 0 when everything was read, or
 * the error of a wait (the cursor says where to resume). */
static int read_all(corio_pg_conn *c, pg_item *it, size_t n, cursor *cur) {
    for (; cur->i < n; cur->i++, cur->phase = PH_PREPARE) {
        pg_item *t = &it[cur->i];
        PGresult *r;
        int rc;
        if (cur->phase == PH_PREPARE) {
            if (t->prepares) {
                if ((rc = read_command(c, cur, &r)) < 0)
                    return rc;
                if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
                    PQclear(r);
                } else {
                    stmt_drop(c, t->stmt);
                    settle(t, r);
                    if (t->status == 0) /* a NULL or odd answer to a Prepare */
                        t->status = CORIO_EFAILED;
                    /* Later statements of the run that use it fail for the
                     * same reason (not for its name being unknown). */
                    for (size_t j = cur->i + 1; j < n; j++)
                        if (it[j].stmt == t->stmt && !it[j].prepares)
                            it[j].same_as = cur->i + 1;
                }
            }
            cur->phase = PH_EXEC;
        }
        if (cur->phase == PH_EXEC) {
            if ((rc = read_command(c, cur, &r)) < 0)
                return rc;
            /* A cached statement that the server no longer takes: one it
             * does not know (26000: a DEALLOCATE or DISCARD of the
             * caller's), or one whose result type a schema change altered
             * (0A000: "cached plan must not change result type"): forget
             * it, so the next run prepares it again. */
            const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
            if (t->stmt && !t->prepares && state &&
                (!strcmp(state, "26000") || !strcmp(state, "0A000")))
                stmt_drop(c, t->stmt);
            if (t->same_as) { /* its Prepare failed earlier in the run */
                PQclear(r);
                if (t->status == 0)
                    t->status = CORIO_EFAILED;
            } else {
                settle(t, r);
            }
            cur->phase = PH_SYNC;
        }
        if (cur->phase == PH_SYNC && t->sync) {
            if ((rc = corio__pg_await_result(c)) < 0)
                return rc;
            r = PQgetResult(c->pg);
            bool synced = r && PQresultStatus(r) == PGRES_PIPELINE_SYNC;
            PQclear(r);
            if (!synced) { /* out of step with libpq: no way to go on */
                corio__pg_set_error(c, NULL, "pipeline out of step: expected a sync", NULL);
                c->broken = true;
                return CORIO_ECONNABORTED;
            }
        }
    }
    return 0;
}

/* The drain after a run was cut short: what is owed from the cursor on. */
typedef struct drain_arg {
    pg_item *it;
    size_t n;
    cursor *cur;
} drain_arg;

static int drain_run(corio_pg_conn *c, void *arg) {
    drain_arg *d = arg;
    return read_all(c, d->it, d->n, d->cur);
}

/* ---- a run ------------------------------------------------------------------------ */

static int run_items(corio_pg_conn *c, pg_item *it, size_t n, const corio_pg_batch_opts *o) {
    for (size_t i = 0; i < n; i++) {
        it[i].status = 0;
        it[i].res = NULL;
        it[i].stmt = 0;
        it[i].prepares = false;
        it[i].same_as = 0;
    }
    if (!PQenterPipelineMode(c->pg)) {
        corio__pg_set_libpq_error(c);
        for (size_t i = 0; i < n; i++)
            it[i].status = CORIO_EFAILED;
        return CORIO_EFAILED;
    }
    cursor cur = {0};
    int rc = send_all(c, it, n, o);
    if (rc == 0)
        rc = corio__pg_flush(c);
    if (rc == 0)
        rc = read_all(c, it, n, &cur);
    if (rc == CORIO_ETIMEDOUT || rc == CORIO_ECANCELED) {
        corio__pg_recover(c, drain_run, &(drain_arg){it, n, &cur});
        corio__pg_set_error(c, NULL, corio_strerror(rc), NULL);
    }
    if (rc < 0) {
        /* Prepares whose outcome was not read are unknown: forget them. */
        for (size_t i = cur.i; i < n; i++)
            if (it[i].prepares)
                stmt_drop(c, it[i].stmt);
    }
    if (!c->broken && !PQexitPipelineMode(c->pg)) {
        corio__pg_set_libpq_error(c);
        c->broken = true;
        if (rc == 0)
            rc = CORIO_ECONNABORTED;
    }
    if (cur.copy)
        rc = CORIO_ENOTSUP;
    if (rc < 0) {
        if (rc == CORIO_ENOTSUP)
            corio__pg_set_error(c, NULL,
                                "COPY is not supported in a batch (the connection is broken: "
                                "close it)",
                                NULL);
        for (size_t i = 0; i < n; i++) {
            PQclear(it[i].res);
            it[i].res = NULL;
            it[i].status = rc;
        }
        return rc;
    }
    size_t failed = n;
    for (size_t i = 0; i < n && failed == n; i++)
        if (it[i].status == CORIO_EFAILED)
            failed = i;
    if (failed == n)
        return 0;
    if (it[failed].res)
        corio__pg_result_error(c, it[failed].res);
    else
        corio__pg_set_error(c, NULL, "no result", NULL);
    if (!o->independent) /* the others were rolled back, or never ran */
        for (size_t i = 0; i < n; i++)
            if (i != failed) {
                PQclear(it[i].res);
                it[i].res = NULL;
                it[i].status = CORIO_ECANCELED;
            }
    return CORIO_EFAILED;
}

static bool params_ok(const char *sql, size_t nparams, const char *const *params) {
    return sql && (nparams == 0 || params) && nparams <= MAX_PARAMS;
}

int corio_pg_query_prepared(corio_pg_conn *c, corio_pg_result **out, const char *sql,
                            size_t nparams, const char *const *params) {
    if (out)
        *out = NULL;
    if (!c || !out || !params_ok(sql, nparams, params))
        return CORIO_EINVAL;
    int rc = corio__pg_call_begin(c);
    if (rc < 0)
        return rc;
    pg_item t = {.sql = sql, .params = params, .nparams = (int)nparams};
    const corio_pg_batch_opts o = {.prepared = true};
    rc = run_items(c, &t, 1, &o);
    if (corio__pg_call_end(c)) {
        PQclear(t.res);
        return CORIO_ECLOSED;
    }
    if (rc == 0)
        *out = (corio_pg_result *)t.res;
    else
        PQclear(t.res);
    return rc;
}

/* ---- batches ------------------------------------------------------------------------ */

int corio_pg_batch_new(corio_pg_batch **out, const corio_pg_batch_opts *opts) {
    if (!out)
        return CORIO_EINVAL;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return CORIO_ENOMEM;
    if (opts)
        (*out)->opts = *opts;
    return 0;
}

int corio_pg_batch_add(corio_pg_batch *b, const char *sql, size_t nparams,
                       const char *const *params) {
    if (!b || b->ran || !params_ok(sql, nparams, params))
        return CORIO_EINVAL;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        pg_item *items = realloc(b->items, cap * sizeof *items);
        if (!items)
            return CORIO_ENOMEM;
        b->items = items;
        b->cap = cap;
    }
    /* One block: the parameter pointers, then sql and each value. */
    size_t size = nparams * sizeof(char *) + strlen(sql) + 1;
    for (size_t i = 0; i < nparams; i++)
        size += params[i] ? strlen(params[i]) + 1 : 0;
    char *mem = malloc(size);
    if (!mem)
        return CORIO_ENOMEM;
    const char **ps = (const char **)(void *)mem;
    char *p = mem + nparams * sizeof(char *);
    size_t len = strlen(sql) + 1;
    memcpy(p, sql, len);
    const char *sql_copy = p;
    p += len;
    for (size_t i = 0; i < nparams; i++) {
        if (!params[i]) {
            ps[i] = NULL;
            continue;
        }
        len = strlen(params[i]) + 1;
        memcpy(p, params[i], len);
        ps[i] = p;
        p += len;
    }
    b->items[b->n++] = (pg_item){
        .sql = sql_copy, .params = ps, .nparams = (int)nparams, .status = CORIO_EINVAL, .mem = mem};
    return 0;
}

size_t corio_pg_batch_size(const corio_pg_batch *b) {
    return b ? b->n : 0;
}

int corio_pg_batch_run(corio_pg_conn *c, corio_pg_batch *b) {
    if (!c || !b || b->ran || b->n == 0)
        return CORIO_EINVAL;
    int rc = corio__pg_call_begin(c);
    if (rc < 0)
        return rc;
    b->ran = true;
    rc = run_items(c, b->items, b->n, &b->opts);
    if (corio__pg_call_end(c)) {
        for (size_t i = 0; i < b->n; i++) {
            PQclear(b->items[i].res);
            b->items[i].res = NULL;
            b->items[i].status = CORIO_ECLOSED;
        }
        return CORIO_ECLOSED;
    }
    return rc;
}

int corio_pg_batch_result(const corio_pg_batch *b, size_t i, const corio_pg_result **out) {
    if (out)
        *out = NULL;
    if (!b || !b->ran || i >= b->n)
        return CORIO_EINVAL;
    const pg_item *t = &b->items[i];
    if (t->status == 0 && out)
        *out = (const corio_pg_result *)t->res;
    return t->status;
}

static const char *failure_field(const corio_pg_batch *b, size_t i, int field) {
    if (!b || !b->ran || i >= b->n || b->items[i].status != CORIO_EFAILED)
        return "";
    const pg_item *t = b->items[i].same_as ? &b->items[b->items[i].same_as - 1] : &b->items[i];
    if (!t->res)
        return "";
    const char *v = PQresultErrorField(t->res, field);
    return v ? v : "";
}

const char *corio_pg_batch_sqlstate(const corio_pg_batch *b, size_t i) {
    return failure_field(b, i, PG_DIAG_SQLSTATE);
}

const char *corio_pg_batch_error(const corio_pg_batch *b, size_t i) {
    return failure_field(b, i, PG_DIAG_MESSAGE_PRIMARY);
}

void corio_pg_batch_free(corio_pg_batch *b) {
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        PQclear(b->items[i].res);
        free(b->items[i].mem);
    }
    free(b->items);
    free(b);
}
