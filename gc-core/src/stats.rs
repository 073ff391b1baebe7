//! Collector statistics: [`GcStats`], from [`crate::stats()`].

use core::cell::Cell;
use core::fmt;
use std::time::Duration;

crate::sync::thread_local! {
    /// See [`thread_gc_time`].
    static THREAD_GC_TIME: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// The time the calling thread has spent so far working for the collector or waiting for it
/// without asking: in mark assists, at the hard limit (`GcStats::limit_waits`), and in giving
/// back its thread cache's spans when the collector asks for them (at mark setup and sweep
/// start; the thread does it itself if it is busy, or waits if the collector got there first
/// and is doing it). Explicit [`crate::collect`] calls are not counted.
///
/// A program that times its own steps can subtract the difference across a step to tell the
/// collector's share of a slow step from the rest (`examples/graph_churn.rs` does).
pub fn thread_gc_time() -> Duration {
    THREAD_GC_TIME.try_with(Cell::get).unwrap_or_default()
}

/// Adds `d` to the calling thread's [`thread_gc_time`].
pub(crate) fn charge_thread(d: Duration) {
    let _ = THREAD_GC_TIME.try_with(|t| t.set(t.get() + d));
}

/// Percentiles of a set of durations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Largest.
    pub max: Duration,
    /// Sum of all samples.
    pub total: Duration,
}

/// Keeps the last `CAP` samples for percentiles and exact count/max/total over all of them.
#[derive(Clone, Debug, Default)]
pub(crate) struct Samples {
    recent: Vec<Duration>,
    next: usize,
    count: u64,
    max: Duration,
    total: Duration,
}

impl Samples {
    const CAP: usize = 1 << 16;

    pub(crate) fn record(&mut self, d: Duration) {
        if self.recent.len() < Self::CAP {
            self.recent.push(d);
        } else {
            self.recent[self.next] = d;
            self.next = (self.next + 1) % Self::CAP;
        }
        self.count += 1;
        self.max = self.max.max(d);
        self.total += d;
    }

    /// The samples kept, oldest first.
    pub(crate) fn in_order(&self) -> impl Iterator<Item = Duration> + '_ {
        let (newer, older) = self.recent.split_at(self.next);
        older.iter().chain(newer).copied()
    }

    /// Adds every sample of `other`.
    pub(crate) fn merge(&mut self, other: &Samples) {
        for &d in &other.recent {
            self.record(d);
        }
    }

    pub(crate) fn histogram(&self) -> Histogram {
        let mut v = self.recent.clone();
        v.sort_unstable();
        let pick = |q: f64| -> Duration {
            if v.is_empty() {
                Duration::ZERO
            } else {
                v[((v.len() - 1) as f64 * q).round() as usize]
            }
        };
        Histogram {
            count: self.count,
            p50: pick(0.5),
            p99: pick(0.99),
            max: self.max,
            total: self.total,
        }
    }
}

