/* SPDX-License-Identifier: MIT */
/* Queries on a PostgreSQL connection (corio/pg.h): send, flush, collect;
 * and when the calling task gives up, cancel on the server and drain.
 *
 * A query is PQsendQueryParams, then PQflush until libpq's output buffer is
 * empty (waiting for the socket to take more, and reading meanwhile, as
 * libpq's docs ask), then PQconsumeInput while PQisBusy, and PQgetResult
 * until it says NULL.  Every wait is corio__pg_wait, an await of the task.
 *
 * A wait cut short by a deadline or a cancel leaves the query running on
 * the server and its answer coming.  corio__pg_recover() puts the connection back to
 * idle before the call returns: shielded (the task's cancel would fail each
 * await) and under a 5 s timeout of its own, it finishes sending the query,
 * sends a cancel request — PQcancel opens a second connection and blocks, so
 * it runs on the thread pool and is awaited there, which also means the
 * cancel has reached the server before the connection can be reused — and
 * reads results until the server is idle again.
 */
#include <stdlib.h>
#include <string.h>

#include "corio/loop.h"
#include "corio/scope.h"
#include "corio/task.h"
#include "pg_internal.h"

#define DRAIN_TIMEOUT_MS 5000
#define RECANCEL_MS 250
#define MAX_PARAMS 65535

int corio__pg_lost(corio_pg_conn *c) {
    corio__pg_set_libpq_error(c);
    c->broken = true;
    return CORIO_ECONNRESET;
}

int corio__pg_flush(corio_pg_conn *c) {
    int r;
    while ((r = PQflush(c->pg)) == 1) {
        int ev = corio__pg_wait(c, UV_READABLE | UV_WRITABLE);
        if (ev < 0)
            return ev;
        if ((ev & UV_READABLE) && !PQconsumeInput(c->pg))
            return corio__pg_lost(c);
    }
    return r == 0 ? 0 : corio__pg_lost(c);
}

int corio__pg_await_result(corio_pg_conn *c) {
    while (PQisBusy(c->pg)) {
        int ev = corio__pg_wait(c, UV_READABLE);
        if (ev < 0)
            return ev;
        if (!PQconsumeInput(c->pg))
            return corio__pg_lost(c);
    }
    return 0;
}

/* COPY TO STDOUT: reads the data and drops it. */
static int skip_copy_out(corio_pg_conn *c) {
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(c->pg, &buf, 1);
        if (n > 0) {
            PQfreemem(buf);
            continue;
        }
        if (n == -1)
            return 0; /* done: the command's result follows */
        if (n == -2)
            return corio__pg_lost(c);
        int ev = corio__pg_wait(c, UV_READABLE);
        if (ev < 0)
            return ev;
        if (!PQconsumeInput(c->pg))
            return corio__pg_lost(c);
    }
}

static bool result_ok(const PGresult *r) {
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* Reads results until PQgetResult says NULL.  *keep receives the first
 * failed result, or else the last one (NULL if keep is NULL: all dropped).
 * *copy is set when a COPY was refused or skipped.  Returns 0 or a wait's
 * error (then *keep may hold a result already). */
static int collect(corio_pg_conn *c, PGresult **keep, bool *copy) {
    for (;;) {
        int rc = corio__pg_await_result(c);
        if (rc < 0)
            return rc;
        PGresult *r = PQgetResult(c->pg);
        if (!r)
            return 0;
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            *copy = true;
            PQclear(r);
            if (st == PGRES_COPY_IN) {
                if (PQputCopyEnd(c->pg, "COPY FROM STDIN is not supported by corio_pg_query") < 0)
                    return corio__pg_lost(c);
                rc = corio__pg_flush(c);
            } else if (st == PGRES_COPY_OUT) {
                rc = skip_copy_out(c);
            } else {
                rc = corio__pg_lost(c); /* replication protocol: nothing to do with it here */
            }
            if (rc < 0)
                return rc;
            continue;
        }
        if (!keep)
            PQclear(r);
        else if (!*keep)
            *keep = r;
        else if (!result_ok(*keep))
            PQclear(r); /* the first failure is the one to report */
        else {
            PQclear(*keep);
            *keep = r;
        }
    }
}

