//! `GET /api/slow`, `/api/alerts`, `/api/plans` and `/api/jobs`: newest-first lists
//! from the store (memory when there is none), paged with `limit` and a signed cursor.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::cursor::{Cursor, Position};
use super::error::ApiError;
use super::params::{Params, RawParams};
use super::Ctx;
use crate::slow::List;
use crate::store::JobStatus;

pub async fn slow(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    page(&ctx, Params::new(raw)?, "slow", List::Slow, &[]).await
}

pub async fn alerts(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    page(&ctx, Params::new(raw)?, "alerts", List::Alerts, &[]).await
}

/// Filters: `fingerprint` (16 hex digits) and `database`.
pub async fn plans(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(raw)?;
    let (fingerprint, database) = plan_filters(&mut p)?;
    let list = List::Plans {
        fingerprint,
        database,
    };
    let Json(mut listing) = page(&ctx, p, "plans", list, &["fingerprint", "database"]).await?;
    if let Some(data) = listing["data"].as_array_mut() {
        super::plans::annotate_plans(&ctx.state, data).await?;
    }
    Ok(Json(listing))
}

/// The `fingerprint` (16 hex digits, lowercased) and `database` filters of a plan
/// listing.
pub(super) fn plan_filters(p: &mut Params) -> Result<(Option<String>, Option<String>), ApiError> {
    let fingerprint = p
        .filter("fingerprint")?
        .map(|f| check_fingerprint(&f).map(|f| f.to_ascii_lowercase()))
        .transpose()?;
    Ok((fingerprint, p.filter("database")?))
}

/// `f` when it is 16 hex digits, else a 400.
pub fn check_fingerprint(f: &str) -> Result<String, ApiError> {
    if f.len() != 16 || !f.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "invalid fingerprint {f:?}: expected 16 hex digits"
        )));
    }
    Ok(f.to_string())
}

/// Filter: `status` (pending, running, done, failed).
pub async fn jobs(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(raw)?;
    let status = match p.filter("status")?.as_deref() {
        None => None,
        Some("pending") => Some(JobStatus::Pending),
        Some("running") => Some(JobStatus::Running),
        Some("done") => Some(JobStatus::Done),
        Some("failed") => Some(JobStatus::Failed),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid status {other:?}: expected pending, running, done or failed"
            )))
        }
    };
    page(&ctx, p, "jobs", List::Jobs { status }, &["status"]).await
}

/// One page of `list`; the cursor's scope is the endpoint with its filters.
pub(super) async fn page(
    ctx: &Ctx,
    mut p: Params,
    name: &str,
    list: List,
    filters: &[&str],
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit()?;
    let token = p.filter("cursor")?;
    let accepted: Vec<&str> = ["limit", "cursor"].iter().chain(filters).copied().collect();
    p.finish(&accepted)?;
    let scope = json!([name, format!("{list:?}")]).to_string();
    let before_id = match token {
        Some(token) => Some(ctx.cursors.open(&token, &scope)?.after.value as i64),
        None => None,
    };
    let listing = crate::slow::list(&ctx.state.slow_ctx, &list, before_id, limit)
        .await
        .map_err(|e| ApiError::unavailable(format!("cannot read the store: {e}")))?;
    let next_cursor = listing.next_before_id.map(|id| {
        ctx.cursors.seal(&Cursor {
            scope,
            snapshot: None,
            after: Position {
                value: id as u64,
                database: String::new(),
                user: String::new(),
                fingerprint: 0,
            },
        })
    });
    Ok(Json(json!({
        "data": listing.rows,
        "next_cursor": next_cursor,
        "has_more": listing.next_before_id.is_some(),
    })))
}
