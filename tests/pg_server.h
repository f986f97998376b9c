/* SPDX-License-Identifier: MIT */
/* A throwaway PostgreSQL server for the PostgreSQL client's tests
 * (test_pg.c): initdb + pg_ctl on 127.0.0.1, a free port, a temporary data
 * and socket directory, fsync off; stopped and removed at teardown and at
 * exit (atexit), so a failing test leaves nothing behind.
 *
 * As root the server runs as the unprivileged user `nobody` (runuser), the
 * temporary directory given to it: PostgreSQL refuses to run as root.
 * The binaries are found under /usr/lib/postgresql/<version>/bin (Debian's
 * postgresql package), the newest version first.  Without them the tests
 * skip, saying why.  CORIO_TEST_PG=<conninfo> uses an existing server
 * instead, started and stopped by nobody here.  A watchdog shell stops
 * the server if the test process dies without its atexit handlers.
 */
#ifndef CORIO_PG_SERVER_H
#define CORIO_PG_SERVER_H

#include "free_port.h"
#include <corio/pg.h>
#include <corio/task.h>
#include <glob.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct pg_server {
    char bin[256];      /* the PostgreSQL binaries' directory */
    char dir[64];       /* the temporary directory: data/, the socket, logs */
    char conninfo[512]; /* how to reach it */
    char skip_why[256]; /* set when the tests cannot run */
    int port;
    bool running; /* started here (and to be stopped here) */
    bool up;      /* the tests can run: started here, or CORIO_TEST_PG */
} pg_server;

static pg_server pg_srv;

/* Runs a shell command (as `nobody` when root), output appended to
 * log.txt in the directory.  Returns its exit status, or -1. */
static inline int pg_server_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int pg_server_sh(const char *fmt, ...) {
    char cmd[2048], line[2300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    /* From the temporary directory: initdb and pg_ctl look up the current
     * one, which `nobody` may not be allowed to (a build tree under /root). */
    snprintf(line, sizeof line, "cd '%s' && %s%s >>log.txt 2>&1", pg_srv.dir,
             geteuid() == 0 ? "runuser -u nobody -- " : "", cmd);
    int st = system(line);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Stops the server (immediate shutdown) and removes its directory. */
static inline void pg_server_stop(void) {
    if (pg_srv.running) {
        pg_server_sh("%s/pg_ctl -D %s/data -m immediate -w -t 30 stop", pg_srv.bin, pg_srv.dir);
        pg_srv.running = false;
    }
    if (pg_srv.dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg_srv.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "pg_server: could not remove %s\n", pg_srv.dir);
        pg_srv.dir[0] = '\0';
    }
}

/* Stops the server (fast shutdown: its sessions are terminated) keeping
 * its data, to start again with pg_server_resume.  Blocks: call it off the
 * loop (corio_run_blocking) when the loop must go on meanwhile.  Returns 0
 * or -1. */
static inline int pg_server_halt(void) {
    if (!pg_srv.running)
        return -1;
    int rc = pg_server_sh("%s/pg_ctl -D %s/data -m fast -w -t 30 stop", pg_srv.bin, pg_srv.dir);
    if (rc == 0)
        pg_srv.running = false;
    return rc == 0 ? 0 : -1;
}

/* Starts a halted server again on the same port.  Blocks, as above. */
static inline int pg_server_resume(void) {
    int rc = pg_server_sh("%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-h 127.0.0.1 "
                          "-p %d -k %s -F -c full_page_writes=off -c synchronous_commit=off\" "
                          "start",
                          pg_srv.bin, pg_srv.dir, pg_srv.dir, pg_srv.port, pg_srv.dir);
    if (rc == 0)
        pg_srv.running = true;
    return rc == 0 ? 0 : -1;
}

/* Prints the server's log (after a failure to start). */
static inline void pg_server_dump_log(void) {
    char path[128];
    snprintf(path, sizeof path, "%s/log.txt", pg_srv.dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char buf[512];
    while (fgets(buf, sizeof buf, f))
        fprintf(stderr, "pg_server| %s", buf);
    fclose(f);
}

/* The newest /usr/lib/postgresql/<v>/bin holding initdb and pg_ctl. */
static inline bool pg_server_find_bin(void) {
    glob_t g;
    bool found = false;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) == 0) {
        /* glob sorts; versions are numbers: the longest, then the last, wins */
        const char *best = NULL;
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (!best || strlen(g.gl_pathv[i]) > strlen(best) ||
                (strlen(g.gl_pathv[i]) == strlen(best) && strcmp(g.gl_pathv[i], best) > 0))
                best = g.gl_pathv[i];
        if (best) {
            snprintf(pg_srv.bin, sizeof pg_srv.bin, "%.*s", (int)(strlen(best) - strlen("/initdb")),
                     best);
            char ctl[300];
            snprintf(ctl, sizeof ctl, "%s/pg_ctl", pg_srv.bin);
            found = access(ctl, X_OK) == 0;
        }
    }
    globfree(&g);
    return found;
}

