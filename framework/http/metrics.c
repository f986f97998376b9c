/* SPDX-License-Identifier: MIT */
/* Metrics (see corio/metrics.h): counters in slots of one shared segment,
 * a Prometheus text exposition of their sums.
 *
 * The segment.  corio_metrics_mount maps a segment of one slot and takes
 * it; the runner's corio__metrics_prepare replaces it, before forking N
 * workers, by one of 2N slots (MAP_SHARED|MAP_ANONYMOUS: every process
 * forked after it sees the same pages).  Each worker takes a slot
 * (corio__metrics_worker): its owner word names the worker's pid, taken by
 * compare-and-swap from 0 or from a pid that no longer exists.  A worker
 * replacing a dead one takes its slot (the supervisor's slot index is the
 * hint) and continues its counters; a SIGHUP replacement, forked while its
 * predecessor still serves, takes a spare slot.  Every counter of a slot
 * has that one writer, which adds with a relaxed load and store (no lock
 * prefix); a scrape reads every slot with relaxed loads and sums them, so
 * counters only grow, whichever worker answers.  Gauges are summed over
 * slots whose owner is alive.
 *
 * Labels.  A request is counted under its route's id: routes get ids in
 * the order they are added (corio__metrics_route_id), before the fork, so
 * every worker names an id alike; the method label is the route's own, or
 * HEAD for a HEAD request answered by a GET route.  404/405 answers and
 * heads refused before routing are counted by method (ten known ones, else
 * "other") under a fixed route label.
 *
 * Loop lag.  Each loop serving HTTP arms a 100 ms timer (the first time a
 * connection runs on it) and measures how late it fires; the same tick
 * publishes the loop's live task count and the app's gauges into the slot. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "corio/metrics.h"
#include "http/http_internal.h"
#include "http/metrics_internal.h"
#include "runtime/internal.h"
#include "runtime/stats.h"

#define NCLASS 5    /* 2xx 3xx 4xx 5xx, none */
#define NMETHODS 10 /* mt_names, then "other" */
#define MAX_GAUGES 32
#define MOUNT_SLOTS 64 /* the mount's segment: enough for 31 workers and their spares */
#define LAG_TICK_MS 100
#define NS_PER_S ((uint64_t)1000000000)

static const char *const mt_names[NMETHODS] = {"GET",   "HEAD",    "POST",    "PUT",   "DELETE",
                                               "PATCH", "OPTIONS", "CONNECT", "TRACE", "other"};
static const char *const mt_classes[NCLASS] = {"2xx", "3xx", "4xx", "5xx", "none"};

/* Request duration buckets (upper bounds) in ns, and as printed. */
static const uint64_t mt_dur_ns[] = {
    100000,   250000,    500000,    1000000,   2500000,    5000000,    10000000,   25000000,
    50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000};
static const char *const mt_dur_le[] = {"0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
                                        "0.01",   "0.025",   "0.05",   "0.1",   "0.25",   "0.5",
                                        "1",      "2.5",     "5",      "10"};
#define DUR_NB (sizeof mt_dur_ns / sizeof mt_dur_ns[0])

/* Loop lag buckets. */
static const uint64_t mt_lag_ns[] = {1000000,   2000000,    5000000,    10000000,
                                     25000000,  50000000,   100000000,  250000000,
                                     500000000, 1000000000, 2500000000, 5000000000};
static const char *const mt_lag_le[] = {"0.001", "0.002", "0.005", "0.01", "0.025", "0.05",
                                        "0.1",   "0.25",  "0.5",   "1",    "2.5",   "5"};
#define LAG_NB (sizeof mt_lag_ns / sizeof mt_lag_ns[0])

enum mt_reject {
    REJ_BAD_REQUEST,
    REJ_HEADER_TIMEOUT,
    REJ_BODY_TIMEOUT,
    REJ_BODY_TOO_LARGE,
    REJ_URI_TOO_LONG,
    REJ_HEADER_TOO_LARGE,
    REJ_NOT_IMPLEMENTED,
    REJ_VERSION,
    REJ_SEND_TIMEOUT,
    REJ_KINDS
};
static const char *const mt_reject_names[REJ_KINDS] = {
    "bad_request",     "header_timeout",        "body_timeout",
    "body_too_large",  "uri_too_long",          "header_too_large",
    "not_implemented", "version_not_supported", "send_timeout"};
