//! graph_churn and mt_churn (shared/WORKLOADS.md §3, §4): a table of nodes held as roots, each
//! with a value and two mutable edges into a graph full of cycles; every step rewires one edge,
//! half the time to a fresh pair of nodes that becomes a garbage cycle once the edge moves on.
//! The collector runs on its own (no explicit collection in the loop); every step is timed.
//!
//! ```text
//! cargo run --release --example graph_churn -- [gc|rc|arc] [--steps N] [--live N] [--threads T]
//! ```
//!
//! Defaults: `gc`, 1,000,000 steps, 100,000 table nodes, 1 thread. `rc` runs the same steps
//! with `Rc` + `RefCell` (single-threaded; it leaks every garbage pair), `arc` with `Arc` +
//! `Mutex` edges (any thread count; leaks likewise). One line per run: steps/s, step latency
//! (p50, p99, longest, steps ≥ 1 ms and how many of those the OS preempted, the longest step
//! not preempted), peak RSS, nodes leaked after the table is dropped and a full collection; for
//! gc-core also how many of the slow steps went mostly to mark assists or waits for the
//! collector, and the longest step not preempted less its assists and waits
//! ([`gc_core::thread_gc_time`]: what the mutator took that marking did not cause), its cycles
//! and the collector's handshake pauses. With `GRAPH_CHURN_EXPLAIN=1`, each step of 1 ms or more
//! that was neither preempted nor mostly assists and waits is printed to stderr with the
//! thread's CPU time, context switches and page faults over it.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gc_core::{Gc, GcSlot, Trace};
use gc_core_workspace::{peak_resident_bytes, XorShift64Star};

/// Live nodes, counted by a drop counter in each node.
static LIVE: AtomicI64 = AtomicI64::new(0);

/// The drop counter every node carries. `no_scan`: it holds no handle, so it may have a `Drop`.
#[derive(Trace)]
#[gc(no_scan)]
struct Counted;

impl Counted {
    fn new() -> Counted {
        LIVE.fetch_add(1, Ordering::Relaxed);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Trace)]
struct GcNode {
    value: u64,
    edges: [GcSlot<GcNode>; 2],
    _count: Counted,
}

impl GcNode {
    fn new(value: u64) -> Gc<GcNode> {
        Gc::new(GcNode {
            value,
            edges: [GcSlot::new(None), GcSlot::new(None)],
            _count: Counted::new(),
        })
    }
}

struct RcNode {
    value: u64,
    edges: [RefCell<Option<Rc<RcNode>>>; 2],
    _count: Counted,
}

struct ArcNode {
    value: u64,
    edges: [Mutex<Option<Arc<ArcNode>>>; 2],
    _count: Counted,
}

/// One pointer type's version of the workload.
trait Graph: Sync {
    type Ptr: Clone;
    fn node(value: u64) -> Self::Ptr;
    fn value(p: &Self::Ptr) -> u64;
    fn get(p: &Self::Ptr, edge: usize) -> Option<Self::Ptr>;
    fn set(p: &Self::Ptr, edge: usize, to: Option<Self::Ptr>);
    /// The calling thread's time in the collector's assists and waits so far.
    fn gc_time() -> Duration {
        Duration::ZERO
    }
}

struct GcGraph;
impl Graph for GcGraph {
    type Ptr = Gc<GcNode>;
    fn node(value: u64) -> Self::Ptr {
        GcNode::new(value)
    }
    fn value(p: &Self::Ptr) -> u64 {
        p.value
    }
    fn get(p: &Self::Ptr, edge: usize) -> Option<Self::Ptr> {
        p.edges[edge].load()
    }
    fn set(p: &Self::Ptr, edge: usize, to: Option<Self::Ptr>) {
        p.edges[edge].store(to);
    }
    fn gc_time() -> Duration {
        gc_core::thread_gc_time()
    }
}

struct RcGraph;
impl Graph for RcGraph {
    type Ptr = Rc<RcNode>;
    fn node(value: u64) -> Self::Ptr {
        Rc::new(RcNode {
            value,
            edges: [RefCell::new(None), RefCell::new(None)],
            _count: Counted::new(),
        })
    }
    fn value(p: &Self::Ptr) -> u64 {
        p.value
    }
    fn get(p: &Self::Ptr, edge: usize) -> Option<Self::Ptr> {
        p.edges[edge].borrow().clone()
    }
    fn set(p: &Self::Ptr, edge: usize, to: Option<Self::Ptr>) {
        // Drop the old target after the borrow ends (its drop may reach this node).
        let old = p.edges[edge].replace(to);
        drop(old);
    }
}

