//! Drop and finalization (DESIGN §5) and the safety of handles kept where tracing never looks
//! (DESIGN §4).
//!
//! - Every dead object is dropped exactly once (a per-test drop log by id), whatever its shape,
//!   and never again by later cycles; what it owns (a `Vec`'s buffer, a `VecDeque`, a
//!   `LinkedList`, a `Box`) is released with it (a counting global allocator watches
//!   allocations of sizes only these tests use).
//! - A panicking `Drop` run by the collector is caught and counted (`drop_panics`), the other
//!   dead objects are still dropped, and the collector keeps working — also when the panic's
//!   payload itself panics when dropped (in a child process, since that can break the
//!   process-wide collector for good). `collect()` called from such a `Drop` panics, and that is
//!   caught too.
//! - A `Drop` run by the collector can allocate `Gc`s, link and drop them, and hand them out
//!   (to a global, or from a `Gc` reached through an `Arc`): they are usable, and collected
//!   later like any other object.
//! - Content moved out of a `GcCell` while it is mutably borrowed is rooted and survives.
//! - Handles inside `Box`, `Vec`, `Arc`, `#[gc(skip)]` fields, and `mem::forget`: targets stay
//!   alive as long as such a handle exists (a leak at worst, never a use-after-free), and an
//!   `Arc`-held target is freed once the `Arc` is gone.
//!
//! Invariants (DESIGN §6): **I1** — each value is dropped exactly once, and never while a
//! usable handle reaches it; **I3** — what becomes garbage is dropped by the next `collect()`
//! (by the second when its last root was dropped by the first one's sweep); **I5** — opaque
//! types, skip fields, `mem::forget` and panics in `Drop` are safe.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{LinkedList, VecDeque};
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{node, DropLog, Node, Tally};
use gc_core::{Gc, GcCell, GcSlot, Trace};

// ---------------------------------------------------------------------------------------------
// A global allocator that counts live allocations of a few marker sizes
// ---------------------------------------------------------------------------------------------

/// Allocation sizes no other code in this binary asks for: one per leak test.
const MARKER_SIZES: [usize; 6] = [1_234_567, 622_216, 1_111_111, 3_216, 987_653, 765_433];

static LIVE: [AtomicIsize; 6] = [const { AtomicIsize::new(0) }; 6];

fn note(size: usize, delta: isize) {
    if let Some(i) = MARKER_SIZES.iter().position(|&s| s == size) {
        LIVE[i].fetch_add(delta, Ordering::SeqCst);
    }
}

/// Live allocations of `MARKER_SIZES[i]` bytes.
fn live(i: usize) -> isize {
    LIVE[i].load(Ordering::SeqCst)
}

struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so it
// upholds `GlobalAlloc`'s contract exactly as `System` does; the counting touches only atomics
// (it never allocates). `realloc` and `alloc_zeroed` keep their default implementations, which
// go through `alloc` and `dealloc`, so every size change is counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System.alloc`'s.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(layout.size(), -1);
        // SAFETY: `ptr` was allocated by `alloc` above, i.e. by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

// ---------------------------------------------------------------------------------------------
// Panic messages
// ---------------------------------------------------------------------------------------------

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Exactly once
// ---------------------------------------------------------------------------------------------

/// Payloads owned in various ways by one object: all dropped with it.
#[derive(Trace)]
struct Bundle {
    own: Tally,
    boxed: Box<Tally>,
    many: Vec<Tally>,
    maybe: Option<Tally>,
    pair: (Tally, Option<Gc<Node>>),
    edge: GcSlot<Bundle>,
}

