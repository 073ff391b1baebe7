//! Workloads for the concurrent-marking tests, shared by `tests/concurrent.rs` (background
//! collector thread), `tests/config_inline.rs` (`GcConfig::background = false`) and
//! `tests/config_workers.rs` (extra mark workers). Each binary includes this with
//! `mod concurrent_support;` and runs the workloads with its own durations.
//!
//! Every object carries a [`Counted`]: an id from its test's [`Log`], a checksum of the id, and
//! a `Drop` that records the drop in the log and then overwrites the checksum with a tombstone.
//! So a reachable object that the collector wrongly frees shows up three ways: its drop is
//! recorded while the test still holds it ([`Log::drops_of`]), a later visit finds the
//! tombstone (until the slot is reused), or finds another object's data (after reuse).
//!
//! Most barrier scenarios move an object into a *freshly allocated* holder: while the collector
//! marks, allocation is black and black objects are never scanned, so an object stored only
//! into such a holder survives the cycle only if a barrier shaded it. The holders and the kept
//! handles are checked once at least two `collect()` calls that started after they were made
//! have returned ([`Kept`]), so the cycle that might have lost something has swept by then.

// Each binary uses part of this module.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gc_core::{Gc, GcCell, GcSlot, Histogram, Trace};
use gc_core_workspace::XorShift64Star;

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

/// `GC_CORE_CONCURRENT_SECS` (default 10): the length of the main stress run; the other
/// workloads take fixed fractions of it.
pub(crate) fn base_secs() -> f64 {
    std::env::var("GC_CORE_CONCURRENT_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .unwrap_or(10.0)
}

/// `fraction` of [`base_secs`].
pub(crate) fn scaled(fraction: f64) -> Duration {
    Duration::from_secs_f64(base_secs() * fraction)
}

/// How long a `collect()` may take before the test calls it hung (generous: CI machines are
/// slow and loaded, and a hang is what this catches, not slowness).
pub(crate) const HANG: Duration = Duration::from_secs(60);

/// Workloads that run against a [`Cycler`] go on past their deadline until it has completed
/// this many `collect()` calls, so that a slow machine still tests something.
pub(crate) const MIN_CYCLES: u64 = 2;

// ---------------------------------------------------------------------------------------------
// Counted objects
// ---------------------------------------------------------------------------------------------

/// The checksum an object keeps of its id.
pub(crate) fn checksum(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23) ^ 0xC0C0_4E55_D00D_F00D
}

/// What a [`Counted`]'s drop writes over its checksum.
const TOMBSTONE: u64 = 0xDEAD_DEAD_DEAD_DEAD;

/// The value of the tiny object (`Gc<u32>`) hanging off node `id`'s `tiny` slot.
pub(crate) fn tiny_value(id: u64) -> u32 {
    (checksum(id) >> 17) as u32 | 1
}

/// One test's allocations and drops. Ids are handed out in order; drops are counted per id
/// (for ids below the table's size) and always as a count and two sums, so that a double drop
/// cannot hide behind a missing one.
pub(crate) struct Log {
    next_id: AtomicU64,
    per_id: Vec<AtomicU8>,
    dropped: AtomicU64,
    id_sum: AtomicU64,
    check_sum: AtomicU64,
    bad_drops: AtomicU64,
}

