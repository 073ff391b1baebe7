//! `Trace` impls that panic (they break rule 7 of `Trace`) while mark assists run: two bugs of
//! the mark assist path, each with an ignored test that fails until it is fixed.
//!
//! **A panic inside an assist.**
//! `tests/trace_panic.rs` covers a panic on the collector's own thread: the cycle is abandoned
//! and later cycles mark everything reachable. Mark workers catch their panics and hand them
//! to the collector. An assist runs the same marker on an allocating thread (from `Gc::new`,
//! once the heap has passed the pacer's trigger while the collector marks), with no such
//! handling: the panic unwinds out of the assist, and out of the user's `Gc::new`, while the
//! assist still counts as a marker holding a batch of grey objects (`Heap::grey_take` counted
//! it busy; `grey_done` never runs). The collector's mark loop then waits for the grey queue
//! to become idle for ever: every later `collect()` hangs. (Were the count given back, the
//! objects of that batch would go untraced and the cycle could free reachable objects; the
//! cycle has to be abandoned, as it is for a panic on the collector thread or a mark worker.)
//!
//! **A panic on the collector thread while an assist is tracing.** The collector abandons the
//! cycle: it clears the marks and resets the grey queue (`Heap::grey_reset`, which sets the
//! count of busy markers to zero) with the world stopped, but an assist is not a mutator
//! operation, so the stopped world does not wait for it. The assist goes on tracing its batch
//! after the reset: it sets mark bits after they were cleared, hands grey objects to a queue
//! that the next cycle resets, and then gives back a busy count it no longer holds, during the
//! next cycle. In a debug build that count underflows: the next cycle's collector thread
//! panics with "attempt to subtract with overflow" and that cycle is abandoned too (an innocent
//! `collect()` reports the panic), or the assisting thread's `Gc::new` panics with it. (Without
//! overflow checks the count wraps instead; by reading the code, a cycle can then wait for ever
//! for an idle grey queue, or see it idle while a marker still holds grey objects.)
//!
//! In its own binary: while a bomb is armed, any other test's assist could trip over it, and
//! once the collector hangs no other test could finish. The two tests take turns.

mod concurrent_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use concurrent_support as cs;
use gc_core::{Gc, GcSlot, Trace, Tracer};

/// The tests take turns (each arms a bomb that any cycle in the process can trip over).
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

static ARMED: AtomicBool = AtomicBool::new(false);
static EXPLODED: AtomicU64 = AtomicU64::new(0);

/// Panics once per arming, when traced on a thread that is not one of gc-core's own (the
/// collector thread, mark workers): that is, in a mark assist.
struct AssistBomb;

// SAFETY: holds no handle; `trace` panicking when armed is the misuse under test.
unsafe impl Trace for AssistBomb {
    const NO_SCAN: bool = false;
    fn trace(&self, _: &mut Tracer) {
        let on_gc_thread = thread::current()
            .name()
            .is_some_and(|n| n.starts_with("gc-core"));
        if !on_gc_thread && ARMED.swap(false, Ordering::SeqCst) {
            EXPLODED.fetch_add(1, Ordering::SeqCst);
            panic!("AssistBomb::trace (in a mark assist)");
        }
    }
    fn root(&mut self) {}
    unsafe fn unroot(&mut self) {}
}

#[derive(Trace)]
struct Link {
    bomb: AssistBomb,
    next: GcSlot<Link>,
}

fn link() -> Gc<Link> {
    Gc::new(Link {
        bomb: AssistBomb,
        next: GcSlot::new(None),
    })
}

/// `collect()` on another thread: `Some(returned normally)`, `None` if it hung.
fn collect_within(limit: Duration) -> Option<bool> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = std::panic::catch_unwind(gc_core::collect);
        let _ = tx.send(r.is_ok());
    });
    rx.recv_timeout(limit).ok()
}

