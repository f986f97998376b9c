/* SPDX-License-Identifier: MIT */
/* TLS streams on loopback, the records: bulk echo, every reading call,
 * close_notify, and a bounded buffer of unread ciphertext.  The handshake
 * (versions, ciphers, ALPN, verification, peers that are not TLS) is in
 * test_tls_handshake.c, contexts (bad configurations, reload) in
 * test_tls_ctx.c.  A throwaway PKI is made with the openssl command line
 * before the tests and removed after (tls_helpers.h). */
#include "corio_test.h"
#include "tls_helpers.h"

#include "net/stream_internal.h" /* white box: corio__tls_buffered, s->rlen */

/* ---- corio server and client: 1 MiB echo with random write sizes ------------------------- */

static int echo_1mib_main(void *arg) {
    (void)arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_ECHO});
    if (rc)
        return rc;
    CHECK_RC(tls_test_connect(&t, "localhost", t.v.port, NULL), 0);
    CHECK(corio_stream_is_tls(t.s));
    CHECK(strcmp(corio_stream_tls_version(t.s), "TLSv1.3") == 0);
    /* Writes alternate write and a three-buffer writev. */
    bulk_echo_opts o = {.len = 1 << 20,
                        .seed = 4242,
                        .max_read = 30000,
                        .writer_seed = 7,
                        .max_piece = 40000,
                        .writev = true};
    CHECK_RC(bulk_echo(t.s, &o), 0);
out:
    return tls_test_end_expect(&t, rc, 1, 0);
}

static void test_tls_echo_1mib_random_write_sizes(void **state) {
    (void)state;
    corio_test_run(echo_1mib_main, NULL);
}

/* ---- every reading call over TLS --------------------------------------------------------- */

static int reads_main(void *arg) {
    (void)arg;
    tls_test t;
    char *big = NULL, *back = NULL;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_ECHO});
    if (rc)
        return rc;
    /* By IP: verified against the certificate's IP address. */
    CHECK_RC(tls_test_connect(&t, "127.0.0.1", t.v.port, NULL), 0);
    corio_stream *c = t.s;
    const char msg[] = "hello\r\nworld\r\nrest";
    CHECK_RC(corio_stream_write(c, msg, sizeof msg - 1), 0);
    char line[64];
    size_t n = 0;
    CHECK_RC(corio_stream_read_until(c, "\r\n", 2, line, sizeof line, &n), 0);
    CHECK(n == 7 && memcmp(line, "hello\r\n", 7) == 0);
    CHECK_RC(corio_stream_read_until(c, "\r\n", 2, line, sizeof line, &n), 0);
    CHECK(n == 7 && memcmp(line, "world\r\n", 7) == 0);
    CHECK_RC(corio_stream_read_exactly(c, line, 4), 0);
    CHECK(memcmp(line, "rest", 4) == 0);
    /* A line longer than the caller's limit: ERANGE, nothing consumed. */
    CHECK_RC(corio_stream_write(c, "0123456789\n", 11), 0);
    CHECK_RC(corio_stream_read_until(c, "\n", 1, line, 5, &n), CORIO_ERANGE);
    CHECK_RC(corio_stream_read_until(c, "\n", 1, line, sizeof line, &n), 0);
    CHECK(n == 11);
    /* Zero-copy reading: fill until six bytes are buffered, consume them. */
    CHECK_RC(corio_stream_write(c, "abcdef", 6), 0);
    size_t len = 0;
    while (corio_stream_buffered(c, &len), len < 6)
        CHECK(corio_stream_fill(c) > 0);
    CHECK(len == 6 && memcmp(corio_stream_buffered(c, &len), "abcdef", 6) == 0);
    corio_stream_consume(c, 6);
    CHECK(corio_stream_buffered(c, &len) == NULL && len == 0);
    /* A line that arrives in two records: read_until waits for the second
     * with the first already buffered. */
    CHECK_RC(corio_stream_write(c, "par", 3), 0);
    while (corio_stream_buffered(c, &len), len < 3)
        CHECK(corio_stream_fill(c) > 0);
    CHECK_RC(corio_stream_write(c, "tial\n", 5), 0);
    CHECK_RC(corio_stream_read_until(c, "\n", 1, line, sizeof line, &n), 0);
    CHECK(n == 8 && memcmp(line, "partial\n", 8) == 0);
    /* drain: 512 KiB handed to the kernel, then read back. */
    enum { BIG = 512 * 1024 };
    big = malloc(BIG);
    back = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big[i] = (char)(i * 31 + 7);
    CHECK_RC(corio_stream_write(c, big, BIG / 2), 0); /* the echo flows back meanwhile */
    CHECK_RC(corio_stream_read_exactly(c, back, BIG / 2), 0);
    CHECK_RC(corio_stream_write(c, big + BIG / 2, BIG / 2), 0);
    CHECK_RC(corio_stream_drain(c), 0);
    CHECK(corio_stream_write_queued(c) == 0);
    CHECK_RC(corio_stream_read_exactly(c, back + BIG / 2, BIG / 2), 0);
    CHECK(memcmp(big, back, BIG) == 0);
    /* Half-close: the server sees EOF, half-closes too; reading still works
     * until then. */
    CHECK_RC(corio_stream_shutdown(c), 0);
    CHECK_RC(corio_stream_write(c, "x", 1), CORIO_EPIPE);
    CHECK_RC(corio_stream_read(c, line, sizeof line), CORIO_EOF);
