//! Step 4 (client) and 2 (server): measurement. Client messages queue statements in
//! order (each statement of a Query, each Execute), server responses complete them
//! (see [`crate::session::track`]). Nothing here reads statement text: the registry
//! already knows each statement's analysis and statistics entry.

use super::{Action, Msg, Pipeline, Reply};
use crate::protocol::tags::{Backend, Frontend};
use crate::session::relay::Wire;
use crate::session::statements::Statements;
use crate::session::track::Tracker;

pub fn client(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    if let Some(tracker) = p.tracker.as_mut() {
        observe(tracker, &p.statements, msg, msg.body(w));
    }
    Action::Forward
}

/// What the tracker learns from a client message already resolved by the registry.
pub fn observe(tracker: &mut Tracker, statements: &Statements, msg: &Msg, body: &[u8]) {
    match msg.tag {
        Frontend::Query => {
            let text = body.split(|&b| b == 0).next().unwrap_or_default();
            tracker.query(msg.query.as_deref(), text);
        }
        Frontend::Execute => {
            let mut pos = 0;
            let portal = crate::protocol::read_cstr(body, &mut pos).unwrap_or("");
            tracker.execute(statements.portals.get(portal));
        }
        Frontend::Sync | Frontend::FunctionCall => tracker.request_end(),
        _ => {}
    }
}

/// A client frame (tag and body) resolved in `statements` and shown to `tracker` as
/// the pipeline would (for the fuzzer and tests, which have no pump).
pub fn observe_frame(
    tracker: &mut Tracker,
    statements: &mut Statements,
    analyzer: &crate::query::Analyzer,
    tag: u8,
    body: &[u8],
) {
    let analysis = crate::session::statements::Analysis {
        analyzer,
        watch: false,
    };
    let mut msg = Msg::new(tag, 0, body.len() + 5);
    let keep = tracker.keeps_values();
    super::rename::resolve(statements, &analysis, &mut msg, body, keep);
    observe(tracker, statements, &msg, body);
}

pub fn server(p: &mut Pipeline, w: &mut Wire, reply: &Reply) -> Action {
    if let Some(tracker) = p.tracker.as_mut() {
        if matches!(
            reply.tag,
            Backend::CommandComplete
                | Backend::ErrorResponse
                | Backend::PortalSuspended
                | Backend::ReadyForQuery
        ) {
            tracker.server_frame(reply.tag, reply.body(w));
        }
    }
    Action::Forward
}
