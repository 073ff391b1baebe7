// GC objects must be `'static`: they live until a collection frees them.
use gc_core::Trace;

#[derive(Trace)]
struct View<'a, T> {
    items: &'a [T],
}

fn main() {}
