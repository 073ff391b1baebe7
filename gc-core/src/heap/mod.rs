//! The heap: Go's allocator (TCMalloc's descendant) in Rust.
//!
//! ```text
//!   ThreadCache (mcache)  one span per span class, per thread; bump through a bitmap word
//!        │  refill / release whole spans
//!   Central (mcentral)    per span class: partial/full × swept/unswept span lists
//!        │  new spans / empty spans
//!   PageHeap (mheap)      page runs with coalescing, grows by 64 MiB arenas
//!        │
//!   Arenas + os           reserved with mmap, committed in 1 MiB chunks
//! ```
//!
//! # Allocation
//!
//! A thread allocates through its [`ThreadCache`], inside a [`CacheOp`] (the span of time in
//! which the collector must not touch that cache). The fast path takes the lowest set bit of a
//! cached word of free-slot bits: no lock and no atomic read-modify-write. When the cached span
//! is exhausted the cache returns it to the central lists (`central.rs`) and takes another, sweeping it first if it
//! has not been swept this cycle; when central has none, the page heap carves a new span.
//! Objects over 32 KiB get a span of their own straight from the page heap.
//!
//! Noscan objects under 16 bytes with no drop glue are packed into 16-byte *tiny blocks*
//! ([`CacheOp::alloc_tiny`]); a tiny block lives while any object in it is reachable.
//!
//! # The collector's interface
//!
//! - **Mark bits** are set by any number of threads at once ([`Heap::mark`]).
//! - **Allocate black**: while [`Heap::set_black`] is on, every new object is born marked.
//! - **Sweep by span with a sweep generation**: [`Heap::begin_sweep`] makes the current mark
//!   bits the verdict and turns every span "unswept"; spans are then swept one at a time by
//!   whoever gets to each first ([`Heap::sweep_one`], a cache looking for space,
//!   [`Heap::finish_sweep`]). Dead objects that need no drop are freed by a bitmap copy without
//!   being touched; dead objects that need a drop are queued and dropped by
//!   [`Heap::run_pending_drops`] (user code never runs inside an allocation), their slots
//!   reclaimed by the next sweep.
//! - **Idle caches**: the collector can flush a thread's cache while that thread is outside a
//!   [`CacheOp`], through a Dekker handshake whose hot side costs the owner no fence
//!   (`sync::asymmetric`).

pub mod addr;
pub(crate) mod arena;
pub mod bitmap;
pub(crate) mod central;
pub mod os;
pub(crate) mod page_heap;
pub mod size_class;
pub mod span;
pub mod thread_cache;

use core::fmt;

use crate::ptr::header::{DropState, ObjectHeader};
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use crate::sync::raw_atomic::AtomicU64 as RawAtomicU64;
use crate::sync::{Arc, Mutex};

pub use addr::{Address, PAGE_SIZE};
pub use size_class::{size_class_for, SizeClass, MAX_SMALL_SIZE};
pub use span::{Span, SpanClass, NUM_SPAN_CLASSES, TINY_BLOCK};
pub use thread_cache::{CacheOp, ThreadCache};

/// Spans of root enumeration a marker takes at a time ([`Heap::grey_take`]): a few hundred
/// objects' headers, so that an assist's share stays short.
const ROOT_SPANS: usize = 4;

use arena::ArenaTable;
use bitmap::{tail_mask, BitIter};
use central::{Central, Fullness};
use page_heap::PageHeap;
use span::{SpanRef, SweepGen};
use thread_cache::CacheShared;

/// Why an allocation failed. Nothing was allocated and nothing was lost.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AllocError {
    /// The request cannot be represented (its size overflows the address space).
    TooLarge {
        /// Bytes requested (saturated).
        bytes: usize,
    },
    /// The OS refused address space or memory.
    OutOfMemory(os::OsError),
    /// The heap's hard limit would be exceeded.
    MemoryLimit {
        /// The limit in bytes.
        limit: usize,
        /// Bytes of the refused request.
        requested: usize,
    },
    /// The type's alignment exceeds what the heap supports (one page).
    Unaligned {
        /// The alignment asked for.
        align: usize,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::TooLarge { bytes } => {
                write!(
                    f,
                    "gc-core: allocation of {bytes} bytes exceeds the address space"
                )
            }
            AllocError::OutOfMemory(e) => write!(f, "gc-core: out of memory: {e}"),
            AllocError::MemoryLimit { limit, requested } => write!(
                f,
                "gc-core: allocating {requested} bytes would exceed the heap limit of {limit} bytes"
            ),
            AllocError::Unaligned { align } => write!(
                f,
                "gc-core: alignment {align} is larger than the supported maximum of {PAGE_SIZE}"
            ),
        }
    }
}

impl std::error::Error for AllocError {}

/// Heap settings.
#[derive(Clone, Debug, Default)]
pub struct HeapConfig {
    /// Hard limit on bytes in spans in use; allocations beyond it fail with
    /// [`AllocError::MemoryLimit`]. `None`: limited only by the OS.
    pub limit: Option<usize>,
}

/// Per-span-class counters, updated per span (never per object).
///
/// Statistics only: relaxed, and nothing synchronises through them, so they are `core` atomics
/// even under loom (`sync::raw_atomic`), where 4 × 135 modelled atomics per heap would make
/// every modelled fence scan them.
#[derive(Debug)]
struct ClassCounters {
    /// Objects handed out, cumulative. A cache counts a span's free slots when it takes the
    /// span and takes back those it did not use when it releases it (Go's accounting).
    allocated: RawAtomicU64,
    /// Objects freed by sweeps, cumulative.
    freed: RawAtomicU64,
    /// Bytes of large objects handed out / freed (large classes only).
    large_bytes_allocated: RawAtomicU64,
    large_bytes_freed: RawAtomicU64,
}

impl ClassCounters {
    fn new() -> Self {
        ClassCounters {
            allocated: RawAtomicU64::new(0),
            freed: RawAtomicU64::new(0),
            large_bytes_allocated: RawAtomicU64::new(0),
            large_bytes_freed: RawAtomicU64::new(0),
        }
    }
}

/// An object whose drop is due: found dead by a sweep, still occupying its slot.
#[derive(Clone, Copy, Debug)]
struct PendingDrop {
    object: Address,
}

/// Drops due, in chunks of at most [`PendingDrops::CHUNK`], so that queuing under the lock
/// copies one span's dead objects at most and never reallocates the whole queue while an
/// allocating thread's lazy sweep waits for it. Emptied chunks come back as spares: the chunks
/// move between threads (sweeping allocators queue, the collector or finalizer drops), and
/// allocating and freeing them on different threads would contend for the allocator's locks.
#[derive(Default)]
struct PendingDrops {
    chunks: Vec<Vec<PendingDrop>>,
    spare: Vec<Vec<PendingDrop>>,
    len: usize,
}

impl PendingDrops {
    const CHUNK: usize = 1024;
    /// Spare chunks kept at most (8 KiB each).
    const SPARE: usize = 64;

    /// `n` empty chunks, for [`PendingDrops::push`]'s `fresh` (allocated outside the lock).
    fn fresh_chunks(n: usize) -> impl Iterator<Item = Vec<PendingDrop>> {
        (0..n).map(|_| Vec::with_capacity(Self::CHUNK))
    }

