/* SPDX-License-Identifier: MIT */
/* ws_load: a closed-loop WebSocket echo load generator for bench/ws_bench.sh.
 *
 *   ws_load --port PORT [--path /echo] [--conns 64] [--duration 5] [--size 32]
 *           [--depth 1] [--binary] [--pid SERVER_PID]
 *   ws_load --port PORT --idle SECONDS [--conns 10000] [--path /echo]
 *
 * Load mode: opens CONNS WebSockets to 127.0.0.1:PORT (the opening
 * handshake of RFC 6455 4.1, no extension or subprotocol offered), then on
 * each keeps DEPTH messages of SIZE bytes in flight (text, or binary with
 * --binary), sending the next one when an echo comes back, for DURATION
 * seconds counted from the moment every handshake is done.  It prints one
 * line of key=value pairs:
 *
 *   ws_load conns=64 depth=1 size=32 secs=5.000 rts=N rps=R p50_us=..
 *   p99_us=.. max_us=.. errors=N client_cpu_s=.. [server_cpu_s=..
 *   server_us_per_rt=.. other_cpu_s=..]
 *
 * A round trip (rts) is one message sent and its echo received whole and
 * equal to what was sent; its latency runs from the write to the end of the
 * echo.  With --pid the server's utime+stime (/proc/PID/stat) is read at
 * the start and at the end of the measured window, after the handshakes and
 * before the teardown, so neither is charged to the messages.  client_cpu_s
 * is this process's own CPU time over the same window: near DURATION, the
 * client is the bottleneck.  other_cpu_s (with --pid) is what other
 * processes used meanwhile, the larger of two readings: the machine's busy
 * time (/proc/stat, all CPUs: user, nice, system, steal) less the server's
 * and the client's (which hides up to the softirq time charged to those two
 * as well), and the sum over the other user processes' utime+stime in
 * /proc/PID/stat (which misses those that ended inside the window).
 *
 * Idle mode (--idle): opens CONNS WebSockets, at most 256 handshakes at a
 * time (a listen backlog that overflows costs a 1 s SYN retry), prints
 *
 *   ws_load ready open=N errors=N
 *
 * once all are open (or failed), holds them idle for SECONDS answering the
 * server's pings, then prints "ws_load done open=N closed_early=N" and
 * exits: the driver reads the server's memory in between.  The handshakes
 * may take 30 s here.
 *
 * The framing is written here (masked client frames, unmasked server
 * frames, pings answered, a close frame on the way out), independent of
 * corio's own WebSocket code, so that every server is measured by the same
 * cheap client.  The key is RFC 6455's sample key, whose accept value is
 * known: no SHA-1 needed.  The mask is one random word per connection, not
 * per frame (the servers cannot tell).  Loopback only; bounded by DURATION
 * (or SECONDS) plus 10 s (30 s) for the handshakes.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 65535      /* message size, so that a header is at most 8 bytes */
#define MAX_DEPTH 64        /* messages in flight per connection */
#define HIST_US 1000000     /* latencies above 1 s count as 1 s */
#define HANDSHAKE_S 10      /* every handshake done within this, or fail */
#define IDLE_HANDSHAKE_S 30 /* ... in idle mode (thousands of them) */
#define IDLE_BATCH 256      /* handshakes at a time in idle mode */

#define WS_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define WS_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* RFC 6455 1.3 */

enum state { CONNECTING, HANDSHAKE, OPEN, DEAD };

typedef struct conn {
    int fd;
    enum state st;
    uint8_t mask[4];
    uint8_t *in; /* bytes read and not yet parsed */
    size_t inlen;
    uint8_t *out; /* bytes to write (when a write fell short) */
    size_t outlen, outcap;
    uint64_t sent_ns[MAX_DEPTH]; /* write times of the messages in flight, oldest first */
    unsigned head, inflight;
    bool want_out; /* EPOLLOUT registered */
} conn;

static struct {
    int port, conns, depth, size, pid;
    double duration, idle;
    const char *path;
    bool binary;
} opt = {.conns = -1, .depth = 1, .size = 32, .duration = 5, .path = "/echo"};

