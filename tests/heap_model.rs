//! Model-based test of the heap's allocate / mark / sweep cycle (`gc_core::heap`).
//!
//! A proptest generates sequences of operations (allocations of every kind: tiny objects of 0
//! to 15 bytes, size-classed objects from 16 bytes to 32 KiB, scan or noscan, with or without
//! drop glue, and large objects over 32 KiB; marking; complete and lazy sweeps; `sweep_one`;
//! cache flushes; allocate-black on and off) and runs each both on a fresh [`Heap`] and on a
//! reference model: the set of live objects, each with its address range, its unique 8-byte
//! stamp and whether it is marked.
//!
//! The invariants checked (after every operation unless said otherwise):
//!
//! - **No overlap**: no allocation overlaps a live object (tiny objects by byte range, headed
//!   objects by slot), nor the slot of a dead object whose drop has not been reclaimed yet. So a
//!   slot is reused only after a sweep found it unmarked.
//! - **Placement**: every object is aligned (8 bytes, its requested alignment, or a page for large
//!   objects), lies inside a span of the expected class that `Heap::span_of` finds, and starts
//!   its slot.
//! - **Integrity**: every live object's content (header word, stamp, fill pattern) is intact:
//!   the heap never writes into a live object, not even when sweeping its neighbours.
//! - **Sweep verdict**: a sweep frees exactly the objects that were neither marked nor born
//!   black (a tiny block lives and dies as one: marking any object in it keeps all of them).
//! - **Drops**: an object with drop glue is dropped exactly once, only after a sweep found it
//!   unmarked, only by `finish_sweep`/`run_pending_drops` (never inside an allocation or
//!   `sweep_one`), while its content is still intact; its slot stays allocated until the next
//!   sweep. Whatever is still alive when the heap is dropped is dropped then, once.
//! - **Accounting**: `heap.verify()` passes; after a cache flush `stats().objects` equals the
//!   model's count (headed objects, dead objects awaiting reclamation, and one per tiny block),
//!   `objects_freed` and `objects_dropped` match, `for_each_object` reports exactly the model's
//!   slots, and the mark bits agree with the model.
//!
//! A sweep started lazily (`BeginSweep { finish: false }`) is advanced by `SweepOne` and by the
//! allocations themselves (sweep before reuse); while it is in progress the model only knows
//! bounds (which dead objects are already freed depends on which spans were swept), and a
//! `Mark` first finishes it, as a collector finishes sweeping before it starts marking.
//!
//! Half the cases run the full check (which flushes the cache and calls `heap.verify()`) after
//! every operation; the other half run it only after flushes and sweeps, so that spans and tiny
//! blocks stay cached across operations. `PROPTEST_CASES` overrides the number of cases (256;
//! 12 under Miri, with at most 16 operations per case).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use gc_core::heap::{
    size_class_for, Address, Heap, Span, SpanClass, ThreadCache, PAGE_SIZE, TINY_BLOCK,
};
use gc_core::ptr::header::{ObjectHeader, TypeDescriptor};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::Config;

// ---------------------------------------------------------------------------------------------
// Stamps and object contents
// ---------------------------------------------------------------------------------------------

/// Source of stamps, unique across every test in this binary (tests run in parallel and share
/// the drop registry below).
static NEXT_STAMP: AtomicU64 = AtomicU64::new(1);

