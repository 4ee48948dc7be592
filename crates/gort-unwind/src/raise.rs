//! Raising a Rust panic without the platform unwinder's two passes, when
//! the walk understands every frame up to the catch.
//!
//! A Rust panic ends in `_Unwind_RaiseException`. libgcc's walks the stack
//! twice (a search pass that asks each frame's personality routine whether
//! it catches, then a cleanup pass that lands in the first frame with a
//! landing pad), and each frame costs it an FDE search and a CFA program
//! run: about 200 ns a frame on the project's machine, 1.7 µs of the
//! 2 µs a `catch_unwind(|| panic!())` costs (std's panic machinery adds
//! six frames between `panic!` and the raise). Go's panic costs 400 ns.
//!
//! gort-unwind defines `_Unwind_RaiseException` itself, with hidden
//! visibility: the link binds std's call (in `panic_unwind`) to this
//! definition, and nothing outside the linked object sees it, so other
//! objects (a C++ library's `throw`) keep the system unwinder. The
//! definition is a shim (`arch`) that saves the raiser's callee-saved
//! registers and calls [`raise_fast`], which does both passes at once with
//! the per-thread rule cache of [`cfi`](crate::cfi):
//!
//! - walking up from the raiser, it reads each frame's [`Action`] as Rust's
//!   personality routine would (`rust_eh_personality`, std's
//!   `find_eh_action`);
//! - the first frame with a landing pad (a cleanup or a catch) is where the
//!   cleanup pass would land; the first frame that catches is what the
//!   search pass would find (the walk goes on past cleanups to find it:
//!   with no catch the panic must abort before any cleanup runs);
//! - it records the catch frame's CFA in the exception's private words as
//!   libgcc's search pass does (`private_1` = 0: not a forced unwind,
//!   `private_2` = the handler frame), so a cleanup's `_Unwind_Resume`,
//!   libgcc's, carries on exactly as after libgcc's own search;
//! - and lands (`gort_unwind_land`): the landing frame's callee-saved
//!   registers and stack pointer, the exception in the first data register,
//!   0 in the second (the values rust_eh_personality would set), a jump to
//!   the landing pad.
//!
//! Anything else goes to the system's `_Unwind_RaiseException`, found with
//! `dlsym` and tail-called with the raiser's registers untouched: a
//! foreign exception class, a frame the walk cannot read (no call-frame
//! information, a CFA rule other than register plus offset, a signal
//! frame, a callee-saved register whose save slot it cannot read), a frame
//! with another language's personality or a call site Rust's personality
//! would abort at, no catch within 64 frames, the rule cache in use
//! further up the thread. The walk writes nothing before it has found both
//! frames, so falling back is always clean.
//!
//! See docs/unwind.md ("Raising without the unwinder's two passes").

use std::cell::Cell;
use std::ffi::CStr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cfi::{self, Action, Cache, Regs, Rule, N};
use crate::fatal::fatal;

/// The head of an exception object (`struct _Unwind_Exception`): the
/// fields this module reads and writes, in the C layout on all three
/// targets (`_Unwind_Word` is pointer-sized there).
#[repr(C)]
struct Exception {
    class: u64,
    cleanup: usize,
    /// 0 for an exception being raised (nonzero: a forced unwind's stop
    /// function).
    private_1: usize,
    /// The CFA of the frame the search pass found to catch.
    private_2: usize,
}

/// Rust's exception class (std's panic_unwind: `"MOZ\0RUST"`).
const RUST_CLASS: u64 = u64::from_ne_bytes(*b"MOZ\0RUST");

/// Where [`land`] goes: the frame's callee-saved registers in
/// `cfi::arch::SAVED`'s order, its stack pointer, the landing pad, the
/// exception for the first data register.
#[repr(C)]
#[derive(Clone, Copy)]
struct Landing {
    saved: [usize; N],
    sp: usize,
    pc: usize,
    exc: usize,
}

/// The system's `_Unwind_RaiseException` and `_Unwind_Resume`, once
/// looked up.
static SYSTEM_RAISE: AtomicUsize = AtomicUsize::new(0);
static SYSTEM_RESUME: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static LANDINGS: Cell<u64> = const { Cell::new(0) };
}

/// Looks up the system's functions now, outside any panic (the hook's
/// installation calls this), so that a fallback never calls `dlsym` for
/// the first time in the middle of raising.
pub(crate) fn prepare() {
    system(&SYSTEM_RAISE, c"_Unwind_RaiseException", shims().0);
    system(&SYSTEM_RESUME, c"_Unwind_Resume", shims().1);
}

