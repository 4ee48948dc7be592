//! Seeing inside a runtime, as Go's runtime lets you: counters
//! ([`Stats`], `stats()`), the periodic scheduler line of
//! `GORT_DEBUG=schedtrace=MS` (Go's `GODEBUG=schedtrace`), and goroutine
//! dumps with backtraces (`dump()`, and SIGQUIT, which dumps every
//! goroutine of every live runtime to stderr and exits with status 2).
//!
//! Cost on the hot paths: one relaxed load and store of an M-owned counter
//! per goroutine switch and per successful steal (no locked instruction;
//! other threads only read). The C counters are gort-cgo's, kept per M the
//! same way (`ncgocall`, `ncallback`). Everything else is paid by the
//! reader.
//!
//! Threads: each running runtime has one observer thread (`gort-observe`),
//! started and joined by `Runtime::run`, that sleeps in poll(2) on the
//! process's SIGQUIT pipe and its own stop pipe, waking at the schedtrace
//! period when one is set. The SIGQUIT handler only writes a byte to the
//! pipe (async-signal-safe); the observer that reads it does the dump.

use crate::g::G;
use crate::sched::Sched;
use crate::status::Status;
use std::ffi::c_void;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, Weak};
use std::time::{Duration, Instant};

// ---- counters ------------------------------------------------------------------

/// A snapshot of a runtime's scheduler, from `gort_sched::stats()`.
///
/// Each field is read on its own without stopping the world, so a snapshot
/// taken while goroutines run is approximate (as Go's schedtrace is).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live goroutines (runnable, running, waiting or in a syscall).
    pub goroutines: usize,
    /// OS threads running the scheduler (Ms), M0 included; not counting
    /// sysmon and the observer thread.
    pub threads: usize,
    /// Ms parked with nothing to run (idle, or waiting for their locked
    /// goroutine).
    pub idle_threads: usize,
    /// Ms looking for work.
    pub spinning_threads: usize,
    /// Ps (GOMAXPROCS).
    pub procs: usize,
    /// Ps on the idle list.
    pub idle_procs: usize,
    /// Calls into C through gort-cgo's `call` (each M's `ncgocall`).
    pub cgo_calls: u64,
    /// Callbacks from C run through gort-cgo's `callback` (each M's
    /// `ncallback`).
    pub cgo_callbacks: u64,
    /// Switches from the scheduler to a goroutine, since the runtime started.
    pub context_switches: u64,
    /// Successful steals of work from another P's run queue.
    pub steals: u64,
    /// Ps that sysmon took from Ms blocked in a syscall or C call and
    /// handed to another M.
    pub syscall_handoffs: u64,
    /// Goroutines on the global run queue.
    pub global_runqueue: usize,
    /// Threads running a goroutine without a P now, after sysmon took
    /// their P (a goroutine that held it for a slice without entering the
    /// runtime while other work waited; docs/sched.md, "Liveness").
    pub retaken: usize,
    /// The cap on `retaken` (`Builder::max_retaken`); at the cap such a
    /// goroutine keeps its P.
    pub retaken_cap: usize,
    /// Ps taken from running goroutines since the start.
    pub preempt_retakes: u64,
    /// Retakes not made because `retaken` was at its cap.
    pub retakes_capped: u64,
    /// Marks sysmon set asking a goroutine to yield (its slice ran out).
    pub preempt_marks: u64,
    /// Slices given one more slice instead of a retake: their thread had
    /// waited for a CPU, not run (an oversubscribed machine; Linux only).
    pub slices_extended: u64,
    /// Goroutines on each P's local run queue, by P.
    pub local_runqueues: Vec<usize>,
    /// Timers on the Ps' heaps: armed user timers (`gort::time`) and
    /// deadlines of parked goroutines (a deadline stays until due even if
    /// its goroutine was woken first).
    pub timers: usize,
}

