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
use super::{unix_ms, webhook};
use crate::app::Shared;
use crate::explain::{CapturedPlan, ExplainLimits};
use crate::store::{self, Alert, NewPlan, Plan, Store};

/// Attempts for a webhook delivery without a store (the store's jobs retry by themselves).
const MEMORY_DELIVERY_ATTEMPTS: u32 = 3;
/// A job claimed longer ago than this by a sidecar that never finished it is retried.
const STALE_CLAIM: Duration = Duration::from_secs(300);
/// Jobs one claim takes.
const CLAIM_BATCH: u32 = 4;

/// One EXPLAIN to capture (also the payload of an `explain` job).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureJob {
    pub database: String,
    pub user: String,
    pub fingerprint: String,
    pub query: String,
    pub input: CaptureInput,
}

/// Runs captures one at a time when there is no store.
pub async fn run_memory_captures(shared: Arc<Shared>, mut rx: mpsc::Receiver<CaptureJob>) {
    while let Some(job) = rx.recv().await {
        if let Err(e) = capture(&shared, &job).await {
            tracing::warn!(fingerprint = %job.fingerprint, error = %e, "EXPLAIN capture failed");
        }
    }
}

/// Captures the plan for `job` and records it (store and memory).
async fn capture(shared: &Shared, job: &CaptureJob) -> Result<(), String> {
    let config = shared.config();
    let upstream = shared.upstream();
    let settings = config.pool_settings(&upstream, &job.database);
    let limits = ExplainLimits {
        statement_timeout: config.explain_statement_timeout,
        lock_timeout: config.explain_lock_timeout,
    };
    let slow = &shared.slow;
    let captured = shared
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
    let new = new_plan(job, &plan, params);
    let previous = match shared.store.get() {
        Some(store) => store
            .insert_plan(&new)
            .await
            .map_err(|e| format!("storing the plan: {e}"))?,
        None => {
            let previous = slow.recent.latest_hash(&job.database, &job.fingerprint);
            previous.filter(|h| *h != plan.plan_hash)
        }
    };
    if let Some(old) = &previous {
        slow.counters.plan_changes.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(database = %job.database, fingerprint = %job.fingerprint,
            old_hash = %old, new_hash = %plan.plan_hash, "plan changed");
    }
    tracing::info!(database = %job.database, fingerprint = %job.fingerprint,
        analyzed = plan.analyzed, plan_hash = %plan.plan_hash,
        downgraded = ?plan.downgrade_reason, "captured EXPLAIN plan");
    slow.recent.push_plan(|id| Plan {
        id,
        captured_at: std::time::SystemTime::now(),
        sidecar: shared.sidecar_id.clone(),
        plan: new,
    });
    Ok(())
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
    }
}

/// Sends an alert to its subscribers beyond the log: the store and the webhook.
pub async fn deliver_alert(shared: &Arc<Shared>, alert: Alert) {
    let url = shared.config().alert_webhook_url.clone();
    match shared.store.get() {
        Some(store) => {
            if let Err(e) = store.insert_alert(&alert).await {
                tracing::warn!(error = %e, "cannot store the alert");
            }
            if let Some(url) = url {
                let body = webhook::body(&alert, &shared.sidecar_id);
                let payload = json!({ "url": url, "body": body });
                if let Err(e) = store.enqueue("webhook", payload, None).await {
                    tracing::warn!(error = %e, "cannot queue the alert webhook; posting it now");
                    spawn_memory_delivery(shared.clone(), url, alert);
                }
            }
        }
        None => {
            if let Some(url) = url {
                spawn_memory_delivery(shared.clone(), url, alert);
            }
        }
    }
}

fn spawn_memory_delivery(shared: Arc<Shared>, url: String, alert: Alert) {
    tokio::spawn(async move {
        let body = webhook::body(&alert, &shared.sidecar_id);
        let sent = webhook::post_with_retries(&shared.http, &url, &body, MEMORY_DELIVERY_ATTEMPTS);
        if let Err(e) = sent.await {
            shared
                .slow
                .counters
                .webhook_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, "alert webhook not delivered");
        }
    });
}

/// Queues a capture unless another sidecar captured this fingerprint within the interval.
pub async fn enqueue_capture(store: &Store, job: CaptureJob, interval: Duration) {
    match store
        .try_claim_explain(&job.database, &job.fingerprint, interval)
        .await
    {
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
    if let Err(e) = store.enqueue("explain", payload, None).await {
        tracing::warn!(error = %e, "cannot queue the EXPLAIN capture");
    }
}

/// Claims and runs jobs until `stop`: captures, deliveries, flushes and retention.
pub async fn run_jobs(
    shared: Arc<Shared>,
    store: Store,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = store.requeue_stale(STALE_CLAIM).await {
            tracing::debug!(error = %e, "cannot requeue stale jobs");
        }
        let jobs = match store.claim(CLAIM_BATCH).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::debug!(error = %e, "cannot claim jobs");
                continue;
            }
        };
        for job in jobs {
            finish_job(&shared, &store, &job).await;
        }
    }
}

