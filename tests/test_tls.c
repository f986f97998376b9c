/* SPDX-License-Identifier: MIT */
/* TLS streams on loopback, the records: bulk echo, every reading call,
 * close_notify, and a bounded buffer of unread ciphertext.  The handshake
 * (versions, ciphers, ALPN, verification, peers that are not TLS) is in
 * test_tls_handshake.c, contexts (bad configurations, reload) in
 * test_tls_ctx.c.  A throwaway PKI is made with the openssl command line
 * before the tests and removed after (tls_helpers.h).  Session resumption
 * (tickets, a session cache, none) is checked with a raw OpenSSL client,
 * which can offer a saved session (SSL_set_session); corio's own client
 * does not. */
#include "corio_test.h"
#include "tls_helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "net/stream_internal.h" /* white box: corio__tls_buffered, s->rlen */
#include "net/tls_internal.h"    /* white box: a context's SSL_CTX (its session cache) */

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

/* ---- session resumption ------------------------------------------------------------------ */

/* corio_tls_ticket_key_new: 80 bytes, no more, fresh each call; NULL refused. */
static void test_tls_ticket_key_new_fills_80_random_bytes(void **state) {
    (void)state;
    assert_int_equal(CORIO_TLS_TICKET_KEY_SIZE, 80);
    unsigned char a[CORIO_TLS_TICKET_KEY_SIZE + 8], b[CORIO_TLS_TICKET_KEY_SIZE + 8];
    memset(a, 0xa5, sizeof a);
    memset(b, 0xa5, sizeof b);
    assert_corio(corio_tls_ticket_key_new(a), 0);
    assert_corio(corio_tls_ticket_key_new(b), 0);
    for (size_t i = CORIO_TLS_TICKET_KEY_SIZE; i < sizeof a; i++) /* nothing past the key */
        assert_true(a[i] == 0xa5 && b[i] == 0xa5);
    /* Every part of the key filled: no 16-byte stretch left as it was
     * (chance of a false failure: 5 * 2^-128). */
    static const unsigned char untouched[16] = {
        0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5,
        0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5, 0xa5,
    };
    for (size_t i = 0; i < CORIO_TLS_TICKET_KEY_SIZE; i += 16)
        assert_true(memcmp(a + i, untouched, 16) != 0 && memcmp(b + i, untouched, 16) != 0);
    assert_true(memcmp(a, b, CORIO_TLS_TICKET_KEY_SIZE) != 0);
    assert_corio(corio_tls_ticket_key_new(NULL), CORIO_EINVAL);
}

/* A resumption mode outside the enum: CORIO_EINVAL, no context. */
static void test_tls_unknown_resumption_refused(void **state) {
    (void)state;
    static const unsigned bad[] = {CORIO_TLS_RESUME_OFF + 1, 7, 1000, 0x80000000u, 0xffffffffu};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        corio_tls_server_opts o = {.cert_file = pki.a_cert, .key_file = pki.a_key};
        o.resumption = (corio_tls_resumption)bad[i];
        corio_tls_ctx *c = NULL;
        assert_corio(corio_tls_ctx_new_server(&c, &o), CORIO_EINVAL);
        assert_null(c);
    }
    /* The three known ones are accepted, with and without a ticket key. */
    unsigned char key[CORIO_TLS_TICKET_KEY_SIZE];
    assert_corio(corio_tls_ticket_key_new(key), 0);
    for (int r = CORIO_TLS_RESUME_TICKETS; r <= CORIO_TLS_RESUME_OFF; r++)
        for (int k = 0; k < 2; k++) {
            corio_tls_server_opts o = {.cert_file = pki.a_cert,
                                       .key_file = pki.a_key,
                                       .resumption = (corio_tls_resumption)r,
                                       .ticket_key = k ? key : NULL};
            corio_tls_ctx *c = NULL;
            assert_corio(corio_tls_ctx_new_server(&c, &o), 0);
            assert_non_null(c);
            corio_tls_ctx_free(c);
        }
}

/* A corio echo server (SRV_ECHO) with the given context options; the
 * certificate is a's unless opts names one. */
static int res_srv_start(srv *v, corio_tls_server_opts to) {
    memset(v, 0, sizeof *v);
    v->mode = SRV_ECHO;
    corio_event_init(&v->sink_go);
    if (!to.cert_file) {
        to.cert_file = pki.a_cert;
        to.key_file = pki.a_key;
    }
    int rc = corio_tls_ctx_new_server(&v->ctx, &to);
    if (rc)
        return rc;
    corio_server_opts o = {.host = "127.0.0.1", .tls = v->ctx};
    rc = corio_server_start(&v->server, &o, srv_handler, v);
    if (rc) {
        corio_tls_ctx_free(v->ctx);
        v->ctx = NULL;
        return rc;
    }
    v->port = corio_server_port(v->server);
    return 0;
}

