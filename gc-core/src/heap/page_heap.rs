//! The page heap: runs of pages for spans (Go: `mheap`, whose page allocator we simplify).
//!
//! Free memory is a set of *free runs* (start page, length), indexed twice: by start, to find
//! and merge neighbours when a run is freed (coalescing), and by (length, start), to find the
//! best fit (the shortest run that is long enough, lowest address first, which keeps the heap
//! dense at low addresses). When no run fits, the heap grows by whole arenas (contiguous ones
//! for requests larger than an arena) and the new space joins the free set.
//!
//! Handing out a run commits the chunks it touches (see [`super::arena`]); committed bytes are
//! never decommitted in this version (scavenging idle pages with `madvise` comes later, and
//! [`super::os::decommit`] is ready for it).
//!
//! The page heap is used under one lock (`Heap::page_heap`), taken on span allocation and
//! free, which Go's design makes rare: thread caches take whole spans, not objects.

use std::collections::{BTreeMap, BTreeSet};

use super::addr::{Address, PageId, ARENA_SIZE, PAGE_SIZE};
use super::arena::{Arena, ArenaTable};
use super::span::{Span, SpanClass, SweepGen, NUM_SPAN_CLASSES};
use super::AllocError;

/// Page runs and the arenas they come from.
#[derive(Debug, Default)]
pub(crate) struct PageHeap {
    arenas: BTreeMap<usize, Box<Arena>>,
    free_by_start: BTreeMap<usize, usize>,
    free_by_size: BTreeSet<(usize, usize)>,
    /// Bytes of address space reserved.
    pub(crate) reserved: usize,
    /// Bytes committed (readable and writable).
    pub(crate) committed: usize,
    /// Pages in spans in use.
    pub(crate) in_use_pages: usize,
    /// Spans in use.
    pub(crate) spans_in_use: usize,
    /// The hard limit on bytes in spans in use (`usize::MAX` for none).
    pub(crate) limit: usize,
    /// Metadata of freed small spans, by span class, kept for the next span of the class (Go's
    /// `fixalloc` for `mspan`s): a span's metadata is three bitmaps and a box, and a heap whose
    /// spans die and come back every cycle would otherwise pay four `malloc`s and four `free`s
    /// each time. At most [`MAX_SPARE_SPANS`] in all.
    // Boxed: each record is handed out as the span's address (`Box::into_raw`), so it is the
    // allocation itself that is kept.
    #[allow(clippy::vec_box)]
    spares: Vec<Vec<Box<Span>>>,
    spare_count: usize,
}

/// The most span metadata records [`PageHeap`] keeps for reuse (a few hundred KiB at most).
const MAX_SPARE_SPANS: usize = 1024;

impl PageHeap {
    pub(crate) fn new(limit: Option<usize>) -> Self {
        PageHeap {
            limit: limit.unwrap_or(usize::MAX),
            ..Default::default()
        }
    }

    /// Allocates a span of `npages` for `class`, swept as of `sg`, and links it in the page map.
    pub(crate) fn alloc_span(
        &mut self,
        npages: usize,
        class: SpanClass,
        sg: SweepGen,
    ) -> Result<core::ptr::NonNull<Span>, AllocError> {
        debug_assert!(npages > 0);
        let start = self.alloc_run(npages)?;
        let span = match self.spares.get_mut(class.index()).and_then(Vec::pop) {
            Some(mut spare) => {
                self.spare_count -= 1;
                spare.reset(start.start(), sg);
                spare
            }
            None => Box::new(Span::new(start.start(), npages, class, sg)),
        };
        debug_assert_eq!(span.npages(), npages);
        let span = Box::into_raw(span);
        self.set_page_map(start, npages, span);
        self.in_use_pages += npages;
        self.spans_in_use += 1;
        // SAFETY: `Box::into_raw` never returns null.
        Ok(unsafe { core::ptr::NonNull::new_unchecked(span) })
    }

    /// Frees a span: unlinks its pages, frees its metadata and returns its pages to the free
    /// set, merged with free neighbours.
    ///
    /// # Safety
    ///
    /// - `span` came from [`PageHeap::alloc_span`] of this heap and is not freed yet.
    /// - No object in the span is reachable and nobody holds the span (no cache, no list, no
    ///   sweep claim other than the caller's).
    pub(crate) unsafe fn free_span(&mut self, span: core::ptr::NonNull<Span>) {
        // SAFETY: the caller hands over sole ownership of a span made by `Box::into_raw`.
        let span = unsafe { Box::from_raw(span.as_ptr()) };
        let (start, npages) = (span.start().page(), span.npages());
        self.set_page_map(start, npages, core::ptr::null_mut());
        let class = span.class();
        if !class.is_large() && self.spare_count < MAX_SPARE_SPANS {
            if self.spares.is_empty() {
                self.spares = (0..NUM_SPAN_CLASSES).map(|_| Vec::new()).collect();
            }
            self.spares[class.index()].push(span);
            self.spare_count += 1;
        } else {
            drop(span);
        }
        self.in_use_pages -= npages;
        self.spans_in_use -= 1;
        self.insert_free(start.as_usize(), npages);
    }

