// Unknown `gc(...)` keys are rejected, and every error is reported in one build.
use gc_core::Trace;

#[derive(Trace)]
#[gc(noscan)]
struct Config {
    #[gc(ignore)]
    name: String,
    #[gc(skip, unsafe_ignore)]
    id: u64,
}

fn main() {}
