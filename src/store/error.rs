//! The store's one error type: what failed, with the driver's error as the cause.

use deadpool_postgres::PoolError;

/// Anything that goes wrong talking to the store database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL does not parse as a PostgreSQL connection string.
    #[error("store URL is invalid: {source}")]
    InvalidUrl {
        #[source]
        source: tokio_postgres::Error,
    },
    /// No connection could be opened (refused, timed out, authentication failed) or
    /// none became free in time.
    #[error("cannot reach the store at {target}: {source}")]
    Connect {
        target: String,
        #[source]
        source: PoolError,
    },
    /// A statement failed; `what` names the operation.
    #[error("store {what} failed: {source}")]
    Query {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A migration file failed; nothing of it was kept.
    #[error("store migration {version} failed: {source}")]
    Migration {
        version: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A stored JSON document no longer parses (it was edited by hand, or is corrupt).
    #[error("store {what}: stored JSON does not parse: {source}")]
    Json {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A column holds a value this version of pgsidecar does not know.
    #[error("store {what}: unexpected value {value:?}")]
    Unexpected { what: &'static str, value: String },
}

impl StoreError {
    /// True when the store could not be reached at all, as opposed to rejecting a
    /// statement: callers back off and retry rather than report a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Connect { .. } => true,
            StoreError::Query { source, .. } | StoreError::Migration { source, .. } => {
                source.is_closed()
            }
            _ => false,
        }
    }

    pub(crate) fn query(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        move |source| StoreError::Query { what, source }
    }
}
