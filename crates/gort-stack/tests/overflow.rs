//! Death tests of the overflow handler: each test runs this binary again as
//! a child (through the qemu runner on cross targets) that overflows or
//! faults, and checks what the child printed and how it died.

// Linux only: the checks use Linux system calls and /proc.
#![cfg(target_os = "linux")]

mod common;

use std::hint::black_box;
use std::os::unix::process::ExitStatusExt;
use std::process::Output;

use gort_stack::{overflow, GuardStrategy, Stack, StackConfig, StackPool};

/// Recurses until the stack runs out: 512-byte frames, kept alive by the
/// addition after the call (no tail call) and by black_box.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[depth as usize % 512] = depth as u8;
    black_box(&mut frame);
    if depth == u64::MAX {
        return 0;
    }
    recurse(depth + 1) + u64::from(frame[(depth as usize + 7) % 512])
}

/// Child side: prints the stack's bounds for the parent, then overflows it.
fn overflow_on(stack: &Stack) -> ! {
    let b = stack.bounds();
    // On a line of its own: libtest has printed "test NAME ... " before.
    println!("\nSTACK {:#x} {:#x} {}", b.lo(), b.hi(), b.size());
    // SAFETY: the stack is ours, unused and aligned (page-aligned top).
    let r = unsafe { gort_arch::on_stack(stack.top(), || recurse(0)) };
    panic!("recursion returned: {:?}", r.is_ok());
}

/// Parent side: the stack bounds the child printed.
fn printed_stack(out: &Output) -> (usize, usize, usize) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("STACK "))
        .unwrap_or_else(|| panic!("child printed no STACK line:\n{}", describe(out)));
    let v: Vec<usize> = line
        .split_whitespace()
        .map(|w| {
            w.strip_prefix("0x")
                .map(|h| usize::from_str_radix(h, 16).unwrap())
                .unwrap_or_else(|| w.parse().unwrap())
        })
        .collect();
    (v[0], v[1], v[2])
}

fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Checks that the child died of SIGABRT after printing exactly the
/// overflow message for the stack it printed and goroutine `goid`.
fn assert_overflow_report(out: &Output, goid: &str) {
    let (lo, hi, size) = printed_stack(out);
    let want = format!(
        "fatal error: gort: goroutine stack overflow (goroutine {goid}, stack [{lo:#x}, {hi:#x}), {size} bytes)\n"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&want),
        "expected {want:?} on stderr\n{}",
        describe(out)
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "child must die by SIGABRT\n{}",
        describe(out)
    );
}

#[test]
fn overflow_of_pool_stack_names_goroutine_and_aborts() {
    const NAME: &str = "overflow_of_pool_stack_names_goroutine_and_aborts";
    if common::is_child(NAME) {
        overflow::install().unwrap();
        let pool = StackPool::new(StackConfig::new()).unwrap();
        let stack = pool.get().unwrap();
        gort_stack::set_running_stack(42, &stack);
        overflow_on(&stack);
    }
    let out = common::run_child(NAME);
    assert_overflow_report(&out, "42");
    let (_, _, size) = printed_stack(&out);
    assert_eq!(size, StackConfig::DEFAULT_SIZE);
}

#[test]
fn overflow_with_mprotect_guards_is_reported_too() {
    const NAME: &str = "overflow_with_mprotect_guards_is_reported_too";
    if common::is_child(NAME) {
        overflow::install().unwrap();
        let config = StackConfig {
            strategy: Some(GuardStrategy::Mprotect),
            ..StackConfig::new().with_size(64 * 1024)
        };
        let pool = StackPool::new(config).unwrap();
        let stack = pool.get().unwrap();
        gort_stack::set_running_stack(7, &stack);
        overflow_on(&stack);
    }
    assert_overflow_report(&common::run_child(NAME), "7");
}

#[test]
fn overflow_without_running_slot_is_found_through_the_slab_registry() {
    const NAME: &str = "overflow_without_running_slot_is_found_through_the_slab_registry";
    if common::is_child(NAME) {
        overflow::install().unwrap();
        // Several stacks, overflow a middle one: the registry must compute
        // the right slot from the slab's base and stride.
        let pool = StackPool::new(StackConfig::new().with_size(32 * 1024)).unwrap();
        let stacks: Vec<Stack> = (0..5).map(|_| pool.get().unwrap()).collect();
        overflow_on(&stacks[3]);
    }
    assert_overflow_report(&common::run_child(NAME), "unknown");
}

