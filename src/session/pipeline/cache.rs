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
use crate::cache::session::{effect, Effect, Fill};
use crate::cache::{Outcome, Request};
use crate::protocol::messages;
use crate::protocol::tags::{Backend, Frontend};
use crate::session::relay::Wire;

pub fn lookup(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    let Some(sc) = p.cache.as_mut() else {
        return Action::Forward;
    };
    match msg.tag {
        Frontend::Query => {}
        Frontend::Parse => {
            if let Some(stmt) = &msg.stmt {
                let e = effect(&stmt.info);
                // Writes count when executed; settings changes from now on.
                if e == Effect::Session {
                    sc.note(&e);
                }
            }
            return Action::Forward;
        }
        Frontend::Execute => {
            let mut pos = 0;
            let portal = crate::protocol::read_cstr(msg.body(w), &mut pos).unwrap_or("");
            let e = match p.statements.portals.get(portal) {
                Some(portal) => effect(&portal.stmt.info),
                None => Effect::Database,
            };
            sc.note(&e);
            return Action::Forward;
        }
        Frontend::FunctionCall => {
            sc.note(&Effect::Database);
            return Action::Forward;
        }
        _ => return Action::Forward,
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
    let [Effect::Read] = effects.as_slice() else {
        return Action::Forward;
    };
    let info = parts[0].shape.info.clone();
    if info.command != crate::query::Command::Select {
        return Action::Forward;
    }
    let bypass = if p.state.tx != Tx::Idle {
        Some(Bypass::Transaction)
    } else if p.state.pinned().is_some() {
        Some(Bypass::SessionState)
    } else {
        sc.bypass
    };
    if let Some(reason) = bypass {
        sc.cache.stats.bypass(reason);
        return Action::Forward;
    }
    // Answering now must not overtake anything in flight.
    let quiet =
        p.state.pending == 0 && w.c_fwd == 0 && w.s_fwd == w.sbuf.len() && sc.fill.is_none();
    if !quiet {
        return Action::Forward;
    }
    let body = msg.body(w);
    let text = body.split(|&b| b == 0).next().unwrap_or_default();
    let Ok(text) = std::str::from_utf8(text) else {
        return Action::Forward;
    };
    let req = Request {
        database: &sc.database,
        session_user: &sc.user,
        current_role: &sc.user,
        search_path: &sc.search_path,
        settings: sc.settings,
        text,
        fingerprint: info.fingerprint,
        param_types: &[],
        param_formats: &[],
        params: &[],
        result_formats: &[],
    };
    match sc.cache.lookup(&req) {
        Outcome::Hit(bytes) => {
            let mut out = BytesMut::with_capacity(bytes.len() + 6);
            out.extend_from_slice(&bytes);
            messages::ready_for_query(&mut out, p.state.tx.status());
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