#[test]
fn each_dead_object_is_dropped_exactly_once() {
    const N: u64 = 3000;
    const IDS: u64 = 9; // per round: single, a, b, and six in the bundle
    let log = DropLog::new(N * IDS);
    let mut keep = Vec::new();
    // Singles, 2-cycles and self-referencing bundles; every fifth round kept.
    for i in 0..N {
        let id = |k: u64| i * IDS + k;
        let single = Gc::new(Tally::new(&log, id(0)));
        let a = node(&log, id(1));
        let b = node(&log, id(2));
        a.next.store(Some(b.clone()));
        b.kids.borrow_mut().push(a.clone());
        let bundle = Gc::new(Bundle {
            own: Tally::new(&log, id(3)),
            boxed: Box::new(Tally::new(&log, id(4))),
            many: vec![Tally::new(&log, id(5)), Tally::new(&log, id(6))],
            maybe: Some(Tally::new(&log, id(7))),
            pair: (Tally::new(&log, id(8)), Some(b.clone())),
            edge: GcSlot::new(None),
        });
        bundle.edge.store(Some(bundle.clone()));
        if i % 5 == 0 {
            keep.push((i, single, a, bundle));
        }
    }
    let kept = |id: u64| (id / IDS) % 5 == 0;
    gc_core::collect();
    log.assert_exactly(|id| !kept(id), "first collect");
    for (i, single, a, bundle) in &keep {
        let id = |k: u64| i * IDS + k;
        single.verify(id(0));
        a.tally.verify(id(1));
        let b = a.next.load().unwrap();
        b.tally.verify(id(2));
        assert!(Gc::ptr_eq(&b.kids.borrow()[0], a));
        bundle.own.verify(id(3));
        bundle.boxed.verify(id(4));
        bundle.many[0].verify(id(5));
        bundle.many[1].verify(id(6));
        bundle.maybe.as_ref().unwrap().verify(id(7));
        bundle.pair.0.verify(id(8));
        assert!(Gc::ptr_eq(bundle.pair.1.as_ref().unwrap(), &b));
        assert!(Gc::ptr_eq(&bundle.edge.load().unwrap(), bundle));
    }
    drop(keep);
    gc_core::collect();
    log.assert_exactly(|_| true, "second collect");
    gc_core::collect();
    gc_core::collect();
    log.assert_exactly(|_| true, "never dropped again");
}

// ---------------------------------------------------------------------------------------------
// Panics in Drop
// ---------------------------------------------------------------------------------------------

/// Panics in `drop` when its id is even (after recording the drop).
#[derive(Trace)]
#[gc(no_scan)]
struct Bomb {
    id: u64,
    log: Arc<DropLog>,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.log.record(self.id);
        if self.id % 2 == 0 {
            panic!("bomb {} goes off in drop", self.id);
        }
    }
}

#[test]
fn a_panicking_drop_is_caught_counted_and_the_others_still_run() {
    const BOMBS: u64 = 20;
    const OTHERS: u64 = 200;
    let log = DropLog::new(BOMBS + OTHERS + 10);
    let before = gc_core::stats().drop_panics;
    let bombs: Vec<Gc<Bomb>> = (0..BOMBS)
        .map(|id| {
            Gc::new(Bomb {
                id,
                log: log.clone(),
            })
        })
        .collect();
    // Interleave ordinary garbage (cycles) with the bombs.
    let others: Vec<Gc<Node>> = (BOMBS..BOMBS + OTHERS).map(|id| node(&log, id)).collect();
    for w in others.windows(2) {
        w[0].next.store(Some(w[1].clone()));
    }
    others[others.len() - 1].next.store(Some(others[0].clone()));
    drop((bombs, others));
    gc_core::collect(); // must not panic
    let panics = gc_core::stats().drop_panics - before;
    assert!(
        panics >= BOMBS / 2,
        "{panics} drop panics counted, {} expected at least",
        BOMBS / 2
    );
    log.assert_exactly(
        |id| id < BOMBS + OTHERS,
        "every bomb and every other object",
    );

    // The collector still works.
    let after: Vec<Gc<Node>> = (BOMBS + OTHERS..BOMBS + OTHERS + 10)
        .map(|id| node(&log, id))
        .collect();
    after[0].next.store(Some(after[9].clone()));
    drop(after);
    gc_core::collect();
    log.assert_exactly(|_| true, "after the panics");
}