static const char *const mt_accept_names[CORIO__ACCEPT_KINDS] = {"fd_limit", "no_memory", "other"};

/* One worker's counters.  Field order: what a request touches first. */
typedef struct mt_slot {
    int32_t owner; /* pid of the worker writing it; 0: free */
    uint32_t unused;
    uint64_t dur[DUR_NB + 1]; /* per bucket, not cumulative; the last: +Inf */
    uint64_t dur_sum_ns;
    uint64_t bytes_in, bytes_out;
    corio__stats net; /* runtime/stats.h: written through corio__stats_sink */
    uint64_t rejected[REJ_KINDS];
    uint64_t tasks_live;              /* gauge */
    uint64_t lag_last_ns, lag_max_ns; /* gauges */
    uint64_t lag[LAG_NB + 1];
    uint64_t lag_sum_ns;
    uint64_t gauges[MAX_GAUGES];                               /* the app's, as double bits */
    uint64_t unrouted[2][NMETHODS][NCLASS];                    /* [0] unmatched, [1] rejected */
    uint64_t routes[CORIO__METRICS_MAX_ROUTES + 1][2][NCLASS]; /* [1]: HEAD on a GET route */
} __attribute__((aligned(64))) mt_slot;

/* The segment's first 64 bytes: one past the highest slot ever taken (a
 * scrape reads no further, and so touches no page of the slots beyond). */
typedef struct mt_header {
    uint32_t hiwater;
} __attribute__((aligned(64))) mt_header;

bool corio__metrics_on;

static mt_header *mt_head;
static mt_slot *mt_seg;  /* the segment's slots, after the header */
static size_t mt_nslots; /* how many */
static size_t mt_seg_len;
static mt_slot mt_scratch;             /* a forked process's counters until it takes a slot */
static mt_slot *mt_mine = &mt_scratch; /* this process's slot */
static bool mt_frozen;                 /* workers forked: no new route ids or gauges */
static bool mt_atfork;
static size_t mt_workers; /* corio__metrics_prepare's: slots from here on are spares */
static pthread_mutex_t mt_lock = PTHREAD_MUTEX_INITIALIZER; /* the registries */

typedef struct mt_route {
    char method[16];
    char *pattern;
} mt_route;
static mt_route mt_routes[CORIO__METRICS_MAX_ROUTES];
static bool mt_route_get[CORIO__METRICS_MAX_ROUTES + 1];
static size_t mt_nroutes;

typedef struct mt_gauge {
    char *name, *help;
    double (*fn)(void *arg);
    void *arg;
} mt_gauge;
static mt_gauge mt_gauges[MAX_GAUGES];
static size_t mt_ngauges;

static inline void mt_add(uint64_t *p, uint64_t n) {
    corio__stat_add(p, n);
}