/// Runs a claimed job and records how it went. An EXPLAIN job's payload (the client's
/// parameter values) is cleared once the job will not run again.
async fn finish_job(shared: &Arc<Shared>, store: &Store, job: &store::Job) {
    let outcome = run_job(shared, store, &job.kind, &job.payload).await;
    let last_run = match outcome {
        Ok(()) => store.complete(job.id).await.map(|_| true),
        Err(e) => {
            tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %e, "job failed");
            let status = store.fail(job.id, &e).await;
            status.map(|s| s != Some(store::JobStatus::Pending))
        }
    };
    match last_run {
        Ok(true) if job.kind == "explain" => {
            if let Err(e) = store.clear_payload(job.id).await {
                tracing::warn!(job = job.id, error = %e, "cannot clear the job's parameter values");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(job = job.id, error = %e, "cannot record the job's outcome"),
    }
}

async fn run_job(
    shared: &Arc<Shared>,
    store: &Store,
    kind: &str,
    payload: &Value,
) -> Result<(), String> {
    match kind {
        "explain" => {
            let job: CaptureJob =
                serde_json::from_value(payload.clone()).map_err(|e| format!("bad payload: {e}"))?;
            capture(shared, &job).await
        }
        "webhook" => {
            let url = payload["url"].as_str().ok_or("payload without url")?;
            webhook::post(&shared.http, url, &payload["body"]).await
        }
        "flush" => {
            let rows: Vec<FlushRow> = serde_json::from_value(payload["rows"].clone())
                .map_err(|e| format!("bad payload: {e}"))?;
            let rows: Vec<store::Snapshot> = rows.into_iter().map(FlushRow::snapshot).collect();
            store
                .insert_snapshots(&rows)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
        "retention" => {
            let days = shared.config().retention_days;
            let report = store.retention(days).await.map_err(|e| e.to_string())?;
            tracing::info!(?report, "retention cleanup done");
            Ok(())
        }
        other => Err(format!("unknown job kind {other:?}")),
    }
}

/// Every `stats_flush_interval` (a minute), the last minute's statistics of every active
/// entry become a `flush` job (one batch, never per query); once a day (the first sidecar
/// of the fleet to queue the day's key) a `retention` job.
pub async fn run_schedules(
    shared: Arc<Shared>,
    store: Store,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(shared.config().stats_flush_interval);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Some(rows) = minute_rows(&shared) {
            if let Err(e) = store.enqueue("flush", json!({ "rows": rows }), None).await {
                tracing::warn!(error = %e, "cannot queue the statistics flush");
            }
        }
        let day = store::rfc3339_ms(std::time::SystemTime::now());
        let key = format!("retention:{}", &day[..10]);
        if let Err(e) = store.enqueue("retention", json!({}), Some(&key)).await {
            tracing::debug!(error = %e, "cannot queue the retention job");
        }
    }
}

/// One entry's last minute, as carried in a `flush` job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FlushRow {
    at_ms: i64,
    database: String,
    username: String,
    fingerprint: String,
    query: String,
    command: String,
    calls: i64,
    errors: i64,
    rows: i64,
    total_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl FlushRow {
    fn snapshot(self) -> store::Snapshot {
        store::Snapshot {
            at: std::time::UNIX_EPOCH + Duration::from_millis(self.at_ms.max(0) as u64),
            database: self.database,
            username: self.username,
            fingerprint: self.fingerprint,
            query: self.query,
            command: self.command,
            calls: self.calls,
            errors: self.errors,
            rows: self.rows,
            total_ms: self.total_ms,
            p50_ms: self.p50_ms,
            p95_ms: self.p95_ms,
            p99_ms: self.p99_ms,
            max_ms: self.max_ms,
        }
    }
}

/// The 1-minute window of each entry that ran in it.
fn minute_rows(shared: &Shared) -> Option<Vec<FlushRow>> {
    let measure = shared.measure.as_ref()?;
    let now = measure.epoch.elapsed().as_secs();
    let at_ms = unix_ms() / 60_000 * 60_000;
    let ms = |us: u64| us as f64 / 1000.0;
    let rows: Vec<FlushRow> = measure
        .registry
        .snapshot(crate::stats::Window::Min1, now)
        .into_iter()
        .filter(|s| s.calls > 0)
        .map(|s| FlushRow {
            at_ms,
            database: s.key.database.clone(),
            username: s.key.user.clone(),
            fingerprint: format!("{:016x}", s.key.fingerprint),
            query: s.meta.normalized.clone(),
            command: s.meta.command_label.clone(),
            calls: s.calls as i64,
            errors: s.errors as i64,
            rows: s.rows as i64,
            total_ms: ms(s.total_us),
            p50_ms: ms(s.p50_us),
            p95_ms: ms(s.p95_us),
            p99_ms: ms(s.p99_us),
            max_ms: ms(s.max_us),
        })
        .collect();
    (!rows.is_empty()).then_some(rows)
}
