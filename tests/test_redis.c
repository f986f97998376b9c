/* SPDX-License-Identifier: MIT */
/* The Redis client (corio/redis.h) against real servers that the test
 * starts itself (redis_server.h; CORIO_TEST_REDIS=host:port uses another,
 * and the restart test then skips).  Keys carry the test process's pid, so
 * a shared server's data is left alone.
 *
 * No test waits by sleeping or asserts a duration: a command "in flight"
 * is one counted by corio_redis_pending (the count rises when the command
 * is written to the connection's buffer, before its caller awaits), and
 * waits for a state go round the loop under a generous deadline. */
#include "corio_test.h"

#ifdef CORIO_HAVE_REDIS
#include <corio/redis.h>
#include <string.h>
#include <unistd.h>

#include "redis_server.h"

static redis_server srv;
static bool server_up;

static void need_server(void) {
    if (!server_up) {
        fprintf(stderr, "test_redis: skipped: %s\n", srv.skip_why);
        skip();
    }
}

/* "ct:<pid>:<name>": a key of this run. */
static const char *key(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "ct:%d:%s", (int)getpid(), name);
    return buf;
}
#define KEY(var, name)                                                                             \
    char var##_buf[96];                                                                            \
    const char *var = key(var##_buf, sizeof var##_buf, name)

static corio_redis *connect_or_report(const char *addr, const corio_redis_opts *o) {
    corio_redis *r = NULL;
    int rc = corio_redis_connect(&r, addr, o);
    SOFT(rc == 0);
    if (rc)
        fprintf(stderr, "connect %s: %s: %s\n", addr, corio_err_name(rc), corio_redis_error(NULL));
    return r;
}

/* Goes round the loop until r has n commands in flight (10 s at most). */
static int wait_pending(corio_redis *r, size_t n) {
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(10000)) {
        while (rc == 0 && corio_redis_pending(r) != n)
            rc = corio_yield();
    }
    return rc;
}

static bool str_is(const corio_redis_reply *rep, const char *s) {
    size_t n = 0;
    const char *p = corio_redis_reply_str(rep, &n);
    return p && n == strlen(s) && memcmp(p, s, n) == 0;
}

/* ---- the convenience commands ------------------------------------------------------------ */

static int basics_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    if (!r)
        return 0;
    KEY(k, "greeting");
    KEY(t, "ttl");
    KEY(n, "counter");
    KEY(missing, "missing");
    SOFT(corio_redis_connected(r));
    SOFT(corio_redis_set(r, k, "hello", 5, 0) == 0);
    corio_redis_reply *v = NULL;
    SOFT(corio_redis_get(r, &v, k) == 0);
    SOFT(corio_redis_reply_type(v) == CORIO_REDIS_STRING && str_is(v, "hello"));
    corio_redis_reply_free(v);
    /* SET with a TTL: PTTL says the key expires within it */
    SOFT(corio_redis_set(r, t, "x", 1, 60000) == 0);
    corio_redis_reply *ttl = NULL;
    SOFT(corio_redis_command(r, &ttl, "PTTL %s", t) == 0);
    int64_t ms = -1;
    SOFT(corio_redis_reply_integer(ttl, &ms) == 0 && ms > 0 && ms <= 60000);
    corio_redis_reply_free(ttl);
    /* INCR, and the counter read back as a string that is an integer */
    SOFT(corio_redis_del(r, n, NULL) == 0);
    int64_t x = 0;
    SOFT(corio_redis_incr(r, n, &x) == 0 && x == 1);
    SOFT(corio_redis_incr(r, n, &x) == 0 && x == 2);
    SOFT(corio_redis_get(r, &v, n) == 0);
    SOFT(corio_redis_reply_integer(v, &x) == 0 && x == 2);
    corio_redis_reply_free(v);
    /* DEL, and a GET of a key that is not there */
    int64_t removed = -1;
    SOFT(corio_redis_del(r, k, &removed) == 0 && removed == 1);
    SOFT(corio_redis_del(r, k, &removed) == 0 && removed == 0);
    v = (corio_redis_reply *)&v;
    SOFT(corio_redis_get(r, &v, missing) == CORIO_ENOENT);
    SOFT(v == NULL);
    corio_redis_del(r, t, NULL);
    corio_redis_del(r, n, NULL);
    SOFT(corio_redis_pending(r) == 0);
    corio_redis_close(r);
    return 0;
}

static void test_redis_get_set_with_ttl_incr_del(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(basics_main, NULL);
}

/* ---- every reply kind, binary values --------------------------------------------------------- */

