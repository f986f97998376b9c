/* SPDX-License-Identifier: MIT */
/* Leveled logging (see corio/log.h).
 *
 * Every line is one write(2) of at most LINE_MAX bytes, so workers sharing
 * stderr never interleave.  The message part is scrubbed of control
 * characters whoever formatted it: a log line stays one line even when a
 * caller quotes what a client sent.  corio_log_peer adds a per-thread token
 * bucket in front, for lines a peer can make us write as often as it
 * likes.
 *
 * Writing a line (emit) is async-signal-safe: the prefix is formatted by
 * hand (base/timefmt.h, no gmtime_r, no stdio), so corio__report_raw can
 * write the same line from a signal handler; only corio_log's own printf
 * formatting is not.  The same goes for a JSON line (emit_json): its
 * object is put together by hand too.
 *
 * The request id a line ends with is the thread's corio__log_request_id,
 * which the runtime points at the running task's (runtime/task.c): the
 * base layer knows no tasks. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/fmt.h"
#include "base/report.h"
#include "base/timefmt.h"
#include "corio/error.h"
#include "corio/log.h"

#define LINE_MAX_ 1024

static corio_log_level current_level = CORIO_LOG_INFO;
static corio_log_format current_format = CORIO_LOG_TEXT;

__thread const char *corio__log_request_id;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
static const char hex[] = "0123456789abcdef";

void corio_log_set_level(corio_log_level level) {
    current_level = level;
}

corio_log_level corio_log_get_level(void) {
    return current_level;
}

int corio_log_level_parse(const char *name, corio_log_level *out) {
    for (int i = 0; i <= CORIO_LOG_DEBUG; i++) {
        if (name && strcasecmp(name, level_names[i]) == 0) {
            *out = (corio_log_level)i;
            return 0;
        }
    }
    return CORIO_EINVAL;
}

void corio_log_set_format(corio_log_format format) {
    current_format = format == CORIO_LOG_JSON ? CORIO_LOG_JSON : CORIO_LOG_TEXT;
}

corio_log_format corio_log_get_format(void) {
    return current_format;
}

int corio_log_format_parse(const char *name, corio_log_format *out) {
    if (name && strcasecmp(name, "text") == 0)
        *out = CORIO_LOG_TEXT;
    else if (name && strcasecmp(name, "json") == 0)
        *out = CORIO_LOG_JSON;
    else
        return CORIO_EINVAL;
    return 0;
}

static bool enabled(corio_log_level level) {
    return level >= CORIO_LOG_ERROR && level <= current_level;
}

/* Appends src[0..n) to dst[0..cap) from *o, control bytes (and, for a
 * quoted field, bytes from 0x80, '"' and '\\') as \xNN, stopping at a whole
 * byte or escape so that one byte of cap stays free. */
static void escape_into(char *dst, size_t cap, size_t *o, const void *src, size_t n, bool quoted) {
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        bool esc = ch < 0x20 || ch == 0x7f || (quoted && (ch > 0x7f || ch == '"' || ch == '\\'));
        if (*o + (esc ? 4 : 1) >= cap)
            break;
        if (esc) {
            dst[(*o)++] = '\\';
            dst[(*o)++] = 'x';
            dst[(*o)++] = hex[ch >> 4];
            dst[(*o)++] = hex[ch & 15];
        } else {
            dst[(*o)++] = (char)ch;
        }
    }
}

size_t corio_log_escape(char *dst, size_t cap, const void *src, size_t n) {
    size_t o = 0;
    if (cap == 0)
        return 0;
    escape_into(dst, cap, &o, src, n, true);
    dst[o] = '\0';
    return o;
}

/* The length of the well-formed UTF-8 sequence p[0..n) starts with (1..4),
 * or 0 when its first byte starts none (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n) {
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the second byte's range */
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* escape_into for the inside of a JSON string (see corio_log_json_escape).
 * Async-signal-safe. */
static void json_into(char *dst, size_t cap, size_t *o, const void *src, size_t n) {
    const unsigned char *p = src;
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        size_t len = utf8_len(p + i, n - i);
        char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
        const char *out = esc;
        size_t olen = 6;
        if (len == 0) { /* not UTF-8: U+FFFD */
            memcpy(esc + 2, "fffd", 4);
            len = 1;
        } else if (ch == '"' || ch == '\\') {
            esc[1] = (char)ch;
            olen = 2;
        } else if (ch >= 0x20 && ch != 0x7f) {
            out = (const char *)p + i;
            olen = len;
        }
        if (*o + olen >= cap)
            break;
        memcpy(dst + *o, out, olen);
        *o += olen;
        i += len;
    }
}

size_t corio_log_json_escape(char *dst, size_t cap, const void *src, size_t n) {
    size_t o = 0;
    if (cap == 0)
        return 0;
    json_into(dst, cap, &o, src, n);
    dst[o] = '\0';
    return o;
}

static void put(char *line, size_t *o, const char *s, size_t n) {
    memcpy(line + *o, s, n);
    *o += n;
}

