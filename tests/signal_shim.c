/* SPDX-License-Identifier: MIT */
/* An LD_PRELOAD shim for test_runner.py's teardown-signal case: the first
 * time the program sets SIGTERM to SIG_IGN (the worker's teardown, after it
 * closed its signal watchers, when libuv has put the signals' default
 * actions back), it sends itself the signal CORIO_SHIM_SIGNAL names and
 * waits 100 ms, as a second SIGTERM or a supervisor's SIGUSR1 arriving at
 * that moment would.  The process must still exit 0. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef void (*handler_fn)(int);

handler_fn signal(int sig, handler_fn h) {
    static handler_fn (*real)(int, handler_fn);
    static int fired;
    if (!real)
        real = (handler_fn(*)(int, handler_fn))dlsym(RTLD_NEXT, "signal");
    const char *which = getenv("CORIO_SHIM_SIGNAL");
    if (sig == SIGTERM && h == SIG_IGN && which && !fired) {
        fired = 1;
        kill(getpid(), atoi(which));
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return real(sig, h);
}
