//! `Trace` for the standard library's plain data and owning containers.
//!
//! # Leaves
//!
//! Types that can never hold a handle (integers, floats, `bool`, `char`, `String`, `str`,
//! paths, times, network addresses, `File`, …) are `NO_SCAN` and their methods do nothing.
//! A `Gc` of any of them goes to a noscan span and is never traced.
//!
//! # Containers
//!
//! Owning containers (`Box`, `Vec`, `VecDeque`, `LinkedList`, `Option`, `Result`, tuples,
//! arrays, slices, maps, sets, `BinaryHeap`, `Cow`) delegate to their elements, and are
//! `NO_SCAN` exactly when their elements are. Every method starts with
//! `if T::NO_SCAN { return; }`: a constant, so `Vec<u64>` costs nothing to trace and the
//! branch folds away.
//!
//! # Keys
//!
//! A key of a `HashMap`, `HashSet`, `BTreeMap`, `BTreeSet` or `BinaryHeap` element is only
//! reachable through `&` once inserted, and rooting or unrooting a handle changes the
//! handle. So when the key type can hold handles (`K::NO_SCAN == false`), `root` and
//! `unroot` rebuild the collection: move every entry out, fix it, put it back. That is
//! O(n) (O(n log n) for the B-tree types) plus a temporary buffer, instead of the usual
//! O(n) walk; it keeps the map's hasher and needs only the bounds that using the
//! collection already needs (`Eq + Hash`, `Ord`). When keys are `NO_SCAN`, only the values
//! are visited, in place. `trace` never rebuilds: it only reads.

use super::{Trace, Tracer};

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, HashSet, LinkedList, VecDeque};

use std::marker::{PhantomData, PhantomPinned};
use std::mem::ManuallyDrop;
use std::num::{
    NonZeroI128, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI8, NonZeroIsize, NonZeroU128,
    NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU8, NonZeroUsize, Saturating, Wrapping,
};

/// `Trace` for types that can never hold a handle: `NO_SCAN`, every method a no-op.
macro_rules! no_scan_leaf {
    ($($ty:ty),* $(,)?) => {$(
        // SAFETY: values of this type own no handle (it is plain data or an OS resource),
        // so there is nothing to report, root or unroot (rules 1 and 2), `NO_SCAN = true`
        // with no-op methods is exact (rule 3), and the type has no interior mutability
        // over handles (rule 4) and no `Drop` that could look through one (rule 5).
        unsafe impl Trace for $ty {
            opaque_body!();
        }
    )*};
}

no_scan_leaf! {
    (), bool, char,
    u8, u16, u32, u64, u128, usize,
    i8, i16, i32, i64, i128, isize,
    f32, f64,
    NonZeroU8, NonZeroU16, NonZeroU32, NonZeroU64, NonZeroU128, NonZeroUsize,
    NonZeroI8, NonZeroI16, NonZeroI32, NonZeroI64, NonZeroI128, NonZeroIsize,
    str, String,
    std::ffi::CStr, std::ffi::CString, std::ffi::OsStr, std::ffi::OsString,
    std::path::Path, std::path::PathBuf,
    std::time::Duration, std::time::Instant, std::time::SystemTime,
    std::cmp::Ordering, std::convert::Infallible, std::alloc::Layout, std::any::TypeId,
    std::thread::ThreadId, PhantomPinned,
    std::net::IpAddr, std::net::Ipv4Addr, std::net::Ipv6Addr,
    std::net::SocketAddr, std::net::SocketAddrV4, std::net::SocketAddrV6,
    std::net::TcpStream, std::net::TcpListener, std::net::UdpSocket,
    std::fs::File,
}

// SAFETY: a `PhantomData` owns nothing, so it holds no handle (rules 1-3); it has no
// interior mutability (rule 4) and no `Drop` (rule 5). The bounds on `T` are the ones that
// make `PhantomData<T>` itself `Send + Sync + 'static`.
unsafe impl<T: ?Sized + Send + Sync + 'static> Trace for PhantomData<T> {
    opaque_body!();
}

