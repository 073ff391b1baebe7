// Named, tuple, unit and empty structs.
use gc_core::Trace;

#[derive(Trace)]
struct Named {
    id: u64,
    name: String,
    tags: Vec<String>,
}

#[derive(Trace)]
struct Tuple(u8, String, Option<Box<Named>>);

#[derive(Trace)]
struct Unit;

#[derive(Trace)]
struct EmptyBraces {}

#[derive(Trace)]
struct EmptyParens();

fn main() {
    assert!(<Named as Trace>::NO_SCAN);
    assert!(<Tuple as Trace>::NO_SCAN);
    assert!(<Unit as Trace>::NO_SCAN);
    assert!(<EmptyBraces as Trace>::NO_SCAN);
    assert!(<EmptyParens as Trace>::NO_SCAN);
    let named = Named {
        id: 1,
        name: String::new(),
        tags: vec![],
    };
    let tuple = Tuple(1, String::new(), Some(Box::new(named)));
    assert_eq!(gc_core::__private::count_traced_edges(&tuple), 0);
    let _ = (Unit, EmptyBraces {}, EmptyParens());
}
