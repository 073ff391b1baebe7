//! The collector: cycles, the process-wide instance, and the mutator side.
//!
//! A cycle (DESIGN §6), run by the background collector thread (or, with
//! `GcConfig::background` off, by the thread that needs it):
//!
//! 1. **Sweep termination**: finish the previous cycle's sweep (and, on the collector thread,
//!    run its pending drops).
//! 2. **Mark setup** (a handshake): phase := `Marking`, allocation turns black; the collector
//!    waits only for the mutator operations in progress to end (`Heap::set_black`), then
//!    has the thread caches give their spans back so that every object is in a listed span.
//! 3. **Concurrent mark** (`mark.rs`): enumerate the objects with a root count above zero and
//!    trace from them, on the collector thread, extra mark workers, and allocating threads
//!    that assist; mutators' barriers (`barrier.rs`, `ptr/gc.rs`) shade what they change.
//! 4. **Mark termination**: when no grey object is left, a handshake flushes barriers in
//!    flight; if that found more work, back to 3. Then phase := `MarkTermination` and one more
//!    handshake (the grace period after which no barrier shades and no `GcSlot::load` that
//!    read a pointer before it is still running), and the mark bits become the sweep's
//!    verdict (a new sweep generation, allocation white again).
//! 5. **Sweep**: phase := `Sweeping`; the collector sweeps every span and runs the drops of
//!    dead objects (under `catch_unwind`); allocating threads sweep spans they need meanwhile.
//!
//! *Mutator operations* are the points where a thread's handles interact with the collector:
//! allocation, cloning an unrooted handle, `GcSlot` loads and stores, `GcCell::borrow_mut`
//! acquire/release, and dropping a rooted handle to an unmarked object while marking. Each runs
//! inside a [`crate::heap::CacheOp`] on the thread's cache (`global::with_op`): its per-thread
//! op word is the "pin" that handshakes wait out. No mutator ever waits for the collector, except for the
//! cache flush at mark setup and sweep start (its own cache's flush), and a thread that has
//! allocated a whole GOGC allowance past the trigger while the cycle has not finished.

pub(crate) mod barrier;
pub(crate) mod global;
pub(crate) mod mark;
pub(crate) mod pacer;
pub mod phase;

use std::time::{Duration, Instant};

use crate::config::GcConfig;
use crate::heap::{Heap, HeapConfig};
use crate::stats::{CycleStats, GcStats, Samples};
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use crate::sync::thread::Thread;
use crate::sync::{Arc, Mutex};

use phase::{phase, Phase};

/// An allocating thread past the hard limit waits for the cycle in slices of this length
/// (`Collector::wait_at_hard_limit`)...
const LIMIT_WAIT_SLICE: Duration = Duration::from_millis(1);

/// ...and gives up once the collector has made no progress for this many slices (in time;
/// under loom, which has no time, in slices: each is a yield there).
const LIMIT_WAIT_PATIENCE: u32 = 2;

/// Per-cycle bookkeeping.
#[derive(Debug, Default)]
struct CycleLog {
    pauses: Samples,
    marks: Samples,
    sweeps: Samples,
    assists: Samples,
    limit_waits: Samples,
    limit_give_ups: u64,
    last_pause: Duration,
    last_cycle: CycleStats,
    /// Assist time during the cycle in progress.
    cycle_assist: Duration,
    live_bytes: usize,
    live_objects: usize,
}

/// The background collector thread's mailbox.
#[derive(Debug, Default)]
struct Driver {
    /// The highest cycle number someone has asked for.
    wanted: u64,
    /// The number of the last cycle that ended (completed or abandoned).
    done: u64,
    /// Whether the collector thread is running a cycle (numbered `done + 1`).
    running: bool,
    /// The number of the last cycle whose mark has ended (its sweep has begun).
    marked: u64,
    /// Recently abandoned cycles and their panic messages.
    failed: Vec<(u64, String)>,
    /// Threads waiting for a cycle to end.
    waiters: Vec<Thread>,
    /// Under loom: the collector thread exits once no cycle is asked for
    /// (`loom_hooks::CollectorThread::stop`: every loom thread must end with its execution).
    #[cfg(loom)]
    exit: bool,
}

