/* corio__report: one diagnostic line on stderr (see report.h). */
#include <stdarg.h>
#include <stdio.h>

#include "base/report.h"

void corio__report(const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    fprintf(stderr, "corio: %.*s\n", n, line);
}
