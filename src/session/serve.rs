//! The request loop of a logged-in client: borrow a server when a request is ready, give
//! it back when the transaction ends (transaction mode), and end cleanly on Terminate,
//! disconnect, errors or shutdown.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use crate::tls::ClientStream;

use super::clients::ClientHandle;
use super::error::checkout_error;
use super::login::{sync_server, Greeted};
use super::params::{is_transferable, ClientParams};
use super::relay::{Event, Relay, RelayError};
use super::track::{SlowHook, Tracker};
use super::{report, SessionError};
use crate::app::Shared;
use crate::config::PoolMode;
use crate::pool::{Pool, PoolError, ServerError};

pub struct Serve {
    shared: Arc<Shared>,
    relay: Relay,
    pool: Arc<Pool>,
    params: ClientParams,
    client: ClientHandle,
    peer: SocketAddr,
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
        loop {
            if self.relay.server.is_none() {
                self.relay.shrink();
            }
            let event = poll_fn(|cx| {
                // Draining waits for the client to be between transactions.
                if watch.poll_stop(cx, &self.shared, self.relay.at_rest()) {
                    return Poll::Ready(Err(SessionError::ShuttingDown));
                }
                self.relay.poll_event(cx).map_err(SessionError::from)
            })
            .await?;
            match event {
                Event::NeedServer => self.attach().await?,
                Event::ServerIdle => self.release(),
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
        self.client.set_server(Some(server.cancel_key.clone()));
        self.relay.attach_server(server);
        Ok(())
    }

    /// Gives the server back (dropping the guard returns or cleans it), after carrying
    /// any settings the client changed over to its own record.
    fn release(&mut self) {
        self.client.set_server(None);
        let Some(mut server) = self.relay.detach_server() else {
            return;
        };
        for (name, value) in self.relay.reported.drain(..) {
            server.note_parameter(&name, &value);
            if is_transferable(&name.to_ascii_lowercase()) {
                self.params.set(&name, &value);
            }
        }
    }
}
