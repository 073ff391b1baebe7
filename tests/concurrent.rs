//! Concurrent marking with the background collector thread (the default configuration):
//! mutators run while cycles mark, nothing they can reach is lost, and no mutator holding a
//! borrow holds up a cycle (DESIGN §6, invariants **I1** safety, **I2** SATB, **I3**
//! completeness).
//!
//! - `churn_one_shared_graph_while_cycles_run_back_to_back`: 4 mutator threads churn one shared
//!   graph (slot `store`/`swap`/`compare_exchange`, cell pushes, pops and swaps, clones, drops,
//!   fresh nodes, garbage cycles of several shapes, noscan leaves with drop glue and tiny
//!   `Gc<u32>` objects) while another thread calls `collect()` back to back, for
//!   `GC_CORE_CONCURRENT_SECS` seconds (default 10). Every object visited is checked (checksum,
//!   tombstone written by its drop, per-id drop count); at the end, after dropping everything
//!   and one `collect()`, every object allocated has been dropped exactly once.
//! - `long_borrow_mut_does_not_block_cycles`: a thread holds a `GcCell::borrow_mut` across many
//!   cycles (and calls `collect()` itself while holding it); every `collect()` returns, what is
//!   pushed into the borrowed content survives, what is popped out and dropped is collected.
//! - `long_shared_borrow_with_a_waiting_writer_does_not_block_cycles`: the same with a shared
//!   borrow, and another thread waiting in `borrow_mut` meanwhile.
//! - `nodes_moved_between_cells_inside_a_cell`: cells inside a cell, each borrowed on its own
//!   or all at once through the outer one, on three threads while cycles run.
//! - `objects_allocated_during_marking_survive`: allocation on three threads while cycles run.
//! - `threads_start_and_exit_while_cycles_run`: short-lived threads allocate, link nodes into a
//!   shared cell and exit holding handles in a thread-local, while cycles run.
//! - `stats_count_cycles_and_pauses`: `stats()` after cycles: one mark and sweep time per cycle,
//!   at least three handshakes per cycle, histograms ordered (no wall-clock bounds).
//! - `the_collector_runs_on_a_background_thread`: the cycle of a `collect()` runs (and drops
//!   garbage) on the "gc-core collector" thread.
//! - `write_barrier_*`: each barrier case on its own, against cycles run back to back, built so
//!   that losing the barrier loses an object (see `concurrent_support`): a slot store whose
//!   source's only other root is then dropped, a swap whose old target is kept, a load whose
//!   slot another thread overwrites, dropping the last root while the edge is being moved, and
//!   a move from one cell to another.
//!
//! The stress test is named to sort first, so that libtest starts it first and the others run
//! beside it: the binary takes about `GC_CORE_CONCURRENT_SECS` + 2 s. Run longer with
//! `GC_CORE_CONCURRENT_SECS=600 cargo test --release --test concurrent -- --nocapture`.

mod concurrent_support;

use std::sync::Mutex;

use concurrent_support as cs;
use gc_core::Gc;

#[test]
fn churn_one_shared_graph_while_cycles_run_back_to_back() {
    let r = cs::stress(4, cs::scaled(1.0), 0xC0_4C_0E);
    println!("concurrent stress: {r:?}");
}

#[test]
fn long_borrow_mut_does_not_block_cycles() {
    cs::long_borrow_mut(4, cs::scaled(0.05), true);
}

#[test]
fn long_shared_borrow_with_a_waiting_writer_does_not_block_cycles() {
    cs::long_shared_borrow(3);
}

#[test]
fn nodes_moved_between_cells_inside_a_cell() {
    let n = cs::nested_cells(cs::scaled(0.06));
    println!("{n} operations on nested cells");
}

#[test]
fn objects_allocated_during_marking_survive() {
    let n = cs::allocation_during_marking(3, cs::scaled(0.06));
    println!("allocated during cycles: {n} nodes");
}