/// `Trace` for a wrapper that owns exactly one `T`, reached by `$get`/`$get_mut`.
macro_rules! delegate_one {
    ($($ty:ident: |$s:ident| $get:expr, |$m:ident| $get_mut:expr;)*) => {$(
        // SAFETY: the wrapper owns exactly one `T` and visits it in all three methods
        // (rules 1 and 2), so it is `NO_SCAN` exactly when `T` is (rule 3); it adds no
        // interior mutability (rule 4) and no `Drop` (rule 5).
        unsafe impl<T: Trace> Trace for $ty<T> {
            const NO_SCAN: bool = T::NO_SCAN;
            const NEEDS_DROP: bool = T::NEEDS_DROP;

            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                if T::NO_SCAN {
                    return;
                }
                let $s = self;
                Trace::trace($get, tracer);
            }

            #[inline]
            fn root(&mut self) {
                if T::NO_SCAN {
                    return;
                }
                let $m = self;
                Trace::root($get_mut);
            }

            #[inline]
            unsafe fn unroot(&mut self) {
                if T::NO_SCAN {
                    return;
                }
                let $m = self;
                // SAFETY: the wrapped value is part of `*self`, so the caller's guarantee
                // for `*self` covers it.
                unsafe { Trace::unroot($get_mut) };
            }
        }
    )*};
}

delegate_one! {
    Reverse: |s| &s.0, |m| &mut m.0;
    Wrapping: |s| &s.0, |m| &mut m.0;
    Saturating: |s| &s.0, |m| &mut m.0;
    // The value is still owned, only its destructor is suppressed: a rooted handle in it
    // then leaks, an unrooted one was never counted. Either way tracing must see it.
    ManuallyDrop: |s| &**s, |m| &mut **m;
}

// SAFETY: a `Box` owns its content and visits it in all three methods (rules 1 and 2); it
// is `NO_SCAN` exactly when `T` is (rule 3); it adds no interior mutability (rule 4) and
// its `Drop` only drops and frees the content (rule 5).
unsafe impl<T: ?Sized + Trace> Trace for Box<T> {
    const NO_SCAN: bool = T::NO_SCAN;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NO_SCAN {
            return;
        }
        (**self).trace(tracer);
    }

    #[inline]
    fn root(&mut self) {
        if T::NO_SCAN {
            return;
        }
        (**self).root();
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        if T::NO_SCAN {
            return;
        }
        // SAFETY: the boxed value is owned by, hence part of, `*self`; the caller's
        // guarantee for `*self` covers it.
        unsafe { (**self).unroot() };
    }
}

// SAFETY: a slice visits every element in all three methods (rules 1 and 2); it is
// `NO_SCAN` exactly when `T` is (rule 3); it adds no interior mutability (rule 4) and no
// `Drop` (rule 5).
unsafe impl<T: Trace> Trace for [T] {
    const NO_SCAN: bool = T::NO_SCAN;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NO_SCAN {
            return;
        }
        for element in self {
            element.trace(tracer);
        }
    }

    #[inline]
    fn root(&mut self) {
        if T::NO_SCAN {
            return;
        }
        for element in self {
            element.root();
        }
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        if T::NO_SCAN {
            return;
        }
        for element in self {
            // SAFETY: each element is part of `*self`; the caller's guarantee covers it.
            unsafe { element.unroot() };
        }
    }
}

// SAFETY: an array is a slice with a length in its type: it delegates every method to the
// slice impl, which satisfies the rules, and has the same `NO_SCAN`.
unsafe impl<T: Trace, const N: usize> Trace for [T; N] {
    const NO_SCAN: bool = T::NO_SCAN;
    const NEEDS_DROP: bool = N > 0 && T::NEEDS_DROP;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        self.as_slice().trace(tracer);
    }

    #[inline]
    fn root(&mut self) {
        self.as_mut_slice().root();
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        // SAFETY: the slice is all of `*self`; the caller's guarantee covers it.
        unsafe { self.as_mut_slice().unroot() };
    }
}

/// The three `Trace` methods of a collection that owns elements of type `$e`, reached through
/// its `$iter`/`$iter_mut` methods: each element is visited, and nothing when `$e` is noscan.
macro_rules! elements_methods {
    ($e:ident, $iter:ident, $iter_mut:ident) => {
        #[inline]
        fn trace(&self, tracer: &mut Tracer) {
            if $e::NO_SCAN {
                return;
            }
            for element in self.$iter() {
                element.trace(tracer);
            }
        }

        #[inline]
        fn root(&mut self) {
            if $e::NO_SCAN {
                return;
            }
            for element in self.$iter_mut() {
                element.root();
            }
        }

        #[inline]
        unsafe fn unroot(&mut self) {
            if $e::NO_SCAN {
                return;
            }
            for element in self.$iter_mut() {
                // SAFETY: each element is owned by, hence part of, `*self`; the caller's
                // guarantee covers it.
                unsafe { element.unroot() };
            }
        }
    };
}

