//! Per-span bitmaps: one bit per object slot (Go: `gcBits`, `allocBits`, `gcmarkBits`).
//!
//! A span keeps three: `alloc_bits` (slot holds an object, as of the last sweep or cache
//! release), `mark_bits` (slot reached this cycle, set by any number of markers at once) and
//! `drop_bits` (slot holds an object whose type needs dropping).
//!
//! Words are atomics so markers can set bits in a word while other markers set neighbouring
//! bits ([`Bitmap::set_atomic`], one `fetch_or`). Whoever owns a span exclusively (its thread
//! cache, or the sweeper that claimed it) updates words with plain loads and stores
//! ([`Bitmap::set_word`]); no read-modify-write is needed there.

use crate::sync::atomic::{AtomicU64, Ordering};

/// A fixed-size array of bits backed by atomic words.
pub struct Bitmap {
    words: Box<[AtomicU64]>,
}

impl core::fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bitmap")
            .field("bits", &self.len())
            .field("ones", &self.count_ones())
            .finish()
    }
}

/// Number of 64-bit words needed for `bits` bits.
#[inline]
pub const fn words_for(bits: usize) -> usize {
    bits.div_ceil(64)
}

/// The bits at and above `bits` in the last word of a `bits`-bit map (0 if the map fills it).
#[inline]
pub const fn tail_mask(bits: usize) -> u64 {
    match bits % 64 {
        0 => 0,
        r => !0u64 << r,
    }
}

impl Bitmap {
    /// A map of `bits` zero bits.
    pub fn new(bits: usize) -> Self {
        Bitmap {
            words: (0..words_for(bits)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Number of bits (a multiple of 64).
    #[inline]
    pub fn len(&self) -> usize {
        self.words.len() * 64
    }

    /// Whether the map has no bits.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Number of words.
    #[inline]
    pub fn nwords(&self) -> usize {
        self.words.len()
    }

    /// Bit `i`.
    #[inline]
    pub fn get(&self, i: usize) -> bool {
        self.words[i / 64].load(Ordering::Acquire) & (1 << (i % 64)) != 0
    }

    /// Sets bit `i` with one atomic `fetch_or`; returns true if this call changed it from 0 to
    /// 1 (the caller "won" the object). Safe against concurrent setters of any bit.
    #[inline]
    pub fn set_atomic(&self, i: usize) -> bool {
        let bit = 1u64 << (i % 64);
        self.words[i / 64].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    /// Sets the bits of `bits` in word `w` with one atomic `fetch_or`. Safe against concurrent
    /// setters of any bit.
    #[inline]
    pub fn or_word_atomic(&self, w: usize, bits: u64) {
        self.words[w].fetch_or(bits, Ordering::AcqRel);
    }

    /// Clears the bits of `bits` in word `w` with one atomic `fetch_and`. Safe against
    /// concurrent setters of other bits.
    #[inline]
    pub fn clear_word_atomic(&self, w: usize, bits: u64) {
        self.words[w].fetch_and(!bits, Ordering::AcqRel);
    }

    /// Sets bit `i` with a plain load and store; returns true if it was clear. Only for a
    /// thread that is the sole writer of the map for the moment (the stop-the-world marker):
    /// it skips the locked read-modify-write of [`Bitmap::set_atomic`].
    #[inline]
    pub fn test_and_set_unsync(&self, i: usize) -> bool {
        let w = &self.words[i / 64];
        let bit = 1u64 << (i % 64);
        let v = w.load(Ordering::Relaxed);
        if v & bit != 0 {
            return false;
        }
        w.store(v | bit, Ordering::Relaxed);
        true
    }

    /// Word `w`.
    #[inline]
    pub fn word(&self, w: usize) -> u64 {
        self.words[w].load(Ordering::Acquire)
    }

    /// Replaces word `w`. Only for an exclusive owner: a concurrent [`Bitmap::set_atomic`] on the
    /// same word may be lost.
    #[inline]
    pub fn set_word(&self, w: usize, v: u64) {
        self.words[w].store(v, Ordering::Release)
    }

    /// Sets bit `i` with a load and a store. Exclusive owner only, as [`Bitmap::set_word`].
    #[inline]
    pub fn set_unsync(&self, i: usize) {
        let w = &self.words[i / 64];
        w.store(w.load(Ordering::Relaxed) | 1 << (i % 64), Ordering::Release);
    }

    /// Clears every bit. Exclusive owner only.
    pub fn clear(&self) {
        for w in self.words.iter() {
            w.store(0, Ordering::Release);
        }
    }

    /// Number of set bits.
    pub fn count_ones(&self) -> usize {
        self.words
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones() as usize)
            .sum()
    }

    /// Indices of the set bits, lowest first.
    pub fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.words.len()).flat_map(move |w| BitIter(self.word(w)).map(move |b| w * 64 + b))
    }
}

/// Iterates the set bits of one word, lowest first.
#[derive(Clone, Copy, Debug)]
pub struct BitIter(pub u64);

impl Iterator for BitIter {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let b = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(b)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_get_count() {
        let b = Bitmap::new(130);
        assert_eq!(b.nwords(), 3);
        assert_eq!(b.len(), 192);
        assert!(b.set_atomic(0));
        assert!(!b.set_atomic(0));
        b.set_unsync(129);
        assert!(b.get(0) && b.get(129) && !b.get(64));
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 129]);
        b.set_word(1, 0b101);
        assert_eq!(b.ones().collect::<Vec<_>>(), vec![0, 64, 66, 129]);
        b.clear();
        assert_eq!(b.count_ones(), 0);
    }

    #[test]
    fn tails() {
        assert_eq!(tail_mask(64), 0);
        assert_eq!(tail_mask(1), !1);
        assert_eq!(tail_mask(130).count_ones(), 62);
        assert_eq!(words_for(0), 0);
        assert_eq!(words_for(65), 2);
        assert_eq!(BitIter(0b1001).collect::<Vec<_>>(), vec![0, 3]);
    }

    #[test]
    fn concurrent_setters_each_win_once() {
        let b = std::sync::Arc::new(Bitmap::new(1024));
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let b = &b;
                    s.spawn(move || (0..1024).filter(|&i| b.set_atomic(i)).count())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1024);
        assert_eq!(b.count_ones(), 1024);
    }
}
