/* SPDX-License-Identifier: MIT */
/* Streams, server and client on loopback: corio server, corio client. */
#define _GNU_SOURCE /* memfd_create */
#include "corio_test.h"
#include "net/proto.h"
#include "runtime/internal.h"
#include "stream_helpers.h"

#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- an echo server shared by the tests ----------------------------------------------- */

static int echo_handler(corio_stream *s, void *arg) {
    (void)arg;
    return echo_until_eof(s);
}

static int start_echo(corio_server **srv, size_t max_conns) {
    corio_server_opts o = {.host = "127.0.0.1", .port = 0, .max_conns = max_conns};
    return corio_server_start(srv, &o, echo_handler, NULL);
}

/* A client connection to srv. */
static int connect_to(corio_server *srv, corio_stream **c) {
    return corio_connect(c, "127.0.0.1", (uint16_t)corio_server_port(srv), 2000);
}

/* A server on 127.0.0.1 running fn(arg) per connection, and one client
 * connected to it; on failure nothing is left running. */
static int serve_and_connect(corio_conn_fn fn, void *arg, corio_server **srv, corio_stream **c) {
    corio_server_opts o = {.host = "127.0.0.1"};
    int rc = corio_server_start(srv, &o, fn, arg);
    if (rc == 0 && (rc = connect_to(*srv, c)) != 0)
        corio_server_shutdown(*srv, 0);
    return rc;
}

/* ---- 8 MiB echo with random write sizes -------------------------------------------------- */

static int echo_8mib_main(void *arg) {
    (void)arg;
    corio_server *srv;
    int rc = start_echo(&srv, 0);
    if (rc)
        return rc;
    corio_stream *c;
    rc = connect_to(srv, &c);
    if (rc == 0) {
        bulk_echo_opts o = {.len = 8 << 20,
                            .seed = 12345,
                            .max_read = 70000,
                            .writer_seed = 99,
                            .max_piece = 100000};
        rc = bulk_echo(c, &o);
        corio_stream_close(c);
    }
    int rc2 = corio_server_shutdown(srv, 1000);
    return rc ? rc : rc2;
}

static void test_echo_8mib_random_write_sizes(void **state) {
    (void)state;
    corio_test_run(echo_8mib_main, NULL);
}

/* ---- read_until, read_exactly, addresses ----------------------------------------------------- */

static int lines_main(void *arg) {
    (void)arg;
    corio_server *srv;
    int rc = start_echo(&srv, 0);
    if (rc)
        return rc;
    corio_stream *c;
    rc = corio_connect(&c, "localhost", (uint16_t)corio_server_port(srv), 2000);
    if (rc)
        goto out;
    const char msg[] = "hello\r\nworld\r\nrest";
    rc = corio_stream_write(c, msg, sizeof msg - 1);
    char line[64];
    size_t n = 0;
    if (rc == 0)
        rc = corio_stream_read_until(c, "\r\n", 2, line, sizeof line, &n);
    if (rc == 0 && (n != 7 || memcmp(line, "hello\r\n", 7) != 0))
        rc = CORIO_EFAILED;
    if (rc == 0)
        rc = corio_stream_read_until(c, "\r\n", 2, line, sizeof line, &n);
    if (rc == 0 && (n != 7 || memcmp(line, "world\r\n", 7) != 0))
        rc = CORIO_EFAILED;
    if (rc == 0)
        rc = corio_stream_read_exactly(c, line, 4);
    if (rc == 0 && memcmp(line, "rest", 4) != 0)
        rc = CORIO_EFAILED;
    /* A line longer than the caller's limit: ERANGE, nothing consumed. */
    if (rc == 0)
        rc = corio_stream_write(c, "0123456789\n", 11);
    if (rc == 0)
        rc = corio_stream_read_until(c, "\n", 1, line, 5, &n) == CORIO_ERANGE ? 0 : CORIO_EFAILED;
    if (rc == 0)
        rc = corio_stream_read_until(c, "\n", 1, line, sizeof line, &n);
    if (rc == 0 && n != 11)
        rc = CORIO_EFAILED;
    char name[64];
    if (rc == 0)
        rc = corio_stream_peer_name(c, name, sizeof name);
    if (rc == 0 && strncmp(name, "127.0.0.1:", 10) != 0 && strncmp(name, "[::1]:", 6) != 0)
        rc = CORIO_EFAILED;
    corio_stream_close(c);
out:;
    int rc2 = corio_server_shutdown(srv, 1000);
    return rc ? rc : rc2;
}

static void test_read_until_and_read_exactly(void **state) {
    (void)state;
    corio_test_run(lines_main, NULL);
}

/* ---- many concurrent clients ------------------------------------------------------------------
 */

typedef struct client_arg {
    int port;
    int id;
} client_arg;

static int one_client(void *arg) {
    client_arg *a = arg;
    corio_stream *c;
    int rc = corio_connect(&c, "127.0.0.1", (uint16_t)a->port, 5000);
    if (rc)
        return rc;
    char out[32], in[32];
    int len = snprintf(out, sizeof out, "client %d\n", a->id);
    rc = corio_stream_write(c, out, (size_t)len);
    if (rc == 0)
        rc = corio_stream_read_exactly(c, in, (size_t)len);
    if (rc == 0 && memcmp(in, out, (size_t)len) != 0)
        rc = CORIO_EFAILED;
    corio_stream_close(c);
    return rc;
}

