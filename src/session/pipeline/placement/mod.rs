//! Named prepared statements in transaction mode: a client's statement names are
//! renamed to names of its own on the server (the registry,
//! [`crate::session::statements`]), and a statement is prepared
//! again, right before the Bind or Describe that needs it, on whichever server the
//! client lands on. A server keeps at most `max_prepared_statements` of them, least
//! recently used closed first (at checkout, when the server is idle).
//!
//! Why names per client and not shared by text: a client's own Parse and Close then
//! always reach the server, renamed, and are answered by it; the only responses the
//! proxy must hide are the ParseCompletes of the Parses it adds. To find those among the
//! server's answers, every Parse sent is remembered in order with the request (batch)
//! it belongs to: ParseCompletes arrive in the same order, and an ErrorResponse makes
//! the server skip the rest of its batch, Parses included.

mod retry;

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;

use crate::pool::ServerConn;
use crate::protocol::read_cstr;
use crate::protocol::tags::Frontend;
use crate::session::statements::{statement_used, Prepared, Statements};
pub use retry::Retries;

/// A ParseComplete the server owes.
struct Expected {
    /// The request (counted from the session's first) the Parse belongs to.
    batch: u64,
    /// The proxy added this Parse: its ParseComplete is not for the client.
    hidden: bool,
    /// The server name the Parse prepares, to forget if it never completes.
    name: Option<Arc<str>>,
}

#[derive(Default)]
pub struct Placement {
    expected: VecDeque<Expected>,
    /// Copies of requests in flight, for a retry after a stale cached plan.
    pub retries: Retries,
    /// The request being retried: the server's answers to the failed attempt (up to its
    /// ReadyForQuery) are hidden, then `resend` goes out.
    pub retrying: Option<u64>,
    pub resend: Option<BytesMut>,
}

impl Placement {
    /// Readies the whole frames in `buf[start..end]` (not yet sent, starting at a frame
    /// boundary, the first in request `batch`) for `server`: notes every Parse, and puts
    /// the Parse of a statement the server lacks right before the Bind or Describe that
    /// uses it. Returns how many bytes were inserted.
    pub fn place(
        &mut self,
        statements: &Statements,
        buf: &mut BytesMut,
        start: usize,
        end: usize,
        mut batch: u64,
        server: &mut ServerConn,
    ) -> usize {
        let (mut pos, mut end, mut inserted) = (start, end, 0);
        while let Some(len) = frame_at(buf, pos, end) {
            let tag = buf[pos];
            let whole = pos + len <= end;
            // A Bind streaming in (too big to wait for) has its names at its front.
            if !whole && tag != b'B' {
                break;
            }
            let body = &buf[pos + 5..(pos + len).min(end)];
            match tag {
                b'P' => {
                    let name = parse_name(body).map(Arc::<str>::from);
                    if let Some(name) = &name {
                        server.note_prepared(name.clone());
                    }
                    let hidden = false;
                    self.expected.push_back(Expected {
                        batch,
                        hidden,
                        name,
                    });
                }
                b'B' | b'D' => {
                    let missing = statement_used(tag, body)
                        .filter(|used| !server.touch_prepared(used))
                        .and_then(|used| statements.by_server_name(used))
                        .cloned();
                    if let Some(statement) = missing {
                        let tail = buf.split_off(pos);
                        buf.extend_from_slice(&statement.parse);
                        buf.unsplit(tail);
                        let added = statement.parse.len();
                        (pos, end, inserted) = (pos + added, end + added, inserted + added);
                        server.note_prepared(statement.server_name.clone());
                        self.expected.push_back(Expected {
                            batch,
                            hidden: true,
                            name: Some(statement.server_name.clone()),
                        });
                    }
                }
                b'Q' | b'S' | b'F' => batch += 1,
                _ => {}
            }
            if !whole {
                break;
            }
            pos += len;
        }
        inserted
    }

