//! `GET /api/queries` and `GET /api/queries/{fingerprint}`.
//!
//! The listing has one row per (database, user, fingerprint) with calls in `window`
//! (`1m`, `5m`, `1h` (default), `24h`, `all`), sorted high to low by `sort`
//! (`total_time` (default), `calls`, `mean`, `p95`, `p99`, `errors`), filtered by
//! `database`, `user`, `command` (the row's command, any case) and `table` (a table
//! the statement reads or writes, as written or by its unqualified name). Paging is
//! described in [`super::cursor`] and [`super::pages`]. The registry is read on a
//! blocking thread.

use std::str::FromStr;
use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::cursor::{Cursor, Position};
use super::error::ApiError;
use super::pages::Rows;
use super::params::{Params, RawParams};
use super::rows::{fingerprint_hex, query_row, window_stats, Clock};
use super::Ctx;
use crate::session::Measure;
use crate::stats::{QuerySnapshot, Window};

const LIST_PARAMS: [&str; 8] = [
    "window", "sort", "database", "user", "command", "table", "limit", "cursor",
];

/// What a listing can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortKey {
    TotalTime,
    Calls,
    Mean,
    P95,
    P99,
    Errors,
}

impl SortKey {
    const NAMES: [(&'static str, SortKey); 6] = [
        ("total_time", SortKey::TotalTime),
        ("calls", SortKey::Calls),
        ("mean", SortKey::Mean),
        ("p95", SortKey::P95),
        ("p99", SortKey::P99),
        ("errors", SortKey::Errors),
    ];

    /// The row's sort value as an unsigned integer in the same order.
    fn value(self, s: &QuerySnapshot) -> u64 {
        match self {
            SortKey::TotalTime => s.total_us,
            SortKey::Calls => s.calls,
            // Non-negative floats order like their bit patterns.
            SortKey::Mean => s.mean_us.max(0.0).to_bits(),
            SortKey::P95 => s.p95_us,
            SortKey::P99 => s.p99_us,
            SortKey::Errors => s.errors,
        }
    }

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("total_time", |(n, _)| n)
    }
}

impl FromStr for SortKey {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<SortKey, ApiError> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, k)| *k)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(n, _)| *n).collect();
                ApiError::bad_request(format!(
                    "unknown sort {s:?} (expected one of: {})",
                    names.join(", ")
                ))
            })
    }
}

/// A checked listing request.
#[derive(Debug, Clone)]
struct Listing {
    window: Window,
    sort: SortKey,
    database: Option<String>,
    user: Option<String>,
    command: Option<String>,
    table: Option<String>,
    limit: usize,
    cursor: Option<String>,
}

impl Listing {
    fn parse(raw: RawParams) -> Result<Listing, ApiError> {
        let mut p = Params::new(raw)?;
        let window = match p.take("window")? {
            None => Window::Hour1,
            Some(w) => w
                .parse()
                .map_err(|e| ApiError::bad_request(format!("invalid window: {e}")))?,
        };
        let sort = match p.take("sort")? {
            None => SortKey::TotalTime,
            Some(s) => s.parse()?,
        };
        let listing = Listing {
            window,
            sort,
            database: p.filter("database")?,
            user: p.filter("user")?,
            command: p.filter("command")?,
            table: p.filter("table")?,
            limit: p.limit()?,
            cursor: p.filter("cursor")?,
        };
        p.finish(&LIST_PARAMS)?;
        Ok(listing)
    }

    /// Everything that decides which rows come in which order (not `limit`).
    fn scope(&self) -> String {
        let filter = |f: &Option<String>| f.clone().unwrap_or_default();
        serde_json::json!([
            "queries",
            self.window.as_str(),
            self.sort.name(),
            filter(&self.database),
            filter(&self.user),
            filter(&self.command),
            filter(&self.table),
        ])
        .to_string()
    }

    fn matches(&self, s: &QuerySnapshot) -> bool {
        let table_matches = |wanted: &str| {
            s.meta
                .tables
                .iter()
                .any(|t| t == wanted || t.rsplit_once('.').is_some_and(|(_, name)| name == wanted))
        };
        s.calls > 0
            && self.database.as_ref().is_none_or(|d| *d == s.key.database)
            && self.user.as_ref().is_none_or(|u| *u == s.key.user)
            && (self.command.as_ref()).is_none_or(|c| c.eq_ignore_ascii_case(&s.meta.command_label))
            && self.table.as_deref().is_none_or(table_matches)
    }

    fn position(&self, s: &QuerySnapshot) -> Position {
        Position {
            value: self.sort.value(s),
            database: s.key.database.clone(),
            user: s.key.user.clone(),
            fingerprint: s.key.fingerprint,
        }
    }

    /// The matching rows in listing order.
    fn rows(&self, measure: &Measure, now: u64) -> Rows {
        let mut rows: Vec<(Position, QuerySnapshot)> = (measure.registry)
            .snapshot(self.window, now)
            .into_iter()
            .filter(|s| self.matches(s))
            .map(|s| (self.position(&s), s))
            .collect();
        rows.sort_by(|a, b| a.0.listing_cmp(&b.0));
        rows.into_iter().map(|(_, s)| s).collect()
    }
}

/// The statistics, or 404 when they are switched off.
pub(super) fn measure(ctx: &Ctx) -> Result<&Measure, ApiError> {
    ctx.state.measure.as_ref().ok_or_else(|| {
        ApiError::not_found("statement statistics are off (stats = false in the configuration)")
    })
}