    /// Queues `queued`, taking new chunks from the spares and then from `fresh`. Queues nothing
    /// and returns how many chunks are missing if there are not enough: the caller allocates
    /// them outside the lock and tries again.
    fn push(
        &mut self,
        queued: &[PendingDrop],
        fresh: &mut Vec<Vec<PendingDrop>>,
    ) -> Result<(), usize> {
        let room = self.chunks.last().map_or(0, |c| Self::CHUNK - c.len());
        let need = queued.len().saturating_sub(room).div_ceil(Self::CHUNK);
        let have = self.spare.len() + fresh.len();
        if need > have {
            return Err(need - have);
        }
        self.len += queued.len();
        let mut rest = queued;
        while !rest.is_empty() {
            let room = self.chunks.last().map_or(0, |c| Self::CHUNK - c.len());
            if room == 0 {
                let chunk = self
                    .spare
                    .pop()
                    .or_else(|| fresh.pop())
                    .expect("counted above");
                self.chunks.push(chunk);
                continue;
            }
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.chunks
                .last_mut()
                .expect("a chunk with room")
                .extend_from_slice(now);
            rest = later;
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Takes everything queued.
    fn take(&mut self) -> Vec<Vec<PendingDrop>> {
        self.len = 0;
        core::mem::take(&mut self.chunks)
    }

    /// Takes back chunks whose drops have run, as spares, while there is room for them; the
    /// rest stay in `chunks`, for the caller to free outside the lock.
    fn recycle(&mut self, chunks: &mut Vec<Vec<PendingDrop>>) {
        while self.spare.len() < Self::SPARE {
            let Some(mut c) = chunks.pop() else { break };
            c.clear();
            self.spare.push(c);
        }
    }
}

/// The allocation state word: `sweep_gen << 1 | black`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct AllocState(pub(crate) u64);

impl AllocState {
    #[inline(always)]
    pub(crate) fn sweep_gen(self) -> SweepGen {
        SweepGen((self.0 >> 1) as u32)
    }

    #[inline(always)]
    pub(crate) fn black(self) -> bool {
        self.0 & 1 == 1
    }

    fn new(sg: SweepGen, black: bool) -> Self {
        AllocState((sg.0 as u64) << 1 | black as u64)
    }
}

/// State shared by a heap and its thread caches.
pub(crate) struct HeapShared {
    pub(crate) page_heap: Mutex<PageHeap>,
    pub(crate) central: Central,
    /// See [`AllocState`]. Written by the collector (under `control`), read on every allocation.
    pub(crate) state: AtomicU64,
    /// Serialises the collector-side operations (state changes, sweeping rounds).
    control: Mutex<()>,
    /// Every live thread cache, and whether the world is stopped (caches registered while it
    /// is are born claimed).
    caches: Mutex<CacheRegistry>,
    pending: Mutex<PendingDrops>,
    counters: Box<[ClassCounters]>,
    drop_panics: AtomicU64,
    objects_dropped: AtomicU64,
    /// Bytes handed out, net of what caches gave back unused (never reduced by sweeps): the
    /// pacer's clock.
    bytes_allocated: AtomicU64,
    /// Sweeps between taking a span from a list and queuing its drops.
    sweeps_in_flight: AtomicUsize,
    /// Drops taken from `pending` that have not finished.
    drops_in_flight: AtomicUsize,
    /// Dropped objects whose slots the next sweep frees (objects, bytes).
    dropped_unreclaimed: AtomicU64,
    dropped_unreclaimed_bytes: AtomicU64,
    spans_swept: AtomicU64,
    /// Grey objects waiting to be traced (Go's global list of `gcWork` buffers).
    grey: Mutex<GreyQueue>,
    /// Objects and bytes marked in the current cycle by root enumeration and shading (the
    /// markers add theirs when they finish a batch).
    marked_objects: AtomicU64,
    marked_bytes: AtomicU64,
}

/// Grey objects per chunk of the grey queue: what a marker takes at a time.
pub(crate) const GREY_CHUNK: usize = 512;

/// The global grey queue: marked scan objects whose edges have not been traced yet, and root
/// enumeration's work list.
///
/// Grey objects travel in chunks of at most [`GREY_CHUNK`] (Go's `gcWork` buffers on the
/// global full list): markers take a whole chunk at a time and give back whole chunks when
/// their stacks grow large (so another worker can help); mutators' shades fill `partial`,
/// which joins `full` when it is full (a marker that finds no full chunk takes the partial
/// one as it is). Every operation under
/// the lock moves a few words (a chunk is a `Vec`, moved, not copied; chunks are filled and
/// emptied outside the lock), so a mutator's shade never waits behind a long copy or a
/// reallocation of the whole queue.
///
/// Root enumeration is shared the same way: every marker (the collector, mark workers,
/// assists) takes a few of the spans listed at mark setup at a time, when no grey object is
/// queued, and queues their roots grey. `busy` counts markers holding a chunk or root spans;
/// marking can end only when the queue is empty, every root span has been handed out and
/// nobody is busy (all read under the lock). An abandoned mark closes the queue: no marker
/// takes another chunk, and the collector waits for `busy` to reach zero before it clears the
/// marks.
#[derive(Default)]
struct GreyQueue {
    /// Chunks of grey objects, none empty.
    full: Vec<Vec<Address>>,
    /// The chunk mutators' shades go into; its capacity is [`GREY_CHUNK`] once it has any.
    partial: Vec<Address>,
    /// Empty chunks with capacity [`GREY_CHUNK`], at most [`GREY_SPARE`]: chunks move between
    /// threads (mutators fill them, markers empty them), and allocating and freeing them on
    /// different threads would contend for the allocator's locks.
    spare: Vec<Vec<Address>>,
    /// The spans listed at mark setup ([`Heap::grey_set_roots`]); `roots[next_root..]` have
    /// not been handed out yet. Alive until the next sweep (spans are not freed while marking).
    roots: Vec<SpanRef>,
    next_root: usize,
    busy: usize,
    /// Whether the snapshot is taken: from the end of mark setup's handshake
    /// ([`Heap::grey_open`]) to the end of marking ([`Heap::grey_finish`]). Only then may
    /// markers take work (Go's `gcBlackenEnabled`) and thread caches enumerate the roots of the
    /// spans they take. Shades queue objects from the moment `Marking` is published, but while
    /// the handshake is still waiting for operations that began before, those operations do
    /// not shade: an edge such an operation stores into an object traced meanwhile (by an
    /// assist, which any allocation that sees `Marking` starts) would be missed, and so would
    /// a root it takes out of the heap after its span's roots were read.
    snapshot: bool,
    closed: bool,
    /// A marker gave its batch back while unwinding from a panicking `Trace` impl: the batch
    /// was only partly traced, so this mark cannot complete.
    broken: bool,
}

/// Spare grey chunks kept at most (4 KiB each).
const GREY_SPARE: usize = 256;

impl GreyQueue {
    fn is_empty(&self) -> bool {
        self.full.is_empty() && self.partial.is_empty()
    }

    /// Whether markers and caches may read roots and trace (`snapshot`; a seeded mutant for
    /// the loom models lets them as soon as `Marking` is published).
    fn snapshot_taken(&self) -> bool {
        self.snapshot || cfg!(gc_core_mutant = "blacken")
    }

    /// No grey object queued, every root span handed out, no marker holding either.
    fn idle(&self) -> bool {
        self.is_empty() && self.next_root == self.roots.len() && self.busy == 0
    }

    /// Takes up to `n` spare chunks.
    fn spares(&mut self, n: usize) -> Vec<Vec<Address>> {
        let at = self.spare.len().saturating_sub(n);
        self.spare.split_off(at)
    }

    /// Keeps `chunk` (emptied) as a spare, unless there are enough.
    fn recycle(&mut self, mut chunk: Vec<Address>) {
        if self.spare.len() < GREY_SPARE && chunk.capacity() == GREY_CHUNK {
            chunk.clear();
            self.spare.push(chunk);
        }
    }
}

impl fmt::Debug for HeapShared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapShared")
            .field("state", &self.load_state())
            .finish_non_exhaustive()
    }
}

/// A garbage-collected heap: arenas, spans, thread caches and the sweep machinery.
///
/// The process-wide heap behind `Gc` is one of these; tests and embedders can make their own.
/// Cloning a `Heap` makes another handle to the same heap.
#[derive(Clone, Debug)]
pub struct Heap {
    shared: Arc<HeapShared>,
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new(HeapConfig::default())
    }
}

impl Heap {
    /// A new, empty heap. Reserves nothing until the first allocation.
    pub fn new(config: HeapConfig) -> Heap {
        crate::sync::asymmetric::init();
        let sg = SweepGen(2);
        Heap {
            shared: Arc::new(HeapShared {
                page_heap: Mutex::new(PageHeap::new(config.limit)),
                central: Central::new(),
                state: AtomicU64::new(AllocState::new(sg, false).0),
                control: Mutex::new(()),
                caches: Mutex::new(CacheRegistry {
                    caches: Vec::new(),
                    stopped: false,
                }),
                pending: Mutex::new(PendingDrops::default()),
                counters: (0..NUM_SPAN_CLASSES)
                    .map(|_| ClassCounters::new())
                    .collect(),
                drop_panics: AtomicU64::new(0),
                objects_dropped: AtomicU64::new(0),
                bytes_allocated: AtomicU64::new(0),
                sweeps_in_flight: AtomicUsize::new(0),
                drops_in_flight: AtomicUsize::new(0),
                dropped_unreclaimed: AtomicU64::new(0),
                dropped_unreclaimed_bytes: AtomicU64::new(0),
                spans_swept: AtomicU64::new(0),
                grey: Mutex::new(GreyQueue::default()),
                marked_objects: AtomicU64::new(0),
                marked_bytes: AtomicU64::new(0),
            }),
        }
    }

    /// A new thread cache for this heap. Each thread that allocates uses its own; it returns its
    /// spans to the heap when dropped (at thread exit for a thread-local one).
    pub fn cache(&self) -> ThreadCache {
        ThreadCache::new(self.shared.clone())
    }

    /// Reserves address space for `bytes` more without committing any of it.
    pub fn reserve(&self, bytes: usize) -> Result<(), AllocError> {
        self.shared.page_heap.lock().reserve(bytes)
    }

    /// The span holding `addr`, if `addr` is inside a span of some heap.
    ///
    /// # Safety
    ///
    /// - The span must stay in use while the reference is used: `addr` is inside an object
    ///   that no sweep can free meanwhile (reachable, or its span is claimed or cached by the
    ///   caller).
    #[inline]
    pub unsafe fn span_of<'a>(addr: Address) -> Option<&'a Span> {
        ArenaTable::get().span_of(addr)
    }

    /// Sets the mark bit of the object (or tiny block) holding `addr`; true if this call set
    /// it. Any number of threads may mark at once. Returns false for addresses outside the heap.
    ///
    /// # Safety
    ///
    /// - As for [`Heap::span_of`].
    #[inline]
    pub unsafe fn mark(&self, addr: Address) -> bool {
        // SAFETY: forwarded contract.
        unsafe { Heap::span_of(addr) }.is_some_and(|s| s.mark(addr))
    }

    /// Whether the object holding `addr` is marked.
    ///
    /// # Safety
    ///
    /// - As for [`Heap::span_of`].
    #[inline]
    pub unsafe fn is_marked(&self, addr: Address) -> bool {
        // SAFETY: forwarded contract.
        unsafe { Heap::span_of(addr) }.is_some_and(|s| s.is_marked(addr))
    }

    /// Turns allocate-black on or off: while on, every new object is born marked (DESIGN §6:
    /// objects allocated during marking survive the cycle). Returns once every allocation that
    /// was in progress has finished, so all later allocations see the new setting.
    pub fn set_black(&self, on: bool) {
        let _c = self.shared.control.lock();
        let s = self.shared.load_state();
        self.shared.publish(AllocState::new(s.sweep_gen(), on));
    }

    /// Waits until every thread that is inside an operation right now has left it (a ragged
    /// handshake: threads outside operations are not disturbed, and those inside are not
    /// stopped). Whatever the caller published before calling is seen by every operation that
    /// starts afterwards (the Dekker argument in `thread_cache.rs`).
    pub fn handshake(&self) {
        crate::sync::asymmetric::heavy();
        for c in self.shared.cache_list() {
            c.wait_not_busy();
        }
    }

    /// Gives back the spans of every thread cache, one cache after another: an owner that
    /// starts an operation while its cache is asked gives them back itself, and the collector
    /// does it for the others, holding each such cache for that long (module docs of
    /// `thread_cache.rs`). Afterwards every object allocated before the call is in a listed
    /// span's alloc bits. Returns the longest time one cache's flush took, from the request on.
    pub fn flush_caches(&self) -> std::time::Duration {
        let _c = self.shared.control.lock();
        self.shared.flush_caches()
    }

    /// Shades the object holding `addr`: marks it, and if it was unmarked and holds handles,
    /// queues it grey. The write barrier's slow path (DESIGN §6).
    ///
    /// # Safety
    ///
    /// - As for [`Heap::span_of`]: `addr` is inside an object that is not freed before this
    ///   returns.
    #[cold]
    pub unsafe fn shade(&self, addr: Address) {
        // SAFETY: forwarded contract.
        let span = unsafe { Heap::span_of(addr) }
            .unwrap_or_else(|| panic!("gc-core: shaded {addr:?}, which is outside the heap"));
        let slot = span.slot_of(addr);
        // Most shades find the object marked already (black allocations, objects the barrier
        // or the markers got to first): a load before the locked read-modify-write.
        if !span.mark_bits.get(slot) && span.mark_bits.set_atomic(slot) {
            self.shared.count_marked(1, span.elem_size());
            if !span.class().is_noscan() {
                self.shared.grey_push(span.slot_addr(slot));
            }
        }
    }

    /// Every span in the central lists right now. Spans taken by thread caches after mark setup
    /// are enumerated by whoever takes them ([`HeapShared::cache_span`]); spans are not freed
    /// while marking runs, so each stays valid until the next sweep.
    fn listed_spans(&self) -> Vec<SpanRef> {
        let mut v = Vec::new();
        for class in self.shared.central.classes() {
            self.shared.central.for_each(class, |s| v.push(s));
        }
        v
    }

    /// Makes every span listed now root enumeration's work list, which markers share through
    /// [`Heap::grey_take`]. Called once per marking, after mark setup has flushed the caches.
    pub(crate) fn grey_set_roots(&self) {
        let roots = self.listed_spans();
        let mut q = self.shared.grey.lock();
        q.roots = roots;
        q.next_root = 0;
        debug_assert!(q.snapshot, "roots listed before mark setup's handshake");
    }

