//! `GcSlot<T>`: one mutable edge, lock-free and O(1).
//!
//! A slot holds an `Option<Gc<T>>` in one atomic word. Bit 0 of the word says whether the slot
//! is *rooted*: a slot outside the heap (on the stack, in a `Box`, inside an opaque `Arc`)
//! counts its handle in the target's root count, like any handle outside the heap; a slot
//! inside a heap object holds an uncounted edge, found by tracing. `Gc::new` unroots the slots
//! in the value it moves into the heap, and `GcCell::borrow_mut` roots those in its content
//! while borrowed (the flag changes only through `&mut`).
//!
//! `load`, `store`, `swap`, `take` and `compare_exchange` each run as one mutator operation
//! (`gc::global::with_op`): reading the pointer and counting the new root happen with no
//! collection in between, which is what makes `load` safe against a concurrent `store` that
//! turns the old target into garbage: the collector waits for operations in progress before it
//! marks, and sweeps only what marking did not reach.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::gc::global::with_op;
use crate::ptr::gc::Gc;
use crate::sync::atomic::{AtomicPtr, Ordering};
use crate::sync::AtomicMut;
use crate::trace::{Trace, Tracer};

const ROOTED: usize = 1;

/// One mutable, atomically updated edge `Option<Gc<T>>`.
///
/// ```
/// use gc_core::{Gc, GcSlot};
///
/// let slot = GcSlot::new(None);
/// slot.store(Some(Gc::new(7u64)));
/// assert_eq!(*slot.load().unwrap(), 7);
/// let old = slot.swap(Some(Gc::new(8)));
/// assert_eq!(old.as_deref(), Some(&7));
/// assert_eq!(slot.take().as_deref(), Some(&8));
/// assert!(slot.load().is_none());
/// ```
pub struct GcSlot<T: Trace> {
    word: AtomicPtr<u8>,
    _marker: PhantomData<Gc<T>>,
}

impl<T: Trace> GcSlot<T> {
    /// A slot holding `value` (a rooted slot: it is not in the heap yet).
    pub fn new(value: Option<Gc<T>>) -> Self {
        let p = match value {
            None => core::ptr::null_mut(),
            Some(mut g) => {
                g.root();
                Gc::raw_rooted_into(g)
            }
        };
        GcSlot {
            word: AtomicPtr::new(p.map_addr(|a| a | ROOTED)),
            _marker: PhantomData,
        }
    }

    #[inline(always)]
    fn slot_rooted(&self) -> bool {
        self.word.load(Ordering::Relaxed).addr() & ROOTED != 0
    }

    #[inline(always)]
    fn untag(p: *mut u8) -> Option<NonNull<u8>> {
        NonNull::new(p.map_addr(|a| a & !ROOTED))
    }

    /// Turns `value` into the slot's representation: the pointer, with its root count kept if
    /// the slot is rooted and given up if not. Called inside an operation.
    #[inline(always)]
    fn encode(&self, value: Option<Gc<T>>, rooted: bool) -> *mut u8 {
        let tag = if rooted { ROOTED } else { 0 };
        match value {
            None => core::ptr::null_mut::<u8>().map_addr(|_| tag),
            Some(mut g) => {
                g.root();
                if !rooted {
                    // SAFETY: the handle is about to become the edge of a heap object's slot,
                    // inside an operation (no collection observes the change half-done).
                    unsafe { g.unroot() };
                }
                Gc::raw_rooted_into(g).map_addr(|a| a | tag)
            }
        }
    }

    /// Turns a word taken out of the slot into a rooted handle. Called inside an operation.
    #[inline(always)]
    fn decode_owned(p: *mut u8, rooted: bool) -> Option<Gc<T>> {
        let raw = Self::untag(p)?;
        // SAFETY: the word was a handle to a live object (I1); a rooted slot's handle is
        // already counted and moves out as is; an unrooted slot's edge gets counted now, inside
        // the operation.
        Some(unsafe {
            if rooted {
                Gc::from_raw_rooted(raw)
            } else {
                Gc::rooted_from_raw(raw)
            }
        })
    }

    /// A rooted handle to the current target.
    #[inline]
    pub fn load(&self) -> Option<Gc<T>> {
        with_op(|_| {
            let p = Self::untag(self.word.load(Ordering::Acquire))?;
            // SAFETY: the target is alive: it was the slot's target an instant ago, and no
            // collection can free it before this operation ends and the new root is counted.
            Some(unsafe { Gc::rooted_from_raw(p) })
        })
    }

