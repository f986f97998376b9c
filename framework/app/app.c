/* SPDX-License-Identifier: MIT */
/* corio_app_main: the command line, then one worker or a supervisor;
 * corio_http_app_main: the same serving an HTTP router (see corio/app.h). */
#include <arpa/inet.h>
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h> /* mallopt */
#endif
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "app/runner.h"
#include "corio/corio.h"
#include "corio/log.h"
#include "corio/metrics.h"
#include "http/metrics_internal.h"
#include "net/listen.h"

#define LISTEN_BACKLOG 511

int corio__listen_socket(const corio__app_opts *o, uint16_t *port_inout) {
    if (o->unix_path)
        return corio__unix_listen_socket(o->unix_path, LISTEN_BACKLOG);
    return corio__tcp_listen_socket(o->host, *port_inout, true, LISTEN_BACKLOG, port_inout);
}

int corio__admin_socket(const corio__app_opts *o, uint16_t *port_inout) {
    return corio__tcp_listen_socket(o->admin_host, *port_inout, true, LISTEN_BACKLOG, port_inout);
}

int corio__admin_check(const corio__app_opts *o) {
    if (!o->admin || o->admin_port == 0)
        return 0;
    return corio__tcp_port_free(o->admin_host, o->admin_port);
}

const char *corio__address(const char *host, int port, char *buf, size_t len) {
    snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    return buf;
}

const char *corio__admin_error(int rc) {
    if (rc == CORIO_EADDRINUSE)
        return "address already in use (another server listens on that port; every instance, "
               "a --reuse-port replacement too, needs an admin port of its own)";
    return corio_strerror(rc);
}

/* The lock on "<unix_path>.lock" this process holds from its claim of the
 * path until corio__listen_release (its workers inherit it). */
static int unix_lock = -1;

/* TCP: every listener of the runner has SO_REUSEPORT (a supervisor's
 * workers share the port so, and a --reuse-port instance can take over from
 * a running one); without --reuse-port, a port that some socket listens on
 * is refused rather than silently shared.  Port 0 needs no check: the
 * kernel never picks a port another socket holds.  Unix: a stale socket
 * file is replaced, a live one refused, under a lock held while serving
 * (corio__unix_path_claim). */
int corio__listen_check(const corio__app_opts *o) {
    if (o->inherited_fd >= 0)
        return 0;
    if (o->unix_path)
        return unix_lock >= 0 ? 0 : corio__unix_path_claim(o->unix_path, &unix_lock);
    if (o->port == 0 || o->reuse_port)
        return 0;
    return corio__tcp_port_free(o->host, o->port);
}

int corio__listen_exclusive(const char *host, uint16_t port, const int *fds, size_t n) {
    return port == 0 ? 0 : corio__tcp_port_exclusive(host, port, fds, n);
}

void corio__listen_release(const corio__app_opts *o) {
    if (unix_lock >= 0)
        corio__unix_path_release(o->unix_path, unix_lock);
    unix_lock = -1;
}

const char *corio__listen_error(const corio__app_opts *o, int rc, char *buf, size_t len) {
    if (o->unix_path && (rc == -ENOENT || rc == -ENOTDIR)) {
        const char *slash = strrchr(o->unix_path, '/');
        int dlen = slash ? (int)(slash - o->unix_path) : 0;
        snprintf(buf, len, "no such directory: %.*s", dlen ? dlen : 1, o->unix_path);
    } else if (o->unix_path && rc == -ENOTSOCK) {
        snprintf(buf, len, "the path exists and is not a socket (left alone)");
    } else if (o->unix_path && rc == CORIO_EADDRINUSE) {
        snprintf(buf, len, "address already in use (a server listens on it, or is starting to)");
    } else if (rc == CORIO_EADDRINUSE && o->inherited_fd < 0 && !o->reuse_port) {
        snprintf(buf, len,
                 "address already in use (another server listens on that port; --reuse-port "
                 "shares it, for a rolling replacement of one instance by another)");
    } else {
        snprintf(buf, len, "%s", corio_strerror(rc));
    }
    return buf;
}