/// How many times this thread landed in a landing pad without the system
/// unwinder (a raise or a cleanup's resume). Not inlined, as every
/// thread-local accessor (state.rs).
#[inline(never)]
pub(crate) fn landings_on_this_thread() -> u64 {
    LANDINGS.try_with(Cell::get).unwrap_or(0)
}

/// The system's definition of `name`, looked up once into `slot`.
fn system(slot: &AtomicUsize, name: &CStr, ours: usize) -> usize {
    let known = slot.load(Ordering::Relaxed);
    if known != 0 {
        return known;
    }
    // Our definitions are hidden, so the global scope's are the system
    // unwinder's (libgcc_s, which std's unwind crate links).
    // SAFETY: dlsym with a NUL-terminated name.
    let f = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) } as usize;
    if f == 0 || f == ours {
        fatal(format_args!(
            "gort-unwind: the system's {} was not found (is libgcc_s \
             loaded?); build gort-unwind without its fast-raise feature",
            name.to_string_lossy()
        ));
    }
    slot.store(f, Ordering::Relaxed);
    f
}

/// Which entry point a walk serves.
#[derive(Clone, Copy)]
enum Pass {
    /// `_Unwind_RaiseException`: both passes; the landing counts only once
    /// a frame that catches is found.
    Raise,
    /// `_Unwind_Resume` from a cleanup: the cleanup pass goes on to the
    /// next landing pad; the search already found the catch, whose CFA is
    /// this.
    Resume { handler: usize },
}

/// Called by the `_Unwind_RaiseException` shim with the exception and the
/// raiser's registers (its return address, its stack pointer after the
/// return, its callee-saved registers). Lands in the first frame with a
/// landing pad and does not return, or returns the system's
/// `_Unwind_RaiseException` for the shim to tail-call.
///
/// `extern "C"`: a panic in here aborts instead of unwinding into the
/// raise it would be part of.
extern "C" fn raise_fast(exc: *mut Exception, raiser: *const Regs) -> usize {
    // SAFETY: the shim passes the exception std is raising (live until it
    // is caught) and its own frame's register block.
    if let Some((landing, handler)) = unsafe { plan(exc, &*raiser, Pass::Raise) } {
        // SAFETY: as above. What the search pass records: a raise, not a
        // forced unwind, caught by the frame with this CFA.
        unsafe {
            (*exc).private_1 = 0;
            (*exc).private_2 = handler;
            land(&landing)
        }
    }
    system(&SYSTEM_RAISE, c"_Unwind_RaiseException", shims().0)
}

/// Called by the `_Unwind_Resume` shim, from a landing pad that ran its
/// cleanups: as [`raise_fast`], for the rest of the cleanup pass.
extern "C" fn resume_fast(exc: *mut Exception, raiser: *const Regs) -> usize {
    // SAFETY: the shim passes the exception being unwound (live until it
    // is caught) and its own frame's register block. A raise's search
    // pass (ours or libgcc's) left private_1 = 0 and the handler's CFA in
    // private_2; a forced unwind (private_1 != 0) is not ours to do.
    unsafe {
        if (*exc).private_1 == 0 {
            let pass = Pass::Resume {
                handler: (*exc).private_2,
            };
            if let Some((landing, _)) = plan(exc, &*raiser, pass) {
                land(&landing)
            }
        }
    }
    system(&SYSTEM_RESUME, c"_Unwind_Resume", shims().1)
}

/// Jumps to the landing, counted.
///
/// # Safety
/// As for `gort_unwind_land`, and the caller owns nothing with a
/// destructor.
unsafe fn land(landing: &Landing) -> ! {
    // Count before leaving: nothing here runs after the jump.
    let _ = LANDINGS.try_with(|l| l.set(l.get() + 1));
    // SAFETY: the caller's contract.
    unsafe { gort_unwind_land(landing) }
}

/// The landing (first frame with a landing pad) and the handler frame's
/// CFA, when the walk understands every frame up to both.
///
/// # Safety
/// `exc` is a live exception; `from` holds the registers of a live frame
/// on this stack (the walk reads the stack above it).
unsafe fn plan(exc: *mut Exception, from: &Regs, pass: Pass) -> Option<(Landing, usize)> {
    // SAFETY: the caller's contract.
    if unsafe { (*exc).class } != RUST_CLASS {
        return None;
    }
    let mut r = *from;
    r.known = Regs::ALL;
    // SAFETY: the caller's contract. The cache's borrow ends before the
    // caller lands.
    cfi::with_cache(|c| unsafe { walk(c, r, exc as usize, pass) })
}

