/* SPDX-License-Identifier: MIT */
/* corio/pg.h — a PostgreSQL client on libpq's non-blocking API: connecting
 * and querying are awaits of the calling task, driven by a uv_poll_t on the
 * connection's socket; no blocking libpq call runs on the loop.
 *
 *     corio_pg_conn *db;
 *     int rc = corio_pg_connect(&db, "host=127.0.0.1 port=5432 dbname=app");
 *     if (rc < 0) { ... corio_pg_error(NULL) says why ...; return rc; }
 *     const char *params[] = {"7"};
 *     corio_pg_result *r;
 *     CORIO_WITH(corio_timeout_scope(500)) {
 *         rc = corio_pg_query(db, &r, "select name from users where id = $1", 1, params);
 *     }
 *     if (rc == 0) {
 *         ... corio_pg_result_rows(r), corio_pg_text(r, 0, 0) ...
 *         corio_pg_result_free(r);
 *     } else if (rc == CORIO_EFAILED) {
 *         ... corio_pg_sqlstate(db) ("42601"), corio_pg_error(db) ...
 *     }
 *     corio_pg_close(db);
 *
 * ONE CALL AT A TIME.  A connection runs one call at a time (a query is a
 * round trip on one socket); a second task calling in meanwhile gets
 * CORIO_EBUSY.  Sharing connections between tasks is a pool's job (below).
 *
 * DEADLINES AND CANCELLATION.  Every wait inside a call is an await of the
 * calling task: a deadline of its timeout scopes or a cancel (task.h) cuts
 * the call short.  A call made when a deadline has passed or a cancel is
 * in effect already sends nothing.  A query cut short is cancelled on the
 * server: the call finishes sending the query, sends a cancel request
 * (libpq's PQcancel, which blocks, on libuv's thread pool: at most two run
 * at once in the process, since one waits as long as a stalled server
 * does; a cancel beyond that is skipped), again each time the drain
 * stalls for 250 ms, and reads and drops what the server still answers,
 * shielded from the cancel and bounded by 5 s of its own, before it
 * returns CORIO_ETIMEDOUT / CORIO_ECANCELED: the connection is idle and
 * usable afterwards.  A statement that finished before the cancel reached
 * the server keeps its effect (only a transaction scope makes "cut short"
 * mean "rolled back").  Only when that drain does not finish (a
 * server that ignores the cancel for 5 s, or goes away) is the connection
 * marked broken: later calls on it fail with CORIO_ECONNABORTED, and the
 * caller closes it.
 *
 * ERRORS.  A call that fails records why on the connection, readable until
 * the next call on it: corio_pg_error() (libpq's or the server's message),
 * corio_pg_sqlstate() (the server's SQLSTATE: "42601" for a syntax error;
 * "" when the error did not come from the server), corio_pg_error_detail().
 * A failed connect has no connection: its message is kept per thread and
 * read with corio_pg_error(NULL) until the thread's next corio_pg_connect
 * (read it before awaiting anything else).
 *
 * TYPES.  Parameters go as text (PostgreSQL infers or casts their type:
 * "$1::int"); results come as text and are read with the typed accessors
 * below, which parse PostgreSQL's text output.
 *
 * POOLS AND TRANSACTIONS.  A pool (corio_pg_pool_new) hands out
 * connections as a scoped resource, and a transaction is a scope on a
 * connection that commits when its block ends normally and rolls back on
 * every other way out (see scope.h's HOW A SCOPE ENDED):
 *
 *     corio_pg_conn *db;
 *     corio_pg_tx tx;
 *     CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) {
 *         CORIO_WITH_RC(rc, corio_pg_transaction(&tx, db, NULL)) {
 *             if ((rc = corio_pg_query(db, &r, "update ...", 0, NULL)) < 0)
 *                 return corio_scope_fail(rc);      // rolled back
 *             corio_pg_result_free(r);
 *         }                                         // COMMIT
 *         rc = corio_pg_tx_result(&tx);             // 0: committed
 *         if (rc == CORIO_EFAILED && !strcmp(corio_pg_sqlstate(db), "40001"))
 *             ... a serialization failure at COMMIT: run it again ...
 *     }                                             // db back to the pool
 *
 * BATCHES.  N independent queries go in one round trip as a batch (libpq's
 * pipeline mode): add them, run the batch, read each one's result:
 *
 *     corio_pg_batch *b;
 *     corio_pg_batch_new(&b, NULL);
 *     for (i = 0; i < n; i++)
 *         corio_pg_batch_add(b, "select randomnumber from world where id = $1", 1, &ids[i]);
 *     rc = corio_pg_batch_run(db, b);        // 0: every one succeeded
 *     for (i = 0; i < n; i++)
 *         if (corio_pg_batch_result(b, i, &r) == 0) ... r ...
 *     corio_pg_batch_free(b);
 *
 * PREPARED STATEMENTS.  corio_pg_query_prepared() and batches with
 * opts.prepared run a statement by name: prepared on the connection the
 * first time its SQL text is used there (in the same round trip as its
 * first run) and remembered per connection, so later runs skip the
 * server's parsing and planning.  A remembered statement the server no
 * longer takes fails once and is forgotten, so the next run prepares it
 * afresh: 26000 (deallocated: DEALLOCATE, DISCARD ALL) and 0A000 ("cached
 * plan must not change result type": the tables under a `select *` were
 * altered).
 *
 * NOT YET.  COPY (a COPY statement fails with CORIO_ENOTSUP: data sent to
 * the client is dropped, data asked of it is refused).
 */
