//! Extra mark workers (`GcConfig::mark_workers = 3`: the collector thread and two helper
//! threads per cycle) on a big graph with concurrent mutators: exactly the unreachable part is
//! dropped.
//!
//! The graph: a complete binary tree of 2^20 - 1 nodes (node `i` has children `2i + 1` and
//! `2i + 2` through its `l` and `r` slots) plus random cross edges through each node's `x`
//! slot, some down the tree and some back up (cycles). A model keeps the same edges by index.
//!
//! Two mutator threads walk random paths from the root, checking every node they visit (its
//! checksum, and that its drop has not run), and make changes that leave the graph as the model
//! has it once they are done: they swap a fresh node into a slot of a node they own and swap
//! the old target back (so for a moment the old subtree hangs off a rooted handle only), and
//! run `compare_exchange` with the current value; they also allocate garbage, which starts
//! automatic cycles. In each round the mutators are paused (they hold no handle then), the test
//! cuts tree edges and adds cross edges (model too), resumes them, and calls `collect()` while
//! they run: afterwards every node the model cannot reach from the root has been dropped exactly
//! once and no node it can reach has been. The test also checks that the helper threads ran.
//!
//! A binary of its own, since `configure` is process-wide.

mod concurrent_support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_support as cs;
use gc_core::{Gc, GcConfig, GcSlot, Trace};
use gc_core_workspace::XorShift64Star;

const DEPTH: u32 = 20;
const N: usize = (1 << DEPTH) - 1;
const NONE: u32 = u32::MAX;
const MUTATORS: usize = 2;
const ROUNDS: usize = 3;

#[derive(Trace)]
struct TNode {
    counted: cs::Counted,
    /// A mutator's fresh node, not part of the graph.
    temp: bool,
    l: GcSlot<TNode>,
    r: GcSlot<TNode>,
    x: GcSlot<TNode>,
}

/// The tree index of a graph node, once it is found intact (`None` for a mutator's node).
/// Nodes are allocated from the last index to the first, so ids run the other way.
fn index_of(n: &TNode) -> Option<usize> {
    let id = n.counted.id() as usize;
    if n.temp {
        return None;
    }
    assert!(id < N, "a graph node with id {id}");
    Some(N - 1 - id)
}

fn tnode(log: &'static cs::Log, l: Option<Gc<TNode>>, r: Option<Gc<TNode>>) -> Gc<TNode> {
    new_node(log, false, l, r)
}

fn temp_node(log: &'static cs::Log) -> Gc<TNode> {
    new_node(log, true, None, None)
}

fn new_node(
    log: &'static cs::Log,
    temp: bool,
    l: Option<Gc<TNode>>,
    r: Option<Gc<TNode>>,
) -> Gc<TNode> {
    Gc::new(TNode {
        counted: cs::Counted::new(log),
        temp,
        l: GcSlot::new(l),
        r: GcSlot::new(r),
        x: GcSlot::new(None),
    })
}

/// The node at tree index `i`, following tree edges from the root (`None` if one is cut).
fn node_at(root: &Gc<TNode>, i: usize) -> Option<Gc<TNode>> {
    let path = i + 1;
    let bits = usize::BITS - 1 - path.leading_zeros();
    let mut cur = root.clone();
    for b in (0..bits).rev() {
        cur = if path >> b & 1 == 0 {
            cur.l.load()?
        } else {
            cur.r.load()?
        };
    }
    assert_eq!(index_of(&cur), Some(i), "tree edges lead to the wrong node");
    Some(cur)
}

/// The model: which tree edges are cut, and every node's cross edge.
struct Model {
    cut_l: Vec<bool>,
    cut_r: Vec<bool>,
    cross: Vec<u32>,
}

impl Model {
    fn reachable(&self) -> Vec<bool> {
        let mut seen = vec![false; N];
        let mut queue = VecDeque::from([0usize]);
        seen[0] = true;
        while let Some(i) = queue.pop_front() {
            let l = (!self.cut_l[i]).then_some(2 * i + 1);
            let r = (!self.cut_r[i]).then_some(2 * i + 2);
            let x = (self.cross[i] != NONE).then_some(self.cross[i] as usize);
            for j in [l, r, x].into_iter().flatten() {
                if j < N && !seen[j] {
                    seen[j] = true;
                    queue.push_back(j);
                }
            }
        }
        seen
    }
}

