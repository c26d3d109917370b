//! Step 1 (client): which statement a message is about, resolved once in the session's
//! registry; named statements are renamed for the server in transaction mode.

use super::{Action, Msg, Pipeline};
use crate::protocol::tags::Frontend;
use crate::session::relay::Wire;
use crate::session::statements::{Analysis, Statements};

pub fn client(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    let keep_values = p.tracker.as_ref().is_some_and(|t| t.keeps_values());
    let analysis = Analysis {
        analyzer: &p.analyzer,
        watch: p.state.pools_per_transaction(),
    };
    let body = msg.body(w);
    if resolve(&mut p.statements, &analysis, msg, body, keep_values) {
        let new = p.statements.rewritten();
        w.splice(msg.at, msg.len, new);
        msg.len = new.len();
    }
    Action::Forward
}

/// Finds (or defines) the statement or Query text `msg` is about; true when its frame
/// was renamed into [`Statements::rewritten`].
pub fn resolve(
    statements: &mut Statements,
    analysis: &Analysis<'_>,
    msg: &mut Msg,
    body: &[u8],
    keep_values: bool,
) -> bool {
    match msg.tag {
        Frontend::Query => {
            // A Query without its terminating NUL is malformed: the server refuses it,
            // so it names no statement (the tracker must not count one).
            msg.query = match body.iter().position(|&b| b == 0) {
                Some(end) => statements.texts.resolve(&body[..end], analysis),
                None => None,
            };
            false
        }
        Frontend::Parse => match statements.parse(body, analysis) {
            Some((stmt, renamed)) => {
                msg.stmt = Some(stmt);
                renamed
            }
            None => false,
        },
        Frontend::Bind => {
            let (stmt, renamed) = statements.bind(body, keep_values);
            msg.stmt = stmt;
            renamed
        }
        Frontend::Describe | Frontend::Close => {
            let (stmt, renamed) = statements.describe_or_close(tag_byte(msg.tag), body);
            msg.stmt = stmt;
            renamed
        }
        _ => false,
    }
}

fn tag_byte(tag: Frontend) -> u8 {
    match tag {
        Frontend::Close => b'C',
        _ => b'D',
    }
}

/// The first piece of a Bind too big to wait for, `len` bytes at `c_fwd`: its portal
/// noted and its statement renamed. Returns the piece's length afterwards (the frame's
/// remaining bytes are unchanged).
pub fn streamed_bind(p: &mut Pipeline, w: &mut Wire, len: usize) -> usize {
    let at = w.c_fwd;
    let renamed = (p.statements).rewrite_bind_start(&w.cbuf[at..at + 5], &w.cbuf[at + 5..at + len]);
    match renamed {
        Some((start, replaced)) => {
            w.splice(at, 5 + replaced, &start);
            len - 5 - replaced + start.len()
        }
        None => len,
    }
}
