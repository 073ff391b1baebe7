//! `GcCell<T>`: interior mutability for any `T: Trace`, shareable across threads.
//!
//! A reader-writer borrow flag (one atomic word) guards the content: any number of shared
//! borrows, or one mutable borrow. A conflicting borrow from another thread waits (yielding)
//! until the conflict ends; the `try_` forms return an error instead. A conflicting borrow on
//! the *same* thread can never end by waiting, so it panics with a message that says which
//! borrow is in the way.
//!
//! # Roots (DESIGN §4)
//!
//! A cell outside the heap keeps its content's handles rooted, like any value outside the heap.
//! A cell inside a heap object holds edges; while it is mutably borrowed the content is
//! rooted (acquire: one mutator operation that roots everything in it; release: one that
//! unroots what is left), so anything moved out during the borrow is a rooted handle and
//! anything moved in is unrooted on release. The `ROOTED` bit of the flag word says the
//! content is rooted by a borrow; the marker skips such a cell, since its handles are roots.
//!
//! Misuse stays safe: a leaked guard (`mem::forget`) leaves the cell locked and its content
//! rooted for good (`root`/`unroot` see `ROOTED` and leave it so): a leak. An `unroot` that
//! unwinds half-way clears `ROOTED` before the operation ends, so the marker traces the mixed
//! content, which is safe for rooted and unrooted handles alike.
//!
//! The cost is O(content) per mutable borrow of a cell that holds handles, which is why
//! `GcSlot` exists for hot single edges; a cell whose content holds no handles
//! (`T::NO_SCAN`) pays nothing.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use crate::gc::global::with_op;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::{const_fn_unless_loom, yield_now, AtomicMut};
use crate::trace::{Trace, Tracer};

const WRITER: usize = 1 << (usize::BITS - 1);
const ROOTED: usize = 1 << (usize::BITS - 2);
/// A marker is reading the content (it is not a borrow: `try_borrow_mut` waits for it to end
/// rather than failing).
const TRACING: usize = 1 << (usize::BITS - 3);
const READERS: usize = TRACING - 1;

/// A `RefCell`-like cell for GC content that is `Sync`: readers or one writer, across threads.
///
/// ```
/// use gc_core::{Gc, GcCell, Trace};
///
/// #[derive(Trace)]
/// struct Dir {
///     name: String,
///     children: GcCell<Vec<Gc<Dir>>>,
/// }
///
/// let root = Gc::new(Dir { name: "/".into(), children: GcCell::new(Vec::new()) });
/// let etc = Gc::new(Dir { name: "etc".into(), children: GcCell::new(Vec::new()) });
/// root.children.borrow_mut().push(etc);
/// assert_eq!(root.children.borrow()[0].name, "etc");
/// assert!(root.children.try_borrow_mut().is_ok());
/// ```
pub struct GcCell<T: Trace> {
    /// `WRITER | ROOTED | readers`.
    state: AtomicUsize,
    /// The thread holding the mutable borrow (see [`thread_id`]), 0 when none.
    writer: AtomicUsize,
    /// Whether the content's handles are counted because the cell is outside the heap.
    /// Changes only through `&mut self` (`root`/`unroot`).
    content_rooted: bool,
    value: UnsafeCell<T>,
}

// SAFETY: the borrow flag gives `&T` to readers and `&mut T` to one writer at a time, across
// threads, like `RwLock<T>`; `T: Trace` implies `T: Send + Sync`.
unsafe impl<T: Trace> Sync for GcCell<T> {}

/// A small per-thread number: the address of a thread-local, never 0.
fn thread_id() -> usize {
    crate::sync::thread_local!(static ID: u8 = const { 0 });
    ID.try_with(|x| x as *const u8 as usize)
        .unwrap_or(usize::MAX)
}

crate::sync::thread_local! {
    /// Cells this thread holds shared borrows of (to diagnose same-thread conflicts).
    static READS: core::cell::RefCell<Vec<usize>> = const { core::cell::RefCell::new(Vec::new()) };
}

