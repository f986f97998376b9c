/* SPDX-License-Identifier: MIT */
/* corio/redis.h — a Redis client on hiredis's asynchronous API: every
 * command is an await of the calling task, and many tasks share one
 * connection, their commands pipelined on its socket.
 *
 *     corio_redis *r;
 *     int rc = corio_redis_connect(&r, "redis://:secret@127.0.0.1:6379/2", NULL);
 *     if (rc < 0) { ... corio_redis_error(NULL) says why ...; return rc; }
 *     CORIO_WITH(corio_timeout_scope(200)) {
 *         rc = corio_redis_set(r, "greeting", "hello", 5, 60000);   // 60 s TTL
 *     }
 *     corio_redis_reply *v;
 *     rc = corio_redis_get(r, &v, "greeting");   // CORIO_ENOENT: no such key
 *     if (rc == 0) { size_t n; const char *s = corio_redis_reply_str(v, &n); ...
 *                    corio_redis_reply_free(v); }
 *     corio_redis_close(r);
 *
 * ONE CONNECTION, MANY TASKS.  A client (corio_redis) is one connection.
 * Any number of tasks of its loop call it at once: each command is written
 * to the connection's output buffer at once (those of one loop turn leave in
 * one write) and its caller awaits its own reply; Redis answers in order, so
 * no command waits for another's caller.  At most max_pending commands are
 * in flight (sent and not answered); one more fails at once with
 * CORIO_EBUSY (default 10000: the memory a connection holds is bounded).
 *
 * DEADLINES AND CANCELLATION.  A command cut short by a deadline of the
 * task's timeout scopes or by a cancel returns CORIO_ETIMEDOUT /
 * CORIO_ECANCELED at once.  It was sent, so it still runs on the server
 * (its effect stands: a cut BLPOP may still pop an element), and its reply
 * still arrives in its turn: it is read and dropped, never given to another
 * caller, and the connection stays usable.  A command that blocks the
 * server side of the connection (BLPOP with no timeout) delays every
 * command queued behind it: give blocking commands a connection of their
 * own.
 *
 * LOST CONNECTIONS AND RECONNECTING.  When the connection is lost (the
 * server goes away, restarts, closes it), every command in flight fails
 * with CORIO_ECONNRESET, and the client reconnects in the background (a
 * task named "redis"): at once, then after 50 ms, doubling up to 2 s
 * between attempts (reconnect_min_ms, reconnect_max_ms), for as long as it
 * is not closed, with AUTH and SELECT again.  While it is disconnected,
 * commands fail at once with CORIO_ECONNRESET (they are not queued for a
 * reconnect that may never come); corio_redis_wait_connected() awaits the
 * reconnect for callers who would rather wait, under their deadline.
 * Connection state a command changes (SELECT, CLIENT SETNAME) lasts as long
 * as that connection: after a reconnect only the URL's or opts' password
 * and database are applied again.
 *
 * ERRORS.  A server's error reply ("-ERR ...", "-WRONGTYPE ...") is
 * CORIO_EFAILED and the reply itself, of type CORIO_REDIS_ERROR, carries
 * the message (corio_redis_reply_str): it is the caller's to free, like any
 * reply.  Connection-level failures (a lost connection, a failed
 * reconnect) are described by corio_redis_error(r); a failed connect by
 * corio_redis_error(NULL).
 *
 * PUB/SUB.  Subscribing turns a Redis connection into a stream of messages
 * that answers nothing else, so a subscriber (corio_redis_sub) is a
 * connection of its own: corio_redis_sub_connect, corio_redis_subscribe /
 * _psubscribe, then corio_redis_next_message in a loop.  Publish with a
 * client (corio_redis_publish).  A subscriber does not reconnect: see
 * corio_redis_next_message for how it ends.
 *
 * LOOP SHUTDOWN.  A client or subscriber left open when corio_run ends is
 * disconnected then (its background task is cancelled like every task), so
 * the loop ends cleanly; its memory is freed only by corio_redis_close /
 * corio_redis_sub_close, which may be called after corio_run returned.
 *
 * ADDRESSES.  "host:port", "host" (port 6379), "[::1]:6379", a Unix
 * socket path ("/run/redis.sock", or "unix:/run/redis.sock"), or a URL
 * "redis://[[user]:password@]host[:port][/db]" (password %XX-decoded).  A
 * host name is resolved with libuv's asynchronous getaddrinfo
 * (corio_resolve, at every connect), never on the loop, and each address is
 * tried in turn.  TLS (rediss://) is not supported.
 *
 * NOT YET.  TLS; RESP3; unsubscribing (close the subscriber); MONITOR and
 * CLIENT REPLY (CORIO_ENOTSUP: they break the one-reply-per-command rule
 * that multiplexing rests on); MULTI/EXEC transactions (CORIO_ENOTSUP: on
 * a shared connection they would take in other tasks' commands; EVAL is
 * atomic); a bound on a reply's size (a huge reply is held whole, twice
 * while it is copied); noticing a server that stops answering without
 * closing (TCP keepalive finds a dead peer; commands meanwhile end at
 * their deadlines); an unsubscribe of a subscribed channel whose count is
 * not an integer (never sent by a real Redis) makes hiredis 0.14 abort the
 * process on an assert.  Other replies no Redis sends (a reply to no
 * command, a push of fewer than two elements or whose kind or channel is
 * not a string) end the connection: CORIO_ECONNRESET, and
 * corio_redis_error() says "protocol violation".
 */