/* One connection of a raw OpenSSL client (verifying the test CA and
 * "localhost"), run on the thread pool: a handshake offering `offer` (NULL:
 * none), "ping\n" echoed back (TLS 1.3 tickets come after the handshake and
 * before the echo), then close_notify both ways. */
typedef struct raw_conn {
    SSL_CTX *cx;        /* the client's context (raw_cx) */
    int port;           /* the server */
    SSL_SESSION *offer; /* borrowed; NULL: a full handshake */
    SSL_SESSION *got;   /* the connection's session afterwards (SSL_SESSION_free) */
    bool ok;            /* the exchange went through */
    bool reused;        /* SSL_session_reused */
    char version[16];   /* "TLSv1.3" */
    char why[160];      /* what failed, when !ok */
} raw_conn;

/* A client context; max_version 0 (TLS 1.3) or TLS1_2_VERSION.  no_ticket:
 * the client does not ask for tickets (TLS 1.2: session ids only). */
static SSL_CTX *raw_cx(int max_version, bool no_ticket) {
    SSL_CTX *cx = SSL_CTX_new(TLS_client_method());
    if (!cx)
        return NULL;
    SSL_CTX_set_verify(cx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(cx, pki.ca, NULL) != 1 ||
        (max_version && SSL_CTX_set_max_proto_version(cx, max_version) != 1)) {
        SSL_CTX_free(cx);
        return NULL;
    }
    if (no_ticket)
        SSL_CTX_set_options(cx, SSL_OP_NO_TICKET);
    return cx;
}

static int raw_conn_run(void *arg) {
    raw_conn *r = arg;
    r->ok = r->reused = false;
    r->got = NULL;
    r->version[0] = r->why[0] = '\0';
    SSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(r->why, sizeof r->why, "socket: %s", strerror(errno));
        return 0;
    }
    struct timeval tv = {.tv_sec = 5}; /* a stuck server fails the test, never hangs it */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)r->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(r->why, sizeof r->why, "connect: %s", strerror(errno));
        goto done;
    }
    ssl = SSL_new(r->cx);
    if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_set1_host(ssl, "localhost") != 1 ||
        SSL_set_tlsext_host_name(ssl, "localhost") != 1 ||
        (r->offer && SSL_set_session(ssl, r->offer) != 1)) {
        snprintf(r->why, sizeof r->why, "client set-up failed");
        goto done;
    }
    if (SSL_connect(ssl) != 1) {
        snprintf(r->why, sizeof r->why, "handshake failed (verify result %ld)",
                 SSL_get_verify_result(ssl));
        goto done;
    }
    char back[5];
    size_t have = 0;
    if (SSL_write(ssl, "ping\n", 5) != 5) {
        snprintf(r->why, sizeof r->why, "write failed");
        goto done;
    }
    while (have < sizeof back) {
        int n = SSL_read(ssl, back + have, (int)(sizeof back - have));
        if (n <= 0) {
            snprintf(r->why, sizeof r->why, "read failed: %d", SSL_get_error(ssl, n));
            goto done;
        }
        have += (size_t)n;
    }
    if (memcmp(back, "ping\n", 5) != 0) {
        snprintf(r->why, sizeof r->why, "echo differs");
        goto done;
    }
    r->reused = SSL_session_reused(ssl) == 1;
    snprintf(r->version, sizeof r->version, "%s", SSL_get_version(ssl));
    r->got = SSL_get1_session(ssl);
    /* close_notify, then the server's own (it half-closes after EOF). */
    SSL_shutdown(ssl);
    char sink[64];
    while (SSL_read(ssl, sink, sizeof sink) > 0)
        ;
    r->ok = r->got != NULL;
    if (!r->ok)
        snprintf(r->why, sizeof r->why, "no session");
done:
    SSL_free(ssl);
    close(fd);
    /* The pool thread's OpenSSL state (error queue, random generators): its
     * thread outlives the test, so OpenSSL's exit handler never frees it. */
    OPENSSL_thread_stop();
    return 0;
}

/* Runs one raw connection to port offering `offer` (may be NULL); fills
 * *r.  Returns 0 (the exchange went through) or CORIO_EFAILED, reported. */
