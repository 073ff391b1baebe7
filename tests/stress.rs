//! Stress tests (DESIGN §7 "Stress"; invariants **I1** safety, **I2** SATB, **I3**
//! completeness): mutator threads churning the heap while cycles run back to back.
//!
//! `eight_mutators_churn_a_shared_graph`: 8 mutator threads do random operations on one shared
//! graph, a table of 4,000 rooted nodes (`Arc<Vec<Gc<Node>>>`), while a 9th thread calls
//! `gc_core::collect()` in a loop (and allocation triggers automatic cycles). Each node has an
//! id, a checksum of it, two `GcSlot<Node>` edges, a `GcCell<Vec<Gc<Node>>>`, a slot for a
//! large object (over 32 KiB, itself pointing back into the graph), and a `#[gc(no_scan)]`
//! payload whose `Drop` counts the drop and checks the checksum. The operations: walks of a
//! few hops through slots, cells and large objects, verifying the checksum of every node
//! visited; `store` of a table node, a fresh node, a fresh 2-cycle (garbage once overwritten) or
//! `None`; `swap`; `compare_exchange` (also with an expected value that cannot match); cell
//! `borrow_mut` to push, pop (keeping the element moved out) and truncate; garbage (fresh
//! nodes, 2-cycles, large objects, batches of tiny `Gc<u64>`s, whose values are checked later);
//! cloning, dropping and re-linking handles the thread holds (which may be the only thing
//! keeping a node alive); and a shared `borrow()` held across a few other operations, whose
//! content must not change meanwhile. At the end the table and every handle are dropped, two
//! `collect()`s run, and every node allocated must have been dropped exactly once, intact.
//!
//! `private_rings_survive_slot_reuse`: 4 threads each keep a window of private rings of nodes
//! (plus tiny and large objects) and replace the oldest ring continuously, while another thread
//! collects in a loop, so slots are freed and reused all the time; every surviving ring is
//! walked and checked on each round, so a live object whose slot was freed and reused shows up
//! as a wrong id or checksum.
//!
//! Both run for `GC_CORE_STRESS_SECS` seconds (default 2, so CI stays quick) and print the
//! operations done, the cycles run (`stats().cycles` delta) and the duration (shown with
//! `--nocapture`). With `--features gc-core/poison`, freed slots are filled with a pattern that
//! dereferencing detects, and the marks are verified every cycle. The long versions:
//!
//! ```text
//! GC_CORE_STRESS_SECS=3600 cargo test --release --test stress -- --nocapture
//! GC_CORE_STRESS_SECS=3600 cargo test --release --test stress --features gc-core/poison \
//!     -- --nocapture
//! ```

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gc_core::{Gc, GcCell, GcSlot, Trace};
use gc_core_workspace::XorShift64Star;

const TABLE: usize = 4000;
const MUTATORS: u64 = 8;
/// Words of a large object's payload: 36 KiB, over the largest size class (32 KiB).
const BIG_WORDS: usize = 4608;
/// At most this many handles held by a mutator at a time.
const HELD: usize = 32;
/// The first table nodes are hot: a quarter of the operations target one of them.
const HOT: usize = 16;

fn checksum(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ 0x5EED_F00D_CAFE_D00D
}

