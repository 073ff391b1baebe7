//! The only module that asks the OS for memory (Go: `mem_linux.go`'s sysReserve/sysMap/sysUnused).
//!
//! Four operations, each on page-aligned ranges:
//!
//! - [`reserve`]: take a range of address space with no access rights. It costs no memory:
//!   the kernel backs nothing until pages are committed and touched.
//! - [`commit`]: make a reserved range readable and writable. Still no RSS until first touch,
//!   and the first touch reads zeros.
//! - [`decommit`]: give the physical pages of a committed range back (`MADV_DONTNEED`); the
//!   range stays mapped and reads zeros afterwards. Used by the scavenger.
//! - [`release`]: unmap the range.
//!
//! Clippy's `disallowed-methods` forbids `libc::mmap`/`munmap`/`madvise`/`mprotect` everywhere
//! else in gc-core.
#![allow(clippy::disallowed_methods)]

use core::fmt;

use super::addr::{Address, PAGE_SIZE};

/// The OS refused a request; carries `errno`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct OsError {
    /// What was being done.
    pub op: &'static str,
    /// Bytes requested.
    pub len: usize,
    /// The `errno` the call returned.
    pub errno: i32,
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} bytes failed: {}",
            self.op,
            self.len,
            std::io::Error::from_raw_os_error(self.errno)
        )
    }
}

#[cfg(not(miri))]
fn last_error(op: &'static str, len: usize) -> OsError {
    OsError {
        op,
        len,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

/// Reserves `len` bytes of address space aligned to `align` (a power of two ≥ the page size),
/// with no access rights.
#[cfg(not(miri))]
pub fn reserve(len: usize, align: usize) -> Result<Address, OsError> {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE && len % PAGE_SIZE == 0);
    // Over-reserve by `align` and trim both ends, so the kept range is aligned.
    let Some(padded) = len.checked_add(align) else {
        return Err(OsError {
            op: "reserve",
            len,
            errno: libc::ENOMEM,
        });
    };
    // SAFETY: an anonymous private PROT_NONE mapping at an address of the kernel's choosing
    // creates new pages and cannot alias any existing Rust object.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            padded,
            libc::PROT_NONE,
            // No MAP_NORESERVE: committing (mprotect to RW) is then charged against the
            // kernel's overcommit accounting, which refuses absurd commits up front.
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(last_error("reserve", len));
    }
    let raw = p as usize;
    let start = (raw + align - 1) & !(align - 1);
    let head = start - raw;
    let tail = padded - head - len;
    if head > 0 {
        // SAFETY: [raw, raw+head) is part of the mapping made above, which nothing uses yet.
        unsafe { unmap_raw(raw, head) };
    }
    if tail > 0 {
        // SAFETY: [start+len, start+len+tail) is the tail of that same unused mapping.
        unsafe { unmap_raw(start + len, tail) };
    }
    Ok(Address::new(start))
}

/// Makes `[addr, addr+len)` readable and writable. Pages read as zeros until written.
///
/// # Safety
///
/// - The range must lie inside a range returned by [`reserve`] and not yet released.
#[cfg(not(miri))]
pub unsafe fn commit(addr: Address, len: usize) -> Result<(), OsError> {
    debug_assert!(addr.is_aligned(PAGE_SIZE) && len % PAGE_SIZE == 0);
    // SAFETY: the caller guarantees the range is our reservation; changing its protection
    // cannot invalidate any Rust reference because uncommitted memory holds no objects.
    let r = unsafe { libc::mprotect(addr.as_mut_ptr(), len, libc::PROT_READ | libc::PROT_WRITE) };
    if r != 0 {
        return Err(last_error("commit", len));
    }
    Ok(())
}

/// Returns the physical pages behind `[addr, addr+len)` to the OS; the range stays committed
/// and reads as zeros afterwards.
///
/// # Safety
///
/// - The range must be committed memory of ours that holds no live object (its content is lost).
#[cfg(not(miri))]
pub unsafe fn decommit(addr: Address, len: usize) -> Result<(), OsError> {
    debug_assert!(addr.is_aligned(PAGE_SIZE) && len % PAGE_SIZE == 0);
    // SAFETY: the caller guarantees the range holds no live object, so zeroing it is invisible
    // to safe code.
    let r = unsafe { libc::madvise(addr.as_mut_ptr(), len, libc::MADV_DONTNEED) };
    if r != 0 {
        return Err(last_error("decommit", len));
    }
    Ok(())
}

/// Unmaps `[addr, addr+len)`.
///
/// # Safety
///
/// - The range must come from [`reserve`] (whole or in part) and nothing may use it afterwards.
#[cfg(not(miri))]
pub unsafe fn release(addr: Address, len: usize) {
    // SAFETY: forwarded from the caller's contract.
    unsafe { unmap_raw(addr.as_usize(), len) }
}

