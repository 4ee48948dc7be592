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
// `entry(arg, from, value)`, sets rsp = top (16-aligned), clears rbp to end
// frame-pointer walks, pushes a return address into itself (rsp = 8 mod 16
// at entry, as the ABI requires after a call) and jumps to entry. Its CFI marks the return address
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
    // A `call` would push a return-stack-predictor entry that no `ret`
    // ever pops (entry never returns), and every return after the next
    // switch would then mispredict. Push the return address by hand and
    // jump: the same frame for the entry and for unwinders.
    "lea rcx, [rip + 2f]",
    "push rcx", // rsp = top - 8, as after a call
    "jmp rax",
    "2:",
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

// on_stack_resumable trampoline:
// `__gort_arch_v0_on_stack_resumable(arg: rdi, f: rsi, top: rdx,
// resume: rcx) -> rax` calls `f(arg)` with rsp = top, after saving every
// callee-saved register in a frame that `switch` can resume, and storing
// that frame's address (a suspended Context) in `*resume`.
//
//   original stack (CFA = caller's rsp before its call + 8)
//   +---------------------------+
//   | caller's return address   | CFA - 8
//   | rbp                       | CFA - 16 <- rbp while f runs
//   | rbx                       | CFA - 24
//   | r12                       | CFA - 32
//   | r13                       | CFA - 40
//   | r14                       | CFA - 48
//   | r15                       | CFA - 56
//   | resume address (2:)       | CFA - 64 <- *resume
//   +---------------------------+
//
// Two ways out, both through the pops at 3: and a `ret` that matches the
// caller's `call`:
// - f returns: rsp = rbp - 40 (the r15 slot), rax = f's value.
// - someone runs `switch(*resume, v)`: it loads rsp = CFA - 64, pops the
//   resume address and jumps to 2: with rdx = v; rax = v. rbp is the
//   switcher's there, so from 2: on the CFA is described from rsp.
// While f runs the CFA is rbp + 16, so unwinders walk from f's frames
// through this frame into the caller (backtraces inside f show who called).
global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_on_stack_resumable",
    ".hidden __gort_arch_v0_on_stack_resumable",
    ".type __gort_arch_v0_on_stack_resumable, @function",
    "__gort_arch_v0_on_stack_resumable:",
    ".cfi_startproc",
    "push rbp",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbp, -16",
    "mov rbp, rsp",
    ".cfi_def_cfa_register rbp",
    "push rbx",
    ".cfi_offset rbx, -24",
    "push r12",
    ".cfi_offset r12, -32",
    "push r13",
    ".cfi_offset r13, -40",
    "push r14",
    ".cfi_offset r14, -48",
    "push r15",
    ".cfi_offset r15, -56",
    "lea rax, [rip + 2f]",
    "push rax",
    "mov [rcx], rsp",
    "mov rsp, rdx",
    "call rsi",
    "lea rsp, [rbp - 40]",
    "jmp 3f",
    "2:",
    ".cfi_def_cfa rsp, 56",
    "mov rax, rdx",
    "3:",
    "pop r15",
    ".cfi_def_cfa_offset 48",
    "pop r14",
    ".cfi_def_cfa_offset 40",
    "pop r13",
    ".cfi_def_cfa_offset 32",
    "pop r12",
    ".cfi_def_cfa_offset 24",
    "pop rbx",
    ".cfi_def_cfa_offset 16",
    "pop rbp",
    ".cfi_def_cfa_offset 8",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_on_stack_resumable, . - __gort_arch_v0_on_stack_resumable",
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
