/* SPDX-License-Identifier: MIT */
/* The HTTP client and its connection pools.
 *
 * Permits, not counts of open connections, bound what is in use: an origin
 * has a semaphore of max_conns_per_origin permits and the client one of
 * max_conns, and a checkout holds one of each until its checkin.  A
 * connection coming back is pooled first and its permits released after,
 * so the first waiter (FIFO) wakes to find it idle and takes it: handed
 * over, no reconnect.  Idle connections hold no permit; since one becomes
 * idle only by coming back, an origin never has more than its maximum open.
 * Over all origins, opening a connection when max_conns are open closes the
 * least recently used idle one first (there is one: fewer than max_conns
 * are in use while the opener holds a permit).
 *
 * Each origin caches its resolved addresses for dns_ttl_ms; a connect that
 * fails forgets them.
 *
 * A keeper task (one per client, started when the first connection is
 * pooled) closes idle connections once they pass idle_timeout_ms, so an
 * idle pool does not hold sockets the server has long given up on; and it
 * closes them all when the loop shuts down (it is cancelled then, like
 * every task), so a program that never calls corio_http_client_free still
 * ends with every socket closed.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"
#include "corio/scope.h"
#include "corio/tls.h"
#include "net/proto.h"

enum { PEEK_AFTER_MS = 100 };

int corio_http_client_new(corio_http_client **out, const corio_http_client_opts *opts) {
    if (!out)
        return CORIO_EINVAL;
    corio_http_client *c = calloc(1, sizeof *c);
    if (!c)
        return CORIO_ENOMEM;
    if (opts)
        c->o = *opts;
    corio_http_client_opts *o = &c->o;
    o->max_conns_per_origin = o->max_conns_per_origin ? o->max_conns_per_origin : 16;
    o->max_conns = o->max_conns ? o->max_conns : 256;
    o->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : 30000;
    o->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    o->first_byte_timeout_ms = o->first_byte_timeout_ms ? o->first_byte_timeout_ms : 30000;
    o->read_timeout_ms = o->read_timeout_ms ? o->read_timeout_ms : 30000;
    o->dns_ttl_ms = o->dns_ttl_ms ? o->dns_ttl_ms : 10000;
    o->max_header_bytes = o->max_header_bytes ? o->max_header_bytes : 16384;
    o->max_headers = o->max_headers ? o->max_headers : 100;
    o->max_body = o->max_body ? o->max_body : (size_t)1 << 20;
    if (o->tls_ca_file && !(c->tls_ca_file = strdup(o->tls_ca_file))) {
        free(c);
        return CORIO_ENOMEM;
    }
    o->tls_ca_file = c->tls_ca_file;
    c->tls = o->tls_ctx; /* the caller's: borrowed */
    corio_semaphore_init(&c->permits, o->max_conns);
    corio_event_init(&c->pooled);
    c->refs = 1;
    *out = c;
    return 0;
}

void corio__client_ref(corio_http_client *c) {
    c->refs++;
}

/* The last reference frees the client (its pools are empty by then:
 * corio_http_client_free closed the idle connections and no exchange pools
 * one after it). */
void corio__client_unref(corio_http_client *c) {
    if (--c->refs)
        return;
    for (corio__origin *o = c->origins, *next; o; o = next) {
        next = o->next;
        free(o->host);
        free(o);
    }
    if (c->tls != c->o.tls_ctx)
        corio_tls_ctx_free(c->tls);
    free(c->tls_ca_file);
    free(c);
}

/* Await: closes a connection (shielded: a cancelled caller still closes). */
static void conn_close(corio_http_client *c, corio_stream *s) {
    CORIO_WITH(corio_shield_scope()) {
        corio_stream_close(s);
    }
    c->open--;
}

/* Await: closes the idle connections idle since `before` or earlier (all:
 * UINT64_MAX).  Returns the time the next one expires (UINT64_MAX: none).
 * They are unlinked first and closed after: a close awaits, and meanwhile
 * a checkout may take (and free) the list's other entries. */
