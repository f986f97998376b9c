/* SPDX-License-Identifier: MIT */
/* Client-only throughput of corio's HTTP client: keep-alive GETs of one URL
 * (examples/hello's /plaintext on loopback, as bench/client_bench.sh runs it).
 *
 *   client_bench [-a request|exchange] [-t TASKS] [-n REQUESTS] [-s SECONDS]
 *                [-w WARMUP] URL
 *
 *   -a request   each request is corio_http_request + corio_await of its
 *                future (the client runs it in a task of its own, buffers
 *                the body) -- the default
 *   -a exchange  each request is a scoped exchange in the calling task:
 *                CORIO_WITH_RC(corio_http_open) + corio_http_response_head +
 *                corio_http_read to the end
 *   -t TASKS     tasks issuing requests at once, each one after another on
 *                its pooled connection (default 1); the client is given
 *                max_conns_per_origin = TASKS (its default, 16, would make
 *                the others wait for a connection)
 *   -n REQUESTS  total requests over all tasks (default 200000)
 *   -s SECONDS   and at most this long (default 5): whichever comes first
 *   -w WARMUP    requests before the measured part, on the same client, so
 *                that the TASKS connections are open and the pool warm
 *                (default 2000; bounded by 2 s)
 *
 * Every response must be a 200 whose body has the length of the first one;
 * anything else counts as an error (and 100 errors end the run).  Prints one
 * line, for the script to parse:
 *
 *   client_bench api=request tasks=1 requests=N errors=E secs=S rps=R
 *                cpu_us_per_req=C cpu_pct=P
 *
 * where cpu is this process's user+system time (getrusage, every thread)
 * over the measured part, divided by the requests completed.  Run it pinned
 * to one CPU (taskset), the server on another.
 */
#include <corio/corio.h>
#include <corio/http_client.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum { MAX_TASKS = 4096, MAX_ERRORS = 100 };

typedef struct bench {
    corio_http_client *client;
    const char *url;
    bool exchange;
    long limit;        /* requests to start in this phase */
    uint64_t deadline; /* corio_now() ms */
    long started, done, errors;
    long body_len; /* of the first response; -1 before it */
    int first_error;
} bench;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* 0 if the status is 200 and the body has the expected length. */
static int check(bench *b, int status, long len) {
    if (status != 200)
        return CORIO_EFAILED;
    if (b->body_len < 0)
        b->body_len = len;
    return len == b->body_len ? 0 : CORIO_EFAILED;
}

static int one_request(bench *b) {
    corio_future *f;
    int rc = corio_http_request(b->client, &f, "GET", b->url, NULL, 0, NULL, 0);
    if (rc < 0)
        return rc;
    if ((rc = corio_await(f)) == 0) {
        const corio_http_response *r = corio_future_value(f);
        size_t len;
        corio_http_response_body(r, &len);
        rc = check(b, corio_http_response_status(r), (long)len);
    }
    corio_future_release(f);
    return rc;
}

static int one_exchange(bench *b) {
    corio_http_req rq = {.method = "GET", .url = b->url};
    corio_http_exchange *x;
    int rc;
    CORIO_WITH_RC(rc, corio_http_open(b->client, &rq, &x)) {
        const corio_http_response *r;
        if ((rc = corio_http_response_head(x, &r)) < 0)
            break;
        long len = 0;
        const char *p;
        int n;
        while ((n = corio_http_read(x, &p)) > 0)
            len += n;
        rc = n < 0 ? n : check(b, corio_http_response_status(r), len);
    }
    return rc;
}

/* One task: requests one after another until the phase's count or time is
 * used up. */
static int worker(void *arg) {
    bench *b = arg;
    while (b->started < b->limit && b->errors < MAX_ERRORS && corio_now() < b->deadline) {
        b->started++;
        int rc = b->exchange ? one_exchange(b) : one_request(b);
        if (rc == CORIO_ECANCELED)
            return rc;
        if (rc < 0) {
            if (!b->first_error)
                b->first_error = rc;
            b->errors++;
        } else {
            b->done++;
        }
    }
    return 0;
}

