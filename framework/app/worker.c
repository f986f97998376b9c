/* SPDX-License-Identifier: MIT */
/* A worker process: one corio loop, one server, signal handling through
 * libuv (see corio/app.h for what each signal does). */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app/runner.h"
#include "corio/corio.h"
#include "corio/log.h"
#include "http/metrics_internal.h"
#include "runtime/internal.h"

/* The admin listener: no cap on its connections (a cap would let idle ones
 * lock the probes out) but a short timeout for a request head; and what is
 * left of a drain for the requests on it once the main listener's
 * connections are done. */
#define ADMIN_HEADER_TIMEOUT_MS 5000
#define ADMIN_DRAIN_MS 1000

typedef struct worker {
    const corio_app *app;
    const corio__app_opts *opts;
    int listen_fd;
    int admin_fd;
    int ready_fd;
    bool supervised; /* forked by a supervisor: SIGUSR2 retires it */
    corio_event stop;
    corio_tls_ctx *tls;
    corio_http_server admin_http;
    int stop_signal; /* SIGTERM, SIGINT, or SIGUSR2 (retired by a SIGHUP roll) */
    uv_signal_t sig_term, sig_int, sig_hup, sig_usr1, sig_usr2;
    char error[240]; /* why it cannot serve: the first failure, for the supervisor */
} worker;

/* Logs why the worker cannot serve, and keeps the first such reason: under a
 * supervisor, a worker that never became ready sends it through its ready
 * pipe (report_not_ready), so that a supervisor that gives up can say why. */