/// Calls `collect()` from its `drop`, which runs inside a cycle: documented to panic.
#[derive(Trace)]
#[gc(no_scan)]
struct Recollector {
    catch: bool,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Drop for Recollector {
    fn drop(&mut self) {
        if self.catch {
            let e = catch_unwind(gc_core::collect).expect_err("collect() inside a cycle");
            self.seen.lock().unwrap().push(panic_message(&*e));
        } else {
            gc_core::collect();
            self.seen
                .lock()
                .unwrap()
                .push("collect() returned".to_owned());
        }
    }
}

#[test]
fn collect_called_from_a_drop_panics_and_is_caught() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let before = gc_core::stats().drop_panics;
    let a = Gc::new(Recollector {
        catch: true,
        seen: seen.clone(),
    });
    let b = Gc::new(Recollector {
        catch: false,
        seen: seen.clone(),
    });
    drop((a, b));
    gc_core::collect();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].contains("collect() called from a destructor run by the collector"),
        "{seen:?}"
    );
    assert!(gc_core::stats().drop_panics > before);
    // And the collector is fine.
    let log = DropLog::new(1);
    drop(node(&log, 0));
    gc_core::collect();
    assert_eq!(log.total(), 1);
}

/// Runs [`nasty_payload_child`] in a process of its own: if the collector lets the panic
/// escape, it may be broken for good, which must not take this binary's other tests with it.
#[test]
fn a_drop_panic_whose_payload_panics_when_dropped_is_contained() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "nasty_payload_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GC_CORE_DROP_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("child ran"),
        "the child did not run:\n{stdout}\n{stderr}"
    );
    let failure = stderr
        .lines()
        .filter(|l| l.contains("panicked at") || l.contains("CHILD:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success(),
        "a panic payload that panics on drop escaped the collector:\n{failure}"
    );
}

/// Its payload panics when dropped.
struct NastyPayload;

impl Drop for NastyPayload {
    fn drop(&mut self) {
        panic!("the panic payload panics when dropped");
    }
}

#[derive(Trace)]
#[gc(no_scan)]
struct NastyBomb(u64, Arc<DropLog>);

impl Drop for NastyBomb {
    fn drop(&mut self) {
        self.1.record(self.0);
        if self.0 == 0 {
            std::panic::panic_any(NastyPayload);
        }
    }
}

/// Does its work only under `GC_CORE_DROP_CHILD=1`.
#[test]
fn nasty_payload_child() {
    if std::env::var_os("GC_CORE_DROP_CHILD").is_none() {
        return;
    }
    println!("child ran");
    let log = DropLog::new(30);
    let v: Vec<Gc<NastyBomb>> = (0..10)
        .map(|i| Gc::new(NastyBomb(i, log.clone())))
        .collect();
    drop(v);
    if catch_unwind(gc_core::collect).is_err() {
        eprintln!("CHILD: collect() panicked");
    }
    if catch_unwind(gc_core::collect).is_err() {
        eprintln!("CHILD: the next collect() panicked too");
    }
    assert_eq!(log.total(), 10, "CHILD: every bomb dropped");
    let more: Vec<Gc<NastyBomb>> = (10..20)
        .map(|i| Gc::new(NastyBomb(i, log.clone())))
        .collect();
    drop(more);
    gc_core::collect();
    assert_eq!(log.total(), 20, "CHILD: the collector still drops");
}

// ---------------------------------------------------------------------------------------------
// Drops that allocate and hand out handles
// ---------------------------------------------------------------------------------------------

static HANDED_OUT: Mutex<Vec<Gc<Node>>> = Mutex::new(Vec::new());

