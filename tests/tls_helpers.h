/* SPDX-License-Identifier: MIT */
/* Helpers for the TLS tests (test_tls.c, test_tls_handshake.c,
 * test_tls_ctx.c): a throwaway PKI made with the openssl command line in a
 * mkdtemp directory; real `openssl s_client` peers driven through pipes
 * (run on the thread pool, so the loop under test keeps serving); the
 * servers under test; and one test's set-up and teardown (tls_test).
 */
#ifndef CORIO_TLS_HELPERS_H
#define CORIO_TLS_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "corio_test.h"
#include "stream_helpers.h"

/* ---- the PKI ------------------------------------------------------------------------ */

/* Every file the tests use, under one temporary directory.  a and b are
 * server certificates for localhost and 127.0.0.1 from the trusted CA
 * (subjects CN=corio-a and CN=corio-b); rogue is one for the same names from
 * a CA nobody trusts; bad is a file that is not PEM. */
typedef struct tls_pki {
    char dir[64];
    char ca[128];
    char a_cert[128], a_key[128];
    char b_cert[128], b_key[128];
    char rogue_cert[128], rogue_key[128];
    char bad[128];
} tls_pki;

static const char pki_cnf[] = "[req]\n"
                              "distinguished_name = dn\n"
                              "prompt = no\n"
                              "[dn]\n"
                              "CN = unused\n"
                              "[v3_ca]\n"
                              "basicConstraints = critical,CA:TRUE\n"
                              "keyUsage = critical,keyCertSign,cRLSign\n"
                              "subjectKeyIdentifier = hash\n"
                              "[v3_leaf]\n"
                              "basicConstraints = critical,CA:FALSE\n"
                              "keyUsage = critical,digitalSignature\n"
                              "extendedKeyUsage = serverAuth\n"
                              "subjectAltName = DNS:localhost,IP:127.0.0.1\n";

/* Runs a shell command in the PKI directory, its output appended to
 * openssl.log there.  Returns 0 on success. */
