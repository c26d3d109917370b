//! Start-up of the slow-statement pipeline: the worker, and the store (connected and
//! migrated in the background, so an unreachable store never delays serving).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::jobs;
use super::SlowSample;
use crate::app::Shared;
use crate::store::Store;

/// How long connecting to and migrating the store may take before memory-only mode.
const STORE_START: Duration = Duration::from_secs(15);

/// Spawns the worker and, when `store` is on, connects the store. The tasks end at
/// shutdown; they are not waited for (nothing a client waits on is left in them).
pub fn start(shared: &Arc<Shared>, rx: mpsc::Receiver<SlowSample>, _tracker: &TaskTracker) {
    let stop = shared.shutdown.clone();
    // The worker keeps recording while clients drain; it stops when they are closed.
    let captures = super::worker::spawn_worker(shared.clone(), rx, shared.force_close.clone());
    tokio::spawn(jobs::run_memory_captures(shared.clone(), captures));
    let config = shared.config();
    if !config.store {
        tracing::info!("store = false: slow events, alerts and plans are kept in memory only");
        return;
    }
    let url = config
        .store_url
        .clone()
        .unwrap_or_else(|| config.upstream.clone());
    let shared = shared.clone();
    tokio::spawn(async move {
        let connect = async {
            let store = Store::connect(&url, &shared.sidecar_id).await?;
            let applied = store.migrate().await?;
            Ok::<_, crate::store::StoreError>((store, applied))
        };
        let (store, applied) = match tokio::time::timeout(STORE_START, connect).await {
            Ok(Ok(ready)) => ready,
            Ok(Err(e)) => return memory_only(&e.to_string()),
            Err(_) => return memory_only(&format!("no answer within {} s", STORE_START.as_secs())),
        };
        tracing::info!(applied = ?applied, "store ready: schema pgsidecar");
        if shared.store.set(store.clone()).is_err() {
            return;
        }
        tokio::spawn(jobs::run_jobs(shared.clone(), store.clone(), stop.clone()));
        tokio::spawn(super::flush::run_schedules(shared, store, stop));
    });
}

fn memory_only(reason: &str) {
    tracing::warn!(
        reason,
        "store unavailable: slow events, alerts and plans are kept in memory only (set store_url, or store = false to silence this)"
    );
}

/// This sidecar's name in the store: host, process and listening port.
pub fn sidecar_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}/{}/{port}", std::process::id())
}
