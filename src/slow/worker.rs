//! The slow-statement worker: turns samples into events, alerts and EXPLAIN captures,
//! off the client path. With a store, deliveries and captures become durable jobs
//! ([`super::jobs`]); without one they run here, in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alerts::{AlertGate, Verdict};
use super::capture::CaptureInput;
use super::jobs::{self, CaptureJob};
use super::{Level, Slow, SlowSample};
use crate::app::Shared;
use crate::stats::CommandKind;
use crate::store::{Alert, SlowEvent};

/// Captures waiting to run in memory-only mode; more are skipped (the next slow
/// execution after `explain_interval` tries again).
const CAPTURE_QUEUE: usize = 16;
/// Capture times kept before the expired ones are swept (O(n), so not per call).
const EXPLAINED_SWEEP_AT: usize = 10_000;
/// Slow events written to the store in one statement, at most every second.
const EVENT_BATCH: usize = 200;
/// Slow events (and, apart, alerts) kept for the store while it is down; past this the
/// oldest are dropped from the backlog (counted; they stay in the in-memory lists).
const BACKLOG: usize = 10_000;

struct Worker {
    shared: Arc<Shared>,
    slow: Arc<Slow>,
    gate: AlertGate,
    /// When a capture was last scheduled per (database, fingerprint).
    explained: HashMap<(String, u64), Instant>,
    /// Slow events and alerts not yet written to the store (bounded by [`BACKLOG`]).
    events: VecDeque<SlowEvent>,
    alerts: VecDeque<Alert>,
    captures: mpsc::Sender<CaptureJob>,
}

/// Starts the worker; it ends at shutdown. Returns the queue of captures to run in
/// memory (used while there is no store).
pub fn spawn_worker(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<SlowSample>,
    stop: CancellationToken,
) -> mpsc::Receiver<CaptureJob> {
    let config = shared.config();
    let (captures, capture_rx) = mpsc::channel(CAPTURE_QUEUE);
    let slow = shared.slow.clone();
    let mut worker = Worker {
        gate: AlertGate::new(config.alert_consecutive, config.alert_cooldown),
        shared,
        slow,
        explained: HashMap::new(),
        events: VecDeque::new(),
        alerts: VecDeque::new(),
        captures,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                sample = rx.recv() => match sample {
                    Some(sample) => worker.handle(sample).await,
                    None => break,
                },
                _ = tick.tick() => worker.flush_events().await,
                _ = stop.cancelled() => break,
            }
        }
        worker.flush_events().await;
    });
    capture_rx
}

impl Worker {
    async fn handle(&mut self, sample: SlowSample) {
        let config = self.shared.config();
        self.gate
            .configure(config.alert_consecutive, config.alert_cooldown);
        let key = sample.entry.key();
        let meta = sample.entry.meta();
        let fingerprint = format!("{:016x}", key.fingerprint);
        let duration_ms = sample.duration_us as f64 / 1000.0;
        let counter = match sample.level {
            Level::Warning => &self.slow.counters.warning,
            Level::Critical => &self.slow.counters.critical,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            database = %key.database, user = %key.user, %fingerprint, duration_ms,
            level = %sample.level, streak = sample.streak, query = %meta.normalized,
            "slow statement"
        );
        let event = SlowEvent {
            at: at_of(sample.at_ms),
            database: key.database.clone(),
            username: key.user.clone(),
            fingerprint: fingerprint.clone(),
            query: meta.normalized.clone(),
            duration_ms,
            level: sample.level,
            application_name: Some(sample.application_name.to_string()),
        };
        self.slow
            .recent
            .push_event(&self.shared.sidecar_id, event.clone());
        if config.store {
            keep(&mut self.events, event, &self.slow);
            self.report_backlog();
            if self.events.len() >= EVENT_BATCH {
                self.flush_events().await;
            }
        }
        self.alert(&sample, &fingerprint, duration_ms).await;
        if let Some(input) = sample.capture {
            self.schedule_capture(&sample.entry, fingerprint, input, &config)
                .await;
        }
    }