impl fmt::Display for Stats {
    /// One line, as Go's schedtrace prints (without the time stamp), then
    /// the counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gomaxprocs={} idleprocs={} threads={} spinningthreads={} idlethreads={} \
             runqueue={} {:?} goroutines={} switches={} steals={} handoffs={} \
             cgocalls={} callbacks={} retaken={}/{} retakes={} capped={} preempts={}",
            self.procs,
            self.idle_procs,
            self.threads,
            self.spinning_threads,
            self.idle_threads,
            self.global_runqueue,
            self.local_runqueues,
            self.goroutines,
            self.context_switches,
            self.steals,
            self.syscall_handoffs,
            self.cgo_calls,
            self.cgo_callbacks,
            self.retaken,
            self.retaken_cap,
            self.preempt_retakes,
            self.retakes_capped,
            self.preempt_marks,
        )
    }
}

impl Sched {
    /// A snapshot of the counters (see [`Stats`]).
    pub(crate) fn stats(&self) -> Stats {
        let (threads, idle_threads, global_runqueue) = {
            let l = self.lock();
            (
                l.mcount,
                l.midle.len() + l.nmidlelocked.max(0) as usize,
                l.runq.len(),
            )
        };
        let (mut context_switches, mut steals) = (0, 0);
        for m in self.lock_allm().iter() {
            context_switches += m.counters.switches.load(Ordering::Relaxed);
            steals += m.counters.steals.load(Ordering::Relaxed);
        }
        let (cgo_calls, cgo_callbacks, _in_c, _extra_ms) = self.cgo_counts();
        Stats {
            goroutines: self.num_goroutines(),
            threads,
            idle_threads,
            spinning_threads: self.nmspinning.load(Ordering::Relaxed),
            procs: self.procs(),
            idle_procs: self.npidle.load(Ordering::Relaxed),
            cgo_calls,
            cgo_callbacks,
            context_switches,
            steals,
            syscall_handoffs: self.handoffs.load(Ordering::Relaxed),
            global_runqueue,
            retaken: self.live.retaken.load(Ordering::Relaxed),
            retaken_cap: self.live.max_retaken,
            preempt_retakes: self.live.retakes.load(Ordering::Relaxed),
            retakes_capped: self.live.capped.load(Ordering::Relaxed),
            preempt_marks: self.live.preempts.load(Ordering::Relaxed),
            slices_extended: self.live.extended.load(Ordering::Relaxed),
            local_runqueues: self.allp().map(|p| p.runq.len()).collect(),
            timers: self.timer_slots(),
        }
    }

    /// What the end of a run waits for (a SIGQUIT dump's second line, in
    /// the spirit of Go's scheddetail): the shutdown flags, the raw
    /// goroutine count and each P's credit in it (`num_goroutines` is the
    /// one less the others), and the M threads not joined yet.
    fn schedule_detail_line(&self) -> String {
        let credit: Vec<String> = self
            .allp()
            .map(|p| p.credit.load(Ordering::Relaxed).to_string())
            .collect();
        let unjoined = self.lock().threads.len();
        format!(
            "  shutdown={} finished={} detached={} ngoroutines={} credit=[{}] unjoined={}\n",
            u8::from(self.shutdown.load(Ordering::Relaxed)),
            u8::from(self.finished.load(Ordering::Relaxed)),
            u8::from(self.detached.load(Ordering::Relaxed)),
            self.ngoroutines.load(Ordering::Relaxed),
            credit.join(" "),
            unjoined,
        )
    }

    /// Go's schedtrace line: `SCHED 1004ms: gomaxprocs=2 idleprocs=1 ...`.
    fn schedtrace_line(&self) -> String {
        let s = self.stats();
        let queues: Vec<String> = s.local_runqueues.iter().map(|n| n.to_string()).collect();
        format!(
            "SCHED {}ms: gomaxprocs={} idleprocs={} threads={} spinningthreads={} \
             idlethreads={} runqueue={} [{}] goroutines={} retaken={}/{}\n",
            self.base.elapsed().as_millis(),
            s.procs,
            s.idle_procs,
            s.threads,
            s.spinning_threads,
            s.idle_threads,
            s.global_runqueue,
            queues.join(" "),
            s.goroutines,
            s.retaken,
            s.retaken_cap,
        )
    }
}

