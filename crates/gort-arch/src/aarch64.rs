//! aarch64 AAPCS64 backend.
//!
//! Callee-saved registers (AAPCS64 §6.1.1): x19-x28, x29 (frame pointer),
//! x30 (link register, preserved in the sense that a function returns
//! through it), sp, and the low 64 bits of v8-v15 (d8-d15). FPCR is not
//! saved (see the crate docs).
//!
//! The switch is an inline asm block: x20-x28 are declared clobbered
//! outputs, and `clobber_abi("C")` covers x0-x18, x30 and all of v0-v31
//! (which includes d8-d15: the compiler spills them only if they are live).
//! x19 and x29 cannot be asm operands (LLVM reserves them), so the asm saves
//! them itself. The resume address is reached with `br`, not `ret`, to keep
//! the return-address predictor balanced.

use crate::Context;
use std::arch::{asm, global_asm};

// Initial frame built by `init` (`top` is 16-aligned):
//
//     top      +--------------------------+
//     top - 8  | 0 (padding)              |
//     top - 16 | entry: EntryFn           |
//     top - 24 | arg                      |
//     top - 32 | &start_trampoline        | <- Context.sp
//              +--------------------------+
//
// `switch` loads Context.sp into sp and branches to the word stored there,
// so the trampoline starts with sp = top - 32, x0 = the switcher's
// suspended context and x2 = the value passed. It moves the arguments into place for
// `entry(arg, from, value)`, sets sp = top (16-aligned as AAPCS64 requires
// at all times), clears x29 to end frame-pointer walks, points x30 into
// itself and branches to entry. Its CFI marks the return address column (x30) undefined, which
// DWARF unwinders treat as the outermost frame.
global_asm!(
    ".text",
    ".p2align 2",
    ".globl __gort_arch_v0_start",
    ".hidden __gort_arch_v0_start",
    ".type __gort_arch_v0_start, %function",
    "__gort_arch_v0_start:",
    ".cfi_startproc",
    ".cfi_undefined x30",
    "mov x1, x0",           // from
    "ldp x0, x3, [sp, #8]", // arg, entry
    "add sp, sp, #32",      // sp = top
    "mov x29, xzr",
    // `blr` would push a return-address-predictor entry that no `ret`
    // ever pops (entry never returns), and every return after the next
    // switch would then mispredict. Set the link register by hand and
    // branch: the same for the entry and for unwinders.
    "adr x30, 2f",
    "br x3",
    "2:",
    "brk #0x1", // entry returned: it must not
    ".cfi_endproc",
    ".size __gort_arch_v0_start, . - __gort_arch_v0_start",
);

// on_stack trampoline: `__gort_arch_v0_on_stack(arg: x0, f: x1, top: x2)`
// calls `f(arg)` with sp = top and returns on the original stack.
//
//   original stack                    new stack
//   +---------------------+           +-------------------+ <- top
//   | saved x30 (lr)      |           | f's frames ...    |
//   | saved x29           | <- x29    |                   |
//   +---------------------+           +-------------------+
//
// x29 and x30 are the only callee-saved registers it changes, saved in the
// standard frame record. The CFA is x29 + 16 while sp is on the new stack,
// so unwinders walk from f's frames into the caller on the original stack.
global_asm!(
    ".text",
    ".p2align 2",
    ".globl __gort_arch_v0_on_stack",
    ".hidden __gort_arch_v0_on_stack",
    ".type __gort_arch_v0_on_stack, %function",
    "__gort_arch_v0_on_stack:",
    ".cfi_startproc",
    "stp x29, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset x30, -8",
    ".cfi_offset x29, -16",
    "mov x29, sp",
    ".cfi_def_cfa_register x29",
    "mov sp, x2",
    "blr x1",
    "mov sp, x29",
    ".cfi_def_cfa_register sp",
    "ldp x29, x30, [sp], #16",
    ".cfi_def_cfa_offset 0",
    ".cfi_restore x29",
    ".cfi_restore x30",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_on_stack, . - __gort_arch_v0_on_stack",
);

