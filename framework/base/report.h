/* SPDX-License-Identifier: MIT */
/* Diagnostics for programming errors, unusable configuration and teardown
 * problems: one ERROR line through the logger (corio/log.h), in the format
 * of every other line,
 *
 *   2026-11-25T13:30:00.123Z ERROR [1234] corio_spawn called outside corio_run()
 *
 * and so written whatever the log level (ERROR is never filtered).  Never
 * used for anything a peer can cause (bad input, failed handshakes): that
 * goes through corio_log_peer, leveled and rate-limited. */
#ifndef CORIO_BASE_REPORT_H
#define CORIO_BASE_REPORT_H

/* Formats the message (printf) and logs it at CORIO_LOG_ERROR.  Safe on any
 * thread, before or after a loop exists: it touches no loop and no stdio
 * state, only a stack buffer and one write(2).  Not async-signal-safe (its
 * printf formatting is not): from a signal handler, use corio__report_raw. */
void corio__report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The same line for a message formatted already (msg: borrowed,
 * NUL-terminated): async-signal-safe (a hand-formatted prefix and one
 * write(2)), for a fault handler such as the stack-overflow report. */
void corio__report_raw(const char *msg);

/* The id of the HTTP request the task running on this thread serves (or
 * inherited from the task that spawned it), NUL-terminated, or NULL: set by
 * the runtime as it switches tasks (corio__task_set_request_id), read by
 * every log line (which ends with it) and by the HTTP client (which sends
 * it upstream as X-Request-Id).  Borrowed from the task: valid while the
 * task runs. */
extern __thread const char *corio__log_request_id;

/* The longest request id kept (corio_req_id): a client's longer one is
 * replaced. */
#define CORIO__REQUEST_ID_MAX 128

#endif
