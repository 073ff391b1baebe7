//! Model test of the collector (DESIGN §7, invariants **I1** safety and **I2** SATB).
//!
//! A proptest generates random programs over a graph of `Node`s and runs each both on gc-core
//! and on a reference model: a graph of node ids with its edges (two `GcSlot` edges and the
//! ordered content of a `GcCell<Vec<Gc<Node>>>` per node) and its roots with their
//! multiplicities (the test's root slots, `Vec<Option<Gc<Node>>>`, plus the handles held by
//! other threads). The operations:
//!
//! - `Alloc`: a new node, held in a new root slot; sometimes born with edges to a rooted node
//!   (`Gc::new` unroots the handles inside the value);
//! - `Link`: `GcSlot::store` / `GcSlot::swap` (the old target becomes a new root) or a push into
//!   the cell; `Unlink`: a slot store of `None`, a cell pop, or a cell clear (`GcCell::take`);
//! - `Clone` a root into a new root slot; `DropRoot`;
//! - `BorrowMut`: hold a cell's `borrow_mut` guard across a `collect()`, after moving an element
//!   out of it (kept as a root) and pushing another in;
//! - `MoveToThread`: send a root to a spawned thread, which either drops it there at once or
//!   holds it until a later `JoinThread`, which makes it drop the handle there or give it back;
//! - `Collect`: `gc_core::collect()`.
//!
//! Every node carries a `#[gc(no_scan)]` payload (its id and a checksum of it) whose `Drop`
//! records the id in the program's own drop log, so tests running in parallel and automatic
//! collections at any time do not disturb the checks:
//!
//! - after every operation: every id in the drop log is one the model considers unreachable
//!   (from the root slots, the threads' handles and the elements moved out during a borrow),
//!   and none was dropped twice (**I1**);
//! - after every `Collect` (and during `BorrowMut`, with the guard held): the set of dropped
//!   ids is *exactly* the model's unreachable set, each dropped once; every rooted node's
//!   `Gc::root_count` equals the model's multiplicity; and a walk from every root (through
//!   `GcSlot::load` and the cells, or the held guard) finds exactly the model's reachable
//!   nodes, each with its id and checksum intact and with exactly the model's edges (**I1**,
//!   **I2**: nothing reachable at a cycle's start was swept);
//! - at the end of a program, with every handle dropped and every thread joined, one
//!   `collect()` drops every node of the program exactly once.
//!
//! The second test runs the same programs while another thread calls `collect()` in a loop,
//! so that cycles start and end in the middle of the program's operations.
//!
//! Each test runs `PROPTEST_CASES` cases (default 256 for the first, half of it for the
//! second; under Miri 6 and 3, programs of at most 40 operations). The long version:
//!
//! ```text
//! PROPTEST_CASES=10000 cargo test --release --test model
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use gc_core::{Gc, GcCell, GcSlot, Trace};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

// ---------------------------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------------------------

fn checksum(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xC0FF_EE00_D15E_A5E5
}

/// A program's drop log: the ids of its nodes in the order their payloads were dropped.
#[derive(Default)]
struct DropLog {
    dropped: Mutex<Vec<u64>>,
}

/// Recorded in the log instead of an id when a payload is dropped with a wrong checksum.
const CORRUPT: u64 = u64::MAX;

impl DropLog {
    fn snapshot(&self) -> Vec<u64> {
        self.dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

#[derive(Trace)]
#[gc(no_scan)]
struct Payload {
    id: u64,
    check: u64,
    log: Arc<DropLog>,
}

impl Drop for Payload {
    fn drop(&mut self) {
        let id = if self.check == checksum(self.id) {
            self.id
        } else {
            CORRUPT
        };
        self.log
            .dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id);
    }
}

#[derive(Trace)]
struct Node {
    payload: Payload,
    slots: [GcSlot<Node>; 2],
    cell: GcCell<Vec<Gc<Node>>>,
}

impl Node {
    fn id(&self) -> u64 {
        self.payload.id
    }