impl Log {
    /// A new log (leaked: objects refer to it without a reference count) with a per-id table
    /// for the first `per_id` ids.
    pub(crate) fn new(per_id: usize) -> &'static Log {
        Box::leak(Box::new(Log {
            next_id: AtomicU64::new(0),
            per_id: (0..per_id).map(|_| AtomicU8::new(0)).collect(),
            dropped: AtomicU64::new(0),
            id_sum: AtomicU64::new(0),
            check_sum: AtomicU64::new(0),
            bad_drops: AtomicU64::new(0),
        }))
    }

    fn next(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Objects allocated so far.
    pub(crate) fn allocated(&self) -> u64 {
        self.next_id.load(Ordering::SeqCst)
    }

    /// Objects dropped so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }

    /// How many times `id` has been dropped (`None` past the per-id table).
    pub(crate) fn drops_of(&self, id: u64) -> Option<u8> {
        self.per_id
            .get(id as usize)
            .map(|c| c.load(Ordering::SeqCst))
    }

    /// Panics if `id` has been dropped (as far as the per-id table tells).
    pub(crate) fn assert_alive(&self, id: u64) {
        if let Some(n) = self.drops_of(id) {
            assert_eq!(n, 0, "object {id} was dropped while still reachable");
        }
    }

    fn record(&self, id: u64, check: u64) {
        if check != checksum(id) {
            self.bad_drops.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(c) = self.per_id.get(id as usize) {
            c.fetch_add(1, Ordering::SeqCst);
        }
        self.id_sum.fetch_add(id, Ordering::SeqCst);
        self.check_sum.fetch_add(checksum(id), Ordering::SeqCst);
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }

    /// Asserts that every object allocated has been dropped exactly once, intact.
    pub(crate) fn assert_all_dropped_once(&self, what: &str) {
        let n = self.allocated();
        assert_eq!(
            self.bad_drops.load(Ordering::SeqCst),
            0,
            "{what}: objects were dropped corrupted (or twice)"
        );
        assert_eq!(
            self.dropped(),
            n,
            "{what}: every object allocated is dropped exactly once"
        );
        let (mut ids, mut checks) = (0u64, 0u64);
        for id in 0..n {
            ids = ids.wrapping_add(id);
            checks = checks.wrapping_add(checksum(id));
        }
        assert_eq!(
            (
                self.id_sum.load(Ordering::SeqCst),
                self.check_sum.load(Ordering::SeqCst)
            ),
            (ids, checks),
            "{what}: the objects dropped are not the objects allocated (some twice, some never)"
        );
        let wrong: Vec<(u64, u8)> = (0..n.min(self.per_id.len() as u64))
            .filter_map(|id| {
                let c = self.drops_of(id).unwrap_or(1);
                (c != 1).then_some((id, c))
            })
            .take(10)
            .collect();
        assert!(
            wrong.is_empty(),
            "{what}: (id, drops) with a drop count other than one: {wrong:?}"
        );
    }
}

/// An object's identity and drop recorder: a `#[gc(no_scan)]` value with a `Drop`, so on its
/// own (`Gc<Counted>`) it lives in a noscan span that needs sweeping drops.
#[derive(Trace)]
#[gc(no_scan)]
pub(crate) struct Counted {
    id: u64,
    check: u64,
    log: &'static Log,
}

impl Counted {
    pub(crate) fn new(log: &'static Log) -> Counted {
        let id = log.next();
        Counted {
            id,
            check: checksum(id),
            log,
        }
    }

    /// The id, once the object is found intact and not dropped.
    pub(crate) fn id(&self) -> u64 {
        // Volatile: the point is to read what a drop (or a reuse of the slot) wrote.
        // SAFETY: plain reads of initialised fields of a live `&self`.
        let (id, check) = unsafe {
            (
                std::ptr::read_volatile(&self.id),
                std::ptr::read_volatile(&self.check),
            )
        };
        if check == TOMBSTONE {
            panic!("object {id} was dropped while still reachable (tombstone found)");
        }
        assert_eq!(
            check,
            checksum(id),
            "object {id} is corrupted (freed while reachable and its slot reused?)"
        );
        self.log.assert_alive(id);
        id
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.log.record(self.id, self.check);
        // SAFETY: a plain write to a field of `*self`; volatile so that it is not elided as a
        // store to memory about to die.
        unsafe { std::ptr::write_volatile(&mut self.check, TOMBSTONE) };
    }
}

/// A graph node: scan, with drop glue, every kind of edge.
#[derive(Trace)]
pub(crate) struct CNode {
    pub(crate) counted: Counted,
    pub(crate) a: GcSlot<CNode>,
    pub(crate) b: GcSlot<CNode>,
    pub(crate) kids: GcCell<Vec<Gc<CNode>>>,
    /// A noscan object with drop glue.
    pub(crate) leaf: GcSlot<Counted>,
    /// A tiny noscan object holding [`tiny_value`] of this node's id.
    pub(crate) tiny: GcSlot<u32>,
}

impl CNode {
    /// The id, once the node is found intact (not its edges).
    pub(crate) fn id(&self) -> u64 {
        self.counted.id()
    }
}

/// A new node with no edges.
pub(crate) fn cnode(log: &'static Log) -> Gc<CNode> {
    Gc::new(CNode {
        counted: Counted::new(log),
        a: GcSlot::new(None),
        b: GcSlot::new(None),
        kids: GcCell::new(Vec::new()),
        leaf: GcSlot::new(None),
        tiny: GcSlot::new(None),
    })
}

/// A new node with a fresh leaf and tiny object.
pub(crate) fn cnode_full(log: &'static Log) -> Gc<CNode> {
    let n = cnode(log);
    n.leaf.store(Some(leaf(log)));
    n.tiny.store(Some(Gc::new(tiny_value(n.id()))));
    n
}

/// A new noscan object with drop glue.
pub(crate) fn leaf(log: &'static Log) -> Gc<Counted> {
    Gc::new(Counted::new(log))
}

/// Words of a [`Bulky`]'s payload: 4 KiB, a size class above those of every other object of
/// these tests, whose spans root enumeration therefore reaches last (it walks the span classes
/// in order).
const BULKY_WORDS: usize = 512;

/// A large scan object (in a size class, not a span of its own).
#[derive(Trace)]
pub(crate) struct Bulky {
    pub(crate) counted: Counted,
    pub(crate) next: GcSlot<CNode>,
    words: [u64; BULKY_WORDS],
}

/// A new [`Bulky`] pointing at `next`.
pub(crate) fn bulky(log: &'static Log, next: Option<Gc<CNode>>) -> Gc<Bulky> {
    let counted = Counted::new(log);
    let c = checksum(counted.id);
    let mut words = [0; BULKY_WORDS];
    words[0] = c;
    words[BULKY_WORDS / 2] = c.rotate_left(1);
    words[BULKY_WORDS - 1] = !c;
    Gc::new(Bulky {
        counted,
        next: GcSlot::new(next),
        words,
    })
}

/// Checks a [`Bulky`], its payload and the node it points at; returns its id.
pub(crate) fn verify_bulky(b: &Bulky) -> u64 {
    let id = b.counted.id();
    let c = checksum(id);
    let w = &b.words;
    assert_eq!(
        (w[0], w[BULKY_WORDS / 2], w[BULKY_WORDS - 1]),
        (c, c.rotate_left(1), !c),
        "large object {id}: payload corrupted"
    );
    if let Some(n) = b.next.load() {
        verify(&n);
    }
    id
}

/// A live ballast of `n` nodes in a chain (each with a leaf and a tiny object): it makes root
/// enumeration and marking take a while, which widens the windows the barrier tests aim at.
pub(crate) fn ballast(log: &'static Log, n: usize) -> Gc<CNode> {
    let head = cnode_full(log);
    let mut cur = head.clone();
    for _ in 1..n {
        let next = cnode_full(log);
        cur.a.store(Some(next.clone()));
        cur = next;
    }
    head
}

/// Checks a node and its leaf and tiny object; returns its id.
pub(crate) fn verify(n: &CNode) -> u64 {
    let id = n.id();
    if let Some(l) = n.leaf.load() {
        l.id();
    }
    if let Some(t) = n.tiny.load() {
        assert_eq!(*t, tiny_value(id), "node {id}: its tiny object changed");
    }
    id
}

/// Checks a node, its leaf and tiny object, the targets of its slots and the nodes in its cell.
pub(crate) fn verify_deep(n: &CNode) -> u64 {
    let id = verify(n);
    for s in [&n.a, &n.b] {
        if let Some(t) = s.load() {
            verify(&t);
        }
    }
    for k in n.kids.borrow().iter() {
        verify(k);
    }
    id
}

/// Something a test keeps and checks later.
pub(crate) enum Keep {
    Node(Gc<CNode>),
    Leaf(Gc<Counted>),
    Tiny(Gc<u32>, u32),
    TinyIn(Gc<GcSlot<u32>>, u32),
    BulkyIn(Gc<GcSlot<Bulky>>),
}

impl Keep {
    pub(crate) fn check(&self) {
        match self {
            Keep::Node(n) => {
                verify_deep(n);
            }
            Keep::Leaf(l) => {
                l.id();
            }
            Keep::Tiny(t, v) => assert_eq!(**t, *v, "a tiny object changed"),
            Keep::BulkyIn(s) => {
                verify_bulky(&s.load().expect("the slot keeps its object"));
            }
            Keep::TinyIn(s, v) => {
                let t = s.load().expect("the slot keeps its tiny object");
                assert_eq!(*t, *v, "a tiny object changed");
            }
        }
    }
}

/// Handles kept until two `collect()` calls that started after they were kept have returned,
/// then checked and dropped.
pub(crate) struct Kept {
    q: VecDeque<(u64, Keep)>,
    pub(crate) checked: u64,
}

impl Kept {
    /// At most this many kept at a time; past it the test waits for cycles.
    const LIMIT: usize = 20_000;

    pub(crate) fn new() -> Kept {
        Kept {
            q: VecDeque::new(),
            checked: 0,
        }
    }

    /// Keeps `k` (made or moved when the cycler had completed `epoch` calls).
    pub(crate) fn push(&mut self, epoch: u64, k: Keep) {
        self.q.push_back((epoch, k));
    }

    /// Checks and drops what is old enough; waits while too much is kept.
    pub(crate) fn release(&mut self, cycler: &Cycler) {
        loop {
            let now = cycler.done();
            while self.q.front().is_some_and(|(e, _)| e + 2 <= now) {
                let (_, k) = self.q.pop_front().expect("just looked");
                k.check();
                self.checked += 1;
            }
            if self.q.len() < Self::LIMIT {
                return;
            }
            cycler.assert_alive();
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Checks everything still kept, and drops it.
    pub(crate) fn finish(&mut self) {
        for (_, k) in self.q.drain(..) {
            k.check();
            self.checked += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Threads and cycles
// ---------------------------------------------------------------------------------------------

/// Joins `h`, failing (instead of hanging) if it has not finished within [`HANG`].
pub(crate) fn join<T>(h: JoinHandle<T>, what: &str) -> T {
    let deadline = Instant::now() + HANG;
    while !h.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{what} did not finish within {HANG:?}: a deadlock?"
        );
        thread::sleep(Duration::from_millis(2));
    }
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// `gc_core::collect()` on another thread; fails if it does not return within [`HANG`].
pub(crate) fn collect_or_fail() {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        gc_core::collect();
        let _ = tx.send(());
    });
    rx.recv_timeout(HANG)
        .expect("gc_core::collect() did not return: a cycle is blocked");
}

/// A thread calling `gc_core::collect()` back to back, counting the calls that returned.
pub(crate) struct Cycler {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
    /// `stats().cycles` when it started.
    cycles_at_start: u64,
}

impl Cycler {
    pub(crate) fn start() -> Cycler {
        let cycles_at_start = gc_core::stats().cycles;
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicU64::new(0));
        let handle = {
            let (stop, done) = (stop.clone(), done.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    gc_core::collect();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        Cycler {
            stop,
            done,
            handle: Some(handle),
            cycles_at_start,
        }
    }

    /// `collect()` calls that have returned.
    pub(crate) fn done(&self) -> u64 {
        self.done.load(Ordering::SeqCst)
    }

    /// Whether to go on: before `deadline`, and after it until [`MIN_CYCLES`] calls have
    /// returned or as many cycles (anyone's: other tests may be collecting too) have completed.
    pub(crate) fn running(&self, deadline: Instant) -> bool {
        self.assert_alive();
        if Instant::now() < deadline || self.done() >= MIN_CYCLES {
            return Instant::now() < deadline;
        }
        // `stats()` is not free: look at most once a millisecond.
        thread::sleep(Duration::from_millis(1));
        gc_core::stats().cycles < self.cycles_at_start + MIN_CYCLES
    }

    /// Panics if the collecting thread died (a cycle panicked).
    pub(crate) fn assert_alive(&self) {
        if let Some(h) = &self.handle {
            if h.is_finished() {
                panic!("the collecting thread stopped: a cycle failed");
            }
        }
    }

    /// Stops the thread; returns the calls that returned.
    pub(crate) fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        join(
            self.handle.take().expect("running"),
            "the collecting thread",
        );
        self.done()
    }
}

impl Drop for Cycler {
    fn drop(&mut self) {
        // A test that fails leaves no collecting thread behind.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The names of this process's threads (Linux: `/proc/self/task/*/comm`, 15 bytes at most).
pub(crate) fn thread_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .map(|s| s.trim_end().to_owned())
        .collect()
}

/// Records the name of the thread that drops it.
#[derive(Trace)]
#[gc(no_scan)]
pub(crate) struct DropsWhere {
    pub(crate) names: &'static Mutex<Vec<String>>,
}

impl Drop for DropsWhere {
    fn drop(&mut self) {
        let name = thread::current().name().unwrap_or("<unnamed>").to_owned();
        self.names.lock().unwrap().push(name);
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

/// Asserts what must hold of any histogram.
pub(crate) fn assert_histogram(h: &Histogram, what: &str) {
    if h.count == 0 {
        assert_eq!(*h, Histogram::default(), "{what}: empty but not zero");
        return;
    }
    assert!(
        h.p50 <= h.p99 && h.p99 <= h.max,
        "{what}: p50 {:?} <= p99 {:?} <= max {:?}",
        h.p50,
        h.p99,
        h.max
    );
    assert!(
        h.max <= h.total,
        "{what}: max {:?} > total {:?}",
        h.max,
        h.total
    );
    assert!(
        h.total <= h.max * h.count.min(u64::from(u32::MAX)) as u32,
        "{what}: total {:?} over count {} × max {:?}",
        h.total,
        h.count,
        h.max
    );
}

/// A statistics snapshot taken when no cycle is between recording its timings and counting
/// itself complete (cycles end back to back in these tests, but that window is short).
pub(crate) fn settled_stats() -> gc_core::GcStats {
    for _ in 0..100_000 {
        let s = gc_core::stats();
        if s.mark.count == s.cycles && s.sweep.count == s.cycles {
            return s;
        }
        thread::yield_now();
    }
    let s = gc_core::stats();
    panic!(
        "stats never settled: {} cycles, {} marks, {} sweeps recorded",
        s.cycles, s.mark.count, s.sweep.count
    );
}

/// Asserts the relations between the fields of a settled snapshot. No wall-clock bounds.
pub(crate) fn assert_stats_consistent(s: &gc_core::GcStats) {
    assert_eq!(s.mark.count, s.cycles, "one mark time per cycle");
    assert_eq!(s.sweep.count, s.cycles, "one sweep time per cycle");
    for (h, what) in [
        (&s.pauses, "pauses"),
        (&s.mark, "mark"),
        (&s.sweep, "sweep"),
        (&s.assists, "assists"),
    ] {
        assert_histogram(h, what);
    }
    if s.cycles > 0 {
        // Mark setup, at least one termination handshake, the grace period before sweeping.
        assert!(
            s.pauses.count >= 3 * s.cycles,
            "{} pauses in {} cycles",
            s.pauses.count,
            s.cycles
        );
        let last = &s.last_cycle;
        assert!(
            last.pauses.count >= 3,
            "the last cycle recorded {} pauses, fewer than its three handshakes",
            last.pauses.count
        );
        assert_histogram(&last.pauses, "last cycle's pauses");
        assert_eq!(s.last_pause, last.pauses.max);
        assert!(last.pauses.max <= s.pauses.max);
        assert!(last.pauses.total <= s.pauses.total);
        assert!(last.mark <= s.mark.max && last.sweep <= s.sweep.max);
        assert!(last.assist <= s.assists.total);
    }
}

// ---------------------------------------------------------------------------------------------
// Stress: mutators churning one shared graph while cycles run back to back
// ---------------------------------------------------------------------------------------------

/// Table nodes; the first `HOT` are hit by a quarter of the operations, so threads race on
/// the same slots and cells.
const TABLE: usize = 1024;
const HOT: usize = 8;
const HELD: usize = 32;

struct Shared {
    table: Vec<Gc<CNode>>,
    log: &'static Log,
    stop: AtomicBool,
}

struct Mutator {
    rng: XorShift64Star,
    held: Vec<Gc<CNode>>,
    leaves: Vec<Gc<Counted>>,
    tinies: Vec<(u32, Gc<u32>)>,
    ops: u64,
    visits: u64,
}

impl Mutator {
    fn below(&mut self, n: usize) -> usize {
        self.rng.below(n as u64) as usize
    }

    fn table_node(&mut self, sh: &Shared) -> Gc<CNode> {
        sh.table[self.below(TABLE)].clone()
    }

    fn held_one(&mut self) -> Option<Gc<CNode>> {
        if self.held.is_empty() {
            return None;
        }
        let i = self.below(self.held.len());
        Some(self.held[i].clone())
    }

    fn hold(&mut self, n: Gc<CNode>) {
        if self.held.len() >= HELD {
            let i = self.below(HELD);
            self.held.swap_remove(i);
        }
        self.held.push(n);
    }

    fn target(&mut self, sh: &Shared) -> Gc<CNode> {
        match self.below(8) {
            0 | 1 => self.held_one().unwrap_or_else(|| self.table_node(sh)),
            2 | 3 => sh.table[self.below(HOT)].clone(),
            _ => self.table_node(sh),
        }
    }

    /// A fresh node with random edges into the table, sometimes a leaf and a tiny object.
    fn fresh(&mut self, sh: &Shared) -> Gc<CNode> {
        let n = if self.below(4) == 0 {
            cnode_full(sh.log)
        } else {
            cnode(sh.log)
        };
        if self.below(2) == 0 {
            n.a.store(Some(self.table_node(sh)));
        }
        if self.below(3) == 0 {
            n.b.store(Some(self.table_node(sh)));
        }
        if self.below(3) == 0 {
            let k = self.table_node(sh);
            n.kids.borrow_mut().push(k);
        }
        n
    }

    /// A fresh garbage cycle of one of several shapes; returns one of its nodes.
    fn fresh_cycle(&mut self, sh: &Shared) -> Gc<CNode> {
        let x = self.fresh(sh);
        match self.below(4) {
            0 => x.b.store(Some(x.clone())),
            1 => {
                let y = cnode(sh.log);
                y.a.store(Some(x.clone()));
                x.b.store(Some(y));
            }
            2 => {
                let y = cnode_full(sh.log);
                y.kids.borrow_mut().push(x.clone());
                x.kids.borrow_mut().push(y);
            }
            _ => {
                let mut prev = x.clone();
                for _ in 0..4 {
                    let n = cnode(sh.log);
                    prev.b.store(Some(n.clone()));
                    prev = n;
                }
                prev.b.store(Some(x.clone()));
            }
        }
        x
    }

    fn value(&mut self, sh: &Shared) -> Option<Gc<CNode>> {
        match self.below(12) {
            0..=5 => Some(self.table_node(sh)),
            6..=8 => Some(self.fresh(sh)),
            9 => Some(self.fresh_cycle(sh)),
            10 => self.held_one(),
            _ => None,
        }
    }

    fn slot<'a>(&mut self, n: &'a CNode) -> &'a GcSlot<CNode> {
        if self.below(2) == 0 {
            &n.a
        } else {
            &n.b
        }
    }

    fn walk(&mut self, start: Gc<CNode>) {
        let mut cur = start;
        for _ in 0..=self.below(10) {
            let next = match self.below(5) {
                0 | 1 => cur.a.load(),
                2 => cur.b.load(),
                _ => {
                    let kids = cur.kids.borrow();
                    (!kids.is_empty()).then(|| kids[self.below(kids.len())].clone())
                }
            };
            let Some(next) = next else { break };
            verify(&next);
            self.visits += 1;
            if self.below(16) == 0 {
                self.hold(next.clone());
            }
            cur = next;
        }
    }

    fn step(&mut self, sh: &Shared) {
        self.ops += 1;
        let t = self.target(sh);
        verify(&t);
        self.visits += 1;
        match self.below(100) {
            0..=19 => self.walk(t),
            20..=27 => {
                let v = self.value(sh);
                self.slot(&t).store(v);
            }
            28..=33 => {
                let v = self.value(sh);
                if let Some(old) = self.slot(&t).swap(v) {
                    verify(&old);
                    if self.below(3) == 0 {
                        self.hold(old);
                    }
                }
            }
            34..=39 => {
                let slot = self.slot(&t);
                let current = slot.load();
                let new = self.value(sh);
                match slot.compare_exchange(current.as_ref(), new.clone()) {
                    Ok(old) => {
                        assert_eq!(old.is_some(), current.is_some());
                        if let (Some(o), Some(c)) = (&old, &current) {
                            assert!(Gc::ptr_eq(o, c), "compare_exchange returned another node");
                            verify(o);
                        }
                    }
                    Err(back) => {
                        assert_eq!(back.is_some(), new.is_some());
                        if let (Some(b), Some(n)) = (&back, &new) {
                            assert!(Gc::ptr_eq(b, n), "compare_exchange returned another node");
                        }
                    }
                }
            }
            40..=49 => {
                let extra = self.value(sh);
                let what = self.below(5);
                let mut kids = t.kids.borrow_mut();
                match what {
                    0 | 1 => kids.extend(extra),
                    2 => {
                        // Moved out during the borrow: a rooted handle, kept from now on.
                        if let Some(k) = kids.pop() {
                            drop(kids);
                            verify(&k);
                            self.hold(k);
                            return;
                        }
                    }
                    3 => {
                        if !kids.is_empty() {
                            let i = self.below(kids.len());
                            let j = self.below(kids.len());
                            kids.swap(i, j);
                        }
                    }
                    _ => kids.truncate(1),
                }
                while kids.len() > 6 {
                    let i = self.below(kids.len());
                    kids.swap_remove(i);
                }
                for k in kids.iter() {
                    verify(k);
                }
            }
            50..=54 => {
                for k in t.kids.borrow().iter() {
                    verify(k);
                    self.visits += 1;
                }
            }
            55..=59 => match self.below(4) {
                0 => t.leaf.store(Some(leaf(sh.log))),
                1 => t.leaf.store(self.leaves.pop()),
                2 => {
                    if let Some(l) = t.leaf.swap(None) {
                        l.id();
                        if self.leaves.len() < 16 {
                            self.leaves.push(l);
                        }
                    }
                }
                _ => {
                    if let Some(l) = t.leaf.load() {
                        l.id();
                    }
                }
            },
            60..=64 => {
                let id = t.id();
                match self.below(3) {
                    0 => t.tiny.store(Some(Gc::new(tiny_value(id)))),
                    1 => {
                        if let Some(old) = t.tiny.swap(None) {
                            assert_eq!(*old, tiny_value(id), "a tiny object changed");
                            if self.tinies.len() < 64 {
                                self.tinies.push((*old, old));
                            }
                        }
                    }
                    _ => {
                        if let Some(v) = t.tiny.load() {
                            assert_eq!(*v, tiny_value(id), "a tiny object changed");
                        }
                    }
                }
            }
            65..=74 => self.garbage(sh),
            75..=84 => self.handles(&t),
            _ => {
                let start = self.table_node(sh);
                self.walk(start);
            }
        }
    }

    /// Garbage: fresh nodes, cycles, leaves and bursts of tiny objects (some kept a while).
    fn garbage(&mut self, sh: &Shared) {
        match self.below(8) {
            0 | 1 => drop(self.fresh_cycle(sh)),
            2 | 3 => {
                for _ in 0..=self.below(4) {
                    drop(self.fresh(sh));
                }
            }
            4 => {
                for _ in 0..4 {
                    drop(leaf(sh.log));
                }
            }
            _ => {
                for _ in 0..16 {
                    let v = self.rng.next_u64() as u32;
                    let g = Gc::new(v);
                    assert_eq!(*g, v);
                    if self.tinies.len() < 64 {
                        self.tinies.push((v, g));
                    } else if self.below(4) == 0 {
                        let i = self.below(self.tinies.len());
                        self.tinies[i] = (v, g);
                    }
                }
            }
        }
    }

    /// Clones, drops, checks and re-links the handles this thread holds.
    fn handles(&mut self, t: &Gc<CNode>) {
        match self.below(6) {
            0 => {
                if let Some(n) = self.slot(t).load() {
                    verify(&n);
                    self.hold(n);
                }
            }
            1 => {
                if let Some(n) = self.held_one() {
                    self.hold(n);
                }
            }
            2 if !self.held.is_empty() => {
                let i = self.below(self.held.len());
                self.held.swap_remove(i);
            }
            3 => {
                // Re-link a held node (perhaps reachable only through this handle).
                if let Some(n) = self.held_one() {
                    self.slot(t).store(Some(n));
                }
            }
            _ => {
                for n in &self.held {
                    verify(n);
                    self.visits += 1;
                }
                for l in &self.leaves {
                    l.id();
                }
                for (v, g) in &self.tinies {
                    assert_eq!(**g, *v, "a tiny object changed");
                }
            }
        }
    }
}

/// What a stress run did.
#[derive(Debug, Default)]
pub(crate) struct StressReport {
    pub(crate) ops: u64,
    pub(crate) visits: u64,
    pub(crate) allocated: u64,
    pub(crate) collects: u64,
    pub(crate) cycles: u64,
}

/// `mutators` threads churn one shared graph (a table of rooted nodes, linked at random) for
/// `duration` while another thread calls `collect()` back to back; every node visited is
/// checked. Then everything is dropped, one `collect()` runs, and every object allocated must
/// have been dropped exactly once.
pub(crate) fn stress(mutators: u64, duration: Duration, seed: u64) -> StressReport {
    let log = Log::new(1 << 23);
    let mut rng = XorShift64Star::new(seed);
    let table: Vec<Gc<CNode>> = (0..TABLE).map(|_| cnode_full(log)).collect();
    for n in &table {
        for s in [&n.a, &n.b] {
            if rng.below(2) == 0 {
                s.store(Some(table[rng.below(TABLE as u64) as usize].clone()));
            }
        }
        n.kids
            .borrow_mut()
            .push(table[rng.below(TABLE as u64) as usize].clone());
    }
    let sh = Arc::new(Shared {
        table,
        log,
        stop: AtomicBool::new(false),
    });
    let cycles_before = gc_core::stats().cycles;
    let cycler = Cycler::start();
    let threads: Vec<JoinHandle<[u64; 2]>> = (0..mutators)
        .map(|m| {
            let sh = sh.clone();
            let seed = seed ^ (m + 1).wrapping_mul(0x0123_4567_89AB_CDEF);
            thread::spawn(move || {
                let mut me = Mutator {
                    rng: XorShift64Star::new(seed),
                    held: Vec::new(),
                    leaves: Vec::new(),
                    tinies: Vec::new(),
                    ops: 0,
                    visits: 0,
                };
                while !sh.stop.load(Ordering::Relaxed) {
                    me.step(&sh);
                }
                [me.ops, me.visits]
            })
        })
        .collect();

    let deadline = Instant::now() + duration;
    while cycler.running(deadline) {
        if threads.iter().any(|h| h.is_finished()) {
            break; // a mutator failed: join it below for its panic
        }
        thread::sleep(Duration::from_millis(5));
    }
    sh.stop.store(true, Ordering::SeqCst);
    let mut report = StressReport::default();
    for h in threads {
        let [o, v] = join(h, "a mutator");
        report.ops += o;
        report.visits += v;
    }
    report.collects = cycler.stop();
    report.cycles = gc_core::stats().cycles - cycles_before;
    collect_or_fail();
    for n in &sh.table {
        verify_deep(n);
    }
    assert!(report.ops > 0 && report.collects > 0);
    report.allocated = log.allocated();
    assert!(log.dropped() <= report.allocated);

    drop(sh);
    collect_or_fail();
    log.assert_all_dropped_once("stress");
    report
}

// ---------------------------------------------------------------------------------------------
// A long mutable borrow while cycles run
// ---------------------------------------------------------------------------------------------

/// A command to the thread holding the borrow.
enum Cmd {
    /// Push fresh nodes, each with a private child reachable only through it.
    Push(usize),
    /// Pop nodes and keep the handles.
    Pop(usize),
    /// Drop the handles kept by `Pop` (their nodes become garbage).
    DropPopped,
    /// Check the content and the popped handles; reply with the ids they hold.
    Check,
    /// Call `collect()` while holding the borrow.
    Collect,
    /// This many random pushes, pops (dropped) and removals (kept).
    Churn(u64),
    /// Release the borrow.
    Release,
}

/// The ids the holder reports: the content's nodes and their private children, and the popped
/// nodes and theirs.
#[derive(Debug, Default, Clone)]
struct HolderIds {
    content: Vec<u64>,
    popped: Vec<u64>,
}

fn push_fresh(log: &'static Log, kids: &mut Vec<Gc<CNode>>) {
    let n = cnode_full(log);
    // Reachable only through `n`, which is reachable only through the borrowed content.
    n.a.store(Some(cnode_full(log)));
    kids.push(n);
}

fn ids_of(nodes: &[Gc<CNode>]) -> Vec<u64> {
    let mut v = Vec::new();
    for n in nodes {
        v.push(verify(n));
        let child = n.a.load().expect("a pushed node keeps its child");
        v.push(verify(&child));
    }
    v
}

/// One thread takes `parent.kids.borrow_mut()` and holds it across many cycles, pushing fresh
/// nodes into the borrowed vector and popping nodes out of it between and during cycles, while
/// `collect()` is called from another thread (and, with `holder_collects`, from the holder
/// itself, the guard still held). Every `collect()` must return (within [`HANG`]); what the
/// content holds survives; what was popped and dropped is collected while the borrow is still
/// held; after the release, the content is traced as usual and the rest is collected.
pub(crate) fn long_borrow_mut(rounds: usize, churn: Duration, holder_collects: bool) {
    let log = Log::new(1 << 20);
    let parent = cnode_full(log);
    for _ in 0..4 {
        push_fresh(log, &mut parent.kids.borrow_mut());
    }
    let (cmd_tx, cmd_rx) = mpsc::channel::<Cmd>();
    let (ack_tx, ack_rx) = mpsc::channel::<HolderIds>();
    let holder = {
        let parent = parent.clone();
        thread::spawn(move || {
            let mut rng = XorShift64Star::new(0xB0_77_0E);
            let mut kids = parent.kids.borrow_mut();
            let mut popped: Vec<Gc<CNode>> = Vec::new();
            let _ = ack_tx.send(HolderIds::default());
            while let Ok(cmd) = cmd_rx.recv() {
                match cmd {
                    Cmd::Push(n) => (0..n).for_each(|_| push_fresh(log, &mut kids)),
                    Cmd::Pop(n) => {
                        for _ in 0..n {
                            popped.extend(kids.pop());
                        }
                    }
                    Cmd::DropPopped => popped.clear(),
                    Cmd::Check => {}
                    Cmd::Collect => gc_core::collect(),
                    Cmd::Churn(ops) => {
                        for _ in 0..ops {
                            match rng.below(4) {
                                0 | 1 => push_fresh(log, &mut kids),
                                2 => drop(kids.pop()),
                                _ => {
                                    if kids.len() > 1 {
                                        let i = rng.below(kids.len() as u64) as usize;
                                        popped.push(kids.swap_remove(i));
                                    }
                                }
                            }
                        }
                        ids_of(&kids);
                    }
                    Cmd::Release => break,
                }
                let ids = HolderIds {
                    content: ids_of(&kids),
                    popped: ids_of(&popped),
                };
                if ack_tx.send(ids).is_err() {
                    break;
                }
            }
            drop(kids);
            // Popped nodes still held are checked once more after the release.
            ids_of(&popped);
        })
    };
    let ask = |cmd: Cmd| -> HolderIds {
        cmd_tx.send(cmd).expect("the holder thread died");
        ack_rx
            .recv_timeout(HANG)
            .expect("the thread holding the borrow got stuck")
    };
    ack_rx
        .recv_timeout(HANG)
        .expect("the holder could not borrow");
    let cycles_before = gc_core::stats().cycles;
    let mut dropped_popped: Vec<u64> = Vec::new();
    let mut last = HolderIds::default();
    for round in 0..rounds {
        ask(Cmd::Push(3));
        let before_drop = ask(Cmd::Pop(1));
        if round % 2 == 1 {
            // The popped nodes become garbage while the borrow is held.
            dropped_popped.extend(before_drop.popped.iter().copied());
            ask(Cmd::DropPopped);
        }
        collect_or_fail();
        if holder_collects {
            ask(Cmd::Collect);
        }
        last = ask(Cmd::Check);
        for &id in last.content.iter().chain(&last.popped) {
            assert_eq!(log.drops_of(id), Some(0), "round {round}: {id} was dropped");
        }
        for &id in &dropped_popped {
            assert_eq!(
                log.drops_of(id),
                Some(1),
                "round {round}: {id}, popped out of the borrowed content and dropped before a \
                 collect(), was not dropped by it"
            );
        }
    }
    // Churn during cycles: the holder pushes and pops while `collect()` runs back to back.
    if !churn.is_zero() {
        let cycler = Cycler::start();
        let deadline = Instant::now() + churn;
        while cycler.running(deadline) {
            last = ask(Cmd::Churn(64));
        }
        cycler.stop();
        for &id in last.content.iter().chain(&last.popped) {
            assert_eq!(log.drops_of(id), Some(0), "churn: {id} was dropped");
        }
    }
    let cycles_during = gc_core::stats().cycles - cycles_before;
    assert!(
        cycles_during >= rounds as u64,
        "{cycles_during} cycles completed while the borrow was held, expected {rounds}"
    );

    // Release: the content is edges again; the popped handles the holder still has are dropped
    // as it exits.
    cmd_tx.send(Cmd::Release).expect("the holder thread died");
    join(holder, "the thread holding the borrow");
    collect_or_fail();
    for &id in &last.content {
        assert_eq!(
            log.drops_of(id),
            Some(0),
            "{id}, in the content at the release, was dropped"
        );
    }
    for &id in &last.popped {
        assert_eq!(
            log.drops_of(id),
            Some(1),
            "{id}, popped and dropped after the release, was not dropped by the next collect()"
        );
    }
    let content = ids_of(&parent.kids.borrow());
    let mut want = last.content.clone();
    want.sort_unstable();
    let mut got = content;
    got.sort_unstable();
    assert_eq!(got, want, "the content changed after the release");
    parent.kids.borrow_mut().clear();
    collect_or_fail();
    for &id in &last.content {
        assert_eq!(log.drops_of(id), Some(1), "{id}: garbage, not dropped");
    }
    verify(&parent);
    drop(parent);
    collect_or_fail();
    log.assert_all_dropped_once("long borrow_mut");
}

/// A long *shared* borrow of a heap cell, with another thread waiting in `borrow_mut` on the
/// same cell meanwhile: cycles still finish (the marker reads the cell beside the reader; the
/// waiting writer is never stuck inside an operation that a handshake would wait for), and the
/// writer gets its borrow once the reader lets go.
pub(crate) fn long_shared_borrow(collects: usize) {
    let log = Log::new(1 << 16);
    let parent = cnode_full(log);
    for _ in 0..4 {
        push_fresh(log, &mut parent.kids.borrow_mut());
    }
    let ids = ids_of(&parent.kids.borrow());
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (held_tx, held_rx) = mpsc::channel::<()>();
    let reader = {
        let parent = parent.clone();
        thread::spawn(move || {
            let kids = parent.kids.borrow();
            let _ = held_tx.send(());
            let _ = release_rx.recv();
            ids_of(&kids)
        })
    };
    held_rx
        .recv_timeout(HANG)
        .expect("the reader could not borrow");
    let writer_done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (parent, done) = (parent.clone(), writer_done.clone());
        thread::spawn(move || {
            let mut kids = parent.kids.borrow_mut(); // waits for the reader
            push_fresh(log, &mut kids);
            done.store(true, Ordering::SeqCst);
        })
    };
    for _ in 0..collects {
        collect_or_fail();
        assert!(
            !writer_done.load(Ordering::SeqCst),
            "borrow_mut succeeded while a shared borrow was held"
        );
    }
    for &id in &ids {
        assert_eq!(
            log.drops_of(id),
            Some(0),
            "{id}, in a borrowed cell, was dropped"
        );
    }
    release_tx.send(()).expect("the reader is waiting");
    assert_eq!(join(reader, "the reader"), ids);
    join(writer, "the writer");
    collect_or_fail();
    let now = ids_of(&parent.kids.borrow());
    assert_eq!(
        now.len(),
        ids.len() + 2,
        "the writer pushed a node and its child"
    );
    assert_eq!(&now[..ids.len()], &ids[..]);
    drop(parent);
    collect_or_fail();
    log.assert_all_dropped_once("long shared borrow");
}

// ---------------------------------------------------------------------------------------------
// Cells inside cells
// ---------------------------------------------------------------------------------------------

/// Rows of nodes in cells inside a cell.
#[derive(Trace)]
pub(crate) struct Shelf {
    counted: Counted,
    rows: GcCell<Vec<GcCell<Vec<Gc<CNode>>>>>,
}

/// Three threads work on one heap object holding cells inside a cell while another thread
/// calls `collect()` back to back: under a shared borrow of the outer cell they move nodes from
/// one row's cell to another's (each row borrowed mutably on its own) and push fresh ones; now
/// and then one takes the outer cell mutably (waiting for every reader) to add a row or remove
/// one (its nodes become garbage). The marker meets outer cells borrowed mutably (skipped),
/// inner cells borrowed mutably under a traced outer cell, and rows moved in and out of the
/// heap. Every node is checked whenever it is moved and in full sweeps of the shelf; at the end
/// everything is dropped exactly once.
pub(crate) fn nested_cells(duration: Duration) -> u64 {
    const ROWS: usize = 6;
    let log = Log::new(1 << 21);
    let row = |n: usize| GcCell::new((0..n).map(|_| cnode_full(log)).collect::<Vec<_>>());
    let shelf = Gc::new(Shelf {
        counted: Counted::new(log),
        rows: GcCell::new((0..ROWS).map(|_| row(4)).collect()),
    });
    let cycler = Cycler::start();
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<JoinHandle<u64>> = (0..3u64)
        .map(|t| {
            let (shelf, stop) = (shelf.clone(), stop.clone());
            thread::spawn(move || {
                let mut rng = XorShift64Star::new(0x5E1F + t);
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    ops += 1;
                    match rng.below(16) {
                        0..=8 => {
                            let rows = shelf.rows.borrow();
                            let n = rows.len() as u64;
                            if n < 2 {
                                continue;
                            }
                            let i = rng.below(n) as usize;
                            let j = (i + 1 + rng.below(n - 1) as usize) % n as usize;
                            // One row at a time: two threads holding one row each and waiting
                            // for the other's would deadlock.
                            let x = rows[i].borrow_mut().pop();
                            if let Some(x) = x {
                                verify(&x);
                                rows[j].borrow_mut().push(x);
                            }
                        }
                        9..=11 => {
                            let rows = shelf.rows.borrow();
                            if rows.is_empty() {
                                continue;
                            }
                            let mut r = rows[rng.below(rows.len() as u64) as usize].borrow_mut();
                            r.push(cnode_full(log));
                            while r.len() > 12 {
                                let k = r.remove(0);
                                verify(&k);
                            }
                        }
                        12..=14 => {
                            for r in shelf.rows.borrow().iter() {
                                for k in r.borrow().iter() {
                                    verify(k);
                                }
                            }
                        }
                        _ => {
                            let mut rows = shelf.rows.borrow_mut();
                            if rows.len() < ROWS + 2 && rng.below(2) == 0 {
                                rows.push(row(rng.below(4) as usize));
                            } else if !rows.is_empty() {
                                let i = rng.below(rows.len() as u64) as usize;
                                // Out of the heap: a cell of rooted handles, dropped here.
                                let gone = rows.remove(i);
                                for k in gone.borrow().iter() {
                                    verify(k);
                                }
                            }
                        }
                    }
                }
                ops
            })
        })
        .collect();
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) && !threads.iter().any(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let ops = threads.into_iter().map(|h| join(h, "a shelf thread")).sum();
    cycler.stop();
    collect_or_fail();
    shelf.counted.id();
    for r in shelf.rows.borrow().iter() {
        for k in r.borrow().iter() {
            verify_deep(k);
        }
    }
    drop(shelf);
    collect_or_fail();
    log.assert_all_dropped_once("nested cells");
    ops
}

// ---------------------------------------------------------------------------------------------
// Allocation during marking
// ---------------------------------------------------------------------------------------------

/// `threads` threads allocate in a loop while another thread calls `collect()` back to back.
/// Each thread keeps a chain of its newest nodes hanging off an anchor (each new node linked
/// in front, so it is reachable only through the anchor's edge) and a window of nodes in the
/// anchor's cell, each with a fresh leaf and tiny object; it walks and checks them all every
/// few allocations, and cuts the chain's tail (garbage). Objects allocated while the collector
/// marks are black and are never traced, so their own edges must lead to objects that are
/// marked too.
pub(crate) fn allocation_during_marking(threads: u64, duration: Duration) -> u64 {
    const CHAIN: usize = 192;
    const WINDOW: usize = 48;
    let log = Log::new(1 << 22);
    let cycler = Cycler::start();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<JoinHandle<u64>> = (0..threads)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rng = XorShift64Star::new(0xA110C + t);
                let anchor = cnode(log);
                // Newest first: the ids the chain must hold.
                let mut chain: VecDeque<u64> = VecDeque::new();
                let mut window: VecDeque<u64> = VecDeque::new();
                let mut n_alloc = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = cnode_full(log);
                    chain.push_front(n.id());
                    n.a.store(anchor.a.load());
                    anchor.a.store(Some(n));
                    if rng.below(2) == 0 {
                        let m = cnode_full(log);
                        window.push_back(m.id());
                        let mut kids = anchor.kids.borrow_mut();
                        kids.push(m);
                        if kids.len() > WINDOW {
                            kids.remove(0);
                            window.pop_front();
                        }
                    }
                    n_alloc += 1;
                    if n_alloc % 32 == 0 {
                        // Walk the chain: exactly the ids allocated, newest first; cut the tail.
                        let mut cur = anchor.a.load();
                        for (depth, &want) in chain.iter().enumerate() {
                            let node = cur.expect("the chain is shorter than allocated");
                            assert_eq!(verify(&node), want, "chain node {depth}");
                            if depth + 1 == CHAIN {
                                node.a.store(None);
                                cur = None;
                                break;
                            }
                            cur = node.a.load();
                        }
                        assert!(cur.is_none(), "the chain is longer than allocated");
                        chain.truncate(CHAIN);
                        let kids = anchor.kids.borrow();
                        let ids: Vec<u64> = kids.iter().map(|k| verify(k)).collect();
                        assert!(ids.iter().eq(window.iter()), "the anchor's cell changed");
                    }
                }
                verify_deep(&anchor);
                n_alloc
            })
        })
        .collect();
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) && !workers.iter().any(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    let allocated: u64 = workers
        .into_iter()
        .map(|h| join(h, "an allocating thread"))
        .sum();
    cycler.stop();
    collect_or_fail();
    log.assert_all_dropped_once("allocation during marking");
    allocated
}

