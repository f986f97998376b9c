/* SPDX-License-Identifier: MIT */
/* Which sanitizers and tools the build is under, in one place. */
#ifndef CORIO_CORO_SANITIZER_H
#define CORIO_CORO_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define CORIO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CORIO_ASAN 1
#endif
#endif

#if defined(CORIO_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#if defined(CORIO_HAVE_VALGRIND)
#include <valgrind/valgrind.h>
#endif

#endif
