/* SPDX-License-Identifier: MIT */
/* Fuzzes the HTTP client's URL parser, corio__url_parse (framework/client/url.c),
 * without and with a base (a redirect's Location against the URL it answers).
 *
 * Feeds: the input as text.  Without a newline, one URL, parsed alone and
 * against a fixed base (http://example.com:8080/a/b/c?q).  With one,
 * "BASE\nREF": BASE parsed alone; REF parsed alone, and against BASE when
 * BASE parsed.  A NUL byte ends a string early, as it would for a caller.
 *
 * Asserts, for every parse:
 *  - it returns 0, CORIO_EINVAL, CORIO_ENOTSUP or CORIO_ENOMEM, and a failure
 *    leaves nothing to free (target NULL);
 *  - on success: the scheme is http, https or http+unix; the target starts
 *    with '/' and holds no '#', space, control byte or DEL; for http(s) the
 *    host is 1..255 bytes without space, control byte, DEL, '/', '?', '#' or
 *    '@', a ':' only in a bracketed literal, and the port is 1..65535; for
 *    http+unix the host (a socket path) is non-empty and the port 0;
 *  - serialising the components and parsing that again (no base) gives the
 *    same components;
 *  - an absolute URL's (or scheme-relative Location's) host, port and target
 *    are what the input spells, read here independently (brackets, default
 *    ports, percent-decoding of a socket path, the fragment dropped);
 *  - a reference resolved against a base has the target RFC 3986 5.2.2
 *    gives, computed here independently (merge, then 5.2.4's
 *    remove_dot_segments written as the RFC's steps A-E), so no "." or ".."
 *    segment is left in its path; and the base's scheme, host and port
 *    unless it has an authority of its own;
 *  - the request head corio__req_head writes for the URL is one request
 *    line and header lines, each ending in CRLF, with no other CR, LF or NUL
 *    and its only blank line at the end (a URL cannot inject a header);
 *  - corio__url_release frees all (ASan's leak check, valgrind). */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "client/client_internal.h"
#include "fuzz.h"

static const char *const prefixes[] = {
    [CORIO__HTTP] = "http://", [CORIO__HTTPS] = "https://", [CORIO__UNIX] = "http+unix://"};

static uint16_t default_port(int scheme) {
    return scheme == CORIO__HTTPS ? 443 : scheme == CORIO__HTTP ? 80 : 0;
}

/* ---- an independent reading of what a URL spells ---------------------------------- */

static int hexdigit(int c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The target as written after the authority: up to the fragment, with a
 * '/' in front when it starts with '?' or is empty (malloc'd). */
static char *target_as_written(const char *rest) {
    size_t n = strcspn(rest, "#");
    char *t = malloc(n + 2), *o = t;
    if (!t)
        abort();
    if (rest[0] != '/')
        *o++ = '/';
    memcpy(o, rest, n);
    o[n] = '\0';
    return t;
}

/* auth (n bytes) is what u's host and port say it is. */
static bool authority_matches(const char *auth, size_t n, const corio__url *u) {
    if (u->scheme == CORIO__UNIX) {
        char dec[512];
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            int c = (unsigned char)auth[i];
            if (c == '%' && i + 2 < n && hexdigit(auth[i + 1]) >= 0 && hexdigit(auth[i + 2]) >= 0) {
                c = hexdigit(auth[i + 1]) * 16 + hexdigit(auth[i + 2]);
                i += 2;
            }
            if (o + 1 >= sizeof dec)
                return false;
            dec[o++] = (char)c;
        }
        return o == strlen(u->host) && memcmp(dec, u->host, o) == 0;
    }
    size_t hl = strlen(u->host);
    const char *after;
    if (n >= hl + 2 && auth[0] == '[' && memcmp(auth + 1, u->host, hl) == 0 && auth[hl + 1] == ']')
        after = auth + hl + 2;
    else if (n >= hl && memcmp(auth, u->host, hl) == 0)
        after = auth + hl;
    else
        return false;
    size_t left = n - (size_t)(after - auth);
    if (left == 0)
        return u->port == default_port(u->scheme);
    if (after[0] != ':' || left < 2)
        return false;
    unsigned long v = 0;
    for (size_t i = 1; i < left; i++) {
        if (!isdigit((unsigned char)after[i]))
            return false;
        v = v * 10 + (unsigned long)(after[i] - '0');
        if (v > 65535)
            return false;
    }
    return v == u->port;
}

/* ---- RFC 3986 5.2.4, step by step, on a string ----------------------------------------- */

static bool starts(const char *s, const char *p) {
    return strncmp(s, p, strlen(p)) == 0;
}

/* Removes the last segment and its preceding '/' (if any) from out. */
static void drop_last_segment(char *out) {
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
    else
        out[0] = '\0';
}

/* The path p (n bytes) without dot segments, into a malloc'd string. */
static char *rfc_remove_dots(const char *p, size_t n) {
    char *in = fuzz_strndup(p, n), *out = malloc(n + 2);
    if (!out)
        abort();
    out[0] = '\0';
    char *s = in;
    while (*s) {
        if (starts(s, "../")) { /* A */
            s += 3;
        } else if (starts(s, "./")) {
            s += 2;
        } else if (starts(s, "/./")) { /* B */
            s += 2;
        } else if (strcmp(s, "/.") == 0) {
            s[1] = '\0';
        } else if (starts(s, "/../")) { /* C */
            s += 3;
            drop_last_segment(out);
        } else if (strcmp(s, "/..") == 0) {
            s += 2;
            s[0] = '/';
            drop_last_segment(out);
        } else if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) { /* D */
            s += strlen(s);
        } else { /* E: the first segment, with its '/' */
            size_t k = s[0] == '/' ? 1 : 0;
            k += strcspn(s + k, "/");
            strncat(out, s, k);
            s += k;
        }
    }
    free(in);
    if (!out[0])
        strcpy(out, "/");
    return out;
}

