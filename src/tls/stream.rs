//! A connection that is plain TCP, TLS over TCP, or a Unix socket, for both client and
//! server sockets, so the relay, login and console code is written once for all.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A TLS stream type that sits on a `TcpStream` and can hand the socket back.
pub trait OverTcp: AsyncRead + AsyncWrite + Unpin {
    fn tcp(&self) -> &TcpStream;
}

impl OverTcp for tokio_rustls::server::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

impl OverTcp for tokio_rustls::client::TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

/// A TLS session plus the count of bytes it accepted whose ciphertext is not yet on the
/// socket (see the `AsyncWrite` impl).
pub struct TlsConn<T> {
    pub inner: T,
    accepted: usize,
}

/// Plain, TLS, or Unix. Plain costs one enum match per call over a bare `TcpStream`;
/// the TLS side is boxed so that the enum stays small. Unix sockets never carry TLS (as
/// in PostgreSQL, where SSL is for TCP only).
pub enum MaybeTls<T> {
    Plain(TcpStream),
    Tls(Box<TlsConn<T>>),
    Unix(UnixStream),
}

/// The socket file of a PostgreSQL-style socket directory: `<dir>/.s.PGSQL.<port>`, the
/// name libpq looks for with `host=<dir>`.
pub fn unix_socket_path(dir: &str, port: u16) -> std::path::PathBuf {
    std::path::Path::new(dir).join(format!(".s.PGSQL.{port}"))
}

pub use crate::config::is_socket_dir;

impl ServerStream {
    /// Connects to a TCP host, or to the socket in a socket directory.
    pub async fn connect(host: &str, port: u16) -> io::Result<ServerStream> {
        if is_socket_dir(host) {
            return Ok(MaybeTls::Unix(
                UnixStream::connect(unix_socket_path(host, port)).await?,
            ));
        }
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        Ok(MaybeTls::Plain(tcp))
    }
}

/// A client connection to the proxy.
pub type ClientStream = MaybeTls<tokio_rustls::server::TlsStream<TcpStream>>;
/// A connection from the proxy to a server.
pub type ServerStream = MaybeTls<tokio_rustls::client::TlsStream<TcpStream>>;

impl<T: OverTcp> MaybeTls<T> {
    pub fn tls(inner: T) -> MaybeTls<T> {
        MaybeTls::Tls(Box::new(TlsConn { inner, accepted: 0 }))
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    pub fn is_unix(&self) -> bool {
        matches!(self, MaybeTls::Unix(_))
    }

    /// The raw socket underneath, for socket-level checks (peeking for a close).
    pub fn socket_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            MaybeTls::Plain(s) => s.as_fd(),
            MaybeTls::Tls(t) => t.inner.tcp().as_fd(),
            MaybeTls::Unix(s) => s.as_fd(),
        }
    }

    /// The TLS session, when there is one.
    pub fn tls_session(&self) -> Option<&T> {
        match self {
            MaybeTls::Plain(_) | MaybeTls::Unix(_) => None,
            MaybeTls::Tls(t) => Some(&t.inner),
        }
    }

    /// Ready when a read may make progress. For TLS this is always: rustls may hold
    /// decrypted bytes the socket no longer shows, so only a read can tell.
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            MaybeTls::Plain(s) => s.poll_read_ready(cx),
            MaybeTls::Unix(s) => s.poll_read_ready(cx),
            MaybeTls::Tls(_) => Poll::Ready(Ok(())),
        }
    }
}

impl<T: OverTcp> AsyncRead for MaybeTls<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Unix(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(t) => Pin::new(&mut t.inner).poll_read(cx, buf),
        }
    }
}

impl<T: OverTcp> AsyncWrite for MaybeTls<T> {
    /// TLS writes go through to the socket: a write reports its bytes only once their
    /// ciphertext is flushed. Callers here never flush (the relay and `write_all` on
    /// plain TCP need not), and rustls would otherwise keep the tail of a reply in its
    /// buffer with nothing left to push it out. After `Pending`, every caller retries
    /// with the same leading bytes (`write_all`, the relay's forward buffer), which is
    /// what makes reporting the earlier accepted count correct.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Unix(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(t) => {
                if t.accepted == 0 {
                    t.accepted = ready!(Pin::new(&mut t.inner).poll_write(cx, buf))?;
                }
                ready!(Pin::new(&mut t.inner).poll_flush(cx))?;
                Poll::Ready(Ok(std::mem::take(&mut t.accepted)))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Unix(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(t) => Pin::new(&mut t.inner).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Unix(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(t) => Pin::new(&mut t.inner).poll_shutdown(cx),
        }
    }
}