/// # Safety
/// As for [`plan`].
unsafe fn walk(c: &mut Cache, start: Regs, exc: usize, pass: Pass) -> Option<(Landing, usize)> {
    let mut landing = None;
    let visit = |_, rule: &Rule, r: &Regs, cfa| {
        match (rule.action, pass) {
            // libgcc asserts that the handler frame lands: let it.
            (Action::None, Pass::Resume { handler }) if cfa == handler => {
                return ControlFlow::Break(None)
            }
            (Action::None, _) => {}
            (Action::Unknown, _) => return ControlFlow::Break(None),
            (Action::Cleanup(pad) | Action::Catch(pad), _) => {
                if landing.is_none() {
                    if r.known != Regs::ALL {
                        return ControlFlow::Break(None);
                    }
                    landing = Some(Landing {
                        saved: r.saved,
                        sp: rule.landing_sp(r),
                        pc: pad,
                        exc,
                    });
                }
                let handler = match pass {
                    Pass::Resume { handler } => handler,
                    Pass::Raise if matches!(rule.action, Action::Catch(_)) => cfa,
                    // A cleanup: the search goes on to the catch.
                    Pass::Raise => return ControlFlow::Continue(()),
                };
                return ControlFlow::Break(landing.map(|l| (l, handler)));
            }
        }
        ControlFlow::Continue(())
    };
    // SAFETY: the caller's contract.
    unsafe { cfi::walk_frames(c, start, visit) }
}

unsafe extern "C" {
    /// Restores `l`'s callee-saved registers and stack pointer, puts the
    /// exception in the first data register and 0 in the second, and
    /// jumps to the landing pad.
    fn gort_unwind_land(l: *const Landing) -> !;
}

/// Defines a function in assembly, global but hidden (bound within the
/// linked object only): `.globl`, `.hidden`, `.type`, the label, the
/// body's lines, `.size`, then `global_asm!`'s operands.
macro_rules! hidden_fn {
    ($name:literal, [$($line:literal),* $(,)?], $($operands:tt)*) => {
        std::arch::global_asm!(
            concat!(".globl ", $name),
            concat!(".hidden ", $name),
            concat!(".type ", $name, ", %function"),
            concat!($name, ":"),
            $($line,)*
            concat!(".size ", $name, ", . - ", $name),
            $($operands)*
        );
    };
}
use hidden_fn;

// The shims. Each defines one of the unwinder's two entry points that
// start a walk (`_Unwind_RaiseException`, called by std to raise a panic,
// and `_Unwind_Resume`, called by a landing pad once its cleanups ran),
// hidden, as a frame that hands the caller's registers to a Rust function
// ([`raise_fast`], [`resume_fast`]). That function lands (and never
// returns) or returns the system's function, which the shim jumps to with
// its own frame gone and the caller's registers as they were: the system
// function runs as if called directly (the Rust function preserved the
// callee-saved registers, per the ABI).

#[cfg(target_arch = "x86_64")]
mod arch {
    use std::mem::offset_of;

    use super::{raise_fast, resume_fast, Landing, N};
    use crate::cfi::Regs;

    // A shim's frame. On entry rdi holds the exception and rsp points at
    // the return address into the caller. 88 bytes, so that rsp is
    // 16-byte aligned at the call:
    //
    //   rsp+96  the caller's frame (its stack pointer after the return)
    //   rsp+88  return address into the caller
    //   rsp+80  (padding)
    //   rsp+72  the exception (rdi), for the fallback
    //   rsp+0   Regs: rbx rbp r12 r13 r14 r15 (the caller's: saved before
    //           any is touched), sp = rsp+96, pc = the return address,
    //           known (set by the Rust side)
    macro_rules! shim {
        ($name:literal, $fast:path) => {
            super::hidden_fn!(
                $name,
                [
                    ".cfi_startproc",
                    "sub rsp, 88",
                    ".cfi_adjust_cfa_offset 88",
                    "mov [rsp], rbx",
                    "mov [rsp + 8], rbp",
                    "mov [rsp + 16], r12",
                    "mov [rsp + 24], r13",
                    "mov [rsp + 32], r14",
                    "mov [rsp + 40], r15",
                    "lea rax, [rsp + 96]",
                    "mov [rsp + {sp}], rax",
                    "mov rax, [rsp + 88]",
                    "mov [rsp + {pc}], rax",
                    "mov [rsp + 72], rdi",
                    "mov rsi, rsp",
                    "call {fast}",
                    "mov rdi, [rsp + 72]",
                    "add rsp, 88",
                    ".cfi_adjust_cfa_offset -88",
                    "jmp rax",
                    ".cfi_endproc",
                ],
                fast = sym $fast,
                sp = const offset_of!(Regs, sp),
                pc = const offset_of!(Regs, pc),
            );
        };
    }
    shim!("_Unwind_RaiseException", raise_fast);
    shim!("_Unwind_Resume", resume_fast);
    const _: () = assert!(N == 6 && std::mem::size_of::<Regs>() <= 72);

