//! loom models of the collector's concurrency protocol (DESIGN §6), run against the real code:
//! under `--cfg loom`, `gc_core::sync` swaps every atomic, lock, fence, thread and thread-local of
//! the crate for loom's, and each model execution gets a fresh collector and heap.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p gc-core --test loom
//! ```
//!
//! | model | races | catches the seeded mutant |
//! |---|---|---|
//! | [`a_slot_store_races_mark_setup`] | `GcSlot::store` (and the allocation before it) against mark setup | `barrier` |
//! | [`b_slot_load_races_mark_termination_and_sweep`] | `GcSlot::load` against the termination handshake, the grace period and the sweep | `handshake` |
//! | [`c_rooted_drop_races_root_enumeration`] | the drop barrier of a rooted handle against root enumeration | `barrier` |
//! | [`d_handle_sent_to_another_thread_during_a_cycle`] | a rooted handle moved to a new thread, which loads through it and drops it, during a cycle | `barrier` |
//!
//! Mutants (`--cfg gc_core_mutant="…"`): `barrier` makes `gc::barrier::shade` do nothing;
//! `handshake` skips mark termination's handshake. Built with a mutant, the models that must
//! catch it expect the failure (`should_panic`) and the others are not run; `.ci/run` runs both
//! builds.
//!
//! What a failure looks like: every object carries a [`Canary`] whose drop sets a flag. A model
//! fails when an object it can still reach was dropped (swept: invariant I1), or, in model (c),
//! when an object reachable at mark setup was dropped by that same cycle (its mark bit was not
//! set: invariant I2, snapshot-at-the-beginning), or when loom itself reports a data race or
//! a causality violation.
#![cfg(loom)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gc_core::gc::loom_hooks::Cycle;
use gc_core::{Gc, GcSlot, Trace};
use loom::thread;

/// Sets its flag when dropped: the drop of a dead object, run by the sweep.
#[derive(Trace)]
#[gc(no_scan)]
struct Canary(Arc<AtomicBool>);

impl Drop for Canary {
    fn drop(&mut self) {
        assert!(
            !self.0.swap(true, Ordering::Relaxed),
            "an object was dropped twice"
        );
    }
}

impl Canary {
    fn new() -> Canary {
        Canary(Arc::new(AtomicBool::new(false)))
    }

    /// Panics if the object has been dropped.
    fn alive(&self) {
        assert!(
            !self.0.load(Ordering::Relaxed),
            "a reachable object was dropped"
        );
    }
}

/// A scan object: two edges.
#[derive(Trace)]
struct Node {
    canary: Canary,
    next: GcSlot<Node>,
    leaf: GcSlot<Leaf>,
}

/// A noscan object (it needs a drop, so it is not tiny): another span class than `Node`'s.
#[derive(Trace)]
struct Leaf {
    canary: Canary,
}

fn node() -> Gc<Node> {
    Gc::new(Node {
        canary: Canary::new(),
        next: GcSlot::new(None),
        leaf: GcSlot::new(None),
    })
}

fn leaf() -> Gc<Leaf> {
    Gc::new(Leaf {
        canary: Canary::new(),
    })
}

/// Runs `f` under loom, exhaustively up to `LOOM_MAX_PREEMPTIONS` preemptions (2 if unset), and
/// prints how many executions that took.
fn model(name: &'static str, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    // A whole collection cycle is a few thousand loom operations, far past loom's default
    // bound on one execution's length (which is there to catch spin loops).
    builder.max_branches = 100_000;
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(2);
    }
    let executions = Arc::new(AtomicUsize::new(0));
    let count = executions.clone();
    let start = Instant::now();
    builder.check(move || {
        count.fetch_add(1, Ordering::Relaxed);
        f()
    });
    eprintln!(
        "loom model {name}: {} executions in {:.1?} (preemption bound {:?})",
        executions.load(Ordering::Relaxed),
        start.elapsed(),
        builder.preemption_bound,
    );
}