#ifndef CORIO_REDIS_H
#define CORIO_REDIS_H
#include "error.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

typedef struct corio_redis corio_redis;
typedef struct corio_redis_reply corio_redis_reply;
typedef struct corio_redis_sub corio_redis_sub;

/* A client's or subscriber's settings; zero fields take the defaults. */
typedef struct corio_redis_opts {
    /* Bounds each connect attempt: connecting, AUTH and SELECT; 0: 5000.
     * The calling task's deadlines bound corio_redis_connect too. */
    uint64_t connect_timeout_ms;
    /* Pause between failed reconnect attempts (the first is at once): from
     * min, doubling, up to max; 0: 50 and 2000. */
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
    /* Commands in flight at most (a client); 0: 10000. */
    size_t max_pending;
    /* Messages a subscriber queues for corio_redis_next_message at most;
     * 0: 1024. */
    size_t max_messages;
    /* A client (not a subscriber): corio_redis_connect returns at once
     * with a client that connects in its background task, retrying with
     * the reconnect pauses until it does, as after a lost connection (its
     * commands fail with CORIO_ECONNRESET until then; await
     * corio_redis_wait_connected to wait; corio_redis_error tells why the
     * last attempt failed).  For a server that may start after the
     * application, or go away before it starts. */
    bool connect_in_background;
    /* AUTH [username] password after each connect, and SELECT db (when
     * db > 0), unless the address (a redis:// URL) gives them; copied. */
    const char *username;
    const char *password;
    int db;
} corio_redis_opts;

/* ---- clients ------------------------------------------------------------------ */

/* Await: connects to `where` (see ADDRESSES above; copied), sends AUTH and
 * SELECT if given, and starts the client's background task (with
 * opts.connect_in_background: only parses `where` and starts the task,
 * which connects; not an await then, and the codes below that come from
 * connecting do not occur).  opts may be
 * NULL (the defaults); it is copied.  On success *out receives the client,
 * to close with corio_redis_close(); on failure *out is NULL and
 * corio_redis_error(NULL) says why.
 * Returns:
 *   0                   connected and ready for commands
 *   CORIO_EINVAL        out or where NULL, where malformed (a bad port, a
 *                       bad URL, an unknown scheme such as rediss://), a
 *                       negative db
 *   CORIO_ENOTFOUND     the host name does not resolve (or another libuv
 *                       UV_EAI_* code)
 *   CORIO_ECONNREFUSED  nothing listens there (or another socket error:
 *                       CORIO_ENOENT for a missing Unix socket ...)
 *   CORIO_EACCES        AUTH was refused (the message says why)
 *   CORIO_EFAILED       SELECT was refused (a database out of range)
 *   CORIO_ECONNRESET    the connection was lost while being set up
 *   CORIO_ETIMEDOUT     connect_timeout_ms or a deadline of the task passed
 *   CORIO_ECANCELED     the task was cancelled
 *   CORIO_ENOTASK       called outside a task
 *   CORIO_ENOMEM        out of memory */
