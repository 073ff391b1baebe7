//! Marking: root enumeration and the drain loop (Go: `markroot`, `gcDrain`, `gcWork`).
//!
//! Roots are the objects with a root count above zero (DESIGN §4): rooted handles live
//! outside the heap, where we cannot scan, so each object counts them. Root enumeration walks
//! every span listed at mark setup and reads the header of each allocated, unmarked object
//! (the root-count side table for tiny blocks), concurrently with the mutators. The markers
//! share it: each takes a few spans at a time from the grey queue's root list (Go's
//! `markroot` jobs) when there is no grey object to trace; a span that a thread cache
//! takes meanwhile is enumerated by that thread first ([`Span::try_claim_roots`] picks exactly
//! one). Roots are marked and the scan ones queued grey.
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

use super::pacer::AssistPacer;
use crate::heap::span::SpanRef;
use crate::heap::{Address, Heap, Span, GREY_CHUNK};
use crate::ptr::header::ObjectHeader;
use crate::trace::Tracer;

/// Objects a marker gives back to the global queue at a time (it takes a chunk of at most as
/// many).
const BATCH: usize = GREY_CHUNK;

/// Work after which a marker reports to the pacer even in the middle of a batch: a deep
/// structure is traced within one batch, and both the background credit and the hard-limit
/// wait's view of progress (`Collector::wait_at_hard_limit`) should not wait for its end.
const REPORT_EVERY: u64 = 4096;

/// Grey objects a marker has popped and prefetched but not traced yet, when its stack is deep
/// ([`DEEP`]): tracing reads each object's header first, which in a large, scattered heap is
/// a cache miss; popping a few objects ahead and prefetching them overlaps those misses (a
/// FIFO between the mark stack and the tracing, as in Boehm's collector). A shallow stack is a
/// depth-first walk of something like a tree, whose next object was just written or read:
/// there both FIFOs only cost (a 1 M-node tree marked 20–30 % slower with them), so a shallow
/// marker pops and marks directly.
const AHEAD: usize = 8;

/// The stack depth from which a marker pops [`AHEAD`] objects ahead and queues edges.
const DEEP: usize = 256;

/// Edges a marker has looked up the span of in the arena table but not marked yet: marking an
/// edge reads its span's metadata and mark bits, which in a large heap are cache misses too;
/// the span is prefetched when the edge is found and read when the edge leaves this FIFO.
/// An edge into the span of the previous one is marked at once.
const EDGES_AHEAD: usize = 8;

/// Hints the CPU to fetch the cache line at `addr` (nothing where there is no such hint).
#[inline(always)]
fn prefetch(addr: Address) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: a prefetch is a hint: it cannot fault, and it changes no memory.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(addr.as_mut_ptr::<i8>());
    }
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = addr;
}

/// A batch taken from the grey queue: given back when dropped, unwinding included.
struct Batch<'m, 'h>(&'m mut Marker<'h>);

impl Drop for Batch<'_, '_> {
    fn drop(&mut self) {
        self.0.give_back();
    }
}

/// One marker's state: its grey stack, the objects it popped ahead, the root spans it has
/// taken, and its tracer.
pub(crate) struct Marker<'h> {
    heap: &'h Heap,
    stack: Vec<Address>,
    ahead: std::collections::VecDeque<Address>,
    edges: std::collections::VecDeque<(Address, &'h Span)>,
    roots: Vec<SpanRef>,
    tracer: Tracer,
    objects: u64,
    bytes: u64,
    /// The assist pacer, told of the work done at the end of each batch.
    pacer: &'h AssistPacer,
    /// Whether this is a background marker (the collector thread, a mark worker), whose work
    /// pays assist debts, rather than an assist.
    background: bool,
    /// Work (objects traced plus headers read) since the last batch ended.
    work: u64,
}

impl<'h> Marker<'h> {
    /// A marker for the collector thread or a mark worker (`background`), or for an assist.
    pub(crate) fn new(heap: &'h Heap, pacer: &'h AssistPacer, background: bool) -> Self {
        Marker {
            heap,
            stack: Vec::new(),
            // Allocated when first used (only deep stacks use them): an assist's marker is
            // made anew for each assist.
            ahead: std::collections::VecDeque::new(),
            edges: std::collections::VecDeque::new(),
            roots: Vec::new(),
            tracer: Tracer::new(),
            objects: 0,
            bytes: 0,
            pacer,
            background,
            work: 0,
        }
    }

