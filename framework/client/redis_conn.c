/* SPDX-License-Identifier: MIT */
/* Redis connections (corio/redis.h): addresses, the socket glue between
 * hiredis and libuv, and connecting.
 *
 * The glue is our own rather than hiredis's adapters/libuv.h, for three
 * reasons.  That adapter (0.14.1) ignores a poll callback's error status:
 * libuv reports a refused connect (POLLERR) as an error and stops the
 * poll, the adapter returns without telling hiredis, and the connect
 * never ends.  Here an error is handed to hiredis as readiness, so it
 * finds the socket error itself (getsockopt, read) and fails the connect
 * or drops the connection.  The adapter also leaks its watcher when
 * uv_poll_init fails, and frees it out of our sight; here the watcher is
 * freed in its close callback like every loop object.
 *
 * Connecting is an await: hiredis's connect callback completes a future
 * the connecting task awaits, so the task's deadlines and cancels apply as
 * to any await.  A connect given up is freed at once (hiredis then calls
 * no callback of it).  Host names are resolved first with corio_resolve:
 * hiredis would call getaddrinfo on the loop.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "base/report.h"
#include "corio/loop.h"
#include "corio/scope.h"
#include "corio/stream.h"
#include "corio/task.h"
#include "redis_internal.h"

/* ---- errors ------------------------------------------------------------------------------ */

static __thread char connect_error[256];

void corio__redis_set_connect_error(const char *msg) {
    snprintf(connect_error, sizeof connect_error, "%s", msg ? msg : "");
}

const char *corio__redis_connect_error(void) {
    return connect_error;
}

/* ---- addresses ---------------------------------------------------------------------------- */

static int set_msg(char *msg, size_t msgsz, int rc, const char *what, const char *where) {
    snprintf(msg, msgsz, "%s: %s", what, where);
    return rc;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* %XX-decodes s[0..n) into a new string; NULL on a bad escape or no memory
 * (*bad tells which). */
static char *decode(const char *s, size_t n, bool *bad) {
    char *d = malloc(n + 1), *o = d;
    *bad = false;
    if (!d)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
            !isxdigit((unsigned char)s[i + 2])) {
            *bad = true;
            break;
        }
        char hex[3] = {s[i + 1], s[i + 2], 0};
        char c = (char)strtol(hex, NULL, 16);
        if (c == '\0') { /* %00 would cut the name or password short */
            *bad = true;
            break;
        }
        *o++ = c;
        i += 2;
    }
    if (*bad) {
        free(d);
        return NULL;
    }
    *o = '\0';
    return d;
}

/* A decimal port 1..65535 in s[0..n). */
static bool parse_port(const char *s, size_t n, uint16_t *port) {
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* host[:port], [v6][:port], or a bare IPv6 literal, in s[0..n). */
static int parse_hostport(corio__redis_target *t, const char *s, size_t n, char *msg, size_t msgsz,
                          const char *where) {
    const char *host = s, *port = NULL;
    size_t hlen = n, plen = 0;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return set_msg(msg, msgsz, CORIO_EINVAL, "no ']' after an IPv6 address", where);
        host = s + 1;
        hlen = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - s);
        if (rest > 0) {
            if (close[1] != ':')
                return set_msg(msg, msgsz, CORIO_EINVAL, "junk after ']'", where);
            port = close + 2;
            plen = rest - 1;
        }
    } else {
        const char *colon = memchr(s, ':', n);
        if (colon && memchr(colon + 1, ':', n - (size_t)(colon + 1 - s)) == NULL) {
            hlen = (size_t)(colon - s);
            port = colon + 1;
            plen = n - hlen - 1;
        } /* two colons or more: an IPv6 literal without a port */
    }
    if (hlen == 0)
        return set_msg(msg, msgsz, CORIO_EINVAL, "no host in", where);
    t->port = 6379;
    if (port && !parse_port(port, plen, &t->port))
        return set_msg(msg, msgsz, CORIO_EINVAL, "bad port in", where);
    if (!(t->host = dup_n(host, hlen)))
        return CORIO_ENOMEM;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db] without its scheme. */