fn stress_duration() -> Duration {
    let secs = std::env::var("GC_CORE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

// ---------------------------------------------------------------------------------------------
// Counted objects
// ---------------------------------------------------------------------------------------------

/// One test's drop counters. Leaked (`&'static`, a few bytes per test) so that an object
/// refers to them without a reference count: allocating and dropping touch no counter shared
/// with the mutators.
#[derive(Default)]
struct Counters {
    dropped: AtomicU64,
    corrupt_drops: AtomicU64,
}

fn new_counters() -> &'static Counters {
    Box::leak(Box::default())
}

/// Counts its drop, and checks on the way out that the object it is part of is intact.
#[derive(Trace)]
#[gc(no_scan)]
struct Counted {
    id: u64,
    check: u64,
    counters: &'static Counters,
}

impl Counted {
    fn verify(&self, id: u64, counters: &'static Counters) {
        assert_eq!(self.id, id, "drop counter of object {id}");
        assert_eq!(self.check, checksum(id), "drop counter of object {id}");
        assert!(
            std::ptr::eq(self.counters, counters),
            "object {id} belongs to another test"
        );
    }
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
struct Node {
    id: u64,
    check: u64,
    a: GcSlot<Node>,
    b: GcSlot<Node>,
    kids: GcCell<Vec<Gc<Node>>>,
    big: GcSlot<Big>,
    counted: Counted,
}

/// A large object (a span of its own) that points back into the graph.
#[derive(Trace)]
struct Big {
    id: u64,
    check: u64,
    back: GcSlot<Node>,
    words: [u64; BIG_WORDS],
    counted: Counted,
}

/// Makes one thread's counted objects: ids from `thread << 40` on (increasing, unique in the
/// test) and a count of them, both kept by the thread.
struct Maker {
    counters: &'static Counters,
    next_id: u64,
    allocated: u64,
}

impl Maker {
    fn new(counters: &'static Counters, thread: u64) -> Maker {
        Maker {
            counters,
            next_id: thread << 40,
            allocated: 0,
        }
    }

    fn counted(&mut self) -> Counted {
        let id = self.next_id;
        self.next_id += 1;
        self.allocated += 1;
        Counted {
            id,
            check: checksum(id),
            counters: self.counters,
        }
    }

    fn node(&mut self, a: Option<Gc<Node>>, b: Option<Gc<Node>>, kids: Vec<Gc<Node>>) -> Gc<Node> {
        let counted = self.counted();
        Gc::new(Node {
            id: counted.id,
            check: counted.check,
            a: GcSlot::new(a),
            b: GcSlot::new(b),
            kids: GcCell::new(kids),
            big: GcSlot::new(None),
            counted,
        })
    }

    fn big(&mut self, back: Option<Gc<Node>>) -> Gc<Big> {
        let counted = self.counted();
        let c = counted.check;
        Gc::new(Big {
            id: counted.id,
            check: c,
            back: GcSlot::new(back),
            words: core::array::from_fn(|i| c ^ i as u64),
            counted,
        })
    }
}

fn verify_node(n: &Node, counters: &'static Counters) {
    let id = n.id;
    assert_eq!(n.check, checksum(id), "checksum of node {id}");
    n.counted.verify(id, counters);
}

fn verify_big(b: &Big, counters: &'static Counters) {
    let id = b.id;
    assert_eq!(b.check, checksum(id), "checksum of large object {id}");
    b.counted.verify(id, counters);
    let c = checksum(id);
    if let Some(i) = (0..BIG_WORDS).find(|&i| b.words[i] != c ^ i as u64) {
        panic!("large object {id}: word {i} corrupted");
    }
}

/// Calls `collect()` in a loop until `stop`; returns how many times.
/// What the test threads have done so far, for [`wait_until`]: the runner does not stop them
/// before every thread has done some work and the collecting thread has finished a `collect()`.
/// (Under valgrind, which runs one thread at a time, a thread may not get scheduled at all in
/// the nominal duration.)
#[derive(Default)]
struct Progress {
    /// Threads that have finished at least one operation or round.
    started: AtomicU64,
    /// `collect()`s finished by the collecting thread.
    collects: AtomicU64,
}

impl Progress {
    /// Called by a thread after its first operation or round.
    fn started(&self) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
}

/// Calls `gc_core::collect()` in a loop until `stop`; returns how many it finished.
fn collector_loop(stop: &Arc<AtomicBool>, progress: &Arc<Progress>) -> JoinHandle<u64> {
    let stop = stop.clone();
    let progress = progress.clone();
    thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            gc_core::collect();
            n += 1;
            progress.collects.store(n, Ordering::SeqCst);
        }
        n
    })
}