/* A cancel request on the thread pool.  libpq 15's PQcancel blocks until
 * the server closes the cancel connection, with no timeout: a server that
 * stalls holds the thread as long.  So at most MAX_CANCELS run at once in
 * the process (a cancel beyond that is skipped: the drain waits the
 * statement out, bounded as ever), leaving the rest of libuv's pool to
 * everything else. */
#define MAX_CANCELS 2
static unsigned cancels_running; /* loop thread only */

typedef struct cancel_job {
    PGcancel *cancel;
    corio_future *wake; /* the await of send_cancel, completed when the job ends */
    char err[256];
    int ok;
} cancel_job;

static int cancel_run(void *arg) { /* on the thread pool */
    cancel_job *j = arg;
    j->ok = PQcancel(j->cancel, j->err, sizeof j->err);
    return j->ok ? 0 : CORIO_EFAILED; /* the future's result: j may be freed before it is read */
}

static void cancel_job_done(corio_future *f, void *data) {
    cancel_job *j = data;
    cancels_running--;
    corio_future_complete(j->wake, f ? corio_future_result(f) : CORIO_EFAILED, NULL);
    corio_future_release(j->wake);
    PQfreeCancel(j->cancel);
    free(j);
}

int corio__pg_send_cancel(corio_pg_conn *c) {
    if (cancels_running >= MAX_CANCELS)
        return CORIO_EBUSY;
    cancel_job *j = calloc(1, sizeof *j);
    if (!j)
        return CORIO_ENOMEM;
    int rc = corio_future_new(&j->wake);
    if (rc < 0) {
        free(j);
        return rc;
    }
    j->cancel = PQgetCancel(c->pg);
    corio_future *f = NULL;
    rc = j->cancel ? corio_run_blocking(&f, cancel_run, j) : CORIO_ECLOSED;
    if (rc == 0) {
        cancels_running++;
        rc = corio_future_add_done_cb(f, cancel_job_done, j);
        if (rc < 0) { /* cannot free j before the thread ends: wait for it */
            CORIO_WITH(corio_shield_scope()) {
                corio_future_await(f);
            }
            cancel_job_done(f, j); /* frees j and wake */
            corio_future_release(f);
            return rc;
        }
        corio_future_release(f);
    }
    if (rc < 0) {
        if (j->cancel)
            PQfreeCancel(j->cancel);
        corio_future_release(j->wake);
        free(j);
        return rc;
    }
    /* j belongs to its done callback now; wake has two references: the
     * job's and this await's. */
    corio_future *wake = corio_future_retain(j->wake);
    c->cancel_wait = wake; /* corio_pg_close completes it */
    rc = corio_future_await(wake);
    c->cancel_wait = NULL; /* c lives on until the call ends, closed or not */
    corio_future_release(wake);
    return rc;
}

void corio__pg_recover(corio_pg_conn *c, int (*drain)(corio_pg_conn *c, void *arg), void *arg) {
    int rc = 0;
    uint64_t end = corio_now() + DRAIN_TIMEOUT_MS;
    CORIO_WITH(corio_shield_scope()) {
        CORIO_WITH(corio_timeout_scope(DRAIN_TIMEOUT_MS)) {
            rc = corio__pg_flush(c);
            while (rc == 0 || rc == CORIO_ETIMEDOUT) {
                /* A failed cancel: the drain waits the statement out.  One
                 * that came before the statement started, or a statement
                 * after it (independent statements of a batch), gets
                 * another when the drain stalls for a slice. */
                corio__pg_send_cancel(c);
                uint64_t now = corio_now();
                if (now >= end) {
                    rc = CORIO_ETIMEDOUT;
                    break;
                }
                uint64_t slice = end - now < RECANCEL_MS ? end - now : RECANCEL_MS;
                CORIO_WITH(corio_timeout_scope(slice)) {
                    rc = drain(c, arg);
                }
                if (rc == 0)
                    break;
            }
        }
    }
    if (rc < 0 && rc != CORIO_ECLOSED)
        c->broken = true;
}

static int drain_query(corio_pg_conn *c, void *arg) {
    (void)arg;
    bool copy = false;
    return collect(c, NULL, &copy);
}

