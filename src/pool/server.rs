//! One connection to the PostgreSQL server: its socket, identity, reported parameters and
//! the protocol state the pool needs to decide whether it can be handed to someone else.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

mod query;

use crate::protocol::messages::parse_parameter_status;
use crate::protocol::{Direction, FrameScanner, Scan};
use crate::tls::ServerStream;
pub use query::Rows;

/// Reported parameters a client cannot set with `set_config` (lower case).
const READ_ONLY: &[&str] = &[
    "server_version",
    "server_encoding",
    "integer_datetimes",
    "is_superuser",
    "in_hot_standby",
    "session_authorization",
    "scram_iterations",
];

/// True for a reported parameter that may be carried from server to server.
pub fn is_transferable(lower_name: &str) -> bool {
    !READ_ONLY.contains(&lower_name)
}

/// Where a pool's servers live and who they log in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
}

impl ServerTarget {
    /// `host:port`; a socket directory as host means the socket `.s.PGSQL.<port>` in it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// What it takes to cancel a query on one server connection.
#[derive(Debug)]
pub struct CancelKey {
    pub address: Arc<str>,
    pub pid: i32,
    pub secret: i32,
}

/// An open, authenticated server connection.
///
/// Invariant: when a `ServerConn` sits idle in a pool, `pending == 0`, `tx_status == b'I'`
/// and `poisoned == false`, so the next client starts from a clean protocol state.
pub struct ServerConn {
    pub stream: ServerStream,
    /// The login used SCRAM-SHA-256-PLUS, binding it to this TLS connection.
    pub channel_binding: bool,
    /// How the server checked the login (pass-through derives what it keeps from it).
    pub login_method: super::login::LoginMethod,
    /// The server's BackendKeyData, used to forward a client's cancel request.
    pub pid: i32,
    pub secret: i32,
    pub address: Arc<str>,
    /// GUC_REPORT parameters as last reported, keyed by lower-case name; the value keeps
    /// the server's spelling of the name for relaying.
    pub reported: HashMap<String, (String, String)>,
    /// The reported parameters as they were right after login: the server's defaults,
    /// which a setting left behind by an earlier client is reset to.
    pub defaults: HashMap<String, String>,
    /// Reported parameters (lower case) whose value is no longer the server's default,
    /// kept up to date by `note_parameter` so checking a server needs no scan.
    pub drifted: Vec<String>,
    /// Session settings the proxy applied for clients (lower-case name to value), so the
    /// next client can be given its own values, or the defaults back.
    pub applied: HashMap<String, String>,
    /// Prepared statements the proxy renamed for clients (transaction mode), with when
    /// each was last used, for closing the least recently used.
    prepared: HashMap<Arc<str>, u64>,
    prepared_tick: u64,
    /// The pool's owner departures already looked for among `prepared`.
    swept_departures: u64,
    /// Signature of the client settings this server was last checked against; reset
    /// whenever the server's settings change, so an unchanged match skips the check.
    pub verified_for: Option<u64>,
    /// Status byte of the last ReadyForQuery.
    pub tx_status: u8,
    /// Query/Sync/FunctionCall messages sent whose ReadyForQuery has not arrived.
    pub pending: u32,
    /// Set when the connection's protocol state is unknown (a message half sent or half
    /// read); such a server is closed, never reused.
    pub poisoned: bool,
    /// A client pinned to this server left session state on it (LISTEN, advisory
    /// locks, temporary tables, held cursors): reset it before anyone else gets it.
    pub needs_reset: bool,
    /// `pid`, `secret` and address, shared with the cancel registry while a client
    /// uses this server (set at login).
    pub cancel_key: Arc<CancelKey>,
    pub created: Instant,
    pub last_used: Instant,
    /// Decremented on drop: the pool's count of open connections.
    open_count: Arc<AtomicUsize>,
}

impl ServerConn {
    pub(super) fn new(
        stream: ServerStream,
        address: Arc<str>,
        open_count: Arc<AtomicUsize>,
    ) -> ServerConn {
        open_count.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        ServerConn {
            stream,
            channel_binding: false,
            login_method: Default::default(),
            pid: 0,
            secret: 0,
            cancel_key: Arc::new(CancelKey {
                address: address.clone(),
                pid: 0,
                secret: 0,
            }),
            address,
            reported: HashMap::new(),
            defaults: HashMap::new(),
            drifted: Vec::new(),
            verified_for: None,
            applied: HashMap::new(),
            prepared: HashMap::new(),
            prepared_tick: 0,
            swept_departures: 0,
            tx_status: b'I',
            pending: 0,
            poisoned: false,
            needs_reset: false,
            created: now,
            last_used: now,
            open_count,
        }
    }

