//! Multi-threaded tests of the heap (`gc_core::heap`): several threads allocating from one
//! [`Heap`], each through its own [`ThreadCache`], with and without a collector sweeping at the
//! same time, and caches that die with their thread.
//!
//! Every object gets a unique stamp and a fill pattern over all its bytes. The invariants:
//!
//! - **Exclusive ownership**: objects allocated by different threads never overlap (tiny
//!   objects by byte range, the others by slot), and no object's content changes while it is
//!   live, whatever the other threads and the collector do.
//! - **Sweeps run concurrently with allocation safely**: objects allocated while a sweep starts
//!   (born black before it, in swept spans after it) survive it; marked objects survive every
//!   sweep; unmarked objects with drop glue are dropped exactly once, by the sweep after they
//!   became unreachable.
//! - **Accounting**: once the caches are gone, `stats().objects` counts exactly the live
//!   objects (one per tiny block) and `heap.verify()` passes.
//! - **Thread exit**: a cache dropped at thread exit (a thread-local) gives its spans back and
//!   the thread's objects stay allocated and intact; a thread-local destructor running during
//!   thread exit can make a cache and allocate.
//! - **The cache handshake**: the collector can take an idle thread's cache away between two
//!   of its operations at any time without losing or duplicating a slot, and `set_black`
//!   returns only after every allocation that may have read the old setting has finished.
//!
//! No assertion depends on timing; the races the handshake tests look for are narrow, so those
//! tests can miss a broken handshake on a given run, but never fail a correct one.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Condvar, Mutex, MutexGuard};
use std::thread;

use gc_core::heap::{size_class_for, Address, CacheOp, Heap, SpanClass, ThreadCache, TINY_BLOCK};
use gc_core::ptr::header::{ObjectHeader, TypeDescriptor};
use gc_core_workspace::XorShift64Star;

const THREADS: usize = 4;

// ---------------------------------------------------------------------------------------------
// Stamps, contents, drop glue
// ---------------------------------------------------------------------------------------------

static NEXT_STAMP: AtomicU64 = AtomicU64::new(1);