/// Builds the tree bottom-up (each node moved into its parent, no clone), with cross edges to
/// nodes built earlier that are not yet in a parent; then adds cross edges between random nodes
/// found from the root.
fn build(log: &'static cs::Log, rng: &mut XorShift64Star) -> (Gc<TNode>, Model) {
    let mut model = Model {
        cut_l: vec![false; N],
        cut_r: vec![false; N],
        cross: vec![NONE; N],
    };
    let mut built: Vec<Option<Gc<TNode>>> = (0..N).map(|_| None).collect();
    for i in (0..N).rev() {
        let child = |c: usize, built: &mut Vec<Option<Gc<TNode>>>| {
            (c < N).then(|| built[c].take().expect("children are built first"))
        };
        let l = child(2 * i + 1, &mut built);
        let r = child(2 * i + 2, &mut built);
        let n = tnode(log, l, r);
        // A node j > i is still free iff its parent has not been built: (j - 1) / 2 < i.
        if i > 0 && rng.below(4) == 0 {
            let hi = (2 * i).min(N - 1);
            if hi > i {
                let j = i + 1 + rng.below((hi - i) as u64) as usize;
                if let Some(t) = &built[j] {
                    n.x.store(Some(t.clone()));
                    model.cross[i] = j as u32;
                }
            }
        }
        built[i] = Some(n);
    }
    let root = built[0].take().expect("the root");
    drop(built);
    for _ in 0..20_000 {
        let (i, j) = (rng.below(N as u64) as usize, rng.below(N as u64) as usize);
        let (a, b) = (node_at(&root, i).unwrap(), node_at(&root, j).unwrap());
        a.x.store(Some(b));
        model.cross[i] = j as u32;
    }
    (root, model)
}

struct Ctl {
    pause: AtomicBool,
    paused: AtomicUsize,
    stop: AtomicBool,
}

/// A mutator: random walks from the root, and changes that undo themselves.
fn mutator(m: usize, root: Arc<Gc<TNode>>, ctl: Arc<Ctl>, temp: &'static cs::Log) -> (u64, u64) {
    let mut rng = XorShift64Star::new(0x3A11 + m as u64);
    let (mut visits, mut swaps) = (0u64, 0u64);
    while !ctl.stop.load(Ordering::SeqCst) {
        if ctl.pause.load(Ordering::SeqCst) {
            // No handle held here.
            ctl.paused.fetch_add(1, Ordering::SeqCst);
            while ctl.pause.load(Ordering::SeqCst) && !ctl.stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_micros(200));
            }
            ctl.paused.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let mut cur: Gc<TNode> = (*root).clone();
        for _ in 0..rng.below(40) {
            visits += 1;
            // Another mutator's fresh node, swapped in for a moment: a dead end.
            let Some(i) = index_of(&cur) else { break };
            if i % MUTATORS == m && rng.below(6) == 0 {
                let slot = match rng.below(3) {
                    0 => &cur.l,
                    1 => &cur.r,
                    _ => &cur.x,
                };
                if rng.below(3) == 0 {
                    let now = slot.load();
                    let r = slot.compare_exchange(now.as_ref(), now.clone());
                    assert!(r.is_ok(), "an owned slot changed under its owner");
                } else {
                    let tmp = temp_node(temp);
                    let old = slot.swap(Some(tmp.clone()));
                    if let Some(o) = &old {
                        assert!(index_of(o).is_some(), "a fresh node was left in a slot");
                    }
                    // Garbage meanwhile, so that cycles (and mark assists) keep coming.
                    for _ in 0..rng.below(8) {
                        let g = temp_node(temp);
                        g.x.store(Some(g.clone()));
                    }
                    let back = slot.swap(old).expect("the fresh node");
                    assert!(
                        Gc::ptr_eq(&back, &tmp),
                        "an owned slot changed under its owner"
                    );
                    swaps += 1;
                }
            }
            let next = match rng.below(8) {
                0..=2 => cur.l.load(),
                3..=5 => cur.r.load(),
                _ => cur.x.load(),
            };
            match next {
                Some(n) => cur = n,
                None => break,
            }
        }
    }
    (visits, swaps)
}

