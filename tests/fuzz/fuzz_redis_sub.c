/* SPDX-License-Identifier: MIT */
/* Fuzzes a Redis subscriber end to end (framework/client/redis_sub.c): what
 * corio makes of the messages a server pushes, through hiredis's
 * asynchronous context and corio's socket glue, its message callback
 * (on_message: which pushed arrays are messages), the copy of each into one
 * block (message_new), the bounded queue and how the subscriber ends.
 *
 * Feeds: byte 0 as flags (bit 0: max_messages 2 instead of the default), the
 * rest as the bytes a server sends after confirming the subscription.  A
 * fake server on a Unix socket (a thread of this program, blocking I/O)
 * accepts the subscriber, reads its SUBSCRIBE of channel "ch", answers the
 * confirmation, then writes the input and closes.  The subscriber
 * (corio_redis_sub_connect, corio_redis_subscribe, corio_redis_next_message
 * until it fails) runs in a task of a corio loop, under a 10 s deadline.
 *
 * Asserts, against a reference that reads the same bytes with hiredis's
 * reader and applies redis.h's rules (a message is an array "message",
 * channel, payload of a subscribed channel, bulk strings; anything else a
 * server pushes is ignored):
 *  - connect and subscribe succeed; the subscriber ends with
 *    CORIO_ECONNRESET (the server closed, or sent bytes that are not RESP),
 *    or CORIO_ERANGE (the queue overflowed), never a deadline (a hang);
 *    corio_redis_sub_status says the same;
 *  - the messages received are the reference's, in order, with channel,
 *    pattern and payload bytes NUL-terminated: all of them after
 *    CORIO_ECONNRESET, a prefix of at least max_messages and not all of
 *    them after CORIO_ERANGE (an error reply, which answers no command,
 *    ends the connection: hiredis's rule); pushed arrays for a channel or
 *    pattern not subscribed may or may not arrive (reference() says why);
 *  - everything is freed (ASan's leak check, valgrind).
 * hiredis 0.14 asserts (aborts the process) on some pushed arrays in
 * subscribe mode: fewer than 2 elements, a first or second element that is
 * not a string, an "unsubscribe" of a subscribed channel without an integer
 * third element (and leaving subscribe mode, after which any reply without
 * a command asserts too).  Inputs holding such an array are skipped (the
 * reference finds them first), unless FUZZ_REDIS_HIREDIS_ASSERTS=1, which
 * replays them: corio now catches those replies as they are read and drops
 * the connection instead (redis_conn.c; test_fuzz_redis_sub_no_abort runs
 * the regression inputs so).  An input
 * announcing an array of more than 65536 elements is skipped too
 * (huge_array). */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/redis_internal.h"
#include "corio/corio.h"
#include "fuzz.h"

static char dir[64], sock_path[80], where[96];
static int listener = -1;
static bool hiredis_asserts;

static void cleanup(void) {
    if (listener >= 0)
        close(listener);
    unlink(sock_path);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *s = getenv("FUZZ_REDIS_HIREDIS_ASSERTS");
    hiredis_asserts = s && *s == '1';
    snprintf(dir, sizeof dir, "/tmp/fuzz_redis_sub.XXXXXX");
    if (!mkdtemp(dir))
        abort();
    snprintf(sock_path, sizeof sock_path, "%s/s", dir);
    snprintf(where, sizeof where, "unix:%s", sock_path);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    listener = socket(AF_UNIX, SOCK_STREAM, 0);
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(listener, 4) != 0)
        abort();
    atexit(cleanup);
    return 0;
}

/* ---- the fake server ----------------------------------------------------------------------- */

static const char subscribe_cmd[] = "*2\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n";
static const char confirmation[] = "*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";

typedef struct server {
    const uint8_t *p;
    size_t n;
} server;

static bool wait_fd(int fd, short events) {
    struct pollfd p = {.fd = fd, .events = events};
    int rc;
    while ((rc = poll(&p, 1, 10000)) < 0 && errno == EINTR) {
    }
    return rc == 1;
}

static void send_all(int fd, const void *p, size_t n) {
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* the subscriber went away (an overflow drops it) */
        p = (const char *)p + k;
        n -= (size_t)k;
    }
}

