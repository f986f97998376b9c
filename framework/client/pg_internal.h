/* SPDX-License-Identifier: MIT */
/* The PostgreSQL client's private parts: the connection, its socket
 * watcher, the error record and the statement cache, shared by pg_conn.c
 * (connect, close, waiting on the socket), pg_conninfo.c (host names
 * resolved off the loop), pg_query.c (queries, cancel and drain),
 * pg_batch.c (pipeline mode, prepared statements), pg_result.c
 * (accessors), pg_pool.c and pg_tx.c.
 */
#ifndef CORIO_CLIENT_PG_INTERNAL_H
#define CORIO_CLIENT_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "corio/future.h"
#include "corio/pg.h"

/* A uv_poll_t on the connection's socket.  libpq may change sockets while
 * connecting (one per address tried), so a watcher is bound to one fd and
 * replaced when PQsocket() changes.  It is started only while a task waits
 * (one shot: stopped when it fires), so a stopped watcher never holds a
 * registration for a descriptor libpq has closed.  Freed in its close
 * callback. */
typedef struct corio__pg_watch {
    uv_poll_t poll;
    corio_future *f; /* the wait in progress, completed with the events */
    int fd;
} corio__pg_watch;

struct corio_pg_conn {
    PGconn *pg;
    corio__pg_watch *watch; /* NULL until the first wait */
    bool busy;              /* a task is inside a call */
    bool closing;           /* corio_pg_close during that call */
    bool broken;            /* lost, or left undrained: calls fail */
    /* Pool bookkeeping (pg_pool.c): the pool while checked out (the
     * checkout's exit finds it here; NULL otherwise), and the idle list's
     * link and the time it came back while idle. */
    struct corio_pg_pool *pool;
    struct corio_pg_conn *idle_next;
    uint64_t idle_since;
    /* Prepared statements (pg_batch.c): SQL text -> name "corio_<id>",
     * at most CORIO__PG_STMTS_MAX; next_stmt numbers the next one. */
    /* A call's await of a cancel job (pg_query.c), which corio_pg_close
     * completes with CORIO_ECLOSED; NULL otherwise. */
    corio_future *cancel_wait;
    struct corio__pg_stmt *stmts;
    size_t nstmts, cap_stmts;
    unsigned next_stmt;
    char sqlstate[6];
    char *message; /* the last failure's, or NULL */
    char *detail;
};

/* A corio_pg_result is libpq's PGresult itself (the type is opaque): no
 * wrapper to allocate per query. */
static inline PGresult *corio__pg_res(const corio_pg_result *r) {
    return (PGresult *)r;
}

/* Await: waits until c's socket is ready for `events` (UV_READABLE,
 * UV_WRITABLE or both).  Returns the events seen (> 0), CORIO_ECLOSED (no
 * socket, or c closed meanwhile), CORIO_ECANCELED, CORIO_ETIMEDOUT,
 * CORIO_ENOMEM, or a libuv error of the poll. */
int corio__pg_wait(corio_pg_conn *c, int events);

/* One remembered prepared statement, named "corio_<id>".  An entry is
 * added by the run that sends its Prepare (later statements of that run
 * may use it at once) and dropped when the Prepare fails or its outcome is
 * unknown. */
typedef struct corio__pg_stmt {
    char *sql;
    uint64_t hash;
    unsigned id;
} corio__pg_stmt;

#define CORIO__PG_STMTS_MAX 256

/* Frees c's statement cache (at close). */
void corio__pg_stmts_free(corio_pg_conn *c);

/* A call's start and end on c, shared by every call (pg_query.c):
 * begin checks (ENOTASK, ECLOSED, EBUSY, ECONNABORTED for a broken c),
 * clears the error record and marks c busy; end unmarks it and, when c
 * was closed during the call, frees it and returns true (the call then
 * returns CORIO_ECLOSED and touches c no more). */
int corio__pg_call_begin(corio_pg_conn *c);
bool corio__pg_call_end(corio_pg_conn *c);

/* Awaits shared by queries and batches (pg_query.c).  lost: records
 * libpq's message, marks c broken, returns CORIO_ECONNRESET.  flush: sends
 * what libpq buffered (reading meanwhile).  await_result: waits until
 * PQgetResult would not block.  send_cancel: a cancel request for c's
 * query, sent on the thread pool and awaited (its job outlives an await cut
 * short); 0, CORIO_EFAILED (the request failed), or the await's error.
 * result_error: records a failed result's SQLSTATE, message and detail on
 * c and returns CORIO_EFAILED. */
/* After a wait of a call was cut short (a deadline, a cancel): back to
 * idle, or broken.  Shielded from the task's cancel and bounded by 5 s of
 * its own, it finishes sending, sends a cancel request and runs drain(c,
 * arg) — which reads and drops what the server still owes, resumable —
 * sending another cancel each time the drain stalls for 250 ms.  A drain
 * that does not finish leaves c broken. */
void corio__pg_recover(corio_pg_conn *c, int (*drain)(corio_pg_conn *c, void *arg), void *arg);
int corio__pg_lost(corio_pg_conn *c);
int corio__pg_flush(corio_pg_conn *c);
int corio__pg_await_result(corio_pg_conn *c);
int corio__pg_send_cancel(corio_pg_conn *c);
int corio__pg_result_error(corio_pg_conn *c, const PGresult *r);

/* Records a failure on c (c NULL: the thread's connect failure): message
 * (trailing newlines dropped; NULL: ""), SQLSTATE and detail (NULL: ""). */
void corio__pg_set_error(corio_pg_conn *c, const char *sqlstate, const char *message,
                         const char *detail);

/* Records libpq's PQerrorMessage of c's connection. */
void corio__pg_set_libpq_error(corio_pg_conn *c);

/* Clears c's failure record (at the start of a call). */
void corio__pg_clear_error(corio_pg_conn *c);

/* Frees c and stops its watcher (the socket stays libpq's: PQfinish first). */
void corio__pg_conn_free(corio_pg_conn *c);

/* Await: the connection parameters of conninfo with every host name
 * resolved to addresses (hostaddr), so that PQconnectStartParams never
 * calls getaddrinfo on the loop.  *keys and *vals are NULL-terminated
 * arrays to free with corio__pg_params_free.  Returns 0, CORIO_EINVAL
 * (malformed conninfo: the message recorded for the thread), a
 * corio_resolve error, CORIO_ECANCELED, CORIO_ETIMEDOUT, CORIO_ENOMEM. */
int corio__pg_params(const char *conninfo, char ***keys, char ***vals);
void corio__pg_params_free(char **keys, char **vals);

#endif
