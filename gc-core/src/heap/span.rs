//! Spans: runs of pages holding objects of one span class (Go: `mspan`).
//!
//! A [`SpanClass`] is a size class plus *scan* or *noscan*: scan spans hold objects that may
//! contain `Gc` handles and are traced; noscan spans are never traced, the marker only sets a
//! mark bit. One more class, [`SpanClass::TINY`], holds 16-byte *tiny blocks* into which small
//! noscan objects without drop glue are packed; a tiny span keeps one root count per block in a
//! side table instead of object headers. Size class 0 is for large objects, one per span.
//!
//! # Metadata lives outside the objects
//!
//! `alloc_bits`, `mark_bits` and `drop_bits` (see [`super::bitmap`]), the sweep generation, and
//! the count of allocated objects are all in the [`Span`] struct, allocated apart from the pages.
//! Sweeping a span whose dead objects need no drop is a bitmap copy: dead objects are never
//! touched (and their pages are never faulted in by the sweeper).
//!
//! # Sweep generations (Go's `sweepgen` protocol)
//!
//! The heap's sweep generation `sg` grows by 2 at the start of every sweep. Relative to it a
//! span's `sweep_gen` says:
//!
//! | span.sweep_gen | meaning |
//! |---|---|
//! | `sg - 2` | not yet swept this cycle (its mark bits are this cycle's verdict) |
//! | `sg - 1` | being swept right now by whoever won the CAS from `sg - 2` |
//! | `sg` | swept, in a central list or free |
//! | `sg + 1` | cached by a thread since before this sweep began: must be swept when released |
//! | `sg + 3` | swept, then cached by a thread |
//!
//! Only the winner of `sg - 2 → sg - 1` touches the bitmaps, so each span is swept once per
//! cycle, whoever gets there first: the background sweeper, a thread cache looking for space,
//! or `finish_sweep`.

use crate::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use super::addr::{Address, PAGE_SIZE};
use super::bitmap::{tail_mask, Bitmap};
use super::size_class::{SizeClass, NUM_SIZE_CLASSES};

/// Size of a tiny block (Go: `maxTinySize`).
pub const TINY_BLOCK: usize = 16;

/// (size class, scan | noscan), or the tiny class. Indexes per-class arrays.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SpanClass(u8);

/// Number of span classes: every size class scan and noscan, plus [`SpanClass::TINY`].
pub const NUM_SPAN_CLASSES: usize = NUM_SIZE_CLASSES * 2 + 1;

impl SpanClass {
    /// The class of tiny blocks (16-byte noscan blocks with a side table of root counts).
    pub const TINY: SpanClass = SpanClass((NUM_SIZE_CLASSES * 2) as u8);

    /// The span class for objects of `size_class`, scan or noscan.
    #[inline(always)]
    pub const fn new(size_class: SizeClass, noscan: bool) -> Self {
        SpanClass((size_class.index() * 2 + noscan as usize) as u8)
    }

    /// The large-object class, scan or noscan.
    #[inline(always)]
    pub const fn large(noscan: bool) -> Self {
        SpanClass::new(SizeClass::LARGE, noscan)
    }

    /// Index into per-class arrays, `< NUM_SPAN_CLASSES`.
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The class with this index.
    pub fn from_index(i: usize) -> Option<SpanClass> {
        (i < NUM_SPAN_CLASSES).then_some(SpanClass(i as u8))
    }

    /// Every span class.
    pub fn all() -> impl Iterator<Item = SpanClass> {
        (0..NUM_SPAN_CLASSES).map(|i| SpanClass(i as u8))
    }

    /// The size class (the 16-byte class for tiny blocks).
    #[inline(always)]
    pub fn size_class(self) -> SizeClass {
        if self == SpanClass::TINY {
            super::size_class::size_class_for(TINY_BLOCK, TINY_BLOCK)
                .expect("the size-class table has a 16-byte class")
        } else {
            SizeClass::new(self.0 / 2).expect("span class indices come from valid size classes")
        }
    }

    /// Whether objects of this class are never traced.
    #[inline(always)]
    pub const fn is_noscan(self) -> bool {
        self.0 & 1 == 1 || self.0 as usize == NUM_SIZE_CLASSES * 2
    }

    /// Whether this is a large-object class.
    #[inline(always)]
    pub const fn is_large(self) -> bool {
        self.0 < 2
    }

    /// Whether this is the tiny class.
    #[inline(always)]
    pub const fn is_tiny(self) -> bool {
        self.0 as usize == NUM_SIZE_CLASSES * 2
    }
}

