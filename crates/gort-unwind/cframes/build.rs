//! Compiles c/frames.c into a static library that this crate links.

fn main() {
    println!("cargo:rerun-if-changed=c/frames.c");
    cc::Build::new()
        .file("c/frames.c")
        // Keep every frame a real frame: no inlining of the callback calls
        // into callers, no tail calls that would remove a C frame.
        .flag_if_supported("-fno-optimize-sibling-calls")
        .flag_if_supported("-fno-inline")
        .opt_level(1)
        .compile("gort_unwind_cframes");
}