/// A snapshot of the collector's statistics.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct GcStats {
    /// Completed collection cycles.
    pub cycles: u64,
    /// Objects allocated since start, Go's way: slots handed to thread caches, net of those
    /// they gave back unused. Grows with allocation; may dip slightly when a cache gives
    /// slots back.
    pub objects_allocated: u64,
    /// Objects freed by sweeps since start.
    pub objects_freed: u64,
    /// Objects currently allocated (not counting dead objects already dropped whose slots the
    /// next sweep frees).
    pub objects: usize,
    /// Their bytes (slot sizes).
    pub bytes: usize,
    /// Dead objects already dropped whose slots the next sweep frees.
    pub dropped_unreclaimed: usize,
    /// Bytes in scan spans (traced), counting dead objects awaiting reuse.
    pub scan_bytes: usize,
    /// Bytes in noscan spans (never traced; tiny blocks included), likewise.
    pub noscan_bytes: usize,
    /// Bytes found live by the last mark.
    pub live_bytes_after_mark: usize,
    /// Objects found live by the last mark.
    pub live_objects_after_mark: usize,
    /// Bytes in spans (whole pages).
    pub heap_bytes: usize,
    /// Bytes committed from the OS.
    pub committed_bytes: usize,
    /// The heap size at which the next automatic cycle starts (0 when automatic collection
    /// is off).
    pub goal_bytes: usize,
    /// Objects dropped by the collector.
    pub objects_dropped: u64,
    /// `Drop` impls that panicked while the collector ran them (caught and counted).
    pub drop_panics: u64,
    /// Every handshake the collector ran (mark setup, each mark-termination round, the
    /// grace period before sweeping, sweep start), over all cycles: the longest any mutator
    /// can have been held up by the collector outside a mark assist. With the `poison`
    /// feature the stop-the-world heap verification is counted too.
    pub pauses: Histogram,
    /// Concurrent marking time per cycle (mark setup to mark termination).
    pub mark: Histogram,
    /// Mark assists: time allocating threads spent marking, per assist.
    pub assists: Histogram,
    /// Sweeping time per cycle (the part the collector does).
    pub sweep: Histogram,
    /// Waits of allocating threads at the hard limit (a whole allowance allocated past the
    /// trigger while a cycle had not finished), each until the cycle ended or the thread gave
    /// up. Zero when marking, sweeping and drops keep up.
    pub limit_waits: Histogram,
    /// Hard-limit waits given up because the collector made no progress for 2 ms (it may have
    /// been inside a `Drop` that needs a lock the waiting thread held).
    pub limit_give_ups: u64,
    /// The longest pause of the last cycle.
    pub last_pause: Duration,
    /// The last completed cycle on its own.
    pub last_cycle: CycleStats,
}

/// One cycle's timings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CycleStats {
    /// Its handshake pauses.
    pub pauses: Histogram,
    /// Concurrent marking time (mark setup to mark termination).
    pub mark: Duration,
    /// Time allocating threads spent in mark assists during it.
    pub assist: Duration,
    /// The collector's sweeping time.
    pub sweep: Duration,
}

impl fmt::Display for GcStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "cycles            {}", self.cycles)?;
        writeln!(
            f,
            "objects           {} in use, {} allocated, {} freed, {} dropped awaiting reuse",
            self.objects, self.objects_allocated, self.objects_freed, self.dropped_unreclaimed
        )?;
        writeln!(
            f,
            "bytes             {} in use ({} scan, {} noscan), heap {}, goal {}",
            self.bytes, self.scan_bytes, self.noscan_bytes, self.heap_bytes, self.goal_bytes
        )?;
        writeln!(
            f,
            "last mark         {} objects, {} bytes live",
            self.live_objects_after_mark, self.live_bytes_after_mark
        )?;
        writeln!(
            f,
            "drops             {} run, {} panicked",
            self.objects_dropped, self.drop_panics
        )?;
        writeln!(
            f,
            "pauses            p50 {:?}  p99 {:?}  max {:?}  ({} total)",
            self.pauses.p50, self.pauses.p99, self.pauses.max, self.pauses.count
        )?;
        writeln!(
            f,
            "mark / sweep      p50 {:?} / {:?}  max {:?} / {:?}",
            self.mark.p50, self.sweep.p50, self.mark.max, self.sweep.max
        )?;
        writeln!(
            f,
            "mark assists      {} taking {:?} (max {:?})",
            self.assists.count, self.assists.total, self.assists.max
        )?;
        write!(
            f,
            "hard-limit waits  {} taking {:?} (max {:?}), {} given up",
            self.limit_waits.count,
            self.limit_waits.total,
            self.limit_waits.max,
            self.limit_give_ups
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s = Samples::default();
        assert_eq!(s.histogram(), Histogram::default());
        for i in 1..=100u64 {
            s.record(Duration::from_micros(i));
        }
        let h = s.histogram();
        assert_eq!(h.count, 100);
        assert_eq!(h.max, Duration::from_micros(100));
        assert_eq!(h.p99, Duration::from_micros(99));
        assert!(h.p50 >= Duration::from_micros(50) && h.p50 <= Duration::from_micros(51));
        assert_eq!(h.total, Duration::from_micros(5050));
        assert!(GcStats::default().to_string().contains("pauses"));
    }
}