// ---------------------------------------------------------------------------------------------
// Threads that start and exit while cycles run
// ---------------------------------------------------------------------------------------------

thread_local! {
    /// Handles a short-lived thread keeps until it exits: dropped during its teardown, before
    /// or after gc-core's own thread-local (its thread cache) is destroyed.
    static KEPT_TILL_EXIT: std::cell::RefCell<Vec<Gc<CNode>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Short-lived threads, four at a time, while another thread calls `collect()` back to back:
/// each allocates (its thread cache registers, perhaps while the collector marks), links a node
/// with a private child into a shared anchor's cell, keeps other nodes in a thread-local (dropped
/// as the thread exits, perhaps during marking and after its cache is gone), and exits. The
/// anchor's cell must hold exactly the nodes the threads linked (the oldest are unlinked as
/// garbage); at the end everything allocated is dropped exactly once.
pub(crate) fn threads_come_and_go(duration: Duration) -> u64 {
    let log = Log::new(1 << 20);
    let anchor = cnode(log);
    let cycler = Cycler::start();
    let mut linked: VecDeque<u64> = VecDeque::new();
    let mut spawned = 0;
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) {
        let batch: Vec<JoinHandle<u64>> = (0..4)
            .map(|k| {
                let anchor = anchor.clone();
                thread::spawn(move || {
                    let n = cnode_full(log);
                    n.a.store(Some(cnode_full(log)));
                    let id = n.id();
                    KEPT_TILL_EXIT.with(|h| {
                        let mut h = h.borrow_mut();
                        h.push(n.clone());
                        // Reachable only from this thread-local: garbage once the thread is gone.
                        let g = cnode_full(log);
                        g.b.store(Some(g.clone()));
                        h.push(g);
                    });
                    if k % 2 == 0 {
                        anchor.kids.borrow_mut().push(n);
                    } else {
                        // Through the slot of a fresh node first, then moved to the cell.
                        let via = cnode(log);
                        via.a.store(Some(n));
                        anchor
                            .kids
                            .borrow_mut()
                            .push(via.a.take().expect("just stored"));
                    }
                    id
                })
            })
            .collect();
        for h in batch {
            linked.push_back(join(h, "a short-lived thread"));
        }
        spawned += 4;
        let mut kids = anchor.kids.borrow_mut();
        if kids.len() > 64 {
            // The oldest eight batches become garbage.
            kids.drain(..32);
            linked.drain(..32);
        }
        // Threads of one batch race for the order of their pushes: compare as sets.
        let mut got: Vec<u64> = kids.iter().map(|k| verify_deep(k)).collect();
        drop(kids);
        let mut want: Vec<u64> = linked.iter().copied().collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(
            got, want,
            "the anchor's cell does not hold the nodes the threads linked"
        );
    }
    cycler.stop();
    collect_or_fail();
    verify_deep(&anchor);
    drop(anchor);
    collect_or_fail();
    log.assert_all_dropped_once("threads come and go");
    spawned
}

