//! The public API of gc-core, item by item: `Gc` (sizes, `Send + Sync`, `Deref`, `Clone`,
//! `ptr_eq`, `as_ptr`, `root_count`, `try_new`, the trait delegations), `GcCell` (borrows, the
//! `try_` forms and their `BorrowError`s, same-thread panics, cross-thread waiting, `replace`,
//! `take`, `into_inner`, `get_mut`), `GcSlot` (`load`, `store`, `swap`, `take`,
//! `compare_exchange`), `#[derive(Trace)]` on generic and enum types, `collect`, `stats` (scan vs
//! noscan placement) and `configure`.
//!
//! Invariants (DESIGN §6): **I1** — every value is read back intact after `collect()` while a
//! handle to it exists, and nothing reachable is dropped (per-test drop counters stay at zero);
//! **I3** — what a test makes garbage is dropped by the next `collect()`; **I5** — a handle in a
//! `#[gc(skip)]` field keeps its target alive. DESIGN §2 is the contract for the names, sizes and
//! messages checked here, §4 for the root counts.
//!
//! Tests of one binary run in parallel and share the process-wide collector, so every count is
//! per test (an `Arc<AtomicUsize>` in a `#[gc(no_scan)]` payload) and global statistics are only
//! compared as deltas, under [`HEAVY`] where other tests could disturb them.

mod common;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::mem::{align_of, size_of};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex, MutexGuard};
use std::thread;

use common::checksum;
use gc_core::{BorrowError, Gc, GcCell, GcSlot, GcStats, Trace};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Serialises the tests that allocate or free a lot (megabytes), so that the one comparing
/// `stats()` deltas sees only its own allocations above its noise margin.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// A per-test drop counter.
#[derive(Clone, Default)]
struct Drops(Arc<AtomicUsize>);

impl Drops {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn tally(&self, id: u64) -> Tally {
        Tally {
            id,
            check: checksum(id),
            drops: self.0.clone(),
        }
    }
}

/// A noscan payload that counts its drops (a `#[gc(no_scan)]` type may implement `Drop`).
#[derive(Trace)]
#[gc(no_scan)]
struct Tally {
    id: u64,
    check: u64,
    drops: Arc<AtomicUsize>,
}

impl Tally {
    fn verify(&self, id: u64) {
        assert_eq!(self.id, id, "payload id");
        assert_eq!(self.check, checksum(id), "payload checksum of {id}");
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        assert_eq!(
            self.check,
            checksum(self.id),
            "dropping a corrupted payload"
        );
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// A graph node with every kind of edge.
#[derive(Trace)]
struct Node {
    tally: Tally,
    next: GcSlot<Node>,
    kids: GcCell<Vec<Gc<Node>>>,
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Node({})", self.tally.id)
    }
}

fn node(drops: &Drops, id: u64) -> Gc<Node> {
    Gc::new(Node {
        tally: drops.tally(id),
        next: GcSlot::new(None),
        kids: GcCell::new(Vec::new()),
    })
}

/// The message of a caught panic.
fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_owned()
    } else {
        "<non-string panic payload>".to_owned()
    }
}

fn hash_of<T: Hash + ?Sized>(v: &T) -> u64 {
    let mut h = DefaultHasher::new();
    v.hash(&mut h);
    h.finish()
}

// ---------------------------------------------------------------------------------------------
// Gc
// ---------------------------------------------------------------------------------------------

#[test]
fn handles_are_one_word() {
    assert_eq!(size_of::<Gc<u8>>(), 8);
    assert_eq!(size_of::<Gc<u64>>(), 8);
    assert_eq!(size_of::<Gc<()>>(), 8);
    assert_eq!(size_of::<Gc<Node>>(), 8);
    assert_eq!(size_of::<Gc<[u8; 40_000]>>(), 8);
    assert_eq!(size_of::<Option<Gc<u8>>>(), 8);
    assert_eq!(size_of::<Option<Gc<Node>>>(), 8);
    assert_eq!(size_of::<Option<Gc<[u8; 40_000]>>>(), 8);
    // "one atomic word" (ptr/slot.rs)
    assert_eq!(size_of::<GcSlot<Node>>(), 8);
}

#[test]
// Constant assertions on purpose: a wrong constant fails this test, not the whole build.
#[allow(clippy::assertions_on_constants)]
fn handle_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn trace<T: Trace>() {}
    send_sync::<Gc<u64>>();
    send_sync::<Gc<Node>>();
    send_sync::<Option<Gc<Node>>>();
    send_sync::<GcCell<Vec<Gc<Node>>>>();
    send_sync::<GcSlot<Node>>();
    send_sync::<BorrowError>();
    send_sync::<GcStats>();
    trace::<Gc<Node>>();
    trace::<GcCell<Vec<Gc<Node>>>>();
    trace::<GcSlot<Node>>();
    trace::<Option<Gc<Gc<u8>>>>();
    // What the handles hold decides where they go.
    assert!(!<Gc<u8> as Trace>::NO_SCAN);
    assert!(!<GcSlot<u8> as Trace>::NO_SCAN);
    assert!(<GcCell<String> as Trace>::NO_SCAN);
    assert!(!<GcCell<Vec<Gc<u8>>> as Trace>::NO_SCAN);
    assert!(<Tally as Trace>::NO_SCAN);
    assert!(!<Node as Trace>::NO_SCAN);
}

#[derive(Trace, Debug, PartialEq)]
struct Point {
    x: i64,
    y: i64,
}

#[test]
fn deref_clone_ptr_eq_as_ptr_root_count() {
    let a = Gc::new(Point { x: 3, y: -4 });
    assert_eq!(a.x, 3);
    assert_eq!(a.y, -4);
    assert_eq!(Gc::root_count(&a), 1);

    let b = a.clone();
    assert!(Gc::ptr_eq(&a, &b));
    assert_eq!(Gc::root_count(&a), 2);
    let same_value = Gc::new(Point { x: 3, y: -4 });
    assert!(
        !Gc::ptr_eq(&a, &same_value),
        "equal values, distinct objects"
    );
    assert_eq!(a, same_value, "PartialEq compares values");

    let p = Gc::as_ptr(&a);
    assert_eq!(p, &*a as *const Point);
    assert_eq!(p, Gc::as_ptr(&b));
    assert_eq!(p as usize % align_of::<Point>(), 0);
    assert_eq!(format!("{a:p}"), format!("{p:p}"));

    drop(b);
    assert_eq!(Gc::root_count(&a), 1);
    let moved = thread::spawn(move || {
        let local = a.clone();
        assert_eq!(Gc::root_count(&local), 2);
        a
    })
    .join()
    .unwrap();
    assert_eq!(Gc::root_count(&moved), 1);

    gc_core::collect();
    // The collector does not move objects: the pointer is stable, the value intact.
    assert_eq!(Gc::as_ptr(&moved), p);
    assert_eq!(*moved, Point { x: 3, y: -4 });
    assert_eq!(Gc::root_count(&moved), 1);
}