    fn verify(&self, log: &Arc<DropLog>) -> u64 {
        let id = self.payload.id;
        assert_eq!(
            self.payload.check,
            checksum(id),
            "node {id}: corrupted checksum"
        );
        assert!(
            Arc::ptr_eq(&self.payload.log, log),
            "node {id}: not this program's node"
        );
        id
    }
}

// ---------------------------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------------------------

/// Where `Link` puts its edge.
#[derive(Clone, Copy, Debug)]
enum Edge {
    /// `GcSlot::store` into slot 0 or 1.
    Store(usize),
    /// `GcSlot::swap` into slot 0 or 1; the old target becomes a new root.
    Swap(usize),
    /// A push into the cell.
    Push,
}

/// What `Unlink` cuts.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// `GcSlot::store(None)` on slot 0 or 1.
    Slot(usize),
    /// `borrow_mut().pop()`, dropping the element.
    Pop,
    /// `GcCell::take()`, dropping the content.
    Clear,
}

/// Root slots and threads are chosen by `Index` among the live ones (an operation on nothing
/// is skipped), so that shrinking keeps programs meaningful.
#[derive(Clone, Debug)]
enum Op {
    Alloc { link: Option<Index> },
    Link { from: Index, to: Index, edge: Edge },
    Unlink { from: Index, cut: Cut },
    Clone(Index),
    DropRoot(Index),
    BorrowMut { at: Index, push: Index },
    MoveToThread { root: Index, hold: bool },
    JoinThread { thread: Index, give_back: bool },
    Collect,
}

fn op() -> impl Strategy<Value = Op> {
    let slot = 0..2usize;
    let edge = prop_oneof![
        3 => slot.clone().prop_map(Edge::Store),
        1 => slot.clone().prop_map(Edge::Swap),
        3 => Just(Edge::Push),
    ];
    let cut = prop_oneof![
        2 => slot.prop_map(Cut::Slot),
        2 => Just(Cut::Pop),
        1 => Just(Cut::Clear),
    ];
    prop_oneof![
        6 => proptest::option::of(any::<Index>()).prop_map(|link| Op::Alloc { link }),
        8 => (any::<Index>(), any::<Index>(), edge)
            .prop_map(|(from, to, edge)| Op::Link { from, to, edge }),
        3 => (any::<Index>(), cut).prop_map(|(from, cut)| Op::Unlink { from, cut }),
        2 => any::<Index>().prop_map(Op::Clone),
        5 => any::<Index>().prop_map(Op::DropRoot),
        1 => (any::<Index>(), any::<Index>()).prop_map(|(at, push)| Op::BorrowMut { at, push }),
        1 => (any::<Index>(), any::<bool>())
            .prop_map(|(root, hold)| Op::MoveToThread { root, hold }),
        1 => (any::<Index>(), any::<bool>())
            .prop_map(|(thread, give_back)| Op::JoinThread { thread, give_back }),
        2 => Just(Op::Collect),
    ]
}

// ---------------------------------------------------------------------------------------------
// The harness: gc-core and the model side by side
// ---------------------------------------------------------------------------------------------

/// A thread holding one handle until told to drop it (`false`) or give it back (`true`).
struct Holder {
    release: mpsc::Sender<bool>,
    join: JoinHandle<Option<Gc<Node>>>,
}