#[test]
fn threads_start_and_exit_while_cycles_run() {
    let n = cs::threads_come_and_go(cs::scaled(0.06));
    println!("{n} short-lived threads");
}

#[test]
fn stats_count_cycles_and_pauses() {
    let log = cs::Log::new(1 << 16);
    let s0 = cs::settled_stats();
    cs::assert_stats_consistent(&s0);
    let keep: Vec<Gc<cs::CNode>> = (0..2000).map(|_| cs::cnode_full(log)).collect();
    for k in keep.windows(2) {
        k[0].a.store(Some(k[1].clone()));
    }
    for round in 0..3 {
        for _ in 0..500 {
            let g = cs::cnode_full(log);
            g.b.store(Some(g.clone()));
        }
        cs::collect_or_fail();
        let s = cs::settled_stats();
        cs::assert_stats_consistent(&s);
        assert!(s.cycles > s0.cycles + round, "collect() completes a cycle");
    }
    let s1 = cs::settled_stats();
    cs::assert_stats_consistent(&s1);
    let cycles = s1.cycles - s0.cycles;
    assert!(cycles >= 3, "{cycles} cycles for 3 collect() calls");
    assert_eq!(s1.mark.count - s0.mark.count, cycles);
    assert_eq!(s1.sweep.count - s0.sweep.count, cycles);
    assert!(
        s1.pauses.count - s0.pauses.count >= 3 * cycles,
        "{} handshakes in {cycles} cycles",
        s1.pauses.count - s0.pauses.count
    );
    for (a, b, what) in [
        (&s0.pauses, &s1.pauses, "pauses"),
        (&s0.mark, &s1.mark, "mark"),
        (&s0.sweep, &s1.sweep, "sweep"),
        (&s0.assists, &s1.assists, "assists"),
    ] {
        assert!(
            b.count >= a.count && b.total >= a.total && b.max >= a.max,
            "{what}: the histogram went back from {a:?} to {b:?}"
        );
    }
    assert!(s1.objects_dropped >= s0.objects_dropped + 2000);
    for k in &keep {
        cs::verify(k);
    }
    println!("{s1}");
    drop(keep);
    cs::collect_or_fail();
    log.assert_all_dropped_once("stats");
}

#[test]
fn the_collector_runs_on_a_background_thread() {
    static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
    for _ in 0..8 {
        drop(Gc::new(cs::DropsWhere { names: &NAMES }));
    }
    cs::collect_or_fail();
    let names = NAMES.lock().unwrap().clone();
    assert_eq!(names.len(), 8, "garbage dropped by collect()");
    assert!(
        names.iter().all(|n| n == "gc-core collector"),
        "dropped on {names:?}, not the collector thread"
    );
    let threads = cs::thread_names();
    if !threads.is_empty() {
        // Thread names are cut to 15 bytes.
        assert!(
            threads.iter().any(|n| n == "gc-core collect"),
            "no collector thread among {threads:?}"
        );
    }
}

#[test]
fn write_barrier_slot_store_then_drop_the_last_other_root() {
    let r = cs::barrier_store_then_drop(cs::scaled(0.06));
    println!("store then drop: {r:?}");
}

#[test]
fn write_barrier_slot_swap_keeps_the_old_target() {
    let r = cs::barrier_swap_keeps_old(cs::scaled(0.06));
    println!("swap keeps old: {r:?}");
}

#[test]
fn write_barrier_slot_load_then_another_thread_overwrites() {
    let r = cs::barrier_load_then_overwrite(cs::scaled(0.06));
    println!("load then overwrite: {r:?}");
}

#[test]
fn write_barrier_drop_the_last_root_while_the_edge_moves() {
    let r = cs::barrier_drop_root_while_edge_moves(cs::scaled(0.06));
    println!("drop root while edge moves: {r:?}");
}

#[test]
fn write_barrier_cell_borrow_mut_moves_a_handle_to_another_cell() {
    let r = cs::barrier_cell_to_cell(cs::scaled(0.06));
    println!("cell to cell: {r:?}");
}
