/* SPDX-License-Identifier: MIT */
/* The Redis client (corio/redis.h): one multiplexed connection, its keeper
 * task, and the commands.
 *
 * The keeper (a task named "redis", one per client, started by the
 * connect) owns reconnecting: it sleeps on the `lost` event while the
 * connection is up; when hiredis reports it lost, it dials again at once,
 * then after reconnect_min_ms, doubling up to reconnect_max_ms, until it
 * connects or the client is closed.  Commands never wait for it: while
 * the connection is down they fail at once (CORIO_ECONNRESET), so a
 * server that stays away costs callers nothing but an error.
 *
 * The keeper is also what makes a client left open harmless at the end of
 * corio_run: it is cancelled then like every task, and drops the
 * connection (closing its socket watcher) on its way out.
 *
 * Memory: the client is referenced by its corio_redis_close (the user's)
 * and by its keeper, and by a task inside corio_redis_wait_connected; the
 * last reference frees it.  Commands hold none: a command's caller touches
 * nothing of the client after its await, and the close fails every
 * command in flight before it drops its reference.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/report.h"
#include "corio/loop.h"
#include "corio/scope.h"
#include "corio/task.h"
#include "redis_internal.h"

struct corio_redis {
    corio__redis_conn conn; /* first: hiredis's context data points here */
    corio__redis_target target;
    corio_redis_opts o;
    corio_task *keeper; /* NULL once it ended */
    corio_event lost;   /* set when the connection is lost: wakes the keeper */
    corio_event up;     /* set while ready (or closed): wakes wait_connected */
    unsigned refs;
    bool close_called;
};

static void client_unref(corio_redis *r) {
    if (--r->refs)
        return;
    corio__redis_target_release(&r->target);
    free(r);
}

static void on_lost(corio__redis_conn *c) {
    corio_redis *r = (corio_redis *)c;
    corio_event_clear(&r->up);
    corio_event_set(&r->lost);
}

/* Drops the connection for good: what is in flight fails with
 * CORIO_ECLOSED, and so does every later call. */
static void shut(corio_redis *r) {
    r->conn.closing = true;
    corio__redis_drop(&r->conn);
    corio_event_set(&r->up); /* wait_connected wakes, sees closing */
}

static int keeper_task(void *arg) {
    corio_redis *r = arg;
    uint64_t pause = 0;
    while (!r->conn.closing && !corio_cancelled()) {
        corio_event_clear(&r->lost);
        if (r->conn.ready) {
            pause = 0;
            corio_event_wait(&r->lost);
            continue;
        }
        if (pause && corio_sleep(pause) < 0)
            continue; /* cancelled: the loop's test ends it */
        int rc = corio__redis_dial(&r->conn, &r->target, r->o.connect_timeout_ms);
        if (rc == 0) {
            corio_event_set(&r->up);
        } else {
            pause = pause ? pause * 2 : r->o.reconnect_min_ms;
            if (pause > r->o.reconnect_max_ms)
                pause = r->o.reconnect_max_ms;
        }
    }
    /* corio_redis_close, or the loop shuts down: either way the client is
     * over (a client the shutdown disconnected answers CORIO_ECLOSED). */
    shut(r);
    corio_task_release(r->keeper);
    r->keeper = NULL;
    client_unref(r);
    return 0;
}

int corio_redis_connect(corio_redis **out, const char *where, const corio_redis_opts *opts) {
    if (!out)
        return CORIO_EINVAL;
    *out = NULL;
    if (!corio_current()) {
        corio__report("corio_redis_connect called outside a task");
        corio__redis_set_connect_error("corio_redis_connect called outside a task");
        return CORIO_ENOTASK;
    }
    corio_redis *r = calloc(1, sizeof *r);
    if (!r) {
        corio__redis_set_connect_error("out of memory");
        return CORIO_ENOMEM;
    }
    if (opts)
        r->o = *opts;
    r->o.username = r->o.password = NULL; /* copied into the target */
    r->o.connect_timeout_ms = r->o.connect_timeout_ms ? r->o.connect_timeout_ms : 5000;
    r->o.reconnect_min_ms = r->o.reconnect_min_ms ? r->o.reconnect_min_ms : 50;
    r->o.reconnect_max_ms = r->o.reconnect_max_ms ? r->o.reconnect_max_ms : 2000;
    r->o.max_pending = r->o.max_pending ? r->o.max_pending : 10000;
    r->conn.on_lost = on_lost;
    corio_event_init(&r->lost);
    corio_event_init(&r->up);
    r->refs = 1;
    int rc =
        corio__redis_target_parse(&r->target, where, opts, r->conn.error, sizeof r->conn.error);
    if (rc == 0 && !r->o.connect_in_background)
        rc = corio__redis_dial(&r->conn, &r->target, r->o.connect_timeout_ms);
    if (rc == 0) {
        r->refs++;
        rc = corio__redis_spawn_keeper(&r->keeper, "redis", keeper_task, r);
        if (rc < 0) {
            r->refs--;
            snprintf(r->conn.error, sizeof r->conn.error, "no keeper task: %s", corio_strerror(rc));
        }
    }
    if (rc < 0) {
        corio__redis_set_connect_error(r->conn.error[0] ? r->conn.error : corio_strerror(rc));
        r->conn.closing = true;
        corio__redis_drop(&r->conn);
        client_unref(r);
        return rc;
    }
    corio__redis_set_connect_error("");
    if (r->conn.ready) /* else the keeper dials: in the background */
        corio_event_set(&r->up);
    *out = r;
    return 0;
}

