//! Arenas and the address → span map (Go: `heapArena`, `mheap_.arenas`, `spanOf`).
//!
//! An arena is [`ARENA_SIZE`] bytes of address space aligned to its size, reserved from the OS
//! in one piece ([`super::os::reserve`]) and committed in [`COMMIT_CHUNK`] steps as the page heap
//! hands its pages out. Each arena has a page map: one span pointer per page, set for every page
//! of a span in use, so any interior address finds its span in O(1).
//!
//! The [`ArenaTable`] maps an arena number (address >> 26) to its [`Arena`]. It is a flat
//! array of 2^(48-26) = 4 Mi pointers (32 MiB of *reserved* address space, of which only the
//! pages holding used entries are ever touched), shared by every heap in the process, since an
//! address belongs to at most one heap.
//!
//! # Concurrency
//!
//! Entries are written under the page heap's lock and read without a lock. A reader that finds
//! a span through the map got the address from an object inside that span, which was published
//! to it (by whatever handed it the object) after the entry was written, so a plain acquire
//! load is enough. These tables use `core` atomics even under loom (see `sync::raw_atomic`).

// The arena and page maps live in OS-mapped memory and statics, so they use `core` atomics
// through `sync::raw_atomic` (see there) rather than the loom-swappable ones.

use std::sync::OnceLock;

use super::addr::{
    Address, ArenaId, ADDRESS_BITS, ARENA_SHIFT, ARENA_SIZE, PAGES_PER_ARENA, PAGE_SIZE,
};
use super::os;
use super::span::Span;
use crate::sync::raw_atomic::{AtomicPtr, AtomicU64, Ordering};

/// Commit granularity: 1 MiB, so an arena needs at most 64 commit calls (and VMAs).
pub(crate) const COMMIT_CHUNK: usize = 1 << 20;
const CHUNKS_PER_ARENA: usize = ARENA_SIZE / COMMIT_CHUNK;
const TABLE_LEN: usize = 1 << (ADDRESS_BITS - ARENA_SHIFT);

/// One 64 MiB arena's metadata.
pub(crate) struct Arena {
    base: Address,
    /// Page index → span using that page (null when the page is free).
    spans: Box<[AtomicPtr<Span>]>,
    /// Bit `i` set: chunk `i` is committed. Written under the page heap lock (so relaxed
    /// accesses suffice); an atomic rather than a plain `u64` because the arena table hands
    /// out shared references to this arena to lock-free readers (`span_of`) at any time, so
    /// committing must not go through a `&mut Arena` (that would assert exclusive access
    /// while those readers hold `&Arena`; Miri reports it under both Stacked and Tree Borrows).
    committed: AtomicU64,
}

impl core::fmt::Debug for Arena {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Arena")
            .field("base", &self.base)
            .field(
                "committed_chunks",
                &self.committed.load(Ordering::Relaxed).count_ones(),
            )
            .finish()
    }
}

impl Arena {
    fn new(base: Address) -> Arena {
        debug_assert!(base.is_aligned(ARENA_SIZE));
        Arena {
            base,
            spans: new_page_map(),
            committed: AtomicU64::new(0),
        }
    }

    /// The arena's first byte.
    pub(crate) fn base(&self) -> Address {
        self.base
    }

    /// Commits every chunk that `[addr, addr+len)` touches; returns the bytes newly committed.
    ///
    /// Called with the page heap lock held (which also orders the relaxed `committed` accesses).
    pub(crate) fn commit(&self, addr: Address, len: usize) -> Result<usize, os::OsError> {
        let mut committed = self.committed.load(Ordering::Relaxed);
        let first = addr.offset_from(self.base) / COMMIT_CHUNK;
        let last = (addr.offset_from(self.base) + len - 1) / COMMIT_CHUNK;
        debug_assert!(last < CHUNKS_PER_ARENA);
        let mut newly = 0;
        let mut c = first;
        while c <= last {
            if committed & (1 << c) != 0 {
                c += 1;
                continue;
            }
            // Commit a run of uncommitted chunks with one call.
            let run_start = c;
            while c <= last && committed & (1 << c) == 0 {
                c += 1;
            }
            let bytes = (c - run_start) * COMMIT_CHUNK;
            // SAFETY: the chunks lie inside this arena's reservation, which lives as long as
            // the arena, and uncommitted chunks hold no objects.
            unsafe { os::commit(self.base.add(run_start * COMMIT_CHUNK), bytes)? };
            for i in run_start..c {
                committed |= 1 << i;
            }
            self.committed.store(committed, Ordering::Relaxed);
            newly += bytes;
        }
        Ok(newly)
    }

