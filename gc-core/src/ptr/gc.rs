//! `Gc<T>`: a shared pointer to an object in the GC heap.
//!
//! # Representation
//!
//! One word: the address of the object's header (or, for tiny objects, of the value inside its
//! tiny block), with bit 0 as the *rooted* flag (DESIGN §4). Objects are at least 2-aligned
//! (tiny objects are placed at alignment ≥ 2 for this reason), so the bit is free, and the
//! pointer is never null, so `Option<Gc<T>>` is one word too.
//!
//! # Roots
//!
//! A rooted handle (on the stack, in a `Box`, a `Vec` you own, an `Arc`…) counts in its
//! object's root count; an unrooted handle is an edge inside a heap object and counts nothing.
//! `Gc::new` and `clone` make rooted handles; `Gc::new` unroots the handles inside the value it
//! moves into the heap ([`Trace::unroot`]); dropping a rooted handle decrements, dropping an
//! unrooted one touches nothing.
//!
//! Cloning or dropping a *rooted* handle is not a mutator operation (no handshake): the object
//! is a root before and after a clone, and when the last rooted handle is dropped nothing can
//! reach through it any more (every `&` into the object borrowed from a handle, and handles to
//! what it points at were obtained through operations). Cloning an *unrooted* handle makes an
//! object a root that may not have been one, so it is an operation.
//!
//! # The barrier (DESIGN §6)
//!
//! While the collector marks, every root-count change shades the object (marks it; if it was
//! unmarked and holds handles, queues it grey), so that the snapshot taken at mark setup stays
//! reachable for the marker:
//!
//! - Changes inside an operation (cloning an edge, `GcSlot` loads and stores, `GcCell`
//!   borrows, `Gc::new` unrooting the value's handles) read the phase and shade. The
//!   operation keeps the collector from finishing the mark in between (mark termination
//!   waits for operations in progress).
//! - Cloning a rooted handle needs no shade: the object's count is at least one before and
//!   after, and it can reach zero only through a drop, which shades (or finds the object
//!   marked already).
//! - Dropping a rooted handle reads the phase *first*. Outside marking it only decrements:
//!   one load, one branch and the decrement, with no fence. A drop that read `Idle` just
//!   before mark setup published `Marking` does nothing between that read and its decrement,
//!   so it is the same as a drop that happened entirely before mark setup: the object was
//!   then not a root of the snapshot (if nothing else held it) and is rightly left unmarked.
//!   While marking, it takes the slow path: if the object is marked already (born black, or
//!   shaded or traced first), shading would change nothing and it only decrements; otherwise
//!   it enters an operation that shades and then decrements.

use core::any::type_name;
use core::borrow::Borrow;
use core::cmp::Ordering as CmpOrdering;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::marker::PhantomData;
use core::mem::{align_of, needs_drop, size_of};
use core::ops::Deref;
use core::ptr::NonNull;

use crate::gc::barrier::{is_marked, shade};
use crate::gc::global::{collector, with_op, with_op_reentrant};
use crate::gc::phase::marking;
use crate::heap::{size_class_for, tiny_roots_of, Address, AllocError, SpanClass, TINY_BLOCK};
use crate::ptr::header::{ObjectHeader, TypeDescriptor, ROOTS_SATURATED, ROOTS_STICKY};
use crate::sync::atomic::{AtomicU32, Ordering};
use crate::trace::{Trace, Tracer};

const ROOTED: usize = 1;

/// The heap layout of a non-tiny object: the header, then the value.
#[repr(C)]
pub(crate) struct GcBox<T> {
    header: ObjectHeader,
    value: T,
}