static void *server_main(void *arg) {
    const server *s = arg;
    FUZZ_CHECK(wait_fd(listener, POLLIN), "the subscriber did not connect in 10 s");
    int fd = accept(listener, NULL, NULL);
    FUZZ_CHECK(fd >= 0, "accept: %s", strerror(errno));
    char cmd[sizeof subscribe_cmd - 1];
    size_t got = 0;
    while (got < sizeof cmd) {
        FUZZ_CHECK(wait_fd(fd, POLLIN), "no SUBSCRIBE in 10 s");
        ssize_t k = read(fd, cmd + got, sizeof cmd - got);
        FUZZ_CHECK(k > 0, "the subscriber closed before its SUBSCRIBE");
        got += (size_t)k;
    }
    FUZZ_CHECK(memcmp(cmd, subscribe_cmd, sizeof cmd) == 0, "not the SUBSCRIBE expected");
    send_all(fd, confirmation, sizeof confirmation - 1);
    send_all(fd, s->p, s->n);
    shutdown(fd, SHUT_WR);
    char buf[256];
    while (wait_fd(fd, POLLIN) && read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    return NULL;
}

/* ---- the reference ------------------------------------------------------------------------- */

/* A message the subscriber may receive. */
typedef struct want {
    const redisReply *channel, *pattern, *payload; /* borrowed from kept replies */
    bool optional;
} want;

typedef struct expected {
    redisReader *rd;
    want *w;
    redisReply **kept;
    size_t n, nkept;
} expected;

static bool is_str(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING;
}

static void add_want(expected *e, const redisReply *ch, const redisReply *pat,
                     const redisReply *payload, bool optional) {
    e->w = realloc(e->w, (e->n + 1) * sizeof *e->w);
    if (!e->w)
        abort();
    e->w[e->n++] = (want){ch, pat, payload, optional};
}

/* Reads the input as hiredis does; false if it holds an array hiredis
 * asserts on.  A pushed array for "ch" goes to corio's callback; one for
 * another channel or a pattern (none subscribed) finds no callback, but
 * hiredis 0.14 then reuses the callback of the reply before it in the same
 * read (redisProcessCallbacks does not reset it), so it may reach corio's
 * callback too, which takes it as a message for that channel or pattern:
 * optional, depending on how the bytes arrive. */
static bool reference(const uint8_t *p, size_t n, expected *e) {
    memset(e, 0, sizeof *e);
    e->rd = redisReaderCreate();
    if (!e->rd || redisReaderFeed(e->rd, (const char *)p, n) != REDIS_OK)
        abort();
    for (;;) {
        void *v = NULL;
        if (redisReaderGetReply(e->rd, &v) != REDIS_OK || !v)
            break;
        redisReply *r = v;
        e->kept = realloc(e->kept, (e->nkept + 1) * sizeof *e->kept);
        if (!e->kept)
            abort();
        e->kept[e->nkept++] = r;
        if (r->type == REDIS_REPLY_ERROR)
            break; /* no command waits for it: hiredis ends the connection */
        if (r->type != REDIS_REPLY_ARRAY)
            continue; /* corio's callback ignores it, if it gets it */
        if (r->elements < 2 || !is_str(r->element[0]) || !is_str(r->element[1]))
            return false; /* hiredis asserts */
        const char *kind = r->element[0]->str;
        bool pattern = kind[0] == 'p' || kind[0] == 'P';
        bool ours = !pattern && r->element[1]->len == 2 && !memcmp(r->element[1]->str, "ch", 2);
        if (ours && !strcasecmp(kind, "unsubscribe"))
            return false; /* hiredis's unsubscribe path (see the top) */
        if (!strcasecmp(kind, "message") && r->elements >= 3 && is_str(r->element[2]))
            add_want(e, r->element[1], NULL, r->element[2], !ours);
        else if (!strcasecmp(kind, "pmessage") && r->elements >= 4 && is_str(r->element[2]) &&
                 is_str(r->element[3]))
            add_want(e, r->element[2], r->element[1], r->element[3], true);
    }
    return true;
}

static void expected_free(expected *e) {
    for (size_t i = 0; i < e->nkept; i++)
        freeReplyObject(e->kept[i]);
    free(e->kept);
    free(e->w);
    redisReaderFree(e->rd);
}

static bool same_bytes(const char *a, size_t an, const redisReply *b) {
    return an == b->len && (an == 0 || memcmp(a, b->str, an) == 0) && a[an] == '\0';
}

static bool matches(const corio_redis_message *m, const want *w) {
    return same_bytes(m->channel, m->channel_len, w->channel) &&
           (w->pattern ? m->pattern && same_bytes(m->pattern, m->pattern_len, w->pattern)
                       : !m->pattern && m->pattern_len == 0) &&
           same_bytes(m->data, m->len, w->payload);
}

/* Whether the received messages m[0..nm) are the wanted ones with some
 * optional ones left out (all the others when `all`, else a prefix of
 * them).  ok[i][j]: w[i..] can give m[j..]. */
static bool received_as_wanted(const expected *e, corio_redis_message **m, size_t nm, bool all) {
    size_t nw = e->n, cols = nm + 1;
    bool *ok = calloc((nw + 1) * cols, sizeof *ok);
    if (!ok)
        abort();
    for (size_t i = nw + 1; i-- > 0;) {
        for (size_t j = nm + 1; j-- > 0;) {
            bool v;
            if (j == nm)
                v = !all || i == nw || (e->w[i].optional && ok[(i + 1) * cols + j]);
            else if (i == nw)
                v = false;
            else
                v = (matches(m[j], &e->w[i]) && ok[(i + 1) * cols + j + 1]) ||
                    (e->w[i].optional && ok[(i + 1) * cols + j]);
            ok[i * cols + j] = v;
        }
    }
    bool r = ok[0];
    free(ok);
    return r;
}

static size_t mandatory(const expected *e) {
    size_t n = 0;
    for (size_t i = 0; i < e->n; i++)
        n += !e->w[i].optional;
    return n;
}

/* Whether the input announces an array ('*' then digits) above 65536:
 * hiredis 0.14 allocates the element vector before the elements arrive (8
 * bytes each; redis.h: no bound on a reply's size yet), in corio's
 * connection and in the reference alike. */
static bool huge_array(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '*')
            continue;
        uint64_t v = 0;
        for (size_t k = i + 1; k < n && p[k] >= '0' && p[k] <= '9'; k++)
            if ((v = v * 10 + (uint64_t)(p[k] - '0')) > 65536)
                return true;
    }
    return false;
}