int corio__pg_result_error(corio_pg_conn *c, const PGresult *r) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    corio__pg_set_error(c, PQresultErrorField(r, PG_DIAG_SQLSTATE),
                        msg ? msg : PQresultErrorMessage(r),
                        PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL));
    return CORIO_EFAILED;
}

static int run_query(corio_pg_conn *c, corio_pg_result **out, const char *sql, size_t nparams,
                     const char *const *params) {
    if (!PQsendQueryParams(c->pg, sql, (int)nparams, NULL, params, NULL, NULL, 0)) {
        if (PQstatus(c->pg) == CONNECTION_BAD)
            return corio__pg_lost(c);
        corio__pg_set_libpq_error(c);
        return CORIO_EFAILED;
    }
    PGresult *keep = NULL;
    bool copy = false;
    int rc = corio__pg_flush(c);
    if (rc == 0)
        rc = collect(c, &keep, &copy);
    if (rc == CORIO_ETIMEDOUT || rc == CORIO_ECANCELED) {
        corio__pg_recover(c, drain_query, NULL);
        corio__pg_set_error(c, NULL, corio_strerror(rc), NULL);
    } else if (rc < 0) {
        /* Sent, its results unread (no memory to wait for them, or the
         * socket failed): the connection is mid-statement, and draining
         * would need what just failed.  Later calls get ECONNABORTED. */
        c->broken = true;
        if (rc == CORIO_ENOMEM)
            corio__pg_set_error(c, NULL, corio_strerror(rc), NULL);
    }
    if (rc == 0 && copy) {
        corio__pg_set_error(c, NULL, "COPY is not supported by corio_pg_query", NULL);
        rc = CORIO_ENOTSUP;
    } else if (rc == 0 && !keep) {
        corio__pg_set_error(c, NULL, "no result", NULL);
        rc = CORIO_EFAILED;
    } else if (rc == 0 && !result_ok(keep)) {
        rc = corio__pg_result_error(c, keep);
        if (PQstatus(c->pg) == CONNECTION_BAD) { /* a FATAL: the server ended the session */
            c->broken = true;
            rc = CORIO_ECONNRESET;
        }
    }
    if (rc == 0) {
        *out = (corio_pg_result *)keep;
        keep = NULL;
    }
    PQclear(keep);
    return rc;
}

int corio__pg_call_begin(corio_pg_conn *c) {
    if (!corio_current())
        return CORIO_ENOTASK;
    if (c->busy || c->closing)
        return c->closing ? CORIO_ECLOSED : CORIO_EBUSY;
    corio__pg_clear_error(c);
    /* A deadline passed or a cancel already in effect: nothing is sent
     * (it would run, and perhaps commit, while the call reports it cut). */
    corio_cancel_reason why = corio_cancelled_reason();
    if (why != CORIO_CANCEL_NONE) {
        int rc = why == CORIO_CANCEL_TIMEOUT ? CORIO_ETIMEDOUT : CORIO_ECANCELED;
        corio__pg_set_error(c, NULL, corio_strerror(rc), NULL);
        return rc;
    }
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
        corio__pg_set_error(c, NULL,
                            "the connection is broken (lost, or not drained after a "
                            "cancel): close it",
                            NULL);
        return CORIO_ECONNABORTED;
    }
    c->busy = true;
    return 0;
}

bool corio__pg_call_end(corio_pg_conn *c) {
    c->busy = false;
    if (!c->closing)
        return false;
    corio__pg_conn_free(c);
    return true;
}

int corio_pg_query(corio_pg_conn *c, corio_pg_result **out, const char *sql, size_t nparams,
                   const char *const *params) {
    if (out)
        *out = NULL;
    if (!c || !out || !sql || (nparams > 0 && !params) || nparams > MAX_PARAMS)
        return CORIO_EINVAL;
    int rc = corio__pg_call_begin(c);
    if (rc < 0)
        return rc;
    rc = run_query(c, out, sql, nparams, params);
    if (corio__pg_call_end(c)) {
        corio_pg_result_free(*out);
        *out = NULL;
        return CORIO_ECLOSED;
    }
    return rc;
}
