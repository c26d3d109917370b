//! The store's connection over time: connecting (with backoff, for as long as it takes,
//! so a proxy started while the store is down connects when it comes up), migrating on
//! the first successful connection, then a health check that keeps
//! `pgsidecar_store_up` truthful. While the store is down, slow events and alerts wait
//! in the worker's bounded backlog and the lists are served from memory.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::app::Shared;
use crate::store::Store;

/// First wait after a failed connection; doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How often a connected store is checked, and how long a check may take.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECK_LIMIT: Duration = Duration::from_secs(5);
/// How long connecting and migrating may take per attempt.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(15);

/// Connects (retrying with backoff until `stop`), migrates, publishes the store, starts
/// its jobs, then checks its health until `stop`.
pub async fn run(shared: Arc<Shared>, url: String, stop: CancellationToken) {
    let Some(store) = connect_with_backoff(&shared, &url, &stop).await else {
        return;
    };
    if shared.store.set(store.clone()).is_err() {
        return;
    }
    shared.slow.store_up.store(true, Ordering::Release);
    tokio::spawn(super::jobs::run_jobs(
        shared.clone(),
        store.clone(),
        stop.clone(),
    ));
    tokio::spawn(super::flush::run_schedules(
        shared.clone(),
        store.clone(),
        stop.clone(),
    ));
    check_health(&shared, &store, &stop).await;
}

async fn connect_with_backoff(
    shared: &Shared,
    url: &str,
    stop: &CancellationToken,
) -> Option<Store> {
    let mut wait = BACKOFF_START;
    let mut attempts = 0u32;
    loop {
        let attempt = async {
            let store = Store::connect(url, &shared.sidecar_id).await?;
            let applied = store.migrate().await?;
            Ok::<_, crate::store::StoreError>((store, applied))
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(ATTEMPT_LIMIT, attempt) => outcome,
            _ = stop.cancelled() => return None,
        };
        let reason = match outcome {
            Ok(Ok((store, applied))) => {
                tracing::info!(applied = ?applied, attempts = attempts + 1, "store ready: schema pgsidecar");
                return Some(store);
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", ATTEMPT_LIMIT.as_secs()),
        };
        if attempts == 0 {
            tracing::warn!(%reason, "store unavailable: slow events and alerts are kept in memory and written once it is reachable (set store_url, or store = false to silence this)");
        } else {
            tracing::debug!(%reason, attempts, "store still unavailable");
        }
        attempts += 1;
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return None,
        }
        wait = (wait * 2).min(BACKOFF_MAX);
    }
}

/// Checks the store every [`CHECK_EVERY`] and records whether it answers; the pool
/// reconnects by itself, so a check that passes again means the store is back.
async fn check_health(shared: &Shared, store: &Store, stop: &CancellationToken) {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let up = matches!(
            tokio::time::timeout(CHECK_LIMIT, store.ping()).await,
            Ok(Ok(()))
        );
        let was = shared.slow.store_up.swap(up, Ordering::AcqRel);
        match (was, up) {
            (true, false) => tracing::warn!(
                "store unreachable: slow events and alerts are kept in memory until it is back"
            ),
            (false, true) => tracing::info!("store reachable again; writing what was kept"),
            _ => {}
        }
    }
}

/// The store, when it is connected and answered its last health check.
pub fn usable(shared: &Shared) -> Option<&Store> {
    let store = shared.store.get()?;
    shared
        .slow
        .store_up
        .load(Ordering::Acquire)
        .then_some(store)
}

/// Records that a store call failed: the store counts as down until a check passes.
pub fn note_failure(shared: &Shared) {
    if shared.slow.store_up.swap(false, Ordering::AcqRel) {
        tracing::warn!(
            "store call failed; keeping slow events and alerts in memory until it answers again"
        );
    }
}