// ---------------------------------------------------------------------------------------------
// The barrier cases, one by one
// ---------------------------------------------------------------------------------------------

/// What a barrier scenario did.
#[derive(Debug, Default)]
pub(crate) struct BarrierReport {
    pub(crate) iterations: u64,
    pub(crate) checked: u64,
    pub(crate) collects: u64,
}

/// Ends a barrier scenario: stops the cycles, runs one more `collect()` (so that everything
/// kept has lived through a cycle that started after it was made), checks everything kept and
/// whatever `rest` checks, drops it all, and checks that one `collect()` drops every object the
/// scenario allocated exactly once.
fn finish_barrier(
    log: &'static Log,
    cycler: Cycler,
    mut kept: Kept,
    iterations: u64,
    what: &str,
    rest: impl FnOnce(),
) -> BarrierReport {
    // `rest` owns what the scenario still holds, and drops it when called.
    // The cycler's last `collect()` and this one share their cycles.
    cycler.stop.store(true, Ordering::SeqCst);
    collect_or_fail();
    let collects = cycler.stop();
    kept.finish();
    rest();
    let checked = kept.checked;
    drop(kept);
    collect_or_fail();
    log.assert_all_dropped_once(what);
    BarrierReport {
        iterations,
        checked,
        collects,
    }
}

