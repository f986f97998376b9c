/* SPDX-License-Identifier: MIT */
/* What every harness of tests/fuzz shares: the entry points, FUZZ_CHECK
 * (an invariant that must hold: a violation prints what and where and
 * aborts, which libFuzzer and the replay driver report as a finding), and a
 * reader that takes option bytes off the front of an input.  Header only:
 * each harness is one .c file (tests/fuzz/CMakeLists.txt). */
#ifndef CORIO_FUZZ_H
#define CORIO_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

__attribute__((format(printf, 4, 5), noreturn, unused)) static void
fuzz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "\nfuzz: invariant violated at %s:%d: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* FUZZ_CHECK(cond, "printf format", args...): cond must hold. */
#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                     \
    } while (0)

/* The input, read from the front: option bytes first, the rest as data.
 * Past the end every byte reads as 0. */
typedef struct fuzz_in {
    const uint8_t *p;
    size_t n;
} fuzz_in;

__attribute__((unused)) static uint8_t fuzz_u8(fuzz_in *in) {
    if (!in->n)
        return 0;
    in->n--;
    return *in->p++;
}

/* A NUL-terminated copy of n bytes (a NUL inside ends the C string early,
 * as it would for the code under test); aborts when out of memory. */
__attribute__((unused)) static char *fuzz_strndup(const void *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

#endif