static int replies_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    if (!r)
        return 0;
    KEY(bin, "binary");
    KEY(list, "list");
    KEY(missing, "missing");
    /* binary safe both ways: NUL bytes and a byte 0xff inside the value */
    const char value[] = {'a', '\0', 'b', '\xff', '\0', 'c'};
    const char *argv[] = {"SET", bin, value};
    size_t lens[] = {3, strlen(bin), sizeof value};
    corio_redis_reply *rep = NULL;
    SOFT(corio_redis_command_argv(r, &rep, 3, argv, lens) == 0);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_STATUS && str_is(rep, "OK"));
    corio_redis_reply_free(rep);
    const char *get[] = {"GET", bin};
    SOFT(corio_redis_command_argv(r, &rep, 2, get, NULL) == 0);
    size_t len = 0;
    const char *p = corio_redis_reply_str(rep, &len);
    SOFT(p && len == sizeof value && memcmp(p, value, len) == 0 && p[len] == '\0');
    corio_redis_reply_free(rep);
    /* %b of hiredis's format, the same bytes */
    SOFT(corio_redis_command(r, &rep, "STRLEN %b", bin, strlen(bin)) == 0);
    int64_t n = 0;
    SOFT(corio_redis_reply_integer(rep, &n) == 0 && n == (int64_t)sizeof value);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_INTEGER);
    corio_redis_reply_free(rep);
    /* nil: a generic GET of a missing key is a reply of type NIL */
    const char *nil[] = {"GET", missing};
    SOFT(corio_redis_command_argv(r, &rep, 2, nil, NULL) == 0);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_NIL);
    SOFT(corio_redis_reply_str(rep, &len) == NULL && len == 0);
    SOFT(corio_redis_reply_integer(rep, &n) == CORIO_ENOENT);
    corio_redis_reply_free(rep);
    /* arrays */
    corio_redis_del(r, list, NULL);
    SOFT(corio_redis_command(r, &rep, "RPUSH %s a bb ccc", list) == 0);
    SOFT(corio_redis_reply_integer(rep, &n) == 0 && n == 3);
    corio_redis_reply_free(rep);
    SOFT(corio_redis_command(r, &rep, "LRANGE %s 0 -1", list) == 0);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_ARRAY && corio_redis_reply_elements(rep) == 3);
    SOFT(str_is(corio_redis_reply_element(rep, 0), "a"));
    SOFT(str_is(corio_redis_reply_element(rep, 2), "ccc"));
    SOFT(corio_redis_reply_element(rep, 3) == NULL);
    corio_redis_reply_free(rep);
    /* nested arrays with every kind inside (a Lua table: integers, strings,
     * a status, a nested array; false is a nil) */
    SOFT(corio_redis_command(r, &rep, "EVAL %s 0",
                             "return {1, 'two', {3, {'four'}}, redis.status_reply('FINE'), "
                             "-1234567890123}") == 0);
    SOFT(corio_redis_reply_elements(rep) == 5);
    const corio_redis_reply *e = corio_redis_reply_element(rep, 0);
    SOFT(corio_redis_reply_integer(e, &n) == 0 && n == 1);
    SOFT(str_is(corio_redis_reply_element(rep, 1), "two"));
    e = corio_redis_reply_element(rep, 2);
    SOFT(corio_redis_reply_elements(e) == 2);
    SOFT(str_is(corio_redis_reply_element(corio_redis_reply_element(e, 1), 0), "four"));
    e = corio_redis_reply_element(rep, 3);
    SOFT(corio_redis_reply_type(e) == CORIO_REDIS_STATUS && str_is(e, "FINE"));
    SOFT(corio_redis_reply_integer(corio_redis_reply_element(rep, 4), &n) == 0 &&
         n == -1234567890123LL);
    corio_redis_reply_free(rep);
    /* an empty array, and a status */
    SOFT(corio_redis_command(r, &rep, "LRANGE %s 5 9", list) == 0);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_ARRAY && corio_redis_reply_elements(rep) == 0);
    corio_redis_reply_free(rep);
    SOFT(corio_redis_command(r, &rep, "PING") == 0);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_STATUS && str_is(rep, "PONG"));
    SOFT(corio_redis_reply_integer(rep, &n) == CORIO_EINVAL);
    corio_redis_reply_free(rep);
    corio_redis_del(r, bin, NULL);
    corio_redis_del(r, list, NULL);
    corio_redis_close(r);
    return 0;
}

static void test_redis_reply_kinds_binary_values_nil_arrays_integers(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(replies_main, NULL);
}

/* ---- server errors ------------------------------------------------------------------------------
 */

static int errors_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    if (!r)
        return 0;
    KEY(k, "string");
    SOFT(corio_redis_set(r, k, "text", 4, 0) == 0);
    corio_redis_reply *rep = NULL;
    SOFT(corio_redis_command(r, &rep, "LPUSH %s x", k) == CORIO_EFAILED);
    SOFT(corio_redis_reply_type(rep) == CORIO_REDIS_ERROR);
    const char *msg = corio_redis_reply_str(rep, NULL);
    SOFT(msg && strncmp(msg, "WRONGTYPE", 9) == 0);
    corio_redis_reply_free(rep);
    int64_t v = 7;
    SOFT(corio_redis_incr(r, k, &v) == CORIO_EFAILED); /* not an integer */
    SOFT(v == 7);
    SOFT(corio_redis_command(r, &rep, "NOSUCHCOMMAND") == CORIO_EFAILED);
    SOFT(strstr(corio_redis_reply_str(rep, NULL), "unknown command") != NULL);
    corio_redis_reply_free(rep);
    /* the connection goes on */
    SOFT(corio_redis_get(r, &rep, k) == 0 && str_is(rep, "text"));
    corio_redis_reply_free(rep);
    corio_redis_del(r, k, NULL);
    corio_redis_close(r);
    return 0;
}

static void test_redis_server_error_reaches_the_caller_wrongtype(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(errors_main, NULL);
}

/* ---- pipelining from 100 tasks
 * ------------------------------------------------------------------- */

enum { NTASKS = 100 };

typedef struct piper {
    corio_redis *r;
    int i;
    int64_t incr;   /* what INCR answered */
    int64_t client; /* CLIENT ID: the connection the commands went on */
    int rc;
} piper;

