//! Step 1 (server): answers the client must not see, because the proxy added what they
//! answer: CloseCompletes of departed clients' statements, ParseCompletes of Parses put
//! before a Bind, and the failed attempt of a request retried after its cached plan
//! went stale (whose resend goes out at that attempt's ReadyForQuery).

use super::{Action, Pipeline, Reply};
use crate::protocol::tags::Backend;
use crate::session::relay::{Upstream, Wire};

pub fn server(p: &mut Pipeline, w: &mut Wire, reply: &Reply) -> Action {
    let (Some(placement), Upstream::Attached(server)) = (p.placement.as_mut(), &mut w.upstream)
    else {
        return Action::Forward;
    };
    if reply.tag == Backend::CloseComplete && p.hidden_closes > 0 {
        // Closes the proxy put first on this server: their answers come first.
        p.hidden_closes -= 1;
        return Action::Hide;
    }
    let batch = p.state.answered;
    if placement.retrying.is_some() {
        if reply.tag == Backend::ReadyForQuery {
            placement.retrying = None;
            if let Some(resend) = placement.resend.take() {
                // Nothing was read from the client meanwhile: the retry goes first.
                let tail = w.cbuf.split_off(0);
                w.cbuf.extend_from_slice(&resend);
                w.cbuf.unsplit(tail);
                w.c_fwd += resend.len();
            }
        }
        return Action::Hide;
    }
    match reply.tag {
        Backend::ParseComplete if placement.parse_complete() => Action::Hide,
        Backend::ErrorResponse => {
            let body = &w.sbuf[reply.at + 5..reply.at + reply.len];
            let clear = w.c_fwd == 0 && !w.cscan.mid_frame();
            let last = p.state.framed;
            if clear && placement.begin_retry(&mut p.statements, batch, last, body, server) {
                return Action::Hide;
            }
            placement.error(batch, server);
            Action::Forward
        }
        Backend::ReadyForQuery => {
            placement.retries.answered(batch);
            Action::Forward
        }
        tag => {
            if tag.is_progress() {
                placement.retries.progress();
            }
            Action::Forward
        }
    }
}