/* A target (path, and "?query" if any) with dot segments removed from its
 * path (malloc'd). */
static char *normalised(const char *t) {
    size_t pl = strcspn(t, "?");
    char *path = rfc_remove_dots(t, pl);
    char *r = malloc(strlen(path) + strlen(t + pl) + 1);
    if (!r)
        abort();
    strcpy(r, path);
    strcat(r, t + pl);
    free(path);
    return r;
}

/* RFC 3986 5.2.2 for a reference without scheme or authority, against the
 * base's target; then normalised (url.c removes dot segments from every
 * target it resolves, the base's included when the reference is empty). */
static char *rfc_resolve(const char *base_target, const char *ref) {
    size_t rl = strcspn(ref, "#");
    char *r = fuzz_strndup(ref, rl);
    size_t bpl = strcspn(base_target, "?");
    char *merged;
    if (r[0] == '/') {
        merged = fuzz_strndup(r, rl);
    } else if (r[0] == '\0') {
        merged = fuzz_strndup(base_target, strlen(base_target));
    } else if (r[0] == '?') {
        merged = malloc(bpl + rl + 1);
        if (!merged)
            abort();
        memcpy(merged, base_target, bpl);
        strcpy(merged + bpl, r);
    } else { /* merge: the base path up to its last '/', then the reference */
        size_t dir = bpl;
        while (dir > 0 && base_target[dir - 1] != '/')
            dir--;
        merged = malloc(dir + rl + 1);
        if (!merged)
            abort();
        memcpy(merged, base_target, dir);
        strcpy(merged + dir, r);
    }
    free(r);
    char *t = normalised(merged);
    free(merged);
    return t;
}

/* ---- the invariants ---------------------------------------------------------------- */

static bool bad_byte(unsigned char c) {
    return c <= ' ' || c == 0x7f;
}

static void check_components(const corio__url *u, const char *what) {
    FUZZ_CHECK(u->scheme == CORIO__HTTP || u->scheme == CORIO__HTTPS || u->scheme == CORIO__UNIX,
               "%s: scheme %d", what, u->scheme);
    FUZZ_CHECK(u->target && u->target[0] == '/', "%s: target '%s'", what,
               u->target ? u->target : "(null)");
    for (const char *t = u->target; *t; t++)
        FUZZ_CHECK(!bad_byte((unsigned char)*t) && *t != '#', "%s: byte 0x%02x in target", what,
                   (unsigned char)*t);
    size_t hl = strnlen(u->host, sizeof u->host);
    FUZZ_CHECK(hl > 0 && hl < sizeof u->host, "%s: host of %zu bytes", what, hl);
    if (u->scheme == CORIO__UNIX) {
        FUZZ_CHECK(u->port == 0, "%s: unix port %u", what, u->port);
        return;
    }
    FUZZ_CHECK(u->port >= 1, "%s: port 0", what);
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)u->host[i];
        FUZZ_CHECK(!bad_byte(c) && !strchr("/?#@", c), "%s: byte 0x%02x in host '%s'", what, c,
                   u->host);
    }
}

