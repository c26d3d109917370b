//! Step 3 (server): what the session learns from the server's messages. ReadyForQuery
//! is the one place the transaction state changes; ParameterStatus values are kept for
//! the client's record; COPY IN is followed so a departing client can end it; a FATAL
//! error marks the server as closing.

use super::{Action, Pipeline, Reply};
use crate::protocol::messages::{self, parse_parameter_status};
use crate::protocol::tags::Backend;
use crate::session::relay::Wire;

pub fn server(p: &mut Pipeline, w: &mut Wire, reply: &Reply) -> Action {
    match reply.tag {
        Backend::ReadyForQuery => {
            let status = reply.body(w).first().copied().unwrap_or(b'I');
            p.state.ready(status);
            p.copy.copy_in = false;
            if p.state.pending == 0 {
                // Nothing in flight: an early end counted now was stray.
                p.copy.ends_early = 0;
                if status == b'I' {
                    p.statements.portals.end_of_transaction();
                }
            }
        }
        Backend::CopyInResponse => {
            let simple = p.copy.copying_request_simple(&p.state);
            p.copy.note_start(simple);
        }
        Backend::ErrorResponse => {
            // An error ends COPY IN on the server's side; what it expects next is no
            // longer known for sure.
            p.copy.copy_in = false;
            p.server_fatal |= is_fatal(reply.body(w));
        }
        Backend::ParameterStatus => {
            if let Some((k, v)) = parse_parameter_status(reply.body(w)) {
                // One entry per name, so a long session stays bounded.
                match p.reported.iter_mut().find(|(n, _)| n == k) {
                    Some(entry) => entry.1 = v.to_string(),
                    None => p.reported.push((k.to_string(), v.to_string())),
                }
            }
        }
        _ => {}
    }
    Action::Forward
}

/// True for an ErrorResponse body of severity FATAL or PANIC.
fn is_fatal(body: &[u8]) -> bool {
    let fields = messages::parse_error_fields(body);
    matches!(fields.severity.as_str(), "FATAL" | "PANIC")
}

/// COPY FROM STDIN as the session follows it.
#[derive(Debug, Default)]
pub struct Copy {
    /// The server is in COPY FROM STDIN and the client has not ended it (CopyDone or
    /// CopyFail): a departing client must end it for the server.
    pub copy_in: bool,
    /// A CopyInResponse arrived in the frames just scanned.
    pub started: bool,
    /// For the COPY IN in progress: whether a simple Query started it (`None`: unknown).
    pub simple: Option<bool>,
    /// CopyDone/CopyFail frames the client sent before the server's CopyInResponse (a
    /// client that pipelines its COPY data): that COPY is ended already.
    pub ends_early: u32,
    /// Bit `n % 64` is set when request `n` was a simple Query (not a Sync).
    simple_requests: u64,
}

impl Copy {
    /// The client ended a COPY IN (CopyDone or CopyFail), perhaps before the server
    /// said it started.
    pub fn note_end(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else {
            self.ends_early += 1;
        }
    }

    /// The server's CopyInResponse: the COPY is open unless the client ended it in
    /// advance.
    fn note_start(&mut self, simple: Option<bool>) {
        if self.ends_early > 0 {
            self.ends_early -= 1;
            return;
        }
        self.copy_in = true;
        self.started = true;
        self.simple = simple;
    }

    /// Records whether request number `framed` (being framed now) is a simple Query.
    pub fn note_request_kind(&mut self, framed: u64, simple: bool) {
        let bit = 1u64 << (framed % 64);
        if simple {
            self.simple_requests |= bit;
        } else {
            self.simple_requests &= !bit;
        }
    }

    /// Whether the request the server answers now (the oldest unanswered one, or the
    /// unsynced batch when none is pending) was a simple Query; `None` when more
    /// requests are in flight than are remembered.
    fn copying_request_simple(&self, state: &super::State) -> Option<bool> {
        if state.pending == 0 {
            return Some(false);
        }
        if state.pending > 64 {
            return None;
        }
        let bit = 1u64 << (state.answered % 64);
        Some(self.simple_requests & bit != 0)
    }
}
