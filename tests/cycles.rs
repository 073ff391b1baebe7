//! Cycle collection: what `collect()` frees and what it keeps.
//!
//! - Small cycles (two nodes through `GcSlot`, a self-loop, three nodes through `GcCell`s) and a
//!   200,000-node ring are freed once no root reaches them, and kept intact while one does.
//! - A random graph of 20,000 nodes (fixed-seed xorshift) with random `GcSlot` and
//!   `GcCell<Vec<Gc>>` edges and a random subset of roots: after `collect()` exactly the part
//!   no root reaches has been dropped, each node once (a per-test drop log by id), and every
//!   reachable node is intact (checksum) with the edges the model says it has. Then edges and
//!   roots are cut and the check repeats.
//! - A 10-million-node chain is freed, and another is marked while alive and then walked, with
//!   no recursion anywhere (no stack overflow).
//!
//! Invariants (DESIGN §6): **I1** — nothing reachable is dropped or corrupted, nothing is
//! dropped twice; **I3** — a garbage cycle that is unreachable when `collect()` is called has
//! been dropped when it returns (every check below uses a single `collect()`).
//!
//! Tests of this binary run in parallel and share the collector: every count is per test.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{node, DropLog, Node};
use gc_core::{Gc, GcSlot, Trace};
use gc_core_workspace::XorShift64Star;

// ---------------------------------------------------------------------------------------------
// Small cycles (I3)
// ---------------------------------------------------------------------------------------------

#[test]
fn two_node_cycle_through_slots() {
    let log = DropLog::new(2);
    let a = node(&log, 0);
    let b = node(&log, 1);
    a.next.store(Some(b.clone()));
    b.next.store(Some(a.clone()));
    assert_eq!(Gc::root_count(&a), 1, "edges are not roots");
    drop(b);
    gc_core::collect();
    assert_eq!(log.total(), 0, "reachable from a");
    let b = a.next.load().unwrap();
    assert_eq!(b.id(), 1);
    assert!(Gc::ptr_eq(&b.next.load().unwrap(), &a));
    drop((a, b));
    gc_core::collect();
    log.assert_exactly(|_| true, "after one collect");
    gc_core::collect();
    log.assert_exactly(|_| true, "still once after another");
}

#[test]
fn self_loops() {
    let log = DropLog::new(3);
    let a = node(&log, 0);
    a.next.store(Some(a.clone()));
    let b = node(&log, 1);
    b.kids.borrow_mut().push(b.clone());
    let c = node(&log, 2);
    c.next.store(Some(c.clone()));
    c.kids.borrow_mut().extend([c.clone(), c.clone()]);
    gc_core::collect();
    assert_eq!(log.total(), 0);
    assert!(Gc::ptr_eq(&a.next.load().unwrap(), &a));
    assert!(Gc::ptr_eq(&b.kids.borrow()[0], &b));
    drop((a, b));
    gc_core::collect();
    log.assert_exactly(|id| id < 2, "two self-loops dropped");
    drop(c);
    gc_core::collect();
    log.assert_exactly(|_| true, "all three");
}

#[test]
fn cycle_through_cells_and_slots() {
    let log = DropLog::new(3);
    let n: Vec<Gc<Node>> = (0..3).map(|i| node(&log, i)).collect();
    n[0].kids.borrow_mut().push(n[1].clone());
    n[1].next.store(Some(n[2].clone()));
    *n[2].kids.borrow_mut() = vec![n[0].clone(), n[1].clone()];
    let keep = n[2].clone();
    drop(n);
    gc_core::collect();
    assert_eq!(log.total(), 0);
    let zero = keep.kids.borrow()[0].clone();
    assert_eq!(zero.id(), 0);
    assert_eq!(zero.kids.borrow()[0].next.load().unwrap().id(), 2);
    drop((keep, zero));
    gc_core::collect();
    log.assert_exactly(|_| true, "the 3-cycle");
}

