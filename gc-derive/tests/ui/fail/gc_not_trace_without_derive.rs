// A type stored in the GC heap must implement `Trace`: the error says to derive it, also when
// the type is inside a container.
use gc_core::{Gc, GcCell};

struct MyStruct {
    id: u64,
}

fn main() {
    let _ = Gc::new(MyStruct { id: 1 });
    let _ = GcCell::new(vec![MyStruct { id: 2 }]);
}
