//! A `Trace` impl that panics while the collector marks (it breaks rule 7 of `Trace`): the
//! cycle is abandoned safely. In its own test binary, because while the bomb is armed every
//! cycle in the process (another test's included) would trip over it.

use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, Ordering};

mod common;

use common::{assert_intact, payload, Payload};
use gc_core::{Gc, GcSlot, Trace, Tracer};

/// A `Trace` impl whose `trace` panics while the collector marks (breaks rule 7).
struct TraceBomb;

static TRACE_ARMED: AtomicBool = AtomicBool::new(false);

// SAFETY: holds no handle; `trace` panicking when armed is the misuse under test.
unsafe impl Trace for TraceBomb {
    const NO_SCAN: bool = false;
    fn trace(&self, _: &mut Tracer) {
        if TRACE_ARMED.load(Ordering::SeqCst) {
            panic!("TraceBomb::trace");
        }
    }
    fn root(&mut self) {}
    unsafe fn unroot(&mut self) {}
}

/// A panicking `Trace` during marking: the cycle is abandoned (marks cleared, world restarted,
/// panic propagated), and later cycles still mark everything reachable.
#[test]
fn panicking_trace_abandons_the_cycle_safely() {
    #[derive(Trace)]
    struct Holder {
        bomb: TraceBomb,
        next: GcSlot<Payload>,
    }
    let h = Gc::new(Holder {
        bomb: TraceBomb,
        next: GcSlot::new(Some(payload())),
    });
    TRACE_ARMED.store(true, Ordering::SeqCst);
    let r = catch_unwind(gc_core::collect);
    TRACE_ARMED.store(false, Ordering::SeqCst);
    assert!(r.is_err(), "the panic reaches the caller of collect()");
    gc_core::collect();
    gc_core::collect();
    assert_intact(&h.next.load().expect("edge kept"));
    // Other threads' operations are not stuck behind a stopped world.
    std::thread::spawn(|| drop(payload()))
        .join()
        .expect("the world restarted");
}
