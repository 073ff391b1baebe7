//! Size classes: how the heap rounds a small allocation request up to a slot size.
//!
//! A *size class* is a fixed object size together with a span length (a whole number of
//! `PAGE_SIZE` pages). A span of a class is carved into `objects_per_span` slots of exactly that
//! size, laid end to end from the page-aligned start of the span; whatever is left at the end is
//! the span's *tail*. Every request of at most [`MAX_SMALL_SIZE`] bytes is served from the smallest
//! class that holds it; bigger requests get a span of their own ([`SizeClass::LARGE`], class 0).
//!
//! This is the counterpart of Go's `runtime/sizeclasses.go`, the table that Go's
//! `mksizeclasses.go` generates. The table here is derived by the same kind of sweep, with one
//! rule tightened and one rule added (described below), which gives 67 classes (class 0
//! included) where Go has 68.
//!
//! # The rules
//!
//! 1. **Candidate sizes.** Sizes are swept upwards in steps that grow with the size, so that
//!    spacing stays roughly proportional to size: steps of 8 bytes up to 32, then 16 bytes up to
//!    128, then one eighth of the enclosing power of two (16 bytes from 128, 32 from 256, 64 from
//!    512, 128 from 1024) and finally 256 bytes from 2048 on. Every class size is therefore a
//!    multiple of 8 (the alignment every object gets), and every size above 1024 is a multiple
//!    of 128, which is what the two lookup tables below rely on.
//! 2. **Span length.** A candidate gets the smallest number of pages such that
//!    (a) the tail is at most 1/8 of the span, and
//!    (b) for classes of 128 bytes or more, the *worst-case waste* is at most 1/8 (12.5 %) of the
//!    span. The worst case is a span full of the smallest requests that map to the class, that
//!    is one byte more than the previous class size; its waste is
//!    `span - objects * (previous + 1)` bytes, which counts both the slack inside every slot and
//!    the tail. Go only applies (a), so some of its classes waste up to 16.6 % (4864 bytes in 3
//!    pages after 4096); here those classes get longer spans instead. Below 128 bytes the bound
//!    cannot be met by any table (a 9-byte request in a 16-byte slot wastes 44 %), so there every
//!    candidate size is a class of its own and the spacing is the finest the alignment allows.
//! 3. **Merging.** If a candidate would use the same number of pages and fit the same number of
//!    objects per span as the class before it, the class before it simply grows to the
//!    candidate's size: the memory per object is unchanged and fewer classes are needed.
//! 4. **Widening.** Afterwards every class grows to the largest multiple of 128 bytes that still
//!    fits the same number of objects in its span (as Go does). This never changes a class's own
//!    waste and lowers the waste of the class after it.
//! 5. **Pruning** (not in Go). Going upwards, a class of 128 bytes or more is dropped when the
//!    class after it already serves the dropped class's requests within the 12.5 % bound of
//!    rule 2(b). This removes classes that only exist because the sweep visits every
//!    candidate: it drops 240, 480, 6528, 6784, 9472, 9728 and 19072 bytes (all of which Go
//!    has), taking the table from 74 classes to 67.
//!
//! The resulting worst-case waste of every class of 128 bytes or more is below 12.5 % (the
//! largest is 4095/32768 = 12.497 %, for the 32 KiB class), and the longest span is 10 pages.
//!
//! # How the table is checked
//!
//! The table is a literal below (`CLASS_SIZE`, `CLASS_NPAGES`, `CLASS_DIV_MAGIC`). The unit
//! tests hold the generator that implements the rules above; they assert that the literal equals
//! the generator's output, that the generator with rules 2(b) and 5 switched off reproduces Go's
//! 68-class table, that every class obeys the waste bounds, that [`size_class_for`] agrees with a
//! linear scan of the table for every size and alignment, and that [`SizeClass::object_index`] is
//! exact for every offset of every span. The shape invariants that the lookup tables depend on
//! are also asserted at compile time.
//!
//! # Lookups
//!
//! [`size_class_for`] uses two byte tables like Go's `size_to_class8` and `size_to_class128`: one
//! indexed by the size in 8-byte steps up to 1024, one by the size in 128-byte steps from 1024 to
//! 32 KiB. Over-aligned requests go through a third table that gives, for every alignment from 16
//! bytes to a page and every class, the nearest class at or above it whose size is a multiple of
//! the alignment. All three are computed at compile time from the class table.
//!
//! [`SizeClass::object_index`] replaces the division `offset / size` by a multiplication with a
//! precomputed 32-bit reciprocal, `(offset * ceil(2^32 / size)) >> 32`, like Go's `divMul`. It is
//! exact for every offset inside a span because `span bytes * size < 2^32` for every class.

