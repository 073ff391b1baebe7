// The GC heap is shared between threads: `Gc::new` rejects a payload that is not `Send + Sync`,
// such as an `Rc` or a struct holding a `Cell`.
use gc_core::{Gc, Trace};
use std::cell::Cell;
use std::rc::Rc;

// Skipped: `T` need not be `Trace`, but it must still be `Send + Sync + 'static`.
#[derive(Trace)]
struct Cached<T> {
    id: u64,
    #[gc(skip)]
    cache: T,
}

#[derive(Trace)]
struct Counter<T> {
    hits: T,
}

fn main() {
    let _ = Gc::new(Rc::new(1));
    let _ = Gc::new(Cached {
        id: 1,
        cache: Cell::new(0u32),
    });
    let _ = Gc::new(Counter {
        hits: Cell::new(0u32),
    });
}
