//! Per-statement statistics: what the proxy measured for every statement it forwarded,
//! per (database, user, fingerprint) and per (database, command kind), over sliding
//! windows, in bounded memory.
//!
//! # Recording
//! The session resolves an entry once with [`Registry::entry`] and keeps the `Arc`; each
//! statement then costs one [`Registry::record`]: a bucket lookup (table search, no float
//! math), an increment in the entry's dense current-minute array under the entry's own
//! mutex, and the same under one of 8 shard mutexes of its (database, kind) aggregate.
//! No map lookup, no global lock, no allocation (see "Allocation" below).
//!
//! # Histograms and error
//! Buckets are a fixed table (`histogram`): bucket `[lo, hi]` has a representative `r`
//! with `|r - v| <= v / 100` for every `v` in it, in exact integer arithmetic. 1,119
//! buckets cover 0 to 2^36 µs (~19 h); values 0..=98 µs are exact. Quantiles are
//! nearest-rank (`ceil(q * n)`-th smallest) and return the representative of the bucket
//! holding that sample, clamped to the window's exact min/max, so p50/p95/p99/p99.9 are
//! within 1% of the exact sample quantile. Counts, rows, errors, total, min and max are
//! exact. Histograms merge by adding counts, which is exact: merging is how windows
//! combine slots and how aggregates combine shards.
//!
//! # Windows
//! Time is the caller's `now` in seconds (any epoch, the same for all calls; the proxy
//! uses [`StatsClock`], whose minutes are wall-clock minutes). The current
//! minute is a dense accumulator; when a record or read sees a later minute, the minute
//! is folded into compact slots (`slot`) of three tiers: 1-minute slots (the last 5
//! kept), 5-minute slots (12 kept) and 1-hour slots (24 kept), plus a since-start total.
//! A window of length W with slots of length S reads the current slot plus the W/S
//! complete slots before it, i.e. between W and W + S of history:
//!
//! | window | slots  | history covered                            |
//! |--------|--------|--------------------------------------------|
//! | `1m`   | 1 min  | 1–2 min                                    |
//! | `5m`   | 1 min  | 5–6 min                                    |
//! | `1h`   | 5 min  | 60–65 min                                  |
//! | `24h`  | 1 hour | 24–25 h                                    |
//! | `all`  | —      | since the entry (or aggregate) was created |
//!
//! # Memory (per entry; [`QueryStats::heap_bytes`] / [`Registry::heap_bytes`] measure it)
//! Fixed: the dense minute, 1,119 × 4 B = 4.4 KB. Each completed slot with data costs a
//! 32 B header plus its encoded bytes: ~25 B of counters and 2–4 B per distinct bucket
//! touched (idle slots are not stored). A 1% bucket spans 2% of value, so latencies
//! spread over a factor R touch at most ~50·ln(R) + 1 buckets per slot. Measured after
//! 25 hours of log-normal latencies (σ ≈ 1; `tests::memory_per_entry`): 7.2 KB at one
//! call per 10 min, 10.4 KB at 1/min, 20 KB at 10/min, 30 KB at 100/min, 40 KB at
//! 1,000/min. So 5,000 entries, 4,500 at 1/min and 500 busy: ~65 MB.
//!
//! Worst case: every slot touches all 1,119 buckets (latencies spread evenly from 1 µs
//! to 19 h every minute): 109 KB measured with small counts, at most ~250 KB with large
//! ones (47 slots of ≤ 5 KB, half-grown slots with up to 2× capacity), so at most
//! ~1.25 GB for 5,000 entries. Each (database, command kind) aggregate is 8 shards of
//! the same structure.
//!
//! # Allocation
//! Recording into an existing entry allocates nothing within a minute. At a minute
//! rollover (the first record or read of a new minute) each tier reuses the buffer of
//! the slot it just dropped; a buffer grows only when a slot outgrows it, and a
//! completed slot gives back spare capacity above 25%.
//!
//! # Eviction
//! At most `max_fingerprints` entries (default 5,000). Creating one more evicts the
//! least valuable: least total time in the last hour, ties by oldest `last_seen`, 1%
//! of the bound per pass so churn costs O(1) amortized. Evictions are counted. An
//! evicted entry's `Arc` still accepts records: they reach the aggregate only, and
//! [`QueryStats::is_evicted`] tells the holder to resolve the key again.

mod clock;
mod counters;
pub mod flush;
mod histogram;
mod measure;
mod registry;
mod series;
mod slot;
mod snapshot;
mod window;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use clock::StatsClock;
pub use histogram::{Histogram, BUCKETS, EXPORT_BOUNDS_US, MAX_TRACKED_US};
pub use measure::Measure;
pub use registry::{ExportGroup, ExportRow, QueryStats, Registry, DEFAULT_MAX_FINGERPRINTS};
pub use snapshot::{AggregateSnapshot, QueryDetail, QuerySnapshot, WindowStats};

/// The command kinds aggregates are kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandKind {
    Select,
    Insert,
    Update,
    Delete,
    Other,
}

impl CommandKind {
    pub const LIST: [CommandKind; 5] = [
        CommandKind::Select,
        CommandKind::Insert,
        CommandKind::Update,
        CommandKind::Delete,
        CommandKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Select => "SELECT",
            CommandKind::Insert => "INSERT",
            CommandKind::Update => "UPDATE",
            CommandKind::Delete => "DELETE",
            CommandKind::Other => "OTHER",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reporting window; see the module docs for the exact history each covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Min1,
    Min5,
    Hour1,
    Hour24,
    All,
}

impl Window {
    pub const LIST: [Window; 5] = [
        Window::Min1,
        Window::Min5,
        Window::Hour1,
        Window::Hour24,
        Window::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Min1 => "1m",
            Window::Min5 => "5m",
            Window::Hour1 => "1h",
            Window::Hour24 => "24h",
            Window::All => "all",
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown window {0:?} (expected 1m, 5m, 1h, 24h or all)")]
pub struct UnknownWindow(pub String);

impl FromStr for Window {
    type Err = UnknownWindow;

    fn from_str(s: &str) -> Result<Window, UnknownWindow> {
        Window::LIST
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownWindow(s.to_owned()))
    }
}

/// What statistics are kept per.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatKey {
    pub database: String,
    pub user: String,
    pub fingerprint: u64,
}

/// Describes an entry's statement; computed once, when the entry is created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryMeta {
    pub normalized: String,
    /// Which aggregate the entry feeds.
    pub command: CommandKind,
    /// What the admin API shows, e.g. "SELECT" or "DDL".
    pub command_label: String,
    pub tables: Vec<String>,
}

/// How a statement ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Error { sqlstate: [u8; 5] },
}

impl Outcome {
    fn class_key(self) -> Option<u16> {
        match self {
            Outcome::Ok => None,
            Outcome::Error { sqlstate } => Some(counters::class_key(sqlstate)),
        }
    }
}