    fn set_page_map(&self, start: PageId, npages: usize, span: *mut Span) {
        // A run may cross arenas (large objects over contiguous arenas): set each piece.
        let mut page = start;
        let end = start.plus(npages);
        while page < end {
            let arena = self.arena_for(page.start());
            let arena_end = arena.base().add(ARENA_SIZE).page();
            let n = end.as_usize().min(arena_end.as_usize()) - page.as_usize();
            arena.set_spans(page.start(), n, span);
            page = page.plus(n);
        }
    }

    fn arena_for(&self, addr: Address) -> &Arena {
        self.arenas
            .get(&addr.arena().as_usize())
            .expect("page run lies in one of our arenas")
    }

    /// Finds (or grows to make) a free run of `npages`, removes it from the free set and
    /// commits it.
    fn alloc_run(&mut self, npages: usize) -> Result<PageId, AllocError> {
        let bytes = npages
            .checked_mul(PAGE_SIZE)
            .ok_or(AllocError::TooLarge { bytes: usize::MAX })?;
        // One object larger than the machine's memory could never be used: refuse it before
        // reserving address space and arena metadata for it.
        let physical = super::os::physical_memory_bytes();
        if physical != 0 && bytes > physical {
            return Err(AllocError::OutOfMemory(super::os::OsError {
                op: "reserve",
                len: bytes,
                errno: libc::ENOMEM,
            }));
        }
        if (self.in_use_pages * PAGE_SIZE).saturating_add(bytes) > self.limit {
            return Err(AllocError::MemoryLimit {
                limit: self.limit,
                requested: bytes,
            });
        }
        let (start, len) = match self.best_fit(npages) {
            Some(run) => run,
            None => {
                self.grow(npages)?;
                self.best_fit(npages)
                    .expect("growth added a run large enough")
            }
        };
        self.remove_free(start, len);
        if len > npages {
            self.insert_free(start + npages, len - npages);
        }
        let first = PageId::new(start);
        if let Err(e) = self.commit(first.start(), bytes) {
            self.insert_free(start, npages);
            return Err(AllocError::OutOfMemory(e));
        }
        Ok(first)
    }

    fn commit(&mut self, addr: Address, bytes: usize) -> Result<(), super::os::OsError> {
        let mut a = addr;
        let end = addr.add(bytes);
        while a < end {
            let arena = self
                .arenas
                .get_mut(&a.arena().as_usize())
                .expect("run in our arena");
            let arena_end = arena.base().add(ARENA_SIZE);
            let n = end.min(arena_end).offset_from(a);
            self.committed += arena.commit(a, n)?;
            a = a.add(n);
        }
        Ok(())
    }

    fn best_fit(&self, npages: usize) -> Option<(usize, usize)> {
        self.free_by_size
            .range((npages, 0)..)
            .next()
            .map(|&(len, start)| (start, len))
    }

    /// Reserves enough contiguous arenas for `npages` and adds them to the free set.
    fn grow(&mut self, npages: usize) -> Result<(), AllocError> {
        let bytes = npages * PAGE_SIZE;
        let count = bytes.div_ceil(ARENA_SIZE).max(1);
        let arenas = ArenaTable::get()
            .new_arenas(count)
            .map_err(AllocError::OutOfMemory)?;
        let start = arenas[0].base().page().as_usize();
        for a in arenas {
            self.arenas.insert(a.base().arena().as_usize(), a);
        }
        self.reserved += count * ARENA_SIZE;
        self.insert_free(start, count * ARENA_SIZE / PAGE_SIZE);
        Ok(())
    }

    /// Reserves address space for at least `bytes` more without committing it.
    pub(crate) fn reserve(&mut self, bytes: usize) -> Result<(), AllocError> {
        let pages = bytes.div_ceil(PAGE_SIZE);
        self.grow(pages)
    }

    fn insert_free(&mut self, mut start: usize, mut len: usize) {
        // Merge with the run ending where this one starts.
        if let Some((&s, &l)) = self.free_by_start.range(..start).next_back() {
            if s + l == start && self.mergeable(s, start) {
                self.remove_free(s, l);
                start = s;
                len += l;
            }
        }
        // Merge with the run starting where this one ends.
        if let Some(&l) = self.free_by_start.get(&(start + len)) {
            if self.mergeable(start, start + len) {
                self.remove_free(start + len, l);
                len += l;
            }
        }
        self.free_by_start.insert(start, len);
        self.free_by_size.insert((len, start));
    }

