//! Frame walking with the call-frame information (`.eh_frame`) and the
//! exception tables (LSDA) of the loaded objects, cached per return
//! address: what [`fast`](crate::fast) (a `Panic::resume` that jumps to its
//! `recover`) and [`raise`](crate::raise) (a panic raised without the
//! platform unwinder's two passes) walk with.
//!
//! A [`Rule`] is everything a walk needs about one return address: how to
//! find the caller's registers (the CFA rule, where the return address and
//! the callee-saved registers are saved), and what unwinding through that
//! call site runs ([`Action`]: nothing, a cleanup, a catch, or something
//! this reader does not model). It depends on nothing but the code, so a
//! thread computes it once (gimli parses the FDE and runs its CFA program)
//! and then finds it in its [`Cache`] with a few loads. Anything the walk
//! does not understand (a CFA rule other than register plus offset, a
//! signal frame, a return address without call-frame information, a
//! personality routine other than Rust's) yields no rule or
//! [`Action::Unknown`], and the caller leaves the work to the platform
//! unwinder.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::ops::ControlFlow;

pub(crate) use arch::{here, N};

/// A walk deeper than this gives up (the caller leaves the work to the
/// unwinder).
pub(crate) const MAX_FRAMES: usize = 64;

/// A walk whose frames reach further than this above its start gives up:
/// call-frame information that points off the stack.
pub(crate) const MAX_SPAN: usize = 1 << 30;

/// Walks up the stack from `start`, calling `visit(depth, rule, regs,
/// cfa)` for each frame (`depth` 0 is `start`'s) until it breaks with the
/// walk's result. `None` when a frame has no rule the walk can follow,
/// when the CFAs stop growing or reach further than `MAX_SPAN` above the
/// start, at a zero return address, and past `MAX_FRAMES` frames.
///
/// # Safety
/// `start` holds the pc, the stack pointer and the known callee-saved
/// registers of a live frame on the current stack (the walk reads the
/// stack above it).
pub(crate) unsafe fn walk_frames<T>(
    c: &mut Cache,
    start: Regs,
    mut visit: impl FnMut(usize, &Rule, &Regs, usize) -> ControlFlow<Option<T>>,
) -> Option<T> {
    let mut r = start;
    for depth in 0..MAX_FRAMES {
        let rule = c.rule(r.pc)?;
        let cfa = rule.cfa(&r)?;
        if cfa <= r.sp || cfa - start.sp > MAX_SPAN {
            return None;
        }
        if let ControlFlow::Break(found) = visit(depth, &rule, &r, cfa) {
            return found;
        }
        // SAFETY: the frame's call-frame information says where its
        // caller's registers are saved: in this frame, on this stack, live
        // (the caller's contract).
        r = unsafe { rule.caller(&r, cfa) };
        if r.pc == 0 {
            return None;
        }
    }
    None
}

/// A frame's registers, as far as a walk tracks them: the pc, the stack
/// pointer (the CFA of the frame below), and the callee-saved registers of
/// the platform ABI (`arch::SAVED`).
///
/// Must hold: bit `i` of `known` is set only when `saved[i]` holds the
/// frame's value of register `arch::SAVED[i]`.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Regs {
    /// The callee-saved registers, in `arch::SAVED`'s order.
    pub saved: [usize; N],
    pub sp: usize,
    /// A return address (the look-up uses `pc - 1`, inside the call).
    pub pc: usize,
    /// Bit `i`: `saved[i]` is known.
    pub known: u32,
}

impl Regs {
    /// All callee-saved registers known.
    pub const ALL: u32 = (1 << N) - 1;

    /// A frame of which only the pc, stack pointer and frame pointer are
    /// known.
    fn at(pc: usize, sp: usize, fp: usize) -> Regs {
        let mut saved = [0; N];
        saved[arch::FP] = fp;
        Regs {
            saved,
            sp,
            pc,
            known: 1 << arch::FP,
        }
    }

    fn get(&self, i: usize) -> Option<usize> {
        (self.known & (1 << i) != 0).then(|| self.saved[i])
    }
}

/// What unwinding through a call site runs, as Rust's personality routine
/// (`rust_eh_personality`) decides it for a Rust panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing: no exception table, or no landing pad for the call site.
    None,
    /// A landing pad that runs destructors and resumes the unwind.
    Cleanup(usize),
    /// A landing pad that catches (`catch_unwind`).
    Catch(usize),
    /// Anything else: another language's personality routine, a call site
    /// missing from the table (the personality aborts), a filter, an
    /// encoding this reader does not know.
    Unknown,
}