/// A stamp unique in this process (splitmix64's finaliser of a counter is a bijection).
fn new_stamp() -> u64 {
    let mut z = NEXT_STAMP
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `j` (≥ 2) of a headed object; word 0 is the header, word 1 the stamp.
fn fill_word(stamp: u64, j: usize) -> u64 {
    (stamp ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(j as u32 % 64)
}

/// Byte `i` of a tiny object; its first 8 bytes are the stamp.
fn tiny_byte(stamp: u64, i: usize) -> u8 {
    (stamp >> (8 * (i % 8))) as u8 ^ ((i / 8) as u8).wrapping_mul(0x3D)
}

/// Checks the stamp and pattern of a headed object: every word if `full`, else the stamp and
/// the last word.
///
/// # Safety
///
/// - `a` is the start of a committed object of `size` bytes (a multiple of 8, ≥ 16) that nobody
///   writes concurrently.
unsafe fn check_headed(a: usize, size: usize, stamp: u64, full: bool) -> Result<(), String> {
    let w = a as *const u64;
    // SAFETY: word 1 is inside the object (caller's contract).
    let got = unsafe { w.add(1).read() };
    if got != stamp {
        return Err(format!("stamp at {a:#x} is {got:#x}, expected {stamp:#x}"));
    }
    let last = size / 8 - 1;
    let first = if full { 2 } else { last.max(2) };
    for j in first..=last {
        // SAFETY: j ≤ last, inside the object.
        let got = unsafe { w.add(j).read() };
        if got != fill_word(stamp, j) {
            return Err(format!(
                "word {j} of the {size}-byte object at {a:#x} (stamp {stamp:#x}) is {got:#x}"
            ));
        }
    }
    Ok(())
}

#[derive(Debug)]
struct DropRecord {
    addr: usize,
    size: usize,
    drops: u32,
    problems: Vec<String>,
}

static DROP_REGISTRY: Mutex<Option<HashMap<u64, DropRecord>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<HashMap<u64, DropRecord>>> {
    DROP_REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn drop_count(stamp: u64) -> u32 {
    registry()
        .as_ref()
        .and_then(|r| r.get(&stamp))
        .map_or(0, |r| r.drops)
}

/// Counts the drop and checks the object's content; records problems instead of panicking.
///
/// # Safety
///
/// - `p` is the header of an object allocated by this test with [`DROP_DESC`] (≥ 16 bytes).
unsafe fn drop_stamped(p: *mut u8) {
    // SAFETY: the object has at least two words.
    let stamp = unsafe { p.cast::<u64>().add(1).read() };
    let mut reg = registry();
    let reg = reg.get_or_insert_with(HashMap::new);
    let rec = reg.entry(stamp).or_insert_with(|| DropRecord {
        addr: p as usize,
        size: 16,
        drops: 0,
        problems: vec![format!("drop of {p:p} with the unknown stamp {stamp:#x}")],
    });
    rec.drops += 1;
    if rec.addr != p as usize {
        rec.problems
            .push(format!("dropped at {p:p}, allocated at {:#x}", rec.addr));
    // SAFETY: the object at `p` has `rec.size` bytes; it is dead, so nobody writes it.
    } else if let Err(e) = unsafe { check_headed(rec.addr, rec.size, stamp, true) } {
        rec.problems.push(format!("corrupted before its drop: {e}"));
    }
}

static DROP_DESC: TypeDescriptor = TypeDescriptor {
    trace: None,
    drop: Some(drop_stamped),
    size: 16,
    align: 8,
    name: || "heap_threads::Stamped",
};

static PLAIN_DESC: TypeDescriptor = TypeDescriptor {
    trace: None,
    drop: None,
    size: 16,
    align: 8,
    name: || "heap_threads::Plain",
};

// ---------------------------------------------------------------------------------------------
// Objects
// ---------------------------------------------------------------------------------------------

/// One allocated object, as its allocating thread saw it.
#[derive(Clone, Copy, Debug)]
struct Rec {
    addr: usize,
    /// Bytes written.
    len: usize,
    /// End of the range the object owns: its slot (headed), or its bytes (tiny).
    end: usize,
    /// The tiny block, for tiny objects.
    block: Option<usize>,
    stamp: u64,
    drop: bool,
}

impl Rec {
    fn start(&self) -> Address {
        Address::new(self.addr)
    }

    /// The slot `for_each_object` and `stats().objects` count this object under.
    fn slot(&self) -> usize {
        self.block.unwrap_or(self.addr)
    }

    fn check(&self, full: bool) {
        let r = if self.block.is_some() {
            (0..self.len).try_for_each(|i| {
                // SAFETY: the object is live (the test keeps it) and nobody writes it now.
                let got = unsafe { (self.addr as *const u8).add(i).read() };
                if got == tiny_byte(self.stamp, i) {
                    Ok(())
                } else {
                    Err(format!(
                        "byte {i} of the tiny object at {:#x} (stamp {:#x}) is {got:#x}",
                        self.addr, self.stamp
                    ))
                }
            })
        } else {
            // SAFETY: as above.
            unsafe { check_headed(self.addr, self.len, self.stamp, full) }
        };
        if let Err(e) = r {
            panic!("live object corrupted: {e}");
        }
    }
}

/// Allocates one object of a random kind (30 % tiny, then 16 to 200 bytes, 2 % of 5000 bytes,
/// 0.02 % large) and fills it. With `drops`, a quarter of the headed objects get drop glue.
fn alloc_one(op: &mut CacheOp<'_>, rng: &mut XorShift64Star, drops: bool) -> Rec {
    let stamp = new_stamp();
    let r = rng.below(10_000);
    if r < 3000 {
        let size = 1 + rng.below(15) as usize;
        let align = 1 << rng.below(4);
        // SAFETY: tiny objects need no drop and hold no handle.
        let a = unsafe { op.alloc_tiny(size, align) }.expect("alloc_tiny");
        assert!(a.is_aligned(align), "tiny object {a:?} not {align}-aligned");
        // SAFETY: just allocated inside our operation: no sweep can free it meanwhile.
        let span = unsafe { Heap::span_of(a) }.expect("tiny object outside the heap");
        assert!(span.class().is_tiny(), "tiny object in {span:?}");
        let block = span.slot_addr(span.slot_of(a));
        assert!(
            a.offset_from(block) + size <= TINY_BLOCK,
            "tiny object crosses its block"
        );
        for i in 0..size {
            // SAFETY: the `size` bytes at `a` are ours.
            unsafe { a.as_mut_ptr::<u8>().add(i).write(tiny_byte(stamp, i)) };
        }
        return Rec {
            addr: a.as_usize(),
            len: size,
            end: a.as_usize() + size,
            block: Some(block.as_usize()),
            stamp,
            drop: false,
        };
    }
    let size = match r {
        3000..5000 => 16,
        5000..6500 => 32,
        6500..8000 => 64,
        8000..9778 => 200,
        9778..9998 => 5000,
        _ => 40_000 + 8 * rng.below(20_000) as usize,
    };
    let noscan = rng.below(2) == 0;
    let drop = drops && rng.below(4) == 0;
    // SAFETY: the header is written below, inside this operation.
    let a = unsafe {
        match size_class_for(size, 8) {
            Some(sc) => op.alloc(SpanClass::new(sc, noscan), drop),
            None => op.alloc_large(size, noscan, drop),
        }
    }
    .unwrap_or_else(|e| panic!("allocating {size} bytes failed: {e}"));
    assert!(a.is_aligned(8), "object {a:?} not 8-aligned");
    // SAFETY: just allocated inside our operation: no sweep can free it meanwhile.
    let span = unsafe { Heap::span_of(a) }.expect("object outside the heap");
    assert_eq!(
        span.slot_addr(span.slot_of(a)),
        a,
        "object not at a slot start"
    );
    assert!(span.elem_size() >= size, "slot too small");
    let desc = if drop { &DROP_DESC } else { &PLAIN_DESC };
    let w = a.as_mut_ptr::<u64>();
    // SAFETY: the slot is ours, 8-aligned and at least `size` bytes.
    unsafe {
        a.as_mut_ptr::<ObjectHeader>()
            .write(ObjectHeader::new(desc, 0));
        w.add(1).write(stamp);
        for j in 2..size / 8 {
            w.add(j).write(fill_word(stamp, j));
        }
    }
    if drop {
        registry().get_or_insert_with(HashMap::new).insert(
            stamp,
            DropRecord {
                addr: a.as_usize(),
                size,
                drops: 0,
                problems: Vec::new(),
            },
        );
    }
    Rec {
        addr: a.as_usize(),
        len: size,
        end: a.as_usize() + span.elem_size(),
        block: None,
        stamp,
        drop,
    }
}

/// Allocates `n` objects in operations of 1 to 64 allocations.
fn alloc_many(
    cache: &mut ThreadCache,
    rng: &mut XorShift64Star,
    n: usize,
    drops: bool,
) -> Vec<Rec> {
    alloc_in_ops(cache, rng, n, 64, drops)
}

/// Allocates `n` objects in operations of 1 to `max_per_op` allocations.
fn alloc_in_ops(
    cache: &mut ThreadCache,
    rng: &mut XorShift64Star,
    n: usize,
    max_per_op: u64,
    drops: bool,
) -> Vec<Rec> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let batch = (1 + rng.below(max_per_op) as usize).min(n - out.len());
        let mut op = cache.op();
        for _ in 0..batch {
            out.push(alloc_one(&mut op, rng, drops));
        }
    }
    out
}

/// Sorts by address and panics if two objects overlap.
fn assert_disjoint(objs: &mut [Rec]) {
    objs.sort_unstable_by_key(|o| o.addr);
    for w in objs.windows(2) {
        assert!(
            w[0].end <= w[1].addr,
            "objects overlap: [{:#x}, {:#x}) (stamp {:#x}) and [{:#x}, {:#x}) (stamp {:#x})",
            w[0].addr,
            w[0].end,
            w[0].stamp,
            w[1].addr,
            w[1].end,
            w[1].stamp
        );
    }
}

/// Slots (tiny blocks once) of `objs`.
fn slots(objs: &[Rec]) -> HashSet<usize> {
    objs.iter().map(Rec::slot).collect()
}

/// Checks `stats().objects`, `for_each_object` and the spans against exactly `live` (call with
/// no cache holding spans and no dead object left unreclaimed).
fn assert_heap_holds_exactly(heap: &Heap, live: &[Rec]) {
    let expected = slots(live);
    let st = heap.stats();
    assert_eq!(
        st.objects,
        expected.len(),
        "stats().objects disagrees with the {} live objects ({} slots)",
        live.len(),
        expected.len()
    );
    let mut found = HashSet::new();
    heap.for_each_object(|a, span| {
        assert!(span.contains(a));
        found.insert(a.as_usize());
    });
    assert!(
        found == expected,
        "for_each_object reports {} slots, expected {} ({} unexpected)",
        found.len(),
        expected.len(),
        found.difference(&expected).count()
    );
    for o in live {
        // SAFETY: the object is live; no sweep runs.
        let span = unsafe { Heap::span_of(o.start()) }.expect("live object outside the heap");
        assert!(
            !span.is_free(span.slot_of(o.start())),
            "live object in a free slot"
        );
    }
}

fn mark_all(heap: &Heap, objs: &[Rec]) {
    for o in objs {
        // SAFETY: the objects are live and no sweep is in progress.
        unsafe { heap.mark(o.start()) };
    }
}

fn sweep(heap: &Heap) {
    heap.begin_sweep();
    heap.finish_sweep();
}

/// Drops the heap's last handle and checks every object with drop glue among `all` was
/// dropped exactly once over the heap's life.
fn drop_heap_and_check_drops(heap: Heap, all: &[Rec]) {
    drop(heap);
    let mut reg = registry();
    let reg = reg.get_or_insert_with(HashMap::new);
    for o in all.iter().filter(|o| o.drop) {
        let rec = reg.remove(&o.stamp).expect("registered");
        assert_eq!(
            rec.drops, 1,
            "object {:#x} dropped {} times",
            o.stamp, rec.drops
        );
        assert!(rec.problems.is_empty(), "bad drop: {:?}", rec.problems);
    }
}

/// Locks a test mutex, ignoring poisoning (a panicking thread fails the test anyway).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Round synchronisation between the main thread and the allocating threads that cannot hang:
/// if any side panics, the others stop waiting (the threads return, the main thread panics).
#[derive(Default)]
struct Rounds {
    state: Mutex<RoundState>,
    cv: Condvar,
}

#[derive(Default)]
struct RoundState {
    /// Rounds started so far.
    started: usize,
    /// Thread-rounds finished so far.
    done: usize,
    aborted: bool,
}

impl Rounds {
    /// Main thread: lets the threads run round `r`.
    fn start(&self, r: usize) {
        lock(&self.state).started = r + 1;
        self.cv.notify_all();
    }

    /// Allocating thread: waits for round `r`; false if the test is aborting.
    fn wait_start(&self, r: usize) -> bool {
        let mut st = lock(&self.state);
        while st.started <= r && !st.aborted {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        !st.aborted
    }

    /// Allocating thread: reports its round done.
    fn finish(&self) {
        lock(&self.state).done += 1;
        self.cv.notify_all();
    }

    /// Main thread: waits until `n` thread-rounds are done.
    fn wait_done(&self, n: usize) {
        let mut st = lock(&self.state);
        while st.done < n && !st.aborted {
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        assert!(!st.aborted, "an allocating thread panicked");
    }
}

/// Aborts the rounds if its thread panics.
struct AbortOnPanic<'a>(&'a Rounds);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            lock(&self.0.state).aborted = true;
            self.0.cv.notify_all();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// Four threads allocate 50 000 objects each at once; nothing overlaps, nothing is corrupted,
/// and the heap's counts match once the caches are gone.
#[test]
fn concurrent_allocations_are_disjoint_and_intact() {
    const PER_THREAD: usize = 50_000;
    let heap = Heap::default();
    let mut all: Vec<Rec> = thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let heap = &heap;
                s.spawn(move || {
                    let mut cache = heap.cache();
                    let mut rng = XorShift64Star::new(0xA110C + t as u64);
                    alloc_many(&mut cache, &mut rng, PER_THREAD, false)
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("allocating thread panicked"))
            .collect()
    });
    assert_eq!(all.len(), THREADS * PER_THREAD);
    assert_disjoint(&mut all);
    for o in &all {
        o.check(true);
    }
    // The caches died with their threads: the counts are exact without any flush.
    assert_heap_holds_exactly(&heap, &all);
    heap.verify();
    assert_eq!(heap.stats().objects_freed, 0);
}

/// Rounds of: every thread allocates a batch and publishes it; the main thread keeps every
/// other object (marking it) and sweeps while the threads allocate the next batch, with
/// allocate-black on until the sweep starts. Kept objects stay intact, objects allocated
/// during a sweep survive it, and every unkept object with drop glue is dropped exactly once,
/// by the sweep that follows.
#[test]
fn sweeps_concurrent_with_allocation_keep_marked_and_new_objects() {
    const ROUNDS: usize = 10;
    const BATCH: usize = 4000;
    let heap = Heap::default();
    let rounds = Rounds::default();
    let published: Mutex<Vec<Vec<Rec>>> = Mutex::new(Vec::new());
    let mut kept: Vec<Rec> = Vec::new();
    let mut everything: Vec<Rec> = Vec::new();
    // Unkept objects with drop glue, waiting for the next sweep to drop them.
    let mut condemned: Vec<Rec> = Vec::new();
    thread::scope(|s| {
        for t in 0..THREADS {
            let (heap, rounds, published) = (&heap, &rounds, &published);
            s.spawn(move || {
                let _abort = AbortOnPanic(rounds);
                let mut cache = heap.cache();
                let mut rng = XorShift64Star::new(0x5EED + t as u64);
                for r in 0..ROUNDS {
                    if !rounds.wait_start(r) {
                        return;
                    }
                    let batch = alloc_many(&mut cache, &mut rng, BATCH, true);
                    lock(published).push(batch);
                    rounds.finish();
                }
            });
        }
        let _abort = AbortOnPanic(&rounds);
        for r in 0..ROUNDS {
            if r > 0 {
                // Objects allocated before the sweep starts are born marked.
                heap.set_black(true);
            }
            rounds.start(r);
            if r > 0 {
                // The threads are allocating batch r meanwhile.
                heap.begin_sweep();
                while heap.sweep_one() {}
                heap.finish_sweep();
                for o in &condemned {
                    assert_eq!(
                        drop_count(o.stamp),
                        1,
                        "unmarked object {:#x} not dropped exactly once by the sweep",
                        o.stamp
                    );
                }
                condemned.clear();
                for o in &kept {
                    o.check(false);
                    assert!(
                        !o.drop || drop_count(o.stamp) == 0,
                        "a marked object was dropped"
                    );
                }
            }
            rounds.wait_done((r + 1) * THREADS);
            // The threads wait for the next round: the heap is quiet.
            heap.verify();
            let batches = core::mem::take(&mut *lock(&published));
            let mut live = kept.clone();
            for batch in batches {
                for (i, o) in batch.into_iter().enumerate() {
                    // Allocated during a sweep or before it (black): alive and intact.
                    o.check(true);
                    assert!(
                        !o.drop || drop_count(o.stamp) == 0,
                        "object {:#x} allocated around a sweep was dropped by it",
                        o.stamp
                    );
                    everything.push(o);
                    live.push(o);
                    if i % 2 == 0 {
                        kept.push(o);
                    } else if o.drop {
                        condemned.push(o);
                    }
                }
            }
            assert_disjoint(&mut live);
            mark_all(&heap, &kept);
        }
    });
    // The threads are gone (their caches with them). The last batch's unkept objects die now.
    sweep(&heap);
    for o in &condemned {
        assert_eq!(
            drop_count(o.stamp),
            1,
            "unmarked object not dropped exactly once"
        );
    }
    for o in &kept {
        o.check(true);
    }
    // One more sweep with everything kept marked reclaims the dropped objects' slots.
    mark_all(&heap, &kept);
    sweep(&heap);
    heap.verify();
    assert_heap_holds_exactly(&heap, &kept);
    for o in &kept {
        o.check(true);
        assert!(!o.drop || drop_count(o.stamp) == 0, "kept object dropped");
    }
    // Unmark everything: two sweeps empty the heap (drops, then their slots).
    sweep(&heap);
    sweep(&heap);
    let st = heap.stats();
    assert_eq!(st.objects, 0, "objects left after everything died");
    assert_eq!(
        st.dropped_unreclaimed, 0,
        "dropped objects left unreclaimed"
    );
    assert_eq!(st.spans, 0, "spans left after everything died");
    assert_eq!(st.drop_panics, 0);
    heap.verify();
    drop_heap_and_check_drops(heap, &everything);
}

thread_local! {
    /// A thread's cache kept in a thread-local, as a runtime would: dropped at thread exit.
    static CACHE: RefCell<Option<ThreadCache>> = const { RefCell::new(None) };
}

/// A thread allocates through a thread-local cache and exits; its objects stay allocated and
/// intact, the cache gave its spans back, and the objects survive a sweep that marks them.
#[test]
fn objects_outlive_the_thread_and_cache_that_allocated_them() {
    let heap = Heap::default();
    let h = heap.clone();
    let objs = thread::spawn(move || {
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            let cache = c.insert(h.cache());
            let mut rng = XorShift64Star::new(0xE417);
            alloc_many(cache, &mut rng, 20_000, true)
        })
    })
    .join()
    .expect("allocating thread panicked");
    // The thread-local cache was dropped at thread exit and gave its spans back: the counts
    // are exact without any flush (a cache still holding spans would count their free slots).
    assert_heap_holds_exactly(&heap, &objs);
    heap.verify();
    for o in &objs {
        o.check(true);
    }
    mark_all(&heap, &objs);
    sweep(&heap);
    assert_heap_holds_exactly(&heap, &objs);
    for o in &objs {
        o.check(true);
        assert!(!o.drop || drop_count(o.stamp) == 0, "marked object dropped");
    }
    // Unmarked now: dropped by the next sweep, reclaimed by the one after.
    sweep(&heap);
    for o in objs.iter().filter(|o| o.drop) {
        assert_eq!(drop_count(o.stamp), 1, "dead object not dropped once");
    }
    sweep(&heap);
    assert_eq!(heap.stats().objects, 0);
    heap.verify();
    drop_heap_and_check_drops(heap, &objs);
}

