//! The collector's phase: an explicit state machine behind one atomic word.
//!
//! ```text
//!   Idle ──► Marking ──► MarkTermination ──► Sweeping ──► Idle
//!              │
//!              └──► Idle   (a cycle abandoned: a `Trace` impl panicked)
//! ```
//!
//! | phase | meaning | what mutators do |
//! |---|---|---|
//! | `Idle` | no cycle running | barriers read this word and branch, nothing else |
//! | `Marking` | from mark setup to mark termination: roots are enumerated and grey objects traced, concurrently with mutators; allocation is black | every root-count change inside an operation shades the object; dropping a rooted handle shades it first |
//! | `MarkTermination` | marking found no grey object left; the collector waits out one grace period so no barrier is still shading, then makes the marks the sweep's verdict | barriers do nothing; allocation is still black until the verdict is taken |
//! | `Sweeping` | spans are swept lazily by allocating threads and by the collector; dead objects' drops run | nothing |
//!
//! The word is a process-wide static so that the barrier's fast path is one load of a fixed
//! address (no pointer chase to the collector) and a branch.

#[cfg(loom)]
use crate::sync::atomic::{AtomicU8, Ordering};
#[cfg(not(loom))]
use crate::sync::raw_atomic::{AtomicU8, Ordering};

/// A collector phase. See the module docs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Phase {
    /// No cycle running.
    Idle = 0,
    /// Concurrent marking: barriers shade.
    Marking = 1,
    /// Marking is complete; waiting for barriers in flight before sweeping.
    MarkTermination = 2,
    /// Sweeping.
    Sweeping = 3,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Marking,
            2 => Phase::MarkTermination,
            _ => Phase::Sweeping,
        }
    }

    /// Whether `self → next` is a legal transition (including abandoning a mark).
    pub fn can_become(self, next: Phase) -> bool {
        matches!(
            (self, next),
            (Phase::Idle, Phase::Marking)
                | (Phase::Marking, Phase::MarkTermination)
                | (Phase::Marking, Phase::Idle)
                | (Phase::MarkTermination, Phase::Sweeping)
                | (Phase::Sweeping, Phase::Idle)
        )
    }
}

/// The phase word.
#[derive(Debug)]
pub(crate) struct AtomicPhase(AtomicU8);

impl AtomicPhase {
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        AtomicPhase(AtomicU8::new(Phase::Idle as u8))
    }

    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        AtomicPhase(AtomicU8::new(Phase::Idle as u8))
    }

    /// The current phase. Acquire, so that a mutator that reads `Idle` and then changes a root
    /// count does so after the read (the drop barrier's argument in `ptr/gc.rs`).
    #[inline(always)]
    pub(crate) fn load(&self) -> Phase {
        Phase::from_u8(self.0.load(Ordering::Acquire))
    }

    /// Moves to `next`; the transition must be legal (debug-asserted). Only the thread running
    /// the cycle calls this.
    pub(crate) fn set(&self, next: Phase) {
        let cur = self.load();
        debug_assert!(
            cur.can_become(next),
            "illegal phase change {cur:?} -> {next:?}"
        );
        self.0.store(next as u8, Ordering::SeqCst);
    }
}

#[cfg(not(loom))]
static PHASE: AtomicPhase = AtomicPhase::new();

#[cfg(loom)]
loom::lazy_static! {
    static ref PHASE: AtomicPhase = AtomicPhase::new();
}

/// The process's collector phase.
#[inline(always)]
pub(crate) fn phase() -> &'static AtomicPhase {
    &PHASE
}

/// Whether barriers must shade: one load and a compare, inlined everywhere.
#[inline(always)]
pub(crate) fn marking() -> bool {
    // `--cfg gc_core_no_barrier` compiles the barrier out, for measuring its fast path's cost
    // (benches/gc.rs `slot_store`); such a build must never run a cycle while mutating.
    if cfg!(gc_core_no_barrier) {
        return false;
    }
    phase().load() == Phase::Marking
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn legal_transitions() {
        let p = AtomicPhase::new();
        assert_eq!(p.load(), Phase::Idle);
        for next in [
            Phase::Marking,
            Phase::MarkTermination,
            Phase::Sweeping,
            Phase::Idle,
            Phase::Marking,
            Phase::Idle,
        ] {
            p.set(next);
            assert_eq!(p.load(), next);
        }
        assert!(!Phase::Idle.can_become(Phase::Sweeping));
        assert!(!Phase::Marking.can_become(Phase::Sweeping));
        assert!(!Phase::Sweeping.can_become(Phase::Marking));
    }
}
