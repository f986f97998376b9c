/* SPDX-License-Identifier: MIT */
/* corio__report: one ERROR line through the logger (see report.h;
 * corio__report_raw, which writes it, is in log.c beside the line format). */
#include <stdarg.h>
#include <stdio.h>

#include "base/report.h"

void corio__report(const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    corio__report_raw(line);
}
