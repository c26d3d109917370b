//! The request loop of a logged-in client: borrow a server when a request is ready, give
//! it back when the transaction ends (transaction mode), and end cleanly on Terminate,
//! disconnect, errors or shutdown.

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use crate::tls::ClientStream;

use super::budget::Charge;
use super::clients::ClientHandle;
use super::error::checkout_error;
use super::login::{sync_server, Greeted};
use super::params::{is_transferable, quote_ident, ClientParams};
use super::prepared::Prepared;
use super::relay::{Event, PinReport, Relay, RelayError};
use super::track::{SlowHook, Tracker};
use super::{report, SessionError};
use crate::admin::PIN_REASONS;
use crate::app::Shared;
use crate::config::PoolMode;
use crate::pool::owners::StatementOwner;
use crate::pool::{Pool, PoolError, PooledServer, ServerError};

/// How long a client that left (Terminate, or EOF in COPY) may keep its server busy
/// with answers nobody reads; past it the server is cancelled and closed.
const DEPARTURE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Serve {
    shared: Arc<Shared>,
    relay: Relay,
    pool: Arc<Pool>,
    params: ClientParams,
    client: ClientHandle,
    peer: SocketAddr,
    /// Transaction mode with prepared statements: this client's statement names; when
    /// it leaves (drop), its statements are closed on each server at its next checkout.
    _owner: Option<StatementOwner>,
}

/// Every setting the session changed (SET, `set_config`), and the role (not listed in
/// pg_settings).
const SESSION_SETTINGS: &str = "SELECT name, setting FROM pg_catalog.pg_settings \
     WHERE source = 'session' UNION ALL SELECT 'role', pg_catalog.current_setting('role')";

/// Closes the least recently used renamed statements beyond `max` on an idle server. A
/// failure closes the server (its statements are no longer known).
async fn close_old_statements(server: &mut PooledServer, max: usize, limit: std::time::Duration) {
    let old = server.take_prepared_beyond(max.max(1));
    if old.is_empty() {
        return;
    }
    let sql: Vec<String> = (old.iter())
        .map(|name| format!("DEALLOCATE {}", quote_ident(name)))
        .collect();
    if let Err(e) = server.simple_query(&sql.join(";"), limit).await {
        tracing::info!(error = %e, "cannot close old prepared statements; closing the server");
        server.poisoned = true;
    }
}

/// Counts and logs, once per client, that it was pinned to its server.
fn pin_reporter(shared: &Arc<Shared>, pool: &crate::pool::PoolKey, peer: SocketAddr) -> PinReport {
    let shared = shared.clone();
    let pool = pool.to_string();
    Box::new(move |reason, sql| {
        let index = PIN_REASONS.iter().position(|r| *r == reason.as_str());
        if let Some(counter) = index.and_then(|i| shared.pinned_clients.get(i)) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        let statement: String = sql.chars().take(200).collect();
        tracing::info!(%peer, %pool, reason = reason.as_str(), %statement,
            "client pinned to its server for the rest of its session");
    })
}

impl Serve {
    pub fn new(
        shared: Arc<Shared>,
        stream: ClientStream,
        greeted: Greeted,
        peer: SocketAddr,
    ) -> Serve {
        let config = shared.config();
        let mut relay = Relay::new(stream, config.max_message_size);
        relay.release_when_idle = greeted.pool.mode() == PoolMode::Transaction;
        relay.watch_effects = relay.release_when_idle;
        let mut owner = None;
        if relay.release_when_idle && config.max_prepared_statements > 0 {
            let joined = StatementOwner::join(&greeted.pool);
            relay.prepared = Some(Prepared::new(joined.id));
            owner = Some(joined);
        }
        relay.on_pin = Some(pin_reporter(&shared, &greeted.pool.key, peer));
        relay.charge = Some(Charge::new(
            shared.buffer_budget.clone(),
            config.client_buffer_budget,
        ));
        if let Some(measure) = &shared.measure {
            let key = &greeted.pool.key;
            let app = greeted.params.get("application_name").unwrap_or("");
            let hook = SlowHook::new(shared.slow.clone(), &key.database, app);
            relay.tracker = Some(Tracker::new(
                measure.clone(),
                &key.database,
                &key.user,
                Some(hook),
            ));
        }
        if let Some(server) = greeted.server {
            relay.attach_server(server);
        }
        Serve {
            shared,
            relay,
            pool: greeted.pool,
            params: greeted.params,
            client: greeted.client,
            peer,
            _owner: owner,
        }
    }