static int raw_exchange(raw_conn *r, SSL_CTX *cx, int port, SSL_SESSION *offer) {
    *r = (raw_conn){.cx = cx, .port = port, .offer = offer};
    corio_future *f;
    int rc = corio_run_blocking(&f, raw_conn_run, r);
    if (rc)
        return rc;
    rc = corio_await(f);
    corio_future_release(f);
    if (rc == 0 && !r->ok) {
        fprintf(stderr, "raw client to port %d: %s\n", port, r->why);
        SSL_SESSION_free(r->got);
        r->got = NULL;
        rc = CORIO_EFAILED;
    }
    return rc;
}

/* A full handshake with port; *sess is then its (resumable) session.  The
 * connection must not have resumed. */
static int raw_new_session(SSL_CTX *cx, int port, SSL_SESSION **sess) {
    raw_conn r;
    int rc = raw_exchange(&r, cx, port, NULL);
    if (rc)
        return rc;
    *sess = r.got;
    if (r.reused || !SSL_SESSION_is_resumable(r.got)) {
        fprintf(stderr, "port %d: full handshake reused %d, session resumable %d\n", port, r.reused,
                SSL_SESSION_is_resumable(r.got));
        return CORIO_EFAILED;
    }
    return 0;
}

/* Offers sess to port; *reused: whether the server took it.  The new
 * session is dropped. */
static int raw_offer(SSL_CTX *cx, int port, SSL_SESSION *sess, bool *reused) {
    raw_conn r;
    int rc = raw_exchange(&r, cx, port, sess);
    if (rc)
        return rc;
    *reused = r.reused;
    SSL_SESSION_free(r.got);
    return 0;
}

/* The sessions in a server context's OpenSSL cache (white box). */
static long server_cached_sessions(corio_tls_ctx *c) {
    uv_mutex_lock(&c->lock);
    long n = SSL_CTX_sess_number(c->current);
    uv_mutex_unlock(&c->lock);
    return n;
}

/* Tickets, TLS 1.3 and 1.2: servers A and B made with one ticket key
 * accept each other's tickets (a client made its session with A resumes on
 * B, and one made with B resumes on A); server C, with another key, and D,
 * with none given (a random key of its own), refuse them; and no server
 * keeps a session cache. */
static int tickets_main(void *arg) {
    int max_version = *(const int *)arg;
    srv a, b, c, d;
    srv *all[] = {&a, &b, &c, &d};
    int started = 0;
    SSL_CTX *cx = NULL;
    SSL_SESSION *sa = NULL, *sb = NULL;
    int rc = 0;
    unsigned char key[CORIO_TLS_TICKET_KEY_SIZE], other[CORIO_TLS_TICKET_KEY_SIZE];
    CHECK_RC(corio_tls_ticket_key_new(key), 0);
    CHECK_RC(corio_tls_ticket_key_new(other), 0);
    CHECK_RC(res_srv_start(&a, (corio_tls_server_opts){.ticket_key = key}), 0);
    started++;
    /* b: copied, so the caller's buffer may change afterwards. */
    unsigned char copy[CORIO_TLS_TICKET_KEY_SIZE];
    memcpy(copy, key, sizeof copy);
    CHECK_RC(res_srv_start(&b, (corio_tls_server_opts){.cert_file = pki.b_cert,
                                                       .key_file = pki.b_key,
                                                       .resumption = CORIO_TLS_RESUME_TICKETS,
                                                       .ticket_key = copy}),
             0);
    memset(copy, 0, sizeof copy);
    started++;
    CHECK_RC(res_srv_start(&c, (corio_tls_server_opts){.ticket_key = other}), 0);
    started++;
    CHECK_RC(res_srv_start(&d, (corio_tls_server_opts){0}), 0);
    started++;
    cx = raw_cx(max_version, false);
    CHECK(cx != NULL);
    CHECK_RC(raw_new_session(cx, a.port, &sa), 0);
    CHECK_RC(raw_new_session(cx, b.port, &sb), 0);
    bool reused = false;
    CHECK_RC(raw_offer(cx, a.port, sa, &reused), 0);
    CHECK(reused); /* the server that made it */
    CHECK_RC(raw_offer(cx, b.port, sa, &reused), 0);
    CHECK(reused); /* A's ticket on B */
    CHECK_RC(raw_offer(cx, a.port, sb, &reused), 0);
    CHECK(reused); /* B's ticket on A */
    CHECK_RC(raw_offer(cx, c.port, sa, &reused), 0);
    CHECK(!reused); /* another key: a full handshake */
    CHECK_RC(raw_offer(cx, d.port, sa, &reused), 0);
    CHECK(!reused); /* no key given: its own random one */
    /* Tickets are the only mechanism: nothing cached on the servers. */
    for (int i = 0; i < started; i++)
        CHECK(server_cached_sessions(all[i]->ctx) == 0);
out:
    SSL_SESSION_free(sa);
    SSL_SESSION_free(sb);
    SSL_CTX_free(cx);
    for (int i = 0; i < started; i++) {
        int rc2 = srv_stop(all[i]);
        if (rc == 0)
            rc = rc2;
    }
    return rc;
}

