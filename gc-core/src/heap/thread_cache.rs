//! Per-thread allocation caches (Go: `mcache`).
//!
//! A [`ThreadCache`] holds at most one span per span class and allocates from it without locks
//! or atomic read-modify-writes: for each class it keeps a copy of one word of the span's
//! free-slot bits, and an allocation takes its lowest set bit (`trailing_zeros`, then `x &= x -
//! 1`). When the word runs out the cache loads the span's next word; when the span runs out it
//! returns it to the central lists and takes another. The alloc bits in the span are brought up
//! to date when the cache lets go of the span, which is why nothing else may read them while
//! the span is cached.
//!
//! # Operations and the collector
//!
//! Allocation happens inside a [`CacheOp`] ([`ThreadCache::op`]): the owner writes an odd value
//! to its `op_word` on entry and the next even value on exit. The collector needs two things
//! from caches, and gets both from that word plus a `claim` word:
//!
//! - **Wait for operations in progress** (after it publishes a new allocation state, such as
//!   "allocate black" or a new sweep generation): it reads `op_word`; if odd, it waits until
//!   the value changes. Every operation that starts later reads the new state.
//! - **Have a cache's spans given back** (at mark setup, so that root enumeration sees every
//!   span, and at sweep start, so a thread that sleeps forever does not pin unswept spans): it
//!   stores `FLUSH_ASKED` in `claim`, runs a heavy fence, and waits until `op_word` is even;
//!   the owner, on entry, stores its odd value, runs a light fence and reads `claim`. Dekker's
//!   argument with `sync::asymmetric` fences: either the owner sees the request, or the
//!   collector sees the owner busy and waits for it. Then both may try to move the word on with
//!   a compare-and-swap from `FLUSH_ASKED`: the owner to `OWNER_FLUSHING` (it gives its spans
//!   back inside its operation, stores `FREE` and goes on: a busy owner never waits), the
//!   collector to `HELD` (it gives them back itself, while the owner stays out, and stores
//!   `FREE`). Exactly one wins. A stopped world stores `HELD` directly; an owner that finds
//!   `HELD` backs out (storing the next even value) and waits. The owner's fast path pays two
//!   plain stores, two loads and a compiler fence (where `membarrier` is available).
//!
//! # Thread exit
//!
//! Dropping a cache gives all its spans back. A cache can be flushed at any time
//! ([`ThreadCache::flush`]) and keeps working afterwards: it simply refills.

use core::fmt;

use crate::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use crate::sync::{asymmetric, yield_now, Arc, Backoff, UnsafeCell};

use super::addr::{Address, PAGE_SIZE};
use super::size_class::size_class_for;
use super::span::{SpanClass, SpanRef, SweepGen, NUM_SPAN_CLASSES, TINY_BLOCK};
use super::{AllocError, AllocState, HeapShared};

/// Bytes ahead of the slot being handed out that the allocator asks the CPU to fetch.
///
/// Allocation walks a span upwards, so the next objects are a few cache lines further on.
/// Their lines are usually cold (the span was swept, not touched), and the first write to an
/// object (its header) and the first atomic on it (a root count) would otherwise wait for
/// memory. A prefetch never faults, so running past the end of the span is harmless.
#[cfg(all(target_arch = "x86_64", not(miri)))]
const PREFETCH_DISTANCE: usize = 256;

#[inline(always)]
fn prefetch_ahead(addr: Address) {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    // SAFETY: `_mm_prefetch` is a hint: it reads nothing architecturally and never faults,
    // whatever the address; SSE is part of the x86-64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
            addr.add(PREFETCH_DISTANCE).as_mut_ptr::<i8>(),
        )
    };
    #[cfg(not(all(target_arch = "x86_64", not(miri))))]
    let _ = addr;
}

/// The cache's view of one span: a word of free-slot bits and where it maps to.
#[derive(Clone, Copy)]
struct CachedSpan {
    /// Free slots of word `word` not handed out yet (1 = free).
    bits: u64,
    /// Address of slot `word * 64`.
    word_base: usize,
    elem_size: usize,
    word: u32,
    nwords: u32,
    span: Option<SpanRef>,
}

