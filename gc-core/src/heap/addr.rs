//! Address newtypes: raw addresses, page numbers and arena numbers are never bare `usize`s.
//!
//! The heap is carved into *arenas* of [`ARENA_SIZE`] bytes aligned to their size, each made of
//! [`PAGE_SIZE`] pages. An address therefore splits into an arena number (its high bits) and a
//! page within the arena, which is how the arena table (`arena.rs`) maps any address to its span
//! in O(1) (Go: `arenaIndex`, `spanOf`).

use core::fmt;

pub use super::size_class::{PAGE_SHIFT, PAGE_SIZE};

/// log2 of the arena size.
pub const ARENA_SHIFT: usize = 26;
/// Size of one arena: 64 MiB, reserved from the OS at once and committed as used.
pub const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
/// Pages per arena.
pub const PAGES_PER_ARENA: usize = ARENA_SIZE / PAGE_SIZE;
/// Bits of user-space virtual address covered by the arena table (x86-64 and AArch64 Linux hand
/// out 47/48-bit addresses unless asked for more).
pub const ADDRESS_BITS: usize = 48;

/// A byte address in the process (never null when it names heap memory).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Address(usize);

impl Address {
    /// The null address, used as "none" in caches.
    pub const NULL: Address = Address(0);

    /// Wraps a raw address.
    #[inline(always)]
    pub const fn new(raw: usize) -> Self {
        Address(raw)
    }

    /// The address of a pointer.
    #[inline(always)]
    pub fn from_ptr<T: ?Sized>(ptr: *const T) -> Self {
        Address(ptr.cast::<u8>() as usize)
    }

    /// The raw value.
    #[inline(always)]
    pub const fn as_usize(self) -> usize {
        self.0
    }

    /// Whether this is [`Address::NULL`].
    #[inline(always)]
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }

    /// As a raw pointer. Dereferencing it is the caller's business.
    #[cfg(not(miri))]
    #[inline(always)]
    pub const fn as_mut_ptr<T>(self) -> *mut T {
        self.0 as *mut T
    }

    /// As a raw pointer. Dereferencing it is the caller's business.
    ///
    /// Under Miri the pointer carries the provenance of the reservation holding the address
    /// (see the Miri backend in `os.rs`), so the heap runs under `-Zmiri-strict-provenance`.
    #[cfg(miri)]
    #[inline(always)]
    pub fn as_mut_ptr<T>(self) -> *mut T {
        super::os::miri_pointer(self.0).cast()
    }

    /// `self + bytes`.
    #[inline(always)]
    #[allow(clippy::should_implement_trait)]
    pub const fn add(self, bytes: usize) -> Self {
        Address(self.0 + bytes)
    }

    /// Bytes from `base` up to `self` (`self >= base`).
    #[inline(always)]
    pub const fn offset_from(self, base: Address) -> usize {
        self.0 - base.0
    }

    /// Whether the address is a multiple of `align` (a power of two).
    #[inline(always)]
    pub const fn is_aligned(self, align: usize) -> bool {
        self.0 & (align - 1) == 0
    }

    /// The page this address is in.
    #[inline(always)]
    pub const fn page(self) -> PageId {
        PageId(self.0 >> PAGE_SHIFT)
    }

    /// The arena this address would be in.
    #[inline(always)]
    pub const fn arena(self) -> ArenaId {
        ArenaId(self.0 >> ARENA_SHIFT)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// A page number: an address divided by [`PAGE_SIZE`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(transparent)]
pub struct PageId(usize);

impl PageId {
    /// The page with this number.
    #[inline(always)]
    pub const fn new(page: usize) -> Self {
        PageId(page)
    }

    /// The first byte of the page.
    #[inline(always)]
    pub const fn start(self) -> Address {
        Address(self.0 << PAGE_SHIFT)
    }

    /// The page number.
    #[inline(always)]
    pub const fn as_usize(self) -> usize {
        self.0
    }

    /// The page `n` pages after this one.
    #[inline(always)]
    pub const fn plus(self, n: usize) -> PageId {
        PageId(self.0 + n)
    }

    /// This page's index within its arena.
    #[inline(always)]
    pub const fn index_in_arena(self) -> usize {
        self.0 & (PAGES_PER_ARENA - 1)
    }
}

/// An arena number: an address divided by [`ARENA_SIZE`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(transparent)]
pub struct ArenaId(usize);

impl ArenaId {
    /// The arena's first byte.
    #[inline(always)]
    pub const fn start(self) -> Address {
        Address(self.0 << ARENA_SHIFT)
    }

    /// The index into the arena table.
    #[inline(always)]
    pub const fn as_usize(self) -> usize {
        self.0
    }
}

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline(always)]
pub const fn checked_align_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn splits_addresses() {
        let a = Address::new(3 * ARENA_SIZE + 5 * PAGE_SIZE + 17);
        assert_eq!(a.arena().as_usize(), 3);
        assert_eq!(a.page().index_in_arena(), 5);
        assert_eq!(
            a.page().start(),
            Address::new(3 * ARENA_SIZE + 5 * PAGE_SIZE)
        );
        assert_eq!(a.arena().start().add(5 * PAGE_SIZE + 17), a);
        assert!(!a.is_aligned(8));
        assert!(a.page().start().is_aligned(PAGE_SIZE));
        assert_eq!(format!("{:?}", Address::new(255)), "0xff");
        assert_eq!(checked_align_up(9, 8), Some(16));
        assert_eq!(checked_align_up(usize::MAX, 8), None);
    }
}