/// Its drop allocates nodes, links them, makes a garbage cycle, and hands one node out.
#[derive(Trace)]
#[gc(no_scan)]
struct Maker {
    id: u64,
    log: Arc<DropLog>,
}

impl Drop for Maker {
    fn drop(&mut self) {
        let id = self.id;
        let n = node(&self.log, 100 + id);
        n.next.store(Some(node(&self.log, 200 + id)));
        let x = node(&self.log, 300 + id);
        let y = node(&self.log, 400 + id);
        x.next.store(Some(y.clone()));
        y.kids.borrow_mut().push(x.clone());
        drop((x, y));
        let out = n.clone();
        drop(n);
        HANDED_OUT.lock().unwrap().push(out);
        self.log.record(id);
    }
}

#[test]
fn a_drop_can_allocate_link_and_hand_out_handles() {
    const MAKERS: u64 = 20;
    let log = DropLog::new(500);
    let makers: Vec<Gc<Maker>> = (0..MAKERS)
        .map(|id| {
            Gc::new(Maker {
                id,
                log: log.clone(),
            })
        })
        .collect();
    drop(makers);
    gc_core::collect();
    // The makers are dropped; what their drops made is new, and the cycles are garbage now
    // (a cycle started meanwhile by another test may have freed some of them already).
    let made = |id: u64| id < MAKERS;
    let cycles = |id: u64| (300..300 + MAKERS).contains(&id) || (400..400 + MAKERS).contains(&id);
    log.assert_dropped(made, cycles, "the makers");
    gc_core::collect();
    log.assert_exactly(|id| made(id) || cycles(id), "the cycles made in drop");
    {
        let out = HANDED_OUT.lock().unwrap();
        assert_eq!(out.len(), MAKERS as usize);
        let mut ids: Vec<u64> = out.iter().map(|n| n.tally.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, (100..100 + MAKERS).collect::<Vec<_>>());
        for n in out.iter() {
            n.tally.verify(n.tally.id);
            n.next.load().unwrap().tally.verify(n.tally.id + 100);
            n.kids.borrow_mut().push(node(&log, n.tally.id - 100 + 20));
        }
    }
    gc_core::collect();
    log.assert_exactly(|id| made(id) || cycles(id), "handed-out nodes are roots");
    drop(std::mem::take(&mut *HANDED_OUT.lock().unwrap()));
    gc_core::collect();
    log.assert_exactly(
        |id| id < MAKERS + 20 || (100..500).contains(&id) && id % 100 < MAKERS,
        "everything, once",
    );
}

/// A noscan type can still reach a `Gc` through an opaque `Arc` (the handle inside stays
/// rooted); its drop takes the handle out and hands it on.
#[derive(Trace)]
#[gc(no_scan)]
struct Keeper {
    inner: Arc<Mutex<Option<Gc<Node>>>>,
    out: Arc<Mutex<Vec<Gc<Node>>>>,
}

impl Drop for Keeper {
    fn drop(&mut self) {
        if let Some(g) = self.inner.lock().unwrap().take() {
            let again = g.clone();
            drop(g);
            self.out.lock().unwrap().push(again);
        }
    }
}

#[test]
fn a_drop_can_hand_out_a_handle_it_reaches_through_an_arc() {
    let log = DropLog::new(2);
    let out = Arc::new(Mutex::new(Vec::new()));
    let target = node(&log, 0);
    target.next.store(Some(node(&log, 1)));
    let keeper = Gc::new(Keeper {
        inner: Arc::new(Mutex::new(Some(target.clone()))),
        out: out.clone(),
    });
    drop((target, keeper));
    gc_core::collect();
    assert_eq!(log.total(), 0, "the Arc's handle kept the target alive");
    let rescued = out.lock().unwrap().pop().expect("handed out by the drop");
    rescued.tally.verify(0);
    rescued.next.load().unwrap().tally.verify(1);
    gc_core::collect();
    rescued.tally.verify(0);
    drop(rescued);
    gc_core::collect();
    log.assert_exactly(|_| true, "freed once no handle is left");
}

