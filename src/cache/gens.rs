//! Generation counters: one for everything, one per database, one per table (by OID,
//! within its database). An invalidation only increments counters, so it is O(1) and
//! synchronous; entries and fills compare a *stamp*.
//!
//! A stamp is the sum of the counters that cover a set of tables. Every counter only
//! grows, so the sum is unchanged exactly when none of them moved: one `u64` stands for
//! the whole snapshot, which is what the fill race needs (take the stamp before the miss
//! goes to the server, store only if it is unchanged when the result arrives).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

/// The counters of one database.
#[derive(Default)]
struct Database {
    whole: AtomicU64,
    tables: DashMap<u32, u64>,
}

/// Every generation counter of this sidecar.
#[derive(Default)]
pub struct Generations {
    global: AtomicU64,
    databases: DashMap<String, Arc<Database>>,
}

impl Generations {
    fn database(&self, name: &str) -> Arc<Database> {
        if let Some(db) = self.databases.get(name) {
            return db.clone();
        }
        self.databases.entry(name.to_owned()).or_default().clone()
    }

    /// The stamp of `tables` in `database` now.
    pub fn stamp(&self, database: &str, tables: &[u32]) -> u64 {
        // Read the table counters before the broader ones: an invalidation bumps the
        // broader ones after its tables, so a concurrent flush cannot be missed twice.
        let db = self.database(database);
        let mut sum = 0u64;
        for oid in tables {
            sum = sum.wrapping_add(db.tables.get(oid).map_or(0, |g| *g));
        }
        sum.wrapping_add(db.whole.load(Ordering::Acquire))
            .wrapping_add(self.global.load(Ordering::Acquire))
    }

    /// Moves the counters of `tables` in `database`.
    pub fn bump_tables(&self, database: &str, tables: &[u32]) {
        let db = self.database(database);
        for oid in tables {
            *db.tables.entry(*oid).or_insert(0) += 1;
        }
    }

    /// Moves the counter that covers every table of `database`.
    pub fn bump_database(&self, database: &str) {
        self.database(database).whole.fetch_add(1, Ordering::AcqRel);
    }

    /// Moves the counter that covers everything.
    pub fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_moves_with_any_covering_counter() {
        let g = Generations::default();
        let s = g.stamp("db", &[1, 2]);
        g.bump_tables("db", &[3]);
        assert_eq!(g.stamp("db", &[1, 2]), s, "another table");
        g.bump_tables("other", &[1]);
        assert_eq!(g.stamp("db", &[1, 2]), s, "same OID, other database");
        g.bump_tables("db", &[2]);
        let s2 = g.stamp("db", &[1, 2]);
        assert_ne!(s2, s);
        g.bump_database("db");
        let s3 = g.stamp("db", &[1, 2]);
        assert_ne!(s3, s2);
        assert_ne!(g.stamp("db", &[]), 0);
        g.bump_all();
        assert_ne!(g.stamp("db", &[1, 2]), s3);
        assert_ne!(g.stamp("other", &[]), 0);
    }
}
