//! Marking: root enumeration and the drain loop (Go: `markroot`, `gcDrain`, `gcWork`).
//!
//! Roots are the objects with a root count above zero (DESIGN §4): rooted handles live
//! outside the heap, where we cannot scan, so each object counts them. Root enumeration walks
//! every span listed at mark setup and reads the header of each allocated, unmarked object
//! (the root-count side table for tiny blocks), concurrently with the mutators; a span that a
//! thread cache takes meanwhile is enumerated by that thread first ([`Span::try_claim_roots`]
//! picks exactly one). Roots are marked and the scan ones queued grey.
//!
//! Grey objects wait in the heap's global queue; each marker ([`Marker`]: the collector
//! thread, extra mark workers, allocating threads doing a mark assist) takes a batch onto its
//! own stack (a `Vec`, so a ten-million-object chain needs no recursion), pops objects, has
//! each one's type report its edges into a [`Tracer`], and marks each target with an atomic
//! bit-set, pushing the scan ones that were unmarked. A marker whose stack grows large gives
//! a batch back so that other markers can help. Noscan objects (and tiny blocks) are only
//! marked, never read.
//!
//! Mutators run meanwhile. Their barriers shade (mark and queue) what they would otherwise
//! hide from the marker, and objects they allocate are born marked, so marking is complete
//! once the queue is empty, no marker holds a batch, and no mutator is half-way through a
//! barrier (mark termination's handshake).
//!
//! [`Span::try_claim_roots`]: crate::heap::Span

use crate::heap::{Address, Heap, Span};
use crate::ptr::header::ObjectHeader;
use crate::trace::Tracer;

/// Objects a marker takes from (or gives back to) the global queue at a time.
const BATCH: usize = 512;

/// Enumerates the roots of every span listed now that no thread has enumerated yet.
pub(crate) fn enumerate_roots(heap: &Heap) {
    for span in heap.listed_spans() {
        // SAFETY: listed during this marking; spans are not freed while marking runs.
        unsafe { heap.claim_and_scan_roots(span) };
    }
}

/// A batch taken from the grey queue: given back when dropped, unwinding included.
struct Batch<'m, 'h>(&'m mut Marker<'h>);

impl Drop for Batch<'_, '_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

/// One marker's state: its grey stack and its tracer.
pub(crate) struct Marker<'h> {
    heap: &'h Heap,
    stack: Vec<Address>,
    tracer: Tracer,
    objects: u64,
    bytes: u64,
}

impl<'h> Marker<'h> {
    pub(crate) fn new(heap: &'h Heap) -> Self {
        Marker {
            heap,
            stack: Vec::new(),
            tracer: Tracer::new(),
            objects: 0,
            bytes: 0,
        }
    }

    /// Traces grey objects until the global queue is empty (or closed) or `budget` objects
    /// have been traced; returns how many were.
    ///
    /// If a `Trace` impl panics, the batch is given back and the marker stops counting as busy
    /// before the panic goes on; the caller must then have the cycle abandoned (its batch was
    /// only partly traced).
    pub(crate) fn drain(&mut self, budget: usize) -> usize {
        let mut traced = 0;
        while traced < budget && self.heap.grey_take(&mut self.stack, BATCH) {
            let batch = Batch(self);
            let m = &mut *batch.0;
            let mut last: Option<&Span> = None;
            while let Some(obj) = m.stack.pop() {
                m.scan(obj, &mut last);
                traced += 1;
                if traced >= budget {
                    break;
                }
                if m.stack.len() >= 4 * BATCH {
                    m.heap.grey_give(&mut m.stack, BATCH);
                }
            }
            drop(batch);
        }
        traced
    }

    /// Ends a busy period: gives back what is left of the batch and the marked counts.
    fn give_back(&mut self) {
        if !self.stack.is_empty() {
            self.heap.grey_give(&mut self.stack, usize::MAX);
        }
        self.heap
            .grey_done(self.objects, self.bytes, std::thread::panicking());
        self.objects = 0;
        self.bytes = 0;
    }

    /// Traces one grey object: marks each target, pushing those newly marked that hold handles.
    fn scan(&mut self, obj: Address, last: &mut Option<&'h Span>) {
        // SAFETY: only marked, allocated, initialised scan objects are queued grey, and no
        // object is freed while marking runs.
        let header = unsafe { &*obj.as_mut_ptr::<ObjectHeader>() };
        if let Some(trace) = header.descriptor().trace {
            // SAFETY: the descriptor belongs to this object, whose value is initialised. Its
            // fields are immutable except through `GcSlot` (atomic) and `GcCell` (whose trace
            // takes the cell's TRACING flag, excluding writers).
            unsafe { trace(obj.as_mut_ptr(), &mut self.tracer) };
        }
        for edge in self.tracer.drain() {
            let target = Address::from_ptr(edge.as_ptr());
            // Objects allocated together point at each other (a tree's nodes share spans):
            // remember the last target's span and skip the arena-table lookup when the next
            // edge is inside it.
            let span = match *last {
                Some(s) if s.contains(target) => s,
                _ => {
                    // SAFETY: an edge of a reachable object points at a reachable object,
                    // which is allocated (I1), and spans are not freed while marking runs.
                    let s = unsafe { Heap::span_of(target) }.unwrap_or_else(|| {
                        panic!("gc-core: edge {target:?} points outside the heap")
                    });
                    *last = Some(s);
                    s
                }
            };
            let slot = span.slot_of(target);
            if !span.mark_bits.get(slot) && span.mark_bits.set_atomic(slot) {
                self.objects += 1;
                self.bytes += span.elem_size() as u64;
                if !span.class().is_noscan() {
                    self.stack.push(span.slot_addr(slot));
                }
            }
        }
    }
}

/// The heap verifier's mark check (feature `poison`): every marked object is allocated, and
/// every edge of a marked scan object leads to an allocated, marked object. A violation means
/// the next sweep would free something reachable (invariant I1/I2); it panics with the culprit.
#[cfg(feature = "poison")]
pub(crate) fn verify_marks(stop: &crate::heap::WorldStop<'_>) {
    use crate::heap::bitmap::BitIter;

    let mut tracer = Tracer::new();
    stop.for_each_span(|span| {
        let nw = span.alloc_bits.nwords();
        for w in 0..nw {
            let marked = span.mark_bits.word(w);
            let alloc = span.alloc_bits.word(w);
            assert_eq!(marked & !alloc, 0, "marked free slot in {span:?}");
            // Every root is marked.
            let tail = if w + 1 == nw {
                crate::heap::bitmap::tail_mask(span.nelems())
            } else {
                0
            };
            for b in BitIter(alloc & !marked & !tail) {
                let obj = span.slot_addr(w * 64 + b);
                // SAFETY: an allocated slot holds an initialised object (the world is stopped).
                let root = unsafe { span.holds_root(obj) };
                assert!(!root, "verify: root {obj:?} in {span:?} is not marked");
            }
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
