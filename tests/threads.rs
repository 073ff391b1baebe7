//! Threads: handles crossing threads and outliving them, handles in thread-locals during
//! thread teardown, `collect()` from many threads at once, and a stress test of mutators
//! churning one shared graph while another thread collects back to back.
//!
//! - Handles moved to other threads are used there (deref, clone, slot and cell edits,
//!   allocation), and the objects made there outlive their threads.
//! - A `Gc` held in a `thread_local!` is dropped at thread exit, safely, whichever of the
//!   thread's locals (ours or gc-core's thread cache) is destroyed first; a thread-local
//!   destructor can allocate, clone, drop, link, and even `collect()`.
//! - `collect()` from several threads at once: each caller's garbage is dropped when its call
//!   returns, and what it keeps is intact.
//! - `collect()` while other threads allocate and sweep the spans they reuse: the drops those
//!   threads queue for the caller's garbage have run when `collect()` returns.
//! - Stress (the scenario): 4 mutators do random loads, stores, swaps,
//!   `compare_exchange`s, cell pushes and pops, allocations and walks on a table of 2,000
//!   rooted nodes, verifying a checksum on every node they visit, while a 5th thread calls
//!   `collect()` in a loop, for `GC_CORE_STRESS_SECS` seconds (default 3). Then everything is
//!   dropped, and after two collections every node allocated has been dropped exactly once.
//!
//! Invariants (DESIGN §6): **I1** — no node reachable by a mutator is ever freed or corrupted
//! (checksums), and each is dropped exactly once; **I2** — objects allocated and linked while
//! a cycle runs survive it; **I3** — garbage is dropped by the `collect()` that follows;
//! **I5** — threads that exit holding handles and thread-locals torn down holding handles are
//! safe.

mod common;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{checksum, node, DropLog, Node};
use gc_core::{Gc, GcCell, GcSlot, Trace};
use gc_core_workspace::XorShift64Star;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A two-node garbage cycle.
fn garbage_cycle(log: &Arc<DropLog>, a: u64, b: u64) {
    let x = node(log, a);
    let y = node(log, b);
    x.next.store(Some(y.clone()));
    y.kids.borrow_mut().push(x.clone());
}

// ---------------------------------------------------------------------------------------------
// Handles crossing and outliving threads
// ---------------------------------------------------------------------------------------------

