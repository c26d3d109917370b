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

/// Reasons a client can be pinned to its server, in the order of
/// `Shared::pinned_clients`. `copy` stays 0: a COPY cannot outlive its transaction in
/// the protocol, so it never pins.
pub const PIN_REASONS: [&str; 6] = [
    "listen",
    "advisory_lock",
    "temp_table",
    "cursor_with_hold",
    "sql_prepare",
    "copy",
];