/// Allocates when dropped; used as a thread-local whose destructor runs at thread exit.
struct AllocOnExit {
    heap: Heap,
    out: mpsc::Sender<Vec<Rec>>,
    seed: u64,
}

impl Drop for AllocOnExit {
    fn drop(&mut self) {
        let mut cache = self.heap.cache();
        let mut rng = XorShift64Star::new(self.seed);
        let objs = alloc_many(&mut cache, &mut rng, 5_000, true);
        drop(cache);
        // The receiver lives until the test has joined the thread.
        self.out.send(objs).expect("test thread gone");
    }
}

thread_local! {
    // Used first and last by the thread below: where thread-local destructors run in reverse
    // order of first use (as on Linux), `ON_EXIT_LAST` runs after the thread's `CACHE` is gone
    // and `ON_EXIT_FIRST` before.
    static ON_EXIT_LAST: RefCell<Option<AllocOnExit>> = const { RefCell::new(None) };
    static ON_EXIT_FIRST: RefCell<Option<AllocOnExit>> = const { RefCell::new(None) };
}

/// A thread-local destructor running during thread exit (after or before the thread's own
/// thread-local cache is dropped) creates a cache and allocates; the objects are fine.
#[test]
fn allocation_from_a_thread_local_destructor_at_thread_exit() {
    let heap = Heap::default();
    let (tx, rx) = mpsc::channel();
    let h = heap.clone();
    let before = thread::spawn(move || {
        // All three thread-locals are destroyed at exit, in an order the platform chooses.
        ON_EXIT_LAST.with(|e| {
            *e.borrow_mut() = Some(AllocOnExit {
                heap: h.clone(),
                out: tx.clone(),
                seed: 0xD7,
            })
        });
        let objs = CACHE.with(|c| {
            let mut c = c.borrow_mut();
            let cache = c.insert(h.cache());
            let mut rng = XorShift64Star::new(0xB4);
            alloc_many(cache, &mut rng, 5_000, true)
        });
        ON_EXIT_FIRST.with(|e| {
            *e.borrow_mut() = Some(AllocOnExit {
                heap: h,
                out: tx,
                seed: 0xD8,
            })
        });
        objs
    })
    .join()
    .expect("thread panicked (or its thread-local destructor did)");
    let mut all: Vec<Rec> = before;
    for _ in 0..2 {
        let during_exit = rx.recv().expect("a thread-local destructor did not run");
        assert_eq!(during_exit.len(), 5_000);
        all.extend(during_exit);
    }
    assert_disjoint(&mut all);
    for o in &all {
        o.check(true);
    }
    assert_heap_holds_exactly(&heap, &all);
    heap.verify();
    mark_all(&heap, &all);
    sweep(&heap);
    for o in &all {
        o.check(true);
        assert!(!o.drop || drop_count(o.stamp) == 0, "marked object dropped");
    }
    assert_heap_holds_exactly(&heap, &all);
    drop_heap_and_check_drops(heap, &all);
}