/// A fresh stamp: splitmix64's finaliser of a counter, a bijection, so stamps never repeat.
fn new_stamp() -> u64 {
    let mut z = NEXT_STAMP
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `j` (≥ 2) of a headed object with this stamp. Word 0 is the header, word 1 the stamp.
fn fill_word(stamp: u64, j: usize) -> u64 {
    (stamp ^ (j as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).rotate_left(j as u32 % 64)
}

/// Byte `i` of a tiny object with this stamp: its first 8 bytes are the stamp (little endian).
fn tiny_byte(stamp: u64, i: usize) -> u8 {
    (stamp >> (8 * (i % 8))) as u8 ^ ((i / 8) as u8).wrapping_mul(0x3D)
}

/// Writes the stamp and fill pattern of a headed object of `size` bytes (header excluded).
///
/// # Safety
///
/// - `a` is the start of an allocated object of at least `size` bytes, a multiple of 8, ≥ 16.
unsafe fn fill_headed(a: Address, size: usize, stamp: u64) {
    let w = a.as_mut_ptr::<u64>();
    // SAFETY: words 1..size/8 lie inside the object (caller's contract) and are 8-aligned.
    unsafe {
        w.add(1).write(stamp);
        for j in 2..size / 8 {
            w.add(j).write(fill_word(stamp, j));
        }
    }
}

/// Checks a headed object's stamp and fill pattern: every word if `full`, else the stamp and
/// the last word. Returns a description of the first difference.
///
/// # Safety
///
/// - `a` is the start of a committed object of at least `size` bytes (a multiple of 8, ≥ 16)
///   that nobody writes concurrently.
unsafe fn check_headed(a: usize, size: usize, stamp: u64, full: bool) -> Result<(), String> {
    let w = Address::new(a).as_mut_ptr::<u64>().cast_const();
    let last = size / 8 - 1;
    // SAFETY: word 1 lies inside the object (caller's contract).
    let got = unsafe { w.add(1).read() };
    if got != stamp {
        return Err(format!("stamp at {a:#x} is {got:#x}, expected {stamp:#x}"));
    }
    let words: Box<dyn Iterator<Item = usize>> = if full {
        Box::new(2..=last)
    } else {
        Box::new((last >= 2).then_some(last).into_iter())
    };
    for j in words {
        // SAFETY: j ≤ last, inside the object.
        let got = unsafe { w.add(j).read() };
        if got != fill_word(stamp, j) {
            return Err(format!(
                "word {j} of the {size}-byte object at {a:#x} (stamp {stamp:#x}) is {got:#x}, \
                 expected {:#x}",
                fill_word(stamp, j)
            ));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Drop glue and its registry
// ---------------------------------------------------------------------------------------------

/// What the test knows about an object with drop glue, by stamp.
#[derive(Debug)]
struct DropRecord {
    addr: usize,
    size: usize,
    drops: u32,
    /// Problems the drop function found (wrong address, corrupted content).
    problems: Vec<String>,
}

static DROP_REGISTRY: Mutex<Option<HashMap<u64, DropRecord>>> = Mutex::new(None);
/// Drops of objects the registry does not know (a stamp overwritten before the drop ran).
static UNKNOWN_DROPS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Option<HashMap<u64, DropRecord>>> {
    DROP_REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn drop_count(stamp: u64) -> u32 {
    registry()
        .as_ref()
        .and_then(|r| r.get(&stamp))
        .map_or(0, |r| r.drops)
}

/// The drop function of [`DROP_DESC`]: counts the drop by stamp and checks the content. Never
/// panics (the heap would only count the panic); problems are recorded for the test to report.
///
/// # Safety
///
/// - `p` is the header address of an object allocated by this test with [`DROP_DESC`] (at least
///   16 bytes: header and stamp).
unsafe fn drop_stamped(p: *mut u8) {
    // SAFETY: the object has at least two words (caller's contract).
    let stamp = unsafe { p.cast::<u64>().add(1).read() };
    let mut reg = registry();
    let Some(rec) = reg.get_or_insert_with(HashMap::new).get_mut(&stamp) else {
        drop(reg);
        UNKNOWN_DROPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(format!("drop of {p:p} whose stamp {stamp:#x} is unknown"));
        return;
    };
    rec.drops += 1;
    if rec.addr != p as usize {
        rec.problems.push(format!(
            "dropped at {p:p}, but the object was allocated at {:#x}",
            rec.addr
        ));
    // SAFETY: the record says the object at `p` has `rec.size` bytes; it is dead, so nobody
    // writes it while it is dropped.
    } else if let Err(e) = unsafe { check_headed(rec.addr, rec.size, stamp, true) } {
        rec.problems
            .push(format!("content corrupted before its drop: {e}"));
    }
}

static DROP_DESC: TypeDescriptor = TypeDescriptor {
    trace: None,
    drop: Some(drop_stamped),
    size: 16,
    align: 8,
    name: || "heap_model::Stamped",
};

static PLAIN_DESC: TypeDescriptor = TypeDescriptor {
    trace: None,
    drop: None,
    size: 16,
    align: 8,
    name: || "heap_model::Plain",
};

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

const SMALL_SIZES: &[usize] = &[
    16, 24, 32, 48, 64, 80, 128, 200, 256, 512, 1000, 2048, 4096, 5000, 10_000, 32_768,
];
const LARGE_SIZES: &[usize] = if cfg!(miri) {
    &[32_776, 40_000]
} else {
    &[32_776, 40_000, 100_000, 300_000]
};
const OBJECT_ALIGNS: &[usize] = &[8, 16, 64, 256, 4096];

#[derive(Clone, Copy, Debug)]
enum AllocKind {
    /// `alloc_tiny(size, align)`.
    Tiny { size: usize, align: usize },
    /// A headed object of at most 32 KiB: `alloc` with the 8-aligned class, or `alloc_object`
    /// with `align`.
    Small {
        size: usize,
        noscan: bool,
        drop: bool,
        via_object: bool,
        align: usize,
    },
    /// A headed object over 32 KiB: `alloc_large`, or `alloc_object`.
    Large {
        size: usize,
        noscan: bool,
        drop: bool,
        via_object: bool,
    },
}

#[derive(Clone, Debug)]
enum Op {
    /// Allocates `count` objects of one kind in one cache operation.
    Alloc { kind: AllocKind, count: usize },
    /// Marks one live object.
    Mark(Index),
    /// Marks every `stride`-th live object from `start` on.
    MarkStride { start: Index, stride: usize },
    /// `begin_sweep`, then `finish_sweep` if `finish`.
    BeginSweep { finish: bool },
    /// `sweep_one`; once it finds nothing left, `run_pending_drops` ends the sweep.
    SweepOne,
    /// `cache.flush()`.
    Flush,
    /// `set_black`.
    SetBlack(bool),
}

fn alloc_kind() -> impl Strategy<Value = AllocKind> {
    prop_oneof![
        3 => (0usize..16, prop::sample::select(&[1usize, 2, 4, 8][..]))
            .prop_map(|(size, align)| AllocKind::Tiny { size, align }),
        6 => (
            prop::sample::select(SMALL_SIZES),
            any::<bool>(),
            prop::bool::weighted(0.3),
            prop::bool::weighted(0.25),
            prop::sample::select(OBJECT_ALIGNS),
        )
            .prop_map(|(size, noscan, drop, via_object, align)| AllocKind::Small {
                size,
                noscan,
                drop,
                via_object,
                align,
            }),
        1 => (
            prop::sample::select(LARGE_SIZES),
            any::<bool>(),
            prop::bool::weighted(0.3),
            any::<bool>(),
        )
            .prop_map(|(size, noscan, drop, via_object)| AllocKind::Large {
                size,
                noscan,
                drop,
                via_object,
            }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (alloc_kind(), prop_oneof![9 => 1usize..=4, 1 => 16usize..=MAX_BATCH]).prop_map(
            |(kind, count)| {
                // Large objects are expensive to fill: at most two per operation.
                let count = if matches!(kind, AllocKind::Large { .. }) { count.min(2) } else { count };
                Op::Alloc { kind, count }
            }
        ),
        5 => any::<Index>().prop_map(Op::Mark),
        1 => (any::<Index>(), 1usize..=4)
            .prop_map(|(start, stride)| Op::MarkStride { start, stride }),
        2 => prop::bool::weighted(0.6).prop_map(|finish| Op::BeginSweep { finish }),
        2 => Just(Op::SweepOne),
        1 => Just(Op::Flush),
        1 => any::<bool>().prop_map(Op::SetBlack),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Obj {
    stamp: u64,
    addr: usize,
    /// Bytes the test owns and wrote (a tiny object of size 0 still gets its one byte).
    len: usize,
    /// Tiny objects: their block. Headed objects: `None`.
    block: Option<usize>,
    /// Headed objects: end of the slot (the object owns the whole slot).
    slot_end: usize,
    class: SpanClass,
    drop: bool,
    /// Headed objects: the header word as written.
    header: u64,
    /// Headed objects: marked (or born black) this cycle. Tiny objects use the block's mark.
    marked: bool,
}

impl Obj {
    fn start(&self) -> Address {
        Address::new(self.addr)
    }

    /// Checks the content: the header word, then the stamp and pattern.
    fn check_content(&self, full: bool) -> Result<(), String> {
        if self.block.is_some() {
            for i in 0..self.len {
                // SAFETY: the object is live (the model says so, and the heap is checked to
                // agree), `len` bytes long, and only this thread touches it.
                let got = unsafe { Address::new(self.addr).as_mut_ptr::<u8>().add(i).read() };
                if got != tiny_byte(self.stamp, i) {
                    return Err(format!(
                        "byte {i} of the {}-byte tiny object at {:#x} (stamp {:#x}) is {got:#x}, \
                         expected {:#x}",
                        self.len,
                        self.addr,
                        self.stamp,
                        tiny_byte(self.stamp, i)
                    ));
                }
            }
            return Ok(());
        }
        // SAFETY: as above; headed objects have at least 16 bytes.
        let header = unsafe { Address::new(self.addr).as_mut_ptr::<u64>().read() };
        if header != self.header {
            return Err(format!(
                "the header of the live object at {:#x} (stamp {:#x}) changed from {:#x} to \
                 {header:#x}",
                self.addr, self.stamp, self.header
            ));
        }
        // SAFETY: as above.
        unsafe { check_headed(self.addr, self.len, self.stamp, full) }
    }
}

/// What a sweep in progress will have done once finished.
#[derive(Debug, Default)]
struct SweepInProgress {
    /// Objects (tiny blocks counted once) this sweep frees.
    freed: u64,
    /// Slot addresses (tiny blocks) the sweep may free: not live, but reported by
    /// `for_each_object` until their span is swept.
    doomed: Vec<usize>,
    /// Stamps of the objects with drop glue it found dead; their drops run when it finishes.
    drops_due: Vec<u64>,
}

#[derive(Debug, Default)]
struct Model {
    /// Live objects, in allocation order (the survivors of a sweep keep their order).
    live: Vec<Obj>,
    /// Every range a new allocation must not touch: live objects, and the slots of dead
    /// objects with drop glue (until the sweep after the one that found them dead). Start →
    /// (end, stamp).
    occupied: BTreeMap<usize, (usize, u64)>,
    /// Dead objects with drop glue still holding their slots.
    zombies: Vec<Obj>,
    /// Marked tiny blocks.
    tiny_marks: HashSet<usize>,
    black: bool,
    sweep: Option<SweepInProgress>,
    /// Cumulative `objects_freed` and `objects_dropped`.
    freed: u64,
    dropped: u64,
    /// Stamps whose drop has run (must stay at exactly one drop).
    dropped_stamps: Vec<u64>,
    /// Every stamp with drop glue allocated in this case.
    drop_stamps: Vec<u64>,
}

impl Model {
    fn claim(&mut self, start: usize, end: usize, stamp: u64) {
        if let Some((&s, &(e, other))) = self.occupied.range(..end).next_back() {
            assert!(
                e <= start,
                "the new object [{start:#x}, {end:#x}) (stamp {stamp:#x}) overlaps the live \
                 object or unreclaimed slot [{s:#x}, {e:#x}) (stamp {other:#x})"
            );
        }
        self.occupied.insert(start, (end, stamp));
    }

    fn is_marked(&self, o: &Obj) -> bool {
        match o.block {
            Some(b) => self.tiny_marks.contains(&b),
            None => o.marked,
        }
    }

    /// Tiny blocks holding live objects.
    fn live_blocks(&self) -> HashSet<usize> {
        self.live.iter().filter_map(|o| o.block).collect()
    }

    /// Objects `stats().objects` counts after a flush, once no sweep is in progress.
    fn object_count(&self) -> usize {
        let headed = self.live.iter().filter(|o| o.block.is_none()).count();
        headed + self.zombies.len() + self.live_blocks().len()
    }

    /// The model's side of `begin_sweep` (after the previous sweep was finished).
    fn begin_sweep(&mut self) {
        assert!(self.sweep.is_none(), "model: sweep already in progress");
        let mut s = SweepInProgress::default();
        // Slots of objects dropped after the previous sweep are reclaimed by this one.
        for z in core::mem::take(&mut self.zombies) {
            self.occupied.remove(&z.addr);
            s.freed += 1;
            s.doomed.push(z.addr);
        }
        let mut dead_blocks = HashSet::new();
        for mut o in core::mem::take(&mut self.live) {
            if self.is_marked(&o) {
                o.marked = false;
                self.live.push(o);
                continue;
            }
            if let Some(b) = o.block {
                self.occupied.remove(&o.addr);
                dead_blocks.insert(b);
            } else if o.drop {
                // Keeps its slot until the next sweep.
                s.drops_due.push(o.stamp);
                self.zombies.push(o);
            } else {
                self.occupied.remove(&o.addr);
                s.freed += 1;
                s.doomed.push(o.addr);
            }
        }
        s.freed += dead_blocks.len() as u64;
        s.doomed.extend(dead_blocks);
        self.tiny_marks.clear();
        self.black = false;
        self.sweep = Some(s);
    }

    /// The model's side of the end of a sweep (every span swept, pending drops run).
    fn finish_sweep(&mut self) {
        if let Some(s) = self.sweep.take() {
            self.freed += s.freed;
            self.dropped += s.drops_due.len() as u64;
            self.dropped_stamps.extend(s.drops_due);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: one heap, one cache, one model
// ---------------------------------------------------------------------------------------------

struct Harness {
    heap: Heap,
    cache: ThreadCache,
    model: Model,
    verify_every_op: bool,
}

/// Finds the span of a live object and checks the object lies inside it.
///
/// # Safety
///
/// - `o` is live per the model (allocated and not freed by any sweep), and no sweep runs.
unsafe fn span_of_live<'a>(o: &Obj) -> &'a Span {
    // SAFETY: the caller's contract: the object is allocated and no sweep can free it.
    let span = unsafe { Heap::span_of(o.start()) }.unwrap_or_else(|| {
        panic!(
            "Heap::span_of finds no span for the live object at {:#x} (stamp {:#x})",
            o.addr, o.stamp
        )
    });
    assert!(
        span.contains(o.start()) && span.contains(o.start().add(o.len - 1)),
        "the object [{:#x}, +{}) is not inside its span {span:?}",
        o.addr,
        o.len
    );
    assert_eq!(
        span.class(),
        o.class,
        "the object at {:#x} is in a span of the wrong class",
        o.addr
    );
    span
}

impl Harness {
    fn new(verify_every_op: bool) -> Self {
        let heap = Heap::default();
        let cache = heap.cache();
        Harness {
            heap,
            cache,
            model: Model::default(),
            verify_every_op,
        }
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Alloc { kind, count } => self.alloc(kind, count),
            Op::Mark(i) => {
                self.finish_lazy_sweep();
                if !self.model.live.is_empty() {
                    self.mark(i.index(self.model.live.len()));
                }
            }
            Op::MarkStride { start, stride } => {
                self.finish_lazy_sweep();
                if !self.model.live.is_empty() {
                    let n = self.model.live.len();
                    for i in (start.index(n)..n).step_by(stride) {
                        self.mark(i);
                    }
                }
            }
            Op::BeginSweep { finish } => {
                // `begin_sweep` finishes a sweep still in progress first.
                self.heap.begin_sweep();
                self.model.finish_sweep();
                self.model.begin_sweep();
                assert!(
                    !self.cache.op().is_black(),
                    "begin_sweep turns allocate-black off"
                );
                if finish {
                    self.heap.finish_sweep();
                    self.model.finish_sweep();
                    self.full_check();
                }
            }
            Op::SweepOne => {
                let swept = self.heap.sweep_one();
                match &self.model.sweep {
                    None => assert!(
                        !swept,
                        "sweep_one found a span to sweep although every span was swept"
                    ),
                    Some(s) if !swept => {
                        // Every span is swept: only the queued drops are left.
                        let due = s.drops_due.len();
                        for &stamp in &s.drops_due {
                            assert_eq!(
                                drop_count(stamp),
                                0,
                                "object {stamp:#x} was dropped before run_pending_drops"
                            );
                        }
                        let ran = self.heap.run_pending_drops();
                        assert_eq!(
                            ran, due,
                            "run_pending_drops ran {ran} drops, but the sweep found {due} dead \
                             objects with drop glue"
                        );
                        self.model.finish_sweep();
                        self.full_check();
                    }
                    Some(_) => {}
                }
            }
            Op::Flush => {
                self.cache.flush();
                self.full_check();
            }
            Op::SetBlack(on) => {
                self.heap.set_black(on);
                self.model.black = on;
            }
        }
        if self.verify_every_op {
            self.full_check();
        } else {
            self.cheap_check();
        }
    }

    /// Finishes a lazy sweep (before marking, as a collector does).
    fn finish_lazy_sweep(&mut self) {
        if self.model.sweep.is_some() {
            self.heap.finish_sweep();
            self.model.finish_sweep();
        }
    }

    fn mark(&mut self, i: usize) {
        let o = &self.model.live[i];
        let was = self.model.is_marked(o);
        // SAFETY: the object is live and no sweep is in progress.
        let newly = unsafe { self.heap.mark(o.start()) };
        assert_eq!(
            newly,
            !was,
            "mark({:#x}) returned {newly}, but the object (or its tiny block) was {}marked",
            o.addr,
            if was { "" } else { "not " }
        );
        match o.block {
            Some(b) => {
                self.model.tiny_marks.insert(b);
            }
            None => self.model.live[i].marked = true,
        }
    }

    fn alloc(&mut self, kind: AllocKind, count: usize) {
        let model = &mut self.model;
        let mut op = self.cache.op();
        for _ in 0..count {
            let stamp = new_stamp();
            match kind {
                AllocKind::Tiny { size, align } => {
                    // SAFETY: tiny objects need no drop and hold no handle.
                    let a = unsafe { op.alloc_tiny(size, align) }
                        .unwrap_or_else(|e| panic!("alloc_tiny({size}, {align}) failed: {e}"));
                    let len = size.max(1);
                    assert!(
                        !a.is_null() && a.is_aligned(align),
                        "alloc_tiny({size}, {align}) returned the misaligned address {a:?}"
                    );
                    // SAFETY: just allocated inside our operation: no sweep can free it.
                    let span = unsafe { Heap::span_of(a) }
                        .unwrap_or_else(|| panic!("no span holds the tiny object at {a:?}"));
                    assert!(span.class().is_tiny(), "tiny object in {span:?}");
                    let block = span.slot_addr(span.slot_of(a));
                    assert!(
                        a.offset_from(block) + len <= TINY_BLOCK,
                        "tiny object {a:?} of {len} bytes crosses the end of its block {block:?}"
                    );
                    model.claim(a.as_usize(), a.as_usize() + len, stamp);
                    for i in 0..len {
                        // SAFETY: the `len` bytes at `a` were just handed to us.
                        unsafe { a.as_mut_ptr::<u8>().add(i).write(tiny_byte(stamp, i)) };
                    }
                    if model.black {
                        model.tiny_marks.insert(block.as_usize());
                    }
                    model.live.push(Obj {
                        stamp,
                        addr: a.as_usize(),
                        len,
                        block: Some(block.as_usize()),
                        slot_end: block.as_usize() + TINY_BLOCK,
                        class: SpanClass::TINY,
                        drop: false,
                        header: 0,
                        marked: false,
                    });
                }
                AllocKind::Small {
                    size,
                    noscan,
                    drop,
                    via_object,
                    align,
                } => {
                    let (a, class, align) = if via_object {
                        // SAFETY: the header is written below, inside this operation.
                        let a = unsafe { op.alloc_object(size, align, noscan, drop) };
                        let class = size_class_for(size, align)
                            .map_or(SpanClass::large(noscan), |sc| SpanClass::new(sc, noscan));
                        (a, class, align)
                    } else {
                        let class = SpanClass::new(size_class_for(size, 8).unwrap(), noscan);
                        // SAFETY: as above.
                        (unsafe { op.alloc(class, drop) }, class, 8)
                    };
                    let a = a.unwrap_or_else(|e| panic!("allocating {kind:?} failed: {e}"));
                    let align = if class.is_large() { PAGE_SIZE } else { align };
                    new_headed(model, a, size, align, class, drop, stamp);
                }
                AllocKind::Large {
                    size,
                    noscan,
                    drop,
                    via_object,
                } => {
                    // SAFETY: the header is written below, inside this operation.
                    let a = unsafe {
                        if via_object {
                            op.alloc_object(size, 8, noscan, drop)
                        } else {
                            op.alloc_large(size, noscan, drop)
                        }
                    }
                    .unwrap_or_else(|e| panic!("allocating {kind:?} failed: {e}"));
                    let class = SpanClass::large(noscan);
                    new_headed(model, a, size, PAGE_SIZE, class, drop, stamp);
                }
            }
        }
        if count > 0 {
            assert_eq!(
                op.is_black(),
                model.black,
                "CacheOp::is_black disagrees with set_black after an allocation"
            );
        }
    }

    /// Checks that need no flush: content of live objects (stamp and last word), placement,
    /// drop counts, drop statistics.
    fn cheap_check(&mut self) {
        for o in &self.model.live {
            // SAFETY: live per the model; no sweep is running.
            unsafe { span_of_live(o) };
            if let Err(e) = o.check_content(false) {
                panic!("live object corrupted: {e}");
            }
        }
        self.check_drops();
    }

    fn check_drops(&self) {
        let m = &self.model;
        {
            let reg = registry();
            let reg = reg.as_ref();
            let count = |s: u64| reg.and_then(|r| r.get(&s)).map_or(0, |r| r.drops);
            for o in m.live.iter().filter(|o| o.drop) {
                assert_eq!(
                    count(o.stamp),
                    0,
                    "the live object at {:#x} (stamp {:#x}) was dropped",
                    o.addr,
                    o.stamp
                );
            }
            let in_progress: HashSet<u64> = m
                .sweep
                .iter()
                .flat_map(|s| s.drops_due.iter().copied())
                .collect();
            for &s in &in_progress {
                assert_eq!(
                    count(s),
                    0,
                    "object {s:#x} was dropped while its sweep was still in progress (drops \
                     run only in finish_sweep/run_pending_drops)"
                );
            }
            for &s in &m.dropped_stamps {
                assert_eq!(
                    count(s),
                    1,
                    "object {s:#x}, found dead by a finished sweep, was dropped {} times",
                    count(s)
                );
                if let Some(rec) = reg.and_then(|r| r.get(&s)) {
                    assert!(
                        rec.problems.is_empty(),
                        "bad drop of {s:#x}: {:?}",
                        rec.problems
                    );
                }
            }
        }
        let unknown = UNKNOWN_DROPS.lock().unwrap_or_else(|e| e.into_inner());
        assert!(unknown.is_empty(), "drops of unknown objects: {unknown:?}");
        drop(unknown);
        let st = self.heap.stats();
        assert_eq!(st.drop_panics, 0, "a drop panicked");
        assert_eq!(
            st.objects_dropped, m.dropped,
            "stats().objects_dropped disagrees with the drops the model expects"
        );
        if m.sweep.is_none() {
            assert_eq!(st.pending_drops, 0, "drops pending after a finished sweep");
            assert_eq!(
                st.dropped_unreclaimed,
                m.zombies.len(),
                "stats().dropped_unreclaimed disagrees with the dropped objects awaiting the \
                 next sweep"
            );
        }
    }

    /// Everything [`Harness::cheap_check`] does, plus (after a cache flush) `verify`, counts,
    /// `for_each_object`, alloc and mark bits, and every byte of every live object.
    fn full_check(&mut self) {
        self.cache.flush();
        self.heap.verify();
        self.cheap_check();
        let m = &self.model;
        let st = self.heap.stats();
        let expected = m.object_count();
        let mut expected_slots: HashSet<usize> = m
            .live
            .iter()
            .chain(&m.zombies)
            .map(|o| o.block.unwrap_or(o.addr))
            .collect();
        let mut found = HashSet::new();
        self.heap.for_each_object(|a, span| {
            assert!(
                span.contains(a),
                "for_each_object: {a:?} is not inside {span:?}"
            );
            assert!(
                found.insert(a.as_usize()),
                "for_each_object reported {a:?} twice"
            );
        });
        match &m.sweep {
            None => {
                assert_eq!(
                    st.objects,
                    expected,
                    "stats().objects after a flush disagrees with the model ({} live objects, \
                     {} awaiting reclamation)",
                    m.live.len(),
                    m.zombies.len()
                );
                assert_eq!(st.objects_freed, m.freed, "stats().objects_freed");
                assert_eq!(st.unswept_spans, 0, "unswept spans after a finished sweep");
                if found != expected_slots {
                    let extra: Vec<_> = found.difference(&expected_slots).take(8).collect();
                    let missing: Vec<_> = expected_slots.difference(&found).take(8).collect();
                    panic!(
                        "for_each_object disagrees with the model: not in the model {extra:x?}, \
                         not reported {missing:x?}"
                    );
                }
            }
            Some(s) => {
                let upper = expected + s.doomed.len();
                assert!(
                    (expected..=upper).contains(&st.objects),
                    "stats().objects = {} during a sweep, expected {expected}..={upper}",
                    st.objects
                );
                let missing: Vec<_> = expected_slots.difference(&found).take(8).collect();
                assert!(
                    missing.is_empty(),
                    "for_each_object misses live slots {missing:x?}"
                );
                expected_slots.extend(s.doomed.iter().copied());
                let extra: Vec<_> = found.difference(&expected_slots).take(8).collect();
                assert!(
                    extra.is_empty(),
                    "for_each_object reports slots that are neither live nor doomed: {extra:x?}"
                );
            }
        }
        for o in &m.live {
            // SAFETY: live per the model; no sweep is running.
            let span = unsafe { span_of_live(o) };
            let slot = span.slot_of(o.start());
            assert!(
                !span.is_free(slot),
                "the live object at {:#x} (stamp {:#x}) is in a free slot of {span:?}",
                o.addr,
                o.stamp
            );
            if o.block.is_none() {
                assert_eq!(
                    span.slot_addr(slot),
                    o.start(),
                    "object not at its slot start"
                );
            }
            assert_eq!(
                span.slot_addr(slot).as_usize() + span.elem_size(),
                o.slot_end,
                "the slot of the object at {:#x} changed size",
                o.addr
            );
            if m.sweep.is_none() {
                // SAFETY: as above.
                let marked = unsafe { self.heap.is_marked(o.start()) };
                assert_eq!(
                    marked,
                    m.is_marked(o),
                    "mark bit of the object at {:#x} (stamp {:#x}, tiny: {})",
                    o.addr,
                    o.stamp,
                    o.block.is_some()
                );
            }
            if let Err(e) = o.check_content(true) {
                panic!("live object corrupted: {e}");
            }
        }
        if m.sweep.is_none() {
            for z in &m.zombies {
                // SAFETY: the slot of a dead object is reclaimed only by the next sweep.
                let span = unsafe { span_of_live(z) };
                assert!(
                    !span.is_free(span.slot_of(z.start())),
                    "the slot of the dropped object at {:#x} was freed before the next sweep",
                    z.addr
                );
                // SAFETY: as above.
                let marked = unsafe { self.heap.is_marked(z.start()) };
                assert!(!marked, "the dead object at {:#x} is marked", z.addr);
            }
        }
    }

    /// Ends the case: finishes any sweep, checks everything, drops the heap and checks that
    /// every object with drop glue was dropped exactly once.
    fn finish(mut self) {
        self.finish_lazy_sweep();
        self.full_check();
        let stamps = core::mem::take(&mut self.model.drop_stamps);
        drop(self.cache);
        drop(self.heap);
        let mut reg = registry();
        let reg = reg.get_or_insert_with(HashMap::new);
        for s in stamps {
            let rec = reg.remove(&s).expect("registered at allocation");
            assert_eq!(
                rec.drops, 1,
                "the object at {:#x} (stamp {s:#x}) was dropped {} times by the end of the \
                 heap's life",
                rec.addr, rec.drops
            );
            assert!(
                rec.problems.is_empty(),
                "bad drop of {s:#x}: {:?}",
                rec.problems
            );
        }
    }
}

/// Records (and checks the placement of) a headed object just allocated inside an operation,
/// and writes its header, stamp and pattern.
fn new_headed(
    model: &mut Model,
    a: Address,
    size: usize,
    align: usize,
    class: SpanClass,
    drop: bool,
    stamp: u64,
) {
    assert!(
        !a.is_null() && a.is_aligned(align.max(8)),
        "{size}-byte object at {a:?} is not {align}-aligned"
    );
    // SAFETY: just allocated inside the caller's operation: no sweep can free it.
    let span = unsafe { Heap::span_of(a) }
        .unwrap_or_else(|| panic!("no span holds the new {size}-byte object at {a:?}"));
    assert_eq!(
        span.class(),
        class,
        "{size}-byte object at {a:?} in {span:?}"
    );
    assert_eq!(
        span.slot_addr(span.slot_of(a)),
        a,
        "object not at a slot start"
    );
    assert!(
        span.elem_size() >= size,
        "slot of {span:?} too small for {size}"
    );
    if !class.is_large() {
        assert_eq!(span.elem_size(), class.size_class().size(), "slot size");
    }
    let slot_end = a.as_usize() + span.elem_size();
    model.claim(a.as_usize(), slot_end, stamp);
    let desc = if drop { &DROP_DESC } else { &PLAIN_DESC };
    // SAFETY: the slot is ours, at least `size` ≥ 16 bytes, 8-aligned; the header is written
    // inside the allocating operation, as `alloc` requires for objects with drop glue.
    let header = unsafe {
        a.as_mut_ptr::<ObjectHeader>()
            .write(ObjectHeader::new(desc, 0));
        fill_headed(a, size, stamp);
        a.as_mut_ptr::<u64>().read()
    };
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
        model.drop_stamps.push(stamp);
    }
    model.live.push(Obj {
        stamp,
        addr: a.as_usize(),
        len: size,
        block: None,
        slot_end,
        class,
        drop,
        header,
        marked: model.black,
    });
}

/// Operations per case, and objects per large batch (fewer under Miri, which interprets
/// every one of them; there the full check runs only after flushes and sweeps, and large
/// objects are at most 40 000 bytes).
const MAX_OPS: usize = if cfg!(miri) { 16 } else { 200 };
const MAX_BATCH: usize = if cfg!(miri) { 32 } else { 300 };

/// Cases: `PROPTEST_CASES`, else 256, or 12 under Miri (about 10 s of interpretation each).
/// Miri hides the host's environment from the program unless told otherwise
/// (`-Zmiri-env-forward=PROPTEST_CASES`), so the Miri default must be small by itself.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if cfg!(miri) { 12 } else { 256 })
}

proptest! {
    #![proptest_config(Config {
        // Regressions are reported in the failure message; no files are written next to the
        // test sources.
        failure_persistence: None,
        // Under Miri each shrinking step reruns a case (seconds of interpretation): bounded,
        // so that a failure is still reported in bounded time.
        max_shrink_iters: if cfg!(miri) { 32 } else { Config::default().max_shrink_iters },
        ..Config::with_cases(cases())
    })]

    /// Random operation sequences keep the heap and the model in agreement.
    #[test]
    fn heap_agrees_with_the_model(
        ops in prop::collection::vec(op(), 1..=MAX_OPS),
        verify_every_op in any::<bool>(),
    ) {
        let mut h = Harness::new(verify_every_op && !cfg!(miri));
        for op in &ops {
            h.run(op);
        }
        h.finish();
    }
}
