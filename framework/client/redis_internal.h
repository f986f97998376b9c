/* SPDX-License-Identifier: MIT */
/* The Redis client's private parts, shared by redis_conn.c (addresses,
 * the socket glue, connecting), redis_call.c (one command's round trip,
 * replies), redis_client.c (the client, its reconnecting keeper task and
 * its commands) and redis_sub.c (subscribers).
 */
#ifndef CORIO_CLIENT_REDIS_INTERNAL_H
#define CORIO_CLIENT_REDIS_INTERNAL_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "corio/future.h"
#include "corio/redis.h"
#include "corio/sync.h"

/* Where to connect, parsed from the address string and the options. */
typedef struct corio__redis_target {
    char *host; /* a name or an address literal; NULL for a Unix socket */
    char *path; /* the Unix socket's path, or NULL */
    uint16_t port;
    char *user;     /* AUTH's username, or NULL */
    char *password; /* AUTH's password, or NULL: no AUTH */
    int db;         /* SELECT db when > 0 */
    bool db_given;  /* the URL gave db (opts.db is then not used) */
} corio__redis_target;

/* Parses `where` (redis.h's ADDRESSES) with o's username, password and db
 * for what it leaves out.  Returns 0, CORIO_EINVAL (a message in msg),
 * CORIO_ENOMEM.  Free with corio__redis_target_release (also after a
 * failure). */
int corio__redis_target_parse(corio__redis_target *t, const char *where, const corio_redis_opts *o,
                              char *msg, size_t msgsz);
void corio__redis_target_release(corio__redis_target *t);

/* One hiredis connection's state, the first member of a client and of a
 * subscriber: hiredis's context data (ac->data) points here.
 *
 * Ownership of ac: a connect attempt owns the context it creates until
 * the connection is up; it then stores it in `ac`, and from then on
 * whoever takes it out of `ac` (setting it NULL) frees it — the close, or
 * the disconnect callback when hiredis frees it itself after a failure.
 * So a context is freed exactly once, and a callback that finds `ac`
 * different from its context knows it is being freed on purpose. */
typedef struct corio__redis_conn {
    redisAsyncContext *ac;   /* the connection, or NULL */
    bool ready;              /* ac is set up (AUTH, SELECT done): commands go out */
    bool closing;            /* closed (or shut down): calls fail with CORIO_ECLOSED */
    size_t pending;          /* commands sent and not answered */
    corio_future *connect_f; /* a connect attempt awaits this, or NULL */
    /* Called when hiredis reports ac lost (from inside its free). */
    void (*on_lost)(struct corio__redis_conn *c);
    char error[256];       /* why the connection was last lost or not made */
    const char *violation; /* the server broke the protocol: how (redis_conn.c) */
} corio__redis_conn;

/* Await: opens a connection to t for c (a host name resolved off the
 * loop, each address tried in turn), within timeout_ms and the task's
 * deadlines, and sends AUTH and SELECT.  On success c->ac is set and
 * c->ready true.  On failure c->error says why.  Returns 0 or
 * corio_redis_connect's codes. */
int corio__redis_dial(corio__redis_conn *c, const corio__redis_target *t, uint64_t timeout_ms);

/* Takes c's connection away and frees it (hiredis then fails every command
 * in flight, with CORIO_ECLOSED when c->closing, else CORIO_ECONNRESET).
 * Not an await; never from inside a hiredis callback of c's context except
 * a reply callback (hiredis defers the free until it returns then). */
void corio__redis_drop(corio__redis_conn *c);

/* Await: sends the command cmd[0..len) (RESP, as redisFormatCommand makes
 * it) on c's connection and awaits its reply, which *out receives (a
 * server's error reply too: the caller looks at its type).  Does not look
 * at c->ready (the connect sends AUTH before it).  Returns 0,
 * CORIO_ECONNRESET, CORIO_ECLOSED, CORIO_ETIMEDOUT, CORIO_ECANCELED,
 * CORIO_EBUSY (max in flight), CORIO_ENOMEM. */
int corio__redis_call(corio__redis_conn *c, const char *cmd, size_t len, size_t max_pending,
                      corio_redis_reply **out);

/* A deep copy of a hiredis reply in one block of memory, or NULL (out of
 * memory). */
corio_redis_reply *corio__redis_reply_copy(const redisReply *r);

/* Records a connect failure for corio_redis_error(NULL), and reads it. */
void corio__redis_set_connect_error(const char *msg);
const char *corio__redis_connect_error(void);

/* Runs `fn` as a task of its own for c's owner: cancelled at the loop's
 * shutdown like every task, so a connection left open is dropped then. */
int corio__redis_spawn_keeper(corio_task **out, const char *name, corio_task_fn fn, void *arg);

#endif
