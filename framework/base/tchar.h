/* SPDX-License-Identifier: MIT */
/* RFC 9110 token characters ("tchar"): what a method, a header field name
 * and other HTTP tokens are made of, for the server's parser and
 * responses and for the client's requests alike. */
#ifndef CORIO_BASE_TCHAR_H
#define CORIO_BASE_TCHAR_H

#include <stdbool.h>
#include <string.h>

/* Whether ch is a tchar: a visible ASCII character other than the
 * delimiters "(),/:;<=>?@[\]{} and DQUOTE. */
static inline bool corio__is_tchar(unsigned char ch) {
    return ch > 32 && ch < 127 && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

#endif
