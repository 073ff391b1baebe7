//! Central span lists, one set per span class (Go: `mcentral`).
//!
//! Every span in use that no thread cache holds and nobody is sweeping sits in exactly one of
//! four lists of its class: *partial* (has free slots) or *full*, each split into *swept* and
//! *unswept* for the current sweep generation. As in Go, the split is by the generation's
//! parity: list `sg/2 % 2` holds the swept spans, the other one the unswept spans, so advancing
//! the generation by 2 turns every swept list into an unswept one at no cost.
//!
//! Thread caches take spans from here ([`super::Heap`]'s `cache_span`): swept partial first,
//! then unswept ones, which they sweep on the spot (Go's "sweep before reuse"), and return them
//! when full or when the generation changes. The background sweeper drains the unswept lists.

use crate::sync::Mutex;

use super::span::{SpanClass, SpanRef, SweepGen, NUM_SPAN_CLASSES};

#[derive(Debug, Default)]
struct SpanLists {
    partial: [Vec<SpanRef>; 2],
    full: [Vec<SpanRef>; 2],
}

/// The central lists of every span class.
#[derive(Debug)]
pub(crate) struct Central {
    classes: Box<[Mutex<SpanLists>]>,
    /// Under loom and Miri: bit `i` is set once class `i`'s lists have held a span (see
    /// [`Central::classes`]).
    #[cfg(any(loom, miri))]
    listed: [crate::sync::raw_atomic::AtomicU64; NUM_SPAN_CLASSES.div_ceil(64)],
}

#[inline]
fn swept_index(sg: SweepGen) -> usize {
    (sg.0 / 2 % 2) as usize
}

#[inline]
fn unswept_index(sg: SweepGen) -> usize {
    1 - swept_index(sg)
}

/// Which list a span goes to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fullness {
    /// Has free slots.
    Partial,
    /// Has none.
    Full,
}

impl Central {
    pub(crate) fn new() -> Self {
        Central {
            classes: (0..NUM_SPAN_CLASSES)
                .map(|_| Mutex::new(SpanLists::default()))
                .collect(),
            #[cfg(any(loom, miri))]
            listed: Default::default(),
        }
    }

