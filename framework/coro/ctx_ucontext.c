/* SPDX-License-Identifier: MIT */
/* Portable context backend on getcontext/makecontext/swapcontext, for targets
 * without an asm switch.  makecontext passes int arguments only, so the entry
 * function and its argument each travel as two 32-bit halves. */
#include <stdint.h>
#include <stdlib.h>

#include "coro/ctx.h"

#define JOIN(hi, lo) (((uintptr_t)(hi) << 16 << 16) | (uintptr_t)(lo))
#define HI(p) ((unsigned)((uintptr_t)(p) >> 16 >> 16))
#define LO(p) ((unsigned)((uintptr_t)(p)&0xffffffffu))

static void trampoline(unsigned eh, unsigned el, unsigned ah, unsigned al) {
    void (*entry)(void *) = (void (*)(void *))JOIN(eh, el);
    entry((void *)JOIN(ah, al));
    abort(); /* entry never returns */
}

void corio__ctx_make(corio__ctx *c, void *stack_lo, size_t size, void (*entry)(void *), void *arg) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack_lo;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = NULL;
    makecontext(&c->uc, (void (*)(void))trampoline, 4, HI(entry), LO(entry), HI(arg), LO(arg));
}

void corio__ctx_switch(corio__ctx *from, corio__ctx *to) {
    swapcontext(&from->uc, &to->uc);
}
