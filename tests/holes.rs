//! Regression tests for soundness holes, known from other Rust GCs or found in review here.
//!
//! Each test names the hole and the invariant (DESIGN §6: I1 safety, I5 no loss under
//! misuse). Compile-time holes (a `Drop` that reaches a dead object, non-`'static`/non-`Send`
//! payloads, a borrow guard sent to another thread) are trybuild cases in
//! `gc-derive/tests/ui/fail/`; root-count overflow is `ptr::header`'s saturation unit test;
//! thread-locals at thread exit and `Gc::new` inside a sweep's `Drop` are in `tests/threads.rs`
//! and `tests/drop.rs`; a panicking `Trace` during marking is `tests/trace_panic.rs` (its own
//! binary: while its bomb is armed, every cycle in the process would trip over it).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;

use common::{assert_intact, payload, Payload};
use gc_core::{Gc, GcCell, GcSlot, Trace, Tracer};

/// Review 1a (I5: `mem::forget`): a forgotten `borrow_mut` guard of a nested cell, then a
/// mutable borrow of the outer cell, used to unroot content the marker skips.
#[test]
fn forgotten_nested_borrow_mut_guard_keeps_content_alive() {
    #[derive(Trace)]
    struct Holder {
        outer: GcCell<Vec<GcCell<Vec<Gc<Payload>>>>>,
    }
    let h = Gc::new(Holder {
        outer: GcCell::new(vec![GcCell::new(vec![payload()])]),
    });
    {
        let o = h.outer.borrow();
        std::mem::forget(o[0].borrow_mut());
    }
    drop(h.outer.borrow_mut());
    gc_core::collect();
    gc_core::collect();
    let mut o = h.outer.borrow_mut();
    assert_intact(&o[0].get_mut()[0]);
    // The inner cell stays locked (like a forgotten `RefMut`), reported as such.
    assert!(o[0].try_borrow().is_err());
}

/// A `Trace` part whose `unroot` panics when armed: breaks the trait's rules on purpose.
struct Bomb;

static ARMED: AtomicBool = AtomicBool::new(false);

// SAFETY: `Bomb` holds no handle: `trace`/`root` do nothing; `unroot` either does nothing or
// panics, which is the misuse under test (the collector must stay safe regardless).
unsafe impl Trace for Bomb {
    const NO_SCAN: bool = false;
    fn trace(&self, _: &mut Tracer) {}
    fn root(&mut self) {}
    unsafe fn unroot(&mut self) {
        if ARMED.load(Ordering::SeqCst) {
            panic!("Bomb::unroot");
        }
    }
}

/// Review 1b: an `unroot` that unwinds half-way through a `GcCell` release used to leave the
/// cell marked "content rooted" with part of it unrooted: the marker skipped it.
#[test]
fn unroot_that_panics_half_way_leaves_nothing_unreachable() {
    #[derive(Trace)]
    struct Holder {
        cell: GcCell<(Gc<Payload>, Bomb)>,
    }
    let h = Gc::new(Holder {
        cell: GcCell::new((payload(), Bomb)),
    });
    ARMED.store(true, Ordering::SeqCst);
    let r = catch_unwind(AssertUnwindSafe(|| drop(h.cell.borrow_mut())));
    ARMED.store(false, Ordering::SeqCst);
    assert!(r.is_err(), "the bomb went off");
    gc_core::collect();
    gc_core::collect();
    // The cell was released despite the panic, and its content survived.
    assert_intact(&h.cell.borrow().0);
    drop(h.cell.borrow_mut());
}

/// Review 3a: a map key whose `Hash` performs a GC operation. Keys are opaque (never
/// re-hashed by the collector), so no user code runs inside an operation.
#[test]
// The key's `GcSlot` is interior-mutable on purpose, but its hash only reads `id`.
#[allow(clippy::mutable_key_type)]
fn map_keys_with_gc_operations_in_hash_are_fine() {
    #[derive(Trace)]
    struct Key {
        id: u64,
        tag: GcSlot<Payload>,
    }
    impl PartialEq for Key {
        fn eq(&self, other: &Key) -> bool {
            self.id == other.id
        }
    }
    impl Eq for Key {}
    impl Hash for Key {
        fn hash<H: Hasher>(&self, state: &mut H) {
            // A GC operation inside `Hash`.
            let _ = self.tag.load();
            self.id.hash(state);
        }
    }
    #[derive(Trace)]
    struct Table {
        map: GcCell<HashMap<Key, Gc<Payload>>>,
    }
    let mut map = HashMap::new();
    map.insert(
        Key {
            id: 1,
            tag: GcSlot::new(Some(payload())),
        },
        payload(),
    );
    let t = Gc::new(Table {
        map: GcCell::new(map),
    });
    t.map.borrow_mut().insert(
        Key {
            id: 2,
            tag: GcSlot::new(None),
        },
        payload(),
    );
    gc_core::collect();
    let m = t.map.borrow();
    assert_eq!(m.len(), 2);
    for v in m.values() {
        assert_intact(v);
    }
    for k in m.keys() {
        if let Some(p) = k.tag.load() {
            assert_intact(&p);
        }
    }
}

/// Resurrection from `Drop`: a dying no-scan object hands out a handle it kept in a skipped
/// field (skipped fields stay rooted, so the target is alive) to the outside world.
#[test]
fn resurrection_from_drop_is_safe() {
    static SAVED: Mutex<Vec<Gc<Payload>>> = Mutex::new(Vec::new());
    #[derive(Trace)]
    #[gc(no_scan)]
    struct Phoenix {
        #[gc(skip)]
        keep: Gc<Payload>,
    }
    impl Drop for Phoenix {
        fn drop(&mut self) {
            SAVED.lock().unwrap().push(self.keep.clone());
        }
    }
    drop(Gc::new(Phoenix { keep: payload() }));
    gc_core::collect();
    gc_core::collect();
    let saved = SAVED.lock().unwrap().pop().expect("the destructor ran");
    gc_core::collect();
    assert_intact(&saved);
}

/// A `Gc` inside an `Arc` shared by two heap objects: opaque, so the target is a root while
/// the `Arc` lives (a leak, never an early free), and is freed once both holders are gone.
#[test]
fn gc_inside_an_arc_shared_twice() {
    #[derive(Trace)]
    #[gc(no_scan)]
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    #[derive(Trace)]
    struct Holder {
        shared: Arc<Gc<Counted>>,
        cycle: GcSlot<Holder>,
    }
    let drops = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Gc::new(Counted(drops.clone())));
    let a = Gc::new(Holder {
        shared: shared.clone(),
        cycle: GcSlot::new(None),
    });
    let b = Gc::new(Holder {
        shared: shared.clone(),
        cycle: GcSlot::new(Some(a.clone())),
    });
    a.cycle.store(Some(b.clone()));
    drop(shared);
    gc_core::collect();
    assert_eq!(drops.load(Ordering::SeqCst), 0, "alive while the Arc lives");
    drop((a, b));
    // The holders' cycle dies; their `Arc`s drop, the target loses its root and dies next.
    for _ in 0..3 {
        gc_core::collect();
    }
    assert_eq!(
        drops.load(Ordering::SeqCst),
        1,
        "freed once nothing holds it"
    );
}