/// A collector: a heap plus the machinery that runs cycles on it. The process has one
/// ([`global::collector`]).
#[derive(Debug)]
pub(crate) struct Collector {
    pub(crate) heap: Heap,
    pub(crate) config: GcConfig,
    /// Held for the whole of a cycle.
    cycle: Mutex<()>,
    started: AtomicU64,
    completed: AtomicU64,
    /// Allocated-bytes counter value at which the allocating threads next look at the
    /// collector (start a cycle, assist it); `u64::MAX`: automatic collection is off.
    trigger: AtomicU64,
    /// Allocated-bytes counter value past which an allocating thread waits for the running
    /// cycle to end (the backstop when mark assists cannot keep up).
    hard_limit: AtomicU64,
    /// The growth the last cycle allowed (trigger minus the clock at its end).
    growth: AtomicU64,
    /// What allocation owes the mark in progress (mark assists).
    pacer: pacer::AssistPacer,
    log: Mutex<CycleLog>,
    /// The first panic a mark worker or assist caught in the cycle being marked.
    mark_panic: Mutex<Option<String>>,
    epoch: Instant,
    driver: Mutex<Driver>,
    /// The background collector thread, once started (`None` inside: it could not be).
    collector_thread: std::sync::OnceLock<Option<Thread>>,
    /// The thread that runs drops queued by automatic cycles run on mutator threads.
    finalizer: std::sync::OnceLock<Option<Thread>>,
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
            cycle: Mutex::new(()),
            started: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            trigger: AtomicU64::new(trigger),
            hard_limit: AtomicU64::new(trigger.saturating_add(min_heap)),
            growth: AtomicU64::new(min_heap),
            pacer: pacer::AssistPacer::default(),
            log: Mutex::new(CycleLog::default()),
            mark_panic: Mutex::new(None),
            epoch: Instant::now(),
            driver: Mutex::new(Driver::default()),
            collector_thread: std::sync::OnceLock::new(),
            finalizer: std::sync::OnceLock::new(),
        }
    }

    /// Runs a full cycle unless one that started after this call has already completed; returns
    /// when every object that was garbage at the call has been dropped.
    pub(crate) fn collect(&self) {
        if self.config.background {
            if let Some(t) = self.collector_thread() {
                let want = self.request(t);
                self.wait_for(want);
                return;
            }
        }
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

    /// The background collector thread, started on first use; `None` if it cannot be.
    fn collector_thread(&self) -> Option<&Thread> {
        self.collector_thread
            .get_or_init(|| {
                crate::sync::thread::spawn_named("gc-core collector", || {
                    global::collector().background_loop()
                })
                .ok()
            })
            .as_ref()
    }

    /// Asks the collector thread for a cycle that starts after this call; returns its number.
    fn request(&self, thread: &Thread) -> u64 {
        let want = {
            let mut d = self.driver.lock();
            let want = d.done + if d.running { 2 } else { 1 };
            d.wanted = d.wanted.max(want);
            want
        };
        thread.unpark();
        want
    }

    /// Waits until cycle `want` has ended, its drops included (an explicit `collect()`). If the
    /// cycle was abandoned because a `Trace` impl panicked, the caller panics with that message
    /// (as it would have had it run the cycle itself).
    fn wait_for(&self, want: u64) {
        loop {
            {
                let mut d = self.driver.lock();
                if d.done >= want {
                    if let Some((_, msg)) = d.failed.iter().find(|(n, _)| *n == want) {
                        let msg = msg.clone();
                        drop(d);
                        panic!("gc-core: the collection cycle was abandoned: {msg}");
                    }
                    return;
                }
                d.waiters.push(crate::sync::thread::current());
            }
            crate::sync::thread::park();
        }
    }

    /// The background collector thread: runs the cycles asked for, one after another.
    fn background_loop(&self) {
        let _in = global::CollectorScope::enter();
        loop {
            let n = {
                let mut d = self.driver.lock();
                while d.wanted <= d.done {
                    #[cfg(loom)]
                    if d.exit {
                        return;
                    }
                    drop(d);
                    crate::sync::thread::park();
                    d = self.driver.lock();
                }
                d.running = true;
                d.done + 1
            };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _cycle = self.cycle.lock();
                self.run_cycle(true);
            }));
            let mut d = self.driver.lock();
            d.running = false;
            d.done = n;
            if let Err(p) = r {
                let msg = panic_message(&*p);
                if d.failed.len() >= 16 {
                    d.failed.remove(0);
                }
                d.failed.push((n, msg));
            }
            for w in d.waiters.drain(..) {
                w.unpark();
            }
        }
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
        if self.config.background {
            if let Some(t) = self.collector_thread() {
                return self.pace_background(t);
            }
        }
        // A thread that finds a cycle running goes on allocating (the cycle's own trigger
        // update will follow), unless the heap has grown a whole allowance past the trigger:
        // then it waits for the cycle, so allocation cannot outrun collection. It holds no lock
        // and is in no operation, so the cycle never waits for it.
        let _cycle = match self.cycle.try_lock() {
            Some(guard) => guard,
            None => {
                if self.heap.allocated_bytes() < self.hard_limit.load(Ordering::Relaxed) {
                    return;
                }
                self.cycle.lock()
            }
        };
        if self.heap.allocated_bytes() >= self.trigger.load(Ordering::Relaxed) {
            self.run_cycle(false);
        }
    }

    /// An allocating thread past the trigger, with a background collector: asks for a cycle,
    /// pays its allocation's debt to the mark in progress with a mark assist (`pacer.rs`), and
    /// waits for the cycle only past the hard limit (`wait_at_hard_limit`).
    fn pace_background(&self, thread: &Thread) {
        let allocated = self.heap.allocated_bytes();
        let trigger = self.trigger.load(Ordering::Relaxed);
        if allocated < trigger {
            return;
        }
        let growth = self.growth.load(Ordering::Relaxed);
        let marking = phase::marking();
        // Look again after another step (unless the cycle's end has already set a new
        // trigger): while marking, a step's debt is one assist, so steps are short.
        let step = if marking {
            pacer::assist_step(growth)
        } else {
            (growth / 8).max(64 << 10)
        };
        let moved = self
            .trigger
            .compare_exchange(
                trigger,
                allocated.saturating_add(step),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        let mut want = None;
        if !marking {
            want = Some(self.want_cycle(thread));
        } else if moved {
            let budget = self.pacer.debt(allocated);
            if budget > 0 {
                self.assist(usize::try_from(budget).unwrap_or(usize::MAX));
            }
        }
        let hard_limit = self.hard_limit.load(Ordering::Relaxed);
        if allocated >= hard_limit {
            let want = want.unwrap_or_else(|| self.want_cycle(thread));
            // One allowance further on, the wait covers the sweep and the drops too.
            let sweep_limit = hard_limit.saturating_add(growth);
            self.wait_at_hard_limit(want, allocated >= sweep_limit);
        }
    }

    /// An allocating thread that has allocated a whole allowance past the trigger waits for
    /// cycle `want`'s mark to end, and one allowance further on (`whole`) for the cycle to end:
    /// its sweep and the drops it queued, since what it found dead comes back only then. So a
    /// collector thread short of CPU slows allocation down to its own pace instead of letting
    /// it run ahead, while a collector that keeps up (whose drops take less than an allowance
    /// of allocation) holds no one up for its drops. (The thread does not help sweep
    /// meanwhile: that made loom model (f) seven times larger, for little, since the sweep
    /// proper takes milliseconds where the drops take the time.)
    ///
    /// The wait goes on only while the collector moves on (mark work, spans swept, drops run):
    /// after [`LIMIT_WAIT_PATIENCE`] × [`LIMIT_WAIT_SLICE`] without, the thread gives up and
    /// goes on allocating (a collector descheduled that long counts as stuck: the limit is
    /// then a brake on allocation, not a bound). The collector thread may be stuck in a user
    /// `Drop` (of this cycle, or of the last one, run at this cycle's sweep termination) that
    /// needs a lock this thread holds: waiting for it would deadlock.
    fn wait_at_hard_limit(&self, want: u64, whole: bool) {
        let start = Instant::now();
        let me = crate::sync::thread::current();
        let over = |d: &Driver| d.done >= want || (!whole && d.marked >= want);
        {
            let mut d = self.driver.lock();
            if over(&d) {
                return;
            }
            // Woken when the mark or the cycle ends (else a slice later).
            d.waiters.push(me.clone());
        }
        let progress = || self.heap.sweep_progress() + self.pacer.work_done();
        let (mut seen, mut idle, mut since) = (progress(), 0, Instant::now());
        let gave_up = loop {
            crate::sync::thread::park_timeout(LIMIT_WAIT_SLICE);
            if over(&self.driver.lock()) {
                break false;
            }
            let now = progress();
            if now != seen {
                (seen, idle, since) = (now, 0, Instant::now());
                continue;
            }
            idle += 1;
            // Counted in time: a park can return early (a stale unpark).
            let stalled = idle >= LIMIT_WAIT_PATIENCE
                && (cfg!(loom) || since.elapsed() >= LIMIT_WAIT_SLICE * LIMIT_WAIT_PATIENCE);
            // A seeded mutant for the loom models: wait for the cycle's end whatever happens.
            if stalled && !cfg!(gc_core_mutant = "sweepwait") {
                break true;
            }
        };
        if gave_up {
            // Not left behind for the cycle's end to unpark (harmless, but a wasted wake-up).
            self.driver.lock().waiters.retain(|w| w.id() != me.id());
        }
        let waited = start.elapsed();
        crate::stats::charge_thread(waited);
        let mut log = self.log.lock();
        log.limit_waits.record(waited);
        log.limit_give_ups += u64::from(gave_up);
    }

    /// Asks the collector thread for a cycle unless one is running or asked for; returns the
    /// number of the cycle that will run (or runs) next.
    fn want_cycle(&self, thread: &Thread) -> u64 {
        let want = {
            let mut d = self.driver.lock();
            if d.running || d.wanted > d.done {
                d.wanted.max(d.done + 1)
            } else {
                d.wanted = d.done + 1;
                d.wanted
            }
        };
        thread.unpark();
        want
    }

    /// A mark assist (the pacer's hook): the allocating thread traces up to `budget` objects
    /// of the mark's work itself. A `Trace` impl that panics here (breaking its rules) is not
    /// the allocating caller's business: the panic is handed to the collector thread, which
    /// abandons the cycle.
    fn assist(&self, budget: usize) {
        let start = Instant::now();
        let traced = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            mark::Marker::new(&self.heap, &self.pacer, false).drain(budget)
        })) {
            Ok(n) => n,
            Err(p) => {
                self.report_mark_panic(&*p);
                0
            }
        };
        let t = start.elapsed();
        crate::stats::charge_thread(t);
        if traced > 0 {
            let mut log = self.log.lock();
            log.assists.record(t);
            log.cycle_assist += t;
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
    /// (the collector thread, or an explicit `collect()`); otherwise they go to the finalizer
    /// thread (a cycle run by an allocating thread must not run user `Drop` code inside that
    /// allocation's caller).
    ///
    /// The steps are separate functions so that the loom models can run them one at a time
    /// (`loom_hooks::Cycle`); this is the only other caller, and it calls them in this order.
    fn run_cycle(&self, run_drops: bool) {
        let mut cycle = self.sweep_termination(run_drops);
        self.mark_setup(&mut cycle);
        self.concurrent_mark(&mut cycle);
        self.mark_termination(&mut cycle);
        self.sweep(cycle);
    }

    /// Step 1, sweep termination: starts a cycle and finishes the previous one's sweep.
    fn sweep_termination(&self, run_drops: bool) -> CycleRun {
        let _in = global::CollectorScope::enter();
        self.started.fetch_add(1, Ordering::SeqCst);
        let start = Instant::now();
        let cycle = CycleRun {
            _in,
            run_drops,
            start,
            pauses: Samples::default(),
            mark_start: start,
            mark_time: Duration::ZERO,
            live_objects: 0,
            live_bytes: 0,
        };
        if run_drops {
            self.heap.finish_sweep();
        } else {
            self.heap.finish_sweep_without_drops();
        }
        cycle
    }

    /// Step 2, mark setup: barriers on, allocation black, one handshake; then every cached
    /// span goes back to the lists root enumeration walks.
    fn mark_setup(&self, cycle: &mut CycleRun) {
        #[cfg(feature = "poison")]
        cycle.timed(|| mark::verify_unmarked(&self.heap.stop_world()));
        self.heap.grey_reset();
        self.mark_panic.lock().take();
        self.log.lock().cycle_assist = Duration::ZERO;
        // The pacer: this mark should end a sixteenth of the allowance before the hard limit
        // (the rest of the allowance is the mark's runway), taking about the work the last
        // one did (the first guesses a header read per 32 bytes of heap).
        let allocated = self.heap.allocated_bytes();
        let growth = self.growth.load(Ordering::Relaxed);
        let goal = self
            .hard_limit
            .load(Ordering::Relaxed)
            .saturating_sub(growth / 16);
        self.pacer.start(allocated, goal, allocated / 32);
        if self.config.gogc.is_some() && matches!(self.collector_thread.get(), Some(Some(_))) {
            // The first look comes one assist step into the mark, not after whatever step was
            // left from before it (that debt would be one long assist). Only allocating
            // threads of a background collector assist (`pace_background`).
            self.trigger.fetch_min(
                allocated.saturating_add(pacer::assist_step(growth)),
                Ordering::Relaxed,
            );
        }
        cycle.mark_start = Instant::now();
        cycle.timed(|| {
            phase().set(Phase::Marking);
            self.heap.set_black(true);
        });
        // Every operation that began before `Marking` has ended: the snapshot is taken, and
        // markers (assists) may trace from now on.
        self.heap.grey_open();
        // Each cache is flushed in turn: record the longest (an owner that waited, waited less).
        let longest_flush = self.heap.flush_caches();
        cycle.pauses.record(longest_flush);
    }

    /// Steps 3–4, concurrent mark and termination. A `Trace` impl that panics (breaking its
    /// rules) must not leave half a mark behind: the cycle is abandoned.
    fn concurrent_mark(&self, cycle: &mut CycleRun) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.mark(&mut cycle.pauses);
        }));
        if let Err(panic) = r {
            self.abandon_mark();
            std::panic::resume_unwind(panic);
        }
        cycle.mark_time = cycle.mark_start.elapsed();
        (cycle.live_objects, cycle.live_bytes) = self.heap.marked();
    }

    /// The end of step 4: the grace period (no barrier shades once it ends, and every
    /// operation that read a pointer during marking has finished with it), then the mark bits
    /// become the sweep's verdict.
    fn mark_termination(&self, cycle: &mut CycleRun) {
        cycle.timed(|| {
            phase().set(Phase::MarkTermination);
            self.heap.handshake();
        });
        #[cfg(feature = "poison")]
        cycle.timed(|| {
            // The heap verifier needs a heap that holds still: stop the world (debug only).
            let stop = self.heap.stop_world();
            stop.verify();
            mark::verify_marks(&stop);
            stop.begin_sweep();
        });
        #[cfg(not(feature = "poison"))]
        {
            let (handshake, longest_flush) = self.heap.start_sweep();
            cycle.pauses.record(handshake);
            cycle.pauses.record(longest_flush);
        }
        phase().set(Phase::Sweeping);
        // Threads waiting at the hard limit for the mark may go on (`wait_at_hard_limit`).
        let mut d = self.driver.lock();
        if d.running {
            d.marked = d.done + 1;
            for w in d.waiters.drain(..) {
                w.unpark();
            }
        }
    }

    /// Step 5: sweep, and run (or hand over) the drops of what died; then pacing and the
    /// cycle's statistics.
    fn sweep(&self, cycle: CycleRun) {
        let CycleRun {
            _in,
            run_drops,
            start,
            pauses,
            mark_start: _,
            mark_time,
            live_objects,
            live_bytes,
        } = cycle;
        let sweep_start = Instant::now();
        if run_drops {
            self.heap.finish_sweep();
        } else {
            self.heap.finish_sweep_without_drops();
        }
        let sweep_time = sweep_start.elapsed();
        phase().set(Phase::Idle);
        if !run_drops && self.heap.has_pending_drops() {
            self.wake_finalizer();
        }

        // Pacing: the next cycle starts once the heap has grown by GOGC % of what survived.
        if let Some(gogc) = self.config.gogc {
            let growth = (live_bytes * gogc as u64 / 100).max(self.config.min_heap as u64);
            let trigger = self.heap.allocated_bytes() + growth;
            self.growth.store(growth, Ordering::Relaxed);
            self.hard_limit
                .store(trigger.saturating_add(growth), Ordering::Relaxed);
            self.trigger.store(trigger, Ordering::Relaxed);
        }
        let pause_hist = pauses.histogram();
        {
            let mut log = self.log.lock();
            log.pauses.merge(&pauses);
            log.marks.record(mark_time);
            log.sweeps.record(sweep_time);
            log.last_pause = pause_hist.max;
            log.last_cycle = CycleStats {
                pauses: pause_hist,
                mark: mark_time,
                assist: log.cycle_assist,
                sweep: sweep_time,
            };
            log.live_bytes = live_bytes as usize;
            log.live_objects = live_objects as usize;
        }
        let n = self.completed.fetch_add(1, Ordering::SeqCst) + 1;
        if self.config.trace {
            let st = self.heap.stats();
            // Each handshake or cache claim in order: setup, setup flush, termination rounds,
            // grace period, sweep start, sweep-start flush.
            let each: Vec<String> = pauses
                .in_order()
                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e6))
                .collect();
            eprintln!(
                "gc {n} @{:.3}s: handshakes [{}] µs, mark {:.3} ms (concurrent), \
                 sweep {:.3} ms, total {:.3} ms; {} live objects, {:.2} MB live, heap {:.2} MB, \
                 {} dropped, {} drop panics",
                self.epoch.elapsed().as_secs_f64(),
                each.join(" "),
                mark_time.as_secs_f64() * 1e3,
                sweep_time.as_secs_f64() * 1e3,
                start.elapsed().as_secs_f64() * 1e3,
                live_objects,
                live_bytes as f64 / 1e6,
                st.span_bytes as f64 / 1e6,
                st.objects_dropped,
                st.drop_panics,
            );
        }
    }

    /// Panics (abandoning the cycle) if a mark worker or assist had a `Trace` impl panic.
    fn check_markers(&self) {
        if self.heap.grey_broken() {
            let msg = self.mark_panic.lock().take();
            panic!(
                "{}",
                msg.as_deref()
                    .unwrap_or("a Trace impl panicked in a mark worker or assist")
            );
        }
    }

    /// Records a panic caught by a marker other than the collector thread (a mark worker or an
    /// assist) for the collector thread, which abandons the cycle.
    fn report_mark_panic(&self, p: &(dyn std::any::Any + Send)) {
        self.mark_panic
            .lock()
            .get_or_insert_with(|| panic_message(p));
    }

    /// Steps 3–4: enumerate roots, drain grey work (with extra mark workers if configured),
    /// and repeat termination handshakes until one finds no new grey work.
    fn mark(&self, pauses: &mut Samples) {
        // Root enumeration's work list, shared by the markers.
        self.heap.grey_set_roots();
        let helpers = self.config.mark_workers.saturating_sub(1);
        let workers = Arc::new(Workers {
            stop: AtomicBool::new(false),
            running: AtomicUsize::new(0),
        });
        for _ in 0..helpers {
            workers.running.fetch_add(1, Ordering::SeqCst);
            let w = workers.clone();
            let spawned = crate::sync::thread::spawn_named("gc-core mark worker", move || {
                w.run(global::collector())
            });
            if spawned.is_err() {
                workers.running.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Stop and wait for the helpers however this ends (a panic included).
        let _stop = StopWorkers(&workers);
        let mut marker = mark::Marker::new(&self.heap, &self.pacer, true);
        loop {
            marker.drain(usize::MAX);
            self.check_markers();
            if !self.heap.grey_idle() {
                crate::sync::yield_now();
                continue;
            }
            // Termination: wait out every barrier in flight; if none queued more work, the
            // snapshot is fully marked (mark.rs).
            let t = Instant::now();
            if !cfg!(gc_core_mutant = "handshake") {
                self.heap.handshake();
            }
            pauses.record(t.elapsed());
            if self.heap.grey_finish() {
                self.check_markers();
                return;
            }
        }
    }

    /// Abandons a mark whose tracing panicked: barriers off, allocation white, every mark bit
    /// and root-enumeration claim cleared (with the world stopped, so no span is missed).
    ///
    /// Markers outside the collector thread (mark workers, assists) may still hold batches:
    /// the grey queue is closed first and the marks are cleared only once none does, so no
    /// mark bit is set after the clear.
    fn abandon_mark(&self) {
        phase().set(Phase::Idle);
        self.heap.grey_close();
        self.heap.set_black(false);
        let stop = self.heap.stop_world();
        stop.clear_marks();
        drop(stop);
        self.mark_panic.lock().take();
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
            assists: log.assists.histogram(),
            sweep: log.sweeps.histogram(),
            limit_waits: log.limit_waits.histogram(),
            limit_give_ups: log.limit_give_ups,
            last_pause: log.last_pause,
            last_cycle: log.last_cycle,
        }
    }
}