static int ep;
static conn *cs;
static uint8_t payload[MAX_SIZE];
static uint32_t hist[HIST_US + 1];
static uint64_t rts, errors, max_us;
static size_t in_cap; /* per connection: the handshake's answer, or DEPTH echoes and a ping */
static bool measuring, sending = true;
static int nopen, nfailed;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double cpu_self_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of PID in clock ticks, or -1. */
static long long cpu_ticks(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p)
        return -1;
    unsigned long long ut, st;
    /* after ")": state (3), ppid .. cmajflt (4-12), utime (14), stime (15) */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* Busy ticks of the whole machine in processes (user, nice, system) and stolen by the
 * hypervisor, or -1.  Not irq and softirq: with tick accounting a tick in a softirq
 * that interrupted a task is charged to that task's stime as well as to softirq, and
 * loopback's softirqs that run on an idle CPU are the benchmark's own work. */
static long long machine_busy_ticks(void) {
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    return (long long)(v[0] + v[1] + v[2] + v[7]);
}

/* CPU ticks of the user processes other than this one and the server, as a table of
 * (pid, utime + stime) sorted by pid; kernel threads left out (loopback's ksoftirqd
 * work is the benchmark's own).  Returns the count, or -1. */
typedef struct proc_ticks {
    int pid;
    long long ticks;
} proc_ticks;

static int cmp_pid(const void *a, const void *b) {
    return ((const proc_ticks *)a)->pid - ((const proc_ticks *)b)->pid;
}

static int other_procs(proc_ticks *out, int cap) {
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0, self = getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < cap) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == self || pid == opt.pid)
            continue;
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = 0;
        char *p = strrchr(buf, ')');
        unsigned flags;
        unsigned long long ut, st;
        if (!p ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %u %*u %*u %*u %*u %llu %llu", &flags, &ut,
                   &st) != 3 ||
            (flags & 0x00200000u)) /* PF_KTHREAD */
            continue;
        out[n].pid = pid;
        out[n].ticks = (long long)(ut + st);
        n++;
    }
    closedir(d);
    qsort(out, (size_t)n, sizeof *out, cmp_pid);
    return n;
}

/* Ticks the processes in b used since a: the difference for those in both, the
 * whole for those new in b (started inside the window; those that ended in it are
 * missed). */
static long long other_procs_delta(const proc_ticks *a, int na, const proc_ticks *b, int nb) {
    long long sum = 0;
    for (int i = 0, j = 0; j < nb; j++) {
        while (i < na && a[i].pid < b[j].pid)
            i++;
        long long t = b[j].ticks - (i < na && a[i].pid == b[j].pid ? a[i].ticks : 0);
        sum += t > 0 ? t : 0;
    }
    return sum;
}

static void conn_fail(conn *c) {
    if (c->st == DEAD)
        return;
    if (c->st == OPEN)
        nopen--;
    else
        nfailed++;
    errors++;
    close(c->fd); /* also leaves the epoll set */
    c->st = DEAD;
}

static void set_events(conn *c, bool out) {
    if (c->want_out == out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* Writes what is queued; returns false if the connection failed. */
static bool flush_out(conn *c) {
    while (c->outlen) {
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_events(c, true);
                return true;
            }
            conn_fail(c);
            return false;
        }
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
    set_events(c, false);
    return true;
}

static bool queue_out(conn *c, const void *p, size_t len) {
    if (c->outlen + len > c->outcap) {
        size_t cap = (c->outlen + len) * 2;
        uint8_t *o = realloc(c->out, cap);
        if (!o) {
            conn_fail(c);
            return false;
        }
        c->out = o;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, p, len);
    c->outlen += len;
    return true;
}

/* Appends a masked frame (FIN, opcode op) with len bytes of data. */
static bool queue_frame(conn *c, int op, const uint8_t *data, size_t len) {
    uint8_t h[8 + MAX_SIZE];
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | op);
    if (len < 126) {
        h[n++] = (uint8_t)(0x80 | len);
    } else {
        h[n++] = 0x80 | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    }
    memcpy(h + n, c->mask, 4);
    n += 4;
    for (size_t i = 0; i < len; i++)
        h[n + i] = data[i] ^ c->mask[i & 3];
    return queue_out(c, h, n + len);
}

static bool send_msgs(conn *c, unsigned k) {
    uint64_t t = now_ns();
    for (unsigned i = 0; i < k; i++) {
        if (!queue_frame(c, opt.binary ? 2 : 1, payload, (size_t)opt.size))
            return false;
        c->sent_ns[(c->head + c->inflight) % MAX_DEPTH] = t;
        c->inflight++;
    }
    return flush_out(c);
}

