//! Mark assists under pressure: a small allowance (GOGC = 5, a 256 KiB minimum heap) makes
//! every allocating thread pay for the marking while it allocates (`gc/pacer.rs`), so assists
//! enumerate roots and trace grey objects all the time, concurrently with the collector
//! thread, the barriers and each other.
//!
//! The workload is the concurrent stress of `tests/concurrent.rs` (mutators churning one
//! shared graph, every visit checked, every drop logged, drops == allocations at the end),
//! plus a check that the assists did run and did trace objects. A binary of its own, since
//! `configure` is process-wide.

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
