//! The checked-out server: returns itself to its pool on drop, after whatever cleanup it
//! needs (rollback, session reset, or closing), so no client ever inherits another's state.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::server::send_cancel;
use super::{Pool, ServerConn};
use crate::config::PoolMode;

/// How long cleanup (ROLLBACK or the reset query) may take before the server is closed.
const CLEANUP_LIMIT: Duration = Duration::from_secs(5);

/// A server on loan from a pool. Dropping it gives the server back.
pub struct PooledServer {
    server: Option<Box<ServerConn>>,
    permit: Option<OwnedSemaphorePermit>,
    pool: Arc<Pool>,
    /// How long the checkout waited for a permit (the pool's wait histogram's sample).
    waited: std::time::Duration,
}

impl PooledServer {
    pub(super) fn new(
        server: Box<ServerConn>,
        permit: OwnedSemaphorePermit,
        pool: Arc<Pool>,
        waited: std::time::Duration,
    ) -> Self {
        PooledServer {
            server: Some(server),
            permit: Some(permit),
            pool,
            waited,
        }
    }

    /// How long the checkout waited for the pool (zero when a server was free).
    pub fn waited(&self) -> std::time::Duration {
        self.waited
    }

    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }
}

impl Deref for PooledServer {
    type Target = ServerConn;
    fn deref(&self) -> &ServerConn {
        // Invariant: `server` is only taken in `drop`.
        self.server.as_ref().expect("server present until drop")
    }
}

impl DerefMut for PooledServer {
    fn deref_mut(&mut self) -> &mut ServerConn {
        self.server.as_mut().expect("server present until drop")
    }
}

impl Drop for PooledServer {
    fn drop(&mut self) {
        let (Some(server), Some(permit)) = (self.server.take(), self.permit.take()) else {
            return;
        };
        let session_mode = self.pool.mode() == PoolMode::Session;
        if server.is_clean() && !session_mode && !server.needs_reset {
            self.pool.push_idle(server);
            return;
        }
        // Cleanup needs I/O; the permit travels with it so the pool never counts the
        // server as free before it is.
        let pool = self.pool.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Some(server) = clean(server, &pool, session_mode).await {
                        pool.push_idle(server);
                    }
                    drop(permit);
                });
            }
            Err(_) => drop((server, permit)),
        }
    }
}

/// Brings a server back to a reusable state, or closes it. Returns it when reusable.
async fn clean(
    mut server: Box<ServerConn>,
    pool: &Pool,
    session_mode: bool,
) -> Option<Box<ServerConn>> {
    if server.poisoned || server.pending > 0 {
        if server.pending > 0 {
            // The client left while a query ran: stop the query, then drop the connection
            // (its protocol position is unknown).
            let _ = send_cancel(&server.address, server.pid, server.secret).await;
        }
        tracing::debug!(pool = %pool.key, pid = server.pid, "closing server left mid-request");
        server.terminate();
        return None;
    }
    if server.tx_status != b'I' {
        let rolled_back = server.simple_query("ROLLBACK", CLEANUP_LIMIT).await.is_ok();
        if !rolled_back || server.tx_status != b'I' {
            tracing::info!(pool = %pool.key, pid = server.pid, "rollback of abandoned transaction failed; closing server");
            server.terminate();
            return None;
        }
        tracing::debug!(pool = %pool.key, pid = server.pid, "rolled back a transaction its client abandoned");
    }
    if session_mode || server.needs_reset {
        let mut reset = pool.params().reset_query.clone();
        if reset.is_empty() && server.needs_reset {
            reset = "DISCARD ALL".into();
        }
        server.needs_reset = false;
        if !reset.is_empty() {
            if let Err(e) = server.simple_query(&reset, CLEANUP_LIMIT).await {
                tracing::info!(pool = %pool.key, error = %e, "server_reset_query failed; closing server");
                server.terminate();
                return None;
            }
        }
        server.applied.clear();
        server.forget_all_prepared();
        server.verified_for = None;
    }
    Some(server)
}