/// The runtime of the goroutine running on this thread, if any.
fn current_sched() -> Option<&'static Sched> {
    let g = crate::current::current_g();
    if g.is_null() {
        return None;
    }
    // SAFETY: a running G's Sched outlives the goroutine's code; the
    // 'static does not leave the callers in this module.
    Some(unsafe { &*(*g).sched() })
}

/// A snapshot of a runtime's counters: goroutines, threads, Ps, switches,
/// steals, syscall handoffs, C calls and callbacks.
///
/// Works on any thread. In a goroutine (or a callback from C): its
/// runtime's. On a thread that runs no goroutine (a plain std or C thread,
/// a signal-free monitoring thread): the totals of every runtime running
/// in the process (the sum of each field, the local run queues of all of
/// them one after the other), all zero when none runs. A runtime whose
/// observer thread could not start is left out of the totals.
pub fn stats() -> Stats {
    if let Some(s) = current_sched() {
        return s.stats();
    }
    let live = live_runtimes();
    let mut total = Stats::default();
    for s in live {
        total.add(s.stats());
    }
    total
}

impl Stats {
    /// Adds `o`'s counts to these (the totals of several runtimes).
    fn add(&mut self, o: Stats) {
        self.goroutines += o.goroutines;
        self.threads += o.threads;
        self.idle_threads += o.idle_threads;
        self.spinning_threads += o.spinning_threads;
        self.procs += o.procs;
        self.idle_procs += o.idle_procs;
        self.cgo_calls += o.cgo_calls;
        self.cgo_callbacks += o.cgo_callbacks;
        self.context_switches += o.context_switches;
        self.steals += o.steals;
        self.syscall_handoffs += o.syscall_handoffs;
        self.global_runqueue += o.global_runqueue;
        self.local_runqueues.extend(o.local_runqueues);
    }
}

// ---- goroutine dumps ---------------------------------------------------------

/// Most frames shown per goroutine.
const MAX_FRAMES: usize = 64;

/// What a dump knows of one goroutine before symbolizing.
struct GInfo {
    id: u64,
    status: Status,
    reason: crate::status::WaitReason,
    is_main: bool,
    locked_m: Option<u64>,
    running_m: Option<u64>,
    /// Return addresses, innermost first (None: stack not available).
    frames: Option<Vec<usize>>,
    note: &'static str,
}

impl Sched {
    /// Every live goroutine with its state, wait reason, locked thread and,
    /// where its stack can be read, a symbolized backtrace (Go's traceback
    /// of all goroutines). `me` is the goroutine asking, or null.
    pub(crate) fn goroutine_dump(&self, me: *mut G) -> String {
        let gs: Vec<*const G> = self.lock_allgs().iter().map(|g| &**g as *const G).collect();
        let mut infos = Vec::new();
        for g in gs {
            // SAFETY: Gs live as long as their Sched (see its invariants).
            // The plain fields of a goroutine that runs meanwhile (id, wait
            // reason, locked M) are read without synchronization, as Go's
            // traceback reads them: word-sized, possibly stale. Frames are
            // read only under the SCAN claim below.
            let gr = unsafe { &*g };
            let status = gr.status();
            if status == Status::Dead {
                continue;
            }
            let lockedm = gr.lockedm();
            let mut info = GInfo {
                id: gr.id.get(),
                status,
                reason: gr.wait_reason.get(),
                is_main: gr.is_main.get(),
                // SAFETY: Ms live as long as the Sched.
                locked_m: (!lockedm.is_null()).then(|| unsafe { (*lockedm).id }),
                running_m: None,
                frames: None,
                note: "",
            };
            if ptr_eq(g, me) {
                info.frames = Some(own_frames());
            } else if gr.try_claim_scan() {
                info.status = Status::Waiting;
                info.reason = gr.wait_reason.get();
                let mut buf = [0usize; MAX_FRAMES];
                // SAFETY: the claim keeps the G Waiting until release_scan:
                // no M can run it, so its saved context (stored before it
                // became Waiting) and its stack stay unchanged meanwhile.
                let n = unsafe { gort_arch::backtrace_of(&*gr.ctx.get(), &mut buf) };
                gr.release_scan();
                info.frames = Some(buf[..n].to_vec());
            } else if status == Status::Runnable {
                info.note = "runnable; its stack is read only while it waits";
            } else if matches!(status, Status::Running | Status::Syscall) {
                let m = gr.m();
                // SAFETY: Ms live as long as the Sched.
                info.running_m = (!m.is_null()).then(|| unsafe { (*m).id });
                info.note = if status == Status::Syscall {
                    "in a syscall or C call; stack unavailable"
                } else {
                    "running on another thread; stack unavailable"
                };
            }
            infos.push(info);
        }
        let mut out = String::new();
        for info in infos {
            write_goroutine(&mut out, &info);
        }
        out
    }
}