#ifndef CORIO_PG_H
#define CORIO_PG_H
#include "error.h"
#include "resource.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_pg_conn corio_pg_conn;
typedef struct corio_pg_result corio_pg_result;
typedef struct corio_pg_pool corio_pg_pool;

/* Await: opens a connection (libpq's PQconnectStart + PQconnectPoll) with
 * `conninfo`, a libpq connection string ("host=... port=... dbname=...") or
 * URI ("postgresql://user@host:port/db"), with the usual PG* environment
 * variables for what it leaves out.  A host name is resolved first with
 * libuv's asynchronous getaddrinfo (corio_resolve), so that libpq never
 * resolves on the loop; Unix-socket paths and addresses are used as they
 * are.  A connect_timeout in conninfo bounds the whole connect (libpq's
 * non-blocking API ignores it otherwise); the task's deadlines bound it too.
 * On success *out receives the connection, to close with corio_pg_close().
 * On failure *out is NULL and corio_pg_error(NULL) tells why.
 * Returns:
 *   0                   connected, the session ready for queries
 *   CORIO_EINVAL        out or conninfo NULL, or conninfo malformed (an
 *                       unknown keyword, a bad URI)
 *   CORIO_ENOTFOUND     the host name does not resolve (or another libuv
 *                       UV_EAI_* code)
 *   CORIO_ECONNREFUSED  nothing listens there (libpq: "Connection refused")
 *   CORIO_EFAILED       any other refusal or failure libpq reports
 *                       (authentication, a database that does not exist:
 *                       the message says which)
 *   CORIO_ETIMEDOUT     connect_timeout or a deadline of the task passed
 *   CORIO_ECANCELED     the task was cancelled
 *   CORIO_ENOTASK       called outside a task
 *   CORIO_ENOMEM        out of memory */
int corio_pg_connect(corio_pg_conn **out, const char *conninfo);

/* Closes the connection (libpq's PQfinish: a Terminate message, then the
 * socket) and frees it; results it returned live on until freed.  Not an
 * await.  Called while a task is inside a call on it (from another task),
 * that call fails at once with CORIO_ECLOSED and the connection is freed
 * when it returns.  Accepts NULL. */
void corio_pg_close(corio_pg_conn *c);

/* Await: runs one SQL statement with nparams text parameters ($1, $2 ...;
 * params[i] NULL is SQL NULL; params may be NULL when nparams is 0), with
 * libpq's PQsendQueryParams, and collects its result.  On success *out
 * receives the result (rows for a SELECT or RETURNING, none otherwise), to
 * free with corio_pg_result_free(); on failure *out is NULL and the error
 * is recorded on c (see ERRORS above).  sql and params are borrowed for the
 * call.
 * Returns:
 *   0                   the statement succeeded
 *   CORIO_EFAILED       the server reported an error (corio_pg_sqlstate(c)
 *                       names it; the connection stays usable)
 *   CORIO_ETIMEDOUT     a deadline of the task passed: the query was
 *                       cancelled on the server and the connection drained
 *   CORIO_ECANCELED     the task was cancelled: likewise
 *   CORIO_ECONNRESET    the connection was lost (the server went away)
 *   CORIO_ECONNABORTED  c is broken (a drain that did not finish, a lost
 *                       connection earlier): close it
 *   CORIO_ECLOSED       c was closed by another task during the call
 *   CORIO_EBUSY         another task is inside a call on c
 *   CORIO_ENOTSUP       a COPY statement
 *   CORIO_EINVAL        c, out or sql NULL, params NULL with nparams > 0,
 *                       nparams above 65535
 *   CORIO_ENOTASK       called outside a task
 *   CORIO_ENOMEM        out of memory */
