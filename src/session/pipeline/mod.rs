//! The request pipeline: what happens to each whole message on its way through, one
//! step per file. Read this first.
//!
//! The pump (`relay`) reads, frames and writes bytes; for every whole frame it asks this
//! pipeline what to do, and obeys the [`Action`]. Each step sees the message, may change
//! it or the session's state, and returns an `Action`: [`Action::Forward`] passes the
//! message to the next step (and, after the last, to the other side); anything else
//! stops the pipeline there.
//!
//! Client → server, in order ([`client`]):
//! 1. [`rename`]: resolve which statement the message is about in the session's
//!    [`Statements`] registry (once per message), renaming it for the server;
//! 2. [`answer`]: answer locally what needs no server (Terminate, a batch being
//!    discarded, Parse-only requests, DEALLOCATE);
//! 3. [`cache`] (`lookup`): answer a cached SELECT with [`Action::Answer`], no server;
//! 4. [`effects`]: note settings changes, opaque calls and pins (transaction mode);
//! 5. [`track`]: queue the statement for measurement (and the advisor's observer);
//! 6. [`place`]: count the request, prepare missing statements on the server, and ask
//!    for a server when none is attached.
//!
//! Server → client ([`server`]):
//! 1. [`hide`]: answers to what the proxy added (ParseComplete, CloseComplete, a retry);
//! 2. [`track`]: complete the statement it answers and record it;
//! 3. [`cache`] (`fill`): keep the rows of a cacheable statement, store them at its
//!    ReadyForQuery, and apply this session's writes' invalidations before it;
//! 4. [`status`]: ReadyForQuery (the one transition point of the transaction state),
//!    ParameterStatus, COPY and FATAL errors.
//!
//! Steps are plain functions called in this order (no trait objects): a message costs
//! one call per step, and a step that has nothing to do returns at its first `match`.

pub mod answer;
pub mod cache;
pub mod effects;
pub mod hide;
pub mod place;
pub mod placement;
pub mod rename;
pub mod state;
pub mod status;
#[cfg(test)]
mod tests;
pub mod track;

use std::sync::Arc;

use bytes::Bytes;

use super::relay::Wire;
use super::statements::{simple::SimpleQuery, Prepared, Statements};
use super::track::Tracker;
use crate::protocol::tags::{Backend, Frontend};
use crate::query::{Analyzer, KnownFunctions, Opacity, PinReason};
pub use placement::Placement;
pub use state::{Batch, Client, Pooling, State, Tx};

/// What the pump does with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Pass it on (to the next step; after the last, to the other side).
    Forward,
    /// Drop it: the other side never sees it.
    Hide,
    /// Drop it and send these bytes to the client instead (client messages only).
    Answer(Bytes),
    /// Forward it, and get a server first: none is attached.
    NeedsServer,
}

/// Runs a step; anything but `Forward` ends the pipeline with that action.
macro_rules! next {
    ($step:expr) => {
        match $step {
            Action::Forward => {}
            other => return other,
        }
    };
}

/// A whole client frame at `cbuf[at..at + len]`, and what the steps found out about it.
pub struct Msg {
    pub tag: Frontend,
    pub at: usize,
    pub len: usize,
    /// The prepared statement it names (Parse, Bind, Describe, Close of a statement).
    pub stmt: Option<Arc<Prepared>>,
    /// A Query's statements and effects.
    pub query: Option<Arc<SimpleQuery>>,
}

impl Msg {
    pub fn new(tag: u8, at: usize, len: usize) -> Msg {
        Msg {
            tag: Frontend::of(tag),
            at,
            len,
            stmt: None,
            query: None,
        }
    }

    /// The frame's body (after tag and length).
    pub fn body<'a>(&self, w: &'a Wire) -> &'a [u8] {
        &w.cbuf[self.at + 5..self.at + self.len]
    }
}

