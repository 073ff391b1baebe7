//! `Gc<T>` against `Rc`/`Arc`, measured side by side in one run.
//!
//! - `clone_drop`: clone a rooted handle and drop the clone (`Gc` vs `Arc` vs `Rc`).
//! - `new_reclaim`: allocate a 32-byte node (24-byte payload + 8-byte header for `Gc`; `Rc`'s
//!   box is 40 bytes: two counts + payload) and reclaim it: `Gc::new` + drop, reclaimed by the
//!   collector's own cycles (`gc`: what a program that allocates and forgets sees; the
//!   collector thread marks and sweeps on the other core meanwhile, so the bench also prints
//!   the process's CPU time per node) or by one explicit `collect()` per batch of 65,536
//!   (`gc_collect_per_batch`: a full cycle's fixed cost every 65,536 nodes); `Rc::new` + drop;
//!   `Box::new` + drop.
//! - `slot_store`: `GcSlot::store` of a rooted handle into a slot of a heap object, while no
//!   cycle runs: the barrier's fast path. Compare with the same benchmark built with the
//!   barrier compiled out (`--cfg gc_core_no_barrier`; see README "Numbers").
//! - `collect_1m`: a full `collect()` with one million small objects live (a binary tree of
//!   2^20 − 1 nodes under one root): the cycle's duration, and its handshake pauses.
//!
//! Run: `cargo bench --bench gc`.

use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gc_core::{Gc, GcSlot, Trace};

const BATCH: usize = 64 * 1024;

#[derive(Trace)]
struct Node {
    left: Option<Gc<Node>>,
    right: Option<Gc<Node>>,
    value: u64,
}

struct RcNode {
    _left: Option<Rc<RcNode>>,
    _right: Option<Rc<RcNode>>,
    _value: u64,
}

#[derive(Trace)]
struct TreeNode {
    left: GcSlot<TreeNode>,
    right: GcSlot<TreeNode>,
}

fn tree(depth: u32) -> Gc<TreeNode> {
    let n = Gc::new(TreeNode {
        left: GcSlot::new(None),
        right: GcSlot::new(None),
    });
    if depth > 0 {
        n.left.store(Some(tree(depth - 1)));
        n.right.store(Some(tree(depth - 1)));
    }
    n
}

/// The CPU time of the whole process so far (every thread, the collector's included).
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(r, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn clone_drop(c: &mut Criterion) {
    let mut g = c.benchmark_group("clone_drop");
    g.throughput(Throughput::Elements(BATCH as u64));
    let gc = Gc::new(Node {
        left: None,
        right: None,
        value: 1,
    });
    g.bench_function("gc", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                drop(black_box(gc.clone()));
            }
        })
    });
    let arc = Arc::new(1u64);
    g.bench_function("arc", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                drop(black_box(arc.clone()));
            }
        })
    });
    let rc = Rc::new(1u64);
    g.bench_function("rc", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                drop(black_box(rc.clone()));
            }
        })
    });
    g.finish();
}

/// Runs `batch` `iters` times under criterion's clock, adding the process CPU time it took
/// (every thread's: the collector thread's marking and sweeping included) to `cpu`.
fn timed_batches(iters: u64, cpu: &mut (Duration, u64), mut batch: impl FnMut()) -> Duration {
    let (c0, t0) = (cpu_time(), Instant::now());
    for _ in 0..iters {
        batch();
    }
    let wall = t0.elapsed();
    cpu.0 += cpu_time() - c0;
    cpu.1 += iters * BATCH as u64;
    wall
}

fn new_reclaim(c: &mut Criterion) {
    let mut g = c.benchmark_group("new_reclaim_32B");
    g.throughput(Throughput::Elements(BATCH as u64));
    let gc_batch = || {
        for i in 0..BATCH {
            drop(black_box(Gc::new(Node {
                left: None,
                right: None,
                value: i as u64,
            })));
        }
    };
    let before = gc_core::stats();
    let mut gc_cpu = (Duration::ZERO, 0);
    g.bench_function("gc", |b| {
        b.iter_custom(|iters| timed_batches(iters, &mut gc_cpu, gc_batch))
    });
    let after = gc_core::stats();
    g.bench_function("gc_collect_per_batch", |b| {
        b.iter(|| {
            gc_batch();
            gc_core::collect();
        })
    });
    let mut rc_cpu = (Duration::ZERO, 0);
    g.bench_function("rc", |b| {
        b.iter_custom(|iters| {
            timed_batches(iters, &mut rc_cpu, || {
                for i in 0..BATCH {
                    drop(black_box(Rc::new(RcNode {
                        _left: None,
                        _right: None,
                        _value: i as u64,
                    })));
                }
            })
        })
    });
    g.bench_function("box", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                drop(black_box(Box::new((0usize, 0usize, i as u64))));
            }
        })
    });
    g.finish();
    let per_node = |(t, n): (Duration, u64)| t.as_nanos() as f64 / n as f64;
    println!(
        "new_reclaim_32B: process CPU time per node: gc {:.2} ns, rc {:.2} ns; gc's {} nodes \
         were reclaimed by {} cycles ({} objects freed), heap {} bytes at the end",
        per_node(gc_cpu),
        per_node(rc_cpu),
        gc_cpu.1,
        after.cycles - before.cycles,
        after.objects_freed - before.objects_freed,
        after.heap_bytes,
    );
}

fn slot_store(c: &mut Criterion) {
    let mut g = c.benchmark_group("slot_store");
    g.throughput(Throughput::Elements(BATCH as u64));
    let holder = Gc::new(TreeNode {
        left: GcSlot::new(None),
        right: GcSlot::new(None),
    });
    let a = Gc::new(TreeNode {
        left: GcSlot::new(None),
        right: GcSlot::new(None),
    });
    let b2 = a.clone();
    g.bench_function(
        if cfg!(gc_core_no_barrier) {
            "gc_no_barrier"
        } else {
            "gc"
        },
        |b| {
            b.iter(|| {
                for i in 0..BATCH {
                    // Alternate targets so every store replaces a different handle.
                    let t = if i & 1 == 0 { &a } else { &b2 };
                    holder.left.store(Some(black_box(t).clone()));
                }
            })
        },
    );
    g.finish();
    holder.left.store(None);
}

fn collect_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("collect_1m_live");
    g.sample_size(10);
    let root = tree(19); // 2^20 - 1 nodes
    gc_core::collect();
    g.bench_function("gc", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                gc_core::collect();
                total += t.elapsed();
            }
            total
        })
    });
    g.finish();
    let s = gc_core::stats();
    println!(
        "collect_1m_live: live objects {} ({} bytes); handshake pauses p50 {:?} p99 {:?} max {:?}; \
         concurrent mark p50 {:?}",
        s.live_objects_after_mark,
        s.live_bytes_after_mark,
        s.pauses.p50,
        s.pauses.p99,
        s.pauses.max,
        s.mark.p50
    );
    drop(root);
}

criterion_group! {
    name = gc;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = clone_drop, new_reclaim, slot_store, collect_1m
}
criterion_main!(gc);
