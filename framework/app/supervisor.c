/* The supervisor of several worker processes (see corio/app.h).
 *
 * It never runs a libuv loop: it forks workers, then sleeps in poll() on a
 * self-pipe that its signal handlers write to, plus the "ready" pipes of
 * workers being started by a rolling restart.  It keeps one listening socket
 * per worker slot open for its whole life, so a worker that replaces another
 * (after a crash or a SIGHUP) serves the same socket and the connections
 * queued on it are not lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "app/runner.h"
#include "corio/corio.h"
#include "corio/log.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define HEALTHY_AFTER_MS 10000
#define KILL_MARGIN_MS 5000

typedef struct slot {
    int fd;         /* listening socket, kept open by the supervisor */
    pid_t pid;      /* worker serving this slot (0: none) */
    pid_t next_pid; /* replacement starting during a rolling restart */
    int ready_fd;   /* read end of next_pid's ready pipe, or -1 */
    uint64_t started_ms;
    unsigned failures;
    uint64_t restart_at; /* 0: no restart pending */
} slot;

typedef struct supervisor {
    const corio_app *app;
    const corio__app_opts *opts;
    slot *slots;
    unsigned n;
    unsigned live; /* children not yet reaped */
    int rolling;   /* slot being replaced by SIGHUP, or -1 */
    bool stopping;
    uint64_t kill_at;
} supervisor;

static int sig_pipe[2] = {-1, -1};

static void on_signal(int signum) {
    int saved = errno;
    unsigned char b = (unsigned char)signum;
    ssize_t n = write(sig_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* pipe2() is not portable: set the flags by hand. */
static int make_pipe(int fds[2], bool nonblock) {
    if (pipe(fds) != 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        if (nonblock)
            fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
    }
    return 0;
}

static const int handled[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD};

static int install_signals(void) {
    int rc = make_pipe(sig_pipe, true);
    if (rc)
        return rc;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        if (sigaction(handled[i], &sa, NULL) != 0)
            return -errno;
    return 0;
}

static void block_signals(bool block) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++)
        sigaddset(&set, handled[i]);
    sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, NULL);
}

/* In a new worker (signals blocked since before the fork, so none reaches the
 * supervisor's handler, which would write into the supervisor's pipe): undo
 * the supervisor's signal set-up and close what belongs to other slots.
 * SIGHUP and SIGUSR1 are ignored, not defaulted, until the worker's loop
 * watches them: their default action would kill a worker that the supervisor
 * forwards a SIGUSR1 to while it starts.  A worker whose supervisor dies gets
 * SIGTERM and drains, rather than serving on unsupervised. */
static void child_reset(supervisor *sv, slot *mine, pid_t parent) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++) {
        sa.sa_handler = handled[i] == SIGHUP || handled[i] == SIGUSR1 ? SIG_IGN : SIG_DFL;
        sigaction(handled[i], &sa, NULL);
    }
    block_signals(false);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == 0 && getppid() != parent)
        raise(SIGTERM); /* the supervisor died before prctl() */
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    for (unsigned i = 0; i < sv->n; i++) {
        slot *s = &sv->slots[i];
        if (s->fd >= 0 && s->fd != mine->fd)
            close(s->fd);
        if (s->ready_fd >= 0)
            close(s->ready_fd);
    }
}

/* Forks a worker for slot s.  With `ready`, the worker reports through a
 * pipe once it serves (rolling restart); without, it replaces s->pid. */
static pid_t spawn(supervisor *sv, slot *s, bool ready) {
    int rp[2] = {-1, -1};
    if (ready && make_pipe(rp, false) != 0)
        return -1;
    pid_t parent = getpid();
    block_signals(true);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        block_signals(false);
        corio_log(CORIO_LOG_ERROR, "fork: %s", strerror(err));
        if (ready) {
            close(rp[0]);
            close(rp[1]);
        } else if (!sv->stopping) {
            s->restart_at = now_ms() + BACKOFF_FIRST_MS; /* the slot must not stay empty */
        }
        return -1;
    }
    if (pid == 0) {
        child_reset(sv, s, parent);
        if (ready)
            close(rp[0]);
        _exit(corio__worker_run(sv->app, sv->opts, s->fd, ready ? rp[1] : -1));
    }
    block_signals(false);
    sv->live++;
    if (ready)
        corio_log(CORIO_LOG_INFO, "worker %u started (pid %d), to replace pid %d",
                  (unsigned)(s - sv->slots), (int)pid, (int)s->pid);
    else
        corio_log(CORIO_LOG_INFO, "worker %u started (pid %d)", (unsigned)(s - sv->slots),
                  (int)pid);
    if (ready) {
        close(rp[1]);
        s->ready_fd = rp[0];
        s->next_pid = pid;
    } else {
        s->pid = pid;
        s->started_ms = now_ms();
    }
    return pid;
}