/* systemd socket activation: a listening socket passed as fd 3 when
 * LISTEN_PID names this process and LISTEN_FDS >= 1.  The variables are
 * removed so that children (workers) do not take them as their own. */
static int activated_fd(void) {
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds)
        return -1;
    char *end;
    long p = strtol(pid, &end, 10);
    long n = strtol(fds, &end, 10);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (p != (long)getpid() || n < 1)
        return -1;
    if (n > 1)
        corio_log(CORIO_LOG_WARN, "LISTEN_FDS=%ld: serving the first socket (fd 3) only", n);
    int fl = fcntl(3, F_GETFD);
    if (fl < 0)
        return -1;
    fcntl(3, F_SETFD, fl | FD_CLOEXEC);
    return 3;
}

static const char *real_getenv(const char *name) {
    return getenv(name);
}

/* The soft RLIMIT_NOFILE up to the hard limit (app.h, "Descriptors"); an
 * unlimited hard limit means the kernel's fs.nr_open. */
static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t was = rl.rlim_cur, to = rl.rlim_max;
    if (to == RLIM_INFINITY) {
        char buf[32] = "";
        FILE *f = fopen("/proc/sys/fs/nr_open", "r");
        if (f) {
            if (!fgets(buf, sizeof buf, f))
                buf[0] = '\0';
            (void)fclose(f);
        }
        char *end;
        errno = 0;
        unsigned long long n = strtoull(buf, &end, 10);
        to = end != buf && errno == 0 && n > was ? (rlim_t)n : was;
    }
    rl.rlim_cur = to;
    if (to > was && setrlimit(RLIMIT_NOFILE, &rl) == 0)
        corio_log(CORIO_LOG_DEBUG, "descriptors: soft limit raised from %llu to %llu",
                  (unsigned long long)was, (unsigned long long)to);
    else if (to > was)
        corio_log(CORIO_LOG_DEBUG, "descriptors: soft limit %llu not raised to %llu: %s",
                  (unsigned long long)was, (unsigned long long)to, strerror(errno));
}

/* glibc gives the top of its heap back to the kernel as soon as 128 KiB of
 * it is free, and takes it back (fresh pages, a fault each) on the next
 * allocation: under load, with thousands of connections whose buffers come
 * and go, the heap's top rose and fell thousands of times a second (870
 * brk calls and 26,000 page faults in 3 s at 4,000 connections).  The
 * servers trim the heap themselves after a burst of connections
 * (net/server.c); glibc's own trimming waits for 16 MiB free, and the heap
 * grows 1 MiB at a time. */
static void tune_malloc(void) {
#if defined(__GLIBC__)
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_TOP_PAD, 1 << 20);
#endif
}

