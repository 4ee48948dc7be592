//! Decides at build time whether the tests will run under qemu-user, so that
//! `ignore_under_qemu!` can mark a test `#[ignore]` (libtest then reports it
//! as "ignored", not as passed). `cargo xtask test` sets GORT_UNDER_QEMU=1
//! for the whole cargo command (build and run) of a target run under qemu;
//! cross targets build into their own target directory, so the host's build
//! of this crate is never the qemu one.

fn main() {
    println!("cargo:rustc-check-cfg=cfg(gort_under_qemu)");
    println!("cargo:rerun-if-env-changed=GORT_UNDER_QEMU");
    if std::env::var("GORT_UNDER_QEMU").is_ok_and(|v| !v.is_empty() && v != "0") {
        println!("cargo:rustc-cfg=gort_under_qemu");
    }
}