fn note_read(cell: usize, add: bool) {
    let _ = READS.try_with(|r| {
        let mut r = r.borrow_mut();
        if add {
            r.push(cell);
        } else if let Some(i) = r.iter().rposition(|&c| c == cell) {
            r.swap_remove(i);
        }
    });
}

fn reads_here(cell: usize) -> bool {
    READS
        .try_with(|r| r.borrow().contains(&cell))
        .unwrap_or(false)
}

/// Why a `try_borrow`/`try_borrow_mut` failed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BorrowError {
    /// The cell is mutably borrowed.
    MutablyBorrowed {
        /// By the calling thread (waiting would never end).
        by_this_thread: bool,
    },
    /// The cell has shared borrows (only for `try_borrow_mut`).
    Borrowed {
        /// How many.
        readers: usize,
        /// Whether the calling thread holds one of them.
        by_this_thread: bool,
    },
}

impl fmt::Display for BorrowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BorrowError::MutablyBorrowed { by_this_thread } => write!(
                f,
                "GcCell is already mutably borrowed by {}",
                if by_this_thread {
                    "this thread"
                } else {
                    "another thread"
                }
            ),
            BorrowError::Borrowed {
                readers: 1,
                by_this_thread: true,
            } => write!(
                f,
                "GcCell is already borrowed (a shared borrow held by this thread)"
            ),
            BorrowError::Borrowed {
                readers,
                by_this_thread,
            } => write!(
                f,
                "GcCell is already borrowed ({readers} shared borrow{}{})",
                if readers == 1 { "" } else { "s" },
                if by_this_thread {
                    ", one of them by this thread"
                } else {
                    ""
                }
            ),
        }
    }
}

impl std::error::Error for BorrowError {}

impl<T: Trace> GcCell<T> {
    const_fn_unless_loom! {
        /// A cell holding `value`.
        pub fn new(value: T) -> Self {
            GcCell {
                state: AtomicUsize::new(0),
                writer: AtomicUsize::new(0),
                content_rooted: true,
                value: UnsafeCell::new(value),
            }
        }
    }

    /// The content, by value. (Only a cell you own: cells inside `Gc` objects stay there.)
    pub fn into_inner(self) -> T {
        let mut this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again; the fields are read out once.
        unsafe { core::ptr::read(this.value.get_mut()) }
    }