/// Its drop takes a while (to widen any window in which `collect()` could return before it ran).
#[derive(Trace)]
#[gc(no_scan)]
struct SlowDrop {
    id: u64,
    log: Arc<DropLog>,
}

impl Drop for SlowDrop {
    fn drop(&mut self) {
        std::thread::sleep(std::time::Duration::from_millis(1));
        self.log.record(self.id);
    }
}

/// Automatic cycles (started by allocation) hand their drops to a finalizer thread; a
/// `collect()` that follows must still return only once they have run (DESIGN §2: every object
/// that was garbage when `collect` was called has been dropped).
#[test]
fn drops_left_by_automatic_cycles_are_done_when_collect_returns() {
    const ROUNDS: u64 = 10;
    const PER: u64 = 20;
    let log = DropLog::new(ROUNDS * PER);
    let mut automatic = 0;
    for r in 0..ROUNDS {
        let garbage: Vec<Gc<SlowDrop>> = (r * PER..(r + 1) * PER)
            .map(|id| {
                Gc::new(SlowDrop {
                    id,
                    log: log.clone(),
                })
            })
            .collect();
        drop(garbage);
        // Allocate (garbage without drops) until a cycle has run, without calling collect().
        let cycles = gc_core::stats().cycles;
        for _ in 0..1000 {
            let junk: Vec<Gc<[u64; 4]>> = (0..1000).map(|i| Gc::new([i; 4])).collect();
            drop(junk);
            if gc_core::stats().cycles > cycles {
                automatic += 1;
                break;
            }
        }
        gc_core::collect();
        log.assert_exactly(|id| id < (r + 1) * PER, "after collect()");
    }
    assert!(automatic > 0, "allocation never started a cycle");
}

// ---------------------------------------------------------------------------------------------
// Handles outside the heap's tracing
// ---------------------------------------------------------------------------------------------

#[test]
fn content_moved_out_of_a_borrowed_cell_survives() {
    let log = DropLog::new(101);
    let holder = node(&log, 100);
    holder
        .kids
        .borrow_mut()
        .extend((0..100).map(|id| node(&log, id)));
    // Moved out while borrowed, guard dropped, then the holder made garbage.
    let taken = std::mem::take(&mut *holder.kids.borrow_mut());
    // Part moved out while the guard is still held across a collection.
    let mut guard = holder.kids.borrow_mut();
    guard.extend(taken[50..].iter().cloned());
    let second_half = guard.split_off(25);
    gc_core::collect();
    assert_eq!(log.total(), 0);
    drop(guard);
    drop(holder);
    gc_core::collect();
    log.assert_exactly(|id| id == 100, "only the holder");
    for (i, n) in taken.iter().enumerate() {
        n.tally.verify(i as u64);
    }
    for (i, n) in second_half.iter().enumerate() {
        n.tally.verify(75 + i as u64);
    }
    drop((taken, second_half));
    gc_core::collect();
    log.assert_exactly(|_| true, "all");
}

#[test]
fn handles_in_box_and_vec_are_roots() {
    let log = DropLog::new(6);
    let boxed: Box<Gc<Tally>> = Box::new(Gc::new(Tally::new(&log, 0)));
    let vec: Vec<Gc<Tally>> = vec![Gc::new(Tally::new(&log, 1)), Gc::new(Tally::new(&log, 2))];
    let nested: Box<Vec<Option<Gc<Node>>>> = Box::new(vec![None, Some(node(&log, 3))]);
    let cell_outside: GcCell<Vec<Gc<Node>>> = GcCell::new(vec![node(&log, 4)]);
    let slot_outside: GcSlot<Node> = GcSlot::new(Some(node(&log, 5)));
    gc_core::collect();
    gc_core::collect();
    assert_eq!(log.total(), 0);
    boxed.verify(0);
    vec[0].verify(1);
    vec[1].verify(2);
    nested[1].as_ref().unwrap().tally.verify(3);
    cell_outside.borrow()[0].tally.verify(4);
    slot_outside.load().unwrap().tally.verify(5);
    drop((boxed, vec, nested, cell_outside, slot_outside));
    gc_core::collect();
    log.assert_exactly(|_| true, "all");
}

