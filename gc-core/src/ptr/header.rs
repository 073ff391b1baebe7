//! The one-word object header and the type descriptor it points at.
//!
//! Every object outside tiny blocks starts with an [`ObjectHeader`]: one 64-bit word holding
//!
//! ```text
//!  63                32 31                 0
//! +--------------------+--------------------+
//! |  descriptor code   |     root count     |
//! +--------------------+--------------------+
//! ```
//!
//! so a 24-byte value takes the 32-byte class, as it would in Go (whose objects have no header
//! at all, because Go has stack maps; we need a root count instead, see DESIGN §4).
//!
//! # The descriptor code
//!
//! A [`TypeDescriptor`] is a `&'static` table (trace fn, drop fn, size, alignment, type name)
//! built by const promotion for every type put in the heap. 32 bits cannot hold its address,
//! but they can hold its *distance* from an anchor static inside gc-core: descriptors and the
//! anchor are read-only data of the same program, which linkers keep within a few hundred MiB
//! of each other. The code is `(address − anchor) / 8` shifted left by one (even codes), which
//! reaches ±8 GiB. A descriptor further away (a type from a separately loaded shared object
//! placed far from gc-core) is entered in a registry instead and gets an odd code `index << 1 |
//! 1`; decoding an odd code reads the registry. Both paths are lock-free to decode.
//!
//! # The root count
//!
//! The low 32 bits count the rooted handles to the object (DESIGN §4). Increments use
//! `fetch_add` on the whole word; since the count never reaches 2^32 (see saturation below) the
//! carry never reaches the descriptor code.
//!
//! **Saturation.** An increment that finds the count at or above 2^31 undoes itself, so the
//! count never goes more than a few racing threads past 2^31 (nowhere near 2^32). A decrement
//! is one `fetch_sub` (like `Arc`'s); if it finds the count at or above 2^31 − 2^16 it undoes
//! itself, so a count that once passed that mark never comes back down by more than the number
//! of decrements racing at one instant (far fewer than 2^16), and the object is never freed: a
//! leak of one object after two billion rooted handles, never a use-after-free.

// The descriptor registry is a static, so it uses `core` atomics through `sync::raw_atomic`.

use core::fmt;

use crate::sync::atomic::{AtomicU64, Ordering};
use crate::sync::raw_atomic::{AtomicPtr, Ordering as RawOrdering};
use crate::trace::Tracer;

/// What the collector needs to know about a type in the heap. One per type, `'static`.
pub struct TypeDescriptor {
    /// Reports the object's outgoing edges; `None` for noscan types.
    ///
    /// Called with the address of the object's header.
    pub trace: Option<unsafe fn(*const u8, &mut Tracer)>,
    /// Drops the object's value in place; `None` when the type needs no drop.
    ///
    /// Called with the address of the object's header, once, by the sweeper.
    pub drop: Option<unsafe fn(*mut u8)>,
    /// Bytes of the whole object, header included.
    pub size: usize,
    /// Alignment of the whole object (at least 8).
    pub align: usize,
    /// The type's name, for heap profiles and messages (a function because
    /// `core::any::type_name` is not `const`).
    pub name: fn() -> &'static str,
}

impl fmt::Debug for TypeDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypeDescriptor")
            .field("name", &(self.name)())
            .field("size", &self.size)
            .field("align", &self.align)
            .field("scan", &self.trace.is_some())
            .field("drop", &self.drop.is_some())
            .finish()
    }
}

/// The anchor descriptor codes are measured from. Its content is never used.
#[repr(align(8))]
struct Anchor(#[allow(dead_code)] u64);
static ANCHOR: Anchor = Anchor(0);

/// Root counts at or above this are saturated.
pub const ROOTS_SATURATED: u32 = 1 << 31;

/// Decrements that find the count at or above this are undone (see the module docs).
pub const ROOTS_STICKY: u32 = ROOTS_SATURATED - (1 << 16);

/// Root-count value of a dead object whose drop is queued (never a live count: see
/// [`ObjectHeader::drop_state`]).
const QUEUED: u32 = u32::MAX - 1;
/// Root-count value of a dead object whose drop has run.
const DROPPED: u32 = u32::MAX;

/// Where a dead object that needs a drop stands. Kept in the dead object's root-count bits,
/// which nothing else uses once the object is unreachable; the sweeper reads it to decide
/// whether the slot can be freed, so no sweep frees a slot whose drop has not run yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DropState {
    /// Not found dead yet (or found dead by the sweep now looking at it).
    NotQueued,
    /// Found dead; its drop is queued.
    Queued,
    /// Dropped; the slot can be freed.
    Dropped,
}