    /// Readies one whole client frame at `buf[at..]` of request `batch`, its statement
    /// already resolved: a Parse is noted; before a Bind or Describe of a renamed
    /// statement `server` lacks, its Parse is put. Returns how many bytes were inserted.
    pub fn place_frame(
        &mut self,
        buf: &mut BytesMut,
        at: usize,
        tag: Frontend,
        stmt: Option<&Arc<Prepared>>,
        batch: u64,
        server: &mut ServerConn,
    ) -> usize {
        match tag {
            Frontend::Parse => {
                let name = stmt
                    .filter(|s| !s.server_name.is_empty())
                    .map(|s| s.server_name.clone());
                if let Some(name) = &name {
                    server.note_prepared(name.clone());
                }
                let hidden = false;
                self.expected.push_back(Expected {
                    batch,
                    hidden,
                    name,
                });
                0
            }
            Frontend::Bind | Frontend::Describe => {
                let Some(stmt) = stmt.filter(|s| !s.parse.is_empty()) else {
                    return 0;
                };
                if server.touch_prepared(&stmt.server_name) {
                    return 0;
                }
                let tail = buf.split_off(at);
                buf.extend_from_slice(&stmt.parse);
                buf.unsplit(tail);
                server.note_prepared(stmt.server_name.clone());
                self.expected.push_back(Expected {
                    batch,
                    hidden: true,
                    name: Some(stmt.server_name.clone()),
                });
                stmt.parse.len()
            }
            _ => 0,
        }
    }

    /// The ErrorResponse `error` for request `batch` (the last one framed is
    /// `last_framed`): when it is a stale cached plan and the request can safely run
    /// again, prepares the retry (the statement under a fresh name, then the request)
    /// and returns true; the caller hides this attempt's answers and sends `resend`.
    pub fn begin_retry(
        &mut self,
        statements: &mut Statements,
        batch: u64,
        last_framed: u64,
        error: &[u8],
        server: &mut ServerConn,
    ) -> bool {
        let Some(retry) = self.retries.take_retry(batch, last_framed, error) else {
            return false;
        };
        let Some(fresh) = statements.reprepare(&retry.stale) else {
            return false;
        };
        // The failed attempt's owed Parses never run; the fresh one is owed next.
        self.error(batch, server);
        let mut resend = BytesMut::from(&fresh.parse[..]);
        resend.extend_from_slice(&retry.renamed(&fresh.server_name));
        server.note_prepared(fresh.server_name.clone());
        self.expected.push_back(Expected {
            batch,
            hidden: true,
            name: Some(fresh.server_name.clone()),
        });
        tracing::info!(statement = %retry.stale, "cached plan went stale; preparing the statement again and retrying the request");
        self.retrying = Some(batch);
        self.resend = Some(resend);
        true
    }

    /// A ParseComplete from the server: true when it answers a Parse the proxy added
    /// (the client must not see it).
    pub fn parse_complete(&mut self) -> bool {
        self.expected.pop_front().is_some_and(|e| e.hidden)
    }

    /// An ErrorResponse while the server answers request `batch`: it skips the rest of
    /// that request, so the Parses still owed there never run.
    pub fn error(&mut self, batch: u64, server: &mut ServerConn) {
        while self.expected.front().is_some_and(|e| e.batch <= batch) {
            if let Some(name) = self.expected.pop_front().and_then(|e| e.name) {
                server.forget_prepared(&name);
            }
        }
    }
}

/// The length of the frame whose header is at `pos` (it may end after `end`).
fn frame_at(buf: &[u8], pos: usize, end: usize) -> Option<usize> {
    let header = buf.get(pos..(pos + 5).min(end))?;
    let [_, a, b, c, d] = header else {
        return None;
    };
    let len = 1 + u32::from_be_bytes([*a, *b, *c, *d]) as usize;
    (len >= 5).then_some(len)
}

fn parse_name(body: &[u8]) -> Option<&str> {
    let mut pos = 0;
    read_cstr(body, &mut pos).filter(|n| !n.is_empty())
}
