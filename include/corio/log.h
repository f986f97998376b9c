/* corio/log.h — leveled logging to stderr.
 *
 * One line per message: "2026-11-25T13:30:00.123Z INFO  [1234] message".
 * Messages above the current level are dropped before formatting.  Writes
 * are single write(2) calls of whole lines, so lines from several worker
 * processes sharing stderr do not interleave.
 */
#ifndef CORIO_LOG_H
#define CORIO_LOG_H

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

/* Logs one line at `level` (printf format; a trailing newline is added). */
void corio_log(corio_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif /* CORIO_LOG_H */
