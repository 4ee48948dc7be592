//! Backtraces of suspended contexts: the return addresses of the frames a
//! context left on its stack when it switched away, found by the platform's
//! DWARF unwinder (libgcc's `_Unwind_Backtrace`, the one std uses).
//!
//! The unwinder only walks the stack it runs on. A small trampoline bridges
//! the gap: `__gort_arch_v0_trace(ctx, f, arg)` calls `f(arg)` on the
//! current stack, and its call-frame information (CFI) describes its caller
//! as the suspended context: the caller's return address, callee-saved
//! registers and stack pointer are read from the frame that [`switch`]
//! saved at `ctx` (drawn in each backend's module). `f` runs the unwinder;
//! past the trampoline's frame, it walks the suspended context's own frames
//! with their own CFI, up to the initial frame of [`init`], whose CFI ends
//! the stack.
//!
//! Saved frame at `ctx` (see `switch` in each backend), and what the
//! trampoline's CFI says about the suspended caller:
//!
//! | arch | `[ctx]` | saved registers | caller's stack pointer (CFA) |
//! |---|---|---|---|
//! | x86_64 | resume address | rbx at +8, rbp at +16 | ctx + 24 |
//! | aarch64 | resume address | x19 at +8, x29 at +16 | ctx + 32 |
//! | x86 | resume address | esi at +4, ebp at +8 | ctx + 12 |
//!
//! The resume address lies inside the function that called `switch` (the
//! switch is inline asm), right after the jump away; the registers the
//! switch declares clobbered are, by the compiler's own CFI, saved in that
//! function's frame. So from there on the walk is an ordinary one.
//!
//! [`switch`]: crate::switch
//! [`init`]: crate::init

use crate::Context;
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_trace",
    ".hidden __gort_arch_v0_trace",
    ".type __gort_arch_v0_trace, @function",
    "__gort_arch_v0_trace:", // (ctx: rdi, f: rsi, arg: rdx)
    ".cfi_startproc",
    "push rbx",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset rbx, -16",
    "mov rbx, rdi",
    // From here on the caller, for the unwinder, is the suspended context.
    ".cfi_def_cfa rbx, 24",
    ".cfi_offset rip, -24",
    ".cfi_offset rbx, -16",
    ".cfi_offset rbp, -8",
    "mov rdi, rdx",
    "call rsi", // rsp is 16-aligned here: entry (8 mod 16) less the push
    ".globl __gort_arch_v0_trace_ret",
    ".hidden __gort_arch_v0_trace_ret",
    "__gort_arch_v0_trace_ret:",
    "pop rbx",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_trace, . - __gort_arch_v0_trace",
);

#[cfg(target_arch = "aarch64")]
std::arch::global_asm!(
    ".text",
    ".p2align 2",
    ".globl __gort_arch_v0_trace",
    ".hidden __gort_arch_v0_trace",
    ".type __gort_arch_v0_trace, %function",
    "__gort_arch_v0_trace:", // (ctx: x0, f: x1, arg: x2)
    ".cfi_startproc",
    "stp x19, x30, [sp, #-16]!",
    ".cfi_def_cfa_offset 16",
    ".cfi_offset x19, -16",
    ".cfi_offset x30, -8",
    "mov x19, x0",
    // From here on the caller, for the unwinder, is the suspended context.
    ".cfi_def_cfa x19, 32",
    ".cfi_offset x30, -32",
    ".cfi_offset x19, -24",
    ".cfi_offset x29, -16",
    "mov x0, x2",
    "blr x1",
    ".globl __gort_arch_v0_trace_ret",
    ".hidden __gort_arch_v0_trace_ret",
    "__gort_arch_v0_trace_ret:",
    "ldp x19, x30, [sp], #16",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_trace, . - __gort_arch_v0_trace",
);

