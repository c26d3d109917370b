//! Cancel keys: each client gets its own BackendKeyData, and a CancelRequest carrying it
//! is forwarded to whichever server is running that client's query, with that server's key.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use rand::Rng;

use crate::pool::server::{send_cancel, CancelKey};

/// The server a client is currently using (set on checkout, cleared on release: two
/// atomic swaps per transaction, no lock).
type Slot = Arc<ArcSwapOption<CancelKey>>;

/// Every connected client's cancel key and current server.
#[derive(Default, Clone)]
pub struct CancelRegistry {
    clients: Arc<DashMap<(i32, i32), Slot>>,
}

/// A client's registration; removed from the registry on drop.
pub struct CancelHandle {
    pub pid: i32,
    pub secret: i32,
    slot: Slot,
    clients: Arc<DashMap<(i32, i32), Slot>>,
}

impl CancelRegistry {
    /// Registers a client. `pid` is the real server pid in session mode (so what a driver
    /// reports matches `pg_backend_pid()`); otherwise a random positive number is chosen.
    pub fn register(&self, pid: Option<i32>) -> CancelHandle {
        let mut rng = rand::thread_rng();
        loop {
            let pid = pid.unwrap_or_else(|| rng.gen_range(1..i32::MAX));
            let secret: i32 = rng.gen();
            let slot: Slot = Arc::default();
            if let dashmap::Entry::Vacant(entry) = self.clients.entry((pid, secret)) {
                entry.insert(slot.clone());
                return CancelHandle {
                    pid,
                    secret,
                    slot,
                    clients: self.clients.clone(),
                };
            }
        }
    }

    /// Forwards a cancel for the client owning `(pid, secret)`. A key that matches no
    /// client, or a client with no query running, is a no-op (as in PostgreSQL).
    pub async fn cancel(&self, pid: i32, secret: i32) {
        let target = self
            .clients
            .get(&(pid, secret))
            .and_then(|slot| slot.load_full());
        let Some(target) = target else {
            tracing::debug!(pid, "cancel request for an idle or unknown client ignored");
            return;
        };
        tracing::debug!(pid, server_pid = target.pid, "forwarding cancel request");
        if let Err(e) = send_cancel(&target.address, target.pid, target.secret).await {
            tracing::warn!(address = %target.address, error = %e, "could not forward cancel request");
        }
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl CancelHandle {
    /// Points the client's key at the server it now uses, or at none.
    pub fn set_target(&self, target: Option<Arc<CancelKey>>) {
        self.slot.store(target);
    }
}

impl Drop for CancelHandle {
    fn drop(&mut self) {
        self.clients.remove(&(self.pid, self.secret));
    }
}
