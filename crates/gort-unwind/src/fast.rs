//! [`Panic::resume`](crate::Panic::resume) without the unwinder, when the
//! unwinder would run nothing.
//!
//! Raising a panic again costs the platform unwinder's two passes over
//! every frame up to the catch (libgcc: about 200 ns per frame on the
//! project's machine, 1.5-2 µs for the frames of `cgo::call` inside a
//! `recover`). Often nothing in those frames needs the unwinder: no value
//! with a destructor is live at the call sites, no `catch_unwind` is
//! pending. Then unwinding them and deallocating them are the same thing,
//! and a jump does it:
//!
//! - [`recover_scoped`] (what [`recover`](crate::recover) runs) calls its
//!   closure through `gort_arch::on_stack_resumable` on the current stack,
//!   a few hundred bytes down, so its caller stays resumable while the
//!   closure runs, and it leaves the address of its [`Scope`] at a fixed
//!   place above the trampoline's frame.
//! - [`innermost_scope`] walks the stack from `Panic::resume` up with the
//!   frames' call-frame information (`.eh_frame`), as the unwinder's first
//!   pass does, and stops at the innermost `recover` scope. It asks each
//!   frame's exception table (LSDA) whether the call site the frame is
//!   suspended at has a landing pad. Only if none has, it returns the
//!   scope; anything it does not understand (a frame without call-frame
//!   information, a CFA rule other than register plus offset, a signal
//!   frame, a walk deeper than 64 frames, a library unloaded since the
//!   cache was filled) makes it return `None`, and the panic is raised
//!   with `resume_unwind` as before.
//! - [`jump`] moves the panic into the scope and switches to it: the
//!   `recover` returns `Err(panic)` as if its catch had caught it.
//!
//! What the walk learns about a return address (how to find the caller's
//! frame from it, and whether its call site has a landing pad) depends on
//! nothing but the code, so it is cached per thread: after the first
//! resume from a call site, a walk is a few loads per frame. See
//! docs/unwind.md ("Resuming without the unwinder") for why skipping the
//! frames this way is sound.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::mem::{ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};

use gort_arch::{current_sp, on_stack_resumable, switch, Context, STACK_ALIGN};

use crate::fatal::fatal;
use crate::Panic;

/// How the trampoline call of [`recover_scoped`] ended: distinct words.
const RETURNED: usize = 0x7265_7421;
const PANICKED: usize = 0x7061_6e21;
const JUMPED: usize = 0x6a6d_7021;

/// Mixed with a scope's address in `Scope::magic`.
const MAGIC: usize = 0x9e37_79b9;

/// Bytes between [`recover_scoped`]'s stack pointer and the top it hands
/// to the trampoline: room for the trampoline's frame (64 bytes on x86_64,
/// 176 on aarch64, under 80 on x86 with its pushed arguments) and above it,
/// at the top, the slot with the scope's address.
const GAP: usize = 256;

/// A walk deeper than this gives up (the panic is raised as before).
const MAX_FRAMES: usize = 64;

/// A walk whose frames reach further than this above its start gives up:
/// call-frame information that points off the stack.
const MAX_SPAN: usize = 1 << 30;

/// A `recover` in progress: lives in [`recover_scoped`]'s frame while the
/// closure runs.
///
/// Must hold: `magic` is `MAGIC ^ (its own address)`; `resume` holds the
/// suspended caller of the trampoline from the trampoline's first
/// instruction until the call returns; `body` is `body::<F, T>` for the
/// `Call<F, T>` that `call` points to; `panic` is `Some` only when the
/// trampoline call ends with `PANICKED` or `JUMPED`.
#[repr(C)]
pub(crate) struct Scope {
    magic: usize,
    /// The top handed to the trampoline; the trampoline writes the
    /// scope's address there.
    top: *mut usize,
    /// `recover_scoped`, suspended by `on_stack_resumable`.
    resume: Context,
    /// Runs the closure: `body::<F, T>`.
    body: unsafe fn(*mut Scope),
    /// The `Call<F, T>` in `recover_scoped`'s frame.
    call: *mut (),
    panic: Option<Panic>,
}

/// The closure and a slot for its value.
struct Call<F, T> {
    f: ManuallyDrop<F>,
    out: MaybeUninit<T>,
}

