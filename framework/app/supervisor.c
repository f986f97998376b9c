/* SPDX-License-Identifier: MIT */
/* The supervisor of several worker processes (see corio/app.h).
 *
 * It never runs a libuv loop: it forks workers, then sleeps in poll() on a
 * self-pipe that its signal handlers write to, plus the "ready" pipes of
 * workers being started by a rolling restart.  It keeps one listening socket
 * per worker slot open for its whole life, so a worker that replaces another
 * (after a crash or a SIGHUP) serves the same socket and the connections
 * queued on it are not lost.
 *
 * Each slot is a small state machine (slot_state below) that holds at most
 * one worker, plus a replacement only during a SIGHUP roll, so no child is
 * ever forgotten; every child, retiring ones included, is also kept in one
 * list that SIGTERM, SIGUSR1 and the final SIGKILL go to (a worker that a
 * SIGHUP roll replaced gets SIGUSR2 instead of SIGTERM: it drains as for
 * SIGTERM, but /readyz on it still says ready).  Every worker
 * reports on a pipe whether it serves; a slot whose workers die before
 * serving START_FAILURES_MAX times in a row makes the supervisor give up.
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
#include "http/metrics_internal.h"
#include "net/listen.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define HEALTHY_AFTER_MS 10000
#define KILL_MARGIN_MS 5000
/* Workers in a row that die before serving, in one slot, after which the
 * supervisor gives up and exits 1 (see corio/app.h).  Such a failure is the
 * deployment's (a certificate that does not load, say), and restarting for
 * ever would hide it: the listening sockets, kept open, would queue clients
 * that nobody serves.  At the backoff below, the fifth failure comes about
 * 1.5 s after the first. */
#define START_FAILURES_MAX 5

/* A slot's life.  A slot has one worker at most (pid), and a SIGHUP
 * replacement (next_pid) only beside a worker that serves; a restart is due
 * only while it has neither.  So every fork fills an empty place, and no
 * child is ever overwritten and lost.  The ready pipe belongs to the one
 * child of the slot that is not serving yet. */
typedef enum slot_state {
    SLOT_EMPTY,     /* no worker, none due: before the first start, or stopping */
    SLOT_WAITING,   /* no worker: one is forked at restart_at (backoff after a death) */
    SLOT_STARTING,  /* pid forked, not ready yet */
    SLOT_SERVING,   /* pid serves */
    SLOT_REPLACING, /* pid serves while next_pid, its SIGHUP replacement, starts */
} slot_state;

typedef struct slot {
    slot_state state;
    int fd;                  /* listening socket, kept open by the supervisor */
    int admin_fd;            /* --admin: the admin listener's socket, likewise; or -1 */
    pid_t pid;               /* STARTING, SERVING, REPLACING: the worker; else 0 */
    pid_t next_pid;          /* REPLACING: the replacement; else 0 */
    int ready_fd;            /* ready pipe of the child not serving yet, until it reports; or -1 */
    uint64_t started_ms;     /* when pid was forked or took over */
    uint64_t restart_at;     /* WAITING: when the next worker is forked */
    unsigned deaths;         /* deaths in a row, for the backoff */
    unsigned start_failures; /* workers in a row that died before serving */
    unsigned gen;            /* the SIGHUP generation of the last fork for this slot */
    char error[256];         /* what the last worker that could not serve said */
} slot;

typedef struct supervisor {
    const corio_app *app;
    const corio__app_opts *opts;
    slot *slots;
    unsigned n;
    pid_t *kids;   /* every child not yet reaped, retiring ones included */
    unsigned live; /* how many */
    unsigned kids_cap;
    unsigned gen; /* SIGHUPs acted on so far */
    int rolling;  /* slot the SIGHUP roll is at, or -1 */
    bool stopping;
    bool notified_ready; /* READY=1 sent to the service manager */
    int code;            /* exit code once every child is reaped: 1 after giving up */
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

static unsigned slot_index(const supervisor *sv, const slot *s) {
    return (unsigned)(s - sv->slots);
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
 * SIGHUP, SIGUSR1 and SIGUSR2 are ignored, not defaulted, until the worker's loop
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
    signal(SIGUSR2, SIG_IGN); /* "retire", once the worker's loop watches it */
    block_signals(false);
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) == 0 && getppid() != parent)
        raise(SIGTERM); /* the supervisor died before prctl() */
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    for (unsigned i = 0; i < sv->n; i++) {
        slot *s = &sv->slots[i];
        if (s->fd >= 0 && s->fd != mine->fd)
            close(s->fd);
        if (s->admin_fd >= 0 && s->admin_fd != mine->admin_fd)
            close(s->admin_fd);
        if (s->ready_fd >= 0)
            close(s->ready_fd);
    }
}