void corio_redis_close(corio_redis *r) {
    if (!r)
        return;
    if (r->close_called) {
        corio__report("corio_redis_close called twice on one client");
        return;
    }
    r->close_called = true;
    shut(r);
    if (r->keeper)
        corio_cancel(r->keeper); /* it drops its reference as it ends */
    client_unref(r);
}

bool corio_redis_connected(const corio_redis *r) {
    return r && r->conn.ready;
}

int corio_redis_wait_connected(corio_redis *r) {
    if (!r)
        return CORIO_EINVAL;
    if (!corio_current()) {
        corio__report("corio_redis_wait_connected called outside a task");
        return CORIO_ENOTASK;
    }
    r->refs++;
    int rc = 0;
    while (rc == 0 && !r->conn.closing && !r->conn.ready)
        rc = corio_event_wait(&r->up);
    if (rc == 0 && r->conn.closing)
        rc = CORIO_ECLOSED;
    client_unref(r);
    return rc;
}

size_t corio_redis_pending(const corio_redis *r) {
    return r ? r->conn.pending : 0;
}

const char *corio_redis_error(const corio_redis *r) {
    return r ? r->conn.error : corio__redis_connect_error();
}

/* ---- commands ---------------------------------------------------------------------------------
 */

/* Argument i of the RESP command cmd[0..len) ("*N\r\n$L\r\n<bytes>\r\n..."),
 * or false. */
static bool arg_at(const char *cmd, size_t len, size_t i, const char **p, size_t *n) {
    const char *end = cmd + len, *s = memchr(cmd, '\n', len);
    for (size_t k = 0; s && s + 1 < end; k++) {
        s++; /* at '$' */
        char *e;
        unsigned long l = strtoul(s + 1, &e, 10);
        if (*s != '$' || e + 2 > end || (size_t)(end - (e + 2)) < l)
            return false;
        if (k == i) {
            *p = e + 2;
            *n = l;
            return true;
        }
        s = e + 2 + l + 1; /* the '\n' after the bytes */
    }
    return false;
}

static bool arg_is(const char *cmd, size_t len, size_t i, const char *word) {
    const char *p;
    size_t n;
    return arg_at(cmd, len, i, &p, &n) && n == strlen(word) && strncasecmp(p, word, n) == 0;
}

/* The commands that break one reply per command, which multiplexing (and
 * hiredis's bookkeeping of callbacks) rests on, and those whose effect
 * would span other tasks' commands on the shared connection: a MULTI
 * would take them into its transaction (they would answer QUEUED), and a
 * WATCH would watch for them.  hiredis itself treats a command by its
 * first word with one leading 'p' taken off ("pmonitor" is a monitor to
 * it, though the server refuses it), so those variants are refused too. */
static bool refused(const char *cmd, size_t len) {
    static const char *const words[] = {
        "subscribe",    "psubscribe",  "ssubscribe",    "unsubscribe", "punsubscribe",
        "sunsubscribe", "pssubscribe", "psunsubscribe", "monitor",     "pmonitor",
        "multi",        "exec",        "discard",       "watch",       "unwatch"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (arg_is(cmd, len, 0, words[i]))
            return true;
    if (arg_is(cmd, len, 0, "client") && arg_is(cmd, len, 1, "reply"))
        return true;
    return arg_is(cmd, len, 0, "hello") && arg_is(cmd, len, 1, "3");
}

/* Await: runs the formatted command cmd[0..len) (freed here). */
static int run(corio_redis *r, corio_redis_reply **out, char *cmd, int len) {
    int rc;
    if (len < 0)
        rc = len == -1 ? CORIO_ENOMEM : CORIO_EINVAL; /* hiredis: -1 no memory, -2 bad format */
    else if (r->conn.closing)
        rc = CORIO_ECLOSED;
    else if (!r->conn.ready)
        rc = CORIO_ECONNRESET;
    else if (refused(cmd, (size_t)len))
        rc = CORIO_ENOTSUP;
    else
        rc = corio__redis_call(&r->conn, cmd, (size_t)len, r->o.max_pending, out);
    if (len >= 0)
        redisFreeCommand(cmd);
    if (rc == 0 && corio_redis_reply_type(*out) == CORIO_REDIS_ERROR)
        rc = CORIO_EFAILED;
    return rc;
}

static int check(const corio_redis *r, corio_redis_reply **out, const char *call) {
    if (out)
        *out = NULL;
    if (!r || !out)
        return CORIO_EINVAL;
    if (!corio_current()) {
        corio__report("%s called outside a task", call);
        return CORIO_ENOTASK;
    }
    return 0;
}

int corio_redis_command_argv(corio_redis *r, corio_redis_reply **out, size_t argc,
                             const char *const *argv, const size_t *argvlen) {
    int rc = check(r, out, "corio_redis_command_argv");
    if (rc < 0)
        return rc;
    if (argc == 0 || argc > INT_MAX || !argv)
        return CORIO_EINVAL;
    for (size_t i = 0; i < argc; i++)
        if (!argv[i])
            return CORIO_EINVAL;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, (int)argc, (const char **)argv, argvlen);
    return run(r, out, cmd, len < 0 ? -1 : len); /* it fails only for memory */
}