/// I3: a cycle made garbage before `collect()` is called is dropped when that call returns,
/// however many cycles came before, and whatever else is live.
#[test]
fn garbage_before_collect_is_reclaimed_by_that_collect() {
    const ROUNDS: u64 = 50;
    let log = DropLog::new(ROUNDS * 4);
    let live = node(&log, ROUNDS * 4 - 1);
    for r in 0..ROUNDS {
        let ids = [r * 4, r * 4 + 1, r * 4 + 2];
        let ns: Vec<Gc<Node>> = ids.iter().map(|&i| node(&log, i)).collect();
        ns[0].next.store(Some(ns[1].clone()));
        ns[1].kids.borrow_mut().push(ns[2].clone());
        ns[2].next.store(Some(ns[0].clone()));
        // Also point the live node at the cycle, then away again.
        live.next.store(Some(ns[0].clone()));
        live.next.store(None);
        drop(ns);
        gc_core::collect();
        for i in 0..ROUNDS * 4 {
            let want = u32::from(i < r * 4 + 3 && i % 4 != 3);
            assert_eq!(log.count(i), want, "round {r}: node {i}");
        }
    }
    assert_eq!(live.id(), ROUNDS * 4 - 1);
}

#[test]
fn ring_of_200k_nodes() {
    const N: u64 = 200_000;
    let log = DropLog::new(N);
    let nodes: Vec<Gc<Node>> = (0..N).map(|id| node(&log, id)).collect();
    for (i, n) in nodes.iter().enumerate() {
        n.next.store(Some(nodes[(i + 1) % nodes.len()].clone()));
    }
    let start = nodes[(N / 2) as usize].clone();
    drop(nodes);
    gc_core::collect();
    assert_eq!(log.total(), 0, "the ring is reachable from one root");
    // Walk once around.
    let mut cur = start.clone();
    for k in 1..=N {
        let next = cur.next.load().expect("ring edge");
        assert_eq!(next.id(), (N / 2 + k) % N);
        cur = next;
    }
    assert!(Gc::ptr_eq(&cur, &start));
    drop((cur, start));
    gc_core::collect();
    log.assert_exactly(|_| true, "the whole ring");
}

// ---------------------------------------------------------------------------------------------
// A random graph (I1 + I3, exactly)
// ---------------------------------------------------------------------------------------------

/// The test's model of the graph: node i's slot target and cell content (by id).
struct Model {
    next: Vec<Option<u64>>,
    kids: Vec<Vec<u64>>,
}

impl Model {
    /// The set of reachable ids, indexed by id.
    fn reachable(&self, roots: &[u64]) -> Vec<bool> {
        let mut seen = vec![false; self.next.len()];
        let mut stack: Vec<u64> = roots.to_vec();
        while let Some(id) = stack.pop() {
            let i = id as usize;
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            stack.extend(self.next[i]);
            stack.extend(self.kids[i].iter().copied());
        }
        seen
    }

    /// Walks the real graph from the roots (iteratively), checking every node's checksum and
    /// edges against the model; returns the set of visited ids.
    fn verify_walk(&self, roots: &[Gc<Node>]) -> Vec<bool> {
        let mut seen = vec![false; self.next.len()];
        let mut stack: Vec<Gc<Node>> = roots.to_vec();
        while let Some(n) = stack.pop() {
            let id = n.id();
            let i = id as usize;
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            let next = n.next.load();
            assert_eq!(next.as_ref().map(|m| m.id()), self.next[i], "slot of {id}");
            let kids = n.kids.borrow();
            let ids: Vec<u64> = kids.iter().map(|k| k.id()).collect();
            assert_eq!(ids, self.kids[i], "cell of {id}");
            stack.extend(kids.iter().cloned());
            stack.extend(next);
        }
        seen
    }
}

