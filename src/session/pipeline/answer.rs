//! Step 2 (client): messages answered by the proxy itself, with no server: Terminate,
//! messages of a batch being discarded after an error the proxy reported, requests of
//! named Parses only, and SQL `DEALLOCATE` of a renamed statement.

use bytes::{Buf, Bytes, BytesMut};

use super::state::{Batch, Client, Tx};
use super::{Action, Msg, Pipeline};
use crate::protocol::messages;
use crate::protocol::tags::Frontend;
use crate::session::relay::{Upstream, Wire};
use crate::session::statements::Deallocate;

/// ReadyForQuery, idle.
const READY_IDLE: &[u8] = b"Z\0\0\0\x05I";
const PARSE_COMPLETE: &[u8] = b"1\0\0\0\x04";

pub fn client(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    match msg.tag {
        Frontend::Terminate => {
            p.state.client = Client::Leaving;
            Action::Hide
        }
        Frontend::Sync if p.state.batch == Batch::Discarding => {
            p.state.discard_done();
            Action::Answer(Bytes::from_static(READY_IDLE))
        }
        _ if p.state.batch == Batch::Discarding => Action::Hide,
        Frontend::Sync => parse_only(p, w, msg),
        Frontend::Query => deallocate(p, w, msg),
        _ => Action::Forward,
    }
}

/// A request of named Parses only, outside a transaction and with no server: the
/// statements are remembered (prepared on a server at their first Bind) and the request
/// is answered here, ParseComplete each and ReadyForQuery. A client that prepares
/// synchronously (pgbench -M prepared) must not wait for a server while another of its
/// connections holds one.
fn parse_only(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    let quiet = p.placement.is_some()
        && !w.has_server()
        && p.state.pending == 0
        && p.state.tx == Tx::Idle
        && w.c_fwd > 0
        && w.s_fwd == w.sbuf.len();
    if !quiet {
        return Action::Forward;
    }
    let Some(parses) = crate::protocol::frame::named_parses(&w.cbuf[..w.c_fwd]) else {
        return Action::Forward;
    };
    // The Parses go with their Sync.
    w.cbuf.advance(w.c_fwd);
    msg.at -= w.c_fwd;
    w.c_fwd = 0;
    if matches!(w.upstream, Upstream::Wanted) {
        w.upstream = Upstream::None;
    }
    p.state.answered_locally();
    let mut out = BytesMut::with_capacity(parses * 5 + 6);
    for _ in 0..parses {
        out.extend_from_slice(PARSE_COMPLETE);
    }
    out.extend_from_slice(READY_IDLE);
    Action::Answer(out.freeze())
}

/// SQL `DEALLOCATE name` of a statement the client prepared with the protocol (renamed,
/// and perhaps on other servers): forgotten and answered here when nothing is in
/// flight. `DEALLOCATE ALL` goes to the server; the servers' records are then cleared as
/// they are met, so statements are prepared again where needed.
fn deallocate(p: &mut Pipeline, w: &mut Wire, msg: &Msg) -> Action {
    if p.placement.is_none() {
        return Action::Forward;
    }
    let Some(target) = msg.query.as_ref().and_then(|q| q.deallocate.as_ref()) else {
        return Action::Forward;
    };
    let name = match target {
        Deallocate::All => {
            p.statements.forget_all();
            return Action::Forward;
        }
        Deallocate::Name(name) => name,
    };
    let quiet =
        p.state.pending == 0 && p.state.tx != Tx::Failed && w.c_fwd == 0 && w.s_fwd == w.sbuf.len();
    if !quiet || !p.statements.forget_name(name) {
        return Action::Forward;
    }
    let mut out = BytesMut::new();
    messages::command_complete(&mut out, "DEALLOCATE");
    messages::ready_for_query(&mut out, p.state.tx.status());
    Action::Answer(out.freeze())
}