struct Harness {
    log: Arc<DropLog>,
    next_id: u64,
    // gc-core
    roots: Vec<Option<Gc<Node>>>,
    threads: Vec<Option<Holder>>,
    // the model, by id
    m_roots: Vec<Option<u64>>,
    m_threads: Vec<Option<u64>>,
    m_slots: Vec<[Option<u64>; 2]>,
    m_cell: Vec<Vec<u64>>,
    // drops seen so far
    seen: usize,
    dropped: BTreeSet<u64>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            log: Arc::new(DropLog::default()),
            next_id: 0,
            roots: Vec::new(),
            threads: Vec::new(),
            m_roots: Vec::new(),
            m_threads: Vec::new(),
            m_slots: Vec::new(),
            m_cell: Vec::new(),
            seen: 0,
            dropped: BTreeSet::new(),
        }
    }

    /// The live entry of `v` that `ix` designates.
    fn pick<T>(v: &[Option<T>], ix: &Index) -> Option<usize> {
        let live: Vec<usize> = (0..v.len()).filter(|&i| v[i].is_some()).collect();
        (!live.is_empty()).then(|| live[ix.index(live.len())])
    }

    fn root(&self, i: usize) -> &Gc<Node> {
        self.roots[i].as_ref().expect("a live root slot")
    }

    fn add_root(&mut self, g: Gc<Node>) {
        let id = g.verify(&self.log);
        self.roots.push(Some(g));
        self.m_roots.push(Some(id));
    }

    fn run(&mut self, op: &Op) {
        match op {
            Op::Alloc { link } => {
                let id = self.next_id;
                self.next_id += 1;
                let target = link
                    .as_ref()
                    .and_then(|ix| Self::pick(&self.roots, ix))
                    .map(|i| self.root(i).clone());
                let t_id = target.as_ref().map(|t| t.id());
                let node = Gc::new(Node {
                    payload: Payload {
                        id,
                        check: checksum(id),
                        log: self.log.clone(),
                    },
                    slots: [GcSlot::new(target.clone()), GcSlot::new(None)],
                    cell: GcCell::new(target.into_iter().collect()),
                });
                self.m_slots.push([t_id, None]);
                self.m_cell.push(t_id.into_iter().collect());
                self.add_root(node);
            }
            Op::Link { from, to, edge } => {
                let (Some(a), Some(b)) =
                    (Self::pick(&self.roots, from), Self::pick(&self.roots, to))
                else {
                    return;
                };
                let (a, b) = (self.root(a).clone(), self.root(b).clone());
                let (ia, ib) = (a.id(), b.id());
                match *edge {
                    Edge::Store(k) => {
                        a.slots[k].store(Some(b));
                        self.m_slots[ia as usize][k] = Some(ib);
                    }
                    Edge::Swap(k) => {
                        let old = a.slots[k].swap(Some(b));
                        let m_old = self.m_slots[ia as usize][k].replace(ib);
                        assert_eq!(old.as_ref().map(|g| g.id()), m_old, "swap of {ia}.{k}");
                        if let Some(old) = old {
                            self.add_root(old);
                        }
                    }
                    Edge::Push => {
                        a.cell.borrow_mut().push(b);
                        self.m_cell[ia as usize].push(ib);
                    }
                }
            }
            Op::Unlink { from, cut } => {
                let Some(a) = Self::pick(&self.roots, from) else {
                    return;
                };
                let a = self.root(a).clone();
                let ia = a.id() as usize;
                match *cut {
                    Cut::Slot(k) => {
                        a.slots[k].store(None);
                        self.m_slots[ia][k] = None;
                    }
                    Cut::Pop => {
                        let popped = a.cell.borrow_mut().pop();
                        assert_eq!(popped.map(|g| g.id()), self.m_cell[ia].pop());
                    }
                    Cut::Clear => {
                        let content = a.cell.take();
                        let ids: Vec<u64> = content.iter().map(|g| g.id()).collect();
                        assert_eq!(ids, std::mem::take(&mut self.m_cell[ia]));
                    }
                }
            }
            Op::Clone(ix) => {
                if let Some(i) = Self::pick(&self.roots, ix) {
                    let g = self.root(i).clone();
                    self.add_root(g);
                }
            }
            Op::DropRoot(ix) => {
                if let Some(i) = Self::pick(&self.roots, ix) {
                    self.roots[i] = None;
                    self.m_roots[i] = None;
                }
            }
            Op::BorrowMut { at, push } => {
                let (Some(a), Some(b)) =
                    (Self::pick(&self.roots, at), Self::pick(&self.roots, push))
                else {
                    return;
                };
                let (a, b) = (self.root(a).clone(), self.root(b).clone());
                let (ia, ib) = (a.id(), b.id());
                let mut guard = a.cell.borrow_mut();
                // Moved out during the borrow: a rooted handle, kept as a root.
                if let Some(out) = guard.pop() {
                    assert_eq!(Some(out.id()), self.m_cell[ia as usize].pop());
                    self.add_root(out);
                }
                guard.push(b);
                self.m_cell[ia as usize].push(ib);
                gc_core::collect();
                self.check_exact(Some((ia, &guard[..])));
                drop(guard);
            }
            Op::MoveToThread { root, hold } => {
                let Some(i) = Self::pick(&self.roots, root) else {
                    return;
                };
                let g = self.roots[i].take().expect("a live root slot");
                let id = self.m_roots[i].take().expect("a live model root");
                let (log, hold) = (self.log.clone(), *hold);
                let (release, wait) = mpsc::channel::<bool>();
                let (ready_tx, ready) = mpsc::channel::<()>();
                let join = thread::spawn(move || {
                    // Use the handle here: deref, clone, loads (operations on this thread's
                    // cache). Every handle made here but `g` is gone before `ready`.
                    assert_eq!(g.verify(&log), id);
                    assert!(Gc::root_count(&g) >= 1);
                    let again = g.clone();
                    for s in &again.slots {
                        if let Some(t) = s.load() {
                            t.verify(&log);
                        }
                    }
                    for k in again.cell.borrow().iter() {
                        k.verify(&log);
                    }
                    drop(again);
                    if !hold {
                        drop(g);
                        return None;
                    }
                    ready_tx.send(()).expect("the test is waiting");
                    // Told to give it back, or to drop it here (also if the test is gone).
                    match wait.recv() {
                        Ok(true) => Some(g),
                        _ => None,
                    }
                });
                if hold {
                    ready
                        .recv_timeout(Duration::from_secs(60))
                        .expect("the holder thread failed");
                    self.threads.push(Some(Holder { release, join }));
                    self.m_threads.push(Some(id));
                } else {
                    let back = join.join().expect("the thread failed");
                    assert!(back.is_none());
                }
            }
            Op::JoinThread { thread, give_back } => {
                let Some(k) = Self::pick(&self.threads, thread) else {
                    return;
                };
                let h = self.threads[k].take().expect("a live thread");
                let id = self.m_threads[k].take().expect("a live model thread");
                h.release.send(*give_back).expect("the holder is waiting");
                let back = h.join.join().expect("the holder thread failed");
                assert_eq!(back.is_some(), *give_back);
                if let Some(g) = back {
                    assert_eq!(g.id(), id);
                    self.add_root(g);
                }
            }
            Op::Collect => {
                gc_core::collect();
                self.check_exact(None);
            }
        }
        self.check_safe();
    }

    /// The model's reachable set from the given root ids.
    fn reach(&self, roots: impl IntoIterator<Item = u64>) -> BTreeSet<u64> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<u64> = roots.into_iter().collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                stack.extend(self.m_slots[id as usize].iter().flatten());
                stack.extend(&self.m_cell[id as usize]);
            }
        }
        seen
    }

    fn model_roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.m_roots
            .iter()
            .chain(&self.m_threads)
            .flatten()
            .copied()
    }

    /// Reads the new entries of the drop log: each is a node of this program, dropped for the
    /// first time, that the model considers unreachable now (unreachability is permanent).
    fn check_safe(&mut self) {
        let log = self.log.snapshot();
        if log.len() == self.seen {
            return;
        }
        let reachable = self.reach(self.model_roots());
        for &id in &log[self.seen..] {
            assert_ne!(id, CORRUPT, "a node was dropped with a corrupted checksum");
            assert!(id < self.next_id, "dropped id {id} was never allocated");
            assert!(
                !reachable.contains(&id),
                "node {id} was dropped while reachable (I1)"
            );
            assert!(self.dropped.insert(id), "node {id} was dropped twice (I1)");
        }
        self.seen = log.len();
    }

    /// Right after a `collect()`: the dropped set is exactly the unreachable set, root counts
    /// are the model's, and the real graph reachable from the root slots is the model's.
    /// `borrowed` is the node whose cell this thread holds mutably, and the guard's content.
    fn check_exact(&mut self, borrowed: Option<(u64, &[Gc<Node>])>) {
        self.check_safe();
        let reachable = self.reach(self.model_roots());
        let unreachable: BTreeSet<u64> = (0..self.next_id)
            .filter(|id| !reachable.contains(id))
            .collect();
        if self.dropped != unreachable {
            let missing: Vec<_> = unreachable.difference(&self.dropped).collect();
            let extra: Vec<_> = self.dropped.difference(&unreachable).collect();
            panic!(
                "after collect(): unreachable but not dropped: {missing:?}; dropped but \
                 reachable: {extra:?} (I1/I2)"
            );
        }

        // Root counts: one per handle in a root slot or a thread, plus (while a cell is held)
        // one per handle in the guard's content.
        let mut mult: BTreeMap<u64, u32> = BTreeMap::new();
        for id in self.model_roots() {
            *mult.entry(id).or_default() += 1;
        }
        if let Some((_, content)) = borrowed {
            for g in content {
                *mult.entry(g.id()).or_default() += 1;
            }
        }
        for (i, g) in self.roots.iter().enumerate() {
            if let Some(g) = g {
                let id = g.verify(&self.log);
                assert_eq!(Some(id), self.m_roots[i], "root slot {i}");
                // The BorrowMut operation holds one more handle to the borrowed node.
                let extra = u32::from(borrowed.is_some_and(|(b, _)| b == id));
                assert_eq!(
                    Gc::root_count(g),
                    mult[&id] + extra,
                    "root count of node {id}"
                );
            }
        }

        // Walk the real graph from the root slots (and the guard).
        let main_reachable = self.reach(
            self.m_roots.iter().flatten().copied().chain(
                borrowed
                    .into_iter()
                    .flat_map(|(_, c)| c.iter().map(|g| g.id())),
            ),
        );
        let mut visited = BTreeSet::new();
        let mut stack: Vec<Gc<Node>> = self.roots.iter().flatten().cloned().collect();
        if let Some((_, content)) = borrowed {
            stack.extend(content.iter().cloned());
        }
        while let Some(n) = stack.pop() {
            let id = n.verify(&self.log);
            assert!(!self.dropped.contains(&id), "walked into dropped node {id}");
            if !visited.insert(id) {
                continue;
            }
            for (k, s) in n.slots.iter().enumerate() {
                let t = s.load();
                assert_eq!(
                    t.as_ref().map(|g| g.verify(&self.log)),
                    self.m_slots[id as usize][k],
                    "edge {id}.slot{k}"
                );
                stack.extend(t);
            }
            let ids: Vec<u64> = match borrowed {
                Some((b, content)) if b == id => {
                    stack.extend(content.iter().cloned());
                    content.iter().map(|g| g.id()).collect()
                }
                _ => {
                    let c = n.cell.borrow();
                    stack.extend(c.iter().cloned());
                    c.iter().map(|g| g.id()).collect()
                }
            };
            assert_eq!(ids, self.m_cell[id as usize], "cell of {id}");
        }
        assert_eq!(visited, main_reachable, "the walk's nodes are the model's");
    }

    /// Drops every handle and joins every thread; then one `collect()` drops every node.
    fn finish(mut self) {
        for h in self.threads.drain(..).flatten() {
            h.release.send(false).expect("the holder is waiting");
            assert!(h.join.join().expect("the holder thread failed").is_none());
        }
        self.m_threads.clear();
        self.roots.clear();
        self.m_roots.clear();
        gc_core::collect();
        self.check_exact(None);
        assert_eq!(self.dropped.len() as u64, self.next_id);
    }
}

