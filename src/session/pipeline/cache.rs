//! The result cache's steps (see [`crate::cache`]).
//!
//! Client side, after `answer`: a simple-protocol Query of one SELECT, outside a
//! transaction, with nothing in flight, is looked up; a hit is answered here with the
//! stored RowDescription/DataRow/CommandComplete bytes and a ReadyForQuery built from
//! the live transaction state, and never asks for a server. Every statement is also
//! classified: writes are remembered for the end of the transaction, and a statement
//! that changes settings, role or temporary objects makes the session bypass for good.
//!
//! Server side, after `track`: the response of a miss is collected (bounded by
//! `max_entry_bytes`) and stored at its ReadyForQuery if it was one whole result (the
//! CommandComplete row count matches the DataRows seen: a row streamed in pieces is
//! never half stored) with no error or notice. At a ReadyForQuery `I`, the writes of
//! the transaction are invalidated before the client sees it.

use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::state::Tx;
use super::{Action, Msg, Pipeline, Reply};
use crate::cache::reason::Bypass;
use crate::cache::session::{effect, Effect, Fill, SessionCache};
use crate::cache::{Outcome, Request};
use crate::protocol::messages;
use crate::protocol::tags::{Backend, Frontend};
use crate::session::relay::Wire;
use crate::session::statements::Statements;

pub fn lookup(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    let Some(sc) = p.cache.as_mut() else {
        return Action::Forward;
    };
    if msg.tag != Frontend::Query {
        note_extended(sc, &p.statements, w, msg);
        return Action::Forward;
    }
    let Some(query) = msg.query.clone() else {
        sc.note(&Effect::Database);
        return Action::Forward;
    };
    let parts: Vec<_> = query.parts().collect();
    let effects: Vec<Effect> = parts.iter().map(|part| effect(&part.shape.info)).collect();
    for e in &effects {
        sc.note(e);
    }
    if parts.len() > 1 {
        // Several statements: what they write together is not worth proving.
        if effects.iter().any(|e| *e != Effect::Read) {
            sc.note(&Effect::Database);
        }
        return Action::Forward;
    }
    let ([Effect::Read], [part]) = (effects.as_slice(), parts.as_slice()) else {
        return Action::Forward;
    };
    let info = part.shape.info.clone();
    if info.command != crate::query::Command::Select {
        return Action::Forward;
    }
    let bypass = match (p.state.tx, p.state.pinned()) {
        (Tx::InTransaction | Tx::Failed, _) => Some(Bypass::Transaction),
        (_, Some(_)) => Some(Bypass::SessionState),
        _ => sc.bypass,
    };
    if let Some(reason) = bypass {
        sc.cache.stats.bypass(reason);
        return Action::Forward;
    }
    // Answering now must not overtake anything in flight.
    let quiet = p.state.pending == 0 && w.c_fwd == 0 && w.s_fwd == w.sbuf.len();
    if !quiet || sc.fill.is_some() {
        return Action::Forward;
    }
    let body = msg.body(w);
    let text = body.split(|&b| b == 0).next().unwrap_or_default();
    match std::str::from_utf8(text) {
        Ok(text) => select(sc, text, info.fingerprint, p.state.tx),
        Err(_) => Action::Forward,
    }
}

/// Extended-protocol and function-call messages: not cached (yet), but their writes
/// and settings changes count.
fn note_extended(sc: &mut SessionCache, statements: &Statements, w: &Wire, msg: &Msg) {
    match msg.tag {
        // Writes count when executed; settings changes from now on.
        Frontend::Parse => {
            if let Some(stmt) = &msg.stmt {
                if effect(&stmt.info) == Effect::Session {
                    sc.note(&Effect::Session);
                }
            }
        }
        Frontend::Execute => {
            let mut pos = 0;
            let portal = crate::protocol::read_cstr(msg.body(w), &mut pos).unwrap_or("");
            let e = match statements.portals.get(portal) {
                Some(portal) => effect(&portal.stmt.info),
                None => Effect::Database,
            };
            sc.note(&e);
        }
        Frontend::FunctionCall => sc.note(&Effect::Database),
        _ => {}
    }
}

/// Looks up one eligible simple-protocol SELECT.
fn select(sc: &mut SessionCache, text: &str, fingerprint: u64, tx: Tx) -> Action {
    let req = Request {
        database: &sc.database,
        session_user: &sc.user,
        current_role: &sc.user,
        search_path: &sc.search_path,
        settings: sc.settings,
        text,
        fingerprint,
        param_types: &[],
        param_formats: &[],
        params: &[],
        result_formats: &[],
    };
    match sc.cache.lookup(&req) {
        Outcome::Hit(bytes) => {
            let mut out = BytesMut::with_capacity(bytes.len() + 6);
            out.extend_from_slice(&bytes);
            messages::ready_for_query(&mut out, tx.status());
            Action::Answer(out.freeze())
        }
        Outcome::Miss(ticket) => {
            sc.fill = Some(Fill {
                ticket,
                bytes: BytesMut::new(),
                rows: 0,
                started: Instant::now(),
                spoiled: false,
                complete: false,
            });
            Action::Forward
        }
        // A step cannot wait: a follower goes to the server itself.
        Outcome::Follow(..) | Outcome::Skip => Action::Forward,
    }
}

pub fn fill(p: &mut Pipeline, w: &mut Wire, reply: &Reply) -> Action {
    let Some(sc) = p.cache.as_mut() else {
        return Action::Forward;
    };
    if reply.tag == Backend::ReadyForQuery {
        let status = reply.body(w).first().copied().unwrap_or(b'E');
        if let Some(fill) = sc.fill.take() {
            let whole = fill.complete && !fill.spoiled && status == b'I';
            let response = whole.then(|| Bytes::from(fill.bytes));
            sc.cache.fill(fill.ticket, response, fill.started.elapsed());
        }
        if status == b'I' {
            sc.apply_writes();
        }
        return Action::Forward;
    }
    let Some(fill) = sc.fill.as_mut() else {
        return Action::Forward;
    };
    let frame = &w.sbuf[reply.at..reply.at + reply.len];
    let max = sc.cache.config().max_entry_bytes;
    match reply.tag {
        Backend::Other(b'T') | Backend::DataRow if !fill.complete => {
            fill.rows += u64::from(reply.tag == Backend::DataRow);
            if fill.bytes.len() + frame.len() > max {
                fill.spoiled = true;
                fill.bytes = BytesMut::new();
            } else if !fill.spoiled {
                fill.bytes.extend_from_slice(frame);
            }
        }
        Backend::CommandComplete if !fill.complete => {
            let tag = reply.body(w).split(|&b| b == 0).next().unwrap_or_default();
            let counted = std::str::from_utf8(tag)
                .ok()
                .and_then(|t| t.strip_prefix("SELECT "))
                .and_then(|n| n.parse::<u64>().ok());
            fill.complete = counted == Some(fill.rows);
            fill.spoiled |= !fill.complete || fill.bytes.len() + frame.len() > max;
            if !fill.spoiled {
                fill.bytes.extend_from_slice(frame);
            }
        }
        _ => fill.spoiled = true,
    }
    Action::Forward
}
