// `#[gc(no_scan)]` promises that the type holds no traced handle: a field holding a `Gc`, a
// `GcSlot` or a `GcCell` whose content holds handles is rejected, with the field named.
use gc_core::{Gc, GcCell, GcSlot, Trace};

#[derive(Trace)]
struct Node {
    id: u64,
}

#[derive(Trace)]
#[gc(no_scan)]
struct WithGc {
    id: u64,
    parent: Gc<Node>,
}

#[derive(Trace)]
#[gc(no_scan)]
struct WithSlot {
    next: GcSlot<Node>,
}

#[derive(Trace)]
#[gc(no_scan)]
enum WithCell {
    Leaf(u64),
    Branch { children: GcCell<Vec<Gc<Node>>> },
}

// A `GcCell` of plain data holds no handle: it is allowed.
#[derive(Trace)]
#[gc(no_scan)]
struct Counter {
    hits: GcCell<u64>,
}

// A generic field is checked when the instance's `NO_SCAN` is evaluated (here by `Gc::new`
// and by the constant below).
#[derive(Trace)]
#[gc(no_scan)]
struct Weak<T: Trace> {
    target: Gc<T>,
}

const _: bool = <Weak<Node> as Trace>::NO_SCAN;

fn main() {}
