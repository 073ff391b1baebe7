//! Marking: root enumeration and the drain loop (Go: `markroot`, `gcDrain`).
//!
//! Roots are the objects with a root count above zero (DESIGN §4): rooted handles live
//! outside the heap, where we cannot scan, so each object counts them. Root enumeration walks
//! every span in use and reads the header of each allocated object (the root-count side table
//! for tiny blocks). Each root is marked; scan roots are pushed on an explicit mark stack (a
//! `Vec`, so a ten-million-object chain needs no recursion and no deep native stack). The drain
//! loop pops an object, has its type's trace function report its edges into a [`Tracer`], and
//! marks each target, pushing the scan ones that were not marked yet. Noscan objects (and tiny
//! blocks) are only marked, never read.
//!
//! Today this runs with the world stopped ([`crate::heap::WorldStop`]), on the thread running
//! the cycle, which is then the only writer of mark bits: it sets them with plain loads and
//! stores (`Bitmap::test_and_set_unsync`). Concurrent marking will need `set_atomic`.

use crate::heap::bitmap::{tail_mask, BitIter};
use crate::heap::{Address, Heap, Span, WorldStop};
use crate::ptr::header::ObjectHeader;
use crate::sync::atomic::Ordering;
use crate::trace::Tracer;

/// What a mark found.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MarkResult {
    pub(crate) roots: usize,
    pub(crate) objects: usize,
    pub(crate) bytes: usize,
}

/// Marks everything reachable from the roots.
pub(crate) fn mark(stop: &WorldStop<'_>) -> MarkResult {
    let mut result = MarkResult::default();
    let mut stack: Vec<Address> = Vec::new();
    stop.for_each_span(|span| enumerate_roots(span, &mut stack, &mut result));
    let mut tracer = Tracer::new();
    // Objects allocated together point at each other (a tree's nodes share spans): remember
    // the last target's span and skip the arena-table lookup when the next edge is inside it.
    let mut last: Option<&Span> = None;
    while let Some(obj) = stack.pop() {
        // SAFETY: only marked, allocated, initialised scan objects are pushed, and nothing is
        // freed while the world is stopped.
        let header = unsafe { &*obj.as_mut_ptr::<ObjectHeader>() };
        if let Some(trace) = header.descriptor().trace {
            // SAFETY: the descriptor belongs to this object, whose value is initialised and
            // not mutated while the world is stopped (mutably borrowed `GcCell`s skip
            // themselves).
            unsafe { trace(obj.as_mut_ptr(), &mut tracer) };
        }
        for edge in tracer.drain() {
            let target = Address::from_ptr(edge.as_ptr());
            let span = match last {
                Some(s) if s.contains(target) => s,
                _ => {
                    // SAFETY: an edge of a live object points at a live object (invariant I1),
                    // so its span is in use while the world is stopped.
                    let s = unsafe { Heap::span_of(target) }.unwrap_or_else(|| {
                        panic!("gc-core: edge {target:?} points outside the heap")
                    });
                    last = Some(s);
                    s
                }
            };
            let slot = span.slot_of(target);
            if span.mark_bits.test_and_set_unsync(slot) {
                result.objects += 1;
                result.bytes += span.elem_size();
                if !span.class().is_noscan() {
                    stack.push(span.slot_addr(slot));
                }
            }
        }
    }
    result
}

/// Marks the roots of one span and pushes the scan ones.
fn enumerate_roots(span: &Span, stack: &mut Vec<Address>, result: &mut MarkResult) {
    let nw = span.alloc_bits.nwords();
    let noscan = span.class().is_noscan();
    for w in 0..nw {
        let tail = if w + 1 == nw {
            tail_mask(span.nelems())
        } else {
            0
        };
        for b in BitIter(span.alloc_bits.word(w) & !tail) {
            let slot = w * 64 + b;
            let addr = span.slot_addr(slot);
            let is_root = if span.class().is_tiny() {
                span.tiny_roots(addr)
                    .is_some_and(|r| r.load(Ordering::Acquire) > 0)
            } else {
                // SAFETY: allocated slots of non-tiny spans start with an initialised header
                // (written inside the allocating operation, which has ended).
                unsafe { &*addr.as_mut_ptr::<ObjectHeader>() }.is_root()
            };
            if is_root && span.mark_bits.test_and_set_unsync(slot) {
                result.roots += 1;
                result.objects += 1;
                result.bytes += span.elem_size();
                if !noscan {
                    stack.push(addr);
                }
            }
        }
    }
}

/// The heap verifier's mark check (feature `poison`): every marked object is allocated, and
/// every edge of a marked scan object leads to an allocated, marked object. A violation means
/// the next sweep would free something reachable (invariant I1/I2); it panics with the culprit.
#[cfg(feature = "poison")]
pub(crate) fn verify_marks(stop: &WorldStop<'_>) {
    let mut tracer = Tracer::new();
    stop.for_each_span(|span| {
        let nw = span.alloc_bits.nwords();
        for w in 0..nw {
            let marked = span.mark_bits.word(w);
            let alloc = span.alloc_bits.word(w);
            assert_eq!(marked & !alloc, 0, "marked free slot in {span:?}");
            if span.class().is_noscan() {
                continue;
            }
            for b in BitIter(marked) {
                let obj = span.slot_addr(w * 64 + b);
                // SAFETY: a marked slot of a scan span holds an initialised object, and nothing
                // changes while the world is stopped.
                let header = unsafe { &*obj.as_mut_ptr::<ObjectHeader>() };
                if let Some(trace) = header.descriptor().trace {
                    // SAFETY: as in `mark`.
                    unsafe { trace(obj.as_mut_ptr(), &mut tracer) };
                }
                for edge in tracer.drain() {
                    let target = Address::from_ptr(edge.as_ptr());
                    // SAFETY: as in `mark`; a broken edge is what this check reports.
                    let t = unsafe { Heap::span_of(target) }.unwrap_or_else(|| {
                        panic!("verify: {obj:?} has an edge {target:?} outside the heap")
                    });
                    let i = t.slot_of(target);
                    assert!(!t.is_free(i), "verify: {obj:?} points at free slot {target:?}");
                    assert!(
                        t.mark_bits.get(i),
                        "verify: marked {obj:?} points at unmarked {target:?}: the mark is not closed"
                    );
                }
            }
        }
    });
}
