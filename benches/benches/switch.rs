//! One context-switch round trip (switch to a context, which switches
//! straight back), gort-arch against corosensei, in the same run.
//!
//! Run: `cargo bench -p gort-benches --bench switch`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gort_arch::{init, switch, Context};

unsafe extern "C" fn echo(_arg: usize, mut caller: Context, mut value: usize) -> ! {
    loop {
        // SAFETY: `caller` is the benchmark's suspended context.
        (caller, value) = unsafe { switch(caller, value + 1) };
    }
}

fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("switch_round_trip");

    let mut stack = vec![0u128; 4096]; // 64 KiB, 16-byte aligned
                                       // SAFETY: the stack outlives every switch below; after the benchmark the
                                       // echo context stays suspended and is abandoned (it owns nothing that
                                       // needs dropping).
    let mut echo_ctx = unsafe {
        let top = stack.as_mut_ptr().add(stack.len()).cast::<u8>();
        init(top, echo, 0)
    };
    group.bench_function("gort-arch", |b| {
        b.iter(|| {
            // SAFETY: the echo context is suspended in its loop.
            let (ctx, value) = unsafe { switch(echo_ctx.take(), black_box(1)) };
            echo_ctx = ctx;
            value
        })
    });

    let mut co = corosensei::Coroutine::new(
        |yielder: &corosensei::Yielder<usize, usize>, mut value: usize| loop {
            value = yielder.suspend(value + 1);
        },
    );
    group.bench_function("corosensei", |b| b.iter(|| co.resume(black_box(1))));
    group.finish();
    drop(stack);
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = round_trip
}
criterion_main!(benches);
