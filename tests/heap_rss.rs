//! Reserving is not committing, and committing is not touching: the heap's address space costs
//! no memory until objects are written (`gc_core::heap`, `heap::os`).
//!
//! A fresh [`Heap`] reserves 1 GiB and hands out one 512 MiB object, of which the test writes
//! 8 MiB; the process's resident set (VmRSS) must grow by less than 32 MiB, while the heap
//! reports at least 1 GiB reserved. The heap must therefore neither touch reserved or committed
//! pages itself (no zeroing, no per-page metadata inside the arena) nor commit with
//! `MAP_POPULATE`-like eagerness.
//!
//! This file holds exactly one test, so that no other test in the same process changes the
//! resident set while it measures. Skipped (with a message) where /proc is unavailable.

use gc_core::heap::{Heap, PAGE_SIZE};

const MIB: usize = 1 << 20;

#[test]
fn reserved_and_committed_memory_is_not_resident_until_written() {
    let Some(before) = gc_core::heap::os::resident_bytes() else {
        println!("skipped: no /proc (VmRSS unavailable)");
        return;
    };
    let heap = Heap::default();
    heap.reserve(1 << 30)
        .expect("reserving 1 GiB of address space");
    let mut cache = heap.cache();
    let size = 512 * MIB;
    let big = {
        let mut op = cache.op();
        // SAFETY: no drop glue, so the sweeper never reads the object.
        unsafe { op.alloc_large(size, true, false) }.expect("allocating 512 MiB")
    };
    assert!(big.is_aligned(PAGE_SIZE));
    // Touch 8 MiB of it: 4 MiB at each end (contiguous runs, so transparent huge pages add at
    // most a page's rounding at each edge).
    let touched = 8 * MIB;
    // SAFETY: both ranges lie inside the 512 MiB object just allocated, which is ours.
    unsafe {
        core::ptr::write_bytes(big.as_mut_ptr::<u8>(), 0x5A, touched / 2);
        core::ptr::write_bytes(
            big.add(size - touched / 2).as_mut_ptr::<u8>(),
            0xA5,
            touched / 2,
        );
    }
    let after = gc_core::heap::os::resident_bytes().expect("VmRSS readable a moment ago");
    let grown = after.saturating_sub(before);
    let st = heap.stats();
    println!(
        "VmRSS {} MiB -> {} MiB (+{} MiB); reserved {} MiB, committed {} MiB",
        before / MIB,
        after / MIB,
        grown / MIB,
        st.reserved_bytes / MIB,
        st.committed_bytes / MIB
    );
    assert!(
        st.reserved_bytes >= 1 << 30,
        "stats().reserved_bytes = {} after reserving 1 GiB",
        st.reserved_bytes
    );
    assert!(
        st.committed_bytes >= size,
        "the 512 MiB object is not counted as committed ({} bytes)",
        st.committed_bytes
    );
    assert!(
        grown < 32 * MIB,
        "VmRSS grew by {} MiB after reserving 1 GiB, committing 512 MiB and writing {} MiB: \
         reserved or committed pages are being touched",
        grown / MIB,
        touched / MIB
    );
    // The written bytes are there (the object is real memory, not a mapping that discards).
    // SAFETY: inside the object, written above.
    unsafe {
        assert_eq!(big.as_mut_ptr::<u8>().add(12345).read(), 0x5A);
        assert_eq!(big.add(size - 1).as_mut_ptr::<u8>().read(), 0xA5);
    }
    drop(cache);
}
