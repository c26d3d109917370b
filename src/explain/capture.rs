//! One capture: the read-only transaction, the EXPLAIN with the client's parameters, and
//! the rollback that always follows.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Client;

use super::params::{param_types, raw_params, ExplainJson};
use super::{classify, plan_hash};
use super::{CapturedPlan, ExplainError, ExplainLimits, ExplainRequest, Safety};
use crate::query::volatility;

/// How long past its own limits a capture may take before it is abandoned. The limits are
/// enforced by the server; this only catches a server or network that stopped answering.
const GRACE: Duration = Duration::from_secs(10);

/// Captures the plan of `req` on `client`, which must be an idle connection (not inside a
/// transaction) that nothing else uses meanwhile.
///
/// Runs `BEGIN READ ONLY`, local statement and lock timeouts from `limits`, then
/// `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` when [`classify`] allows it and every
/// function the statement calls is known and not volatile, else `EXPLAIN (FORMAT JSON)`;
/// then always `ROLLBACK`. On an error for which
/// [`ExplainError::connection_unusable`] is true the caller must discard `client`.
pub async fn capture(
    client: &Client,
    req: &ExplainRequest,
    limits: &ExplainLimits,
) -> Result<CapturedPlan, ExplainError> {
    let sql = req.sql.clone();
    // classify waits on the parser threads; keep that wait off the async worker.
    let safety = tokio::task::spawn_blocking(move || classify(&sql))
        .await
        .unwrap_or(Safety::PlainOnly {
            reason: "could not be parsed",
        });
    // Two statements may each use the whole statement_timeout: the lookup and the EXPLAIN.
    let backstop = limits.statement_timeout.saturating_mul(2) + GRACE;
    match tokio::time::timeout(backstop, in_transaction(client, req, limits, safety)).await {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!(?backstop, "EXPLAIN capture stalled; connection abandoned");
            Err(ExplainError::Stalled(backstop))
        }
    }
}

/// The capture and its rollback, which runs whatever happened before it.
async fn in_transaction(
    client: &Client,
    req: &ExplainRequest,
    limits: &ExplainLimits,
    safety: Safety,
) -> Result<CapturedPlan, ExplainError> {
    let outcome = explain(client, req, limits, safety).await;
    // Session advisory locks survive a rollback: a function the statement ran may have
    // taken one, and this connection goes back to its pool.
    let rollback = "ROLLBACK; SELECT pg_catalog.pg_advisory_unlock_all()";
    match client.batch_execute(rollback).await {
        Ok(()) => outcome,
        Err(source) => {
            tracing::warn!(error = %source, "ROLLBACK after EXPLAIN capture failed");
            Err(ExplainError::Rollback {
                earlier: outcome.err().map(Box::new),
                source,
            })
        }
    }
}

async fn explain(
    client: &Client,
    req: &ExplainRequest,
    limits: &ExplainLimits,
    safety: Safety,
) -> Result<CapturedPlan, ExplainError> {
    let fail = |e| query_error(e, limits);
    let downgrade_reason = match safety {
        Safety::Analyze { .. } => prove(client, req, limits).await?,
        Safety::PlainOnly { reason } => Some(reason.to_owned()),
    };
    client
        .batch_execute(&begin(limits, req.role.as_deref()))
        .await
        .map_err(fail)?;
    let analyzed = downgrade_reason.is_none();
    let options = if analyzed {
        "ANALYZE, BUFFERS, FORMAT JSON"
    } else {
        "FORMAT JSON"
    };
    // The extended protocol runs exactly one statement: a text holding more is refused.
    let text = format!("EXPLAIN ({options}) {}", req.sql);
    let statement = client
        .prepare_typed(&text, &param_types(req))
        .await
        .map_err(fail)?;
    let params = raw_params(req);
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
    let rows = client.query(&statement, &refs).await.map_err(fail)?;
    let row = rows
        .first()
        .ok_or(ExplainError::UnexpectedOutput("no rows"))?;
    let ExplainJson(plan) = row.try_get(0).map_err(fail)?;
    let captured = build(plan, analyzed, downgrade_reason)?;
    tracing::debug!(
        plan_hash = %captured.plan_hash,
        analyzed,
        downgrade_reason = captured.downgrade_reason.as_deref(),
        total_cost = captured.total_cost,
        "EXPLAIN captured"
    );
    Ok(captured)
}

