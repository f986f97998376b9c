/* SPDX-License-Identifier: MIT */
/* flood_client — a connection flood for tests/test_hostile_load.py.
 *
 *     flood_client --port P [--host 127.0.0.1] [--count N] [--rate R]
 *                  [--seconds S] [--concurrency C] [--send BYTES]
 *
 * Opens up to N TCP connections (non-blocking connects watched with epoll),
 * started at R per second at most and never more than C in flight; each one
 * that connects is closed at once with SO_LINGER {1, 0}: an RST, so the
 * client side leaves no TIME_WAIT and N may exceed the ephemeral port range
 * (with --send, BYTES go out first: a request cut by the reset).  It stops
 * after N connections or S seconds, whichever comes first, and prints one
 * line of JSON:
 *
 *     {"attempted":N,"connects":N,"errors":0,"refused":0,"seconds":10.0,
 *      "rate":20000,"capped":false,"first_error":""}
 *
 * attempted: connects started; connects: completed (the server's kernel
 * took them); errors: failed ones (refused counts ECONNREFUSED among them;
 * first_error names the first failure); capped: stopped by the time cap with
 * connections still to make.  Exit status 0 unless the arguments or the
 * setup are wrong (2).  Linux only (epoll).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct flood {
    struct sockaddr_in addr;
    unsigned long count, concurrency;
    double rate, seconds;
    const char *payload;
    size_t payload_len;
    int ep;
    unsigned long attempted, connects, errors, refused, inflight;
    char first_error[128];
} flood;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void note_error(flood *f, const char *what, int err) {
    f->errors++;
    if (err == ECONNREFUSED)
        f->refused++;
    if (!f->first_error[0])
        snprintf(f->first_error, sizeof f->first_error, "%s: %s", what, strerror(err));
}

/* Closes fd with an RST (SO_LINGER {1, 0}), after the payload if any. */
static void reset_close(flood *f, int fd) {
    if (f->payload_len) {
        ssize_t n = send(fd, f->payload, f->payload_len, MSG_NOSIGNAL);
        (void)n; /* the reset follows whatever went out */
    }
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) != 0)
        note_error(f, "SO_LINGER", errno);
    close(fd);
}

/* Starts one connect; returns -1 only when the process is out of a resource
 * it needs to go on (the error is counted either way). */
static int start_one(flood *f) {
    f->attempted++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        note_error(f, "socket", errno);
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&f->addr, sizeof f->addr) == 0) {
        f->connects++;
        reset_close(f, fd);
        return 0;
    }
    if (errno != EINPROGRESS) {
        note_error(f, "connect", errno);
        close(fd);
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        note_error(f, "epoll_ctl", errno);
        close(fd);
        return -1;
    }
    f->inflight++;
    return 0;
}

/* A connect in flight finished (writable, or an error). */
static void finish_one(flood *f, int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    f->inflight--;
    epoll_ctl(f->ep, EPOLL_CTL_DEL, fd, NULL);
    if (err) {
        note_error(f, "connect", err);
        close(fd);
        return;
    }
    f->connects++;
    reset_close(f, fd);
}

static void usage(void) {
    fprintf(stderr, "usage: flood_client --port P [--host A] [--count N] [--rate R] "
                    "[--seconds S] [--concurrency C] [--send BYTES]\n");
}

static int parse_args(flood *f, int argc, char **argv) {
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'h'},        {"port", required_argument, NULL, 'p'},
        {"count", required_argument, NULL, 'n'},       {"rate", required_argument, NULL, 'r'},
        {"seconds", required_argument, NULL, 's'},     {"send", required_argument, NULL, 'd'},
        {"concurrency", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0},
    };
    const char *host = "127.0.0.1";
    long port = -1;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = strtol(optarg, NULL, 10);
            break;
        case 'n':
            f->count = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            f->rate = strtod(optarg, NULL);
            break;
        case 's':
            f->seconds = strtod(optarg, NULL);
            break;
        case 'c':
            f->concurrency = strtoul(optarg, NULL, 10);
            break;
        case 'd':
            f->payload = optarg;
            f->payload_len = strlen(optarg);
            break;
        default:
            return -1;
        }
    }
    if (optind != argc || port <= 0 || port > 65535 || f->count == 0 || f->rate <= 0 ||
        f->seconds <= 0 || f->concurrency == 0)
        return -1;
    f->addr.sin_family = AF_INET;
    f->addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &f->addr.sin_addr) != 1)
        return -1;
    return 0;
}

int main(int argc, char **argv) {
    flood f = {.count = 1000, .rate = 1000, .seconds = 10, .concurrency = 256};
    if (parse_args(&f, argc, argv) != 0) {
        usage();
        return 2;
    }
    f.ep = epoll_create1(EPOLL_CLOEXEC);
    if (f.ep < 0) {
        perror("flood_client: epoll_create1");
        return 2;
    }
    struct epoll_event evs[256];
    double start = now_s(), end = start + f.seconds, t = start;
    bool stuck = false; /* out of fds or memory: wait for what is in flight */
    while (t < end && (f.attempted < f.count || f.inflight)) {
        /* As many new connects as the rate allows by now. */
        double due_f = (t - start) * f.rate;
        unsigned long due = due_f >= (double)f.count ? f.count : (unsigned long)due_f + 1;
        while (!stuck && f.attempted < due && f.inflight < f.concurrency)
            stuck = start_one(&f) != 0;
        bool more = f.attempted < f.count && !stuck;
        int n = epoll_wait(f.ep, evs, (int)(sizeof evs / sizeof evs[0]), more ? 1 : 10);
        if (n < 0 && errno != EINTR) {
            perror("flood_client: epoll_wait");
            return 2;
        }
        for (int i = 0; i < n; i++)
            finish_one(&f, evs[i].data.fd);
        if (stuck && f.inflight == 0)
            break;
        t = now_s();
    }
    double took = now_s() - start;
    bool capped = f.connects + f.errors < f.count;
    /* What is still in flight at the cap counts as neither. */
    printf("{\"attempted\":%lu,\"connects\":%lu,\"errors\":%lu,\"refused\":%lu,"
           "\"inflight\":%lu,\"seconds\":%.3f,\"rate\":%.0f,\"capped\":%s,"
           "\"first_error\":\"%s\"}\n",
           f.attempted, f.connects, f.errors, f.refused, f.inflight, took,
           took > 0 ? (double)f.connects / took : 0.0, capped ? "true" : "false", f.first_error);
    return 0;
}
