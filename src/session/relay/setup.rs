//! How a relay starts: everything the session decided at login, handed over in one
//! value, so the relay's own fields stay its own.

use std::sync::Arc;

use super::super::budget::Charge;
use super::super::clients::ClientHandle;
use super::super::params::ClientParams;
use super::super::pipeline::{self, PinReport, Pipeline, Placement, Pooling, State};
use super::super::statements::Statements;
use super::super::track::Tracker;
use super::{Relay, Wire};
use crate::pool::PooledServer;
use crate::query::{Analyzer, KnownFunctions};
use crate::tls::ClientStream;

/// What a relay is started with.
pub struct Setup {
    pub max_message_size: usize,
    pub pooling: Pooling,
    /// Transaction mode: the pool's verdicts on function names.
    pub known: Option<Arc<KnownFunctions>>,
    /// Transaction mode with prepared statements: this client's id, for the names its
    /// statements get on servers.
    pub rename_for: Option<u64>,
    pub analyzer: Arc<Analyzer>,
    pub tracker: Option<Tracker>,
    pub on_pin: Option<PinReport>,
    pub charge: Option<Charge>,
    pub record: Record,
    /// Session mode: the client's own server from the start.
    pub server: Option<PooledServer>,
    pub cache: Option<Box<crate::cache::session::SessionCache>>,
}

/// The client's registration (for SHOW CLIENTS and cancel routing) and its settings,
/// which follow it from server to server.
#[derive(Default)]
pub struct Record {
    pub handle: Option<ClientHandle>,
    pub params: ClientParams,
}

impl Setup {
    /// A session-mode relay with nothing attached (tests, and the defaults above).
    pub fn plain(max_message_size: usize) -> Setup {
        Setup {
            max_message_size,
            pooling: Pooling::Session,
            known: None,
            rename_for: None,
            analyzer: Arc::new(Analyzer::new(64)),
            tracker: None,
            on_pin: None,
            charge: None,
            record: Record::default(),
            server: None,
            cache: None,
        }
    }
}

impl Relay {
    pub fn new(client: ClientStream, setup: Setup) -> Relay {
        let pipe = Pipeline {
            state: State::new(setup.pooling),
            statements: Statements::new(setup.rename_for),
            placement: setup.rename_for.map(|_| Placement::default()),
            tracker: setup.tracker,
            analyzer: setup.analyzer,
            known: setup.known,
            unchecked: pipeline::Unchecked::default(),
            on_pin: setup.on_pin,
            reported: Vec::new(),
            server_fatal: false,
            hidden_closes: 0,
            copy: Default::default(),
            cache: setup.cache,
        };
        let mut relay = Relay {
            wire: Wire::new(client, setup.max_message_size, setup.charge),
            pipe,
            record: setup.record,
        };
        if let Some(server) = setup.server {
            relay.attach_server(server);
        }
        relay
    }
}
