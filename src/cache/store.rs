//! The entries: a moka cache of stored responses, weighed in bytes (key plus message
//! bytes), each living for its TTL plus its stale-while-revalidate window. An entry is
//! served only while the generation stamp it was stored under is still current; one
//! that is not is removed at lookup (counted as invalidated).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::notification::RemovalCause;
use moka::policy::Expiry;

use super::reason::Eviction;
use super::stats::CacheStats;

/// Bookkeeping bytes counted per entry on top of its key and response.
const ENTRY_OVERHEAD: usize = 160;

/// A stored response.
#[derive(Debug)]
pub struct Entry {
    /// RowDescription, the DataRows and CommandComplete, exactly as the server sent them.
    pub response: Bytes,
    /// The tables it depends on (read, their ancestors and descendants), by OID.
    pub tables: Arc<[u32]>,
    pub database: Arc<str>,
    /// The generation stamp of `tables` when the miss went out.
    pub stamp: u64,
    pub fingerprint: u64,
    pub stored_at: Instant,
    pub ttl: Duration,
    pub stale_while_revalidate: Duration,
    /// What the miss cost upstream: the time a hit saves.
    pub upstream: Duration,
    /// One stale hit started a refill; the others wait for it or go to the server.
    pub refreshing: AtomicBool,
}

/// What a lookup found, before the generation check.
pub enum Found {
    Fresh(Arc<Entry>),
    /// Past its TTL, inside its stale-while-revalidate window, and a refill is running:
    /// serve it.
    Stale(Arc<Entry>),
    /// Past its TTL, inside its window, and this caller is the one that refills it.
    Refill(Arc<Entry>),
    Absent,
}

struct PerEntry;

impl Expiry<Box<[u8]>, Arc<Entry>> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &Box<[u8]>,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl + entry.stale_while_revalidate)
    }
}

/// An entry's weight in bytes. moka hands the key as `&K`, hence `&Box`.
#[allow(clippy::borrowed_box)]
fn weigh(key: &Box<[u8]>, entry: &Arc<Entry>) -> u32 {
    let bytes = key.len() + entry.response.len() + ENTRY_OVERHEAD;
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

/// The entries, bounded by `max_bytes`.
pub struct Store {
    entries: moka::sync::Cache<Box<[u8]>, Arc<Entry>>,
}

impl Store {
    pub fn new(max_bytes: u64, stats: Arc<CacheStats>) -> Store {
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(weigh)
            .expire_after(PerEntry)
            .eviction_listener(move |_key, _entry, cause| {
                stats.evicted(match cause {
                    RemovalCause::Expired => Eviction::Expired,
                    RemovalCause::Explicit => Eviction::Invalidated,
                    RemovalCause::Replaced => Eviction::Replaced,
                    RemovalCause::Size => Eviction::Size,
                })
            })
            .build();
        Store { entries }
    }

    /// The entry under `key`, if it may be served at `now`.
    pub fn get(&self, key: &[u8], now: Instant) -> Found {
        let Some(entry) = self.entries.get(key) else {
            return Found::Absent;
        };
        let age = now.saturating_duration_since(entry.stored_at);
        if age <= entry.ttl {
            return Found::Fresh(entry);
        }
        if age > entry.ttl + entry.stale_while_revalidate {
            return Found::Absent;
        }
        match entry.refreshing.swap(true, Ordering::AcqRel) {
            true => Found::Stale(entry),
            false => Found::Refill(entry),
        }
    }

    pub fn insert(&self, key: Box<[u8]>, entry: Entry) {
        self.entries.insert(key, Arc::new(entry));
    }

    pub fn remove(&self, key: &[u8]) {
        self.entries.invalidate(key);
    }

    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Entries of one database go when its counter moves; this frees their memory now.
    pub fn clear_database(&self, database: &str) {
        self.clear_where(|e| &*e.database == database);
    }

    /// Removes the entries `pred` picks; returns how many.
    pub fn clear_where(&self, pred: impl Fn(&Entry) -> bool) -> usize {
        let victims: Vec<Arc<Box<[u8]>>> = self
            .entries
            .iter()
            .filter(|(_, e)| pred(e))
            .map(|(k, _)| k)
            .collect();
        for key in &victims {
            self.entries.invalidate(&key[..]);
        }
        victims.len()
    }

    /// (entries, weighed bytes), after pending maintenance.
    pub fn size(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize, ttl: u64, swr: u64) -> Entry {
        Entry {
            response: Bytes::from(vec![0u8; bytes]),
            tables: Arc::from(vec![1u32]),
            database: Arc::from("db"),
            stamp: 0,
            fingerprint: 7,
            stored_at: Instant::now(),
            ttl: Duration::from_secs(ttl),
            stale_while_revalidate: Duration::from_secs(swr),
            upstream: Duration::from_millis(1),
            refreshing: AtomicBool::new(false),
        }
    }

    #[test]
    fn stale_entries_are_refilled_once_and_served_meanwhile() {
        let store = Store::new(1 << 20, Arc::default());
        store.insert(Box::from(&b"k"[..]), entry(10, 10, 5));
        let now = Instant::now();
        assert!(matches!(store.get(b"k", now), Found::Fresh(_)));
        let later = now + Duration::from_secs(12);
        assert!(matches!(store.get(b"k", later), Found::Refill(_)));
        assert!(matches!(store.get(b"k", later), Found::Stale(_)));
        assert!(matches!(
            store.get(b"k", now + Duration::from_secs(16)),
            Found::Absent
        ));
    }

    #[test]
    fn bytes_are_bounded_and_evictions_counted() {
        let stats = Arc::new(CacheStats::default());
        let store = Store::new(64 * 1024, stats.clone());
        for i in 0..100u32 {
            store.insert(Box::from(&i.to_be_bytes()[..]), entry(4096, 60, 0));
        }
        let (_, bytes) = store.size();
        assert!(bytes <= 64 * 1024, "{bytes}");
        let size = stats.evictions[Eviction::Size.index()].load(Ordering::Relaxed);
        assert!(size > 0);
        store.insert(Box::from(&b"x"[..]), entry(1, 60, 0));
        store.insert(Box::from(&b"y"[..]), entry(1, 60, 0));
        let mut other = entry(1, 60, 0);
        other.database = Arc::from("other");
        store.insert(Box::from(&b"z"[..]), other);
        store.clear_database("db");
        store.size();
        assert!(matches!(store.get(b"z", Instant::now()), Found::Fresh(_)));
        assert!(matches!(store.get(b"x", Instant::now()), Found::Absent));
    }
}
