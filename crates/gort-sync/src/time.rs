//! Go's `time` package for goroutines: [`after`], [`tick`], [`Timer`],
//! [`Ticker`], [`after_func`], on the scheduler's timers
//! (`gort_sched::park::Timer`, see gort-sched's timer room).
//!
//! # Go 1.23's rules, and how they hold here
//!
//! - Timer channels hold at most one value and a slow receiver misses
//!   ticks (Go's sendTime is a non-blocking send): each firing is a
//!   `try_send` on a channel of capacity 1.
//! - After `stop` or `reset` returns, no value from before is received
//!   (golang/go#37196, Go 1.23's synchronous timer channels). The
//!   scheduler's timer runs its callback under the timer's own lock and
//!   `stop`/`reset` take that lock, so once they return no firing of an
//!   earlier arming is running or will run; they then drain the value a
//!   firing may have left in the channel, still under that lock, so a
//!   firing of the new arming cannot be drained by mistake (Go does the
//!   same under its sendLock). `stop`/`reset` return true if
//!   the timer was pending, or had fired with its value still unread (the
//!   drain took it): Go 1.23's answer.
//! - A timer channel's timer is on a heap only while a receiver is blocked
//!   on the channel (Go 1.23: `blockTimerChan`); a receive that does not
//!   block (`try_recv`, `len`, a `select!` arm tried before parking)
//!   first fires a timer that is due (Go's `maybeRunChan`). So making
//!   and stopping a timer, or an `after` whose `select!` never parks,
//!   touches no heap, and nothing piles up on one.
//! - A timer or ticker nobody references is collected: dropping a
//!   [`Timer`] or [`Ticker`] stops it and frees it at once. [`after`] and
//!   [`tick`] hand out only the receiver: the timer belongs to the
//!   channel, and goes with its last receiver.
//! - Durations saturate: `Duration::MAX` (or any duration past the
//!   representable future) means a timer that never fires (it stays
//!   pending, a century away, as Go's does).
//!
//! The channel owns its timer (`Chan::timer`), and the timer sends on the
//! channel through a pointer: the channel stops the timer before it is
//! freed, and a firing runs under the timer's lock, so the pointer is
//! live whenever it is used. (A `Sender` in the timer instead would be a
//! cycle, channel to timer to channel, that nothing collects.)
//!
//! Rejected: a goroutine per timer sleeping and sending (Go before 1.14:
//! a goroutine and a stack per timer, and stop cannot take back a value
//! already sent); a channel of capacity 0 with a blocking send (the
//! firing thread must never block); every timer on a heap from its
//! arming (this crate's first design: two locks and a heap slot per
//! arming, and `after` in a `select!` loop left a slot per iteration
//! until a sweep).

use crate::chan::Receiver;
use crate::hchan::Chan;
use std::fmt;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// When a duration from now ends. A duration past what `Instant` can
/// hold saturates to a century from now: a timer that never fires, yet is
/// pending, as Go's timer for its largest duration is.
fn deadline(d: Duration) -> Instant {
    const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
    let now = Instant::now();
    now.checked_add(d)
        .or_else(|| now.checked_add(CENTURY))
        .unwrap_or(now)
}

/// Arms `t` for `d` from now (repeating every `period`); a duration that
/// never ends leaves it stopped. `drain` runs before any firing of the
/// new arming can. Returns whether it was pending or `drain` took a value.
fn arm(
    t: &gort_sched::park::Timer,
    d: Duration,
    period: Option<Duration>,
    drain: impl FnOnce() -> bool,
) -> bool {
    t.reset_then(deadline(d), period, drain)
}

/// Takes a stale value out of a timer's channel. Runs under the timer's
/// run lock, which an M's scheduler loop (g0) and sysmon take to fire the
/// timer: it must not be a preemption point, or a goroutine preempted here
/// would keep the lock while the scheduler on its own M waits for it (a
/// deadlock seen under qemu, about once in 500 runs of tests/time.rs).
fn drain(rx: &Receiver<Instant>) -> impl FnOnce() -> bool + '_ {
    || rx.try_recv_now().is_ok()
}