static uint64_t close_idle(corio_http_client *c, uint64_t before) {
    uint64_t next = UINT64_MAX;
    corio__pconn *doomed = NULL;
    for (corio__origin *o = c->origins; o; o = o->next) {
        for (corio__pconn **pp = &o->idle; *pp;) {
            corio__pconn *pc = *pp;
            if (before == UINT64_MAX || pc->idle_since <= before) {
                *pp = pc->next;
                pc->next = doomed;
                doomed = pc;
            } else {
                if (pc->idle_since + c->o.idle_timeout_ms < next)
                    next = pc->idle_since + c->o.idle_timeout_ms;
                pp = &pc->next;
            }
        }
    }
    while (doomed) {
        corio__pconn *pc = doomed;
        doomed = pc->next;
        conn_close(c, pc->s);
        free(pc);
    }
    return next;
}

static int keeper_task(void *arg) {
    corio_http_client *c = arg;
    while (!c->closed) {
        corio_event_clear(&c->pooled);
        uint64_t now = corio_now();
        uint64_t next = close_idle(c, now >= c->o.idle_timeout_ms ? now - c->o.idle_timeout_ms : 0);
        int rc;
        if (next == UINT64_MAX)
            rc = corio_event_wait(&c->pooled);
        else
            rc = corio_sleep(next - now);
        if (rc == CORIO_ECANCELED)
            break; /* the loop shuts down, or the client is freed */
    }
    close_idle(c, UINT64_MAX);
    corio_task_release(c->keeper);
    c->keeper = NULL;
    corio__client_unref(c);
    return 0;
}

void corio_http_client_free(corio_http_client *c) {
    if (!c)
        return;
    c->closed = true;
    close_idle(c, UINT64_MAX);
    if (c->keeper)
        corio_cancel(c->keeper);
    corio__client_unref(c);
}

corio__origin *corio__origin_get(corio_http_client *c, const corio__url *u) {
    for (corio__origin *o = c->origins; o; o = o->next)
        if (o->scheme == u->scheme && o->port == u->port &&
            (u->scheme == CORIO__UNIX ? strcmp(o->host, u->host) : strcasecmp(o->host, u->host)) ==
                0)
            return o;
    corio__origin *o = calloc(1, sizeof *o);
    if (!o || !(o->host = strdup(u->host))) {
        free(o);
        return NULL;
    }
    o->scheme = u->scheme;
    o->port = u->port;
    corio_semaphore_init(&o->permits, c->o.max_conns_per_origin);
    o->next = c->origins;
    c->origins = o;
    return o;
}

/* Await: closes the least recently used idle connection of any origin.
 * Returns false when there is none. */
static bool close_lru_idle(corio_http_client *c) {
    corio__pconn **oldest = NULL;
    for (corio__origin *o = c->origins; o; o = o->next)
        for (corio__pconn **pp = &o->idle; *pp; pp = &(*pp)->next)
            if (!oldest || (*pp)->idle_since < (*oldest)->idle_since)
                oldest = pp;
    if (!oldest)
        return false;
    corio__pconn *pc = *oldest;
    *oldest = pc->next;
    conn_close(c, pc->s);
    free(pc);
    return true;
}