#[derive(Trace)]
struct ArcHolder {
    shared: Arc<Gc<Tally>>,
}

/// DESIGN §4 / `trace/opaque.rs`: a handle behind an `Arc` shared by two heap objects and the
/// stack is never freed early, and is freed once the last `Arc` is gone.
#[test]
fn a_handle_in_a_shared_arc_is_never_freed_early() {
    let log = DropLog::new(1);
    let a = Gc::new(Tally::new(&log, 0));
    let shared = Arc::new(a.clone());
    let h1 = Gc::new(ArcHolder {
        shared: shared.clone(),
    });
    let h2 = Gc::new(ArcHolder {
        shared: shared.clone(),
    });
    drop((a, shared));
    gc_core::collect();
    gc_core::collect();
    assert_eq!(log.total(), 0);
    h1.shared.verify(0);
    drop(h1);
    gc_core::collect();
    gc_core::collect();
    assert_eq!(log.total(), 0, "h2's Arc still holds it");
    h2.shared.verify(0);
    assert!(Arc::strong_count(&h2.shared) == 1);
    drop(h2);
    gc_core::collect(); // drops h2, and with it the last Arc and the rooted handle inside
    gc_core::collect(); // frees the target
    log.assert_exactly(|_| true, "freed after the Arc");
}

#[derive(Trace)]
struct ArcNode {
    tally: Tally,
    link: Arc<Mutex<Option<Gc<ArcNode>>>>,
}

/// A cycle through an `Arc` leaks, as it would without gc-core, and stays usable.
#[test]
fn a_cycle_through_an_arc_leaks_safely() {
    let log = DropLog::new(1);
    let link = Arc::new(Mutex::new(None));
    let n = Gc::new(ArcNode {
        tally: Tally::new(&log, 0),
        link: link.clone(),
    });
    *link.lock().unwrap() = Some(n.clone());
    drop(n);
    for _ in 0..3 {
        gc_core::collect();
    }
    assert_eq!(log.total(), 0, "leaked, not freed");
    let n = link.lock().unwrap().clone().unwrap();
    n.tally.verify(0);
    assert!(Arc::ptr_eq(&n.link, &link));
    // Breaking the cycle by hand frees it.
    let inner = link.lock().unwrap().take();
    drop((n, inner, link));
    gc_core::collect();
    log.assert_exactly(|_| true, "freed once the cycle is broken");
}

#[derive(Trace)]
struct Skipper {
    #[gc(skip)]
    hidden: Vec<Gc<Node>>,
    tally: Tally,
}

/// `#[gc(skip)]`: the handles in the field stay roots. Even a cycle back to the holder leaks
/// rather than being freed under a live handle.
#[test]
fn skip_fields_keep_their_targets_alive() {
    let log = DropLog::new(4);
    let a = node(&log, 0);
    let b = node(&log, 1);
    a.next.store(Some(b.clone()));
    let s = Gc::new(Skipper {
        hidden: vec![a.clone(), b.clone()],
        tally: Tally::new(&log, 2),
    });
    drop((a, b));
    gc_core::collect();
    gc_core::collect();
    assert_eq!(log.total(), 0);
    s.hidden[0].tally.verify(0);
    s.hidden[1].tally.verify(1);
    assert!(Gc::ptr_eq(&s.hidden[0].next.load().unwrap(), &s.hidden[1]));
    drop(s);
    gc_core::collect(); // drops the holder and its rooted handles
    gc_core::collect(); // frees what they kept
    log.assert_exactly(|id| id < 3, "all three");
}