/// A shared pointer to a value in the garbage-collected heap.
///
/// `Gc<T>` is like `Arc<T>` (cheap to clone, `Send + Sync`, dereferences to `&T`) except that
/// cycles are collected: put handles inside heap objects (through [`crate::GcCell`],
/// [`crate::GcSlot`] or plain fields), drop the outside ones, and [`crate::collect`] (or the
/// automatic collector) frees the whole cycle. `Debug`, `Display`, comparisons and `Hash`
/// delegate to `T`, as `Rc`'s do.
///
/// ```
/// use gc_core::{Gc, GcSlot, Trace};
///
/// #[derive(Trace)]
/// struct Node {
///     name: String,
///     next: GcSlot<Node>,
/// }
///
/// let a = Gc::new(Node { name: "a".into(), next: GcSlot::new(None) });
/// let b = Gc::new(Node { name: "b".into(), next: GcSlot::new(Some(a.clone())) });
/// a.next.store(Some(b.clone())); // a -> b -> a: a cycle
/// assert_eq!(a.next.load().unwrap().name, "b");
/// drop((a, b));
/// gc_core::collect(); // both nodes are dropped
/// ```
pub struct Gc<T: Trace> {
    ptr: NonNull<u8>,
    _marker: PhantomData<T>,
}

// SAFETY: `T: Trace` implies `T: Send + Sync`; a `Gc<T>` gives shared access to `T` from any
// thread and its root-count updates are atomic, like `Arc<T>`.
unsafe impl<T: Trace> Send for Gc<T> {}
// SAFETY: as above.
unsafe impl<T: Trace> Sync for Gc<T> {}

impl<T: Trace> Gc<T> {
    /// Whether `T` lives in a tiny block (no header; root count in the span's side table).
    const TINY: bool =
        T::NO_SCAN && !needs_drop::<T>() && size_of::<T>() < TINY_BLOCK && align_of::<T>() <= 8;

    /// The span class of `GcBox<T>`, or `None` for a large object (decided at compile time).
    const CLASS: Option<SpanClass> =
        match size_class_for(size_of::<GcBox<T>>(), align_of::<GcBox<T>>()) {
            Some(sc) => Some(SpanClass::new(sc, T::NO_SCAN)),
            None => None,
        };

    /// The type descriptor of `GcBox<T>`.
    const DESCRIPTOR: TypeDescriptor = TypeDescriptor {
        trace: if T::NO_SCAN {
            None
        } else {
            Some(trace_box::<T>)
        },
        drop: if T::NEEDS_DROP {
            Some(drop_box::<T>)
        } else {
            None
        },
        size: size_of::<GcBox<T>>(),
        align: align_of::<GcBox<T>>(),
        name: type_name::<T>,
    };

    /// Moves `value` into the GC heap. Panics with the allocation error's message if the heap
    /// cannot grow (see [`Gc::try_new`]).
    #[inline]
    pub fn new(value: T) -> Gc<T> {
        match Gc::try_new(value) {
            Ok(g) => g,
            Err(e) => alloc_failed(e),
        }
    }

