//! A server coming and going: attached for a request (with the statements the waiting
//! messages use prepared on it), detached with a record of the state it is in, given
//! back with the settings it reported carried over to the client; and the requests
//! failed here when no server can be had.

use std::io;

use bytes::{Buf, BytesMut};

use super::super::params::is_transferable;
use super::super::pipeline::Batch;
use super::super::track::sqlstate_of;
use super::{Relay, Upstream};
use crate::pool::PooledServer;
use crate::protocol::messages;
use crate::protocol::{Direction, FrameScanner};

impl Relay {
    /// Attaches a server checked out for the waiting request, preparing on it the
    /// statements the waiting messages use.
    pub fn attach_server(&mut self, mut server: PooledServer) {
        let p = &mut self.pipe;
        if let Some(tracker) = p.tracker.as_mut() {
            tracker.pool_waited(server.waited());
        }
        if std::mem::take(&mut p.statements.forget_on_next_server) {
            server.forget_all_prepared();
        }
        if let Some(placement) = p.placement.as_mut() {
            let (w, batch) = (&mut self.wire, p.state.answered);
            let added = placement.place(&p.statements, &mut w.cbuf, 0, w.c_fwd, batch, &mut server);
            w.c_fwd += added;
        }
        self.wire.upstream = Upstream::Attached(server);
    }

    /// Detaches the server, recording for the pool what state it is in.
    pub fn detach_server(&mut self) -> Option<PooledServer> {
        let w = &mut self.wire;
        if !w.has_server() {
            return None;
        }
        let Upstream::Attached(mut server) = std::mem::replace(&mut w.upstream, Upstream::None)
        else {
            return None;
        };
        let state = &self.pipe.state;
        let half_sent = w.c_fwd > 0 || w.cscan.mid_frame() || state.batch == Batch::Open;
        let half_read = w.sbuf.len() > w.s_fwd || w.sscan.mid_frame();
        server.pending = state.pending;
        server.tx_status = state.tx.status();
        if half_sent || half_read || std::mem::take(&mut self.pipe.hidden_closes) > 0 {
            server.poisoned = true;
        }
        // Bytes after the last whole server frame belong to that server only.
        w.sbuf.truncate(w.s_fwd);
        w.sscan = FrameScanner::new(Direction::Backend, usize::MAX);
        Some(server)
    }

    /// Gives the server back (dropping the guard returns or cleans it), after carrying
    /// any settings the client changed over to its own record. A pinned client's server,
    /// or one left with unchecked session state, is reset before anyone else gets it.
    pub fn release_server(&mut self) {
        if let Some(handle) = &self.record.handle {
            handle.set_server(None);
        }
        let Some(mut server) = self.detach_server() else {
            return;
        };
        let p = &mut self.pipe;
        server.needs_reset |= p.state.pinned().is_some() || p.unchecked.any();
        p.unchecked = Default::default();
        for (name, value) in p.reported.drain(..) {
            server.note_parameter(&name, &value);
            if is_transferable(&name.to_ascii_lowercase()) {
                self.record.params.set(&name, &value);
            }
        }
    }

    /// Keeps the server for the rest of the session.
    pub fn pin(&mut self, reason: crate::query::PinReason, what: &str) {
        self.pipe.pin(reason, what);
    }

    /// Answers every waiting request with `error` (an ErrorResponse) and drops the
    /// buffered messages, as PostgreSQL would after a failed request.
    pub fn fail_waiting_requests(&mut self, error: &[u8]) {
        if let Some(tracker) = self.pipe.tracker.as_mut() {
            tracker.fail_waiting(sqlstate_of(error.get(5..).unwrap_or_default()));
        }
        let w = &mut self.wire;
        w.cbuf.advance(w.c_fwd);
        w.c_fwd = 0;
        if matches!(w.upstream, Upstream::Wanted) {
            w.upstream = Upstream::None;
        }
        // A batch begun but not yet synced fails too: one error now, ReadyForQuery when
        // its Sync arrives, as PostgreSQL answers an extended-protocol error.
        let (requests, open_batch) = self.pipe.state.failed_locally();
        let buf = w.client_outbox();
        for _ in 0..requests {
            buf.extend_from_slice(error);
            messages::ready_for_query(buf, b'I');
        }
        if open_batch {
            buf.extend_from_slice(error);
        }
        w.commit_outbox();
    }

    /// Writes everything queued for the client.
    pub async fn flush_client(&mut self) -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let w = &mut self.wire;
        w.client.write_all(&w.sbuf[..w.s_fwd]).await?;
        w.sbuf.advance(w.s_fwd);
        w.s_fwd = 0;
        Ok(())
    }

    /// Closes `names` (statements of clients that left) on the server just attached, in
    /// front of the request about to go: Close messages with no Sync of their own, whose
    /// CloseCompletes are hidden. Closing a statement the server lacks is no error.
    pub fn close_statements(&mut self, names: &[std::sync::Arc<str>]) {
        if names.is_empty() || !self.wire.has_server() {
            return;
        }
        let mut closes = BytesMut::new();
        for name in names {
            closes.extend_from_slice(b"C");
            closes.extend_from_slice(&(4 + 1 + name.len() as u32 + 1).to_be_bytes());
            closes.extend_from_slice(b"S");
            closes.extend_from_slice(name.as_bytes());
            closes.extend_from_slice(b"\0");
        }
        self.wire.splice(0, 0, &closes);
        self.wire.c_fwd += closes.len();
        self.pipe.hidden_closes += names.len() as u32;
        tracing::debug!(
            count = names.len(),
            "closing departed clients' prepared statements"
        );
    }
}
