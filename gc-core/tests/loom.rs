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
//! | [`c_rooted_drop_races_root_enumeration`] | the drop barrier of a rooted handle against root enumeration | `barrier`, `dropmark` |
//! | [`d_handle_sent_to_another_thread_during_a_cycle`] | a rooted handle moved to a new thread, which loads through it and drops it, during a cycle | `barrier` |
//! | [`e_allocation_straddles_a_new_sweep_generation`] | two allocations needing a span against the publication of a new sweep generation (the parity of the span lists) | `relist` |
//! | [`f_hard_limit_wait_vs_a_drop_that_needs_the_waiters_lock`] | an allocating thread past the hard limit, waiting for the cycle's end (`wait_at_hard_limit`), against the collector thread's drops, one of which needs a lock that thread holds | `sweepwait` |
//! | [`g_assist_races_mark_setup`] | a mark assist, started by a thread that sees `Marking`, against a store whose operation began before it (mark setup's handshake still waiting for it) | `blacken` |
//! | [`h_cache_root_scan_races_mark_setup`] | a thread cache enumerating the roots of a span it takes while allocating black, against a take whose operation began before `Marking` was published | `blacken` |
//! | [`i_cache_flush_races_its_owner`] | mark setup's request for a cache's spans against the cache's owner allocating (either gives them back, never both) | `flush` |
//!
//! Mutants (`--cfg gc_core_mutant="…"`): `barrier` makes `gc::barrier::shade` do nothing;
//! `handshake` skips mark termination's handshake; `relist` drops a span that an allocation
//! straddling a new sweep generation popped and could not claim, instead of putting it back
//! (the first version's lost-span bug); `sweepwait` makes a thread past the hard limit wait for
//! the end of the cycle whatever happens, instead of giving up after two wait slices in which
//! the collector did not move on; `blacken` lets markers take grey work, and thread caches
//! enumerate roots, as soon as `Marking` is published instead of once mark setup's handshake is
//! over (the bug a 10-minute stress run found); `dropmark` makes the drop barrier take every
//! object for marked already, so a drop while marking never shades; `flush` makes a cache's owner
//! take the collector's request for its spans with a plain store instead of a compare-and-swap
//! (all nine models fail with it when run; (i) is the one that declares it). Built with a
//! mutant, the models that must catch it expect the failure (`should_panic`) and the others
//! are not run (`model_test!` lists the mutants once); `.ci/run` runs every build.
//!
//! What a failure looks like: every object carries a [`Canary`] whose drop sets a flag. A model
//! fails when an object it can still reach was dropped (swept: invariant I1), or, in model (c),
//! when an object reachable at mark setup was dropped by that same cycle (its mark bit was not
//! set: invariant I2, snapshot-at-the-beginning), or, in model (f), when an execution cannot
//! finish (a deadlock, or a thread that waits in a loop forever: loom's maximum number of
//! branches), or when loom itself reports a data race or a causality violation. Each model
//! prints its execution count (also when an execution fails).
#![cfg(loom)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use gc_core::gc::loom_hooks::{self, CollectorThread, Cycle};
use gc_core::{Gc, GcConfig, GcSlot, Trace};
use loom::sync::mpsc;
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

/// Declares a model's test and the seeded mutants it must catch. Built with one of them, the
/// test must fail with the `expecting` message (`should_panic`); built with any other mutant
/// it is not run (it passes with it). Every mutant is named here once, and `.ci/run` builds
/// each.
macro_rules! model_test {
    (
        $(#[$attr:meta])*
        catches [$($mutant:literal),+] expecting $expected:literal;
        fn $name:ident() $body:block
    ) => {
        $(#[$attr])*
        #[test]
        #[cfg_attr(any($(gc_core_mutant = $mutant),+), should_panic(expected = $expected))]
        #[cfg_attr(
            all(
                any(
                    gc_core_mutant = "barrier",
                    gc_core_mutant = "handshake",
                    gc_core_mutant = "relist",
                    gc_core_mutant = "sweepwait",
                    gc_core_mutant = "blacken",
                    gc_core_mutant = "dropmark",
                    gc_core_mutant = "flush"
                ),
                not(any($(gc_core_mutant = $mutant),+))
            ),
            ignore = "not this model's mutant (the model passes with it)"
        )]
        fn $name() $body
    };
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
    // Reports the count also when an execution fails (the guard is dropped while unwinding).
    struct Report<'a>(&'a str, &'a AtomicUsize, Instant);
    impl Drop for Report<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                eprintln!(
                    "loom model {}: failed in execution {} after {:.1?}",
                    self.0,
                    self.1.load(Ordering::Relaxed),
                    self.2.elapsed(),
                );
            }
        }
    }
    let report = Report(name, &executions, start);
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
    drop(report);
}

