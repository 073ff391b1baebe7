//! The one place gc-core takes its concurrency primitives from.
//!
//! Every atomic, lock, cell shared between threads, thread spawn and fence in the crate comes
//! from here, so that `RUSTFLAGS="--cfg loom"` swaps the whole crate onto loom's model-checked
//! versions and the loom tests check the real code, not a copy (crossbeam-epoch's
//! `primitive` module and tokio's `src/loom/` are the models for this file).
//!
//! # What is here
//!
//! - `atomic`: the atomic integer/pointer types, `Ordering` and `fence`.
//! - [`UnsafeCell`]: loom's API shape (`with`/`with_mut`) over `core::cell::UnsafeCell`, so
//!   loom can check that no access to the cell races with a write.
//! - [`Mutex`]: `parking_lot::Mutex` normally (short critical sections on slow paths), loom's
//!   mutex under loom, `std`'s under Miri; one API (`lock()` returns the guard) for all three.
//!   [`StaticMutex`] likewise for statics (`const fn new`).
//! - [`asymmetric`]: a pair of fences for Dekker-style handshakes where one side is hot (a
//!   mutator's allocation or barrier) and the other is rare (the collector). The hot side pays a
//!   compiler fence; the rare side pays a process-wide `membarrier(2)`.
//!
//! Clippy's `disallowed-types` keeps `std::sync` atomics and mutexes out of the rest of gc-core.
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

#[cfg(not(loom))]
#[allow(unused_imports)]
pub(crate) mod atomic {
    pub(crate) use core::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

#[cfg(loom)]
#[allow(unused_imports)]
pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
}

/// `get_mut` for the shim's atomics: through `&mut` nobody else can touch the atomic, so
/// std reads and writes its value directly and loom (whose atomics have no `get_mut`) does so
/// through `with_mut`, which also tells the model checker that the access is exclusive.
pub(crate) trait AtomicMut {
    /// The atomic's value type.
    type Value: Copy;
    /// The value, read through `&mut` (no other thread can be accessing the atomic).
    fn read_mut(&mut self) -> Self::Value;
    /// Replaces the value through `&mut`.
    fn write_mut(&mut self, v: Self::Value);
}

macro_rules! atomic_mut {
    ($($ty:ident $(<$p:ident>)? => $v:ty),* $(,)?) => {$(
        impl$(<$p>)? AtomicMut for atomic::$ty$(<$p>)? {
            type Value = $v;
            #[inline(always)]
            fn read_mut(&mut self) -> $v {
                #[cfg(not(loom))]
                {
                    *self.get_mut()
                }
                #[cfg(loom)]
                {
                    self.with_mut(|v| *v)
                }
            }
            #[inline(always)]
            fn write_mut(&mut self, v: $v) {
                #[cfg(not(loom))]
                {
                    *self.get_mut() = v;
                }
                #[cfg(loom)]
                {
                    self.with_mut(|x| *x = v)
                }
            }
        }
    )*};
}

atomic_mut!(AtomicUsize => usize, AtomicPtr<T> => *mut T);

/// Declares a `const fn` normally and a plain `fn` under loom, whose atomics have no
/// `const fn new` (the body is the same).
macro_rules! const_fn_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $($rest)*

        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $($rest)*
    };
}
pub(crate) use const_fn_unless_loom;

/// `thread_local!`: std's, or loom's (whose values are per model execution and per loom
/// thread: loom runs its threads on one OS thread, so std's would be shared among them).
#[cfg(not(loom))]
pub(crate) use std::thread_local;

