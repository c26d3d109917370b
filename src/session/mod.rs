//! One client's life: the opening packets (SSL and the TLS handshake, cancel, startup),
//! login, then the request
//! loop that borrows a server per transaction (or per session) and relays bytes.
//!
//! Layout: `login` authenticates and greets; `serve` runs requests; `relay` pumps bytes
//! and obeys the `pipeline` (one file per step; read its table of contents first);
//! `statements` is the one registry of the client's statements; `track` measures;
//! `params` carries the client's settings from server to server; `error` maps failures
//! to what the client is told.

mod budget;
mod buffers;
mod clients;
mod error;
mod login;
mod openings;
mod params;
pub mod pipeline;
pub mod relay;
mod serve;
pub mod statements;
pub(crate) mod track;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub use budget::BufferBudget;
pub use clients::{ClientEntry, ClientIdentity, ClientRegistry, ClientState};
pub use error::SessionError;
pub use openings::{OpeningPlace, Openings};
pub use params::ClientParams;
pub use track::Measure;

use crate::app::Shared;
use crate::config::ClientTlsMode;
use crate::protocol::startup::{read_packet, StartupMessage, StartupPacket, StartupReadError};
use crate::protocol::ProtocolError;
use crate::tls::{ClientStream, Tls};

/// Where a client asking for the admin console goes instead of a pool, chosen from its
/// startup packet before any login. The listener hands it in: sessions know nothing of
/// the console.
#[derive(Clone, Copy)]
pub struct ConsoleEntry {
    pub wants: fn(&StartupMessage) -> bool,
    pub serve: fn(Arc<Shared>, ClientStream, SocketAddr, StartupMessage) -> ConsoleFuture,
}

pub type ConsoleFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Serves one client connection to its end. Never panics on client input; every failure
/// is logged and, where the client can still hear it, reported with an ErrorResponse.
pub async fn run(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr, console: ConsoleEntry) {
    serve_client(shared, ClientStream::Plain(stream), peer, console).await
}

/// Serves a client on a Unix socket. It shows as `127.0.0.1:0` wherever a peer address
/// is logged or listed, and counts as local (like loopback) for pass-through logins.
pub async fn run_unix(shared: Arc<Shared>, stream: tokio::net::UnixStream, console: ConsoleEntry) {
    let peer = SocketAddr::from(([127, 0, 0, 1], 0));
    serve_client(shared, ClientStream::Unix(stream), peer, console).await
}

