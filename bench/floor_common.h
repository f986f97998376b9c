/* SPDX-License-Identifier: MIT */
/* floor_common.h: what the two reference floors, bench/floor_uv.c (libuv +
 * llhttp) and bench/floor_epoll.c (raw epoll), share so that they are the
 * same server on the wire: the buffer sizes, the routes, the cached Date
 * header, the X-Request-Id generator (splitmix64), the per-request JSON
 * serialization, the response writer, and the start (argument parsing,
 * SIGPIPE, seeding) and "listening on" line of main.  Each floor keeps only
 * its own I/O and request parsing.  Static definitions: include it in one
 * translation unit, after _GNU_SOURCE.
 */
#ifndef FLOOR_COMMON_H
#define FLOOR_COMMON_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define READ_CAP 65536 /* one read */
#define HEAD_MAX 8192  /* a longer request head is a 400 */
#define RESP_MAX 256   /* more than the longest response floor_response writes */
/* The shortest request is 16 bytes ("A / HTTP/1.1\r\n\r\n"): a read of
 * READ_CAP bytes completes at most READ_CAP / 16 + 1 of them, and a 400. */
#define OUT_CAP ((READ_CAP / 16 + 3) * RESP_MAX)

enum { R_PLAIN, R_JSON, R_404, R_400 };

static char date[30];     /* "Sun, 06 Dec 2026 15:58:14 GMT": IMF-fixdate */
static uint64_t id_state; /* splitmix64's, for X-Request-Id */

/* Formats t into date, with English names whatever the locale. */
static void floor_set_date(time_t t) {
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    char buf[64];
    gmtime_r(&t, &tm);
    snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
    memcpy(date, buf, 29);
}

static inline uint64_t splitmix64(void) {
    uint64_t z = (id_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char hex[] = "0123456789abcdef";

static inline char *put(char *p, const char *s, size_t n) {
    memcpy(p, s, n);
    return p + n;
}
#define PUT(p, lit) put(p, lit, sizeof(lit) - 1)

/* A JSON string: s quoted, with '"', '\\' and control bytes escaped. */
static char *json_string(char *p, const char *s) {
    *p++ = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            p = PUT(p, "\\u00");
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        } else {
            *p++ = (char)ch;
        }
    }
    *p++ = '"';
    return p;
}

static inline int floor_route(const char *path, size_t n) {
    if (n == 10 && memcmp(path, "/plaintext", 10) == 0)
        return R_PLAIN;
    if (n == 5 && memcmp(path, "/json", 5) == 0)
        return R_JSON;
    return R_404;
}

/* Writes one response at p (RESP_MAX bytes at most); returns its end.  The
 * header set of examples/hello's responses, in its order: Server, Date,
 * Content-Type, Content-Length, X-Request-Id (32 random hex digits), then
 * Connection when the connection closes or an HTTP/1.0 one stays open. */
static char *floor_response(char *p, int route, bool keep, bool http10) {
    char body[64]; /* serialized per request, /json's too */
    char *b = body;
    if (route == R_PLAIN) {
        b = PUT(b, "Hello, World!");
    } else if (route == R_JSON) {
        *b++ = '{';
        b = json_string(b, "message");
        *b++ = ':';
        b = json_string(b, "Hello, World!");
        *b++ = '}';
    }
    size_t blen = (size_t)(b - body);
    if (route == R_PLAIN || route == R_JSON)
        p = PUT(p, "HTTP/1.1 200 OK\r\n");
    else if (route == R_404)
        p = PUT(p, "HTTP/1.1 404 Not Found\r\n");
    else
        p = PUT(p, "HTTP/1.1 400 Bad Request\r\n");
    p = PUT(p, "Server: floor\r\nDate: ");
    p = put(p, date, 29);
    if (route == R_JSON)
        p = PUT(p, "\r\nContent-Type: application/json\r\nContent-Length: ");
    else
        p = PUT(p, "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
    if (blen >= 10)
        *p++ = (char)('0' + blen / 10);
    *p++ = (char)('0' + blen % 10);
    p = PUT(p, "\r\nX-Request-Id: ");
    for (int half = 0; half < 2; half++) {
        uint64_t x = splitmix64();
        for (int i = 0; i < 16; i++, x >>= 4)
            *p++ = hex[x & 15];
    }
    p = PUT(p, "\r\n");
    if (!keep)
        p = PUT(p, "Connection: close\r\n");
    else if (http10)
        p = PUT(p, "Connection: keep-alive\r\n");
    p = PUT(p, "\r\n");
    return put(p, body, blen);
}

/* The start of main: parses --port N [--host ADDR] (the host defaults to
 * 127.0.0.1), ignores SIGPIPE (a peer's reset is a write error, not the
 * end) and seeds the X-Request-Id generator.  0, or -1 after a usage
 * message. */
static int floor_start(int argc, char **argv, const char **host, int *port) {
    *host = "127.0.0.1";
    *port = -1;
    int i = 1;
    for (; i + 1 < argc; i += 2) {
        char *end;
        if (strcmp(argv[i], "--host") == 0) {
            *host = argv[i + 1];
        } else if (strcmp(argv[i], "--port") == 0) {
            long v = strtol(argv[i + 1], &end, 10);
            if (*argv[i + 1] && !*end && v >= 0 && v <= 65535)
                *port = (int)v;
            else
                break;
        } else {
            break;
        }
    }
    if (i != argc || *port < 0) {
        fprintf(stderr, "usage: %s --port N [--host 127.0.0.1]\n", argv[0]);
        return -1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    id_state = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec ^
               (uint64_t)getpid() << 32;
    return 0;
}

/* The line bench/servers.sh and the tests wait for, flushed. */
static void floor_listening(const char *host, int port) {
    printf("listening on %s:%d\n", host, port);
    fflush(stdout);
}

#endif /* FLOOR_COMMON_H */
