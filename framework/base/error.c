/* SPDX-License-Identifier: MIT */
/* Error names and messages, all from the one table in corio/error.h. */
#include <string.h>

#include <uv.h>

#include "corio/error.h"

const char *corio_strerror(int code) {
    switch (code) {
    case CORIO_OK:
        return "success";
#define CORIO__ERRNO_MSG(name, value, msg)                                                         \
    case (value):                                                                                  \
        return msg;
        CORIO_ERRNO_MAP(CORIO__ERRNO_MSG)
#undef CORIO__ERRNO_MSG
    default:
        break;
    }
    if (code <= -3000 && code > -3100)
        return uv_strerror(code); /* libuv's getaddrinfo codes, UV_EAI_* */
    if (code < 0 && code > -4096)
        return strerror(-code); /* glibc: static strings for known codes */
    return "unknown error";
}

const char *corio_err_name(int code) {
    switch (code) {
    case CORIO_OK:
        return "OK";
#define CORIO__ERRNO_NAME(name, value, msg)                                                        \
    case (value):                                                                                  \
        return #name;
        CORIO_ERRNO_MAP(CORIO__ERRNO_NAME)
#undef CORIO__ERRNO_NAME
    default:
        return "UNKNOWN";
    }
}