/// loom's `thread_local!` takes no `const { .. }` initialiser; this one strips it.
#[cfg(loom)]
macro_rules! loom_thread_local {
    () => {};
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr } $(; $($rest:tt)*)?) => {
        loom::thread_local!($(#[$attr])* $vis static $name: $t = $init);
        $($crate::sync::thread_local!($($rest)*);)?
    };
    ($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = $init:expr $(; $($rest:tt)*)?) => {
        loom::thread_local!($(#[$attr])* $vis static $name: $t = $init);
        $($crate::sync::thread_local!($($rest)*);)?
    };
}

#[cfg(loom)]
pub(crate) use loom_thread_local as thread_local;

/// A value that, under loom, is not dropped while its thread panics (it leaks instead).
///
/// loom drops a failed model execution's thread-locals and lazy statics outside the model,
/// where touching a loom object panics again, and that double panic aborts the test run instead
/// of failing the test. Normally this is a plain wrapper: the value is always dropped.
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct LoomLeakOnPanic<T>(core::mem::ManuallyDrop<T>);

impl<T> LoomLeakOnPanic<T> {
    pub(crate) const fn new(value: T) -> Self {
        LoomLeakOnPanic(core::mem::ManuallyDrop::new(value))
    }
}

impl<T> core::ops::Deref for LoomLeakOnPanic<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for LoomLeakOnPanic<T> {
    fn drop(&mut self) {
        if cfg!(loom) && std::thread::panicking() {
            return;
        }
        // SAFETY: dropped once, here; the field is not used again.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.0) }
    }
}

/// Atomics that stay `core` atomics even under loom: tables that live in memory mapped from the
/// OS (loom's atomics cannot be laid over raw memory), statics (loom's have no `const fn new`),
/// and statistics counters nothing synchronises through (each modelled atomic makes every
/// modelled fence slower). Each use says why its ordering does not need to be model-checked.
#[allow(unused_imports)]
pub(crate) mod raw_atomic {
    pub(crate) use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};
}

#[cfg(not(loom))]
pub(crate) use std::sync::Arc;

#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

/// Waiting for another thread to finish a short step (a mutator operation, a marker's batch):
/// spins with the CPU's pause hint for the first rounds, then yields. Yielding at once would let
/// the scheduler give the waiter's time slice away whenever the machine is busy, turning a wait
/// of a few hundred nanoseconds into milliseconds. Under loom every round yields (loom needs to
/// see spin loops).
#[derive(Debug, Default)]
pub(crate) struct Backoff(u32);

impl Backoff {
    /// One round of waiting.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        #[cfg(not(loom))]
        {
            if self.0 < 10 {
                for _ in 0..1u32 << self.0 {
                    core::hint::spin_loop();
                }
                self.0 += 1;
            } else {
                yield_now();
            }
        }
        #[cfg(loom)]
        {
            self.0 = self.0.saturating_add(1);
            yield_now();
        }
    }
}

/// Threads: spawning (named, detached), parking and unparking.
pub(crate) mod thread {
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, Thread};

    #[cfg(loom)]
    pub(crate) use loom::thread::{current, park, Thread};

    /// Blocks until unparked or `timeout` has passed (or spuriously: callers loop).
    #[cfg(not(loom))]
    pub(crate) fn park_timeout(timeout: std::time::Duration) {
        std::thread::park_timeout(timeout);
    }

    /// Loom has no time: a timed park is a yield, one of the returns a real one may make.
    #[cfg(loom)]
    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        loom::thread::yield_now();
    }

    /// Starts a detached thread named `name` running `f`; its handle, for `unpark`.
    #[cfg(not(loom))]
    pub(crate) fn spawn_named(
        name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Thread> {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map(|h| h.thread().clone())
    }

    /// Starts a detached thread running `f` (loom threads have no names).
    #[cfg(loom)]
    pub(crate) fn spawn_named(
        _name: &str,
        f: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Thread> {
        Ok(loom::thread::spawn(f).thread().clone())
    }
}

/// The lock behind [`Mutex`] and [`StaticMutex`] outside loom: `parking_lot`'s, except under
/// Miri, where `std`'s. `parking_lot_core` keeps its queue of parked threads in pointers cast
/// from integers, which `-Zmiri-strict-provenance` rejects as soon as a lock is contended long
/// enough to park; `std`'s futex mutex is provenance-clean, and the locks are not what Miri is
/// there to check.
#[cfg(all(not(loom), not(miri)))]
type RawLock<T> = parking_lot::Mutex<T>;
#[cfg(all(not(loom), miri))]
type RawLock<T> = std::sync::Mutex<T>;

/// The guard of a [`Mutex`] or [`StaticMutex`].
#[cfg(all(not(loom), not(miri)))]
pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;
/// The guard of a [`Mutex`] or [`StaticMutex`].
#[cfg(all(not(loom), miri))]
pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
/// The guard of a [`Mutex`].
#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

/// Locks a `std` mutex; gc-core never panics while holding one of its locks in a way that
/// leaves data inconsistent, so poisoning is ignored.
#[cfg(miri)]
fn std_lock<T>(lock: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A mutual-exclusion lock with one API over `parking_lot` and loom.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(not(loom))]
    inner: RawLock<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// A mutex for process-wide statics (`new` is `const`; loom's is not). Only for state loom
/// models never touch: they build their own collector instances.
#[derive(Debug, Default)]
pub(crate) struct StaticMutex<T> {
    inner: StaticInner<T>,
}

#[cfg(not(miri))]
type StaticInner<T> = parking_lot::Mutex<T>;
#[cfg(miri)]
type StaticInner<T> = std::sync::Mutex<T>;

impl<T> StaticMutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        StaticMutex {
            inner: StaticInner::new(value),
        }
    }

    /// Locks the mutex (poisoning ignored, as for [`Mutex::lock`]).
    #[cfg(not(miri))]
    pub(crate) fn lock(&self) -> parking_lot::MutexGuard<'_, T> {
        self.inner.lock()
    }

    /// Locks the mutex (poisoning ignored, as for [`Mutex::lock`]).
    #[cfg(miri)]
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, T> {
        std_lock(&self.inner)
    }
}

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex {
            #[cfg(not(loom))]
            inner: RawLock::new(value),
            #[cfg(loom)]
            inner: loom::sync::Mutex::new(value),
        }
    }

    /// Locks the mutex if it is free.
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(all(not(loom), not(miri)))]
        {
            self.inner.try_lock()
        }
        #[cfg(all(not(loom), miri))]
        {
            match self.inner.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        }
        #[cfg(loom)]
        {
            self.inner.try_lock().ok()
        }
    }

    /// Locks the mutex. gc-core never panics while holding one of its locks in a way that
    /// leaves data inconsistent, so loom's (and under Miri `std`'s) poisoning is unwrapped.
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(all(not(loom), not(miri)))]
        {
            self.inner.lock()
        }
        #[cfg(all(not(loom), miri))]
        {
            std_lock(&self.inner)
        }
        #[cfg(loom)]
        {
            self.inner.lock().unwrap()
        }
    }
}

