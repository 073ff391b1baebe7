//! Opaque types: `Trace` impls that never look inside.
//!
//! `Arc<T>`, `sync::Weak<T>`, `Mutex<T>`, `RwLock<T>`, `OnceLock<T>`, `LazyLock<T>`, the
//! atomics, channel senders, `JoinHandle<T>`, `&'static T`, `io::Error`, and
//! `dyn Any`/`dyn Error` (`+ Send + Sync`, for `Box<dyn …>`) implement `Trace` for *any*
//! content that keeps them `Send + Sync + 'static`; the content need not be `Trace`. They
//! are `NO_SCAN`, and `trace`, `root` and `unroot` do nothing.
//!
//! # Why they cannot be traversed
//!
//! Each of them either shares its content (`Arc`, `&'static`) or mutates it without going
//! through our write barrier (`Mutex`, `RwLock`, atomics, `OnceLock`):
//!
//! - A handle behind an `Arc` has several owners, some of which may live outside the heap.
//!   Unrooting it on behalf of one owner (a GC object) would unroot it for all of them,
//!   and there is no `&mut` access to it anyway.
//! - A handle behind a `Mutex` can be swapped by a mutator while the concurrent marker is
//!   reading it, with no barrier to tell the marker: the snapshot-at-the-beginning
//!   invariant would be lost (rule 4 of [`Trace`]).
//!
//! # Why that is safe: leaks, never UB
//!
//! Every handle starts out rooted, and only `unroot` makes it an edge (rule 6 of
//! [`Trace`]). Opaque impls never call `unroot` on their content, so every handle inside
//! them stays rooted, counted in its target's root count, for as long as it exists. A
//! rooted target is never collected. So the worst an opaque type can do is keep objects
//! alive, which is exactly what `Arc` does without this crate:
//!
//! ```ignore
//! // Illustrative (`Gc` lives in `gc_core::ptr`).
//! #[derive(Trace)]
//! struct Holder {
//!     shared: Arc<Gc<Node>>,
//! }
//!
//! let a = Gc::new(Node::default());    // `a` is rooted: roots(A) = 1
//! let shared = Arc::new(a.clone());    // the handle inside the Arc is rooted: roots(A) = 2
//! let h1 = Gc::new(Holder { shared: shared.clone() });
//! let h2 = Gc::new(Holder { shared: shared.clone() });
//! // `Gc::new` unrooted each Holder's content, but `unroot` does not enter the Arc: the one
//! // handle inside it, shared by `shared`, `h1` and `h2`, is still rooted: roots(A) = 2.
//! drop((a, shared, h1));
//! gc_core::collect();
//! // H1 is freed. A is not: the Arc (still owned by H2) holds a rooted handle to it, and
//! // `h2.shared` can still reach A safely. Had `Gc::new(Holder { .. })` unrooted the handle
//! // inside the Arc, dropping H1 and H2 would leave A unreachable by tracing while other
//! // `Arc` clones could still dereference it: a use-after-free.
//! drop(h2);
//! gc_core::collect();
//! // H2 is freed, its drop drops the last Arc, which drops the rooted handle: roots(A) = 0,
//! // and the next cycle frees A.
//! ```
//!
//! The price: a cycle that passes through an opaque type (A holds an `Arc` holding a
//! handle to A) is never collected, exactly as an `Arc` cycle leaks without a GC. Use
//! `GcCell`/`GcSlot` for mutable shared edges that should be collected.
//!
//! `Rc`, `Weak` (of `Rc`), `RefCell` and `Cell` are `!Sync` (and `Rc` is `!Send`), so they
//! cannot implement `Trace` at all; `Gc` and `GcCell` are their collected counterparts.

// These impls are for the user's values stored in the heap; the crate's own synchronization
// goes through `sync`, which is what the workspace's `disallowed-types` rule enforces.
#![allow(clippy::disallowed_types)]

use super::{Trace, Tracer};

use std::any::Any;
use std::error::Error;
use std::sync::atomic;
use std::sync::mpsc::{Sender, SyncSender};
use std::sync::{Arc, Barrier, Condvar, LazyLock, Mutex, Once, OnceLock, RwLock, Weak};
use std::thread::JoinHandle;

/// Opaque impls, each `[generics] type where bounds;`.
macro_rules! opaque {
    ($([$($generics:tt)*] $ty:ty $(where $($bounds:tt)+)?;)*) => {$(
        // SAFETY: an opaque type reports no handle and roots/unroots none (rules 1 and 2
        // hold with the empty set of visited handles, and `NO_SCAN = true` with no-op
        // methods is consistent: rule 3). Handles inside are never unrooted, so they stay
        // rooted and keep their targets alive for as long as they exist (rule 6): at worst
        // a leak, never a premature free. Mutation of the content through the lock, atomic
        // or sharing is therefore invisible to tracing by design (rule 4), and the type's
        // `Drop` only drops its content, whose handles are rooted (rule 5). The bounds are
        // exactly those that make the type `Send + Sync + 'static`.
        unsafe impl<$($generics)*> Trace for $ty $(where $($bounds)+)? {
            opaque_body!();
        }
    )*};
}