/// `GcSlot::store` of a handle whose only other root is then dropped: an object allocated
/// before the cycle (a node with a leaf and a tiny object, or a large [`Bulky`] in a late size
/// class), held only by a pool handle, is stored into a fresh holder's slot and the pool handle
/// dropped. If the holder was allocated black (never scanned) and the object's span is
/// enumerated after the drop (so it has no root by then), only the store's shade (or the
/// drop's) keeps it alive. A live ballast makes root enumeration long enough to hit that.
pub(crate) fn barrier_store_then_drop(duration: Duration) -> BarrierReport {
    const POOL: usize = 1024;
    let log = Log::new(1 << 22);
    let ballast = ballast(log, 30_000);
    let cycler = Cycler::start();
    let mut rng = XorShift64Star::new(0x5707E);
    // A node, a leaf, a tiny object and its value.
    type Pooled = (Gc<CNode>, Gc<Counted>, Gc<u32>, u32);
    let mut nodes: Vec<Pooled> = Vec::new();
    let mut bulks: Vec<Gc<Bulky>> = Vec::new();
    let mut kept = Kept::new();
    let mut iterations = 0;
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) {
        if nodes.is_empty() {
            nodes.extend((0..POOL / 4).map(|_| {
                let v = rng.next_u64() as u32;
                (cnode_full(log), leaf(log), Gc::new(v), v)
            }));
        }
        if bulks.is_empty() {
            bulks.extend((0..POOL).map(|i| bulky(log, (i % 8 == 0).then(|| cnode(log)))));
        }
        let epoch = cycler.done();
        if rng.below(4) != 0 {
            let x = bulks.swap_remove(rng.below(bulks.len() as u64) as usize);
            let holder = Gc::new(GcSlot::new(None));
            holder.store(Some(x.clone()));
            drop(x);
            kept.push(epoch, Keep::BulkyIn(holder));
        } else {
            let i = rng.below(nodes.len() as u64) as usize;
            let (x, l, t, v) = nodes.swap_remove(i);
            let holder = cnode(log);
            holder.a.store(Some(x.clone()));
            drop(x);
            holder.leaf.store(Some(l.clone()));
            drop(l);
            // A tiny object cannot go into `holder.tiny` (which holds the holder's own value):
            // into a fresh heap slot of its own.
            let tslot = Gc::new(GcSlot::new(None));
            tslot.store(Some(t.clone()));
            drop(t);
            kept.push(epoch, Keep::Node(holder));
            kept.push(epoch, Keep::TinyIn(tslot, v));
        }
        iterations += 1;
        kept.release(&cycler);
    }
    drop((nodes, bulks));
    finish_barrier(
        log,
        cycler,
        kept,
        iterations,
        "store then drop",
        move || {
            verify(&ballast);
        },
    )
}