static int piper_task(void *arg) {
    piper *p = arg;
    char name[32], val[32];
    snprintf(name, sizeof name, "pipe:%d", p->i);
    snprintf(val, sizeof val, "value-%d", p->i);
    KEY(k, name);
    KEY(counter, "pipe-counter");
    corio_redis_reply *rep = NULL;
    int rc = corio_redis_set(p->r, k, val, strlen(val), 60000);
    if (rc == 0)
        rc = corio_redis_incr(p->r, counter, &p->incr);
    if (rc == 0 && (rc = corio_redis_get(p->r, &rep, k)) == 0 && !str_is(rep, val))
        rc = CORIO_EBADMSG; /* another task's reply */
    corio_redis_reply_free(rep);
    if (rc == 0 && (rc = corio_redis_command(p->r, &rep, "CLIENT ID")) == 0)
        corio_redis_reply_integer(rep, &p->client);
    corio_redis_reply_free(rep);
    corio_redis_del(p->r, k, NULL);
    p->rc = rc;
    return 0;
}

static int pipeline_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    if (!r)
        return 0;
    KEY(counter, "pipe-counter");
    corio_redis_del(r, counter, NULL);
    static piper ps[NTASKS];
    corio_task *ts[NTASKS];
    for (int i = 0; i < NTASKS; i++) {
        ps[i] = (piper){.r = r, .i = i, .rc = 1};
        ts[i] = corio_test_spawn("piper", piper_task, &ps[i]);
    }
    /* every task's SET is on the wire before any reply is read: one batch */
    SOFT(wait_pending(r, NTASKS) == 0);
    bool seen[NTASKS + 1] = {false};
    for (int i = 0; i < NTASKS; i++) {
        corio_test_join(ts[i]);
        SOFT(ps[i].rc == 0);
        SOFT(ps[i].incr >= 1 && ps[i].incr <= NTASKS && !seen[ps[i].incr]);
        if (ps[i].incr >= 1 && ps[i].incr <= NTASKS)
            seen[ps[i].incr] = true;
        SOFT(ps[i].client == ps[0].client); /* one connection */
    }
    int64_t total = 0;
    corio_redis_reply *rep = NULL;
    SOFT(corio_redis_get(r, &rep, counter) == 0 && corio_redis_reply_integer(rep, &total) == 0);
    SOFT(total == NTASKS);
    corio_redis_reply_free(rep);
    corio_redis_del(r, counter, NULL);
    corio_redis_close(r);
    return 0;
}

static void test_redis_pipelined_commands_from_100_tasks_on_one_connection(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(pipeline_main, NULL);
}

/* ---- deadlines and cancellation
 * ------------------------------------------------------------------- */

typedef struct waiter {
    corio_redis *r;
    const char *list;
    int rc;
    corio_redis_reply *rep;
} waiter;

/* BLPOP list 0: blocks the connection until something is pushed. */
static int blpop_task(void *arg) {
    waiter *w = arg;
    w->rc = corio_redis_command(w->r, &w->rep, "BLPOP %s 0", w->list);
    return 0;
}

/* GET of the key in w->list (queued behind a BLPOP). */
static int get_task(void *arg) {
    waiter *w = arg;
    w->rc = corio_redis_get(w->r, &w->rep, w->list);
    return 0;
}

static int deadline_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    corio_redis *other = connect_or_report(srv.addr, NULL);
    if (!r || !other) {
        corio_redis_close(r);
        corio_redis_close(other);
        return 0;
    }
    KEY(list, "deadline-list");
    KEY(k, "deadline-key");
    corio_redis_del(r, list, NULL);
    SOFT(corio_redis_set(r, k, "mine", 4, 60000) == 0);
    /* a BLPOP with no server timeout, cut by the caller's deadline */
    corio_redis_reply *rep = (corio_redis_reply *)&rep;
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(50)) {
        rc = corio_redis_command(r, &rep, "BLPOP %s 0", list);
    }
    SOFT(rc == CORIO_ETIMEDOUT);
    SOFT(rep == NULL);
    SOFT(corio_redis_pending(r) == 1); /* still on the server */
    /* the next caller queues behind it; the late BLPOP reply must not reach it */
    waiter g = {.r = r, .list = k};
    corio_task *t = corio_test_spawn("get", get_task, &g);
    SOFT(wait_pending(r, 2) == 0);
    /* another client pushes: the cut BLPOP pops it (its effect stands), its
     * reply is dropped, and the GET gets its own */
    int64_t len = -1;
    corio_redis_reply *pushed = NULL;
    SOFT(corio_redis_command(other, &pushed, "LPUSH %s late", list) == 0);
    corio_redis_reply_free(pushed);
    corio_test_join(t);
    SOFT(g.rc == 0);
    SOFT(corio_redis_reply_type(g.rep) == CORIO_REDIS_STRING && str_is(g.rep, "mine"));
    corio_redis_reply_free(g.rep);
    SOFT(corio_redis_pending(r) == 0);
    SOFT(corio_redis_command(other, &pushed, "LLEN %s", list) == 0);
    SOFT(corio_redis_reply_integer(pushed, &len) == 0 && len == 0);
    corio_redis_reply_free(pushed);
    /* and the connection serves the next command at once */
    SOFT(corio_redis_command(r, &rep, "ECHO %s", "after") == 0 && str_is(rep, "after"));
    corio_redis_reply_free(rep);
    corio_redis_del(r, k, NULL);
    corio_redis_close(r);
    corio_redis_close(other);
    return 0;
}

static void test_redis_deadline_cuts_a_command_and_its_late_reply_is_dropped(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(deadline_main, NULL);
}

