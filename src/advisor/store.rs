//! The advisor's rows in the store (`migrations/0004_advisor.sql`): index usage
//! snapshots, the scans each index had over the observation, and closed-loop outcomes.
//! Never a literal value or parameter.

use std::collections::HashMap;

use super::health::IndexRow;
use super::watch::Measured;
use crate::store::{Store, StoreError};

/// Snapshots older than this are deleted (twice the longest sensible window).
const KEEP_DAYS: f64 = 90.0;

fn qualified(r: &IndexRow) -> String {
    if r.schema == "public" {
        r.index.clone()
    } else {
        format!("{}.{}", r.schema, r.index)
    }
}

/// Writes one snapshot of `rows` and deletes expired ones.
pub async fn snapshot(store: &Store, database: &str, rows: &[IndexRow]) -> Result<(), StoreError> {
    let client = store.client().await?;
    let insert = "INSERT INTO pgsidecar.index_snapshots
        (sidecar, database, index_name, table_name, idx_scan, size_bytes, blks_hit, blks_read)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    for r in rows {
        client
            .execute(
                insert,
                &[
                    &store.sidecar(),
                    &database,
                    &qualified(r),
                    &r.table,
                    &r.scans,
                    &r.size,
                    &r.blks_hit,
                    &r.blks_read,
                ],
            )
            .await
            .map_err(StoreError::query("index snapshot"))?;
    }
    client
        .execute(
            "DELETE FROM pgsidecar.index_snapshots WHERE at < now() - make_interval(secs => $1)",
            &[&(KEEP_DAYS * 86_400.0)],
        )
        .await
        .map_err(StoreError::query("index snapshot retention"))?;
    Ok(())
}

/// Per index: scans over the window (sum of increases between snapshots; a counter
/// that went down was reset, and counts from zero), and how long the database has been
/// observed (seconds since its oldest snapshot in the window).
pub async fn observed(
    store: &Store,
    database: &str,
    window_secs: f64,
) -> Result<(HashMap<String, i64>, u64), StoreError> {
    let client = store.client().await?;
    let rows = client
        .query(
            "SELECT index_name,
                    sum(CASE WHEN prev IS NULL THEN 0
                             WHEN idx_scan >= prev THEN idx_scan - prev
                             ELSE idx_scan END)::int8
             FROM (SELECT index_name, idx_scan,
                          lag(idx_scan) OVER (PARTITION BY index_name ORDER BY at) AS prev
                   FROM pgsidecar.index_snapshots
                   WHERE database = $1 AND at > now() - make_interval(secs => $2)) s
             GROUP BY index_name",
            &[&database, &window_secs],
        )
        .await
        .map_err(StoreError::query("index observation"))?;
    let scans = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let since = client
        .query_one(
            "SELECT COALESCE(extract(epoch FROM now() - min(at)), 0)::float8
             FROM pgsidecar.index_snapshots
             WHERE database = $1 AND at > now() - make_interval(secs => $2)",
            &[&database, &window_secs],
        )
        .await
        .map_err(StoreError::query("index observation"))?;
    Ok((scans, since.get::<_, f64>(0) as u64))
}

/// One applied suggestion's measured effect on one statement.
pub struct Outcome<'a> {
    pub database: &'a str,
    pub index_name: &'a str,
    pub fingerprint: u64,
    pub applied_at_ms: i64,
    pub cost: (f64, Option<f64>),
    pub before: Measured,
    pub after: Measured,
}

pub async fn outcome(store: &Store, o: &Outcome<'_>) -> Result<(), StoreError> {
    let client = store.client().await?;
    client
        .execute(
            "INSERT INTO pgsidecar.advice_outcomes AS a
                (sidecar, database, index_name, fingerprint, applied_at, cost_before, cost_after,
                 before_calls, before_p50_ms, before_p95_ms, after_calls, after_p50_ms, after_p95_ms)
             VALUES ($1, $2, $3, $4, to_timestamp($5::float8 / 1000), $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (sidecar, database, index_name, fingerprint) DO UPDATE SET
                updated_at = now(), after_calls = excluded.after_calls,
                after_p50_ms = excluded.after_p50_ms, after_p95_ms = excluded.after_p95_ms",
            &[
                &store.sidecar(),
                &o.database,
                &o.index_name,
                &(o.fingerprint as i64),
                &(o.applied_at_ms as f64),
                &o.cost.0,
                &o.cost.1,
                &(o.before.calls as i64),
                &o.before.p50_ms,
                &o.before.p95_ms,
                &(o.after.calls as i64),
                &o.after.p50_ms,
                &o.after.p95_ms,
            ],
        )
        .await
        .map_err(StoreError::query("advice outcome"))?;
    Ok(())
}