/// Where a timer's firing sends: its channel.
struct ChanPtr(*const Chan<Instant>);

// SAFETY: the pointer is dereferenced only by the timer's callback, under
// the timer's run lock, while the channel lives (its Drop stops the timer,
// taking that lock, before anything is freed); `Chan<Instant>` is Sync.
unsafe impl Send for ChanPtr {}
// SAFETY: as for Send: shared use is the channel's own, which is Sync.
unsafe impl Sync for ChanPtr {}

impl ChanPtr {
    /// Go's `sendTime`: the time, without blocking; a full channel (a
    /// value not yet received) misses this one.
    fn send_now(&self) {
        // SAFETY: see the Send impl: the channel outlives every firing.
        let chan = unsafe { &*self.0 };
        let mut g = chan.lock();
        let _ = chan.try_send_locked(&mut g, Instant::now());
    }
}

/// A timer channel: capacity 1, no `Sender` (one phantom, so it never
/// disconnects), and the timer `make` builds to send on it.
fn timer_chan(make: impl FnOnce(ChanPtr) -> gort_sched::park::Timer) -> Receiver<Instant> {
    let chan = Arc::new_cyclic(|me: &Weak<Chan<Instant>>| {
        let mut c = Chan::new(Some(1), 1);
        c.timer = Some(make(ChanPtr(me.as_ptr())));
        c
    });
    Receiver { chan }
}

/// A lazy timer that sends the time: once, or every period (`ticks`).
fn sends_time(ticks: bool) -> impl FnOnce(ChanPtr) -> gort_sched::park::Timer {
    move |c| {
        gort_sched::park::Timer::new_lazy(move || {
            c.send_now();
            ticks
        })
    }
}

/// The timer of a channel from `timer_chan`.
fn timer_of(rx: &Receiver<Instant>) -> &gort_sched::park::Timer {
    rx.chan
        .timer
        .as_ref()
        .expect("a timer channel has its timer")
}

/// A value on the channel after `d`, once. Go's `time.After`.
///
/// ```
/// use std::time::Duration;
/// gort_sched::run(|| {
///     let (_tx, rx) = gort_sync::chan::bounded::<u32>(0);
///     gort_sync::select! {
///         recv(rx) -> _ => unreachable!(),
///         recv(gort_sync::time::after(Duration::from_millis(5))) -> t => assert!(t.is_ok()),
///     }
/// })
/// .unwrap();
/// ```
pub fn after(d: Duration) -> Receiver<Instant> {
    let rx = timer_chan(sends_time(false));
    timer_of(&rx).reset(deadline(d), None);
    rx
}

/// A value on the channel every `d`, for as long as the receiver lives; a
/// slow receiver misses ticks. Go's `time.Tick`.
///
/// # Panics
/// If `d` is zero (Go's `Tick` returns a nil channel then; a channel that
/// never receives is more likely a bug here).
pub fn tick(d: Duration) -> Receiver<Instant> {
    assert!(!d.is_zero(), "gort::time::tick: zero interval");
    let rx = timer_chan(sends_time(true));
    timer_of(&rx).reset(deadline(d), Some(d));
    rx
}

/// A single event: the receiver gets the time once the timer expires,
/// unless it is stopped first. Go's `time.Timer` (Go 1.23's semantics).
/// Dropping it stops it.
///
/// ```
/// use std::time::Duration;
/// use gort_sync::time::Timer;
///
/// gort_sched::run(|| {
///     let t = Timer::new(Duration::from_secs(3600));
///     assert!(t.stop(), "it was pending");
///     assert!(t.receiver().try_recv().is_err());
///     assert!(!t.reset(Duration::from_millis(1)), "stopped timers are not pending");
///     t.receiver().recv().unwrap();
/// })
/// .unwrap();
/// ```
pub struct Timer {
    rx: Receiver<Instant>,
}

