//! gc-core: an embeddable, concurrent, tracing garbage collector for Rust data structures.
//!
//! `Gc<T>` is a shared pointer, like `Arc<T>`, whose cycles are collected: graphs, trees with
//! parent pointers, interpreter object heaps, caches.
//!
//! ```
//! use gc_core::{Gc, GcCell, GcSlot, Trace};
//!
//! #[derive(Trace)]
//! struct Node {
//!     id: u64,                         // noscan field: never visited by the tracer
//!     next: GcSlot<Node>,              // one mutable edge
//!     children: GcCell<Vec<Gc<Node>>>, // any mutable structure
//!     #[gc(skip)]
//!     cache: Vec<u8>,                  // not traced
//! }
//!
//! let node = |id| Node { id, next: GcSlot::new(None), children: GcCell::new(vec![]), cache: vec![] };
//! let a = Gc::new(node(1));
//! let b = Gc::new(node(2));
//! a.next.store(Some(b.clone())); // a -> b
//! b.next.store(Some(a.clone())); // b -> a: a cycle `Rc` would leak
//! a.children.borrow_mut().push(b.clone());
//! drop((a, b));
//! gc_core::collect(); // both nodes are dropped
//! ```
//!
//! # Roots
//!
//! A handle outside the heap (stack, `Box`, `Vec`, `Arc`, a static, another thread) is a
//! *root*: its object counts it. Handles stored inside GC objects are *edges*, found by
//! tracing. Nothing reachable from a root is ever freed; a cycle that no root reaches is.
//!
//! # Opaque types
//!
//! `Arc<T>`, `Mutex<T>`, `RwLock<T>` and the atomics implement [`Trace`] as opaque: they are
//! never traversed, and the handles inside them stay roots. A cycle through an `Arc` therefore
//! leaks, exactly as it would without gc-core, and nothing is ever freed early.
//!
//! # Drop
//!
//! Dead objects are dropped by the collector, possibly on another thread, in no particular
//! order. A type deriving `Trace` may not implement `Drop` (its `Gc` fields might point at
//! objects already freed) unless it is `#[gc(no_scan)]`, which holds no traced handle. A panic
//! in a `Drop` run by the collector is caught and counted in [`GcStats::drop_panics`].
//!
//! See README.md for the status of each capability and docs/ARCHITECTURE.md for the design.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod config;
pub mod gc;
pub mod heap;
pub mod ptr;
pub mod stats;
pub(crate) mod sync;
pub mod trace;

pub use config::{configure, ConfigError, GcConfig};
pub use heap::AllocError;
pub use ptr::{BorrowError, Gc, GcCell, GcRef, GcRefMut, GcSlot};
pub use stats::{thread_gc_time, CycleStats, GcStats, Histogram};
pub use trace::{Trace, Tracer};

#[cfg(feature = "derive")]
pub use gc_derive::Trace;

/// Items the derive macro expands to. Not part of the public API.
#[doc(hidden)]
pub use trace::derive_support as __private;

/// Runs a full collection cycle and returns when it is over, sweeping included: every object
/// that was garbage when `collect` was called has been dropped. Safe to call from many threads
/// at once (a cycle that started after the call satisfies every caller waiting for it).
///
/// # Panics
///
/// When called from a `Drop` impl that the collector is running (a cycle cannot start inside
/// another); the collector catches and counts that panic like any other.
pub fn collect() {
    assert!(
        !gc::global::in_collector(),
        "gc_core::collect() called from a destructor run by the collector: a cycle cannot start \
         inside another"
    );
    gc::global::collector().collect();
}

/// A snapshot of the collector's statistics.
pub fn stats() -> GcStats {
    gc::global::collector().stats()
}
