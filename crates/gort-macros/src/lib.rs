//! `#[gort::main]` and `#[gort::test]`: run a function's body as the main
//! goroutine of a fresh gort runtime. Use them through the `gort` crate,
//! which re-exports both.
//!
//! Why an attribute: without one, every program and every test wraps its
//! body in `gort::run(|| ...)` and decides what to do with a runtime error;
//! tokio users expect `#[tokio::main]`/`#[tokio::test]`, and the attribute
//! gives one answer for everyone: a runtime error (Go's "all goroutines are
//! asleep - deadlock!", a bad setting) ends a `main` as Go's runtime ends a
//! program, with `fatal error: ...` on stderr and exit status 2, and fails
//! a test with the message. A panic in the body is resumed on the caller,
//! so `#[should_panic]` works.
//!
//! Options (`#[gort::main(procs = 2, stack_size = 131072)]`):
//! - `procs = N`: the number of Ps (Go's GOMAXPROCS; at least 1).
//! - `stack_size = BYTES`: the default goroutine stack size.
//! - `external_wakers = true|false`: whether plain threads may wake
//!   goroutines (see `RuntimeBuilder::external_wakers`). `#[gort::main]`
//!   leaves the runtime's default; `#[gort::test]` defaults to `false`,
//!   because libtest's own threads stay alive outside the runtime for the
//!   whole run and the default rule would wait for them, so a deadlocked
//!   test would hang instead of failing with Go's message. A test whose
//!   goroutines are woken by plain threads it starts says `true`.
//! - `crate = "path"`: where the `gort` crate is, if renamed.
//!
//! The expansion calls only `gort`'s public API (`Runtime::builder`,
//! `RuntimeBuilder`'s setters, `Runtime::run`), so the macros need no
//! hidden items. Rejected: an `async fn` form (gort has no futures: the
//! body is plain blocking code) and accepting arguments (there is nothing
//! to pass them).

#![deny(unsafe_op_in_unsafe_fn)]

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{ItemFn, LitBool, LitInt, LitStr, Path};

/// Runs `fn main` as the main goroutine of a gort runtime.
///
/// ```ignore
/// #[gort::main(procs = 2)]
/// fn main() {
///     let h = gort::go(|| 6 * 7);
///     assert_eq!(h.join().unwrap(), 42);
/// }
/// ```
///
/// A runtime error (a deadlock, a bad setting) prints `fatal error: ...`
/// and exits with status 2, as a Go program does. `main` may return a
/// value (`Result<(), E>` and so on), as a plain `main` may.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Main).unwrap_or_else(|e| e.to_compile_error().into())
}

/// Runs a test's body as the main goroutine of a gort runtime: a `#[test]`
/// whose body may use goroutines, channels and gort's locks.
///
/// ```ignore
/// #[gort::test(procs = 2)]
/// fn two_procs() {
///     assert_eq!(gort::procs(), 2);
/// }
/// ```
///
/// A runtime error fails the test with its message; a panic in the body
/// fails it as in any test (`#[should_panic]` works).
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item, Kind::Test).unwrap_or_else(|e| e.to_compile_error().into())
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Main,
    Test,
}

#[derive(Default)]
struct Options {
    procs: Option<LitInt>,
    stack_size: Option<LitInt>,
    external_wakers: Option<LitBool>,
    krate: Option<Path>,
}