/// `Trace` for the owning sequences, through `iter`/`iter_mut`.
macro_rules! sequence {
    ($($ty:ident),* $(,)?) => {$(
        // SAFETY: the collection owns its elements and visits every one of them in all
        // three methods (rules 1 and 2); it is `NO_SCAN` exactly when `T` is (rule 3); it
        // adds no interior mutability (rule 4) and its `Drop` drops the elements and frees
        // the buffer, touching no other object (rule 5).
        unsafe impl<T: Trace> Trace for $ty<T> {
            const NO_SCAN: bool = T::NO_SCAN;
            // `NEEDS_DROP` stays the default: even with elements that need none, the
            // collection's own buffer must be freed.

            elements_methods!(T, iter, iter_mut);
        }
    )*};
}

sequence!(Vec, VecDeque, LinkedList);

// SAFETY: an `Option` visits its value, if any, in all three methods (rules 1 and 2); it
// is `NO_SCAN` exactly when `T` is (rule 3); it adds no interior mutability (rule 4) and
// no `Drop` (rule 5).
unsafe impl<T: Trace> Trace for Option<T> {
    const NO_SCAN: bool = T::NO_SCAN;
    const NEEDS_DROP: bool = T::NEEDS_DROP;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if T::NO_SCAN {
            return;
        }
        if let Some(value) = self {
            value.trace(tracer);
        }
    }

    #[inline]
    fn root(&mut self) {
        if T::NO_SCAN {
            return;
        }
        if let Some(value) = self {
            value.root();
        }
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        if T::NO_SCAN {
            return;
        }
        if let Some(value) = self {
            // SAFETY: the value is part of `*self`; the caller's guarantee covers it.
            unsafe { value.unroot() };
        }
    }
}

// SAFETY: a `Result` visits whichever value it holds in all three methods (rules 1 and 2);
// it is `NO_SCAN` exactly when both `T` and `E` are (rule 3); it adds no interior
// mutability (rule 4) and no `Drop` (rule 5).
unsafe impl<T: Trace, E: Trace> Trace for Result<T, E> {
    const NO_SCAN: bool = T::NO_SCAN && E::NO_SCAN;
    const NEEDS_DROP: bool = T::NEEDS_DROP || E::NEEDS_DROP;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        match self {
            Ok(value) => value.trace(tracer),
            Err(error) => error.trace(tracer),
        }
    }

    #[inline]
    fn root(&mut self) {
        match self {
            Ok(value) => value.root(),
            Err(error) => error.root(),
        }
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        match self {
            // SAFETY: the value is part of `*self`; the caller's guarantee covers it.
            Ok(value) => unsafe { value.unroot() },
            // SAFETY: the error is part of `*self`; the caller's guarantee covers it.
            Err(error) => unsafe { error.unroot() },
        }
    }
}

/// `Trace` for tuples: every element is visited, `NO_SCAN` is the AND of the elements'.
macro_rules! tuple {
    ($($name:ident)+) => {
        // SAFETY: a tuple visits each of its elements in all three methods (rules 1 and
        // 2); it is `NO_SCAN` exactly when every element type is (rule 3); it adds no
        // interior mutability (rule 4) and no `Drop` (rule 5).
        unsafe impl<$($name: Trace),+> Trace for ($($name,)+) {
            const NO_SCAN: bool = $($name::NO_SCAN)&&+;
            const NEEDS_DROP: bool = $($name::NEEDS_DROP)||+;

            #[inline]
            fn trace(&self, tracer: &mut Tracer) {
                if Self::NO_SCAN {
                    return;
                }
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.trace(tracer);)+
            }

            #[inline]
            fn root(&mut self) {
                if Self::NO_SCAN {
                    return;
                }
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $($name.root();)+
            }

            #[inline]
            unsafe fn unroot(&mut self) {
                if Self::NO_SCAN {
                    return;
                }
                #[allow(non_snake_case)]
                let ($($name,)+) = self;
                $(
                    // SAFETY: each element is part of `*self`; the caller's guarantee
                    // covers it.
                    unsafe { $name.unroot() };
                )+
            }
        }
    };
}

