//! Handles and the object header. `Gc`, `GcCell` and `GcSlot` join this module with the public
//! API; the header is here already because the heap's sweeper reads it.

pub mod header;