/// Hooks for the loom models (`tests/loom.rs`), which need to act between the steps of a
/// cycle. Not part of the API; only built under `--cfg loom`.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_hooks {
    use super::{global, CycleRun};
    use crate::config::GcConfig;
    use crate::sync::MutexGuard;

    /// One collection cycle of this model execution's collector, run step by step by the real
    /// code, in the real order (`Collector::run_cycle`'s), on the calling thread, with the
    /// cycle lock held as `collect()` holds it.
    #[derive(Debug)]
    pub struct Cycle {
        _lock: MutexGuard<'static, ()>,
        run: Option<CycleRun>,
        step: u8,
    }

    impl Cycle {
        /// Takes the cycle lock and runs step 1 (sweep termination).
        pub fn start() -> Cycle {
            let c = global::collector();
            let lock = c.cycle.lock();
            let run = c.sweep_termination(true);
            Cycle {
                _lock: lock,
                run: Some(run),
                step: 1,
            }
        }

        fn next(&mut self, step: u8) -> &mut CycleRun {
            assert_eq!(self.step + 1, step, "cycle steps out of order");
            self.step = step;
            self.run.as_mut().expect("the cycle has not been swept")
        }

        /// Step 2: mark setup (phase `Marking`, allocation black, handshake, cache flush).
        pub fn mark_setup(&mut self) {
            let run = self.next(2);
            global::collector().mark_setup(run);
        }

        /// Steps 3–4: root enumeration, draining, termination handshakes.
        pub fn mark(&mut self) {
            let run = self.next(3);
            global::collector().concurrent_mark(run);
        }

        /// The end of step 4: phase `MarkTermination`, grace period, sweep start.
        pub fn mark_termination(&mut self) {
            let run = self.next(4);
            global::collector().mark_termination(run);
        }

        /// Step 5: sweep (with drops), phase `Idle`. Ends the cycle.
        pub fn sweep(mut self) {
            self.next(5);
            let run = self.run.take().expect("swept once");
            global::collector().sweep(run);
        }
    }

    /// Runs a mark assist of up to `budget` objects on the calling thread: what an allocating
    /// thread past the trigger does when it sees `Marking` (`Collector::pace_background`),
    /// without the pacer's arithmetic in front of it.
    pub fn assist(budget: usize) {
        global::collector().assist(budget);
    }

    /// This model execution's background collector thread (`Collector::background_loop`, the
    /// real one), for models of what waits for it.
    #[derive(Debug)]
    pub struct CollectorThread {
        thread: loom::thread::JoinHandle<()>,
    }

    impl CollectorThread {
        /// Builds this execution's collector with `config` (its other models keep theirs) and
        /// starts its collector thread, as the first use of a background collector would.
        /// Panics if the execution has already used its collector. `config.background` should
        /// be on: otherwise nothing asks this thread for a cycle.
        pub fn start(config: GcConfig) -> CollectorThread {
            *global::EXECUTION_CONFIG.lock() = Some(config.clone());
            let c = global::collector();
            assert!(
                c.config == config && global::EXECUTION_CONFIG.lock().is_none(),
                "loom_hooks::CollectorThread::start: this execution's collector already existed"
            );
            let thread = loom::thread::spawn(|| global::collector().background_loop());
            c.collector_thread
                .set(Some(thread.thread().clone()))
                .expect("the collector thread had already started");
            CollectorThread { thread }
        }

        /// Lets the thread run the cycles asked for so far, then makes it exit and joins it.
        pub fn stop(self) {
            global::collector().driver.lock().exit = true;
            self.thread.thread().unpark();
            self.thread.join().expect("the collector thread panicked");
        }
    }
}