    /// Moves `value` into the GC heap, or reports why it cannot: out of address space or
    /// memory, or the configured memory limit. On error `value` is dropped before this returns.
    pub fn try_new(value: T) -> Result<Gc<T>, AllocError> {
        const {
            assert!(
                align_of::<GcBox<T>>() <= crate::heap::PAGE_SIZE,
                "gc-core supports alignments up to 8 KiB"
            )
        };
        // The value goes into the heap only once its slot exists; if allocation fails it is
        // dropped after the operation (its destructor is user code, which must not run inside
        // one).
        let mut value = core::mem::ManuallyDrop::new(value);
        let r = with_op(|op| -> Result<Gc<T>, AllocError> {
            if Self::TINY {
                // SAFETY: tiny types hold no traced handle and need no drop (TINY's definition).
                let a = unsafe { op.alloc_tiny(size_of::<T>(), align_of::<T>().max(2)) }?;
                // SAFETY: the tiny allocation has room for a `T` at a `T`-aligned address; the
                // value is moved out of the `ManuallyDrop` exactly once (on success only).
                unsafe {
                    a.as_mut_ptr::<T>()
                        .write(core::mem::ManuallyDrop::take(&mut value))
                };
                // SAFETY: the block is allocated and in use by us.
                let roots = unsafe { tiny_roots_of(a) }.expect("tiny objects live in tiny spans");
                inc_tiny(roots);
                Ok(Gc::from_addr(a))
            } else {
                let desc: &'static TypeDescriptor = &Self::DESCRIPTOR;
                // SAFETY: the header (whose descriptor's drop fits `GcBox<T>`) is written below,
                // inside this operation.
                let a = unsafe {
                    match Self::CLASS {
                        Some(class) => op.alloc(class, T::NEEDS_DROP),
                        None => op.alloc_large(size_of::<GcBox<T>>(), T::NO_SCAN, T::NEEDS_DROP),
                    }
                }?;
                let boxed = a.as_mut_ptr::<GcBox<T>>();
                // SAFETY: the slot is ours, large and aligned enough for a `GcBox<T>`; the value
                // is moved out of the `ManuallyDrop` exactly once (on success only).
                unsafe {
                    boxed.write(GcBox {
                        header: ObjectHeader::new(desc, 1),
                        value: core::mem::ManuallyDrop::take(&mut value),
                    })
                };
                // SAFETY: the value now lives in the heap: its handles become edges, which
                // tracing from this (rooted, hence marked) object reaches. Inside the operation,
                // no collection can observe the moment between.
                unsafe { (*boxed).value.unroot() };
                Ok(Gc::from_addr(a))
            }
        });
        let g = match r {
            Ok(g) => g,
            Err(e) => {
                // SAFETY: allocation failed before the value was taken out.
                unsafe { core::mem::ManuallyDrop::drop(&mut value) };
                return Err(e);
            }
        };
        collector().maybe_collect();
        Ok(g)
    }

    #[inline(always)]
    fn from_addr(a: Address) -> Gc<T> {
        let p = a.as_mut_ptr::<u8>();
        // SAFETY: allocations are never null; the address is at least 2-aligned, so setting
        // bit 0 keeps it non-null.
        let ptr = unsafe { NonNull::new_unchecked(p.map_addr(|x| x | ROOTED)) };
        Gc {
            ptr,
            _marker: PhantomData,
        }
    }

    /// The object's address without the rooted bit.
    #[inline(always)]
    fn raw(&self) -> NonNull<u8> {
        // SAFETY: clearing bit 0 of an (at least 2-aligned) object address leaves it non-null.
        unsafe { NonNull::new_unchecked(self.ptr.as_ptr().map_addr(|x| x & !ROOTED)) }
    }

    #[inline(always)]
    fn is_rooted(&self) -> bool {
        self.ptr.as_ptr().addr() & ROOTED != 0
    }

    #[inline(always)]
    fn header(&self) -> &ObjectHeader {
        debug_assert!(!Self::TINY);
        // SAFETY: non-tiny objects start with their header; the object is alive while a
        // handle to it can be used (invariant I1).
        unsafe { &*self.raw().as_ptr().cast::<ObjectHeader>() }
    }

    #[inline(always)]
    fn tiny_roots(&self) -> &AtomicU32 {
        // SAFETY: the object is alive (I1), so its span is in use.
        unsafe { tiny_roots_of(Address::from_ptr(self.raw().as_ptr())) }
            .expect("tiny objects live in tiny spans")
    }

    /// Counts one more root, with no barrier: for cloning a handle that is already a root.
    #[inline(always)]
    fn inc_roots(&self) {
        if Self::TINY {
            inc_tiny(self.tiny_roots());
        } else {
            self.header().inc_roots();
        }
    }

    /// Counts one root fewer, with no barrier.
    #[inline(always)]
    fn dec_roots(&self) {
        if Self::TINY {
            dec_tiny(self.tiny_roots());
        } else {
            self.header().dec_roots();
        }
    }

    /// Counts one more root inside a mutator operation, shading the object while marking.
    #[inline(always)]
    fn inc_roots_in_op(&self) {
        self.inc_roots();
        if marking() {
            shade(self.raw());
        }
    }

    /// Counts one root fewer inside a mutator operation, shading the object first while
    /// marking (it is certainly alive before the decrement).
    #[inline(always)]
    fn dec_roots_in_op(&self) {
        if marking() {
            shade(self.raw());
        }
        self.dec_roots();
    }