/// Log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: usize = 13;

/// Size of a heap page in bytes (8 KiB). Spans are whole numbers of pages and start at
/// page-aligned addresses.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;

/// Largest object served from a size-classed span; anything larger gets a dedicated span of whole
/// pages.
pub const MAX_SMALL_SIZE: usize = 32 * 1024;

/// Number of size classes, including class 0 (large objects).
pub const NUM_SIZE_CLASSES: usize = 67;

/// Alignment every class size is a multiple of, hence the alignment every object gets for free.
const MIN_ALIGN: usize = 8;

/// Requests up to this size are looked up in [`SIZE_TO_CLASS8`].
const SMALL_SIZE_MAX: usize = 1024;

/// Granularity of [`SIZE_TO_CLASS8`].
const SMALL_SIZE_DIV: usize = 8;

/// Granularity of [`SIZE_TO_CLASS128`]; every class size above [`SMALL_SIZE_MAX`] is a multiple.
const LARGE_SIZE_DIV: usize = 128;

// The class table, generated by `tests::generate` (run the ignored test `tests::print_table` to
// print it again). Class 0 is the large-object class and has no size.
//
// max waste: share of the span wasted when every object holds the smallest request mapped to
// the class (one byte more than the previous class size), tail included.
//
//  class  bytes/obj  bytes/span  objects  tail waste  max waste
//      1          8        8192     1024           0     87.50%
//      2         16        8192      512           0     43.75%
//      3         24        8192      341           8     29.24%
//      4         32        8192      256           0     21.88%
//      5         48        8192      170          32     31.52%
//      6         64        8192      128           0     23.44%
//      7         80        8192      102          32     19.07%
//      8         96        8192       85          32     15.95%
//      9        112        8192       73          16     13.56%
//     10        128        8192       64           0     11.72%
//     11        144        8192       56         128     11.82%
//     12        160        8192       51          32      9.73%
//     13        176        8192       46          96      9.59%
//     14        192        8192       42         128      9.25%
//     15        208        8192       39          80      8.12%
//     16        224        8192       36         128      8.15%
//     17        256        8192       32           0     12.11%
//     18        288        8192       28         128     12.16%
//     19        320        8192       25         192     11.80%
//     20        352        8192       23          96      9.88%
//     21        384        8192       21         128      9.51%
//     22        416        8192       19         288     10.71%
//     23        448        8192       18         128      8.37%
//     24        512        8192       16           0     12.30%
//     25        576        8192       14         128     12.33%
//     26        640       16384       25         384     11.96%
//     27        704       16384       23         192     10.02%
//     28        768       16384       21         256      9.64%
//     29        832       16384       19         576     10.82%
//     30        896        8192        9         128      8.48%
//     31       1024        8192        8           0     12.40%
//     32       1152        8192        7         128     12.41%
//     33       1280       24576       19         256     10.86%
//     34       1408       24576       17         640     11.39%
//     35       1536       24576       16           0      8.27%
//     36       1664       24576       14        1280     12.44%
//     37       1792       16384        9         256      8.54%
//     38       2048        8192        4           0     12.45%
//     39       2304       16384        7         256     12.46%
//     40       2560       40960       16           0      9.96%
//     41       2816       40960       14        1536     12.47%
//     42       3072       24576        8           0      8.30%
//     43       3456       24576        7         384     12.47%
//     44       3584       32768        9         512      5.05%
//     45       4096        8192        2           0     12.48%
//     46       4608       32768        7         512     12.48%
//     47       4864       24576        5         256      6.23%
//     48       5376       16384        3         256     10.92%
//     49       6144       24576        4           0     12.48%
//     50       6912       49152        7         768     12.49%
//     51       7168       57344        8           0      3.56%
//     52       8192        8192        1           0     12.49%
//     53       9344       65536        7         128     12.49%
//     54      10240       40960        4           0      8.74%
//     55      10880       32768        3         128      6.24%
//     56      12288       24576        2           0     11.45%
//     57      13568       40960        3         256      9.99%
//     58      14336       57344        4           0      5.35%
//     59      16384       16384        1           0     12.49%
//     60      18432       73728        4           0     11.11%
//     61      20480       40960        2           0     10.00%
//     62      21760       65536        3         256      6.25%
//     63      24576       24576        1           0     11.45%
//     64      27264       81920        3         128     10.00%
//     65      28672       57344        2           0      4.91%
//     66      32768       32768        1           0     12.50%