static int cancel_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    corio_redis *other = connect_or_report(srv.addr, NULL);
    if (!r || !other) {
        corio_redis_close(r);
        corio_redis_close(other);
        return 0;
    }
    KEY(list, "cancel-list");
    corio_redis_del(r, list, NULL);
    waiter w = {.r = r, .list = list, .rc = 1};
    corio_task *t = corio_test_spawn("blpop", blpop_task, &w);
    SOFT(wait_pending(r, 1) == 0);
    SOFT(corio_cancel(t) == 0);
    corio_test_join(t);
    SOFT(w.rc == CORIO_ECANCELED);
    SOFT(w.rep == NULL);
    /* the task is gone; its reply comes later and is dropped */
    corio_redis_reply *rep = NULL;
    SOFT(corio_redis_command(other, &rep, "RPUSH %s gone", list) == 0);
    corio_redis_reply_free(rep);
    SOFT(corio_redis_command(r, &rep, "PING") == 0 && str_is(rep, "PONG"));
    corio_redis_reply_free(rep);
    SOFT(corio_redis_pending(r) == 0);
    /* max_pending: one more command than allowed fails at once */
    corio_redis *one = NULL;
    corio_redis_opts o = {.max_pending = 1};
    one = connect_or_report(srv.addr, &o);
    if (one) {
        waiter b = {.r = one, .list = list, .rc = 1};
        t = corio_test_spawn("blpop", blpop_task, &b);
        SOFT(wait_pending(one, 1) == 0);
        SOFT(corio_redis_command(one, &rep, "PING") == CORIO_EBUSY);
        SOFT(rep == NULL);
        SOFT(corio_redis_command(other, &rep, "RPUSH %s v", list) == 0);
        corio_redis_reply_free(rep);
        corio_test_join(t);
        SOFT(b.rc == 0 && corio_redis_reply_elements(b.rep) == 2);
        SOFT(str_is(corio_redis_reply_element(b.rep, 1), "v"));
        corio_redis_reply_free(b.rep);
        corio_redis_close(one);
    }
    corio_redis_close(r);
    corio_redis_close(other);
    return 0;
}

static void test_redis_cancelled_command_is_dropped_safely_and_max_pending_holds(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(cancel_main, NULL);
}

/* ---- closing with commands in flight
 * ---------------------------------------------------------------- */

static int close_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    if (!r)
        return 0;
    char names[5][16];
    char lists[5][96];
    waiter w[5];
    corio_task *t[5];
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "close-%d", i);
        key(lists[i], sizeof lists[i], names[i]);
        w[i] = (waiter){.r = r, .list = lists[i], .rc = 1};
        t[i] = corio_test_spawn("blpop", blpop_task, &w[i]);
    }
    SOFT(wait_pending(r, 5) == 0);
    corio_redis_close(r); /* not an await: every one fails, nothing leaks */
    for (int i = 0; i < 5; i++) {
        corio_test_join(t[i]);
        SOFT(w[i].rc == CORIO_ECLOSED);
        SOFT(w[i].rep == NULL);
    }
    return 0;
}

static void test_redis_close_fails_commands_in_flight_with_eclosed(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(close_main, NULL);
}

/* ---- a restart under a running client
 * ---------------------------------------------------------------- */

static redis_server restart_srv;

static int restart_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(restart_srv.addr, NULL);
    corio_redis_sub *sub = NULL;
    SOFT(corio_redis_sub_connect(&sub, restart_srv.addr, NULL) == 0);
    if (!r || !sub) {
        corio_redis_close(r);
        corio_redis_sub_close(sub);
        return 0;
    }
    const char *ch[] = {"restart"};
    SOFT(corio_redis_subscribe(sub, 1, ch) == 0);
    SOFT(corio_redis_set(r, "k", "before", 6, 0) == 0);
    waiter w = {.r = r, .list = "blocked", .rc = 1};
    corio_task *t = corio_test_spawn("blpop", blpop_task, &w);
    SOFT(wait_pending(r, 1) == 0);
    /* the server goes away (SIGTERM, as a restart does) */
    redis_server_stop(&restart_srv);
    corio_test_join(t);
    SOFT(w.rc == CORIO_ECONNRESET); /* in flight: lost, clearly */
    SOFT(!corio_redis_connected(r));
    fprintf(stderr, "test_redis: while down: %s\n", corio_redis_error(r));
    SOFT(strstr(corio_redis_error(r), "connection lost") != NULL ||
         strstr(corio_redis_error(r), "refused") != NULL);
    corio_redis_reply *rep = (corio_redis_reply *)&rep;
    SOFT(corio_redis_get(r, &rep, "k") == CORIO_ECONNRESET); /* fails fast while down */
    SOFT(rep == NULL);
    corio_redis_message *m = NULL;
    SOFT(corio_redis_next_message(sub, &m) == CORIO_ECONNRESET); /* a subscriber is over */
    SOFT(corio_redis_sub_status(sub) == CORIO_ECONNRESET);
    /* it comes back on the same port, empty: the client reconnects by itself */
    SOFT(redis_server_restart(&restart_srv) == 0);
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(30000)) {
        rc = corio_redis_wait_connected(r);
    }
    SOFT(rc == 0);
    SOFT(corio_redis_connected(r));
    SOFT(corio_redis_get(r, &rep, "k") == CORIO_ENOENT);
    SOFT(corio_redis_set(r, "k", "after", 5, 0) == 0);
    SOFT(corio_redis_get(r, &rep, "k") == 0 && str_is(rep, "after"));
    corio_redis_reply_free(rep);
    corio_redis_sub_close(sub);
    corio_redis_close(r);

    /* A client made while the server is away, connecting in the
     * background: at once, disconnected, failing fast; connected once the
     * server is there. */
    redis_server_stop(&restart_srv);
    const corio_redis_opts bg = {.connect_in_background = true};
    r = NULL;
    SOFT(corio_redis_connect(&r, restart_srv.addr, &bg) == 0);
    if (!r)
        return 0;
    rep = NULL;
    SOFT(corio_redis_get(r, &rep, "k") == CORIO_ECONNRESET);
    CORIO_WITH(corio_timeout_scope(20)) {
        rc = corio_redis_wait_connected(r);
    }
    SOFT(rc == CORIO_ETIMEDOUT && !corio_redis_connected(r));
    for (int i = 0; i < 2000 && !*corio_redis_error(r); i++) /* its first attempt's news */
        SOFT(corio_sleep(5) == 0);
    SOFT(strstr(corio_redis_error(r), "refused") != NULL);
    SOFT(redis_server_restart(&restart_srv) == 0);
    CORIO_WITH(corio_timeout_scope(30000)) {
        rc = corio_redis_wait_connected(r);
    }
    SOFT(rc == 0);
    SOFT(corio_redis_set(r, "k", "bg", 2, 0) == 0);
    SOFT(corio_redis_get(r, &rep, "k") == 0 && str_is(rep, "bg"));
    corio_redis_reply_free(rep);
    corio_redis_close(r);
    /* a malformed address is still refused at once */
    SOFT(corio_redis_connect(&r, "127.0.0.1:notaport", &bg) == CORIO_EINVAL && r == NULL);
    return 0;
}