static int many_clients_main(void *arg) {
    size_t n = (size_t)(uintptr_t)arg;
    corio_server *srv;
    int rc = start_echo(&srv, 0);
    if (rc)
        return rc;
    client_arg *args = calloc(n, sizeof *args);
    int failures = 0;
    corio_task_group g;
    CORIO_WITH(corio_task_group_scope(&g)) {
        for (size_t i = 0; i < n; i++) {
            args[i] = (client_arg){.port = corio_server_port(srv), .id = (int)i};
            if (corio_task_group_spawn(&g, NULL, "client", one_client, &args[i]) != 0)
                failures++;
        }
    }
    free(args);
    rc = corio_task_group_result(&g);
    int rc2 = corio_server_shutdown(srv, 1000);
    return failures ? CORIO_EFAILED : rc ? rc : rc2;
}

static void test_thousand_concurrent_clients(void **state) {
    (void)state;
    corio_test_run(many_clients_main, (void *)(uintptr_t)1000);
}

/* ---- max connections
 * ----------------------------------------------------------------------------- */

static int cap_main(void *arg) {
    (void)arg;
    corio_server *srv;
    int rc = start_echo(&srv, 2);
    if (rc)
        return rc;
    uint16_t port = (uint16_t)corio_server_port(srv);
    corio_stream *c[3] = {0};
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = corio_connect(&c[i], "127.0.0.1", port, 2000); /* the kernel completes all three */
    char b;
    /* The first two are served. */
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = corio_stream_write(c[i], "x", 1);
        if (rc == 0)
            rc = corio_stream_read_exactly(c[i], &b, 1);
    }
    /* The third waits in the backlog: nothing comes back while two are open. */
    if (rc == 0)
        rc = corio_stream_write(c[2], "y", 1);
    if (rc == 0 && corio_server_conns(srv) != 2)
        rc = CORIO_EFAILED;
    if (rc == 0) {
        CORIO_WITH(corio_timeout_scope(100)) {
            rc = corio_stream_read_exactly(c[2], &b, 1) == CORIO_ETIMEDOUT ? 0 : CORIO_EFAILED;
        }
    }
    /* Closing one lets the third in. */
    if (rc == 0) {
        corio_stream_close(c[0]);
        c[0] = NULL;
        rc = corio_stream_read_exactly(c[2], &b, 1);
        if (rc == 0 && b != 'y')
            rc = CORIO_EFAILED;
    }
    for (int i = 0; i < 3; i++)
        if (c[i])
            corio_stream_close(c[i]);
    int rc2 = corio_server_shutdown(srv, 1000);
    return rc ? rc : rc2;
}

static void test_max_connections_cap_pauses_and_resumes_accepting(void **state) {
    (void)state;
    corio_test_run(cap_main, NULL);
}

/* ---- shutdown drains, then cancels
 * ------------------------------------------------------------------ */

static int slow_handler(corio_stream *s, void *arg) {
    int *cancelled = arg;
    char b;
    int rc = corio_stream_read(s, &b, 1); /* the client never writes */
    if (rc == CORIO_ECANCELED && corio_task_cancel_reason(corio_current()) == CORIO_CANCEL_SHUTDOWN)
        (*cancelled)++;
    return rc;
}

static int drain_main(void *arg) {
    (void)arg;
    int cancelled = 0;
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(slow_handler, &cancelled, &srv, &c);
    if (rc)
        return rc;
    while (corio_server_conns(srv) == 0)
        corio_yield();
    rc = corio_server_shutdown(srv, 50) == CORIO_ETIMEDOUT ? 0 : CORIO_EFAILED;
    if (rc == 0 && cancelled != 1)
        rc = CORIO_EFAILED;
    char b;
    if (rc == 0) /* the server closed its side */
        rc = corio_stream_read(c, &b, 1) == CORIO_EOF ? 0 : CORIO_EFAILED;
    corio_stream_close(c);
    return rc;
}

static void test_shutdown_cancels_connections_after_drain_deadline(void **state) {
    (void)state;
    corio_test_run(drain_main, NULL);
}

/* ---- an abortive close ---------------------------------------------------------------------- */

/* Writes 64 KiB and returns: the server closes the connection, with a reset
 * when arg says so. */
static int write_then_return(corio_stream *s, void *arg) {
    static char block[64 * 1024];
    int rc = corio_stream_write(s, block, sizeof block);
    if (rc == 0)
        rc = corio_stream_drain(s);
    if (*(bool *)arg)
        corio_stream_set_reset_on_close(s);
    return rc;
}

/* A client reads such a connection to its end (got: how many bytes came),
 * then writes a byte: after a FIN the write goes out (0), after a reset the
 * socket is closed and the write fails.  (How the read ends does not tell:
 * libuv reports a hang-up after a short read as EOF, reset or not.) */