struct ArcGraph;
impl Graph for ArcGraph {
    type Ptr = Arc<ArcNode>;
    fn node(value: u64) -> Self::Ptr {
        Arc::new(ArcNode {
            value,
            edges: [Mutex::new(None), Mutex::new(None)],
            _count: Counted::new(),
        })
    }
    fn value(p: &Self::Ptr) -> u64 {
        p.value
    }
    fn get(p: &Self::Ptr, edge: usize) -> Option<Self::Ptr> {
        p.edges[edge].lock().unwrap().clone()
    }
    fn set(p: &Self::Ptr, edge: usize, to: Option<Self::Ptr>) {
        let old = std::mem::replace(&mut *p.edges[edge].lock().unwrap(), to);
        drop(old);
    }
}

/// What one thread's steps measured.
struct Run {
    latencies: Vec<Duration>,
    checksum: u64,
    /// Steps of 1 ms or more during which this thread was preempted (see [`churn`]).
    preempted: u64,
    /// The longest step during which this thread was not preempted.
    longest_own: Duration,
    /// Steps of 1 ms or more, not preempted, at least half of which the thread spent in
    /// gc-core's mark assists or waits ([`gc_core::thread_gc_time`]).
    assisted: u64,
    /// The longest time a step not preempted took outside those assists and waits.
    longest_net: Duration,
}

/// What the scheduler has done to the calling thread so far (`getrusage(RUSAGE_THREAD)`, and
/// the thread's CPU clock).
#[derive(Clone, Copy)]
struct Sched {
    at: Instant,
    /// CPU time used (user + system).
    cpu: Duration,
    /// Voluntary context switches: the thread blocked (in gc-core: a lock, a park).
    voluntary: i64,
    /// Involuntary ones: the scheduler gave the CPU to another task.
    involuntary: i64,
    /// Page faults served without I/O (first touches of fresh memory, among others).
    minor_faults: i64,
}

impl Sched {
    #[cfg(target_os = "linux")]
    #[allow(clippy::unnecessary_cast)] // `c_long` is `i32` on 32-bit targets
    fn now() -> Sched {
        let at = Instant::now();
        // SAFETY: `getrusage` and `clock_gettime` write into the zeroed structs we pass and
        // read nothing else.
        let (u, ts) = unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut u);
            let mut ts: libc::timespec = std::mem::zeroed();
            libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
            (u, ts)
        };
        Sched {
            at,
            // Not `ru_utime + ru_stime`: those advance in scheduler ticks (4 ms here), which
            // made a preempted step look as if it had spent the whole step on the CPU.
            cpu: Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
            voluntary: u.ru_nvcsw as i64,
            involuntary: u.ru_nivcsw as i64,
            minor_faults: u.ru_minflt as i64,
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn now() -> Sched {
        Sched {
            at: Instant::now(),
            cpu: Duration::ZERO,
            voluntary: 0,
            involuntary: 0,
            minor_faults: 0,
        }
    }

    /// Whether a step of `d` that ended just now, since `self` was read, lost its time to
    /// something outside the program: the thread was off the CPU for at least half the step,
    /// and either the scheduler preempted it (an involuntary switch) or it never left the CPU
    /// as far as the kernel knows (the hypervisor took the virtual CPU away).
    fn step_lost_to_others(&self, now: &Sched, d: Duration) -> bool {
        let off_cpu = (now.at - self.at).saturating_sub(now.cpu.saturating_sub(self.cpu));
        let preempted = now.involuntary != self.involuntary;
        let stolen = now.voluntary == self.voluntary && !preempted;
        off_cpu >= d / 2 && (preempted || stolen)
    }
}

/// The table: `live` nodes, each edge to a random table node.
fn build<G: Graph>(live: usize, rng: &mut XorShift64Star) -> Vec<G::Ptr> {
    let table: Vec<G::Ptr> = (0..live as u64).map(G::node).collect();
    for n in &table {
        for e in 0..2 {
            G::set(n, e, Some(table[rng.below(live as u64) as usize].clone()));
        }
    }
    table
}

