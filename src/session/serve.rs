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
use super::error::checkout_error;
use super::login::{sync_server, Greeted};
use super::params::{quote_ident, quote_literal};
use super::pipeline::{PinReport, Pooling};
use super::relay::{Event, Record, Relay, RelayError, Setup};
use super::track::{SlowHook, Tracker};
use super::{report, SessionError};
use crate::app::Shared;
use crate::config::PoolMode;
use crate::pool::owners::StatementOwner;
use crate::pool::{Pool, PoolError, PooledServer, ServerError};
use crate::query::{PinReason, PIN_REASONS};

/// How long a client that left (Terminate, or EOF in COPY) may keep its server busy
/// with answers nobody reads; past it the server is cancelled and closed.
const DEPARTURE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Serve {
    shared: Arc<Shared>,
    relay: Relay,
    pool: Arc<Pool>,
    peer: SocketAddr,
    /// Transaction mode with prepared statements: this client's statement names; when
    /// it leaves (drop), its statements are closed on each server at its next checkout.
    _owner: Option<StatementOwner>,
}

/// Every setting the session changed (SET, `set_config`), and the role (not listed in
/// pg_settings), as `('setting', name, value)` rows.
const SESSION_SETTINGS: &str = "SELECT 'setting', name, setting FROM pg_catalog.pg_settings \
     WHERE source = 'session' UNION ALL SELECT 'setting', 'role', pg_catalog.current_setting('role')";

/// After an opaque transaction, the session state that cannot move to another server, as
/// `('pin', reason, NULL)` rows, in the order of preference for the reported reason.
const SESSION_PINS: &str = "\
 UNION ALL SELECT 'pin', 'temp_table', NULL WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class \
  WHERE relnamespace = pg_catalog.pg_my_temp_schema()) \
 UNION ALL SELECT 'pin', 'advisory_lock', NULL WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_locks \
  WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid()) \
 UNION ALL SELECT 'pin', 'listen', NULL WHERE EXISTS (SELECT pg_catalog.pg_listening_channels()) \
 UNION ALL SELECT 'pin', 'cursor_with_hold', NULL WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_cursors \
  WHERE is_holdable) \
 UNION ALL SELECT 'pin', 'sql_prepare', NULL WHERE EXISTS (SELECT 1 \
  FROM pg_catalog.pg_prepared_statements WHERE from_sql)";

/// The one round trip after a transaction that may have changed session state: its
/// settings, and after an opaque one also what would pin it and which of the `unknown`
/// called names are built-ins only (`('builtin', name, NULL)` rows).
fn session_check_sql(opacity: &crate::query::Opacity) -> String {
    if !opacity.any() {
        return SESSION_SETTINGS.to_owned();
    }
    let mut sql = format!("{SESSION_SETTINGS}{SESSION_PINS}");
    if !opacity.unknown.is_empty() {
        let names: Vec<String> = opacity.unknown.iter().map(|n| quote_literal(n)).collect();
        let names = names.join(", ");
        sql.push_str(&format!(
            " UNION ALL SELECT 'builtin', n, NULL FROM unnest(ARRAY[{names}]::text[]) n \
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.proname = n \
             AND p.pronamespace <> 'pg_catalog'::regnamespace) \
             UNION ALL SELECT 'body', p.proname::text, \
             CASE WHEN l.lanname IN ('sql', 'plpgsql') AND p.prokind = 'f' THEN p.prosrc END \
             FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
             WHERE p.proname = ANY(ARRAY[{names}]::text[]) \
             AND p.pronamespace <> 'pg_catalog'::regnamespace"
        ));
    }
    sql
}