/* "2026-11-25T13:30:00.123Z INFO  [1234] " into line (LINE_MAX_ bytes);
 * returns its length.  Async-signal-safe. */
static size_t format_prefix(char *line, corio_log_level level) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    size_t n = corio__timefmt_iso_ms(line, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    line[n++] = ' ';
    memcpy(line + n, level_tags[level], 5);
    n += 5;
    line[n++] = ' ';
    line[n++] = '[';
    n += corio__fmt_u64(line + n, (uint64_t)getpid());
    line[n++] = ']';
    line[n++] = ' ';
    return n;
}

/* The request id's part of a line into tail (TAIL_MAX bytes): " req=ID"
 * or, for JSON, ",\"request_id\":\"ID\"", or nothing.  Returns its length. */
#define TAIL_MAX (2 * CORIO__REQUEST_ID_MAX + 32)
static size_t format_tail(char *tail, bool json) {
    const char *id = corio__log_request_id;
    size_t n = 0;
    if (!id || !*id)
        return 0;
    size_t idlen = strnlen(id, CORIO__REQUEST_ID_MAX);
    if (json) {
        put(tail, &n, ",\"request_id\":\"", 15);
        json_into(tail, TAIL_MAX - 1, &n, id, idlen);
        tail[n++] = '"';
    } else {
        put(tail, &n, " req=", 5);
        escape_into(tail, TAIL_MAX, &n, id, idlen, true);
    }
    return n;
}

/* {"time":"...","level":"info","pid":1234,"msg":"...","request_id":"..."}
 * and the newline, cut to LINE_MAX_ bytes in the message.  Async-signal-safe. */
static void emit_json(corio_log_level level, const char *msg, size_t mlen) {
    char line[LINE_MAX_], tail[TAIL_MAX];
    size_t tlen = format_tail(tail, true), n = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    put(line, &n, "{\"time\":\"", 9);
    n += corio__timefmt_iso_ms(line + n, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    put(line, &n, "\",\"level\":\"", 11);
    put(line, &n, level_names[level], strlen(level_names[level]));
    put(line, &n, "\",\"pid\":", 8);
    n += corio__fmt_u64(line + n, (uint64_t)getpid());
    put(line, &n, ",\"msg\":\"", 8);
    json_into(line, sizeof line - tlen - 3, &n, msg, mlen);
    line[n++] = '"';
    put(line, &n, tail, tlen);
    put(line, &n, "}\n", 2);
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/* Writes one line: the prefix, then msg with its control characters
 * escaped, cut to LINE_MAX_ bytes with the newline, then the request id.
 * Async-signal-safe. */
static void emit(corio_log_level level, const char *msg, size_t mlen) {
    if (current_format == CORIO_LOG_JSON) {
        emit_json(level, msg, mlen);
        return;
    }
    char line[LINE_MAX_], tail[TAIL_MAX];
    size_t tlen = format_tail(tail, false);
    size_t len = format_prefix(line, level);
    escape_into(line, sizeof line - tlen - 1, &len, msg, mlen, false);
    put(line, &len, tail, tlen);
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void corio__report_raw(const char *msg) {
    emit(CORIO_LOG_ERROR, msg, strlen(msg));
}

static void vlog(corio_log_level level, const char *fmt, va_list ap) {
    char msg[LINE_MAX_];
    int m = vsnprintf(msg, sizeof msg, fmt, ap);
    if (m < 0)
        return;
    emit(level, msg, (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1);
}

void corio_log(corio_log_level level, const char *fmt, ...) {
    if (!enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

/* ---- rate-limited lines -------------------------------------------------------------- */

/* A token bucket per thread, in thousandths of a line: it holds at most
 * BURST lines and refills at RATE lines a second. */
#define MILLI 1000
static __thread struct {
    bool primed;
    int64_t tokens;
    int64_t at_ms;
    uint64_t suppressed;
} bucket;

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether one more line may go out now; takes its token. */
static bool take_token(void) {
    int64_t now = now_ms();
    if (!bucket.primed) {
        bucket.primed = true;
        bucket.tokens = (int64_t)CORIO_LOG_PEER_BURST * MILLI;
        bucket.at_ms = now;
    }
    int64_t elapsed = now - bucket.at_ms;
    if (elapsed > 0) {
        int64_t full = (int64_t)CORIO_LOG_PEER_BURST * MILLI;
        int64_t add = elapsed >= full ? full : elapsed * CORIO_LOG_PEER_RATE;
        bucket.tokens = bucket.tokens + add > full ? full : bucket.tokens + add;
        bucket.at_ms = now;
    }
    if (bucket.tokens < MILLI)
        return false;
    bucket.tokens -= MILLI;
    return true;
}

void corio_log_peer(corio_log_level level, const char *fmt, ...) {
    if (!enabled(level))
        return;
    if (!take_token()) {
        bucket.suppressed++;
        return;
    }
    if (bucket.suppressed) {
        char note[64];
        int n = snprintf(note, sizeof note, "%llu similar messages suppressed",
                         (unsigned long long)bucket.suppressed);
        emit(level, note, (size_t)n);
        bucket.suppressed = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}
