//! The hard limit: a thread that has allocated a whole allowance past the trigger waits for
//! the cycle, but never for a collector thread that cannot move on because of it. A binary of
//! its own: its test holds the collector thread inside a drop for a while, which would starve
//! any test running beside it of cycles (and `configure` is process-wide).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use gc_core::{Gc, Trace};

/// The tests of this binary run one at a time: the first holds the collector thread up.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A small allowance (GOGC = 5 over a 256 KiB minimum heap), so the hard limit comes soon.
fn setup() -> MutexGuard<'static, ()> {
    gc_core_workspace::configure_small_allowance();
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Taken by [`NeedsLock`]'s drop; held by the allocating thread of the test below.
static HELD: Mutex<()> = Mutex::new(());

/// Its drop needs [`HELD`]; it records whether it found the lock taken.
#[derive(Trace)]
#[gc(no_scan)]
struct NeedsLock {
    blocked: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl Drop for NeedsLock {
    fn drop(&mut self) {
        if HELD.try_lock().is_err() {
            self.blocked.fetch_add(1, Ordering::SeqCst);
        }
        let _g = HELD.lock().unwrap_or_else(|e| e.into_inner());
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A thread that allocates past the hard limit waits for the cycle's sweep and drops (so that
/// a starved collector thread does not let it allocate without bound), but only while they
/// move on: here the collector thread's drop needs a lock the allocating thread holds, and the
/// thread must give up waiting and go on (with the seeded mutant `sweepwait`, which waits for
/// the cycle's end regardless, it never would).
#[test]
fn a_thread_past_the_hard_limit_goes_on_when_a_drop_needs_its_lock() {
    let _one = setup();
    let before = gc_core::stats();
    let blocked = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let (b, d) = (blocked.clone(), dropped.clone());
    let worker = thread::spawn(move || {
        let guard = HELD.lock().unwrap();
        for _ in 0..16 {
            drop(Gc::new(NeedsLock {
                blocked: b.clone(),
                dropped: d.clone(),
            }));
        }
        // Allocate garbage until a cycle's drop has found the lock taken (the collector thread
        // is then stuck in it until we let go), then another 16 MB: many times past the hard
        // limit while the cycle cannot end (each object takes a 48-byte slot).
        const MORE: u64 = (16 << 20) / 48;
        let mut end = None;
        let mut i = 0u64;
        while end.is_none_or(|end| i < end) {
            drop(Gc::new([i; 4]));
            i += 1;
            if end.is_none() && b.load(Ordering::SeqCst) > 0 {
                end = Some(i + MORE);
            }
            assert!(
                i < 100_000_000,
                "no cycle ran a drop while the lock was held"
            );
        }
        drop(guard);
        tx.send(()).unwrap();
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(()) => {}
        // The worker panicked: its message is in the join.
        Err(RecvTimeoutError::Disconnected) => panic!("{:?}", worker.join()),
        Err(RecvTimeoutError::Timeout) => {
            // A panic would leave the worker and the collector thread stuck, and the other
            // test of this binary waiting behind them: end the process.
            eprintln!(
                "the allocating thread is stuck past the hard limit, waiting for a drop that \
                 needs a lock it holds"
            );
            std::process::exit(101);
        }
    }
    worker.join().unwrap();
    gc_core::collect();
    assert!(blocked.load(Ordering::SeqCst) > 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 16);
    let after = gc_core::stats();
    assert!(
        after.limit_give_ups > before.limit_give_ups,
        "the allocating thread went on without giving up a wait at the hard limit: {after}"
    );
}

/// Large objects (over 32 KiB, a span each) move the pacer's clock like small ones: a program
/// that allocates only large objects has its garbage collected by automatic cycles, and the
/// heap stays near its allowance.
#[test]
fn large_objects_alone_start_cycles() {
    let _one = setup();
    let before = gc_core::stats();
    let mut peak = 0;
    for i in 0..4096u64 {
        // 256 MiB in all, each object garbage at once.
        drop(Gc::new([i as u8; 64 << 10]));
        if i % 64 == 0 {
            peak = peak.max(gc_core::stats().heap_bytes);
        }
    }
    let after = gc_core::stats();
    assert!(
        after.cycles > before.cycles + 8,
        "256 MiB of large objects started {} cycles",
        after.cycles - before.cycles
    );
    assert!(
        peak < 64 << 20,
        "the heap reached {peak} bytes with 64 KiB of it live"
    );
}
