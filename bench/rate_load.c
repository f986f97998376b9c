/* SPDX-License-Identifier: MIT */
/* rate_load: an open-loop HTTP/1.1 load generator for bench/http_bench.sh.
 *
 *   rate_load PORT PATH RATE CONNS SECONDS
 *
 * Sends GET PATH to 127.0.0.1:PORT at RATE requests per second in total,
 * spread round-robin over CONNS keep-alive connections, for SECONDS, and
 * prints one line:
 *
 *   rate_load sent=N done=N errors=N rate=R p50_us=.. p90_us=.. p99_us=..
 *   p999_us=.. max_us=..
 *
 * Unlike wrk, the send times do not depend on the server: request i is due
 * at start + i/RATE whatever happened before, and its latency runs from
 * that due time to the end of its response (so a stalled server is charged
 * for every request it held up: no coordinated omission).  A request due on
 * a connection that still waits for an answer is pipelined behind it.  At a
 * rate the server sustains the percentiles are the server's own queueing,
 * not the client's, which is what a closed loop that saturates the client
 * (wrk with many connections on one core) cannot show.
 *
 * Responses must carry Content-Length (hello's and nginx's do).  Loopback
 * only; bounded by SECONDS plus a 2 s grace for the last answers.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define HIST_US 2000000 /* latencies above 2 s count as 2 s */
#define QUEUE 4096      /* outstanding requests per connection */

typedef struct conn {
    int fd;
    char in[65536];
    size_t inlen;
    uint64_t due[QUEUE]; /* due times of the requests in flight, in order */
    size_t head, n;
    const char *out; /* the rest of the request being written */
    size_t outlen;
    size_t pending_sends; /* requests due but not yet written (socket full) */
} conn;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t *hist;
static uint64_t done, errors, max_us;

static void record(uint64_t due, uint64_t t) {
    uint64_t us = t > due ? (t - due) / 1000 : 0;
    if (us > max_us)
        max_us = us;
    hist[us < HIST_US ? us : HIST_US - 1]++;
    done++;
}

static uint64_t percentile(double p) {
    uint64_t want = (uint64_t)(p * (double)done + 0.5), seen = 0;
    if (want == 0)
        want = 1;
    for (uint64_t us = 0; us < HIST_US; us++) {
        seen += hist[us];
        if (seen >= want)
            return us;
    }
    return HIST_US;
}

static const char *request;
static size_t request_len;

/* Writes what this connection owes; false on a socket error. */
static bool flush_out(conn *c) {
    for (;;) {
        if (c->outlen == 0) {
            if (c->pending_sends == 0)
                return true;
            c->pending_sends--;
            c->out = request;
            c->outlen = request_len;
        }
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        c->out += n;
        c->outlen -= (size_t)n;
    }
}

/* Consumes whole responses from c->in; false on something unparsable. */
static bool take_responses(conn *c, uint64_t t) {
    size_t off = 0;
    for (;;) {
        char *end = memmem(c->in + off, c->inlen - off, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head = (size_t)(end - (c->in + off)) + 4;
        char *cl = memmem(c->in + off, head, "\r\nContent-Length:", 17);
        if (!cl)
            cl = memmem(c->in + off, head, "\r\ncontent-length:", 17);
        if (!cl || strncmp(c->in + off, "HTTP/1.1 200", 12) != 0)
            return false;
        size_t body = strtoul(cl + 17, NULL, 10);
        if (c->inlen - off < head + body)
            break;
        off += head + body;
        if (c->n == 0)
            return false; /* an answer nobody asked for */
        record(c->due[c->head], t);
        c->head = (c->head + 1) % QUEUE;
        c->n--;
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
    return true;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: rate_load PORT PATH RATE CONNS SECONDS\n");
        return 2;
    }
    int port = atoi(argv[1]);
    const char *path = argv[2];
    double rate = atof(argv[3]);
    int nconns = atoi(argv[4]);
    double secs = atof(argv[5]);
    if (port <= 0 || port > 65535 || rate <= 0 || rate > 1e7 || nconns <= 0 || nconns > MAX_CONNS ||
        secs <= 0 || secs > 600) {
        fprintf(stderr, "rate_load: bad arguments\n");
        return 2;
    }
    static char req[512];
    int rl = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", path, port);
    if (rl <= 0 || (size_t)rl >= sizeof req)
        return 2;
    request = req;
    request_len = (size_t)rl;
    hist = calloc(HIST_US, sizeof *hist);
    conn *conns = calloc((size_t)nconns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!hist || !conns || ep < 0) {
        fprintf(stderr, "rate_load: out of memory\n");
        return 1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("rate_load: connect");
            return 1;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    uint64_t interval = (uint64_t)(1e9 / rate);
    uint64_t total = (uint64_t)(rate * secs);
    uint64_t start = now_ns(), sent = 0;
    uint64_t stop_at = start + (uint64_t)(secs * 1e9) + 2000000000u; /* grace for the last */
    struct epoll_event evs[MAX_CONNS];
    while (done + errors < total) {
        uint64_t t = now_ns();
        if (t > stop_at)
            break;
        /* Every request due by now goes out, whatever the answers. */
        while (sent < total && start + sent * interval <= t) {
            conn *c = &conns[sent % (uint64_t)nconns];
            if (c->n == QUEUE) {
                errors++; /* the server is this far behind: count it lost */
            } else {
                c->due[(c->head + c->n) % QUEUE] = start + sent * interval;
                c->n++;
                c->pending_sends++;
                if (!flush_out(c)) {
                    fprintf(stderr, "rate_load: send: %s\n", strerror(errno));
                    return 1;
                }
            }
            sent++;
        }
        int timeout_ms = 0;
        if (sent < total) {
            uint64_t next = start + sent * interval;
            t = now_ns();
            timeout_ms = next > t ? (int)((next - t) / 1000000) : 0;
        } else {
            timeout_ms = 10;
        }
        int n = epoll_wait(ep, evs, MAX_CONNS, timeout_ms);
        t = now_ns();
        for (int i = 0; i < n; i++) {
            conn *c = &conns[evs[i].data.u32];
            for (;;) {
                ssize_t got = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
                if (got > 0) {
                    c->inlen += (size_t)got;
                    if (!take_responses(c, t)) {
                        fprintf(stderr, "rate_load: unexpected response\n");
                        return 1;
                    }
                    continue;
                }
                if (got < 0 && (errno == EAGAIN || errno == EINTR))
                    break;
                fprintf(stderr, "rate_load: connection %u ended\n", evs[i].data.u32);
                return 1;
            }
            if (c->outlen || c->pending_sends)
                flush_out(c);
        }
    }
    uint64_t elapsed = now_ns() - start;
    for (int i = 0; i < nconns; i++)
        close(conns[i].fd);
    errors += total - done - errors;
    printf("rate_load sent=%llu done=%llu errors=%llu rate=%.0f p50_us=%llu p90_us=%llu "
           "p99_us=%llu p999_us=%llu max_us=%llu\n",
           (unsigned long long)sent, (unsigned long long)done, (unsigned long long)errors,
           (double)done * 1e9 / (double)elapsed, (unsigned long long)percentile(0.50),
           (unsigned long long)percentile(0.90), (unsigned long long)percentile(0.99),
           (unsigned long long)percentile(0.999), (unsigned long long)max_us);
    free(hist);
    free(conns);
    return errors ? 1 : 0;
}