    /// The drop barrier's slow path (see the module docs): inside an operation, shade then
    /// decrement. The drop may come from inside an operation already (a heap slot or cell
    /// giving up its counted handles as it is unrooted); then it runs inline.
    ///
    /// Most objects dropped while marking are marked already (born black, or reached first),
    /// and shading them would change nothing: for those the decrement needs no operation. A
    /// mark bit read while the phase is `Marking` is this cycle's (mark setup starts from swept
    /// spans); one read just before a later cycle's mark setup makes the drop a drop that
    /// happened before that mark setup, as for a drop that read `Idle`.
    #[cold]
    #[inline(never)]
    fn drop_root_while_marking(&self) {
        if is_marked(self.raw()) {
            self.dec_roots();
        } else {
            with_op_reentrant(|| self.dec_roots_in_op());
        }
    }

    /// Whether two handles point at the same object.
    #[inline]
    pub fn ptr_eq(this: &Gc<T>, other: &Gc<T>) -> bool {
        this.raw() == other.raw()
    }

    /// A raw pointer to the value. Valid while some handle to the object is.
    #[inline]
    pub fn as_ptr(this: &Gc<T>) -> *const T {
        &**this as *const T
    }

    /// The number of rooted handles to the object right now (saturated counts read as
    /// 2^31 or more). For a tiny object (noscan, no drop glue, under 16 bytes), the count of
    /// its whole 16-byte block, which it shares with its neighbours. For diagnostics and tests.
    pub fn root_count(this: &Gc<T>) -> u32 {
        if Self::TINY {
            this.tiny_roots().load(Ordering::Acquire)
        } else {
            this.header().roots()
        }
    }

    /// The object's address (header, or value for tiny objects), without the rooted bit.
    #[inline(always)]
    pub(crate) fn addr_of(this: &Gc<T>) -> NonNull<u8> {
        this.raw()
    }

    /// Gives up the handle without touching the root count, returning the object's address.
    /// The count it held (if rooted) is now the caller's to account for.
    #[inline(always)]
    pub(crate) fn raw_rooted_into(this: Gc<T>) -> *mut u8 {
        let p = this.raw().as_ptr();
        core::mem::forget(this);
        p
    }

    /// Rebuilds a rooted handle that owns one already-counted root.
    ///
    /// # Safety
    ///
    /// - `p` is the address of a live `T` object, and the caller hands over one root count.
    #[inline(always)]
    pub(crate) unsafe fn from_raw_rooted(p: NonNull<u8>) -> Gc<T> {
        Gc::from_addr(Address::from_ptr(p.as_ptr()))
    }

    /// Makes a rooted handle from an object address, counting the new root.
    ///
    /// # Safety
    ///
    /// - `p` is the address of a live `T` object; the caller is inside a mutator operation or
    ///   otherwise keeps the object alive until the count is taken.
    #[inline(always)]
    pub(crate) unsafe fn rooted_from_raw(p: NonNull<u8>) -> Gc<T> {
        let g = Gc::<T>::from_addr(Address::from_ptr(p.as_ptr()));
        g.inc_roots_in_op();
        g
    }
}

#[inline(always)]
fn inc_tiny(roots: &AtomicU32) {
    let old = roots.fetch_add(1, Ordering::Relaxed);
    if old >= ROOTS_SATURATED {
        roots.fetch_sub(1, Ordering::Relaxed);
    }
}

