//! The pool layer's errors: talking to a server, and getting one from a pool.

use std::time::Duration;

use bytes::Bytes;

use crate::protocol::messages::ErrorFields;

/// Failures talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("could not connect to server {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("server {address} did not answer within {} ms", after.as_millis())]
    Timeout { address: String, after: Duration },
    /// The server refused the login; `raw` is its ErrorResponse, relayed as is.
    #[error("server refused login: {fields}")]
    Rejected { fields: ErrorFields, raw: Bytes },
    /// A query the proxy ran itself failed; `raw` is the ErrorResponse.
    #[error("server error: {fields}")]
    Query { fields: ErrorFields, raw: Bytes },
    #[error("{0}")]
    Auth(String),
    /// The server asked for a password and the pool has none for this user.
    #[error(
        "server asked for {method} for user \"{user}\" but pgsidecar knows no usable password \
         for that user; set one in [[users]] or in the upstream URL"
    )]
    NoSecret { user: String, method: &'static str },
    #[error("server connection lost: {0}")]
    Io(#[from] std::io::Error),
    #[error("server closed the connection unexpectedly")]
    Closed,
    #[error("server protocol error: {0}")]
    Protocol(String),
    #[error("server {address} refused TLS (server_tls = {mode})")]
    TlsRefused { address: String, mode: &'static str },
    #[error("TLS handshake with server {address} failed: {source}")]
    Tls {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

impl ServerError {
    /// True when the server refused the credentials (a wrong or missing password, or a
    /// SCRAM secret that no longer matches), as opposed to being unreachable.
    pub fn is_auth_rejection(&self) -> bool {
        match self {
            ServerError::Rejected { fields, .. } => fields.code.starts_with("28"),
            ServerError::NoSecret { .. } | ServerError::Auth(_) => true,
            _ => false,
        }
    }
}

/// Failures getting a server from a pool.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(
        "pgsidecar: no server connection for {pool} within {waited_ms} ms (pool_size {size}, all busy)"
    )]
    Timeout {
        pool: String,
        waited_ms: u128,
        size: usize,
    },
    #[error(transparent)]
    Server(#[from] ServerError),
}
