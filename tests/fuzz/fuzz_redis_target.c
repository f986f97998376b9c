/* SPDX-License-Identifier: MIT */
/* Fuzzes the Redis client's address parser, corio__redis_target_parse
 * (framework/client/redis_conn.c): what corio_redis_connect and
 * corio_redis_sub_connect make of `where` (redis.h's ADDRESSES) and the
 * options' username, password and db.
 *
 * Feeds: byte 0 as flags (bit 0: options given; bit 1: opts.password
 * "opt:pw"; bit 2: opts.username "optuser"; bits 3-4: opts.db 0, 3, -1 or
 * 7; bit 5: a message buffer of 9 bytes instead of 256), the rest as the
 * address (a NUL ends it, as for a caller).
 *
 * Asserts:
 *  - the result is 0, CORIO_EINVAL or CORIO_ENOMEM; on CORIO_EINVAL a
 *    message, NUL-terminated inside the buffer, nothing written past it;
 *    on 0 an empty message; the target released after a failure too
 *    (ASan's leak check);
 *  - on 0: exactly one of host and path; a host non-empty with a port
 *    1..65535, a path non-empty; db >= 0;
 *  - the result is a reference parser's, written from redis.h: "host",
 *    "host:port", "[v6]" / "[v6]:port", a bare IPv6 literal (two colons or
 *    more), "/path" or "unix:path", "redis://[[user]:password@]host[:port]
 *    [/db]" (the last '@' ends the user part, user and password %XX-decoded,
 *    "password@" alone a password, db 0..1000000, '?' and '#' end the
 *    URL's path), anything else with "://" refused; the options' password
 *    (and then username) when the URL gives none, their db when it gives
 *    none, a negative one refused;
 *  - a round trip: a host target written back as a redis:// URL (user and
 *    password %-encoded, an IPv6 host bracketed), and a path as "unix:"
 *    path, parse to the same target.
 * The reference has two modes.  Default: the contract, which this harness
 * found corio breaking in four ways, all fixed: (1) the db number digits
 * only (it was read with strtol: blanks, '+', "-0"), (2) a %00 in a user or
 * password refused with CORIO_EINVAL (it cut them short), (3) the URL's
 * "/0" kept (opts.db overrode it), (4) a socket path holding "://"
 * accepted (it was refused as an unknown scheme).  FUZZ_REDIS_STRICT=0:
 * the old leniencies as the expected answer instead. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "client/redis_internal.h"
#include "fuzz.h"

static bool strict;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *s = getenv("FUZZ_REDIS_STRICT");
    strict = !(s && *s == '0'); /* the contract; FUZZ_*_STRICT=0: the old leniency */
    return 0;
}

/* ---- the reference ----------------------------------------------------------------------- */

typedef struct ref {
    char *host, *path, *user, *password;
    unsigned port;
    long db;
    bool db_given; /* the URL names a database */
} ref;

static void ref_free(ref *r) {
    free(r->host);
    free(r->path);
    free(r->user);
    free(r->password);
}

