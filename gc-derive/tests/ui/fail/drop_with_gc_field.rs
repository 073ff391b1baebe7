// A derived type that holds a `Gc` must not implement `Drop`: the sweeper drops dead objects
// in no particular order, possibly on another thread, so when this destructor runs `parent`
// may point at an object that is already freed.
use gc_core::{Gc, GcSlot, Trace};

#[derive(Trace)]
struct Node {
    id: u64,
}

#[derive(Trace)]
struct Child {
    parent: Gc<Node>,
}

impl Drop for Child {
    fn drop(&mut self) {
        // Would read a freed object if `parent` died in the same cycle.
        println!("child of {} dropped", self.parent.id);
    }
}

#[derive(Trace)]
enum Link<T: Trace> {
    Empty,
    To(GcSlot<T>),
}

impl<T: Trace> Drop for Link<T> {
    fn drop(&mut self) {}
}

fn main() {
    let _ = Gc::new(Child {
        parent: Gc::new(Node { id: 1 }),
    });
    let _ = Gc::new(Link::<Node>::Empty);
}
