// The expansion uses absolute paths only: it compiles without the prelude, next to local
// items named like the ones it uses. (Its local bindings are `__gc_`-prefixed: a constant
// with such a name in scope would turn a binding into a pattern, as it would for any
// derive on stable Rust; those names are reserved.)
#![no_implicit_prelude]
#![allow(dead_code, non_camel_case_types, unused_macros)]

// Local items that would capture non-hygienic expansions.
mod core {}
mod gc_core {}
mod std {}
mod __private {}
struct Trace;
struct Tracer;
trait Drop {}
struct Option;
struct Some;
struct None;
struct Box;
struct bool;
struct tracer;
struct field;
macro_rules! assert {
    ($($t:tt)*) => {
        compile_error!("the expansion must use ::core::assert!")
    };
}

#[derive(::gc_core::Trace)]
struct Named<T> {
    a: T,
    b: ::std::vec::Vec<u8>,
    #[gc(skip)]
    c: ::std::string::String,
}

#[derive(::gc_core::Trace)]
enum Sum<T> {
    Unit,
    Tuple(T, u8),
    Struct { x: T, y: ::std::option::Option<T> },
}

#[derive(::gc_core::Trace)]
#[gc(no_scan)]
struct NoScan<T> {
    a: u8,
    b: T,
}

#[derive(::gc_core::Trace)]
struct Recursive(
    ::std::boxed::Box<Recursive>,
    ::std::option::Option<::std::boxed::Box<Self>>,
);

fn main() {
    ::std::assert!(<Named<u8> as ::gc_core::Trace>::NO_SCAN);
    ::std::assert!(<Sum<u8> as ::gc_core::Trace>::NO_SCAN);
    ::std::assert!(<NoScan<u8> as ::gc_core::Trace>::NO_SCAN);
    ::std::assert!(!<Recursive as ::gc_core::Trace>::NO_SCAN);
}