    /// True when the connection can go back to the idle list as it is.
    pub fn is_clean(&self) -> bool {
        self.pending == 0 && self.tx_status == b'I' && !self.poisoned
    }

    /// A statement is (being) prepared on this server.
    pub fn note_prepared(&mut self, name: Arc<str>) {
        self.prepared_tick += 1;
        self.prepared.insert(name, self.prepared_tick);
    }

    /// True when `name` is prepared here (and marks it used).
    pub fn touch_prepared(&mut self, name: &str) -> bool {
        self.prepared_tick += 1;
        match self.prepared.get_mut(name) {
            Some(used) => {
                *used = self.prepared_tick;
                true
            }
            None => false,
        }
    }

    pub fn forget_prepared(&mut self, name: &str) {
        self.prepared.remove(name);
    }

    /// Forgets every prepared statement (after DISCARD ALL).
    pub fn forget_all_prepared(&mut self) {
        self.prepared.clear();
    }

    /// The least recently used statements beyond `max`, removed from the record: the
    /// caller closes them on the server.
    pub fn take_prepared_beyond(&mut self, max: usize) -> Vec<Arc<str>> {
        let extra = self.prepared.len().saturating_sub(max);
        if extra == 0 {
            return Vec::new();
        }
        let mut by_age: Vec<(u64, Arc<str>)> = (self.prepared.iter())
            .map(|(k, t)| (*t, k.clone()))
            .collect();
        by_age.sort_unstable();
        let old: Vec<Arc<str>> = by_age.into_iter().take(extra).map(|(_, k)| k).collect();
        for name in &old {
            self.prepared.remove(name);
        }
        old
    }

    /// The statements of owners that left since the last look, removed from the record:
    /// the caller closes them on the server. Costs one atomic load when nobody left.
    pub fn take_departed(&mut self, owners: &super::owners::StatementOwners) -> Vec<Arc<str>> {
        let departures = owners.departures();
        if departures == self.swept_departures {
            return Vec::new();
        }
        self.swept_departures = departures;
        let gone: Vec<Arc<str>> = (self.prepared.keys())
            .filter(|name| super::owners::owner_of(name).is_some_and(|id| !owners.is_live(id)))
            .cloned()
            .collect();
        for name in &gone {
            self.prepared.remove(name);
        }
        gone
    }

    /// Records a ParameterStatus the server sent.
    pub fn note_parameter(&mut self, name: &str, value: &str) {
        self.verified_for = None;
        let lower = name.to_ascii_lowercase();
        let is_default = self.defaults.get(&lower).map(String::as_str) == Some(value);
        let listed = self.drifted.iter().position(|k| *k == lower);
        match (is_default || !is_transferable(&lower), listed) {
            (true, Some(i)) => {
                self.drifted.swap_remove(i);
            }
            (false, None) => self.drifted.push(lower.clone()),
            _ => {}
        }
        self.reported
            .insert(lower, (name.to_string(), value.to_string()));
    }

    /// The value of a setting as far as the proxy knows: reported, or applied by us.
    pub fn setting(&self, lower_name: &str) -> Option<&str> {
        match self.reported.get(lower_name) {
            Some((_, v)) => Some(v),
            None => self.applied.get(lower_name).map(String::as_str),
        }
    }