static void record(uint64_t sent, uint64_t t) {
    uint64_t us = (t - sent) / 1000;
    if (us > max_us)
        max_us = us;
    hist[us > HIST_US ? HIST_US : us]++;
    rts++;
}

static bool open_conn(conn *c) {
    c->st = OPEN;
    nopen++;
    if (opt.idle > 0)
        return true;
    return send_msgs(c, (unsigned)opt.depth);
}

/* The server's 101: status, Upgrade and the accept value (case-insensitive names). */
static bool parse_handshake(conn *c) {
    uint8_t *end = memmem(c->in, c->inlen, "\r\n\r\n", 4);
    if (!end)
        return c->inlen < 8192 || (conn_fail(c), false);
    size_t hlen = (size_t)(end - c->in) + 4;
    char *h = strndup((char *)c->in, hlen);
    bool ok = h && strncmp(h, "HTTP/1.1 101", 12) == 0 && strcasestr(h, "\r\nupgrade:") &&
              strstr(h, WS_ACCEPT) && !strcasestr(h, "sec-websocket-extensions");
    free(h);
    if (!ok) {
        fprintf(stderr, "ws_load: bad handshake answer: %.*s\n", (int)(hlen > 200 ? 200 : hlen),
                (char *)c->in);
        conn_fail(c);
        return false;
    }
    memmove(c->in, c->in + hlen, c->inlen - hlen);
    c->inlen -= hlen;
    return open_conn(c);
}

/* Parses whole frames from c->in; returns false if the connection failed. */
static bool parse_frames(conn *c) {
    size_t off = 0;
    unsigned done = 0;
    uint64_t t = 0;
    while (c->inlen - off >= 2) {
        const uint8_t *p = c->in + off;
        int op = p[0] & 0x0f;
        bool fin = p[0] & 0x80;
        if (p[1] & 0x80) { /* a server must not mask */
            conn_fail(c);
            return false;
        }
        size_t len = p[1] & 0x7f, h = 2;
        if (len == 126) {
            if (c->inlen - off < 4)
                break;
            len = ((size_t)p[2] << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (c->inlen - off < 10)
                break;
            len = 0;
            for (int i = 2; i < 10; i++)
                len = (len << 8) | p[i];
            h = 10;
            if (len > MAX_SIZE) {
                conn_fail(c);
                return false;
            }
        }
        if (c->inlen - off < h + len)
            break;
        const uint8_t *data = p + h;
        off += h + len;
        if (op == 0x9) { /* ping: pong with its data */
            if (!queue_frame(c, 0xA, data, len) || !flush_out(c))
                return false;
        } else if (op == 0x8) { /* close: the server ends it */
            conn_fail(c);
            return false;
        } else if (op == 0xA) {
            /* an unasked pong: ignored */
        } else if (fin && (op == 1 || op == 2 || op == 0)) {
            if (opt.idle > 0 || c->inflight == 0 || len != (size_t)opt.size ||
                memcmp(data, payload, len) != 0) {
                conn_fail(c);
                return false;
            }
            if (!t)
                t = now_ns();
            if (measuring)
                record(c->sent_ns[c->head], t);
            c->head = (c->head + 1) % MAX_DEPTH;
            c->inflight--;
            done++;
        } else { /* a fragment of a message: never, for small echoes */
            conn_fail(c);
            return false;
        }
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
    if (done && sending)
        return send_msgs(c, done);
    return true;
}

static void on_readable(conn *c) {
    for (;;) {
        size_t room = in_cap - c->inlen;
        if (room == 0) { /* a frame larger than the buffer: not an echo of ours */
            conn_fail(c);
            return;
        }
        ssize_t n = recv(c->fd, c->in + c->inlen, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            conn_fail(c);
            return;
        }
        c->inlen += (size_t)n;
        if (c->st == HANDSHAKE && !parse_handshake(c))
            return;
        if (c->st != OPEN || !parse_frames(c))
            return;
        if ((size_t)n < room) /* a short read: the socket is drained */
            return;
    }
}

static bool start_conn(conn *c) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("ws_load: socket");
        c->st = DEAD;
        nfailed++;
        errors++;
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint32_t r = (uint32_t)random() | 1;
    memcpy(c->mask, &r, 4);
    c->in = malloc(in_cap);
    c->st = CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    if (!c->in || (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) ||
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
        conn_fail(c);
        return false;
    }
    return true;
}

static void on_writable(conn *c) {
    if (c->st == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) {
            conn_fail(c);
            return;
        }
        char req[512];
        int n = snprintf(req, sizeof req,
                         "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                         "Connection: Upgrade\r\nSec-WebSocket-Key: " WS_KEY "\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n",
                         opt.path, opt.port);
        c->st = HANDSHAKE;
        if (!queue_out(c, req, (size_t)n))
            return;
    }
    flush_out(c);
}