static int read_then_write(bool reset, size_t *got) {
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(write_then_return, &reset, &srv, &c);
    if (rc)
        return rc;
    /* Read nothing until the server's side is gone, then read. */
    while (corio_server_conns(srv) != 0)
        corio_yield();
    char buf[8192];
    *got = 0;
    while ((rc = corio_stream_read(c, buf, sizeof buf)) > 0)
        *got += (size_t)rc;
    if (rc == CORIO_EOF || rc == CORIO_ECONNRESET)
        rc = corio_stream_write(c, "z", 1);
    corio_stream_close(c);
    corio_server_shutdown(srv, 1000);
    return rc;
}

static int reset_main(void *arg) {
    (void)arg;
    size_t got;
    int rc = read_then_write(false, &got);
    if (rc != 0 || got != 64 * 1024)
        return CORIO_EFAILED; /* a plain close: every byte, EOF, the peer still there */
    rc = read_then_write(true, &got);
    return rc == CORIO_EPIPE || rc == CORIO_ECONNRESET ? 0 : CORIO_EFAILED;
}

static void test_reset_on_close_sends_a_reset(void **state) {
    (void)state;
    corio_test_run(reset_main, NULL);
}

/* ---- connections parked without a task (corio_conn_park) ------------------------------------ */

/* Echoes one line, then parks until the next one arrives. */
static int line_then_idle(corio_stream *s, void *arg) {
    (void)arg;
    char line[256];
    size_t n;
    int rc = corio_stream_read_until(s, "\n", 1, line, sizeof line, &n);
    if (rc)
        return rc == CORIO_EOF ? 0 : rc;
    uintptr_t *served = (uintptr_t *)corio_stream_data(s); /* survives parking */
    (*served)++;
    char out[300];
    int len = snprintf(out, sizeof out, "%lu:%.*s", (unsigned long)*served, (int)n, line);
    rc = corio_stream_write(s, out, (size_t)len);
    if (rc == 0)
        rc = corio_conn_park(s, corio_now() + 300);
    return rc;
}

/* Live tasks whose name starts with "conn". */
static int conn_tasks(void) {
    int fd = memfd_create("dump", 0);
    corio_tasks_dump(fd);
    char buf[8192];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    int count = 0;
    buf[n > 0 ? n : 0] = '\0';
    for (char *p = buf; (p = strstr(p, " conn ")); p++)
        count++;
    return count;
}

static int idle_main(void *arg) {
    (void)arg;
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(line_then_idle, NULL, &srv, &c);
    if (rc)
        return rc;
    char buf[64];
    size_t n;
    for (int i = 0; i < 3 && rc == 0; i++) {
        char msg[16];
        int len = snprintf(msg, sizeof msg, "line%d\n", i);
        rc = corio_stream_write(c, msg, (size_t)len);
        if (rc == 0)
            rc = corio_stream_read_until(c, "\n", 1, buf, sizeof buf, &n);
        char want[32];
        int wl = snprintf(want, sizeof want, "%d:line%d\n", i + 1, i);
        if (rc == 0 && (n != (size_t)wl || memcmp(buf, want, n) != 0))
            rc = CORIO_EFAILED;
        /* Between lines the connection is open with no task at all. */
        for (int k = 0; rc == 0 && k < 100 && conn_tasks() != 0; k++)
            corio_yield();
        if (rc == 0 && (conn_tasks() != 0 || corio_server_conns(srv) != 1))
            rc = CORIO_EFAILED;
    }
    /* Nothing more: the idle timeout (300 ms) closes it. */
    if (rc == 0)
        rc = corio_stream_read(c, buf, 1) == CORIO_EOF ? 0 : CORIO_EFAILED;
    corio_stream_close(c);
    /* A parked connection is closed at once by a shutdown. */
    corio_stream *d = NULL;
    if (rc == 0)
        rc = connect_to(srv, &d);
    if (rc == 0)
        rc = corio_stream_write(d, "x\n", 2);
    if (rc == 0)
        rc = corio_stream_read_until(d, "\n", 1, buf, sizeof buf, &n);
    if (rc == 0)
        while (conn_tasks() != 0)
            corio_yield();
    uint64_t t0 = corio_now();
    int rc2 = corio_server_shutdown(srv, 5000);
    if (rc == 0 && (rc2 != 0 || corio_now() - t0 >= 5000))
        rc = CORIO_EFAILED; /* it did not wait for the drain deadline */
    if (d) {
        if (rc == 0)
            rc = corio_stream_read(d, buf, 1) == CORIO_EOF ? 0 : CORIO_EFAILED;
        corio_stream_close(d);
    }
    return rc;
}

static void test_idle_connection_parks_without_a_task(void **state) {
    (void)state;
    corio_test_run(idle_main, NULL);
}

/* Parks after each line, checking what the server kept: the state is zero
 * on the first run, and a resumed run finds the state it parked with and
 * corio_conn_resumed true.  A line "fail" asks to park and then fails: the
 * connection is closed instead.  Answers "<runs>" per line. */
typedef struct park_check {
    uint64_t parked_until; /* what the last run parked with */
    int bad;               /* a check that failed */
} park_check;

