//! Mark-assist pacing (Go: `gcControllerState.revise` and `gcAssistAlloc`, simplified).
//!
//! Marking runs concurrently with allocation, and it must end before the heap outgrows its
//! allowance: otherwise an allocating thread reaches the hard limit and waits for the mark
//! (`Collector::wait_at_hard_limit`), a step as long as the rest of the mark. So allocation
//! past the trigger pays for itself: while marking, an allocating thread looks at the pacer every
//! [`assist_step`] bytes (the trigger moves on by that much each time) and traces, as a mark
//! assist, the share of the remaining mark work that those bytes stand for:
//!
//! ```text
//! budget = remaining work × bytes since the last look / bytes left until the goal
//! ```
//!
//! The work is counted in objects: objects traced plus headers read by root enumeration (in a
//! heap with few roots, enumeration is most of a mark's time and marks almost nothing, so
//! marked objects would be the wrong measure). The estimate is the last mark's total. What
//! the collector thread and the mark workers do goes into a credit (Go's `bgScanCredit`) that
//! pays debts first, so assists shrink to nothing when the background keeps up and grow, in
//! steps of a bounded size, when it does not. Debt is global, not per thread as in Go:
//! whichever thread moves the trigger on pays for the bytes allocated since the last payment,
//! whoever allocated them.

use crate::sync::atomic::{AtomicU64, Ordering};

/// The least mark work assumed left, as a share of the estimate: when the estimate has been
/// used up (the heap grew), assists go on at a moderate pace until the mark ends.
const REMAINING_FLOOR_DIVISOR: u64 = 32;

/// The pacer's state for the mark in progress. Allocated-bytes values are the heap's
/// `allocated_bytes()` clock, which grows while marking runs (no sweep frees meanwhile; only
/// the caches' flush at mark setup takes back the slots they had not handed out).
#[derive(Debug, Default)]
pub(crate) struct AssistPacer {
    /// Allocation up to this clock value has paid its assist debt.
    paid: AtomicU64,
    /// The clock value by which the mark should have ended.
    goal: AtomicU64,
    /// The work this mark is expected to take.
    work: AtomicU64,
    /// The work every marker has done in this mark so far (the next mark's estimate).
    done: AtomicU64,
    /// Work the background markers did that no debt has used yet.
    credit: AtomicU64,
}

impl AssistPacer {
    /// A new mark begins at clock `allocated` and should end by `goal`. Its work is estimated
    /// as the last mark's, or `first_guess` if there was none. Called at mark setup, before
    /// any marker or assist runs.
    pub(crate) fn start(&self, allocated: u64, goal: u64, first_guess: u64) {
        let last = self.done.swap(0, Ordering::Relaxed);
        let work = if last == 0 { first_guess } else { last };
        self.work.store(work, Ordering::Relaxed);
        self.goal.store(goal, Ordering::Relaxed);
        self.credit.store(0, Ordering::Relaxed);
        self.paid.store(allocated, Ordering::Relaxed);
    }

    /// The work every marker has done in this mark so far (a measure of progress).
    pub(crate) fn work_done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// A marker did `work` (objects traced plus headers read); a background marker's pays
    /// assist debts too.
    pub(crate) fn record(&self, work: u64, background: bool) {
        self.done.fetch_add(work, Ordering::Relaxed);
        if background {
            self.credit.fetch_add(work, Ordering::Relaxed);
        }
    }

    /// The assist budget that allocation up to clock `allocated` owes, after the background
    /// credit has paid what it can; the debt counts as paid from here on.
    pub(crate) fn debt(&self, allocated: u64) -> u64 {
        let paid = self.paid.fetch_max(allocated, Ordering::Relaxed);
        let owed = assist_budget(
            allocated.saturating_sub(paid),
            allocated,
            self.goal.load(Ordering::Relaxed),
            self.work.load(Ordering::Relaxed),
            self.done.load(Ordering::Relaxed),
        );
        if owed == 0 {
            return 0;
        }
        let used = self
            .credit
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c - c.min(owed))
            })
            .map_or(0, |c| c.min(owed));
        owed - used
    }
}

/// Bytes an allocating thread allocates between two looks at the pacer while marking: a
/// 4096th of the cycle's allowance (`growth`), between 8 KiB (about one span refill) and
/// 1 MiB. Small enough that one assist stays short (a 10-million-object mark at a 5 %
/// allowance comes to a few thousand objects a look), large enough that looking costs nothing
/// measurable.
pub(crate) fn assist_step(growth: u64) -> u64 {
    (growth / 4096).clamp(8 << 10, 1 << 20)
}

