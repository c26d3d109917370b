//! Step 3 (client, transaction mode): what a statement does to its session beyond its
//! transaction. A possible settings change or an opaque call is noted for the check
//! before the server goes back; state that cannot move pins the client to its server.
//! The text was read once, by the registry; here only its findings are applied.

use std::sync::Arc;

use super::{Action, Msg, Pipeline};
use crate::protocol::tags::Frontend;
use crate::query::{note_call, KnownFunctions, TextEffects};
use crate::session::relay::Wire;
use crate::session::statements::Prepared;

pub fn client(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    if !p.state.pools_per_transaction() {
        return Action::Forward;
    }
    match msg.tag {
        Frontend::Query => {
            if let Some(query) = msg.query.as_ref().filter(|q| q.effects.any()) {
                let sql = || String::from_utf8_lossy(text(w, msg)).into_owned();
                apply(p, &query.clone().effects, sql);
            }
        }
        Frontend::Parse => {
            if let Some(stmt) = msg.stmt.as_ref().filter(|s| s.effects.any()) {
                let stmt = stmt.clone();
                apply(p, &stmt.effects, || stmt.sql().to_owned());
            }
        }
        Frontend::Bind => {
            if let Some(stmt) = msg.stmt.as_ref().filter(|s| s.effects.any()) {
                bind(p, &stmt.clone());
            }
        }
        _ => {}
    }
    Action::Forward
}

fn text<'a>(w: &'a Wire, msg: &Msg) -> &'a [u8] {
    let body = msg.body(w);
    body.split(|&b| b == 0).next().unwrap_or_default()
}

/// A Query or Parse with effects: noted for the check, or the client pinned.
fn apply(p: &mut Pipeline, effects: &TextEffects, sql: impl FnOnce() -> String) {
    p.unchecked.settings |= effects.session.settings;
    if let Some(known) = p.known.clone() {
        if effects.changes_functions {
            known.forget_all();
        }
        note_calls(p, &known, effects.opacity.opaque, &effects.opacity.unknown);
    }
    if let Some(reason) = effects.session.pin {
        let sql = sql();
        p.pin(reason, &sql);
    }
}

fn note_calls(p: &mut Pipeline, known: &KnownFunctions, opaque: bool, names: &[String]) {
    p.unchecked.opacity.opaque |= opaque;
    for name in names {
        note_call(name, known, &mut p.unchecked.opacity);
    }
}

/// A Bind of a statement whose text has effects: a settings change happens when it
/// runs, perhaps in a later request than its Parse (drivers prepare, then execute).
fn bind(p: &mut Pipeline, stmt: &Arc<Prepared>) {
    p.unchecked.settings |= stmt.effects.session.settings;
    let Some(known) = p.known.clone() else {
        return;
    };
    let mut found = stmt.opacity.lock().unwrap_or_else(|e| e.into_inner());
    // Names learned since the Parse: built-ins drop out, so a statement calling only
    // built-ins stops costing a check.
    let mut opaque = found.opaque;
    found.unknown.retain(|name| match known.builtin_only(name) {
        Some(true) => false,
        Some(false) => {
            opaque = true;
            false
        }
        None => true,
    });
    found.opaque = opaque;
    note_calls(p, &known, opaque, &found.unknown);
}