impl CachedSpan {
    const EMPTY: CachedSpan = CachedSpan {
        bits: 0,
        word_base: 0,
        elem_size: 0,
        word: 0,
        nwords: 0,
        span: None,
    };

    /// Marks every slot of the current word not handed out yet, with one atomic: allocate-black
    /// in batches (see [`CacheLocal::seen`]).
    fn premark(&self) {
        if let (Some(s), true) = (self.span, self.bits != 0) {
            // SAFETY: the span is cached by us, hence alive.
            unsafe { s.get() }
                .mark_bits
                .or_word_atomic(self.word as usize, self.bits);
        }
    }

    /// Takes back the marks [`CachedSpan::premark`] put on slots that were never handed out, so
    /// that no free slot is marked when the span leaves the cache (the sweep keeps what is
    /// marked). Those slots hold no object, so no marker or barrier sets their bits meanwhile.
    fn unpremark(&self) {
        if let (Some(s), true) = (self.span, self.bits != 0) {
            // SAFETY: the span is cached by us, hence alive.
            unsafe { s.get() }
                .mark_bits
                .clear_word_atomic(self.word as usize, self.bits);
        }
    }
}

/// The tiny block being filled.
#[derive(Clone, Copy)]
struct Tiny {
    /// Address of the block, 0 for none.
    block: usize,
    /// Bytes of it used.
    offset: usize,
}

impl Tiny {
    const NONE: Tiny = Tiny {
        block: 0,
        offset: 0,
    };
}

/// The part of a cache only its current user (owner, or collector holding a claim) touches.
struct CacheLocal {
    /// The allocation state the cache works in. While it says black, the free slots of each
    /// class's current word are marked already (`premark`, when the word is taken or the
    /// state turns black), and so is the tiny block: handing out a slot is then as cheap as in
    /// white, instead of one atomic mark-bit set per object. Marks on slots not handed out are
    /// taken back when the word is given up or the state turns white (`unpremark`).
    seen: AllocState,
    classes: [CachedSpan; NUM_SPAN_CLASSES],
    tiny: Tiny,
}

/// The part of a cache the collector can reach. Registered with the heap.
pub(crate) struct CacheShared {
    /// Odd while the owner is inside an operation; written by the owner only.
    op_word: AtomicU64,
    /// [`FREE`], [`FLUSH_ASKED`], [`HELD`] or [`OWNER_FLUSHING`]: see the module docs.
    claim: AtomicU8,
    local: UnsafeCell<CacheLocal>,
}

/// Nobody but the owner uses the cache.
const FREE: u8 = 0;
/// The collector wants the cache's spans back; whichever of it and the owner moves the word on
/// first (compare-and-swap) gives them back.
const FLUSH_ASKED: u8 = 1;
/// The collector holds the cache: the owner stays out of operations until it lets go.
const HELD: u8 = 2;
/// The owner, inside an operation, is giving back its spans for the collector; it stores
/// [`FREE`] when done.
const OWNER_FLUSHING: u8 = 3;

// SAFETY: `local` is only accessed by whoever holds the cache per the op/claim protocol in the
// module docs (the owner inside an operation, or the collector holding a claim), never both;
// everything else is atomics.
unsafe impl Sync for CacheShared {}
// SAFETY: the span pointers inside are thread-agnostic (see `SpanRef`).
unsafe impl Send for CacheShared {}

impl CacheShared {
    /// The owner's entry: see the module docs.
    #[inline(always)]
    fn enter(&self, heap: &HeapShared) {
        let v = self.op_word.load(Ordering::Relaxed);
        debug_assert!(v & 1 == 0, "nested cache operation");
        self.op_word.store(v + 1, Ordering::Relaxed);
        asymmetric::light();
        if self.claim.load(Ordering::Acquire) != FREE {
            self.enter_contended(heap, v);
        }
    }