/// Object size in bytes of every class (0 for class 0).
#[rustfmt::skip]
const CLASS_SIZE: [u16; NUM_SIZE_CLASSES] = [
        0,     8,    16,    24,    32,    48,    64,    80, //  0..8
       96,   112,   128,   144,   160,   176,   192,   208, //  8..16
      224,   256,   288,   320,   352,   384,   416,   448, // 16..24
      512,   576,   640,   704,   768,   832,   896,  1024, // 24..32
     1152,  1280,  1408,  1536,  1664,  1792,  2048,  2304, // 32..40
     2560,  2816,  3072,  3456,  3584,  4096,  4608,  4864, // 40..48
     5376,  6144,  6912,  7168,  8192,  9344, 10240, 10880, // 48..56
    12288, 13568, 14336, 16384, 18432, 20480, 21760, 24576, // 56..64
    27264, 28672, 32768,                                    // 64..67
];

/// Pages per span of every class (0 for class 0).
#[rustfmt::skip]
const CLASS_NPAGES: [u8; NUM_SIZE_CLASSES] = [
     0,  1,  1,  1,  1,  1,  1,  1, //  0..8
     1,  1,  1,  1,  1,  1,  1,  1, //  8..16
     1,  1,  1,  1,  1,  1,  1,  1, // 16..24
     1,  1,  2,  2,  2,  2,  1,  1, // 24..32
     1,  3,  3,  3,  3,  2,  1,  2, // 32..40
     5,  5,  3,  3,  4,  1,  4,  3, // 40..48
     2,  3,  6,  7,  1,  8,  5,  4, // 48..56
     3,  5,  7,  2,  9,  5,  8,  3, // 56..64
    10,  7,  4,                     // 64..67
];

/// `ceil(2^32 / size)` of every class (0 for class 0), for [`SizeClass::object_index`].
#[rustfmt::skip]
const CLASS_DIV_MAGIC: [u32; NUM_SIZE_CLASSES] = [
            0, 536870912, 268435456, 178956971, 134217728,  89478486,  67108864,  53687092, //  0..8
     44739243,  38347923,  33554432,  29826162,  26843546,  24403224,  22369622,  20648882, //  8..16
     19173962,  16777216,  14913081,  13421773,  12201612,  11184811,  10324441,   9586981, // 16..24
      8388608,   7456541,   6710887,   6100806,   5592406,   5162221,   4793491,   4194304, // 24..32
      3728271,   3355444,   3050403,   2796203,   2581111,   2396746,   2097152,   1864136, // 32..40
      1677722,   1525202,   1398102,   1242757,   1198373,   1048576,    932068,    883012, // 40..48
       798916,    699051,    621379,    599187,    524288,    459650,    419431,    394759, // 48..56
       349526,    316552,    299594,    262144,    233017,    209716,    197380,    174763, // 56..64
       157533,    149797,    131072,                                                        // 64..67
];

/// Objects per span of every class (0 for class 0), computed from the table.
const CLASS_NOBJS: [u16; NUM_SIZE_CLASSES] = build_objects_per_span();

/// `SIZE_TO_CLASS8[ceil(size / 8)]` is the class of a request of `size <= 1024` bytes.
const SIZE_TO_CLASS8: [u8; SMALL_SIZE_MAX / SMALL_SIZE_DIV + 1] =
    build_size_to_class(0, SMALL_SIZE_DIV);

