/* SPDX-License-Identifier: MIT */
/* Context switch for x86-64 System V.
 *
 * void corio__ctx_switch(corio__ctx *from, corio__ctx *to)
 *
 * Pushes the callee-saved registers (rbp, rbx, r12-r15) and the MXCSR and
 * x87 control words onto the current stack, stores rsp in from->sp, loads
 * to->sp and pops the same frame from there.  `ret` then continues wherever
 * `to` last called corio__ctx_switch, or in corio__ctx_trampoline for a new
 * context (see ctx_asm.c for the frame a new context starts with).
 *
 * CET: the object is marked IBT-compatible (.note.gnu.property below), so
 * linking it does not turn indirect-branch tracking off for a program built
 * with -fcf-protection.  The switch's final indirect jump, whose target is a
 * return site without endbr64, is `notrack` (as GCC's own jump-table jumps
 * are); the trampoline begins with endbr64 (a NOP without CET).  The switch
 * itself has none: it is only ever called directly, and hidden, so never
 * through a PLT either (an endbr64 there cost 0.3 ns per coro switch, 6 %,
 * in bench_micro).  It is not marked SHSTK: the switch changes stacks without
 * changing shadow stacks and returns with a jump, so under a shadow stack the
 * next `ret` would fault (see the README).
 */
    .text
    .globl  corio__ctx_switch
    .hidden corio__ctx_switch
    .type   corio__ctx_switch, @function
    .p2align 4
corio__ctx_switch:
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    /* Return by an indirect jump, not `ret`: the return address belongs to
     * the other stack, so `ret` would miss the return-stack predictor on
     * every switch (Boost.Context does the same). */
    popq    %rcx
    notrack jmpq *%rcx
    .size   corio__ctx_switch, .-corio__ctx_switch

/* First code a new context runs: r12 = entry, r13 = arg, rsp 16-byte aligned
 * (the switch popped the trampoline's address like a return address). */
    .globl  corio__ctx_trampoline
    .hidden corio__ctx_trampoline
    .type   corio__ctx_trampoline, @function
    .p2align 4
corio__ctx_trampoline:
    endbr64
    movq    %r13, %rdi
    callq   *%r12
    ud2                         /* entry never returns */
    .size   corio__ctx_trampoline, .-corio__ctx_trampoline

    .section .note.GNU-stack, "", @progbits

/* NT_GNU_PROPERTY_TYPE_0: GNU_PROPERTY_X86_FEATURE_1_AND = IBT (1), not SHSTK
 * (2).  The linker ANDs these notes across objects: without one here, IBT
 * would be off for the whole program. */
    .section .note.gnu.property, "a"
    .p2align 3
    .long   4                   /* n_namesz */
    .long   16                  /* n_descsz */
    .long   5                   /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002          /* pr_type: GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4                   /* pr_datasz */
    .long   1                   /* GNU_PROPERTY_X86_FEATURE_1_IBT */
    .long   0                   /* padding to 8 bytes */
