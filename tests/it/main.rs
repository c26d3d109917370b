//! Integration tests: one binary, one file per behaviour, against a real PostgreSQL.
// A test reads as one scenario from setup to assertions; the 60-line limit is for src/.
#![allow(clippy::too_many_lines)]

mod common;

mod admin_console;
mod admin_http;
mod advisor;
mod bad_input;
mod bounds;
mod cache;
mod cache_checker;
mod cancel;
mod cleanup;
mod config_cli;
mod copy;
mod departure;
mod deploy;
mod drivers;
mod e2e_clients;
mod explain;
mod explain_side_effects;
mod goodbye;
mod large_rows;
mod opaque_state;
mod params;
mod passthrough;
mod passthrough_cli;
mod pool_limits;
mod pool_maintenance;
mod prepared;
mod queries;
mod scram;
mod secrets;
mod server_auth;
mod session_state;
mod shutdown;
mod signals;
mod slow;
mod stats;
mod store;
mod tls;
mod truth;
mod unix_sockets;
mod upstream_restart;
mod web_console;