/// Runs `f` under a catch, with the caller resumable by [`jump`]: `Ok`
/// with its value, or `Err` with its panic (caught by the catch, or handed
/// over by a `Panic::resume` that [`innermost_scope`] found this scope
/// for). Not a quiet scope by itself.
pub(crate) fn recover_scoped<F: FnOnce() -> T, T>(f: F) -> Result<T, Panic> {
    let mut call = Call::<F, T> {
        f: ManuallyDrop::new(f),
        out: MaybeUninit::uninit(),
    };
    let mut scope = Scope {
        magic: 0,
        top: std::ptr::null_mut(),
        resume: Context::empty(),
        body: body::<F, T>,
        call: (&raw mut call).cast(),
        panic: None,
    };
    let sp = &raw mut scope;
    scope.magic = MAGIC ^ sp as usize;
    // Below this frame's stack pointer (locals live above it, and it stays
    // put in a function's body) by more than the trampoline's own frame.
    let top = (current_sp() - GAP) & !(STACK_ALIGN - 1);
    scope.top = top as *mut usize;
    // SAFETY: everything below this frame's stack pointer is free stack
    // (the closure runs there as any callee would, and `top` leaves room
    // for the trampoline's frame above it); `scope.resume` stays in this
    // frame until the call returns; only `jump` switches to it, once,
    // from a frame of this same execution below the trampoline (found by
    // walking this stack), so on the stack this call runs on. `tramp`
    // does not unwind: it catches everything.
    let how =
        unsafe { on_stack_resumable(top as *mut u8, tramp, sp as usize, &raw mut scope.resume) };
    match how {
        // SAFETY: body wrote the value before returning normally.
        RETURNED => Ok(unsafe { call.out.assume_init_read() }),
        PANICKED | JUMPED => Err(scope
            .panic
            .take()
            .unwrap_or_else(|| fatal(format_args!("recover: ended as panicked without a panic")))),
        other => fatal(format_args!(
            "recover: ended with an unknown value {other:#x}"
        )),
    }
}

/// The trampoline's callee: marks the scope's slot, runs the closure under
/// a catch. Not generic, so the walk knows it by address.
unsafe extern "C" fn tramp(arg: usize) -> usize {
    let scope = arg as *mut Scope;
    // SAFETY: `arg` is the scope in recover_scoped's frame, alive until
    // this call returns there; `top` is in the free gap between this
    // frame's caller (the trampoline) and this frame, above this frame's
    // stack pointer, so nothing else writes it while this runs.
    unsafe { (*scope).top.write(arg) };
    // SAFETY: as above; `body` matches `call` (Scope's invariant).
    match catch_unwind(AssertUnwindSafe(|| unsafe { ((*scope).body)(scope) })) {
        Ok(()) => RETURNED,
        Err(payload) => {
            // SAFETY: as above.
            unsafe { (*scope).panic = Some(Panic::caught(payload)) };
            PANICKED
        }
    }
}

/// Runs the closure and stores its value. Called only by [`tramp`],
/// through a pointer (never inlined there), so that the walk can tell the
/// closure's frames (this one and below) from the catch's (above).
///
/// # Safety
/// `scope.call` is a `Call<F, T>` whose closure was not taken.
unsafe fn body<F: FnOnce() -> T, T>(scope: *mut Scope) {
    // SAFETY: the caller's contract; `f` is taken exactly once, here.
    let call = unsafe { &mut *(*scope).call.cast::<Call<F, T>>() };
    // SAFETY: as above.
    let f = unsafe { ManuallyDrop::take(&mut call.f) };
    let v = f();
    call.out.write(v);
}

/// Ends the scope's trampoline call with `panic`, abandoning every frame
/// below the scope's caller.
///
/// # Safety
/// `scope` was returned by [`innermost_scope`] in a frame of this
/// execution that is still live (the caller of `innermost_scope`), and
/// the caller holds nothing with a destructor (`panic` moves in here).
pub(crate) unsafe fn jump(scope: *mut Scope, panic: Panic) -> ! {
    // SAFETY: the scope is live (found on this stack above the caller) and
    // its caller is suspended in on_stack_resumable; nothing in the
    // abandoned frames needs to run (innermost_scope checked every one),
    // and this frame owns nothing once the panic has moved.
    unsafe {
        (*scope).panic = Some(panic);
        let to = (*scope).resume.take();
        let _ = switch(to, JUMPED);
    }
    fatal(format_args!("an abandoned Panic::resume was resumed"))
}

