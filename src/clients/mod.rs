//! Clients as the whole proxy sees them: the registry of logged-in clients (state,
//! cancel keys), the connections still opening, the process-wide buffer budget, and
//! the reasons a client can be pinned to its server. Sessions write here; the status
//! model, SHOW, `/api` and `/metrics` read from here.

pub mod budget;
pub mod openings;
pub mod registry;

pub use budget::BufferBudget;
pub use openings::{OpeningPlace, Openings};
pub use registry::{ClientEntry, ClientIdentity, ClientRegistry, ClientState};

pub use crate::query::PIN_REASONS;