int corio_redis_command(corio_redis *r, corio_redis_reply **out, const char *fmt, ...) {
    int rc = check(r, out, "corio_redis_command");
    if (rc < 0)
        return rc;
    if (!fmt || !*fmt)
        return CORIO_EINVAL;
    char *cmd = NULL;
    va_list ap;
    va_start(ap, fmt);
    int len = redisvFormatCommand(&cmd, fmt, ap);
    va_end(ap);
    const char *p;
    size_t n;
    if (len >= 0 && !arg_at(cmd, (size_t)len, 0, &p, &n)) { /* no word at all: hiredis asserts */
        redisFreeCommand(cmd);
        return CORIO_EINVAL;
    }
    return run(r, out, cmd, len);
}

/* Await: a command whose reply must be of one kind; the reply freed here
 * (an error reply too: CORIO_EFAILED).  *value receives an integer reply's
 * value when want is CORIO_REDIS_INTEGER. */
static int simple(corio_redis *r, const char *call, size_t argc, const char *const *argv,
                  const size_t *argvlen, corio_redis_type want, int64_t *value) {
    corio_redis_reply *rep;
    int rc = check(r, &rep, call);
    if (rc == 0)
        rc = corio_redis_command_argv(r, &rep, argc, argv, argvlen);
    if (rc == 0 && corio_redis_reply_type(rep) != want)
        rc = CORIO_EBADMSG; /* not what the command answers */
    if (rc == 0 && want == CORIO_REDIS_STATUS &&
        strcmp(corio_redis_reply_str(rep, NULL), "OK") != 0)
        rc = CORIO_EBADMSG; /* stored only on +OK */
    if (rc == 0 && value)
        corio_redis_reply_integer(rep, value);
    corio_redis_reply_free(rep);
    return rc;
}

int corio_redis_get(corio_redis *r, corio_redis_reply **out, const char *key) {
    int rc = check(r, out, "corio_redis_get");
    if (rc < 0)
        return rc;
    if (!key)
        return CORIO_EINVAL;
    const char *argv[] = {"GET", key};
    rc = corio_redis_command_argv(r, out, 2, argv, NULL);
    corio_redis_type type = rc == 0 ? corio_redis_reply_type(*out) : 0;
    if (rc == 0 && type != CORIO_REDIS_STRING) {
        corio_redis_reply_free(*out);
        *out = NULL;
        rc = type == CORIO_REDIS_NIL ? CORIO_ENOENT : CORIO_EBADMSG;
    }
    return rc;
}

int corio_redis_set(corio_redis *r, const char *key, const void *val, size_t len, uint64_t ttl_ms) {
    if (!key || (!val && len))
        return CORIO_EINVAL;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%llu", (unsigned long long)ttl_ms);
    const char *argv[] = {"SET", key, val ? val : "", "PX", ttl};
    size_t lens[] = {3, strlen(key), len, 2, strlen(ttl)};
    return simple(r, "corio_redis_set", ttl_ms ? 5 : 3, argv, lens, CORIO_REDIS_STATUS, NULL);
}

int corio_redis_incr(corio_redis *r, const char *key, int64_t *value) {
    if (!key)
        return CORIO_EINVAL;
    const char *argv[] = {"INCR", key};
    return simple(r, "corio_redis_incr", 2, argv, NULL, CORIO_REDIS_INTEGER, value);
}

int corio_redis_del(corio_redis *r, const char *key, int64_t *removed) {
    if (!key)
        return CORIO_EINVAL;
    const char *argv[] = {"DEL", key};
    return simple(r, "corio_redis_del", 2, argv, NULL, CORIO_REDIS_INTEGER, removed);
}

int corio_redis_publish(corio_redis *r, const char *channel, const void *msg, size_t len,
                        int64_t *receivers) {
    if (!channel || (!msg && len))
        return CORIO_EINVAL;
    const char *argv[] = {"PUBLISH", channel, msg ? msg : ""};
    size_t lens[] = {7, strlen(channel), len};
    return simple(r, "corio_redis_publish", 3, argv, lens, CORIO_REDIS_INTEGER, receivers);
}
