//! Plans beyond the plain list: `POST /api/plans/capture` (a capture now, with the
//! shape's last sampled values), `GET /api/plan_changes`, `GET /api/history` (the
//! stored per-minute statistics over a window), the age and latency-now columns of
//! `/api/plans`, and the `latest_plan` pointer of `/api/queries` rows.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::ApiError;
use super::params::{Params, RawParams};
use super::slow::{check_fingerprint, page, plan_filters};
use super::Ctx;
use crate::slow::{capture_now, CaptureNowError, List};
use crate::state::Running;
use crate::stats::Window;
use crate::store::PlanRef;

/// History returned when `window` is not given.
const DEFAULT_HISTORY: Duration = Duration::from_secs(3600);
/// The longest history window one request may ask for.
const MAX_HISTORY: Duration = Duration::from_secs(90 * 86_400);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureBody {
    fingerprint: String,
    database: Option<String>,
}

/// `POST /api/plans/capture {"fingerprint": "...", "database": "..."?}`: 200 with the
/// plan, 404 when the shape has no sampled execution, 502 when EXPLAIN failed.
pub async fn capture(
    State(ctx): State<Arc<Ctx>>,
    body: Result<Json<CaptureBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    let fingerprint = check_fingerprint(&body.fingerprint)?;
    let hex = fingerprint.to_ascii_lowercase();
    let fp = u64::from_str_radix(&hex, 16).map_err(|_| ApiError::bad_request("fingerprint"))?;
    match capture_now(&ctx.state.slow_ctx, body.database.as_deref(), fp).await {
        Ok(plan) => Ok(Json(json!({ "data": plan }))),
        Err(e @ CaptureNowError::NoSample(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ CaptureNowError::Failed(_)) => {
            Err(ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))
        }
    }
}

/// `GET /api/plan_changes`: filters `fingerprint`, `database`.
pub async fn changes(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(raw)?;
    let (fingerprint, database) = plan_filters(&mut p)?;
    let list = List::PlanChanges {
        fingerprint,
        database,
    };
    page(&ctx, p, "plan_changes", list, &["fingerprint", "database"]).await
}

/// `GET /api/history`: the stored per-minute rows of the last `window` (a duration
/// such as `15m`, `1h`, `7d`; default 1h), filters `fingerprint`, `database`.
pub async fn history(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    if ctx.state.slow_ctx.store.get().is_none() {
        return Err(ApiError::unavailable(
            "the statistics history is kept in the store, which is off or unreachable",
        ));
    }
    let mut p = Params::new(raw)?;
    let window = match p.filter("window")? {
        None => DEFAULT_HISTORY,
        Some(w) => humantime_serde::re::humantime::parse_duration(&w)
            .ok()
            .filter(|d| !d.is_zero() && *d <= MAX_HISTORY)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid window {w:?}: expected a duration such as 15m, 1h or 7d, at most 90d"
                ))
            })?,
    };
    let fingerprint = p
        .filter("fingerprint")?
        .map(|f| check_fingerprint(&f))
        .transpose()?;
    let database = p.filter("database")?;
    let list = List::History {
        window,
        fingerprint: fingerprint.map(|f| f.to_ascii_lowercase()),
        database,
    };
    let filters = ["window", "fingerprint", "database"];
    page(&ctx, p, "history", list, &filters).await
}

/// Adds `age_s` and `p50_ms_now` (the shape's 5-minute p50 now, null when it did not
/// run in the window) beside each plan's `p50_ms` at capture.
pub async fn annotate_plans(state: &Arc<Running>, data: &mut [Value]) -> Result<(), ApiError> {
    let keys: Vec<(String, u64)> = data.iter().filter_map(plan_key).collect();
    let state2 = state.clone();
    let now_p50 = tokio::task::spawn_blocking(move || p50_now(&state2, keys)).await?;
    let now = SystemTime::now();
    for row in data.iter_mut() {
        let age = (row["captured_at"].as_str())
            .and_then(|t| humantime_serde::re::humantime::parse_rfc3339(t).ok())
            .map(|t| now.duration_since(t).map_or(0, |d| d.as_secs()));
        let p50 = plan_key(row).and_then(|k| now_p50.get(&k).copied().flatten());
        if let Some(obj) = row.as_object_mut() {
            obj.insert("age_s".into(), json!(age));
            obj.insert("p50_ms_now".into(), json!(p50));
        }
    }
    Ok(())
}

fn plan_key(row: &Value) -> Option<(String, u64)> {
    let db = row["database"].as_str()?.to_string();
    let fp = u64::from_str_radix(row["fingerprint"].as_str()?, 16).ok()?;
    Some((db, fp))
}

/// The 5-minute p50 (ms) of each (database, fingerprint), over its busiest user.
fn p50_now(state: &Running, keys: Vec<(String, u64)>) -> HashMap<(String, u64), Option<f64>> {
    let Some(measure) = state.measure.as_ref() else {
        return HashMap::new();
    };
    let now = state.stats_now();
    keys.into_iter()
        .map(|(db, fp)| {
            let entries = measure.registry.get(Some(&db), fp, now);
            let five = entries
                .iter()
                .filter_map(|e| e.windows.iter().find(|(w, _)| *w == Window::Min5))
                .map(|(_, s)| s)
                .filter(|s| s.calls > 0)
                .max_by_key(|s| s.calls);
            let p50 = five.map(|s| s.p50_us as f64 / 1000.0);
            ((db, fp), p50)
        })
        .collect()
}

/// Adds `latest_plan` ({id, captured_at, plan_hash} or null) to each `/api/queries`
/// row. A store that cannot answer leaves them null rather than fail the listing.
pub async fn attach_latest_plans(state: &Running, data: &mut [Value]) {
    let fingerprints: Vec<String> = (data.iter())
        .filter_map(|r| r["fingerprint"].as_str().map(str::to_string))
        .collect();
    let stored = match state.slow_ctx.store.get() {
        Some(store) => match store.latest_plans(&fingerprints).await {
            Ok(found) => Some(found),
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the latest plans");
                Some(HashMap::new())
            }
        },
        None => None,
    };
    for row in data.iter_mut() {
        let (Some(db), Some(fp)) = (row["database"].as_str(), row["fingerprint"].as_str()) else {
            continue;
        };
        let found: Option<PlanRef> = match &stored {
            Some(map) => map.get(&(db.to_string(), fp.to_string())).cloned(),
            None => state.slow.recent.latest_ref(db, fp),
        };
        let pointer = found.map(|p| {
            json!({
                "id": p.id,
                "captured_at": crate::store::rfc3339_ms(p.captured_at),
                "plan_hash": p.plan_hash,
            })
        });
        if let Some(obj) = row.as_object_mut() {
            obj.insert("latest_plan".into(), pointer.unwrap_or(Value::Null));
        }
    }
}
