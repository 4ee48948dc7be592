//! Every callee-saved register (integer and, on aarch64, d8-d15) holds its
//! value across a switch away and back, while the other context runs with
//! different values in all of them.
//!
//! `gort_test_with_patterns(f, arg, seed, out)` (asm, one per architecture)
//! saves the caller's callee-saved registers, loads `seed + i` into the i-th
//! of them, calls `*out = f(arg)`, then returns a bit mask of the registers
//! that no longer hold their pattern. `f` is `hop`, which switches to the
//! context `arg` and returns the context that switches back. The other
//! context runs the same routine with another seed, so each side checks that
//! the switch restored its registers while the other side's values were live
//! in them.
//!
//! The last test does the same across `on_stack_resumable`, leaving it by
//! returning and by a switch to the caller it left resumable.
//!
//! `hop` keeps nothing live across the switch (its argument and result are
//! raw words in registers), so its compiled prologue saves only what the
//! switch declares clobbered; the registers the switch's asm saves itself
//! (rbx/rbp, x19/x29, esi/ebp) reach the check routine only through that asm.

mod common;

use gort_arch::{init, switch, Context};
use std::arch::global_asm;

// Register-check routines. Frame (x86_64, as an example): the six
// callee-saved registers are pushed; 24 bytes keep the call aligned and hold
// the seed and `out`; the routine then calls f with patterns live in every
// callee-saved register.
#[cfg(target_arch = "x86_64")]
const REGS: &[&str] = &["rbx", "rbp", "r12", "r13", "r14", "r15"];

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl gort_test_with_patterns",
    "gort_test_with_patterns:",
    "push rbx",
    "push rbp",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 24",
    "mov [rsp], rdx",
    "mov [rsp + 8], rcx",
    "mov rax, rdi",
    "mov rdi, rsi",
    "lea rbx, [rdx + 1]",
    "lea rbp, [rdx + 2]",
    "lea r12, [rdx + 3]",
    "lea r13, [rdx + 4]",
    "lea r14, [rdx + 5]",
    "lea r15, [rdx + 6]",
    "call rax",
    "mov rcx, [rsp + 8]",
    "mov [rcx], rax",
    "mov rdx, [rsp]",
    "xor eax, eax",
    "lea rcx, [rdx + 1]",
    "cmp rbx, rcx",
    "je 20f",
    "or eax, 1",
    "20:",
    "lea rcx, [rdx + 2]",
    "cmp rbp, rcx",
    "je 21f",
    "or eax, 2",
    "21:",
    "lea rcx, [rdx + 3]",
    "cmp r12, rcx",
    "je 22f",
    "or eax, 4",
    "22:",
    "lea rcx, [rdx + 4]",
    "cmp r13, rcx",
    "je 23f",
    "or eax, 8",
    "23:",
    "lea rcx, [rdx + 5]",
    "cmp r14, rcx",
    "je 24f",
    "or eax, 16",
    "24:",
    "lea rcx, [rdx + 6]",
    "cmp r15, rcx",
    "je 25f",
    "or eax, 32",
    "25:",
    "add rsp, 24",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbp",
    "pop rbx",
    "ret",
);

