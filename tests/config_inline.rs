//! `GcConfig::background = false`: no collector thread; a cycle runs on the thread that calls
//! `collect()` or whose allocation crosses the GOGC trigger, and its marking is still
//! concurrent with every other thread. The workloads of `tests/concurrent.rs`, shorter, on
//! that path, plus automatic (GOGC) cycles triggered by allocation on several threads.
//!
//! A binary of its own, since `configure` is process-wide and must come before any other use.
//! The tests take a lock so that they run one at a time: the automatic-cycle test counts
//! cycles and checks where drops run, which other tests' `collect()` calls would disturb.

mod concurrent_support;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_support as cs;
use gc_core::{Gc, GcConfig};
use gc_core_workspace::XorShift64Star;

/// Configures the collector (once, before anything else touches it) and serialises the tests.
fn setup() -> MutexGuard<'static, ()> {
    static CONFIGURE: Once = Once::new();
    static SERIAL: Mutex<()> = Mutex::new(());
    CONFIGURE.call_once(|| {
        let mut c = GcConfig::from_env();
        c.background = false;
        c.gogc = Some(100);
        gc_core::configure(c).expect("configure comes before any other use of gc-core");
    });
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn cycles_and_their_drops_run_on_the_calling_thread() {
    let _serial = setup();
    static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    cs::collect_or_fail();
    for _ in 0..8 {
        drop(Gc::new(cs::DropsWhere { names: &NAMES }));
    }
    gc_core::collect();
    let me = thread::current().name().unwrap_or("<unnamed>").to_owned();
    let names = NAMES.lock().unwrap().clone();
    assert_eq!(names.len(), 8, "garbage dropped by collect()");
    assert!(
        names.iter().all(|n| *n == me),
        "dropped on {names:?}, not on the thread that called collect() ({me})"
    );
    // Thread names are cut to 15 bytes.
    let threads = cs::thread_names();
    assert!(
        !threads.iter().any(|n| n == "gc-core collect"),
        "a collector thread was started: {threads:?}"
    );
}

#[test]
fn churn_one_shared_graph_while_cycles_run_inline() {
    let _serial = setup();
    let r = cs::stress(4, cs::scaled(0.25), 0x1_4E1E);
    println!("inline stress: {r:?}");
}

#[test]
fn long_borrow_mut_held_by_the_thread_that_runs_the_cycle() {
    let _serial = setup();
    cs::long_borrow_mut(3, cs::scaled(0.03), true);
}

#[test]
fn objects_allocated_during_inline_marking_survive() {
    let _serial = setup();
    let n = cs::allocation_during_marking(3, cs::scaled(0.08));
    println!("allocated during cycles: {n} nodes");
}

#[test]
fn threads_start_and_exit_while_inline_cycles_run() {
    let _serial = setup();
    println!(
        "{} short-lived threads",
        cs::threads_come_and_go(cs::scaled(0.04))
    );
}

#[test]
fn inline_stats_are_consistent() {
    let _serial = setup();
    let s0 = cs::settled_stats();
    for _ in 0..3 {
        cs::collect_or_fail();
    }
    let s1 = cs::settled_stats();
    cs::assert_stats_consistent(&s1);
    let cycles = s1.cycles - s0.cycles;
    assert!(cycles >= 3, "{cycles} cycles for 3 collect() calls");
    assert!(s1.pauses.count - s0.pauses.count >= 3 * cycles);
}

#[test]
fn inline_write_barrier_slot_store_then_drop_the_last_other_root() {
    let _serial = setup();
    println!("{:?}", cs::barrier_store_then_drop(cs::scaled(0.05)));
}

#[test]
fn inline_write_barrier_slot_swap_keeps_the_old_target() {
    let _serial = setup();
    println!("{:?}", cs::barrier_swap_keeps_old(cs::scaled(0.05)));
}

#[test]
fn inline_write_barrier_slot_load_then_another_thread_overwrites() {
    let _serial = setup();
    println!("{:?}", cs::barrier_load_then_overwrite(cs::scaled(0.05)));
}

#[test]
fn inline_write_barrier_drop_the_last_root_while_the_edge_moves() {
    let _serial = setup();
    println!(
        "{:?}",
        cs::barrier_drop_root_while_edge_moves(cs::scaled(0.05))
    );
}

#[test]
fn inline_write_barrier_cell_borrow_mut_moves_a_handle_to_another_cell() {
    let _serial = setup();
    println!("{:?}", cs::barrier_cell_to_cell(cs::scaled(0.05)));
}

/// Four threads allocate (garbage, and a private ring of live nodes they keep replacing and
/// checking) with no `collect()` anywhere: the GOGC trigger starts cycles on the allocating
/// threads, whose marking runs beside the other three; the drops of what they find dead run on
/// the finalizer thread, never inside the allocation that triggered the cycle. At the end one
/// `collect()` leaves nothing behind.
#[test]
fn automatic_cycles_triggered_by_allocation_on_several_threads() {
    let _serial = setup();
    static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    const RING: usize = 128;
    const WANT_CYCLES: u64 = 4;
    let log = cs::Log::new(1 << 22);
    cs::collect_or_fail();
    NAMES.lock().unwrap().clear();
    let before = gc_core::stats().cycles;
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut rng = XorShift64Star::new(0x6060 + t);
                let mut ring: VecDeque<Gc<cs::CNode>> =
                    (0..RING).map(|_| cs::cnode_full(log)).collect();
                let mut iterations = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Garbage: a 2-cycle with leaves and tiny objects.
                    let g = cs::cnode_full(log);
                    g.b.store(Some(cs::cnode_full(log)));
                    g.b.load().unwrap().a.store(Some(g.clone()));
                    drop(g);
                    if iterations % 64 == 0 {
                        drop(Gc::new(cs::DropsWhere { names: &NAMES }));
                    }
                    // Replace a ring node; link the newest to a random older one.
                    let n = cs::cnode_full(log);
                    n.a.store(Some(ring[rng.below(RING as u64) as usize].clone()));
                    ring.pop_front();
                    ring.push_back(n);
                    if iterations % 256 == 0 {
                        for r in &ring {
                            cs::verify_deep(r);
                        }
                    }
                    iterations += 1;
                }
                for r in &ring {
                    cs::verify_deep(r);
                }
                iterations
            })
        })
        .collect();
    let deadline = Instant::now() + cs::HANG;
    loop {
        let cycles = gc_core::stats().cycles - before;
        let dropped_named = !NAMES.lock().unwrap().is_empty();
        if cycles >= WANT_CYCLES && log.dropped() > 0 && dropped_named {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{cycles} automatic cycles and {} drops after {:?} of allocation",
            log.dropped(),
            cs::HANG
        );
        assert!(
            !threads.iter().any(|h| h.is_finished()),
            "an allocating thread failed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::SeqCst);
    let iterations: u64 = threads
        .into_iter()
        .map(|h| cs::join(h, "an allocating thread"))
        .sum();
    let cycles = gc_core::stats().cycles - before;
    let names = NAMES.lock().unwrap().clone();
    assert!(
        names.iter().all(|n| n == "gc-core finalizer"),
        "drops of automatic cycles ran on {:?}",
        names
            .iter()
            .filter(|n| *n != "gc-core finalizer")
            .collect::<Vec<_>>()
    );
    println!(
        "{iterations} iterations on 4 threads, {cycles} automatic cycles, {} of {} objects \
         dropped by them",
        log.dropped(),
        log.allocated()
    );
    cs::collect_or_fail();
    log.assert_all_dropped_once("automatic cycles");
}