/* One turn of the loop: up to timeout_ms. */
static void poll_once(int timeout_ms) {
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn *c = evs[i].data.ptr;
        if (c->st != DEAD && (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) &&
            (c->st == CONNECTING || c->outlen))
            on_writable(c);
        if (c->st != DEAD && c->st != CONNECTING &&
            (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
            on_readable(c);
        else if (c->st == CONNECTING && (evs[i].events & (EPOLLERR | EPOLLHUP)))
            conn_fail(c);
    }
}

/* Opens the connections, at most batch handshakes at a time; false if time ran out. */
static bool open_all(int batch, int secs) {
    uint64_t deadline = now_ns() + (uint64_t)secs * 1000000000u;
    int started = 0;
    while (nopen + nfailed < opt.conns) {
        while (started < opt.conns && started - nopen - nfailed < batch)
            start_conn(&cs[started++]);
        if (now_ns() > deadline)
            return false;
        poll_once(100);
    }
    return true;
}

static uint64_t percentile(double q) {
    uint64_t want = (uint64_t)((double)rts * q), seen = 0;
    if (rts == 0)
        return 0;
    if (want >= rts)
        want = rts - 1;
    for (uint64_t us = 0; us <= HIST_US; us++) {
        seen += hist[us];
        if (seen > want)
            return us;
    }
    return HIST_US;
}

/* Up to 2 s for the echoes still in flight, so that no server sees a close
 * while it has an echo to send (uvicorn logs one as an error). */
static void drain(void) {
    uint64_t end = now_ns() + 2000000000u;
    for (;;) {
        bool busy = false;
        for (int i = 0; i < opt.conns && !busy; i++)
            busy = cs[i].st == OPEN && cs[i].inflight > 0;
        if (!busy || now_ns() > end)
            return;
        poll_once(10);
    }
}

/* A close frame (1000) on every open connection, then the sockets close. */
static void close_all(void) {
    static const uint8_t code[2] = {0x03, 0xe8};
    for (int i = 0; i < opt.conns; i++) {
        conn *c = &cs[i];
        if (c->st == OPEN && queue_frame(c, 0x8, code, 2))
            (void)send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (c->st != DEAD)
            close(c->fd);
    }
}

static int usage(void) {
    fprintf(stderr, "usage: ws_load --port PORT [--path P] [--conns N] [--duration S] [--size B]"
                    " [--depth D] [--binary] [--pid PID]\n"
                    "       ws_load --port PORT --idle S [--conns N] [--path P]\n");
    return 2;
}

static int parse_args(int argc, char **argv) {
    static const struct option lo[] = {
        {"port", 1, 0, 'P'}, {"path", 1, 0, 'u'},  {"conns", 1, 0, 'c'},  {"duration", 1, 0, 'd'},
        {"size", 1, 0, 's'}, {"depth", 1, 0, 'D'}, {"binary", 0, 0, 'b'}, {"pid", 1, 0, 'p'},
        {"idle", 1, 0, 'i'}, {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'P':
            opt.port = atoi(optarg);
            break;
        case 'u':
            opt.path = optarg;
            break;
        case 'c':
            opt.conns = atoi(optarg);
            break;
        case 'd':
            opt.duration = atof(optarg);
            break;
        case 's':
            opt.size = atoi(optarg);
            break;
        case 'D':
            opt.depth = atoi(optarg);
            break;
        case 'b':
            opt.binary = true;
            break;
        case 'p':
            opt.pid = atoi(optarg);
            break;
        case 'i':
            opt.idle = atof(optarg);
            break;
        default:
            return usage();
        }
    }
    if (opt.conns < 0)
        opt.conns = opt.idle > 0 ? 10000 : 64;
    if (optind != argc || opt.port <= 0 || opt.port > 65535 || opt.conns < 1 || opt.conns > 60000 ||
        opt.size < 0 || opt.size > MAX_SIZE || opt.depth < 1 || opt.depth > MAX_DEPTH ||
        opt.duration <= 0 || opt.duration > 60 || opt.idle < 0 || opt.idle > 60 ||
        opt.path[0] != '/' || strlen(opt.path) > 200)
        return usage();
    return 0;
}

/* Idle mode: open, report, hold, report. */
static int run_idle(void) {
    bool all = open_all(IDLE_BATCH, IDLE_HANDSHAKE_S);
    printf("ws_load ready open=%d errors=%llu%s\n", nopen, (unsigned long long)errors,
           all ? "" : " timeout=1");
    fflush(stdout);
    int was_open = nopen;
    uint64_t end = now_ns() + (uint64_t)(opt.idle * 1e9);
    while (now_ns() < end)
        poll_once(100);
    printf("ws_load done open=%d closed_early=%d\n", nopen, was_open - nopen);
    close_all();
    return nopen == opt.conns ? 0 : 1;
}

static int run_load(void) {
    for (int i = 0; i < opt.size; i++) /* printable, valid UTF-8 */
        payload[i] = (uint8_t)('a' + i % 26);
    if (!open_all(opt.conns, HANDSHAKE_S)) {
        fprintf(stderr, "ws_load: handshakes not done in %d s (open %d of %d)\n", HANDSHAKE_S,
                nopen, opt.conns);
        return 1;
    }
    enum { MAX_PROCS = 4096 };
    static proc_ticks p0[MAX_PROCS], p1[MAX_PROCS];
    int np0 = opt.pid ? other_procs(p0, MAX_PROCS) : -1;
    long long t0 = opt.pid ? cpu_ticks(opt.pid) : -1, m0 = machine_busy_ticks();
    double c0 = cpu_self_s();
    uint64_t start = now_ns(), end = start + (uint64_t)(opt.duration * 1e9);
    measuring = true;
    while (now_ns() < end && nopen > 0)
        poll_once(10);
    uint64_t stop = now_ns();
    measuring = sending = false;
    long long t1 = opt.pid ? cpu_ticks(opt.pid) : -1, m1 = machine_busy_ticks();
    int np1 = opt.pid ? other_procs(p1, MAX_PROCS) : -1;
    double c1 = cpu_self_s(), secs = (double)(stop - start) / 1e9;
    drain();
    close_all();
    printf("ws_load conns=%d depth=%d size=%d secs=%.3f rts=%llu rps=%.0f p50_us=%llu "
           "p99_us=%llu max_us=%llu errors=%llu client_cpu_s=%.3f",
           opt.conns, opt.depth, opt.size, secs, (unsigned long long)rts, (double)rts / secs,
           (unsigned long long)percentile(0.50), (unsigned long long)percentile(0.99),
           (unsigned long long)max_us, (unsigned long long)errors, c1 - c0);
    if (t0 >= 0 && t1 >= 0) {
        double tck = (double)sysconf(_SC_CLK_TCK), s = (double)(t1 - t0) / tck;
        printf(" server_cpu_s=%.3f server_us_per_rt=%.3f", s, rts ? s * 1e6 / (double)rts : 0.0);
        /* everything else the machine did meanwhile: the larger of two readings */
        double other = m0 >= 0 && m1 >= 0 ? (double)(m1 - m0) / tck - s - (c1 - c0) : 0;
        if (np0 >= 0 && np1 >= 0) {
            double procs = (double)other_procs_delta(p0, np0, p1, np1) / tck;
            if (procs > other)
                other = procs;
        }
        printf(" other_cpu_s=%.3f", other > 0 ? other : 0.0);
    }
    printf("\n");
    return rts > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (parse_args(argc, argv) != 0)
        return 2;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 16) {
        fprintf(stderr, "ws_load: %d connections need more than the fd limit %llu\n", opt.conns,
                (unsigned long long)rl.rlim_cur);
        return 1;
    }
    srandom((unsigned)now_ns());
    in_cap = 8192 + (size_t)opt.depth * ((size_t)opt.size + 16) + 256;
    ep = epoll_create1(EPOLL_CLOEXEC);
    cs = calloc((size_t)opt.conns, sizeof *cs);
    if (ep < 0 || !cs) {
        perror("ws_load");
        return 1;
    }
    return opt.idle > 0 ? run_idle() : run_load();
}