typedef struct config {
    const char *url;
    bool exchange;
    int tasks;
    long requests, warmup;
    double seconds;
    int rc;
} config;

/* Runs cfg->tasks workers over one phase; 0 or an error. */
static int phase(config *cfg, bench *b, long limit, double seconds) {
    static corio_task *ts[MAX_TASKS];
    b->limit = limit;
    b->started = b->done = b->errors = 0;
    b->deadline = corio_now() + (uint64_t)(seconds * 1000);
    int rc = 0, n = 0;
    for (; n < cfg->tasks && rc == 0; n++)
        if ((rc = corio_spawn(&ts[n], "client", worker, b)) < 0)
            break;
    for (int i = 0; i < n; i++) {
        (void)corio_await(ts[i]);
        corio_task_release(ts[i]);
    }
    return rc;
}

static int amain(void *arg) {
    config *cfg = arg;
    corio_http_client_opts o = {.max_conns_per_origin = (size_t)cfg->tasks,
                                .max_conns = (size_t)cfg->tasks + 16};
    bench b = {.url = cfg->url, .exchange = cfg->exchange, .body_len = -1};
    int rc = corio_http_client_new(&b.client, &o);
    if (rc < 0)
        return rc;
    if ((rc = phase(cfg, &b, cfg->warmup, 2.0)) == 0 && b.errors == 0) {
        double w0 = now_s(), c0 = cpu_s();
        rc = phase(cfg, &b, cfg->requests, cfg->seconds);
        double wall = now_s() - w0, cpu = cpu_s() - c0;
        long done = b.done ? b.done : 1;
        printf("client_bench api=%s tasks=%d requests=%ld errors=%ld secs=%.3f rps=%.0f "
               "cpu_us_per_req=%.3f cpu_pct=%.0f body=%ld\n",
               cfg->exchange ? "exchange" : "request", cfg->tasks, b.done, b.errors, wall,
               (double)b.done / wall, cpu * 1e6 / (double)done, 100 * cpu / wall, b.body_len);
    }
    if (b.errors)
        fprintf(stderr, "client_bench: %ld error(s), the first %s\n", b.errors,
                corio_strerror(b.first_error));
    corio_http_client_free(b.client);
    cfg->rc = rc < 0 ? rc : b.errors ? 1 : 0;
    return 0;
}

static void usage(void) {
    fprintf(stderr, "usage: client_bench [-a request|exchange] [-t TASKS] [-n REQUESTS] "
                    "[-s SECONDS] [-w WARMUP] URL\n");
    exit(2);
}

int main(int argc, char **argv) {
    config cfg = {.tasks = 1, .requests = 200000, .warmup = 2000, .seconds = 5};
    int opt;
    while ((opt = getopt(argc, argv, "a:t:n:s:w:")) != -1) {
        switch (opt) {
        case 'a':
            if (strcmp(optarg, "request") && strcmp(optarg, "exchange"))
                usage();
            cfg.exchange = strcmp(optarg, "exchange") == 0;
            break;
        case 't':
            cfg.tasks = atoi(optarg);
            break;
        case 'n':
            cfg.requests = atol(optarg);
            break;
        case 's':
            cfg.seconds = atof(optarg);
            break;
        case 'w':
            cfg.warmup = atol(optarg);
            break;
        default:
            usage();
        }
    }
    if (optind != argc - 1 || cfg.tasks < 1 || cfg.tasks > MAX_TASKS || cfg.requests < 1 ||
        cfg.warmup < 0 || !(cfg.seconds > 0 && cfg.seconds <= 600))
        usage();
    cfg.url = argv[optind];
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, &cfg);
    if (rc < 0) {
        fprintf(stderr, "client_bench: %s\n", corio_strerror(rc));
        return 1;
    }
    if (cfg.rc < 0)
        fprintf(stderr, "client_bench: %s\n", corio_strerror(cfg.rc));
    return cfg.rc ? 1 : 0;
}