/// (a) A store into a slot of an object allocated during marking races mark setup.
///
/// `a` is allocated by the mutator, possibly after mark setup: then it is born black and never
/// traced, so `c`, whose only root moves into `a.leaf`, survives only if the store's barrier
/// shades it (when root enumeration reads `c` after the store) or if enumeration reads it
/// before. A store whose operation began before `Marking` was published is waited for by mark
/// setup's handshake.
#[test]
#[cfg_attr(
    gc_core_mutant = "barrier",
    should_panic(expected = "a reachable object was dropped")
)]
#[cfg_attr(
    gc_core_mutant = "handshake",
    ignore = "not this model's mutant (the model passes with it)"
)]
fn a_slot_store_races_mark_setup() {
    model("a (store vs mark setup)", || {
        // A leaf, allocated before the cycle, in a span the mutator will not allocate from.
        let c = leaf();
        let mutator = thread::spawn(move || {
            let a = node();
            a.leaf.store(Some(c));
            a
        });
        gc_core::collect();
        let a = mutator.join().unwrap();
        a.canary.alive();
        a.leaf.load().unwrap().canary.alive();
    });
}

/// (b) A load from a slot races mark termination and the sweep.
///
/// `a → b → d`, with `a` rooted. The mutator loads `b` (shading it: a mark bit, then a push
/// onto the grey queue) and then `d` through it, while the collector drains, runs its
/// termination handshakes, the grace period and the sweep. A shade still in flight when the
/// collector finds the grey queue empty must be waited for, or `b` stays marked but untraced
/// and `d` is swept while the mutator holds it.
#[test]
#[cfg_attr(
    gc_core_mutant = "handshake",
    should_panic(expected = "a reachable object was dropped")
)]
#[cfg_attr(
    gc_core_mutant = "barrier",
    ignore = "not this model's mutant (the model passes with it)"
)]
fn b_slot_load_races_mark_termination_and_sweep() {
    model("b (load vs mark termination and sweep)", || {
        let a = node();
        let b = node();
        b.next.store(Some(node()));
        a.next.store(Some(b));
        let a2 = a.clone();
        let mutator = thread::spawn(move || {
            let b = a2.next.load().unwrap();
            let d = b.next.load().unwrap();
            (b, d)
        });
        gc_core::collect();
        let (b, d) = mutator.join().unwrap();
        b.canary.alive();
        d.canary.alive();
        drop(a);
    });
}

/// (c) The drop of an object's last rooted handle races root enumeration.
///
/// The cycle runs step by step so that the handle is dropped (on another thread) only once
/// mark setup is over: the object was reachable at mark setup, so snapshot-at-the-beginning
/// requires it to be marked by this cycle (I2), and it must not be dropped before the next one.
/// Enumeration may read its root count before the drop (a root) or after (zero: then only the
/// drop barrier's shade marks it).
#[test]
#[cfg_attr(gc_core_mutant = "barrier", should_panic(expected = "was dropped"))]
#[cfg_attr(
    gc_core_mutant = "handshake",
    ignore = "not this model's mutant (the model passes with it)"
)]
fn c_rooted_drop_races_root_enumeration() {
    model("c (rooted drop vs root enumeration)", || {
        let b = node();
        let dropped = b.canary.0.clone();
        let mut cycle = Cycle::start();
        cycle.mark_setup();
        let mutator = thread::spawn(move || drop(b));
        cycle.mark();
        cycle.mark_termination();
        cycle.sweep();
        mutator.join().unwrap();
        assert!(
            !dropped.load(Ordering::Relaxed),
            "an object reachable at mark setup was dropped by that cycle (SATB, I2)"
        );
    });
}

/// (d) A rooted handle is sent to another thread during a cycle.
///
/// `b → d`, with `b` rooted by the main thread only. While a collector thread runs a cycle,
/// the main thread moves `b` into a new thread, which loads `d` through it and drops `b`. If
/// root enumeration reads `d` (allocated first, so enumerated first) before the load and `b`
/// after the drop, only the barriers (the load's shade of `d`, the drop's of `b`) keep `d`.
#[test]
#[cfg_attr(
    gc_core_mutant = "barrier",
    should_panic(expected = "a reachable object was dropped")
)]
#[cfg_attr(
    gc_core_mutant = "handshake",
    ignore = "not this model's mutant (the model passes with it)"
)]
fn d_handle_sent_to_another_thread_during_a_cycle() {
    model("d (handle sent to another thread)", || {
        let d = node();
        let b = node();
        b.next.store(Some(d));
        let collector = thread::spawn(gc_core::collect);
        let receiver = thread::spawn(move || {
            let d = b.next.load().unwrap();
            drop(b);
            d
        });
        let d = receiver.join().unwrap();
        collector.join().unwrap();
        d.canary.alive();
    });
}
