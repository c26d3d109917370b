//! The shared analysis cache: statement shape hash -> [`QueryInfo`], with pg_query run
//! only on a miss.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use moka::sync::Cache;

use super::fallback::{command_from_keywords, normalize_tokens};
use super::split::{empty_hash, split_statements, Statement};
use super::{worker, QueryInfo};

/// Deeper parenthesis nesting skips pg_query: its parser and walkers recurse per level.
pub const MAX_PARSE_DEPTH: u32 = 1000;
/// Bytes of cached text that count as one entry towards the capacity, so that a cache of
/// huge statements stays bounded in memory too (about capacity x 4 KiB at most).
const BYTES_PER_UNIT: usize = 4096;

/// The key is already a well-mixed 64-bit hash: hashing it again would be wasted work.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Statement analysis shared by all sessions (it is `Send + Sync`; hold it in an `Arc`).
pub struct Analyzer {
    cache: Cache<u64, Arc<QueryInfo>, BuildHasherDefault<KeyHasher>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish_non_exhaustive()
    }
}

fn weight(info: &QueryInfo) -> u32 {
    let tables: usize = info
        .tables_read
        .iter()
        .chain(&info.tables_written)
        .map(String::len)
        .sum();
    let units = 1 + (info.normalized.len() + tables) / BYTES_PER_UNIT;
    u32::try_from(units).unwrap_or(u32::MAX)
}

impl Analyzer {
    /// A cache of at most `capacity` statement shapes (at least 1).
    pub fn new(capacity: usize) -> Analyzer {
        let cache = Cache::builder()
            .max_capacity(capacity.max(1) as u64)
            .weigher(|_key: &u64, info: &Arc<QueryInfo>| weight(info))
            .build_with_hasher(BuildHasherDefault::default());
        Analyzer {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The analysis of one statement from [`split_statements`]. A statement of an already
    /// seen shape is a cache hit and costs no parsing.
    pub fn analyze(&self, stmt: &Statement<'_>) -> Arc<QueryInfo> {
        if let Some(info) = self.cache.get(&stmt.hash) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return info;
        }
        // `or_insert_with` runs the closure once per key even when sessions miss on the
        // same new shape together; the others wait and count as hits.
        let entry = self.cache.entry(stmt.hash).or_insert_with(|| {
            self.misses.fetch_add(1, Ordering::Relaxed);
            Arc::new(compute(stmt))
        });
        if !entry.is_fresh() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        entry.into_value()
    }

    /// The analysis of a Parse message's query: its first statement, or an empty
    /// utility statement when it has none.
    pub fn analyze_text(&self, sql: &str) -> Arc<QueryInfo> {
        match split_statements(sql).next() {
            Some(stmt) => self.analyze(&stmt),
            None => self.analyze(&empty_statement()),
        }
    }

    /// Cached shapes. Settles pending evictions first, so it is exact but not free.
    pub fn len(&self) -> usize {
        self.cache.run_pending_tasks();
        usize::try_from(self.cache.entry_count()).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Analyses that ran the expensive path (one per shape while it stays cached).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

fn empty_statement() -> Statement<'static> {
    Statement {
        text: "",
        hash: empty_hash(),
        depth: 0,
    }
}

fn compute(stmt: &Statement<'_>) -> QueryInfo {
    if stmt.depth <= MAX_PARSE_DEPTH {
        if let Some(parsed) = worker::analyze(stmt.text) {
            return QueryInfo {
                fingerprint: parsed.fingerprint,
                normalized: parsed.normalized,
                command: parsed.command,
                tables_read: parsed.tables_read,
                tables_written: parsed.tables_written,
                parsed: true,
            };
        }
    }
    fallback(stmt)
}

/// What the lexer alone can tell: the shape hash is the fingerprint, so statements that
/// differ only in literals still group together.
pub(crate) fn fallback(stmt: &Statement<'_>) -> QueryInfo {
    QueryInfo {
        fingerprint: stmt.hash,
        normalized: normalize_tokens(stmt.text),
        command: command_from_keywords(stmt.text),
        tables_read: Vec::new(),
        tables_written: Vec::new(),
        parsed: false,
    }
}