/// Where a callee-saved register of the caller is: an offset from the CFA
/// (an `i16`, as every register save area is near its CFA), or one of two
/// sentinels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Saved(i16);

impl Saved {
    /// Not changed by the frame (also what an absent rule means for a
    /// callee-saved register, as for libgcc).
    const SAME: Saved = Saved(i16::MIN);
    /// Not recoverable by this walk.
    const LOST: Saved = Saved(i16::MIN + 1);
}

/// What the walk knows about a return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    /// Start of the function (its FDE's initial address).
    pub func: usize,
    /// The CFA is the frame pointer (else the stack pointer) plus this.
    cfa_fp: bool,
    cfa_off: isize,
    /// The return address is saved at CFA plus this.
    ra_off: isize,
    /// Bytes of pushed arguments at the call site
    /// (`DW_CFA_GNU_args_size`): a landing pad there expects them popped.
    args_size: usize,
    /// The callee-saved registers, in `arch::SAVED`'s order.
    saved: [Saved; N],
    /// What unwinding through this call site runs.
    pub action: Action,
}

impl Rule {
    /// The frame's CFA (the stack pointer in its caller before the call).
    pub fn cfa(&self, r: &Regs) -> Option<usize> {
        let base = if self.cfa_fp { r.get(arch::FP)? } else { r.sp };
        Some(base.wrapping_add_signed(self.cfa_off))
    }

    /// The stack pointer a landing pad of this frame expects, given the
    /// frame's stack pointer at its call site.
    pub fn landing_sp(&self, r: &Regs) -> usize {
        r.sp + self.args_size
    }

    /// The caller's registers.
    ///
    /// # Safety
    /// `r` is a live frame on this stack whose code this rule describes,
    /// and `cfa` its CFA.
    pub unsafe fn caller(&self, r: &Regs, cfa: usize) -> Regs {
        // SAFETY: the caller's contract: the saved slots are in the frame.
        let read = |off: isize| unsafe { (cfa.wrapping_add_signed(off) as *const usize).read() };
        let mut c = *r;
        c.pc = read(self.ra_off);
        c.sp = cfa;
        for (i, s) in self.saved.iter().enumerate() {
            match *s {
                Saved::SAME => {}
                Saved::LOST => c.known &= !(1 << i),
                Saved(off) => {
                    c.saved[i] = read(off as isize);
                    c.known |= 1 << i;
                }
            }
        }
        c
    }
}

/// Rules by return address, per thread (a walk never switches stacks, so
/// the thread does not change under it).
///
/// Must hold: an entry with key `pc` holds `compute_rule(pc)` for the code
/// loaded when `subs` was read; the table is never fuller than
/// `CACHE_LIMIT`, so a probe always ends at an empty slot.
pub(crate) struct Cache {
    /// Open addressing with linear probing, by a multiplicative hash of
    /// the return address; empty until first use. `(key, rule)`, key 0:
    /// empty. Entries are never evicted one by one (a walk that keeps
    /// evicting its own return addresses would parse them every time):
    /// the table is emptied when it reaches `CACHE_LIMIT`.
    entries: Vec<(usize, Option<Rule>)>,
    used: usize,
    /// glibc's count of objects unloaded when the entries were made.
    subs: u64,
}

/// Slots (a power of two; about 100 bytes each on 64-bit targets: 50 KiB
/// per thread that ever walks).
const CACHE_SIZE: usize = 512;

/// Entries before the table is emptied: the distinct return addresses a
/// thread's walks visit are a few dozen in most programs.
const CACHE_LIMIT: usize = CACHE_SIZE / 2;

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache { entries: Vec::new(), used: 0, subs: 0 })
    };
}

/// Runs `f` with this thread's cache, checked against unloads; `None` when
/// the cache is unavailable (in use further up this thread, as from a
/// signal handler, or destroyed at thread exit). Not inlined, as every
/// thread-local accessor (state.rs): a walk never parks, but its callers'
/// callers may.
#[inline(never)]
pub(crate) fn with_cache<R>(f: impl FnOnce(&mut Cache) -> Option<R>) -> Option<R> {
    CACHE
        .try_with(|c| {
            let mut c = c.try_borrow_mut().ok()?;
            c.check_generation();
            f(&mut c)
        })
        .ok()
        .flatten()
}

impl Cache {
    /// Empties the cache if a shared object was unloaded since it was
    /// filled: its code's addresses may now hold other code.
    fn check_generation(&mut self) {
        let subs = loaded_objects_removed();
        if subs != self.subs {
            self.clear();
            self.subs = subs;
        }
    }

