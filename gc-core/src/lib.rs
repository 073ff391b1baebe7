//! gc-core: an embeddable, concurrent, tracing garbage collector for Rust data structures.
//!
//! (Crate documentation is completed as the layers land; see README.md and docs/ARCHITECTURE.md.)
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod heap;
pub mod ptr;
pub(crate) mod sync;
pub mod trace;

pub use trace::{Trace, Tracer};

#[cfg(feature = "derive")]
pub use gc_derive::Trace;

/// Items the derive macro expands to. Not part of the public API.
#[doc(hidden)]
pub use trace::derive_support as __private;
