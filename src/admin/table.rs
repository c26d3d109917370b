//! `GET /api/queries/table`: the statement statistics as a compact table for the web
//! console's virtual scroller: a slice (`offset`, `limit` up to 1,000) of the rows
//! sorted and filtered server-side, each row an array under one `columns` list, and
//! the query text cut to [`TEXT_CHARS`]. Ten thousand fingerprints thus travel as
//! slices (~30 KB per 200 rows) fetched as they scroll into view, never as one document.
//!
//! Parameters: `window` (as `/api/queries`), `sort` (any column but `fingerprint`;
//! default `total_ms`), `order` (`desc` (default) or `asc`), filters `database`, `user`,
//! `command`, `table` (as `/api/queries`) and `q` (a case-insensitive substring of the
//! normalized text), `offset`, `limit` (1 to 1,000, default 200) and `snapshot`.
//! The first slice freezes the sorted rows ([`super::pages`]) and answers a signed
//! `snapshot` token; later slices that pass it read the same rows, so scrolling never
//! shows a row twice. A token that expired gets a fresh listing and a new token (the
//! client then drops what it cached). The first slice (`offset` 0) also lists the
//! values each filter can take (`facets`).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::cursor::{Cursor, Position};
use super::error::ApiError;
use super::pages::Rows;
use super::params::{Params, RawParams};
use super::queries::measure;
use super::rows::{fingerprint_hex, ms};
use super::Ctx;
use crate::stats::{QuerySnapshot, Window};

/// Characters of normalized text per row; the detail endpoint has all of it.
pub const TEXT_CHARS: usize = 240;
const MAX_LIMIT: usize = 1000;
const DEFAULT_LIMIT: usize = 200;
/// Values listed per facet.
const FACET_MAX: usize = 500;

const COLUMNS: [&str; 13] = [
    "fingerprint",
    "database",
    "user",
    "command",
    "query",
    "calls",
    "total_ms",
    "mean_ms",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "rows",
    "errors",
];

const PARAMS: [&str; 11] = [
    "window", "sort", "order", "database", "user", "command", "table", "q", "offset", "limit",
    "snapshot",
];

/// A checked request.
struct Request {
    window: Window,
    /// Index into [`COLUMNS`] (never 0).
    sort: usize,
    ascending: bool,
    filters: [Option<String>; 4],
    q: Option<String>,
    offset: usize,
    limit: usize,
    snapshot: Option<String>,
}

fn number(p: &mut Params, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
    match p.take(name)? {
        None => Ok(default),
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(ApiError::bad_request(format!(
                "invalid {name} {raw:?}: expected a number from 0 to {max}"
            ))),
        },
    }
}

impl Request {
    fn parse(raw: RawParams) -> Result<Request, ApiError> {
        let mut p = Params::new(raw)?;
        let window = match p.take("window")? {
            None => Window::Hour1,
            Some(w) => {
                (w.parse()).map_err(|e| ApiError::bad_request(format!("invalid window: {e}")))?
            }
        };
        let sort = match p.filter("sort")? {
            None => 6,
            Some(s) => (COLUMNS.iter().skip(1).position(|c| *c == s))
                .map(|i| i + 1)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unknown sort {s:?} (expected one of: {})",
                        COLUMNS[1..].join(", ")
                    ))
                })?,
        };
        let ascending = match p.filter("order")?.as_deref() {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid order {other:?}: expected asc or desc"
                )))
            }
        };
        let filters = [
            p.filter("database")?,
            p.filter("user")?,
            p.filter("command")?,
            p.filter("table")?,
        ];
        let request = Request {
            window,
            sort,
            ascending,
            filters,
            q: p.filter("q")?.map(|q| q.to_lowercase()),
            offset: number(&mut p, "offset", 0, usize::MAX)?,
            limit: number(&mut p, "limit", DEFAULT_LIMIT, MAX_LIMIT)?.max(1),
            snapshot: p.filter("snapshot")?,
        };
        p.finish(&PARAMS)?;
        Ok(request)
    }

    /// What decides which rows come in which order.
    fn scope(&self) -> String {
        json!([
            "table",
            self.window.as_str(),
            self.sort,
            self.ascending,
            self.filters,
            self.q
        ])
        .to_string()
    }

    fn matches(&self, s: &QuerySnapshot) -> bool {
        let [database, user, command, table] = &self.filters;
        let table_matches = |wanted: &String| {
            (s.meta.tables.iter())
                .any(|t| t == wanted || t.rsplit_once('.').is_some_and(|(_, n)| n == wanted))
        };
        s.calls > 0
            && database.as_ref().is_none_or(|d| *d == s.key.database)
            && user.as_ref().is_none_or(|u| *u == s.key.user)
            && (command.as_ref()).is_none_or(|c| c.eq_ignore_ascii_case(&s.meta.command_label))
            && table.as_ref().is_none_or(table_matches)
            && (self.q.as_ref()).is_none_or(|q| s.meta.normalized.to_lowercase().contains(q))
    }

    /// Sort order: the column (as asked), then the key, so the order is total.
    fn compare(&self, a: &QuerySnapshot, b: &QuerySnapshot) -> Ordering {
        let by_column = match self.sort {
            1 => a.key.database.cmp(&b.key.database),
            2 => a.key.user.cmp(&b.key.user),
            3 => a.meta.command_label.cmp(&b.meta.command_label),
            4 => a.meta.normalized.cmp(&b.meta.normalized),
            5 => a.calls.cmp(&b.calls),
            7 => a.mean_us.total_cmp(&b.mean_us),
            8 => a.p50_us.cmp(&b.p50_us),
            9 => a.p95_us.cmp(&b.p95_us),
            10 => a.p99_us.cmp(&b.p99_us),
            11 => a.rows.cmp(&b.rows),
            12 => a.errors.cmp(&b.errors),
            _ => a.total_us.cmp(&b.total_us),
        };
        let by_column = if self.ascending {
            by_column
        } else {
            by_column.reverse()
        };
        by_column.then_with(|| a.key.cmp(&b.key))
    }
}