/* Room for one more child in sv->kids, made before fork(): a child that the
 * supervisor could not record would escape its signals. */
static int reserve_kid(supervisor *sv) {
    if (sv->live < sv->kids_cap)
        return 0;
    unsigned cap = sv->kids_cap ? sv->kids_cap * 2 : 2 * sv->n + 2;
    pid_t *k = realloc(sv->kids, cap * sizeof *k);
    if (!k)
        return CORIO_ENOMEM;
    sv->kids = k;
    sv->kids_cap = cap;
    return 0;
}

static void forget_kid(supervisor *sv, pid_t pid) {
    for (unsigned k = 0; k < sv->live; k++)
        if (sv->kids[k] == pid) {
            sv->kids[k] = sv->kids[--sv->live];
            return;
        }
}

/* Forks a worker for slot s with a ready pipe, on which it writes 'r' once it
 * serves, or 'e' and why it cannot (worker.c), or nothing if it dies first.
 * Returns its pid, *ready_fd set to the pipe's read end, or -1.  The slot's
 * generation is set even when the fork fails: a roll tries each slot once. */
static pid_t fork_worker(supervisor *sv, slot *s, int *ready_fd) {
    int rp[2];
    s->gen = sv->gen;
    int rc = reserve_kid(sv);
    if (rc == 0)
        rc = make_pipe(rp, false);
    if (rc) {
        corio_log(CORIO_LOG_ERROR, "cannot start a worker: %s", corio_strerror(rc));
        return -1;
    }
    /* Read after the child's death, or on stale poll results: never block. */
    fcntl(rp[0], F_SETFL, fcntl(rp[0], F_GETFL) | O_NONBLOCK);
    pid_t parent = getpid();
    block_signals(true);
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        block_signals(false);
        corio_log(CORIO_LOG_ERROR, "fork: %s", strerror(err));
        close(rp[0]);
        close(rp[1]);
        return -1;
    }
    if (pid == 0) {
        child_reset(sv, s, parent);
        corio__notify_forget(); /* the supervisor speaks for the service */
        corio__metrics_worker(slot_index(sv, s));
        close(rp[0]);
        _exit(corio__worker_run(sv->app, sv->opts, s->fd, s->admin_fd, rp[1]));
    }
    block_signals(false);
    close(rp[1]);
    sv->kids[sv->live++] = pid;
    *ready_fd = rp[0];
    return pid;
}

/* Gives a slot without a worker one (EMPTY or WAITING → STARTING).  If
 * fork() fails the slot waits and tries again: it must not stay empty. */
static void start_worker(supervisor *sv, slot *s) {
    int rfd;
    pid_t pid = fork_worker(sv, s, &rfd);
    if (pid < 0) {
        s->state = SLOT_WAITING;
        s->restart_at = now_ms() + BACKOFF_FIRST_MS;
        return;
    }
    s->state = SLOT_STARTING;
    s->pid = pid;
    s->ready_fd = rfd;
    s->restart_at = 0;
    s->started_ms = now_ms();
    corio_log(CORIO_LOG_INFO, "worker %u started (pid %d)", slot_index(sv, s), (int)pid);
}

/* SIGHUP: forks a replacement beside a serving worker (SERVING →
 * REPLACING).  Returns false if it could not: the old worker serves on. */
static bool start_replacement(supervisor *sv, slot *s) {
    int rfd;
    pid_t pid = fork_worker(sv, s, &rfd);
    if (pid < 0)
        return false;
    s->state = SLOT_REPLACING;
    s->next_pid = pid;
    s->ready_fd = rfd;
    corio_log(CORIO_LOG_INFO, "worker %u started (pid %d), to replace pid %d", slot_index(sv, s),
              (int)pid, (int)s->pid);
    return true;
}

