//! Background work of the slow-statement pipeline: EXPLAIN captures, webhook
//! deliveries, statistics flushes and retention. With a store these are durable jobs in
//! `pgsidecar.jobs` that any sidecar of a fleet may claim; without one, captures and
//! deliveries run in this process and nothing is flushed.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::capture::CaptureInput;
use super::schedule::CaptureReason;
use super::webhook;
use super::Ctx;
use crate::explain::{CapturedPlan, ExplainLimits};
use crate::store::{self, Alert, NewPlan, Plan, PlanChange, Store};

/// Attempts for a webhook delivery without a store (the store's jobs retry by themselves).
const MEMORY_DELIVERY_ATTEMPTS: u32 = 3;
/// A job claimed longer ago than this (at least; see [`Jobs::stale_after`]) by a sidecar that
/// never finished it is retried.
const STALE_CLAIM: Duration = Duration::from_secs(300);

/// How long one store call from the slow pipeline may take: a store that stops
/// answering must not stall slow-event handling behind it.
const STORE_CALL: Duration = Duration::from_secs(10);

/// Runs a store call with [`STORE_CALL`] as its limit; errors become text.
pub(super) async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, store::StoreError>>,
) -> Result<T, String> {
    match tokio::time::timeout(STORE_CALL, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "the store did not answer within {} s",
            STORE_CALL.as_secs()
        )),
    }
}

/// One EXPLAIN to capture (also the payload of an `explain` job).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureJob {
    pub database: String,
    pub user: String,
    pub fingerprint: String,
    pub query: String,
    pub input: CaptureInput,
    /// Absent in jobs queued by an older version.
    #[serde(default)]
    pub reason: Option<CaptureReason>,
    /// The shape's 5-minute p50 when the capture was scheduled.
    #[serde(default)]
    pub p50_ms: Option<f64>,
}

/// Runs captures one at a time when there is no store.
pub async fn run_memory_captures(ctx: Arc<Ctx>, mut rx: mpsc::Receiver<CaptureJob>) {
    while let Some(job) = rx.recv().await {
        if let Err(e) = capture(&ctx, &job).await {
            tracing::warn!(fingerprint = %job.fingerprint, error = %e, "EXPLAIN capture failed");
        }
    }
}

