/* SPDX-License-Identifier: MIT */
/* corio/app.h — the standalone server runner.
 *
 * corio_app_main() gives every corio program the same command line and
 * environment:
 *
 *   --host ADDR          IPv4/IPv6 address to bind        CORIO_HOST    (127.0.0.1)
 *   --port N             TCP port, 0..65535                CORIO_PORT    (app default, 8080)
 *   --unix PATH          a Unix socket, not a TCP port     CORIO_UNIX
 *   --workers N|auto     worker processes, 1..256          CORIO_WORKERS (1)
 *   --tls-cert FILE      PEM certificate chain             CORIO_TLS_CERT
 *   --tls-key FILE       PEM private key                   CORIO_TLS_KEY
 *   --tls-resumption R   tickets, cache or off             CORIO_TLS_RESUMPTION (tickets)
 *   --max-conns N        open connections per worker       CORIO_MAX_CONNS (0: no cap)
 *   --read-timeout T     per read without progress         CORIO_READ_TIMEOUT (0: none)
 *   --write-timeout T    per write without progress        CORIO_WRITE_TIMEOUT (0: none)
 *   --drain-timeout T    graceful drain on SIGTERM         CORIO_DRAIN_TIMEOUT (25s)
 *   --log-level L        error, warn, info, debug          CORIO_LOG_LEVEL (info)
 *   --log-format F       text or json                      CORIO_LOG_FORMAT (text)
 *   --access-log A       off, on (stderr) or a file        CORIO_ACCESS_LOG (the app's)
 *   --reuse-port         share a port another server holds CORIO_REUSE_PORT (off)
 *   --admin [HOST:]PORT  the admin listener (see below)    CORIO_ADMIN (off)
 *   --help (-h), --version
 *
 * plus the program's own flags (corio_app.flags below), listed by --help
 * after these, each with its variable and its default.
 *
 * TLS session resumption (corio_tls_resumption in corio/tls.h): with
 * tickets, the runner makes one ticket key before starting the workers, so a
 * client resumes on whichever worker it reaches; the key lives until the
 * server stops (restart the server to rotate it).  With cache, each worker
 * keeps its own cache, and a client resumes only on the worker it met.
 *
 * Socket activation: when LISTEN_PID names the process and LISTEN_FDS >= 1
 * (systemd), the socket on fd 3 is served and --host/--port/--unix are
 * ignored.
 *
 * Descriptors.  Each connection takes one, and Linux's default soft limit
 * (1024) would cap a server near a thousand clients: the runner raises the
 * soft RLIMIT_NOFILE to the hard limit at start, as Go's runtime does, and
 * says so at debug level (an unlimited hard limit: fs.nr_open).  Lower the
 * hard limit (ulimit -Hn, systemd's LimitNOFILE=) to keep a server below
 * it; processes the server starts inherit the raised limit.  Out of descriptors, a server
 * refuses new connections and goes on serving the ones it has.
 *
 * Memory.  The runner sets glibc's M_TRIM_THRESHOLD to 16 MiB and M_TOP_PAD
 * to 1 MiB (mallopt) before the workers start: with glibc's defaults the
 * top of the heap went back to the kernel and was faulted in again
 * thousands of times a second under load.  A server trims the heap itself
 * (malloc_trim) a second after its connections fall to a quarter of a peak
 * of at least 256, so what a burst of clients held goes back.
 *
 * T is a duration: "250ms", "10s", "2m", or a bare number of milliseconds.
 * Flags win over environment variables.  A bad value is one line on stderr
 * naming the flag (or variable) and what it accepts, and exit code 2.
 *
 * One port, one server.  Every listening TCP socket of the runner has
 * SO_REUSEPORT (the workers of one supervisor share the port through it),
 * but a port that another socket already listens on is refused: the program
 * exits 1 with "cannot listen on HOST:PORT: address already in use" instead
 * of silently splitting the connections with a server it knows nothing of.
 * The port is checked twice: a socket without SO_REUSEPORT is bound there
 * just before the listeners are made, and once they listen the kernel's
 * table of listening sockets (/proc/net/tcp) must show no other on the
 * port, so of two servers started on one port at the same moment at most
 * one serves (each sees the other; both may refuse, which is safe).
 * Nothing is checked for port 0, which the kernel picks free, nor for Unix
 * (below) or inherited sockets.  --reuse-port (CORIO_REUSE_PORT=1) skips
 * both checks of the main port (not the admin port's), on purpose: for a rolling replacement of one
 * instance by another, the new one starts with --reuse-port beside the old
 * (any corio server, one process or supervised), both serve, then the old
 * one gets SIGTERM and drains.
 *
 * Unix sockets.  --unix with --port (or CORIO_UNIX with CORIO_PORT) is
 * refused, exit 2; a flag still wins over the other's variable.  A socket
 * file that a server left behind (nothing listens: connect() is refused) is
 * replaced; one that a server listens on is refused ("address already in
 * use"), as is a file that is not a socket (left alone), and a missing
 * directory is named ("no such directory: DIR").  The path is claimed
 * under an exclusive lock on the file "PATH.lock" (made beside it: the
 * directory must be writable, as it must be for the socket), held while
 * the server serves, so of two servers started on one path at the same
 * moment exactly one serves.  At a graceful exit the socket file and then
 * the lock file are removed; a killed server leaves both, and the next
 * one reuses the lock file and replaces the socket.
 *
 * Processes.  With --workers 1 the program is the worker.  With more, a
 * supervisor process opens one SO_REUSEPORT listening socket per worker
 * (all on the same port), forks the workers, each with its own loop, and
 * restarts a worker that dies, after a backoff (100 ms, doubling with each
 * death in a row up to 5 s; a worker that lived 10 s resets it).  The
 * supervisor keeps every listening socket open, so a restarted worker takes
 * over its predecessor's socket and no queued connection is lost.
 *
 * A worker that cannot start is not restarted for ever: when 5 workers in a
 * row of one slot die before they serve (a certificate that does not load,
 * say), the supervisor logs the last one's error ("worker N could not start,
 * 5 times in a row; ...: <error>; giving up"), stops the other workers as
 * SIGTERM does, and exits 1, as a single process that cannot start does.
 * With the backoff above this takes about 1.5 s.
 *
 * Signals.  SIGTERM/SIGINT: graceful drain — stop accepting, let open
 * connections finish up to the drain timeout, cancel the rest (reason
 * shutdown), exit 0.  SIGHUP: with workers, restart them one at a time (a new
 * worker is serving before the old one drains), which also reloads TLS
 * certificates (a worker waiting out its restart backoff is started at once
 * instead; a replacement that fails leaves its predecessor serving); with one
 * process, reload the TLS certificates in place (a failed load keeps the old
 * ones and is logged).  SIGUSR1: every worker
 * prints its live tasks to stderr.  SIGUSR2 is the supervisor's own word
 * to a worker that a SIGHUP roll replaced ("retire": drain as for SIGTERM,
 * but the server is not stopping); a supervisor or a single process
 * ignores it.  Do not send it: a worker that gets it drains, exits and is
 * replaced.
 *
 * The admin listener.  --admin PORT (or HOST:PORT, [IPV6]:PORT; the host
 * is 127.0.0.1 when left out, so nothing outside the machine reaches it
 * unless asked) serves the operator's endpoints on a port of their own,
 * in plain HTTP/1.1 whatever the main listener speaks: the app's
 * admin_router (corio_app below) if it has one, else the runner's own,
 * GET /healthz, /readyz and /metrics (corio/metrics.h; mounting /metrics
 * starts the counting, for the main listener's requests too).  Any corio
 * program has it, an HTTP server or not (examples/echo).  "--admin off"
 * overrides CORIO_ADMIN; port 0 takes any free port (logged: "admin
 * listener on HOST:PORT").  Its port is checked, shared by the workers and
 * kept across worker restarts like the main one's; it is one instance's,
 * so it is checked with --reuse-port too (a replacement needs an admin
 * port of its own); a port equal to the server's (--port, or an
 * inherited socket's) is refused (exit 2).  Each worker serves it on its own loop (so
 * /healthz still shows whether that loop turns), with corio_http_opts'
 * defaults but a 5 s header timeout, and no connection cap (idle
 * connections must not lock the probes out).  Its requests are counted in
 * the metrics like any others, under their routes.
 *
 * It outlives the drain: on SIGTERM the main listener stops accepting
 * while the admin one goes on answering, /readyz with 503 "draining" (so
 * a load balancer or Kubernetes sees the drain instead of a refused
 * connection) and /metrics as ever, until the open connections are done;
 * then it closes.  A worker replaced by a SIGHUP roll drains beside its
 * replacement and both answer /readyz with 200 (the server stays ready
 * through a roll); a SIGTERM meanwhile turns every worker's answer to
 * 503.
 *
 * --read-timeout and --write-timeout bound every socket read and write
 * without progress.  Under corio_http_serve they apply as well as the HTTP
 * timeouts of corio_http_opts (the shorter wins) while a request is read
 * and answered; between requests the keep-alive timeout alone governs.
 */
