//! Items that `#[derive(Trace)]` expands to. Not part of the public API: reachable as
//! `gc_core::__private`, hidden from the docs, and free to change in any release.
//!
//! # Forbidding `Drop`
//!
//! A derived type that is not `#[gc(no_scan)]` may hold handles, and the sweeper may drop
//! it after the objects those handles point to (rule 5 of [`Trace`]). So it must not
//! implement `Drop`. Rust has no `T: !Drop` bound, but it has coherence: this module
//! implements [`RemoveDropImplOrMarkTypeGcNoScan`] for every `T: Drop`, and the derive
//! implements it once more for the deriving type. If the type implements `Drop`, the two
//! impls overlap and rustc reports "conflicting implementations of trait
//! `RemoveDropImplOrMarkTypeGcNoScan` for type `YourType`": the trait's name is the
//! message. (The same trick as gc-arena's `__MustNotImplDrop`.)
//!
//! # Checking `#[gc(no_scan)]`
//!
//! For a `#[gc(no_scan)]` type the derive asserts `<Field as Trace>::NO_SCAN` for every
//! field in a `const` item (or, for fields whose type mentions a generic parameter, in the
//! initializer of `NO_SCAN` itself), with a panic message naming the field; that needs
//! nothing from this module.

use super::{Trace, Tracer};

/// Implemented for every type that implements `Drop`, and by `#[derive(Trace)]` for every
/// derived type that is not `#[gc(no_scan)]`: a `Drop` impl on such a type makes the two
/// impls conflict, a compile error whose trait name says what to do.
///
/// Either remove the `Drop` impl (move the resource into a field of its own noscan type,
/// for example a `#[gc(no_scan)]` struct, and implement `Drop` there), or, if the type
/// holds no traced handle, mark it `#[gc(no_scan)]`. A type that may hold handles cannot
/// implement `Drop`, because the sweeper drops dead objects in no particular order and
/// its handles may point at objects that are already freed.
pub trait RemoveDropImplOrMarkTypeGcNoScan {}

// `T: Drop` is exactly the bound we want: the impl must exist for the types with a `Drop`
// impl of their own and for no others, so that the derive's impl conflicts with it.
#[allow(drop_bounds)]
impl<T: Drop + ?Sized> RemoveDropImplOrMarkTypeGcNoScan for T {}

/// Traces `value` with a fresh [`Tracer`] and returns how many edges it reported.
///
/// For the derive's own tests (a `Tracer` cannot be built outside this crate); also a way
/// to check a hand-written impl: the count is the number of handles `trace` visited.
pub fn count_traced_edges<T: Trace + ?Sized>(value: &T) -> usize {
    let mut tracer = Tracer::new();
    value.trace(&mut tracer);
    tracer.len()
}

#[cfg(test)]
mod tests {
    use super::super::probe::Probe;
    use super::*;

    struct WithDrop;

    impl Drop for WithDrop {
        fn drop(&mut self) {}
    }

    fn requires_marker<T: RemoveDropImplOrMarkTypeGcNoScan + ?Sized>() {}

    #[test]
    fn marker_is_implemented_for_drop_types() {
        requires_marker::<WithDrop>();
        requires_marker::<Vec<u8>>();
    }

    #[test]
    fn count_traced_edges_counts_reported_handles() {
        assert_eq!(count_traced_edges(&[Probe::new(0), Probe::new(1)]), 2);
        assert_eq!(count_traced_edges("no handles"), 0);
    }
}
