//! Safe EXPLAIN capture: re-running a client's slow statement under EXPLAIN on the
//! proxy's own connection, with the client's parameters, without a second side effect.
//!
//! The rule is "never a second side effect", enforced in layers:
//! - [`classify`] allows `EXPLAIN ANALYZE` (which executes the statement) only for a plain
//!   SELECT/VALUES/TABLE without locking clauses, data-modifying CTEs or INTO, and lists
//!   the functions it calls;
//! - [`capture`] then proves, from the server's own resolution of the statement (compiled
//!   into a temporary SQL function and rolled back, `query::volatility`), that every function
//!   it can execute is IMMUTABLE or STABLE: direct calls, operators, attribute notation,
//!   casts, aggregates' support functions, type input/output, domain checks, and what
//!   views and row-security policies run. Anything unresolved (a foreign table, a node
//!   kind the proof does not know, an error) gets plain EXPLAIN, which only plans;
//! - everything runs inside `BEGIN READ ONLY` with local statement and lock timeouts, and
//!   is always rolled back.
//!
//! The statement goes to the server through the extended protocol only, so a text that
//! holds several statements is refused by the server rather than run.

mod capture;
mod params;
mod plan_hash;
mod redact;

use std::time::Duration;

use bytes::Bytes;

pub use capture::capture;
// Classification and the volatility proof live in `query` (the cache shares them).
pub use crate::query::{classify, FunctionName, Safety};
pub use plan_hash::plan_hash;
pub use redact::redact_plan;

/// A statement as the client ran it, with what it bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExplainRequest {
    /// The statement text; `$n` placeholders for extended-protocol statements, literals
    /// in the text for simple-protocol ones.
    pub sql: String,
    /// Parameter type OIDs from the client's Parse; 0 (or a missing entry) lets the server
    /// infer the type.
    pub param_types: Vec<u32>,
    /// The client's Bind values, as sent; `None` is NULL.
    pub params: Vec<Option<Bytes>>,
    /// Format codes as in Bind: empty means all text, one code applies to every
    /// parameter, otherwise one per parameter (0 = text, 1 = binary).
    pub param_formats: Vec<i16>,
    /// The client's role, taken with `SET LOCAL ROLE` so permissions and row security
    /// are the client's; `None` runs as the capture connection's own user.
    pub role: Option<String>,
}

/// Bounds on one capture; both are applied with `SET LOCAL`, so they end with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExplainLimits {
    /// Longest the EXPLAIN (and the catalog lookup before it) may run.
    pub statement_timeout: Duration,
    /// Longest any lock wait may take: an ANALYZE must not queue behind a client's DDL.
    pub lock_timeout: Duration,
}

impl Default for ExplainLimits {
    fn default() -> ExplainLimits {
        ExplainLimits {
            statement_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(5),
        }
    }
}

/// A captured plan.
#[derive(Clone, Debug, PartialEq)]
pub struct CapturedPlan {
    /// EXPLAIN's `FORMAT JSON` output, as the server sent it.
    pub plan: serde_json::Value,
    /// [`plan_hash`] of `plan`: equal for the same plan shape whatever the costs or
    /// parameter values.
    pub plan_hash: String,
    /// The top plan node's estimated total cost.
    pub total_cost: f64,
    /// The server's "Execution Time" in milliseconds; `Some` exactly when `analyzed`.
    pub actual_ms: Option<f64>,
    /// Whether the statement was executed (EXPLAIN ANALYZE, BUFFERS).
    pub analyzed: bool,
    /// Why ANALYZE was not used, when it was not.
    pub downgrade_reason: Option<String>,
}

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The server (or the client library) refused one of the capture's statements; the
    /// transaction was rolled back and the connection is usable.
    #[error("EXPLAIN capture failed{}: {source}", sqlstate_suffix(.sqlstate))]
    Query {
        /// The SQLSTATE when the server sent an error.
        sqlstate: Option<String>,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The statement or a lock wait ran into `ExplainLimits`; rolled back, the connection
    /// is usable.
    #[error("EXPLAIN capture hit its {which} ({limit:?})")]
    Timeout {
        /// "statement_timeout" or "lock_timeout".
        which: &'static str,
        limit: Duration,
    },
    /// The server sent something other than one row of EXPLAIN JSON with a plan in it.
    #[error("EXPLAIN returned an unexpected result: {0}")]
    UnexpectedOutput(&'static str),
    /// The server did not answer within the limits plus a grace period; the capture was
    /// abandoned mid-transaction, so the connection is unusable and must be discarded.
    #[error("EXPLAIN capture got no answer in {0:?}; the connection is unusable")]
    Stalled(Duration),
    /// ROLLBACK failed: the connection may still be inside the capture's transaction, so
    /// it is unusable and must be discarded.
    #[error("ROLLBACK after EXPLAIN capture failed; the connection is unusable: {source}")]
    Rollback {
        /// What failed before the rollback, if anything did.
        earlier: Option<Box<ExplainError>>,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl ExplainError {
    /// True when the caller must discard the connection it passed in.
    pub fn connection_unusable(&self) -> bool {
        matches!(
            self,
            ExplainError::Stalled(_) | ExplainError::Rollback { .. }
        )
    }

    /// The SQLSTATE the server sent, if this failure came with one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ExplainError::Query { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }
}

fn sqlstate_suffix(sqlstate: &Option<String>) -> String {
    sqlstate
        .as_ref()
        .map(|code| format!(" (SQLSTATE {code})"))
        .unwrap_or_default()
}