#ifndef CORIO_APP_H
#define CORIO_APP_H

#include <stddef.h>
#include <stdint.h>

#include "http.h"
#include "server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the program's own flags ----
 *
 * A program declares its flags in a table; the runner parses them with its
 * own (--name VALUE and --name=VALUE; a flag given twice: the last wins,
 * except FUNC, called for each), reads the flag's environment variable
 * when the flag is not given (a variable set to "" counts as unset), lists
 * them in --help, and refuses a bad value as it refuses its own: one line
 * on stderr, "<app>: --name: expected <accepts>, got 'VALUE'", and exit 2.
 * Targets are written only when the program is going to serve: --help and
 * --version leave them alone (so --help shows their defaults). */
typedef enum corio_app_flag_type {
    CORIO_APP_FLAG_STRING,   /* const char **target: the value (in argv or the
                                environment, not copied); "" is refused */
    CORIO_APP_FLAG_INT,      /* int64_t *target: a decimal integer in min..max */
    CORIO_APP_FLAG_DURATION, /* uint64_t *target: milliseconds, from "250ms", "10s",
                                "2m" or a bare number of ms, in min..max */
    CORIO_APP_FLAG_BOOL,     /* bool *target: --name sets it and takes no value;
                                the variable holds 1/0, true/false, yes/no, on/off */
    CORIO_APP_FLAG_FUNC,     /* parse(value, target) decides */
} corio_app_flag_type;

