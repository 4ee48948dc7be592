//! Tells the tests which target they were built for (to pick the C
//! compiler that links the C programs: `CC_<target>`, as the cc crate).

fn main() {
    println!(
        "cargo:rustc-env=CTESTS_TARGET={}",
        std::env::var("TARGET").expect("cargo sets TARGET")
    );
    println!("cargo:rerun-if-changed=build.rs");
}
