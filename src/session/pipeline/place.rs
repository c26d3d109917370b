//! Step 5 (client): the message is on its way. Its request is counted (the batch state
//! changes here, at Sync), a statement the attached server lacks is prepared on it
//! first, and a message the server must hear now asks for a server when none is there.

use super::state::Tx;
use super::{Action, Msg, Pipeline};
use crate::protocol::tags::Frontend;
use crate::session::relay::{Upstream, Wire};

pub fn client(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    let batch = p.state.framed;
    if let Some(placement) = p.placement.as_mut() {
        let alone = p.state.pending == 0 && p.state.tx == Tx::Idle;
        let frame = &w.cbuf[msg.at..msg.at + msg.len];
        placement.retries.keep(batch, frame, alone);
    }
    if msg.tag.ends_request() {
        p.copy.note_request_kind(batch, msg.tag == Frontend::Query);
    }
    p.state.sent(msg.tag);
    if matches!(msg.tag, Frontend::CopyDone | Frontend::CopyFail) {
        p.copy.note_end();
    }
    let server = match &mut w.upstream {
        Upstream::Attached(server) => server,
        _ if msg.tag.flushes() => return Action::NeedsServer,
        _ => return Action::Forward,
    };
    if let Some(placement) = p.placement.as_mut() {
        if std::mem::take(&mut p.statements.forget_on_next_server) {
            server.forget_all_prepared();
        }
        let stmt = msg.stmt.as_ref();
        msg.at += placement.place_frame(&mut w.cbuf, msg.at, msg.tag, stmt, batch, server);
    }
    Action::Forward
}

/// The first piece of a streamed Bind (`len` bytes at `c_fwd`, renamed already): its
/// statement prepared first on the attached server if it lacks it. Returns the bytes
/// inserted before it.
pub fn streamed_bind(p: &mut Pipeline, w: &mut Wire, len: usize) -> usize {
    let (Some(placement), Upstream::Attached(server)) = (p.placement.as_mut(), &mut w.upstream)
    else {
        return 0;
    };
    let at = w.c_fwd;
    let batch = p.state.framed;
    placement.place(&p.statements, &mut w.cbuf, at, at + len, batch, server)
}