/* Another task than the connection's handler may not ask to park it. */
static int park_from_elsewhere(void *arg) {
    return corio_conn_park(arg, 0) == CORIO_EINVAL ? 0 : CORIO_EFAILED;
}

static int park_and_resume(corio_stream *s, void *arg) {
    park_check *pc = arg;
    corio_conn_state *st = corio_conn_state_of(s);
    if (!st)
        return pc->bad = 1;
    bool resumed = corio_conn_resumed(s);
    if (resumed != (st->proto > 0))
        pc->bad = 2;
    if (!resumed && (st->idle_until != 0 || st->proto != 0))
        pc->bad = 3; /* not zeroed when accepted */
    if (resumed && st->idle_until != pc->parked_until)
        pc->bad = 4; /* not kept across parking */
    char line[64];
    size_t n;
    int rc = corio_stream_read_until(s, "\n", 1, line, sizeof line, &n);
    if (rc)
        return rc == CORIO_EOF ? 0 : rc;
    st->proto++;
    char out[32];
    int len = snprintf(out, sizeof out, "%lu\n", (unsigned long)st->proto);
    rc = corio_stream_write(s, out, (size_t)len);
    corio_task *other;
    if (rc == 0 && corio_spawn(&other, "other", park_from_elsewhere, s) == 0) {
        if (corio_await(other) != 0)
            pc->bad = 5;
        corio_task_release(other);
    }
    pc->parked_until = corio_now() + 2000;
    if (rc == 0)
        rc = corio_conn_park(s, pc->parked_until);
    return rc == 0 && n == 5 && memcmp(line, "fail\n", 5) == 0 ? CORIO_EFAILED : rc;
}

static int park_state_main(void *arg) {
    (void)arg;
    park_check pc = {0};
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(park_and_resume, &pc, &srv, &c);
    if (rc)
        return rc;
    /* A client stream is no server's: no state, no parking. */
    if (corio_conn_state_of(c) != NULL || corio_conn_resumed(c) ||
        corio_conn_park(c, 0) != CORIO_EINVAL)
        rc = CORIO_EFAILED;
    char buf[64];
    size_t n;
    const char *lines[] = {"a\n", "b\n", "fail\n"};
    for (int i = 0; i < 3 && rc == 0; i++) {
        rc = corio_stream_write(c, lines[i], strlen(lines[i]));
        if (rc == 0)
            rc = corio_stream_read_until(c, "\n", 1, buf, sizeof buf, &n);
        if (rc == 0 && (n != 2 || buf[0] != '1' + i))
            rc = CORIO_EFAILED; /* the count goes on across parking */
        for (int k = 0; rc == 0 && i < 2 && k < 100 && conn_tasks() != 0; k++)
            corio_yield();
        if (rc == 0 && i < 2 && (conn_tasks() != 0 || corio_server_conns(srv) != 1))
            rc = CORIO_EFAILED; /* parked: open, with no task */
    }
    /* The handler asked to park, then failed: closed, not parked. */
    if (rc == 0)
        rc = corio_stream_read(c, buf, 1) == CORIO_EOF ? 0 : CORIO_EFAILED;
    if (rc == 0 && pc.bad)
        rc = CORIO_EFAILED;
    corio_stream_close(c);
    int rc2 = corio_server_shutdown(srv, 2000);
    return rc ? rc : rc2;
}

static void test_parked_connection_resumes_with_its_state(void **state) {
    (void)state;
    corio_test_run(park_state_main, NULL);
}

/* A parked connection whose peer leaves without sending a byte (a FIN, or a
 * reset) is closed by the server with no task: its handler does not run
 * again.  Bytes resume it as before.  The handler counts its runs, echoes a
 * line and parks (for longer than the test waits: the idle timeout is not
 * what closes it). */
typedef struct park_count {
    int runs, resumed;
} park_count;

static int count_and_park(corio_stream *s, void *arg) {
    park_count *pc = arg;
    pc->runs++;
    if (corio_conn_resumed(s))
        pc->resumed++;
    char line[64];
    size_t n;
    int rc = corio_stream_read_until(s, "\n", 1, line, sizeof line, &n);
    if (rc)
        return rc == CORIO_EOF || rc == CORIO_ECONNRESET ? 0 : rc;
    rc = corio_stream_write(s, line, n);
    if (rc == 0)
        rc = corio_conn_park(s, corio_now() + 10000);
    return rc;
}

enum peer_leaves { LEAVE_AFTER_BYTES, LEAVE_WITH_FIN, LEAVE_WITH_RESET };

typedef struct leave_result {
    enum peer_leaves how;
    park_count pc;
    int parked_runs, parked_resumed; /* the counts while parked, before the peer left */
    int step;                        /* the first check that failed, 0 for none */
    int conns_left;                  /* the server's connections once the wait ended */
    uint64_t close_ms;               /* how long the server took to close it */
} leave_result;