    // The landing: rdi = &Landing (in the Rust side's frame, below the
    // landing frame's stack pointer: read out before rsp moves). Restores
    // rbx rbp r12-r15 and rsp, sets rax = the exception and rdx = 0
    // (rust_eh_personality's data registers), jumps to the pad.
    super::hidden_fn!(
        "gort_unwind_land",
        [
            "mov rbx, [rdi]",
            "mov rbp, [rdi + 8]",
            "mov r12, [rdi + 16]",
            "mov r13, [rdi + 24]",
            "mov r14, [rdi + 32]",
            "mov r15, [rdi + 40]",
            "mov rax, [rdi + {exc}]",
            "xor edx, edx",
            "mov rcx, [rdi + {pc}]",
            "mov rsp, [rdi + {sp}]",
            "jmp rcx",
        ],
        sp = const offset_of!(Landing, sp),
        pc = const offset_of!(Landing, pc),
        exc = const offset_of!(Landing, exc),
    );
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use std::mem::offset_of;

    use super::{raise_fast, resume_fast, Landing, N};
    use crate::cfi::Regs;

    // A shim's frame. On entry x0 holds the exception, x30 the return
    // address into the caller, sp the caller's stack pointer. 192 bytes,
    // 16-byte aligned:
    //
    //   sp+192  the caller's frame
    //   sp+176  the exception (x0), for the fallback
    //   sp+0    Regs: x19-x28, x29, d8-d15 (the caller's: saved before any
    //           is touched), sp = sp+192, pc = x30 (at sp+160), known (set
    //           by the Rust side)
    //
    // The fallback restores x0, x30 and sp and branches through x16.
    macro_rules! shim {
        ($name:literal, $fast:path) => {
            super::hidden_fn!(
                $name,
                [
                    ".cfi_startproc",
                    "sub sp, sp, #192",
                    ".cfi_def_cfa_offset 192",
                    "stp x19, x20, [sp, #0]",
                    "stp x21, x22, [sp, #16]",
                    "stp x23, x24, [sp, #32]",
                    "stp x25, x26, [sp, #48]",
                    "stp x27, x28, [sp, #64]",
                    "str x29, [sp, #80]",
                    "stp d8, d9, [sp, #88]",
                    "stp d10, d11, [sp, #104]",
                    "stp d12, d13, [sp, #120]",
                    "stp d14, d15, [sp, #136]",
                    "add x9, sp, #192",
                    "str x9, [sp, #{sp}]",
                    "str x30, [sp, #{pc}]",
                    ".cfi_offset x30, -32",
                    "str x0, [sp, #176]",
                    "mov x1, sp",
                    "bl {fast}",
                    "mov x16, x0",
                    "ldr x0, [sp, #176]",
                    "ldr x30, [sp, #{pc}]",
                    ".cfi_restore x30",
                    "add sp, sp, #192",
                    ".cfi_def_cfa_offset 0",
                    "br x16",
                    ".cfi_endproc",
                ],
                fast = sym $fast,
                sp = const offset_of!(Regs, sp),
                pc = const offset_of!(Regs, pc),
            );
        };
    }
    shim!("_Unwind_RaiseException", raise_fast);
    shim!("_Unwind_Resume", resume_fast);
    // The layout the shim's stores and `.cfi_offset x30, -32` assume.
    const _: () = assert!(N == 19 && offset_of!(Regs, sp) == 152 && offset_of!(Regs, pc) == 160);
    const _: () = assert!(std::mem::size_of::<Regs>() <= 176);

