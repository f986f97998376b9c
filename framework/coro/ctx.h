/* SPDX-License-Identifier: MIT */
/* Machine contexts: the raw context switch, one backend per target.
 *
 * The asm backends (x86-64 System V, aarch64) save only what the ABI says a
 * callee must preserve, on the stack being left, and keep a single stack
 * pointer per context: a switch is a handful of instructions.  Elsewhere the
 * ucontext backend does the same job with swapcontext (slower: it saves the
 * signal mask with a system call).  The build picks one (CMakeLists.txt).
 */
#ifndef CORIO_CORO_CTX_H
#define CORIO_CORO_CTX_H

#include <stddef.h>

#if defined(CORIO_CORO_UCONTEXT)
#include <ucontext.h>
typedef struct corio__ctx {
    ucontext_t uc;
} corio__ctx;
#else
typedef struct corio__ctx {
    void *sp; /* saved stack pointer; the registers live on that stack */
} corio__ctx;
#endif

/* Prepares `c` so that the first switch to it calls entry(arg) on the stack
 * [stack_lo, stack_lo + size).  entry must never return: it ends by switching
 * away for good. */
void corio__ctx_make(corio__ctx *c, void *stack_lo, size_t size, void (*entry)(void *), void *arg);

/* Saves the running context into `from` and resumes `to`.  Returns when
 * something switches back to `from`. */
void corio__ctx_switch(corio__ctx *from, corio__ctx *to);

#endif
