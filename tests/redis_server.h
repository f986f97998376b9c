/* SPDX-License-Identifier: MIT */
/* Throwaway Redis servers for the Redis client's tests (test_redis.c):
 * redis-server on 127.0.0.1, a free port, a Unix socket and its working
 * directory in a temporary directory, no persistence (--save ''
 * --appendonly no).  A server is a child of the test process:
 *
 *   - ready when it says so: it runs with --supervised systemd and
 *     NOTIFY_SOCKET pointing at a datagram socket of ours, and Redis sends
 *     READY=1 once it accepts connections (a real readiness signal, no
 *     sleep, no polling of the port).  A child that exits first is a
 *     failure (its log printed), and the port is tried again with
 *     another one (it may have been taken meanwhile).
 *   - stopped (SIGTERM, waited for) at teardown and at exit (atexit), and
 *     its directory removed, so a failing test leaves nothing behind.
 *   - killed if the test process dies without its atexit handlers (an
 *     abort, a sanitizer's report, SIGKILL): the child asks for SIGKILL
 *     when its parent dies (PR_SET_PDEATHSIG), and a watchdog shell
 *     removes the directory once the test process is gone.
 *
 * CORIO_TEST_REDIS=host:port uses an existing server instead, started and
 * stopped by nobody here (tests that restart a server skip then).  Without
 * redis-server on the PATH the tests skip, saying why.
 */
#ifndef CORIO_REDIS_SERVER_H
#define CORIO_REDIS_SERVER_H

#include "free_port.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct redis_server {
    char dir[64];       /* the temporary directory: the socket, the log */
    char addr[300];     /* "127.0.0.1:<port>", or CORIO_TEST_REDIS */
    char sock[100];     /* the server's Unix socket ("" for an external one) */
    char skip_why[256]; /* set when the tests cannot run */
    int port;
    pid_t pid; /* the running child, or 0 */
    bool external;
    bool registered; /* in the atexit list */
} redis_server;

enum { REDIS_SERVER_MAX = 4 };
static redis_server *redis_servers[REDIS_SERVER_MAX];

static inline bool redis_server_find_bin(void) {
    const char *path = getenv("PATH");
    char dirs[4096], exe[4200];
    snprintf(dirs, sizeof dirs, "%s", path && *path ? path : "/usr/bin:/bin");
    for (char *save = NULL, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(exe, sizeof exe, "%s/redis-server", d);
        if (access(exe, X_OK) == 0)
            return true;
    }
    return false;
}

static inline void redis_server_dump_log(const redis_server *s) {
    char path[128], buf[512];
    snprintf(path, sizeof path, "%s/log.txt", s->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(buf, sizeof buf, f))
        fprintf(stderr, "redis_server| %s", buf);
    fclose(f);
}

/* Stops the child: SIGTERM, then SIGKILL if it has not exited within 10 s. */
static inline void redis_server_stop(redis_server *s) {
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        if (waitpid(s->pid, NULL, WNOHANG) != 0)
            goto out;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* a bounded wait for a process to exit: no event to wait on */
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
out:
    s->pid = 0;
}

/* Stops the server and removes its directory. */
static inline void redis_server_remove(redis_server *s) {
    redis_server_stop(s);
    if (s->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "redis_server: could not remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}

static inline void redis_server_atexit(void) {
    for (int i = 0; i < REDIS_SERVER_MAX; i++)
        if (redis_servers[i])
            redis_server_remove(redis_servers[i]);
}

/* Waits for READY=1 on fd while the child lives, 30 s at most.  Returns 0
 * (ready) or -1 (it exited, or never said so). */
static inline int redis_server_wait_ready(redis_server *s, int fd) {
    for (int waited = 0; waited < 30000; waited += 100) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, 100);
        if (n > 0) {
            char buf[512];
            ssize_t got = recv(fd, buf, sizeof buf - 1, 0);
            if (got > 0) {
                buf[got] = '\0';
                if (strstr(buf, "READY=1"))
                    return 0;
            }
            continue;
        }
        if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
    }
    fprintf(stderr, "redis_server: no READY=1 from redis-server within 30 s\n");
    redis_server_stop(s);
    return -1;
}

/* Starts redis-server on s->port (s->dir made).  Returns 0 when it is
 * ready, -1 when it did not start. */
static inline int redis_server_spawn(redis_server *s) {
    char notify[100], port[16], log[128];
    snprintf(notify, sizeof notify, "%s/notify", s->dir);
    snprintf(log, sizeof log, "%s/log.txt", s->dir);
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    unlink(notify);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", notify);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("redis_server: notify socket");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (out >= 0) {
            dup2(out, 1);
            dup2(out, 2);
        }
        setenv("NOTIFY_SOCKET", notify, 1);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", s->dir, "--unixsocket", s->sock, "--unixsocketperm",
               "700", "--supervised", "systemd", "--daemonize", "no", "--logfile", "",
               (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    int rc = redis_server_wait_ready(s, fd);
    close(fd);
    unlink(notify);
    return rc;
}

/* The directory is removed by a shell once this process is gone, if no
 * atexit handler ran (the server itself dies with us: PR_SET_PDEATHSIG). */
static inline void redis_server_watchdog(const redis_server *s) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "(while kill -0 %d 2>/dev/null; do sleep 1; done; rm -rf '%s') "
             ">/dev/null 2>&1 </dev/null &",
             (int)getpid(), s->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "redis_server: no watchdog: a crash would leave %s behind\n", s->dir);
}

/* Starts a server, or takes CORIO_TEST_REDIS (only when `shared`: a
 * server a test may restart is always its own).  Returns 0 when the tests
 * can run (s->addr), 1 when they must skip (s->skip_why), -1 when the
 * server failed to start (its log printed). */
static inline int redis_server_start(redis_server *s, bool shared) {
    const char *env = getenv("CORIO_TEST_REDIS");
    if (env && *env) {
        if (shared) {
            snprintf(s->addr, sizeof s->addr, "%s", env);
            s->external = true;
            return 0;
        }
        snprintf(s->skip_why, sizeof s->skip_why,
                 "CORIO_TEST_REDIS is set: this test restarts a server of its own");
        return 1;
    }
    if (!redis_server_find_bin()) {
        snprintf(s->skip_why, sizeof s->skip_why,
                 "no redis-server on the PATH (Debian package redis-server, `make deps`), and "
                 "CORIO_TEST_REDIS is not set");
        return 1;
    }
    snprintf(s->dir, sizeof s->dir, "/tmp/corio-redis-XXXXXX");
    if (!mkdtemp(s->dir)) {
        s->dir[0] = '\0';
        return -1;
    }
    if (!s->registered) {
        static bool atexit_set;
        for (int i = 0; i < REDIS_SERVER_MAX && !s->registered; i++)
            if (!redis_servers[i]) {
                redis_servers[i] = s;
                s->registered = true;
            }
        if (!atexit_set) {
            atexit(redis_server_atexit);
            atexit_set = true;
        }
    }
    redis_server_watchdog(s);
    for (int attempt = 0; attempt < 3; attempt++) { /* the port may be taken meanwhile */
        s->port = test_free_port();
        if (redis_server_spawn(s) == 0) {
            snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", s->port);
            return 0;
        }
    }
    fprintf(stderr, "redis_server: the server did not start\n");
    redis_server_dump_log(s);
    return -1;
}

/* Stops the server and starts it again on the same port (data gone). */
static inline int redis_server_restart(redis_server *s) {
    redis_server_stop(s);
    if (redis_server_spawn(s) != 0) {
        redis_server_dump_log(s);
        return -1;
    }
    return 0;
}

#endif
