//! The collector: cycles, the process-wide instance, and the mutator side.
//!
//! A cycle (DESIGN §6), as built today:
//!
//! 1. **Sweep termination**: finish the previous cycle's sweep and run its pending drops.
//! 2. **Stop the world** ([`crate::heap::Heap::stop_world`]): claim every thread's cache; every
//!    mutator operation in progress finishes, every new one waits. Phase := `Marking`.
//! 3. **Mark** (`mark.rs`): roots are the objects with a root count above zero; trace from them.
//! 4. **Mark termination**: the mark bits become the sweep's verdict (a new sweep generation);
//!    phase := `Sweeping`; the world restarts.
//! 5. **Sweep**: the collecting thread sweeps every span and runs the drops of dead objects
//!    (under `catch_unwind`); allocating threads sweep spans they need meanwhile.
//!
//! *Mutator operations* are the points where a thread's handles interact with the collector:
//! allocation, cloning an unrooted handle, `GcSlot` loads and stores, and `GcCell::borrow_mut`
//! acquire/release. Each runs inside a [`crate::heap::CacheOp`] on the thread's cache
//! (`global::with_op`). Cloning and dropping a *rooted* handle are not operations: they
//! never make an object a root that was not one, nor stop being one while anything could still
//! reach through it (see `ptr/gc.rs`).
//!
//! The concurrent collector replaces step 2's waiting with barriers that shade.

pub(crate) mod global;
pub(crate) mod mark;
pub mod phase;

use std::time::{Duration, Instant};

use crate::config::GcConfig;
use crate::heap::{Heap, HeapConfig};
use crate::stats::{GcStats, Samples};
use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::Mutex;

use phase::{AtomicPhase, Phase};

/// Per-cycle bookkeeping.
#[derive(Debug, Default)]
struct CycleLog {
    pauses: Samples,
    marks: Samples,
    sweeps: Samples,
    last_pause: Duration,
    live_bytes: usize,
    live_objects: usize,
}

/// A collector: a heap plus the machinery that runs cycles on it. The process has one
/// ([`global::collector`]); tests can make more.
#[derive(Debug)]
pub(crate) struct Collector {
    pub(crate) heap: Heap,
    pub(crate) config: GcConfig,
    pub(crate) phase: AtomicPhase,
    /// Held for the whole of a cycle.
    cycle: Mutex<()>,
    started: AtomicU64,
    completed: AtomicU64,
    /// Allocated-bytes counter value at which the next automatic cycle starts (`u64::MAX`: off).
    trigger: AtomicU64,
    /// The growth the last cycle allowed (trigger minus the clock at its end).
    growth: AtomicU64,
    log: Mutex<CycleLog>,
    epoch: Instant,
    /// The thread that runs drops queued by automatic cycles.
    finalizer: std::sync::OnceLock<Option<crate::sync::thread::Thread>>,
}

impl Collector {
    pub(crate) fn new(config: GcConfig) -> Self {
        let heap = Heap::new(HeapConfig {
            limit: config.memory_limit,
        });
        let min_heap = config.min_heap as u64;
        let trigger = match config.gogc {
            Some(_) => config.min_heap as u64,
            None => u64::MAX,
        };
        Collector {
            heap,
            config,
            phase: AtomicPhase::new(),
            cycle: Mutex::new(()),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            trigger: AtomicU64::new(trigger),
            growth: AtomicU64::new(min_heap),
            log: Mutex::new(CycleLog::default()),
            epoch: Instant::now(),
            finalizer: std::sync::OnceLock::new(),
        }
    }

    /// Runs a full cycle unless one that started after this call has already completed; returns
    /// when every object that was garbage at the call has been dropped.
    pub(crate) fn collect(&self) {
        let ticket = self.started.load(Ordering::SeqCst);
        let cycle = self.cycle.lock();
        if self.completed.load(Ordering::SeqCst) > ticket {
            // A later cycle ran; its drops may still be queued or with the finalizer thread.
            // Run them without the cycle lock, as a collector (a `Drop` that calls `collect`
            // then panics instead of waiting for a lock its own thread holds).
            drop(cycle);
            let _in = global::CollectorScope::enter();
            self.heap.finish_sweep();
            return;
        }
        self.run_cycle(true);
        drop(cycle);
    }

    /// Starts a cycle if the heap has grown past the trigger and no cycle is running.
    #[inline]
    pub(crate) fn maybe_collect(&self) {
        if self.heap.allocated_bytes() < self.trigger.load(Ordering::Relaxed) {
            return;
        }
        self.collect_for_allocation();
    }

    #[cold]
    fn collect_for_allocation(&self) {
        if global::in_collector() {
            return;
        }
        // A thread that finds a cycle running goes on allocating (the cycle's own trigger
        // update will follow), unless the heap has grown a whole allowance past the trigger:
        // then it waits for the cycle, so allocation cannot outrun collection (the
        // stop-the-world collector's stand-in for the pacer's mark assists). It holds no lock
        // and is in no operation, so the cycle never waits for it.
        let _cycle = match self.cycle.try_lock() {
            Some(guard) => guard,
            None => {
                let limit = self
                    .trigger
                    .load(Ordering::Relaxed)
                    .saturating_add(self.growth.load(Ordering::Relaxed));
                if self.heap.allocated_bytes() < limit {
                    return;
                }
                self.cycle.lock()
            }
        };
        if self.heap.allocated_bytes() >= self.trigger.load(Ordering::Relaxed) {
            self.run_cycle(false);
        }
    }