int corio_pg_query(corio_pg_conn *c, corio_pg_result **out, const char *sql, size_t nparams,
                   const char *const *params);

/* Await: as corio_pg_query, with the statement prepared: the first run of
 * this sql text on c prepares it (PQsendPrepare, under a name of c's) and
 * runs it in the same round trip; later runs on c execute it by name
 * (PQsendQueryPrepared).  c remembers up to 256 statements; beyond that
 * the statement runs unprepared.  Returns corio_pg_query's codes (a
 * statement that fails to prepare: CORIO_EFAILED, and it is not
 * remembered). */
int corio_pg_query_prepared(corio_pg_conn *c, corio_pg_result **out, const char *sql,
                            size_t nparams, const char *const *params);

/* ---- batches (pipeline mode) ----------------------------------------------- */

typedef struct corio_pg_batch corio_pg_batch;

typedef struct corio_pg_batch_opts {
    /* Every statement prepared through c's statement cache, as
     * corio_pg_query_prepared does. */
    bool prepared;
    /* Each statement its own transaction: a Sync after each, so one that
     * fails leaves the others alone (those before it committed, those
     * after it still run).  It costs the server a flush and the client a
     * wakeup per statement: measured, 20 one-row selects took 5x the
     * client CPU of the default.
     * Default (false): the batch is one implicit transaction, with one
     * Sync at its end: a failure aborts it, so the statements before the
     * failed one are rolled back and those after it never run (the status
     * of every statement but the failed one is CORIO_ECANCELED then).
     * Inside a transaction scope the batch is part of that transaction
     * either way (and a failure aborts it). */
    bool independent;
} corio_pg_batch_opts;

/* Creates an empty batch (opts NULL: the defaults).  Not an await.
 * Returns 0, CORIO_EINVAL (out NULL), CORIO_ENOMEM. */
int corio_pg_batch_new(corio_pg_batch **out, const corio_pg_batch_opts *opts);

/* Adds a statement with nparams text parameters, as corio_pg_query takes
 * them; sql and params are copied.  Not an await.  Returns 0, CORIO_EINVAL
 * (b or sql NULL, params NULL with nparams > 0, nparams above 65535, b
 * already run), CORIO_ENOMEM. */
int corio_pg_batch_add(corio_pg_batch *b, const char *sql, size_t nparams,
                       const char *const *params);

/* The number of statements added to b (0 for NULL). */
size_t corio_pg_batch_size(const corio_pg_batch *b);

/* Await: sends every statement of b to c in pipeline mode, flushing as the
 * socket takes them, and collects their results as they come: one round
 * trip for the lot.  A batch runs once.
 * Returns:
 *   0                   every statement succeeded
 *   CORIO_EFAILED       one or more failed on the server: each one's own
 *                       status says which (corio_pg_batch_result); c's
 *                       error record is the first failure's
 *   CORIO_ETIMEDOUT, CORIO_ECANCELED   the caller's deadline or cancel: as
 *                       for corio_pg_query, the statement running is
 *                       cancelled on the server and c drained; every
 *                       statement's status is then this code.  Those that
 *                       had finished, and (in an independent batch)
 *                       those after the cancelled one, which the server
 *                       still runs while c is drained, may have taken
 *                       effect
 *   CORIO_ENOTSUP       a COPY among them: pipeline mode has no way on
 *                       from there, so c is left broken (close it)
 *   CORIO_ECONNRESET, CORIO_ECONNABORTED, CORIO_ECLOSED, CORIO_EBUSY,
 *   CORIO_ENOTASK, CORIO_ENOMEM: as for corio_pg_query (statuses: this
 *   code)
 *   CORIO_EINVAL        c or b NULL, b empty or already run
 * A run refused before anything is sent — CORIO_EBUSY, CORIO_ECLOSED,
 * CORIO_ECONNABORTED (a broken c), CORIO_ENOTASK, or CORIO_ETIMEDOUT /
 * CORIO_ECANCELED when a deadline or cancel is in effect already — leaves b
 * not run: it may be run again (on another connection). */
int corio_pg_batch_run(corio_pg_conn *c, corio_pg_batch *b);

