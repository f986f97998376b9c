/* SPDX-License-Identifier: MIT */
/* Connection parameters with host names resolved off the loop.
 *
 * libpq resolves a host name with a blocking getaddrinfo inside
 * PQconnectStart/PQconnectPoll.  So corio_pg_connect parses conninfo first
 * (PQconninfoParse), resolves each host name of it with corio_resolve
 * (libuv's getaddrinfo on the thread pool) and hands libpq the addresses as
 * hostaddr, one host entry per address ("host=db" with two addresses
 * becomes "host=db,db hostaddr=10.0.0.1,10.0.0.2", in getaddrinfo's order,
 * with a port list widened to match), keeping the name for authentication
 * and TLS.  Socket paths, literal addresses and a conninfo that already
 * gives hostaddr go through unchanged.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "corio/stream.h"
#include "pg_internal.h"

#define MAX_HOSTS 64    /* entries of the host list, as given */
#define MAX_ADDRS_PER 8 /* addresses kept per host name */
#define LIST_CAP 4096   /* bytes of a rebuilt host, hostaddr or port list */

typedef struct strbuf {
    char s[LIST_CAP];
    size_t n;
    bool overflow;
} strbuf;

static void put(strbuf *b, const char *s, size_t len) {
    if (b->n + len + 1 > sizeof b->s) {
        b->overflow = true;
        return;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

static void put_item(strbuf *b, size_t index, const char *s, size_t len) {
    if (index > 0)
        put(b, ",", 1);
    put(b, s, len);
}

/* Splits a comma-separated list in place into at most cap items. */
static size_t split(char *list, char **items, size_t cap) {
    size_t n = 0;
    for (char *p = list;;) {
        if (n == cap)
            return cap + 1;
        items[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            return n;
        *comma = '\0';
        p = comma + 1;
    }
}

static bool needs_lookup(const char *host) {
    unsigned char buf[sizeof(struct in6_addr)];
    if (!*host || host[0] == '/' || host[0] == '@')
        return false;
    return inet_pton(AF_INET, host, buf) != 1 && inet_pton(AF_INET6, host, buf) != 1;
}

static const char *opt_val(const PQconninfoOption *opts, const char *key) {
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val;
    return NULL;
}

/* Rebuilds host, hostaddr and port from the host list h[0..nh) and port
 * list p[0..np) (split in place) and each name's addresses.  Returns 0, a
 * corio_resolve error, or CORIO_EINVAL. */
static int expand_lists(char **h, size_t nh, char **p, size_t np, strbuf *hosts, strbuf *addrs,
                        strbuf *ports) {
    if (nh > MAX_HOSTS || np > MAX_HOSTS || (np > 1 && np != nh)) {
        corio__pg_set_error(NULL, NULL,
                            "corio_pg_connect: too many hosts, or a port list "
                            "that does not match the host list",
                            NULL);
        return CORIO_EINVAL;
    }
    size_t out = 0;
    for (size_t i = 0; i < nh; i++) {
        corio_addr a[MAX_ADDRS_PER];
        size_t na = 1;
        bool name = needs_lookup(h[i]);
        if (name) {
            int rc = corio_resolve(h[i], 5432, a, MAX_ADDRS_PER, &na);
            if (rc < 0) {
                char m[600];
                snprintf(m, sizeof m, "could not resolve host name \"%s\": %s", h[i],
                         corio_strerror(rc));
                corio__pg_set_error(NULL, NULL, m, NULL);
                return rc;
            }
        }
        for (size_t k = 0; k < na; k++, out++) {
            char ip[INET6_ADDRSTRLEN] = "";
            if (name) {
                const struct sockaddr *sa = (const struct sockaddr *)&a[k].sa;
                const void *bin = sa->sa_family == AF_INET6
                                      ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                                      : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
                inet_ntop(sa->sa_family, bin, ip, sizeof ip);
            }
            put_item(hosts, out, h[i], strlen(h[i]));
            put_item(addrs, out, ip, strlen(ip));
            if (np > 1)
                put_item(ports, out, p[i], strlen(p[i]));
        }
    }
    if (np == 1)
        put(ports, p[0], strlen(p[0]));
    if (hosts->overflow || addrs->overflow || ports->overflow) {
        corio__pg_set_error(NULL, NULL, "corio_pg_connect: the host list is too long", NULL);
        return CORIO_EINVAL;
    }
    return 0;
}

static int expand_hosts(const char *host_in, const char *port_in, strbuf *hosts, strbuf *addrs,
                        strbuf *ports) {
    char *hcopy = strdup(host_in), *pcopy = strdup(port_in ? port_in : "");
    int rc = CORIO_ENOMEM;
    if (hcopy && pcopy) {
        char *h[MAX_HOSTS + 1], *p[MAX_HOSTS + 1];
        size_t nh = split(hcopy, h, MAX_HOSTS), np = *pcopy ? split(pcopy, p, MAX_HOSTS) : 0;
        rc = expand_lists(h, nh, p, np, hosts, addrs, ports);
    }
    free(hcopy);
    free(pcopy);
    return rc;
}

void corio__pg_params_free(char **keys, char **vals) {
    for (size_t i = 0; keys && keys[i]; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    free(keys);
    free(vals);
}

/* Copies every set option of opts into keys/vals, host/hostaddr/port
 * replaced by the rebuilt lists when `expanded`. */
static int copy_params(const PQconninfoOption *opts, bool expanded, const strbuf *hosts,
                       const strbuf *addrs, const strbuf *ports, char ***keys, char ***vals) {
    size_t n = 0;
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    char **k = calloc(n + 4, sizeof *k), **v = calloc(n + 4, sizeof *v);
    if (!k || !v) {
        free(k);
        free(v);
        return CORIO_ENOMEM;
    }
    size_t j = 0;
    bool oom = false;
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        const char *val = o->val;
        if (expanded && (strcmp(o->keyword, "host") == 0 || strcmp(o->keyword, "hostaddr") == 0 ||
                         strcmp(o->keyword, "port") == 0))
            continue;
        if (!val)
            continue;
        k[j] = strdup(o->keyword);
        v[j] = strdup(val);
        oom |= !k[j] || !v[j];
        j++;
    }
    if (expanded) {
        const char *names[] = {"host", "hostaddr", "port"};
        const strbuf *lists[] = {hosts, addrs, ports};
        for (size_t i = 0; i < 3; i++) {
            if (lists[i]->n == 0)
                continue;
            k[j] = strdup(names[i]);
            v[j] = strdup(lists[i]->s);
            oom |= !k[j] || !v[j];
            j++;
        }
    }
    if (oom) {
        for (size_t i = 0; i < j; i++) { /* a NULL key ends the list early: free by count */
            free(k[i]);
            free(v[i]);
        }
        free(k);
        free(v);
        return CORIO_ENOMEM;
    }
    *keys = k;
    *vals = v;
    return 0;
}

int corio__pg_params(const char *conninfo, char ***keys, char ***vals) {
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        corio__pg_set_error(NULL, NULL, err ? err : "out of memory", NULL);
        int rc = err ? CORIO_EINVAL : CORIO_ENOMEM;
        PQfreemem(err);
        return rc;
    }
    const char *host = opt_val(opts, "host"), *hostaddr = opt_val(opts, "hostaddr");
    const char *port = opt_val(opts, "port");
    if (!host)
        host = getenv("PGHOST");
    if (!hostaddr)
        hostaddr = getenv("PGHOSTADDR");
    if (!port)
        port = getenv("PGPORT");
    bool lookup = false;
    if (host && !(hostaddr && *hostaddr)) {
        /* Without the copy, whether a name needs corio's lookup is unknown:
         * libpq would resolve it itself, blocking the loop. */
        char *copy = strdup(host), *h[MAX_HOSTS + 1];
        if (!copy) {
            PQconninfoFree(opts);
            return CORIO_ENOMEM;
        }
        size_t nh = split(copy, h, MAX_HOSTS);
        for (size_t i = 0; i < nh && i < MAX_HOSTS; i++)
            lookup |= needs_lookup(h[i]);
        free(copy);
    }
    static const strbuf empty;
    int rc = 0;
    strbuf *lists = NULL;
    if (lookup) {
        lists = calloc(3, sizeof *lists);
        rc = lists ? expand_hosts(host, port, &lists[0], &lists[1], &lists[2]) : CORIO_ENOMEM;
    }
    if (rc == 0)
        rc = copy_params(opts, lookup, lists ? &lists[0] : &empty, lists ? &lists[1] : &empty,
                         lists ? &lists[2] : &empty, keys, vals);
    free(lists);
    PQconninfoFree(opts);
    return rc;
}