/* A test that crashes (an abort, a sanitizer's report, SIGKILL) runs no
 * atexit handler: a shell in the background stops the server and removes
 * its directory once this process is gone. */
static inline void pg_server_watchdog(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "(while kill -0 %d 2>/dev/null; do sleep 1; done; "
             "%s%s/pg_ctl -D %s/data -m immediate stop; rm -rf '%s') "
             ">/dev/null 2>&1 </dev/null &",
             (int)getpid(), geteuid() == 0 ? "runuser -u nobody -- " : "", pg_srv.bin, pg_srv.dir,
             pg_srv.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pg_server: no watchdog: a crash would leave the server running\n");
}

/* Starts the server, or takes CORIO_TEST_PG.  Returns 0 when the tests can
 * run (pg_srv.conninfo), 1 when they must skip (pg_srv.skip_why), -1 when
 * the server failed to start (its log printed). */
static inline int pg_server_start(void) {
    const char *env = getenv("CORIO_TEST_PG");
    if (env && *env) {
        snprintf(pg_srv.conninfo, sizeof pg_srv.conninfo, "%s", env);
        return 0;
    }
    if (!pg_server_find_bin()) {
        snprintf(pg_srv.skip_why, sizeof pg_srv.skip_why,
                 "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (Debian package "
                 "postgresql, `make deps`), and CORIO_TEST_PG is not set");
        return 1;
    }
    snprintf(pg_srv.dir, sizeof pg_srv.dir, "/tmp/corio-pg-XXXXXX");
    if (!mkdtemp(pg_srv.dir)) {
        pg_srv.dir[0] = '\0';
        return -1;
    }
    atexit(pg_server_stop);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw || chown(pg_srv.dir, pw->pw_uid, pw->pw_gid) != 0) {
            snprintf(pg_srv.skip_why, sizeof pg_srv.skip_why,
                     "running as root and there is no user `nobody` to run PostgreSQL as");
            return 1;
        }
    }
    if (pg_server_sh("%s/initdb -D %s/data -A trust -U postgres -E UTF8 --locale=C --no-sync",
                     pg_srv.bin, pg_srv.dir) != 0) {
        fprintf(stderr, "pg_server: initdb failed\n");
        pg_server_dump_log();
        return -1;
    }
    for (int attempt = 0; attempt < 3; attempt++) { /* the port may be taken meanwhile */
        pg_srv.port = test_free_port();
        if (pg_server_resume() == 0) {
            pg_server_watchdog();
            snprintf(pg_srv.conninfo, sizeof pg_srv.conninfo,
                     "host=127.0.0.1 port=%d user=postgres dbname=postgres", pg_srv.port);
            return 0;
        }
        pg_server_sh("cat %s/server.log", pg_srv.dir);
        pg_server_sh("%s/pg_ctl -D %s/data -m immediate -w stop", pg_srv.bin, pg_srv.dir);
    }
    fprintf(stderr, "pg_server: the server did not start\n");
    pg_server_dump_log();
    return -1;
}

/* Await: polls pg_stat_activity from a connection of its own (every 5 ms,
 * up to 10 s) until a session runs `sql`: the way a test knows another
 * task's query has reached the server before it cancels or closes it.
 * Returns 0, CORIO_ETIMEDOUT, or a connect or query error. */
static inline int pg_server_wait_running(const char *sql) {
    corio_pg_conn *db = NULL;
    int rc = corio_pg_connect(&db, pg_srv.conninfo);
    const char *params[] = {sql};
    for (int i = 0; rc == 0; i++) {
        corio_pg_result *r = NULL;
        int64_t n = 0;
        rc = corio_pg_query(db, &r,
                            "select count(*) from pg_stat_activity where state = 'active' "
                            "and query = $1",
                            1, params);
        bool running = rc == 0 && corio_pg_int64(r, 0, 0, &n) == 0 && n > 0;
        corio_pg_result_free(r);
        if (running)
            break;
        if (rc == 0)
            rc = i < 2000 ? corio_sleep(5) : CORIO_ETIMEDOUT;
    }
    corio_pg_close(db);
    return rc;
}

/* cmocka's group setup and teardown for a test file on this server (the
 * file includes cmocka, through corio_test.h, first). */
static inline int pg_server_group_setup(void **state) {
    (void)state;
    int rc = pg_server_start();
    pg_srv.up = rc == 0;
    return rc < 0 ? -1 : 0;
}

static inline int pg_server_group_teardown(void **state) {
    (void)state;
    pg_server_stop();
    return 0;
}

/* Skips the calling test, saying why, when there is no server;
 * own: it must be one this process started (it stops or pauses it). */
static inline void pg_server_need(const char *who, bool own) {
    if (!pg_srv.up || (own && !pg_srv.running)) {
        fprintf(stderr, "%s: skipped: %s\n", who,
                pg_srv.up ? "CORIO_TEST_PG is set: this test must stop and start its own server"
                          : pg_srv.skip_why);
        skip();
    }
}

#endif