fn ptr_eq(a: *const G, b: *mut G) -> bool {
    std::ptr::eq(a, b as *const G)
}

/// The calling thread's own return addresses, less the dump's frames.
fn own_frames() -> Vec<usize> {
    let mut ips = Vec::new();
    backtrace::trace(|f| {
        let ip = f.ip() as usize;
        if ip != 0 {
            ips.push(ip);
        }
        ips.len() < MAX_FRAMES + 16
    });
    // Drop the frames of the dump itself: everything up to the last one
    // whose function is in this module or the backtrace crate. A frame's
    // function is the last symbol at its address (inlined ones come
    // first): `dump_string` inlined into the caller's frame leaves the
    // frame the caller's.
    let mut skip = 0;
    for (i, &ip) in ips.iter().enumerate().take(16) {
        let mut ours = false;
        backtrace::resolve(ip.saturating_sub(1) as *mut c_void, |s| {
            ours = s.name().is_some_and(|name| {
                let name = format!("{name:#}");
                name.starts_with("gort_sched::observe::") || name.starts_with("backtrace::")
            });
        });
        if ours {
            skip = i + 1;
        }
    }
    ips.drain(..skip);
    ips.truncate(MAX_FRAMES);
    ips
}

fn write_goroutine(out: &mut String, g: &GInfo) {
    let _ = write!(out, "goroutine {} [", g.id);
    match g.status {
        Status::Waiting => {
            let _ = write!(out, "{}", g.reason);
        }
        Status::Runnable => out.push_str("runnable"),
        Status::Running => out.push_str("running"),
        Status::Syscall => out.push_str("syscall"),
        Status::Dead => out.push_str("dead"),
    }
    if let Some(m) = g.locked_m {
        let _ = write!(out, ", locked to thread M{m}");
    }
    out.push(']');
    if g.is_main {
        out.push_str(" (main)");
    }
    out.push_str(":\n");
    if let Some(m) = g.running_m {
        let _ = writeln!(out, "\ton M{m}");
    }
    if !g.note.is_empty() {
        let _ = writeln!(out, "\t({})", g.note);
    }
    if let Some(frames) = &g.frames {
        if frames.is_empty() {
            out.push_str("\t(no frames)\n");
        }
        for &ip in frames {
            write_frame(out, ip);
        }
    }
    out.push('\n');
}

/// One return address: every function at it (inlined ones first), with
/// file and line where the debug info has them.
fn write_frame(out: &mut String, ip: usize) {
    let mut any = false;
    // The call instruction is just before the return address.
    backtrace::resolve(ip.saturating_sub(1) as *mut c_void, |s| {
        any = true;
        match s.name() {
            Some(name) => {
                let _ = writeln!(out, "{name:#}");
            }
            None => {
                let _ = writeln!(out, "{ip:#x}");
            }
        }
        if let (Some(file), Some(line)) = (s.filename(), s.lineno()) {
            let _ = writeln!(out, "\t{}:{line}", file.display());
        }
    });
    if !any {
        let _ = writeln!(out, "{ip:#x}\n\t?");
    }
}

/// Every live goroutine of the current runtime, with backtraces (see
/// [`dump`]).
///
/// # Panics
/// Outside a goroutine.
pub fn dump_string() -> String {
    match current_sched() {
        Some(s) => s.goroutine_dump(crate::current::current_g()),
        None => panic!("gort::dump called outside a goroutine"),
    }
}

