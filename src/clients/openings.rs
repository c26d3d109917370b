//! Connections that have not logged in yet, counted apart from logged-in clients: they
//! have their own limit (`max_client_conn` again), and when it is reached the oldest of
//! them is shed. Sockets that never send a startup packet then cannot keep real clients
//! out; at worst they push each other out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio_util::sync::CancellationToken;

/// The connections still opening (TLS, startup packet, authentication).
#[derive(Default, Clone)]
pub struct Openings {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    next: AtomicU64,
    /// Oldest first. Bounded by the limit plus one (the newest sheds the oldest).
    queue: Mutex<VecDeque<(u64, CancellationToken)>>,
}

/// One connection's place among the openings; leaves it on drop.
pub struct OpeningPlace {
    id: u64,
    shed: CancellationToken,
    inner: Arc<Inner>,
}

impl Openings {
    /// Adds a connection; when more than `limit` are opening, the oldest is shed (its
    /// [`OpeningPlace::shed`] fires).
    pub fn enter(&self, limit: usize) -> OpeningPlace {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let shed = CancellationToken::new();
        let oldest = {
            let mut queue = self.inner.lock();
            queue.push_back((id, shed.clone()));
            (queue.len() > limit.max(1))
                .then(|| queue.pop_front())
                .flatten()
        };
        if let Some((_, token)) = oldest {
            token.cancel();
        }
        OpeningPlace {
            id,
            shed,
            inner: self.inner.clone(),
        }
    }

    /// Connections opening now.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, CancellationToken)>> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl OpeningPlace {
    /// Fires when newer connections pushed this one out.
    pub async fn shed(&self) {
        self.shed.cancelled().await
    }
}

impl Drop for OpeningPlace {
    fn drop(&mut self) {
        let mut queue = self.inner.lock();
        if let Some(at) = queue.iter().position(|(id, _)| *id == self.id) {
            queue.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_opening_is_shed_past_the_limit() {
        let openings = Openings::default();
        let first = openings.enter(2);
        let second = openings.enter(2);
        assert!(!first.shed.is_cancelled());
        let third = openings.enter(2);
        assert!(first.shed.is_cancelled(), "oldest shed");
        assert!(!second.shed.is_cancelled() && !third.shed.is_cancelled());
        assert_eq!(openings.len(), 2);
        drop(second);
        assert_eq!(openings.len(), 1);
        drop(first);
        assert_eq!(openings.len(), 1);
    }
}