    /// Replaces the target, dropping the old edge.
    #[inline]
    pub fn store(&self, value: Option<Gc<T>>) {
        drop(self.swap(value));
    }

    /// Replaces the target and returns the old one (rooted).
    #[inline]
    pub fn swap(&self, value: Option<Gc<T>>) -> Option<Gc<T>> {
        with_op(|_| {
            let rooted = self.slot_rooted();
            let new = self.encode(value, rooted);
            let old = self.word.swap(new, Ordering::AcqRel);
            Self::decode_owned(old, rooted)
        })
    }

    /// Empties the slot and returns the old target (rooted).
    #[inline]
    pub fn take(&self) -> Option<Gc<T>> {
        self.swap(None)
    }

    /// If the slot points at `current` (the same object, or both empty), replaces it with `new`
    /// and returns the old target (rooted); otherwise returns `new` back.
    pub fn compare_exchange(
        &self,
        current: Option<&Gc<T>>,
        new: Option<Gc<T>>,
    ) -> Result<Option<Gc<T>>, Option<Gc<T>>> {
        with_op(|_| {
            let rooted = self.slot_rooted();
            let tag = if rooted { ROOTED } else { 0 };
            let expect = current
                .map_or(core::ptr::null_mut(), |g| Gc::addr_of(g).as_ptr())
                .map_addr(|a| a | tag);
            let new_ptr = new
                .as_ref()
                .map_or(core::ptr::null_mut(), |g| Gc::addr_of(g).as_ptr())
                .map_addr(|a| a | tag);
            match self
                .word
                .compare_exchange(expect, new_ptr, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(old) => {
                    // The slot now holds `new`'s pointer: hand over its count (rooted slot) or
                    // give it up (heap slot).
                    let stored = self.encode(new, rooted);
                    debug_assert_eq!(stored.addr(), new_ptr.addr());
                    Ok(Self::decode_owned(old, rooted))
                }
                Err(_) => Err(new),
            }
        })
    }
}

impl<T: Trace> Default for GcSlot<T> {
    fn default() -> Self {
        GcSlot::new(None)
    }
}

impl<T: Trace> Drop for GcSlot<T> {
    fn drop(&mut self) {
        let p = self.word.read_mut();
        if p.addr() & ROOTED != 0 {
            // A rooted slot owns one counted handle.
            drop(Self::decode_owned(p, true));
        }
    }
}

impl<T: Trace> fmt::Debug for GcSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.word.load(Ordering::Relaxed);
        f.debug_struct("GcSlot")
            .field("target", &Self::untag(p))
            .field("rooted", &(p.addr() & ROOTED != 0))
            .finish()
    }
}

// SAFETY: a slot holds at most one handle: `trace` reports it; `root`/`unroot` count or uncount
// it and flip the slot's rooted bit, idempotently, through `&mut` (no concurrent access).
unsafe impl<T: Trace> Trace for GcSlot<T> {
    const NO_SCAN: bool = false;
    // A slot in the heap is unrooted (a mutably borrowed cell's rooted slots are alive), and
    // dropping an unrooted slot does nothing.
    const NEEDS_DROP: bool = false;

    fn trace(&self, tracer: &mut Tracer) {
        if let Some(p) = Self::untag(self.word.load(Ordering::Acquire)) {
            tracer.edge(p);
        }
    }

    fn root(&mut self) {
        let p = self.word.read_mut();
        if p.addr() & ROOTED == 0 {
            if let Some(raw) = Self::untag(p) {
                // SAFETY: the slot's target is alive (I1); counting it makes the slot's handle
                // a root.
                core::mem::forget(unsafe { Gc::<T>::rooted_from_raw(raw) });
            }
            self.word.write_mut(p.map_addr(|a| a | ROOTED));
        }
    }

    unsafe fn unroot(&mut self) {
        let p = self.word.read_mut();
        if p.addr() & ROOTED != 0 {
            if let Some(raw) = Self::untag(p) {
                // SAFETY: the slot owns one counted handle; giving up the count is the caller's
                // contract (the slot is heap content reached by tracing). The handle ends
                // unrooted, so dropping it does nothing more.
                let mut g = unsafe { Gc::<T>::from_raw_rooted(raw) };
                // SAFETY: as above.
                unsafe { g.unroot() };
            }
            self.word.write_mut(p.map_addr(|a| a & !ROOTED));
        }
    }
}