/* u as a URL string (malloc'd): a socket path percent-encoded, a host with
 * ':' (or a leading '[') in brackets, a port other than the scheme's. */
static char *serialise(const corio__url *u) {
    size_t cap = strlen(prefixes[u->scheme]) + 3 * sizeof u->host + 16 + strlen(u->target);
    char *s = malloc(cap), *o = s;
    if (!s)
        abort();
    o += sprintf(o, "%s", prefixes[u->scheme]);
    if (u->scheme == CORIO__UNIX) {
        for (const char *h = u->host; *h; h++) {
            unsigned char c = (unsigned char)*h;
            if (isalnum(c) || strchr("-._~", c))
                *o++ = (char)c;
            else
                o += sprintf(o, "%%%02X", c);
        }
    } else {
        bool br = strchr(u->host, ':') || u->host[0] == '[';
        o += sprintf(o, br ? "[%s]" : "%s", u->host);
        if (u->port != default_port(u->scheme))
            o += sprintf(o, ":%u", u->port);
    }
    strcpy(o, u->target);
    return s;
}

static void check_same(const corio__url *a, const corio__url *b, const char *s) {
    FUZZ_CHECK(a->scheme == b->scheme && a->port == b->port && strcmp(a->host, b->host) == 0 &&
                   strcmp(a->target, b->target) == 0,
               "'%s' parses to %d '%s' %u '%s', not %d '%s' %u '%s'", s, b->scheme, b->host,
               b->port, b->target, a->scheme, a->host, a->port, a->target);
}

static void check_round_trip(const corio__url *u) {
    char *s = serialise(u);
    corio__url v;
    int rc = corio__url_parse(s, NULL, &v);
    FUZZ_CHECK(rc == 0, "re-parsing '%s' (from host '%s', target '%s'): %d", s, u->host, u->target,
               rc);
    check_same(u, &v, s);
    corio__url_release(&v);
    free(s);
}

/* The head of a GET of u: lines ending in CRLF, nothing else breaking a line,
 * the request line and Host naming u. */
static void check_request_head(const corio__url *u) {
    corio__req q = {.method = "GET", .url = *u, .body_fd = -1};
    size_t len;
    char *head = corio__req_head(&q, &len);
    if (!head)
        return; /* out of memory */
    FUZZ_CHECK(len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0, "head does not end a head");
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)head[i];
        FUZZ_CHECK(c != '\0', "NUL at %zu of the head", i);
        if (c == '\r')
            FUZZ_CHECK(head[i + 1] == '\n', "CR without LF at %zu of the head", i);
        if (c == '\n')
            FUZZ_CHECK(i > 0 && head[i - 1] == '\r', "LF without CR at %zu of the head", i);
        if (c == '\r' && i + 4 < len)
            FUZZ_CHECK(memcmp(head + i, "\r\n\r\n", 4) != 0, "a blank line at %zu of %zu", i, len);
    }
    char line[sizeof u->host + 64];
    size_t tl = strlen(u->target);
    FUZZ_CHECK(len > tl + 15 && memcmp(head, "GET ", 4) == 0 &&
                   memcmp(head + 4, u->target, tl) == 0 &&
                   memcmp(head + 4 + tl, " HTTP/1.1\r\n", 11) == 0,
               "request line of '%s'", u->target);
    if (u->scheme == CORIO__UNIX) {
        snprintf(line, sizeof line, "\r\nHost: localhost\r\n");
    } else {
        bool v6 = strchr(u->host, ':') != NULL;
        int n =
            snprintf(line, sizeof line, "\r\nHost: %s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "");
        if (u->port != default_port(u->scheme))
            n += snprintf(line + n, sizeof line - (size_t)n, ":%u", u->port);
        snprintf(line + n, sizeof line - (size_t)n, "\r\n");
    }
    size_t ll = strlen(line);
    FUZZ_CHECK(memmem(head, len, line, ll) == head + 4 + tl + 9, "no '%s' after the request line",
               line + 2);
    free(head);
}