/// `SIZE_TO_CLASS128[ceil((size - 1024) / 128)]` is the class of a request of
/// `1024 < size <= MAX_SMALL_SIZE` bytes.
const SIZE_TO_CLASS128: [u8; (MAX_SMALL_SIZE - SMALL_SIZE_MAX) / LARGE_SIZE_DIV + 1] =
    build_size_to_class(SMALL_SIZE_MAX, LARGE_SIZE_DIV);

/// Log2 of the smallest alignment that [`ALIGNED_CLASS`] covers (smaller ones always hold).
const FIRST_ALIGN_SHIFT: u32 = 4;

/// Log2 of the largest alignment a small class can provide: a span start is only page-aligned.
const LAST_ALIGN_SHIFT: u32 = PAGE_SHIFT as u32;

/// Number of rows of [`ALIGNED_CLASS`].
const ALIGN_ROWS: usize = (LAST_ALIGN_SHIFT - FIRST_ALIGN_SHIFT + 1) as usize;

/// `ALIGNED_CLASS[log2(align) - FIRST_ALIGN_SHIFT][c]` is the smallest class at or above `c`
/// whose size is a multiple of `align`, or 0 if there is none.
const ALIGNED_CLASS: [[u8; NUM_SIZE_CLASSES]; ALIGN_ROWS] = build_aligned_classes();

/// Compile-time check of the table invariants that the lookups and accessors rely on.
const fn check_class_table() {
    assert!(
        NUM_SIZE_CLASSES <= u8::MAX as usize,
        "class indices must fit in a u8"
    );
    assert!(CLASS_SIZE[0] == 0 && CLASS_NPAGES[0] == 0 && CLASS_DIV_MAGIC[0] == 0);
    assert!(
        CLASS_SIZE[NUM_SIZE_CLASSES - 1] as usize == MAX_SMALL_SIZE,
        "the last class must be MAX_SMALL_SIZE"
    );
    let mut class = 1;
    while class < NUM_SIZE_CLASSES {
        let size = CLASS_SIZE[class] as usize;
        let span = CLASS_NPAGES[class] as usize * PAGE_SIZE;
        assert!(
            size > CLASS_SIZE[class - 1] as usize,
            "class sizes must increase"
        );
        assert!(size % MIN_ALIGN == 0, "class sizes must be multiples of 8");
        assert!(
            size <= SMALL_SIZE_MAX || size % LARGE_SIZE_DIV == 0,
            "class sizes above 1024 must be multiples of 128"
        );
        assert!(size <= span, "a span must hold at least one object");
        assert!(
            (span as u64) * (size as u64) < 1 << 32,
            "the division magic is only exact while span bytes * size < 2^32"
        );
        assert!(
            CLASS_DIV_MAGIC[class] as u64 == (1u64 << 32).div_ceil(size as u64),
            "wrong division magic"
        );
        class += 1;
    }
}

const _: () = check_class_table();

/// Builds [`CLASS_NOBJS`].
const fn build_objects_per_span() -> [u16; NUM_SIZE_CLASSES] {
    let mut table = [0u16; NUM_SIZE_CLASSES];
    let mut class = 1;
    while class < NUM_SIZE_CLASSES {
        let span = CLASS_NPAGES[class] as usize * PAGE_SIZE;
        table[class] = (span / CLASS_SIZE[class] as usize) as u16;
        class += 1;
    }
    table
}

/// Builds a size-to-class table whose entry `i` is the smallest class of at least
/// `base + i * step` bytes. Entry `i` stands for every size in `(base + (i-1)*step, base + i*step]`,
/// which is exact because no class size above `base` falls strictly inside such a range.
const fn build_size_to_class<const N: usize>(base: usize, step: usize) -> [u8; N] {
    let mut table = [0u8; N];
    let mut class = 1;
    let mut i = 0;
    while i < N {
        let size = base + i * step;
        while (CLASS_SIZE[class] as usize) < size {
            class += 1;
        }
        table[i] = class as u8;
        i += 1;
    }
    table
}

