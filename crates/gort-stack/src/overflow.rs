//! The stack-overflow handler: turns a fault in a guard region into
//! `fatal error: gort: goroutine stack overflow (goroutine N, stack [lo, hi), S bytes)`
//! and an abort, and passes every other fault on to the handler installed
//! before it.
//!
//! Rules the handler keeps:
//!
//! - It runs on an alternate signal stack ([`install`] gives the calling
//!   thread one when it has none): the overflowed stack has no room left.
//! - Async-signal-safe only: loads of atomics and of a const-initialized,
//!   destructor-free thread-local; `write(2)`; `sigaction(2)` and `raise(3)`
//!   when chaining; `abort(3)`. No allocation, no lock, no formatting
//!   machinery (numbers are formatted into a buffer on the signal stack).
//! - A fault is an overflow when its address lies in the guard of the stack
//!   the thread runs on (the slot the scheduler sets with
//!   [`set_running_stack`](crate::set_running_stack), which also gives the
//!   goroutine id), or in the guard of any stack of a live slab (found in a
//!   lock-free registry of slabs: guards sit at `base + k * stride`). In the
//!   second case the goroutine id is printed when the running slot names the
//!   same stack, `unknown` otherwise.
//! - Every other fault goes to the previous handler, as it would have
//!   without us: its `sa_sigaction` with siginfo and context when it asked
//!   for them, its `sa_handler` otherwise. A previous `SIG_DFL` (or
//!   `SIG_IGN`, which the kernel does not honor for a fault) is restored and
//!   the fault re-executes to kill the process with the original signal; a
//!   signal sent by `kill` is raised again instead. This includes Rust std's
//!   handler, which reports overflows of threads' own stacks.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::bounds;
use crate::error::StackError;
use crate::registry;
use crate::sys;

/// The signals a guard access can raise: SIGSEGV on Linux, SIGBUS on some
/// BSDs and macOS.
const SIGNALS: [libc::c_int; 2] = [libc::SIGSEGV, libc::SIGBUS];

/// The actions in place before ours, indexed like [`SIGNALS`]. Written once,
/// under `INSTALL`, before our handler is installed; read by the handler
/// only after `PREV_READY`.
struct PrevActions(std::cell::UnsafeCell<[MaybeUninit<libc::sigaction>; 2]>);
// SAFETY: written once before PREV_READY is set (Release), read only after
// it is seen set (Acquire), never written again.
unsafe impl Sync for PrevActions {}

static PREV: PrevActions = PrevActions(std::cell::UnsafeCell::new([MaybeUninit::uninit(); 2]));
static PREV_READY: AtomicBool = AtomicBool::new(false);
static INSTALL: Mutex<bool> = Mutex::new(false);

/// Size of the alternate signal stacks this module allocates.
const ALT_STACK_SIZE: usize = 64 * 1024;

/// Installs the overflow handler for SIGSEGV and SIGBUS (once per process)
/// and gives the calling thread an alternate signal stack if it has none
/// (once per thread). Call it on every thread that runs goroutine code
/// before it does; calling it again is cheap.
///
/// Threads started by Rust std already have an alternate signal stack (std
/// uses it for its own overflow handler), which is kept. A stack this
/// function allocates is freed when the thread exits.
pub fn install() -> Result<(), StackError> {
    {
        let mut installed = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
        if !*installed {
            install_process()?;
            *installed = true;
        }
    }
    install_thread()
}

