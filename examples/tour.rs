//! The README demo.
//!
//! gc-core is built bottom-up; this tour shows the layer that exists today: the heap. It
//! allocates objects of several sizes through a thread cache (scan, noscan, tiny and large),
//! marks a few as a collector would, sweeps, and prints the heap statistics at each step.
//! (`Gc<T>` and `collect()` come with the next layer; see README.md's status table.)

use gc_core::heap::{size_class_for, Heap, HeapStats, SpanClass};
use gc_core::ptr::header::{ObjectHeader, TypeDescriptor};

static NODE: TypeDescriptor =
    TypeDescriptor { trace: None, drop: None, size: 32, align: 8, name: "Node" };

fn show(what: &str, s: &HeapStats) {
    println!(
        "{what:<34} objects {:>7}  scan {:>9} B  noscan {:>9} B  tiny {:>7} B  spans {:>4}  \
         committed {:>5} KiB  reserved {:>6} KiB",
        s.objects,
        s.scan_bytes,
        s.noscan_bytes,
        s.tiny_bytes,
        s.spans,
        s.committed_bytes / 1024,
        s.reserved_bytes / 1024
    );
}

fn main() {
    let heap = Heap::default();
    let mut cache = heap.cache();
    let node = SpanClass::new(size_class_for(32, 8).unwrap(), false);
    let blob = SpanClass::new(size_class_for(200, 8).unwrap(), true);

    let mut nodes = Vec::new();
    {
        let mut op = cache.op();
        for i in 0..100_000u64 {
            // SAFETY: the slot is at least 32 bytes; header and payload are written inside it
            // before the operation ends (it needs no drop, so the sweeper never reads it).
            unsafe {
                let a = op.alloc(node, false).expect("allocation");
                a.as_mut_ptr::<ObjectHeader>().write(ObjectHeader::new(&NODE, 1));
                a.add(8).as_mut_ptr::<u64>().write(i);
                nodes.push(a);
                op.alloc(blob, false).expect("allocation");
                op.alloc_tiny(8, 8).expect("allocation").as_mut_ptr::<u64>().write(i);
            }
        }
        // SAFETY: no drop glue; nothing reads the memory.
        unsafe { op.alloc_large(1 << 20, true, false) }.expect("allocation");
    }
    cache.flush();
    show("after 300,001 allocations", &heap.stats());

    // A collector would now mark what is reachable; keep every tenth node.
    for a in nodes.iter().step_by(10) {
        // SAFETY: the objects are allocated and no sweep is running.
        unsafe { heap.mark(*a) };
    }
    heap.begin_sweep();
    heap.finish_sweep();
    show("after a sweep keeping 10,000", &heap.stats());

    // Freed slots are reused: the heap does not grow for the next round.
    let before = heap.stats().span_bytes;
    {
        let mut op = cache.op();
        for _ in 0..90_000 {
            // SAFETY: as above.
            unsafe { op.alloc(node, false) }.expect("allocation");
        }
    }
    cache.flush();
    let s = heap.stats();
    show("after 90,000 more nodes", &s);
    println!(
        "span bytes before/after reuse: {} / {} KiB; swept {} spans; membarrier fences: {}",
        before / 1024,
        s.span_bytes / 1024,
        s.spans_swept,
        s.cheap_fences
    );
    heap.verify();
    println!("heap verified: bitmaps, counts, page map and free runs are consistent");
}