/// # Safety
///
/// - `[addr, addr+len)` must be mapped by us and unused.
#[cfg(not(miri))]
unsafe fn unmap_raw(addr: usize, len: usize) {
    // SAFETY: forwarded from the caller's contract.
    let r = unsafe { libc::munmap(addr as *mut libc::c_void, len) };
    debug_assert_eq!(r, 0, "munmap failed: {}", std::io::Error::last_os_error());
}

// ---------------------------------------------------------------------------------------------
// The Miri backend.
//
// Miri cannot run mmap/mprotect/madvise, so under `cfg(miri)` a reservation is one
// `alloc_zeroed` allocation aligned as asked (committed from the start: `commit` is a no-op,
// `decommit` zeroes the range, `release` frees the allocation once all of it is released).
//
// Provenance: the heap names memory by integer [`Address`]es. So that the heap runs under
// `-Zmiri-strict-provenance`, this backend keeps each live reservation's pointer (with its
// provenance) in a small table, and `Address::as_mut_ptr` turns an address back into a pointer
// by taking the provenance of the reservation that contains it (`with_addr`), not by an
// integer-to-pointer cast. The table uses relaxed atomics only, so looking an address up
// creates no happens-before edge that could hide a data race from Miri. None of this exists
// in non-Miri builds, where `as_mut_ptr` stays a plain cast.
// ---------------------------------------------------------------------------------------------

/// The largest reservation the Miri backend accepts; larger ones fail like a refused mmap.
#[cfg(miri)]
const MIRI_MAX_RESERVE: usize = 1 << 32;

#[cfg(miri)]
mod miri_table {
    use crate::sync::raw_atomic::{AtomicPtr, AtomicUsize, Ordering::Relaxed};

    /// Live reservations at once (the arena table, and each heap's arena runs).
    pub(super) const SLOTS: usize = 256;

    /// Slot `i`: a reservation's base pointer (null when free), its length, its alignment and
    /// the bytes of it not yet released.
    pub(super) static BASE: [AtomicPtr<u8>; SLOTS] =
        [const { AtomicPtr::new(core::ptr::null_mut()) }; SLOTS];
    pub(super) static LEN: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    pub(super) static ALIGN: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    pub(super) static LIVE: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
    /// One past the highest slot ever used: lookups scan `0..HIGH`.
    pub(super) static HIGH: AtomicUsize = AtomicUsize::new(0);

    /// The slot of the live reservation containing `addr`.
    #[inline]
    pub(super) fn find(addr: usize) -> Option<(usize, *mut u8)> {
        let high = HIGH.load(Relaxed);
        for i in 0..high {
            let base = BASE[i].load(Relaxed);
            if !base.is_null() && addr.wrapping_sub(base.addr()) < LEN[i].load(Relaxed) {
                return Some((i, base));
            }
        }
        None
    }

    /// Records a new reservation.
    pub(super) fn insert(base: *mut u8, len: usize, align: usize) {
        for i in 0..SLOTS {
            if BASE[i]
                .compare_exchange(core::ptr::null_mut(), base, Relaxed, Relaxed)
                .is_ok()
            {
                LEN[i].store(len, Relaxed);
                ALIGN[i].store(align, Relaxed);
                LIVE[i].store(len, Relaxed);
                HIGH.fetch_max(i + 1, Relaxed);
                return;
            }
        }
        panic!("gc-core (miri backend): more than {SLOTS} live reservations");
    }
}

/// The pointer for `addr`: the provenance of the live reservation containing it; otherwise
/// an integer-to-pointer cast (exposed provenance, which `-Zmiri-strict-provenance` rejects
/// on use).
#[cfg(miri)]
#[inline]
pub fn miri_pointer(addr: usize) -> *mut u8 {
    match miri_table::find(addr) {
        Some((_, base)) => base.with_addr(addr),
        None => core::ptr::with_exposed_provenance_mut(addr),
    }
}

/// Reserves `len` bytes aligned to `align` (Miri backend: an `alloc_zeroed` allocation).
#[cfg(miri)]
pub fn reserve(len: usize, align: usize) -> Result<Address, OsError> {
    debug_assert!(align.is_power_of_two() && align >= PAGE_SIZE && len % PAGE_SIZE == 0);
    let refused = OsError {
        op: "reserve",
        len,
        errno: libc::ENOMEM,
    };
    if len == 0 || len > MIRI_MAX_RESERVE {
        return Err(refused);
    }
    let layout = std::alloc::Layout::from_size_align(len, align).map_err(|_| refused)?;
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    if p.is_null() {
        return Err(refused);
    }
    miri_table::insert(p, len, align);
    Ok(Address::from_ptr(p))
}

