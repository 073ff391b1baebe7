// A `GcCell` borrow belongs to the thread that took it (review finding 3e): its guards are
// not `Send`, like `RwLock`'s, so a borrow cannot be released on another thread.
use gc_core::{Gc, GcCell};

fn main() {
    let cell = Gc::new(GcCell::new(vec![1u64]));
    let r = cell.borrow();
    std::thread::scope(|s| {
        s.spawn(move || drop(r));
    });
    let w = cell.borrow_mut();
    std::thread::scope(|s| {
        s.spawn(move || drop(w));
    });
}
