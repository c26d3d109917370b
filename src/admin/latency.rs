//! `GET /api/queries/{fingerprint}/histogram`: one fingerprint's latency distribution
//! in a window, in log-spaced buckets (eight per decade, 10 µs to 100 s, then the rest),
//! summed over its (database, user) entries or those of `database` and `user`.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::params::{Params, RawParams};
use super::queries::{measure, path_fingerprint};
use super::rows::{fingerprint_hex, ms};
use super::Ctx;
use crate::stats::Window;

/// Upper bounds in µs: 10 × 10^(k/8) for k in 0..=56 (each 1.33 × the last).
fn bounds_us() -> Vec<u64> {
    (0..=56)
        .map(|k| (10.0 * 10f64.powf(k as f64 / 8.0)).round() as u64)
        .collect()
}

pub async fn histogram(
    State(ctx): State<Arc<Ctx>>,
    path: Result<Path<String>, PathRejection>,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    measure(&ctx)?;
    let fingerprint = path_fingerprint(path)?;
    let mut p = Params::new(raw)?;
    let window: Window = match p.take("window")? {
        None => Window::Hour1,
        Some(w) => {
            (w.parse()).map_err(|e| ApiError::bad_request(format!("invalid window: {e}")))?
        }
    };
    let database = p.filter("database")?;
    let user = p.filter("user")?;
    p.finish(&["window", "database", "user"])?;
    let answer = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let measure = measure(&ctx)?;
        let now = ctx.state.stats_now();
        let bounds = bounds_us();
        let mut sum = vec![0u64; bounds.len() + 1];
        let entries = measure.registry.get(database.as_deref(), fingerprint, now);
        let keys =
            (entries.iter().map(|e| &e.key)).filter(|k| user.as_ref().is_none_or(|u| *u == k.user));
        let mut found = false;
        for key in keys {
            if let Some(counts) = measure.registry.cumulative(key, window, now, &bounds) {
                found = true;
                sum.iter_mut().zip(counts).for_each(|(s, c)| *s += c);
            }
        }
        if !found {
            return Err(ApiError::not_found(format!(
                "no statistics for fingerprint {}",
                fingerprint_hex(fingerprint)
            )));
        }
        Ok(render(window, &bounds, &sum))
    })
    .await?;
    answer.map(Json)
}

/// Cumulative counts (the total last) as per-bucket counts.
fn render(window: Window, bounds: &[u64], cumulative: &[u64]) -> Value {
    let total = cumulative.last().copied().unwrap_or(0);
    let mut below = 0;
    let mut buckets: Vec<Value> = Vec::with_capacity(bounds.len() + 1);
    for (bound, &count) in bounds.iter().zip(cumulative) {
        buckets.push(json!({ "le_ms": ms(*bound), "count": count - below }));
        below = count;
    }
    buckets.push(json!({ "le_ms": "+Inf", "count": total - below }));
    json!({ "window": window.as_str(), "total": total, "buckets": buckets })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_and_counts_per_bucket() {
        let b = bounds_us();
        assert_eq!((b[0], b[8], b[56], b.len()), (10, 100, 100_000_000, 57));
        let v = render(Window::Min1, &[10, 100], &[1, 4, 6]);
        assert_eq!(v["total"], 6);
        let counts: Vec<u64> = (v["buckets"].as_array().unwrap().iter())
            .map(|b| b["count"].as_u64().unwrap())
            .collect();
        assert_eq!(counts, vec![1, 3, 2]);
    }
}