    /// The collector wants the cache: give its spans back ourselves if it only asked for them,
    /// else wait until it lets go. Either is charged to the thread's `thread_gc_time`.
    #[cold]
    fn enter_contended(&self, heap: &HeapShared, mut v: u64) {
        let start = std::time::Instant::now();
        loop {
            // Inside an operation (odd `v + 1` stored, light fence, then this load).
            match self.claim.load(Ordering::Acquire) {
                FREE => break,
                FLUSH_ASKED => {
                    if self.take_flush() {
                        // SAFETY: inside our own operation, with the word moved to
                        // `OWNER_FLUSHING`, the collector stays away from `local` (module docs).
                        self.local.with_mut(|l| unsafe { (*l).release_all(heap) });
                        self.claim.store(FREE, Ordering::Release);
                        break;
                    }
                    // The collector took it first (`HELD`): look again.
                    continue;
                }
                _ => {}
            }
            // Held by the collector: back out, wait for it to let go, and try again.
            v += 2;
            self.op_word.store(v, Ordering::Release);
            while self.claim.load(Ordering::Acquire) == HELD {
                yield_now();
            }
            self.op_word.store(v + 1, Ordering::Relaxed);
            asymmetric::light();
        }
        crate::stats::charge_thread(start.elapsed());
    }

    /// The owner's side of a flush request: moves `FLUSH_ASKED` to `OWNER_FLUSHING`; false if
    /// the collector moved it first.
    fn take_flush(&self) -> bool {
        // A seeded mutant for the loom models: the owner takes the flush with a plain store, so
        // it can give the spans back while the collector, having won the word, does the same.
        if cfg!(gc_core_mutant = "flush") {
            self.claim.store(OWNER_FLUSHING, Ordering::Relaxed);
            return true;
        }
        self.claim
            .compare_exchange(
                FLUSH_ASKED,
                OWNER_FLUSHING,
                Ordering::Acquire,
                Ordering::Acquire,
            )
            .is_ok()
    }

    #[inline(always)]
    fn exit(&self) {
        let v = self.op_word.load(Ordering::Relaxed);
        self.op_word.store(v + 1, Ordering::Release);
    }

    /// Collector side: waits until an operation that was in progress (if any) has ended.
    pub(crate) fn wait_not_busy(&self) {
        let v = self.op_word.load(Ordering::Acquire);
        if v & 1 == 1 {
            let mut backoff = Backoff::default();
            while self.op_word.load(Ordering::Acquire) == v {
                backoff.snooze();
            }
        }
    }

    /// Collector side: has the cache's spans given back, by the owner if it starts an
    /// operation meanwhile (it does so at once, and never waits), else by us, holding the cache
    /// for that long.
    pub(crate) fn flush(&self, heap: &HeapShared) {
        // Release: an owner that takes the request (an acquire) must see the cache as our last
        // flush or stopped world left it, even if it never read the `FREE` stored then.
        self.claim.store(FLUSH_ASKED, Ordering::Release);
        asymmetric::heavy();
        let mut backoff = Backoff::default();
        loop {
            match self.claim.load(Ordering::Acquire) {
                // The owner gave them back.
                FREE => return,
                // The owner may be in an operation from before our request: once it is out, the
                // next one sees the request (the heavy fence), and the word decides who flushes.
                FLUSH_ASKED if self.op_word.load(Ordering::Acquire) & 1 == 0 => {
                    if self
                        .claim
                        .compare_exchange(FLUSH_ASKED, HELD, Ordering::Acquire, Ordering::Acquire)
                        .is_ok()
                    {
                        // SAFETY: `HELD` is ours and the owner was outside any operation after
                        // our request: it stays out until we let go.
                        unsafe { self.flush_claimed(heap) };
                        self.unclaim();
                        return;
                    }
                }
                // The owner is flushing, or still in its operation.
                _ => backoff.snooze(),
            }
        }
    }

