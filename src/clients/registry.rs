//! Every logged-in client: who it is, what it is doing, and its cancel key. A
//! CancelRequest carrying a client's key is forwarded to whichever server is running that
//! client's query, with that server's key. The admin console lists clients from here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use dashmap::DashMap;
use rand::Rng;

use crate::pool::server::{send_cancel, CancelKey};
use crate::pool::{ClientCounts, PoolKey};

/// What a client is doing, as PgBouncer's `cl_active` / `cl_waiting` / idle count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Between transactions, holding no server.
    Idle = 0,
    /// Holding a server.
    Active = 1,
    /// Waiting for a server.
    Waiting = 2,
}

impl ClientState {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Idle => "idle",
            ClientState::Active => "active",
            ClientState::Waiting => "waiting",
        }
    }
}

/// Who a client is, fixed at login.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub database: String,
    pub user: String,
    pub application_name: String,
    pub peer: SocketAddr,
}

/// One client's registration.
#[derive(Debug)]
pub struct ClientEntry {
    pub pid: i32,
    pub secret: i32,
    pub identity: ClientIdentity,
    pub connected_at: SystemTime,
    /// The server it uses now, set twice per transaction. A plain mutex: uncontended it
    /// costs two atomics, where an `ArcSwap` store walks every thread's debt list.
    server: Mutex<Option<Arc<CancelKey>>>,
    state: AtomicU8,
}

impl ClientEntry {
    pub fn state(&self) -> ClientState {
        match self.state.load(Ordering::Relaxed) {
            1 => ClientState::Active,
            2 => ClientState::Waiting,
            _ => ClientState::Idle,
        }
    }

    /// The server pid the client uses now, if any.
    pub fn server_pid(&self) -> Option<i32> {
        self.current_server().map(|k| k.pid)
    }

    fn current_server(&self) -> Option<Arc<CancelKey>> {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

type Map = Arc<DashMap<(i32, i32), Arc<ClientEntry>>>;

#[derive(Default, Clone)]
pub struct ClientRegistry {
    clients: Map,
}

/// A client's registration; removed from the registry on drop.
pub struct ClientHandle {
    entry: Arc<ClientEntry>,
    clients: Map,
}

impl ClientRegistry {
    /// Registers a client. `pid` is the real server pid in session mode (so what a driver
    /// reports matches `pg_backend_pid()`); otherwise a random positive number is chosen.
    pub fn register(&self, pid: Option<i32>, identity: ClientIdentity) -> ClientHandle {
        let mut rng = rand::thread_rng();
        loop {
            let pid = pid.unwrap_or_else(|| rng.gen_range(1..i32::MAX));
            let secret: i32 = rng.gen();
            if let dashmap::Entry::Vacant(slot) = self.clients.entry((pid, secret)) {
                let entry = Arc::new(ClientEntry {
                    pid,
                    secret,
                    identity: identity.clone(),
                    connected_at: SystemTime::now(),
                    server: Mutex::new(None),
                    state: AtomicU8::new(ClientState::Idle as u8),
                });
                slot.insert(entry.clone());
                return ClientHandle {
                    entry,
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
            .and_then(|entry| entry.current_server());
        let Some(target) = target else {
            tracing::debug!(pid, "cancel request for an idle or unknown client ignored");
            return;
        };
        tracing::debug!(pid, server_pid = target.pid, "forwarding cancel request");
        if let Err(e) = send_cancel(&target.address, target.pid, target.secret).await {
            tracing::warn!(address = %target.address, error = %e, "could not forward cancel request");
        }
    }

    /// Every logged-in client.
    pub fn list(&self) -> Vec<Arc<ClientEntry>> {
        self.clients.iter().map(|e| e.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// Logged-in clients per (database, user) and state, counted in one pass: the
    /// client side of every pool's [`crate::pool::Status`].
    pub fn counts_by_pool(&self) -> HashMap<PoolKey, ClientCounts> {
        let mut counts: HashMap<PoolKey, ClientCounts> = HashMap::new();
        for entry in self.clients.iter() {
            let id = &entry.identity;
            let key = PoolKey {
                database: id.database.clone(),
                user: id.user.clone(),
            };
            let slot = counts.entry(key).or_default();
            match entry.state() {
                ClientState::Active => slot.active += 1,
                ClientState::Waiting => slot.waiting += 1,
                ClientState::Idle => slot.idle += 1,
            }
        }
        counts
    }

    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }
}

impl ClientHandle {
    pub fn pid(&self) -> i32 {
        self.entry.pid
    }

    pub fn secret(&self) -> i32 {
        self.entry.secret
    }

    /// Points the client's key at the server it now uses (active), or at none (idle).
    pub fn set_server(&self, server: Option<Arc<CancelKey>>) {
        let state = match server {
            Some(_) => ClientState::Active,
            None => ClientState::Idle,
        };
        *self
            .entry
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = server;
        self.entry.state.store(state as u8, Ordering::Relaxed);
    }

    /// The client waits for a server.
    pub fn set_waiting(&self) {
        self.entry
            .state
            .store(ClientState::Waiting as u8, Ordering::Relaxed);
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        self.clients.remove(&(self.entry.pid, self.entry.secret));
    }
}