#[inline(always)]
fn dec_tiny(roots: &AtomicU32) {
    if roots.fetch_sub(1, Ordering::Release) >= ROOTS_STICKY {
        roots.fetch_add(1, Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
fn alloc_failed(e: AllocError) -> ! {
    panic!("{e}")
}

/// # Safety
///
/// - `p` is the header address of an initialised `GcBox<T>`.
unsafe fn trace_box<T: Trace>(p: *const u8, tracer: &mut Tracer) {
    // SAFETY: the caller's contract.
    unsafe { (*p.cast::<GcBox<T>>()).value.trace(tracer) }
}

/// # Safety
///
/// - `p` is the header address of an initialised `GcBox<T>` that is dead and not yet dropped.
unsafe fn drop_box<T: Trace>(p: *mut u8) {
    // SAFETY: the caller's contract: the value is dropped once, in place.
    unsafe { core::ptr::drop_in_place(&mut (*p.cast::<GcBox<T>>()).value) }
}

impl<T: Trace> Deref for Gc<T> {
    type Target = T;

    #[inline(always)]
    fn deref(&self) -> &T {
        let p = self.raw().as_ptr();
        #[cfg(feature = "poison")]
        if !Self::TINY {
            // A freed slot is filled with POISON: a header made of it means use-after-free.
            let word = self.header().raw_word();
            assert_ne!(
                word,
                u64::from_ne_bytes([crate::heap::POISON; 8]),
                "gc-core (poison): dereferenced a Gc to a freed object"
            );
        }
        if Self::TINY {
            // SAFETY: tiny objects are the value itself; alive while this handle is (I1).
            unsafe { &*p.cast::<T>() }
        } else {
            // SAFETY: as above, for the value after the header.
            unsafe { &(*p.cast::<GcBox<T>>()).value }
        }
    }
}

impl<T: Trace> Clone for Gc<T> {
    /// Another rooted handle to the same object.
    #[inline]
    fn clone(&self) -> Gc<T> {
        if self.is_rooted() {
            self.inc_roots();
        } else {
            // An edge becoming a root: an operation, whose barrier shades while marking.
            with_op(|_| self.inc_roots_in_op());
        }
        Gc::from_addr(Address::from_ptr(self.raw().as_ptr()))
    }
}

impl<T: Trace> Drop for Gc<T> {
    #[inline]
    fn drop(&mut self) {
        if self.is_rooted() {
            if marking() {
                self.drop_root_while_marking();
            } else {
                self.dec_roots();
            }
        }
    }
}

// SAFETY: a `Gc` is exactly one traced handle: `trace` reports it, `root`/`unroot` flip its
// rooted bit and count, idempotently.
unsafe impl<T: Trace> Trace for Gc<T> {
    const NO_SCAN: bool = false;
    // Dropping an unrooted handle (the only kind in the heap) does nothing.
    const NEEDS_DROP: bool = false;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        tracer.edge(self.raw());
    }

    #[inline]
    fn root(&mut self) {
        if !self.is_rooted() {
            self.inc_roots_in_op();
            self.ptr = self.raw().map_addr(|a| a | ROOTED);
        }
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        if self.is_rooted() {
            self.dec_roots_in_op();
            self.ptr = self.raw();
        }
    }
}

impl<T: Trace + fmt::Debug> fmt::Debug for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Trace + fmt::Display> fmt::Display for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Trace> fmt::Pointer for Gc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Pointer::fmt(&Gc::as_ptr(self), f)
    }
}

impl<T: Trace + PartialEq> PartialEq for Gc<T> {
    fn eq(&self, other: &Gc<T>) -> bool {
        **self == **other
    }
}

impl<T: Trace + Eq> Eq for Gc<T> {}

impl<T: Trace + PartialOrd> PartialOrd for Gc<T> {
    fn partial_cmp(&self, other: &Gc<T>) -> Option<CmpOrdering> {
        (**self).partial_cmp(&**other)
    }
}

impl<T: Trace + Ord> Ord for Gc<T> {
    fn cmp(&self, other: &Gc<T>) -> CmpOrdering {
        (**self).cmp(&**other)
    }
}

impl<T: Trace + Hash> Hash for Gc<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state)
    }
}

impl<T: Trace> Borrow<T> for Gc<T> {
    fn borrow(&self) -> &T {
        self
    }
}

impl<T: Trace> AsRef<T> for Gc<T> {
    fn as_ref(&self) -> &T {
        self
    }
}

impl<T: Trace + Default> Default for Gc<T> {
    fn default() -> Gc<T> {
        Gc::new(T::default())
    }
}

impl<T: Trace> From<T> for Gc<T> {
    fn from(value: T) -> Gc<T> {
        Gc::new(value)
    }
}