#[derive(Trace, Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
struct Key {
    rank: u32,
    name: String,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.rank)
    }
}

#[test]
fn traits_delegate_to_the_value() {
    let k = |rank, name: &str| Key {
        rank,
        name: name.to_owned(),
    };
    let a = Gc::new(k(2, "b"));
    let b = Gc::new(k(1, "z"));
    let a2 = Gc::new(k(2, "b"));

    assert_eq!(format!("{a:?}"), format!("{:?}", k(2, "b")));
    assert_eq!(format!("{a:#?}"), format!("{:#?}", k(2, "b")));
    assert_eq!(format!("{a}"), "b#2");
    assert_eq!(Gc::new(String::from("hi")).to_string(), "hi");
    assert_eq!(format!("{:?}", Gc::new(vec![1u8, 2])), "[1, 2]");

    assert_eq!(a, a2);
    assert_ne!(a, b);
    assert!(b < a);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Greater);
    assert_eq!(a.partial_cmp(&a2), Some(std::cmp::Ordering::Equal));
    assert_eq!(hash_of(&a), hash_of(&k(2, "b")));
    assert_eq!(hash_of(&a), hash_of(&a2));

    let set: HashSet<Gc<Key>> = [a.clone(), b.clone(), a2.clone()].into_iter().collect();
    assert_eq!(set.len(), 2, "equal values hash and compare equal");
    assert!(set.contains(&k(1, "z")), "Borrow<T> lookups");
    assert!(!set.contains(&k(1, "y")));

    let tree: BTreeSet<Gc<Key>> = [a.clone(), b.clone(), Gc::new(k(0, "q"))]
        .into_iter()
        .collect();
    let order: Vec<String> = tree.iter().map(|g| g.to_string()).collect();
    assert_eq!(order, ["q#0", "z#1", "b#2"]);

    let d: Gc<Key> = Gc::default();
    assert_eq!(*d, Key::default());
    let f: Gc<Key> = Gc::from(k(9, "f"));
    assert_eq!(f.rank, 9);
    let r: &Key = f.as_ref();
    assert_eq!(r.name, "f");

    gc_core::collect();
    assert_eq!(
        order,
        tree.iter().map(|g| g.to_string()).collect::<Vec<_>>()
    );
    assert!(set.contains(&k(2, "b")));
}

#[test]
fn try_new_succeeds() {
    let drops = Drops::default();
    let g = Gc::try_new(drops.tally(5)).expect("try_new");
    g.verify(5);
    let n = Gc::try_new(Node {
        tally: drops.tally(6),
        next: GcSlot::new(Some(node(&drops, 7))),
        kids: GcCell::new(vec![node(&drops, 8)]),
    })
    .expect("try_new");
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    n.tally.verify(6);
    n.next.load().unwrap().tally.verify(7);
    n.kids.borrow()[0].tally.verify(8);
    drop((g, n));
    gc_core::collect();
    assert_eq!(drops.get(), 4);
}

#[test]
fn tiny_values() {
    let _h = heavy();
    let u8s: Vec<Gc<u8>> = (0..5000).map(|i| Gc::new(i as u8)).collect();
    let u64s: Vec<Gc<u64>> = (0..5000).map(|i| Gc::new(i * 0x0101_0101)).collect();
    let units: Vec<Gc<()>> = (0..100).map(|_| Gc::new(())).collect();
    let bools: Vec<Gc<bool>> = (0..5000).map(|i| Gc::new(i % 3 == 0)).collect();
    let chars: Vec<Gc<char>> = (0..5000u32)
        .map(|i| Gc::new(char::from_u32(0x41 + i % 26).unwrap()))
        .collect();
    let fifteen: Vec<Gc<[u8; 15]>> = (0..1000).map(|i| Gc::new([i as u8; 15])).collect();

    // Distinct objects, properly aligned.
    let addrs: HashSet<usize> = u64s.iter().map(|g| Gc::as_ptr(g) as usize).collect();
    assert_eq!(addrs.len(), u64s.len());
    assert!(u64s
        .iter()
        .all(|g| Gc::as_ptr(g) as usize % align_of::<u64>() == 0));
    let unit_addrs: HashSet<usize> = units.iter().map(|g| Gc::as_ptr(g) as usize).collect();
    assert_eq!(
        unit_addrs.len(),
        units.len(),
        "every Gc::new(()) is its own object"
    );
    assert!(!Gc::ptr_eq(&units[0], &units[1]));
    let byte_addrs: HashSet<usize> = u8s.iter().map(|g| Gc::as_ptr(g) as usize).collect();
    assert_eq!(byte_addrs.len(), u8s.len());

    // Keep every seventh, drop the rest, collect, allocate more over the freed space.
    let keep = |i: usize| i % 7 == 0;
    let kept_u8: Vec<(usize, Gc<u8>)> = u8s
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .collect();
    let kept_u64: Vec<(usize, Gc<u64>)> = u64s
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .collect();
    let kept_bool: Vec<(usize, Gc<bool>)> = bools
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .collect();
    let kept_char: Vec<(usize, Gc<char>)> = chars
        .into_iter()
        .enumerate()
        .filter(|(i, _)| keep(*i))
        .collect();
    drop(units);
    gc_core::collect();
    gc_core::collect();
    let fresh: Vec<Gc<u64>> = (0..20_000).map(|i| Gc::new(u64::MAX - i)).collect();
    for (i, g) in &kept_u8 {
        assert_eq!(**g, *i as u8);
    }
    for (i, g) in &kept_u64 {
        assert_eq!(**g, *i as u64 * 0x0101_0101);
    }
    for (i, g) in &kept_bool {
        assert_eq!(**g, i % 3 == 0);
    }
    for (i, g) in &kept_char {
        assert_eq!(**g, char::from_u32(0x41 + (*i as u32) % 26).unwrap());
    }
    for (i, g) in fifteen.iter().enumerate() {
        assert_eq!(**g, [i as u8; 15]);
    }
    for (i, g) in fresh.iter().enumerate() {
        assert_eq!(**g, u64::MAX - i as u64);
    }
    let unit = Gc::new(());
    assert_eq!(*unit, ());
}