    fn clear(&mut self) {
        self.entries.iter_mut().for_each(|e| e.0 = 0);
        self.used = 0;
    }

    /// The rule for a return address, `None` when the walk cannot go on
    /// from it.
    pub fn rule(&mut self, pc: usize) -> Option<Rule> {
        if self.entries.is_empty() {
            self.entries.resize(CACHE_SIZE, (0, None));
        }
        let mut i = slot(pc);
        loop {
            match self.entries[i] {
                (key, rule) if key == pc => return rule,
                (0, _) => break,
                _ => i = (i + 1) % CACHE_SIZE,
            }
        }
        let rule = compute_rule(pc);
        if self.used == CACHE_LIMIT {
            self.clear();
            i = slot(pc);
        }
        self.entries[i] = (pc, rule);
        self.used += 1;
        rule
    }
}

/// Where the probe for `pc` starts: Fibonacci hashing (the top bits of
/// pc * 2^64/phi), so that return addresses a few bytes apart spread out.
fn slot(pc: usize) -> usize {
    ((pc as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - CACHE_SIZE.trailing_zeros())) as usize
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

/// The address of Rust's personality routine: frames with another one are
/// [`Action::Unknown`].
fn rust_personality() -> usize {
    unsafe extern "C" {
        // std's `eh_personality` lang item; every Rust function with a
        // landing pad names it in its CIE. Only its address is taken.
        fn rust_eh_personality();
    }
    rust_eh_personality as unsafe extern "C" fn() as usize
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
        CfaRule::RegisterAndOffset { register, offset }
            if register == Register(arch::SP_COLUMN) =>
        {
            (false, offset)
        }
        CfaRule::RegisterAndOffset { register, offset }
            if register == Register(arch::SAVED[arch::FP]) =>
        {
            (true, offset)
        }
        _ => return None,
    };
    let ra_off = match row.register(Register(arch::RA_COLUMN)) {
        Some(RegisterRule::Offset(off)) => off,
        _ => return None,
    };
    if arch::UNSUPPORTED
        .iter()
        .any(|&r| row.register(Register(r)).is_some())
    {
        return None;
    }
    let mut saved = [Saved::SAME; N];
    for (s, &reg) in saved.iter_mut().zip(arch::SAVED.iter()) {
        *s = match row.register(Register(reg)) {
            None | Some(RegisterRule::SameValue) => Saved::SAME,
            Some(RegisterRule::Offset(off)) => match i16::try_from(off) {
                Ok(off) if off > Saved::LOST.0 => Saved(off),
                _ => Saved::LOST,
            },
            Some(_) => Saved::LOST,
        };
    }
    let func = usize::try_from(fde.initial_address()).ok()?;
    let action = match (fde.personality(), fde.lsda()) {
        // No personality routine: the unwinder passes the frame by.
        (None, _) => Action::None,
        (Some(p), lsda) => {
            let personality = match p {
                Pointer::Direct(a) => a as usize,
                // SAFETY: an indirect personality is the address of a
                // pointer-sized slot in the object's data (DW.ref.*),
                // relocated at load.
                Pointer::Indirect(a) => unsafe { (a as usize as *const usize).read() },
            };
            match lsda {
                _ if personality != rust_personality() => Action::Unknown,
                // Rust's personality continues through a frame without
                // an exception table.
                None => Action::None,
                // SAFETY: the FDE's LSDA, in the same loaded object.
                Some(Pointer::Direct(lsda)) => unsafe {
                    call_site_action(lsda as usize as *const u8, func, addr)
                },
                Some(Pointer::Indirect(_)) => Action::Unknown,
            }
        }
    };
    Some(Rule {
        func,
        cfa_fp,
        cfa_off: isize::try_from(cfa_off).ok()?,
        ra_off: isize::try_from(ra_off).ok()?,
        args_size: usize::try_from(row.saved_args_size()).ok()?,
        saved,
        action,
    })
}

