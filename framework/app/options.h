/* SPDX-License-Identifier: MIT */
/* Command line and environment of the standalone runner (see corio/app.h). */
#ifndef CORIO_APP_OPTIONS_H
#define CORIO_APP_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corio/app.h"
#include "corio/log.h"
#include "corio/tls.h"

typedef struct corio__app_opts {
    const char *host;
    uint16_t port;
    const char *unix_path;
    int inherited_fd; /* systemd socket activation (LISTEN_FDS): 3; else -1 */
    unsigned workers;
    const char *tls_cert, *tls_key;
    corio_tls_resumption tls_resumption;
    /* made once before any worker starts, so that every worker seals and
     * opens the same session tickets (app.c) */
    unsigned char tls_ticket_key[CORIO_TLS_TICKET_KEY_SIZE];
    bool tls_ticket_key_set;
    size_t max_conns;
    uint64_t read_timeout_ms, write_timeout_ms, drain_timeout_ms;
    corio_log_level log_level;
    corio_log_format log_format;
    bool reuse_port;        /* --reuse-port: join a port another server listens on */
    const char *access_log; /* --access-log; NULL: the application's opts.access_log */
    /* --admin: the admin listener (health, metrics), plain HTTP on
     * admin_host:admin_port; off unless admin is true */
    bool admin;
    char admin_host[48];
    uint16_t admin_port;
    bool help, version;
} corio__app_opts;

/* Fills *o from defaults, argv, and get_env (may be NULL) for the options no
 * flag gave: a flag wins over its variable, even a bad one.  With --help or
 * --version the environment is not read.  Strings point into argv or the
 * environment.  Returns 0, or CORIO_EINVAL with a one-line message (no
 * newline) naming the flag or variable and what it accepts in err. */
int corio__app_parse(corio__app_opts *o, const corio_app *app, int argc, char **argv,
                     const char *(*get_env)(const char *name), char *err, size_t errlen);

/* Writes --help to fd. */
void corio__app_usage(const corio_app *app, int fd);

/* Parses a duration ("250ms", "10s", "2m", "1500": milliseconds).  Returns 0
 * or CORIO_EINVAL (*ms untouched). */
int corio__parse_duration(const char *s, uint64_t *ms);

#endif
