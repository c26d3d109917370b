//! The registry's reads: snapshots of a window, one minute, one fingerprint, the
//! aggregates, and the all-time export for `/metrics`. Each clones the entries' `Arc`s
//! out of the map first, then locks entries one at a time.

use std::sync::Arc;

use super::*;

/// One entry's all-time numbers for export.
pub struct ExportRow {
    pub key: StatKey,
    pub meta: Arc<QueryMeta>,
    pub calls: u64,
    pub total_us: u64,
    /// Cumulative counts at the requested bounds.
    pub buckets: Vec<u64>,
}

/// One (database, command kind) aggregate's all-time numbers for export.
pub struct ExportGroup {
    pub database: String,
    pub command: CommandKind,
    pub calls: u64,
    pub errors: u64,
    pub rows: u64,
    pub total_us: u64,
    pub buckets: Vec<u64>,
    /// Errors by 2-character SQLSTATE class (`"??"` holds classes past the bound).
    pub classes: Vec<(String, u64)>,
}

impl Registry {
    /// One row per tracked entry for `window` (entries idle in it show zeros), most
    /// total time first.
    pub fn snapshot(&self, window: Window, now: u64) -> Vec<QuerySnapshot> {
        let mut acc = Acc::new();
        let mut rows: Vec<QuerySnapshot> = self
            .all_entries()
            .into_iter()
            .map(|e| {
                acc.clear();
                let seen = e.window(window, now, &mut acc);
                let stats = WindowStats::from_acc(&acc);
                QuerySnapshot::new(e.key.clone(), e.meta.clone(), stats, seen)
            })
            .collect();
        rows.sort_by(|a, b| b.total_us.cmp(&a.total_us).then_with(|| a.key.cmp(&b.key)));
        rows
    }

    /// One row per entry that ran in the completed minute `minute` (minutes since the
    /// registry's time zero), each counted once: what a store flush writes.
    pub fn minute(&self, minute: u64, now: u64) -> Vec<QuerySnapshot> {
        let mut acc = Acc::new();
        let mut rows = Vec::new();
        for e in self.all_entries() {
            acc.clear();
            e.minute(minute, now, &mut acc);
            if acc.c.calls > 0 {
                let stats = WindowStats::from_acc(&acc);
                let seen = (e.first_seen, lock(&e.inner).last_seen);
                rows.push(QuerySnapshot::new(
                    e.key.clone(),
                    e.meta.clone(),
                    stats,
                    seen,
                ));
            }
        }
        rows
    }

    /// Every window of every entry with `fingerprint` (one per (database, user), limited
    /// to `database` when given), sorted by key.
    pub fn get(&self, database: Option<&str>, fingerprint: u64, now: u64) -> Vec<QueryDetail> {
        let mut found: Vec<Arc<QueryStats>> = self
            .entries
            .iter()
            .filter(|e| e.key().fingerprint == fingerprint)
            .filter(|e| database.is_none_or(|db| e.key().database == db))
            .map(|e| e.value().clone())
            .collect();
        found.sort_by(|a, b| a.key.cmp(&b.key));
        let mut acc = Acc::new();
        found
            .into_iter()
            .map(|e| {
                let mut last_seen = 0;
                let windows = Window::LIST.map(|w| {
                    acc.clear();
                    last_seen = e.window(w, now, &mut acc).1;
                    (w, WindowStats::from_acc(&acc))
                });
                QueryDetail {
                    key: e.key.clone(),
                    meta: e.meta.clone(),
                    windows: windows.to_vec(),
                    first_seen: e.first_seen,
                    last_seen,
                }
            })
            .collect()
    }

    /// Per (database, command kind) for `window`, sorted by database then kind. Counts
    /// every record, including those of entries evicted since.
    pub fn aggregates(&self, window: Window, now: u64) -> Vec<AggregateSnapshot> {
        let groups: Vec<((String, CommandKind), Arc<AggGroup>)> = self
            .aggregates
            .iter()
            .map(|g| (g.key().clone(), g.value().clone()))
            .collect();
        let mut acc = Acc::new();
        let mut out: Vec<AggregateSnapshot> = groups
            .into_iter()
            .map(|((database, command), group)| {
                acc.clear();
                for shard in group.shards.iter() {
                    lock(&shard.0).read(window, now, &mut acc);
                }
                AggregateSnapshot::new(database, command, WindowStats::from_acc(&acc))
            })
            .collect();
        out.sort_by(|a, b| (&a.database, a.command).cmp(&(&b.database, b.command)));
        out
    }

    /// All-time numbers for export, with cumulative counts at `bounds_us` (ascending):
    /// every tracked entry, and every (database, command kind) aggregate (which also
    /// holds what evicted entries recorded).
    pub fn export(&self, now: u64, bounds_us: &[u64]) -> (Vec<ExportRow>, Vec<ExportGroup>) {
        let mut acc = Acc::new();
        let rows = self
            .all_entries()
            .into_iter()
            .map(|e| {
                acc.clear();
                e.window(Window::All, now, &mut acc);
                ExportRow {
                    key: e.key.clone(),
                    meta: e.meta.clone(),
                    calls: acc.c.calls,
                    total_us: acc.c.total_us,
                    buckets: acc.hist.cumulative(bounds_us),
                }
            })
            .collect();
        let groups: Vec<((String, CommandKind), Arc<AggGroup>)> = self
            .aggregates
            .iter()
            .map(|g| (g.key().clone(), g.value().clone()))
            .collect();
        let groups = groups
            .into_iter()
            .map(|((database, command), group)| {
                acc.clear();
                for shard in group.shards.iter() {
                    lock(&shard.0).read(Window::All, now, &mut acc);
                }
                ExportGroup {
                    database,
                    command,
                    calls: acc.c.calls,
                    errors: acc.c.errors,
                    rows: acc.c.rows,
                    total_us: acc.c.total_us,
                    buckets: acc.hist.cumulative(bounds_us),
                    classes: acc
                        .classes
                        .iter()
                        .map(|(k, n)| (class_name(k), n))
                        .collect(),
                }
            })
            .collect();
        (rows, groups)
    }
}