static int parse_url(corio__redis_target *t, const char *s, char *msg, size_t msgsz,
                     const char *where) {
    size_t n = strcspn(s, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '@')
            at = s + i; /* the last one: a password may hold '@' escaped or not */
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        bool bad = false;
        if (colon) {
            if (colon > s && !(t->user = decode(s, (size_t)(colon - s), &bad)))
                return bad ? set_msg(msg, msgsz, CORIO_EINVAL, "bad %-escape in", where)
                           : CORIO_ENOMEM;
            if (!(t->password = decode(colon + 1, (size_t)(at - colon - 1), &bad)))
                return bad ? set_msg(msg, msgsz, CORIO_EINVAL, "bad %-escape in", where)
                           : CORIO_ENOMEM;
        } else if (at > s) { /* redis://secret@host: a password alone, as redis-cli reads it */
            if (!(t->password = decode(s, (size_t)(at - s), &bad)))
                return bad ? set_msg(msg, msgsz, CORIO_EINVAL, "bad %-escape in", where)
                           : CORIO_ENOMEM;
        }
        n -= (size_t)(at + 1 - s);
        s = at + 1;
    }
    int rc = parse_hostport(t, s, n, msg, msgsz, where);
    if (rc)
        return rc;
    s += n;
    if (*s == '/' && s[1] && s[1] != '?' && s[1] != '#') {
        long db = 0;
        const char *d = s + 1;
        while (*d >= '0' && *d <= '9' && db <= 1000000) /* digits only: no blank, no sign */
            db = db * 10 + (*d++ - '0');
        if (d == s + 1 || (*d && *d != '?' && *d != '#') || db > 1000000)
            return set_msg(msg, msgsz, CORIO_EINVAL, "bad database number in", where);
        t->db = (int)db;
        t->db_given = true;
    }
    return 0;
}

int corio__redis_target_parse(corio__redis_target *t, const char *where, const corio_redis_opts *o,
                              char *msg, size_t msgsz) {
    memset(t, 0, sizeof *t);
    msg[0] = '\0';
    if (!where || !*where)
        return set_msg(msg, msgsz, CORIO_EINVAL, "no address", "(empty)");
    int rc;
    if (strncmp(where, "redis://", 8) == 0) {
        rc = parse_url(t, where + 8, msg, msgsz, where);
    } else if (where[0] == '/' || strncmp(where, "unix:", 5) == 0) { /* "://" may be in a path */
        const char *p = where[0] == '/' ? where : where + 5;
        rc = *p ? ((t->path = strdup(p)) ? 0 : CORIO_ENOMEM)
                : set_msg(msg, msgsz, CORIO_EINVAL, "no socket path in", where);
    } else if (strstr(where, "://")) {
        rc = set_msg(msg, msgsz, CORIO_EINVAL, "unsupported scheme (redis:// only)", where);
    } else {
        rc = parse_hostport(t, where, strlen(where), msg, msgsz, where);
    }
    if (rc)
        return rc;
    if (o) {
        if (o->db < 0)
            return set_msg(msg, msgsz, CORIO_EINVAL, "negative db in the options for", where);
        if (!t->password && o->password) {
            if (!(t->password = strdup(o->password)))
                return CORIO_ENOMEM;
            if (!t->user && o->username && !(t->user = strdup(o->username)))
                return CORIO_ENOMEM;
        }
        if (!t->db_given) /* the URL's /db wins, /0 too */
            t->db = o->db;
    }
    return 0;
}

void corio__redis_target_release(corio__redis_target *t) {
    free(t->host);
    free(t->path);
    free(t->user);
    free(t->password);
    memset(t, 0, sizeof *t);
}

/* ---- the socket glue --------------------------------------------------------------------------
 */

typedef struct watch {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis cleaned up */
    int events;
    /* the reader's object functions, wrapped (see reply_ok) */
    redisReplyObjectFunctions fns;
    const redisReplyObjectFunctions *hiredis_fns;
    bool push; /* the reply being read is a push to a subscriber */
} watch;

/* ---- replies no Redis server sends ------------------------------------------------------------
 *
 * hiredis 0.14 asserts, aborting the process, on replies a Redis server
 * never sends: a reply other than an error with no command waiting on a
 * connection that is not subscribed; on a subscribed one, a push that is
 * an array of fewer than two elements or whose kind or channel is not a
 * string.  The reader's object functions are wrapped to look at each reply
 * as it is built: such a reply makes them fail, and hiredis drops the
 * connection (what is in flight fails with CORIO_ECONNRESET) instead of
 * aborting.  Not covered: an unsubscribe of a subscribed channel whose
 * count is not an integer (telling needs hiredis's channel table). */

