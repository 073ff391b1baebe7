// A packed field cannot be borrowed, and tracing borrows every field.
use gc_core::Trace;

#[derive(Trace)]
#[repr(C, packed)]
struct Header {
    tag: u8,
    len: u32,
}

// Allowed: a `no_scan` type is never traced, so nothing is borrowed.
#[derive(Trace)]
#[gc(no_scan)]
#[repr(packed(2))]
struct Plain {
    tag: u8,
    len: u32,
}

fn main() {}