pub async fn list(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    measure(&ctx)?;
    let listing = Listing::parse(raw)?;
    let scope = listing.scope();
    let cursor = (listing.cursor.as_deref())
        .map(|token| ctx.cursors.open(token, &scope))
        .transpose()?;
    let state = ctx.state.clone();
    let mut page =
        tokio::task::spawn_blocking(move || page(&ctx, &listing, scope, cursor)).await??;
    if let Some(data) = page["data"].as_array_mut() {
        super::plans::attach_latest_plans(&state, data).await;
    }
    Ok(Json(page))
}

/// One page: from the frozen rows the cursor names, or fresh ones.
fn page(
    ctx: &Ctx,
    listing: &Listing,
    scope: String,
    cursor: Option<Cursor>,
) -> Result<Value, ApiError> {
    let measure = measure(ctx)?;
    let now = ctx.state.stats_now();
    let kept = (cursor.as_ref())
        .and_then(|c| c.snapshot)
        .and_then(|id| ctx.pages.get(id).map(|rows| (id, rows)));
    let (mut snapshot, rows) = match kept {
        Some((id, rows)) => (Some(id), rows),
        None => (None, listing.rows(measure, now)),
    };
    let start = match &cursor {
        None => 0,
        Some(c) => rows.partition_point(|r| listing.position(r).listing_cmp(&c.after).is_le()),
    };
    let end = rows.len().min(start + listing.limit);
    let has_more = end < rows.len();
    let next_cursor = match end.checked_sub(1).filter(|_| has_more) {
        None => None,
        Some(last) => {
            let id = *snapshot.get_or_insert_with(|| ctx.pages.put(rows.clone()));
            Some(ctx.cursors.seal(&Cursor {
                scope,
                snapshot: Some(id),
                after: listing.position(&rows[last]),
            }))
        }
    };
    let clock = Clock::new(now);
    let data: Vec<Value> = rows[start..end]
        .iter()
        .map(|s| query_row(s, &clock))
        .collect();
    Ok(json!({ "data": data, "next_cursor": next_cursor, "has_more": has_more }))
}

/// `GET /api/queries/{fingerprint}`: every (database, user) entry of the fingerprint
/// in every window; `database` narrows it to one database.
pub async fn detail(
    State(ctx): State<Arc<Ctx>>,
    path: Result<Path<String>, PathRejection>,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    measure(&ctx)?;
    let fingerprint = path_fingerprint(path)?;
    let mut p = Params::new(raw)?;
    let database = p.filter("database")?;
    p.finish(&["database"])?;
    let found = tokio::task::spawn_blocking(move || -> Result<Value, ApiError> {
        let measure = measure(&ctx)?;
        let now = ctx.state.stats_now();
        let entries = measure.registry.get(database.as_deref(), fingerprint, now);
        let first = entries.first().ok_or_else(|| {
            ApiError::not_found(format!(
                "no statistics for fingerprint {}",
                fingerprint_hex(fingerprint)
            ))
        })?;
        let clock = Clock::new(now);
        let rendered: Vec<Value> = entries
            .iter()
            .map(|e| {
                let windows: serde_json::Map<String, Value> = (e.windows.iter())
                    .map(|(w, s)| (w.as_str().to_string(), window_stats(s)))
                    .collect();
                json!({
                    "database": e.key.database,
                    "user": e.key.user,
                    "first_seen": clock.format(e.first_seen),
                    "last_seen": clock.format(e.last_seen),
                    "windows": windows,
                })
            })
            .collect();
        let first_seen = entries.iter().map(|e| e.first_seen).min().unwrap_or(0);
        let last_seen = entries.iter().map(|e| e.last_seen).max().unwrap_or(0);
        Ok(json!({
            "fingerprint": fingerprint_hex(fingerprint),
            "query": first.meta.normalized,
            "command": first.meta.command_label,
            "tables": first.meta.tables,
            "first_seen": clock.format(first_seen),
            "last_seen": clock.format(last_seen),
            "entries": rendered,
        }))
    })
    .await?;
    found.map(Json)
}

/// The `{fingerprint}` of a path, parsed; a 400 when it is malformed.
pub(super) fn path_fingerprint(path: Result<Path<String>, PathRejection>) -> Result<u64, ApiError> {
    let Path(hex) =
        path.map_err(|e| ApiError::bad_request(format!("malformed fingerprint: {e}")))?;
    parse_fingerprint(&hex)
}

/// Exactly 16 hex digits (any case), as listings print fingerprints.
pub(super) fn parse_fingerprint(hex: &str) -> Result<u64, ApiError> {
    let malformed = || {
        ApiError::bad_request(format!(
            "malformed fingerprint {hex:?}: expected 16 hexadecimal digits"
        ))
    };
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed());
    }
    u64::from_str_radix(hex, 16).map_err(|_| malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fingerprints_and_sorts() {
        assert_eq!(parse_fingerprint("00000000000000fF"), Ok(255));
        for bad in [
            "ff",
            "0000000000000000f",
            "zzzzzzzzzzzzzzzz",
            "+00000000000000f",
        ] {
            assert!(parse_fingerprint(bad).is_err(), "{bad}");
        }
        assert_eq!("p99".parse::<SortKey>(), Ok(SortKey::P99));
        assert!("slowest".parse::<SortKey>().is_err());
        assert!(SortKey::NAMES.iter().all(|(n, k)| k.name() == *n));
    }
}