    /// Mutable access without borrowing (only a cell you own, through `&mut`).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn addr(&self) -> usize {
        self as *const Self as usize
    }

    fn try_lock_shared(&self) -> Result<(), BorrowError> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & WRITER != 0 {
                let by_this_thread = self.writer.load(Ordering::Relaxed) == thread_id();
                return Err(BorrowError::MutablyBorrowed { by_this_thread });
            }
            match self
                .state
                .compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => s = now,
            }
        }
    }

    fn try_lock_exclusive(&self) -> Result<(), BorrowError> {
        loop {
            match self
                .state
                .compare_exchange(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.writer.store(thread_id(), Ordering::Relaxed);
                    return Ok(());
                }
                Err(s) if s & WRITER != 0 => {
                    return Err(BorrowError::MutablyBorrowed {
                        by_this_thread: self.writer.load(Ordering::Relaxed) == thread_id(),
                    })
                }
                Err(s) if s & READERS != 0 => {
                    return Err(BorrowError::Borrowed {
                        readers: s & READERS,
                        by_this_thread: reads_here(self.addr()),
                    })
                }
                // Only a marker reading the content (for as long as tracing this one cell's
                // content takes): not a conflict, so wait rather than fail.
                Err(_) => yield_now(),
            }
        }
    }

    /// A shared borrow, or why not (never waits).
    pub fn try_borrow(&self) -> Result<GcRef<'_, T>, BorrowError> {
        self.try_lock_shared()?;
        note_read(self.addr(), true);
        Ok(GcRef {
            cell: self,
            _not_send: PhantomData,
        })
    }

    /// A mutable borrow, or why not (never waits for another borrow).
    pub fn try_borrow_mut(&self) -> Result<GcRefMut<'_, T>, BorrowError> {
        if T::NO_SCAN || self.content_rooted {
            // Nothing to root: a cell whose content holds no handle, or one outside the heap
            // (whose handles are roots already). Markers never read either.
            self.try_lock_exclusive()?;
        } else {
            // Take the flag and root the content in one operation, so that the flag without
            // ROOTED is only ever seen inside an operation: a marker that sees it waits for
            // ROOTED (see `trace`), and mark termination waits the operation out.
            with_op(|_| -> Result<(), BorrowError> {
                self.try_lock_exclusive()?;
                // If rooting unwinds half-way (a `Trace` impl breaking its rules), ROOTED is
                // never set: the content, partly rooted, is then traced as usual, which is
                // safe for both kinds of handle; the guard gives the flag back.
                let unlock = Unlock(self);
                // SAFETY: we hold the exclusive flag, so nobody else accesses the value.
                unsafe { (*self.value.get()).root() };
                self.state.fetch_or(ROOTED, Ordering::Release);
                core::mem::forget(unlock);
                Ok(())
            })?;
        }
        Ok(GcRefMut {
            cell: self,
            _not_send: PhantomData,
        })
    }

    /// A shared borrow. Waits while another thread holds the mutable borrow.
    ///
    /// # Panics
    ///
    /// If this thread holds the mutable borrow.
    pub fn borrow(&self) -> GcRef<'_, T> {
        loop {
            match self.try_borrow() {
                Ok(r) => return r,
                Err(
                    e @ BorrowError::MutablyBorrowed {
                        by_this_thread: true,
                    },
                ) => {
                    panic!("{e}: cannot borrow it immutably as well")
                }
                Err(_) => yield_now(),
            }
        }
    }

    /// The mutable borrow. Waits while other threads hold borrows.
    ///
    /// # Panics
    ///
    /// If this thread holds a borrow of the cell (waiting would never end).
    pub fn borrow_mut(&self) -> GcRefMut<'_, T> {
        loop {
            match self.try_borrow_mut() {
                Ok(r) => return r,
                Err(
                    e @ (BorrowError::MutablyBorrowed {
                        by_this_thread: true,
                    }
                    | BorrowError::Borrowed {
                        by_this_thread: true,
                        ..
                    }),
                ) => panic!("{e}: cannot borrow it mutably"),
                Err(_) => yield_now(),
            }
        }
    }

    /// Replaces the content, returning the old value.
    pub fn replace(&self, value: T) -> T {
        core::mem::replace(&mut *self.borrow_mut(), value)
    }

    /// Takes the content, leaving `T::default()`.
    pub fn take(&self) -> T
    where
        T: Default,
    {
        self.replace(T::default())
    }

    /// Called when the mutable borrow ends: unroots the content of a heap cell, then releases.
    fn release_mut(&self) {
        let unlock = Unlock(self);
        if !T::NO_SCAN && !self.content_rooted {
            with_op(|_| {
                // Both flags are cleared when this closure ends, unwinding included, inside
                // the operation: the content's handles stop being roots and the cell stops
                // being skipped by markers at one point that mark setup cannot fall between
                // (it waits for operations in progress). So an `unroot` that stops half-way
                // leaves nothing unreachable, and a marker never skips unrooted content.
                let _unlock = unlock;
                let _rooted = ClearFlag(&self.state, ROOTED);
                // SAFETY: we still hold the exclusive flag. The cell is heap content reached
                // by tracing (it is not `content_rooted`), so its handles may become edges.
                unsafe { (*self.value.get()).unroot() };
            });
        }
    }
}

/// Gives the exclusive flag back when dropped.
struct Unlock<'a, T: Trace>(&'a GcCell<T>);

impl<T: Trace> Drop for Unlock<'_, T> {
    fn drop(&mut self) {
        self.0.writer.store(0, Ordering::Relaxed);
        self.0.state.fetch_and(!WRITER, Ordering::Release);
    }
}

/// Clears a flag of the state word when dropped (unwinding included).
struct ClearFlag<'a>(&'a AtomicUsize, usize);

impl Drop for ClearFlag<'_> {
    fn drop(&mut self) {
        self.0.fetch_and(!self.1, Ordering::Release);
    }
}