/// A map key (compared by id), recording its drop.
#[derive(Trace)]
#[gc(no_scan)]
struct KeyTally(Tally);

impl PartialEq for KeyTally {
    fn eq(&self, other: &Self) -> bool {
        self.0.id == other.0.id
    }
}

impl Eq for KeyTally {}

impl std::hash::Hash for KeyTally {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.id.hash(h)
    }
}

impl PartialOrd for KeyTally {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for KeyTally {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.id.cmp(&other.0.id)
    }
}

#[derive(Trace)]
struct Registry {
    by_id: std::collections::HashMap<u64, Gc<Node>>,
    ordered: std::collections::BTreeMap<u64, Vec<Gc<Node>>>,
    queue: VecDeque<Option<Gc<Node>>>,
    keys: std::collections::HashMap<Gc<KeyTally>, u64>,
    set: std::collections::BTreeSet<Gc<KeyTally>>,
}

/// Map values and sequences are traced (what they hold dies with them); map keys and set
/// elements are opaque (`trace/impls.rs`): roots while the collection holds them, released
/// when it is dropped.
#[test]
fn handles_in_std_collections() {
    let log = DropLog::new(20);
    let key = |id| Gc::new(KeyTally(Tally::new(&log, id)));
    let reg = Gc::new(GcCell::new(Registry {
        by_id: (0..3).map(|i| (i, node(&log, i))).collect(),
        ordered: [(3, vec![node(&log, 3), node(&log, 4)])]
            .into_iter()
            .collect(),
        queue: [Some(node(&log, 5)), None].into_iter().collect(),
        keys: [(key(10), 10), (key(11), 11)].into_iter().collect(),
        set: [key(12), key(13)].into_iter().collect(),
    }));
    // Values added while the cell is borrowed become edges on release.
    reg.borrow_mut().by_id.insert(6, node(&log, 6));
    reg.borrow_mut().queue.push_front(Some(node(&log, 7)));
    gc_core::collect();
    gc_core::collect();
    assert_eq!(log.total(), 0);
    {
        let r = reg.borrow();
        for i in [0, 1, 2, 6] {
            r.by_id[&i].tally.verify(i);
        }
        r.ordered[&3][1].tally.verify(4);
        r.queue[0].as_ref().unwrap().tally.verify(7);
        let mut ids: Vec<u64> = r.keys.keys().map(|k| k.0.id).collect();
        ids.sort_unstable();
        assert_eq!(ids, [10, 11]);
        assert_eq!(r.set.iter().map(|k| k.0.id).collect::<Vec<_>>(), [12, 13]);
    }
    // Removing a value makes it garbage.
    drop(reg.borrow_mut().by_id.remove(&1));
    gc_core::collect();
    log.assert_exactly(|id| id == 1, "the removed value");
    drop(reg);
    // The registry and its values; the keys' roots go with its drop, so the keys die one cycle
    // later, or already, if another test's cycle ran in between.
    gc_core::collect();
    log.assert_dropped(
        |id| id <= 7,
        |id| (10..14).contains(&id),
        "values die with the registry",
    );
    gc_core::collect(); // the keys, no longer rooted
    log.assert_exactly(|id| id <= 7 || (10..14).contains(&id), "keys freed after");
}

#[test]
fn a_forgotten_handle_leaks_safely() {
    let log = DropLog::new(2);
    let a = node(&log, 0);
    a.next.store(Some(node(&log, 1)));
    std::mem::forget(a.clone());
    let weak_view = Gc::as_ptr(&a);
    drop(a);
    for _ in 0..3 {
        gc_core::collect();
    }
    assert_eq!(log.total(), 0, "a forgotten root keeps the object forever");
    // Allocation goes on around it.
    let fresh: Vec<Gc<Node>> = (0..1000).map(|_| node(&log, 1)).collect();
    assert!(fresh.iter().all(|n| Gc::as_ptr(n) != weak_view));
    drop(fresh);
    gc_core::collect();
    assert_eq!(log.count(0), 0);
    assert_eq!(log.count(1), 1000);
}

