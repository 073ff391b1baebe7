//! Tracing: how the collector finds the handles inside a value.
//!
//! # The problem
//!
//! Rust has no stack maps and no object layouts the collector could read, so every type
//! stored in the GC heap describes its own outgoing edges. That description is the
//! [`Trace`] trait: an `unsafe` trait, because the collector frees every object that
//! tracing does not reach, and a wrong description is a use-after-free.
//!
//! # The protocol
//!
//! A *handle* is a `Gc`, `GcCell` or `GcSlot` (the traced pointer types). A handle is
//! either *rooted* (it lives outside the heap and is counted in its target's root count)
//! or *unrooted* (it is an edge inside a GC object, found by tracing). [`Trace`] has one
//! method per thing the collector needs to do to the handles *directly* inside a value,
//! that is, through owned containers (`Box`, `Vec`, `HashMap`, …) but never through
//! another `Gc`:
//!
//! - [`Trace::trace`] reports each handle's target to a [`Tracer`]; the marker (Go's
//!   `scanobject`) drains the tracer and greys the targets.
//! - [`Trace::unroot`] turns each handle into an edge. `Gc::new` calls it on the value it
//!   moves into the heap, and a `GcCell` calls it when a mutable borrow ends.
//! - [`Trace::root`] is the inverse. A `GcCell` calls it when a mutable borrow starts, so
//!   that anything moved out of the cell while it is borrowed is a root.
//! - [`Trace::NO_SCAN`] says, at compile time, that no value of the type can hold a handle:
//!   `Gc<T>` then goes to a *noscan* span and is never traced (Go's `noscan` size classes).
//!
//! # Where the implementations live
//!
//! - `impls.rs`: primitives, `String`, and the std containers, which delegate to their
//!   elements (and skip all work when the element type is `NO_SCAN`).
//! - `opaque.rs`: `Arc`, `Mutex`, `RwLock`, `OnceLock`, atomics, …: types that share or
//!   mutate their content without our barrier. They are never traversed, so the handles
//!   inside them stay rooted: a cycle through them leaks, and nothing is freed early.
//! - `derive_support.rs`: hidden items that `#[derive(Trace)]` expands to.
//! - The handle types implement `Trace` next to their definitions.

/// The body of a `Trace` impl for a type that holds no handle it must report (a leaf, or an
/// opaque type whose handles stay rooted): `NO_SCAN`, and three methods that do nothing.
macro_rules! opaque_body {
    () => {
        const NO_SCAN: bool = true;
        #[inline]
        fn trace(&self, _: &mut Tracer) {}
        #[inline]
        fn root(&mut self) {}
        #[inline]
        unsafe fn unroot(&mut self) {}
    };
}

mod impls;
mod opaque;

#[doc(hidden)]
pub mod derive_support;

use core::fmt;
use core::ptr::NonNull;