    /// Serves requests until the client leaves, then returns its server and reports
    /// any failure to the client.
    pub async fn run(mut self) {
        let result = self.serve().await;
        let server_failed = matches!(
            result,
            Err(SessionError::Relay(
                RelayError::Server(_) | RelayError::ServerClosed
            ))
        );
        if server_failed {
            if let Some(server) = self.relay.server.as_mut() {
                server.poisoned = true;
            }
        }
        self.release();
        if server_failed && self.relay.server_fatal {
            // The server said why it is closing (57P01 at its shutdown, say): that
            // FATAL, already queued for the client, is the one the client hears.
            tracing::info!(peer = %self.peer, pool = %self.pool.key, "server closed the connection after a FATAL error; relaying it");
            let _ = self.relay.flush_client().await;
            super::close_client(&mut self.relay.client).await;
            return;
        }
        match result {
            Ok(()) => tracing::debug!(peer = %self.peer, "client disconnected"),
            Err(e) => {
                if !e.client_gone() {
                    let _ = self.relay.flush_client().await;
                }
                report(&mut self.relay.client, self.peer, e).await;
            }
        }
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        let mut watch = self.shared.watch_shutdown();
        // Armed when the client leaves with answers still owed: the wait is bounded.
        let mut departure: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            if self.relay.server.is_none() {
                self.relay.shrink();
            }
            let event = poll_fn(|cx| {
                // Draining waits for the client to be between transactions.
                if watch.poll_stop(cx, &self.shared, self.relay.at_rest()) {
                    return Poll::Ready(Err(SessionError::ShuttingDown));
                }
                let polled = self.relay.poll_event(cx).map_err(SessionError::from);
                if polled.is_pending() && self.relay.departing() {
                    let limit = departure
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(DEPARTURE_LIMIT)));
                    if limit.as_mut().poll(cx).is_ready() {
                        tracing::info!(peer = %self.peer, pool = %self.pool.key, "departed client's server did not finish in time; closing it");
                        return Poll::Ready(Ok(Event::ClientDone));
                    }
                }
                polled
            })
            .await?;
            match event {
                Event::NeedServer => self.attach().await?,
                Event::ServerIdle => {
                    self.read_back_settings().await;
                    self.release();
                }
                Event::ClientDone => return Ok(()),
            }
        }
    }

    /// Checks out a server for the waiting request; on failure the request gets the
    /// error and the client stays connected.
    async fn attach(&mut self) -> Result<(), SessionError> {
        // No shutdown check here: the wait is bounded by checkout_timeout.
        self.client.set_waiting();
        let mut server = match self.pool.checkout().await {
            Ok(server) => server,
            Err(e) => {
                tracing::info!(peer = %self.peer, pool = %self.pool.key, error = %e, "request failed: no server");
                self.relay.fail_waiting_requests(&checkout_error(&e));
                return Ok(());
            }
        };
        let limit = self.pool.params().connect_timeout;
        if let Err(e) = sync_server(&mut server, &mut self.params, limit).await {
            tracing::info!(peer = %self.peer, pool = %self.pool.key, error = %e, "could not apply client settings");
            let message = match &e {
                ServerError::Query { raw, .. } => raw.clone(),
                _ => checkout_error(&PoolError::Server(e)),
            };
            self.relay.fail_waiting_requests(&message);
            return Ok(());
        }
        close_old_statements(
            &mut server,
            self.shared.config().max_prepared_statements,
            limit,
        )
        .await;
        let departed = server.take_departed(&self.pool.owners);
        self.client.set_server(Some(server.cancel_key.clone()));
        self.relay.attach_server(server);
        self.relay.close_statements(&departed);
        Ok(())
    }

    /// After a transaction that may have changed session settings, reads them back from
    /// the server into the client's record, so they follow the client to its next
    /// server and never stay behind for another client. A failure closes the server.
    async fn read_back_settings(&mut self) {
        if !std::mem::take(&mut self.relay.settings_touched) {
            return;
        }
        let Some(server) = self.relay.server.as_mut() else {
            return;
        };
        let limit = self.pool.params().connect_timeout;
        match server.query_rows(SESSION_SETTINGS, limit).await {
            Ok(rows) => {
                let current: Vec<(String, String)> = (rows.into_iter())
                    .filter_map(|row| match row.as_slice() {
                        [Some(name), Some(value)] => Some((name.clone(), value.clone())),
                        _ => None,
                    })
                    .filter(|(name, value)| !(name == "role" && value == "none"))
                    .collect();
                self.params.adopt_session(server, &current);
            }
            Err(e) => {
                tracing::info!(peer = %self.peer, pool = %self.pool.key, error = %e, "cannot read back session settings; closing the server");
                server.poisoned = true;
            }
        }
    }

    /// Gives the server back (dropping the guard returns or cleans it), after carrying
    /// any settings the client changed over to its own record. A pinned client's server
    /// is reset before anyone else gets it.
    fn release(&mut self) {
        self.client.set_server(None);
        let Some(mut server) = self.relay.detach_server() else {
            return;
        };
        server.needs_reset |= self.relay.pinned.is_some();
        for (name, value) in self.relay.reported.drain(..) {
            server.note_parameter(&name, &value);
            if is_transferable(&name.to_ascii_lowercase()) {
                self.params.set(&name, &value);
            }
        }
    }
}