/// The innermost `recover` scope above the caller of `Panic::resume`, if
/// every frame between them would run nothing when unwound. Must be called
/// directly by `Panic::resume` (checked: the walk expects that frame).
#[inline(never)]
pub(crate) fn innermost_scope() -> Option<*mut Scope> {
    // A panic unwinding on this thread: the caller is a destructor (or
    // code it calls), and its frames sit on top of the unwinder's.
    if std::thread::panicking() {
        return None;
    }
    let here = arch::here();
    CACHE
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            c.check_generation();
            // SAFETY: `here` is this frame's state, and this frame is live
            // until the walk returns.
            unsafe { walk(&mut c, here) }
        })
        .ok()
        .flatten()
}

/// A frame's registers, as far as the walk tracks them.
#[derive(Clone, Copy)]
struct Regs {
    pc: usize,
    sp: usize,
    /// The frame pointer (rbp, x29, ebp); None once a frame's rule for it
    /// was not understood.
    fp: Option<usize>,
}

/// Walks from the frame that `here` describes.
///
/// # Safety
/// `here` holds the pc, stack pointer and frame pointer of a live frame
/// on the current stack (the walk reads the stack above it).
unsafe fn walk(c: &mut Cache, here: Regs) -> Option<*mut Scope> {
    let resume_fn = Panic::resume as fn(Panic) -> ! as usize;
    let tramp_fn = tramp as unsafe extern "C" fn(usize) -> usize as usize;
    let start = here.sp;
    let mut r = here;
    // (function start, runs nothing when unwound) of frames 2.. .
    let mut frames = [(0usize, false); MAX_FRAMES];
    for depth in 0..MAX_FRAMES {
        let rule = c.rule(r.pc)?;
        let cfa = rule.cfa(&r)?;
        if cfa <= r.sp || cfa - start > MAX_SPAN {
            return None;
        }
        match depth {
            0 => {}
            1 if rule.func != resume_fn => return None,
            1 => {}
            _ if rule.func == tramp_fn => {
                // SAFETY: this frame is a live `tramp` (its code is where
                // the return address points, and it is on this stack).
                return unsafe { scope_of(cfa, &frames[2..depth]) };
            }
            _ => frames[depth] = (rule.func, rule.pof),
        }
        // SAFETY: the frame's call-frame information says where its
        // caller's return address and frame pointer are saved: in this
        // frame, on this stack, live (the caller's contract).
        r = unsafe { rule.caller(&r, cfa) };
        if r.pc == 0 {
            return None;
        }
    }
    None
}

/// The scope of the `tramp` frame whose CFA is `cfa`, if every frame from
/// the walk's start up to its `body` frame (inclusive) runs nothing when
/// unwound.
///
/// # Safety
/// A live `tramp` frame has this CFA.
unsafe fn scope_of(cfa: usize, frames: &[(usize, bool)]) -> Option<*mut Scope> {
    // SAFETY: tramp wrote its scope's address there first thing (at the
    // top it was given, arch::SLOT_ABOVE_CFA above its CFA), and the slot
    // stays untouched while tramp is live.
    let scope = unsafe { ((cfa + arch::SLOT_ABOVE_CFA) as *const usize).read() } as *mut Scope;
    if scope.is_null() || (scope as usize) <= cfa || (scope as usize) - cfa > MAX_SPAN {
        return None;
    }
    // SAFETY: the slot holds a live scope's address (checked against its
    // magic before use, in case SLOT_ABOVE_CFA is wrong for this target).
    let (magic, top, body) = unsafe { ((*scope).magic, (*scope).top, (*scope).body) };
    if magic != MAGIC ^ scope as usize || top as usize != cfa + arch::SLOT_ABOVE_CFA {
        return None;
    }
    // Frames above `body` and below `tramp` are the catch's own (std's
    // catch_unwind, the closure that calls `body`): what `jump` replaces.
    let i = frames.iter().rposition(|f| f.0 == body as usize)?;
    frames[..=i].iter().all(|f| f.1).then_some(scope)
}

