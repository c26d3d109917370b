//! The shared registry: entries keyed by (database, user, fingerprint), the
//! per-(database, command kind) aggregates, the record hot path, eviction and reads.
//!
//! Locking: a record takes the entry's own mutex, then one aggregate shard's mutex,
//! never both at once and never a map lock. Creating an entry (rare) is serialized by
//! `create`, which is what keeps `tracked() <= max_fingerprints` exact. Reads clone the
//! entries' `Arc`s out of the map first, then lock entries one at a time.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;

use super::counters::class_name;
use super::snapshot::{AggregateSnapshot, QueryDetail, QuerySnapshot, WindowStats};
use super::window::{Acc, Windowed};
use super::{CommandKind, Outcome, QueryMeta, StatKey, Window};

/// The default bound on tracked entries.
pub const DEFAULT_MAX_FINGERPRINTS: usize = 5000;

/// Each (database, command kind) aggregate is split into this many independently locked
/// shards, entries spread round-robin, so sessions running different statements of one
/// kind rarely meet on a lock. Reads merge the shards.
const AGG_SHARDS: usize = 8;

mod read;
pub use read::{ExportGroup, ExportRow};

/// Statistics are best effort: after a panic mid-update, keep counting (at worst one
/// statement is off) rather than spread the panic to every session.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct AggGroup {
    pub(super) shards: Box<[Shard]>,
}

/// Cache-line aligned so threads recording into neighbouring shards do not contend on
/// a shared line.
#[repr(align(128))]
pub(super) struct Shard(pub(super) Mutex<Windowed>);

/// One tracked (database, user, fingerprint): counters and windowed histograms behind
/// its own lock. Sessions may keep the `Arc` and record without a map lookup; once
/// evicted, records to it only reach the aggregate.
pub struct QueryStats {
    key: StatKey,
    meta: Arc<QueryMeta>,
    first_seen: u64,
    evicted: AtomicBool,
    /// Slow executions in a row (reset by a fast one), for alerts.
    slow_streak: AtomicU32,
    agg: Arc<AggGroup>,
    shard: usize,
    pub(super) inner: Mutex<Windowed>,
}

impl QueryStats {
    pub fn key(&self) -> &StatKey {
        &self.key
    }

    pub fn meta(&self) -> &Arc<QueryMeta> {
        &self.meta
    }

    pub fn first_seen(&self) -> u64 {
        self.first_seen
    }

    pub fn last_seen(&self) -> u64 {
        lock(&self.inner).last_seen
    }

    /// True once the registry dropped this entry; a session caching the `Arc` may
    /// resolve the key again to be tracked anew.
    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Relaxed)
    }

    /// A slow execution: returns how many in a row that makes.
    pub fn note_slow(&self) -> u32 {
        self.slow_streak
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1)
    }

    /// A fast execution ends any streak (a plain load when there is none).
    #[inline]
    pub fn note_fast(&self) {
        if self.slow_streak.load(Ordering::Relaxed) != 0 {
            self.slow_streak.store(0, Ordering::Relaxed);
        }
    }

    /// Approximate heap bytes of this entry's histograms and slots.
    pub fn heap_bytes(&self) -> usize {
        lock(&self.inner).heap_bytes()
    }

    /// This entry's numbers over `window` (for background checks; not the hot path).
    pub fn window_stats(&self, window: Window, now: u64) -> WindowStats {
        let mut acc = Acc::new();
        self.window(window, now, &mut acc);
        WindowStats::from_acc(&acc)
    }

    fn minute(&self, minute: u64, now: u64, acc: &mut Acc) {
        lock(&self.inner).read_minute(minute, now, acc);
    }

    fn window(&self, w: Window, now: u64, acc: &mut Acc) -> (u64, u64) {
        let mut inner = lock(&self.inner);
        inner.read(w, now, acc);
        (self.first_seen, inner.last_seen)
    }
}

/// Per-statement statistics shared by all sessions (behind an `Arc`).
pub struct Registry {
    max: usize,
    pub(super) entries: DashMap<StatKey, Arc<QueryStats>>,
    pub(super) aggregates: DashMap<(String, CommandKind), Arc<AggGroup>>,
    evicted: AtomicU64,
    create: Mutex<()>,
    next_shard: AtomicUsize,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new(DEFAULT_MAX_FINGERPRINTS)
    }
}

impl Registry {
    /// `max_fingerprints` of 0 is taken as 1.
    pub fn new(max_fingerprints: usize) -> Registry {
        Registry {
            max: max_fingerprints.max(1),
            entries: DashMap::new(),
            aggregates: DashMap::new(),
            evicted: AtomicU64::new(0),
            create: Mutex::new(()),
            next_shard: AtomicUsize::new(0),
        }
    }