static void test_redis_restart_under_a_running_client_fails_clearly_then_recovers(void **state) {
    (void)state;
    need_server();
    int rc = redis_server_start(&restart_srv, false);
    if (rc == 1) {
        fprintf(stderr, "test_redis: skipped: %s\n", restart_srv.skip_why);
        skip();
    }
    assert_int_equal(rc, 0);
    corio_test_run_checked(restart_main, NULL);
    redis_server_remove(&restart_srv);
}

/* ---- pub/sub
 * ---------------------------------------------------------------------------------------- */

static bool msg_is(const corio_redis_message *m, const char *channel, const char *pattern,
                   const void *data, size_t len) {
    return m && m->channel_len == strlen(channel) && strcmp(m->channel, channel) == 0 &&
           (pattern ? m->pattern && strcmp(m->pattern, pattern) == 0 : m->pattern == NULL) &&
           m->len == len && memcmp(m->data, data, len) == 0;
}

static int next_within(corio_redis_sub *sub, corio_redis_message **m, uint64_t ms) {
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(ms)) {
        rc = corio_redis_next_message(sub, m);
    }
    return rc;
}

static int redis_cli_publish(void *arg) {
    const char *command = arg;
    int st = system(command);
    return st == 0 ? 0 : CORIO_EFAILED;
}

static int pubsub_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    corio_redis_sub *sub = NULL;
    int rc = corio_redis_sub_connect(&sub, srv.addr, NULL);
    SOFT(rc == 0);
    if (!r || !sub) {
        corio_redis_close(r);
        corio_redis_sub_close(sub);
        return 0;
    }
    char news[64], bin[64], pat[64], ev[64];
    snprintf(news, sizeof news, "ct:%d:news", (int)getpid());
    snprintf(bin, sizeof bin, "ct:%d:bin", (int)getpid());
    snprintf(pat, sizeof pat, "ct:%d:ev.*", (int)getpid());
    snprintf(ev, sizeof ev, "ct:%d:ev.1", (int)getpid());
    const char *chans[] = {news, bin};
    const char *pats[] = {pat};
    SOFT(corio_redis_subscribe(sub, 2, chans) == 0);
    SOFT(corio_redis_psubscribe(sub, 1, pats) == 0);
    corio_redis_message *m = NULL;
    /* nothing yet: a deadline ends the wait, and nothing is lost by it */
    SOFT(next_within(sub, &m, 20) == CORIO_ETIMEDOUT);
    int64_t receivers = -1;
    SOFT(corio_redis_publish(r, news, "a", 1, &receivers) == 0 && receivers == 1);
    SOFT(corio_redis_publish(r, news, "b", 1, NULL) == 0);
    const char payload[] = {'x', '\0', 'y'};
    SOFT(corio_redis_publish(r, bin, payload, sizeof payload, NULL) == 0);
    SOFT(corio_redis_publish(r, ev, "p", 1, &receivers) == 0 && receivers == 1);
    SOFT(next_within(sub, &m, 10000) == 0 && msg_is(m, news, NULL, "a", 1));
    corio_redis_message_free(m);
    SOFT(next_within(sub, &m, 10000) == 0 && msg_is(m, news, NULL, "b", 1));
    corio_redis_message_free(m);
    SOFT(next_within(sub, &m, 10000) == 0 && msg_is(m, bin, NULL, payload, sizeof payload));
    corio_redis_message_free(m);
    SOFT(next_within(sub, &m, 10000) == 0 && msg_is(m, ev, pat, "p", 1));
    corio_redis_message_free(m);
    /* an external publisher: redis-cli, on the thread pool */
    if (!srv.external && system("command -v redis-cli >/dev/null 2>&1") == 0) {
        char command[256];
        snprintf(command, sizeof command, "redis-cli -p %d PUBLISH '%s' external >/dev/null",
                 srv.port, news);
        corio_future *f = NULL;
        SOFT(corio_run_blocking(&f, redis_cli_publish, command) == 0);
        SOFT(f && corio_await(f) == 0);
        corio_future_release(f);
        SOFT(next_within(sub, &m, 10000) == 0 && msg_is(m, news, NULL, "external", 8));
        corio_redis_message_free(m);
    }
    SOFT(corio_redis_sub_status(sub) == 0);
    corio_redis_sub_close(sub);
    corio_redis_close(r);
    return 0;
}