/// Sweep generation arithmetic (wrapping, compared only for equality, as in Go).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SweepGen(pub u32);

impl SweepGen {
    /// `self + n`, wrapping.
    #[inline(always)]
    pub const fn plus(self, n: u32) -> SweepGen {
        SweepGen(self.0.wrapping_add(n))
    }

    /// `self - n`, wrapping.
    #[inline(always)]
    pub const fn minus(self, n: u32) -> SweepGen {
        SweepGen(self.0.wrapping_sub(n))
    }
}

/// One span's metadata. Allocated apart from its pages; reachable from the arena's page map.
pub struct Span {
    start: Address,
    npages: usize,
    class: SpanClass,
    elem_size: usize,
    nelems: usize,
    /// Slots holding an object, exact whenever no thread cache holds the span.
    pub(crate) alloc_bits: Bitmap,
    /// Slots reached in the current cycle; set concurrently by markers.
    pub(crate) mark_bits: Bitmap,
    /// Slots whose object needs dropping when it dies.
    pub(crate) drop_bits: Bitmap,
    /// The sweep protocol word; see the module docs.
    pub(crate) sweep_gen: AtomicU32,
    /// Objects allocated, exact whenever no thread cache holds the span.
    pub(crate) alloc_count: AtomicUsize,
    /// The sweep generation whose marking has enumerated this span's roots (or that knows it
    /// has none to enumerate: a span made while allocating black). Odd (never a generation)
    /// until then. See [`Span::try_claim_roots`].
    root_gen: AtomicU32,
    /// Tiny spans only: one root count per 16-byte block.
    tiny_roots: Option<Box<[AtomicU32]>>,
}

impl core::fmt::Debug for Span {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Span")
            .field("start", &self.start)
            .field("npages", &self.npages)
            .field("class", &self.class)
            .field("elem_size", &self.elem_size)
            .field("nelems", &self.nelems)
            .field("alloc_count", &self.alloc_count.load(Ordering::Relaxed))
            .field("sweep_gen", &self.sweep_gen.load(Ordering::Relaxed))
            .field("root_gen", &self.root_gen.load(Ordering::Relaxed))
            .finish()
    }
}

impl Span {
    /// Makes the metadata of a freed small span that of a fresh one of the same class at `start`
    /// (what [`Span::new`] would return), swept as of `sg`.
    pub(crate) fn reset(&mut self, start: Address, sg: SweepGen) {
        debug_assert!(!self.class.is_large());
        self.start = start;
        self.alloc_bits.clear();
        let last = self.alloc_bits.nwords() - 1;
        self.alloc_bits.set_word(last, tail_mask(self.nelems));
        self.mark_bits.clear();
        self.drop_bits.clear();
        self.sweep_gen = AtomicU32::new(sg.0);
        self.alloc_count = AtomicUsize::new(0);
        self.root_gen = AtomicU32::new(1);
        if let Some(t) = &self.tiny_roots {
            for r in t.iter() {
                r.store(0, Ordering::Relaxed);
            }
        }
    }

    /// Metadata for a fresh span of `npages` pages at `start`, all slots free, swept as of `sg`.
    /// For large classes `elem_size` is the whole span.
    pub(crate) fn new(start: Address, npages: usize, class: SpanClass, sg: SweepGen) -> Span {
        let (elem_size, nelems) = if class.is_large() {
            (npages * PAGE_SIZE, 1)
        } else {
            let sc = class.size_class();
            (sc.size(), sc.objects_per_span())
        };
        let alloc_bits = Bitmap::new(nelems);
        // Slots past the end are permanently "allocated", so caches never hand them out.
        let last = alloc_bits.nwords() - 1;
        alloc_bits.set_word(last, tail_mask(nelems));
        Span {
            start,
            npages,
            class,
            elem_size,
            nelems,
            alloc_bits,
            mark_bits: Bitmap::new(nelems),
            drop_bits: Bitmap::new(nelems),
            sweep_gen: AtomicU32::new(sg.0),
            alloc_count: AtomicUsize::new(0),
            root_gen: AtomicU32::new(1),
            tiny_roots: class
                .is_tiny()
                .then(|| (0..nelems).map(|_| AtomicU32::new(0)).collect()),
        }
    }

    /// First byte of the span.
    #[inline(always)]
    pub fn start(&self) -> Address {
        self.start
    }

    /// Pages in the span.
    #[inline(always)]
    pub fn npages(&self) -> usize {
        self.npages
    }