    /// Opens the queue to markers, and root enumeration to thread caches: called by mark
    /// setup once its handshake is over (see `GreyQueue::snapshot`).
    pub(crate) fn grey_open(&self) {
        self.shared.grey.lock().snapshot = true;
    }

    /// Takes work for a marker and counts it as busy until [`Heap::grey_done`]: a chunk of at
    /// most [`GREY_CHUNK`] grey objects appended to `into`, or, if none is queued, up to
    /// [`ROOT_SPANS`] spans of root enumeration into `roots` (to pass to
    /// [`Heap::claim_and_scan_roots`]). False (and not busy) if there is neither, or the queue
    /// is closed, or marking is not between mark setup and its end (see `GreyQueue::snapshot`).
    pub(crate) fn grey_take(&self, into: &mut Vec<Address>, roots: &mut Vec<SpanRef>) -> bool {
        let chunk = {
            let mut q = self.shared.grey.lock();
            if q.closed || !q.snapshot_taken() {
                return false;
            }
            let chunk = match q.full.pop() {
                Some(c) => c,
                None if !q.partial.is_empty() => core::mem::take(&mut q.partial),
                None if q.next_root < q.roots.len() => {
                    let (from, to) = (q.next_root, (q.next_root + ROOT_SPANS).min(q.roots.len()));
                    roots.extend_from_slice(&q.roots[from..to]);
                    q.next_root = to;
                    Vec::new()
                }
                None => return false,
            };
            q.busy += 1;
            chunk
        };
        if chunk.capacity() > 0 {
            into.extend_from_slice(&chunk);
            self.shared.grey.lock().recycle(chunk);
        }
        true
    }

    /// Enumerates the roots of `span` for the current marking unless someone already has:
    /// marks every allocated object with a root count above zero and pushes the scan ones on
    /// `grey`. Returns how many objects it examined (the work done).
    ///
    /// # Safety
    ///
    /// - `span` is alive (handed out by [`Heap::grey_take`] during this marking).
    pub(crate) unsafe fn claim_and_scan_roots(
        &self,
        span: SpanRef,
        grey: &mut Vec<Address>,
    ) -> usize {
        // SAFETY: the caller's contract.
        let span = unsafe { span.get() };
        if span.try_claim_roots(self.shared.load_state().sweep_gen()) {
            self.shared.scan_roots(span, grey)
        } else {
            0
        }
    }

    /// Gives the last `n` grey objects of `from` back to the queue (a marker sharing its
    /// surplus), in chunks.
    pub(crate) fn grey_give(&self, from: &mut Vec<Address>, n: usize) {
        self.shared.grey_give(from, n);
    }

    /// Ends a marker's busy period started by a successful [`Heap::grey_take`]; adds what it
    /// marked to the cycle's counts. `broken`: the marker is unwinding from a panicking `Trace`
    /// impl (see [`Heap::grey_broken`]).
    pub(crate) fn grey_done(&self, objects: u64, bytes: u64, broken: bool) {
        self.shared.count_marked(objects, bytes as usize);
        let mut q = self.shared.grey.lock();
        q.busy -= 1;
        q.broken |= broken;
    }

    /// Whether no grey object is queued, every root span has been handed out, and no marker
    /// holds any of either.
    pub(crate) fn grey_idle(&self) -> bool {
        self.shared.grey.lock().idle()
    }

    /// Ends marking if it is idle (as [`Heap::grey_idle`]): markers take no more work from
    /// then on (a late assist must not trace while the sweep drops what was not marked).
    /// Returns whether it was idle.
    pub(crate) fn grey_finish(&self) -> bool {
        let mut q = self.shared.grey.lock();
        let idle = q.idle();
        if idle {
            q.snapshot = false;
        }
        idle
    }

    /// Whether a marker's `Trace` impl panicked during this mark (set before that marker stops
    /// counting as busy, so a mark found idle and not broken is complete).
    pub(crate) fn grey_broken(&self) -> bool {
        self.shared.grey.lock().broken
    }

    /// Closes the queue (an abandoned mark): markers take no more batches. Returns once no
    /// marker holds one, and forgets the grey objects.
    pub(crate) fn grey_close(&self) {
        self.shared.grey.lock().closed = true;
        while self.shared.grey.lock().busy != 0 {
            crate::sync::yield_now();
        }
        let forgotten = {
            let mut q = self.shared.grey.lock();
            q.next_root = 0;
            (
                core::mem::take(&mut q.full),
                core::mem::take(&mut q.partial),
                core::mem::take(&mut q.roots),
            )
        };
        drop(forgotten);
    }

    /// Opens an empty queue and resets the marked counts (mark setup). No marker holds a
    /// batch: the previous mark ended with the queue idle, or closed it.
    pub(crate) fn grey_reset(&self) {
        let old = {
            let mut q = self.shared.grey.lock();
            debug_assert_eq!(q.busy, 0, "a marker outlived its cycle");
            debug_assert!(q.is_empty() || q.closed, "grey objects outlived their mark");
            q.next_root = 0;
            q.snapshot = false;
            q.closed = false;
            q.broken = false;
            (
                core::mem::take(&mut q.full),
                core::mem::take(&mut q.partial),
                core::mem::take(&mut q.roots),
            )
        };
        // Freed outside the lock.
        drop(old);
        self.shared.marked_objects.store(0, Ordering::Relaxed);
        self.shared.marked_bytes.store(0, Ordering::Relaxed);
    }

    /// Objects and bytes marked so far in this cycle.
    pub(crate) fn marked(&self) -> (u64, u64) {
        (
            self.shared.marked_objects.load(Ordering::Relaxed),
            self.shared.marked_bytes.load(Ordering::Relaxed),
        )
    }

    /// Starts a sweep: the current mark bits become the verdict on every object, every span
    /// becomes unswept, and allocate-black is turned off. Returns once every allocation in
    /// progress has finished and every idle cache has given its spans back.
    ///
    /// Finishes the previous sweep first if it is not done (Go's sweep termination).
    pub fn begin_sweep(&self) {
        self.finish_sweep();
        self.start_sweep();
    }

    /// [`Heap::begin_sweep`] without running the previous sweep's pending drops (they stay
    /// queued for whoever runs them).
    ///
    /// For the collector's mark termination, after this cycle's sweep termination and mark
    /// setup flushed every cache (so no cache holds a span from before the current sweep).
    /// Returns how long the handshake took and the longest one cache's flush took.
    pub(crate) fn start_sweep(&self) -> (std::time::Duration, std::time::Duration) {
        self.sweep_listed();
        let _c = self.shared.control.lock();
        let s = self.shared.load_state();
        let t = std::time::Instant::now();
        self.shared
            .publish(AllocState::new(s.sweep_gen().plus(2), false));
        let handshake = t.elapsed();
        (handshake, self.shared.flush_caches())
    }

    /// Stops the world: claims every thread cache (those created meanwhile are born claimed) and
    /// waits until no thread is inside an operation. Until the returned guard is dropped, every
    /// thread that starts an operation on this heap waits. The caches' spans are given back, so
    /// every allocated object is visible to [`Heap::for_each_object`].
    ///
    /// The concurrent collector uses it only where the heap must hold still: the `poison`
    /// verifier at mark termination, and clearing the marks of an abandoned cycle.
    pub fn stop_world(&self) -> WorldStop<'_> {
        let control = self.shared.control.lock();
        let caches = {
            let mut reg = self.shared.caches.lock();
            reg.stopped = true;
            for c in &reg.caches {
                c.claim();
            }
            reg.caches.clone()
        };
        crate::sync::asymmetric::heavy();
        for c in &caches {
            c.wait_claimed();
            // SAFETY: claimed, and the owner is outside any operation.
            unsafe { c.flush_claimed(&self.shared) };
        }
        WorldStop {
            heap: self,
            _control: control,
        }
    }

    /// Sweeps one unswept span, if any is left; returns whether it did. For a background
    /// sweeper that works in small steps.
    pub fn sweep_one(&self) -> bool {
        let sg = self.shared.load_state().sweep_gen();
        let _sweeping = self.shared.sweeping();
        for class in self.shared.central.classes() {
            if let Some(s) = self.shared.central.pop_unswept(class, sg) {
                self.shared.sweep_listed(s, sg);
                return true;
            }
        }
        false
    }

    /// Sweeps every span still unswept (including those idle caches held) and runs the drops
    /// that sweeping queued. Afterwards no object of the cycle is left to reclaim.
    pub fn finish_sweep(&self) {
        self.finish_sweep_without_drops();
        self.run_pending_drops();
        // Drops another thread took from the queue before us must have run too.
        while self.shared.drops_in_flight.load(Ordering::Acquire) != 0 {
            crate::sync::yield_now();
            self.run_pending_drops();
        }
    }

    /// Sweeps every span still unswept, leaving the drops it queues to
    /// [`Heap::run_pending_drops`] (on whatever thread the caller chooses).
    pub fn finish_sweep_without_drops(&self) {
        {
            let _c = self.shared.control.lock();
            self.shared.flush_caches();
        }
        self.sweep_listed();
    }

    /// Sweeps every listed span still unswept and waits for sweeps in flight (not the spans
    /// caches hold: for when no cache can hold one cached across a sweep start).
    fn sweep_listed(&self) {
        while self.sweep_one() {}
        // A sweep that popped its span before our last look has queued its drops (or will)
        // once this reaches zero; sweeps that start later find no unswept span.
        while self.shared.sweeps_in_flight.load(Ordering::Acquire) != 0 {
            crate::sync::yield_now();
        }
    }

    /// A count that grows with every span swept and every queued drop run: whoever waits for
    /// a sweep can tell whether it is moving.
    pub fn sweep_progress(&self) -> u64 {
        self.shared.spans_swept.load(Ordering::Relaxed)
            + self.shared.objects_dropped.load(Ordering::Relaxed)
    }

    /// Whether sweeping has queued drops that have not run yet.
    pub fn has_pending_drops(&self) -> bool {
        !self.shared.pending.lock().is_empty()
    }

    /// Drops the objects that sweeping found dead and that need a drop. Each drop runs under
    /// `catch_unwind`: a panic is counted ([`HeapStats::drop_panics`]) and the rest continue.
    /// Returns how many objects were dropped. Their slots are reclaimed by the next sweep.
    pub fn run_pending_drops(&self) -> usize {
        let mut n = 0;
        loop {
            let mut batch = {
                let mut pending = self.shared.pending.lock();
                self.shared
                    .drops_in_flight
                    .fetch_add(pending.len, Ordering::AcqRel);
                pending.take()
            };
            if batch.is_empty() {
                return n;
            }
            for &p in batch.iter().flatten() {
                n += 1;
                // A pending object was found dead (unmarked) by a sweep, queued once (when its
                // header moved to `Queued`) and taken from the queue once, here.
                // SAFETY: so it is dead, initialised, not yet dropped, and still in its slot.
                unsafe { self.shared.drop_object(p.object) };
                self.shared.drops_in_flight.fetch_sub(1, Ordering::AcqRel);
            }
            // Freeing thousands of chunks (a large heap's sweep) under the lock would hold up
            // every allocating thread whose lazy sweep queues drops meanwhile: only the
            // spares are handed back under it.
            let mut spares = batch.split_off(batch.len().saturating_sub(PendingDrops::SPARE));
            self.shared.pending.lock().recycle(&mut spares);
            drop((spares, batch));
        }
    }

    /// Bytes handed out since the heap was made (free slots in cached spans count, as in Go).
    /// Monotonic up to what caches give back unused; the pacer measures growth with it.
    #[inline]
    pub fn allocated_bytes(&self) -> u64 {
        self.shared.bytes_allocated.load(Ordering::Relaxed)
    }

    /// Heap statistics. Objects in spans that thread caches hold count as allocated, as in Go.
    pub fn stats(&self) -> HeapStats {
        self.shared.stats()
    }

    /// Checks the heap's internal consistency and panics with a description on the first
    /// violation: free runs, page accounting, every listed span's bitmaps and counts. Thread
    /// caches are flushed first. For tests and the `poison` debug feature.
    pub fn verify(&self) {
        {
            let _c = self.shared.control.lock();
            self.shared.flush_caches();
        }
        self.shared.verify();
    }

    /// Calls `f` on every allocated object (its slot address and span) in spans that no cache
    /// holds. Flush caches first ([`ThreadCache::flush`]) to see everything.
    pub fn for_each_object(&self, mut f: impl FnMut(Address, &Span)) {
        for class in self.shared.central.classes() {
            self.shared.central.for_each(class, |s| {
                // SAFETY: listed spans are alive while the list lock is held.
                let span = unsafe { s.get() };
                let nw = span.alloc_bits.nwords();
                for w in 0..nw {
                    let t = if w + 1 == nw {
                        tail_mask(span.nelems())
                    } else {
                        0
                    };
                    for b in BitIter(span.alloc_bits.word(w) & !t) {
                        f(span.slot_addr(w * 64 + b), span);
                    }
                }
            });
        }
    }
}