static void test_redis_pubsub_channels_patterns_binary_and_an_external_publisher(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(pubsub_main, NULL);
}

typedef struct reader {
    corio_redis_sub *sub;
    int rc;
} reader;

static int reader_task(void *arg) {
    reader *rd = arg;
    corio_redis_message *m = NULL;
    rd->rc = corio_redis_next_message(rd->sub, &m);
    corio_redis_message_free(m);
    return 0;
}

static int overflow_main(void *arg) {
    (void)arg;
    corio_redis *r = connect_or_report(srv.addr, NULL);
    corio_redis_sub *sub = NULL;
    corio_redis_opts o = {.max_messages = 4};
    SOFT(corio_redis_sub_connect(&sub, srv.addr, &o) == 0);
    if (!r || !sub) {
        corio_redis_close(r);
        corio_redis_sub_close(sub);
        return 0;
    }
    char ch[64];
    snprintf(ch, sizeof ch, "ct:%d:flood", (int)getpid());
    const char *chans[] = {ch};
    SOFT(corio_redis_subscribe(sub, 1, chans) == 0);
    for (int i = 0; i < 10; i++) {
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        SOFT(corio_redis_publish(r, ch, v, strlen(v), NULL) == 0);
    }
    /* nobody reads: the fifth message overflows the queue */
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(10000)) {
        while (rc == 0 && corio_redis_sub_status(sub) == 0)
            rc = corio_yield();
    }
    SOFT(corio_redis_sub_status(sub) == CORIO_ERANGE);
    corio_redis_message *m = NULL;
    for (int i = 0; i < 4; i++) { /* what was queued before is still delivered */
        char v[8];
        snprintf(v, sizeof v, "%d", i);
        SOFT(corio_redis_next_message(sub, &m) == 0 && msg_is(m, ch, NULL, v, 1));
        corio_redis_message_free(m);
    }
    SOFT(corio_redis_next_message(sub, &m) == CORIO_ERANGE);
    SOFT(corio_redis_subscribe(sub, 1, chans) == CORIO_ERANGE);
    corio_redis_sub_close(sub);
    /* closing a subscriber a task waits on wakes it with CORIO_ECLOSED */
    SOFT(corio_redis_sub_connect(&sub, srv.addr, NULL) == 0);
    if (sub) {
        reader rd = {.sub = sub, .rc = 1};
        corio_task *t = corio_test_spawn("reader", reader_task, &rd);
        SOFT(corio_yield() == 0); /* the reader waits in the queue now */
        corio_redis_sub_close(sub);
        corio_test_join(t);
        SOFT(rd.rc == CORIO_ECLOSED);
    }
    corio_redis_close(r);
    return 0;
}

static void test_redis_pubsub_overflow_ends_the_subscriber_and_close_wakes_a_reader(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(overflow_main, NULL);
}

/* ---- connecting: addresses, AUTH, SELECT, failures
 * ----------------------------------------------- */

static int connect_main(void *arg) {
    (void)arg;
    corio_redis *r = NULL;
    corio_redis_reply *rep = NULL;
    /* nothing listens there */
    char addr[160];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", test_free_port());
    r = (corio_redis *)&r;
    SOFT(corio_redis_connect(&r, addr, NULL) == CORIO_ECONNREFUSED);
    SOFT(r == NULL);
    SOFT(strstr(corio_redis_error(NULL), "refused") != NULL);
    fprintf(stderr, "test_redis: closed port: %s\n", corio_redis_error(NULL));
    /* a name that does not resolve */
    SOFT(corio_redis_connect(&r, "no-such-host.invalid:6379", NULL) < 0);
    SOFT(strstr(corio_redis_error(NULL), "no-such-host.invalid") != NULL);
    if (srv.external)
        return 0;
    /* a URL with a database: SELECT 3 on connect (and again on reconnect) */
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", srv.port);
    r = connect_or_report(url, NULL);
    if (r) {
        KEY(k, "in-db-3");
        SOFT(corio_redis_set(r, k, "3", 1, 60000) == 0);
        SOFT(corio_redis_command(r, &rep, "CLIENT INFO") == 0);
        SOFT(strstr(corio_redis_reply_str(rep, NULL), " db=3 ") != NULL);
        corio_redis_reply_free(rep);
        corio_redis_del(r, k, NULL);
        corio_redis_close(r);
    }
    /* a host name (resolved off the loop) and the Unix socket */
    snprintf(addr, sizeof addr, "localhost:%d", srv.port);
    r = connect_or_report(addr, NULL);
    SOFT(r && corio_redis_command(r, &rep, "PING") == 0);
    corio_redis_reply_free(rep);
    corio_redis_close(r);
    snprintf(addr, sizeof addr, "unix:%s", srv.sock);
    r = connect_or_report(addr, NULL);
    SOFT(r && corio_redis_command(r, &rep, "PING") == 0);
    corio_redis_reply_free(rep);
    corio_redis_close(r);
    /* a Unix socket that is not there */
    SOFT(corio_redis_connect(&r, "/nonexistent/redis.sock", NULL) == CORIO_ENOENT);
    SOFT(strstr(corio_redis_error(NULL), "No such file") != NULL);
    /* AUTH refused (the server has no password), SELECT refused */
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", srv.port);
    SOFT(corio_redis_connect(&r, url, NULL) == CORIO_EACCES);
    SOFT(strstr(corio_redis_error(NULL), "AUTH") != NULL);
    fprintf(stderr, "test_redis: auth: %s\n", corio_redis_error(NULL));
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/100000", srv.port);
    SOFT(corio_redis_connect(&r, url, NULL) == CORIO_EFAILED);
    SOFT(strstr(corio_redis_error(NULL), "SELECT") != NULL);
    SOFT(corio_redis_sub_connect(&(corio_redis_sub *){NULL}, url, NULL) == CORIO_EFAILED);
    return 0;
}