static bool violation(watch *w, const char *what) {
    corio__redis_conn *c = w->ac->data;
    if (c)
        c->violation = what;
    return false;
}

/* type: the object's (a nil bulk string is REDIS_REPLY_NIL, not the task's type). */
static bool reply_ok(watch *w, const redisReadTask *t, int type, int elements) {
    redisAsyncContext *ac = w->ac;
    if (!ac)
        return true;
    if (!t->parent) { /* a reply's top */
        w->push = false;
        if (ac->replies.head || (ac->c.flags & REDIS_MONITORING))
            return true; /* a command waits for it */
        if (!(ac->c.flags & REDIS_SUBSCRIBED))
            return type == REDIS_REPLY_ERROR || violation(w, "a reply to no command");
        if (type != REDIS_REPLY_ARRAY)
            return true; /* hiredis takes it as the answer to a refused command */
        if (elements < 2)
            return violation(w, "a message of fewer than two elements");
        w->push = true;
        return true;
    }
    if (!w->push || t->parent->parent || t->idx > 1)
        return true;
    return type == REDIS_REPLY_STRING ||
           violation(w, "a message whose kind or channel is not a string");
}

static void *checked_string(const redisReadTask *t, char *s, size_t n) {
    watch *w = t->privdata;
    return reply_ok(w, t, t->type, 0) ? w->hiredis_fns->createString(t, s, n) : NULL;
}

static void *checked_array(const redisReadTask *t, int elements) {
    watch *w = t->privdata;
    return reply_ok(w, t, REDIS_REPLY_ARRAY, elements) ? w->hiredis_fns->createArray(t, elements)
                                                       : NULL;
}

static void *checked_integer(const redisReadTask *t, long long v) {
    watch *w = t->privdata;
    return reply_ok(w, t, REDIS_REPLY_INTEGER, 0) ? w->hiredis_fns->createInteger(t, v) : NULL;
}

static void *checked_nil(const redisReadTask *t) {
    watch *w = t->privdata;
    return reply_ok(w, t, REDIS_REPLY_NIL, 0) ? w->hiredis_fns->createNil(t) : NULL;
}

static void check_replies(watch *w, redisReader *r) {
    w->hiredis_fns = r->fn;
    w->fns = (redisReplyObjectFunctions){checked_string, checked_array, checked_integer,
                                         checked_nil, r->fn->freeObject};
    r->fn = &w->fns;
    r->privdata = w;
}