// ---------------------------------------------------------------------------------------------
// What heap objects own is released with them
// ---------------------------------------------------------------------------------------------

const K: usize = 4;

/// Makes `K` objects, each owning one allocation of `MARKER_SIZES[i]` bytes, drops them, and
/// checks that `collect()` released those allocations.
fn owned_allocation_is_released<T: Trace>(i: usize, make: impl Fn() -> Gc<T>) {
    let base = live(i);
    let objects: Vec<Gc<T>> = (0..K).map(|_| make()).collect();
    assert_eq!(
        live(i) - base,
        K as isize,
        "the test's allocations of {} bytes are counted",
        MARKER_SIZES[i]
    );
    gc_core::collect();
    assert_eq!(
        live(i) - base,
        K as isize,
        "live objects keep what they own"
    );
    drop(objects);
    gc_core::collect();
    gc_core::collect();
    assert_eq!(
        live(i) - base,
        0,
        "{} of {K} dead `{}` objects did not release their {}-byte allocation",
        live(i) - base,
        std::any::type_name::<T>(),
        MARKER_SIZES[i]
    );
}

#[test]
fn a_dead_vec_releases_its_buffer() {
    owned_allocation_is_released(0, || {
        let mut v = Vec::<u8>::with_capacity(MARKER_SIZES[0]);
        v.push(1);
        Gc::new(v)
    });
}

/// The common graph node: plain data and a `GcCell<Vec<Gc<_>>>` of children.
#[derive(Trace)]
struct PlainNode {
    id: u64,
    kids: GcCell<Vec<Gc<PlainNode>>>,
}

#[test]
fn a_dead_nodes_cell_releases_its_vec() {
    owned_allocation_is_released(1, || {
        let n = Gc::new(PlainNode {
            id: 1,
            kids: GcCell::new(Vec::with_capacity(MARKER_SIZES[1] / 8)),
        });
        let mut kids = n.kids.borrow_mut();
        assert_eq!(kids.capacity(), MARKER_SIZES[1] / 8);
        kids.push(n.clone()); // a self-cycle, too
        kids.push(Gc::new(PlainNode {
            id: 2,
            kids: GcCell::new(Vec::new()),
        }));
        drop(kids);
        assert_eq!(n.kids.borrow()[1].id, 2);
        n
    });
}

#[derive(Trace)]
struct Record {
    bytes: Vec<u8>,
    edge: Option<Gc<Record>>,
}

#[test]
fn a_dead_derived_struct_releases_its_vec_field() {
    owned_allocation_is_released(2, || {
        Gc::new(Record {
            bytes: Vec::with_capacity(MARKER_SIZES[2]),
            edge: Some(Gc::new(Record {
                bytes: Vec::new(),
                edge: None,
            })),
        })
    });
}

#[test]
fn a_dead_linked_list_releases_its_nodes() {
    // A `LinkedList<[u8; 3200]>` node is two pointers and the element: 3,216 bytes.
    owned_allocation_is_released(3, || {
        let mut l = LinkedList::new();
        l.push_back([9u8; 3200]);
        Gc::new(l)
    });
}

#[test]
fn a_dead_boxed_slice_releases_its_buffer() {
    owned_allocation_is_released(4, || Gc::new(vec![3u8; MARKER_SIZES[4]].into_boxed_slice()));
}

#[test]
fn a_dead_vec_deque_releases_its_buffer() {
    owned_allocation_is_released(5, || {
        let mut d = VecDeque::<u8>::with_capacity(MARKER_SIZES[5]);
        assert_eq!(d.capacity(), MARKER_SIZES[5]);
        d.push_front(1);
        Gc::new(d)
    });
}