/* Parses s against base (may be NULL) and checks the result.  Returns the
 * code; on success *out holds the URL (release it) when out is given. */
static int parse_checked(const char *s, const corio__url *base, corio__url *out) {
    corio__url u;
    memset(&u, 0xa5, sizeof u); /* the parser must set every field */
    int rc = corio__url_parse(s, base, &u);
    FUZZ_CHECK(rc == 0 || rc == CORIO_EINVAL || rc == CORIO_ENOTSUP || rc == CORIO_ENOMEM,
               "'%s': returned %d", s, rc);
    if (rc != 0) {
        FUZZ_CHECK(u.target == NULL, "'%s': failed (%d) and kept a target", s, rc);
        corio__url_release(&u);
        return rc;
    }
    check_components(&u, s);
    check_round_trip(&u);
    check_request_head(&u);

    /* What the input spells. */
    bool scheme_relative = base && s[0] == '/' && s[1] == '/';
    const char *rest = NULL;
    if (!base || scheme_relative || strstr(s, "://")) {
        for (int k = 0; !rest && k < 3; k++)
            if (strncasecmp(s, prefixes[k], strlen(prefixes[k])) == 0 && !scheme_relative) {
                FUZZ_CHECK(u.scheme == k, "'%s': scheme %d, not %d", s, u.scheme, k);
                rest = s + strlen(prefixes[k]);
            }
        if (scheme_relative) {
            FUZZ_CHECK(u.scheme == base->scheme, "'%s': scheme %d, the base's %d", s, u.scheme,
                       base->scheme);
            rest = s + 2;
        }
    }
    if (rest) { /* an authority of its own */
        size_t an = strcspn(rest, "/?#");
        FUZZ_CHECK(authority_matches(rest, an, &u), "'%s': host '%s' port %u", s, u.host, u.port);
        FUZZ_CHECK(u.scheme == CORIO__UNIX || !strchr(u.host, ':') || rest[0] == '[',
                   "'%s': host '%s' has a ':' outside brackets", s, u.host);
        char *t = target_as_written(rest + an);
        if (base) { /* a Location: resolved (RFC 3986 5.2.2: dot segments removed) */
            char *n = normalised(t);
            free(t);
            t = n;
        }
        FUZZ_CHECK(strcmp(t, u.target) == 0, "'%s': target '%s', expected '%s'", s, u.target, t);
        free(t);
    } else {
        FUZZ_CHECK(base, "'%s' parsed without a base and without a scheme", s);
        FUZZ_CHECK(u.scheme == base->scheme && u.port == base->port &&
                       strcmp(u.host, base->host) == 0,
                   "'%s': origin %d '%s' %u, not the base's", s, u.scheme, u.host, u.port);
        char *t = rfc_resolve(base->target, s);
        FUZZ_CHECK(strcmp(t, u.target) == 0, "'%s' against '%s': target '%s', expected '%s'", s,
                   base->target, u.target, t);
        free(t);
    }
    if (base) { /* no dot segment survives a resolution */
        size_t pl = strcspn(u.target, "?");
        for (const char *seg = u.target; seg < u.target + pl;) {
            const char *next = seg + 1 + strcspn(seg + 1, "/?");
            size_t n = (size_t)(next - seg - 1);
            FUZZ_CHECK(!((n == 1 && seg[1] == '.') || (n == 2 && seg[1] == '.' && seg[2] == '.')),
                       "'%s': dot segment left in '%s'", s, u.target);
            seg = next;
        }
    }
    if (out)
        *out = u;
    else
        corio__url_release(&u);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_strndup(data, size);
    char *nl = memchr(text, '\n', strlen(text));
    if (!nl) {
        static corio__url fixed;
        static bool have_fixed;
        if (!have_fixed) {
            FUZZ_CHECK(corio__url_parse("http://example.com:8080/a/b/c?q", NULL, &fixed) == 0,
                       "the fixed base");
            have_fixed = true;
        }
        parse_checked(text, NULL, NULL);
        parse_checked(text, &fixed, NULL);
    } else {
        *nl = '\0';
        corio__url base;
        bool have_base = parse_checked(text, NULL, &base) == 0;
        parse_checked(nl + 1, NULL, NULL);
        if (have_base) {
            parse_checked(nl + 1, &base, NULL);
            corio__url_release(&base);
        }
    }
    free(text);
    return 0;
}
