//! The collector's phase: an explicit state machine behind one atomic word.
//!
//! ```text
//!   Idle ──► Marking ──► Sweeping ──► Idle
//! ```
//!
//! | phase | meaning |
//! |---|---|
//! | `Idle` | no cycle running; barriers do nothing but read this word |
//! | `Marking` | from mark setup to mark termination: roots are enumerated and grey objects traced; allocation is black |
//! | `Sweeping` | mark bits are the verdict; spans are swept lazily and by the collector; dead objects' drops run |
//!
//! Today marking happens with the world stopped (mutators wait in their operations); the
//! concurrent collector keeps the same phases and makes barriers act on `Marking`.

use crate::sync::atomic::{AtomicU8, Ordering};

/// A collector phase.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum Phase {
    /// No cycle running.
    Idle = 0,
    /// Marking.
    Marking = 1,
    /// Sweeping.
    Sweeping = 2,
}

impl Phase {
    fn from_u8(v: u8) -> Phase {
        match v {
            0 => Phase::Idle,
            1 => Phase::Marking,
            _ => Phase::Sweeping,
        }
    }

    /// Whether `self → next` is a legal transition.
    pub fn can_become(self, next: Phase) -> bool {
        matches!(
            (self, next),
            (Phase::Idle, Phase::Marking)
                | (Phase::Marking, Phase::Sweeping)
                | (Phase::Sweeping, Phase::Idle)
        )
    }
}

/// The phase word.
#[derive(Debug)]
pub(crate) struct AtomicPhase(AtomicU8);

impl AtomicPhase {
    pub(crate) fn new() -> Self {
        AtomicPhase(AtomicU8::new(Phase::Idle as u8))
    }

    /// The current phase (one relaxed load: the barrier fast path).
    #[inline(always)]
    pub(crate) fn load(&self) -> Phase {
        Phase::from_u8(self.0.load(Ordering::Relaxed))
    }

    /// Back to `Idle` from wherever the cycle was, when a cycle is abandoned (a panicking
    /// `Trace` impl).
    pub(crate) fn abort(&self) {
        self.0.store(Phase::Idle as u8, Ordering::Release);
    }

    /// Moves to `next`; the transition must be legal (debug-asserted). Only the thread running
    /// the cycle calls this.
    pub(crate) fn set(&self, next: Phase) {
        let cur = self.load();
        debug_assert!(
            cur.can_become(next),
            "illegal phase change {cur:?} -> {next:?}"
        );
        self.0.store(next as u8, Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn legal_transitions() {
        let p = AtomicPhase::new();
        assert_eq!(p.load(), Phase::Idle);
        for next in [Phase::Marking, Phase::Sweeping, Phase::Idle] {
            p.set(next);
            assert_eq!(p.load(), next);
        }
        assert!(!Phase::Idle.can_become(Phase::Sweeping));
        assert!(!Phase::Marking.can_become(Phase::Idle));
    }
}
