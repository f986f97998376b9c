/* SPDX-License-Identifier: MIT */
/* RFC 9110 token characters ("tchar"): what a method, a header field name
 * and other HTTP tokens are made of, for the server's parser and
 * responses and for the client's requests alike. */
#ifndef CORIO_BASE_TCHAR_H
#define CORIO_BASE_TCHAR_H

#include <stdbool.h>
#include <stdint.h>

/* Whether ch is in an ASCII character set given as a bit per character
 * (bit c % 64 of word c / 64): one load and a shift, for the checks that
 * run on every byte of a request head. */
static inline bool corio__ascii_in(const uint64_t set[2], unsigned char ch) {
    return ch < 128 && (set[ch >> 6] >> (ch & 63)) & 1;
}

/* Whether ch is a tchar: a visible ASCII character other than the
 * delimiters "(),/:;<=>?@[\]{} and DQUOTE (tests/test_http_request.c
 * checks the bits against this definition). */
static inline bool corio__is_tchar(unsigned char ch) {
    static const uint64_t tchars[2] = {0x03ff6cfa00000000u, 0x57ffffffc7fffffeu};
    return corio__ascii_in(tchars, ch);
}

#endif