    /// Bytes in the span.
    #[inline(always)]
    pub fn bytes(&self) -> usize {
        self.npages * PAGE_SIZE
    }

    /// The span class.
    #[inline(always)]
    pub fn class(&self) -> SpanClass {
        self.class
    }

    /// Bytes per slot (the whole span for a large object).
    #[inline(always)]
    pub fn elem_size(&self) -> usize {
        self.elem_size
    }

    /// Number of slots.
    #[inline(always)]
    pub fn nelems(&self) -> usize {
        self.nelems
    }

    /// Whether `addr` lies inside the span.
    #[inline(always)]
    pub fn contains(&self, addr: Address) -> bool {
        addr >= self.start && addr.offset_from(self.start) < self.bytes()
    }

    /// The slot holding byte `addr` (which must be inside the span).
    #[inline(always)]
    pub fn slot_of(&self, addr: Address) -> usize {
        debug_assert!(self.contains(addr));
        if self.class.is_large() {
            0
        } else {
            self.class
                .size_class()
                .object_index(addr.offset_from(self.start))
        }
    }

    /// First byte of slot `i`.
    #[inline(always)]
    pub fn slot_addr(&self, i: usize) -> Address {
        debug_assert!(i < self.nelems);
        self.start.add(i * self.elem_size)
    }

    /// Sets the mark bit of the slot holding `addr`; true if it was not set before.
    #[inline]
    pub fn mark(&self, addr: Address) -> bool {
        self.mark_bits.set_atomic(self.slot_of(addr))
    }

    /// Whether the slot holding `addr` is marked.
    #[inline]
    pub fn is_marked(&self, addr: Address) -> bool {
        self.mark_bits.get(self.slot_of(addr))
    }

    /// The root count of the tiny block holding `addr` (tiny spans only).
    #[inline]
    pub fn tiny_roots(&self, addr: Address) -> Option<&AtomicU32> {
        let roots = self.tiny_roots.as_ref()?;
        Some(&roots[addr.offset_from(self.start) / TINY_BLOCK])
    }

    /// Number of free slots per the alloc bits (exact when no cache holds the span).
    pub fn free_slots(&self) -> usize {
        self.nelems - self.alloc_count.load(Ordering::Acquire)
    }

    /// Whether slot `i` is free per the alloc bits (exact when no cache holds the span).
    pub fn is_free(&self, i: usize) -> bool {
        !self.alloc_bits.get(i)
    }

