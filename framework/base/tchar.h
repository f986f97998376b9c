/* SPDX-License-Identifier: MIT */
/* RFC 9110 token characters ("tchar"): what a method, a header field name
 * and other HTTP tokens are made of, for the server's parser and
 * responses and for the client's requests alike. */
#ifndef CORIO_BASE_TCHAR_H
#define CORIO_BASE_TCHAR_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Whether ch is a tchar: a visible ASCII character other than the
 * delimiters "(),/:;<=>?@[\]{} and DQUOTE.  A bit per ASCII character
 * (bit c % 64 of word c / 64): this runs for every byte of every field
 * name; tests/test_http_request.c checks the bits against the definition. */
static inline bool corio__is_tchar(unsigned char ch) {
    static const uint64_t bits[2] = {0x03ff6cfa00000000u, 0x57ffffffc7fffffeu};
    return ch < 128 && (bits[ch >> 6] >> (ch & 63)) & 1;
}

#endif