static void test_redis_connect_addresses_auth_select_and_failures(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(connect_main, NULL);
}

/* ---- a server that never answers
 * ------------------------------------------------------------------ */

/* A listening socket nobody accepts on: the kernel completes connects
 * (the backlog), and whatever is sent is never answered. */
static int silent_listener(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int silent_main(void *arg) {
    (void)arg;
    int port = 0;
    int fd = silent_listener(&port);
    SOFT(fd >= 0);
    if (fd < 0)
        return 0;
    char addr[64];
    /* AUTH is never answered: connect_timeout_ms ends the connect */
    snprintf(addr, sizeof addr, "redis://:pw@127.0.0.1:%d", port);
    corio_redis *r = (corio_redis *)&r;
    corio_redis_opts o = {.connect_timeout_ms = 50};
    SOFT(corio_redis_connect(&r, addr, &o) == CORIO_ETIMEDOUT);
    SOFT(r == NULL);
    fprintf(stderr, "test_redis: silent server: %s\n", corio_redis_error(NULL));
    /* without a password nothing is asked on connect; a command then waits
     * for a reply that never comes, until the caller's deadline */
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    r = connect_or_report(addr, NULL);
    if (r) {
        corio_redis_reply *rep = (corio_redis_reply *)&rep;
        int rc = 0;
        CORIO_WITH(corio_timeout_scope(50)) {
            rc = corio_redis_get(r, &rep, "k");
        }
        SOFT(rc == CORIO_ETIMEDOUT && rep == NULL);
        SOFT(corio_redis_pending(r) == 1);
        SOFT(corio_redis_connected(r));
        corio_redis_close(r); /* the abandoned command's record is freed with the connection */
    }
    close(fd);
    return 0;
}

static void
test_redis_server_that_never_answers_connect_timeout_and_command_deadline(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(silent_main, NULL);
}

/* ---- bad arguments, calls outside a task
 * -------------------------------------------------------------- */

static int bad_args_main(void *arg) {
    (void)arg;
    corio_redis *r = NULL;
    SOFT(corio_redis_connect(NULL, srv.addr, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, NULL, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "127.0.0.1:99999", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "127.0.0.1:", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "rediss://127.0.0.1:6379", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "redis://127.0.0.1:6379/x", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "redis://:%zz@127.0.0.1", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_connect(&r, "[::1", NULL) == CORIO_EINVAL);
    corio_redis_opts neg = {.db = -1};
    SOFT(corio_redis_connect(&r, srv.addr, &neg) == CORIO_EINVAL);
    SOFT(r == NULL);
    r = connect_or_report(srv.addr, NULL);
    if (!r)
        return 0;
    corio_redis_reply *rep = NULL;
    const char *argv[] = {"PING", NULL};
    SOFT(corio_redis_command_argv(r, &rep, 0, argv, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_command_argv(r, &rep, 1, NULL, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_command_argv(r, &rep, 2, argv, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_command_argv(r, NULL, 1, argv, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_command_argv(NULL, &rep, 1, argv, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_command(r, &rep, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_command(r, &rep, "   ") == CORIO_EINVAL);
    SOFT(corio_redis_command(r, &rep, "GET %y") == CORIO_EINVAL); /* not a format hiredis knows */
    SOFT(corio_redis_get(r, &rep, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_set(r, NULL, "v", 1, 0) == CORIO_EINVAL);
    SOFT(corio_redis_set(r, "k", NULL, 1, 0) == CORIO_EINVAL);
    SOFT(corio_redis_incr(r, NULL, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_publish(NULL, "c", "m", 1, NULL) == CORIO_EINVAL);
    /* commands that would break multiplexing */
    SOFT(corio_redis_command(r, &rep, "SUBSCRIBE %s", "c") == CORIO_ENOTSUP);
    SOFT(corio_redis_command(r, &rep, "psubscribe %s", "c*") == CORIO_ENOTSUP);
    SOFT(corio_redis_command(r, &rep, "MONITOR") == CORIO_ENOTSUP);
    SOFT(corio_redis_command(r, &rep, "CLIENT REPLY OFF") == CORIO_ENOTSUP);
    SOFT(corio_redis_command(r, &rep, "HELLO 3") == CORIO_ENOTSUP);
    /* hiredis takes a leading 'p' off: PMONITOR would be a monitor to it */
    SOFT(corio_redis_command(r, &rep, "PMONITOR") == CORIO_ENOTSUP);
    /* a transaction would take in other tasks' commands */
    SOFT(corio_redis_command(r, &rep, "MULTI") == CORIO_ENOTSUP);
    SOFT(corio_redis_command(r, &rep, "exec") == CORIO_ENOTSUP);
    SOFT(corio_redis_command(r, &rep, "WATCH %s", "k") == CORIO_ENOTSUP);
    SOFT(rep == NULL);
    /* the connection still answers */
    SOFT(corio_redis_command(r, &rep, "PING") == 0);
    corio_redis_reply_free(rep);
    rep = NULL;
    SOFT(rep == NULL);
    SOFT(corio_redis_command(r, &rep, "PING") == 0 && str_is(rep, "PONG"));
    corio_redis_reply_free(rep);
    SOFT(corio_redis_wait_connected(NULL) == CORIO_EINVAL);
    SOFT(corio_redis_wait_connected(r) == 0);
    /* subscriber arguments */
    corio_redis_sub *sub = NULL;
    SOFT(corio_redis_sub_connect(NULL, srv.addr, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_sub_connect(&sub, "nonsense:port", NULL) == CORIO_EINVAL);
    SOFT(corio_redis_sub_connect(&sub, srv.addr, NULL) == 0);
    const char *none[] = {NULL};
    SOFT(corio_redis_subscribe(sub, 0, none) == CORIO_EINVAL);
    SOFT(corio_redis_subscribe(sub, 1, none) == CORIO_EINVAL);
    SOFT(corio_redis_subscribe(NULL, 1, none) == CORIO_EINVAL);
    SOFT(corio_redis_next_message(sub, NULL) == CORIO_EINVAL);
    SOFT(corio_redis_next_message(NULL, &(corio_redis_message *){NULL}) == CORIO_EINVAL);
    corio_redis_sub_close(sub);
    corio_redis_close(r);
    corio_redis_close(NULL);
    corio_redis_sub_close(NULL);
    corio_redis_reply_free(NULL);
    corio_redis_message_free(NULL);
    SOFT(corio_redis_reply_type(NULL) == 0 && corio_redis_reply_elements(NULL) == 0);
    return 0;
}

static void test_redis_bad_arguments_are_einval_and_refused_commands_enotsup(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(bad_args_main, NULL);
}

/* A client and a subscriber never closed: the loop's shutdown disconnects
 * them (corio_run returns 0: no handle left); afterwards, outside any
 * task, calls say CORIO_ENOTASK and the close frees them. */
static corio_redis *unclosed;
static corio_redis_sub *unclosed_sub;

static int unclosed_main(void *arg) {
    (void)arg;
    unclosed = connect_or_report(srv.addr, NULL);
    SOFT(corio_redis_sub_connect(&unclosed_sub, srv.addr, NULL) == 0);
    static waiter w; /* outlives main: the task ends at the shutdown */
    w = (waiter){.r = unclosed, .list = "never", .rc = 1};
    if (unclosed) /* a command in flight at the shutdown, its task cancelled by it */
        SOFT(corio_spawn(NULL, "blpop", blpop_task, &w) == 0);
    return 0;
}

static void test_redis_never_closed_client_ends_the_loop_cleanly_and_outside_a_task(void **state) {
    (void)state;
    need_server();
    corio_test_run_checked(unclosed_main, NULL);
    corio_redis *r = NULL;
    corio_redis_reply *rep = NULL;
    assert_int_equal(corio_redis_connect(&r, srv.addr, NULL), CORIO_ENOTASK);
    corio_redis_sub *sub = NULL;
    assert_int_equal(corio_redis_sub_connect(&sub, srv.addr, NULL), CORIO_ENOTASK);
    assert_int_equal(corio_redis_get(unclosed, &rep, "k"), CORIO_ENOTASK);
    assert_int_equal(corio_redis_wait_connected(unclosed), CORIO_ENOTASK);
    assert_false(corio_redis_connected(unclosed));
    assert_int_equal(corio_redis_next_message(unclosed_sub, &(corio_redis_message *){NULL}),
                     CORIO_ENOTASK);
    assert_int_equal(corio_redis_sub_status(unclosed_sub), CORIO_ECLOSED);
    corio_redis_close(unclosed);
    corio_redis_sub_close(unclosed_sub);
    unclosed = NULL;
    unclosed_sub = NULL;
}

/* ---- main
 * -----------------------------------------------------------------------------------------------
 */

static int group_setup(void **state) {
    (void)state;
    int rc = redis_server_start(&srv, true);
    server_up = rc == 0;
    return rc < 0 ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    redis_server_remove(&srv);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_get_set_with_ttl_incr_del),
        cmocka_unit_test(test_redis_reply_kinds_binary_values_nil_arrays_integers),
        cmocka_unit_test(test_redis_server_error_reaches_the_caller_wrongtype),
        cmocka_unit_test(test_redis_pipelined_commands_from_100_tasks_on_one_connection),
        cmocka_unit_test(test_redis_deadline_cuts_a_command_and_its_late_reply_is_dropped),
        cmocka_unit_test(test_redis_cancelled_command_is_dropped_safely_and_max_pending_holds),
        cmocka_unit_test(test_redis_close_fails_commands_in_flight_with_eclosed),
        cmocka_unit_test(test_redis_restart_under_a_running_client_fails_clearly_then_recovers),
        cmocka_unit_test(test_redis_pubsub_channels_patterns_binary_and_an_external_publisher),
        cmocka_unit_test(test_redis_pubsub_overflow_ends_the_subscriber_and_close_wakes_a_reader),
        cmocka_unit_test(test_redis_connect_addresses_auth_select_and_failures),
        cmocka_unit_test(test_redis_server_that_never_answers_connect_timeout_and_command_deadline),
        cmocka_unit_test(test_redis_bad_arguments_are_einval_and_refused_commands_enotsup),
        cmocka_unit_test(test_redis_never_closed_client_ends_the_loop_cleanly_and_outside_a_task),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

#else /* built without hiredis */

int main(void) {
    fprintf(stderr, "test_redis: skipped: corio was built without hiredis (Debian "
                    "libhiredis-dev)\n");
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    return code && *code ? atoi(code) : 0;
}

#endif
