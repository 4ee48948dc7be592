//! Timers: goroutine deadlines (`park_with`, `sleep`) and the user timers
//! under `gort::time` ([`Timer`]), on heaps ordered by expiry, run by the
//! scheduler when due.
//!
//! # Go 1.23's design (runtime/time.go), what is kept and what is not
//!
//! Go keeps one 4-ary heap of timers per P, locked by the P's `timers.mu`;
//! `schedule` runs the due timers of its P before picking a goroutine
//! (`checkTimers`), `findRunnable` steals from other Ps' heaps, and
//! sysmon wakes an idle P when a timer is overdue. A timer's `stop` and
//! `reset` do not touch the heap: they mark the timer (`timerModified`,
//! `timerZombie`) and the heap's owner fixes it up lazily, because only
//! the P that owns a heap may change it without a lock dance. For channel
//! timers, Go 1.23 adds a per-timer `sendLock` and a sequence number so
//! that once `Stop`/`Reset` returns no stale value is sent, and drains the
//! channel's buffer (golang/go#37196).
//!
//! Kept: heaps ordered by (when, arming), one lock per heap, due timers
//! run by the scheduler with sysmon as the fallback, the per-timer run
//! lock (Go's sendLock) and sequence number, Go 1.23's answer for what
//! `stop` returns (pending, or a firing that the stop cancelled), and a
//! firing's callback run with the heap unlocked (it may wake goroutines,
//! which takes scheduler locks: lock order is scheduler, then heap).
//! Kept too, Go 1.23's lazy channel timers (`Timer::new_lazy`): armed,
//! such a timer stays off its heap until a receiver blocks on its channel
//! (`block`, Go's `blockTimerChan`), and leaves it when the last blocked
//! receiver goes (`Blocked`'s drop; Go leaves a zombie instead); a
//! receiver that only looks calls `poll`, which fires a due timer in
//! place (Go's `maybeRunChan`). Making, arming and stopping a timer
//! nobody waits for touches no heap.
//!
//! Changed: `stop` and `reset` remove the timer from its heap at once
//! (each heap slot's index is kept in the timer, so removal is O(log n))
//! instead of leaving a zombie: any thread may lock a heap, so there is
//! no owner to defer to, and nothing stays in memory after a stop (100,000
//! timers made and stopped leave an empty heap). A binary heap, not 4-ary:
//! the heaps here are small and removal by index is simpler to verify.
//! Goroutine deadlines are not removed when the goroutine is woken first
//! (their waker is a one-shot: a late firing loses), as before; they leave
//! when due.
//!
//! Timers made on a plain thread (no runtime to run them) go to a
//! process-wide heap run by its own thread, started on first use.
//!
//! # The protocol
//!
//! - A `Timer` is an `Arc<TimerInner>`: the handle holds one count and
//!   each heap slot that refers to it holds one.
//! - Under the heap's lock: `index` (the timer's slot, or none), `seq`
//!   (bumped by every stop and reset) and `popped` (taken off the heap as
//!   due, firing not yet run).
//! - `run_due` pops every due slot under the heap lock (marking `popped`,
//!   remembering `seq`), unlocks, then fires each: under the timer's run
//!   lock, a firing whose `seq` is stale does nothing; else it clears
//!   `popped`, calls the callback and, for a periodic timer the callback
//!   wants kept, pushes it back one period later (skipping missed ticks).
//! - `stop`/`reset` take the run lock (so no firing is running), then the
//!   heap lock if the timer is on the heap: remove the slot, or clear
//!   `popped` (a firing that will now find its `seq` stale). "Was
//!   pending" is whether an arming was live (`Arming::when`). `reset`
//!   pushes a new slot, or for a lazy timer nobody blocks on, only
//!   records the expiry (`lazy_when`).
//! - Under the run lock, a lazy timer is on its heap iff it is armed and a
//!   receiver is blocked (`Arming::blocked > 0`), except for a firing
//!   popped while the last receiver left (it runs, finds nobody blocked,
//!   and a periodic timer then stays off the heap). `block` pushes it
//!   (after firing it in place if due); the last `Blocked` removes it;
//!   `poll` and `block` fire a due timer that is off its heap with
//!   `run_lazy`; after any firing, `rearm` puts a periodic timer's next
//!   tick on the heap if a receiver is blocked, else only records it.
//! - `idle` (`when` is none and nothing on a heap) is published with
//!   Release at the end of each change; a drop that reads it true skips
//!   the lock: no callback can run any more.
//!
//! Lock order: a timer's run lock, then scheduler locks (a callback that
//! wakes a goroutine may take them; checkdead holds the scheduler's lock
//! when it looks at the heaps), then a heap lock, always innermost.

