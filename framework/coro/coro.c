/* SPDX-License-Identifier: MIT */
/* Coroutine switches with ASan fiber annotations (see coro.h).
 *
 * ASan keeps per-stack bookkeeping (fake stacks for use-after-return, the
 * current stack bounds): before every switch we announce the stack we are
 * about to run on (__sanitizer_start_switch_fiber) and, once running again,
 * confirm it (__sanitizer_finish_switch_fiber), which also tells us the bounds
 * of the stack we came from; that is how the loop's own stack is learned.
 * Valgrind is told about stacks where they are mapped (stack.c).
 */
#include "coro/coro.h"
#include "coro/sanitizer.h"

#if defined(CORIO_ASAN)
/* The coroutine being switched away from, for the finishing side. */
static __thread corio__coro *switching_from;
#endif

void corio__coro_make(corio__coro *c, corio__stack *stack, void (*entry)(void *), void *arg) {
    c->stack_lo = stack->lo;
    c->stack_size = stack->size;
    c->asan_fake = NULL;
    corio__ctx_make(&c->ctx, stack->lo, stack->size, entry, arg);
}

void corio__coro_started(void) {
#if defined(CORIO_ASAN)
    corio__coro *from = switching_from;
    __sanitizer_finish_switch_fiber(NULL, &from->stack_lo, &from->stack_size);
#endif
}

void corio__coro_switch(corio__coro *from, corio__coro *to, bool from_ends) {
#if defined(CORIO_ASAN)
    switching_from = from;
    __sanitizer_start_switch_fiber(from_ends ? NULL : &from->asan_fake, to->stack_lo,
                                   to->stack_size);
    corio__ctx_switch(&from->ctx, &to->ctx);
    corio__coro *back_from = switching_from;
    __sanitizer_finish_switch_fiber(from->asan_fake, &back_from->stack_lo, &back_from->stack_size);
#else
    (void)from_ends;
    corio__ctx_switch(&from->ctx, &to->ctx);
#endif
}