    pub fn max_fingerprints(&self) -> usize {
        self.max
    }

    /// Resolves (or creates) the entry once, so the hot path can keep an `Arc` and
    /// record without a map lookup. `meta` runs only when the entry is created.
    pub fn entry(
        &self,
        key: &StatKey,
        meta: impl FnOnce() -> QueryMeta,
        now: u64,
    ) -> Arc<QueryStats> {
        if let Some(found) = self.entries.get(key) {
            return found.clone();
        }
        let _creating = lock(&self.create);
        if let Some(found) = self.entries.get(key) {
            return found.clone();
        }
        if self.entries.len() >= self.max {
            self.evict(now);
        }
        let meta = Arc::new(meta());
        let agg = self
            .aggregates
            .entry((key.database.clone(), meta.command))
            .or_insert_with(|| {
                let shards = (0..AGG_SHARDS).map(|_| Shard(Mutex::new(Windowed::new(now))));
                Arc::new(AggGroup {
                    shards: shards.collect(),
                })
            })
            .clone();
        let stats = Arc::new(QueryStats {
            key: key.clone(),
            meta,
            first_seen: now,
            evicted: AtomicBool::new(false),
            slow_streak: AtomicU32::new(0),
            agg,
            shard: self.next_shard.fetch_add(1, Ordering::Relaxed) % AGG_SHARDS,
            inner: Mutex::new(Windowed::new(now)),
        });
        self.entries.insert(key.clone(), stats.clone());
        stats
    }

    /// Records one statement: `duration_us` from its arrival to its CommandComplete (or
    /// error), `rows` from CommandComplete. Feeds the entry and its aggregate.
    #[inline]
    pub fn record(
        &self,
        entry: &QueryStats,
        duration_us: u64,
        rows: u64,
        outcome: Outcome,
        now: u64,
    ) {
        let class = outcome.class_key();
        if !entry.is_evicted() {
            lock(&entry.inner).record(now, duration_us, rows, class);
        }
        lock(&entry.agg.shards[entry.shard].0).record(now, duration_us, rows, class);
    }

    /// [`Registry::record`] for a statement that waited `wait_us` (part of
    /// `duration_us`) for its pool to hand out a server.
    #[inline]
    pub fn record_with_wait(
        &self,
        entry: &QueryStats,
        duration_us: u64,
        wait_us: u64,
        rows: u64,
        outcome: Outcome,
        now: u64,
    ) {
        let class = outcome.class_key();
        let wait_us = wait_us.min(duration_us);
        if !entry.is_evicted() {
            let mut inner = lock(&entry.inner);
            inner.record(now, duration_us, rows, class);
            inner.record_wait(wait_us);
        }
        let mut shard = lock(&entry.agg.shards[entry.shard].0);
        shard.record(now, duration_us, rows, class);
        shard.record_wait(wait_us);
    }

    /// Entries currently tracked (never more than `max_fingerprints`).
    pub fn tracked(&self) -> usize {
        self.entries.len()
    }

    /// Entries evicted since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Drops the least valuable entries: least total time in the last hour, then oldest
    /// `last_seen`. Evicts 1% of the bound at a time (at least what is needed to make
    /// room for one), so a stream of new shapes pays the O(n) ranking once per 1% of
    /// `max_fingerprints` new entries rather than once each. Caller holds `create`.
    fn evict(&self, now: u64) {
        let all = self.all_entries();
        let mut ranked: Vec<(u64, u64, usize)> = all
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut inner = lock(&e.inner);
                (inner.total_us(Window::Hour1, now), inner.last_seen, i)
            })
            .collect();
        let needed = (all.len() + 1).saturating_sub(self.max);
        let n = needed.max(self.max / 100).min(ranked.len());
        if n == 0 {
            return;
        }
        ranked.select_nth_unstable(n - 1);
        for &(_, _, i) in &ranked[..n] {
            let victim = &all[i];
            self.entries.remove(&victim.key);
            victim.evicted.store(true, Ordering::Relaxed);
            self.evicted.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(super) fn all_entries(&self) -> Vec<Arc<QueryStats>> {
        self.entries.iter().map(|e| e.value().clone()).collect()
    }

    /// Approximate heap bytes held by tracked entries and aggregates (histograms and
    /// slots; key strings and query text not included).
    pub fn heap_bytes(&self) -> usize {
        let entries: usize = self.all_entries().iter().map(|e| e.heap_bytes()).sum();
        let groups: Vec<Arc<AggGroup>> =
            self.aggregates.iter().map(|g| g.value().clone()).collect();
        let shards = groups.iter().flat_map(|g| g.shards.iter());
        entries + shards.map(|s| lock(&s.0).heap_bytes()).sum::<usize>()
    }
}