    /// Collector side: holds the cache (for a stopped world). The caller runs a heavy fence and
    /// [`CacheShared::wait_claimed`] before touching the cache (several caches can share one
    /// fence).
    pub(crate) fn claim(&self) {
        self.claim.store(HELD, Ordering::Relaxed);
    }

    /// Collector side: after [`CacheShared::claim`] and a heavy fence, waits until the owner is
    /// outside any operation; from then on the owner stays out until [`CacheShared::unclaim`].
    pub(crate) fn wait_claimed(&self) {
        let mut backoff = Backoff::default();
        while self.op_word.load(Ordering::Acquire) & 1 == 1 {
            backoff.snooze();
        }
    }

    /// Collector side: lets the owner back in.
    pub(crate) fn unclaim(&self) {
        self.claim.store(FREE, Ordering::Release);
    }

    /// Gives back every span of a claimed cache.
    ///
    /// # Safety
    ///
    /// - The caller holds the claim and has waited for the owner ([`CacheShared::wait_claimed`]).
    pub(crate) unsafe fn flush_claimed(&self, heap: &HeapShared) {
        // SAFETY: with the claim held and the owner outside any operation, we are the only user
        // of `local` (module docs).
        self.local.with_mut(|l| unsafe { (*l).release_all(heap) });
    }
}

impl CacheLocal {
    /// The state turns black: marks the free slots of every current word, and forgets the tiny
    /// block (taken in white, its slot is unmarked; the next tiny object takes a new block from
    /// a marked slot, at the cost of the old block's unused bytes until it dies).
    fn premark_all(&mut self) {
        for c in &self.classes {
            c.premark();
        }
        self.tiny = Tiny::NONE;
    }

    /// The state turns white without a new sweep generation (an abandoned mark): takes back
    /// the marks on slots not handed out. (The tiny block's slot is an object: its mark is
    /// the abandoning collector's to clear, with every other mark.)
    fn unpremark_all(&mut self) {
        for c in &self.classes {
            c.unpremark();
        }
    }

    /// Gives every span back and forgets the tiny block; adopts the heap's current state.
    fn release_all(&mut self, heap: &HeapShared) {
        let state = heap.load_state();
        for i in 0..NUM_SPAN_CLASSES {
            self.release(heap, i, state.sweep_gen());
        }
        self.tiny = Tiny::NONE;
        self.seen = state;
    }

    /// Writes the cache's allocations back into the span of class `i` and returns it.
    fn release(&mut self, heap: &HeapShared, i: usize, sg: SweepGen) {
        let c = core::mem::replace(&mut self.classes[i], CachedSpan::EMPTY);
        if self.seen.black() {
            c.unpremark();
        }
        let Some(s) = c.span else { return };
        // SAFETY: the span is cached by us, hence alive and ours.
        let span = unsafe { s.get() };
        // Words before `word` were used up; `word` keeps the bits not handed out.
        for w in 0..c.word as usize {
            span.alloc_bits.set_word(w, !0);
        }
        span.alloc_bits.set_word(c.word as usize, !c.bits);
        let mut free = c.bits.count_ones() as usize;
        for w in c.word as usize + 1..c.nwords as usize {
            free += (!span.alloc_bits.word(w)).count_ones() as usize;
        }
        span.alloc_count
            .store(span.nelems() - free, Ordering::Release);
        heap.count_allocated(span.class(), -(free as i64));
        heap.uncache_span(s, sg);
    }
}

/// A thread's allocation cache. Not `Sync`: one thread allocates through it at a time.
pub struct ThreadCache {
    heap: Arc<HeapShared>,
    shared: Arc<CacheShared>,
}