fn run_program(ops: &[Op]) {
    let mut h = Harness::new();
    for op in ops {
        h.run(op);
    }
    h.finish();
}

/// Operations per program (fewer under Miri, which interprets every one of them).
const MAX_OPS: usize = if cfg!(miri) { 40 } else { 250 };

/// Cases of the first test: `PROPTEST_CASES`, else 256, or 6 under Miri (about 10 s of
/// interpretation each). Miri hides the host's environment from the program unless told
/// otherwise (`-Zmiri-env-forward=PROPTEST_CASES`), so the Miri default must be small by itself.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(miri) { 6 } else { 256 })
}

/// Shrinking steps after a failure: unbounded, except under Miri, where each step reruns a
/// program (seconds of interpretation) and a failure must still be reported in bounded time.
fn max_shrink_iters() -> u32 {
    if cfg!(miri) {
        32
    } else {
        Config::default().max_shrink_iters
    }
}

proptest! {
    #![proptest_config(Config {
        // Regressions are reported in the failure message; no files are written next to the
        // test sources.
        failure_persistence: None,
        max_shrink_iters: max_shrink_iters(),
        ..Config::with_cases(cases())
    })]

    /// Random programs: gc-core drops exactly what the model says is unreachable.
    #[test]
    fn collector_agrees_with_the_model(ops in prop::collection::vec(op(), 1..=MAX_OPS)) {
        run_program(&ops);
    }
}

proptest! {
    #![proptest_config(Config {
        failure_persistence: None,
        max_shrink_iters: max_shrink_iters(),
        ..Config::with_cases(cases().div_ceil(2))
    })]

    /// The same, while another thread runs cycles back to back: cycles begin and end in the
    /// middle of the program's operations.
    #[test]
    fn collector_agrees_with_the_model_under_concurrent_cycles(
        ops in prop::collection::vec(op(), 1..=MAX_OPS),
    ) {
        let stop = Arc::new(AtomicBool::new(false));
        let collector = {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    gc_core::collect();
                    thread::sleep(Duration::from_micros(50));
                }
            })
        };
        let result = std::panic::catch_unwind(|| run_program(&ops));
        stop.store(true, Ordering::Relaxed);
        collector.join().expect("the collecting thread failed");
        if let Err(e) = result {
            std::panic::resume_unwind(e);
        }
    }
}