opaque! {
    [T: ?Sized + Send + Sync + 'static] Arc<T>;
    [T: ?Sized + Send + Sync + 'static] Weak<T>;
    [T: ?Sized + Sync + 'static] &'static T;
    [T: ?Sized + Send + 'static] Mutex<T>;
    [T: ?Sized + Send + Sync + 'static] RwLock<T>;
    [T: Send + Sync + 'static] OnceLock<T>;
    [T: Send + Sync + 'static, F: Send + 'static] LazyLock<T, F>;
    [T: Send + 'static] Sender<T>;
    [T: Send + 'static] SyncSender<T>;
    [T: Send + 'static] JoinHandle<T>;
    [] Condvar;
    [] Barrier;
    [] Once;
    [] std::io::Error;
    [] dyn Any + Send + Sync;
    [] dyn Error + Send + Sync;
    [] atomic::AtomicBool;
    [] atomic::AtomicI8;
    [] atomic::AtomicU8;
    [] atomic::AtomicI16;
    [] atomic::AtomicU16;
    [] atomic::AtomicI32;
    [] atomic::AtomicU32;
    [] atomic::AtomicIsize;
    [] atomic::AtomicUsize;
    [T: 'static] atomic::AtomicPtr<T>;
}

// Not every target has 64-bit atomics.
#[cfg(target_has_atomic = "64")]
opaque! {
    [] atomic::AtomicI64;
    [] atomic::AtomicU64;
}

#[cfg(test)]
mod tests {
    use super::super::probe::{edges, no_scan, unroot, Probe};
    use super::*;

    /// Roots and unroots `value`, then checks with `inner` that no probe was touched.
    fn untouched<T: Trace>(mut value: T, inner: impl Fn(&T) -> i32) {
        assert!(no_scan::<T>());
        assert_eq!(edges(&value), 0);
        value.root();
        assert_eq!(inner(&value), 0);
        unroot(&mut value);
        assert_eq!(inner(&value), 0);
    }

    #[test]
    fn opaque_types_never_visit_their_content() {
        untouched(Arc::new(Probe::new(0)), |a| a.rooted);
        untouched(Mutex::new(vec![Probe::new(0)]), |m| {
            m.lock().unwrap()[0].rooted
        });
        untouched(RwLock::new(Probe::new(0)), |l| l.read().unwrap().rooted);
        untouched(OnceLock::from(Probe::new(0)), |o| o.get().unwrap().rooted);
        let lazy: LazyLock<Probe> = LazyLock::new(|| Probe::new(0));
        LazyLock::force(&lazy);
        untouched(lazy, |l| l.rooted);
        static STATIC_PROBE: Probe = Probe { id: 0, rooted: 0 };
        untouched(&STATIC_PROBE, |p| p.rooted);
        let boxed: Box<dyn Any + Send + Sync> = Box::new(Probe::new(0));
        untouched(boxed, |b| b.downcast_ref::<Probe>().unwrap().rooted);
        let arc = Arc::new(Probe::new(0));
        untouched(Arc::downgrade(&arc), |w| w.upgrade().unwrap().rooted);
    }

    #[test]
    fn opaque_types_are_no_scan_whatever_they_hold() {
        assert!(no_scan::<Arc<Probe>>());
        assert!(no_scan::<Arc<str>>());
        assert!(no_scan::<Mutex<Vec<Probe>>>());
        assert!(no_scan::<RwLock<Probe>>());
        assert!(no_scan::<OnceLock<Probe>>());
        assert!(no_scan::<atomic::AtomicUsize>());
        assert!(no_scan::<atomic::AtomicPtr<Probe>>());
        assert!(no_scan::<Sender<Probe>>());
        assert!(no_scan::<&'static str>());
        assert!(no_scan::<Box<dyn Error + Send + Sync>>());
        // Content that is not `Trace` at all.
        struct NotTrace;
        assert!(no_scan::<Arc<NotTrace>>());
        assert!(no_scan::<Mutex<std::cell::Cell<u8>>>());
        // An opaque element makes its container noscan too.
        assert!(no_scan::<Vec<Arc<Probe>>>());
        assert_eq!(
            edges(&vec![Arc::new(Probe::new(1)), Arc::new(Probe::new(2))]),
            0
        );
    }
}