/// Makes `[addr, addr+len)` usable (Miri backend: reservations are usable from the start).
///
/// # Safety
///
/// - The range must lie inside a range returned by [`reserve`] and not yet released.
#[cfg(miri)]
pub unsafe fn commit(addr: Address, len: usize) -> Result<(), OsError> {
    debug_assert!(addr.is_aligned(PAGE_SIZE) && len % PAGE_SIZE == 0);
    debug_assert!(miri_table::find(addr.as_usize()).is_some());
    Ok(())
}

/// Gives back `[addr, addr+len)`, which reads as zeros afterwards (Miri backend: zeroes it).
///
/// # Safety
///
/// - The range must be committed memory of ours that holds no live object (its content is lost).
#[cfg(miri)]
pub unsafe fn decommit(addr: Address, len: usize) -> Result<(), OsError> {
    debug_assert!(addr.is_aligned(PAGE_SIZE) && len % PAGE_SIZE == 0);
    // SAFETY: the caller guarantees the range is ours and holds no live object; this is the
    // write that `MADV_DONTNEED` stands for.
    unsafe { addr.as_mut_ptr::<u8>().write_bytes(0, len) };
    Ok(())
}

/// Releases `[addr, addr+len)` (Miri backend: the allocation is freed when all of it has been
/// released).
///
/// # Safety
///
/// - The range must come from [`reserve`] (whole or in part) and nothing may use it afterwards.
#[cfg(miri)]
pub unsafe fn release(addr: Address, len: usize) {
    use crate::sync::raw_atomic::Ordering::Relaxed;
    let (i, base) = miri_table::find(addr.as_usize())
        .unwrap_or_else(|| panic!("gc-core (miri backend): release of {addr:?} not reserved"));
    let live = miri_table::LIVE[i].fetch_sub(len, Relaxed) - len;
    if live == 0 {
        let layout = std::alloc::Layout::from_size_align(
            miri_table::LEN[i].load(Relaxed),
            miri_table::ALIGN[i].load(Relaxed),
        )
        .expect("the layout it was allocated with");
        miri_table::BASE[i].store(core::ptr::null_mut(), Relaxed);
        // SAFETY: `base` was allocated by `reserve` with this layout, and the caller
        // guarantees that nothing uses any part of it any more.
        unsafe { std::alloc::dealloc(base, layout) };
    }
}

/// Bytes of physical memory (Miri backend: the largest reservation it accepts).
#[cfg(miri)]
fn read_physical_memory() -> usize {
    MIRI_MAX_RESERVE
}

/// Bytes of physical memory on this machine (0 if unknown). Read once.
pub fn physical_memory_bytes() -> usize {
    static BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BYTES.get_or_init(read_physical_memory)
}

#[cfg(not(miri))]
fn read_physical_memory() -> usize {
    // SAFETY: sysconf reads configuration values and touches no memory of ours.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages <= 0 || size <= 0 {
        0
    } else {
        (pages as usize).saturating_mul(size as usize)
    }
}

/// Reads this process's resident set size (`VmRSS`) in bytes, where /proc is available.
pub fn resident_bytes() -> Option<usize> {
    proc_status_kib("VmRSS:").map(|k| k * 1024)
}

/// Reads this process's peak resident set size (`VmHWM`) in bytes, where /proc is available.
pub fn peak_resident_bytes() -> Option<usize> {
    proc_status_kib("VmHWM:").map(|k| k * 1024)
}

fn proc_status_kib(key: &str) -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reserve_commit_touch_release() {
        let align = 1 << 26;
        let a = reserve(4 << 20, align).unwrap();
        assert!(a.is_aligned(align));
        // SAFETY: the range is inside the reservation just made.
        unsafe { commit(a, 2 * PAGE_SIZE).unwrap() };
        let p = a.as_mut_ptr::<u64>();
        // SAFETY: the first two pages are committed and nothing else refers to them.
        unsafe {
            assert_eq!(p.read(), 0);
            p.write(42);
            assert_eq!(p.read(), 42);
        }
        // SAFETY: the page holds no object.
        unsafe { decommit(a, PAGE_SIZE).unwrap() };
        // SAFETY: still committed; decommitted pages read as zeros.
        assert_eq!(unsafe { p.read() }, 0);
        // SAFETY: the whole reservation is ours and unused from here on.
        unsafe { release(a, 4 << 20) };
    }

    #[test]
    fn absurd_reservation_is_an_error() {
        let e = reserve(usize::MAX & !(PAGE_SIZE - 1), PAGE_SIZE).unwrap_err();
        assert_eq!(e.op, "reserve");
        assert!(e.to_string().contains("reserve of"));
        let e = reserve(1 << 62, 1 << 26).unwrap_err();
        assert!(e.errno != 0);
    }

    #[test]
    fn knows_physical_memory() {
        assert!(physical_memory_bytes() >= 64 << 20);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri's isolation hides /proc")]
    fn reads_proc_status() {
        assert!(resident_bytes().unwrap() > 0);
        assert!(peak_resident_bytes().unwrap() >= resident_bytes().unwrap() / 2);
    }
}