model_test! {
    /// (a) A store into a slot of an object allocated during marking races mark setup.
    ///
    /// `a` is allocated by the mutator, possibly after mark setup: then it is born black and never
    /// traced, so `c`, whose only root moves into `a.leaf`, survives only if the store's barrier
    /// shades it (when root enumeration reads `c` after the store) or if enumeration reads it
    /// before. A store whose operation began before `Marking` was published is waited for by mark
    /// setup's handshake.
    catches ["barrier"] expecting "a reachable object was dropped";
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
}

model_test! {
    /// (b) A load from a slot races mark termination and the sweep.
    ///
    /// `a → b → d`, with `a` rooted. The mutator loads `b` (shading it: a mark bit, then a push
    /// onto the grey queue) and then `d` through it, while the collector drains, runs its
    /// termination handshakes, the grace period and the sweep. A shade still in flight when the
    /// collector finds the grey queue empty must be waited for, or `b` stays marked but untraced
    /// and `d` is swept while the mutator holds it.
    catches ["handshake"] expecting "a reachable object was dropped";
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
}

model_test! {
    /// (c) The drop of an object's last rooted handle races root enumeration.
    ///
    /// The cycle runs step by step so that the handle is dropped (on another thread) only once
    /// mark setup is over: the object was reachable at mark setup, so snapshot-at-the-beginning
    /// requires it to be marked by this cycle (I2), and it must not be dropped before the next one.
    /// Enumeration may read its root count before the drop (a root) or after (zero: then only the
    /// drop barrier's shade marks it).
    catches ["barrier", "dropmark"] expecting "was dropped";
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
}

model_test! {
    /// (d) A rooted handle is sent to another thread during a cycle.
    ///
    /// `b → d`, with `b` rooted by the main thread only. While a collector thread runs a cycle,
    /// the main thread moves `b` into a new thread, which loads `d` through it and drops `b`. If
    /// root enumeration reads `d` (allocated first, so enumerated first) before the load and `b`
    /// after the drop, only the barriers (the load's shade of `d`, the drop's of `b`) keep `d`.
    catches ["barrier"] expecting "a reachable object was dropped";
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
}

/// An object that fills a span by itself: 8 + 8 + 8 × 1000 bytes take the 8192-byte size
/// class, whose spans are one page, one object. Scan (it has an edge), no drop glue.
#[derive(Trace)]
struct Big {
    leaf: GcSlot<Leaf>,
    pad: [u64; 1000],
}

fn big() -> Gc<Big> {
    Gc::new(Big {
        leaf: GcSlot::new(None),
        pad: [0; 1000],
    })
}

/// A thread that takes part in a race only between `go` and `done` (loom channels: a thread
/// waiting on one is blocked, not spinning, so it adds no interleavings).
struct Gated<T> {
    go: mpsc::Sender<()>,
    done: mpsc::Sender<()>,
    thread: thread::JoinHandle<T>,
}

impl<T: Send + 'static> Gated<T> {
    /// Spawns a thread that makes its thread cache (an operation: a load from `x`'s slot)
    /// before the race, runs `f` once let go, and stays alive (its cache registered) until
    /// `done`.
    fn spawn(x: &Gc<Big>, f: impl FnOnce() -> T + Send + 'static) -> Gated<T> {
        let (ready_tx, ready) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let (done, done_rx) = mpsc::channel();
        let x = x.clone();
        let thread = thread::spawn(move || {
            drop(x.leaf.load());
            drop(x);
            ready_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            let r = f();
            done_rx.recv().unwrap();
            r
        });
        ready.recv().unwrap();
        Gated { go, done, thread }
    }
}