/// How long past the nominal duration [`wait_until`] waits for every thread to have started.
const GRACE: Duration = Duration::from_secs(600);

/// Runs until the deadline and until every thread has started and the collecting thread has
/// finished a `collect()` (at most [`GRACE`] longer), or until one of the threads has finished
/// early (it failed). Returns the largest heap size (`stats().heap_bytes`) seen meanwhile, in
/// MB.
fn wait_until(
    deadline: Instant,
    threads: &[JoinHandle<[u64; 3]>],
    collector: &JoinHandle<u64>,
    progress: &Progress,
) -> f64 {
    let mut peak = 0;
    let mut next_sample = Instant::now();
    let all_started = || {
        progress.started.load(Ordering::SeqCst) == threads.len() as u64
            && progress.collects.load(Ordering::SeqCst) > 0
    };
    loop {
        let now = Instant::now();
        if now >= deadline + GRACE || (now >= deadline && all_started()) {
            break;
        }
        thread::sleep(Duration::from_millis(10));
        if threads.iter().any(|h| h.is_finished()) || collector.is_finished() {
            break;
        }
        if Instant::now() >= next_sample {
            peak = peak.max(gc_core::stats().heap_bytes);
            next_sample += Duration::from_millis(250);
        }
    }
    peak as f64 / 1e6
}

// ---------------------------------------------------------------------------------------------
// Eight mutators on one shared graph
// ---------------------------------------------------------------------------------------------

struct Shared {
    table: Arc<Vec<Gc<Node>>>,
    counters: &'static Counters,
    stop: AtomicBool,
}

/// One mutator thread's state: its random numbers and the handles it holds.
struct Mutator {
    rng: XorShift64Star,
    maker: Maker,
    held: Vec<Gc<Node>>,
    tiny: Vec<(u64, Gc<u64>)>,
    ops: u64,
    visits: u64,
}

impl Mutator {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn table_node(&mut self, sh: &Shared) -> Gc<Node> {
        sh.table[self.below(TABLE)].clone()
    }

    /// A node to operate on: mostly a table node (often one of the few hot ones, so that
    /// threads race on the same slots and cells), sometimes one this thread holds (which may be
    /// reachable only through that handle).
    fn target(&mut self, sh: &Shared) -> Gc<Node> {
        match self.below(8) {
            0 | 1 if !self.held.is_empty() => self.held_one(),
            2 | 3 => sh.table[self.below(HOT)].clone(),
            _ => self.table_node(sh),
        }
    }

    /// A fresh node with random edges into the table.
    fn fresh(&mut self, sh: &Shared) -> Gc<Node> {
        let a = (self.below(2) == 0).then(|| self.table_node(sh));
        let b = (self.below(3) == 0).then(|| self.table_node(sh));
        let kids = (0..self.below(3)).map(|_| self.table_node(sh)).collect();
        self.maker.node(a, b, kids)
    }

    /// A fresh 2-cycle through slots (garbage once nothing points at it).
    fn fresh_cycle(&mut self, sh: &Shared) -> Gc<Node> {
        let x = self.fresh(sh);
        let y = self.maker.node(Some(x.clone()), None, Vec::new());
        x.b.store(Some(y));
        x
    }

    /// Something to put in an edge.
    fn value(&mut self, sh: &Shared) -> Option<Gc<Node>> {
        match self.below(12) {
            0..=5 => Some(self.table_node(sh)),
            6..=8 => Some(self.fresh(sh)),
            9 => Some(self.fresh_cycle(sh)),
            10 if !self.held.is_empty() => Some(self.held_one()),
            _ => None,
        }
    }