#[cfg(target_arch = "x86")]
std::arch::global_asm!(
    ".text",
    ".p2align 4",
    ".globl __gort_arch_v0_trace",
    ".hidden __gort_arch_v0_trace",
    ".type __gort_arch_v0_trace, @function",
    "__gort_arch_v0_trace:", // cdecl (ctx, f, arg)
    ".cfi_startproc",
    "push ebx",
    ".cfi_def_cfa_offset 8",
    ".cfi_offset ebx, -8",
    "mov ebx, [esp + 8]",  // ctx
    "mov ecx, [esp + 12]", // f
    "mov eax, [esp + 16]", // arg
    // From here on the caller, for the unwinder, is the suspended context.
    ".cfi_def_cfa ebx, 12",
    ".cfi_offset eip, -12",
    ".cfi_offset esi, -8",
    ".cfi_offset ebp, -4",
    "sub esp, 4", // entry esp is 12 mod 16: 16-aligned after the push below
    "push eax",
    "call ecx",
    ".globl __gort_arch_v0_trace_ret",
    ".hidden __gort_arch_v0_trace_ret",
    "__gort_arch_v0_trace_ret:",
    "add esp, 8",
    "pop ebx",
    "ret",
    ".cfi_endproc",
    ".size __gort_arch_v0_trace, . - __gort_arch_v0_trace",
);

/// libgcc's opaque unwind context.
#[repr(C)]
struct UnwindContext {
    _opaque: [u8; 0],
    _not_send: PhantomData<*mut u8>,
}

/// `_URC_NO_REASON`: go on walking.
const URC_NO_REASON: c_int = 0;
/// `_URC_NORMAL_STOP`: stop the walk.
const URC_NORMAL_STOP: c_int = 4;

type TraceFn = extern "C" fn(*mut UnwindContext, *mut c_void) -> c_int;

extern "C" {
    fn __gort_arch_v0_trace(ctx: usize, f: extern "C" fn(*mut c_void), arg: *mut c_void);
    fn __gort_arch_v0_trace_ret();
    // libgcc_s (linked by std on every Linux target gort supports).
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut UnwindContext) -> usize;
}

/// The state of one walk, shared with the unwinder's callback.
///
/// Must hold: `len <= out.len()`, and `out[..len]` holds the context's
/// return addresses found so far, innermost first.
struct Walk<'a> {
    out: &'a mut [usize],
    len: usize,
    /// The trampoline's frame has been seen: what follows is the context's.
    inside: bool,
}

extern "C" fn step(ctx: *mut UnwindContext, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Walk that `walk` passed to _Unwind_Backtrace,
    // alive and not otherwise touched during the walk; `ctx` is the
    // unwinder's current frame.
    let (walk, ip) = unsafe { (&mut *arg.cast::<Walk<'_>>(), _Unwind_GetIP(ctx)) };
    if !walk.inside {
        walk.inside = ip == __gort_arch_v0_trace_ret as *const () as usize;
        return URC_NO_REASON;
    }
    if ip == 0 || walk.len == walk.out.len() {
        return URC_NORMAL_STOP;
    }
    walk.out[walk.len] = ip;
    walk.len += 1;
    URC_NO_REASON
}

extern "C" fn walk(arg: *mut c_void) {
    // SAFETY: `arg` is a Walk (see backtrace_of); the unwinder only reads
    // memory its CFI names: this stack's frames, then the suspended
    // context's (alive and unchanged, by backtrace_of's contract).
    unsafe { _Unwind_Backtrace(step, arg) };
}

/// Writes the return addresses of `ctx`'s frames into `out`, innermost
/// first, and returns how many it wrote (at most `out.len()`; the walk
/// stops at the context's initial frame, or when `out` is full).
///
/// The first address is where the context resumes (inside the function
/// that called [`switch`](crate::switch)); every address is a return
/// address, so symbolize `addr - 1` to land on the call instruction.
///
/// # Safety
///
/// `ctx` must hold a context that a [`switch`](crate::switch) suspended (not
/// one fresh from [`init`](crate::init) that never ran), and its stack must
/// stay allocated and unchanged, that is, nobody may resume the context,
/// until this function returns.
pub unsafe fn backtrace_of(ctx: &Context, out: &mut [usize]) -> usize {
    if ctx.is_empty() || out.is_empty() {
        return 0;
    }
    let mut w = Walk {
        out,
        len: 0,
        inside: false,
    };
    // SAFETY: the trampoline calls `walk(&mut w)` on this stack and
    // returns; its CFI reads the saved frame at ctx, which the caller
    // guarantees is a live suspended switch frame. `walk` does not unwind
    // (it is `extern "C"`, and `step` cannot panic).
    unsafe { __gort_arch_v0_trace(ctx.sp, walk, (&raw mut w).cast()) };
    w.len
}
