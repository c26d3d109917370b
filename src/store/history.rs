//! The statistics history as stored: per-minute rows of `stats_snapshots` over a
//! window, newest first, and the latest plan of a set of shapes (what `/api/queries`
//! rows point to).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::rows::{self, Page, Snapshot, Stored};
use super::{secs, Store, StoreError};

/// Rows of the last `$3` seconds, below a keyset cursor, optionally for one shape.
const LIST_HISTORY: &str = "SELECT id, at, sidecar, database, username, fingerprint, query,
       command, calls, errors, rows, total_ms, p50_ms, p95_ms, p99_ms, max_ms
FROM pgsidecar.stats_snapshots
WHERE ($1::int8 IS NULL OR id < $1)
  AND at >= now() - make_interval(secs => $3)
  AND ($4::text IS NULL OR fingerprint = $4)
  AND ($5::text IS NULL OR database = $5)
ORDER BY id DESC
LIMIT $2";

/// The newest plan of each (database, fingerprint) asked for.
const LATEST_PLANS: &str = "SELECT DISTINCT ON (database, fingerprint)
       database, fingerprint, id, captured_at, plan_hash
FROM pgsidecar.plans
WHERE fingerprint = ANY($1)
ORDER BY database, fingerprint, captured_at DESC, id DESC";

/// A shape's newest plan: its id, capture time and hash.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRef {
    pub id: i64,
    pub captured_at: SystemTime,
    pub plan_hash: String,
}

impl Store {
    /// Per-minute statistics of the last `window`, newest first.
    pub async fn list_history(
        &self,
        window: Duration,
        fingerprint: Option<&str>,
        database: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Page<Stored<Snapshot>>, StoreError> {
        let limit = rows::page_limit(limit);
        let client = self.client().await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &before_id,
            &(limit + 1),
            &secs(window),
            &fingerprint,
            &database,
        ];
        let found = client
            .query(LIST_HISTORY, &params)
            .await
            .map_err(StoreError::query("list history"))?;
        let items = found.iter().map(snapshot).collect();
        Ok(Page::from_rows(items, limit, |r: &Stored<Snapshot>| r.id))
    }

    /// The newest plan of each of `fingerprints`, by (database, fingerprint).
    pub async fn latest_plans(
        &self,
        fingerprints: &[String],
    ) -> Result<HashMap<(String, String), PlanRef>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(HashMap::new());
        }
        let client = self.client().await?;
        let found = client
            .query(LATEST_PLANS, &[&fingerprints])
            .await
            .map_err(StoreError::query("latest plans"))?;
        Ok(found
            .iter()
            .map(|row| {
                let key = (row.get("database"), row.get("fingerprint"));
                let plan = PlanRef {
                    id: row.get("id"),
                    captured_at: row.get("captured_at"),
                    plan_hash: row.get("plan_hash"),
                };
                (key, plan)
            })
            .collect())
    }
}

fn snapshot(row: &tokio_postgres::Row) -> Stored<Snapshot> {
    Stored {
        id: row.get("id"),
        sidecar: row.get("sidecar"),
        row: Snapshot {
            at: row.get("at"),
            database: row.get("database"),
            username: row.get("username"),
            fingerprint: row.get("fingerprint"),
            query: row.get("query"),
            command: row.get("command"),
            calls: row.get("calls"),
            errors: row.get("errors"),
            rows: row.get("rows"),
            total_ms: row.get("total_ms"),
            p50_ms: row.get("p50_ms"),
            p95_ms: row.get("p95_ms"),
            p99_ms: row.get("p99_ms"),
            max_ms: row.get("max_ms"),
        },
    }
}
