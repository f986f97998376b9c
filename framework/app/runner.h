/* SPDX-License-Identifier: MIT */
/* The runner's processes: a worker (one loop serving connections) and the
 * supervisor of several workers. */
#ifndef CORIO_APP_RUNNER_H
#define CORIO_APP_RUNNER_H

#include "app/options.h"

/* Runs one worker until a graceful shutdown.  listen_fd >= 0: serve that
 * inherited listening socket; -1: open our own from the options.  admin_fd
 * likewise for the admin listener (used only with o->admin, serving
 * app->admin_router).  ready_fd >= 0 (a pipe from the supervisor) gets 'r'
 * once the worker accepts connections, or, if it fails before, 'e' and the
 * reason in one write; then it is closed; such a worker also takes SIGUSR2
 * as "retire" (drain as for SIGTERM, but the server is not stopping: the
 * admin listener answers to the end of the drain and /readyz does not turn
 * 503).  Returns the
 * process exit code. */
int corio__worker_run(const corio_app *app, const corio__app_opts *o, int listen_fd, int admin_fd,
                      int ready_fd);

/* Runs the supervisor of o->workers workers.  Returns the exit code: 0
 * after SIGTERM/SIGINT and a clean drain; 1 if it could not listen, if
 * workers outlived the drain deadline, or if it gave up on workers that
 * could not start (START_FAILURES_MAX, 5, deaths in a row before serving in
 * one slot; see corio/app.h). */
int corio__supervise(const corio_app *app, const corio__app_opts *o);

/* Opens a listening TCP or Unix socket from the options (SO_REUSEPORT for
 * TCP).  port_inout: the port to bind (0: any) and the one bound.  Returns
 * the fd or a negative code. */
int corio__listen_socket(const corio__app_opts *o, uint16_t *port_inout);

/* Checks, just before the first listener of the process is made, that
 * its address is free: a TCP port that some socket listens on is refused
 * unless --reuse-port (corio__tcp_port_free; port 0 is not checked; the
 * race-free check, corio__listen_exclusive, follows once the listeners
 * listen); a Unix socket path is claimed (corio__unix_path_claim: a stale
 * socket file is removed, and the path's lock is held until
 * corio__listen_release).  Inherited sockets are not checked.  Returns 0 or a
 * negative code (corio__listen_error describes it). */
int corio__listen_check(const corio__app_opts *o);

/* The race-free half of the TCP check, once the process's own listeners
 * fds[0..n) listen on host:port (the configured port; 0: nothing to check,
 * which is what the main listener passes with --reuse-port): -EADDRINUSE
 * if another socket listens there too (corio__tcp_port_exclusive; of two
 * servers started at once, at least one sees the other).  Returns 0 or a
 * negative code. */
int corio__listen_exclusive(const char *host, uint16_t port, const int *fds, size_t n);

/* At the end of corio_app_main, in the process that made the check (its
 * workers have exited, the socket file is removed): gives up the lock of
 * a Unix socket path's claim, so the next server may claim it. */
void corio__listen_release(const corio__app_opts *o);

/* The admin listener's socket (o->admin): TCP on admin_host with
 * SO_REUSEPORT; port_inout as for corio__listen_socket. */
int corio__admin_socket(const corio__app_opts *o, uint16_t *port_inout);

/* corio__listen_check for the admin port: 0 without --admin and for port
 * 0; else corio__tcp_port_free, --reuse-port or not (an admin port is one
 * instance's: two sharing one would answer each other's probes and
 * scrapes). */
int corio__admin_check(const corio__app_opts *o);

/* host:port as an address is written (an IPv6 host in brackets), in buf
 * (len bytes).  Returns buf. */
const char *corio__address(const char *host, int port, char *buf, size_t len);

/* What follows "cannot listen on ADDRESS (admin): " for error rc. */
const char *corio__admin_error(int rc);

/* What follows "cannot listen on ADDRESS: " for error rc, in buf (len
 * bytes): the missing directory of a Unix socket, a hint at --reuse-port
 * for a TCP port in use, or corio_strerror(rc).  Returns buf. */
const char *corio__listen_error(const corio__app_opts *o, int rc, char *buf, size_t len);

/* Tells the service manager `state` ("READY=1", "STOPPING=1"; MAINPID is
 * added) when $NOTIFY_SOCKET names one (systemd's Type=notify); nothing
 * otherwise.  Not an await; never fails (a send error is logged). */
void corio__notify(const char *state);

/* Makes this process silent towards the service manager (a worker under a
 * supervisor, which speaks for the service). */
void corio__notify_forget(void);

#endif