use crate::waker::Waker;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// No slot: the timer is not on its heap.
const NOT_HEAPED: usize = usize::MAX;
/// `Timers::next` when the heap is empty.
const NONE: u64 = u64::MAX;
/// A heap smaller than this is never swept.
const SWEEP_MIN: usize = 256;

/// Nanoseconds since a process-wide origin, for the cheap `next` check
/// and sysmon's wake-up time.
pub(crate) fn nanos(t: Instant) -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    t.saturating_duration_since(base)
        .as_nanos()
        .min(NONE as u128 - 1) as u64
}

/// What a user timer does when it fires: returns whether a periodic timer
/// stays armed (a one-shot timer is done either way).
type Callback = dyn Fn(&Fire<'_>) -> bool + Send + Sync;

/// Starts a goroutine on the runtime that runs the timers.
pub(crate) type Spawn<'a> = &'a dyn Fn(Box<dyn FnOnce() + Send>);

/// What a firing callback may do besides waking goroutines.
pub struct Fire<'a> {
    spawn: Option<Spawn<'a>>,
}

impl Fire<'_> {
    /// Starts `f` in a new goroutine of the timer's runtime (a new thread
    /// for a timer made on a plain thread). Go's AfterFunc.
    pub fn go(&self, f: impl FnOnce() + Send + 'static) {
        match self.spawn {
            Some(spawn) => spawn(Box::new(f)),
            None => {
                std::thread::spawn(f);
            }
        }
    }
}

/// Must hold: `index`, `seq`, `popped` and `period` change only under the
/// lock of `heap`; `index != NOT_HEAPED` iff a slot of `heap` refers to
/// this timer, at that index; `seq` changes only with the run lock held
/// too, so a firing that holds the run lock sees it stable. Under the run
/// lock, `Arming::heaped` is `index != NOT_HEAPED || popped` (a pop only
/// moves a timer from one to the other); a lazy timer is heaped only
/// while a receiver is blocked on it; `lazy_when` is the expiry in
/// `nanos` of an armed lazy timer off its heap, else `NONE`. `idle` is
/// `when.is_none() && !heaped` as of the last release of the run lock
/// that changed them: read true (Acquire), no callback runs until the
/// timer is armed again (a popped firing finds its `seq` stale).
/// The callback is the last field, unsized: a timer and its closure are
/// one allocation (an `Arc<TimerInner<F>>` coerced to this).
struct TimerInner<F: ?Sized = Callback> {
    heap: Arc<Timers>,
    run: Mutex<Arming>,
    index: AtomicUsize,
    seq: AtomicU64,
    popped: AtomicBool,
    /// 0: one-shot.
    period: AtomicU64,
    /// A channel's timer (`Timer::new_lazy`): off the heap unless blocked.
    lazy: bool,
    /// Read without the lock by `poll`, written under it.
    lazy_when: AtomicU64,
    /// Read without the lock by `Drop`, written under it (`settle`).
    idle: AtomicBool,
    f: F,
}

/// A timer's arming, under its run lock.
struct Arming {
    /// The current arming's expiry; None when stopped, or a one-shot that
    /// fired.
    when: Option<Instant>,
    /// On its heap, or popped with the firing not run yet.
    heaped: bool,
    /// Receivers blocked on a lazy timer's channel (Go's `timer.blocked`).
    blocked: usize,
}

enum What {
    /// A parked goroutine's deadline.
    Wake(Waker),
    /// A user timer, armed with this `seq`.
    Timer(Arc<TimerInner>, u64),
}

struct Slot {
    when: Instant,
    /// Arming order: ties on `when` fire in arming order.
    order: u64,
    what: What,
}

impl Slot {
    fn key(&self) -> (Instant, u64) {
        (self.when, self.order)
    }
}