out:
    free(big);
    free(back);
    return tls_test_end_expect(&t, rc, SRV_ANY, 0);
}

static void test_tls_every_read_call_works(void **state) {
    (void)state;
    corio_test_run(reads_main, NULL);
}

/* ---- close_notify ------------------------------------------------------------------------ */

static int close_notify_main(void *arg) {
    (void)arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_BYE});
    if (rc)
        return rc;
    /* s_client reports a clean close ("closed"), not an unexpected EOF.
     * Its stdin stays open until then, so only the server ends it. */
    CHECK_RC(tls_test_sclient(&t, (sclient){.steps = {{"closed", NULL}}}), 0);
    CHECK_OUT(&t.c, "bye", true);
    CHECK_OUT(&t.c, "unexpected eof", false);
    /* A corio client reads the bytes, then EOF. */
    CHECK_RC(tls_test_connect(&t, "localhost", t.v.port, NULL), 0);
    char b[4];
    CHECK_RC(corio_stream_read_exactly(t.s, b, 4), 0);
    CHECK(memcmp(b, "bye\n", 4) == 0);
    CHECK_RC(corio_stream_read(t.s, b, 1), CORIO_EOF);
out:
    return tls_test_end(&t, rc);
}

static void test_tls_close_sends_close_notify(void **state) {
    (void)state;
    corio_test_run(close_notify_main, NULL);
}

/* ---- bounded buffering ------------------------------------------------------------------- */

typedef struct flood {
    corio_stream *s;
    size_t sent;
} flood;

/* Writes 64 KiB chunks until cancelled, the stream fails, or 64 MiB. */
static int flood_writer(void *arg) {
    flood *f = arg;
    static char chunk[64 * 1024];
    while (f->sent < ((size_t)64 << 20)) {
        int rc = corio_stream_write(f->s, chunk, sizeof chunk);
        if (rc < 0)
            return rc;
        f->sent += sizeof chunk;
    }
    return 0;
}

/* Whether the server has stopped reading the flood: its handler runs (and
 * never reads), its socket reading is paused, and the client's writes queue
 * up behind full kernel buffers. */
static bool flood_stalled(const srv *v, corio_stream *c) {
    return v->sink && !v->sink->reading && corio_stream_write_queued(c) > 0;
}

/* The server's handler never reads.  The client floods it; the server must
 * stop reading from the socket once its bounded ciphertext buffer is full,
 * decrypt nothing, and stay so however long the client keeps trying.  No
 * timer is involved: the main task yields (the loop polls I/O every
 * READY_BUDGET resumptions) until the stall shows, bounded by a count. */
static int bounded_main(void *arg) {
    (void)arg;
    tls_test t;
    corio_task *w = NULL;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_SINK});
    if (rc)
        return rc;
    CHECK_RC(tls_test_connect(&t, "localhost", t.v.port, NULL), 0);
    flood f = {.s = t.s};
    CHECK_RC(corio_spawn(&w, "flood", flood_writer, &f), 0);
    long spins = 0;
    while (!flood_stalled(&t.v, t.s) && !corio_task_done(w) && spins < 50L * 1000 * 1000) {
        CHECK_RC(corio_yield(), 0);
        spins++;
    }
    CHECK(flood_stalled(&t.v, t.s));
    /* Many more polls: nothing moves any more. */
    size_t sent = f.sent;
    for (int i = 0; i < 20 * 1024; i++)
        CHECK_RC(corio_yield(), 0);
    CHECK(flood_stalled(&t.v, t.s));
    CHECK(f.sent == sent);
    CHECK(corio__tls_buffered(t.v.sink) > 0);
    CHECK(corio__tls_buffered(t.v.sink) <= 40 * 1024);
    CHECK(t.v.sink->rlen == 0 && t.v.sink->rbuf == NULL);
    CHECK(f.sent < ((size_t)64 << 20));
out:
    if (w) {
        corio_cancel(w);
        corio_await(w);
        corio_task_release(w);
    }
    corio_event_set(&t.v.sink_go);
    return tls_test_end(&t, rc);
}

static void test_tls_unread_input_stays_bounded(void **state) {
    (void)state;
    corio_test_run(bounded_main, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_echo_1mib_random_write_sizes),
        cmocka_unit_test(test_tls_every_read_call_works),
        cmocka_unit_test(test_tls_close_sends_close_notify),
        cmocka_unit_test(test_tls_unread_input_stays_bounded),
    };
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