static inline void mt_set(uint64_t *p, uint64_t v) {
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline uint64_t mt_get(const uint64_t *p) {
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* ---- route ids ------------------------------------------------------------------------ */

/* The id of (method, pattern) if known, else a new one if the table can
 * take it, else CORIO__ROUTE_OTHER.  Under mt_lock. */
static uint16_t mt_route_lookup(const char *method, const char *pattern) {
    for (size_t i = 0; i < mt_nroutes; i++)
        if (strcmp(mt_routes[i].method, method) == 0 && strcmp(mt_routes[i].pattern, pattern) == 0)
            return (uint16_t)i;
    if (mt_frozen || mt_nroutes == CORIO__METRICS_MAX_ROUTES ||
        strlen(method) >= sizeof mt_routes[0].method)
        return CORIO__ROUTE_OTHER;
    char *p = strdup(pattern);
    if (!p)
        return CORIO__ROUTE_OTHER;
    uint16_t id = (uint16_t)mt_nroutes++;
    strcpy(mt_routes[id].method, method);
    mt_routes[id].pattern = p;
    mt_route_get[id] = strcmp(method, "GET") == 0;
    return id;
}

uint16_t corio__metrics_route_id(const char *method, const char *pattern) {
    pthread_mutex_lock(&mt_lock);
    uint16_t id = mt_route_lookup(method, pattern);
    pthread_mutex_unlock(&mt_lock);
    return id;
}

/* ---- the segment ---------------------------------------------------------------------- */

static bool pid_alive(int32_t pid) {
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

/* A forked child writes into the parent's slot no more: it counts apart
 * until it takes a slot of its own (corio__metrics_worker). */
static void mt_on_fork_child(void) {
    memset(&mt_scratch, 0, sizeof mt_scratch);
    mt_mine = &mt_scratch;
    corio__stats_sink = &mt_scratch.net;
}

static int mt_map(size_t nslots) {
    size_t len = sizeof(mt_header) + nslots * sizeof(mt_slot);
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return CORIO_ENOMEM;
    if (!mt_atfork && pthread_atfork(NULL, NULL, mt_on_fork_child) != 0) {
        munmap(p, len);
        return CORIO_ENOMEM;
    }
    mt_atfork = true;
    if (mt_head) { /* the mount's: nothing served yet */
        mt_on_fork_child();
        munmap(mt_head, mt_seg_len);
    }
    mt_head = p;
    mt_seg = (mt_slot *)(mt_head + 1);
    mt_nslots = nslots;
    mt_seg_len = len;
    return 0;
}

/* Adds src's counters (not its gauges) to dst's: what a worker counted
 * apart, before it had a slot, goes on in the slot it takes. */
static void mt_add_all(uint64_t *dst, const uint64_t *src, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (src[k])
            mt_add(&dst[k], mt_get(&src[k]));
}

static void mt_merge(mt_slot *dst, const mt_slot *src) {
#define MT_ADD_ARRAY(f)                                                                            \
    mt_add_all((uint64_t *)(void *)dst->f, (const uint64_t *)(const void *)src->f,                 \
               sizeof dst->f / sizeof(uint64_t))
    MT_ADD_ARRAY(dur);
    MT_ADD_ARRAY(rejected);
    MT_ADD_ARRAY(lag);
    MT_ADD_ARRAY(unrouted);
    MT_ADD_ARRAY(routes);
#undef MT_ADD_ARRAY
    mt_add(&dst->dur_sum_ns, mt_get(&src->dur_sum_ns));
    mt_add(&dst->bytes_in, mt_get(&src->bytes_in));
    mt_add(&dst->bytes_out, mt_get(&src->bytes_out));
    mt_add(&dst->lag_sum_ns, mt_get(&src->lag_sum_ns));
}

/* Takes slot i for this process if it is free or its owner is gone. */
static bool mt_take(size_t i, int32_t me) {
    mt_slot *s = &mt_seg[i];
    int32_t o = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
    if (o != me && o != 0 && pid_alive(o))
        return false;
    if (o != me &&
        !__atomic_compare_exchange_n(&s->owner, &o, me, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return false;
    /* Gauges are the new owner's (with the connections it opened before,
     * counted apart); counters go on from its predecessor's. */
    mt_set(&s->net.conns_open, mt_get(&mt_mine->net.conns_open));
    mt_add(&s->net.conns_accepted, mt_get(&mt_mine->net.conns_accepted));
    mt_add(&s->net.max_conns_waits, mt_get(&mt_mine->net.max_conns_waits));
    for (int k = 0; k < CORIO__ACCEPT_KINDS; k++)
        mt_add(&s->net.accept_errors[k], mt_get(&mt_mine->net.accept_errors[k]));
    mt_set(&s->tasks_live, 0);
    mt_set(&s->lag_last_ns, 0);
    mt_set(&s->lag_max_ns, 0);
    for (size_t g = 0; g < MAX_GAUGES; g++)
        mt_set(&s->gauges[g], 0);
    if (mt_mine == &mt_scratch) { /* counted apart until now: carried over */
        mt_merge(s, &mt_scratch);
        memset(&mt_scratch, 0, sizeof mt_scratch);
    }
    mt_mine = s;
    corio__stats_sink = &s->net;
    uint32_t hw = __atomic_load_n(&mt_head->hiwater, __ATOMIC_ACQUIRE);
    while (hw < i + 1 && !__atomic_compare_exchange_n(&mt_head->hiwater, &hw, (uint32_t)(i + 1),
                                                      false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
    return true;
}

/* Takes a slot: `hint` first, then the spare slots (from `spare`), then
 * any. */
static void mt_claim(size_t hint, size_t spare) {
    int32_t me = (int32_t)getpid();
    if (hint < mt_nslots && mt_take(hint, me))
        return;
    for (size_t k = 0; k < mt_nslots; k++)
        if (mt_take((spare + k) % mt_nslots, me))
            return;
    /* none free: this process counts alone (mt_scratch) */
}

int corio__metrics_prepare(size_t workers) {
    if (!corio__metrics_on || workers <= 1)
        return 0; /* one worker: the mount's slot, taken by this process, is it */
    pthread_mutex_lock(&mt_lock);
    mt_frozen = true;
    pthread_mutex_unlock(&mt_lock);
    /* The supervisor serves nothing: its slot goes to a worker. */
    if (mt_mine != &mt_scratch)
        __atomic_store_n(&mt_mine->owner, 0, __ATOMIC_RELEASE);
    mt_on_fork_child();
    mt_workers = workers;
    return 2 * workers > mt_nslots ? mt_map(2 * workers) : 0;
}

void corio__metrics_reaped(pid_t pid) {
    for (size_t i = 0; mt_seg && i < mt_nslots; i++) {
        int32_t o = (int32_t)pid;
        __atomic_compare_exchange_n(&mt_seg[i].owner, &o, 0, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE);
    }
}

void corio__metrics_worker(size_t hint) {
    if (corio__metrics_on && mt_seg && mt_mine == &mt_scratch)
        mt_claim(hint, mt_workers ? mt_workers : mt_nslots / 2);
}

/* ---- counting ------------------------------------------------------------------------- */

static int mt_method_index(corio_strv m) {
    for (int i = 0; i < NMETHODS - 1; i++)
        if (corio_strv_eq(m, mt_names[i]))
            return i;
    return NMETHODS - 1;
}

static void mt_count_reject(mt_slot *s, const corio__hconn *c) {
    int kind = -1;
    switch (c->reject) {
    case 400:
        kind = REJ_BAD_REQUEST;
        break;
    case 408:
        kind = c->metrics_route == CORIO__ROUTE_REJECTED ? REJ_HEADER_TIMEOUT : REJ_BODY_TIMEOUT;
        break;
    case 413:
        kind = REJ_BODY_TOO_LARGE;
        break;
    case 414:
        kind = REJ_URI_TOO_LONG;
        break;
    case 431:
        kind = REJ_HEADER_TOO_LARGE;
        break;
    case 501:
        kind = REJ_NOT_IMPLEMENTED;
        break;
    case 505:
        kind = REJ_VERSION;
        break;
    default:
        break;
    }
    if (kind >= 0)
        mt_add(&s->rejected[kind], 1);
    if (c->send_failed == CORIO_ETIMEDOUT && c->peer_failed)
        mt_add(&s->rejected[REJ_SEND_TIMEOUT], 1);
}

void corio__metrics_request(corio__hconn *c) {
    mt_slot *s = mt_mine;
    int st = c->res.started ? c->res.status : 0;
    unsigned cls = st >= 200 && st <= 599 ? (unsigned)(st / 100 - 2) : NCLASS - 1;
    unsigned route = c->metrics_route;
    if (route <= CORIO__ROUTE_OTHER) {
        unsigned head = c->req.head_method && mt_route_get[route];
        mt_add(&s->routes[route][head][cls], 1);
    } else {
        int m = NMETHODS - 1;
        if (c->req.method.len) {
            corio__req_track_head(c);
            m = mt_method_index(corio_req_method(&c->req));
        }
        mt_add(&s->unrouted[route == CORIO__ROUTE_REJECTED][m][cls], 1);
    }
    uint64_t ns = c->started_ns ? uv_hrtime() - c->started_ns : 0;
    size_t b = 0;
    while (b < DUR_NB && ns > mt_dur_ns[b])
        b++;
    mt_add(&s->dur[b], 1);
    mt_add(&s->dur_sum_ns, ns);
    mt_add(&s->bytes_in, (c->req.head_len ? c->req.head_len : c->parsed) + c->req.body_read);
    mt_add(&s->bytes_out, c->res.body_bytes);
    if (c->reject || c->send_failed)
        mt_count_reject(s, c);
}

/* ---- the loop's tick: lag, live tasks, the app's gauges ------------------------------ */

typedef struct mt_tick {
    uint64_t loop_id; /* the loop it is armed on (ids are never reused) */
    uint64_t due_ns;
    corio__timer timer;
} mt_tick;

static __thread mt_tick mt_tick_tls;

static uint64_t mt_double_bits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double mt_bits_double(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* This worker's gauges, now. */
static void mt_publish(void) {
    mt_slot *s = mt_mine;
    corio_loop *L = corio__tls_loop;
    if (L)
        mt_set(&s->tasks_live, L->live_tasks);
    for (size_t g = 0; g < mt_ngauges; g++)
        mt_set(&s->gauges[g], mt_double_bits(mt_gauges[g].fn(mt_gauges[g].arg)));
}

static void mt_arm(corio_loop *L) {
    mt_tick_tls.due_ns = uv_hrtime() + LAG_TICK_MS * 1000000ull;
    corio__timer_start(L, &mt_tick_tls.timer, corio__now_fresh(L) + LAG_TICK_MS);
}

static void mt_on_tick(corio__timer *t) {
    (void)t;
    uint64_t now = uv_hrtime();
    uint64_t lag = now > mt_tick_tls.due_ns ? now - mt_tick_tls.due_ns : 0;
    mt_slot *s = mt_mine;
    size_t b = 0;
    while (b < LAG_NB && lag > mt_lag_ns[b])
        b++;
    mt_add(&s->lag[b], 1);
    mt_add(&s->lag_sum_ns, lag);
    mt_set(&s->lag_last_ns, lag);
    if (lag > mt_get(&s->lag_max_ns))
        mt_set(&s->lag_max_ns, lag);
    if (mt_mine == &mt_scratch && mt_seg) /* no slot was free: try again (counts carried over) */
        mt_claim(SIZE_MAX, mt_workers ? mt_workers : 0);
    mt_publish();
    mt_arm(corio__tls_loop);
}

void corio__metrics_conn_begin(void) {
    corio_loop *L = corio__tls_loop;
    if (!L || mt_tick_tls.loop_id == L->ts_id)
        return;
    if (mt_mine == &mt_scratch && mt_seg) /* a worker the runner did not place */
        mt_claim(SIZE_MAX, 0);
    mt_tick_tls.loop_id = L->ts_id;
    corio__timer_init(&mt_tick_tls.timer, mt_on_tick);
    mt_arm(L);
}

/* ---- registration --------------------------------------------------------------------- */

static bool mt_valid_name(const char *n) {
    if (!n || !*n || (*n >= '0' && *n <= '9'))
        return false;
    for (; *n; n++)
        if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
              *n == '_' || *n == ':'))
            return false;
    return true;
}

int corio_metrics_gauge(const char *name, const char *help, double (*fn)(void *arg), void *arg) {
    /* corio_ is corio's own families' prefix: a gauge there could repeat one
     * (a second HELP/TYPE for a family fails the whole scrape). */
    if (!mt_valid_name(name) || !fn || strncmp(name, "corio_", 6) == 0)
        return CORIO_EINVAL;
    int rc = 0;
    pthread_mutex_lock(&mt_lock);
    for (size_t i = 0; i < mt_ngauges; i++)
        if (strcmp(mt_gauges[i].name, name) == 0)
            rc = CORIO_EALREADY;
    if (rc == 0 && mt_frozen)
        rc = CORIO_EBUSY;
    if (rc == 0 && mt_ngauges == MAX_GAUGES)
        rc = CORIO_ERANGE;
    if (rc == 0) {
        char *n = strdup(name), *h = strdup(help ? help : name);
        if (n && h) {
            mt_gauges[mt_ngauges++] = (mt_gauge){n, h, fn, arg};
        } else {
            free(n);
            free(h);
            rc = CORIO_ENOMEM;
        }
    }
    pthread_mutex_unlock(&mt_lock);
    return rc;
}

/* ---- the exposition ------------------------------------------------------------------- */

typedef struct mt_out {
    char *p;
    size_t len, cap;
    bool oom;
} mt_out;

static void mt_reserve(mt_out *o, size_t n) {
    if (o->oom || o->len + n < o->cap)
        return;
    size_t cap = o->cap ? o->cap : 16384;
    while (cap <= o->len + n)
        cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->oom = true;
        return;
    }
    o->p = p;
    o->cap = cap;
}

__attribute__((format(printf, 2, 3))) static void mt_put(mt_out *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    mt_reserve(o, (size_t)n + 1);
    if (o->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    o->len += (size_t)n;
}

/* A label value or HELP text, escaped: \ and newline always, " in label
 * values. */
static void mt_escaped(mt_out *o, const char *s, bool quote) {
    mt_reserve(o, 2 * strlen(s) + 1);
    if (o->oom)
        return;
    for (; *s; s++) {
        if (*s == '\\' || (*s == '"' && quote) || *s == '\n') {
            o->p[o->len++] = '\\';
            o->p[o->len++] = (char)(*s == '\n' ? 'n' : *s);
        } else {
            o->p[o->len++] = *s;
        }
    }
    o->p[o->len] = '\0';
}

static void mt_family(mt_out *o, const char *name, const char *type, const char *help) {
    mt_put(o, "# HELP %s ", name);
    mt_escaped(o, help, false);
    mt_put(o, "\n# TYPE %s %s\n", name, type);
}

/* Slots ever taken: the only ones a scrape reads. */
static size_t mt_used(void) {
    size_t n = __atomic_load_n(&mt_head->hiwater, __ATOMIC_ACQUIRE);
    return n < mt_nslots ? n : mt_nslots;
}

/* Sums the uint64_t at byte offset `off` of every slot (live ones only). */
static uint64_t mt_sum(size_t off, bool live_only) {
    uint64_t v = 0;
    for (size_t i = 0; i < mt_used(); i++) {
        const mt_slot *s = &mt_seg[i];
        if (live_only && !pid_alive(__atomic_load_n(&s->owner, __ATOMIC_RELAXED)))
            continue;
        v += mt_get((const uint64_t *)((const char *)s + off));
    }
    return v;
}

#define SUM(field) mt_sum(offsetof(mt_slot, field), false)
#define SUM_LIVE(field) mt_sum(offsetof(mt_slot, field), true)

static void mt_seconds(mt_out *o, uint64_t ns) {
    mt_put(o, "%" PRIu64 ".%09" PRIu64, ns / NS_PER_S, ns % NS_PER_S);
}

static void mt_histogram(mt_out *o, const char *name, const char *help, size_t off_buckets,
                         size_t nb, const char *const *le, size_t off_sum) {
    mt_family(o, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t b = 0; b <= nb; b++) {
        cum += mt_sum(off_buckets + b * sizeof(uint64_t), false);
        mt_put(o, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", name, b < nb ? le[b] : "+Inf", cum);
    }
    mt_put(o, "%s_sum ", name);
    mt_seconds(o, mt_sum(off_sum, false));
    mt_put(o, "\n%s_count %" PRIu64 "\n", name, cum);
}

static void mt_requests(mt_out *o) {
    mt_family(o, "corio_http_requests_total", "counter",
              "HTTP requests answered, by method, route pattern and status class.");
    for (size_t r = 0; r <= CORIO__ROUTE_OTHER; r++) {
        if (r >= mt_nroutes && r != CORIO__ROUTE_OTHER)
            continue;
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < NCLASS; k++) {
                uint64_t v = SUM(routes[r][h][k]);
                if (!v)
                    continue;
                mt_put(o, "corio_http_requests_total{method=\"");
                mt_escaped(o, h ? "HEAD" : r < mt_nroutes ? mt_routes[r].method : "other", true);
                mt_put(o, "\",route=\"");
                mt_escaped(o, r < mt_nroutes ? mt_routes[r].pattern : "(other)", true);
                mt_put(o, "\",status=\"%s\"} %" PRIu64 "\n", mt_classes[k], v);
            }
        }
    }
    for (int u = 0; u < 2; u++)
        for (int m = 0; m < NMETHODS; m++)
            for (int k = 0; k < NCLASS; k++) {
                uint64_t v = SUM(unrouted[u][m][k]);
                if (v)
                    mt_put(o,
                           "corio_http_requests_total{method=\"%s\",route=\"%s\",status=\"%s\"} "
                           "%" PRIu64 "\n",
                           mt_names[m], u ? "(rejected)" : "(unmatched)", mt_classes[k], v);
            }
}

static void mt_counter(mt_out *o, const char *name, const char *help, uint64_t v, bool gauge) {
    mt_family(o, name, gauge ? "gauge" : "counter", help);
    mt_put(o, "%s %" PRIu64 "\n", name, v);
}

static void mt_lag_gauges(mt_out *o, const char *name, const char *help, size_t off) {
    mt_family(o, name, "gauge", help);
    for (size_t i = 0; i < mt_used(); i++) {
        const mt_slot *s = &mt_seg[i];
        if (!pid_alive(__atomic_load_n(&s->owner, __ATOMIC_RELAXED)))
            continue;
        mt_put(o, "%s{worker=\"%zu\"} ", name, i);
        mt_seconds(o, mt_get((const uint64_t *)((const char *)s + off)));
        mt_put(o, "\n");
    }
}

static void mt_double(mt_out *o, double d) {
    if (d != d)
        mt_put(o, "NaN");
    else if (d > 1.7976931348623157e308)
        mt_put(o, "+Inf");
    else if (d < -1.7976931348623157e308)
        mt_put(o, "-Inf");
    else
        mt_put(o, "%.17g", d);
}

static void mt_expose(mt_out *o) {
    mt_requests(o);
    mt_histogram(o, "corio_http_request_duration_seconds",
                 "Time from a request's head complete to its response complete.",
                 offsetof(mt_slot, dur), DUR_NB, mt_dur_le, offsetof(mt_slot, dur_sum_ns));
    mt_counter(o, "corio_http_request_bytes_total",
               "Request bytes read: heads as sent plus body bytes.", SUM(bytes_in), false);
    mt_counter(o, "corio_http_response_body_bytes_total",
               "Response body bytes handed to connections.", SUM(bytes_out), false);
    mt_family(o, "corio_http_rejected_total", "counter",
              "Requests the server answered itself for a limit or bad input, by reason.");
    for (int k = 0; k < REJ_KINDS; k++)
        mt_put(o, "corio_http_rejected_total{reason=\"%s\"} %" PRIu64 "\n", mt_reject_names[k],
               SUM(rejected[k]));
    mt_counter(o, "corio_connections_open", "Connections open.", SUM_LIVE(net.conns_open), true);
    mt_counter(o, "corio_connections_accepted_total", "Connections accepted.",
               SUM(net.conns_accepted), false);
    mt_counter(o, "corio_connections_max_conns_waits_total",
               "Times a server at its connection limit left a connection in the backlog.",
               SUM(net.max_conns_waits), false);
    mt_family(o, "corio_accept_errors_total", "counter",
              "Connections that could not be accepted, by kind.");
    for (int k = 0; k < CORIO__ACCEPT_KINDS; k++)
        mt_put(o, "corio_accept_errors_total{kind=\"%s\"} %" PRIu64 "\n", mt_accept_names[k],
               SUM(net.accept_errors[k]));
    mt_counter(o, "corio_tasks_live", "Live tasks.", SUM_LIVE(tasks_live), true);
    mt_histogram(o, "corio_loop_lag_seconds", "How late a 100 ms timer fires on a worker's loop.",
                 offsetof(mt_slot, lag), LAG_NB, mt_lag_le, offsetof(mt_slot, lag_sum_ns));
    mt_lag_gauges(o, "corio_loop_lag_last_seconds", "The last loop lag measured, per worker.",
                  offsetof(mt_slot, lag_last_ns));
    mt_lag_gauges(o, "corio_loop_lag_max_seconds", "The largest loop lag measured, per worker.",
                  offsetof(mt_slot, lag_max_ns));
    size_t live = 0;
    for (size_t i = 0; i < mt_used(); i++)
        live += pid_alive(__atomic_load_n(&mt_seg[i].owner, __ATOMIC_RELAXED));
    mt_counter(o, "corio_workers_live", "Worker processes counting.", live, true);
    for (size_t g = 0; g < mt_ngauges; g++) {
        mt_family(o, mt_gauges[g].name, "gauge", mt_gauges[g].help);
        double v = 0;
        for (size_t i = 0; i < mt_used(); i++)
            if (pid_alive(__atomic_load_n(&mt_seg[i].owner, __ATOMIC_RELAXED)))
                v += mt_bits_double(mt_get(&mt_seg[i].gauges[g]));
        mt_put(o, "%s ", mt_gauges[g].name);
        mt_double(o, v);
        mt_put(o, "\n");
    }
}

static int mt_handler(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    mt_publish(); /* this worker's gauges as of now */
    mt_out o = {0};
    mt_expose(&o);
    int rc = o.oom
                 ? CORIO_ENOMEM
                 : corio_res_send(res, 200, "text/plain; version=0.0.4; charset=utf-8", o.p, o.len);
    free(o.p);
    return rc;
}

int corio_metrics_mount(corio_router *r, const char *path) {
    if (!r)
        return CORIO_EINVAL;
    if (!mt_seg) {
        int rc = mt_map(MOUNT_SLOTS);
        if (rc)
            return rc;
        mt_claim(0, 0);
    }
    int rc = corio_router_add(r, "GET", path ? path : "/metrics", mt_handler, NULL);
    if (rc == 0)
        corio__metrics_on = true;
    return rc;
}
