//! pgsidecar: a transparent PostgreSQL proxy with connection pooling.
//!
//! How a query flows: [`listener`] accepts a connection and spawns a [`session`]. The
//! session reads the startup packet, authenticates the client ([`auth`]) and greets it
//! with the server's parameters. For each request the session's relay frames the client's
//! bytes ([`protocol`]), checks out a server from the (database, user) [`pool`] when a
//! request is complete, applies the client's settings to that server, and forwards raw
//! frames both ways. In transaction mode the server goes back to the pool at the
//! ReadyForQuery that ends the transaction; a server left dirty is rolled back or closed
//! before anyone else gets it. [`app`] owns start-up, reload and shutdown; [`config`]
//! the options; [`tls`] the rustls acceptor (clients) and connector (servers).

pub mod admin;
pub mod app;
pub mod auth;
pub mod cache;
pub mod config;
pub mod console;
pub mod explain;
#[doc(hidden)]
pub mod fuzzing;
pub mod listener;
pub mod logfmt;
pub mod pool;
pub mod protocol;
pub mod query;
pub mod session;
pub mod slow;
pub mod stats;
pub mod store;
pub mod timefmt;
pub mod tls;

pub use app::{App, AppError, ConfigSource, Shared};
pub use config::Config;
