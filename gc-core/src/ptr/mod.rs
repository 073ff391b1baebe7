//! Handles: [`Gc`], [`GcCell`], [`GcSlot`], and the object header they point at.

pub mod cell;
pub mod gc;
pub mod header;
pub mod slot;

pub use cell::{BorrowError, GcCell, GcRef, GcRefMut};
pub use gc::Gc;
pub use slot::GcSlot;