    /// Non-blocking look at an idle connection: an idle server sends nothing unless it is
    /// going away (FATAL on shutdown, EOF) or a setting changed (ParameterStatus after a
    /// configuration reload). Returns false when the connection must not be reused.
    ///
    /// tokio learns that a socket is readable only when its reactor next runs, so a
    /// server that went away a moment ago may not show there yet. A connection idle for
    /// longer than `ASK_KERNEL_AFTER` is therefore asked directly with a non-blocking
    /// recv; one reused within microseconds (the hot path) costs no syscall.
    ///
    /// Over TLS the socket is only peeked at: its bytes are ciphertext, and reading them
    /// past rustls would break the session. Any byte at all then retires the connection,
    /// since what it says (a FATAL, or a rare ParameterStatus) cannot be told apart
    /// without decrypting.
    pub fn still_usable(&mut self, idle_for: Duration) -> bool {
        const ASK_KERNEL_AFTER: Duration = Duration::from_millis(50);
        let mut buf = [0u8; 1024];
        let fd = self.stream.socket_fd();
        let read = match &self.stream {
            ServerStream::Tls(_) => {
                return matches!(
                    peek_nonblocking(fd),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                )
            }
            _ if idle_for > ASK_KERNEL_AFTER => read_nonblocking(fd, &mut buf),
            ServerStream::Plain(tcp) => tcp.try_read(&mut buf),
            ServerStream::Unix(unix) => unix.try_read(&mut buf),
        };
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => true,
            Ok(0) | Err(_) => false,
            Ok(n) => self.absorb_idle_messages(&buf[..n]),
        }
    }

    fn absorb_idle_messages(&mut self, mut bytes: &[u8]) -> bool {
        let mut scanner = FrameScanner::new(Direction::Backend, usize::MAX);
        while let Ok(Scan::Frame { tag, len }) = scanner.next(bytes) {
            match tag {
                b'S' => {
                    if let Some((k, v)) = parse_parameter_status(&bytes[5..len]) {
                        let (k, v) = (k.to_string(), v.to_string());
                        self.note_parameter(&k, &v);
                    }
                }
                b'N' | b'A' => {}
                _ => return false,
            }
            bytes = &bytes[len..];
        }
        bytes.is_empty()
    }

    /// Best-effort polite goodbye; the socket closes when the connection drops.
    /// Over TLS nothing is sent: a Terminate would have to be encrypted and flushed,
    /// and the server treats the closing socket the same way.
    pub fn terminate(&mut self) {
        match &self.stream {
            ServerStream::Plain(tcp) => drop(tcp.try_write(b"X\0\0\0\x04")),
            ServerStream::Unix(unix) => drop(unix.try_write(b"X\0\0\0\x04")),
            ServerStream::Tls(_) => {}
        }
    }
}

impl Drop for ServerConn {
    fn drop(&mut self) {
        self.open_count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Peeks at one byte straight on the socket, bypassing tokio's readiness cache. Every
/// socket tokio owns is in non-blocking mode, so an empty socket answers `WouldBlock`.
fn peek_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<usize> {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
    socket2::SockRef::from(&fd).peek(&mut byte)
}

/// Reads straight from the socket, bypassing tokio's readiness cache (non-blocking, as
/// for [`peek_nonblocking`]).
fn read_nonblocking(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let socket = socket2::SockRef::from(&fd);
    (&*socket).read(buf)
}

/// Sends a CancelRequest for `pid`/`secret` to the server at `address` (`host:port`,
/// where the host may be a socket directory).
pub async fn send_cancel(address: &str, pid: i32, secret: i32) -> std::io::Result<()> {
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad address");
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    let mut stream = ServerStream::connect(host, port).await?;
    let mut packet = Vec::with_capacity(16);
    packet.extend_from_slice(&16u32.to_be_bytes());
    packet.extend_from_slice(&80_877_102i32.to_be_bytes());
    packet.extend_from_slice(&pid.to_be_bytes());
    packet.extend_from_slice(&secret.to_be_bytes());
    stream.write_all(&packet).await?;
    // The server closes the connection once it has read the request; waiting for that
    // makes the cancel effective before we report back.
    let mut sink = [0u8; 16];
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut sink)).await;
    Ok(())
}