    // The landing: x0 = &Landing (read out before sp moves). Restores
    // x19-x29, d8-d15 and sp, sets x0 = the exception and x1 = 0
    // (rust_eh_personality's data registers), branches to the pad.
    super::hidden_fn!(
        "gort_unwind_land",
        [
            "ldp x19, x20, [x0, #0]",
            "ldp x21, x22, [x0, #16]",
            "ldp x23, x24, [x0, #32]",
            "ldp x25, x26, [x0, #48]",
            "ldp x27, x28, [x0, #64]",
            "ldr x29, [x0, #80]",
            "ldp d8, d9, [x0, #88]",
            "ldp d10, d11, [x0, #104]",
            "ldp d12, d13, [x0, #120]",
            "ldp d14, d15, [x0, #136]",
            "ldr x16, [x0, #{sp}]",
            "ldr x17, [x0, #{pc}]",
            "ldr x0, [x0, #{exc}]",
            "mov x1, #0",
            "mov sp, x16",
            "br x17",
        ],
        sp = const offset_of!(Landing, sp),
        pc = const offset_of!(Landing, pc),
        exc = const offset_of!(Landing, exc),
    );
}

#[cfg(target_arch = "x86")]
mod arch {
    use std::mem::offset_of;

    use super::{raise_fast, resume_fast, Landing, N};
    use crate::cfi::Regs;

    // A shim's frame (cdecl). On entry esp points at the return address
    // into the caller, the exception above it. 36 bytes, so that esp is
    // 16-byte aligned at the call after two pushes:
    //
    //   esp+40  the exception argument (the caller's stack pointer after
    //           the return: the caller pops its arguments)
    //   esp+36  return address into the caller
    //   esp+32  (padding)
    //   esp+28  the exception, for the Rust side
    //   esp+0   Regs: ebx ebp esi edi (the caller's), sp = esp+40,
    //           pc = the return address, known (set by the Rust side)
    //
    // The fallback pops the frame and jumps: the system function finds
    // its argument where the caller put it.
    macro_rules! shim {
        ($name:literal, $fast:path) => {
            super::hidden_fn!(
                $name,
                [
                    ".cfi_startproc",
                    "sub esp, 36",
                    ".cfi_adjust_cfa_offset 36",
                    "mov [esp], ebx",
                    "mov [esp + 4], ebp",
                    "mov [esp + 8], esi",
                    "mov [esp + 12], edi",
                    "lea eax, [esp + 40]",
                    "mov [esp + {sp}], eax",
                    "mov eax, [esp + 36]",
                    "mov [esp + {pc}], eax",
                    "mov eax, [esp + 40]",
                    "mov [esp + 28], eax",
                    "mov ecx, esp",
                    "push ecx",
                    ".cfi_adjust_cfa_offset 4",
                    "push eax",
                    ".cfi_adjust_cfa_offset 4",
                    "call {fast}",
                    "add esp, 44",
                    ".cfi_adjust_cfa_offset -44",
                    "jmp eax",
                    ".cfi_endproc",
                ],
                fast = sym $fast,
                sp = const offset_of!(Regs, sp),
                pc = const offset_of!(Regs, pc),
            );
        };
    }
    shim!("_Unwind_RaiseException", raise_fast);
    shim!("_Unwind_Resume", resume_fast);
    const _: () = assert!(N == 4 && std::mem::size_of::<Regs>() <= 28);

    // The landing (cdecl): [esp+4] = &Landing. Restores ebx ebp esi edi
    // and esp, sets eax = the exception and edx = 0 (rust_eh_personality's
    // data registers), jumps to the pad. The landing frame's stack may
    // cover the Landing (a signal can arrive once esp moves), so sp and pc
    // are read out first.
    super::hidden_fn!(
        "gort_unwind_land",
        [
            "mov ecx, [esp + 4]",
            "mov ebx, [ecx]",
            "mov ebp, [ecx + 4]",
            "mov esi, [ecx + 8]",
            "mov edi, [ecx + 12]",
            "mov eax, [ecx + {exc}]",
            "mov edx, [ecx + {sp}]",
            "mov ecx, [ecx + {pc}]",
            "mov esp, edx",
            "xor edx, edx",
            "jmp ecx",
        ],
        sp = const offset_of!(Landing, sp),
        pc = const offset_of!(Landing, pc),
        exc = const offset_of!(Landing, exc),
    );
}

/// The addresses of our two shims (to tell them from the system's).
fn shims() -> (usize, usize) {
    unsafe extern "C" {
        fn _Unwind_RaiseException();
        fn _Unwind_Resume();
    }
    (
        _Unwind_RaiseException as unsafe extern "C" fn() as usize,
        _Unwind_Resume as unsafe extern "C" fn() as usize,
    )
}