/* Every child, retiring ones included: none must outlive a SIGKILL. */
static void signal_all(supervisor *sv, int signum) {
    for (unsigned k = 0; k < sv->live; k++)
        kill(sv->kids[k], signum);
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
        if (sv->slots[i].admin_fd >= 0)
            close(sv->slots[i].admin_fd);
        sv->slots[i].admin_fd = -1;
    }
}

/* SIGTERM, SIGINT or giving up: no fork from now on (a worker forked after
 * the SIGTERM below would miss it and hold the exit up until the kill
 * deadline), every child drains. */
static void stop(supervisor *sv, const char *why) {
    if (sv->stopping)
        return;
    sv->stopping = true;
    corio__notify("STOPPING=1");
    sv->rolling = -1;
    sv->kill_at = now_ms() + sv->opts->drain_timeout_ms + KILL_MARGIN_MS;
    for (unsigned i = 0; i < sv->n; i++)
        if (sv->slots[i].state == SLOT_WAITING)
            sv->slots[i].state = SLOT_EMPTY;
    corio_log(CORIO_LOG_INFO, "%s: stopping %u worker(s)", why, sv->live);
    signal_all(sv, SIGTERM);
    close_listeners(sv);
}

static void describe_exit(int status, char *buf, size_t len) {
    if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

/* Reads what slot s's child that is not serving yet said: 'r' (it serves),
 * 'e' and why it cannot (kept in s->error), or EOF (it died).  Returns 1 for
 * 'r', 0 once it has reported (the pipe is then closed), -1 if nothing came
 * yet. */
static int read_ready(slot *s) {
    char buf[sizeof s->error];
    ssize_t n = read(s->ready_fd, buf, sizeof buf - 1);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return -1;
    close(s->ready_fd);
    s->ready_fd = -1;
    if (n > 0 && buf[0] == 'r')
        return 1;
    if (n > 1 && buf[0] == 'e') {
        memcpy(s->error, buf + 1, (size_t)n - 1);
        s->error[n - 1] = '\0';
    }
    return 0;
}

/* Slot s's starting child serves: a STARTING worker is the slot's; a
 * replacement takes over, and its predecessor drains (its connections
 * finish while the new one accepts). */
static void became_ready(supervisor *sv, slot *s) {
    if (s->state == SLOT_REPLACING) {
        kill(s->pid, SIGUSR2); /* retire: drain, the server is not stopping */
        s->pid = s->next_pid;
        s->next_pid = 0;
        s->started_ms = now_ms();
        s->deaths = 0;
    }
    s->state = SLOT_SERVING;
    s->start_failures = 0;
    s->error[0] = '\0';
    corio_log(CORIO_LOG_INFO, "worker %u (pid %d) serves", slot_index(sv, s), (int)s->pid);
    if (!sv->notified_ready) { /* the service is up once every slot serves */
        unsigned serving = 0;
        for (unsigned i = 0; i < sv->n; i++)
            serving += sv->slots[i].state == SLOT_SERVING;
        if (serving == sv->n) {
            sv->notified_ready = true;
            corio__notify("READY=1");
        }
    }
}

/* The SIGHUP roll, one slot at a time: each slot gets one worker forked
 * after the SIGHUP (generation sv->gen), which serves before its
 * predecessor retires.  A slot waiting out a backoff gets its worker now
 * (the pending restart is cancelled: the slot holds one child at most); a
 * slot whose worker is starting is rolled once it serves.  Called when the
 * roll begins and whenever the slot it is at changes state; since the
 * generation is set at each fork, each slot is tried once and the roll ends. */
static void roll_step(supervisor *sv) {
    while (sv->rolling >= 0 && !sv->stopping) {
        slot *s = &sv->slots[sv->rolling];
        bool fresh = s->gen == sv->gen;
        switch (s->state) {
        case SLOT_STARTING:
        case SLOT_REPLACING:
            return; /* on_ready() or on_death() calls again */
        case SLOT_SERVING:
            if (!fresh && start_replacement(sv, s))
                return;
            break;
        case SLOT_WAITING:
            if (!fresh) {
                uint64_t now = now_ms(), due = s->restart_at > now ? s->restart_at - now : 0;
                corio_log(CORIO_LOG_INFO, "worker %u: SIGHUP starts it now, not in %llu ms",
                          (unsigned)sv->rolling, (unsigned long long)due);
                start_worker(sv, s);
                if (s->state == SLOT_STARTING)
                    return;
            }
            break;
        case SLOT_EMPTY:
            break;
        }
        if (++sv->rolling == (int)sv->n) {
            sv->rolling = -1;
            corio_log(CORIO_LOG_INFO, "SIGHUP: every worker restarted");
        }
    }
    sv->rolling = -1;
}

static void on_ready(supervisor *sv, slot *s) {
    if (read_ready(s) != 1)
        return; /* it could not start: on_death() follows */
    became_ready(sv, s);
    if (sv->rolling == (int)slot_index(sv, s))
        roll_step(sv);
}

/* A worker died, not while stopping: the next is forked after a backoff that
 * doubles with each death in a row, from 100 ms up to 5 s (a worker that
 * lived 10 s starts the count again). */
static void schedule_restart(supervisor *sv, slot *s, pid_t pid, const char *how) {
    uint64_t now = now_ms();
    if (now - s->started_ms >= HEALTHY_AFTER_MS)
        s->deaths = 0;
    unsigned shift = s->deaths < 6 ? s->deaths : 6;
    uint64_t delay = (uint64_t)BACKOFF_FIRST_MS << shift;
    if (delay > BACKOFF_MAX_MS)
        delay = BACKOFF_MAX_MS;
    s->deaths++;
    s->state = SLOT_WAITING;
    s->restart_at = now + delay;
    if (s->start_failures)
        corio_log(CORIO_LOG_WARN,
                  "worker %u (pid %d) %s before serving (%s); restarting in %llu ms",
                  slot_index(sv, s), (int)pid, how, s->error[0] ? s->error : "no reason given",
                  (unsigned long long)delay);
    else
        corio_log(CORIO_LOG_WARN, "worker %u (pid %d) %s; restarting in %llu ms", slot_index(sv, s),
                  (int)pid, how, (unsigned long long)delay);
}

/* START_FAILURES_MAX workers in a row could not serve: stop, and exit 1
 * with the last one's reason, as a single process that cannot start does. */
static void give_up(supervisor *sv, slot *s, pid_t pid, const char *how) {
    corio_log(CORIO_LOG_ERROR,
              "worker %u could not start, %u times in a row; the last (pid %d) %s: %s; giving up",
              slot_index(sv, s), s->start_failures, (int)pid, how,
              s->error[0] ? s->error : "no reason given");
    sv->code = 1;
    stop(sv, "cannot start workers");
}

/* The slot's worker (not a replacement) died. */
static void worker_died(supervisor *sv, slot *s, pid_t pid, const char *how) {
    unsigned i = slot_index(sv, s);
    if (s->state == SLOT_REPLACING) { /* the replacement, already started, takes its place */
        corio_log(CORIO_LOG_WARN, "worker %u (pid %d) %s; its replacement (pid %d) takes over", i,
                  (int)pid, how, (int)s->next_pid);
        s->pid = s->next_pid;
        s->next_pid = 0;
        s->state = SLOT_STARTING;
        s->started_ms = now_ms();
        return;
    }
    bool served = s->state == SLOT_SERVING;
    s->pid = 0;
    s->state = SLOT_EMPTY;
    if (sv->stopping)
        return;
    if (served)
        s->start_failures = 0;
    else if (++s->start_failures >= START_FAILURES_MAX) {
        give_up(sv, s, pid, how);
        return;
    }
    schedule_restart(sv, s, pid, how);
}

/* Child `pid` of slot s died.  What it wrote on its ready pipe is read
 * first: it may have served before it died, or said why it could not. */
static void on_death(supervisor *sv, slot *s, pid_t pid, int status) {
    char how[96];
    describe_exit(status, how, sizeof how);
    pid_t unready = s->state == SLOT_REPLACING ? s->next_pid : s->pid;
    if (pid == unready && s->ready_fd >= 0 && read_ready(s) == 1)
        became_ready(sv, s);
    if (s->ready_fd >= 0 && pid == unready) { /* nothing to read from a dead writer: EOF soon */
        close(s->ready_fd);
        s->ready_fd = -1;
    }
    if (pid == s->next_pid) {
        corio_log(CORIO_LOG_ERROR, "replacement worker %u (pid %d) %s (%s); pid %d serves on",
                  slot_index(sv, s), (int)pid, how, s->error[0] ? s->error : "no reason given",
                  (int)s->pid);
        s->next_pid = 0;
        s->state = SLOT_SERVING;
        s->error[0] = '\0';
    } else {
        worker_died(sv, s, pid, how);
    }
    if (sv->rolling == (int)slot_index(sv, s))
        roll_step(sv);
}

static void reap(supervisor *sv) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        forget_kid(sv, pid);
        corio__metrics_reaped(pid);
        for (unsigned i = 0; i < sv->n; i++) {
            slot *s = &sv->slots[i];
            if (pid == s->pid || pid == s->next_pid) {
                on_death(sv, s, pid, status);
                break;
            }
        } /* no slot's: a retired worker that finished its drain */
    }
}

