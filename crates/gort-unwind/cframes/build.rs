//! Compiles c/frames.c into a static library that this crate links.

fn main() {
    println!("cargo:rerun-if-changed=c/frames.c");
    cc::Build::new()
        .file("c/frames.c")
        // Keep every frame a real frame: no inlining of the callback calls
        // into callers, no tail calls that would remove a C frame.
        .flag_if_supported("-fno-optimize-sibling-calls")
        .flag_if_supported("-fno-inline")
        // The large-frame functions stand for C built the common way, with
        // nothing probing the pages of a large frame in order.
        .flag_if_supported("-fno-stack-clash-protection")
        .opt_level(1)
        .compile("gort_unwind_cframes");
}
