/* SPDX-License-Identifier: MIT */
/* Initial frames for the asm context switch backends.
 *
 * A new context is a stack that looks as if corio__ctx_switch had just saved
 * registers on it, with corio__ctx_trampoline as the return address and the
 * entry function and its argument in callee-saved registers.
 */
#include <stdint.h>
#include <string.h>

#include "coro/ctx.h"

void corio__ctx_trampoline(void);

void corio__ctx_make(corio__ctx *c, void *stack_lo, size_t size, void (*entry)(void *), void *arg) {
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
#if defined(__x86_64__)
    /* Layout from the saved sp upward: control words, r15, r14, r13, r12,
     * rbx, rbp, return address, then 16 bytes of padding so that rsp is
     * 16-byte aligned after `ret` (the trampoline's `call` then enters with
     * the alignment the ABI requires). */
    uint64_t *sp = (uint64_t *)(top - 80);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memset(sp, 0, 80);
    sp[0] = (uint64_t)mxcsr | ((uint64_t)fpucw << 32);
    sp[3] = (uint64_t)(uintptr_t)arg;   /* r13 */
    sp[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    sp[7] = (uint64_t)(uintptr_t)corio__ctx_trampoline;
    c->sp = sp;
#elif defined(__aarch64__)
    /* 160-byte frame: x19..x30 then d8..d15; x30 (slot 11) is where `ret`
     * goes. */
    uint64_t *sp = (uint64_t *)(top - 160);
    memset(sp, 0, 160);
    sp[0] = (uint64_t)(uintptr_t)entry; /* x19 */
    sp[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
    sp[11] = (uint64_t)(uintptr_t)corio__ctx_trampoline;
    c->sp = sp;
#else
#error "asm context backend: unsupported architecture (configure with CORIO_CORO_BACKEND=ucontext)"
#endif
}