/// While threads allocate, the collector keeps taking their caches away (`finish_sweep` with no
/// sweep pending claims every idle cache and gives its spans back). Nothing allocated before,
/// during or after a claim overlaps or is lost. (The races this looks for are narrow: the test
/// repeats on fresh heaps with short operations to meet them more often.)
#[test]
fn collector_flushes_caches_while_threads_allocate() {
    const REPEATS: u64 = 4;
    const PER_THREAD: usize = 20_000;
    for repeat in 0..REPEATS {
        let heap = Heap::default();
        let running = AtomicU64::new(THREADS as u64);
        let mut all: Vec<Rec> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (heap, running) = (&heap, &running);
                    s.spawn(move || {
                        let mut cache = heap.cache();
                        let mut rng = XorShift64Star::new(0xF1 + 16 * repeat + t as u64);
                        // Short operations: many entries racing with the collector's claims.
                        let objs = alloc_in_ops(&mut cache, &mut rng, PER_THREAD, 4, false);
                        running.fetch_sub(1, Ordering::Release);
                        objs
                    })
                })
                .collect();
            loop {
                heap.finish_sweep();
                if running.load(Ordering::Acquire) == 0 {
                    break;
                }
            }
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("allocating thread panicked"))
                .collect()
        });
        assert_disjoint(&mut all);
        for o in &all {
            o.check(true);
        }
        assert_heap_holds_exactly(&heap, &all);
        heap.verify();
    }
}

