// `#[gc(no_scan)]` promises that the type holds no traced handle; each field is checked.
use gc_core::{Trace, Tracer};

/// Stands for a traced handle (`NO_SCAN = false`). There is no `Gc` type yet; the `Gc`
/// version of this test is added with `Gc`.
struct Edge;

// SAFETY: `Edge` holds no handle at all; `NO_SCAN = false` is always allowed.
unsafe impl Trace for Edge {
    const NO_SCAN: bool = false;
    fn trace(&self, _: &mut Tracer) {}
    fn root(&mut self) {}
    unsafe fn unroot(&mut self) {}
}

#[derive(Trace)]
#[gc(no_scan)]
struct Resource {
    fd: u32,
    parent: Edge,
    // Skipped fields are not checked.
    #[gc(skip)]
    skipped: Edge,
}

#[derive(Trace)]
#[gc(no_scan)]
enum Message {
    Quit,
    Link(u8, Vec<Edge>),
    Named { to: Option<Edge> },
}

// Fields whose type depends on a generic parameter are checked when the instance's
// `NO_SCAN` is evaluated.
#[derive(Trace)]
#[gc(no_scan)]
struct Cell<T> {
    value: T,
}

const _: bool = <Cell<u64> as Trace>::NO_SCAN;
const _: bool = <Cell<Edge> as Trace>::NO_SCAN;

fn main() {}