fn install_process() -> Result<(), StackError> {
    // Read the previous actions first and publish them, then install ours:
    // the handler may run as soon as it is installed.
    for (i, &sig) in SIGNALS.iter().enumerate() {
        let mut old = MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: reading the current action into `old`.
        if unsafe { libc::sigaction(sig, std::ptr::null(), old.as_mut_ptr()) } != 0 {
            return Err(StackError::Os {
                op: "sigaction",
                errno: sys::errno(),
            });
        }
        // SAFETY: PREV is written only here, under INSTALL, before
        // PREV_READY is set; no handler of ours reads it yet.
        unsafe { (*PREV.0.get())[i] = old };
    }
    PREV_READY.store(true, Ordering::Release);
    for &sig in &SIGNALS {
        // SAFETY: a zeroed sigaction is a valid starting point; every field
        // that matters is set below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = handler_entry();
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa.sa_mask` is a valid sigset_t to initialize.
        unsafe { libc::sigemptyset(&mut sa.sa_mask) };
        // SAFETY: `handler` has the SA_SIGINFO signature and is
        // async-signal-safe.
        if unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) } != 0 {
            return Err(StackError::Os {
                op: "sigaction",
                errno: sys::errno(),
            });
        }
    }
    Ok(())
}

/// An alternate signal stack this module allocated for its thread: a
/// mapping of a guard page and `ALT_STACK_SIZE` bytes.
struct AltStack {
    map: *mut u8,
    len: usize,
}

impl Drop for AltStack {
    fn drop(&mut self) {
        let page = sys::page_size();
        // SAFETY: querying the current alternate stack into `cur`, then
        // disabling it only if it is ours; the thread is exiting and runs
        // no handler on it now.
        unsafe {
            let mut cur = MaybeUninit::<libc::stack_t>::zeroed();
            if libc::sigaltstack(std::ptr::null(), cur.as_mut_ptr()) == 0
                && cur.assume_init().ss_sp == self.map.add(page).cast()
            {
                let off = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                libc::sigaltstack(&off, std::ptr::null_mut());
            }
        }
        // SAFETY: the mapping is ours and no longer in use.
        unsafe { sys::unmap(self.map, self.len) };
    }
}

thread_local! {
    static ALT_STACK: RefCell<Option<AltStack>> = const { RefCell::new(None) };
}

fn install_thread() -> Result<(), StackError> {
    let mut cur = MaybeUninit::<libc::stack_t>::zeroed();
    // SAFETY: querying the current alternate stack.
    if unsafe { libc::sigaltstack(std::ptr::null(), cur.as_mut_ptr()) } != 0 {
        return Err(StackError::Os {
            op: "sigaltstack",
            errno: sys::errno(),
        });
    }
    // SAFETY: sigaltstack filled it in.
    let cur = unsafe { cur.assume_init() };
    if cur.ss_flags & libc::SS_DISABLE == 0 {
        return Ok(());
    }
    let page = sys::page_size();
    let size = ALT_STACK_SIZE.max(min_signal_stack() * 2);
    let size = sys::round_to_page(size).unwrap_or(ALT_STACK_SIZE);
    let len = size + page;
    let map = sys::map_stack_memory(len).map_err(|errno| StackError::Os { op: "mmap", errno })?;
    let alt = AltStack { map, len };
    // SAFETY: the lowest page of our new mapping.
    if unsafe { libc::mprotect(map.cast(), page, libc::PROT_NONE) } != 0 {
        return Err(StackError::Os {
            op: "mprotect",
            errno: sys::errno(),
        });
    }
    let st = libc::stack_t {
        // SAFETY: above the guard page, inside the mapping.
        ss_sp: unsafe { map.add(page).cast() },
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `st` describes memory that stays mapped until AltStack drops,
    // which disables it first.
    if unsafe { libc::sigaltstack(&st, std::ptr::null_mut()) } != 0 {
        return Err(StackError::Os {
            op: "sigaltstack",
            errno: sys::errno(),
        });
    }
    ALT_STACK.with(|a| *a.borrow_mut() = Some(alt));
    Ok(())
}

/// The kernel's minimum signal stack size for this CPU (AVX-512 and SVE
/// state make it larger than the old `MINSIGSTKSZ`).
fn min_signal_stack() -> usize {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getauxval has no preconditions; 0 when absent.
        let n = unsafe { libc::getauxval(libc::AT_MINSIGSTKSZ) } as usize;
        n.max(libc::SIGSTKSZ)
    }
    #[cfg(not(target_os = "linux"))]
    {
        libc::SIGSTKSZ
    }
}

/// The fault address of a SIGSEGV/SIGBUS.
///
/// # Safety
/// `info` must be the siginfo the kernel passed to an SA_SIGINFO handler.
unsafe fn fault_addr(info: *const libc::siginfo_t) -> usize {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    // SAFETY: forwarded; si_addr is valid for SIGSEGV and SIGBUS.
    unsafe {
        (*info).si_addr() as usize
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    // SAFETY: forwarded; si_addr is valid for SIGSEGV and SIGBUS.
    unsafe {
        (*info).si_addr as usize
    }
}

/// A recognized overflow: the goroutine (0 when unknown) and its stack.
struct Overflow {
    goid: u64,
    lo: usize,
    hi: usize,
}

/// Whether a fault at `addr` is a stack overflow. Async-signal-safe.
fn classify(addr: usize) -> Option<Overflow> {
    let running = bounds::running_stack_in_handler();
    if let Some(r) = running {
        if r.guard_lo <= addr && addr < r.bounds.lo() {
            return Some(Overflow {
                goid: r.goid,
                lo: r.bounds.lo(),
                hi: r.bounds.hi(),
            });
        }
    }
    let (_, lo, hi) = registry::find_guard(addr)?;
    let goid = match running {
        Some(r) if r.bounds.lo() == lo => r.goid,
        _ => 0,
    };
    Some(Overflow { goid, lo, hi })
}

/// The address to install: [`handler`], entered through a stack-realigning
/// shim on 32-bit x86.
fn handler_entry() -> libc::sighandler_t {
    #[cfg(all(target_arch = "x86", target_os = "linux"))]
    {
        extern "C" {
            fn __gort_stack_v0_sigtramp();
        }
        __gort_stack_v0_sigtramp as *const () as libc::sighandler_t
    }
    #[cfg(not(all(target_arch = "x86", target_os = "linux")))]
    {
        handler as *const () as libc::sighandler_t
    }
}

// On i386 the ABI wants (esp + 4) % 16 == 0 at a function's entry, and Rust
// code relies on it (aligned SSE stores to the stack). The kernel delivers
// signals that way, but qemu-user (7.2, Debian 12's) hands the handler
// esp % 16 == 0, and the handler's first aligned store faults. This shim
// realigns the stack and calls `handler` with the kernel's three arguments;
// it keeps ebp and returns to the kernel's restorer as a plain cdecl
// function does.
#[cfg(all(target_arch = "x86", target_os = "linux"))]
std::arch::global_asm!(
    ".pushsection .text.__gort_stack_v0_sigtramp,\"ax\",@progbits",
    ".globl __gort_stack_v0_sigtramp",
    ".hidden __gort_stack_v0_sigtramp",
    ".type __gort_stack_v0_sigtramp,@function",
    ".p2align 4",
    "__gort_stack_v0_sigtramp:",
    "push ebp",
    "mov ebp, esp",
    "and esp, -16",
    // 4 + 3 pushes of 4: esp is 16-aligned at the call.
    "sub esp, 4",
    "push dword ptr [ebp + 16]",
    "push dword ptr [ebp + 12]",
    "push dword ptr [ebp + 8]",
    "call {handler}",
    "mov esp, ebp",
    "pop ebp",
    "ret",
    ".size __gort_stack_v0_sigtramp, . - __gort_stack_v0_sigtramp",
    ".popsection",
    handler = sym handler,
);

extern "C" fn handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { fault_addr(info) };
    if let Some(o) = classify(addr) {
        report(&o);
        // SAFETY: abort is async-signal-safe.
        unsafe { libc::abort() };
    }
    // SAFETY: our arguments, as the kernel passed them.
    unsafe { chain(sig, info, ctx) }
}

/// Writes the fatal message with write(2) alone.
fn report(o: &Overflow) {
    let mut buf = Buf::new();
    buf.push(b"fatal error: gort: goroutine stack overflow (goroutine ");
    if o.goid == 0 {
        buf.push(b"unknown");
    } else {
        buf.dec(o.goid);
    }
    buf.push(b", stack [");
    buf.hex(o.lo as u64);
    buf.push(b", ");
    buf.hex(o.hi as u64);
    buf.push(b"), ");
    buf.dec((o.hi - o.lo) as u64);
    buf.push(b" bytes)\n");
    sys::write_stderr_raw(buf.as_bytes());
}

/// Passes a fault that is not an overflow to the previous action.
///
/// # Safety
/// The arguments must be those the kernel passed to our handler.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let i = if sig == SIGNALS[0] { 0 } else { 1 };
    let prev = if PREV_READY.load(Ordering::Acquire) {
        // SAFETY: PREV is initialized before PREV_READY is set and never
        // written again.
        unsafe { Some((*PREV.0.get())[i].assume_init()) }
    } else {
        None
    };
    match prev {
        Some(p) if p.sa_sigaction != libc::SIG_DFL && p.sa_sigaction != libc::SIG_IGN => {
            if p.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO action's sa_sigaction has this
                // signature; we pass on the kernel's arguments.
                unsafe {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(p.sa_sigaction);
                    f(sig, info, ctx)
                }
            } else {
                // SAFETY: without SA_SIGINFO the action is a plain handler.
                unsafe {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(p.sa_sigaction);
                    f(sig)
                }
            }
        }
        _ => {
            // Back to the default action. A fault re-executes on return and
            // kills the process with `sig`; a signal sent with kill(2) does
            // not, so raise it again (blocked until we return).
            // SAFETY: a zeroed sigaction with SIG_DFL is valid; sigaction
            // and raise are async-signal-safe.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigemptyset(&mut dfl.sa_mask);
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
                if (*info).si_code <= 0 {
                    libc::raise(sig);
                }
            }
        }
    }
}

/// A fixed buffer for the message: no allocation in the handler.
struct Buf {
    bytes: [u8; 160],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: [0; 160],
            len: 0,
        }
    }

    fn push(&mut self, s: &[u8]) {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s[..n]);
        self.len += n;
    }

    fn dec(&mut self, mut v: u64) {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.push(&d[i..]);
    }

    fn hex(&mut self, mut v: u64) {
        let mut d = [0u8; 18];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        i -= 2;
        d[i] = b'0';
        d[i + 1] = b'x';
        self.push(&d[i..]);
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_format() {
        let mut b = Buf::new();
        b.dec(0);
        b.push(b" ");
        b.dec(18_446_744_073_709_551_615);
        b.push(b" ");
        b.hex(0);
        b.push(b" ");
        b.hex(0x7fff_dead_b000);
        assert_eq!(
            std::str::from_utf8(b.as_bytes()).unwrap(),
            "0 18446744073709551615 0x0 0x7fffdeadb000"
        );
    }
}