/// The mark work owed by the `since` bytes of allocation that brought the clock to
/// `allocated`, for a mark expected to take `work` by clock `goal`, of which `done` is done:
/// their share of the runway they started from. Allocation that reaches the goal owes all the
/// work left.
pub(crate) fn assist_budget(since: u64, allocated: u64, goal: u64, work: u64, done: u64) -> u64 {
    if since == 0 {
        return 0;
    }
    let remaining = work
        .saturating_sub(done)
        .max(work / REMAINING_FLOOR_DIVISOR)
        .max(1);
    let runway = goal.saturating_sub(allocated.saturating_sub(since));
    if runway <= since {
        return remaining;
    }
    let owed = remaining as u128 * since as u128 / runway as u128;
    owed.max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn budget_is_the_allocations_share_of_the_remaining_work() {
        // 1 MB of a 10 MB runway owes a tenth of what is left.
        assert_eq!(assist_budget(MB, 0, 10 * MB, 1_000_000, 0), 100_000);
        // The background marked half: the same bytes owe half as much.
        assert_eq!(assist_budget(MB, 0, 10 * MB, 1_000_000, 500_000), 50_000);
        // Halfway to the goal with half the work left: the rate is unchanged.
        assert_eq!(
            assist_budget(MB, 6 * MB, 10 * MB, 1_000_000, 500_000),
            100_000
        );
    }

    #[test]
    fn budget_to_or_past_the_goal_is_all_the_work_left() {
        assert_eq!(
            assist_budget(MB, 10 * MB, 10 * MB, 1_000_000, 400_000),
            600_000
        );
        assert_eq!(
            assist_budget(2 * MB, 11 * MB, 10 * MB, 1_000_000, 400_000),
            600_000
        );
        assert_eq!(
            assist_budget(MB, 20 * MB, 10 * MB, 1_000_000, 400_000),
            600_000
        );
        // Just short of it: not all.
        assert!(assist_budget(MB, 10 * MB - 1, 10 * MB, 1_000_000, 400_000) < 600_000);
    }

    #[test]
    fn an_exceeded_estimate_still_asks_for_work() {
        // Marked more than expected (the heap grew): 1/32 of the estimate is assumed left.
        assert_eq!(assist_budget(MB, 0, 10 * MB, 3_200_000, 4_000_000), 10_000);
        // Nothing allocated since the last payment owes nothing; anything else owes something.
        assert_eq!(assist_budget(0, 0, 10 * MB, 800_000, 0), 0);
        assert_eq!(assist_budget(1, 0, 10 * MB, 0, 0), 1);
    }

    #[test]
    fn the_debt_is_paid_once() {
        let p = AssistPacer::default();
        p.start(100 * MB, 110 * MB, 1_000_000);
        assert_eq!(p.debt(101 * MB), 100_000);
        // The same clock again (another thread that saw it): nothing more is owed.
        assert_eq!(p.debt(101 * MB), 0);
        // A stale, smaller clock does not move the payment back.
        assert_eq!(p.debt(100 * MB), 0);
        // An assist did 100,000; 1 MB more: 900,000 left over the 9 MB of runway from 101 MB.
        p.record(100_000, false);
        assert_eq!(p.debt(102 * MB), 100_000);
    }

    #[test]
    fn background_credit_pays_first() {
        let p = AssistPacer::default();
        p.start(100 * MB, 110 * MB, 1_000_000);
        p.record(30_000, true);
        // 970,000 left over 10 MB: owes 97,000; the credit pays 30,000 and is used up.
        assert_eq!(p.debt(101 * MB), 67_000);
        assert_eq!(p.credit.load(Ordering::Relaxed), 0);
        // More credit than debt: nothing to do, and the rest stays for later.
        p.record(500_000, true);
        assert_eq!(p.debt(102 * MB), 0);
        assert!(p.credit.load(Ordering::Relaxed) > 400_000);
    }

    #[test]
    fn the_next_estimate_is_this_marks_work() {
        let p = AssistPacer::default();
        p.start(0, 10 * MB, 1_000);
        assert_eq!(p.work.load(Ordering::Relaxed), 1_000);
        p.record(300_000, true);
        p.record(200_000, false);
        p.start(20 * MB, 30 * MB, 1_000);
        assert_eq!(p.work.load(Ordering::Relaxed), 500_000);
        assert_eq!(p.credit.load(Ordering::Relaxed), 0);
        assert_eq!(p.done.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_step_is_bounded() {
        assert_eq!(assist_step(0), 8 << 10);
        assert_eq!(assist_step(24 * MB), 8 << 10);
        assert_eq!(assist_step(48 * MB), 12 << 10);
        assert_eq!(assist_step(1 << 40), 1 << 20);
    }
}