/// What the walk knows about a return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rule {
    /// Start of the function (its FDE's initial address).
    func: usize,
    /// The CFA is the frame pointer (else the stack pointer) plus this.
    cfa_fp: bool,
    cfa_off: isize,
    /// The return address is saved at CFA plus this.
    ra_off: isize,
    fp: FpRule,
    /// Unwinding through this call site runs nothing: no landing pad.
    pof: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FpRule {
    /// Not changed by the frame.
    Same,
    /// Saved at CFA plus this.
    At(isize),
    /// Not known.
    Lost,
}

impl Rule {
    fn cfa(&self, r: &Regs) -> Option<usize> {
        let base = if self.cfa_fp { r.fp? } else { r.sp };
        Some(base.wrapping_add_signed(self.cfa_off))
    }

    /// The caller's registers.
    ///
    /// # Safety
    /// `r` is a live frame on this stack whose code this rule describes,
    /// and `cfa` its CFA.
    unsafe fn caller(&self, r: &Regs, cfa: usize) -> Regs {
        // SAFETY: the caller's contract: the saved slots are in the frame.
        let read = |off: isize| unsafe { (cfa.wrapping_add_signed(off) as *const usize).read() };
        Regs {
            pc: read(self.ra_off),
            sp: cfa,
            fp: match self.fp {
                FpRule::Same => r.fp,
                FpRule::At(off) => Some(read(off)),
                FpRule::Lost => None,
            },
        }
    }
}

/// Rules by return address, per thread (a walk never switches stacks, so
/// the thread does not change under it).
struct Cache {
    /// Direct-mapped; empty until first use. `(key, rule)`, key 0: empty.
    entries: Vec<(usize, Option<Rule>)>,
    /// glibc's count of objects unloaded when the entries were made.
    subs: u64,
}

/// Entries (56 bytes each on 64-bit targets): 14 KiB per thread that ever
/// resumes a panic, plenty for the few return addresses a walk visits.
const CACHE_SIZE: usize = 256;

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { entries: Vec::new(), subs: 0 })
    };
}

impl Cache {
    /// Empties the cache if a shared object was unloaded since it was
    /// filled: its code's addresses may now hold other code.
    fn check_generation(&mut self) {
        let subs = loaded_objects_removed();
        if subs != self.subs {
            self.entries.clear();
            self.subs = subs;
        }
    }

    fn rule(&mut self, pc: usize) -> Option<Rule> {
        if self.entries.is_empty() {
            self.entries.resize(CACHE_SIZE, (0, None));
        }
        let i = ((pc >> 2) ^ (pc >> 10)) % CACHE_SIZE;
        let e = &mut self.entries[i];
        if e.0 != pc {
            *e = (pc, compute_rule(pc));
        }
        e.1
    }
}

/// glibc's count of objects removed from the process (dl_iterate_phdr's
/// `dlpi_subs`).
fn loaded_objects_removed() -> u64 {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        size: usize,
        data: *mut c_void,
    ) -> c_int {
        if size >= std::mem::offset_of!(libc::dl_phdr_info, dlpi_subs) + 8 {
            // SAFETY: dl_iterate_phdr hands a valid info of `size` bytes
            // and our u64.
            unsafe { *data.cast::<u64>() = (*info).dlpi_subs };
        }
        1
    }
    let mut subs = 0u64;
    // SAFETY: the callback only reads the info it is given.
    unsafe { libc::dl_iterate_phdr(Some(first), (&raw mut subs).cast()) };
    subs
}

/// The loaded object that holds an address: its load bias and program
/// headers.
struct Object {
    pc: usize,
    base: usize,
    phdrs: &'static [Phdr],
}

#[cfg(target_pointer_width = "64")]
type Phdr = libc::Elf64_Phdr;
#[cfg(target_pointer_width = "32")]
type Phdr = libc::Elf32_Phdr;