/// `GcSlot::swap` returning the old target, which is kept: holders (allocated first, scanned
/// after root enumeration) point at objects reachable only through them; the test swaps a
/// fresh object in and keeps the old one. If its span was enumerated before the swap (when it
/// had no root) and its holder is scanned after, only the swap's shade keeps it alive.
pub(crate) fn barrier_swap_keeps_old(duration: Duration) -> BarrierReport {
    const HOLDERS: usize = 2048;
    let log = Log::new(1 << 22);
    let holders: Vec<Gc<CNode>> = (0..HOLDERS)
        .map(|_| {
            let h = cnode(log);
            h.a.store(Some(cnode_full(log)));
            h.leaf.store(Some(leaf(log)));
            h.tiny.store(Some(Gc::new(tiny_value(h.id()))));
            h
        })
        .collect();
    let cycler = Cycler::start();
    let mut rng = XorShift64Star::new(0x5AA9);
    let mut kept = Kept::new();
    let mut iterations = 0;
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) {
        let h = &holders[rng.below(HOLDERS as u64) as usize];
        let epoch = cycler.done();
        match rng.below(4) {
            0 | 1 => {
                if let Some(old) = h.a.swap(Some(cnode_full(log))) {
                    verify(&old);
                    kept.push(epoch, Keep::Node(old));
                }
            }
            2 => {
                if let Some(old) = h.leaf.swap(Some(leaf(log))) {
                    old.id();
                    kept.push(epoch, Keep::Leaf(old));
                }
            }
            _ => {
                let v = tiny_value(h.id());
                if let Some(old) = h.tiny.swap(Some(Gc::new(v))) {
                    assert_eq!(*old, v);
                    kept.push(epoch, Keep::Tiny(old, v));
                }
            }
        }
        iterations += 1;
        kept.release(&cycler);
    }
    finish_barrier(log, cycler, kept, iterations, "swap keeps old", move || {
        holders.iter().for_each(|h| {
            verify_deep(h);
        })
    })
}