impl Timer {
    /// A timer that sends the time on its receiver after `d`.
    pub fn new(d: Duration) -> Timer {
        let rx = timer_chan(sends_time(false));
        arm(timer_of(&rx), d, None, || false);
        Timer { rx }
    }

    /// The channel the time arrives on.
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Rearms the timer to expire `d` from now. Returns true if it was
    /// pending, or had expired with the value unread (which is discarded):
    /// after `reset` returns, no value from before is received.
    pub fn reset(&self, d: Duration) -> bool {
        arm(timer_of(&self.rx), d, None, drain(&self.rx))
    }

    /// Stops the timer. Returns true if it was pending, or had expired
    /// with the value unread (which is discarded): after `stop` returns,
    /// no value is received until a `reset`.
    pub fn stop(&self) -> bool {
        timer_of(&self.rx).stop_then(drain(&self.rx))
    }
}

impl Drop for Timer {
    /// Stops the timer: its receiver may live on in a clone, and then
    /// receives nothing more. (If this is the last handle of the channel,
    /// the channel's own drop stops it, once.)
    fn drop(&mut self) {
        if Arc::strong_count(&self.rx.chan) > 1 {
            timer_of(&self.rx).stop();
        }
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

/// Runs `f` in its own goroutine after `d` (on a new thread if called
/// outside a runtime). The returned timer's `stop` before then prevents
/// it; `reset` schedules it again. Its receiver never receives. Go's
/// `time.AfterFunc`.
pub fn after_func(d: Duration, f: impl Fn() + Send + Sync + 'static) -> Timer {
    let f = Arc::new(f);
    // An eager timer (on its heap from its arming: nobody receives), on a
    // timer channel only to share `Timer`'s shape.
    let rx = timer_chan(|_| {
        gort_sched::park::Timer::new(move |fire| {
            let f = f.clone();
            fire.go(move || f());
            false
        })
    });
    arm(timer_of(&rx), d, None, || false);
    Timer { rx }
}

/// Ticks at intervals: the receiver gets the time every period; a slow
/// receiver misses ticks. Go's `time.Ticker` (Go 1.23's semantics).
/// Dropping it stops it.
///
/// ```
/// use std::time::Duration;
/// use gort_sync::time::Ticker;
///
/// gort_sched::run(|| {
///     let t = Ticker::new(Duration::from_millis(1));
///     for _ in 0..3 {
///         t.receiver().recv().unwrap();
///     }
///     t.stop();
///     assert!(t.receiver().try_recv().is_err(), "no tick after stop");
/// })
/// .unwrap();
/// ```
pub struct Ticker {
    rx: Receiver<Instant>,
}

impl Ticker {
    /// A ticker with period `d`.
    ///
    /// # Panics
    /// If `d` is zero (Go panics too: "non-positive interval for
    /// NewTicker").
    pub fn new(d: Duration) -> Ticker {
        assert!(!d.is_zero(), "gort::time::Ticker: zero interval");
        let rx = timer_chan(sends_time(true));
        arm(timer_of(&rx), d, Some(d), || false);
        Ticker { rx }
    }

    /// The channel the ticks arrive on.
    pub fn receiver(&self) -> &Receiver<Instant> {
        &self.rx
    }

    /// Stops the ticker and restarts it with period `d`, the first tick
    /// `d` from now; no tick from before is received after it returns.
    ///
    /// # Panics
    /// If `d` is zero.
    pub fn reset(&self, d: Duration) {
        assert!(!d.is_zero(), "gort::time::Ticker::reset: zero interval");
        arm(timer_of(&self.rx), d, Some(d), drain(&self.rx));
    }

    /// Stops the ticker: no tick is received after it returns (until a
    /// `reset`).
    pub fn stop(&self) {
        timer_of(&self.rx).stop_then(drain(&self.rx));
    }
}

impl Drop for Ticker {
    /// Stops the ticker (as `Timer`'s drop).
    fn drop(&mut self) {
        if Arc::strong_count(&self.rx.chan) > 1 {
            timer_of(&self.rx).stop();
        }
    }
}

impl fmt::Debug for Ticker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}
