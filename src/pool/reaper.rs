//! Periodic pool maintenance: closes servers idle past `server_idle_timeout` or older than
//! `server_lifetime`, and keeps `min_pool_size` connections open.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{lock, Pool};

/// How often pools are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Sweeps every pool `pools()` yields until `stop` fires.
pub async fn run_reaper<F>(pools: F, stop: CancellationToken)
where
    F: Fn() -> Vec<Arc<Pool>>,
{
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for pool in pools() {
            pool.sweep();
            pool.top_up();
        }
    }
}

impl Pool {
    /// Closes idle servers that are too old or idle too long. Runs under the idle lock
    /// only for the in-memory filtering; closing is a non-blocking write.
    fn sweep(&self) {
        let params = self.params();
        let expired: Vec<_> = {
            let mut idle = lock(&self.idle);
            let (keep, expired) = std::mem::take(&mut *idle).into_iter().partition(|s| {
                s.last_used.elapsed() < params.idle_timeout && s.created.elapsed() < params.lifetime
            });
            *idle = keep;
            expired
        };
        for mut server in expired {
            tracing::debug!(pool = %self.key, pid = server.pid, "closing idle server past its idle timeout or lifetime");
            server.terminate();
        }
    }

    /// Opens connections in the background until `min_pool_size` are open.
    fn top_up(self: &Arc<Self>) {
        let params = self.params();
        let open = self.counters.open.load(Ordering::Relaxed);
        let missing = params.settings.min_size.saturating_sub(open);
        for _ in 0..missing {
            let Ok(permit) = self.semaphore.clone().try_acquire_owned() else {
                return;
            };
            let pool = self.clone();
            let params = params.clone();
            // Cancelled at shutdown: a connection opened then would only be closed.
            self.background.spawn(async move {
                match pool.open_server(&params).await {
                    Ok(server) => pool.push_idle(server),
                    Err(e) => {
                        tracing::debug!(pool = %pool.key, error = %e, "could not open a min_pool_size connection")
                    }
                }
                drop(permit);
            });
        }
    }
}
