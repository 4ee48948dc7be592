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
// at all times), clears x29 and x30 to end frame-pointer walks, and calls
// entry. Its CFI marks the return address column (x30) undefined, which
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
    "mov x30, xzr",
    "blr x3",
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