/* ---- the subscriber ------------------------------------------------------------------------ */

typedef struct job {
    size_t max_messages;
    const expected *e;
} job;

static int subscriber(void *arg) {
    const job *j = arg;
    corio_redis_opts o = {.max_messages = j->max_messages, .connect_timeout_ms = 10000};
    corio_redis_sub *sub = NULL;
    int rc, end = 0;
    size_t got = 0;
    corio_redis_message **msgs = calloc(j->e->n + 1, sizeof *msgs);
    if (!msgs)
        abort();
    CORIO_WITH(corio_timeout_scope(10000)) {
        rc = corio_redis_sub_connect(&sub, where, &o);
        FUZZ_CHECK(rc == 0, "connect: %s (%s)", corio_err_name(rc), corio_redis_error(NULL));
        const char *ch[] = {"ch"};
        rc = corio_redis_subscribe(sub, 1, ch);
        FUZZ_CHECK(rc == 0, "subscribe: %s", corio_err_name(rc));
        for (;;) {
            corio_redis_message *m;
            end = corio_redis_next_message(sub, &m);
            if (end != 0)
                break;
            FUZZ_CHECK(got < j->e->n, "message %zu of at most %zu: '%.*s'", got + 1, j->e->n,
                       (int)(m->len > 64 ? 64 : m->len), m->data);
            msgs[got++] = m;
        }
    }
    FUZZ_CHECK(end == CORIO_ECONNRESET || end == CORIO_ERANGE, "the subscriber ended with %s",
               corio_err_name(end));
    FUZZ_CHECK(corio_redis_sub_status(sub) == end, "status %d, ended with %d",
               corio_redis_sub_status(sub), end);
    FUZZ_CHECK(received_as_wanted(j->e, msgs, got, end == CORIO_ECONNRESET),
               "%zu messages received (ended with %s) are not the %zu expected (%zu certain)", got,
               corio_err_name(end), j->e->n, mandatory(j->e));
    if (end == CORIO_ERANGE)
        FUZZ_CHECK(got >= j->max_messages && got < j->e->n,
                   "an overflow after %zu of %zu messages (queue of %zu)", got, j->e->n,
                   j->max_messages);
    for (size_t i = 0; i < got; i++)
        corio_redis_message_free(msgs[i]);
    free(msgs);
    corio_redis_sub_close(sub);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    if (huge_array(in.p, in.n))
        return 0;
    expected e;
    if (!reference(in.p, in.n, &e) && !hiredis_asserts) {
        expected_free(&e);
        return 0;
    }
    server s = {in.p, in.n};
    pthread_t t;
    if (pthread_create(&t, NULL, server_main, &s) != 0)
        abort();
    job j = {flags & 1 ? 2 : 1024, &e};
    int rc = corio_run(subscriber, &j);
    FUZZ_CHECK(rc == 0, "corio_run: %d", rc);
    pthread_join(t, NULL);
    expected_free(&e);
    return 0;
}
