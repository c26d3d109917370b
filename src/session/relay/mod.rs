//! The byte pump between one client and (at times) one server: reads, frames, forwards,
//! and reports the moments the session must act on (a request needs a server, the server
//! can go back to the pool, someone hung up).
//!
//! All four directions (client read/write, server read/write) are driven from one poll
//! function, so a client that pipelines megabytes while the server streams results back
//! can never deadlock the two against each other. Bytes are forwarded from the buffer they
//! were read into: `cbuf[..c_fwd]` is framed and ready for the server, `sbuf[..s_fwd]` for
//! the client; what follows is a frame still arriving.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::tls::ClientStream;
use bytes::{Buf, BytesMut};
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

mod depart;
mod statements;

use super::budget::{self, Charge};
use super::buffers;
use super::prepared::Prepared;
use super::track::{sqlstate_of, Tracker};
use crate::pool::PooledServer;
use crate::protocol::messages::{self, parse_parameter_status};
use crate::protocol::{Direction, FrameScanner, ProtocolError, Scan};
use crate::query::PinReason;

/// Reads stop while this much framed data waits to be written (backpressure). Bytes of
/// a frame still arriving do not count, so a message the proxy must see whole (a long
/// Query, bounded by max_message_size) can always complete.
const BUFFER_HIGH_WATER: usize = 256 * 1024;
/// Fresh read buffers start at this size.
const READ_CHUNK: usize = 8 * 1024;
/// A request bigger than this is sent on to a server before it is complete.
const EARLY_CHECKOUT: usize = 64 * 1024;
/// Steps of progress before yielding to other tasks.
const STEPS_PER_POLL: usize = 32;

/// Called once when a client gets pinned, with the reason and the statement.
pub type PinReport = Box<dyn FnMut(PinReason, &str) + Send>;

/// What the session must do next.
#[derive(Debug)]
pub enum Event {
    /// Framed client bytes are waiting and no server is attached.
    NeedServer,
    /// The attached server finished its last request outside a transaction.
    ServerIdle,
    /// The client closed the connection, or sent Terminate and nothing is outstanding.
    ClientDone,
}

/// Failures while relaying.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("client connection: {0}")]
    Client(io::Error),
    #[error("server connection lost: {0}")]
    Server(io::Error),
    #[error("server closed the connection")]
    ServerClosed,
    #[error(
        "out of memory: buffered client messages would exceed client_buffer_budget ({limit} bytes)"
    )]
    OutOfMemory { limit: usize },
}

