//! The session layer's error type and its one mapping to what the client is told:
//! an ErrorResponse with a fitting SQLSTATE (or nothing, when the client is gone).

use bytes::{Bytes, BytesMut};

use super::relay::RelayError;
use crate::auth::AuthError;
use crate::pool::{PoolError, ServerError};
use crate::protocol::messages::{error_response, Severity};
use crate::protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error(transparent)]
    Relay(#[from] RelayError),
    #[error("too many client connections (max_client_conn {0})")]
    TooManyClients(usize),
    #[error("too many connections are logging in; this one was the oldest")]
    TooManyOpening,
    #[error("no PostgreSQL user name specified in startup packet")]
    NoUser,
    #[error("canceling authentication due to timeout")]
    LoginTimeout,
    #[error("pgsidecar is shutting down")]
    ShuttingDown,
    #[error("pgsidecar: TLS is required (client_tls = require); connect with sslmode=require")]
    TlsRequired,

    #[error("client connection: {0}")]
    ClientIo(#[from] std::io::Error),
}

impl SessionError {
    /// True when the client is gone and nothing can or need be sent.
    pub fn client_gone(&self) -> bool {
        matches!(
            self,
            SessionError::ClientIo(_)
                | SessionError::Auth(AuthError::Io(_))
                | SessionError::Relay(RelayError::Client(_))
        )
    }

    /// The SQLSTATE this error is reported with.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            SessionError::Protocol(_)
            | SessionError::Auth(AuthError::Protocol(_))
            | SessionError::Relay(RelayError::Protocol(_)) => "08P01",
            SessionError::Auth(AuthError::Failed { .. }) => "28P01",
            SessionError::Auth(AuthError::NeedsSecureLogin { .. })
            | SessionError::Auth(AuthError::RateLimited { .. }) => "28000",
            SessionError::NoUser | SessionError::TlsRequired => "28000",
            SessionError::TooManyClients(_) | SessionError::TooManyOpening => "53300",
            SessionError::Pool(PoolError::Timeout { .. }) => "53300",
            SessionError::LoginTimeout => "57014",
            SessionError::Relay(RelayError::OutOfMemory { .. }) => "53200",
            SessionError::ShuttingDown => "57P01",
            _ => "08006",
        }
    }

    /// The message that ends the client's connection, if one can be sent. A login the
    /// server refused is relayed exactly as the server worded it.
    pub fn fatal_message(&self) -> Option<Bytes> {
        if self.client_gone() {
            return None;
        }
        if let SessionError::Server(ServerError::Rejected { raw, .. })
        | SessionError::Auth(AuthError::Server(ServerError::Rejected { raw, .. }))
        | SessionError::Pool(PoolError::Server(ServerError::Rejected { raw, .. })) = self
        {
            return Some(raw.clone());
        }
        let mut buf = BytesMut::new();
        error_response(
            &mut buf,
            Severity::Fatal,
            self.sqlstate(),
            &self.to_string(),
        );
        Some(buf.freeze())
    }
}

/// The ErrorResponse (severity ERROR, connection stays) for a failed checkout.
pub fn checkout_error(err: &PoolError) -> Bytes {
    let mut buf = BytesMut::new();
    match err {
        PoolError::Timeout { .. } => {
            error_response(&mut buf, Severity::Error, "53300", &err.to_string())
        }
        PoolError::Server(ServerError::Rejected { fields, .. })
        | PoolError::Server(ServerError::Query { fields, .. }) => {
            error_response(&mut buf, Severity::Error, &fields.code, &fields.message)
        }
        // Credentials the server no longer takes (a changed password) or never had.
        PoolError::Server(e) if e.is_auth_rejection() => error_response(
            &mut buf,
            Severity::Error,
            "28000",
            &format!("pgsidecar: {e}"),
        ),
        PoolError::Server(e) => error_response(
            &mut buf,
            Severity::Error,
            "08006",
            &format!("pgsidecar: {e}"),
        ),
    }
    buf.freeze()
}
