/* SPDX-License-Identifier: MIT */
/* corio/error.h — error codes.
 *
 * Every corio function that can fail returns 0 (CORIO_OK) or a negative
 * CORIO_E* code.  Where an errno value fits, the code is the negated errno
 * (the same numbers libuv's UV_E* use on Unix), so a code returned by libuv
 * can be passed through unchanged.  corio_strerror() names any code.
 */
#ifndef CORIO_ERROR_H
#define CORIO_ERROR_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message): the one table every code comes from. */
#define CORIO_ERRNO_MAP(X)                                                                         \
    X(EPERM, -EPERM, "operation not permitted")                                                    \
    X(ENOENT, -ENOENT, "no such file or directory")                                                \
    X(EISDIR, -EISDIR, "is a directory")                                                           \
    X(EACCES, -EACCES, "permission denied")                                                        \
    X(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                         \
    X(ENOMEM, -ENOMEM, "out of memory")                                                            \
    X(EBUSY, -EBUSY, "resource busy")                                                              \
    X(EINVAL, -EINVAL, "invalid argument")                                                         \
    X(EMFILE, -EMFILE, "too many open files")                                                      \
    X(EPIPE, -EPIPE, "broken pipe")                                                                \
    X(ERANGE, -ERANGE, "result out of range")                                                      \
    X(EBADMSG, -EBADMSG, "malformed message from the peer")                                        \
    X(EALREADY, -EALREADY, "operation already done")                                               \
    X(ECANCELED, -ECANCELED, "operation canceled")                                                 \
    X(ETIMEDOUT, -ETIMEDOUT, "deadline expired")                                                   \
    X(ECONNRESET, -ECONNRESET, "connection reset by peer")                                         \
    X(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                           \
    X(ECONNABORTED, -ECONNABORTED, "connection aborted")                                           \
    X(EADDRINUSE, -EADDRINUSE, "address already in use")                                           \
    X(EHOSTUNREACH, -EHOSTUNREACH, "host is unreachable")                                          \
    X(ENETUNREACH, -ENETUNREACH, "network is unreachable")                                         \
    X(ENOTFOUND, -3008, "name not found (DNS)")                                                    \
    X(ENOTSUP, -ENOTSUP, "operation not supported")                                                \
    X(EOF, -4095, "end of file")                                                                   \
    X(ETLS, -EPROTO, "TLS failure (handshake, alert or bad record)")                               \
    X(ETLS_VERIFY, -EKEYREJECTED, "TLS peer certificate did not verify")                           \
    X(ECLOSED, -30001, "object closed")                                                            \
    X(ENOTASK, -30002, "called outside a corio task")                                              \
    X(EFAILED, -30003, "failed (no more specific reason)")

enum {
    CORIO_OK = 0,
#define CORIO__ERRNO_ENUM(name, value, msg) CORIO_##name = (value),
    CORIO_ERRNO_MAP(CORIO__ERRNO_ENUM)
#undef CORIO__ERRNO_ENUM
};

/* Returns a static, human-readable message for `code`; never NULL.
 * Unknown negative codes are described as errno values when strerror knows
 * them, otherwise as "unknown error". */
const char *corio_strerror(int code);

/* Returns the code's symbolic name ("ECANCELED"), or "UNKNOWN". */
const char *corio_err_name(int code);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_ERROR_H */