const REGISTRY_LEN: usize = 1 << 16;
/// Descriptors too far from the anchor, by index. Append-only.
static REGISTRY: [AtomicPtr<TypeDescriptor>; REGISTRY_LEN] =
    [const { AtomicPtr::new(core::ptr::null_mut()) }; REGISTRY_LEN];
static REGISTRY_LOCK: crate::sync::StaticMutex<usize> = crate::sync::StaticMutex::new(0);

/// Encodes a descriptor as a 32-bit code.
///
/// Under Miri every descriptor goes through the registry: decoding an anchor-relative code
/// recreates a pointer from an integer (exposed provenance), which Miri's strict-provenance
/// mode rejects, and the registry path is the one that keeps provenance.
#[inline(always)]
#[cfg(miri)]
fn encode(desc: &'static TypeDescriptor) -> u32 {
    register(desc)
}

/// Encodes a descriptor as a 32-bit code.
#[inline(always)]
#[cfg(not(miri))]
fn encode(desc: &'static TypeDescriptor) -> u32 {
    let diff =
        (desc as *const TypeDescriptor as isize).wrapping_sub(&ANCHOR as *const Anchor as isize);
    let units = diff >> 3;
    if (-(1 << 30)..(1 << 30)).contains(&units) {
        ((units as i32) << 1) as u32
    } else {
        register(desc)
    }
}

#[cold]
fn register(desc: &'static TypeDescriptor) -> u32 {
    let mut len = REGISTRY_LOCK.lock();
    let ptr = desc as *const TypeDescriptor as *mut TypeDescriptor;
    if let Some(i) = (0..*len).find(|&i| REGISTRY[i].load(RawOrdering::Acquire) == ptr) {
        return (i as u32) << 1 | 1;
    }
    assert!(
        *len < REGISTRY_LEN,
        "gc-core: more than {REGISTRY_LEN} far-away type descriptors"
    );
    REGISTRY[*len].store(ptr, RawOrdering::Release);
    *len += 1;
    ((*len - 1) as u32) << 1 | 1
}

#[inline(always)]
fn decode(code: u32) -> &'static TypeDescriptor {
    if code & 1 == 0 {
        let units = (code as i32) >> 1;
        let addr = (&ANCHOR as *const Anchor as isize).wrapping_add((units as isize) << 3);
        // SAFETY: even codes are only produced by `encode` from a `&'static TypeDescriptor`
        // at exactly this distance from the anchor; `encode`'s pointer-to-integer cast exposed
        // that descriptor's provenance, which this integer-to-pointer cast picks up.
        unsafe { &*(addr as usize as *const TypeDescriptor) }
    } else {
        let p = REGISTRY[(code >> 1) as usize].load(RawOrdering::Acquire);
        // SAFETY: odd codes are only produced by `register` after storing a `&'static`
        // descriptor at that index; registry entries are never removed.
        unsafe { &*p }
    }
}

/// The first word of every non-tiny object.
#[repr(C)]
pub struct ObjectHeader {
    word: AtomicU64,
}

impl fmt::Debug for ObjectHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectHeader")
            .field("type", &(self.descriptor().name)())
            .field("roots", &self.roots())
            .finish()
    }
}

impl ObjectHeader {
    /// A header for an object of type `desc` with `roots` rooted handles.
    #[inline(always)]
    pub fn new(desc: &'static TypeDescriptor, roots: u32) -> Self {
        debug_assert!(roots < ROOTS_SATURATED);
        ObjectHeader {
            word: AtomicU64::new((encode(desc) as u64) << 32 | roots as u64),
        }
    }