pub struct Relay {
    pub client: ClientStream,
    pub server: Option<PooledServer>,
    cbuf: BytesMut,
    c_fwd: usize,
    cscan: FrameScanner,
    sbuf: BytesMut,
    s_fwd: usize,
    sscan: FrameScanner,
    /// Requests (Query, Sync, FunctionCall) read from the client whose ReadyForQuery has
    /// not been relayed yet.
    pub pending: u32,
    /// Status of the last ReadyForQuery relayed.
    pub tx_status: u8,
    /// A request is ready and wants a server (set when a flush point is framed).
    wants_server: bool,
    /// After an error we reported ourselves in extended protocol: drop client messages
    /// up to the next Sync, as PostgreSQL does.
    pub discard_until_sync: bool,
    /// The client sent Terminate.
    terminating: bool,
    /// Extended-protocol messages were sent after the last request end (Sync): the
    /// server is mid-batch and must stay with this client.
    unsynced: bool,
    /// ParameterStatus values seen from the server, for the session to adopt.
    pub reported: Vec<(String, String)>,
    /// Transaction mode: report `ServerIdle` when the server can go back to the pool.
    pub release_when_idle: bool,
    /// Per-statement measurement, when statistics are on.
    pub tracker: Option<Tracker>,
    /// Transaction mode: look for statements with session effects (settings, pins).
    pub watch_effects: bool,
    /// A statement may have changed a session setting since the server was attached.
    pub settings_touched: bool,
    /// Prepared statements (by server name; "" is the unnamed one) whose text may change
    /// settings: each Bind of one may.
    settings_statements: std::collections::HashSet<String>,
    /// Transaction mode: which function names are built-ins only, to tell opaque
    /// statements (whose session effects their text cannot show) from the rest.
    pub functions: Option<std::sync::Arc<crate::query::KnownFunctions>>,
    /// Opaque statements since the server was attached: the server is checked for
    /// session state before it goes back.
    pub opacity: crate::query::Opacity,
    /// Prepared statements (by server name) with opaque calls: each Bind of one is
    /// opaque, or calls the names listed, until they are known to be built-ins.
    opaque_statements: std::collections::HashMap<String, crate::query::Opacity>,
    /// Why the client keeps its server for the rest of its session, once it must.
    pub pinned: Option<PinReason>,
    /// Told once, when the client gets pinned (reason and statement), to log and count.
    pub on_pin: Option<PinReport>,
    /// Transaction mode: named prepared statements renamed and prepared per server.
    pub prepared: Option<Prepared>,
    /// A DEALLOCATE ALL went by: the next server met forgets its prepared statements.
    forget_server_statements: bool,
    /// Requests framed, and requests answered (ReadyForQuery), since the session began.
    requests_framed: u64,
    requests_answered: u64,
    /// The server is in COPY FROM STDIN and the client has not ended it (CopyDone or
    /// CopyFail): a departing client must end it for the server (see `depart`).
    copy_in: bool,
    /// Bit `n % 64` is set when request `n` was a simple Query (not a Sync): tells how a
    /// COPY the server started must be failed.
    simple_requests: u64,
    /// The server sent an ErrorResponse with severity FATAL or PANIC: it is closing, and
    /// its own error is the one the client hears.
    pub server_fatal: bool,
    /// For the COPY IN in progress: whether a simple Query started it (`None`: unknown).
    copy_simple: Option<bool>,
    /// CopyDone/CopyFail frames the client sent before the server's CopyInResponse (a
    /// client that pipelines its COPY data): that COPY is ended already.
    copy_ends_early: u32,
    /// CloseCompletes owed for statements the proxy closed: hidden from the client.
    hidden_closes: u32,
    /// This client's share of the process-wide budget for buffered client bytes.
    pub charge: Option<Charge>,
}

impl Relay {
    pub fn new(client: ClientStream, max_message_size: usize) -> Relay {
        Relay {
            client,
            server: None,
            cbuf: BytesMut::new(),
            c_fwd: 0,
            cscan: FrameScanner::new(Direction::Frontend, max_message_size),
            sbuf: BytesMut::new(),
            s_fwd: 0,
            sscan: FrameScanner::new(Direction::Backend, usize::MAX),
            pending: 0,
            tx_status: b'I',
            wants_server: false,
            discard_until_sync: false,
            terminating: false,
            unsynced: false,
            reported: Vec::new(),
            release_when_idle: true,
            tracker: None,
            watch_effects: false,
            settings_touched: false,
            settings_statements: std::collections::HashSet::new(),
            functions: None,
            opacity: crate::query::Opacity::default(),
            opaque_statements: std::collections::HashMap::new(),
            pinned: None,
            on_pin: None,
            prepared: None,
            forget_server_statements: false,
            requests_framed: 0,
            requests_answered: 0,
            copy_in: false,
            simple_requests: 0,
            server_fatal: false,
            copy_simple: None,
            copy_ends_early: 0,
            hidden_closes: 0,
            charge: None,
        }
    }

    /// True between requests: nothing outstanding and no transaction open.
    pub fn at_rest(&self) -> bool {
        self.pending == 0 && self.tx_status == b'I' && self.c_fwd == 0 && self.cbuf.is_empty()
    }

    /// Queues a message built by the proxy for the client. Only valid when no server
    /// frame is half-read (no server attached, or it just failed).
    pub fn client_outbox(&mut self) -> &mut BytesMut {
        self.sbuf.truncate(self.s_fwd);
        &mut self.sbuf
    }