/* The outcome of statement i of a batch that ran: *out receives its result
 * (borrowed from b, freed by corio_pg_batch_free) when it succeeded, NULL
 * otherwise.  Returns:
 *   0                   it succeeded
 *   CORIO_EFAILED       the server refused it: corio_pg_batch_sqlstate and
 *                       corio_pg_batch_error say why
 *   CORIO_ECANCELED     another statement of a batch that is not
 *                       independent failed: this one was rolled back, or
 *                       never ran
 *   the run's code      the run failed as a whole (a deadline, a cancel,
 *                       a lost connection ...)
 *   CORIO_EINVAL        b NULL, i out of range, b not run
 * out may be NULL. */
int corio_pg_batch_result(const corio_pg_batch *b, size_t i, const corio_pg_result **out);

/* The SQLSTATE and message of statement i's failure on the server ("" when
 * it did not fail there), borrowed from b. */
const char *corio_pg_batch_sqlstate(const corio_pg_batch *b, size_t i);
const char *corio_pg_batch_error(const corio_pg_batch *b, size_t i);

/* Frees b, its copies and its results.  Not during its run.  Accepts NULL. */
void corio_pg_batch_free(corio_pg_batch *b);

/* The message of the last failed call on c (borrowed until the next call on
 * c or its close), or "" if none failed.  c NULL: the message of this
 * thread's last corio_pg_connect if it failed (or of corio_pg_retry_tx's
 * CORIO_EFAILED), or "" (a buffer of the thread, rewritten by its next
 * corio_pg_connect).  A transaction scope that rolls back keeps the record
 * its body left (the SQLSTATE of the statement that failed). */
const char *corio_pg_error(const corio_pg_conn *c);

/* The SQLSTATE of the last failed call on c, five characters ("42601"), or
 * "" when that failure did not come from the server (borrowed, as above). */
const char *corio_pg_sqlstate(const corio_pg_conn *c);

/* The server's DETAIL of the last failed call on c, or "" (borrowed, as
 * above). */
const char *corio_pg_error_detail(const corio_pg_conn *c);

/* Frees a result.  Accepts NULL. */
void corio_pg_result_free(corio_pg_result *r);

/* Rows and columns of r (0 for a statement that returns no rows). */
size_t corio_pg_result_rows(const corio_pg_result *r);
size_t corio_pg_result_cols(const corio_pg_result *r);

/* The name of column col (borrowed from r), or NULL if col is out of range. */
const char *corio_pg_result_col_name(const corio_pg_result *r, size_t col);

/* The number of rows the statement affected (INSERT, UPDATE, DELETE,
 * SELECT, MOVE, FETCH, COPY), 0 for the others. */
uint64_t corio_pg_result_affected(const corio_pg_result *r);

/* Whether the value at (row, col) is SQL NULL; true out of range too. */
bool corio_pg_is_null(const corio_pg_result *r, size_t row, size_t col);

/* The value at (row, col) as PostgreSQL's text output, NUL-terminated and
 * borrowed from r (its length with corio_pg_len); NULL for SQL NULL or out
 * of range. */
const char *corio_pg_text(const corio_pg_result *r, size_t row, size_t col);

/* The length in bytes of the value at (row, col); 0 for NULL or out of
 * range. */
size_t corio_pg_len(const corio_pg_result *r, size_t row, size_t col);

/* Typed reads of the value at (row, col) into *out (untouched on failure).
 * int64: a decimal integer (int2, int4, int8, oid; also a numeric with no
 * fraction); double: any number, "NaN", "Infinity", "-Infinity"; bool:
 * PostgreSQL's "t" or "f".  Each returns:
 *   0               *out holds the value
 *   CORIO_ENOENT    the value is SQL NULL
 *   CORIO_EINVAL    r or out NULL, (row, col) out of range, or the text is
 *                   not of that type
 *   CORIO_ERANGE    an integer beyond int64 */
int corio_pg_int64(const corio_pg_result *r, size_t row, size_t col, int64_t *out);
int corio_pg_double(const corio_pg_result *r, size_t row, size_t col, double *out);
int corio_pg_bool(const corio_pg_result *r, size_t row, size_t col, bool *out);

/* ---- pools ----------------------------------------------------------------- */

/* A pool's settings; zero fields take the defaults. */
typedef struct corio_pg_pool_opts {
    size_t max_size;          /* connections open (checked out + idle) at most; 0: 10 */
    uint64_t idle_timeout_ms; /* an idle connection older than this is closed
                                 (by the pool's keeper task, or by a checkout
                                 instead of handed out); 0: 60000 */
    uint64_t check_after_ms;  /* one idle this long is checked with "select 1"
                                 before it is handed out; 0: 1000 */
} corio_pg_pool_opts;

