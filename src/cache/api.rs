//! Operating the cache: `GET /api/cache` (state and per-fingerprint hits, misses,
//! bytes and time saved), `POST /api/cache/invalidate` (all, a table or a
//! fingerprint), and the console's `SHOW CACHE`, `CACHE CLEAR [table]`,
//! `CACHE INSTALL` and `CACHE UNINSTALL`.
//!
//! Invalidating over HTTP needs `admin_token` to be set (the router already checks the
//! bearer): with no token there is no way to tell an operator from anyone who can
//! reach the port, so it answers 403.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::reason::Source;
use super::Cache;
use crate::state::Running;

/// `(fingerprint, hits, lookups)` of the `n` fingerprints with the most lookups.
pub fn top_shapes(cache: &Cache, n: usize) -> Vec<(u64, u64, u64)> {
    let mut rows: Vec<(u64, u64, u64)> = cache
        .stats
        .shapes
        .iter()
        .map(|s| {
            let hits = s.hits.load(Ordering::Relaxed);
            (*s.key(), hits, hits + s.misses.load(Ordering::Relaxed))
        })
        .collect();
    rows.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    rows.truncate(n);
    rows
}

/// The state `GET /api/cache` and `SHOW CACHE` report.
pub fn state(cache: &Cache) -> Value {
    let (entries, bytes) = cache.size();
    let config = cache.config();
    let mut shapes: Vec<Value> = cache
        .stats
        .shapes
        .iter()
        .map(|s| {
            json!({
                "fingerprint": format!("{:016x}", s.key()),
                "hits": s.hits.load(Ordering::Relaxed),
                "misses": s.misses.load(Ordering::Relaxed),
                "bytes": s.bytes.load(Ordering::Relaxed),
                "saved_ms": s.saved_us.load(Ordering::Relaxed) as f64 / 1000.0,
            })
        })
        .collect();
    shapes.sort_by(|a, b| b["hits"].as_u64().cmp(&a["hits"].as_u64()));
    json!({
        "mode": config.mode,
        "entries": entries,
        "bytes": bytes,
        "max_bytes": config.max_bytes,
        "hits": cache.stats.hits.load(Ordering::Relaxed),
        "listening": cache.listeners.snapshot(),
        "fingerprints": shapes,
    })
}

/// `GET /api/cache`.
pub async fn show(shared: Arc<Running>) -> Response {
    Json(json!({ "data": state(&shared.cache) })).into_response()
}

/// The body of `POST /api/cache/invalidate`: exactly one of the three.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidateBody {
    #[serde(default)]
    pub all: bool,
    /// `name` or `schema.name`, resolved in `database`.
    pub table: Option<String>,
    /// The database clients name; default: the upstream URL's.
    pub database: Option<String>,
    /// 16 hex digits.
    pub fingerprint: Option<String>,
}

/// `POST /api/cache/invalidate`.
pub async fn invalidate(
    shared: Arc<Running>,
    body: Result<Json<InvalidateBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let error = |status: StatusCode, message: String| {
        (status, Json(json!({ "error": message }))).into_response()
    };
    if shared.config().admin_token.is_none() {
        return error(
            StatusCode::FORBIDDEN,
            "invalidating the cache needs admin_token to be set".into(),
        );
    }
    let Ok(Json(body)) = body else {
        return error(
            StatusCode::BAD_REQUEST,
            "body must be JSON: {\"all\": true} | {\"table\", \"database\"?} | {\"fingerprint\"}"
                .into(),
        );
    };
    let done = match (body.all, &body.table, &body.fingerprint) {
        (true, None, None) => {
            shared.cache.invalidate_all(Source::Admin);
            Ok("invalidated everything".to_string())
        }
        (false, Some(table), None) => clear_table(&shared, body.database.as_deref(), table).await,
        (false, None, Some(fp)) => clear_fingerprint(&shared.cache, fp),
        _ => Err("give exactly one of all, table or fingerprint".to_string()),
    };
    match done {
        Ok(message) => Json(json!({ "data": { "result": message } })).into_response(),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

/// Removes every entry of one fingerprint.
pub fn clear_fingerprint(cache: &Cache, fingerprint: &str) -> Result<String, String> {
    let fp = u64::from_str_radix(fingerprint, 16)
        .ok()
        .filter(|_| fingerprint.len() == 16)
        .ok_or_else(|| format!("not a fingerprint (16 hex digits): {fingerprint}"))?;
    let n = cache.clear_fingerprint(fp);
    cache.stats.invalidated(Source::Admin);
    Ok(format!(
        "invalidated {n} entries of fingerprint {fingerprint}"
    ))
}

/// Resolves `table` in `database` and invalidates it (its entries, and through the
/// entries' dependencies its inheritance ancestry).
pub async fn clear_table(
    shared: &Running,
    database: Option<&str>,
    table: &str,
) -> Result<String, String> {
    let database = database.map_or_else(|| shared.upstream().dbname.clone(), str::to_owned);
    let pg = super::conn::pg_config(shared, &database);
    let (client, connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", super::conn::describe(&pg)))?;
    let driver = tokio::spawn(connection);
    let row = client
        .query_opt("SELECT pg_catalog.to_regclass($1)::oid", &[&table])
        .await
        .map_err(|e| format!("cannot resolve {table}: {e}"));
    drop(client);
    let _ = driver.await;
    let oid: Option<u32> = row?.and_then(|r| r.get(0));
    let oid = oid.ok_or_else(|| format!("no such table in {database}: {table}"))?;
    shared
        .cache
        .invalidate_tables(&database, &[oid], Source::Admin);
    Ok(format!("invalidated {table} in {database}"))
}

/// `CACHE INSTALL [db]` / `CACHE UNINSTALL [db]` from the console.
pub async fn install(
    shared: &Running,
    database: Option<&str>,
    install_it: bool,
) -> Result<String, String> {
    let database = database.map_or_else(|| shared.upstream().dbname.clone(), str::to_owned);
    let pg = super::conn::pg_config(shared, &database);
    super::install::run(&pg, install_it)
        .await
        .map_err(|e| e.to_string())
}
