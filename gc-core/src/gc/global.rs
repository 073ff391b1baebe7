//! The process-wide collector and each thread's mutator state (crossbeam-epoch's `default.rs`).
//!
//! The collector is created on first use, from [`crate::configure`]'s settings or the
//! environment's. Each thread gets a [`ThreadCache`] on its first operation, kept in a
//! thread-local and flushed to the heap when the thread exits. An operation on a thread whose
//! thread-locals are already torn down (a `Gc` dropped or cloned by another thread-local's
//! destructor) uses a temporary cache instead: slower, equally correct.

use std::cell::{Cell, RefCell};

use super::Collector;
use crate::config::{ConfigError, GcConfig};
use crate::heap::{CacheOp, ThreadCache};
use crate::sync::{LoomLeakOnPanic, StaticMutex};

#[cfg(not(loom))]
static COLLECTOR: std::sync::OnceLock<Collector> = std::sync::OnceLock::new();

// Under loom every model execution gets its own collector (and heap), built on first use and
// dropped with the execution's other lazy statics when it ends.
#[cfg(loom)]
loom::lazy_static! {
    static ref COLLECTOR: LoomLeakOnPanic<Collector> =
        LoomLeakOnPanic::new(Collector::new(pending_config()));
}

static PENDING_CONFIG: StaticMutex<Option<GcConfig>> = StaticMutex::new(None);

crate::sync::thread_local! {
    static CACHE: LoomLeakOnPanic<RefCell<Option<ThreadCache>>> =
        const { LoomLeakOnPanic::new(RefCell::new(None)) };
    static IN_COLLECTOR: Cell<bool> = const { Cell::new(false) };
}

/// The process-wide collector.
#[inline]
#[cfg(not(loom))]
pub(crate) fn collector() -> &'static Collector {
    COLLECTOR.get_or_init(|| {
        let config = PENDING_CONFIG
            .lock()
            .take()
            .unwrap_or_else(GcConfig::from_env);
        Collector::new(config)
    })
}

/// The process-wide collector (under loom: this model execution's).
#[cfg(loom)]
#[inline]
pub(crate) fn collector() -> &'static Collector {
    &COLLECTOR
}

/// Under loom: the settings every execution's collector starts from (this execution's from
/// `loom_hooks::CollectorThread::start`, else the last `configure`d, else
/// `GcConfig::default()`, whose loom values suit models: no background thread, no automatic
/// cycles, one mark worker). The environment is not read.
#[cfg(loom)]
fn pending_config() -> GcConfig {
    EXECUTION_CONFIG
        .lock()
        .take()
        .or_else(|| PENDING_CONFIG.lock().clone())
        .unwrap_or_default()
}

// Under loom: settings for this execution's collector only, taken when it is built (a model
// that sets them for one execution must not change those of the models running beside it, as
// `configure` would).
#[cfg(loom)]
loom::lazy_static! {
    pub(crate) static ref EXECUTION_CONFIG: crate::sync::Mutex<Option<GcConfig>> =
        crate::sync::Mutex::new(None);
}

#[cfg(not(loom))]
pub(crate) fn configure(config: GcConfig) -> Result<(), ConfigError> {
    let mut pending = PENDING_CONFIG.lock();
    if COLLECTOR.get().is_some() {
        return Err(ConfigError::AlreadyStarted);
    }
    *pending = Some(config);
    Ok(())
}

/// Under loom the settings apply to the collectors of the model executions that start later.
#[cfg(loom)]
pub(crate) fn configure(config: GcConfig) -> Result<(), ConfigError> {
    *PENDING_CONFIG.lock() = Some(config);
    Ok(())
}

/// Runs `f` inside a mutator operation on this thread's cache.
///
/// Panics if called from inside another operation on this thread (a `Trace` impl whose
/// `root`/`unroot` creates, clones or drops handles breaks rule 7 of [`crate::Trace`]). After
/// the thread's locals are destroyed the nesting cannot be detected; such a nested operation
/// could then wait for a collector that waits for the outer one.
#[inline(always)]
pub(crate) fn with_op<R>(f: impl FnOnce(&mut CacheOp<'_>) -> R) -> R {
    // The thread-local, if this thread's locals are still alive. The pointer stays valid for
    // this call: a thread-local is destroyed only by its own thread, at exit, and this thread
    // is busy here.
    let cell = CACHE
        .try_with(|c| &**c as *const RefCell<Option<ThreadCache>>)
        .ok();
    let mut temporary;
    let mut guard;
    let cache: &mut ThreadCache = match cell {
        Some(cell) => {
            // SAFETY: see above.
            let cell = unsafe { &*cell };
            guard = match cell.try_borrow_mut() {
                Ok(g) => g,
                Err(_) => reentrant_operation(),
            };
            if guard.is_none() {
                *guard = Some(collector().heap.cache());
            }
            guard.as_mut().expect("just filled")
        }
        None => {
            // This thread's locals are gone (thread exit): a temporary cache.
            temporary = collector().heap.cache();
            &mut temporary
        }
    };
    let mut op = cache.op();
    f(&mut op)
}

/// Runs `f` inside a mutator operation: the one this thread is already in, or a new one.
///
/// For barrier slow paths that can be reached both from inside an operation (a heap slot or
/// cell giving up its counted handles as it is unrooted) and from outside (dropping a rooted
/// handle). After the thread's locals are destroyed nesting cannot be detected and a new
/// (temporary) operation is used.
#[cold]
pub(crate) fn with_op_reentrant(f: impl FnOnce()) {
    let inside = CACHE
        .try_with(|c| c.try_borrow_mut().is_err())
        .unwrap_or(false);
    if inside {
        f();
    } else {
        with_op(|_| f());
    }
}

#[cold]
#[inline(never)]
fn reentrant_operation() -> ! {
    panic!(
        "gc-core: a GC operation started inside another one on the same thread; a Trace impl's \
         root/unroot must not create, clone or drop Gc handles (rule 7 of gc_core::Trace)"
    )
}

/// Whether this thread is running a collection cycle (including the drops it runs).
pub(crate) fn in_collector() -> bool {
    IN_COLLECTOR.try_with(Cell::get).unwrap_or(false)
}

/// Marks this thread as running a cycle while alive.
pub(crate) struct CollectorScope {
    _private: (),
}

impl CollectorScope {
    pub(crate) fn enter() -> Self {
        let _ = IN_COLLECTOR.try_with(|c| c.set(true));
        CollectorScope { _private: () }
    }
}

impl Drop for CollectorScope {
    fn drop(&mut self) {
        let _ = IN_COLLECTOR.try_with(|c| c.set(false));
    }
}

impl core::fmt::Debug for CollectorScope {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CollectorScope")
    }
}
