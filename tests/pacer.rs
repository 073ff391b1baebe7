//! Mark assists under pressure: a small allowance (GOGC = 5, a 256 KiB minimum heap) makes
//! every allocating thread pay for the marking while it allocates (`gc/pacer.rs`), so assists
//! enumerate roots and trace grey objects all the time, concurrently with the collector
//! thread, the barriers and each other.
//!
//! The workload is the concurrent stress of `tests/concurrent.rs` (mutators churning one
//! shared graph, every visit checked, every drop logged, drops == allocations at the end),
//! plus a check that the assists did run and did trace objects; and a check that
//! `gc_core::thread_gc_time` charges a thread for its own assists only. A binary of its own,
//! since `configure` is process-wide.

mod concurrent_support;

use concurrent_support as cs;
use gc_core_workspace::configure_small_allowance as setup;

#[test]
fn assists_mark_while_mutators_churn_a_shared_graph() {
    setup();
    let before = gc_core::stats();
    let r = cs::stress(4, cs::scaled(0.5), 0xA5_51_57);
    let after = gc_core::stats();
    let assists = after.assists.count - before.assists.count;
    println!(
        "pacer stress: {r:?}; {} cycles, {assists} mark assists ({:?})",
        after.cycles - before.cycles,
        after.assists.total - before.assists.total,
    );
    assert!(
        assists > 0,
        "no mark assist ran: at GOGC = 5 allocation during marking must pay for it"
    );
}

#[derive(gc_core::Trace)]
struct Link {
    next: Option<gc_core::Gc<Link>>,
    _value: u64,
}

#[test]
fn thread_gc_time_counts_the_calling_threads_assists() {
    setup();
    // A live list for every cycle to mark, so that allocating during marking must assist.
    let mut list = None;
    for i in 0..200_000 {
        list = Some(gc_core::Gc::new(Link {
            next: list.take(),
            _value: i,
        }));
    }
    let (before, start) = (gc_core::thread_gc_time(), std::time::Instant::now());
    let cycles = gc_core::stats().cycles;
    let mut sum = 0u64;
    for i in 0..2_000_000u64 {
        let g = gc_core::Gc::new(Link {
            next: None,
            _value: i,
        });
        sum = sum.wrapping_add(g._value);
    }
    let (charged, wall) = (gc_core::thread_gc_time() - before, start.elapsed());
    let ran = gc_core::stats().cycles - cycles;
    println!("{ran} cycles; this thread: {charged:?} for the collector in {wall:?} ({sum})");
    assert!(ran > 0, "2,000,000 allocations at GOGC = 5 ran no cycle");
    assert!(
        charged > std::time::Duration::ZERO,
        "a thread that allocated through {ran} cycles at GOGC = 5 was charged no collector time"
    );
    assert!(
        charged <= wall,
        "charged {charged:?}, more than the {wall:?} it ran"
    );
    // Another thread's time is its own.
    let other = std::thread::spawn(gc_core::thread_gc_time).join().unwrap();
    assert_eq!(other, std::time::Duration::ZERO);
    drop(list);
}