static void signal_all(supervisor *sv, int signum) {
    for (unsigned i = 0; i < sv->n; i++) {
        if (sv->slots[i].pid > 0)
            kill(sv->slots[i].pid, signum);
        if (sv->slots[i].next_pid > 0)
            kill(sv->slots[i].next_pid, signum);
    }
}

static void describe_exit(int status, char *buf, size_t len) {
    if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

static void roll_next(supervisor *sv);

static void reap(supervisor *sv) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        sv->live--;
        char how[96];
        describe_exit(status, how, sizeof how);
        for (unsigned i = 0; i < sv->n; i++) {
            slot *s = &sv->slots[i];
            if (pid == s->next_pid) { /* a replacement died before serving */
                corio_log(CORIO_LOG_ERROR, "replacement worker %u (pid %d) %s", i, (int)pid, how);
                if (s->ready_fd >= 0)
                    close(s->ready_fd);
                s->ready_fd = -1;
                s->next_pid = 0;
                if (sv->rolling == (int)i)
                    roll_next(sv);
            } else if (pid == s->pid) {
                s->pid = 0;
                if (sv->stopping)
                    break;
                uint64_t now = now_ms();
                if (now - s->started_ms >= HEALTHY_AFTER_MS)
                    s->failures = 0;
                unsigned shift = s->failures < 6 ? s->failures : 6;
                uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << shift;
                if (delay > BACKOFF_MAX_MS)
                    delay = BACKOFF_MAX_MS;
                s->failures++;
                s->restart_at = now + delay;
                corio_log(CORIO_LOG_WARN, "worker %u (pid %d) %s; restarting in %llu ms", i,
                          (int)pid, how, (unsigned long long)delay);
            }
            /* else: a retired worker finishing its drain */
        }
    }
}

/* Rolling restart: start slot `rolling`'s replacement, or finish.  Never
 * while stopping: a worker forked then would miss the SIGTERM already sent
 * and hold the exit up until the kill deadline. */
static void roll_next(supervisor *sv) {
    if (sv->stopping) {
        sv->rolling = -1;
        return;
    }
    while (++sv->rolling < (int)sv->n) {
        slot *s = &sv->slots[sv->rolling];
        if (spawn(sv, s, true) > 0)
            return;
    }
    sv->rolling = -1;
    corio_log(CORIO_LOG_INFO, "SIGHUP: every worker restarted");
}

static void on_ready(supervisor *sv, slot *s) {
    char b;
    ssize_t n = read(s->ready_fd, &b, 1);
    close(s->ready_fd);
    s->ready_fd = -1;
    if (n != 1)
        return; /* EOF: it failed before serving; reap() goes on with the next slot */
    if (s->pid > 0)
        kill(s->pid, SIGTERM); /* it drains while the new one serves */
    s->pid = s->next_pid;
    s->next_pid = 0;
    s->started_ms = now_ms();
    s->failures = 0;
    roll_next(sv);
}

/* Our copies of the listening sockets would keep them open while the workers
 * drain: new connections would queue where nobody accepts them, to be reset
 * at our exit, instead of being refused at once. */
static void close_listeners(supervisor *sv) {
    for (unsigned i = 0; i < sv->n; i++) {
        int fd = sv->slots[i].fd;
        for (unsigned k = i; k < sv->n; k++) /* Unix sockets: one fd in every slot */
            if (sv->slots[k].fd == fd)
                sv->slots[k].fd = -1;
        if (fd >= 0)
            close(fd);
    }
}

static void handle_signal(supervisor *sv, int signum) {
    switch (signum) {
    case SIGCHLD:
        reap(sv);
        break;
    case SIGTERM:
    case SIGINT:
        if (sv->stopping)
            break;
        sv->stopping = true;
        sv->kill_at = now_ms() + sv->opts->drain_timeout_ms + KILL_MARGIN_MS;
        corio_log(CORIO_LOG_INFO, "%s: stopping %u worker(s)",
                  signum == SIGINT ? "SIGINT" : "SIGTERM", sv->live);
        signal_all(sv, SIGTERM);
        close_listeners(sv);
        break;
    case SIGHUP:
        if (sv->stopping || sv->rolling >= 0)
            break;
        corio_log(CORIO_LOG_INFO, "SIGHUP: restarting workers one at a time");
        sv->rolling = -1;
        roll_next(sv);
        break;
    case SIGUSR1:
        signal_all(sv, SIGUSR1);
        break;
    }
}

