/* SPDX-License-Identifier: MIT */
/* Stack overflow detection (see overflow.h).  Everything the handler does is
 * async-signal-safe: it formats its message by hand and calls write(2) and
 * abort(3). */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "corio/error.h"
#include "base/fmt.h"
#include "base/report.h"
#include "coro/overflow.h"

__thread const corio__overflow_info *corio__overflow_current;

static struct sigaction old_segv, old_bus;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int install_error;

static __thread void *altstack;
static __thread stack_t old_altstack;

#define ALTSTACK_SIZE (64 * 1024)
/* A fault this far below a stack's lowest byte still counts as its overflow:
 * a large frame can step over the first page below it.  The guard (stack.c)
 * is this large, so such a fault lands in the stack's own guard. */
#define OVERFLOW_SLACK (256 * 1024)

static size_t put_str(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at < cap)
        buf[at++] = *s++;
    return at;
}

static size_t put_u64(char *buf, size_t at, size_t cap, uint64_t v) {
    char digits[20];
    size_t n = corio__fmt_u64(digits, v);
    for (size_t i = 0; i < n && at < cap; i++)
        buf[at++] = digits[i];
    return at;
}

static void report_overflow(const corio__overflow_info *info) {
    char msg[256];
    size_t n = 0, cap = sizeof msg - 1;
    n = put_str(msg, n, cap, "stack overflow in task '");
    n = put_str(msg, n, cap, info->name ? info->name : "?");
    n = put_str(msg, n, cap, "' (id ");
    n = put_u64(msg, n, cap, info->id);
    n = put_str(msg, n, cap, ", stack size ");
    /* The size as configured (corio_spawn_opts.stack_size, page-rounded), which
     * the hint below refers to: `size` is that less the descriptor kept at the
     * top of the mapping, a number the user never asked for.  The guard size
     * was cached when the stack was mapped, so this stays signal-safe. */
    n = put_u64(msg, n, cap, info->stack->map_size - corio__guard_size());
    n = put_str(msg, n, cap, " bytes): give it a larger stack (corio_spawn_opts.stack_size)");
    msg[n] = '\0';
    corio__report_raw(msg); /* the one log line format, async-signal-safely */
}

static void chain(int sig, siginfo_t *si, void *uctx) {
    struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, si, uctx);
        return;
    }
    if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN && old->sa_handler) {
        old->sa_handler(sig);
        return;
    }
    /* Default action: reinstate it and return; the fault repeats and kills
     * the process with the right signal. */
    signal(sig, SIG_DFL);
}

static void on_fault(int sig, siginfo_t *si, void *uctx) {
    const corio__overflow_info *info = corio__overflow_current;
    if (info && info->stack) {
        uintptr_t addr = (uintptr_t)si->si_addr;
        uintptr_t lo = (uintptr_t)info->stack->lo;
        uintptr_t floor = lo > OVERFLOW_SLACK ? lo - OVERFLOW_SLACK : 0;
        if (addr < lo && addr >= floor) {
            report_overflow(info);
            signal(SIGABRT, SIG_DFL);
            abort();
        }
    }
    chain(sig, si, uctx);
}

static void install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &old_segv) != 0 || sigaction(SIGBUS, &sa, &old_bus) != 0)
        install_error = CORIO_EINVAL;
}

int corio__overflow_thread_init(void) {
    pthread_once(&install_once, install);
    if (install_error)
        return install_error;
    if (altstack)
        return 0;
    void *mem =
        mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return CORIO_ENOMEM;
    stack_t ss = {.ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0};
    if (sigaltstack(&ss, &old_altstack) != 0) {
        munmap(mem, ALTSTACK_SIZE);
        return CORIO_EINVAL;
    }
    altstack = mem;
    return 0;
}

void corio__overflow_thread_release(void) {
    if (!altstack)
        return;
    sigaltstack(&old_altstack, NULL);
    munmap(altstack, ALTSTACK_SIZE);
    altstack = NULL;
}
