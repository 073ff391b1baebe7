// Enums with unit, tuple and struct variants, an empty enum and a one-variant enum.
use gc_core::Trace;

#[derive(Trace)]
enum Shape {
    Empty,
    Circle(f64),
    Rect(f64, f64),
    Polygon {
        points: Vec<(f64, f64)>,
        closed: bool,
    },
    Labeled {
        label: String,
        #[gc(skip)]
        cache: NotTrace,
    },
}

struct NotTrace;

#[derive(Trace)]
enum Never {}

#[derive(Trace)]
enum Single {
    Only { id: u64 },
}

#[derive(Trace)]
#[allow(dead_code)]
enum Explicit {
    A = 1,
    B = 2,
}

fn main() {
    assert!(<Shape as Trace>::NO_SCAN);
    assert!(<Never as Trace>::NO_SCAN);
    assert!(<Single as Trace>::NO_SCAN);
    assert!(<Explicit as Trace>::NO_SCAN);
    let shapes = vec![
        Shape::Empty,
        Shape::Circle(1.0),
        Shape::Rect(1.0, 2.0),
        Shape::Polygon {
            points: vec![(0.0, 0.0)],
            closed: true,
        },
        Shape::Labeled {
            label: String::from("l"),
            cache: NotTrace,
        },
    ];
    assert_eq!(gc_core::__private::count_traced_edges(&shapes), 0);
    let _ = Single::Only { id: 1 };
}
