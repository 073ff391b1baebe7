//! binary_trees (shared/WORKLOADS.md §1): the Computer Language Benchmarks Game workload,
//! single-threaded, one allocation per node, leaves included.
//!
//! Runs the same program with `Box`, `Rc` and `Gc` in one process, in that order, and prints
//! one line each: wall time, the node-count checksum (68,332,206 at N = 18), and for gc-core the
//! number of cycles and the histogram of the collector's handshakes (the longest any
//! mutator could have been held up by the collector; marking itself is concurrent).
//!
//! ```text
//! cargo run --release --example binary_trees -- [N] [box|rc|gc ...]
//! ```

use std::rc::Rc;
use std::time::Instant;

use gc_core::{Gc, Trace};

#[derive(Trace)]
struct GcNode {
    left: Option<Gc<GcNode>>,
    right: Option<Gc<GcNode>>,
}

struct RcNode {
    left: Option<Rc<RcNode>>,
    right: Option<Rc<RcNode>>,
}

struct BoxNode {
    left: Option<Box<BoxNode>>,
    right: Option<Box<BoxNode>>,
}

/// One implementation of the tree: build a tree of a depth, count its nodes.
trait Tree: Sized {
    fn build(depth: u32) -> Self;
    fn check(&self) -> u64;
}

/// The same `Tree` impl for each pointer type: `$ptr::new`, and `$node` with two children.
macro_rules! tree {
    ($($ptr:ident<$node:ident>),*) => {$(
        impl Tree for $ptr<$node> {
            fn build(depth: u32) -> Self {
                if depth == 0 {
                    $ptr::new($node { left: None, right: None })
                } else {
                    let (left, right) = (Self::build(depth - 1), Self::build(depth - 1));
                    $ptr::new($node { left: Some(left), right: Some(right) })
                }
            }
            fn check(&self) -> u64 {
                1 + self.left.as_ref().map_or(0, |n| n.check())
                    + self.right.as_ref().map_or(0, |n| n.check())
            }
        }
    )*};
}

tree!(Gc<GcNode>, Rc<RcNode>, Box<BoxNode>);

/// The benchmark program; returns the sum of all checks.
fn run<T: Tree>(n: u32) -> u64 {
    let mut sum = T::build(n + 1).check();
    let long_lived = T::build(n);
    let mut d = 4;
    while d <= n {
        let iterations = 1u64 << (n - d + 4);
        for _ in 0..iterations {
            sum += T::build(d).check();
        }
        d += 2;
    }
    sum + long_lived.check()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(18);
    let which: Vec<String> = args.collect();
    let wanted = |k: &str| which.is_empty() || which.iter().any(|w| w == k);
    if wanted("box") {
        let t = Instant::now();
        let sum = run::<Box<BoxNode>>(n);
        println!(
            "box  N={n}: {:.2} s, checks {sum}",
            t.elapsed().as_secs_f64()
        );
    }
    if wanted("rc") {
        let t = Instant::now();
        let sum = run::<Rc<RcNode>>(n);
        println!(
            "rc   N={n}: {:.2} s, checks {sum}",
            t.elapsed().as_secs_f64()
        );
    }
    if wanted("gc") {
        let before = gc_core::stats();
        let t = Instant::now();
        let sum = run::<Gc<GcNode>>(n);
        let wall = t.elapsed().as_secs_f64();
        let s = gc_core::stats();
        println!(
            "gc   N={n}: {wall:.2} s, checks {sum}; {} cycles, {} handshake pauses p50 {:.3} ms, \
             p99 {:.3} ms, max {:.3} ms; mark assists {} ({:.1} ms); hard-limit waits {}; \
             peak RSS {} MiB",
            s.cycles - before.cycles,
            s.pauses.count - before.pauses.count,
            s.pauses.p50.as_secs_f64() * 1e3,
            s.pauses.p99.as_secs_f64() * 1e3,
            s.pauses.max.as_secs_f64() * 1e3,
            s.assists.count - before.assists.count,
            (s.assists.total - before.assists.total).as_secs_f64() * 1e3,
            s.limit_waits.count - before.limit_waits.count,
            gc_core_workspace::peak_resident_bytes().unwrap_or(0) >> 20,
        );
    }
}
