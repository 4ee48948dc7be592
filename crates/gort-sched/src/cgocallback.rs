//! The scheduler's side of callbacks from C (Go's `cgocallbackg`,
//! `needm`, `dropm`): running a goroutine body on the thread that called
//! back, with that thread acting as its M's g0, and extra Ms for threads
//! the runtime did not create. The tier gort-cgo calls is cgocall.rs.
//!
//! A callback's goroutine (the one that called into C, or an extra M's
//! own G) is in syscall state when C calls back. `callback_loop` locks it
//! to the M *before* leaving syscall state, so getting a P cannot move it
//! to another thread; gets a P (its old one with one CAS, an idle one, or
//! by queueing and waiting for an M with a P to hand both over, as
//! `startlockedm` does); runs the body; and runs it again whenever it
//! parks or yields, until the body's `CallbackReturn` request. The fast
//! path (old P back at once, a body that does not park) is one switch to
//! the body and one back, with none of `execute`'s bookkeeping.
//!
//! An extra M counts in `mcount` while it is bound to a thread, so
//! checkdead sees a C thread in a callback as able to wake goroutines.

use crate::fatal::fatal;
use crate::g::{GRef, G};
use crate::m::M;
use crate::mcall::{leave_g, Request};
use crate::p::HeldP;
use crate::sched::Sched;
use crate::status::Status;
use gort_arch::Context;
use std::ptr::{self, NonNull};
use std::sync::atomic::Ordering;

impl Sched {
    /// An extra M for a thread the runtime did not create (Go's `needm`
    /// and `oneNewExtraM`): from the pool, else a new one with its own G
    /// and goroutine stack. No thread is started: the caller's thread is
    /// the M. It counts in `mcount` while bound, so checkdead sees it as
    /// able to wake goroutines.
    pub(crate) fn bind_extra_m(&self) -> Result<*mut M, gort_stack::StackError> {
        let pooled = self
            .extra_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let m = match pooled {
            Some(m) => m,
            None => {
                let stack = self.stacks.get()?;
                let mut g = Box::new(G::new((self as *const Sched).cast()));
                *g.stack.get_mut() = Some(stack);
                // One id for the life of the binding, as Go's extra-M G.
                g.id.set(self.goid.fetch_add(1, Ordering::Relaxed) + 1);
                let gp: *mut G = &mut *g;
                self.lock_allgs().push(g);
                let mut allm = self.lock_allm();
                let mut m = Box::new(M::new(allm.len() as u64, (self as *const Sched).cast()));
                m.extra = true;
                m.extra_g = gp;
                let mp: *mut M = &mut *m;
                allm.push(m);
                mp
            }
        };
        self.lock().mcount += 1;
        Ok(m)
    }

    /// The bound thread exits (Go's `dropm` at thread exit): the M goes
    /// back to the pool, and a P it left in syscall state is handed off.
    pub(crate) fn unbind_extra_m(&self, m: *mut M) {
        // SAFETY: m is an extra M bound to the calling thread, not in a
        // callback (its thread is exiting).
        let mr = unsafe { &*m };
        let oldp = mr.oldp.replace(ptr::null_mut());
        // SAFETY: Ps live as long as the Sched.
        if !oldp.is_null() && unsafe { (*oldp).status.try_retake() } {
            // SAFETY: winning the retake made the P ours.
            let oldp = unsafe { HeldP::claim(oldp) };
            oldp.status.set_running();
            self.handoffp(oldp);
        }
        self.lock().mcount -= 1;
        self.extra_ms
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(m);
    }

