// A GC object lives until a collection frees it, not until a borrow ends: `Gc::new` needs a
// `'static` payload, so a value holding a borrowed `&'a str` is rejected.
use gc_core::{Gc, Trace};

#[derive(Trace)]
struct Named<T> {
    name: T,
}

fn store<'a>(name: &'a str) -> Gc<Named<&'a str>> {
    Gc::new(Named { name })
}

fn main() {
    let owned = String::from("local");
    let _ = Gc::new(Named {
        name: owned.as_str(),
    });
    let _ = store("static");
}