static void test_tls_tickets_resume_across_contexts_sharing_a_key(void **state) {
    (void)state;
    static const int versions[] = {0, TLS1_2_VERSION};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        corio_test_run(tickets_main, (void *)&versions[i]);
}

/* Tickets are the only mechanism of CORIO_TLS_RESUME_TICKETS: a TLS 1.2
 * client that does not take tickets gets no session id to come back with
 * (OpenSSL's default would have cached its session on the server). */
static int tickets_no_cache_main(void *arg) {
    (void)arg;
    srv a;
    SSL_CTX *cx = NULL;
    raw_conn r = {0};
    int rc = res_srv_start(&a, (corio_tls_server_opts){.resumption = CORIO_TLS_RESUME_TICKETS});
    if (rc)
        return rc;
    cx = raw_cx(TLS1_2_VERSION, true);
    CHECK(cx != NULL);
    CHECK_RC(raw_exchange(&r, cx, a.port, NULL), 0);
    CHECK(!r.reused && strcmp(r.version, "TLSv1.2") == 0);
    CHECK(!SSL_SESSION_is_resumable(r.got));
    bool reused = true;
    CHECK_RC(raw_offer(cx, a.port, r.got, &reused), 0);
    CHECK(!reused);
    CHECK(server_cached_sessions(a.ctx) == 0);
out:
    SSL_SESSION_free(r.got);
    SSL_CTX_free(cx);
    int rc2 = srv_stop(&a);
    return rc ? rc : rc2;
}

static void test_tls_tickets_keep_no_server_cache(void **state) {
    (void)state;
    corio_test_run(tickets_no_cache_main, NULL);
}

/* CORIO_TLS_RESUME_OFF, TLS 1.3 and 1.2 (clients that take tickets, and
 * TLS 1.2 ones that do not): no ticket, no session id, nothing resumable;
 * the session offered anyway is not taken, every connection a full
 * handshake.  A ticket key given is ignored. */
static int off_main(void *arg) {
    (void)arg;
    srv a;
    SSL_CTX *cx = NULL;
    raw_conn r = {0};
    unsigned char key[CORIO_TLS_TICKET_KEY_SIZE];
    int rc = corio_tls_ticket_key_new(key);
    if (rc)
        return rc;
    rc = res_srv_start(
        &a, (corio_tls_server_opts){.resumption = CORIO_TLS_RESUME_OFF, .ticket_key = key});
    if (rc)
        return rc;
    static const struct {
        int max_version;
        bool no_ticket;
        const char *version;
    } clients[] = {{0, false, "TLSv1.3"},
                   {TLS1_2_VERSION, false, "TLSv1.2"},
                   {TLS1_2_VERSION, true, "TLSv1.2"}};
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
        cx = raw_cx(clients[i].max_version, clients[i].no_ticket);
        CHECK(cx != NULL);
        CHECK_RC(raw_exchange(&r, cx, a.port, NULL), 0);
        CHECK(!r.reused && strcmp(r.version, clients[i].version) == 0);
        CHECK(!SSL_SESSION_is_resumable(r.got));
        for (int k = 0; k < 3; k++) {
            bool reused = true;
            CHECK_RC(raw_offer(cx, a.port, r.got, &reused), 0);
            CHECK(!reused);
        }
        SSL_SESSION_free(r.got);
        r.got = NULL;
        SSL_CTX_free(cx);
        cx = NULL;
    }
    CHECK(server_cached_sessions(a.ctx) == 0);
out:
    SSL_SESSION_free(r.got);
    SSL_CTX_free(cx);
    int rc2 = srv_stop(&a);
    return rc ? rc : rc2;
}

static void test_tls_resumption_off_issues_nothing(void **state) {
    (void)state;
    corio_test_run(off_main, NULL);
}

/* CORIO_TLS_RESUME_CACHE, TLS 1.3 and 1.2: a second connection to the same
 * context resumes from the server's cache (the session is cached there);
 * another context made with the same ticket key does not know it (the
 * cache is per context; the key is ignored). */