/// `steps` steps of the workload on `table`, each timed.
///
/// A step of 1 ms or more is counted as *preempted* if the thread was preempted (or, without
/// any context switch, off the CPU) for at least half of it ([`Sched::step_lost_to_others`],
/// from the context switches `getrusage` counts and the thread's CPU clock before and after;
/// "before" is read after every step of 100 µs
/// or more and every 256 steps, so a wait inside gc-core and a preemption rarely share a
/// window). On a shared virtual machine even a real-time-priority
/// thread is preempted now and then (Linux's deadline server gives ordinary tasks up to 50 ms
/// per second) or has its virtual CPU descheduled by the hypervisor; such steps say nothing
/// about the collector.
fn churn<G: Graph>(table: &[G::Ptr], steps: u64, seed: u64) -> Run {
    let mut rng = XorShift64Star::new(seed);
    let n = table.len() as u64;
    let mut latencies = Vec::with_capacity(steps as usize);
    let mut checksum = 0u64;
    let (mut sched, mut preempted, mut longest_own) = (Sched::now(), 0, Duration::ZERO);
    let (mut assisted, mut longest_net) = (0, Duration::ZERO);
    let explain = std::env::var_os("GRAPH_CHURN_EXPLAIN").is_some();
    for step in 0..steps {
        let (t, gc0) = (Instant::now(), G::gc_time());
        let node = &table[rng.below(n) as usize];
        let edge = rng.below(2) as usize;
        let target = if rng.below(2) == 0 {
            // A fresh pair n1 <-> n2; n1 also points back at the node, n2 at a random node.
            let n1 = G::node(step);
            let n2 = G::node(step + 1);
            G::set(&n1, 0, Some(n2.clone()));
            G::set(&n2, 0, Some(n1.clone()));
            G::set(&n1, 1, Some(node.clone()));
            G::set(&n2, 1, Some(table[rng.below(n) as usize].clone()));
            n1
        } else {
            // An existing node: a table node, or one hop from one.
            let other = &table[rng.below(n) as usize];
            if rng.below(2) == 0 {
                other.clone()
            } else {
                G::get(other, rng.below(2) as usize).unwrap_or_else(|| other.clone())
            }
        };
        checksum = checksum.wrapping_add(G::value(&target));
        G::set(node, edge, Some(target));
        let d = t.elapsed();
        let gc = G::gc_time() - gc0;
        latencies.push(d);
        let mut own = |d: Duration| {
            longest_own = longest_own.max(d);
            longest_net = longest_net.max(d.saturating_sub(gc));
            if d >= Duration::from_millis(1) && gc >= d / 2 {
                assisted += 1;
            }
        };
        if d >= Duration::from_micros(100) || step % 256 == 0 {
            let now = Sched::now();
            if d >= Duration::from_millis(1) && sched.step_lost_to_others(&now, d) {
                preempted += 1;
            } else {
                if explain && d.saturating_sub(gc) >= Duration::from_millis(1) {
                    eprintln!(
                        "slow step {step}: {d:?}, {gc:?} of it in assists and waits; since the \
                         last reading ({:?} ago): CPU {:?}, {} voluntary and {} involuntary \
                         switches, {} minor faults",
                        now.at - sched.at,
                        now.cpu - sched.cpu,
                        now.voluntary - sched.voluntary,
                        now.involuntary - sched.involuntary,
                        now.minor_faults - sched.minor_faults,
                    );
                }
                own(d);
            }
            sched = now;
        } else {
            own(d);
        }
    }
    Run {
        latencies,
        checksum,
        preempted,
        longest_own,
        assisted,
        longest_net,
    }
}