/* A line echoed, then parked: open, with no task. */
static int line_and_parked(corio_stream *c, corio_server *srv, const char *line) {
    char buf[64];
    size_t n;
    size_t len = strlen(line);
    int rc = corio_stream_write(c, line, len);
    if (rc == 0)
        rc = corio_stream_read_until(c, "\n", 1, buf, sizeof buf, &n);
    if (rc == 0 && (n != len || memcmp(buf, line, n) != 0))
        rc = CORIO_EFAILED;
    for (int k = 0; rc == 0 && k < 100 && conn_tasks() != 0; k++)
        corio_yield();
    if (rc == 0 && (conn_tasks() != 0 || corio_server_conns(srv) != 1))
        rc = CORIO_EFAILED;
    return rc;
}

static int peer_leaves_main(void *arg) {
    leave_result *r = arg;
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(count_and_park, &r->pc, &srv, &c);
    if (rc)
        return rc;
    if (line_and_parked(c, srv, "a\n") != 0)
        r->step = 1;
    if (!r->step && r->how == LEAVE_AFTER_BYTES) {
        /* Bytes for a parked connection: the handler runs again, resumed. */
        if (line_and_parked(c, srv, "b\n") != 0)
            r->step = 2;
    }
    r->parked_runs = r->pc.runs;
    r->parked_resumed = r->pc.resumed;
    uint64_t t0 = corio_now();
    if (!r->step && r->how == LEAVE_WITH_RESET) {
        corio_stream_set_reset_on_close(c);
        corio_stream_close(c);
        c = NULL;
    } else if (!r->step) {
        /* A FIN (half-close): the server's close then shows as EOF here. */
        char b;
        if (corio_stream_shutdown(c) != 0)
            r->step = 3;
        else if (corio_stream_read(c, &b, 1) != CORIO_EOF)
            r->step = 4;
    }
    while (!r->step && corio_server_conns(srv) != 0 && corio_now() - t0 < 5000)
        corio_sleep(5);
    r->close_ms = corio_now() - t0;
    r->conns_left = (int)corio_server_conns(srv);
    if (c)
        corio_stream_close(c);
    return corio_server_shutdown(srv, 2000);
}

static void check_peer_leaves(enum peer_leaves how) {
    leave_result r = {.how = how};
    corio_test_run(peer_leaves_main, &r);
    print_message("peer leaves (%s): step %d, runs %d (parked: %d), resumed %d, %d conns left "
                  "after %llu ms\n",
                  how == LEAVE_WITH_FIN     ? "FIN"
                  : how == LEAVE_WITH_RESET ? "reset"
                                            : "after bytes",
                  r.step, r.pc.runs, r.parked_runs, r.pc.resumed, r.conns_left,
                  (unsigned long long)r.close_ms);
    assert_int_equal(r.step, 0);
    int runs = how == LEAVE_AFTER_BYTES ? 2 : 1;
    assert_int_equal(r.parked_runs, runs);
    assert_int_equal(r.parked_resumed, runs - 1);
    /* Closed by the server (well before the idle timeout), with no run. */
    assert_int_equal(r.conns_left, 0);
    assert_int_equal(r.pc.runs, runs);
    assert_int_equal(r.pc.resumed, runs - 1);
}

static void test_parked_connection_closed_by_peer_fin_runs_no_handler(void **state) {
    (void)state;
    check_peer_leaves(LEAVE_WITH_FIN);
}

static void test_parked_connection_reset_by_peer_runs_no_handler(void **state) {
    (void)state;
    check_peer_leaves(LEAVE_WITH_RESET);
}

static void test_parked_connection_resumed_by_bytes_then_closed_by_peer(void **state) {
    (void)state;
    check_peer_leaves(LEAVE_AFTER_BYTES);
}

/* ---- a flooding peer's reader: run at once at most once per poll -------------------------------- */

/* A reader woken by its input runs inside the read callback (corio__wake_now),
 * but libuv reads a socket up to 32 times per poll while each read fills its
 * buffer: a flooding peer's task must not run on every one of those reads,
 * ahead of everything else.  At most once at once per poll, plus once from
 * the ready queue. */
typedef struct flood_rx {
    size_t got;
    uint32_t poll;
    unsigned runs, max_runs;
} flood_rx;

static int count_runs_per_poll(corio_stream *s, void *arg) {
    flood_rx *f = arg;
    corio_stream_opts o = {.read_buffer_max = 1 << 20};
    corio_stream_configure(s, &o);
    for (;;) {
        if (corio_stream_fill(s) < 0)
            return 0;
        uint32_t poll = corio__tls_loop->polls;
        if (poll != f->poll) {
            f->poll = poll;
            f->runs = 0;
        }
        if (++f->runs > f->max_runs)
            f->max_runs = f->runs;
        size_t len;
        corio_stream_buffered(s, &len);
        f->got += len;
        corio_stream_consume(s, len);
    }
}

#define FLOOD_BYTES (16u << 20)

static int flood_main(void *arg) {
    flood_rx *f = arg;
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(count_runs_per_poll, f, &srv, &c);
    if (rc)
        return rc;
    static char chunk[256 * 1024];
    for (size_t sent = 0; rc == 0 && sent < FLOOD_BYTES; sent += sizeof chunk)
        rc = corio_stream_write(c, chunk, sizeof chunk);
    if (rc == 0) /* a close drops what the kernel has not taken yet */
        rc = corio_stream_drain(c);
    corio_stream_close(c);
    for (int i = 0; rc == 0 && f->got < FLOOD_BYTES && i < 10000; i++)
        corio_sleep(1);
    corio_server_shutdown(srv, 1000);
    return rc;
}