/// The registry of thread caches.
struct CacheRegistry {
    caches: Vec<Arc<CacheShared>>,
    stopped: bool,
}

/// The world is stopped while this lives; see [`Heap::stop_world`].
pub struct WorldStop<'a> {
    heap: &'a Heap,
    _control: crate::sync::MutexGuard<'a, ()>,
}

impl fmt::Debug for WorldStop<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorldStop").finish_non_exhaustive()
    }
}

impl WorldStop<'_> {
    /// Starts a sweep with the world stopped (see [`Heap::begin_sweep`]): the current mark bits
    /// become the verdict. The caches' spans were given back when the world stopped, and no
    /// thread can allocate before the guard drops, so no span is cached across the change.
    pub fn begin_sweep(&self) {
        // Sweep termination: the previous sweep's unswept spans must be swept under their own
        // verdict before the generation moves (their drops stay queued for whoever runs them).
        while self.heap.sweep_one() {}
        let shared = &self.heap.shared;
        let s = shared.load_state();
        shared.state.store(
            AllocState::new(s.sweep_gen().plus(2), false).0,
            Ordering::Relaxed,
        );
        // Caches adopt the new state when the owner next allocates (their span lists are
        // empty); the heavy fence in `Drop` publishes the store before anyone is let back in.
    }

    /// Calls `f` on every allocated object (slot address and span). Nothing moves while the
    /// world is stopped.
    pub fn for_each_object(&self, f: impl FnMut(Address, &Span)) {
        self.heap.for_each_object(f)
    }

    /// The current sweep generation (for the `poison` verifier's messages and checks).
    #[cfg(feature = "poison")]
    pub(crate) fn sweep_gen(&self) -> SweepGen {
        self.heap.shared.load_state().sweep_gen()
    }

    /// The heap verifier ([`Heap::verify`]) with the world stopped: the caches' spans were
    /// given back when it stopped, so every span is listed.
    pub fn verify(&self) {
        self.heap.shared.verify();
    }

    /// Clears every mark bit and root-enumeration claim: an abandoned mark leaves nothing
    /// behind (the next marking, of the same sweep generation, starts from scratch).
    pub fn clear_marks(&self) {
        self.for_each_span(|s| {
            s.mark_bits.clear();
            s.reset_roots_claim();
        });
    }

    /// Calls `f` on every span in use.
    pub fn for_each_span(&self, mut f: impl FnMut(&Span)) {
        for class in self.heap.shared.central.classes() {
            self.heap.shared.central.for_each(class, |s| {
                // SAFETY: listed spans are alive while the list lock is held.
                f(unsafe { s.get() })
            });
        }
    }
}

impl Drop for WorldStop<'_> {
    fn drop(&mut self) {
        crate::sync::asymmetric::heavy();
        let mut reg = self.heap.shared.caches.lock();
        reg.stopped = false;
        for c in &reg.caches {
            c.unclaim();
        }
    }
}

/// Counts one sweep in flight while alive (see `HeapShared::sweeps_in_flight`).
struct Sweeping<'a>(&'a AtomicUsize);

