/* SPDX-License-Identifier: MIT */
/* Fuzzes the PostgreSQL client's connection parameters, corio__pg_params
 * (framework/client/pg_conninfo.c): conninfo parsed by libpq, then corio's
 * own work on it, the host list split at commas, each host name resolved
 * off the loop, and the host, hostaddr and port lists rebuilt to one entry
 * per address.
 *
 * Feeds: byte 0 as flags (bit 0: PGHOST="envdb,10.1.2.3", bit 1:
 * PGPORT="6543", bit 2: PGHOSTADDR="127.0.0.9"; unset otherwise: libpq's
 * defaults from the environment are read when conninfo leaves them out),
 * the rest as the conninfo string (a NUL ends it).  It runs in a task of a
 * corio loop (corio_run), as corio_pg_connect calls it.  Host names go to
 * this file's getaddrinfo, which takes the place of the C library's for
 * libuv (symbol interposition): deterministic, no DNS; a name resolves to 0
 * (EAI_NONAME), 1, 2 or 3 addresses, IPv4 and IPv6, chosen by a hash of it.
 *
 * Asserts:
 *  - the result is 0, CORIO_EINVAL, CORIO_ENOMEM or the resolver's code for
 *    the first name that does not resolve (corio_resolve's, the reference
 *    resolving the same names); CORIO_EINVAL exactly when libpq refuses the
 *    conninfo (then corio_pg_error(NULL) holds a message), when the lists
 *    are malformed (more than 64 hosts or ports, a port list of another
 *    length than the host list but one) or a rebuilt list passes 4095
 *    bytes;
 *  - on 0 the parameters are the reference's, in order: without a name to
 *    resolve (a literal address, a socket path, hostaddr given) every
 *    option libpq set, unchanged; with one, every option but host,
 *    hostaddr and port, then host with each entry repeated once per address
 *    of its name (once for a literal or a path), hostaddr with those
 *    addresses ("" for the others), port repeated alike when it was a list
 *    (kept as is when one port);
 *  - the rebuilt lists agree with each other as libpq demands: as many
 *    hostaddr entries as host entries, each a literal address or "", ports
 *    one or as many; the key/value arrays are NULL-terminated and what
 *    corio__pg_params_free frees (ASan's leak check, valgrind). */
#define _GNU_SOURCE /* setenv */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "client/pg_internal.h"
#include "corio/corio.h"
#include "fuzz.h"

/* ---- a deterministic resolver ----------------------------------------------------------- */

static uint32_t name_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct addrinfo *fake_entry(uint32_t h, unsigned i, const char *service) {
    struct addrinfo *ai = calloc(1, sizeof *ai);
    int port = service ? atoi(service) : 0;
    if (!ai)
        return NULL;
    ai->ai_socktype = SOCK_STREAM;
    ai->ai_protocol = IPPROTO_TCP;
    if ((h >> (8 + i)) & 1) {
        struct sockaddr_in6 *a = calloc(1, sizeof *a);
        if (!a) {
            free(ai);
            return NULL;
        }
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr.s6_addr[0] = 0xfd;
        memcpy(&a->sin6_addr.s6_addr[8], &h, sizeof h);
        a->sin6_addr.s6_addr[15] = (uint8_t)i;
        ai->ai_family = AF_INET6;
        ai->ai_addr = (struct sockaddr *)a;
        ai->ai_addrlen = sizeof *a;
    } else {
        struct sockaddr_in *a = calloc(1, sizeof *a);
        if (!a) {
            free(ai);
            return NULL;
        }
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(0x0a000000u | ((h >> 8) & 0xffff) << 8 | i);
        ai->ai_family = AF_INET;
        ai->ai_addr = (struct sockaddr *)a;
        ai->ai_addrlen = sizeof *a;
    }
    return ai;
}

/* Replaces the C library's for libuv's thread pool (and for every other
 * caller in this program). */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res) {
    (void)hints;
    *res = NULL;
    if (!node)
        return EAI_NONAME;
    uint32_t h = name_hash(node);
    unsigned n = h % 4;
    if (n == 0)
        return EAI_NONAME;
    struct addrinfo **tail = res;
    for (unsigned i = 0; i < n; i++) {
        if (!(*tail = fake_entry(h, i, service))) {
            freeaddrinfo(*res);
            *res = NULL;
            return EAI_MEMORY;
        }
        tail = &(*tail)->ai_next;
    }
    return 0;
}