static int cache_main(void *arg) {
    int max_version = *(const int *)arg;
    srv a, b;
    int started = 0;
    SSL_CTX *cx = NULL;
    SSL_SESSION *sa = NULL;
    int rc = 0;
    unsigned char key[CORIO_TLS_TICKET_KEY_SIZE];
    CHECK_RC(corio_tls_ticket_key_new(key), 0);
    CHECK_RC(res_srv_start(&a, (corio_tls_server_opts){.resumption = CORIO_TLS_RESUME_CACHE,
                                                       .ticket_key = key}),
             0);
    started++;
    CHECK_RC(res_srv_start(&b, (corio_tls_server_opts){.resumption = CORIO_TLS_RESUME_CACHE,
                                                       .ticket_key = key}),
             0);
    started++;
    cx = raw_cx(max_version, false);
    CHECK(cx != NULL);
    CHECK_RC(raw_new_session(cx, a.port, &sa), 0);
    CHECK(server_cached_sessions(a.ctx) >= 1);
    bool reused = false;
    for (int k = 0; k < 3; k++) {
        CHECK_RC(raw_offer(cx, a.port, sa, &reused), 0);
        CHECK(reused);
    }
    CHECK_RC(raw_offer(cx, b.port, sa, &reused), 0);
    CHECK(!reused);
out:
    SSL_SESSION_free(sa);
    SSL_CTX_free(cx);
    if (started > 1) {
        int rc2 = srv_stop(&b);
        rc = rc ? rc : rc2;
    }
    if (started > 0) {
        int rc2 = srv_stop(&a);
        rc = rc ? rc : rc2;
    }
    return rc;
}

static void test_tls_cache_resumes_on_the_same_context(void **state) {
    (void)state;
    static const int versions[] = {0, TLS1_2_VERSION};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        corio_test_run(cache_main, (void *)&versions[i]);
}

/* corio_tls_ctx_reload keeps the ticket key (the context's own random one
 * here): tickets issued before a reload resume after it, twice over, TLS
 * 1.3 and 1.2; a failed reload changes nothing either. */
static int reload_tickets_main(void *arg) {
    (void)arg;
    srv a;
    SSL_CTX *cx13 = NULL, *cx12 = NULL;
    SSL_SESSION *s13 = NULL, *s12 = NULL;
    int rc = res_srv_start(&a, (corio_tls_server_opts){0});
    if (rc)
        return rc;
    cx13 = raw_cx(0, false);
    cx12 = raw_cx(TLS1_2_VERSION, false);
    CHECK(cx13 && cx12);
    CHECK_RC(raw_new_session(cx13, a.port, &s13), 0);
    CHECK_RC(raw_new_session(cx12, a.port, &s12), 0);
    SSL_CTX *before = a.ctx->current;
    CHECK_RC(corio_tls_ctx_reload(a.ctx, pki.b_cert, pki.b_key), 0);
    CHECK(a.ctx->current != before); /* a new SSL_CTX */
    bool reused = false;
    CHECK_RC(raw_offer(cx13, a.port, s13, &reused), 0);
    CHECK(reused);
    CHECK_RC(raw_offer(cx12, a.port, s12, &reused), 0);
    CHECK(reused);
    CHECK_RC(corio_tls_ctx_reload(a.ctx, pki.a_cert, pki.a_key), 0);
    CHECK_RC(corio_tls_ctx_reload(a.ctx, pki.bad, pki.a_key), CORIO_EINVAL);
    CHECK_RC(raw_offer(cx13, a.port, s13, &reused), 0);
    CHECK(reused);
    CHECK_RC(raw_offer(cx12, a.port, s12, &reused), 0);
    CHECK(reused);
out:
    SSL_SESSION_free(s13);
    SSL_SESSION_free(s12);
    SSL_CTX_free(cx13);
    SSL_CTX_free(cx12);
    int rc2 = srv_stop(&a);
    return rc ? rc : rc2;
}

static void test_tls_reload_keeps_tickets_valid(void **state) {
    (void)state;
    corio_test_run(reload_tickets_main, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_echo_1mib_random_write_sizes),
        cmocka_unit_test(test_tls_every_read_call_works),
        cmocka_unit_test(test_tls_close_sends_close_notify),
        cmocka_unit_test(test_tls_unread_input_stays_bounded),
        cmocka_unit_test(test_tls_ticket_key_new_fills_80_random_bytes),
        cmocka_unit_test(test_tls_unknown_resumption_refused),
        cmocka_unit_test(test_tls_tickets_resume_across_contexts_sharing_a_key),
        cmocka_unit_test(test_tls_tickets_keep_no_server_cache),
        cmocka_unit_test(test_tls_resumption_off_issues_nothing),
        cmocka_unit_test(test_tls_cache_resumes_on_the_same_context),
        cmocka_unit_test(test_tls_reload_keeps_tickets_valid),
    };
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