impl Drop for Sweeping<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HeapShared {
    /// Announces a sweep that may take a span from a list; taken before the span is.
    fn sweeping(&self) -> Sweeping<'_> {
        self.sweeps_in_flight.fetch_add(1, Ordering::AcqRel);
        Sweeping(&self.sweeps_in_flight)
    }

    #[inline(always)]
    pub(crate) fn load_state(&self) -> AllocState {
        AllocState(self.state.load(Ordering::Relaxed))
    }

    /// Publishes a new allocation state and waits until no allocation that may have read the
    /// old one is still running (the collector's side of the cache handshake).
    fn publish(&self, s: AllocState) {
        self.state.store(s.0, Ordering::Relaxed);
        crate::sync::asymmetric::heavy();
        for c in self.cache_list() {
            c.wait_not_busy();
        }
    }

    /// Has each cache's spans given back in turn ([`CacheShared::flush`]). Returns the longest
    /// one took.
    fn flush_caches(&self) -> std::time::Duration {
        let mut longest = std::time::Duration::ZERO;
        for c in self.cache_list() {
            let t = std::time::Instant::now();
            c.flush(self);
            longest = longest.max(t.elapsed());
        }
        longest
    }

    pub(crate) fn register_cache(&self, c: Arc<CacheShared>) {
        let mut reg = self.caches.lock();
        if reg.stopped {
            c.claim();
        }
        reg.caches.push(c);
    }

    pub(crate) fn unregister_cache(&self, c: &Arc<CacheShared>) {
        self.caches.lock().caches.retain(|x| !Arc::ptr_eq(x, c));
    }

    fn cache_list(&self) -> Vec<Arc<CacheShared>> {
        self.caches.lock().caches.clone()
    }

    fn count_marked(&self, objects: u64, bytes: usize) {
        if objects > 0 {
            self.marked_objects.fetch_add(objects, Ordering::Relaxed);
            self.marked_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// Marks the roots of one span (objects with a root count above zero) and pushes the scan
    /// ones on `grey`; returns how many allocated objects it examined. The caller won
    /// [`Span::try_claim_roots`] for this marking.
    ///
    /// Runs concurrently with mutators: a thread cache may be allocating in the span (its new
    /// objects are black, so they are skipped before their header is read), root counts change
    /// atomically, and an object whose count drops to zero before it is read here was shaded
    /// by the barrier (or is garbage).
    fn scan_roots(&self, span: &Span, grey: &mut Vec<Address>) -> usize {
        let nw = span.alloc_bits.nwords();
        let noscan = span.class().is_noscan();
        let (mut objects, mut examined) = (0u64, 0);
        for w in 0..nw {
            let tail = if w + 1 == nw {
                tail_mask(span.nelems())
            } else {
                0
            };
            // Allocated and not marked yet (black allocations and shaded objects are done).
            let candidates = span.alloc_bits.word(w) & !span.mark_bits.word(w) & !tail;
            examined += candidates.count_ones() as usize;
            for b in BitIter(candidates) {
                let slot = w * 64 + b;
                let addr = span.slot_addr(slot);
                // SAFETY: an allocated, unmarked slot holds an object allocated before this
                // marking began, whose header was written inside its allocating operation and
                // published when its cache gave the span back.
                let is_root = unsafe { span.holds_root(addr) };
                if is_root && span.mark_bits.set_atomic(slot) {
                    objects += 1;
                    if !noscan {
                        grey.push(addr);
                    }
                }
            }
        }
        self.count_marked(objects, objects as usize * span.elem_size());
        examined
    }

    /// Queues drops found by a sweep. New chunks are allocated outside the lock.
    fn queue_drops(&self, queued: &[PendingDrop]) {
        let mut fresh = Vec::new();
        loop {
            // (The guard must not live into the allocation below.)
            let pushed = self.pending.lock().push(queued, &mut fresh);
            match pushed {
                Ok(()) => return,
                Err(missing) => fresh.extend(PendingDrops::fresh_chunks(missing)),
            }
        }
    }

    /// Queues one grey object (a mutator's shade): into the partial chunk, which joins the
    /// full ones when it fills up. The lock is held for a few stores; a new chunk is allocated
    /// outside it.
    fn grey_push(&self, addr: Address) {
        {
            let mut q = self.grey.lock();
            if q.partial.len() == q.partial.capacity() {
                if let Some(fresh) = q.spare.pop() {
                    let full = core::mem::replace(&mut q.partial, fresh);
                    if !full.is_empty() {
                        q.full.push(full);
                    }
                }
            }
            if q.partial.len() < q.partial.capacity() {
                q.partial.push(addr);
                return;
            }
        }
        let mut fresh = Vec::with_capacity(GREY_CHUNK);
        fresh.push(addr);
        let mut q = self.grey.lock();
        let full = core::mem::replace(&mut q.partial, fresh);
        if !full.is_empty() {
            q.full.push(full);
        }
    }

    /// See [`Heap::grey_give`]: the chunks are filled outside the lock.
    fn grey_give(&self, from: &mut Vec<Address>, n: usize) {
        let at = from.len().saturating_sub(n);
        if at == from.len() {
            return;
        }
        let count = (from.len() - at).div_ceil(GREY_CHUNK);
        let mut chunks = self.grey.lock().spares(count);
        chunks.resize_with(count, || Vec::with_capacity(GREY_CHUNK));
        for (chunk, objects) in chunks.iter_mut().zip(from[at..].chunks(GREY_CHUNK)) {
            chunk.extend_from_slice(objects);
        }
        from.truncate(at);
        self.grey.lock().full.append(&mut chunks);
    }

    pub(crate) fn count_allocated(&self, class: SpanClass, objects: i64) {
        let c = &self.counters[class.index()].allocated;
        let bytes = objects.unsigned_abs() * class.size_class().size() as u64;
        if objects >= 0 {
            c.fetch_add(objects as u64, Ordering::Relaxed);
            self.bytes_allocated.fetch_add(bytes, Ordering::Relaxed);
        } else {
            c.fetch_sub(objects.unsigned_abs(), Ordering::Relaxed);
            self.bytes_allocated.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Takes a span with at least one free slot for a thread cache; the span comes back swept
    /// for `state`'s generation and marked as cached (`sg + 3`). While marking runs (`state`
    /// allocates black), a span whose roots have not been enumerated yet is enumerated here,
    /// before the cache hides it from the collector's enumeration.
    pub(crate) fn cache_span(
        &self,
        class: SpanClass,
        state: AllocState,
    ) -> Result<SpanRef, AllocError> {
        let s = self.cache_span_swept(class, state.sweep_gen())?;
        // While mark setup's handshake is not over, the span's roots are left to the
        // enumeration after it: the flush that follows the handshake gives the span back.
        if state.black() && self.grey.lock().snapshot_taken() {
            // SAFETY: ours (just taken for a cache), alive.
            let span = unsafe { s.get() };
            if span.try_claim_roots(state.sweep_gen()) {
                let mut grey = Vec::new();
                self.scan_roots(span, &mut grey);
                self.grey_give(&mut grey, usize::MAX);
            }
        }
        Ok(s)
    }

    fn cache_span_swept(&self, class: SpanClass, sg: SweepGen) -> Result<SpanRef, AllocError> {
        if let Some(s) = self.central.pop_swept_partial(class, sg) {
            // SAFETY: a listed span is alive and now ours.
            unsafe { s.get() }.set_sweep_gen(sg.plus(3));
            return Ok(s);
        }
        // Sweep before reuse: a bounded number of unswept spans, keeping the first with room.
        for _ in 0..LAZY_SWEEP_BUDGET {
            let _sweeping = self.sweeping();
            let Some(s) = self.central.pop_unswept(class, sg) else {
                break;
            };
            // SAFETY: as above.
            let span = unsafe { s.get() };
            if !span.try_claim_sweep(sg) {
                // A seeded mutant for the loom models: the first version's bug, which dropped
                // the span here.
                if cfg!(gc_core_mutant = "relist") {
                    continue;
                }
                // Dropping it here would lose the span for good: never swept again, its mark
                // bits would stay set and make later cycles skip tracing its objects.
                self.relist(s);
                break;
            }
            // Preserved: a span this sweep empties goes straight into the cache instead of
            // back to the page heap and out again (Go's `sweep(preserve)` in `cacheSpan`).
            match self.sweep_claimed(s, sg, true) {
                Swept::HasRoom => {
                    span.set_sweep_gen(sg.plus(3));
                    return Ok(s);
                }
                Swept::Full => {
                    span.set_sweep_gen(sg);
                    self.central.push_swept(class, s, sg, Fullness::Full);
                }
                Swept::Freed => {}
            }
        }
        let sc = class.size_class();
        let s = self
            .page_heap
            .lock()
            .alloc_span(sc.npages(), class, sg.plus(3))?;
        Ok(SpanRef(s))
    }

    /// Returns a span a cache held. The cache has already written its allocations back to the
    /// alloc bits.
    pub(crate) fn uncache_span(&self, s: SpanRef, sg: SweepGen) {
        // SAFETY: the cache hands over a span it owned; it is alive.
        let span = unsafe { s.get() };
        let g = span.sweep_gen();
        if g == sg.plus(1) {
            // Cached since before this sweep began: its marks are this cycle's verdict. It
            // joins the unswept spans (O(1): a cache flushed at sweep start, whose owner may
            // be waiting for it, must not sweep); sweep termination sweeps it before the
            // generation can move on, since whoever holds the cache is inside an operation or
            // a claim that the next cycle's flush waits for.
            span.set_sweep_gen(sg.minus(2));
            self.central.push_unswept(span.class(), s, sg);
        } else {
            debug_assert_eq!(g, sg.plus(3), "a cached span is either sg+1 or sg+3");
            let f = if span.free_slots() > 0 {
                Fullness::Partial
            } else {
                Fullness::Full
            };
            self.list_swept(s, sg, f);
        }
    }

    fn list_swept(&self, s: SpanRef, sg: SweepGen, f: Fullness) {
        // SAFETY: the caller owns the span.
        let span = unsafe { s.get() };
        span.set_sweep_gen(sg);
        self.central.push_swept(span.class(), s, sg, f);
    }

    /// Sweeps a span taken from an unswept list (background sweeping, `finish_sweep`).
    fn sweep_listed(&self, s: SpanRef, sg: SweepGen) {
        // SAFETY: a listed span is alive and now ours.
        let span = unsafe { s.get() };
        if !span.try_claim_sweep(sg) {
            self.relist(s);
            return;
        }
        match self.sweep_claimed(s, sg, false) {
            Swept::Freed => {}
            Swept::HasRoom => self.list_swept(s, sg, Fullness::Partial),
            Swept::Full => self.list_swept(s, sg, Fullness::Full),
        }
    }

    /// Puts back a span popped from an unswept list that could not be claimed for sweeping:
    /// the generation moved on between the caller reading it and popping (an operation that
    /// read the allocation state just before a new sweep generation was published; the
    /// publish waits for it), so the span came from what is now a swept list.
    fn relist(&self, s: SpanRef) {
        // SAFETY: the caller popped the span from a list: it is alive and the caller's.
        let span = unsafe { s.get() };
        let cur = self.load_state().sweep_gen();
        if span.sweep_gen() == cur {
            let f = if span.free_slots() > 0 {
                Fullness::Partial
            } else {
                Fullness::Full
            };
            self.central.push_swept(span.class(), s, cur, f);
        } else {
            // Unswept for `cur`. A span left behind by more than one generation (which sweep
            // termination rules out) is re-labelled so it can still be claimed: its mark bits
            // are then the union of the cycles' verdicts, which only keeps more.
            debug_assert_eq!(
                span.sweep_gen(),
                cur.minus(2),
                "span left unswept for a cycle"
            );
            span.set_sweep_gen(cur.minus(2));
            self.central.push_unswept(span.class(), s, cur);
        }
    }

    /// Sweeps a span the caller has claimed (`sweep_gen == sg - 1`): dead objects that need no
    /// drop are freed by rewriting the alloc bits from the mark bits, without touching them;
    /// dead objects that need a drop are queued and keep their slots until the next sweep.
    /// An empty span goes back to the page heap, unless `preserve`: then the caller keeps it
    /// (`HasRoom`).
    fn sweep_claimed(&self, s: SpanRef, sg: SweepGen, preserve: bool) -> Swept {
        // SAFETY: the caller's claim makes it the span's only user.
        let span = unsafe { s.get() };
        debug_assert_eq!(span.sweep_gen(), sg.minus(1));
        let nw = span.alloc_bits.nwords();
        let (mut live, mut freed) = (0usize, 0usize);
        let mut reclaimed_dropped = 0u64;
        let mut queued = Vec::new();
        for w in 0..nw {
            let tail = if w + 1 == nw {
                tail_mask(span.nelems())
            } else {
                0
            };
            let alloc = span.alloc_bits.word(w) & !tail;
            let mark = span.mark_bits.word(w);
            debug_assert_eq!(mark & tail, 0, "mark bit past the end of a span");
            let drops = span.drop_bits.word(w);
            let dead = alloc & !mark;
            let dead_free = dead & !drops;
            // Dead objects that need a drop: queue those not queued yet, keep those queued,
            // free those already dropped. Only these dead objects are ever touched.
            let (mut keep, mut dropped) = (0u64, 0u64);
            for b in BitIter(dead & drops) {
                let object = span.slot_addr(w * 64 + b);
                // SAFETY: a drop bit marks a slot whose header was written at allocation.
                let header = unsafe { &*object.as_mut_ptr::<ObjectHeader>() };
                match header.drop_state() {
                    DropState::NotQueued => {
                        // A dead object is unreachable, so nothing can count a root on it: a
                        // count here is a root the mark missed (I1), about to be overwritten.
                        #[cfg(any(debug_assertions, feature = "poison"))]
                        assert!(
                            !header.is_root(),
                            "gc-core: sweep found the unmarked object {object:?} rooted (a root \
                             the mark missed)"
                        );
                        header.set_queued();
                        queued.push(PendingDrop { object });
                        keep |= 1 << b;
                    }
                    DropState::Queued => keep |= 1 << b,
                    DropState::Dropped => dropped |= 1 << b,
                }
            }
            #[cfg(feature = "poison")]
            for b in BitIter(dead_free) {
                poison_slot(span, w * 64 + b, 0);
            }
            if span.class().is_tiny() {
                for b in BitIter(dead_free) {
                    let roots = span.tiny_roots(span.slot_addr(w * 64 + b));
                    debug_assert_eq!(roots.map(|r| r.load(Ordering::Relaxed)), Some(0));
                }
            }
            span.drop_bits.set_word(w, drops & !dropped);
            span.alloc_bits.set_word(w, mark | keep | tail);
            span.mark_bits.set_word(w, 0);
            live += (mark | keep).count_ones() as usize;
            freed += (dead_free | dropped).count_ones() as usize;
            reclaimed_dropped += dropped.count_ones() as u64;
        }
        span.alloc_count.store(live, Ordering::Release);
        if reclaimed_dropped > 0 {
            self.dropped_unreclaimed
                .fetch_sub(reclaimed_dropped, Ordering::Relaxed);
            self.dropped_unreclaimed_bytes.fetch_sub(
                reclaimed_dropped * span.elem_size() as u64,
                Ordering::Relaxed,
            );
        }
        let class = span.class();
        let counters = &self.counters[class.index()];
        counters.freed.fetch_add(freed as u64, Ordering::Relaxed);
        if class.is_large() && freed > 0 {
            counters
                .large_bytes_freed
                .fetch_add(span.bytes() as u64, Ordering::Relaxed);
        }
        self.spans_swept.fetch_add(1, Ordering::Relaxed);
        if !queued.is_empty() {
            self.queue_drops(&queued);
        }
        if live == 0 && !preserve {
            // SAFETY: the span holds no object (none marked, none waiting for a drop) and the
            // sweep claim makes us its only holder.
            unsafe { self.page_heap.lock().free_span(s.0) };
            Swept::Freed
        } else if live < span.nelems() {
            Swept::HasRoom
        } else {
            Swept::Full
        }
    }

    /// Runs the drop of one dead object under `catch_unwind`.
    ///
    /// # Safety
    ///
    /// - `object` is the header address of a dead, initialised object that has not been
    ///   dropped, in a span of this heap that stays allocated until the next sweep.
    unsafe fn drop_object(&self, object: Address) {
        // SAFETY: the caller guarantees an initialised header at `object`.
        let header = unsafe { &*object.as_mut_ptr::<ObjectHeader>() };
        let desc = header.descriptor();
        if let Some(drop_fn) = desc.drop {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                // SAFETY: the object is dead and dropped exactly once (caller's contract); its
                // descriptor's drop fn matches its type.
                unsafe { drop_fn(object.as_mut_ptr()) }
            }));
            if let Err(payload) = r {
                self.drop_panics.fetch_add(1, Ordering::Relaxed);
                // The payload's own destructor is user code that could panic again, outside
                // any `catch_unwind`: leak it instead.
                core::mem::forget(payload);
            }
        }
        if let Some(span) = ArenaTable::get().span_of(object) {
            self.dropped_unreclaimed.fetch_add(1, Ordering::Relaxed);
            self.dropped_unreclaimed_bytes
                .fetch_add(span.elem_size() as u64, Ordering::Relaxed);
            // Keep the header: it carries the drop state the next sweep reads.
            #[cfg(feature = "poison")]
            poison_slot(
                span,
                span.slot_of(object),
                core::mem::size_of::<ObjectHeader>(),
            );
        }
        header.set_dropped();
        self.objects_dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn alloc_large(
        &self,
        bytes: usize,
        noscan: bool,
        needs_drop: bool,
        state: AllocState,
    ) -> Result<Address, AllocError> {
        let npages = addr::checked_align_up(bytes, PAGE_SIZE)
            .ok_or(AllocError::TooLarge { bytes })?
            / PAGE_SIZE;
        let sg = state.sweep_gen();
        let class = SpanClass::large(noscan);
        let s = self.page_heap.lock().alloc_span(npages.max(1), class, sg)?;
        let s = SpanRef(s);
        // SAFETY: just allocated; ours until listed.
        let span = unsafe { s.get() };
        span.alloc_bits.set_unsync(0);
        span.alloc_count.store(1, Ordering::Release);
        if needs_drop {
            span.drop_bits.set_unsync(0);
        }
        if state.black() {
            span.mark_bits.set_atomic(0);
            span.set_roots_claimed(sg);
        }
        let counters = &self.counters[class.index()];
        counters.allocated.fetch_add(1, Ordering::Relaxed);
        counters
            .large_bytes_allocated
            .fetch_add(span.bytes() as u64, Ordering::Relaxed);
        // The pacer's clock: without this, a program allocating only large objects would
        // never start a cycle.
        self.bytes_allocated
            .fetch_add(span.bytes() as u64, Ordering::Relaxed);
        let start = span.start();
        self.central.push_swept(class, s, sg, Fullness::Full);
        Ok(start)
    }

    fn stats(&self) -> HeapStats {
        let ph = self.page_heap.lock();
        let mut st = HeapStats {
            reserved_bytes: ph.reserved,
            committed_bytes: ph.committed,
            span_bytes: ph.in_use_pages * PAGE_SIZE,
            spans: ph.spans_in_use,
            free_page_bytes: ph.free_pages() * PAGE_SIZE,
            pending_drops: self.pending.lock().len,
            objects_dropped: self.objects_dropped.load(Ordering::Relaxed),
            drop_panics: self.drop_panics.load(Ordering::Relaxed),
            spans_swept: self.spans_swept.load(Ordering::Relaxed),
            sweep_generation: self.load_state().sweep_gen().0,
            unswept_spans: self
                .central
                .classes()
                .map(|c| self.central.unswept_len(c, self.load_state().sweep_gen()))
                .sum(),
            cheap_fences: crate::sync::asymmetric::is_cheap(),
            dropped_unreclaimed: self.dropped_unreclaimed.load(Ordering::Relaxed) as usize,
            dropped_unreclaimed_bytes: self.dropped_unreclaimed_bytes.load(Ordering::Relaxed)
                as usize,
            ..HeapStats::default()
        };
        drop(ph);
        for class in SpanClass::all() {
            let c = &self.counters[class.index()];
            let allocated = c.allocated.load(Ordering::Relaxed);
            let freed = c.freed.load(Ordering::Relaxed);
            let objects = allocated.saturating_sub(freed) as usize;
            let bytes = if class.is_large() {
                c.large_bytes_allocated
                    .load(Ordering::Relaxed)
                    .saturating_sub(c.large_bytes_freed.load(Ordering::Relaxed))
                    as usize
            } else {
                objects * class.size_class().size()
            };
            if allocated == 0 {
                continue;
            }
            st.objects += objects;
            st.object_bytes += bytes;
            st.objects_allocated += allocated;
            st.objects_freed += freed;
            if class.is_tiny() {
                st.tiny_bytes += bytes;
            } else if class.is_noscan() {
                st.noscan_bytes += bytes;
            } else {
                st.scan_bytes += bytes;
            }
            st.classes.push(ClassStats {
                class,
                object_size: if class.is_large() {
                    0
                } else {
                    class.size_class().size()
                },
                objects,
                bytes,
                allocated,
                freed,
            });
        }
        st
    }

    fn verify(&self) {
        self.page_heap.lock().verify();
        let sg = self.load_state().sweep_gen();
        let table = ArenaTable::get();
        for class in self.central.classes() {
            self.central.for_each(class, |s| {
                // SAFETY: listed spans are alive while the list lock is held.
                let span = unsafe { s.get() };
                assert_eq!(span.class(), class, "span listed under the wrong class");
                let g = span.sweep_gen();
                assert!(
                    g == sg || g == sg.minus(2),
                    "listed span with sweep_gen {g:?} at {sg:?}"
                );
                let nw = span.alloc_bits.nwords();
                let tail = tail_mask(span.nelems());
                assert_eq!(
                    span.alloc_bits.word(nw - 1) & tail,
                    tail,
                    "tail slots must stay allocated"
                );
                let allocated = span.alloc_bits.count_ones() - tail.count_ones() as usize;
                assert_eq!(
                    allocated,
                    span.alloc_count.load(Ordering::Relaxed),
                    "alloc_count disagrees with alloc_bits in {span:?}"
                );
                for w in 0..nw {
                    let alloc = span.alloc_bits.word(w);
                    assert_eq!(
                        span.drop_bits.word(w) & !alloc,
                        0,
                        "drop bit on a free slot"
                    );
                    if g == sg {
                        assert_eq!(
                            span.mark_bits.word(w) & !alloc,
                            0,
                            "mark bit on a free slot"
                        );
                    }
                }
                for p in 0..span.npages() {
                    let a = span.start().add(p * PAGE_SIZE);
                    let found = table.span_of(a).map(|x| x as *const Span);
                    assert_eq!(found, Some(span as *const Span), "page map broken at {a:?}");
                }
            });
        }
    }
}

/// How many unswept spans an allocating thread sweeps, at most, looking for one with room
/// before it takes a new span from the page heap (Go's `spanBudget` is 100). In a heap that is
/// mostly live, most spans sweep full, and each sweep queues the drops of its dead objects
/// (a header read and write each, mostly cache misses): 100 spans made refills of 0.3–1.5 ms
/// with 10 M live objects. The collector thread sweeps the rest meanwhile.
const LAZY_SWEEP_BUDGET: usize = 16;

/// The outcome of sweeping one span.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Swept {
    /// No object left: the span went back to the page heap.
    Freed,
    /// Some slots free.
    HasRoom,
    /// Every slot in use.
    Full,
}