/// `set_black` returns only once every allocation that may have read the old setting has
/// finished: an allocation that completes after `set_black(on)` returned (and before the next
/// change starts) is marked exactly when `on`.
#[test]
fn set_black_waits_for_allocations_in_progress() {
    const TOGGLES: u64 = 1000;
    let heap = Heap::default();
    // 2k: stable with black off, 2k + 1: stable with black on, u64::MAX: changing.
    let phase = AtomicU64::new(0);
    let stop = AtomicU64::new(0);
    // Operations the allocating thread has finished.
    let progress = AtomicU64::new(0);
    let checked = thread::scope(|s| {
        let (heap, phase, stop, progress) = (&heap, &phase, &stop, &progress);
        let allocator = s.spawn(move || {
            let class = SpanClass::new(size_class_for(16, 8).unwrap(), true);
            let mut cache = heap.cache();
            let mut checked = 0u64;
            while stop.load(Ordering::Acquire) == 0 {
                let mut op = cache.op();
                for _ in 0..8 {
                    // SAFETY: no drop glue; nothing reads the slot.
                    let a = unsafe { op.alloc(class, false) }.expect("alloc");
                    let p = phase.load(Ordering::Acquire);
                    if p != u64::MAX {
                        // SAFETY: just allocated in our operation; no sweep runs in this test.
                        let marked = unsafe { heap.is_marked(a) };
                        assert_eq!(
                            marked,
                            p % 2 == 1,
                            "an allocation finishing after set_black({}) returned was born {}",
                            p % 2 == 1,
                            if marked { "black" } else { "white" }
                        );
                        checked += 1;
                    }
                }
                drop(op);
                progress.fetch_add(1, Ordering::Release);
            }
            checked
        });
        // Lets the allocating thread finish at least one more operation (unless it died).
        let wait_for_progress = || {
            let seen = progress.load(Ordering::Acquire);
            while progress.load(Ordering::Acquire) == seen && !allocator.is_finished() {
                thread::yield_now();
            }
        };
        wait_for_progress();
        for k in 1..=TOGGLES {
            phase.store(u64::MAX, Ordering::Release);
            heap.set_black(k % 2 == 1);
            phase.store(k, Ordering::Release);
            wait_for_progress();
        }
        stop.store(1, Ordering::Release);
        allocator.join().expect("allocating thread panicked")
    });
    assert!(checked > 0, "no allocation was checked");
}