impl Object {
    fn containing(pc: usize) -> Option<Object> {
        unsafe extern "C" fn visit(
            info: *mut libc::dl_phdr_info,
            _: usize,
            data: *mut c_void,
        ) -> c_int {
            // SAFETY: dl_iterate_phdr hands a valid info; data is our
            // Object.
            let (info, obj) = unsafe { (&*info, &mut *data.cast::<Object>()) };
            if info.dlpi_phdr.is_null() {
                return 0;
            }
            // SAFETY: the object's program headers, mapped while it is
            // loaded; the object holds code on this stack, so it stays.
            let phdrs =
                unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
            let base = info.dlpi_addr as usize;
            let hit = phdrs.iter().any(|p| {
                let start = base.wrapping_add(p.p_vaddr as usize);
                p.p_type == libc::PT_LOAD && obj.pc >= start && obj.pc - start < p.p_memsz as usize
            });
            if hit {
                obj.base = base;
                obj.phdrs = phdrs;
                return 1;
            }
            0
        }
        let mut obj = Object {
            pc,
            base: 0,
            phdrs: &[],
        };
        // SAFETY: the callback only reads the infos and writes `obj`.
        unsafe { libc::dl_iterate_phdr(Some(visit), (&raw mut obj).cast()) };
        (!obj.phdrs.is_empty()).then_some(obj)
    }

    /// The end of the loaded segment that holds `addr`.
    fn segment_end(&self, addr: usize) -> Option<usize> {
        self.phdrs.iter().find_map(|p| {
            let start = self.base.wrapping_add(p.p_vaddr as usize);
            (p.p_type == libc::PT_LOAD && addr >= start && addr - start < p.p_memsz as usize)
                .then(|| start + p.p_memsz as usize)
        })
    }
}

/// Reads the rule for the return address `pc` from its object's
/// `.eh_frame` (through `.eh_frame_hdr`'s search table).
#[cold]
#[inline(never)]
fn compute_rule(pc: usize) -> Option<Rule> {
    use gimli::{
        BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Pointer, Register, RegisterRule,
        UnwindSection,
    };

    // The call instruction (the return address is past it).
    let addr = pc.checked_sub(1)?;
    let obj = Object::containing(addr)?;
    let hdr_ph = obj
        .phdrs
        .iter()
        .find(|p| p.p_type == libc::PT_GNU_EH_FRAME)?;
    let hdr_addr = obj.base.wrapping_add(hdr_ph.p_vaddr as usize);
    // SAFETY: the PT_GNU_EH_FRAME segment of a loaded object: mapped,
    // read-only, for as long as the object is loaded.
    let hdr_bytes =
        unsafe { std::slice::from_raw_parts(hdr_addr as *const u8, hdr_ph.p_memsz as usize) };
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_addr as u64);
    let hdr = EhFrameHdr::new(hdr_bytes, NativeEndian)
        .parse(&bases, std::mem::size_of::<usize>() as u8)
        .ok()?;
    let Pointer::Direct(eh_frame_addr) = hdr.eh_frame_ptr() else {
        return None;
    };
    let eh_frame_addr = eh_frame_addr as usize;
    let eh_frame_end = obj.segment_end(eh_frame_addr)?;
    // SAFETY: .eh_frame lies in a loaded segment of the object, which
    // ends at eh_frame_end (the section's own length is not recorded;
    // the parser stops at its terminator or at the FDE it wants).
    let eh_frame_bytes = unsafe {
        std::slice::from_raw_parts(eh_frame_addr as *const u8, eh_frame_end - eh_frame_addr)
    };
    let mut eh_frame = EhFrame::new(eh_frame_bytes, NativeEndian);
    eh_frame.set_address_size(std::mem::size_of::<usize>() as u8);
    let bases = bases.set_eh_frame(eh_frame_addr as u64);
    let table = hdr.table()?;
    let fde = table
        .fde_for_address(&eh_frame, &bases, addr as u64, EhFrame::cie_from_offset)
        .ok()?;
    if fde.cie().is_signal_trampoline() {
        return None;
    }
    let mut ctx = Box::new(gimli::UnwindContext::new());
    let row = fde
        .unwind_info_for_address(&eh_frame, &bases, &mut ctx, addr as u64)
        .ok()?;
    let (cfa_fp, cfa_off) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } if register == Register(arch::SP) => {
            (false, offset)
        }
        CfaRule::RegisterAndOffset { register, offset } if register == Register(arch::FP) => {
            (true, offset)
        }
        _ => return None,
    };
    let ra_off = match row.register(Register(arch::RA)) {
        Some(RegisterRule::Offset(off)) => off,
        _ => return None,
    };
    if arch::UNSUPPORTED
        .iter()
        .any(|&r| row.register(Register(r)).is_some())
    {
        return None;
    }
    let fp = match row.register(Register(arch::FP)) {
        None | Some(RegisterRule::SameValue) => FpRule::Same,
        Some(RegisterRule::Offset(off)) => FpRule::At(isize::try_from(off).ok()?),
        Some(_) => FpRule::Lost,
    };
    let func = usize::try_from(fde.initial_address()).ok()?;
    let pof = match fde.lsda() {
        None => true,
        Some(Pointer::Direct(lsda)) => {
            // SAFETY: the FDE's LSDA, in the same loaded object.
            unsafe { call_site_runs_nothing(lsda as usize as *const u8, func, addr) }
        }
        Some(Pointer::Indirect(_)) => false,
    };
    Some(Rule {
        func,
        cfa_fp,
        cfa_off: isize::try_from(cfa_off).ok()?,
        ra_off: isize::try_from(ra_off).ok()?,
        fp,
        pof,
    })
}