/// `GcSlot::load` of a target whose slot another thread then overwrites: a writer thread keeps
/// storing fresh nodes into shared holders' slots (each reachable only through its slot), the
/// test thread loads them and keeps them, either as rooted handles or stored into a fresh
/// (possibly black) holder. If the target's span was enumerated before the load and the writer
/// overwrites the slot before the holder is scanned, only the barriers keep it alive; and a
/// load racing an overwrite must never count a root on an object already freed.
pub(crate) fn barrier_load_then_overwrite(duration: Duration) -> BarrierReport {
    const HOLDERS: usize = 256;
    let log = Log::new(1 << 22);
    let holders: Arc<Vec<Gc<CNode>>> = Arc::new(
        (0..HOLDERS)
            .map(|_| {
                let h = cnode(log);
                h.a.store(Some(cnode_full(log)));
                h.leaf.store(Some(leaf(log)));
                h
            })
            .collect(),
    );
    let ballast = ballast(log, 20_000);
    let cycler = Cycler::start();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (holders, stop) = (holders.clone(), stop.clone());
        thread::spawn(move || {
            let mut rng = XorShift64Star::new(0x3171E);
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let h = &holders[rng.below(HOLDERS as u64) as usize];
                if rng.below(4) == 0 {
                    h.leaf.store(Some(leaf(log)));
                } else {
                    h.a.store(Some(cnode_full(log)));
                }
                writes += 1;
            }
            writes
        })
    };
    let mut rng = XorShift64Star::new(0x10AD);
    let mut kept = Kept::new();
    let mut iterations = 0;
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) && !writer.is_finished() {
        let h = &holders[rng.below(HOLDERS as u64) as usize];
        let epoch = cycler.done();
        match rng.below(4) {
            0 => {
                if let Some(l) = h.leaf.load() {
                    l.id();
                    kept.push(epoch, Keep::Leaf(l));
                }
            }
            1 => {
                if let Some(n) = h.a.load() {
                    verify(&n);
                    kept.push(epoch, Keep::Node(n));
                }
            }
            _ => {
                if let Some(n) = h.a.load() {
                    let f = cnode(log);
                    f.a.store(Some(n));
                    kept.push(epoch, Keep::Node(f));
                }
            }
        }
        iterations += 1;
        kept.release(&cycler);
    }
    stop.store(true, Ordering::SeqCst);
    join(writer, "the writer thread");
    finish_barrier(
        log,
        cycler,
        kept,
        iterations,
        "load then overwrite",
        move || {
            holders.iter().for_each(|h| {
                verify_deep(h);
            });
            verify(&ballast);
        },
    )
}