/* Takes one value of a FUNC flag (from the command line, in order, or the
 * variable).  target: the flag's, borrowed.  Returns 0, or a negative code
 * to refuse the value (the runner prints the flag's `accepts` and exits 2). */
typedef int (*corio_app_flag_fn)(const char *value, void *target);

typedef struct corio_app_flag {
    const char *name; /* without the dashes: "root" is --root; not one of the
                         runner's, nor "h" */
    corio_app_flag_type type;
    void *target;             /* borrowed, written as the type says; its value before
                                 corio_app_main is the default */
    const char *help;         /* one line for --help */
    const char *env;          /* variable read when the flag is not given; NULL: none */
    const char *accepts;      /* what a value may be, for --help and errors ("a
                                 directory"); NULL: said from the type and range */
    const char *default_text; /* the default --help shows; NULL: the target's
                                 value (none for FUNC, a NULL or "" string) */
    int64_t min, max;         /* INT, DURATION: the range; both 0: any (a duration
                                 is never negative) */
    corio_app_flag_fn parse;  /* FUNC: the parser; NULL otherwise */
} corio_app_flag;

/* After the command line is parsed (every target set), before the runner
 * listens or forks: the program's checks of its flags taken together and
 * the work that depends on them (routes, a database schema).  Not run for
 * --help, --version or a bad command line.  Returns 0 to serve, or the
 * exit code after a line on stderr (2: a bad command line; 1: a failure). */
typedef int (*corio_app_setup_fn)(void *setup_arg);

typedef struct corio_app {
    const char *name;        /* shown in --help, --version and logs */
    const char *version;     /* --version; NULL: corio's version */
    const char *description; /* one line for --help; may be NULL */
    corio_conn_fn handler;   /* runs once per connection, in its own task */
    void *arg;               /* passed to handler; borrowed */
    uint16_t default_port;   /* 0: 8080 */
    size_t conn_stack_size;  /* 0: the default task stack */
    /* ALPN list offered with --tls-cert, e.g. "http/1.1".  NULL: "http/1.1"
     * when handler is corio_http_serve, none otherwise; "": none. */
    const char *tls_alpn;
    const corio_app_flag *flags; /* the program's flags (see above); borrowed */
    size_t nflags;
    corio_app_setup_fn setup; /* NULL: none */
    void *setup_arg;          /* passed to setup; borrowed */
    /* The routes of the admin listener (see above), served only with
     * --admin; borrowed: free it after corio_app_main returns.  setup may
     * still add routes.  NULL: /healthz, /readyz and /metrics. */
    corio_router *admin_router;
} corio_app;

/* Parses the command line and environment (the runner's flags and
 * app->flags), runs app->setup, then serves until a graceful shutdown.
 * Returns the process exit code: 0 after a graceful shutdown or
 * --help/--version, 1 when the server could not start or failed (under a
 * supervisor also: its workers could not start, see above), 2 for a bad
 * command line or a bad flag table (a name taken twice, a NULL target or
 * parser); or what setup returned.  Call it from main() (`return corio_app_main(&app, argc,
 * argv);`), not from inside corio_run(). */
int corio_app_main(const corio_app *app, int argc, char **argv);

/* corio_app_main for an HTTP server: serves `router` with corio_http_serve
 * (the same as an app whose handler is corio_http_serve and whose arg is a
 * corio_http_server {router, *opts}), so every example ends in one call:
 *
 *   corio_app app = {.name = "hello", .default_port = 8080};
 *   return corio_http_app_main(&app, router, NULL, argc, argv);
 *
 * app: borrowed; everything but handler and arg as for corio_app_main
 * (setup may still add routes to `router`); handler and arg must be NULL (this
 * function supplies them).  router: transferred: freed before this returns,
 * on every path, so its routes' args must outlive the call, not the router.
 * opts: borrowed, copied; NULL: the defaults (all zero).
 * Returns the exit code of corio_app_main; 2, after a line on stderr, for
 * a NULL app or router or an app with a handler or arg of its own. */
int corio_http_app_main(const corio_app *app, corio_router *router, const corio_http_opts *opts,
                        int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_APP_H */