/// A type whose values the collector can trace: it can live in the GC heap.
///
/// Implement it with `#[derive(Trace)]` (re-exported as [`gc_core::Trace`](crate::Trace)),
/// which upholds every rule below by construction. Write an impl by hand only for a new
/// container type, and then delegate to the element types the way the std impls do.
///
/// # Safety
///
/// The collector frees every heap object that neither a rooted handle nor tracing reaches.
/// An implementation must therefore obey these rules; breaking any of them can free a
/// reachable object, which is undefined behavior.
///
/// 1. **Completeness.** [`trace`](Trace::trace) reports every handle (`Gc`, `GcCell`,
///    `GcSlot`) reachable from `self` without passing through another `Gc`: the handles in
///    its fields, in owned containers (`Box`, `Vec`, maps, …) and in their elements, by
///    calling `Trace::trace` on each part that can hold one. A handle that is not
///    reported is not marked, and the object it points to is freed while still reachable.
///    It reports only handles that are part of `self`.
/// 2. **Symmetry.** [`root`](Trace::root) and [`unroot`](Trace::unroot) visit exactly the
///    handles that `trace` visits, no more and no fewer: a handle that `unroot` makes an
///    edge must be found by `trace`, and a handle that `trace` skips must stay rooted.
/// 3. **`NO_SCAN`.** [`NO_SCAN`](Trace::NO_SCAN) is `true` only if no value of the type can
///    contain a handle that `trace` would report. When it is `true`, `trace`, `root` and
///    `unroot` must do nothing: the collector never traces a noscan object, and containers
///    skip the calls altogether. (`false` is always allowed; it only costs scanning.)
/// 4. **No hidden mutation.** The type has no interior mutability that can add, remove or
///    move a handle that `trace` reports, except through `GcCell` and `GcSlot`, whose
///    barriers keep the concurrent marker correct. `trace` runs on a collector thread
///    while mutators hold `&self`. A type that hides handles behind other interior
///    mutability or sharing must be *opaque*: it reports none of them and roots/unroots
///    none of them. That is why `Mutex`, `RwLock`, `OnceLock`, atomics and `Arc` are
///    opaque. (`Rc`, `RefCell` and `Cell` cannot implement `Trace` at all: the GC heap is
///    shared between threads, so `Trace` requires `Send + Sync`.)
/// 5. **No `Drop` that looks through handles.** Dead objects are dropped by the sweeper, in
///    no particular order, possibly on another thread, and an edge of a dead object may
///    point at an object that is already freed. `Self` (and every part that `trace`
///    visits) must not implement `Drop` in a way that dereferences a handle it holds.
///    The derive turns a `Drop` impl into a compile error unless the type is
///    `#[gc(no_scan)]`, i.e. holds no handle at all.
/// 6. **Rooted by default** (for handle types). A handle, or a handle container such as
///    `GcCell` or `GcSlot`, becomes unrooted only through its own `unroot` and becomes
///    rooted again through its own `root`; both are idempotent. Handles stored into a
///    value that was never unrooted (a `GcSlot` on the stack, a `GcCell` inside a
///    `Mutex`) stay rooted. This is what makes opaque types and `#[gc(skip)]` safe: what
///    tracing never visits is never unrooted, so it keeps its targets alive.
/// 7. **No re-entry.** `trace`, `root` and `unroot` do not allocate GC objects, do not call
///    into the collector (`collect`, borrowing a `GcCell`), do not block, and do not panic
///    on valid data.
///
/// `Send + Sync + 'static` are supertraits, so the compiler checks those: a GC object
/// lives until a collection frees it (not until a borrow ends), and it can be traced,
/// used and dropped on any thread.
///
/// # Examples
///
/// The safe route is the derive (the `derive` feature, on by default):
///
#[cfg_attr(feature = "derive", doc = "```")]
#[cfg_attr(not(feature = "derive"), doc = "```ignore")]
/// use gc_core::Trace;
///
/// /// A resource owned through a raw id; not `Trace`, so the field is skipped.
/// struct ExternalHandle(u32);
///
/// #[derive(Trace)]
/// struct Entry {
///     id: u64,
///     name: String,
///     tags: Vec<(String, u32)>,
///     #[gc(skip)]
///     handle: ExternalHandle,
/// }
///
/// // No field can hold a handle, so `Gc<Entry>` goes to a noscan span.
/// assert!(<Entry as Trace>::NO_SCAN);
/// # let _ = Entry { id: 1, name: String::new(), tags: Vec::new(), handle: ExternalHandle(0) };
/// ```
///
/// A hand-written impl for a container delegates to its parts, and skips the work when
/// the element type can hold no handle:
///
/// ```
/// use gc_core::{Trace, Tracer};
///
/// /// Two values, stored inline.
/// pub struct Pair<T> {
///     first: T,
///     second: T,
/// }
///
/// // SAFETY: `Pair` owns exactly `first` and `second`; `trace`, `root` and `unroot` visit
/// // both (rules 1 and 2), `NO_SCAN` is `T`'s (rule 3), `Pair` adds no interior mutability
/// // (rule 4) and no `Drop` (rule 5), and it is not a handle type (rule 6).
/// unsafe impl<T: Trace> Trace for Pair<T> {
///     const NO_SCAN: bool = T::NO_SCAN;
///
///     fn trace(&self, tracer: &mut Tracer) {
///         if T::NO_SCAN {
///             return;
///         }
///         self.first.trace(tracer);
///         self.second.trace(tracer);
///     }
///
///     fn root(&mut self) {
///         if T::NO_SCAN {
///             return;
///         }
///         self.first.root();
///         self.second.root();
///     }
///
///     unsafe fn unroot(&mut self) {
///         if T::NO_SCAN {
///             return;
///         }
///         // SAFETY: `first` is part of `*self`, so the caller's guarantee covers it.
///         unsafe { self.first.unroot() };
///         // SAFETY: as above, for `second`.
///         unsafe { self.second.unroot() };
///     }
/// }
///
/// assert!(<Pair<u64> as Trace>::NO_SCAN);
/// # let _ = Pair { first: 1u8, second: 2u8 };
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in the GC heap: it does not implement `Trace`",
    label = "`{Self}` does not implement `Trace`",
    note = "derive it with `#[derive(Trace)]`, or mark the field `#[gc(skip)]` (a skipped field \
            is never traced: handles inside it stay rooted, so a cycle through it leaks)",
    note = "`Rc`, `RefCell` and `Cell` can never be `Trace` (GC objects are shared between \
            threads): use `Gc`, `GcCell`/`GcSlot`, or `Arc`/`Mutex` (opaque, never traced)"
)]
pub unsafe trait Trace: Send + Sync + 'static {
    /// True when no value of this type can contain a traced handle (`Gc`, `GcCell`,
    /// `GcSlot`).
    ///
    /// Decides at compile time whether a `Gc<Self>` goes to a noscan span, which the
    /// collector never traces, and lets containers skip visiting their elements. When it
    /// is `true`, [`trace`](Trace::trace), [`root`](Trace::root) and
    /// [`unroot`](Trace::unroot) must be no-ops (rule 3).
    ///
    /// It must not depend on itself: rustc rejects a constant whose evaluation needs its
    /// own value. For a recursive type (`Box<Self>`, `Vec<Self>`), count the recursive part
    /// as `false`, as the derive does.
    const NO_SCAN: bool;

    /// Whether dropping a value of this type does anything once the value is in the heap
    /// (its handles unrooted). Defaults to [`core::mem::needs_drop`].
    ///
    /// Dropping an unrooted handle touches nothing, so a type whose drop glue only drops
    /// handles (`Gc`, `GcSlot`, `Option<Gc<T>>`, a derived struct of such fields) has nothing
    /// to do when it dies in the heap: with `NEEDS_DROP == false` the collector frees it by
    /// clearing a bit, without queuing a drop. Being wrongly `false` only leaks what the drop
    /// would have released (it is never unsound); being wrongly `true` only costs time.
    const NEEDS_DROP: bool = core::mem::needs_drop::<Self>();

    /// Reports every traced handle directly inside `self` to `tracer`.
    ///
    /// "Directly" means through owned containers, not through other `Gc` pointers: the
    /// marker traces those objects in turn. Runs on a collector thread, concurrently with
    /// mutators that hold `&self`. Must not allocate GC objects, call into the collector,
    /// block, or panic on valid data (rule 7).
    fn trace(&self, tracer: &mut Tracer);

    /// Turns every handle directly inside `self` into a rooted one, counted in its
    /// target's root count.
    ///
    /// `GcCell::borrow_mut` calls it when the borrow starts, so that anything moved out
    /// while the cell is borrowed is a root. Visits the same handles as
    /// [`trace`](Trace::trace) (rule 2).
    ///
    /// Calling it is always memory-safe: rooting an already rooted handle does nothing
    /// (rule 6), and a needlessly rooted handle only keeps its target alive longer.
    fn root(&mut self);

    /// Turns every rooted handle directly inside `self` into an unrooted edge, the inverse
    /// of [`root`](Trace::root).
    ///
    /// `Gc::new` calls it on the value it moves into the heap, and `GcCell` calls it when a
    /// mutable borrow ends. Visits the same handles as [`trace`](Trace::trace) (rule 2).
    /// Implementations call `unroot` on those parts, each in its own `unsafe` block that
    /// passes the caller's guarantee on (a part of a value in the heap is in the heap).
    ///
    /// # Safety
    ///
    /// After the call, only tracing keeps the targets of the handles in `self` alive. The
    /// caller must guarantee that:
    ///
    /// - `self` is, from this call until its handles are rooted again or dropped, part of
    ///   the content of a GC object, reached by tracing whenever that object is live (or is
    ///   about to become such content within the same barrier-protected operation, as in
    ///   `Gc::new`);
    /// - no handle of `self` is used from outside the heap after the call except through a
    ///   path the collector traces.
    ///
    /// Unrooting a value on the stack and then using its handles is a use-after-free.
    unsafe fn unroot(&mut self);
}