/// Dropping the last rooted handle to an object while it is reachable only through an edge
/// that another thread is moving: a dropper thread puts fresh objects into empty mailbox slots
/// and drops its handle after a random delay; the mover takes each edge out, stores it into a
/// fresh holder's slot, moves it from there into a second fresh holder's cell, and keeps that
/// holder. Without the drop's shade (or the moves'), an object whose root was gone when its
/// span was enumerated, now only in a black holder, would be freed.
pub(crate) fn barrier_drop_root_while_edge_moves(duration: Duration) -> BarrierReport {
    const BOXES: usize = 64;
    let log = Log::new(1 << 22);
    let boxes: Arc<Vec<Gc<CNode>>> = Arc::new((0..BOXES).map(|_| cnode(log)).collect());
    let ballast = ballast(log, 10_000);
    let cycler = Cycler::start();
    let stop = Arc::new(AtomicBool::new(false));
    let dropper = {
        let (boxes, stop) = (boxes.clone(), stop.clone());
        thread::spawn(move || {
            let mut rng = XorShift64Star::new(0xD409);
            let mut sent = 0u64;
            let mut x = cnode_full(log);
            while !stop.load(Ordering::Relaxed) {
                // Into the first empty mailbox from a random start.
                let start = rng.below(BOXES as u64) as usize;
                let placed = (0..BOXES).any(|k| {
                    let b = &boxes[(start + k) % BOXES];
                    b.a.compare_exchange(None, Some(x.clone())).is_ok()
                });
                if !placed {
                    thread::yield_now();
                    continue;
                }
                // The edge exists; the mover may be moving it already. Drop the last root after
                // a random delay.
                for _ in 0..rng.below(2000) {
                    std::hint::spin_loop();
                }
                drop(x);
                sent += 1;
                x = cnode_full(log);
            }
            sent
        })
    };
    let mut rng = XorShift64Star::new(0x30E);
    let mut kept = Kept::new();
    let mut iterations = 0;
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) && !dropper.is_finished() {
        let start = rng.below(BOXES as u64) as usize;
        let Some(e) = (0..BOXES).find_map(|k| boxes[(start + k) % BOXES].a.take()) else {
            std::hint::spin_loop();
            continue;
        };
        let epoch = cycler.done();
        let f1 = cnode(log);
        f1.a.store(Some(e));
        // Slot to cell, and sometimes on from the cell to a slot of the same fresh holder.
        let f2 = cnode(log);
        f2.kids.borrow_mut().push(f1.a.take().expect("just stored"));
        if rng.below(2) == 0 {
            let moved = f2.kids.borrow_mut().pop().expect("just pushed");
            f2.b.store(Some(moved));
        }
        drop(f1);
        kept.push(epoch, Keep::Node(f2));
        iterations += 1;
        kept.release(&cycler);
    }
    stop.store(true, Ordering::SeqCst);
    join(dropper, "the dropping thread");
    finish_barrier(
        log,
        cycler,
        kept,
        iterations,
        "drop root while edge moves",
        move || {
            boxes.iter().for_each(|b| {
                verify_deep(b);
            });
            verify(&ballast);
        },
    )
}

/// `GcCell::borrow_mut` moving a handle from one cell to another: source nodes (allocated
/// first) hold nodes reachable only through their cells; the test pops one out of a source's
/// cell and pushes it into a fresh holder's cell, or into another source's cell with both
/// borrows held at once. A node whose span was enumerated before the move (it had no root) and
/// whose source is scanned after it survives only through the borrow's shades.
pub(crate) fn barrier_cell_to_cell(duration: Duration) -> BarrierReport {
    const SOURCES: usize = 1024;
    const PER: usize = 4;
    let log = Log::new(1 << 22);
    let fill = |s: &Gc<CNode>| {
        let mut kids = s.kids.borrow_mut();
        while kids.len() < PER {
            kids.push(cnode_full(log));
        }
    };
    let sources: Vec<Gc<CNode>> = (0..SOURCES)
        .map(|_| {
            let s = cnode(log);
            fill(&s);
            s
        })
        .collect();
    let cycler = Cycler::start();
    let mut rng = XorShift64Star::new(0xCE11);
    let mut kept = Kept::new();
    let mut iterations = 0;
    let deadline = Instant::now() + duration;
    while cycler.running(deadline) {
        let i = rng.below(SOURCES as u64) as usize;
        let epoch = cycler.done();
        match rng.below(4) {
            0 | 1 => {
                let x = sources[i].kids.borrow_mut().pop();
                match x {
                    Some(x) => {
                        let f = cnode(log);
                        f.kids.borrow_mut().push(x);
                        kept.push(epoch, Keep::Node(f));
                    }
                    None => fill(&sources[i]),
                }
            }
            2 => {
                let j = (i + 1 + rng.below(SOURCES as u64 - 1) as usize) % SOURCES;
                let mut from = sources[i].kids.borrow_mut();
                let mut to = sources[j].kids.borrow_mut();
                if let Some(x) = from.pop() {
                    to.push(x);
                }
                while to.len() > 2 * PER {
                    // Moved out and kept (rooted while the borrow lasts, then on its own).
                    let k = to.remove(0);
                    kept.push(epoch, Keep::Node(k));
                }
            }
            _ => {
                let j = (i + 1 + rng.below(SOURCES as u64 - 1) as usize) % SOURCES;
                let x = sources[i].kids.borrow_mut().pop();
                if let Some(x) = x {
                    sources[j].kids.borrow_mut().push(x);
                }
            }
        }
        iterations += 1;
        kept.release(&cycler);
    }
    finish_barrier(log, cycler, kept, iterations, "cell to cell", move || {
        sources.iter().for_each(|s| {
            verify_deep(s);
        })
    })
}