    /// The scheduling side of a callback from C (Go's `cgocallbackg` up to
    /// the body, and its scheduling while the body runs). Runs on this
    /// thread's system stack, below the C frames: `m` is this thread's M,
    /// `g` the goroutine that runs the body (the one that called into C,
    /// or the extra M's G), in syscall state; `body` is the body's fresh
    /// context on g's stack. Acts as g0 for `m` until the body is done:
    /// g is locked to m first (the callback rule, cgocall.rs: leaving syscall state must not
    /// move it), gets a P (its old one, an idle one, or by queueing and
    /// waiting for an M with a P to hand both over), runs, and is run again
    /// here whenever it parks or yields. Returns when the body has
    /// finished and g is back in syscall state with `incgo` set and the
    /// thread lock dropped (in that order, by g itself).
    ///
    /// The fast path, taken when the M gets its P back with one CAS and
    /// the body does not park: one switch to the body and one back, with
    /// none of `execute`'s bookkeeping. The caller has made g the running
    /// goroutine of this thread for it (current G and M, unwind state,
    /// running stack); they stay so. Returns false then. Otherwise (no P
    /// at once, or the body switched to g0 for anything but its return)
    /// this frame schedules the long way, as g0 does, and returns true:
    /// the thread's current goroutine, unwind state and running stack are
    /// g0's then, and the caller puts back what it needs.
    ///
    /// # Safety
    /// As above; `m` and `g` belong to this Sched and to this thread now.
    pub(crate) unsafe fn callback_loop(&self, m: *mut M, g: *mut G, body: Context) -> bool {
        // SAFETY: the caller's contract.
        let (mr, gr) = unsafe { (&*m, &*g) };
        crate::lockosthread::lock_m(m, g);
        gr.set_m(m);
        if !self.exit_syscall_fast(mr) {
            // SAFETY: forwarded.
            unsafe { self.callback_wait_for_p(m, g, body) };
            self.execute(m, GRef(NonNull::from(gr)), true);
            self.callback_schedule(m, g);
            return true;
        }
        // Syscall -> Running: only the goroutine's own M moves it (it is
        // in syscall state on this M, and locked to it).
        gr.owner_set_status(Status::Syscall, Status::Running);
        mr.incgo.store(false, Ordering::Relaxed);
        mr.ncallback
            .store(mr.ncallback.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // SAFETY: `body` is the body's fresh context; it receives this
        // frame's context as its g0 and switches back with a request.
        let (gctx, req) = unsafe { gort_arch::switch(body, m as usize) };
        // SAFETY: the goroutine passed a pointer to a Request on its own
        // stack, valid while it is suspended.
        let req = unsafe { &mut *(req as *mut Request<'_>) };
        if matches!(req, Request::CallbackReturn) {
            // The body's context is abandoned: it switched away for good.
            let _abandoned = gctx;
            return false;
        }
        // The body parked, yielded or waits for a P: from here on this
        // frame is g0 the long way, as in `execute` after its switch.
        // SAFETY: g is suspended; its context slot is ours. The thread's
        // own unwind state is g0's (the caller reinstalls g's after).
        unsafe {
            *gr.ctx.get() = gctx;
            leave_g(m, m, ptr::null());
        }
        let gref = GRef(NonNull::from(gr));
        if let Some(next) = self.handle_request(m, gref, req) {
            self.execute(m, next, true);
        }
        self.callback_schedule(m, g);
        true
    }

    /// A callback's goroutine found no P at once (its old one was taken):
    /// queue it as Go's exitsyscall0 does for a locked G, unless an idle P
    /// appeared meanwhile (checked under the same lock that Ms going idle
    /// take, so the G cannot be left queued with Ps idle), and wait until
    /// an M with a P hands both over (startlockedm).
    ///
    /// # Safety
    /// As `callback_loop`, before the body first runs.
    #[cold]
    pub(crate) unsafe fn callback_wait_for_p(&self, m: *mut M, g: *mut G, body: Context) {
        // SAFETY: the caller's contract.
        let (mr, gr) = unsafe { (&*m, &*g) };
        gr.set_status(Status::Runnable);
        let mut l = self.lock();
        if let Some(p) = self.pidle_get(&mut l) {
            drop(l);
            mr.acquirep(p);
        } else {
            l.runq.push_back(GRef(NonNull::from(gr)));
            self.runq_len.store(l.runq.len(), Ordering::Release);
            drop(l);
            if !self.stop_locked_m(m) {
                fatal("a callback from C waited for a P while its runtime ended");
            }
        }
        mr.incgo.store(false, Ordering::Relaxed);
        mr.ncallback
            .store(mr.ncallback.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // SAFETY: g is not running; its context slot is ours.
        unsafe { *gr.ctx.get() = body };
    }

    /// The long way of a callback's g0, after g's last switch to it was
    /// handled: until g's body returns, wait for g to be handed back with
    /// a P (it parked or yielded: this M runs nothing but g) and run it.
    #[cold]
    pub(crate) fn callback_schedule(&self, m: *mut M, g: *mut G) {
        // SAFETY: m is this thread's M, g its locked goroutine.
        let (mr, gr) = unsafe { (&*m, &*g) };
        while !mr.callback_returned.replace(false) {
            if !self.stop_locked_m(m) {
                fatal("a callback from C was blocked when its runtime ended");
            }
            self.execute(m, GRef(NonNull::from(gr)), true);
        }
        // The body's context is abandoned: it switched away for good.
        // SAFETY: as above.
        let _abandoned = unsafe { (*gr.ctx.get()).take() };
    }

    /// The run is over (or ending): no new callbacks should come here.
    #[inline]
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) || self.shutdown.load(Ordering::Acquire)
    }

    /// (calls into C made, callbacks run, Ms in C now, extra Ms made),
    /// over every M.
    pub(crate) fn cgo_counts(&self) -> (u64, u64, usize, usize) {
        let allm = self.lock_allm();
        allm.iter().fold((0, 0, 0, 0), |(c, b, n, x), m| {
            (
                c + m.ncgocall.load(Ordering::Relaxed),
                b + m.ncallback.load(Ordering::Relaxed),
                n + usize::from(m.incgo.load(Ordering::Relaxed)),
                x + usize::from(m.extra),
            )
        })
    }
}
