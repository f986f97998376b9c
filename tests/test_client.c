/* The client side of streams (framework/net/client.c) and serving on a Unix
 * socket: corio_connect's error contract (a name that cannot resolve, a
 * refused port, a connect that never completes) and corio_connect_unix,
 * all without leaving loopback. */
#include "corio_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* A TCP socket on 127.0.0.1 with a port of its own; listening with `backlog`
 * if backlog >= 0, else only bound (a connect to it is refused).  Returns the
 * fd, its port in *port. */
static int loopback_socket(int backlog, uint16_t *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0 || (backlog >= 0 && listen(fd, backlog)))
        fail_msg("loopback socket: %s", strerror(errno));
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- a name that cannot resolve -------------------------------------------------------- */

typedef struct notfound_state {
    int malformed_rc[2], invalid_rc;
    bool out_reset;
} notfound_state;

static int notfound_main(void *arg) {
    notfound_state *st = arg;
    char long_label[80];
    memset(long_label, 'a', 64); /* a label is at most 63 bytes */
    strcpy(long_label + 64, ".invalid");
    const char *malformed[2] = {"corio..invalid", long_label};
    for (int i = 0; i < 2; i++) {
        corio_stream *s = NULL;
        st->malformed_rc[i] = corio_connect(&s, malformed[i], 80, 5000);
        if (s)
            corio_stream_close(s);
    }
    corio_stream *s = (corio_stream *)st; /* must be reset */
    st->invalid_rc = corio_connect(&s, "corio-test.invalid", 80, 5000);
    st->out_reset = s == NULL;
    if (s && s != (corio_stream *)st)
        corio_stream_close(s);
    return 0;
}

/* Names that glibc refuses before asking any server (an empty label, a
 * label over 63 bytes) are ENOTFOUND on or off line.  A well-formed name
 * under .invalid (RFC 6761: never resolves) is ENOTFOUND from a resolver
 * that answers; with none reachable getaddrinfo says "try again", which the
 * contract allows as "another UV_EAI_* code".  Neither waits for the
 * connect's 5 s bound. */
static void test_connect_to_a_name_that_cannot_resolve_fails_with_enotfound(void **state) {
    (void)state;
    notfound_state st = {0};
    corio_test_run(notfound_main, &st);
    assert_int_equal(st.malformed_rc[0], CORIO_ENOTFOUND);
    assert_int_equal(st.malformed_rc[1], CORIO_ENOTFOUND);
    if (st.invalid_rc != CORIO_ENOTFOUND && st.invalid_rc != UV_EAI_AGAIN)
        fail_msg("corio-test.invalid: %s (%d)", corio_err_name(st.invalid_rc), st.invalid_rc);
    assert_true(st.out_reset);
}

/* ---- a port nobody listens on -------------------------------------------------------------- */

static int refused_main(void *arg) {
    int *rc = arg;
    uint16_t port;
    int fd = loopback_socket(-1, &port); /* bound, so no one else takes the port; not listening */
    corio_stream *s = (corio_stream *)arg;
    rc[0] = corio_connect(&s, "127.0.0.1", port, 5000);
    rc[1] = s == NULL;
    if (s && s != (corio_stream *)arg)
        corio_stream_close(s);
    close(fd);
    return 0;
}

static void test_connect_to_a_closed_port_is_refused(void **state) {
    (void)state;
    int rc[2] = {0, 0};
    corio_test_run(refused_main, rc);
    assert_int_equal(rc[0], CORIO_ECONNREFUSED);
    assert_true(rc[1]);
}

/* ---- a connect that never completes -----------------------------------------------------------
 */

typedef struct timeout_state {
    int first_rc, timeout_rc, scope_rc;
    bool out_reset;
} timeout_state;

/* A listening socket whose accept queue is full: listen(fd, 0) queues one
 * connection nobody accepts, and Linux drops every later SYN, so a second
 * connect waits for SYN-ACKs that never come — on loopback, with no timing
 * to race. */