model_test! {
    /// (e) An allocation straddles the publication of a new sweep generation.
    ///
    /// `x → y`, with `x` rooted and alone in its span `S` (a full span of `Big`'s class, swept
    /// and listed). During cycle 1's mark termination two threads allocate a `Big`, each needing
    /// a span from the central lists. If one of them (`m1`) read the allocation state just before
    /// the sweep start published generation `G + 2` (the publish then waits for its operation),
    /// it searches the lists with `G`, and by the parity trick `G`'s unswept list is `G + 2`'s
    /// swept list. The other (`m2`), starting after the publish, sweeps `S` before reuse, finds it
    /// full and lists it there as swept; `m1` then pops `S`, cannot claim it for sweeping, and must
    /// put it back (`HeapShared::relist`). A span dropped instead is in no list: cycle 2's root
    /// enumeration never sees `x`, and `y`, reachable only through `x`, is swept and dropped.
    ///
    /// To keep the model small, the two threads make their thread caches before the race and
    /// stay alive after it ([`Gated`]): only their allocations run against mark termination.
    /// Either thread can be the one that straddles. A failing schedule takes two preemptions: the
    /// collector, after its grace-period handshake, to that thread; that thread, after reading the
    /// allocation state, back to the collector, whose wait for it lets the other thread run. The
    /// check reads `y`'s canary flag, not `y` itself, which is freed memory in the failing
    /// executions.
    catches ["relist"] expecting "a reachable object was dropped";
    fn e_allocation_straddles_a_new_sweep_generation() {
        model("e (allocation vs sweep-generation publish)", || {
            let x = big();
            let y = leaf();
            let y_dropped = y.canary.0.clone();
            x.leaf.store(Some(y));
            let mut cycle = Cycle::start();
            cycle.mark_setup();
            cycle.mark();
            let m2 = Gated::spawn(&x, big);
            let m1 = Gated::spawn(&x, big);
            m2.go.send(()).unwrap();
            m1.go.send(()).unwrap();
            cycle.mark_termination();
            m1.done.send(()).unwrap();
            m2.done.send(()).unwrap();
            let m1 = m1.thread.join().unwrap();
            let m2 = m2.thread.join().unwrap();
            cycle.sweep();
            drop((m1, m2));
            gc_core::collect();
            assert!(
                !y_dropped.load(Ordering::Relaxed),
                "a reachable object was dropped"
            );
            drop(x);
        });
    }
}

/// An object whose drop takes a lock: the drop of a dead one, run by the collector thread,
/// waits for whoever holds it.
#[derive(Trace)]
#[gc(no_scan)]
struct Locked {
    lock: Arc<loom::sync::Mutex<()>>,
    _canary: Canary,
}

impl Drop for Locked {
    fn drop(&mut self) {
        drop(self.lock.lock().unwrap());
    }
}

/// An object of the 2560-byte size class, whose spans are 40 KiB (16 objects): the allocation
/// that takes such a span for a thread cache moves the pacer's clock 40 KiB at once. Noscan,
/// no drop glue.
#[derive(Trace)]
#[gc(no_scan)]
struct Wide {
    _pad: [u64; 300],
}

model_test! {
    /// (f) A thread past the hard limit holds a lock that a drop of the cycle it waits for needs.
    ///
    /// With a background collector thread (the real `background_loop`, started by
    /// [`CollectorThread`]) and GOGC on, the main thread allocates a [`Leaf`] and a [`Locked`]
    /// object and drops them: garbage (16 KiB of the pacer's clock: a span of 16-byte slots, one
    /// of 24-byte slots). A mutator takes the `Locked` object's lock, then allocates a [`Wide`]
    /// object (a 40 KiB span), which carries the clock from below the trigger (`min_heap`,
    /// 18 KiB) past the hard limit (36 KiB) and past the limit one allowance further on (54 KiB)
    /// from which the wait covers the sweep and drops too: `pace_background` asks for cycle 1 and
    /// waits for it to end for as long as the collector moves on (`wait_at_hard_limit`: mark
    /// work, spans swept, drops run). The collector thread's sweep of cycle 1 runs the two drops (the leaf's makes
    /// progress, in either order), and the `Locked` one blocks on the lock: nothing moves any
    /// more, so the mutator must give up waiting after two slices without progress (under loom a
    /// timed park is a yield), return from its allocation and release the lock; then the drop,
    /// and the cycle, finish.
    ///
    /// What a failure looks like: a wait for the cycle's end whatever happens is a deadlock, which
    /// loom reports as a model past its maximum number of branches (the mutator's endless
    /// park-and-look loop, with the collector thread blocked on the lock and the main thread on
    /// the join). The mutator also checks, before it releases the lock, that its allocation
    /// waited at the hard limit and gave up (`GcStats::limit_waits`, `limit_give_ups`; where it
    /// gives up depends on the interleaving: in the mark, at its termination, or in the sweep):
    /// the sizes above are what reach the limits, and a model that stopped reaching them would
    /// fail there rather than pass unchecked.
    catches ["sweepwait"] expecting "Model exceeded maximum number of branches";
    fn f_hard_limit_wait_vs_a_drop_that_needs_the_waiters_lock() {
        model("f (hard-limit wait vs a drop needing its lock)", || {
            let mut config = GcConfig::default();
            config.background = true;
            config.gogc = Some(100);
            config.min_heap = 18 << 10;
            let collector = CollectorThread::start(config);
            let lock = Arc::new(loom::sync::Mutex::new(()));
            let garbage = leaf();
            let leaf_dropped = garbage.canary.0.clone();
            drop(garbage);
            let canary = Canary::new();
            let locked_dropped = canary.0.clone();
            drop(Gc::new(Locked {
                lock: lock.clone(),
                _canary: canary,
            }));
            let mutator = thread::spawn(move || {
                let held = lock.lock().unwrap();
                let wide = Gc::new(Wide { _pad: [0; 300] });
                // The allocation waited at the hard limit, and gave up: cycle 1 cannot end while
                // this thread holds the lock its drop needs.
                let st = gc_core::stats();
                assert_eq!(
                    (st.limit_waits.count, st.limit_give_ups),
                    (1, 1),
                    "the allocation past the hard limit did not wait, or did not give up"
                );
                drop(held);
                drop(wide);
            });
            mutator.join().unwrap();
            // The collector thread ends cycle 1, the only one asked for, before it exits.
            collector.stop();
            assert!(
                leaf_dropped.load(Ordering::Relaxed) && locked_dropped.load(Ordering::Relaxed),
                "a garbage object was not dropped by the cycle"
            );
            assert_eq!(gc_core::stats().cycles, 1, "one cycle, the mutator's");
        });
    }
}

