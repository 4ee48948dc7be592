//! x86 (i686) System V backend.
//!
//! Callee-saved registers (i386 SysV ABI, as used on Linux): ebx, esi, edi,
//! ebp, esp, plus the x87 control word and MXCSR control bits (not saved;
//! see the crate docs). Linux requires a 16-byte aligned stack at every
//! call instruction, so esp = 12 mod 16 at a function's first instruction.
//!
//! The switch is an inline asm block: ebx and edi are declared clobbered
//! outputs and eax, ecx, edx and the vector/x87 registers come from
//! `clobber_abi("C")`. esi and ebp cannot be asm operands (LLVM reserves
//! them), so the asm pushes them itself. There is no eip-relative `lea` on
//! i386, so the resume address is pushed by a `call` to the code that
//! finishes the switch (position independent, no text relocation).

use crate::Context;
use std::arch::{asm, global_asm};

// Initial frame built by `init` (`top` is 16-aligned):
//
//     top      +--------------------------+
//     top - 4  | 0 (padding)              |
//     top - 8  | entry: EntryFn           |
//     top - 12 | arg                      |
//     top - 16 | &start_trampoline        | <- Context.sp
//              +--------------------------+
//
// `switch` loads Context.sp into esp and does `pop ecx; jmp ecx`, so the
// trampoline starts with esp = top - 12, eax = the switcher's suspended
// context and edx = the value passed. It pushes the cdecl arguments of
// `entry(arg, from, value)` so that esp = top - 16 (16-aligned, where a
// call instruction would be), clears ebp to end frame-pointer walks,
// pushes a return address into itself and jumps to entry. Its CFI marks
// the return address column (eip) undefined, which DWARF unwinders treat
// as the outermost frame.
global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_start",
    ".hidden __gort_arch_v0_start",
    ".type __gort_arch_v0_start, @function",
    "__gort_arch_v0_start:",
    ".cfi_startproc",
    ".cfi_undefined eip",
    "mov ecx, [esp + 4]", // entry
    "mov ebx, [esp]",     // arg
    "add esp, 8",         // esp = top - 4
    "push edx",           // value
    "push eax",           // from
    "push ebx",           // arg; esp = top - 16
    "xor ebp, ebp",
    // A `call` would push a return-stack-predictor entry that no `ret`
    // ever pops (entry never returns), and every return after the next
    // switch would then mispredict. Push the return address by hand (found
    // with a call to the next instruction, which the predictor ignores)
    // and jump: the same frame for the entry and for unwinders.
    "call .Lgort_start_pc",
    ".Lgort_start_pc:",
    "add dword ptr [esp], offset .Lgort_start_delta", // esp = top - 20
    "jmp ecx",
    ".Lgort_start_ret:",
    "ud2", // entry returned: it must not
    ".cfi_endproc",
    ".size __gort_arch_v0_start, . - __gort_arch_v0_start",
    ".set .Lgort_start_delta, .Lgort_start_ret - .Lgort_start_pc",
);

// on_stack trampoline: cdecl `__gort_arch_v0_on_stack(arg, f, top)` calls
// `f(arg)` with esp = top - 16 and returns on the original stack.
//
//   original stack                    new stack
//   +---------------------+           +-------------------+ <- top
//   | top                 | ebp + 16  | padding (12)      |
//   | f                   | ebp + 12  | arg               |
//   | arg                 | ebp + 8   | return into tramp |
//   | caller's return addr| ebp + 4   | f's frames ...    |
//   | saved ebp           | <- ebp    |                   |
//   +---------------------+           +-------------------+
//
// ebp is the only callee-saved register it changes, saved in the standard
// prologue. The CFA is ebp + 8 while esp is on the new stack, so unwinders
// walk from f's frames into the caller on the original stack.
global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_on_stack",
    ".hidden __gort_arch_v0_on_stack",
    ".type __gort_arch_v0_on_stack, @function",
    "__gort_arch_v0_on_stack:",
    ".cfi_startproc",
    "push ebp",
    ".cfi_def_cfa_offset 8",
    ".cfi_offset ebp, -8",
    "mov ebp, esp",
    ".cfi_def_cfa_register ebp",
    "mov eax, [ebp + 8]",  // arg
    "mov ecx, [ebp + 12]", // f
    "mov esp, [ebp + 16]", // top
    "sub esp, 12",
    "push eax", // esp = top - 16
    "call ecx",
    "mov esp, ebp",
    ".cfi_def_cfa_register esp",
    "pop ebp",
    ".cfi_def_cfa_offset 4",
    ".cfi_restore ebp",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_on_stack, . - __gort_arch_v0_on_stack",
);

