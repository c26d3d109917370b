//! Start-up of the slow-statement pipeline: the worker, the in-memory captures, and
//! the store (connected and migrated in the background by [`crate::store::Link`], so an
//! unreachable store never delays serving) with the jobs and schedules that use it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::jobs::{self, Jobs};
use super::{Ctx, SlowSample};
use crate::store;

/// Spawns the worker and, when `store` is on, connects the store. Every task runs on
/// `ctx.background`. The worker (and the captures it feeds) keep recording while
/// clients drain and end at the background's stop; the store's tasks end at `drain`.
pub fn start(ctx: &Arc<Ctx>, rx: mpsc::Receiver<SlowSample>, drain: CancellationToken) {
    let captures = super::worker::spawn_worker(ctx.clone(), rx);
    ctx.background
        .spawn(jobs::run_memory_captures(ctx.clone(), captures));
    let config = ctx.config();
    if !config.store {
        tracing::info!("store = false: slow events, alerts and plans are kept in memory only");
        return;
    }
    let url = config
        .store_url
        .clone()
        .unwrap_or_else(|| config.upstream.clone());
    let ctx = ctx.clone();
    let background = ctx.background.with_stop(drain.clone());
    background.clone().spawn_to_end(async move {
        let ready = |store: &store::Store| start_store_work(&ctx, &background, store);
        ctx.store.run(&url, &ctx.sidecar_id, &drain, ready).await;
    });
}

/// What runs once the store is ready: the job runner, the retention schedule and, with
/// statistics on, the statistics flush.
fn start_store_work(
    ctx: &Arc<Ctx>,
    background: &crate::background::Background,
    store: &store::Store,
) {
    let stop = background.stop().clone();
    let every = ctx.config().stats_flush_interval;
    let jobs = store::runner::run(store.clone(), Jobs(ctx.clone()), stop.clone());
    background.spawn_to_end(jobs);
    let retention = store::runner::schedule_retention(store.clone(), every, stop.clone());
    background.spawn_to_end(retention);
    if let Some(measure) = ctx.measure.clone() {
        let flush = crate::stats::flush::run(measure, store.clone(), every, stop);
        background.spawn_to_end(flush);
    }
}

/// This sidecar's name in the store: host, process and listening port.
pub fn sidecar_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}/{}/{port}", std::process::id())
}