/// The byte freed slots are filled with under the `poison` feature.
#[cfg(feature = "poison")]
pub const POISON: u8 = 0xDB;

/// Fills a free (or dropped) slot from byte `from` on with [`POISON`], so a use after free reads
/// an unmistakable pattern.
#[cfg(feature = "poison")]
fn poison_slot(span: &Span, i: usize, from: usize) {
    let a = span.slot_addr(i).add(from);
    // SAFETY: the slot is free or holds a dropped, unreachable object, lies inside committed
    // span memory, and no safe handle points at it.
    unsafe { core::ptr::write_bytes(a.as_mut_ptr::<u8>(), POISON, span.elem_size() - from) };
}

impl Drop for HeapShared {
    fn drop(&mut self) {
        // Every cache is gone (each holds an `Arc` to us). Drop the objects that still need it
        // (pending ones first), then give the memory back.
        let pending = self.pending.lock().take();
        for p in pending.into_iter().flatten() {
            // SAFETY: queued objects are dead, initialised and not yet dropped.
            unsafe { self.drop_object(p.object) };
        }
        let mut spans = Vec::new();
        for class in self.central.classes() {
            spans.extend(self.central.drain(class));
        }
        for s in &spans {
            // SAFETY: drained spans are alive until the page heap is released below.
            let span = unsafe { s.get() };
            for i in span.drop_bits.ones().collect::<Vec<_>>() {
                let object = span.slot_addr(i);
                // SAFETY: a drop bit marks a slot whose header was written at allocation.
                let state = unsafe { &*object.as_mut_ptr::<ObjectHeader>() }.drop_state();
                if state == DropState::NotQueued {
                    // SAFETY: an initialised object not yet dropped (queued ones were dropped
                    // above); the memory stays mapped until `release_all`.
                    unsafe { self.drop_object(object) };
                }
            }
        }
        let mut ph = self.page_heap.lock();
        for s in spans {
            // SAFETY: the heap is being torn down; nothing refers to its objects any more.
            unsafe { ph.free_span(s.0) };
        }
        ph.release_all();
    }
}

/// A snapshot of heap statistics.
#[derive(Clone, Debug, Default)]
pub struct HeapStats {
    /// Address space reserved from the OS.
    pub reserved_bytes: usize,
    /// Address space made readable/writable (an upper bound on what the heap can make resident).
    pub committed_bytes: usize,
    /// Bytes in spans in use (whole pages).
    pub span_bytes: usize,
    /// Bytes in free page runs.
    pub free_page_bytes: usize,
    /// Spans in use.
    pub spans: usize,
    /// Objects allocated and not yet freed (tiny blocks count as one object each).
    pub objects: usize,
    /// Bytes of those objects, by slot size.
    pub object_bytes: usize,
    /// Of which in scan spans.
    pub scan_bytes: usize,
    /// Of which in noscan spans (tiny excluded).
    pub noscan_bytes: usize,
    /// Of which in tiny blocks.
    pub tiny_bytes: usize,
    /// Objects handed out since the heap was made.
    pub objects_allocated: u64,
    /// Objects freed by sweeps since the heap was made.
    pub objects_freed: u64,
    /// Dead objects whose drop is queued.
    pub pending_drops: usize,
    /// Objects dropped by the sweeper.
    pub objects_dropped: u64,
    /// Drops that panicked (caught and counted).
    pub drop_panics: u64,
    /// Spans swept.
    pub spans_swept: u64,
    /// The current sweep generation.
    pub sweep_generation: u32,
    /// Spans in central lists still waiting to be swept this cycle.
    pub unswept_spans: usize,
    /// Whether allocation's handshake runs without a hardware fence (`membarrier` available).
    pub cheap_fences: bool,
    /// Dead objects already dropped whose slots the next sweep frees (included in `objects`).
    pub dropped_unreclaimed: usize,
    /// Their bytes (included in `object_bytes`).
    pub dropped_unreclaimed_bytes: usize,
    /// Per span class with any allocation.
    pub classes: Vec<ClassStats>,
}