/// Collects the outgoing edges of the object being traced; the marker drains it.
///
/// A `Tracer` only stores addresses: it never dereferences them. It is created by the
/// collector; [`Trace::trace`] implementations only pass it on to their parts, and the
/// handle types' impls record their targets with `Tracer::edge`.
pub struct Tracer {
    edges: Vec<NonNull<u8>>,
}

impl Tracer {
    /// An empty tracer. The marker keeps one per mark worker.
    pub(crate) fn new() -> Self {
        Tracer { edges: Vec::new() }
    }

    /// Records one edge: the address of the target object's header.
    // Used by the handle types' `Trace` impls (`Gc`, `GcCell`, `GcSlot`).
    #[allow(dead_code)]
    #[inline]
    pub(crate) fn edge(&mut self, header: NonNull<u8>) {
        self.edges.push(header);
    }

    /// Removes and yields every recorded edge, in the order they were recorded. The
    /// tracer keeps its capacity, so one tracer serves a whole mark worker.
    // Used by the marker (gc/mark.rs) after each `trace` call.
    #[allow(dead_code)]
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = NonNull<u8>> + '_ {
        self.edges.drain(..)
    }

    /// The number of recorded edges not yet drained (scan work, for the pacer).
    pub(crate) fn len(&self) -> usize {
        self.edges.len()
    }

    /// True when no edge is waiting to be drained.
    // Used by the marker (gc/mark.rs) to skip the drain step.
    #[allow(dead_code)]
    pub(crate) fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("pending_edges", &self.edges.len())
            .finish()
    }
}

