//! `#[derive(Trace)]` for gc-core.
//!
//! Use it through `gc_core::Trace` (the `derive` feature of `gc-core`, on by default); the
//! generated code names `::gc_core`, so the dependency must keep that name.
//!
//! The crate is split the way serde_derive is: this file is the entry point only;
//! `attr.rs` reads the `#[gc(...)]` attributes and accumulates spanned errors (all of them
//! are reported at once, each saying what to write instead), `bounds.rs` computes the
//! generic bounds, and `expand.rs` builds the model of the input and generates the impl.

mod attr;
mod bounds;
mod expand;

use proc_macro::TokenStream;

/// Implements `gc_core::Trace` for a struct or an enum, upholding the trait's safety rules
/// by construction.
///
/// ```
/// use gc_core::Trace;
///
/// /// Not `Trace`: stored in a skipped field.
/// struct Counter(u64);
///
/// #[derive(Trace)]
/// struct Record<T> {
///     id: u64,
///     payload: Vec<T>,
///     #[gc(skip)]
///     hits: Counter,
/// }
///
/// #[derive(Trace)]
/// enum Shape {
///     Empty,
///     Circle(f64),
///     Polygon { points: Vec<(f64, f64)> },
/// }
///
/// // NO_SCAN is the AND of the traced fields' NO_SCAN.
/// assert!(<Record<String> as Trace>::NO_SCAN);
/// assert!(<Shape as Trace>::NO_SCAN);
/// # let _ = Record::<u8> { id: 0, payload: vec![], hits: Counter(0) };
/// # let _ = (Shape::Empty, Shape::Circle(1.0), Shape::Polygon { points: vec![] });
/// ```
///
/// # What it generates
///
/// - `NO_SCAN`: the AND of the `NO_SCAN` of every field that is not skipped (`true` for a
///   type without such fields), so a `Gc` of the type goes to a noscan span whenever it can.
/// - `trace`, `root`, `unroot`: visit every field that is not skipped, in every variant.
/// - A guard that makes a `Drop` impl on the type a compile error (see below).
///
/// Everything is wrapped in `const _: () = { ... };` and uses absolute paths
/// (`::gc_core`, `::core`), so it works under `#![no_implicit_prelude]` and next to local
/// items named `Trace` or `core`.
///
/// # Attributes
///
/// - `#[gc(skip)]` on a field: the field is not traced, rooted or unrooted, and its type
///   need not implement `Trace` (it must still be `Send + Sync + 'static`). Any handle in it
///   stays rooted, so an object reachable only through it is kept alive: a cycle through a
///   skipped field leaks, it is never freed early.
/// - `#[gc(recursive)]` on a field: the field's type leads back to this type through
///   another type (see *Recursive types*); its `NO_SCAN` is not asked for and counts as
///   `false`. The field is traced as usual.
/// - `#[gc(no_scan)]` on the type: declares that the type holds no traced handle.
///   `NO_SCAN` is `true` and the methods do nothing. Every field that is not skipped is
///   checked at compile time to be `NO_SCAN`; the error names the field. A `no_scan` type
///   may implement `Drop`: it has no handle that could point at a dead object.
///
/// # Recursive types
///
/// `NO_SCAN` of `enum Expr { Lit(u64), Add(Box<Expr>, Box<Expr>) }` would depend on
/// itself, which rustc rejects ("cycle detected when elaborating drops"). So a field whose
/// type names the deriving type (or `Self`) counts as `NO_SCAN = false` without being
/// asked: the type is scanned, which is always correct. A cycle through other types
/// (`Dir { entries: Vec<Entry> }` with `enum Entry { File(String), Dir(Dir) }`) cannot be
/// seen by the derive; mark one field on it `#[gc(recursive)]` (here `entries`).
///
/// # `Drop`
///
/// Without `#[gc(no_scan)]`, implementing `Drop` for the type is rejected with "conflicting
/// implementations of trait `RemoveDropImplOrMarkTypeGcNoScan`": the sweeper drops dead
/// objects in no particular order, so a destructor could see handles to freed objects.
/// Keep resources in fields of noscan types (`File`, `Vec<u8>`, your own
/// `#[gc(no_scan)]` types), whose destructors run normally.
///
/// # Generics
///
/// Each type parameter that appears in a traced field gets a `T: Trace` bound; one that
/// appears only in skipped fields gets `T: Send + Sync + 'static`. Existing bounds and
/// `where` clauses are kept. Lifetime parameters are rejected: a GC object must be
/// `'static`, since it lives until a collection frees it rather than until a borrow ends.
///
/// # Rejected inputs
///
/// Unions, lifetime parameters, `#[repr(packed)]` types (unless `#[gc(no_scan)]`), unknown
/// or misplaced `gc` attributes: each is a spanned compile error that says what to write
/// instead. Every error in the input is reported in the same build.
#[proc_macro_derive(Trace, attributes(gc))]
pub fn derive_trace(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    expand::derive(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