/// Whether the exception table (LSDA, GCC's format, which rustc and
/// clang emit) gives the call site at `ip` no landing pad: the
/// personality routine then continues the unwind without running
/// anything in the frame. False for anything else: a landing pad (a
/// cleanup or a catch), `ip` missing from the table (rustc's personality
/// aborts there: a call that must not unwind), or an encoding this
/// reader does not know.
///
/// # Safety
/// `lsda` is a loaded LSDA for the function that starts at `func`.
unsafe fn call_site_runs_nothing(lsda: *const u8, func: usize, ip: usize) -> bool {
    const OMIT: u8 = 0xff;
    let mut r = Lsda(lsda);
    // SAFETY: reads within the LSDA (the caller's contract); a malformed
    // table is the compiler's bug, as for the personality routine.
    unsafe {
        if r.u8() != OMIT {
            // A landing-pad base other than the function start: rare.
            return false;
        }
        if r.u8() != OMIT {
            r.uleb();
        }
        let enc = r.u8();
        let len = r.uleb();
        let end = (r.0 as usize).saturating_add(len);
        while (r.0 as usize) < end {
            let (Some(start), Some(len), Some(lpad)) = (r.enc(enc), r.enc(enc), r.enc(enc)) else {
                return false;
            };
            r.uleb();
            let Some(start) = func.checked_add(start) else {
                return false;
            };
            if ip < start {
                return false;
            }
            if ip - start < len {
                return lpad == 0;
            }
        }
    }
    false
}

/// A reader over an LSDA in memory.
struct Lsda(*const u8);

impl Lsda {
    /// # Safety
    /// The next byte is in the table.
    unsafe fn u8(&mut self) -> u8 {
        // SAFETY: the caller's contract.
        unsafe {
            let b = self.0.read();
            self.0 = self.0.add(1);
            b
        }
    }

    /// # Safety
    /// A ULEB128 follows, in the table.
    unsafe fn uleb(&mut self) -> usize {
        let (mut v, mut shift) = (0usize, 0u32);
        loop {
            // SAFETY: the caller's contract.
            let b = unsafe { self.u8() };
            if shift < usize::BITS {
                v |= ((b & 0x7f) as usize) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return v;
            }
        }
    }