tuple!(A);
tuple!(A B);
tuple!(A B C);
tuple!(A B C D);
tuple!(A B C D E);
tuple!(A B C D E F);
tuple!(A B C D E F G);
tuple!(A B C D E F G H);
tuple!(A B C D E F G H I);
tuple!(A B C D E F G H I J);
tuple!(A B C D E F G H I J K);
tuple!(A B C D E F G H I J K L);

// SAFETY: a `Cow` visits its owned value, if it holds one, in all three methods (rules 1
// and 2). A borrowed `&'static B` is shared, never traced and never unrooted, so handles
// behind it stay rooted (the argument of `opaque.rs`, rule 6). `NO_SCAN` is the owned
// type's (rule 3); `Cow` adds no interior mutability (rule 4) and no `Drop` (rule 5).
unsafe impl<B> Trace for Cow<'static, B>
where
    B: ?Sized + ToOwned + Send + Sync + 'static,
    B::Owned: Trace,
{
    const NO_SCAN: bool = <B::Owned as Trace>::NO_SCAN;

    #[inline]
    fn trace(&self, tracer: &mut Tracer) {
        if Self::NO_SCAN {
            return;
        }
        if let Cow::Owned(owned) = self {
            owned.trace(tracer);
        }
    }

    #[inline]
    fn root(&mut self) {
        if Self::NO_SCAN {
            return;
        }
        if let Cow::Owned(owned) = self {
            owned.root();
        }
    }

    #[inline]
    unsafe fn unroot(&mut self) {
        if Self::NO_SCAN {
            return;
        }
        if let Cow::Owned(owned) = self {
            // SAFETY: the owned value is part of `*self`; the caller's guarantee covers it.
            unsafe { owned.unroot() };
        }
    }
}

// Keyed collections: keys are opaque.
//
// A key cannot be mutated in place (`HashMap` and `BTreeMap` hand out `&K` only), and the only
// way to change a handle's rooted bit in a key would be to take the entries out and put them
// back, running the user's `Hash`/`Eq`/`Ord` inside a mutator operation, where user code must
// not run (rule 7: it could block on a lock held by a thread the collector is waiting for, or
// start another operation). So keys, set elements and binary-heap elements are treated like the
// contents of an `Arc` (`opaque.rs`): never traversed, never unrooted. Their handles stay
// rooted for as long as the collection holds them, so nothing they reach is ever freed early,
// and a cycle through a key leaks, as it would with `Rc`. Map *values* are traced as usual.
//
// For collectable membership, key by a noscan id (`HashMap<u64, Gc<T>>`) or keep the handles
// in a `Vec`.

/// `Trace` for maps: values traced, keys opaque.
macro_rules! map_values {
    ($($ty:ident<K, V $(, $s:ident)?>),* $(,)?) => {$(
        // SAFETY: values are visited in all three methods (rules 1 and 2); keys are never
        // visited, unrooted or traced, so their handles stay rooted (rule 6's argument, as for
        // opaque types); `NO_SCAN` is the values' (rule 3): keys' handles are roots, which a
        // noscan span may hold. No user code runs: `values`/`values_mut` neither hash nor
        // compare keys (rule 7).
        unsafe impl<K: Send + Sync + 'static, V: Trace $(, $s: Send + Sync + 'static)?> Trace
            for $ty<K, V $(, $s)?>
        {
            const NO_SCAN: bool = V::NO_SCAN;

            elements_methods!(V, values, values_mut);
        }
    )*};
}

map_values!(HashMap<K, V, S>, BTreeMap<K, V>);

/// `Trace` for collections whose elements are keys: opaque, like an `Arc`'s content.
macro_rules! opaque_elements {
    ($($ty:ident<$t:ident $(, $s:ident)?>),* $(,)?) => {$(
        // SAFETY: the elements are never traversed, unrooted or traced, so their handles stay
        // rooted (rule 6's argument, as for opaque types) and no user `Hash`/`Ord` runs in a
        // mutator operation (rule 7); with nothing traced, `NO_SCAN` is `true` (rule 3).
        unsafe impl<$t: Send + Sync + 'static $(, $s: Send + Sync + 'static)?> Trace
            for $ty<$t $(, $s)?>
        {
            opaque_body!();
        }
    )*};
}

