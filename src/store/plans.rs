//! Captured plans, plan-change detection, and the fleet-wide claim that lets one
//! sidecar capture a plan per query per interval.

use std::time::Duration;

use super::rows::{self, NewPlan, Page, Plan, PlanChange};
use super::{secs, Store, StoreError};

/// Serializes captures of one (database, fingerprint): with the lock held, the latest
/// plan read below is really the latest, even when two sidecars capture at once. The
/// two-key form keeps these locks apart from the single-key migration lock.
const LOCK_QUERY: &str =
    "SELECT pg_advisory_xact_lock(1885827945, hashtext($1::text || '/' || $2::text))";

/// Inserts the plan and, when the latest earlier plan of the query has another hash, a
/// plan change; returns that earlier hash. Data-modifying CTEs see the table as it was
/// before the statement, so `prev` never sees the plan being inserted.
const INSERT_PLAN: &str = "WITH prev AS (
    SELECT plan_hash, p50_ms FROM pgsidecar.plans
    WHERE database = $1 AND fingerprint = $2
    ORDER BY captured_at DESC, id DESC
    LIMIT 1
), inserted AS (
    INSERT INTO pgsidecar.plans
        (sidecar, database, fingerprint, query, plan, plan_hash, total_cost, actual_ms,
         analyzed, params, reason, fallback_reason, p50_ms)
    VALUES ($3, $1, $2, $4, $5::text::jsonb, $6, $7, $8, $9, $10::text::jsonb, $11, $12, $13)
), change AS (
    INSERT INTO pgsidecar.plan_changes
        (database, fingerprint, old_hash, new_hash, reason, old_p50_ms, new_p50_ms)
    SELECT $1, $2, plan_hash, $6, $11, p50_ms, $13 FROM prev WHERE plan_hash <> $6
    RETURNING old_hash
)
SELECT old_hash FROM change";

const LIST_PLANS: &str = "SELECT id, captured_at, sidecar, database, fingerprint, query,
       plan::text AS plan, plan_hash, total_cost, actual_ms, analyzed, params::text AS params,
       reason, fallback_reason, p50_ms
FROM pgsidecar.plans
WHERE ($1::int8 IS NULL OR id < $1)
  AND ($2::text IS NULL OR fingerprint = $2)
  AND ($3::text IS NULL OR database = $3)
ORDER BY id DESC
LIMIT $4";

const LIST_CHANGES: &str = "SELECT id, at, database, fingerprint, old_hash, new_hash,
       reason, old_p50_ms, new_p50_ms
FROM pgsidecar.plan_changes
WHERE ($1::int8 IS NULL OR id < $1)
  AND ($3::text IS NULL OR fingerprint = $3)
  AND ($4::text IS NULL OR database = $4)
ORDER BY id DESC
LIMIT $2";

/// Takes the claim when nobody holds it or the holder's claim is older than the
/// interval; RETURNING yields a row only when this call took it.
const CLAIM_EXPLAIN: &str =
    "INSERT INTO pgsidecar.explain_claims (database, fingerprint, claimed_at)
VALUES ($1, $2, now())
ON CONFLICT (database, fingerprint) DO UPDATE SET claimed_at = now()
WHERE explain_claims.claimed_at < now() - make_interval(secs => $3)
RETURNING 1";

impl Store {
    /// Stores a captured plan. Returns the hash of the query's previous plan when it
    /// differs from this one (a plan change, also recorded in `plan_changes`); `None` for
    /// a first capture or an unchanged plan.
    pub async fn insert_plan(&self, plan: &NewPlan) -> Result<Option<String>, StoreError> {
        let what = "insert plan";
        let mut client = self.client().await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::query(what))?;
        tx.query_one(LOCK_QUERY, &[&plan.database, &plan.fingerprint])
            .await
            .map_err(StoreError::query(what))?;
        let sidecar: &str = &self.sidecar;
        let body = plan.plan.to_string();
        let params = plan.params.as_ref().map(|p| p.to_string());
        let changed = tx
            .query_opt(
                INSERT_PLAN,
                &[
                    &plan.database,
                    &plan.fingerprint,
                    &sidecar,
                    &plan.query,
                    &body,
                    &plan.plan_hash,
                    &plan.total_cost,
                    &plan.actual_ms,
                    &plan.analyzed,
                    &params,
                    &plan.reason,
                    &plan.fallback_reason,
                    &plan.p50_ms,
                ],
            )
            .await
            .map_err(StoreError::query(what))?
            .map(|row| row.get::<_, String>(0));
        tx.commit().await.map_err(StoreError::query(what))?;
        if let Some(old) = &changed {
            tracing::info!(
                database = %plan.database,
                fingerprint = %plan.fingerprint,
                old_hash = %old,
                new_hash = %plan.plan_hash,
                "plan changed"
            );
        }
        Ok(changed)
    }

    /// Plans, newest first, optionally for one query and/or one database.
    pub async fn list_plans(
        &self,
        fingerprint: Option<&str>,
        database: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Page<Plan>, StoreError> {
        let limit = rows::page_limit(limit);
        let client = self.client().await?;
        let found = client
            .query(
                LIST_PLANS,
                &[&before_id, &fingerprint, &database, &(limit + 1)],
            )
            .await
            .map_err(StoreError::query("list plans"))?;
        let items = found.iter().map(rows::plan).collect::<Result<_, _>>()?;
        Ok(Page::from_rows(items, limit, |p: &Plan| p.id))
    }

    /// Plan changes, newest first, optionally for one query and/or one database.
    pub async fn list_plan_changes(
        &self,
        fingerprint: Option<&str>,
        database: Option<&str>,
        before_id: Option<i64>,
        limit: u32,
    ) -> Result<Page<PlanChange>, StoreError> {
        let limit = rows::page_limit(limit);
        let client = self.client().await?;
        let found = client
            .query(
                LIST_CHANGES,
                &[&before_id, &(limit + 1), &fingerprint, &database],
            )
            .await
            .map_err(StoreError::query("list plan changes"))?;
        let items = found.iter().map(rows::plan_change).collect();
        Ok(Page::from_rows(items, limit, |c: &PlanChange| c.id))
    }

    /// True when this sidecar may capture the plan of (database, fingerprint) now: across
    /// the fleet, at most one caller gets `true` per query per `interval`.
    pub async fn try_claim_explain(
        &self,
        database: &str,
        fingerprint: &str,
        interval: Duration,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(CLAIM_EXPLAIN)
            .await
            .map_err(StoreError::query("claim explain"))?;
        let taken = client
            .query_opt(&stmt, &[&database, &fingerprint, &secs(interval)])
            .await
            .map_err(StoreError::query("claim explain"))?;
        Ok(taken.is_some())
    }
}
