//! pgsidecar: a transparent PostgreSQL proxy with connection pooling, statement
//! statistics and slow-query capture. This file is the table of contents.
//!
//! **Forwarding** (per client): [`listener`] accepts and spawns a [`session`]; the
//! session opens (TLS from [`tls`], startup from [`protocol`]), logs the client in
//! ([`auth`]), then runs the request pipeline: frames from [`protocol`], a server from
//! the (database, user) [`pool`] once a request is complete, raw frames relayed both
//! ways, the server back to the pool at the ReadyForQuery that ends the transaction.
//! A client naming the `pgsidecar` database gets the SQL [`console`] instead.
//!
//! **Measuring** (off the request path): [`query`] analyses each statement's text;
//! [`stats`] records it per fingerprint (and flushes completed minutes to the store);
//! [`slow`] compares with thresholds, alerts and schedules EXPLAIN captures run by
//! [`explain`]; [`store`] keeps events, plans and history in PostgreSQL (its lifecycle
//! and job runner included); [`admin`] serves all of it over HTTP and `/metrics`.
//!
//! **Shared services**: [`app`] starts, reloads and drains (clients first, then the
//! [`background`] workers); [`state`] is the running state the tasks share;
//! [`clients`] the logged-in clients and their limits; [`config`] the options.
//!
//! | module | purpose |
//! |---|---|
//! | [`listener`] | accept loops (TCP, Unix socket), one session task per connection |
//! | [`session`] | one client's life: opening, login, the request pipeline |
//! | [`protocol`] | wire framing, startup packets, messages the proxy builds or reads |
//! | [`auth`] | client authentication (SCRAM, md5, pass-through) and server logins |
//! | [`pool`] | per (database, user) pools, server connections, their [`pool::Status`] |
//! | [`clients`] | logged-in clients, connections still opening, the buffer budget |
//! | [`query`] | statement analysis: normalization, fingerprints, effects |
//! | [`stats`] | per-fingerprint counters, latency histograms, windows, the flush |
//! | [`slow`] | slow statements: thresholds, alerts, EXPLAIN capture scheduling |
//! | [`explain`] | running EXPLAIN safely on side connections; plan hashing |
//! | [`store`] | the durable store: schema, rows, lifecycle, job runner |
//! | [`admin`] | admin HTTP: probes, JSON API, `/metrics`, the web console |
//! | [`console`] | the SQL admin console (`SHOW ...`, `PAUSE`, `RELOAD`) |
//! | [`state`] | the running state the tasks share (pools, clients, statistics) |
//! | [`background`] | background tasks on a tracker, ended by a token |
//! | [`app`] | start-up, reload, shutdown |
//! | [`config`] | options: TOML, defaults, validation, the configuration in force |
//! | [`tls`] | rustls acceptor (clients) and connector (servers), built from config |
//! | [`timefmt`] | timestamps for operators and the store |
//! | [`logfmt`] | log line formats |

pub mod admin;
pub mod advisor;
pub mod app;
pub mod auth;
pub mod background;
pub mod cache;
pub mod clients;
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
pub mod state;
pub mod stats;
pub mod store;
pub mod timefmt;
pub mod tls;

pub use app::{App, AppError, ConfigSource, Shared};
pub use config::Config;
