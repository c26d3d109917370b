//! Start-up of the slow-statement pipeline: the worker, and the store (connected and
//! migrated in the background, so an unreachable store never delays serving).

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::jobs;
use super::SlowSample;
use crate::app::Shared;

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
    tokio::spawn(super::health::run(shared.clone(), url, stop));
}

/// This sidecar's name in the store: host, process and listening port.
pub fn sidecar_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}/{}/{port}", std::process::id())
}
