/* SPDX-License-Identifier: MIT */
/* Must not compile: a goto into a CORIO_WITH body would run the body without
 * its scope entered (the lock not taken) and then run the exit hook on a
 * scope that was never set up: a crash later, far from the mistake.  Clang
 * refuses it as it is; GCC with -Werror=jump-misses-init, the flag corio's
 * own code builds with.  check.cmake compiles this file twice: with
 * -DCORIO_COMPILE_FAIL_CONTROL (a goto *out of* the body, which is fine) it
 * must compile, proving the command line itself is sound; without it, it
 * must fail with the compiler's jump diagnostic. */
#include <corio/corio.h>

int goto_into_with(void *arg);

int goto_into_with(void *arg) {
    corio_lock lock;
    corio_lock_init(&lock);
#ifndef CORIO_COMPILE_FAIL_CONTROL
    if (arg)
        goto inside; /* into the body, past the scope's enter */
#endif
    CORIO_WITH(corio_lock_scope(&lock)) {
#ifndef CORIO_COMPILE_FAIL_CONTROL
    inside:
#endif
        if (corio_yield() < 0 && arg)
            goto out; /* out of the body: the exit hook runs */
    }
out:
    return 0;
}