#[test]
fn large_values() {
    let _h = heavy();
    let drops = Drops::default();
    let inline: Gc<[u8; 40_000]> = Gc::new([0x5A; 40_000]);
    let boxed: Gc<Box<[u8]>> = Gc::new(vec![0xC3u8; 100 * 1024].into_boxed_slice());
    let big_vec: Gc<Vec<u64>> = Gc::new((0..200_000u64).collect());
    // A large *scan* object: its edges are the only path to 5,000 payloads.
    let mut edges: Vec<Option<Gc<Tally>>> =
        (0..5000).map(|i| Some(Gc::new(drops.tally(i)))).collect();
    edges[17] = None;
    let wide: Gc<Vec<Option<Gc<Tally>>>> = Gc::new(edges);
    let array: Gc<[Option<Gc<Tally>>; 5000]> = Gc::new(std::array::from_fn(|i| {
        Some(Gc::new(drops.tally(10_000 + i as u64)))
    }));

    gc_core::collect();
    gc_core::collect();
    assert_eq!(
        drops.get(),
        1,
        "only the payload replaced by None is garbage"
    );
    assert!(inline.iter().all(|&b| b == 0x5A));
    assert_eq!(boxed.len(), 100 * 1024);
    assert!(boxed.iter().all(|&b| b == 0xC3));
    assert!(big_vec.iter().enumerate().all(|(i, &v)| v == i as u64));
    for (i, e) in wide.iter().enumerate() {
        match e {
            None => assert_eq!(i, 17),
            Some(t) => t.verify(i as u64),
        }
    }
    for (i, e) in array.iter().enumerate() {
        e.as_ref().unwrap().verify(10_000 + i as u64);
    }
    drop((wide, array));
    gc_core::collect();
    assert_eq!(drops.get(), 10_000);
}

// ---------------------------------------------------------------------------------------------
// GcCell
// ---------------------------------------------------------------------------------------------

#[test]
fn cell_borrow_and_try_borrow_on_one_thread() {
    let holder = Gc::new(GcCell::new(vec![1u32, 2, 3]));
    let cell: &GcCell<Vec<u32>> = &holder;
    {
        let r1 = cell.borrow();
        let r2 = cell.try_borrow().expect("readers share");
        assert_eq!(*r1, [1, 2, 3]);
        assert_eq!(r2.len(), 3);
        let e = cell.try_borrow_mut().unwrap_err();
        assert_eq!(
            e,
            BorrowError::Borrowed {
                readers: 2,
                by_this_thread: true
            }
        );
        let msg = e.to_string();
        assert!(msg.starts_with("GcCell is already borrowed"), "{msg}");
        assert!(
            msg.contains("2 shared borrows") && msg.contains("this thread"),
            "{msg}"
        );
        drop(r2);
        let e = cell.try_borrow_mut().unwrap_err();
        assert_eq!(
            e,
            BorrowError::Borrowed {
                readers: 1,
                by_this_thread: true
            }
        );
        let msg = e.to_string();
        assert!(msg.starts_with("GcCell is already borrowed"), "{msg}");
        assert!(msg.contains("this thread"), "{msg}");
        assert_eq!(format!("{r1:?}"), "[1, 2, 3]");
    }
    {
        let mut w = cell.try_borrow_mut().expect("no borrow left");
        w.push(4);
        let e = cell.try_borrow().unwrap_err();
        assert_eq!(
            e,
            BorrowError::MutablyBorrowed {
                by_this_thread: true
            }
        );
        assert_eq!(
            e.to_string(),
            "GcCell is already mutably borrowed by this thread"
        );
        assert_eq!(cell.try_borrow_mut().unwrap_err(), e);
        assert_eq!(format!("{cell:?}"), "GcCell { value: <borrowed> }");
        assert_eq!(format!("{w:?}"), "[1, 2, 3, 4]");
    }
    assert_eq!(format!("{cell:?}"), "GcCell { value: [1, 2, 3, 4] }");
    let e: &dyn std::error::Error = &BorrowError::MutablyBorrowed {
        by_this_thread: false,
    };
    assert_eq!(
        e.to_string(),
        "GcCell is already mutably borrowed by another thread"
    );
}

#[test]
fn cell_same_thread_conflicts_panic_with_what_conflicted() {
    let cell = Gc::new(GcCell::new(0u64));

    let w = cell.borrow_mut();
    let e = catch_unwind(AssertUnwindSafe(|| drop(cell.borrow_mut()))).unwrap_err();
    assert_eq!(
        panic_message(e),
        "GcCell is already mutably borrowed by this thread: cannot borrow it mutably"
    );
    let e = catch_unwind(AssertUnwindSafe(|| drop(cell.borrow()))).unwrap_err();
    assert_eq!(
        panic_message(e),
        "GcCell is already mutably borrowed by this thread: cannot borrow it immutably as well"
    );
    let e = catch_unwind(AssertUnwindSafe(|| cell.replace(1))).unwrap_err();
    assert!(panic_message(e).contains("mutably borrowed by this thread"));
    drop(w);

    let r = cell.borrow();
    let e = catch_unwind(AssertUnwindSafe(|| drop(cell.borrow_mut()))).unwrap_err();
    let reader_here = BorrowError::Borrowed {
        readers: 1,
        by_this_thread: true,
    };
    assert_eq!(
        panic_message(e),
        format!("{reader_here}: cannot borrow it mutably")
    );
    assert!(reader_here.to_string().contains("this thread"));
    let e = catch_unwind(AssertUnwindSafe(|| cell.take())).unwrap_err();
    assert!(panic_message(e).contains("already borrowed"));
    drop(r);

    // The failed attempts left the flag as it was.
    *cell.borrow_mut() = 7;
    assert_eq!(*cell.borrow(), 7);
    assert_eq!(cell.replace(8), 7);
    assert_eq!(cell.take(), 8);
    assert_eq!(*cell.borrow(), 0);
}

