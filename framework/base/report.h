/* Diagnostics for programming errors and teardown problems: one line on
 * stderr, prefixed "corio: ".  Never used for a client's bad input. */
#ifndef CORIO_BASE_REPORT_H
#define CORIO_BASE_REPORT_H

void corio__report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