/// What the check found besides settings.
fn pin_reason(name: &str) -> Option<PinReason> {
    Some(match name {
        "temp_table" => PinReason::TempTable,
        "advisory_lock" => PinReason::AdvisoryLock,
        "listen" => PinReason::Listen,
        "cursor_with_hold" => PinReason::CursorWithHold,
        "sql_prepare" => PinReason::SqlPrepare,
        _ => return None,
    })
}

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
        // Normalized: the client's literal values never reach the log.
        let normalized = crate::query::redact_literals(sql);
        let statement: String = normalized.chars().take(200).collect();
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
        let pool = greeted.pool;
        let transaction = pool.mode() == PoolMode::Transaction;
        let owner = (transaction && config.max_prepared_statements > 0)
            .then(|| StatementOwner::join(&pool));
        let key = &pool.key;
        let tracker = shared.measure.as_ref().map(|measure| {
            let app = greeted.params.get("application_name").unwrap_or("");
            let hook = SlowHook::new(shared.slow.clone(), &key.database, app);
            let mut tracker = Tracker::new(measure.clone(), &key.database, &key.user, Some(hook));
            tracker.advisor = shared.advisor.as_ref().map(|a| a.observer(&key.database));
            tracker
        });
        let settings: Vec<(&str, &str)> = greeted.params.iter().collect();
        let cache = crate::cache::session::SessionCache::new(
            &shared.cache,
            &key.database,
            &key.user,
            &settings,
        );
        let setup = Setup {
            max_message_size: config.max_message_size,
            pooling: match transaction {
                true => Pooling::Transaction,
                false => Pooling::Session,
            },
            known: transaction.then(|| pool.functions.clone()),
            rename_for: owner.as_ref().map(|o| o.id),
            analyzer: shared.analyzer.clone(),
            tracker,
            on_pin: Some(pin_reporter(&shared, key, peer)),
            charge: Some(Charge::new(
                shared.buffer_budget.clone(),
                config.client_buffer_budget,
            )),
            record: Record {
                handle: Some(greeted.client),
                params: greeted.params,
            },
            server: greeted.server,
            cache,
        };
        Serve {
            relay: Relay::new(stream, setup),
            shared,
            pool,
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
            if let Some(server) = self.relay.wire.server() {
                server.poisoned = true;
            }
        }
        self.relay.release_server();
        if server_failed && self.relay.pipe.server_fatal {
            // The server said why it is closing (57P01 at its shutdown, say): that
            // FATAL, already queued for the client, is the one the client hears.
            tracing::info!(peer = %self.peer, pool = %self.pool.key, "server closed the connection after a FATAL error; relaying it");
            let _ = self.relay.flush_client().await;
            super::close_client(&mut self.relay.wire.client).await;
            return;
        }
        match result {
            Ok(()) => tracing::debug!(peer = %self.peer, "client disconnected"),
            Err(e) => {
                if !e.client_gone() {
                    let _ = self.relay.flush_client().await;
                }
                report(&mut self.relay.wire.client, self.peer, e).await;
            }
        }
    }

    async fn serve(&mut self) -> Result<(), SessionError> {
        let mut watch = self.shared.watch_shutdown();
        // Armed when the client leaves with answers still owed: the wait is bounded.
        let mut departure: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            if !self.relay.wire.has_server() {
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
                    if !self.check_session().await {
                        self.relay.release_server();
                    }
                }
                Event::ClientDone => return Ok(()),
            }
        }
    }

    /// Checks out a server for the waiting request; on failure the request gets the
    /// error and the client stays connected.
    async fn attach(&mut self) -> Result<(), SessionError> {
        // No shutdown check here: the wait is bounded by checkout_timeout.
        if let Some(handle) = &self.relay.record.handle {
            handle.set_waiting();
        }
        let mut server = match self.pool.checkout().await {
            Ok(server) => server,
            Err(e) => {
                tracing::info!(peer = %self.peer, pool = %self.pool.key, error = %e, "request failed: no server");
                self.relay.fail_waiting_requests(&checkout_error(&e));
                return Ok(());
            }
        };
        let limit = self.pool.params().connect_timeout;
        if let Err(e) = sync_server(&mut server, &mut self.relay.record.params, limit).await {
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
        if let Some(handle) = &self.relay.record.handle {
            handle.set_server(Some(server.cancel_key.clone()));
        }
        self.relay.attach_server(server);
        self.relay.close_statements(&departed);
        Ok(())
    }

    /// After a transaction that may have changed session state (a settings change, or an
    /// opaque statement: DO, CALL, EXECUTE, a function that is not built in), checks the
    /// server in one round trip: the settings are carried over to the client's record
    /// (so they follow it and never stay behind for another client), and state that
    /// cannot move pins the client to this server. True when the client was pinned (the
    /// server stays). A failure closes the server.
    async fn check_session(&mut self) -> bool {
        let unchecked = std::mem::take(&mut self.relay.pipe.unchecked);
        let opacity = unchecked.opacity;
        if !unchecked.settings && !opacity.any() {
            return false;
        }
        let Some(server) = self.relay.wire.server() else {
            return false;
        };
        let limit = self.pool.params().connect_timeout;
        let rows = match server.query_rows(&session_check_sql(&opacity), limit).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::info!(peer = %self.peer, pool = %self.pool.key, error = %e, "cannot check session state; closing the server");
                server.poisoned = true;
                return false;
            }
        };
        let (mut current, mut pin) = (Vec::new(), None);
        let known = &self.pool.functions;
        let (mut builtin, mut bodies) = (Vec::new(), Vec::new());
        for row in rows {
            match row.as_slice() {
                [Some(kind), Some(name), Some(value)]
                    if kind == "setting" && !(name == "role" && value == "none") =>
                {
                    current.push((name.clone(), value.clone()));
                }
                [Some(kind), Some(name), _] if kind == "pin" => {
                    pin = pin.or(pin_reason(name));
                }
                [Some(kind), Some(name), _] if kind == "builtin" => builtin.push(name.clone()),
                [Some(kind), Some(name), body] if kind == "body" => {
                    bodies.push((name.clone(), body.clone()));
                }
                _ => {}
            }
        }
        for name in &opacity.unknown {
            // Quiet: built-ins only, or every function of the name has a SQL or
            // PL/pgSQL body that touches no session state (checked again after a while).
            let mut overloads = bodies.iter().filter(|(n, _)| n == name).peekable();
            let quiet = builtin.contains(name)
                || (overloads.peek().is_some()
                    && overloads.all(|(_, body)| {
                        body.as_deref()
                            .is_some_and(|b| crate::query::quiet_body(b, known))
                    }));
            known.learn(name, quiet);
        }
        self.relay.record.params.adopt_session(server, &current);
        match pin {
            Some(reason) => {
                let what = "a function, procedure or DO block left session state";
                self.relay.pin(reason, what);
                true
            }
            None => false,
        }
    }
}