static void on_poll(uv_poll_t *h, int status, int events) {
    watch *w = h->data;
    /* libuv stopped the poll on an error (POLLERR): hiredis finds the
     * socket's error itself by trying; it restarts the poll if it goes on. */
    if (status < 0) {
        events = UV_READABLE | UV_WRITABLE;
        w->events = 0;
    }
    /* Either call may free the context (cleanup sets w->ac NULL); w itself
     * lives until its close callback. */
    if (w->ac && (events & UV_READABLE))
        redisAsyncHandleRead(w->ac);
    if (w->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(w->ac);
}

static void watch_update(watch *w, int events) {
    if (events == w->events)
        return;
    w->events = events;
    if (events)
        uv_poll_start(&w->poll, events, on_poll);
    else
        uv_poll_stop(&w->poll);
}

static void add_read(void *data) {
    watch *w = data;
    watch_update(w, w->events | UV_READABLE);
}

static void del_read(void *data) {
    watch *w = data;
    watch_update(w, w->events & ~UV_READABLE);
}

static void add_write(void *data) {
    watch *w = data;
    watch_update(w, w->events | UV_WRITABLE);
}

static void del_write(void *data) {
    watch *w = data;
    watch_update(w, w->events & ~UV_WRITABLE);
}

static void on_watch_closed(uv_handle_t *h) {
    free(h->data);
}

/* hiredis frees the context: it closes the socket right after this, so
 * the poll stops now (uv_close stops it at once). */
static void cleanup(void *data) {
    watch *w = data;
    w->ac = NULL;
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static int attach(redisAsyncContext *ac) {
    uv_loop_t *loop = corio_uv_loop();
    if (!loop)
        return CORIO_ENOTASK;
    watch *w = calloc(1, sizeof *w);
    if (!w)
        return CORIO_ENOMEM;
    int rc = uv_poll_init_socket(loop, &w->poll, ac->c.fd);
    if (rc) {
        free(w);
        return rc;
    }
    w->poll.data = w;
    w->ac = ac;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    if (ac->c.reader && ac->c.reader->fn)
        check_replies(w, ac->c.reader);
    return 0;
}

/* ---- connecting -------------------------------------------------------------------------------
 */

/* The code of a hiredis context error: its errno for I/O errors. */
static int context_error(const redisContext *c, int err_no) {
    if (c->err == REDIS_ERR_IO && err_no > 0)
        return -err_no;
    if (c->err == REDIS_ERR_OOM)
        return CORIO_ENOMEM;
    if (c->err == REDIS_ERR_EOF)
        return CORIO_ECONNRESET;
    if (strstr(c->errstr, "refused"))
        return CORIO_ECONNREFUSED;
    return CORIO_EFAILED;
}

/* TCP keepalive on fd: a first probe after 15 s idle, then every 5 s, 3
 * of them.  Set here rather than with hiredis's redisEnableKeepAlive,
 * which records a failure as the context's error (and so ends it).
 * Failures are ignored: keepalive only helps. */
static void keepalive(int fd) {
    int on = 1, idle = 15, intvl = 5, cnt = 3;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    int err_no = errno; /* the socket error hiredis just found, before anything else runs */
    corio__redis_conn *c = ac->data;
    corio_future *f = c->connect_f;
    c->connect_f = NULL;
    int rc = 0;
    if (status != REDIS_OK) { /* hiredis frees the context after this returns */
        rc = context_error(&ac->c, err_no);
        snprintf(c->error, sizeof c->error, "%s",
                 ac->c.errstr[0] ? ac->c.errstr : "connect failed");
    } else {
        /* c's from now on, before the waiting task resumes: a loss in
         * between (the peer's EOF in the same loop turn) is then a loss
         * that on_disconnect sees, not a context freed behind c's back. */
        c->ac = (redisAsyncContext *)ac;
        if (ac->c.connection_type == REDIS_CONN_TCP)
            keepalive(ac->c.fd); /* a peer gone silent is found */
    }
    if (f)
        corio_future_complete(f, rc, NULL);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    corio__redis_conn *c = ac->data;
    if (c->ac != ac)
        return; /* freed on purpose (drop, close): nothing was lost */
    c->ac = NULL;
    c->ready = false;
    if (c->violation) /* the reader's error says "Out of memory" */
        snprintf(c->error, sizeof c->error, "connection lost: protocol violation: %s",
                 c->violation);
    else
        snprintf(c->error, sizeof c->error, "connection lost: %s",
                 status != REDIS_OK && ac->errstr && ac->errstr[0] ? ac->errstr
                                                                   : "closed by the server");
    if (c->on_lost)
        c->on_lost(c);
}

void corio__redis_drop(corio__redis_conn *c) {
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    c->ac = NULL;
    c->ready = false;
    redisAsyncFree(ac); /* fails what is in flight; on_disconnect sees it is not c->ac */
}

/* Await: one TCP or Unix connect; the context becomes c->ac on success. */
static int connect_one(corio__redis_conn *c, const char *ip, uint16_t port, const char *path) {
    redisAsyncContext *ac = path ? redisAsyncConnectUnix(path) : redisAsyncConnect(ip, port);
    int err_no = errno;
    if (!ac) {
        snprintf(c->error, sizeof c->error, "out of memory");
        return CORIO_ENOMEM;
    }
    if (ac->err) {
        int rc = context_error(&ac->c, err_no);
        snprintf(c->error, sizeof c->error, "%s", ac->errstr);
        redisAsyncFree(ac);
        return rc;
    }
    int rc = attach(ac);
    if (rc) {
        snprintf(c->error, sizeof c->error, "%s", corio_strerror(rc));
        redisAsyncFree(ac);
        return rc;
    }
    ac->data = c;
    c->violation = NULL;
    corio_future *f;
    if ((rc = corio_future_new(&f)) < 0) {
        redisAsyncFree(ac);
        return rc;
    }
    c->connect_f = f;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    redisAsyncSetConnectCallback(ac, on_connect); /* starts watching for writability */
    rc = corio_future_await(f);
    if (!corio_future_done(f)) { /* a deadline, a cancel: give the attempt up */
        c->connect_f = NULL;
        snprintf(c->error, sizeof c->error, "connect: %s", corio_strerror(rc));
        redisAsyncFree(ac); /* not connected: no callback runs */
    } else {
        /* Connected: on_connect made it c's (also if the await failed
         * after all, a cancel that came with the connect: the failed dial
         * drops it), unless it was lost since (on_disconnect took it back
         * and hiredis freed it).  Not connected: hiredis freed it after
         * on_connect. */
        int res = corio_future_result(f);
        if (res == 0 && c->ac != ac)
            res = CORIO_ECONNRESET;
        if (rc == 0)
            rc = res;
    }
    corio_future_release(f);
    return rc;
}

/* Await: sends one setup command (AUTH, SELECT) and checks its reply. */
static int setup_command(corio__redis_conn *c, int argc, const char **argv, int refused) {
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (len < 0)
        return CORIO_ENOMEM;
    corio_redis_reply *rep = NULL;
    int rc = corio__redis_call(c, cmd, (size_t)len, SIZE_MAX, &rep);
    redisFreeCommand(cmd);
    if (rc == 0 && corio_redis_reply_type(rep) == CORIO_REDIS_ERROR) {
        snprintf(c->error, sizeof c->error, "%s refused: %s", argv[0],
                 corio_redis_reply_str(rep, NULL));
        rc = refused;
    } else if (rc < 0) {
        snprintf(c->error, sizeof c->error, "%s: %s", argv[0], corio_strerror(rc));
    }
    corio_redis_reply_free(rep);
    return rc;
}

static int setup(corio__redis_conn *c, const corio__redis_target *t) {
    int rc = 0;
    if (t->password) {
        const char *argv[3] = {"AUTH", t->user ? t->user : t->password, t->password};
        rc = setup_command(c, t->user ? 3 : 2, argv, CORIO_EACCES);
    }
    if (rc == 0 && t->db > 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", t->db);
        const char *argv[2] = {"SELECT", db};
        rc = setup_command(c, 2, argv, CORIO_EFAILED);
    }
    return rc;
}

static bool is_literal(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static int dial_in(corio__redis_conn *c, const corio__redis_target *t) {
    if (t->path)
        return connect_one(c, NULL, 0, t->path);
    if (is_literal(t->host))
        return connect_one(c, t->host, t->port, NULL);
    corio_addr addrs[8];
    size_t n = 0;
    int rc = corio_resolve(t->host, t->port, addrs, 8, &n);
    if (rc < 0) {
        snprintf(c->error, sizeof c->error, "could not resolve %s: %s", t->host,
                 corio_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        char ip[INET6_ADDRSTRLEN] = "";
        const struct sockaddr *sa = (const struct sockaddr *)&addrs[i].sa;
        if (sa->sa_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)sa, ip, sizeof ip);
        else
            uv_ip4_name((const struct sockaddr_in *)sa, ip, sizeof ip);
        rc = connect_one(c, ip, t->port, NULL);
        if (rc == 0 || rc == CORIO_ETIMEDOUT || rc == CORIO_ECANCELED || rc == CORIO_ENOMEM)
            break;
    }
    return rc;
}

int corio__redis_dial(corio__redis_conn *c, const corio__redis_target *t, uint64_t timeout_ms) {
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(timeout_ms)) {
        rc = dial_in(c, t);
        if (rc == 0)
            rc = setup(c, t);
    }
    if (rc == 0 && !c->ac) /* lost after its setup's last reply */
        rc = CORIO_ECONNRESET;
    if (rc < 0) {
        if (!c->error[0])
            snprintf(c->error, sizeof c->error, "%s", corio_strerror(rc));
        corio__redis_drop(c);
        return rc;
    }
    c->ready = true;
    return 0;
}

int corio__redis_spawn_keeper(corio_task **out, const char *name, corio_task_fn fn, void *arg) {
    /* Run even if cancelled before its first turn (a shutdown right after
     * the connect): it is what drops the connection.  It outlives the
     * request that made the client: no request id of its. */
    corio_spawn_opts so = {.name = name, .run_if_cancelled = true, .no_context = true};
    return corio_spawn_ex(out, &so, fn, arg);
}
