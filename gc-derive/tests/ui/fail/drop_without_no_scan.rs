// A derived type that may hold handles must not implement `Drop`: the sweeper drops dead
// objects in no particular order, so the destructor could see handles to freed objects.
use gc_core::Trace;

#[derive(Trace)]
struct Node {
    id: u64,
    children: Vec<u32>,
}

impl Drop for Node {
    fn drop(&mut self) {
        println!("dropping {}", self.id);
    }
}

// Generic types too.
#[derive(Trace)]
struct Wrapper<T> {
    value: T,
}

impl<T> Drop for Wrapper<T> {
    fn drop(&mut self) {}
}

fn main() {}