    fn slot<'a>(&mut self, n: &'a Node) -> &'a GcSlot<Node> {
        if self.below(2) == 0 {
            &n.a
        } else {
            &n.b
        }
    }

    /// A clone of a random held handle (`held` is not empty).
    fn held_one(&mut self) -> Gc<Node> {
        let i = self.below(self.held.len());
        self.held[i].clone()
    }

    fn hold(&mut self, n: Gc<Node>) {
        if self.held.len() >= HELD {
            let i = self.below(HELD);
            self.held.swap_remove(i);
        }
        self.held.push(n);
    }

    /// A walk of a few hops through slots, cells and large objects.
    fn walk(&mut self, sh: &Shared, start: Gc<Node>) {
        let mut cur = start;
        for _ in 0..=self.below(8) {
            let next = match self.below(7) {
                0 | 1 => cur.a.load(),
                2 | 3 => cur.b.load(),
                4 | 5 => {
                    let kids = cur.kids.borrow();
                    (!kids.is_empty()).then(|| kids[self.below(kids.len())].clone())
                }
                _ => cur.big.load().and_then(|b| {
                    verify_big(&b, sh.counters);
                    b.back.load()
                }),
            };
            let Some(next) = next else { break };
            verify_node(&next, sh.counters);
            self.visits += 1;
            if self.below(16) == 0 {
                self.hold(next.clone());
            }
            cur = next;
        }
    }

    /// One random operation. With `!may_borrow_mut` (a shared borrow is held by this thread),
    /// nothing that takes a mutable borrow or holds another borrow.
    fn step(&mut self, sh: &Shared, may_borrow_mut: bool) {
        self.ops += 1;
        let t = self.target(sh);
        verify_node(&t, sh.counters);
        self.visits += 1;
        match self.below(100) {
            0..=21 => self.walk(sh, t),
            22..=29 => {
                let v = self.table_node(sh);
                self.slot(&t).store(Some(v));
            }
            30..=34 => {
                let v = self.fresh(sh);
                self.slot(&t).store(Some(v));
            }
            35..=37 => {
                let v = self.fresh_cycle(sh);
                self.slot(&t).store(Some(v));
            }
            38..=40 => self.slot(&t).store(None),
            41..=45 => {
                let v = self.value(sh);
                if let Some(old) = self.slot(&t).swap(v) {
                    verify_node(&old, sh.counters);
                    if self.below(4) == 0 {
                        self.hold(old);
                    }
                }
            }
            46..=50 => {
                let slot = self.slot(&t);
                let current = slot.load();
                let new = self.value(sh);
                match slot.compare_exchange(current.as_ref(), new.clone()) {
                    Ok(old) => match (&old, &current) {
                        (Some(o), Some(c)) => {
                            assert!(Gc::ptr_eq(o, c), "compare_exchange returned another node");
                            verify_node(o, sh.counters);
                        }
                        (None, None) => {}
                        _ => panic!("compare_exchange succeeded against another value"),
                    },
                    Err(back) => {
                        // Another thread changed the slot in between; `new` comes back.
                        assert_eq!(back.is_some(), new.is_some());
                        if let (Some(b), Some(n)) = (&back, &new) {
                            assert!(Gc::ptr_eq(b, n));
                        }
                    }
                }
                // An expected value that cannot be there: a node no slot has ever held.
                let never = self.fresh(sh);
                let v = self.table_node(sh);
                match slot.compare_exchange(Some(&never), Some(v.clone())) {
                    Ok(_) => panic!("compare_exchange against a fresh node succeeded"),
                    Err(back) => assert!(Gc::ptr_eq(back.as_ref().unwrap(), &v)),
                }
            }
            51..=58 if may_borrow_mut => {
                let extra = self.value(sh).unwrap_or_else(|| self.table_node(sh));
                let what = self.below(4);
                let n = self.below(3);
                let mut kids = t.kids.borrow_mut();
                match what {
                    0 | 1 => kids.push(extra),
                    2 => {
                        // Moved out during the borrow: a rooted handle, held from now on.
                        if let Some(k) = kids.pop() {
                            verify_node(&k, sh.counters);
                            drop(kids);
                            self.hold(k);
                            return;
                        }
                    }
                    _ => kids.truncate(n),
                }
                while kids.len() > 6 {
                    let i = self.below(kids.len());
                    kids.swap_remove(i);
                }
                for k in kids.iter() {
                    verify_node(k, sh.counters);
                }
            }
            59..=63 => {
                for k in t.kids.borrow().iter() {
                    verify_node(k, sh.counters);
                    self.visits += 1;
                }
            }
            64..=71 => self.garbage(sh, &t),
            // Large objects are created rarely (they are most of the bytes allocated), and few
            // stay attached: about one node in seven of those this arm visits.
            72..=75 => match self.below(64) {
                0 => {
                    let back = Some(if self.below(2) == 0 {
                        t.clone()
                    } else {
                        self.table_node(sh)
                    });
                    t.big.store(Some(self.maker.big(back)));
                }
                1..=6 => t.big.store(None),
                _ => {
                    if let Some(b) = t.big.load() {
                        verify_big(&b, sh.counters);
                        if let Some(n) = b.back.load() {
                            verify_node(&n, sh.counters);
                        }
                    }
                }
            },
            76..=84 => self.handles(sh, &t),
            85..=88 if may_borrow_mut => {
                // A shared borrow held across a few operations: its content cannot change.
                let kids = t.kids.borrow();
                let ids: Vec<u64> = kids.iter().map(|k| k.id).collect();
                for _ in 0..=self.below(4) {
                    self.step(sh, false);
                }
                for (k, id) in kids.iter().zip(&ids) {
                    verify_node(k, sh.counters);
                    assert_eq!(k.id, *id, "a cell changed under a shared borrow");
                }
                assert_eq!(
                    kids.len(),
                    ids.len(),
                    "a cell changed under a shared borrow"
                );
            }
            _ => {
                let start = self.table_node(sh);
                self.walk(sh, start);
            }
        }
    }

    /// Garbage: fresh nodes, 2-cycles, batches of tiny objects, a large object now and then.
    fn garbage(&mut self, sh: &Shared, t: &Gc<Node>) {
        match self.below(40) {
            0 if self.below(10) == 0 => drop(self.maker.big(Some(t.clone()))),
            1..=12 => {
                for _ in 0..16 {
                    let v = self.rng.next_u64();
                    let g = Gc::new(v);
                    assert_eq!(*g, v);
                    if self.tiny.len() < 64 {
                        self.tiny.push((v, g));
                    } else if self.below(4) == 0 {
                        let i = self.below(self.tiny.len());
                        self.tiny[i] = (v, g);
                    }
                }
            }
            13..=24 => drop(self.fresh_cycle(sh)),
            _ => {
                for _ in 0..=self.below(4) {
                    drop(self.fresh(sh));
                }
            }
        }
    }

    /// Clone, drop, load into, verify and re-link the handles this thread holds.
    fn handles(&mut self, sh: &Shared, t: &Gc<Node>) {
        match self.below(6) {
            0 => {
                if let Some(n) = self.slot(t).load() {
                    verify_node(&n, sh.counters);
                    self.hold(n);
                }
            }
            1 if !self.held.is_empty() => {
                let n = self.held_one();
                self.hold(n);
            }
            2 if !self.held.is_empty() => {
                let i = self.below(self.held.len());
                self.held.swap_remove(i);
            }
            3 if !self.held.is_empty() => {
                // Re-link a held node (perhaps unreachable from the table by now).
                let n = self.held_one();
                self.slot(t).store(Some(n));
            }
            _ => {
                for n in &self.held {
                    verify_node(n, sh.counters);
                    self.visits += 1;
                }
                for (v, g) in &self.tiny {
                    assert_eq!(**g, *v, "a tiny object changed");
                }
            }
        }
    }
}