// on_stack_resumable trampoline: cdecl
// `__gort_arch_v0_on_stack_resumable(arg, f, top, resume) -> eax` calls
// `f(arg)` with esp = top - 16, after saving every callee-saved register
// in a frame that `switch` can resume, and storing that frame's address (a
// suspended Context) in `*resume`.
//
//   original stack (CFA = the caller's esp before its call + 4)
//   +---------------------------+
//   | resume                    | CFA + 12 = ebp + 20
//   | top                       | CFA + 8  = ebp + 16
//   | f                         | CFA + 4  = ebp + 12
//   | arg                       | CFA      = ebp + 8
//   | caller's return address   | CFA - 4
//   | ebp                       | CFA - 8  <- ebp while f runs
//   | ebx                       | CFA - 12
//   | esi                       | CFA - 16
//   | edi                       | CFA - 20
//   | resume address            | CFA - 24 <- *resume
//   +---------------------------+
//
// Two ways out, both through the pops at 3: and a `ret` that matches the
// caller's `call`:
// - f returns: esp = ebp - 12 (the edi slot), eax = f's value.
// - someone runs `switch(*resume, v)`: it loads esp = CFA - 24, pops the
//   resume address and jumps there (.Lgort_resumable_resume) with edx = v;
//   eax = v. ebp is the
//   switcher's there, so the CFA is described from esp on that path.
// While f runs the CFA is ebp + 8, so unwinders walk from f's frames
// through this frame into the caller.
global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_on_stack_resumable",
    ".hidden __gort_arch_v0_on_stack_resumable",
    ".type __gort_arch_v0_on_stack_resumable, @function",
    "__gort_arch_v0_on_stack_resumable:",
    ".cfi_startproc",
    "push ebp",
    ".cfi_def_cfa_offset 8",
    ".cfi_offset ebp, -8",
    "mov ebp, esp",
    ".cfi_def_cfa_register ebp",
    "push ebx",
    ".cfi_offset ebx, -12",
    "push esi",
    ".cfi_offset esi, -16",
    "push edi",
    ".cfi_offset edi, -20",
    // The address of 2: without eip-relative addressing; a call to the
    // next instruction is not a real call to the return-stack predictor.
    "call .Lgort_resumable_pc",
    ".Lgort_resumable_pc:",
    "pop eax",
    "add eax, offset .Lgort_resumable_delta",
    "push eax",
    "mov ecx, [ebp + 20]", // resume
    "mov [ecx], esp",
    "mov eax, [ebp + 8]",  // arg
    "mov ecx, [ebp + 12]", // f
    "mov esp, [ebp + 16]", // top
    "sub esp, 12",
    "push eax", // esp = top - 16
    "call ecx",
    "lea esp, [ebp - 12]",
    "jmp 3f",
    ".Lgort_resumable_resume:",
    ".cfi_def_cfa esp, 20",
    "mov eax, edx",
    "3:",
    "pop edi",
    ".cfi_def_cfa_offset 16",
    "pop esi",
    ".cfi_def_cfa_offset 12",
    "pop ebx",
    ".cfi_def_cfa_offset 8",
    "pop ebp",
    ".cfi_def_cfa_offset 4",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_on_stack_resumable, . - __gort_arch_v0_on_stack_resumable",
    // (An expression of two labels is not accepted as an Intel-syntax
    // immediate; a constant symbol is.)
    ".set .Lgort_resumable_delta, .Lgort_resumable_resume - .Lgort_resumable_pc",
);

// Frame saved by `switch` on the suspending context's stack:
//
//   +---------------------------+
//   | ebp                       |
//   | esi                       |
//   | resume address (after the |
//   |   `call 4f`)              | <- the suspended Context (in eax)
//   +---------------------------+
//
// Registers: ecx = target sp; edx = value in and out; eax = out: the
// suspended context of whoever switched to us.
// The resumed context continues right after its own `call 4f`, pops esi and
// ebp and skips over the suspending half.
/// # Safety
/// See [`crate::switch`].
#[inline(always)]
pub(crate) unsafe fn switch(to: usize, value: usize) -> (usize, usize) {
    let ret: usize;
    let from: usize;
    // SAFETY: the caller upholds crate::switch's contract: `to` is a saved
    // context. All registers that are not preserved are declared clobbered
    // (ebx and edi explicitly, eax, ecx, edx and the vector registers via
    // clobber_abi); esi and ebp are saved and restored by the asm itself.
    unsafe {
        asm!(
            "push ebp",
            "push esi",
            "call 4f",
            // Resumed here.
            "pop esi",
            "pop ebp",
            "jmp 5f",
            "4:",
            "mov eax, esp",
            "mov esp, ecx",
            "pop ecx",
            "jmp ecx",
            "5:",
            lateout("eax") from,
            in("ecx") to,
            inlateout("edx") value => ret,
            lateout("ebx") _,
            lateout("edi") _,
            clobber_abi("C"),
        );
    }
    (from, ret)
}

#[inline(always)]
pub(crate) fn current_sp() -> usize {
    let sp: usize;
    // SAFETY: reads esp; touches no memory and no flags.
    unsafe { asm!("mov {}, esp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

const _: () = assert!(std::mem::size_of::<Context>() == std::mem::size_of::<usize>());