opaque_elements!(HashSet<T, S>, BTreeSet<T>, BinaryHeap<T>);

#[cfg(test)]
mod tests {
    use super::super::probe::{edges, no_scan, unroot, Probe};
    use super::*;

    fn probes(ids: core::ops::Range<u32>) -> Vec<Probe> {
        ids.map(Probe::new).collect()
    }

    #[test]
    fn leaves_are_no_scan() {
        assert!(no_scan::<u8>());
        assert!(no_scan::<u128>());
        assert!(no_scan::<f64>());
        assert!(no_scan::<char>());
        assert!(no_scan::<()>());
        assert!(no_scan::<String>());
        assert!(no_scan::<str>());
        assert!(no_scan::<NonZeroU64>());
        assert!(no_scan::<std::time::Duration>());
        assert!(no_scan::<std::path::PathBuf>());
        assert!(no_scan::<std::fs::File>());
        assert!(no_scan::<PhantomData<Probe>>());
        assert!(no_scan::<PhantomData<dyn Send + Sync>>());
    }

    #[test]
    fn containers_inherit_no_scan() {
        assert!(no_scan::<Vec<String>>());
        assert!(no_scan::<Box<str>>());
        assert!(no_scan::<Box<[u32]>>());
        assert!(no_scan::<Option<Box<u8>>>());
        assert!(no_scan::<Result<u8, String>>());
        assert!(no_scan::<(u8, String, f32)>());
        assert!(no_scan::<[u64; 4]>());
        assert!(no_scan::<HashMap<String, Vec<u8>>>());
        assert!(no_scan::<BTreeSet<i32>>());
        assert!(no_scan::<Cow<'static, str>>());
        assert!(no_scan::<Reverse<u8>>());

        assert!(!no_scan::<Vec<Probe>>());
        assert!(!no_scan::<Box<Probe>>());
        assert!(!no_scan::<Box<[Probe]>>());
        assert!(!no_scan::<Option<Probe>>());
        assert!(!no_scan::<Result<u8, Probe>>());
        assert!(!no_scan::<Result<Probe, u8>>());
        type Twelve = (u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, Probe);
        assert!(!no_scan::<Twelve>());
        assert!(!no_scan::<[Probe; 0]>());
        assert!(no_scan::<HashMap<Probe, u8>>());
        assert!(!no_scan::<HashMap<u8, Probe>>());
        assert!(!no_scan::<BTreeMap<u8, Vec<Probe>>>());
        assert!(!no_scan::<Cow<'static, [Probe]>>());
        assert!(!no_scan::<ManuallyDrop<Probe>>());
        assert!(!no_scan::<Wrapping<Probe>>());
    }

    /// Traces, roots and unroots `value`, checking that each visits `expected` probes, and
    /// that after `root` every probe `rooted_of` reports is rooted once, and after `unroot`
    /// back to zero.
    fn check<T: Trace>(mut value: T, expected: usize, rooted_of: impl Fn(&T) -> Vec<i32>) {
        assert_eq!(edges(&value), expected, "trace");
        value.root();
        let rooted = rooted_of(&value);
        assert_eq!(rooted.len(), expected, "probe count");
        assert!(rooted.iter().all(|&r| r == 1), "root: {rooted:?}");
        unroot(&mut value);
        assert!(rooted_of(&value).iter().all(|&r| r == 0), "unroot");
        assert_eq!(edges(&value), expected, "trace after unroot");
    }

    fn rooted<'a>(it: impl IntoIterator<Item = &'a Probe>) -> Vec<i32> {
        it.into_iter().map(|p| p.rooted).collect()
    }

    #[test]
    fn sequences_visit_every_element() {
        check(probes(0..5), 5, |v| rooted(v));
        check(probes(0..5).into_iter().collect::<VecDeque<_>>(), 5, |v| {
            rooted(v)
        });
        check(
            probes(0..5).into_iter().collect::<LinkedList<_>>(),
            5,
            |v| rooted(v),
        );
        check(probes(0..3).into_boxed_slice(), 3, |v| rooted(v.iter()));
        check([Probe::new(0), Probe::new(1)], 2, |v| rooted(v));
        check(Box::new(Probe::new(0)), 1, |v| vec![v.rooted]);
        check(Vec::<Probe>::new(), 0, |v| rooted(v));
    }

    #[test]
    fn sum_types_visit_their_payload() {
        check(Some(Probe::new(0)), 1, |v| rooted(v));
        check(None::<Probe>, 0, |v| rooted(v));
        check(Ok::<Probe, Probe>(Probe::new(0)), 1, |v| match v {
            Ok(p) | Err(p) => vec![p.rooted],
        });
        check(Err::<Probe, Probe>(Probe::new(0)), 1, |v| match v {
            Ok(p) | Err(p) => vec![p.rooted],
        });
        check(Cow::<'static, [Probe]>::Owned(probes(0..2)), 2, |v| {
            rooted(v.iter())
        });
        check(Cow::<'static, [Probe]>::Borrowed(&[]), 0, |v| {
            rooted(v.iter())
        });
    }

    #[test]
    fn tuples_and_wrappers_visit_every_element() {
        check((Probe::new(0), 5u8, Probe::new(1)), 2, |(a, _, b)| {
            vec![a.rooted, b.rooted]
        });
        check(
            (
                0u8,
                1u8,
                2u8,
                3u8,
                4u8,
                5u8,
                6u8,
                7u8,
                8u8,
                9u8,
                10u8,
                Probe::new(0),
            ),
            1,
            |t| vec![t.11.rooted],
        );
        check(Reverse(Probe::new(0)), 1, |v| vec![v.0.rooted]);
        check(Wrapping(Probe::new(0)), 1, |v| vec![v.0.rooted]);
        check(Saturating(Probe::new(0)), 1, |v| vec![v.0.rooted]);
        check(ManuallyDrop::new(Probe::new(0)), 1, |v| vec![v.rooted]);
        check(
            vec![vec![Probe::new(0)], vec![Probe::new(1), Probe::new(2)]],
            3,
            |v| rooted(v.iter().flatten()),
        );
    }

    #[test]
    fn maps_reach_values_and_keep_keys_rooted() {
        // Keys are opaque: only the values are visited.
        let map: HashMap<Probe, Probe> = (0..50).map(|i| (Probe::new(i), Probe::new(i))).collect();
        check(map, 50, |m| rooted(m.values()));
        let map: HashMap<u32, Probe> = (0..50).map(|i| (i, Probe::new(i))).collect();
        check(map, 50, |m| rooted(m.values()));
        let map: BTreeMap<Probe, Probe> = (0..50).map(|i| (Probe::new(i), Probe::new(i))).collect();
        check(map, 50, |m| rooted(m.values()));
        let map: BTreeMap<String, Probe> = (0..5).map(|i| (i.to_string(), Probe::new(i))).collect();
        check(map, 5, |m| rooted(m.values()));

        // Keys keep whatever rootedness they were created with.
        let mut map: HashMap<Probe, u32> = (0..20).map(|i| (Probe::new(i), i)).collect();
        unroot(&mut map);
        assert!(map.keys().all(|k| k.rooted == 0), "keys are never unrooted");
        assert!((0..20).all(|i| map[&Probe::new(i)] == i));
    }

    #[test]
    fn sets_and_heaps_are_opaque() {
        assert!(no_scan::<HashSet<Probe>>());
        assert!(no_scan::<BTreeSet<Probe>>());
        assert!(no_scan::<BinaryHeap<Probe>>());
        let set: HashSet<Probe> = probes(0..30).into_iter().collect();
        assert_eq!(edges(&set), 0);
        let mut heap: BinaryHeap<Probe> = probes(0..30).into_iter().collect();
        unroot(&mut heap);
        assert!(
            heap.iter().all(|p| p.rooted == 0),
            "elements are never unrooted"
        );
        assert_eq!(heap.peek().map(|p| p.id), Some(29));
    }

    #[test]
    fn no_scan_containers_do_no_work() {
        assert_eq!(edges(&vec![String::from("a"); 3]), 0);
        assert_eq!(edges(&HashMap::from([(1u8, 2u8)])), 0);
        assert_eq!(edges(&(1u8, 'c', String::new())), 0);
        let mut v = vec![1u64, 2, 3];
        v.root();
        unroot(&mut v);
        assert_eq!(v, [1, 2, 3]);
    }
}