    /// Bytes committed in this arena.
    pub(crate) fn committed_bytes(&self) -> usize {
        self.committed.load(Ordering::Relaxed).count_ones() as usize * COMMIT_CHUNK
    }

    /// Points every page of `[first_page, first_page+npages)` at `span` (null to clear).
    pub(crate) fn set_spans(&self, addr: Address, npages: usize, span: *mut Span) {
        let first = addr.offset_from(self.base) / PAGE_SIZE;
        for slot in &self.spans[first..first + npages] {
            slot.store(span, Ordering::Release);
        }
    }

    /// The span using the page that holds `addr`, or null.
    #[inline(always)]
    pub(crate) fn span_at(&self, addr: Address) -> *mut Span {
        self.spans[addr.page().index_in_arena()].load(Ordering::Acquire)
    }
}

/// A page map with every entry null.
#[cfg(not(miri))]
fn new_page_map() -> Box<[AtomicPtr<Span>]> {
    (0..PAGES_PER_ARENA)
        .map(|_| AtomicPtr::new(core::ptr::null_mut()))
        .collect()
}

/// A page map with every entry null, from one zeroed allocation (a null `AtomicPtr` is all
/// zero bits).
///
/// Only under Miri, which interprets the loop of the version above entry by entry: its 8192
/// entries took about 2 s of interpretation, paid by the first allocation of every heap (each
/// case of `tests/heap_model.rs` makes a new one), while a zeroed allocation is one step.
/// The map is the same either way.
#[cfg(miri)]
fn new_page_map() -> Box<[AtomicPtr<Span>]> {
    let layout = std::alloc::Layout::array::<AtomicPtr<Span>>(PAGES_PER_ARENA)
        .expect("the page map's layout");
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<AtomicPtr<Span>>();
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` is a fresh allocation from the global allocator with the layout of a
    // `[AtomicPtr<Span>; PAGES_PER_ARENA]`, which is how `Box<[_]>` allocates and frees such a
    // slice, and zeroed memory is a valid (null) `AtomicPtr`.
    unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(p, PAGES_PER_ARENA)) }
}

/// The process-wide arena number → arena map.
pub(crate) struct ArenaTable {
    entries: *const AtomicPtr<Arena>,
}

// SAFETY: the table is a fixed array of atomics in memory that is never unmapped.
unsafe impl Send for ArenaTable {}
// SAFETY: as above; all access goes through the atomics.
unsafe impl Sync for ArenaTable {}

impl core::fmt::Debug for ArenaTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ArenaTable")
            .field("entries", &TABLE_LEN)
            .finish()
    }
}

static TABLE: OnceLock<ArenaTable> = OnceLock::new();

impl ArenaTable {
    /// The table, reserving it on first use. Panics only if the OS refuses 32 MiB of address
    /// space at start-up, when nothing else could work either.
    #[inline]
    pub(crate) fn get() -> &'static ArenaTable {
        TABLE.get_or_init(|| {
            let bytes = TABLE_LEN * core::mem::size_of::<AtomicPtr<Arena>>();
            let base = os::reserve(bytes, PAGE_SIZE)
                .unwrap_or_else(|e| panic!("gc-core: cannot reserve the arena table: {e}"));
            // SAFETY: `base..base+bytes` is the reservation just made.
            unsafe { os::commit(base, bytes) }
                .unwrap_or_else(|e| panic!("gc-core: cannot map the arena table: {e}"));
            // Zeroed memory is a valid array of null `AtomicPtr`s.
            ArenaTable {
                entries: base.as_mut_ptr::<AtomicPtr<Arena>>(),
            }
        })
    }

    #[inline(always)]
    fn entry(&self, id: ArenaId) -> Option<&AtomicPtr<Arena>> {
        if id.as_usize() >= TABLE_LEN {
            return None;
        }
        // SAFETY: the index is in bounds of the TABLE_LEN-entry array mapped in `get`, which
        // is never unmapped; zeroed memory is a valid `AtomicPtr`.
        Some(unsafe { &*self.entries.add(id.as_usize()) })
    }

    /// The arena holding `addr`, if gc-core owns one there.
    #[inline(always)]
    pub(crate) fn arena_of(&self, addr: Address) -> Option<&Arena> {
        let p = self.entry(addr.arena())?.load(Ordering::Acquire);
        // SAFETY: entries point at arenas boxed by `new_arena` that stay alive until
        // `remove_arena` clears the entry, and nothing asks about an arena's address after its
        // heap has been dropped (all objects in it are gone).
        unsafe { p.as_ref() }
    }

    /// The span holding `addr`, if any.
    #[inline(always)]
    pub(crate) fn span_of(&self, addr: Address) -> Option<&Span> {
        let s = self.arena_of(addr)?.span_at(addr);
        // SAFETY: page map entries point at live spans: a span is unlinked from the map
        // before its metadata is freed.
        unsafe { s.as_ref() }
    }

    /// Reserves `count` contiguous arenas and registers them.
    // Boxed: the table holds raw pointers to arenas, which therefore must never move.
    #[allow(clippy::vec_box)]
    pub(crate) fn new_arenas(&self, count: usize) -> Result<Vec<Box<Arena>>, os::OsError> {
        let bytes = count.checked_mul(ARENA_SIZE).ok_or(os::OsError {
            op: "reserve",
            len: usize::MAX,
            errno: libc::ENOMEM,
        })?;
        let base = os::reserve(bytes, ARENA_SIZE)?;
        let mut arenas = Vec::with_capacity(count);
        for i in 0..count {
            let a = Box::new(Arena::new(base.add(i * ARENA_SIZE)));
            let Some(e) = self.entry(a.base.arena()) else {
                // The kernel gave us memory above the table's range: give it back.
                for a in arenas.drain(..) {
                    self.remove_arena(a);
                }
                // SAFETY: the reservation was just made and nothing uses it.
                unsafe { os::release(base, bytes) };
                return Err(os::OsError {
                    op: "reserve",
                    len: bytes,
                    errno: libc::ENOMEM,
                });
            };
            e.store(&*a as *const Arena as *mut Arena, Ordering::Release);
            arenas.push(a);
        }
        Ok(arenas)
    }

    /// Unregisters an arena and unmaps its memory.
    #[allow(clippy::boxed_local)] // the box is how arenas are owned; it is freed here
    pub(crate) fn remove_arena(&self, arena: Box<Arena>) {
        if let Some(e) = self.entry(arena.base.arena()) {
            e.store(core::ptr::null_mut(), Ordering::Release);
        }
        // SAFETY: the arena's heap is being torn down; no object in it is reachable any more.
        unsafe { os::release(arena.base, ARENA_SIZE) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn table_maps_addresses_to_arenas() {
        let t = ArenaTable::get();
        let mut arenas = t.new_arenas(2).unwrap();
        let a0 = arenas[0].base();
        assert!(a0.is_aligned(ARENA_SIZE));
        assert_eq!(arenas[1].base(), a0.add(ARENA_SIZE));
        assert_eq!(t.arena_of(a0.add(12345)).unwrap().base(), a0);
        assert_eq!(
            t.arena_of(a0.add(ARENA_SIZE + 1)).unwrap().base(),
            a0.add(ARENA_SIZE)
        );
        assert!(t.span_of(a0).is_none());
        assert!(t.arena_of(Address::new(usize::MAX)).is_none());
        let newly = arenas[0].commit(a0.add(PAGE_SIZE), 3 * PAGE_SIZE).unwrap();
        assert_eq!(newly, COMMIT_CHUNK);
        assert_eq!(arenas[0].commit(a0, PAGE_SIZE).unwrap(), 0);
        let newly = arenas[0]
            .commit(a0.add(COMMIT_CHUNK - PAGE_SIZE), 2 * PAGE_SIZE)
            .unwrap();
        assert_eq!(newly, COMMIT_CHUNK);
        assert_eq!(arenas[0].committed_bytes(), 2 * COMMIT_CHUNK);
        for a in arenas.drain(..) {
            t.remove_arena(a);
        }
        assert!(t.arena_of(a0).is_none());
    }
}