static inline int pki_sh(const tls_pki *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int pki_sh(const tls_pki *p, const char *fmt, ...) {
    char cmd[1024], line[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "cd '%s' && (%s) >>openssl.log 2>&1", p->dir, cmd);
    int st = system(line);
    if (st != 0) {
        fprintf(stderr, "pki: failed: %s\n", cmd);
        snprintf(line, sizeof line, "cat '%s/openssl.log' >&2", p->dir);
        if (system(line) != 0)
            fprintf(stderr, "pki: no log\n");
    }
    return st;
}

static inline int pki_ca(const tls_pki *p, const char *name, const char *cn) {
    return pki_sh(p,
                  "openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                  "-keyout %s.key -out %s.pem -days 2 -config pki.cnf -extensions v3_ca "
                  "-subj '/CN=%s'",
                  name, name, cn);
}

static inline int pki_leaf(const tls_pki *p, const char *name, const char *ca, const char *serial) {
    return pki_sh(p,
                  "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
                  "-keyout %s.key -out %s.csr -subj '/CN=%s' -config pki.cnf && "
                  "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -set_serial %s -days 2 "
                  "-extfile pki.cnf -extensions v3_leaf -out %s.pem",
                  name, name, name, name, ca, ca, serial, name);
}

static inline int pki_make(tls_pki *p) {
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "/tmp/corio-tls-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    char path[160];
    snprintf(path, sizeof path, "%s/pki.cnf", p->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(pki_cnf, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/bad.pem", p->dir);
    f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    if (pki_ca(p, "ca", "corio test CA") || pki_ca(p, "rogue-ca", "corio rogue CA") ||
        pki_leaf(p, "corio-a", "ca", "0xa1") || pki_leaf(p, "corio-b", "ca", "0xb2") ||
        pki_leaf(p, "corio-rogue", "rogue-ca", "0xc3"))
        return -1;
    snprintf(p->ca, sizeof p->ca, "%s/ca.pem", p->dir);
    snprintf(p->a_cert, sizeof p->a_cert, "%s/corio-a.pem", p->dir);
    snprintf(p->a_key, sizeof p->a_key, "%s/corio-a.key", p->dir);
    snprintf(p->b_cert, sizeof p->b_cert, "%s/corio-b.pem", p->dir);
    snprintf(p->b_key, sizeof p->b_key, "%s/corio-b.key", p->dir);
    snprintf(p->rogue_cert, sizeof p->rogue_cert, "%s/corio-rogue.pem", p->dir);
    snprintf(p->rogue_key, sizeof p->rogue_key, "%s/corio-rogue.key", p->dir);
    snprintf(p->bad, sizeof p->bad, "%s/bad.pem", p->dir);
    return 0;
}

static inline void pki_remove(tls_pki *p) {
    if (!p->dir[0] || strncmp(p->dir, "/tmp/corio-tls-", 15) != 0)
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pki: could not remove %s\n", p->dir);
    p->dir[0] = '\0';
}

/* ---- openssl s_client ------------------------------------------------------------------ */

/* One step of a dialogue: wait until `wait` shows in the output (NULL: do
 * not wait), then write `send` to s_client's stdin (NULL: nothing). */
typedef struct sc_step {
    const char *wait;
    const char *send;
} sc_step;

#define SCLIENT_LIMIT_MS 20000 /* the whole run; a peer still running then is killed */

typedef struct sclient {
    int port;
    const char *args[12]; /* after "s_client -connect 127.0.0.1:port"; NULL-terminated */
    sc_step steps[6];     /* ends at the first all-NULL step */
    char *out;            /* stdout and stderr, NUL-terminated (sc_out) */
    size_t len;
    int status;  /* exit status; -1 when it had to be killed */
    bool waited; /* every step's wait was satisfied */
} sclient;

/* The transcript of the last run (one s_client runs at a time); static
 * rather than in sclient so that sclient fits on a task's stack. */
static char sc_out[1 << 16];

static inline long long sc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads output until `text` appears (text NULL: until EOF) or the deadline.
 * Returns true if it was found (or EOF reached when text is NULL). */
static inline bool sc_read_until(sclient *c, int fd, const char *text, long long deadline) {
    for (;;) {
        if (text && strstr(c->out, text))
            return true;
        long long left = deadline - sc_now_ms();
        if (left <= 0)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        size_t room = sizeof sc_out - 1 - c->len;
        char sink[4096];
        ssize_t n = room ? read(fd, c->out + c->len, room) : read(fd, sink, sizeof sink);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return text == NULL; /* EOF */
        if (room) {
            c->len += (size_t)n;
            c->out[c->len] = '\0';
        }
    }
}

/* Runs the dialogue; a corio_task_fn for corio_run_blocking().  Returns 0
 * when the process was started (its status is in c->status), -1 if not. */
static inline int sclient_run(void *arg) {
    sclient *c = arg;
    int in[2], out[2];
    c->out = sc_out;
    c->len = 0;
    c->out[0] = '\0';
    c->status = -1;
    c->waited = true;
    if (pipe(in) != 0)
        return -1;
    if (pipe(out) != 0) {
        close(in[0]);
        close(in[1]);
        return -1;
    }
    for (int i = 0; i < 2; i++) { /* the child keeps only its dup2'ed copies */
        fcntl(in[i], F_SETFD, FD_CLOEXEC);
        fcntl(out[i], F_SETFD, FD_CLOEXEC);
    }
    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", c->port);
    const char *argv[20] = {"openssl", "s_client", "-connect", connect};
    int argc = 4;
    for (int i = 0; c->args[i] && argc < 19; i++)
        argv[argc++] = c->args[i];
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execvp("openssl", (char **)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return -1;
    }
    long long deadline = sc_now_ms() + SCLIENT_LIMIT_MS;
    for (int i = 0; i < 6 && (c->steps[i].wait || c->steps[i].send); i++) {
        if (c->steps[i].wait && !sc_read_until(c, out[0], c->steps[i].wait, deadline)) {
            c->waited = false;
            break;
        }
        if (c->steps[i].send &&
            write(in[1], c->steps[i].send, strlen(c->steps[i].send)) < 0) /* EPIPE: it left */
            break;
    }
    close(in[1]); /* s_client ends on stdin EOF (no -ign_eof) */
    bool ended = sc_read_until(c, out[0], NULL, deadline);
    close(out[0]);
    if (!ended)
        kill(pid, SIGKILL); /* our own child, stuck: the test then fails */
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    c->status = ended && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return 0;
}

/* ---- checks inside tasks ---------------------------------------------------------------- */

/* No cmocka assert inside a task (it would longjmp off the task's stack):
 * these report, set `rc` to CORIO_EFAILED and leave through the label
 * `out`, where the test undoes its set-up. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            rc = CORIO_EFAILED;                                                                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

#define CHECK_RC(expr, want)                                                                       \
    do {                                                                                           \
        int got_ = (expr);                                                                         \
        if (got_ != (want)) {                                                                      \
            fprintf(stderr, "%s:%d: %s: got %s (%d), want %s (%d)\n", __FILE__, __LINE__, #expr,   \
                    corio_err_name(got_), got_, corio_err_name(want), (int)(want));                \
            rc = CORIO_EFAILED;                                                                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* An s_client transcript must (or must not) contain text. */
#define CHECK_OUT(c, text, present)                                                                \
    do {                                                                                           \
        if ((strstr((c)->out, (text)) != NULL) != (present)) {                                     \
            fprintf(stderr, "%s:%d: s_client output %s \"%s\":\n%s\n", __FILE__, __LINE__,         \
                    (present) ? "lacks" : "has", (text), (c)->out);                                \
            rc = CORIO_EFAILED;                                                                    \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* ---- servers under test ------------------------------------------------------------------ */

/* The PKI of the program, made by tls_group_setup. */
static tls_pki pki;

typedef enum srv_mode {
    SRV_ECHO,  /* echoes bytes; half-closes after the peer's EOF */
    SRV_LINES, /* answers each line with "echo:" + the line, for s_client */
    SRV_BYE,   /* writes "bye\n" and returns (the server closes) */
    SRV_SINK,  /* never reads; waits for sink_go */
} srv_mode;

typedef struct srv {
    srv_mode mode;
    corio_server *server;
    corio_tls_ctx *ctx; /* NULL: a plain server */
    int port;
    int handled; /* handler runs: handshakes that succeeded */
    int last_rc; /* the last handler's result */
    char alpn[32];
    char version[16];
    corio_stream *sink; /* SRV_SINK: the connection while its handler waits */
    corio_event sink_go;
} srv;

static inline int echo_lines(corio_stream *s) {
    char line[1024];
    memcpy(line, "echo:", 5);
    for (;;) {
        size_t n;
        int rc = corio_stream_read_until(s, "\n", 1, line + 5, sizeof line - 5, &n);
        if (rc == CORIO_EOF)
            return 0;
        if (rc < 0)
            return rc;
        rc = corio_stream_write(s, line, n + 5);
        if (rc < 0)
            return rc;
    }
}

/* The connection handler of every server under test (a corio_conn_fn). */
static inline int srv_handler(corio_stream *s, void *arg) {
    srv *v = arg;
    v->handled++;
    const char *alpn = corio_stream_alpn(s), *version = corio_stream_tls_version(s);
    snprintf(v->alpn, sizeof v->alpn, "%s", alpn ? alpn : "(none)");
    snprintf(v->version, sizeof v->version, "%s", version ? version : "(plain)");
    int rc = 0;
    switch (v->mode) {
    case SRV_ECHO:
        rc = echo_until_eof(s);
        break;
    case SRV_LINES:
        rc = echo_lines(s);
        break;
    case SRV_BYE:
        rc = corio_stream_write(s, "bye\n", 4);
        break;
    case SRV_SINK:
        v->sink = s;
        rc = corio_event_wait(&v->sink_go);
        v->sink = NULL;
        break;
    }
    v->last_rc = rc;
    return rc;
}

typedef struct srv_cfg {
    srv_mode mode;
    bool plain;             /* no TLS at all */
    const char *cert, *key; /* NULL: certificate a */
    const char *alpn;
    uint64_t handshake_ms;
} srv_cfg;

/* Starts a server on 127.0.0.1, port 0 (v->port: the one it got).  Returns
 * 0, or an error with nothing left running. */
static inline int srv_start(srv *v, srv_cfg cfg) {
    memset(v, 0, sizeof *v);
    v->mode = cfg.mode;
    corio_event_init(&v->sink_go);
    if (!cfg.plain) {
        corio_tls_server_opts to = {.cert_file = cfg.cert ? cfg.cert : pki.a_cert,
                                    .key_file = cfg.cert ? cfg.key : pki.a_key,
                                    .alpn = cfg.alpn,
                                    .handshake_timeout_ms = cfg.handshake_ms};
        int rc = corio_tls_ctx_new_server(&v->ctx, &to);
        if (rc)
            return rc;
    }
    corio_server_opts o = {.host = "127.0.0.1", .tls = v->ctx};
    int rc = corio_server_start(&v->server, &o, srv_handler, v);
    if (rc) {
        corio_tls_ctx_free(v->ctx);
        return rc;
    }
    v->port = corio_server_port(v->server);
    return 0;
}

/* Waits for the connections to end (their results are then in v), frees
 * the server and then its context.  Returns 0 if none had to be cancelled. */
static inline int srv_stop(srv *v) {
    corio_event_set(&v->sink_go);
    int rc = corio_server_shutdown(v->server, 5000);
    corio_tls_ctx_free(v->ctx);
    return rc;
}

/* A client context that trusts the test CA (or verifies nothing). */
static inline int client_ctx(corio_tls_ctx **out, const char *alpn, bool insecure) {
    corio_tls_client_opts o = {.ca_file = pki.ca, .alpn = alpn, .insecure_no_verify = insecure};
    return corio_tls_ctx_new_client(out, &o);
}

/* Runs an s_client dialogue on the thread pool while the loop serves. */
static inline int run_sclient(sclient *c) {
    corio_future *f;
    int rc = corio_run_blocking(&f, sclient_run, c);
    if (rc)
        return rc;
    rc = corio_await(f);
    corio_future_release(f);
    if (rc == 0 && !c->waited) {
        fprintf(stderr, "s_client dialogue stalled; output:\n%s\n", c->out);
        rc = CORIO_EFAILED;
    }
    return rc;
}

/* ---- one test's set-up ------------------------------------------------------------------ */

/* What a test sets up: the server under test (v), a corio client (cctx,
 * s) and an s_client peer (c).  tls_test_end undoes whatever was made. */
typedef struct tls_test {
    srv v;
    corio_tls_ctx *cctx;
    corio_stream *s;
    sclient c;
} tls_test;

/* Starts t's server; returns 0, or an error with nothing to undo. */
static inline int tls_test_start(tls_test *t, srv_cfg cfg) {
    t->cctx = NULL;
    t->s = NULL;
    memset(&t->c, 0, sizeof t->c);
    return srv_start(&t->v, cfg);
}

/* Connects t->s by TLS to host:port (5 s), through t->cctx: a client
 * context that trusts the test CA and offers `alpn`, made on the first call.
 * Returns corio_tls_connect's result (or client_ctx's). */
static inline int tls_test_connect(tls_test *t, const char *host, int port, const char *alpn) {
    int rc = t->cctx ? 0 : client_ctx(&t->cctx, alpn, false);
    return rc ? rc : corio_tls_connect(&t->s, host, (uint16_t)port, t->cctx, 5000);
}

/* Runs the s_client dialogue `c` against t's server; the transcript is then
 * t->c.out.  Returns run_sclient's result. */
static inline int tls_test_sclient(tls_test *t, sclient c) {
    t->c = c;
    t->c.port = t->v.port;
    return run_sclient(&t->c);
}

/* Closes t->s, frees t->cctx, stops the server (the connections' results
 * are then in t->v).  Returns rc, or if that is 0 srv_stop's result. */
static inline int tls_test_end(tls_test *t, int rc) {
    if (t->s)
        corio_stream_close(t->s);
    t->s = NULL;
    corio_tls_ctx_free(t->cctx);
    t->cctx = NULL;
    int rc2 = srv_stop(&t->v);
    return rc ? rc : rc2;
}

/* Not checked, in tls_test_end_expect. */
#define SRV_ANY INT_MIN

/* tls_test_end, then checks what the server saw: `handled` handler runs,
 * the last of which returned `last_rc` (either SRV_ANY: not checked).
 * Returns tls_test_end's result, or CORIO_EFAILED if that is 0 and the
 * server saw otherwise. */
static inline int tls_test_end_expect(tls_test *t, int rc, int handled, int last_rc) {
    rc = tls_test_end(t, rc);
    if (rc == 0 && ((handled != SRV_ANY && t->v.handled != handled) ||
                    (last_rc != SRV_ANY && t->v.last_rc != last_rc))) {
        fprintf(stderr, "server: handled %d, last_rc %d\n", t->v.handled, t->v.last_rc);
        rc = CORIO_EFAILED;
    }
    return rc;
}

/* ---- the group ---------------------------------------------------------------------------- */

static inline int tls_group_setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* s_client may leave before we write to it */
    if (pki_make(&pki) == 0)
        return 0;
    pki_remove(&pki);
    return -1;
}

static inline int tls_group_teardown(void **state) {
    (void)state;
    pki_remove(&pki);
    return 0;
}

#endif
