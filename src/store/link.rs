//! The store's lifecycle: connecting (with backoff, for as long as it takes, so a proxy
//! started while the store is down connects when it comes up), migrating on the first
//! successful connection, then a health check that keeps [`Link::is_up`] (and so
//! `pgsidecar_store_up`) truthful. Callers ask [`Link::usable`] before each use and
//! report failures with [`Link::note_failure`]; while the store is down they keep
//! their writes in memory.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Store, StoreError};

/// First wait after a failed connection; doubles up to [`BACKOFF_MAX`].
const BACKOFF_START: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// How often a connected store is checked, and how long a check may take.
const CHECK_EVERY: Duration = Duration::from_secs(2);
const CHECK_LIMIT: Duration = Duration::from_secs(5);
/// How long connecting and migrating may take per attempt.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(15);

/// The store once connected and migrated (never, when off or unreachable), and whether
/// it answered its last health check.
#[derive(Default)]
pub struct Link {
    store: OnceLock<Store>,
    up: AtomicBool,
}

impl Link {
    /// The store, when it is connected and answered its last health check.
    pub fn usable(&self) -> Option<&Store> {
        let store = self.store.get()?;
        self.up.load(Ordering::Acquire).then_some(store)
    }

    /// The store once connected, whatever its health.
    pub fn get(&self) -> Option<&Store> {
        self.store.get()
    }

    /// Connected, migrated and answering.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records that a store call failed: the store counts as down until a check passes.
    pub fn note_failure(&self) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(
                "store call failed; keeping slow events and alerts in memory until it answers again"
            );
        }
    }

    /// Records a health check; logs the changes.
    fn note_check(&self, up: bool) {
        match (self.up.swap(up, Ordering::AcqRel), up) {
            (true, false) => tracing::warn!(
                "store unreachable: slow events and alerts are kept in memory until it is back"
            ),
            (false, true) => tracing::info!("store reachable again; writing what was kept"),
            _ => {}
        }
    }

    /// Connects (retrying with backoff until `stop`), migrates, publishes the store,
    /// hands it to `ready` (which starts what uses it), then checks its health until
    /// `stop`.
    pub async fn run(
        &self,
        url: &str,
        sidecar_id: &str,
        stop: &CancellationToken,
        ready: impl FnOnce(&Store),
    ) {
        let Some(store) = connect_with_backoff(url, sidecar_id, stop).await else {
            return;
        };
        if self.store.set(store.clone()).is_err() {
            return;
        }
        self.up.store(true, Ordering::Release);
        ready(&store);
        self.check_health(&store, stop).await;
    }

    /// Checks the store every [`CHECK_EVERY`]; the pool reconnects by itself, so a
    /// check that passes again means the store is back.
    async fn check_health(&self, store: &Store, stop: &CancellationToken) {
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
            self.note_check(up);
        }
    }
}

async fn connect_with_backoff(
    url: &str,
    sidecar_id: &str,
    stop: &CancellationToken,
) -> Option<Store> {
    let mut wait = BACKOFF_START;
    let mut attempts = 0u32;
    loop {
        let attempt = async {
            let store = Store::connect(url, sidecar_id).await?;
            let applied = store.migrate().await?;
            Ok::<_, StoreError>((store, applied))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_without_a_store_is_never_usable() {
        let link = Link::default();
        assert!(link.usable().is_none() && !link.is_up());
        link.note_check(true);
        assert!(link.usable().is_none(), "up, but nothing connected");
    }

    #[tokio::test]
    async fn an_unreachable_store_gives_up_when_stopped() {
        let link = Link::default();
        let stop = CancellationToken::new();
        stop.cancel();
        let mut ready = false;
        link.run("postgres://nobody@127.0.0.1:1/none", "t", &stop, |_| {
            ready = true
        })
        .await;
        assert!(!ready && link.get().is_none());
    }
}
