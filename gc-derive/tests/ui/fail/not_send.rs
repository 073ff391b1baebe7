// GC objects are shared between threads: `Rc` (not `Send`, not `Sync`) cannot be traced,
// and cannot even be stored in a skipped field.
use gc_core::Trace;
use std::rc::Rc;

#[derive(Trace)]
struct Shared {
    name: Rc<String>,
}

#[derive(Trace)]
struct Cached {
    #[gc(skip)]
    cache: Rc<u8>,
}

fn main() {}
