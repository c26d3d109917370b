//! Integration tests: one binary, one file per behaviour, against a real PostgreSQL.

mod common;

mod admin_console;
mod admin_http;
mod bad_input;
mod cancel;
mod cleanup;
mod config_cli;
mod copy;
mod drivers;
mod e2e_clients;
mod explain;
mod large_rows;
mod params;
mod passthrough;
mod passthrough_cli;
mod pool_limits;
mod pool_maintenance;
mod prepared;
mod queries;
mod scram;
mod server_auth;
mod session_state;
mod shutdown;
mod signals;
mod slow;
mod stats;
mod store;
mod tls;
mod unix_sockets;
mod upstream_restart;