static void test_flooding_peer_runs_its_reader_at_most_twice_per_poll(void **state) {
    (void)state;
    flood_rx f = {0};
    assert_int_equal(corio_run(flood_main, &f), 0);
    assert_int_equal(f.got, FLOOD_BYTES);
    if (f.max_runs > 2)
        fail_msg("the reader ran %u times in one poll", f.max_runs);
}

/* ---- a write that does not wait for the queue to drain (corio__stream_write_nowait) ----------- */

/* Runs only when the task that spawned it yields: a witness that a call
 * did not wait. */
static int note_ran(void *arg) {
    *(int *)arg = 1;
    return 0;
}

/* The server's side never reads until told: the client's queue stays full. */
static int hold_unread(corio_stream *s, void *arg) {
    corio_event *go = arg;
    corio_event_wait(go);
    char buf[4096];
    while (corio_stream_read(s, buf, sizeof buf) > 0) {
    }
    return 0;
}

static int nowait_main(void *arg) {
    (void)arg;
    corio_event go;
    corio_event_init(&go);
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(hold_unread, &go, &srv, &c);
    if (rc)
        return rc;
    corio_stream_opts o = {.write_high_water = 1024};
    corio_stream_configure(c, &o);
    static char big[16 << 20];
    CORIO_WITH(corio_timeout_scope(200)) {
        rc = corio_stream_write(c, big, sizeof big); /* more than the socket takes */
    }
    SOFT(rc == CORIO_ETIMEDOUT);
    size_t before = corio_stream_write_queued(c);
    SOFT(before > 1024); /* above the high-water mark: a write would wait */
    int witness_ran = 0;
    corio_task *witness;
    SOFT(corio_spawn(&witness, "witness", note_ran, &witness_ran) == 0);
    struct iovec iov = {(void *)"pong", 4};
    SOFT(corio__stream_write_nowait(c, &iov, 1) == 0);
    SOFT(corio_stream_write_queued(c) == before + 4); /* queued behind, at once */
    SOFT(witness_ran == 0); /* and without yielding: the witness has not run */
    SOFT(corio_await(witness) == 0 && witness_ran == 1);
    corio_task_release(witness);
    corio_event_set(&go); /* the server drains it all */
    SOFT(corio_stream_drain(c) == 0);
    corio_stream_shutdown(c);
    SOFT(corio__stream_write_nowait(c, &iov, 1) == CORIO_EPIPE);
    corio_stream_close(c);
    return corio_server_shutdown(srv, 1000);
}

static void test_write_nowait_queues_above_the_high_water_mark(void **state) {
    (void)state;
    corio_test_run_checked(nowait_main, NULL);
}

/* ---- addresses; the contract's error codes --------------------------------------------------- */

/* Records the server side's view of the connection's two ends, then waits
 * for the client to finish. */
typedef struct names {
    char local[64], peer[64];
    int local_rc, peer_rc;
} names;

static int record_names(corio_stream *s, void *arg) {
    names *n = arg;
    n->local_rc = corio_stream_local_name(s, n->local, sizeof n->local);
    n->peer_rc = corio_stream_peer_name(s, n->peer, sizeof n->peer);
    char b;
    int rc = corio_stream_write(s, "n", 1);
    while (rc == 0)
        rc = corio_stream_read(s, &b, 1) < 0 ? 1 : 0; /* until the client closes */
    return 0;
}

static int names_main(void *arg) {
    int *failed_line = arg;
#define NAMES_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond) && !*failed_line)                                                              \
            *failed_line = __LINE__;                                                               \
    } while (0)
    names srv_names = {0};
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(record_names, &srv_names, &srv, &c);
    if (rc)
        return rc;
    char b, local[64], peer[64], want[64], tiny[8];
    NAMES_CHECK(corio_stream_read_exactly(c, &b, 1) == 0); /* the handler has recorded */
    NAMES_CHECK(corio_stream_local_name(c, local, sizeof local) == 0);
    NAMES_CHECK(corio_stream_peer_name(c, peer, sizeof peer) == 0);
    snprintf(want, sizeof want, "127.0.0.1:%d", corio_server_port(srv));
    NAMES_CHECK(strcmp(peer, want) == 0);               /* the client's peer: the server */
    NAMES_CHECK(strncmp(local, "127.0.0.1:", 10) == 0); /* its own: an ephemeral port */
    NAMES_CHECK(strcmp(local, want) != 0);
    NAMES_CHECK(srv_names.local_rc == 0 && strcmp(srv_names.local, want) == 0);
    NAMES_CHECK(srv_names.peer_rc == 0 && strcmp(srv_names.peer, local) == 0);
    /* A buffer too small for "127.0.0.1:NNNNN": ERANGE, either end. */
    NAMES_CHECK(corio_stream_local_name(c, tiny, sizeof tiny) == CORIO_ERANGE);
    NAMES_CHECK(corio_stream_peer_name(c, tiny, sizeof tiny) == CORIO_ERANGE);
    corio_stream_close(c);
    return corio_server_shutdown(srv, 1000);
