// `skip` and `recursive` belong on fields, `no_scan` on the type, and nothing on enum
// variants.
use gc_core::Trace;

#[derive(Trace)]
#[gc(skip)]
struct Config {
    #[gc(no_scan)]
    name: String,
}

#[derive(Trace)]
enum Shape {
    #[gc(skip)]
    Circle(f64),
    Square(f64),
}

#[derive(Trace)]
#[gc(recursive)]
struct List {
    next: Option<Box<List>>,
}

fn main() {}
