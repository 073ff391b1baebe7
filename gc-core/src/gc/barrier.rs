//! The write barrier's slow path (DESIGN §6): shading.
//!
//! The fast paths live where the root counts change (`ptr/gc.rs`): each reads the phase word
//! ([`super::phase::marking`]) and branches here only while the collector marks. Shading sets
//! the object's mark bit and, if it was unmarked and holds handles, queues it grey for the
//! markers. It always runs inside a mutator operation, so mark termination (which waits for
//! the operations in progress) never finishes while a shade is half done.

use core::ptr::NonNull;

use super::global::collector;
use crate::heap::Address;

/// Shades the object at `p` (header address, or a tiny object's address).
///
/// Must be called inside a mutator operation, while the object is alive (the caller holds a
/// counted handle to it, or reached it through a live edge within the operation).
#[cold]
#[inline(never)]
pub(crate) fn shade(p: NonNull<u8>) {
    // A seeded mutant for the loom models: a barrier that forgets to shade.
    if cfg!(gc_core_mutant = "barrier") {
        return;
    }
    // SAFETY: the object is alive for the duration of this call (the caller's contract), so
    // its span is in use.
    unsafe { collector().heap.shade(Address::from_ptr(p.as_ptr())) }
}

/// Whether the object at `p` (header address, or a tiny object's address) is marked: the drop
/// barrier's check before it enters an operation to shade.
///
/// The caller holds a counted handle to the object, so it is alive.
#[inline]
pub(crate) fn is_marked(p: NonNull<u8>) -> bool {
    // A seeded mutant for the loom models: every object looks marked, so the drop barrier
    // never shades.
    if cfg!(gc_core_mutant = "dropmark") {
        return true;
    }
    // SAFETY: the object is alive for the duration of this call (the caller's contract), so
    // its span is in use.
    unsafe { collector().heap.is_marked(Address::from_ptr(p.as_ptr())) }
}