static int loop(supervisor *sv) {
    struct pollfd *pfds = calloc(sv->n + 1, sizeof *pfds);
    if (!pfds)
        return 1;
    for (;;) {
        if (sv->stopping && sv->live == 0)
            break;
        uint64_t now = now_ms(), wake = UINT64_MAX;
        for (unsigned i = 0; i < sv->n; i++) {
            slot *s = &sv->slots[i];
            if (sv->stopping)
                s->restart_at = 0; /* dropped: left due, it would make every poll return at once */
            if (s->restart_at && s->restart_at <= now) {
                s->restart_at = 0;
                spawn(sv, s, false);
            }
            if (s->restart_at && s->restart_at < wake)
                wake = s->restart_at;
        }
        if (sv->stopping) {
            if (now >= sv->kill_at) {
                corio_log(CORIO_LOG_ERROR, "workers still alive after the drain deadline: killing");
                signal_all(sv, SIGKILL);
                sv->kill_at = now + KILL_MARGIN_MS;
            }
            if (sv->kill_at < wake)
                wake = sv->kill_at;
        }
        nfds_t nfds = 0;
        pfds[nfds++] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
        for (unsigned i = 0; i < sv->n; i++)
            if (sv->slots[i].ready_fd >= 0)
                pfds[nfds++] = (struct pollfd){.fd = sv->slots[i].ready_fd, .events = POLLIN};
        uint64_t left = wake > now ? wake - now : 0;
        int timeout = wake == UINT64_MAX ? -1 : left > INT_MAX ? INT_MAX : (int)left;
        int r = poll(pfds, nfds, timeout);
        if (r < 0 && errno != EINTR) {
            corio_log(CORIO_LOG_ERROR, "poll: %s", strerror(errno));
            break;
        }
        if (r <= 0)
            continue;
        if (pfds[0].revents) {
            unsigned char sigs[64];
            ssize_t n;
            while ((n = read(sig_pipe[0], sigs, sizeof sigs)) > 0)
                for (ssize_t k = 0; k < n; k++)
                    handle_signal(sv, sigs[k]);
            /* Signals may have closed ready pipes and opened others under the
             * same numbers: these revents are stale; poll again. */
            continue;
        }
        for (nfds_t k = 1; k < nfds; k++) {
            if (!pfds[k].revents)
                continue;
            for (unsigned i = 0; i < sv->n; i++)
                if (sv->slots[i].ready_fd == pfds[k].fd)
                    on_ready(sv, &sv->slots[i]);
        }
    }
    free(pfds);
    return sv->live == 0 ? 0 : 1;
}

int corio__supervise(const corio_app *app, const corio__app_opts *o) {
    supervisor sv = {.app = app, .opts = o, .n = o->workers, .rolling = -1};
    sv.slots = calloc(sv.n, sizeof *sv.slots);
    if (!sv.slots)
        return 1;
    int rc = install_signals();
    uint16_t port = o->port;
    for (unsigned i = 0; i < sv.n && rc == 0; i++) {
        sv.slots[i].ready_fd = -1;
        /* Unix sockets cannot share a path: every slot serves the one socket. */
        /* Unix sockets cannot share a path, and an inherited socket is one:
         * every slot serves the same socket then. */
        bool shared = o->unix_path || o->inherited_fd >= 0;
        int fd = shared && i > 0        ? sv.slots[0].fd
                 : o->inherited_fd >= 0 ? o->inherited_fd
                                        : corio__listen_socket(o, &port);
        if (fd >= 0 && o->inherited_fd >= 0)
            port = (uint16_t)corio__socket_port(fd);
        if (fd < 0)
            rc = fd;
        sv.slots[i].fd = fd;
    }
    if (rc) {
        corio_log(CORIO_LOG_ERROR, "cannot listen on %s:%u: %s",
                  o->unix_path ? o->unix_path : o->host, o->port, corio_strerror(rc));
        return 1;
    }
    if (o->inherited_fd >= 0)
        corio_log(CORIO_LOG_INFO, "listening on inherited fd %d (port %u) with %u workers",
                  o->inherited_fd, port, sv.n);
    else if (o->unix_path)
        corio_log(CORIO_LOG_INFO, "listening on unix:%s with %u workers", o->unix_path, sv.n);
    else
        corio_log(CORIO_LOG_INFO, "listening on %s:%u with %u workers", o->host, port, sv.n);
    for (unsigned i = 0; i < sv.n; i++)
        spawn(&sv, &sv.slots[i], false);
    int code = loop(&sv);
    close_listeners(&sv);
    if (o->unix_path)
        unlink(o->unix_path);
    free(sv.slots);
    corio_log(CORIO_LOG_INFO, "supervisor exits (%d)", code);
    return code;
}
