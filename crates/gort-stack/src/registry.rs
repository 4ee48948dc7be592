//! A process-wide registry of slabs, readable without locks from a signal
//! handler, so that the overflow handler can tell whether a fault address
//! lies in a guard region.
//!
//! Writers (slab creation and destruction, rare and already paying for a
//! system call) serialize on a mutex; the reader, the signal handler, only
//! loads atomics. Each entry is a sequence lock: a writer makes the sequence
//! odd, writes the fields, then makes it even again; a reader accepts a
//! snapshot only when it saw the same even sequence before and after. Since
//! the handler may interrupt a writer on its own thread, a reader never
//! waits for an odd sequence: it skips the entry, which at that moment
//! describes a slab being created or destroyed, one without live stacks.

use std::sync::atomic::{fence, AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Entries per chunk; chunks are allocated on demand and never freed.
const CHUNK: usize = 512;
/// Chunks at most: 65,536 slabs, the order of `vm.max_map_count`.
const CHUNKS: usize = 128;

struct Entry {
    seq: AtomicUsize,
    /// Start of the slab; 0 when the entry is free.
    base: AtomicUsize,
    /// Length of the slab in bytes.
    len: AtomicUsize,
    /// Distance between consecutive slots.
    stride: AtomicUsize,
    /// Length of the guard region at the bottom of each slot.
    guard: AtomicUsize,
}

impl Entry {
    const fn new() -> Self {
        Entry {
            seq: AtomicUsize::new(0),
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            stride: AtomicUsize::new(0),
            guard: AtomicUsize::new(0),
        }
    }

    /// Writer side; the caller holds `WRITER`.
    fn publish(&self, base: usize, len: usize, stride: usize, guard: usize) {
        let s = self.seq.load(Ordering::Relaxed);
        self.seq.store(s.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.base.store(base, Ordering::Relaxed);
        self.len.store(len, Ordering::Relaxed);
        self.stride.store(stride, Ordering::Relaxed);
        self.guard.store(guard, Ordering::Relaxed);
        self.seq.store(s.wrapping_add(2), Ordering::Release);
    }

    /// Reader side: a consistent snapshot `(base, len, stride, guard)` of a
    /// used entry, or `None` when the entry is free or being written.
    fn read(&self) -> Option<(usize, usize, usize, usize)> {
        for _ in 0..4 {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 % 2 == 1 {
                return None;
            }
            let v = (
                self.base.load(Ordering::Relaxed),
                self.len.load(Ordering::Relaxed),
                self.stride.load(Ordering::Relaxed),
                self.guard.load(Ordering::Relaxed),
            );
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return if v.0 == 0 { None } else { Some(v) };
            }
        }
        None
    }
}

type Chunk = [Entry; CHUNK];

static CHUNK_PTRS: [AtomicPtr<Chunk>; CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

struct Writer {
    /// Indices of free entries in allocated chunks.
    free: Vec<usize>,
    /// Entries ever handed out: the next never-used index.
    used: usize,
}

static WRITER: Mutex<Writer> = Mutex::new(Writer {
    free: Vec::new(),
    used: 0,
});

fn entry(index: usize) -> &'static Entry {
    let chunk = CHUNK_PTRS[index / CHUNK].load(Ordering::Acquire);
    debug_assert!(!chunk.is_null());
    // SAFETY: chunks are leaked boxes, never freed, published (Release)
    // before any index in them is handed out.
    unsafe { &(*chunk)[index % CHUNK] }
}

/// A slab's place in the registry; unregisters nothing by itself.
#[derive(Debug)]
pub(crate) struct Token(usize);

/// Registers a slab of `len` bytes at `base` whose slots are `stride` bytes
/// apart, each starting with `guard` bytes of guard. `None` when the
/// registry is full: the slab still works, and overflows in it are still
/// recognized through the running-stack slot the scheduler sets.
pub(crate) fn register(base: usize, len: usize, stride: usize, guard: usize) -> Option<Token> {
    debug_assert!(base != 0 && stride != 0 && guard < stride && len % stride == 0);
    let mut w = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    let index = match w.free.pop() {
        Some(i) => i,
        None => {
            let i = w.used;
            if i == CHUNK * CHUNKS {
                return None;
            }
            let c = i / CHUNK;
            if CHUNK_PTRS[c].load(Ordering::Relaxed).is_null() {
                let chunk: Box<Chunk> = Box::new([const { Entry::new() }; CHUNK]);
                CHUNK_PTRS[c].store(Box::into_raw(chunk), Ordering::Release);
            }
            w.used += 1;
            i
        }
    };
    entry(index).publish(base, len, stride, guard);
    Some(Token(index))
}

/// Removes a slab from the registry; call before unmapping it.
pub(crate) fn unregister(token: Token) {
    let mut w = WRITER.lock().unwrap_or_else(|e| e.into_inner());
    entry(token.0).publish(0, 0, 0, 0);
    w.free.push(token.0);
}

/// The stack whose guard region holds `addr`: `(guard_lo, lo, hi)`, where
/// `[guard_lo, lo)` is the guard and `[lo, hi)` the stack.
///
/// Async-signal-safe: loads of atomics only, no lock, no allocation.
pub(crate) fn find_guard(addr: usize) -> Option<(usize, usize, usize)> {
    let used_chunks = CHUNK_PTRS
        .iter()
        .take_while(|p| !p.load(Ordering::Acquire).is_null())
        .count();
    for i in 0..used_chunks * CHUNK {
        let Some((base, len, stride, guard)) = entry(i).read() else {
            continue;
        };
        if addr < base || addr - base >= len {
            continue;
        }
        let slot = base + (addr - base) / stride * stride;
        if addr - slot < guard {
            return Some((slot, slot + guard, slot + stride));
        }
        // In a stack, not in a guard: no other slab overlaps this one.
        return None;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_guards_by_stride_and_forgets_unregistered_slabs() {
        // A fake slab below vm.mmap_min_addr (64 KiB by default), where
        // nothing real can ever be mapped; no memory is touched.
        let base = 0x1000usize;
        let t = register(base, 4 * 0x3000, 0x3000, 0x1000).expect("registry has room");
        assert_eq!(find_guard(base), Some((base, base + 0x1000, base + 0x3000)));
        assert_eq!(
            find_guard(base + 2 * 0x3000 + 0xfff),
            Some((base + 0x6000, base + 0x7000, base + 0x9000))
        );
        assert_eq!(find_guard(base + 0x1000), None, "first byte of a stack");
        assert_eq!(find_guard(base + 4 * 0x3000), None, "past the slab");
        assert_eq!(find_guard(base - 1), None, "below the slab");
        unregister(t);
        assert_eq!(find_guard(base), None);
    }
}