/// What the exception table (LSDA, GCC's format, which rustc and clang
/// emit) gives the call site at `ip`, read as Rust's personality routine
/// reads it (std's `find_eh_action`): no landing pad, a cleanup (action
/// 0, or an action record with type index 0), a catch (type index above
/// 0). Unknown for a filter (below 0), for `ip` missing from the table
/// (the personality aborts there: a call that must not unwind), and for
/// encodings this reader does not know.
///
/// # Safety
/// `lsda` is a loaded LSDA for the function that starts at `func`.
unsafe fn call_site_action(lsda: *const u8, func: usize, ip: usize) -> Action {
    const OMIT: u8 = 0xff;
    let mut r = Lsda(lsda);
    // SAFETY: reads within the LSDA (the caller's contract); a malformed
    // table is the compiler's bug, as for the personality routine.
    unsafe {
        if r.u8() != OMIT {
            // A landing-pad base other than the function start: rare.
            return Action::Unknown;
        }
        if r.u8() != OMIT {
            r.uleb();
        }
        let enc = r.u8();
        let len = r.uleb();
        let end = (r.0 as usize).saturating_add(len);
        // The action table follows the call-site table.
        let actions = end as *const u8;
        while (r.0 as usize) < end {
            let (Some(start), Some(len), Some(lpad)) = (r.enc(enc), r.enc(enc), r.enc(enc)) else {
                return Action::Unknown;
            };
            let action = r.uleb();
            let Some(start) = func.checked_add(start) else {
                return Action::Unknown;
            };
            if ip < start {
                return Action::Unknown;
            }
            if ip - start >= len {
                continue;
            }
            if lpad == 0 {
                return Action::None;
            }
            let Some(lpad) = func.checked_add(lpad) else {
                return Action::Unknown;
            };
            if action == 0 {
                return Action::Cleanup(lpad);
            }
            let mut rec = Lsda(actions.wrapping_add(action - 1));
            return match rec.sleb() {
                0 => Action::Cleanup(lpad),
                1.. => Action::Catch(lpad),
                _ => Action::Unknown,
            };
        }
    }
    Action::Unknown
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

    /// # Safety
    /// An SLEB128 follows, in the table.
    unsafe fn sleb(&mut self) -> isize {
        let (mut v, mut shift) = (0isize, 0u32);
        loop {
            // SAFETY: the caller's contract.
            let b = unsafe { self.u8() };
            if shift < isize::BITS {
                v |= ((b & 0x7f) as isize) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < isize::BITS && b & 0x40 != 0 {
                    v |= -1 << shift;
                }
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

    /// The callee-saved registers of the SysV ABI, by DWARF number: rbx,
    /// rbp, r12-r15.
    pub const SAVED: [u16; 6] = [3, 6, 12, 13, 14, 15];
    pub const N: usize = SAVED.len();
    /// rbp's index in `SAVED`.
    pub const FP: usize = 1;
    /// DWARF numbers: rsp, the return address column.
    pub const SP_COLUMN: u16 = 7;
    pub const RA_COLUMN: u16 = 16;
    /// Registers whose rules the walk does not model (none here).
    pub const UNSUPPORTED: &[u16] = &[];

    /// This point's pc, stack pointer and frame pointer (the other
    /// callee-saved registers are not known).
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
        Regs::at(pc, sp, fp)
    }
}

#[cfg(target_arch = "aarch64")]
mod arch {
    use super::Regs;

    /// The callee-saved registers of AAPCS64, by DWARF number: x19-x28,
    /// x29 (the frame pointer), d8-d15 (v8-v15's low halves).
    pub const SAVED: [u16; 19] = [
        19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 72, 73, 74, 75, 76, 77, 78, 79,
    ];
    pub const N: usize = SAVED.len();
    /// x29's index in `SAVED`.
    pub const FP: usize = 10;
    /// DWARF numbers: sp, the return address column (x30).
    pub const SP_COLUMN: u16 = 31;
    pub const RA_COLUMN: u16 = 30;
    /// RA_SIGN_STATE (pointer authentication of return addresses).
    pub const UNSUPPORTED: &[u16] = &[34];

    /// This point's pc, stack pointer and frame pointer (the other
    /// callee-saved registers are not known).
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
        Regs::at(pc + 4, sp, fp)
    }
}

#[cfg(target_arch = "x86")]
mod arch {
    use super::Regs;

    /// The callee-saved registers of the i386 SysV ABI, by DWARF number:
    /// ebx, ebp, esi, edi.
    pub const SAVED: [u16; 4] = [3, 5, 6, 7];
    pub const N: usize = SAVED.len();
    /// ebp's index in `SAVED`.
    pub const FP: usize = 1;
    /// DWARF numbers: esp, the return address column.
    pub const SP_COLUMN: u16 = 4;
    pub const RA_COLUMN: u16 = 8;
    pub const UNSUPPORTED: &[u16] = &[];

    /// This point's pc, stack pointer and frame pointer (the other
    /// callee-saved registers are not known).
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
        Regs::at(pc, sp, fp)
    }
}
