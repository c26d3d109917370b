//! The byte pump between one client and (at times) one server: reads, frames, forwards,
//! and obeys what the [pipeline](super::pipeline) says of each whole frame. It knows
//! tags only as frame boundaries.
//!
//! All four directions (client read/write, server read/write) are driven from one poll
//! function, so a client that pipelines megabytes while the server streams results back
//! can never deadlock the two against each other. Bytes are forwarded from the buffer they
//! were read into: `cbuf[..c_fwd]` is framed and ready for the server, `sbuf[..s_fwd]` for
//! the client; what follows is a frame still arriving. A server that can go back to the
//! pool with nothing to check is given back right here, at its ReadyForQuery.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Buf;
use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

mod depart;
mod server;
mod setup;
mod wire;

use super::budget;
use super::buffers;
use super::pipeline::{self, Action, Client, Msg, Pipeline, Reply};
use crate::protocol::tags::Backend;
use crate::protocol::{ProtocolError, Scan};
pub use setup::{Record, Setup};
pub use wire::{splice, Upstream, Wire};

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

/// What the session must do next.
#[derive(Debug)]
pub enum Event {
    /// Framed client bytes are waiting and no server is attached.
    NeedServer,
    /// The attached server finished its transaction, and what it did to the session
    /// must be checked before it goes back (or the client be pinned to it).
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
    pub wire: Wire,
    pub pipe: Pipeline,
    /// The client's registration and settings, updated as servers come and go.
    pub record: Record,
}

impl Relay {
    /// True between requests: nothing outstanding and no transaction open.
    pub fn at_rest(&self) -> bool {
        self.pipe.state.pending == 0
            && self.pipe.state.tx == pipeline::Tx::Idle
            && self.wire.c_fwd == 0
            && self.wire.cbuf.is_empty()
    }

    /// True once the client has left and only the server's answers are awaited.
    pub fn departing(&self) -> bool {
        self.pipe.state.client == Client::Leaving
    }