#[test]
fn handles_are_moved_to_other_threads_and_used_there() {
    const THREADS: u64 = 4;
    const PER: u64 = 500;
    let log = DropLog::new((THREADS + 1) * PER * 3);
    let hub = node(&log, 0);
    let handles: Vec<_> = (1..=THREADS)
        .map(|t| {
            let hub = hub.clone();
            let log = log.clone();
            thread::spawn(move || {
                hub.tally.verify(0);
                let base = t * PER * 3;
                let mine = node(&log, base);
                for i in 1..PER {
                    let n = node(&log, base + i);
                    n.next.store(Some(mine.clone()));
                    hub.kids.borrow_mut().push(n);
                    garbage_cycle(&log, base + PER + i, base + 2 * PER + i);
                }
                // The hub's slot is contended: whoever wins, the losers' nodes are garbage.
                let _ = hub.next.compare_exchange(None, Some(mine.clone()));
                (t, mine)
            })
        })
        .collect();
    let mine: Vec<(u64, Gc<Node>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    gc_core::collect();
    // Thread t's ids are t * 3 PER + [0, PER) for its kept nodes, + [PER, 3 PER) for its
    // garbage cycles (none ending in 0 but the first); the hub is 0.
    let ours = |id: u64| id >= PER * 3;
    let garbage = |id: u64| ours(id) && id % (PER * 3) >= PER && id % PER != 0;
    let created = |id: u64| id == 0 || ours(id) && (id % (PER * 3) == 0 || id % PER != 0);
    log.assert_exactly(garbage, "the cycles made on the threads");
    let kids = hub.kids.borrow();
    assert_eq!(kids.len() as u64, THREADS * (PER - 1));
    for k in kids.iter() {
        let id = k.tally.id;
        k.tally.verify(id);
        let t = id / (PER * 3);
        let m = k.next.load().unwrap();
        m.tally.verify(t * PER * 3);
        assert!(Gc::ptr_eq(&m, &mine[t as usize - 1].1));
    }
    drop(kids);
    assert!(hub.next.load().is_some());
    drop((hub, mine));
    gc_core::collect();
    log.assert_exactly(created, "all");
}

#[test]
fn handles_outlive_the_threads_that_made_them() {
    const THREADS: u64 = 8;
    const PER: u64 = 2000;
    let log = DropLog::new(THREADS * PER);
    let mut kept: Vec<(u64, Gc<Node>, Vec<Gc<u64>>)> = Vec::new();
    for t in 0..THREADS {
        let log = log.clone();
        // Each thread exits (its cache is flushed) before the next starts.
        kept.push(
            thread::spawn(move || {
                let head = node(&log, t * PER);
                for i in 1..PER {
                    let n = node(&log, t * PER + i);
                    n.next.store(head.next.take());
                    head.next.store(Some(n));
                }
                let tiny: Vec<Gc<u64>> = (0..100).map(|i| Gc::new(t * 1000 + i)).collect();
                (t, head, tiny)
            })
            .join()
            .unwrap(),
        );
    }
    for _ in 0..3 {
        gc_core::collect();
        // Allocation reuses whatever was freed around the kept objects.
        let churn: Vec<Gc<u64>> = (0..10_000).map(Gc::new).collect();
        drop(churn);
    }
    assert_eq!((0..THREADS * PER).map(|id| log.count(id)).sum::<u32>(), 0);
    for (t, head, tiny) in &kept {
        let mut n = Some(head.clone());
        let mut seen = 0;
        while let Some(cur) = n {
            let id = cur.tally.id;
            cur.tally.verify(id);
            assert_eq!(id / PER, *t);
            seen += 1;
            n = cur.next.load();
        }
        assert_eq!(seen, PER);
        for (i, g) in tiny.iter().enumerate() {
            assert_eq!(**g, t * 1000 + i as u64);
        }
    }
    drop(kept);
    gc_core::collect();
    log.assert_exactly(|_| true, "all");
}

// ---------------------------------------------------------------------------------------------
// Thread-locals
// ---------------------------------------------------------------------------------------------

thread_local! {
    static HELD: RefCell<Vec<Gc<Node>>> = const { RefCell::new(Vec::new()) };
}

/// Runs a thread that puts handles in [`HELD`] and exits. With `locals_first`, `HELD` is
/// initialised before the thread's first GC operation (so it is destroyed after gc-core's
/// thread cache, on platforms that destroy in reverse order), otherwise after.
fn thread_local_holder(log: &Arc<DropLog>, base: u64, locals_first: bool, shared: Gc<Node>) {
    let log = log.clone();
    thread::spawn(move || {
        if locals_first {
            HELD.with(|h| h.borrow_mut().clear());
        }
        let a = node(&log, base);
        let b = node(&log, base + 1);
        a.next.store(Some(b.clone()));
        b.next.store(Some(a.clone()));
        HELD.with(|h| h.borrow_mut().extend([a, b, shared]));
    })
    .join()
    .unwrap();
}

#[test]
fn a_gc_in_a_thread_local_is_dropped_at_thread_exit() {
    let log = DropLog::new(5);
    let shared = node(&log, 4);
    thread_local_holder(&log, 0, true, shared.clone());
    thread_local_holder(&log, 2, false, shared.clone());
    assert_eq!(Gc::root_count(&shared), 1, "the threads' roots are gone");
    gc_core::collect();
    log.assert_exactly(|id| id < 4, "the cycles the thread-locals held");
    shared.tally.verify(4);
    drop(shared);
    gc_core::collect();
    log.assert_exactly(|_| true, "all");
}

/// What a thread-local destructor did, reported to the test through a channel.
struct ExitReport {
    kept: Gc<Node>,
    collected_inside: bool,
}

/// Its destructor runs at thread exit and does GC work.
struct ExitWork {
    log: Arc<DropLog>,
    base: u64,
    held: Option<Gc<Node>>,
    tx: mpsc::Sender<ExitReport>,
}

impl Drop for ExitWork {
    fn drop(&mut self) {
        let (log, base) = (&self.log, self.base);
        let a = node(log, base);
        let b = node(log, base + 1);
        a.next.store(Some(b.clone()));
        b.kids.borrow_mut().push(a.clone());
        let c = a.clone();
        drop(c);
        if let Some(h) = self.held.take() {
            h.kids.borrow_mut().push(b.clone());
            drop(h);
        }
        garbage_cycle(log, base + 2, base + 3);
        gc_core::collect();
        let collected_inside = log.count(base + 2) == 1 && log.count(base + 3) == 1;
        // Never panic here: a panic in a thread-local destructor aborts.
        let _ = self.tx.send(ExitReport {
            kept: a,
            collected_inside,
        });
    }
}

thread_local! {
    static EXIT_WORK: RefCell<Option<ExitWork>> = const { RefCell::new(None) };
}

#[test]
fn a_thread_local_destructor_can_allocate_clone_drop_and_collect() {
    let log = DropLog::new(9);
    let held = node(&log, 8);
    let (tx, rx) = mpsc::channel();
    for (base, locals_first) in [(0, true), (4, false)] {
        let (log, tx, held) = (log.clone(), tx.clone(), held.clone());
        thread::spawn(move || {
            let work = ExitWork {
                log: log.clone(),
                base,
                held: Some(held),
                tx,
            };
            // The order in which the thread's locals are first used decides the order of their
            // destructors: cover both orders relative to gc-core's thread cache.
            if locals_first {
                EXIT_WORK.with(|w| *w.borrow_mut() = Some(work));
                drop(Gc::new(7u64));
            } else {
                drop(Gc::new(7u64));
                EXIT_WORK.with(|w| *w.borrow_mut() = Some(work));
            }
        })
        .join()
        .unwrap();
    }
    drop(tx);
    let reports: Vec<ExitReport> = rx.iter().collect();
    assert_eq!(reports.len(), 2, "both destructors ran to the end");
    for r in &reports {
        assert!(
            r.collected_inside,
            "collect() in a thread-local destructor works"
        );
    }
    gc_core::collect();
    for r in &reports {
        let base = r.kept.tally.id;
        r.kept.tally.verify(base);
        let b = r.kept.next.load().unwrap();
        b.tally.verify(base + 1);
        assert!(Gc::ptr_eq(&b.kids.borrow()[0], &r.kept));
    }
    assert_eq!(held.kids.borrow().len(), 2);
    drop((reports, held));
    gc_core::collect();
    log.assert_exactly(|_| true, "all");
}

// ---------------------------------------------------------------------------------------------
// collect() from several threads at once (I3 under concurrency)
// ---------------------------------------------------------------------------------------------

#[test]
fn collect_from_several_threads_at_once() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 150;
    const IDS: u64 = 4; // per round: a garbage 2-cycle, a kept node, a node hung off it
    let log = DropLog::new(THREADS * ROUNDS * IDS);
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (log, barrier) = (log.clone(), barrier.clone());
            thread::spawn(move || {
                let mut kept = Vec::new();
                let mut late = Vec::new();
                for r in 0..ROUNDS {
                    let base = (t * ROUNDS + r) * IDS;
                    garbage_cycle(&log, base, base + 1);
                    let k = node(&log, base + 2);
                    k.next.store(Some(node(&log, base + 3)));
                    kept.push(k);
                    if r % 10 == 0 {
                        barrier.wait(); // now and then, all collect at the same moment
                    }
                    gc_core::collect();
                    let (a, b) = (log.count(base), log.count(base + 1));
                    if (a, b) != (1, 1) {
                        late.push((base, a, b));
                    }
                    for k in &kept {
                        assert_eq!(log.count(k.tally.id), 0);
                        k.next.load().unwrap().tally.verify(k.tally.id + 1);
                    }
                }
                (kept, late)
            })
        })
        .collect();
    let mut late = Vec::new();
    let mut kept = Vec::new();
    for h in threads {
        let (k, l) = h.join().unwrap();
        kept.extend(k);
        late.extend(l);
    }
    assert!(
        late.is_empty(),
        "{} of {} garbage cycles were not dropped when the collect() after them returned \
         (first: base id, drops of the two nodes): {:?}",
        late.len(),
        THREADS * ROUNDS,
        &late[..late.len().min(5)]
    );
    gc_core::collect();
    log.assert_exactly(|id| id % IDS < 2, "the garbage, once");
    drop(kept);
    gc_core::collect();
    log.assert_exactly(|_| true, "all");
}