/// A heap of timers (one per runtime, and one process-wide for plain
/// threads).
///
/// Must hold: `heap` is a binary min-heap by `Slot::key`; every `Timer`
/// slot's timer has `index` equal to the slot's position; `next` is the
/// first slot's `when` in `nanos`, or `NONE` (written under the lock, read
/// without it as a hint); `firing` counts slots popped whose firing has
/// not finished, so that checkdead always sees either the slot or its
/// effect.
pub(crate) struct Timers {
    heap: Mutex<Vec<Slot>>,
    next: AtomicU64,
    order: AtomicU64,
    firing: AtomicUsize,
    /// Sweep dead slots when the heap reaches this size (under the lock).
    sweep_at: AtomicUsize,
    /// Called with its `nanos` when a slot becomes the first (the runner
    /// may sleep until a later one).
    kick: Box<dyn Fn(u64) + Send + Sync>,
    /// The fork generation the heap was made in (fork.rs): in a forked
    /// child, a busy heap lock is held by a thread that is gone.
    fork_gen: u64,
}

/// A due slot taken off the heap, fired outside its lock.
enum Due {
    Wake(Waker),
    Timer(Arc<TimerInner>, u64),
}

impl Timers {
    pub(crate) fn new(kick: impl Fn(u64) + Send + Sync + 'static) -> Arc<Timers> {
        Arc::new(Timers {
            fork_gen: crate::fork::generation(),
            heap: Mutex::new(Vec::new()),
            next: AtomicU64::new(NONE),
            order: AtomicU64::new(0),
            firing: AtomicUsize::new(0),
            sweep_at: AtomicUsize::new(SWEEP_MIN),
            kick: Box::new(kick),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        crate::fork::lock(&self.heap, self.fork_gen, "a timer heap's lock")
    }

    /// Arms a deadline for a parked goroutine's waker (park_with).
    pub(crate) fn add_wake(&self, when: Instant, waker: Waker) {
        let mut h = self.lock();
        let (first, swept) = self.push(&mut h, when, What::Wake(waker));
        drop(h);
        drop(swept);
        if first {
            (self.kick)(nanos(when));
        }
    }

    /// Whether anything is on the heap or firing (checkdead's question).
    pub(crate) fn is_idle(&self) -> bool {
        self.firing.load(Ordering::Acquire) == 0 && self.lock().is_empty()
    }

    /// The first slot's expiry, if any.
    pub(crate) fn next_when(&self) -> Option<Instant> {
        self.lock().first().map(|s| s.when)
    }

    /// Slots, counting those taken off to fire and not done yet (a
    /// periodic timer between its pop and its re-push still counts).
    pub(crate) fn len(&self) -> usize {
        let h = self.lock();
        h.len() + self.firing.load(Ordering::Acquire)
    }

    /// The first slot's expiry in `nanos` (`u64::MAX`: none), without the
    /// lock.
    pub(crate) fn next_nanos(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }

    /// A cheap check without the lock or a clock read when nothing is
    /// armed: whether a slot may be due at `now` (call `run_due` then).
    #[inline]
    pub(crate) fn maybe_due(&self) -> bool {
        let next = self.next.load(Ordering::Relaxed);
        next != NONE && next <= nanos(Instant::now())
    }

    /// Fires every slot due at `now`; `spawn` starts a goroutine for
    /// `Fire::go`. Returns how many fired (stale ones included).
    pub(crate) fn run_due(&self, now: Instant, spawn: Option<Spawn<'_>>) -> usize {
        let mut due = Vec::new();
        {
            let mut h = self.lock();
            while h.first().is_some_and(|s| s.when <= now) {
                let slot = self.remove(&mut h, 0);
                due.push(match slot.what {
                    What::Wake(w) => Due::Wake(w),
                    What::Timer(t, seq) => {
                        t.popped.store(true, Ordering::Relaxed);
                        Due::Timer(t, seq)
                    }
                });
            }
            self.firing.fetch_add(due.len(), Ordering::AcqRel);
        }
        let n = due.len();
        let fire = Fire { spawn };
        for d in due {
            match d {
                Due::Wake(w) => {
                    w.time_out();
                }
                Due::Timer(t, seq) => t.fire(seq, now, &fire),
            }
            self.firing.fetch_sub(1, Ordering::AcqRel);
        }
        n
    }

    /// Drops every slot (the runtime ended): breaks the cycles through
    /// `TimerInner::heap`.
    pub(crate) fn clear(&self) {
        let slots = std::mem::take(&mut *self.lock());
        for s in &slots {
            if let What::Timer(t, _) = &s.what {
                t.index.store(NOT_HEAPED, Ordering::Relaxed);
            }
        }
        self.next.store(NONE, Ordering::Relaxed);
        drop(slots);
    }

    // ---- the heap (under its lock) -------------------------------------

    /// Pushes a slot; returns whether it became the first, and the dead
    /// slots a sweep took out (for the caller to drop after unlocking:
    /// dropping a timer drops its callback, which may do anything).
    fn push(&self, h: &mut Vec<Slot>, when: Instant, what: What) -> (bool, Vec<Slot>) {
        let swept = if h.len() >= self.sweep_at.load(Ordering::Relaxed) {
            self.sweep(h)
        } else {
            Vec::new()
        };
        let order = self.order.fetch_add(1, Ordering::Relaxed);
        h.push(Slot { when, order, what });
        let last = h.len() - 1;
        let i = self.sift_up(h, last);
        self.set_next(h);
        (i == 0, swept)
    }

    /// Takes out the slots nobody can observe any more: deadlines whose
    /// wait already ended (a one-shot that was won). Then rebuilds the
    /// heap. Run when the heap has doubled since the last sweep, so it
    /// costs O(1) per push, amortized, and the heap holds at most about
    /// twice the live slots: a `select!` loop with a timeout arm does not
    /// pile up slots until they are due. (A timer is never dead here: its
    /// handle stops it when dropped, and an `after` in a `select!` loop
    /// is a lazy timer, on the heap only while the select is parked.)
    fn sweep(&self, h: &mut Vec<Slot>) -> Vec<Slot> {
        let mut dead = Vec::new();
        let mut i = 0;
        while i < h.len() {
            let live = match &h[i].what {
                What::Wake(w) => w.is_waiting(),
                What::Timer(..) => true,
            };
            if live {
                i += 1;
            } else {
                let s = h.swap_remove(i);
                if let What::Timer(t, _) = &s.what {
                    t.index.store(NOT_HEAPED, Ordering::Relaxed);
                }
                dead.push(s);
            }
        }
        for i in (0..h.len() / 2).rev() {
            self.sift_down(h, i);
        }
        for i in 0..h.len() {
            set_index(h, i);
        }
        self.set_next(h);
        self.sweep_at
            .store((2 * h.len()).max(SWEEP_MIN), Ordering::Relaxed);
        give_back(h);
        dead
    }

    /// Removes the slot at `i`; the heap gives memory back as it empties
    /// (`give_back`).
    fn remove(&self, h: &mut Vec<Slot>, i: usize) -> Slot {
        let last = h.len() - 1;
        h.swap(i, last);
        let slot = h.pop().expect("i is in the heap");
        give_back(h);
        if let What::Timer(t, _) = &slot.what {
            t.index.store(NOT_HEAPED, Ordering::Relaxed);
        }
        if i < h.len() {
            set_index(h, i);
            let j = self.sift_up(h, i);
            if j == i {
                self.sift_down(h, i);
            }
        }
        self.set_next(h);
        slot
    }

    fn sift_up(&self, h: &mut [Slot], mut i: usize) -> usize {
        while i > 0 {
            let parent = (i - 1) / 2;
            if h[i].key() >= h[parent].key() {
                break;
            }
            h.swap(i, parent);
            set_index(h, i);
            i = parent;
        }
        set_index(h, i);
        i
    }

    fn sift_down(&self, h: &mut [Slot], mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut min = i;
            if l < h.len() && h[l].key() < h[min].key() {
                min = l;
            }
            if r < h.len() && h[r].key() < h[min].key() {
                min = r;
            }
            if min == i {
                break;
            }
            h.swap(i, min);
            set_index(h, i);
            i = min;
        }
        set_index(h, i);
    }

    fn set_next(&self, h: &[Slot]) {
        let next = h.first().map_or(NONE, |s| nanos(s.when));
        // SeqCst: sysmon's store of its wake-up time and this store are
        // read crosswise (checktimers.rs).
        self.next.store(next, Ordering::SeqCst);
    }
}

fn set_index(h: &[Slot], i: usize) {
    if let What::Timer(t, _) = &h[i].what {
        t.index.store(i, Ordering::Relaxed);
    }
}

impl TimerInner {
    fn run_lock(&self) -> MutexGuard<'_, Arming> {
        self.run.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Ends the current arming: takes the timer off its heap (or cancels
    /// a popped firing); returns whether it was pending (armed, or due
    /// with its firing not run: Go 1.23 runs such a lazy timer and drains
    /// its value, with the same answer). With the run lock held, and the
    /// heap's if `a.heaped`.
    fn disarm(&self, a: &mut Arming, h: Option<&mut Vec<Slot>>) -> bool {
        self.seq.fetch_add(1, Ordering::Relaxed);
        self.lazy_when.store(NONE, Ordering::Relaxed);
        if let Some(h) = h {
            let i = self.index.load(Ordering::Relaxed);
            if i != NOT_HEAPED {
                self.heap.remove(h, i);
            } else {
                self.popped.store(false, Ordering::Relaxed);
            }
        }
        a.heaped = false;
        a.when.take().is_some()
    }

    /// `disarm`, taking the heap lock only if the timer is on its heap.
    fn disarm_locking(&self, a: &mut Arming) -> bool {
        if a.heaped {
            let mut h = self.heap.lock();
            self.disarm(a, Some(&mut h))
        } else {
            self.disarm(a, None)
        }
    }

    /// Puts the armed timer on its heap (run lock held, not heaped).
    fn push(self: &Arc<Self>, a: &mut Arming, when: Instant) {
        let seq = self.seq.load(Ordering::Relaxed);
        let mut h = self.heap.lock();
        let (first, swept) = self.heap.push(&mut h, when, What::Timer(self.clone(), seq));
        drop(h);
        drop(swept);
        a.heaped = true;
        self.lazy_when.store(NONE, Ordering::Relaxed);
        if first {
            (self.heap.kick)(nanos(when));
        }
    }

    /// Arms a periodic timer's next tick, or ends a one-shot's arming,
    /// after a firing (run lock held, off the heap).
    fn rearm(self: &Arc<Self>, a: &mut Arming, keep: bool, now: Instant) {
        let period = self.period.load(Ordering::Relaxed);
        // The next tick after now (missed ticks are skipped, as Go's ticker
        // does); a period past what `Instant` holds: no next tick.
        let next = if keep && period != 0 {
            now.checked_add(Duration::from_nanos(period))
        } else {
            None
        };
        a.when = next;
        match next {
            Some(when) if !self.lazy || a.blocked > 0 => self.push(a, when),
            Some(when) => self.lazy_when.store(nanos(when), Ordering::Relaxed),
            None => {}
        }
        self.settle(a);
    }

    /// Publishes whether the timer is idle (see the invariants), at the
    /// end of a change made under the run lock.
    fn settle(&self, a: &Arming) {
        self.idle
            .store(a.when.is_none() && !a.heaped, Ordering::Release);
    }

    /// Fires a lazy timer that is due and off its heap, here and now
    /// (Go's `maybeRunChan`). Run lock held.
    fn run_lazy(self: &Arc<Self>, a: &mut Arming, now: Instant) {
        if a.heaped || a.when.is_none_or(|w| w > now) {
            return;
        }
        let keep = (self.f)(&Fire { spawn: None });
        self.rearm(a, keep, now);
    }

    fn fire(self: Arc<Self>, seq: u64, now: Instant, fire: &Fire<'_>) {
        let mut a = self.run_lock();
        {
            let _h = self.heap.lock();
            if self.seq.load(Ordering::Relaxed) != seq || !self.popped.load(Ordering::Relaxed) {
                return; // stopped or reset since it was popped
            }
            self.popped.store(false, Ordering::Relaxed);
        }
        a.heaped = false;
        let keep = (self.f)(fire);
        self.rearm(&mut a, keep, now);
    }
}

/// A timer of the runtime (the layer under `gort::time`): runs its
/// callback when it expires, on a scheduler thread.
///
/// The callback must not block (it runs where the scheduler runs timers;
/// a channel `try_send` or `Fire::go` is what it is for). It runs with
/// the timer's run lock held: once [`stop`](Timer::stop) or
/// [`reset`](Timer::reset) returns, no firing of an earlier arming is
/// running or will run. Dropping the handle stops the timer, unless it
/// was [`detach`](Timer::detach)ed.
///
/// A timer made on a goroutine lives on its runtime's heap; one made on
/// a plain thread on a process-wide heap with its own thread.
pub struct Timer {
    inner: Option<Arc<TimerInner>>,
}

impl Timer {
    /// A stopped timer on `heap` (the public constructor, `Timer::new`,
    /// is the park tier's: it picks the heap).
    pub(crate) fn on(
        heap: Arc<Timers>,
        lazy: bool,
        f: impl Fn(&Fire<'_>) -> bool + Send + Sync + 'static,
    ) -> Timer {
        Timer {
            inner: Some(Arc::new(TimerInner {
                heap,
                run: Mutex::new(Arming {
                    when: None,
                    heaped: false,
                    blocked: 0,
                }),
                index: AtomicUsize::new(NOT_HEAPED),
                seq: AtomicU64::new(0),
                popped: AtomicBool::new(false),
                period: AtomicU64::new(0),
                lazy,
                lazy_when: AtomicU64::new(NONE),
                idle: AtomicBool::new(true),
                f,
            })),
        }
    }

    fn inner(&self) -> &Arc<TimerInner> {
        self.inner
            .as_ref()
            .expect("only detach takes it, consuming the handle")
    }

    /// Arms the timer to fire at `when` (and every `period` after, if
    /// given and not zero). Returns whether it was pending (armed, or due
    /// with its firing not yet run, which this cancels).
    pub fn reset(&self, when: Instant, period: Option<Duration>) -> bool {
        self.reset_then(when, period, || false)
    }

    /// [`reset`](Timer::reset), then `then` before any firing of the new
    /// arming can run (under the run lock: Go 1.23 drains a timer's
    /// channel there); returns whether it was pending or `then` returned
    /// true. `then` must not block or reach a preemption point
    /// (`preempt_point`): the scheduler takes the run lock on g0 and in
    /// sysmon to fire the timer, so a goroutine that yielded holding it
    /// could stop its own M.
    pub fn reset_then(
        &self,
        when: Instant,
        period: Option<Duration>,
        then: impl FnOnce() -> bool,
    ) -> bool {
        let t = self.inner();
        let mut a = t.run_lock();
        let pending = t.disarm_locking(&mut a);
        let period = period.map_or(0, |p| p.as_nanos().min(u64::MAX as u128) as u64);
        t.period.store(period, Ordering::Relaxed);
        a.when = Some(when);
        if !t.lazy || a.blocked > 0 {
            t.push(&mut a, when);
        } else {
            t.lazy_when.store(nanos(when), Ordering::Relaxed);
        }
        t.settle(&a);
        then() || pending
    }

    /// Stops the timer. Returns whether it was pending.
    pub fn stop(&self) -> bool {
        self.stop_then(|| false)
    }

    /// [`stop`](Timer::stop), then `then` with no firing running (under
    /// the run lock); returns whether it was pending or `then` returned
    /// true. `then` must not block or reach a preemption point (see
    /// `reset_then`).
    pub fn stop_then(&self, then: impl FnOnce() -> bool) -> bool {
        let t = self.inner();
        let mut a = t.run_lock();
        let pending = t.disarm_locking(&mut a);
        t.settle(&a);
        then() || pending
    }

    /// For a lazy timer (`new_lazy`): if its arming is due and it is off
    /// its heap, fires it here and now (Go's `maybeRunChan`). A receiver
    /// calls it before looking at the channel without blocking, so that
    /// an expired timer's value is there. A load and a compare when the
    /// timer is not due.
    #[inline]
    pub fn poll(&self) {
        let t = self.inner();
        let when = t.lazy_when.load(Ordering::Relaxed);
        if when != NONE && when <= nanos(Instant::now()) {
            t.run_lazy(&mut t.run_lock(), Instant::now());
        }
    }

    /// A receiver is about to block on a lazy timer's channel: the timer
    /// goes on its heap (firing it here first if it is due), and stays
    /// there until the last such receiver drops the guard (Go's
    /// `blockTimerChan` and `unblockTimerChan`). Blocking with the guard
    /// held can never wait for a timer that no heap will fire, and
    /// checkdead sees the timer.
    pub fn block(&self) -> Blocked {
        let t = self.inner();
        let mut a = t.run_lock();
        a.blocked += 1;
        if t.lazy {
            t.run_lazy(&mut a, Instant::now());
            if let (Some(when), false) = (a.when, a.heaped) {
                t.push(&mut a, when);
            }
        }
        Blocked { t: t.clone() }
    }

    /// Lets the timer run without a handle: a one-shot timer is freed once
    /// it fired, a periodic one once its callback returns false.
    pub fn detach(mut self) {
        self.inner = None;
    }
}

/// A receiver blocked on a lazy timer's channel ([`Timer::block`]);
/// dropping it unblocks, and the timer leaves its heap with the last one.
/// It holds the timer (not a borrow: a `select!` arm keeps it, and must
/// not borrow what the arms' bodies may move).
#[must_use = "the timer stays on its heap only while this guard lives"]
pub struct Blocked {
    t: Arc<TimerInner>,
}

impl Drop for Blocked {
    fn drop(&mut self) {
        let t = &self.t;
        let mut a = t.run_lock();
        a.blocked -= 1;
        if a.blocked > 0 || !t.lazy || !a.heaped {
            return;
        }
        let mut h = t.heap.lock();
        let i = t.index.load(Ordering::Relaxed);
        if i == NOT_HEAPED {
            return; // popped: its firing runs once we unlock
        }
        t.heap.remove(&mut h, i);
        drop(h);
        a.heaped = false;
        if let Some(when) = a.when {
            t.lazy_when.store(nanos(when), Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocked").finish_non_exhaustive()
    }
}

impl Drop for Timer {
    /// Dropping stops the timer, so that a heap never keeps a timer
    /// nobody holds. An idle timer (stopped, fired, or never armed) has
    /// nothing to stop: it is freed without a lock. Once `drop` returns,
    /// no callback is running or will run, as after `stop` (a channel's
    /// timer sends through a pointer that relies on it: gort-sync's
    /// time.rs).
    fn drop(&mut self) {
        let Some(t) = &self.inner else { return };
        if t.idle.load(Ordering::Acquire) {
            return;
        }
        self.stop();
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

/// Slots a heap keeps room for however empty it gets.
const KEEP_SLOTS: usize = 64;

/// Halves the heap's allocation once it is three quarters empty, so that
/// a burst of timers (100,000 made, then stopped) does not keep its peak
/// memory for the runtime's life; amortized O(1), as the growth is.
/// `tests/time_memory.rs` in gort-sync measures it.
fn give_back(h: &mut Vec<Slot>) {
    let cap = h.capacity();
    if cap > KEEP_SLOTS && h.len() < cap / 4 {
        h.shrink_to((cap / 2).max(KEEP_SLOTS));
    }
}

// ---- the process-wide heap for plain threads ---------------------------------

struct Fallback {
    timers: Arc<Timers>,
    note: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

static FALLBACK: OnceLock<Fallback> = OnceLock::new();

/// Whether the process-wide heap's thread runs with nothing to fire: it
/// cannot wake a goroutine then, so it is no outside thread that could end
/// a deadlock (outside.rs). With a timer pending it is one: a goroutine
/// may be blocked on that timer's channel.
pub(crate) fn fallback_thread_idle() -> bool {
    FALLBACK.get().is_some_and(|f| f.timers.is_idle())
}

/// The process-wide heap for timers made on plain threads, and its thread
/// (started on first use).
pub(crate) fn fallback() -> Arc<Timers> {
    let f = FALLBACK.get_or_init(|| {
        let note = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let kick_note = note.clone();
        let timers = Timers::new(move |_| {
            let (m, cv) = &*kick_note;
            *m.lock().unwrap_or_else(PoisonError::into_inner) = true;
            cv.notify_one();
        });
        let (t, n) = (timers.clone(), note.clone());
        std::thread::Builder::new()
            .name("gort-timers".into())
            .spawn(move || loop {
                t.run_due(Instant::now(), None);
                let (m, cv) = &*n;
                let mut kicked = m.lock().unwrap_or_else(PoisonError::into_inner);
                if !*kicked {
                    kicked = match t.next_when() {
                        Some(when) => {
                            let d = when.saturating_duration_since(Instant::now());
                            cv.wait_timeout(kicked, d)
                                .unwrap_or_else(PoisonError::into_inner)
                                .0
                        }
                        None => cv.wait(kicked).unwrap_or_else(PoisonError::into_inner),
                    };
                }
                *kicked = false;
            })
            .expect("gort: cannot start the timer thread for plain threads");
        Fallback { timers, note }
    });
    let _ = &f.note;
    f.timers.clone()
}
