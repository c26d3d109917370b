//! Coalescing identical concurrent misses: the first miss of a key leads (goes to the
//! server), later ones follow and wait, bounded, for the leader's bytes. Keys are the
//! full cache keys, so a follower never receives another role's or setting's result.
//! A leader that finishes without a storable result (error, too big, a table moved)
//! releases its followers with nothing, and they go to the server themselves.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::Notify;

/// One miss in flight.
#[derive(Default)]
pub struct Flight {
    result: OnceLock<Option<Bytes>>,
    done: Notify,
}

impl Flight {
    /// Publishes the outcome (once) and wakes every follower.
    pub fn finish(&self, result: Option<Bytes>) {
        let _ = self.result.set(result);
        self.done.notify_waiters();
    }

    /// The leader's bytes, or `None` when it had none or `limit` passed first.
    pub async fn wait(&self, limit: Duration) -> Option<Bytes> {
        let notified = self.done.notified();
        tokio::pin!(notified);
        // Registered before the check: a finish in between still wakes us.
        notified.as_mut().enable();
        if let Some(result) = self.result.get() {
            return result.clone();
        }
        tokio::time::timeout(limit, notified).await.ok()?;
        self.result.get().cloned().flatten()
    }
}

/// The misses in flight, by key.
#[derive(Default)]
pub struct Flights {
    by_key: DashMap<Box<[u8]>, Arc<Flight>>,
}

/// The role a miss takes.
pub enum Role {
    Leader(Arc<Flight>),
    Follower(Arc<Flight>),
}

impl Flights {
    pub fn join(&self, key: &[u8]) -> Role {
        if let Some(flight) = self.by_key.get(key) {
            return Role::Follower(flight.clone());
        }
        match self.by_key.entry(Box::from(key)) {
            dashmap::Entry::Occupied(e) => Role::Follower(e.get().clone()),
            dashmap::Entry::Vacant(e) => Role::Leader(e.insert(Arc::default()).clone()),
        }
    }

    /// Ends the leader's flight: later misses of the key lead again.
    pub fn land(&self, key: &[u8], flight: &Arc<Flight>, result: Option<Bytes>) {
        self.by_key
            .remove_if(key, |_, current| Arc::ptr_eq(current, flight));
        flight.finish(result);
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_bytes() {
        let flights = Arc::new(Flights::default());
        let Role::Leader(leader) = flights.join(b"k") else {
            panic!("first is the leader")
        };
        let Role::Follower(f) = flights.join(b"k") else {
            panic!("second follows")
        };
        assert!(matches!(flights.join(b"other"), Role::Leader(_)));
        let waiting = tokio::spawn(async move { f.wait(Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        flights.land(b"k", &leader, Some(Bytes::from_static(b"rows")));
        assert_eq!(waiting.await.unwrap(), Some(Bytes::from_static(b"rows")));
        assert!(matches!(flights.join(b"k"), Role::Leader(_)));
    }

    #[tokio::test]
    async fn followers_wait_bounded_and_get_nothing_from_a_failed_leader() {
        let flights = Flights::default();
        let Role::Leader(leader) = flights.join(b"k") else {
            panic!()
        };
        let Role::Follower(f) = flights.join(b"k") else {
            panic!()
        };
        assert_eq!(f.wait(Duration::from_millis(20)).await, None);
        flights.land(b"k", &leader, None);
        assert_eq!(f.wait(Duration::from_secs(1)).await, None);
        assert!(flights.is_empty());
    }
}