/// Prints every live goroutine of the current runtime to stderr, as Go
/// prints a goroutine traceback: id, state or wait reason, the thread it
/// is locked to, and its frames (for goroutines that are parked or
/// runnable, read from the context they saved when they switched away;
/// goroutines running on other threads are listed without frames).
///
/// # Panics
/// Outside a goroutine.
pub fn dump() {
    eprint!("{}", dump_string());
}

// ---- the observer thread: schedtrace and SIGQUIT ------------------------------

/// Live runtimes, for the SIGQUIT dump.
static LIVE: Mutex<Vec<Weak<Sched>>> = Mutex::new(Vec::new());
/// Live runtimes, read by the signal handler (no lock there).
static NLIVE: AtomicUsize = AtomicUsize::new(0);
/// The SIGQUIT pipe: the handler writes a byte to [1], observers read [0].
/// -1 until installed (or when SIGQUIT belongs to someone else).
static QUIT_RD: AtomicI32 = AtomicI32::new(-1);
static QUIT_WR: AtomicI32 = AtomicI32::new(-1);
static INSTALL: Once = Once::new();

/// `GORT_DEBUG=schedtrace=MS` (comma-separated settings, as GODEBUG):
/// the period, or None when unset, 0 or unparsable.
pub(crate) fn schedtrace_from_env() -> Option<Duration> {
    let v = std::env::var("GORT_DEBUG").ok()?;
    // The last setting wins, as in GODEBUG.
    let ms = v
        .split(',')
        .filter_map(|kv| kv.trim().strip_prefix("schedtrace="))
        .next_back()?;
    match ms.trim().parse::<u64>() {
        Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
        _ => None,
    }
}

/// The async-signal-safe part: one byte into the pipe. With no runtime
/// alive, SIGQUIT does what it did before: the default action.
extern "C" fn on_sigquit(_sig: libc::c_int) {
    let wr = QUIT_WR.load(Ordering::Relaxed);
    if NLIVE.load(Ordering::Relaxed) == 0 || wr < 0 {
        // SAFETY: sigaction, signal and raise are async-signal-safe.
        unsafe {
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            libc::raise(libc::SIGQUIT);
        }
        return;
    }
    let errno = errno_location();
    // SAFETY: errno is saved and restored around write(2), which is
    // async-signal-safe; the byte is a local.
    unsafe {
        let saved = *errno;
        let b = 1u8;
        libc::write(wr, (&raw const b).cast(), 1);
        *errno = saved;
    }
}

fn errno_location() -> *mut libc::c_int {
    // SAFETY: returns the calling thread's errno address.
    unsafe { libc::__errno_location() }
}

/// Installs the SIGQUIT handler once per process, unless the program has
/// its own (or ignores SIGQUIT).
fn install_sigquit() {
    INSTALL.call_once(|| {
        // SAFETY: a query of the current action into a zeroed struct.
        let old = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGQUIT, std::ptr::null(), &mut old) != 0 {
                return;
            }
            old
        };
        if old.sa_sigaction != libc::SIG_DFL {
            return;
        }
        let mut fds = [-1; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
            return;
        }
        QUIT_RD.store(fds[0], Ordering::Relaxed);
        QUIT_WR.store(fds[1], Ordering::Relaxed);
        // SAFETY: a handler that only does async-signal-safe work.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigquit as extern "C" fn(libc::c_int) as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGQUIT, &sa, std::ptr::null_mut());
        }
    });
}