    /// Releases idle memory: an idle client costs no buffers.
    pub fn shrink(&mut self) {
        let w = &mut self.wire;
        if w.cbuf.is_empty() && w.cbuf.capacity() > 0 {
            buffers::give(std::mem::take(&mut w.cbuf));
            if let Some(charge) = w.charge.as_mut() {
                charge.fit(0);
            }
        }
        if w.sbuf.is_empty() && w.sbuf.capacity() > 0 {
            buffers::give(std::mem::take(&mut w.sbuf));
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
                if matches!(self.wire.upstream, Upstream::None) {
                    self.shrink();
                }
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn due_event(&mut self) -> Option<Event> {
        let (w, state) = (&self.wire, &self.pipe.state);
        if state.client == Client::Leaving && state.pending == 0 && w.s_fwd == 0 {
            return Some(Event::ClientDone);
        }
        match w.upstream {
            Upstream::Wanted => return Some(Event::NeedServer),
            Upstream::None => return None,
            Upstream::Attached(_) => {}
        }
        if !(state.pools_per_transaction() && state.idle() && w.quiet()) {
            return None;
        }
        if self.pipe.unchecked.any() {
            return Some(Event::ServerIdle);
        }
        self.release_server();
        None
    }

    /// Writes whatever is ready in both directions. Returns whether anything moved.
    fn poll_writes(&mut self, cx: &mut Context<'_>) -> Result<bool, RelayError> {
        let mut progress = false;
        let w = &mut self.wire;
        if self.pipe.state.client == Client::Leaving && w.s_fwd > 0 {
            // The client said goodbye: what the server still sends has no reader.
            w.sbuf.advance(w.s_fwd);
            w.s_fwd = 0;
            progress = true;
        }
        if w.s_fwd > 0 {
            if let Poll::Ready(r) = Pin::new(&mut w.client).poll_write(cx, &w.sbuf[..w.s_fwd]) {
                let n = r.map_err(RelayError::Client)?;
                if n == 0 {
                    return Err(RelayError::Client(io::ErrorKind::WriteZero.into()));
                }
                w.sbuf.advance(n);
                w.s_fwd -= n;
                progress = true;
            }
        }
        if let Upstream::Attached(server) = &mut w.upstream {
            if w.c_fwd > 0 {
                if let Poll::Ready(r) =
                    Pin::new(&mut server.stream).poll_write(cx, &w.cbuf[..w.c_fwd])
                {
                    let n = r.map_err(RelayError::Server)?;
                    if n == 0 {
                        return Err(RelayError::ServerClosed);
                    }
                    w.cbuf.advance(n);
                    w.c_fwd -= n;
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
        let retrying = (self.pipe.placement.as_ref()).is_some_and(|p| p.retrying.is_some());
        let w = &mut self.wire;
        if self.pipe.state.client == Client::Leaving || w.c_fwd >= BUFFER_HIGH_WATER || retrying {
            return Poll::Pending;
        }
        if w.cbuf.capacity() == 0 {
            // Idle client: wait for readiness before spending a buffer on it.
            match w.client.poll_read_ready(cx) {
                Poll::Ready(Ok(())) => w.cbuf = buffers::take(),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(RelayError::Client(e))),
                Poll::Pending => return Poll::Pending,
            }
        } else if w.cbuf.is_empty() && w.cbuf.capacity() > budget::FREE_BYTES {
            // A big message went through: its memory goes back now, not at idle.
            w.cbuf = buffers::take();
        } else if w.cbuf.capacity() - w.cbuf.len() < 512 {
            w.cbuf.reserve(READ_CHUNK);
        }
        if let Some(charge) = w.charge.as_mut() {
            if !charge.fit(w.cbuf.capacity()) {
                let limit = charge.limit();
                return Poll::Ready(Err(RelayError::OutOfMemory { limit }));
            }
        }
        match poll_read_buf(Pin::new(&mut w.client), cx, &mut w.cbuf) {
            Poll::Ready(Ok(0)) if self.pipe.copy.copy_in && !w.cscan.mid_frame() => {
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
        let w = &mut self.wire;
        let Upstream::Attached(server) = &mut w.upstream else {
            return Ok(());
        };
        if w.s_fwd >= BUFFER_HIGH_WATER {
            return Ok(());
        }
        if w.sbuf.capacity() == 0 {
            w.sbuf = buffers::take();
        } else if w.sbuf.capacity() - w.sbuf.len() < 1024 {
            w.sbuf.reserve(READ_CHUNK * 2);
        }
        match poll_read_buf(Pin::new(&mut server.stream), cx, &mut w.sbuf) {
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

    /// Frames newly read client bytes and does what the pipeline says of each.
    fn scan_client(&mut self) -> Result<(), ProtocolError> {
        loop {
            let w = &mut self.wire;
            let (tag, len) = match w.cscan.next(&w.cbuf[w.c_fwd..])? {
                Scan::NeedMore => break,
                Scan::Partial { len, start } => {
                    match pipeline::client_piece(&mut self.pipe, w, start, len) {
                        Some(len) => w.c_fwd += len,
                        None => w.drop_client(w.c_fwd, len),
                    }
                    continue;
                }
                Scan::Frame { tag, len } => (tag, len),
            };
            let mut msg = Msg::new(tag, w.c_fwd, len);
            match pipeline::client(&mut self.pipe, w, &mut msg) {
                Action::Forward => w.c_fwd = msg.at + msg.len,
                Action::NeedsServer => {
                    w.c_fwd = msg.at + msg.len;
                    w.upstream = Upstream::Wanted;
                }
                Action::Hide => w.drop_client(msg.at, msg.len),
                Action::Answer(bytes) => {
                    w.drop_client(msg.at, msg.len);
                    w.client_outbox().extend_from_slice(&bytes);
                    w.commit_outbox();
                }
            }
            if self.pipe.state.client == Client::Leaving {
                // Terminate: nothing after it is read.
                self.wire.cbuf.truncate(self.wire.c_fwd);
                self.depart();
                break;
            }
        }
        let w = &mut self.wire;
        if matches!(w.upstream, Upstream::None) && (w.c_fwd > EARLY_CHECKOUT || w.cscan.mid_frame())
        {
            w.upstream = Upstream::Wanted;
        }
        Ok(())
    }

    /// Frames newly read server bytes and does what the pipeline says of each. Fails
    /// only on a frame length below 4 (the backend scanner accepts any tag and size).
    fn scan_server(&mut self) -> Result<(), ProtocolError> {
        self.pipe.copy.started = false;
        loop {
            let w = &mut self.wire;
            match w.sscan.next(&w.sbuf[w.s_fwd..])? {
                Scan::NeedMore => break,
                Scan::Partial { len, .. } => w.s_fwd += len,
                Scan::Frame { tag, len } => {
                    let reply = Reply {
                        tag: Backend::of(tag),
                        at: w.s_fwd,
                        len,
                    };
                    match pipeline::server(&mut self.pipe, w, &reply) {
                        Action::Hide => w.drop_server(reply.at, len),
                        _ => w.s_fwd += len,
                    }
                }
            }
        }
        let copy = &self.pipe.copy;
        if copy.started && copy.copy_in && self.departing() {
            // The client left before the server's CopyInResponse arrived.
            self.fail_copy();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