int corio_redis_connect(corio_redis **out, const char *where, const corio_redis_opts *opts);

/* Closes the client and frees it.  Not an await.  Every command in flight
 * fails with CORIO_ECLOSED (their replies are dropped), so does every
 * later call, and tasks in corio_redis_wait_connected wake with it; the
 * background task ends.  Callable from a task, from code on the loop's
 * thread, and after corio_run returned (for a client the loop's shutdown
 * disconnected).  Accepts NULL.  Closing twice is undefined, as a double
 * free() is (r may be freed by the first). */
void corio_redis_close(corio_redis *r);

/* Whether r is connected and ready for commands now (false for NULL). */
bool corio_redis_connected(const corio_redis *r);

/* Await: waits until r is connected and ready (at once if it is).
 * Returns 0, CORIO_ECLOSED (r closed, or disconnected by the loop's
 * shutdown), CORIO_ECANCELED, CORIO_ETIMEDOUT, CORIO_EINVAL (r NULL),
 * CORIO_ENOTASK. */
int corio_redis_wait_connected(corio_redis *r);

/* The commands sent on r and not answered yet, those whose callers gave
 * up included (0 for NULL).  For monitoring and tests. */
size_t corio_redis_pending(const corio_redis *r);

/* Why r's connection was last lost or a reconnect last failed (borrowed
 * until r's next such event or its close), or "" if it never was.  r NULL:
 * why this thread's last corio_redis_connect or corio_redis_sub_connect
 * failed, or "" (a buffer of the thread, rewritten by its next connect). */
const char *corio_redis_error(const corio_redis *r);

/* Await: runs one command given as argc arguments (binary safe: argv[i]
 * holds argvlen[i] bytes; argvlen NULL: each argv[i] is a NUL-terminated
 * string).  argv and argvlen are borrowed for the call (copied before it
 * awaits).  On success *out receives the reply, to free with
 * corio_redis_reply_free(): a string, integer, array, status or nil reply.
 * Returns:
 *   0                   the reply is in *out
 *   CORIO_EFAILED       the server answered with an error: *out holds that
 *                       reply (type CORIO_REDIS_ERROR, the message in
 *                       corio_redis_reply_str), also the caller's to free
 *   CORIO_ECONNRESET    the connection was lost with the command in flight
 *                       (it may or may not have run), or r is disconnected
 *                       now (reconnecting: corio_redis_error says why)
 *   CORIO_ECLOSED       r is closed, or was closed during the call
 *   CORIO_ETIMEDOUT     a deadline of the task passed: the command was sent
 *                       and its reply will be dropped (DEADLINES above)
 *   CORIO_ECANCELED     the task was cancelled: likewise
 *   CORIO_EBUSY         max_pending commands are in flight already
 *   CORIO_ENOTSUP       a command that would break multiplexing: the
 *                       (P|S)(UN)SUBSCRIBE family (use a subscriber),
 *                       MONITOR, CLIENT REPLY, HELLO 3; or span other
 *                       tasks' commands on the shared connection: MULTI,
 *                       EXEC, DISCARD, WATCH, UNWATCH (use a Lua script,
 *                       EVAL, for atomic work over several keys)
 *   CORIO_EINVAL        r or out NULL, argc 0, argv NULL or holding NULL
 *   CORIO_ENOTASK       called outside a task
 *   CORIO_ENOMEM        out of memory
 * *out is NULL on every failure but CORIO_EFAILED. */
int corio_redis_command_argv(corio_redis *r, corio_redis_reply **out, size_t argc,
                             const char *const *argv, const size_t *argvlen);

/* Await: corio_redis_command_argv with the command built by hiredis's
 * format: words split at spaces, %s a C string, %b a binary argument
 * (pointer, size_t length), %d %lld ... numbers:
 *     corio_redis_command(r, &rep, "HSET %s %s %b", key, field, buf, len);
 * Returns corio_redis_command_argv's codes (CORIO_EINVAL also for fmt NULL
 * or a malformed format). */
