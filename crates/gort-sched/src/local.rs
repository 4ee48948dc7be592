//! Goroutine-local storage: `local!` and `LocalKey`, the goroutine
//! counterpart of `thread_local!`.
//!
//! Goroutines move between OS threads at parks and yields, so a
//! `thread_local!` value seen by a goroutine may change at any park (or
//! spawn it with `GoBuilder::locked(true)` to pin it). A `local!` value belongs to the goroutine:
//! each goroutine gets its own, made on first use by the initializer, and
//! dropped on the goroutine's own stack when its function returns.

use crate::current::current_g;
use std::any::Any;

/// A key for goroutine-local values, made by [`local!`](crate::local).
pub struct LocalKey<T: 'static> {
    init: fn() -> T,
}

impl<T: 'static> LocalKey<T> {
    #[doc(hidden)]
    pub const fn new(init: fn() -> T) -> LocalKey<T> {
        LocalKey { init }
    }

    /// Runs `f` with the current goroutine's value, making it first if this
    /// goroutine has not used the key yet.
    ///
    /// # Panics
    /// Outside a goroutine, or when the initializer uses its own key.
    pub fn with<R>(&'static self, f: impl FnOnce(&T) -> R) -> R {
        let g = current_g();
        if g.is_null() {
            panic!("gort::local! value used outside a goroutine");
        }
        let key = self as *const LocalKey<T> as usize;
        // SAFETY: the running goroutine's map is touched only by the
        // goroutine itself; the reference to the boxed value stays valid
        // until the goroutine's function returns (values are never removed
        // before), which outlives this call.
        let value: *const T = unsafe {
            let map = &mut *(*g).locals.get();
            match map.entries.iter().find(|(k, _)| *k == key) {
                Some((_, v)) => v.downcast_ref::<T>().expect("local key type") as *const T,
                None => {
                    // The initializer may use other keys (which can grow the
                    // Vec): run it without holding a reference into the map.
                    let v: Box<dyn Any> = Box::new((self.init)());
                    let map = &mut *(*g).locals.get();
                    if map.entries.iter().any(|(k, _)| *k == key) {
                        panic!("gort::local! initializer used its own key");
                    }
                    map.entries.push((key, v));
                    let (_, v) = map.entries.last().expect("just pushed");
                    v.downcast_ref::<T>().expect("local key type") as *const T
                }
            }
        };
        // SAFETY: see above; shared access only.
        f(unsafe { &*value })
    }
}

/// Declares goroutine-local values, like `thread_local!`:
///
/// ```
/// use std::cell::Cell;
/// gort_sched::local! {
///     static COUNTER: Cell<u32> = Cell::new(0);
/// }
/// let (a, b) = gort_sched::Runtime::builder().procs(2).build().unwrap().run(|| {
///     COUNTER.with(|c| c.set(c.get() + 1));
///     let other = gort_sched::go(|| COUNTER.with(|c| c.get())).join().unwrap();
///     (COUNTER.with(|c| c.get()), other)
/// }).unwrap();
/// assert_eq!((a, b), (1, 0)); // each goroutine has its own
/// ```
#[macro_export]
macro_rules! local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr; $($rest:tt)*) => {
        $(#[$attr])* $vis static $name: $crate::LocalKey<$t> = $crate::LocalKey::new({
            fn __gort_local_init() -> $t {
                $init
            }
            __gort_local_init
        });
        $crate::local!($($rest)*);
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr) => {
        $crate::local!($(#[$attr])* $vis static $name: $t = $init;);
    };
}