    /// The span classes whose lists walks over every class must visit: all of them, except
    /// under loom and Miri, where classes whose lists have never held a span are left out.
    /// Their lists are empty, so visiting them only takes and releases their locks; skipping
    /// those (hundreds per collection cycle) keeps the model's executions short. The flags are
    /// `core` atomics, set before the first span is pushed: loom runs its threads one at a
    /// time on one OS thread, so a walk that finds a flag clear is one that would have found
    /// the class's lists empty.
    ///
    /// Under Miri the same cost is interpretation: a heap has 136 span classes and a test
    /// uses a few, and walks over all of them (statistics, verification, every sweep, heap
    /// teardown) took most of the time of the model suites' operations. Miri runs threads
    /// concurrently, so the flags stand in for the class locks they let a walk skip: a flag is
    /// set before its class's lock is taken for the first push and never cleared, and both
    /// setting and testing it are `AcqRel` read-modify-writes of the flag word, which (like
    /// the lock's) are totally ordered and synchronise in that order. A walk that finds the
    /// flag clear therefore comes before the first push in the same way as a walk that took
    /// the lock first, with the same happens-before edge, and would have found the lists
    /// empty too (a relaxed load could see the flag clear although the walker had seen, by a
    /// relaxed atomic, an effect that followed the push).
    pub(crate) fn classes(&self) -> impl Iterator<Item = SpanClass> + '_ {
        SpanClass::all().filter(move |_c| {
            #[cfg(any(loom, miri))]
            {
                let bit = 1u64 << (_c.index() % 64);
                self.listed[_c.index() / 64].fetch_or(0, crate::sync::raw_atomic::Ordering::AcqRel)
                    & bit
                    != 0
            }
            #[cfg(not(any(loom, miri)))]
            true
        })
    }

    /// Records that `class`'s lists hold (or are about to hold) a span; see
    /// [`Central::classes`].
    #[inline(always)]
    fn note_listed(&self, _class: SpanClass) {
        #[cfg(any(loom, miri))]
        self.listed[_class.index() / 64].fetch_or(
            1u64 << (_class.index() % 64),
            crate::sync::raw_atomic::Ordering::AcqRel,
        );
    }

    /// Adds a span that is swept as of `sg`.
    pub(crate) fn push_swept(&self, class: SpanClass, span: SpanRef, sg: SweepGen, f: Fullness) {
        self.note_listed(class);
        let mut l = self.classes[class.index()].lock();
        let i = swept_index(sg);
        match f {
            Fullness::Partial => l.partial[i].push(span),
            Fullness::Full => l.full[i].push(span),
        }
    }

    /// Adds a span that still needs sweeping for `sg` (Go: a span released by a cache whose
    /// owner could not sweep it, such as one handed back during heap teardown).
    pub(crate) fn push_unswept(&self, class: SpanClass, span: SpanRef, sg: SweepGen) {
        self.note_listed(class);
        self.classes[class.index()].lock().full[unswept_index(sg)].push(span);
    }

    /// Takes a swept span with free slots.
    pub(crate) fn pop_swept_partial(&self, class: SpanClass, sg: SweepGen) -> Option<SpanRef> {
        self.classes[class.index()].lock().partial[swept_index(sg)].pop()
    }

    /// Takes a span that still needs sweeping: a partial one first (more likely to have room).
    pub(crate) fn pop_unswept(&self, class: SpanClass, sg: SweepGen) -> Option<SpanRef> {
        let mut l = self.classes[class.index()].lock();
        let i = unswept_index(sg);
        l.partial[i].pop().or_else(|| l.full[i].pop())
    }

    /// Number of spans still unswept in `class`.
    pub(crate) fn unswept_len(&self, class: SpanClass, sg: SweepGen) -> usize {
        let l = self.classes[class.index()].lock();
        let i = unswept_index(sg);
        l.partial[i].len() + l.full[i].len()
    }

    /// Calls `f` on every span in every list of `class` (stats, verification, teardown).
    pub(crate) fn for_each(&self, class: SpanClass, mut f: impl FnMut(SpanRef)) {
        let l = self.classes[class.index()].lock();
        for list in l.partial.iter().chain(l.full.iter()) {
            for &s in list {
                f(s);
            }
        }
    }

    /// Empties every list of `class`, returning the spans (teardown).
    pub(crate) fn drain(&self, class: SpanClass) -> Vec<SpanRef> {
        let mut l = self.classes[class.index()].lock();
        let l = &mut *l;
        let mut out = Vec::new();
        for list in l.partial.iter_mut().chain(l.full.iter_mut()) {
            out.append(list);
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use core::ptr::NonNull;

    fn fake(n: usize) -> SpanRef {
        // Never dereferenced: the lists only move pointers around.
        SpanRef(NonNull::new(core::ptr::without_provenance_mut(n * 64)).unwrap())
    }

    #[test]
    fn swept_lists_become_unswept_when_the_generation_moves() {
        let c = Central::new();
        let k = SpanClass::TINY;
        let sg = SweepGen(4);
        c.push_swept(k, fake(1), sg, Fullness::Partial);
        c.push_swept(k, fake(2), sg, Fullness::Full);
        assert_eq!(c.unswept_len(k, sg), 0);
        assert_eq!(c.pop_swept_partial(k, sg), Some(fake(1)));
        c.push_swept(k, fake(1), sg, Fullness::Partial);
        let next = sg.plus(2);
        assert_eq!(c.pop_swept_partial(k, next), None);
        assert_eq!(c.unswept_len(k, next), 2);
        assert_eq!(c.pop_unswept(k, next), Some(fake(1)));
        assert_eq!(c.pop_unswept(k, next), Some(fake(2)));
        assert_eq!(c.pop_unswept(k, next), None);
        c.push_unswept(k, fake(3), next);
        let mut n = 0;
        c.for_each(k, |_| n += 1);
        assert_eq!(n, 1);
        assert_eq!(c.drain(k), vec![fake(3)]);
    }
}