int corio_redis_command(corio_redis *r, corio_redis_reply **out, const char *fmt, ...);

/* ---- convenience commands (awaits; the codes of corio_redis_command_argv
 * unless said otherwise, and CORIO_EBADMSG for a reply of another kind than
 * the command answers; a key is a NUL-terminated string, values are binary
 * safe) ------------------------------------------------------------------------ */

/* GET key.  On success *out receives the value, a string reply
 * (corio_redis_reply_str).  Returns 0, CORIO_ENOENT when the key does not
 * exist (*out NULL), CORIO_EFAILED (the key holds another type: the error
 * reply in *out), ... */
int corio_redis_get(corio_redis *r, corio_redis_reply **out, const char *key);

/* SET key value [PX ttl_ms] (ttl_ms 0: no expiry).  val may be NULL when
 * len is 0.  Returns 0 once the server stored it, ... (an error reply is
 * freed here: CORIO_EFAILED). */
int corio_redis_set(corio_redis *r, const char *key, const void *val, size_t len, uint64_t ttl_ms);

/* INCR key; *value (if not NULL) receives the new value.  Returns 0,
 * CORIO_EFAILED (not an integer, or one that would overflow), ... */
int corio_redis_incr(corio_redis *r, const char *key, int64_t *value);

/* DEL key; *removed (if not NULL) receives 1 if the key existed, else 0. */
int corio_redis_del(corio_redis *r, const char *key, int64_t *removed);

/* PUBLISH channel message; *receivers (if not NULL) receives the number of
 * subscribers that got it. */
int corio_redis_publish(corio_redis *r, const char *channel, const void *msg, size_t len,
                        int64_t *receivers);

/* ---- replies --------------------------------------------------------------------- */

/* The kinds of reply (RESP2's). */
typedef enum corio_redis_type {
    CORIO_REDIS_STRING = 1,  /* a bulk string: bytes, binary safe */
    CORIO_REDIS_ARRAY = 2,   /* elements, each a reply */
    CORIO_REDIS_INTEGER = 3, /* a signed 64-bit integer */
    CORIO_REDIS_NIL = 4,     /* a nil bulk string or nil array */
    CORIO_REDIS_STATUS = 5,  /* a status line ("OK", "PONG") */
    CORIO_REDIS_ERROR = 6,   /* an error line ("WRONGTYPE Operation ...") */
} corio_redis_type;

/* A reply is one block of memory (its elements and bytes inside it):
 * freed whole by corio_redis_reply_free; elements are borrowed from it. */

/* The reply's kind; 0 for NULL. */
corio_redis_type corio_redis_reply_type(const corio_redis_reply *rep);

/* The bytes of a string, status or error reply, NUL-terminated (a string
 * may hold NUL bytes too: use *len), borrowed from rep; *len (if not NULL)
 * receives their number.  NULL (and *len 0) for other kinds and NULL. */
const char *corio_redis_reply_str(const corio_redis_reply *rep, size_t *len);

/* The value of an integer reply, or of a string reply that is a decimal
 * integer (GET of a counter), into *out (untouched on failure).  Returns
 * 0, CORIO_ENOENT (a nil reply), CORIO_ERANGE (beyond int64), CORIO_EINVAL
 * (rep or out NULL, another kind, a string that is not an integer). */
int corio_redis_reply_integer(const corio_redis_reply *rep, int64_t *out);

/* The number of elements of an array reply; 0 for other kinds and NULL. */
size_t corio_redis_reply_elements(const corio_redis_reply *rep);

/* Element i of an array reply, borrowed from rep; NULL out of range. */
const corio_redis_reply *corio_redis_reply_element(const corio_redis_reply *rep, size_t i);

/* Frees a reply (not an element).  Accepts NULL. */
void corio_redis_reply_free(corio_redis_reply *rep);

/* ---- pub/sub ----------------------------------------------------------------------- */

/* A message a subscriber received: one block of memory, freed with
 * corio_redis_message_free.  channel, pattern and data are NUL-terminated
 * (data may hold NUL bytes: use len); read-only. */
