//! Runtime behaviour of derived impls: `NO_SCAN` is the AND of the traced fields', and
//! `trace`, `root` and `unroot` visit exactly the fields that are not skipped, in every
//! variant.

// Skipped fields exist to be skipped: nothing reads them.
#![allow(dead_code)]

use gc_core::__private::count_traced_edges;
use gc_core::{Trace, Tracer};
use std::cell::RefCell;

/// What happened to which probe, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Trace(u32),
    Root(u32),
    Unroot(u32),
}

thread_local! {
    static LOG: RefCell<Vec<Event>> = const { RefCell::new(Vec::new()) };
}

/// Clears the log, runs `f`, and returns what was logged.
fn logged(f: impl FnOnce()) -> Vec<Event> {
    LOG.with(|log| log.borrow_mut().clear());
    f();
    LOG.with(|log| log.borrow_mut().split_off(0))
}

/// Stands for a field that holds a traced handle: `NO_SCAN = false`, and every visit is
/// logged with the probe's id.
#[derive(Debug)]
struct Probe(u32);

// SAFETY: a probe holds no handle at all (`NO_SCAN = false` is always allowed); its
// methods only log.
unsafe impl Trace for Probe {
    const NO_SCAN: bool = false;

    fn trace(&self, _: &mut Tracer) {
        LOG.with(|log| log.borrow_mut().push(Event::Trace(self.0)));
    }

    fn root(&mut self) {
        LOG.with(|log| log.borrow_mut().push(Event::Root(self.0)));
    }

    unsafe fn unroot(&mut self) {
        LOG.with(|log| log.borrow_mut().push(Event::Unroot(self.0)));
    }
}

/// Traces, roots and unroots `value`, and checks that each visited exactly `ids`, in order.
fn assert_visits<T: Trace>(mut value: T, ids: &[u32]) {
    let traced = logged(|| {
        assert_eq!(count_traced_edges(&value), 0);
    });
    assert_eq!(
        traced,
        ids.iter().map(|&id| Event::Trace(id)).collect::<Vec<_>>()
    );
    let rooted = logged(|| value.root());
    assert_eq!(
        rooted,
        ids.iter().map(|&id| Event::Root(id)).collect::<Vec<_>>()
    );
    // SAFETY: the value holds only probes and plain data, no real handle.
    let unrooted = logged(|| unsafe { value.unroot() });
    assert_eq!(
        unrooted,
        ids.iter().map(|&id| Event::Unroot(id)).collect::<Vec<_>>()
    );
}

fn no_scan<T: Trace + ?Sized>() -> bool {
    T::NO_SCAN
}

/// Not `Trace`; only ever in skipped fields.
struct Opaque;

#[derive(Trace)]
struct Named {
    first: Probe,
    plain: u64,
    #[gc(skip)]
    skipped: Probe,
    #[gc(skip)]
    not_trace: Opaque,
    nested: Vec<Probe>,
}

#[derive(Trace)]
struct Tuple(Probe, #[gc(skip)] Probe, Option<Probe>);

#[derive(Trace)]
struct Unit;

#[derive(Trace)]
enum Message {
    Quit,
    Move(Probe, #[gc(skip)] Probe, u8, Probe),
    Write {
        #[gc(skip)]
        hidden: Probe,
        text: String,
        to: Probe,
    },
    Skipped(#[gc(skip)] Probe),
}

#[derive(Trace)]
struct Generic<T, U> {
    traced: T,
    #[gc(skip)]
    skipped: U,
}

#[derive(Trace)]
#[gc(no_scan)]
struct NoScan {
    id: u64,
    #[gc(skip)]
    probe: Probe,
}

#[derive(Trace)]
struct Recursive {
    probe: Probe,
    next: Option<Box<Recursive>>,
}

#[test]
fn no_scan_is_the_and_of_traced_fields() {
    assert!(!no_scan::<Named>());
    assert!(!no_scan::<Tuple>());
    assert!(no_scan::<Unit>());
    assert!(!no_scan::<Message>());
    assert!(no_scan::<Generic<u8, Probe>>());
    assert!(no_scan::<Generic<(u8, String), Opaque>>());
    assert!(!no_scan::<Generic<Box<Probe>, u8>>());
    assert!(no_scan::<NoScan>());
    assert!(!no_scan::<Recursive>());
}

#[test]
fn structs_visit_exactly_the_traced_fields() {
    let named = Named {
        first: Probe(1),
        plain: 0,
        skipped: Probe(2),
        not_trace: Opaque,
        nested: vec![Probe(3), Probe(4)],
    };
    assert_visits(named, &[1, 3, 4]);
    assert_visits(Tuple(Probe(1), Probe(2), Some(Probe(3))), &[1, 3]);
    assert_visits(Tuple(Probe(1), Probe(2), None), &[1]);
    assert_visits(Unit, &[]);
    assert_visits(
        Generic {
            traced: Probe(1),
            skipped: Probe(2),
        },
        &[1],
    );
    assert_visits(
        Generic {
            traced: [Probe(1), Probe(2)],
            skipped: Opaque,
        },
        &[1, 2],
    );
}

#[test]
fn enums_visit_exactly_the_traced_fields_of_each_variant() {
    assert_visits(Message::Quit, &[]);
    assert_visits(Message::Move(Probe(1), Probe(2), 0, Probe(3)), &[1, 3]);
    let write = Message::Write {
        hidden: Probe(1),
        text: String::new(),
        to: Probe(2),
    };
    assert_visits(write, &[2]);
    assert_visits(Message::Skipped(Probe(1)), &[]);
}

#[test]
fn no_scan_types_visit_nothing() {
    assert_visits(
        NoScan {
            id: 1,
            probe: Probe(1),
        },
        &[],
    );
}

#[test]
fn recursive_types_visit_the_whole_structure() {
    let list = Recursive {
        probe: Probe(1),
        next: Some(Box::new(Recursive {
            probe: Probe(2),
            next: None,
        })),
    };
    assert_visits(list, &[1, 2]);
}

#[test]
fn no_scan_fields_are_not_visited() {
    // A container of a derived noscan type does no work at all.
    let many: Vec<Generic<u8, Probe>> = (0..3)
        .map(|i| Generic {
            traced: i,
            skipped: Probe(u32::from(i)),
        })
        .collect();
    assert_visits(many, &[]);
}