/// Statistics of one span class.
#[derive(Clone, Debug)]
pub struct ClassStats {
    /// The class.
    pub class: SpanClass,
    /// Slot size (0 for large objects).
    pub object_size: usize,
    /// Objects allocated and not yet freed.
    pub objects: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Handed out since the heap was made.
    pub allocated: u64,
    /// Freed since the heap was made.
    pub freed: u64,
}

/// The tiny block root count for a tiny object at `addr`, if `addr` is in a tiny span.
///
/// # Safety
///
/// - As for [`Heap::span_of`], for as long as the reference is used.
pub unsafe fn tiny_roots_of<'a>(addr: Address) -> Option<&'a crate::sync::atomic::AtomicU32> {
    // SAFETY: forwarded contract.
    unsafe { Heap::span_of(addr) }?.tiny_roots(addr)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::ptr::header::{ObjectHeader, TypeDescriptor};
    use crate::sync::atomic::AtomicUsize;
    use std::collections::HashSet;

    fn class(size: usize, noscan: bool) -> SpanClass {
        SpanClass::new(size_class_for(size, 8).unwrap(), noscan)
    }

    /// Allocates `n` objects of `size` bytes without drop glue.
    fn alloc_n(cache: &mut ThreadCache, size: usize, n: usize) -> Vec<Address> {
        let mut op = cache.op();
        // SAFETY: no drop, so nothing reads the slots.
        (0..n)
            .map(|_| unsafe { op.alloc(class(size, true), false) }.unwrap())
            .collect()
    }

    /// The grey queue's chunking loses and repeats nothing (a lost grey object would leave
    /// its children unmarked: I2): shades across several chunks, a marker taking the partial
    /// chunk mid-way, gives of more than a chunk, and spares reused throughout. The queue
    /// only moves addresses, so these need not be objects.
    #[test]
    fn grey_queue_chunks_hand_out_every_object_once() {
        let heap = Heap::default();
        heap.grey_reset();
        let addr = |i: usize| Address::new(0x1000 + 16 * i);
        // Shades queue from the start, but markers take nothing before mark setup has listed
        // the roots (`GreyQueue::snapshot`).
        heap.shared.grey_push(addr(0));
        let (mut s0, mut r0) = (Vec::new(), Vec::new());
        assert!(
            !heap.grey_take(&mut s0, &mut r0),
            "traced during mark setup"
        );
        heap.grey_open();
        heap.grey_set_roots();
        let mut expected = 1;
        let mut taken = Vec::new();
        let (mut stack, mut roots) = (Vec::new(), Vec::new());
        let mut take_all = |taken: &mut Vec<Address>| {
            while heap.grey_take(&mut stack, &mut roots) {
                assert!(roots.is_empty(), "no root spans were listed");
                assert!(stack.len() <= GREY_CHUNK, "a take is one chunk");
                taken.append(&mut stack);
                heap.grey_done(0, 0, false);
            }
        };
        for round in 0..3 {
            // Shades: two and a half chunks, with a take of the partial one in between.
            for _ in 0..GREY_CHUNK + 100 {
                heap.shared.grey_push(addr(expected));
                expected += 1;
            }
            take_all(&mut taken);
            for _ in 0..3 * GREY_CHUNK / 2 {
                heap.shared.grey_push(addr(expected));
                expected += 1;
            }
            // A marker gives back part of its stack, then all of it.
            let mut mine: Vec<Address> = (0..2 * GREY_CHUNK + 7 + round)
                .map(|_| {
                    expected += 1;
                    addr(expected - 1)
                })
                .collect();
            heap.grey_give(&mut mine, GREY_CHUNK + 3);
            assert_eq!(mine.len(), GREY_CHUNK + 4 + round);
            heap.grey_give(&mut mine, usize::MAX);
            assert!(mine.is_empty());
            assert!(!heap.grey_idle());
            take_all(&mut taken);
            assert!(heap.grey_idle());
        }
        // Marking over: a late shade stays queued, for no marker.
        assert!(heap.grey_finish());
        heap.shared.grey_push(addr(expected));
        assert!(
            !heap.grey_take(&mut stack, &mut roots),
            "traced after marking ended"
        );
        taken.sort_unstable();
        let want: Vec<Address> = (0..expected).map(addr).collect();
        assert_eq!(
            taken, want,
            "every queued object is handed out exactly once"
        );
    }

    /// Pending drops: pushes of any size come out once each, in chunks of at most
    /// `PendingDrops::CHUNK`, and recycled chunks come back empty.
    #[test]
    fn pending_drops_chunks_keep_every_drop_once() {
        let mut q = PendingDrops::default();
        let mut next = 0usize;
        let mut seen = Vec::new();
        for round in 0..3 {
            for n in [0, 1, 255, 1024, 3000, 7] {
                let queued: Vec<PendingDrop> = (0..n + round)
                    .map(|_| {
                        next += 1;
                        PendingDrop {
                            object: Address::new(16 * next),
                        }
                    })
                    .collect();
                // As `HeapShared::queue_drops` does: chunks missing are made outside, and a
                // refused push queues nothing.
                let mut fresh = Vec::new();
                while let Err(missing) = q.push(&queued, &mut fresh) {
                    assert!(missing > 0);
                    let len = q.len;
                    fresh.extend(PendingDrops::fresh_chunks(missing));
                    assert_eq!(q.len, len);
                }
            }
            assert_eq!(q.is_empty(), next == seen.len());
            let mut chunks = q.take();
            assert!(q.is_empty());
            assert!(chunks.iter().all(|c| c.len() <= PendingDrops::CHUNK));
            seen.extend(chunks.iter().flatten().map(|p| p.object));
            let n = chunks.len();
            q.recycle(&mut chunks);
            assert!(q.spare.iter().all(Vec::is_empty));
            assert_eq!(
                q.spare.len() + chunks.len(),
                n,
                "every chunk is kept or handed back"
            );
            assert!(q.spare.len() <= PendingDrops::SPARE);
        }
        let want: Vec<Address> = (1..=next).map(|i| Address::new(16 * i)).collect();
        assert_eq!(seen, want, "every drop is taken exactly once, in order");
    }

    #[test]
    fn allocations_are_distinct_aligned_and_in_spans() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let mut seen = HashSet::new();
        // Fewer under Miri, which interprets every allocation and every byte written.
        const N: usize = if cfg!(miri) { 40 } else { 300 };
        for size in [8, 16, 24, 32, 48, 64, 128, 1024, 4096, 32768] {
            for a in alloc_n(&mut cache, size, N) {
                assert!(a.is_aligned(8));
                assert!(seen.insert(a), "slot handed out twice");
                // SAFETY: the objects are allocated and no sweep runs during this test.
                let span = unsafe { Heap::span_of(a) }.unwrap();
                assert_eq!(span.slot_addr(span.slot_of(a)), a);
                assert!(span.elem_size() >= size);
                // Writing the whole slot is allowed.
                // SAFETY: the slot is ours, committed, and `elem_size` bytes long.
                unsafe { core::ptr::write_bytes(a.as_mut_ptr::<u8>(), 0xAB, span.elem_size()) };
            }
        }
        cache.flush();
        heap.verify();
        let st = heap.stats();
        assert_eq!(st.objects, 10 * N);
        assert!(st.noscan_bytes >= N * (8 + 16 + 24 + 32 + 48 + 64 + 128 + 1024 + 4096 + 32768));
        assert_eq!(st.scan_bytes, 0);
        assert!(st.committed_bytes >= st.span_bytes && st.reserved_bytes >= st.committed_bytes);
    }

    #[test]
    fn sweep_frees_unmarked_and_keeps_marked() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let objs = alloc_n(&mut cache, 32, 1000);
        for a in objs.iter().step_by(3) {
            // SAFETY: allocated objects, no sweep in progress.
            assert!(unsafe { heap.mark(*a) });
        }
        heap.begin_sweep();
        heap.finish_sweep();
        heap.verify();
        let st = heap.stats();
        assert_eq!(st.objects, objs.len().div_ceil(3));
        assert_eq!(
            st.objects_freed as usize,
            objs.len() - objs.len().div_ceil(3)
        );
        // Survivors keep their slots; new allocations reuse only freed slots.
        let survivors: HashSet<_> = objs.iter().copied().step_by(3).collect();
        let again = alloc_n(&mut cache, 32, 1000);
        for a in &again {
            assert!(!survivors.contains(a), "live slot reused");
        }
        let freed: HashSet<_> = objs
            .iter()
            .copied()
            .filter(|a| !survivors.contains(a))
            .collect();
        assert!(again.iter().filter(|a| freed.contains(a)).count() >= freed.len() - 64);
    }

    #[test]
    fn an_empty_span_goes_back_to_the_page_heap() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        alloc_n(&mut cache, 64, 5000);
        cache.flush();
        let before = heap.stats();
        assert!(before.spans > 1);
        heap.begin_sweep();
        heap.finish_sweep();
        let after = heap.stats();
        assert_eq!(after.objects, 0);
        assert_eq!(after.spans, 0);
        assert_eq!(after.span_bytes, 0);
        assert_eq!(after.free_page_bytes, after.reserved_bytes);
        heap.verify();
    }

    static DROPS: AtomicUsize = AtomicUsize::new(0);

    #[repr(C)]
    struct Boxed {
        header: ObjectHeader,
        payload: u64,
        panics: bool,
    }

    /// # Safety
    ///
    /// - `p` is the header address of a live `Boxed`.
    unsafe fn drop_boxed(p: *mut u8) {
        // SAFETY: the caller's contract.
        let b = unsafe { &*(p as *const Boxed) };
        assert_eq!(b.payload, 0xFEED, "dropped a slot that is not a Boxed");
        DROPS.fetch_add(1, Ordering::Relaxed);
        if b.panics {
            panic!("test drop panics");
        }
    }

    static BOXED: TypeDescriptor = TypeDescriptor {
        trace: None,
        drop: Some(drop_boxed),
        size: core::mem::size_of::<Boxed>(),
        align: 8,
        name: || "Boxed",
    };

    #[test]
    fn dead_objects_with_drop_are_dropped_once_and_reclaimed_a_sweep_later() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let mut objs = Vec::new();
        {
            let mut op = cache.op();
            for i in 0..100 {
                // SAFETY: the header is written before the operation ends.
                let a = unsafe { op.alloc(class(24, true), true) }.unwrap();
                let b = Boxed {
                    header: ObjectHeader::new(&BOXED, 0),
                    payload: 0xFEED,
                    panics: i % 10 == 0,
                };
                // SAFETY: the slot is ours and 24+ bytes.
                unsafe { a.as_mut_ptr::<Boxed>().write(b) };
                objs.push(a);
            }
        }
        let before = DROPS.load(Ordering::Relaxed);
        let prev_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        heap.begin_sweep();
        assert_eq!(heap.stats().objects_freed, 0);
        heap.finish_sweep();
        std::panic::set_hook(prev_hook);
        assert_eq!(DROPS.load(Ordering::Relaxed) - before, 100);
        let st = heap.stats();
        assert_eq!(st.drop_panics, 10);
        assert_eq!(st.objects_dropped, 100);
        assert_eq!(
            st.objects, 100,
            "dropped objects keep their slots until the next sweep"
        );
        heap.verify();
        heap.begin_sweep();
        heap.finish_sweep();
        assert_eq!(
            DROPS.load(Ordering::Relaxed) - before,
            100,
            "dropped exactly once"
        );
        assert_eq!(heap.stats().objects, 0);
        heap.verify();
    }

    #[test]
    fn allocate_black_survives_the_sweep() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let white = alloc_n(&mut cache, 16, 100);
        heap.set_black(true);
        let black = alloc_n(&mut cache, 16, 100);
        {
            let mut op = cache.op();
            assert!(op.is_black());
            // SAFETY: no drop glue, nothing reads the slots.
            let big = unsafe { op.alloc_large(100_000, true, false) }.unwrap();
            // SAFETY: allocated, no sweep in progress.
            assert!(unsafe { heap.is_marked(big) });
        }
        heap.begin_sweep();
        heap.finish_sweep();
        for a in &black {
            // SAFETY: black objects survive the sweep, so their span is alive.
            assert!(unsafe { Heap::span_of(*a) }.is_some_and(|s| !s.is_free(s.slot_of(*a))));
        }
        let st = heap.stats();
        assert_eq!(st.objects, 101);
        assert!(white.iter().all(|a| !black.contains(a)));
        heap.verify();
    }

    /// Black allocation marks a cache's current word at once (`premark`): every object
    /// allocated in black is marked, none allocated before is, a tiny block from before the
    /// switch is not reused, and the marks of slots never handed out are taken back when the
    /// cache gives its spans back (a marked free slot would come out of the sweep allocated).
    #[test]
    fn black_allocation_marks_whole_words_and_takes_back_the_rest() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        // A word part used in white, and a white tiny block.
        let white = alloc_n(&mut cache, 16, 10);
        // SAFETY: tiny objects have no drop and no handles.
        let white_tiny = unsafe { cache.op().alloc_tiny(4, 4) }.unwrap();
        heap.set_black(true);
        // The rest of that word and several more.
        let black = alloc_n(&mut cache, 16, 200);
        // SAFETY: as above.
        let black_tiny = unsafe { cache.op().alloc_tiny(4, 4) }.unwrap();
        let block = |a: Address| a.as_usize() / TINY_BLOCK;
        assert_ne!(
            block(black_tiny),
            block(white_tiny),
            "a white tiny block was reused in black"
        );
        // The objects are allocated and no sweep is in progress: `is_marked` may look.
        let marked = |a: Address| {
            // SAFETY: as just said.
            unsafe { heap.is_marked(a) }
        };
        for a in &white {
            assert!(!marked(*a), "{a:?} allocated in white is marked");
        }
        assert!(!marked(white_tiny));
        for a in black.iter().chain([&black_tiny]) {
            assert!(marked(*a), "{a:?} allocated in black is not marked");
        }
        heap.flush_caches();
        // Exactly the black objects (and the black tiny block) are marked: no free slot is.
        let mut spans: Vec<*const Span> = white
            .iter()
            .chain(&black)
            .chain([&white_tiny, &black_tiny])
            // SAFETY: allocated, so their spans are alive.
            .map(|a| unsafe { Heap::span_of(*a) }.unwrap() as *const Span)
            .collect();
        spans.sort();
        spans.dedup();
        // SAFETY: the spans hold live objects.
        let marks: usize = spans
            .iter()
            .map(|s| unsafe { &**s }.mark_bits.count_ones())
            .sum();
        assert_eq!(marks, black.len() + 1);
        heap.verify();
        heap.set_black(false);
        heap.begin_sweep();
        heap.finish_sweep();
        heap.verify();
        assert_eq!(heap.stats().objects, black.len() + 1);
    }

    #[test]
    fn tiny_objects_share_blocks_and_live_as_one() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let mut objs = Vec::new();
        {
            let mut op = cache.op();
            for _ in 0..64 {
                // SAFETY: tiny objects have no drop and no handles.
                objs.push(unsafe { op.alloc_tiny(8, 8) }.unwrap());
            }
            // Zero-sized objects get distinct addresses too.
            // SAFETY: as above.
            let (z1, z2) = unsafe { (op.alloc_tiny(0, 1).unwrap(), op.alloc_tiny(0, 1).unwrap()) };
            assert_ne!(z1, z2);
        }
        // Two 8-byte objects per 16-byte block.
        assert_eq!(objs[1], objs[0].add(8));
        assert_eq!(objs[2].offset_from(objs[0]) % TINY_BLOCK, 0);
        let st = heap.stats();
        assert!(st.tiny_bytes > 0 && st.noscan_bytes == 0);
        // Root count of the block, then mark only the second object of the first block.
        // SAFETY: allocated, no sweep in progress.
        let roots = unsafe { tiny_roots_of(objs[1]) }.unwrap();
        roots.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        let same_block = unsafe { tiny_roots_of(objs[0]) }.unwrap();
        assert_eq!(same_block.load(Ordering::Relaxed), 1);
        roots.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { heap.mark(objs[1]) };
        heap.begin_sweep();
        heap.finish_sweep();
        // The whole first block survives (both objects), everything else is freed.
        let st = heap.stats();
        assert_eq!(st.objects, 1);
        heap.verify();
    }

    #[test]
    fn large_objects_get_their_own_spans() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let (a, b) = {
            let mut op = cache.op();
            // SAFETY: no drop glue.
            unsafe {
                (
                    op.alloc_object(40_000, 8, false, false).unwrap(),
                    op.alloc_large(3 << 20, true, false).unwrap(),
                )
            }
        };
        assert!(a.is_aligned(PAGE_SIZE) && b.is_aligned(PAGE_SIZE));
        // SAFETY: allocated, no sweep in progress.
        let sa = unsafe { Heap::span_of(a) }.unwrap();
        assert!(sa.class().is_large() && !sa.class().is_noscan());
        // SAFETY: as above.
        let sb = unsafe { Heap::span_of(b.add((3 << 20) - 1)) }.unwrap();
        assert_eq!(sb.start(), b);
        // SAFETY: as above.
        unsafe { core::ptr::write_bytes(b.as_mut_ptr::<u8>(), 7, 3 << 20) };
        let st = heap.stats();
        assert_eq!(st.objects, 2);
        assert_eq!(st.scan_bytes, 40_960);
        // SAFETY: as above.
        unsafe { heap.mark(a) };
        heap.begin_sweep();
        heap.finish_sweep();
        assert_eq!(heap.stats().objects, 1);
        heap.verify();
    }

    #[test]
    fn bad_requests_are_errors_not_aborts() {
        let heap = Heap::new(HeapConfig {
            limit: Some(1 << 20),
        });
        let mut cache = heap.cache();
        let mut op = cache.op();
        // SAFETY: failed allocations return no memory.
        unsafe {
            assert!(matches!(
                op.alloc_large(usize::MAX - 3, true, false),
                Err(AllocError::TooLarge { .. })
            ));
            assert!(matches!(
                op.alloc_object(64, 1 << 14, true, false),
                Err(AllocError::Unaligned { .. })
            ));
            let e = op.alloc_large(2 << 20, true, false).unwrap_err();
            assert!(matches!(e, AllocError::MemoryLimit { .. }));
            assert!(e.to_string().contains("heap limit"));
            // Within the limit still works.
            op.alloc(class(64, true), false).unwrap();
        }
        drop(op);
        let heap = Heap::default();
        let mut cache = heap.cache();
        let mut op = cache.op();
        // More address space than the machine has: an error from the OS, not an abort.
        // SAFETY: as above.
        let e = unsafe { op.alloc_large(1 << 47, true, false) }.unwrap_err();
        assert!(matches!(e, AllocError::OutOfMemory(_)), "{e:?}");
    }

    #[test]
    fn a_flushed_or_new_cache_keeps_working() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let a = alloc_n(&mut cache, 48, 10);
        cache.flush();
        let b = alloc_n(&mut cache, 48, 10);
        assert!(a.iter().all(|x| !b.contains(x)));
        drop(cache);
        let mut other = heap.cache();
        let c = alloc_n(&mut other, 48, 10);
        assert!(c.iter().all(|x| !a.contains(x) && !b.contains(x)));
        drop(other);
        heap.verify();
        assert_eq!(heap.stats().objects, 30);
    }

    #[test]
    fn the_collector_flushes_an_idle_threads_cache() {
        let heap = Heap::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|scope| {
            let h = &heap;
            scope.spawn(move || {
                let mut cache = h.cache();
                let objs = alloc_n(&mut cache, 32, 100);
                tx.send(objs).unwrap();
                // Idle, holding the cache, until told to go on.
                done_rx.recv().unwrap();
                let more = alloc_n(&mut cache, 32, 100);
                assert_eq!(more.len(), 100);
            });
            let objs = rx.recv().unwrap();
            // SAFETY: allocated; the idle thread's span is not swept before begin_sweep.
            unsafe { heap.mark(objs[0]) };
            heap.begin_sweep();
            heap.finish_sweep();
            // The idle thread's span was taken back and swept: 99 objects freed while it slept.
            let st = heap.stats();
            assert_eq!(st.objects_freed, 99);
            assert_eq!(st.unswept_spans, 0);
            heap.verify();
            done_tx.send(()).unwrap();
        });
        assert_eq!(heap.stats().objects, 101);
    }

    #[test]
    fn is_black_is_current_before_any_allocation() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        heap.set_black(true);
        assert!(cache.op().is_black());
        heap.set_black(false);
        assert!(!cache.op().is_black());
    }

    #[test]
    fn stopping_the_world_mid_sweep_finishes_the_sweep_first() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        alloc_n(&mut cache, 16, 1000);
        cache.flush();
        heap.begin_sweep(); // left lazy: spans still unswept
        {
            let w = heap.stop_world();
            w.begin_sweep();
        }
        heap.finish_sweep();
        assert_eq!(
            heap.stats().objects,
            0,
            "the unswept spans were swept, not skipped"
        );
        heap.verify();
        heap.begin_sweep();
        heap.finish_sweep(); // used to spin for ever on a stale span
        heap.verify();
    }
}