fn run<G: Graph>(name: &str, steps: u64, live: usize, threads: u64)
where
    G::Ptr: Send + Sync,
{
    let mut rng = XorShift64Star::new(42);
    let table = build::<G>(live, &mut rng);
    let before = gc_core::stats();
    let start = Instant::now();
    let runs: Vec<Run> = if threads == 1 {
        vec![churn::<G>(&table, steps, 7)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let table = &table;
                    s.spawn(move || churn::<G>(table, steps / threads, 7 + t))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let wall = start.elapsed();
    let after = gc_core::stats();
    let mut lat: Vec<Duration> = runs
        .iter()
        .flat_map(|r| r.latencies.iter().copied())
        .collect();
    let checksum = runs.iter().fold(0u64, |a, r| a.wrapping_add(r.checksum));
    let preempted: u64 = runs.iter().map(|r| r.preempted).sum();
    let longest_own = runs.iter().map(|r| r.longest_own).max().unwrap_or_default();
    let assisted: u64 = runs.iter().map(|r| r.assisted).sum();
    let longest_net = runs.iter().map(|r| r.longest_net).max().unwrap_or_default();
    lat.sort_unstable();
    let pick = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    let slow = lat
        .iter()
        .filter(|d| **d >= Duration::from_millis(1))
        .count();
    drop(table);
    if name == "gc" {
        gc_core::collect();
        gc_core::collect();
    }
    let leaked = LIVE.load(Ordering::Relaxed);
    let rss = peak_resident_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
    print!(
        "{name:<3} live={live} threads={threads}: {:.2} M steps/s, step p50 {:.2} µs p99 {:.2} µs \
         max {:.3} ms, {slow} steps >= 1 ms ({preempted} preempted; longest not preempted {:.3} ms), \
         peak RSS {rss:.0} MiB, leaked {leaked}, checksum {checksum}",
        lat.len() as f64 / wall.as_secs_f64() / 1e6,
        pick(0.5).as_secs_f64() * 1e6,
        pick(0.99).as_secs_f64() * 1e6,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
        longest_own.as_secs_f64() * 1e3,
    );
    if name == "gc" {
        let cycles = after.cycles - before.cycles;
        let p = after.pauses;
        print!(
            "; of the steps >= 1 ms not preempted, {assisted} mostly in mark assists or waits; \
             longest not preempted, less its assists and waits {:.3} ms",
            longest_net.as_secs_f64() * 1e3,
        );
        print!(
            "; {cycles} cycles, handshake pauses p50 {:.1} µs p99 {:.1} µs max {:.1} µs ({} total), \
             mark assists {} ({:.1} ms), hard-limit waits {} (max {:.1} ms)",
            p.p50.as_secs_f64() * 1e6,
            p.p99.as_secs_f64() * 1e6,
            p.max.as_secs_f64() * 1e6,
            p.count,
            after.assists.count,
            after.assists.total.as_secs_f64() * 1e3,
            after.limit_waits.count,
            after.limit_waits.max.as_secs_f64() * 1e3,
        );
    }
    println!();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut which, mut steps, mut live, mut threads) =
        ("gc".to_string(), 1_000_000u64, 100_000usize, 1u64);
    while let Some(a) = args.next() {
        let mut num = || -> u64 {
            args.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{a} needs a number"))
        };
        match a.as_str() {
            "--steps" => steps = num(),
            "--live" => live = num() as usize,
            "--threads" => threads = num().max(1),
            "gc" | "rc" | "arc" => which = a,
            other => panic!("unknown argument {other}"),
        }
    }
    match which.as_str() {
        "gc" => run::<GcGraph>("gc", steps, live, threads),
        "rc" => {
            assert_eq!(threads, 1, "rc is single-threaded");
            run_rc(steps, live)
        }
        _ => run::<ArcGraph>("arc", steps, live, threads),
    }
}

/// `Rc` is not `Send`: its run has no threads.
fn run_rc(steps: u64, live: usize) {
    let mut rng = XorShift64Star::new(42);
    let table = build::<RcGraph>(live, &mut rng);
    let start = Instant::now();
    let r = churn::<RcGraph>(&table, steps, 7);
    let wall = start.elapsed();
    let mut lat = r.latencies;
    lat.sort_unstable();
    let pick = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    let slow = lat
        .iter()
        .filter(|d| **d >= Duration::from_millis(1))
        .count();
    drop(table);
    let rss = peak_resident_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!(
        "rc  live={live} threads=1: {:.2} M steps/s, step p50 {:.2} µs p99 {:.2} µs max {:.3} ms, \
         {slow} steps >= 1 ms ({} preempted; longest not preempted {:.3} ms), peak RSS {rss:.0} \
         MiB, leaked {}, checksum {}",
        lat.len() as f64 / wall.as_secs_f64() / 1e6,
        pick(0.5).as_secs_f64() * 1e6,
        pick(0.99).as_secs_f64() * 1e6,
        lat[lat.len() - 1].as_secs_f64() * 1e3,
        r.preempted,
        r.longest_own.as_secs_f64() * 1e3,
        LIVE.load(Ordering::Relaxed),
        r.checksum,
    );
}