#[test]
fn cell_conflicts_with_another_thread_fail_the_try_forms() {
    let cell = Gc::new(GcCell::new(String::from("x")));
    let w = cell.borrow_mut();
    let c = cell.clone();
    let (e1, e2) = thread::spawn(move || (c.try_borrow_mut().err(), c.try_borrow().err()))
        .join()
        .unwrap();
    let want = BorrowError::MutablyBorrowed {
        by_this_thread: false,
    };
    assert_eq!(e1, Some(want));
    assert_eq!(e2, Some(want));
    assert_eq!(
        want.to_string(),
        "GcCell is already mutably borrowed by another thread"
    );
    drop(w);

    let r = cell.borrow();
    let c = cell.clone();
    let (e, shared) = thread::spawn(move || {
        let e = c.try_borrow_mut().err();
        let shared = c.try_borrow().map(|r| r.clone()).ok();
        (e, shared)
    })
    .join()
    .unwrap();
    let e = e.expect("a reader on another thread blocks try_borrow_mut");
    assert_eq!(
        e,
        BorrowError::Borrowed {
            readers: 1,
            by_this_thread: false
        }
    );
    let msg = e.to_string();
    assert!(msg.starts_with("GcCell is already borrowed"), "{msg}");
    assert!(!msg.contains("this thread"), "{msg}");
    assert_eq!(shared.as_deref(), Some("x"));
    drop(r);
    assert!(cell.try_borrow_mut().is_ok());
}

#[test]
fn cell_borrow_mut_waits_for_another_threads_borrows() {
    let drops = Drops::default();
    let holder = node(&drops, 0);

    // The writer on this thread releases only after the other thread is about to wait; the
    // other thread must see this thread's last write when it gets in.
    let mut w = holder.kids.borrow_mut();
    let released = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let h = {
        let holder = holder.clone();
        let released = released.clone();
        thread::spawn(move || {
            tx.send(()).unwrap();
            let kids = holder.kids.borrow_mut();
            assert!(
                released.load(Ordering::SeqCst),
                "got in while the writer held it"
            );
            assert_eq!(kids.len(), 2, "sees the writer's last write");
            kids.iter().map(|k| k.tally.id).collect::<Vec<_>>()
        })
    };
    rx.recv().unwrap();
    thread::sleep(std::time::Duration::from_millis(20)); // let it spin (not an assertion)
    w.push(node(&drops, 1));
    w.push(node(&drops, 2));
    released.store(true, Ordering::SeqCst);
    drop(w);
    assert_eq!(h.join().unwrap(), [1, 2]);

    // The same with readers in the way: two readers on other threads, then a writer here.
    let barrier = Arc::new(Barrier::new(3));
    let done = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (holder, barrier, done) = (holder.clone(), barrier.clone(), done.clone());
            thread::spawn(move || {
                let r = holder.kids.borrow();
                barrier.wait(); // both readers hold their borrow
                barrier.wait(); // the writer is about to wait
                thread::sleep(std::time::Duration::from_millis(10));
                assert_eq!(r.len(), 2, "no writer got in while reading");
                done.fetch_add(1, Ordering::SeqCst);
                drop(r);
            })
        })
        .collect();
    barrier.wait();
    barrier.wait();
    let mut w = holder.kids.borrow_mut();
    assert_eq!(
        done.load(Ordering::SeqCst),
        2,
        "the writer waited for both readers"
    );
    w.pop();
    drop(w);
    for r in readers {
        r.join().unwrap();
    }
    gc_core::collect();
    assert_eq!(drops.get(), 1, "the popped node is garbage");
    holder.kids.borrow()[0].tally.verify(1);
}

#[test]
fn cell_borrow_waits_for_a_writer_on_another_thread() {
    let cell = Gc::new(GcCell::new(1u64));
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let writer = {
        let cell = cell.clone();
        thread::spawn(move || {
            let mut w = cell.borrow_mut();
            tx.send(()).unwrap();
            go_rx.recv().unwrap();
            thread::sleep(std::time::Duration::from_millis(20));
            *w = 2;
            drop(w);
        })
    };
    rx.recv().unwrap();
    go_tx.send(()).unwrap();
    let v = *cell.borrow();
    assert_eq!(
        v, 2,
        "a reader never sees the cell while another thread writes it"
    );
    writer.join().unwrap();
}

/// Whether a concrete type is `Send`, at run time: the inherent constant exists only when the
/// bound holds, and wins over the trait's fallback (the `impls` crate's trick).
struct SendProbe<T: ?Sized>(std::marker::PhantomData<T>);

trait NotSendFallback {
    const SEND: bool = false;
}

impl<T: ?Sized> NotSendFallback for SendProbe<T> {}

impl<T: ?Sized + Send> SendProbe<T> {
    const SEND: bool = true;
}

/// A borrow guard belongs to the thread that took it: the cell records the writer's thread and
/// each thread's shared borrows, to tell a same-thread conflict (which waiting can never end,
/// so it panics) from another thread's borrow (which it waits for). A guard moved to and
/// released on another thread would leave that record wrong — a false "by this thread" panic
/// instead of waiting — so the guards must not be `Send` (like `RwLockReadGuard`).
#[test]
// Constant assertions on purpose: a wrong constant fails this test, not the whole build.
#[allow(clippy::assertions_on_constants)]
fn borrow_guards_stay_on_their_thread() {
    assert!(SendProbe::<Gc<u32>>::SEND, "the probe works");
    assert!(SendProbe::<GcCell<u32>>::SEND, "the probe works");
    assert!(!SendProbe::<std::rc::Rc<u8>>::SEND, "the probe works");
    assert!(
        !SendProbe::<gc_core::GcRef<'static, u32>>::SEND,
        "GcRef must not be Send"
    );
    assert!(
        !SendProbe::<gc_core::GcRefMut<'static, u32>>::SEND,
        "GcRefMut must not be Send"
    );
}

#[test]
fn cell_replace_take_into_inner_get_mut() {
    let drops = Drops::default();
    // A cell in the heap: what comes out is rooted and survives collections.
    let holder = node(&drops, 0);
    holder
        .kids
        .borrow_mut()
        .extend([node(&drops, 1), node(&drops, 2)]);
    let old = holder.kids.replace(vec![node(&drops, 3)]);
    let taken = holder.kids.take();
    assert!(holder.kids.borrow().is_empty());
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    assert_eq!(old.iter().map(|n| n.tally.id).collect::<Vec<_>>(), [1, 2]);
    taken[0].tally.verify(3);
    // And what goes in is an edge: reachable only through the cell, still alive.
    holder.kids.replace(old);
    drop(taken);
    gc_core::collect();
    assert_eq!(drops.get(), 1, "node 3 is garbage");
    let kids = holder.kids.borrow();
    kids[0].tally.verify(1);
    kids[1].tally.verify(2);
    drop(kids);

    // A cell of our own.
    let mut own = GcCell::new(vec![node(&drops, 4)]);
    own.get_mut().push(node(&drops, 5));
    gc_core::collect();
    assert_eq!(drops.get(), 1);
    let v = own.into_inner();
    gc_core::collect();
    assert_eq!(drops.get(), 1);
    v[0].tally.verify(4);
    v[1].tally.verify(5);
    drop(v);
    drop(holder);
    gc_core::collect();
    assert_eq!(drops.get(), 6);

    let d: GcCell<Vec<u8>> = GcCell::default();
    assert!(d.borrow().is_empty());
}