/// Captures the plan for `job` and records it (store and memory); returns it.
pub(super) async fn capture(ctx: &Ctx, job: &CaptureJob) -> Result<Plan, String> {
    let config = ctx.config();
    let upstream = ctx.upstream();
    let settings = config.pool_settings(&upstream, &job.database);
    let limits = ExplainLimits {
        statement_timeout: config.explain_statement_timeout,
        lock_timeout: config.explain_lock_timeout,
    };
    let slow = &ctx.slow;
    let captured = ctx
        .capturer
        .capture(&upstream, &settings, &job.user, &job.input, &limits)
        .await;
    let plan = match captured {
        Ok(plan) => plan,
        Err(e) => {
            slow.counters.plan_failures.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    slow.counters.plans_captured.fetch_add(1, Ordering::Relaxed);
    let params = config.explain_store_params.then(|| job.input.params_json());
    let mut new = new_plan(job, &plan, params);
    if !config.explain_store_params {
        // The plan's Filter and Index Cond texts hold the client's literal and bound
        // values; they are private unless asked for (the plan hash ignores them anyway).
        crate::explain::redact_plan(&mut new.plan);
    }
    let previous = match ctx.store.usable() {
        Some(store) => store
            .insert_plan(&new)
            .await
            .map_err(|e| format!("storing the plan: {e}"))?,
        None => memory_change(ctx, &new),
    };
    if let Some(old) = &previous {
        slow.counters.plan_changes.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(database = %job.database, fingerprint = %job.fingerprint,
            old_hash = %old, new_hash = %plan.plan_hash, "plan changed");
    }
    tracing::info!(database = %job.database, fingerprint = %job.fingerprint,
        analyzed = plan.analyzed, plan_hash = %plan.plan_hash, reason = ?job.reason,
        downgraded = ?plan.downgrade_reason, "captured EXPLAIN plan");
    Ok(slow.recent.push_plan(|id| Plan {
        id,
        captured_at: std::time::SystemTime::now(),
        sidecar: ctx.sidecar_id.clone(),
        plan: new,
    }))
}

/// Without a store: compares with the latest plan kept in memory and records a change
/// there; returns the old hash when the plan changed.
fn memory_change(ctx: &Ctx, new: &NewPlan) -> Option<String> {
    let recent = &ctx.slow.recent;
    let (old_hash, old_p50_ms) = recent.latest(&new.database, &new.fingerprint)?;
    if old_hash == new.plan_hash {
        return None;
    }
    recent.push_change(|id| PlanChange {
        id,
        at: std::time::SystemTime::now(),
        database: new.database.clone(),
        fingerprint: new.fingerprint.clone(),
        old_hash: old_hash.clone(),
        new_hash: new.plan_hash.clone(),
        reason: new.reason.clone(),
        old_p50_ms,
        new_p50_ms: new.p50_ms,
    });
    Some(old_hash)
}

fn new_plan(job: &CaptureJob, plan: &CapturedPlan, params: Option<Value>) -> NewPlan {
    NewPlan {
        database: job.database.clone(),
        fingerprint: job.fingerprint.clone(),
        query: job.query.clone(),
        plan: plan.plan.clone(),
        plan_hash: plan.plan_hash.clone(),
        total_cost: plan.total_cost,
        actual_ms: plan.actual_ms,
        analyzed: plan.analyzed,
        params,
        reason: job.reason.map(|r| r.as_str().to_string()),
        fallback_reason: plan.downgrade_reason.clone(),
        p50_ms: job.p50_ms,
    }
}

/// Sends an alert to its webhook, if one is configured: as a durable job when the store
/// is usable, else posted from this process.
pub async fn deliver_webhook(ctx: &Arc<Ctx>, alert: Alert) {
    let Some(url) = ctx.config().alert_webhook_url.clone() else {
        return;
    };
    if let Some(store) = ctx.store.usable() {
        let body = webhook::body(&alert, &ctx.sidecar_id);
        // The URL is a credential: the job names no URL, and runs with the one
        // configured when it runs.
        let payload = json!({ "body": body });
        match bounded(store.enqueue("webhook", payload, None)).await {
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot queue the alert webhook; posting it now")
            }
        }
    }
    spawn_memory_delivery(ctx.clone(), url, alert);
}

fn spawn_memory_delivery(ctx: Arc<Ctx>, url: String, alert: Alert) {
    let background = ctx.background.clone();
    background.spawn(async move {
        let body = webhook::body(&alert, &ctx.sidecar_id);
        let sent = webhook::post_with_retries(&ctx.http, &url, &body, MEMORY_DELIVERY_ATTEMPTS);
        if let Err(e) = sent.await {
            ctx.slow
                .counters
                .webhook_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "alert webhook not delivered");
        }
    });
}

/// Queues a capture unless another sidecar captured this fingerprint within the interval.
pub async fn enqueue_capture(store: &Store, job: CaptureJob, interval: Duration) {
    match bounded(store.try_claim_explain(&job.database, &job.fingerprint, interval)).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the EXPLAIN capture");
            return;
        }
    }
    let payload = match serde_json::to_value(&job) {
        Ok(p) => p,
        Err(e) => return tracing::warn!(error = %e, "cannot encode the EXPLAIN job"),
    };
    if let Err(e) = bounded(store.enqueue("explain", payload, None)).await {
        tracing::warn!(error = %e, "cannot queue the EXPLAIN capture");
    }
}

/// Runs the store's jobs for this sidecar: captures, deliveries, flushes and retention.
pub struct Jobs(pub Arc<Ctx>);

impl store::runner::Handler for Jobs {
    async fn run(&self, store: &Store, kind: &str, payload: &Value) -> Result<(), String> {
        let ctx = &self.0;
        match kind {
            "explain" => {
                let job: CaptureJob = serde_json::from_value(payload.clone())
                    .map_err(|e| format!("bad payload: {e}"))?;
                capture(ctx, &job).await.map(drop)
            }
            "webhook" => {
                // Jobs queued before URLs left payloads may still name one.
                let configured = ctx.config().alert_webhook_url.clone();
                let url = (payload["url"].as_str().map(str::to_owned))
                    .or(configured)
                    .ok_or("no alert_webhook_url configured")?;
                webhook::post(&ctx.http, &url, &payload["body"]).await
            }
            "flush" => crate::stats::flush::write(store, payload).await,
            "retention" => store::runner::run_retention(store, ctx.config().retention_days).await,
            other => Err(format!("unknown job kind {other:?}")),
        }
    }

    /// Longer than the longest capture (two statements under
    /// `explain_statement_timeout`, plus waits).
    fn stale_after(&self) -> Duration {
        let capture = self.0.config().explain_statement_timeout * 2 + Duration::from_secs(60);
        capture.max(STALE_CLAIM)
    }

    fn finished(&self, kind: &str, ok: bool) {
        self.0.slow.counters.count_job(kind, ok);
    }
}
