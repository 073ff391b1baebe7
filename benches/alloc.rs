//! Allocation + reclamation cost per object: gc-core's heap against `Box::new` + drop with the
//! system allocator, measured side by side in one run.
//!
//! Each iteration allocates a batch of `BATCH` objects and then reclaims all of them:
//!
//! - **gc**: allocate through a thread cache (writing a one-word header and the payload, as
//!   `Gc::new` does), then one sweep with nothing marked (`begin_sweep` + `finish_sweep`).
//!   Reclamation is a bitmap copy per span; the dead objects are never touched.
//! - **box_batch**: `Box::new` each object into a vector, then drop the vector (every object is
//!   freed individually, the way `Rc`/`Box` graphs die).
//! - **box_immediate**: `Box::new` and drop at once (the allocator's best case: the same chunk
//!   comes back from its thread cache every time).
//!
//! Payload sizes 16, 32 and 64 bytes (the gc object is 8 bytes larger: the header), and 8-byte
//! objects, which gc-core packs two to a 16-byte tiny block with no header.
//!
//! Run: `cargo bench --bench alloc`; the README quotes the medians as ratios.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use gc_core::heap::{size_class_for, Heap, SpanClass, ThreadCache};
use gc_core::ptr::header::{ObjectHeader, TypeDescriptor};

const BATCH: usize = 64 * 1024;

static DESC: TypeDescriptor = TypeDescriptor {
    trace: None,
    drop: None,
    size: 0,
    align: 8,
    name: || "bench",
};

fn gc_batch<const N: usize>(heap: &Heap, cache: &mut ThreadCache) {
    let class = SpanClass::new(size_class_for(8 + N, 8).unwrap(), true);
    {
        let mut op = cache.op();
        for i in 0..BATCH {
            // SAFETY: no drop glue, so the sweeper never reads the slot; the header and payload
            // are written inside the slot, which is at least 8 + N bytes.
            unsafe {
                let a = op.alloc(class, false).unwrap();
                a.as_mut_ptr::<ObjectHeader>()
                    .write(ObjectHeader::new(&DESC, 1));
                a.add(8).as_mut_ptr::<[u8; N]>().write([i as u8; N]);
                black_box(a);
            }
        }
    }
    heap.begin_sweep();
    heap.finish_sweep();
}

fn gc_tiny_batch(heap: &Heap, cache: &mut ThreadCache) {
    {
        let mut op = cache.op();
        for i in 0..BATCH {
            // SAFETY: tiny objects hold no handle and need no drop; 8 bytes are written inside
            // the 8 bytes returned.
            unsafe {
                let a = op.alloc_tiny(8, 8).unwrap();
                a.as_mut_ptr::<u64>().write(i as u64);
                black_box(a);
            }
        }
    }
    heap.begin_sweep();
    heap.finish_sweep();
}

fn box_batch<const N: usize>(v: &mut Vec<Box<[u8; N]>>) {
    for i in 0..BATCH {
        v.push(Box::new([i as u8; N]));
    }
    black_box(&v);
    v.clear();
}

fn box_immediate<const N: usize>() {
    for i in 0..BATCH {
        drop(black_box(Box::new([i as u8; N])));
    }
}

fn bench_size<const N: usize>(c: &mut Criterion, name: &str) {
    let mut g = c.benchmark_group(format!("alloc_reclaim/{name}"));
    g.throughput(Throughput::Elements(BATCH as u64));
    let heap = Heap::default();
    let mut cache = heap.cache();
    g.bench_function(BenchmarkId::new("gc", N), |b| {
        b.iter(|| gc_batch::<N>(&heap, &mut cache))
    });
    let mut v = Vec::with_capacity(BATCH);
    g.bench_function(BenchmarkId::new("box_batch", N), |b| {
        b.iter(|| box_batch::<N>(&mut v))
    });
    g.bench_function(BenchmarkId::new("box_immediate", N), |b| {
        b.iter(box_immediate::<N>)
    });
    g.finish();
}

fn bench_tiny(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_reclaim/tiny8");
    g.throughput(Throughput::Elements(BATCH as u64));
    let heap = Heap::default();
    let mut cache = heap.cache();
    g.bench_function("gc_tiny", |b| b.iter(|| gc_tiny_batch(&heap, &mut cache)));
    let mut v: Vec<Box<u64>> = Vec::with_capacity(BATCH);
    g.bench_function("box_batch", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                v.push(Box::new(i as u64));
            }
            black_box(&v);
            v.clear();
        })
    });
    g.bench_function("box_immediate", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                drop(black_box(Box::new(i as u64)));
            }
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_size::<16>(c, "16B");
    bench_size::<32>(c, "32B");
    bench_size::<64>(c, "64B");
    bench_tiny(c);
}

criterion_group! {
    name = alloc;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = benches
}
criterion_main!(alloc);