    /// Marks everything appended via `client_outbox` as ready to send.
    pub fn commit_outbox(&mut self) {
        self.s_fwd = self.sbuf.len();
    }

    /// Answers every waiting request with `error` (an ErrorResponse) and drops the
    /// buffered messages, as PostgreSQL would after a failed request.
    pub fn fail_waiting_requests(&mut self, error: &[u8]) {
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.fail_waiting(sqlstate_of(error.get(5..).unwrap_or_default()));
        }
        self.cbuf.advance(self.c_fwd);
        self.c_fwd = 0;
        self.wants_server = false;
        let requests = self.pending;
        // A batch begun but not yet synced fails too: one error now, ReadyForQuery when
        // its Sync arrives, as PostgreSQL answers an extended-protocol error.
        let open_batch = requests == 0 || self.unsynced;
        let buf = self.client_outbox();
        for _ in 0..requests {
            buf.extend_from_slice(error);
            messages::ready_for_query(buf, b'I');
        }
        if open_batch {
            buf.extend_from_slice(error);
        }
        self.discard_until_sync = open_batch;
        self.unsynced = false;
        self.pending = 0;
        self.requests_answered = self.requests_framed;
        self.commit_outbox();
    }

    /// Writes everything queued for the client.
    pub async fn flush_client(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.client.write_all(&self.sbuf[..self.s_fwd]).await?;
        self.sbuf.advance(self.s_fwd);
        self.s_fwd = 0;
        Ok(())
    }

    /// Attaches a server checked out for the waiting request, preparing on it the
    /// statements the waiting messages use.
    pub fn attach_server(&mut self, mut server: PooledServer) {
        self.wants_server = false;
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.pool_waited(server.waited());
        }
        if std::mem::take(&mut self.forget_server_statements) {
            server.forget_all_prepared();
        }
        if let Some(prepared) = self.prepared.as_mut() {
            let batch = self.requests_answered;
            let added = prepared.place(&mut self.cbuf, 0, self.c_fwd, batch, &mut server);
            self.c_fwd += added;
        }
        self.server = Some(server);
    }

    /// Detaches the server, recording for the pool what state it is in.
    pub fn detach_server(&mut self) -> Option<PooledServer> {
        let mut server = self.server.take()?;
        let half_sent = self.c_fwd > 0 || self.cscan.mid_frame() || self.unsynced;
        let half_read = self.sbuf.len() > self.s_fwd || self.sscan.mid_frame();
        server.pending = self.pending;
        server.tx_status = self.tx_status;
        if half_sent || half_read || std::mem::take(&mut self.hidden_closes) > 0 {
            server.poisoned = true;
        }
        // Bytes after the last whole server frame belong to that server only.
        self.sbuf.truncate(self.s_fwd);
        self.sscan = FrameScanner::new(Direction::Backend, usize::MAX);
        Some(server)
    }

    /// Releases idle memory: an idle client costs no buffers.
    pub fn shrink(&mut self) {
        if self.cbuf.is_empty() && self.cbuf.capacity() > 0 {
            buffers::give(std::mem::take(&mut self.cbuf));
            if let Some(charge) = self.charge.as_mut() {
                charge.fit(0);
            }
        }
        if self.sbuf.is_empty() && self.sbuf.capacity() > 0 {
            buffers::give(std::mem::take(&mut self.sbuf));
        }
    }

    /// Drives the pump once; `Ready` when the session must act.
    pub fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, RelayError>> {
        for _ in 0..STEPS_PER_POLL {
            // Writes first, then events: the client gets its answer before the session
            // spends time giving the server back.
            let mut progress = self.poll_writes(cx)?;
            if let Some(event) = self.due_event() {
                return Poll::Ready(Ok(event));
            }
            if let Poll::Ready(r) = self.poll_client_read(cx, &mut progress) {
                return Poll::Ready(r);
            }
            self.poll_server_read(cx, &mut progress)?;
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn due_event(&self) -> Option<Event> {
        if self.terminating && self.pending == 0 && self.s_fwd == 0 {
            return Some(Event::ClientDone);
        }
        if self.server.is_none() {
            return self.wants_server.then_some(Event::NeedServer);
        }
        let idle = self.pending == 0 && self.tx_status == b'I' && !self.unsynced;
        let quiet = self.c_fwd == 0
            && self.sbuf.len() == self.s_fwd
            && !self.sscan.mid_frame()
            && !self.cscan.mid_frame();
        (self.release_when_idle && idle && quiet).then_some(Event::ServerIdle)
    }

    /// Writes whatever is ready in both directions. Returns whether anything moved.
    fn poll_writes(&mut self, cx: &mut Context<'_>) -> Result<bool, RelayError> {
        let mut progress = false;
        if self.terminating && self.s_fwd > 0 {
            // The client said goodbye: what the server still sends has no reader.
            self.sbuf.advance(self.s_fwd);
            self.s_fwd = 0;
            progress = true;
        }
        if self.s_fwd > 0 {
            if let Poll::Ready(r) =
                Pin::new(&mut self.client).poll_write(cx, &self.sbuf[..self.s_fwd])
            {
                let n = r.map_err(RelayError::Client)?;
                if n == 0 {
                    return Err(RelayError::Client(io::ErrorKind::WriteZero.into()));
                }
                self.sbuf.advance(n);
                self.s_fwd -= n;
                progress = true;
            }
        }
        if let Some(server) = self.server.as_mut() {
            if self.c_fwd > 0 {
                if let Poll::Ready(r) =
                    Pin::new(&mut server.stream).poll_write(cx, &self.cbuf[..self.c_fwd])
                {
                    let n = r.map_err(RelayError::Server)?;
                    if n == 0 {
                        return Err(RelayError::ServerClosed);
                    }
                    self.cbuf.advance(n);
                    self.c_fwd -= n;
                    progress = true;
                }
            }
        }
        Ok(progress)
    }

    fn poll_client_read(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Poll<Result<Event, RelayError>> {
        let retrying = self.prepared.as_ref().is_some_and(|p| p.retrying.is_some());
        if self.terminating || self.c_fwd >= BUFFER_HIGH_WATER || retrying {
            return Poll::Pending;
        }
        if self.cbuf.capacity() == 0 {
            // Idle client: wait for readiness before spending a buffer on it.
            match self.client.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => self.cbuf = buffers::take(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(RelayError::Client(e))),
                Poll::Pending => return Poll::Pending,
            }
        } else if self.cbuf.is_empty() && self.cbuf.capacity() > budget::FREE_BYTES {
            // A big message went through: its memory goes back now, not at idle.
            self.cbuf = buffers::take();
        } else if self.cbuf.capacity() - self.cbuf.len() < 512 {
            self.cbuf.reserve(READ_CHUNK);
        }
        if let Some(charge) = self.charge.as_mut() {
            if !charge.fit(self.cbuf.capacity()) {
                let limit = charge.limit();
                return Poll::Ready(Err(RelayError::OutOfMemory { limit }));
            }
        }
        match poll_read_buf(Pin::new(&mut self.client), cx, &mut self.cbuf) {
            Poll::Ready(Ok(0)) if self.copy_in && !self.cscan.mid_frame() => {
                // A COPY FROM STDIN whose client vanished: end it as after Terminate.
                *progress = true;
                self.depart();
                Poll::Pending
            }
            Poll::Ready(Ok(0)) => Poll::Ready(Ok(Event::ClientDone)),
            Poll::Ready(Ok(_)) => {
                *progress = true;
                match self.scan_client() {
                    Ok(()) => Poll::Pending,
                    Err(e) => Poll::Ready(Err(e.into())),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(RelayError::Client(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_server_read(
        &mut self,
        cx: &mut Context<'_>,
        progress: &mut bool,
    ) -> Result<(), RelayError> {
        let Some(server) = self.server.as_mut() else {
            return Ok(());
        };
        if self.s_fwd >= BUFFER_HIGH_WATER {
            return Ok(());
        }
        if self.sbuf.capacity() == 0 {
            self.sbuf = buffers::take();
        } else if self.sbuf.capacity() - self.sbuf.len() < 1024 {
            self.sbuf.reserve(READ_CHUNK * 2);
        }
        match poll_read_buf(Pin::new(&mut server.stream), cx, &mut self.sbuf) {
            Poll::Ready(Ok(0)) => Err(RelayError::ServerClosed),
            Poll::Ready(Ok(_)) => {
                *progress = true;
                // A frame no server can send (a length below 4) leaves no way to find the
                // next one: the server is lost, not waited on while its bytes pile up.
                self.scan_server()
                    .map_err(|e| RelayError::Server(io::Error::new(io::ErrorKind::InvalidData, e)))
            }
            Poll::Ready(Err(e)) => Err(RelayError::Server(e)),
            Poll::Pending => Ok(()),
        }
    }

    /// Frames newly read client bytes, noting requests and Terminate.
    #[allow(clippy::too_many_lines)] // split in the pipeline work
    fn scan_client(&mut self) -> Result<(), ProtocolError> {
        loop {
            let (tag, len) = match self.cscan.next(&self.cbuf[self.c_fwd..])? {
                Scan::NeedMore => break,
                Scan::Partial { len, .. } if self.discard_until_sync => {
                    self.drop_client_frame(len);
                    continue;
                }
                Scan::Partial { len, start } => {
                    if let Some(prepared) = self.prepared.as_mut() {
                        prepared.retries.spoil(self.requests_framed);
                    }
                    let len = match start {
                        Some(b'B') => self.rename_streamed_bind(len),
                        _ => len,
                    };
                    if let (Some(b'B'), Some(tracker)) = (start, self.tracker.as_mut()) {
                        // A streamed Bind: its names are at the front of this piece.
                        let piece = &self.cbuf[self.c_fwd + 5..self.c_fwd + len];
                        tracker.bind(piece, false);
                    }
                    self.c_fwd += len;
                    continue;
                }
                Scan::Frame { tag, len } => (tag, len),
            };
            let len = self.rename_statements(tag, len);
            if tag == b'X' {
                self.cbuf.truncate(self.c_fwd);
                self.depart();
                break;
            }
            if self.discard_until_sync {
                self.drop_client_frame(len);
                if tag == b'S' {
                    self.discard_until_sync = false;
                    messages::ready_for_query(self.client_outbox(), b'I');
                    self.commit_outbox();
                }
                continue;
            }
            if tag == b'S' && self.answer_parse_only(len) {
                continue;
            }
            if tag == b'Q' && self.answer_deallocate(len) {
                continue;
            }
            let request_end = matches!(tag, b'Q' | b'S' | b'F');
            let batch = self.requests_framed;
            if let Some(prepared) = self.prepared.as_mut() {
                let alone = self.pending == 0 && self.tx_status == b'I';
                let frame = &self.cbuf[self.c_fwd..self.c_fwd + len];
                prepared.retries.keep(batch, frame, alone);
            }
            if request_end {
                self.note_request_kind(tag == b'Q');
                self.pending += 1;
                self.requests_framed += 1;
            }
            if matches!(tag, b'c' | b'f') {
                self.note_copy_end();
            }
            if request_end {
                self.unsynced = false;
            } else if matches!(tag, b'P' | b'B' | b'D' | b'E' | b'C' | b'H') {
                self.unsynced = true;
            }
            if request_end || matches!(tag, b'H' | b'd' | b'c' | b'f') {
                self.wants_server = self.server.is_none();
            }
            if let Some(tracker) = self.tracker.as_mut() {
                tracker.client_frame(tag, &self.cbuf[self.c_fwd + 5..self.c_fwd + len]);
            }
            if self.watch_effects && matches!(tag, b'Q' | b'P') {
                self.note_effects(tag, self.c_fwd + 5..self.c_fwd + len);
            }
            let remembered =
                !self.settings_statements.is_empty() || !self.opaque_statements.is_empty();
            if self.watch_effects && tag == b'B' && remembered {
                self.note_bind(self.c_fwd + 5..self.c_fwd + len);
            }
            if let (Some(prepared), Some(server)) = (self.prepared.as_mut(), self.server.as_mut()) {
                if std::mem::take(&mut self.forget_server_statements) {
                    server.forget_all_prepared();
                }
                let start = self.c_fwd;
                self.c_fwd += prepared.place(&mut self.cbuf, start, start + len, batch, server);
            }
            self.c_fwd += len;
        }
        if self.server.is_none() && (self.c_fwd > EARLY_CHECKOUT || self.cscan.mid_frame()) {
            self.wants_server = true;
        }
        Ok(())
    }

    /// Removes the frame at `c_fwd` from the client buffer.
    fn drop_client_frame(&mut self, len: usize) {
        let tail = self.cbuf.split_off(self.c_fwd);
        let mut tail = tail;
        tail.advance(len);
        self.cbuf.unsplit(tail);
    }

    /// Frames newly read server bytes, tracking ReadyForQuery and ParameterStatus. Fails
    /// only on a frame length below 4 (the backend scanner accepts any tag and size).
    fn scan_server(&mut self) -> Result<(), ProtocolError> {
        let mut copy_started = false;
        loop {
            match self.sscan.next(&self.sbuf[self.s_fwd..])? {
                Scan::NeedMore => break,
                Scan::Partial { len, .. } => self.s_fwd += len,
                Scan::Frame { tag, len } => {
                    if self.hide_server_frame(tag, self.s_fwd..self.s_fwd + len) {
                        let mut tail = self.sbuf.split_off(self.s_fwd);
                        tail.advance(len);
                        self.sbuf.unsplit(tail);
                        continue;
                    }
                    let body = &self.sbuf[self.s_fwd + 5..self.s_fwd + len];
                    if let Some(tracker) = self.tracker.as_mut() {
                        if matches!(tag, b'C' | b'E' | b's' | b'Z') {
                            tracker.server_frame(tag, body);
                        }
                    }
                    match tag {
                        b'Z' => {
                            self.tx_status = body.first().copied().unwrap_or(b'I');
                            self.pending = self.pending.saturating_sub(1);
                            self.requests_answered += 1;
                            self.copy_in = false;
                            if self.pending == 0 {
                                // Nothing in flight: an early end counted now was stray.
                                self.copy_ends_early = 0;
                            }
                        }
                        b'G' => copy_started |= self.note_copy_start(),
                        b'E' => {
                            // An error ends COPY IN on the server's side; what it
                            // expects next is no longer known for sure.
                            self.copy_in = false;
                            self.server_fatal |= is_fatal(body);
                        }
                        b'S' => {
                            if let Some((k, v)) = parse_parameter_status(body) {
                                // One entry per name, so a long session stays bounded.
                                match self.reported.iter_mut().find(|(n, _)| n == k) {
                                    Some(entry) => entry.1 = v.to_string(),
                                    None => self.reported.push((k.to_string(), v.to_string())),
                                }
                            }
                        }
                        _ => {}
                    }
                    self.s_fwd += len;
                }
            }
        }
        if copy_started && self.copy_in && self.terminating {
            // The client left before the server's CopyInResponse arrived.
            self.fail_copy();
        }
        Ok(())
    }
}

/// True for an ErrorResponse body of severity FATAL or PANIC.
fn is_fatal(body: &[u8]) -> bool {
    let fields = messages::parse_error_fields(body);
    matches!(fields.severity.as_str(), "FATAL" | "PANIC")
}

#[cfg(test)]
mod tests;
