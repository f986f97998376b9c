/* Leveled logging (see corio/log.h). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "corio/errno.h"
#include "corio/log.h"

static corio_log_level current_level = CORIO_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

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

void corio_log(corio_log_level level, const char *fmt, ...) {
    if (level > current_level || level < CORIO_LOG_ERROR)
        return;
    char line[1024];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s [%d] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_tags[level], (int)getpid());
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