/// Builds [`ALIGNED_CLASS`].
const fn build_aligned_classes() -> [[u8; NUM_SIZE_CLASSES]; ALIGN_ROWS] {
    let mut table = [[0u8; NUM_SIZE_CLASSES]; ALIGN_ROWS];
    let mut row = 0;
    while row < ALIGN_ROWS {
        let align = 1usize << (FIRST_ALIGN_SHIFT as usize + row);
        // Walk downwards, remembering the nearest suitable class seen so far.
        let mut nearest = 0u8;
        let mut class = NUM_SIZE_CLASSES - 1;
        while class > 0 {
            if CLASS_SIZE[class] as usize % align == 0 {
                nearest = class as u8;
            }
            table[row][class] = nearest;
            class -= 1;
        }
        row += 1;
    }
    table
}

/// A size class: an index into the class table. Class 0 ([`SizeClass::LARGE`]) stands for
/// objects bigger than [`MAX_SMALL_SIZE`], each of which gets a dedicated span.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct SizeClass(u8);

impl SizeClass {
    /// The class of large objects, which live alone in a span of whole pages.
    pub const LARGE: SizeClass = SizeClass(0);

    /// The class with the given index, or `None` if `index >= NUM_SIZE_CLASSES`.
    #[inline]
    pub const fn new(index: u8) -> Option<SizeClass> {
        if (index as usize) < NUM_SIZE_CLASSES {
            Some(SizeClass(index))
        } else {
            None
        }
    }

    /// The index of this class in `0..NUM_SIZE_CLASSES`.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// Whether this is [`SizeClass::LARGE`].
    #[inline]
    pub const fn is_large(self) -> bool {
        self.0 == 0
    }

    /// Object size in bytes (0 for LARGE).
    #[inline]
    pub const fn size(self) -> usize {
        CLASS_SIZE[self.0 as usize] as usize
    }

    /// Pages per span of this class (0 for LARGE).
    #[inline]
    pub const fn npages(self) -> usize {
        CLASS_NPAGES[self.0 as usize] as usize
    }

    /// Objects per span: `npages * PAGE_SIZE / size` (0 for LARGE).
    #[inline]
    pub const fn objects_per_span(self) -> usize {
        CLASS_NOBJS[self.0 as usize] as usize
    }

    /// Index of the object that contains byte `offset` of its span, i.e. `offset / size`,
    /// computed without a division as `(offset * magic) >> 32` with the class's precomputed
    /// `magic = ceil(2^32 / size)` (Go's `divMul`). Exact for every `offset` inside the span;
    /// offsets in the tail give indices `>= objects_per_span`.
    ///
    /// For [`SizeClass::LARGE`] the span holds a single object and the result is always 0.
    #[inline]
    pub fn object_index(self, offset: usize) -> usize {
        debug_assert!(
            self.is_large() || offset < self.npages() * PAGE_SIZE,
            "offset {offset} is outside a span of {self:?}"
        );
        ((offset as u64 * u64::from(CLASS_DIV_MAGIC[self.index()])) >> 32) as usize
    }

    /// Iterator over all small classes `1..NUM_SIZE_CLASSES`, smallest first.
    pub fn all_small() -> impl DoubleEndedIterator<Item = SizeClass> + ExactSizeIterator {
        (1..NUM_SIZE_CLASSES as u8).map(SizeClass)
    }
}