#[test]
fn standalone_stack_overflow_is_reported() {
    const NAME: &str = "standalone_stack_overflow_is_reported";
    if common::is_child(NAME) {
        overflow::install().unwrap();
        let stack = Stack::new(StackConfig::new().with_size(48 * 1024)).unwrap();
        gort_stack::set_running_stack(u64::MAX, &stack);
        overflow_on(&stack);
    }
    assert_overflow_report(&common::run_child(NAME), &u64::MAX.to_string());
}

/// A thread that Rust std did not start has no alternate signal stack;
/// `install` must give it one, or the handler could not run on an
/// overflowed stack.
#[test]
fn overflow_on_a_foreign_thread_gets_an_alternate_stack() {
    const NAME: &str = "overflow_on_a_foreign_thread_gets_an_alternate_stack";
    if common::is_child(NAME) {
        extern "C" fn thread_main(_: *mut libc::c_void) -> *mut libc::c_void {
            let mut ss = std::mem::MaybeUninit::<libc::stack_t>::zeroed();
            // SAFETY: querying this thread's alternate stack.
            unsafe { libc::sigaltstack(std::ptr::null(), ss.as_mut_ptr()) };
            // SAFETY: initialized by sigaltstack.
            let before = unsafe { ss.assume_init() }.ss_flags & libc::SS_DISABLE != 0;
            println!("\nALTSTACK_DISABLED_BEFORE {before}");
            overflow::install().unwrap();
            let stack = Stack::new(StackConfig::new()).unwrap();
            gort_stack::set_running_stack(3, &stack);
            overflow_on(&stack);
        }
        let mut t = std::mem::MaybeUninit::<libc::pthread_t>::uninit();
        // SAFETY: a plain pthread with default attributes running
        // thread_main, which never returns.
        let r = unsafe {
            libc::pthread_create(
                t.as_mut_ptr(),
                std::ptr::null(),
                thread_main,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(r, 0);
        // SAFETY: `t` was initialized by pthread_create.
        unsafe { libc::pthread_join(t.assume_init(), std::ptr::null_mut()) };
        unreachable!("the thread overflows and aborts");
    }
    let out = common::run_child(NAME);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ALTSTACK_DISABLED_BEFORE true"),
        "a raw pthread should start without an alternate stack\n{}",
        describe(&out)
    );
    assert_overflow_report(&out, "3");
}

extern "C" fn previous_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let msg = b"previous handler called\n";
    // SAFETY: write(2) and _exit(2) are async-signal-safe.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(77);
    }
}

/// Faults outside our guards go to the handler that was installed before
/// ours, with the kernel's arguments; guard faults do not.
#[test]
fn other_faults_are_chained_to_the_previous_handler() {
    const NAME: &str = "other_faults_are_chained_to_the_previous_handler";
    if common::is_child(NAME) {
        // SAFETY: installing a SA_SIGINFO handler with the right signature.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = previous_handler as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            assert_eq!(libc::sigaction(libc::SIGSEGV, &sa, std::ptr::null_mut()), 0);
        }
        overflow::install().unwrap();
        // SAFETY: a fresh PROT_NONE page of our own, written on purpose.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::write_volatile(p.cast::<u8>(), 1);
        }
        unreachable!("the write faults");
    }
    let out = common::run_child(NAME);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("previous handler called"),
        "{}",
        describe(&out)
    );
    assert!(
        !stderr.contains("goroutine stack overflow"),
        "{}",
        describe(&out)
    );
    assert_eq!(out.status.code(), Some(77), "{}", describe(&out));
}

/// With std's handler before ours (the default in a Rust program), an
/// overflow of a thread's own stack is still std's to report.
#[test]
fn thread_stack_overflow_is_left_to_std() {
    const NAME: &str = "thread_stack_overflow_is_left_to_std";
    if common::is_child(NAME) {
        overflow::install().unwrap();
        std::thread::Builder::new()
            .name("deep".into())
            .stack_size(256 * 1024)
            .spawn(|| recurse(0))
            .unwrap()
            .join()
            .ok();
        unreachable!("the thread overflows and aborts");
    }
    let out = common::run_child(NAME);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("thread 'deep'") && stderr.contains("has overflowed its stack"),
        "{}",
        describe(&out)
    );
    assert!(
        !stderr.contains("goroutine stack overflow"),
        "{}",
        describe(&out)
    );
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGABRT),
        "{}",
        describe(&out)
    );
}