fn parse_options(args: TokenStream) -> syn::Result<Options> {
    let mut o = Options::default();
    let parser = syn::meta::parser(|meta| {
        let set_once = |name: &str, taken: bool| {
            if taken {
                Err(meta.error(format!("`{name}` is given twice")))
            } else {
                Ok(())
            }
        };
        if meta.path.is_ident("procs") {
            set_once("procs", o.procs.is_some())?;
            let n: LitInt = meta.value()?.parse()?;
            if n.base10_parse::<usize>()? == 0 {
                return Err(syn::Error::new(n.span(), "procs must be at least 1"));
            }
            o.procs = Some(n);
        } else if meta.path.is_ident("stack_size") {
            set_once("stack_size", o.stack_size.is_some())?;
            let n: LitInt = meta.value()?.parse()?;
            n.base10_parse::<usize>()?;
            o.stack_size = Some(n);
        } else if meta.path.is_ident("external_wakers") {
            set_once("external_wakers", o.external_wakers.is_some())?;
            o.external_wakers = Some(meta.value()?.parse()?);
        } else if meta.path.is_ident("crate") {
            set_once("crate", o.krate.is_some())?;
            let s: LitStr = meta.value()?.parse()?;
            o.krate = Some(s.parse()?);
        } else {
            return Err(meta.error(
                "unknown option; expected `procs = N`, `stack_size = BYTES`, \
                 `external_wakers = true|false` or `crate = \"path\"`",
            ));
        }
        Ok(())
    });
    parser.parse(args)?;
    Ok(o)
}

fn expand(args: TokenStream, item: TokenStream, kind: Kind) -> syn::Result<TokenStream> {
    let opts = parse_options(args)?;
    let f: ItemFn = syn::parse(item)?;
    let what = match kind {
        Kind::Main => "#[gort::main]",
        Kind::Test => "#[gort::test]",
    };
    if let Some(a) = &f.sig.asyncness {
        return Err(syn::Error::new(
            a.span(),
            format!("{what} takes a plain `fn`: gort runs blocking code on goroutines, no `async`"),
        ));
    }
    if !f.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            f.sig.inputs.span(),
            format!("{what} functions take no arguments"),
        ));
    }
    if !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new(
            f.sig.generics.span(),
            format!("{what} functions cannot be generic"),
        ));
    }
    if kind == Kind::Main && f.sig.ident != "main" {
        return Err(syn::Error::new(
            f.sig.ident.span(),
            "#[gort::main] goes on `fn main` (use #[gort::test] for tests, or gort::run)",
        ));
    }
    let krate = opts
        .krate
        .map(|p| quote!(#p))
        .unwrap_or_else(|| quote!(::gort));
    let mut setters = TokenStream2::new();
    if let Some(n) = opts.procs {
        setters.extend(quote_spanned!(n.span()=> .procs(#n)));
    }
    if let Some(n) = opts.stack_size {
        setters.extend(quote_spanned!(n.span()=> .stack_size(#n)));
    }
    match (opts.external_wakers, kind) {
        (Some(b), _) => setters.extend(quote_spanned!(b.span()=> .external_wakers(#b))),
        // libtest's own threads live outside the runtime for the whole run,
        // so the default rule (a deadlock only once no outside thread is
        // alive) would never report one and the test would hang. A test
        // is its own program: say so unless it asked otherwise.
        (None, Kind::Test) => setters.extend(quote!(.external_wakers(false))),
        (None, Kind::Main) => {}
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = f;
    let span = Span::call_site();
    let on_error = match kind {
        Kind::Main => quote_spanned! {span=>
            {
                ::std::eprintln!("fatal error: {}", __gort_error);
                ::std::process::exit(2)
            }
        },
        Kind::Test => quote_spanned! {span=>
            ::std::panic!("gort runtime: {}", __gort_error)
        },
    };
    let test_attr = match kind {
        Kind::Main => quote!(),
        Kind::Test => quote!(#[::core::prelude::v1::test]),
    };
    Ok(quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            let __gort_runtime = match #krate::Runtime::builder() #setters .build() {
                ::core::result::Result::Ok(rt) => rt,
                ::core::result::Result::Err(__gort_error) => #on_error,
            };
            match __gort_runtime.run(move || #block) {
                ::core::result::Result::Ok(v) => v,
                ::core::result::Result::Err(__gort_error) => #on_error,
            }
        }
    }
    .into())
}

// The README's example is compiled and run as a doctest, so it cannot rot.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
struct ReadmeDoctests;