/// The smallest class whose objects hold `size` bytes at alignment `align` (a power of two).
///
/// Every object start in a span is `span_start + i * size` with `span_start` page-aligned, so
/// the class size must be a multiple of `align` when `align > 8` (8 is the minimum alignment of
/// every class, so `align <= 8` always holds). A size of 0 maps to the smallest class.
///
/// Returns `None` when `size > MAX_SMALL_SIZE`, or when no small class satisfies the alignment
/// (always the case for `align > PAGE_SIZE`, since spans are only page-aligned); the caller then
/// uses a large span. An `align` that is not a power of two is a caller bug (checked in debug
/// builds) and gives `None`.
///
/// Takes a few table lookups and no loop: like Go's `size_to_class8` and `size_to_class128`,
/// one byte table covers sizes up to 1024 in 8-byte steps and one covers the rest in 128-byte
/// steps; over-aligned requests take one more lookup.
#[inline]
pub const fn size_class_for(size: usize, align: usize) -> Option<SizeClass> {
    let class = if size <= SMALL_SIZE_MAX {
        SIZE_TO_CLASS8[size.div_ceil(SMALL_SIZE_DIV)]
    } else if size <= MAX_SMALL_SIZE {
        SIZE_TO_CLASS128[(size - SMALL_SIZE_MAX).div_ceil(LARGE_SIZE_DIV)]
    } else {
        return None;
    };
    if align <= MIN_ALIGN {
        return Some(SizeClass(class));
    }
    debug_assert!(align.is_power_of_two(), "alignment is not a power of two");
    if !align.is_power_of_two() || align > PAGE_SIZE {
        return None;
    }
    let row = (align.trailing_zeros() - FIRST_ALIGN_SHIFT) as usize;
    match ALIGNED_CLASS[row][class as usize] {
        0 => None,
        aligned => Some(SizeClass(aligned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rule 2(b) (the worst-case waste bound) applies to classes of at least this size.
    const WASTE_BOUND_MIN_SIZE: usize = 128;

    /// Longest span the generator tries before giving up.
    const MAX_NPAGES: usize = 16;

    /// One generated class.
    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    struct Class {
        size: usize,
        npages: usize,
    }

    impl Class {
        fn span(self) -> usize {
            self.npages * PAGE_SIZE
        }

        fn objects(self) -> usize {
            self.span() / self.size
        }

        fn tail(self) -> usize {
            self.span() % self.size
        }

        /// Bytes of the span wasted when every object holds `previous + 1` bytes, the smallest
        /// request that maps to this class when `previous` is the size of the class before it.
        fn worst_waste(self, previous: usize) -> usize {
            self.span() - self.objects() * (previous + 1)
        }

        /// Rule 2(a): the tail is at most 1/8 of the span.
        fn tail_ok(self) -> bool {
            self.tail() * 8 <= self.span()
        }

        /// Rule 2(b): the worst-case waste is at most 1/8 of the span.
        fn waste_ok(self, previous: usize) -> bool {
            self.worst_waste(previous) * 8 <= self.span()
        }
    }

    /// Which of the rules from the module documentation the generator applies.
    #[derive(Clone, Copy)]
    struct Rules {
        /// Rule 2(b).
        waste_bound: bool,
        /// Rule 5.
        prune: bool,
    }

    /// The rules of this crate's table.
    const OURS: Rules = Rules {
        waste_bound: true,
        prune: true,
    };

    /// The rules of Go's `mksizeclasses.go`.
    const GO: Rules = Rules {
        waste_bound: false,
        prune: false,
    };

    /// Rule 1: the candidate sizes, smallest first.
    fn candidate_sizes() -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut step = MIN_ALIGN;
        let mut size = step;
        while size <= MAX_SMALL_SIZE {
            if size.is_power_of_two() {
                if size >= 2048 {
                    step = 256;
                } else if size >= 128 {
                    step = size / 8;
                } else if size >= 32 {
                    step = 16;
                }
            }
            sizes.push(size);
            size += step;
        }
        sizes
    }

    /// Derives the class table (class 0 first) from the rules.
    fn generate(rules: Rules) -> Vec<Class> {
        let mut classes = vec![Class { size: 0, npages: 0 }];

        // Rules 1 to 3: the sweep.
        for size in candidate_sizes() {
            let last = *classes.last().unwrap();
            let bounded = rules.waste_bound && size >= WASTE_BOUND_MIN_SIZE;
            let npages = (1..=MAX_NPAGES)
                .find(|&npages| {
                    let class = Class { size, npages };
                    class.tail_ok() && (!bounded || class.waste_ok(last.size))
                })
                .expect("no span length satisfies the rules");
            let class = Class { size, npages };
            if last.size != 0 && last.npages == npages && last.objects() == class.objects() {
                classes.last_mut().unwrap().size = size;
            } else {
                classes.push(class);
            }
        }

        // Rule 4: widen every class to the largest multiple of 128 with the same object count.
        for class in classes.iter_mut().skip(1) {
            let widest = class.span() / class.objects() / LARGE_SIZE_DIV * LARGE_SIZE_DIV;
            class.size = class.size.max(widest);
        }

        // Rule 5: drop classes whose requests the next class serves within the bound.
        if rules.prune {
            let mut i = 1;
            while i + 1 < classes.len() {
                if classes[i].size >= WASTE_BOUND_MIN_SIZE
                    && classes[i + 1].waste_ok(classes[i - 1].size)
                {
                    classes.remove(i);
                } else {
                    i += 1;
                }
            }
        }
        classes
    }

    fn magic(size: usize) -> u32 {
        if size == 0 {
            0
        } else {
            u32::try_from((1u64 << 32).div_ceil(size as u64)).unwrap()
        }
    }

    fn literal_table() -> Vec<Class> {
        (0..NUM_SIZE_CLASSES)
            .map(|i| Class {
                size: usize::from(CLASS_SIZE[i]),
                npages: usize::from(CLASS_NPAGES[i]),
            })
            .collect()
    }

    #[test]
    fn literal_table_matches_generator() {
        assert_eq!(literal_table(), generate(OURS));
        for (i, &size) in CLASS_SIZE.iter().enumerate() {
            assert_eq!(CLASS_DIV_MAGIC[i], magic(usize::from(size)), "class {i}");
        }
    }

    /// Go's table (`runtime/sizeclasses.go`, 68 classes including class 0).
    #[rustfmt::skip]
    const GO_SIZES: [usize; 68] = [
        0, 8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288,
        320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536,
        1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192,
        9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
        27264, 28672, 32768,
    ];

    /// Pages per span of Go's classes.
    #[rustfmt::skip]
    const GO_NPAGES: [usize; 68] = [
        0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 2, 1, 2, 1, 2, 1, 3, 2, 3, 1, 3, 2, 3, 4, 5, 6, 1, 7, 6, 5, 4, 3, 5, 7, 2,
        9, 7, 5, 8, 3, 10, 7, 4,
    ];

    #[test]
    fn go_rules_reproduce_go_table() {
        let go: Vec<Class> = GO_SIZES
            .iter()
            .zip(GO_NPAGES)
            .map(|(&size, npages)| Class { size, npages })
            .collect();
        assert_eq!(generate(GO), go);
    }

    #[test]
    fn classes_obey_waste_rules() {
        let candidates = candidate_sizes();
        let mut max_waste = 0.0f64;
        for i in 1..NUM_SIZE_CLASSES {
            let class = literal_table()[i];
            let previous = usize::from(CLASS_SIZE[i - 1]);
            assert!(
                class.tail_ok(),
                "class {i}: tail {} of {}",
                class.tail(),
                class.span()
            );
            if class.size >= WASTE_BOUND_MIN_SIZE {
                assert!(
                    class.waste_ok(previous),
                    "class {i}: worst-case waste too high"
                );
                // Implied by the bound above, checked on its own: the slack inside one slot.
                assert!((class.size - previous - 1) * 8 <= class.size, "class {i}");
                let waste = class.worst_waste(previous) as f64 / class.span() as f64;
                max_waste = max_waste.max(waste);
            } else {
                // Below the bound every candidate is a class: the finest spacing possible.
                let at = candidates.iter().position(|&c| c == class.size).unwrap();
                let expected_previous = if at == 0 { 0 } else { candidates[at - 1] };
                assert_eq!(previous, expected_previous, "class {i}");
            }
        }
        assert!(max_waste <= 0.125);
        println!(
            "max worst-case waste of classes >= 128 bytes: {:.3}%",
            max_waste * 100.0
        );
    }

    #[test]
    fn sizes_increase_and_are_aligned() {
        let mut previous = 0;
        for class in SizeClass::all_small() {
            let size = class.size();
            assert!(size > previous);
            assert_eq!(size % 8, 0);
            assert!(size <= SMALL_SIZE_MAX || size % LARGE_SIZE_DIV == 0);
            assert!(class.npages() >= 1);
            assert_eq!(class.objects_per_span(), class.npages() * PAGE_SIZE / size);
            assert!(class.objects_per_span() >= 1);
            assert!(!class.is_large());
            previous = size;
        }
        assert_eq!(previous, MAX_SMALL_SIZE);
        assert_eq!(SizeClass::all_small().len(), NUM_SIZE_CLASSES - 1);
        let large = SizeClass::LARGE;
        assert!(large.is_large());
        assert_eq!(
            (large.size(), large.npages(), large.objects_per_span()),
            (0, 0, 0)
        );
    }

    #[test]
    fn class_count_is_close_to_go() {
        assert_eq!(generate(OURS).len(), NUM_SIZE_CLASSES);
        assert!(
            (64..=72).contains(&NUM_SIZE_CLASSES),
            "{NUM_SIZE_CLASSES} classes"
        );
    }

    #[test]
    fn new_and_index_round_trip() {
        for index in 0..=u8::MAX {
            match SizeClass::new(index) {
                Some(class) => assert_eq!(class.index(), usize::from(index)),
                None => assert!(usize::from(index) >= NUM_SIZE_CLASSES),
            }
        }
        assert_eq!(SizeClass::new(0), Some(SizeClass::LARGE));
    }

    /// The definition `size_class_for` must agree with.
    fn linear_scan(size: usize, align: usize) -> Option<SizeClass> {
        SizeClass::all_small().find(|class| {
            class.size() >= size
                && (align <= MIN_ALIGN || (align <= PAGE_SIZE && class.size() % align == 0))
        })
    }

    #[test]
    fn size_class_for_matches_linear_scan() {
        let aligns = [
            1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 65536,
        ];
        for align in aligns {
            for size in 0..=MAX_SMALL_SIZE + 1 {
                assert_eq!(
                    size_class_for(size, align),
                    linear_scan(size, align),
                    "{size} @ {align}"
                );
            }
            assert_eq!(size_class_for(usize::MAX, align), None);
        }
        assert_eq!(size_class_for(0, 1), SizeClass::new(1));
        assert_eq!(
            size_class_for(MAX_SMALL_SIZE, 8).map(SizeClass::size),
            Some(MAX_SMALL_SIZE)
        );
        assert_eq!(size_class_for(100, 4096).map(SizeClass::size), Some(4096));
        assert_eq!(size_class_for(1, 16384), None);
    }

    #[test]
    fn object_index_is_exact() {
        for class in SizeClass::all_small() {
            for offset in 0..class.npages() * PAGE_SIZE {
                assert_eq!(
                    class.object_index(offset),
                    offset / class.size(),
                    "{class:?}"
                );
            }
        }
        assert_eq!(SizeClass::LARGE.object_index(123_456), 0);
    }

    /// Prints the literal tables and their comment; run with
    /// `cargo test print_table -- --ignored --nocapture` after changing the rules.
    #[test]
    #[ignore = "prints the class table source"]
    fn print_table() {
        let classes = generate(OURS);
        println!("pub const NUM_SIZE_CLASSES: usize = {};", classes.len());
        println!("//  class  bytes/obj  bytes/span  objects  tail waste  max waste");
        for i in 1..classes.len() {
            let class = classes[i];
            let waste = class.worst_waste(classes[i - 1].size) as f64 / class.span() as f64;
            println!(
                "// {i:6} {:10} {:11} {:8} {:11} {:9.2}%",
                class.size,
                class.span(),
                class.objects(),
                class.tail(),
                waste * 100.0
            );
        }
        let print_rows = |name: &str, ty: &str, width: usize, values: Vec<u64>| {
            println!("#[rustfmt::skip]");
            println!("const {name}: [{ty}; NUM_SIZE_CLASSES] = [");
            let row_width = 8 * (width + 2) - 1;
            for (row, chunk) in values.chunks(8).enumerate() {
                let cells: Vec<String> = chunk.iter().map(|v| format!("{v:>width$},")).collect();
                let (from, to) = (row * 8, row * 8 + chunk.len());
                println!("    {:<row_width$} // {from:2}..{to}", cells.join(" "));
            }
            println!("];");
        };
        let sizes = classes.iter().map(|c| c.size as u64).collect();
        let npages = classes.iter().map(|c| c.npages as u64).collect();
        let magics = classes.iter().map(|c| u64::from(magic(c.size))).collect();
        print_rows("CLASS_SIZE", "u16", 5, sizes);
        print_rows("CLASS_NPAGES", "u8", 2, npages);
        print_rows("CLASS_DIV_MAGIC", "u32", 9, magics);
    }
}