#[test]
fn a_panicking_trace_in_a_mark_assist_abandons_the_cycle() {
    let _serial = serial();
    const CHAIN: usize = 300_000;
    // A long chain, so that marking lasts and allocating threads assist it.
    let head = link();
    let mut cur = head.clone();
    for _ in 0..CHAIN {
        let n = link();
        cur.next.store(Some(n.clone()));
        cur = n;
    }
    drop(cur);
    let log = cs::Log::new(0);
    ARMED.store(true, Ordering::SeqCst);
    let stop = Arc::new(AtomicBool::new(false));
    let allocators: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // The bomb may go off inside one of these `Gc::new`s.
                    let _ = std::panic::catch_unwind(|| {
                        for _ in 0..64 {
                            drop(cs::cnode(log));
                        }
                    });
                }
            })
        })
        .collect();
    let deadline = Instant::now() + cs::HANG;
    while EXPLODED.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "no mark assist traced the bomb within {:?}",
            cs::HANG
        );
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    for h in allocators {
        cs::join(h, "an allocating thread");
    }
    ARMED.store(false, Ordering::SeqCst);

    // The cycle the assist was helping may report the panic; it must end (well within 30 s:
    // a cycle over this heap takes well under a second), and the next one must complete
    // normally.
    let first = collect_within(Duration::from_secs(30));
    assert!(
        first.is_some(),
        "collect() hung after a Trace panic in a mark assist"
    );
    assert_eq!(
        collect_within(cs::HANG),
        Some(true),
        "the cycle after the abandoned one"
    );
    // Nothing reachable was lost.
    let mut len = 0;
    let mut c = head.clone();
    while let Some(n) = c.next.load() {
        c = n;
        len += 1;
    }
    assert_eq!(len, CHAIN, "the chain lost links");
    drop((c, head));
    cs::collect_or_fail();
    log.assert_all_dropped_once("allocating threads' garbage");
}

// ---------------------------------------------------------------------------------------------
// A panic on the collector thread while an assist is tracing
// ---------------------------------------------------------------------------------------------

static SLOW_ARMED: AtomicBool = AtomicBool::new(false);
static ASSIST_INSIDE: AtomicBool = AtomicBool::new(false);
static COLLECTOR_PANICKED: AtomicBool = AtomicBool::new(false);
static ASSIST_RESUMED: AtomicBool = AtomicBool::new(false);

/// While armed: on the first mark assist that traces it, takes its time (a slow `trace` is
/// allowed) until the collector thread has panicked, and a second more; on the collector
/// thread, once an assist is inside such a `trace`, panics (the misuse under test).
struct SlowOrBomb;

// SAFETY: holds no handle; `trace` panicking on the collector thread is the misuse under test.
unsafe impl Trace for SlowOrBomb {
    const NO_SCAN: bool = false;
    fn trace(&self, _: &mut Tracer) {
        if !SLOW_ARMED.load(Ordering::SeqCst) {
            return;
        }
        let name = thread::current().name().map(str::to_owned);
        match name.as_deref() {
            Some("gc-core collector") => {
                if ASSIST_INSIDE.load(Ordering::SeqCst)
                    && !COLLECTOR_PANICKED.swap(true, Ordering::SeqCst)
                {
                    panic!("SlowOrBomb::trace on the collector thread");
                }
            }
            Some(n) if n.starts_with("gc-core") => {}
            _ => {
                // A mark assist.
                if !ASSIST_INSIDE.swap(true, Ordering::SeqCst) {
                    let t = Instant::now();
                    while !COLLECTOR_PANICKED.load(Ordering::SeqCst)
                        && t.elapsed() < Duration::from_secs(20)
                    {
                        thread::sleep(Duration::from_millis(1));
                    }
                    // Long enough for the collector to finish abandoning the cycle.
                    thread::sleep(Duration::from_secs(1));
                    SLOW_ARMED.store(false, Ordering::SeqCst);
                    ASSIST_RESUMED.store(true, Ordering::SeqCst);
                }
            }
        }
    }
    fn root(&mut self) {}
    unsafe fn unroot(&mut self) {}
}

#[derive(Trace)]
struct Shelf {
    slow: SlowOrBomb,
    next: GcSlot<Shelf>,
    kid: GcSlot<cs::CNode>,
}

