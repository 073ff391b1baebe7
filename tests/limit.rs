//! The memory limit is reported, not UB, and a failed allocation loses nothing (its own binary:
//! `gc_core::configure` must come before any other use of the collector).
//!
//! Review finding 3b: `Gc::try_new` used to drop the refused value inside a mutator operation,
//! so a `Drop` that allocates or collects panicked or deadlocked instead of `try_new` returning
//! `Err`.

use std::sync::atomic::{AtomicUsize, Ordering};

use gc_core::{AllocError, Gc, GcConfig, Trace};

static DROPS: AtomicUsize = AtomicUsize::new(0);

#[derive(Trace)]
#[gc(no_scan)]
struct Big {
    buf: Vec<u8>,
    mode: u8,
}

impl Drop for Big {
    fn drop(&mut self) {
        DROPS.fetch_add(1, Ordering::SeqCst);
        assert_eq!(self.buf.len(), 4 << 20);
        match self.mode {
            1 => drop(Gc::new(1u64)),
            2 => gc_core::collect(),
            _ => {}
        }
    }
}

#[derive(Trace)]
#[gc(no_scan)]
struct Inline {
    buf: [u8; 2 << 20],
}

#[test]
fn the_memory_limit_is_an_error_and_loses_nothing() {
    // The 2 MiB values below travel by value: give them room.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(limit_body)
        .expect("thread")
        .join()
        .expect("no failure");
}

fn limit_body() {
    let mut c = GcConfig::default();
    c.memory_limit = Some(1 << 20);
    gc_core::configure(c).expect("first use of the collector in this binary");

    // A value whose own allocation is small but whose destructor allocates or collects.
    for mode in [0, 1, 2] {
        let v = Big {
            buf: vec![0; 4 << 20],
            mode,
        };
        assert!(Gc::try_new(v).is_ok(), "16-byte object within the limit");
    }
    gc_core::collect();

    // An object over the limit: `Err` with a clear message; its value is dropped after.
    let before = DROPS.load(Ordering::SeqCst);
    let value = Inline { buf: [1; 2 << 20] };
    assert_eq!(value.buf[0], 1);
    let r = Gc::try_new(value);
    let e = r.err().expect("2 MiB object over a 1 MiB limit");
    assert!(matches!(e, AllocError::MemoryLimit { .. }), "{e:?}");
    assert!(e.to_string().contains("heap limit"), "{e}");
    assert_eq!(DROPS.load(Ordering::SeqCst), before);

    // `Gc::new` panics with the same message.
    let p = std::panic::catch_unwind(|| drop(Gc::new(Inline { buf: [2; 2 << 20] })))
        .expect_err("Gc::new panics on failure");
    let msg = p.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("heap limit"), "{msg}");

    // The collector is still usable.
    let small = Gc::new(5u64);
    gc_core::collect();
    assert_eq!(*small, 5);
}
