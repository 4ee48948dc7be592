//! x86_64 System V backend.
//!
//! Callee-saved registers (SysV AMD64 ABI §3.2.1): rbx, rbp, r12-r15, rsp,
//! plus the control bits of MXCSR and the x87 control word (not saved; see
//! the crate docs). All xmm registers are caller-saved.
//!
//! The switch is an inline asm block: r12-r15 are declared as clobbered
//! outputs and the rest of the caller-saved set through
//! `clobber_abi("sysv64")`, so the compiler spills only what is live in the
//! calling function. rbx and rbp cannot be asm operands (LLVM reserves them),
//! so the asm pushes them itself. The return address is pushed explicitly
//! and consumed with `pop; jmp` rather than `ret`, which keeps the CPU's
//! return-stack predictor balanced.

use crate::Context;
use std::arch::{asm, global_asm};

// Initial frame built by `init` (addresses grow upward; `top` is 16-aligned):
//
//     top      +--------------------------+
//     top - 8  | 0 (padding)              |
//     top - 16 | entry: EntryFn           |
//     top - 24 | arg                      |
//     top - 32 | &start_trampoline        | <- Context.sp
//              +--------------------------+
//
// `switch` loads Context.sp into rsp and does `pop rax; jmp rax`, so the
// trampoline starts with rsp = top - 24, rdi = the switcher's suspended
// context and rdx = the value passed. It moves the arguments into place for
// `entry(arg, from, value)`, sets rsp = top (16-aligned, so the `call`
// leaves rsp = 8 mod 16 at entry as the ABI requires), clears rbp to end
// frame-pointer walks, and calls entry. Its CFI marks the return address
// column (rip) undefined: DWARF unwinders (libgcc, gdb) treat that as the
// outermost frame, so backtraces taken inside the context stop there.
global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_start",
    ".hidden __gort_arch_v0_start",
    ".type __gort_arch_v0_start, @function",
    "__gort_arch_v0_start:",
    ".cfi_startproc",
    ".cfi_undefined rip",
    "mov rsi, rdi",       // from
    "mov rdi, [rsp]",     // arg
    "mov rax, [rsp + 8]", // entry
    "add rsp, 24",        // rsp = top
    "xor ebp, ebp",
    "call rax",
    "ud2", // entry returned: it must not
    ".cfi_endproc",
    ".size __gort_arch_v0_start, . - __gort_arch_v0_start",
);

// on_stack trampoline: `__gort_arch_v0_on_stack(arg: rdi, f: rsi, top: rdx)`
// calls `f(arg)` with rsp = top and returns on the original stack.
//
//   original stack                    new stack
//   +---------------------+           +-------------------+ <- top (16-aligned)
//   | caller's return addr|           | return into tramp |
//   | saved rbp           | <- rbp    | f's frames ...    |
//   +---------------------+           +-------------------+
//
// rbp is the only callee-saved register it changes, saved in the standard
// frame-pointer prologue. The CFA is defined as rbp + 16 while rsp is on the
// new stack, so unwinders walk from f's frames through this frame into the
// caller on the original stack: backtraces inside f show who called
// on_stack.
global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_on_stack",
    ".hidden __gort_arch_v0_on_stack",
    ".type __gort_arch_v0_on_stack, @function",
    "__gort_arch_v0_on_stack:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "mov rsp, rdx",
    "call rsi",
    "mov rsp, rbp",
    ".cfi_def_cfa_register rsp",
    "pop rbp",
    ".cfi_def_cfa_offset 8",
    ".cfi_restore rbp",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_on_stack, . - __gort_arch_v0_on_stack",
);

// Frame saved by `switch` on the suspending context's stack:
//
//   +---------------------+
//   | rbp                 |
//   | rbx                 |
//   | resume address (2:) | <- the suspended Context (handed over in rdi)
//   +---------------------+
//
// Registers: rsi = target sp; rdx = value in and out; rdi = out: the
// suspended context of whoever switched to us. The handover is in
// registers, so no memory access is on the stack-pointer dependency chain
// between the two sides. On resume at label 2 the target pops rbx and rbp.
/// # Safety
/// See [`crate::switch`].
#[inline(always)]
pub(crate) unsafe fn switch(to: usize, value: usize) -> (usize, usize) {
    let ret: usize;
    let from: usize;
    // SAFETY: the caller upholds crate::switch's contract: `to` is a saved
    // context. All registers that are not preserved are declared clobbered
    // (r12-r15 explicitly, the caller-saved set via clobber_abi); rbx and rbp
    // are saved and restored by the asm itself.
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov rdi, rsp",
            "mov rsp, rsi",
            "pop rax",
            "jmp rax",
            "2:",
            "pop rbx",
            "pop rbp",
            lateout("rdi") from,
            in("rsi") to,
            inlateout("rdx") value => ret,
            lateout("r12") _,
            lateout("r13") _,
            lateout("r14") _,
            lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (from, ret)
}

#[inline(always)]
pub(crate) fn current_sp() -> usize {
    let sp: usize;
    // SAFETY: reads rsp; touches no memory and no flags.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

const _: () = assert!(std::mem::size_of::<Context>() == std::mem::size_of::<usize>());