impl fmt::Debug for ThreadCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadCache")
            .field("op_word", &self.shared.op_word.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl ThreadCache {
    pub(crate) fn new(heap: Arc<HeapShared>) -> Self {
        let shared = Arc::new(CacheShared {
            op_word: AtomicU64::new(0),
            // `register_cache` sets the claim if the world is stopped right now.
            claim: AtomicU8::new(FREE),
            local: UnsafeCell::new(CacheLocal {
                seen: heap.load_state(),
                classes: [CachedSpan::EMPTY; NUM_SPAN_CLASSES],
                tiny: Tiny::NONE,
            }),
        });
        heap.register_cache(shared.clone());
        ThreadCache { heap, shared }
    }

    /// Starts an operation: until the returned guard is dropped, the collector does not touch
    /// this cache and waits for the operation before it changes the allocation state.
    #[inline(always)]
    pub fn op(&mut self) -> CacheOp<'_> {
        self.shared.enter(&self.heap);
        CacheOp { cache: self }
    }

    /// Gives every cached span back to the heap. The cache keeps working: it refills on the
    /// next allocation.
    pub fn flush(&mut self) {
        let op = self.op();
        let (shared, heap) = (&op.cache.shared, &op.cache.heap);
        // SAFETY: inside our own operation we are the only user of `local`.
        shared.local.with_mut(|l| unsafe { (*l).release_all(heap) });
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        self.flush();
        self.heap.unregister_cache(&self.shared);
    }
}

/// An allocation operation on a [`ThreadCache`]; see [`ThreadCache::op`].
///
/// Whatever the caller needs to do atomically with respect to the collector (writing the
/// object's header, counting its first root) belongs inside the operation.
pub struct CacheOp<'a> {
    cache: &'a mut ThreadCache,
}

impl fmt::Debug for CacheOp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheOp").finish_non_exhaustive()
    }
}

impl Drop for CacheOp<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        self.cache.shared.exit();
    }
}

