/* SPDX-License-Identifier: MIT */
/* corio/log.h — leveled logging to stderr.
 *
 * One line per message: "2026-11-25T13:30:00.123Z INFO  [1234] message"
 * (UTC, milliseconds, the level padded to five letters, the process id).
 * Messages above the current level are dropped before formatting.  Writes
 * are single write(2) calls of whole lines, so lines from several worker
 * processes sharing stderr do not interleave.
 *
 * corio's own messages use this one format too: misuse of the API and
 * problems at teardown are ERROR lines (written whatever the level), what a
 * peer causes is WARN through corio_log_peer.  The access log
 * (corio_http_opts.access_log) is the exception: its lines are in the
 * common log format, for the tools that read that.
 *
 * A line logged from the task serving an HTTP request (or from a task
 * spawned there) ends with that request's id (corio_req_id):
 *
 *   2026-11-25T13:30:00.123Z INFO  [1234] message req=3f2a9c0b7d4e81a6c5b90d1e2f3a4b5c
 *
 * JSON lines (corio_log_set_format(CORIO_LOG_JSON), the runner's
 * --log-format json): one object per line, the same fields under keys,
 *
 *   {"time":"2026-11-25T13:30:00.123Z","level":"info","pid":1234,"msg":"message",
 *    "request_id":"3f2a..."}
 *
 * (on one line; "request_id" only when there is one), and the access log
 * then writes one object per response too (see corio_http_opts.access_log).
 */
#ifndef CORIO_LOG_H
#define CORIO_LOG_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum corio_log_level {
    CORIO_LOG_ERROR = 0,
    CORIO_LOG_WARN,
    CORIO_LOG_INFO,
    CORIO_LOG_DEBUG,
} corio_log_level;

/* Sets the process-wide level (default CORIO_LOG_INFO). */
void corio_log_set_level(corio_log_level level);
corio_log_level corio_log_get_level(void);

/* Parses "error", "warn", "info" or "debug" into *out.  Returns 0 or
 * CORIO_EINVAL. */
int corio_log_level_parse(const char *name, corio_log_level *out);

/* The line format: CORIO_LOG_TEXT (the default) or CORIO_LOG_JSON.  Set
 * it before serving (the runner does, before it forks its workers); it
 * applies to corio_log, corio_log_peer, corio's own reports (a fault
 * handler's included) and the access log. */
typedef enum corio_log_format {
    CORIO_LOG_TEXT = 0,
    CORIO_LOG_JSON,
} corio_log_format;

/* Sets the process-wide line format (default CORIO_LOG_TEXT; a value
 * that is neither is taken as CORIO_LOG_TEXT). */
void corio_log_set_format(corio_log_format format);
/* Returns the process-wide line format. */
corio_log_format corio_log_get_format(void);

/* Parses "text" or "json" (case-insensitive) into *out.  Returns 0 or
 * CORIO_EINVAL (*out untouched). */
int corio_log_format_parse(const char *name, corio_log_format *out);

/* Logs one line at `level` (printf format; a trailing newline is added).
 * Control characters in the formatted message (bytes below 0x20, and 0x7f)
 * are written as \xNN, so whatever a message quotes cannot end the line
 * (forge another) or send escape sequences to a terminal.  A line longer
 * than about 1 KiB is cut. */
void corio_log(corio_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* As corio_log, for events a peer can cause at will: a failed TLS
 * handshake, a malformed record, a client that misbehaves.  Rate-limited per
 * thread (so per worker loop): a burst of CORIO_LOG_PEER_BURST lines, then
 * CORIO_LOG_PEER_RATE lines a second; the lines over the limit are counted,
 * and the next line that passes is preceded by one "N similar messages
 * suppressed" line at the same level.  Lines above the current level are
 * neither written nor counted. */
#define CORIO_LOG_PEER_BURST 20
#define CORIO_LOG_PEER_RATE 10
void corio_log_peer(corio_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copies the n bytes at src (borrowed) into dst (cap >= 1 bytes) for a log
 * line, NUL-terminated, with every byte below 0x20 or from 0x7f up, '"' and
 * '\\' written as \xNN: fit for a quoted field, and nothing a client sent
 * can end the line or reach a terminal raw.  What does not fit is cut at a
 * whole byte or escape.  Returns the length written (without the NUL). */
size_t corio_log_escape(char *dst, size_t cap, const void *src, size_t n);

/* As corio_log_escape, for the inside of a JSON string: '"' and '\\' as
 * \" and \\, every byte below 0x20 and 0x7f as \u00XX, well-formed UTF-8
 * copied as it is, and each byte that is not part of a well-formed UTF-8
 * sequence (a stray continuation byte, an overlong form, a surrogate, a
 * sequence cut short) replaced by \ufffd (U+FFFD): the result is valid
 * JSON whatever src holds, and one line.  What does not fit is cut at a
 * whole character or escape.  Returns the length written (without the
 * NUL; dst: cap >= 1 bytes, NUL-terminated). */
size_t corio_log_json_escape(char *dst, size_t cap, const void *src, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_LOG_H */
