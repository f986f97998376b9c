/* Diagnostics for programming errors, unusable configuration and teardown
 * problems: one line on stderr, prefixed "corio: ", whatever the log level.
 * Never used for anything a peer can cause (bad input, failed handshakes):
 * that goes through corio_log_peer (corio/log.h), leveled and rate-limited. */
#ifndef CORIO_BASE_REPORT_H
#define CORIO_BASE_REPORT_H

void corio__report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
