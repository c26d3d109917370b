//! The pump's buffers and connections: what was read from each side, how much of it is
//! framed and ready to go (`cbuf[..c_fwd]` to the server, `sbuf[..s_fwd]` to the
//! client), and the server the client has, wants, or does without.

use bytes::{Buf, BytesMut};

use super::super::budget::Charge;
use crate::pool::PooledServer;
use crate::protocol::{Direction, FrameScanner};
use crate::tls::ClientStream;

/// The server side of the session.
pub enum Upstream {
    /// No server, and none needed yet.
    None,
    /// A request is ready and waits for a server.
    Wanted,
    Attached(PooledServer),
}

pub struct Wire {
    pub client: ClientStream,
    pub upstream: Upstream,
    pub cbuf: BytesMut,
    pub c_fwd: usize,
    pub cscan: FrameScanner,
    pub sbuf: BytesMut,
    pub s_fwd: usize,
    pub sscan: FrameScanner,
    /// This client's share of the process-wide budget for buffered client bytes.
    pub charge: Option<Charge>,
}

impl Wire {
    pub fn new(client: ClientStream, max_message_size: usize, charge: Option<Charge>) -> Wire {
        Wire {
            client,
            upstream: Upstream::None,
            cbuf: BytesMut::new(),
            c_fwd: 0,
            cscan: FrameScanner::new(Direction::Frontend, max_message_size),
            sbuf: BytesMut::new(),
            s_fwd: 0,
            sscan: FrameScanner::new(Direction::Backend, usize::MAX),
            charge,
        }
    }

    pub fn server(&mut self) -> Option<&mut PooledServer> {
        match &mut self.upstream {
            Upstream::Attached(server) => Some(server),
            _ => None,
        }
    }

    pub fn has_server(&self) -> bool {
        matches!(self.upstream, Upstream::Attached(_))
    }

    /// Nothing framed waits to go to the server and nothing is half-read from it.
    pub fn quiet(&self) -> bool {
        self.c_fwd == 0
            && self.sbuf.len() == self.s_fwd
            && !self.sscan.mid_frame()
            && !self.cscan.mid_frame()
    }

    /// Queues a message built by the proxy for the client. Only valid when no server
    /// frame is half-read (no server attached, or it just failed, or between frames).
    pub fn client_outbox(&mut self) -> &mut BytesMut {
        self.sbuf.truncate(self.s_fwd);
        &mut self.sbuf
    }

    /// Marks everything appended via `client_outbox` as ready to send.
    pub fn commit_outbox(&mut self) {
        self.s_fwd = self.sbuf.len();
    }

    /// Replaces `cbuf[at..at + old_len]` with `new`, moving what follows in place (no
    /// allocation unless the buffer must grow past its capacity).
    pub fn splice(&mut self, at: usize, old_len: usize, new: &[u8]) {
        splice(&mut self.cbuf, at, old_len, new)
    }

    /// Removes `len` bytes at `at` from the client buffer.
    pub fn drop_client(&mut self, at: usize, len: usize) {
        let mut tail = self.cbuf.split_off(at);
        tail.advance(len);
        self.cbuf.unsplit(tail);
    }

    /// Removes `len` bytes at `at` from the server buffer.
    pub fn drop_server(&mut self, at: usize, len: usize) {
        let mut tail = self.sbuf.split_off(at);
        tail.advance(len);
        self.sbuf.unsplit(tail);
    }
}

/// Replaces `buf[at..at + old_len]` with `new`, moving what follows in place.
pub fn splice(buf: &mut BytesMut, at: usize, old_len: usize, new: &[u8]) {
    let (tail, total) = (at + old_len, buf.len());
    if new.len() > old_len {
        let grow = new.len() - old_len;
        buf.resize(total + grow, 0);
        buf.copy_within(tail..total, tail + grow);
    } else if new.len() < old_len {
        let shrink = old_len - new.len();
        buf.copy_within(tail..total, tail - shrink);
        buf.truncate(total - shrink);
    }
    buf[at..at + new.len()].copy_from_slice(new);
}