/// Whether the statement provably runs nothing volatile ([`volatility`]), checked in a
/// transaction of its own (read-write: the proof compiles a temporary function) that is
/// always rolled back. `None` when proven; otherwise why not. A statement the proof cannot
/// handle is only planned; a timeout fails the capture as the EXPLAIN's own would.
async fn prove(
    client: &Client,
    req: &ExplainRequest,
    limits: &ExplainLimits,
) -> Result<Option<String>, ExplainError> {
    let begin = begin(limits, req.role.as_deref()).replacen("BEGIN READ ONLY", "BEGIN", 1);
    let outcome = async {
        client.batch_execute(&begin).await?;
        let tree = volatility::probe_tree(client, &req.sql, &param_types(req)).await?;
        volatility::unsafe_tree(client, &tree).await
    }
    .await;
    if let Err(source) = client.batch_execute("ROLLBACK").await {
        return Err(ExplainError::Rollback {
            earlier: None,
            source,
        });
    }
    match outcome.map_err(|e| query_error(e, limits)) {
        Ok(verdict) => Ok(verdict),
        Err(timeout @ ExplainError::Timeout { .. }) => Err(timeout),
        Err(e) => {
            let code = e.sqlstate().unwrap_or("no SQLSTATE").to_owned();
            tracing::debug!(error = %e, "cannot verify the statement's functions");
            Ok(Some(format!(
                "could not verify what the statement runs ({code})"
            )))
        }
    }
}

fn begin(limits: &ExplainLimits, role: Option<&str>) -> String {
    let mut sql = format!(
        "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
        millis(limits.statement_timeout),
        millis(limits.lock_timeout)
    );
    if let Some(role) = role {
        sql.push_str("; SET LOCAL ROLE \"");
        sql.push_str(&role.replace('"', "\"\""));
        sql.push('"');
    }
    sql
}

/// Whole milliseconds, at least 1: 0 would switch the timeout off.
fn millis(d: Duration) -> u128 {
    d.as_millis().clamp(1, i32::MAX as u128)
}

fn query_error(source: tokio_postgres::Error, limits: &ExplainLimits) -> ExplainError {
    match source.code() {
        Some(code) if *code == SqlState::QUERY_CANCELED => ExplainError::Timeout {
            which: "statement_timeout",
            limit: limits.statement_timeout,
        },
        Some(code) if *code == SqlState::LOCK_NOT_AVAILABLE => ExplainError::Timeout {
            which: "lock_timeout",
            limit: limits.lock_timeout,
        },
        code => ExplainError::Query {
            sqlstate: code.map(|c| c.code().to_owned()),
            source,
        },
    }
}

fn build(
    plan: serde_json::Value,
    analyzed: bool,
    downgrade_reason: Option<String>,
) -> Result<CapturedPlan, ExplainError> {
    let top = plan
        .get(0)
        .ok_or(ExplainError::UnexpectedOutput("not a list of plans"))?;
    let total_cost = top
        .pointer("/Plan/Total Cost")
        .and_then(serde_json::Value::as_f64)
        .ok_or(ExplainError::UnexpectedOutput("no Total Cost"))?;
    let actual_ms = if analyzed {
        let ms = top
            .get("Execution Time")
            .and_then(serde_json::Value::as_f64);
        Some(ms.ok_or(ExplainError::UnexpectedOutput("no Execution Time"))?)
    } else {
        None
    };
    Ok(CapturedPlan {
        plan_hash: plan_hash(&plan),
        plan,
        total_cost,
        actual_ms,
        analyzed,
        downgrade_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_never_round_to_off() {
        let limits = ExplainLimits {
            statement_timeout: Duration::from_micros(10),
            lock_timeout: Duration::from_millis(1500),
        };
        assert_eq!(
            begin(&limits, None),
            "BEGIN READ ONLY; SET LOCAL statement_timeout = 1; SET LOCAL lock_timeout = 1500"
        );
        // The client's role, quoted as an identifier.
        assert!(begin(&limits, Some("app\"x")).ends_with("; SET LOCAL ROLE \"app\"\"x\""));
    }
}
