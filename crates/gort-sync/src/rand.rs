//! A small per-thread generator for `select!`'s random order: xorshift64*,
//! seeded from the thread's address space and the clock. Not for anything
//! but fairness.

use std::cell::Cell;

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(0) };
}

fn seed() -> u64 {
    let local = 0u8;
    let addr = &local as *const u8 as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // splitmix64 of the mix, never zero.
    let mut z = addr ^ nanos.rotate_left(32) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) | 1
}

/// A uniformly distributed number in `0..n` (`n > 0`), Lemire's
/// multiply-shift (bias below 2^-32 for the small `n` used here).
///
/// Not inlined: `select!` calls it in functions that park, and after a
/// migration an inlined copy could reuse the first thread's address.
#[inline(never)]
pub(crate) fn below(n: usize) -> usize {
    if cfg!(loom) {
        // A loom model must replay the same choices in every execution.
        return 0;
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = seed();
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        let r = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32;
        ((r as u64 * n as u64) >> 32) as usize
    })
}