/// A test-only element type with `NO_SCAN = false` that counts how it is visited.
#[cfg(test)]
pub(crate) mod probe {
    use super::{Trace, Tracer};
    use core::cmp::Ordering;
    use core::hash::{Hash, Hasher};
    use core::ptr::NonNull;

    /// Stands for a value holding one handle: `trace` records one (dangling, never
    /// dereferenced) edge, and `root`/`unroot` move `rooted` up and down.
    ///
    /// Equality, ordering and hashing use `id` only, so a probe can be a map key whose
    /// identity does not change when it is rooted.
    #[derive(Debug, Clone)]
    pub(crate) struct Probe {
        pub(crate) id: u32,
        pub(crate) rooted: i32,
    }

    impl Probe {
        pub(crate) fn new(id: u32) -> Self {
            Probe { id, rooted: 0 }
        }
    }

    impl PartialEq for Probe {
        fn eq(&self, other: &Self) -> bool {
            self.id == other.id
        }
    }

    impl Eq for Probe {}

    impl PartialOrd for Probe {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }

    impl Ord for Probe {
        fn cmp(&self, other: &Self) -> Ordering {
            self.id.cmp(&other.id)
        }
    }

    impl Hash for Probe {
        fn hash<H: Hasher>(&self, state: &mut H) {
            self.id.hash(state);
        }
    }

    // SAFETY: a probe holds no handle; the edge it reports is a dangling address that the
    // tests only count and never hand to a marker. It is only used in unit tests.
    unsafe impl Trace for Probe {
        const NO_SCAN: bool = false;

        fn trace(&self, tracer: &mut Tracer) {
            tracer.edge(NonNull::dangling());
        }

        fn root(&mut self) {
            self.rooted += 1;
        }

        unsafe fn unroot(&mut self) {
            self.rooted -= 1;
        }
    }

    /// `T::NO_SCAN`, as a function call so that tests can assert on it at run time.
    pub(crate) fn no_scan<T: Trace + ?Sized>() -> bool {
        T::NO_SCAN
    }

    /// Traces `value` with a fresh tracer and returns the number of recorded edges.
    pub(crate) fn edges<T: Trace + ?Sized>(value: &T) -> usize {
        let mut tracer = Tracer::new();
        value.trace(&mut tracer);
        let n = tracer.len();
        assert_eq!(tracer.drain().count(), n);
        assert!(tracer.is_empty());
        n
    }

    /// Unroots `value`. Probes hold no real handle, so this is always sound in tests.
    pub(crate) fn unroot<T: Trace + ?Sized>(value: &mut T) {
        // SAFETY: the tests only unroot values made of probes and plain data; a probe's
        // `unroot` decrements a counter and there is no real handle to keep alive.
        unsafe { value.unroot() }
    }
}

#[cfg(test)]
mod tests {
    use super::probe::{edges, no_scan, Probe};
    use super::{Trace, Tracer};
    use core::ptr::NonNull;

    #[test]
    fn tracer_records_and_drains_edges_in_order() {
        let mut a = 1u64;
        let mut b = 2u64;
        let pa = NonNull::from(&mut a).cast::<u8>();
        let pb = NonNull::from(&mut b).cast::<u8>();
        let mut tracer = Tracer::new();
        assert!(tracer.is_empty());
        tracer.edge(pa);
        tracer.edge(pb);
        assert_eq!(tracer.len(), 2);
        assert_eq!(format!("{tracer:?}"), "Tracer { pending_edges: 2 }");
        let drained: Vec<_> = tracer.drain().collect();
        assert_eq!(drained, vec![pa, pb]);
        assert!(tracer.is_empty());
        // A drained tracer is reused for the next object.
        tracer.edge(pa);
        assert_eq!(tracer.len(), 1);
    }

    #[test]
    fn probe_counts_visits() {
        let mut p = Probe::new(7);
        assert_eq!(edges(&p), 1);
        p.root();
        assert_eq!(p.rooted, 1);
        super::probe::unroot(&mut p);
        assert_eq!(p.rooted, 0);
        assert!(!no_scan::<Probe>());
    }
}
