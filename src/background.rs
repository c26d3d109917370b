//! Background work outside any client's request: every task is spawned on the app's
//! worker `TaskTracker` (so shutdown waits for it) and ends when its stop token fires
//! (so that wait is short and deliberate).

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where background tasks run and what ends them. Cloned into every owner of such tasks.
#[derive(Clone, Default)]
pub struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    pub fn new(tracker: TaskTracker, stop: CancellationToken) -> Background {
        Background { tracker, stop }
    }

    /// Runs `work` on the tracker; it is dropped (cancelled) when the stop token fires.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = work => {}
                () = stop.cancelled() => {}
            }
        });
    }

    /// Runs `work` on the tracker to its end: for tasks that watch the token themselves
    /// and finish their own cleanup (a last flush) when it fires.
    pub fn spawn_to_end(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.tracker.spawn(work);
    }

    /// The token that ends these tasks.
    pub fn stop(&self) -> &CancellationToken {
        &self.stop
    }

    /// The same tracker with another stop token (a subsystem that ends earlier or later).
    pub fn with_stop(&self, stop: CancellationToken) -> Background {
        Background {
            tracker: self.tracker.clone(),
            stop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stopped_task_is_cancelled_and_the_tracker_sees_it_end() {
        let tracker = TaskTracker::new();
        let background = Background::new(tracker.clone(), CancellationToken::new());
        background.spawn(std::future::pending());
        tracker.close();
        assert_eq!(tracker.len(), 1);
        background.stop().cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), tracker.wait())
            .await
            .expect("the task ends when its token fires");
    }

    #[tokio::test]
    async fn spawn_to_end_lets_the_task_finish_its_cleanup() {
        let tracker = TaskTracker::new();
        let background = Background::new(tracker.clone(), CancellationToken::new());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let stop = background.stop().clone();
        background.spawn_to_end(async move {
            stop.cancelled().await;
            let _ = tx.send("flushed");
        });
        background.stop().cancel();
        tracker.close();
        tracker.wait().await;
        assert_eq!(rx.await.unwrap(), "flushed");
    }
}