/// Runs `collect()` on another thread while watching for the mark worker threads; returns
/// whether one was seen.
fn collect_watching_workers() -> bool {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        gc_core::collect();
        let _ = tx.send(());
    });
    let deadline = Instant::now() + cs::HANG;
    let mut seen = false;
    loop {
        // Thread names are cut to 15 bytes: "gc-core mark worker" reads "gc-core mark wo".
        seen |= cs::thread_names().iter().any(|n| n == "gc-core mark wo");
        match rx.recv_timeout(Duration::from_millis(1)) {
            Ok(()) => return seen,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                assert!(Instant::now() < deadline, "collect() did not return");
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn three_mark_workers_drop_exactly_the_unreachable_part_of_a_million_node_graph() {
    let mut c = GcConfig::from_env();
    c.mark_workers = 3;
    c.background = true;
    gc_core::configure(c).expect("configure comes before any other use of gc-core");
    let start = Instant::now();
    let log = cs::Log::new(N);
    let temp = cs::Log::new(0);
    let mut rng = XorShift64Star::new(0x3_3A4C);
    let (root, mut model) = build(log, &mut rng);
    let built = start.elapsed();
    let root = Arc::new(root);
    let ctl = Arc::new(Ctl {
        pause: AtomicBool::new(true),
        paused: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let mutators: Vec<_> = (0..MUTATORS)
        .map(|m| {
            let (root, ctl) = (root.clone(), ctl.clone());
            thread::spawn(move || mutator(m, root, ctl, temp))
        })
        .collect();
    let mut workers_seen = false;
    for round in 0..ROUNDS {
        // Pause the mutators (they let go of every handle), then change the graph.
        ctl.pause.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + cs::HANG;
        while ctl.paused.load(Ordering::SeqCst) < MUTATORS {
            assert!(Instant::now() < deadline, "the mutators did not pause");
            assert!(
                !mutators.iter().any(|h| h.is_finished()),
                "a mutator failed"
            );
            thread::sleep(Duration::from_millis(1));
        }
        let mut cuts = 0;
        while cuts < 6 {
            let depth = 2 + rng.below(12) as u32;
            let i = (1usize << depth) - 1 + rng.below(1 << depth) as usize;
            let Some(n) = node_at(&root, i) else { continue };
            if rng.below(2) == 0 {
                n.l.store(None);
                model.cut_l[i] = true;
            } else {
                n.r.store(None);
                model.cut_r[i] = true;
            }
            cuts += 1;
        }
        for _ in 0..200 {
            let (i, j) = (rng.below(N as u64) as usize, rng.below(N as u64) as usize);
            if let (Some(a), Some(b)) = (node_at(&root, i), node_at(&root, j)) {
                a.x.store(Some(b));
                model.cross[i] = j as u32;
            }
        }
        ctl.pause.store(false, Ordering::SeqCst);

        // Collect while the mutators run, then compare with the model.
        workers_seen |= collect_watching_workers();
        let reachable = model.reachable();
        let wrong: Vec<(usize, bool, u8)> = (0..N)
            .filter_map(|i| {
                let drops = log.drops_of((N - 1 - i) as u64).expect("in the table");
                (drops != u8::from(!reachable[i])).then_some((i, reachable[i], drops))
            })
            .take(10)
            .collect();
        let live = reachable.iter().filter(|&&r| r).count();
        assert!(
            wrong.is_empty(),
            "round {round}: (index, reachable, drops) of nodes dropped wrongly: {wrong:?}"
        );
        println!(
            "round {round}: {live} of {N} nodes reachable, the other {} dropped",
            N - live
        );
    }
    ctl.stop.store(true, Ordering::SeqCst);
    let (mut visits, mut swaps) = (0, 0);
    for h in mutators {
        let (v, s) = cs::join(h, "a mutator");
        visits += v;
        swaps += s;
    }
    assert!(
        workers_seen,
        "no \"gc-core mark worker\" thread was seen while the collector marked"
    );
    drop(root);
    cs::collect_or_fail();
    log.assert_all_dropped_once("graph");
    temp.assert_all_dropped_once("mutators' nodes");
    let s = gc_core::stats();
    println!(
        "built in {built:.2?}; {visits} visits, {swaps} swaps; {} cycles, {} mark assists; \
         total {:.2?}",
        s.cycles,
        s.assists.count,
        start.elapsed()
    );
}