#[cfg(target_arch = "aarch64")]
const REGS: &[&str] = &[
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28", "x29", "d8", "d9", "d10",
    "d11", "d12", "d13", "d14", "d15",
];

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl gort_test_with_patterns",
    "gort_test_with_patterns:",
    "sub sp, sp, #176",
    "stp x29, x30, [sp]",
    "stp x19, x20, [sp, #16]",
    "stp x21, x22, [sp, #32]",
    "stp x23, x24, [sp, #48]",
    "stp x25, x26, [sp, #64]",
    "stp x27, x28, [sp, #80]",
    "stp d8, d9, [sp, #96]",
    "stp d10, d11, [sp, #112]",
    "stp d12, d13, [sp, #128]",
    "stp d14, d15, [sp, #144]",
    "stp x2, x3, [sp, #160]",
    "mov x6, x0",
    "mov x0, x1",
    "add x19, x2, #1",
    "add x20, x2, #2",
    "add x21, x2, #3",
    "add x22, x2, #4",
    "add x23, x2, #5",
    "add x24, x2, #6",
    "add x25, x2, #7",
    "add x26, x2, #8",
    "add x27, x2, #9",
    "add x28, x2, #10",
    "add x29, x2, #11",
    "add x4, x2, #12",
    "fmov d8, x4",
    "add x4, x2, #13",
    "fmov d9, x4",
    "add x4, x2, #14",
    "fmov d10, x4",
    "add x4, x2, #15",
    "fmov d11, x4",
    "add x4, x2, #16",
    "fmov d12, x4",
    "add x4, x2, #17",
    "fmov d13, x4",
    "add x4, x2, #18",
    "fmov d14, x4",
    "add x4, x2, #19",
    "fmov d15, x4",
    "blr x6",
    "ldp x2, x5, [sp, #160]",
    "str x0, [x5]",
    "mov x0, #0",
    "add x4, x2, #1",
    "cmp x19, x4",
    "b.eq 20f",
    "orr x0, x0, #1",
    "20:",
    "add x4, x2, #2",
    "cmp x20, x4",
    "b.eq 21f",
    "orr x0, x0, #2",
    "21:",
    "add x4, x2, #3",
    "cmp x21, x4",
    "b.eq 22f",
    "orr x0, x0, #4",
    "22:",
    "add x4, x2, #4",
    "cmp x22, x4",
    "b.eq 23f",
    "orr x0, x0, #8",
    "23:",
    "add x4, x2, #5",
    "cmp x23, x4",
    "b.eq 24f",
    "orr x0, x0, #16",
    "24:",
    "add x4, x2, #6",
    "cmp x24, x4",
    "b.eq 25f",
    "orr x0, x0, #32",
    "25:",
    "add x4, x2, #7",
    "cmp x25, x4",
    "b.eq 26f",
    "orr x0, x0, #64",
    "26:",
    "add x4, x2, #8",
    "cmp x26, x4",
    "b.eq 27f",
    "orr x0, x0, #128",
    "27:",
    "add x4, x2, #9",
    "cmp x27, x4",
    "b.eq 28f",
    "orr x0, x0, #256",
    "28:",
    "add x4, x2, #10",
    "cmp x28, x4",
    "b.eq 29f",
    "orr x0, x0, #512",
    "29:",
    "add x4, x2, #11",
    "cmp x29, x4",
    "b.eq 30f",
    "orr x0, x0, #1024",
    "30:",
    "add x4, x2, #12",
    "fmov x5, d8",
    "cmp x5, x4",
    "b.eq 31f",
    "orr x0, x0, #2048",
    "31:",
    "add x4, x2, #13",
    "fmov x5, d9",
    "cmp x5, x4",
    "b.eq 32f",
    "orr x0, x0, #4096",
    "32:",
    "add x4, x2, #14",
    "fmov x5, d10",
    "cmp x5, x4",
    "b.eq 33f",
    "orr x0, x0, #8192",
    "33:",
    "add x4, x2, #15",
    "fmov x5, d11",
    "cmp x5, x4",
    "b.eq 34f",
    "orr x0, x0, #16384",
    "34:",
    "add x4, x2, #16",
    "fmov x5, d12",
    "cmp x5, x4",
    "b.eq 35f",
    "orr x0, x0, #32768",
    "35:",
    "add x4, x2, #17",
    "fmov x5, d13",
    "cmp x5, x4",
    "b.eq 36f",
    "orr x0, x0, #65536",
    "36:",
    "add x4, x2, #18",
    "fmov x5, d14",
    "cmp x5, x4",
    "b.eq 37f",
    "orr x0, x0, #131072",
    "37:",
    "add x4, x2, #19",
    "fmov x5, d15",
    "cmp x5, x4",
    "b.eq 38f",
    "orr x0, x0, #262144",
    "38:",
    "ldp x29, x30, [sp]",
    "ldp x19, x20, [sp, #16]",
    "ldp x21, x22, [sp, #32]",
    "ldp x23, x24, [sp, #48]",
    "ldp x25, x26, [sp, #64]",
    "ldp x27, x28, [sp, #80]",
    "ldp d8, d9, [sp, #96]",
    "ldp d10, d11, [sp, #112]",
    "ldp d12, d13, [sp, #128]",
    "ldp d14, d15, [sp, #144]",
    "add sp, sp, #176",
    "ret",
);

#[cfg(target_arch = "x86")]
const REGS: &[&str] = &["ebx", "esi", "edi", "ebp"];

#[cfg(target_arch = "x86")]
global_asm!(
    ".globl gort_test_with_patterns",
    "gort_test_with_patterns:",
    "push ebp",
    "push ebx",
    "push esi",
    "push edi",
    "mov eax, [esp + 20]",
    "mov ecx, [esp + 24]",
    "mov edx, [esp + 28]",
    "mov ebx, [esp + 32]",
    "sub esp, 12",
    "mov [esp], ecx",
    "mov [esp + 4], ebx",
    "mov [esp + 8], edx",
    "lea ebx, [edx + 1]",
    "lea esi, [edx + 2]",
    "lea edi, [edx + 3]",
    "lea ebp, [edx + 4]",
    "call eax",
    "mov ecx, [esp + 4]",
    "mov [ecx], eax",
    "mov edx, [esp + 8]",
    "xor eax, eax",
    "lea ecx, [edx + 1]",
    "cmp ebx, ecx",
    "je 20f",
    "or eax, 1",
    "20:",
    "lea ecx, [edx + 2]",
    "cmp esi, ecx",
    "je 21f",
    "or eax, 2",
    "21:",
    "lea ecx, [edx + 3]",
    "cmp edi, ecx",
    "je 22f",
    "or eax, 4",
    "22:",
    "lea ecx, [edx + 4]",
    "cmp ebp, ecx",
    "je 23f",
    "or eax, 8",
    "23:",
    "add esp, 12",
    "pop edi",
    "pop esi",
    "pop ebx",
    "pop ebp",
    "ret",
);

