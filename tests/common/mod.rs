//! Helpers shared by the integration tests (each test file includes this with `mod common;`):
//! a per-test drop log by id, a `#[gc(no_scan)]` payload that records its drop there and carries
//! a checksum of its id, and a graph node with both kinds of mutable edge.
//!
//! Tests of one binary run in parallel and share the collector, so every test makes its own
//! [`DropLog`] and counts only in it.

// Every test binary compiles its own copy of this module and uses only part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use gc_core::{Gc, GcCell, GcSlot, Trace};

/// The checksum a payload keeps of its id, to catch a corrupted (or freed and reused) object.
pub(crate) fn checksum(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5_5A5A_F00D_CAFE
}

/// Per-test drop counts by id.
pub(crate) struct DropLog {
    counts: Vec<AtomicU32>,
}

impl DropLog {
    /// A log for the ids `0..ids`, none dropped yet.
    pub(crate) fn new(ids: u64) -> Arc<DropLog> {
        Arc::new(DropLog {
            counts: (0..ids).map(|_| AtomicU32::new(0)).collect(),
        })
    }

    /// Records one drop of `id`.
    pub(crate) fn record(&self, id: u64) {
        self.counts[id as usize].fetch_add(1, Ordering::SeqCst);
    }

    /// How many times `id` has been dropped.
    pub(crate) fn count(&self, id: u64) -> u32 {
        self.counts[id as usize].load(Ordering::SeqCst)
    }

    /// All drops recorded so far.
    pub(crate) fn total(&self) -> usize {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst) as usize)
            .sum()
    }

    /// Asserts that exactly the ids for which `dead` holds have been dropped, each once.
    pub(crate) fn assert_exactly(&self, dead: impl Fn(u64) -> bool, what: &str) {
        self.assert_dropped(dead, |_| false, what);
    }

    /// Asserts that the ids for which `dead` holds have been dropped once, those for which
    /// `maybe` holds at most once (garbage that a cycle started by another test of the same
    /// binary may or may not have swept yet), and the others never.
    ///
    /// Each count is read once: a predicate that read the log itself would race with the
    /// collector thread's drops between its read and this one.
    pub(crate) fn assert_dropped(
        &self,
        dead: impl Fn(u64) -> bool,
        maybe: impl Fn(u64) -> bool,
        what: &str,
    ) {
        let wrong: Vec<(u64, u32, u32)> = (0..self.counts.len() as u64)
            .map(|id| (id, u32::from(dead(id)), self.count(id)))
            .filter(|&(id, want, got)| want != got && !(maybe(id) && got <= 1))
            .collect();
        assert!(
            wrong.is_empty(),
            "{what}: {} ids with the wrong drop count (id, want, got), first: {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(10)]
        );
    }
}

/// A noscan payload that records its drop in the test's log (and checks on the way out that it
/// is intact).
#[derive(Trace)]
#[gc(no_scan)]
pub(crate) struct Tally {
    pub(crate) id: u64,
    check: u64,
    log: Arc<DropLog>,
}

impl Tally {
    pub(crate) fn new(log: &Arc<DropLog>, id: u64) -> Tally {
        Tally {
            id,
            check: checksum(id),
            log: log.clone(),
        }
    }

    /// Asserts that this is payload `id`, intact.
    pub(crate) fn verify(&self, id: u64) {
        assert_eq!((self.id, self.check), (id, checksum(id)), "payload {id}");
    }

    /// The payload's id, once its checksum is found intact.
    pub(crate) fn checked_id(&self) -> u64 {
        let id = self.id;
        assert_eq!(self.check, checksum(id), "corrupted payload {id}");
        id
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        assert_eq!(
            self.check,
            checksum(self.id),
            "dropping a corrupted payload"
        );
        self.log.record(self.id);
    }
}

/// A node with both kinds of mutable edge.
#[derive(Trace)]
pub(crate) struct Node {
    pub(crate) tally: Tally,
    pub(crate) next: GcSlot<Node>,
    pub(crate) kids: GcCell<Vec<Gc<Node>>>,
}

impl Node {
    /// The node's id, once its payload is found intact.
    pub(crate) fn id(&self) -> u64 {
        self.tally.checked_id()
    }
}

/// A new node with payload `id` and no edges.
pub(crate) fn node(log: &Arc<DropLog>, id: u64) -> Gc<Node> {
    Gc::new(Node {
        tally: Tally::new(log, id),
        next: GcSlot::new(None),
        kids: GcCell::new(Vec::new()),
    })
}

/// What [`payload`] stores, checked by [`assert_intact`].
pub(crate) const MAGIC: u64 = 0x1122_3344_5566_7788;

/// A small noscan payload with known content, to spot an object freed while reachable.
#[derive(Trace)]
pub(crate) struct Payload {
    pub(crate) a: u64,
    pub(crate) b: String,
}

/// A new payload with the known content.
pub(crate) fn payload() -> Gc<Payload> {
    Gc::new(Payload {
        a: MAGIC,
        b: "payload".into(),
    })
}

/// Panics unless `p` still holds what [`payload`] wrote.
pub(crate) fn assert_intact(p: &Payload) {
    assert_eq!(p.a, MAGIC, "payload overwritten: freed while reachable");
    assert_eq!(p.b, "payload");
}