static void handle_signal(supervisor *sv, int signum) {
    switch (signum) {
    case SIGCHLD:
        reap(sv);
        break;
    case SIGTERM:
    case SIGINT:
        stop(sv, signum == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    case SIGHUP:
        if (sv->stopping)
            break;
        if (sv->rolling >= 0) {
            corio_log(CORIO_LOG_INFO, "SIGHUP: a rolling restart is under way already");
            break;
        }
        corio_log(CORIO_LOG_INFO, "SIGHUP: restarting workers one at a time");
        sv->gen++;
        sv->rolling = 0;
        roll_step(sv);
        break;
    case SIGUSR1:
        signal_all(sv, SIGUSR1);
        break;
    }
}

/* Forks the workers whose backoff is over.  Returns when the loop must wake
 * next (a restart due, or the kill deadline while stopping), or UINT64_MAX. */
static uint64_t run_timers(supervisor *sv) {
    uint64_t now = now_ms(), wake = UINT64_MAX;
    for (unsigned i = 0; i < sv->n; i++) {
        slot *s = &sv->slots[i];
        if (s->state == SLOT_WAITING && s->restart_at <= now)
            start_worker(sv, s);
        if (s->state == SLOT_WAITING && s->restart_at < wake)
            wake = s->restart_at; /* fork() failed again: retry later */
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
    return wake;
}

/* Acts on one poll() result: the signals first, or one ready pipe.  After
 * either, the other revents may be stale (a pipe closed, another opened
 * under the same number): the caller polls again. */
static void dispatch(supervisor *sv, const struct pollfd *pfds, nfds_t nfds) {
    if (pfds[0].revents) {
        unsigned char sigs[64];
        ssize_t n;
        while ((n = read(sig_pipe[0], sigs, sizeof sigs)) > 0)
            for (ssize_t k = 0; k < n; k++)
                handle_signal(sv, sigs[k]);
        return;
    }
    for (nfds_t k = 1; k < nfds; k++) {
        if (!pfds[k].revents)
            continue;
        for (unsigned i = 0; i < sv->n; i++)
            if (sv->slots[i].ready_fd == pfds[k].fd) {
                on_ready(sv, &sv->slots[i]);
                return;
            }
    }
}

static int loop(supervisor *sv) {
    struct pollfd *pfds = calloc(sv->n + 1, sizeof *pfds);
    if (!pfds)
        return 1;
    while (!sv->stopping || sv->live > 0) {
        uint64_t wake = run_timers(sv), now = now_ms();
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
        if (r > 0)
            dispatch(sv, pfds, nfds);
    }
    free(pfds);
    return sv->live == 0 ? sv->code : 1;
}

/* Once every slot's TCP socket (admin: its admin socket) listens: no other
 * server's may (corio__listen_exclusive). */
static int check_exclusive(supervisor *sv, const char *host, uint16_t port, bool admin) {
    int *fds = malloc(sv->n * sizeof *fds);
    if (!fds)
        return CORIO_ENOMEM;
    for (unsigned i = 0; i < sv->n; i++)
        fds[i] = admin ? sv->slots[i].admin_fd : sv->slots[i].fd;
    int rc = corio__listen_exclusive(host, port, fds, sv->n);
    free(fds);
    return rc;
}

/* One listening socket per slot.  Unix sockets cannot share a path, and an
 * inherited socket is one: every slot serves the same socket then.  Returns
 * 0 or a negative code; *port gets the port bound. */
static int open_listeners(supervisor *sv, uint16_t *port) {
    const corio__app_opts *o = sv->opts;
    bool shared = o->unix_path || o->inherited_fd >= 0;
    int rc = corio__listen_check(o);
    if (rc)
        return rc;
    for (unsigned i = 0; i < sv->n; i++) {
        int fd = shared && i > 0        ? sv->slots[0].fd
                 : o->inherited_fd >= 0 ? o->inherited_fd
                                        : corio__listen_socket(o, port);
        if (fd < 0)
            return fd;
        if (o->inherited_fd >= 0)
            *port = (uint16_t)corio__socket_port(fd);
        sv->slots[i].fd = fd;
    }
    return shared ? 0 : check_exclusive(sv, o->host, o->reuse_port ? 0 : o->port, false);
}

/* --admin: one admin socket per slot, all on one port, as for TCP above.
 * Returns 0 or a negative code; *port gets the port bound. */
static int open_admin_listeners(supervisor *sv, uint16_t *port) {
    const corio__app_opts *o = sv->opts;
    *port = o->admin_port;
    if (!o->admin)
        return 0;
    int rc = corio__admin_check(o);
    for (unsigned i = 0; rc == 0 && i < sv->n; i++) {
        int fd = corio__admin_socket(o, port);
        if (fd < 0)
            return fd;
        sv->slots[i].admin_fd = fd;
    }
    return rc ? rc : check_exclusive(sv, o->admin_host, o->admin_port, true);
}

int corio__supervise(const corio_app *app, const corio__app_opts *o) {
    supervisor sv = {.app = app, .opts = o, .n = o->workers, .rolling = -1};
    sv.slots = calloc(sv.n, sizeof *sv.slots);
    if (!sv.slots)
        return 1;
    for (unsigned i = 0; i < sv.n; i++)
        sv.slots[i] = (slot){.state = SLOT_EMPTY, .fd = -1, .admin_fd = -1, .ready_fd = -1};
    uint16_t port = o->port;
    int rc = install_signals();
    if (rc == 0)
        rc = open_listeners(&sv, &port);
    if (rc) {
        char why[160];
        corio__listen_error(o, rc, why, sizeof why);
        if (o->unix_path)
            corio_log(CORIO_LOG_ERROR, "cannot listen on unix:%s: %s", o->unix_path, why);
        else
            corio_log(CORIO_LOG_ERROR, "cannot listen on %s:%u: %s", o->host, o->port, why);
    }
    uint16_t admin_port = 0;
    char addr[80];
    if (rc == 0 && (rc = open_admin_listeners(&sv, &admin_port)) != 0)
        corio_log(CORIO_LOG_ERROR, "cannot listen on %s (admin): %s",
                  corio__address(o->admin_host, o->admin_port, addr, sizeof addr),
                  corio__admin_error(rc));
    if (rc) {
        close_listeners(&sv);
        free(sv.slots);
        return 1;
    }
    if (o->inherited_fd >= 0)
        corio_log(CORIO_LOG_INFO, "listening on inherited fd %d (port %u) with %u workers",
                  o->inherited_fd, port, sv.n);
    else if (o->unix_path)
        corio_log(CORIO_LOG_INFO, "listening on unix:%s with %u workers", o->unix_path, sv.n);
    else
        corio_log(CORIO_LOG_INFO, "listening on %s:%u with %u workers", o->host, port, sv.n);
    if (o->admin)
        corio_log(CORIO_LOG_INFO, "admin listener on %s",
                  corio__address(o->admin_host, admin_port, addr, sizeof addr));
    for (unsigned i = 0; i < sv.n; i++)
        start_worker(&sv, &sv.slots[i]);
    int code = loop(&sv);
    close_listeners(&sv);
    if (o->unix_path)
        unlink(o->unix_path);
    free(sv.slots);
    free(sv.kids);
    corio_log(CORIO_LOG_INFO, "supervisor exits (%d)", code);
    return code;
}