#undef NAMES_CHECK
}

static void test_local_and_peer_names_of_both_ends(void **state) {
    (void)state;
    int failed_line = 0;
    corio_test_run(names_main, &failed_line);
    if (failed_line)
        fail_msg("check at line %d failed", failed_line);
}

/* A handler that never writes and waits for the client to go. */
static int silent_handler(corio_stream *s, void *arg) {
    (void)arg;
    char buf[4096];
    int rc;
    while ((rc = corio_stream_read(s, buf, sizeof buf)) > 0) {
    }
    return 0;
}

typedef struct busy_state {
    corio_stream *c;
    int first_rc, second_rc, late_rc;
} busy_state;

static int first_reader(void *arg) {
    busy_state *st = arg;
    char b;
    st->first_rc = corio_stream_read(st->c, &b, 1);
    return 0;
}

/* Two tasks reading one stream: the second (read or fill) gets EBUSY and the
 * first keeps its place, until another task's close wakes it with ECLOSED
 * (the one way to see ECLOSED: a closed stream is freed, so no call can be
 * made on it afterwards). */
static int busy_main(void *arg) {
    busy_state *st = arg;
    corio_server *srv;
    int rc = serve_and_connect(silent_handler, NULL, &srv, &st->c);
    if (rc)
        return rc;
    corio_task *t;
    if ((rc = corio_spawn(&t, "first-reader", first_reader, st)) == 0) {
        corio_yield(); /* it parks: the server sends nothing */
        char b;
        st->second_rc = corio_stream_read(st->c, &b, 1);
        st->late_rc = corio_stream_fill(st->c); /* the same rule */
        corio_stream_close(st->c);              /* wakes the parked reader */
        corio_await(t);
        corio_task_release(t);
    } else {
        corio_stream_close(st->c);
    }
    int rc2 = corio_server_shutdown(srv, 1000);
    return rc ? rc : rc2;
}

static void test_second_reader_gets_ebusy_and_close_wakes_the_first_with_eclosed(void **state) {
    (void)state;
    busy_state st = {0};
    corio_test_run(busy_main, &st);
    assert_int_equal(st.second_rc, CORIO_EBUSY);
    assert_int_equal(st.late_rc, CORIO_EBUSY);
    assert_int_equal(st.first_rc, CORIO_ECLOSED);
}

/* A handler that reads nothing until the event is set. */
static int wait_without_reading(corio_stream *s, void *arg) {
    (void)s;
    return corio_event_wait(arg);
}

typedef struct wclosed_state {
    corio_stream *c;
    int writer_rc, second_rc;
    size_t queued_when_parked, queued_after_second;
} wclosed_state;

/* Writes until the write fails: the server never reads, so once the kernel's
 * buffers are full it parks under backpressure. */
static int flooding_writer(void *arg) {
    wclosed_state *st = arg;
    static char block[256 * 1024];
    int rc;
    while ((rc = corio_stream_write(st->c, block, sizeof block)) == 0) {
    }
    st->writer_rc = rc;
    return 0;
}

static int wclosed_main(void *arg) {
    wclosed_state *st = arg;
    corio_server *srv;
    corio_event never_read;
    corio_event_init(&never_read);
    int rc = serve_and_connect(wait_without_reading, &never_read, &srv, &st->c);
    if (rc)
        return rc;
    corio_stream_opts o = {.write_high_water = 4096};
    corio_stream_configure(st->c, &o);
    corio_task *t;
    if ((rc = corio_spawn(&t, "flooding-writer", flooding_writer, st)) != 0) {
        corio_stream_close(st->c);
    } else {
        /* A write returns only with at most write_high_water queued: more
         * than that queued means the writer is parked. */
        while (corio_stream_write_queued(st->c) <= 4096 && st->writer_rc == 0)
            corio_yield();
        st->queued_when_parked = corio_stream_write_queued(st->c);
        /* A second writer meanwhile: EBUSY, and none of its bytes queued
         * (they would go out inside the first writer's data). */
        st->second_rc = corio_stream_write(st->c, "EXTRA", 5);
        st->queued_after_second = corio_stream_write_queued(st->c);
        corio_stream_close(st->c);
        corio_await(t);
        corio_task_release(t);
    }
    corio_event_set(&never_read);
    int rc2 = corio_server_shutdown(srv, 1000);
    return rc ? rc : rc2;
}

static void test_second_writer_gets_ebusy_and_close_wakes_the_first_with_eclosed(void **state) {
    (void)state;
    wclosed_state st = {0};
    corio_test_run(wclosed_main, &st);
    assert_true(st.queued_when_parked > 4096);
    assert_int_equal(st.second_rc, CORIO_EBUSY);
    assert_int_equal(st.queued_after_second, st.queued_when_parked);
    assert_int_equal(st.writer_rc, CORIO_ECLOSED);
}