static int hexval(int c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* s[0..n) %XX-decoded into *out (malloc'd), or CORIO_EINVAL. */
static int ref_decode(const char *s, size_t n, char **out) {
    char *d = malloc(n + 1);
    size_t o = 0;
    if (!d)
        abort();
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        int hi = i + 1 < n ? hexval((unsigned char)s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
        if (hi < 0 || lo < 0) {
            free(d);
            return CORIO_EINVAL;
        }
        d[o++] = (char)(hi * 16 + lo);
        i += 2;
    }
    if (strict && memchr(d, '\0', o)) { /* (2) */
        free(d);
        return CORIO_EINVAL;
    }
    d[o] = '\0'; /* (2) default: a C string ends at the first NUL */
    *out = d;
    return 0;
}

static int ref_hostport(ref *r, const char *s, size_t n) {
    const char *host = s, *port = NULL;
    size_t hn = n, pn = 0;
    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (!close)
            return CORIO_EINVAL;
        host = s + 1;
        hn = (size_t)(close - host);
        const char *after = close + 1, *end = s + n;
        if (after < end) {
            if (*after != ':')
                return CORIO_EINVAL;
            port = after + 1;
            pn = (size_t)(end - port);
        }
    } else {
        size_t colons = 0;
        const char *first = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':' && !colons++)
                first = s + i;
        if (colons == 1) {
            hn = (size_t)(first - s);
            port = first + 1;
            pn = n - hn - 1;
        }
    }
    if (hn == 0)
        return CORIO_EINVAL;
    r->port = 6379;
    if (port) {
        if (pn == 0 || pn > 5)
            return CORIO_EINVAL;
        unsigned v = 0;
        for (size_t i = 0; i < pn; i++) {
            if (port[i] < '0' || port[i] > '9')
                return CORIO_EINVAL;
            v = v * 10 + (unsigned)(port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return CORIO_EINVAL;
        r->port = v;
    }
    r->host = fuzz_strndup(host, hn);
    return 0;
}

/* The database after "/" up to the end, '?' or '#'. */
static int ref_db(ref *r, const char *s) {
    size_t n = strcspn(s, "?#");
    if (!strict) { /* (1) strtol's reading: blanks, a sign */
        size_t i = 0;
        while (i < n && isspace((unsigned char)s[i]))
            i++;
        bool neg = i < n && s[i] == '-';
        i += i < n && (s[i] == '+' || s[i] == '-');
        size_t d = i;
        unsigned long v = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            v = v > 100000000 ? v : v * 10 + (unsigned long)(s[i] - '0');
        if (i == d || i != n || (neg && v != 0) || v > 1000000)
            return CORIO_EINVAL;
        r->db = (long)v;
        r->db_given = true;
        return 0;
    }
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return CORIO_EINVAL;
        v = v > 100000000 ? v : v * 10 + (unsigned long)(s[i] - '0');
    }
    if (n == 0 || v > 1000000)
        return CORIO_EINVAL;
    r->db = (long)v;
    r->db_given = true;
    return 0;
}

static int ref_url(ref *r, const char *s) {
    size_t an = strcspn(s, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < an; i++)
        if (s[i] == '@')
            at = s + i;
    const char *hp = s;
    if (at) {
        size_t un = (size_t)(at - s);
        const char *colon = memchr(s, ':', un);
        int rc = 0;
        if (colon) {
            if (colon > s)
                rc = ref_decode(s, (size_t)(colon - s), &r->user);
            if (rc == 0)
                rc = ref_decode(colon + 1, (size_t)(at - colon - 1), &r->password);
        } else if (un > 0) {
            rc = ref_decode(s, un, &r->password);
        }
        if (rc)
            return rc;
        hp = at + 1;
    }
    int rc = ref_hostport(r, hp, (size_t)(s + an - hp));
    if (rc)
        return rc;
    const char *p = s + an;
    if (p[0] == '/' && p[1] && p[1] != '?' && p[1] != '#')
        return ref_db(r, p + 1);
    return 0;
}

static int ref_parse(ref *r, const char *where, const corio_redis_opts *o) {
    memset(r, 0, sizeof *r);
    int rc;
    if (!*where) {
        rc = CORIO_EINVAL;
    } else if (strncmp(where, "redis://", 8) == 0) {
        rc = ref_url(r, where + 8);
    } else if (where[0] == '/' || strncmp(where, "unix:", 5) == 0) {
        const char *p = where[0] == '/' ? where : where + 5;
        if (!*p || (!strict && strstr(where, "://"))) /* (4) */
            return CORIO_EINVAL;
        r->path = fuzz_strndup(p, strlen(p));
        rc = 0;
    } else if (strstr(where, "://")) {
        rc = CORIO_EINVAL;
    } else {
        rc = ref_hostport(r, where, strlen(where));
    }
    if (rc || !o)
        return rc;
    if (o->db < 0)
        return CORIO_EINVAL;
    if (!r->password && o->password) {
        r->password = fuzz_strndup(o->password, strlen(o->password));
        if (!r->user && o->username)
            r->user = fuzz_strndup(o->username, strlen(o->username));
    }
    if (strict ? !r->db_given : r->db == 0) /* (3) */
        r->db = o->db;
    return 0;
}

/* ---- the checks ---------------------------------------------------------------------------- */

static bool same_str(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static const char *show(const char *s) {
    return s ? s : "(null)";
}

static void check_same(const corio__redis_target *t, const ref *r, const char *where) {
    FUZZ_CHECK(same_str(t->host, r->host) && same_str(t->path, r->path) &&
                   same_str(t->user, r->user) && same_str(t->password, r->password) &&
                   (!t->host || t->port == r->port) && t->db == r->db,
               "'%s': host '%s' port %u path '%s' user '%s' password '%s' db %d; the reference: "
               "host '%s' port %u path '%s' user '%s' password '%s' db %ld",
               where, show(t->host), t->port, show(t->path), show(t->user), show(t->password),
               t->db, show(r->host), r->port, show(r->path), show(r->user), show(r->password),
               r->db);
}

/* Parses where with o, checks the code and the message.  Returns the code. */
static int parse_checked(corio__redis_target *t, const char *where, const corio_redis_opts *o,
                         size_t msgsz) {
    char msg[256 + 16];
    memset(msg, 'Z', sizeof msg);
    int rc = corio__redis_target_parse(t, where, o, msg, msgsz);
    FUZZ_CHECK(rc == 0 || rc == CORIO_EINVAL || rc == CORIO_ENOMEM, "'%s': returned %d", where, rc);
    for (size_t i = msgsz; i < sizeof msg; i++)
        FUZZ_CHECK(msg[i] == 'Z', "'%s': the message written past its %zu bytes", where, msgsz);
    size_t ml = strnlen(msg, msgsz);
    FUZZ_CHECK(ml < msgsz, "'%s': the message is not terminated", where);
    if (rc == CORIO_EINVAL)
        FUZZ_CHECK(ml > 0, "'%s': refused without a message", where);
    if (rc == 0)
        FUZZ_CHECK(ml == 0, "'%s': parsed with the message '%s'", where, msg);
    return rc;
}

static bool url_safe_host(const char *h) {
    for (; *h; h++)
        if ((unsigned char)*h <= ' ' || (unsigned char)*h >= 0x7f || strchr("[]/?#@%", *h))
            return false;
    return true;
}

static void put_encoded(char *o, const char *s) {
    for (o += strlen(o); *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || strchr("-._~", c))
            *o++ = (char)c;
        else
            o += sprintf(o, "%%%02X", c);
    }
    *o = '\0';
}

static void check_round_trip(const corio__redis_target *t, const corio_redis_opts *o,
                             const char *where) {
    size_t cap = 64 + (t->host ? strlen(t->host) : 0) + (t->path ? strlen(t->path) : 0) +
                 3 * (t->user ? strlen(t->user) : 0) + 3 * (t->password ? strlen(t->password) : 0);
    char *s = malloc(cap);
    if (!s)
        abort();
    if (t->path) {
        snprintf(s, cap, "unix:%s", t->path);
        if (!strict && strstr(s, "://")) { /* (4): "unix:" + "//..." */
            free(s);
            return;
        }
    } else {
        if (!url_safe_host(t->host) || (t->user && !*t->user)) { /* an empty user: (2) */
            free(s);
            return;
        }
        strcpy(s, "redis://");
        if (t->password) {
            if (t->user)
                put_encoded(s, t->user);
            strcat(s, ":");
            put_encoded(s, t->password);
            strcat(s, "@");
        }
        sprintf(s + strlen(s), strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host, t->port);
        if (t->db > 0 || t->db_given) /* "/0" given wins over the options' db */
            sprintf(s + strlen(s), "/%d", t->db);
    }
    corio__redis_target u;
    int rc = parse_checked(&u, s, o, 256);
    FUZZ_CHECK(rc == 0, "'%s' (from '%s') does not parse: %d", s, where, rc);
    FUZZ_CHECK(same_str(t->host, u.host) && same_str(t->path, u.path) &&
                   same_str(t->user, u.user) && same_str(t->password, u.password) &&
                   t->port == u.port && t->db == u.db,
               "'%s' (from '%s') is another target", s, where);
    corio__redis_target_release(&u);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    static const int dbs[] = {0, 3, -1, 7};
    corio_redis_opts opts = {
        .password = flags & 2 ? "opt:pw" : NULL,
        .username = flags & 4 ? "optuser" : NULL,
        .db = dbs[(flags >> 3) & 3],
    };
    const corio_redis_opts *o = flags & 1 ? &opts : NULL;
    size_t msgsz = flags & 32 ? 9 : 256;
    char *where = fuzz_strndup(in.p, in.n);

    corio__redis_target t;
    memset(&t, 0xa5, sizeof t); /* the parser must set every field */
    int rc = parse_checked(&t, where, o, msgsz);
    ref r;
    int want = ref_parse(&r, where, o);
    if (rc != CORIO_ENOMEM)
        FUZZ_CHECK(rc == want, "'%s': %d, the reference says %d", where, rc, want);
    if (rc == 0) {
        FUZZ_CHECK(!t.host != !t.path, "'%s': host '%s' and path '%s'", where, show(t.host),
                   show(t.path));
        FUZZ_CHECK(t.path ? t.path[0] != '\0' : t.host[0] != '\0' && t.port >= 1,
                   "'%s': an empty host or path, or port 0", where);
        FUZZ_CHECK(t.db >= 0, "'%s': db %d", where, t.db);
        check_same(&t, &r, where);
        check_round_trip(&t, o, where);
    }
    corio__redis_target_release(&t);
    FUZZ_CHECK(!t.host && !t.path && !t.user && !t.password, "released and still set");
    ref_free(&r);
    free(where);
    return 0;
}