#[test]
fn random_graph_exactly_the_unreachable_part_is_dropped() {
    const N: u64 = 20_000;
    let mut rng = XorShift64Star::new(0x5EED_0FC7_C1E5);
    let log = DropLog::new(N);
    let nodes: Vec<Gc<Node>> = (0..N).map(|id| node(&log, id)).collect();
    let mut model = Model {
        next: vec![None; N as usize],
        kids: vec![Vec::new(); N as usize],
    };
    for (i, n) in nodes.iter().enumerate() {
        if rng.below(100) < 45 {
            let j = rng.below(N);
            n.next.store(Some(nodes[j as usize].clone()));
            model.next[i] = Some(j);
        }
        let k = match rng.below(100) {
            0..=59 => 0,
            60..=89 => 1,
            _ => 3,
        };
        let mut kids = n.kids.borrow_mut();
        for _ in 0..k {
            let j = rng.below(N);
            kids.push(nodes[j as usize].clone());
            model.kids[i].push(j);
        }
    }
    let mut root_ids: Vec<u64> = (0..N).filter(|_| rng.below(1000) < 8).collect();
    let mut roots: Vec<Gc<Node>> = root_ids
        .iter()
        .map(|&id| nodes[id as usize].clone())
        .collect();
    drop(nodes);

    let reach = model.reachable(&root_ids);
    let live = reach.iter().filter(|&&r| r).count() as u64;
    assert!(
        live > N / 10 && live < N * 9 / 10,
        "the graph should be partly reachable: {live} of {N}"
    );

    gc_core::collect();
    log.assert_exactly(|id| !reach[id as usize], "round 1");
    assert_eq!(
        model.verify_walk(&roots),
        reach,
        "round 1: the walk sees the model"
    );

    // Round 2: cut edges and drop half of the roots.
    let mut cut = 0;
    for root in roots.iter().step_by(3) {
        let id = root.id();
        if root.next.take().is_some() {
            model.next[id as usize] = None;
            cut += 1;
        }
    }
    let mut stack: Vec<Gc<Node>> = roots.clone();
    let mut seen = HashSet::new();
    while let Some(n) = stack.pop() {
        let id = n.id();
        if !seen.insert(id) {
            continue;
        }
        if rng.below(4) == 0 {
            let mut kids = n.kids.borrow_mut();
            if !kids.is_empty() {
                let k = rng.below(kids.len() as u64) as usize;
                kids.remove(k);
                model.kids[id as usize].remove(k);
                cut += 1;
            }
        }
        stack.extend(n.kids.borrow().iter().cloned());
        stack.extend(n.next.load());
    }
    assert!(cut > 100, "round 2 cuts edges: {cut}");
    let half = roots.len() / 2;
    roots.truncate(half);
    root_ids.truncate(half);
    let reach2 = model.reachable(&root_ids);
    let live2 = reach2.iter().filter(|&&r| r).count() as u64;
    assert!(
        live2 < live && live2 > 0,
        "round 2 frees more: {live2} of {live}"
    );
    drop(stack);

    gc_core::collect();
    log.assert_exactly(|id| !reach2[id as usize], "round 2");
    assert_eq!(
        model.verify_walk(&roots),
        reach2,
        "round 2: the walk sees the model"
    );

    drop(roots);
    gc_core::collect();
    log.assert_exactly(|_| true, "everything, once");
}

// ---------------------------------------------------------------------------------------------
// Ten million nodes: no recursion anywhere
// ---------------------------------------------------------------------------------------------

const CHAIN: u64 = 10_000_000;

static CHAIN_DROPS: AtomicUsize = AtomicUsize::new(0);

/// Counts the drops of [`Link`]s (only `dead_chain_of_ten_million` makes them).
#[derive(Trace)]
#[gc(no_scan)]
struct LinkDrop;

impl Drop for LinkDrop {
    fn drop(&mut self) {
        CHAIN_DROPS.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct Link {
    next: GcSlot<Link>,
    drop: LinkDrop,
}

/// A chain link without drop glue, checked by id.
#[derive(Trace)]
struct Bead {
    id: u64,
    next: GcSlot<Bead>,
}

#[test]
fn dead_chain_of_ten_million() {
    let mut head: Option<Gc<Link>> = None;
    for _ in 0..CHAIN {
        head = Some(Gc::new(Link {
            next: GcSlot::new(head.take()),
            drop: LinkDrop,
        }));
    }
    assert_eq!(CHAIN_DROPS.load(Ordering::SeqCst), 0);
    drop(head);
    gc_core::collect();
    assert_eq!(CHAIN_DROPS.load(Ordering::SeqCst), CHAIN as usize);
}

#[test]
fn live_chain_of_ten_million_is_marked_then_walked() {
    let mut head: Option<Gc<Bead>> = None;
    for id in 0..CHAIN {
        head = Some(Gc::new(Bead {
            id,
            next: GcSlot::new(head.take()),
        }));
    }
    let head = head.unwrap();
    gc_core::collect();
    gc_core::collect();
    let mut expect = CHAIN;
    let mut cur = Some(head);
    while let Some(n) = cur {
        expect -= 1;
        assert_eq!(n.id, expect);
        cur = n.next.load();
    }
    assert_eq!(expect, 0, "the whole chain survived");
}