/* Creates a pool of connections to conninfo (as corio_pg_connect takes it;
 * copied).  Opens nothing yet: connections are opened by checkouts, as
 * needed.  Not an await.  Returns 0, CORIO_EINVAL (out or conninfo NULL),
 * CORIO_ENOMEM.
 * When the first connection is pooled, a keeper task starts ("pg-pool"): it
 * closes idle connections as they pass idle_timeout_ms, and all of them
 * when the loop shuts down (the task is cancelled then) or the pool is
 * freed; so corio_run ends cleanly in a program that never frees its pool
 * (the pool's memory is then not freed: corio_pg_pool_free, from a task of
 * a later corio_run, frees it). */
int corio_pg_pool_new(corio_pg_pool **out, const char *conninfo, const corio_pg_pool_opts *opts);

/* Await: closes the pool.  Checkouts from now on fail with CORIO_ECLOSED
 * (waiting ones too, when their turn comes); idle connections are closed at
 * once; the call waits for the connections checked out to come back (each
 * is closed when it does), then frees the pool.  Returns 0 (freed), or
 * CORIO_ECANCELED / CORIO_ETIMEDOUT if the caller's wait was cut short: the
 * pool then stays closing, not freed; call again.  CORIO_ENOTASK outside a
 * task.  Accepts NULL. */
int corio_pg_pool_free(corio_pg_pool *p);

/* Counts, for monitoring and tests: connections idle in the pool, and
 * checked out now. */
size_t corio_pg_pool_idle(const corio_pg_pool *p);
size_t corio_pg_pool_in_use(const corio_pg_pool *p);

/* A checkout as a scope, for CORIO_WITH_RC:
 *
 *     corio_pg_conn *db;
 *     CORIO_WITH_RC(rc, corio_pg_checkout(pool, &db)) { ... db ... }
 *     if (rc < 0) ... no connection: rc says why ...
 *
 * Enter (an await): takes one of max_size permits, waiting in FIFO order
 * behind earlier checkouts while all are in use, under the task's
 * deadlines and cancellation (a waiter that times out leaves the queue and
 * is never handed a connection).  It then takes the most recently returned
 * idle connection, closing those past idle_timeout_ms and those found
 * broken, and checking one idle for check_after_ms or more with
 * "select 1" (a failed check closes it and goes on to the next); with none
 * left it opens a new one (corio_pg_connect: the failure's message in
 * corio_pg_error(NULL)).  *conn receives it.
 * Enter returns 0, CORIO_ECLOSED (the pool is closing), CORIO_ECANCELED,
 * CORIO_ETIMEDOUT, CORIO_EINVAL (pool or conn NULL), CORIO_ENOTASK, or
 * corio_pg_connect's codes; *conn is NULL then and the body is skipped.
 * Exit (every way out of the body): the connection goes back to the pool
 * only if it is idle, not in a transaction (libpq's PQtransactionStatus is
 * PQTRANS_IDLE: a body that left a transaction open, or failed inside one,
 * does not hand that transaction to the next user), not broken and still
 * connected; otherwise it is closed (the pool opens a fresh one when
 * needed).  Then its permit goes to the first waiter.  *conn is set to NULL.
 * The body must not close the connection nor change *conn (the exit reads
 * it to give the connection back). */
corio_resource corio_pg_checkout(corio_pg_pool *pool, corio_pg_conn **conn);

/* ---- transactions ------------------------------------------------------------ */

enum {
    CORIO_PG_READ_COMMITTED = 0, /* PostgreSQL's default */
    CORIO_PG_REPEATABLE_READ = 1,
    CORIO_PG_SERIALIZABLE = 2,
};

typedef struct corio_pg_tx_opts {
    int isolation;  /* CORIO_PG_READ_COMMITTED (0), _REPEATABLE_READ, _SERIALIZABLE */
    bool read_only; /* BEGIN ... READ ONLY */
} corio_pg_tx_opts;

/* A transaction scope's state: caller storage, filled by
 * corio_pg_transaction() and read with corio_pg_tx_result() after the
 * block.  Fields private. */
typedef struct corio_pg_tx {
    corio_pg_conn *conn;
    corio_pg_tx_opts opts;
    int result;
} corio_pg_tx;