// ---------------------------------------------------------------------------------------------
// Stress
// ---------------------------------------------------------------------------------------------

/// The stress test's per-run counters.
#[derive(Default)]
struct Counters {
    next_id: AtomicU64,
    allocated: AtomicUsize,
    dropped: AtomicUsize,
    corrupt_drops: AtomicUsize,
}

/// Counts a node's drop; checks the node's identity on the way out.
#[derive(Trace)]
#[gc(no_scan)]
struct Counted {
    id: u64,
    check: u64,
    counters: Arc<Counters>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.check != checksum(self.id) {
            self.counters.corrupt_drops.fetch_add(1, Ordering::SeqCst);
        }
        self.counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Trace)]
struct SNode {
    id: u64,
    check: u64,
    a: GcSlot<SNode>,
    b: GcSlot<SNode>,
    kids: GcCell<Vec<Gc<SNode>>>,
    name: String,
    counted: Counted,
}

impl SNode {
    fn verify(&self) {
        let id = self.id;
        assert_eq!(self.check, checksum(id), "checksum of node {id}");
        assert_eq!(self.counted.id, id, "drop counter of node {id}");
        assert_eq!(
            self.counted.check,
            checksum(id),
            "drop counter of node {id}"
        );
        assert_eq!(
            self.name.strip_prefix('n').and_then(|s| s.parse().ok()),
            Some(id)
        );
    }
}

