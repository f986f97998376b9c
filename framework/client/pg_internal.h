/* The PostgreSQL client's private parts: the connection, its socket
 * watcher, and the error record, shared by pg_conn.c (connect, close,
 * waiting on the socket), pg_conninfo.c (host names resolved off the loop),
 * pg_query.c (queries, cancel and drain) and pg_result.c (accessors).
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
