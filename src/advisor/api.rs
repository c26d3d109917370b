//! The advisor's admin HTTP routes (merged into the admin router, behind its token):
//!
//! | method | path | answers | parameters |
//! |---|---|---|---|
//! | GET | `/api/advice` | the last pass: CREATE suggestions then DROP candidates, with `pass` (when, how long, per database: HypoPG or the fallback) | `kind` (`create`, `drop`), `database`, `limit`, `cursor` |
//! | POST | `/api/advice/run` | runs a pass now and answers its summary | |
//! | GET | `/api/advice/script` | the same as `pgsidecar advise` prints (text) | |
//! | GET | `/api/insights` | N+1 patterns, most time first, and the last pass's health findings | `database`, `limit`, `cursor` |
//!
//! Cursors are the admin API's signed cursors; an advice cursor belongs to one pass.

use std::sync::Arc;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::report::{hex_str, script, Report};
use super::Advisor;
use crate::admin::cursor::{Cursor, CursorSigner, Position};
use crate::admin::error::ApiError;
use crate::admin::params::{Params, RawParams};

struct ApiCtx {
    advisor: Option<Arc<Advisor>>,
    cursors: CursorSigner,
}

/// The routes, for any router state (the handlers carry their own context).
pub fn routes<S: Clone + Send + Sync + 'static>(advisor: Option<Arc<Advisor>>) -> Router<S> {
    let ctx = Arc::new(ApiCtx {
        advisor,
        cursors: CursorSigner::default(),
    });
    let (a, b, c, d) = (ctx.clone(), ctx.clone(), ctx.clone(), ctx);
    Router::new()
        .route(
            "/api/advice",
            get(move |q: RawParams| async move { advice(&a, q) }),
        )
        .route(
            "/api/advice/run",
            post(move || async move { run(&b).await }),
        )
        .route("/api/advice/script", get(move || async move { text(&c) }))
        .route(
            "/api/insights",
            get(move |q: RawParams| async move { insights(&d, q) }),
        )
}

fn advisor(ctx: &ApiCtx) -> Result<&Arc<Advisor>, ApiError> {
    ctx.advisor.as_ref().ok_or_else(|| {
        ApiError::not_found("the advisor is off ([advisor] enabled = false, or stats = false)")
    })
}

async fn run(ctx: &ApiCtx) -> Result<Json<Value>, ApiError> {
    let report = advisor(ctx)?
        .run_pass()
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(json!({
        "pass": pass(&report),
        "suggestions": report.suggestions.len(),
        "drops": report.drops.len(),
        "findings": report.findings.len(),
    })))
}

fn pass(r: &Report) -> Value {
    json!({
        "at": crate::timefmt::rfc3339_ms(crate::timefmt::from_unix_ms(r.at_ms)),
        "duration_ms": r.duration_ms,
        "timed_out": r.timed_out,
        "databases": r.databases,
    })
}

fn text(ctx: &ApiCtx) -> Result<Response, ApiError> {
    let report = advisor(ctx)?
        .report()
        .ok_or_else(|| ApiError::not_found("no advisor pass yet: POST /api/advice/run"))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        script(&report),
    )
        .into_response())
}