/// A running runtime's observer thread; dropping it stops and joins the
/// thread and takes the runtime out of the SIGQUIT registry.
///
/// Must hold: `stop_wr` is the write end of the pipe whose read end the
/// thread polls, open until `drop` closes it after the join; `sched` is in
/// `LIVE` (and counted in `NLIVE`) from `start` until `drop`.
pub(crate) struct Observer {
    sched: Weak<Sched>,
    stop_wr: libc::c_int,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    /// Registers `sched` as live (for SIGQUIT) and starts its observer.
    pub(crate) fn start(sched: &Arc<Sched>) -> Result<Observer, String> {
        install_sigquit();
        let mut fds = [-1; 2];
        // SAFETY: fds has room for two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!(
                "cannot make the observer's pipe: {}",
                std::io::Error::last_os_error()
            ));
        }
        let [stop_rd, stop_wr] = fds;
        let weak = Arc::downgrade(sched);
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(weak.clone());
        NLIVE.fetch_add(1, Ordering::SeqCst);
        let period = schedtrace_from_env();
        let mine = weak.clone();
        let outside = sched.outside.clone();
        let thread = std::thread::Builder::new()
            .name("gort-observe".into())
            .spawn(move || {
                let _own = crate::outside::OwnThread::enter(outside);
                observe(mine, stop_rd, period)
            });
        let mut obs = Observer {
            sched: weak,
            stop_wr,
            thread: None,
        };
        match thread {
            Ok(t) => {
                obs.thread = Some(t);
                Ok(obs)
            }
            Err(e) => {
                // SAFETY: our descriptor, not shared with any thread.
                unsafe { libc::close(stop_rd) };
                Err(format!("cannot start the observer thread: {e}"))
            }
        }
    }
}

impl Drop for Observer {
    /// Stops and joins the observer and forgets the runtime.
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            let b = 1u8;
            // SAFETY: our pipe's write end; the observer reads the byte.
            unsafe { libc::write(self.stop_wr, (&raw const b).cast(), 1) };
            let _ = t.join();
        }
        // SAFETY: our descriptor; the observer (which closed its read end)
        // is gone.
        unsafe { libc::close(self.stop_wr) };
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| !w.ptr_eq(&self.sched));
        NLIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

fn observe(sched: Weak<Sched>, stop_rd: libc::c_int, period: Option<Duration>) {
    let quit_rd = QUIT_RD.load(Ordering::Relaxed);
    let mut next = period.map(|p| Instant::now() + p);
    loop {
        let timeout = match next {
            Some(t) => t
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut fds = [
            libc::pollfd {
                fd: stop_rd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: quit_rd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let nfds = if quit_rd >= 0 { 2 } else { 1 };
        // SAFETY: fds holds nfds valid entries.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), nfds, timeout) };
        if r < 0 {
            continue; // EINTR
        }
        if fds[0].revents != 0 {
            break;
        }
        if nfds == 2 && fds[1].revents != 0 {
            let mut b = 0u8;
            // SAFETY: non-blocking read of one byte into a local; another
            // runtime's observer may have taken it first.
            if unsafe { libc::read(quit_rd, (&raw mut b).cast(), 1) } == 1 {
                sigquit_dump_and_exit();
            }
        }
        if let (Some(t), Some(p)) = (next, period) {
            let now = Instant::now();
            if now >= t {
                if let Some(s) = sched.upgrade() {
                    eprint!("{}", s.schedtrace_line());
                }
                // Keep the cadence; skip periods missed while descheduled.
                let mut n = t + p;
                while n <= now {
                    n += p;
                }
                next = Some(n);
            }
        }
    }
    // SAFETY: our read end; the write end is closed by Observer::drop.
    unsafe { libc::close(stop_rd) };
}

/// Go's response to SIGQUIT: every goroutine of every live runtime to
/// stderr, then exit status 2.
fn sigquit_dump_and_exit() -> ! {
    let live = live_runtimes();
    let mut out = String::from("SIGQUIT: quit\n\n");
    for (i, s) in live.iter().enumerate() {
        if live.len() > 1 {
            let _ = writeln!(out, "runtime {} of {}:", i + 1, live.len());
        }
        out.push_str(&s.schedtrace_line());
        out.push_str(&s.schedule_detail_line());
        out.push('\n');
        out.push_str(&s.goroutine_dump(std::ptr::null_mut()));
    }
    eprint!("{out}");
    std::process::exit(2)
}

/// The runtimes running in the process now (those in `LIVE` still alive).
fn live_runtimes() -> Vec<Arc<Sched>> {
    LIVE.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(Weak::upgrade)
        .collect()
}