// ---------------------------------------------------------------------------------------------
// GcSlot
// ---------------------------------------------------------------------------------------------

#[test]
fn slot_load_store_swap_take() {
    let drops = Drops::default();
    let a = node(&drops, 1);
    let b = node(&drops, 2);

    // A slot of our own (rooted): it counts its handle.
    let slot = GcSlot::new(Some(a.clone()));
    assert_eq!(Gc::root_count(&a), 2);
    let got = slot.load().unwrap();
    assert!(Gc::ptr_eq(&got, &a));
    assert_eq!(Gc::root_count(&a), 3);
    drop(got);
    let old = slot.swap(Some(b.clone())).unwrap();
    assert!(Gc::ptr_eq(&old, &a));
    assert_eq!(Gc::root_count(&a), 2);
    assert_eq!(Gc::root_count(&b), 2);
    drop(old);
    slot.store(None);
    assert_eq!(Gc::root_count(&b), 1);
    assert!(slot.load().is_none());
    assert!(slot.take().is_none());
    slot.store(Some(a.clone()));
    assert!(Gc::ptr_eq(&slot.take().unwrap(), &a));
    assert!(slot.load().is_none());
    assert!(format!("{slot:?}").contains("GcSlot"));
    assert!(GcSlot::<Node>::default().load().is_none());

    // A slot in the heap (an edge): it counts nothing, yet keeps its target alive.
    a.next.store(Some(b.clone()));
    assert_eq!(Gc::root_count(&b), 1, "a heap edge is not a root");
    let c_id = 3;
    a.next.store(Some(node(&drops, c_id)));
    b.next.store(Some(node(&drops, 4)));
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    a.next.load().unwrap().tally.verify(c_id);
    let c = a.next.swap(None).unwrap();
    assert_eq!(Gc::root_count(&c), 1, "swap hands back a rooted handle");
    gc_core::collect();
    c.tally.verify(c_id);
    let taken = b.next.take().unwrap();
    taken.tally.verify(4);
    drop((taken, c));
    gc_core::collect();
    assert_eq!(drops.get(), 2, "nodes 3 and 4");
    drop((a, b, slot));
    gc_core::collect();
    assert_eq!(drops.get(), 4);
}

#[test]
fn slot_compare_exchange() {
    let drops = Drops::default();
    let holder = node(&drops, 0);
    let a = node(&drops, 1);
    let b = node(&drops, 2);

    // Empty → a: succeeds, returns the old target (none).
    assert!(matches!(
        holder.next.compare_exchange(None, Some(a.clone())),
        Ok(None)
    ));
    assert_eq!(Gc::root_count(&a), 1, "stored as an edge");
    // Expecting b while it holds a: fails and hands `new` back, unchanged.
    let new = node(&drops, 3);
    let back = holder
        .next
        .compare_exchange(Some(&b), Some(new.clone()))
        .unwrap_err()
        .expect("new comes back");
    assert!(Gc::ptr_eq(&back, &new));
    assert_eq!(Gc::root_count(&new), 2);
    drop(back);
    // Expecting empty while it holds a: fails too.
    assert!(holder
        .next
        .compare_exchange(None, None)
        .unwrap_err()
        .is_none());
    assert!(Gc::ptr_eq(&holder.next.load().unwrap(), &a));
    // Expecting a: a → b.
    let old = holder
        .next
        .compare_exchange(Some(&a), Some(b.clone()))
        .unwrap()
        .unwrap();
    assert!(Gc::ptr_eq(&old, &a));
    assert_eq!(Gc::root_count(&a), 2, "the old target comes back rooted");
    drop(old);
    // b → empty.
    let old = holder
        .next
        .compare_exchange(Some(&b), None)
        .unwrap()
        .unwrap();
    assert!(Gc::ptr_eq(&old, &b));
    drop(old);
    assert!(holder.next.load().is_none());

    // The same on a slot of our own (rooted).
    let own = GcSlot::new(None);
    assert!(matches!(
        own.compare_exchange(None, Some(a.clone())),
        Ok(None)
    ));
    assert_eq!(Gc::root_count(&a), 2, "a rooted slot counts its handle");
    let back = own
        .compare_exchange(Some(&b), Some(new.clone()))
        .unwrap_err()
        .unwrap();
    assert!(Gc::ptr_eq(&back, &new));
    drop(back);
    assert_eq!(Gc::root_count(&new), 1);
    let old = own
        .compare_exchange(Some(&a), Some(new.clone()))
        .unwrap()
        .unwrap();
    assert!(Gc::ptr_eq(&old, &a));
    drop(old);
    assert_eq!(Gc::root_count(&a), 1);
    assert_eq!(Gc::root_count(&new), 2);

    // Edges set by compare_exchange keep their targets alive.
    holder
        .next
        .compare_exchange(None, Some(new.clone()))
        .unwrap();
    drop((a, b, new, own));
    gc_core::collect();
    assert_eq!(drops.get(), 2, "a and b are garbage");
    holder.next.load().unwrap().tally.verify(3);
    drop(holder);
    gc_core::collect();
    assert_eq!(drops.get(), 4);
}

// ---------------------------------------------------------------------------------------------
// collect, stats, configure
// ---------------------------------------------------------------------------------------------