/// A shared borrow of a [`GcCell`]. Not `Send`: the borrow belongs to the thread that took it
/// (which is how same-thread conflicts are diagnosed), as with `RwLock`'s guards.
pub struct GcRef<'a, T: Trace> {
    cell: &'a GcCell<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Trace> Deref for GcRef<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a shared borrow is held: no `&mut` exists.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: Trace> Drop for GcRef<'_, T> {
    fn drop(&mut self) {
        note_read(self.cell.addr(), false);
        self.cell.state.fetch_sub(1, Ordering::Release);
    }
}

/// The mutable borrow of a [`GcCell`]. Not `Send`, like [`GcRef`].
pub struct GcRefMut<'a, T: Trace> {
    cell: &'a GcCell<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T: Trace> Deref for GcRefMut<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the exclusive borrow is held by this guard.
        unsafe { &*self.cell.value.get() }
    }
}

impl<T: Trace> DerefMut for GcRefMut<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the exclusive borrow is held by this guard, which is borrowed mutably.
        unsafe { &mut *self.cell.value.get() }
    }
}

impl<T: Trace> Drop for GcRefMut<'_, T> {
    fn drop(&mut self) {
        self.cell.release_mut();
    }
}

impl<T: Trace + fmt::Debug> fmt::Debug for GcRef<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Trace + fmt::Debug> fmt::Debug for GcRefMut<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: Trace + fmt::Debug> fmt::Debug for GcCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.try_borrow() {
            Ok(v) => f.debug_struct("GcCell").field("value", &*v).finish(),
            Err(_) => f
                .debug_struct("GcCell")
                .field("value", &format_args!("<borrowed>"))
                .finish(),
        }
    }
}

impl<T: Trace + Default> Default for GcCell<T> {
    fn default() -> Self {
        GcCell::new(T::default())
    }
}

// SAFETY: the content's handles are the cell's: `trace` reports them unless a mutable borrow
// has rooted them (then they are roots and the writer may be changing them, so the cell is
// skipped); `root`/`unroot` go through `&mut self`, so no borrow is live, and are idempotent
// via `content_rooted`.
unsafe impl<T: Trace> Trace for GcCell<T> {
    const NO_SCAN: bool = T::NO_SCAN;
    const NEEDS_DROP: bool = T::NEEDS_DROP;

    fn trace(&self, tracer: &mut Tracer) {
        if T::NO_SCAN {
            return;
        }
        // Skip the content while a mutable borrow has rooted it: its handles are roots (and
        // the release unroots them, with the barrier, in the same operation that clears the
        // flags). Otherwise take the TRACING flag, which keeps writers out while we read.
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & ROOTED != 0 {
                return;
            }
            if s & (WRITER | TRACING) != 0 {
                // A writer inside the operation that roots or unroots the content (the flag
                // without ROOTED exists only there), or another marker reading it (the
                // verifier): either is over within one operation.
                yield_now();
                s = self.state.load(Ordering::Acquire);
                continue;
            }
            match self.state.compare_exchange_weak(
                s,
                s | TRACING,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        let _tracing = ClearFlag(&self.state, TRACING);
        // SAFETY: no writer holds the cell and none can take it while TRACING is set
        // (`try_lock_exclusive` waits), so the content is only read, like a shared borrow.
        unsafe { (*self.value.get()).trace(tracer) };
    }

    fn root(&mut self) {
        if !self.content_rooted {
            // ROOTED still set here means a mutable borrow was leaked (`mem::forget` of its
            // guard): the content is rooted already and stays so for good.
            if self.state.read_mut() & ROOTED == 0 {
                self.value.get_mut().root();
            }
            self.content_rooted = true;
        }
    }

    unsafe fn unroot(&mut self) {
        if self.content_rooted {
            // With ROOTED set (a leaked mutable borrow), the marker skips this cell, so its
            // content must stay rooted: only the bookkeeping changes.
            if self.state.read_mut() & ROOTED == 0 {
                // SAFETY: forwarded contract: this cell is heap content reached by tracing.
                unsafe { self.value.get_mut().unroot() };
            }
            self.content_rooted = false;
        }
    }
}