/* A transaction on conn as a scope, for CORIO_WITH_RC (opts NULL: read
 * committed, read write):
 *
 * Enter (an await): BEGIN [ISOLATION LEVEL ...] [READ ONLY].  It returns
 * 0, corio_pg_query's codes (CORIO_EBUSY, CORIO_ECONNABORTED,
 * CORIO_ETIMEDOUT ...) or CORIO_EINVAL (tx or conn NULL, an unknown
 * isolation level); the body is skipped then.  Scopes do not nest: a BEGIN
 * inside a transaction already open is only a warning of the server, and
 * the inner scope's COMMIT or ROLLBACK ends the outer transaction.
 * Exit: COMMIT when the scope ended normally (`how` 0), ROLLBACK when it
 * ended by a failure, a cancellation or a deadline — scope.h's rules:
 * `return corio_scope_fail(rc)` from the body (or from scopes inside it) is
 * a rollback, and so is a deadline of an enclosing timeout scope that has
 * passed even if the body then ends normally.  Either runs shielded under
 * the exit's own 5 s deadline, so a cancelled task still rolls back.
 *
 * THE OUTCOME: corio_pg_tx_result(&tx), after the block:
 *   0                   COMMIT succeeded: the transaction is durable
 *   CORIO_EFAILED       COMMIT failed and the transaction was rolled back:
 *                       corio_pg_sqlstate(conn) says why ("40001" a
 *                       serialization failure, "40P01" a deadlock, "23xxx"
 *                       a deferred constraint; "25P02" when a statement of
 *                       the body had failed and the body still ended
 *                       normally: the server rolled back at COMMIT)
 *   how (< 0)           the scope did not end normally, so it rolled back:
 *                       the failure, CORIO_ECANCELED or CORIO_ETIMEDOUT
 *   another code        COMMIT itself did not complete (CORIO_ECONNRESET,
 *                       CORIO_ECONNABORTED, CORIO_ETIMEDOUT of the exit's
 *                       own deadline): whether it committed is unknown
 *   the enter's code    BEGIN failed (the block did not run)
 * A transaction whose ROLLBACK could not be sent (a lost connection) is
 * rolled back by the server when it sees the connection gone; the
 * connection is left broken or in the transaction, which a pool checkout's
 * exit then closes. */
corio_resource corio_pg_transaction(corio_pg_tx *tx, corio_pg_conn *conn,
                                    const corio_pg_tx_opts *opts);

/* The outcome of a transaction scope, as above (CORIO_EINVAL for NULL). */
int corio_pg_tx_result(const corio_pg_tx *tx);

/* Await: a transaction retried while the server asks for it.  Checks out
 * a connection from pool (corio_pg_checkout), runs body(conn, arg) inside
 * corio_pg_transaction(opts) and commits it when body returns >= 0.  When
 * the transaction fails with a serialization failure (SQLSTATE 40001) or a
 * deadlock (40P01) — at BEGIN, at a statement of body (body returned
 * CORIO_EFAILED with that SQLSTATE on conn), or at COMMIT — it is rolled
 * back and run again from the start, after a short random pause, on a
 * connection checked out afresh, up to max_attempts attempts in all (the
 * first included).
 * body: may run several times, so it must have no effect outside the
 * transaction it cannot repeat (or undo when it is run again); it should
 * return a failed statement's CORIO_EFAILED as is, at once (a body that
 * goes on past a failed statement and returns 0 gets COMMIT's 25P02,
 * which is not retried); it must not end the transaction nor close conn.
 * A body returning < 0 rolls the transaction back.
 * Returns 0 (committed), body's own error (< 0 and not a retryable
 * CORIO_EFAILED: not retried), the last attempt's error when attempts run
 * out (CORIO_EFAILED), corio_pg_tx_result()'s codes other than
 * 0 (a COMMIT of unknown outcome is not retried), the checkout's codes
 * (CORIO_ECLOSED, corio_pg_connect's ...), CORIO_ECANCELED /
 * CORIO_ETIMEDOUT (the caller's; a transaction in progress rolled back),
 * CORIO_EINVAL (pool or body NULL, max_attempts 0), CORIO_ENOTASK.
 * After CORIO_EFAILED (a statement's, BEGIN's or COMMIT's), its SQLSTATE
 * and message are the thread's: corio_pg_sqlstate(NULL) ("23505": a body
 * inserting a duplicate) and corio_pg_error(NULL), until the thread's next
 * connect or retry_tx (the connection is back in the pool by then). */
int corio_pg_retry_tx(corio_pg_pool *pool, const corio_pg_tx_opts *opts, unsigned max_attempts,
                      int (*body)(corio_pg_conn *conn, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_PG_H */