int corio_app_main(const corio_app *app, int argc, char **argv) {
    if (!app || !app->handler) {
        fprintf(stderr, "corio_app_main: the app needs a handler\n");
        return 2;
    }
    const char *name = app->name ? app->name : (argc > 0 ? argv[0] : "corio-app");
    corio__app_opts o;
    char err[256];
    if (corio__app_parse(&o, app, argc, argv, real_getenv, err, sizeof err) != 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 2;
    }
    if (o.help) {
        corio__app_usage(app, STDOUT_FILENO);
        return 0;
    }
    if (o.version) {
        printf("%s %s (corio %s)\n", name, app->version ? app->version : CORIO_VERSION_STRING,
               CORIO_VERSION_STRING);
        return 0;
    }
    corio_log_set_level(o.log_level);
    corio_log_set_format(o.log_format);
    if (o.access_log) { /* before any fork: a file is opened once, shared by the workers */
        int rc = corio_http_access_log_set(o.access_log);
        if (rc) {
            fprintf(stderr, "%s: --access-log %s: %s\n", name, o.access_log, corio_strerror(rc));
            return 2;
        }
    }
    o.inherited_fd = activated_fd();
    /* Both on one port would join one SO_REUSEPORT group, whatever the
     * hosts: the kernel would hand the server's clients to the admin
     * listener and the probes to the server. */
    int main_port = o.inherited_fd >= 0 ? corio__socket_port(o.inherited_fd)
                    : o.unix_path       ? 0
                                        : o.port;
    if (o.admin && o.admin_port && o.admin_port == main_port) {
        fprintf(stderr,
                "%s: --admin: port %u is the server's; the admin listener needs a port of "
                "its own\n",
                name, (unsigned)o.admin_port);
        return 2;
    }
    if (app->setup) {
        int rc = app->setup(app->setup_arg);
        if (rc < 0)
            corio_log(CORIO_LOG_ERROR, "%s: setup failed: %s", name, corio_strerror(rc));
        if (rc)
            return rc < 0 ? 1 : rc;
    }
    if (o.tls_cert && o.tls_resumption == CORIO_TLS_RESUME_TICKETS) {
        /* One ticket key for every worker, made before they are forked: a
         * client resumes whichever worker the kernel hands it to. */
        int rc = corio_tls_ticket_key_new(o.tls_ticket_key);
        if (rc) {
            fprintf(stderr, "%s: cannot make a TLS session ticket key: %s\n", name,
                    corio_strerror(rc));
            return 1;
        }
        o.tls_ticket_key_set = true;
    }
    raise_fd_limit();
    tune_malloc();
    signal(SIGPIPE, SIG_IGN);
    /* Until the worker's loop watches them, SIGHUP and SIGUSR1 must not
     * kill the process (their default action): a SIGUSR1 for a task dump
     * during startup would.  SIGUSR2 is the supervisor's word to a worker
     * it replaced (worker.c), ignored everywhere else. */
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR1, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    /* An HTTP server offers ALPN "http/1.1" unless the app chose a list
     * ("" for none): a client offering "h2,http/1.1" then knows what it
     * speaks rather than negotiating nothing. */
    corio_app a = *app;
    if (!a.tls_alpn && a.handler == corio_http_serve)
        a.tls_alpn = "http/1.1";
    /* The runner's own admin routes, made before the metrics are
     * prepared: mounting /metrics is what starts the counting. */
    corio_router *own_admin = NULL;
    if (o.admin && !a.admin_router) {
        int rc = corio_router_new(&own_admin);
        if (rc == 0)
            rc = corio_health_mount(own_admin, NULL, NULL);
        if (rc == 0)
            rc = corio_metrics_mount(own_admin, NULL);
        if (rc) {
            corio_log(CORIO_LOG_ERROR, "%s: cannot make the admin routes: %s", name,
                      corio_strerror(rc));
            corio_router_free(own_admin);
            return 1;
        }
        a.admin_router = own_admin;
    }
    corio__metrics_prepare(o.workers); /* before any fork: the shared segment */
    int code = o.workers > 1 ? corio__supervise(&a, &o) : corio__worker_run(&a, &o, -1, -1, -1);
    corio__listen_release(&o); /* the socket file is gone: the next server may claim it */
    corio_router_free(own_admin);
    return code;
}

int corio_http_app_main(const corio_app *app, corio_router *router, const corio_http_opts *opts,
                        int argc, char **argv) {
    if (!app || !router || app->handler || app->arg) {
        fprintf(stderr, "corio_http_app_main: %s\n",
                !app      ? "no app"
                : !router ? "no router"
                          : "the app's handler and arg must be NULL (corio_http_serve is used)");
        corio_router_free(router);
        return 2;
    }
    corio_http_server http = {.router = router, .opts = opts ? *opts : (corio_http_opts){0}};
    corio_app a = *app;
    a.handler = corio_http_serve;
    a.arg = &http;
    int code = corio_app_main(&a, argc, argv);
    corio_router_free(router);
    return code;
}
