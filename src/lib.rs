//! Shared helpers for gc-core's examples, integration tests and benchmarks (the root package of
//! the workspace; not published).
//!
//! The workloads of `shared/WORKLOADS.md` need the same deterministic random numbers in every
//! implementation they are compared against, so they all use [`XorShift64Star`] from here.

/// The xorshift64* generator (Vigna, 2016): fast, deterministic, good enough for workloads.
#[derive(Clone, Debug)]
pub struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    /// A generator from a seed (a zero seed is replaced, since zero is a fixed point).
    pub fn new(seed: u64) -> Self {
        XorShift64Star {
            state: if seed == 0 {
                0x9E37_79B9_7F4A_7C15
            } else {
                seed
            },
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`), by multiply-shift (no division).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
}

/// This process's resident set size in bytes (`VmRSS`), where /proc is available.
pub fn resident_bytes() -> Option<usize> {
    gc_core::heap::os::resident_bytes()
}

/// This process's peak resident set size in bytes (`VmHWM`), where /proc is available.
pub fn peak_resident_bytes() -> Option<usize> {
    gc_core::heap::os::peak_resident_bytes()
}

/// Configures this process's collector, once, with a small allowance: GOGC = 5 over a 256 KiB
/// minimum heap (the rest from the environment), so that marking, mark assists and the hard
/// limit come into play after little allocation. For test binaries of their own (`configure`
/// is process-wide); later calls do nothing.
pub fn configure_small_allowance() {
    static CONFIGURE: std::sync::Once = std::sync::Once::new();
    CONFIGURE.call_once(|| {
        let mut c = gc_core::GcConfig::from_env();
        c.gogc = Some(5);
        c.min_heap = 256 << 10;
        gc_core::configure(c).expect("configure comes before any other use of gc-core");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_deterministic_and_bounded() {
        let (mut a, mut b) = (XorShift64Star::new(42), XorShift64Star::new(42));
        for _ in 0..1000 {
            assert_eq!(a.next_u64(), b.next_u64());
            assert!(a.below(10) < 10);
            b.below(10);
        }
        assert_ne!(XorShift64Star::new(0).next_u64(), 0);
    }
}