    /// The object's type descriptor.
    #[inline(always)]
    pub fn descriptor(&self) -> &'static TypeDescriptor {
        decode((self.word.load(Ordering::Relaxed) >> 32) as u32)
    }

    /// Whether the object is a root: it has rooted handles and is not a dead object waiting for
    /// or done with its drop.
    #[inline(always)]
    pub fn is_root(&self) -> bool {
        let r = self.roots();
        r != 0 && r < QUEUED
    }

    /// The drop state of a dead object.
    pub fn drop_state(&self) -> DropState {
        match self.roots() {
            QUEUED => DropState::Queued,
            DROPPED => DropState::Dropped,
            _ => DropState::NotQueued,
        }
    }

    /// Records that a dead object's drop is queued (sweeper only; the object is unreachable).
    pub fn set_queued(&self) {
        self.set_count(QUEUED)
    }

    /// Records that a dead object has been dropped.
    pub fn set_dropped(&self) {
        self.set_count(DROPPED)
    }

    fn set_count(&self, c: u32) {
        let w = self.word.load(Ordering::Relaxed);
        self.word
            .store(w & !0xFFFF_FFFF | c as u64, Ordering::Release);
    }

    /// The whole header word (for the `poison` feature's use-after-free checks).
    #[cfg(feature = "poison")]
    pub(crate) fn raw_word(&self) -> u64 {
        self.word.load(Ordering::Relaxed)
    }

    /// The number of rooted handles (saturated counts read as ≥ [`ROOTS_SATURATED`]).
    #[inline(always)]
    pub fn roots(&self) -> u32 {
        self.word.load(Ordering::Acquire) as u32
    }

    /// Counts one more rooted handle. Saturates as the module docs describe.
    #[inline(always)]
    pub fn inc_roots(&self) {
        let old = self.word.fetch_add(1, Ordering::Relaxed) as u32;
        if old >= ROOTS_SATURATED {
            self.word.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Counts one rooted handle fewer; a saturated count stays saturated.
    #[inline(always)]
    pub fn dec_roots(&self) {
        let old = self.word.fetch_sub(1, Ordering::Release) as u32;
        if old >= ROOTS_STICKY {
            self.word.fetch_add(1, Ordering::Relaxed);
        } else if old == 0 {
            // The decrement borrowed from the descriptor code: the heap's bookkeeping is
            // broken (a bug, or a `Trace` impl breaking its rules). Going on would decode a
            // wild descriptor; stop here.
            root_count_underflow();
        }
    }
}

#[cold]
#[inline(never)]
fn root_count_underflow() -> ! {
    eprintln!("gc-core: root count underflow (a rooted handle was dropped twice); aborting");
    std::process::abort()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    static DESC: TypeDescriptor = TypeDescriptor {
        trace: None,
        drop: None,
        size: 16,
        align: 8,
        name: || "test",
    };

    #[test]
    fn header_is_one_word_and_round_trips() {
        assert_eq!(core::mem::size_of::<ObjectHeader>(), 8);
        let h = ObjectHeader::new(&DESC, 1);
        assert!(core::ptr::eq(h.descriptor(), &DESC));
        assert_eq!(h.roots(), 1);
        h.inc_roots();
        h.dec_roots();
        h.dec_roots();
        assert_eq!(h.roots(), 0);
        assert!(core::ptr::eq(h.descriptor(), &DESC));
        assert!(format!("{h:?}").contains("test"));
        assert!(!h.is_root());
        assert_eq!(h.drop_state(), DropState::NotQueued);
        h.set_queued();
        assert_eq!(h.drop_state(), DropState::Queued);
        assert!(!h.is_root());
        h.set_dropped();
        assert_eq!(h.drop_state(), DropState::Dropped);
        assert!(!h.is_root());
        assert!(
            core::ptr::eq(h.descriptor(), &DESC),
            "drop states keep the descriptor"
        );
    }

    #[test]
    fn far_descriptors_use_the_registry() {
        let leaked: &'static TypeDescriptor = Box::leak(Box::new(TypeDescriptor {
            trace: None,
            drop: None,
            size: 8,
            align: 8,
            name: || "far",
        }));
        let code = register(leaked);
        assert_eq!(code & 1, 1);
        assert!(core::ptr::eq(decode(code), leaked));
        assert_eq!(register(leaked), code, "registering twice reuses the entry");
        // Even codes round-trip too, whatever the distance class of a heap address.
        let c = encode(leaked);
        assert!(core::ptr::eq(decode(c), leaked));
    }

    #[test]
    fn root_count_saturates_instead_of_overflowing() {
        let h = ObjectHeader::new(&DESC, 0);
        h.word
            .fetch_add((ROOTS_SATURATED - 1) as u64, Ordering::Relaxed);
        h.inc_roots();
        assert_eq!(h.roots(), ROOTS_SATURATED);
        h.inc_roots();
        assert_eq!(h.roots(), ROOTS_SATURATED, "pinned");
        h.dec_roots();
        assert_eq!(
            h.roots(),
            ROOTS_SATURATED,
            "never decremented once saturated"
        );
        assert!(core::ptr::eq(h.descriptor(), &DESC));
    }
}