/// Allocates a node (counted in `counters`) with the given edges.
fn alloc_node(
    counters: &Arc<Counters>,
    a: Option<Gc<SNode>>,
    b: Option<Gc<SNode>>,
    kids: Vec<Gc<SNode>>,
) -> Gc<SNode> {
    let id = counters.next_id.fetch_add(1, Ordering::SeqCst);
    counters.allocated.fetch_add(1, Ordering::SeqCst);
    Gc::new(SNode {
        id,
        check: checksum(id),
        a: GcSlot::new(a),
        b: GcSlot::new(b),
        kids: GcCell::new(kids),
        name: format!("n{id}"),
        counted: Counted {
            id,
            check: checksum(id),
            counters: counters.clone(),
        },
    })
}

struct Stress {
    table: Arc<Vec<Gc<SNode>>>,
    counters: Arc<Counters>,
}

impl Stress {
    fn random_table_node(&self, rng: &mut XorShift64Star) -> Gc<SNode> {
        self.table[rng.below(self.table.len() as u64) as usize].clone()
    }

    /// A new node, with random edges into the table.
    fn new_node(&self, rng: &mut XorShift64Star) -> Gc<SNode> {
        let mut edge = || (rng.below(2) == 0).then(|| self.random_table_node(rng));
        let (a, b, kid) = (edge(), edge(), edge());
        alloc_node(&self.counters, a, b, kid.into_iter().collect())
    }

