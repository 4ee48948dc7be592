//! Sets `gort_fast_raise` where gort-unwind takes over the first pass of
//! raising a Rust panic (src/raise.rs): the `fast-raise` feature on a
//! Linux/glibc target of one of the three architectures, with the unwinder
//! in a shared libgcc_s (a `crt-static` build links libgcc_eh's
//! `_Unwind_RaiseException` statically, and the two definitions would
//! clash).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(gort_fast_raise)");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let arch = var("CARGO_CFG_TARGET_ARCH");
    let supported = std::env::var_os("CARGO_FEATURE_FAST_RAISE").is_some()
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && !var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static")
        && matches!(arch.as_str(), "x86_64" | "aarch64" | "x86");
    if supported {
        println!("cargo::rustc-cfg=gort_fast_raise");
    }
}