#[test]
fn noscan_values_go_to_noscan_spans() {
    const N: usize = 100_000;
    // Slack for the allocations of the light tests running meanwhile (kilobytes) and for the
    // free slots of cached spans, which count as allocated.
    const SLACK: usize = 1 << 20;
    let _h = heavy();
    gc_core::collect();

    let before = gc_core::stats();
    let strings: Vec<Gc<String>> = (0..N).map(|_| Gc::new(String::new())).collect();
    let mid = gc_core::stats();
    let noscan_grew = mid.noscan_bytes as isize - before.noscan_bytes as isize;
    let scan_grew = mid.scan_bytes as isize - before.scan_bytes as isize;
    // A `GcBox<String>` is 8 + 24 bytes.
    assert!(
        noscan_grew >= (N * 32 - SLACK) as isize,
        "{N} Gc<String> must go to noscan spans: noscan grew by {noscan_grew}, scan by {scan_grew}"
    );
    assert!(
        scan_grew < SLACK as isize,
        "{N} Gc<String> must not go to scan spans: scan grew by {scan_grew}"
    );

    // The control: values that can hold a handle go to scan spans.
    let slots: Vec<Gc<GcSlot<u64>>> = (0..N).map(|_| Gc::new(GcSlot::new(None))).collect();
    let after = gc_core::stats();
    let noscan_grew = after.noscan_bytes as isize - mid.noscan_bytes as isize;
    let scan_grew = after.scan_bytes as isize - mid.scan_bytes as isize;
    assert!(
        scan_grew >= (N * 16 - SLACK) as isize,
        "{N} Gc<GcSlot<u64>> must go to scan spans: scan grew by {scan_grew}"
    );
    assert!(
        noscan_grew < SLACK as isize,
        "Gc<GcSlot<u64>> must not go to noscan spans: noscan grew by {noscan_grew}"
    );
    assert!(after.bytes <= after.scan_bytes + after.noscan_bytes);
    assert!(after.objects >= 2 * N);
    drop((strings, slots));
}

#[test]
fn collect_and_stats() {
    let drops = Drops::default();
    let before = gc_core::stats();
    let a = node(&drops, 1);
    let b = node(&drops, 2);
    a.next.store(Some(b.clone()));
    b.next.store(Some(a.clone()));
    drop((a, b));
    gc_core::collect();
    assert_eq!(drops.get(), 2, "the cycle is dropped when collect returns");
    let after = gc_core::stats();
    assert!(after.cycles > before.cycles);
    assert!(after.objects_dropped >= before.objects_dropped + 2);
    // (`objects_allocated` counts slots handed to thread caches, so it is not monotonic.)
    assert!(after.objects_allocated >= after.objects_freed);
    assert!(after.objects_freed >= before.objects_freed);
    assert!(after.pauses.count >= after.cycles);
    assert!(after.pauses.max >= after.pauses.p99 && after.pauses.p99 >= after.pauses.p50);
    assert!(after.mark.count >= 1 && after.sweep.count >= 1);
    assert!(after.heap_bytes >= after.bytes);
    assert!(after.committed_bytes >= after.heap_bytes);
    let text = after.to_string();
    for word in ["cycles", "objects", "scan", "noscan", "drops", "pauses"] {
        assert!(text.contains(word), "{word:?} missing from\n{text}");
    }
}

#[test]
fn configure_after_first_use_is_refused() {
    let _ = gc_core::stats();
    let e = gc_core::configure(gc_core::GcConfig::default()).unwrap_err();
    assert_eq!(e, gc_core::ConfigError::AlreadyStarted);
    assert!(e.to_string().contains("before the first use"));
}

/// Runs [`memory_limit_child`] in a process of its own, where `configure` comes first.
#[test]
fn try_new_reports_the_memory_limit() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_limit_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("GC_CORE_API_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("1 passed"),
        "child did not run:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("memory limit reached"), "{stdout}");
}

/// Does its work only under `GC_CORE_API_CHILD=1` (see [`try_new_reports_the_memory_limit`]).
#[test]
fn memory_limit_child() {
    if std::env::var_os("GC_CORE_API_CHILD").is_none() {
        return;
    }
    let mut config = gc_core::GcConfig::default();
    config.memory_limit = Some(1 << 20);
    gc_core::configure(config).expect("first use");

    let mut kept = Vec::new();
    let err = loop {
        match Gc::try_new([7u8; 1000]) {
            Ok(g) => kept.push(g),
            Err(e) => break e,
        }
        assert!(kept.len() < 2000, "1 MiB limit never reached");
    };
    let msg = err.to_string();
    assert!(
        matches!(err, gc_core::AllocError::MemoryLimit { limit, .. } if limit == 1 << 20),
        "{err:?}"
    );
    assert!(msg.contains("limit"), "{msg}");
    println!("memory limit reached after {} objects: {msg}", kept.len());
    // Gc::new panics with the same message.
    let e = catch_unwind(|| Gc::new([7u8; 1000])).unwrap_err();
    assert_eq!(panic_message(e), msg);
    // A value that cannot be placed is dropped, once.
    #[derive(Trace)]
    struct Heavy {
        pad: [u8; 1000],
        tally: Tally,
    }
    let drops = Drops::default();
    let r = Gc::try_new(Heavy {
        pad: [1; 1000],
        tally: drops.tally(1),
    });
    assert!(r.is_err(), "a new span class at the limit");
    assert_eq!(
        drops.get(),
        1,
        "try_new dropped the value it could not place"
    );
    let e = catch_unwind(AssertUnwindSafe(|| {
        Gc::new(Heavy {
            pad: [2; 1000],
            tally: drops.tally(2),
        })
    }));
    assert!(e.is_err());
    assert_eq!(drops.get(), 2, "Gc::new dropped the value before panicking");
    assert!(kept.iter().all(|g| g.iter().all(|&b| b == 7)));
    // Freed memory can be used again.
    drop(kept);
    gc_core::collect();
    let again = Gc::try_new([8u8; 1000]).expect("room after collect");
    assert_eq!(again[999], 8);
    let heavy = Gc::try_new(Heavy {
        pad: [3; 1000],
        tally: drops.tally(3),
    })
    .expect("room after collect");
    assert_eq!((heavy.pad[0], heavy.tally.id), (3, 3));
}

#[test]
fn large_objects_give_their_pages_back() {
    const N: usize = 64;
    const SIZE: usize = 1 << 20;
    let _h = heavy();
    // A 1 MiB value is moved through a few stack frames on its way into the heap.
    thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            gc_core::collect();
            let before = gc_core::stats().heap_bytes;
            let big: Vec<Gc<[u8; SIZE]>> = (0..N).map(|i| Gc::new([i as u8; SIZE])).collect();
            let peak = gc_core::stats().heap_bytes;
            assert!(
                peak >= before + N * SIZE,
                "{N} MiB in spans: {before} -> {peak}"
            );
            for (i, b) in big.iter().enumerate() {
                assert!(b[0] == i as u8 && b[SIZE - 1] == i as u8);
            }
            drop(big);
            gc_core::collect();
            let after = gc_core::stats().heap_bytes;
            assert!(
                after + (N - 4) * SIZE <= peak,
                "dead large objects leave the heap: {before} -> {peak} -> {after}"
            );
        })
        .unwrap()
        .join()
        .unwrap();
}

