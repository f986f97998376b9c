/* SPDX-License-Identifier: MIT */
/* Number formatting without printf: for hot paths (task names, response
 * heads) and for signal handlers (the overflow report), where snprintf is
 * too slow or not async-signal-safe. */
#ifndef CORIO_BASE_FMT_H
#define CORIO_BASE_FMT_H

#include <stddef.h>
#include <stdint.h>

/* Writes v in decimal at out (room for 20 digits needed; no NUL) and
 * returns the number of digits written. */
static inline size_t corio__fmt_u64(char *out, uint64_t v) {
    char digits[20];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

/* Writes v in lower-case hexadecimal at out (room for 16 digits needed;
 * no NUL) and returns the number of digits written (a chunk-size line). */
static inline size_t corio__fmt_hex(char *out, uint64_t v) {
    char digits[16];
    size_t n = 0;
    do {
        digits[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

#endif