typedef struct corio_redis_message {
    const char *channel; /* the channel it was published to */
    size_t channel_len;
    const char *pattern; /* the pattern that matched (psubscribe), or NULL */
    size_t pattern_len;
    const char *data; /* the payload */
    size_t len;
} corio_redis_message;

/* Await: opens a subscriber connection to `where` (as corio_redis_connect;
 * opts as there: connect_timeout_ms, max_messages, username, password;
 * opts may be NULL).  Subscribed to nothing yet.  On success *out receives
 * it, to close with corio_redis_sub_close().  Returns corio_redis_connect's
 * codes; corio_redis_error(NULL) says why a connect failed. */
int corio_redis_sub_connect(corio_redis_sub **out, const char *where, const corio_redis_opts *opts);

/* Await: SUBSCRIBE to n channels (NUL-terminated names, borrowed for the
 * call) and wait until the server confirmed each one: messages published
 * after this returns 0 reach the subscriber.  Subscribing to a channel
 * twice is harmless.  Returns 0, CORIO_ECONNRESET (the connection is lost:
 * the subscriber is over), CORIO_ERANGE (it overflowed, see
 * corio_redis_next_message), CORIO_ECLOSED, CORIO_ETIMEDOUT /
 * CORIO_ECANCELED (the subscription may still take effect), CORIO_EINVAL
 * (sub or channels NULL, n 0, a NULL name), CORIO_ENOTASK, CORIO_ENOMEM. */
int corio_redis_subscribe(corio_redis_sub *sub, size_t n, const char *const *channels);

/* Await: PSUBSCRIBE to n glob-style patterns ("news.*"); as
 * corio_redis_subscribe.  A message matched by a pattern comes with it in
 * corio_redis_message.pattern. */
int corio_redis_psubscribe(corio_redis_sub *sub, size_t n, const char *const *patterns);

/* Await: takes the next message, waiting while none is queued.  *out
 * receives it (the caller's: corio_redis_message_free).
 * THE QUEUE.  Messages are read from the socket as they come and queued,
 * up to max_messages (default 1024).  One more than that means the
 * subscriber fell behind: like Redis's own output-buffer limit for pub/sub
 * clients, nothing is dropped silently — the subscriber is disconnected,
 * and after the messages queued before then, this returns CORIO_ERANGE.
 * Returns:
 *   0                   *out holds the next message
 *   CORIO_ERANGE        the queue overflowed (above): the subscriber is over
 *   CORIO_ENOMEM        a message could not be copied: the subscriber is
 *                       over (nothing is dropped silently), as above
 *   CORIO_ECONNRESET    the connection was lost (after the messages queued
 *                       before): the subscriber is over; messages published
 *                       from then on are missed.  Close it and connect a
 *                       new one
 *   CORIO_ECLOSED       sub was closed (also by the loop's shutdown); also
 *                       to a task waiting here when another closes it
 *   CORIO_ETIMEDOUT     a deadline of the task passed (no message is lost)
 *   CORIO_ECANCELED     the task was cancelled (likewise)
 *   CORIO_EINVAL        sub or out NULL
 *   CORIO_ENOTASK       called outside a task
 * Once over, the subscriber answers every call with the same code. */
int corio_redis_next_message(corio_redis_sub *sub, corio_redis_message **out);

/* 0 while sub is live, else the code corio_redis_next_message returns
 * once the queue is drained (CORIO_ERANGE, CORIO_ECONNRESET,
 * CORIO_ECLOSED); CORIO_EINVAL for NULL.  Not an await. */
int corio_redis_sub_status(const corio_redis_sub *sub);

/* Frees a message.  Accepts NULL. */
void corio_redis_message_free(corio_redis_message *msg);

/* Closes the subscriber and frees it (when the last task waiting in one of
 * its calls has returned, with CORIO_ECLOSED).  Messages still queued are
 * dropped.  Not an await; callable as corio_redis_close is.  Accepts
 * NULL. */
void corio_redis_sub_close(corio_redis_sub *sub);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_REDIS_H */