void freeaddrinfo(struct addrinfo *ai) {
    while (ai) {
        struct addrinfo *next = ai->ai_next;
        free(ai->ai_addr);
        free(ai);
        ai = next;
    }
}

/* ---- the reference ----------------------------------------------------------------------- */

/* A growing string. */
typedef struct str {
    char *s;
    size_t n, cap;
} str;

static void str_put(str *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        if (!(b->s = realloc(b->s, b->cap)))
            abort();
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void str_item(str *b, size_t i, const char *s) {
    if (i)
        str_put(b, ",", 1);
    str_put(b, s, strlen(s));
}

/* s split at commas into a malloc'd array of malloc'd strings. */
static size_t split_list(const char *s, char ***out) {
    size_t n = 1;
    for (const char *p = s; *p; p++)
        n += *p == ',';
    char **v = calloc(n, sizeof *v);
    if (!v)
        abort();
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(s, ",");
        v[i] = fuzz_strndup(s, len);
        s += len + (s[len] == ',');
    }
    *out = v;
    return n;
}

static void free_list(char **v, size_t n) {
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool is_literal(const char *h) {
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

static bool to_resolve(const char *h) {
    return *h && h[0] != '/' && h[0] != '@' && !is_literal(h);
}

typedef struct expect {
    int rc;
    bool rebuilt; /* host, hostaddr and port rebuilt */
    size_t n;
    char *keys[64], *vals[64];
} expect;

static void expect_add(expect *e, const char *k, const char *v) {
    FUZZ_CHECK(e->n + 1 < 64, "more options than the reference holds");
    e->keys[e->n] = fuzz_strndup(k, strlen(k));
    e->vals[e->n] = fuzz_strndup(v, strlen(v));
    e->n++;
}

static void expect_free(expect *e) {
    for (size_t i = 0; i < e->n; i++) {
        free(e->keys[i]);
        free(e->vals[i]);
    }
}

static const char *opt_val(const PQconninfoOption *o, const char *key) {
    for (; o->keyword; o++)
        if (!strcmp(o->keyword, key))
            return o->val;
    return NULL;
}

/* The rebuilt host, hostaddr and port lists: 0, a resolver code, EINVAL. */
static int ref_lists(const char *host, const char *port, str *hl, str *al, str *pl) {
    char **h, **p = NULL;
    size_t nh = split_list(host, &h), np = port && *port ? split_list(port, &p) : 0;
    int rc = 0;
    if (nh > 64 || np > 64 || (np > 1 && np != nh))
        rc = CORIO_EINVAL;
    size_t out = 0;
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        corio_addr a[8];
        size_t na = 1;
        bool name = to_resolve(h[i]);
        if (name && (rc = corio_resolve(h[i], 5432, a, 8, &na)) < 0)
            break;
        for (size_t k = 0; k < na; k++, out++) {
            char ip[INET6_ADDRSTRLEN] = "";
            if (name) {
                const struct sockaddr *sa = (const struct sockaddr *)&a[k].sa;
                if (sa->sa_family == AF_INET6)
                    inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
                              sizeof ip);
                else
                    inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof ip);
            }
            str_item(hl, out, h[i]);
            str_item(al, out, ip);
            if (np > 1)
                str_item(pl, out, p[i]);
        }
    }
    if (rc == 0 && np == 1)
        str_put(pl, p[0], strlen(p[0]));
    if (rc == 0 && (hl->n > 4095 || al->n > 4095 || pl->n > 4095))
        rc = CORIO_EINVAL;
    free_list(h, nh);
    if (p)
        free_list(p, np);
    return rc;
}

