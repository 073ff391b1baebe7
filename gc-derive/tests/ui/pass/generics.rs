// Generic types: each type parameter used in a traced field gets `T: Trace`, existing
// bounds and where clauses are kept, const parameters need nothing.
use gc_core::Trace;
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::marker::PhantomData;

#[derive(Trace)]
struct Plain<T> {
    value: T,
    values: Vec<T>,
}

#[derive(Trace)]
struct InlineBounds<K: Eq + Hash, V: Debug> {
    map: HashMap<K, V>,
}

#[derive(Trace)]
struct WhereClause<A, B>
where
    A: Clone,
    B: Default + Clone,
{
    pair: (A, B),
}

#[derive(Trace)]
struct ConstGeneric<T, const N: usize> {
    items: [T; N],
}

#[derive(Trace)]
struct Marker<T: ?Sized + Send + Sync + 'static> {
    id: u64,
    _marker: PhantomData<T>,
}

// `U` appears only in a skipped field: it gets `Send + Sync + 'static`, not `Trace`.
struct NotTrace;

#[derive(Trace)]
struct SkipOnly<T, U> {
    traced: Option<T>,
    #[gc(skip)]
    skipped: U,
}

#[derive(Trace)]
enum Either<L, R> {
    Left(L),
    Right(R),
}

fn is_no_scan<T: Trace + ?Sized>() -> bool {
    T::NO_SCAN
}

fn main() {
    assert!(is_no_scan::<Plain<u32>>());
    assert!(is_no_scan::<InlineBounds<String, Vec<u8>>>());
    assert!(is_no_scan::<WhereClause<u8, String>>());
    assert!(is_no_scan::<ConstGeneric<char, 4>>());
    assert!(is_no_scan::<Marker<str>>());
    assert!(is_no_scan::<SkipOnly<u8, NotTrace>>());
    assert!(is_no_scan::<Either<u8, Box<str>>>());

    let _ = Plain {
        value: 1u8,
        values: vec![2],
    };
    let _ = InlineBounds::<u8, u8> {
        map: HashMap::new(),
    };
    let _ = WhereClause { pair: (1u8, 2u8) };
    let _ = ConstGeneric { items: [1u8; 3] };
    let _ = Marker::<str> {
        id: 1,
        _marker: PhantomData,
    };
    let _ = SkipOnly {
        traced: Some(1u8),
        skipped: NotTrace,
    };
    let _ = Either::<u8, u8>::Left(1);
    let _ = Either::<u8, u8>::Right(1);
}