    /// Two adjacent runs merge only if both lie in our arenas (adjacent reservations are fine).
    fn mergeable(&self, a: usize, b: usize) -> bool {
        let arena = |p: usize| PageId::new(p).start().arena().as_usize();
        self.arenas.contains_key(&arena(a)) && self.arenas.contains_key(&arena(b))
    }

    fn remove_free(&mut self, start: usize, len: usize) {
        let removed = self.free_by_start.remove(&start);
        debug_assert_eq!(removed, Some(len));
        let removed = self.free_by_size.remove(&(len, start));
        debug_assert!(removed);
    }

    /// Free pages in the free set.
    pub(crate) fn free_pages(&self) -> usize {
        self.free_by_start.values().sum()
    }

    /// Releases every arena. Callers guarantee no object in them is used any more.
    pub(crate) fn release_all(&mut self) {
        let table = ArenaTable::get();
        for (_, a) in core::mem::take(&mut self.arenas) {
            table.remove_arena(a);
        }
        self.free_by_start.clear();
        self.free_by_size.clear();
    }

    /// Checks the free set's internal consistency (tests and the heap verifier).
    pub(crate) fn verify(&self) {
        assert_eq!(self.free_by_start.len(), self.free_by_size.len());
        let mut prev_end = 0;
        for (&s, &l) in &self.free_by_start {
            assert!(l > 0 && s >= prev_end, "free runs overlap at page {s}");
            assert!(self.free_by_size.contains(&(l, s)));
            prev_end = s + l;
        }
        let total = self.reserved / PAGE_SIZE;
        assert_eq!(
            self.free_pages() + self.in_use_pages,
            total,
            "pages lost or doubled"
        );
        let committed: usize = self.arenas.values().map(|a| a.committed_bytes()).sum();
        assert_eq!(committed, self.committed, "commit accounting broken");
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::heap::addr::PAGES_PER_ARENA;

    fn class() -> SpanClass {
        SpanClass::large(true)
    }

    #[test]
    fn allocates_frees_and_coalesces() {
        let mut h = PageHeap::new(None);
        let a = h.alloc_span(3, class(), SweepGen(0)).unwrap();
        let b = h.alloc_span(5, class(), SweepGen(0)).unwrap();
        let c = h.alloc_span(2, class(), SweepGen(0)).unwrap();
        // SAFETY: spans are alive until freed below.
        let (sa, sb, sc) = unsafe { (a.as_ref().start(), b.as_ref().start(), c.as_ref().start()) };
        assert_eq!(sb, sa.add(3 * PAGE_SIZE));
        assert_eq!(sc, sb.add(5 * PAGE_SIZE));
        let t = ArenaTable::get();
        assert_eq!(t.span_of(sb.add(4 * PAGE_SIZE + 100)).unwrap().start(), sb);
        h.verify();
        // SAFETY: each span is freed once and holds no objects.
        unsafe { h.free_span(b) };
        assert!(t.span_of(sb).is_none());
        h.verify();
        // A 4-page span reuses b's hole (best fit, lowest address).
        let d = h.alloc_span(4, class(), SweepGen(0)).unwrap();
        // SAFETY: alive.
        assert_eq!(unsafe { d.as_ref().start() }, sb);
        // SAFETY: as above.
        unsafe {
            h.free_span(d);
            h.free_span(a);
            h.free_span(c);
        }
        h.verify();
        // Everything coalesced back into one run covering the arena.
        assert_eq!(h.free_by_start.len(), 1);
        assert_eq!(h.free_pages(), PAGES_PER_ARENA);
        h.release_all();
    }

    #[test]
    fn large_runs_span_contiguous_arenas() {
        let mut h = PageHeap::new(None);
        let big = PAGES_PER_ARENA + 10;
        let s = h.alloc_span(big, class(), SweepGen(0)).unwrap();
        // SAFETY: alive until freed.
        let start = unsafe { s.as_ref().start() };
        let t = ArenaTable::get();
        let far = start.add((big - 1) * PAGE_SIZE);
        assert_eq!(t.span_of(far).unwrap().start(), start);
        assert_eq!(h.reserved, 2 * ARENA_SIZE);
        h.verify();
        // SAFETY: freed once.
        unsafe { h.free_span(s) };
        h.verify();
        h.release_all();
    }

    #[test]
    fn limit_and_absurd_sizes_are_errors() {
        let mut h = PageHeap::new(Some(4 * PAGE_SIZE));
        assert!(matches!(
            h.alloc_span(8, class(), SweepGen(0)),
            Err(AllocError::MemoryLimit { .. })
        ));
        let mut h = PageHeap::new(None);
        assert!(matches!(
            h.alloc_span(usize::MAX / 2, class(), SweepGen(0)),
            Err(AllocError::TooLarge { .. })
        ));
        let e = h
            .alloc_span((1 << 46) / PAGE_SIZE, class(), SweepGen(0))
            .unwrap_err();
        assert!(matches!(e, AllocError::OutOfMemory(_)), "{e:?}");
        h.verify();
    }
}