static void reference(const char *conninfo, expect *e) {
    memset(e, 0, sizeof *e);
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    if (!opts) {
        e->rc = err ? CORIO_EINVAL : CORIO_ENOMEM;
        PQfreemem(err);
        return;
    }
    const char *host = opt_val(opts, "host"), *hostaddr = opt_val(opts, "hostaddr");
    const char *port = opt_val(opts, "port");
    host = host ? host : getenv("PGHOST");
    hostaddr = hostaddr ? hostaddr : getenv("PGHOSTADDR");
    port = port ? port : getenv("PGPORT");
    bool lookup = false;
    if (host && !(hostaddr && *hostaddr)) {
        char **h;
        size_t nh = split_list(host, &h);
        for (size_t i = 0; i < nh && i < 64; i++)
            lookup |= to_resolve(h[i]);
        free_list(h, nh);
    }
    str hl = {0}, al = {0}, pl = {0};
    e->rebuilt = lookup;
    if (lookup)
        e->rc = ref_lists(host, port, &hl, &al, &pl);
    if (e->rc == 0) {
        for (const PQconninfoOption *o = opts; o->keyword; o++)
            if (o->val &&
                !(lookup && (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr") ||
                             !strcmp(o->keyword, "port"))))
                expect_add(e, o->keyword, o->val);
        if (lookup) {
            if (hl.n)
                expect_add(e, "host", hl.s);
            if (al.n)
                expect_add(e, "hostaddr", al.s);
            if (pl.n)
                expect_add(e, "port", pl.s);
        }
    }
    free(hl.s);
    free(al.s);
    free(pl.s);
    PQconninfoFree(opts);
}

/* ---- the checks ---------------------------------------------------------------------------- */

static size_t count_items(const char *s) {
    size_t n = 1;
    for (; *s; s++)
        n += *s == ',';
    return n;
}

static void check_lists(char **keys, char **vals) {
    const char *host = NULL, *addr = NULL, *port = NULL;
    for (size_t i = 0; keys[i]; i++) {
        if (!strcmp(keys[i], "host"))
            host = vals[i];
        else if (!strcmp(keys[i], "hostaddr"))
            addr = vals[i];
        else if (!strcmp(keys[i], "port"))
            port = vals[i];
    }
    if (!host || !addr)
        return;
    size_t nh = count_items(host);
    FUZZ_CHECK(count_items(addr) == nh, "%zu hosts '%s', %zu addresses '%s'", nh, host,
               count_items(addr), addr);
    if (port)
        FUZZ_CHECK(count_items(port) == 1 || count_items(port) == nh, "%zu hosts, ports '%s'", nh,
                   port);
    char **a;
    size_t na = split_list(addr, &a);
    for (size_t i = 0; i < na; i++)
        FUZZ_CHECK(!a[i][0] || is_literal(a[i]), "hostaddr entry '%s'", a[i]);
    free_list(a, na);
}

typedef struct job {
    const char *conninfo;
} job;

static int run(void *arg) {
    const job *j = arg;
    expect e;
    reference(j->conninfo, &e);
    char **keys = (char **)0x1, **vals = (char **)0x1;
    int rc = corio__pg_params(j->conninfo, &keys, &vals);
    FUZZ_CHECK(rc == e.rc, "'%s': %d, the reference says %d", j->conninfo, rc, e.rc);
    if (rc == 0) {
        size_t n = 0;
        for (; keys[n]; n++) {
            FUZZ_CHECK(vals[n], "'%s': a key without a value", j->conninfo);
            FUZZ_CHECK(n < e.n && !strcmp(keys[n], e.keys[n]) && !strcmp(vals[n], e.vals[n]),
                       "'%s': parameter %zu is %s='%s', the reference's %s='%s'", j->conninfo, n,
                       keys[n], vals[n], n < e.n ? e.keys[n] : "(none)",
                       n < e.n ? e.vals[n] : "(none)");
        }
        FUZZ_CHECK(n == e.n, "'%s': %zu parameters, the reference %zu", j->conninfo, n, e.n);
        if (e.rebuilt)
            check_lists(keys, vals);
        corio__pg_params_free(keys, vals);
    } else {
        FUZZ_CHECK(keys == (char **)0x1 && vals == (char **)0x1, "'%s': failed and wrote *keys",
                   j->conninfo);
        if (rc == CORIO_EINVAL)
            FUZZ_CHECK(corio_pg_error(NULL)[0], "'%s': refused without a message", j->conninfo);
    }
    expect_free(&e);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    if (flags & 1)
        setenv("PGHOST", "envdb,10.1.2.3", 1);
    else
        unsetenv("PGHOST");
    if (flags & 2)
        setenv("PGPORT", "6543", 1);
    else
        unsetenv("PGPORT");
    if (flags & 4)
        setenv("PGHOSTADDR", "127.0.0.9", 1);
    else
        unsetenv("PGHOSTADDR");
    job j = {fuzz_strndup(in.p, in.n)};
    int rc = corio_run(run, &j);
    FUZZ_CHECK(rc == 0, "corio_run: %d", rc);
    free((char *)j.conninfo);
    return 0;
}