/// `core::cell::UnsafeCell` with loom's `with`/`with_mut` API.
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        UnsafeCell(core::cell::UnsafeCell::new(value))
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Runs `f` with a shared raw pointer to the content.
    #[inline(always)]
    #[allow(dead_code)] // loom's API shape; readers that need no `&mut` use it
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a unique raw pointer to the content.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Asymmetric fences: a cheap one for the hot side of a handshake, an expensive one for the
/// rare side.
///
/// # The pattern
///
/// A mutator announces an operation with `busy.store(true)`, runs [`light`], then reads the
/// collector's flag. The collector sets its flag, runs [`heavy`], then reads `busy`. Either the
/// collector sees `busy == true` or the mutator sees the flag: never neither (Dekker).
///
/// With `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` (Linux ≥ 4.14), `heavy` makes every
/// running thread of the process execute a full memory barrier, so `light` need only stop the
/// compiler from reordering. Where membarrier is unavailable (other systems, seccomp, loom) both
/// sides use `fence(SeqCst)`, which is always correct, only slower on the hot side.
///
/// # Why the two sides agree
///
/// `light` may drop to a compiler fence only after it has read `MODE == MEMBARRIER`, and `MODE`
/// becomes `MEMBARRIER` only after registration succeeded; from then on every `heavy` issues the
/// syscall. A `heavy` that runs while `MODE` is still `UNKNOWN` registers first.
pub(crate) mod asymmetric {
    #[cfg(not(loom))]
    use super::raw_atomic::{AtomicU8, Ordering};