model_test! {
    /// (g) A mark assist during mark setup races a store whose operation began before it.
    ///
    /// `p` is rooted by the main thread, `x` only by the writer, which stores it into `p.next`
    /// (giving up its root) in an operation that may have read the phase before `Marking` was
    /// published: then it does not shade `x`, and mark setup's handshake waits for it. Meanwhile
    /// another thread drops its handle to `p`, which shades `p` once `Marking` is published, and
    /// runs a mark assist. Were the assist to trace `p` before the handshake is over, `p` would be
    /// black with `p.next` still empty, and `x` (no longer a root when enumeration reads it) would
    /// be swept while reachable.
    catches ["blacken"] expecting "a reachable object was dropped";
    fn g_assist_races_mark_setup() {
        model("g (assist vs mark setup)", || {
            let p = node();
            let (p_writer, p_assist) = (p.clone(), p.clone());
            let x = node();
            let mut cycle = Cycle::start();
            let writer = thread::spawn(move || p_writer.next.store(Some(x)));
            let assister = thread::spawn(move || {
                drop(p_assist);
                loom_hooks::assist(usize::MAX);
            });
            cycle.mark_setup();
            // The race is over once mark setup is (the rest of the cycle runs alone, which keeps
            // the model small): the store has been waited for, and an assist from now on finds
            // it in `p.next`.
            writer.join().unwrap();
            assister.join().unwrap();
            cycle.mark();
            cycle.mark_termination();
            cycle.sweep();
            p.next.load().unwrap().canary.alive();
        });
    }
}

model_test! {
    /// (h) A thread cache's root enumeration during mark setup races a take that began before it.
    ///
    /// `k`'s only reference is the edge `p.next`. The taker moves it out (`take`: a rooted handle,
    /// counted in an operation that may have begun before `Marking` was published, so it does not
    /// shade) and holds it past the cycle. Meanwhile another thread allocates, and its cache takes
    /// the span of `p` and `k` (allocating black). Were that cache to enumerate the span's roots
    /// while mark setup's handshake is still waiting for the take, it could read `k`'s root count
    /// before the take counts it and claim the span: enumeration would then skip the span, the
    /// edge is gone when `p` is traced, and `k` would be swept while held.
    catches ["blacken"] expecting "a reachable object was dropped";
    fn h_cache_root_scan_races_mark_setup() {
        model("h (cache root enumeration vs mark setup)", || {
            let p = node();
            p.next.store(Some(node()));
            // Sweep termination flushes this thread's cache: the span goes back to the lists.
            let mut cycle = Cycle::start();
            let p_taker = p.clone();
            let taker = thread::spawn(move || p_taker.next.take().unwrap());
            let allocator = thread::spawn(|| drop(node()));
            cycle.mark_setup();
            let k = taker.join().unwrap();
            allocator.join().unwrap();
            cycle.mark();
            cycle.mark_termination();
            cycle.sweep();
            k.canary.alive();
            drop(p);
        });
    }
}

model_test! {
    /// (i) The cache flushes of mark setup and sweep start race the cache's owner, which
    /// allocates.
    ///
    /// The allocator's first allocation makes its cache take a span; mark setup, then sweep
    /// start, ask every cache for its spans. If the allocator starts an operation after a
    /// request, it gives them back itself and goes on; if not, the collector does, holding the
    /// cache while the owner is out of operations. The word the two compare-and-swap decides
    /// which: were the owner to take the request without it, both could give the spans back at
    /// once, a concurrent use of the cache's state that loom reports. Both objects must survive
    /// the cycle (the second may be allocated black, in a span taken before or after a flush).
    catches ["flush"] expecting "Causality violation";
    fn i_cache_flush_races_its_owner() {
        model("i (cache flush vs its owner)", || {
            let mut cycle = Cycle::start();
            let allocator = thread::spawn(|| (node(), leaf()));
            cycle.mark_setup();
            cycle.mark();
            cycle.mark_termination();
            let (n, l) = allocator.join().unwrap();
            cycle.sweep();
            n.canary.alive();
            l.canary.alive();
        });
    }
}
