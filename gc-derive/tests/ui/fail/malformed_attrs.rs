// A `gc` attribute is a list of bare keys.
use gc_core::Trace;

#[derive(Trace)]
struct Config {
    #[gc]
    a: u8,
    #[gc = "skip"]
    b: u8,
    #[gc(skip = true)]
    c: u8,
    #[gc(skip(all))]
    d: u8,
    #[gc()]
    e: u8,
    #[gc(skip, skip)]
    f: u8,
    #[gc("skip")]
    g: u8,
}

fn main() {}
