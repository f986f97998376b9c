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
 * formatting is not. */
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

/* Writes one line: the prefix, then msg with its control characters
 * escaped, cut to LINE_MAX_ bytes with the newline.  Async-signal-safe. */
static void emit(corio_log_level level, const char *msg, size_t mlen) {
    char line[LINE_MAX_];
    size_t len = format_prefix(line, level);
    escape_into(line, sizeof line, &len, msg, mlen, false);
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