    /// Hands the queued drops to the finalizer thread, starting it on first use (Go runs
    /// finalizers on a goroutine of their own for the same reason). If the thread cannot be
    /// started, the drops wait for the next explicit `collect()` or cycle that runs them.
    fn wake_finalizer(&self) {
        let thread = self.finalizer.get_or_init(|| {
            crate::sync::thread::spawn_named("gc-core finalizer", || {
                let _in = global::CollectorScope::enter();
                loop {
                    global::collector().heap.run_pending_drops();
                    crate::sync::thread::park();
                }
            })
            .ok()
        });
        if let Some(t) = thread {
            t.unpark();
        }
    }

    /// Runs one cycle. With `run_drops`, the calling thread also runs the drops of what died
    /// (an explicit `collect()`); otherwise they go to the finalizer thread (a cycle started
    /// by an allocation must not run user `Drop` code inside that allocation's caller).
    fn run_cycle(&self, run_drops: bool) {
        let _in = global::CollectorScope::enter();
        self.started.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();

        // 1. Sweep termination.
        if run_drops {
            self.heap.finish_sweep();
        } else {
            self.heap.finish_sweep_without_drops();
        }

        // 2.–4. Stop the world, mark, flip the sweep generation, restart.
        let stop = self.heap.stop_world();
        let pause_start = Instant::now();
        self.phase.set(Phase::Marking);
        // A `Trace` impl that panics (breaking its rules) must not leave half a mark behind:
        // the next cycle would take the stale bits for objects already traced. Clear them,
        // restart the world (the guard's drop) and let the panic go on.
        let marked =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mark::mark(&stop))) {
                Ok(m) => m,
                Err(panic) => {
                    stop.clear_marks();
                    self.phase.abort();
                    drop(stop);
                    std::panic::resume_unwind(panic);
                }
            };
        let mark_time = pause_start.elapsed();
        #[cfg(feature = "poison")]
        {
            stop.verify();
            mark::verify_marks(&stop);
        }
        self.phase.set(Phase::Sweeping);
        stop.begin_sweep();
        drop(stop);
        let pause = pause_start.elapsed();

        // 5. Sweep, and run (or hand over) the drops of what died.
        let sweep_start = Instant::now();
        if run_drops {
            self.heap.finish_sweep();
        } else {
            self.heap.finish_sweep_without_drops();
        }
        let sweep_time = sweep_start.elapsed();
        self.phase.set(Phase::Idle);
        if !run_drops && self.heap.has_pending_drops() {
            self.wake_finalizer();
        }

        // Pacing: the next cycle starts once the heap has grown by GOGC % of what survived.
        if let Some(gogc) = self.config.gogc {
            let growth = (marked.bytes as u64 * gogc as u64 / 100).max(self.config.min_heap as u64);
            self.growth.store(growth, Ordering::Relaxed);
            self.trigger
                .store(self.heap.allocated_bytes() + growth, Ordering::Relaxed);
        }
        {
            let mut log = self.log.lock();
            log.pauses.record(pause);
            log.marks.record(mark_time);
            log.sweeps.record(sweep_time);
            log.last_pause = pause;
            log.live_bytes = marked.bytes;
            log.live_objects = marked.objects;
        }
        let n = self.completed.fetch_add(1, Ordering::SeqCst) + 1;
        if self.config.trace {
            let st = self.heap.stats();
            eprintln!(
                "gc {n} @{:.3}s: pause {:.3} ms (mark {:.3} ms), sweep {:.3} ms, total {:.3} ms; \
                 {} roots, {} live objects, {:.2} MB live, heap {:.2} MB, {} dropped, {} drop panics",
                self.epoch.elapsed().as_secs_f64(),
                pause.as_secs_f64() * 1e3,
                mark_time.as_secs_f64() * 1e3,
                sweep_time.as_secs_f64() * 1e3,
                start.elapsed().as_secs_f64() * 1e3,
                marked.roots,
                marked.objects,
                marked.bytes as f64 / 1e6,
                st.span_bytes as f64 / 1e6,
                st.objects_dropped,
                st.drop_panics,
            );
        }
    }

    pub(crate) fn stats(&self) -> GcStats {
        let h = self.heap.stats();
        let log = self.log.lock();
        let trigger = self.trigger.load(Ordering::Relaxed);
        GcStats {
            cycles: self.completed.load(Ordering::SeqCst),
            objects_allocated: h.objects_allocated,
            objects_freed: h.objects_freed,
            objects: h.objects - h.dropped_unreclaimed.min(h.objects),
            bytes: h.object_bytes - h.dropped_unreclaimed_bytes.min(h.object_bytes),
            dropped_unreclaimed: h.dropped_unreclaimed,
            scan_bytes: h.scan_bytes,
            noscan_bytes: h.noscan_bytes + h.tiny_bytes,
            live_bytes_after_mark: log.live_bytes,
            live_objects_after_mark: log.live_objects,
            heap_bytes: h.span_bytes,
            committed_bytes: h.committed_bytes,
            goal_bytes: if trigger == u64::MAX {
                0
            } else {
                (trigger.saturating_sub(self.heap.allocated_bytes()) as usize)
                    .saturating_add(h.object_bytes)
            },
            objects_dropped: h.objects_dropped,
            drop_panics: h.drop_panics,
            pauses: log.pauses.histogram(),
            mark: log.marks.histogram(),
            sweep: log.sweeps.histogram(),
            last_pause: log.last_pause,
        }
    }
}