    /// Tries to win the right to sweep this span for generation `sg`.
    #[inline]
    pub(crate) fn try_claim_sweep(&self, sg: SweepGen) -> bool {
        self.sweep_gen
            .compare_exchange(
                sg.minus(2).0,
                sg.minus(1).0,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Wins the right to enumerate this span's roots for the marking of generation `sg`: true
    /// for exactly one caller per span and generation (the collector's root enumeration, or a
    /// thread cache taking the span while marking runs, whichever comes first).
    #[inline]
    pub(crate) fn try_claim_roots(&self, sg: SweepGen) -> bool {
        self.root_gen.swap(sg.0, Ordering::AcqRel) != sg.0
    }

    /// Records that the span has no root to enumerate for generation `sg` (it was made while
    /// allocating black: every object in it is born marked).
    #[inline]
    pub(crate) fn set_roots_claimed(&self, sg: SweepGen) {
        self.root_gen.store(sg.0, Ordering::Release);
    }

    /// Whether the object in the slot at `addr` has a root count above zero (for a tiny block,
    /// whether any object in it has).
    ///
    /// # Safety
    ///
    /// - `addr` is the start of an allocated slot of this span whose object is initialised (its
    ///   header written and published to the caller), unless the span is tiny.
    pub(crate) unsafe fn holds_root(&self, addr: Address) -> bool {
        if self.class.is_tiny() {
            self.tiny_roots(addr)
                .is_some_and(|r| r.load(Ordering::Acquire) > 0)
        } else {
            // SAFETY: the caller's contract: an initialised header at `addr`.
            unsafe { &*addr.as_mut_ptr::<crate::ptr::header::ObjectHeader>() }.is_root()
        }
    }

    /// Forgets any root-enumeration claim (an abandoned marking).
    pub(crate) fn reset_roots_claim(&self) {
        self.root_gen.store(1, Ordering::Release);
    }

    /// The sweep generation word.
    #[inline]
    pub(crate) fn sweep_gen(&self) -> SweepGen {
        SweepGen(self.sweep_gen.load(Ordering::Acquire))
    }

    /// Publishes the sweep generation word.
    #[inline]
    pub(crate) fn set_sweep_gen(&self, sg: SweepGen) {
        self.sweep_gen.store(sg.0, Ordering::Release)
    }

    /// Slots allocated and not marked: dead if the span is swept now. For checks and stats.
    pub fn dead_slots(&self) -> usize {
        (0..self.alloc_bits.nwords())
            .map(|w| {
                let dead = self.alloc_bits.word(w) & !self.mark_bits.word(w);
                let live_tail = if w + 1 == self.alloc_bits.nwords() {
                    tail_mask(self.nelems)
                } else {
                    0
                };
                (dead & !live_tail).count_ones() as usize
            })
            .sum()
    }
}

/// A pointer to a span that may move between threads. Spans are owned by the heap; a `SpanRef`
/// is valid as long as the span is not freed, which the sweep protocol decides.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct SpanRef(pub(crate) core::ptr::NonNull<Span>);

// SAFETY: `Span`'s shared state is atomics and immutable fields; `SpanRef` is a plain pointer
// whose use is governed by the sweep protocol, which is thread-agnostic.
unsafe impl Send for SpanRef {}
// SAFETY: as above.
unsafe impl Sync for SpanRef {}

impl SpanRef {
    /// The span.
    ///
    /// # Safety
    ///
    /// - The span must not have been freed (the caller holds it through a central list, a
    ///   thread cache, a sweep claim, or a live object inside it).
    #[inline(always)]
    pub(crate) unsafe fn get<'a>(self) -> &'a Span {
        // SAFETY: the caller guarantees the span is alive; spans are never moved.
        unsafe { self.0.as_ref() }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::heap::size_class::size_class_for;

    #[test]
    fn span_classes() {
        let sc = size_class_for(32, 8).unwrap();
        let scan = SpanClass::new(sc, false);
        let noscan = SpanClass::new(sc, true);
        assert!(!scan.is_noscan() && noscan.is_noscan());
        assert_eq!(scan.size_class(), sc);
        assert_eq!(noscan.size_class(), sc);
        assert!(SpanClass::TINY.is_noscan() && SpanClass::TINY.is_tiny());
        assert_eq!(SpanClass::TINY.size_class().size(), TINY_BLOCK);
        assert!(SpanClass::large(true).is_large() && !scan.is_large());
        assert_eq!(SpanClass::all().count(), NUM_SPAN_CLASSES);
        assert_eq!(SpanClass::from_index(NUM_SPAN_CLASSES), None);
        let mut seen = std::collections::HashSet::new();
        for c in SpanClass::all() {
            assert!(seen.insert(c.index()));
        }
    }

    #[test]
    fn span_slots_and_tail() {
        let sc = size_class_for(48, 8).unwrap();
        let class = SpanClass::new(sc, false);
        let start = Address::new(1 << 30);
        let s = Span::new(start, sc.npages(), class, SweepGen(4));
        assert_eq!(s.nelems(), sc.objects_per_span());
        for i in [0, 1, s.nelems() - 1] {
            let a = s.slot_addr(i);
            assert_eq!(s.slot_of(a), i);
            assert_eq!(s.slot_of(a.add(s.elem_size() - 1)), i);
            assert!(s.is_free(i));
        }
        // The tail past nelems is pre-allocated.
        assert_eq!(s.alloc_bits.count_ones(), s.alloc_bits.len() - s.nelems());
        assert_eq!(s.dead_slots(), 0);
        assert!(s.mark(s.slot_addr(3)));
        assert!(!s.mark(s.slot_addr(3)));
        assert!(s.is_marked(s.slot_addr(3)));
        assert!(s.tiny_roots(start).is_none());
        assert!(s.try_claim_sweep(SweepGen(6)));
        assert!(!s.try_claim_sweep(SweepGen(6)));
        assert_eq!(s.sweep_gen(), SweepGen(5));
    }

    #[test]
    fn tiny_span_has_root_counts() {
        let s = Span::new(Address::new(1 << 30), 1, SpanClass::TINY, SweepGen(0));
        let a = s.slot_addr(7).add(9);
        s.tiny_roots(a).unwrap().fetch_add(1, Ordering::Relaxed);
        assert_eq!(
            s.tiny_roots(s.slot_addr(7))
                .unwrap()
                .load(Ordering::Relaxed),
            1
        );
        assert_eq!(s.slot_of(a), 7);
    }
}