    #[cfg(not(loom))]
    const UNKNOWN: u8 = 0;
    #[cfg(not(loom))]
    const MEMBARRIER: u8 = 1;
    #[cfg(not(loom))]
    const FENCE: u8 = 2;

    /// How the fences are implemented in this process; decided once by [`init`].
    #[cfg(not(loom))]
    static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

    /// Decides, once, whether membarrier can be used. Idempotent and thread-safe.
    #[cfg(not(loom))]
    pub(crate) fn init() -> bool {
        match MODE.load(Ordering::Acquire) {
            MEMBARRIER => return true,
            FENCE => return false,
            _ => {}
        }
        let ok = membarrier::register();
        // Racing initialisers all register (registration is idempotent) and store the same
        // answer.
        MODE.store(if ok { MEMBARRIER } else { FENCE }, Ordering::Release);
        ok
    }

    /// Under loom both sides use real fences, which loom models.
    #[cfg(loom)]
    pub(crate) fn init() -> bool {
        false
    }

    /// The hot side's fence. See the module docs.
    #[inline(always)]
    pub(crate) fn light() {
        #[cfg(not(loom))]
        {
            if MODE.load(Ordering::Relaxed) == MEMBARRIER {
                core::sync::atomic::compiler_fence(Ordering::SeqCst);
            } else {
                core::sync::atomic::fence(Ordering::SeqCst);
            }
        }
        #[cfg(loom)]
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
    }

    /// The rare side's fence: a full barrier on every running thread of the process.
    pub(crate) fn heavy() {
        #[cfg(not(loom))]
        {
            core::sync::atomic::fence(Ordering::SeqCst);
            if init() {
                membarrier::barrier();
            }
        }
        #[cfg(loom)]
        loom::sync::atomic::fence(loom::sync::atomic::Ordering::SeqCst);
    }

    /// Returns true when the hot side runs without a hardware fence.
    pub(crate) fn is_cheap() -> bool {
        #[cfg(not(loom))]
        {
            MODE.load(Ordering::Relaxed) == MEMBARRIER
        }
        #[cfg(loom)]
        false
    }

    #[cfg(all(not(loom), not(miri), target_os = "linux"))]
    mod membarrier {
        const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

        /// Registers the process for private expedited barriers; false if the kernel refuses.
        pub(super) fn register() -> bool {
            if std::env::var_os("GC_CORE_NO_MEMBARRIER").is_some() {
                return false;
            }
            // SAFETY: membarrier takes two integer arguments and touches no memory of ours.
            let r =
                unsafe { libc::syscall(libc::SYS_membarrier, CMD_REGISTER_PRIVATE_EXPEDITED, 0) };
            r == 0
        }

        /// Issues the process-wide barrier. Only called after `register` succeeded.
        pub(super) fn barrier() {
            // SAFETY: as in `register`; registration succeeded, so the command is accepted.
            let r = unsafe { libc::syscall(libc::SYS_membarrier, CMD_PRIVATE_EXPEDITED, 0) };
            // The command cannot fail once registered (EINTR is not returned by membarrier);
            // if it ever did, the mutators would be unprotected, so stop here.
            assert_eq!(
                r, 0,
                "membarrier(PRIVATE_EXPEDITED) failed after registration"
            );
        }
    }

    /// Elsewhere (and under Miri, which cannot run the syscall) both sides use real fences.
    #[cfg(all(not(loom), any(miri, not(target_os = "linux"))))]
    mod membarrier {
        pub(super) fn register() -> bool {
            false
        }
        pub(super) fn barrier() {}
    }

    #[cfg(all(test, not(loom)))]
    mod tests {
        use super::*;

        #[test]
        fn init_is_idempotent_and_fences_run() {
            let first = init();
            assert_eq!(first, init());
            assert_eq!(first, is_cheap());
            light();
            heavy();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn mutex_and_cell_round_trip() {
        let m = Mutex::new(1);
        *m.lock() += 1;
        assert_eq!(*m.lock(), 2);
        let c = UnsafeCell::new(5);
        // SAFETY: `c` is local and not shared, so the unique access cannot race.
        c.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: as above.
        assert_eq!(c.with(|p| unsafe { *p }), 6);
    }
}