    fn slot<'a>(n: &'a SNode, rng: &mut XorShift64Star) -> &'a GcSlot<SNode> {
        if rng.below(2) == 0 {
            &n.a
        } else {
            &n.b
        }
    }

    /// One random operation on a random table node. Returns the number of nodes visited.
    fn step(&self, rng: &mut XorShift64Star) -> usize {
        let t = self.random_table_node(rng);
        t.verify();
        let mut visited = 1;
        match rng.below(100) {
            0..=19 => {
                if let Some(n) = Self::slot(&t, rng).load() {
                    n.verify();
                    visited += 1;
                }
            }
            20..=29 => Self::slot(&t, rng).store(Some(self.random_table_node(rng))),
            30..=37 => Self::slot(&t, rng).store(Some(self.new_node(rng))),
            38..=42 => Self::slot(&t, rng).store(None),
            43..=49 => {
                let new = if rng.below(2) == 0 {
                    self.new_node(rng)
                } else {
                    self.random_table_node(rng)
                };
                if let Some(old) = Self::slot(&t, rng).swap(Some(new)) {
                    old.verify();
                    visited += 1;
                }
            }
            50..=57 => {
                let slot = Self::slot(&t, rng);
                let current = slot.load();
                let new = self.new_node(rng);
                match slot.compare_exchange(current.as_ref(), Some(new.clone())) {
                    Ok(old) => {
                        if let (Some(old), Some(cur)) = (&old, &current) {
                            assert!(Gc::ptr_eq(old, cur));
                            old.verify();
                        }
                    }
                    Err(back) => {
                        // Another thread changed the slot in between.
                        assert!(Gc::ptr_eq(back.as_ref().unwrap(), &new));
                    }
                }
            }
            58..=67 => {
                let extra = if rng.below(2) == 0 {
                    self.new_node(rng)
                } else {
                    self.random_table_node(rng)
                };
                let mut kids = t.kids.borrow_mut();
                kids.push(extra);
                while kids.len() > 6 {
                    let i = rng.below(kids.len() as u64) as usize;
                    kids.swap_remove(i).verify();
                }
                for k in kids.iter() {
                    k.verify();
                    visited += 1;
                }
            }
            68..=75 => {
                for k in t.kids.borrow().iter() {
                    k.verify();
                    visited += 1;
                }
            }
            76..=96 => {
                // A walk of a few hops.
                let mut cur = t;
                for _ in 0..rng.below(8) + 1 {
                    let next = match rng.below(3) {
                        0 => cur.a.load(),
                        1 => cur.b.load(),
                        _ => {
                            let kids = cur.kids.borrow();
                            (!kids.is_empty())
                                .then(|| kids[rng.below(kids.len() as u64) as usize].clone())
                        }
                    };
                    let Some(next) = next else { break };
                    next.verify();
                    visited += 1;
                    cur = next;
                }
            }
            _ => {
                // Garbage: a small cycle of new nodes.
                let x = self.new_node(rng);
                let y = self.new_node(rng);
                x.a.store(Some(y.clone()));
                y.kids.borrow_mut().push(x.clone());
            }
        }
        visited
    }
}

fn stress_duration() -> Duration {
    let secs = std::env::var("GC_CORE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

#[test]
fn stress_four_mutators_and_a_collector() {
    const TABLE: usize = 2000;
    const MUTATORS: u64 = 4;
    let counters = Arc::new(Counters::default());
    let mut rng = XorShift64Star::new(0x57E55);
    let table: Vec<Gc<SNode>> = (0..TABLE)
        .map(|_| alloc_node(&counters, None, None, Vec::new()))
        .collect();
    let stress = Arc::new(Stress {
        table: Arc::new(table),
        counters: counters.clone(),
    });
    // Random edges among the table's nodes.
    for n in stress.table.iter() {
        for slot in [&n.a, &n.b] {
            if rng.below(2) == 0 {
                slot.store(Some(stress.random_table_node(&mut rng)));
            }
        }
        n.kids.borrow_mut().push(stress.random_table_node(&mut rng));
    }
    for (i, n) in stress.table.iter().enumerate() {
        assert_eq!(n.id, i as u64);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let cycles_before = gc_core::stats().cycles;
    let collector = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                gc_core::collect();
                n += 1;
            }
            n
        })
    };
    let mutators: Vec<_> = (0..MUTATORS)
        .map(|m| {
            let (stress, stop) = (stress.clone(), stop.clone());
            thread::spawn(move || {
                let mut rng = XorShift64Star::new(0xA11CE + m);
                let (mut steps, mut visits) = (0u64, 0usize);
                while !stop.load(Ordering::SeqCst) {
                    visits += stress.step(&mut rng);
                    steps += 1;
                }
                (steps, visits)
            })
        })
        .collect();

    // A safety valve, not a timing assertion: a collector that falls behind fails the test
    // instead of exhausting the machine's memory.
    const HEAP_CAP: usize = 2 << 30;
    let deadline = Instant::now() + stress_duration();
    let mut max_heap = 0;
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        max_heap = max_heap.max(gc_core::stats().heap_bytes);
        if mutators.iter().any(|h| h.is_finished()) || collector.is_finished() {
            break; // a thread failed: stop and report it
        }
        if max_heap > HEAP_CAP {
            break;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (mut total_steps, mut total_visits) = (0, 0);
    for h in mutators {
        let (steps, visits) = h.join().expect("a mutator failed");
        total_steps += steps;
        total_visits += visits;
    }
    let collections = collector.join().expect("the collector thread failed");
    println!(
        "stress: {total_steps} steps, {total_visits} node visits, {collections} collections, \
         {} nodes allocated",
        counters.allocated.load(Ordering::SeqCst)
    );
    assert!(
        max_heap <= HEAP_CAP,
        "the heap grew to {} MiB for a graph of a few thousand live nodes",
        max_heap >> 20
    );
    assert!(total_steps > 0);
    assert!(collections > 0 && gc_core::stats().cycles > cycles_before);
    assert!(
        counters.dropped.load(Ordering::SeqCst) <= counters.allocated.load(Ordering::SeqCst),
        "more drops than nodes"
    );
    for n in stress.table.iter() {
        n.verify();
    }

    drop(stress);
    gc_core::collect();
    gc_core::collect();
    assert_eq!(
        counters.corrupt_drops.load(Ordering::SeqCst),
        0,
        "nodes dropped corrupted"
    );
    assert_eq!(
        counters.dropped.load(Ordering::SeqCst),
        counters.allocated.load(Ordering::SeqCst),
        "every node allocated is dropped exactly once ({total_steps} steps, {collections} \
         collections)"
    );
}