__attribute__((format(printf, 2, 3))) static void fail(worker *w, const char *fmt, ...) {
    char msg[sizeof w->error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    corio_log(CORIO_LOG_ERROR, "%s", msg);
    if (!w->error[0])
        memcpy(w->error, msg, sizeof msg);
}

/* The ready pipe's other message: 'e' and the reason, in one write (under
 * PIPE_BUF, so it arrives whole), instead of the 'r' of a worker that serves. */
static void report_not_ready(worker *w, int rc) {
    if (!w->error[0])
        snprintf(w->error, sizeof w->error, "worker failed: %s",
                 rc < 0 ? corio_strerror(rc) : "ended before serving");
    char msg[sizeof w->error + 1];
    int len = snprintf(msg, sizeof msg, "e%s", w->error);
    ssize_t n = write(w->ready_fd, msg, (size_t)len);
    (void)n; /* a supervisor that is gone cannot be told */
    close(w->ready_fd);
    w->ready_fd = -1;
}

/* SIGHUP in a single process: new connections get the certificate now on
 * disk; if it cannot be loaded the old one stays (tls_ctx_reload). */
static void reload_tls(worker *w) {
    if (!w->tls) {
        corio_log(CORIO_LOG_INFO, "SIGHUP: nothing to reload (no TLS configured)");
        return;
    }
    int rc = corio_tls_ctx_reload(w->tls, w->opts->tls_cert, w->opts->tls_key);
    if (rc)
        corio_log(CORIO_LOG_ERROR,
                  "SIGHUP: cannot reload %s / %s (%s); keeping the old certificate",
                  w->opts->tls_cert, w->opts->tls_key, corio_strerror(rc));
    else
        corio_log(CORIO_LOG_INFO, "SIGHUP: TLS certificate reloaded from %s", w->opts->tls_cert);
}

/* Starts the drain; the first signal names it. */
static void stop(worker *w, int signum) {
    if (!w->stop_signal)
        w->stop_signal = signum;
    corio_event_set(&w->stop);
}

/* The signals the runner's worker watches. */
static const int RUNNER_SIGNALS[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};

static void runner_signals(sigset_t *set) {
    sigemptyset(set);
    for (size_t i = 0; i < sizeof RUNNER_SIGNALS / sizeof *RUNNER_SIGNALS; i++)
        sigaddset(set, RUNNER_SIGNALS[i]);
}

static void on_signal(uv_signal_t *h, int signum) {
    worker *w = h->data;
    switch (signum) {
    case SIGTERM:
    case SIGINT:
        /* The server stops, even if this worker was retired first: its
         * admin listener, maybe the last one open, says so from now on. */
        corio__health_stopping();
        stop(w, signum);
        break;
    case SIGUSR2: /* retired by a roll: this worker drains, the server does not */
        corio__health_retired();
        stop(w, signum);
        break;
    case SIGHUP:
        reload_tls(w);
        break;
    case SIGUSR1:
        corio_tasks_dump(STDERR_FILENO);
        break;
    }
}

static int watch(worker *w, uv_signal_t *h, int signum) {
    int rc = uv_signal_init(corio_uv_loop(), h);
    if (rc)
        return rc;
    h->data = w;
    return uv_signal_start(h, on_signal, signum);
}

static void unwatch(uv_signal_t *h) {
    if (h->data)
        uv_close((uv_handle_t *)h, NULL);
}

/* The admin listener (--admin): the supervisor's socket for this slot, or
 * one of our own; plain HTTP serving app->admin_router. */
static int start_admin(worker *w, corio_server **out) {
    const corio__app_opts *o = w->opts;
    uint16_t port = o->admin_port;
    int fd = w->admin_fd, rc = 0;
    if (fd < 0) {
        rc = corio__admin_check(o);
        if (rc == 0 && (fd = corio__admin_socket(o, &port)) < 0)
            rc = fd;
        if (rc == 0 && (rc = corio__listen_exclusive(o->admin_host, o->admin_port, &fd, 1)))
            close(fd);
    }
    if (rc == 0) {
        w->admin_http = (corio_http_server){
            .router = w->app->admin_router,
            .opts = {.header_timeout_ms = ADMIN_HEADER_TIMEOUT_MS},
        };
        corio_server_opts so = {.inherited_fd = fd, .reuseport = true};
        rc = corio_server_start(out, &so, corio_http_serve, &w->admin_http);
    }
    char addr[80];
    if (rc) {
        corio__address(o->admin_host, o->admin_port, addr, sizeof addr);
        fail(w, "cannot listen on %s (admin): %s", addr, corio__admin_error(rc));
    } else if (w->admin_fd < 0) {
        corio__address(o->admin_host, corio_server_port(*out), addr, sizeof addr);
        corio_log(CORIO_LOG_INFO, "admin listener on %s", addr);
    }
    return rc;
}

static int worker_main(void *arg) {
    worker *w = arg;
    const corio__app_opts *o = w->opts;
    corio_event_init(&w->stop);
    int rc = watch(w, &w->sig_term, SIGTERM);
    if (rc == 0)
        rc = watch(w, &w->sig_int, SIGINT);
    if (rc == 0)
        rc = watch(w, &w->sig_hup, SIGHUP);
    if (rc == 0)
        rc = watch(w, &w->sig_usr1, SIGUSR1);
    if (rc == 0 && w->supervised)
        rc = watch(w, &w->sig_usr2, SIGUSR2);
    if (rc)
        fail(w, "cannot watch signals: %s", corio_strerror(rc));
    if (rc == 0 && o->tls_cert) {
        corio_tls_server_opts to = {.cert_file = o->tls_cert,
                                    .key_file = o->tls_key,
                                    .alpn = w->app->tls_alpn,
                                    .resumption = o->tls_resumption,
                                    .ticket_key =
                                        o->tls_ticket_key_set ? o->tls_ticket_key : NULL};
        rc = corio_tls_ctx_new_server(&w->tls, &to);
        if (rc)
            fail(w, "cannot load the TLS certificate %s / key %s: %s", o->tls_cert, o->tls_key,
                 corio_strerror(rc));
    }
    corio_server *srv = NULL, *admin = NULL;
    if (rc == 0) {
        corio_server_opts so = {
            .tls = w->tls,
            .host = o->host,
            .port = o->port,
            .unix_path = o->unix_path,
            .inherited_fd = w->listen_fd >= 0 ? w->listen_fd : o->inherited_fd,
            .reuseport = true,
            .max_conns = o->max_conns,
            .stream = {.read_timeout_ms = o->read_timeout_ms,
                       .write_timeout_ms = o->write_timeout_ms},
        };
        rc = w->listen_fd < 0 ? corio__listen_check(o) : 0;
        /* A TCP socket of our own rather than the server's, to check once
         * it listens that no other server does (corio__listen_exclusive). */
        if (rc == 0 && so.inherited_fd < 0 && !o->unix_path) {
            uint16_t port = o->port;
            int fd = corio__listen_socket(o, &port);
            rc =
                fd < 0 ? fd : corio__listen_exclusive(o->host, o->reuse_port ? 0 : o->port, &fd, 1);
            if (rc && fd >= 0)
                close(fd);
            so.inherited_fd = rc ? -1 : fd;
        }
        if (rc == 0)
            rc = corio_server_start(&srv, &so, w->app->handler, w->app->arg);
        char why[160];
        if (rc && o->unix_path)
            fail(w, "cannot listen on unix:%s: %s", o->unix_path,
                 corio__listen_error(o, rc, why, sizeof why));
        else if (rc)
            fail(w, "cannot listen on %s:%u: %s", o->host, o->port,
                 corio__listen_error(o, rc, why, sizeof why));
    }
    if (rc == 0 && o->admin && (rc = start_admin(w, &admin)) != 0) {
        corio_server_shutdown(srv, 0);
        srv = NULL;
    }
    if (rc == 0) {
        if (w->listen_fd < 0 && o->inherited_fd >= 0) {
            corio_log(CORIO_LOG_INFO, "listening on inherited fd %d (port %d)", o->inherited_fd,
                      corio_server_port(srv));
        } else if (w->listen_fd < 0) {
            if (o->unix_path)
                corio_log(CORIO_LOG_INFO, "listening on unix:%s", o->unix_path);
            else
                corio_log(CORIO_LOG_INFO, "listening on %s:%d", o->host, corio_server_port(srv));
        }
        if (w->ready_fd >= 0) {
            ssize_t n = write(w->ready_fd, "r", 1);
            (void)n;
            close(w->ready_fd);
            w->ready_fd = -1;
        }
        corio__notify("READY=1"); /* a worker under a supervisor has no NOTIFY_SOCKET */
        rc = corio_event_wait(&w->stop);
        /* The admin listener answers on through the drain: /readyz 503 if
         * the server is stopping, 200 if this worker was only retired by a
         * roll (its replacement serves beside it on the same socket). */
        bool retired = w->stop_signal == SIGUSR2;
        corio__notify("STOPPING=1");
        corio_log(CORIO_LOG_INFO, "%s: draining %zu connection(s), up to %llu ms",
                  retired                    ? "replaced by a new worker"
                  : w->stop_signal == SIGINT ? "SIGINT"
                                             : "SIGTERM",
                  corio_server_conns(srv), (unsigned long long)o->drain_timeout_ms);
        int drc = corio_server_shutdown(srv, o->drain_timeout_ms);
        if (drc == CORIO_ETIMEDOUT)
            corio_log(CORIO_LOG_WARN, "drain deadline passed: remaining connections cancelled");
        if (admin)
            corio_server_shutdown(admin, ADMIN_DRAIN_MS);
        rc = rc == CORIO_ECANCELED ? 0 : rc;
    }
    corio_tls_ctx_free(w->tls); /* refcounted: connections keep theirs */
    /* From here the process is on its way out: a second SIGTERM, or the
     * supervisor's SIGUSR1 to every child, must not kill it mid-teardown
     * (their default action) and spoil the exit code.  Closing the last
     * watcher of a signal makes libuv restore SIG_DFL, so the signals stay
     * blocked across the closes (in this thread; the pool's threads block
     * them for good, see start_thread_pool) and are ignored before they are
     * unblocked (a pending ignored signal is discarded). */
    sigset_t quiet, old;
    runner_signals(&quiet);
    pthread_sigmask(SIG_BLOCK, &quiet, &old);
    unwatch(&w->sig_term);
    unwatch(&w->sig_int);
    unwatch(&w->sig_hup);
    unwatch(&w->sig_usr1);
    unwatch(&w->sig_usr2);
    for (size_t i = 0; i < sizeof RUNNER_SIGNALS / sizeof *RUNNER_SIGNALS; i++)
        signal(RUNNER_SIGNALS[i], SIG_IGN);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static void no_work(uv_work_t *req) {
    (void)req;
}

/* libuv's thread pool (name lookups, file reads, corio_run_blocking) is
 * the process's, its threads made on first use with the signal mask of the
 * thread that makes them.  Made here, with the runner's signals blocked,
 * they never take one: a watched signal goes to the loop's thread (libuv's
 * handler only writes to the loop, from any thread), and at teardown, once
 * libuv has restored a signal's default action, no pool thread can be the
 * one it kills.  (Threads the application starts itself should block them
 * too; a pool its setup already started is not changed.) */
static void start_thread_pool(void) {
    sigset_t quiet, old;
    runner_signals(&quiet);
    pthread_sigmask(SIG_BLOCK, &quiet, &old);
    uv_loop_t loop;
    uv_work_t req;
    if (uv_loop_init(&loop) == 0) {
        if (uv_queue_work(&loop, &req, no_work, NULL) == 0)
            uv_run(&loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&loop);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

int corio__worker_run(const corio_app *app, const corio__app_opts *o, int listen_fd, int admin_fd,
                      int ready_fd) {
    worker w;
    memset(&w, 0, sizeof w);
    w.app = app;
    w.opts = o;
    w.listen_fd = listen_fd;
    w.admin_fd = admin_fd;
    w.ready_fd = ready_fd;
    w.supervised = ready_fd >= 0;
    /* The connection stack size is the loop's default: only the default
     * size is pooled, and connections come and go (and resume) often. */
    corio_run_opts ro = {.stack_size = app->conn_stack_size};
    start_thread_pool();
    int rc = corio_run_ex(&ro, worker_main, &w);
    if (w.ready_fd >= 0)
        report_not_ready(&w, rc);
    if (rc < 0) {
        corio_log(CORIO_LOG_ERROR, "worker failed: %s", corio_strerror(rc));
        return 1;
    }
    return 0;
}