    /// A call-site field: an unsigned offset in encoding `enc`, with no
    /// application (pc-relative and the like are not used there).
    ///
    /// # Safety
    /// A value in that encoding follows, in the table.
    unsafe fn enc(&mut self, enc: u8) -> Option<usize> {
        // SAFETY: the caller's contract.
        unsafe {
            let mut fixed = |n: usize| {
                let mut b = [0u8; 8];
                std::ptr::copy_nonoverlapping(self.0, b.as_mut_ptr(), n);
                self.0 = self.0.add(n);
                u64::from_ne_bytes(b)
            };
            let v = match enc {
                0x01 => self.uleb() as u64,
                0x02 => fixed(2) & 0xffff,
                0x03 => fixed(4) & 0xffff_ffff,
                0x04 => fixed(8),
                0x00 => fixed(std::mem::size_of::<usize>()),
                _ => return None,
            };
            usize::try_from(v).ok()
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use super::Regs;

    /// DWARF numbers: rsp, rbp, the return address column.
    pub const SP: u16 = 7;
    pub const FP: u16 = 6;
    pub const RA: u16 = 16;
    /// Registers whose rules the walk does not model (none here).
    pub const UNSUPPORTED: &[u16] = &[];
    /// The trampoline calls `tramp` with rsp = top: its CFA is the top.
    pub const SLOT_ABOVE_CFA: usize = 0;

    /// This point's pc, stack pointer and frame pointer.
    #[inline(always)]
    pub fn here() -> Regs {
        let (pc, sp, fp): (usize, usize, usize);
        // SAFETY: reads registers only.
        unsafe {
            std::arch::asm!(
                "lea {pc}, [rip]",
                "mov {sp}, rsp",
                "mov {fp}, rbp",
                pc = out(reg) pc, sp = out(reg) sp, fp = out(reg) fp,
                options(nomem, nostack, preserves_flags),
            );
        }
        // The walk looks up pc - 1 as for a return address: still here.
        Regs {
            pc,
            sp,
            fp: Some(fp),
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::Regs;

    /// DWARF numbers: sp, x29, the return address column (x30).
    pub const SP: u16 = 31;
    pub const FP: u16 = 29;
    pub const RA: u16 = 30;
    /// RA_SIGN_STATE (pointer authentication of return addresses).
    pub const UNSUPPORTED: &[u16] = &[34];
    /// The trampoline calls `tramp` with sp = top: its CFA is the top.
    pub const SLOT_ABOVE_CFA: usize = 0;

    /// This point's pc, stack pointer and frame pointer.
    #[inline(always)]
    pub fn here() -> Regs {
        let (pc, sp, fp): (usize, usize, usize);
        // SAFETY: reads registers only.
        unsafe {
            std::arch::asm!(
                "adr {pc}, .",
                "mov {sp}, sp",
                "mov {fp}, x29",
                pc = out(reg) pc, sp = out(reg) sp, fp = out(reg) fp,
                options(nomem, nostack, preserves_flags),
            );
        }
        // pc is the adr itself: look-ups use pc - 1, so start one past.
        Regs {
            pc: pc + 4,
            sp,
            fp: Some(fp),
        }
    }
}

#[cfg(target_arch = "x86")]
mod arch {
    use super::Regs;

    /// DWARF numbers: esp, ebp, the return address column.
    pub const SP: u16 = 4;
    pub const FP: u16 = 5;
    pub const RA: u16 = 8;
    pub const UNSUPPORTED: &[u16] = &[];
    /// The trampoline pushes `arg` 16 bytes below the top and calls
    /// `tramp`: its CFA (esp before the call) is top - 16.
    pub const SLOT_ABOVE_CFA: usize = 16;

    /// This point's pc, stack pointer and frame pointer.
    #[inline(always)]
    pub fn here() -> Regs {
        let (pc, sp, fp): (usize, usize, usize);
        // SAFETY: a call to the next instruction and a pop: the stack is
        // back as it was; reads registers otherwise.
        unsafe {
            std::arch::asm!(
                "call 2f",
                "2:",
                "pop {pc}",
                "mov {sp}, esp",
                "mov {fp}, ebp",
                pc = out(reg) pc, sp = out(reg) sp, fp = out(reg) fp,
                options(preserves_flags),
            );
        }
        Regs {
            pc,
            sp,
            fp: Some(fp),
        }
    }
}

thread_local! {
    static JUMPS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts a `Panic::resume` that took the fast path, on this thread.
#[inline(never)]
pub(crate) fn count_jump() {
    JUMPS.with(|j| j.set(j.get() + 1));
}

/// How many `Panic::resume`s on this thread went straight to their
/// `recover` without the unwinder (for tests and benchmarks).
#[inline(never)]
pub fn jumps_on_this_thread() -> u64 {
    JUMPS.with(|j| j.get())
}