// ---------------------------------------------------------------------------------------------
// collect() while other threads allocate (sweep before reuse)
// ---------------------------------------------------------------------------------------------

static SPECK_DROPS: AtomicUsize = AtomicUsize::new(0);

/// A header word and nothing else: the smallest object with a drop (1,024 to an 8 KiB span),
/// so that sweeping one span takes as long as possible. Only the test below makes them.
#[derive(Trace)]
#[gc(no_scan)]
struct Speck;

impl Drop for Speck {
    fn drop(&mut self) {
        SPECK_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// The churners' objects: same span class as [`Speck`], counted apart.
#[derive(Trace)]
#[gc(no_scan)]
struct Mote;

impl Drop for Mote {
    fn drop(&mut self) {}
}

/// While a cycle sweeps, allocating threads sweep the spans they are about to reuse (sweep
/// before reuse) and queue the drops of the dead objects they find there. The garbage made
/// before a `collect()` call must still have been dropped when that call returns, whichever
/// thread swept it (DESIGN §2, I3).
///
/// The churners allocate a bounded amount per round (there is no pacer yet, so unbounded
/// churning can outrun a collector that runs back to back), overlapping the round's
/// `collect()`. A lost race shows as a round whose garbage is not all dropped yet.
#[test]
fn collect_runs_the_drops_that_allocating_threads_find_while_sweeping() {
    const ROUNDS: usize = 300;
    const PER_ROUND: usize = 20_000;
    const CHURNERS: usize = 3;
    let stop = Arc::new(AtomicBool::new(false));
    let round = Arc::new(AtomicUsize::new(0));
    let churners: Vec<_> = (0..CHURNERS)
        .map(|_| {
            let (stop, round) = (stop.clone(), round.clone());
            thread::spawn(move || {
                let mut seen = 0;
                while !stop.load(Ordering::SeqCst) {
                    let r = round.load(Ordering::SeqCst);
                    if r == seen {
                        thread::yield_now();
                        continue;
                    }
                    seen = r;
                    for _ in 0..8 {
                        let batch: Vec<Gc<Mote>> = (0..1024).map(|_| Gc::new(Mote)).collect();
                        drop(batch);
                    }
                }
            })
        })
        .collect();
    let mut late = Vec::new();
    for r in 0..ROUNDS {
        let garbage: Vec<Gc<Speck>> = (0..PER_ROUND).map(|_| Gc::new(Speck)).collect();
        drop(garbage);
        round.store(r + 1, Ordering::SeqCst);
        gc_core::collect();
        let dropped = SPECK_DROPS.load(Ordering::SeqCst);
        if dropped < (r + 1) * PER_ROUND {
            late.push((r, (r + 1) * PER_ROUND - dropped));
        }
    }
    stop.store(true, Ordering::SeqCst);
    for c in churners {
        c.join().unwrap();
    }
    assert!(
        late.is_empty(),
        "in {} of {ROUNDS} rounds, garbage made before collect() was not all dropped when it \
         returned (round, objects not dropped yet): {:?}",
        late.len(),
        &late[..late.len().min(10)]
    );
    gc_core::collect();
    assert_eq!(
        SPECK_DROPS.load(Ordering::SeqCst),
        ROUNDS * PER_ROUND,
        "each dropped once"
    );
}
