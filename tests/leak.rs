//! Objects the collector frees release the memory they own (review finding 2: `Vec` buffers
//! inside dead objects were leaked when `Trace::NEEDS_DROP` said "nothing to drop").
//!
//! One test in its own binary, with a counting global allocator: the system-allocator bytes
//! still live must not grow from round to round of "build 1,000 nodes each owning buffers,
//! drop them, collect".

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicIsize, Ordering};

use gc_core::{Gc, GcCell, GcSlot, Trace};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Trace)]
struct Node {
    numbers: Vec<u64>,
    queue: VecDeque<u32>,
    boxed: Box<[u8]>,
    by_name: HashMap<String, u64>,
    sorted: BTreeMap<u32, String>,
    children: GcCell<Vec<Gc<Node>>>,
    next: GcSlot<Node>,
}

fn round() {
    let root = Gc::new(node());
    for _ in 0..1_000 {
        let n = Gc::new(node());
        n.next.store(Some(root.clone()));
        root.children.borrow_mut().push(n);
    }
    drop(root);
    gc_core::collect();
    gc_core::collect();
}

fn node() -> Node {
    Node {
        numbers: vec![7; 1_000],
        queue: (0..100).collect(),
        boxed: vec![1; 500].into_boxed_slice(),
        by_name: (0..10).map(|i| (i.to_string(), i)).collect(),
        sorted: (0..10).map(|i| (i, i.to_string())).collect(),
        children: GcCell::new(Vec::new()),
        next: GcSlot::new(None),
    }
}

#[test]
fn dead_objects_free_what_they_own() {
    round();
    round();
    let base = LIVE.load(Ordering::Relaxed);
    for _ in 0..5 {
        round();
    }
    let growth = LIVE.load(Ordering::Relaxed) - base;
    // One round owns about 10 MB of buffers; anything leaked per round would show as MBs.
    assert!(
        growth < 1 << 20,
        "system-allocator bytes grew by {growth} over 5 rounds"
    );
}