#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
fn advice(ctx: &ApiCtx, raw: RawParams) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(raw)?;
    let kind = p.filter("kind")?;
    let database = p.filter("database")?;
    let limit = p.limit()?;
    let cursor = p.take("cursor")?;
    p.finish(&["kind", "database", "limit", "cursor"])?;
    if kind
        .as_deref()
        .is_some_and(|k| k != "create" && k != "drop")
    {
        return Err(ApiError::bad_request(
            "invalid kind: expected create or drop",
        ));
    }
    let advisor = advisor(ctx)?;
    let Some(report) = advisor.report() else {
        return Ok(Json(
            json!({"data": [], "next_cursor": null, "has_more": false, "pass": null}),
        ));
    };
    let scope = format!(
        "advice?kind={}&database={}",
        kind.as_deref().unwrap_or(""),
        database.as_deref().unwrap_or("")
    );
    let mut items: Vec<(String, Value)> = Vec::new();
    if kind.as_deref() != Some("drop") {
        for s in &report.suggestions {
            items.push((s.database.clone(), tagged("create", s)));
        }
    }
    if kind.as_deref() != Some("create") {
        for d in &report.drops {
            items.push((d.database.clone(), tagged("drop", d)));
        }
    }
    items.retain(|(db, _)| database.as_ref().is_none_or(|d| d == db));
    let start = match cursor {
        Some(token) => {
            let c = ctx.cursors.open(&token, &scope)?;
            if c.snapshot != Some(report.at_ms as u64) {
                return Err(ApiError::bad_request(
                    "invalid cursor: a newer advisor pass replaced that listing; repeat the request without a cursor",
                ));
            }
            (u64::MAX - c.after.value) as usize + 1
        }
        None => 0,
    };
    let page: Vec<Value> = items
        .iter()
        .skip(start)
        .take(limit)
        .map(|(_, v)| v.clone())
        .collect();
    let has_more = start + page.len() < items.len();
    let next = has_more.then(|| {
        let last = start + page.len() - 1;
        ctx.cursors.seal(&Cursor {
            scope: scope.clone(),
            snapshot: Some(report.at_ms as u64),
            after: Position {
                value: u64::MAX - last as u64,
                database: items[last].0.clone(),
                user: String::new(),
                fingerprint: 0,
            },
        })
    });
    Ok(Json(
        json!({"data": page, "next_cursor": next, "has_more": has_more, "pass": pass(&report)}),
    ))
}

fn tagged<T: serde::Serialize>(kind: &str, item: &T) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("kind".into(), Value::String(kind.into()));
    }
    v
}

fn insights(ctx: &ApiCtx, raw: RawParams) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(raw)?;
    let database = p.filter("database")?;
    let limit = p.limit()?;
    let cursor = p.take("cursor")?;
    p.finish(&["database", "limit", "cursor"])?;
    let advisor = advisor(ctx)?;
    let scope = format!("insights?database={}", database.as_deref().unwrap_or(""));
    let after = match cursor {
        Some(token) => Some(ctx.cursors.open(&token, &scope)?.after),
        None => None,
    };
    let position = |p: &super::patterns::Pattern| Position {
        value: (p.time_ms * 1000.0) as u64,
        database: p.database.clone(),
        user: hex_str(p.source),
        fingerprint: p.fingerprint,
    };
    let mut patterns: Vec<_> = advisor
        .patterns()
        .into_iter()
        .filter(|p| database.as_ref().is_none_or(|d| d == &p.database))
        .collect();
    patterns.sort_by(|a, b| position(a).listing_cmp(&position(b)));
    patterns.retain(|p| {
        after
            .as_ref()
            .is_none_or(|a| a.listing_cmp(&position(p)).is_lt())
    });
    let has_more = patterns.len() > limit;
    patterns.truncate(limit);
    let next = match (has_more, patterns.last()) {
        (true, Some(last)) => Some(ctx.cursors.seal(&Cursor {
            scope,
            snapshot: None,
            after: position(last),
        })),
        _ => None,
    };
    let data: Vec<Value> = patterns.iter().map(|p| pattern_json(advisor, p)).collect();
    let findings = advisor.report().map(|r| r.findings).unwrap_or_default();
    Ok(Json(
        json!({"data": data, "next_cursor": next, "has_more": has_more, "findings": findings}),
    ))
}

fn pattern_json(advisor: &Advisor, p: &super::patterns::Pattern) -> Value {
    let mut v = tagged("n_plus_one", p);
    let query = advisor.query_text(&p.database, p.fingerprint);
    let source = (p.source != 0)
        .then(|| advisor.query_text(&p.database, p.source))
        .flatten();
    if let Value::Object(m) = &mut v {
        m.insert("query".into(), json!(query));
        m.insert("source_query".into(), json!(source));
        m.insert(
            "avg_per_occurrence".into(),
            json!(p.executions as f64 / p.occurrences.max(1) as f64),
        );
        m.insert(
            "hint".into(),
            json!("batch it: one query with `= ANY($1)` over the collected keys, or a JOIN with the source query"),
        );
    }
    v
}