static int timeout_main(void *arg) {
    timeout_state *st = arg;
    uint16_t port;
    int fd = loopback_socket(0, &port);
    corio_stream *queued = NULL, *s = NULL;
    st->first_rc = corio_connect(&queued, "127.0.0.1", port, 5000);
    /* The connect's own bound. */
    s = (corio_stream *)st;
    st->timeout_rc = corio_connect(&s, "127.0.0.1", port, 50);
    st->out_reset = s == NULL;
    if (s && s != (corio_stream *)st)
        corio_stream_close(s);
    /* A deadline of the task's. */
    s = NULL;
    CORIO_WITH(corio_timeout_scope(50)) {
        st->scope_rc = corio_connect(&s, "127.0.0.1", port, 0);
    }
    if (s)
        corio_stream_close(s);
    if (queued)
        corio_stream_close(queued);
    close(fd);
    return 0;
}

static void test_connect_that_never_completes_times_out(void **state) {
    (void)state;
    timeout_state st = {0};
    corio_test_run(timeout_main, &st);
    assert_int_equal(st.first_rc, 0);
    assert_int_equal(st.timeout_rc, CORIO_ETIMEDOUT);
    assert_true(st.out_reset);
    assert_int_equal(st.scope_rc, CORIO_ETIMEDOUT);
}

/* ---- serving on a Unix socket, corio_connect_unix
 * ------------------------------------------------ */

typedef struct unix_state {
    char path[108];
    char local[128], peer[128];
    int local_rc, in_use_rc, port, connect_rc, echo_ok, peer_rc, short_rc, missing_rc;
} unix_state;

/* Records the connection's own address, then echoes one line. */
static int unix_handler(corio_stream *s, void *arg) {
    unix_state *st = arg;
    st->local_rc = corio_stream_local_name(s, st->local, sizeof st->local);
    char line[64];
    size_t n;
    int rc = corio_stream_read_until(s, "\n", 1, line, sizeof line, &n);
    return rc ? rc : corio_stream_write(s, line, n);
}

static int unix_main(void *arg) {
    unix_state *st = arg;
    corio_server_opts o = {.unix_path = st->path};
    corio_server *srv;
    int rc = corio_server_start(&srv, &o, unix_handler, st);
    if (rc)
        return rc;
    st->port = corio_server_port(srv);
    /* The path is taken while the server listens. */
    corio_server *second = NULL;
    st->in_use_rc = corio_server_start(&second, &o, unix_handler, st);
    if (st->in_use_rc == 0)
        corio_server_shutdown(second, 0);
    corio_stream *c = NULL;
    st->connect_rc = corio_connect_unix(&c, st->path);
    if (st->connect_rc == 0) {
        char back[16];
        st->echo_ok = corio_stream_write(c, "over unix\n", 10) == 0 &&
                      corio_stream_read_exactly(c, back, 10) == 0 &&
                      memcmp(back, "over unix\n", 10) == 0;
        st->peer_rc = corio_stream_peer_name(c, st->peer, sizeof st->peer);
        char tiny[4];
        st->short_rc = corio_stream_peer_name(c, tiny, sizeof tiny);
        corio_stream_close(c);
    }
    /* A path nobody listens on. */
    char missing[128];
    snprintf(missing, sizeof missing, "%s.missing", st->path);
    c = NULL;
    st->missing_rc = corio_connect_unix(&c, missing);
    if (c)
        corio_stream_close(c);
    return corio_server_shutdown(srv, 1000);
}

static void test_unix_socket_server_and_connect_unix(void **state) {
    (void)state;
    unix_state st = {0};
    snprintf(st.path, sizeof st.path, "/tmp/corio_test_unix_%d.sock", (int)getpid());
    unlink(st.path);
    corio_test_run(unix_main, &st);
    unlink(st.path);
    assert_true(st.port < 0); /* no TCP port */
    assert_int_equal(st.in_use_rc, CORIO_EADDRINUSE);
    assert_int_equal(st.connect_rc, 0);
    assert_true(st.echo_ok);
    assert_int_equal(st.local_rc, 0);
    assert_string_equal(st.local, st.path); /* the server side's address: the socket path */
    assert_int_equal(st.peer_rc, 0);
    assert_string_equal(st.peer, st.path); /* the client's peer: the same path */
    assert_int_equal(st.short_rc, CORIO_ERANGE);
    assert_int_equal(st.missing_rc, CORIO_ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_to_a_name_that_cannot_resolve_fails_with_enotfound),
        cmocka_unit_test(test_connect_to_a_closed_port_is_refused),
        cmocka_unit_test(test_connect_that_never_completes_times_out),
        cmocka_unit_test(test_unix_socket_server_and_connect_unix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