/// A whole server frame at `sbuf[at..at + len]`.
pub struct Reply {
    pub tag: Backend,
    pub at: usize,
    pub len: usize,
}

impl Reply {
    pub fn body<'a>(&self, w: &'a Wire) -> &'a [u8] {
        &w.sbuf[self.at + 5..self.at + self.len]
    }
}

/// Called once when a client gets pinned, with the reason and the statement.
pub type PinReport = Box<dyn FnMut(PinReason, &str) + Send>;

/// What a transaction did that must be checked before its server goes back.
#[derive(Debug, Default)]
pub struct Unchecked {
    /// A statement may have changed a session setting.
    pub settings: bool,
    /// Opaque statements (their session effects cannot be read from their text).
    pub opacity: Opacity,
}

impl Unchecked {
    pub fn any(&self) -> bool {
        self.settings || self.opacity.any()
    }
}

/// The session's state and services the steps share.
pub struct Pipeline {
    pub state: State,
    pub statements: Statements,
    /// Transaction mode with prepared statements: Parses owed by servers, retries.
    pub placement: Option<Placement>,
    /// Per-statement measurement, when statistics are on.
    pub tracker: Option<Tracker>,
    pub analyzer: Arc<Analyzer>,
    /// Transaction mode: which function names are built-ins only.
    pub known: Option<Arc<KnownFunctions>>,
    pub unchecked: Unchecked,
    /// Told once, when the client gets pinned (reason and statement).
    pub on_pin: Option<PinReport>,
    /// ParameterStatus values seen from the server, for the session to adopt.
    pub reported: Vec<(String, String)>,
    /// The server sent a FATAL or PANIC error: its own error is the one the client hears.
    pub server_fatal: bool,
    /// CloseCompletes owed for statements the proxy closed: hidden from the client.
    pub hidden_closes: u32,
    pub copy: status::Copy,
    /// The result cache's session state (`None` when the cache is off).
    pub cache: Option<Box<crate::cache::session::SessionCache>>,
}

impl Pipeline {
    /// Keeps the server for the rest of the session; `sql` is what caused it (told once
    /// to `on_pin`, which logs it normalized).
    pub fn pin(&mut self, reason: PinReason, sql: &str) {
        self.state.pin(reason);
        if let Some(mut on_pin) = self.on_pin.take() {
            on_pin(reason, sql);
        }
    }
}

/// A whole client frame: rename → answer → cache lookup → effects → track → place.
pub fn client(p: &mut Pipeline, w: &mut Wire, msg: &mut Msg) -> Action {
    next!(rename::client(p, w, msg));
    next!(answer::client(p, w, msg));
    next!(cache::lookup(p, w, msg));
    next!(effects::client(p, w, msg));
    next!(track::client(p, w, msg));
    place::client(p, w, msg)
}

/// The first piece of a client frame too big to wait for (a Bind, COPY data), or a
/// later piece (`start` is `None`), `len` bytes at `c_fwd`: how many bytes to forward
/// (a Bind's names renamed, a missing statement prepared first), or `None` to drop
/// them (a batch being discarded).
pub fn client_piece(
    p: &mut Pipeline,
    w: &mut Wire,
    start: Option<u8>,
    len: usize,
) -> Option<usize> {
    if p.state.batch == Batch::Discarding {
        return None;
    }
    if let Some(placement) = p.placement.as_mut() {
        placement.retries.spoil(p.state.framed);
    }
    if start != Some(b'B') {
        return Some(len);
    }
    let len = rename::streamed_bind(p, w, len);
    Some(len + place::streamed_bind(p, w, len))
}

/// A whole server frame: hide → track → cache fill → status.
pub fn server(p: &mut Pipeline, w: &mut Wire, reply: &Reply) -> Action {
    next!(hide::server(p, w, reply));
    next!(track::server(p, w, reply));
    next!(cache::fill(p, w, reply));
    status::server(p, w, reply)
}
