/* SPDX-License-Identifier: MIT */
/* Context switch for aarch64 (AAPCS64).
 *
 * void corio__ctx_switch(corio__ctx *from, corio__ctx *to)
 *
 * Saves x19-x28, the frame pointer x29, the link register x30 and the low
 * halves d8-d15 of v8-v15 in a 160-byte frame on the current stack, stores sp
 * in from->sp, loads to->sp, restores the same frame from there and returns
 * through x30.
 *
 * BTI: the object is marked BTI-compatible (.note.gnu.property below), so
 * linking it does not turn branch target identification off for a program
 * built with -mbranch-protection=bti|standard.  The switch and a new
 * context's first run go through `ret`, which BTI does not check; the
 * trampoline begins with `bti c` (hint #34, a NOP without BTI) all the same.
 * The switch itself is only ever called directly, and hidden, so never
 * through a PLT either: no landing pad on the hot path.  PAC is not claimed:
 * the saved x30 is not signed.
 */
    .text
    .globl  corio__ctx_switch
    .hidden corio__ctx_switch
    .type   corio__ctx_switch, %function
    .p2align 4
corio__ctx_switch:
    sub     sp, sp, #160
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x9, sp
    str     x9, [x0]
    ldr     x9, [x1]
    mov     sp, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #160
    ret
    .size   corio__ctx_switch, .-corio__ctx_switch

/* First code a new context runs: x19 = entry, x20 = arg. */
    .globl  corio__ctx_trampoline
    .hidden corio__ctx_trampoline
    .type   corio__ctx_trampoline, %function
    .p2align 4
corio__ctx_trampoline:
    hint    #34                 /* bti c */
    mov     x0, x20
    blr     x19
    brk     #0                  /* entry never returns */
    .size   corio__ctx_trampoline, .-corio__ctx_trampoline

    .section .note.GNU-stack, "", %progbits

/* NT_GNU_PROPERTY_TYPE_0: GNU_PROPERTY_AARCH64_FEATURE_1_AND = BTI (1).  The
 * linker ANDs these notes across objects: without one here, BTI would be
 * off for the whole program. */
    .section .note.gnu.property, "a"
    .p2align 3
    .long   4                   /* n_namesz */
    .long   16                  /* n_descsz */
    .long   5                   /* n_type: NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000000          /* pr_type: GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .long   4                   /* pr_datasz */
    .long   1                   /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .long   0                   /* padding to 8 bytes */