#[repr(align(64))]
#[derive(Trace)]
struct Align64([u8; 40]);

#[repr(align(256))]
#[derive(Trace)]
struct Align256([u64; 400]);

#[repr(align(4096))]
#[derive(Trace)]
struct Align4096(u64, Option<Gc<u64>>);

#[test]
fn over_aligned_values_are_aligned() {
    let a: Vec<Gc<Align64>> = (0..300).map(|i| Gc::new(Align64([i as u8; 40]))).collect();
    let b: Vec<Gc<Align256>> = (0..30).map(|i| Gc::new(Align256([i; 400]))).collect();
    let c: Vec<Gc<Align4096>> = (0..5)
        .map(|i| Gc::new(Align4096(i, Some(Gc::new(i * 10)))))
        .collect();
    gc_core::collect();
    for (i, g) in a.iter().enumerate() {
        assert_eq!(Gc::as_ptr(g) as usize % 64, 0);
        assert_eq!(g.0, [i as u8; 40]);
    }
    for (i, g) in b.iter().enumerate() {
        assert_eq!(Gc::as_ptr(g) as usize % 256, 0);
        assert!(g.0.iter().all(|&v| v == i as u64));
    }
    for (i, g) in c.iter().enumerate() {
        assert_eq!(Gc::as_ptr(g) as usize % 4096, 0);
        assert_eq!(g.0, i as u64);
        assert_eq!(
            **g.1.as_ref().unwrap(),
            i as u64 * 10,
            "an edge of an aligned object"
        );
    }
}

#[test]
fn handles_cloned_out_of_heap_objects_are_roots() {
    let drops = Drops::default();
    let nested: Gc<Gc<Tally>> = Gc::new(Gc::new(drops.tally(1)));
    let optional: Gc<Option<Gc<Tally>>> = Gc::new(Some(Gc::new(drops.tally(2))));
    let many: Gc<Vec<Gc<Tally>>> = Gc::new((3..6).map(|i| Gc::new(drops.tally(i))).collect());
    let tuple: Gc<(u8, Gc<Tally>)> = Gc::new((0, Gc::new(drops.tally(6))));
    assert_eq!(Gc::root_count(&nested), 1);
    assert_eq!(
        Gc::root_count(&*nested),
        0,
        "the inner handle is an edge now"
    );
    let one: Gc<Tally> = (*nested).clone();
    let two = Option::as_ref(&optional).unwrap().clone();
    let three_to_five: Vec<Gc<Tally>> = many.to_vec();
    let six = tuple.1.clone();
    assert_eq!(Gc::root_count(&one), 1, "a clone of an edge is a root");
    drop((nested, optional, many, tuple));
    gc_core::collect();
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    one.verify(1);
    two.verify(2);
    for (i, t) in three_to_five.iter().enumerate() {
        t.verify(3 + i as u64);
    }
    six.verify(6);
    drop((one, two, three_to_five, six));
    gc_core::collect();
    assert_eq!(drops.get(), 6);
}

#[test]
fn tiny_objects_reachable_only_through_edges_survive() {
    let _h = heavy();
    let holder: Gc<GcCell<Vec<Gc<u64>>>> = Gc::new(GcCell::new(Vec::new()));
    let slot_holder: Gc<GcSlot<u32>> = Gc::new(GcSlot::new(None));
    let mut edges = Vec::new();
    for i in 0..5000u64 {
        let g = Gc::new(i);
        // Interleave rooted-then-dropped neighbours in the same 16-byte blocks.
        let neighbour = Gc::new(u64::MAX - i);
        edges.push(g);
        drop(neighbour);
    }
    *holder.borrow_mut() = edges;
    slot_holder.store(Some(Gc::new(77)));
    for _ in 0..3 {
        gc_core::collect();
        let churn: Vec<Gc<u64>> = (0..20_000).map(|i| Gc::new(i << 20)).collect();
        drop(churn);
    }
    for (i, g) in holder.borrow().iter().enumerate() {
        assert_eq!(**g, i as u64);
        assert_eq!(Gc::as_ptr(g) as usize % 8, 0);
    }
    assert_eq!(slot_holder.load().as_deref(), Some(&77));
}

#[derive(Trace)]
struct Shelf {
    boxes: GcCell<Vec<GcCell<Vec<Gc<Tally>>>>>,
    slots: GcCell<Vec<GcSlot<Tally>>>,
}

/// Cells inside cells, and slots inside a cell: a mutable borrow roots what is directly inside
/// (the inner cells' content, the slots' targets) and unrooting it again on release leaves
/// edges, so what is moved out survives and what stays in is still reachable.
#[test]
fn cells_and_slots_nested_in_a_cell() {
    let drops = Drops::default();
    let shelf = Gc::new(Shelf {
        boxes: GcCell::new(vec![
            GcCell::new(vec![Gc::new(drops.tally(0)), Gc::new(drops.tally(1))]),
            GcCell::new(vec![Gc::new(drops.tally(2))]),
        ]),
        slots: GcCell::new(vec![
            GcSlot::new(Some(Gc::new(drops.tally(3)))),
            GcSlot::new(None),
        ]),
    });
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    // An inner cell borrowed through the outer cell's shared borrow (it is an edge holder).
    shelf.boxes.borrow()[1]
        .borrow_mut()
        .push(Gc::new(drops.tally(4)));
    // An inner cell moved out while the outer one is borrowed: its content is rooted.
    let first = shelf.boxes.borrow_mut().remove(0);
    // A slot moved out of the cell, another stored into while borrowed.
    let moved_slot = shelf.slots.borrow_mut().remove(0);
    shelf.slots.borrow()[0].store(Some(Gc::new(drops.tally(5))));
    shelf
        .slots
        .borrow_mut()
        .push(GcSlot::new(Some(Gc::new(drops.tally(6)))));
    gc_core::collect();
    gc_core::collect();
    assert_eq!(drops.get(), 0, "nothing is garbage yet");
    let ids = |v: &[Gc<Tally>]| v.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(&first.borrow()), [0, 1]);
    assert_eq!(ids(&shelf.boxes.borrow()[0].borrow()), [2, 4]);
    assert_eq!(moved_slot.load().unwrap().id, 3);
    let slots = shelf.slots.borrow();
    assert_eq!(slots[0].load().unwrap().id, 5);
    assert_eq!(slots[1].load().unwrap().id, 6);
    drop(slots);
    // Put the inner cell back; drop the moved slot (its target is garbage then).
    shelf.boxes.borrow_mut().push(first);
    drop(moved_slot);
    gc_core::collect();
    assert_eq!(drops.get(), 1, "only the moved slot's target");
    assert_eq!(ids(&shelf.boxes.borrow()[1].borrow()), [0, 1]);
    drop(shelf);
    gc_core::collect();
    assert_eq!(drops.get(), 7);
}