fn shelf(kid: Option<Gc<cs::CNode>>) -> Gc<Shelf> {
    Gc::new(Shelf {
        slow: SlowOrBomb,
        next: GcSlot::new(None),
        kid: GcSlot::new(kid),
    })
}

#[test]
fn an_assist_in_progress_when_a_cycle_is_abandoned_does_not_disturb_the_next_cycles() {
    let _serial = serial();
    // Many short chains: enough grey objects at once that the collector has work of its own
    // while an assist holds a batch.
    const CHAINS: usize = 4096;
    const LEN: usize = 50;
    let log = cs::Log::new(1 << 20);
    let heads: Vec<Gc<Shelf>> = (0..CHAINS)
        .map(|_| {
            let head = shelf(None);
            let mut cur = head.clone();
            for _ in 0..LEN {
                let n = shelf(Some(cs::cnode(log)));
                cur.next.store(Some(n.clone()));
                cur = n;
            }
            head
        })
        .collect();
    let temp = cs::Log::new(0);
    let panics: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let allocators: Vec<_> = (0..2)
        .map(|_| {
            let (stop, panics) = (stop.clone(), panics.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = std::panic::catch_unwind(|| {
                        for _ in 0..64 {
                            drop(cs::cnode(temp));
                        }
                    });
                    if let Err(p) = r {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default();
                        panics.lock().unwrap().push(msg);
                    }
                }
            })
        })
        .collect();
    // `collect()` back to back meanwhile: a cycle that fails reports its panic to the calls
    // waiting for it. Only the cycle whose marking hit the bomb may fail.
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let collected = Arc::new(AtomicU64::new(0));
    let collector = {
        let (stop, failures, collected) = (stop.clone(), failures.clone(), collected.clone());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match std::panic::catch_unwind(gc_core::collect) {
                    Ok(()) => {}
                    Err(p) => {
                        let msg = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default();
                        failures.lock().unwrap().push(msg);
                    }
                }
                collected.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    SLOW_ARMED.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + cs::HANG;
    while !ASSIST_RESUMED.load(Ordering::SeqCst) {
        assert!(
            Instant::now() < deadline,
            "no assist traced a SlowOrBomb while the collector marked (assist inside: {}, \
             collector panicked: {})",
            ASSIST_INSIDE.load(Ordering::SeqCst),
            COLLECTOR_PANICKED.load(Ordering::SeqCst)
        );
        thread::sleep(Duration::from_millis(5));
    }
    SLOW_ARMED.store(false, Ordering::SeqCst);
    assert!(COLLECTOR_PANICKED.load(Ordering::SeqCst));
    // A few more cycles after the assist went on.
    let after = collected.load(Ordering::SeqCst);
    let deadline = Instant::now() + cs::HANG;
    while collected.load(Ordering::SeqCst) < after + 4 {
        assert!(
            Instant::now() < deadline && !collector.is_finished(),
            "collect() hung after the abandoned cycle"
        );
        thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    cs::join(collector, "the collecting thread");
    let failures = failures.lock().unwrap().clone();
    let others: Vec<&String> = failures
        .iter()
        .filter(|m| !m.contains("SlowOrBomb"))
        .collect();
    assert!(
        others.is_empty(),
        "cycles after the abandoned one failed too: {others:?}"
    );
    for round in 0..2 {
        assert_eq!(
            collect_within(Duration::from_secs(30)),
            Some(true),
            "collect() {round} after the abandoned cycle failed or hung"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for h in allocators {
        cs::join(h, "an allocating thread");
    }
    let panics = panics.lock().unwrap().clone();
    assert!(
        panics.is_empty(),
        "Gc::new panicked on an allocating thread: {panics:?}"
    );
    // Nothing reachable was lost.
    for head in &heads {
        let mut len = 0;
        let mut c = head.clone();
        while let Some(n) = c.next.load() {
            cs::verify(&n.kid.load().expect("every link but the head has a kid"));
            c = n;
            len += 1;
        }
        assert_eq!(len, LEN, "a chain lost links");
    }
    drop(heads);
    cs::collect_or_fail();
    log.assert_all_dropped_once("chains");
    temp.assert_all_dropped_once("allocating threads' garbage");
}
