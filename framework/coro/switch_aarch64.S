/* Context switch for aarch64 (AAPCS64).
 *
 * void corio__ctx_switch(corio__ctx *from, corio__ctx *to)
 *
 * Saves x19-x28, the frame pointer x29, the link register x30 and the low
 * halves d8-d15 of v8-v15 in a 160-byte frame on the current stack, stores sp
 * in from->sp, loads to->sp, restores the same frame from there and returns
 * through x30.
 */
    .text
    .globl  corio__ctx_switch
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
    .type   corio__ctx_trampoline, %function
    .p2align 4
corio__ctx_trampoline:
    mov     x0, x20
    blr     x19
    brk     #0                  /* entry never returns */
    .size   corio__ctx_trampoline, .-corio__ctx_trampoline

    .section .note.GNU-stack, "", %progbits