/// A panic while a mutable borrow is held releases the borrow on unwinding, and leaves the
/// content as edges: what was pushed before the panic is kept alive by the cell alone.
#[test]
fn a_panic_during_a_mutable_borrow_releases_it() {
    let drops = Drops::default();
    let holder = node(&drops, 0);
    let h = holder.clone();
    let d = drops.clone();
    let r = thread::spawn(move || {
        let mut kids = h.kids.borrow_mut();
        kids.push(node(&d, 1));
        kids.push(node(&d, 2));
        panic!("panicking with the borrow held");
    })
    .join();
    assert!(r.is_err());
    assert!(
        holder.kids.try_borrow_mut().is_ok(),
        "released by the unwinding"
    );
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    assert_eq!(
        holder
            .kids
            .borrow()
            .iter()
            .map(|k| k.tally.id)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    let one = holder.kids.borrow_mut().remove(0);
    assert_eq!(
        Gc::root_count(&one),
        1,
        "moved out of a borrowed cell: rooted"
    );
    assert_eq!(
        Gc::root_count(&holder.kids.borrow()[0]),
        0,
        "left in the cell: an edge"
    );
    drop(one);
    gc_core::collect();
    assert_eq!(drops.get(), 1);
}

// ---------------------------------------------------------------------------------------------
// #[derive(Trace)]
// ---------------------------------------------------------------------------------------------

#[derive(Trace)]
struct Pair<A, B> {
    first: A,
    second: B,
}

#[derive(Trace)]
struct Wrapper<T>(T, u32);

#[derive(Trace)]
struct Unit;

/// Not `Trace`: only allowed in a skipped field.
struct Opaque(u64);

#[derive(Trace)]
enum Tree<T: Trace> {
    Leaf(T),
    Branch {
        left: Gc<Tree<T>>,
        right: Gc<Tree<T>>,
        #[gc(skip)]
        note: Opaque,
    },
    Mutable(GcSlot<Tree<T>>),
    Empty,
}

fn sum_leaves(t: &Gc<Tree<Tally>>, seen: &mut Vec<u64>) {
    match &**t {
        Tree::Leaf(x) => {
            x.verify(x.id);
            seen.push(x.id)
        }
        Tree::Branch { left, right, note } => {
            assert_eq!(note.0, 0xAB);
            sum_leaves(left, seen);
            sum_leaves(right, seen);
        }
        Tree::Mutable(s) => {
            if let Some(t) = s.load() {
                sum_leaves(&t, seen)
            }
        }
        Tree::Empty => {}
    }
}

#[test]
// Constant assertions on purpose: a wrong constant fails this test, not the whole build.
#[allow(clippy::assertions_on_constants)]
fn derive_generic_and_enum_types() {
    assert!(<Pair<u8, String> as Trace>::NO_SCAN);
    assert!(!<Pair<u8, Gc<u8>> as Trace>::NO_SCAN);
    assert!(!<Pair<GcCell<Vec<Gc<u8>>>, u8> as Trace>::NO_SCAN);
    assert!(<Wrapper<u64> as Trace>::NO_SCAN);
    assert!(!<Wrapper<Option<Gc<u64>>> as Trace>::NO_SCAN);
    assert!(<Unit as Trace>::NO_SCAN);
    assert!(!<Tree<u8> as Trace>::NO_SCAN);

    let drops = Drops::default();
    let leaf = |id| Gc::new(Tree::Leaf(drops.tally(id)));
    let branch = |l, r| {
        Gc::new(Tree::Branch {
            left: l,
            right: r,
            note: Opaque(0xAB),
        })
    };
    let hole = Gc::new(Tree::Mutable(GcSlot::new(None)));
    let tree = branch(
        branch(leaf(1), leaf(2)),
        branch(hole.clone(), branch(leaf(3), Gc::new(Tree::Empty))),
    );
    if let Tree::Mutable(s) = &*hole {
        s.store(Some(branch(leaf(4), leaf(5))));
    }
    drop(hole);
    let pair = Gc::new(Pair {
        first: Wrapper(leaf(6), 9),
        second: Some(leaf(7)),
    });
    let _unit = Gc::new(Unit);

    gc_core::collect();
    assert_eq!(
        drops.get(),
        0,
        "everything reachable through enum variants survives"
    );
    let mut seen = Vec::new();
    sum_leaves(&tree, &mut seen);
    assert_eq!(seen, [1, 2, 4, 5, 3]);
    let mut seen = Vec::new();
    sum_leaves(&pair.first.0, &mut seen);
    sum_leaves(pair.second.as_ref().unwrap(), &mut seen);
    assert_eq!(seen, [6, 7]);
    assert_eq!(pair.first.1, 9);

    drop(tree);
    gc_core::collect();
    assert_eq!(drops.get(), 5);
    drop(pair);
    gc_core::collect();
    assert_eq!(drops.get(), 7);
}

/// A `#[gc(skip)]` field is never traced: a handle in it stays a root (a leak, never a
/// use-after-free), DESIGN §4 and I5.
#[derive(Trace)]
struct Skipping {
    #[gc(skip)]
    hidden: Gc<Tally>,
    #[gc(skip)]
    hidden_slot: GcSlot<Tally>,
    shown: Option<Gc<Tally>>,
}

#[test]
fn derive_skip_keeps_targets_alive() {
    let drops = Drops::default();
    let s = Gc::new(Skipping {
        hidden: Gc::new(drops.tally(1)),
        hidden_slot: GcSlot::new(Some(Gc::new(drops.tally(2)))),
        shown: Some(Gc::new(drops.tally(3))),
    });
    assert_eq!(
        Gc::root_count(&s.hidden),
        1,
        "a skipped handle stays rooted"
    );
    assert_eq!(
        Gc::root_count(s.shown.as_ref().unwrap()),
        0,
        "a traced one becomes an edge"
    );
    gc_core::collect();
    assert_eq!(drops.get(), 0);
    s.hidden.verify(1);
    s.hidden_slot.load().unwrap().verify(2);
    s.shown.as_ref().unwrap().verify(3);
    drop(s);
    gc_core::collect(); // drops the holder (and with it the roots it held)
    gc_core::collect(); // frees what those roots kept
    assert_eq!(drops.get(), 3);
}
