//! One client's life: the opening packets (SSL, cancel, startup), login, then the request
//! loop that borrows a server per transaction (or per session) and relays bytes.
//!
//! Layout: `login` authenticates and greets; `serve` runs requests; `relay` pumps bytes;
//! `params` carries the client's settings from server to server; `cancel` routes
//! CancelRequests; `error` maps failures to what the client is told.

mod buffers;
mod clients;
mod error;
mod login;
mod params;
mod relay;
mod serve;
mod track;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

pub use clients::{ClientEntry, ClientIdentity, ClientRegistry, ClientState};
pub use error::SessionError;
pub use params::ClientParams;
pub use track::Measure;

use crate::app::Shared;
use crate::protocol::startup::{read_packet, StartupMessage, StartupPacket, StartupReadError};

/// Serves one client connection to its end. Never panics on client input; every failure
/// is logged and, where the client can still hear it, reported with an ErrorResponse.
pub async fn run(shared: Arc<Shared>, mut stream: TcpStream, peer: SocketAddr) {
    let _slot = ClientSlot::take(&shared);
    let login_timeout = shared.config().client_login_timeout;
    let opened = tokio::time::timeout(login_timeout, open(&shared, &mut stream)).await;
    let startup = match opened {
        Ok(Ok(Some(startup))) => startup,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return report(&mut stream, peer, e).await,
        Err(_) => {
            tracing::debug!(%peer, "client sent no startup packet in time; closing");
            return;
        }
    };
    login::login_and_serve(&shared, stream, peer, startup).await;
}

/// Reads the opening packets: answers SSL and GSS requests with `N`, forwards a cancel,
/// and returns the StartupMessage (or `None` when the connection was only a cancel or a
/// probe).
async fn open(
    shared: &Shared,
    stream: &mut TcpStream,
) -> Result<Option<StartupMessage>, SessionError> {
    // A client may ask for SSL and then GSS encryption before starting; more is abuse.
    for _ in 0..3 {
        let packet = match read_packet(stream).await {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(None),
            Err(StartupReadError::Io(e)) => return Err(e.into()),
            Err(StartupReadError::Protocol(e)) => return Err(e.into()),
        };
        match packet {
            StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
                stream.write_all(b"N").await?;
            }
            StartupPacket::Cancel { pid, secret } => {
                shared.clients_registry.cancel(pid, secret).await;
                return Ok(None);
            }
            StartupPacket::Startup(m) => return Ok(Some(m)),
        }
    }
    Err(crate::protocol::ProtocolError::Malformed("startup sequence").into())
}

/// Logs a session's failure and tells the client, if it is still there.
pub(crate) async fn report(stream: &mut TcpStream, peer: SocketAddr, err: SessionError) {
    match &err {
        e if e.client_gone() => tracing::debug!(%peer, error = %e, "client went away"),
        SessionError::ShuttingDown => tracing::debug!(%peer, "closing client for shutdown"),
        e => tracing::info!(%peer, sqlstate = e.sqlstate(), error = %e, "closing client"),
    }
    if let Some(message) = err.fatal_message() {
        let _ = stream.write_all(&message).await;
        let _ = stream.shutdown().await;
    }
}

/// Counts a connected client for `max_client_conn` and the totals.
struct ClientSlot {
    shared: Arc<Shared>,
}

impl ClientSlot {
    fn take(shared: &Arc<Shared>) -> ClientSlot {
        shared.clients.fetch_add(1, Ordering::Relaxed);
        shared.clients_total.fetch_add(1, Ordering::Relaxed);
        ClientSlot {
            shared: shared.clone(),
        }
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.shared.clients.fetch_sub(1, Ordering::Relaxed);
    }
}