    async fn alert(&mut self, sample: &SlowSample, fingerprint: &str, duration_ms: f64) {
        let key = sample.entry.key();
        let now = Instant::now();
        match self
            .gate
            .judge(&key.database, key.fingerprint, sample.streak, now)
        {
            Verdict::Quiet => return,
            Verdict::Suppressed => {
                self.slow
                    .counters
                    .suppressed
                    .fetch_add(1, Ordering::Relaxed);
                return;
            }
            Verdict::Fire => {}
        }
        self.slow.counters.alerts.fetch_add(1, Ordering::Relaxed);
        let alert = Alert {
            at: at_of(sample.at_ms),
            database: key.database.clone(),
            username: key.user.clone(),
            fingerprint: fingerprint.to_string(),
            query: sample.entry.meta().normalized.clone(),
            level: sample.level,
            consecutive: sample.streak as i32,
            duration_ms,
        };
        self.slow
            .recent
            .push_alert(&self.shared.sidecar_id, alert.clone());
        tracing::error!(
            database = %alert.database, fingerprint = %alert.fingerprint,
            consecutive = alert.consecutive, duration_ms, query = %alert.query,
            "slow query alert"
        );
        if self.shared.config().store {
            keep(&mut self.alerts, alert.clone(), &self.slow);
            self.report_backlog();
            self.flush_events().await;
        }
        jobs::deliver_webhook(&self.shared, alert).await;
    }

    async fn schedule_capture(
        &mut self,
        entry: &crate::stats::QueryStats,
        fingerprint: String,
        input: CaptureInput,
        config: &crate::config::Config,
    ) {
        // Only SELECT, INSERT, UPDATE, DELETE (and MERGE) have plans: a COPY, DDL or other
        // utility statement fails under EXPLAIN with 42601, so its slow event is the
        // whole record and no job is queued.
        if entry.meta().command == CommandKind::Other {
            tracing::debug!(%fingerprint, "not explainable; no capture");
            return;
        }
        let key = entry.key();
        let now = Instant::now();
        let id = (key.database.clone(), key.fingerprint);
        if self
            .explained
            .get(&id)
            .is_some_and(|t| now.saturating_duration_since(*t) < config.explain_interval)
        {
            return;
        }
        if self.explained.len() >= EXPLAINED_SWEEP_AT {
            let interval = config.explain_interval;
            self.explained
                .retain(|_, t| now.saturating_duration_since(*t) < interval);
        }
        self.explained.insert(id, now);
        let job = CaptureJob {
            database: key.database.clone(),
            user: key.user.clone(),
            fingerprint,
            query: entry.meta().normalized.clone(),
            input,
        };
        match super::health::usable(&self.shared) {
            Some(store) => jobs::enqueue_capture(store, job, config.explain_interval).await,
            None => {
                if self.captures.try_send(job).is_err() {
                    tracing::debug!("EXPLAIN capture queue full; skipped");
                }
            }
        }
    }

    /// Writes the backlog to the store when it is usable; what fails stays for later
    /// and marks the store down until its health check passes.
    fn report_backlog(&self) {
        let backlog = (self.events.len() + self.alerts.len()) as u64;
        (self.slow.counters.store_backlog).store(backlog, Ordering::Relaxed);
    }

    async fn flush_events(&mut self) {
        self.report_backlog();
        if self.events.is_empty() && self.alerts.is_empty() {
            return;
        }
        let Some(store) = super::health::usable(&self.shared) else {
            return;
        };
        while let Some(alert) = self.alerts.front() {
            if let Err(e) = jobs::bounded(store.insert_alert(alert)).await {
                tracing::warn!(error = %e, kept = self.alerts.len(), "cannot store alerts; keeping them for later");
                self.report_backlog();
                return super::health::note_failure(&self.shared);
            }
            self.alerts.pop_front();
        }
        while !self.events.is_empty() {
            let n = self.events.len().min(EVENT_BATCH);
            let batch: Vec<SlowEvent> = self.events.range(..n).cloned().collect();
            if let Err(e) = jobs::bounded(store.insert_slow_events(&batch)).await {
                tracing::warn!(error = %e, kept = self.events.len(), "cannot store slow events; keeping them for later");
                self.report_backlog();
                return super::health::note_failure(&self.shared);
            }
            self.events.drain(..n);
        }
        self.report_backlog();
    }
}

/// Adds `item` to a store backlog, dropping (and counting) the oldest past [`BACKLOG`].
fn keep<T>(backlog: &mut VecDeque<T>, item: T, slow: &Slow) {
    if backlog.len() >= BACKLOG {
        backlog.pop_front();
        slow.counters.store_dropped.fetch_add(1, Ordering::Relaxed);
    }
    backlog.push_back(item);
}

fn at_of(unix_ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_millis(unix_ms.max(0) as u64)
}
