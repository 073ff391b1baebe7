//! Collector settings: [`GcConfig`], [`configure`], and the environment variables.
//!
//! | variable | effect |
//! |---|---|
//! | `GC_CORE_GOGC` | the GOGC percentage (default 100); `off` disables automatic collection |
//! | `GC_CORE_TRACE=1` | one line per cycle on stderr, like Go's `GODEBUG=gctrace=1` |
//!
//! Environment variables override the defaults; [`configure`] overrides both.

use core::fmt;

/// Settings of the process-wide collector. Take effect only through [`configure`], before the
/// first use of gc-core.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcConfig {
    /// Heap growth allowed between cycles, in percent of the live heap after the last cycle
    /// (Go's GOGC). `None` turns automatic collection off ([`crate::collect`] still works).
    pub gogc: Option<u32>,
    /// Hard limit on heap bytes in use: allocations beyond it fail (`Gc::try_new` returns
    /// `AllocError::MemoryLimit`, `Gc::new` panics with that message). `None`: no limit.
    pub memory_limit: Option<usize>,
    /// Mark workers per cycle, the collector thread included (Go's 25 % of the CPUs; at
    /// least one). Each extra worker is a thread that lives for the marking of one cycle.
    pub mark_workers: usize,
    /// Run cycles on a background collector thread (default). `collect()` then hands a cycle
    /// to it and waits; allocating threads only ask for cycles and assist marking. With
    /// `false`, cycles run on the thread that calls `collect()` or whose allocation crosses
    /// the trigger (marking is still concurrent with the other threads).
    pub background: bool,
    /// Print one line per cycle to stderr.
    pub trace: bool,
    /// Automatic collection does not start before the heap holds this many bytes.
    pub min_heap: usize,
}

impl Default for GcConfig {
    #[cfg(not(loom))]
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        GcConfig {
            gogc: Some(100),
            memory_limit: None,
            mark_workers: (cpus / 4).max(1),
            background: true,
            trace: false,
            min_heap: 4 << 20,
        }
    }

    /// Under loom (the model checker), settings that suit models: every loom thread must
    /// finish, so no background collector thread and no extra mark worker, and cycles run only
    /// when a model calls `collect()`.
    #[cfg(loom)]
    fn default() -> Self {
        GcConfig {
            gogc: None,
            memory_limit: None,
            mark_workers: 1,
            background: false,
            trace: false,
            min_heap: 4 << 20,
        }
    }
}

impl GcConfig {
    /// The defaults with the environment variables applied.
    pub fn from_env() -> Self {
        let mut c = GcConfig::default();
        if let Ok(v) = std::env::var("GC_CORE_GOGC") {
            match parse_gogc(&v) {
                Ok(g) => c.gogc = g,
                Err(e) => eprintln!("gc-core: ignoring GC_CORE_GOGC: {e}"),
            }
        }
        if let Ok(v) = std::env::var("GC_CORE_TRACE") {
            c.trace = v == "1" || v.eq_ignore_ascii_case("true");
        }
        c
    }
}

/// Parses a GOGC value: a percentage, or `off`.
pub fn parse_gogc(v: &str) -> Result<Option<u32>, String> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    v.parse::<u32>()
        .map(Some)
        .map_err(|_| format!("`{v}` is not a percentage or `off`"))
}

/// Why [`configure`] refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The collector was already in use; settings only apply before the first use.
    AlreadyStarted,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::AlreadyStarted => write!(
                f,
                "gc_core::configure must be called before the first use of gc-core \
                 (Gc::new, collect, stats); the collector has already started"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Sets the process-wide collector's settings. Must come before any other use of gc-core.
pub fn configure(config: GcConfig) -> Result<(), ConfigError> {
    crate::gc::global::configure(config)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn gogc_parsing() {
        assert_eq!(parse_gogc("100"), Ok(Some(100)));
        assert_eq!(parse_gogc(" off "), Ok(None));
        assert!(parse_gogc("lots").unwrap_err().contains("lots"));
        assert!(GcConfig::default().mark_workers >= 1);
        assert!(ConfigError::AlreadyStarted
            .to_string()
            .contains("before the first use"));
    }
}
