/* SPDX-License-Identifier: MIT */
/* The PostgreSQL client's transaction scope (corio/pg.h): BEGIN on enter,
 * COMMIT on a normal end, ROLLBACK on every other; the outcome kept in the
 * caller's corio_pg_tx for corio_pg_tx_result().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/loop.h"
#include "corio/scope.h"
#include "corio/task.h"
#include "pg_internal.h"

/* Await: runs a statement without rows; the result's command tag copied
 * into tag (may be NULL). */
static int run(corio_pg_conn *c, const char *sql, char *tag, size_t taglen) {
    corio_pg_result *r = NULL;
    int rc = corio_pg_query(c, &r, sql, 0, NULL);
    if (rc == 0 && tag) {
        const char *t = PQcmdStatus(corio__pg_res(r));
        snprintf(tag, taglen, "%s", t ? t : "");
    }
    corio_pg_result_free(r);
    return rc;
}

static int tx_enter(void *self, uint64_t arg) {
    (void)arg;
    corio_pg_tx *tx = self;
    if (!tx)
        return CORIO_EINVAL;
    tx->result = CORIO_EINVAL;
    if (!tx->conn)
        return CORIO_EINVAL;
    const char *iso = "";
    switch (tx->opts.isolation) {
    case CORIO_PG_READ_COMMITTED:
        iso = " isolation level read committed";
        break;
    case CORIO_PG_REPEATABLE_READ:
        iso = " isolation level repeatable read";
        break;
    case CORIO_PG_SERIALIZABLE:
        iso = " isolation level serializable";
        break;
    default:
        return CORIO_EINVAL;
    }
    char sql[96];
    snprintf(sql, sizeof sql, "begin%s%s", iso, tx->opts.read_only ? " read only" : "");
    int rc = run(tx->conn, sql, NULL, 0);
    tx->result = rc;
    return rc;
}

static void tx_exit(void *self, int how) {
    corio_pg_tx *tx = self;
    corio_pg_conn *c = tx->conn;
    if (how != 0) {
        /* Rolled back: the result is why.  A failed ROLLBACK (a lost
         * connection) leaves the server to roll back when it notices.
         * The failure the body left on c (a statement's SQLSTATE) stays
         * readable after the block: the ROLLBACK, a call of its own, would
         * clear it, so it is put back when the ROLLBACK succeeds. */
        char state[sizeof c->sqlstate];
        memcpy(state, c->sqlstate, sizeof state);
        char *message = c->message, *detail = c->detail;
        c->message = c->detail = NULL;
        tx->result = how;
        if (run(c, "rollback", NULL, 0) != 0) { /* c may be gone (closed meanwhile) */
            free(message);
            free(detail);
            return;
        }
        corio__pg_clear_error(c);
        memcpy(c->sqlstate, state, sizeof state);
        c->message = message;
        c->detail = detail;
        return;
    }
    char tag[32] = "";
    int rc = run(c, "commit", tag, sizeof tag);
    if (rc == 0 && strcmp(tag, "COMMIT") != 0) {
        /* The transaction had failed (a statement's error the body went
         * past): the server answers COMMIT with ROLLBACK. */
        corio__pg_set_error(c, "25P02",
                            "the transaction was aborted by an earlier error: COMMIT rolled it "
                            "back",
                            NULL);
        rc = CORIO_EFAILED;
    }
    tx->result = rc;
}

static const corio_resource_type tx_type = {
    .name = "pg_transaction",
    .enter = tx_enter,
    .exit = tx_exit,
};

corio_resource corio_pg_transaction(corio_pg_tx *tx, corio_pg_conn *conn,
                                    const corio_pg_tx_opts *opts) {
    if (tx) {
        memset(tx, 0, sizeof *tx);
        tx->conn = conn;
        if (opts)
            tx->opts = *opts;
        tx->result = CORIO_EINVAL;
    }
    return (corio_resource){&tx_type, tx, 0};
}

int corio_pg_tx_result(const corio_pg_tx *tx) {
    return tx ? tx->result : CORIO_EINVAL;
}

/* Whether c's last failure is one a retry of the whole transaction may
 * clear: a serialization failure or a deadlock. */
static bool retryable(const corio_pg_conn *c) {
    const char *s = corio_pg_sqlstate(c);
    return s && (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0);
}

int corio_pg_retry_tx(corio_pg_pool *pool, const corio_pg_tx_opts *opts, unsigned max_attempts,
                      int (*body)(corio_pg_conn *conn, void *arg), void *arg) {
    if (!pool || !body || max_attempts == 0)
        return CORIO_EINVAL;
    if (!corio_current())
        return CORIO_ENOTASK;
    int rc = 0;
    for (unsigned attempt = 1;; attempt++) {
        corio_pg_conn *db = NULL;
        corio_pg_tx tx;
        bool retry = false;
        int crc = 0;
        CORIO_WITH_RC(crc, corio_pg_checkout(pool, &db)) {
            int trc = 0;
            int brc = 0;
            bool stmt_retry = false;
            CORIO_WITH_RC(trc, corio_pg_transaction(&tx, db, opts)) {
                brc = body(db, arg);
                if (brc < 0) {
                    stmt_retry = brc == CORIO_EFAILED && retryable(db);
                    corio_scope_fail(brc);
                    break; /* rolls back; the checkout's body goes on */
                }
            }
            corio_scope_handled(); /* the outcome is in rc, from here on */
            if (trc < 0) {
                rc = trc; /* BEGIN failed */
                retry = trc == CORIO_EFAILED && retryable(db);
            } else if (brc < 0) {
                rc = brc;
                retry = stmt_retry;
            } else {
                rc = corio_pg_tx_result(&tx);
                retry = rc == CORIO_EFAILED && retryable(db);
            }
            if (rc == CORIO_EFAILED) /* why, for the caller: db goes back to the pool */
                corio__pg_set_error(NULL, corio_pg_sqlstate(db), corio_pg_error(db), NULL);
        }
        if (crc < 0)
            return crc;
        if (!retry || attempt >= max_attempts)
            return rc;
        /* a short, growing, jittered pause so two conflicting callers do not
         * meet again at once (the task's id in the seed: two tasks failing
         * in one loop turn see the same loop time) */
        uint64_t seed = corio_now() ^ (corio_task_id(corio_current()) << 20);
        uint64_t ms = (seed * 0x9E3779B97F4A7C15ull >> 40) % (5u * attempt) + 1;
        int src = corio_sleep(ms);
        if (src < 0)
            return src;
    }
}