async fn serve_client(
    shared: Arc<Shared>,
    stream: ClientStream,
    peer: SocketAddr,
    console: ConsoleEntry,
) {
    let _slot = ClientSlot::take(&shared);
    let config = shared.config();
    let place = shared.openings.enter(config.max_client_conn);
    let login_timeout = config.client_login_timeout;
    let tls = shared.tls();
    let opening = open(&shared, &tls, stream);
    let opened = tokio::select! {
        opened = tokio::time::timeout(login_timeout, opening) => opened,
        _ = place.shed() => {
            tracing::debug!(%peer, "connection shed: too many connections still opening");
            return;
        }
    };
    let (stream, startup) = match opened {
        Ok(Opened::Startup(stream, startup)) => (stream, startup),
        Ok(Opened::Done) => return,
        Ok(Opened::Failed(mut stream, e)) => return report(&mut stream, peer, e).await,
        Ok(Opened::HandshakeFailed(e)) => {
            tracing::info!(%peer, error = %e, "TLS handshake with client failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "client sent no startup packet in time; closing");
            return;
        }
    };
    // The admin console (database `pgsidecar` or `pgbouncer`) logs in and serves itself.
    if (console.wants)(&startup) {
        drop(place);
        return (console.serve)(shared, stream, peer, startup).await;
    }
    login::login_and_serve(&shared, stream, peer, startup, place).await;
}

/// How the opening ended.
enum Opened {
    Startup(ClientStream, StartupMessage),
    /// Only a cancel or a probe.
    Done,
    Failed(ClientStream, SessionError),
    /// The handshake consumed the socket; nothing can be reported.
    HandshakeFailed(std::io::Error),
}

/// What one opening packet asks for.
enum Opening {
    Startup(StartupMessage),
    /// An SSLRequest answered `S`: the TLS handshake comes next.
    Upgrade,
    /// Answered (`N`); the next packet follows.
    Answered,
    /// A cancel or a probe: nothing more to do.
    Done,
}

/// Reads the opening packets: answers an SSLRequest with `S` and runs the TLS handshake
/// when `client_tls` allows it (`N` otherwise, and always for GSSENCRequest), forwards a
/// cancel, and returns the StartupMessage with the stream to continue on.
async fn open(shared: &Shared, tls: &Tls, mut stream: ClientStream) -> Opened {
    // A client may ask for SSL and then GSS encryption before starting; more is abuse.
    for _ in 0..3 {
        match next_packet(shared, tls, &mut stream).await {
            Ok(Opening::Answered) => {}
            Ok(Opening::Startup(m)) => return Opened::Startup(stream, m),
            Ok(Opening::Done) => return Opened::Done,
            Err(e) => return Opened::Failed(stream, e),
            Ok(Opening::Upgrade) => {
                let (ClientStream::Plain(tcp), Some(acceptor)) = (stream, &tls.acceptor) else {
                    unreachable!("Upgrade is only asked for on a plain stream with an acceptor");
                };
                match acceptor.accept(tcp).await {
                    Ok(session) => stream = ClientStream::tls(session),
                    Err(e) => return Opened::HandshakeFailed(e),
                }
            }
        }
    }
    let malformed = ProtocolError::Malformed("startup sequence");
    Opened::Failed(stream, malformed.into())
}

async fn next_packet(
    shared: &Shared,
    tls: &Tls,
    stream: &mut ClientStream,
) -> Result<Opening, SessionError> {
    let packet = match read_packet(stream).await {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(Opening::Done),
        Err(StartupReadError::Io(e)) => return Err(e.into()),
        Err(StartupReadError::Protocol(e)) => return Err(e.into()),
    };
    match packet {
        StartupPacket::SslRequest if stream.is_tls() => {
            Err(ProtocolError::Malformed("SSLRequest over TLS").into())
        }
        // No TLS over a Unix socket (as in PostgreSQL): it is local already.
        StartupPacket::SslRequest if tls.acceptor.is_some() && !stream.is_unix() => {
            stream.write_all(b"S").await?;
            Ok(Opening::Upgrade)
        }
        StartupPacket::SslRequest | StartupPacket::GssEncRequest => {
            stream.write_all(b"N").await?;
            Ok(Opening::Answered)
        }
        StartupPacket::Cancel { pid, secret } => {
            shared.clients_registry.cancel(pid, secret).await;
            Ok(Opening::Done)
        }
        StartupPacket::Startup(_)
            if tls.client_mode == ClientTlsMode::Require
                && !stream.is_tls()
                && !stream.is_unix() =>
        {
            Err(SessionError::TlsRequired)
        }
        StartupPacket::Startup(m) => Ok(Opening::Startup(m)),
    }
}

/// Logs a session's failure and tells the client, if it is still there.
pub(crate) async fn report<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    err: SessionError,
) {
    match &err {
        e if e.client_gone() => tracing::debug!(%peer, error = %e, "client went away"),
        SessionError::ShuttingDown => tracing::debug!(%peer, "closing client for shutdown"),
        SessionError::Auth(a) => {
            let reason = a.reason().unwrap_or_else(|| a.to_string());
            tracing::info!(%peer, sqlstate = err.sqlstate(), %reason, "login rejected");
        }
        e => tracing::info!(%peer, sqlstate = e.sqlstate(), error = %e, "closing client"),
    }
    if let Some(message) = err.fatal_message() {
        let _ = stream.write_all(&message).await;
        close_client(stream).await;
    }
}

/// How long a closing connection is read (and the bytes dropped) after its last message.
const LINGER: std::time::Duration = std::time::Duration::from_millis(500);
/// Bytes read and dropped at most while lingering.
const LINGER_BYTES: usize = 1 << 20;

/// Closes a client's connection so that the last message sent reaches it: the write side
/// is shut first, then what the client still sends is read and dropped for a moment.
/// Closing a socket with unread bytes makes the kernel send a reset, and a reset can
/// destroy the ErrorResponse still on its way (a client that sent a query right after
/// its COMMIT would see a bare disconnect instead of 57P01).
pub(crate) async fn close_client<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) {
    let _ = stream.shutdown().await;
    let drain = async {
        let mut scratch = [0u8; 8192];
        let mut total = 0;
        while total < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
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