extern "C" {
    fn gort_test_with_patterns(
        f: extern "C" fn(usize) -> usize,
        arg: usize,
        seed: usize,
        out: *mut usize,
    ) -> usize;
}

const SEED_MAIN: usize = 0x5a5a_5a00;
const SEED_OTHER: usize = 0xa5a5_a500;

static mut OTHER_MASKS: usize = 0;
static mut OTHER_ROUNDS: usize = 0;

/// Switches to the raw context `to`; returns the raw context that switched
/// back.
extern "C" fn hop(to: usize) -> usize {
    // SAFETY: `to` is a suspended context's raw form, used once.
    unsafe { switch(Context::from_raw(to), 0).0.into_raw() }
}

unsafe extern "C" fn other_entry(_: usize, from: Context, _: usize) -> ! {
    let mut main = from.into_raw();
    loop {
        // SAFETY: the routine calls hop(main) with patterns live and stores
        // the context that resumes us back into `main`.
        let mask = unsafe { gort_test_with_patterns(hop, main, SEED_OTHER, &mut main) };
        // SAFETY: single-threaded test.
        unsafe {
            OTHER_MASKS |= mask;
            OTHER_ROUNDS += 1;
        }
    }
}

fn describe(mask: usize) -> Vec<&'static str> {
    REGS.iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, r)| *r)
        .collect()
}

#[test]
fn callee_saved_registers_survive_a_switch() {
    let stack = common::TestStack::new(64 * 1024);
    // SAFETY: the stack outlives the context; the only test that uses the
    // statics, so they are not shared.
    let first = unsafe { init(stack.top(), other_entry, 0) };
    // Start the other context so that it, too, is suspended inside the
    // check routine from now on.
    let mut other = hop(first.into_raw());
    for round in 0..1000 {
        // SAFETY: the routine calls hop(other) with patterns live.
        let mask = unsafe { gort_test_with_patterns(hop, other, SEED_MAIN, &mut other) };
        assert_eq!(mask, 0, "round {round}: lost {:?}", describe(mask));
    }
    // SAFETY: the other context is suspended; reading its results.
    let (other_mask, other_rounds) = unsafe { (OTHER_MASKS, OTHER_ROUNDS) };
    assert_eq!(
        other_mask,
        0,
        "other context lost {:?}",
        describe(other_mask)
    );
    assert_eq!(other_rounds, 1000, "the other side checked once per resume");
    // The other context stays suspended inside its loop; its stack is
    // dropped with nothing of Rust's left to run on it.
}

/// What `via_resumable` needs: the other stack, the resume slot, and
/// whether the callee leaves by returning or by a switch to the slot.
struct Resumable {
    top: *mut u8,
    slot: Context,
    by_switch: bool,
}

/// Runs `callee` through `on_stack_resumable`, from inside the check
/// routine (so the caller's patterns are live across it).
extern "C" fn via_resumable(arg: usize) -> usize {
    let r = arg as *mut Resumable;
    // SAFETY: `r` is the test's Resumable, alive for the whole call; its
    // stack is unused.
    unsafe { gort_arch::on_stack_resumable((*r).top, resumable_callee, arg, &raw mut (*r).slot) }
}

/// On the other stack: loads other patterns with the check routine, and
/// from inside it either returns 11 or switches to the resume slot with 42.
unsafe extern "C" fn resumable_callee(arg: usize) -> usize {
    let mut out = 0;
    // SAFETY: the routine calls leave(arg) with the other patterns live.
    let mask = unsafe { gort_test_with_patterns(leave, arg, SEED_OTHER, &mut out) };
    assert_eq!(mask, 0, "callee lost {:?}", describe(mask));
    out
}

extern "C" fn leave(arg: usize) -> usize {
    let r = arg as *mut Resumable;
    // SAFETY: as in via_resumable; the slot holds the suspended caller of
    // on_stack_resumable, switched to once.
    unsafe {
        if (*r).by_switch {
            let caller = (*r).slot.take();
            let _ = switch(caller, 42);
            unreachable!("an abandoned callee was resumed");
        }
    }
    11
}

#[test]
fn callee_saved_registers_survive_on_stack_resumable_both_ways() {
    let stack = common::TestStack::new(64 * 1024);
    for round in 0..1000 {
        let mut r = Resumable {
            top: stack.top(),
            slot: Context::empty(),
            by_switch: round % 2 == 1,
        };
        let mut out = 0;
        // SAFETY: the routine calls via_resumable(&r) with patterns live.
        let mask = unsafe {
            gort_test_with_patterns(via_resumable, &raw mut r as usize, SEED_MAIN, &mut out)
        };
        assert_eq!(mask, 0, "round {round}: lost {:?}", describe(mask));
        assert_eq!(out, if r.by_switch { 42 } else { 11 }, "round {round}");
        assert!(r.slot.is_empty(), "the slot is empty after the call");
    }
}