/* Await: a TCP (or Unix) connection to o, and its TLS handshake. */
static int dial(corio_http_client *c, corio__origin *o, corio_stream **out) {
    int rc = 0;
    if (o->scheme == CORIO__HTTPS && !c->tls) {
        corio_tls_client_opts to = {.ca_file = c->tls_ca_file, .alpn = "http/1.1"};
        if ((rc = corio_tls_ctx_new_client(&c->tls, &to)) < 0)
            return rc;
    }
    CORIO_WITH(corio_timeout_scope(c->o.connect_timeout_ms)) {
        if (o->scheme == CORIO__UNIX) {
            rc = corio_connect_unix(out, o->host);
            break;
        }
        if (corio_now() >= o->addrs_until) {
            size_t n = 0;
            corio_addr fresh[sizeof o->addrs / sizeof *o->addrs];
            rc = corio_resolve(o->host, o->port, fresh, sizeof fresh / sizeof *fresh, &n);
            if (rc < 0)
                break;
            memcpy(o->addrs, fresh, n * sizeof *fresh);
            o->naddrs = n;
            o->addrs_until = corio_now() + c->o.dns_ttl_ms;
        }
        /* A copy: another dial may refresh the cache while this one connects. */
        size_t n = o->naddrs;
        corio_addr addrs[sizeof o->addrs / sizeof *o->addrs];
        memcpy(addrs, o->addrs, n * sizeof *addrs);
        rc = corio_connect_addrs(out, addrs, n, 0);
        if (rc < 0) {
            o->addrs_until = 0; /* resolve again next time */
            break;
        }
        if (o->scheme == CORIO__HTTPS && (rc = corio_stream_start_tls(*out, c->tls, o->host)) < 0) {
            CORIO_WITH(corio_shield_scope()) {
                corio_stream_close(*out);
            }
            *out = NULL;
        }
    }
    return rc;
}

int corio__checkout(corio_http_client *c, corio__origin *o, bool fresh, corio__pconn **out,
                    bool *reused) {
    int rc = corio_semaphore_acquire(&o->permits);
    if (rc)
        return rc;
    if ((rc = corio_semaphore_acquire(&c->permits))) {
        corio_semaphore_release(&o->permits);
        return rc;
    }
    while (!fresh && o->idle) {
        corio__pconn *pc = o->idle;
        o->idle = pc->next;
        uint64_t idle = corio_now() - pc->idle_since;
        /* Closed by the peer, or junk?  Asking the kernel costs a syscall
         * per reuse; a connection back for less than PEEK_AFTER_MS is taken
         * on trust (a close that raced the reuse is found by the request,
         * and retried if idempotent, as any close racing a check would be). */
        bool stale = idle >= c->o.idle_timeout_ms ||
                     (idle >= PEEK_AFTER_MS ? corio__stream_input_pending(pc->s)
                                            : corio__stream_has_input(pc->s));
        if (!stale) {
            *out = pc;
            *reused = true;
            return 0;
        }
        conn_close(c, pc->s);
        free(pc);
    }
    while (c->open >= c->o.max_conns && close_lru_idle(c)) {
    }
    c->open++;                             /* counted from now: a concurrent opener sees it */
    corio__pconn *pc = malloc(sizeof *pc); /* the connection's record, for its life */
    rc = pc ? dial(c, o, &pc->s) : CORIO_ENOMEM;
    if (rc < 0) {
        free(pc);
        c->open--;
        corio_semaphore_release(&c->permits);
        corio_semaphore_release(&o->permits);
        return rc;
    }
    *out = pc;
    *reused = false;
    return 0;
}

void corio__detach(corio_http_client *c, corio__origin *o, corio__pconn *pc) {
    c->open--;
    free(pc);
    corio_semaphore_release(&c->permits);
    corio_semaphore_release(&o->permits);
}

void corio__checkin(corio_http_client *c, corio__origin *o, corio__pconn *pc, bool reusable) {
    /* Buffered bytes past the response: junk.  Bytes still in the kernel
     * are the checkout's to find (its peek), not a second recv here. */
    if (reusable && !c->closed && !corio__stream_has_input(pc->s)) {
        pc->idle_since = corio_now();
        pc->next = o->idle;
        o->idle = pc;
        corio_event_set(&c->pooled);
        corio_spawn_opts so = {
            .name = "http-client-pool", .run_if_cancelled = true, .no_context = true};
        if (!c->keeper && corio_spawn_ex(&c->keeper, &so, keeper_task, c) == 0)
            corio__client_ref(c);
    } else {
        conn_close(c, pc->s);
        free(pc);
    }
    corio_semaphore_release(&c->permits);
    corio_semaphore_release(&o->permits);
}
