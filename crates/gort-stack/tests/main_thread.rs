//! Bounds of the process's main thread. libtest runs tests on threads of its
//! own, so this test binary has its own main() (harness = false) and runs
//! its checks on the real main thread, one after another; it also changes
//! RLIMIT_STACK, which no other test may see.

#[cfg(target_os = "linux")]
mod common;

fn main() {
    #[cfg(target_os = "linux")]
    linux::main();
    #[cfg(not(target_os = "linux"))]
    println!("main_thread: Linux only");
}

#[cfg(target_os = "linux")]
mod linux {
    use super::common;

    use gort_arch::current_sp;
    use gort_stack::bounds::{thread_probes, MAIN_THREAD_STACK_CAP};
    use gort_stack::{thread_bounds, thread_stack_bounds};

    fn stack_rlimit() -> libc::rlimit {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `rl` is valid for writes.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut rl) }, 0);
        rl
    }

    /// What glibc's pthread_getattr_np says, uncapped: (lo, hi).
    fn raw_pthread_bounds() -> (usize, usize) {
        // SAFETY: standard attr calls on a local, destroyed once.
        unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
            assert_eq!(
                libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()),
                0
            );
            let (mut addr, mut size) = (std::ptr::null_mut(), 0);
            assert_eq!(
                libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size),
                0
            );
            libc::pthread_attr_destroy(attr.as_mut_ptr());
            (addr as usize, addr as usize + size)
        }
    }

    fn main_thread_bounds_contain_sp_and_match_rlimit() {
        let b = thread_stack_bounds().expect("pthread_getattr_np on the main thread");
        let sp = current_sp();
        let rl = stack_rlimit();
        println!(
            "main thread: {b:?}, sp {sp:#x}, {} KiB; RLIMIT_STACK {}",
            b.size() / 1024,
            rl.rlim_cur
        );
        assert!(b.is_accurate());
        assert!(b.contains(sp), "{b:?} must contain sp {sp:#x}");
        if rl.rlim_cur != libc::RLIM_INFINITY {
            // glibc: from RLIMIT_STACK below the end of the [stack] mapping;
            // the top of the mapping (arguments, environment) is above `hi`.
            let limit = rl.rlim_cur as usize;
            assert!(b.size() <= limit, "{b:?} larger than RLIMIT_STACK {limit}");
            assert!(
                b.size() >= limit - 256 * 1024,
                "{b:?} much smaller than RLIMIT_STACK {limit}"
            );
        }
    }

    fn cached_lookups_on_the_main_thread_probe_once() {
        let first = thread_bounds();
        assert!(first.is_accurate());
        let probes = thread_probes();
        for _ in 0..common::scaled(10_000) {
            assert_eq!(thread_bounds(), first);
        }
        assert_eq!(thread_probes(), probes);
    }

    /// Under `ulimit -s unlimited` glibc reports the main thread's stack down to
    /// the previous mapping; the bounds are capped to MAIN_THREAD_STACK_CAP.
    fn unlimited_stack_is_capped() {
        let old = stack_rlimit();
        let unlimited = libc::rlimit {
            rlim_cur: libc::RLIM_INFINITY,
            rlim_max: libc::RLIM_INFINITY,
        };
        // SAFETY: setting our own limit; raising the hard limit needs root.
        if unsafe { libc::setrlimit(libc::RLIMIT_STACK, &unlimited) } != 0 {
            println!(
                "unlimited_stack_is_capped: skipped, cannot raise RLIMIT_STACK: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        let (raw_lo, raw_hi) = raw_pthread_bounds();
        let b = thread_stack_bounds().unwrap();
        // SAFETY: restoring the limit read above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_STACK, &old) }, 0);
        println!(
            "unlimited: glibc says {} MiB, capped to {} MiB",
            (raw_hi - raw_lo) >> 20,
            b.size() >> 20
        );
        assert_eq!(b.hi(), raw_hi);
        assert_eq!(b.size(), (raw_hi - raw_lo).min(MAIN_THREAD_STACK_CAP));
        if common::under_qemu() {
            // qemu-user keeps RLIMIT_STACK to itself (it would change its own
            // stack), so glibc in the guest still sees the old limit.
            println!("under qemu: setrlimit(RLIMIT_STACK) is not passed to the host");
        } else if raw_hi - raw_lo <= MAIN_THREAD_STACK_CAP {
            // The previous mapping happens to lie closer than the cap (mmap base
            // randomization); the cap had nothing to do.
            println!("previous mapping within the cap; nothing to cap");
        }
    }

    pub fn main() {
        // SAFETY: no preconditions.
        let main = unsafe { libc::syscall(libc::SYS_gettid) == libc::getpid() as libc::c_long };
        assert!(main, "must run on the main thread");
        let tests: [(&str, fn()); 3] = [
            (
                "main_thread_bounds_contain_sp_and_match_rlimit",
                main_thread_bounds_contain_sp_and_match_rlimit,
            ),
            (
                "cached_lookups_on_the_main_thread_probe_once",
                cached_lookups_on_the_main_thread_probe_once,
            ),
            ("unlimited_stack_is_capped", unlimited_stack_is_capped),
        ];
        // Enough of libtest's command line for `cargo test NAME` and `--list`.
        let args: Vec<String> = std::env::args().skip(1).collect();
        if args.iter().any(|a| a == "--list") {
            for (name, _) in tests {
                println!("{name}: test");
            }
            return;
        }
        let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        for (name, test) in tests {
            if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
                test();
                println!("test {name} ... ok");
            }
        }
    }
}