pub async fn table(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    measure(&ctx)?;
    let request = Request::parse(raw)?;
    let scope = request.scope();
    let kept = match &request.snapshot {
        Some(token) => ctx.cursors.open(token, &scope)?.snapshot,
        None => None,
    };
    let answer = tokio::task::spawn_blocking(move || slice(&ctx, &request, scope, kept)).await?;
    answer.map(Json)
}

fn slice(
    ctx: &Ctx,
    request: &Request,
    scope: String,
    kept: Option<u64>,
) -> Result<Value, ApiError> {
    let measure = measure(ctx)?;
    let now = ctx.state.stats_now();
    let frozen = kept.and_then(|id| ctx.pages.get(id).map(|rows| (id, rows)));
    let mut facets = Value::Null;
    let (id, rows) = match frozen {
        Some(found) => found,
        None => {
            let all = measure.registry.snapshot(request.window, now);
            if request.offset == 0 {
                facets = facet_values(&all);
            }
            let mut rows: Vec<QuerySnapshot> =
                all.into_iter().filter(|s| request.matches(s)).collect();
            rows.sort_by(|a, b| request.compare(a, b));
            let rows: Rows = rows.into();
            (ctx.pages.put(rows.clone()), rows)
        }
    };
    let token = ctx.cursors.seal(&Cursor {
        scope,
        snapshot: Some(id),
        after: Position {
            value: 0,
            database: String::new(),
            user: String::new(),
            fingerprint: 0,
        },
    });
    let start = request.offset.min(rows.len());
    let end = rows.len().min(start.saturating_add(request.limit));
    let data: Vec<Value> = rows[start..end].iter().map(compact_row).collect();
    Ok(json!({
        "window": request.window.as_str(),
        "total": rows.len(),
        "offset": start,
        "snapshot": token,
        "columns": COLUMNS,
        "rows": data,
        "facets": facets,
    }))
}

fn compact_row(s: &QuerySnapshot) -> Value {
    let text = &s.meta.normalized;
    let cut = match text.char_indices().nth(TEXT_CHARS) {
        Some((at, _)) => &text[..at],
        None => text.as_str(),
    };
    json!([
        fingerprint_hex(s.key.fingerprint),
        s.key.database,
        s.key.user,
        s.meta.command_label,
        cut,
        s.calls,
        ms(s.total_us),
        s.mean_us.round() / 1000.0,
        ms(s.p50_us),
        ms(s.p95_us),
        ms(s.p99_us),
        s.rows,
        s.errors,
    ])
}

/// The values each filter can take among rows with calls in the window.
fn facet_values(all: &[QuerySnapshot]) -> Value {
    let mut sets: [BTreeSet<&str>; 4] = Default::default();
    for s in all.iter().filter(|s| s.calls > 0) {
        sets[0].insert(&s.key.database);
        sets[1].insert(&s.key.user);
        sets[2].insert(&s.meta.command_label);
        sets[3].extend(s.meta.tables.iter().map(String::as_str));
    }
    let list = |set: &BTreeSet<&str>| -> Vec<String> {
        set.iter().take(FACET_MAX).map(|v| v.to_string()).collect()
    };
    json!({
        "database": list(&sets[0]),
        "user": list(&sets[1]),
        "command": list(&sets[2]),
        "table": list(&sets[3]),
    })
}