impl CacheOp<'_> {
    /// The cache's local state.
    ///
    /// # Safety
    ///
    /// - Only one reference from this function may be live at a time (callers take it once per
    ///   method and do not keep it across calls).
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    unsafe fn local(&self) -> &mut CacheLocal {
        // SAFETY: we are inside the owner's operation, so no collector claim is held (module
        // docs) and the owner is the only user; uniqueness is the caller's contract.
        self.cache.shared.local.with_mut(|l| unsafe { &mut *l })
    }

    /// Whether objects allocated now are born marked (re-reads the heap's state first).
    #[inline(always)]
    pub fn is_black(&mut self) -> bool {
        self.sync_state().black()
    }

    /// Re-reads the heap's allocation state; on a new sweep generation, gives back every span
    /// (they are unswept now and must be swept before reuse).
    #[inline(always)]
    fn sync_state(&mut self) -> AllocState {
        let state = self.cache.heap.load_state();
        // SAFETY: one reference, dropped before any other call.
        let seen = unsafe { self.local() }.seen;
        if state != seen {
            self.state_changed(state);
        }
        state
    }

    #[cold]
    fn state_changed(&mut self, state: AllocState) {
        // SAFETY: one reference for the duration of this call.
        let local = unsafe { self.local() };
        if state.sweep_gen() != local.seen.sweep_gen() {
            local.release_all(&self.cache.heap);
        }
        match (local.seen.black(), state.black()) {
            (false, true) => local.premark_all(),
            (true, false) => local.unpremark_all(),
            _ => {}
        }
        local.seen = state;
    }

    /// Allocates a slot of span class `class` (not tiny, not large) and returns its address.
    /// The slot's content is unspecified.
    ///
    /// # Safety
    ///
    /// - If `needs_drop`, the caller must write a valid [`crate::ptr::header::ObjectHeader`] at
    ///   the slot's start, whose descriptor's `drop` fits the slot's content, before this
    ///   operation ends: the sweeper reads it once the object is dead.
    #[inline(always)]
    pub unsafe fn alloc(
        &mut self,
        class: SpanClass,
        needs_drop: bool,
    ) -> Result<Address, AllocError> {
        debug_assert!(!class.is_large() && !class.is_tiny());
        self.sync_state();
        self.alloc_in(class, needs_drop)
    }

    /// The fast path shared by [`CacheOp::alloc`] and the tiny allocator: returns the slot.
    #[inline(always)]
    fn alloc_in(&mut self, class: SpanClass, needs_drop: bool) -> Result<Address, AllocError> {
        // SAFETY: one reference, not kept across the calls below.
        let local = unsafe { self.local() };
        let c = &mut local.classes[class.index()];
        if c.bits == 0 {
            self.refill(class)?;
            return self.alloc_in(class, needs_drop);
        }
        let bit = c.bits.trailing_zeros() as usize;
        c.bits &= c.bits - 1;
        let addr = Address::new(c.word_base + bit * c.elem_size);
        prefetch_ahead(addr);
        if needs_drop {
            let s = c.span.expect("a cache word with free bits has a span");
            // SAFETY: the span is cached by us, hence alive.
            unsafe { s.get() }
                .drop_bits
                .set_unsync(c.word as usize * 64 + bit);
        }
        // Black allocation needs nothing here: the slot was marked with its word (`premark`).
        Ok(addr)
    }

    /// Makes `classes[class]` have a free bit: the span's next word, or another span.
    #[cold]
    #[inline(never)]
    fn refill(&mut self, class: SpanClass) -> Result<(), AllocError> {
        let heap = &*self.cache.heap;
        // SAFETY: one reference for the duration of this call; `heap` is not `local`.
        let local = unsafe { self.local() };
        let sg = local.seen.sweep_gen();
        let black = local.seen.black();
        let i = class.index();
        loop {
            let c = &mut local.classes[i];
            if let Some(s) = c.span {
                // SAFETY: cached by us, alive.
                let span = unsafe { s.get() };
                while c.word + 1 < c.nwords {
                    c.word += 1;
                    c.word_base += 64 * c.elem_size;
                    c.bits = !span.alloc_bits.word(c.word as usize);
                    if c.bits != 0 {
                        if black {
                            c.premark();
                        }
                        return Ok(());
                    }
                }
                local.release(heap, i, sg);
            }
            let s = heap.cache_span(class, local.seen)?;
            // SAFETY: handed to us by `cache_span`, alive and ours.
            let span = unsafe { s.get() };
            heap.count_allocated(class, span.free_slots() as i64);
            local.classes[i] = CachedSpan {
                bits: !span.alloc_bits.word(0),
                word_base: span.start().as_usize(),
                elem_size: span.elem_size(),
                word: 0,
                nwords: span.alloc_bits.nwords() as u32,
                span: Some(s),
            };
            if local.classes[i].bits != 0 {
                if black {
                    local.classes[i].premark();
                }
                return Ok(());
            }
            // The first word is full: the loop advances through the rest of the span.
        }
    }

    /// Allocates `size` bytes (< 16, alignment ≤ 8) inside a tiny block: for noscan objects
    /// with no drop glue and no header. Zero-sized requests take one byte, so distinct
    /// allocations have distinct addresses. The tiny block's root count and mark bit stand for
    /// every object in it.
    ///
    /// # Safety
    ///
    /// - The object must need no drop and hold no traced handle (nothing ever reads it but its
    ///   owner).
    #[inline]
    pub unsafe fn alloc_tiny(&mut self, size: usize, align: usize) -> Result<Address, AllocError> {
        debug_assert!(size < TINY_BLOCK && align.is_power_of_two() && align <= 8);
        let size = size.max(1);
        self.sync_state();
        {
            // SAFETY: one reference, dropped before `alloc_in`.
            let t = &mut unsafe { self.local() }.tiny;
            let off = (t.offset + align - 1) & !(align - 1);
            if t.block != 0 && off + size <= TINY_BLOCK {
                // In black, the block's slot was marked with its word (`premark`): a block
                // taken in white is forgotten when the state turns black (`premark_all`).
                t.offset = off + size;
                return Ok(Address::new(t.block + off));
            }
        }
        let addr = self.alloc_in(SpanClass::TINY, false)?;
        // SAFETY: one reference.
        unsafe { self.local() }.tiny = Tiny {
            block: addr.as_usize(),
            offset: size,
        };
        Ok(addr)
    }

    /// Allocates a large object (a span of its own) of `bytes` bytes.
    ///
    /// # Safety
    ///
    /// - As for [`CacheOp::alloc`].
    pub unsafe fn alloc_large(
        &mut self,
        bytes: usize,
        noscan: bool,
        needs_drop: bool,
    ) -> Result<Address, AllocError> {
        let state = self.sync_state();
        self.cache
            .heap
            .alloc_large(bytes, noscan, needs_drop, state)
    }

    /// Allocates an object of `size` bytes at alignment `align` in the right span class: a
    /// size-classed slot, or a large span. (Tiny objects go through [`CacheOp::alloc_tiny`],
    /// since they have no header and the caller must know.)
    ///
    /// # Safety
    ///
    /// - As for [`CacheOp::alloc`].
    #[inline]
    pub unsafe fn alloc_object(
        &mut self,
        size: usize,
        align: usize,
        noscan: bool,
        needs_drop: bool,
    ) -> Result<Address, AllocError> {
        if align > PAGE_SIZE {
            return Err(AllocError::Unaligned { align });
        }
        match size_class_for(size, align) {
            // SAFETY: forwarded contract.
            Some(sc) => unsafe { self.alloc(SpanClass::new(sc, noscan), needs_drop) },
            // SAFETY: forwarded contract.
            None => unsafe { self.alloc_large(size, noscan, needs_drop) },
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::heap::{size_class_for, Heap, SpanClass};

    #[test]
    fn the_fast_path_walks_a_span_in_address_order() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let class = SpanClass::new(size_class_for(48, 8).unwrap(), true);
        let mut op = cache.op();
        // SAFETY: no drop glue: nothing reads the slots.
        let addrs: Vec<_> = (0..200)
            .map(|_| unsafe { op.alloc(class, false) }.unwrap())
            .collect();
        drop(op);
        // Within the first span, slots come out one after another (lowest free bit first).
        assert_eq!(addrs[1].offset_from(addrs[0]), 48);
        assert_eq!(addrs[100].offset_from(addrs[0]), 100 * 48);
    }

    #[test]
    fn releasing_a_span_writes_the_allocations_back() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let class = SpanClass::new(size_class_for(64, 8).unwrap(), true);
        let mut op = cache.op();
        // SAFETY: as above.
        let a: Vec<_> = (0..70)
            .map(|_| unsafe { op.alloc(class, false) }.unwrap())
            .collect();
        drop(op);
        cache.flush();
        // SAFETY: the objects are allocated and no sweep runs.
        let span = unsafe { Heap::span_of(a[0]) }.unwrap();
        for x in &a {
            assert!(
                !span.is_free(span.slot_of(*x)),
                "allocation lost at release"
            );
        }
        assert_eq!(span.free_slots(), span.nelems() - 70);
        // A new cache continues after them.
        let mut other = heap.cache();
        let mut op = other.op();
        // SAFETY: as above.
        let b = unsafe { op.alloc(class, false) }.unwrap();
        assert!(!a.contains(&b));
    }

    #[test]
    fn an_operation_waits_while_the_collector_holds_the_cache() {
        let heap = Heap::default();
        let mut cache = heap.cache();
        let stop = heap.stop_world();
        std::thread::scope(|s| {
            let h = &heap;
            let t = s.spawn(move || {
                // A new cache registered while the world is stopped is born claimed.
                let mut c = h.cache();
                let class = SpanClass::new(size_class_for(16, 8).unwrap(), true);
                let mut op = c.op();
                // SAFETY: as above.
                unsafe { op.alloc(class, false) }.unwrap()
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(
                !t.is_finished(),
                "allocation ran while the world was stopped"
            );
            drop(stop);
            t.join().unwrap();
        });
        drop(cache.op());
    }
}