#[test]
fn eight_mutators_churn_a_shared_graph() {
    let counters = new_counters();
    let mut rng = XorShift64Star::new(0x0571_4E55);
    // Thread 0's ids: the table's nodes are 0..TABLE.
    let mut maker = Maker::new(counters, 0);
    let table: Vec<Gc<Node>> = (0..TABLE)
        .map(|_| maker.node(None, None, Vec::new()))
        .collect();
    for n in &table {
        for slot in [&n.a, &n.b] {
            if rng.below(2) == 0 {
                slot.store(Some(table[rng.below(TABLE as u64) as usize].clone()));
            }
        }
        n.kids
            .borrow_mut()
            .push(table[rng.below(TABLE as u64) as usize].clone());
    }
    let sh = Arc::new(Shared {
        table: Arc::new(table),
        counters,
        stop: AtomicBool::new(false),
    });

    let cycles_before = gc_core::stats().cycles;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let collector = collector_loop(&stop, &progress);
    let mutators: Vec<JoinHandle<[u64; 3]>> = (0..MUTATORS)
        .map(|m| {
            let sh = sh.clone();
            let progress = progress.clone();
            thread::spawn(move || {
                let mut me = Mutator {
                    rng: XorShift64Star::new(0xA11CE ^ (m + 1).wrapping_mul(0x1234_5678_9ABC)),
                    maker: Maker::new(sh.counters, m + 1),
                    held: Vec::new(),
                    tiny: Vec::new(),
                    ops: 0,
                    visits: 0,
                };
                me.step(&sh, true);
                progress.started();
                while !sh.stop.load(Ordering::Relaxed) {
                    me.step(&sh, true);
                }
                [me.ops, me.visits, me.maker.allocated]
            })
        })
        .collect();

    let peak = wait_until(start + stress_duration(), &mutators, &collector, &progress);
    sh.stop.store(true, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let (mut ops, mut visits, mut allocated) = (0, 0, maker.allocated);
    for h in mutators {
        let [o, v, a] = h.join().expect("a mutator failed");
        ops += o;
        visits += v;
        allocated += a;
    }
    let explicit = collector.join().expect("the collecting thread failed");
    let elapsed = start.elapsed();
    let cycles = gc_core::stats().cycles - cycles_before;

    for (i, n) in sh.table.iter().enumerate() {
        verify_node(n, counters);
        assert_eq!(n.id, i as u64);
    }
    assert!(
        ops > 0 && explicit > 0,
        "{ops} operations and {explicit} explicit collections in {elapsed:.2?}"
    );
    assert!(counters.dropped.load(Ordering::SeqCst) <= allocated);

    drop(sh);
    gc_core::collect();
    gc_core::collect();
    let dropped = counters.dropped.load(Ordering::SeqCst);
    println!(
        "stress: {ops} operations ({visits} node visits) by {MUTATORS} mutators in {elapsed:.2?}; \
         {cycles} cycles ({explicit} by the collecting thread); {allocated} objects allocated, \
         {dropped} dropped; peak heap {peak:.1} MB; hard-limit waits {}",
        gc_core::stats().limit_waits.count,
    );
    assert_eq!(
        counters.corrupt_drops.load(Ordering::SeqCst),
        0,
        "objects were dropped corrupted"
    );
    assert_eq!(
        dropped, allocated,
        "every object allocated is dropped exactly once ({ops} operations, {cycles} cycles)"
    );
}

// ---------------------------------------------------------------------------------------------
// Private rings and slot reuse
// ---------------------------------------------------------------------------------------------

/// A ring of `len` nodes with increasing ids from `first`, linked through `a` (and `kids`
/// for every other node), plus a tiny object and sometimes a large one.
struct Ring {
    head: Gc<Node>,
    first: u64,
    len: u64,
    tiny: Gc<u64>,
}

fn make_ring(maker: &mut Maker, rng: &mut XorShift64Star) -> Ring {
    let len = rng.below(48) + 1;
    let head = maker.node(None, None, Vec::new());
    let first = head.id;
    let mut prev = head.clone();
    for i in 1..len {
        let n = maker.node(None, None, Vec::new());
        prev.a.store(Some(n.clone()));
        if i % 2 == 0 {
            prev.kids.borrow_mut().push(n.clone());
        }
        prev = n;
    }
    prev.a.store(Some(head.clone()));
    if rng.below(16) == 0 {
        head.big.store(Some(maker.big(Some(prev.clone()))));
    }
    let tiny = Gc::new(checksum(first));
    Ring {
        head,
        first,
        len,
        tiny,
    }
}

fn verify_ring(r: &Ring, counters: &'static Counters) -> u64 {
    assert_eq!(*r.tiny, checksum(r.first), "a tiny object changed");
    assert_eq!(r.head.id, r.first);
    let mut cur = r.head.clone();
    let mut prev: Option<Gc<Node>> = None;
    for i in 0..r.len {
        verify_node(&cur, counters);
        if let Some(p) = &prev {
            assert!(cur.id > p.id, "ring of {}: node {i} out of order", r.first);
            // Every other node is linked from the previous node's cell as well.
            let kids = p.kids.borrow();
            assert_eq!(
                kids.len(),
                usize::from(i % 2 == 0),
                "ring of {}: node {i}",
                r.first
            );
            if let Some(k) = kids.first() {
                assert!(Gc::ptr_eq(k, &cur), "ring of {}: node {i}", r.first);
            }
        }
        let next = cur.a.load().expect("a ring is closed");
        prev = Some(std::mem::replace(&mut cur, next));
    }
    assert!(Gc::ptr_eq(&cur, &r.head), "ring of {} not closed", r.first);
    if let Some(b) = r.head.big.load() {
        verify_big(&b, counters);
        let back = b.back.load().expect("the large object points at the ring");
        verify_node(&back, counters);
        assert!(Gc::ptr_eq(&back.a.load().unwrap(), &r.head));
    }
    r.len
}

#[test]
fn private_rings_survive_slot_reuse() {
    const THREADS: u64 = 4;
    const WINDOW: usize = 8;
    let counters = new_counters();
    let cycles_before = gc_core::stats().cycles;
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let collector = collector_loop(&stop, &progress);
    let workers: Vec<JoinHandle<[u64; 3]>> = (0..THREADS)
        .map(|t| {
            let stop = stop.clone();
            let progress = progress.clone();
            thread::spawn(move || {
                let mut rng = XorShift64Star::new(0xB0B + t);
                let mut maker = Maker::new(counters, t);
                let mut rings: VecDeque<Ring> = VecDeque::new();
                let (mut rounds, mut visits) = (0, 0);
                loop {
                    if rounds == 1 {
                        progress.started();
                    }
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if rings.len() >= WINDOW {
                        rings.pop_front();
                    }
                    rings.push_back(make_ring(&mut maker, &mut rng));
                    for r in &rings {
                        visits += verify_ring(r, counters);
                    }
                    rounds += 1;
                }
                [rounds, visits, maker.allocated]
            })
        })
        .collect();

    let peak = wait_until(start + stress_duration(), &workers, &collector, &progress);
    stop.store(true, Ordering::Relaxed);
    let (mut rounds, mut visits, mut allocated) = (0, 0, 0);
    for h in workers {
        let [r, v, a] = h.join().expect("a worker failed");
        rounds += r;
        visits += v;
        allocated += a;
    }
    let explicit = collector.join().expect("the collecting thread failed");
    let elapsed = start.elapsed();
    let cycles = gc_core::stats().cycles - cycles_before;

    gc_core::collect();
    gc_core::collect();
    let dropped = counters.dropped.load(Ordering::SeqCst);
    println!(
        "rings: {rounds} rounds ({visits} node visits) by {THREADS} threads in {elapsed:.2?}; \
         {cycles} cycles ({explicit} by the collecting thread); {allocated} objects allocated, \
         {dropped} dropped; peak heap {peak:.1} MB"
    );
    assert!(
        rounds > 0 && explicit > 0,
        "{rounds} rounds and {explicit} explicit collections in {elapsed:.2?}"
    );
    assert_eq!(counters.corrupt_drops.load(Ordering::SeqCst), 0);
    assert_eq!(
        dropped, allocated,
        "every object allocated is dropped exactly once"
    );
}