    /// Enumerates roots and traces grey objects until the global queue has neither left (or
    /// is closed) or `budget` objects have been traced or examined; returns how many were.
    ///
    /// If a `Trace` impl panics, the batch is given back and the marker stops counting as busy
    /// before the panic goes on; the caller must then have the cycle abandoned (its batch was
    /// only partly traced).
    pub(crate) fn drain(&mut self, budget: usize) -> usize {
        let mut traced = 0;
        while traced < budget && self.heap.grey_take(&mut self.stack, &mut self.roots) {
            let batch = Batch(self);
            let m = &mut *batch.0;
            if !m.roots.is_empty() {
                for span in m.roots.drain(..) {
                    // SAFETY: handed out by `grey_take` during this marking, and this marker
                    // is busy until the batch is given back, so the marking (and with it the
                    // spans' lives) does not end before.
                    let examined = unsafe { m.heap.claim_and_scan_roots(span, &mut m.stack) };
                    traced += examined;
                    m.work += examined as u64;
                }
                // The roots go to the queue, where assists can take them too (a batch of
                // root spans comes with an empty stack).
                m.heap.grey_give(&mut m.stack, usize::MAX);
                drop(batch);
                continue;
            }
            let mut last: Option<&Span> = None;
            loop {
                let deep = m.stack.len() >= DEEP;
                let next = if deep {
                    while m.ahead.len() < AHEAD {
                        let Some(o) = m.stack.pop() else { break };
                        prefetch(o);
                        m.ahead.push_back(o);
                    }
                    m.ahead.pop_front()
                } else {
                    m.ahead.pop_front().or_else(|| m.stack.pop())
                };
                let Some(obj) = next else {
                    // Out of grey objects: the edges still in flight may make more.
                    m.mark_edges_in_flight();
                    if m.stack.is_empty() {
                        break;
                    }
                    continue;
                };
                m.scan(obj, &mut last, deep);
                traced += 1;
                m.work += 1;
                if m.work >= REPORT_EVERY {
                    m.pacer.record(m.work, m.background);
                    m.work = 0;
                }
                if traced >= budget {
                    m.mark_edges_in_flight();
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
        // Edges are in flight only if a `Trace` impl panicked, which abandons the mark.
        self.edges.clear();
        self.stack.extend(self.ahead.drain(..));
        if !self.stack.is_empty() {
            self.heap.grey_give(&mut self.stack, usize::MAX);
        }
        self.pacer.record(self.work, self.background);
        self.work = 0;
        self.heap
            .grey_done(self.objects, self.bytes, std::thread::panicking());
        self.objects = 0;
        self.bytes = 0;
    }

    /// Traces one grey object: marks each target in the span of the previous one at once, and,
    /// when the marker's stack is `deep`, queues the others, their span looked up and
    /// prefetched, until `EDGES_AHEAD` newer ones have been found ([`mark_edge`]).
    fn scan(&mut self, obj: Address, last: &mut Option<&'h Span>, deep: bool) {
        // SAFETY: only marked, allocated, initialised scan objects are queued grey, and no
        // object is freed while marking runs.
        let header = unsafe { &*obj.as_mut_ptr::<ObjectHeader>() };
        // A reachable object is never found dead by a sweep (I1); one that was has had its
        // drop queued or run, and tracing it would read freed memory.
        #[cfg(any(debug_assertions, feature = "poison"))]
        assert_eq!(
            header.drop_state(),
            crate::ptr::header::DropState::NotQueued,
            "gc-core: marking reached {obj:?}, which a sweep found dead"
        );
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
                Some(s) if s.contains(target) => {
                    mark_edge(
                        target,
                        s,
                        &mut self.stack,
                        &mut self.objects,
                        &mut self.bytes,
                    );
                    continue;
                }
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
            if !deep {
                mark_edge(
                    target,
                    span,
                    &mut self.stack,
                    &mut self.objects,
                    &mut self.bytes,
                );
                continue;
            }
            let meta = Address::from_ptr(span as *const Span);
            prefetch(meta);
            prefetch(meta.add(64));
            self.edges.push_back((target, span));
            if self.edges.len() > EDGES_AHEAD {
                if let Some((t, s)) = self.edges.pop_front() {
                    mark_edge(t, s, &mut self.stack, &mut self.objects, &mut self.bytes);
                }
            }
        }
    }

    /// Marks every edge still in the FIFO.
    fn mark_edges_in_flight(&mut self) {
        while let Some((t, s)) = self.edges.pop_front() {
            mark_edge(t, s, &mut self.stack, &mut self.objects, &mut self.bytes);
        }
    }
}

/// Marks `target` (in `span`) for a marker: counts it and pushes it on `stack` if it was
/// unmarked and holds handles.
#[inline(always)]
fn mark_edge(
    target: Address,
    span: &Span,
    stack: &mut Vec<Address>,
    objects: &mut u64,
    bytes: &mut u64,
) {
    let slot = span.slot_of(target);
    if !span.mark_bits.get(slot) && span.mark_bits.set_atomic(slot) {
        *objects += 1;
        *bytes += span.elem_size() as u64;
        if !span.class().is_noscan() {
            stack.push(span.slot_addr(slot));
        }
    }
}

/// The heap verifier's check at mark setup (feature `poison`): the previous sweep has finished,
/// so every span is swept for the current generation and no mark bit is set. A mark bit left
/// over would make this marking skip the object (never trace its edges), and an unswept span
/// would keep the last cycle's verdict.
#[cfg(feature = "poison")]
pub(crate) fn verify_unmarked(stop: &crate::heap::WorldStop<'_>) {
    let sg = stop.sweep_gen();
    stop.for_each_span(|span| {
        assert_eq!(
            span.sweep_gen(),
            sg,
            "verify: {span:?} is not swept at mark setup"
        );
        for w in 0..span.mark_bits.nwords() {
            let m = span.mark_bits.word(w);
            assert_eq!(
                m, 0,
                "verify: {span:?} has marks {m:#x} (word {w}) at mark setup"
            );
        }
    });
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
                    assert!(
                        !t.is_free(i),
                        "verify: {obj:?} points at free slot {target:?}"
                    );
                    assert!(
                        t.mark_bits.get(i),
                        "verify: marked {obj:?} (in {span:?}) points at unmarked {target:?} \
                         (in {t:?}): the mark is not closed; sweep generation {:?}",
                        stop.sweep_gen()
                    );
                }
            }
        }
    });
}