/* Sends its argument (a C string), then reads until the client goes. */
static int send_then_wait(corio_stream *s, void *arg) {
    int rc = corio_stream_write(s, arg, strlen(arg));
    char b;
    while (rc == 0)
        rc = corio_stream_read(s, &b, 1) < 0 ? 1 : 0;
    return 0;
}

typedef struct range_state {
    int until_rc, fill_rc, exact_rc, tail_rc;
    size_t buffered, tail_len;
    char held[16], exact[16], tail[16];
} range_state;

/* A read buffer capped at 8 bytes and 20 bytes without a newline:
 * read_until finds none within min(cap, read_buffer_max) = 8 bytes (ERANGE,
 * nothing consumed), fill at the cap is ERANGE, and reading on works. */
static int range_main(void *arg) {
    range_state *st = arg;
    corio_server *srv;
    corio_stream *c;
    int rc = serve_and_connect(send_then_wait, "0123456789abcdefghij", &srv, &c);
    if (rc)
        return rc;
    corio_stream_opts o = {.read_buffer_max = 8};
    corio_stream_configure(c, &o);
    char line[64];
    size_t n = 99;
    st->until_rc = corio_stream_read_until(c, "\n", 1, line, sizeof line, &n);
    const char *p = corio_stream_buffered(c, &st->buffered);
    if (p && st->buffered <= 8)
        memcpy(st->held, p, st->buffered);
    st->fill_rc = corio_stream_fill(c);
    st->exact_rc = corio_stream_read_exactly(c, st->exact, 16);
    st->tail_rc = corio_stream_read_until(c, "j", 1, st->tail, sizeof st->tail, &st->tail_len);
    corio_stream_close(c);
    return corio_server_shutdown(srv, 1000);
}

static void test_read_buffer_limit_gives_erange_and_consumes_nothing(void **state) {
    (void)state;
    range_state st = {0};
    corio_test_run(range_main, &st);
    assert_int_equal(st.until_rc, CORIO_ERANGE);
    assert_int_equal(st.buffered, 8);
    assert_memory_equal(st.held, "01234567", 8);
    assert_int_equal(st.fill_rc, CORIO_ERANGE);
    assert_int_equal(st.exact_rc, 0);
    assert_memory_equal(st.exact, "0123456789abcdef", 16);
    assert_int_equal(st.tail_rc, 0);
    assert_int_equal(st.tail_len, 4);
    assert_memory_equal(st.tail, "ghij", 4);
}

static int addr_in_use_main(void *arg) {
    int *rc_out = arg;
    corio_server *a, *b = NULL;
    int rc = start_echo(&a, 0);
    if (rc)
        return rc;
    corio_server_opts o = {.host = "127.0.0.1", .port = (uint16_t)corio_server_port(a)};
    rc_out[0] = corio_server_start(&b, &o, echo_handler, NULL);
    if (rc_out[0] == 0)
        corio_server_shutdown(b, 0);
    /* The first server is unaffected: it still answers. */
    corio_stream *c;
    rc = connect_to(a, &c);
    char back[2];
    if (rc == 0) {
        rc = corio_stream_write(c, "ok", 2);
        if (rc == 0)
            rc = corio_stream_read_exactly(c, back, 2);
        corio_stream_close(c);
    }
    rc_out[1] = rc;
    return corio_server_shutdown(a, 1000);
}

static void test_server_start_on_a_port_in_use_fails_with_eaddrinuse(void **state) {
    (void)state;
    int rc[2] = {1, 1};
    corio_test_run(addr_in_use_main, rc);
    assert_int_equal(rc[0], CORIO_EADDRINUSE);
    assert_int_equal(rc[1], 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo_8mib_random_write_sizes),
        cmocka_unit_test(test_read_until_and_read_exactly),
        cmocka_unit_test(test_thousand_concurrent_clients),
        cmocka_unit_test(test_max_connections_cap_pauses_and_resumes_accepting),
        cmocka_unit_test(test_shutdown_cancels_connections_after_drain_deadline),
        cmocka_unit_test(test_idle_connection_parks_without_a_task),
        cmocka_unit_test(test_parked_connection_resumes_with_its_state),
        cmocka_unit_test(test_parked_connection_closed_by_peer_fin_runs_no_handler),
        cmocka_unit_test(test_parked_connection_reset_by_peer_runs_no_handler),
        cmocka_unit_test(test_parked_connection_resumed_by_bytes_then_closed_by_peer),
        cmocka_unit_test(test_flooding_peer_runs_its_reader_at_most_twice_per_poll),
        cmocka_unit_test(test_write_nowait_queues_above_the_high_water_mark),
        cmocka_unit_test(test_reset_on_close_sends_a_reset),
        cmocka_unit_test(test_local_and_peer_names_of_both_ends),
        cmocka_unit_test(test_second_reader_gets_ebusy_and_close_wakes_the_first_with_eclosed),
        cmocka_unit_test(test_second_writer_gets_ebusy_and_close_wakes_the_first_with_eclosed),
        cmocka_unit_test(test_read_buffer_limit_gives_erange_and_consumes_nothing),
        cmocka_unit_test(test_server_start_on_a_port_in_use_fails_with_eaddrinuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