/// The state of the cycle in progress, passed from one step of `Collector::run_cycle` to the
/// next.
#[derive(Debug)]
struct CycleRun {
    /// Marks the thread as running a cycle until the cycle ends.
    _in: global::CollectorScope,
    run_drops: bool,
    start: Instant,
    pauses: Samples,
    mark_start: Instant,
    mark_time: Duration,
    live_objects: u64,
    live_bytes: u64,
}

impl CycleRun {
    /// Runs `f`, recording its duration as a pause.
    fn timed(&mut self, f: impl FnOnce()) {
        let t = Instant::now();
        f();
        self.pauses.record(t.elapsed());
    }
}

/// Extra mark workers of one cycle.
struct Workers {
    stop: AtomicBool,
    running: AtomicUsize,
}

impl Workers {
    fn run(&self, collector: &Collector) {
        let mut marker = mark::Marker::new(&collector.heap, &collector.pacer, true);
        while !self.stop.load(Ordering::Acquire) {
            let r =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| marker.drain(usize::MAX)));
            match r {
                Ok(0) => crate::sync::yield_now(),
                Ok(_) => {}
                Err(p) => {
                    collector.report_mark_panic(&*p);
                    break;
                }
            }
        }
        self.running.fetch_sub(1, Ordering::Release);
    }
}

/// Stops a cycle's mark workers and waits for them when dropped.
struct StopWorkers<'a>(&'a Workers);

impl Drop for StopWorkers<'_> {
    fn drop(&mut self) {
        self.0.stop.store(true, Ordering::Release);
        while self.0.running.load(Ordering::Acquire) != 0 {
            crate::sync::yield_now();
        }
    }
}

/// The message of a caught panic.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned())
}