// on_stack_resumable trampoline:
// `__gort_arch_v0_on_stack_resumable(arg: x0, f: x1, top: x2, resume: x3)
// -> x0` calls `f(arg)` with sp = top, after saving every callee-saved
// register in a frame that `switch` can resume, and storing that frame's
// address (a suspended Context) in `*resume`.
//
//   original stack (CFA = the caller's sp)
//   +---------------------------+
//   | x30 (lr)    | x29         | CFA - 8, CFA - 16 <- x29 while f runs
//   | x20         | x19         | CFA - 24, CFA - 32
//   | x22         | x21         | CFA - 40, CFA - 48
//   | x24         | x23         | CFA - 56, CFA - 64
//   | x26         | x25         | CFA - 72, CFA - 80
//   | x28         | x27         | CFA - 88, CFA - 96
//   | d9          | d8          | CFA - 104, CFA - 112
//   | d11         | d10         | CFA - 120, CFA - 128
//   | d13         | d12         | CFA - 136, CFA - 144
//   | d15         | d14         | CFA - 152, CFA - 160
//   | (unused)    | resume (2:) | CFA - 168, CFA - 176 <- *resume
//   +---------------------------+
//
// Two ways out, both through the loads at 3: and a `ret` that matches the
// caller's `bl`:
// - f returns: sp = x29 - 160 (the resume word), x0 = f's value.
// - someone runs `switch(*resume, v)`: it sets sp to the resume word and
//   branches to 2: with x2 = v; x0 = v. x29 is the switcher's there, so
//   from 2: on the CFA is described from sp.
// While f runs the CFA is x29 + 16, so unwinders walk from f's frames
// through this frame into the caller.
global_asm!(
    ".text",
    ".p2align 2",
    ".globl __gort_arch_v0_on_stack_resumable",
    ".hidden __gort_arch_v0_on_stack_resumable",
    ".type __gort_arch_v0_on_stack_resumable, %function",
    "__gort_arch_v0_on_stack_resumable:",
    ".cfi_startproc",
    "stp x29, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset x30, -8",
    ".cfi_offset x29, -16",
    "mov x29, sp",
    ".cfi_def_cfa_register x29",
    "stp x19, x20, [sp, #-16]!",
    ".cfi_offset x20, -24",
    ".cfi_offset x19, -32",
    "stp x21, x22, [sp, #-16]!",
    ".cfi_offset x22, -40",
    ".cfi_offset x21, -48",
    "stp x23, x24, [sp, #-16]!",
    ".cfi_offset x24, -56",
    ".cfi_offset x23, -64",
    "stp x25, x26, [sp, #-16]!",
    ".cfi_offset x26, -72",
    ".cfi_offset x25, -80",
    "stp x27, x28, [sp, #-16]!",
    ".cfi_offset x28, -88",
    ".cfi_offset x27, -96",
    "stp d8, d9, [sp, #-16]!",
    ".cfi_offset d9, -104",
    ".cfi_offset d8, -112",
    "stp d10, d11, [sp, #-16]!",
    ".cfi_offset d11, -120",
    ".cfi_offset d10, -128",
    "stp d12, d13, [sp, #-16]!",
    ".cfi_offset d13, -136",
    ".cfi_offset d12, -144",
    "stp d14, d15, [sp, #-16]!",
    ".cfi_offset d15, -152",
    ".cfi_offset d14, -160",
    "adr x4, 2f",
    "str x4, [sp, #-16]!",
    "mov x4, sp",
    "str x4, [x3]",
    "mov sp, x2",
    "blr x1",
    "sub sp, x29, #160",
    "b 3f",
    "2:",
    ".cfi_def_cfa sp, 176",
    "mov x0, x2",
    "3:",
    "add sp, sp, #16",
    ".cfi_def_cfa_offset 160",
    "ldp d14, d15, [sp], #16",
    ".cfi_def_cfa_offset 144",
    "ldp d12, d13, [sp], #16",
    ".cfi_def_cfa_offset 128",
    "ldp d10, d11, [sp], #16",
    ".cfi_def_cfa_offset 112",
    "ldp d8, d9, [sp], #16",
    ".cfi_def_cfa_offset 96",
    "ldp x27, x28, [sp], #16",
    ".cfi_def_cfa_offset 80",
    "ldp x25, x26, [sp], #16",
    ".cfi_def_cfa_offset 64",
    "ldp x23, x24, [sp], #16",
    ".cfi_def_cfa_offset 48",
    "ldp x21, x22, [sp], #16",
    ".cfi_def_cfa_offset 32",
    "ldp x19, x20, [sp], #16",
    ".cfi_def_cfa_offset 16",
    "ldp x29, x30, [sp], #16",
    ".cfi_def_cfa_offset 0",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_on_stack_resumable, . - __gort_arch_v0_on_stack_resumable",
);

// Frame saved by `switch` on the suspending context's stack (32 bytes, so
// sp stays 16-aligned):
//
//   +---------------------+
//   | (unused)            |  sp + 24
//   | x29                 |  sp + 16
//   | x19                 |  sp + 8
//   | resume address (2:) |  sp + 0   <- the suspended Context
//   +---------------------+
//
// Registers: x1 = target sp; x2 = value in and out; x0 = out: the suspended
// context of whoever switched to us (handed over in a register, so no
// memory access is on the stack-pointer dependency chain); x3 scratch.
/// # Safety
/// See [`crate::switch`].
#[inline(always)]
pub(crate) unsafe fn switch(to: usize, value: usize) -> (usize, usize) {
    let ret: usize;
    let from: usize;
    // SAFETY: the caller upholds crate::switch's contract: `to` is a saved
    // context. All registers that are not preserved are declared clobbered
    // (x20-x28 explicitly, x0-x18, x30 and v0-v31 via clobber_abi); x19 and
    // x29 are saved and restored by the asm itself.
    unsafe {
        asm!(
            "adr x3, 2f",
            "sub sp, sp, #32",
            "stp x3, x19, [sp]",
            "str x29, [sp, #16]",
            "mov x0, sp",
            "mov sp, x1",
            "ldr x3, [sp]",
            "br x3",
            "2:",
            "ldr x19, [sp, #8]",
            "ldr x29, [sp, #16]",
            "add sp, sp, #32",
            lateout("x0") from,
            in("x1") to,
            inlateout("x2") value => ret,
            lateout("x20") _,
            lateout("x21") _,
            lateout("x22") _,
            lateout("x23") _,
            lateout("x24") _,
            lateout("x25") _,
            lateout("x26") _,
            lateout("x27") _,
            lateout("x28") _,
            clobber_abi("C"),
        );
    }
    (from, ret)
}

#[inline(always)]
pub(crate) fn current_sp() -> usize {
    let sp: usize;
    // SAFETY: reads sp; touches no memory and no flags.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

const _: () = assert!(std::mem::size_of::<Context>() == std::mem::size_of::<usize>());
